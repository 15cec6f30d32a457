//! OpenAI Chat Completions request and response pieces.
//!
//! Only the fields the router reads are typed; everything else is kept verbatim in
//! `extra` maps so that a forwarded request loses nothing the client sent.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// A `POST /v1/chat/completions` body.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ChatRequest {
    /// The requested model: a configured model name, or a routing alias such as `auto`.
    pub model: String,
    /// The conversation so far.
    pub messages: Vec<Message>,
    /// Whether the answer is streamed as server-sent events.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stream: Option<bool>,
    /// Stream options (`include_usage`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stream_options: Option<StreamOptions>,
    /// Upper bound on generated tokens (legacy name).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_tokens: Option<u32>,
    /// Upper bound on generated tokens (current name).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_completion_tokens: Option<u32>,
    /// Every other field, forwarded unchanged.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl ChatRequest {
    /// Whether the client asked for a stream.
    pub fn is_stream(&self) -> bool {
        self.stream.unwrap_or(false)
    }

    /// The generation cap the client set, under either name.
    pub fn output_cap(&self) -> Option<u32> {
        self.max_completion_tokens.or(self.max_tokens)
    }

    /// Caps generation at `cap` tokens: sets `max_tokens` when neither field is set,
    /// else lowers whichever are set above it.
    pub fn cap_output(&mut self, cap: u32) {
        match (&mut self.max_tokens, &mut self.max_completion_tokens) {
            (None, None) => self.max_tokens = Some(cap),
            (a, b) => {
                for field in [a, b].into_iter().flatten() {
                    *field = (*field).min(cap);
                }
            }
        }
    }

    /// How many answers the client asked for (`n`; 1 when absent or not a count the
    /// dialect accepted).
    pub fn answers(&self) -> u32 {
        self.extra
            .get("n")
            .and_then(serde_json::Value::as_u64)
            .and_then(|n| u32::try_from(n).ok())
            .filter(|n| *n >= 1)
            .unwrap_or(1)
    }

    /// The body sent to a Chat Completions upstream. Markers only Anthropic reads are
    /// taken out: `cache_control` breakpoints (vLLM, SGLang and OpenAI cache prefixes
    /// by themselves) and the `is_error` flag of a tool result (said in its text
    /// instead, as `Error: …`). A request without them is encoded as it stands.
    pub fn upstream_body(&self) -> serde_json::Result<Vec<u8>> {
        self.upstream_body_keyed(false)
    }

    /// [`ChatRequest::upstream_body`], with `prompt_cache_key` set (when `key` and
    /// the client set none) to [`ChatRequest::derived_cache_key`]: OpenAI's API
    /// routes requests with one key to the machines that cache their prefix.
    pub fn upstream_body_keyed(&self, key: bool) -> serde_json::Result<Vec<u8>> {
        let key = if key && !self.extra.contains_key("prompt_cache_key") {
            self.derived_cache_key()
        } else {
            None
        };
        if key.is_none() && !self.has_anthropic_markers() {
            return serde_json::to_vec(self);
        }
        // Written through a view that leaves the markers out, not a stripped copy.
        serde_json::to_vec(&Unmarked(self, key.as_deref()))
    }

    /// A key for the prefix this request shares with others: a digest of its tools
    /// and its messages up to its first cache breakpoint (the prefix an Anthropic
    /// client marks as stable, usually the system prompt), else up to its last
    /// leading system or developer message. `None` when it has neither. Breakpoints
    /// themselves are not part of it.
    pub fn derived_cache_key(&self) -> Option<String> {
        let marked = |m: &Message| {
            m.extra.contains_key("cache_control")
                || matches!(&m.content, Some(MessageContent::Parts(p))
                            if p.iter().any(|p| p.get("cache_control").is_some()))
        };
        let end = match self.messages.iter().position(marked) {
            Some(first) => first + 1,
            None => self
                .messages
                .iter()
                .take_while(|m| m.role == "system" || m.role == "developer")
                .count(),
        };
        if end == 0 {
            return None;
        }
        // What a message says, however it is written (a string, or text parts with
        // breakpoints): its role, its text, its other parts and fields.
        let mut bytes = Vec::new();
        for m in &self.messages[..end] {
            bytes.extend_from_slice(m.role.as_bytes());
            bytes.push(0);
            if let Some(content) = &m.content {
                bytes.extend_from_slice(content.text().as_bytes());
                if let MessageContent::Parts(parts) = content {
                    for part in parts.iter().filter(|p| part_text(p).is_none()) {
                        bytes.extend(serde_json::to_vec(&View(part, WithoutCacheControl)).ok()?);
                    }
                }
            }
            bytes.push(0);
            for (k, v) in &m.extra {
                if k != "cache_control" && k != "is_error" {
                    bytes.extend_from_slice(k.as_bytes());
                    bytes.extend(serde_json::to_vec(v).ok()?);
                }
            }
            bytes.push(0);
        }
        if let Some(Value::Array(tools)) = self.extra.get("tools") {
            bytes.extend(serde_json::to_vec(&Each(tools, WithoutCacheControl)).ok()?);
        }
        use crate::hash::{FNV_OFFSET, fnv1a, mix64};
        let a = mix64(fnv1a(&bytes, FNV_OFFSET));
        let b = mix64(fnv1a(&bytes, mix64(FNV_OFFSET)));
        Some(format!("sy-{a:016x}{b:016x}"))
    }

    /// Whether a message, part or tool carries `cache_control` or `is_error`.
    pub fn has_anthropic_markers(&self) -> bool {
        let marked = |v: &Value| v.get("cache_control").is_some();
        self.messages.iter().any(|m| {
            m.extra.contains_key("cache_control")
                || m.extra.contains_key("is_error")
                || matches!(&m.content, Some(MessageContent::Parts(p)) if p.iter().any(marked))
        }) || self
            .extra
            .get("tools")
            .and_then(Value::as_array)
            .is_some_and(|t| t.iter().any(marked))
    }

    /// Whether the client asked for a final usage chunk on a stream.
    pub fn wants_stream_usage(&self) -> bool {
        self.stream_options
            .as_ref()
            .and_then(|o| o.include_usage)
            .unwrap_or(false)
    }
}

