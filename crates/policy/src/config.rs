//! The configuration schema. Each field's doc comment is its documentation; each has
//! a default unless it is required, and is validated in [`crate::compile`].

use crate::condition::Condition;
use serde::Deserialize;
use serde_saphyr::{Location, Spanned};
use std::path::PathBuf;
use switchyard_fleet::GpuKind;
use switchyard_workload::{SignalsConfig, TokenCount};

/// A whole Switchyard configuration file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// The HTTP server.
    #[serde(default)]
    pub server: ServerConfig,
    /// Timeouts and retries for calls to upstream endpoints.
    #[serde(default)]
    pub upstream: UpstreamConfig,
    /// Where what several requests (and replicas) must agree on is kept: caller
    /// reputations, budgets and rate-limit counters.
    #[serde(default)]
    pub state: StateConfig,
    /// When endpoints are taken out of rotation and brought back.
    #[serde(default)]
    pub health: HealthConfig,
    /// KV-cache retention hints sent with mid-session requests.
    #[serde(default)]
    pub retention: RetentionConfig,
    /// What answers are remembered for feedback (`POST /v1/feedback`) and how outcomes
    /// are scored for the selection algorithms that learn (`docs/learning.md`).
    #[serde(default)]
    pub outcomes: OutcomesConfig,
    /// The models clients may name or be routed to.
    pub models: Vec<ModelConfig>,
    /// The pools of endpoints that serve the models.
    pub pools: Vec<PoolConfig>,
    /// Signal definitions, by family.
    #[serde(default)]
    pub signals: SignalsConfig,
    /// How a route is chosen among those that match.
    #[serde(default)]
    pub decision: DecisionConfig,
    /// Routes, tried by priority (highest first, then by name).
    #[serde(default)]
    pub routes: Vec<RouteConfig>,
    /// Where requests go when no route matches (absent: such requests get a 422 `no_route`).
    #[serde(default)]
    pub default_route: Option<DefaultRouteConfig>,
    /// Named policies: each has its own routes (those naming it in `recipe`), default
    /// route and strategy, and is picked by requests naming one of its aliases as the
    /// model. Routes without a recipe, and `default_route`, serve `server.route_aliases`.
    #[serde(default)]
    pub recipes: Vec<RecipeConfig>,
    /// Governance rules: which models and pools requests may reach, and what they
    /// may cost, enforced at decision time and checked against the routes.
    #[serde(default)]
    pub constraints: Vec<ConstraintConfig>,
    /// Prompts and the routes they must take (`switchyard check --run-tests`).
    #[serde(default)]
    pub tests: Vec<TestConfig>,
    /// Plugin definitions: `{name, type, on_error, global, ...options}`. Global ones
    /// run on every request; others on the routes that list them (`docs/plugins.md`).
    #[serde(default)]
    pub plugins: Vec<crate::plugins::PluginConfig>,
    /// Where the YAML this was read from came from, when it was made from DSL text:
    /// diagnostics are moved back to the DSL lines.
    #[serde(skip)]
    pub source: Option<crate::dsl::SourceMap>,
}

/// A governance rule. It applies to requests whose route is among `routes` (all
/// requests, client-named models included, when `routes` is empty) and for which
/// `when` holds (always, when absent); such requests may only be answered by models
/// tagged as `models` says, placed on pools tagged as `pools` says, and by candidates
/// whose estimated cost stays at or under `max_cost`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConstraintConfig {
    /// Its name (reported when it refuses a request).
    pub name: Spanned<String>,
    /// What it is for.
    #[serde(default)]
    pub description: Option<String>,
    /// The requests it covers, over signals (default: every request).
    #[serde(default)]
    pub when: Option<Condition>,
    /// The routes it covers, by name (default: every route and client-named models).
    #[serde(default)]
    pub routes: Vec<Spanned<String>>,
    /// Only models carrying one of these tags may answer.
    #[serde(default)]
    pub models: Option<TagRule>,
    /// Only pools carrying one of these tags may serve.
    #[serde(default)]
    pub pools: Option<TagRule>,
    /// Largest estimated cost of one request in dollars (its prompt, plus `max_tokens`
    /// or the expected answer); costlier candidates are passed over.
    #[serde(default)]
    pub max_cost: Option<f64>,
}

/// Which tagged models or pools are allowed: any carrying one of `tags`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TagRule {
    /// The tags (at least one).
    pub tags: Vec<String>,
}

/// A named set of prompts and the routes they must take.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TestConfig {
    /// Its name.
    pub name: Spanned<String>,
    /// The cases.
    pub cases: Vec<TestCaseConfig>,
}

/// One prompt and the route it must take.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TestCaseConfig {
    /// The user's message.
    pub prompt: String,
    /// The route expected (a route's name, or the default route's).
    pub route: Spanned<String>,
}

/// A route's candidate model: its name, or a map with the name and options.
#[derive(Debug, Clone)]
pub struct CandidateConfig {
    /// The model's name.
    pub name: Spanned<String>,
    /// The options applied when it is chosen.
    pub options: CandidateOptions,
}

/// What changes in the request when a candidate is chosen.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct CandidateOptions {
    /// Share of traffic under the `weighted` algorithm (default: the algorithm's
    /// `weights`, else 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weight: Option<u32>,
    /// Turn the model's thinking on or off: sent as
    /// `chat_template_kwargs.enable_thinking` (default: as the client asked).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reasoning: Option<bool>,
    /// Reasoning effort sent as `reasoning_effort`: `low`, `medium` or `high`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub effort: Option<Effort>,
    /// A LoRA adapter served beside the model: requests name it instead of the model.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lora: Option<String>,
}

/// Reasoning effort.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Effort {
    /// Least thinking.
    Low,
    /// Some.
    Medium,
    /// Most.
    High,
}

impl Effort {
    /// The wire name.
    pub fn name(self) -> &'static str {
        match self {
            Effort::Low => "low",
            Effort::Medium => "medium",
            Effort::High => "high",
        }
    }
}

impl<'de> Deserialize<'de> for CandidateConfig {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        /// The map form, with its name.
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Full {
            name: String,
            #[serde(default)]
            weight: Option<u32>,
            #[serde(default)]
            reasoning: Option<bool>,
            #[serde(default)]
            effort: Option<Effort>,
            #[serde(default)]
            lora: Option<String>,
        }
        struct Form(Full);
        impl<'de> Deserialize<'de> for Form {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                struct V;
                impl<'de> serde::de::Visitor<'de> for V {
                    type Value = Form;
                    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                        f.write_str(
                            "a model name, or a map with `name` and options (weight, reasoning, effort, lora)",
                        )
                    }
                    fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Form, E> {
                        Ok(Form(Full {
                            name: v.to_owned(),
                            weight: None,
                            reasoning: None,
                            effort: None,
                            lora: None,
                        }))
                    }
                    fn visit_map<A: serde::de::MapAccess<'de>>(
                        self,
                        map: A,
                    ) -> Result<Form, A::Error> {
                        Full::deserialize(serde::de::value::MapAccessDeserializer::new(map))
                            .map(Form)
                    }
                }
                d.deserialize_any(V)
            }
        }
        let form: Spanned<Form> = Spanned::deserialize(d)?;
        let Form(full) = form.value;
        Ok(CandidateConfig {
            name: Spanned::new(full.name, form.referenced, form.defined),
            options: CandidateOptions {
                weight: full.weight,
                reasoning: full.reasoning,
                effort: full.effort,
                lora: full.lora,
            },
        })
    }
}

