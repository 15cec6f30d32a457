//! Phases characterize → decide → select → place, ending in a [`Plan`].

use crate::runtime::Runtime;
use serde_json::{Value, json};
use switchyard_policy::AlgorithmConfig;
use switchyard_policy::suggest;
use switchyard_pool::retention;
use switchyard_pool::{
    CannotCompress, Compression, PlaceError, PlaceRequest, Placement, PoolSet, Prediction,
    RetentionHint, compress,
};
use switchyard_router::{Candidate, SelectRequest, algorithm};
use switchyard_wire::{ApiError, ChatRequest, Conversation, ErrorKind};
use switchyard_workload::{SignalId, Signals};

/// Route name reported when the client named a model.
pub const DIRECT_ROUTE: &str = "direct";

/// Everything decided for a request before it is forwarded.
#[derive(Debug, Clone)]
pub struct Plan {
    /// The route taken ([`DIRECT_ROUTE`] when the client named a model).
    pub route: String,
    /// Index of the route in [`switchyard_policy::Policy::routes`] (`None` when direct).
    pub route_index: Option<usize>,
    /// Whether the route's condition matched (false for the default route and direct).
    pub route_matched: bool,
    /// How sure the decision was (`None` when direct): see `Expr::confidence`.
    pub route_confidence: Option<f64>,
    /// The constraints that covered the request.
    pub constraints: Vec<String>,
    /// The chosen model, as an index into the configuration's models.
    pub model: usize,
    /// Why that model.
    pub selection_reason: String,
    /// Where it runs.
    pub placement: Placement,
    /// The signals computed for the decision.
    pub signals: Signals,
    /// The answer length placement planned for.
    pub output: Prediction,
    /// The key the request's session is tracked under.
    pub session_key: Option<u64>,
    /// The KV-cache retention hint sent upstream, for mid-session requests.
    pub retention: Option<RetentionHint>,
    /// Placement keys without compression (the fallback when compression falls short).
    pub uncompressed: PlaceRequest,
    /// Compression planned: the prompt must come down to this many tokens.
    pub compress_to: Option<u32>,
    /// What compression did, once it ran.
    pub compression: Option<Result<Compression, CannotCompress>>,
}

impl Plan {
    /// The chosen model's name.
    pub fn model_name<'a>(&self, runtime: &'a Runtime) -> &'a str {
        runtime
            .policy
            .config
            .models
            .get(self.model)
            .map_or("", |m| m.name.value.as_str())
    }

    /// The pool's name.
    pub fn pool_name<'a>(&self, runtime: &'a Runtime) -> &'a str {
        runtime
            .pools
            .all()
            .get(self.placement.pool)
            .map_or("", |p| p.name.as_str())
    }
}

