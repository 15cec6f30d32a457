//! One request's life: what each phase produced, in one value that flows through them.

use crate::phase::{Phase, Refusal, Timings};
use crate::runtime::Runtime;
use http::HeaderMap;
use std::time::{Duration, Instant, SystemTime};
use switchyard_pool::{
    CannotCompress, ClientDeadline, Compression, PlaceRequest, Placement, PoolSet, Prediction,
    RetentionHint,
};
use switchyard_router::plugins::{Chain, ChainInfo, LocalAnswer, Reads, Steer};
use switchyard_wire::{ChatRequest, Conversation, Dialect};
use switchyard_workload::Signals;

/// Route name reported when the client named a model.
pub const DIRECT_ROUTE: &str = "direct";

/// What decide produced.
#[derive(Debug, Clone)]
pub struct Routed {
    /// The route taken ([`DIRECT_ROUTE`] when the client named a model).
    pub name: String,
    /// Index of the route in [`switchyard_policy::Policy::routes`] (`None` when direct).
    pub index: Option<usize>,
    /// Whether the route's condition matched (false for the default route and direct).
    pub matched: bool,
    /// How sure the decision was (`None` when direct): see `Expr::confidence`.
    pub confidence: Option<f64>,
    /// Candidate models, as indexes into the configuration's models.
    pub candidates: Vec<usize>,
}

/// What govern left of the candidates.
#[derive(Debug, Clone)]
pub struct Governed {
    /// Candidate models allowed, in the route's order.
    pub models: Vec<usize>,
    /// Pools allowed.
    pub pools: PoolSet,
    /// The constraints that covered the request.
    pub applied: Vec<String>,
    /// What plugins' govern hooks asked (by plugin name), e.g. a budget running low.
    pub steered: Vec<(String, Steer)>,
    /// The candidates before a plugin asked for the cheapest ones, when that dropped
    /// some.
    pub downgraded_from: Option<Vec<usize>>,
    /// What compression a plugin asked for did.
    pub compression: Option<Result<Compression, CannotCompress>>,
}

/// What select chose.
#[derive(Debug, Clone)]
pub struct Selected {
    /// The chosen model, as an index into the configuration's models.
    pub model: usize,
    /// The algorithm's name.
    pub algorithm: &'static str,
    /// Why that model.
    pub reason: String,
    /// What the route counts outcomes by besides route and model (a domain label),
    /// when its algorithm learns.
    pub bucket: Option<String>,
    /// Candidates passed over for a reputation alarm.
    pub demoted: Vec<String>,
    /// A cascade's steps still ahead, as indexes into the configuration's models.
    pub escalate_to: Vec<usize>,
    /// The key a sticky route remembers the session's model under.
    pub session: Option<u64>,
    /// What stickiness weighed, when the session had another model before.
    pub sticky: Option<StickyNote>,
}

/// What a sticky route weighed for a session whose last turn another model served.
#[derive(Debug, Clone, serde::Serialize)]
pub struct StickyNote {
    /// The model that served the session's last turn.
    pub incumbent: String,
    /// The route's own choice.
    pub choice: String,
    /// Whether the session stayed on the incumbent.
    pub kept: bool,
    /// Prompt tokens the new model would prefill again.
    pub recomputed_tokens: u32,
    /// Their prefill time, in milliseconds.
    pub cost_ms: f64,
    /// What switching gains, in milliseconds.
    pub gain_ms: f64,
}

/// One answered step of a cascade, and what its confidence decided.
#[derive(Debug, Clone, serde::Serialize)]
pub struct CascadeStep {
    /// The model that answered.
    pub model: String,
    /// The endpoint it ran on.
    pub endpoint: String,
    /// exp of its mean (or lowest) token logprob, when the answer carried logprobs.
    pub confidence: Option<f64>,
    /// `accepted`, `escalated`, `kept: …` (escalation was due but not possible),
    /// `unchecked: stream` (a stream the route does not buffer), `no logprobs`, or
    /// `upstream status N`.
    pub verdict: String,
    /// Its usage, when reported.
    pub prompt_tokens: u64,
    /// Tokens it generated.
    pub completion_tokens: u64,
    /// How long it took, in milliseconds.
    pub latency_ms: f64,
}