/// How a route is chosen among those that match.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DecisionConfig {
    /// `priority` (default), `confidence` or `tiered`.
    #[serde(default)]
    pub strategy: DecisionStrategy,
}

/// The order in which matching routes win.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DecisionStrategy {
    /// The highest priority wins; among equal priorities the most confident match,
    /// then the first name.
    #[default]
    Priority,
    /// The most confident match wins, then the highest priority, then the first name.
    Confidence,
    /// vLLM Semantic Router's ranking: once a route with a tier matches, routes without
    /// one count as tier 0; the lowest tier with a match wins, by confidence, then
    /// priority, then name. While no tiered route matches, as `priority`.
    Tiered,
}

impl DecisionStrategy {
    /// A route's place in the order of tiers: its tier, and for none, after every tier
    /// (tier 0 under `tiered`).
    pub fn tier_rank(self, tier: Option<u32>) -> u32 {
        match (tier, self) {
            (Some(t), _) => t,
            (None, DecisionStrategy::Tiered) => 0,
            (None, _) => u32::MAX,
        }
    }
}

/// The HTTP server.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerConfig {
    /// Address to listen on (default `127.0.0.1:8080`).
    #[serde(default = "default_listen")]
    pub listen: Spanned<String>,
    /// A second address for the operator's endpoints (`/v1/pools`, `/metrics`,
    /// `/v1/route`, `GET /v1/outcomes`): when set, they are served there only and not on
    /// `listen`, where clients see 404 (default: none, everything on `listen`).
    #[serde(default)]
    pub admin_listen: Option<Spanned<String>>,
    /// Largest accepted request body in bytes (default 4 MiB); larger bodies get 413.
    #[serde(default = "default_max_body_bytes")]
    pub max_body_bytes: usize,
    /// Model names that mean "route this request" (default `[auto]`).
    #[serde(default = "default_route_aliases")]
    pub route_aliases: Vec<String>,
    /// Append one JSON line per request to this file (default: no log).
    #[serde(default)]
    pub decision_log: Option<PathBuf>,
    /// A `tokenizer.json` that counts prompt tokens for signals and placement
    /// (default: the built-in estimate). `scripts/fetch-model.sh` installs the default
    /// model's at `.cache/models/all-MiniLM-L6-v2/tokenizer.json`.
    #[serde(default)]
    pub tokenizer: Option<PathBuf>,
    /// Output tokens assumed for placement when a request sets no `max_tokens`, until
    /// its route and model have answers to learn from (default 512).
    #[serde(default = "default_expected_output_tokens")]
    pub expected_output_tokens: u32,
    /// Percentile of learned answer lengths placement plans for (default 0.75).
    #[serde(default = "default_output_percentile")]
    pub output_percentile: f64,
    /// Answers of a route and model after which their length is predicted from the
    /// prompt's by regression (default 64).
    #[serde(default = "default_output_regression_after")]
    pub output_regression_after: usize,
    /// Threads serving requests (default: one per CPU core). On a machine shared with
    /// engines or clients, fewer threads mean fewer cross-thread wake-ups per request.
    #[serde(default)]
    pub worker_threads: Option<usize>,
    /// Before a reload (SIGHUP) swaps a changed policy in, run its TEST cases through
    /// the new policy and keep the old one when any fails (default false).
    #[serde(default)]
    pub reload_runs_tests: bool,
    /// Milliseconds a connection has to send a request's headers, counted from when
    /// the server starts waiting for them: slow (trickled) headers and idle keep-alive
    /// connections are closed after it (default 10,000).
    #[serde(default = "default_header_read_timeout_ms")]
    pub header_read_timeout_ms: u64,
    /// Milliseconds a request has to send its whole body, counted from its headers'
    /// arrival: a trickled body is answered 408 and its connection closed (default
    /// 30,000).
    #[serde(default = "default_body_read_timeout_ms")]
    pub body_read_timeout_ms: u64,
    /// Connections served at once; one more is answered 503 and closed (default: half
    /// the open-file limit left after 64 for the gateway's own files, at most 4,096,
    /// so that upstream connections always find a descriptor).
    #[serde(default)]
    pub max_connections: Option<usize>,
    /// Seconds a stored OpenAI Responses response is kept for `previous_response_id`
    /// and `GET /v1/responses/{id}` (default 86,400: a day).
    #[serde(default = "default_responses_ttl_s")]
    pub responses_ttl_s: u64,
    /// Bytes a stored response may hold with its conversation (default 16 MiB): a
    /// chain that grows past it is refused (400), to start anew.
    #[serde(default = "default_responses_max_bytes")]
    pub responses_max_bytes: usize,
    /// Bytes of stored responses one caller may add in a window of `responses_ttl_s`
    /// (default 64 MiB; a response counts at least 4 KiB): past it that caller's
    /// answers still go out but are not stored, so no caller can fill the store that
    /// every caller's conversations share.
    #[serde(default = "default_responses_caller_bytes")]
    pub responses_caller_bytes: u64,
}

fn default_responses_ttl_s() -> u64 {
    86_400
}
fn default_responses_max_bytes() -> usize {
    16 << 20
}
fn default_responses_caller_bytes() -> u64 {
    64 << 20
}

fn default_header_read_timeout_ms() -> u64 {
    10_000
}
fn default_body_read_timeout_ms() -> u64 {
    30_000
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            listen: default_listen(),
            admin_listen: None,
            max_body_bytes: default_max_body_bytes(),
            route_aliases: default_route_aliases(),
            decision_log: None,
            tokenizer: None,
            expected_output_tokens: default_expected_output_tokens(),
            output_percentile: default_output_percentile(),
            output_regression_after: default_output_regression_after(),
            worker_threads: None,
            reload_runs_tests: false,
            header_read_timeout_ms: default_header_read_timeout_ms(),
            body_read_timeout_ms: default_body_read_timeout_ms(),
            responses_ttl_s: default_responses_ttl_s(),
            responses_max_bytes: default_responses_max_bytes(),
            responses_caller_bytes: default_responses_caller_bytes(),
            max_connections: None,
        }
    }
}

