//! OpenAI Responses (`POST /v1/responses`): input items become the canonical Chat
//! Completions request; a canonical answer becomes a `response` object, a canonical
//! stream its `response.*` events. What the API keeps between calls
//! (`previous_response_id`, `store`, `GET`/`DELETE`) is the gateway's: it replaces a
//! `previous_response_id` by the items it stands for before [`OpenAiResponses`]
//! parses the body, and stores what [`ResponseContext`] writes.

use super::{Completion, TextChunk, UsageIn, invalid, kind, malformed};
use super::{Dialect, StreamTranslator};
use crate::{ApiError, ChatRequest, Conversation, ErrorKind, Message, MessageContent};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use serde_json::{Map, Value, json};

/// The OpenAI Responses API.
#[derive(Debug, Clone, Copy, Default)]
pub struct OpenAiResponses;

/// Request fields this dialect reads.
const FIELDS: [&str; 24] = [
    "model",
    "input",
    "instructions",
    "previous_response_id",
    "store",
    "stream",
    "stream_options",
    "tools",
    "tool_choice",
    "parallel_tool_calls",
    "max_output_tokens",
    "temperature",
    "top_p",
    "top_logprobs",
    "metadata",
    "user",
    "safety_identifier",
    "prompt_cache_key",
    "service_tier",
    "text",
    "reasoning",
    "truncation",
    "include",
    "background",
];

