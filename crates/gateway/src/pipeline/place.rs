//! select (a model among the governed candidates) and place (a pool and endpoint,
//! compression included).

use crate::exchange::StickyNote;
use crate::exchange::{Exchange, Placed, Selected};
use crate::runtime::Runtime;
use switchyard_policy::{AlgorithmConfig, LearnedConfig, OutcomeBucket, StickyConfig};
use switchyard_pool::{PlaceError, PlaceRequest, Prediction, compress, retention};
use switchyard_router::outcomes::ELO_ROUTE;
use switchyard_router::selection::ladder;
use switchyard_router::sticky::{Side, weigh};
use switchyard_router::{ArmStats, Candidate, SelectRequest, algorithm};
use switchyard_wire::{ApiError, ErrorKind};

/// Context the request needs at least: its prompt plus the answer it asks for (one
/// token when it states no cap).
fn minimum(x: &Exchange) -> u32 {
    let c = &x.conversation;
    c.prompt_tokens
        .saturating_add(c.output_cap.unwrap_or(1).max(1))
}

/// select: the route's algorithm picks among what govern left.
pub fn select(runtime: &Runtime, x: &mut Exchange) -> Result<(), ApiError> {
    let policy = &runtime.policy;
    let (Some(routed), Some(governed)) = (&x.routed, &x.governed) else {
        return Err(ApiError::new(
            ErrorKind::Unavailable,
            "select ran before govern",
        ));
    };
    let prompt = x.conversation.prompt_tokens;
    let minimum = minimum(x);
    let output_tokens = x.billed_output(policy.config.server.expected_output_tokens);
    let listed: Vec<Candidate<'_>> = governed
        .models
        .iter()
        .map(|&model| {
            let config = policy.config.models.get(model);
            Candidate {
                model,
                name: config.map_or("", |m| m.name.value.as_str()),
                max_context: runtime.pools.max_context(model),
                price: config.and_then(|m| m.price),
                quality: config.and_then(|m| m.quality),
                load: runtime.pools.model_load(model),
                latency: runtime.latency.get(model),
                outcomes: ArmStats::default(),
                predicted: None,
                ttft_ms: None,
            }
        })
        .collect();
    const STATIC: AlgorithmConfig = AlgorithmConfig::Static;
    let configured = routed
        .index
        .and_then(|i| policy.route(i))
        .map_or(&STATIC, |r| &r.algorithm);
    let route = &routed.name;
    let mut listed = listed;
    if let AlgorithmConfig::Learned(learned) = configured {
        predict(runtime, x, learned, &mut listed);
    }
    if let AlgorithmConfig::Cascade(_) = configured {
        for c in &mut listed {
            c.ttft_ms = runtime.pools.predicted_ttft_ms(c.model, prompt);
        }
    }
    let names: Vec<&str> = listed.iter().map(|c| c.name).collect();
    let scope = arm_scope(configured, route, x);
    if let Some((arms_of, bucket)) = &scope {
        let arms = runtime.outcomes.arms(arms_of, &names, bucket.as_deref());
        for (c, arm) in listed.iter_mut().zip(arms) {
            c.outcomes = arm;
        }
    }
    // Candidates under a reputation alarm in this domain are passed over while another
    // can take the request (no lock is taken while no model is under an alarm).
    let domain = x.signals.domain.as_ref().map(|d| d.label.as_str());
    let mut demoted = Vec::new();
    if let Some(alarmed) = runtime.outcomes.alarmed(&names, domain)
        && alarmed.iter().any(|a| *a)
        && listed
            .iter()
            .zip(&alarmed)
            .any(|(c, a)| !a && c.fits(minimum))
    {
        let mut keep = alarmed.iter().map(|a| !a);
        listed.retain(|c| {
            let kept = keep.next().unwrap_or(true);
            if !kept {
                demoted.push(c.name.to_owned());
            }
            kept
        });
    }
    let request = SelectRequest {
        tokens: minimum,
        prompt_tokens: prompt,
        output_tokens,
        // The conversation's start (at most 4 KiB), shared with affinity placement.
        hash: x.prefix().unwrap_or(0),
        draw: if scope.is_some() {
            runtime.outcomes.draw()
        } else {
            0
        },
    };
    let selected = algorithm(configured).select(&listed, &request).ok_or_else(|| {
        let largest = listed.iter().map(|c| c.max_context).max().unwrap_or(0);
        if largest >= minimum {
            return ApiError::new(
                ErrorKind::Unavailable,
                format!(
                    "no candidate of route `{route}` passes its `{}` selection (ceilings or zero weights)",
                    configured.name()
                ),
            );
        }
        ApiError::new(
            ErrorKind::InvalidRequest,
            format!(
                "the request needs about {minimum} tokens ({prompt} prompt) but the largest \
                 context window for route `{route}` is {largest}"
            ),
        )
        .with_param("messages")
    })?;
    let mut selected = selected;
    let session = sticky_session(runtime, x, configured);
    let sticky = session.and_then(|(key, config)| {
        let now = switchyard_pool::wall_ms();
        let incumbent = runtime.session_models.get(key, now)?;
        stick(
            runtime,
            x,
            config,
            &listed,
            &request,
            &incumbent,
            &mut selected,
        )
    });
    let model = listed[selected.candidate].model;
    // A cascade escalates along the steps after the one chosen (none when it went
    // straight to the last).
    let escalate_to = match configured {
        AlgorithmConfig::Cascade(_) => {
            let steps = ladder(&listed, &request);
            let at = steps.iter().position(|&i| i == selected.candidate);
            at.map(|at| steps[at + 1..].iter().map(|&i| listed[i].model).collect())
                .unwrap_or_default()
        }
        _ => Vec::new(),
    };
    x.selected = Some(Selected {
        model,
        algorithm: configured.name(),
        reason: selected.reason,
        bucket: scope.and_then(|(_, bucket)| bucket),
        demoted,
        escalate_to,
        session: session.map(|(key, _)| key),
        sticky,
    });
    Ok(())
}

