//! Plugins: code that guards and transforms a request between the decision and the
//! upstream, and its answer on the way back.
//!
//! A plugin is one file implementing [`Plugin`] and one line in [`REGISTRY`]. Every
//! hook has a default that does nothing, so a plugin writes only the hooks it needs
//! and says which in [`Plugin::hooks`] (the gateway skips the work of hooks nobody
//! has, such as re-reading a stream event by event). The hooks, in the order a
//! request meets them:
//!
//! - [`Plugin::on_govern`] (phase `govern`, before a model is chosen): may steer the
//!   choice: keep only the route's cheapest candidates, compress the prompt;
//! - [`Plugin::on_request`] (phase `plugins`): may rewrite the upstream request and
//!   its headers, or answer locally ([`Flow::Answer`]): forward is skipped, observe
//!   still runs;
//! - [`Plugin::on_response_headers`]: the status and headers the client will get;
//! - [`Plugin::on_response`] (whole answers) or [`Plugin::on_response_chunk`] and
//!   [`Plugin::on_stream_end`] (streams): may rewrite, hold back, or end the answer;
//! - [`Plugin::on_observe`]: the outcome, once the request is over;
//! - [`Plugin::on_verify`]: for a local answer that asked for it, what the upstream
//!   answered instead (sent in the background after the client got the local one).
//!
//! The chain ([`chain::Chain`]) runs global plugins first, then the route's, in the
//! configured order; a hook that fails or panics is handled by the plugin's
//! `on_error` rule. Plugin types and their options are documented in `docs/plugins.md`.

mod budget;
pub mod chain;
mod commitments;
mod headers;
mod local_answer;
mod owner;
mod params;
mod pii_redact;
mod rate_limit;
pub mod reasoning;
mod response_guard;
mod semantic_cache;
mod stream_event;
mod system_prompt;
mod template;
mod tool_permissions;
mod tool_selection;

use http::HeaderMap;
use serde_json::{Map, Value};
use std::any::Any;
use std::time::Duration;
use switchyard_policy::ModelFamily;
use switchyard_wire::{ChatRequest, Usage};

pub use chain::{Chain, ChainInfo, ChunkResult, PluginFailure, PluginRun, Plugins};

/// Builds a plugin from its definition's options (every key but the common ones).
pub type Build = fn(&Map<String, Value>, &Context<'_>) -> Result<Box<dyn Plugin>, String>;

/// What a plugin may check its options against when it is built.
#[derive(Debug, Clone, Copy, Default)]
pub struct Context<'a> {
    /// The configured model names.
    pub models: &'a [&'a str],
    /// Whether the embedding model is configured (`signals.model`), so that requests
    /// can carry their embedding ([`Reads::embedding`]; the runtime loads it).
    pub embedding_model: bool,
    /// Whether callers are identified (`signals.identity`), so that requests can carry
    /// their caller ([`Reads::caller`]).
    pub identity: bool,
    /// The plugin's own name (as routes list it): a plugin keeping shared state keys
    /// it by this name.
    pub name: &'a str,
    /// The configured models' prices, dollars per million tokens (input, output),
    /// indexed like `models`.
    pub prices: &'a [Option<(f64, f64)>],
    /// The state several requests and replicas share ([`Reads::state`]).
    pub state: Option<&'a std::sync::Arc<dyn switchyard_state::SharedState>>,
}

/// The plugin types, by the name written as `type:`.
pub const REGISTRY: &[(&str, Build)] = &[
    ("system_prompt", system_prompt::build),
    ("headers", headers::build),
    ("params", params::build),
    ("reasoning", reasoning::build),
    ("local_answer", local_answer::build),
    ("pii_redact", pii_redact::build),
    ("response_guard", response_guard::build),
    ("semantic_cache", semantic_cache::build),
    ("budget", budget::build),
    ("rate_limit", rate_limit::build),
    ("tool_permissions", tool_permissions::build),
    ("tool_selection", tool_selection::build),
    ("commitments", commitments::build),
];

