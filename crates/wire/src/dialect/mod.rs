//! Client APIs ("dialects"): how a body becomes the router's request and its
//! [`Conversation`], and how answers the gateway makes itself are written back. One
//! file per API; the gateway serves each on its own path.

mod openai_chat;

pub use openai_chat::OpenAiChat;

use crate::{ApiError, ChatRequest, Conversation, Usage};
use bytes::Bytes;

/// An answer the gateway writes itself: its content type and body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Written {
    /// `application/json` or `text/event-stream`.
    pub content_type: &'static str,
    /// The body.
    pub body: Bytes,
}

/// An assistant message the gateway answers with itself: a plugin's local answer, or
/// an answer replayed from a cache.
#[derive(Debug, Clone, Copy)]
pub struct Answer<'a> {
    /// The assistant's text.
    pub text: &'a str,
    /// The model named in the answer.
    pub model: &'a str,
    /// The request id the answer's id is made from.
    pub id: &'a str,
    /// Its creation time, in seconds since the epoch.
    pub created: u64,
    /// Streamed (server-sent events) rather than whole.
    pub stream: bool,
    /// The usage reported (zeros when absent).
    pub usage: Option<Usage>,
    /// A stream ends with a usage chunk (the client asked for one).
    pub stream_usage: bool,
}

/// A client API.
pub trait Dialect: Send + Sync + std::fmt::Debug {
    /// Its name (`openai_chat`).
    fn name(&self) -> &'static str;

    /// Parses and checks a request body: the request forwarded upstream (Chat
    /// Completions, the upstream's API) and the conversation signals read. Errors name
    /// the field at fault.
    fn parse(
        &self,
        body: &[u8],
        session: Option<&str>,
    ) -> Result<(ChatRequest, Conversation), ApiError>;

    /// An assistant message made by the gateway (a plugin's local answer, a cached
    /// answer): whole, or as a stream that ends the way the client's SDK expects.
    fn answer(&self, answer: &Answer<'_>) -> Written;
}
