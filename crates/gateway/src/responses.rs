//! The OpenAI Responses API: `POST /v1/responses` runs the same phases as every other
//! request (the canonical request is built from its input items), and the answer is
//! written as a `response` object or its `response.*` events. What the API keeps
//! between calls is kept here, in the shared state (in-process, or Redis/Valkey so
//! that every replica sees it): a stored response (`store`, default true) holds its
//! input items, earlier turns included, and its output, for `previous_response_id`,
//! `GET /v1/responses/{id}`, `GET /v1/responses/{id}/input_items` and `DELETE`. A
//! stored response belongs to the caller that made it (its credential, else its
//! address): another caller's id is not found.

use crate::dialects::error_in;
use crate::runtime::Runtime;
use axum::body::Body;
use axum::extract::rejection::BytesRejection;
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use serde::Deserialize;
use serde_json::{Map, Value, json};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};
use switchyard_state::{Refused, Reservation};
use switchyard_wire::headers::SESSION;
use switchyard_wire::{ApiError, Dialect, ErrorKind, OpenAiResponses, ResponseContext};

/// The dialect.
static DIALECT: OpenAiResponses = OpenAiResponses;

/// The largest canonical answer read whole.
const MAX_WHOLE: usize = 64 << 20;

/// A stored response.
#[derive(Debug, Deserialize)]
struct Stored {
    /// Who made it: a digest of the caller's credential or address.
    owner: String,
    /// The first response of its chain: the session its turns share.
    root: String,
    /// Its input items, those of the responses before it first.
    input: Vec<Value>,
    /// The `response` object.
    response: Value,
    /// What it counts against its caller's share, and the start of the window it was
    /// counted in: deleting it gives that back while the window lasts. (Responses
    /// stored before this was kept have none.)
    #[serde(default)]
    charged: Option<(u64, u64)>,
}

fn key(id: &str) -> String {
    format!("response:{id}")
}

/// The counter of bytes `owner` stored in the current window of `responses_ttl_s`.
fn quota_key(owner: &str) -> String {
    format!("response-bytes:{owner}")
}

/// The least a stored response counts against its caller's quota: many tiny
/// responses use up the store's keys as surely as a few large ones use its bytes.
const LEAST_CHARGE: u64 = 4096;

/// A fresh, unguessable response id.
fn new_id() -> String {
    use std::hash::BuildHasher;
    let draw = || {
        std::collections::hash_map::RandomState::new()
            .hash_one(super::observe::unix_ms(std::time::SystemTime::now()))
    };
    format!("resp_{:016x}{:016x}", draw(), draw())
}

/// The caller a stored response belongs to: a digest of its credential
/// (`authorization`, `x-api-key`, `api-key`), else of its address. Stable across
/// replicas; the credential itself is never stored.
fn owner(headers: &HeaderMap, peer: SocketAddr) -> String {
    use sha2::Digest;
    let mut digest = sha2::Sha256::new();
    match ["authorization", "x-api-key", "api-key"]
        .iter()
        .find_map(|name| headers.get(*name))
    {
        Some(credential) => {
            digest.update(b"credential:");
            digest.update(credential.as_bytes());
        }
        None => {
            digest.update(b"address:");
            digest.update(peer.ip().to_string().as_bytes());
        }
    }
    digest
        .finalize()
        .iter()
        .take(16)
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn unavailable(refused: &Refused) -> ApiError {
    ApiError::new(
        ErrorKind::Unavailable,
        format!("stored responses cannot be reached: {refused}"),
    )
}

fn not_found(id: &str, param: Option<&str>) -> Response {
    error_in(&DIALECT, &not_found_error(id, param))
}

fn not_found_error(id: &str, param: Option<&str>) -> ApiError {
    let shown: String = id.chars().take(64).collect();
    let mut error = ApiError::new(
        ErrorKind::NotFound,
        match param {
            Some(_) => format!("Previous response with id '{shown}' not found."),
            None => format!("No response found with id '{shown}'."),
        },
    );
    if let Some(param) = param {
        error = error.with_param(param);
    }
    error
}

/// Runs a shared-state operation, off the async workers when it crosses a network.
async fn on_state<T: Send + 'static>(
    runtime: &Arc<Runtime>,
    op: impl FnOnce(&dyn switchyard_state::SharedState) -> Result<T, Refused> + Send + 'static,
) -> Result<T, Refused> {
    if !runtime.state.remote() {
        return op(runtime.state.as_ref());
    }
    let state = Arc::clone(&runtime.state);
    tokio::task::spawn_blocking(move || op(state.as_ref()))
        .await
        .unwrap_or_else(|e| Err(Refused::Unavailable(e.to_string())))
}

