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
    let mut system = Vec::new();
    let mut turns: Vec<TurnOut<'_>> = Vec::new();
    for (i, message) in request.messages.iter().enumerate() {
        let at = || format!("messages[{i}]");
        match message.role.as_str() {
            "system" | "developer" => {
                blocks(
                    message.content.as_ref(),
                    &at,
                    false,
                    &mut carry,
                    &mut system,
                )?;
            }
            "user" => {
                let mut content = Vec::new();
                blocks(
                    message.content.as_ref(),
                    &at,
                    true,
                    &mut carry,
                    &mut content,
                )?;
                push(&mut turns, "user", content);
            }
            "assistant" => {
                let mut content = Vec::new();
                blocks(
                    message.content.as_ref(),
                    &at,
                    false,
                    &mut carry,
                    &mut content,
                )?;
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
                        || format!("{}.tool_calls[{j}]", at()),
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
                    .ok_or_else(|| refuse(format!("{}.tool_call_id", at()), "is required"))?;
                let content = match &message.content {
                    None => Cow::Borrowed(""),
                    Some(MessageContent::Text(text)) => Cow::Borrowed(text.as_str()),
                    Some(content) => Cow::Owned(content.text()),
                };
                let result = BlockOut {
                    block: Block::ToolResult {
                        tool_use_id: id,
                        content,
                        is_error: message.extra.get("is_error") == Some(&Value::Bool(true)),
                    },
                    cache_control: message.extra.get("cache_control").map(Breakpoint::Given),
                };
                push(&mut turns, "user", vec![result]);
            }
            other => {
                return Err(refuse(
                    format!("{}.role", at()),
                    format!("`{other}` has no Messages role"),
                ));
            }
        }
    }
    let tools = request.extra.get("tools").and_then(Value::as_array);
    let has_breakpoints = system.iter().any(|b| b.cache_control.is_some())
        || turns
            .iter()
            .any(|t| t.content.iter().any(|b| b.cache_control.is_some()))
        || tools.is_some_and(|t| t.iter().any(|t| t.get("cache_control").is_some()));
    if !has_breakpoints {
        // A client of another API relies on automatic prefix caching: mark the system
        // prompt and the conversation before the last turn as cacheable.
        if let Some(last) = system.last_mut() {
            last.cache_control = Some(Breakpoint::Ephemeral);
        }
        if turns.len() >= 2 {
            let n = turns.len();
            if let Some(last) = turns[n - 2].content.last_mut() {
                last.cache_control = Some(Breakpoint::Ephemeral);
            }
        }
    }
    let mut sampling = [None, None];
    for (slot, field) in sampling.iter_mut().zip(["temperature", "top_p"]) {
        if let Some(v) = request.extra.get(field) {
            if v.as_f64().is_some_and(|x| x > 1.0) {
                carry.cannot(
                    field,
                    "above 1 has no Messages equivalent (its range is 0 to 1)",
                )?;
                continue;
            }
            *slot = Some(v);
        }
    }
    let stop_sequences = match request.extra.get("stop") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(Cow::Owned(json!([s]))),
        Some(v @ Value::Array(_)) => Some(Cow::Borrowed(v)),
        Some(_) => return Err(refuse("stop", "must be a string or an array of strings")),
    };
    let mut tools_out = None;
    if let Some(tools) = tools {
        let mut out = Vec::with_capacity(tools.len());
        for (i, tool) in tools.iter().enumerate() {
            if tool.get("type").and_then(Value::as_str) != Some("function") {
                carry.cannot(
                    format!("tools[{i}].type"),
                    "only function tools can be carried",
                )?;
                continue;
            }
            let function = tool.get("function").unwrap_or(&Value::Null);
            out.push(ToolOut {
                name: function.get("name").unwrap_or(&Value::Null),
                input_schema: function
                    .get("parameters")
                    .map_or_else(|| Cow::Owned(json!({"type": "object"})), Cow::Borrowed),
                description: function.get("description"),
                cache_control: tool.get("cache_control"),
            });
        }
        tools_out = Some(out);
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
    let [temperature, top_p] = sampling;
    let body = BodyOut {
        model: &request.model,
        max_tokens: request.output_cap().unwrap_or(DEFAULT_MAX_TOKENS),
        system,
        messages: turns,
        stream: request.is_stream().then_some(true),
        temperature,
        top_p,
        top_k: request.extra.get("top_k"),
        stop_sequences,
        metadata: request
            .extra
            .get("user")
            .and_then(Value::as_str)
            .map(|user_id| MetadataOut { user_id }),
        tools: tools_out,
        tool_choice: choice,
    };
    let bytes = serde_json::to_vec(&body)
        .map_err(|e| ApiError::new(ErrorKind::InvalidRequest, format!("cannot encode: {e}")))?;
    Ok((bytes, carry.dropped))
}

