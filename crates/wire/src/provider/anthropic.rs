//! Anthropic's Messages API as an upstream: the canonical request written as a
//! Messages body (breakpoints, tool results and their error flags restored), and its
//! answers, streams and errors read back as Chat Completions.

use crate::dialect::StreamTranslator;
use crate::{ApiError, ChatRequest, ErrorKind, MessageContent};
use serde_json::{Map, Value, json};
use std::borrow::Cow;

/// `max_tokens` sent when the client set no cap (Anthropic requires one).
pub const DEFAULT_MAX_TOKENS: u32 = 4096;

/// Chat Completions fields carried to Messages, or with nothing to carry. Any other
/// field is refused rather than dropped.
const CARRIED: [&str; 16] = [
    "tools",
    "tool_choice",
    "parallel_tool_calls",
    "stop",
    "temperature",
    "top_p",
    "top_k",
    "user",
    "n",
    "logprobs",
    "frequency_penalty",
    "presence_penalty",
    "logit_bias",
    "response_format",
    // Best-effort and bookkeeping fields: nothing in Messages to carry them to.
    "seed",
    "store",
];

fn refuse(param: impl Into<String>, message: impl std::fmt::Display) -> ApiError {
    let param = param.into();
    ApiError::new(
        ErrorKind::InvalidRequest,
        format!("{param}: {message} (the chosen upstream speaks Anthropic's Messages API)"),
    )
    .with_param(param)
}

/// What cannot be carried: refused, or (lossy) dropped and named.
struct Carry {
    lossy: bool,
    dropped: Vec<String>,
}

impl Carry {
    /// `param` cannot be carried: an error, or (lossy) noted and left out.
    fn cannot(&mut self, param: impl Into<String>, message: &str) -> Result<(), ApiError> {
        let param = param.into();
        if self.lossy {
            self.dropped.push(param);
            Ok(())
        } else {
            Err(refuse(param, message))
        }
    }
}

