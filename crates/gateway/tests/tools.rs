//! Tool permissions end to end, through the official OpenAI Python SDK: tools a role
//! may not use are stripped from the request or refuse it, and a model's call of a
//! forbidden tool (one it was never offered) is refused, in whole answers and in
//! streamed tool-call deltas.

#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

mod harness;

use axum::body::{Body, Bytes};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use std::sync::{Arc, Mutex};

/// An upstream that calls the tool the last user message names (`call NAME`), whole or
/// streamed (the name in the first delta, the arguments in the next), and records the
/// tools each request offered.
async fn tool_caller() -> (String, Arc<Mutex<Vec<Vec<String>>>>) {
    let offered = Arc::new(Mutex::new(Vec::new()));
    let record = Arc::clone(&offered);
    let app = axum::Router::new().route(
        "/v1/chat/completions",
        axum::routing::post(move |body: Bytes| {
            let record = Arc::clone(&record);
            async move {
                let request: Value = serde_json::from_slice(&body).unwrap();
                let tools: Vec<String> = request["tools"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|t| t["function"]["name"].as_str().map(str::to_owned))
                    .collect();
                record.lock().unwrap().push(tools);
                let said = request["messages"][0]["content"]
                    .as_str()
                    .unwrap_or_default();
                let tool = said.strip_prefix("call ").unwrap_or("none").to_owned();
                answer(&tool, request["stream"] == true)
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (url, offered)
}

fn answer(tool: &str, stream: bool) -> Response {
    if !stream {
        return axum::Json(
            json!({"id": "x", "object": "chat.completion", "created": 0, "model": "m",
            "choices": [{"index": 0, "finish_reason": "tool_calls", "message": {"role": "assistant",
                "content": null, "tool_calls": [{"id": "call_1", "type": "function",
                    "function": {"name": tool, "arguments": "{}"}}]}}],
            "usage": {"prompt_tokens": 5, "completion_tokens": 3, "total_tokens": 8}}),
        )
        .into_response();
    }
    let event = |delta: Value, finish: Value| {
        format!(
            "data: {}\n\n",
            json!({"id": "x", "object": "chat.completion.chunk", "created": 0, "model": "m",
                   "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]})
        )
    };
    let events = vec![
        event(json!({"role": "assistant", "content": null}), Value::Null),
        event(
            json!({"tool_calls": [{"index": 0, "id": "call_1", "type": "function",
                                   "function": {"name": tool, "arguments": ""}}]}),
            Value::Null,
        ),
        event(
            json!({"tool_calls": [{"index": 0, "function": {"arguments": "{}"}}]}),
            Value::Null,
        ),
        event(json!({}), json!("tool_calls")),
        "data: [DONE]\n\n".to_owned(),
    ];
    let stream = futures_util::stream::iter(events.into_iter().map(Ok::<_, std::io::Error>));
    Response::builder()
        .header("content-type", "text/event-stream")
        .body(Body::from_stream(stream))
        .unwrap()
}

fn config(upstream: &str, mode: &str) -> String {
    format!(
        "server: {{listen: '127.0.0.1:0'}}
models: [{{name: m}}]
pools: [{{name: p, model: m, context_window: 8K, endpoints: [{{url: '{upstream}'}}]}}]
signals:
  identity:
    trusted_headers: {{subject: x-user-id, roles: x-user-roles, trusted_proxies: ['127.0.0.1/32']}}
plugins:
  - {{name: tools, type: tool_permissions, mode: {mode}, global: true, rules: [
      {{roles: [admin], allow: ['*']}},
      {{roles: ['*'], allow: ['search_*']}}]}}
default_route: {{models: [m]}}
"
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tools_a_role_may_not_use_are_stripped_or_blocked_and_their_calls_refused() {
    let (upstream, offered) = tool_caller().await;
    let strip = harness::gateway(&config(&upstream, "strip")).await;
    let Some(seen) =
        harness::sdk_script("openai_tools.py", format!("{} support", strip.url())).await
    else {
        return;
    };
    // Strip: the upstream was offered only search_docs; calls of it pass, whole and
    // streamed; the model's call of delete_user (never offered) is refused: a 403 for
    // a whole answer, an error in the SDK for a stream.
    assert!(
        offered
            .lock()
            .unwrap()
            .iter()
            .all(|tools| tools == &["search_docs"]),
        "{offered:?}"
    );
    assert_eq!(seen["search_docs_whole"], json!({"calls": ["search_docs"]}));
    assert_eq!(
        seen["search_docs_stream"],
        json!({"calls": ["search_docs"]})
    );
    assert_eq!(
        seen["delete_user_whole"],
        json!({"status": 403, "code": "tool_forbidden"})
    );
    assert_eq!(seen["delete_user_stream"]["error"], "APIError", "{seen}");
    assert!(
        seen["delete_user_stream"]["message"]
            .as_str()
            .unwrap()
            .contains("delete_user"),
        "{seen}"
    );

    // An admin may use everything: offered both, and both calls pass.
    offered.lock().unwrap().clear();
    let seen = harness::sdk_script("openai_tools.py", format!("{} admin", strip.url()))
        .await
        .unwrap();
    assert_eq!(
        seen["delete_user_stream"],
        json!({"calls": ["delete_user"]})
    );
    assert!(
        offered
            .lock()
            .unwrap()
            .iter()
            .all(|tools| tools == &["search_docs", "delete_user"])
    );

    // Block: a request offering delete_user to a support role never leaves.
    offered.lock().unwrap().clear();
    let block = harness::gateway(&config(&upstream, "block")).await;
    let seen = harness::sdk_script("openai_tools.py", format!("{} support", block.url()))
        .await
        .unwrap();
    for case in [
        "search_docs_whole",
        "search_docs_stream",
        "delete_user_whole",
        "delete_user_stream",
    ] {
        assert_eq!(
            seen[case],
            json!({"status": 403, "code": "tool_forbidden"}),
            "{case}: {seen}"
        );
    }
    assert!(offered.lock().unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_with_many_tools_keeps_the_relevant_ones_and_those_it_used() {
    let Ok(dir) = std::env::var("SWITCHYARD_MODEL_DIR") else {
        eprintln!("skipped: set SWITCHYARD_MODEL_DIR (scripts/test.sh does)");
        return;
    };
    let (upstream, offered) = tool_caller().await;
    let g = harness::gateway(&format!(
        "server: {{listen: '127.0.0.1:0'}}
models: [{{name: m}}]
pools: [{{name: p, model: m, context_window: 8K, endpoints: [{{url: '{upstream}'}}]}}]
signals: {{model: {{path: '{dir}'}}}}
plugins:
  - {{name: fewer_tools, type: tool_selection, max_tools: 4, keep: 2, wait_ms: 5000, global: true}}
default_route: {{models: [m]}}
"
    ))
    .await;
    let tool = |name: &str, description: &str| {
        json!({"type": "function", "function": {"name": name, "description": description,
               "parameters": {"type": "object", "properties": {}}}})
    };
    let tools = json!([
        tool("get_stock_price", "Current share price of a listed company"),
        tool("send_email", "Send an e-mail message to a recipient"),
        tool(
            "create_calendar_event",
            "Add a meeting to the user's calendar"
        ),
        tool(
            "get_weather",
            "Weather forecast (temperature, rain, wind) for a city and day"
        ),
        tool("search_flights", "Find flights between two airports"),
        tool("translate_text", "Translate text into another language"),
        tool("convert_currency", "Convert an amount between currencies"),
        tool("play_music", "Play a song or playlist"),
    ]);
    let body = json!({"model": "auto", "tools": tools, "messages": [
        {"role": "user", "content": "Email Bob that I'm late."},
        {"role": "assistant", "content": null, "tool_calls": [{"id": "c1", "type": "function",
            "function": {"name": "send_email", "arguments": "{\"to\": \"bob\"}"}}]},
        {"role": "tool", "tool_call_id": "c1", "content": "sent"},
        {"role": "user", "content": "Will it rain in Paris tomorrow? Should I take an umbrella?"},
    ]});
    let client = reqwest::Client::new();
    let r = client
        .post(format!("{}/v1/chat/completions", g.url()))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    // The tool it used, and the one the question is about; in the order offered.
    assert_eq!(
        offered.lock().unwrap().as_slice(),
        [vec!["send_email".to_owned(), "get_weather".to_owned()]]
    );
    // The explain trace says what was kept.
    let trace = client
        .post(format!("{}/v1/route", g.url()))
        .json(&body)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        trace.contains("continue: kept 2 of 8 tools: send_email, get_weather"),
        "{trace}"
    );
    // A request with few tools is left alone.
    let few = json!({"model": "auto", "tools": [tool("play_music", "Play a song")],
                     "messages": [{"role": "user", "content": "hi"}]});
    let r = client
        .post(format!("{}/v1/chat/completions", g.url()))
        .json(&few)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(offered.lock().unwrap()[1], ["play_music"]);
}
