//! The place phase: pool by context window, endpoint by load.

use crate::endpoint::{Endpoint, Pools};
#[cfg(test)]
use crate::health::HealthPolicy;
use crate::strategy::PlaceRequest;
use serde::Serialize;
use std::sync::Arc;

/// Where a request will run.
#[derive(Debug, Clone)]
pub struct Placement {
    /// Index of the pool in [`Pools::all`].
    pub pool: usize,
    /// The endpoint.
    pub endpoint: Arc<Endpoint>,
    /// The pool's context window.
    pub context_window: u32,
    /// Requests in flight on the endpoint when it was chosen.
    pub in_flight: usize,
    /// The keys it was placed by.
    pub request: PlaceRequest,
    /// The pool's endpoint strategy.
    pub strategy: &'static str,
    /// The pool was in panic (too few endpoints in rotation): every endpoint of it was
    /// a candidate, ejected ones included.
    pub panic: bool,
}

/// No pool can take the request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, thiserror::Error)]
pub enum PlaceError {
    /// The model has no pool (a configuration that passed the checks never has this).
    #[error("model has no pool")]
    NoPool,
    /// Every pool of the model is too small.
    #[error("the request needs about {tokens} tokens but the largest pool holds {largest}")]
    TooLong {
        /// Tokens needed.
        tokens: u32,
        /// The largest context window available.
        largest: u32,
    },
    /// Pools are large enough, but every endpoint in them is ejected or already tried.
    #[error("no endpoint is in rotation ({tried} tried for this request; the others are ejected)")]
    Unavailable {
        /// Endpoints already tried for this request.
        tried: usize,
    },
}

impl Pools {
    /// Places a request for `model` that needs `tokens` tokens, with no affinity keys.
    pub fn place(&self, model: usize, tokens: u32) -> Result<Placement, PlaceError> {
        let request = PlaceRequest {
            tokens,
            ..PlaceRequest::default()
        };
        self.place_avoiding(model, &request, &[])
    }

    /// Places a request: the pool with the smallest context window that holds it and
    /// has an endpoint in rotation not in `avoid` (those already tried for this
    /// request), then one of that pool's candidates by the pool's strategy. A larger
    /// pool of the model is the failover for a smaller one whose endpoints are all out.
    pub fn place_avoiding(
        &self,
        model: usize,
        request: &PlaceRequest,
        avoid: &[usize],
    ) -> Result<Placement, PlaceError> {
        let now = self.now_ms();
        let threshold = self.health_policy.panic_threshold;
        let mut fitting = false;
        let mut candidates = Vec::new();
        // First the pools with endpoints in rotation (a pool below the panic threshold
        // spreads over all its endpoints); then, when none has any, the smallest pool
        // that fits, whole, when the threshold allows panic at all.
        for last_resort in [false, true] {
            if last_resort && (threshold <= 0.0 || !fitting) {
                break;
            }
            for &index in self.pool_indexes(model) {
                let pool = &self.all()[index];
                if pool.context_window < request.tokens
                    || pool.endpoints.is_empty()
                    || !request.allowed.contains(index)
                {
                    continue;
                }
                fitting = true;
                let up = pool
                    .endpoints
                    .iter()
                    .filter(|e| e.health.available(now))
                    .count();
                let panic = (up as f64) < threshold * pool.endpoints.len() as f64
                    && (up > 0 || last_resort);
                candidates.clear();
                candidates.extend(
                    pool.endpoints
                        .iter()
                        .filter(|e| !avoid.contains(&e.id) && (panic || e.health.available(now))),
                );
                if candidates.is_empty() {
                    continue;
                }
                return Ok(self.choose(index, &mut candidates, request, now, panic));
            }
        }
        if fitting {
            return Err(PlaceError::Unavailable { tried: avoid.len() });
        }
        match self.pool_indexes(model) {
            [] => Err(PlaceError::NoPool),
            _ => Err(PlaceError::TooLong {
                tokens: request.tokens,
                largest: self.max_context(model),
            }),
        }
    }
}