/// The canonical request as a Messages body. What Messages cannot carry is refused,
/// naming the field; with `lossy`, it is left out instead and named in the list
/// returned with the body.
pub fn messages_body(
    request: &ChatRequest,
    lossy: bool,
) -> Result<(Vec<u8>, Vec<String>), ApiError> {
    let mut carry = Carry {
        lossy,
        dropped: Vec::new(),
    };
    for (key, value) in &request.extra {
        if !CARRIED.contains(&key.as_str()) {
            carry.cannot(key.clone(), "cannot be carried")?;
            continue;
        }
        let default = match key.as_str() {
            "n" => value.as_u64() == Some(1) || value.is_null(),
            "logprobs" => value == &Value::Bool(false) || value.is_null(),
            "frequency_penalty" | "presence_penalty" => value.as_f64() == Some(0.0),
            "logit_bias" => value.as_object().is_some_and(Map::is_empty),
            "response_format" => value.get("type").and_then(Value::as_str) == Some("text"),
            _ => true,
        };
        if !default {
            carry.cannot(key.clone(), "has no Messages equivalent")?;
        }
    }
    let mut body = Map::new();
    body.insert("model".into(), Value::String(request.model.clone()));
    body.insert(
        "max_tokens".into(),
        json!(request.output_cap().unwrap_or(DEFAULT_MAX_TOKENS)),
    );
    let mut system = Vec::new();
    let mut turns: Vec<(String, Vec<Value>)> = Vec::new();
    for (i, message) in request.messages.iter().enumerate() {
        let at = format!("messages[{i}]");
        match message.role.as_str() {
            "system" | "developer" => {
                system.extend(blocks(message.content.as_ref(), &at, false, &mut carry)?);
            }
            "user" => push(
                &mut turns,
                "user",
                blocks(message.content.as_ref(), &at, true, &mut carry)?,
            ),
            "assistant" => {
                let mut content = blocks(message.content.as_ref(), &at, false, &mut carry)?;
                for (j, call) in message
                    .extra
                    .get("tool_calls")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                    .enumerate()
                {
                    content.push(tool_use(
                        call,
                        &format!("{at}.tool_calls[{j}]"),
                        &mut carry,
                    )?);
                }
                push(&mut turns, "assistant", content);
            }
            "tool" => {
                let id = message
                    .extra
                    .get("tool_call_id")
                    .and_then(Value::as_str)
                    .ok_or_else(|| refuse(format!("{at}.tool_call_id"), "is required"))?;
                let text = message.content.as_ref().map(MessageContent::text);
                let mut result = json!({"type": "tool_result", "tool_use_id": id,
                                        "content": text.unwrap_or_default()});
                if message.extra.get("is_error") == Some(&Value::Bool(true)) {
                    result["is_error"] = Value::Bool(true);
                }
                if let Some(cc) = message.extra.get("cache_control") {
                    result["cache_control"] = cc.clone();
                }
                push(&mut turns, "user", vec![result]);
            }
            other => {
                return Err(refuse(
                    format!("{at}.role"),
                    format!("`{other}` has no Messages role"),
                ));
            }
        }
    }
    let marked = |v: &Value| v.get("cache_control").is_some();
    let has_breakpoints = system.iter().any(marked)
        || turns.iter().any(|(_, c)| c.iter().any(marked))
        || request
            .extra
            .get("tools")
            .and_then(Value::as_array)
            .is_some_and(|t| t.iter().any(marked));
    if !has_breakpoints {
        // A client of another API relies on automatic prefix caching: mark the system
        // prompt and the conversation before the last turn as cacheable.
        if let Some(last) = system.last_mut() {
            last["cache_control"] = json!({"type": "ephemeral"});
        }
        if turns.len() >= 2 {
            let n = turns.len();
            if let Some(last) = turns[n - 2].1.last_mut() {
                last["cache_control"] = json!({"type": "ephemeral"});
            }
        }
    }
    if !system.is_empty() {
        body.insert("system".into(), Value::Array(system));
    }
    let messages: Vec<Value> = turns
        .into_iter()
        .map(|(role, content)| json!({"role": role, "content": content}))
        .collect();
    body.insert("messages".into(), Value::Array(messages));
    if request.is_stream() {
        body.insert("stream".into(), Value::Bool(true));
    }
    for field in ["temperature", "top_p"] {
        if let Some(v) = request.extra.get(field) {
            if v.as_f64().is_some_and(|x| x > 1.0) {
                carry.cannot(
                    field,
                    "above 1 has no Messages equivalent (its range is 0 to 1)",
                )?;
                continue;
            }
            body.insert(field.into(), v.clone());
        }
    }
    if let Some(k) = request.extra.get("top_k") {
        body.insert("top_k".into(), k.clone());
    }
    match request.extra.get("stop") {
        None | Some(Value::Null) => {}
        Some(Value::String(s)) => {
            body.insert("stop_sequences".into(), json!([s]));
        }
        Some(v @ Value::Array(_)) => {
            body.insert("stop_sequences".into(), v.clone());
        }
        Some(_) => return Err(refuse("stop", "must be a string or an array of strings")),
    }
    if let Some(user) = request.extra.get("user").and_then(Value::as_str) {
        body.insert("metadata".into(), json!({"user_id": user}));
    }
    if let Some(tools) = request.extra.get("tools").and_then(Value::as_array) {
        let mut out = Vec::with_capacity(tools.len());
        for (i, tool) in tools.iter().enumerate() {
            let at = format!("tools[{i}]");
            if tool.get("type").and_then(Value::as_str) != Some("function") {
                carry.cannot(format!("{at}.type"), "only function tools can be carried")?;
                continue;
            }
            let function = tool.get("function").unwrap_or(&Value::Null);
            let mut t = json!({
                "name": function.get("name").cloned().unwrap_or(Value::Null),
                "input_schema": function.get("parameters").cloned()
                    .unwrap_or_else(|| json!({"type": "object"})),
            });
            if let Some(d) = function.get("description") {
                t["description"] = d.clone();
            }
            if let Some(cc) = tool.get("cache_control") {
                t["cache_control"] = cc.clone();
            }
            out.push(t);
        }
        body.insert("tools".into(), Value::Array(out));
    }
    let mut choice = match request.extra.get("tool_choice") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(match s.as_str() {
            "auto" => json!({"type": "auto"}),
            "required" => json!({"type": "any"}),
            "none" => json!({"type": "none"}),
            other => {
                return Err(refuse(
                    "tool_choice",
                    format!("`{other}` is not auto, required or none"),
                ));
            }
        }),
        Some(v) => match v.pointer("/function/name").and_then(Value::as_str) {
            Some(name) => Some(json!({"type": "tool", "name": name})),
            None => return Err(refuse("tool_choice", "names no function")),
        },
    };
    if request.extra.get("parallel_tool_calls") == Some(&Value::Bool(false)) {
        let c = choice.get_or_insert_with(|| json!({"type": "auto"}));
        c["disable_parallel_tool_use"] = Value::Bool(true);
    }
    if let Some(choice) = choice {
        body.insert("tool_choice".into(), choice);
    }
    let bytes = serde_json::to_vec(&Value::Object(body))
        .map_err(|e| ApiError::new(ErrorKind::InvalidRequest, format!("cannot encode: {e}")))?;
    Ok((bytes, carry.dropped))
}