/// What place planned.
#[derive(Debug, Clone)]
pub struct Placed {
    /// Where it runs.
    pub placement: Placement,
    /// The answer length placement planned for.
    pub output: Prediction,
    /// The key the request's session is tracked under.
    pub session_key: Option<u64>,
    /// The KV-cache retention hint sent upstream, for mid-session requests.
    pub retention: Option<RetentionHint>,
    /// Compression planned: the prompt must come down to this many tokens.
    pub compress_to: Option<u32>,
    /// What compression did, when it ran.
    pub compression: Option<Result<Compression, CannotCompress>>,
    /// Placement keys without compression (the fallback when compression falls short).
    pub uncompressed: PlaceRequest,
}

/// One request, from arrival to observe.
#[derive(Debug)]
pub struct Exchange {
    /// The request id (sent upstream and to the client as `x-request-id`).
    pub request_id: String,
    /// The key of the caller's credential (`authorization` or `x-api-key`), which
    /// feedback for the answer must present again.
    pub caller: Option<u64>,
    /// Arrival.
    pub started: Instant,
    /// Arrival, wall clock.
    pub arrived: SystemTime,
    /// The client's deadline, from its `x-request-timeout-ms` header.
    pub deadline: Option<ClientDeadline>,
    /// A dry run: stops before forward.
    pub dry_run: bool,
    /// The client's API: how its answers are written.
    pub dialect: &'static dyn Dialect,
    /// The body as it will go upstream (plugins rewrite it).
    pub request: ChatRequest,
    /// The conversation view signals read.
    pub conversation: Conversation,
    /// Headers added to the upstream call by plugins.
    pub upstream_headers: HeaderMap,
    /// characterize: the signals computed.
    pub signals: Signals,
    /// decide.
    pub routed: Option<Routed>,
    /// govern.
    pub governed: Option<Governed>,
    /// select.
    pub selected: Option<Selected>,
    /// place.
    pub placed: Option<Placed>,
    /// plugins: the request's chain, with each plugin's state.
    pub plugins: Chain,
    /// plugins: an answer made without the upstream.
    pub local: Option<LocalAnswer>,
    /// Where the request stopped, when it was refused.
    pub refusal: Option<Refusal>,
    /// Time per phase.
    pub timings: Timings,
    /// Router time before the upstream call.
    pub overhead: Duration,
    /// Endpoints tried (more than 1 after a failover).
    pub attempts: u32,
    /// What a lossy translation for the upstream's API left out, by field.
    pub dropped: Vec<String>,
    /// The client streams without asking for usage: the usage-only chunk the gateway
    /// asked for is not passed on.
    pub hide_usage: bool,
    /// forward: a cascade's checked steps, in order.
    pub cascade: Vec<CascadeStep>,
    /// The conversation start's fingerprint (hashing up to 4 KiB), computed once for
    /// selection and placement.
    prefix: std::sync::OnceLock<Option<u64>>,
}

impl Exchange {
    /// A parsed request, starting its phases.
    pub fn new(
        dialect: &'static dyn Dialect,
        request_id: String,
        started: Instant,
        (request, conversation): (ChatRequest, Conversation),
    ) -> Exchange {
        Exchange {
            request_id,
            caller: None,
            started,
            arrived: SystemTime::now(),
            deadline: None,
            dry_run: false,
            dialect,
            request,
            conversation,
            upstream_headers: HeaderMap::new(),
            signals: Signals::default(),
            routed: None,
            governed: None,
            selected: None,
            placed: None,
            plugins: Chain::default(),
            local: None,
            refusal: None,
            timings: Timings::default(),
            overhead: Duration::ZERO,
            attempts: 0,
            dropped: Vec::new(),
            hide_usage: false,
            cascade: Vec::new(),
            prefix: std::sync::OnceLock::new(),
        }
    }

    /// The fingerprint of the conversation's start (system prompt and first user
    /// turn, at most 4 KiB), shared by selection and affinity placement.
    pub fn prefix(&self) -> Option<u64> {
        *self
            .prefix
            .get_or_init(|| self.conversation.prefix_fingerprint())
    }

    /// Output tokens to price the request by: the client's cap (else `expected`) for
    /// each of the answers it asked for (`n`). Placement plans per answer: each is its
    /// own sequence in the pool's context window.
    pub fn billed_output(&self, expected: u32) -> u32 {
        self.conversation
            .output_cap
            .unwrap_or(expected)
            .saturating_mul(self.conversation.answers)
    }

    /// The route's name (empty before decide).
    pub fn route_name(&self) -> &str {
        self.routed.as_ref().map_or("", |r| r.name.as_str())
    }

