//! Pools and endpoints with their live state.

use crate::engine_metrics::{EngineGauges, EngineLoad};
use crate::health::{Health, HealthPolicy, HealthSnapshot};
use crate::latency::LatencyEwma;
use crate::strategy::{self, EndpointStrategy};
use crate::ttft::{TtftFit, TtftModel};
use serde::Serialize;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Instant;
use switchyard_fleet::GpuKind;
use switchyard_policy::Config;

/// One upstream server.
#[derive(Debug)]
pub struct Endpoint {
    /// Its index among all endpoints of all pools.
    pub id: usize,
    /// Its index within its pool.
    pub index: usize,
    /// Its name (reported in `x-switchyard-endpoint`).
    pub name: String,
    /// Its base URL as configured.
    pub base_url: String,
    /// Its base URL as shown (`/v1/pools`, logs): user info and query string masked.
    pub shown_url: String,
    /// The pool it belongs to.
    pub pool: String,
    /// Full URI of its API (the provider's path), parsed once, without user info.
    pub chat_url: http::Uri,
    /// The API it speaks.
    pub provider: switchyard_policy::Provider,
    /// The `authorization` header sent upstream (marked sensitive): `Bearer` with the
    /// API key (OpenAI), else `Basic` with the URL's user info, if it has any.
    pub authorization: Option<http::HeaderValue>,
    /// The API key under the provider's own header (`api-key` for Azure,
    /// `x-api-key` for Anthropic), marked sensitive.
    pub api_key: Option<(http::HeaderName, http::HeaderValue)>,
    /// `anthropic-version` sent to an Anthropic endpoint.
    pub api_version: Option<http::HeaderValue>,
    /// Whether requests carry a derived `prompt_cache_key` (OpenAI, Azure).
    pub prompt_cache_key: bool,
    /// Its health: ejection state and failure counts.
    pub health: Health,
    /// Its share of traffic under the `weighted` strategy.
    pub weight: u32,
    /// Peak-EWMA of its observed latency (time to first token).
    pub latency: LatencyEwma,
    /// Its fixed hash for rendezvous (affinity) hashing.
    pub affinity_seed: u64,
    /// Its TTFT against prompt length, fitted from observations.
    pub ttft: TtftModel,
    /// Its own gauges, when its metrics are scraped.
    pub engine: EngineGauges,
    in_flight: AtomicUsize,
    dispatched: AtomicU64,
}

impl Endpoint {
    /// Requests sent and not yet finished.
    pub fn in_flight(&self) -> usize {
        self.in_flight.load(Ordering::Relaxed)
    }

    /// Load for placement: requests in flight from this router, or the engine's own
    /// running plus waiting requests when a fresh scrape says more (other routers, other
    /// clients).
    pub fn load(&self, now_ms: u64) -> usize {
        let own = self.in_flight();
        match self.engine.get(now_ms) {
            Some(engine) => own.max((engine.running + engine.waiting) as usize),
            None => own,
        }
    }

    /// Requests sent since start.
    pub fn dispatched(&self) -> u64 {
        self.dispatched.load(Ordering::Relaxed)
    }

    /// Counts a request as in flight until the returned guard drops.
    pub fn begin(self: &Arc<Self>) -> InFlight {
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        self.dispatched.fetch_add(1, Ordering::Relaxed);
        InFlight {
            endpoint: Arc::clone(self),
        }
    }
}

/// Holds one in-flight count on an endpoint; dropping it ends the request.
#[derive(Debug)]
pub struct InFlight {
    endpoint: Arc<Endpoint>,
}