/// What a plugin reads of a request besides its body: the gateway prepares it only
/// when some plugin of the request's chain reads it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Reads {
    /// The embedding of the last user turn (the one signals share; computed for the
    /// plugin when no signal needed it), waited for this long at most.
    pub embedding: Option<Duration>,
    /// The verified caller (the identity's subject).
    pub caller: bool,
    /// Client request headers, by lower-case name.
    pub headers: Vec<String>,
    /// The embedding model's workers, to embed texts of its own (answers): the
    /// runtime then loads the model, and runs the chain's answer hooks off the async
    /// workers.
    pub embedder: bool,
    /// The shared state ([`Context::state`]): when it is on a server, the gateway runs
    /// the chain's request and observe hooks off the async workers.
    pub state: bool,
}

impl Reads {
    /// What either reads (the longer embedding wait).
    pub fn union(mut self, other: &Reads) -> Reads {
        self.embedding = match (self.embedding, other.embedding) {
            (Some(a), Some(b)) => Some(a.max(b)),
            (a, b) => a.or(b),
        };
        self.caller |= other.caller;
        self.embedder |= other.embedder;
        self.state |= other.state;
        for h in &other.headers {
            if !self.headers.contains(h) {
                self.headers.push(h.clone());
            }
        }
        self
    }
}

/// What a plugin is told about the request it works on.
#[derive(Debug, Clone, Copy)]
pub struct RequestInfo<'a> {
    /// The request id (sent upstream and to the client as `x-request-id`).
    pub request_id: &'a str,
    /// The route taken (`direct` when the client named a model).
    pub route: &'a str,
    /// The chosen model, as configured.
    pub model: &'a str,
    /// The chosen model's family, when configured.
    pub family: Option<ModelFamily>,
    /// Whether the client asked for a stream.
    pub stream: bool,
    /// A dry run (`POST /v1/route`, `switchyard route`): nothing will be forwarded,
    /// so a plugin with side effects (counters, budgets) should not take them.
    pub dry_run: bool,
    /// The embedding of the last user turn, when a plugin of the chain reads it
    /// ([`Reads::embedding`]) and it could be computed in time.
    pub embedding: Option<&'a [f32]>,
    /// The verified caller, when a plugin of the chain reads it and there is one.
    pub caller: Option<&'a str>,
    /// The caller's roles (verified, or from trusted headers), when a plugin of the
    /// chain reads the caller.
    pub roles: &'a [String],
    /// The client headers plugins of the chain read, by lower-case name.
    pub headers: &'a [(String, String)],
    /// The embedding model's workers, when a plugin of the chain reads them
    /// ([`Reads::embedder`]).
    pub embedder: Option<&'a switchyard_workload::worker::EmbedWorkers>,
    /// The prompt's tokens, as the gateway counts them.
    pub prompt_tokens: u64,
    /// The output tokens the request is planned and priced for: the client's cap
    /// (else the expected length) times the answers it asked for.
    pub output_tokens: u64,
    /// The chosen model's price, dollars per million tokens (input, output).
    pub price: Option<(f64, f64)>,
}

impl RequestInfo<'_> {
    /// A client header a plugin of the chain reads ([`Reads::headers`]).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// The request as it will go upstream.
#[derive(Debug)]
pub struct UpstreamRequest<'a> {
    /// The body.
    pub body: &'a mut ChatRequest,
    /// Headers added to the upstream call. The gateway's own (`content-type`,
    /// `x-request-id`, deadlines, retention, the endpoint's key) are set after these.
    pub headers: &'a mut HeaderMap,
}

/// What a request hook decided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Flow {
    /// Go on to the next plugin, then forward.
    Continue,
    /// Answer the client without calling upstream.
    Answer(LocalAnswer),
}

