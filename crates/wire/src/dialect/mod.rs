//! Client APIs ("dialects"): how a body becomes the router's canonical request (Chat
//! Completions) and its [`Conversation`], and how canonical answers, streams and
//! errors are written back in the client's API. One file per API; the gateway serves
//! each on its own path, and every phase between ingress and the client's answer sees
//! only the canonical form.

mod anthropic;
mod openai_chat;
mod openai_responses;

pub use anthropic::{
    AnthropicMessages, VERSIONS as ANTHROPIC_VERSIONS, error_type as anthropic_error_type,
};
pub use openai_chat::OpenAiChat;
pub use openai_responses::{OpenAiResponses, ResponseContext};

use crate::{ApiError, ChatRequest, Conversation, Usage};
use bytes::Bytes;
use serde::Deserialize;
use serde::de::IgnoredAny;
use std::borrow::Cow;

/// An invalid request naming `param`, the message starting with it.
fn invalid(param: impl Into<String>, message: impl std::fmt::Display) -> ApiError {
    let param = param.into();
    ApiError::new(
        crate::ErrorKind::InvalidRequest,
        format!("{param}: {message}"),
    )
    .with_param(param)
}

/// A field's JSON type, for messages.
fn kind(v: &serde_json::Value) -> &'static str {
    use serde_json::Value;
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// A body that is not JSON.
/// Whether the typed and the tree reading of one body agree: the same canonical
/// request, or the same refusal; `Err` shows how they differ.
#[cfg(test)]
pub(crate) fn same_reading(
    typed: &Result<ChatRequest, ApiError>,
    tree: &Result<ChatRequest, ApiError>,
) -> Result<(), String> {
    match (typed, tree) {
        (Ok(typed), Ok(tree)) => {
            let value = |r: &ChatRequest| serde_json::to_value(r).map_err(|e| e.to_string());
            let (typed, tree) = (value(typed)?, value(tree)?);
            if typed == tree {
                Ok(())
            } else {
                Err(format!("typed {typed}\ntree  {tree}"))
            }
        }
        (Err(typed), Err(tree)) if typed.body() == tree.body() => Ok(()),
        (typed, tree) => Err(format!("typed {typed:?}\ntree  {tree:?}")),
    }
}

fn malformed(e: &serde_json::Error) -> ApiError {
    ApiError::new(
        crate::ErrorKind::InvalidRequest,
        format!("malformed JSON: {e}"),
    )
}

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

/// A stream chunk that may only add text to the message being written: read without
/// building a tree, for the common case.
#[derive(Deserialize)]
pub(crate) struct TextChunk<'a> {
    #[serde(default, borrow)]
    choices: Vec<TextChoice<'a>>,
    #[serde(default)]
    usage: Option<IgnoredAny>,
    #[serde(default)]
    error: Option<IgnoredAny>,
}

#[derive(Deserialize)]
struct TextChoice<'a> {
    #[serde(default, borrow)]
    delta: Option<TextDelta<'a>>,
    #[serde(default)]
    finish_reason: Option<IgnoredAny>,
}

#[derive(Deserialize)]
struct TextDelta<'a> {
    #[serde(default, borrow)]
    content: Option<Cow<'a, str>>,
    #[serde(default)]
    tool_calls: Option<IgnoredAny>,
    #[serde(default)]
    reasoning_content: Option<IgnoredAny>,
    #[serde(default)]
    reasoning: Option<IgnoredAny>,
}

impl<'a> TextChunk<'a> {
    /// The text it adds, when adding text is all it does.
    pub(crate) fn only_text(self) -> Option<Cow<'a, str>> {
        if self.usage.is_some() || self.error.is_some() || self.choices.len() != 1 {
            return None;
        }
        let choice = self.choices.into_iter().next()?;
        let delta = choice.delta?;
        if choice.finish_reason.is_some()
            || delta.tool_calls.is_some()
            || delta.reasoning_content.is_some()
            || delta.reasoning.is_some()
        {
            return None;
        }
        delta.content.filter(|c| !c.is_empty())
    }
}

/// A byte stream of one API's events translated into another's: pieces in, whole
/// translated events out.
pub struct Translating {
    parser: crate::SseParser,
    translator: Box<dyn StreamTranslator>,
}