impl Pools {
    /// One of a pool's candidates, by its TTFT budget and strategy.
    fn choose(
        &self,
        index: usize,
        candidates: &mut Vec<&Arc<Endpoint>>,
        request: &PlaceRequest,
        now: u64,
        panic: bool,
    ) -> Placement {
        let pool = &self.all()[index];
        if let Some(budget) = pool.ttft_budget_ms {
            // Pass over endpoints whose learned TTFT line says they would miss the
            // budget for this prompt, as long as one remains that would not.
            let meets = |e: &&Arc<Endpoint>| {
                e.ttft
                    .fit()
                    .is_none_or(|fit| fit.predict(request.prompt_tokens) <= budget)
            };
            if candidates.iter().any(meets) && !candidates.iter().all(meets) {
                candidates.retain(meets);
            }
        }
        let chosen = pool
            .strategy
            .pick(candidates, request, now)
            .min(candidates.len() - 1);
        let endpoint = Arc::clone(candidates[chosen]);
        Placement {
            pool: index,
            in_flight: endpoint.in_flight(),
            endpoint,
            context_window: pool.context_window,
            request: *request,
            strategy: pool.strategy.name(),
            panic,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use switchyard_policy::{Policy, parse_config};

    fn pools() -> Pools {
        let config = parse_config(
            "models: [{name: m}]
pools:
  - {name: long, model: m, context_window: 64K, endpoints: [{url: 'http://h:3'}]}
  - {name: short, model: m, context_window: 8K,
     endpoints: [{url: 'http://h:1'}, {url: 'http://h:2'}]}
default_route: {models: [m]}
",
        )
        .unwrap();
        let policy = Policy::compile(config).unwrap();
        Pools::build(&policy.config).unwrap()
    }

    #[test]
    fn smallest_fitting_pool_then_least_loaded_endpoint() {
        let pools = pools();
        let a = pools.place(0, 1000).unwrap();
        assert_eq!(a.context_window, 8192);
        let _busy = a.endpoint.begin();
        let b = pools.place(0, 1000).unwrap();
        assert_ne!(a.endpoint.name, b.endpoint.name, "the idle endpoint wins");
        let long = pools.place(0, 20_000).unwrap();
        assert_eq!(long.endpoint.name, "long-0");
        assert_eq!(
            pools.place(0, 100_000).unwrap_err(),
            PlaceError::TooLong {
                tokens: 100_000,
                largest: 65_536
            }
        );
        assert_eq!(pools.place(7, 1).unwrap_err(), PlaceError::NoPool);
    }

    #[test]
    fn a_narrowed_pool_set_keeps_requests_off_the_other_pools() {
        let pools = pools();
        let long_only = pools
            .pool_indexes(0)
            .iter()
            .copied()
            .filter(|&p| pools.all()[p].context_window == 65_536)
            .fold(crate::PoolSet::NONE, |mut set, p| {
                set.insert(p);
                set
            });
        let small = PlaceRequest {
            tokens: 10,
            allowed: long_only,
            ..PlaceRequest::default()
        };
        // A request that the small pool would take goes to the only allowed one.
        assert_eq!(
            pools.place_avoiding(0, &small, &[]).unwrap().endpoint.name,
            "long-0"
        );
        let none = PlaceRequest {
            allowed: crate::PoolSet::NONE,
            ..small
        };
        assert!(pools.place_avoiding(0, &none, &[]).is_err());
        let mut set = crate::PoolSet::NONE;
        set.insert(3);
        set.insert(200);
        assert!(set.contains(3) && set.contains(200) && !set.contains(4));
        assert!(!set.contains(300) && crate::PoolSet::ALL.contains(300));
        assert_eq!(set.intersect(crate::PoolSet::ALL), set);
    }

    #[test]
    fn idle_endpoints_share_requests_round_robin() {
        let pools = pools();
        let names: Vec<String> = (0..4)
            .map(|_| pools.place(0, 10).unwrap().endpoint.name.clone())
            .collect();
        assert_ne!(names[0], names[1]);
        assert_eq!(names[0], names[2]);
    }

    #[test]
    fn in_flight_guard_counts_down_on_drop() {
        let pools = pools();
        let p = pools.place(0, 10).unwrap();
        {
            let _g = p.endpoint.begin();
            assert_eq!(p.endpoint.in_flight(), 1);
        }
        assert_eq!(p.endpoint.in_flight(), 0);
        assert_eq!(p.endpoint.dispatched(), 1);
    }

    #[test]
    fn ejected_and_tried_endpoints_are_skipped_then_larger_pools_take_over() {
        let pools = pools();
        let policy = HealthPolicy {
            eject_after_failures: 1,
            base_ejection_ms: 60_000,
            max_ejection_ms: 60_000,
            panic_threshold: 0.5,
            check_ends_ejection: switchyard_policy::CheckEndsEjection::Recovered,
        };
        let first = pools.place(0, 10).unwrap();
        let ten = PlaceRequest {
            tokens: 10,
            ..PlaceRequest::default()
        };
        let second = pools.place_avoiding(0, &ten, &[first.endpoint.id]).unwrap();
        assert_ne!(first.endpoint.id, second.endpoint.id);
        assert_eq!(second.context_window, 8192);
        // Both short endpoints out: the long pool is the failover.
        let now = pools.now_ms();
        assert!(first.endpoint.health.failure(now, &policy));
        let third = pools
            .place_avoiding(0, &ten, &[second.endpoint.id])
            .unwrap();
        assert_eq!(third.endpoint.name, "long-0");
        let all: Vec<usize> = pools.endpoints().map(|e| e.id).collect();
        assert_eq!(
            pools.place_avoiding(0, &ten, &all).unwrap_err(),
            PlaceError::Unavailable { tried: 3 }
        );
        first.endpoint.health.success();
        assert_eq!(
            pools
                .place_avoiding(0, &ten, &[second.endpoint.id])
                .unwrap()
                .endpoint
                .id,
            first.endpoint.id
        );
    }

    #[test]
    fn a_pool_below_the_panic_threshold_uses_all_its_endpoints() {
        let config = parse_config(
            "models: [{name: m}]
pools:
  - {name: four, model: m, context_window: 8K,
     endpoints: [{url: 'http://h:1'}, {url: 'http://h:2'}, {url: 'http://h:3'}, {url: 'http://h:4'}]}
default_route: {models: [m]}
",
        )
        .unwrap();
        let policy = Policy::compile(config).unwrap();
        let pools = Pools::build(&policy.config).unwrap();
        let judge = pools.health_policy;
        let eject = |i: usize| {
            let e = &pools.all()[0].endpoints[i];
            for _ in 0..judge.eject_after_failures {
                e.health.failure(pools.now_ms(), &judge);
            }
            assert!(!e.health.available(pools.now_ms()));
        };
        let placed = |pools: &Pools| {
            let mut seen = std::collections::BTreeSet::new();
            let mut panic = false;
            for _ in 0..16 {
                let p = pools.place(0, 10).unwrap();
                panic |= p.panic;
                seen.insert(p.endpoint.index);
                p.endpoint.begin();
            }
            (seen, panic)
        };
        // Two of four out: 50% in rotation is not below the threshold.
        eject(0);
        eject(1);
        let (seen, panic) = placed(&pools);
        assert_eq!(
            (seen.into_iter().collect::<Vec<_>>(), panic),
            (vec![2, 3], false)
        );
        // Three out: the survivor is not crushed; all four share the load.
        eject(2);
        let (seen, panic) = placed(&pools);
        assert!(panic);
        assert_eq!(seen.len(), 4, "{seen:?}");
        // All four out: still placed (in panic), not refused.
        eject(3);
        assert!(pools.place(0, 10).unwrap().panic);
    }

    #[test]
    fn panic_off_refuses_when_every_endpoint_is_out() {
        let config = parse_config(
            "models: [{name: m}]
health: {panic_threshold: 0}
pools: [{name: one, model: m, context_window: 8K, endpoints: [{url: 'http://h:1'}]}]
default_route: {models: [m]}
",
        )
        .unwrap();
        let policy = Policy::compile(config).unwrap();
        let pools = Pools::build(&policy.config).unwrap();
        let judge = pools.health_policy;
        let e = &pools.all()[0].endpoints[0];
        for _ in 0..judge.eject_after_failures {
            e.health.failure(pools.now_ms(), &judge);
        }
        assert_eq!(
            pools.place(0, 10).unwrap_err(),
            PlaceError::Unavailable { tried: 0 }
        );
    }

    #[test]
    fn a_ttft_budget_passes_over_endpoints_predicted_to_miss_it() {
        let config = parse_config(
            "models: [{name: m}]
pools:
  - {name: p, model: m, context_window: 8K, ttft_budget_ms: 500, strategy: round_robin,
     endpoints: [{url: 'http://h:1', name: fast}, {url: 'http://h:2', name: slow}]}
default_route: {models: [m]}
",
        )
        .unwrap();
        let pools = Pools::build(&Policy::compile(config).unwrap().config).unwrap();
        let [fast, slow] = [&pools.all()[0].endpoints[0], &pools.all()[0].endpoints[1]];
        for tokens in [100u32, 1000, 2000, 3000, 4000, 5000, 6000, 7000] {
            fast.ttft.observe(tokens, 10.0 + 0.05 * f64::from(tokens));
            slow.ttft.observe(tokens, 10.0 + 0.25 * f64::from(tokens));
        }
        let request = |prompt_tokens| PlaceRequest {
            tokens: prompt_tokens + 100,
            prompt_tokens,
            ..PlaceRequest::default()
        };
        // Short prompts: both meet the budget, round robin alternates.
        let short: Vec<String> = (0..4)
            .map(|_| {
                pools
                    .place_avoiding(0, &request(200), &[])
                    .unwrap()
                    .endpoint
                    .name
                    .clone()
            })
            .collect();
        assert!(short.contains(&"slow".to_owned()) && short.contains(&"fast".to_owned()));
        // A 4,000-token prompt: the slow one would take ~1 s; only the fast one is used.
        for _ in 0..4 {
            assert_eq!(
                pools
                    .place_avoiding(0, &request(4000), &[])
                    .unwrap()
                    .endpoint
                    .name,
                "fast"
            );
        }
        // If none can meet it, the budget is not a reason to refuse.
        assert!(pools.place_avoiding(0, &request(7900), &[]).is_ok());
    }

    #[test]
    fn missing_api_key_variable_is_named() {
        let config = parse_config(
            "models: [{name: m}]
pools: [{name: p, model: m, context_window: 8K,
         endpoints: [{url: 'https://x', api_key_env: NO_SUCH_KEY}]}]
default_route: {models: [m]}
",
        )
        .unwrap();
        let err = Pools::build_with_env(&config, |_| None).unwrap_err();
        assert!(err.to_string().contains("NO_SUCH_KEY"));
        let ok = Pools::build_with_env(&config, |_| Some("k".into())).unwrap();
        let authorization = ok.all()[0].endpoints[0].authorization.clone().unwrap();
        assert_eq!(authorization, "Bearer k");
        assert!(authorization.is_sensitive());
        // A key a header cannot carry is named by its variable, not taken for a URL.
        let err = Pools::build_with_env(&config, |_| Some("k\nx".into())).unwrap_err();
        assert!(matches!(err, crate::PoolsError::BadKey { .. }), "{err}");
        assert!(err.to_string().contains("NO_SUCH_KEY"), "{err}");
    }
}