/// An answer made by the gateway itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalAnswer {
    /// HTTP status: 200 is an assistant message (streamed when the client asked for a
    /// stream); anything else is a JSON error.
    pub status: u16,
    /// The assistant's text, or the error message.
    pub message: String,
    /// The error code (`error.code`) of a non-200 answer.
    pub code: String,
    /// The usage a 200 reports (a cached answer reports what it cost when it was
    /// made; zeros when absent).
    pub usage: Option<Usage>,
    /// Also ask the upstream, in the background once the client has its answer, and
    /// hand what it says to the plugin's [`Plugin::on_verify`] (a 200 only; never on a
    /// dry run).
    pub verify: bool,
}

impl LocalAnswer {
    /// An answer of the gateway's own, reporting no usage and not verified: with
    /// status 200 an assistant message, else an error with this `error.code`.
    pub fn new(status: u16, code: &str, message: String) -> LocalAnswer {
        LocalAnswer {
            status,
            message,
            code: code.to_owned(),
            usage: None,
            verify: false,
        }
    }
}

/// What the upstream said to a request a plugin answered locally with
/// [`LocalAnswer::verify`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Verification<'a> {
    /// The upstream's answer text (its first choice), when it answered with a 2xx.
    pub answer: Option<&'a str>,
    /// Cosine similarity of the embeddings of the upstream's answer and the local one:
    /// 1 when the texts are equal, absent when they differ and no embedding model is
    /// loaded (or it failed).
    pub similarity: Option<f32>,
    /// Why there is no answer: the upstream failed, refused, or sent no text.
    pub error: Option<&'a str>,
}

/// What a stream hook decided about an event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChunkFlow {
    /// Go on (the events in `out` are passed to the next plugin, then the client).
    Continue,
    /// End the stream now with a terminal error event carrying this message.
    End(String),
}

/// A hook failed; the plugin's `on_error` rule decides what follows.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct PluginError(pub String);

impl PluginError {
    /// An error with this message.
    pub fn new(message: impl Into<String>) -> Self {
        PluginError(message.into())
    }
}

/// What a plugin keeps between the hooks of one request (its own type, boxed).
pub type State = Option<Box<dyn Any + Send + Sync>>;

/// A plugin's per-request value of type `T`, made (default) when there is none or it
/// is of another type.
pub(crate) fn state_of<T: Default + Any + Send + Sync>(state: &mut State) -> &mut T {
    if state.as_ref().is_none_or(|s| !s.is::<T>()) {
        *state = Some(Box::<T>::default());
    }
    #[allow(clippy::expect_used)] // set just above
    state
        .as_mut()
        .and_then(|s| s.downcast_mut::<T>())
        .expect("a value of its type")
}

/// How a request ended, for [`Plugin::on_observe`].
#[derive(Debug, Clone, Copy)]
pub struct Observation<'a> {
    /// HTTP status sent to the client.
    pub status: u16,
    /// `ok`, `upstream_error`, `policy_denied`, `local_answer`, …
    pub outcome: &'a str,
    /// The phase that produced the answer (`forward`, `plugins`, `govern`, …).
    pub phase: &'a str,
    /// Usage reported by the upstream.
    pub usage: Option<Usage>,
    /// From arrival to the last byte.
    pub latency: Duration,
}

impl Observation<'_> {
    /// Whether an upstream answer began reaching the client (a 200 from forward): one
    /// without a usage report (a stream the client left, or that broke) may have cost
    /// anything up to its cap; a request that never got this far cost nothing.
    pub fn answer_began(&self) -> bool {
        self.status == 200 && self.phase == "forward"
    }
}

/// What a govern hook asks of the choice still to be made.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Steer {
    /// Keep only the candidates that cost least for this request (by price).
    pub downgrade: bool,
    /// Compress the prompt to this share of its tokens, in (0, 1).
    pub compress: Option<f64>,
    /// Why, in a few words, for the trace (`12% of budget `b` left`).
    pub why: Option<String>,
}

