//! The conformance matrix: every client API against every upstream provider, whole
//! and streamed. Simulated engines speak OpenAI Chat Completions, Azure OpenAI and
//! Anthropic Messages, each requiring its key in its own header; every cell asks twice
//! with one long system prompt and must see the second call's prompt read from the
//! engine's cache, in the client's own usage fields.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::print_stderr
)]

mod harness;

use harness::header;
use serde_json::{Value, json};
use switchyard_engine::{Api, EngineConfig, EngineHandle};
use switchyard_fleet::GpuKind;

/// The key every engine requires: the value of an environment variable the test
/// runner sets, named in the gateway's `api_key_env`.
const KEY_ENV: &str = "CARGO_PKG_NAME";

async fn engine(api: Api, model: &str) -> EngineHandle {
    engine_with(api, model, 400).await
}

async fn engine_with(api: Api, model: &str, mean_output_tokens: u32) -> EngineHandle {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    switchyard_engine::serve(
        listener,
        EngineConfig {
            model: model.to_owned(),
            gpu: Some(GpuKind::H100),
            context_window: 16_384,
            mean_output_tokens,
            api,
            api_key: Some(std::env::var(KEY_ENV).unwrap()),
            ..EngineConfig::default()
        },
    )
    .await
    .unwrap()
}

struct Fleet {
    gateway: switchyard_gateway::Gateway,
    _engines: Vec<EngineHandle>,
}

/// Three models, one per provider: `oa` (OpenAI), `az` (Azure, deployment named by
/// its upstream name), `an` (Anthropic).
async fn fleet() -> Fleet {
    fleet_with(400).await
}

/// The fleet with engines whose answers are `mean` tokens long on average (from
/// mean/2 to 3·mean/2).
async fn fleet_with(mean: u32) -> Fleet {
    let oa = engine_with(Api::Openai, "oa", mean).await;
    let az = engine_with(Api::Azure, "gpt-az", mean).await;
    let an = engine_with(Api::Anthropic, "an", mean).await;
    let config = format!(
        "models: [{{name: oa}}, {{name: az, upstream_name: gpt-az}}, {{name: an}}]
pools:
  - {{name: oa, model: oa, context_window: 16K, endpoints: [{{url: '{}', api_key_env: {KEY_ENV}}}]}}
  - {{name: az, model: az, context_window: 16K, endpoints: [{{url: '{}', provider: azure, api_key_env: {KEY_ENV}}}]}}
  - {{name: an, model: an, context_window: 16K, endpoints: [{{url: '{}/v1', provider: anthropic, api_key_env: {KEY_ENV}}}]}}
default_route: {{models: [oa]}}
",
        oa.url(),
        az.url(),
        an.url()
    );
    Fleet {
        gateway: harness::gateway(&config).await,
        _engines: vec![oa, az, an],
    }
}

#[derive(Debug, Clone, Copy)]
enum Client {
    Chat,
    Messages,
    Responses,
}

/// The data of each event of an SSE body, with its event name (empty when none).
fn sse(text: &str) -> Vec<(String, String)> {
    text.split("\n\n")
        .filter(|e| !e.trim().is_empty())
        .map(|e| {
            let mut name = String::new();
            let mut data = String::new();
            for line in e.lines() {
                if let Some(n) = line.strip_prefix("event: ") {
                    name = n.to_owned();
                } else if let Some(d) = line.strip_prefix("data: ") {
                    data.push_str(d);
                }
            }
            (name, data)
        })
        .collect()
}

/// What one call came back with, read from the client API's own fields.
#[derive(Debug, Default)]
struct Seen {
    text: String,
    /// The stop as the client API names it.
    stop: String,
    prompt: u64,
    cached: u64,
    output: u64,
}

