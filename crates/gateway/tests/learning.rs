//! Outcomes through the gateway: feedback joined to the answer it scores (once, and
//! only by the caller who got it), complaints in a session's next turn, truncation,
//! the decision log's outcome lines, and `thompson` selection learning from them.

#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod harness;

use serde_json::{Value, json};

fn config(upstream: &str, log: &std::path::Path, capacity: usize) -> String {
    format!(
        "server: {{listen: '127.0.0.1:0', decision_log: '{}'}}
outcomes: {{capacity: {capacity}}}
models:
  - {{name: a}}
  - {{name: b}}
pools:
  - {{name: pa, model: a, context_window: 8K, endpoints: [{{url: '{upstream}'}}]}}
  - {{name: pb, model: b, context_window: 8K, endpoints: [{{url: '{upstream}'}}]}}
signals:
  user_feedback: [{{name: complaint}}]
routes:
  - name: again
    priority: 10
    when: {{user_feedback: complaint}}
    models: [b]
default_route: {{name: main, models: [a, b], algorithm: {{type: thompson, bucket: none, seed: 3}}}}
",
        log.display()
    )
}

struct Client {
    base: String,
    http: reqwest::Client,
}

impl Client {
    async fn ask(&self, key: &str, messages: Value, extra: Value) -> reqwest::Response {
        let mut body = json!({"model": "auto", "messages": messages});
        if let (Some(body), Some(extra)) = (body.as_object_mut(), extra.as_object()) {
            body.extend(extra.clone());
        }
        self.http
            .post(format!("{}/v1/chat/completions", self.base))
            .header("authorization", format!("Bearer {key}"))
            .json(&body)
            .send()
            .await
            .unwrap()
    }

    async fn rate(&self, key: Option<&str>, body: Value) -> (u16, Value) {
        let mut r = self
            .http
            .post(format!("{}/v1/feedback", self.base))
            .json(&body);
        if let Some(key) = key {
            r = r.header("authorization", format!("Bearer {key}"));
        }
        let r = r.send().await.unwrap();
        (r.status().as_u16(), r.json().await.unwrap())
    }

    async fn arms(&self) -> Vec<Value> {
        let v: Value = reqwest::get(format!("{}/v1/outcomes", self.base))
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        v["arms"].as_array().cloned().unwrap_or_default()
    }
}

fn arm<'a>(arms: &'a [Value], route: &str, model: &str) -> &'a Value {
    arms.iter()
        .find(|a| a["route"] == route && a["model"] == model)
        .unwrap_or_else(|| panic!("no arm {route}/{model} in {arms:?}"))
}

