//! The semantic cache end to end, against an upstream that echoes the prompt and
//! records what reaches it.
//!
//! A repeated question is answered without the upstream, whole or streamed (a stream
//! replayed with its usage, read by the official OpenAI SDK too); a tenant never gets
//! another tenant's answer; failed, truncated, sampled and tool-defining requests are
//! never served from the cache; with the embedding model, a paraphrase hits and an
//! unrelated question does not.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod harness;

use serde_json::{Value, json};
use switchyard_gateway::Gateway;

async fn gateway(url: &str, cache: &str, signals: &str) -> Gateway {
    harness::gateway(&format!(
        "server: {{listen: '127.0.0.1:0'}}
models: [{{name: m}}]
pools: [{{name: p, model: m, context_window: 8K, endpoints: [{{url: '{url}'}}]}}]
health: {{eject_after_failures: 100}}
{signals}
plugins:
  - {{name: cache, type: semantic_cache, {cache}}}
default_route: {{models: [m], plugins: [cache]}}
"
    ))
    .await
}

async fn ask(g: &Gateway, body: Value, tenant: Option<&str>) -> reqwest::Response {
    let mut request = reqwest::Client::new()
        .post(format!("{}/v1/chat/completions", g.url()))
        .json(&body);
    if let Some(tenant) = tenant {
        request = request.header("x-tenant-id", tenant);
    }
    request.send().await.unwrap()
}

fn chat(prompt: &str, stream: bool) -> Value {
    json!({"model": "auto", "stream": stream, "messages": [{"role": "user", "content": prompt}]})
}

#[tokio::test]
async fn a_repeated_question_is_answered_from_the_cache_whole_and_streamed() {
    let (url, seen) = harness::echo().await;
    let g = gateway(&url, "semantic: false", "").await;
    let first = ask(&g, chat("What is   a  monad?", false), None).await;
    assert_eq!(harness::header(&first, "x-switchyard-cache"), "miss");
    let first: Value = first.json().await.unwrap();
    // Whitespace differences are the same question.
    let again = ask(&g, chat("What is a monad?", false), None).await;
    assert_eq!(again.status(), 200);
    assert_eq!(harness::header(&again, "x-switchyard-cache"), "hit");
    let again: Value = again.json().await.unwrap();
    assert_eq!(
        again["choices"][0]["message"]["content"],
        first["choices"][0]["message"]["content"]
    );
    assert_eq!(again["choices"][0]["finish_reason"], "stop");
    assert_eq!(
        again["usage"],
        json!({"prompt_tokens": 5, "completion_tokens": 3, "total_tokens": 8})
    );
    assert_eq!(seen.lock().unwrap().len(), 1, "the hit did not go upstream");

    // A streamed answer is stored too, and replayed as a well-formed stream with the
    // usage the client asks for.
    let streamed = ask(&g, chat("Explain ownership in Rust at length", true), None).await;
    let text = harness::streamed_content(&streamed.text().await.unwrap());
    let mut body = chat("Explain ownership in Rust at length", true);
    body["stream_options"] = json!({"include_usage": true});
    let replay = ask(&g, body, None).await;
    assert_eq!(harness::header(&replay, "x-switchyard-cache"), "hit");
    assert_eq!(
        replay.headers()["content-type"].to_str().unwrap(),
        "text/event-stream"
    );
    let raw = replay.text().await.unwrap();
    assert!(raw.ends_with("data: [DONE]\n\n"), "{raw}");
    assert_eq!(harness::streamed_content(&raw), text);
    assert!(raw.contains("\"finish_reason\":\"stop\""), "{raw}");
    assert!(raw.contains("\"usage\":{"), "{raw}");
    // A whole request for a question answered by a stream hits too.
    let whole = ask(&g, chat("Explain ownership in Rust at length", false), None).await;
    assert_eq!(harness::header(&whole, "x-switchyard-cache"), "hit");
    assert_eq!(seen.lock().unwrap().len(), 2);

    // Other tests of this binary count into the same recorder: at least these three.
    let hits = harness::metric(
        &g.url(),
        "switchyard_cache_lookups_total{route=\"default\",result=\"hit_exact\"}",
    )
    .await;
    assert!(hits >= 3.0, "{hits}");
}

