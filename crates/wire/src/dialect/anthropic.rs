//! Anthropic Messages (`POST /v1/messages`, `POST /v1/messages/count_tokens`).
//!
//! A Messages body becomes the canonical Chat Completions request: system blocks
//! become a system message, content blocks become content parts (each keeping its
//! `cache_control` breakpoint), `tool_use` blocks become `tool_calls`, `tool_result`
//! blocks become `tool` messages, tools become function tools. Answers come back the
//! other way: a completion becomes a `message`, a stream of chunks becomes the
//! `message_start` … `message_stop` events, an error becomes `{"type": "error", …}`.
//! What cannot be carried faithfully to a Chat Completions upstream is refused with a
//! 400 naming the field, never dropped.

use super::{Completion, Dialect, StreamTranslator, UsageIn, invalid, kind, malformed};
use crate::{ApiError, ChatRequest, Conversation, ErrorKind, Message, MessageContent};
use bytes::Bytes;
use serde_json::{Map, Value, json};

/// The Anthropic Messages API.
#[derive(Debug, Clone, Copy, Default)]
pub struct AnthropicMessages;

/// `anthropic-version` values this dialect speaks.
pub const VERSIONS: [&str; 2] = ["2023-06-01", "2023-01-01"];

/// Top-level fields of a Messages body. Anything else is refused, as Anthropic does.
const FIELDS: [&str; 14] = [
    "model",
    "messages",
    "max_tokens",
    "system",
    "stop_sequences",
    "stream",
    "temperature",
    "top_p",
    "top_k",
    "metadata",
    "tools",
    "tool_choice",
    "thinking",
    "service_tier",
];

impl AnthropicMessages {
    /// Parses a `count_tokens` body: a Messages body without `max_tokens` or `stream`.
    pub fn parse_count(&self, body: &[u8]) -> Result<(ChatRequest, Conversation), ApiError> {
        let object: Map<String, Value> = serde_json::from_slice(body).map_err(|e| malformed(&e))?;
        let request = translate(object, false)?;
        let conversation = Conversation::from_chat(&request, None);
        Ok((request, conversation))
    }
}

impl Dialect for AnthropicMessages {
    fn name(&self) -> &'static str {
        "anthropic_messages"
    }

    fn parse(
        &self,
        body: &[u8],
        session: Option<&str>,
    ) -> Result<(ChatRequest, Conversation), ApiError> {
        let request = match typed::read(body) {
            // Every turn read without a tree; the rest checked as always.
            Some((object, turns)) => translate_with(object, true, Some(turns))?,
            None => {
                let object: Map<String, Value> =
                    serde_json::from_slice(body).map_err(|e| malformed(&e))?;
                translate(object, true)?
            }
        };
        let conversation = Conversation::from_chat(&request, session);
        Ok((request, conversation))
    }

    fn whole(&self, body: &[u8]) -> Result<Bytes, ApiError> {
        message(body).map(Bytes::from).map_err(|e| {
            ApiError::new(
                ErrorKind::Upstream,
                format!("the upstream's answer is not a chat completion: {e}"),
            )
        })
    }

    fn stream(&self) -> Option<Box<dyn StreamTranslator>> {
        Some(Box::new(EventWriter::default()))
    }

    fn translates(&self) -> bool {
        true
    }

    fn error(&self, status: u16, body: &[u8]) -> Bytes {
        let (message, param) = error_text(body);
        let message = match param {
            Some(p) if !message.contains(&p) => format!("{p}: {message}"),
            _ => message,
        };
        Bytes::from(
            json!({"type": "error", "error": {"type": error_type(status), "message": message}})
                .to_string(),
        )
    }
}

/// The message and field of a canonical error body: the gateway's
/// `{"error": {"message", "param"}}`, an upstream's OpenAI-style error, or vLLM's
/// top-level `{"message"}`; else the body itself as text.
fn error_text(body: &[u8]) -> (String, Option<String>) {
    let value: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
    let error = value.get("error").unwrap_or(&value);
    let text = |v: &Value, k: &str| v.get(k).and_then(Value::as_str).map(str::to_owned);
    match (text(error, "message"), error.as_str()) {
        (Some(message), _) => (message, text(error, "param")),
        (None, Some(message)) => (message.to_owned(), None),
        (None, None) => {
            let raw = String::from_utf8_lossy(body);
            (raw.chars().take(1000).collect(), None)
        }
    }
}

/// Anthropic's error `type` for an HTTP status.
pub fn error_type(status: u16) -> &'static str {
    match status {
        401 => "authentication_error",
        402 => "billing_error",
        403 => "permission_error",
        404 => "not_found_error",
        413 => "request_too_large",
        429 => "rate_limit_error",
        504 => "timeout_error",
        503 | 529 => "overloaded_error",
        400..500 => "invalid_request_error",
        _ => "api_error",
    }
}

/// A Messages body as a Chat Completions request. `full`: a Messages call (needs
/// `max_tokens`, may stream) rather than `count_tokens`.
fn translate(body: Map<String, Value>, full: bool) -> Result<ChatRequest, ApiError> {
    translate_with(body, full, None)
}