impl InFlight {
    /// The endpoint this request is on.
    pub fn endpoint(&self) -> &Arc<Endpoint> {
        &self.endpoint
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.endpoint.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Endpoints of one GPU type and context window serving one model.
#[derive(Debug)]
pub struct Pool {
    /// Its name.
    pub name: String,
    /// Index of the model it serves.
    pub model: usize,
    /// Its context window in tokens.
    pub context_window: u32,
    /// Its GPU type, when configured.
    pub gpu: Option<GpuKind>,
    /// Its endpoints.
    pub endpoints: Vec<Arc<Endpoint>>,
    /// How one of them is chosen.
    pub strategy: Box<dyn EndpointStrategy>,
    /// Endpoints predicted to exceed this TTFT are passed over while another can meet it.
    pub ttft_budget_ms: Option<f64>,
    /// γ: requests needing up to this factor times the window may be compressed into it.
    pub compression_factor: f64,
}

/// Every pool, grouped by model.
#[derive(Debug)]
pub struct Pools {
    pools: Vec<Pool>,
    /// Per model: indexes into `pools`, smallest context window first.
    by_model: Vec<Vec<usize>>,
    /// The clock of health timestamps.
    epoch: Instant,
    /// When endpoints are ejected.
    pub health_policy: HealthPolicy,
}

/// Judges endpoint health on the pools' clock.
#[derive(Debug, Clone, Copy)]
pub struct HealthJudge {
    epoch: Instant,
    policy: HealthPolicy,
}

impl HealthJudge {
    /// Milliseconds since the pools were built.
    pub fn now_ms(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    /// Records a failure; returns whether it ejected the endpoint.
    pub fn failure(&self, endpoint: &Endpoint) -> bool {
        let ejected = endpoint.health.failure(self.now_ms(), &self.policy);
        if ejected {
            tracing::warn!(endpoint = %endpoint.name, "endpoint ejected after failures");
        }
        ejected
    }

    /// Records an active check's verdict; returns whether it ended an ejection.
    pub fn checked(&self, endpoint: &Endpoint, alive: bool) -> bool {
        let back = endpoint.health.checked(alive, self.now_ms(), &self.policy);
        if back {
            tracing::info!(endpoint = %endpoint.name, "endpoint back in rotation: its check passes again");
        }
        back
    }
}

/// One pool's state.
#[derive(Debug, Clone, Serialize)]
pub struct PoolSnapshot {
    /// Its name.
    pub name: String,
    /// Index of the model it serves.
    pub model: usize,
    /// Its context window.
    pub context_window: u32,
    /// Its GPU type.
    pub gpu: Option<&'static str>,
    /// Its endpoint strategy.
    pub strategy: &'static str,
    /// Its endpoints.
    pub endpoints: Vec<EndpointSnapshot>,
}

/// One endpoint's state.
#[derive(Debug, Clone, Serialize)]
pub struct EndpointSnapshot {
    /// Its name.
    pub name: String,
    /// Its base URL.
    pub url: String,
    /// Requests in flight.
    pub in_flight: usize,
    /// Requests sent since start.
    pub dispatched: u64,
    /// Peak-EWMA time to first token, in milliseconds (none before the first answer).
    pub latency_ms: Option<f64>,
    /// TTFT against prompt length (queueing delay and prefill cost per token).
    pub ttft_fit: Option<TtftFit>,
    /// The engine's own gauges, when scraped and fresh.
    pub engine: Option<EngineLoad>,
    /// Health and ejection.
    pub health: HealthSnapshot,
}

/// A pool could not be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PoolsError {
    /// An endpoint's API key variable is not set.
    #[error("endpoint `{endpoint}`: environment variable `{variable}` (api_key_env) is not set")]
    MissingKey {
        /// The endpoint.
        endpoint: String,
        /// The variable.
        variable: String,
    },
    /// An endpoint's API key cannot be sent in a header.
    #[error(
        "endpoint `{endpoint}`: the key in `{variable}` (api_key_env) holds characters a header cannot carry (a line break?)"
    )]
    BadKey {
        /// The endpoint.
        endpoint: String,
        /// The variable.
        variable: String,
    },
    /// An endpoint's URL does not parse.
    #[error("endpoint `{endpoint}`: `{url}` is not a valid URL: {reason}")]
    BadUrl {
        /// The endpoint.
        endpoint: String,
        /// The URL, credentials masked.
        url: String,
        /// What is wrong with it.
        reason: String,
    },
}

impl Pools {
    /// Builds the pools of a checked configuration, reading API keys from the environment.
    pub fn build(config: &Config) -> Result<Pools, PoolsError> {
        Self::build_with_env(config, |name| std::env::var(name).ok())
    }

