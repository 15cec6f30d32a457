//! Endpoint choice within a pool: one trait, one file per strategy.
//!
//! A strategy sees the pool's endpoints that may take the request (in rotation and not
//! yet tried for it) and the request's placement keys, and returns one of them. Each
//! strategy object belongs to one pool and keeps its own state (a counter, weights, a
//! random stream).

mod affinity;
mod least_outstanding;
mod p2c_ewma;
mod round_robin;
mod weighted;

use crate::endpoint::Endpoint;
use std::fmt::Debug;
use std::sync::Arc;
use switchyard_policy::StrategyConfig;

pub use affinity::{Affinity, AffinityKey};
pub use least_outstanding::LeastOutstanding;
pub use p2c_ewma::P2cEwma;
pub use round_robin::RoundRobin;
pub use weighted::Weighted;

/// What placement knows about a request.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PlaceRequest {
    /// Tokens the request needs (prompt plus expected output).
    pub tokens: u32,
    /// Tokens of its prompt (what prefill costs).
    pub prompt_tokens: u32,
    /// Hash of the session identity, when the request has one.
    pub session: Option<u64>,
    /// Hash of the request's leading messages (system prompt and first user turn).
    pub prefix: Option<u64>,
    /// The pools it may be placed on (a constraint can narrow them).
    pub allowed: PoolSet,
}

/// A set of pool indexes below [`PoolSet::CAPACITY`]; the default holds every pool.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolSet([u64; WORDS]);

/// Words of 64 pools in a [`PoolSet`].
const WORDS: usize = PoolSet::CAPACITY.div_ceil(64);

impl PoolSet {
    /// The largest pool index it can hold, plus one: the limit configurations with
    /// pool constraints are checked against.
    pub const CAPACITY: usize = switchyard_policy::POOL_SET_CAPACITY;

    /// Every pool.
    pub const ALL: PoolSet = PoolSet([u64::MAX; WORDS]);

    /// No pool.
    pub const NONE: PoolSet = PoolSet([0; WORDS]);

    /// Whether it holds `pool` (indexes past the capacity are held only by [`PoolSet::ALL`]).
    pub fn contains(&self, pool: usize) -> bool {
        match self.0.get(pool / 64) {
            Some(word) => word & (1 << (pool % 64)) != 0,
            None => *self == PoolSet::ALL,
        }
    }

    /// Adds `pool` (ignored past the capacity).
    pub fn insert(&mut self, pool: usize) {
        if let Some(word) = self.0.get_mut(pool / 64) {
            *word |= 1 << (pool % 64);
        }
    }

    /// The pools in both.
    pub fn intersect(self, other: PoolSet) -> PoolSet {
        PoolSet(std::array::from_fn(|i| self.0[i] & other.0[i]))
    }
}

impl Default for PoolSet {
    fn default() -> Self {
        PoolSet::ALL
    }
}

/// How one endpoint is chosen among candidates.
pub trait EndpointStrategy: Send + Sync + Debug {
    /// The configuration name.
    fn name(&self) -> &'static str;
    /// Picks one of `candidates` (never empty); returns its index in `candidates`.
    fn pick(&self, candidates: &[&Arc<Endpoint>], request: &PlaceRequest, now_ms: u64) -> usize;
}