/// Appends content to the last turn when it has the same role (Messages alternates
/// roles), else as a new turn.
fn push(turns: &mut Vec<(String, Vec<Value>)>, role: &str, content: Vec<Value>) {
    if content.is_empty() {
        return;
    }
    match turns.last_mut() {
        Some((last, blocks)) if last == role => blocks.extend(content),
        _ => turns.push((role.to_owned(), content)),
    }
}

/// Content as Messages blocks; `user`: images and documents allowed.
fn blocks(
    content: Option<&MessageContent>,
    at: &str,
    user: bool,
    carry: &mut Carry,
) -> Result<Vec<Value>, ApiError> {
    let parts = match content {
        None => return Ok(Vec::new()),
        Some(MessageContent::Text(t)) if t.is_empty() => return Ok(Vec::new()),
        Some(MessageContent::Text(t)) => return Ok(vec![json!({"type": "text", "text": t})]),
        Some(MessageContent::Parts(parts)) => parts,
    };
    let mut out = Vec::with_capacity(parts.len());
    for (j, part) in parts.iter().enumerate() {
        let at = format!("{at}.content[{j}]");
        let kind = part.get("type").and_then(Value::as_str).unwrap_or("");
        let mut block = match (kind, user) {
            ("text", _) => {
                json!({"type": "text", "text": part.get("text").cloned().unwrap_or_default()})
            }
            ("image_url", true) => {
                let url = part
                    .pointer("/image_url/url")
                    .and_then(Value::as_str)
                    .unwrap_or("");
                let source = match url
                    .strip_prefix("data:")
                    .and_then(|r| r.split_once(";base64,"))
                {
                    Some((media, data)) => {
                        json!({"type": "base64", "media_type": media, "data": data})
                    }
                    None => json!({"type": "url", "url": url}),
                };
                json!({"type": "image", "source": source})
            }
            ("file", true) => {
                let data = part
                    .pointer("/file/file_data")
                    .and_then(Value::as_str)
                    .unwrap_or("");
                let Some(pdf) = data.strip_prefix("data:application/pdf;base64,") else {
                    carry.cannot(at, "only PDF files given inline (file_data) can be carried")?;
                    continue;
                };
                let mut doc = json!({"type": "document",
                                     "source": {"type": "base64", "media_type": "application/pdf", "data": pdf}});
                if let Some(name) = part.pointer("/file/filename") {
                    doc["title"] = name.clone();
                }
                doc
            }
            (kind, _) => {
                carry.cannot(
                    format!("{at}.type"),
                    &format!("a `{kind}` part cannot be carried here"),
                )?;
                continue;
            }
        };
        if let Some(cc) = part.get("cache_control") {
            block["cache_control"] = cc.clone();
        }
        out.push(block);
    }
    Ok(out)
}

fn tool_use(call: &Value, at: &str, carry: &mut Carry) -> Result<Value, ApiError> {
    let arguments = call
        .pointer("/function/arguments")
        .and_then(Value::as_str)
        .unwrap_or("");
    let input = if arguments.trim().is_empty() {
        json!({})
    } else {
        match serde_json::from_str::<Value>(arguments) {
            Ok(v @ Value::Object(_)) => v,
            _ => {
                carry.cannot(format!("{at}.function.arguments"), "is not a JSON object")?;
                json!({"_raw": arguments})
            }
        }
    };
    Ok(json!({
        "type": "tool_use",
        "id": call.get("id").cloned().unwrap_or(Value::Null),
        "name": call.pointer("/function/name").cloned().unwrap_or(Value::Null),
        "input": input,
    }))
}

