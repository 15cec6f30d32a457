//! Plugins end to end: each built-in plugin through the gateway against an upstream
//! that records what it receives, each hook with plugin types of the test's own
//! (stream rewrite, hold-back, ending a stream, panics, `on_error`, observe), order,
//! and refused requests in the decision log.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::print_stderr
)]

mod harness;

use axum::body::{Body, Bytes};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};
use std::sync::{Arc, Mutex};
use switchyard_gateway::{Gateway, Phase, Runtime};
use switchyard_policy::{Policy, parse_config};
use switchyard_router::plugins::{
    Build, ChunkFlow, Context, Hooks, Observation, Plugin, PluginError, RequestInfo, State,
};

/// What the recording upstream received: bodies and headers, in order.
#[derive(Default)]
struct Seen {
    requests: Mutex<Vec<(Value, HeaderMap)>>,
}

impl Seen {
    fn last(&self) -> (Value, HeaderMap) {
        self.requests.lock().unwrap().last().cloned().unwrap()
    }
    fn count(&self) -> usize {
        self.requests.lock().unwrap().len()
    }
}

/// An OpenAI-compatible upstream that records requests. Streams send "Hello",
/// " world", "!" (and usage when asked); a prompt containing `break` is cut after the
/// first piece.
async fn upstream() -> (String, Arc<Seen>) {
    let seen = Arc::new(Seen::default());
    let state = Arc::clone(&seen);
    let app = axum::Router::new().route(
        "/v1/chat/completions",
        axum::routing::post(move |headers: HeaderMap, body: Bytes| {
            let seen = Arc::clone(&state);
            async move {
                let value: Value = serde_json::from_slice(&body).unwrap();
                seen.requests.lock().unwrap().push((value.clone(), headers));
                answer(&value)
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (url, seen)
}

fn answer(request: &Value) -> Response {
    let model = request["model"].clone();
    if request["stream"] != true {
        return axum::Json(json!({
            "id": "x", "object": "chat.completion", "model": model,
            "choices": [{"index": 0, "message": {"role": "assistant", "content": "Hello world!"},
                         "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 5, "completion_tokens": 3, "total_tokens": 8},
        }))
        .into_response();
    }
    let chunk = |text: &str| {
        format!(
            "data: {}\n\n",
            json!({"id": "x", "object": "chat.completion.chunk", "model": model,
                   "choices": [{"index": 0, "delta": {"content": text}, "finish_reason": null}]})
        )
    };
    let cut = request.to_string().contains("break");
    let mut events = vec![chunk("Hello")];
    if !cut {
        events.push(chunk(" world"));
        events.push(chunk("!"));
        if request["stream_options"]["include_usage"] == true {
            let usage = json!({"id": "x", "object": "chat.completion.chunk", "model": model, "choices": [],
                               "usage": {"prompt_tokens": 5, "completion_tokens": 3, "total_tokens": 8}});
            events.push(format!("data: {usage}\n\n"));
        }
        events.push("data: [DONE]\n\n".to_owned());
    }
    let stream = futures_util::stream::iter(events.into_iter().map(Ok::<_, std::io::Error>));
    Response::builder()
        .header("content-type", "text/event-stream")
        .body(Body::from_stream(stream))
        .unwrap()
}

/// Upper-cases every streamed content piece (a stream rewrite).
#[derive(Debug)]
struct Shout;

impl Plugin for Shout {
    fn hooks(&self) -> Hooks {
        Hooks {
            stream: true,
            response: true,
            ..Hooks::default()
        }
    }
    fn on_response_chunk(
        &self,
        _: &RequestInfo<'_>,
        event: String,
        out: &mut Vec<String>,
        _: &mut State,
    ) -> Result<ChunkFlow, PluginError> {
        let mut value: Value =
            serde_json::from_str(&event).map_err(|e| PluginError::new(e.to_string()))?;
        if let Some(text) = value["choices"][0]["delta"]["content"].as_str() {
            value["choices"][0]["delta"]["content"] = json!(text.to_uppercase());
        }
        out.push(value.to_string());
        Ok(ChunkFlow::Continue)
    }
    fn on_response(
        &self,
        _: &RequestInfo<'_>,
        body: &mut Value,
        _: &mut State,
    ) -> Result<switchyard_router::plugins::Flow, PluginError> {
        if let Some(text) = body["choices"][0]["message"]["content"].as_str() {
            body["choices"][0]["message"]["content"] = json!(text.to_uppercase());
        }
        Ok(switchyard_router::plugins::Flow::Continue)
    }
}

/// Holds every event back and releases them, joined into one, at the end.
#[derive(Debug)]
struct Hold;

impl Plugin for Hold {
    fn hooks(&self) -> Hooks {
        Hooks {
            stream: true,
            ..Hooks::default()
        }
    }
    fn on_response_chunk(
        &self,
        _: &RequestInfo<'_>,
        event: String,
        _out: &mut Vec<String>,
        state: &mut State,
    ) -> Result<ChunkFlow, PluginError> {
        let held = state.get_or_insert_with(|| Box::new(Vec::<String>::new()));
        held.downcast_mut::<Vec<String>>().unwrap().push(event);
        Ok(ChunkFlow::Continue)
    }
    fn on_stream_end(
        &self,
        _: &RequestInfo<'_>,
        complete: bool,
        out: &mut Vec<String>,
        state: &mut State,
    ) -> Result<(), PluginError> {
        if complete && let Some(held) = state.take() {
            out.extend(*held.downcast::<Vec<String>>().unwrap());
        }
        Ok(())
    }
}

/// Ends a stream after its first event.
#[derive(Debug)]
struct Cutoff;

impl Plugin for Cutoff {
    fn hooks(&self) -> Hooks {
        Hooks {
            stream: true,
            ..Hooks::default()
        }
    }
    fn on_response_chunk(
        &self,
        _: &RequestInfo<'_>,
        event: String,
        out: &mut Vec<String>,
        _: &mut State,
    ) -> Result<ChunkFlow, PluginError> {
        out.push(event);
        Ok(ChunkFlow::End("that is enough".to_owned()))
    }
}

/// Panics in its request hook.
#[derive(Debug)]
struct Boom;

impl Plugin for Boom {
    fn on_request(
        &self,
        _: &RequestInfo<'_>,
        _: &mut switchyard_router::plugins::UpstreamRequest<'_>,
        _: &mut State,
    ) -> Result<switchyard_router::plugins::Flow, PluginError> {
        panic!("boom goes the plugin")
    }
}

/// Fails in its request hook.
#[derive(Debug)]
struct Flaky;

impl Plugin for Flaky {
    fn on_request(
        &self,
        _: &RequestInfo<'_>,
        _: &mut switchyard_router::plugins::UpstreamRequest<'_>,
        _: &mut State,
    ) -> Result<switchyard_router::plugins::Flow, PluginError> {
        Err(PluginError::new("the flaky plugin failed"))
    }
}

/// The ids of requests observed, with the phase that answered each (shared by the
/// tests of this file: each looks for its own requests' ids).
static OBSERVED: Mutex<Vec<(String, String)>> = Mutex::new(Vec::new());

fn observed_phase(request_id: &str) -> Option<String> {
    OBSERVED
        .lock()
        .unwrap()
        .iter()
        .find(|(id, _)| id == request_id)
        .map(|(_, phase)| phase.clone())
}

/// Records each observed request's id and the phase that answered it.
#[derive(Debug)]
struct Count;

impl Plugin for Count {
    fn hooks(&self) -> Hooks {
        Hooks {
            observe: true,
            ..Hooks::default()
        }
    }
    fn on_observe(&self, info: &RequestInfo<'_>, outcome: &Observation<'_>, _: &mut State) {
        OBSERVED
            .lock()
            .unwrap()
            .push((info.request_id.to_owned(), outcome.phase.to_owned()));
    }
}

const TYPES: &[(&str, Build)] = &[
    ("shout", |_: &Map<String, Value>, _: &Context<'_>| {
        Ok(Box::new(Shout))
    }),
    ("hold", |_: &Map<String, Value>, _: &Context<'_>| {
        Ok(Box::new(Hold))
    }),
    ("cutoff", |_: &Map<String, Value>, _: &Context<'_>| {
        Ok(Box::new(Cutoff))
    }),
    ("boom", |_: &Map<String, Value>, _: &Context<'_>| {
        Ok(Box::new(Boom))
    }),
    ("flaky", |_: &Map<String, Value>, _: &Context<'_>| {
        Ok(Box::new(Flaky))
    }),
    ("count", |_: &Map<String, Value>, _: &Context<'_>| {
        Ok(Box::new(Count))
    }),
];