/// The strategy configured as `config`, with fresh state for one pool.
pub fn build(config: StrategyConfig, load_factor: f64, seed: u64) -> Box<dyn EndpointStrategy> {
    match config {
        StrategyConfig::RoundRobin => Box::new(RoundRobin::default()),
        StrategyConfig::Weighted => Box::new(Weighted::default()),
        StrategyConfig::LeastOutstanding => Box::new(LeastOutstanding::default()),
        StrategyConfig::P2cEwma => Box::new(P2cEwma::new(seed)),
        StrategyConfig::SessionAffinity => {
            Box::new(Affinity::new(AffinityKey::Session, load_factor))
        }
        StrategyConfig::PrefixAffinity => Box::new(Affinity::new(AffinityKey::Prefix, load_factor)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Pools;
    use std::collections::HashMap;
    use switchyard_policy::{Policy, parse_config};

    fn pools(strategy: &str, weights: [u32; 3]) -> Pools {
        let config = format!(
            "models: [{{name: m}}]
pools:
  - name: p
    model: m
    context_window: 8K
    strategy: {strategy}
    endpoints:
      - {{url: 'http://h:1', name: a, weight: {}}}
      - {{url: 'http://h:2', name: b, weight: {}}}
      - {{url: 'http://h:3', name: c, weight: {}}}
default_route: {{models: [m]}}
",
            weights[0], weights[1], weights[2]
        );
        let policy = Policy::compile(parse_config(&config).unwrap()).unwrap();
        Pools::build(&policy.config).unwrap()
    }

    fn pick(pools: &Pools, request: &PlaceRequest) -> String {
        pools
            .place_avoiding(0, request, &[])
            .unwrap()
            .endpoint
            .name
            .clone()
    }

    fn counts(pools: &Pools, n: usize, request: &PlaceRequest) -> HashMap<String, usize> {
        let mut out = HashMap::new();
        for _ in 0..n {
            *out.entry(pick(pools, request)).or_insert(0) += 1;
        }
        out
    }

    const PLAIN: PlaceRequest = PlaceRequest {
        tokens: 10,
        prompt_tokens: 5,
        session: None,
        prefix: None,
        allowed: crate::strategy::PoolSet::ALL,
    };

    #[test]
    fn round_robin_takes_each_in_turn() {
        let p = pools("round_robin", [1, 1, 1]);
        let names: Vec<String> = (0..6).map(|_| pick(&p, &PLAIN)).collect();
        assert_eq!(names[..3], names[3..]);
        assert_eq!(
            counts(&p, 30, &PLAIN).values().copied().collect::<Vec<_>>(),
            vec![10; 3]
        );
        assert_eq!(p.all()[0].strategy.name(), "round_robin");
    }

    #[test]
    fn weighted_follows_weights_smoothly() {
        let p = pools("weighted", [4, 2, 2]);
        let names: Vec<String> = (0..8).map(|_| pick(&p, &PLAIN)).collect();
        let a = names.iter().filter(|n| *n == "a").count();
        assert_eq!(a, 4, "{names:?}");
        assert!(
            names.windows(3).all(|w| !(w[0] == w[1] && w[1] == w[2])),
            "bunched: {names:?}"
        );
    }

    #[test]
    fn least_outstanding_avoids_busy_endpoints() {
        let p = pools("least_outstanding", [1, 1, 1]);
        let endpoints = &p.all()[0].endpoints;
        let _busy: Vec<_> = [0, 0, 1].iter().map(|&i| endpoints[i].begin()).collect();
        for _ in 0..5 {
            assert_eq!(pick(&p, &PLAIN), "c");
        }
    }

    #[test]
    fn p2c_ewma_steers_away_from_a_slow_endpoint() {
        let p = pools("p2c_ewma", [1, 1, 1]);
        let endpoints = &p.all()[0].endpoints;
        endpoints[0].latency.observe(200.0, 0);
        endpoints[1].latency.observe(20.0, 0);
        endpoints[2].latency.observe(25.0, 0);
        let c = counts(&p, 300, &PLAIN);
        assert_eq!(c.get("a"), None, "{c:?}");
        assert!(c["b"] > 100 && c["c"] > 50, "{c:?}");
        // Load counts too: a busy fast endpoint loses to an idle slower one.
        let _busy: Vec<_> = (0..20).map(|_| endpoints[1].begin()).collect();
        let c = counts(&p, 100, &PLAIN);
        assert!(
            c.get("c").copied().unwrap_or(0) > c.get("b").copied().unwrap_or(0),
            "{c:?}"
        );
    }

    #[test]
    fn session_affinity_is_sticky_consistent_and_load_bounded() {
        let p = pools("session_affinity", [1, 1, 1]);
        let session = |s: u64| PlaceRequest {
            tokens: 10,
            prompt_tokens: 5,
            session: Some(s),
            prefix: None,
            allowed: crate::strategy::PoolSet::ALL,
        };
        let home: Vec<String> = (0..300).map(|s| pick(&p, &session(s))).collect();
        for s in 0..300 {
            assert_eq!(pick(&p, &session(s)), home[s as usize], "session {s} moved");
        }
        let spread: HashMap<&String, usize> = home.iter().fold(HashMap::new(), |mut m, n| {
            *m.entry(n).or_insert(0) += 1;
            m
        });
        assert_eq!(spread.len(), 3);
        assert!(spread.values().all(|&n| n > 60), "{spread:?}");
        // Losing an endpoint moves only the sessions that were on it.
        let b = p.all()[0].endpoints[1].id;
        for s in 0..300 {
            let now = p
                .place_avoiding(0, &session(s), &[b])
                .unwrap()
                .endpoint
                .name
                .clone();
            if home[s as usize] != "b" {
                assert_eq!(now, home[s as usize], "session {s} moved needlessly");
            }
        }
        // Overloaded home: the least loaded takes the request.
        let home0 = home[0].clone();
        let endpoint = p.all()[0]
            .endpoints
            .iter()
            .find(|e| e.name == home0)
            .unwrap();
        let _busy: Vec<_> = (0..10).map(|_| endpoint.begin()).collect();
        assert_ne!(pick(&p, &session(0)), home0);
    }

    #[test]
    fn prefix_affinity_groups_shared_prefixes_and_falls_back_without_one() {
        let p = pools("prefix_affinity", [1, 1, 1]);
        let prefix = PlaceRequest {
            tokens: 10,
            prompt_tokens: 5,
            session: None,
            prefix: Some(42),
            allowed: crate::strategy::PoolSet::ALL,
        };
        let first = pick(&p, &prefix);
        assert!((0..10).all(|_| pick(&p, &prefix) == first));
        let c = counts(&p, 30, &PLAIN);
        assert_eq!(c.len(), 3, "no key: spread by load {c:?}");
        assert_eq!(p.all()[0].strategy.name(), "prefix_affinity");
    }
}
