//! A simulated OpenAI-compatible inference engine, a stand-in for a vLLM instance.
//!
//! It serves `POST /v1/chat/completions` (whole answers and SSE streams; or, with
//! [`Api`], Azure OpenAI's deployment paths or Anthropic's `POST /v1/messages`) with the
//! timing of the fleet performance model: requests queue for one of the instance's
//! slots, prefill in chunks, and decode one token per iteration whose length follows
//! `W + H·(L/8192)·n` for the configured GPU (see [`switchyard_fleet::Batch`]). Text
//! is deterministic for a prompt, `usage` is exact for what was sent, `max_tokens`
//! is honoured, and `/metrics` exposes vLLM's gauges. A prefix cache keeps finished
//! conversations' KV for their next turn and honours retention hints (see
//! [`prefix_cache`]). Faults (errors, added latency,
//! stalls, streams dropped midway) can be injected by flags or at run time with
//! `PUT /admin/faults`, for testing what sits in front of it. Each answer is right
//! or wrong with a calibrated confidence that its `logprobs` carry (see [`quality`]),
//! so confidence cascades and outcome loops can be tested end to end.

mod apis;
mod http;
pub mod prefix_cache;
pub mod quality;
mod scheduler;
mod text;

pub use apis::Api;
pub use http::{EngineConfig, EngineHandle, Faults, answer_key, serve};
pub use prefix_cache::Retention;
pub use text::{output_length, token_text};
