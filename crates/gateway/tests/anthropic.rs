//! Anthropic's Messages API in front of Chat Completions engines: the same routing,
//! answers and streams in Messages' shapes, cache reads reported, errors in its shape.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::print_stderr
)]

mod harness;

use axum::body::Bytes;
use axum::response::{IntoResponse, Response};
use harness::{DEFAULT_UPSTREAM, header, stack};
use serde_json::{Value, json};
use std::sync::{Arc, Mutex};

async fn messages(base: &str, body: Value) -> reqwest::Response {
    reqwest::Client::new()
        .post(format!("{base}/v1/messages"))
        .header("anthropic-version", "2023-06-01")
        .header("x-api-key", "k")
        .json(&body)
        .send()
        .await
        .unwrap()
}

/// `(event name, data)` of each event of a Messages stream, checking that each event's
/// name is its data's `type`.
fn events(text: &str) -> Vec<(String, Value)> {
    text.split("\n\n")
        .filter(|e| !e.trim().is_empty())
        .map(|e| {
            let (name, data) = e.split_once('\n').unwrap();
            let name = name.strip_prefix("event: ").unwrap().to_owned();
            let data: Value = serde_json::from_str(data.strip_prefix("data: ").unwrap()).unwrap();
            assert_eq!(data["type"], name.as_str(), "{e}");
            (name, data)
        })
        .collect()
}

