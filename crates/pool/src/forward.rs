//! The forward phase: one upstream call, with its timeouts, streamed through.

use crate::endpoint::{Endpoint, InFlight, Pools};
use crate::placement::Placement;
use crate::retention::RetentionHint;
use bytes::Bytes;
use futures_util::stream::BoxStream;
use serde::Serialize;
use std::collections::VecDeque;
use std::time::{Duration, Instant};
use switchyard_policy::Provider;
use switchyard_policy::UpstreamConfig;
use switchyard_wire::headers::{
    GATEWAY_REQUEST_HEADERS, KV_RETENTION_PRIORITY, KV_RETENTION_TTL_MS, REQUEST_TIMEOUT_MS,
};
use switchyard_wire::{ApiError, ChatRequest, ErrorKind, SseParser, Translating, Usage};
use tokio::sync::oneshot;
use tokio::time::timeout_at;

/// A request as it goes upstream: the canonical request, encoded for each provider's
/// API the first time an endpoint of that provider is tried.
#[derive(Debug)]
pub struct UpstreamBody<'a> {
    request: &'a ChatRequest,
    lossy: bool,
    chat: std::sync::OnceLock<Result<Bytes, ApiError>>,
    /// The Chat Completions body with a derived `prompt_cache_key`.
    keyed: std::sync::OnceLock<Result<Bytes, ApiError>>,
    messages: std::sync::OnceLock<Result<(Bytes, Vec<String>), ApiError>>,
}

impl<'a> UpstreamBody<'a> {
    /// The body of `request`, not yet encoded.
    pub fn new(request: &'a ChatRequest) -> Self {
        UpstreamBody {
            request,
            lossy: false,
            chat: std::sync::OnceLock::new(),
            keyed: std::sync::OnceLock::new(),
            messages: std::sync::OnceLock::new(),
        }
    }

    /// With `lossy`, what a provider's API cannot carry is left out (and named by
    /// [`UpstreamBody::dropped`]) rather than refused.
    #[must_use]
    pub fn lossy(mut self, lossy: bool) -> Self {
        self.lossy = lossy;
        self
    }

    /// The body in `provider`'s API: Chat Completions (OpenAI, Azure; with a derived
    /// `prompt_cache_key` when `keyed`), or Messages (Anthropic). An error when the
    /// request cannot be written faithfully in it.
    pub fn encoded(&self, provider: Provider, keyed: bool) -> Result<Bytes, ApiError> {
        match provider {
            Provider::Openai | Provider::Azure => {
                let cell = if keyed { &self.keyed } else { &self.chat };
                cell.get_or_init(|| {
                    self.request
                        .upstream_body_keyed(keyed)
                        .map(Bytes::from)
                        .map_err(|e| {
                            ApiError::new(
                                ErrorKind::InvalidRequest,
                                format!("cannot encode the request: {e}"),
                            )
                        })
                })
                .clone()
            }
            Provider::Anthropic => self
                .messages
                .get_or_init(|| {
                    switchyard_wire::provider::anthropic::messages_body(self.request, self.lossy)
                        .map(|(body, dropped)| (Bytes::from(body), dropped))
                })
                .as_ref()
                .map(|(body, _)| body.clone())
                .map_err(Clone::clone),
        }
    }

    /// The fields the body sent to `provider` left out (a lossy translation; none
    /// otherwise). Ask with the provider of the endpoint that answered: after a
    /// failover another provider's body may have been written too.
    pub fn dropped(&self, provider: Provider) -> &[String] {
        match (provider, self.messages.get()) {
            (Provider::Anthropic, Some(Ok((_, dropped)))) => dropped,
            _ => &[],
        }
    }
}

/// What goes upstream with a request besides its body.
#[derive(Debug, Clone, Copy)]
pub struct Call<'a> {
    /// Sent as `x-request-id`.
    pub request_id: &'a str,
    /// Sent as retention headers, when the request is mid-session.
    pub retention: Option<RetentionHint>,
    /// The client's deadline (`x-request-timeout-ms`), when it set one.
    pub deadline: Option<ClientDeadline>,
    /// Headers the plugins add (those the gateway sets itself are left out).
    pub headers: &'a http::HeaderMap,
}

