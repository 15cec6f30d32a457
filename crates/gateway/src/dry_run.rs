//! Dry runs: the phases up to plugins, no upstream call, the explain trace returned.
//! `POST /v1/route` and `switchyard route` run the same function on the same kind of
//! body, so they give the same trace for the same request.

use crate::exchange::Exchange;
use crate::ingress;
use crate::pipeline;
use crate::runtime::Runtime;
use crate::trace::{Trace, trace};
use axum::extract::rejection::BytesRejection;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use bytes::Bytes;
use serde::Serialize;
use serde_json::{Value, json};
use std::net::SocketAddr;
use std::time::Instant;
use switchyard_wire::OpenAiChat;

/// What a dry run answers: the trace, or the error of a body that does not parse.
#[derive(Debug, Clone, Serialize)]
#[serde(untagged)]
pub enum DryRun {
    /// The trace (of a refused request too).
    Trace(Box<Trace>),
    /// The error of a request refused at ingress.
    Error(Value),
}

impl DryRun {
    /// As a JSON value (its keys then sorted), for reading fields.
    pub fn to_value(&self) -> Value {
        serde_json::to_value(self).unwrap_or(Value::Null)
    }
}

/// Runs a request's phases as a dry run. The answer is the trace, with status 200
/// when the request would be forwarded (or answered by a plugin), and the refusal's
/// status otherwise: the trace then ends at the refusing phase and carries `error`
/// (an OpenAI-style error body). A body that does not parse gets the plain error.
pub fn dry_run(
    runtime: &Runtime,
    headers: &HeaderMap,
    body: Result<Bytes, BytesRejection>,
    peer: Option<SocketAddr>,
) -> (StatusCode, DryRun) {
    let started = Instant::now();
    let mut x = match ingress::admit(runtime, headers, body, peer, (started, &OpenAiChat)) {
        Ok(x) => x,
        Err(refused) => {
            let error = refused.refusal.map(|r| r.error);
            return match error {
                Some(e) => (status(e.kind.status()), DryRun::Error(e.body())),
                None => (StatusCode::INTERNAL_SERVER_ERROR, DryRun::Error(json!({}))),
            };
        }
    };
    x.dry_run = true;
    let result = pipeline::run(runtime, &mut x);
    let code = match result {
        Ok(()) => StatusCode::OK,
        Err(refusal) => status(refusal.error.kind.status()),
    };
    (code, DryRun::Trace(Box::new(trace(runtime, &x))))
}

/// Runs a dry run and keeps the exchange (for tools that read its results, such as
/// the policy's TEST runner).
pub fn dry_exchange(runtime: &Runtime, headers: &HeaderMap, body: Bytes) -> Exchange {
    let started = Instant::now();
    match ingress::admit(runtime, headers, Ok(body), None, (started, &OpenAiChat)) {
        Ok(mut x) => {
            x.dry_run = true;
            let _ = pipeline::run(runtime, &mut x);
            x
        }
        Err(refused) => *refused,
    }
}

/// The request a command line sends for one user prompt: the body and headers a
/// client would send to `POST /v1/route`.
pub fn prompt_request(model: &str, prompt: &str, max_tokens: Option<u32>) -> (HeaderMap, Bytes) {
    let mut body = json!({"model": model, "messages": [{"role": "user", "content": prompt}]});
    if let Some(cap) = max_tokens {
        body["max_tokens"] = json!(cap);
    }
    let mut headers = HeaderMap::new();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    (headers, Bytes::from(body.to_string()))
}

fn status(code: u16) -> StatusCode {
    StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
}
