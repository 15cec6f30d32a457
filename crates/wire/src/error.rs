//! The JSON error body of every error response.

use serde::Serialize;

/// What went wrong, as a stable machine-readable code and an HTTP status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorKind {
    /// The body is not valid JSON or not a valid request (400).
    InvalidRequest,
    /// The requested model is not configured (404).
    ModelNotFound,
    /// No route matched and no default route is configured (422).
    NoRoute,
    /// The client did not send its whole body in time (408).
    RequestTimeout,
    /// The body is larger than the configured limit (413).
    PayloadTooLarge,
    /// The content type is not `application/json` (415).
    UnsupportedMediaType,
    /// The upstream failed, stalled or cut the answer short (502).
    Upstream,
    /// The upstream did not answer in time (504).
    UpstreamTimeout,
    /// No endpoint can take the request (503).
    Unavailable,
    /// A method or path this server does not serve (404/405).
    NotFound,
    /// A constraint of the policy forbids every way of answering the request (403).
    PolicyDenied,
    /// A plugin failed (returned an error or panicked) under `on_error: fail` (500).
    PluginFailed,
}

impl ErrorKind {
    /// The HTTP status code for this kind.
    pub fn status(self) -> u16 {
        match self {
            ErrorKind::InvalidRequest => 400,
            ErrorKind::PolicyDenied => 403,
            ErrorKind::ModelNotFound | ErrorKind::NotFound => 404,
            ErrorKind::RequestTimeout => 408,
            ErrorKind::PayloadTooLarge => 413,
            ErrorKind::UnsupportedMediaType => 415,
            ErrorKind::NoRoute => 422,
            ErrorKind::PluginFailed => 500,
            ErrorKind::Upstream => 502,
            ErrorKind::Unavailable => 503,
            ErrorKind::UpstreamTimeout => 504,
        }
    }

    /// The OpenAI-style `type` string.
    pub fn type_name(self) -> &'static str {
        match self {
            ErrorKind::InvalidRequest
            | ErrorKind::RequestTimeout
            | ErrorKind::PayloadTooLarge
            | ErrorKind::UnsupportedMediaType
            | ErrorKind::NoRoute => "invalid_request_error",
            ErrorKind::ModelNotFound | ErrorKind::NotFound => "not_found_error",
            ErrorKind::PolicyDenied => "permission_error",
            ErrorKind::PluginFailed => "server_error",
            ErrorKind::Upstream | ErrorKind::UpstreamTimeout | ErrorKind::Unavailable => {
                "upstream_error"
            }
        }
    }

    /// The machine-readable code.
    pub fn code(self) -> &'static str {
        match self {
            ErrorKind::InvalidRequest => "invalid_request",
            ErrorKind::ModelNotFound => "model_not_found",
            ErrorKind::NoRoute => "no_route",
            ErrorKind::RequestTimeout => "request_timeout",
            ErrorKind::PayloadTooLarge => "payload_too_large",
            ErrorKind::UnsupportedMediaType => "unsupported_media_type",
            ErrorKind::Upstream => "upstream_error",
            ErrorKind::UpstreamTimeout => "upstream_timeout",
            ErrorKind::Unavailable => "unavailable",
            ErrorKind::NotFound => "not_found",
            ErrorKind::PolicyDenied => "policy_denied",
            ErrorKind::PluginFailed => "plugin_failed",
        }
    }
}

/// The one shape of every error body: `{"error": {"message", "type", "code", "param"}}`.
pub fn error_body(
    message: &str,
    type_name: &str,
    code: &str,
    param: Option<&str>,
) -> serde_json::Value {
    serde_json::json!({
        "error": {"message": message, "type": type_name, "code": code, "param": param}
    })
}

/// An error as the client sees it: `{"error": {"message", "type", "code", "param"}}`.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{message}")]
pub struct ApiError {
    /// Which kind of error.
    pub kind: ErrorKind,
    /// A sentence naming the problem.
    pub message: String,
    /// The request field at fault, when there is one.
    pub param: Option<String>,
}

impl ApiError {
    /// An error of `kind` with `message`.
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        ApiError {
            kind,
            message: message.into(),
            param: None,
        }
    }

    /// Names the request field at fault.
    pub fn with_param(mut self, param: impl Into<String>) -> Self {
        self.param = Some(param.into());
        self
    }

    /// The JSON body of this error.
    pub fn body(&self) -> serde_json::Value {
        error_body(
            &self.message,
            self.kind.type_name(),
            self.kind.code(),
            self.param.as_deref(),
        )
    }

    /// The body as a terminal server-sent event, for errors after a stream began.
    pub fn sse_event(&self) -> bytes::Bytes {
        bytes::Bytes::from(format!("data: {}\n\n", self.body()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn body_names_type_code_and_param() {
        let e = ApiError::new(ErrorKind::InvalidRequest, "missing field `messages`")
            .with_param("messages");
        let b = e.body();
        assert_eq!(b["error"]["code"], "invalid_request");
        assert_eq!(b["error"]["param"], "messages");
        assert_eq!(e.kind.status(), 400);
        let event = String::from_utf8(e.sse_event().to_vec()).unwrap();
        assert!(event.starts_with("data: {") && event.ends_with("\n\n"));
    }
}
