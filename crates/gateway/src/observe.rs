//! The observe phase: every request, served or refused, ends here. Metrics, the
//! learned state (endpoint latencies, answer lengths, model latencies), the plugins'
//! observe hooks and the decision log.

use crate::decision_log::{DecisionRecord, OutcomeRecord};
use crate::exchange::Exchange;
use crate::metrics::Requested;
use crate::phase::Phase;
use crate::runtime::Runtime;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use switchyard_policy::AlgorithmConfig;
use switchyard_router::Metric;
use switchyard_router::outcomes::{Answer, Implicit, implicit_score};
use switchyard_router::plugins::Observation;
use switchyard_wire::{ApiError, Usage};
use switchyard_workload::SignalFamily;

/// How a request ended.
#[derive(Debug, Clone, Default)]
pub struct Outcome {
    /// HTTP status sent to the client.
    pub status: u16,
    /// `ok`, `upstream_error`, `stalled`, `policy_denied`, `local_answer`, …
    pub name: &'static str,
    /// Usage reported upstream.
    pub usage: Option<Usage>,
    /// Time to first token.
    pub ttft: Option<Duration>,
    /// The error message, when it failed.
    pub error: Option<String>,
}

impl Outcome {
    /// The outcome of a request answered with `error`.
    pub fn failed(error: &ApiError) -> Outcome {
        Outcome {
            status: error.kind.status(),
            name: error.kind.code(),
            error: Some(error.message.clone()),
            ..Outcome::default()
        }
    }
}

/// Records a finished request.
pub fn observe(runtime: &Runtime, x: &mut Exchange, outcome: Outcome) {
    let start = Instant::now();
    let Outcome {
        status,
        name,
        usage,
        ttft,
        error,
    } = outcome;
    let latency = x.started.elapsed();
    let answered_in = x.answered_in();
    let model = x.model_name(runtime);
    runtime.metrics.request(Requested {
        route: x.route_name(),
        model,
        endpoint: x.endpoint_name(),
        outcome: name,
        phase: answered_in,
    });
    if answered_in == Phase::Forward {
        runtime.metrics.overhead(x.overhead);
    }
    let series = runtime.metrics.model(x.selected.as_ref().map(|s| s.model));
    series.duration.record(latency.as_secs_f64());
    let mut counted = None;
    if answered_in == Phase::Forward {
        learn(runtime, x, (status, usage, ttft, error.is_some()), latency);
        counted = remember(runtime, x, name, usage, ttft);
        // A sticky route's session stays with the model that answered it.
        if let Some(session) = x.selected.as_ref().and_then(|s| s.session)
            && status < 300
            && error.is_none()
        {
            runtime
                .session_models
                .served(session, model, switchyard_pool::wall_ms());
        }
    }
    if let Some(u) = usage {
        series.prompt_tokens.increment(u.prompt_tokens);
        series.completion_tokens.increment(u.completion_tokens);
        if u.cached_tokens() > 0 {
            series.cached_tokens.increment(u.cached_tokens());
        }
    }
    // What signals that learn across requests (a caller's reputation) keep: every
    // request that gets here, served or refused (a dry run never does).
    let record = || runtime.policy.signals.record(&x.signals);
    let errors = if runtime.state.remote() && runtime.policy.signals.learns() {
        crate::pipeline::off_the_async_workers(record)
    } else {
        record()
    };
    for error in errors {
        tracing::warn!(request_id = %x.request_id, %error, "a signal could not record the request");
        metrics::counter!("switchyard_state_errors_total", "what" => "signal_record").increment(1);
    }
    if x.plugins.hooks().observe {
        let observation = Observation {
            status,
            outcome: name,
            phase: answered_in.name(),
            usage,
            latency,
        };
        if runtime.state.remote() && x.plugins.keeps_state() {
            crate::pipeline::off_the_async_workers(|| x.plugins.on_observe(&observation));
        } else {
            x.plugins.on_observe(&observation);
        }
    }
    if let Some(log) = &runtime.log {
        log.record(DecisionRecord {
            ts_ms: unix_ms(x.arrived),
            request_id: x.request_id.clone(),
            requested_model: x.conversation.requested_model.clone(),
            route: x.route_name().to_owned(),
            recipe: x
                .route(runtime)
                .and_then(|r| runtime.policy.scopes().get(r.scope)?.name.clone()),
            route_confidence: x.routed.as_ref().and_then(|r| r.confidence),
            model: model.to_owned(),
            pool: x.pool_name(runtime).to_owned(),
            endpoint: x.endpoint_name().to_owned(),
            stream: x.conversation.stream,
            status,
            outcome: name.to_owned(),
            phase: answered_in.name(),
            prompt_tokens: usage
                .map_or(u64::from(x.conversation.prompt_tokens), |u| u.prompt_tokens),
            completion_tokens: usage.map_or(0, |u| u.completion_tokens),
            cached_tokens: usage.map_or(0, |u| u.cached_tokens()),
            tokens_reported: usage.is_some(),
            api: x.dialect.name(),
            ttft_ms: ttft.map(|t| t.as_secs_f64() * 1000.0),
            latency_ms: latency.as_secs_f64() * 1000.0,
            overhead_us: u64::try_from(x.overhead.as_micros()).unwrap_or(u64::MAX),
            attempts: x.attempts,
            error,
            cascade: x.cascade.clone(),
            bucket: x.selected.as_ref().and_then(|s| s.bucket.clone()),
            score: counted,
        });
    }
    let spent = start.elapsed();
    x.timings.record(Phase::Observe, spent);
    runtime.metrics.phase(Phase::Observe, spent);
}

