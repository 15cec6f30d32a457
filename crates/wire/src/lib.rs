//! Wire types of the APIs Switchyard speaks, and their canonical form.
//!
//! This crate owns the client APIs behind one [`Dialect`] trait (OpenAI Chat
//! Completions, Anthropic Messages), the Chat Completions request and response shapes, the
//! server-sent-events framing used for streams, the JSON error body every 4xx/5xx
//! carries, and [`Conversation`]: the one dialect-neutral view of a request that the
//! rest of the router reads. It does not decide, place or forward anything.

pub mod chat;
pub mod conversation;
pub mod dialect;
pub mod error;
pub mod hash;
pub mod headers;
pub mod provider;
pub mod sse;
pub mod stats;
pub mod token_count;
pub mod tokens;
pub mod typos;

pub use chat::{ChatRequest, Message, MessageContent, PromptTokensDetails, StreamOptions, Usage};
pub use conversation::{Conversation, Turn};
pub use dialect::{
    Answer, AnthropicMessages, Dialect, OpenAiChat, OpenAiResponses, ResponseContext,
    StreamTranslator, Translating, Written, translate_stream, translate_whole,
};
pub use error::{ApiError, ErrorKind, error_body};
pub use sse::{SseEvent, SseParser};
pub use token_count::TokenCount;