/// Fields a `response` object repeats from its request, with their values (JSON)
/// when the request left them out.
const ECHOED: [(&str, &str); 14] = [
    ("instructions", "null"),
    ("max_output_tokens", "null"),
    ("metadata", "{}"),
    ("parallel_tool_calls", "true"),
    ("previous_response_id", "null"),
    ("reasoning", r#"{"effort":null,"summary":null}"#),
    ("service_tier", r#""auto""#),
    ("store", "true"),
    ("temperature", "1.0"),
    ("text", r#"{"format":{"type":"text"}}"#),
    ("tool_choice", r#""auto""#),
    ("tools", "[]"),
    ("top_p", "1.0"),
    ("truncation", r#""disabled""#),
];

/// Fields a `response` object repeats only when the request set them.
const ECHOED_WHEN_SET: [&str; 4] = [
    "user",
    "safety_identifier",
    "prompt_cache_key",
    "top_logprobs",
];

impl Dialect for OpenAiResponses {
    fn name(&self) -> &'static str {
        "openai_responses"
    }

    fn parse(
        &self,
        body: &[u8],
        session: Option<&str>,
    ) -> Result<(ChatRequest, Conversation), ApiError> {
        let request = match typed::read(body) {
            // The input read without a tree; the rest checked as always.
            Some((object, input)) => translate_with(object, Some(input))?,
            None => {
                let object: Map<String, Value> =
                    serde_json::from_slice(body).map_err(|e| malformed(&e))?;
                translate(object)?
            }
        };
        let conversation = Conversation::from_chat(&request, session);
        Ok((request, conversation))
    }

    fn translates(&self) -> bool {
        true
    }
}

/// A Responses body (its `previous_response_id` already replaced by the items it
/// stands for) as the canonical request.
fn translate(body: Map<String, Value>) -> Result<ChatRequest, ApiError> {
    translate_with(body, None)
}

/// [`translate`], with the input items already read as messages (`input`) when they
/// were.
fn translate_with(
    mut body: Map<String, Value>,
    input: Option<Vec<Message>>,
) -> Result<ChatRequest, ApiError> {
    if let Some(unknown) = body.keys().find(|k| !FIELDS.contains(&k.as_str())) {
        return Err(invalid(
            unknown.clone(),
            "Unrecognized request argument supplied",
        ));
    }
    if body
        .remove("previous_response_id")
        .is_some_and(|v| !v.is_null())
    {
        return Err(invalid(
            "previous_response_id",
            "is resolved by the gateway's stored responses, which are not available here",
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
        None => return Err(invalid("model", "Missing required parameter")),
    };
    let mut messages = Vec::new();
    match body.remove("instructions") {
        None | Some(Value::Null) => {}
        Some(Value::String(s)) => messages.push(message("system", MessageContent::Text(s))),
        Some(v) => {
            return Err(invalid(
                "instructions",
                format!("must be a string, not {}", kind(&v)),
            ));
        }
    }
    match (input, body.remove("input")) {
        (Some(input), _) => messages.extend(input),
        (None, Some(Value::String(s))) => {
            messages.push(message("user", MessageContent::Text(s)));
        }
        (None, Some(Value::Array(items))) => {
            for (i, item) in items.into_iter().enumerate() {
                push_item(&mut messages, item, i)?;
            }
        }
        (None, None | Some(Value::Null)) => {
            return Err(invalid("input", "Missing required parameter"));
        }
        (None, Some(v)) => {
            return Err(invalid(
                "input",
                format!("must be a string or an array of items, not {}", kind(&v)),
            ));
        }
    }
    if !messages.iter().any(|m| m.role != "system") {
        return Err(invalid("input", "is empty: send at least one item"));
    }
    let stream = match body.remove("stream") {
        None | Some(Value::Null) => None,
        Some(Value::Bool(b)) => Some(b),
        Some(v) => {
            return Err(invalid(
                "stream",
                format!("must be a boolean, not {}", kind(&v)),
            ));
        }
    };
    let max_completion_tokens = match body.remove("max_output_tokens") {
        None | Some(Value::Null) => None,
        Some(v) => Some(
            v.as_u64()
                .and_then(|n| u32::try_from(n).ok())
                .filter(|n| *n >= 1)
                .ok_or_else(|| {
                    invalid(
                        "max_output_tokens",
                        format!("must be a whole number ≥ 1 (got {v})"),
                    )
                })?,
        ),
    };
    let mut extra = Map::new();
    for field in ["temperature", "top_p"] {
        match body.remove(field) {
            None | Some(Value::Null) => {}
            Some(v @ Value::Number(_)) => {
                extra.insert(field.into(), v);
            }
            Some(v) => {
                return Err(invalid(
                    field,
                    format!("must be a number, not {}", kind(&v)),
                ));
            }
        }
    }
    match body.remove("top_logprobs") {
        None | Some(Value::Null) => {}
        Some(v) if v.as_u64().is_some_and(|n| n <= 20) => {
            extra.insert("logprobs".into(), Value::Bool(true));
            extra.insert("top_logprobs".into(), v);
        }
        Some(v) => {
            return Err(invalid(
                "top_logprobs",
                format!("must be a whole number from 0 to 20 (got {v})"),
            ));
        }
    }
    for field in ["user", "safety_identifier", "prompt_cache_key"] {
        match body.remove(field) {
            None | Some(Value::Null) => {}
            Some(v @ Value::String(_)) => {
                extra.insert(field.into(), v);
            }
            Some(v) => {
                return Err(invalid(
                    field,
                    format!("must be a string, not {}", kind(&v)),
                ));
            }
        }
    }
    match body.remove("service_tier") {
        None | Some(Value::Null) => {}
        Some(Value::String(t)) if ["auto", "default", "flex", "priority"].contains(&&*t) => {
            extra.insert("service_tier".into(), Value::String(t));
        }
        Some(v) => {
            return Err(invalid(
                "service_tier",
                format!("must be auto, default, flex or priority (got {v})"),
            ));
        }
    }
    match body.remove("parallel_tool_calls") {
        None | Some(Value::Null) => {}
        Some(v @ Value::Bool(_)) => {
            extra.insert("parallel_tool_calls".into(), v);
        }
        Some(v) => {
            return Err(invalid(
                "parallel_tool_calls",
                format!("must be a boolean, not {}", kind(&v)),
            ));
        }
    }
    if let Some(tools) = body.remove("tools").filter(|t| !t.is_null()) {
        extra.insert("tools".into(), translate_tools(tools)?);
    }
    match body.remove("tool_choice") {
        None | Some(Value::Null) => {}
        Some(Value::String(s)) if ["auto", "none", "required"].contains(&&*s) => {
            extra.insert("tool_choice".into(), Value::String(s));
        }
        Some(Value::Object(c)) if c.get("type").and_then(Value::as_str) == Some("function") => {
            let Some(name) = c.get("name").and_then(Value::as_str) else {
                return Err(invalid("tool_choice.name", "Missing required parameter"));
            };
            extra.insert(
                "tool_choice".into(),
                json!({"type": "function", "function": {"name": name}}),
            );
        }
        Some(v) => {
            return Err(invalid(
                "tool_choice",
                format!(
                    "must be auto, none, required or {{\"type\": \"function\", \"name\": …}} (got {v})"
                ),
            ));
        }
    }
    if let Some(text) = body.remove("text").filter(|t| !t.is_null()) {
        translate_text(text, &mut extra)?;
    }
    if let Some(reasoning) = body.remove("reasoning").filter(|r| !r.is_null()) {
        match reasoning.get("effort") {
            None | Some(Value::Null) => {}
            Some(Value::String(e)) => {
                extra.insert("reasoning_effort".into(), Value::String(e.clone()));
            }
            Some(v) => {
                return Err(invalid(
                    "reasoning.effort",
                    format!("must be a string, not {}", kind(v)),
                ));
            }
        }
        if let Some(summary) = reasoning.get("summary").filter(|s| !s.is_null()) {
            return Err(invalid(
                "reasoning.summary",
                format!(
                    "`{summary}` asks for reasoning summaries, which a Chat Completions \
                     upstream cannot write (its reasoning text, when it has any, is returned \
                     as a reasoning item)"
                ),
            ));
        }
    }
    match body.remove("truncation") {
        None | Some(Value::Null) => {}
        Some(Value::String(t)) if t == "disabled" => {}
        Some(v) => {
            return Err(invalid(
                "truncation",
                format!("only `disabled` is supported (got {v}): the gateway never drops turns"),
            ));
        }
    }
    match body.remove("include") {
        None | Some(Value::Null) => {}
        Some(Value::Array(a)) if a.is_empty() => {}
        Some(v) => {
            return Err(invalid(
                "include",
                format!("no additional output data can be included (got {v})"),
            ));
        }
    }
    match body.remove("background") {
        None | Some(Value::Null | Value::Bool(false)) => {}
        Some(_) => {
            return Err(invalid(
                "background",
                "background responses are not supported: send without it",
            ));
        }
    }
    match body.remove("metadata") {
        None | Some(Value::Null) => {}
        Some(Value::Object(m)) if m.len() <= 16 && m.values().all(Value::is_string) => {}
        Some(_) => {
            return Err(invalid(
                "metadata",
                "must be an object of at most 16 string values",
            ));
        }
    }
    match body.remove("store") {
        None | Some(Value::Null | Value::Bool(_)) => {}
        Some(v) => {
            return Err(invalid(
                "store",
                format!("must be a boolean, not {}", kind(&v)),
            ));
        }
    }
    match body.remove("stream_options") {
        None | Some(Value::Null) => {}
        Some(Value::Object(o)) if o.keys().all(|k| k == "include_obfuscation") => {}
        Some(v) => {
            return Err(invalid(
                "stream_options",
                format!("only include_obfuscation is accepted (got {v})"),
            ));
        }
    }
    let stream_options = stream.filter(|s| *s).map(|_| crate::StreamOptions {
        // The usage chunk becomes the final response's usage; the client never sees it.
        include_usage: Some(true),
        extra: Map::new(),
    });
    Ok(ChatRequest {
        model,
        messages,
        stream,
        stream_options,
        max_tokens: None,
        max_completion_tokens,
        extra,
    })
}

/// The input of the common request read straight into canonical messages, without a
/// JSON tree: text messages, function calls and their outputs, reasoning items. The
/// other fields are left to [`translate_with`]; an input with anything else, or
/// anything wrong, is `None`: [`translate`] reads it from the tree and names what is
/// wrong. Both give the same canonical request for what this accepts (tested below).
mod typed {
    use super::super::{nullable, split_object, string_or_seq};
    use super::message;
    use crate::{Message, MessageContent};
    use serde::Deserialize;
    use serde_json::{Map, Value, json};
    use std::borrow::Cow;

    /// `input`: a string, or items.
    enum Input<'a> {
        Text(String),
        Items(Vec<Item<'a>>),
    }

    /// A message's `content`: a string, or parts.
    enum Content<'a> {
        Text(String),
        Parts(Vec<Part<'a>>),
    }

    string_or_seq!(Input, Items, Item);
    string_or_seq!(Content, Parts, Part);

    #[derive(Deserialize)]
    struct Item<'a> {
        #[serde(rename = "type", default, borrow, deserialize_with = "nullable")]
        kind: Option<Option<Cow<'a, str>>>,
        #[serde(default, borrow)]
        role: Option<Cow<'a, str>>,
        #[serde(default, borrow)]
        content: Option<Content<'a>>,
        #[serde(default)]
        call_id: Option<String>,
        #[serde(default)]
        name: Option<String>,
        #[serde(default)]
        arguments: Option<String>,
        #[serde(default)]
        output: Option<String>,
    }

    #[derive(Deserialize)]
    struct Part<'a> {
        #[serde(rename = "type", borrow)]
        kind: Cow<'a, str>,
        #[serde(default)]
        text: Option<String>,
    }

    /// The body's other fields and its input as canonical messages, when every item
    /// is one this reads.
    pub(super) fn read(body: &[u8]) -> Option<(Map<String, Value>, Vec<Message>)> {
        let (input, object) = split_object::<Input<'_>>(body, "input")?;
        let mut messages = Vec::new();
        match input? {
            Input::Text(text) => messages.push(message("user", MessageContent::Text(text))),
            Input::Items(items) => {
                for item in items {
                    push_item(&mut messages, item)?;
                }
            }
        }
        Some((object, messages))
    }

    fn push_item(messages: &mut Vec<Message>, item: Item<'_>) -> Option<()> {
        match item.kind {
            None => {}
            Some(Some(kind)) if kind == "message" => {}
            Some(Some(kind)) if kind == "function_call" => {
                let call = json!({"id": item.call_id?, "type": "function",
                                  "function": {"name": item.name?, "arguments": item.arguments?}});
                super::push_call(messages, call);
                return Some(());
            }
            Some(Some(kind)) if kind == "function_call_output" => {
                let mut m = message("tool", MessageContent::Text(item.output?));
                m.extra
                    .insert("tool_call_id".into(), Value::String(item.call_id?));
                messages.push(m);
                return Some(());
            }
            Some(Some(kind)) if kind == "reasoning" => return Some(()),
            Some(_) => return None,
        }
        let role = item.role?;
        if !["user", "assistant", "system", "developer"].contains(&&*role) {
            return None;
        }
        let content = match item.content? {
            Content::Text(text) => text,
            Content::Parts(parts) => {
                let mut texts = Vec::with_capacity(parts.len());
                for part in parts {
                    if part.kind != "input_text" && part.kind != "output_text" {
                        return None;
                    }
                    texts.push(part.text?);
                }
                if texts.len() == 1 {
                    texts.pop().unwrap_or_default()
                } else {
                    texts.join("\n")
                }
            }
        };
        messages.push(message(&role, MessageContent::Text(content)));
        Some(())
    }
}

fn message(role: &str, content: MessageContent) -> Message {
    Message {
        role: role.to_owned(),
        content: Some(content),
        extra: Map::new(),
    }
}

/// One input item as messages: a message, a function call (joined to the assistant
/// message before it), a function call's output, or a reasoning item (which Chat
/// Completions has no place for: it is not sent upstream).
fn push_item(messages: &mut Vec<Message>, item: Value, i: usize) -> Result<(), ApiError> {
    let at = format!("input[{i}]");
    let Value::Object(mut item) = item else {
        return Err(invalid(
            at,
            format!("must be an object, not {}", kind(&item)),
        ));
    };
    let type_ = match item.get("type") {
        None => "message",
        Some(Value::String(t)) => t.as_str(),
        Some(v) => {
            return Err(invalid(
                format!("{at}.type"),
                format!("must be a string, not {}", kind(v)),
            ));
        }
    };
    match type_ {
        "message" => {
            let role = match item.remove("role") {
                Some(Value::String(r))
                    if ["user", "assistant", "system", "developer"].contains(&&*r) =>
                {
                    r
                }
                Some(v) => {
                    return Err(invalid(
                        format!("{at}.role"),
                        format!("must be user, assistant, system or developer (got {v})"),
                    ));
                }
                None => return Err(invalid(format!("{at}.role"), "Missing required parameter")),
            };
            let content = match item.remove("content") {
                Some(Value::String(s)) => MessageContent::Text(s),
                Some(Value::Array(parts)) => {
                    let mut out = Vec::with_capacity(parts.len());
                    for (j, part) in parts.into_iter().enumerate() {
                        out.push(content_part(part, &format!("{at}.content[{j}]"), &role)?);
                    }
                    simplest(out)
                }
                Some(v) => {
                    return Err(invalid(
                        format!("{at}.content"),
                        format!("must be a string or an array of parts, not {}", kind(&v)),
                    ));
                }
                None => {
                    return Err(invalid(
                        format!("{at}.content"),
                        "Missing required parameter",
                    ));
                }
            };
            messages.push(message(&role, content));
        }
        "function_call" => {
            let field = |k: &str| match item.get(k) {
                Some(Value::String(s)) => Ok(s.clone()),
                Some(v) => Err(invalid(
                    format!("{at}.{k}"),
                    format!("must be a string, not {}", kind(v)),
                )),
                None => Err(invalid(format!("{at}.{k}"), "Missing required parameter")),
            };
            let call = json!({"id": field("call_id")?, "type": "function",
                              "function": {"name": field("name")?, "arguments": field("arguments")?}});
            push_call(messages, call);
        }
        "function_call_output" => {
            let Some(Value::String(id)) = item.remove("call_id") else {
                return Err(invalid(
                    format!("{at}.call_id"),
                    "Missing required parameter (a string)",
                ));
            };
            let output = match item.remove("output") {
                Some(Value::String(s)) => s,
                Some(Value::Array(parts)) => {
                    let mut text = String::new();
                    for (j, part) in parts.iter().enumerate() {
                        match part.get("type").and_then(Value::as_str) {
                            Some("input_text" | "output_text") => text
                                .push_str(part.get("text").and_then(Value::as_str).unwrap_or("")),
                            _ => {
                                return Err(invalid(
                                    format!("{at}.output[{j}].type"),
                                    "only text parts can be carried in a function call's output",
                                ));
                            }
                        }
                    }
                    text
                }
                Some(v) => {
                    return Err(invalid(
                        format!("{at}.output"),
                        format!("must be a string, not {}", kind(&v)),
                    ));
                }
                None => {
                    return Err(invalid(
                        format!("{at}.output"),
                        "Missing required parameter",
                    ));
                }
            };
            let mut m = message("tool", MessageContent::Text(output));
            m.extra.insert("tool_call_id".into(), Value::String(id));
            messages.push(m);
        }
        "reasoning" => {}
        other => {
            return Err(invalid(
                format!("{at}.type"),
                format!(
                    "`{other}` items cannot be carried (items: message, function_call, \
                     function_call_output, reasoning)"
                ),
            ));
        }
    }
    Ok(())
}

/// A function call joined to the assistant message right before it (calls after an
/// assistant message, or after another call, belong to it), else as its own.
fn push_call(messages: &mut Vec<Message>, call: Value) {
    if let Some(last) = messages.last_mut()
        && last.role == "assistant"
    {
        let calls = last
            .extra
            .entry("tool_calls")
            .or_insert_with(|| Value::Array(Vec::new()));
        if let Value::Array(calls) = calls {
            calls.push(call);
        }
        return;
    }
    let mut extra = Map::new();
    extra.insert("tool_calls".into(), json!([call]));
    messages.push(Message {
        role: "assistant".into(),
        content: None,
        extra,
    });
}

/// A message's content part as a Chat Completions part.
fn content_part(part: Value, at: &str, role: &str) -> Result<Value, ApiError> {
    let Value::Object(part) = part else {
        return Err(invalid(
            at,
            format!("must be an object, not {}", kind(&part)),
        ));
    };
    let text = |k: &str| match part.get(k) {
        Some(Value::String(s)) => Ok(s.clone()),
        _ => Err(invalid(
            format!("{at}.{k}"),
            "Missing required parameter (a string)",
        )),
    };
    match part.get("type").and_then(Value::as_str).unwrap_or("") {
        "input_text" | "output_text" => Ok(json!({"type": "text", "text": text("text")?})),
        "refusal" => Ok(json!({"type": "text", "text": text("refusal")?})),
        "input_image" if role == "user" => {
            if part.get("file_id").is_some_and(|f| !f.is_null()) {
                return Err(invalid(
                    format!("{at}.file_id"),
                    "files are not kept here: send the image as image_url (a URL or a data: URL)",
                ));
            }
            let url = text("image_url")?;
            let mut image = json!({"url": url});
            if let Some(detail) = part.get("detail").filter(|d| !d.is_null()) {
                image["detail"] = detail.clone();
            }
            Ok(json!({"type": "image_url", "image_url": image}))
        }
        "input_file" if role == "user" => {
            let Some(Value::String(data)) = part.get("file_data") else {
                return Err(invalid(
                    format!("{at}.file_data"),
                    "files are not kept here: send the file inline as file_data",
                ));
            };
            let mut file = json!({"file_data": data});
            if let Some(name) = part.get("filename").filter(|n| !n.is_null()) {
                file["filename"] = name.clone();
            }
            Ok(json!({"type": "file", "file": file}))
        }
        other => Err(invalid(
            format!("{at}.type"),
            format!("a `{other}` part cannot be carried in a {role} message"),
        )),
    }
}

/// Text-only parts as one string (what every server reads); other parts as they are.
fn simplest(parts: Vec<Value>) -> MessageContent {
    if parts.iter().all(|p| p["type"] == "text") {
        let text: String = parts
            .iter()
            .filter_map(|p| p["text"].as_str())
            .collect::<Vec<_>>()
            .join("\n");
        MessageContent::Text(text)
    } else {
        MessageContent::Parts(parts)
    }
}

fn translate_tools(tools: Value) -> Result<Value, ApiError> {
    let Value::Array(tools) = tools else {
        return Err(invalid(
            "tools",
            format!("must be an array, not {}", kind(&tools)),
        ));
    };
    let mut out = Vec::with_capacity(tools.len());
    for (i, tool) in tools.into_iter().enumerate() {
        let at = format!("tools[{i}]");
        let Value::Object(mut tool) = tool else {
            return Err(invalid(format!("{at}.type"), "Missing required parameter"));
        };
        match tool.get("type").and_then(Value::as_str) {
            Some("function") => {}
            Some(other) => {
                return Err(invalid(
                    format!("{at}.type"),
                    format!(
                        "`{other}` is a hosted tool, which a Chat Completions upstream cannot \
                         run: only function tools can be carried"
                    ),
                ));
            }
            None => return Err(invalid(format!("{at}.type"), "Missing required parameter")),
        }
        let Some(name @ Value::String(_)) = tool.remove("name") else {
            return Err(invalid(format!("{at}.name"), "Missing required parameter"));
        };
        // Moved, not copied: a tool's schema is often the largest part of a request.
        let mut function = Map::new();
        function.insert("name".into(), name);
        for k in ["description", "parameters", "strict"] {
            if let Some(v) = tool.remove(k).filter(|v| !v.is_null()) {
                function.insert(k.into(), v);
            }
        }
        out.push(json!({"type": "function", "function": function}));
    }
    Ok(Value::Array(out))
}

fn translate_text(text: Value, extra: &mut Map<String, Value>) -> Result<(), ApiError> {
    if let Some(verbosity) = text.get("verbosity").filter(|v| !v.is_null()) {
        extra.insert("verbosity".into(), verbosity.clone());
    }
    let Some(format) = text.get("format").filter(|f| !f.is_null()) else {
        return Ok(());
    };
    match format.get("type").and_then(Value::as_str) {
        Some("text") => {}
        Some("json_object") => {
            extra.insert("response_format".into(), json!({"type": "json_object"}));
        }
        Some("json_schema") => {
            let mut schema = Map::new();
            for k in ["name", "schema", "strict", "description"] {
                if let Some(v) = format.get(k).filter(|v| !v.is_null()) {
                    schema.insert(k.into(), v.clone());
                }
            }
            if !schema.contains_key("name") {
                return Err(invalid("text.format.name", "Missing required parameter"));
            }
            extra.insert(
                "response_format".into(),
                json!({"type": "json_schema", "json_schema": schema}),
            );
        }
        _ => {
            return Err(invalid(
                "text.format.type",
                "must be text, json_object or json_schema",
            ));
        }
    }
    Ok(())
}

/// The request fields a `response` object repeats, its id and creation time: what
/// turns canonical answers into `response` objects and events for one request.
#[derive(Debug, Clone)]
pub struct ResponseContext {
    /// `resp_…`.
    pub id: String,
    /// Seconds since the epoch.
    pub created_at: u64,
    /// The repeated fields as they came (JSON text), in the order they are written.
    echo: Vec<(&'static str, Box<RawValue>)>,
}

/// What is read of a Responses request before it runs: the response it continues and
/// its own input items. Everything else is the dialect's to check.
#[derive(Debug, Clone, Default)]
pub struct Head {
    /// `previous_response_id`, when set.
    pub previous_response_id: Option<String>,
    /// The request's input items as a JSON array (a string input as its one user
    /// message); `None` when `input` is neither (the dialect refuses it).
    pub input: Option<String>,
}

/// The top-level fields of a Responses request read before it runs, as they came.
#[derive(Deserialize)]
struct HeadIn<'a> {
    #[serde(borrow, default)]
    previous_response_id: Option<&'a RawValue>,
    #[serde(borrow, default)]
    input: Option<&'a RawValue>,
    #[serde(borrow, default)]
    instructions: Option<&'a RawValue>,
    #[serde(borrow, default)]
    max_output_tokens: Option<&'a RawValue>,
    #[serde(borrow, default)]
    metadata: Option<&'a RawValue>,
    #[serde(borrow, default)]
    parallel_tool_calls: Option<&'a RawValue>,
    #[serde(borrow, default)]
    reasoning: Option<&'a RawValue>,
    #[serde(borrow, default)]
    service_tier: Option<&'a RawValue>,
    #[serde(borrow, default)]
    store: Option<&'a RawValue>,
    #[serde(borrow, default)]
    temperature: Option<&'a RawValue>,
    #[serde(borrow, default)]
    text: Option<&'a RawValue>,
    #[serde(borrow, default)]
    tool_choice: Option<&'a RawValue>,
    #[serde(borrow, default)]
    tools: Option<&'a RawValue>,
    #[serde(borrow, default)]
    top_p: Option<&'a RawValue>,
    #[serde(borrow, default)]
    truncation: Option<&'a RawValue>,
    #[serde(borrow, default)]
    user: Option<&'a RawValue>,
    #[serde(borrow, default)]
    safety_identifier: Option<&'a RawValue>,
    #[serde(borrow, default)]
    prompt_cache_key: Option<&'a RawValue>,
    #[serde(borrow, default)]
    top_logprobs: Option<&'a RawValue>,
}

impl HeadIn<'_> {
    /// The field `name` as it came (`None` when absent or null).
    fn field(&self, name: &str) -> Option<&RawValue> {
        match name {
            "previous_response_id" => self.previous_response_id,
            "instructions" => self.instructions,
            "max_output_tokens" => self.max_output_tokens,
            "metadata" => self.metadata,
            "parallel_tool_calls" => self.parallel_tool_calls,
            "reasoning" => self.reasoning,
            "service_tier" => self.service_tier,
            "store" => self.store,
            "temperature" => self.temperature,
            "text" => self.text,
            "tool_choice" => self.tool_choice,
            "tools" => self.tools,
            "top_p" => self.top_p,
            "truncation" => self.truncation,
            "user" => self.user,
            "safety_identifier" => self.safety_identifier,
            "prompt_cache_key" => self.prompt_cache_key,
            "top_logprobs" => self.top_logprobs,
            _ => None,
        }
    }
}

impl ResponseContext {
    /// Reads a Responses request `body`: the context its answers are written in (the
    /// fields its `response` repeats, as they came) and its [`Head`]. Only the
    /// object's shape and `previous_response_id` are checked here.
    pub fn read(
        id: String,
        created_at: u64,
        body: &[u8],
    ) -> Result<(ResponseContext, Head), ApiError> {
        let head: HeadIn<'_> = serde_json::from_slice(body).map_err(|e| {
            use serde_json::error::Category;
            match e.classify() {
                Category::Data if body.trim_ascii_start().first() != Some(&b'{') => {
                    ApiError::new(ErrorKind::InvalidRequest, "the body must be a JSON object")
                }
                _ => malformed(&e),
            }
        })?;
        let previous_response_id = match head.previous_response_id {
            None => None,
            Some(raw) => Some(
                serde_json::from_str::<String>(raw.get())
                    .map_err(|_| invalid("previous_response_id", "must be a string"))?,
            ),
        };
        let input = head
            .input
            .and_then(|raw| match raw.get().as_bytes().first() {
                Some(b'"') => Some(format!(
                    r#"[{{"type":"message","role":"user","content":{}}}]"#,
                    raw.get()
                )),
                Some(b'[') => Some(raw.get().to_owned()),
                _ => None,
            });
        let raw = |text: &str| RawValue::from_string(text.to_owned()).ok();
        let mut echo = Vec::with_capacity(ECHOED.len() + ECHOED_WHEN_SET.len());
        for (field, default) in ECHOED {
            let value = match head.field(field) {
                Some(v) => Some(v.to_owned()),
                None => raw(default),
            };
            echo.extend(value.map(|v| (field, v)));
        }
        for field in ECHOED_WHEN_SET {
            echo.extend(head.field(field).map(|v| (field, v.to_owned())));
        }
        let context = ResponseContext {
            id,
            created_at,
            echo,
        };
        Ok((
            context,
            Head {
                previous_response_id,
                input,
            },
        ))
    }

    /// Whether the response is to be stored (`store`, default true).
    pub fn stored(&self) -> bool {
        !self
            .echo
            .iter()
            .any(|(k, v)| *k == "store" && v.get() == "false")
    }

    /// The `response` object with `status`, `output`, `usage` and the model named.
    fn object(&self, status: &str, model: &Value, output: Vec<Value>, usage: Value) -> Value {
        let mut object = Map::new();
        object.insert("id".into(), json!(self.id));
        object.insert("object".into(), json!("response"));
        object.insert("created_at".into(), json!(self.created_at));
        object.insert("status".into(), json!(status));
        object.insert("background".into(), Value::Bool(false));
        object.insert("error".into(), Value::Null);
        object.insert("incomplete_details".into(), Value::Null);
        object.insert("model".into(), model.clone());
        object.insert("output".into(), Value::Array(output));
        object.insert("usage".into(), usage);
        for (k, v) in &self.echo {
            let value = serde_json::from_str(v.get()).unwrap_or(Value::Null);
            object.insert((*k).to_owned(), value);
        }
        Value::Object(object)
    }

    fn item_id(&self, prefix: &str, index: usize) -> String {
        let id = self.id.strip_prefix("resp_").unwrap_or(&self.id);
        format!("{prefix}_{id}_{index}")
    }

    /// A whole canonical answer (a Chat Completions completion) as the `response`
    /// object, serialized.
    pub fn whole(&self, body: &[u8]) -> Result<String, ApiError> {
        let bad = |e: serde_json::Error| {
            ApiError::new(
                ErrorKind::Upstream,
                format!("the upstream's answer is not a chat completion: {e}"),
            )
        };
        let completion: Completion<'_> = serde_json::from_slice(body).map_err(bad)?;
        let choice = completion.choices.into_iter().next().unwrap_or_default();
        let message = choice.message.unwrap_or_default();
        let mut output = Vec::new();
        if let Some(text) = message
            .reasoning_content
            .as_deref()
            .or(message.reasoning.as_deref())
            .filter(|t| !t.is_empty())
        {
            output.push(ItemOut::Reasoning {
                id: self.item_id("rs", output.len()),
                summary: [],
                content: [ReasoningTextOut {
                    kind: "reasoning_text",
                    text,
                }],
            });
        }
        let text = message.content.as_deref().unwrap_or("");
        let calls = message.tool_calls.as_deref().unwrap_or_default();
        if !text.is_empty() || message.refusal.is_some() || calls.is_empty() {
            let part = match message.refusal.as_deref() {
                Some(refusal) => PartOut::Refusal { refusal },
                None => PartOut::OutputText {
                    text,
                    annotations: [],
                    logprobs: [],
                },
            };
            output.push(ItemOut::Message {
                id: self.item_id("msg", output.len()),
                status: "completed",
                role: "assistant",
                content: [part],
            });
        }
        for call in calls {
            let function = call.function.as_ref();
            output.push(ItemOut::FunctionCall {
                id: self.item_id("fc", output.len()),
                call_id: call.id.as_deref().unwrap_or(""),
                name: function.and_then(|f| f.name.as_deref()).unwrap_or(""),
                arguments: function.and_then(|f| f.arguments.as_deref()).unwrap_or(""),
                status: "completed",
            });
        }
        let finish = choice.finish_reason.as_deref();
        let object = ResponseOut {
            id: &self.id,
            object: "response",
            created_at: self.created_at,
            status: status_of(finish),
            background: false,
            error: None,
            incomplete_details: incomplete_reason(finish).map(|reason| Reason { reason }),
            model: completion.model.as_deref(),
            output: &output,
            usage: UsageOut::of(completion.usage.as_ref()),
            echo: Echo(&self.echo),
        };
        serde_json::to_string(&object).map_err(bad)
    }

    /// A translator of canonical streams into `response.*` events; `on_final` gets the
    /// final `response` object (completed, incomplete or failed) when the stream ends.
    pub fn events(
        &self,
        on_final: Option<Box<dyn FnOnce(Value) + Send>>,
    ) -> Box<dyn StreamTranslator> {
        Box::new(EventWriter {
            context: self.clone(),
            sequence: 0,
            model: Value::Null,
            started: false,
            output: Vec::new(),
            open: None,
            finish: None,
            usage: None,
            over: false,
            on_final,
        })
    }
}

fn reasoning(message: &Value) -> Option<&str> {
    message
        .get("reasoning_content")
        .or_else(|| message.get("reasoning"))
        .and_then(Value::as_str)
}

fn output_text(text: &str) -> Value {
    json!({"type": "output_text", "text": text, "annotations": [], "logprobs": []})
}

fn message_item(id: String, status: &str, content: Vec<Value>) -> Value {
    json!({"type": "message", "id": id, "status": status, "role": "assistant", "content": content})
}

fn function_call_item(id: String, status: &str, call_id: &str, name: &str, args: &str) -> Value {
    json!({"type": "function_call", "id": id, "call_id": call_id, "name": name,
           "arguments": args, "status": status})
}

/// The response's status for a Chat Completions `finish_reason`.
fn status_of(finish: Option<&str>) -> &'static str {
    match finish {
        Some("length" | "content_filter") => "incomplete",
        _ => "completed",
    }
}

