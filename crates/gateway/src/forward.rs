//! The forward phase: call the upstream (with failover), pass the answer through the
//! response-side plugins, answer the client, and hand the outcome to observe. A local
//! answer from a plugin skips the upstream but takes the same way back.

use crate::exchange::{CascadeStep, Exchange};
use crate::local::{error_response, local_response};
use crate::observe::{Outcome, observe};
use crate::phase::Phase;
use crate::runtime::Runtime;
use crate::shadow::first_text;
use crate::stream_plugins::with_stream_hooks;
use axum::body::Body;
use axum::http::{HeaderName, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use futures_util::StreamExt;
use std::sync::Arc;
use std::time::Instant;
use switchyard_policy::{AlgorithmConfig, CascadeConfig, ConfidenceCheck};
use switchyard_pool::{
    Call, Completion, ForwardError, PassThrough, Retry, StreamEnd, StreamOutcome, UpstreamBody,
    with_failover,
};
use switchyard_router::plugins::{Flow, Verification};
use switchyard_wire::{ApiError, ErrorKind};

/// Answers a request that went through the phases up to plugins: locally, when a
/// plugin answered, otherwise from the upstream. The exchange is boxed: the futures
/// that carry it across awaits stay small.
pub async fn answer(runtime: Arc<Runtime>, mut x: Box<Exchange>) -> Response {
    if let Some(local) = x.local.clone() {
        let response = local_response(
            &local,
            x.model_name(&runtime),
            &x.request_id,
            (
                x.conversation.stream,
                x.conversation.stream && !x.hide_usage,
            ),
        );
        let outcome = Outcome {
            status: local.status,
            name: "local_answer",
            error: (local.status != 200).then(|| local.message.clone()),
            ..Outcome::default()
        };
        let response = finish(&runtime, &mut x, response);
        observe(&runtime, &mut x, outcome);
        if local.verify && local.status == 200 && !x.dry_run {
            tokio::spawn(verify(runtime, x, local.message));
        }
        return response;
    }
    if let Some(key) = x.placed.as_ref().and_then(|p| p.session_key)
        && runtime.policy.config.retention.enabled
    {
        let now = switchyard_pool::wall_ms();
        if runtime.sessions.remote() {
            crate::pipeline::off_the_async_workers(|| runtime.sessions.turn(key, now));
        } else {
            runtime.sessions.turn(key, now);
        }
    }
    if x.conversation.stream {
        forward_stream(runtime, x).await
    } else {
        forward_whole(runtime, x).await
    }
}

/// How long comparing a verified answer's embedding with the local one may take.
const VERIFY_EMBEDDING: std::time::Duration = std::time::Duration::from_secs(2);

/// Asks the upstream the request a plugin answered locally with `verify` (after the
/// client has its answer), and hands the upstream's answer and its similarity to the
/// local one to that plugin. Not the client's request: not observed or logged as a
/// decision; one attempt, under the endpoint's own timeouts, not the client's
/// deadline. Its success or failure counts for the endpoint like any other call.
async fn verify(runtime: Arc<Runtime>, mut x: Box<Exchange>, local: String) {
    x.request.stream = None;
    x.request.stream_options = None;
    let Some((model, first)) = target(&x) else {
        return;
    };
    let request_id = format!("{}-verify", x.request_id);
    let body = UpstreamBody::new(&x.request);
    let call = Call {
        request_id: &request_id,
        retention: None,
        deadline: None,
        headers: &x.upstream_headers,
    };
    let attempted = complete(&runtime, (model, first), Retry::once(), &body, &call).await;
    let (answer, error) = match attempted.result {
        Ok(done) if done.status < 300 => match first_text(&done.body) {
            Some(text) => (Some(text), None),
            None => (None, Some("the upstream's answer has no text".to_owned())),
        },
        Ok(done) => (None, Some(format!("the upstream answered {}", done.status))),
        Err(e) => (None, Some(e.to_string())),
    };
    let similarity = match &answer {
        Some(text) if *text == local => Some(1.0),
        Some(text) if runtime.policy.signals.has_model() => {
            let (runtime, text) = (Arc::clone(&runtime), text.clone());
            let deadline = Instant::now() + VERIFY_EMBEDDING;
            tokio::task::spawn_blocking(move || {
                runtime
                    .policy
                    .signals
                    .similarity(&text, &local, Some(deadline))
            })
            .await
            .ok()
            .and_then(Result::ok)
        }
        _ => None,
    };
    x.plugins.on_verify(&Verification {
        answer: answer.as_deref(),
        similarity,
        error: error.as_deref(),
    });
}

/// What goes upstream besides the body, the same on every attempt.
fn call(x: &Exchange) -> Call<'_> {
    Call {
        request_id: &x.request_id,
        retention: x.placed.as_ref().and_then(|p| p.retention),
        deadline: x.deadline,
        headers: &x.upstream_headers,
    }
}

