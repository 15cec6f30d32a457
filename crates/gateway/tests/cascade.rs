//! `cascade` through the gateway with simulated engines whose answers carry
//! calibrated logprobs: confident answers from the cheap model stand, the others go on
//! to the strong one; streams are never escalated unless the route buffers them; the
//! cheap step is skipped when it is slow and the strong pool idle, and escalation is
//! skipped when the strong pool is saturated.

#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod harness;

use serde_json::{Value, json};
use std::time::Duration;
use switchyard_engine::quality::Skill;
use switchyard_engine::{EngineConfig, EngineHandle, Faults};

async fn engine(model: &str, accuracy: f64, added_latency_ms: u64) -> EngineHandle {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let config = EngineConfig {
        model: model.to_owned(),
        gpu: None,
        mean_output_tokens: 16,
        skill: Skill {
            accuracy,
            concentration: 2.0,
        },
        faults: Faults {
            added_latency_ms,
            ..Faults::default()
        },
        ..EngineConfig::default()
    };
    switchyard_engine::serve(listener, config).await.unwrap()
}

fn config(
    small: &EngineHandle,
    big: &EngineHandle,
    log: &std::path::Path,
    cascade: &str,
) -> String {
    format!(
        "server: {{listen: '127.0.0.1:0', decision_log: '{}'}}
models:
  - {{name: small, price: {{input: 0.1, output: 0.2}}}}
  - {{name: big, price: {{input: 3.0, output: 15.0}}}}
pools:
  - {{name: ps, model: small, context_window: 8K, endpoints: [{{url: '{}'}}]}}
  - {{name: pb, model: big, context_window: 8K, endpoints: [{{url: '{}'}}]}}
default_route: {{name: {route}, models: [big, small], algorithm: {{type: cascade, {cascade}}}}}
",
        log.display(),
        small.url(),
        big.url(),
        route = log.file_stem().and_then(|s| s.to_str()).unwrap_or("main"),
    )
}

async fn chat(base: &str, prompt: &str, extra: Value) -> reqwest::Response {
    let mut body = json!({"model": "auto", "messages": [{"role": "user", "content": prompt}]});
    body.as_object_mut()
        .unwrap()
        .extend(extra.as_object().unwrap().clone());
    reqwest::Client::new()
        .post(format!("{base}/v1/chat/completions"))
        .json(&body)
        .send()
        .await
        .unwrap()
}