/// Chat Completions `finish_reason` for a Messages `stop_reason`.
fn finish_reason(stop: Option<&str>) -> Option<&'static str> {
    Some(match stop? {
        "max_tokens" => "length",
        "tool_use" => "tool_calls",
        "refusal" => "content_filter",
        _ => "stop",
    })
}

/// Chat Completions usage from Messages usage: the prompt is every input token, the
/// cache reads and writes among them.
fn usage(u: &Value) -> Value {
    let field = |k: &str| u.get(k).and_then(Value::as_u64).unwrap_or(0);
    let (input, read, written) = (
        field("input_tokens"),
        field("cache_read_input_tokens"),
        field("cache_creation_input_tokens"),
    );
    let prompt = input + read + written;
    let output = field("output_tokens");
    let mut details = json!({"cached_tokens": read});
    if written > 0 {
        details["cache_write_tokens"] = json!(written);
    }
    json!({"prompt_tokens": prompt, "completion_tokens": output, "total_tokens": prompt + output,
           "prompt_tokens_details": details})
}

fn chat_id(id: Option<&Value>) -> String {
    let id = id.and_then(Value::as_str).unwrap_or("");
    format!("chatcmpl-{}", id.strip_prefix("msg_").unwrap_or(id))
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// A Messages `message` as a Chat Completions completion.
pub fn completion_body(body: &[u8]) -> Result<Vec<u8>, ApiError> {
    let message: Value = serde_json::from_slice(body).map_err(|e| {
        ApiError::new(
            ErrorKind::Upstream,
            format!("the upstream's message is not JSON: {e}"),
        )
    })?;
    let mut text = String::new();
    let mut thinking = String::new();
    let mut calls = Vec::new();
    for block in message
        .get("content")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        match block.get("type").and_then(Value::as_str) {
            Some("text") => text.push_str(block.get("text").and_then(Value::as_str).unwrap_or("")),
            Some("thinking") => {
                thinking.push_str(block.get("thinking").and_then(Value::as_str).unwrap_or(""));
            }
            Some("tool_use") => calls.push(json!({
                "id": block.get("id"), "type": "function",
                "function": {"name": block.get("name"),
                             "arguments": block.get("input").map_or_else(|| "{}".to_owned(), Value::to_string)},
            })),
            _ => {}
        }
    }
    let stop = message.get("stop_reason").and_then(Value::as_str);
    let mut reply = json!({"role": "assistant",
                           "content": if text.is_empty() && !calls.is_empty() { Value::Null } else { Value::String(text) }});
    if !calls.is_empty() {
        reply["tool_calls"] = Value::Array(calls);
    }
    if !thinking.is_empty() {
        reply["reasoning_content"] = Value::String(thinking);
    }
    let mut choice = json!({"index": 0, "message": reply, "finish_reason": finish_reason(stop).unwrap_or("stop")});
    if let Some(sequence) = message.get("stop_sequence").filter(|s| s.is_string()) {
        choice["stop_reason"] = sequence.clone();
    }
    let completion = json!({
        "id": chat_id(message.get("id")), "object": "chat.completion", "created": now(),
        "model": message.get("model"), "choices": [choice],
        "usage": usage(message.get("usage").unwrap_or(&Value::Null)),
    });
    serde_json::to_vec(&completion)
        .map_err(|e| ApiError::new(ErrorKind::Upstream, format!("cannot encode: {e}")))
}

/// A Messages error body as the canonical error body (`{"error": {message, type,
/// code, param}}`); any other body is wrapped as the message.
pub fn error_body(status: u16, body: &[u8]) -> Vec<u8> {
    let value: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
    let message = value
        .pointer("/error/message")
        .and_then(Value::as_str)
        .map_or_else(
            || String::from_utf8_lossy(body).chars().take(1000).collect(),
            str::to_owned,
        );
    let kind = value
        .pointer("/error/type")
        .and_then(Value::as_str)
        .unwrap_or(if status < 500 {
            "invalid_request_error"
        } else {
            "api_error"
        });
    crate::error_body(&message, kind, kind, None)
        .to_string()
        .into_bytes()
}

/// A Messages event that may be a text delta.
#[derive(serde::Deserialize)]
struct BlockDelta<'a> {
    #[serde(rename = "type", borrow)]
    kind: Cow<'a, str>,
    #[serde(default, borrow)]
    delta: Option<DeltaIn<'a>>,
}

