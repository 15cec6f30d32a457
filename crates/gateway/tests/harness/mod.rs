//! Test harness: simulated engines and a gateway on ephemeral loopback ports.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::print_stderr,
    dead_code,
    missing_docs
)]

use axum::body::{Body, Bytes};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use switchyard_engine::{EngineConfig, EngineHandle};
use switchyard_fleet::GpuKind;
use switchyard_gateway::{Gateway, Runtime};
use switchyard_policy::{Policy, parse_config};

pub struct Stack {
    pub gateway: Gateway,
    pub coder: EngineHandle,
    pub chat_short: EngineHandle,
    pub chat_long: EngineHandle,
    pub client: reqwest::Client,
}

pub async fn engine(gpu: Option<GpuKind>, window: u32, model: &str) -> EngineHandle {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    switchyard_engine::serve(
        listener,
        EngineConfig {
            model: model.to_owned(),
            gpu,
            context_window: window,
            mean_output_tokens: 400,
            ..EngineConfig::default()
        },
    )
    .await
    .unwrap()
}

/// Three engines (coder, chat on a short and a long pool) behind a gateway.
/// `extra` is appended to the `server:` section; `upstream` replaces the upstream section.
pub async fn stack(server_extra: &str, upstream: &str) -> Stack {
    let coder = engine(Some(GpuKind::H100), 16_384, "coder-upstream").await;
    let chat_short = engine(Some(GpuKind::H100), 4096, "chat").await;
    let chat_long = engine(Some(GpuKind::H100), 65_536, "chat").await;
    let config = format!(
        "server:
  listen: 127.0.0.1:0
{server_extra}
upstream:
{upstream}
models:
  - name: coder
    upstream_name: coder-upstream
  - name: chat
pools:
  - name: coder-pool
    model: coder
    gpu: h100
    context_window: 16K
    endpoints: [{{url: '{}'}}]
  - name: chat-short
    model: chat
    context_window: 4K
    endpoints: [{{url: '{}'}}]
  - name: chat-long
    model: chat
    context_window: 64K
    endpoints: [{{url: '{}/v1'}}]
signals:
  keyword:
    - name: code
      keywords: [python, rust, compile]
  context:
    - name: long
      min: 5K
  metadata:
    - {{name: acme, key: 'header:X-Tenant', values: [acme]}}
    - {{name: gold, key: 'metadata:tier', values: [gold]}}
routes:
  - name: tenant
    priority: 20
    when: {{any: [{{metadata: acme}}, {{metadata: gold}}]}}
    models: [coder]
  - name: long_context
    priority: 10
    when: {{context: long}}
    models: [chat]
  - name: coding
    priority: 5
    when: {{keyword: code}}
    models: [coder]
default_route:
  models: [chat]
",
        coder.url(),
        chat_short.url(),
        chat_long.url()
    );
    let policy = Policy::compile(parse_config(&config).unwrap()).unwrap();
    let runtime = Runtime::new(policy).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let gateway = Gateway::start(listener, runtime).unwrap();
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap();
    Stack {
        gateway,
        coder,
        chat_short,
        chat_long,
        client,
    }
}

pub const DEFAULT_UPSTREAM: &str = "  idle_timeout_ms: 2000";

