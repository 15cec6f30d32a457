//! Requests travel end to end: routing, direct models, streaming, usage, explain.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::print_stderr
)]

mod harness;

use harness::{DEFAULT_UPSTREAM, header, stack};
use serde_json::{Value, json};
use std::time::Instant;

#[tokio::test]
async fn routes_by_keyword_and_by_context_length() {
    let s = stack("", DEFAULT_UPSTREAM).await;
    let r = s
        .chat("auto", "How do I compile a Rust crate?", false)
        .await;
    assert_eq!(r.status(), 200);
    assert_eq!(header(&r, "x-switchyard-route"), "coding");
    assert_eq!(header(&r, "x-switchyard-model"), "coder");
    assert_eq!(header(&r, "x-switchyard-endpoint"), "coder-pool-0");
    assert!(
        header(&r, "x-switchyard-overhead-us")
            .parse::<u64>()
            .is_ok()
    );
    let body: Value = r.json().await.unwrap();
    assert_eq!(
        body["model"], "coder-upstream",
        "the upstream name is sent upstream"
    );

    let long = "lorem ipsum dolor sit amet ".repeat(1200);
    let r = s.chat("auto", &long, false).await;
    assert_eq!(r.status(), 200);
    assert_eq!(header(&r, "x-switchyard-route"), "long_context");
    assert_eq!(header(&r, "x-switchyard-endpoint"), "chat-long-0");

    let r = s.chat("auto", "hello there", false).await;
    assert_eq!(header(&r, "x-switchyard-route"), "default");
    assert_eq!(header(&r, "x-switchyard-endpoint"), "chat-short-0");
    assert_eq!(s.chat_short.requests(), 1);
    assert_eq!(s.chat_long.requests(), 1);
    assert_eq!(s.coder.requests(), 1);
}

#[tokio::test]
async fn headers_and_metadata_route_when_a_policy_reads_them() {
    let s = stack("", DEFAULT_UPSTREAM).await;
    let body = json!({"model": "auto", "max_tokens": 5,
                      "messages": [{"role": "user", "content": "hello there"}]});
    let with_header = s
        .client
        .post(format!("{}/v1/chat/completions", s.gateway.url()))
        .header("x-tenant", "acme")
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(header(&with_header, "x-switchyard-route"), "tenant");
    let mut gold = body.clone();
    gold["metadata"] = json!({"tier": "gold"});
    let r = s.post("/v1/chat/completions", gold).await;
    assert_eq!(header(&r, "x-switchyard-route"), "tenant");
    let other = s
        .client
        .post(format!("{}/v1/chat/completions", s.gateway.url()))
        .header("x-tenant", "globex")
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(header(&other, "x-switchyard-route"), "default");
}

#[tokio::test]
async fn a_named_model_bypasses_routing_but_not_placement() {
    let s = stack("", DEFAULT_UPSTREAM).await;
    let r = s.chat("coder", "hello there", false).await;
    assert_eq!(r.status(), 200);
    assert_eq!(header(&r, "x-switchyard-route"), "direct");
    assert_eq!(header(&r, "x-switchyard-model"), "coder");
    // A mid-sized prompt to `chat` with room for its answer only in the long pool.
    let prompt = "word ".repeat(3500);
    let r = s
        .post(
            "/v1/chat/completions",
            json!({"model": "chat", "max_tokens": 1000,
                   "messages": [{"role": "user", "content": prompt}]}),
        )
        .await;
    assert_eq!(r.status(), 200);
    assert_eq!(header(&r, "x-switchyard-route"), "direct");
    assert_eq!(header(&r, "x-switchyard-endpoint"), "chat-long-0");
}

#[tokio::test]
async fn usage_is_reported_and_max_tokens_honoured() {
    let s = stack("", DEFAULT_UPSTREAM).await;
    let r = s
        .post(
            "/v1/chat/completions",
            json!({"model": "auto", "max_tokens": 5,
                   "messages": [{"role": "user", "content": "tell me a story"}]}),
        )
        .await;
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["usage"]["completion_tokens"], 5);
    assert_eq!(body["choices"][0]["finish_reason"], "length");
    let prompt = body["usage"]["prompt_tokens"].as_u64().unwrap();
    assert!(prompt > 4, "{body}");
    assert_eq!(body["usage"]["total_tokens"].as_u64().unwrap(), prompt + 5);
}