    /// Builds the pools, reading API keys through `env`.
    pub fn build_with_env(
        config: &Config,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Pools, PoolsError> {
        let mut pools = Vec::new();
        let mut by_model = vec![Vec::new(); config.models.len()];
        let mut next_id = 0;
        for pool in &config.pools {
            let Some(model) = config
                .models
                .iter()
                .position(|m| m.name.value == pool.model.value)
            else {
                continue;
            };
            let mut endpoints = Vec::new();
            for (j, e) in pool.endpoints.iter().enumerate() {
                let name = e
                    .name
                    .clone()
                    .unwrap_or_else(|| format!("{}-{j}", pool.name.value));
                let api = Api {
                    provider: e.provider,
                    deployment: e
                        .deployment
                        .as_deref()
                        .unwrap_or_else(|| config.models[model].upstream_name()),
                    api_version: e.api_version.as_deref(),
                };
                let (chat_url, basic) =
                    chat_url(&e.url.value, &api).map_err(|e2| PoolsError::BadUrl {
                        endpoint: name.clone(),
                        url: shown_url(&e.url.value),
                        reason: e2,
                    })?;
                let key = match &e.api_key_env {
                    Some(variable) => {
                        let key = env(variable).ok_or_else(|| PoolsError::MissingKey {
                            endpoint: name.clone(),
                            variable: variable.clone(),
                        })?;
                        let bearer = if e.provider == switchyard_policy::Provider::Openai {
                            "Bearer "
                        } else {
                            ""
                        };
                        let mut value = http::HeaderValue::try_from(format!("{bearer}{key}"))
                            .map_err(|_| PoolsError::BadKey {
                                endpoint: name.clone(),
                                variable: variable.clone(),
                            })?;
                        value.set_sensitive(true);
                        Some(value)
                    }
                    None => None,
                };
                let (authorization, api_key) = match (e.provider, key) {
                    (switchyard_policy::Provider::Openai, key) => (key.or(basic), None),
                    (switchyard_policy::Provider::Azure, key) => (
                        basic,
                        key.map(|k| (http::HeaderName::from_static("api-key"), k)),
                    ),
                    (switchyard_policy::Provider::Anthropic, key) => (
                        basic,
                        key.map(|k| (http::HeaderName::from_static("x-api-key"), k)),
                    ),
                };
                let api_version = (e.provider == switchyard_policy::Provider::Anthropic)
                    .then(|| e.api_version.as_deref().unwrap_or("2023-06-01"))
                    .map(|v| {
                        http::HeaderValue::try_from(v).map_err(|_| PoolsError::BadUrl {
                            endpoint: name.clone(),
                            url: shown_url(&e.url.value),
                            reason: format!("api_version `{v}` cannot be a header value"),
                        })
                    })
                    .transpose()?;
                endpoints.push(Arc::new(Endpoint {
                    id: next_id,
                    index: j,
                    name,
                    base_url: e.url.value.trim_end_matches('/').to_owned(),
                    shown_url: shown_url(e.url.value.trim_end_matches('/')),
                    pool: pool.name.value.clone(),
                    chat_url,
                    provider: e.provider,
                    authorization,
                    api_key,
                    api_version,
                    prompt_cache_key: e.prompt_cache_key,
                    health: Health::default(),
                    weight: e.weight.max(1),
                    latency: LatencyEwma::default(),
                    affinity_seed: switchyard_wire::hash::mix64(next_id as u64 + 1),
                    ttft: TtftModel::default(),
                    engine: EngineGauges::default(),
                    in_flight: AtomicUsize::new(0),
                    dispatched: AtomicU64::new(0),
                }));
                next_id += 1;
            }
            by_model[model].push(pools.len());
            pools.push(Pool {
                name: pool.name.value.clone(),
                model,
                context_window: pool.context_window.0,
                gpu: pool.gpu,
                endpoints,
                strategy: strategy::build(
                    pool.strategy,
                    pool.affinity_load_factor,
                    pools.len() as u64,
                ),
                ttft_budget_ms: pool.ttft_budget_ms.map(|ms| ms as f64),
                compression_factor: pool.compression_factor,
            });
        }
        for list in &mut by_model {
            list.sort_by_key(|&p| pools[p].context_window);
        }
        Ok(Pools {
            pools,
            by_model,
            epoch: Instant::now(),
            health_policy: HealthPolicy::from(&config.health),
        })
    }

    /// Milliseconds on the health clock.
    pub fn now_ms(&self) -> u64 {
        self.judge().now_ms()
    }

    /// The clock and thresholds that judge endpoint health (cheap to copy into tasks).
    pub fn judge(&self) -> HealthJudge {
        HealthJudge {
            epoch: self.epoch,
            policy: self.health_policy,
        }
    }

    /// Records a failed request or check on an endpoint; returns whether it was ejected.
    pub fn record_failure(&self, endpoint: &Endpoint) -> bool {
        self.judge().failure(endpoint)
    }

    /// Every endpoint of every pool.
    pub fn endpoints(&self) -> impl Iterator<Item = &Arc<Endpoint>> {
        self.pools.iter().flat_map(|p| p.endpoints.iter())
    }

    /// The state of every pool and endpoint, for `GET /v1/pools`.
    pub fn snapshot(&self) -> Vec<PoolSnapshot> {
        let now = self.now_ms();
        self.pools
            .iter()
            .map(|p| PoolSnapshot {
                name: p.name.clone(),
                model: p.model,
                context_window: p.context_window,
                gpu: p.gpu.map(|g| g.name()),
                strategy: p.strategy.name(),
                endpoints: p
                    .endpoints
                    .iter()
                    .map(|e| EndpointSnapshot {
                        name: e.name.clone(),
                        url: e.shown_url.clone(),
                        in_flight: e.in_flight(),
                        dispatched: e.dispatched(),
                        latency_ms: e.latency.estimate(now),
                        ttft_fit: e.ttft.fit(),
                        engine: e.engine.get(now),
                        health: e.health.snapshot(now),
                    })
                    .collect(),
            })
            .collect()
    }

    /// The most prompt tokens any pool can take, compression into it included: a
    /// request above this cannot be placed whatever route and model it gets.
    pub fn largest_reachable(&self) -> u32 {
        self.pools
            .iter()
            .map(|p| {
                let compressed = p.compression_factor.max(1.0) * f64::from(p.context_window);
                // Saturating: a factor that overflows u32 only means "anything fits".
                compressed.min(f64::from(u32::MAX)) as u32
            })
            .max()
            .unwrap_or(u32::MAX)
    }

    /// Every pool.
    pub fn all(&self) -> &[Pool] {
        &self.pools
    }

    /// The pools of a model, smallest context window first.
    pub fn of_model(&self, model: usize) -> impl Iterator<Item = &Pool> {
        self.pool_indexes(model).iter().map(|&p| &self.pools[p])
    }

    /// Indexes into [`Pools::all`] of a model's pools, smallest context window first.
    pub fn pool_indexes(&self, model: usize) -> &[usize] {
        self.by_model.get(model).map_or(&[], Vec::as_slice)
    }

    /// The pool a request needing `tokens` could be compressed into: the model's smallest
    /// pool with window B < `tokens` ≤ γ·B, when no smaller-or-equal pool already holds
    /// it. Returns the pool's index and window.
    pub fn compression_target(&self, model: usize, tokens: u32) -> Option<(usize, u32)> {
        for &index in self.pool_indexes(model) {
            let pool = &self.pools[index];
            let window = pool.context_window;
            if window >= tokens {
                return None;
            }
            if f64::from(tokens) <= pool.compression_factor * f64::from(window) {
                return Some((index, window));
            }
        }
        None
    }

    /// Requests in flight per endpoint across a model's pools (0 without endpoints).
    pub fn model_load(&self, model: usize) -> f64 {
        let (flying, endpoints) = self
            .of_model(model)
            .flat_map(|p| &p.endpoints)
            .fold((0usize, 0usize), |(f, n), e| (f + e.in_flight(), n + 1));
        if endpoints == 0 {
            0.0
        } else {
            flying as f64 / endpoints as f64
        }
    }

    /// The time to first token a model's best endpoint in rotation is predicted to take
    /// for a prompt, in milliseconds: its learned TTFT line when it has one, else its
    /// latency estimate; `None` before any endpoint of the model has answered.
    pub fn predicted_ttft_ms(&self, model: usize, prompt_tokens: u32) -> Option<f64> {
        let now = self.now_ms();
        self.of_model(model)
            .flat_map(|p| &p.endpoints)
            .filter(|e| e.health.available(now))
            .filter_map(|e| match e.ttft.fit() {
                Some(fit) => Some(fit.predict(prompt_tokens)),
                None => e.latency.estimate(now),
            })
            .min_by(f64::total_cmp)
    }

    /// Prompt tokens per second a model's pools prefill: the fastest learned TTFT line
    /// among its endpoints, else its GPU profile's chunked prefill at one sequence;
    /// `None` when neither is known.
    pub fn prefill_tokens_per_s(&self, model: usize) -> Option<f64> {
        let learned = self
            .of_model(model)
            .flat_map(|p| &p.endpoints)
            .filter_map(|e| e.ttft.fit())
            .filter(|fit| fit.ms_per_token > 0.0)
            .map(|fit| fit.prefill_tokens_per_s())
            .max_by(f64::total_cmp);
        learned.or_else(|| {
            self.of_model(model)
                .filter_map(|p| p.gpu)
                .map(|gpu| {
                    let profile = gpu.profile();
                    let chunk = profile.prefill_chunk.max(1);
                    f64::from(chunk) / profile.iteration_ms(1, f64::from(chunk)) * 1000.0
                })
                .max_by(f64::total_cmp)
        })
    }

    /// The largest context window among a model's pools (0 when it has none).
    pub fn max_context(&self, model: usize) -> u32 {
        self.of_model(model)
            .map(|p| p.context_window)
            .max()
            .unwrap_or(0)
    }
}

/// The chat completions URL of a base URL (`http://h:p`, `http://h:p/`, `http://h:p/v1`).
/// `url` with its user info and query string masked (`http://***@host/v1?***`): they
/// are how credentials ride in URLs.
fn shown_url(url: &str) -> String {
    let Ok(mut parsed) = reqwest::Url::parse(url) else {
        return "(an unparsable URL)".to_owned();
    };
    let userinfo = !parsed.username().is_empty() || parsed.password().is_some();
    let query = parsed.query().is_some();
    let _ = parsed.set_username("");
    let _ = parsed.set_password(None);
    parsed.set_query(None);
    let mut shown = parsed.to_string();
    if !url.ends_with('/') && shown.ends_with('/') && parsed.path() == "/" {
        shown.pop();
    }
    if userinfo && let Some(at) = shown.find("://") {
        shown.insert_str(at + 3, "***@");
    }
    if query {
        shown.push_str("?***");
    }
    shown
}

/// What decides an endpoint's path.
struct Api<'a> {
    provider: switchyard_policy::Provider,
    /// Azure's deployment.
    deployment: &'a str,
    /// Azure's `api-version`.
    api_version: Option<&'a str>,
}