/// Routes by keyword to plugin chains; `extra` is appended (more plugins).
async fn gateway(url: &str, log: &std::path::Path) -> Gateway {
    let config = format!(
        "server: {{listen: '127.0.0.1:0', decision_log: '{log}'}}
models:
  - {{name: thinker, upstream_name: qwen3-32b, family: qwen3, tags: [cloud]}}
  - {{name: plain}}
pools:
  - {{name: p1, model: thinker, context_window: 8K, tags: [cloud], endpoints: [{{url: '{url}'}}]}}
  - {{name: p2, model: plain, context_window: 8K, endpoints: [{{url: '{url}'}}]}}
signals:
  keyword:
    - {{name: think, keywords: [think]}}
    - {{name: down, keywords: [maintenance]}}
    - {{name: shout, keywords: [shout]}}
    - {{name: hold, keywords: [hold]}}
    - {{name: cutoff, keywords: [cutoff]}}
    - {{name: boom, keywords: [boom]}}
    - {{name: flaky, keywords: [flaky]}}
    - {{name: secret, keywords: [secret]}}
plugins:
  - {{name: caps, type: params, global: true, max_tokens: 64, drop_unknown: true, temperature: {{max: 1.0}}}}
  - {{name: counter, type: count, global: true}}
  - {{name: house, type: system_prompt, text: 'You answer on route {{{{route}}}} as {{{{model}}}}.'}}
  - {{name: tag, type: headers, request: {{set: {{x-team: research}}}}, response: {{set: {{x-served-by: switchyard}}}}}}
  - {{name: no_thinking, type: reasoning, enabled: false}}
  - {{name: closed, type: local_answer, status: 503, code: maintenance, message: 'route {{{{route}}}} is closed'}}
  - {{name: canned, type: local_answer, status: 200, message: 'We are down for maintenance.'}}
  - {{name: shout, type: shout}}
  - {{name: hold, type: hold}}
  - {{name: cutoff, type: cutoff}}
  - {{name: boom, type: boom}}
  - {{name: flaky_fail, type: flaky}}
  - {{name: flaky_skip, type: flaky, on_error: skip}}
routes:
  - {{name: think, priority: 9, when: {{keyword: think}}, models: [thinker], plugins: [house, tag, no_thinking]}}
  - {{name: down, priority: 8, when: {{keyword: down}}, models: [plain], plugins: [closed]}}
  - {{name: canned, priority: 10, when: {{all: [{{keyword: down}}, {{keyword: shout}}]}}, models: [plain], plugins: [canned]}}
  - {{name: shout, priority: 6, when: {{keyword: shout}}, models: [plain], plugins: [shout]}}
  - {{name: hold, priority: 5, when: {{keyword: hold}}, models: [plain], plugins: [hold, shout]}}
  - {{name: cutoff, priority: 4, when: {{keyword: cutoff}}, models: [plain], plugins: [cutoff]}}
  - {{name: boom, priority: 3, when: {{keyword: boom}}, models: [plain], plugins: [boom]}}
  - {{name: flaky, priority: 2, when: {{keyword: flaky}}, models: [plain], plugins: [flaky_skip, house, flaky_fail]}}
default_route: {{models: [plain]}}
constraints:
  - {{name: secrets_on_cloud_only, when: {{keyword: secret}}, models: {{tags: [cloud]}}}}
",
        log = log.display()
    );
    let policy = Policy::compile(parse_config(&config).unwrap()).unwrap();
    let runtime = Runtime::with_plugin_types(policy, TYPES).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    Gateway::start(listener, runtime).unwrap()
}