/// A request as a Chat Completions upstream reads it: every field as it stands but
/// `cache_control` (on messages, parts and tools) and `is_error` (said in the text of
/// the tool result it marks), and `prompt_cache_key` added when given. Field order is
/// the request's own.
struct Unmarked<'a>(&'a ChatRequest, Option<&'a str>);

impl Serialize for Unmarked<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let r = self.0;
        let mut map = serializer.serialize_map(None)?;
        map.serialize_entry("model", &r.model)?;
        map.serialize_entry("messages", &Each(&r.messages, UnmarkedMessage))?;
        if let Some(stream) = &r.stream {
            map.serialize_entry("stream", stream)?;
        }
        if let Some(options) = &r.stream_options {
            map.serialize_entry("stream_options", options)?;
        }
        if let Some(n) = &r.max_tokens {
            map.serialize_entry("max_tokens", n)?;
        }
        if let Some(n) = &r.max_completion_tokens {
            map.serialize_entry("max_completion_tokens", n)?;
        }
        for (k, v) in &r.extra {
            match (k.as_str(), v) {
                ("tools", Value::Array(tools)) => {
                    map.serialize_entry(k, &Each(tools, WithoutCacheControl))?;
                }
                _ => map.serialize_entry(k, v)?,
            }
        }
        if let Some(key) = self.1 {
            map.serialize_entry("prompt_cache_key", key)?;
        }
        map.end()
    }
}

/// A slice serialized through a view of each item (`V` wraps one item).
struct Each<'a, T, V>(&'a [T], V);

impl<T, V: Copy + ViewOf<T>> Serialize for Each<'_, T, V> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_seq(self.0.iter().map(|item| View(item, self.1)))
    }
}

/// How a view writes one item.
trait ViewOf<T> {
    fn write<S: serde::Serializer>(&self, item: &T, serializer: S) -> Result<S::Ok, S::Error>;
}

struct View<'a, T, V>(&'a T, V);

impl<T, V: ViewOf<T>> Serialize for View<'_, T, V> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.1.write(self.0, serializer)
    }
}

/// A JSON object without its `cache_control` (anything else as it stands).
#[derive(Clone, Copy)]
struct WithoutCacheControl;

impl ViewOf<Value> for WithoutCacheControl {
    fn write<S: serde::Serializer>(&self, item: &Value, serializer: S) -> Result<S::Ok, S::Error> {
        let Value::Object(object) = item else {
            return item.serialize(serializer);
        };
        serializer.collect_map(object.iter().filter(|(k, _)| *k != "cache_control"))
    }
}

