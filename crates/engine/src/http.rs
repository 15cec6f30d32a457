//! The engine's HTTP face.

use crate::apis::Api;
use crate::prefix_cache::{HASH_START, PrefixCache, Retention, hash_turn};
use crate::quality::{Skill, Verdict, judge, sample_right, text_seed, token_logprob};
use crate::scheduler::{self, Gauges, Submit, TokenEvent};
use crate::text::{output_length, prompt_hash, token_text};
use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::serve::ListenerExt;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};
use serde_json::json;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use switchyard_fleet::GpuKind;
use switchyard_wire::headers::{KV_RETENTION_FIELD, KV_RETENTION_PRIORITY, KV_RETENTION_TTL_MS};
use switchyard_wire::{ChatRequest, Conversation, Usage};
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;

/// Faults to inject, for testing what sits in front of the engine.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Faults {
    /// Fraction of requests answered with HTTP 500 at once, in [0, 1].
    #[serde(default)]
    pub error_rate: f64,
    /// Delay added before a request is queued, in milliseconds.
    #[serde(default)]
    pub added_latency_ms: u64,
    /// Stop sending after this many tokens and hold the connection open.
    #[serde(default)]
    pub stall_after_tokens: Option<u32>,
    /// Break the connection after this many tokens.
    #[serde(default)]
    pub drop_after_tokens: Option<u32>,
    /// Fraction of answers made wrong, in [0, 1] (the same prompts each time): their
    /// verdict and logprobs are those of a wrong answer, whatever the skill or answer
    /// key says.
    #[serde(default)]
    pub wrong_answers: f64,
}

impl Faults {
    /// Checks ranges.
    pub fn validate(&self) -> Result<(), String> {
        if !(0.0..=1.0).contains(&self.error_rate) {
            return Err(format!("error_rate {} is outside [0, 1]", self.error_rate));
        }
        if !(0.0..=1.0).contains(&self.wrong_answers) {
            return Err(format!(
                "wrong_answers {} is outside [0, 1]",
                self.wrong_answers
            ));
        }
        Ok(())
    }
}

/// How one engine behaves.
#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// The model name it reports.
    pub model: String,
    /// The GPU it simulates; `None` answers instantly (for measuring what is in front).
    pub gpu: Option<GpuKind>,
    /// Its context window in tokens.
    pub context_window: u32,
    /// Mean answer length in tokens (each answer is ½ to 1½ times it, fixed by the prompt).
    pub mean_output_tokens: u32,
    /// Seed of the fault injector's random draws.
    pub seed: u64,
    /// Faults injected from the start.
    pub faults: Faults,
    /// Tokens the prefix cache holds; `None` is half the GPU's KV capacity, 0 turns
    /// the cache off.
    pub prefix_cache_tokens: Option<u64>,
    /// How often its answers are right and how calibrated its confidence is.
    pub skill: Skill,
    /// Whether its answer to a prompt is right, by [`answer_key`] of the last user
    /// turn; prompts not in it are judged by the skill.
    pub answer_key: Option<Arc<HashMap<u64, bool>>>,
    /// The API it serves.
    pub api: crate::apis::Api,
    /// The key clients must send in the API's header (none: any request is served).
    pub api_key: Option<String>,
}

/// The key of a prompt in an [`EngineConfig::answer_key`]: the hash of its last user
/// turn's text.
pub fn answer_key(text: &str) -> u64 {
    prompt_hash(text)
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            model: "sim".to_owned(),
            gpu: Some(GpuKind::A100),
            context_window: 8192,
            mean_output_tokens: 64,
            seed: 0,
            faults: Faults::default(),
            prefix_cache_tokens: None,
            skill: Skill::default(),
            answer_key: None,
            api: crate::apis::Api::Openai,
            api_key: None,
        }
    }
}