/// [`translate`], with the turns already read (`turns`) when they were.
fn translate_with(
    mut body: Map<String, Value>,
    full: bool,
    turns: Option<Vec<Message>>,
) -> Result<ChatRequest, ApiError> {
    if let Some(unknown) = body.keys().find(|k| !FIELDS.contains(&k.as_str())) {
        return Err(invalid(
            unknown.clone(),
            "Extra inputs are not permitted (Messages fields: model, messages, max_tokens, \
             system, tools, …)",
        ));
    }
    let model = match body.remove("model") {
        Some(Value::String(m)) if !m.trim().is_empty() => m,
        Some(Value::String(_)) => return Err(invalid("model", "is empty: name a model or `auto`")),
        Some(v) => {
            return Err(invalid(
                "model",
                format!("must be a string, not {}", kind(&v)),
            ));
        }
        None => return Err(invalid("model", "Field required")),
    };
    let max_tokens = match body.remove("max_tokens") {
        Some(v) => Some(
            v.as_u64()
                .and_then(|n| u32::try_from(n).ok())
                .filter(|n| *n >= 1)
                .ok_or_else(|| {
                    invalid(
                        "max_tokens",
                        format!("must be a whole number ≥ 1 (got {v})"),
                    )
                })?,
        ),
        None if full => return Err(invalid("max_tokens", "Field required")),
        None => None,
    };
    let mut messages = Vec::new();
    match body.remove("system") {
        None | Some(Value::Null) => {}
        Some(Value::String(s)) => messages.push(message_of("system", MessageContent::Text(s))),
        Some(Value::Array(blocks)) => {
            let mut parts = Vec::with_capacity(blocks.len());
            for (i, block) in blocks.into_iter().enumerate() {
                let at = format!("system.{i}");
                match block_type(&block, &at)? {
                    "text" => parts.push(text_part(block, &at)?),
                    other => {
                        return Err(invalid(
                            format!("{at}.type"),
                            format!("system blocks are text, not `{other}`"),
                        ));
                    }
                }
            }
            messages.push(message_of("system", MessageContent::Parts(parts)));
        }
        Some(v) => {
            return Err(invalid(
                "system",
                format!(
                    "must be a string or an array of text blocks, not {}",
                    kind(&v)
                ),
            ));
        }
    }
    if let Some(turns) = turns {
        messages.extend(turns);
    } else {
        let turns = match body.remove("messages") {
            Some(Value::Array(turns)) if !turns.is_empty() => turns,
            Some(Value::Array(_)) => return Err(invalid("messages", "send at least one message")),
            Some(v) => {
                return Err(invalid(
                    "messages",
                    format!("must be an array, not {}", kind(&v)),
                ));
            }
            None => return Err(invalid("messages", "Field required")),
        };
        for (i, turn) in turns.into_iter().enumerate() {
            push_turn(&mut messages, turn, i)?;
        }
    }
    let mut extra = Map::new();
    let stream = match body.remove("stream") {
        None | Some(Value::Null) => None,
        Some(Value::Bool(b)) if full => Some(b),
        Some(Value::Bool(_)) => return Err(invalid("stream", "count_tokens does not stream")),
        Some(v) => {
            return Err(invalid(
                "stream",
                format!("must be a boolean, not {}", kind(&v)),
            ));
        }
    };
    for (field, low, high) in [("temperature", 0.0, 1.0), ("top_p", 0.0, 1.0)] {
        if let Some(v) = body.remove(field) {
            if !v.as_f64().is_some_and(|x| (low..=high).contains(&x)) {
                return Err(invalid(
                    field,
                    format!("must be a number from {low} to {high}"),
                ));
            }
            extra.insert(field.to_owned(), v);
        }
    }
    if let Some(v) = body.remove("top_k") {
        if v.as_u64().is_none_or(|k| k < 1) {
            return Err(invalid("top_k", "must be a whole number ≥ 1"));
        }
        // Not in OpenAI's API; vLLM and SGLang read it.
        extra.insert("top_k".to_owned(), v);
    }
    if let Some(v) = body.remove("stop_sequences") {
        let valid = v
            .as_array()
            .is_some_and(|s| s.iter().all(|x| x.as_str().is_some_and(|x| !x.is_empty())));
        if !valid {
            return Err(invalid(
                "stop_sequences",
                "must be an array of non-empty strings",
            ));
        }
        extra.insert("stop".to_owned(), v);
    }
    if let Some(metadata) = body.remove("metadata") {
        let Value::Object(mut metadata) = metadata else {
            return Err(invalid("metadata", "must be an object"));
        };
        match metadata.remove("user_id") {
            None | Some(Value::Null) => {}
            Some(Value::String(user)) if user.len() <= 256 => {
                extra.insert("user".to_owned(), Value::String(user));
            }
            Some(_) => {
                return Err(invalid(
                    "metadata.user_id",
                    "must be a string of at most 256 characters",
                ));
            }
        }
        if let Some(other) = metadata.keys().next() {
            return Err(invalid(
                format!("metadata.{other}"),
                "Extra inputs are not permitted (metadata holds user_id)",
            ));
        }
    }
    if let Some(tools) = body.remove("tools") {
        extra.insert("tools".to_owned(), translate_tools(tools)?);
    }
    if let Some(choice) = body.remove("tool_choice") {
        translate_tool_choice(choice, &mut extra)?;
    }
    if let Some(thinking) = body.remove("thinking") {
        match thinking.get("type").and_then(Value::as_str) {
            Some("disabled") => {}
            Some("enabled") => {
                let budget = thinking.get("budget_tokens").and_then(Value::as_u64);
                if budget.is_none_or(|b| b < 1024) {
                    return Err(invalid(
                        "thinking.budget_tokens",
                        "must be a whole number ≥ 1024",
                    ));
                }
                return Err(invalid(
                    "thinking",
                    "extended thinking cannot be carried to a Chat Completions upstream: send \
                     without `thinking` or with {\"type\": \"disabled\"}",
                ));
            }
            _ => {
                return Err(invalid(
                    "thinking.type",
                    "must be `enabled` (with budget_tokens) or `disabled`",
                ));
            }
        }
    }
    match body.remove("service_tier") {
        None => {}
        Some(Value::String(t)) if t == "auto" || t == "standard_only" => {}
        Some(_) => return Err(invalid("service_tier", "must be `auto` or `standard_only`")),
    }
    let stream_options = stream.filter(|s| *s).map(|_| crate::StreamOptions {
        // The usage chunk becomes message_delta's usage; the client never sees it.
        include_usage: Some(true),
        extra: Map::new(),
    });
    Ok(ChatRequest {
        model,
        messages,
        stream,
        stream_options,
        max_tokens,
        max_completion_tokens: None,
        extra,
    })
}

/// The turns of a Messages request read straight into canonical messages, without a
/// JSON tree: text blocks (breakpoints kept), tool uses, tool results with text, and
/// earlier thinking. Anything else, and anything wrong, is `None`: [`push_turn`]
/// reads it from the tree and names what is wrong. Both give the same messages for
/// what this accepts (tested below).
mod typed {
    use super::super::{nullable, split_object, string_or_seq};
    use super::{message_of, push_blocks, valid_cache_control};
    use crate::{Message, MessageContent};
    use serde::Deserialize;
    use serde_json::{Map, Value, json};
    use std::borrow::Cow;

    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Turn<'a> {
        #[serde(borrow)]
        role: Cow<'a, str>,
        #[serde(borrow)]
        content: Content<'a>,
    }

    enum Content<'a> {
        Text(String),
        Blocks(Vec<Block<'a>>),
    }
    string_or_seq!(Content, Blocks, Block);

    /// Any block: the fields of the kinds read here (others are ignored, as the tree
    /// ignores them).
    #[derive(Deserialize)]
    struct Block<'a> {
        #[serde(rename = "type", borrow)]
        kind: Cow<'a, str>,
        #[serde(default)]
        text: Option<String>,
        #[serde(default)]
        cache_control: Option<Value>,
        #[serde(default)]
        id: Option<String>,
        #[serde(default)]
        name: Option<String>,
        #[serde(default, deserialize_with = "nullable")]
        input: Option<Option<Value>>,
        #[serde(default)]
        tool_use_id: Option<String>,
        #[serde(default, borrow)]
        content: Option<Content<'a>>,
        #[serde(default, deserialize_with = "nullable")]
        is_error: Option<Option<bool>>,
    }

    /// The body's other fields and its turns as canonical messages, when every turn
    /// is one this reads.
    pub(super) fn read(body: &[u8]) -> Option<(Map<String, Value>, Vec<Message>)> {
        let (turns, object) = split_object::<Vec<Turn<'_>>>(body, "messages")?;
        let turns = turns.filter(|t| !t.is_empty())?;
        let mut messages = Vec::with_capacity(turns.len());
        for turn in turns {
            push_turn(&mut messages, turn)?;
        }
        Some((object, messages))
    }

    /// A text block's text and its breakpoint, checked.
    type Text = (String, Option<Value>);

    fn text(text: Option<String>, cache_control: Option<Value>) -> Option<Text> {
        match cache_control {
            Some(cc) if !valid_cache_control(&cc) => None,
            cc => Some((text?, cc)),
        }
    }

    /// Text blocks as the tree writes them: one unmarked text as a string, else text
    /// parts with their breakpoints.
    fn content(mut texts: Vec<Text>) -> MessageContent {
        if texts.len() == 1 && texts[0].1.is_none() {
            let (text, _) = texts.pop().unwrap_or_default();
            return MessageContent::Text(text);
        }
        let parts = texts
            .into_iter()
            .map(|(text, cc)| {
                let mut part = Map::new();
                part.insert("type".to_owned(), Value::String("text".to_owned()));
                part.insert("text".to_owned(), Value::String(text));
                if let Some(cc) = cc {
                    part.insert("cache_control".to_owned(), cc);
                }
                Value::Object(part)
            })
            .collect();
        MessageContent::Parts(parts)
    }

    fn push_turn(messages: &mut Vec<Message>, turn: Turn<'_>) -> Option<()> {
        let role = turn.role;
        if role != "user" && role != "assistant" {
            return None;
        }
        let blocks = match turn.content {
            Content::Text(text) => {
                messages.push(message_of(&role, MessageContent::Text(text)));
                return Some(());
            }
            Content::Blocks(blocks) => blocks,
        };
        let mut parts = Vec::with_capacity(blocks.len());
        let mut calls = Vec::new();
        for block in blocks {
            match (&*block.kind, &*role) {
                ("text", _) => parts.push(text(block.text, block.cache_control)?),
                ("tool_result", "user") => messages.push(tool_result(block)?),
                ("tool_use", "assistant") => {
                    let input = match block.input {
                        None => json!({}),
                        Some(Some(input)) if input.is_object() => input,
                        Some(_) => return None,
                    };
                    calls.push(json!({"id": block.id?, "type": "function",
                                      "function": {"name": block.name?,
                                                   "arguments": input.to_string()}}));
                }
                ("thinking" | "redacted_thinking", "assistant") => {}
                _ => return None,
            }
        }
        let content = (!parts.is_empty()).then(|| content(parts));
        push_blocks(messages, role.into_owned(), content, calls);
        Some(())
    }

    fn tool_result(block: Block<'_>) -> Option<Message> {
        let content = match block.content {
            None => MessageContent::Text(String::new()),
            Some(Content::Text(text)) => MessageContent::Text(text),
            Some(Content::Blocks(inner)) => {
                let mut parts = Vec::with_capacity(inner.len());
                for b in inner {
                    if b.kind != "text" {
                        return None;
                    }
                    parts.push(text(b.text, b.cache_control)?);
                }
                content(parts)
            }
        };
        let mut message = message_of("tool", content);
        message
            .extra
            .insert("tool_call_id".to_owned(), Value::String(block.tool_use_id?));
        match block.is_error {
            None | Some(Some(false)) => {}
            Some(Some(true)) => {
                message
                    .extra
                    .insert("is_error".to_owned(), Value::Bool(true));
            }
            Some(None) => return None,
        }
        match block.cache_control {
            None => {}
            Some(cc) if valid_cache_control(&cc) => {
                message.extra.insert("cache_control".to_owned(), cc);
            }
            Some(_) => return None,
        }
        Some(message)
    }
}