/// The default Azure OpenAI `api-version`.
const AZURE_API_VERSION: &str = "2024-10-21";

/// The API's URI of a base URL (its provider's path), without its user info, and the
/// `Basic` authorization that user info stands for (percent-decoded, marked
/// sensitive).
fn chat_url(base: &str, api: &Api<'_>) -> Result<(http::Uri, Option<http::HeaderValue>), String> {
    use base64::Engine as _;
    use switchyard_policy::Provider;
    let mut url = reqwest::Url::parse(base).map_err(|e| e.to_string())?;
    if url.cannot_be_a_base() {
        return Err("it has no host".to_owned());
    }
    // The path is extended; a query string (`?api-version=…`) stays a query string.
    let path = url.path().trim_end_matches('/').to_owned();
    let path = match api.provider {
        Provider::Openai if path.ends_with("/v1") => format!("{path}/chat/completions"),
        Provider::Openai => format!("{path}/v1/chat/completions"),
        Provider::Anthropic if path.ends_with("/v1") => format!("{path}/messages"),
        Provider::Anthropic => format!("{path}/v1/messages"),
        Provider::Azure => {
            let deployment = percent_encoding::utf8_percent_encode(
                api.deployment,
                percent_encoding::NON_ALPHANUMERIC,
            );
            let path = path.strip_suffix("/openai").unwrap_or(&path);
            format!("{path}/openai/deployments/{deployment}/chat/completions")
        }
    };
    url.set_path(&path);
    if api.provider == Provider::Azure && !url.query_pairs().any(|(k, _)| k == "api-version") {
        url.query_pairs_mut()
            .append_pair("api-version", api.api_version.unwrap_or(AZURE_API_VERSION));
    }
    if !matches!(url.scheme(), "http" | "https") {
        return Err(format!(
            "the scheme is `{}`; use http or https",
            url.scheme()
        ));
    }
    let decode = |s: &str| {
        percent_encoding::percent_decode_str(s)
            .decode_utf8()
            .map(|d| d.into_owned())
            .map_err(|_| "its user info is not UTF-8 once decoded".to_owned())
    };
    let user = decode(url.username())?;
    let password = url.password().map(decode).transpose()?;
    let basic = if user.is_empty() && password.is_none() {
        None
    } else {
        let _ = url.set_username("");
        let _ = url.set_password(None);
        let token = base64::engine::general_purpose::STANDARD
            .encode(format!("{user}:{}", password.unwrap_or_default()));
        let mut value =
            http::HeaderValue::try_from(format!("Basic {token}")).map_err(|e| e.to_string())?;
        value.set_sensitive(true);
        Some(value)
    };
    let uri = http::Uri::try_from(url.as_str()).map_err(|e| e.to_string())?;
    Ok((uri, basic))
}