fn default_listen() -> Spanned<String> {
    unspanned("127.0.0.1:8080".to_owned())
}

/// A value that did not come from the file (a default, or built in code).
pub fn unspanned<T>(value: T) -> Spanned<T> {
    Spanned::new(value, Location::UNKNOWN, Location::UNKNOWN)
}
fn default_max_body_bytes() -> usize {
    4 * 1024 * 1024
}
fn default_route_aliases() -> Vec<String> {
    vec!["auto".to_owned()]
}
fn default_expected_output_tokens() -> u32 {
    512
}
fn default_output_percentile() -> f64 {
    0.75
}
fn default_output_regression_after() -> usize {
    64
}

/// Where shared state lives.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StateConfig {
    /// `in_process` (default: this process's memory, bounded), or `redis` / `valkey`:
    /// a server every replica shares, each operation atomic on it.
    #[serde(default)]
    pub backend: StateBackend,
    /// The server, `redis://[user:password@]host:port[/db]` (redis and valkey only).
    #[serde(default)]
    pub url: Option<String>,
    /// Deadline of one operation on the server, in milliseconds (default 100).
    #[serde(default = "default_state_timeout_ms")]
    pub timeout_ms: u64,
    /// After a failed operation, how long the server is not tried again, in
    /// milliseconds: operations are refused at once meanwhile (default 1,000).
    #[serde(default = "default_state_pause_ms")]
    pub pause_ms: u64,
    /// Idle connections kept open (default 16).
    #[serde(default = "default_state_pool_size")]
    pub pool_size: usize,
    /// Prefix of every key, so several deployments can share one server
    /// (default `switchyard:`).
    #[serde(default = "default_state_prefix")]
    pub prefix: String,
}

impl Default for StateConfig {
    fn default() -> Self {
        StateConfig {
            backend: StateBackend::default(),
            url: None,
            timeout_ms: default_state_timeout_ms(),
            pause_ms: default_state_pause_ms(),
            pool_size: default_state_pool_size(),
            prefix: default_state_prefix(),
        }
    }
}

/// The shared-state backends.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StateBackend {
    /// This process only.
    #[default]
    InProcess,
    /// A Redis server.
    Redis,
    /// A Valkey server.
    Valkey,
}

impl StateBackend {
    /// Its name in configuration and metrics.
    pub fn name(self) -> &'static str {
        match self {
            StateBackend::InProcess => "in_process",
            StateBackend::Redis => "redis",
            StateBackend::Valkey => "valkey",
        }
    }
}

fn default_state_timeout_ms() -> u64 {
    100
}
fn default_state_pause_ms() -> u64 {
    1_000
}
fn default_state_pool_size() -> usize {
    16
}
fn default_state_prefix() -> String {
    "switchyard:".to_owned()
}

/// Timeouts for calls to upstream endpoints, in milliseconds.
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpstreamConfig {
    /// Time to open a TCP connection (default 2,000).
    #[serde(default = "default_connect_timeout_ms")]
    pub connect_timeout_ms: u64,
    /// Time from sending a request to its response headers (default 60,000).
    #[serde(default = "default_response_timeout_ms")]
    pub response_timeout_ms: u64,
    /// Longest silence between two pieces of a response body; longer is a stall (default 30,000).
    #[serde(default = "default_idle_timeout_ms")]
    pub idle_timeout_ms: u64,
    /// Longest whole request, first byte to last (default 600,000).
    #[serde(default = "default_total_timeout_ms")]
    pub total_timeout_ms: u64,
    /// Tries per request, across endpoints and pools of the chosen model, for connect
    /// errors and 5xx answers before any byte reached the client (default 3; 1 = no retry).
    #[serde(default = "default_max_attempts")]
    pub max_attempts: u32,
}

impl Default for UpstreamConfig {
    fn default() -> Self {
        UpstreamConfig {
            connect_timeout_ms: default_connect_timeout_ms(),
            response_timeout_ms: default_response_timeout_ms(),
            idle_timeout_ms: default_idle_timeout_ms(),
            total_timeout_ms: default_total_timeout_ms(),
            max_attempts: default_max_attempts(),
        }
    }
}

fn default_connect_timeout_ms() -> u64 {
    2_000
}
fn default_response_timeout_ms() -> u64 {
    60_000
}
fn default_idle_timeout_ms() -> u64 {
    30_000
}
fn default_total_timeout_ms() -> u64 {
    600_000
}
fn default_max_attempts() -> u32 {
    3
}

/// KV-cache retention hints (`x-kv-retention-priority`, `x-kv-retention-ttl-ms`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RetentionConfig {
    /// Send hints with mid-session requests (default true).
    #[serde(default = "yes")]
    pub enabled: bool,
    /// Time to live when a session's gaps are unknown and it runs tools (default 30,000 ms).
    #[serde(default = "default_agent_ttl_ms")]
    pub agent_ttl_ms: u64,
    /// Time to live when a session's gaps are unknown otherwise (default 120,000 ms).
    #[serde(default = "default_chat_ttl_ms")]
    pub chat_ttl_ms: u64,
    /// Shortest time to live sent (default 5,000 ms).
    #[serde(default = "default_min_ttl_ms")]
    pub min_ttl_ms: u64,
    /// Longest time to live sent (default 600,000 ms).
    #[serde(default = "default_max_ttl_ms")]
    pub max_ttl_ms: u64,
    /// Also put the hint in the request body as `kv_retention: {priority, ttl_ms}`, for
    /// engines that read it there; leave off for upstreams that reject unknown fields
    /// (default false; the headers are always sent).
    #[serde(default)]
    pub body_field: bool,
}

impl Default for RetentionConfig {
    fn default() -> Self {
        RetentionConfig {
            enabled: true,
            agent_ttl_ms: default_agent_ttl_ms(),
            chat_ttl_ms: default_chat_ttl_ms(),
            min_ttl_ms: default_min_ttl_ms(),
            max_ttl_ms: default_max_ttl_ms(),
            body_field: false,
        }
    }
}

fn yes() -> bool {
    true
}
fn default_agent_ttl_ms() -> u64 {
    30_000
}
fn default_chat_ttl_ms() -> u64 {
    120_000
}
fn default_min_ttl_ms() -> u64 {
    5_000
}
fn default_max_ttl_ms() -> u64 {
    600_000
}