async fn forward_stream(runtime: Arc<Runtime>, mut x: Box<Exchange>) -> Response {
    if cascading(&x) {
        if cascade_config(&runtime, &x).is_some_and(|c| c.buffer_streams) {
            match cascade_steps(&runtime, &mut x).await {
                Ok(Some(done)) if done.status < 300 => {
                    let pass = buffered_stream(&x, &done);
                    return respond_stream(&runtime, x, pass);
                }
                Ok(Some(done)) => {
                    return rejected(&runtime, &mut x, (done.status, done.body, done.first_byte));
                }
                // The last step: the request as it now stands, streamed.
                Ok(None) => {}
                Err(e) => return failed(&runtime, &mut x, &e),
            }
        } else {
            // The answer reaches the client as it is made: nothing to escalate.
            if let Some(selected) = x.selected.as_mut() {
                selected.escalate_to.clear();
            }
            x.cascade.push(CascadeStep {
                model: x.model_name(&runtime).to_owned(),
                endpoint: x.endpoint_name().to_owned(),
                confidence: None,
                verdict: "unchecked: stream".to_owned(),
                prompt_tokens: 0,
                completion_tokens: 0,
                latency_ms: 0.0,
            });
        }
    }
    let Some((model, first)) = target(&x) else {
        return missing_plan(&runtime, &mut x);
    };
    let forward_started = Instant::now();
    let max_attempts = runtime.policy.config.upstream.max_attempts;
    let hide_usage = x.hide_usage;
    let (attempted, dropped) = {
        let body = UpstreamBody::new(&x.request).lossy(lossy(&runtime, &x));
        let body = &body;
        let retry = Retry::up_to(max_attempts);
        let attempted = with_failover(&runtime.pools, model, first, retry, |placement| {
            let in_flight = placement.endpoint.begin();
            let call = call(&x);
            let upstream = &runtime.upstream;
            let started = x.started;
            async move {
                upstream
                    .stream(in_flight, body, &call, hide_usage, started)
                    .await
            }
        })
        .await;
        let dropped = body.dropped(attempted.placement.endpoint.provider).to_vec();
        (attempted, dropped)
    };
    x.dropped = dropped;
    settle(
        &runtime,
        &mut x,
        attempted.placement,
        attempted.attempts,
        forward_started,
    );
    match attempted.result {
        Ok(Ok(pass)) => respond_stream(&runtime, x, pass),
        Ok(Err(relayed)) => rejected(
            &runtime,
            &mut x,
            (relayed.status, relayed.body, relayed.first_byte),
        ),
        Err(e) => failed(&runtime, &mut x, &e),
    }
}

/// Relays an upstream's refusal (4xx) as it came, and observes it.
fn rejected(
    runtime: &Runtime,
    x: &mut Exchange,
    (status, body, first_byte): (u16, Bytes, std::time::Duration),
) -> Response {
    let outcome = Outcome {
        status,
        name: "upstream_rejected",
        ttft: Some(x.overhead + first_byte),
        ..Outcome::default()
    };
    let response = finish(runtime, x, relay(status, body));
    observe(runtime, x, outcome);
    response
}