/// A deadline the client set for its own request. Missing it is the client's choice,
/// not the endpoint's failure: it never counts toward an ejection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientDeadline {
    /// When it passes.
    pub at: tokio::time::Instant,
    /// The milliseconds the client gave, for messages.
    pub ms: u64,
}

/// The connection pool behind [`Upstream`]: HTTP/1.1, or HTTP/2 where TLS offers it.
type Client = hyper_util::client::legacy::Client<
    hyper_rustls::HttpsConnector<hyper_util::client::legacy::connect::HttpConnector>,
    http_body_util::Full<Bytes>,
>;

/// The upstream client.
#[derive(Debug, Clone)]
pub struct Upstream {
    client: Client,
    config: UpstreamConfig,
}

/// An upstream answer: its status and its body, read as it arrives.
struct Answer {
    status: http::StatusCode,
    body: hyper::body::Incoming,
}

impl Answer {
    /// The next piece of the body (trailers skipped), `None` at its end.
    async fn chunk(&mut self) -> Result<Option<Bytes>, hyper::Error> {
        use http_body_util::BodyExt;
        loop {
            match self.body.frame().await {
                None => return Ok(None),
                Some(frame) => {
                    if let Ok(data) = frame?.into_data() {
                        return Ok(Some(data));
                    }
                }
            }
        }
    }

    /// The whole body.
    async fn bytes(self) -> Result<Bytes, hyper::Error> {
        use http_body_util::BodyExt;
        Ok(self.body.collect().await?.to_bytes())
    }
}

/// A whole (non-streamed) upstream answer.
#[derive(Debug, Clone)]
pub struct Completion {
    /// HTTP status (2xx or 4xx; 5xx answers are errors).
    pub status: u16,
    /// The body as received.
    pub body: Bytes,
    /// Usage read from the body, when it has one.
    pub usage: Option<Usage>,
    /// When the response headers arrived, since the request was sent.
    pub first_byte: Duration,
}

/// Why an upstream call failed before anything reached the client.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ForwardError {
    /// The connection could not be made or broke.
    #[error("request to endpoint `{endpoint}` failed: {reason}")]
    Connect {
        /// The endpoint.
        endpoint: String,
        /// What the transport said.
        reason: String,
    },
    /// The answer broke off after its status and headers: the endpoint may have done
    /// the work, so it is not tried again elsewhere unless the route opted in
    /// ([`Retry::broken`]).
    #[error("endpoint `{endpoint}` broke off its answer after the headers: {reason}")]
    Broken {
        /// The endpoint.
        endpoint: String,
        /// What the transport said.
        reason: String,
    },
    /// A deadline passed.
    #[error("endpoint `{endpoint}` did not answer within {after_ms} ms ({phase})")]
    Timeout {
        /// The endpoint.
        endpoint: String,
        /// Which wait: response headers, body, or the whole request.
        phase: &'static str,
        /// The deadline that passed.
        after_ms: u64,
    },
    /// The client's own deadline passed first.
    #[error(
        "the request's own deadline ({after_ms} ms, x-request-timeout-ms) passed while {phase} from endpoint `{endpoint}`"
    )]
    ClientDeadline {
        /// The endpoint.
        endpoint: String,
        /// Which wait it cut short.
        phase: &'static str,
        /// The client's deadline.
        after_ms: u64,
    },
    /// The endpoint answered with a server error.
    #[error("endpoint `{endpoint}` answered {status}: {detail}")]
    Status {
        /// The endpoint.
        endpoint: String,
        /// Its status code.
        status: u16,
        /// The start of its body.
        detail: String,
    },
    /// The request cannot be written faithfully in the endpoint's API (nothing was
    /// sent): the client's to change, not the endpoint's fault.
    #[error("{error}")]
    Untranslatable {
        /// The endpoint.
        endpoint: String,
        /// What cannot be carried, naming the field.
        error: ApiError,
    },
}

impl ForwardError {
    /// Whether another endpoint may be tried under `retry`: the connection failed or
    /// the endpoint answered 5xx, so nothing reached the client and no work was done.
    /// Timeouts are not retried: the endpoint may still be doing the work. An answer
    /// that broke off after its headers is retried only when the route opted in
    /// ([`Retry::broken`]): the endpoint may have done the work.
    pub fn is_retryable(&self, retry: Retry) -> bool {
        match self {
            ForwardError::Connect { .. } | ForwardError::Status { .. } => true,
            ForwardError::Broken { .. } => retry.broken,
            ForwardError::Timeout { .. }
            | ForwardError::ClientDeadline { .. }
            | ForwardError::Untranslatable { .. } => false,
        }
    }