struct EngineState {
    config: EngineConfig,
    faults: Mutex<Faults>,
    rng: Mutex<StdRng>,
    scheduler: Option<mpsc::UnboundedSender<Submit>>,
    gauges: Arc<Gauges>,
    requests: AtomicU64,
    injected_errors: AtomicU64,
    next_id: AtomicU64,
    cache: Mutex<PrefixCache>,
    epoch: std::time::Instant,
}

impl EngineState {
    fn now_ms(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX)
    }
}

/// A running engine.
#[derive(Clone)]
pub struct EngineHandle {
    /// Where it listens.
    pub addr: SocketAddr,
    state: Arc<EngineState>,
    stop: Arc<tokio::sync::Notify>,
}

impl EngineHandle {
    /// Replaces the injected faults.
    pub fn set_faults(&self, faults: Faults) {
        *lock(&self.state.faults) = faults;
    }

    /// Chat requests received so far.
    pub fn requests(&self) -> u64 {
        self.state.requests.load(Ordering::Relaxed)
    }

    /// Its base URL.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Stops listening at once; requests in progress finish, idle connections close.
    pub fn stop(&self) {
        self.stop.notify_one();
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Serves an engine on `listener` in a background task.
pub async fn serve(listener: TcpListener, config: EngineConfig) -> std::io::Result<EngineHandle> {
    config.faults.validate().map_err(std::io::Error::other)?;
    config.skill.validate().map_err(std::io::Error::other)?;
    let addr = listener.local_addr()?;
    let gauges = Arc::new(Gauges::default());
    let scheduler = config
        .gpu
        .map(|gpu| scheduler::start(gpu.profile(), config.context_window, Arc::clone(&gauges)));
    let cache_tokens = config.prefix_cache_tokens.unwrap_or_else(|| {
        config.gpu.map_or(0, |g| {
            u64::from(g.profile().kv_blocks) * u64::from(switchyard_fleet::gpu::KV_BLOCK_TOKENS) / 2
        })
    });
    let state = Arc::new(EngineState {
        cache: Mutex::new(PrefixCache::new(cache_tokens)),
        epoch: std::time::Instant::now(),
        faults: Mutex::new(config.faults.clone()),
        rng: Mutex::new(StdRng::seed_from_u64(config.seed)),
        config,
        scheduler,
        gauges,
        requests: AtomicU64::new(0),
        injected_errors: AtomicU64::new(0),
        next_id: AtomicU64::new(0),
    });
    let app = match state.config.api {
        Api::Openai => Router::new().route("/v1/chat/completions", post(chat)),
        Api::Azure => Router::new().route(
            "/openai/deployments/{deployment}/chat/completions",
            post(
                |state: State<Arc<EngineState>>,
                 uri: axum::http::Uri,
                 headers: HeaderMap,
                 body: Bytes| async move {
                    match crate::apis::azure_version_missing(uri.query()) {
                        Some(refused) => refused,
                        None => chat(state, headers, body).await,
                    }
                },
            ),
        ),
        Api::Anthropic => Router::new().route(
            "/v1/messages",
            post(
                |state: State<Arc<EngineState>>, headers: HeaderMap, body: Bytes| async move {
                    crate::apis::messages(headers, body, |headers, body| chat(state, headers, body))
                        .await
                },
            ),
        ),
    };
    let app = app
        .route("/v1/models", get(models))
        .route("/health", get(|| async { "ok" }))
        .route("/metrics", get(metrics))
        .route("/admin/faults", get(get_faults).put(put_faults))
        .with_state(Arc::clone(&state));
    let listener = listener.tap_io(|tcp| {
        let _ = tcp.set_nodelay(true);
    });
    let stop = Arc::new(tokio::sync::Notify::new());
    let stopped = Arc::clone(&stop);
    tokio::spawn(async move {
        let _ = axum::serve(listener, app)
            .with_graceful_shutdown(async move { stopped.notified().await })
            .await;
    });
    Ok(EngineHandle { addr, state, stop })
}

fn error(status: StatusCode, message: impl Into<String>) -> Response {
    let kind = if status.is_server_error() {
        "server_error"
    } else {
        "invalid_request_error"
    };
    (
        status,
        axum::Json(
            json!({"error": {"message": message.into(), "type": kind, "code": status.as_u16()}}),
        ),
    )
        .into_response()
}

async fn models(State(state): State<Arc<EngineState>>) -> Response {
    axum::Json(json!({
        "object": "list",
        "data": [{"id": state.config.model, "object": "model", "owned_by": "switchyard-engine",
                  "max_model_len": state.config.context_window}]
    }))
    .into_response()
}

async fn get_faults(State(state): State<Arc<EngineState>>) -> Response {
    axum::Json(lock(&state.faults).clone()).into_response()
}

async fn put_faults(State(state): State<Arc<EngineState>>, body: Bytes) -> Response {
    let faults: Faults = match serde_json::from_slice(&body) {
        Ok(f) => f,
        Err(e) => return error(StatusCode::BAD_REQUEST, format!("invalid faults: {e}")),
    };
    if let Err(e) = faults.validate() {
        return error(StatusCode::BAD_REQUEST, e);
    }
    *lock(&state.faults) = faults.clone();
    axum::Json(faults).into_response()
}

async fn metrics(State(state): State<Arc<EngineState>>) -> Response {
    let g = &state.gauges;
    let m = &state.config.model;
    // Modelled draw at the current batch, from the GPU's power curve (0 when instant).
    let running = g.running.load(Ordering::Relaxed);
    let watts = state.config.gpu.map_or(0.0, |gpu| {
        gpu.power()
            .watts(usize::try_from(running).unwrap_or(usize::MAX))
    });
    let (cache_queries, cache_hits) = {
        let cache = lock(&state.cache);
        (cache.queried_tokens, cache.hit_tokens)
    };
    let text = format!(
        "# TYPE vllm:num_requests_running gauge\nvllm:num_requests_running{{model_name=\"{m}\"}} {}\n\
         # TYPE vllm:num_requests_waiting gauge\nvllm:num_requests_waiting{{model_name=\"{m}\"}} {}\n\
         # TYPE vllm:kv_cache_usage_perc gauge\nvllm:kv_cache_usage_perc{{model_name=\"{m}\"}} {}\n\
         # TYPE vllm:generation_tokens_total counter\nvllm:generation_tokens_total{{model_name=\"{m}\"}} {}\n\
         # TYPE switchyard_engine_requests_total counter\nswitchyard_engine_requests_total {}\n\
         # TYPE switchyard_engine_injected_errors_total counter\nswitchyard_engine_injected_errors_total {}\n\
         # TYPE switchyard_engine_iterations_total counter\nswitchyard_engine_iterations_total {}\n\
         # TYPE vllm:prefix_cache_queries_total counter\nvllm:prefix_cache_queries_total{{model_name=\"{m}\"}} {}\n\
         # TYPE vllm:prefix_cache_hits_total counter\nvllm:prefix_cache_hits_total{{model_name=\"{m}\"}} {}\n\
         # TYPE switchyard_engine_power_watts gauge\nswitchyard_engine_power_watts {}\n",
        g.running.load(Ordering::Relaxed),
        g.waiting.load(Ordering::Relaxed),
        g.kv_usage(),
        g.generated_tokens.load(Ordering::Relaxed),
        state.requests.load(Ordering::Relaxed),
        state.injected_errors.load(Ordering::Relaxed),
        g.iterations.load(Ordering::Relaxed),
        cache_queries,
        cache_hits,
        watts,
    );
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], text).into_response()
}