/// The message a turn's blocks make (after its tool results, which are messages of
/// their own): its content and its tool calls (`tool_calls`); nothing when it has
/// neither. Both readings of a request end a turn here.
fn push_blocks(
    messages: &mut Vec<Message>,
    role: String,
    content: Option<MessageContent>,
    calls: Vec<Value>,
) {
    if content.is_none() && calls.is_empty() {
        return;
    }
    let mut extra = Map::new();
    if !calls.is_empty() {
        extra.insert("tool_calls".to_owned(), Value::Array(calls));
    }
    messages.push(Message {
        role,
        content,
        extra,
    });
}

fn message_of(role: &str, content: MessageContent) -> Message {
    Message {
        role: role.to_owned(),
        content: Some(content),
        extra: Map::new(),
    }
}

fn block_type<'a>(block: &'a Value, at: &str) -> Result<&'a str, ApiError> {
    if !block.is_object() {
        return Err(invalid(
            at,
            format!("a content block is an object, not {}", kind(block)),
        ));
    }
    block
        .get("type")
        .and_then(Value::as_str)
        .ok_or_else(|| invalid(format!("{at}.type"), "Field required"))
}

/// `cache_control` of a block, checked: `{"type": "ephemeral"}` with an optional `ttl`.
fn cache_control(block: &Map<String, Value>, at: &str) -> Result<Option<Value>, ApiError> {
    let Some(cc) = block.get("cache_control") else {
        return Ok(None);
    };
    if cc.is_null() {
        return Ok(None);
    }
    if !valid_cache_control(cc) {
        return Err(invalid(
            format!("{at}.cache_control"),
            "must be {\"type\": \"ephemeral\"} with an optional ttl of `5m` or `1h`",
        ));
    }
    Ok(Some(cc.clone()))
}

/// `{"type": "ephemeral"}` with an optional `ttl` of `5m` or `1h`.
fn valid_cache_control(cc: &Value) -> bool {
    cc.get("type").and_then(Value::as_str) == Some("ephemeral")
        && cc
            .get("ttl")
            .is_none_or(|t| matches!(t.as_str(), Some("5m" | "1h")))
}

/// A text block as a text part, keeping its breakpoint (its text moved, not copied).
fn text_part(block: Value, at: &str) -> Result<Value, ApiError> {
    let Value::Object(mut block) = block else {
        return Err(invalid(at, "a text block is an object"));
    };
    let Some(Value::String(text)) = block.remove("text") else {
        return Err(invalid(
            format!("{at}.text"),
            "a text block needs `text` as a string",
        ));
    };
    let mut part = Map::new();
    part.insert("type".to_owned(), Value::String("text".to_owned()));
    part.insert("text".to_owned(), Value::String(text));
    if let Some(cc) = cache_control(&block, at)? {
        part.insert("cache_control".to_owned(), cc);
    }
    Ok(Value::Object(part))
}

/// An image block as an `image_url` part (base64 as a data URL).
fn image_part(block: &Map<String, Value>, at: &str) -> Result<Value, ApiError> {
    let source = block
        .get("source")
        .ok_or_else(|| invalid(format!("{at}.source"), "Field required"))?;
    let url = match source.get("type").and_then(Value::as_str) {
        Some("base64") => {
            let media = source.get("media_type").and_then(Value::as_str);
            let data = source.get("data").and_then(Value::as_str);
            match (media, data) {
                (Some(m @ ("image/jpeg" | "image/png" | "image/gif" | "image/webp")), Some(d)) => {
                    format!("data:{m};base64,{d}")
                }
                _ => {
                    return Err(invalid(
                        format!("{at}.source"),
                        "a base64 image needs media_type (image/jpeg, image/png, image/gif, \
                         image/webp) and data",
                    ));
                }
            }
        }
        Some("url") => source
            .get("url")
            .and_then(Value::as_str)
            .ok_or_else(|| invalid(format!("{at}.source.url"), "Field required"))?
            .to_owned(),
        _ => {
            return Err(invalid(
                format!("{at}.source.type"),
                "images from `base64` or `url` sources can be carried; a `file` source cannot",
            ));
        }
    };
    let mut part = json!({"type": "image_url", "image_url": {"url": url}});
    if let Some(cc) = cache_control(block, at)? {
        part["cache_control"] = cc;
    }
    Ok(part)
}

/// A document block: a base64 PDF as a `file` part, plain text as text parts.
fn document_parts(
    block: &Map<String, Value>,
    at: &str,
    parts: &mut Vec<Value>,
) -> Result<(), ApiError> {
    let source = block
        .get("source")
        .ok_or_else(|| invalid(format!("{at}.source"), "Field required"))?;
    let cc = cache_control(block, at)?;
    let title = block.get("title").and_then(Value::as_str);
    let mut part = match source.get("type").and_then(Value::as_str) {
        Some("base64")
            if source.get("media_type").and_then(Value::as_str) == Some("application/pdf") =>
        {
            let data = source
                .get("data")
                .and_then(Value::as_str)
                .ok_or_else(|| invalid(format!("{at}.source.data"), "Field required"))?;
            json!({"type": "file", "file": {
                "filename": title.unwrap_or("document.pdf"),
                "file_data": format!("data:application/pdf;base64,{data}"),
            }})
        }
        Some("text") => {
            let data = source
                .get("data")
                .and_then(Value::as_str)
                .ok_or_else(|| invalid(format!("{at}.source.data"), "Field required"))?;
            json!({"type": "text", "text": data})
        }
        Some("content") => {
            let Some(Value::Array(blocks)) = source.get("content") else {
                return Err(invalid(
                    format!("{at}.source.content"),
                    "must be an array of text or image blocks",
                ));
            };
            for (j, inner) in blocks.iter().enumerate() {
                let inner_at = format!("{at}.source.content.{j}");
                match block_type(inner, &inner_at)? {
                    "text" => parts.push(text_part(inner.clone(), &inner_at)?),
                    "image" => parts.push(image_part(
                        inner.as_object().unwrap_or(&Map::new()),
                        &inner_at,
                    )?),
                    other => {
                        return Err(invalid(
                            format!("{inner_at}.type"),
                            format!("document content is text or image blocks, not `{other}`"),
                        ));
                    }
                }
            }
            if let (Some(cc), Some(last)) = (cc, parts.last_mut()) {
                last["cache_control"] = cc;
            }
            return Ok(());
        }
        _ => {
            return Err(invalid(
                format!("{at}.source.type"),
                "documents from a base64 PDF, text or content can be carried; a url or file \
                 source cannot",
            ));
        }
    };
    if let Some(cc) = cc {
        part["cache_control"] = cc;
    }
    parts.push(part);
    Ok(())
}

