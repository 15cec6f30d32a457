//! The simulated engine over HTTP: timing from the performance model, usage, limits,
//! metrics and run-time faults.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use serde_json::{Value, json};
use std::time::{Duration, Instant};
use switchyard_engine::{EngineConfig, EngineHandle, Faults};
use switchyard_fleet::GpuKind;

async fn engine(gpu: Option<GpuKind>, window: u32) -> EngineHandle {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let config = EngineConfig {
        model: "sim".into(),
        gpu,
        context_window: window,
        mean_output_tokens: 100,
        ..EngineConfig::default()
    };
    switchyard_engine::serve(listener, config).await.unwrap()
}

/// The value of the first sample of `name` on the engine's `/metrics`.
async fn metric(e: &EngineHandle, name: &str) -> f64 {
    let text = reqwest::get(format!("{}/metrics", e.url()))
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

async fn post(e: &EngineHandle, body: Value) -> reqwest::Response {
    reqwest::Client::new()
        .post(format!("{}/v1/chat/completions", e.url()))
        .json(&body)
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn ttft_follows_chunked_prefill_and_tokens_follow_the_iteration_clock() {
    let e = engine(Some(GpuKind::A10g), 8192).await;
    // ~2,000 prompt tokens at 256 per iteration: 8 iterations of ≥ 12 ms before the
    // first token; then 20 more tokens at ≥ 12 ms each.
    let prompt = "alpha beta gamma delta ".repeat(500);
    let started = Instant::now();
    let mut r = post(
        &e,
        json!({"model": "sim", "stream": true, "max_tokens": 21,
        "messages": [{"role": "user", "content": prompt}]}),
    )
    .await;
    let mut first = None;
    let mut body = Vec::new();
    while let Some(chunk) = r.chunk().await.unwrap() {
        first.get_or_insert_with(|| started.elapsed());
        body.extend_from_slice(&chunk);
    }
    let total = started.elapsed();
    let first = first.unwrap();
    assert!(
        first >= Duration::from_millis(8 * 12),
        "TTFT {first:?} is below the prefill time"
    );
    assert!(
        first < Duration::from_millis(8 * 14 + 150),
        "TTFT {first:?}"
    );
    assert!(
        total - first >= Duration::from_millis(20 * 12),
        "decode took {:?}",
        total - first
    );
    let text = String::from_utf8(body).unwrap();
    assert_eq!(text.matches("\"delta\"").count(), 21);
    assert!(text.contains("\"finish_reason\":\"length\""));
    assert!(text.ends_with("data: [DONE]\n\n"));
}

#[tokio::test]
async fn answers_are_deterministic_with_exact_usage() {
    let e = engine(None, 8192).await;
    let ask = || {
        post(
            &e,
            json!({"model": "sim", "messages": [{"role": "user", "content": "same"}]}),
        )
    };
    let a: Value = ask().await.json().await.unwrap();
    let b: Value = ask().await.json().await.unwrap();
    assert_eq!(
        a["choices"][0]["message"]["content"],
        b["choices"][0]["message"]["content"]
    );
    let text = a["choices"][0]["message"]["content"].as_str().unwrap();
    let words = text.split(' ').count() as u64;
    assert_eq!(a["usage"]["completion_tokens"].as_u64().unwrap(), words);
    assert!((50..=150).contains(&words), "{words}");
    assert_eq!(a["choices"][0]["finish_reason"], "stop");
}

#[tokio::test]
async fn a_request_over_the_context_window_gets_400() {
    let e = engine(None, 1024).await;
    let r = post(
        &e,
        json!({"model": "sim", "max_tokens": 1000,
        "messages": [{"role": "user", "content": "word ".repeat(100)}]}),
    )
    .await;
    assert_eq!(r.status(), 400);
    let body: Value = r.json().await.unwrap();
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("maximum context length is 1024")
    );
}

#[tokio::test]
async fn metrics_show_running_and_waiting_sequences() {
    // 64K window on an H100: 16 slots. 20 long answers: 16 run, 4 wait.
    let e = engine(Some(GpuKind::H100), 65_536).await;
    let mut tasks = Vec::new();
    for i in 0..20 {
        let e = e.clone();
        tasks.push(tokio::spawn(async move {
            post(
                &e,
                json!({"model": "sim", "max_tokens": 200,
                "messages": [{"role": "user", "content": format!("request {i}")}]}),
            )
            .await
            .bytes()
            .await
            .unwrap()
        }));
    }
    let mut seen = (0.0, 0.0, 0.0);
    for _ in 0..100 {
        tokio::time::sleep(Duration::from_millis(10)).await;
        let now = (
            metric(&e, "vllm:num_requests_running").await,
            metric(&e, "vllm:num_requests_waiting").await,
            metric(&e, "vllm:kv_cache_usage_perc").await,
        );
        if now.0 == 16.0 && now.1 == 4.0 {
            seen = now;
            break;
        }
    }
    assert_eq!(
        (seen.0, seen.1),
        (16.0, 4.0),
        "never saw 16 running and 4 waiting"
    );
    assert!(seen.2 > 0.0 && seen.2 <= 1.0);
    let watts = metric(&e, "switchyard_engine_power_watts").await;
    assert!(
        watts > 300.0 && watts < 600.0,
        "an H100 with a batch draws between idle and nominal: {watts}"
    );
    for t in tasks {
        t.await.unwrap();
    }
    assert_eq!(e.requests(), 20);
}

#[tokio::test]
async fn faults_change_at_run_time_and_are_validated() {
    let e = engine(None, 8192).await;
    let client = reqwest::Client::new();
    let url = format!("{}/admin/faults", e.url());
    let r = client
        .put(&url)
        .json(&json!({"error_rate": 2.0}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let r = client
        .put(&url)
        .json(&json!({"eror_rate": 1.0}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let r = client
        .put(&url)
        .json(&json!({"error_rate": 1.0}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let hi = json!({"model": "sim", "messages": [{"role": "user", "content": "hi"}]});
    assert_eq!(post(&e, hi.clone()).await.status(), 500);
    e.set_faults(Faults::default());
    assert_eq!(post(&e, hi).await.status(), 200);
    let current: Value = client.get(&url).send().await.unwrap().json().await.unwrap();
    assert_eq!(current["error_rate"], 0.0);
}

#[tokio::test]
async fn the_next_turn_of_a_conversation_skips_prefilling_its_cached_prefix() {
    let e = engine(Some(GpuKind::A10g), 8192).await;
    let document = "alpha beta gamma delta ".repeat(600);
    let first: Value = post(
        &e,
        json!({"model": "sim", "max_tokens": 4,
        "messages": [{"role": "user", "content": document}]}),
    )
    .await
    .json()
    .await
    .unwrap();
    let answer = first["choices"][0]["message"]["content"]
        .as_str()
        .unwrap()
        .to_owned();
    let turn = |retained: bool, follow_up: &str| {
        let body = json!({"model": "sim", "max_tokens": 1, "messages": [
            {"role": "user", "content": document},
            {"role": "assistant", "content": answer},
            {"role": "user", "content": follow_up}]});
        let mut request = reqwest::Client::new()
            .post(format!("{}/v1/chat/completions", e.url()))
            .json(&body);
        if retained {
            request = request
                .header("x-kv-retention-priority", "3")
                .header("x-kv-retention-ttl-ms", "60000");
        }
        async move {
            let started = Instant::now();
            let r = request.send().await.unwrap();
            assert_eq!(r.status(), 200);
            r.bytes().await.unwrap();
            started.elapsed()
        }
    };
    let warm = turn(true, "and then?").await;
    // A different first turn: nothing cached.
    let cold_body = json!({"model": "sim", "max_tokens": 1, "messages": [
        {"role": "user", "content": format!("{document} omega")},
        {"role": "assistant", "content": answer},
        {"role": "user", "content": "and then?"}]});
    let started = Instant::now();
    post(&e, cold_body).await.bytes().await.unwrap();
    let cold = started.elapsed();
    // ~2,400 prompt tokens: ten 256-token chunks cold, one warm, at ≥ 12 ms each.
    assert!(cold >= Duration::from_millis(9 * 12), "{cold:?}");
    assert!(warm * 3 < cold, "warm {warm:?} vs cold {cold:?}");
    let hits = hits(&e).await;
    assert!(hits > 2000.0, "{hits}");
}

async fn hits(e: &EngineHandle) -> f64 {
    metric(e, "vllm:prefix_cache_hits_total").await
}

#[tokio::test]
async fn a_retention_hint_keeps_a_prefix_through_cache_pressure() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let e = switchyard_engine::serve(
        listener,
        EngineConfig {
            model: "sim".into(),
            gpu: Some(GpuKind::H100),
            context_window: 8192,
            mean_output_tokens: 4,
            prefix_cache_tokens: Some(5000), // three ~1,550-token conversations
            ..EngineConfig::default()
        },
    )
    .await
    .unwrap();
    let document = |tag: &str| format!("{tag} {}", "alpha beta gamma delta ".repeat(220));
    let first_turn = |tag: &str, hinted: bool| {
        let mut body = json!({"model": "sim", "max_tokens": 2,
            "messages": [{"role": "user", "content": document(tag)}]});
        if hinted {
            body["kv_retention"] = json!({"priority": 5, "ttl_ms": 60_000});
        }
        body
    };
    let mut answers = std::collections::HashMap::new();
    for (tag, hinted) in [
        ("A", true),
        ("B", false),
        ("C", false),
        ("D", false),
        ("E", false),
    ] {
        let v: Value = post(&e, first_turn(tag, hinted))
            .await
            .json()
            .await
            .unwrap();
        answers.insert(
            tag,
            v["choices"][0]["message"]["content"]
                .as_str()
                .unwrap()
                .to_owned(),
        );
    }
    let next_turn = |tag: &str| {
        json!({"model": "sim", "max_tokens": 1, "messages": [
            {"role": "user", "content": document(tag)},
            {"role": "assistant", "content": answers[tag]},
            {"role": "user", "content": "more"}]})
    };
    let before = hits(&e).await;
    post(&e, next_turn("B")).await.bytes().await.unwrap();
    assert_eq!(
        hits(&e).await,
        before,
        "B was evicted (least recently used, no hint)"
    );
    post(&e, next_turn("A")).await.bytes().await.unwrap();
    assert!(hits(&e).await > before + 500.0, "A was kept by its hint");
}

async fn skilled(skill: switchyard_engine::quality::Skill, faults: Faults) -> EngineHandle {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let mut key = std::collections::HashMap::new();
    key.insert(switchyard_engine::answer_key("known right"), true);
    key.insert(switchyard_engine::answer_key("known wrong"), false);
    let config = EngineConfig {
        model: "sim".into(),
        gpu: None,
        mean_output_tokens: 12,
        skill,
        faults,
        answer_key: Some(std::sync::Arc::new(key)),
        ..EngineConfig::default()
    };
    switchyard_engine::serve(listener, config).await.unwrap()
}

fn ask(prompt: &str, extra: Value) -> Value {
    let mut body = json!({"model": "sim", "messages": [{"role": "user", "content": prompt}]});
    body.as_object_mut()
        .unwrap()
        .extend(extra.as_object().unwrap().clone());
    body
}

#[tokio::test]
async fn answers_carry_logprobs_averaging_their_calibrated_confidence() {
    let skill = switchyard_engine::quality::Skill {
        accuracy: 0.5,
        concentration: 2.0,
    };
    let e = skilled(skill, Faults::default()).await;
    let mut right = 0;
    for i in 0..40 {
        let prompt = format!("question {i}");
        let plain: Value = post(&e, ask(&prompt, json!({})))
            .await
            .json()
            .await
            .unwrap();
        assert!(plain["choices"][0].get("logprobs").is_none(), "{plain}");
        let v: Value = post(
            &e,
            ask(&prompt, json!({"logprobs": true, "top_logprobs": 2})),
        )
        .await
        .json()
        .await
        .unwrap();
        let verdict = &v["switchyard_engine"];
        assert_eq!(verdict, &plain["switchyard_engine"], "deterministic");
        let confidence = verdict["confidence"].as_f64().unwrap();
        let tokens = v["choices"][0]["logprobs"]["content"].as_array().unwrap();
        assert_eq!(
            tokens.len() as u64,
            v["usage"]["completion_tokens"].as_u64().unwrap()
        );
        let mean = tokens
            .iter()
            .map(|t| t["logprob"].as_f64().unwrap())
            .sum::<f64>()
            / tokens.len() as f64;
        assert!(
            (mean.exp() - confidence).abs() < 1e-9,
            "{mean} vs {confidence}"
        );
        assert_eq!(tokens[0]["top_logprobs"].as_array().unwrap().len(), 2);
        let text: String = tokens
            .iter()
            .map(|t| t["token"].as_str().unwrap())
            .collect();
        assert_eq!(
            text,
            v["choices"][0]["message"]["content"].as_str().unwrap()
        );
        right += usize::from(verdict["correct"] == true);
    }
    assert!(
        (8..=32).contains(&right),
        "{right} of 40 right at accuracy 0.5"
    );

    // A stream carries each token's logprob, and the verdict on its last chunk.
    let body = post(
        &e,
        ask("question 3", json!({"logprobs": true, "stream": true})),
    )
    .await
    .text()
    .await
    .unwrap();
    let chunks: Vec<Value> = body
        .lines()
        .filter_map(|l| l.strip_prefix("data: "))
        .filter(|d| *d != "[DONE]")
        .map(|d| serde_json::from_str(d).unwrap())
        .collect();
    assert!(
        chunks
            .iter()
            .all(|c| c["choices"][0]["logprobs"]["content"][0]["logprob"].is_f64())
    );
    assert!(chunks.last().unwrap()["switchyard_engine"]["confidence"].is_f64());

    // The answer key decides right and wrong.
    for (prompt, correct) in [("known right", true), ("known wrong", false)] {
        let v: Value = post(&e, ask(prompt, json!({}))).await.json().await.unwrap();
        assert_eq!(v["switchyard_engine"]["correct"], correct, "{prompt}");
    }
}

#[tokio::test]
async fn the_wrong_answers_fault_makes_answers_wrong() {
    let skill = switchyard_engine::quality::Skill {
        accuracy: 0.95,
        concentration: 50.0,
    };
    let e = skilled(skill, Faults::default()).await;
    let count = |e: EngineHandle| async move {
        let mut right = 0;
        for i in 0..30 {
            let v: Value = post(&e, ask(&format!("q{i}"), json!({})))
                .await
                .json()
                .await
                .unwrap();
            right += usize::from(v["switchyard_engine"]["correct"] == true);
        }
        right
    };
    assert!(count(e.clone()).await >= 25);
    e.set_faults(Faults {
        wrong_answers: 1.0,
        ..Faults::default()
    });
    assert_eq!(count(e.clone()).await, 0);
    let v: Value = post(&e, ask("known right", json!({})))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        v["switchyard_engine"]["correct"], false,
        "the fault wins over the key"
    );
    let r = reqwest::Client::new()
        .put(format!("{}/admin/faults", e.url()))
        .json(&json!({"wrong_answers": 1.5}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
}

#[tokio::test]
async fn further_samples_agree_exactly_when_both_are_right() {
    let skill = switchyard_engine::quality::Skill {
        accuracy: 0.6,
        concentration: 2.0,
    };
    let e = skilled(skill, Faults::default()).await;
    let (mut agreed, mut total) = (0, 0);
    for i in 0..60 {
        let v: Value = post(
            &e,
            ask(&format!("sample {i}"), json!({"n": 2, "temperature": 0.8})),
        )
        .await
        .json()
        .await
        .unwrap();
        let choices = v["choices"].as_array().unwrap();
        assert_eq!(choices.len(), 2);
        let text = |c: &Value| c["message"]["content"].as_str().unwrap().to_owned();
        let right = v["switchyard_engine"]["correct"].as_bool().unwrap();
        let second = v["switchyard_engine"]["samples_correct"][0]
            .as_bool()
            .unwrap();
        assert_eq!(
            text(&choices[0]) == text(&choices[1]),
            right && second,
            "{v}"
        );
        let one: Value = post(&e, ask(&format!("sample {i}"), json!({})))
            .await
            .json()
            .await
            .unwrap();
        assert_eq!(
            one["choices"][0], choices[0],
            "the first answer is the single answer"
        );
        assert_eq!(
            v["usage"]["completion_tokens"].as_u64().unwrap(),
            2 * one["usage"]["completion_tokens"].as_u64().unwrap()
        );
        agreed += usize::from(right && second);
        total += 1;
    }
    // Both right with probability E[c²] = 0.6·0.6 + Var(c), between 0.36 and 0.6.
    assert!((10..=45).contains(&agreed), "{agreed} of {total}");
    // A wrong first answer agrees with nothing; at temperature 0 samples repeat it.
    let v: Value = post(&e, ask("known wrong", json!({"n": 3, "temperature": 1})))
        .await
        .json()
        .await
        .unwrap();
    let texts: Vec<&str> = v["choices"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["message"]["content"].as_str().unwrap())
        .collect();
    assert!(texts[1] != texts[0] && texts[2] != texts[0], "{texts:?}");
    let v: Value = post(&e, ask("known wrong", json!({"n": 2, "temperature": 0})))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(v["choices"][0]["message"], v["choices"][1]["message"]);
    let r = post(&e, ask("q", json!({"n": 2, "stream": true}))).await;
    assert_eq!(r.status(), 400);
}