/// Why a response is incomplete, for a Chat Completions `finish_reason`.
fn incomplete_reason(finish: Option<&str>) -> Option<&'static str> {
    match finish {
        Some("length") => Some("max_output_tokens"),
        Some("content_filter") => Some("content_filter"),
        _ => None,
    }
}

fn incomplete(finish: Option<&str>) -> Value {
    incomplete_reason(finish).map_or(Value::Null, |reason| json!({"reason": reason}))
}

/// Responses usage from Chat Completions usage: cached prompt tokens under
/// `input_tokens_details`, reasoning tokens under `output_tokens_details`.
fn usage(usage: Option<&Value>) -> Value {
    let usage = usage.and_then(|u| UsageIn::deserialize(u).ok());
    serde_json::to_value(UsageOut::of(usage.as_ref())).unwrap_or(Value::Null)
}

#[derive(Serialize)]
struct UsageOut {
    input_tokens: u64,
    input_tokens_details: CachedOut,
    output_tokens: u64,
    output_tokens_details: ReasoningOut,
    total_tokens: u64,
}

#[derive(Serialize)]
struct CachedOut {
    cached_tokens: u64,
}

#[derive(Serialize)]
struct ReasoningOut {
    reasoning_tokens: u64,
}

impl UsageOut {
    fn of(usage: Option<&UsageIn>) -> UsageOut {
        let input = usage.and_then(|u| u.prompt_tokens).unwrap_or(0);
        let output = usage.and_then(|u| u.completion_tokens).unwrap_or(0);
        let cached = usage
            .and_then(|u| u.prompt_tokens_details.as_ref())
            .and_then(|d| d.cached_tokens);
        let reasoning = usage
            .and_then(|u| u.completion_tokens_details.as_ref())
            .and_then(|d| d.reasoning_tokens);
        UsageOut {
            input_tokens: input,
            input_tokens_details: CachedOut {
                cached_tokens: cached.unwrap_or(0),
            },
            output_tokens: output,
            output_tokens_details: ReasoningOut {
                reasoning_tokens: reasoning.unwrap_or(0),
            },
            total_tokens: input.saturating_add(output),
        }
    }
}

