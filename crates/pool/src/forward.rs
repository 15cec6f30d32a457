//! The forward phase: one upstream call, with its timeouts, streamed through.

use crate::endpoint::{Endpoint, InFlight};
use bytes::Bytes;
use serde::Serialize;
use std::time::{Duration, Instant};
use switchyard_policy::UpstreamConfig;
use switchyard_wire::{ApiError, ErrorKind, SseParser, Usage};
use tokio::sync::{mpsc, oneshot};
use tokio::time::timeout_at;

/// Events buffered between the upstream reader and a slow client.
const STREAM_BUFFER: usize = 64;

/// The upstream client.
#[derive(Debug, Clone)]
pub struct Upstream {
    client: reqwest::Client,
    config: UpstreamConfig,
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
}

impl ForwardError {
    /// The error as the client sees it.
    pub fn to_api_error(&self) -> ApiError {
        let kind = match self {
            ForwardError::Timeout { .. } => ErrorKind::UpstreamTimeout,
            ForwardError::Connect { .. } | ForwardError::Status { .. } => ErrorKind::Upstream,
        };
        ApiError::new(kind, self.to_string())
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
    /// Events passed on.
    pub events: u32,
}

/// A stream being passed through: the events for the client, and its outcome when done.
#[derive(Debug)]
pub struct PassThrough {
    /// Whole SSE events, in order, ending with `[DONE]` or a terminal error event.
    pub events: mpsc::Receiver<Bytes>,
    /// Resolves when the stream has ended.
    pub outcome: oneshot::Receiver<StreamOutcome>,
    /// When the response headers arrived, since the request was sent.
    pub first_byte: Duration,
}

impl Upstream {
    /// A client with the configured timeouts and TCP_NODELAY on every socket.
    pub fn new(config: UpstreamConfig) -> Result<Upstream, ForwardError> {
        let client = reqwest::Client::builder()
            .tcp_nodelay(true)
            .connect_timeout(Duration::from_millis(config.connect_timeout_ms))
            .pool_idle_timeout(Duration::from_secs(60))
            .pool_max_idle_per_host(256)
            .build()
            .map_err(|e| ForwardError::Connect {
                endpoint: "(client)".to_owned(),
                reason: e.to_string(),
            })?;
        Ok(Upstream { client, config })
    }