/// Passive outlier ejection and active health checks.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HealthConfig {
    /// Consecutive failures (connect errors, 5xx, broken streams, failed checks) that
    /// take an endpoint out of rotation (default 3).
    #[serde(default = "default_eject_after_failures")]
    pub eject_after_failures: u32,
    /// How long the first ejection lasts; each repeat doubles it (default 5,000 ms).
    #[serde(default = "default_base_ejection_ms")]
    pub base_ejection_ms: u64,
    /// The longest ejection (default 300,000 ms).
    #[serde(default = "default_max_ejection_ms")]
    pub max_ejection_ms: u64,
    /// Interval of active checks; 0 turns them off (default 5,000 ms).
    #[serde(default = "default_check_interval_ms")]
    pub check_interval_ms: u64,
    /// Path probed by active checks; any answer below 500 counts as alive (default `/health`).
    #[serde(default = "default_check_path")]
    pub check_path: String,
    /// Timeout of one check (default 1,000 ms).
    #[serde(default = "default_check_timeout_ms")]
    pub check_timeout_ms: u64,
    /// Also read each endpoint's `/metrics` on every check for vLLM's gauges
    /// (`vllm:num_requests_running`, `…_waiting`, `vllm:kv_cache_usage_perc`); placement
    /// then counts the engine's own queue, not only this router's requests (default false).
    #[serde(default)]
    pub scrape_metrics: bool,
    /// When a pool has fewer than this share of its endpoints in rotation, requests
    /// are spread over all of them, ejected ones included (a pool is never emptied
    /// by ejections, and its last survivors are not crushed); when no pool of a model
    /// has an endpoint in rotation, the smallest pool that fits is used whole. 0 turns
    /// it off (default 0.5).
    #[serde(default = "default_panic_threshold")]
    pub panic_threshold: f64,
    /// Whether a passing active check ends a passive ejection early: `recovered`
    /// (default) when a check failed since the ejection began (the endpoint was down
    /// and is back), `always` on any passing check, `never` (the ejection runs its
    /// course; an endpoint that answers its health path but fails requests stays out).
    #[serde(default)]
    pub check_ends_ejection: CheckEndsEjection,
}

/// When a passing active check ends a passive ejection.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CheckEndsEjection {
    /// When a check failed since the ejection began: it was down and is back.
    #[default]
    Recovered,
    /// On any passing check.
    Always,
    /// Never: the ejection runs its course.
    Never,
}

impl Default for HealthConfig {
    fn default() -> Self {
        HealthConfig {
            eject_after_failures: default_eject_after_failures(),
            base_ejection_ms: default_base_ejection_ms(),
            max_ejection_ms: default_max_ejection_ms(),
            check_interval_ms: default_check_interval_ms(),
            check_path: default_check_path(),
            check_timeout_ms: default_check_timeout_ms(),
            scrape_metrics: false,
            panic_threshold: default_panic_threshold(),
            check_ends_ejection: CheckEndsEjection::default(),
        }
    }
}

fn default_panic_threshold() -> f64 {
    0.5
}

fn default_eject_after_failures() -> u32 {
    3
}
fn default_base_ejection_ms() -> u64 {
    5_000
}
fn default_max_ejection_ms() -> u64 {
    300_000
}
fn default_check_interval_ms() -> u64 {
    5_000
}
fn default_check_path() -> String {
    "/health".to_owned()
}
fn default_check_timeout_ms() -> u64 {
    1_000
}

/// A model clients may name or be routed to.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelConfig {
    /// The name clients use and `x-switchyard-model` reports.
    pub name: Spanned<String>,
    /// The name sent upstream in the `model` field (default: `name`).
    #[serde(default)]
    pub upstream_name: Option<String>,
    /// What the model is good at (shown in `GET /v1/models`).
    #[serde(default)]
    pub description: Option<String>,
    /// Price in dollars per million tokens (for the `cost` and `multi_factor`
    /// selection algorithms).
    #[serde(default)]
    pub price: Option<Price>,
    /// Answer quality in [0, 1], higher is better (from an evaluation of your own).
    #[serde(default)]
    pub quality: Option<f64>,
    /// Free-form tags (`small`, `on-prem`).
    #[serde(default)]
    pub tags: Vec<String>,
    /// How the model is told to think (the `reasoning` plugin and candidate options):
    /// `qwen3`, `deepseek`, `openai`, `anthropic` (default: both
    /// `chat_template_kwargs.enable_thinking` and `reasoning_effort`).
    #[serde(default)]
    pub family: Option<ModelFamily>,
}

/// A family of models that share a reasoning switch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ModelFamily {
    /// `chat_template_kwargs.enable_thinking` (Qwen3 and most vLLM chat templates).
    Qwen3,
    /// `chat_template_kwargs.thinking` (DeepSeek V3.1, Granite).
    Deepseek,
    /// `reasoning_effort` (OpenAI o-series, gpt-5, gpt-oss); off is `minimal`.
    Openai,
    /// `thinking: {type: enabled, budget_tokens}` (Anthropic Claude).
    Anthropic,
}

/// Dollars per million tokens.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct Price {
    /// Per million prompt tokens.
    pub input: f64,
    /// Per million generated tokens.
    pub output: f64,
}

impl Price {
    /// The cost of a request, in dollars.
    pub fn cost(&self, prompt_tokens: u32, output_tokens: u32) -> f64 {
        (self.input * f64::from(prompt_tokens) + self.output * f64::from(output_tokens)) / 1e6
    }
}

impl ModelConfig {
    /// The name to send upstream.
    pub fn upstream_name(&self) -> &str {
        self.upstream_name.as_deref().unwrap_or(&self.name.value)
    }
}

/// A pool: endpoints of one GPU type and context window serving one model.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PoolConfig {
    /// The pool's name.
    pub name: Spanned<String>,
    /// The model it serves (a name from `models`).
    pub model: Spanned<String>,
    /// The context window of its engines; requests whose prompt plus expected output
    /// exceed it are placed elsewhere.
    pub context_window: TokenCount,
    /// The GPU type of its instances (informational; the simulated engine uses it).
    #[serde(default)]
    pub gpu: Option<GpuKind>,
    /// How an endpoint of the pool is chosen (default `least_outstanding`).
    #[serde(default)]
    pub strategy: StrategyConfig,
    /// For the affinity strategies: an endpoint holding more than this factor times the
    /// pool's mean in-flight requests (plus one) loses its affinity to the least loaded
    /// one (default 1.25).
    #[serde(default = "default_affinity_load_factor")]
    pub affinity_load_factor: f64,
    /// γ: requests needing up to this factor times the context window may be compressed
    /// into this pool, when their route allows it (default 1: no compression).
    #[serde(default = "default_compression_factor")]
    pub compression_factor: f64,
    /// Time-to-first-token budget in milliseconds: endpoints whose TTFT, predicted from
    /// their observed TTFT against prompt length, would exceed it are passed over while
    /// another endpoint of the pool would meet it (default: no budget).
    #[serde(default)]
    pub ttft_budget_ms: Option<u64>,
    /// Free-form tags (`on-prem`, `eu`), for constraints.
    #[serde(default)]
    pub tags: Vec<String>,
    /// Its endpoints (at least one).
    pub endpoints: Vec<EndpointConfig>,
}

