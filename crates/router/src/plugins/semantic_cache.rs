//! `semantic_cache`: answers a question asked before from the cache, without the
//! upstream. A request is looked up by its exact question first (the last user turn,
//! whitespace collapsed), then by meaning: the most similar question asked in the
//! same partition, when its embedding's cosine similarity reaches `threshold`. The
//! partition is the scope's owner (`global`; one verified `caller`; one `tenant`
//! header value), the route, the model and everything else the answer depends on
//! (earlier turns, system prompt, sampling parameters, tools): a hit for one tenant is
//! never served to another, and a question asked after a different conversation is
//! a different question.
//!
//! What is stored: the final text of whole and streamed answers that finished
//! (`finish_reason: stop`) with a 200, with their usage (a stream's when its client
//! asked for it). Streams are stored as they end, before `[DONE]` goes out. Never
//! answers that failed, broke off, were cut by `max_tokens`, called tools or carry
//! redaction placeholders (`<EMAIL_1>`: personal data stays out of the cache).
//! Requests asking for several answers or holding a placeholder in any turn are not
//! cached; requests with tools, non-text parts or a `temperature` above 0 only when
//! configured. A hit is replayed in the client's shape (a stream
//! for a streaming request, ending with usage when asked) and is marked
//! `x-switchyard-cache: hit` (`miss`; `bypass` with `x-switchyard-cache-bypass` saying
//! why).
//!
//! Honesty: `verify_share` of the hits (spread evenly, at most `verify_max_in_flight`
//! at a time) also go upstream in the background ([`LocalAnswer::verify`]); the
//! gateway compares the upstream's answer with the cached one, and the plugin counts
//! the verdict per route and match kind (the measured false-hit rate) and drops an
//! entry that disagreed.
//!
//! The plugin sees the answer where it stands in the chain: list it last, after the
//! plugins that rewrite or guard answers, so that what it stores is what the client
//! got.

use super::{
    ChunkFlow, Context, Flow, Hooks, LocalAnswer, Observation, Plugin, PluginError, Reads,
    RequestInfo, State, UpstreamRequest, Verification,
};
use crate::cache::{
    CacheStore, CachedAnswer, Key, MemoryStore, PostgresConfig, PostgresStore, normalized,
};
use http::{HeaderMap, HeaderName, HeaderValue};
use regex::Regex;
use serde::Deserialize;
use serde_json::{Map, Value};
use std::io::Write;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, LazyLock};
use std::time::Duration;
use switchyard_wire::hash::{FNV_OFFSET, fnv1a};
use switchyard_wire::{ChatRequest, MessageContent, Usage};

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
enum Scope {
    /// One cache for every caller.
    #[default]
    Global,
    /// One per verified caller (`signals.identity`).
    Caller,
    /// One per value of the tenant header, taken as sent: only behind a proxy that
    /// sets it (a client could name any tenant).
    Tenant,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
enum Backend {
    #[default]
    Memory,
    /// PostgreSQL with pgvector (`postgres` options).
    Postgres,
}

/// Where the `postgres` backend is.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PostgresOptions {
    /// A connection URL (`postgres://user:password@host:port/db`).
    url: String,
    /// The table, created when missing.
    #[serde(default = "default_table")]
    table: String,
    /// Connections kept at most.
    #[serde(default = "default_pool")]
    pool_size: usize,
    /// Each database operation's deadline; past it the request is a miss.
    #[serde(default = "default_db_timeout")]
    timeout_ms: u64,
    /// The length of the embeddings (the default model's: 384).
    #[serde(default = "default_dimensions")]
    dimensions: usize,
}