/// Answers with a stream being passed through: its head (through the header hooks),
/// then its events (through the stream hooks); observed when it ends.
fn respond_stream(runtime: &Arc<Runtime>, mut x: Box<Exchange>, pass: PassThrough) -> Response {
    let runtime = Arc::clone(runtime);
    {
        {
            // The head first: its header hooks run while the chain is still here (the
            // stream hooks take it along with the events).
            let head = Response::builder()
                .status(StatusCode::OK)
                .header(header::CONTENT_TYPE, "text/event-stream")
                .header(header::CACHE_CONTROL, "no-cache")
                .body(Body::empty())
                .unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response());
            let head = finish(&runtime, &mut x, head);
            let (events, hooked) = if x.plugins.hooks().stream {
                let (events, hooked) = with_stream_hooks(&mut x, pass.events);
                (events, Some(hooked))
            } else {
                (pass.events, None)
            };
            // A header hook that failed turned the head into its error: that is the
            // answer, and the upstream's stream is dropped.
            let response = if head.status() == StatusCode::OK {
                let (parts, _) = head.into_parts();
                let body = Body::from_stream(events.map(Ok::<_, std::convert::Infallible>));
                Response::from_parts(parts, body)
            } else {
                head
            };
            let outcome = pass.outcome;
            tokio::spawn(async move {
                let outcome = outcome.await.unwrap_or(StreamOutcome {
                    end: StreamEnd::ClientGone,
                    usage: None,
                    ttft: None,
                    events: 0,
                });
                let ended = hooked.and_then(|h| h.reclaim(&mut x));
                observe_stream(&runtime, &mut x, &outcome, ended);
            });
            response
        }
    }
}

async fn forward_whole(runtime: Arc<Runtime>, mut x: Box<Exchange>) -> Response {
    let result = match cascade_steps(&runtime, &mut x).await {
        Ok(Some(done)) => Ok(done),
        // The last step (or no cascade): the request as it now stands.
        Ok(None) => call_whole(&runtime, &mut x, None).await,
        Err(e) => Err(e),
    };
    let done = match result {
        Ok(done) => done,
        Err(e) => return failed(&runtime, &mut x, &e),
    };
    let mut outcome = Outcome {
        status: done.status,
        name: if done.status < 300 {
            "ok"
        } else {
            "upstream_rejected"
        },
        usage: done.usage,
        ttft: Some(x.overhead + done.first_byte),
        error: None,
    };
    let mut response = relay(done.status, done.body.clone());
    if done.status < 300 && x.plugins.hooks().response {
        match response_hooks(&runtime, &mut x, &done.body) {
            Ok(Some(rewritten)) => response = rewritten,
            Ok(None) => {}
            Err(error) => {
                outcome = Outcome {
                    usage: done.usage,
                    ..Outcome::failed(&error)
                };
                response = error_response(&error);
            }
        }
    }
    if outcome.name == "ok" {
        crate::shadow::consider(&runtime, &x, &done);
    }
    let response = finish(&runtime, &mut x, response);
    observe(&runtime, &mut x, outcome);
    response
}

/// The most fields `x-switchyard-dropped` names; a request with thousands of parts
/// the upstream cannot carry gets a count of the rest, not a header of any length.
const DROPPED_SHOWN: usize = 16;

/// `x-switchyard-dropped`: the fields left out, the first [`DROPPED_SHOWN`] by name.
fn dropped_header(dropped: &[String]) -> String {
    let mut shown = dropped[..dropped.len().min(DROPPED_SHOWN)].join(", ");
    if dropped.len() > DROPPED_SHOWN {
        shown.push_str(&format!(" and {} more", dropped.len() - DROPPED_SHOWN));
    }
    shown
}

/// Whether the request's route leaves out what a provider's API cannot carry.
fn lossy(runtime: &Runtime, x: &Exchange) -> bool {
    x.route(runtime).is_some_and(|r| r.lossy_translation)
}

