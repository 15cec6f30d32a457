//! The ingress phase: bytes and headers in, a checked request and its conversation out.

use crate::exchange::Exchange;
use crate::phase::{Phase, Refusal};
use crate::runtime::Runtime;
use axum::extract::rejection::BytesRejection;
use axum::http::{HeaderMap, StatusCode, header};
use bytes::Bytes;
use std::net::SocketAddr;
use std::time::Instant;
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

/// The ingress phase: a request's body and headers become an [`Exchange`] (parsed,
/// its tokens counted, the headers signals read attached, its id and deadline set),
/// or a refusal that still carries an exchange for observe. `peer` is the client's
/// address (absent for the CLI's dry run).
pub fn admit(
    runtime: &Runtime,
    headers: &HeaderMap,
    body: Result<Bytes, BytesRejection>,
    peer: Option<SocketAddr>,
    started: Instant,
) -> Result<Exchange, Box<Exchange>> {
    let request_id = headers
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty() && v.len() <= 128 && v.bytes().all(|b| b.is_ascii_graphic()))
        .map_or_else(|| runtime.request_id(), str::to_owned);
    let limit = runtime.policy.config.server.max_body_bytes;
    let parsed = read(headers, body, limit);
    let spent = started.elapsed();
    runtime.metrics.phase(Phase::Ingress, spent);
    let (request, mut conversation) = match parsed {
        Ok(parsed) => parsed,
        Err(error) => {
            let mut x = Exchange::new(
                request_id,
                started,
                ChatRequest::default(),
                Conversation::from_prompt("", ""),
            );
            x.timings.record(Phase::Ingress, spent);
            x.refusal = Some(Refusal {
                phase: Phase::Ingress,
                error,
            });
            return Err(Box::new(x));
        }
    };
    let attach = Instant::now();
    runtime.count(&mut conversation);
    attach_headers(runtime, headers, peer, &mut conversation);
    let mut x = Exchange::new(request_id, started, request, conversation);
    x.deadline = client_deadline(headers, started);
    x.timings.record(Phase::Ingress, spent + attach.elapsed());
    Ok(x)
}

/// Copies what signals read of the request beyond its body: the headers they name
/// and, for identity from proxy headers, the address the connection came from.
fn attach_headers(
    runtime: &Runtime,
    headers: &HeaderMap,
    peer: Option<SocketAddr>,
    conversation: &mut Conversation,
) {
    let signals = &runtime.policy.signals;
    for name in signals.header_names() {
        if let Some(value) = headers.get(name.as_str()).and_then(|v| v.to_str().ok()) {
            conversation.attach_header(name, value);
        }
    }
    if let (true, Some(peer)) = (signals.reads_peer(), peer) {
        conversation
            .attributes
            .push(("peer".to_owned(), peer.ip().to_string()));
    }
}

/// The deadline a client set with `x-request-timeout-ms`, counted from arrival.
fn client_deadline(headers: &HeaderMap, arrived: Instant) -> Option<tokio::time::Instant> {
    let ms = headers
        .get(switchyard_wire::headers::REQUEST_TIMEOUT_MS)?
        .to_str()
        .ok()?
        .trim()
        .parse::<u64>()
        .ok()
        .filter(|ms| *ms > 0)?;
    Some(tokio::time::Instant::from_std(arrived) + std::time::Duration::from_millis(ms))
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
