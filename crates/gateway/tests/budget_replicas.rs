//! Budgets that hold across replicas: three gateways sharing one Redis or Valkey server
//! take 1,000 concurrent requests, streamed and whole, from four callers with a token
//! budget each. What the admitted requests used never passes any caller's budget by
//! more than one reservation, and every request ends whole or with a clean refusal.

#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

mod harness;

use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::Arc;
use switchyard_gateway::Gateway;
use switchyard_state::testing::KvServer;

const BUDGET: u64 = 400;
const CALLERS: [&str; 4] = ["ann", "bob", "cat", "dan"];

fn config(upstream: &str, state: &str) -> String {
    format!(
        "server: {{listen: '127.0.0.1:0'}}
state: {state}
models: [{{name: m}}]
pools: [{{name: p, model: m, context_window: 8K, endpoints: [{{url: '{upstream}'}}]}}]
health: {{eject_after_failures: 1000}}
signals:
  identity:
    trusted_headers: {{subject: x-user-id, trusted_proxies: ['127.0.0.1/32']}}
plugins:
  - {{name: per_caller, type: budget, scope: caller, tokens: {BUDGET}, window: hour, global: true}}
default_route: {{models: [m]}}
"
    )
}

/// How one request ended.
#[derive(Debug)]
enum Ended {
    /// Served whole, using this many tokens (as the upstream reported them).
    Served(u64),
    /// Refused by the budget with a 429 JSON error and a retry-after.
    Refused,
}

async fn ask(client: &reqwest::Client, g: &str, user: &str, i: usize) -> Ended {
    let stream = i.is_multiple_of(2);
    let prompt = format!("question {i}");
    let body = json!({"model": "auto", "max_tokens": 3, "stream": stream,
        "stream_options": if stream { json!({"include_usage": true}) } else { Value::Null },
        "messages": [{"role": "user", "content": prompt}]});
    let r = client
        .post(format!("{g}/v1/chat/completions"))
        .header("x-user-id", user)
        .json(&body)
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    if status == 429 {
        assert!(r.headers().contains_key("retry-after"));
        let error: Value = r.json().await.unwrap();
        assert_eq!(error["error"]["code"], "budget_exhausted", "{error}");
        assert_eq!(error["error"]["type"], "rate_limit_error", "{error}");
        return Ended::Refused;
    }
    assert_eq!(status, 200);
    let expected = format!("You said: {prompt}");
    if !stream {
        let answer: Value = r.json().await.unwrap();
        assert_eq!(
            answer["choices"][0]["message"]["content"],
            expected.as_str()
        );
        return Ended::Served(answer["usage"]["total_tokens"].as_u64().unwrap());
    }
    let text = r.text().await.unwrap();
    assert!(text.ends_with("data: [DONE]\n\n"), "{text}");
    assert_eq!(harness::streamed_content(&text), expected);
    let usage = text
        .split("\n\n")
        .filter_map(|e| e.strip_prefix("data: "))
        .filter_map(|e| serde_json::from_str::<Value>(e).ok())
        .find_map(|e| e["usage"]["total_tokens"].as_u64())
        .expect("the usage chunk asked for");
    Ended::Served(usage)
}

/// 1,000 requests at once, spread over the replicas and callers: tokens used per
/// caller by the admitted ones, and how many were refused.
async fn burst(replicas: &[Gateway]) -> (HashMap<&'static str, u64>, usize) {
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .build()
        .unwrap();
    let urls: Arc<Vec<String>> = Arc::new(replicas.iter().map(Gateway::url).collect());
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..1000 {
        let (client, urls) = (client.clone(), Arc::clone(&urls));
        let user = CALLERS[i % CALLERS.len()];
        tasks.spawn(async move {
            let ended = ask(&client, &urls[(i / 4) % urls.len()], user, i).await;
            (user, ended)
        });
    }
    let mut used: HashMap<&'static str, u64> = HashMap::new();
    let mut refused = 0;
    while let Some(done) = tasks.join_next().await {
        match done.unwrap() {
            (user, Ended::Served(tokens)) => *used.entry(user).or_default() += tokens,
            (_, Ended::Refused) => refused += 1,
        }
    }
    (used, refused)
}