async fn post(g: &Gateway, path: &str, body: Value) -> reqwest::Response {
    reqwest::Client::new()
        .post(format!("{}{path}", g.url()))
        .json(&body)
        .send()
        .await
        .unwrap()
}

fn chat(prompt: &str, stream: bool) -> Value {
    json!({"model": "auto", "stream": stream, "max_tokens": 500, "temperature": 1.8,
           "vendor_knob": 1, "messages": [{"role": "system", "content": "be brief"},
                                          {"role": "user", "content": prompt}]})
}

/// The `data:` payloads of an SSE body.
fn events(text: &str) -> Vec<String> {
    text.split("\n\n")
        .filter_map(|e| e.strip_prefix("data: "))
        .map(str::to_owned)
        .collect()
}

fn content(events: &[String]) -> String {
    events
        .iter()
        .filter_map(|e| serde_json::from_str::<Value>(e).ok())
        .filter_map(|v| {
            v["choices"][0]["delta"]["content"]
                .as_str()
                .map(str::to_owned)
        })
        .collect()
}

#[tokio::test]
async fn request_plugins_rewrite_what_goes_upstream_in_order() {
    let (url, seen) = upstream().await;
    let log = harness::temp_file("plugins-rewrite", "decisions.jsonl");
    let g = gateway(&url, &log).await;
    let r = post(&g, "/v1/chat/completions", chat("think about it", false)).await;
    assert_eq!(r.status(), 200);
    assert_eq!(
        harness::header(&r, "x-served-by"),
        "switchyard",
        "response header set"
    );
    assert_eq!(harness::header(&r, "x-switchyard-route"), "think");
    let (body, headers) = seen.last();
    assert_eq!(body["model"], "qwen3-32b");
    assert_eq!(
        body["messages"][0]["content"],
        "You answer on route think as thinker."
    );
    assert_eq!(
        body["messages"][1]["content"], "be brief",
        "inserted before the client's"
    );
    assert_eq!(body["max_tokens"], 64, "capped by the global params plugin");
    assert_eq!(body["temperature"], 1.0, "clamped");
    assert!(body.get("vendor_knob").is_none(), "unknown fields dropped");
    assert_eq!(
        body["chat_template_kwargs"]["enable_thinking"], false,
        "the qwen3 switch"
    );
    assert_eq!(headers.get("x-team").unwrap(), "research");

    // The dry run shows the chain in order: global plugins first, then the route's,
    // and the phases in order.
    let text = post(&g, "/v1/route", chat("think about it", false))
        .await
        .text()
        .await
        .unwrap();
    let trace: Value = serde_json::from_str(&text).unwrap();
    let chain: Vec<&str> = trace["plugins"]["chain"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        chain,
        ["caps", "counter", "house", "tag", "no_thinking"],
        "{trace}"
    );
    assert_eq!(
        trace["plugins"]["upstream"]["headers"]["x-team"],
        "research"
    );
    // Every phase up to plugins; forward and observe do not run in a dry run.
    let at: Vec<usize> = Phase::ALL
        .iter()
        .filter(|p| !matches!(p, Phase::Forward | Phase::Observe))
        .map(|phase| {
            text.find(&format!("\"{}\":{{", phase.name()))
                .unwrap_or_else(|| panic!("{}: {text}", phase.name()))
        })
        .collect();
    assert_eq!(at.len(), 7);
    assert!(
        at.windows(2).all(|w| w[0] < w[1]),
        "one entry per phase, in order: {text}"
    );
    assert_eq!(seen.count(), 1, "a dry run forwards nothing");

    // A route without plugins gets only the global ones.
    let r = post(&g, "/v1/chat/completions", chat("hello", false)).await;
    assert_eq!(r.status(), 200);
    assert_eq!(harness::header(&r, "x-served-by"), "");
    let (body, headers) = seen.last();
    assert_eq!(body["messages"][0]["content"], "be brief");
    assert_eq!(body["max_tokens"], 64);
    assert!(headers.get("x-team").is_none());
}