/// A Messages body as written: borrowed from the canonical request where it can be.
#[derive(serde::Serialize)]
struct BodyOut<'a> {
    model: &'a str,
    max_tokens: u32,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    system: Vec<BlockOut<'a>>,
    messages: Vec<TurnOut<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    stream: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    temperature: Option<&'a Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    top_p: Option<&'a Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    top_k: Option<&'a Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    stop_sequences: Option<Cow<'a, Value>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    metadata: Option<MetadataOut<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tools: Option<Vec<ToolOut<'a>>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tool_choice: Option<Value>,
}

#[derive(serde::Serialize)]
struct MetadataOut<'a> {
    user_id: &'a str,
}

#[derive(serde::Serialize)]
struct ToolOut<'a> {
    name: &'a Value,
    input_schema: Cow<'a, Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    description: Option<&'a Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    cache_control: Option<&'a Value>,
}

#[derive(serde::Serialize)]
struct TurnOut<'a> {
    role: &'static str,
    content: Vec<BlockOut<'a>>,
}

/// A content block and its breakpoint.
struct BlockOut<'a> {
    block: Block<'a>,
    cache_control: Option<Breakpoint<'a>>,
}

/// A breakpoint: the client's, or one added for automatic prefix caching.
enum Breakpoint<'a> {
    Given(&'a Value),
    Ephemeral,
}

enum Block<'a> {
    /// A string, or (from a part) whatever its `text` held.
    Text(Cow<'a, str>),
    TextValue(Option<&'a Value>),
    Image(Source<'a>),
    Document {
        data: &'a str,
        title: Option<&'a Value>,
    },
    ToolUse {
        id: Option<&'a Value>,
        name: Option<&'a Value>,
        input: Value,
    },
    ToolResult {
        tool_use_id: &'a str,
        content: Cow<'a, str>,
        is_error: bool,
    },
}

enum Source<'a> {
    Base64 { media_type: &'a str, data: &'a str },
    Url(&'a str),
}

impl serde::Serialize for Source<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut map = serializer.serialize_map(None)?;
        match self {
            Source::Base64 { media_type, data } => {
                map.serialize_entry("type", "base64")?;
                map.serialize_entry("media_type", media_type)?;
                map.serialize_entry("data", data)?;
            }
            Source::Url(url) => {
                map.serialize_entry("type", "url")?;
                map.serialize_entry("url", url)?;
            }
        }
        map.end()
    }
}

impl serde::Serialize for BlockOut<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let null = Value::Null;
        let mut map = serializer.serialize_map(None)?;
        match &self.block {
            Block::Text(text) => {
                map.serialize_entry("type", "text")?;
                map.serialize_entry("text", text)?;
            }
            Block::TextValue(text) => {
                map.serialize_entry("type", "text")?;
                map.serialize_entry("text", text.unwrap_or(&null))?;
            }
            Block::Image(source) => {
                map.serialize_entry("type", "image")?;
                map.serialize_entry("source", source)?;
            }
            Block::Document { data, title } => {
                map.serialize_entry("type", "document")?;
                let source = Source::Base64 {
                    media_type: "application/pdf",
                    data,
                };
                map.serialize_entry("source", &source)?;
                if let Some(title) = title {
                    map.serialize_entry("title", title)?;
                }
            }
            Block::ToolUse { id, name, input } => {
                map.serialize_entry("type", "tool_use")?;
                map.serialize_entry("id", id.unwrap_or(&null))?;
                map.serialize_entry("name", name.unwrap_or(&null))?;
                map.serialize_entry("input", input)?;
            }
            Block::ToolResult {
                tool_use_id,
                content,
                is_error,
            } => {
                map.serialize_entry("type", "tool_result")?;
                map.serialize_entry("tool_use_id", tool_use_id)?;
                map.serialize_entry("content", content)?;
                if *is_error {
                    map.serialize_entry("is_error", &true)?;
                }
            }
        }
        match &self.cache_control {
            None => {}
            Some(Breakpoint::Given(cc)) => map.serialize_entry("cache_control", cc)?,
            Some(Breakpoint::Ephemeral) => {
                map.serialize_entry("cache_control", &json!({"type": "ephemeral"}))?;
            }
        }
        map.end()
    }
}