#[derive(serde::Deserialize)]
struct DeltaIn<'a> {
    #[serde(rename = "type", borrow)]
    kind: Cow<'a, str>,
    #[serde(default, borrow)]
    text: Option<Cow<'a, str>>,
}

/// A text chunk as written.
#[derive(serde::Serialize)]
struct ChunkOut<'a> {
    id: &'a str,
    object: &'static str,
    created: u64,
    model: &'a Value,
    choices: [ChoiceOut<'a>; 1],
}

#[derive(serde::Serialize)]
struct ChoiceOut<'a> {
    index: u32,
    delta: ContentOut<'a>,
    finish_reason: Option<&'static str>,
}

#[derive(serde::Serialize)]
struct ContentOut<'a> {
    content: &'a str,
}

/// Reads a Messages stream as Chat Completions chunks.
#[derive(Debug, Default)]
pub struct ChunkWriter {
    id: String,
    model: Value,
    created: u64,
    /// Usage from `message_start` (input side), completed by `message_delta`.
    usage: Map<String, Value>,
    /// Tool calls begun, for their chunk index.
    tools: u32,
    finish: Option<&'static str>,
    sequence: Option<Value>,
    over: bool,
}

impl ChunkWriter {
    fn chunk(
        &self,
        out: &mut String,
        delta: Value,
        finish: Option<&str>,
        sequence: Option<&Value>,
    ) {
        let mut choice = json!({"index": 0, "delta": delta, "finish_reason": finish});
        if let Some(s) = sequence {
            choice["stop_reason"] = s.clone();
        }
        let chunk = json!({"id": self.id, "object": "chat.completion.chunk", "created": self.created,
                           "model": self.model, "choices": [choice]});
        push_data(out, &chunk.to_string());
    }
}

fn push_data(out: &mut String, data: &str) {
    out.push_str("data: ");
    out.push_str(data);
    out.push_str("\n\n");
}

impl StreamTranslator for ChunkWriter {
    fn event(&mut self, data: &str, out: &mut String) {
        if self.over {
            return;
        }
        if let Ok(BlockDelta {
            kind,
            delta: Some(delta),
        }) = serde_json::from_str::<BlockDelta<'_>>(data)
            && kind == "content_block_delta"
            && delta.kind == "text_delta"
            && let Some(text) = delta.text
        {
            // The common event: more text, read and written without a tree.
            let chunk = ChunkOut {
                id: &self.id,
                object: "chat.completion.chunk",
                created: self.created,
                model: &self.model,
                choices: [ChoiceOut {
                    index: 0,
                    delta: ContentOut { content: &text },
                    finish_reason: None,
                }],
            };
            if let Ok(data) = serde_json::to_string(&chunk) {
                push_data(out, &data);
            }
            return;
        }
        let Ok(event) = serde_json::from_str::<Value>(data) else {
            return;
        };
        match event.get("type").and_then(Value::as_str) {
            Some("message_start") => {
                let message = event.get("message").unwrap_or(&Value::Null);
                self.id = chat_id(message.get("id"));
                self.model = message.get("model").cloned().unwrap_or(Value::Null);
                self.created = now();
                if let Some(Value::Object(u)) = message.get("usage") {
                    self.usage = u.clone();
                }
                self.chunk(out, json!({"role": "assistant", "content": ""}), None, None);
            }
            Some("content_block_start") => {
                let block = event.get("content_block").unwrap_or(&Value::Null);
                if block.get("type").and_then(Value::as_str) == Some("tool_use") {
                    let call = json!({"index": self.tools, "id": block.get("id"), "type": "function",
                                      "function": {"name": block.get("name"), "arguments": ""}});
                    self.tools += 1;
                    self.chunk(out, json!({"tool_calls": [call]}), None, None);
                }
            }
            Some("content_block_delta") => {
                let delta = event.get("delta").unwrap_or(&Value::Null);
                let text = |k: &str| delta.get(k).and_then(Value::as_str).unwrap_or("");
                match delta.get("type").and_then(Value::as_str) {
                    Some("text_delta") => {
                        self.chunk(out, json!({"content": text("text")}), None, None)
                    }
                    Some("thinking_delta") => {
                        self.chunk(
                            out,
                            json!({"reasoning_content": text("thinking")}),
                            None,
                            None,
                        );
                    }
                    Some("input_json_delta") => {
                        let call = json!({"index": self.tools.saturating_sub(1),
                                          "function": {"arguments": text("partial_json")}});
                        self.chunk(out, json!({"tool_calls": [call]}), None, None);
                    }
                    _ => {}
                }
            }
            Some("message_delta") => {
                let stop = event.pointer("/delta/stop_reason").and_then(Value::as_str);
                self.finish = finish_reason(stop);
                self.sequence = event
                    .pointer("/delta/stop_sequence")
                    .filter(|s| s.is_string())
                    .cloned();
                if let Some(Value::Object(u)) = event.get("usage") {
                    for (k, v) in u {
                        if !v.is_null() {
                            self.usage.insert(k.clone(), v.clone());
                        }
                    }
                }
            }
            Some("message_stop") => {
                self.over = true;
                let (finish, sequence) = (self.finish.unwrap_or("stop"), self.sequence.clone());
                self.chunk(out, json!({}), Some(finish), sequence.as_ref());
                let usage = usage(&Value::Object(std::mem::take(&mut self.usage)));
                let chunk = json!({"id": self.id, "object": "chat.completion.chunk", "created": self.created,
                                   "model": self.model, "choices": [], "usage": usage});
                push_data(out, &chunk.to_string());
                push_data(out, "[DONE]");
            }
            Some("error") => {
                self.over = true;
                let message = event
                    .pointer("/error/message")
                    .and_then(Value::as_str)
                    .unwrap_or("upstream error");
                let kind = event
                    .pointer("/error/type")
                    .and_then(Value::as_str)
                    .unwrap_or("api_error");
                push_data(
                    out,
                    &crate::error_body(message, kind, kind, None).to_string(),
                );
            }
            _ => {}
        }
    }

