//! Answers the gateway makes itself: errors, and plugins' local answers (an assistant
//! message, whole or streamed, or an error with the plugin's status and code).

use axum::body::Body;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use switchyard_router::plugins::LocalAnswer;
use switchyard_wire::{Answer, ApiError, OpenAiChat, error_body};

/// The JSON error response of an [`ApiError`].
pub fn error_response(error: &ApiError) -> Response {
    let status = StatusCode::from_u16(error.kind.status()).unwrap_or(StatusCode::BAD_GATEWAY);
    (status, axum::Json(error.body())).into_response()
}

/// A plugin's local answer as the client asked for it: an assistant message in the
/// canonical form (whole or streamed, ending with a usage chunk when `stream_usage`)
/// for a 200, a JSON error otherwise. Other dialects translate it on the way out.
pub fn local_response(
    answer: &LocalAnswer,
    model: &str,
    request_id: &str,
    (stream, stream_usage): (bool, bool),
) -> Response {
    let status = StatusCode::from_u16(answer.status).unwrap_or(StatusCode::SERVICE_UNAVAILABLE);
    if answer.status != 200 {
        let kind = match answer.status {
            429 => "rate_limit_error",
            ..500 => "invalid_request_error",
            _ => "server_error",
        };
        let body = error_body(&answer.message, kind, &answer.code, None);
        return (status, axum::Json(body)).into_response();
    }
    let created = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let written = OpenAiChat.answer(&Answer {
        text: &answer.message,
        model,
        id: request_id,
        created,
        stream,
        usage: answer.usage,
        stream_usage,
    });
    let mut response = Response::builder()
        .status(StatusCode::OK)
        .header(header::CONTENT_TYPE, written.content_type);
    if stream {
        response = response.header(header::CACHE_CONTROL, "no-cache");
    }
    response
        .body(Body::from(written.body))
        .unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response())
}