/// A `response` object as written.
#[derive(Serialize)]
struct ResponseOut<'a> {
    id: &'a str,
    object: &'static str,
    created_at: u64,
    status: &'a str,
    background: bool,
    error: Option<()>,
    incomplete_details: Option<Reason>,
    model: Option<&'a str>,
    output: &'a [ItemOut<'a>],
    usage: UsageOut,
    #[serde(flatten)]
    echo: Echo<'a>,
}

#[derive(Serialize)]
struct Reason {
    reason: &'static str,
}

/// The fields a response repeats, written as they came.
struct Echo<'a>(&'a [(&'static str, Box<RawValue>)]);

impl Serialize for Echo<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_map(self.0.iter().map(|(k, v)| (k, v)))
    }
}

/// An output item of a whole answer.
#[derive(Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum ItemOut<'a> {
    Reasoning {
        id: String,
        summary: [u8; 0],
        content: [ReasoningTextOut<'a>; 1],
    },
    Message {
        id: String,
        status: &'static str,
        role: &'static str,
        content: [PartOut<'a>; 1],
    },
    FunctionCall {
        id: String,
        call_id: &'a str,
        name: &'a str,
        arguments: &'a str,
        status: &'static str,
    },
}

#[derive(Serialize)]
struct ReasoningTextOut<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    text: &'a str,
}

