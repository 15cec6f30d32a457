//! Phases forward and observe: call the upstream, answer the client, record the outcome.

use crate::decision_log::DecisionRecord;
use crate::pipeline::Plan;
use crate::runtime::Runtime;
use axum::body::Body;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use futures_util::StreamExt;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use switchyard_pool::{Call, ForwardError, StreamEnd, StreamOutcome, with_failover};
use switchyard_router::Metric;
use switchyard_wire::{ApiError, ChatRequest, Conversation, ErrorKind, StreamOptions, Usage};

/// The JSON error response of an [`ApiError`].
pub fn error_response(error: &ApiError) -> Response {
    let status = StatusCode::from_u16(error.kind.status()).unwrap_or(StatusCode::BAD_GATEWAY);
    (status, axum::Json(error.body())).into_response()
}

/// What observe needs to know about a request besides its outcome.
pub struct Observed {
    /// The request id.
    pub request_id: String,
    /// Arrival.
    pub started: Instant,
    /// Arrival, wall clock.
    pub arrived: SystemTime,
    /// Router time before the upstream call.
    pub overhead: Duration,
    /// The prompt estimate, used when the upstream reports no usage.
    pub prompt_estimate: u32,
    /// The model the client asked for.
    pub requested_model: String,
    /// Whether the answer is streamed.
    pub stream: bool,
    /// Endpoints tried (more than 1 after a failover).
    pub attempts: u32,
    /// Whether the client capped the answer (`max_tokens`): such lengths teach nothing
    /// about natural answer lengths.
    pub capped: bool,
    /// The client's deadline, from its `x-request-timeout-ms` header.
    pub deadline: Option<tokio::time::Instant>,
}

/// How a request ended, for observe.
#[derive(Debug, Clone, Default)]
pub struct Outcome {
    /// HTTP status sent to the client.
    pub status: u16,
    /// `ok`, `upstream_error`, `stalled`, …
    pub name: &'static str,
    /// Usage reported upstream.
    pub usage: Option<Usage>,
    /// Time to first token.
    pub ttft: Option<Duration>,
    /// The error message, when it failed.
    pub error: Option<String>,
}

impl Outcome {
    fn failed(error: &ApiError) -> Outcome {
        Outcome {
            status: error.kind.status(),
            name: error.kind.code(),
            error: Some(error.message.clone()),
            ..Outcome::default()
        }
    }
}

/// What the route says to change when this candidate answers: a LoRA adapter is
/// asked for by its name; thinking is switched through the chat template
/// (`chat_template_kwargs.enable_thinking`, merged into what the client sent); the
/// effort is `reasoning_effort`. The route's options replace the client's.
pub fn apply_candidate_options(
    request: &mut ChatRequest,
    options: &switchyard_policy::CandidateOptions,
) {
    if let Some(adapter) = &options.lora {
        request.model.clone_from(adapter);
    }
    if let Some(on) = options.reasoning {
        let kwargs = request
            .extra
            .entry("chat_template_kwargs")
            .or_insert_with(|| serde_json::json!({}));
        if !kwargs.is_object() {
            *kwargs = serde_json::json!({});
        }
        if let Some(map) = kwargs.as_object_mut() {
            map.insert("enable_thinking".to_owned(), serde_json::Value::Bool(on));
        }
    }
    if let Some(effort) = options.effort {
        request.extra.insert(
            "reasoning_effort".to_owned(),
            serde_json::Value::String(effort.name().to_owned()),
        );
    }
}