/// Runs the phases up to placement.
pub fn plan(runtime: &Runtime, conversation: &Conversation) -> Result<Plan, ApiError> {
    let policy = &runtime.policy;
    let requested = conversation.requested_model.as_str();
    let prompt = conversation.prompt_tokens;
    // Placement prefers room for the expected answer; a request that states no cap may
    // still run where only its prompt (plus one token) fits.
    let minimum = prompt.saturating_add(conversation.output_cap.unwrap_or(1).max(1));

    let (route, route_index, (route_matched, route_confidence), candidates, signals) = if let Some(
        model,
    ) =
        policy.model_index(requested)
    {
        // Only the signals of constraints that cover client-named models.
        let needed = policy.direct_signals();
        let signals = if needed.is_empty() {
            Signals::default()
        } else {
            characterize(runtime, conversation, needed)
        };
        (
            DIRECT_ROUTE.to_owned(),
            None,
            (false, None),
            vec![model],
            signals,
        )
    } else if policy.is_route_alias(requested) {
        let signals = characterize(runtime, conversation, policy.needed_signals());
        for (id, value) in signals.iter() {
            let label = policy.signals.label(id);
            metrics::histogram!("switchyard_signal_seconds", "signal" => label.to_owned())
                .record(value.cost_ns as f64 / 1e9);
            if value.error.is_some() {
                metrics::counter!("switchyard_signal_errors_total", "signal" => label.to_owned())
                    .increment(1);
            }
        }
        if let Some((id, error)) = signals.failure() {
            return Err(ApiError::new(
                ErrorKind::Unavailable,
                format!(
                    "signal {} failed ({error}) and its on_error rule is `fail`",
                    policy.signals.label(id)
                ),
            ));
        }
        let decision = policy.decide(&signals).ok_or_else(|| {
            ApiError::new(
                ErrorKind::NoRoute,
                "no route matches this request and no default_route is configured",
            )
        })?;
        let route = policy
            .route(decision.route)
            .ok_or_else(|| ApiError::new(ErrorKind::Unavailable, "the decided route is missing"))?;
        (
            route.name.clone(),
            Some(decision.route),
            (decision.matched, Some(decision.confidence)),
            route.candidates.clone(),
            signals,
        )
    } else {
        let names = policy
            .config
            .models
            .iter()
            .map(|m| m.name.value.as_str())
            .chain(
                policy
                    .config
                    .server
                    .route_aliases
                    .iter()
                    .map(String::as_str),
            );
        let hint = suggest(requested, names)
            .map(|s| format!("; did you mean `{s}`?"))
            .unwrap_or_else(|| "; GET /v1/models lists the models".to_owned());
        return Err(ApiError::new(
            ErrorKind::ModelNotFound,
            format!("model `{requested}` is not configured{hint}"),
        )
        .with_param("model"));
    };

    let output_tokens = conversation
        .output_cap
        .unwrap_or(policy.config.server.expected_output_tokens);
    let governed = governed_candidates(runtime, route_index, &signals, &candidates, (prompt, output_tokens))
        .map_err(|(constraint, why)| {
            ApiError::new(
                ErrorKind::PolicyDenied,
                format!(
                    "constraint `{constraint}` leaves no way to answer this request on route `{route}`: no candidate qualifies: {why}"
                ),
            )
        })?;
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
            }
        })
        .collect();
    const STATIC: AlgorithmConfig = AlgorithmConfig::Static;
    let configured = route_index
        .and_then(|i| policy.route(i))
        .map_or(&STATIC, |r| &r.algorithm);
    let prefix = conversation.prefix_fingerprint();
    let select = SelectRequest {
        tokens: minimum,
        prompt_tokens: prompt,
        output_tokens,
        // The conversation's start (at most 4 KiB), shared with affinity placement.
        hash: prefix.unwrap_or(0),
    };
    let selected = algorithm(configured).select(&listed, &select).ok_or_else(|| {
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
    let model = listed[selected.candidate].model;
    let output = match conversation.output_cap {
        Some(cap) => Prediction {
            tokens: cap,
            basis: "max_tokens",
            samples: 0,
        },
        None => runtime.predictor.predict((route_index, model), prompt),
    };
    let preferred = prompt.saturating_add(output.tokens).max(minimum);
    let session_key = retention::session_key(conversation);
    let gap = session_key.and_then(|k| runtime.sessions.gap_ms(k));
    let retention = retention::hint(conversation, gap, &policy.config.retention);
    let request = PlaceRequest {
        tokens: preferred,
        prompt_tokens: prompt,
        session: conversation.session_hash(),
        prefix,
        allowed: governed.pools,
    };
    // A route that allows compression may squeeze a request into a smaller pool (window
    // B, factor γ) when it needs between B and γ·B tokens.
    let allows = route_index
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
        .map_err(|e| match e {
            PlaceError::NoPool => ApiError::new(ErrorKind::Unavailable, "the model has no pool"),
            PlaceError::Unavailable { .. } => ApiError::new(
                ErrorKind::Unavailable,
                format!(
                    "every endpoint that can serve `{}` is out of rotation after failures; \
                     GET /v1/pools shows when they return",
                    policy
                        .config
                        .models
                        .get(model)
                        .map_or("", |m| m.name.value.as_str())
                ),
            ),
            PlaceError::TooLong { .. } => {
                ApiError::new(ErrorKind::InvalidRequest, e.to_string()).with_param("messages")
            }
        })?;
    Ok(Plan {
        route,
        route_index,
        route_matched,
        route_confidence,
        constraints: governed.applied,
        model,
        selection_reason: selected.reason,
        placement,
        signals,
        output,
        session_key,
        retention,
        uncompressed: request,
        compress_to,
        compression: None,
    })
}

/// What the policy's constraints leave of a request's candidates.
struct Governed {
    /// Candidate models allowed, in the route's order.
    models: Vec<usize>,
    /// Pools allowed.
    pools: PoolSet,
    /// The constraints that covered the request.
    applied: Vec<String>,
}

/// Applies every constraint that covers the request, in order: each drops the
/// candidates it refuses (`CompiledConstraint::refusal`: tags, pools, cost of the
/// prompt plus `max_tokens` or the expected answer), and the allowed pools narrow, so
/// a candidate also needs a pool every covering constraint allows. The first
/// constraint that leaves nothing is named in the error, with each candidate's reason.
fn governed_candidates(
    runtime: &Runtime,
    route: Option<usize>,
    signals: &Signals,
    candidates: &[usize],
    (prompt, output): (u32, u32),
) -> Result<Governed, (String, String)> {
    let policy = &runtime.policy;
    let mut governed = Governed {
        models: candidates.to_vec(),
        pools: PoolSet::ALL,
        applied: Vec::new(),
    };
    for c in policy
        .constraints
        .iter()
        .filter(|c| c.covers(route, signals, policy.labels()))
    {
        governed.applied.push(c.name.clone());
        if let Some(ok) = &c.pools {
            let mut set = PoolSet::NONE;
            ok.iter().for_each(|&p| set.insert(p));
            governed.pools = governed.pools.intersect(set);
        }
        let pools = governed.pools;
        let tokens = (prompt, output);
        let mut why = Vec::new();
        governed.models.retain(|&m| {
            let refusal = c.refusal(&policy.config, m, tokens);
            if let Some(refusal) = refusal {
                why.push(c.explain(&policy.config, m, refusal, tokens));
                return false;
            }
            // Several pool constraints: a pool must satisfy them all.
            let placed = runtime
                .pools
                .pool_indexes(m)
                .iter()
                .any(|&p| pools.contains(p));
            if !placed {
                let name = policy
                    .config
                    .models
                    .get(m)
                    .map_or("?", |x| x.name.value.as_str());
                why.push(format!(
                    "`{name}` has no pool allowed by every constraint that covers the request"
                ));
            }
            placed
        });
        if governed.models.is_empty() {
            return Err((c.name.clone(), why.join("; ")));
        }
    }
    Ok(governed)
}

/// Compresses the request when the plan calls for it. When compression falls short,
/// the request stays whole and is placed again without it.
pub fn compress_phase(
    runtime: &Runtime,
    request: &mut ChatRequest,
    plan: &mut Plan,
) -> Result<(), ApiError> {
    let Some(target) = plan.compress_to else {
        return Ok(());
    };
    let result = compress(request, target, &|text| runtime.counter.count(text));
    if result.is_err() {
        plan.placement = runtime
            .pools
            .place_avoiding(plan.model, &plan.uncompressed, &[])
            .map_err(|e| ApiError::new(ErrorKind::Unavailable, e.to_string()))?;
    }
    plan.compression = Some(result);
    Ok(())
}

/// The explain trace of a plan, as returned by `POST /v1/route` and `switchyard route`.
pub fn trace(
    runtime: &Runtime,
    conversation: &Conversation,
    plan: &Plan,
    overhead_us: u64,
) -> Value {
    let policy = &runtime.policy;
    let signals: Vec<Value> = plan
        .signals
        .iter()
        .map(|(id, v)| {
            json!({
                "signal": policy.signals.key(id).map(ToString::to_string),
                "matched": v.matched,
                "value": v.value,
                "confidence": v.confidence,
                "evidence": v.evidence,
                "error": v.error,
                "cost_us": v.cost_ns as f64 / 1000.0,
            })
        })
        .collect();
    let routes = if plan.route_index.is_some() {
        serde_json::to_value(policy.explain(&plan.signals)).unwrap_or(Value::Null)
    } else {
        Value::Array(Vec::new())
    };
    let route = plan.route_index.and_then(|i| policy.route(i));
    let candidates: Vec<&str> = route.map_or_else(
        || vec![plan.model_name(runtime)],
        |r| {
            r.candidates
                .iter()
                .filter_map(|&m| policy.config.models.get(m))
                .map(|m| m.name.value.as_str())
                .collect()
        },
    );
    let pool = runtime.pools.all().get(plan.placement.pool);
    json!({
        "requested_model": conversation.requested_model,
        "conversation": {
            "turns": conversation.turns.len(),
            "prompt_tokens": conversation.prompt_tokens,
            "tokens_counted_by": if runtime.counter.is_exact() { "tokenizer" } else { "estimate" },
            "tools_defined": conversation.tools_defined,
            "stream": conversation.stream,
            "output_cap": conversation.output_cap,
            "session_id": conversation.session_id,
        },
        "characterize": {"signals": signals},
        "decide": {
            "route": plan.route,
            "matched": plan.route_matched,
            "confidence": plan.route_confidence,
            "constraints": plan.constraints,
            "priority": route.map(|r| r.priority),
            "condition": route.map(|r| r.condition.clone()),
            "routes": routes,
        },
        "select": {
            "algorithm": route.map_or("static", |r| r.algorithm.name()),
            "candidates": candidates,
            "model": plan.model_name(runtime),
            "reason": plan.selection_reason,
        },
        "place": {
            "pool": pool.map(|p| p.name.as_str()),
            "gpu": pool.and_then(|p| p.gpu).map(|g| g.name()),
            "context_window": plan.placement.context_window,
            "tokens_needed": plan.placement.request.tokens,
            "output_tokens": plan.output,
            "retention": plan.retention,
            "compression": plan.compress_to.map(|target| json!({
                "target_prompt_tokens": target,
                "result": match &plan.compression {
                    Some(Ok(c)) => json!(c),
                    Some(Err(e)) => json!({"failed": e.to_string()}),
                    None => Value::Null,
                },
            })),
            "strategy": plan.placement.strategy,
            "endpoint": plan.placement.endpoint.name,
            "endpoint_in_flight": plan.placement.in_flight,
        },
        "overhead_us": overhead_us,
    })
}

/// Runs CPU-heavy work without stalling the async workers: on a multi-threaded runtime
/// the current worker hands its queued tasks to others first; elsewhere (a benchmark,
/// a current-thread runtime) it simply runs.
/// Computes `needed` signals for a conversation. Model inference takes milliseconds:
/// when it is needed, the runtime may move this worker's other tasks elsewhere.
fn characterize(runtime: &Runtime, conversation: &Conversation, needed: &[SignalId]) -> Signals {
    let signals = &runtime.policy.signals;
    if signals.needs_embedding(needed) {
        off_the_async_workers(|| signals.characterize(conversation, needed))
    } else {
        signals.characterize(conversation, needed)
    }
}

fn off_the_async_workers<T>(work: impl FnOnce() -> T) -> T {
    match tokio::runtime::Handle::try_current() {
        Ok(handle) if handle.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread => {
            tokio::task::block_in_place(work)
        }
        _ => work(),
    }
}
