//! Building plugins from the configuration, and running one request's chain: in
//! order, each hook under the plugin's `on_error` rule, panics caught.

use super::{
    Build, CheckContext, CheckRoute, ChunkFlow, Context, Flow, Hooks, Observation, Plugin,
    PluginError, REGISTRY, Reads, RequestInfo, State, Steer, UpstreamRequest, Verification,
};
use http::HeaderMap;
use serde::Serialize;
use serde_json::Value;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use switchyard_policy::{ConfigError, Diagnostic, ModelFamily, PluginOnError, Policy};
use switchyard_state::SharedState;

/// One configured plugin.
#[derive(Debug)]
struct Entry {
    name: String,
    kind: String,
    on_error: PluginOnError,
    plugin: Box<dyn Plugin>,
    hooks: Hooks,
    reads: Reads,
}

/// Every plugin of a configuration, built and checked, indexed like
/// [`Config::plugins`].
#[derive(Debug, Default)]
pub struct Plugins {
    entries: Vec<Arc<Entry>>,
    /// The client headers any plugin reads.
    headers: Vec<String>,
}

impl Plugins {
    /// Builds the plugins of a policy's configuration from the [`REGISTRY`] and
    /// `extra` types (an embedding program's own). Unknown types and bad options are
    /// errors at the definition, with a suggestion.
    /// `state` is what plugins that count across requests keep their counts in.
    pub fn build(
        policy: &Policy,
        extra: &[(&str, Build)],
        state: &Arc<dyn SharedState>,
    ) -> Result<Plugins, ConfigError> {
        let config = &policy.config;
        let types: Vec<&(&str, Build)> = REGISTRY.iter().chain(extra).collect();
        let models: Vec<&str> = config
            .models
            .iter()
            .map(|m| m.name.value.as_str())
            .collect();
        let prices: Vec<Option<(f64, f64)>> = config
            .models
            .iter()
            .map(|m| m.price.map(|p| (p.input, p.output)))
            .collect();
        let shared = Context {
            models: &models,
            embedding_model: config.signals.model.is_some(),
            identity: policy.signals.identifies(),
            name: "",
            prices: &prices,
            state: Some(state),
        };
        let mut found = Vec::new();
        let mut entries = Vec::new();
        for (i, p) in config.plugins.iter().enumerate() {
            let path = format!("plugins[{i}]");
            let Some((_, build)) = types.iter().find(|(name, _)| *name == p.kind) else {
                found.push(
                    Diagnostic::error(
                        &p.at,
                        format!("{path}.type"),
                        format!("unknown plugin type `{}`", p.kind),
                    )
                    .suggesting(&p.kind, types.iter().map(|(name, _)| *name)),
                );
                continue;
            };
            let context = Context {
                name: &p.name,
                ..shared
            };
            match build(&p.options, &context) {
                Ok(plugin) => entries.push(Arc::new(Entry {
                    name: p.name.clone(),
                    kind: p.kind.clone(),
                    on_error: p.on_error,
                    hooks: plugin.hooks(),
                    reads: plugin.reads(),
                    plugin,
                })),
                Err(reason) => found.push(Diagnostic::error(
                    &p.at,
                    path,
                    format!("plugin `{}` ({}): {reason}", p.name, p.kind),
                )),
            }
        }
        if !found.is_empty() {
            if let Some(map) = &config.source {
                found
                    .iter_mut()
                    .for_each(|d| switchyard_policy::dsl::relocate(map, d));
            }
            return Err(ConfigError { diagnostics: found });
        }
        let headers = entries
            .iter()
            .fold(Reads::default(), |all, e| all.union(&e.reads))
            .headers;
        Ok(Plugins { entries, headers })
    }

