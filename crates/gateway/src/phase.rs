//! The request's phases, named once: code, explain trace, metrics and the decision log
//! all use [`Phase`].

use serde::Serialize;
use std::time::Duration;
use switchyard_wire::ApiError;

/// A phase of a request's life, in the order a request meets them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    /// Parse the API dialect into a request and its conversation.
    Ingress,
    /// Compute the signals the policy reads.
    Characterize,
    /// Pick a route (or take the model the client named).
    Decide,
    /// Narrow candidates and pools by the policy's constraints.
    Govern,
    /// Pick a model among the candidates.
    Select,
    /// Pick a pool and endpoint; compress when the route allows it.
    Place,
    /// Request-side plugins: rewrite the upstream request or answer locally.
    Plugins,
    /// Call the upstream, with failover; response-side plugins see the answer.
    Forward,
    /// Record the outcome: metrics, learned state, the decision log.
    Observe,
}

impl Phase {
    /// Every phase, in order.
    pub const ALL: [Phase; 9] = [
        Phase::Ingress,
        Phase::Characterize,
        Phase::Decide,
        Phase::Govern,
        Phase::Select,
        Phase::Place,
        Phase::Plugins,
        Phase::Forward,
        Phase::Observe,
    ];

    /// Its name, as written in traces, metrics labels and the decision log.
    pub fn name(self) -> &'static str {
        match self {
            Phase::Ingress => "ingress",
            Phase::Characterize => "characterize",
            Phase::Decide => "decide",
            Phase::Govern => "govern",
            Phase::Select => "select",
            Phase::Place => "place",
            Phase::Plugins => "plugins",
            Phase::Forward => "forward",
            Phase::Observe => "observe",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// Time spent in each phase a request reached.
#[derive(Debug, Clone, Default)]
pub struct Timings([Option<Duration>; 9]);

impl Timings {
    /// Records (adds to) a phase's time.
    pub fn record(&mut self, phase: Phase, spent: Duration) {
        let slot = &mut self.0[phase.index()];
        *slot = Some(slot.unwrap_or_default() + spent);
    }

    /// A phase's time, when the request reached it.
    pub fn get(&self, phase: Phase) -> Option<Duration> {
        self.0[phase.index()]
    }
}

/// A request that could not go on: the phase that refused it, and why.
#[derive(Debug, Clone)]
pub struct Refusal {
    /// Where.
    pub phase: Phase,
    /// Why, as the client sees it.
    pub error: ApiError,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_in_order_and_distinct() {
        let names: Vec<&str> = Phase::ALL.iter().map(|p| p.name()).collect();
        assert_eq!(
            names,
            [
                "ingress",
                "characterize",
                "decide",
                "govern",
                "select",
                "place",
                "plugins",
                "forward",
                "observe"
            ]
        );
        for p in Phase::ALL {
            assert_eq!(serde_json::to_value(p).unwrap(), p.name());
        }
        let mut t = Timings::default();
        t.record(Phase::Place, Duration::from_micros(3));
        t.record(Phase::Place, Duration::from_micros(2));
        assert_eq!(t.get(Phase::Place), Some(Duration::from_micros(5)));
        assert_eq!(t.get(Phase::Forward), None);
    }
}