fn default_affinity_load_factor() -> f64 {
    1.25
}
fn default_compression_factor() -> f64 {
    1.0
}

/// Endpoint choice within a pool.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum StrategyConfig {
    /// Each endpoint in turn.
    RoundRobin,
    /// In turn, in proportion to `weight` (smooth weighted round robin).
    Weighted,
    /// The endpoint with the fewest requests in flight; ties in turn.
    #[default]
    LeastOutstanding,
    /// Two endpoints drawn at random; the one with the lower peak-EWMA latency times
    /// (requests in flight + 1).
    P2cEwma,
    /// The same session (`x-session-id` header or `user` field) stays on one endpoint
    /// (rendezvous hashing) while it is healthy and not overloaded.
    SessionAffinity,
    /// Requests sharing a system prompt and first user turn go to one endpoint, so
    /// their shared prefix hits the same KV cache; same load bound.
    PrefixAffinity,
}

/// The API an upstream endpoint speaks.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Provider {
    /// OpenAI Chat Completions at `/v1/chat/completions` (vLLM, SGLang, OpenAI, the
    /// simulated engine), key as `authorization: Bearer`.
    #[default]
    Openai,
    /// Azure OpenAI: `/openai/deployments/{deployment}/chat/completions?api-version=…`,
    /// key as `api-key`.
    Azure,
    /// Anthropic's Messages API at `/v1/messages`, key as `x-api-key`, with
    /// `anthropic-version`.
    Anthropic,
}

impl Provider {
    /// Its name in configuration.
    pub fn name(self) -> &'static str {
        match self {
            Provider::Openai => "openai",
            Provider::Azure => "azure",
            Provider::Anthropic => "anthropic",
        }
    }
}

/// One upstream server.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EndpointConfig {
    /// Base URL, e.g. `http://10.0.0.5:8000` (the gateway appends the provider's path:
    /// `/v1/chat/completions`, `/v1/messages`, or Azure's deployment path; a base
    /// ending in `/v1` is accepted too).
    pub url: Spanned<String>,
    /// Name reported in `x-switchyard-endpoint` and logs (default `<pool>-<index>`).
    #[serde(default)]
    pub name: Option<String>,
    /// Environment variable holding the API key to send (default: none sent).
    #[serde(default)]
    pub api_key_env: Option<String>,
    /// Share of traffic under the `weighted` strategy (default 1).
    #[serde(default = "default_weight")]
    pub weight: u32,
    /// The API it speaks (default `openai`).
    #[serde(default)]
    pub provider: Provider,
    /// Azure's `api-version` (default `2024-10-21`) or Anthropic's
    /// `anthropic-version` (default `2023-06-01`).
    #[serde(default)]
    pub api_version: Option<String>,
    /// Azure's deployment name (default: the model's upstream name).
    #[serde(default)]
    pub deployment: Option<String>,
    /// Send OpenAI's `prompt_cache_key` (OpenAI and Azure endpoints): a digest of the
    /// request's stable prefix (up to its first cache breakpoint, else its system
    /// prompt), so the upstream routes requests sharing it to the same cache; a key
    /// the client set is kept (default false: vLLM and SGLang do not take the field).
    #[serde(default)]
    pub prompt_cache_key: bool,
}

fn default_weight() -> u32 {
    1
}

/// A route: when its condition holds, one of its models answers.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteConfig {
    /// The route's name (reported in `x-switchyard-route`).
    pub name: Spanned<String>,
    /// What the route is for.
    #[serde(default)]
    pub description: Option<String>,
    /// Higher priorities are tried first (default 0); ties are broken by name.
    #[serde(default)]
    pub priority: i32,
    /// A precedence class: routes with a tier are tried before routes without, lower
    /// tiers first, and a matching route of an earlier tier wins under either
    /// decision strategy; priority orders routes within a tier (default: none).
    #[serde(default)]
    pub tier: Option<u32>,
    /// The condition over signals: `{keyword: name}`, `{context: name}`,
    /// `{all: [...]}`, `{any: [...]}`, `{not: {...}}`.
    pub when: Condition,
    /// Candidate models, in order of preference: names, or maps with `name` and
    /// options (`weight`, `reasoning`, `effort`, `lora`).
    pub models: Vec<CandidateConfig>,
    /// How a model is chosen among the candidates (default `static`).
    #[serde(default)]
    pub algorithm: AlgorithmConfig,
    /// Whether this route's requests may be compressed to fit a smaller pool (a pool's
    /// `compression_factor`) instead of going to a larger one (default false).
    #[serde(default)]
    pub compress: bool,
    /// When the upstream provider's API cannot carry part of a request (an Anthropic
    /// endpoint and `n: 2`, say), leave that part out (named in
    /// `x-switchyard-dropped`) instead of refusing the request (default false).
    #[serde(default)]
    pub lossy_translation: bool,
    /// A whole answer that breaks off after its status and headers is tried again on
    /// another endpoint, like a connect error or a 5xx (default false: a 502, since the
    /// endpoint may have done the work). For requests that are safe to run twice;
    /// streamed answers are never retried once their first byte is on its way.
    #[serde(default)]
    pub retry_broken: bool,
    /// Keeps a session on the model that served its previous turn unless switching
    /// gains more than the prefix cache it loses (default: off).
    #[serde(default)]
    pub sticky: Option<StickyConfig>,
    /// Sends a sampled share of its requests to a second model in the background and
    /// compares the answers (default: off).
    #[serde(default)]
    pub shadow: Option<ShadowConfig>,
    /// The plugins its requests go through after the global ones, in this order
    /// (names of `plugins:` definitions).
    #[serde(default)]
    pub plugins: Vec<Spanned<String>>,
    /// The named policy it belongs to (default: the one `server.route_aliases` pick).
    #[serde(default)]
    pub recipe: Option<Spanned<String>>,
}

/// A named policy: the routes that name it, its own default route and strategy.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RecipeConfig {
    /// Its name, as routes name it in `recipe`.
    pub name: Spanned<String>,
    /// What it is for.
    #[serde(default)]
    pub description: Option<String>,
    /// The model names that pick it (at least one; unique across models, recipes and
    /// `server.route_aliases`).
    pub aliases: Vec<Spanned<String>>,
    /// How its route is chosen among those that match (default: `decision.strategy`).
    #[serde(default)]
    pub strategy: Option<DecisionStrategy>,
    /// Where its requests go when none of its routes matches (absent: a 422).
    #[serde(default)]
    pub default_route: Option<DefaultRouteConfig>,
}