#[tokio::test]
async fn local_answers_skip_the_upstream_and_are_observed() {
    let (url, seen) = upstream().await;
    let log = harness::temp_file("plugins-local", "decisions.jsonl");
    let g = gateway(&url, &log).await;
    let mut ids = Vec::new();
    let r = post(
        &g,
        "/v1/chat/completions",
        chat("maintenance window?", false),
    )
    .await;
    assert_eq!(r.status(), 503);
    ids.push(harness::header(&r, "x-request-id"));
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"]["code"], "maintenance");
    assert_eq!(body["error"]["message"], "route down is closed");

    // A 200 local answer, streamed: a chat completion stream ending in [DONE].
    let r = post(&g, "/v1/chat/completions", chat("maintenance? shout", true)).await;
    assert_eq!(r.status(), 200);
    assert_eq!(harness::header(&r, "content-type"), "text/event-stream");
    ids.push(harness::header(&r, "x-request-id"));
    let got = events(&r.text().await.unwrap());
    assert_eq!(got.last().unwrap(), "[DONE]");
    assert_eq!(content(&got), "We are down for maintenance.");
    let r = post(
        &g,
        "/v1/chat/completions",
        chat("maintenance? shout", false),
    )
    .await;
    ids.push(harness::header(&r, "x-request-id"));
    let body: Value = r.json().await.unwrap();
    assert_eq!(
        body["choices"][0]["message"]["content"],
        "We are down for maintenance."
    );
    assert_eq!(seen.count(), 0, "nothing was forwarded");
    for id in &ids {
        assert_eq!(
            observed_phase(id).as_deref(),
            Some("plugins"),
            "the observe hook saw local answer {id}"
        );
    }

    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let lines: Vec<Value> = std::fs::read_to_string(&log)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 3);
    assert!(
        lines
            .iter()
            .all(|l| l["phase"] == "plugins" && l["outcome"] == "local_answer")
    );
}