    /// What the checker finds in each plugin's configuration, given the routes it runs
    /// on (its own routes, or every route for a global plugin): warnings at the
    /// plugin's definition, each with a witness.
    pub fn warnings(&self, policy: &Policy) -> Vec<Diagnostic> {
        let config = &policy.config;
        let model = |m: usize| {
            config
                .models
                .get(m)
                .map(|c| (c.name.value.as_str(), c.price.map(|p| (p.input, p.output))))
        };
        let mut found = Vec::new();
        for (i, entry) in self.entries.iter().enumerate() {
            let Some(definition) = config.plugins.get(i) else {
                continue;
            };
            let global = policy.global_plugins.contains(&i);
            let routes = policy
                .routes()
                .iter()
                .filter(|r| global || r.plugins.contains(&i))
                .map(|r| CheckRoute {
                    name: &r.name,
                    candidates: r.candidates.iter().filter_map(|&m| model(m)).collect(),
                })
                .collect();
            let context = CheckContext {
                routes,
                expected_output_tokens: config.server.expected_output_tokens,
            };
            for w in entry.plugin.check(&context) {
                let mut d = Diagnostic::warning(
                    &definition.at,
                    format!("plugins[{i}]"),
                    format!(
                        "plugin `{}` ({}): {}; e.g. {}",
                        entry.name, entry.kind, w.message, w.witness
                    ),
                );
                if let Some(help) = w.help {
                    d = d.with_help(help);
                }
                found.push(d);
            }
        }
        if let Some(map) = &config.source {
            found
                .iter_mut()
                .for_each(|d| switchyard_policy::dsl::relocate(map, d));
        }
        found
    }

    /// Whether some plugin reads the request's embedding: the runtime then loads the
    /// embedding model even when no signal needs it.
    pub fn reads_embedding(&self) -> bool {
        self.entries
            .iter()
            .any(|e| e.reads.embedding.is_some() || e.reads.embedder)
    }

    /// The client headers some plugin reads (lower-case names): ingress keeps them.
    pub fn header_names(&self) -> &[String] {
        &self.headers
    }

    /// The chain of one request: `global`, then `route` (indexes into
    /// [`switchyard_policy::Config::plugins`]), told about the request by `info`,
    /// which is given what the chain's plugins read. Allocates nothing, and calls
    /// `info` not, when both are empty.
    pub fn chain(
        &self,
        global: &[usize],
        route: &[usize],
        info: impl FnOnce(&Reads) -> ChainInfo,
    ) -> Chain {
        if global.is_empty() && route.is_empty() {
            return Chain::default();
        }
        let entries: Vec<&Arc<Entry>> = global
            .iter()
            .chain(route)
            .filter_map(|&i| self.entries.get(i))
            .collect();
        let reads = entries
            .iter()
            .fold(Reads::default(), |all, e| all.union(&e.reads));
        let links = entries
            .into_iter()
            .map(|entry| Link {
                entry: Arc::clone(entry),
                state: None,
                run: PluginRun {
                    name: entry.name.clone(),
                    kind: entry.kind.clone(),
                    result: None,
                },
            })
            .collect();
        Chain {
            links,
            info: info(&reads),
            answered: None,
        }
    }
}

/// A hook failed under `on_error: fail`: the request fails naming the plugin.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("plugin `{plugin}` failed in {hook}: {message}")]
pub struct PluginFailure {
    /// The plugin's name.
    pub plugin: String,
    /// The hook.
    pub hook: &'static str,
    /// What went wrong.
    pub message: String,
}

/// What one plugin did to a request, for the explain trace.
#[derive(Debug, Clone, Serialize)]
pub struct PluginRun {
    /// Its name.
    pub name: String,
    /// Its type.
    #[serde(rename = "type")]
    pub kind: String,
    /// What its request hook decided: `continue`, `answered`, `skipped: …`, `failed: …`
    /// (absent when it has no request hook or was not reached).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub result: Option<String>,
}

#[derive(Debug)]
struct Link {
    entry: Arc<Entry>,
    state: State,
    run: PluginRun,
}

/// Events a stream hook lets through, and whether the stream must end now.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct ChunkResult {
    /// Event data to send, in order.
    pub events: Vec<String>,
    /// End the stream with a terminal error event carrying this message.
    pub end: Option<String>,
}