    async fn send(
        &self,
        endpoint: &Endpoint,
        body: Bytes,
        request_id: &str,
        deadline: tokio::time::Instant,
    ) -> Result<(reqwest::Response, Duration), ForwardError> {
        let mut request = self
            .client
            .post(&endpoint.chat_url)
            .header("content-type", "application/json")
            .header("x-request-id", request_id)
            .body(body);
        if let Some(key) = &endpoint.api_key {
            request = request.bearer_auth(key);
        }
        let sent = Instant::now();
        let headers_by = deadline.min(
            tokio::time::Instant::now() + Duration::from_millis(self.config.response_timeout_ms),
        );
        let response = timeout_at(headers_by, request.send())
            .await
            .map_err(|_| ForwardError::Timeout {
                endpoint: endpoint.name.clone(),
                phase: "waiting for response headers",
                after_ms: self.config.response_timeout_ms,
            })?
            .map_err(|e| ForwardError::Connect {
                endpoint: endpoint.name.clone(),
                reason: error_chain(&e),
            })?;
        let first_byte = sent.elapsed();
        if response.status().is_server_error() {
            let status = response.status().as_u16();
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

    fn deadline(&self) -> tokio::time::Instant {
        tokio::time::Instant::now() + Duration::from_millis(self.config.total_timeout_ms)
    }

    fn idle(&self) -> Duration {
        Duration::from_millis(self.config.idle_timeout_ms)
    }

    /// Sends a non-streamed request and reads the whole answer.
    pub async fn complete(
        &self,
        endpoint: &Endpoint,
        body: Bytes,
        request_id: &str,
    ) -> Result<Completion, ForwardError> {
        let deadline = self.deadline();
        let (mut response, first_byte) = self.send(endpoint, body, request_id, deadline).await?;
        let status = response.status().as_u16();
        let mut collected = Vec::new();
        loop {
            let by = deadline.min(tokio::time::Instant::now() + self.idle());
            let chunk = timeout_at(by, response.chunk())
                .await
                .map_err(|_| ForwardError::Timeout {
                    endpoint: endpoint.name.clone(),
                    phase: "reading the response body",
                    after_ms: self.config.idle_timeout_ms,
                })?
                .map_err(|e| ForwardError::Connect {
                    endpoint: endpoint.name.clone(),
                    reason: format!("the response body broke off: {}", error_chain(&e)),
                })?;
            match chunk {
                Some(bytes) => collected.extend_from_slice(&bytes),
                None => break,
            }
        }
        let body = Bytes::from(collected);
        let usage = serde_json::from_slice::<serde_json::Value>(&body)
            .ok()
            .and_then(|v| Usage::from_json(&v));
        Ok(Completion {
            status,
            body,
            usage,
            first_byte,
        })
    }

    /// Sends a streamed request. On a 2xx answer, a task passes events through as they
    /// arrive; a stream that breaks, stalls or ends early ends with a terminal error
    /// event, never silently. With `hide_usage`, a usage-only chunk is read but not
    /// passed on (the client did not ask for it). A non-2xx answer comes back as a
    /// [`Completion`] for the caller to relay.
    pub async fn stream(
        &self,
        in_flight: InFlight,
        body: Bytes,
        request_id: &str,
        hide_usage: bool,
        started: Instant,
    ) -> Result<Result<PassThrough, Completion>, ForwardError> {
        let deadline = self.deadline();
        let endpoint = in_flight.endpoint().clone();
        let (mut response, first_byte) = self.send(&endpoint, body, request_id, deadline).await?;
        if !response.status().is_success() {
            let status = response.status().as_u16();
            let body = timeout_at(deadline, response.bytes())
                .await
                .ok()
                .and_then(Result::ok)
                .unwrap_or_default();
            return Ok(Err(Completion {
                status,
                body,
                usage: None,
                first_byte,
            }));
        }
        let (events_tx, events_rx) = mpsc::channel(STREAM_BUFFER);
        let (outcome_tx, outcome_rx) = oneshot::channel();
        let idle = self.idle();
        let idle_ms = self.config.idle_timeout_ms;
        tokio::spawn(async move {
            let outcome = pass_through(
                &mut response,
                &events_tx,
                PassOptions {
                    hide_usage,
                    started,
                    deadline,
                    idle,
                    idle_ms,
                    endpoint: &endpoint.name,
                },
            )
            .await;
            drop(in_flight);
            let _ = outcome_tx.send(outcome);
        });
        Ok(Ok(PassThrough {
            events: events_rx,
            outcome: outcome_rx,
            first_byte,
        }))
    }
}

struct PassOptions<'a> {
    hide_usage: bool,
    started: Instant,
    deadline: tokio::time::Instant,
    idle: Duration,
    idle_ms: u64,
    endpoint: &'a str,
}

async fn pass_through(
    response: &mut reqwest::Response,
    events: &mpsc::Sender<Bytes>,
    options: PassOptions<'_>,
) -> StreamOutcome {
    let mut outcome = StreamOutcome {
        end: StreamEnd::Cut,
        usage: None,
        ttft: None,
        events: 0,
    };
    let mut parser = SseParser::new();
    let terminal = |message: String| ApiError::new(ErrorKind::Upstream, message).sse_event();
    loop {
        let by = options
            .deadline
            .min(tokio::time::Instant::now() + options.idle);
        let chunk = match timeout_at(by, response.chunk()).await {
            Err(_) => {
                outcome.end = StreamEnd::Stalled;
                let _ = events
                    .send(terminal(format!(
                        "endpoint `{}` stalled: no data for {} ms; the answer is incomplete",
                        options.endpoint, options.idle_ms
                    )))
                    .await;
                return outcome;
            }
            Ok(Err(e)) => {
                let reason = error_chain(&e);
                let _ = events
                    .send(terminal(format!(
                        "endpoint `{}` broke off the stream ({reason}); the answer is incomplete",
                        options.endpoint
                    )))
                    .await;
                outcome.end = StreamEnd::Failed(reason);
                return outcome;
            }
            Ok(Ok(None)) => {
                let _ = events
                    .send(terminal(format!(
                        "endpoint `{}` ended the stream before it was complete",
                        options.endpoint
                    )))
                    .await;
                outcome.end = StreamEnd::Cut;
                return outcome;
            }
            Ok(Ok(Some(chunk))) => chunk,
        };
        parser.push(&chunk);
        while let Some(event) = parser.next_event() {
            let mut forward = true;
            if event.is_done() {
                outcome.end = StreamEnd::Done;
            } else if event.data.contains("\"usage\"") || event.data.contains("\"error\"") {
                if let Ok(value) = serde_json::from_str::<serde_json::Value>(&event.data) {
                    if let Some(usage) = Usage::from_json(&value) {
                        outcome.usage = Some(usage);
                        let no_choices = value
                            .get("choices")
                            .and_then(|c| c.as_array())
                            .is_none_or(Vec::is_empty);
                        forward = !(options.hide_usage && no_choices);
                    }
                    if let Some(error) = value.get("error") {
                        outcome.end = StreamEnd::UpstreamError(error.to_string());
                    }
                }
            }
            if forward {
                if events.send(event.raw).await.is_err() {
                    outcome.end = StreamEnd::ClientGone;
                    return outcome;
                }
                outcome.events += 1;
                outcome
                    .ttft
                    .get_or_insert_with(|| options.started.elapsed());
            }
            if !matches!(outcome.end, StreamEnd::Cut) {
                return outcome;
            }
        }
    }
}

fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(e) = source {
        text.push_str(": ");
        text.push_str(&e.to_string());
        source = e.source();
    }
    text
}