/// One whole upstream call for the request's current model and placement, with
/// failover; where it went and the time it took are settled on the exchange. The
/// request sent is `request` when given (a cascade step's), else the exchange's.
async fn call_whole(
    runtime: &Arc<Runtime>,
    x: &mut Exchange,
    request: Option<&switchyard_wire::ChatRequest>,
) -> Result<Completion, ForwardError> {
    let Some((model, first)) = target(x) else {
        return Err(ForwardError::Connect {
            endpoint: String::new(),
            reason: "the request has no placement".to_owned(),
        });
    };
    let forward_started = Instant::now();
    let max_attempts = runtime.policy.config.upstream.max_attempts;
    let route = x.route(runtime);
    let lossy = route.is_some_and(|r| r.lossy_translation);
    let retry = Retry::up_to(max_attempts).broken(route.is_some_and(|r| r.retry_broken));
    let (attempted, dropped) = {
        let body = UpstreamBody::new(request.unwrap_or(&x.request)).lossy(lossy);
        let attempted = complete(runtime, (model, first), retry, &body, &call(x)).await;
        let dropped = body.dropped(attempted.placement.endpoint.provider).to_vec();
        (attempted, dropped)
    };
    x.dropped = dropped;
    settle(
        runtime,
        x,
        attempted.placement,
        attempted.attempts,
        forward_started,
    );
    attempted.result
}

/// Whole calls of `body` to `model`, from the placement `first`, with failover as
/// `retry` allows.
pub(crate) async fn complete(
    runtime: &Runtime,
    (model, first): (usize, switchyard_pool::Placement),
    retry: Retry,
    body: &UpstreamBody<'_>,
    call: &Call<'_>,
) -> switchyard_pool::Attempted<Completion> {
    with_failover(
        &runtime.pools,
        model,
        first,
        retry,
        |placement| async move {
            let _in_flight = placement.endpoint.begin();
            runtime
                .upstream
                .complete(&placement.endpoint, body, call)
                .await
        },
    )
    .await
}

/// Whether the request's route is a cascade with steps still ahead.
fn cascading(x: &Exchange) -> bool {
    x.selected
        .as_ref()
        .is_some_and(|s| !s.escalate_to.is_empty())
}

/// The route's cascade parameters, when its algorithm is `cascade`.
fn cascade_config<'a>(runtime: &'a Runtime, x: &Exchange) -> Option<&'a CascadeConfig> {
    match &x.route(runtime)?.algorithm {
        AlgorithmConfig::Cascade(c) => Some(c),
        _ => None,
    }
}

/// Whether the client asked for logprobs itself.
fn client_logprobs(x: &Exchange) -> bool {
    x.request.extra.get("logprobs") == Some(&serde_json::Value::Bool(true))
}