/// Forwards a planned request and builds the client's response.
pub async fn forward(
    runtime: Arc<Runtime>,
    mut request: ChatRequest,
    conversation: &Conversation,
    plan: Plan,
    observed: Observed,
) -> Response {
    let Some(model) = runtime.policy.config.models.get(plan.model) else {
        return error_response(&ApiError::new(
            ErrorKind::Unavailable,
            "the planned model is missing",
        ));
    };
    request.model = model.upstream_name().to_owned();
    let options = plan
        .route_index
        .and_then(|i| runtime.policy.route(i))
        .and_then(|route| route.options_for(plan.model));
    if let Some(options) = options {
        apply_candidate_options(&mut request, options);
    }
    if let (Some(hint), true) = (plan.retention, runtime.policy.config.retention.body_field) {
        request.extra.insert(
            switchyard_wire::headers::KV_RETENTION_FIELD.to_owned(),
            serde_json::json!({"priority": hint.priority, "ttl_ms": hint.ttl_ms}),
        );
    }
    let hide_usage = conversation.stream && !request.wants_stream_usage();
    if hide_usage {
        // Ask for usage so the log and metrics have real token counts; the usage-only
        // chunk is not passed on to a client that did not ask for it.
        request
            .stream_options
            .get_or_insert_with(StreamOptions::default)
            .include_usage = Some(true);
    }
    let body = match serde_json::to_vec(&request) {
        Ok(b) => Bytes::from(b),
        Err(e) => {
            return error_response(&ApiError::new(
                ErrorKind::InvalidRequest,
                format!("cannot re-encode the request: {e}"),
            ));
        }
    };
    if let Some(key) = plan.session_key {
        runtime.sessions.turn(key, runtime.pools.now_ms());
    }
    if conversation.stream {
        forward_stream(runtime, body, hide_usage, plan, observed).await
    } else {
        forward_whole(runtime, body, plan, observed).await
    }
}

async fn forward_stream(
    runtime: Arc<Runtime>,
    body: Bytes,
    hide_usage: bool,
    mut plan: Plan,
    mut observed: Observed,
) -> Response {
    let max_attempts = runtime.policy.config.upstream.max_attempts;
    let attempted = with_failover(
        &runtime.pools,
        plan.model,
        plan.placement.clone(),
        max_attempts,
        |placement| {
            let in_flight = placement.endpoint.begin();
            let call = call(&plan, &observed);
            let upstream = &runtime.upstream;
            let body = body.clone();
            let started = observed.started;
            async move {
                upstream
                    .stream(in_flight, body, &call, hide_usage, started)
                    .await
            }
        },
    )
    .await;
    plan.placement = attempted.placement;
    observed.attempts = attempted.attempts;
    let headers = ExplainHeaders::new(&runtime, &plan, &observed);
    let response = match attempted.result {
        Ok(Ok(pass)) => {
            let outcome = pass.outcome;
            let runtime = Arc::clone(&runtime);
            tokio::spawn(async move {
                let outcome = outcome.await.unwrap_or(StreamOutcome {
                    end: StreamEnd::ClientGone,
                    usage: None,
                    ttft: None,
                    events: 0,
                });
                observe_stream(&runtime, &plan, &observed, &outcome);
            });
            let events = pass.events.map(Ok::<_, std::convert::Infallible>);
            Response::builder()
                .status(StatusCode::OK)
                .header(header::CONTENT_TYPE, "text/event-stream")
                .header(header::CACHE_CONTROL, "no-cache")
                .body(Body::from_stream(events))
                .unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response())
        }
        Ok(Err(relayed)) => {
            let status = relayed.status;
            let outcome = Outcome {
                status,
                name: "upstream_rejected",
                ttft: Some(observed.overhead + relayed.first_byte),
                ..Outcome::default()
            };
            observe(&runtime, &plan, &observed, outcome);
            relay(status, relayed.body)
        }
        Err(e) => failed(&runtime, &plan, &observed, &e),
    };
    headers.apply(response)
}

async fn forward_whole(
    runtime: Arc<Runtime>,
    body: Bytes,
    mut plan: Plan,
    mut observed: Observed,
) -> Response {
    let max_attempts = runtime.policy.config.upstream.max_attempts;
    let attempted = with_failover(
        &runtime.pools,
        plan.model,
        plan.placement.clone(),
        max_attempts,
        |placement| {
            let body = body.clone();
            let runtime = &runtime;
            let call = call(&plan, &observed);
            async move {
                let _in_flight = placement.endpoint.begin();
                runtime
                    .upstream
                    .complete(&placement.endpoint, body, &call)
                    .await
            }
        },
    )
    .await;
    plan.placement = attempted.placement;
    observed.attempts = attempted.attempts;
    let headers = ExplainHeaders::new(&runtime, &plan, &observed);
    let response = match attempted.result {
        Ok(done) => {
            let outcome = Outcome {
                status: done.status,
                name: if done.status < 300 {
                    "ok"
                } else {
                    "upstream_rejected"
                },
                usage: done.usage,
                ttft: Some(observed.overhead + done.first_byte),
                error: None,
            };
            observe(&runtime, &plan, &observed, outcome);
            relay(done.status, done.body)
        }
        Err(e) => failed(&runtime, &plan, &observed, &e),
    };
    headers.apply(response)
}