/// Reads a streamed response, noting when the first and last bytes arrived.
async fn read_stream(mut r: reqwest::Response, started: Instant) -> (f64, f64, String) {
    let mut first = None;
    let mut text = Vec::new();
    while let Some(chunk) = r.chunk().await.unwrap() {
        first.get_or_insert_with(|| started.elapsed().as_secs_f64());
        text.extend_from_slice(&chunk);
    }
    let last = started.elapsed().as_secs_f64();
    (
        first.unwrap_or(last),
        last,
        String::from_utf8(text).unwrap(),
    )
}

#[tokio::test]
async fn stream_chunks_arrive_before_the_upstream_finishes() {
    let s = stack("", DEFAULT_UPSTREAM).await;
    // 150 tokens at ≥ 4 ms per iteration: the answer takes ≥ 600 ms upstream.
    let started = Instant::now();
    let r = s
        .post(
            "/v1/chat/completions",
            json!({"model": "auto", "stream": true, "max_tokens": 150,
                   "messages": [{"role": "user", "content": "a long story please"}]}),
        )
        .await;
    assert_eq!(r.status(), 200);
    assert_eq!(header(&r, "content-type"), "text/event-stream");
    let (first, last, text) = read_stream(r, started).await;
    assert!(last >= 0.6, "the stream took {last} s");
    assert!(
        first < last / 4.0,
        "first chunk at {first} s of {last} s: buffered?"
    );
    assert!(text.ends_with("data: [DONE]\n\n"), "{text}");
    assert!(!text.contains("\"usage\""), "usage only when asked for");
    assert!(text.matches("data: {").count() >= 50);
}

#[tokio::test]
async fn stream_usage_when_asked() {
    let s = stack("", DEFAULT_UPSTREAM).await;
    let r = s
        .post(
            "/v1/chat/completions",
            json!({"model": "auto", "stream": true, "max_tokens": 7,
                   "stream_options": {"include_usage": true},
                   "messages": [{"role": "user", "content": "hi"}]}),
        )
        .await;
    let (_, _, text) = read_stream(r, Instant::now()).await;
    let usage_line = text
        .lines()
        .find(|l| l.contains("\"usage\""))
        .expect("a usage chunk");
    let chunk: Value = serde_json::from_str(usage_line.trim_start_matches("data: ")).unwrap();
    assert_eq!(chunk["usage"]["completion_tokens"], 7);
    assert_eq!(chunk["choices"], json!([]));
}

#[tokio::test]
async fn route_dry_run_explains_without_calling_upstream() {
    let s = stack("", DEFAULT_UPSTREAM).await;
    let r = s
        .post(
            "/v1/route",
            json!({"model": "auto", "messages": [{"role": "user", "content": "python help"}]}),
        )
        .await;
    assert_eq!(r.status(), 200);
    let trace: Value = r.json().await.unwrap();
    assert_eq!(trace["decide"]["route"], "coding");
    assert_eq!(trace["select"]["model"], "coder");
    assert_eq!(trace["place"]["pool"], "coder-pool");
    assert_eq!(trace["place"]["gpu"], "h100");
    let signals = trace["characterize"]["signals"].as_array().unwrap();
    assert_eq!(signals.len(), 4, "each referenced signal is computed once");
    assert!(
        signals
            .iter()
            .any(|s| s["signal"] == "keyword(\"code\")" && s["matched"] == true)
    );
    assert_eq!(trace["decide"]["routes"].as_array().unwrap().len(), 3);
    assert_eq!(s.coder.requests(), 0, "a dry run never calls upstream");
}