/// One Messages turn as canonical messages: a user turn's tool results become `tool`
/// messages ahead of what else it says; an assistant turn's tool uses become
/// `tool_calls`.
fn push_turn(messages: &mut Vec<Message>, turn: Value, i: usize) -> Result<(), ApiError> {
    let at = format!("messages.{i}");
    let Value::Object(mut turn) = turn else {
        return Err(invalid(
            at,
            format!("a message is an object, not {}", kind(&turn)),
        ));
    };
    let role = match turn.remove("role") {
        Some(Value::String(r)) if r == "user" || r == "assistant" => r,
        Some(r) => {
            return Err(invalid(
                format!("{at}.role"),
                format!(
                    "must be `user` or `assistant` (got {r}); the system prompt goes in `system`"
                ),
            ));
        }
        None => return Err(invalid(format!("{at}.role"), "Field required")),
    };
    let blocks = match turn.remove("content") {
        Some(Value::String(text)) => {
            messages.push(message_of(&role, MessageContent::Text(text)));
            return Ok(());
        }
        Some(Value::Array(blocks)) => blocks,
        Some(v) => {
            return Err(invalid(
                format!("{at}.content"),
                format!(
                    "must be a string or an array of content blocks, not {}",
                    kind(&v)
                ),
            ));
        }
        None => return Err(invalid(format!("{at}.content"), "Field required")),
    };
    if let Some(other) = turn.keys().next() {
        return Err(invalid(
            format!("{at}.{other}"),
            "Extra inputs are not permitted",
        ));
    }
    let mut parts = Vec::with_capacity(blocks.len());
    let mut calls = Vec::new();
    for (j, block) in blocks.into_iter().enumerate() {
        let at = format!("{at}.content.{j}");
        let kind = block_type(&block, &at)?.to_owned();
        if kind == "text" {
            parts.push(text_part(block, &at)?);
            continue;
        }
        let Value::Object(mut object) = block else {
            continue;
        };
        match (kind.as_str(), role.as_str()) {
            ("image", "user") => parts.push(image_part(&object, &at)?),
            ("document", "user") => document_parts(&object, &at, &mut parts)?,
            ("tool_result", "user") => messages.push(tool_result(&mut object, &at)?),
            ("tool_use", "assistant") => calls.push(tool_call(&object, &at)?),
            // Earlier turns' thinking: not part of the context a model reads again.
            ("thinking" | "redacted_thinking", "assistant") => {}
            (kind, role) => {
                return Err(invalid(
                    format!("{at}.type"),
                    format!(
                        "a `{kind}` block cannot be carried in a {role} message to a Chat \
                         Completions upstream (blocks: text, image, document, tool_use, \
                         tool_result, thinking)"
                    ),
                ));
            }
        }
    }
    let content = (!parts.is_empty()).then(|| simplest(parts));
    push_blocks(messages, role, content, calls);
    Ok(())
}

/// Text parts without breakpoints as one string; anything else as parts.
fn simplest(parts: Vec<Value>) -> MessageContent {
    let plain = parts.iter().all(|p| {
        p.get("type").and_then(Value::as_str) == Some("text") && p.get("cache_control").is_none()
    });
    if plain
        && parts.len() == 1
        && let Some(text) = parts[0].get("text").and_then(Value::as_str)
    {
        return MessageContent::Text(text.to_owned());
    }
    MessageContent::Parts(parts)
}

fn tool_result(block: &mut Map<String, Value>, at: &str) -> Result<Message, ApiError> {
    let id = block
        .get("tool_use_id")
        .and_then(Value::as_str)
        .ok_or_else(|| invalid(format!("{at}.tool_use_id"), "Field required"))?;
    let id = id.to_owned();
    let content = match block.remove("content") {
        None | Some(Value::Null) => MessageContent::Text(String::new()),
        Some(Value::String(s)) => MessageContent::Text(s),
        Some(Value::Array(inner)) => {
            let mut parts = Vec::with_capacity(inner.len());
            for (k, b) in inner.into_iter().enumerate() {
                let inner_at = format!("{at}.content.{k}");
                match block_type(&b, &inner_at)? {
                    "text" => parts.push(text_part(b, &inner_at)?),
                    other => {
                        return Err(invalid(
                            format!("{inner_at}.type"),
                            format!(
                                "a tool result to a Chat Completions upstream carries text, not \
                                 `{other}`"
                            ),
                        ));
                    }
                }
            }
            simplest(parts)
        }
        Some(v) => {
            return Err(invalid(
                format!("{at}.content"),
                format!("must be a string or an array of blocks, not {}", kind(&v)),
            ));
        }
    };
    let mut message = message_of("tool", content);
    message
        .extra
        .insert("tool_call_id".to_owned(), Value::String(id));
    if let Some(error) = block.get("is_error") {
        if !error.is_boolean() {
            return Err(invalid(format!("{at}.is_error"), "must be a boolean"));
        }
        if error == &Value::Bool(true) {
            // Chat Completions has no error flag on tool messages: said in the text.
            message
                .extra
                .insert("is_error".to_owned(), Value::Bool(true));
        }
    }
    if let Some(cc) = cache_control(block, at)? {
        message.extra.insert("cache_control".to_owned(), cc);
    }
    Ok(message)
}

fn tool_call(block: &Map<String, Value>, at: &str) -> Result<Value, ApiError> {
    let id = block.get("id").and_then(Value::as_str);
    let name = block.get("name").and_then(Value::as_str);
    let (Some(id), Some(name)) = (id, name) else {
        return Err(invalid(
            at,
            "a tool_use block needs `id` and `name` as strings",
        ));
    };
    let input = block.get("input").cloned().unwrap_or_else(|| json!({}));
    if !input.is_object() {
        return Err(invalid(format!("{at}.input"), "must be an object"));
    }
    Ok(json!({"id": id, "type": "function",
              "function": {"name": name, "arguments": input.to_string()}}))
}

fn translate_tools(tools: Value) -> Result<Value, ApiError> {
    let Value::Array(tools) = tools else {
        return Err(invalid("tools", "must be an array"));
    };
    let mut out = Vec::with_capacity(tools.len());
    for (i, tool) in tools.into_iter().enumerate() {
        let at = format!("tools.{i}");
        let Value::Object(tool) = tool else {
            return Err(invalid(at, "a tool is an object"));
        };
        if let Some(kind) = tool.get("type").and_then(Value::as_str)
            && kind != "custom"
        {
            return Err(invalid(
                format!("{at}.type"),
                format!(
                    "`{kind}` is a server tool; only client tools (name, description, \
                     input_schema) can be carried to a Chat Completions upstream"
                ),
            ));
        }
        let name = tool.get("name").and_then(Value::as_str);
        let valid = name.is_some_and(|n| {
            (1..=64).contains(&n.len())
                && n.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
        });
        if !valid {
            return Err(invalid(
                format!("{at}.name"),
                "must be 1 to 64 letters, digits, `_` or `-`",
            ));
        }
        let schema = tool
            .get("input_schema")
            .filter(|s| s.is_object())
            .ok_or_else(|| invalid(format!("{at}.input_schema"), "must be a JSON Schema object"))?;
        let mut function = json!({"name": name, "parameters": schema});
        if let Some(description) = tool.get("description") {
            if !description.is_string() {
                return Err(invalid(format!("{at}.description"), "must be a string"));
            }
            function["description"] = description.clone();
        }
        let mut translated = json!({"type": "function", "function": function});
        if let Some(cc) = cache_control(&tool, &at)? {
            translated["cache_control"] = cc;
        }
        out.push(translated);
    }
    Ok(Value::Array(out))
}

fn translate_tool_choice(choice: Value, extra: &mut Map<String, Value>) -> Result<(), ApiError> {
    let translated = match choice.get("type").and_then(Value::as_str) {
        Some("auto") => json!("auto"),
        Some("any") => json!("required"),
        Some("none") => json!("none"),
        Some("tool") => {
            let name = choice
                .get("name")
                .and_then(Value::as_str)
                .ok_or_else(|| invalid("tool_choice.name", "Field required"))?;
            json!({"type": "function", "function": {"name": name}})
        }
        _ => {
            return Err(invalid(
                "tool_choice.type",
                "must be `auto`, `any`, `tool` or `none`",
            ));
        }
    };
    match choice.get("disable_parallel_tool_use") {
        None | Some(Value::Null) => {}
        Some(Value::Bool(disable)) => {
            extra.insert("parallel_tool_calls".to_owned(), Value::Bool(!disable));
        }
        Some(_) => {
            return Err(invalid(
                "tool_choice.disable_parallel_tool_use",
                "must be a boolean",
            ));
        }
    }
    extra.insert("tool_choice".to_owned(), translated);
    Ok(())
}

/// Anthropic's `stop_reason` for a Chat Completions `finish_reason`, and the stop
/// sequence that ended it when the upstream says which (vLLM's `stop_reason`).
fn stop_reason(choice: &Value) -> (Option<&'static str>, Option<String>) {
    stop_of(
        choice.get("finish_reason").and_then(Value::as_str),
        choice.get("stop_reason").and_then(Value::as_str),
    )
}