    /// Whether the endpoint is to blame (its ejection counts it): not when the
    /// client's own deadline passed.
    pub fn counts_against_endpoint(&self) -> bool {
        !matches!(
            self,
            ForwardError::ClientDeadline { .. } | ForwardError::Untranslatable { .. }
        )
    }

    /// The error as the client sees it.
    pub fn to_api_error(&self) -> ApiError {
        if let ForwardError::Untranslatable { error, .. } = self {
            return error.clone();
        }
        let kind = match self {
            ForwardError::Timeout { .. } | ForwardError::ClientDeadline { .. } => {
                ErrorKind::UpstreamTimeout
            }
            ForwardError::Connect { .. }
            | ForwardError::Broken { .. }
            | ForwardError::Status { .. }
            | ForwardError::Untranslatable { .. } => ErrorKind::Upstream,
        };
        ApiError::new(kind, self.to_string())
    }
}

/// How far a call is tried on other endpoints.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retry {
    /// At most this many endpoints are called (1: no failover).
    pub max_attempts: u32,
    /// Whether an answer that broke off after its headers is tried again elsewhere (a
    /// route's `retry_broken`: the work may run twice).
    pub broken: bool,
}

impl Retry {
    /// Up to `max_attempts` endpoints, for failures that reached no client byte.
    pub fn up_to(max_attempts: u32) -> Self {
        Retry {
            max_attempts,
            broken: false,
        }
    }

    /// One endpoint, no failover.
    pub fn once() -> Self {
        Retry::up_to(1)
    }

    /// With `broken`, answers that broke off after their headers are retried too.
    #[must_use]
    pub fn broken(mut self, broken: bool) -> Self {
        self.broken = broken;
        self
    }
}

/// The result of a call tried on one endpoint after another.
#[derive(Debug)]
pub struct Attempted<T> {
    /// The last attempt's result.
    pub result: Result<T, ForwardError>,
    /// Where the last attempt went.
    pub placement: Placement,
    /// How many endpoints were tried.
    pub attempts: u32,
}

/// Calls `call` on `first`, and on failures that reached no client byte
/// ([`ForwardError::is_retryable`] under `retry`) on other endpoints of the model
/// (never one already tried, never an ejected one, larger pools when the first one's
/// endpoints run out), up to `retry.max_attempts` calls. Every failure but a missed
/// client deadline counts toward the endpoint's ejection; a success closes its breaker.
pub async fn with_failover<T, F, Fut>(
    pools: &Pools,
    model: usize,
    first: Placement,
    retry: Retry,
    mut call: F,
) -> Attempted<T>
where
    F: FnMut(Placement) -> Fut,
    Fut: Future<Output = Result<T, ForwardError>>,
{
    let mut placement = first;
    let mut tried = Vec::new();
    let mut attempts = 0;
    loop {
        attempts += 1;
        let result = call(placement.clone()).await;
        let error = match &result {
            Ok(_) => {
                placement.endpoint.health.success();
                return Attempted {
                    result,
                    placement,
                    attempts,
                };
            }
            Err(e) => e,
        };
        if error.counts_against_endpoint() {
            pools.record_failure(&placement.endpoint);
        }
        if !error.is_retryable(retry) || attempts >= retry.max_attempts {
            return Attempted {
                result,
                placement,
                attempts,
            };
        }
        tried.push(placement.endpoint.id);
        match pools.place_avoiding(model, &placement.request, &tried) {
            Ok(next) => {
                tracing::info!(from = %placement.endpoint.name, to = %next.endpoint.name,
                    error = %error, "retrying on another endpoint");
                placement = next;
            }
            Err(_) => {
                return Attempted {
                    result,
                    placement,
                    attempts,
                };
            }
        }
    }
}