/// Prefill rate assumed for a model whose pools have neither a learned TTFT line nor
/// a GPU profile, in prompt tokens per second.
const DEFAULT_PREFILL_PER_S: f64 = 10_000.0;

/// The session key a sticky route remembers the request under (the session, else the
/// conversation's start, with the caller) and the route's `sticky`; `None` when the
/// route is not sticky, is a cascade, or the request has no session.
fn sticky_session(
    runtime: &Runtime,
    x: &Exchange,
    configured: &AlgorithmConfig,
) -> Option<(u64, StickyConfig)> {
    if matches!(configured, AlgorithmConfig::Cascade(_)) {
        return None;
    }
    let config = x.route(runtime)?.sticky?;
    let session = retention::session_key(&x.conversation)?;
    let key = switchyard_wire::hash::mix64(session ^ x.caller.unwrap_or(0).rotate_left(17));
    Some((key, config))
}

/// Keeps the session on `incumbent` (when it is a candidate that fits and the route's
/// choice differs) unless switching gains more than it costs; rewrites `selected`
/// accordingly and says what was weighed.
fn stick(
    runtime: &Runtime,
    x: &Exchange,
    config: StickyConfig,
    listed: &[Candidate<'_>],
    request: &SelectRequest,
    incumbent: &str,
    selected: &mut switchyard_router::Selected,
) -> Option<StickyNote> {
    let chosen = &listed[selected.candidate];
    if chosen.name == incumbent {
        return None;
    }
    let (at, held) = listed
        .iter()
        .enumerate()
        .find(|(_, c)| c.name == incumbent && c.fits(request.tokens))?;
    let prompt = x.conversation.prompt_tokens;
    // What the incumbent's prefix cache holds: the prompt before the last user turn.
    let last = runtime.counter.count(x.conversation.last_user_text());
    let recomputed = prompt.saturating_sub(last);
    let side = |c: &Candidate<'_>| Side {
        quality: c
            .outcomes
            .mean()
            .filter(|_| c.outcomes.outcomes > 0)
            .or(c.quality),
        cost: c.price.map(|_| c.cost(request)),
        ttft_ms: runtime.pools.predicted_ttft_ms(c.model, prompt),
    };
    let rate = runtime
        .pools
        .prefill_tokens_per_s(chosen.model)
        .unwrap_or(DEFAULT_PREFILL_PER_S);
    let weighed = weigh(&config, side(held), side(chosen), recomputed, rate);
    let note = StickyNote {
        incumbent: incumbent.to_owned(),
        choice: chosen.name.to_owned(),
        kept: !weighed.switch,
        recomputed_tokens: recomputed,
        cost_ms: weighed.cost_ms,
        gain_ms: weighed.gain_ms,
    };
    if !weighed.switch {
        selected.reason = format!(
            "sticky: kept the session's {incumbent} over {} ({}): switching would \
             prefill {recomputed} tokens again (≈{:.0} ms) for a gain of {:.0} ms",
            chosen.name, selected.reason, weighed.cost_ms, weighed.gain_ms
        );
        selected.candidate = at;
    }
    Some(note)
}