#[tokio::test]
async fn stream_hooks_rewrite_hold_back_and_end_streams() {
    let (url, _seen) = upstream().await;
    let log = harness::temp_file("plugins-stream", "decisions.jsonl");
    let g = gateway(&url, &log).await;
    // Rewrite, streamed and whole.
    let r = post(&g, "/v1/chat/completions", chat("shout please", true)).await;
    let got = events(&r.text().await.unwrap());
    assert_eq!(content(&got), "HELLO WORLD!");
    assert_eq!(got.last().unwrap(), "[DONE]");
    assert!(
        !got.iter().any(|e| e.contains("\"usage\"")),
        "the usage chunk the client did not ask for stays hidden"
    );
    let body: Value = post(&g, "/v1/chat/completions", chat("shout please", false))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(body["choices"][0]["message"]["content"], "HELLO WORLD!");

    // Held back until the end, then released through the next plugin.
    let r = post(&g, "/v1/chat/completions", chat("hold on", true)).await;
    let got = events(&r.text().await.unwrap());
    assert_eq!(content(&got), "HELLO WORLD!");
    assert_eq!(got.last().unwrap(), "[DONE]");

    // Held back, and the upstream breaks: the stream still ends with a terminal error.
    let r = post(&g, "/v1/chat/completions", chat("hold on, break", true)).await;
    let got = events(&r.text().await.unwrap());
    let last: Value = serde_json::from_str(got.last().unwrap()).unwrap();
    assert_eq!(last["error"]["type"], "upstream_error", "{got:?}");
    assert_eq!(
        content(&got),
        "",
        "what was held back is not released on failure"
    );

    // A plugin ends the stream with a terminal error event.
    let r = post(&g, "/v1/chat/completions", chat("cutoff now", true)).await;
    let got = events(&r.text().await.unwrap());
    assert_eq!(content(&got), "Hello");
    let last: Value = serde_json::from_str(got.last().unwrap()).unwrap();
    assert!(
        last["error"]["message"]
            .as_str()
            .unwrap()
            .contains("plugin `cutoff` ended the stream: that is enough"),
        "{last}"
    );
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let log = std::fs::read_to_string(&log).unwrap();
    assert!(log.contains("\"outcome\":\"plugin_ended\""), "{log}");
}