/// A fresh path `name` in a temporary folder of this test process, tagged `tag`.
pub fn temp_file(tag: &str, name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("switchyard-{tag}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(name);
    let _ = std::fs::remove_file(&path);
    path
}

/// The standard stack writing its decision log to a fresh file; returns both.
pub async fn logging_stack(tag: &str) -> (Stack, std::path::PathBuf) {
    let path = temp_file(tag, "decisions.jsonl");
    let s = stack(
        &format!("  decision_log: '{}'", path.display()),
        DEFAULT_UPSTREAM,
    )
    .await;
    (s, path)
}

/// A gateway serving `config` (YAML) on an ephemeral loopback port.
pub async fn gateway(config: &str) -> Gateway {
    let policy = Policy::compile(parse_config(config).unwrap()).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    Gateway::start(listener, Runtime::new(policy).unwrap()).unwrap()
}

/// The sum of the Prometheus samples of `name` at `base`/metrics that carry every
/// one of `labels` (0 when there is none).
pub async fn metric_sum(base: &str, name: &str, labels: &[(&str, &str)]) -> f64 {
    let text = reqwest::get(format!("{base}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let labels: Vec<String> = labels.iter().map(|(k, v)| format!("{k}=\"{v}\"")).collect();
    text.lines()
        .filter(|l| l.starts_with(&format!("{name}{{")) || l.starts_with(&format!("{name} ")))
        .filter(|l| labels.iter().all(|label| l.contains(label.as_str())))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// The value of a Prometheus sample whose line starts with `name` at `base`/metrics.
pub async fn metric(base: &str, name: &str) -> f64 {
    let text = reqwest::get(format!("{base}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    text.lines()
        .find(|l| l.starts_with(name))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no {name} in {text}"))
}

impl Stack {
    pub async fn post(&self, path: &str, body: serde_json::Value) -> reqwest::Response {
        self.client
            .post(format!("{}{path}", self.gateway.url()))
            .json(&body)
            .send()
            .await
            .unwrap()
    }

    /// A pool as `GET /v1/pools` shows it.
    pub async fn pool(&self, name: &str) -> serde_json::Value {
        let pools: serde_json::Value = self
            .client
            .get(format!("{}/v1/pools", self.gateway.url()))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        pools["pools"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["name"] == name)
            .unwrap_or_else(|| panic!("no pool {name} in {pools}"))
            .clone()
    }

    pub async fn chat(&self, model: &str, prompt: &str, stream: bool) -> reqwest::Response {
        self.post(
            "/v1/chat/completions",
            serde_json::json!({"model": model, "stream": stream, "max_tokens": 20,
                               "messages": [{"role": "user", "content": prompt}]}),
        )
        .await
    }
}

/// `GET url`.
pub async fn get(url: &str) -> reqwest::Response {
    reqwest::get(url).await.unwrap()
}

/// `POST url` with `body` as JSON.
pub async fn post_json(url: &str, body: &Value) -> reqwest::Response {
    reqwest::Client::new()
        .post(url)
        .json(body)
        .send()
        .await
        .unwrap()
}

pub fn header(response: &reqwest::Response, name: &str) -> String {
    response
        .headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned()
}

/// Runs an SDK script from `tests/sdk/` against `base` with the Python that has the
/// SDK (`SWITCHYARD_PYTHON`) and returns what it printed as JSON. `None` (skipped)
/// without that Python, unless `SWITCHYARD_REQUIRE_SDK` is set, which fails instead.
pub async fn sdk_script(script: &str, base: String) -> Option<serde_json::Value> {
    let Ok(python) = std::env::var("SWITCHYARD_PYTHON") else {
        assert!(
            std::env::var("SWITCHYARD_REQUIRE_SDK").is_err(),
            "SWITCHYARD_REQUIRE_SDK is set but SWITCHYARD_PYTHON is not"
        );
        eprintln!(
            "skipped: set SWITCHYARD_PYTHON to a Python with `openai` (scripts/test.sh does)"
        );
        return None;
    };
    let script = format!("{}/tests/sdk/{script}", env!("CARGO_MANIFEST_DIR"));
    let output = tokio::task::spawn_blocking(move || {
        std::process::Command::new(python)
            .arg(script)
            .arg(base)
            .output()
    })
    .await
    .unwrap()
    .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "the SDK script failed: {stderr}");
    Some(serde_json::from_slice(&output.stdout).unwrap())
}

/// `POST /v1/route` at `base` for one user prompt asked of `model`: the trace.
pub async fn route_trace(base: &str, model: &str, prompt: &str) -> serde_json::Value {
    reqwest::Client::new()
        .post(format!("{base}/v1/route"))
        .json(
            &serde_json::json!({"model": model, "messages": [{"role": "user", "content": prompt}]}),
        )
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

/// The ids `GET /v1/models` at `base` lists.
pub async fn model_ids(base: &str) -> Vec<String> {
    let models: serde_json::Value = reqwest::get(format!("{base}/v1/models"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    models["data"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|m| m["id"].as_str().map(str::to_owned))
        .collect()
}

/// An upstream that answers "You said: " and the last user message, streamed in
/// pieces of `PIECE` bytes, and records every request body. A message holding
/// `[fail]` gets a 500; one holding `[length]` ends with `finish_reason: length`.
pub async fn echo() -> (String, Arc<Mutex<Vec<Value>>>) {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let state = Arc::clone(&seen);
    let app = axum::Router::new().route(
        "/v1/chat/completions",
        axum::routing::post(move |body: Bytes| {
            let seen = Arc::clone(&state);
            async move {
                let request: Value = serde_json::from_slice(&body).unwrap();
                seen.lock().unwrap().push(request.clone());
                echo_answer(&request)
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (url, seen)
}

/// An upstream whose whole answers say `answer(request)`, each with usage of 1,000
/// prompt and 100 completion tokens. Returns its base URL.
pub async fn scripted(answer: fn(&Value) -> String) -> String {
    let app = axum::Router::new().route(
        "/v1/chat/completions",
        axum::routing::post(move |body: Bytes| async move {
            let request: Value = serde_json::from_slice(&body).unwrap();
            let text = answer(&request);
            axum::Json(json!({
                "id": "x", "object": "chat.completion", "model": request["model"],
                "choices": [{"index": 0, "message": {"role": "assistant", "content": text},
                             "finish_reason": "stop"}],
                "usage": {"prompt_tokens": 1000, "completion_tokens": 100, "total_tokens": 1100},
            }))
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    url
}

pub const PIECE: usize = 4;

fn echo_answer(request: &Value) -> Response {
    let said = request["messages"]
        .as_array()
        .unwrap()
        .iter()
        .rev()
        .find(|m| m["role"] == "user")
        .and_then(|m| m["content"].as_str())
        .unwrap_or_default();
    let text = format!("You said: {said}");
    if said.contains("[fail]") {
        return (
            axum::http::StatusCode::INTERNAL_SERVER_ERROR,
            "engine fault",
        )
            .into_response();
    }
    let finish = if said.contains("[length]") {
        "length"
    } else {
        "stop"
    };
    if request["stream"] != true {
        return axum::Json(json!({
            "id": "x", "object": "chat.completion", "model": request["model"],
            "choices": [{"index": 0, "message": {"role": "assistant", "content": text},
                         "finish_reason": finish}],
            "usage": {"prompt_tokens": 5, "completion_tokens": 3, "total_tokens": 8},
        }))
        .into_response();
    }
    let chars: Vec<char> = text.chars().collect();
    let mut events: Vec<String> = chars
        .chunks(PIECE)
        .map(|piece| {
            let piece: String = piece.iter().collect();
            format!(
                "data: {}\n\n",
                json!({"id": "x", "object": "chat.completion.chunk", "model": request["model"],
                       "choices": [{"index": 0, "delta": {"content": piece}, "finish_reason": null}]})
            )
        })
        .collect();
    events.push(format!(
        "data: {}\n\n",
        json!({"id": "x", "object": "chat.completion.chunk", "model": request["model"],
               "choices": [{"index": 0, "delta": {}, "finish_reason": finish}]})
    ));
    if request["stream_options"]["include_usage"] == true {
        events.push(format!(
            "data: {}\n\n",
            json!({"id": "x", "object": "chat.completion.chunk", "model": request["model"], "choices": [],
                   "usage": {"prompt_tokens": 5, "completion_tokens": 3, "total_tokens": 8}})
        ));
    }
    events.push("data: [DONE]\n\n".to_owned());
    let stream = futures_util::stream::iter(events.into_iter().map(Ok::<_, std::io::Error>));
    Response::builder()
        .header("content-type", "text/event-stream")
        .body(Body::from_stream(stream))
        .unwrap()
}

/// The text of a streamed answer's events, joined.
pub fn streamed_content(body: &str) -> String {
    body.split("\n\n")
        .filter_map(|e| e.strip_prefix("data: "))
        .filter_map(|e| serde_json::from_str::<Value>(e).ok())
        .filter_map(|v| {
            v["choices"][0]["delta"]["content"]
                .as_str()
                .map(str::to_owned)
        })
        .collect()
}
