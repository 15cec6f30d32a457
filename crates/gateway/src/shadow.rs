//! Shadow evaluation: a sampled share of a route's whole answers is also asked of the
//! route's shadow model, in the background after the client has its answer (never
//! delaying it; bounded in concurrency and hourly budget). The two answers are compared
//! by exact match or a judge model; what that finds moves the two models' Elo ratings
//! (which `elo` selection reads), is tallied per route with what each side cost
//! (`GET /v1/outcomes`), and is logged as a `shadow` line.

use crate::decision_log::ShadowRecord;
use crate::exchange::Exchange;
use crate::forward::complete;
use crate::observe::unix_ms;
use crate::runtime::Runtime;
use std::sync::Arc;
use std::time::Instant;
use switchyard_policy::{ShadowConfig, ShadowJudge};
use switchyard_pool::{Call, Completion};
use switchyard_router::shadow::{Judgement, Slot, Verdict, judged, normalized};
use switchyard_wire::hash::{FNV_OFFSET, fnv1a, mix64};
use switchyard_wire::{ChatRequest, Usage};

/// What the background task needs of the client's request and answer.
struct Shadowed {
    request_id: String,
    route: String,
    model: String,
    model_dollars: f64,
    answer: String,
    question: String,
    request: ChatRequest,
    headers: http::HeaderMap,
    tokens: u32,
    swap: bool,
}

/// Whether the request with this id is in the sampled `share` (a hash of the id, so
/// the same id always decides the same way).
fn sampled(request_id: &str, share: f64) -> bool {
    let h = mix64(fnv1a(request_id.as_bytes(), FNV_OFFSET) ^ 0x5ad0_5ad0);
    ((h >> 11) as f64 / (1u64 << 53) as f64) < share
}

/// After a whole answer `done` (2xx) reached the client: shadows the request when its
/// route has a `shadow` that samples it and a place is free within the route's
/// concurrency and budget. Returns at once; the work runs in a task of its own.
pub fn consider(runtime: &Arc<Runtime>, x: &Exchange, done: &Completion) {
    let Some(config) = x.route(runtime).and_then(|r| r.shadow.as_ref()) else {
        return;
    };
    let model = x.model_name(runtime);
    if x.dry_run || done.status >= 300 || model == config.model {
        return;
    }
    if !sampled(&x.request_id, config.share) {
        return;
    }
    let route = x.route_name();
    let key = (route, model, config.model.as_str());
    let Some(slot) = runtime.shadows.admit(
        key,
        config.max_concurrent,
        config.budget_per_hour,
        unix_ms(std::time::SystemTime::now()),
    ) else {
        metrics::counter!("switchyard_shadow_skipped_total", "route" => route.to_owned())
            .increment(1);
        return;
    };
    let Some(answer) = first_text(&done.body) else {
        return;
    };
    let mut request = x.request.clone();
    request.stream = None;
    request.stream_options = None;
    let job = Shadowed {
        request_id: x.request_id.clone(),
        route: route.to_owned(),
        model: model.to_owned(),
        model_dollars: dollars(runtime, model, done.usage),
        answer,
        question: x.conversation.last_user_text().to_owned(),
        request,
        headers: x.upstream_headers.clone(),
        tokens: x
            .conversation
            .prompt_tokens
            .saturating_add(x.conversation.output_cap.unwrap_or(1).max(1)),
        // The judge sees the answers in an order drawn per request (position bias).
        swap: mix64(fnv1a(x.request_id.as_bytes(), FNV_OFFSET)) & 1 == 1,
    };
    let (runtime, config) = (Arc::clone(runtime), config.clone());
    tokio::spawn(async move {
        run(&runtime, &config, job, slot).await;
    });
}