impl std::fmt::Debug for Translating {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Translating").finish_non_exhaustive()
    }
}

impl Translating {
    /// Translates with `translator`.
    pub fn new(translator: Box<dyn StreamTranslator>) -> Self {
        Translating {
            parser: crate::SseParser::new(),
            translator,
        }
    }

    /// The translation of the events `piece` completes (empty when none).
    pub fn push(&mut self, piece: &[u8]) -> String {
        self.parser.push(piece);
        let mut out = String::new();
        while let Some(event) = self.parser.next_event() {
            if !event.data.is_empty() {
                self.translator.event(&event.data, &mut out);
            }
        }
        out
    }

    /// What the translated stream still owes once the source has ended.
    pub fn end(&mut self) -> String {
        let mut out = String::new();
        self.translator.end(&mut out);
        out
    }
}

/// A stream of canonical event bytes (pieces of any size) as `translator`'s events;
/// ends with what the translator owes when the source ends or fails.
pub fn translate_stream<S, E>(
    source: S,
    translator: Box<dyn StreamTranslator>,
) -> impl futures_util::Stream<Item = Result<Bytes, std::convert::Infallible>> + Send
where
    S: futures_util::Stream<Item = Result<Bytes, E>> + Send + Unpin,
{
    use futures_util::StreamExt;
    let state = (source, Translating::new(translator), false);
    futures_util::stream::unfold(state, |(mut source, mut translating, over)| async move {
        if over {
            return None;
        }
        loop {
            let (out, over) = match source.next().await {
                Some(Ok(bytes)) => (translating.push(&bytes), false),
                Some(Err(_)) | None => (translating.end(), true),
            };
            if !out.is_empty() || over {
                return Some((Ok(Bytes::from(out)), (source, translating, over)));
            }
        }
    })
}

/// A whole canonical answer (status and body: a completion, or an error body) in
/// `dialect`: the status it goes out with and its body.
pub fn translate_whole(dialect: &dyn Dialect, status: u16, body: &[u8]) -> (u16, Bytes) {
    if !(200..300).contains(&status) {
        return (status, dialect.error(status, body));
    }
    match dialect.whole(body) {
        Ok(body) => (status, body),
        Err(error) => {
            let status = error.kind.status();
            (
                status,
                dialect.error(status, error.body().to_string().as_bytes()),
            )
        }
    }
}

/// A JSON object read with its field `key` typed (`T`, `None` when absent) and every
/// other field as it came, null kept: the part of a request that holds the
/// conversation read without a tree, the rest for the checks that read trees. `None`
/// when `body` is not such an object (or `key` is not a `T`). A repeated key counts
/// once, its last value, as in a tree.
pub(crate) fn split_object<'de, T: Deserialize<'de>>(
    body: &'de [u8],
    key: &'static str,
) -> Option<(Option<T>, serde_json::Map<String, serde_json::Value>)> {
    struct Visit<T> {
        key: &'static str,
        typed: std::marker::PhantomData<T>,
    }
    impl<'de, T: Deserialize<'de>> serde::de::Visitor<'de> for Visit<T> {
        type Value = (Option<T>, serde_json::Map<String, serde_json::Value>);
        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("an object")
        }
        fn visit_map<A: serde::de::MapAccess<'de>>(
            self,
            mut map: A,
        ) -> Result<Self::Value, A::Error> {
            let mut typed = None;
            let mut rest = serde_json::Map::new();
            while let Some(k) = map.next_key::<Cow<'de, str>>()? {
                if k == self.key {
                    typed = Some(map.next_value::<T>()?);
                } else {
                    rest.insert(k.into_owned(), map.next_value()?);
                }
            }
            Ok((typed, rest))
        }
    }
    let mut de = serde_json::Deserializer::from_slice(body);
    let visit = Visit {
        key,
        typed: std::marker::PhantomData,
    };
    let split = serde::Deserializer::deserialize_map(&mut de, visit).ok()?;
    de.end().ok()?;
    Some(split)
}