#[tokio::test]
async fn messages_are_routed_answered_and_streamed_in_anthropics_shape() {
    let (s, log) = harness::logging_stack("anthropic").await;
    let base = s.gateway.url();
    let system = "You are a careful assistant who answers about programs. ".repeat(40);
    let body = |stream: bool| {
        json!({"model": "auto", "max_tokens": 12, "stream": stream,
               "system": [{"type": "text", "text": system, "cache_control": {"type": "ephemeral"}}],
               "messages": [{"role": "user", "content": "Why does my rust program not compile?"}]})
    };
    let first = messages(&base, body(false)).await;
    assert_eq!(first.status(), 200);
    assert_eq!(
        header(&first, "x-switchyard-route"),
        "coding",
        "signals read the canonical conversation"
    );
    assert_eq!(header(&first, "x-switchyard-model"), "coder");
    let first: Value = first.json().await.unwrap();
    assert_eq!(first["type"], "message", "{first}");
    assert_eq!(first["role"], "assistant");
    assert!(first["id"].as_str().unwrap().starts_with("msg_"));
    assert_eq!(first["content"][0]["type"], "text");
    assert!(!first["content"][0]["text"].as_str().unwrap().is_empty());
    assert_eq!(first["stop_reason"], "max_tokens");
    assert_eq!(first["usage"]["output_tokens"], 12);
    assert_eq!(first["usage"]["cache_read_input_tokens"], 0);
    let prompt = first["usage"]["input_tokens"].as_u64().unwrap();
    assert!(prompt > 400, "{first}");
    // The same system prompt again: the engine holds it, and the client is told.
    let again: Value = messages(&base, body(false)).await.json().await.unwrap();
    let cached = again["usage"]["cache_read_input_tokens"].as_u64().unwrap();
    assert!(cached > 300, "{again}");
    assert_eq!(
        again["usage"]["input_tokens"].as_u64().unwrap() + cached,
        prompt,
        "input_tokens counts what was not read from the cache"
    );
    // The decision log has the client's API and the cache reads.
    let mut lines: Vec<Value> = Vec::new();
    for _ in 0..100 {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        lines = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        if lines.len() >= 2 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert_eq!(lines.len(), 2, "{lines:?}");
    assert!(lines.iter().all(|l| l["api"] == "anthropic_messages"));
    assert!(lines[0].get("cached_tokens").is_none(), "{}", lines[0]);
    assert_eq!(lines[1]["cached_tokens"].as_u64(), Some(cached));
    // Streamed: message_start … message_stop, usage in message_delta.
    let streamed = messages(&base, body(true)).await;
    assert_eq!(streamed.status(), 200);
    assert_eq!(header(&streamed, "content-type"), "text/event-stream");
    assert_eq!(header(&streamed, "x-switchyard-route"), "coding");
    let got = events(&streamed.text().await.unwrap());
    let names: Vec<&str> = got.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names.first(), Some(&"message_start"));
    assert_eq!(names[1], "content_block_start");
    assert_eq!(
        names[names.len() - 3..],
        ["content_block_stop", "message_delta", "message_stop"]
    );
    let deltas = names
        .iter()
        .filter(|n| **n == "content_block_delta")
        .count();
    assert_eq!(deltas, 12, "one text delta per engine token");
    let delta = &got[got.len() - 2].1;
    assert_eq!(delta["delta"]["stop_reason"], "max_tokens");
    assert_eq!(delta["usage"]["output_tokens"], 12);
    assert!(delta["usage"]["cache_read_input_tokens"].as_u64().unwrap() > 300);
    // count_tokens counts the same prompt the gateway counts for routing.
    let count: Value = reqwest::Client::new()
        .post(format!("{base}/v1/messages/count_tokens"))
        .header("anthropic-version", "2023-06-01")
        .json(&json!({"model": "auto", "system": system,
                      "messages": [{"role": "user", "content": "Why does my rust program not compile?"}]}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let counted = count["input_tokens"].as_u64().unwrap();
    assert!(
        counted > 400 && counted.abs_diff(prompt) < prompt / 4,
        "{count} vs {prompt}"
    );
    // Models in Anthropic's shape for Anthropic clients.
    let models: Value = reqwest::Client::new()
        .get(format!("{base}/v1/models"))
        .header("anthropic-version", "2023-06-01")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(models["has_more"], false);
    assert_eq!(models["data"][0]["type"], "model");
    let ids: Vec<&str> = models["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["auto", "coder", "chat"]);
}

#[tokio::test]
async fn bad_requests_and_upstream_errors_come_back_in_anthropics_error_shape() {
    let s = stack("", DEFAULT_UPSTREAM).await;
    let base = s.gateway.url();
    let error = |r: Value| {
        assert_eq!(r["type"], "error", "{r}");
        (
            r["error"]["type"].as_str().unwrap().to_owned(),
            r["error"]["message"].as_str().unwrap().to_owned(),
        )
    };
    let r = messages(
        &base,
        json!({"model": "chat", "messages": [{"role": "user", "content": "hi"}]}),
    )
    .await;
    assert_eq!(r.status(), 400);
    let (kind, message) = error(r.json().await.unwrap());
    assert_eq!(kind, "invalid_request_error");
    assert!(message.starts_with("max_tokens:"), "{message}");
    let r = messages(
        &base,
        json!({"model": "nope", "max_tokens": 5, "messages": [{"role": "user", "content": "hi"}]}),
    )
    .await;
    assert_eq!(r.status(), 404);
    assert_eq!(error(r.json().await.unwrap()).0, "not_found_error");
    let r = messages(
        &base,
        json!({"model": "chat", "max_tokens": 5, "thinking": {"type": "enabled", "budget_tokens": 2000},
               "messages": [{"role": "user", "content": "hi"}]}),
    )
    .await;
    assert_eq!(r.status(), 400);
    assert!(error(r.json().await.unwrap()).1.starts_with("thinking:"));
    let r = reqwest::Client::new()
        .post(format!("{base}/v1/messages"))
        .header("anthropic-version", "1999-01-01")
        .json(&json!({"model": "chat", "max_tokens": 5, "messages": [{"role": "user", "content": "hi"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    assert!(
        error(r.json().await.unwrap())
            .1
            .contains("anthropic-version")
    );
    let r = reqwest::Client::new()
        .post(format!("{base}/v1/messages"))
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 415);
    assert_eq!(error(r.json().await.unwrap()).0, "invalid_request_error");
    // A prompt no pool holds: refused by the gateway, in Anthropic's shape.
    let r = messages(
        &base,
        json!({"model": "chat", "max_tokens": 10,
               "messages": [{"role": "user", "content": "word ".repeat(90_000)}]}),
    )
    .await;
    assert_eq!(r.status(), 400);
    let (kind, message) = error(r.json().await.unwrap());
    assert_eq!(kind, "invalid_request_error");
    assert!(message.contains("largest pool"), "{message}");
    // An upstream that fails: the gateway's 502, translated.
    s.coder.set_faults(switchyard_engine::Faults {
        error_rate: 1.0,
        ..switchyard_engine::Faults::default()
    });
    let r = messages(
        &base,
        json!({"model": "coder", "max_tokens": 10, "messages": [{"role": "user", "content": "hi"}]}),
    )
    .await;
    assert!(r.status().is_server_error(), "{}", r.status());
    assert_eq!(error(r.json().await.unwrap()).0, "api_error");
    // An upstream that fails mid-stream: the stream ends with an error event.
    s.coder.set_faults(switchyard_engine::Faults {
        drop_after_tokens: Some(2),
        ..switchyard_engine::Faults::default()
    });
    let r = messages(
        &base,
        json!({"model": "coder", "max_tokens": 10, "stream": true,
               "messages": [{"role": "user", "content": "hi"}]}),
    )
    .await;
    assert_eq!(r.status(), 200);
    let got = events(&r.text().await.unwrap());
    assert_eq!(got.last().unwrap().0, "error", "{got:?}");
    assert!(!got.iter().any(|(n, _)| n == "message_stop"));
}

/// An upstream that answers with a tool call (whole or streamed) and records what it
/// was sent.
async fn tool_upstream() -> (String, Arc<Mutex<Vec<Value>>>) {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let record = Arc::clone(&seen);
    let app = axum::Router::new().route(
        "/v1/chat/completions",
        axum::routing::post(move |body: Bytes| {
            let record = Arc::clone(&record);
            async move {
                let request: Value = serde_json::from_slice(&body).unwrap();
                let stream = request["stream"] == true;
                record.lock().unwrap().push(request);
                tool_answer(stream)
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (url, seen)
}

fn tool_answer(stream: bool) -> Response {
    let usage = json!({"prompt_tokens": 40, "completion_tokens": 6, "total_tokens": 46,
                       "prompt_tokens_details": {"cached_tokens": 32}});
    if !stream {
        return axum::Json(json!({
            "id": "chatcmpl-t", "object": "chat.completion", "created": 0, "model": "m",
            "choices": [{"index": 0, "finish_reason": "tool_calls", "message": {
                "role": "assistant", "content": null, "tool_calls": [{"id": "call_1", "type": "function",
                "function": {"name": "get_weather", "arguments": "{\"city\":\"Paris\"}"}}]}}],
            "usage": usage}))
        .into_response();
    }
    let chunk = |delta: Value, finish: Value| {
        json!({"id": "chatcmpl-t", "object": "chat.completion.chunk", "created": 0, "model": "m",
               "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]})
    };
    let chunks = [
        chunk(
            json!({"role": "assistant", "tool_calls": [{"index": 0, "id": "call_1", "type": "function",
                   "function": {"name": "get_weather", "arguments": ""}}]}),
            Value::Null,
        ),
        chunk(
            json!({"tool_calls": [{"index": 0, "function": {"arguments": "{\"city\":"}}]}),
            Value::Null,
        ),
        chunk(
            json!({"tool_calls": [{"index": 0, "function": {"arguments": "\"Paris\"}"}}]}),
            Value::Null,
        ),
        chunk(json!({}), json!("tool_calls")),
        json!({"id": "chatcmpl-t", "object": "chat.completion.chunk", "created": 0, "model": "m",
               "choices": [], "usage": usage}),
    ];
    let mut text: String = chunks.iter().map(|c| format!("data: {c}\n\n")).collect();
    text.push_str("data: [DONE]\n\n");
    ([("content-type", "text/event-stream")], text).into_response()
}

#[tokio::test]
async fn tools_and_tool_results_cross_both_ways_without_anthropic_markers_upstream() {
    let (url, seen) = tool_upstream().await;
    let g = harness::gateway(&format!(
        "models: [{{name: m}}]\npools: [{{name: p, model: m, context_window: 8K, endpoints: [{{url: '{url}'}}]}}]\ndefault_route: {{models: [m]}}\n"
    ))
    .await;
    let base = g.url();
    let tools = json!([{"name": "get_weather", "description": "Weather of a city",
                        "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}},
                        "cache_control": {"type": "ephemeral"}}]);
    let history = json!([
        {"role": "user", "content": [{"type": "text", "text": "Weather in Paris?",
                                      "cache_control": {"type": "ephemeral"}}]},
        {"role": "assistant", "content": [{"type": "tool_use", "id": "call_0", "name": "get_weather",
                                           "input": {"city": "Paris"}}]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "call_0", "content": "18C"},
                                     {"type": "text", "text": "And again?"}]},
    ]);
    let whole: Value = messages(
        &base,
        json!({"model": "m", "max_tokens": 50, "tools": tools, "messages": history,
               "tool_choice": {"type": "tool", "name": "get_weather"}}),
    )
    .await
    .json()
    .await
    .unwrap();
    assert_eq!(whole["stop_reason"], "tool_use", "{whole}");
    assert_eq!(whole["content"][0]["type"], "tool_use");
    assert_eq!(whole["content"][0]["id"], "call_1");
    assert_eq!(whole["content"][0]["input"], json!({"city": "Paris"}));
    assert_eq!(whole["usage"]["cache_read_input_tokens"], 32);
    assert_eq!(whole["usage"]["input_tokens"], 8);
    let sent = seen.lock().unwrap()[0].clone();
    assert!(!sent.to_string().contains("cache_control"), "{sent}");
    assert_eq!(sent["tools"][0]["function"]["name"], "get_weather");
    assert_eq!(
        sent["tool_choice"],
        json!({"type": "function", "function": {"name": "get_weather"}})
    );
    let roles: Vec<&str> = sent["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["role"].as_str().unwrap())
        .collect();
    assert_eq!(roles, ["user", "assistant", "tool", "user"]);
    assert_eq!(sent["messages"][1]["tool_calls"][0]["id"], "call_0");
    assert_eq!(sent["messages"][2]["tool_call_id"], "call_0");
    assert_eq!(sent["max_tokens"], 50);
    let streamed = messages(
        &base,
        json!({"model": "m", "max_tokens": 50, "stream": true, "tools": tools, "messages": history}),
    )
    .await;
    let got = events(&streamed.text().await.unwrap());
    let start = got
        .iter()
        .find(|(n, _)| n == "content_block_start")
        .unwrap();
    assert_eq!(start.1["content_block"]["type"], "tool_use");
    assert_eq!(start.1["content_block"]["name"], "get_weather");
    let partial: String = got
        .iter()
        .filter_map(|(_, d)| d["delta"]["partial_json"].as_str())
        .collect();
    assert_eq!(
        serde_json::from_str::<Value>(&partial).unwrap(),
        json!({"city": "Paris"})
    );
    let delta = &got.iter().find(|(n, _)| n == "message_delta").unwrap().1;
    assert_eq!(delta["delta"]["stop_reason"], "tool_use");
    assert_eq!(delta["usage"]["cache_read_input_tokens"], 32);
    assert_eq!(
        seen.lock().unwrap()[1]["stream_options"]["include_usage"],
        true
    );
}

#[tokio::test]
async fn the_anthropic_sdk_works_against_the_gateway() {
    let s = stack("", DEFAULT_UPSTREAM).await;
    let (url, seen) = tool_upstream().await;
    let g = harness::gateway(&format!(
        "models: [{{name: m}}]\npools: [{{name: p, model: m, context_window: 8K, endpoints: [{{url: '{url}'}}]}}]\ndefault_route: {{models: [m]}}\n"
    ))
    .await;
    let Some(seen_by_sdk) = harness::sdk_script(
        "anthropic_client.py",
        format!("{} {}", s.gateway.url(), g.url()),
    )
    .await
    else {
        return;
    };
    let out = seen_by_sdk;
    assert_eq!(out["route"], "coding", "{out}");
    assert!(!out["text"].as_str().unwrap().is_empty());
    assert_eq!(out["stop_reason"], "max_tokens");
    assert_eq!(out["usage"]["output_tokens"], 12);
    assert!(!out["stream_text"].as_str().unwrap().is_empty());
    assert_eq!(out["stream_usage"]["output_tokens"], 9, "{out}");
    assert!(
        out["stream_usage"]["cache_read_input_tokens"]
            .as_u64()
            .unwrap()
            > 200,
        "the second request with the same system prompt reads it from the cache: {out}"
    );
    assert_eq!(out["stream_stop_reason"], "max_tokens");
    assert!(out["count"].as_u64().unwrap() > 200);
    assert_eq!(out["not_found"], 404);
    assert_eq!(out["not_found_type"], "not_found_error");
    assert!(
        out["bad"].as_str().unwrap().starts_with("max_tokens"),
        "{out}"
    );
    assert_eq!(out["models"], json!(["auto", "coder", "chat"]));
    assert_eq!(
        out["tool"],
        json!({"name": "get_weather", "input": {"city": "Paris"}, "stop_reason": "tool_use"})
    );
    assert_eq!(out["stream_tool"]["input"], json!({"city": "Paris"}));
    assert_eq!(out["stream_tool"]["cache_read"], 32);
    let followup = seen.lock().unwrap()[1].clone();
    assert_eq!(followup["messages"][2]["role"], "tool", "{followup}");
}
