//! Answers the gateway makes itself: errors, and plugins' local answers (an assistant
//! message, whole or streamed, or an error with the plugin's status and code).

use axum::body::Body;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;
use switchyard_router::plugins::LocalAnswer;
use switchyard_wire::ApiError;

/// The JSON error response of an [`ApiError`].
pub fn error_response(error: &ApiError) -> Response {
    let status = StatusCode::from_u16(error.kind.status()).unwrap_or(StatusCode::BAD_GATEWAY);
    (status, axum::Json(error.body())).into_response()
}

/// A plugin's local answer as the client asked for it: a chat completion (or its
/// stream) for a 200, a JSON error otherwise.
pub fn local_response(
    answer: &LocalAnswer,
    model: &str,
    request_id: &str,
    stream: bool,
) -> Response {
    let status = StatusCode::from_u16(answer.status).unwrap_or(StatusCode::SERVICE_UNAVAILABLE);
    if answer.status != 200 {
        let body = json!({"error": {
            "message": answer.message,
            "type": if answer.status < 500 { "invalid_request_error" } else { "server_error" },
            "code": answer.code,
            "param": null,
        }});
        return (status, axum::Json(body)).into_response();
    }
    let created = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let id = format!("chatcmpl-{request_id}");
    if !stream {
        let body = json!({
            "id": id, "object": "chat.completion", "created": created, "model": model,
            "choices": [{"index": 0, "message": {"role": "assistant", "content": answer.message},
                         "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0},
        });
        return (status, axum::Json(body)).into_response();
    }
    let chunk = |delta: serde_json::Value, finish: Option<&str>| {
        json!({"id": id, "object": "chat.completion.chunk", "created": created, "model": model,
               "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]})
    };
    let events = format!(
        "data: {}\n\ndata: {}\n\ndata: [DONE]\n\n",
        chunk(
            json!({"role": "assistant", "content": answer.message}),
            None
        ),
        chunk(json!({}), Some("stop")),
    );
    Response::builder()
        .status(StatusCode::OK)
        .header(header::CONTENT_TYPE, "text/event-stream")
        .header(header::CACHE_CONTROL, "no-cache")
        .body(Body::from(events))
        .unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response())
}
