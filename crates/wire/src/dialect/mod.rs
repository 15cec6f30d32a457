//! Client APIs ("dialects"): how a body becomes the router's canonical request (Chat
//! Completions) and its [`Conversation`], and how canonical answers, streams and
//! errors are written back in the client's API. One file per API; the gateway serves
//! each on its own path, and every phase between ingress and the client's answer sees
//! only the canonical form.

mod anthropic;
mod openai_chat;

pub use anthropic::{
    AnthropicMessages, VERSIONS as ANTHROPIC_VERSIONS, error_type as anthropic_error_type,
};
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

/// Turns a canonical stream (Chat Completions chunks) into a dialect's events, one
/// event at a time, holding only what the next events need.
pub trait StreamTranslator: Send {
    /// One canonical event's data (a chunk's JSON, `[DONE]`, or the gateway's terminal
    /// `{"error": …}`): the dialect's events for it are appended to `out`.
    fn event(&mut self, data: &str, out: &mut String);

    /// The canonical stream ended; anything a well-formed stream still owes is
    /// appended to `out` (an error event when it ended without `[DONE]`).
    fn end(&mut self, out: &mut String);
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

    /// A whole canonical answer (a 2xx Chat Completions body) in this dialect.
    fn whole(&self, body: &[u8]) -> Result<Bytes, ApiError> {
        Ok(Bytes::copy_from_slice(body))
    }

    /// A translator for canonical streams, when this dialect's events differ.
    fn stream(&self) -> Option<Box<dyn StreamTranslator>> {
        None
    }

    /// A canonical error body (the gateway's, or an upstream's) with its status, in
    /// this dialect's error shape.
    fn error(&self, _status: u16, body: &[u8]) -> Bytes {
        Bytes::copy_from_slice(body)
    }

    /// Whether answers need translating (anything but the canonical dialect).
    fn translates(&self) -> bool {
        false
    }
}
