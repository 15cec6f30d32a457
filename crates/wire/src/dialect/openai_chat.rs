//! OpenAI Chat Completions (`POST /v1/chat/completions`).

use super::{Answer, Dialect, Written};
use crate::{ApiError, ChatRequest, Conversation, ErrorKind};
use bytes::Bytes;
use serde_json::{Value, json};

const ROLES: [&str; 6] = [
    "system",
    "developer",
    "user",
    "assistant",
    "tool",
    "function",
];

/// The OpenAI Chat Completions API.
#[derive(Debug, Clone, Copy, Default)]
pub struct OpenAiChat;

impl Dialect for OpenAiChat {
    fn name(&self) -> &'static str {
        "openai_chat"
    }

    fn parse(
        &self,
        body: &[u8],
        session: Option<&str>,
    ) -> Result<(ChatRequest, Conversation), ApiError> {
        let request: ChatRequest = serde_json::from_slice(body).map_err(|e| {
            use serde_json::error::Category;
            let message = match e.classify() {
                Category::Syntax | Category::Eof | Category::Io => format!("malformed JSON: {e}"),
                Category::Data => format!("invalid request: {e}"),
            };
            let mut error = ApiError::new(ErrorKind::InvalidRequest, message);
            if let Some(field) = e.to_string().split('`').nth(1)
                && e.classify() == Category::Data
            {
                error = error.with_param(field);
            }
            error
        })?;
        if request.model.trim().is_empty() {
            return Err(ApiError::new(
                ErrorKind::InvalidRequest,
                "`model` is empty: name a model or `auto`",
            )
            .with_param("model"));
        }
        if request.messages.is_empty() {
            return Err(ApiError::new(
                ErrorKind::InvalidRequest,
                "`messages` is empty: send at least one message",
            )
            .with_param("messages"));
        }
        if let Some((i, m)) = request
            .messages
            .iter()
            .enumerate()
            .find(|(_, m)| !ROLES.contains(&m.role.as_str()))
        {
            return Err(ApiError::new(
                ErrorKind::InvalidRequest,
                format!(
                    "messages[{i}].role `{}` is not one of {}",
                    m.role,
                    ROLES.join(", ")
                ),
            )
            .with_param(format!("messages[{i}].role")));
        }
        check_shapes(&request)?;
        let conversation = Conversation::from_chat(&request, session);
        Ok((request, conversation))
    }
}

impl OpenAiChat {
    /// An assistant message made by the gateway (a plugin's local answer, a cached
    /// answer), in the canonical form: whole, or as a stream that ends the way the
    /// OpenAI SDK expects. Other dialects translate it like any upstream answer.
    pub fn answer(&self, answer: &Answer<'_>) -> Written {
        let id = format!("chatcmpl-{}", answer.id);
        let (model, created) = (answer.model, answer.created);
        let usage = answer.usage.unwrap_or_default();
        if !answer.stream {
            let body = json!({
                "id": id, "object": "chat.completion", "created": created, "model": model,
                "choices": [{"index": 0, "message": {"role": "assistant", "content": answer.text},
                             "finish_reason": "stop"}],
                "usage": usage,
            });
            return Written {
                content_type: "application/json",
                body: Bytes::from(body.to_string()),
            };
        }
        let chunk = |delta: Value, finish: Option<&str>| {
            json!({"id": id, "object": "chat.completion.chunk", "created": created, "model": model,
                   "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]})
        };
        let mut events = String::new();
        let mut push = |event: Value| {
            events.push_str("data: ");
            events.push_str(&event.to_string());
            events.push_str("\n\n");
        };
        let mut pieces = pieces(answer.text, STREAM_PIECE_BYTES);
        push(chunk(
            json!({"role": "assistant", "content": pieces.next().unwrap_or("")}),
            None,
        ));
        for piece in pieces {
            push(chunk(json!({"content": piece}), None));
        }
        push(chunk(json!({}), Some("stop")));
        if answer.stream_usage {
            push(
                json!({"id": id, "object": "chat.completion.chunk", "created": created,
                        "model": model, "choices": [], "usage": usage}),
            );
        }
        events.push_str("data: [DONE]\n\n");
        Written {
            content_type: "text/event-stream",
            body: Bytes::from(events),
        }
    }
}

/// The most text one event of a stream the gateway writes itself carries.
const STREAM_PIECE_BYTES: usize = 256;

/// `text` in pieces of at most `max` bytes (more when one character is longer), cut
/// on character boundaries.
fn pieces(text: &str, max: usize) -> impl Iterator<Item = &str> {
    let mut rest = text;
    std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        let mut end = max.min(rest.len());
        while !rest.is_char_boundary(end) {
            end += 1;
        }
        let (piece, after) = rest.split_at(end);
        rest = after;
        Some(piece)
    })
}