/// Absent as `None`, null as `Some(None)`.
pub(crate) fn nullable<'de, D: serde::Deserializer<'de>, T: Deserialize<'de>>(
    d: D,
) -> Result<Option<Option<T>>, D::Error> {
    Option::<T>::deserialize(d).map(Some)
}

/// `Deserialize` for an enum of `Text(String)` and `$variant(Vec<$item>)`: a string
/// or an array, read without buffering (an untagged enum would).
macro_rules! string_or_seq {
    ($name:ident, $variant:ident, $item:ident) => {
        impl<'de: 'a, 'a> serde::Deserialize<'de> for $name<'a> {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                struct Visit<'a>(std::marker::PhantomData<&'a ()>);
                impl<'de: 'a, 'a> serde::de::Visitor<'de> for Visit<'a> {
                    type Value = $name<'a>;
                    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                        f.write_str("a string or an array")
                    }
                    fn visit_str<E>(self, s: &str) -> Result<Self::Value, E> {
                        Ok($name::Text(s.to_owned()))
                    }
                    fn visit_string<E>(self, s: String) -> Result<Self::Value, E> {
                        Ok($name::Text(s))
                    }
                    fn visit_seq<A: serde::de::SeqAccess<'de>>(
                        self,
                        mut seq: A,
                    ) -> Result<Self::Value, A::Error> {
                        let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(4));
                        while let Some(item) = seq.next_element::<$item<'a>>()? {
                            items.push(item);
                        }
                        Ok($name::$variant(items))
                    }
                }
                d.deserialize_any(Visit(std::marker::PhantomData))
            }
        }
    };
}
pub(crate) use string_or_seq;

/// A whole canonical answer (a Chat Completions completion), as far as the dialects
/// read one.
#[derive(Deserialize)]
pub(crate) struct Completion<'a> {
    #[serde(borrow, default)]
    pub(crate) id: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    pub(crate) model: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    pub(crate) choices: Vec<ChoiceIn<'a>>,
    #[serde(default)]
    pub(crate) usage: Option<UsageIn>,
}

#[derive(Deserialize, Default)]
pub(crate) struct ChoiceIn<'a> {
    #[serde(borrow, default)]
    pub(crate) message: Option<MessageIn<'a>>,
    #[serde(borrow, default)]
    pub(crate) finish_reason: Option<Cow<'a, str>>,
    /// vLLM: the stop string (or token id) that ended the answer.
    #[serde(default)]
    pub(crate) stop_reason: Option<serde_json::Value>,
}

#[derive(Deserialize, Default)]
pub(crate) struct MessageIn<'a> {
    #[serde(borrow, default)]
    pub(crate) content: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    pub(crate) refusal: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    pub(crate) reasoning_content: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    pub(crate) reasoning: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    pub(crate) tool_calls: Option<Vec<CallIn<'a>>>,
}

#[derive(Deserialize)]
pub(crate) struct CallIn<'a> {
    #[serde(borrow, default)]
    pub(crate) id: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    pub(crate) function: Option<FunctionIn<'a>>,
}

#[derive(Deserialize, Default)]
pub(crate) struct FunctionIn<'a> {
    #[serde(borrow, default)]
    pub(crate) name: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    pub(crate) arguments: Option<Cow<'a, str>>,
}

/// Chat Completions usage, every field optional (servers differ in what they send).
#[derive(Deserialize, Default)]
pub(crate) struct UsageIn {
    #[serde(default)]
    pub(crate) prompt_tokens: Option<u64>,
    #[serde(default)]
    pub(crate) completion_tokens: Option<u64>,
    #[serde(default)]
    pub(crate) prompt_tokens_details: Option<DetailsIn>,
    #[serde(default)]
    pub(crate) completion_tokens_details: Option<OutputDetailsIn>,
}

#[derive(Deserialize, Default)]
pub(crate) struct OutputDetailsIn {
    #[serde(default)]
    pub(crate) reasoning_tokens: Option<u64>,
}

#[derive(Deserialize, Default)]
pub(crate) struct DetailsIn {
    #[serde(default)]
    pub(crate) cached_tokens: Option<u64>,
    #[serde(default)]
    pub(crate) cache_write_tokens: Option<u64>,
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
