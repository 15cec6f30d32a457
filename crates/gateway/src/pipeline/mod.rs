//! The phases from characterize to plugins, one function each, over an [`Exchange`].
//! The chat handler, `POST /v1/route` and `switchyard route` all run [`run`]; a dry
//! run stops before forward.

mod govern;
mod place;
mod plugins;

pub use place::escalate;

use crate::exchange::{DIRECT_ROUTE, Exchange, Routed};
use crate::phase::{Phase, Refusal};
use crate::runtime::Runtime;
use std::time::Instant;
use switchyard_policy::suggest;
use switchyard_wire::{ApiError, Conversation, ErrorKind};
use switchyard_workload::{SignalId, Signals};

/// Runs characterize → decide → govern → select → place → plugins (request side).
/// On a refusal, the exchange records it and the phase it came from.
pub fn run(runtime: &Runtime, x: &mut Exchange) -> Result<(), Refusal> {
    let result = run_phases(runtime, x);
    if let Err(refusal) = &result {
        x.refusal = Some(refusal.clone());
    }
    result
}

fn run_phases(runtime: &Runtime, x: &mut Exchange) -> Result<(), Refusal> {
    let target = target(runtime, &x.conversation.requested_model).map_err(|error| Refusal {
        phase: Phase::Decide,
        error,
    })?;
    timed(runtime, x, Phase::Characterize, |x| {
        characterize_phase(runtime, x, target)
    })?;
    timed(runtime, x, Phase::Decide, |x| decide(runtime, x, target))?;
    timed(runtime, x, Phase::Govern, |x| govern::govern(runtime, x))?;
    timed(runtime, x, Phase::Select, |x| place::select(runtime, x))?;
    timed(runtime, x, Phase::Place, |x| place::place(runtime, x))?;
    timed(runtime, x, Phase::Plugins, |x| {
        plugins::request_side(runtime, x)
    })?;
    x.overhead = x.started.elapsed();
    Ok(())
}

/// Runs one phase, records its time (trace and `switchyard_phase_seconds`), and names
/// it in a refusal.
fn timed(
    runtime: &Runtime,
    x: &mut Exchange,
    phase: Phase,
    work: impl FnOnce(&mut Exchange) -> Result<(), ApiError>,
) -> Result<(), Refusal> {
    let start = Instant::now();
    let result = work(x);
    let spent = start.elapsed();
    x.timings.record(phase, spent);
    runtime.metrics.phase(phase, spent);
    result.map_err(|error| Refusal { phase, error })
}

/// The longest requested model name that is searched for a near match and echoed whole.
const MAX_SUGGESTED_NAME: usize = 256;

/// What the client asked for: a configured model, or a route by policy.
#[derive(Debug, Clone, Copy)]
enum Target {
    Direct(usize),
    /// Routed by the policy of this scope (0: `server.route_aliases`; else a recipe).
    Routed(usize),
}

fn target(runtime: &Runtime, requested: &str) -> Result<Target, ApiError> {
    let policy = &runtime.policy;
    if let Some(model) = policy.model_index(requested) {
        return Ok(Target::Direct(model));
    }
    if let Some(scope) = policy.scope_of(requested) {
        return Ok(Target::Routed(scope));
    }
    let names = policy
        .config
        .models
        .iter()
        .map(|m| m.name.value.as_str())
        .chain(
            policy
                .scopes()
                .iter()
                .flat_map(|s| s.aliases.iter().map(String::as_str)),
        );
    // A name far longer than any configured one is not a typo: no nearest-name search
    // (quadratic in the lengths), and only its start is echoed.
    let plausible = requested.len() <= MAX_SUGGESTED_NAME;
    let hint = plausible
        .then(|| suggest(requested, names))
        .flatten()
        .map(|s| format!("; did you mean `{s}`?"))
        .unwrap_or_else(|| "; GET /v1/models lists the models".to_owned());
    let shown: String = if plausible {
        requested.to_owned()
    } else {
        let start: String = requested.chars().take(64).collect();
        format!("{start}… ({} bytes)", requested.len())
    };
    Err(ApiError::new(
        ErrorKind::ModelNotFound,
        format!("model `{shown}` is not configured{hint}"),
    )
    .with_param("model"))
}

/// characterize: the signals the routes read (routed requests), or only those of the
/// constraints that cover client-named models.
fn characterize_phase(runtime: &Runtime, x: &mut Exchange, target: Target) -> Result<(), ApiError> {
    let policy = &runtime.policy;
    let needed = match target {
        Target::Direct(_) => policy.direct_signals(),
        Target::Routed(scope) => policy.needed_in(scope),
    };
    if needed.is_empty() {
        return Ok(());
    }
    x.signals = characterize(runtime, &x.conversation, needed);
    for (id, value) in x.signals.iter() {
        runtime.metrics.signal(id, value);
    }
    if let Some(wait) = &x.signals.embedding {
        runtime.metrics.embedding_wait(wait.wait_ns);
    }
    if let Some((id, error)) = x.signals.failure() {
        return Err(ApiError::new(
            ErrorKind::Unavailable,
            format!(
                "signal {} failed ({error}) and its on_error rule is `fail`",
                policy.signals.label(id)
            ),
        ));
    }
    Ok(())
}

/// decide: the route (or the named model as the only candidate).
fn decide(runtime: &Runtime, x: &mut Exchange, target: Target) -> Result<(), ApiError> {
    let policy = &runtime.policy;
    x.routed = Some(match target {
        Target::Direct(model) => Routed {
            name: DIRECT_ROUTE.to_owned(),
            index: None,
            matched: false,
            confidence: None,
            candidates: vec![model],
        },
        Target::Routed(scope) => {
            let decision = policy.decide_in(scope, &x.signals).ok_or_else(|| {
                ApiError::new(
                    ErrorKind::NoRoute,
                    "no route matches this request and no default_route is configured",
                )
            })?;
            let route = policy.route(decision.route).ok_or_else(|| {
                ApiError::new(ErrorKind::Unavailable, "the decided route is missing")
            })?;
            Routed {
                name: route.name.clone(),
                index: Some(decision.route),
                matched: decision.matched,
                confidence: Some(decision.confidence),
                candidates: route.candidates.clone(),
            }
        }
    });
    Ok(())
}

/// Computes `needed` signals for a conversation. Model inference takes milliseconds,
/// and shared state on a server waits on the network: when either is needed, the
/// runtime may move this worker's other tasks elsewhere.
fn characterize(runtime: &Runtime, conversation: &Conversation, needed: &[SignalId]) -> Signals {
    let signals = &runtime.policy.signals;
    if signals.needs_embedding(needed) || (runtime.state.remote() && signals.reads_state(needed)) {
        off_the_async_workers(|| signals.characterize(conversation, needed))
    } else {
        signals.characterize(conversation, needed)
    }
}

/// Runs CPU-heavy work without stalling the async workers: on a multi-threaded runtime
/// the current worker hands its queued tasks to others first; elsewhere (a benchmark,
/// a current-thread runtime) it simply runs.
pub(crate) fn off_the_async_workers<T>(work: impl FnOnce() -> T) -> T {
    match tokio::runtime::Handle::try_current() {
        Ok(handle) if handle.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread => {
            tokio::task::block_in_place(work)
        }
        _ => work(),
    }
}