/// The error for a wait that ended at `by`: the client's deadline when that is what
/// `by` was, else the endpoint's timeout of `after_ms`.
fn timed_out(
    call: &Call<'_>,
    by: tokio::time::Instant,
    endpoint: &Endpoint,
    phase: &'static str,
    after_ms: u64,
) -> ForwardError {
    match call.deadline {
        Some(client) if client.at <= by => ForwardError::ClientDeadline {
            endpoint: endpoint.name.clone(),
            phase,
            after_ms: client.ms,
        },
        _ => ForwardError::Timeout {
            endpoint: endpoint.name.clone(),
            phase,
            after_ms,
        },
    }
}

/// How a stream ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "end", content = "detail")]
pub enum StreamEnd {
    /// `[DONE]` arrived and was passed on.
    Done,
    /// The upstream closed the stream before `[DONE]`.
    Cut,
    /// The upstream sent nothing for longer than the idle timeout.
    Stalled,
    /// The transport failed mid-stream.
    Failed(String),
    /// The upstream sent an error event.
    UpstreamError(String),
    /// The client went away; the upstream call was dropped.
    ClientGone,
    /// The client's own deadline passed mid-stream.
    Deadline,
}

impl StreamEnd {
    /// Whether the client received a whole answer.
    pub fn is_complete(&self) -> bool {
        matches!(self, StreamEnd::Done)
    }
}

/// What happened on a stream, known once it ends.
#[derive(Debug, Clone, Serialize)]
pub struct StreamOutcome {
    /// How it ended.
    pub end: StreamEnd,
    /// Usage reported by the upstream.
    pub usage: Option<Usage>,
    /// Time from the request's start to the first event passed on.
    pub ttft: Option<Duration>,
    /// SSE events passed on.
    pub events: u32,
}

/// A stream being passed through: the events for the client, and its outcome when done.
pub struct PassThrough {
    /// Whole SSE events, in order, ending with `[DONE]` or a terminal error event.
    /// Polled by the client's connection: no task or channel sits in between.
    pub events: BoxStream<'static, Bytes>,
    /// Resolves when the stream has ended (or was dropped because the client left).
    pub outcome: oneshot::Receiver<StreamOutcome>,
    /// When the response headers arrived, since the request was sent.
    pub first_byte: Duration,
}

impl std::fmt::Debug for PassThrough {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PassThrough")
            .field("first_byte", &self.first_byte)
            .finish_non_exhaustive()
    }
}

impl Upstream {
    /// A client with the configured connect timeout and TCP_NODELAY on every socket;
    /// TLS through rustls with the platform's certificate verifier.
    pub fn new(config: UpstreamConfig) -> Result<Upstream, ForwardError> {
        use rustls_platform_verifier::BuilderVerifierExt;
        let unusable = |reason: String| ForwardError::Connect {
            endpoint: "(client)".to_owned(),
            reason,
        };
        let provider = std::sync::Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let tls = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .and_then(|b| b.with_platform_verifier())
            .map_err(|e| unusable(format!("TLS: {e}")))?
            .with_no_client_auth();
        let mut http = hyper_util::client::legacy::connect::HttpConnector::new();
        http.set_nodelay(true);
        http.enforce_http(false);
        http.set_connect_timeout(Some(Duration::from_millis(config.connect_timeout_ms)));
        let https = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_or_http()
            .enable_http1()
            .enable_http2()
            .wrap_connector(http);
        let client =
            hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
                .pool_idle_timeout(Duration::from_secs(60))
                .pool_max_idle_per_host(256)
                .pool_timer(hyper_util::rt::TokioTimer::new())
                .build(https);
        Ok(Upstream { client, config })
    }