/// Moves a cascade on to its next step: that model is chosen and placed, and the
/// upstream request shaped for it (the plugins' request hooks do not run again).
/// On an error nothing changes.
pub fn escalate(runtime: &Runtime, x: &mut Exchange) -> Result<(), ApiError> {
    let Some(selected) = x.selected.as_mut() else {
        return Err(ApiError::new(
            ErrorKind::Unavailable,
            "nothing was selected",
        ));
    };
    if selected.escalate_to.is_empty() {
        return Err(ApiError::new(ErrorKind::Unavailable, "no step is left"));
    }
    let previous = selected.model;
    let next = selected.escalate_to.remove(0);
    selected.model = next;
    let placed = x.placed.clone();
    if let Err(error) = place(runtime, x) {
        if let Some(selected) = x.selected.as_mut() {
            selected.escalate_to.insert(0, next);
            selected.model = previous;
        }
        x.placed = placed;
        return Err(error);
    }
    crate::shape::for_candidate(runtime, x);
    crate::shape::gateway_fields(runtime, x);
    Ok(())
}

/// How long select waits for the request's embedding when no signal computed it.
const EMBEDDING_WAIT: std::time::Duration = std::time::Duration::from_secs(2);

/// Fills the predictions of a learned router for the candidates playing its strong
/// and weak models (none when the request has no embedding).
fn predict(runtime: &Runtime, x: &Exchange, learned: &LearnedConfig, listed: &mut [Candidate<'_>]) {
    let Some(file) = &learned.file else {
        return;
    };
    let Some(vector) = x.embedding(runtime, EMBEDDING_WAIT) else {
        return;
    };
    let text = x.conversation.last_user_text();
    let Ok(scores) = file.predict(&vector, text) else {
        return;
    };
    let score = |name: &str| {
        file.models
            .iter()
            .position(|m| m == name)
            .and_then(|i| scores.get(i).copied())
    };
    for c in listed.iter_mut() {
        if c.name == learned.strong {
            c.predicted = score(&file.strong);
        } else if c.name == learned.weak {
            c.predicted = score(&file.weak);
        }
    }
}

/// Where an algorithm that learns reads its arms: the route they are kept under
/// (Elo ratings are the models', under [`ELO_ROUTE`]) and the bucket (`thompson`'s
/// domain label); `None` for algorithms that do not learn.
fn arm_scope<'a>(
    algorithm: &AlgorithmConfig,
    route: &'a str,
    x: &Exchange,
) -> Option<(&'a str, Option<String>)> {
    match algorithm {
        AlgorithmConfig::Thompson(t) => Some((
            route,
            match t.bucket {
                OutcomeBucket::Domain => x.signals.domain.as_ref().map(|d| d.label.clone()),
                OutcomeBucket::None => None,
            },
        )),
        AlgorithmConfig::Elo(_) => Some((ELO_ROUTE, None)),
        _ => None,
    }
}