/// Appends content to the last turn when it has the same role (Messages alternates
/// roles), else as a new turn.
fn push<'a>(turns: &mut Vec<TurnOut<'a>>, role: &'static str, content: Vec<BlockOut<'a>>) {
    if content.is_empty() {
        return;
    }
    match turns.last_mut() {
        Some(last) if last.role == role => last.content.extend(content),
        _ => turns.push(TurnOut { role, content }),
    }
}

/// Content as Messages blocks, appended to `out`; `user`: images and documents
/// allowed. `at` names the message (for refusals).
fn blocks<'a>(
    content: Option<&'a MessageContent>,
    at: &dyn Fn() -> String,
    user: bool,
    carry: &mut Carry,
    out: &mut Vec<BlockOut<'a>>,
) -> Result<(), ApiError> {
    let parts = match content {
        None => return Ok(()),
        Some(MessageContent::Text(t)) if t.is_empty() => return Ok(()),
        Some(MessageContent::Text(t)) => {
            out.push(BlockOut {
                block: Block::Text(Cow::Borrowed(t)),
                cache_control: None,
            });
            return Ok(());
        }
        Some(MessageContent::Parts(parts)) => parts,
    };
    for (j, part) in parts.iter().enumerate() {
        let kind = part.get("type").and_then(Value::as_str).unwrap_or("");
        let block = match (kind, user) {
            ("text", _) => match part.get("text") {
                Some(Value::String(text)) => Block::Text(Cow::Borrowed(text)),
                other => Block::TextValue(other),
            },
            ("image_url", true) => {
                let url = part
                    .pointer("/image_url/url")
                    .and_then(Value::as_str)
                    .unwrap_or("");
                Block::Image(
                    match url
                        .strip_prefix("data:")
                        .and_then(|r| r.split_once(";base64,"))
                    {
                        Some((media_type, data)) => Source::Base64 { media_type, data },
                        None => Source::Url(url),
                    },
                )
            }
            ("file", true) => {
                let data = part
                    .pointer("/file/file_data")
                    .and_then(Value::as_str)
                    .unwrap_or("");
                let Some(pdf) = data.strip_prefix("data:application/pdf;base64,") else {
                    carry.cannot(
                        format!("{}.content[{j}]", at()),
                        "only PDF files given inline (file_data) can be carried",
                    )?;
                    continue;
                };
                Block::Document {
                    data: pdf,
                    title: part.pointer("/file/filename"),
                }
            }
            (kind, _) => {
                carry.cannot(
                    format!("{}.content[{j}].type", at()),
                    &format!("a `{kind}` part cannot be carried here"),
                )?;
                continue;
            }
        };
        out.push(BlockOut {
            block,
            cache_control: part.get("cache_control").map(Breakpoint::Given),
        });
    }
    Ok(())
}

fn tool_use<'a>(
    call: &'a Value,
    at: impl Fn() -> String,
    carry: &mut Carry,
) -> Result<BlockOut<'a>, ApiError> {
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
                carry.cannot(
                    format!("{}.function.arguments", at()),
                    "is not a JSON object",
                )?;
                json!({"_raw": arguments})
            }
        }
    };
    Ok(BlockOut {
        block: Block::ToolUse {
            id: call.get("id"),
            name: call.pointer("/function/name"),
            input,
        },
        cache_control: None,
    })
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

/// Chat Completions usage from Messages usage (a stream's, gathered as a tree).
fn usage(u: &Value) -> Value {
    let u = <UsageIn as serde::Deserialize>::deserialize(u).unwrap_or_default();
    serde_json::to_value(UsageOut::of(&u)).unwrap_or(Value::Null)
}