#[derive(Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum PartOut<'a> {
    OutputText {
        text: &'a str,
        annotations: [u8; 0],
        logprobs: [u8; 0],
    },
    Refusal {
        refusal: &'a str,
    },
}

/// A text delta event as written.
#[derive(Serialize)]
struct TextDeltaOut<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    item_id: &'a str,
    output_index: usize,
    content_index: u32,
    delta: &'a str,
    logprobs: [u8; 0],
    sequence_number: u64,
}

/// The output item a stream is writing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Open {
    Reasoning,
    Text,
    /// A function call, by its index among the chunk's tool calls.
    Call(u64),
}

/// Writes Chat Completions chunks as `response.*` events.
struct EventWriter {
    context: ResponseContext,
    sequence: u64,
    model: Value,
    started: bool,
    /// Output items so far (the open one last, still growing).
    output: Vec<Value>,
    open: Option<Open>,
    finish: Option<String>,
    usage: Option<Value>,
    over: bool,
    on_final: Option<Box<dyn FnOnce(Value) + Send>>,
}

impl EventWriter {
    fn push(&mut self, out: &mut String, name: &str, mut data: Value) {
        data["type"] = json!(name);
        data["sequence_number"] = json!(self.sequence);
        self.sequence += 1;
        out.push_str("event: ");
        out.push_str(name);
        out.push_str("\ndata: ");
        out.push_str(&data.to_string());
        out.push_str("\n\n");
    }

    fn start(&mut self, chunk: &Value, out: &mut String) {
        if self.started {
            return;
        }
        self.started = true;
        if let Some(model) = chunk.get("model") {
            self.model = model.clone();
        }
        let response = self
            .context
            .object("in_progress", &self.model, Vec::new(), Value::Null);
        self.push(out, "response.created", json!({"response": response}));
        self.push(out, "response.in_progress", json!({"response": response}));
    }

    /// Opens an item unless it is the one open.
    fn open(&mut self, which: Open, item: Value, out: &mut String) {
        if self.open == Some(which) {
            return;
        }
        self.close(out);
        let index = self.output.len();
        self.push(
            out,
            "response.output_item.added",
            json!({"output_index": index, "item": item}),
        );
        self.output.push(item);
        self.open = Some(which);
        let item_id = self.output[index]["id"].clone();
        let part = match which {
            Open::Text => output_text(""),
            Open::Reasoning => json!({"type": "reasoning_text", "text": ""}),
            Open::Call(_) => return,
        };
        self.push(
            out,
            "response.content_part.added",
            json!({"item_id": item_id, "output_index": index, "content_index": 0, "part": part}),
        );
        self.output[index]["content"] = json!([part]);
    }