/// Session stickiness: switching a session's model loses its prefix cache, whose
/// prompt tokens the new model must prefill again. Everything is weighed in
/// milliseconds: that prefill time is the cost of a switch; the gain is the predicted
/// time-to-first-token difference plus the quality and price differences at the
/// configured rates.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct StickyConfig {
    /// Milliseconds one point of quality (on the 0–1 scale: configured `quality`, or
    /// what a learning route has measured) is worth (default 1,000).
    #[serde(default = "default_quality_ms")]
    pub quality_ms: f64,
    /// Milliseconds one dollar saved on the request is worth (default 0: price
    /// differences do not count).
    #[serde(default)]
    pub dollar_ms: f64,
    /// A session never moves to a model of lower or equal quality, and always may move
    /// to a higher one (default false).
    #[serde(default)]
    pub escalate_only: bool,
}

fn default_quality_ms() -> f64 {
    1000.0
}

impl Default for StickyConfig {
    fn default() -> Self {
        StickyConfig {
            quality_ms: default_quality_ms(),
            dollar_ms: 0.0,
            escalate_only: false,
        }
    }
}

/// How a shadow answer is compared with the client's.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ShadowJudge {
    /// The two answers' texts agree (after trimming, case and runs of white space) or
    /// not: agreement counts as a tie; a disagreement prefers neither.
    ExactMatch,
    /// A configured model is asked which answer is better (A, B or TIE, the answers
    /// in an order drawn per request).
    Model(String),
}

/// `shadow`: a second opinion in the background.
#[derive(Debug, Clone, PartialEq, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct ShadowConfig {
    /// The model asked too (a configured model with a pool).
    pub model: String,
    /// The share of the route's whole (non-streamed) answers shadowed, in [0, 1]
    /// (default 0.05), sampled by a hash of the request id.
    #[serde(default = "default_shadow_share")]
    pub share: f64,
    /// Shadow requests in flight at most; a sampled request beyond it is skipped
    /// (default 4).
    #[serde(default = "default_shadow_concurrency")]
    pub max_concurrent: usize,
    /// Dollars the shadow model may cost per hour (by its price and the answers'
    /// usage); once spent, sampled requests are skipped until the hour turns. Needs
    /// the model's `price`.
    #[serde(default)]
    pub budget_per_hour: Option<f64>,
    /// How the answers are compared (default `exact_match`; or `{model: NAME}`).
    #[serde(default = "default_shadow_judge")]
    pub judge: ShadowJudge,
}

fn default_shadow_share() -> f64 {
    0.05
}

fn default_shadow_concurrency() -> usize {
    4
}

fn default_shadow_judge() -> ShadowJudge {
    ShadowJudge::ExactMatch
}

/// The route taken when no other matches.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DefaultRouteConfig {
    /// Its name (default `default`).
    #[serde(default = "default_route_name")]
    pub name: String,
    /// Candidate models, in order of preference (names, or maps with options).
    pub models: Vec<CandidateConfig>,
    /// How a model is chosen among the candidates (default `static`).
    #[serde(default)]
    pub algorithm: AlgorithmConfig,
    /// Whether requests may be compressed to fit a smaller pool (default false).
    #[serde(default)]
    pub compress: bool,
    /// As a route's `lossy_translation` (default false).
    #[serde(default)]
    pub lossy_translation: bool,
    /// As a route's `retry_broken` (default false).
    #[serde(default)]
    pub retry_broken: bool,
    /// Keeps a session on the model that served its previous turn unless switching
    /// gains more than the prefix cache it loses (default: off).
    #[serde(default)]
    pub sticky: Option<StickyConfig>,
    /// Sends a sampled share of its requests to a second model in the background and
    /// compares the answers (default: off).
    #[serde(default)]
    pub shadow: Option<ShadowConfig>,
    /// The plugins its requests go through after the global ones, in this order.
    #[serde(default)]
    pub plugins: Vec<Spanned<String>>,
}

fn default_route_name() -> String {
    "default".to_owned()
}

/// Selection algorithms: a name (`static`) or a map with `type` and parameters.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum AlgorithmConfig {
    /// The first candidate, in the order listed, whose pools can hold the request.
    #[default]
    Static,
    /// Random by weight, the same request always to the same model.
    Weighted(WeightedConfig),
    /// The cheapest candidate whose quality meets a floor.
    Cost(CostConfig),
    /// The lowest observed latency percentile.
    Latency(LatencyConfig),
    /// A weighted score of quality, latency, cost and load, after hard ceilings.
    MultiFactor(MultiFactorConfig),
    /// Thompson sampling over outcomes: learns which candidate answers well.
    Thompson(ThompsonConfig),
    /// A router learned offline: the strong candidate when its predicted gain over
    /// the weak one is high.
    Learned(LearnedConfig),
    /// The best Elo rating from pairwise preferences.
    Elo(EloConfig),
    /// The cheapest candidate answers first; an answer whose confidence falls short
    /// goes on to the next.
    Cascade(CascadeConfig),
}

/// How a cascade judges an answer's confidence.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ConfidenceCheck {
    /// exp(mean token logprob): the geometric mean of the tokens' probabilities.
    #[default]
    MeanLogprob,
    /// exp(lowest token logprob): the least likely token's probability.
    MinLogprob,
    /// Two samples of the answer (`n: 2`, at the request's temperature, 1 when it set
    /// none): 1 when their texts agree (trimmed, case and white space aside), else 0.
    SelfConsistency,
    /// A configured model is asked whether the answer is right: 1 for YES, 0 for NO.
    Verifier(String),
}

/// `cascade` parameters.
#[derive(Debug, Clone, PartialEq, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct CascadeConfig {
    /// An answer whose confidence is under this, in (0, 1], goes on to the next
    /// candidate (default 0.7).
    #[serde(default = "default_min_confidence")]
    pub min_confidence: f64,
    /// How confidence is read from the logprobs (default `mean_logprob`).
    #[serde(default)]
    pub check: ConfidenceCheck,
    /// A streamed request's first answers are taken whole and checked before the
    /// client sees any of them, then sent as one burst (default false: a stream is
    /// answered by the first step and never escalated, since it has started reaching
    /// the client).
    #[serde(default)]
    pub buffer_streams: bool,
    /// Time to first token the route aims for, in milliseconds: when the first step's
    /// predicted TTFT for the prompt exceeds it and the last step's pools have nothing
    /// in flight, the cheap steps are skipped.
    #[serde(default)]
    pub ttft_budget_ms: Option<f64>,
    /// Requests in flight per endpoint at which the next step's pools count as
    /// saturated: the answer in hand is kept instead of escalating (default 8).
    #[serde(default = "default_saturated_at")]
    pub saturated_at: f64,
}

fn default_min_confidence() -> f64 {
    0.7
}

fn default_saturated_at() -> f64 {
    8.0
}