/// Asks the shadow model, compares, and records.
async fn run(runtime: &Runtime, config: &ShadowConfig, job: Shadowed, slot: Slot) {
    let started = Instant::now();
    let side = Side {
        request_id: &job.request_id,
        headers: &job.headers,
        tokens: job.tokens,
    };
    let shadow = ask_model(runtime, &config.model, &side, job.request.clone(), "shadow").await;
    let shadow_latency_ms = started.elapsed().as_secs_f64() * 1000.0;
    let (verdict, judge, shadow_dollars, error) = match shadow {
        Err(error) => (Verdict::Failed, None, 0.0, Some(error)),
        Ok((text, usage)) => {
            let cost = dollars(runtime, &config.model, usage);
            match &config.judge {
                ShadowJudge::ExactMatch => {
                    let verdict = if normalized(&text) == normalized(&job.answer) {
                        Verdict::Agreed
                    } else {
                        Verdict::Disagreed
                    };
                    (verdict, None, cost, None)
                }
                ShadowJudge::Model(judge) => {
                    let (verdict, error) = judge_answers(runtime, judge, &job, &text).await;
                    (verdict, Some(judge.clone()), cost, error)
                }
            }
        }
    };
    drop(slot);
    // The client's model's score in one Elo game against the shadow.
    let score = match verdict {
        Verdict::ModelPreferred => Some(1.0),
        Verdict::ShadowPreferred => Some(0.0),
        Verdict::Tie | Verdict::Agreed => Some(0.5),
        Verdict::Disagreed | Verdict::Unjudged | Verdict::Failed => None,
    };
    let k = runtime.policy.config.outcomes.elo_k;
    let elo = score.and_then(|s| runtime.outcomes.elo_game(&job.model, &config.model, s, k));
    let now = unix_ms(std::time::SystemTime::now());
    runtime.shadows.record(
        (&job.route, &job.model, &config.model),
        verdict,
        (job.model_dollars, shadow_dollars),
        now,
    );
    let label = serde_json::to_value(verdict)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default();
    metrics::counter!("switchyard_shadow_total", "route" => job.route.clone(), "verdict" => label)
        .increment(1);
    if let Some(log) = &runtime.log {
        log.shadow(ShadowRecord {
            kind: "shadow",
            ts_ms: now,
            request_id: job.request_id.clone(),
            route: job.route.clone(),
            model: job.model.clone(),
            shadow: config.model.clone(),
            verdict,
            judge,
            model_dollars: job.model_dollars,
            shadow_dollars,
            shadow_latency_ms,
            elo,
            error,
        });
    }
}

/// What an answer of `model` cost by its price and usage (0 without either).
fn dollars(runtime: &Runtime, model: &str, usage: Option<Usage>) -> f64 {
    let price = runtime
        .policy
        .model_index(model)
        .and_then(|i| runtime.policy.config.models.get(i))
        .and_then(|m| m.price);
    usage.zip(price).map_or(0.0, |(u, p)| {
        p.cost(
            u32::try_from(u.prompt_tokens).unwrap_or(u32::MAX),
            u32::try_from(u.completion_tokens).unwrap_or(u32::MAX),
        )
    })
}

/// What a side call (a shadow, a judge, a cascade's verifier) needs of the request
/// it is made for.
pub(crate) struct Side<'a> {
    /// The client's request id (the call's id adds its role).
    pub request_id: &'a str,
    /// Headers the plugins added to the upstream call.
    pub headers: &'a http::HeaderMap,
    /// Context the call needs, for placement.
    pub tokens: u32,
}