#[cfg(test)]
mod tests {
    use super::{Api, shown_url};

    fn chat_url(base: &str) -> Result<(http::Uri, Option<http::HeaderValue>), String> {
        super::chat_url(
            base,
            &Api {
                provider: switchyard_policy::Provider::Openai,
                deployment: "m",
                api_version: None,
            },
        )
    }

    #[test]
    fn chat_url_accepts_bases_with_or_without_v1() {
        let url = |base| chat_url(base).map(|(u, _)| u.to_string());
        assert_eq!(url("http://h:1").unwrap(), "http://h:1/v1/chat/completions");
        assert_eq!(
            url("http://h:1/").unwrap(),
            "http://h:1/v1/chat/completions"
        );
        assert_eq!(
            url("https://api.x.com/v1").unwrap(),
            "https://api.x.com/v1/chat/completions"
        );
        assert!(url("http://").is_err(), "no host");
        assert_eq!(shown_url("http://h:1"), "http://h:1");
        assert_eq!(shown_url("http://u:secret@h:1/v1"), "http://***@h:1/v1");
        assert_eq!(
            shown_url("https://token@h/v1?key=abc"),
            "https://***@h/v1?***"
        );
        assert!(url("http://h:99999").is_err(), "port out of range");
        assert!(url("ftp://h/v1").is_err(), "not http");
        assert_eq!(
            url("https://h/openai/v1?api-version=2024-06-01").unwrap(),
            "https://h/openai/v1/chat/completions?api-version=2024-06-01"
        );
    }