/// Runs a cascade's steps that may still escalate, each as a whole answer with
/// logprobs: `Some` is the answer that ends the cascade (accepted, kept, or an
/// upstream refusal), `None` means it escalated to its last step (or was no cascade),
/// which the caller forwards as usual.
async fn cascade_steps(
    runtime: &Arc<Runtime>,
    x: &mut Exchange,
) -> Result<Option<Completion>, ForwardError> {
    let Some(config) = cascade_config(runtime, x).cloned() else {
        return Ok(None);
    };
    let asked = client_logprobs(x);
    while cascading(x) {
        let mut request = x.request.clone();
        request.stream = None;
        request.stream_options = None;
        match &config.check {
            ConfidenceCheck::MeanLogprob | ConfidenceCheck::MinLogprob => {
                request
                    .extra
                    .insert("logprobs".to_owned(), serde_json::Value::Bool(true));
            }
            ConfidenceCheck::SelfConsistency => {
                let n = x.conversation.answers.max(2);
                request.extra.insert("n".to_owned(), serde_json::json!(n));
                request
                    .extra
                    .entry("temperature")
                    .or_insert(serde_json::json!(1.0));
            }
            ConfidenceCheck::Verifier(_) => {}
        }
        let started = Instant::now();
        let mut done = call_whole(runtime, x, Some(&request)).await?;
        if done.status < 300
            && let Some(placed) = &x.placed
        {
            // What the step's endpoint took teaches its latency like any answer's.
            let endpoint = &placed.placement.endpoint;
            let ms = done.first_byte.as_secs_f64() * 1000.0;
            endpoint.latency.observe(ms, runtime.pools.now_ms());
            let prompt = done.usage.map_or(x.conversation.prompt_tokens, |u| {
                u32::try_from(u.prompt_tokens).unwrap_or(u32::MAX)
            });
            endpoint.ttft.observe(prompt, ms);
        }
        let mut step = CascadeStep {
            model: x.model_name(runtime).to_owned(),
            endpoint: x.endpoint_name().to_owned(),
            confidence: None,
            verdict: String::new(),
            prompt_tokens: done.usage.map_or(0, |u| u.prompt_tokens),
            completion_tokens: done.usage.map_or(0, |u| u.completion_tokens),
            latency_ms: started.elapsed().as_secs_f64() * 1000.0,
        };
        let value = (done.status < 300)
            .then(|| serde_json::from_slice::<serde_json::Value>(&done.body).ok())
            .flatten();
        step.confidence = match (&config.check, &value) {
            (ConfidenceCheck::Verifier(verifier), Some(v)) => {
                verify_step(runtime, x, verifier, v).await
            }
            (check, Some(v)) => switchyard_router::selection::confidence(check, v),
            (_, None) => None,
        };
        let next = x
            .selected
            .as_ref()
            .and_then(|s| s.escalate_to.first().copied());
        let verdict = match (done.status, step.confidence, next) {
            (status, _, _) if status >= 300 => Some(format!("upstream status {status}")),
            (_, None, _) => Some(
                match config.check {
                    ConfidenceCheck::MeanLogprob | ConfidenceCheck::MinLogprob => "no logprobs",
                    ConfidenceCheck::SelfConsistency => "no second sample",
                    ConfidenceCheck::Verifier(_) => "unverified",
                }
                .to_owned(),
            ),
            (_, Some(c), _) if c >= config.min_confidence => Some("accepted".to_owned()),
            (_, Some(_), Some(next)) if runtime.pools.model_load(next) >= config.saturated_at => {
                Some("kept: the next step's pools are saturated".to_owned())
            }
            _ => None,
        };
        let verdict = match verdict {
            Some(v) => v,
            None => match crate::pipeline::escalate(runtime, x) {
                Ok(()) => "escalated".to_owned(),
                Err(e) => format!("kept: the next step cannot take it ({})", e.message),
            },
        };
        let escalated = verdict == "escalated";
        metrics::counter!("switchyard_cascade_steps_total",
            "route" => x.route_name().to_owned(), "model" => step.model.clone(),
            "verdict" => cascade_verdict_label(&verdict))
        .increment(1);
        step.verdict = verdict;
        x.cascade.push(step);
        if !escalated {
            if let Some(selected) = x.selected.as_mut() {
                selected.escalate_to.clear();
            }
            let extra_samples = config.check == ConfidenceCheck::SelfConsistency;
            if let (Some(mut value), true) = (value, !asked || extra_samples) {
                if let Some(choices) = value.get_mut("choices").and_then(|c| c.as_array_mut()) {
                    // The second sample the gateway asked for, not the client.
                    if extra_samples && x.conversation.answers <= 1 {
                        choices.truncate(1);
                    }
                    // Logprobs the gateway asked for, not the client.
                    if !asked {
                        for choice in choices.iter_mut().filter_map(|c| c.as_object_mut()) {
                            choice.remove("logprobs");
                        }
                    }
                }
                if let Ok(body) = serde_json::to_vec(&value) {
                    done.body = Bytes::from(body);
                }
            }
            return Ok(Some(done));
        }
    }
    Ok(None)
}