/// One whole call of `request` to `model` (placed like any request, one attempt, no
/// client deadline): the answer's text and usage.
pub(crate) async fn ask_model(
    runtime: &Runtime,
    model: &str,
    side: &Side<'_>,
    mut request: ChatRequest,
    role: &str,
) -> Result<(String, Option<Usage>), String> {
    let index = runtime
        .policy
        .model_index(model)
        .ok_or_else(|| format!("model `{model}` is not configured"))?;
    if let Some(config) = runtime.policy.config.models.get(index) {
        config.upstream_name().clone_into(&mut request.model);
    }
    let placement = runtime
        .pools
        .place(index, side.tokens)
        .map_err(|e| format!("cannot place the {role} request: {e}"))?;
    let body = switchyard_pool::UpstreamBody::new(&request);
    let request_id = format!("{}-{role}", side.request_id);
    let call = Call {
        request_id: &request_id,
        retention: None,
        deadline: None,
        headers: side.headers,
    };
    let attempted = complete(
        runtime,
        (index, placement),
        switchyard_pool::Retry::once(),
        &body,
        &call,
    )
    .await;
    let done = attempted.result.map_err(|e| e.to_string())?;
    if done.status >= 300 {
        return Err(format!("the {role} model answered {}", done.status));
    }
    let text = first_text(&done.body).ok_or_else(|| format!("the {role} answer has no text"))?;
    Ok((text, done.usage))
}

/// A short request asking `model` one question, with a system line.
pub(crate) fn short_request(
    model: &str,
    system: &str,
    prompt: &str,
) -> Result<ChatRequest, String> {
    serde_json::from_value(serde_json::json!({
        "model": model,
        "max_tokens": 4,
        "temperature": 0,
        "messages": [
            {"role": "system", "content": system},
            {"role": "user", "content": prompt},
        ],
    }))
    .map_err(|e| e.to_string())
}

/// Asks the judge model which answer is better.
async fn judge_answers(
    runtime: &Runtime,
    judge: &str,
    job: &Shadowed,
    shadow: &str,
) -> (Verdict, Option<String>) {
    let (a, b) = if job.swap {
        (shadow, job.answer.as_str())
    } else {
        (job.answer.as_str(), shadow)
    };
    let prompt = format!(
        "Question:\n{}\n\nAnswer A:\n{a}\n\nAnswer B:\n{b}\n\nWhich answer is better? \
         Reply with exactly one word: A, B or TIE.",
        job.question
    );
    let request = match short_request(
        judge,
        "You compare two answers to the same question.",
        &prompt,
    ) {
        Ok(r) => r,
        Err(e) => return (Verdict::Failed, Some(e)),
    };
    let side = Side {
        request_id: &job.request_id,
        headers: &job.headers,
        tokens: job.tokens,
    };
    match ask_model(runtime, judge, &side, request, "judge").await {
        Err(error) => (Verdict::Failed, Some(error)),
        Ok((reply, _)) => match judged(&reply) {
            // The client's answer was shown first unless swapped.
            Some(Judgement::First) if !job.swap => (Verdict::ModelPreferred, None),
            Some(Judgement::Second) if job.swap => (Verdict::ModelPreferred, None),
            Some(Judgement::First | Judgement::Second) => (Verdict::ShadowPreferred, None),
            Some(Judgement::Tie) => (Verdict::Tie, None),
            None => (
                Verdict::Unjudged,
                Some(format!(
                    "the judge said `{}`",
                    reply.chars().take(40).collect::<String>()
                )),
            ),
        },
    }
}

/// The text of a whole answer's first choice.
pub fn first_text(body: &[u8]) -> Option<String> {
    let value: serde_json::Value = serde_json::from_slice(body).ok()?;
    first_text_of(&value).map(str::to_owned)
}

/// The text of a parsed whole answer's first choice.
pub fn first_text_of(answer: &serde_json::Value) -> Option<&str> {
    answer
        .get("choices")?
        .get(0)?
        .get("message")?
        .get("content")?
        .as_str()
}

#[cfg(test)]
mod tests {
    use super::sampled;

    #[test]
    fn sampling_keeps_about_the_share_and_is_stable_per_id() {
        let ids: Vec<String> = (0..10_000).map(|i| format!("sy-abc-{i}")).collect();
        let share = ids.iter().filter(|id| sampled(id, 0.1)).count();
        assert!((800..1200).contains(&share), "{share}");
        assert!(ids.iter().all(|id| sampled(id, 0.1) == sampled(id, 0.1)));
        assert!(ids.iter().all(|id| sampled(id, 1.0)));
        assert!(!ids.iter().any(|id| sampled(id, 0.0)));
    }
}