fn hi() -> Value {
    json!([{"role": "user", "content": "What is the capital of France?"}])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn feedback_scores_the_answer_once_and_only_for_its_caller() {
    let (upstream, _) = harness::echo().await;
    let log = harness::temp_file("learning", "feedback.jsonl");
    let g = harness::gateway(&config(&upstream, &log, 1000)).await;
    let c = Client {
        base: g.url(),
        http: reqwest::Client::new(),
    };
    let r = c.ask("ann", hi(), json!({})).await;
    assert_eq!(r.status(), 200);
    let id = harness::header(&r, "x-request-id");
    let model = harness::header(&r, "x-switchyard-model");
    let before = arm(&c.arms().await, "main", &model).clone();
    assert_eq!(before["good"], 1.0, "a whole answer counts 1 until rated");

    // Another credential, or none, finds nothing; an unknown id neither.
    for (key, rid) in [
        (Some("bob"), id.as_str()),
        (None, id.as_str()),
        (Some("ann"), "sy-nope"),
    ] {
        let (status, body) = c
            .rate(key, json!({"request_id": rid, "thumbs": "down"}))
            .await;
        assert_eq!(status, 404, "{body}");
        assert_eq!(body["error"]["param"], "request_id", "{body}");
    }
    let (status, body) = c
        .rate(
            Some("ann"),
            json!({"request_id": id, "thumbs": "down", "label": "wrong", "comment": "Lyon?"}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["recorded"], true);
    assert_eq!(body["model"], model.as_str());
    assert_eq!(body["route"], "main");
    assert_eq!(
        (body["score"].as_f64(), body["replaced"].as_f64()),
        (Some(0.0), Some(1.0))
    );
    let after = arm(&c.arms().await, "main", &model).clone();
    assert_eq!(
        (after["good"].as_f64(), after["bad"].as_f64()),
        (Some(0.0), Some(1.0))
    );
    // The first feedback is kept.
    let (status, body) = c
        .rate(Some("ann"), json!({"request_id": id, "score": 1}))
        .await;
    assert_eq!(
        (status, &body["recorded"], &body["score"]),
        (200, &json!(false), &json!(0.0))
    );
    assert_eq!(arm(&c.arms().await, "main", &model), &after);

    // Malformed feedback names its field; a large body is refused.
    for (body, param) in [
        (json!({"request_id": id, "score": 2}), "score"),
        (json!({"request_id": id}), "score"),
        (json!({"request_id": id, "thumbs": "meh"}), "thumbs"),
        (json!({"request_id": id, "score": 1, "stars": 5}), "stars"),
    ] {
        let (status, answer) = c.rate(Some("ann"), body).await;
        assert_eq!(status, 400, "{answer}");
        assert_eq!(answer["error"]["param"], param, "{answer}");
    }
    let big = json!({"request_id": id, "score": 1, "comment": "x".repeat(20_000)});
    let (status, _) = c.rate(Some("ann"), big).await;
    assert_eq!(status, 413);

    // A client without a credential is known by its address: its own answers it can
    // rate (the test's clients all connect from 127.0.0.1).
    let anonymous = c
        .http
        .post(format!("{}/v1/chat/completions", c.base))
        .json(&json!({"model": "auto", "messages": hi()}))
        .send()
        .await
        .unwrap();
    let anonymous_id = harness::header(&anonymous, "x-request-id");
    let (status, body) = c
        .rate(None, json!({"request_id": anonymous_id, "score": 1}))
        .await;
    assert_eq!((status, &body["recorded"]), (200, &json!(true)), "{body}");
    let (status, _) = c
        .rate(Some("ann"), json!({"request_id": anonymous_id, "score": 1}))
        .await;
    assert_eq!(
        status, 404,
        "a credential is another caller than an address"
    );

    // An answer cut by its max_tokens counts half (the upstream reports 3 tokens).
    let r = c.ask("ann", hi(), json!({"max_tokens": 3})).await;
    let cut_model = harness::header(&r, "x-switchyard-model");
    let cut_id = harness::header(&r, "x-request-id");
    let (_, body) = c
        .rate(Some("ann"), json!({"request_id": cut_id, "score": 1}))
        .await;
    assert_eq!(body["replaced"], 0.5, "{body} ({cut_model})");

    // The decision log has the feedback as an outcome line after its request line.
    let mut lines = Vec::new();
    for _ in 0..100 {
        lines = std::fs::read_to_string(&log)
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str::<Value>(l).unwrap())
            .collect();
        if lines.iter().filter(|l| l["kind"] == "outcome").count() == 2 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let outcome = lines
        .iter()
        .find(|l| l["kind"] == "outcome" && l["request_id"] == id.as_str())
        .unwrap_or_else(|| panic!("{lines:#?}"));
    assert_eq!(outcome["source"], "feedback");
    assert_eq!(
        (outcome["score"].as_f64(), outcome["label"].as_str()),
        (Some(0.0), Some("wrong"))
    );
    assert_eq!(outcome["model"], model.as_str());
    assert!(
        lines
            .iter()
            .any(|l| l["request_id"] == id.as_str() && l["kind"].is_null() && l["status"] == 200)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_complaint_in_the_next_turn_scores_the_answer_before() {
    let (upstream, _) = harness::echo().await;
    let log = harness::temp_file("learning", "complaint.jsonl");
    let g = harness::gateway(&config(&upstream, &log, 1000)).await;
    let c = Client {
        base: g.url(),
        http: reqwest::Client::new(),
    };
    let first = c.ask("ann", hi(), json!({})).await;
    let first_model = harness::header(&first, "x-switchyard-model");
    let turns = json!([
        {"role": "user", "content": "What is the capital of France?"},
        {"role": "assistant", "content": "Lyon."},
        {"role": "user", "content": "That's wrong."},
    ]);
    let second = c.ask("ann", turns, json!({})).await;
    assert_eq!(harness::header(&second, "x-switchyard-route"), "again");
    let arms = c.arms().await;
    let main = arm(&arms, "main", &first_model);
    assert_eq!(
        (main["good"].as_f64(), main["bad"].as_f64()),
        (Some(0.0), Some(1.0)),
        "{arms:?}"
    );
    // The complaining turn's own answer counts whole.
    assert_eq!(arm(&arms, "again", "b")["good"], 1.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thompson_learns_from_feedback_which_model_answers_well() {
    let (upstream, _) = harness::echo().await;
    let log = harness::temp_file("learning", "bandit.jsonl");
    let g = harness::gateway(&config(&upstream, &log, 1000)).await;
    let c = Client {
        base: g.url(),
        http: reqwest::Client::new(),
    };
    // The client likes b's answers and not a's.
    let mut late_b = 0;
    for i in 0..150 {
        let r = c.ask("ann", hi(), json!({})).await;
        assert_eq!(r.status(), 200);
        let model = harness::header(&r, "x-switchyard-model");
        let id = harness::header(&r, "x-request-id");
        let thumbs = if model == "b" { "up" } else { "down" };
        let (status, _) = c
            .rate(Some("ann"), json!({"request_id": id, "thumbs": thumbs}))
            .await;
        assert_eq!(status, 200);
        if i >= 100 && model == "b" {
            late_b += 1;
        }
    }
    assert!(late_b >= 45, "b answered {late_b} of the last 50");
    let arms = c.arms().await;
    assert!(arm(&arms, "main", "a")["mean"].as_f64().unwrap() < 0.2);
    assert!(arm(&arms, "main", "b")["mean"].as_f64().unwrap() > 0.8);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_outcomes_off_feedback_is_a_clear_404() {
    let (upstream, _) = harness::echo().await;
    let log = harness::temp_file("learning", "off.jsonl");
    let g = harness::gateway(&config(&upstream, &log, 0)).await;
    let c = Client {
        base: g.url(),
        http: reqwest::Client::new(),
    };
    let r = c.ask("ann", hi(), json!({})).await;
    let id = harness::header(&r, "x-request-id");
    let (status, body) = c
        .rate(Some("ann"), json!({"request_id": id, "score": 1}))
        .await;
    assert_eq!(status, 404);
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("outcomes.capacity"),
        "{body}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_learned_route_sends_the_prompts_its_router_scores_high_to_the_strong_model() {
    use switchyard_workload::outcome_router::read_router;
    use switchyard_workload::switchyard_embed::{Embedder, EmbedderOptions};
    let Ok(dir) = std::env::var("SWITCHYARD_MODEL_DIR") else {
        eprintln!("skipped: set SWITCHYARD_MODEL_DIR (scripts/test.sh does)");
        return;
    };
    // The shipped router's gains for two prompts, computed here as the gateway must.
    let router = read_router(None).unwrap();
    let embedder = Embedder::load(std::path::Path::new(&dir), EmbedderOptions::default()).unwrap();
    let prompts = [
        "Find the value of x if 3x^2 - 12x + 7 = 0 and x > 2.\nA. 3.5\nB. 2 + sqrt(5/3)\nC. 4\nD. 2.2\nAnswer:",
        "Which of these is a primary color?\nA. Green\nB. Red\nC. Purple\nD. Orange\nAnswer:",
    ];
    let gains: Vec<f64> = prompts
        .iter()
        .map(|p| router.gain(&embedder.embed(p).unwrap(), p).unwrap())
        .collect();
    assert!((gains[0] - gains[1]).abs() > 0.01, "{gains:?}");
    let margin = (gains[0] + gains[1]) / 2.0;
    let (upstream, _) = harness::echo().await;
    let g = harness::gateway(&format!(
        "server: {{listen: '127.0.0.1:0'}}
signals: {{model: {{path: '{dir}'}}}}
models: [{{name: big}}, {{name: small}}]
pools:
  - {{name: pb, model: big, context_window: 8K, endpoints: [{{url: '{upstream}'}}]}}
  - {{name: ps, model: small, context_window: 8K, endpoints: [{{url: '{upstream}'}}]}}
default_route:
  models: [big, small]
  algorithm: {{type: learned, strong: big, weak: small, margin: {margin}}}
"
    ))
    .await;
    let c = Client {
        base: g.url(),
        http: reqwest::Client::new(),
    };
    for (prompt, gain) in prompts.iter().zip(&gains) {
        let r = c
            .ask(
                "ann",
                json!([{"role": "user", "content": prompt}]),
                json!({}),
            )
            .await;
        assert_eq!(r.status(), 200);
        let expected = if *gain > margin { "big" } else { "small" };
        assert_eq!(
            harness::header(&r, "x-switchyard-model"),
            expected,
            "gain {gain} vs {margin}"
        );
        let trace = harness::route_trace(&g.url(), "auto", prompt).await;
        let reason = trace.to_string();
        assert!(reason.contains("predicted gain"), "{trace}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn preferences_rate_models_and_elo_routes_to_the_preferred() {
    let (upstream, _) = harness::echo().await;
    let log = harness::temp_file("learning", "elo.jsonl");
    let g = harness::gateway(&format!(
        "server: {{listen: '127.0.0.1:0', decision_log: '{}'}}
models: [{{name: a, quality: 0.9}}, {{name: b, quality: 0.5}}]
pools:
  - {{name: pa, model: a, context_window: 8K, endpoints: [{{url: '{upstream}'}}]}}
  - {{name: pb, model: b, context_window: 8K, endpoints: [{{url: '{upstream}'}}]}}
default_route: {{name: main, models: [a, b], algorithm: elo}}
",
        log.display()
    ))
    .await;
    let c = Client {
        base: g.url(),
        http: reqwest::Client::new(),
    };
    let model_of = |r: &reqwest::Response| harness::header(r, "x-switchyard-model");
    let r = c.ask("ann", hi(), json!({})).await;
    assert_eq!(model_of(&r), "a", "unrated: the higher quality");
    // Side by side (the client names each model), b's answers are preferred.
    let mut last = Value::Null;
    for _ in 0..4 {
        let ra = c.ask("ann", hi(), json!({"model": "a"})).await;
        let rb = c.ask("ann", hi(), json!({"model": "b"})).await;
        let (ida, idb) = (
            harness::header(&ra, "x-request-id"),
            harness::header(&rb, "x-request-id"),
        );
        let (status, body) = c
            .rate(
                Some("ann"),
                json!({"request_id": idb, "preferred_over": ida}),
            )
            .await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["recorded"], true);
        let (_, again) = c
            .rate(
                Some("ann"),
                json!({"request_id": ida, "preferred_over": idb}),
            )
            .await;
        assert_eq!(again["recorded"], false, "a pair is compared once");
        last = body;
    }
    assert!(last["elo"][0].as_f64().unwrap() > 40.0, "{last}");
    let r = c.ask("ann", hi(), json!({})).await;
    assert_eq!(model_of(&r), "b", "b now rates higher");
    let id = harness::header(&r, "x-request-id");
    let (status, body) = c
        .rate(
            Some("ann"),
            json!({"request_id": id, "preferred_over": "sy-none"}),
        )
        .await;
    assert_eq!(
        (status, body["error"]["param"].as_str()),
        (404, Some("preferred_over"))
    );
    let (status, body) = c
        .rate(Some("ann"), json!({"request_id": id, "preferred_over": id}))
        .await;
    assert_eq!(status, 400, "{body}");
    let arms = c.arms().await;
    assert!(
        arm(&arms, "*", "b")["elo"].as_f64().unwrap() > 40.0,
        "{arms:?}"
    );
    let mut logged = 0;
    for _ in 0..100 {
        logged = std::fs::read_to_string(&log)
            .unwrap_or_default()
            .lines()
            .filter(|l| l.contains("\"kind\":\"preference\""))
            .count();
        if logged == 4 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert_eq!(logged, 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_model_whose_failures_drift_up_is_alarmed_and_passed_over() {
    let (upstream, _) = harness::echo().await;
    let g = harness::gateway(&format!(
        "server: {{listen: '127.0.0.1:0'}}
health: {{eject_after_failures: 1000}}
upstream: {{max_attempts: 1}}
outcomes: {{reputation: {{window: 10, history: 10, min_history: 3}}}}
models: [{{name: a}}, {{name: b}}]
pools:
  - {{name: pa, model: a, context_window: 8K, endpoints: [{{url: '{upstream}'}}]}}
  - {{name: pb, model: b, context_window: 8K, endpoints: [{{url: '{upstream}'}}]}}
default_route: {{name: main, models: [a, b]}}
"
    ))
    .await;
    let c = Client {
        base: g.url(),
        http: reqwest::Client::new(),
    };
    // Four windows of whole answers from a (the first candidate): its history.
    for _ in 0..40 {
        let r = c.ask("ann", hi(), json!({})).await;
        assert_eq!(harness::header(&r, "x-switchyard-model"), "a");
    }
    // Then a fails (the upstream answers 500): nine failures leave the window open.
    let failing = json!([{"role": "user", "content": "[fail] anything"}]);
    for _ in 0..9 {
        let r = c.ask("ann", failing.clone(), json!({})).await;
        assert_eq!(r.status(), 502);
    }
    let r = c.ask("ann", hi(), json!({})).await;
    assert_eq!(
        harness::header(&r, "x-switchyard-model"),
        "a",
        "the window closes with this one"
    );
    // 9 of 10 failed against a history of none: alarmed, a is passed over for b.
    let r = c.ask("ann", hi(), json!({})).await;
    assert_eq!(harness::header(&r, "x-switchyard-model"), "b");
    let trace = harness::route_trace(&g.url(), "auto", "hello").await;
    assert!(trace.to_string().contains("\"demoted\":[\"a\"]"), "{trace}");
    let v: Value = reqwest::get(format!("{}/v1/outcomes", g.url()))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let a = v["reputation"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["model"] == "a")
        .cloned()
        .unwrap();
    assert_eq!(a["failures"]["alarm"], true, "{a}");
    assert!(
        harness::metric_sum(
            &g.url(),
            "switchyard_reputation_drifts_total",
            &[("model", "a"), ("direction", "rose")]
        )
        .await
            >= 1.0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn answers_slower_than_the_limit_score_slow() {
    let engine = |model: &str, added_latency_ms| {
        let model = model.to_owned();
        async move {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let config = switchyard_engine::EngineConfig {
                model,
                gpu: None,
                mean_output_tokens: 8,
                faults: switchyard_engine::Faults {
                    added_latency_ms,
                    ..switchyard_engine::Faults::default()
                },
                ..switchyard_engine::EngineConfig::default()
            };
            switchyard_engine::serve(listener, config).await.unwrap()
        }
    };
    let (slow, fast) = (engine("a", 250).await, engine("b", 0).await);
    let g = harness::gateway(&format!(
        "server: {{listen: '127.0.0.1:0'}}
outcomes: {{implicit: {{slow_after_ms: 150, slow: 0.25}}}}
models: [{{name: a}}, {{name: b}}]
pools:
  - {{name: pa, model: a, context_window: 8K, endpoints: [{{url: '{}'}}]}}
  - {{name: pb, model: b, context_window: 8K, endpoints: [{{url: '{}'}}]}}
default_route: {{name: timed, models: [a, b], algorithm: {{type: thompson, bucket: none, discount: 1}}}}
",
        slow.url(),
        fast.url()
    ))
    .await;
    let c = Client {
        base: g.url(),
        http: reqwest::Client::new(),
    };
    for i in 0..40 {
        let r = c
            .ask(
                "k",
                json!([{"role": "user", "content": format!("q{i}")}]),
                json!({}),
            )
            .await;
        assert_eq!(r.status(), 200);
        let arms = c.arms().await;
        let seen = |m: &str| {
            arms.iter().any(|a| {
                a["route"] == "timed" && a["model"] == m && a["outcomes"].as_u64() > Some(0)
            })
        };
        if seen("a") && seen("b") {
            break;
        }
    }
    let arms = c.arms().await;
    // Every answer of `a` came after 250 ms: each counted 0.25; `b`'s counted 1.
    assert_eq!(arm(&arms, "timed", "a")["mean"], 0.25, "{arms:?}");
    assert_eq!(arm(&arms, "timed", "b")["mean"], 1.0, "{arms:?}");
    // A limit that is not a positive number is refused.
    let err = switchyard_policy::parse_config(
        "outcomes: {implicit: {slow_after_ms: -3}}\nmodels: [{name: a}]\npools: [{name: p, model: a, context_window: 8K, endpoints: [{url: 'http://127.0.0.1:1'}]}]\ndefault_route: {models: [a]}\n",
    )
    .map_err(|e| e.to_string())
    .and_then(|c| switchyard_policy::Policy::compile(c).map_err(|e| e.to_string()))
    .map(|_| ())
    .unwrap_err();
    assert!(err.contains("slow_after_ms"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_replays_what_the_decision_log_learned() {
    let (upstream, _) = harness::echo().await;
    let log = harness::temp_file("learning", "replay.jsonl");
    let config = config(&upstream, &log, 1000);
    let first = harness::gateway(&config).await;
    let c = Client {
        base: first.url(),
        http: reqwest::Client::new(),
    };
    for i in 0..12 {
        let r = c
            .ask(
                "ann",
                json!([{"role": "user", "content": format!("q{i}")}]),
                json!({}),
            )
            .await;
        let id = harness::header(&r, "x-request-id");
        if i % 3 == 0 {
            let (status, _) = c
                .rate(Some("ann"), json!({"request_id": id, "score": 0.2}))
                .await;
            assert_eq!(status, 200);
        }
    }
    let before: Vec<Value> = c
        .arms()
        .await
        .into_iter()
        .filter(|a| a["route"] == "main")
        .collect();
    assert!(
        before
            .iter()
            .map(|a| a["outcomes"].as_u64().unwrap())
            .sum::<u64>()
            == 12
    );
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;

    // A new gateway on the same log starts where the first one was.
    let second = harness::gateway(&config).await;
    let c2 = Client {
        base: second.url(),
        http: reqwest::Client::new(),
    };
    let after: Vec<Value> = c2
        .arms()
        .await
        .into_iter()
        .filter(|a| a["route"] == "main")
        .collect();
    assert_eq!(before.len(), after.len(), "{before:?} {after:?}");
    for (b, a) in before.iter().zip(&after) {
        assert_eq!(b["model"], a["model"]);
        assert_eq!(b["outcomes"], a["outcomes"]);
        for field in ["good", "bad"] {
            let (x, y) = (b[field].as_f64().unwrap(), a[field].as_f64().unwrap());
            assert!((x - y).abs() < 1e-9, "{field}: {b} vs {a}");
        }
    }
}
