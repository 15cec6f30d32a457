//! govern: the policy's constraints narrow the candidates and the pools.

use crate::exchange::{Exchange, Governed};
use crate::runtime::Runtime;
use switchyard_pool::PoolSet;
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
    Ok(())
}
