//! Client dialects beyond Chat Completions: their paths, and the last step of every
//! answer to them. Requests run the same phases whatever the dialect (each phase sees
//! the canonical Chat Completions request); only the answer is translated, here,
//! after the phases and observe: a whole answer, an error (the gateway's or an
//! upstream's), or a stream event by event.

use crate::local::error_response;
use crate::runtime::Runtime;
use axum::body::Body;
use axum::extract::rejection::BytesRejection;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use serde_json::json;
use switchyard_wire::{AnthropicMessages, ApiError, Dialect, ErrorKind, translate_whole};

/// The largest answer body translated whole (an upstream's body was read whole
/// already; this bounds a local one too).
const MAX_WHOLE: usize = 64 << 20;

/// An error in `dialect`'s shape.
pub fn error_in(dialect: &dyn Dialect, error: &ApiError) -> Response {
    let canonical = error_response(error);
    if !dialect.translates() {
        return canonical;
    }
    let status = canonical.status();
    let body = dialect.error(status.as_u16(), error.body().to_string().as_bytes());
    json_response(status, body)
}

fn json_response(status: StatusCode, body: Bytes) -> Response {
    (
        status,
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        body,
    )
        .into_response()
}

/// `response` (canonical: Chat Completions, or the gateway's JSON error) in the
/// client's dialect. Status and headers stay (the explain headers with them); the
/// body is translated: JSON whole, a stream event by event.
pub async fn translate(dialect: &'static dyn Dialect, response: Response) -> Response {
    if !dialect.translates() {
        return response;
    }
    let (mut parts, body) = response.into_parts();
    let content_type = parts
        .headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if parts.status.is_success() && content_type.starts_with("text/event-stream") {
        let Some(translator) = dialect.stream() else {
            return Response::from_parts(parts, body);
        };
        let events = switchyard_wire::translate_stream(body.into_data_stream(), translator);
        return Response::from_parts(parts, Body::from_stream(events));
    }
    parts.headers.remove(header::CONTENT_LENGTH);
    parts.headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    let (status, body) = match axum::body::to_bytes(body, MAX_WHOLE).await {
        Ok(bytes) => translate_whole(dialect, parts.status.as_u16(), &bytes),
        Err(e) => {
            let error = ApiError::new(
                ErrorKind::Upstream,
                format!("the answer could not be read: {e}"),
            );
            (502, dialect.error(502, error.body().to_string().as_bytes()))
        }
    };
    parts.status = StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_GATEWAY);
    Response::from_parts(parts, Body::from(body))
}

/// Checks `anthropic-version` when sent: one of the versions this gateway speaks.
pub fn anthropic_version(headers: &HeaderMap) -> Result<(), ApiError> {
    let Some(value) = headers.get("anthropic-version") else {
        return Ok(());
    };
    let value = value.to_str().unwrap_or("");
    if switchyard_wire::dialect::ANTHROPIC_VERSIONS.contains(&value) {
        return Ok(());
    }
    let shown: String = value.chars().take(32).collect();
    Err(ApiError::new(
        ErrorKind::InvalidRequest,
        format!(
            "anthropic-version: `{shown}` is not a version this gateway speaks ({})",
            switchyard_wire::dialect::ANTHROPIC_VERSIONS.join(", ")
        ),
    )
    .with_param("anthropic-version"))
}

/// `POST /v1/messages/count_tokens`: the prompt's tokens as the gateway counts them
/// (the model's tokenizer when configured, else its estimate), with tools and images.
pub fn count_tokens(
    runtime: &Runtime,
    headers: &HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let dialect = &AnthropicMessages;
    let limit = runtime.policy.config.server.max_body_bytes;
    let parsed = anthropic_version(headers)
        .and_then(|()| body.map_err(|rejection| crate::ingress::rejected(&rejection, limit)))
        .and_then(|body| {
            crate::ingress::check_content_type(headers)?;
            dialect.parse_count(&body)
        });
    match parsed {
        Ok((_, mut conversation)) => {
            runtime.count(&mut conversation);
            axum::Json(json!({"input_tokens": conversation.prompt_tokens})).into_response()
        }
        Err(error) => error_in(dialect, &error),
    }
}

/// `GET /v1/models` in Anthropic's shape (for clients that send `anthropic-version`).
pub fn anthropic_models(ids: &[(String, String)]) -> Response {
    let data: Vec<serde_json::Value> = ids
        .iter()
        .map(|(id, description)| {
            json!({"type": "model", "id": id, "display_name": description,
                   "created_at": "1970-01-01T00:00:00Z"})
        })
        .collect();
    axum::Json(json!({
        "data": data,
        "has_more": false,
        "first_id": ids.first().map(|m| &m.0),
        "last_id": ids.last().map(|m| &m.0),
    }))
    .into_response()
}