async fn ask(base: &str, client: Client, model: &str, system: &str, stream: bool) -> Seen {
    let http = reqwest::Client::new();
    let question = "Why does my program not compile?";
    let response = match client {
        Client::Chat => http
            .post(format!("{base}/v1/chat/completions"))
            .json(&json!({"model": model, "max_tokens": 12, "stream": stream,
                          "stream_options": if stream { json!({"include_usage": true}) } else { Value::Null },
                          "messages": [{"role": "system", "content": system},
                                       {"role": "user", "content": question}]})),
        Client::Messages => http
            .post(format!("{base}/v1/messages"))
            .header("anthropic-version", "2023-06-01")
            .json(&json!({"model": model, "max_tokens": 12, "stream": stream,
                          "system": [{"type": "text", "text": system,
                                      "cache_control": {"type": "ephemeral"}}],
                          "messages": [{"role": "user", "content": question}]})),
        Client::Responses => http
            .post(format!("{base}/v1/responses"))
            .json(&json!({"model": model, "max_output_tokens": 12, "stream": stream,
                          "instructions": system, "input": question})),
    }
    .send()
    .await
    .unwrap();
    let status = response.status();
    assert_eq!(header(&response, "x-switchyard-model"), model);
    let body = response.text().await.unwrap();
    assert_eq!(
        status, 200,
        "{client:?} → {model} (stream {stream}): {body}"
    );
    let mut seen = Seen::default();
    let n = |v: &Value, p: &str| v.pointer(p).and_then(Value::as_u64).unwrap_or(0);
    match (client, stream) {
        (Client::Chat, false) => {
            let v: Value = serde_json::from_str(&body).unwrap();
            seen.text = v["choices"][0]["message"]["content"]
                .as_str()
                .unwrap()
                .to_owned();
            seen.stop = v["choices"][0]["finish_reason"]
                .as_str()
                .unwrap()
                .to_owned();
            seen.prompt = n(&v, "/usage/prompt_tokens");
            seen.cached = n(&v, "/usage/prompt_tokens_details/cached_tokens");
            seen.output = n(&v, "/usage/completion_tokens");
        }
        (Client::Chat, true) => {
            let events = sse(&body);
            assert_eq!(events.last().unwrap().1, "[DONE]", "{body}");
            for (_, data) in &events[..events.len() - 1] {
                let v: Value = serde_json::from_str(data).unwrap();
                assert_eq!(v["object"], "chat.completion.chunk", "{data}");
                if let Some(t) = v
                    .pointer("/choices/0/delta/content")
                    .and_then(Value::as_str)
                {
                    seen.text.push_str(t);
                }
                if let Some(f) = v
                    .pointer("/choices/0/finish_reason")
                    .and_then(Value::as_str)
                {
                    seen.stop = f.to_owned();
                }
                if v["usage"].is_object() {
                    seen.prompt = n(&v, "/usage/prompt_tokens");
                    seen.cached = n(&v, "/usage/prompt_tokens_details/cached_tokens");
                    seen.output = n(&v, "/usage/completion_tokens");
                }
            }
        }
        (Client::Messages, false) => {
            let v: Value = serde_json::from_str(&body).unwrap();
            assert_eq!(v["type"], "message", "{v}");
            seen.text = v["content"][0]["text"].as_str().unwrap().to_owned();
            seen.stop = v["stop_reason"].as_str().unwrap().to_owned();
            seen.cached = n(&v, "/usage/cache_read_input_tokens");
            seen.prompt = n(&v, "/usage/input_tokens")
                + seen.cached
                + n(&v, "/usage/cache_creation_input_tokens");
            seen.output = n(&v, "/usage/output_tokens");
        }
        (Client::Messages, true) => {
            let events = sse(&body);
            assert_eq!(events.first().unwrap().0, "message_start", "{body}");
            assert_eq!(events.last().unwrap().0, "message_stop", "{body}");
            for (name, data) in &events {
                let v: Value = serde_json::from_str(data).unwrap();
                assert_eq!(v["type"], name.as_str());
                if let Some(t) = v.pointer("/delta/text").and_then(Value::as_str) {
                    seen.text.push_str(t);
                }
                if name == "message_delta" {
                    seen.stop = v["delta"]["stop_reason"].as_str().unwrap().to_owned();
                    seen.cached = n(&v, "/usage/cache_read_input_tokens");
                    seen.prompt = n(&v, "/usage/input_tokens")
                        + seen.cached
                        + n(&v, "/usage/cache_creation_input_tokens");
                    seen.output = n(&v, "/usage/output_tokens");
                }
            }
        }
        (Client::Responses, false) => {
            let v: Value = serde_json::from_str(&body).unwrap();
            assert_eq!(v["object"], "response", "{v}");
            assert!(v["id"].as_str().unwrap().starts_with("resp_"));
            seen.text = v["output"][0]["content"][0]["text"]
                .as_str()
                .unwrap()
                .to_owned();
            seen.stop = format!("{}/{}", v["status"], v["incomplete_details"]["reason"]);
            seen.prompt = n(&v, "/usage/input_tokens");
            seen.cached = n(&v, "/usage/input_tokens_details/cached_tokens");
            seen.output = n(&v, "/usage/output_tokens");
        }
        (Client::Responses, true) => {
            let events = sse(&body);
            assert_eq!(events.first().unwrap().0, "response.created", "{body}");
            for (i, (name, data)) in events.iter().enumerate() {
                let v: Value = serde_json::from_str(data).unwrap();
                assert_eq!(v["type"], name.as_str());
                assert_eq!(v["sequence_number"], i, "{data}");
                if name == "response.output_text.delta" {
                    seen.text.push_str(v["delta"].as_str().unwrap());
                }
            }
            let (name, data) = events.last().unwrap();
            assert_eq!(name, "response.incomplete", "{body}");
            let v: Value = serde_json::from_str(data).unwrap();
            let r = &v["response"];
            assert_eq!(r["output"][0]["content"][0]["text"], seen.text.as_str());
            seen.stop = format!("{}/{}", r["status"], r["incomplete_details"]["reason"]);
            seen.prompt = n(r, "/usage/input_tokens");
            seen.cached = n(r, "/usage/input_tokens_details/cached_tokens");
            seen.output = n(r, "/usage/output_tokens");
        }
    }
    seen
}