/// Where tokens come from: the scheduler, or at once in instant mode.
enum TokenSource {
    Scheduled(mpsc::UnboundedReceiver<TokenEvent>),
    Instant { next: u32, total: u32 },
}

impl TokenSource {
    async fn next(&mut self) -> Option<TokenEvent> {
        match self {
            TokenSource::Scheduled(rx) => rx.recv().await,
            TokenSource::Instant { next, total } => {
                if *next < *total {
                    *next += 1;
                    Some(TokenEvent::Token(*next - 1))
                } else {
                    Some(TokenEvent::Finished)
                }
            }
        }
    }
}

/// Where a finished answer's conversation goes in the prefix cache.
struct CacheOnFinish {
    state: Arc<EngineState>,
    /// Hash of every turn of the request.
    turns: u64,
    retention: Option<Retention>,
    /// The turns before the last one (a system prompt, an earlier exchange): their
    /// hash and about how many of the prompt's tokens they are. A later request that
    /// starts the same way reads them from the cache.
    prefix: Option<(u64, u32)>,
}

impl CacheOnFinish {
    fn store(&self, answer_text: &str, tokens: u32) {
        let key = hash_turn(self.turns, "assistant", answer_text);
        let now = self.state.now_ms();
        let mut cache = lock(&self.state.cache);
        if let Some((prefix, prefix_tokens)) = self.prefix.filter(|p| p.1 > 0) {
            cache.insert(prefix, prefix_tokens, self.retention, now);
        }
        cache.insert(key, tokens, self.retention, now);
    }
}