    fn end(&mut self, _out: &mut String) {
        // A stream that ends without message_stop is left unfinished: the reader
        // sees no `[DONE]` and reports it cut.
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(request: Value) -> Result<Value, ApiError> {
        let request: ChatRequest = serde_json::from_value(request).unwrap();
        messages_body(&request, false).map(|(b, _)| serde_json::from_slice(&b).unwrap())
    }

    #[test]
    fn a_chat_request_becomes_a_messages_body_with_cache_breakpoints() {
        let v = body(json!({
            "model": "claude", "max_completion_tokens": 64, "stream": true,
            "stop": "END", "temperature": 0.3, "user": "u1", "parallel_tool_calls": false,
            "messages": [
                {"role": "system", "content": "Be brief."},
                {"role": "user", "content": [{"type": "text", "text": "Weather?"},
                    {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}}]},
                {"role": "assistant", "content": null, "tool_calls": [{"id": "call_1", "type": "function",
                    "function": {"name": "weather", "arguments": "{\"city\":\"Paris\"}"}}]},
                {"role": "tool", "tool_call_id": "call_1", "content": "18C"},
                {"role": "user", "content": "Thanks"}
            ],
            "tools": [{"type": "function", "function": {"name": "weather", "description": "d",
                       "parameters": {"type": "object"}}}],
            "tool_choice": "required"
        }))
        .unwrap();
        assert_eq!(v["max_tokens"], 64);
        assert_eq!(v["stream"], true);
        assert_eq!(v["stop_sequences"], json!(["END"]));
        assert_eq!(v["metadata"]["user_id"], "u1");
        assert_eq!(v["system"][0]["text"], "Be brief.");
        // No breakpoints from the client: the system prompt and the turn before the
        // last are marked, so repeated prefixes are read from Anthropic's cache.
        assert_eq!(v["system"][0]["cache_control"]["type"], "ephemeral");
        let messages = v["messages"].as_array().unwrap();
        let roles: Vec<&str> = messages
            .iter()
            .map(|m| m["role"].as_str().unwrap())
            .collect();
        assert_eq!(
            roles,
            ["user", "assistant", "user"],
            "tool results join the user turn"
        );
        assert_eq!(
            messages[0]["content"][1]["source"]["media_type"],
            "image/png"
        );
        assert_eq!(messages[1]["content"][0]["type"], "tool_use");
        assert_eq!(messages[1]["content"][0]["input"]["city"], "Paris");
        assert_eq!(
            messages[1]["content"][0]["cache_control"]["type"],
            "ephemeral"
        );
        assert_eq!(messages[2]["content"][0]["type"], "tool_result");
        assert_eq!(messages[2]["content"][0]["tool_use_id"], "call_1");
        assert_eq!(messages[2]["content"][1]["text"], "Thanks");
        assert_eq!(v["tools"][0]["input_schema"]["type"], "object");
        assert_eq!(
            v["tool_choice"],
            json!({"type": "any", "disable_parallel_tool_use": true})
        );
    }