#[tokio::test]
async fn a_tenant_never_gets_another_tenants_answer() {
    let (url, seen) = harness::echo().await;
    let g = gateway(&url, "semantic: false, scope: tenant", "").await;
    let count = || seen.lock().unwrap().len();
    let a = ask(&g, chat("our Q3 plan?", false), Some("acme")).await;
    assert_eq!(harness::header(&a, "x-switchyard-cache"), "miss");
    let b = ask(&g, chat("our Q3 plan?", false), Some("globex")).await;
    assert_eq!(harness::header(&b, "x-switchyard-cache"), "miss");
    assert_eq!(count(), 2);
    let a = ask(&g, chat("our Q3 plan?", false), Some("acme")).await;
    assert_eq!(harness::header(&a, "x-switchyard-cache"), "hit");
    assert_eq!(count(), 2);
    // No tenant: never cached under any tenant's entries, nor stored.
    for _ in 0..2 {
        let none = ask(&g, chat("our Q3 plan?", false), None).await;
        assert_eq!(harness::header(&none, "x-switchyard-cache"), "bypass");
    }
    assert_eq!(count(), 4);
}

#[tokio::test]
async fn failed_truncated_sampled_and_tool_requests_are_never_served_from_the_cache() {
    let (url, seen) = harness::echo().await;
    let g = gateway(&url, "semantic: false", "").await;
    let count = || seen.lock().unwrap().len();
    for stream in [false, true] {
        for prompt in ["tell me [fail]", "a long story [length]"] {
            let first = ask(&g, chat(prompt, stream), None).await;
            let _ = first.bytes().await;
            let second = ask(&g, chat(prompt, stream), None).await;
            assert_eq!(
                harness::header(&second, "x-switchyard-cache"),
                "miss",
                "{prompt}"
            );
            let _ = second.bytes().await;
        }
    }
    assert_eq!(count(), 8);
    let mut sampled = chat("a poem", false);
    sampled["temperature"] = json!(0.8);
    let mut tools = chat("weather?", false);
    tools["tools"] = json!([{"type": "function", "function": {"name": "weather", "parameters": {"type": "object"}}}]);
    for body in [sampled, tools] {
        for _ in 0..2 {
            let r = ask(&g, body.clone(), None).await;
            assert_eq!(harness::header(&r, "x-switchyard-cache"), "bypass");
        }
    }
    assert_eq!(count(), 12);
    // The same question after a different conversation is a different question.
    let first = json!({"model": "auto", "messages": [
        {"role": "user", "content": "I use Python."},
        {"role": "assistant", "content": "OK."},
        {"role": "user", "content": "How do I read a file?"}]});
    let mut other = first.clone();
    other["messages"][0]["content"] = json!("I use Rust.");
    assert_eq!(
        harness::header(&ask(&g, first.clone(), None).await, "x-switchyard-cache"),
        "miss"
    );
    assert_eq!(
        harness::header(&ask(&g, other, None).await, "x-switchyard-cache"),
        "miss"
    );
    assert_eq!(
        harness::header(&ask(&g, first, None).await, "x-switchyard-cache"),
        "hit"
    );
}

