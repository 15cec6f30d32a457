//! OpenAI Chat Completions (`POST /v1/chat/completions`).

use super::{Dialect, Written};
use crate::{ApiError, ChatRequest, Conversation, ErrorKind};
use bytes::Bytes;
use serde_json::json;

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
        let conversation = Conversation::from_chat(&request, session);
        Ok((request, conversation))
    }

    fn answer(&self, text: &str, model: &str, id: &str, created: u64, stream: bool) -> Written {
        let id = format!("chatcmpl-{id}");
        if !stream {
            let body = json!({
                "id": id, "object": "chat.completion", "created": created, "model": model,
                "choices": [{"index": 0, "message": {"role": "assistant", "content": text},
                             "finish_reason": "stop"}],
                "usage": {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0},
            });
            return Written {
                content_type: "application/json",
                body: Bytes::from(body.to_string()),
            };
        }
        let chunk = |delta: serde_json::Value, finish: Option<&str>| {
            json!({"id": id, "object": "chat.completion.chunk", "created": created, "model": model,
                   "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]})
        };
        let events = format!(
            "data: {}\n\ndata: {}\n\ndata: [DONE]\n\n",
            chunk(json!({"role": "assistant", "content": text}), None),
            chunk(json!({}), Some("stop")),
        );
        Written {
            content_type: "text/event-stream",
            body: Bytes::from(events),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
    fn a_good_request_parses_with_its_session_and_answers_render() {
        let body = br#"{"model":"auto","messages":[{"role":"user","content":"hi"}]}"#;
        let (request, conversation) = OpenAiChat.parse(body, Some("abc")).unwrap();
        assert_eq!(request.model, "auto");
        assert_eq!(conversation.session_id.as_deref(), Some("abc"));
        let whole = OpenAiChat.answer("hello", "m", "r1", 7, false);
        let v: serde_json::Value = serde_json::from_slice(&whole.body).unwrap();
        assert_eq!(v["choices"][0]["message"]["content"], "hello");
        assert_eq!(v["id"], "chatcmpl-r1");
        let streamed = OpenAiChat.answer("hello", "m", "r1", 7, true);
        assert_eq!(streamed.content_type, "text/event-stream");
        let text = String::from_utf8(streamed.body.to_vec()).unwrap();
        assert!(text.ends_with("data: [DONE]\n\n"), "{text}");
        assert!(text.contains("\"content\":\"hello\""), "{text}");
    }
}