    #[test]
    fn each_provider_has_its_own_path() {
        use switchyard_policy::Provider;
        let url = |base, provider, api_version| {
            let api = Api {
                provider,
                deployment: "gpt 4o",
                api_version,
            };
            super::chat_url(base, &api).map(|(u, _)| u.to_string())
        };
        assert_eq!(
            url("https://api.anthropic.com", Provider::Anthropic, None).unwrap(),
            "https://api.anthropic.com/v1/messages"
        );
        assert_eq!(
            url("https://api.anthropic.com/v1/", Provider::Anthropic, None).unwrap(),
            "https://api.anthropic.com/v1/messages"
        );
        assert_eq!(
            url("https://r.openai.azure.com", Provider::Azure, None).unwrap(),
            "https://r.openai.azure.com/openai/deployments/gpt%204o/chat/completions?api-version=2024-10-21"
        );
        assert_eq!(
            url(
                "https://r.openai.azure.com/openai",
                Provider::Azure,
                Some("2025-01-01-preview")
            )
            .unwrap(),
            "https://r.openai.azure.com/openai/deployments/gpt%204o/chat/completions?api-version=2025-01-01-preview"
        );
        assert_eq!(
            url(
                "https://r.openai.azure.com/?api-version=2024-06-01",
                Provider::Azure,
                None
            )
            .unwrap(),
            "https://r.openai.azure.com/openai/deployments/gpt%204o/chat/completions?api-version=2024-06-01",
            "a version in the URL stays"
        );
    }

    #[test]
    fn user_info_becomes_basic_authorization_and_leaves_the_uri() {
        let (uri, basic) = chat_url("http://us%40er:p%3Ass@h:1/v1").unwrap();
        assert_eq!(uri.to_string(), "http://h:1/v1/chat/completions");
        let basic = basic.unwrap();
        assert!(basic.is_sensitive());
        // base64("us@er:p:ss")
        assert_eq!(basic.to_str().unwrap(), "Basic dXNAZXI6cDpzcw==");
        let (_, token_only) = chat_url("https://token@h/v1").unwrap();
        assert_eq!(token_only.unwrap().to_str().unwrap(), "Basic dG9rZW46");
        assert!(chat_url("http://h:1").unwrap().1.is_none());
    }
}
