//! The ingress phase: bytes and headers in, a checked request and its conversation out.

use crate::exchange::Exchange;
use crate::phase::{Phase, Refusal};
use crate::runtime::Runtime;
use axum::extract::rejection::BytesRejection;
use axum::http::{HeaderMap, StatusCode, header};
use bytes::Bytes;
use std::net::SocketAddr;
use std::time::Instant;
use switchyard_pool::ClientDeadline;
use switchyard_wire::headers::SESSION as SESSION_HEADER;
use switchyard_wire::{ApiError, ChatRequest, Conversation, Dialect, ErrorKind};

/// Turns a body rejected by the extractor (too large, unreadable) into a JSON error.
pub fn rejected(rejection: &BytesRejection, limit: usize) -> ApiError {
    if let Some(timeout) = body_timeout(rejection) {
        ApiError::new(ErrorKind::RequestTimeout, timeout.to_string())
    } else if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
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

/// The body deadline's error, if that is why the body could not be read.
fn body_timeout(rejection: &BytesRejection) -> Option<&crate::serve::BodyTimeout> {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(rejection);
    while let Some(error) = source {
        if let Some(timeout) = error.downcast_ref::<crate::serve::BodyTimeout>() {
            return Some(timeout);
        }
        source = error.source();
    }
    None
}

/// Reads an extracted body (or its rejection) as a chat completions request.
pub fn read(
    headers: &HeaderMap,
    body: Result<Bytes, BytesRejection>,
    limit: usize,
    dialect: &dyn Dialect,
) -> Result<(ChatRequest, Conversation), ApiError> {
    let body = body.map_err(|rejection| rejected(&rejection, limit))?;
    parse(headers, &body, dialect)
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
    (started, dialect): (Instant, &'static dyn Dialect),
) -> Result<Exchange, Box<Exchange>> {
    let limit = runtime.policy.config.server.max_body_bytes;
    let parsed = read(headers, body, limit, dialect);
    let (request, mut conversation) = match parsed {
        Ok(parsed) => parsed,
        Err(error) => return Err(refused(runtime, headers, error, (started, dialect))),
    };
    let request_id = request_id(runtime, headers);
    runtime.count(&mut conversation);
    attach_headers(runtime, headers, peer, &mut conversation);
    let mut x = Exchange::new(dialect, request_id, started, (request, conversation));
    x.caller = caller(runtime, headers, peer);
    let checked = client_deadline(headers, started).and_then(|d| {
        fits_some_pool(runtime, &x.conversation)?;
        Ok(d)
    });
    record(runtime, &mut x);
    match checked {
        Ok(deadline) => {
            x.deadline = deadline;
            Ok(x)
        }
        Err(error) => {
            x.refusal = Some(Refusal {
                phase: Phase::Ingress,
                error,
            });
            Err(Box::new(x))
        }
    }
}

/// A request refused at ingress before it could be read (or, for the Responses API,
/// before its stored conversation could be joined to it): an exchange with nothing
/// but its id, its clock and the refusal, for the response and observe.
pub fn refused(
    runtime: &Runtime,
    headers: &HeaderMap,
    error: ApiError,
    (started, dialect): (Instant, &'static dyn Dialect),
) -> Box<Exchange> {
    let empty = (ChatRequest::default(), Conversation::from_prompt("", ""));
    let mut x = Exchange::new(dialect, request_id(runtime, headers), started, empty);
    record(runtime, &mut x);
    x.refusal = Some(Refusal {
        phase: Phase::Ingress,
        error,
    });
    Box::new(x)
}

/// The client's `x-request-id` when it is a usable one, else a fresh id.
fn request_id(runtime: &Runtime, headers: &HeaderMap) -> String {
    headers
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty() && v.len() <= 128 && v.bytes().all(|b| b.is_ascii_graphic()))
        .map_or_else(|| runtime.request_id(), str::to_owned)
}

/// The key of the caller: its credential (`authorization`, `x-api-key`, `api-key`),
/// else the address it connects from. Feedback for a request must come from the same
/// key, so a client without a credential cannot rate the answers of clients on other
/// hosts (request ids are easy to guess).
pub fn caller(runtime: &Runtime, headers: &HeaderMap, peer: Option<SocketAddr>) -> Option<u64> {
    let credential = ["authorization", "x-api-key", "api-key"]
        .iter()
        .find_map(|name| headers.get(*name))
        .map(|v| runtime.outcomes.caller(v.as_bytes()));
    credential.or_else(|| peer.map(|p| runtime.outcomes.caller(p.ip())))
}

/// Ingress took the time since arrival: in the trace and in the phase metric alike.
fn record(runtime: &Runtime, x: &mut Exchange) {
    let spent = x.started.elapsed();
    x.timings.record(Phase::Ingress, spent);
    runtime.metrics.phase(Phase::Ingress, spent);
}

/// Copies what signals and plugins read of the request beyond its body: the headers
/// they name and, for identity from proxy headers, the address the connection came
/// from.
fn attach_headers(
    runtime: &Runtime,
    headers: &HeaderMap,
    peer: Option<SocketAddr>,
    conversation: &mut Conversation,
) {
    for name in &runtime.read_headers {
        if let Some(value) = headers.get(name.as_str()).and_then(|v| v.to_str().ok()) {
            conversation.attach_header(name, value);
        }
    }
    if let (true, Some(peer)) = (runtime.policy.signals.reads_peer(), peer) {
        conversation
            .attributes
            .push(("peer".to_owned(), peer.ip().to_string()));
    }
}

/// A prompt larger than every pool (compression included) is refused here, before
/// any signal reads it: it could never be placed.
fn fits_some_pool(runtime: &Runtime, conversation: &Conversation) -> Result<(), ApiError> {
    let largest = runtime.pools.largest_reachable();
    if conversation.prompt_tokens > largest {
        return Err(ApiError::new(
            ErrorKind::InvalidRequest,
            format!(
                "the prompt has about {} tokens but the largest pool holds {largest}",
                conversation.prompt_tokens
            ),
        )
        .with_param("messages"));
    }
    Ok(())
}

/// The longest deadline a client may set: a day.
const MAX_DEADLINE_MS: u64 = 86_400_000;

/// The client's deadline from `x-request-timeout-ms`: whole milliseconds from arrival,
/// 1 to a day. Anything else is a 400 naming the header, not silently ignored.
fn client_deadline(
    headers: &HeaderMap,
    arrived: Instant,
) -> Result<Option<ClientDeadline>, ApiError> {
    let name = switchyard_wire::headers::REQUEST_TIMEOUT_MS;
    let Some(value) = headers.get(name) else {
        return Ok(None);
    };
    let ms = value
        .to_str()
        .ok()
        .and_then(|v| v.trim().parse::<u64>().ok())
        .filter(|ms| (1..=MAX_DEADLINE_MS).contains(ms))
        .ok_or_else(|| {
            let shown: String = String::from_utf8_lossy(value.as_bytes())
                .chars()
                .take(32)
                .collect();
            ApiError::new(
                ErrorKind::InvalidRequest,
                format!(
                    "header {name}: `{shown}` is not a whole number of milliseconds from 1 to {MAX_DEADLINE_MS}"
                ),
            )
            .with_param(name)
        })?;
    Ok(Some(ClientDeadline {
        at: tokio::time::Instant::from_std(arrived) + std::time::Duration::from_millis(ms),
        ms,
    }))
}

/// Checks the content type and parses the body in the dialect of the path.
pub fn parse(
    headers: &HeaderMap,
    body: &Bytes,
    dialect: &dyn Dialect,
) -> Result<(ChatRequest, Conversation), ApiError> {
    check_content_type(headers)?;
    let session = headers.get(SESSION_HEADER).and_then(|v| v.to_str().ok());
    dialect.parse(body, session)
}

/// Refuses a body that is not `application/json` (415).
pub fn check_content_type(headers: &HeaderMap) -> Result<(), ApiError> {
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
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use switchyard_wire::OpenAiChat;

    #[test]
    fn the_content_type_is_checked_before_the_body() {
        let body = Bytes::from_static(br#"{"model":"auto","messages":[]}"#);
        let e = parse(&HeaderMap::new(), &body, &OpenAiChat).unwrap_err();
        assert_eq!(e.kind, ErrorKind::UnsupportedMediaType);
        assert!(e.message.contains("got none"));
        let mut h = HeaderMap::new();
        h.insert(
            header::CONTENT_TYPE,
            "application/json; charset=utf-8".parse().unwrap(),
        );
        h.insert(SESSION_HEADER, "abc".parse().unwrap());
        let e = parse(&h, &body, &OpenAiChat).unwrap_err();
        assert_eq!(
            e.param.as_deref(),
            Some("messages"),
            "then the dialect reads the body"
        );
        let good =
            Bytes::from_static(br#"{"model":"auto","messages":[{"role":"user","content":"hi"}]}"#);
        let (_, conversation) = parse(&h, &good, &OpenAiChat).unwrap();
        assert_eq!(conversation.session_id.as_deref(), Some("abc"));
    }
}