    async fn send(
        &self,
        endpoint: &Endpoint,
        body: &UpstreamBody<'_>,
        call: &Call<'_>,
        deadline: tokio::time::Instant,
    ) -> Result<(Answer, Duration), ForwardError> {
        use http::header::{AUTHORIZATION, CONTENT_TYPE, HeaderValue};
        let body = body
            .encoded(endpoint.provider, endpoint.prompt_cache_key)
            .map_err(|error| ForwardError::Untranslatable {
                endpoint: endpoint.name.clone(),
                error,
            })?;
        let mut request = http::Request::new(http_body_util::Full::new(body));
        *request.method_mut() = http::Method::POST;
        *request.uri_mut() = endpoint.chat_url.clone();
        let headers = request.headers_mut();
        for (name, value) in call.headers {
            if !GATEWAY_REQUEST_HEADERS.contains(&name.as_str()) {
                headers.append(name, value.clone());
            }
        }
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        if let Ok(id) = HeaderValue::from_str(call.request_id) {
            headers.insert("x-request-id", id);
        }
        // The upstream learns how long the answer is still wanted.
        let remaining = deadline.saturating_duration_since(tokio::time::Instant::now());
        headers.insert(
            REQUEST_TIMEOUT_MS,
            HeaderValue::from(remaining.as_millis() as u64),
        );
        if let Some(hint) = call.retention {
            headers.insert(
                KV_RETENTION_PRIORITY,
                HeaderValue::from(u16::from(hint.priority)),
            );
            headers.insert(KV_RETENTION_TTL_MS, HeaderValue::from(hint.ttl_ms));
        }
        if let Some(authorization) = &endpoint.authorization {
            headers.insert(AUTHORIZATION, authorization.clone());
        }
        if let Some((name, key)) = &endpoint.api_key {
            headers.insert(name.clone(), key.clone());
        }
        if let Some(version) = &endpoint.api_version {
            headers.insert("anthropic-version", version.clone());
        }
        let sent = Instant::now();
        let headers_by = deadline.min(
            tokio::time::Instant::now() + Duration::from_millis(self.config.response_timeout_ms),
        );
        let response = timeout_at(headers_by, self.client.request(request))
            .await
            .map_err(|_| {
                timed_out(
                    call,
                    headers_by,
                    endpoint,
                    "waiting for response headers",
                    self.config.response_timeout_ms,
                )
            })?
            .map_err(|e| ForwardError::Connect {
                endpoint: endpoint.name.clone(),
                reason: chain(&e),
            })?;
        let first_byte = sent.elapsed();
        let (parts, body) = response.into_parts();
        let response = Answer {
            status: parts.status,
            body,
        };
        if response.status.is_server_error() {
            let status = response.status.as_u16();
            let body = timeout_at(headers_by, response.bytes())
                .await
                .ok()
                .and_then(Result::ok)
                .unwrap_or_default();
            let detail: String = String::from_utf8_lossy(&body).chars().take(300).collect();
            return Err(ForwardError::Status {
                endpoint: endpoint.name.clone(),
                status,
                detail,
            });
        }
        Ok((response, first_byte))
    }

    /// The earlier of the configured whole-request timeout and the request's own deadline.
    fn deadline(&self, call: &Call<'_>) -> tokio::time::Instant {
        let configured =
            tokio::time::Instant::now() + Duration::from_millis(self.config.total_timeout_ms);
        call.deadline.map_or(configured, |d| d.at.min(configured))
    }

    fn idle(&self) -> Duration {
        Duration::from_millis(self.config.idle_timeout_ms)
    }

    /// Sends a non-streamed request and reads the whole answer.
    pub async fn complete(
        &self,
        endpoint: &Endpoint,
        body: &UpstreamBody<'_>,
        call: &Call<'_>,
    ) -> Result<Completion, ForwardError> {
        let deadline = self.deadline(call);
        let (mut response, first_byte) = self.send(endpoint, body, call, deadline).await?;
        let status = response.status.as_u16();
        let mut collected = Vec::new();
        loop {
            let by = deadline.min(tokio::time::Instant::now() + self.idle());
            let chunk = timeout_at(by, response.chunk())
                .await
                .map_err(|_| {
                    timed_out(
                        call,
                        by,
                        endpoint,
                        "reading the response body",
                        self.config.idle_timeout_ms,
                    )
                })?
                .map_err(|e| ForwardError::Broken {
                    endpoint: endpoint.name.clone(),
                    reason: chain(&e),
                })?;
            match chunk {
                Some(bytes) => collected.extend_from_slice(&bytes),
                None => break,
            }
        }
        let mut body = Bytes::from(collected);
        if endpoint.provider == Provider::Anthropic {
            body = canonical(status, &body).map_err(|e| ForwardError::Broken {
                endpoint: endpoint.name.clone(),
                reason: e.message,
            })?;
        }
        let usage = Usage::from_body(&body);
        Ok(Completion {
            status,
            body,
            usage,
            first_byte,
        })
    }