/// Answers one request may ask for (`n`).
const MAX_ANSWERS: u32 = 8;

/// One answer being generated.
struct Answer {
    id: String,
    model: String,
    created: u64,
    seed: u64,
    prompt: u32,
    output: u32,
    finish_reason: &'static str,
    cache: Option<CacheOnFinish>,
    verdict: Verdict,
    /// Logprobs asked for: `Some(k)` with `k` alternatives per token.
    logprobs: Option<u32>,
    /// The further answers of `n` > 1 (whole answers only): each one's words' seed and
    /// whether it is right.
    samples: Vec<(u64, bool)>,
    /// Prompt tokens read from the prefix cache (`None` without a cache).
    cached: Option<u32>,
}

/// Token `index` of the answer whose words come from `seed`.
fn word(seed: u64, index: u32) -> String {
    let word = token_text(seed, index);
    if index == 0 {
        word.to_owned()
    } else {
        format!(" {word}")
    }
}

impl Answer {
    fn token(&self, index: u32) -> String {
        word(text_seed(self.seed, self.verdict.correct, 0), index)
    }

    /// The logprobs entry of token `index` (`top_logprobs` holds the token and `k − 1`
    /// other words sharing what probability is left).
    fn logprob(&self, index: u32, k: u32) -> serde_json::Value {
        let token = self.token(index);
        let logprob = token_logprob(self.seed, self.verdict.confidence, index, self.output);
        let rest = k.saturating_sub(1);
        let mut top = Vec::new();
        if k > 0 {
            top.push(json!({"token": token, "logprob": logprob, "bytes": token.as_bytes()}));
        }
        let left = (1.0 - logprob.exp()).max(1e-12) / f64::from(rest.max(1));
        for j in 0..rest {
            let other = token_text(self.seed ^ 0x0A17, index.wrapping_mul(31).wrapping_add(j));
            top.push(json!({"token": other, "logprob": left.ln(), "bytes": other.as_bytes()}));
        }
        json!({"token": token, "logprob": logprob, "bytes": token.as_bytes(), "top_logprobs": top})
    }

    /// What the engine knows of its answer (a field of its own, for tests and
    /// evaluations to grade answers by).
    fn verdict(&self) -> serde_json::Value {
        json!({"correct": self.verdict.correct, "confidence": self.verdict.confidence})
    }

    fn chunk(&self, index: u32) -> Bytes {
        let mut delta = json!({"content": self.token(index)});
        if index == 0 {
            delta["role"] = json!("assistant");
        }
        let last = index + 1 == self.output;
        let finish = last.then_some(self.finish_reason);
        let mut choice = json!({"index": 0, "delta": delta, "finish_reason": finish});
        if let Some(k) = self.logprobs {
            choice["logprobs"] = json!({"content": [self.logprob(index, k)]});
        }
        let mut chunk = json!({
            "id": self.id, "object": "chat.completion.chunk", "created": self.created,
            "model": self.model,
            "choices": [choice],
        });
        if last {
            chunk["switchyard_engine"] = self.verdict();
        }
        Bytes::from(format!("data: {chunk}\n\n"))
    }

