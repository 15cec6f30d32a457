//! The HTTP server: routes, extractors and error shapes. Handlers stay short; the
//! work is in [`crate::ingress`], [`crate::pipeline`] and [`crate::respond`].

use crate::exchange::Exchange;
use crate::forward::{answer, finish};
use crate::local::error_response;
use crate::observe::{Outcome, observe};
use crate::runtime::{Runtime, RuntimeError};
use crate::serve::Limits;
use crate::{dialects, dry_run, ingress, pipeline};
use axum::Router;
use axum::extract::rejection::BytesRejection;
use axum::extract::{ConnectInfo, DefaultBodyLimit, Path, Query, State};
use axum::http::{HeaderMap, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use bytes::Bytes;
use serde_json::json;
use std::net::SocketAddr;
use std::sync::{Arc, RwLock};
use std::time::Instant;
use switchyard_wire::{AnthropicMessages, ApiError, Dialect, ErrorKind, OpenAiChat};
use tokio::net::TcpListener;

/// The runtime requests are served by, replaceable while serving: each request takes
/// the current one when it starts and keeps it to its end.
#[derive(Debug)]
pub struct Live(RwLock<Arc<Runtime>>);

impl Live {
    /// The runtime new requests use.
    pub fn current(&self) -> Arc<Runtime> {
        Arc::clone(
            &self
                .0
                .read()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
        )
    }

    /// Replaces the runtime with one built for `policy` (see [`Runtime::reloaded`]);
    /// on error (or, with `server.reload_runs_tests`, a failing TEST case) the current
    /// one stays. Settings bound at start (`server.listen`, `server.admin_listen`,
    /// `server.max_body_bytes`, `server.worker_threads`) keep their old values; the
    /// names of those that changed are returned.
    pub fn reload(
        &self,
        policy: switchyard_policy::Policy,
    ) -> Result<Vec<&'static str>, RuntimeError> {
        let old = self.current();
        let (before, after) = (&old.policy.config.server, &policy.config.server);
        let mut fixed = Vec::new();
        if before.listen.value != after.listen.value {
            fixed.push("server.listen");
        }
        if before.admin_listen.as_ref().map(|a| &a.value)
            != after.admin_listen.as_ref().map(|a| &a.value)
        {
            fixed.push("server.admin_listen");
        }
        if before.max_body_bytes != after.max_body_bytes {
            fixed.push("server.max_body_bytes");
        }
        if before.worker_threads != after.worker_threads {
            fixed.push("server.worker_threads");
        }
        let runtime = old.reloaded(policy)?;
        if runtime.policy.config.server.reload_runs_tests {
            let report = crate::policy_tests::run(&runtime);
            if !report.failed.is_empty() {
                return Err(RuntimeError::Tests {
                    failed: report.failed,
                });
            }
        }
        switchyard_pool::spawn_health_checks(&runtime.pools, &runtime.policy.config.health);
        *self
            .0
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Arc::new(runtime);
        metrics::counter!("switchyard_policy_reloads_total").increment(1);
        Ok(fixed)
    }
}