/// What a chain tells its plugins about the request, owned by the chain (a stream's
/// hooks run after the handler that built it has returned).
#[derive(Debug, Clone, Default)]
pub struct ChainInfo {
    /// The request id.
    pub request_id: String,
    /// The route taken.
    pub route: String,
    /// The chosen model, as configured.
    pub model: String,
    /// The chosen model's family.
    pub family: Option<ModelFamily>,
    /// Whether the client asked for a stream.
    pub stream: bool,
    /// A dry run.
    pub dry_run: bool,
    /// The embedding of the last user turn ([`Reads::embedding`]).
    pub embedding: Option<Arc<[f32]>>,
    /// The verified caller ([`Reads::caller`]).
    pub caller: Option<String>,
    /// The caller's roles ([`Reads::caller`]).
    pub roles: Vec<String>,
    /// The client headers read ([`Reads::headers`]).
    pub headers: Vec<(String, String)>,
    /// The embedding model's workers ([`Reads::embedder`]).
    pub embedder: Option<switchyard_workload::worker::EmbedWorkers>,
    /// The prompt's tokens.
    pub prompt_tokens: u64,
    /// The output tokens planned for.
    pub output_tokens: u64,
    /// The chosen model's price (input, output), dollars per million tokens.
    pub price: Option<(f64, f64)>,
}

impl ChainInfo {
    /// As the hooks see it.
    pub fn view(&self) -> RequestInfo<'_> {
        RequestInfo {
            request_id: &self.request_id,
            route: &self.route,
            model: &self.model,
            family: self.family,
            stream: self.stream,
            dry_run: self.dry_run,
            embedding: self.embedding.as_deref(),
            caller: self.caller.as_deref(),
            roles: &self.roles,
            headers: &self.headers,
            embedder: self.embedder.as_ref(),
            prompt_tokens: self.prompt_tokens,
            output_tokens: self.output_tokens,
            price: self.price,
        }
    }
}

/// One request's plugins, in order, with their per-request state.
#[derive(Debug, Default)]
pub struct Chain {
    links: Vec<Link>,
    info: ChainInfo,
    /// The link whose request hook answered locally.
    answered: Option<usize>,
}

/// Runs one hook, turning a panic into an error.
fn guarded<T>(hook: impl FnOnce() -> Result<T, PluginError>) -> Result<T, String> {
    match catch_unwind(AssertUnwindSafe(hook)) {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(e)) => Err(e.0),
        Err(panic) => Err(panic
            .downcast_ref::<&str>()
            .map(|s| format!("panicked: {s}"))
            .or_else(|| {
                panic
                    .downcast_ref::<String>()
                    .map(|s| format!("panicked: {s}"))
            })
            .unwrap_or_else(|| "panicked".to_owned())),
    }
}

impl Chain {
    /// Whether the chain has no plugin.
    pub fn is_empty(&self) -> bool {
        self.links.is_empty()
    }

    /// The hooks some plugin of the chain has.
    pub fn hooks(&self) -> Hooks {
        self.links
            .iter()
            .fold(Hooks::default(), |all, l| all.union(l.entry.hooks))
    }

    /// Whether a plugin of the chain embeds texts itself ([`Reads::embedder`]): its
    /// answer hooks may run the model.
    pub fn embeds(&self) -> bool {
        self.info.embedder.is_some()
    }

    /// Whether a plugin of the chain keeps shared state ([`Reads::state`]): its
    /// request and observe hooks may wait on the state's server.
    pub fn keeps_state(&self) -> bool {
        self.links.iter().any(|l| l.entry.reads.state)
    }

    /// What each plugin did, in order.
    pub fn runs(&self) -> impl Iterator<Item = &PluginRun> {
        self.links.iter().map(|l| &l.run)
    }