/// Asks a cascade's verifier model whether a step's answer is right: 1 for YES, 0
/// for NO, `None` when it fails or says neither.
async fn verify_step(
    runtime: &Runtime,
    x: &Exchange,
    verifier: &str,
    answer: &serde_json::Value,
) -> Option<f64> {
    let text = crate::shadow::first_text_of(answer)?;
    let question = x.conversation.last_user_text();
    let prompt = format!(
        "Question:\n{question}\n\nAnswer:\n{text}\n\nIs this answer correct? Reply with \
         exactly one word: YES or NO."
    );
    let request = crate::shadow::short_request(
        verifier,
        "You check whether an answer to a question is correct.",
        &prompt,
    )
    .ok()?;
    let side = crate::shadow::Side {
        request_id: &x.request_id,
        headers: &x.upstream_headers,
        tokens: x.conversation.prompt_tokens.saturating_add(
            u32::try_from(text.len() / 3)
                .unwrap_or(u32::MAX)
                .saturating_add(64),
        ),
    };
    let (reply, _) = crate::shadow::ask_model(runtime, verifier, &side, request, "verifier")
        .await
        .ok()?;
    match switchyard_router::shadow::first_word(&reply).as_str() {
        "YES" => Some(1.0),
        "NO" => Some(0.0),
        _ => None,
    }
}

/// A cascade verdict as a metric label (its kind, without the details).
fn cascade_verdict_label(verdict: &str) -> &'static str {
    match verdict {
        "accepted" => "accepted",
        "escalated" => "escalated",
        "no logprobs" | "no second sample" | "unverified" => "unchecked",
        v if v.starts_with("kept") => "kept",
        _ => "upstream_status",
    }
}

/// A whole answer as the events of a stream, for a streamed request whose cascade
/// step was taken whole: per choice its message as one delta and its finish reason,
/// then usage (when the client asked for it) and `[DONE]`.
fn buffered_stream(x: &Exchange, done: &Completion) -> PassThrough {
    let value: serde_json::Value = serde_json::from_slice(&done.body).unwrap_or_default();
    let mut events = Vec::new();
    let head = |choices: serde_json::Value| {
        serde_json::json!({
            "id": value.get("id"), "object": "chat.completion.chunk",
            "created": value.get("created"), "model": value.get("model"),
            "choices": choices,
        })
    };
    let choices = value.get("choices").and_then(|c| c.as_array());
    for choice in choices.into_iter().flatten() {
        let index = choice.get("index").cloned().unwrap_or(serde_json::json!(0));
        let mut delta = choice.get("message").cloned().unwrap_or_default();
        if let Some(calls) = delta.get_mut("tool_calls").and_then(|c| c.as_array_mut()) {
            for (i, call) in calls.iter_mut().enumerate() {
                if let Some(call) = call.as_object_mut() {
                    call.entry("index").or_insert(serde_json::json!(i));
                }
            }
        }
        let mut first = serde_json::json!({"index": index, "delta": delta, "finish_reason": null});
        if let Some(logprobs) = choice.get("logprobs") {
            first["logprobs"] = logprobs.clone();
        }
        let last = serde_json::json!({"index": index, "delta": {},
                                      "finish_reason": choice.get("finish_reason")});
        for c in [first, last] {
            events.push(Bytes::from(format!(
                "data: {}\n\n",
                head(serde_json::json!([c]))
            )));
        }
    }
    if !x.hide_usage
        && let Some(usage) = value.get("usage")
    {
        let mut chunk = head(serde_json::json!([]));
        chunk["usage"] = usage.clone();
        events.push(Bytes::from(format!("data: {chunk}\n\n")));
    }
    events.push(Bytes::from_static(b"data: [DONE]\n\n"));
    let (tx, rx) = tokio::sync::oneshot::channel();
    let _ = tx.send(StreamOutcome {
        end: StreamEnd::Done,
        usage: done.usage,
        ttft: Some(x.overhead + done.first_byte),
        events: u32::try_from(events.len()).unwrap_or(u32::MAX),
    });
    PassThrough {
        events: futures_util::stream::iter(events).boxed(),
        outcome: rx,
        first_byte: done.first_byte,
    }
}