#[tokio::test]
async fn every_client_api_reaches_every_provider_with_cache_reads_reported() {
    let f = fleet().await;
    let base = f.gateway.url();
    for client in [Client::Chat, Client::Messages, Client::Responses] {
        for model in ["oa", "az", "an"] {
            for stream in [false, true] {
                let cell = format!("{client:?} → {model} (stream {stream})");
                // A system prompt of its own, so the first call finds nothing cached.
                let system = format!(
                    "{cell}: {}",
                    "You are a careful assistant who answers about programs. ".repeat(40)
                );
                let first = ask(&base, client, model, &system, stream).await;
                assert!(!first.text.is_empty(), "{cell}: {first:?}");
                let cut = match client {
                    Client::Chat => "length",
                    Client::Messages => "max_tokens",
                    Client::Responses => "\"incomplete\"/\"max_output_tokens\"",
                };
                assert_eq!(first.stop, cut, "{cell}");
                assert_eq!(first.output, 12, "{cell}: {first:?}");
                assert!(first.prompt > 400, "{cell}: {first:?}");
                assert_eq!(first.cached, 0, "{cell}: {first:?}");
                let again = ask(&base, client, model, &system, stream).await;
                assert!(
                    again.cached > 300 && again.cached < again.prompt,
                    "{cell}: the second call reads the system prompt from the cache: {again:?}"
                );
                assert_eq!(again.prompt, first.prompt, "{cell}");
            }
        }
    }
    // Each cell's calls are in the metrics' cached prompt tokens.
    let cached = harness::metric_sum(
        &base,
        "switchyard_tokens_total",
        &[("kind", "cached_prompt")],
    )
    .await;
    assert!(cached > 18.0 * 300.0, "{cached}");
}

