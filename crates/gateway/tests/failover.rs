//! Failure handling on a pool of several endpoints: failover before any byte reached
//! the client, ejection with backoff, active checks that bring endpoints back, and no
//! request lost or answered twice when an endpoint dies mid-test.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod harness;

use harness::{engine, header};
use serde_json::{Value, json};
use std::time::Duration;
use switchyard_engine::{EngineHandle, Faults};
use switchyard_fleet::GpuKind;
use switchyard_gateway::{Gateway, Runtime};
use switchyard_policy::{Policy, parse_config};

async fn gateway(engines: &[&EngineHandle], extra: &str) -> Gateway {
    gateway_with_health(engines, "", extra).await
}

/// `health` is added to the test's health settings (`panic_threshold: 0`, …).
async fn gateway_with_health(engines: &[&EngineHandle], health: &str, extra: &str) -> Gateway {
    let endpoints: Vec<String> = engines
        .iter()
        .enumerate()
        .map(|(i, e)| format!("{{url: '{}', name: e{i}}}", e.url()))
        .collect();
    let config = format!(
        "server: {{listen: '127.0.0.1:0'}}
health: {{eject_after_failures: 2, base_ejection_ms: 300, max_ejection_ms: 2000,
          check_interval_ms: 100, check_timeout_ms: 200{health}}}
{extra}
models: [{{name: m}}]
pools: [{{name: p, model: m, context_window: 8K, endpoints: [{}]}}]
default_route: {{models: [m]}}
",
        endpoints.join(", ")
    );
    harness::gateway(&config).await
}

async fn ask(client: &reqwest::Client, g: &Gateway, stream: bool) -> (u16, String, u32, String) {
    let r = client
        .post(format!("{}/v1/chat/completions", g.url()))
        .json(&json!({"model": "auto", "stream": stream, "max_tokens": 8,
                      "messages": [{"role": "user", "content": "hi"}]}))
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    let endpoint = header(&r, "x-switchyard-endpoint");
    let attempts = header(&r, "x-switchyard-attempts").parse().unwrap_or(0);
    (status, endpoint, attempts, r.text().await.unwrap())
}

async fn pools(client: &reqwest::Client, g: &Gateway) -> Vec<Value> {
    let v: Value = client
        .get(format!("{}/v1/pools", g.url()))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    v["pools"][0]["endpoints"].as_array().unwrap().clone()
}

#[tokio::test]
async fn a_failing_endpoint_is_retried_around_then_ejected() {
    let e: Vec<EngineHandle> =
        futures_util::future::join_all((0..3).map(|_| engine(Some(GpuKind::H100), 8192, "m")))
            .await;
    let g = gateway(&[&e[0], &e[1], &e[2]], "").await;
    e[0].set_faults(Faults {
        error_rate: 1.0,
        ..Faults::default()
    });
    let client = reqwest::Client::new();
    let mut retried = 0;
    for i in 0..30 {
        let (status, endpoint, attempts, body) = ask(&client, &g, i % 2 == 0).await;
        assert_eq!(status, 200, "request {i}: {body}");
        assert_ne!(endpoint, "e0");
        assert!(
            body.contains("\"usage\"") || body.contains("[DONE]"),
            "{body}"
        );
        retried += usize::from(attempts > 1);
    }
    assert!(retried >= 1, "the failing endpoint was never tried");
    let state = pools(&client, &g).await;
    assert_eq!(state[0]["name"], "e0");
    assert!(
        state[0]["health"]["ejections"].as_u64().unwrap() >= 1,
        "{state:?}"
    );
    assert!(state[0]["health"]["failures"].as_u64().unwrap() >= 2);
    assert_eq!(state[1]["health"]["failures"], 0);
    // e0's failures all moved on to a retry: no client saw them.
    let e0_calls = e[0].requests();
    assert!((2..30).contains(&e0_calls), "{e0_calls}");
}