/// [`stop_reason`] from the finish reason and the matched stop string.
fn stop_of(finish: Option<&str>, matched: Option<&str>) -> (Option<&'static str>, Option<String>) {
    let reason = match finish {
        None => return (None, None),
        Some("stop") if matched.is_some() => "stop_sequence",
        Some("stop") => "end_turn",
        Some("length") => "max_tokens",
        Some("tool_calls" | "function_call") => "tool_use",
        Some("content_filter") => "refusal",
        Some(_) => "end_turn",
    };
    let sequence = matched
        .filter(|_| reason == "stop_sequence")
        .map(str::to_owned);
    (Some(reason), sequence)
}

/// Messages usage from Chat Completions usage: `input_tokens` counts what was not
/// read from the prompt cache.
fn usage(usage: Option<&Value>) -> Value {
    use serde::Deserialize;
    let usage = usage
        .and_then(|u| UsageIn::deserialize(u).ok())
        .unwrap_or_default();
    serde_json::to_value(UsageOut::of(&usage)).unwrap_or(Value::Null)
}

/// `msg_…` from a completion id.
fn message_id(id: Option<&Value>) -> String {
    let id = id.and_then(Value::as_str).unwrap_or("");
    format!("msg_{}", id.strip_prefix("chatcmpl-").unwrap_or(id))
}

/// A tool call's arguments as the input object (an object even when the model wrote
/// something else: its text under `_raw`).
fn tool_input(arguments: Option<&str>) -> Value {
    let raw = arguments.unwrap_or("");
    if raw.trim().is_empty() {
        return json!({});
    }
    match serde_json::from_str::<Value>(raw) {
        Ok(v @ Value::Object(_)) => v,
        _ => json!({"_raw": raw}),
    }
}

/// A whole completion as a Messages `message`, read into borrowed fields and written
/// straight out (no JSON tree is built either way).
fn message(body: &[u8]) -> serde_json::Result<Vec<u8>> {
    let completion: Completion<'_> = serde_json::from_slice(body)?;
    let choice = completion.choices.into_iter().next().unwrap_or_default();
    let message = choice.message.unwrap_or_default();
    let mut content = Vec::new();
    if let Some(thinking) = message
        .reasoning_content
        .or(message.reasoning)
        .filter(|t| !t.is_empty())
    {
        content.push(Block::Thinking {
            thinking,
            signature: "",
        });
    }
    if let Some(text) = message.content.filter(|t| !t.is_empty()) {
        content.push(Block::Text { text });
    }
    for call in message.tool_calls.unwrap_or_default() {
        let function = call.function.unwrap_or_default();
        content.push(Block::ToolUse {
            id: call.id.unwrap_or_default(),
            name: function.name.unwrap_or_default(),
            input: tool_input(function.arguments.as_deref()),
        });
    }
    let matched = choice.stop_reason.as_ref().and_then(Value::as_str);
    let (reason, sequence) = stop_of(choice.finish_reason.as_deref(), matched);
    let id = completion.id.unwrap_or_default();
    serde_json::to_vec(&MessageOut {
        id: format!("msg_{}", id.strip_prefix("chatcmpl-").unwrap_or(&id)),
        kind: "message",
        role: "assistant",
        model: completion.model,
        content,
        stop_reason: reason.unwrap_or("end_turn"),
        stop_sequence: sequence,
        usage: completion
            .usage
            .map(|u| UsageOut::of(&u))
            .unwrap_or_default(),
    })
}

#[derive(serde::Serialize)]
struct MessageOut<'a> {
    id: String,
    #[serde(rename = "type")]
    kind: &'static str,
    role: &'static str,
    model: Option<std::borrow::Cow<'a, str>>,
    content: Vec<Block<'a>>,
    stop_reason: &'static str,
    stop_sequence: Option<String>,
    usage: UsageOut,
}

#[derive(serde::Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum Block<'a> {
    Thinking {
        thinking: std::borrow::Cow<'a, str>,
        signature: &'static str,
    },
    Text {
        text: std::borrow::Cow<'a, str>,
    },
    ToolUse {
        id: std::borrow::Cow<'a, str>,
        name: std::borrow::Cow<'a, str>,
        input: Value,
    },
}

/// Messages usage: `input_tokens` counts what was neither read from nor written to
/// the prompt cache.
#[derive(serde::Serialize, Default)]
struct UsageOut {
    input_tokens: u64,
    output_tokens: u64,
    cache_read_input_tokens: u64,
    cache_creation_input_tokens: u64,
}

impl UsageOut {
    fn of(usage: &UsageIn) -> UsageOut {
        let details = usage.prompt_tokens_details.as_ref();
        let read = details.and_then(|d| d.cached_tokens).unwrap_or(0);
        let written = details.and_then(|d| d.cache_write_tokens).unwrap_or(0);
        UsageOut {
            input_tokens: usage
                .prompt_tokens
                .unwrap_or(0)
                .saturating_sub(read.saturating_add(written)),
            output_tokens: usage.completion_tokens.unwrap_or(0),
            cache_read_input_tokens: read,
            cache_creation_input_tokens: written,
        }
    }
}

/// The reasoning text of a message or delta (`reasoning_content`, vLLM's and
/// DeepSeek's name, or `reasoning`).
fn reasoning(v: &Value) -> Option<&str> {
    ["reasoning_content", "reasoning"]
        .iter()
        .find_map(|k| v.get(*k).and_then(Value::as_str))
        .filter(|t| !t.is_empty())
}

/// The content block a stream has open.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Open {
    Text,
    Thinking,
    /// A tool call, by its index among the chunk's tool calls.
    Tool(u64),
}

/// A text delta event as written.
#[derive(serde::Serialize)]
struct TextDeltaOut<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    index: u32,
    delta: TextOut<'a>,
}

#[derive(serde::Serialize)]
struct TextOut<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    text: &'a str,
}

/// Writes Chat Completions chunks as Messages events.
#[derive(Debug, Default)]
struct EventWriter {
    started: bool,
    open: Option<Open>,
    /// The next content block's index.
    next: u32,
    reason: Option<&'static str>,
    sequence: Option<String>,
    usage: Option<Value>,
    over: bool,
    /// The id of the tool call whose block is open.
    tool_id: Option<String>,
}

fn push_event(out: &mut String, name: &str, data: &Value) {
    out.push_str("event: ");
    out.push_str(name);
    out.push_str("\ndata: ");
    out.push_str(&data.to_string());
    out.push_str("\n\n");
}

impl EventWriter {
    fn start(&mut self, chunk: &Value, out: &mut String) {
        if self.started {
            return;
        }
        self.started = true;
        let message = json!({
            "id": message_id(chunk.get("id")), "type": "message", "role": "assistant",
            "model": chunk.get("model").cloned().unwrap_or(Value::Null),
            "content": [], "stop_reason": null, "stop_sequence": null,
            "usage": usage(None),
        });
        push_event(
            out,
            "message_start",
            &json!({"type": "message_start", "message": message}),
        );
    }

    fn close(&mut self, out: &mut String) {
        if self.open.take().is_some() {
            let index = self.next - 1;
            push_event(
                out,
                "content_block_stop",
                &json!({"type": "content_block_stop", "index": index}),
            );
        }
    }

    /// Opens `block` unless it is open already.
    fn open(&mut self, block: Open, first: Value, out: &mut String) {
        if self.open == Some(block) {
            return;
        }
        self.close(out);
        push_event(
            out,
            "content_block_start",
            &json!({"type": "content_block_start", "index": self.next, "content_block": first}),
        );
        self.open = Some(block);
        self.next += 1;
    }

    fn delta(&self, out: &mut String, delta: Value) {
        let index = self.next.saturating_sub(1);
        push_event(
            out,
            "content_block_delta",
            &json!({"type": "content_block_delta", "index": index, "delta": delta}),
        );
    }