    /// Appends `delta` to the open message's text and says so, without building a
    /// tree (the common event of a stream).
    fn text_delta(&mut self, out: &mut String, delta: &str) {
        let index = self.output.len() - 1;
        let event = TextDeltaOut {
            kind: "response.output_text.delta",
            item_id: self.output[index]["id"].as_str().unwrap_or(""),
            output_index: index,
            content_index: 0,
            delta,
            logprobs: [],
            sequence_number: self.sequence,
        };
        let Ok(data) = serde_json::to_string(&event) else {
            return;
        };
        self.sequence += 1;
        out.push_str("event: response.output_text.delta\ndata: ");
        out.push_str(&data);
        out.push_str("\n\n");
        if let Some(Value::String(s)) = self.output[index].pointer_mut("/content/0/text") {
            s.push_str(delta);
        }
    }

    /// Appends `delta` to the open item's text (or arguments) and says so.
    fn delta(&mut self, out: &mut String, delta: &str) {
        let index = self.output.len() - 1;
        let item_id = self.output[index]["id"].clone();
        let (name, field) = match self.open {
            Some(Open::Text) => ("response.output_text.delta", "/content/0/text"),
            Some(Open::Reasoning) => ("response.reasoning_text.delta", "/content/0/text"),
            Some(Open::Call(_)) => ("response.function_call_arguments.delta", "/arguments"),
            None => return,
        };
        if let Some(Value::String(s)) = self.output[index].pointer_mut(field) {
            s.push_str(delta);
        }
        let mut data = json!({"item_id": item_id, "output_index": index, "delta": delta});
        if !matches!(self.open, Some(Open::Call(_))) {
            data["content_index"] = json!(0);
        }
        if self.open == Some(Open::Text) {
            data["logprobs"] = json!([]);
        }
        self.push(out, name, data);
    }

    fn close(&mut self, out: &mut String) {
        let Some(which) = self.open.take() else {
            return;
        };
        let index = self.output.len() - 1;
        let item_id = self.output[index]["id"].clone();
        match which {
            Open::Text | Open::Reasoning => {
                let part = self.output[index]["content"][0].clone();
                let text = part["text"].clone();
                let name = if which == Open::Text {
                    "response.output_text.done"
                } else {
                    "response.reasoning_text.done"
                };
                let mut data = json!({"item_id": item_id, "output_index": index,
                                      "content_index": 0, "text": text});
                if which == Open::Text {
                    data["logprobs"] = json!([]);
                }
                self.push(out, name, data);
                self.push(
                    out,
                    "response.content_part.done",
                    json!({"item_id": item_id, "output_index": index, "content_index": 0,
                           "part": part}),
                );
            }
            Open::Call(_) => {
                let item = &self.output[index];
                let data = json!({"item_id": item_id, "output_index": index,
                                  "name": item["name"], "arguments": item["arguments"]});
                self.push(out, "response.function_call_arguments.done", data);
            }
        }
        if which != Open::Reasoning {
            self.output[index]["status"] = json!("completed");
        }
        let item = self.output[index].clone();
        self.push(
            out,
            "response.output_item.done",
            json!({"output_index": index, "item": item}),
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
        if let Some(text) = reasoning(delta).filter(|t| !t.is_empty()) {
            let id = self.context.item_id("rs", self.output.len());
            let item = json!({"type": "reasoning", "id": id, "summary": [], "content": []});
            self.open(Open::Reasoning, item, out);
            self.delta(out, text);
        }
        if let Some(text) = delta.get("content").and_then(Value::as_str)
            && !text.is_empty()
        {
            let id = self.context.item_id("msg", self.output.len());
            self.open(Open::Text, message_item(id, "in_progress", Vec::new()), out);
            self.delta(out, text);
        }
        for call in delta
            .get("tool_calls")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let index = call.get("index").and_then(Value::as_u64).unwrap_or(0);
            let call_id = call.get("id").and_then(Value::as_str);
            let open_id = match (self.open, self.output.last()) {
                (Some(Open::Call(_)), Some(item)) => item["call_id"].as_str(),
                _ => None,
            };
            // A new call: another index, or (from servers that number every call 0)
            // another id.
            let another = call_id.is_some_and(|id| open_id != Some(id));
            if self.open != Some(Open::Call(index)) || another {
                if self.open == Some(Open::Call(index)) {
                    self.close(out);
                }
                let id = self.context.item_id("fc", self.output.len());
                let name = call
                    .pointer("/function/name")
                    .and_then(Value::as_str)
                    .unwrap_or("");
                let item = function_call_item(id, "in_progress", call_id.unwrap_or(""), name, "");
                self.open(Open::Call(index), item, out);
            }
            if let Some(arguments) = call.pointer("/function/arguments").and_then(Value::as_str)
                && !arguments.is_empty()
            {
                self.delta(out, arguments);
            }
        }
        if let Some(finish) = choice.get("finish_reason").and_then(Value::as_str) {
            self.finish = Some(finish.to_owned());
        }
    }

    fn finish(&mut self, out: &mut String) {
        self.over = true;
        self.start(&Value::Null, out);
        self.close(out);
        let finish = self.finish.as_deref();
        let status = status_of(finish);
        let mut response = self.context.object(
            status,
            &self.model,
            std::mem::take(&mut self.output),
            usage(self.usage.as_ref()),
        );
        response["incomplete_details"] = incomplete(finish);
        let name = if status == "completed" {
            "response.completed"
        } else {
            "response.incomplete"
        };
        self.push(out, name, json!({"response": response}));
        if let Some(on_final) = self.on_final.take() {
            on_final(response);
        }
    }

    fn fail(&mut self, out: &mut String, code: &str, message: &str) {
        self.over = true;
        self.start(&Value::Null, out);
        self.close(out);
        let mut response = self.context.object(
            "failed",
            &self.model,
            std::mem::take(&mut self.output),
            usage(self.usage.as_ref()),
        );
        response["error"] = json!({"code": code, "message": message});
        self.push(out, "response.failed", json!({"response": response}));
        if let Some(on_final) = self.on_final.take() {
            on_final(response);
        }
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
            && let Ok(chunk) = serde_json::from_str::<TextChunk<'_>>(data)
            && let Some(text) = chunk.only_text()
        {
            self.text_delta(out, &text);
            return;
        }
        let Ok(chunk) = serde_json::from_str::<Value>(data) else {
            return;
        };
        if let Some(error) = chunk.get("error") {
            let message = error
                .get("message")
                .and_then(Value::as_str)
                .or_else(|| error.as_str())
                .unwrap_or("the upstream failed");
            let code = match error.get("code").and_then(Value::as_str) {
                Some("upstream_timeout") => "timeout",
                _ => "server_error",
            };
            self.fail(out, code, message);
            return;
        }
        self.chunk(&chunk, out);
    }