/// The most answers (`n`) one request may ask for, as OpenAI's API allows.
const MAX_ANSWERS: u64 = 128;

/// Content part types and the field each must carry (an object, or text).
const PARTS: [(&str, &str, bool); 6] = [
    ("text", "text", true),
    ("image_url", "image_url", false),
    ("input_audio", "input_audio", false),
    ("file", "file", false),
    ("refusal", "refusal", true),
    ("video_url", "video_url", false),
];

fn invalid(param: String, message: String) -> ApiError {
    ApiError::new(ErrorKind::InvalidRequest, message).with_param(param)
}

/// The shapes the gateway reads or forwards that OpenAI would refuse: content parts
/// and tools. Refused here, naming the field, rather than passed on to fail upstream
/// (or worse, to be read differently by different engines).
fn check_shapes(request: &ChatRequest) -> Result<(), ApiError> {
    if let Some(n) = request.extra.get("n")
        && !n.as_u64().is_some_and(|n| (1..=MAX_ANSWERS).contains(&n))
    {
        return Err(invalid(
            "n".into(),
            format!("`n` is {n}: ask for 1 to {MAX_ANSWERS} answers"),
        ));
    }
    for (i, m) in request.messages.iter().enumerate() {
        let Some(crate::MessageContent::Parts(parts)) = &m.content else {
            continue;
        };
        for (j, part) in parts.iter().enumerate() {
            let at = format!("messages[{i}].content[{j}]");
            let kind = part.get("type").and_then(Value::as_str).ok_or_else(|| {
                invalid(
                    format!("{at}.type"),
                    format!("{at} has no string `type` (text, image_url, input_audio, file, …)"),
                )
            })?;
            let Some((_, field, text)) = PARTS.iter().find(|(t, _, _)| *t == kind) else {
                let known: Vec<&str> = PARTS.iter().map(|(t, _, _)| *t).collect();
                return Err(invalid(
                    format!("{at}.type"),
                    format!("{at}.type `{kind}` is not one of {}", known.join(", ")),
                ));
            };
            let value = part.get(*field);
            let fits = if *text {
                value.is_some_and(Value::is_string)
            } else {
                value.is_some_and(Value::is_object)
            };
            if !fits {
                let shape = if *text { "a string" } else { "an object" };
                return Err(invalid(
                    format!("{at}.{field}"),
                    format!("{at} of type `{kind}` needs `{field}` as {shape}"),
                ));
            }
        }
    }
    let Some(tools) = request.extra.get("tools") else {
        return Ok(());
    };
    let Some(tools) = tools.as_array() else {
        return Err(invalid("tools".into(), "`tools` is not an array".into()));
    };
    for (i, tool) in tools.iter().enumerate() {
        let at = format!("tools[{i}]");
        match tool.get("type").and_then(Value::as_str) {
            Some("function") => {}
            Some("custom") => continue,
            other => {
                return Err(invalid(
                    format!("{at}.type"),
                    format!(
                        "{at}.type is {}, not `function` or `custom`",
                        other.map_or("missing".to_owned(), |t| format!("`{t}`"))
                    ),
                ));
            }
        }
        let name = tool.pointer("/function/name").and_then(Value::as_str);
        let valid = name.is_some_and(|n| {
            (1..=64).contains(&n.len())
                && n.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
        });
        if !valid {
            return Err(invalid(
                format!("{at}.function.name"),
                format!(
                    "{at}.function.name must be 1 to 64 letters, digits, `_` or `-`{}",
                    name.map(|n| format!(" (got `{}`)", n.chars().take(80).collect::<String>()))
                        .unwrap_or_default()
                ),
            ));
        }
        if tool
            .pointer("/function/parameters")
            .is_some_and(|p| !p.is_object())
        {
            return Err(invalid(
                format!("{at}.function.parameters"),
                format!("{at}.function.parameters is not a JSON Schema object"),
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Usage;

    fn err(body: &str) -> ApiError {
        OpenAiChat.parse(body.as_bytes(), None).unwrap_err()
    }

    #[test]
    fn each_bad_request_names_its_problem() {
        let e = err("{\"model\": ");
        assert!(e.message.starts_with("malformed JSON"), "{}", e.message);
        assert_eq!(
            err(r#"{"model":"auto"}"#).param.as_deref(),
            Some("messages")
        );
        assert_eq!(
            err(r#"{"model":"auto","messages":[]}"#).param.as_deref(),
            Some("messages")
        );
        let e = err(r#"{"model":"auto","messages":[{"role":"robot","content":"x"}]}"#);
        assert_eq!(e.param.as_deref(), Some("messages[0].role"));
        let e = err(r#"{"model":"","messages":[{"role":"user","content":"x"}]}"#);
        assert_eq!(e.param.as_deref(), Some("model"));
        let e = err(r#"{"model":"auto","messages":[{"role":"user","content":5}]}"#);
        assert_eq!(e.kind, ErrorKind::InvalidRequest);
    }

    #[test]
    fn content_parts_and_tools_openai_would_refuse_are_refused_naming_the_field() {
        let with = |content: &str, extra: &str| {
            OpenAiChat.parse(
                format!(r#"{{"model":"auto","messages":[{{"role":"user","content":{content}}}]{extra}}}"#)
                    .as_bytes(),
                None,
            )
        };
        let param = |content: &str, extra: &str| with(content, extra).unwrap_err().param.unwrap();
        assert_eq!(
            param(r#"[{"text":"hi"}]"#, ""),
            "messages[0].content[0].type"
        );
        assert_eq!(
            param(r#"[{"type":"txt","text":"hi"}]"#, ""),
            "messages[0].content[0].type"
        );
        assert_eq!(
            param(r#"[{"type":"text","text":5}]"#, ""),
            "messages[0].content[0].text"
        );
        assert_eq!(
            param(
                r#"[{"type":"text","text":"a"},{"type":"image_url","image_url":"x"}]"#,
                ""
            ),
            "messages[0].content[1].image_url"
        );
        assert!(with(r#"[{"type":"image_url","image_url":{"url":"data:,"}}]"#, "").is_ok());
        assert_eq!(param(r#""hi""#, r#","tools":{}"#), "tools");
        assert_eq!(
            param(r#""hi""#, r#","tools":[{"type":"fn"}]"#),
            "tools[0].type"
        );
        assert_eq!(
            param(
                r#""hi""#,
                r#","tools":[{"type":"function","function":{"name":"bad name"}}]"#
            ),
            "tools[0].function.name"
        );
        assert_eq!(
            param(
                r#""hi""#,
                r#","tools":[{"type":"function","function":{"name":"f","parameters":"x"}}]"#
            ),
            "tools[0].function.parameters"
        );
        let ok = r#","tools":[{"type":"function","function":{"name":"get_weather","parameters":{"type":"object"}}}]"#;
        assert!(with(r#""hi""#, ok).is_ok());
        for bad in ["0", "-1", "1.5", "129", "\"2\""] {
            assert_eq!(param(r#""hi""#, &format!(r#","n":{bad}"#)), "n", "{bad}");
        }
        let (_, conversation) = with(r#""hi""#, r#","n":3"#).unwrap();
        assert_eq!(conversation.answers, 3);
    }

    #[test]
    fn a_good_request_parses_with_its_session_and_answers_render() {
        let body = br#"{"model":"auto","messages":[{"role":"user","content":"hi"}]}"#;
        let (request, conversation) = OpenAiChat.parse(body, Some("abc")).unwrap();
        assert_eq!(request.model, "auto");
        assert_eq!(conversation.session_id.as_deref(), Some("abc"));
        let answer = |text, stream, usage: Option<Usage>| {
            OpenAiChat.answer(&Answer {
                text,
                model: "m",
                id: "r1",
                created: 7,
                stream,
                usage,
                stream_usage: usage.is_some(),
            })
        };
        let whole = answer("hello", false, Some(Usage::new(3, 1)));
        let v: serde_json::Value = serde_json::from_slice(&whole.body).unwrap();
        assert_eq!(v["choices"][0]["message"]["content"], "hello");
        assert_eq!(v["id"], "chatcmpl-r1");
        assert_eq!(v["usage"]["total_tokens"], 4);
        let streamed = answer("hello", true, None);
        assert_eq!(streamed.content_type, "text/event-stream");
        let text = String::from_utf8(streamed.body.to_vec()).unwrap();
        assert!(text.ends_with("data: [DONE]\n\n"), "{text}");
        assert!(text.contains("\"content\":\"hello\""), "{text}");
        assert!(!text.contains("usage"), "{text}");
        // A long answer goes out in pieces that join to it, cut between characters,
        // then a usage chunk when asked for.
        let long = "é".repeat(300) + "end";
        let streamed = answer(&long, true, Some(Usage::new(5, 6)));
        let text = String::from_utf8(streamed.body.to_vec()).unwrap();
        let events: Vec<serde_json::Value> = text
            .split("\n\n")
            .filter_map(|e| e.strip_prefix("data: "))
            .filter(|e| *e != "[DONE]")
            .map(|e| serde_json::from_str(e).unwrap())
            .collect();
        let joined: String = events
            .iter()
            .filter_map(|e| e["choices"][0]["delta"]["content"].as_str())
            .collect();
        assert_eq!(joined, long);
        assert!(events.len() >= 5, "{}", events.len());
        assert_eq!(events.last().unwrap()["usage"]["completion_tokens"], 6);
        assert_eq!(
            events[events.len() - 2]["choices"][0]["finish_reason"],
            "stop"
        );
    }
}