    #[test]
    fn the_clients_own_breakpoints_are_kept_and_no_others_added() {
        let v = body(json!({
            "model": "claude",
            "messages": [
                {"role": "system", "content": [{"type": "text", "text": "S", "cache_control": {"type": "ephemeral", "ttl": "1h"}}]},
                {"role": "user", "content": "a"}, {"role": "assistant", "content": "b"},
                {"role": "tool", "tool_call_id": "c", "content": "x", "is_error": true},
                {"role": "user", "content": "c"}
            ]
        }))
        .unwrap();
        assert_eq!(v["max_tokens"], DEFAULT_MAX_TOKENS);
        assert_eq!(v["system"][0]["cache_control"]["ttl"], "1h");
        assert_eq!(v.to_string().matches("cache_control").count(), 1, "{v}");
        assert_eq!(v["messages"][2]["content"][0]["is_error"], true);
    }

    #[test]
    fn what_messages_cannot_carry_is_refused_with_the_field_named() {
        let param = |extra: Value| {
            let mut r = json!({"model": "m", "messages": [{"role": "user", "content": "hi"}]});
            for (k, v) in extra.as_object().unwrap() {
                r[k] = v.clone();
            }
            body(r).err().and_then(|e| e.param).unwrap_or_default()
        };
        assert_eq!(param(json!({"n": 2})), "n");
        assert_eq!(param(json!({"logprobs": true})), "logprobs");
        assert_eq!(param(json!({"temperature": 1.7})), "temperature");
        assert_eq!(
            param(json!({"response_format": {"type": "json_object"}})),
            "response_format"
        );
        assert_eq!(param(json!({"frobnicate": 1})), "frobnicate");
        assert_eq!(
            param(json!({"tools": [{"type": "custom", "custom": {}}]})),
            "tools[0].type"
        );
        assert_eq!(
            param(
                json!({"messages": [{"role": "user", "content": [{"type": "input_audio", "input_audio": {}}]}]})
            ),
            "messages[0].content[0].type"
        );
        assert_eq!(param(json!({"n": 1, "seed": 3, "logprobs": false})), "");
        // Lossy: the same request goes, without what cannot be carried, named.
        let request: ChatRequest = serde_json::from_value(json!({
            "model": "m", "n": 2, "temperature": 1.5, "logprobs": true,
            "tools": [{"type": "custom", "custom": {}}, {"type": "function", "function": {"name": "f"}}],
            "messages": [{"role": "user", "content": [{"type": "text", "text": "hi"},
                                                      {"type": "input_audio", "input_audio": {}}]}]
        }))
        .unwrap();
        let (bytes, dropped) = messages_body(&request, true).unwrap();
        let v: Value = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(
            dropped,
            [
                "logprobs",
                "n",
                "messages[0].content[1].type",
                "temperature",
                "tools[0].type"
            ]
        );
        assert_eq!(v["messages"][0]["content"].as_array().unwrap().len(), 1);
        assert_eq!(v["tools"].as_array().unwrap().len(), 1);
        assert!(v.get("temperature").is_none());
    }