/// place: the pool and endpoint, with room for the predicted answer when there is
/// some. A route that allows compression may squeeze a request into a smaller pool
/// (window B, factor γ) when it needs between B and γ·B tokens; when compression falls
/// short, the request stays whole and is placed again without it.
pub fn place(runtime: &Runtime, x: &mut Exchange) -> Result<(), ApiError> {
    let policy = &runtime.policy;
    let (Some(routed), Some(governed), Some(selected)) = (&x.routed, &x.governed, &x.selected)
    else {
        return Err(ApiError::new(
            ErrorKind::Unavailable,
            "place ran before select",
        ));
    };
    let model = selected.model;
    let conversation = &x.conversation;
    let prompt = conversation.prompt_tokens;
    let minimum = minimum(x);
    let output = match conversation.output_cap {
        Some(cap) => Prediction {
            tokens: cap,
            basis: "max_tokens",
            samples: 0,
        },
        None => runtime.predictor.predict((routed.index, model), prompt),
    };
    let preferred = prompt.saturating_add(output.tokens).max(minimum);
    let session_key = retention::session_key(conversation);
    let gap = session_key
        .filter(|_| policy.config.retention.enabled)
        .and_then(|k| {
            if runtime.sessions.remote() {
                super::off_the_async_workers(|| runtime.sessions.gap_ms(k))
            } else {
                runtime.sessions.gap_ms(k)
            }
        });
    let retention = retention::hint(conversation, gap, &policy.config.retention);
    let request = PlaceRequest {
        tokens: preferred,
        prompt_tokens: prompt,
        session: conversation.session_hash(),
        prefix: x.prefix(),
        allowed: governed.pools,
    };
    let allows = routed
        .index
        .and_then(|i| policy.route(i))
        .is_some_and(|r| r.compress);
    let compress_to = allows
        .then(|| runtime.pools.compression_target(model, preferred))
        .flatten()
        .map(|(_, window)| {
            let room = preferred - prompt;
            window.saturating_sub(room).saturating_mul(15) / 16
        })
        .filter(|target| *target > 0);
    let first_try = match compress_to {
        Some(target) => PlaceRequest {
            tokens: target + (preferred - prompt),
            prompt_tokens: target,
            ..request
        },
        None => request,
    };
    let placement = runtime
        .pools
        .place_avoiding(model, &first_try, &[])
        .or_else(|_| runtime.pools.place_avoiding(model, &request, &[]))
        .or_else(|_| {
            let tight = PlaceRequest {
                tokens: minimum,
                ..request
            };
            runtime.pools.place_avoiding(model, &tight, &[])
        })
        .map_err(|e| place_error(runtime, model, e))?;
    let mut placed = Placed {
        placement,
        output,
        session_key,
        retention,
        compress_to,
        compression: None,
        uncompressed: request,
    };
    if let Some(target) = compress_to {
        let result = compress(&mut x.request, target, &|text| runtime.counter.count(text));
        if result.is_err() {
            placed.placement = runtime
                .pools
                .place_avoiding(model, &placed.uncompressed, &[])
                .map_err(|e| place_error(runtime, model, e))?;
        }
        placed.compression = Some(result);
    }
    x.placed = Some(placed);
    Ok(())
}

fn place_error(runtime: &Runtime, model: usize, e: PlaceError) -> ApiError {
    let name = runtime
        .policy
        .config
        .models
        .get(model)
        .map_or("", |m| m.name.value.as_str());
    match e {
        PlaceError::NoPool => ApiError::new(
            ErrorKind::Unavailable,
            format!("model `{name}` has no pool"),
        ),
        PlaceError::Unavailable { .. } => ApiError::new(
            ErrorKind::Unavailable,
            format!(
                "every endpoint that can serve `{name}` is out of rotation after failures; \
                 GET /v1/pools shows when they return"
            ),
        ),
        PlaceError::TooLong { .. } => {
            ApiError::new(ErrorKind::InvalidRequest, e.to_string()).with_param("messages")
        }
    }
}
