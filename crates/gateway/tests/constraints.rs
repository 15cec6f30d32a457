//! Governance constraints at decision time: allowed pools, allowed models, cost
//! ceilings, for routed and client-named requests.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::print_stderr
)]

mod harness;

use harness::{engine, gateway, header};
use serde_json::{Value, json};
use switchyard_fleet::GpuKind;

async fn send(
    base: &str,
    model: &str,
    prompt: &str,
    headers: &[(&str, &str)],
) -> reqwest::Response {
    let mut request = reqwest::Client::new()
        .post(format!("{base}/v1/chat/completions"))
        .json(&json!({"model": model, "max_tokens": 10,
                      "messages": [{"role": "user", "content": prompt}]}));
    for (k, v) in headers {
        request = request.header(*k, *v);
    }
    request.send().await.unwrap()
}

#[tokio::test]
async fn constraints_steer_pools_narrow_models_and_refuse_with_a_reason() {
    let cloud = engine(Some(GpuKind::H100), 32_768, "large").await;
    let cloud_small = engine(Some(GpuKind::A10g), 8192, "small").await;
    let local = engine(Some(GpuKind::A10g), 8192, "small").await;
    let config = format!(
        "server: {{listen: '127.0.0.1:0'}}
models:
  - {{name: small, tags: [small], price: {{input: 0.1, output: 0.2}}}}
  - {{name: large, price: {{input: 10, output: 30}}}}
pools:
  - {{name: cloud, model: large, context_window: 32K, endpoints: [{{url: '{}'}}]}}
  - {{name: cloud-small, model: small, context_window: 8K, endpoints: [{{url: '{}'}}]}}
  - {{name: local, model: small, context_window: 16K, tags: [on-prem], endpoints: [{{url: '{}'}}]}}
signals:
  keyword:
    - {{name: secret, keywords: [password]}}
    - {{name: code, keywords: [python]}}
  authz:
    - {{name: guest, roles: [guest]}}
  identity:
    trusted_headers: {{subject: x-user, roles: x-roles, trusted_proxies: [127.0.0.1]}}
routes:
  - {{name: coding, priority: 10, when: {{keyword: code}}, models: [large]}}
  - {{name: chat, priority: 0, when: {{not: {{keyword: code}}}}, models: [large, small]}}
constraints:
  - {{name: secrets_stay_home, when: {{keyword: secret}}, pools: {{tags: [on-prem]}}}}
  - {{name: guests_small, when: {{authz: guest}}, models: {{tags: [small]}}}}
",
        cloud.url(),
        cloud_small.url(),
        local.url()
    );
    let gw = gateway(&config).await;
    let base = gw.url();

    // Chat goes to its first candidate, in the cloud.
    let r = send(&base, "auto", "hello there", &[]).await;
    assert_eq!(r.status(), 200);
    assert_eq!(header(&r, "x-switchyard-endpoint"), "cloud-0");
    // A secret on the chat route: only `small` has an on-prem pool, and only that pool serves.
    let r = send(&base, "auto", "my password is hunter2", &[]).await;
    assert_eq!(r.status(), 200);
    assert_eq!(header(&r, "x-switchyard-model"), "small");
    assert_eq!(
        header(&r, "x-switchyard-endpoint"),
        "local-0",
        "not the smaller cloud pool"
    );
    // Named directly, too.
    let r = send(&base, "small", "password reset help", &[]).await;
    assert_eq!(header(&r, "x-switchyard-endpoint"), "local-0");
    // A guest on the chat route gets the small model.
    let guest = [("x-user", "bob"), ("x-roles", "guest")];
    let r = send(&base, "auto", "hello there", &guest).await;
    assert_eq!(header(&r, "x-switchyard-model"), "small");
    assert_eq!(header(&r, "x-switchyard-endpoint"), "cloud-small-0");
    // A guest asking for code: the coding route has only the large model. Refused.
    let r = send(&base, "auto", "python question", &guest).await;
    assert_eq!(r.status(), 403);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"]["code"], "policy_denied");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("constraint `guests_small`")
            && message.contains("route `coding`")
            && message.contains("`large` lacks an allowed tag"),
        "{message}"
    );
    // The explain trace names the constraints that applied.
    let r = reqwest::Client::new()
        .post(format!("{base}/v1/route"))
        .json(&json!({"model": "auto", "messages": [{"role": "user", "content": "my password"}]}))
        .send()
        .await
        .unwrap();
    let trace: Value = r.json().await.unwrap();
    assert_eq!(trace["govern"]["constraints"], json!(["secrets_stay_home"]));
    assert_eq!(local.requests(), 2, "the two secrets");
    assert_eq!(
        cloud_small.requests(),
        1,
        "the guest's chat, which held no secret"
    );
}

#[tokio::test]
async fn a_cost_ceiling_passes_over_costly_candidates_for_long_prompts() {
    let large = engine(None, 65_536, "large").await;
    let small = engine(None, 65_536, "small").await;
    let config = format!(
        "server: {{listen: '127.0.0.1:0'}}
models:
  - {{name: large, price: {{input: 10, output: 30}}}}
  - {{name: small, price: {{input: 0.1, output: 0.2}}}}
pools:
  - {{name: l, model: large, context_window: 64K, endpoints: [{{url: '{}'}}]}}
  - {{name: s, model: small, context_window: 64K, endpoints: [{{url: '{}'}}]}}
default_route: {{models: [large, small]}}
constraints:
  - {{name: budget, routes: [default], max_cost: 0.01}}
",
        large.url(),
        small.url()
    );
    let gw = gateway(&config).await;
    // 10 answer tokens and a short prompt cost $0.0003 or so on `large`: allowed.
    let r = send(&gw.url(), "auto", "hi", &[]).await;
    assert_eq!(header(&r, "x-switchyard-model"), "large");
    // About 1,500 prompt tokens cost $0.015 on `large`: over the ceiling, so `small`.
    let long = "lorem ipsum dolor ".repeat(500);
    let r = send(&gw.url(), "auto", &long, &[]).await;
    assert_eq!(r.status(), 200);
    assert_eq!(header(&r, "x-switchyard-model"), "small");
    // 100 answer tokens cost $0.003 on `large`; four answers of them (`n: 4`) $0.012.
    let chosen = |n: u32| {
        let url = gw.url();
        async move {
            let trace: serde_json::Value = reqwest::Client::new()
                .post(format!("{url}/v1/route"))
                .json(&json!({"model": "auto", "max_tokens": 100, "n": n,
                              "messages": [{"role": "user", "content": "hi"}]}))
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            assert_eq!(trace["ingress"]["answers"], n, "{trace}");
            trace["select"]["model"].as_str().unwrap().to_owned()
        }
    };
    assert_eq!(chosen(1).await, "large");
    assert_eq!(chosen(4).await, "small", "each answer is paid for");
}