impl Steer {
    /// Whether it asks for nothing.
    pub fn is_empty(&self) -> bool {
        !self.downgrade && self.compress.is_none()
    }
}

/// What the checker tells a plugin about where it runs ([`Plugin::check`]).
#[derive(Debug, Clone, Default)]
pub struct CheckContext<'a> {
    /// The routes whose requests meet the plugin (every route, for a global plugin).
    pub routes: Vec<CheckRoute<'a>>,
    /// The answer length a request without `max_tokens` is planned and priced for.
    pub expected_output_tokens: u32,
}

/// A route, as the checker shows it to a plugin.
#[derive(Debug, Clone)]
pub struct CheckRoute<'a> {
    /// Its name.
    pub name: &'a str,
    /// Its candidates: name and price (dollars per million tokens, input and output).
    pub candidates: Vec<(&'a str, Option<(f64, f64)>)>,
}

/// Something about a plugin's configuration that will not do what it seems to: a
/// rule that can never take effect, or requests it always refuses.
#[derive(Debug, Clone, PartialEq)]
pub struct Warning {
    /// What is wrong.
    pub message: String,
    /// A concrete case that shows it.
    pub witness: String,
    /// What to write instead.
    pub help: Option<String>,
}

/// Which hooks a plugin has: the gateway does the work of a hook only when some
/// plugin in the chain has it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Hooks {
    /// [`Plugin::on_govern`].
    pub govern: bool,
    /// [`Plugin::on_request`].
    pub request: bool,
    /// [`Plugin::on_response_headers`].
    pub response_headers: bool,
    /// [`Plugin::on_response`].
    pub response: bool,
    /// [`Plugin::on_response_chunk`] and [`Plugin::on_stream_end`].
    pub stream: bool,
    /// [`Plugin::on_observe`].
    pub observe: bool,
}

impl Hooks {
    /// Only the request hook.
    pub const REQUEST: Hooks = Hooks {
        govern: false,
        request: true,
        response_headers: false,
        response: false,
        stream: false,
        observe: false,
    };

    /// Hooks either set has.
    pub fn union(self, other: Hooks) -> Hooks {
        Hooks {
            govern: self.govern || other.govern,
            request: self.request || other.request,
            response_headers: self.response_headers || other.response_headers,
            response: self.response || other.response,
            stream: self.stream || other.stream,
            observe: self.observe || other.observe,
        }
    }
}

/// A plugin: hooks on the request's way up and the answer's way back. See the module
/// documentation for the order; every hook defaults to doing nothing.
pub trait Plugin: Send + Sync + std::fmt::Debug {
    /// The hooks this plugin has (default: only [`Plugin::on_request`]).
    fn hooks(&self) -> Hooks {
        Hooks::REQUEST
    }

    /// What it reads of a request besides the body (default: nothing).
    fn reads(&self) -> Reads {
        Reads::default()
    }

    /// What `switchyard check` should warn about, given the routes the plugin runs on
    /// (default: nothing).
    fn check(&self, _context: &CheckContext<'_>) -> Vec<Warning> {
        Vec::new()
    }

    /// What the request hook did to this request, in a few words, for the explain
    /// trace (its `plugins[].result` reads `continue: …`); default: nothing to add.
    fn explain(&self, _state: &State) -> Option<String> {
        None
    }

    /// govern, before a model is chosen (`info.model` is empty, `info.price` absent):
    /// may steer the choice ([`Steer`]). The state it leaves is the request hook's.
    fn on_govern(&self, _info: &RequestInfo<'_>, _state: &mut State) -> Result<Steer, PluginError> {
        Ok(Steer::default())
    }

    /// Before forward: may rewrite `upstream` or answer locally.
    fn on_request(
        &self,
        _info: &RequestInfo<'_>,
        _upstream: &mut UpstreamRequest<'_>,
        _state: &mut State,
    ) -> Result<Flow, PluginError> {
        Ok(Flow::Continue)
    }