    fn end(&mut self, out: &mut String) {
        if !self.over {
            self.fail(out, "server_error", "the upstream ended the stream early");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dialect::same_reading;

    fn parse(body: Value) -> Result<ChatRequest, ApiError> {
        OpenAiResponses
            .parse(body.to_string().as_bytes(), None)
            .map(|(r, _)| r)
    }

    /// Pieces of Responses bodies: the common shapes the typed reader takes and
    /// the ones it leaves to the tree (other parts and items, nulls, wrong types).
    fn item() -> impl proptest::strategy::Strategy<Value = Value> {
        use proptest::prelude::*;
        let text = prop_oneof![
            4 => Just(json!("hi")),
            4 => Just(json!("two\nlines é")),
            2 => Just(json!("")),
            1 => Just(json!(null)),
            1 => Just(json!(7)),
        ];
        let part = (
            prop_oneof![
                6 => Just(json!("input_text")),
                6 => Just(json!("output_text")),
                1 => Just(json!("refusal")),
                1 => Just(json!("input_image")),
                1 => Just(json!(null)),
            ],
            text.clone(),
            any::<bool>(),
        )
            .prop_map(|(kind, text, annotated)| {
                let mut p = json!({"type": kind, "text": text, "refusal": "no",
                                   "image_url": "https://x/y.png"});
                if annotated {
                    p["annotations"] = json!([]);
                }
                p
            });
        let content = prop_oneof![
            text.clone(),
            proptest::collection::vec(part, 0..4).prop_map(Value::Array),
        ];
        let role = prop_oneof![
            6 => Just(json!("user")),
            6 => Just(json!("assistant")),
            2 => Just(json!("system")),
            2 => Just(json!("developer")),
            1 => Just(json!("tool")),
            1 => Just(json!(null)),
        ];
        let kind = prop_oneof![
            6 => Just(None),
            6 => Just(Some(json!("message"))),
            3 => Just(Some(json!("function_call"))),
            3 => Just(Some(json!("function_call_output"))),
            2 => Just(Some(json!("reasoning"))),
            1 => Just(Some(json!("item_reference"))),
            1 => Just(Some(json!(null))),
        ];
        // Each field left out now and then.
        let drops = proptest::collection::vec(proptest::bool::weighted(0.08), 6);
        (kind, role, content, text.clone(), drops).prop_map(
            |(kind, role, content, output, drop)| {
                let mut item = json!({"role": role, "content": content, "call_id": "c1",
                                      "name": "f", "arguments": "{}", "output": output,
                                      "id": "x", "status": "completed"});
                if let Some(kind) = kind {
                    item["type"] = kind;
                }
                let object = item.as_object_mut().unwrap();
                for (i, k) in ["role", "content", "call_id", "name", "arguments", "output"]
                    .iter()
                    .enumerate()
                {
                    if drop[i] {
                        object.remove(*k);
                    }
                }
                item
            },
        )
    }

    fn body() -> impl proptest::strategy::Strategy<Value = Value> {
        use proptest::prelude::*;
        let extra = prop_oneof![
            Just(("temperature", json!(0.5))),
            Just(("temperature", json!("hot"))),
            Just(("top_p", json!(null))),
            Just(("max_output_tokens", json!(64))),
            Just(("max_output_tokens", json!(0))),
            Just(("max_output_tokens", json!(1.5))),
            Just(("stream", json!(true))),
            Just(("stream", json!(null))),
            Just(("store", json!(false))),
            Just(("store", json!("no"))),
            Just(("instructions", json!("Be brief."))),
            Just(("instructions", json!(null))),
            Just(("previous_response_id", json!(null))),
            Just(("previous_response_id", json!("resp_1"))),
            Just(("user", json!("u1"))),
            Just(("prompt_cache_key", json!(3))),
            Just(("parallel_tool_calls", json!(false))),
            Just(("tool_choice", json!("required"))),
            Just(("tool_choice", json!("sometimes"))),
            Just(("tool_choice", json!({"type": "function", "name": "f"}))),
            Just((
                "tools",
                json!([{"type": "function", "name": "f", "description": null,
                                   "parameters": {"type": "object"}, "strict": true}])
            )),
            Just(("tools", json!([{"type": "web_search"}]))),
            Just(("tools", json!(null))),
            Just(("metadata", json!({"a": "b"}))),
            Just(("metadata", json!({"a": 1}))),
            Just(("text", json!({"format": {"type": "json_object"}}))),
            Just(("reasoning", json!({"effort": "low"}))),
            Just(("top_logprobs", json!(2))),
            Just(("unknown_field", json!(1))),
        ];
        let input = prop_oneof![
            2 => Just(json!("hello")),
            1 => Just(json!(null)),
            1 => Just(json!(4)),
            12 => proptest::collection::vec(item(), 0..5).prop_map(Value::Array),
        ];
        (
            prop_oneof![10 => Just(json!("auto")), 1 => Just(json!(" ")), 1 => Just(json!(1))],
            input,
            proptest::collection::vec(extra, 0..3),
        )
            .prop_map(|(model, input, extra)| {
                let mut body = json!({"model": model, "input": input});
                for (k, v) in extra {
                    body[k] = v;
                }
                body
            })
    }

    proptest::proptest! {
        #![proptest_config(proptest::test_runner::Config::with_cases(4000))]
        /// What the typed reader takes, the tree reads the same; what it leaves, the
        /// tree reads or refuses.
        #[test]
        fn the_typed_reader_agrees_with_the_tree(body in body()) {
            let bytes = body.to_string();
            let tree = translate(body.as_object().unwrap().clone());
            if let Some((object, input)) = typed::read(bytes.as_bytes()) {
                let fast = translate_with(object, Some(input));
                proptest::prop_assert_eq!(same_reading(&fast, &tree), Ok(()), "{}", body);
            }
        }
    }

    #[test]
    fn the_common_request_is_read_by_the_typed_reader() {
        let body = json!({"model": "auto", "instructions": "Be brief.", "max_output_tokens": 64,
            "stream": true, "store": true, "temperature": 0.3, "tool_choice": "auto",
            "tools": [{"type": "function", "name": "f", "parameters": {"type": "object"}}],
            "input": [
                {"role": "user", "content": [{"type": "input_text", "text": "a"},
                                             {"type": "input_text", "text": "b"}]},
                {"type": "message", "role": "assistant", "id": "msg_1", "status": "completed",
                 "content": [{"type": "output_text", "text": "c", "annotations": []}]},
                {"type": "function_call", "call_id": "c1", "name": "f", "arguments": "{}"},
                {"type": "reasoning", "id": "rs_1", "summary": []},
                {"type": "function_call_output", "call_id": "c1", "output": "42"},
                {"role": "user", "content": "d"}]});
        let (object, input) = typed::read(body.to_string().as_bytes()).expect("typed");
        let fast = translate_with(object, Some(input));
        let tree = translate(body.as_object().unwrap().clone());
        assert_eq!(same_reading(&fast, &tree), Ok(()));
        let fast = fast.unwrap();
        let m = serde_json::to_value(&fast.messages).unwrap();
        assert_eq!(m[1]["content"], "a\nb");
        assert_eq!(m[2]["tool_calls"][0]["id"], "c1");
        assert_eq!(m[3]["tool_call_id"], "c1");
        assert_eq!(fast.messages.len(), 5);
    }

    fn param(body: Value) -> String {
        parse(body).err().and_then(|e| e.param).unwrap_or_default()
    }

    #[test]
    fn input_items_become_the_canonical_conversation() {
        let request = parse(json!({
            "model": "auto", "instructions": "Be brief.",
            "input": [
                {"role": "user", "content": [{"type": "input_text", "text": "Weather in Paris?"},
                                             {"type": "input_image", "image_url": "data:image/png;base64,AAAA"}]},
                {"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": "Checking."}]},
                {"type": "function_call", "call_id": "call_1", "name": "weather", "arguments": "{\"city\":\"Paris\"}"},
                {"type": "function_call_output", "call_id": "call_1", "output": "18C"},
                {"type": "reasoning", "id": "rs_1", "summary": []},
                {"role": "user", "content": "And tomorrow?"}
            ],
            "tools": [{"type": "function", "name": "weather", "parameters": {"type": "object"}}],
            "tool_choice": {"type": "function", "name": "weather"},
            "max_output_tokens": 64, "temperature": 0.2, "stream": true,
            "text": {"format": {"type": "json_schema", "name": "w", "schema": {"type": "object"}}},
            "reasoning": {"effort": "low"}, "prompt_cache_key": "k1", "store": false,
            "metadata": {"a": "b"}
        }))
        .unwrap();
        let v = serde_json::to_value(&request).unwrap();
        let roles: Vec<&str> = request.messages.iter().map(|m| m.role.as_str()).collect();
        assert_eq!(roles, ["system", "user", "assistant", "tool", "user"]);
        assert_eq!(
            v["messages"][1]["content"][1]["image_url"]["url"],
            "data:image/png;base64,AAAA"
        );
        assert_eq!(v["messages"][2]["content"], "Checking.");
        assert_eq!(
            v["messages"][2]["tool_calls"][0]["function"]["name"],
            "weather"
        );
        assert_eq!(v["messages"][3]["tool_call_id"], "call_1");
        assert_eq!(v["tools"][0]["function"]["name"], "weather");
        assert_eq!(v["tool_choice"]["function"]["name"], "weather");
        assert_eq!(v["max_completion_tokens"], 64);
        assert_eq!(v["response_format"]["json_schema"]["name"], "w");
        assert_eq!(v["reasoning_effort"], "low");
        assert_eq!(v["prompt_cache_key"], "k1");
        assert_eq!(v["stream_options"]["include_usage"], true);
        assert!(v.get("store").is_none() && v.get("metadata").is_none());
    }