/// Runs the whole-answer hooks on a 2xx body: a new response when one rewrote or
/// replaced it, `None` when the body stands.
fn response_hooks(
    runtime: &Runtime,
    x: &mut Exchange,
    body: &Bytes,
) -> Result<Option<Response>, ApiError> {
    let Ok(mut value) = serde_json::from_slice::<serde_json::Value>(body) else {
        // Not JSON: nothing a JSON hook can read; passed through as it came.
        return Ok(None);
    };
    let original = value.clone();
    let flow = if x.plugins.embeds() {
        let plugins = &mut x.plugins;
        crate::pipeline::off_the_async_workers(|| plugins.on_response(&mut value))
    } else {
        x.plugins.on_response(&mut value)
    };
    match flow {
        Ok(Flow::Continue) if value == original => Ok(None),
        Ok(Flow::Continue) => Ok(Some(axum::Json(value).into_response())),
        Ok(Flow::Answer(local)) => Ok(Some(local_response(
            &local,
            x.model_name(runtime),
            &x.request_id,
            (false, false),
        ))),
        Err(failure) => {
            runtime.metrics.plugin_failure();
            Err(ApiError::new(ErrorKind::PluginFailed, failure.to_string()))
        }
    }
}

/// The model and first placement of a planned request.
fn target(x: &Exchange) -> Option<(usize, switchyard_pool::Placement)> {
    let model = x.selected.as_ref()?.model;
    Some((model, x.placed.as_ref()?.placement.clone()))
}

fn missing_plan(runtime: &Runtime, x: &mut Exchange) -> Response {
    let error = ApiError::new(ErrorKind::Unavailable, "the request has no placement");
    observe(runtime, x, Outcome::failed(&error));
    error_response(&error)
}

/// Records where the request finally went and the forward phase's time (to the
/// response headers of a stream, to the whole body otherwise).
fn settle(
    runtime: &Runtime,
    x: &mut Exchange,
    placement: switchyard_pool::Placement,
    attempts: u32,
    since: Instant,
) {
    if let Some(placed) = &mut x.placed {
        placed.placement = placement;
    }
    x.attempts = attempts;
    let spent = since.elapsed();
    x.timings.record(Phase::Forward, spent);
    runtime.metrics.phase(Phase::Forward, spent);
}

/// Response-header hooks, then the `x-switchyard-*` explain headers (which plugins
/// cannot change).
pub fn finish(runtime: &Runtime, x: &mut Exchange, mut response: Response) -> Response {
    if x.plugins.hooks().response_headers {
        let status = response.status().as_u16();
        let result = x
            .plugins
            .on_response_headers(status, response.headers_mut());
        if let Err(failure) = result {
            runtime.metrics.plugin_failure();
            response = error_response(&ApiError::new(ErrorKind::PluginFailed, failure.to_string()));
        }
    }
    explain_headers(runtime, x, response)
}

/// The `x-switchyard-*` headers of a routed response (names parsed at compile time).
fn explain_headers(runtime: &Runtime, x: &Exchange, mut response: Response) -> Response {
    const ROUTE: HeaderName = HeaderName::from_static("x-switchyard-route");
    const MODEL: HeaderName = HeaderName::from_static("x-switchyard-model");
    const ENDPOINT: HeaderName = HeaderName::from_static("x-switchyard-endpoint");
    const OVERHEAD: HeaderName = HeaderName::from_static("x-switchyard-overhead-us");
    const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");
    const ATTEMPTS: HeaderName = HeaderName::from_static("x-switchyard-attempts");
    const DROPPED: HeaderName = HeaderName::from_static("x-switchyard-dropped");
    let value = |s: &str| HeaderValue::from_str(s).ok();
    let values = [
        (ROUTE, value(x.route_name())),
        (MODEL, value(x.model_name(runtime))),
        (ENDPOINT, value(x.endpoint_name())),
        (
            OVERHEAD,
            Some(HeaderValue::from(
                u64::try_from(x.overhead.as_micros()).unwrap_or(u64::MAX),
            )),
        ),
        (REQUEST_ID, value(&x.request_id)),
        (ATTEMPTS, Some(HeaderValue::from(x.attempts))),
        (DROPPED, value(&dropped_header(&x.dropped))),
    ];
    let headers = response.headers_mut();
    for (name, value) in values {
        if let Some(value) = value.filter(|v| !v.is_empty()) {
            headers.insert(name, value);
        }
    }
    if !x.cascade.is_empty() {
        const CASCADE: HeaderName = HeaderName::from_static("x-switchyard-cascade");
        if let Some(value) = value(&cascade_header(x, x.model_name(runtime))) {
            headers.insert(CASCADE, value);
        }
    }
    response
}