    fn chunk(&mut self, chunk: &Value, out: &mut String) {
        self.start(chunk, out);
        if let Some(u) = chunk.get("usage").filter(|u| !u.is_null()) {
            self.usage = Some(u.clone());
        }
        let Some(choice) = chunk.pointer("/choices/0") else {
            return;
        };
        let delta = choice.get("delta").unwrap_or(&Value::Null);
        if let Some(thinking) = reasoning(delta) {
            self.open(
                Open::Thinking,
                json!({"type": "thinking", "thinking": "", "signature": ""}),
                out,
            );
            self.delta(out, json!({"type": "thinking_delta", "thinking": thinking}));
        }
        if let Some(text) = delta.get("content").and_then(Value::as_str)
            && !text.is_empty()
        {
            self.open(Open::Text, json!({"type": "text", "text": ""}), out);
            self.delta(out, json!({"type": "text_delta", "text": text}));
        }
        for call in delta
            .get("tool_calls")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let index = call.get("index").and_then(Value::as_u64).unwrap_or(0);
            let id = call.get("id").and_then(Value::as_str);
            // A new call: another index, or (from servers that number every call 0)
            // another id.
            let another = id.is_some_and(|id| self.tool_id.as_deref() != Some(id));
            if self.open != Some(Open::Tool(index)) || another {
                if self.open == Some(Open::Tool(index)) {
                    self.close(out);
                }
                self.tool_id = id.map(str::to_owned);
                let first = json!({
                    "type": "tool_use",
                    "id": call.get("id").and_then(Value::as_str).unwrap_or(""),
                    "name": call.pointer("/function/name").and_then(Value::as_str).unwrap_or(""),
                    "input": {},
                });
                self.open(Open::Tool(index), first, out);
            }
            if let Some(arguments) = call.pointer("/function/arguments").and_then(Value::as_str)
                && !arguments.is_empty()
            {
                self.delta(
                    out,
                    json!({"type": "input_json_delta", "partial_json": arguments}),
                );
            }
        }
        if let (Some(reason), sequence) = stop_reason(choice) {
            self.reason = Some(reason);
            self.sequence = sequence;
        }
    }

    fn finish(&mut self, out: &mut String) {
        if self.over {
            return;
        }
        self.over = true;
        self.start(&Value::Null, out);
        self.close(out);
        let delta = json!({"stop_reason": self.reason.unwrap_or("end_turn"),
                           "stop_sequence": self.sequence});
        push_event(
            out,
            "message_delta",
            &json!({"type": "message_delta", "delta": delta, "usage": usage(self.usage.as_ref())}),
        );
        push_event(out, "message_stop", &json!({"type": "message_stop"}));
    }
}

impl StreamTranslator for EventWriter {
    fn event(&mut self, data: &str, out: &mut String) {
        if self.over {
            return;
        }
        if data.trim() == "[DONE]" {
            self.finish(out);
            return;
        }
        if self.open == Some(Open::Text)
            && let Ok(chunk) = serde_json::from_str::<super::TextChunk<'_>>(data)
            && let Some(text) = chunk.only_text()
        {
            // The common event: more text for the open block, written without a tree.
            let event = TextDeltaOut {
                kind: "content_block_delta",
                index: self.next.saturating_sub(1),
                delta: TextOut {
                    kind: "text_delta",
                    text: &text,
                },
            };
            if let Ok(data) = serde_json::to_string(&event) {
                out.push_str("event: content_block_delta\ndata: ");
                out.push_str(&data);
                out.push_str("\n\n");
            }
            return;
        }
        let Ok(chunk) = serde_json::from_str::<Value>(data) else {
            return;
        };
        if let Some(error) = chunk.get("error") {
            // A terminal error: the stream ends with Anthropic's error event.
            self.over = true;
            let message = error
                .get("message")
                .and_then(Value::as_str)
                .or_else(|| error.as_str())
                .unwrap_or("the upstream failed");
            let kind = match error.get("code").and_then(Value::as_str) {
                Some("upstream_timeout") => "timeout_error",
                Some("unavailable") => "overloaded_error",
                _ => "api_error",
            };
            push_event(
                out,
                "error",
                &json!({"type": "error", "error": {"type": kind, "message": message}}),
            );
            return;
        }
        self.chunk(&chunk, out);
    }