#[tokio::test]
async fn what_a_provider_cannot_carry_is_refused_and_its_errors_reach_the_client() {
    let f = fleet().await;
    let base = f.gateway.url();
    let http = reqwest::Client::new();
    let chat = |model: &str, extra: Value| {
        let mut body = json!({"model": model, "max_tokens": 5,
                              "messages": [{"role": "user", "content": "hi"}]});
        for (k, v) in extra.as_object().unwrap() {
            body[k] = v.clone();
        }
        http.post(format!("{base}/v1/chat/completions"))
            .json(&body)
            .send()
    };
    // Two answers, or log probabilities, have no Messages equivalent: refused with the
    // field named, and the endpoint is not blamed.
    for (field, value) in [("n", json!(2)), ("logprobs", json!(true))] {
        let r = chat("an", json!({ field: value })).await.unwrap();
        assert_eq!(r.status(), 400, "{field}");
        let v: Value = r.json().await.unwrap();
        assert_eq!(v["error"]["param"], field, "{v}");
    }
    // The same request to an OpenAI-speaking model is fine.
    let r = chat("oa", json!({"n": 1, "logprobs": true})).await.unwrap();
    assert_eq!(r.status(), 200);
    let pools: Value = reqwest::get(format!("{base}/v1/pools"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(
        !pools.to_string().contains("\"ejected\":true"),
        "a refused translation never ejects an endpoint: {pools}"
    );
    // An Anthropic-speaking model's stop sequences and temperature cross over.
    let r = chat("an", json!({"stop": ["zz"], "temperature": 0.5}))
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let r = chat("an", json!({"temperature": 1.5})).await.unwrap();
    assert_eq!(r.status(), 400);
}

#[tokio::test]
async fn engines_check_their_own_apis_keys_and_versions() {
    let an = engine(Api::Anthropic, "an").await;
    let az = engine(Api::Azure, "gpt-az").await;
    let key = std::env::var(KEY_ENV).unwrap();
    let http = reqwest::Client::new();
    let message = json!({"model": "an", "max_tokens": 3,
                         "messages": [{"role": "user", "content": "hi"}]});
    let r = http
        .post(format!("{}/v1/messages", an.url()))
        .header("anthropic-version", "2023-06-01")
        .json(&message)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["type"], "error", "{v}");
    assert_eq!(v["error"]["type"], "authentication_error");
    let r = http
        .post(format!("{}/v1/messages", an.url()))
        .header("x-api-key", &key)
        .json(&message)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400, "anthropic-version is required");
    let r = http
        .post(format!("{}/v1/messages", an.url()))
        .header("x-api-key", &key)
        .header("anthropic-version", "2023-06-01")
        .json(&message)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["type"], "message");
    assert_eq!(v["usage"]["output_tokens"], 3);
    let chat = json!({"model": "gpt-az", "max_tokens": 3,
                      "messages": [{"role": "user", "content": "hi"}]});
    let path = format!("{}/openai/deployments/gpt-az/chat/completions", az.url());
    let r = http
        .post(&path)
        .header("api-key", &key)
        .json(&chat)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400, "api-version is required");
    let r = http
        .post(format!("{path}?api-version=2024-10-21"))
        .bearer_auth(&key)
        .json(&chat)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401, "Azure reads the key from api-key");
    let r = http
        .post(format!("{path}?api-version=2024-10-21"))
        .header("api-key", &key)
        .json(&chat)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
}

