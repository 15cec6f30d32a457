//! Session stickiness through the gateway: a route that would switch a session's
//! model between turns keeps it unless the switch gains more than the prefix cache it
//! loses; `escalate_only` lets a session move up and never down.

#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod harness;

use serde_json::{Value, json};

/// A route whose `thompson` draws between two equal models would switch models
/// between a session's turns.
fn bandit(upstream: &str, sticky: &str) -> String {
    format!(
        "server: {{listen: '127.0.0.1:0'}}
models:
  - {{name: a, quality: 0.8}}
  - {{name: b, quality: 0.8}}
pools:
  - {{name: pa, model: a, context_window: 32K, endpoints: [{{url: '{upstream}'}}]}}
  - {{name: pb, model: b, context_window: 32K, endpoints: [{{url: '{upstream}'}}]}}
default_route:
  name: main
  models: [a, b]
  algorithm: {{type: thompson, bucket: none, seed: 5}}
  {sticky}
"
    )
}

struct Session {
    base: String,
    id: String,
    messages: Vec<Value>,
    http: reqwest::Client,
}

impl Session {
    fn new(base: &str, id: &str) -> Session {
        // A long shared start: switching costs its prefill.
        let context =
            "The fleet serves requests from many teams with different needs. ".repeat(150);
        Session {
            base: base.to_owned(),
            id: id.to_owned(),
            messages: vec![json!({"role": "system", "content": context})],
            http: reqwest::Client::new(),
        }
    }

    /// Sends the next turn; returns the model that answered and the select trace of
    /// the same request as a dry run would show it.
    async fn turn(&mut self, text: &str) -> String {
        self.messages.push(json!({"role": "user", "content": text}));
        let r = self
            .http
            .post(format!("{}/v1/chat/completions", self.base))
            .header("x-session-id", &self.id)
            .header("authorization", "Bearer k")
            .json(&json!({"model": "auto", "messages": self.messages}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        let model = harness::header(&r, "x-switchyard-model");
        let v: Value = r.json().await.unwrap();
        let answer = v["choices"][0]["message"]["content"]
            .as_str()
            .unwrap()
            .to_owned();
        self.messages
            .push(json!({"role": "assistant", "content": answer}));
        model
    }
}

/// Model switches between consecutive turns over `sessions` sessions of `turns` turns.
async fn switches(base: &str, sessions: usize, turns: usize) -> usize {
    let mut switched = 0;
    for s in 0..sessions {
        let mut session = Session::new(base, &format!("s{s}"));
        let mut last = None;
        for t in 0..turns {
            let model = session.turn(&format!("question {t}")).await;
            if last.as_ref().is_some_and(|l| *l != model) {
                switched += 1;
            }
            last = Some(model);
        }
    }
    switched
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sticky_route_keeps_the_session_on_its_model() {
    let (upstream, _) = harness::echo().await;
    let loose = harness::gateway(&bandit(&upstream, "")).await;
    let moved = switches(&loose.url(), 4, 6).await;
    assert!(
        moved >= 4,
        "without stickiness the draws move sessions: {moved}"
    );

    let sticky = harness::gateway(&bandit(&upstream, "sticky: {}")).await;
    assert_eq!(switches(&sticky.url(), 4, 6).await, 0);

    // The trace says what was weighed: a dry run of a later turn whose draw differs.
    let mut session = Session::new(&sticky.url(), "traced");
    let first = session.turn("question 0").await;
    let mut weighed = None;
    for t in 1..20 {
        let mut messages = session.messages.clone();
        messages.push(json!({"role": "user", "content": format!("question {t}")}));
        let trace: Value = reqwest::Client::new()
            .post(format!("{}/v1/route", sticky.url()))
            .header("x-session-id", "traced")
            .header("authorization", "Bearer k")
            .json(&json!({"model": "auto", "messages": messages}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if trace["select"]["sticky"].is_object() {
            weighed = Some(trace);
            break;
        }
    }
    let trace = weighed.expect("a draw for the other model within 19 tries");
    let note = &trace["select"]["sticky"];
    assert_eq!(note["incumbent"], first.as_str());
    assert_eq!(note["kept"], true, "{trace}");
    assert_eq!(trace["select"]["model"], first.as_str());
    assert!(note["recomputed_tokens"].as_u64().unwrap() > 1000, "{note}");
    assert!(note["cost_ms"].as_f64().unwrap() > note["gain_ms"].as_f64().unwrap());
    assert!(
        trace["select"]["reason"]
            .as_str()
            .unwrap()
            .starts_with("sticky: kept"),
        "{trace}"
    );
}

/// `hard` questions go to `big` only; the rest to the cheaper `small` by `cost`.
fn ladder(upstream: &str, sticky: &str) -> String {
    format!(
        "server: {{listen: '127.0.0.1:0'}}
models:
  - {{name: small, quality: 0.6, price: {{input: 0.1, output: 0.2}}}}
  - {{name: big, quality: 0.9, price: {{input: 3, output: 15}}}}
pools:
  - {{name: ps, model: small, context_window: 32K, endpoints: [{{url: '{upstream}'}}]}}
  - {{name: pb, model: big, context_window: 32K, endpoints: [{{url: '{upstream}'}}]}}
signals:
  keyword: [{{name: hard, keywords: [hard]}}]
routes:
  - name: hard
    when: {{keyword: hard}}
    models: [big]
    sticky: {sticky}
default_route:
  name: easy
  models: [small, big]
  algorithm: cost
  sticky: {sticky}
"
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn escalate_only_moves_a_session_up_and_never_down() {
    let (upstream, _) = harness::echo().await;
    // Escalate only: once on big, the session stays there.
    let g = harness::gateway(&ladder(&upstream, "{escalate_only: true}")).await;
    let mut s = Session::new(&g.url(), "up");
    assert_eq!(s.turn("hello").await, "small");
    assert_eq!(s.turn("a hard one").await, "big");
    assert_eq!(s.turn("thanks, and now?").await, "big", "never down");
    assert_eq!(s.turn("more").await, "big");

    // Weighed instead, with price worth a lot: the session goes back down to save.
    let g = harness::gateway(&ladder(&upstream, "{dollar_ms: 1000000000}")).await;
    let mut s = Session::new(&g.url(), "down");
    assert_eq!(s.turn("a hard one").await, "big");
    assert_eq!(s.turn("thanks, and now?").await, "small");

    // Weighed with the defaults (price does not count; quality is worth 1 s a point):
    // going down loses 0.3 of quality, 300 ms, more than nothing gained: kept on big.
    let g = harness::gateway(&ladder(&upstream, "{}")).await;
    let mut s = Session::new(&g.url(), "kept");
    assert_eq!(s.turn("a hard one").await, "big");
    assert_eq!(s.turn("thanks, and now?").await, "big");
}

#[test]
fn sticky_rates_are_checked() {
    let text = ladder("http://127.0.0.1:1", "{quality_ms: -1}");
    let err = switchyard_policy::Policy::compile(switchyard_policy::parse_config(&text).unwrap())
        .unwrap_err()
        .to_string();
    assert!(err.contains("quality_ms -1"), "{err}");
    let text = ladder("http://127.0.0.1:1", "{qualty_ms: 5}");
    let err = switchyard_policy::parse_config(&text)
        .unwrap_err()
        .to_string();
    assert!(err.contains("qualty_ms"), "{err}");
}