    /// The compiled route decide chose (none before decide, or for a request naming a
    /// model directly).
    pub fn route<'a>(&self, runtime: &'a Runtime) -> Option<&'a switchyard_policy::CompiledRoute> {
        runtime.policy.route(self.routed.as_ref()?.index?)
    }

    /// The chosen model's name (empty before select).
    pub fn model_name<'a>(&self, runtime: &'a Runtime) -> &'a str {
        self.selected
            .as_ref()
            .and_then(|s| runtime.policy.config.models.get(s.model))
            .map_or("", |m| m.name.value.as_str())
    }

    /// The chosen pool's name (empty before place).
    pub fn pool_name<'a>(&self, runtime: &'a Runtime) -> &'a str {
        self.placed
            .as_ref()
            .and_then(|p| runtime.pools.all().get(p.placement.pool))
            .map_or("", |p| p.name.as_str())
    }

    /// The chosen endpoint's name (empty before place).
    pub fn endpoint_name(&self) -> &str {
        self.placed
            .as_ref()
            .map_or("", |p| p.placement.endpoint.name.as_str())
    }

    /// The phase the answer came from: the refusing phase, `plugins` for a local
    /// answer, `forward` otherwise.
    pub fn answered_in(&self) -> Phase {
        match (&self.refusal, &self.local) {
            (Some(r), _) => r.phase,
            (None, Some(_)) => Phase::Plugins,
            (None, None) => Phase::Forward,
        }
    }

    /// What the plugin chain is told about this request, with what its plugins read.
    pub fn chain_info(&self, runtime: &Runtime, reads: &Reads) -> ChainInfo {
        let signals = &runtime.policy.signals;
        let conversation = &self.conversation;
        // The caller signals established, else established now.
        let identity = match (&self.signals.identity, reads.caller) {
            (_, false) => None,
            (Some(identity), true) => Some(identity.clone()),
            (None, true) => Some(signals.identity(conversation)),
        };
        let mut info = ChainInfo {
            request_id: self.request_id.clone(),
            route: self.route_name().to_owned(),
            model: String::new(),
            family: None,
            stream: conversation.stream,
            dry_run: self.dry_run,
            embedding: reads
                .embedding
                .and_then(|wait| self.embedding(runtime, wait)),
            caller: identity.as_ref().and_then(|i| i.subject.clone()),
            roles: identity.map(|i| i.roles).unwrap_or_default(),
            headers: reads
                .headers
                .iter()
                .filter_map(|name| {
                    let value = conversation.attribute(&format!("header:{name}"))?;
                    Some((name.clone(), value.to_owned()))
                })
                .collect(),
            embedder: reads.embedder.then(|| signals.workers()).flatten(),
            prompt_tokens: 0,
            output_tokens: 0,
            price: None,
        };
        self.chain_selected(runtime, &mut info);
        info
    }

    /// What select and govern changed of the chain's view: the chosen model (none
    /// yet in the govern phase), its price, and the tokens the request is planned for.
    pub fn chain_selected(&self, runtime: &Runtime, info: &mut ChainInfo) {
        let model = self
            .selected
            .as_ref()
            .and_then(|s| runtime.policy.config.models.get(s.model));
        info.model = model.map_or_else(String::new, |m| m.name.value.clone());
        info.family = model.and_then(|m| m.family);
        info.price = model.and_then(|m| m.price).map(|p| (p.input, p.output));
        info.prompt_tokens = u64::from(self.conversation.prompt_tokens);
        info.output_tokens =
            u64::from(self.billed_output(runtime.policy.config.server.expected_output_tokens));
    }

    /// The embedding of the last user turn: the one signals computed, else computed
    /// now (off the async workers), waiting `wait` at most. A failure is counted and
    /// leaves the request without one.
    pub fn embedding(&self, runtime: &Runtime, wait: Duration) -> Option<std::sync::Arc<[f32]>> {
        if let Some(vector) = &self.signals.vector {
            return Some(vector.clone());
        }
        let signals = &runtime.policy.signals;
        let deadline = Instant::now() + wait;
        let computed = crate::pipeline::off_the_async_workers(|| {
            signals.embed_last_user(&self.conversation, Some(deadline))
        });
        match computed {
            Ok(vector) => Some(vector),
            Err(error) => {
                // Under overload this fails for many requests: counted, logged quietly.
                tracing::debug!(request_id = %self.request_id, %error, "no embedding for plugins");
                metrics::counter!("switchyard_plugin_embedding_failures_total").increment(1);
                None
            }
        }
    }
}
