//! Everything a running gateway needs, built once from a checked policy.

use crate::decision_log::DecisionLog;
use crate::metrics::RequestMetrics;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use switchyard_policy::Policy;
use switchyard_policy::config::{StateBackend, StateConfig};
use switchyard_policy::{AlgorithmConfig, ConfigError, LearnedConfig};
use switchyard_pool::{ForwardError, OutputPredictor, Pools, PoolsError, SessionClock, Upstream};
use switchyard_router::plugins::{Build, Plugins};
use switchyard_router::shadow::ShadowBook;
use switchyard_router::sticky::SessionModels;

/// What a reload keeps of the runtime it replaces: what was learned of outcomes,
/// sessions' models and shadow tallies.
struct Kept {
    outcomes: Arc<Outcomes>,
    session_models: Arc<SessionModels>,
    shadows: Arc<ShadowBook>,
}
use switchyard_router::{ModelLatency, Outcomes};
use switchyard_state::{InProcess, Limits, RemoteOptions, RemoteState, SharedState, SystemClock};
use switchyard_wire::Conversation;
use switchyard_workload::TokenCounter;

/// The runtime: policy, pools, upstream client and log.
#[derive(Debug)]
pub struct Runtime {
    /// The compiled policy (and the configuration it came from).
    pub policy: Policy,
    /// Pools and endpoints with live state.
    pub pools: Pools,
    /// The upstream client.
    pub upstream: Upstream,
    /// The decision log, when configured.
    pub log: Option<DecisionLog>,
    /// Answer lengths learned per route and model.
    pub predictor: OutputPredictor,
    /// Gaps between the turns of sessions, for retention hints.
    pub sessions: SessionClock,
    /// Counts prompt tokens.
    pub counter: TokenCounter,
    /// Latencies observed per model (indexed like the configured models), for
    /// selection by latency.
    pub latency: Vec<ModelLatency>,
    /// The configured plugins, built.
    pub plugins: Plugins,
    /// Handles of per-request metrics.
    pub metrics: RequestMetrics,
    /// The request headers signals and plugins read (lower-case, each once): ingress
    /// keeps them.
    pub read_headers: Vec<String>,
    /// What several requests share (a caller's reputation): kept across reloads.
    pub state: Arc<dyn SharedState>,
    /// Answers remembered for feedback, and what the learning algorithms learned:
    /// kept across reloads.
    pub outcomes: Arc<Outcomes>,
    /// The model that served each session's last turn, for sticky routes (kept across
    /// reloads).
    pub session_models: Arc<SessionModels>,
    /// Shadow evaluation's tallies and gates (kept across reloads).
    pub shadows: Arc<ShadowBook>,
    /// Plugin types beyond the built-in registry (kept for reloads).
    plugin_types: &'static [(&'static str, Build)],
    id_prefix: u32,
    next_id: AtomicU64,
}