#[tokio::test]
async fn a_paraphrase_hits_by_meaning_and_an_unrelated_question_does_not() {
    let Ok(dir) = std::env::var("SWITCHYARD_MODEL_DIR") else {
        eprintln!("skipped: set SWITCHYARD_MODEL_DIR (scripts/test.sh does)");
        return;
    };
    let (url, seen) = harness::echo().await;
    let g = gateway(
        &url,
        "threshold: 0.8",
        &format!("signals: {{model: {{path: '{dir}'}}}}"),
    )
    .await;
    let first = ask(
        &g,
        chat("How can I combine two Python dicts into one?", false),
        None,
    )
    .await;
    assert_eq!(harness::header(&first, "x-switchyard-cache"), "miss");
    let first: Value = first.json().await.unwrap();
    let paraphrase = ask(
        &g,
        chat("How do I merge two dictionaries in Python?", false),
        None,
    )
    .await;
    assert_eq!(harness::header(&paraphrase, "x-switchyard-cache"), "hit");
    let paraphrase: Value = paraphrase.json().await.unwrap();
    assert_eq!(
        paraphrase["choices"][0]["message"]["content"],
        first["choices"][0]["message"]["content"]
    );
    let unrelated = ask(
        &g,
        chat("What is the boiling point of water at altitude?", false),
        None,
    )
    .await;
    assert_eq!(harness::header(&unrelated, "x-switchyard-cache"), "miss");
    assert_eq!(seen.lock().unwrap().len(), 2);
}

#[tokio::test]
async fn the_openai_sdk_reads_a_streamed_cache_hit() {
    let (url, seen) = harness::echo().await;
    let g = gateway(&url, "semantic: false", "").await;
    let Some(out) = harness::sdk_script("openai_cache.py", g.url()).await else {
        return;
    };
    assert_eq!(out[0]["cache"], "miss", "{out}");
    assert_eq!(out[1]["cache"], "hit", "{out}");
    assert_eq!(out[1]["text"], out[0]["text"], "{out}");
    assert_eq!(
        out[1]["text"], "You said: Name three prime numbers, please.",
        "{out}"
    );
    assert_eq!(out[1]["finish_reason"], "stop", "{out}");
    assert_eq!(
        out[1]["usage"]["total_tokens"], out[0]["usage"]["total_tokens"],
        "{out}"
    );
    assert_eq!(seen.lock().unwrap().len(), 1);
}

#[tokio::test]
async fn each_verified_caller_has_its_own_entries_whether_or_not_a_signal_identified_it() {
    let (url, seen) = harness::echo().await;
    // With an authz route the signals establish the caller; without one the cache
    // asks for it itself. Either way the same caller finds its answer, no other does.
    for authz in [
        "authz: [{name: admin, roles: [admin]}]\nroutes: [{name: admins, when: {authz: admin}, models: [m]}]",
        "",
    ] {
        let g = harness::gateway(&format!(
            "server: {{listen: '127.0.0.1:0'}}
models: [{{name: m}}]
pools: [{{name: p, model: m, context_window: 8K, endpoints: [{{url: '{url}'}}]}}]
signals:
  identity:
    trusted_headers: {{subject: x-user-id, trusted_proxies: ['127.0.0.1/32']}}
  {authz}
plugins:
  - {{name: cache, type: semantic_cache, semantic: false, scope: caller, global: true}}
default_route: {{models: [m]}}
"
        ))
        .await;
        let before = seen.lock().unwrap().len();
        let ask_as = |user: Option<&'static str>| {
            let mut request = reqwest::Client::new()
                .post(format!("{}/v1/chat/completions", g.url()))
                .json(&chat("my open tickets?", false));
            if let Some(user) = user {
                request = request.header("x-user-id", user);
            }
            async move { harness::header(&request.send().await.unwrap(), "x-switchyard-cache") }
        };
        assert_eq!(ask_as(Some("alice")).await, "miss", "{authz}");
        assert_eq!(ask_as(Some("bob")).await, "miss", "{authz}");
        assert_eq!(ask_as(Some("alice")).await, "hit", "{authz}");
        assert_eq!(ask_as(None).await, "bypass", "{authz}");
        assert_eq!(seen.lock().unwrap().len() - before, 3, "{authz}");
    }
}

/// The verifications counted on `route` with this match kind and result.
async fn verifications(g: &Gateway, route: &str, matched: &str, result: &str) -> f64 {
    harness::metric_sum(
        &g.url(),
        "switchyard_cache_verifications_total",
        &[("route", route), ("match", matched), ("result", result)],
    )
    .await
}