/// What goes upstream besides the body, the same on every attempt.
fn call<'a>(plan: &Plan, observed: &'a Observed) -> Call<'a> {
    Call {
        request_id: &observed.request_id,
        retention: plan.retention,
        deadline: observed.deadline,
    }
}

/// Records a forward that failed before any byte reached the client, and answers it.
fn failed(runtime: &Runtime, plan: &Plan, observed: &Observed, error: &ForwardError) -> Response {
    let error = error.to_api_error();
    observe(runtime, plan, observed, Outcome::failed(&error));
    error_response(&error)
}

fn relay(status: u16, body: Bytes) -> Response {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_GATEWAY);
    (status, [(header::CONTENT_TYPE, "application/json")], body).into_response()
}

/// The `x-switchyard-*` headers of a routed response.
pub struct ExplainHeaders {
    values: [(&'static str, Option<HeaderValue>); 6],
}

impl ExplainHeaders {
    /// The headers for a plan.
    pub fn new(runtime: &Runtime, plan: &Plan, observed: &Observed) -> Self {
        let value = |s: &str| HeaderValue::from_str(s).ok();
        ExplainHeaders {
            values: [
                ("x-switchyard-route", value(&plan.route)),
                ("x-switchyard-model", value(plan.model_name(runtime))),
                (
                    "x-switchyard-endpoint",
                    value(&plan.placement.endpoint.name),
                ),
                (
                    "x-switchyard-overhead-us",
                    value(&observed.overhead.as_micros().to_string()),
                ),
                ("x-request-id", value(&observed.request_id)),
                (
                    "x-switchyard-attempts",
                    value(&observed.attempts.to_string()),
                ),
            ],
        }
    }

    /// Adds the headers to a response.
    pub fn apply(self, mut response: Response) -> Response {
        let headers = response.headers_mut();
        for (name, value) in self.values {
            if let Some(value) = value {
                headers.insert(name, value);
            }
        }
        response
    }
}

fn observe_stream(runtime: &Runtime, plan: &Plan, observed: &Observed, outcome: &StreamOutcome) {
    // A stream that broke after its headers still counts against the endpoint.
    match outcome.end {
        StreamEnd::Done => plan.placement.endpoint.health.success(),
        StreamEnd::ClientGone => {}
        _ => {
            runtime.pools.record_failure(&plan.placement.endpoint);
        }
    }
    let (name, error) = match &outcome.end {
        StreamEnd::Done => ("ok", None),
        StreamEnd::Cut => ("cut", Some("upstream ended the stream early".to_owned())),
        StreamEnd::Stalled => ("stalled", Some("upstream stalled".to_owned())),
        StreamEnd::Failed(e) => ("upstream_error", Some(e.clone())),
        StreamEnd::UpstreamError(e) => ("upstream_error", Some(e.clone())),
        StreamEnd::ClientGone => ("client_gone", None),
    };
    let outcome = Outcome {
        status: 200,
        name,
        usage: outcome.usage,
        ttft: outcome.ttft,
        error,
    };
    observe(runtime, plan, observed, outcome);
}

/// Records a finished request in metrics and the decision log.
pub fn observe(runtime: &Runtime, plan: &Plan, observed: &Observed, outcome: Outcome) {
    let Outcome {
        status,
        name,
        usage,
        ttft,
        error,
    } = outcome;
    let latency = observed.started.elapsed();
    let model = plan.model_name(runtime).to_owned();
    let endpoint = plan.placement.endpoint.name.clone();
    metrics::counter!("switchyard_requests_total",
        "route" => plan.route.clone(), "model" => model.clone(),
        "endpoint" => endpoint.clone(), "outcome" => name)
    .increment(1);
    metrics::histogram!("switchyard_overhead_seconds").record(observed.overhead.as_secs_f64());
    metrics::histogram!("switchyard_request_duration_seconds", "model" => model.clone())
        .record(latency.as_secs_f64());
    if let Some(ttft) = ttft {
        metrics::histogram!("switchyard_ttft_seconds", "model" => model.clone())
            .record(ttft.as_secs_f64());
        if status < 300 {
            let upstream_ms = ttft.saturating_sub(observed.overhead).as_secs_f64() * 1000.0;
            let endpoint = &plan.placement.endpoint;
            endpoint
                .latency
                .observe(upstream_ms, runtime.pools.now_ms());
            let prompt = usage.map_or(observed.prompt_estimate, |u| {
                u32::try_from(u.prompt_tokens).unwrap_or(u32::MAX)
            });
            endpoint.ttft.observe(prompt, upstream_ms);
            if let Some(observed_model) = runtime.latency.get(plan.model) {
                observed_model.observe(Metric::Ttft, upstream_ms);
                let completion = usage.map_or(0, |u| u.completion_tokens);
                if completion > 1 && error.is_none() {
                    let decode = latency.saturating_sub(ttft).as_secs_f64() * 1000.0;
                    observed_model.observe(Metric::Tpot, decode / (completion - 1) as f64);
                }
            }
        }
    }
    if let (Some(u), false, true) = (usage, observed.capped, status < 300 && error.is_none()) {
        let completion = u32::try_from(u.completion_tokens).unwrap_or(u32::MAX);
        runtime.predictor.observe(
            (plan.route_index, plan.model),
            observed.prompt_estimate,
            completion,
        );
    }
    if let Some(u) = usage {
        metrics::counter!("switchyard_tokens_total", "model" => model.clone(), "kind" => "prompt")
            .increment(u.prompt_tokens);
        metrics::counter!("switchyard_tokens_total", "model" => model.clone(), "kind" => "completion")
            .increment(u.completion_tokens);
    }
    if let Some(log) = &runtime.log {
        log.record(DecisionRecord {
            ts_ms: observed
                .arrived
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX)),
            request_id: observed.request_id.clone(),
            requested_model: observed.requested_model.clone(),
            route: plan.route.clone(),
            route_confidence: plan.route_confidence,
            model,
            pool: plan.pool_name(runtime).to_owned(),
            endpoint,
            stream: observed.stream,
            status,
            outcome: name.to_owned(),
            prompt_tokens: usage.map_or(u64::from(observed.prompt_estimate), |u| u.prompt_tokens),
            completion_tokens: usage.map_or(0, |u| u.completion_tokens),
            tokens_reported: usage.is_some(),
            ttft_ms: ttft.map(|t| t.as_secs_f64() * 1000.0),
            latency_ms: latency.as_secs_f64() * 1000.0,
            overhead_us: u64::try_from(observed.overhead.as_micros()).unwrap_or(u64::MAX),
            attempts: observed.attempts,
            error,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use switchyard_policy::{CandidateOptions, Effort};

    #[test]
    fn candidate_options_shape_the_upstream_request() {
        let mut request: ChatRequest = serde_json::from_value(serde_json::json!({
            "model": "qwen3-8b",
            "messages": [{"role": "user", "content": "hi"}],
            "chat_template_kwargs": {"custom": 1, "enable_thinking": false},
            "reasoning_effort": "low",
        }))
        .unwrap_or_else(|e| unreachable!("{e}"));
        apply_candidate_options(
            &mut request,
            &CandidateOptions {
                weight: None,
                reasoning: Some(true),
                effort: Some(Effort::High),
                lora: Some("sql-adapter".to_owned()),
            },
        );
        let sent = serde_json::to_value(&request).unwrap_or_default();
        assert_eq!(sent["model"], "sql-adapter");
        assert_eq!(
            sent["chat_template_kwargs"],
            serde_json::json!({"custom": 1, "enable_thinking": true})
        );
        assert_eq!(sent["reasoning_effort"], "high");
        let mut plain = request.clone();
        apply_candidate_options(&mut plain, &CandidateOptions::default());
        assert_eq!(
            serde_json::to_value(&plain).unwrap_or_default(),
            sent,
            "no options, no change"
        );
    }
}
