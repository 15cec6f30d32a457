//! The ingress phase: bytes and headers in, a checked request and its conversation out.

use axum::extract::rejection::BytesRejection;
use axum::http::{HeaderMap, StatusCode, header};
use bytes::Bytes;
use switchyard_wire::headers::SESSION as SESSION_HEADER;
use switchyard_wire::{ApiError, ChatRequest, Conversation, ErrorKind};

const ROLES: [&str; 6] = [
    "system",
    "developer",
    "user",
    "assistant",
    "tool",
    "function",
];

/// Turns a body rejected by the extractor (too large, unreadable) into a JSON error.
pub fn rejected(rejection: &BytesRejection, limit: usize) -> ApiError {
    if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
        ApiError::new(
            ErrorKind::PayloadTooLarge,
            format!(
                "the request body is larger than the limit of {limit} bytes (server.max_body_bytes)"
            ),
        )
    } else {
        ApiError::new(
            ErrorKind::InvalidRequest,
            format!("cannot read the request body: {}", rejection.body_text()),
        )
    }
}

/// Reads an extracted body (or its rejection) as a chat completions request.
pub fn read(
    headers: &HeaderMap,
    body: Result<Bytes, BytesRejection>,
    limit: usize,
) -> Result<(ChatRequest, Conversation), ApiError> {
    let body = body.map_err(|rejection| rejected(&rejection, limit))?;
    parse(headers, &body)
}

/// Parses and checks a chat completions request.
pub fn parse(headers: &HeaderMap, body: &Bytes) -> Result<(ChatRequest, Conversation), ApiError> {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let essence = content_type.split(';').next().unwrap_or("").trim();
    if !essence.eq_ignore_ascii_case("application/json") {
        let shown = if content_type.is_empty() {
            "none"
        } else {
            content_type
        };
        return Err(ApiError::new(
            ErrorKind::UnsupportedMediaType,
            format!("content-type must be application/json (got {shown})"),
        ));
    }
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
    let session = headers.get(SESSION_HEADER).and_then(|v| v.to_str().ok());
    let conversation = Conversation::from_chat(&request, session);
    Ok((request, conversation))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn json_headers() -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(
            header::CONTENT_TYPE,
            "application/json; charset=utf-8".parse().unwrap(),
        );
        h
    }

    fn err(headers: &HeaderMap, body: &str) -> ApiError {
        parse(headers, &Bytes::from(body.to_owned())).unwrap_err()
    }

    #[test]
    fn each_bad_request_names_its_problem() {
        let h = json_headers();
        let e = err(&h, "{\"model\": ");
        assert!(e.message.starts_with("malformed JSON"), "{}", e.message);
        let e = err(&h, r#"{"model":"auto"}"#);
        assert_eq!(e.param.as_deref(), Some("messages"));
        let e = err(&h, r#"{"model":"auto","messages":[]}"#);
        assert_eq!(e.param.as_deref(), Some("messages"));
        let e = err(
            &h,
            r#"{"model":"auto","messages":[{"role":"robot","content":"x"}]}"#,
        );
        assert_eq!(e.param.as_deref(), Some("messages[0].role"));
        let e = err(
            &h,
            r#"{"model":"","messages":[{"role":"user","content":"x"}]}"#,
        );
        assert_eq!(e.param.as_deref(), Some("model"));
        let e = err(
            &h,
            r#"{"model":"auto","messages":[{"role":"user","content":5}]}"#,
        );
        assert_eq!(e.kind, ErrorKind::InvalidRequest);
        let e = err(&HeaderMap::new(), r#"{"model":"auto","messages":[]}"#);
        assert_eq!(e.kind, ErrorKind::UnsupportedMediaType);
        assert!(e.message.contains("got none"));
    }

    #[test]
    fn a_good_request_parses_with_its_session() {
        let mut h = json_headers();
        h.insert(SESSION_HEADER, "abc".parse().unwrap());
        let body =
            Bytes::from_static(br#"{"model":"auto","messages":[{"role":"user","content":"hi"}]}"#);
        let (req, conv) = parse(&h, &body).unwrap();
        assert_eq!(req.model, "auto");
        assert_eq!(conv.session_id.as_deref(), Some("abc"));
    }
}