#[tokio::test]
async fn with_every_endpoint_failing_the_client_gets_one_clear_error() {
    let e: Vec<EngineHandle> =
        futures_util::future::join_all((0..2).map(|_| engine(None, 8192, "m"))).await;
    // Without the panic threshold, a pool whose endpoints are all out refuses at once.
    let g = gateway_with_health(
        &[&e[0], &e[1]],
        ", panic_threshold: 0",
        "upstream: {max_attempts: 3}",
    )
    .await;
    for engine in &e {
        engine.set_faults(Faults {
            error_rate: 1.0,
            ..Faults::default()
        });
    }
    let client = reqwest::Client::new();
    let (status, _, attempts, body) = ask(&client, &g, false).await;
    assert_eq!(status, 502, "{body}");
    assert_eq!(attempts, 2, "each endpoint once, never the same one twice");
    assert_eq!(e[0].requests() + e[1].requests(), 2);
    // Both are ejected now: requests are refused at once until one returns.
    ask(&client, &g, false).await;
    let (status, _, _, body) = ask(&client, &g, false).await;
    assert_eq!(status, 503, "{body}");
    assert!(body.contains("out of rotation"), "{body}");
    let ready = client
        .get(format!("{}/readyz", g.url()))
        .send()
        .await
        .unwrap();
    assert_eq!(ready.status(), 503);
    let ready: Value = ready.json().await.unwrap();
    assert_eq!(ready["models_without_endpoints"], json!(["m"]), "{ready}");
    // The dry run still explains the request, up to the phase that refuses it.
    let dry = client
        .post(format!("{}/v1/route", g.url()))
        .json(&json!({"model": "auto", "messages": [{"role": "user", "content": "hi"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(dry.status(), 503);
    let trace: Value = dry.json().await.unwrap();
    assert_eq!(trace["select"]["model"], "m", "{trace}");
    assert!(
        trace["place"]["error"]["message"]
            .as_str()
            .unwrap()
            .contains("out of rotation"),
        "{trace}"
    );
    assert_eq!(trace["error"]["phase"], "place");
    assert!(trace.get("plugins").is_none(), "the trace ends at place");
    // Fix them: when the ejections run out, the half-open trials succeed, the breakers
    // close and traffic flows again.
    for engine in &e {
        engine.set_faults(Faults::default());
    }
    let mut status = 0;
    for _ in 0..40 {
        tokio::time::sleep(Duration::from_millis(50)).await;
        status = ask(&client, &g, false).await.0;
        if status == 200 {
            break;
        }
    }
    assert_eq!(status, 200);
}

#[tokio::test]
async fn an_endpoint_killed_mid_test_loses_no_request_and_returns_when_it_recovers() {
    let e: Vec<EngineHandle> =
        futures_util::future::join_all((0..3).map(|_| engine(Some(GpuKind::H100), 8192, "m")))
            .await;
    let g = std::sync::Arc::new(gateway(&[&e[0], &e[1], &e[2]], "").await);
    let client = reqwest::Client::new();
    let total = 240;
    let done = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for worker in 0..8 {
        let (client, g, done) = (client.clone(), g.clone(), done.clone());
        tasks.push(tokio::spawn(async move {
            let mut results = Vec::new();
            for i in 0..total / 8 {
                let result = ask(&client, &g, (worker + i) % 3 == 0).await;
                done.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                results.push(result);
            }
            results
        }));
    }
    while done.load(std::sync::atomic::Ordering::Relaxed) < total / 4 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let killed_addr = e[1].addr;
    e[1].stop();
    let mut results = Vec::new();
    for t in tasks {
        results.extend(t.await.unwrap());
    }
    assert_eq!(results.len(), total);
    for (status, endpoint, _, body) in &results {
        assert_eq!(*status, 200, "{endpoint}: {body}");
        let whole = body.contains("\"finish_reason\":\"length\"")
            && (body.contains("\"usage\"") || body.ends_with("data: [DONE]\n\n"));
        assert!(whole, "a partial answer reached a client: {body}");
    }
    let calls: u64 = e.iter().map(EngineHandle::requests).sum();
    let attempts: u32 = results.iter().map(|r| r.2).sum();
    assert!(
        calls <= u64::from(attempts),
        "an upstream call no client attempt accounts for"
    );

    // The dead endpoint is out of rotation; it comes back when it listens again.
    let mut out = false;
    for _ in 0..40 {
        if pools(&client, &g).await[1]["health"]["available"] == false {
            out = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(out, "the killed endpoint was never ejected");
    let listener = tokio::net::TcpListener::bind(killed_addr).await.unwrap();
    let revived = switchyard_engine::serve(
        listener,
        switchyard_engine::EngineConfig {
            model: "m".into(),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let mut back = false;
    for _ in 0..60 {
        tokio::time::sleep(Duration::from_millis(50)).await;
        if pools(&client, &g).await[1]["health"]["available"] == true {
            back = true;
            break;
        }
    }
    assert!(back, "the revived endpoint never returned to rotation");
    for _ in 0..12 {
        assert_eq!(ask(&client, &g, false).await.0, 200);
    }
    assert!(
        revived.requests() > 0,
        "no traffic reached the revived endpoint"
    );
}

#[tokio::test]
async fn scraped_engine_queues_steer_placement_away_from_a_busy_endpoint() {
    let busy = engine(Some(GpuKind::H100), 65_536, "m").await;
    let idle = engine(Some(GpuKind::H100), 65_536, "m").await;
    let endpoints = format!(
        "[{{url: '{}', name: busy}}, {{url: '{}', name: idle}}]",
        busy.url(),
        idle.url()
    );
    let config = format!(
        "server: {{listen: '127.0.0.1:0'}}
health: {{check_interval_ms: 50, scrape_metrics: true}}
models: [{{name: m}}]
pools: [{{name: p, model: m, context_window: 64K, endpoints: {endpoints}}}]
default_route: {{models: [m]}}
"
    );
    let g = harness::gateway(&config).await;
    // Another client loads `busy` directly: 24 long answers on 16 slots.
    let client = reqwest::Client::new();
    let mut direct = Vec::new();
    for i in 0..24 {
        let (client, url) = (
            client.clone(),
            format!("{}/v1/chat/completions", busy.url()),
        );
        direct.push(tokio::spawn(async move {
            client
                .post(url)
                .json(&json!({"model": "m", "max_tokens": 400,
                              "messages": [{"role": "user", "content": format!("load {i}")}]}))
                .send()
                .await
                .unwrap()
                .bytes()
                .await
                .unwrap()
        }));
    }
    let mut seen = Value::Null;
    for _ in 0..40 {
        tokio::time::sleep(Duration::from_millis(25)).await;
        seen = pools(&client, &g).await[0]["engine"].clone();
        if seen["waiting"].as_f64().unwrap_or(0.0) >= 8.0 {
            break;
        }
    }
    assert_eq!(seen["running"], 16.0, "{seen}");
    assert_eq!(seen["waiting"], 8.0, "{seen}");
    for _ in 0..6 {
        let (status, endpoint, _, _) = ask(&client, &g, false).await;
        assert_eq!(status, 200);
        assert_eq!(
            endpoint, "idle",
            "the router's own count alone would tie at 0"
        );
    }
    for t in direct {
        t.await.unwrap();
    }
}

#[tokio::test]
async fn shutdown_drains_streams_in_progress_and_refuses_new_requests() {
    let e = engine(Some(GpuKind::H100), 8192, "m").await;
    let config = format!(
        "server: {{listen: '127.0.0.1:0'}}
models: [{{name: m}}]
pools: [{{name: p, model: m, context_window: 8K, endpoints: [{{url: '{}'}}]}}]
default_route: {{models: [m]}}
",
        e.url()
    );
    let policy = Policy::compile(parse_config(&config).unwrap()).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let g = Gateway::start_until(listener, Runtime::new(policy).unwrap(), async {
        let _ = stopped.await;
    })
    .unwrap();
    let url = g.url();
    let client = reqwest::Client::new();
    let mut stream = client
        .post(format!("{url}/v1/chat/completions"))
        .json(&json!({"model": "auto", "stream": true, "max_tokens": 100,
                      "messages": [{"role": "user", "content": "a long answer"}]}))
        .send()
        .await
        .unwrap();
    let mut text = stream.chunk().await.unwrap().unwrap().to_vec();
    stop.send(()).unwrap();
    tokio::time::sleep(Duration::from_millis(50)).await;
    let refused = reqwest::Client::new()
        .get(format!("{url}/healthz"))
        .send()
        .await;
    assert!(refused.is_err(), "the listener is closed during the drain");
    while let Some(chunk) = stream.chunk().await.unwrap() {
        text.extend_from_slice(&chunk);
    }
    let text = String::from_utf8(text).unwrap();
    assert!(
        text.ends_with("data: [DONE]\n\n"),
        "the stream in progress finished: {text}"
    );
    assert_eq!(text.matches("\"delta\"").count(), 100);
    g.wait().await.unwrap();
}

#[tokio::test]
async fn a_pool_with_every_endpoint_out_still_serves_in_panic() {
    let e: Vec<EngineHandle> =
        futures_util::future::join_all((0..2).map(|_| engine(None, 8192, "m"))).await;
    // Ejections last 300 ms here: everything below happens well within them.
    let g = gateway_with_health(&[&e[0], &e[1]], "", "upstream: {max_attempts: 3}").await;
    for engine in &e {
        engine.set_faults(Faults {
            error_rate: 1.0,
            ..Faults::default()
        });
    }
    let client = reqwest::Client::new();
    // Two rounds of failures eject both (two failures each).
    ask(&client, &g, false).await;
    ask(&client, &g, false).await;
    let state = pools(&client, &g).await;
    assert!(
        state.iter().all(|e| e["health"]["available"] == false),
        "{state:?}"
    );
    for engine in &e {
        engine.set_faults(Faults::default());
    }
    // Both are still ejected, but the pool is in panic: placed, not refused…
    let trace: Value = client
        .post(format!("{}/v1/route", g.url()))
        .json(&json!({"model": "auto", "messages": [{"role": "user", "content": "hi"}]}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(trace["place"]["panic"], true, "{trace}");
    // …and served.
    let (status, _, _, body) = ask(&client, &g, false).await;
    assert_eq!(status, 200, "{body}");
}

/// An upstream that passes health checks (any GET gets 200) but breaks every other
/// request by closing the connection without an answer.
async fn check_passing_breaker() -> (tokio::task::JoinHandle<()>, std::net::SocketAddr) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let task = tokio::spawn(async move {
        loop {
            let Ok((mut socket, _)) = listener.accept().await else {
                return;
            };
            tokio::spawn(async move {
                let mut head = [0u8; 4];
                if socket.read_exact(&mut head).await.is_ok() && &head[..] == b"GET " {
                    let _ = socket
                        .write_all(
                            b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok",
                        )
                        .await;
                }
            });
        }
    });
    (task, addr)
}

/// A gateway with one endpoint at `addr`: ejected for a minute by one failure, checked
/// every 100 ms, no panic mode, `check_ends_ejection: rule`.
async fn one_endpoint_gateway(addr: std::net::SocketAddr, rule: &str) -> Gateway {
    let config = format!(
        "server: {{listen: '127.0.0.1:0'}}
health: {{eject_after_failures: 1, base_ejection_ms: 60000, max_ejection_ms: 60000,
          check_interval_ms: 100, check_timeout_ms: 200, panic_threshold: 0,
          check_ends_ejection: {rule}}}
upstream: {{max_attempts: 1}}
models: [{{name: m}}]
pools: [{{name: p, model: m, context_window: 8K, endpoints: [{{url: 'http://{addr}', name: e0}}]}}]
default_route: {{models: [m]}}
"
    );
    harness::gateway(&config).await
}

/// A gateway whose only endpoint is ejected for a minute by a failed request while its
/// checks pass, then goes down (checks fail) and is left down: the caller brings it up.
async fn ejected_then_down(rule: &str) -> (Gateway, std::net::SocketAddr) {
    let (breaker, addr) = check_passing_breaker().await;
    let g = one_endpoint_gateway(addr, rule).await;
    let client = reqwest::Client::new();
    // The request breaks and ejects it for a minute; its checks still pass.
    assert_eq!(ask(&client, &g, false).await.0, 502);
    assert_eq!(ask(&client, &g, false).await.0, 503);
    let state = pools(&client, &g).await;
    assert_eq!(state[0]["health"]["ejections"], 1, "{state:?}");
    // Down: its checks fail.
    breaker.abort();
    let _ = breaker.await;
    wait_for_check(&client, &g, true).await;
    assert_eq!(ask(&client, &g, false).await.0, 503);
    (g, addr)
}

/// Waits (at most 5 s) until the endpoint's last check failed (`failed`) or passed.
async fn wait_for_check(client: &reqwest::Client, g: &Gateway, failed: bool) {
    let started = std::time::Instant::now();
    while pools(client, g).await[0]["health"]["check_failed"] != failed {
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "no check came out {}",
            if failed { "failed" } else { "passing" }
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn start_engine_at(addr: std::net::SocketAddr) -> EngineHandle {
    let listener = tokio::net::TcpListener::bind(addr).await.unwrap();
    switchyard_engine::serve(
        listener,
        switchyard_engine::EngineConfig {
            model: "m".into(),
            ..Default::default()
        },
    )
    .await
    .unwrap()
}

#[tokio::test]
async fn an_upstream_that_comes_up_after_the_gateway_is_served_within_a_check_interval() {
    let (g, addr) = ejected_then_down("recovered").await;
    let client = reqwest::Client::new();
    let engine = start_engine_at(addr).await;
    let started = std::time::Instant::now();
    let mut served = false;
    while started.elapsed() < Duration::from_secs(5) {
        if ask(&client, &g, false).await.0 == 200 {
            served = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(served, "still refused 5 s after the upstream came up");
    assert!(engine.requests() > 0);
    let state = pools(&client, &g).await;
    assert_eq!(state[0]["health"]["available"], true, "{state:?}");
}

#[tokio::test]
async fn with_check_ends_ejection_never_the_backoff_runs_its_course() {
    let (g, addr) = ejected_then_down("never").await;
    let client = reqwest::Client::new();
    let engine = start_engine_at(addr).await;
    // Checks pass again (the endpoint is no longer marked down by them), yet the
    // minute-long ejection holds.
    wait_for_check(&client, &g, false).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(ask(&client, &g, false).await.0, 503);
    assert_eq!(engine.requests(), 0);
}

#[tokio::test]
async fn with_check_ends_ejection_recovered_a_check_passing_throughout_does_not_end_it() {
    // Ejected while its checks pass (it answers checks but breaks requests): the
    // checks say nothing about recovery, so the ejection holds.
    let (breaker, addr) = check_passing_breaker().await;
    let g = one_endpoint_gateway(addr, "recovered").await;
    let client = reqwest::Client::new();
    assert_eq!(ask(&client, &g, false).await.0, 502);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let state = pools(&client, &g).await;
    assert_eq!(state[0]["health"]["check_failed"], false, "{state:?}");
    assert_eq!(state[0]["health"]["available"], false, "{state:?}");
    assert_eq!(ask(&client, &g, false).await.0, 503);
    breaker.abort();
}