/// A cascade's steps for the `x-switchyard-cascade` header: `model verdict
/// [confidence]` per step, comma-separated, ending with the model that answered after
/// the last escalation.
fn cascade_header(x: &Exchange, answered_by: &str) -> String {
    let mut out = String::new();
    for step in &x.cascade {
        if !out.is_empty() {
            out.push_str(", ");
        }
        out.push_str(&step.model);
        out.push(' ');
        // The verdict's kind only: details stay in the decision log.
        out.push_str(step.verdict.split(':').next().unwrap_or_default());
        if let Some(c) = step.confidence {
            out.push_str(&format!(" {c:.3}"));
        }
    }
    if x.cascade.last().is_some_and(|s| s.verdict == "escalated") {
        out.push_str(&format!(", {answered_by} answered"));
    }
    out
}

/// Records a forward that failed before any byte reached the client, and answers it.
fn failed(runtime: &Runtime, x: &mut Exchange, error: &ForwardError) -> Response {
    let error = error.to_api_error();
    let response = finish(runtime, x, error_response(&error));
    observe(runtime, x, Outcome::failed(&error));
    response
}

fn relay(status: u16, body: Bytes) -> Response {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_GATEWAY);
    (status, [(header::CONTENT_TYPE, "application/json")], body).into_response()
}

fn observe_stream(
    runtime: &Runtime,
    x: &mut Exchange,
    outcome: &StreamOutcome,
    ended_by_plugin: Option<String>,
) {
    // A stream that broke after its headers still counts against the endpoint.
    if let Some(placed) = &x.placed {
        match outcome.end {
            StreamEnd::Done => placed.placement.endpoint.health.success(),
            // The client's own doing, not the endpoint's.
            StreamEnd::ClientGone | StreamEnd::Deadline => {}
            _ => {
                runtime.pools.record_failure(&placed.placement.endpoint);
            }
        }
    }
    let (name, error) = match &outcome.end {
        StreamEnd::Done => ("ok", None),
        StreamEnd::Cut => ("cut", Some("upstream ended the stream early".to_owned())),
        StreamEnd::Stalled => ("stalled", Some("upstream stalled".to_owned())),
        StreamEnd::Failed(e) | StreamEnd::UpstreamError(e) => ("upstream_error", Some(e.clone())),
        StreamEnd::ClientGone => ("client_gone", None),
        StreamEnd::Deadline => (
            "client_deadline",
            Some("the request's own deadline passed mid-stream".to_owned()),
        ),
    };
    // A plugin that ended the stream dropped the upstream: not the client leaving.
    let (name, error) = match ended_by_plugin {
        Some(message) if matches!(outcome.end, StreamEnd::ClientGone | StreamEnd::Done) => {
            ("plugin_ended", Some(message))
        }
        _ => (name, error),
    };
    let outcome = Outcome {
        status: 200,
        name,
        usage: outcome.usage,
        ttft: outcome.ttft,
        error,
    };
    observe(runtime, x, outcome);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_dropped_header_names_a_bounded_number_of_fields() {
        let few: Vec<String> = vec!["n".into(), "logprobs".into()];
        assert_eq!(dropped_header(&few), "n, logprobs");
        assert_eq!(dropped_header(&[]), "");
        let many: Vec<String> = (0..5000)
            .map(|i| format!("messages[0].content[{i}]"))
            .collect();
        let header = dropped_header(&many);
        assert!(header.starts_with("messages[0].content[0], "), "{header}");
        assert!(header.ends_with(" and 4984 more"), "{header}");
        assert!(header.len() < 600, "{}", header.len());
    }
}