/// A gateway bound to an address and serving in the background.
pub struct Gateway {
    /// Where it listens.
    pub addr: SocketAddr,
    /// Where the operator's endpoints are served, when `server.admin_listen` is set.
    pub admin_addr: Option<SocketAddr>,
    /// Its runtime, replaceable while serving.
    pub live: Arc<Live>,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl Gateway {
    /// Serves `runtime` on `listener` in a background task.
    pub fn start(listener: TcpListener, runtime: Runtime) -> std::io::Result<Gateway> {
        Self::start_until(listener, runtime, shutdown_signal())
    }

    /// Serves until `shutdown` resolves, then drains: the listener closes at once and
    /// requests in progress, streams included, run to their end. With
    /// `server.admin_listen`, binds that address too and serves the operator's
    /// endpoints there (see [`admin_router`]).
    pub fn start_until(
        listener: TcpListener,
        runtime: Runtime,
        shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<Gateway> {
        use futures_util::FutureExt;
        let addr = listener.local_addr()?;
        let admin = match &runtime.policy.config.server.admin_listen {
            Some(at) => Some(bind_now(&at.value).map_err(|e| {
                std::io::Error::new(
                    e.kind(),
                    format!("cannot listen on {} (server.admin_listen): {e}", at.value),
                )
            })?),
            None => None,
        };
        let admin_addr = admin.as_ref().map(TcpListener::local_addr).transpose()?;
        // Install the recorder before the first request so no sample is lost.
        let _ = crate::metrics::handle();
        switchyard_pool::spawn_health_checks(&runtime.pools, &runtime.policy.config.health);
        let live = Arc::new(Live(RwLock::new(Arc::new(runtime))));
        let app = if admin.is_some() {
            public_router(Arc::clone(&live))
        } else {
            router(Arc::clone(&live))
        };
        // Small SSE events must leave at once, not wait for Nagle's algorithm.
        let server = &live.current().policy.config.server;
        let limits = Limits {
            header_read_timeout: std::time::Duration::from_millis(
                server.header_read_timeout_ms.max(1),
            ),
            body_read_timeout: std::time::Duration::from_millis(server.body_read_timeout_ms.max(1)),
            max_connections: server
                .max_connections
                .unwrap_or_else(crate::serve::default_max_connections)
                .max(1),
        };
        let shutdown = shutdown.shared();
        if let Some(admin) = admin {
            let app = admin_router(Arc::clone(&live));
            let stop = shutdown.clone();
            tokio::spawn(async move {
                if let Err(e) = crate::serve::serve(admin, app, stop, limits).await {
                    tracing::error!(error = %e, "the admin listener stopped");
                }
            });
        }
        let task = tokio::spawn(crate::serve::serve(listener, app, shutdown, limits));
        Ok(Gateway {
            addr,
            admin_addr,
            live,
            task,
        })
    }

    /// The runtime new requests use.
    pub fn runtime(&self) -> Arc<Runtime> {
        self.live.current()
    }

    /// Its base URL.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Waits until the server stops (Ctrl-C or SIGTERM drains it).
    pub async fn wait(self) -> std::io::Result<()> {
        self.task.await.map_err(std::io::Error::other)?
    }
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(_) => {
                    let _ = ctrl_c.await;
                    return;
                }
            };
        tokio::select! {
            _ = ctrl_c => {},
            _ = term.recv() => {},
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
}

/// Binds `addr` from synchronous code inside a Tokio runtime.
fn bind_now(addr: &str) -> std::io::Result<TcpListener> {
    let listener = std::net::TcpListener::bind(addr)?;
    listener.set_nonblocking(true)?;
    TcpListener::from_std(listener)
}

/// Every route on one listener: what clients call and the operator's endpoints.
pub fn router(live: Arc<Live>) -> Router {
    with_operator_routes(client_routes(), live)
}

/// The routes of the serving address when `server.admin_listen` is set: what
/// clients call, without the operator's endpoints (those get 404 here).
pub fn public_router(live: Arc<Live>) -> Router {
    finish_router(client_routes(), live)
}

/// The routes of `server.admin_listen`: pools with their endpoints' state, metrics,
/// the explain trace of `/v1/route` (which shows the policy) and the outcome tallies;
/// and the health probes, so the admin address can be probed too.
pub fn admin_router(live: Arc<Live>) -> Router {
    with_operator_routes(
        Router::new()
            .route("/healthz", get(healthz))
            .route("/readyz", get(readyz)),
        live,
    )
}

fn with_operator_routes(routes: Router<Arc<Live>>, live: Arc<Live>) -> Router {
    finish_router(
        routes
            .route("/v1/route", post(route_only))
            .route("/v1/outcomes", get(outcomes))
            .route("/v1/pools", get(pools))
            .route("/metrics", get(metrics_text)),
        live,
    )
}

fn finish_router(routes: Router<Arc<Live>>, live: Arc<Live>) -> Router {
    let limit = live.current().policy.config.server.max_body_bytes;
    routes
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(limit))
        .with_state(live)
}

/// What clients call, with the health probes.
fn client_routes() -> Router<Arc<Live>> {
    Router::new()
        .route("/v1/chat/completions", post(chat_completions))
        .route("/v1/messages", post(messages))
        .route("/v1/messages/count_tokens", post(count_tokens))
        .route("/v1/responses", post(responses_create))
        .route(
            "/v1/responses/{id}",
            get(responses_get).delete(responses_delete),
        )
        .route("/v1/responses/{id}/input_items", get(responses_input_items))
        .route(
            "/v1/feedback",
            post(feedback).layer(DefaultBodyLimit::max(crate::feedback::MAX_BODY)),
        )
        .route("/v1/models", get(models))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
}

async fn chat_completions(
    State(live): State<Arc<Live>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let runtime = live.current();
    serve(runtime, (peer, &headers), body, &OpenAiChat).await
}

/// Anthropic's Messages API: the same phases, the answer translated on the way out.
async fn messages(
    State(live): State<Arc<Live>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let runtime = live.current();
    let dialect: &'static dyn Dialect = &AnthropicMessages;
    if let Err(error) = dialects::anthropic_version(&headers) {
        return dialects::error_in(dialect, &error);
    }
    let response = serve(runtime, (peer, &headers), body, dialect).await;
    dialects::translate(dialect, response).await
}

async fn count_tokens(
    State(live): State<Arc<Live>>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    dialects::count_tokens(&live.current(), &headers, body)
}

/// The OpenAI Responses API (see [`crate::responses`]).
async fn responses_create(
    State(live): State<Arc<Live>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    crate::responses::create(live.current(), peer, headers, body).await
}

async fn responses_get(
    State(live): State<Arc<Live>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    crate::responses::get(live.current(), peer, &headers, &id).await
}

async fn responses_input_items(
    State(live): State<Arc<Live>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Query(query): Query<std::collections::HashMap<String, String>>,
) -> Response {
    crate::responses::input_items(live.current(), peer, &headers, &id, &query).await
}

async fn responses_delete(
    State(live): State<Arc<Live>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    crate::responses::delete(live.current(), peer, &headers, &id).await
}

/// One request through its phases in `dialect`, answered canonically.
pub(crate) async fn serve(
    runtime: Arc<Runtime>,
    (peer, headers): (SocketAddr, &HeaderMap),
    body: Result<Bytes, BytesRejection>,
    dialect: &'static dyn Dialect,
) -> Response {
    serve_from(runtime, (peer, headers), body, (Instant::now(), dialect)).await
}

/// [`serve`] for a request whose ingress began at `started` (the Responses API joins
/// a stored conversation to it first: that time is the ingress phase's too).
pub(crate) async fn serve_from(
    runtime: Arc<Runtime>,
    (peer, headers): (SocketAddr, &HeaderMap),
    body: Result<Bytes, BytesRejection>,
    (started, dialect): (Instant, &'static dyn Dialect),
) -> Response {
    let mut x = match ingress::admit(&runtime, headers, body, Some(peer), (started, dialect)) {
        Ok(x) => x,
        Err(mut refused) => return refused_response(&runtime, &mut refused),
    };
    if pipeline::run(&runtime, &mut x).is_err() {
        return refused_response(&runtime, &mut x);
    }
    answer(runtime, Box::new(x)).await
}

/// Answers a request refused at ingress before it could be read, and observes it.
pub(crate) fn refuse_at_ingress(
    runtime: &Runtime,
    headers: &HeaderMap,
    error: ApiError,
    clock: (Instant, &'static dyn Dialect),
) -> Response {
    refused_response(
        runtime,
        &mut ingress::refused(runtime, headers, error, clock),
    )
}

/// Answers a request a phase refused, and observes it.
fn refused_response(runtime: &Runtime, x: &mut Exchange) -> Response {
    let Some(refusal) = x.refusal.clone() else {
        return error_response(&ApiError::new(
            ErrorKind::Unavailable,
            "refused without a reason",
        ));
    };
    let response = finish(runtime, x, error_response(&refusal.error));
    observe(runtime, x, Outcome::failed(&refusal.error));
    response
}

async fn route_only(
    State(live): State<Arc<Live>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let runtime = live.current();
    let (status, trace) = dry_run::dry_run(&runtime, &headers, body, Some(peer));
    (status, axum::Json(trace)).into_response()
}

async fn feedback(
    State(live): State<Arc<Live>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let runtime = live.current();
    match body {
        Ok(body) => crate::feedback::feedback(&runtime, &headers, Some(peer), &body),
        Err(rejection) => {
            let kind = if rejection.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE {
                ErrorKind::PayloadTooLarge
            } else {
                ErrorKind::InvalidRequest
            };
            error_response(&ApiError::new(
                kind,
                format!(
                    "the feedback body could not be read ({rejection}); at most {} bytes",
                    crate::feedback::MAX_BODY
                ),
            ))
        }
    }
}

async fn outcomes(State(live): State<Arc<Live>>) -> Response {
    crate::feedback::outcomes(&live.current())
}

async fn models(State(live): State<Arc<Live>>, headers: HeaderMap) -> Response {
    let runtime = live.current();
    if headers.contains_key("anthropic-version") {
        let mut ids: Vec<(String, String)> = Vec::new();
        for scope in runtime.policy.scopes() {
            for alias in &scope.aliases {
                let description = match &scope.name {
                    None => "routed by policy".to_owned(),
                    Some(recipe) => format!("routed by recipe `{recipe}`"),
                };
                ids.push((alias.clone(), description));
            }
        }
        for m in &runtime.policy.config.models {
            let name = m.name.value.clone();
            ids.push((name.clone(), m.description.clone().unwrap_or(name)));
        }
        return dialects::anthropic_models(&ids);
    }
    let config = &runtime.policy.config;
    let mut data: Vec<serde_json::Value> = runtime
        .policy
        .scopes()
        .iter()
        .flat_map(|scope| {
            let description = match &scope.name {
                None => "routed by policy".to_owned(),
                Some(recipe) => format!("routed by recipe `{recipe}`"),
            };
            scope.aliases.iter().map(move |alias| {
                json!({"id": alias, "object": "model", "owned_by": "switchyard",
                       "description": description})
            })
        })
        .collect();
    for (i, m) in config.models.iter().enumerate() {
        data.push(json!({
            "id": m.name.value, "object": "model", "owned_by": "switchyard",
            "description": m.description,
            "max_context": runtime.pools.max_context(i),
        }));
    }
    axum::Json(json!({"object": "list", "data": data})).into_response()
}

async fn pools(State(live): State<Arc<Live>>) -> Response {
    let runtime = live.current();
    let models = &runtime.policy.config.models;
    let pools: Vec<serde_json::Value> = runtime
        .pools
        .snapshot()
        .into_iter()
        .map(|p| {
            let model = models.get(p.model).map(|m| m.name.value.clone());
            let mut value = serde_json::to_value(p).unwrap_or_default();
            value["model"] = json!(model);
            value
        })
        .collect();
    axum::Json(json!({"pools": pools})).into_response()
}

async fn healthz() -> Response {
    axum::Json(json!({"status": "ok"})).into_response()
}

/// Ready while every model has at least one endpoint in rotation; 503 naming the
/// models that have none otherwise (a load balancer then sends traffic elsewhere).
async fn readyz(State(live): State<Arc<Live>>) -> Response {
    let runtime = live.current();
    let now = runtime.pools.now_ms();
    let endpoints: usize = runtime.pools.all().iter().map(|p| p.endpoints.len()).sum();
    let in_rotation = runtime
        .pools
        .endpoints()
        .filter(|e| e.health.available(now))
        .count();
    let unserved: Vec<&str> = runtime
        .policy
        .config
        .models
        .iter()
        .enumerate()
        .filter(|(i, _)| {
            !runtime
                .pools
                .of_model(*i)
                .any(|p| p.endpoints.iter().any(|e| e.health.available(now)))
        })
        .map(|(_, m)| m.name.value.as_str())
        .collect();
    let body = json!({
        "status": if unserved.is_empty() { "ready" } else { "degraded" },
        "models_without_endpoints": unserved,
        "routes": runtime.policy.routes().len(),
        "models": runtime.policy.config.models.len(),
        "pools": runtime.pools.all().len(),
        "endpoints": endpoints,
        "endpoints_in_rotation": in_rotation,
    });
    let status = if unserved.is_empty() {
        axum::http::StatusCode::OK
    } else {
        axum::http::StatusCode::SERVICE_UNAVAILABLE
    };
    (status, axum::Json(body)).into_response()
}

async fn metrics_text(State(live): State<Arc<Live>>) -> Response {
    let runtime = live.current();
    // Pool state is read when scraped, so it is current without work per request.
    let now = runtime.pools.now_ms();
    for pool in runtime.pools.all() {
        for e in &pool.endpoints {
            let labels = [("pool", pool.name.clone()), ("endpoint", e.name.clone())];
            metrics::gauge!("switchyard_endpoint_in_flight", &labels).set(e.in_flight() as f64);
            let available = if e.health.available(now) { 1.0 } else { 0.0 };
            metrics::gauge!("switchyard_endpoint_available", &labels).set(available);
            if let Some(ms) = e.latency.estimate(now) {
                metrics::gauge!("switchyard_endpoint_ttft_ewma_seconds", &labels).set(ms / 1000.0);
            }
            if let Some(engine) = e.engine.get(now) {
                metrics::gauge!("switchyard_endpoint_engine_waiting", &labels).set(engine.waiting);
                metrics::gauge!("switchyard_endpoint_engine_kv_usage", &labels)
                    .set(engine.kv_usage);
            }
        }
    }
    let text = crate::metrics::handle().map_or_else(String::new, |h| h.render());
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], text).into_response()
}

async fn not_found(uri: axum::http::Uri) -> Response {
    error_response(&ApiError::new(
        ErrorKind::NotFound,
        format!("no such path: {}", uri.path()),
    ))
}

async fn method_not_allowed(method: axum::http::Method, uri: axum::http::Uri) -> Response {
    let mut response = error_response(&ApiError::new(
        ErrorKind::NotFound,
        format!("{method} is not allowed on {}", uri.path()),
    ));
    *response.status_mut() = axum::http::StatusCode::METHOD_NOT_ALLOWED;
    response
}