fn default_table() -> String {
    "switchyard_cache".to_owned()
}
fn default_pool() -> usize {
    8
}
fn default_db_timeout() -> u64 {
    50
}
fn default_dimensions() -> usize {
    384
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Options {
    /// Least cosine similarity of two questions for a semantic hit.
    #[serde(default = "default_threshold")]
    threshold: f32,
    /// Match by meaning (needs `signals.model`); false: exact questions only.
    #[serde(default = "yes")]
    semantic: bool,
    /// Seconds an answer is served from the cache.
    #[serde(default = "default_ttl")]
    ttl_s: u64,
    #[serde(default)]
    scope: Scope,
    /// The header naming the tenant (`scope: tenant`).
    #[serde(default = "default_tenant_header")]
    tenant_header: String,
    #[serde(default)]
    backend: Backend,
    /// The database of the `postgres` backend.
    #[serde(default)]
    postgres: Option<PostgresOptions>,
    /// Entries kept at most.
    #[serde(default = "default_entries")]
    max_entries: usize,
    /// Bytes kept at most (texts, vectors and bookkeeping).
    #[serde(default = "default_bytes")]
    max_bytes: usize,
    /// Largest answer stored, in bytes.
    #[serde(default = "default_answer_bytes")]
    max_answer_bytes: usize,
    /// Cache requests that define tools.
    #[serde(default)]
    cache_tools: bool,
    /// Cache requests with non-text parts (images, audio, files).
    #[serde(default)]
    cache_non_text: bool,
    /// Cache requests that set `temperature` above 0.
    #[serde(default)]
    cache_sampled: bool,
    /// Routes whose requests are never cached (a global cache's opt-out).
    #[serde(default)]
    skip_routes: Vec<String>,
    /// How long a request waits for its embedding when no signal computed it.
    #[serde(default = "default_embed_ms")]
    embed_timeout_ms: u64,
    /// Share of hits also sent upstream in the background, whose answers are compared
    /// with the cached ones: the measured false-hit rate (0: none).
    #[serde(default)]
    verify_share: f64,
    /// Least similarity of the upstream's answer to the cached one for a verified hit
    /// to count as true (embedding cosine; exact text without the model).
    #[serde(default = "default_verify_threshold")]
    verify_threshold: f32,
    /// Verifications in flight at most; hits meanwhile are not verified.
    #[serde(default = "default_verify_in_flight")]
    verify_max_in_flight: usize,
    /// Drop an entry whose verification found it false.
    #[serde(default = "yes")]
    evict_false_hits: bool,
}

fn default_threshold() -> f32 {
    0.95
}
fn yes() -> bool {
    true
}
fn default_ttl() -> u64 {
    3600
}
fn default_tenant_header() -> String {
    "x-tenant-id".to_owned()
}
fn default_entries() -> usize {
    10_000
}
fn default_bytes() -> usize {
    64 << 20
}
fn default_answer_bytes() -> usize {
    64 << 10
}
fn default_embed_ms() -> u64 {
    250
}
fn default_verify_threshold() -> f32 {
    0.9
}
fn default_verify_in_flight() -> usize {
    4
}

/// Picks the hits to verify: exactly `share` of them, spread evenly, whatever the
/// clients send; at most `max` at a time.
#[derive(Debug)]
struct Verifier {
    share: f64,
    threshold: f32,
    max: usize,
    evict: bool,
    hits: AtomicU64,
    in_flight: Arc<AtomicUsize>,
}

/// A verification in flight, given back when the request's state is dropped.
#[derive(Debug)]
struct Slot(Arc<AtomicUsize>);

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

impl Verifier {
    /// A slot when this hit is one to verify.
    fn pick(&self) -> Option<Slot> {
        if self.share <= 0.0 {
            return None;
        }
        let n = self.hits.fetch_add(1, Ordering::Relaxed) as f64;
        // The n-th hit is picked when it carries the running share over a whole one.
        if ((n + 1.0) * self.share).floor() <= (n * self.share).floor() {
            return None;
        }
        self.in_flight
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |held| {
                (held < self.max).then_some(held + 1)
            })
            .ok()
            .map(|_| Slot(Arc::clone(&self.in_flight)))
    }
}

#[derive(Debug)]
struct SemanticCache {
    store: Arc<dyn CacheStore>,
    threshold: f32,
    semantic: bool,
    ttl: Duration,
    scope: Scope,
    tenant_header: String,
    max_answer_bytes: usize,
    cache_tools: bool,
    cache_non_text: bool,
    cache_sampled: bool,
    skip_routes: Vec<String>,
    embed_timeout: Duration,
    verifier: Verifier,
}

/// Builds the plugin from its options.
pub fn build(
    options: &Map<String, Value>,
    context: &Context<'_>,
) -> Result<Box<dyn Plugin>, String> {
    Ok(Box::new(SemanticCache::new(
        super::options(options)?,
        context,
    )?))
}

