//! The place phase: pool by context window, endpoint by load.

use crate::endpoint::{Endpoint, Pools};
use serde::Serialize;
use std::sync::Arc;
use std::sync::atomic::Ordering;

/// Where a request will run.
#[derive(Debug, Clone)]
pub struct Placement {
    /// Index of the pool in [`Pools::all`].
    pub pool: usize,
    /// The endpoint.
    pub endpoint: Arc<Endpoint>,
    /// The pool's context window.
    pub context_window: u32,
    /// Tokens the request is expected to need (prompt plus output).
    pub tokens: u32,
    /// Requests in flight on the endpoint when it was chosen.
    pub in_flight: usize,
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
}

impl Pools {
    /// Places a request for `model` that needs `tokens` tokens: the pool with the smallest
    /// context window that holds it, then its endpoint with the fewest requests in flight
    /// (ties broken round robin).
    pub fn place(&self, model: usize, tokens: u32) -> Result<Placement, PlaceError> {
        let mut largest = None;
        for &index in self.pool_indexes(model) {
            let pool = &self.all()[index];
            largest = Some(pool.context_window);
            if pool.context_window < tokens || pool.endpoints.is_empty() {
                continue;
            }
            let n = pool.endpoints.len();
            let start = pool.next.fetch_add(1, Ordering::Relaxed) % n;
            let mut best = start;
            let mut best_load = usize::MAX;
            for k in 0..n {
                let i = (start + k) % n;
                let load = pool.endpoints[i].in_flight();
                if load < best_load {
                    best = i;
                    best_load = load;
                }
            }
            return Ok(Placement {
                pool: index,
                endpoint: Arc::clone(&pool.endpoints[best]),
                context_window: pool.context_window,
                tokens,
                in_flight: best_load,
            });
        }
        match largest {
            None => Err(PlaceError::NoPool),
            Some(_) => Err(PlaceError::TooLong {
                tokens,
                largest: self.max_context(model),
            }),
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
        assert_eq!(ok.all()[0].endpoints[0].api_key.as_deref(), Some("k"));
    }
}