fn chat_id(id: Option<&str>) -> String {
    let id = id.unwrap_or("");
    format!("chatcmpl-{}", id.strip_prefix("msg_").unwrap_or(id))
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// A Messages `message` as a Chat Completions completion.
pub fn completion_body(body: &[u8]) -> Result<Vec<u8>, ApiError> {
    let message: MessageIn<'_> = serde_json::from_slice(body).map_err(|e| {
        ApiError::new(
            ErrorKind::Upstream,
            format!("the upstream's answer is not a Messages message: {e}"),
        )
    })?;
    let mut text: Option<Cow<'_, str>> = None;
    let mut thinking = String::new();
    let mut calls = Vec::new();
    for block in message.content.into_iter().flatten() {
        match block.kind.as_deref() {
            Some("text") => {
                let more = block.text.unwrap_or_default();
                match &mut text {
                    None => text = Some(more),
                    Some(text) => text.to_mut().push_str(&more),
                }
            }
            Some("thinking") => thinking.push_str(block.thinking.as_deref().unwrap_or("")),
            Some("tool_use") => calls.push(CallOut {
                id: block.id,
                kind: "function",
                function: FunctionOut {
                    name: block.name,
                    arguments: block
                        .input
                        .map_or_else(|| "{}".to_owned(), |input| input.to_string()),
                },
            }),
            _ => {}
        }
    }
    let text = text.unwrap_or_default();
    let content = (!text.is_empty() || calls.is_empty()).then_some(text);
    let completion = CompletionOut {
        id: chat_id(message.id.as_deref()),
        object: "chat.completion",
        created: now(),
        model: message.model.as_deref(),
        choices: [WholeChoiceOut {
            index: 0,
            message: ReplyOut {
                role: "assistant",
                content,
                tool_calls: calls,
                reasoning_content: (!thinking.is_empty()).then_some(thinking),
            },
            finish_reason: finish_reason(message.stop_reason.as_deref()).unwrap_or("stop"),
            stop_reason: message.stop_sequence.filter(Value::is_string),
        }],
        usage: UsageOut::of(&message.usage.unwrap_or_default()),
    };
    serde_json::to_vec(&completion)
        .map_err(|e| ApiError::new(ErrorKind::Upstream, format!("cannot encode: {e}")))
}

/// A Messages `message`, as far as a completion reads it.
#[derive(serde::Deserialize)]
struct MessageIn<'a> {
    #[serde(default, borrow)]
    id: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    model: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    content: Option<Vec<BlockIn<'a>>>,
    #[serde(default, borrow)]
    stop_reason: Option<Cow<'a, str>>,
    #[serde(default)]
    stop_sequence: Option<Value>,
    #[serde(default)]
    usage: Option<UsageIn>,
}

#[derive(serde::Deserialize)]
struct BlockIn<'a> {
    #[serde(rename = "type", default, borrow)]
    kind: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    text: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    thinking: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    id: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    name: Option<Cow<'a, str>>,
    #[serde(default)]
    input: Option<Value>,
}

/// Messages usage, every field optional.
#[derive(serde::Deserialize, Default)]
struct UsageIn {
    #[serde(default)]
    input_tokens: Option<u64>,
    #[serde(default)]
    cache_read_input_tokens: Option<u64>,
    #[serde(default)]
    cache_creation_input_tokens: Option<u64>,
    #[serde(default)]
    output_tokens: Option<u64>,
}

#[derive(serde::Serialize)]
struct CompletionOut<'a> {
    id: String,
    object: &'static str,
    created: u64,
    model: Option<&'a str>,
    choices: [WholeChoiceOut<'a>; 1],
    usage: UsageOut,
}

#[derive(serde::Serialize)]
struct WholeChoiceOut<'a> {
    index: u32,
    message: ReplyOut<'a>,
    finish_reason: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    stop_reason: Option<Value>,
}

#[derive(serde::Serialize)]
struct ReplyOut<'a> {
    role: &'static str,
    content: Option<Cow<'a, str>>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    tool_calls: Vec<CallOut<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    reasoning_content: Option<String>,
}

#[derive(serde::Serialize)]
struct CallOut<'a> {
    id: Option<Cow<'a, str>>,
    #[serde(rename = "type")]
    kind: &'static str,
    function: FunctionOut<'a>,
}

#[derive(serde::Serialize)]
struct FunctionOut<'a> {
    name: Option<Cow<'a, str>>,
    arguments: String,
}

/// Chat Completions usage from Messages usage: the prompt is every input token, the
/// cache reads and writes among them.
#[derive(serde::Serialize)]
struct UsageOut {
    prompt_tokens: u64,
    completion_tokens: u64,
    total_tokens: u64,
    prompt_tokens_details: DetailsOut,
}

#[derive(serde::Serialize)]
struct DetailsOut {
    cached_tokens: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    cache_write_tokens: Option<u64>,
}

impl UsageOut {
    fn of(u: &UsageIn) -> UsageOut {
        let read = u.cache_read_input_tokens.unwrap_or(0);
        let written = u.cache_creation_input_tokens.unwrap_or(0);
        let prompt = u
            .input_tokens
            .unwrap_or(0)
            .saturating_add(read)
            .saturating_add(written);
        let output = u.output_tokens.unwrap_or(0);
        UsageOut {
            prompt_tokens: prompt,
            completion_tokens: output,
            total_tokens: prompt.saturating_add(output),
            prompt_tokens_details: DetailsOut {
                cached_tokens: read,
                cache_write_tokens: (written > 0).then_some(written),
            },
        }
    }
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
                self.id = chat_id(message.get("id").and_then(Value::as_str));
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