/// A message without Anthropic's markers.
#[derive(Clone, Copy)]
struct UnmarkedMessage;

impl ViewOf<Message> for UnmarkedMessage {
    fn write<S: serde::Serializer>(&self, m: &Message, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut map = serializer.serialize_map(None)?;
        map.serialize_entry("role", &m.role)?;
        if m.extra.get("is_error") == Some(&Value::Bool(true)) {
            let text = m.content.as_ref().map(MessageContent::text);
            map.serialize_entry("content", &format!("Error: {}", text.unwrap_or_default()))?;
        } else {
            match &m.content {
                None => {}
                Some(MessageContent::Text(text)) => map.serialize_entry("content", text)?,
                Some(MessageContent::Parts(parts)) => {
                    map.serialize_entry("content", &Each(parts, WithoutCacheControl))?;
                }
            }
        }
        for (k, v) in &m.extra {
            if k != "cache_control" && k != "is_error" {
                map.serialize_entry(k, v)?;
            }
        }
        map.end()
    }
}

/// `stream_options` of a chat request.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct StreamOptions {
    /// Send a last chunk carrying `usage` before `[DONE]`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub include_usage: Option<bool>,
    /// Other stream options, forwarded unchanged.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// One message of a chat request.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Message {
    /// `system`, `developer`, `user`, `assistant` or `tool`.
    pub role: String,
    /// Text, an array of content parts, or absent (assistant tool calls).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content: Option<MessageContent>,
    /// Other message fields (`name`, `tool_calls`, `tool_call_id`, …), forwarded unchanged.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// The content of a message: plain text or typed parts.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(untagged)]
pub enum MessageContent {
    /// Plain text.
    Text(String),
    /// Content parts such as `{"type": "text", "text": …}` or `{"type": "image_url", …}`.
    Parts(Vec<Value>),
}

impl MessageContent {
    /// The text of this content: the string, or the `text` parts joined by newlines.
    pub fn text(&self) -> String {
        match self {
            MessageContent::Text(s) => s.clone(),
            MessageContent::Parts(parts) => {
                let mut out = String::new();
                for text in parts.iter().filter_map(part_text) {
                    if !out.is_empty() {
                        out.push('\n');
                    }
                    out.push_str(text);
                }
                out
            }
        }
    }

    /// How many parts are images (`image_url`, `input_image`).
    pub fn images(&self) -> usize {
        match self {
            MessageContent::Text(_) => 0,
            MessageContent::Parts(parts) => parts
                .iter()
                .filter(|p| {
                    matches!(
                        p.get("type").and_then(Value::as_str),
                        Some("image_url" | "input_image" | "image")
                    )
                })
                .count(),
        }
    }

    /// How many parts are not text (images, audio, files).
    pub fn non_text_parts(&self) -> usize {
        match self {
            MessageContent::Text(_) => 0,
            MessageContent::Parts(parts) => parts.iter().filter(|p| part_text(p).is_none()).count(),
        }
    }
}

fn part_text(part: &Value) -> Option<&str> {
    let obj = part.as_object()?;
    match obj.get("type").and_then(Value::as_str) {
        Some("text") | Some("input_text") => obj.get("text").and_then(Value::as_str),
        _ => None,
    }
}

/// Token accounting of a completion.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Usage {
    /// Tokens of the prompt.
    pub prompt_tokens: u64,
    /// Tokens generated.
    pub completion_tokens: u64,
    /// Their sum.
    pub total_tokens: u64,
    /// What the upstream's prompt cache held of the prompt (absent when it said
    /// nothing).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prompt_tokens_details: Option<PromptTokensDetails>,
}

/// OpenAI's `usage.prompt_tokens_details`: the prompt's tokens read from the cache.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PromptTokensDetails {
    /// Prompt tokens read from the upstream's prompt cache.
    #[serde(default)]
    pub cached_tokens: u64,
    /// Prompt tokens written to the upstream's prompt cache (Anthropic's
    /// `cache_creation_input_tokens`; OpenAI does not report them).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub cache_write_tokens: u64,
}

#[allow(clippy::trivially_copy_pass_by_ref)]
fn is_zero(n: &u64) -> bool {
    *n == 0
}