#[tokio::test]
async fn the_official_sdks_reach_an_openai_and_an_anthropic_engine() {
    // Answers of 4 to 12 tokens: every one ends on its own, under any cap below.
    let f = fleet_with(8).await;
    let Some(seen) = harness::sdk_script("providers_client.py", f.gateway.url()).await else {
        return;
    };
    for model in ["oa", "an"] {
        let s = &seen[model];
        assert!(!s["chat_text"].as_str().unwrap().is_empty(), "{model}: {s}");
        assert_eq!(s["chat_finish"], "stop", "{model}");
        assert!(!s["chat_stream_text"].as_str().unwrap().is_empty());
        assert!(
            s["chat_stream_cached"].as_u64().unwrap() > 100,
            "{model}: the repeated system prompt is read from the cache: {s}"
        );
        let r = &s["responses"];
        assert_eq!(
            r["statuses"],
            json!(["completed", "completed", "completed", "completed"]),
            "{model}: {r}"
        );
        assert_eq!(r["previous"], json!([true, true, true]), "{model}");
        let texts = r["texts"].as_array().unwrap();
        assert!(texts.iter().all(|t| !t.as_str().unwrap().is_empty()), "{r}");
        assert_eq!(r["streamed_final_text"], texts[2], "{model}");
        assert_eq!(r["helper_text"], texts[3], "{model}");
        let input: Vec<u64> = r["input_tokens"]
            .as_array()
            .unwrap()
            .iter()
            .map(|n| n.as_u64().unwrap())
            .collect();
        assert!(
            input[3] > input[2],
            "{model}: each turn carries the conversation before it: {input:?}"
        );
        let cached: Vec<u64> = r["cached"]
            .as_array()
            .unwrap()
            .iter()
            .map(|n| n.as_u64().unwrap())
            .collect();
        assert!(
            cached[2] > 0 && cached[3] > 0,
            "{model}: later turns read earlier ones from the engine's cache: {cached:?}"
        );
        assert_eq!(s["retrieved"], true, "{model}");
        assert_eq!(
            s["input_items"],
            json!([
                "user",
                "assistant",
                "user",
                "assistant",
                "user",
                "assistant",
                "user"
            ]),
            "{model}"
        );
        assert_eq!(s["after_delete"], 404);
        assert_eq!(s["chain_after_delete"], 404);
        assert!(!s["messages_text"].as_str().unwrap().is_empty(), "{model}");
        assert_eq!(s["messages_stop"], "end_turn", "{model}");
        assert!(!s["messages_stream_text"].as_str().unwrap().is_empty());
        assert!(
            s["messages_stream_cache_read"].as_u64().unwrap() > 100,
            "{model}: {s}"
        );
        assert!(s["count"].as_u64().unwrap() > 200, "{model}");
    }
}

