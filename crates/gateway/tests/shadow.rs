//! Shadow evaluation through the gateway: a sampled share of a route's answers is
//! also asked of a second model in the background, never delaying the client, bounded
//! in concurrency and budget; exact match or a judge model compares the answers, which
//! moves Elo ratings and tallies savings against the shadow.

#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod harness;

use serde_json::{Value, json};
use std::time::{Duration, Instant};
use switchyard_engine::{EngineConfig, EngineHandle, Faults};

async fn engine(model: &str, added_latency_ms: u64) -> EngineHandle {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let config = EngineConfig {
        model: model.to_owned(),
        gpu: None,
        mean_output_tokens: 12,
        faults: Faults {
            added_latency_ms,
            ..Faults::default()
        },
        ..EngineConfig::default()
    };
    switchyard_engine::serve(listener, config).await.unwrap()
}

async fn ask(base: &str, prompt: &str) -> reqwest::Response {
    reqwest::Client::new()
        .post(format!("{base}/v1/chat/completions"))
        .json(&json!({"model": "auto", "messages": [{"role": "user", "content": prompt}]}))
        .send()
        .await
        .unwrap()
}

async fn outcomes(base: &str) -> Value {
    reqwest::get(format!("{base}/v1/outcomes"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

/// Polls `/v1/outcomes` until the shadow tally satisfies `done` (5 s at most).
async fn tally_when(base: &str, done: impl Fn(&Value) -> bool) -> Value {
    let started = Instant::now();
    loop {
        let v = outcomes(base).await;
        if let Some(t) = v["shadow"].as_array().and_then(|a| a.first())
            && done(t)
        {
            return t.clone();
        }
        assert!(started.elapsed() < Duration::from_secs(5), "{v}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_shadow_never_delays_the_client_and_its_concurrency_is_bounded() {
    let small = engine("small", 0).await;
    let big = engine("big", 1500).await;
    let g = harness::gateway(&format!(
        "server: {{listen: '127.0.0.1:0'}}
models: [{{name: small}}, {{name: big}}]
pools:
  - {{name: ps, model: small, context_window: 8K, endpoints: [{{url: '{}'}}]}}
  - {{name: pb, model: big, context_window: 8K, endpoints: [{{url: '{}'}}]}}
default_route:
  name: shadowed
  models: [small]
  shadow: {{model: big, share: 1, max_concurrent: 1}}
",
        small.url(),
        big.url()
    ))
    .await;
    let base = g.url();
    for i in 0..3 {
        let started = Instant::now();
        let r = ask(&base, &format!("question {i}")).await;
        assert_eq!(r.status(), 200);
        assert_eq!(harness::header(&r, "x-switchyard-model"), "small");
        r.bytes().await.unwrap();
        assert!(
            started.elapsed() < Duration::from_millis(1000),
            "the client waited {:?} for a 1.5 s shadow",
            started.elapsed()
        );
    }
    // One shadow in flight at a time: the two that came while it ran were skipped.
    let t = tally_when(&base, |t| t["shadowed"] == 1).await;
    assert_eq!(t["skipped_busy"], 2, "{t}");
    assert_eq!(big.requests(), 1);
    // Simulated engines give the same text for the same prompt: exact match agrees,
    // and a tie between equal ratings leaves them where they were.
    assert_eq!(t["agreed"], 1, "{t}");
    let v = outcomes(&base).await;
    let arm = |m: &str| {
        v["arms"]
            .as_array()
            .unwrap()
            .iter()
            .find(|a| a["route"] == "*" && a["model"] == m)
            .cloned()
            .unwrap_or_else(|| panic!("no Elo arm for {m} in {v}"))
    };
    assert_eq!(arm("big")["games"], 1);
    assert_eq!(arm("small")["elo"], 0.0);
}

/// Answers that name their model, and a judge that prefers the answer from `big`.
fn answer(request: &Value) -> String {
    let model = request["model"].as_str().unwrap_or_default();
    if model == "judge" {
        let prompt = request["messages"][1]["content"]
            .as_str()
            .unwrap_or_default();
        let a = prompt.split("Answer A:").nth(1).unwrap_or_default();
        let a = a.split("Answer B:").next().unwrap_or_default();
        if a.contains("from big") { "A" } else { "B" }.to_owned()
    } else {
        format!("an answer from {model}")
    }
}

fn judged_config(upstream: &str, log: &std::path::Path, budget: &str) -> String {
    format!(
        "server: {{listen: '127.0.0.1:0', decision_log: '{}'}}
models:
  - {{name: small, price: {{input: 0.1, output: 0.2}}}}
  - {{name: big, price: {{input: 3, output: 15}}}}
  - {{name: judge}}
pools:
  - {{name: ps, model: small, context_window: 8K, endpoints: [{{url: '{upstream}'}}]}}
  - {{name: pb, model: big, context_window: 8K, endpoints: [{{url: '{upstream}'}}]}}
  - {{name: pj, model: judge, context_window: 8K, endpoints: [{{url: '{upstream}'}}]}}
default_route:
  name: judged
  models: [small]
  shadow: {{model: big, share: 1, judge: {{model: judge}}{budget}}}
",
        log.display()
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_judge_prefers_answers_moves_elo_and_tallies_savings() {
    let upstream = harness::scripted(answer).await;
    let log = harness::temp_file("shadow", "judged.jsonl");
    let g = harness::gateway(&judged_config(&upstream, &log, "")).await;
    let base = g.url();
    // Request ids decide which answer the judge sees first: both orders occur in 8.
    for i in 0..8 {
        assert_eq!(ask(&base, &format!("q{i}")).await.status(), 200);
    }
    let t = tally_when(&base, |t| t["shadowed"] == 8).await;
    assert_eq!(
        t["shadow_preferred"], 8,
        "the judge saw through the order: {t}"
    );
    assert_eq!(t["model_preferred"], 0);
    // Each pair: big 1000 × $3 + 100 × $15 per million = $0.0045; small $0.00012.
    let savings = t["savings_dollars"].as_f64().unwrap();
    assert!((savings - 8.0 * (0.0045 - 0.00012)).abs() < 1e-9, "{t}");
    let v = outcomes(&base).await;
    let elo = |m: &str| {
        v["arms"]
            .as_array()
            .unwrap()
            .iter()
            .find(|a| a["route"] == "*" && a["model"] == m)
            .unwrap()["elo"]
            .as_f64()
            .unwrap()
    };
    assert!(elo("big") > 50.0 && elo("small") < -50.0, "{v}");

    tokio::time::sleep(Duration::from_millis(300)).await;
    let lines: Vec<Value> = std::fs::read_to_string(&log)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .filter(|l: &Value| l["kind"] == "shadow")
        .collect();
    assert_eq!(lines.len(), 8);
    assert_eq!(lines[0]["verdict"], "shadow_preferred");
    assert_eq!(lines[0]["judge"], "judge");
    assert!(lines[0]["request_id"].as_str().unwrap().starts_with("sy-"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_hourly_budget_stops_shadowing_once_spent() {
    let upstream = harness::scripted(answer).await;
    let log = harness::temp_file("shadow", "budget.jsonl");
    // One shadow costs $0.0045: a budget of $0.005 allows two.
    let g = harness::gateway(&judged_config(
        &upstream,
        &log,
        ", budget_per_hour: 0.005, max_concurrent: 1",
    ))
    .await;
    let base = g.url();
    for i in 0..4 {
        assert_eq!(ask(&base, &format!("q{i}")).await.status(), 200);
        // One at a time, so each is spent before the next is admitted.
        tally_when(&base, |t| {
            t["shadowed"].as_u64().unwrap() + t["skipped_budget"].as_u64().unwrap() == i + 1
        })
        .await;
    }
    let t = tally_when(&base, |_| true).await;
    assert_eq!(
        (t["shadowed"].as_u64(), t["skipped_budget"].as_u64()),
        (Some(2), Some(2)),
        "{t}"
    );
}

#[test]
fn shadow_settings_are_checked() {
    for (shadow, why) in [
        ("{model: bigg}", "did you mean `big`?"),
        ("{model: big, share: 2}", "share 2"),
        ("{model: big, max_concurrent: 0}", "max_concurrent"),
        ("{model: big, judge: {model: nobody}}", "judge: `nobody`"),
        ("{model: free, budget_per_hour: 1}", "needs a price"),
        ("{model: big, judge: vibes}", "vibes"),
    ] {
        let text = format!(
            "models: [{{name: small}}, {{name: big, price: {{input: 1, output: 1}}}}, {{name: free}}]
pools:
  - {{name: ps, model: small, context_window: 8K, endpoints: [{{url: 'http://127.0.0.1:1'}}]}}
  - {{name: pb, model: big, context_window: 8K, endpoints: [{{url: 'http://127.0.0.1:1'}}]}}
  - {{name: pf, model: free, context_window: 8K, endpoints: [{{url: 'http://127.0.0.1:1'}}]}}
default_route: {{models: [small], shadow: {shadow}}}
"
        );
        let err = switchyard_policy::parse_config(&text)
            .map_err(|e| e.to_string())
            .and_then(|c| switchyard_policy::Policy::compile(c).map_err(|e| e.to_string()))
            .map(|_| ())
            .unwrap_err();
        assert!(err.contains(why), "{shadow}: {err}");
    }
}