    fn end(&mut self, out: &mut String) {
        if !self.over && self.started {
            // Ended without `[DONE]` or an error: say so rather than end cleanly.
            self.over = true;
            push_event(
                out,
                "error",
                &json!({"type": "error", "error": {"type": "api_error",
                        "message": "the upstream ended the stream early"}}),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dialect::same_reading;

    fn parse(body: Value) -> Result<ChatRequest, ApiError> {
        AnthropicMessages
            .parse(body.to_string().as_bytes(), None)
            .map(|(r, _)| r)
    }

    /// Pieces of Messages bodies: the blocks the typed reader takes and the ones it
    /// leaves to the tree (images, documents, nulls, wrong types, bad breakpoints).
    fn block() -> impl proptest::strategy::Strategy<Value = Value> {
        use proptest::prelude::*;
        let text = prop_oneof![
            6 => Just(json!("hi")),
            4 => Just(json!("two\nlines é")),
            1 => Just(json!("")),
            1 => Just(json!(null)),
            1 => Just(json!(3)),
        ];
        let cc = prop_oneof![
            8 => Just(None),
            3 => Just(Some(json!({"type": "ephemeral"}))),
            1 => Just(Some(json!({"type": "ephemeral", "ttl": "1h"}))),
            1 => Just(Some(json!({"type": "forever"}))),
            1 => Just(Some(json!(null))),
        ];
        let kind = prop_oneof![
            10 => Just(json!("text")),
            3 => Just(json!("tool_use")),
            3 => Just(json!("tool_result")),
            2 => Just(json!("thinking")),
            1 => Just(json!("image")),
            1 => Just(json!("document")),
            1 => Just(json!(null)),
        ];
        let inner = prop_oneof![
            4 => text.clone(),
            4 => proptest::collection::vec((text.clone(), cc.clone()), 0..3).prop_map(|v| {
                Value::Array(
                    v.into_iter()
                        .map(|(t, cc)| {
                            let mut b = json!({"type": "text", "text": t});
                            if let Some(cc) = cc {
                                b["cache_control"] = cc;
                            }
                            b
                        })
                        .collect(),
                )
            }),
            1 => Just(json!([{"type": "image", "source": {"type": "url", "url": "u"}}])),
            1 => Just(json!(null)),
        ];
        let input = prop_oneof![
            6 => Just(Some(json!({"city": "Paris"}))),
            2 => Just(None),
            1 => Just(Some(json!(null))),
            1 => Just(Some(json!([1]))),
        ];
        let error = prop_oneof![
            6 => Just(None),
            2 => Just(Some(json!(true))),
            2 => Just(Some(json!(false))),
            1 => Just(Some(json!(null))),
        ];
        let drops = proptest::collection::vec(proptest::bool::weighted(0.06), 3);
        (kind, text, cc, inner, input, error, drops).prop_map(
            |(kind, text, cc, inner, input, error, drops)| {
                let mut b = json!({"type": kind, "text": text, "id": "toolu_1", "name": "f",
                                   "tool_use_id": "toolu_1", "content": inner,
                                   "thinking": "hmm", "signature": "s",
                                   "source": {"type": "url", "url": "https://x/y.png"}});
                if let Some(cc) = cc {
                    b["cache_control"] = cc;
                }
                if let Some(input) = input {
                    b["input"] = input;
                }
                if let Some(error) = error {
                    b["is_error"] = error;
                }
                let object = b.as_object_mut().unwrap();
                for (k, drop) in ["text", "id", "tool_use_id"].iter().zip(drops) {
                    if drop {
                        object.remove(*k);
                    }
                }
                b
            },
        )
    }

    fn body() -> impl proptest::strategy::Strategy<Value = Value> {
        use proptest::prelude::*;
        let role = prop_oneof![
            8 => Just(json!("user")),
            8 => Just(json!("assistant")),
            1 => Just(json!("system")),
        ];
        let content = prop_oneof![
            2 => Just(json!("plain words")),
            1 => Just(json!(5)),
            8 => proptest::collection::vec(block(), 0..4).prop_map(Value::Array),
        ];
        let turn = (role, content, proptest::bool::weighted(0.05)).prop_map(|(r, c, extra)| {
            let mut t = json!({"role": r, "content": c});
            if extra {
                t["name"] = json!("x");
            }
            t
        });
        let extra = prop_oneof![
            Just(("temperature", json!(0.5))),
            Just(("temperature", json!(null))),
            Just(("temperature", json!(3))),
            Just(("stream", json!(true))),
            Just(("stream", json!(null))),
            Just(("system", json!("Be brief."))),
            Just((
                "system",
                json!([{"type": "text", "text": "Be brief.",
                                    "cache_control": {"type": "ephemeral"}}])
            )),
            Just(("stop_sequences", json!(["END"]))),
            Just(("metadata", json!({"user_id": "u1"}))),
            Just((
                "tools",
                json!([{"name": "f", "input_schema": {"type": "object"}}])
            )),
            Just(("tool_choice", json!({"type": "auto"}))),
            Just(("thinking", json!({"type": "disabled"}))),
            Just(("top_k", json!(0))),
            Just(("max_tokens", json!(null))),
            Just(("unknown_field", json!(1))),
        ];
        (
            proptest::collection::vec(turn, 0..4),
            proptest::collection::vec(extra, 0..3),
        )
            .prop_map(|(turns, extra)| {
                let mut body = json!({"model": "auto", "max_tokens": 64, "messages": turns});
                for (k, v) in extra {
                    body[k] = v;
                }
                body
            })
    }

    proptest::proptest! {
        #![proptest_config(proptest::test_runner::Config::with_cases(4000))]
        /// What the typed reader takes, the tree reads the same (or refuses the same);
        /// what it leaves, the tree reads or refuses.
        #[test]
        fn the_typed_reader_agrees_with_the_tree(body in body()) {
            let tree = translate(body.as_object().unwrap().clone(), true);
            if let Some((object, turns)) = typed::read(body.to_string().as_bytes()) {
                let fast = translate_with(object, true, Some(turns));
                proptest::prop_assert_eq!(same_reading(&fast, &tree), Ok(()), "{}", body);
            }
        }
    }

    #[test]
    fn an_agents_turns_are_read_by_the_typed_reader() {
        let body = json!({"model": "auto", "max_tokens": 64, "stream": true,
            "system": [{"type": "text", "text": "Be brief.", "cache_control": {"type": "ephemeral"}}],
            "messages": [
                {"role": "user", "content": [{"type": "text", "text": "Weather in Paris?"}]},
                {"role": "assistant", "content": [
                    {"type": "thinking", "thinking": "look it up", "signature": "s"},
                    {"type": "text", "text": "Checking."},
                    {"type": "tool_use", "id": "toolu_1", "name": "weather", "input": {"city": "Paris"}}]},
                {"role": "user", "content": [
                    {"type": "tool_result", "tool_use_id": "toolu_1", "is_error": true,
                     "content": [{"type": "text", "text": "18C"}]},
                    {"type": "text", "text": "And tomorrow?", "cache_control": {"type": "ephemeral"}}]}]});
        let (object, turns) = typed::read(body.to_string().as_bytes()).expect("typed");
        let fast = translate_with(object, true, Some(turns));
        let tree = translate(body.as_object().unwrap().clone(), true);
        assert_eq!(same_reading(&fast, &tree), Ok(()));
        let fast = fast.unwrap();
        let m = serde_json::to_value(&fast.messages).unwrap();
        assert_eq!(m[0]["content"][0]["cache_control"]["type"], "ephemeral");
        assert_eq!(m[1]["content"], "Weather in Paris?");
        assert_eq!(m[2]["content"], "Checking.");
        assert_eq!(
            m[2]["tool_calls"][0]["function"]["arguments"],
            r#"{"city":"Paris"}"#
        );
        assert_eq!(m[3]["role"], "tool");
        assert_eq!(m[3]["is_error"], true);
        assert_eq!(m[4]["content"][0]["cache_control"]["type"], "ephemeral");
    }

    fn param(body: Value) -> String {
        let e = parse(body).unwrap_err();
        assert_eq!(e.kind, ErrorKind::InvalidRequest);
        assert!(
            e.message.starts_with(e.param.as_deref().unwrap()),
            "{}",
            e.message
        );
        e.param.unwrap()
    }

    #[test]
    fn a_full_request_becomes_the_canonical_one() {
        let request = parse(json!({
            "model": "auto", "max_tokens": 64, "stream": true, "temperature": 0.5, "top_k": 5,
            "stop_sequences": ["END"], "metadata": {"user_id": "u-1"},
            "system": [{"type": "text", "text": "Be brief.", "cache_control": {"type": "ephemeral"}}],
            "tools": [{"name": "get_weather", "description": "Weather", "input_schema": {"type": "object"},
                       "cache_control": {"type": "ephemeral", "ttl": "1h"}}],
            "tool_choice": {"type": "any", "disable_parallel_tool_use": true},
            "messages": [
                {"role": "user", "content": [
                    {"type": "text", "text": "Weather in Paris?"},
                    {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "AAA"}},
                    {"type": "document", "source": {"type": "base64", "media_type": "application/pdf", "data": "JVB"}, "title": "a.pdf"}]},
                {"role": "assistant", "content": [
                    {"type": "thinking", "thinking": "hmm", "signature": "s"},
                    {"type": "text", "text": "Checking."},
                    {"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {"city": "Paris"}}]},
                {"role": "user", "content": [
                    {"type": "tool_result", "tool_use_id": "toolu_1", "content": "18C", "is_error": true},
                    {"type": "text", "text": "And tomorrow?", "cache_control": {"type": "ephemeral"}}]},
            ],
        }))
        .unwrap();
        let v = serde_json::to_value(&request).unwrap();
        assert_eq!(v["max_tokens"], 64);
        assert_eq!(v["stream_options"]["include_usage"], true);
        assert_eq!(v["stop"], json!(["END"]));
        assert_eq!(v["user"], "u-1");
        assert_eq!(v["top_k"], 5);
        assert_eq!(v["tool_choice"], "required");
        assert_eq!(v["parallel_tool_calls"], false);
        assert_eq!(
            v["tools"][0]["function"]["parameters"],
            json!({"type": "object"})
        );
        let roles: Vec<&str> = request.messages.iter().map(|m| m.role.as_str()).collect();
        assert_eq!(roles, ["system", "user", "assistant", "tool", "user"]);
        let m = &v["messages"];
        assert_eq!(m[0]["content"][0]["cache_control"]["type"], "ephemeral");
        assert_eq!(
            m[1]["content"][1]["image_url"]["url"],
            "data:image/png;base64,AAA"
        );
        assert_eq!(m[1]["content"][2]["file"]["filename"], "a.pdf");
        assert_eq!(
            m[2]["content"], "Checking.",
            "thinking from earlier turns is left out"
        );
        assert_eq!(
            m[2]["tool_calls"][0]["function"]["arguments"],
            r#"{"city":"Paris"}"#
        );
        assert_eq!(m[3]["tool_call_id"], "toolu_1");
        assert_eq!(m[4]["content"][0]["cache_control"]["type"], "ephemeral");
        assert!(request.has_anthropic_markers());
        // What a Chat Completions upstream receives: no breakpoints, the error said.
        let up: Value = serde_json::from_slice(&request.upstream_body().unwrap()).unwrap();
        assert!(!up.to_string().contains("cache_control"), "{up}");
        assert!(!up.to_string().contains("is_error"), "{up}");
        assert_eq!(up["messages"][3]["content"], "Error: 18C");
        assert_eq!(up["messages"][1]["content"][0]["text"], "Weather in Paris?");
    }

    #[test]
    fn each_bad_request_names_its_field() {
        let base = || json!({"model": "m", "max_tokens": 8, "messages": [{"role": "user", "content": "hi"}]});
        assert!(parse(base()).is_ok());
        let with = |k: &str, v: Value| {
            let mut b = base();
            b[k] = v;
            b
        };
        let without = |k: &str| {
            let mut b = base();
            b.as_object_mut().unwrap().remove(k);
            b
        };
        assert_eq!(param(without("max_tokens")), "max_tokens");
        assert_eq!(param(without("model")), "model");
        assert_eq!(param(with("max_tokens", json!(0))), "max_tokens");
        assert_eq!(param(with("messages", json!([]))), "messages");
        assert_eq!(
            param(with("frequency_penalty", json!(1))),
            "frequency_penalty"
        );
        assert_eq!(param(with("temperature", json!(1.5))), "temperature");
        assert_eq!(
            param(with(
                "messages",
                json!([{"role": "system", "content": "x"}])
            )),
            "messages.0.role"
        );
        assert_eq!(
            param(with(
                "messages",
                json!([{"role": "user", "content": [{"type": "tool_use", "id": "a", "name": "b"}]}])
            )),
            "messages.0.content.0.type"
        );
        assert_eq!(
            param(with(
                "messages",
                json!([{"role": "user", "content": [{"type": "image", "source": {"type": "file", "file_id": "f"}}]}])
            )),
            "messages.0.content.0.source.type"
        );
        assert_eq!(
            param(with(
                "messages",
                json!([{"role": "user", "content": [{"type": "text", "text": "x", "cache_control": {"type": "forever"}}]}])
            )),
            "messages.0.content.0.cache_control"
        );
        assert_eq!(
            param(with(
                "tools",
                json!([{"type": "web_search_20250305", "name": "web_search"}])
            )),
            "tools.0.type"
        );
        assert_eq!(
            param(with("tools", json!([{"name": "f"}]))),
            "tools.0.input_schema"
        );
        assert_eq!(
            param(with(
                "thinking",
                json!({"type": "enabled", "budget_tokens": 2048})
            )),
            "thinking"
        );
        assert!(parse(with("thinking", json!({"type": "disabled"}))).is_ok());
        assert_eq!(
            param(with("tool_choice", json!({"type": "tool"}))),
            "tool_choice.name"
        );
        assert_eq!(
            param(with("metadata", json!({"user_id": 5}))),
            "metadata.user_id"
        );
        let e = AnthropicMessages.parse(b"{\"model\":", None).unwrap_err();
        assert!(e.message.starts_with("malformed JSON"), "{}", e.message);
        // count_tokens needs no max_tokens, and does not stream.
        assert!(
            AnthropicMessages
                .parse_count(without("max_tokens").to_string().as_bytes())
                .is_ok()
        );
    }

    #[test]
    fn a_completion_becomes_a_message_with_cache_reads_in_its_usage() {
        let completion = json!({
            "id": "chatcmpl-7", "object": "chat.completion", "model": "m",
            "choices": [{"index": 0, "finish_reason": "tool_calls", "message": {
                "role": "assistant", "content": "Let me check.", "reasoning_content": "think",
                "tool_calls": [{"id": "call_1", "type": "function",
                                "function": {"name": "get_weather", "arguments": "{\"city\":\"Paris\"}"}}]}}],
            "usage": {"prompt_tokens": 100, "completion_tokens": 9, "total_tokens": 109,
                      "prompt_tokens_details": {"cached_tokens": 60}},
        });
        let out = AnthropicMessages
            .whole(completion.to_string().as_bytes())
            .unwrap();
        let v: Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(v["id"], "msg_7");
        assert_eq!(v["type"], "message");
        assert_eq!(v["stop_reason"], "tool_use");
        let kinds: Vec<&str> = v["content"]
            .as_array()
            .unwrap()
            .iter()
            .map(|b| b["type"].as_str().unwrap())
            .collect();
        assert_eq!(kinds, ["thinking", "text", "tool_use"]);
        assert_eq!(v["content"][2]["input"]["city"], "Paris");
        assert_eq!(v["usage"]["input_tokens"], 40);
        assert_eq!(v["usage"]["cache_read_input_tokens"], 60);
        assert_eq!(v["usage"]["output_tokens"], 9);
        let stop = |finish: &str, matched: Value| {
            let c = json!({"choices": [{"finish_reason": finish, "stop_reason": matched, "message": {"content": "x"}}]});
            let v: Value =
                serde_json::from_slice(&AnthropicMessages.whole(c.to_string().as_bytes()).unwrap())
                    .unwrap();
            (
                v["stop_reason"].as_str().unwrap().to_owned(),
                v["stop_sequence"].clone(),
            )
        };
        assert_eq!(stop("length", Value::Null).0, "max_tokens");
        assert_eq!(stop("stop", Value::Null).0, "end_turn");
        assert_eq!(
            stop("stop", json!("END")),
            ("stop_sequence".to_owned(), json!("END"))
        );
        assert!(AnthropicMessages.whole(b"<html>").is_err());
    }

    fn events(chunks: &[Value], done: bool) -> Vec<(String, Value)> {
        let mut writer = AnthropicMessages.stream().unwrap();
        let mut out = String::new();
        for chunk in chunks {
            writer.event(&chunk.to_string(), &mut out);
        }
        if done {
            writer.event("[DONE]", &mut out);
        }
        writer.end(&mut out);
        out.split("\n\n")
            .filter(|e| !e.is_empty())
            .map(|e| {
                let (name, data) = e.split_once('\n').unwrap();
                let name = name.strip_prefix("event: ").unwrap().to_owned();
                let data: Value =
                    serde_json::from_str(data.strip_prefix("data: ").unwrap()).unwrap();
                assert_eq!(data["type"], name.as_str());
                (name, data)
            })
            .collect()
    }

    #[test]
    fn a_stream_of_chunks_becomes_message_events() {
        let chunk = |delta: Value, finish: Value| json!({"id": "chatcmpl-9", "model": "m", "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]});
        let got = events(
            &[
                chunk(json!({"role": "assistant", "content": "Hel"}), Value::Null),
                chunk(json!({"content": "lo"}), Value::Null),
                chunk(
                    json!({"tool_calls": [{"index": 0, "id": "call_1", "type": "function", "function": {"name": "f", "arguments": ""}}]}),
                    Value::Null,
                ),
                chunk(
                    json!({"tool_calls": [{"index": 0, "function": {"arguments": "{\"a\":"}}]}),
                    Value::Null,
                ),
                chunk(
                    json!({"tool_calls": [{"index": 0, "function": {"arguments": "1}"}}]}),
                    Value::Null,
                ),
                chunk(json!({}), json!("tool_calls")),
                json!({"id": "chatcmpl-9", "model": "m", "choices": [],
                       "usage": {"prompt_tokens": 50, "completion_tokens": 7, "prompt_tokens_details": {"cached_tokens": 32}}}),
            ],
            true,
        );
        let names: Vec<&str> = got.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(
            names,
            [
                "message_start",
                "content_block_start",
                "content_block_delta",
                "content_block_delta",
                "content_block_stop",
                "content_block_start",
                "content_block_delta",
                "content_block_delta",
                "content_block_stop",
                "message_delta",
                "message_stop"
            ]
        );
        assert_eq!(got[0].1["message"]["id"], "msg_9");
        assert_eq!(got[5].1["index"], 1);
        assert_eq!(got[5].1["content_block"]["name"], "f");
        let json: String = got
            .iter()
            .filter_map(|(_, d)| d["delta"]["partial_json"].as_str())
            .collect();
        assert_eq!(json, "{\"a\":1}");
        let delta = &got[9].1;
        assert_eq!(delta["delta"]["stop_reason"], "tool_use");
        assert_eq!(delta["usage"]["output_tokens"], 7);
        assert_eq!(delta["usage"]["input_tokens"], 18);
        assert_eq!(delta["usage"]["cache_read_input_tokens"], 32);
        // A terminal error, or a stream cut without [DONE], ends with an error event.
        let cut = events(&[chunk(json!({"content": "x"}), Value::Null)], false);
        assert_eq!(cut.last().unwrap().0, "error");
        let failed = events(
            &[
                chunk(json!({"content": "x"}), Value::Null),
                json!({"error": {"message": "upstream stalled", "code": "upstream_timeout"}}),
            ],
            false,
        );
        assert_eq!(failed.last().unwrap().1["error"]["type"], "timeout_error");
        assert_eq!(failed.iter().filter(|(n, _)| n == "error").count(), 1);
    }

    #[test]
    fn errors_take_anthropics_shape_with_the_field_named() {
        let gateway = ApiError::new(ErrorKind::InvalidRequest, "bad").with_param("max_tokens");
        let v: Value = serde_json::from_slice(
            &AnthropicMessages.error(400, gateway.body().to_string().as_bytes()),
        )
        .unwrap();
        assert_eq!(
            v,
            json!({"type": "error", "error": {"type": "invalid_request_error", "message": "max_tokens: bad"}})
        );
        let vllm =
            br#"{"object":"error","message":"too long","type":"BadRequestError","code":400}"#;
        let v: Value = serde_json::from_slice(&AnthropicMessages.error(400, vllm)).unwrap();
        assert_eq!(v["error"]["message"], "too long");
        let v: Value = serde_json::from_slice(&AnthropicMessages.error(503, b"down")).unwrap();
        assert_eq!(
            v["error"],
            json!({"type": "overloaded_error", "message": "down"})
        );
        assert_eq!(error_type(404), "not_found_error");
        assert_eq!(error_type(429), "rate_limit_error");
    }
}