impl Usage {
    /// Usage with the total filled in.
    pub fn new(prompt_tokens: u64, completion_tokens: u64) -> Self {
        Usage {
            prompt_tokens,
            completion_tokens,
            total_tokens: prompt_tokens + completion_tokens,
            prompt_tokens_details: None,
        }
    }

    /// Prompt tokens read from the upstream's prompt cache.
    pub fn cached_tokens(&self) -> u64 {
        self.prompt_tokens_details.map_or(0, |d| d.cached_tokens)
    }

    /// Usage with `cached` prompt tokens read from the cache.
    pub fn with_cached(mut self, cached: u64) -> Self {
        self.prompt_tokens_details = Some(PromptTokensDetails {
            cached_tokens: cached,
            cache_write_tokens: 0,
        });
        self
    }

    /// Reads `usage` out of a completion's body, if it has one, without building the
    /// rest of the answer: every other field is skipped as it is read. A body that is
    /// not a JSON object has none.
    pub fn from_body(body: &[u8]) -> Option<Usage> {
        #[derive(Deserialize)]
        struct UsageOnly {
            #[serde(default)]
            usage: Option<Value>,
        }
        let only: UsageOnly = serde_json::from_slice(body).ok()?;
        Self::from_usage(&only.usage?)
    }

    /// Reads `usage` out of a completion or chunk object, if it has one.
    pub fn from_json(value: &Value) -> Option<Usage> {
        Self::from_usage(value.get("usage")?)
    }

