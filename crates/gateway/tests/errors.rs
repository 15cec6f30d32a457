//! Bad input gets a clear 4xx; a failing, stalling or cut upstream gets a clean error;
//! the gateway keeps serving.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::print_stderr
)]

mod harness;

use harness::{DEFAULT_UPSTREAM, Stack, header, stack};
use serde_json::{Value, json};
use switchyard_engine::{EngineHandle, Faults};

async fn raw(s: &Stack, content_type: &str, body: impl Into<reqwest::Body>) -> (u16, Value) {
    let r = s
        .client
        .post(format!("{}/v1/chat/completions", s.gateway.url()))
        .header("content-type", content_type)
        .body(body)
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap())
}

#[tokio::test]
async fn malformed_requests_get_json_errors_naming_the_problem() {
    let s = stack("  max_body_bytes: 4096", DEFAULT_UPSTREAM).await;
    let (status, body) = raw(&s, "application/json", "{\"model\": \"auto\", ").await;
    assert_eq!(status, 400);
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("malformed JSON"),
        "{body}"
    );

    let (status, body) = raw(&s, "application/json", r#"{"model":"auto"}"#).await;
    assert_eq!(status, 400);
    assert_eq!(body["error"]["param"], "messages");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("messages")
    );

    let (status, body) = raw(
        &s,
        "application/json",
        r#"{"model":"codr","messages":[{"role":"user","content":"x"}]}"#,
    )
    .await;
    assert_eq!(status, 404);
    assert_eq!(body["error"]["code"], "model_not_found");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("did you mean `coder`?"),
        "{body}"
    );

    let big = json!({"model":"auto","messages":[{"role":"user","content":"x".repeat(10_000)}]});
    let (status, body) = raw(&s, "application/json", big.to_string()).await;
    assert_eq!(status, 413);
    assert_eq!(body["error"]["code"], "payload_too_large");
    assert!(body["error"]["message"].as_str().unwrap().contains("4096"));

    let (status, body) = raw(&s, "text/plain", r#"{"model":"auto","messages":[]}"#).await;
    assert_eq!(status, 415);
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("text/plain")
    );

    let r = s
        .client
        .get(format!("{}/v1/chat/completions", s.gateway.url()))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 405);
    let r = s
        .client
        .get(format!("{}/nope", s.gateway.url()))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    assert!(
        r.json::<Value>().await.unwrap()["error"]["message"]
            .as_str()
            .unwrap()
            .contains("/nope")
    );

    // Nothing above reached an engine, and the gateway still serves.
    assert_eq!(
        s.coder.requests() + s.chat_short.requests() + s.chat_long.requests(),
        0
    );
    assert_eq!(s.chat("auto", "hello", false).await.status(), 200);
}

#[tokio::test]
async fn a_request_too_long_for_every_pool_is_refused_before_forwarding() {
    let s = stack("", DEFAULT_UPSTREAM).await;
    let huge = "word ".repeat(70_000);
    let r = s.chat("auto", &huge, false).await;
    assert_eq!(r.status(), 400);
    let body: Value = r.json().await.unwrap();
    assert!(
        body["error"]["message"].as_str().unwrap().contains("65536"),
        "{body}"
    );
    assert_eq!(s.chat_long.requests(), 0);
}

#[tokio::test]
async fn an_upstream_error_becomes_a_502_and_the_gateway_keeps_serving() {
    let s = stack("", DEFAULT_UPSTREAM).await;
    s.coder.set_faults(Faults {
        error_rate: 1.0,
        ..Faults::default()
    });
    for stream in [false, true] {
        let r = s.chat("auto", "compile my rust", stream).await;
        assert_eq!(r.status(), 502);
        assert_eq!(header(&r, "x-switchyard-endpoint"), "coder-pool-0");
        let body: Value = r.json().await.unwrap();
        assert_eq!(body["error"]["code"], "upstream_error");
        assert!(
            body["error"]["message"].as_str().unwrap().contains("500"),
            "{body}"
        );
    }
    assert_eq!(s.chat("auto", "hello", false).await.status(), 200);
    s.coder.set_faults(Faults::default());
    assert_eq!(s.chat("auto", "compile my rust", false).await.status(), 200);
}