    #[test]
    fn each_bad_request_names_its_field() {
        assert_eq!(param(json!({"input": "hi"})), "model");
        assert_eq!(param(json!({"model": "m"})), "input");
        assert_eq!(param(json!({"model": "m", "input": 3})), "input");
        assert_eq!(
            param(json!({"model": "m", "input": "hi", "frobnicate": 1})),
            "frobnicate"
        );
        assert_eq!(
            param(json!({"model": "m", "input": [{"role": "robot", "content": "x"}]})),
            "input[0].role"
        );
        assert_eq!(
            param(
                json!({"model": "m", "input": [{"type": "function_call", "name": "f", "arguments": "{}"}]})
            ),
            "input[0].call_id"
        );
        assert_eq!(
            param(json!({"model": "m", "input": [{"type": "item_reference", "id": "x"}]})),
            "input[0].type"
        );
        assert_eq!(
            param(json!({"model": "m", "input": "hi", "tools": [{"type": "web_search"}]})),
            "tools[0].type"
        );
        assert_eq!(
            param(
                json!({"model": "m", "input": [{"role": "user", "content": [{"type": "input_image", "file_id": "f"}]}]})
            ),
            "input[0].content[0].file_id"
        );
        assert_eq!(
            param(json!({"model": "m", "input": "hi", "max_output_tokens": 0})),
            "max_output_tokens"
        );
        assert_eq!(
            param(json!({"model": "m", "input": "hi", "background": true})),
            "background"
        );
        assert_eq!(
            param(json!({"model": "m", "input": "hi", "truncation": "auto"})),
            "truncation"
        );
        assert_eq!(
            param(json!({"model": "m", "input": "hi", "reasoning": {"summary": "auto"}})),
            "reasoning.summary"
        );
        assert_eq!(
            param(json!({"model": "m", "input": "hi", "previous_response_id": "resp_1"})),
            "previous_response_id"
        );
        assert_eq!(
            param(json!({"model": "m", "input": [], "instructions": "x"})),
            "input"
        );
    }

    fn context(body: Value) -> ResponseContext {
        ResponseContext::read("resp_abc".into(), 7, body.to_string().as_bytes())
            .unwrap()
            .0
    }

    #[test]
    fn a_completion_becomes_a_response_with_cached_tokens() {
        let ctx = context(
            json!({"model": "auto", "input": "x", "instructions": "Be brief.",
                                 "previous_response_id": "resp_prev", "metadata": {"k": "v"}}),
        );
        let completion = json!({
            "id": "chatcmpl-1", "model": "small",
            "choices": [{"index": 0, "finish_reason": "tool_calls", "message": {
                "role": "assistant", "content": "Let me look.",
                "tool_calls": [{"id": "call_9", "type": "function",
                                "function": {"name": "weather", "arguments": "{}"}}]}}],
            "usage": {"prompt_tokens": 100, "completion_tokens": 5, "total_tokens": 105,
                      "prompt_tokens_details": {"cached_tokens": 64}}
        });
        let r: Value =
            serde_json::from_str(&ctx.whole(completion.to_string().as_bytes()).unwrap()).unwrap();
        assert_eq!(r["id"], "resp_abc");
        assert_eq!(r["object"], "response");
        assert_eq!(r["status"], "completed");
        assert_eq!(r["model"], "small");
        assert_eq!(r["instructions"], "Be brief.");
        assert_eq!(r["previous_response_id"], "resp_prev");
        assert_eq!(r["metadata"]["k"], "v");
        assert_eq!(r["output"][0]["type"], "message");
        assert_eq!(r["output"][0]["content"][0]["text"], "Let me look.");
        assert_eq!(r["output"][1]["type"], "function_call");
        assert_eq!(r["output"][1]["call_id"], "call_9");
        assert_eq!(r["usage"]["input_tokens"], 100);
        assert_eq!(r["usage"]["input_tokens_details"]["cached_tokens"], 64);
        assert_eq!(r["usage"]["total_tokens"], 105);

        let cut = json!({"model": "m", "choices": [{"index": 0, "finish_reason": "length",
                          "message": {"role": "assistant", "content": "abc"}}]});
        let r: Value =
            serde_json::from_str(&ctx.whole(cut.to_string().as_bytes()).unwrap()).unwrap();
        assert_eq!(r["status"], "incomplete");
        assert_eq!(r["incomplete_details"]["reason"], "max_output_tokens");
    }

    fn events(chunks: &[Value], done: bool) -> (Vec<(String, Value)>, Option<Value>) {
        let final_ = std::sync::Arc::new(std::sync::Mutex::new(None));
        let sink = final_.clone();
        let mut writer = context(json!({"model": "auto", "input": "x"}))
            .events(Some(Box::new(move |r| *sink.lock().unwrap() = Some(r))));
        let mut out = String::new();
        for c in chunks {
            writer.event(&c.to_string(), &mut out);
        }
        if done {
            writer.event("[DONE]", &mut out);
        }
        writer.end(&mut out);
        let mut parser = crate::SseParser::new();
        parser.push(out.as_bytes());
        let mut seen = Vec::new();
        while let Some(e) = parser.next_event() {
            let data: Value = serde_json::from_str(&e.data).unwrap();
            let raw = String::from_utf8_lossy(&e.raw).into_owned();
            let name = raw
                .lines()
                .find_map(|l| l.strip_prefix("event: "))
                .unwrap_or_default()
                .to_owned();
            assert_eq!(data["type"].as_str(), Some(name.as_str()));
            assert_eq!(data["sequence_number"], seen.len());
            seen.push((name, data));
        }
        let last = final_.lock().unwrap().take();
        (seen, last)
    }

    #[test]
    fn a_stream_of_chunks_becomes_response_events() {
        let chunk = |delta: Value, finish: Value| json!({"id": "c", "model": "small", "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]});
        let (seen, last) = events(
            &[
                chunk(json!({"role": "assistant", "content": ""}), Value::Null),
                chunk(json!({"content": "Hel"}), Value::Null),
                chunk(json!({"content": "lo"}), Value::Null),
                chunk(
                    json!({"tool_calls": [{"index": 0, "id": "call_1", "function": {"name": "f", "arguments": "{\"a\""}}]}),
                    Value::Null,
                ),
                chunk(
                    json!({"tool_calls": [{"index": 0, "function": {"arguments": ":1}"}}]}),
                    Value::Null,
                ),
                chunk(json!({}), json!("tool_calls")),
                json!({"id": "c", "model": "small", "choices": [],
                       "usage": {"prompt_tokens": 10, "completion_tokens": 3, "prompt_tokens_details": {"cached_tokens": 8}}}),
            ],
            true,
        );
        let names: Vec<&str> = seen.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(
            names,
            [
                "response.created",
                "response.in_progress",
                "response.output_item.added",
                "response.content_part.added",
                "response.output_text.delta",
                "response.output_text.delta",
                "response.output_text.done",
                "response.content_part.done",
                "response.output_item.done",
                "response.output_item.added",
                "response.function_call_arguments.delta",
                "response.function_call_arguments.delta",
                "response.function_call_arguments.done",
                "response.output_item.done",
                "response.completed",
            ]
        );
        assert_eq!(seen[6].1["text"], "Hello");
        assert_eq!(seen[12].1["arguments"], "{\"a\":1}");
        let done = &seen[14].1["response"];
        assert_eq!(done["status"], "completed");
        assert_eq!(done["output"][0]["content"][0]["text"], "Hello");
        assert_eq!(done["output"][1]["call_id"], "call_1");
        assert_eq!(done["usage"]["input_tokens_details"]["cached_tokens"], 8);
        assert_eq!(last.as_ref(), Some(done));

        // Cut off: the stream ends with response.failed, and that is what is kept.
        let (seen, last) = events(&[chunk(json!({"content": "Hi"}), Value::Null)], false);
        assert_eq!(seen.last().unwrap().0, "response.failed");
        assert_eq!(last.unwrap()["status"], "failed");
    }
}