    /// What the hooks are told about the request: the gateway fills in the chosen
    /// model once select has run.
    pub fn info_mut(&mut self) -> &mut ChainInfo {
        &mut self.info
    }

    /// Govern hooks, in order: what each asked, by plugin name (only those that asked
    /// something), and all of it merged (a downgrade if any asks; the smallest share
    /// to compress to).
    pub fn on_govern(&mut self) -> Result<(Steer, Vec<(String, Steer)>), PluginFailure> {
        let info = self.info.view();
        let mut all = Steer::default();
        let mut each = Vec::new();
        for link in self.links.iter_mut().filter(|l| l.entry.hooks.govern) {
            let (plugin, state) = (&link.entry.plugin, &mut link.state);
            match guarded(|| plugin.on_govern(&info, state)) {
                Ok(steer) if steer.is_empty() => {}
                Ok(steer) => {
                    all.downgrade |= steer.downgrade;
                    all.compress = match (all.compress, steer.compress) {
                        (Some(a), Some(b)) => Some(a.min(b)),
                        (a, b) => a.or(b),
                    };
                    each.push((link.run.name.clone(), steer));
                }
                Err(message) => fail(link, "on_govern", message)?,
            }
        }
        Ok((all, each))
    }

    /// Request hooks, in order, until one answers locally.
    pub fn on_request(
        &mut self,
        upstream: &mut UpstreamRequest<'_>,
    ) -> Result<Flow, PluginFailure> {
        let info = self.info.view();
        for (i, link) in self.links.iter_mut().enumerate() {
            if !link.entry.hooks.request {
                continue;
            }
            let (plugin, state) = (&link.entry.plugin, &mut link.state);
            match guarded(|| plugin.on_request(&info, upstream, state)) {
                Ok(Flow::Continue) => {
                    link.run.result = Some(match plugin.explain(state) {
                        Some(note) => format!("continue: {note}"),
                        None => "continue".to_owned(),
                    });
                }
                Ok(answer @ Flow::Answer(_)) => {
                    link.run.result = Some("answered".to_owned());
                    self.answered = Some(i);
                    return Ok(answer);
                }
                Err(message) => fail(link, "on_request", message)?,
            }
        }
        Ok(Flow::Continue)
    }

    /// Response-header hooks, in order.
    pub fn on_response_headers(
        &mut self,
        status: u16,
        headers: &mut HeaderMap,
    ) -> Result<(), PluginFailure> {
        let info = self.info.view();
        for link in self
            .links
            .iter_mut()
            .filter(|l| l.entry.hooks.response_headers)
        {
            let (plugin, state) = (&link.entry.plugin, &mut link.state);
            if let Err(message) =
                guarded(|| plugin.on_response_headers(&info, status, headers, state))
            {
                fail(link, "on_response_headers", message)?;
            }
        }
        Ok(())
    }

    /// Whole-answer hooks, in order, until one replaces the answer.
    pub fn on_response(&mut self, body: &mut Value) -> Result<Flow, PluginFailure> {
        let info = self.info.view();
        for link in self.links.iter_mut().filter(|l| l.entry.hooks.response) {
            let (plugin, state) = (&link.entry.plugin, &mut link.state);
            match guarded(|| plugin.on_response(&info, body, state)) {
                Ok(Flow::Continue) => {}
                Ok(answer @ Flow::Answer(_)) => return Ok(answer),
                Err(message) => fail(link, "on_response", message)?,
            }
        }
        Ok(Flow::Continue)
    }

    /// One streamed event through every stream hook from the first.
    pub fn on_chunk(&mut self, event: String) -> ChunkResult {
        pass_through(&mut self.links, &self.info.view(), vec![event])
    }