    /// Sends a streamed request. On a 2xx answer, events are passed through as they
    /// arrive, read from the upstream only as the client's connection asks for them; a stream that breaks, stalls or ends early ends with a terminal error
    /// event, never silently. With `hide_usage`, a usage-only chunk is read but not
    /// passed on (the client did not ask for it). A non-2xx answer comes back as a
    /// [`Completion`] for the caller to relay.
    pub async fn stream(
        &self,
        in_flight: InFlight,
        body: &UpstreamBody<'_>,
        call: &Call<'_>,
        hide_usage: bool,
        started: Instant,
    ) -> Result<Result<PassThrough, Completion>, ForwardError> {
        let deadline = self.deadline(call);
        let endpoint = in_flight.endpoint().clone();
        let (response, first_byte) = self.send(&endpoint, body, call, deadline).await?;
        if !response.status.is_success() {
            let status = response.status.as_u16();
            let mut body = timeout_at(deadline, response.bytes())
                .await
                .ok()
                .and_then(Result::ok)
                .unwrap_or_default();
            if endpoint.provider == Provider::Anthropic {
                body = canonical(status, &body).unwrap_or_default();
            }
            return Ok(Err(Completion {
                status,
                body,
                usage: None,
                first_byte,
            }));
        }
        let (outcome_tx, outcome_rx) = oneshot::channel();
        let state = PassState {
            response,
            parser: SseParser::new(),
            ready: VecDeque::new(),
            outcome: StreamOutcome {
                end: StreamEnd::Cut,
                usage: None,
                ttft: None,
                events: 0,
            },
            ended: false,
            translate: (endpoint.provider == Provider::Anthropic).then(|| {
                Translating::new(Box::new(
                    switchyard_wire::provider::anthropic::ChunkWriter::default(),
                ))
            }),
            hide_usage,
            started,
            deadline,
            client_deadline: call.deadline,
            idle: self.idle(),
            idle_ms: self.config.idle_timeout_ms,
            report: Some(outcome_tx),
            in_flight,
        };
        let events = futures_util::stream::unfold(state, |mut state| async move {
            let event = state.next_event().await?;
            Some((event, state))
        });
        Ok(Ok(PassThrough {
            events: Box::pin(events),
            outcome: outcome_rx,
            first_byte,
        }))
    }
}

/// The state of one pass-through stream.
struct PassState {
    response: Answer,
    parser: SseParser,
    /// Whole events read and not yet handed out.
    ready: VecDeque<Bytes>,
    outcome: StreamOutcome,
    /// No more upstream reads: `[DONE]`, an error event, or a terminal error queued.
    ended: bool,
    /// An upstream of another API: its events, cut and read back as Chat Completions
    /// chunks before anything else reads them.
    translate: Option<Translating>,
    hide_usage: bool,
    started: Instant,
    deadline: tokio::time::Instant,
    /// The client's own deadline, when it set one.
    client_deadline: Option<ClientDeadline>,
    idle: Duration,
    idle_ms: u64,
    report: Option<oneshot::Sender<StreamOutcome>>,
    /// Counts the request as in flight until the stream ends or is dropped.
    in_flight: InFlight,
}

impl PassState {
    /// The next event for the client, or `None` once the stream is over.
    async fn next_event(&mut self) -> Option<Bytes> {
        loop {
            if !self.ready.is_empty() {
                // Events that arrived in one read leave in one write: no added delay,
                // fewer system calls.
                let count = self.ready.len();
                let out = if count == 1 {
                    self.ready.pop_front()?
                } else {
                    let mut joined = bytes::BytesMut::new();
                    for event in self.ready.drain(..) {
                        joined.extend_from_slice(&event);
                    }
                    joined.freeze()
                };
                self.outcome.events += u32::try_from(count).unwrap_or(u32::MAX);
                let started = self.started;
                self.outcome.ttft.get_or_insert_with(|| started.elapsed());
                return Some(out);
            }
            if self.ended {
                self.finish();
                return None;
            }
            self.read().await;
        }
    }

