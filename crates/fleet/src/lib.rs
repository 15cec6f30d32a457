//! The Pool dimension offline: how GPU instances serve tokens.
//!
//! This crate owns the GPU performance model ([`GpuProfile`]: per-iteration latency
//! `W + H·(L/8192)·n`, chunked prefill, slot count from KV capacity) and a clock-free
//! continuous-batching state machine ([`Batch`]) that turns admitted sequences into
//! timed iterations, and the power curve of each GPU with the tokens per watt it
//! implies ([`power`]). The simulated engine drives a [`Batch`] in real time; the fleet
//! simulator ([`sim`]) runs the same iteration model in simulated time for whole fleets
//! of pools under a workload and a fleet-level routing policy, and the planner
//! ([`plan`]) sizes pools for a latency SLO analytically and verifies the result by
//! simulation. It knows nothing of HTTP or of the gateway's configuration.

pub mod batch;
pub mod erlang;
pub mod gpu;
pub mod plan;
pub mod power;
pub mod roofline;
pub mod sim;
pub mod workload;

pub use batch::{Admission, Batch, Iteration, SeqId};
pub use gpu::{GpuKind, GpuProfile};
pub use power::{Efficiency, PowerProfile, efficiency};
pub use roofline::{Hardware, ModelSpec, roofline};
pub use workload::LengthCdf;