    /// Usage, with the prompt tokens the cache held when the engine has one.
    fn usage(&self, completion: u64) -> Usage {
        let usage = Usage::new(u64::from(self.prompt), completion);
        match self.cached {
            Some(cached) => usage.with_cached(u64::from(cached)),
            None => usage,
        }
    }

    fn usage_chunk(&self, completion: u32) -> Bytes {
        let chunk = json!({
            "id": self.id, "object": "chat.completion.chunk", "created": self.created,
            "model": self.model, "choices": [],
            "usage": self.usage(u64::from(completion)),
        });
        Bytes::from(format!("data: {chunk}\n\n"))
    }

    fn whole(&self, text: &str, completion: u32) -> serde_json::Value {
        let mut choice = json!({"index": 0, "message": {"role": "assistant", "content": text},
                                "finish_reason": self.finish_reason});
        if let Some(k) = self.logprobs {
            let content: Vec<serde_json::Value> =
                (0..completion).map(|i| self.logprob(i, k)).collect();
            choice["logprobs"] = json!({"content": content});
        }
        let mut choices = vec![choice];
        for (i, (seed, _)) in self.samples.iter().enumerate() {
            let text: String = (0..completion).map(|t| word(*seed, t)).collect();
            choices.push(json!({"index": i + 1,
                                "message": {"role": "assistant", "content": text},
                                "finish_reason": self.finish_reason}));
        }
        let answers = u32::try_from(choices.len()).unwrap_or(1);
        let mut verdict = self.verdict();
        if !self.samples.is_empty() {
            verdict["samples_correct"] =
                json!(self.samples.iter().map(|s| s.1).collect::<Vec<_>>());
        }
        json!({
            "id": self.id, "object": "chat.completion", "created": self.created,
            "model": self.model,
            "choices": choices,
            "usage": self.usage(u64::from(completion) * u64::from(answers)),
            "switchyard_engine": verdict,
        })
    }
}

/// The retention hint of a request: its headers, else its `kv_retention` body field.
fn retention(headers: &HeaderMap, request: &ChatRequest) -> Option<Retention> {
    let number = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
    };
    let from_headers = || {
        Some(Retention {
            priority: u8::try_from(number(KV_RETENTION_PRIORITY)?).unwrap_or(u8::MAX),
            ttl_ms: number(KV_RETENTION_TTL_MS)?,
        })
    };
    let from_body = || {
        let field = request.extra.get(KV_RETENTION_FIELD)?;
        Some(Retention {
            priority: u8::try_from(field.get("priority")?.as_u64()?).unwrap_or(u8::MAX),
            ttl_ms: field.get("ttl_ms")?.as_u64()?,
        })
    };
    from_headers().or_else(from_body)
}