#[tokio::test]
async fn a_route_may_opt_into_lossy_translation_and_is_told_what_was_left_out() {
    let an = engine(Api::Anthropic, "an").await;
    let dsl = format!(
        "MODEL an {{}}
POOL an {{ model: an, context_window: 16K, endpoints: [{{ url: \"{}\", provider: anthropic, api_key_env: {KEY_ENV} }}] }}
SIGNAL keyword loose {{ keywords: [roughly] }}
ROUTE loose {{
  PRIORITY 10
  WHEN keyword(\"loose\")
  MODEL an
  LOSSY_TRANSLATION true
}}
DEFAULT ROUTE {{ MODEL an }}
",
        an.url()
    );
    let policy =
        switchyard_policy::Policy::compile(switchyard_policy::dsl::parse_dsl(&dsl).unwrap())
            .unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let g = switchyard_gateway::Gateway::start(
        listener,
        switchyard_gateway::Runtime::new(policy).unwrap(),
    )
    .unwrap();
    let ask = |prompt: &str| {
        reqwest::Client::new()
            .post(format!("{}/v1/chat/completions", g.url()))
            .json(
                &json!({"model": "auto", "max_tokens": 4, "n": 2, "logprobs": true,
                          "messages": [{"role": "user", "content": prompt}]}),
            )
            .send()
    };
    let strict = ask("hello").await.unwrap();
    assert_eq!(strict.status(), 400, "the default route refuses");
    assert_eq!(header(&strict, "x-switchyard-dropped"), "");
    let loose = ask("roughly hello").await.unwrap();
    assert_eq!(loose.status(), 200);
    assert_eq!(header(&loose, "x-switchyard-route"), "loose");
    assert_eq!(header(&loose, "x-switchyard-dropped"), "logprobs, n");
    let v: Value = loose.json().await.unwrap();
    assert_eq!(v["choices"].as_array().unwrap().len(), 1);
}

/// An OpenAI endpoint with `prompt_cache_key: true` is sent a key naming the request's
/// stable prefix, whatever API the client spoke: Anthropic breakpoints become the key
/// (and are left out of the body); the client's own key is kept; other endpoints get
/// none; an Anthropic endpoint cannot ask for one.
#[tokio::test]
async fn an_openai_endpoint_may_be_sent_a_prompt_cache_key_for_the_stable_prefix() {
    let (upstream, seen) = harness::echo().await;
    let g = harness::gateway(&format!(
        "models: [{{name: keyed}}, {{name: plain}}]
pools:
  - {{name: keyed, model: keyed, context_window: 16K, endpoints: [{{url: '{upstream}', prompt_cache_key: true}}]}}
  - {{name: plain, model: plain, context_window: 16K, endpoints: [{{url: '{upstream}'}}]}}
default_route: {{models: [keyed]}}
"
    ))
    .await;
    let client = reqwest::Client::new();
    let post = |path: &str, body: Value| {
        client
            .post(format!("{}{path}", g.url()))
            .header("anthropic-version", "2023-06-01")
            .json(&body)
            .send()
    };
    let system = "You review Rust code for a storage team. ".repeat(20);
    let messages = |turns: &[&str]| {
        json!({"model": "keyed", "max_tokens": 8,
               "system": [{"type": "text", "text": system, "cache_control": {"type": "ephemeral"}}],
               "messages": turns.iter().enumerate().map(|(i, t)| json!({
                   "role": if i % 2 == 0 { "user" } else { "assistant" },
                   "content": [{"type": "text", "text": t}]})).collect::<Vec<_>>()})
    };
    let chat = |model: &str, system: &str| {
        json!({"model": model, "max_tokens": 8, "messages": [
            {"role": "system", "content": system}, {"role": "user", "content": "hi"}]})
    };
    let sent = [
        post("/v1/messages", messages(&["first"])).await.unwrap(),
        post("/v1/messages", messages(&["first", "ok", "second"]))
            .await
            .unwrap(),
        post("/v1/chat/completions", chat("keyed", &system))
            .await
            .unwrap(),
        post("/v1/chat/completions", chat("keyed", "Another prompt."))
            .await
            .unwrap(),
        post(
            "/v1/responses",
            json!({"model": "keyed", "instructions": system, "input": "hi",
                   "prompt_cache_key": "mine", "store": false}),
        )
        .await
        .unwrap(),
        post("/v1/chat/completions", chat("plain", &system))
            .await
            .unwrap(),
    ];
    for response in &sent {
        assert_eq!(response.status(), 200);
    }
    let seen = seen.lock().unwrap().clone();
    let key = |i: usize| seen[i].get("prompt_cache_key").cloned();
    let first = key(0).expect("a key for the breakpoint's prefix");
    assert!(first.as_str().unwrap().starts_with("sy-"), "{first}");
    assert!(
        !seen[0].to_string().contains("cache_control"),
        "{}",
        seen[0]
    );
    assert_eq!(
        key(1).as_ref(),
        Some(&first),
        "a later turn, the same prefix"
    );
    assert_eq!(
        key(2).as_ref(),
        Some(&first),
        "the same prefix from a Chat client"
    );
    assert!(key(3).is_some() && key(3).as_ref() != Some(&first));
    assert_eq!(key(4), Some(json!("mine")), "the client's own key is kept");
    assert_eq!(key(5), None, "an endpoint that did not ask gets none");

    let refused = switchyard_policy::Policy::compile(
        switchyard_policy::parse_config(
            "models: [{name: an}]
pools: [{name: an, model: an, context_window: 16K, endpoints: [{url: 'http://127.0.0.1:1', provider: anthropic, prompt_cache_key: true}]}]
default_route: {models: [an]}
",
        )
        .unwrap(),
    );
    let error = match refused {
        Ok(_) => panic!("an anthropic endpoint asking for prompt_cache_key was accepted"),
        Err(error) => format!("{error:?}"),
    };
    assert!(error.contains("prompt_cache_key"), "{error}");
}