    /// The stream is ending: each plugin may release what it holds (which then passes
    /// the later plugins' chunk hooks).
    pub fn on_stream_end(&mut self, complete: bool) -> ChunkResult {
        let info = self.info.view();
        let links = &mut self.links;
        let mut result = ChunkResult::default();
        for i in 0..links.len() {
            let Some(link) = links.get_mut(i).filter(|l| l.entry.hooks.stream) else {
                continue;
            };
            let mut out = Vec::new();
            let (plugin, state) = (&link.entry.plugin, &mut link.state);
            if let Err(message) = guarded(|| plugin.on_stream_end(&info, complete, &mut out, state))
                && let Err(failure) = fail(link, "on_stream_end", message)
            {
                result.end.get_or_insert_with(|| failure.to_string());
                continue;
            }
            let passed = pass_through(&mut links[i + 1..], &info, out);
            result.events.extend(passed.events);
            if result.end.is_none() {
                result.end = passed.end;
            }
        }
        result
    }

    /// Observe hooks, in order. A failure here is logged; the request is over.
    pub fn on_observe(&mut self, outcome: &Observation<'_>) {
        let info = self.info.view();
        for link in self.links.iter_mut().filter(|l| l.entry.hooks.observe) {
            let (plugin, state) = (&link.entry.plugin, &mut link.state);
            if let Err(message) = guarded(|| {
                plugin.on_observe(&info, outcome, state);
                Ok(())
            }) {
                tracing::warn!(plugin = %link.run.name, %message, "plugin failed in on_observe");
            }
        }
    }

    /// The upstream's answer to a request answered locally with `verify`, to the
    /// plugin that answered. A failure here is logged.
    pub fn on_verify(&mut self, verification: &Verification<'_>) {
        let info = self.info.view();
        let Some(link) = self.answered.and_then(|i| self.links.get_mut(i)) else {
            return;
        };
        let (plugin, state) = (&link.entry.plugin, &mut link.state);
        if let Err(message) = guarded(|| {
            plugin.on_verify(&info, verification, state);
            Ok(())
        }) {
            tracing::warn!(plugin = %link.run.name, %message, "plugin failed in on_verify");
        }
    }
}

/// Events through the stream hooks of `links`, in order.
fn pass_through(
    links: &mut [Link],
    info: &RequestInfo<'_>,
    mut events: Vec<String>,
) -> ChunkResult {
    for link in links.iter_mut().filter(|l| l.entry.hooks.stream) {
        let mut next = Vec::with_capacity(events.len());
        for event in events {
            let (plugin, state) = (&link.entry.plugin, &mut link.state);
            // Only a plugin that is skipped on failure needs the event back.
            let kept = (link.entry.on_error == PluginOnError::Skip).then(|| event.clone());
            match guarded(|| plugin.on_response_chunk(info, event, &mut next, state)) {
                Ok(ChunkFlow::Continue) => {}
                Ok(ChunkFlow::End(message)) => {
                    return ChunkResult {
                        events: next,
                        end: Some(format!(
                            "plugin `{}` ended the stream: {message}",
                            link.run.name
                        )),
                    };
                }
                Err(message) => match fail(link, "on_response_chunk", message) {
                    Ok(()) => next.extend(kept),
                    Err(failure) => {
                        return ChunkResult {
                            events: next,
                            end: Some(failure.to_string()),
                        };
                    }
                },
            }
        }
        events = next;
    }
    ChunkResult { events, end: None }
}

/// A hook failed: skipped under `on_error: skip` (the trace says so), an error under
/// `fail`.
fn fail(link: &mut Link, hook: &'static str, message: String) -> Result<(), PluginFailure> {
    tracing::warn!(plugin = %link.run.name, hook, %message, "plugin hook failed");
    metrics::counter!("switchyard_plugin_errors_total", "plugin" => link.run.name.clone(), "hook" => hook)
        .increment(1);
    match link.entry.on_error {
        PluginOnError::Skip => {
            link.run.result = Some(format!("skipped: {hook}: {message}"));
            Ok(())
        }
        PluginOnError::Fail => {
            link.run.result = Some(format!("failed: {hook}: {message}"));
            Err(PluginFailure {
                plugin: link.run.name.clone(),
                hook,
                message,
            })
        }
    }
}
