//! A budget's graduated response through the gateway: as a caller's budget runs down,
//! answers are capped, then prompts compressed, then the route's cheapest candidate
//! answers, then requests are refused; each step is named in the headers and the trace.

#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

mod harness;

use serde_json::{Value, json};

fn config(upstream: &str) -> String {
    format!(
        "server: {{listen: '127.0.0.1:0'}}
models:
  - {{name: strong, price: {{input: 3, output: 15}}}}
  - {{name: cheap, price: {{input: 0.1, output: 0.4}}}}
pools:
  - {{name: big, model: strong, context_window: 8K, endpoints: [{{url: '{upstream}'}}]}}
  - {{name: small, model: cheap, context_window: 8K, endpoints: [{{url: '{upstream}'}}]}}
signals:
  identity:
    trusted_headers: {{subject: x-user-id, trusted_proxies: ['127.0.0.1/32']}}
plugins:
  - {{name: monthly, type: budget, scope: caller, tokens: 1000, window: day, global: true,
      shape: {{below: 0.6, max_tokens: 16}},
      compress: {{below: 0.45, ratio: 0.3}},
      downgrade: {{below: 0.3}}}}
default_route: {{models: [strong, cheap]}}
"
    )
}

/// A long conversation: three long earlier turns, then short ones (compression never
/// touches the last three messages).
fn long_conversation() -> Value {
    let long = |topic: &str| -> String {
        (0..150)
            .map(|i| format!("{topic} detail {i}."))
            .collect::<Vec<_>>()
            .join(" ")
    };
    json!([
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": long("first")},
        {"role": "assistant", "content": long("second")},
        {"role": "user", "content": long("third")},
        {"role": "assistant", "content": "Noted."},
        {"role": "user", "content": "And?"},
        {"role": "assistant", "content": "Yes."},
        {"role": "user", "content": "So?"},
    ])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_budget_running_down_shapes_compresses_downgrades_then_refuses() {
    let (upstream, seen) = harness::echo().await;
    let g = harness::gateway(&config(&upstream)).await;
    let client = reqwest::Client::new();
    let ask = |messages: Value| {
        client
            .post(format!("{}/v1/chat/completions", g.url()))
            .header("x-user-id", "ann")
            .json(&json!({"model": "auto", "max_tokens": 4, "messages": messages}))
            .send()
    };
    let short = || json!([{"role": "user", "content": "hi"}]);
    // Each answer uses 8 tokens (the upstream says so): the budget runs down by 8.
    let mut seen_steps: Vec<(String, String)> = Vec::new();
    let mut compressed_checked = false;
    let mut served = 0;
    loop {
        assert!(served < 200, "never refused");
        // Once prompts are compressed, a long conversation goes up shortened.
        let in_compress = seen_steps
            .last()
            .is_some_and(|(s, _)| s.contains("compress"));
        let long = in_compress && !compressed_checked;
        let r = ask(if long { long_conversation() } else { short() })
            .await
            .unwrap();
        if r.status() == 429 {
            let retry = r.headers().contains_key("retry-after");
            let error: Value = r.json().await.unwrap();
            assert!(retry, "{error} after {seen_steps:?}");
            assert_eq!(error["error"]["code"], "budget_exhausted", "{error}");
            break;
        }
        assert_eq!(r.status(), 200);
        served += 1;
        let steps = r
            .headers()
            .get("x-switchyard-budget-steps")
            .map(|v| v.to_str().unwrap().to_owned())
            .unwrap_or_default();
        let remaining: u64 = harness::header(&r, "x-switchyard-budget-remaining")
            .parse()
            .unwrap();
        assert!(remaining <= 1000);
        let upstream_request = seen.lock().unwrap().last().cloned().unwrap();
        let model = upstream_request["model"].as_str().unwrap().to_owned();
        if long {
            compressed_checked = true;
            let messages = upstream_request["messages"].as_array().unwrap();
            assert_eq!(messages.len(), 8);
            let shortened = messages
                .iter()
                .filter(|m| m["content"].as_str().unwrap().contains("tokens removed"))
                .count();
            assert_eq!(shortened, 3, "{messages:?}");
            assert_eq!(messages[7]["content"], "So?");
            assert_eq!(messages[0]["content"], "Be brief.");
        }
        if seen_steps
            .last()
            .is_none_or(|(s, m)| *s != steps || *m != model)
        {
            seen_steps.push((steps, model));
        }
    }
    assert!(compressed_checked, "{seen_steps:?}");
    let expected: Vec<(String, String)> = [
        ("", "strong"),
        ("shape", "strong"),
        ("compress, shape", "strong"),
        ("compress, downgrade, shape", "cheap"),
    ]
    .iter()
    .map(|(s, m)| ((*s).to_owned(), (*m).to_owned()))
    .collect();
    assert_eq!(seen_steps, expected);
    // 1,000 tokens at 8 an answer, less what the long conversation used and the last
    // reservation that no longer fit.
    assert!((100..=125).contains(&served), "{served}");

    // Another caller starts with the whole budget: the strong model, no steps.
    let r = client
        .post(format!("{}/v1/route", g.url()))
        .header("x-user-id", "bob")
        .json(&json!({"model": "auto", "messages": short()}))
        .send()
        .await
        .unwrap();
    let trace: Value = r.json().await.unwrap();
    assert_eq!(trace["select"]["model"], "strong", "{trace}");
    assert!(trace["govern"].get("plugins").is_none(), "{trace}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_trace_names_the_budget_steps_and_what_they_did() {
    let (upstream, _seen) = harness::echo().await;
    let g = harness::gateway(&config(&upstream)).await;
    let client = reqwest::Client::new();
    // Spend 760 of 1,000: under 30% left.
    for _ in 0..95 {
        let r = client
            .post(format!("{}/v1/chat/completions", g.url()))
            .header("x-user-id", "cat")
            .json(&json!({"model": "auto", "max_tokens": 4,
                          "messages": [{"role": "user", "content": "hi"}]}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
    }
    let r = client
        .post(format!("{}/v1/route", g.url()))
        .header("x-user-id", "cat")
        .json(&json!({"model": "auto", "max_tokens": 4, "messages": long_conversation()}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let trace: Value = r.json().await.unwrap();
    let govern = &trace["govern"];
    assert_eq!(govern["candidates"], json!(["cheap"]), "{trace}");
    assert_eq!(
        govern["downgraded_from"],
        json!(["strong", "cheap"]),
        "{trace}"
    );
    let plugin = &govern["plugins"][0];
    assert_eq!(plugin["plugin"], "monthly");
    assert_eq!(plugin["downgrade"], true);
    assert_eq!(plugin["compress"], 0.3);
    assert_eq!(plugin["why"], "24.0% of budget `monthly` left", "{trace}");
    let compression = &govern["compression"];
    let (before, after) = (
        compression["original_tokens"].as_u64().unwrap(),
        compression["tokens"].as_u64().unwrap(),
    );
    assert!(after * 2 < before, "{compression}");
    assert_eq!(trace["select"]["model"], "cheap");
}