    #[test]
    fn a_message_becomes_a_completion_with_cache_reads_and_writes() {
        let message = json!({
            "id": "msg_1", "type": "message", "role": "assistant", "model": "claude",
            "content": [{"type": "thinking", "thinking": "hmm"}, {"type": "text", "text": "Let me check."},
                        {"type": "tool_use", "id": "toolu_1", "name": "weather", "input": {"city": "Paris"}}],
            "stop_reason": "tool_use", "stop_sequence": null,
            "usage": {"input_tokens": 10, "cache_read_input_tokens": 100,
                      "cache_creation_input_tokens": 20, "output_tokens": 7}
        });
        let v: Value =
            serde_json::from_slice(&completion_body(message.to_string().as_bytes()).unwrap())
                .unwrap();
        assert_eq!(v["id"], "chatcmpl-1");
        assert_eq!(v["object"], "chat.completion");
        let choice = &v["choices"][0];
        assert_eq!(choice["finish_reason"], "tool_calls");
        assert_eq!(choice["message"]["content"], "Let me check.");
        assert_eq!(choice["message"]["reasoning_content"], "hmm");
        assert_eq!(choice["message"]["tool_calls"][0]["id"], "toolu_1");
        assert_eq!(
            choice["message"]["tool_calls"][0]["function"]["arguments"],
            "{\"city\":\"Paris\"}"
        );
        assert_eq!(v["usage"]["prompt_tokens"], 130);
        assert_eq!(v["usage"]["prompt_tokens_details"]["cached_tokens"], 100);
        assert_eq!(
            v["usage"]["prompt_tokens_details"]["cache_write_tokens"],
            20
        );
        assert_eq!(v["usage"]["total_tokens"], 137);
        let error = error_body(
            429,
            br#"{"type":"error","error":{"type":"rate_limit_error","message":"slow down"}}"#,
        );
        let e: Value = serde_json::from_slice(&error).unwrap();
        assert_eq!(e["error"]["message"], "slow down");
        assert_eq!(e["error"]["type"], "rate_limit_error");
    }

    #[test]
    fn a_messages_stream_becomes_chunks_ending_with_usage_and_done() {
        let events = [
            json!({"type": "message_start", "message": {"id": "msg_2", "model": "claude",
                   "usage": {"input_tokens": 5, "cache_read_input_tokens": 50, "output_tokens": 1}}}),
            json!({"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}),
            json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "Hi"}}),
            json!({"type": "content_block_stop", "index": 0}),
            json!({"type": "content_block_start", "index": 1,
                   "content_block": {"type": "tool_use", "id": "toolu_2", "name": "f", "input": {}}}),
            json!({"type": "content_block_delta", "index": 1,
                   "delta": {"type": "input_json_delta", "partial_json": "{\"a\":"}}),
            json!({"type": "content_block_delta", "index": 1,
                   "delta": {"type": "input_json_delta", "partial_json": "1}"}}),
            json!({"type": "message_delta", "delta": {"stop_reason": "tool_use", "stop_sequence": null},
                   "usage": {"output_tokens": 9}}),
            json!({"type": "message_stop"}),
        ];
        let mut writer = ChunkWriter::default();
        let mut out = String::new();
        for e in &events {
            writer.event(&e.to_string(), &mut out);
        }
        let datas: Vec<&str> = out
            .split("\n\n")
            .filter_map(|e| e.strip_prefix("data: "))
            .collect();
        assert_eq!(datas.last(), Some(&"[DONE]"));
        let chunks: Vec<Value> = datas[..datas.len() - 1]
            .iter()
            .map(|d| serde_json::from_str(d).unwrap())
            .collect();
        assert!(chunks.iter().all(|c| c["id"] == "chatcmpl-2"));
        assert_eq!(chunks[1]["choices"][0]["delta"]["content"], "Hi");
        assert_eq!(
            chunks[2]["choices"][0]["delta"]["tool_calls"][0]["id"],
            "toolu_2"
        );
        let arguments: String = chunks
            .iter()
            .filter_map(|c| c.pointer("/choices/0/delta/tool_calls/0/function/arguments"))
            .filter_map(Value::as_str)
            .collect();
        assert_eq!(arguments, "{\"a\":1}");
        let finish = &chunks[chunks.len() - 2];
        assert_eq!(finish["choices"][0]["finish_reason"], "tool_calls");
        let usage = &chunks[chunks.len() - 1]["usage"];
        assert_eq!(usage["prompt_tokens"], 55);
        assert_eq!(usage["completion_tokens"], 9);
        assert_eq!(usage["prompt_tokens_details"]["cached_tokens"], 50);
        // An error event ends the stream with the canonical terminal error.
        let mut writer = ChunkWriter::default();
        let mut out = String::new();
        writer.event(
            &json!({"type": "error", "error": {"type": "overloaded_error", "message": "busy"}})
                .to_string(),
            &mut out,
        );
        assert!(out.contains("\"busy\"") && !out.contains("[DONE]"), "{out}");
    }
}