    /// Reads one upstream chunk and queues the whole events it completes.
    async fn read(&mut self) {
        let endpoint = &self.in_flight.endpoint().name;
        let by = self.deadline.min(tokio::time::Instant::now() + self.idle);
        let (end, message) = match timeout_at(by, self.response.chunk()).await {
            Ok(Ok(Some(chunk))) => {
                match &mut self.translate {
                    None => self.parser.push(&chunk),
                    Some(translating) => self.parser.push(translating.push(&chunk).as_bytes()),
                }
                self.take_events();
                return;
            }
            Err(_) => match self.client_deadline {
                Some(client) if client.at <= by => (
                    StreamEnd::Deadline,
                    format!(
                        "the request's own deadline ({} ms, x-request-timeout-ms) passed; the answer is incomplete",
                        client.ms
                    ),
                ),
                _ => (
                    StreamEnd::Stalled,
                    format!(
                        "endpoint `{endpoint}` stalled: no data for {} ms; the answer is incomplete",
                        self.idle_ms
                    ),
                ),
            },
            Ok(Err(e)) => {
                let reason = chain(&e);
                let message = format!(
                    "endpoint `{endpoint}` broke off the stream ({reason}); the answer is incomplete"
                );
                (StreamEnd::Failed(reason), message)
            }
            Ok(Ok(None)) => (
                StreamEnd::Cut,
                format!("endpoint `{endpoint}` ended the stream before it was complete"),
            ),
        };
        let kind = if end == StreamEnd::Deadline {
            ErrorKind::UpstreamTimeout
        } else {
            ErrorKind::Upstream
        };
        self.outcome.end = end;
        self.ready
            .push_back(ApiError::new(kind, message).sse_event());
        self.ended = true;
    }

    fn take_events(&mut self) {
        while let Some(event) = self.parser.next_event() {
            let mut forward = true;
            if event.is_done() {
                self.outcome.end = StreamEnd::Done;
                self.ended = true;
            } else if (event.data.contains("\"usage\"") || event.data.contains("\"error\""))
                && let Ok(value) = serde_json::from_str::<serde_json::Value>(&event.data)
            {
                if let Some(usage) = Usage::from_json(&value) {
                    self.outcome.usage = Some(usage);
                    let no_choices = value
                        .get("choices")
                        .and_then(|c| c.as_array())
                        .is_none_or(Vec::is_empty);
                    forward = !(self.hide_usage && no_choices);
                }
                if let Some(error) = value.get("error") {
                    self.outcome.end = StreamEnd::UpstreamError(error.to_string());
                    self.ended = true;
                }
            }
            if forward {
                self.ready.push_back(event.raw);
            }
            if self.ended {
                return;
            }
        }
    }

    fn finish(&mut self) {
        if let Some(report) = self.report.take() {
            let _ = report.send(self.outcome.clone());
        }
    }
}

impl Drop for PassState {
    fn drop(&mut self) {
        if self.report.is_some() && (!self.ended || !self.ready.is_empty()) {
            // The client went away before the stream ended; the upstream call is
            // dropped with this state.
            self.outcome.end = StreamEnd::ClientGone;
        }
        self.finish();
    }
}

/// An Anthropic answer's body as Chat Completions: a 2xx message as a completion,
/// anything else as the canonical error body.
fn canonical(status: u16, body: &[u8]) -> Result<Bytes, ApiError> {
    use switchyard_wire::provider::anthropic;
    if (200..300).contains(&status) {
        anthropic::completion_body(body).map(Bytes::from)
    } else {
        Ok(Bytes::from(anthropic::error_body(status, body)))
    }
}

/// A transport error and its causes (none of them names the URL, which may carry
/// credentials).
fn chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(e) = source {
        text.push_str(": ");
        text.push_str(&e.to_string());
        source = e.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_was_dropped_is_told_for_the_provider_that_answered() {
        let request: ChatRequest = serde_json::from_str(
            r#"{"model":"m","n":2,"messages":[{"role":"user","content":"hi"}]}"#,
        )
        .unwrap();
        let body = UpstreamBody::new(&request).lossy(true);
        assert!(body.encoded(Provider::Anthropic, false).is_ok());
        assert_eq!(body.dropped(Provider::Anthropic), ["n"]);
        // Failed over to an OpenAI endpoint: its body carried `n`, nothing was dropped.
        assert!(body.encoded(Provider::Openai, false).is_ok());
        assert!(body.dropped(Provider::Openai).is_empty());
        // Without lossy, the Anthropic body is refused instead.
        let strict = UpstreamBody::new(&request);
        assert!(strict.encoded(Provider::Anthropic, false).is_err());
        assert!(strict.dropped(Provider::Anthropic).is_empty());
    }
}
