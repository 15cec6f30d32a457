//! The upstream APIs the engine speaks: OpenAI Chat Completions (the default), Azure
//! OpenAI's deployment paths, and Anthropic's Messages API. Every API answers through
//! the same simulation; the others translate the request in and the answer out.

use axum::body::{Body, Bytes};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use switchyard_wire::{AnthropicMessages, Dialect, translate_stream, translate_whole};

/// The API an engine serves.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Api {
    /// `POST /v1/chat/completions`.
    #[default]
    Openai,
    /// `POST /openai/deployments/{deployment}/chat/completions?api-version=…`.
    Azure,
    /// `POST /v1/messages` with an `anthropic-version` header.
    Anthropic,
}

impl std::str::FromStr for Api {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "openai" => Ok(Api::Openai),
            "azure" => Ok(Api::Azure),
            "anthropic" => Ok(Api::Anthropic),
            other => Err(format!("`{other}` is not openai, azure or anthropic")),
        }
    }
}

/// The largest answer translated whole.
const MAX_ANSWER: usize = 64 << 20;

/// An Anthropic error response.
fn anthropic_error(status: StatusCode, message: &str) -> Response {
    let canonical = switchyard_wire::error_body(message, "invalid_request_error", "", None);
    let body = AnthropicMessages.error(status.as_u16(), canonical.to_string().as_bytes());
    (status, [(header::CONTENT_TYPE, "application/json")], body).into_response()
}

/// A Messages request: checked and translated by the gateway's own dialect, then
/// answered like any chat request and translated back.
pub(crate) async fn messages<F, Fut>(headers: HeaderMap, body: Bytes, chat: F) -> Response
where
    F: FnOnce(HeaderMap, Bytes) -> Fut,
    Fut: std::future::Future<Output = Response>,
{
    let version = headers
        .get("anthropic-version")
        .and_then(|v| v.to_str().ok());
    if !version.is_some_and(|v| switchyard_wire::dialect::ANTHROPIC_VERSIONS.contains(&v)) {
        return anthropic_error(
            StatusCode::BAD_REQUEST,
            "anthropic-version: header is required (2023-06-01)",
        );
    }
    let request = match AnthropicMessages.parse(&body, None) {
        Ok((request, _)) => request,
        Err(e) => return anthropic_error(StatusCode::BAD_REQUEST, &e.message),
    };
    let Ok(chat_body) = serde_json::to_vec(&request) else {
        return anthropic_error(StatusCode::BAD_REQUEST, "cannot encode the request");
    };
    let response = chat(headers, Bytes::from(chat_body)).await;
    let (mut parts, body) = response.into_parts();
    let streamed = parts
        .headers
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"text/event-stream"));
    if streamed
        && parts.status.is_success()
        && let Some(translator) = AnthropicMessages.stream()
    {
        let events = translate_stream(body.into_data_stream(), translator);
        return Response::from_parts(parts, Body::from_stream(events));
    }
    // A whole answer broken off midway stays broken: its translation is cut too.
    let Ok(bytes) = axum::body::to_bytes(body, MAX_ANSWER).await else {
        let broken = futures_util::stream::iter([Err::<Bytes, _>(std::io::Error::other(
            "injected fault: drop",
        ))]);
        return Response::from_parts(parts, Body::from_stream(broken));
    };
    let (status, body) = translate_whole(&AnthropicMessages, parts.status.as_u16(), &bytes);
    parts.status = StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_GATEWAY);
    parts.headers.remove(header::CONTENT_LENGTH);
    Response::from_parts(parts, Body::from(body))
}

/// A request without the engine's key (when it has one) in its API's header:
/// `authorization: Bearer` (OpenAI), `api-key` (Azure), `x-api-key` (Anthropic).
pub(crate) fn unauthorized(api: Api, key: Option<&str>, headers: &HeaderMap) -> Option<Response> {
    let key = key?;
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let sent = match api {
        Api::Openai => header("authorization").and_then(|v| v.strip_prefix("Bearer ")),
        Api::Azure => header("api-key"),
        Api::Anthropic => header("x-api-key"),
    };
    (sent != Some(key)).then(|| {
        let body = switchyard_wire::error_body(
            "Incorrect API key provided",
            "authentication_error",
            "invalid_api_key",
            None,
        );
        (StatusCode::UNAUTHORIZED, axum::Json(body)).into_response()
    })
}

/// An Azure OpenAI request: needs `api-version`, then is a chat request.
pub(crate) fn azure_version_missing(query: Option<&str>) -> Option<Response> {
    let has_version = query
        .unwrap_or("")
        .split('&')
        .any(|p| p.starts_with("api-version=") && p.len() > "api-version=".len());
    (!has_version).then(|| {
        let body = switchyard_wire::error_body(
            "Missing required query parameter: api-version",
            "invalid_request_error",
            "missing_api_version",
            Some("api-version"),
        );
        (StatusCode::BAD_REQUEST, axum::Json(body)).into_response()
    })
}