/// Waits (5 s at most) for a verification to be counted.
async fn verified(g: &Gateway, route: &str, matched: &str, result: &str) -> bool {
    for _ in 0..100 {
        if verifications(g, route, matched, result).await > 0.0 {
            return true;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    false
}

async fn verifying_gateway(url: &str, route: &str, cache: &str, signals: &str) -> Gateway {
    harness::gateway(&format!(
        "server: {{listen: '127.0.0.1:0'}}
models: [{{name: m}}]
pools: [{{name: p, model: m, context_window: 8K, endpoints: [{{url: '{url}'}}]}}]
{signals}
plugins:
  - {{name: cache, type: semantic_cache, verify_share: 1.0, {cache}}}
default_route: {{name: {route}, models: [m], plugins: [cache]}}
"
    ))
    .await
}

#[tokio::test]
async fn a_verified_hit_is_asked_again_upstream_after_the_client_has_it_and_agreement_is_counted() {
    let (url, seen) = harness::echo().await;
    let g = verifying_gateway(&url, "verified_exact", "semantic: false", "").await;
    let first = ask(&g, chat("What is a monad?", false), None).await;
    assert_eq!(harness::header(&first, "x-switchyard-cache"), "miss");
    // A streamed hit is verified with a whole request.
    let hit = ask(&g, chat("What is a monad?", true), None).await;
    assert_eq!(harness::header(&hit, "x-switchyard-cache"), "hit");
    let replayed = hit.text().await.unwrap();
    assert!(
        replayed.contains("You said: What is a monad?"),
        "{replayed}"
    );
    assert!(verified(&g, "verified_exact", "exact", "agreed").await);
    let seen = seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 2, "the first request, then the verification");
    assert!(seen[1].get("stream").is_none() && seen[1].get("stream_options").is_none());
    assert_eq!(seen[1]["messages"], seen[0]["messages"]);
    assert_eq!(
        verifications(&g, "verified_exact", "exact", "disagreed").await,
        0.0
    );
}

#[tokio::test]
async fn a_paraphrase_the_upstream_answers_differently_is_a_counted_false_hit_and_is_dropped() {
    let Ok(dir) = std::env::var("SWITCHYARD_MODEL_DIR") else {
        eprintln!("skipped: set SWITCHYARD_MODEL_DIR (scripts/test.sh does)");
        return;
    };
    let (url, seen) = harness::echo().await;
    // The echo upstream answers each wording with itself: a paraphrase that hits the
    // cache gets another answer upstream, whose embedding differs from the cached one.
    let g = verifying_gateway(
        &url,
        "verified_semantic",
        "threshold: 0.8, verify_threshold: 0.99",
        &format!("signals: {{model: {{path: '{dir}'}}}}"),
    )
    .await;
    let question = "How can I combine two Python dicts into one?";
    let first = ask(&g, chat(question, false), None).await;
    assert_eq!(harness::header(&first, "x-switchyard-cache"), "miss");
    let paraphrase = ask(
        &g,
        chat("How do I merge two dictionaries in Python?", false),
        None,
    )
    .await;
    assert_eq!(harness::header(&paraphrase, "x-switchyard-cache"), "hit");
    assert!(verified(&g, "verified_semantic", "semantic", "disagreed").await);
    assert_eq!(seen.lock().unwrap().len(), 2);
    // The false hit was dropped: the question itself is asked upstream again.
    let again = ask(&g, chat(question, false), None).await;
    assert_eq!(harness::header(&again, "x-switchyard-cache"), "miss");
    assert_eq!(seen.lock().unwrap().len(), 3);
    // The answers were compared by embedding (not left unknown).
    let compared = harness::metric_sum(
        &g.url(),
        "switchyard_cache_verify_similarity_count",
        &[("route", "verified_semantic")],
    )
    .await;
    assert!(compared >= 1.0, "{compared}");
}