    fn from_usage(usage: &Value) -> Option<Usage> {
        if usage.is_null() {
            return None;
        }
        let field = |name: &str| usage.get(name).and_then(Value::as_u64).unwrap_or(0);
        let prompt = field("prompt_tokens");
        let completion = field("completion_tokens");
        let details = usage
            .get("prompt_tokens_details")
            .filter(|d| d.is_object())
            .map(|d| {
                let field = |name: &str| d.get(name).and_then(Value::as_u64).unwrap_or(0);
                PromptTokensDetails {
                    cached_tokens: field("cached_tokens"),
                    cache_write_tokens: field("cache_write_tokens"),
                }
            });
        Some(Usage {
            prompt_tokens: prompt,
            completion_tokens: completion,
            total_tokens: usage
                .get("total_tokens")
                .and_then(Value::as_u64)
                .unwrap_or(prompt + completion),
            prompt_tokens_details: details,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markers_are_left_out_of_the_upstream_body_and_nothing_else() {
        let body = r#"{"model":"auto","messages":[
            {"role":"system","content":[{"type":"text","text":"Be brief.","cache_control":{"type":"ephemeral"}}],"cache_control":{"type":"ephemeral"}},
            {"role":"tool","content":"18C","tool_call_id":"t1","is_error":true},
            {"role":"tool","content":"ok","tool_call_id":"t2","is_error":false},
            {"role":"user","content":[{"type":"image_url","image_url":{"url":"u"}},{"type":"text","text":"hi"}]}],
            "stream":true,"max_tokens":9,"temperature":0.2,
            "tools":[{"type":"function","function":{"name":"f"},"cache_control":{"type":"ephemeral"}}]}"#;
        let request: ChatRequest = serde_json::from_str(body).unwrap();
        assert!(request.has_anthropic_markers());
        let up = String::from_utf8(request.upstream_body().unwrap()).unwrap();
        assert_eq!(
            up,
            r#"{"model":"auto","messages":[{"role":"system","content":[{"text":"Be brief.","type":"text"}]},{"role":"tool","content":"Error: 18C","tool_call_id":"t1"},{"role":"tool","content":"ok","tool_call_id":"t2"},{"role":"user","content":[{"image_url":{"url":"u"},"type":"image_url"},{"text":"hi","type":"text"}]}],"stream":true,"max_tokens":9,"temperature":0.2,"tools":[{"function":{"name":"f"},"type":"function"}]}"#
        );
        // Without markers the body is the request as it stands.
        let plain: ChatRequest = serde_json::from_str(&up).unwrap();
        assert!(!plain.has_anthropic_markers());
        assert_eq!(
            String::from_utf8(plain.upstream_body().unwrap()).unwrap(),
            up
        );
    }

    #[test]
    fn a_cache_key_names_the_stable_prefix() {
        let request = |system: &str, marked: bool, last: &str| {
            let system = if marked {
                serde_json::json!([{"type": "text", "text": system,
                                    "cache_control": {"type": "ephemeral"}}])
            } else {
                serde_json::json!(system)
            };
            serde_json::from_value::<ChatRequest>(serde_json::json!({"model": "m", "messages": [
                {"role": "system", "content": system},
                {"role": "user", "content": last}]}))
            .unwrap()
        };
        let key = |r: &ChatRequest| r.derived_cache_key().unwrap();
        let a = request("Be brief.", true, "first question");
        // Same prefix, another turn, with or without the breakpoint: one key.
        assert_eq!(key(&a), key(&request("Be brief.", true, "second question")));
        assert_eq!(key(&a), key(&request("Be brief.", false, "third")));
        assert_ne!(
            key(&a),
            key(&request("Be thorough.", true, "first question"))
        );
        assert!(
            key(&a).starts_with("sy-") && key(&a).len() == 35,
            "{}",
            key(&a)
        );
        // Sent only when asked for, never over the client's own key.
        let body = |r: &ChatRequest, on: bool| -> Value {
            serde_json::from_slice(&r.upstream_body_keyed(on).unwrap()).unwrap()
        };
        assert_eq!(body(&a, true)["prompt_cache_key"], key(&a).as_str());
        assert!(body(&a, false).get("prompt_cache_key").is_none());
        assert!(!body(&a, true).to_string().contains("cache_control"));
        let mut own = request("Be brief.", false, "q");
        own.extra.insert("prompt_cache_key".into(), "mine".into());
        assert_eq!(body(&own, true)["prompt_cache_key"], "mine");
        // Nothing stable to name: no key.
        let bare: ChatRequest =
            serde_json::from_str(r#"{"model":"m","messages":[{"role":"user","content":"hi"}]}"#)
                .unwrap();
        assert!(bare.derived_cache_key().is_none());
        assert!(body(&bare, true).get("prompt_cache_key").is_none());
    }

    #[test]
    fn unknown_fields_survive_a_round_trip() {
        let body = r#"{"model":"auto","messages":[{"role":"user","content":"hi","name":"ann"}],
            "temperature":0.2,"tools":[{"type":"function","function":{"name":"f"}}]}"#;
        let req: ChatRequest = serde_json::from_str(body).unwrap();
        let back = serde_json::to_value(&req).unwrap();
        assert_eq!(back["temperature"], 0.2);
        assert_eq!(back["tools"][0]["function"]["name"], "f");
        assert_eq!(back["messages"][0]["name"], "ann");
        assert!(back.get("stream").is_none());
    }

    #[test]
    fn missing_messages_is_named() {
        let err = serde_json::from_str::<ChatRequest>(r#"{"model":"auto"}"#).unwrap_err();
        assert!(
            err.to_string().contains("missing field `messages`"),
            "{err}"
        );
    }

    #[test]
    fn parts_text_joins_text_parts_and_counts_the_rest() {
        let content: MessageContent = serde_json::from_str(
            r#"[{"type":"text","text":"a"},{"type":"image_url","image_url":{"url":"x"}},
                {"type":"text","text":"b"}]"#,
        )
        .unwrap();
        assert_eq!(content.text(), "a\nb");
        assert_eq!(content.non_text_parts(), 1);
    }

    #[test]
    fn usage_reads_null_as_absent() {
        let v: Value = serde_json::from_str(r#"{"usage":null}"#).unwrap();
        assert_eq!(Usage::from_json(&v), None);
        let v: Value =
            serde_json::from_str(r#"{"usage":{"prompt_tokens":3,"completion_tokens":4}}"#).unwrap();
        assert_eq!(Usage::from_json(&v), Some(Usage::new(3, 4)));
    }

    #[test]
    fn usage_from_a_body_matches_usage_from_its_value() {
        for body in [
            r#"{"id":"x","choices":[{"message":{"content":"hi "there""}}],"usage":{"prompt_tokens":3,"completion_tokens":4,"total_tokens":9}}"#,
            r#"{"usage":null}"#,
            r#"{"choices":[]}"#,
            r#"{"usage":{"prompt_tokens":"many"}}"#,
            r#"[1, 2]"#,
            r#"not json"#,
        ] {
            let from_value = serde_json::from_str::<Value>(body)
                .ok()
                .and_then(|v| Usage::from_json(&v));
            assert_eq!(Usage::from_body(body.as_bytes()), from_value, "{body}");
        }
    }
}