/// The runtime could not be built.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    /// A pool could not be built.
    #[error(transparent)]
    Pools(#[from] PoolsError),
    /// The upstream client could not be built.
    #[error(transparent)]
    Upstream(#[from] ForwardError),
    /// The tokenizer could not be loaded.
    #[error("{0} (server.tokenizer; scripts/fetch-model.sh installs the default model's)")]
    Tokenizer(String),
    /// A reload's TEST cases failed (`server.reload_runs_tests`).
    #[error("{} of the new policy's test cases failed; first:\n{}", failed.len(), failed.first().map(ToString::to_string).unwrap_or_default())]
    Tests {
        /// The failed cases.
        failed: Vec<crate::policy_tests::CaseFailure>,
    },
    /// A plugin definition is wrong.
    #[error("{0}")]
    Plugins(ConfigError),
    /// The embedding model a plugin reads could not be loaded.
    #[error("{0}")]
    Model(String),
    /// The shared state's server could not be set up.
    #[error("state: {0}")]
    State(String),
    /// The decision log could not be opened.
    #[error("cannot open the decision log {path}: {reason}")]
    Log {
        /// The path.
        path: String,
        /// Why.
        reason: String,
    },
}

impl Runtime {
    /// Builds the runtime of a checked policy. Must run inside a Tokio runtime when a
    /// decision log is configured (its writer is a task).
    pub fn new(policy: Policy) -> Result<Runtime, RuntimeError> {
        Runtime::build(policy, None, None, None, &[])
    }

    /// Like [`Runtime::new`], with plugin types of the embedding program's own beside
    /// the built-in ones.
    pub fn with_plugin_types(
        policy: Policy,
        types: &'static [(&'static str, Build)],
    ) -> Result<Runtime, RuntimeError> {
        Runtime::build(policy, None, None, None, types)
    }

    /// The runtime of a new policy replacing this one: built afresh (pools, learned
    /// state), except that the decision log is kept when its path is the same, so one
    /// writer appends to the file, and the shared state (reputations, budgets) is kept
    /// while its configuration is the same. What was learned of outcomes is kept (by
    /// route and model name).
    pub fn reloaded(&self, policy: Policy) -> Result<Runtime, RuntimeError> {
        let same_log = policy.config.server.decision_log == self.policy.config.server.decision_log;
        let same_state = policy.config.state == self.policy.config.state;
        Runtime::build(
            policy,
            self.log.clone().filter(|_| same_log),
            Some(Arc::clone(&self.state)).filter(|_| same_state),
            Some(Kept {
                outcomes: Arc::clone(&self.outcomes),
                session_models: Arc::clone(&self.session_models),
                shadows: Arc::clone(&self.shadows),
            }),
            self.plugin_types,
        )
    }

    fn build(
        mut policy: Policy,
        log: Option<DecisionLog>,
        state: Option<Arc<dyn SharedState>>,
        kept: Option<Kept>,
        plugin_types: &'static [(&'static str, Build)],
    ) -> Result<Runtime, RuntimeError> {
        let (outcomes, session_models, shadows) = match kept {
            Some(k) => (Some(k.outcomes), Some(k.session_models), Some(k.shadows)),
            None => (None, None, None),
        };
        let state = match state {
            Some(state) => state,
            None => shared_state(&policy.config.state).map_err(RuntimeError::State)?,
        };
        policy.signals.set_state(Arc::clone(&state));
        let plugins =
            Plugins::build(&policy, plugin_types, &state).map_err(RuntimeError::Plugins)?;
        let learned: Vec<(String, LearnedConfig)> = policy
            .routes()
            .iter()
            .filter_map(|r| match &r.algorithm {
                AlgorithmConfig::Learned(l) => Some((r.name.clone(), l.clone())),
                _ => None,
            })
            .collect();
        if plugins.reads_embedding() || !learned.is_empty() {
            policy
                .signals
                .load_model(&policy.config.signals)
                .map_err(|e| RuntimeError::Model(e.to_string()))?;
        }
        if let Some(embedder) = policy.signals.embedder() {
            for (route, l) in &learned {
                if let Some(file) = &l.file {
                    file.check_embedder(
                        embedder.name(),
                        embedder.dimension(),
                        embedder.precision().name(),
                        embedder.max_tokens(),
                    )
                    .map_err(|e| RuntimeError::Model(format!("route `{route}`: {e}")))?;
                }
            }
        }
        let pools = Pools::build(&policy.config)?;
        let counter = match &policy.config.server.tokenizer {
            Some(path) => TokenCounter::from_file(path).map_err(RuntimeError::Tokenizer)?,
            None => TokenCounter::Estimate,
        };
        let upstream = Upstream::new(policy.config.upstream)?;
        let log = match (&policy.config.server.decision_log, log) {
            (Some(_), Some(kept)) => Some(kept),
            (Some(path), None) => Some(DecisionLog::open(path).map_err(|e| RuntimeError::Log {
                path: path.display().to_string(),
                reason: e.to_string(),
            })?),
            (None, _) => None,
        };
        let id_prefix = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos() ^ (d.as_secs() as u32))
            ^ std::process::id().rotate_left(16);
        let server = &policy.config.server;
        let predictor = OutputPredictor::new(
            server.output_percentile,
            server.output_regression_after,
            server.expected_output_tokens,
        );
        let latency = policy
            .config
            .models
            .iter()
            .map(|_| ModelLatency::default())
            .collect();
        let model_names: Vec<&str> = policy
            .config
            .models
            .iter()
            .map(|m| m.name.value.as_str())
            .collect();
        let metrics = RequestMetrics::new(&policy.signals, &model_names);
        let mut read_headers: Vec<String> = policy
            .signals
            .header_names()
            .iter()
            .chain(plugins.header_names())
            .cloned()
            .collect();
        read_headers.sort();
        read_headers.dedup();
        let outcomes = match outcomes {
            Some(kept) => {
                kept.configure(&policy.config.outcomes);
                kept
            }
            None => {
                let fresh = Arc::new(Outcomes::new(&policy.config.outcomes));
                // A fresh start (not a reload) learns again what the log recorded.
                if let Some(path) = &policy.config.server.decision_log {
                    match crate::replay::replay(&fresh, &policy, path) {
                        Ok(counts) if counts.answers + counts.games > 0 => tracing::info!(
                            answers = counts.answers,
                            rescored = counts.rescored,
                            games = counts.games,
                            "outcomes replayed from the decision log"
                        ),
                        Ok(_) => {}
                        Err(error) => tracing::warn!(
                            path = %path.display(),
                            %error,
                            "the decision log could not be replayed; outcomes start empty"
                        ),
                    }
                }
                fresh
            }
        };
        Ok(Runtime {
            outcomes,
            session_models: session_models.unwrap_or_default(),
            shadows: shadows.unwrap_or_default(),
            read_headers,
            latency,
            predictor,
            // Sessions whose turns go to several replicas keep one record when the
            // state is shared.
            sessions: if state.remote() {
                SessionClock::shared(Arc::clone(&state))
            } else {
                SessionClock::default()
            },
            counter,
            policy,
            pools,
            upstream,
            log,
            plugins,
            metrics,
            state,
            plugin_types,
            id_prefix,
            next_id: AtomicU64::new(0),
        })
    }

    /// Recounts a conversation's prompt with the configured tokenizer, if there is one.
    pub fn count(&self, conversation: &mut Conversation) {
        if self.counter.is_exact() {
            conversation.prompt_tokens = self.counter.count_conversation(conversation);
        }
    }

    /// A new request id, unique within this process and unlikely to repeat across processes.
    pub fn request_id(&self) -> String {
        let n = self.next_id.fetch_add(1, Ordering::Relaxed);
        format!("sy-{:08x}-{n}", self.id_prefix)
    }
}

/// The shared state a configuration asks for. A server is not contacted here: one that
/// is down at start is unavailable until it comes up.
fn shared_state(config: &StateConfig) -> Result<Arc<dyn SharedState>, String> {
    let backend = match config.backend {
        StateBackend::InProcess => {
            return Ok(Arc::new(InProcess::new(
                Arc::new(SystemClock::new()),
                Limits::default(),
            )));
        }
        remote => remote.name(),
    };
    let url = config.url.as_deref().ok_or("a url is required")?;
    let mut options = RemoteOptions::new(url);
    options.backend = backend;
    options.prefix.clone_from(&config.prefix);
    options.timeout = std::time::Duration::from_millis(config.timeout_ms);
    options.pause = std::time::Duration::from_millis(config.pause_ms);
    options.pool_size = config.pool_size;
    Ok(Arc::new(RemoteState::new(options)?))
}