impl SemanticCache {
    fn new(o: Options, context: &Context<'_>) -> Result<SemanticCache, String> {
        if !(o.threshold > 0.0 && o.threshold <= 1.0) {
            return Err(format!("threshold {} is not in (0, 1]", o.threshold));
        }
        if o.ttl_s == 0 {
            return Err(
                "ttl_s is 0: nothing would ever be served; leave it out (default 3600)".to_owned(),
            );
        }
        if o.max_entries == 0 || o.max_bytes == 0 {
            return Err("max_entries and max_bytes must be above 0".to_owned());
        }
        if o.semantic && !context.embedding_model {
            return Err(
                "semantic matching needs the embedding model: set signals.model (scripts/fetch-model.sh installs the default), or `semantic: false` for exact questions only"
                    .to_owned(),
            );
        }
        if o.scope == Scope::Caller && !context.identity {
            return Err("scope `caller` needs verified callers: configure signals.identity, or use scope `tenant` or `global`".to_owned());
        }
        let tenant_header = o.tenant_header.to_ascii_lowercase();
        if HeaderName::from_bytes(tenant_header.as_bytes()).is_err() {
            return Err(format!(
                "tenant_header `{}` is not a header name",
                o.tenant_header
            ));
        }
        if !(0.0..=1.0).contains(&o.verify_share) {
            return Err(format!(
                "verify_share {} is not in [0, 1] (the share of hits also sent upstream)",
                o.verify_share
            ));
        }
        if !(o.verify_threshold > 0.0 && o.verify_threshold <= 1.0) {
            return Err(format!(
                "verify_threshold {} is not in (0, 1]",
                o.verify_threshold
            ));
        }
        if o.verify_share > 0.0 && o.verify_max_in_flight == 0 {
            return Err("verify_max_in_flight is 0: no hit could be verified".to_owned());
        }
        let store: Arc<dyn CacheStore> = match (o.backend, o.postgres) {
            (Backend::Memory, None) => Arc::new(MemoryStore::new(o.max_entries, o.max_bytes)),
            (Backend::Memory, Some(_)) => {
                return Err(
                    "`postgres` options are for `backend: postgres`; set it, or leave them out"
                        .to_owned(),
                );
            }
            (Backend::Postgres, None) => {
                return Err(
                    "backend `postgres` needs `postgres: {url: postgres://user@host:port/db}`"
                        .to_owned(),
                );
            }
            (Backend::Postgres, Some(pg)) => Arc::new(
                PostgresStore::new(PostgresConfig {
                    url: pg.url,
                    table: pg.table,
                    pool_size: pg.pool_size,
                    timeout: Duration::from_millis(pg.timeout_ms.max(1)),
                    dimensions: pg.dimensions,
                    max_entries: o.max_entries,
                })
                .map_err(|e| format!("postgres: {e}"))?,
            ),
        };
        Ok(SemanticCache {
            store,
            threshold: o.threshold,
            semantic: o.semantic,
            ttl: Duration::from_secs(o.ttl_s),
            scope: o.scope,
            tenant_header,
            max_answer_bytes: o.max_answer_bytes,
            cache_tools: o.cache_tools,
            cache_non_text: o.cache_non_text,
            cache_sampled: o.cache_sampled,
            skip_routes: o.skip_routes,
            embed_timeout: Duration::from_millis(o.embed_timeout_ms),
            verifier: Verifier {
                share: o.verify_share,
                threshold: o.verify_threshold,
                max: o.verify_max_in_flight,
                evict: o.evict_false_hits,
                hits: AtomicU64::new(0),
                in_flight: Arc::new(AtomicUsize::new(0)),
            },
        })
    }
}