/// The stored response `id` when it belongs to `owner`.
async fn load(runtime: &Arc<Runtime>, id: &str, owner: &str) -> Result<Option<Stored>, Refused> {
    let key = key(id);
    let bytes = on_state(runtime, move |s| s.get(&key)).await?;
    Ok(bytes
        .and_then(|b| serde_json::from_slice::<Stored>(&b).ok())
        .filter(|s| s.owner == owner))
}

/// What a response is stored with: everything but the response itself.
#[derive(Debug)]
struct Keep {
    owner: String,
    root: String,
    /// The input items as a JSON array.
    input: String,
}

/// Stores `response` (a serialized `response` object, id `id`) as a [`Stored`].
async fn save(runtime: &Arc<Runtime>, keep: &Keep, id: &str, response: &str) -> Result<(), String> {
    let mut bytes = Vec::with_capacity(response.len() + 256);
    // Closed with its charge once the caller's share has taken it.
    let encoded = (|| {
        bytes.extend_from_slice(b"{\"owner\":");
        serde_json::to_writer(&mut bytes, &keep.owner)?;
        bytes.extend_from_slice(b",\"root\":");
        serde_json::to_writer(&mut bytes, &keep.root)?;
        bytes.extend_from_slice(b",\"input\":");
        bytes.extend_from_slice(keep.input.as_bytes());
        bytes.extend_from_slice(b",\"response\":");
        bytes.extend_from_slice(response.as_bytes());
        Ok::<(), serde_json::Error>(())
    })();
    encoded.map_err(|e| e.to_string())?;
    let limit = runtime.policy.config.server.responses_max_bytes;
    if bytes.len() > limit {
        return Err(format!(
            "the response and its conversation hold {} bytes, more than \
             server.responses_max_bytes ({limit})",
            bytes.len()
        ));
    }
    let server = &runtime.policy.config.server;
    let ttl = Duration::from_secs(server.responses_ttl_s);
    // The caller's share first: one caller filling the store would leave every other
    // caller's conversations unstored until its responses expire.
    let (counter, quota) = (quota_key(&keep.owner), server.responses_caller_bytes);
    let charge = (bytes.len() as u64).max(LEAST_CHARGE);
    let held = on_state(runtime, move |s| s.reserve(&counter, charge, quota, ttl))
        .await
        .map_err(|e| match e {
            Refused::Exhausted { used, limit, .. } => format!(
                "this caller's stored responses already count {used} of the {limit} bytes \
                 one caller may store per server.responses_ttl_s \
                 (server.responses_caller_bytes)"
            ),
            other => other.to_string(),
        })?;
    bytes.extend_from_slice(
        format!(",\"charged\":[{},{}]}}", held.amount, held.window_start).as_bytes(),
    );
    let key = key(id);
    let stored = on_state(runtime, move |s| s.put(&key, Bytes::from(bytes), ttl)).await;
    if let Err(e) = stored {
        // Not stored: not charged.
        let _ = on_state(runtime, move |s| {
            s.settle(held, 0);
            Ok(())
        })
        .await;
        return Err(e.to_string());
    }
    Ok(())
}