impl Default for CascadeConfig {
    fn default() -> Self {
        CascadeConfig {
            min_confidence: default_min_confidence(),
            check: ConfidenceCheck::MeanLogprob,
            buffer_streams: false,
            ttft_budget_ms: None,
            saturated_at: default_saturated_at(),
        }
    }
}

/// `elo` parameters.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct EloConfig {
    /// Rating points given up to pay nothing instead of the costliest candidate's
    /// price, per 400 (default 0: ratings alone).
    #[serde(default)]
    pub cost_weight: f64,
}

/// `learned` parameters.
#[derive(Debug, Clone, PartialEq, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct LearnedConfig {
    /// The router file (`switchyard train router`); default the shipped MMLU router.
    #[serde(default)]
    pub router: Option<std::path::PathBuf>,
    /// The candidate that plays the router's strong model.
    pub strong: String,
    /// The candidate that plays its weak model.
    pub weak: String,
    /// The share of prompts sent to the strong model, as measured on the router's
    /// training data, in [0, 1] (default 0.5); or give `margin`.
    #[serde(default)]
    pub share: Option<f64>,
    /// The weak candidate answers when the strong one's predicted score is at most
    /// this much higher (instead of `share`).
    #[serde(default)]
    pub margin: Option<f64>,
    /// The router file, loaded when the policy is compiled.
    #[serde(skip)]
    pub file: Option<std::sync::Arc<switchyard_workload::outcome_router::RouterFile>>,
}

impl LearnedConfig {
    /// The predicted gain above which the strong candidate answers.
    pub fn threshold(&self) -> f64 {
        if let Some(margin) = self.margin {
            return margin;
        }
        let share = self.share.unwrap_or(0.5).clamp(0.0, 1.0);
        self.file.as_ref().map_or(0.0, |f| {
            let i = (share * 100.0).round() as usize;
            f.thresholds.get(i).copied().unwrap_or(0.0)
        })
    }
}

/// What a learning algorithm counts outcomes by, besides route and model.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum OutcomeBucket {
    /// The domain the request's domain signal predicted (none when no domain signal
    /// ran): a model may be the best at law and not at code.
    #[default]
    Domain,
    /// Route and model only.
    None,
}

/// `thompson` parameters.
#[derive(Debug, Clone, PartialEq, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct ThompsonConfig {
    /// What outcomes are counted by besides route and model (default `domain`).
    #[serde(default)]
    pub bucket: OutcomeBucket,
    /// Quality given up to pay nothing instead of the costliest candidate's price:
    /// each draw loses `cost_weight × cost / highest cost` (default 0).
    #[serde(default)]
    pub cost_weight: f64,
    /// What an arm's older outcomes keep of their weight at each new one, in (0, 1]
    /// (default 0.995: about the last 200 outcomes count), so a model whose quality
    /// changes is relearned.
    #[serde(default = "default_discount")]
    pub discount: f64,
    /// How many outcomes the prior from the model's `quality` is worth (default 4; a
    /// model without `quality` starts at 0.5).
    #[serde(default = "default_prior_strength")]
    pub prior_strength: f64,
    /// Mixed into the draws.
    #[serde(default)]
    pub seed: u64,
}

fn default_discount() -> f64 {
    0.995
}

fn default_prior_strength() -> f64 {
    4.0
}

impl Default for ThompsonConfig {
    fn default() -> Self {
        ThompsonConfig {
            bucket: OutcomeBucket::Domain,
            cost_weight: 0.0,
            discount: default_discount(),
            prior_strength: default_prior_strength(),
            seed: 0,
        }
    }
}

/// Answers remembered for feedback, and the scores of implicit outcomes.
#[derive(Debug, Clone, PartialEq, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct OutcomesConfig {
    /// Answers remembered (default 65,536; the oldest is forgotten first; 0 turns
    /// outcomes and feedback off).
    #[serde(default = "default_outcome_capacity")]
    pub capacity: usize,
    /// How long after an answer its feedback is accepted, in seconds (default 3,600).
    #[serde(default = "default_outcome_ttl_s")]
    pub ttl_s: u64,
    /// Scores of what the gateway sees itself, in [0, 1].
    #[serde(default)]
    pub implicit: ImplicitScores,
    /// How far one pairwise preference moves two models' Elo ratings at most
    /// (default 32 points).
    #[serde(default = "default_elo_k")]
    pub elo_k: f64,
    /// Failure and low-score rates per (model, domain), with a drift alarm.
    #[serde(default)]
    pub reputation: ReputationConfig,
}

/// Reputation windows and the drift alarm.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct ReputationConfig {
    /// Outcomes per window (default 50).
    #[serde(default = "default_reputation_window")]
    pub window: u32,
    /// Closed windows kept as history (default 20).
    #[serde(default = "default_reputation_history")]
    pub history: usize,
    /// Closed windows needed before a window is judged (default 5).
    #[serde(default = "default_reputation_min_history")]
    pub min_history: usize,
    /// A score under this is a low score (default 0.5).
    #[serde(default = "half")]
    pub low_score: f64,
    /// Candidates whose (model, domain) is under alarm are passed over while another
    /// candidate can take the request (default true).
    #[serde(default = "yes")]
    pub demote: bool,
}

fn default_reputation_window() -> u32 {
    50
}

fn default_reputation_history() -> usize {
    20
}

fn default_reputation_min_history() -> usize {
    5
}

impl Default for ReputationConfig {
    fn default() -> Self {
        ReputationConfig {
            window: default_reputation_window(),
            history: default_reputation_history(),
            min_history: default_reputation_min_history(),
            low_score: 0.5,
            demote: true,
        }
    }
}

fn default_elo_k() -> f64 {
    32.0
}

fn default_outcome_capacity() -> usize {
    65_536
}

fn default_outcome_ttl_s() -> u64 {
    3600
}

impl Default for OutcomesConfig {
    fn default() -> Self {
        OutcomesConfig {
            capacity: default_outcome_capacity(),
            ttl_s: default_outcome_ttl_s(),
            implicit: ImplicitScores::default(),
            elo_k: default_elo_k(),
            reputation: ReputationConfig::default(),
        }
    }
}

/// The score an answer gets from what the gateway sees, until feedback replaces it.
#[derive(Debug, Clone, PartialEq, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct ImplicitScores {
    /// A whole answer (default 1).
    #[serde(default = "one")]
    pub ok: f64,
    /// An answer cut by its `max_tokens` (default 0.5).
    #[serde(default = "half")]
    pub truncated: f64,
    /// An upstream error, timeout, stall or cut stream (default 0).
    #[serde(default)]
    pub failed: f64,
    /// An answer whose next turn in the session complains of it or asks again (a
    /// `user_feedback` or `reask` signal that ran and held; default 0).
    #[serde(default)]
    pub complained: f64,
    /// An answer whose first token (a whole answer: its response) came later than
    /// `slow_after_ms` (default 0.5).
    #[serde(default = "half")]
    pub slow: f64,
    /// When set, answers slower than this many milliseconds to their first token score
    /// `slow` instead of `ok` (default: latency does not count).
    #[serde(default)]
    pub slow_after_ms: Option<f64>,
}