/// What the plugin knows of one request.
#[derive(Debug)]
enum Lookup {
    /// Not cached, and why.
    Bypass(&'static str),
    /// Answered from the cache; verified when picked.
    Hit(Option<Box<Verify>>),
    /// Not found: the answer is collected and stored if it qualifies.
    Miss(Box<Pending>),
}

/// A hit being verified.
#[derive(Debug)]
struct Verify {
    /// The entry served.
    id: u64,
    exact: bool,
    _slot: Slot,
}

#[derive(Debug)]
struct Pending {
    partition: u64,
    question: String,
    vector: Option<Arc<[f32]>>,
    text: String,
    finish: Option<String>,
    /// Still worth storing (one choice, text only, within the size cap).
    storable: bool,
    /// The stream finished (whole answers: the answer was read).
    complete: bool,
    /// What the answer cost, when a streamed event carried it.
    usage: Option<Usage>,
}

/// Redaction placeholders (`<EMAIL_1>`, `<IP_ADDRESS_2>`), as `pii_redact` writes them.
static PLACEHOLDER: LazyLock<Regex> = LazyLock::new(|| {
    #[allow(clippy::expect_used)] // a constant pattern
    Regex::new(r"<[A-Z]+(?:_[A-Z]+)*_\d+>").expect("a valid pattern")
});

/// Writes into an FNV-1a hash.
struct Hasher(u64);

impl Write for Hasher {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0 = fnv1a(bytes, self.0);
        Ok(bytes.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Hasher {
    fn part(&mut self, bytes: &[u8]) {
        self.0 = fnv1a(bytes, self.0);
        // A separator no JSON text or header value holds.
        self.0 = fnv1a(&[0xff], self.0);
    }
    fn json(&mut self, value: &impl serde::Serialize) {
        // Serializing into a hash cannot fail for these values; a failure would only
        // make the key differ from a later one (a miss).
        let _ = serde_json::to_writer(&mut *self, value);
        self.part(&[]);
    }
}

/// The question: the text of the last turn, whitespace collapsed.
fn question(content: Option<&MessageContent>) -> String {
    normalized(&content.map(MessageContent::text).unwrap_or_default())
}

/// Fields that do not change the answer's text.
const NOT_KEYED: [&str; 2] = ["user", "metadata"];

impl SemanticCache {
    /// Why a request is not cached, if it is not.
    fn bypass(&self, info: &RequestInfo<'_>, body: &ChatRequest) -> Option<&'static str> {
        if self.skip_routes.iter().any(|r| r == info.route) {
            return Some("route opted out");
        }
        if body.answers() > 1 {
            return Some("several answers asked for");
        }
        let tools = ["tools", "functions"].iter().any(|k| {
            body.extra
                .get(*k)
                .is_some_and(|t| t.as_array().is_none_or(|a| !a.is_empty()))
        });
        if tools && !self.cache_tools {
            return Some("tools defined");
        }
        let sampled = body
            .extra
            .get("temperature")
            .and_then(Value::as_f64)
            .is_some_and(|t| t > 0.0);
        if sampled && !self.cache_sampled {
            return Some("temperature above 0");
        }
        let non_text = body.messages.iter().any(|m| match &m.content {
            Some(MessageContent::Parts(parts)) => parts.iter().any(|p| {
                !matches!(
                    p.get("type").and_then(Value::as_str),
                    Some("text" | "input_text")
                )
            }),
            _ => false,
        });
        if non_text && !self.cache_non_text {
            return Some("non-text parts");
        }
        if body.messages.last().is_none_or(|m| m.role != "user") {
            return Some("the last turn is not the user's");
        }
        // Placeholders anywhere key different people's values alike: `<EMAIL_1>` in
        // an earlier turn, restored in the answer, would reach the next client.
        let redacted = body.messages.iter().any(|m| {
            m.content
                .as_ref()
                .is_some_and(|c| PLACEHOLDER.is_match(&c.text()))
        });
        if redacted {
            return Some("redacted request");
        }
        None
    }

    /// The partition of a request: the scope's owner, route, model, and the request
    /// but its last turn's content and fields that do not change the answer.
    fn partition(&self, info: &RequestInfo<'_>, body: &ChatRequest) -> Result<u64, &'static str> {
        let mut h = Hasher(FNV_OFFSET);
        match self.scope {
            Scope::Global => h.part(b"global"),
            Scope::Caller => {
                let caller = info.caller.ok_or("no verified caller")?;
                h.part(b"caller");
                h.part(caller.as_bytes());
            }
            Scope::Tenant => {
                let tenant = info.header(&self.tenant_header).ok_or("no tenant header")?;
                h.part(b"tenant");
                h.part(tenant.as_bytes());
            }
        }
        h.part(info.route.as_bytes());
        h.part(info.model.as_bytes());
        let (last, earlier) = body.messages.split_last().ok_or("no messages")?;
        for m in earlier {
            h.json(m);
        }
        h.part(last.role.as_bytes());
        h.json(&last.extra);
        h.json(&body.model);
        h.json(&body.output_cap());
        for (k, v) in body
            .extra
            .iter()
            .filter(|(k, _)| !NOT_KEYED.contains(&k.as_str()))
        {
            h.part(k.as_bytes());
            h.json(v);
        }
        Ok(h.0)
    }
}

/// Counts a lookup (`switchyard_cache_lookups_total`), not a dry run's.
fn count(info: &RequestInfo<'_>, result: &'static str) {
    if !info.dry_run {
        metrics::counter!("switchyard_cache_lookups_total", "route" => info.route.to_owned(), "result" => result)
            .increment(1);
    }
}

fn pending(state: &mut State) -> Option<&mut Pending> {
    match state.as_mut()?.downcast_mut::<Lookup>()? {
        Lookup::Miss(p) => Some(p),
        _ => None,
    }
}

impl Plugin for SemanticCache {
    fn hooks(&self) -> Hooks {
        Hooks {
            request: true,
            response_headers: true,
            response: true,
            stream: true,
            govern: false,
            observe: true,
        }
    }

    fn reads(&self) -> Reads {
        Reads {
            embedding: self.semantic.then_some(self.embed_timeout),
            caller: self.scope == Scope::Caller,
            embedder: false,
            state: false,
            headers: if self.scope == Scope::Tenant {
                vec![self.tenant_header.clone()]
            } else {
                Vec::new()
            },
        }
    }

    fn on_request(
        &self,
        info: &RequestInfo<'_>,
        upstream: &mut UpstreamRequest<'_>,
        state: &mut State,
    ) -> Result<Flow, PluginError> {
        let body = &*upstream.body;
        let key = match self.bypass(info, body) {
            Some(reason) => Err(reason),
            None => self.partition(info, body).map(|partition| {
                let last = body.messages.last().and_then(|m| m.content.as_ref());
                (partition, question(last))
            }),
        };
        let (partition, question) = match key {
            Ok(key) => key,
            Err(reason) => {
                count(info, "bypass");
                *state = Some(Box::new(Lookup::Bypass(reason)));
                return Ok(Flow::Continue);
            }
        };
        let vector = info.embedding.filter(|_| self.semantic);
        let key = Key {
            partition,
            question: &question,
            vector,
        };
        let threshold = vector.map(|_| self.threshold);
        if let Some(hit) = self.store.lookup(&key, threshold) {
            count(
                info,
                if hit.exact {
                    "hit_exact"
                } else {
                    "hit_semantic"
                },
            );
            if !info.dry_run {
                metrics::histogram!("switchyard_cache_hit_similarity", "route" => info.route.to_owned())
                    .record(f64::from(hit.similarity));
            }
            let verify = (!info.dry_run)
                .then(|| self.verifier.pick())
                .flatten()
                .map(|slot| {
                    Box::new(Verify {
                        id: hit.id,
                        exact: hit.exact,
                        _slot: slot,
                    })
                });
            let answer = LocalAnswer {
                status: 200,
                message: hit.answer.text.clone(),
                code: String::new(),
                usage: hit.answer.usage,
                verify: verify.is_some(),
            };
            *state = Some(Box::new(Lookup::Hit(verify)));
            return Ok(Flow::Answer(answer));
        }
        count(info, "miss");
        *state = Some(Box::new(Lookup::Miss(Box::new(Pending {
            partition,
            question,
            vector: info.embedding.filter(|_| self.semantic).map(Arc::from),
            text: String::new(),
            finish: None,
            storable: true,
            complete: false,
            usage: None,
        }))));
        Ok(Flow::Continue)
    }

    fn on_response_headers(
        &self,
        _info: &RequestInfo<'_>,
        _status: u16,
        headers: &mut HeaderMap,
        state: &mut State,
    ) -> Result<(), PluginError> {
        const CACHE: HeaderName = HeaderName::from_static("x-switchyard-cache");
        const WHY: HeaderName = HeaderName::from_static("x-switchyard-cache-bypass");
        let (value, why) = match state.as_ref().and_then(|s| s.downcast_ref::<Lookup>()) {
            Some(Lookup::Hit(_)) => ("hit", None),
            Some(Lookup::Miss(_)) => ("miss", None),
            Some(Lookup::Bypass(why)) => ("bypass", Some(*why)),
            None => ("bypass", Some("not reached")),
        };
        headers.insert(CACHE, HeaderValue::from_static(value));
        if let Some(why) = why {
            headers.insert(WHY, HeaderValue::from_static(why));
        }
        Ok(())
    }

    fn on_response(
        &self,
        _info: &RequestInfo<'_>,
        body: &mut Value,
        state: &mut State,
    ) -> Result<Flow, PluginError> {
        let Some(p) = pending(state) else {
            return Ok(Flow::Continue);
        };
        let choices = body.get("choices").and_then(Value::as_array);
        let only = choices.filter(|c| c.len() == 1).and_then(|c| c.first());
        let message = only.and_then(|c| c.get("message"));
        let text = message
            .and_then(|m| m.get("content"))
            .and_then(Value::as_str);
        let calls = message
            .and_then(|m| m.get("tool_calls"))
            .is_some_and(|t| !t.is_null());
        match text {
            Some(text) if !calls && text.len() <= self.max_answer_bytes => {
                p.text = text.to_owned();
                p.finish = only
                    .and_then(|c| c.get("finish_reason"))
                    .and_then(Value::as_str)
                    .map(str::to_owned);
                p.complete = true;
            }
            _ => p.storable = false,
        }
        Ok(Flow::Continue)
    }

    fn on_response_chunk(
        &self,
        _info: &RequestInfo<'_>,
        event: String,
        out: &mut Vec<String>,
        state: &mut State,
    ) -> Result<ChunkFlow, PluginError> {
        if let Some(p) = pending(state).filter(|p| p.storable) {
            collect(p, &event, self.max_answer_bytes);
        }
        out.push(event);
        Ok(ChunkFlow::Continue)
    }

    fn on_stream_end(
        &self,
        info: &RequestInfo<'_>,
        complete: bool,
        _out: &mut Vec<String>,
        state: &mut State,
    ) -> Result<(), PluginError> {
        // Stored before `[DONE]` goes out: the client's next request finds it.
        if let Some(p) = pending(state) {
            p.complete = complete;
            let usage = p.usage;
            self.keep(info, p, usage);
        }
        Ok(())
    }

    fn on_observe(&self, info: &RequestInfo<'_>, outcome: &Observation<'_>, state: &mut State) {
        // Whole answers are observed before they are returned; streams were kept (or
        // not) as they ended.
        if info.stream || outcome.status != 200 || outcome.outcome != "ok" {
            return;
        }
        if let Some(p) = pending(state) {
            self.keep(info, p, outcome.usage);
        }
    }

    fn on_verify(&self, info: &RequestInfo<'_>, v: &Verification<'_>, state: &mut State) {
        let Some(Lookup::Hit(Some(verify))) = state.as_ref().and_then(|s| s.downcast_ref()) else {
            return;
        };
        let matched = if verify.exact { "exact" } else { "semantic" };
        let route = info.route.to_owned();
        let result = match (v.answer, v.similarity) {
            (None, _) => "failed",
            (Some(_), Some(s)) if s >= self.verifier.threshold => "agreed",
            (Some(_), _) => "disagreed",
        };
        if let Some(similarity) = v.similarity.filter(|_| v.answer.is_some()) {
            metrics::histogram!("switchyard_cache_verify_similarity", "route" => route.clone(), "match" => matched)
                .record(f64::from(similarity));
        }
        metrics::counter!("switchyard_cache_verifications_total", "route" => route, "match" => matched, "result" => result)
            .increment(1);
        match result {
            "failed" => tracing::debug!(
                request_id = info.request_id,
                error = v.error.unwrap_or(""),
                "cache verification failed"
            ),
            "disagreed" => {
                // The texts are the callers' own: only their similarity is logged.
                tracing::info!(
                    request_id = info.request_id,
                    route = info.route,
                    r#match = matched,
                    similarity = v.similarity,
                    evicted = self.verifier.evict,
                    "a verified cache hit disagreed with the upstream"
                );
                if self.verifier.evict {
                    self.store.remove(verify.id);
                }
            }
            _ => {}
        }
    }
}

impl SemanticCache {
    /// Stores a finished answer that qualifies (once).
    fn keep(&self, info: &RequestInfo<'_>, p: &mut Pending, usage: Option<Usage>) {
        let finished = p.finish.as_deref() == Some("stop");
        if info.dry_run || !p.storable || !p.complete || !finished {
            return;
        }
        p.storable = false;
        if PLACEHOLDER.is_match(&p.text) {
            return;
        }
        let key = Key {
            partition: p.partition,
            question: &p.question,
            vector: p.vector.as_deref(),
        };
        let answer = CachedAnswer {
            text: std::mem::take(&mut p.text),
            usage,
        };
        self.store.insert(&key, answer, self.ttl);
        metrics::counter!("switchyard_cache_stores_total", "route" => info.route.to_owned())
            .increment(1);
    }
}

/// Adds one streamed event's text to what is collected; anything that makes the
/// answer unfit to replay (another choice, tool calls, a text over the cap, an event
/// that is not JSON) marks it not storable.
fn collect(p: &mut Pending, event: &str, max_bytes: usize) {
    let Ok(value) = serde_json::from_str::<Value>(event) else {
        p.storable = false;
        return;
    };
    if let Some(usage) = Usage::from_json(&value) {
        p.usage = Some(usage);
    }
    let Some(choices) = value.get("choices").and_then(Value::as_array) else {
        return;
    };
    for choice in choices {
        if choice.get("index").and_then(Value::as_u64).unwrap_or(0) != 0 {
            p.storable = false;
            return;
        }
        let delta = choice.get("delta");
        if delta
            .and_then(|d| d.get("tool_calls"))
            .is_some_and(|t| !t.is_null())
        {
            p.storable = false;
            return;
        }
        if let Some(text) = delta.and_then(|d| d.get("content")).and_then(Value::as_str) {
            if p.text.len() + text.len() > max_bytes {
                p.storable = false;
                p.text = String::new();
                return;
            }
            p.text.push_str(text);
        }
        if let Some(finish) = choice.get("finish_reason").and_then(Value::as_str) {
            p.finish = Some(finish.to_owned());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cache(options: Value) -> SemanticCache {
        let Value::Object(map) = options else {
            panic!()
        };
        SemanticCache::new(super::super::options(&map).unwrap(), &Context::default()).unwrap()
    }

    fn info<'a>(headers: &'a [(String, String)]) -> RequestInfo<'a> {
        RequestInfo {
            request_id: "r",
            route: "general",
            model: "m",
            family: None,
            stream: false,
            dry_run: false,
            embedding: None,
            caller: None,
            roles: &[],
            headers,
            embedder: None,
            prompt_tokens: 0,
            output_tokens: 0,
            price: None,
        }
    }

    fn request(body: Value) -> ChatRequest {
        serde_json::from_value(body).unwrap()
    }

    #[test]
    fn bad_options_are_refused_with_the_reason() {
        let err = |o: Value| {
            let Value::Object(map) = o else { panic!() };
            build(&map, &Context::default()).unwrap_err()
        };
        assert!(err(serde_json::json!({})).contains("signals.model"));
        assert!(
            err(serde_json::json!({"semantic": false, "scope": "caller"}))
                .contains("signals.identity")
        );
        assert!(
            err(serde_json::json!({"semantic": false, "threshold": 1.5})).contains("threshold")
        );
        assert!(err(serde_json::json!({"semantic": false, "ttl_s": 0})).contains("ttl_s"));
        assert!(
            err(serde_json::json!({"semantic": false, "tenant_header": "bad header"}))
                .contains("header")
        );
        assert!(err(serde_json::json!({"semantic": false, "treshold": 0.9})).contains("threshold"));
    }

    #[test]
    fn requests_that_are_not_cached_say_why() {
        let c = cache(serde_json::json!({"semantic": false, "skip_routes": ["private"]}));
        let user = |extra: Value| {
            let mut body = serde_json::json!({"model": "auto", "messages": [{"role": "user", "content": "hi"}]});
            body.as_object_mut()
                .unwrap()
                .extend(extra.as_object().unwrap().clone());
            request(body)
        };
        let none: [(String, String); 0] = [];
        let i = info(&none);
        assert_eq!(c.bypass(&i, &user(serde_json::json!({}))), None);
        assert_eq!(
            c.bypass(&i, &user(serde_json::json!({"n": 2}))),
            Some("several answers asked for")
        );
        assert_eq!(
            c.bypass(&i, &user(serde_json::json!({"temperature": 0.7}))),
            Some("temperature above 0")
        );
        assert_eq!(
            c.bypass(&i, &user(serde_json::json!({"temperature": 0}))),
            None
        );
        assert_eq!(
            c.bypass(
                &i,
                &user(serde_json::json!({"tools": [{"type": "function"}]}))
            ),
            Some("tools defined")
        );
        let image = request(
            serde_json::json!({"model": "auto", "messages": [{"role": "user", "content": [
            {"type": "text", "text": "what is this"}, {"type": "image_url", "image_url": {"url": "data:,"}}]}]}),
        );
        assert_eq!(c.bypass(&i, &image), Some("non-text parts"));
        let earlier_redacted = request(serde_json::json!({"model": "auto", "messages": [
            {"role": "user", "content": "I am <EMAIL_1>"}, {"role": "assistant", "content": "noted"},
            {"role": "user", "content": "what is my address?"}]}));
        assert_eq!(c.bypass(&i, &earlier_redacted), Some("redacted request"));
        let tool_turn = request(serde_json::json!({"model": "auto", "messages": [
            {"role": "user", "content": "hi"}, {"role": "tool", "content": "42", "tool_call_id": "a"}]}));
        assert_eq!(
            c.bypass(&i, &tool_turn),
            Some("the last turn is not the user's")
        );
        let private = RequestInfo {
            route: "private",
            ..i
        };
        assert_eq!(
            c.bypass(&private, &user(serde_json::json!({}))),
            Some("route opted out")
        );
        let lenient = cache(
            serde_json::json!({"semantic": false, "cache_sampled": true, "cache_tools": true}),
        );
        assert_eq!(
            lenient.bypass(
                &i,
                &user(serde_json::json!({"temperature": 0.7, "tools": []}))
            ),
            None
        );
    }

    #[test]
    fn the_partition_holds_what_changes_the_answer_and_nothing_else() {
        let c = cache(serde_json::json!({"semantic": false, "scope": "tenant"}));
        let acme = [("x-tenant-id".to_owned(), "acme".to_owned())];
        let globex = [("x-tenant-id".to_owned(), "globex".to_owned())];
        let none: [(String, String); 0] = [];
        let body = |system: &str, question: &str, extra: Value| {
            let mut body = serde_json::json!({"model": "auto", "messages": [
                {"role": "system", "content": system}, {"role": "user", "content": question}]});
            body.as_object_mut()
                .unwrap()
                .extend(extra.as_object().unwrap().clone());
            request(body)
        };
        let p = |headers, b: &ChatRequest| c.partition(&info(headers), b);
        let base = p(&acme, &body("be brief", "q1", serde_json::json!({}))).unwrap();
        // The question itself is not part of it; who asks and what came before are.
        assert_eq!(
            base,
            p(&acme, &body("be brief", "q2", serde_json::json!({}))).unwrap()
        );
        assert_ne!(
            base,
            p(&globex, &body("be brief", "q1", serde_json::json!({}))).unwrap()
        );
        assert_ne!(
            base,
            p(&acme, &body("be verbose", "q1", serde_json::json!({}))).unwrap()
        );
        assert_ne!(
            base,
            p(
                &acme,
                &body("be brief", "q1", serde_json::json!({"max_tokens": 5}))
            )
            .unwrap()
        );
        assert_ne!(
            base,
            p(
                &acme,
                &body(
                    "be brief",
                    "q1",
                    serde_json::json!({"response_format": {"type": "json_object"}})
                )
            )
            .unwrap()
        );
        assert_eq!(
            base,
            p(
                &acme,
                &body(
                    "be brief",
                    "q1",
                    serde_json::json!({"user": "u7", "stream": true})
                )
            )
            .unwrap()
        );
        assert_eq!(
            p(&none, &body("be brief", "q1", serde_json::json!({}))),
            Err("no tenant header")
        );
    }

    #[test]
    fn streamed_text_is_collected_and_unfit_answers_are_marked() {
        let pending = || Pending {
            partition: 0,
            question: String::new(),
            vector: None,
            text: String::new(),
            finish: None,
            storable: true,
            complete: false,
            usage: None,
        };
        let mut p = pending();
        collect(
            &mut p,
            r#"{"choices":[{"index":0,"delta":{"role":"assistant","content":"Hel"}}]}"#,
            100,
        );
        collect(
            &mut p,
            r#"{"choices":[{"index":0,"delta":{"content":"lo"},"finish_reason":"stop"}]}"#,
            100,
        );
        collect(&mut p, r#"{"choices":[],"usage":{"prompt_tokens":1}}"#, 100);
        assert_eq!(
            (p.text.as_str(), p.finish.as_deref(), p.storable),
            ("Hello", Some("stop"), true)
        );
        assert_eq!(p.usage.map(|u| u.prompt_tokens), Some(1));
        let mut p = pending();
        collect(
            &mut p,
            r#"{"choices":[{"index":0,"delta":{"tool_calls":[{"index":0}]}}]}"#,
            100,
        );
        assert!(!p.storable);
        let mut p = pending();
        collect(
            &mut p,
            r#"{"choices":[{"index":0,"delta":{"content":"0123456789"}}]}"#,
            5,
        );
        assert!(!p.storable && p.text.is_empty());
        let mut p = pending();
        collect(&mut p, "not json", 100);
        assert!(!p.storable);
        assert!(PLACEHOLDER.is_match("write to <EMAIL_1> or <IP_ADDRESS_12>"));
        // Look-alikes only cost a store (the answer is not cached), never a leak.
        assert!(!PLACEHOLDER.is_match("a <b>tag</b>, Vec<T> and <EMAIL>"));
    }

    /// Stores an answer through the plugin's own store and returns a hit's state for
    /// it, as `on_request` leaves it when the hit is picked for verification.
    fn verified_hit(c: &SemanticCache, question: &str) -> State {
        let key = Key {
            partition: 7,
            question,
            vector: None,
        };
        let answer = CachedAnswer {
            text: "cached".to_owned(),
            usage: None,
        };
        c.store.insert(&key, answer, Duration::from_secs(60));
        let hit = c.store.lookup(&key, None).unwrap();
        let slot = c.verifier.pick().unwrap();
        Some(Box::new(Lookup::Hit(Some(Box::new(Verify {
            id: hit.id,
            exact: hit.exact,
            _slot: slot,
        })))))
    }

    #[test]
    fn exactly_the_share_of_hits_is_verified_and_no_more_than_allowed_at_once() {
        let c = cache(
            serde_json::json!({"semantic": false, "verify_share": 0.25, "verify_max_in_flight": 1000}),
        );
        let picked: Vec<Slot> = (0..100).filter_map(|_| c.verifier.pick()).collect();
        assert_eq!(picked.len(), 25);
        let c = cache(
            serde_json::json!({"semantic": false, "verify_share": 1.0, "verify_max_in_flight": 2}),
        );
        let (a, b) = (c.verifier.pick(), c.verifier.pick());
        assert!(a.is_some() && b.is_some());
        assert!(c.verifier.pick().is_none(), "two are in flight");
        drop(a);
        assert!(c.verifier.pick().is_some(), "a slot was given back");
        let none = cache(serde_json::json!({"semantic": false}));
        assert!((0..10).all(|_| none.verifier.pick().is_none()));
        let err = |o: Value| {
            let Value::Object(map) = o else { panic!() };
            build(&map, &Context::default()).unwrap_err()
        };
        assert!(
            err(serde_json::json!({"semantic": false, "verify_share": 1.5}))
                .contains("verify_share")
        );
        assert!(
            err(serde_json::json!({"semantic": false, "verify_threshold": 0}))
                .contains("verify_threshold")
        );
        assert!(
            err(serde_json::json!({"semantic": false, "verify_share": 0.1, "verify_max_in_flight": 0}))
                .contains("verify_max_in_flight")
        );
    }

    #[test]
    fn a_hit_the_upstream_disagrees_with_is_dropped_and_one_it_agrees_with_stays() {
        let none: [(String, String); 0] = [];
        let i = info(&none);
        let c = cache(
            serde_json::json!({"semantic": false, "verify_share": 1.0, "verify_threshold": 0.9}),
        );
        let verdict = |answer: Option<&'static str>, similarity: Option<f32>| Verification {
            answer,
            similarity,
            error: answer.is_none().then_some("the upstream answered 500"),
        };
        let mut agreed = verified_hit(&c, "q1");
        c.on_verify(
            &i,
            &verdict(Some("cached, said again"), Some(0.95)),
            &mut agreed,
        );
        // A failed verification says nothing of the entry.
        let mut failed = verified_hit(&c, "q2");
        c.on_verify(&i, &verdict(None, None), &mut failed);
        assert_eq!(c.store.len(), 2);
        let mut below = verified_hit(&c, "q3");
        c.on_verify(&i, &verdict(Some("something else"), Some(0.5)), &mut below);
        // Texts that differ with no similarity to tell (no model) disagree.
        let mut unknown = verified_hit(&c, "q4");
        c.on_verify(&i, &verdict(Some("something else"), None), &mut unknown);
        let held = |q: &str| {
            let key = Key {
                partition: 7,
                question: q,
                vector: None,
            };
            c.store.lookup(&key, None).is_some()
        };
        assert_eq!(
            [held("q1"), held("q2"), held("q3"), held("q4")],
            [true, true, false, false]
        );
        let kept = cache(
            serde_json::json!({"semantic": false, "verify_share": 1.0, "evict_false_hits": false}),
        );
        let mut below = verified_hit(&kept, "q");
        kept.on_verify(&i, &verdict(Some("other"), Some(0.1)), &mut below);
        assert_eq!(kept.store.len(), 1);
    }
}