/// The largest reservation: the prompt as the gateway counts it plus `max_tokens`.
/// Prompts here are two words; 32 bounds them with room to spare.
const LARGEST_RESERVATION: u64 = 32 + 3;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_sharing_a_state_server_hold_every_callers_token_budget() {
    let (upstream, _seen) = harness::echo().await;
    let mut servers = 0;
    for (variable, backend) in [
        ("SWITCHYARD_VALKEY_BIN", "valkey"),
        ("SWITCHYARD_REDIS_BIN", "redis"),
    ] {
        let Some(server) = KvServer::from_env(variable, backend).unwrap() else {
            continue;
        };
        servers += 1;
        let state = format!("{{backend: {backend}, url: '{}'}}", server.url());
        let mut replicas = Vec::new();
        for _ in 0..3 {
            replicas.push(harness::gateway(&config(&upstream, &state)).await);
        }
        let (used, refused) = burst(&replicas).await;
        for caller in CALLERS {
            let used = used.get(caller).copied().unwrap_or(0);
            assert!(
                used <= BUDGET + LARGEST_RESERVATION,
                "{backend}: {caller} used {used} of {BUDGET}"
            );
            assert!(used > 0, "{backend}: {caller} was refused everything");
        }
        assert!(
            refused > 0 && refused < 1000,
            "{backend}: {refused} refused"
        );
    }
    if servers == 0 {
        return;
    }
    // Without a shared server, each replica keeps its own count: the same burst
    // passes the budgets (which is why a deployment of several replicas needs one).
    let mut alone = Vec::new();
    for _ in 0..3 {
        alone.push(harness::gateway(&config(&upstream, "{backend: in_process}")).await);
    }
    let (used, _) = burst(&alone).await;
    assert!(
        CALLERS
            .iter()
            .any(|c| used[c] > BUDGET + LARGEST_RESERVATION),
        "{used:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_sharing_a_state_server_share_a_tenants_request_rate() {
    let Some(server) = KvServer::from_env("SWITCHYARD_VALKEY_BIN", "valkey").unwrap() else {
        return;
    };
    let (upstream, _seen) = harness::echo().await;
    let config = format!(
        "server: {{listen: '127.0.0.1:0'}}
state: {{backend: valkey, url: '{}'}}
models: [{{name: m}}]
pools: [{{name: p, model: m, context_window: 8K, endpoints: [{{url: '{upstream}'}}]}}]
plugins:
  - {{name: per_tenant, type: rate_limit, scope: header, header: x-tenant-id,
      requests: {{limit: 5, per: minute}}, global: true}}
default_route: {{models: [m]}}
",
        server.url()
    );
    let replicas = [
        harness::gateway(&config).await,
        harness::gateway(&config).await,
    ];
    let client = reqwest::Client::new();
    let ask = |g: &Gateway, tenant: &'static str| {
        client
            .post(format!("{}/v1/chat/completions", g.url()))
            .header("x-tenant-id", tenant)
            .json(&json!({"model": "auto", "messages": [{"role": "user", "content": "hi"}]}))
            .send()
    };
    let mut statuses = Vec::new();
    for i in 0..8 {
        let r = ask(&replicas[i % 2], "acme").await.unwrap();
        statuses.push(r.status().as_u16());
        if r.status() == 200 {
            assert_eq!(harness::header(&r, "x-ratelimit-limit-requests"), "5");
            assert_eq!(
                harness::header(&r, "x-ratelimit-remaining-requests"),
                (4 - i).to_string()
            );
        } else {
            let retry: u64 = harness::header(&r, "retry-after").parse().unwrap();
            assert!((1..=12).contains(&retry), "{retry}");
            let error: Value = r.json().await.unwrap();
            assert_eq!(error["error"]["code"], "rate_limit_exceeded", "{error}");
        }
    }
    assert_eq!(statuses, [200, 200, 200, 200, 200, 429, 429, 429]);
    // Another tenant has its own; a request without the header is refused.
    assert_eq!(ask(&replicas[0], "globex").await.unwrap().status(), 200);
    let r = client
        .post(format!("{}/v1/chat/completions", replicas[1].url()))
        .json(&json!({"model": "auto", "messages": [{"role": "user", "content": "hi"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
}