/// Remembers a forwarded answer in the outcome store, for feedback and the learning
/// algorithms; a complaint of the session's previous answer is scored and logged.
fn remember(
    runtime: &Runtime,
    x: &Exchange,
    name: &str,
    usage: Option<Usage>,
    ttft: Option<Duration>,
) -> Option<f64> {
    let selected = x.selected.as_ref()?;
    if !runtime.outcomes.enabled() {
        return None;
    }
    let implicit = match name {
        "ok" => {
            let cap = x.conversation.output_cap;
            let completion = usage.map_or(0, |u| u.completion_tokens);
            let slow_after = runtime.policy.config.outcomes.implicit.slow_after_ms;
            if cap.is_some_and(|c| completion >= u64::from(c)) {
                Implicit::Truncated
            } else if ttft
                .zip(slow_after)
                .is_some_and(|(t, limit)| t.as_secs_f64() * 1000.0 > limit)
            {
                Implicit::Slow
            } else {
                Implicit::Ok
            }
        }
        "upstream_error" | "upstream_timeout" | "cut" | "stalled" => Implicit::Failed,
        _ => Implicit::Uncounted,
    };
    let signals = &runtime.policy.signals;
    let complaint = x
        .signals
        .iter()
        .filter(|(_, v)| v.matched)
        .filter_map(|(id, _)| signals.key(id))
        .find(|k| matches!(k.family, SignalFamily::UserFeedback | SignalFamily::Reask))
        .map(|k| format!("{}.{}", k.family.name(), k.name));
    let discount = match x.route(runtime).map(|r| &r.algorithm) {
        Some(AlgorithmConfig::Thompson(t)) => t.discount,
        _ => 1.0,
    };
    let now_ms = unix_ms(SystemTime::now());
    let scored = runtime.outcomes.record(&Answer {
        request_id: &x.request_id,
        caller: x.caller,
        route: x.route_name(),
        model: x.model_name(runtime),
        bucket: selected.bucket.as_deref(),
        domain: x.signals.domain.as_ref().map(|d| d.label.as_str()),
        discount,
        session: x.placed.as_ref().and_then(|p| p.session_key),
        implicit,
        complaint: complaint.as_deref(),
        now_ms,
    });
    if let Some(scored) = scored {
        metrics::counter!("switchyard_outcomes_total", "source" => "complaint").increment(1);
        if let Some(log) = &runtime.log {
            log.outcome(OutcomeRecord {
                kind: "outcome",
                ts_ms: now_ms,
                source: "complaint",
                scored,
                label: None,
                comment: None,
                by: Some(format!(
                    "{} ({})",
                    x.request_id,
                    complaint.unwrap_or_default()
                )),
            });
        }
    }
    implicit_score(&runtime.policy.config.outcomes.implicit, implicit)
}

/// Unix time in milliseconds.
pub fn unix_ms(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// What a forwarded request teaches: the endpoint's and the model's latencies, and
/// natural answer lengths (only from answers the client did not cap).
fn learn(
    runtime: &Runtime,
    x: &Exchange,
    (status, usage, ttft, failed): (u16, Option<Usage>, Option<Duration>, bool),
    latency: Duration,
) {
    let (Some(selected), Some(placed)) = (&x.selected, &x.placed) else {
        return;
    };
    let model = selected.model;
    if let Some(ttft) = ttft {
        runtime
            .metrics
            .model(Some(model))
            .ttft
            .record(ttft.as_secs_f64());
        if status < 300 {
            let upstream_ms = ttft.saturating_sub(x.overhead).as_secs_f64() * 1000.0;
            let endpoint = &placed.placement.endpoint;
            endpoint
                .latency
                .observe(upstream_ms, runtime.pools.now_ms());
            let prompt = usage.map_or(x.conversation.prompt_tokens, |u| {
                u32::try_from(u.prompt_tokens).unwrap_or(u32::MAX)
            });
            endpoint.ttft.observe(prompt, upstream_ms);
            if let Some(observed_model) = runtime.latency.get(model) {
                observed_model.observe(Metric::Ttft, upstream_ms);
                let completion = usage.map_or(0, |u| u.completion_tokens);
                if completion > 1 && !failed {
                    let decode = latency.saturating_sub(ttft).as_secs_f64() * 1000.0;
                    observed_model.observe(Metric::Tpot, decode / (completion - 1) as f64);
                }
            }
        }
    }
    // A cap set by the client or a plugin cuts answers short of their natural length.
    let capped = x.request.output_cap().is_some();
    if let (Some(u), false, true) = (usage, capped, status < 300 && !failed) {
        let completion = u32::try_from(u.completion_tokens).unwrap_or(u32::MAX);
        let route = x.routed.as_ref().and_then(|r| r.index);
        runtime
            .predictor
            .observe((route, model), x.conversation.prompt_tokens, completion);
    }
}