fn half() -> f64 {
    0.5
}

impl Default for ImplicitScores {
    fn default() -> Self {
        ImplicitScores {
            ok: 1.0,
            truncated: 0.5,
            failed: 0.0,
            complained: 0.0,
            slow: 0.5,
            slow_after_ms: None,
        }
    }
}

/// `weighted` parameters.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct WeightedConfig {
    /// Weight per candidate name (default 1 each).
    #[serde(default)]
    pub weights: std::collections::BTreeMap<String, f64>,
    /// Mixed into the request hash, to reshuffle which requests go where.
    #[serde(default)]
    pub seed: u64,
}

/// `cost` parameters.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct CostConfig {
    /// Least model quality accepted (default 0: the cheapest of all).
    #[serde(default)]
    pub min_quality: f64,
}

/// Which latency a `latency` algorithm compares.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum LatencyMetric {
    /// Time to first token.
    #[default]
    Ttft,
    /// Time per output token after the first.
    Tpot,
}

/// `latency` parameters.
#[derive(Debug, Clone, PartialEq, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct LatencyConfig {
    /// `ttft` (default) or `tpot`.
    #[serde(default)]
    pub metric: LatencyMetric,
    /// The percentile compared, 1–100 (default 90).
    #[serde(default = "default_percentile")]
    pub percentile: f64,
    /// Observations a candidate needs before its latency is trusted (default 20); a
    /// candidate with fewer is tried first, so that it gets measured.
    #[serde(default = "default_cold_start")]
    pub cold_start: u32,
}

fn default_percentile() -> f64 {
    90.0
}

fn default_cold_start() -> u32 {
    20
}

/// `multi_factor` weights (each default 0, except quality 1).
#[derive(Debug, Clone, PartialEq, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct FactorWeights {
    /// Weight of quality (higher better).
    #[serde(default = "one")]
    pub quality: f64,
    /// Weight of observed p90 TTFT (lower better).
    #[serde(default)]
    pub latency: f64,
    /// Weight of estimated cost (lower better).
    #[serde(default)]
    pub cost: f64,
    /// Weight of load: requests in flight per endpoint (lower better).
    #[serde(default)]
    pub load: f64,
}

fn one() -> f64 {
    1.0
}

impl Default for FactorWeights {
    fn default() -> Self {
        FactorWeights {
            quality: 1.0,
            latency: 0.0,
            cost: 0.0,
            load: 0.0,
        }
    }
}

/// `multi_factor` parameters.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct MultiFactorConfig {
    /// How much each factor counts; factors are scaled to [0, 1] across candidates.
    #[serde(default)]
    pub weights: FactorWeights,
    /// Candidates whose observed p90 TTFT exceeds this are pruned first.
    #[serde(default)]
    pub max_ttft_ms: Option<f64>,
    /// Candidates whose estimated cost per request exceeds this (dollars) are pruned.
    #[serde(default)]
    pub max_cost: Option<f64>,
}

impl AlgorithmConfig {
    /// The configuration name.
    pub fn name(&self) -> &'static str {
        match self {
            AlgorithmConfig::Static => "static",
            AlgorithmConfig::Weighted(_) => "weighted",
            AlgorithmConfig::Cost(_) => "cost",
            AlgorithmConfig::Latency(_) => "latency",
            AlgorithmConfig::MultiFactor(_) => "multi_factor",
            AlgorithmConfig::Thompson(_) => "thompson",
            AlgorithmConfig::Learned(_) => "learned",
            AlgorithmConfig::Elo(_) => "elo",
            AlgorithmConfig::Cascade(_) => "cascade",
        }
    }

    /// The names accepted.
    pub const NAMES: [&'static str; 9] = [
        "static",
        "weighted",
        "cost",
        "latency",
        "multi_factor",
        "thompson",
        "learned",
        "elo",
        "cascade",
    ];
}

impl<'de> Deserialize<'de> for AlgorithmConfig {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use serde::de::Error;
        let value = serde_json::Value::deserialize(d)?;
        let (name, params) = match &value {
            serde_json::Value::String(n) => (n.clone(), serde_json::json!({})),
            serde_json::Value::Object(map) => {
                let name = map
                    .get("type")
                    .and_then(|t| t.as_str())
                    .ok_or_else(|| D::Error::custom("an algorithm map needs `type`"))?
                    .to_owned();
                let mut params = map.clone();
                params.remove("type");
                (name, serde_json::Value::Object(params))
            }
            _ => {
                return Err(D::Error::custom(
                    "expected an algorithm name or a map with `type`",
                ));
            }
        };
        let parse = |what: &str| D::Error::custom(format!("algorithm `{name}`: {what}"));
        let config = match name.as_str() {
            "static" => {
                if params.as_object().is_some_and(|m| !m.is_empty()) {
                    return Err(parse("takes no parameters"));
                }
                AlgorithmConfig::Static
            }
            "weighted" => AlgorithmConfig::Weighted(
                serde_json::from_value(params).map_err(|e| parse(&e.to_string()))?,
            ),
            "cost" => AlgorithmConfig::Cost(
                serde_json::from_value(params).map_err(|e| parse(&e.to_string()))?,
            ),
            "latency" => AlgorithmConfig::Latency(
                serde_json::from_value(params).map_err(|e| parse(&e.to_string()))?,
            ),
            "multi_factor" => AlgorithmConfig::MultiFactor(
                serde_json::from_value(params).map_err(|e| parse(&e.to_string()))?,
            ),
            "thompson" => AlgorithmConfig::Thompson(
                serde_json::from_value(params).map_err(|e| parse(&e.to_string()))?,
            ),
            "learned" => AlgorithmConfig::Learned(
                serde_json::from_value(params).map_err(|e| parse(&e.to_string()))?,
            ),
            "elo" => AlgorithmConfig::Elo(
                serde_json::from_value(params).map_err(|e| parse(&e.to_string()))?,
            ),
            "cascade" => AlgorithmConfig::Cascade(
                serde_json::from_value(params).map_err(|e| parse(&e.to_string()))?,
            ),
            other => {
                let hint = switchyard_wire::typos::suggest(other, AlgorithmConfig::NAMES)
                    .map(|s| format!(" (did you mean `{s}`?)"))
                    .unwrap_or_default();
                return Err(D::Error::custom(format!(
                    "unknown algorithm `{other}`{hint}; known: {}",
                    AlgorithmConfig::NAMES.join(", ")
                )));
            }
        };
        Ok(config)
    }
}