    /// The status and headers of the client's response, before its body.
    fn on_response_headers(
        &self,
        _info: &RequestInfo<'_>,
        _status: u16,
        _headers: &mut HeaderMap,
        _state: &mut State,
    ) -> Result<(), PluginError> {
        Ok(())
    }

    /// A whole (non-streamed) 2xx answer, parsed: may rewrite it, or replace it with a
    /// local answer.
    fn on_response(
        &self,
        _info: &RequestInfo<'_>,
        _body: &mut Value,
        _state: &mut State,
    ) -> Result<Flow, PluginError> {
        Ok(Flow::Continue)
    }

    /// One event of a streamed answer (the JSON text of its `data:`), before `[DONE]`.
    /// Push what should go on into `out`: the event as it is (the default), a rewrite,
    /// several events, or nothing to hold it back (held events are released by a later
    /// call or by [`Plugin::on_stream_end`]).
    fn on_response_chunk(
        &self,
        _info: &RequestInfo<'_>,
        event: String,
        out: &mut Vec<String>,
        _state: &mut State,
    ) -> Result<ChunkFlow, PluginError> {
        out.push(event);
        Ok(ChunkFlow::Continue)
    }

    /// The stream is ending: `complete` when the upstream finished it (`[DONE]` comes
    /// next), false when it broke (a terminal error event comes next, whatever the
    /// plugin does). Events pushed into `out` go out before the end.
    fn on_stream_end(
        &self,
        _info: &RequestInfo<'_>,
        _complete: bool,
        _out: &mut Vec<String>,
        _state: &mut State,
    ) -> Result<(), PluginError> {
        Ok(())
    }

    /// The request is over (served, refused or answered locally).
    fn on_observe(&self, _info: &RequestInfo<'_>, _outcome: &Observation<'_>, _state: &mut State) {}

    /// The upstream's answer to a request this plugin answered with
    /// [`LocalAnswer::verify`], after observe, in the background.
    fn on_verify(
        &self,
        _info: &RequestInfo<'_>,
        _verification: &Verification<'_>,
        _state: &mut State,
    ) {
    }
}

/// A plugin's `models` option: the models it applies to (every model when empty).
#[derive(Debug, Clone, Default)]
pub struct ModelFilter(Vec<String>);

impl ModelFilter {
    /// Checks the names against the configured models.
    pub fn checked(names: Vec<String>, context: &Context<'_>) -> Result<ModelFilter, String> {
        if let Some(name) = names.iter().find(|m| !context.models.contains(&m.as_str())) {
            let hint = switchyard_wire::typos::suggest(name, context.models.iter().copied())
                .map(|s| format!("; did you mean `{s}`?"))
                .unwrap_or_default();
            return Err(format!("models: unknown model `{name}`{hint}"));
        }
        Ok(ModelFilter(names))
    }

    /// Whether the plugin applies to a request answered by `model`.
    pub fn applies(&self, model: &str) -> bool {
        self.0.is_empty() || self.0.iter().any(|m| m == model)
    }
}

/// Reads a plugin's options into its own configuration type; unknown keys are errors
/// naming the nearest known one.
pub fn options<T: serde::de::DeserializeOwned>(options: &Map<String, Value>) -> Result<T, String> {
    serde_json::from_value(Value::Object(options.clone())).map_err(|e| {
        let message = e.to_string();
        match switchyard_wire::typos::unknown_field(&message) {
            Some((wrong, expected)) => {
                let hint =
                    switchyard_wire::typos::suggest(&wrong, expected.iter().map(String::as_str))
                        .map(|s| format!("did you mean `{s}`?"))
                        .unwrap_or_else(|| format!("known: {}", expected.join(", ")));
                format!("unknown option `{wrong}`; {hint}")
            }
            None => message,
        }
    })
}