#[tokio::test]
async fn models_health_and_metrics() {
    let s = stack("", DEFAULT_UPSTREAM).await;
    let base = s.gateway.url();
    assert_eq!(harness::model_ids(&base).await, ["auto", "coder", "chat"]);
    assert_eq!(
        s.client
            .get(format!("{base}/healthz"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    let ready: Value = s
        .client
        .get(format!("{base}/readyz"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(ready["endpoints"], 3);
    s.chat("auto", "rust", false).await.bytes().await.unwrap();
    let metrics = s
        .client
        .get(format!("{base}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(metrics.contains("switchyard_requests_total"), "{metrics}");
    assert!(metrics.contains("route=\"coding\""), "{metrics}");
    assert!(metrics.contains("switchyard_overhead_seconds"), "{metrics}");
    assert!(
        metrics.contains(
            "switchyard_endpoint_available{pool=\"coder-pool\",endpoint=\"coder-pool-0\"} 1"
        ),
        "{metrics}"
    );
}

#[tokio::test]
async fn decision_log_has_one_line_per_request() {
    let (s, path) = harness::logging_stack("log").await;
    s.chat("auto", "compile this", false)
        .await
        .bytes()
        .await
        .unwrap();
    s.chat("auto", "hello", true).await.bytes().await.unwrap();
    let mut lines = Vec::new();
    for _ in 0..100 {
        let text = std::fs::read_to_string(&path).unwrap_or_default();
        lines = text.lines().map(str::to_owned).collect();
        if lines.len() >= 2 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert_eq!(lines.len(), 2, "{lines:?}");
    let records: Vec<Value> = lines
        .iter()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let coding = records.iter().find(|r| r["route"] == "coding").unwrap();
    assert_eq!(coding["model"], "coder");
    assert!(
        coding.get("recipe").is_none(),
        "the main policy names no recipe"
    );
    assert_eq!(coding["status"], 200);
    assert_eq!(coding["outcome"], "ok");
    assert_eq!(coding["tokens_reported"], true);
    assert_eq!(coding["completion_tokens"], 20);
    let streamed = records.iter().find(|r| r["stream"] == true).unwrap();
    assert_eq!(streamed["outcome"], "ok");
    assert_eq!(
        streamed["completion_tokens"], 20,
        "usage was read from a hidden usage chunk"
    );
    assert!(streamed["ttft_ms"].as_f64().unwrap() > 0.0);
    assert!(streamed["latency_ms"].as_f64().unwrap() >= streamed["ttft_ms"].as_f64().unwrap());
}

#[tokio::test]
async fn a_client_that_leaves_mid_stream_frees_the_endpoint_and_is_logged() {
    let (s, path) = harness::logging_stack("gone").await;
    let mut r = s
        .post(
            "/v1/chat/completions",
            json!({"model": "auto", "stream": true, "max_tokens": 300,
                   "messages": [{"role": "user", "content": "a long story please"}]}),
        )
        .await;
    assert!(r.chunk().await.unwrap().is_some());
    let endpoint = s.gateway.runtime().pools.all()[1].endpoints[0].clone();
    assert_eq!(endpoint.name, "chat-short-0");
    assert_eq!(endpoint.in_flight(), 1);
    drop(r);
    let mut line = String::new();
    for _ in 0..200 {
        line = std::fs::read_to_string(&path).unwrap_or_default();
        if endpoint.in_flight() == 0 && !line.is_empty() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    assert_eq!(
        endpoint.in_flight(),
        0,
        "the in-flight count must drop with the client"
    );
    let record: Value = serde_json::from_str(line.trim()).unwrap();
    assert_eq!(record["outcome"], "client_gone", "{record}");
}

#[tokio::test]
async fn pools_report_what_the_router_learned_about_each_endpoint() {
    let s = stack("", DEFAULT_UPSTREAM).await;
    for i in 0..10 {
        let prompt = format!("compile rust {}", "word ".repeat(i * 150));
        let r = s.chat("coder", &prompt, i % 2 == 0).await;
        assert_eq!(r.status(), 200);
        r.bytes().await.unwrap();
    }
    let pools: Value = s
        .client
        .get(format!("{}/v1/pools", s.gateway.url()))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let coder = &pools["pools"][0];
    assert_eq!(coder["name"], "coder-pool");
    assert_eq!(coder["model"], "coder");
    assert_eq!(coder["strategy"], "least_outstanding");
    let endpoint = &coder["endpoints"][0];
    assert_eq!(endpoint["dispatched"], 10);
    assert_eq!(endpoint["in_flight"], 0);
    assert!(endpoint["latency_ms"].as_f64().unwrap() > 0.0, "{endpoint}");
    let fit = &endpoint["ttft_fit"];
    assert_eq!(fit["samples"], 10, "{endpoint}");
    // H100: 1,024 prompt tokens per ≥ 4 ms iteration, so prefill costs ≥ 1 ms per 256 tokens.
    let per_token = fit["ms_per_token"].as_f64().unwrap();
    assert!(per_token > 0.001 && per_token < 0.05, "{fit}");
    assert_eq!(endpoint["health"]["available"], true);
}

#[tokio::test]
async fn placement_learns_answer_lengths_per_route_and_model() {
    // One instant engine on a 4K pool and one on a 64K pool. Answers run 200 to 600
    // tokens; before learning, placement plans for 5,000 and picks the 64K pool.
    let short = harness::engine(None, 4096, "m").await;
    let long = harness::engine(None, 65_536, "m").await;
    let config = format!(
        "server: {{listen: '127.0.0.1:0', expected_output_tokens: 5000}}
models: [{{name: m}}]
pools:
  - {{name: short, model: m, context_window: 4K, endpoints: [{{url: '{}'}}]}}
  - {{name: long, model: m, context_window: 64K, endpoints: [{{url: '{}'}}]}}
default_route: {{models: [m]}}
",
        short.url(),
        long.url()
    );
    let g = harness::gateway(&config).await;
    let client = reqwest::Client::new();
    let route = |prompt: String| {
        let client = client.clone();
        let url = g.url();
        async move {
            let trace: Value = client
                .post(format!("{url}/v1/route"))
                .json(&json!({"model": "auto", "messages": [{"role": "user", "content": prompt}]}))
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            trace
        }
    };
    let before = route("question 0".into()).await;
    assert_eq!(before["place"]["output_tokens"]["basis"], "default");
    assert_eq!(before["place"]["pool"], "long");
    for i in 0..20 {
        let r = client
            .post(format!("{}/v1/chat/completions", g.url()))
            .json(&json!({"model": "auto", "messages": [{"role": "user", "content": format!("question {i}")}]}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        r.bytes().await.unwrap();
    }
    let after = route("question 99".into()).await;
    let output = &after["place"]["output_tokens"];
    assert_eq!(output["basis"], "percentile", "{after}");
    assert_eq!(output["samples"], 20);
    let planned = output["tokens"].as_u64().unwrap();
    assert!((200..=600).contains(&planned), "{output}");
    assert_eq!(
        after["place"]["pool"], "short",
        "a learned length fits the 4K pool"
    );
    // A capped request says its own length and is not learned from.
    let capped = client
        .post(format!("{}/v1/route", g.url()))
        .json(&json!({"model": "auto", "max_tokens": 10, "messages": [{"role": "user", "content": "x"}]}))
        .send()
        .await
        .unwrap()
        .json::<Value>()
        .await
        .unwrap();
    assert_eq!(capped["place"]["output_tokens"]["basis"], "max_tokens");
}

#[tokio::test]
async fn mid_session_requests_carry_a_retention_hint() {
    let s = stack("", DEFAULT_UPSTREAM).await;
    let trace = |body: Value| async {
        s.post("/v1/route", body)
            .await
            .json::<Value>()
            .await
            .unwrap()
    };
    let first =
        trace(json!({"model": "auto", "messages": [{"role": "user", "content": "hi"}]})).await;
    assert!(first["place"]["retention"].is_null(), "{first}");
    let later = trace(json!({"model": "auto", "messages": [
        {"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"},
        {"role": "user", "content": "more"}]}))
    .await;
    let hint = &later["place"]["retention"];
    assert_eq!(hint["priority"], 2, "{later}");
    assert_eq!(hint["basis"], "chat");
    assert_eq!(hint["ttl_ms"], 120_000);
    // Through the gateway, the engine gets the hint and keeps the conversation's KV.
    let r = s.chat("auto", "hello there", false).await;
    let answer: Value = r.json().await.unwrap();
    let text = answer["choices"][0]["message"]["content"]
        .as_str()
        .unwrap()
        .to_owned();
    let r = s
        .post(
            "/v1/chat/completions",
            json!({"model": "auto", "max_tokens": 5, "messages": [
                {"role": "user", "content": "hello there"},
                {"role": "assistant", "content": text},
                {"role": "user", "content": "go on"}]}),
        )
        .await;
    assert_eq!(r.status(), 200);
    r.bytes().await.unwrap();
    let hits = harness::metric(&s.chat_short.url(), "vllm:prefix_cache_hits_total").await;
    assert!(hits > 0.0, "the second turn found the first in the cache");
}

#[tokio::test]
async fn a_route_that_allows_it_compresses_long_histories_into_the_short_pool() {
    let short = harness::engine(None, 4096, "m").await;
    let long = harness::engine(None, 65_536, "m").await;
    let config = format!(
        "server: {{listen: '127.0.0.1:0'}}
models: [{{name: m}}]
pools:
  - {{name: short, model: m, context_window: 4K, compression_factor: 2.0, endpoints: [{{url: '{}'}}]}}
  - {{name: long, model: m, context_window: 64K, endpoints: [{{url: '{}'}}]}}
signals:
  keyword: [{{name: agent, keywords: [build], scope: all}}]
routes:
  - {{name: agent, when: {{keyword: agent}}, models: [m], compress: true}}
default_route: {{models: [m]}}
",
        short.url(),
        long.url()
    );
    let g = harness::gateway(&config).await;
    let log = "compiler output line with a warning and a path ".repeat(250);
    let history = |topic: &str| {
        json!({"model": "auto", "max_tokens": 100, "messages": [
            {"role": "system", "content": "You fix builds."},
            {"role": "user", "content": format!("Please {topic} the project.")},
            {"role": "assistant", "content": "Running it."},
            {"role": "tool", "tool_call_id": "1", "content": log},
            {"role": "assistant", "content": "Again with logs."},
            {"role": "tool", "tool_call_id": "2", "content": log},
            {"role": "assistant", "content": "Summary follows."},
            {"role": "user", "content": "Fix it."}]})
    };
    let client = reqwest::Client::new();
    let trace: Value = client
        .post(format!("{}/v1/route", g.url()))
        .json(&history("build"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(trace["decide"]["route"], "agent");
    assert_eq!(trace["place"]["pool"], "short", "{trace}");
    let result = &trace["place"]["compression"]["result"];
    assert!(
        result["original_tokens"].as_u64().unwrap() > 4096,
        "{trace}"
    );
    assert!(result["tokens"].as_u64().unwrap() < 4000, "{trace}");
    assert_eq!(result["cuts"][0]["role"], "tool");

    let r = client
        .post(format!("{}/v1/chat/completions", g.url()))
        .json(&history("build"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(header(&r, "x-switchyard-endpoint"), "short-0");
    let body: Value = r.json().await.unwrap();
    assert!(
        body["usage"]["prompt_tokens"].as_u64().unwrap() < 4000,
        "{body}"
    );
    assert_eq!((short.requests(), long.requests()), (1, 0));

    // The same history on a route without compression goes to the long pool whole.
    let r = client
        .post(format!("{}/v1/chat/completions", g.url()))
        .json(&history("check"))
        .send()
        .await
        .unwrap();
    assert_eq!(header(&r, "x-switchyard-route"), "default");
    assert_eq!(header(&r, "x-switchyard-endpoint"), "long-0");
}

#[tokio::test]
async fn a_configured_tokenizer_counts_the_prompt() {
    let path = harness::temp_file("gw-tok", "tokenizer.json");
    std::fs::write(
        &path,
        r#"{"version":"1.0","truncation":null,"padding":null,"added_tokens":[],"normalizer":null,
           "pre_tokenizer":{"type":"Whitespace"},"post_processor":null,"decoder":null,
           "model":{"type":"WordLevel","vocab":{"[UNK]":0},"unk_token":"[UNK]"}}"#,
    )
    .unwrap();
    let e = harness::engine(None, 8192, "m").await;
    let config = format!(
        "server: {{listen: '127.0.0.1:0', tokenizer: '{}'}}
models: [{{name: m}}]
pools: [{{name: p, model: m, context_window: 8K, endpoints: [{{url: '{}'}}]}}]
default_route: {{models: [m]}}
",
        path.display(),
        e.url()
    );
    let g = harness::gateway(&config).await;
    let trace: Value = reqwest::Client::new()
        .post(format!("{}/v1/route", g.url()))
        .json(&json!({"model": "auto", "messages": [{"role": "user", "content": "hello wonderful world"}]}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    // Three words, plus four tokens of framing; the estimate would say 5 + 4.
    assert_eq!(trace["ingress"]["prompt_tokens"], 7, "{trace}");
    assert_eq!(trace["ingress"]["tokens_counted_by"], "tokenizer");

    let bad = config.replace(path.to_str().unwrap(), "/no/such/tokenizer.json");
    let policy =
        switchyard_policy::Policy::compile(switchyard_policy::parse_config(&bad).unwrap()).unwrap();
    let err = switchyard_gateway::Runtime::new(policy)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("/no/such/tokenizer.json") && err.contains("fetch-model"),
        "{err}"
    );
}

fn identity_config(trusted: &str, big: &str, small: &str) -> String {
    format!(
        "server:
  listen: 127.0.0.1:0
models:
  - name: big
  - name: small
pools:
  - {{name: p-big, model: big, context_window: 8K, endpoints: [{{url: '{big}'}}]}}
  - {{name: p-small, model: small, context_window: 8K, endpoints: [{{url: '{small}'}}]}}
signals:
  identity:
    trusted_headers: {{subject: x-user-id, roles: x-user-roles, trusted_proxies: ['{trusted}']}}
  authz:
    - {{name: admin, roles: [admin]}}
routes:
  - {{name: admins, priority: 10, when: {{authz: admin}}, models: [big]}}
default_route:
  models: [small]
"
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn proxy_identity_headers_route_only_from_trusted_networks() {
    let client = reqwest::Client::new();
    let body = json!({"model": "auto", "messages": [{"role": "user", "content": "hi"}]});
    let big = harness::engine(None, 8192, "big").await;
    let small = harness::engine(None, 8192, "small").await;
    for (trusted, expected) in [("127.0.0.1/32", "admins"), ("10.0.0.0/8", "default")] {
        let g = harness::gateway(&identity_config(trusted, &big.url(), &small.url())).await;
        let route = |with: bool| {
            let mut r = client.post(format!("{}/v1/route", g.url())).json(&body);
            if with {
                r = r
                    .header("x-user-id", "ann")
                    .header("x-user-roles", "ops, admin");
            }
            r.send()
        };
        let trace: serde_json::Value = route(true).await.unwrap().json().await.unwrap();
        assert_eq!(trace["decide"]["route"], expected, "{trusted}: {trace}");
        let trace: serde_json::Value = route(false).await.unwrap().json().await.unwrap();
        assert_eq!(trace["decide"]["route"], "default", "{trace}");
        let evidence = trace["characterize"]["signals"][0]["evidence"]
            .as_str()
            .unwrap();
        assert!(!evidence.is_empty());
        let metrics = client
            .get(format!("{}/metrics", g.url()))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert!(
            metrics.contains("switchyard_signal_seconds_bucket{signal=\"authz"),
            "per-signal latency is exported"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn selection_by_cost_quality_floor_and_weight() {
    let big = harness::engine(None, 8192, "big").await;
    let small = harness::engine(None, 8192, "small").await;
    let config = format!(
        "server:
  listen: 127.0.0.1:0
models:
  - {{name: big, price: {{input: 3, output: 15}}, quality: 0.9}}
  - {{name: small, price: {{input: 0.1, output: 0.2}}, quality: 0.6}}
pools:
  - {{name: p-big, model: big, context_window: 8K, endpoints: [{{url: '{}'}}]}}
  - {{name: p-small, model: small, context_window: 8K, endpoints: [{{url: '{}'}}]}}
signals:
  keyword:
    - {{name: careful, keywords: [contract]}}
    - {{name: split, keywords: [split]}}
routes:
  - {{name: careful, priority: 10, when: {{keyword: careful}}, models: [small, big],
     algorithm: {{type: cost, min_quality: 0.8}}}}
  - {{name: split, priority: 5, when: {{keyword: split}}, models: [big, small],
     algorithm: {{type: weighted, weights: {{big: 1, small: 1}}}}}}
default_route:
  models: [big, small]
  algorithm: cost
",
        big.url(),
        small.url()
    );
    let g = harness::gateway(&config).await;
    let client = reqwest::Client::new();
    let route = |prompt: String| {
        let body = json!({"model": "auto", "messages": [{"role": "user", "content": prompt}]});
        client
            .post(format!("{}/v1/route", g.url()))
            .json(&body)
            .send()
    };
    let trace: Value = route("hello".into()).await.unwrap().json().await.unwrap();
    assert_eq!(trace["select"]["model"], "small", "cheapest: {trace}");
    let trace: Value = route("review this contract".into())
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        trace["select"]["model"], "big",
        "quality floor 0.8: {trace}"
    );
    let mut seen = std::collections::HashSet::new();
    for i in 0..40 {
        let trace: Value = route(format!("split {i}"))
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        seen.insert(trace["select"]["model"].as_str().unwrap().to_owned());
    }
    assert_eq!(
        seen.len(),
        2,
        "weighted 1:1 over 40 requests reaches both: {seen:?}"
    );
}

#[tokio::test]
async fn a_reloaded_policy_serves_new_requests() {
    let s = stack("", DEFAULT_UPSTREAM).await;
    let r = s.chat("auto", "hello there", false).await;
    assert_eq!(header(&r, "x-switchyard-route"), "default");
    let old = s.gateway.runtime();
    let mut config = old.policy.config.source.clone().unwrap().text;
    config = config.replace("  - name: coding\n    priority: 5\n    when: {keyword: code}", "  - name: coding\n    priority: 5\n    when: {any: [{keyword: code}, {not: {keyword: code}}]}");
    let policy =
        switchyard_policy::Policy::compile(switchyard_policy::parse_config(&config).unwrap())
            .unwrap();
    let fixed = s.gateway.live.reload(policy).unwrap();
    assert!(fixed.is_empty(), "{fixed:?}");
    let r = s.chat("auto", "hello there", false).await;
    assert_eq!(
        header(&r, "x-switchyard-route"),
        "coding",
        "every request now codes"
    );
    // A runtime taken before the reload, as a request in progress holds it, still has
    // the old policy; it is dropped once nothing holds it.
    assert_eq!(old.policy.routes().len(), 4);
    assert!(!std::sync::Arc::ptr_eq(&old, &s.gateway.runtime()));
}

/// Their projections, converted by the importer and served: `/v1/route` takes the
/// routes their bands and tiers say, and the trace shows each score and band.
#[tokio::test]
async fn imported_projections_route_through_the_served_policy() {
    let source = include_str!("../../policy/tests/fixtures/vllm-sr/projections.dsl");
    let imported = switchyard_policy::import::import_vllm_sr(source).unwrap();
    let mut dsl = imported.dsl;
    for (pool, model) in [
        ("small", "local/small"),
        ("medium", "cloud/medium"),
        ("large", "cloud/large"),
    ] {
        dsl.push_str(&format!(
            "POOL {pool} {{ model: \"{model}\", context_window: 8K, endpoints: [{{ url: \"http://127.0.0.1:9\" }}] }}\n"
        ));
    }
    let policy =
        switchyard_policy::Policy::compile(switchyard_policy::dsl::parse_dsl(&dsl).unwrap())
            .unwrap_or_else(|e| panic!("{e}\n{dsl}"));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let g = switchyard_gateway::Gateway::start(
        listener,
        switchyard_gateway::Runtime::new(policy).unwrap(),
    )
    .unwrap();
    let base = g.url();
    let route = |prompt: &'static str| harness::route_trace(&base, "auto", prompt);
    for (prompt, expected) in [
        (
            "keep this local: find the root cause of the api key leak",
            "escalated_private",
        ),
        ("my password is in this file", "local_privacy"),
        (
            "refactor this module, then find the root cause of the stack trace",
            "hard_code",
        ),
        ("explain the trade-offs of threads and async", "reasoning"),
        ("refactor this function", "medium_general"),
        ("what is the capital of France, briefly", "simple_general"),
    ] {
        let trace = route(prompt).await;
        assert_eq!(trace["decide"]["route"], expected, "{prompt}: {trace}");
    }
    let trace = route("explain the trade-offs of threads and async").await;
    let signals = trace["characterize"]["signals"].as_array().unwrap();
    let find = |name: &str| {
        signals
            .iter()
            .find(|s| s["signal"] == name)
            .unwrap_or_else(|| panic!("{name} in {trace}"))
    };
    // -0.1 (short) + 0.45 (reasoning, sure) = 0.35: medium, 0.05 from its upper edge.
    let score = find("projection(\"difficulty_score\")");
    assert!(
        (score["value"].as_f64().unwrap() - 0.35).abs() < 1e-9,
        "{score}"
    );
    let band = find("projection(\"difficulty_band\")");
    assert_eq!(band["label"], "medium");
    let calibrated = 1.0 / (1.0 + (-8.0f64 * 0.05).exp());
    assert!(
        (band["confidence"].as_f64().unwrap() - calibrated).abs() < 1e-9,
        "{band}"
    );
    assert_eq!(
        find("projection(\"difficulty_tags__reasoning_heavy\")")["label"],
        "reasoning_heavy"
    );
}

/// Named policies: a recipe's alias picks its routes and default; `/v1/models` lists
/// its aliases; a misspelt alias gets a suggestion.
#[tokio::test]
async fn a_recipe_alias_picks_its_own_routes_and_default() {
    let g = harness::gateway(
        "
models: [{name: small}, {name: big}]
pools:
  - {name: s, model: small, context_window: 8K, endpoints: [{url: 'http://127.0.0.1:9'}]}
  - {name: b, model: big, context_window: 8K, endpoints: [{url: 'http://127.0.0.1:8'}]}
signals:
  keyword:
    - {name: code, keywords: [rust]}
routes:
  - {name: coding, when: {keyword: code}, models: [small]}
  - {name: quality_code, recipe: quality, when: {keyword: code}, models: [big]}
default_route: {models: [small]}
recipes:
  - name: quality
    aliases: [vendor/quality-v1]
    default_route: {name: quality_default, models: [big]}
",
    )
    .await;
    let base = g.url();
    let route =
        |model: &'static str, prompt: &'static str| harness::route_trace(&base, model, prompt);
    assert_eq!(route("auto", "rust").await["decide"]["route"], "coding");
    assert_eq!(
        route("vendor/quality-v1", "rust").await["decide"]["route"],
        "quality_code"
    );
    let fallback = route("vendor/quality-v1", "hello").await;
    assert_eq!(fallback["decide"]["route"], "quality_default");
    assert_eq!(fallback["decide"]["recipe"], "quality");
    assert!(route("auto", "rust").await["decide"]["recipe"].is_null());
    assert_eq!(fallback["select"]["model"], "big", "{fallback}");
    // The trace lists the recipe's routes only.
    let names: Vec<&str> = fallback["decide"]["routes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, vec!["quality_code"]);
    let typo = route("vendor/quality-v2", "rust").await;
    assert!(
        typo["error"]["message"]
            .as_str()
            .unwrap()
            .contains("did you mean `vendor/quality-v1`"),
        "{typo}"
    );
    let listed = harness::model_ids(&base).await;
    assert!(
        listed.iter().any(|m| m == "auto") && listed.iter().any(|m| m == "vendor/quality-v1"),
        "{listed:?}"
    );
}