/// `POST /v1/responses`. Joining a stored conversation to the request is part of its
/// ingress phase: timed with it, and a refusal there is observed as one.
pub async fn create(
    runtime: Arc<Runtime>,
    peer: SocketAddr,
    mut headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let started = Instant::now();
    let clock = (started, &DIALECT as &'static dyn Dialect);
    let limit = runtime.policy.config.server.max_body_bytes;
    let refuse = |headers: &HeaderMap, error: ApiError| {
        crate::server::refuse_at_ingress(&runtime, headers, error, clock)
    };
    let body = match body {
        Ok(body) => body,
        Err(rejection) => return refuse(&headers, crate::ingress::rejected(&rejection, limit)),
    };
    if let Err(error) = crate::ingress::check_content_type(&headers) {
        return refuse(&headers, error);
    }
    let owner = owner(&headers, peer);
    let id = new_id();
    let created_at = super::observe::unix_ms(std::time::SystemTime::now()) / 1000;
    let (context, head) = match ResponseContext::read(id.clone(), created_at, &body) {
        Ok(read) => read,
        Err(error) => return refuse(&headers, error),
    };
    let mut root = id.clone();
    // A request that continues none is parsed as it came; one that does, with the
    // conversation it continues in its input.
    let (expanded, input) = match head.previous_response_id {
        None => (body, head.input.unwrap_or_else(|| "[]".to_owned())),
        Some(previous) => match load(&runtime, &previous, &owner).await {
            Ok(Some(stored)) => {
                root = stored.root;
                match chain(stored.input, stored.response, &body) {
                    Ok(expanded) => expanded,
                    Err(error) => return refuse(&headers, error),
                }
            }
            Ok(None) => {
                let error = not_found_error(&previous, Some("previous_response_id"));
                return refuse(&headers, error);
            }
            Err(refused) => return refuse(&headers, unavailable(&refused)),
        },
    };
    if expanded.len() > runtime.policy.config.server.responses_max_bytes {
        let error = ApiError::new(
            ErrorKind::InvalidRequest,
            format!(
                "previous_response_id: the conversation holds {} bytes, more than the {} \
                 a response may keep (server.responses_max_bytes): start a new one",
                expanded.len(),
                runtime.policy.config.server.responses_max_bytes
            ),
        )
        .with_param("previous_response_id");
        return refuse(&headers, error);
    }
    if !headers.contains_key(SESSION)
        && let Ok(value) = HeaderValue::from_str(&root)
    {
        // The turns of one chain share a session: the same endpoint, its prefix cache.
        headers.insert(SESSION, value);
    }
    let response =
        crate::server::serve_from(Arc::clone(&runtime), (peer, &headers), Ok(expanded), clock)
            .await;
    let keep = context.stored().then_some(Keep { owner, root, input });
    answer(runtime, context, keep, response).await
}

/// A request continuing a stored response: its body with the conversation so far (the
/// stored input, then output) ahead of its own input, and all those items as JSON.
fn chain(
    mut input: Vec<Value>,
    mut response: Value,
    body: &[u8],
) -> Result<(Bytes, String), ApiError> {
    let cannot = |e: serde_json::Error| {
        ApiError::new(ErrorKind::InvalidRequest, format!("cannot continue: {e}"))
    };
    let mut object: Map<String, Value> = serde_json::from_slice(body).map_err(cannot)?;
    object.remove("previous_response_id");
    if let Some(Value::Array(output)) = response.get_mut("output").map(Value::take) {
        input.extend(output);
    }
    match object.remove("input") {
        Some(Value::String(text)) => {
            input.push(json!({"type": "message", "role": "user", "content": text}));
        }
        Some(Value::Array(items)) => input.extend(items),
        None | Some(Value::Null) => {}
        // Left as it came, for the dialect to refuse naming the field.
        Some(other) => {
            object.insert("input".into(), other);
        }
    }
    let items = serde_json::to_string(&input).map_err(cannot)?;
    object.entry("input").or_insert_with(|| Value::Array(input));
    let expanded = serde_json::to_vec(&object).map_err(cannot)?;
    Ok((Bytes::from(expanded), items))
}

/// The canonical `response` as the client sees it; `keep` stored with it when given.
async fn answer(
    runtime: Arc<Runtime>,
    context: ResponseContext,
    keep: Option<Keep>,
    response: Response,
) -> Response {
    let (mut parts, body) = response.into_parts();
    let streamed = parts
        .headers
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"text/event-stream"));
    if parts.status.is_success() && streamed {
        let on_final: Option<Box<dyn FnOnce(Value) + Send>> = keep.map(|keep| {
            let runtime = Arc::clone(&runtime);
            let id = context.id.clone();
            let store: Box<dyn FnOnce(Value) + Send> = Box::new(move |response: Value| {
                tokio::spawn(async move {
                    if let Err(e) = save(&runtime, &keep, &id, &response.to_string()).await {
                        tracing::warn!(response = %id, error = %e,
                            "a streamed response could not be stored");
                    }
                });
            });
            store
        });
        let events =
            switchyard_wire::translate_stream(body.into_data_stream(), context.events(on_final));
        return Response::from_parts(parts, Body::from_stream(events));
    }
    parts.headers.remove(header::CONTENT_LENGTH);
    parts.headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    let bytes = match axum::body::to_bytes(body, MAX_WHOLE).await {
        Ok(bytes) => bytes,
        Err(e) => {
            let error = ApiError::new(
                ErrorKind::Upstream,
                format!("the answer could not be read: {e}"),
            );
            return error_in(&DIALECT, &error);
        }
    };
    if !parts.status.is_success() {
        // Errors are already in OpenAI's shape.
        return Response::from_parts(parts, Body::from(bytes));
    }
    let object = match context.whole(&bytes) {
        Ok(object) => object,
        Err(error) => return error_in(&DIALECT, &error),
    };
    if let Some(keep) = keep
        && let Err(e) = save(&runtime, &keep, &context.id, &object).await
    {
        tracing::warn!(response = %context.id, error = %e, "a response could not be stored");
        if let Ok(value) = HeaderValue::from_str(&format!("not stored: {e}")) {
            parts.headers.insert("x-switchyard-response-store", value);
        }
    }
    Response::from_parts(parts, Body::from(object))
}