#[tokio::test]
async fn failing_plugins_follow_their_on_error_rule_and_panics_are_contained() {
    let (url, seen) = upstream().await;
    let log = harness::temp_file("plugins-fail", "decisions.jsonl");
    let g = gateway(&url, &log).await;
    let r = post(&g, "/v1/chat/completions", chat("boom", false)).await;
    assert_eq!(r.status(), 500);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"]["code"], "plugin_failed");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("plugin `boom`") && message.contains("boom goes the plugin"),
        "{message}"
    );
    // The next request is served.
    let r = post(&g, "/v1/chat/completions", chat("hello again", false)).await;
    assert_eq!(r.status(), 200);

    // `skip` goes on (the next plugin still runs); `fail` fails the request.
    let count = seen.count();
    let r = post(&g, "/v1/chat/completions", chat("flaky", false)).await;
    assert_eq!(r.status(), 500);
    assert!(r.text().await.unwrap().contains("plugin `flaky_fail`"));
    assert_eq!(seen.count(), count, "a failed request is not forwarded");
    let trace: Value = post(&g, "/v1/route", chat("flaky", false))
        .await
        .json()
        .await
        .unwrap();
    let chain = trace["plugins"]["chain"].as_array().unwrap();
    assert!(
        chain[2]["result"].as_str().unwrap().starts_with("skipped"),
        "{trace}"
    );
    assert_eq!(chain[3]["result"], "continue");
    assert!(chain[4]["result"].as_str().unwrap().starts_with("failed"));
    assert_eq!(trace["error"]["phase"], "plugins");
}

#[tokio::test]
async fn refused_requests_reach_the_decision_log_with_their_phase() {
    let (url, _seen) = upstream().await;
    let log = harness::temp_file("plugins-refused", "decisions.jsonl");
    let g = gateway(&url, &log).await;
    let r = post(&g, "/v1/chat/completions", chat("my secret plan", false)).await;
    assert_eq!(r.status(), 403);
    let r = post(
        &g,
        "/v1/chat/completions",
        json!({"model": "nope", "messages": [{"role": "user", "content": "x"}]}),
    )
    .await;
    assert_eq!(r.status(), 404);
    let r = reqwest::Client::new()
        .post(format!("{}/v1/chat/completions", g.url()))
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    assert!(!harness::header(&r, "x-request-id").is_empty());
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let lines: Vec<Value> = std::fs::read_to_string(&log)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let seen: Vec<(&str, u64, &str)> = lines
        .iter()
        .map(|l| {
            (
                l["phase"].as_str().unwrap(),
                l["status"].as_u64().unwrap(),
                l["outcome"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        seen,
        [
            ("govern", 403, "policy_denied"),
            ("decide", 404, "model_not_found"),
            ("ingress", 400, "invalid_request")
        ]
    );
    assert!(
        lines[0]["error"]
            .as_str()
            .unwrap()
            .contains("secrets_on_cloud_only")
    );
}

#[tokio::test]
async fn the_openai_sdk_sees_plugin_answers_and_rewritten_streams() {
    let (url, _seen) = upstream().await;
    let log = harness::temp_file("plugins-sdk", "decisions.jsonl");
    let g = gateway(&url, &log).await;
    let Some(seen) = harness::sdk_script("openai_plugins.py", g.url()).await else {
        return;
    };
    assert_eq!(seen["shout"], "HELLO WORLD!", "{seen}");
    assert_eq!(seen["hold"], "HELLO WORLD!", "{seen}");
    assert_eq!(seen["canned"], "We are down for maintenance.", "{seen}");
    assert_eq!(
        seen["closed"],
        json!({"status": 503, "code": "maintenance"}),
        "{seen}"
    );
    assert_eq!(seen["cutoff_error"], "APIError", "{seen}");
}
