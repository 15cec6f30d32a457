//! The gateway: HTTP in, the request's phases, HTTP out.
//!
//! This crate owns the server (`/v1/chat/completions`, Anthropic's `/v1/messages`,
//! `/v1/models`, `/v1/route`, `/healthz`, `/readyz`, `/metrics`) and the wiring of a
//! request's phases over one [`Exchange`]: ingress → characterize → decide → govern →
//! select → place → plugins → forward → observe ([`Phase`]). Each phase's logic lives
//! in its own crate (signals in `workload`, routes and constraints in `policy`,
//! selection and plugins in `router`, placement and the upstream client in `pool`);
//! this one only connects them, and owns the explain trace, Prometheus metrics and
//! the JSONL decision log.

pub mod decision_log;
pub mod dialects;
pub mod dry_run;
pub mod exchange;
pub mod feedback;
pub mod forward;
pub mod ingress;
pub mod local;
pub mod metrics;
pub mod observe;
pub mod phase;
pub mod pipeline;
pub mod policy_tests;
pub mod replay;
pub mod responses;
pub mod runtime;
pub mod serve;
pub mod server;
pub mod shadow;
pub mod shape;
pub mod stream_plugins;
pub mod trace;

pub use decision_log::{DecisionLog, DecisionRecord};
pub use exchange::{DIRECT_ROUTE, Exchange};
pub use phase::{Phase, Refusal};
pub use runtime::{Runtime, RuntimeError};
pub use server::{Gateway, Live, admin_router, public_router, router};
