//! The Pool dimension online: where a request runs and how it gets there.
//!
//! This crate owns the runtime view of pools and endpoints ([`Pools`]), the place
//! phase ([`Pools::place`]: the smallest pool whose context window holds the
//! request, then the endpoint with the fewest requests in flight), and the forward
//! phase ([`Upstream`]: the HTTP call with its timeouts, passing a stream through
//! event by event and ending a broken one with a terminal error event). It does not
//! decide routes or pick models.

pub mod checks;
pub mod compress;
pub mod endpoint;
pub mod engine_metrics;
pub mod forward;
pub mod health;
pub mod latency;
pub mod placement;
pub mod predict;
pub mod retention;
pub mod strategy;
pub mod ttft;

pub use checks::spawn_health_checks;
pub use compress::{CannotCompress, Compression, Cut, compress};
pub use endpoint::{
    Endpoint, EndpointSnapshot, HealthJudge, InFlight, Pool, PoolSnapshot, Pools, PoolsError,
};
pub use engine_metrics::{EngineGauges, EngineLoad};
pub use forward::{Attempted, Retry, with_failover};
pub use forward::{
    Call, ClientDeadline, Completion, ForwardError, PassThrough, StreamEnd, StreamOutcome,
    Upstream, UpstreamBody,
};
pub use health::{Health, HealthPolicy, HealthSnapshot};
pub use latency::LatencyEwma;
pub use placement::{PlaceError, Placement};
pub use predict::{OutputPredictor, Prediction};
pub use retention::{RetentionHint, SessionClock, wall_ms};
pub use strategy::{EndpointStrategy, PlaceRequest, PoolSet};
pub use ttft::{TtftFit, TtftModel};