async fn chat(State(state): State<Arc<EngineState>>, headers: HeaderMap, body: Bytes) -> Response {
    state.requests.fetch_add(1, Ordering::Relaxed);
    let key = state.config.api_key.as_deref();
    if let Some(refused) = crate::apis::unauthorized(state.config.api, key, &headers) {
        return refused;
    }
    let request: ChatRequest = match serde_json::from_slice(&body) {
        Ok(r) => r,
        Err(e) => return error(StatusCode::BAD_REQUEST, format!("invalid request: {e}")),
    };
    let faults = lock(&state.faults).clone();
    if faults.added_latency_ms > 0 {
        tokio::time::sleep(Duration::from_millis(faults.added_latency_ms)).await;
    }
    if faults.error_rate > 0.0 && lock(&state.rng).random::<f64>() < faults.error_rate {
        state.injected_errors.fetch_add(1, Ordering::Relaxed);
        return error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "injected fault: engine error",
        );
    }
    let conversation = Conversation::from_chat(&request, None);
    let prompt = conversation.prompt_tokens;
    let window = state.config.context_window;
    let cap = request.output_cap();
    let asked = prompt.saturating_add(cap.unwrap_or(1).max(1));
    if asked > window {
        return error(
            StatusCode::BAD_REQUEST,
            format!(
                "This model's maximum context length is {window} tokens. However, you requested \
                 {asked} tokens ({prompt} in the messages, {} in the completion).",
                cap.unwrap_or(1)
            ),
        );
    }
    let text: String = conversation.turns.iter().map(|t| t.text.as_str()).collect();
    let seed = prompt_hash(&text);
    // The turns before the last are the previous request and its answer: their KV may
    // still be cached.
    let mut turns_hash = HASH_START;
    let mut prefix_hash = None;
    let mut prefix_bytes = 0usize;
    for (i, turn) in conversation.turns.iter().enumerate() {
        if i + 1 == conversation.turns.len() && i > 0 {
            prefix_hash = Some(turns_hash);
        }
        if i + 1 < conversation.turns.len() {
            prefix_bytes += turn.text.len();
        }
        turns_hash = hash_turn(turns_hash, &turn.role, &turn.text);
    }
    // The prefix's share of the prompt's tokens, by its share of the text.
    let prefix_tokens =
        u32::try_from(u64::from(prompt) * prefix_bytes as u64 / text.len().max(1) as u64)
            .unwrap_or(prompt)
            .min(prompt);
    let now = state.now_ms();
    let cached = prefix_hash.map_or(0, |p| lock(&state.cache).lookup(p, prompt, now));
    let natural = output_length(seed, state.config.mean_output_tokens);
    let output = natural
        .min(cap.unwrap_or(u32::MAX))
        .min(window - prompt)
        .max(1);
    let last_user = conversation.last_user_text();
    let known = state
        .config
        .answer_key
        .as_ref()
        .and_then(|key| key.get(&answer_key(last_user)).copied());
    let draw = (switchyard_wire::hash::mix64(seed ^ 0x3e0f_a175) >> 11) as f64;
    let forced_wrong = faults.wrong_answers > draw / (1u64 << 53) as f64;
    let verdict = judge(
        seed,
        state.config.skill,
        if forced_wrong { Some(false) } else { known },
    );
    let logprobs = match request.extra.get("logprobs") {
        Some(serde_json::Value::Bool(true)) => Some(
            request
                .extra
                .get("top_logprobs")
                .and_then(serde_json::Value::as_u64)
                .map_or(0, |k| u32::try_from(k.min(20)).unwrap_or(20)),
        ),
        _ => None,
    };
    // Further samples of `n`: at temperature 0 the same answer again; above it, each
    // lands on the right answer with the answer's confidence.
    let n = request.answers().min(MAX_ANSWERS);
    if n > 1 && request.is_stream() {
        return error(
            StatusCode::BAD_REQUEST,
            "the simulated engine streams one answer: n > 1 is for whole answers",
        );
    }
    let greedy = request
        .extra
        .get("temperature")
        .and_then(serde_json::Value::as_f64)
        .is_some_and(|t| t <= 0.0);
    let samples = (1..n)
        .map(|j| {
            let right = if greedy {
                verdict.correct
            } else {
                sample_right(seed, verdict.confidence, j)
            };
            let j = if greedy { 0 } else { j };
            (text_seed(seed, right, j), right)
        })
        .collect();
    let answer = Answer {
        verdict,
        logprobs,
        samples,
        id: format!("chatcmpl-{}", state.next_id.fetch_add(1, Ordering::Relaxed)),
        model: request.model.clone(),
        created: SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs()),
        seed,
        prompt,
        output,
        finish_reason: if output < natural { "length" } else { "stop" },
        cache: state.scheduler.is_some().then(|| CacheOnFinish {
            state: Arc::clone(&state),
            turns: turns_hash,
            retention: retention(&headers, &request),
            // An entry already there holds the exact count: it stays.
            prefix: prefix_hash
                .filter(|_| cached == 0)
                .map(|p| (p, prefix_tokens)),
        }),
        cached: state.scheduler.is_some().then_some(cached),
    };
    let source = match &state.scheduler {
        Some(scheduler) => {
            let (tx, rx) = mpsc::unbounded_channel();
            if scheduler
                .send(Submit {
                    prompt,
                    cached,
                    output,
                    events: tx,
                })
                .is_err()
            {
                return error(StatusCode::SERVICE_UNAVAILABLE, "engine scheduler is down");
            }
            TokenSource::Scheduled(rx)
        }
        None => TokenSource::Instant {
            next: 0,
            total: output,
        },
    };
    if request.is_stream() {
        stream_answer(answer, source, faults, request.wants_stream_usage())
    } else {
        whole_answer(answer, source, faults).await
    }
}

