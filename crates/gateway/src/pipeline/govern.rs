//! govern: the policy's constraints narrow the candidates and the pools.

use crate::exchange::{Exchange, Governed};
use crate::runtime::Runtime;
use switchyard_pool::{CannotCompress, PoolSet, compress};
use switchyard_wire::{ApiError, ErrorKind};

/// Applies every constraint that covers the request, in order: each drops the
/// candidates it refuses (`CompiledConstraint::refusal`: tags, pools, cost of the
/// prompt plus `max_tokens` or the expected answer), and the allowed pools narrow, so
/// a candidate also needs a pool every covering constraint allows. The first
/// constraint that leaves nothing is named in the 403, with each candidate's reason.
pub fn govern(runtime: &Runtime, x: &mut Exchange) -> Result<(), ApiError> {
    let policy = &runtime.policy;
    let Some(routed) = &x.routed else {
        return Err(ApiError::new(
            ErrorKind::Unavailable,
            "govern ran before decide",
        ));
    };
    let prompt = x.conversation.prompt_tokens;
    let output = x.billed_output(policy.config.server.expected_output_tokens);
    let mut governed = Governed {
        models: routed.candidates.clone(),
        pools: PoolSet::ALL,
        applied: Vec::new(),
        steered: Vec::new(),
        downgraded_from: None,
        compression: None,
    };
    for c in policy
        .constraints
        .iter()
        .filter(|c| c.covers(routed.index, &x.signals, policy.labels()))
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
            if let Some(refusal) = c.refusal(&policy.config, m, tokens) {
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
            let message = format!(
                "constraint `{}` leaves no way to answer this request on route `{}`: no candidate qualifies: {}",
                c.name,
                routed.name,
                why.join("; ")
            );
            x.governed = Some(governed);
            return Err(ApiError::new(ErrorKind::PolicyDenied, message));
        }
    }
    x.governed = Some(governed);
    steer(runtime, x)
}

/// Makes the request's plugin chain (global plugins, then the route's) and runs its
/// govern hooks: a plugin may ask for the cheapest candidates or a compressed prompt
/// (a budget running low).
fn steer(runtime: &Runtime, x: &mut Exchange) -> Result<(), ApiError> {
    let route_plugins = x.route(runtime).map_or(&[][..], |r| r.plugins.as_slice());
    x.plugins = runtime
        .plugins
        .chain(&runtime.policy.global_plugins, route_plugins, |reads| {
            x.chain_info(runtime, reads)
        });
    if !x.plugins.hooks().govern {
        return Ok(());
    }
    let waits = runtime.state.remote() && x.plugins.keeps_state();
    let mut run = || x.plugins.on_govern();
    let asked = if waits {
        super::off_the_async_workers(run)
    } else {
        run()
    };
    let (all, each) = asked.map_err(|failure| {
        runtime.metrics.plugin_failure();
        ApiError::new(ErrorKind::PluginFailed, failure.to_string())
    })?;
    if let Some(ratio) = all.compress {
        compress_prompt(runtime, x, ratio);
    }
    if all.downgrade {
        downgrade(runtime, x);
    }
    if let Some(governed) = &mut x.governed {
        governed.steered = each;
    }
    Ok(())
}

/// Compresses the prompt toward `ratio` of its tokens (as far as it goes: system
/// messages and the latest turns are kept whole), and plans with what is left.
fn compress_prompt(runtime: &Runtime, x: &mut Exchange, ratio: f64) {
    let before = x.conversation.prompt_tokens;
    let target = ((f64::from(before) * ratio).ceil() as u32).max(1);
    let count = |text: &str| runtime.counter.count(text);
    let mut result = compress(&mut x.request, target, &count);
    if let Err(CannotCompress { reachable, .. }) = &result
        && *reachable < before
    {
        result = compress(&mut x.request, *reachable, &count);
    }
    if let Ok(done) = &result {
        x.conversation.prompt_tokens = x.conversation.prompt_tokens.min(done.tokens);
    }
    if let Some(governed) = &mut x.governed {
        governed.compression = Some(result);
    }
}

/// Leaves only the candidates that cost least for this request, at their prices
/// (those without a price cannot be compared and are dropped when some has one).
fn downgrade(runtime: &Runtime, x: &mut Exchange) {
    let policy = &runtime.policy;
    let prompt = x.conversation.prompt_tokens;
    let output = x.billed_output(policy.config.server.expected_output_tokens);
    let Some(governed) = &mut x.governed else {
        return;
    };
    let cost = |m: usize| Some(policy.config.models.get(m)?.price?.cost(prompt, output));
    let Some(least) = governed
        .models
        .iter()
        .filter_map(|&m| cost(m))
        .min_by(f64::total_cmp)
    else {
        return;
    };
    let before = governed.models.clone();
    governed.models.retain(|&m| cost(m) == Some(least));
    if governed.models.len() < before.len() {
        governed.downgraded_from = Some(before);
    }
}