/// The small engine's own confidence in its answer to `prompt`.
async fn confidence(small: &EngineHandle, prompt: &str) -> f64 {
    let v: Value = reqwest::Client::new()
        .post(format!("{}/v1/chat/completions", small.url()))
        .json(&json!({"model": "small", "messages": [{"role": "user", "content": prompt}]}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    v["switchyard_engine"]["confidence"].as_f64().unwrap()
}

/// Prompts the small engine is sure of (≥ 0.6) and unsure of.
async fn split(small: &EngineHandle, n: usize) -> (Vec<String>, Vec<String>) {
    let (mut sure, mut unsure) = (Vec::new(), Vec::new());
    for i in 0..200 {
        let prompt = format!("question number {i}");
        if confidence(small, &prompt).await >= 0.6 {
            sure.push(prompt);
        } else {
            unsure.push(prompt);
        }
        if sure.len() >= n && unsure.len() >= n {
            break;
        }
    }
    sure.truncate(n);
    unsure.truncate(n);
    (sure, unsure)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn low_confidence_answers_escalate_and_confident_ones_stand() {
    let small = engine("small", 0.5, 0).await;
    let big = engine("big", 0.9, 0).await;
    let log = harness::temp_file("cascade", "escalate.jsonl");
    let g = harness::gateway(&config(&small, &big, &log, "min_confidence: 0.6")).await;
    let base = g.url();
    let (sure, unsure) = split(&small, 6).await;
    assert_eq!(
        (sure.len(), unsure.len()),
        (6, 6),
        "the skill gives both kinds"
    );
    let (small_before, big_before) = (small.requests(), big.requests());

    for prompt in &sure {
        let r = chat(&base, prompt, json!({})).await;
        assert_eq!(r.status(), 200);
        assert_eq!(harness::header(&r, "x-switchyard-model"), "small");
        let steps = harness::header(&r, "x-switchyard-cascade");
        assert!(steps.starts_with("small accepted 0."), "{steps}");
        let v: Value = r.json().await.unwrap();
        assert_eq!(v["model"], "small");
        assert!(
            v["choices"][0].get("logprobs").is_none(),
            "the gateway's own logprobs are not passed on: {v}"
        );
    }
    for prompt in &unsure {
        let r = chat(&base, prompt, json!({})).await;
        assert_eq!(r.status(), 200);
        assert_eq!(harness::header(&r, "x-switchyard-model"), "big");
        let steps = harness::header(&r, "x-switchyard-cascade");
        assert!(steps.starts_with("small escalated 0."), "{steps}");
        assert!(steps.ends_with(", big answered"), "{steps}");
        let v: Value = r.json().await.unwrap();
        assert_eq!(v["model"], "big", "the strong model's answer: {v}");
    }
    assert_eq!(
        small.requests() - small_before,
        12,
        "every request starts cheap"
    );
    assert_eq!(
        big.requests() - big_before,
        6,
        "only the unsure ones escalate"
    );

    // A client that asks for logprobs gets them.
    let r = chat(&base, &sure[0], json!({"logprobs": true})).await;
    let v: Value = r.json().await.unwrap();
    assert!(v["choices"][0]["logprobs"]["content"].is_array(), "{v}");

    // The decision log has every checked step.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let lines: Vec<Value> = std::fs::read_to_string(&log)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let escalated: Vec<&Value> = lines
        .iter()
        .filter(|l| l["cascade"][0]["verdict"] == "escalated")
        .collect();
    assert_eq!(escalated.len(), 6, "{lines:?}");
    let step = &escalated[0]["cascade"][0];
    assert_eq!(step["model"], "small");
    assert!(step["confidence"].as_f64().unwrap() < 0.6);
    assert!(step["completion_tokens"].as_u64().unwrap() > 0);
    assert_eq!(escalated[0]["model"], "big");
    let counted = harness::metric_sum(
        &base,
        "switchyard_cascade_steps_total",
        &[("route", "escalate"), ("verdict", "escalated")],
    )
    .await;
    assert_eq!(counted, 6.0);
}

/// The `data:` payloads of an SSE body, `[DONE]` left out.
fn events(body: &str) -> Vec<Value> {
    body.lines()
        .filter_map(|l| l.strip_prefix("data: "))
        .filter(|d| *d != "[DONE]")
        .map(|d| serde_json::from_str(d).unwrap())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streams_escalate_only_when_the_route_buffers_them() {
    let small = engine("small", 0.5, 0).await;
    let big = engine("big", 0.9, 0).await;
    let (sure, unsure) = split(&small, 1).await;
    let stream = json!({"stream": true, "stream_options": {"include_usage": true}});

    // Not buffered: the cheap model's stream reaches the client as it is made.
    let log = harness::temp_file("cascade", "stream.jsonl");
    let g = harness::gateway(&config(&small, &big, &log, "min_confidence: 0.6")).await;
    let r = chat(&g.url(), &unsure[0], stream.clone()).await;
    assert_eq!(harness::header(&r, "x-switchyard-model"), "small");
    assert_eq!(
        harness::header(&r, "x-switchyard-cascade"),
        "small unchecked"
    );
    let body = r.text().await.unwrap();
    assert!(body.ends_with("data: [DONE]\n\n"), "{body}");
    let big_before = big.requests();

    // Buffered: the cheap answer is checked whole first.
    let log = harness::temp_file("cascade", "buffered.jsonl");
    let buffered = config(
        &small,
        &big,
        &log,
        "min_confidence: 0.6, buffer_streams: true",
    );
    let g = harness::gateway(&buffered).await;
    let r = chat(&g.url(), &unsure[0], stream.clone()).await;
    assert_eq!(harness::header(&r, "x-switchyard-model"), "big");
    let body = r.text().await.unwrap();
    let chunks = events(&body);
    assert!(chunks.iter().all(|c| c["model"] == "big"), "{body}");
    assert!(
        chunks.len() > 3,
        "the strong model streams token by token: {body}"
    );
    assert_eq!(big.requests() - big_before, 1);

    let r = chat(&g.url(), &sure[0], stream).await;
    assert_eq!(harness::header(&r, "x-switchyard-model"), "small");
    assert!(harness::header(&r, "x-switchyard-cascade").starts_with("small accepted"));
    let body = r.text().await.unwrap();
    assert!(body.ends_with("data: [DONE]\n\n"), "{body}");
    let chunks = events(&body);
    let text: String = chunks
        .iter()
        .filter_map(|c| c["choices"][0]["delta"]["content"].as_str())
        .collect();
    let whole: Value = reqwest::Client::new()
        .post(format!("{}/v1/chat/completions", small.url()))
        .json(&json!({"model": "small", "messages": [{"role": "user", "content": sure[0]}]}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        text,
        whole["choices"][0]["message"]["content"].as_str().unwrap()
    );
    assert_eq!(chunks.last().unwrap()["usage"], whole["usage"], "{body}");
    assert!(
        chunks
            .iter()
            .any(|c| c["choices"][0]["finish_reason"] == "stop"),
        "{body}"
    );
    assert!(
        chunks
            .iter()
            .all(|c| c["choices"][0].get("logprobs").is_none()),
        "{body}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_saturated_strong_pool_keeps_the_cheap_answer() {
    let small = engine("small", 0.5, 0).await;
    let big = engine("big", 0.9, 800).await;
    let (_, unsure) = split(&small, 2).await;
    let log = harness::temp_file("cascade", "saturated.jsonl");
    let g = harness::gateway(&config(
        &small,
        &big,
        &log,
        "min_confidence: 0.6, saturated_at: 1",
    ))
    .await;
    let base = g.url();
    // The first unsure request escalates and holds the strong pool's only endpoint.
    let first = tokio::spawn({
        let (base, prompt) = (base.clone(), unsure[0].clone());
        async move { chat(&base, &prompt, json!({})).await }
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    let r = chat(&base, &unsure[1], json!({})).await;
    assert_eq!(r.status(), 200);
    assert_eq!(harness::header(&r, "x-switchyard-model"), "small");
    assert!(
        harness::header(&r, "x-switchyard-cascade").starts_with("small kept 0."),
        "{}",
        harness::header(&r, "x-switchyard-cascade")
    );
    let r = first.await.unwrap();
    assert_eq!(harness::header(&r, "x-switchyard-model"), "big");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_cheap_pool_is_skipped_while_the_strong_pool_is_idle() {
    let small = engine("small", 0.5, 300).await;
    let big = engine("big", 0.9, 0).await;
    let log = harness::temp_file("cascade", "skip.jsonl");
    let g = harness::gateway(&config(
        &small,
        &big,
        &log,
        "min_confidence: 0.01, ttft_budget_ms: 100",
    ))
    .await;
    let base = g.url();
    // Nothing known of the cheap pool yet: it answers first (and is slow).
    let r = chat(&base, "first question", json!({})).await;
    assert_eq!(harness::header(&r, "x-switchyard-model"), "small");
    // Now its predicted time to first token breaks the budget: straight to big.
    let trace = harness::route_trace(&base, "auto", "second question").await;
    let reason = trace["select"]["reason"].as_str().unwrap();
    assert!(reason.starts_with("cascade skipped"), "{trace}");
    assert_eq!(trace["select"]["model"], "big");
    let r = chat(&base, "second question", json!({})).await;
    assert_eq!(harness::header(&r, "x-switchyard-model"), "big");
    assert_eq!(harness::header(&r, "x-switchyard-cascade"), "");
}

/// Two samples of `prompt` from the small engine: whether they agree.
async fn samples_agree(small: &EngineHandle, prompt: &str) -> bool {
    let v: Value = reqwest::Client::new()
        .post(format!("{}/v1/chat/completions", small.url()))
        .json(&json!({"model": "small", "n": 2, "temperature": 1.0,
                      "messages": [{"role": "user", "content": prompt}]}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    v["choices"][0]["message"] == v["choices"][1]["message"]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn self_consistency_escalates_when_two_samples_disagree() {
    let small = engine("small", 0.5, 0).await;
    let big = engine("big", 0.9, 0).await;
    let log = harness::temp_file("cascade", "consistent.jsonl");
    let g = harness::gateway(&config(&small, &big, &log, "check: self_consistency")).await;
    let (mut agreeing, mut disagreeing) = (0, 0);
    for i in 0..16 {
        let prompt = format!("consistency {i}");
        let agree = samples_agree(&small, &prompt).await;
        let r = chat(&g.url(), &prompt, json!({})).await;
        let steps = harness::header(&r, "x-switchyard-cascade");
        let model = harness::header(&r, "x-switchyard-model");
        let v: Value = r.json().await.unwrap();
        if agree {
            agreeing += 1;
            assert_eq!(model, "small", "{steps}");
            assert!(steps.starts_with("small accepted 1.000"), "{steps}");
            assert_eq!(v["choices"].as_array().unwrap().len(), 1, "one answer: {v}");
        } else {
            disagreeing += 1;
            assert_eq!(model, "big", "{steps}");
            assert!(steps.starts_with("small escalated 0.000"), "{steps}");
        }
    }
    assert!(agreeing > 0 && disagreeing > 0, "{agreeing} {disagreeing}");
}

/// Answers that name their model, and a verifier that says YES only to questions
/// marked easy.
fn verifying(request: &Value) -> String {
    let model = request["model"].as_str().unwrap_or_default();
    if model == "checker" {
        let prompt = request["messages"][1]["content"]
            .as_str()
            .unwrap_or_default();
        if prompt.contains("easy") { "YES" } else { "NO" }.to_owned()
    } else {
        format!("an answer from {model}")
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_verifier_model_decides_the_escalation() {
    let upstream = harness::scripted(verifying).await;
    let g = harness::gateway(&format!(
        "server: {{listen: '127.0.0.1:0'}}
models:
  - {{name: small, price: {{input: 0.1, output: 0.2}}}}
  - {{name: big, price: {{input: 3.0, output: 15.0}}}}
  - {{name: checker}}
pools:
  - {{name: ps, model: small, context_window: 8K, endpoints: [{{url: '{upstream}'}}]}}
  - {{name: pb, model: big, context_window: 8K, endpoints: [{{url: '{upstream}'}}]}}
  - {{name: pc, model: checker, context_window: 8K, endpoints: [{{url: '{upstream}'}}]}}
default_route: {{name: verified, models: [small, big], algorithm: {{type: cascade, check: {{verifier: checker}}}}}}
"
    ))
    .await;
    let r = chat(&g.url(), "an easy one", json!({})).await;
    assert_eq!(harness::header(&r, "x-switchyard-model"), "small");
    assert_eq!(
        harness::header(&r, "x-switchyard-cascade"),
        "small accepted 1.000"
    );
    let r = chat(&g.url(), "a hard one", json!({})).await;
    assert_eq!(harness::header(&r, "x-switchyard-model"), "big");
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["choices"][0]["message"]["content"], "an answer from big");
    // A verifier that is not a configured model is refused with a suggestion.
    let text = "models: [{name: small}, {name: big}, {name: checker}]
pools:
  - {name: ps, model: small, context_window: 8K, endpoints: [{url: 'http://127.0.0.1:1'}]}
  - {name: pb, model: big, context_window: 8K, endpoints: [{url: 'http://127.0.0.1:1'}]}
default_route: {models: [small, big], algorithm: {type: cascade, check: {verifier: chekcer}}}
";
    let err = switchyard_policy::Policy::compile(switchyard_policy::parse_config(text).unwrap())
        .unwrap_err()
        .to_string();
    assert!(err.contains("did you mean `checker`?"), "{err}");
}