fn stream_answer(answer: Answer, mut source: TokenSource, faults: Faults, usage: bool) -> Response {
    let (tx, rx) = mpsc::channel::<Result<Bytes, std::io::Error>>(64);
    tokio::spawn(async move {
        let mut sent = 0u32;
        let mut text = String::new();
        loop {
            match source.next().await {
                Some(TokenEvent::Token(index)) => {
                    if faults.stall_after_tokens.is_some_and(|n| sent >= n) {
                        drop(source);
                        tx.closed().await;
                        return;
                    }
                    if faults.drop_after_tokens.is_some_and(|n| sent >= n) {
                        let _ = tx
                            .send(Err(std::io::Error::other("injected fault: drop")))
                            .await;
                        return;
                    }
                    if tx.send(Ok(answer.chunk(index))).await.is_err() {
                        return;
                    }
                    if answer.cache.is_some() {
                        text.push_str(&answer.token(index));
                    }
                    sent += 1;
                }
                Some(TokenEvent::Finished) => {
                    if let Some(cache) = &answer.cache {
                        cache.store(&text, answer.prompt + sent);
                    }
                    if usage {
                        let _ = tx.send(Ok(answer.usage_chunk(sent))).await;
                    }
                    let _ = tx.send(Ok(Bytes::from_static(b"data: [DONE]\n\n"))).await;
                    return;
                }
                None => {
                    let _ = tx
                        .send(Err(std::io::Error::other("sequence refused")))
                        .await;
                    return;
                }
            }
        }
    });
    Response::builder()
        .header(header::CONTENT_TYPE, "text/event-stream")
        .header(header::CACHE_CONTROL, "no-cache")
        .body(Body::from_stream(ReceiverStream::new(rx)))
        .unwrap_or_else(|_| error(StatusCode::INTERNAL_SERVER_ERROR, "cannot build response"))
}

async fn whole_answer(answer: Answer, mut source: TokenSource, faults: Faults) -> Response {
    let mut text = String::new();
    let mut generated = 0u32;
    loop {
        match source.next().await {
            Some(TokenEvent::Token(index)) => {
                if faults.stall_after_tokens.is_some_and(|n| generated >= n) {
                    drop(source);
                    // Hold the connection until the client gives up.
                    let never = std::future::pending::<std::convert::Infallible>().await;
                    match never {}
                }
                if faults.drop_after_tokens.is_some_and(|n| generated >= n) {
                    let partial = Bytes::from(format!("{{\"id\":\"{}\",\"choices\":[", answer.id));
                    let body = futures_util::stream::iter([
                        Ok(partial),
                        Err(std::io::Error::other("injected fault: drop")),
                    ]);
                    return Response::builder()
                        .header(header::CONTENT_TYPE, "application/json")
                        .body(Body::from_stream(body))
                        .unwrap_or_else(|_| {
                            error(StatusCode::INTERNAL_SERVER_ERROR, "cannot build response")
                        });
                }
                text.push_str(&answer.token(index));
                generated += 1;
            }
            Some(TokenEvent::Finished) => break,
            None => return error(StatusCode::SERVICE_UNAVAILABLE, "sequence refused"),
        }
    }
    if let Some(cache) = &answer.cache {
        cache.store(&text, answer.prompt + generated);
    }
    axum::Json(answer.whole(&text, generated)).into_response()
}