/// `GET /v1/responses/{id}`.
pub async fn get(
    runtime: Arc<Runtime>,
    peer: SocketAddr,
    headers: &HeaderMap,
    id: &str,
) -> Response {
    match load(&runtime, id, &owner(headers, peer)).await {
        Ok(Some(stored)) => axum::Json(stored.response).into_response(),
        Ok(None) => not_found(id, None),
        Err(refused) => error_in(&DIALECT, &unavailable(&refused)),
    }
}

/// `GET /v1/responses/{id}/input_items`: `order` (`desc`, the default, or `asc`),
/// `limit` (1 to 100, default 20) and `after` (an item id) page through them.
pub async fn input_items(
    runtime: Arc<Runtime>,
    peer: SocketAddr,
    headers: &HeaderMap,
    id: &str,
    query: &std::collections::HashMap<String, String>,
) -> Response {
    let stored = match load(&runtime, id, &owner(headers, peer)).await {
        Ok(Some(stored)) => stored,
        Ok(None) => return not_found(id, None),
        Err(refused) => return error_in(&DIALECT, &unavailable(&refused)),
    };
    let bad = |param: &str, message: &str| {
        error_in(
            &DIALECT,
            &ApiError::new(ErrorKind::InvalidRequest, format!("{param}: {message}"))
                .with_param(param),
        )
    };
    let limit = match query.get("limit").map(|l| l.parse::<usize>()) {
        None => 20,
        Some(Ok(n)) if (1..=100).contains(&n) => n,
        Some(_) => return bad("limit", "must be a whole number from 1 to 100"),
    };
    let descending = match query.get("order").map(String::as_str) {
        None | Some("desc") => true,
        Some("asc") => false,
        Some(_) => return bad("order", "must be asc or desc"),
    };
    let response_id = stored.response["id"].as_str().unwrap_or(id).to_owned();
    let mut items: Vec<Value> = stored
        .input
        .into_iter()
        .enumerate()
        .map(|(i, mut item)| {
            if item.get("id").is_none_or(Value::is_null) {
                let suffix = response_id.strip_prefix("resp_").unwrap_or(&response_id);
                item["id"] = json!(format!("item_{suffix}_{i}"));
            }
            if item.get("type").is_none() {
                item["type"] = json!("message");
            }
            item
        })
        .collect();
    if descending {
        items.reverse();
    }
    let start = match query.get("after") {
        None => 0,
        Some(after) => match items.iter().position(|i| i["id"] == after.as_str()) {
            Some(at) => at + 1,
            None => return bad("after", "names no item of this response"),
        },
    };
    let page: Vec<Value> = items.iter().skip(start).take(limit).cloned().collect();
    let has_more = start + page.len() < items.len();
    axum::Json(json!({
        "object": "list",
        "data": page,
        "first_id": page.first().map(|i| i["id"].clone()),
        "last_id": page.last().map(|i| i["id"].clone()),
        "has_more": has_more,
    }))
    .into_response()
}

/// `DELETE /v1/responses/{id}`.
pub async fn delete(
    runtime: Arc<Runtime>,
    peer: SocketAddr,
    headers: &HeaderMap,
    id: &str,
) -> Response {
    let owner = owner(headers, peer);
    let charged = match load(&runtime, id, &owner).await {
        Ok(Some(stored)) => stored.charged,
        Ok(None) => return not_found(id, None),
        Err(refused) => return error_in(&DIALECT, &unavailable(&refused)),
    };
    let key = key(id);
    match on_state(&runtime, move |s| {
        let deleted = s.delete(&key)?;
        // Its bytes go back to the caller's share while the window it was counted in
        // lasts; only the delete that removed it gives them back.
        if let Some((amount, window_start)) = charged.filter(|_| deleted) {
            let counted = Reservation {
                key: quota_key(&owner),
                amount,
                window_start,
                used: 0,
            };
            s.settle(counted, 0);
        }
        Ok(deleted)
    })
    .await
    {
        Ok(_) => axum::Json(json!({"id": id, "object": "response.deleted", "deleted": true}))
            .into_response(),
        Err(refused) => error_in(&DIALECT, &unavailable(&refused)),
    }
}