#[tokio::test]
async fn an_unreachable_endpoint_is_a_clean_502() {
    let s = stack("", DEFAULT_UPSTREAM).await;
    // Point a request at a model whose engine is gone: bind and drop a port.
    let dead = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let dead_url = format!("http://{}", dead.local_addr().unwrap());
    drop(dead);
    // Checks off: the request itself finds the endpoint dead (with checks on, a probe may
    // get there first and the answer is a 503 naming the ejection instead).
    let config = format!(
        "health: {{check_interval_ms: 0}}\nmodels: [{{name: m}}]\npools: [{{name: p, model: m, context_window: 8K, endpoints: [{{url: '{dead_url}'}}]}}]\ndefault_route: {{models: [m]}}\n"
    );
    let gateway = harness::gateway(&config).await;
    let r = s
        .client
        .post(format!("{}/v1/chat/completions", gateway.url()))
        .json(&json!({"model":"auto","messages":[{"role":"user","content":"hi"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 502);
    let body: Value = r.json().await.unwrap();
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("request to endpoint `p-0` failed"),
        "{body}"
    );
}

async fn stream_text(s: &Stack, prompt: &str) -> (u16, String) {
    let mut r = s.chat("auto", prompt, true).await;
    let status = r.status().as_u16();
    let mut text = Vec::new();
    while let Ok(Some(chunk)) = r.chunk().await {
        text.extend_from_slice(&chunk);
    }
    (status, String::from_utf8_lossy(&text).into_owned())
}

fn last_event(text: &str) -> Value {
    let last = text.trim_end().rsplit("\n\n").next().unwrap();
    serde_json::from_str(last.trim_start_matches("data: ")).unwrap()
}

#[tokio::test]
async fn a_stalled_upstream_ends_the_stream_with_an_error_event() {
    let s = stack("", "  idle_timeout_ms: 300\n  response_timeout_ms: 500").await;
    s.chat_short.set_faults(Faults {
        stall_after_tokens: Some(3),
        ..Faults::default()
    });
    let (status, text) = stream_text(&s, "hello").await;
    assert_eq!(status, 200);
    assert_eq!(text.matches("\"delta\"").count(), 3, "{text}");
    assert!(!text.contains("[DONE]"));
    let last = last_event(&text);
    assert!(
        last["error"]["message"]
            .as_str()
            .unwrap()
            .contains("stalled"),
        "{last}"
    );

    let r = s.chat("auto", "hello", false).await;
    assert_eq!(r.status(), 504);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"]["code"], "upstream_timeout");
    s.chat_short.set_faults(Faults::default());
    assert_eq!(s.chat("auto", "hello", false).await.status(), 200);
}

#[tokio::test]
async fn a_dropped_stream_is_never_a_silently_truncated_answer() {
    // One attempt only: a whole answer that breaks off is an error, not a failover.
    let s = stack("", "  idle_timeout_ms: 2000\n  max_attempts: 1").await;
    s.chat_short.set_faults(Faults {
        drop_after_tokens: Some(4),
        ..Faults::default()
    });
    let (status, text) = stream_text(&s, "hello").await;
    assert_eq!(status, 200);
    // The engine breaks the connection after 4 tokens; the last may die in its buffer.
    let deltas = text.matches("\"delta\"").count();
    assert!((1..=4).contains(&deltas), "{text}");
    assert!(!text.contains("[DONE]"));
    let last = last_event(&text);
    assert_eq!(last["error"]["type"], "upstream_error", "{last}");

    let r = s.chat("auto", "hello", false).await;
    assert_eq!(r.status(), 502);
    let body: Value = r.json().await.unwrap();
    let message = body["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("request to endpoint `chat-short-0` failed"),
        "{body}"
    );
    s.chat_short.set_faults(Faults::default());
    assert_eq!(s.chat("auto", "hello", true).await.status(), 200);
}

#[tokio::test]
async fn a_client_deadline_bounds_the_wait_for_a_stalled_upstream() {
    let s = stack("", DEFAULT_UPSTREAM).await;
    s.chat_short.set_faults(Faults {
        stall_after_tokens: Some(2),
        ..Faults::default()
    });
    let started = std::time::Instant::now();
    let r = s
        .client
        .post(format!("{}/v1/chat/completions", s.gateway.url()))
        .header("x-request-timeout-ms", "300")
        .json(&json!({"model": "auto", "max_tokens": 20,
                      "messages": [{"role": "user", "content": "hello"}]}))
        .send()
        .await
        .unwrap();
    let waited = started.elapsed();
    assert_eq!(r.status(), 504);
    assert!(
        waited >= std::time::Duration::from_millis(290),
        "{waited:?}"
    );
    assert!(
        waited < std::time::Duration::from_millis(1500),
        "the 2 s idle timeout was not needed: {waited:?}"
    );
}

#[tokio::test]
async fn a_client_deadline_never_counts_against_the_endpoint() {
    let s = stack("", DEFAULT_UPSTREAM).await;
    // A healthy but unhurried endpoint: 300 ms before it starts.
    s.chat_short.set_faults(Faults {
        added_latency_ms: 300,
        ..Faults::default()
    });
    // Clients with 20 ms deadlines, whole and streamed, many more than the three
    // failures that eject an endpoint.
    for i in 0..8 {
        let r = s
            .client
            .post(format!("{}/v1/chat/completions", s.gateway.url()))
            .header("x-request-timeout-ms", "20")
            .json(
                &json!({"model": "auto", "max_tokens": 5, "stream": i % 2 == 1,
                          "messages": [{"role": "user", "content": "hello"}]}),
            )
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 504);
        let body: Value = r.json().await.unwrap();
        let message = body["error"]["message"].as_str().unwrap();
        assert!(
            message.contains("own deadline (20 ms, x-request-timeout-ms)"),
            "the 504 names the client's deadline, not the endpoint's timeout: {message}"
        );
    }
    let short = s.pool("chat-short").await;
    let health = &short["endpoints"][0]["health"];
    assert_eq!(health["failures"], 0, "{health}");
    assert_eq!(health["available"], true, "{health}");
    // An honest client without a deadline is served by the same endpoint.
    let r = s.chat("auto", "hello", false).await;
    assert_eq!(r.status(), 200);
    assert_eq!(header(&r, "x-switchyard-endpoint"), "chat-short-0");
}

#[tokio::test]
async fn a_client_deadline_mid_stream_ends_it_without_blaming_the_endpoint() {
    let s = stack("", DEFAULT_UPSTREAM).await;
    s.chat_short.set_faults(Faults {
        stall_after_tokens: Some(2),
        ..Faults::default()
    });
    let r = s
        .client
        .post(format!("{}/v1/chat/completions", s.gateway.url()))
        .header("x-request-timeout-ms", "300")
        .json(&json!({"model": "auto", "max_tokens": 20, "stream": true,
                      "messages": [{"role": "user", "content": "hello"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let text = r.text().await.unwrap();
    let last = last_event(&text);
    assert_eq!(last["error"]["code"], "upstream_timeout", "{last}");
    assert!(
        last["error"]["message"]
            .as_str()
            .unwrap()
            .contains("own deadline (300 ms"),
        "{last}"
    );
    let short = s.pool("chat-short").await;
    assert_eq!(short["endpoints"][0]["health"]["failures"], 0, "{short}");
}

#[tokio::test]
async fn invalid_deadline_headers_are_refused_naming_the_header() {
    let s = stack("", DEFAULT_UPSTREAM).await;
    for bad in ["-1", "soon", "0", "18446744073709551615", "1.5", "86400001"] {
        let r = s
            .client
            .post(format!("{}/v1/chat/completions", s.gateway.url()))
            .header("x-request-timeout-ms", bad)
            .json(&json!({"model": "auto", "messages": [{"role": "user", "content": "hello"}]}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 400, "{bad}");
        let body: Value = r.json().await.unwrap();
        assert_eq!(body["error"]["param"], "x-request-timeout-ms", "{body}");
        assert!(
            body["error"]["message"].as_str().unwrap().contains(bad),
            "{body}"
        );
    }
    let r = s
        .client
        .post(format!("{}/v1/chat/completions", s.gateway.url()))
        .header("x-request-timeout-ms", " 5000 ")
        .json(&json!({"model": "auto", "messages": [{"role": "user", "content": "hello"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
}

/// A server that answers 200 with headers promising a body, sends a piece of it and
/// closes the connection: the work was done, the answer broke off.
async fn breaks_after_headers() -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buffer = vec![0u8; 65536];
                let _ = socket.read(&mut buffer).await;
                let _ = socket
                    .write_all(
                        b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 500\r\n\r\n{\"id\": \"x\", \"choices\": [",
                    )
                    .await;
                let _ = socket.shutdown().await;
            });
        }
    });
    url
}

/// A gateway whose smallest pool's only endpoint breaks off its answers after the
/// headers and whose larger pool's answers, with `retry_broken` on the default route;
/// and the healthy engine.
async fn broken_then_healthy(retry_broken: bool) -> (switchyard_gateway::Gateway, EngineHandle) {
    let broken = breaks_after_headers().await;
    let healthy = harness::engine(None, 65_536, "m").await;
    let config = format!(
        "server: {{listen: '127.0.0.1:0'}}
upstream: {{max_attempts: 3}}
health: {{check_interval_ms: 0}}
models: [{{name: m}}]
pools:
  - {{name: small, model: m, context_window: 4K, endpoints: [{{url: '{broken}'}}]}}
  - {{name: large, model: m, context_window: 64K, endpoints: [{{url: '{}'}}]}}
default_route: {{models: [m], retry_broken: {retry_broken}}}
",
        healthy.url()
    );
    (harness::gateway(&config).await, healthy)
}

/// A short whole chat for `model` to the gateway at `base`.
async fn hello(base: &str, model: &str) -> reqwest::Response {
    harness::post_json(
        &format!("{base}/v1/chat/completions"),
        &json!({"model": model, "max_tokens": 5,
                "messages": [{"role": "user", "content": "hello"}]}),
    )
    .await
}

#[tokio::test]
async fn a_whole_answer_that_breaks_after_its_headers_is_not_run_again_elsewhere() {
    let (g, healthy) = broken_then_healthy(false).await;
    for model in ["m", "auto"] {
        let r = hello(&g.url(), model).await;
        assert_eq!(r.status(), 502, "{model}");
        assert_eq!(header(&r, "x-switchyard-attempts"), "1", "not run twice");
        let body: Value = r.json().await.unwrap();
        assert!(
            body["error"]["message"]
                .as_str()
                .unwrap()
                .contains("broke off its answer after the headers"),
            "{body}"
        );
    }
    assert_eq!(
        healthy.requests(),
        0,
        "the work was not sent to another endpoint"
    );
}

#[tokio::test]
async fn a_route_that_opts_in_runs_a_broken_whole_answer_again_elsewhere() {
    let (g, healthy) = broken_then_healthy(true).await;
    let r = hello(&g.url(), "auto").await;
    assert_eq!(
        r.status(),
        200,
        "the route opted in: the next endpoint answers"
    );
    assert_eq!(header(&r, "x-switchyard-attempts"), "2");
    let body: Value = r.json().await.unwrap();
    assert!(
        body["choices"][0]["message"]["content"].is_string(),
        "{body}"
    );
    assert_eq!(healthy.requests(), 1);
    // A request naming the model takes no route, so nothing opted in: it is not run
    // twice (the broken endpoint is still in rotation after one failure).
    let r = hello(&g.url(), "m").await;
    assert_eq!(r.status(), 502);
    assert_eq!(header(&r, "x-switchyard-attempts"), "1");
    assert_eq!(healthy.requests(), 1);
}

#[tokio::test]
async fn credentials_in_endpoint_urls_are_never_shown() {
    // Port 9 on loopback refuses connections: every request fails with a connect error
    // whose text would carry the URL.
    let config = "server: {listen: '127.0.0.1:0'}
upstream: {max_attempts: 1}
health: {check_interval_ms: 0}
models: [{name: m}]
pools:
  - {name: p, model: m, context_window: 8K,
     endpoints: [{url: 'http://alice:hunter2@127.0.0.1:9/v1?key=sk-secret-query'}]}
default_route: {models: [m]}
";
    let g = harness::gateway(config).await;
    let client = reqwest::Client::new();
    let r = client
        .post(format!("{}/v1/chat/completions", g.url()))
        .json(&json!({"model": "m", "messages": [{"role": "user", "content": "hello"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 502);
    let error = r.text().await.unwrap();
    let pools = client
        .get(format!("{}/v1/pools", g.url()))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for shown in [&error, &pools] {
        assert!(
            !shown.contains("hunter2") && !shown.contains("alice") && !shown.contains("sk-secret"),
            "{shown}"
        );
    }
    assert!(pools.contains("http://***@127.0.0.1:9/v1?***"), "{pools}");
}

#[tokio::test]
async fn the_operators_endpoints_move_to_the_admin_listener() {
    let engine = harness::engine(None, 8192, "m").await;
    let config = format!(
        "server: {{listen: '127.0.0.1:0', admin_listen: '127.0.0.1:0'}}
models: [{{name: m}}]
pools:
  - {{name: p, model: m, context_window: 8K,
     endpoints: [{{url: 'http://alice:hunter2@{}/v1'}}]}}
default_route: {{models: [m]}}
",
        engine.addr
    );
    let g = harness::gateway(&config).await;
    let admin = format!("http://{}", g.admin_addr.expect("an admin address"));
    let serving = g.url();
    assert_ne!(admin, serving);
    let chat = json!({"model": "m", "messages": [{"role": "user", "content": "hello"}]});
    let get = |url: String| async move { harness::get(&url).await.status().as_u16() };
    let post = |url: String| {
        let chat = chat.clone();
        async move { harness::post_json(&url, &chat).await }
    };
    // Clients are served on the serving address; the operator's endpoints are not there.
    let r = post(format!("{serving}/v1/chat/completions")).await;
    assert_eq!(r.status(), 200);
    let r = post(format!("{serving}/v1/route")).await;
    assert_eq!(r.status(), 404, "/v1/route on the serving address");
    // Which address answers what: the operator's endpoints and the probes on the admin
    // address, the client API and the probes on the serving one.
    let statuses = [
        (&serving, "/v1/pools", 404),
        (&serving, "/metrics", 404),
        (&serving, "/v1/outcomes", 404),
        (&serving, "/healthz", 200),
        (&serving, "/readyz", 200),
        (&serving, "/v1/models", 200),
        (&admin, "/v1/outcomes", 200),
        (&admin, "/healthz", 200),
        (&admin, "/readyz", 200),
    ];
    for (base, path, status) in statuses {
        assert_eq!(
            get(format!("{base}{path}")).await,
            status,
            "{path} on {base}"
        );
    }
    // The admin address serves them, and no client API.
    let pools = harness::get(&format!("{admin}/v1/pools")).await;
    assert_eq!(pools.status(), 200);
    let pools = pools.text().await.unwrap();
    assert!(pools.contains("\"name\":\"p\""), "{pools}");
    assert!(!pools.contains("hunter2"), "{pools}");
    let metrics = harness::get(&format!("{admin}/metrics")).await;
    let metrics = metrics.text().await.unwrap();
    assert!(metrics.contains("switchyard_requests_total"), "{metrics}");
    let trace: Value = post(format!("{admin}/v1/route"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(trace["select"]["model"], "m", "{trace}");
    let r = post(format!("{admin}/v1/chat/completions")).await;
    assert_eq!(r.status(), 404, "chat on the admin address");
}

#[tokio::test]
async fn without_an_admin_listener_everything_stays_on_the_serving_address() {
    let g = harness::gateway(
        "server: {listen: '127.0.0.1:0'}
models: [{name: m}]
pools: [{name: p, model: m, context_window: 8K, endpoints: [{url: 'http://127.0.0.1:9/v1'}]}]
default_route: {models: [m]}
",
    )
    .await;
    assert!(g.admin_addr.is_none());
    for path in ["/v1/pools", "/metrics", "/v1/outcomes"] {
        let r = harness::get(&format!("{}{path}", g.url())).await;
        assert_eq!(r.status(), 200, "{path}");
    }
}

/// An upstream that answers every request with a one-word completion and keeps each
/// request's head (request line and headers), lowercased.
async fn recording_upstream() -> (String, std::sync::Arc<std::sync::Mutex<Vec<String>>>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap().to_string();
    let heads = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let seen = std::sync::Arc::clone(&heads);
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            let seen = std::sync::Arc::clone(&seen);
            tokio::spawn(async move {
                let mut buffer = vec![0u8; 65536];
                let mut read = 0;
                while !buffer[..read].windows(4).any(|w| w == b"\r\n\r\n") {
                    match socket.read(&mut buffer[read..]).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => read += n,
                    }
                }
                let head = String::from_utf8_lossy(&buffer[..read]).to_lowercase();
                seen.lock().unwrap().push(head);
                let body = r#"{"id":"c","object":"chat.completion","model":"m","choices":[{"index":0,"message":{"role":"assistant","content":"ok"},"finish_reason":"stop"}],"usage":{"prompt_tokens":1,"completion_tokens":1,"total_tokens":2}}"#;
                let answer = format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = socket.write_all(answer.as_bytes()).await;
            });
        }
    });
    (address, heads)
}

#[tokio::test]
async fn user_info_in_an_endpoint_url_is_sent_as_basic_auth_and_its_query_kept() {
    let (address, heads) = recording_upstream().await;
    let config = format!(
        "server: {{listen: '127.0.0.1:0'}}
health: {{check_interval_ms: 0}}
models: [{{name: m}}]
pools:
  - {{name: p, model: m, context_window: 8K,
     endpoints: [{{url: 'http://us%40er:p%3Ass@{address}/v1?api-version=7'}}]}}
default_route: {{models: [m]}}
"
    );
    let g = harness::gateway(&config).await;
    let r = reqwest::Client::new()
        .post(format!("{}/v1/chat/completions", g.url()))
        .json(&json!({"model": "m", "messages": [{"role": "user", "content": "hello"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    let heads = heads.lock().unwrap().clone();
    assert_eq!(heads.len(), 1, "{heads:?}");
    let head = &heads[0];
    assert!(
        head.starts_with("post /v1/chat/completions?api-version=7 http/1.1\r\n"),
        "{head}"
    );
    // base64("us@er:p:ss"), percent-decoded first.
    assert!(
        head.contains("\r\nauthorization: basic dxnazxi6cdpzcw==\r\n"),
        "{head}"
    );
    assert!(!head.contains("us%40er"), "{head}");
    assert!(head.contains(&format!("\r\nhost: {address}\r\n")), "{head}");
}

#[tokio::test]
async fn a_huge_unknown_model_name_gets_a_short_404() {
    let s = stack("", DEFAULT_UPSTREAM).await;
    let name = "x".repeat(1_000_000);
    let r = s.chat(&name, "hello", false).await;
    assert_eq!(r.status(), 404);
    let body = r.text().await.unwrap();
    assert!(body.len() < 1024, "{} bytes", body.len());
    assert!(body.contains("(1000000 bytes)"), "{body}");
    // A near miss still gets its suggestion.
    let r = s.chat("chta", "hello", false).await;
    let body: Value = r.json().await.unwrap();
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("did you mean `chat`"),
        "{body}"
    );
}

#[tokio::test]
async fn a_prompt_larger_than_every_pool_is_refused_before_any_signal_reads_it() {
    let s = stack("", DEFAULT_UPSTREAM).await;
    // About 100K tokens; the largest pool holds 64K.
    let prompt = "please compile this rust code now ".repeat(12_000);
    let r = s
        .post(
            "/v1/route",
            json!({"model": "auto", "messages": [{"role": "user", "content": prompt}]}),
        )
        .await;
    assert_eq!(r.status(), 400);
    // Refused in ingress: a plain error, where a refusal from a later phase comes with
    // the trace of the phases that ran.
    let body: Value = r.json().await.unwrap();
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("the largest pool holds 65536"),
        "{body}"
    );
    assert!(
        body.get("characterize").is_none() && body.get("decide").is_none(),
        "{body}"
    );
    let r = s.chat("auto", &prompt, false).await;
    assert_eq!(r.status(), 400);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"]["param"], "messages", "{body}");
}

/// Reads until the server closes the connection; false if it is still open after 5 s.
async fn closed_by_server(stream: &mut tokio::net::TcpStream) -> bool {
    use tokio::io::AsyncReadExt;
    let mut buffer = [0u8; 4096];
    loop {
        match tokio::time::timeout(std::time::Duration::from_secs(5), stream.read(&mut buffer))
            .await
        {
            Ok(Ok(0) | Err(_)) => return true,
            Ok(Ok(_)) => continue,
            Err(_) => return false,
        }
    }
}

#[tokio::test]
async fn slow_headers_and_idle_connections_are_shed() {
    use tokio::io::AsyncWriteExt;
    let s = stack("  header_read_timeout_ms: 300", DEFAULT_UPSTREAM).await;
    let addr = s.gateway.url().trim_start_matches("http://").to_owned();
    // Headers trickled and never finished (slowloris).
    let mut slow = tokio::net::TcpStream::connect(&addr).await.unwrap();
    slow.write_all(b"POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\n")
        .await
        .unwrap();
    // A connection that never sends anything.
    let mut idle = tokio::net::TcpStream::connect(&addr).await.unwrap();
    assert!(closed_by_server(&mut slow).await, "slow headers were held");
    assert!(
        closed_by_server(&mut idle).await,
        "an idle connection was held"
    );
    // A keep-alive connection idle after its answer is closed too.
    let mut kept = tokio::net::TcpStream::connect(&addr).await.unwrap();
    kept.write_all(b"GET /healthz HTTP/1.1\r\nhost: x\r\n\r\n")
        .await
        .unwrap();
    assert!(
        closed_by_server(&mut kept).await,
        "an idle keep-alive was held"
    );
    // Honest requests are served all along.
    assert_eq!(s.chat("auto", "hello", false).await.status(), 200);
}

/// Everything the server sends until it closes the connection; panics with `what`
/// if it neither answers nor closes within 5 s.
async fn read_until_closed(stream: &mut tokio::net::TcpStream, what: &str) -> String {
    use tokio::io::AsyncReadExt;
    let mut answer = String::new();
    tokio::time::timeout(
        std::time::Duration::from_secs(5),
        stream.read_to_string(&mut answer),
    )
    .await
    .unwrap_or_else(|_| panic!("{what}"))
    .unwrap();
    answer
}

#[tokio::test]
async fn a_trickled_body_is_answered_408_and_the_connection_closed() {
    use tokio::io::AsyncWriteExt;
    let s = stack("  body_read_timeout_ms: 300", DEFAULT_UPSTREAM).await;
    let addr = s.gateway.url().trim_start_matches("http://").to_owned();
    let mut slow = tokio::net::TcpStream::connect(&addr).await.unwrap();
    slow.write_all(
        b"POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: 1000\r\n\r\n{\"model\":",
    )
    .await
    .unwrap();
    let started = std::time::Instant::now();
    let answer = read_until_closed(&mut slow, "a trickled body was held").await;
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains("body_read_timeout_ms"), "{answer}");
    assert!(started.elapsed() >= std::time::Duration::from_millis(250));
    // A body that arrives in pieces within the deadline is served.
    let body = serde_json::json!({
        "model": "auto",
        "messages": [{"role": "user", "content": "hello"}],
    })
    .to_string();
    let (first, rest) = body.split_at(10);
    let mut honest = tokio::net::TcpStream::connect(&addr).await.unwrap();
    honest
        .write_all(
            format!(
                "POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\nconnection: close\r\ncontent-length: {}\r\n\r\n{first}",
                body.len()
            )
            .as_bytes(),
        )
        .await
        .unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    honest.write_all(rest.as_bytes()).await.unwrap();
    let answer = read_until_closed(&mut honest, "an honest request was not answered").await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
}

#[tokio::test]
async fn connections_over_the_cap_get_503_and_the_cap_frees_up() {
    use tokio::io::AsyncWriteExt;
    let s = stack("  max_connections: 2", DEFAULT_UPSTREAM).await;
    let addr = s.gateway.url().trim_start_matches("http://").to_owned();
    let held: Vec<tokio::net::TcpStream> = futures_util::future::join_all(
        (0..2).map(|_| tokio::net::TcpStream::connect(addr.clone())),
    )
    .await
    .into_iter()
    .map(Result::unwrap)
    .collect();
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    let mut third = tokio::net::TcpStream::connect(&addr).await.unwrap();
    third
        .write_all(b"GET /healthz HTTP/1.1\r\nhost: x\r\n\r\n")
        .await
        .unwrap();
    // Bounded: a server without a cap would keep this connection open forever.
    let answer = read_until_closed(
        &mut third,
        "the connection over the cap was neither answered nor closed",
    )
    .await;
    assert!(answer.starts_with("HTTP/1.1 503"), "{answer}");
    assert!(answer.contains("maximum of 2 connections"), "{answer}");
    drop(held);
    let mut served = false;
    for _ in 0..50 {
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        let r = reqwest::Client::new()
            .get(format!("{}/healthz", s.gateway.url()))
            .send()
            .await;
        if r.is_ok_and(|r| r.status() == 200) {
            served = true;
            break;
        }
    }
    assert!(served, "the cap frees up when connections close");
}

/// `kv_retention` is the gateway's field: a client's own is never forwarded, with the
/// body field off (nothing goes up) and on (a first turn has no hint, so nothing goes
/// up; a later turn carries the gateway's hint, not the client's).
#[tokio::test]
async fn a_clients_kv_retention_never_reaches_the_engine() {
    let (upstream, seen) = harness::echo().await;
    let forged = json!({"priority": 255, "ttl_ms": 1e12});
    for body_field in [false, true] {
        let g = harness::gateway(&format!(
            "server: {{listen: '127.0.0.1:0'}}
retention: {{body_field: {body_field}}}
models: [{{name: m}}]
pools: [{{name: p, model: m, context_window: 8K, endpoints: [{{url: '{upstream}'}}]}}]
default_route: {{models: [m]}}
"
        ))
        .await;
        let url = format!("{}/v1/chat/completions", g.url());
        let first = json!({"model": "auto", "kv_retention": forged,
                           "messages": [{"role": "user", "content": "hi"}]});
        let later = json!({"model": "auto", "kv_retention": forged, "messages": [
            {"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"},
            {"role": "user", "content": "more"}]});
        for body in [first, later] {
            let r = harness::post_json(&url, &body).await;
            assert_eq!(r.status(), 200);
            let sent = seen.lock().unwrap().last().cloned().unwrap();
            let turns = body["messages"].as_array().unwrap().len();
            let field = &sent["kv_retention"];
            if body_field && turns > 1 {
                assert!(field["ttl_ms"].as_u64().unwrap() < 1_000_000_000, "{sent}");
                assert_ne!(field["priority"], 255, "{sent}");
            } else {
                assert!(
                    field.is_null(),
                    "body_field {body_field}, {turns} turns: {sent}"
                );
            }
        }
    }
}
