//! The OpenAI Responses API in front of Chat Completions engines: conversations
//! chained by `previous_response_id` through the shared state, stored responses read,
//! listed and deleted by the caller that made them, streams of `response.*` events,
//! errors in OpenAI's shape with the field named.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::print_stderr
)]

mod harness;

use harness::{DEFAULT_UPSTREAM, header, stack};
use serde_json::{Value, json};

async fn create(base: &str, key: &str, body: Value) -> reqwest::Response {
    reqwest::Client::new()
        .post(format!("{base}/v1/responses"))
        .bearer_auth(key)
        .json(&body)
        .send()
        .await
        .unwrap()
}

async fn get(url: String, key: &str) -> reqwest::Response {
    reqwest::Client::new()
        .get(url)
        .bearer_auth(key)
        .send()
        .await
        .unwrap()
}

fn param(v: &Value) -> &str {
    v["error"]["param"].as_str().unwrap_or("")
}

#[tokio::test]
async fn a_conversation_is_chained_read_listed_and_deleted() {
    let (s, log) = harness::logging_stack("responses").await;
    let base = s.gateway.url();
    let first = create(
        &base,
        "alice",
        json!({"model": "auto", "instructions": "Answer about programs.", "max_output_tokens": 8,
               "input": "Why does my rust program not compile?", "metadata": {"ticket": "42"}}),
    )
    .await;
    assert_eq!(first.status(), 200);
    assert_eq!(
        header(&first, "x-switchyard-route"),
        "coding",
        "signals read the canonical conversation"
    );
    let first: Value = first.json().await.unwrap();
    assert_eq!(first["object"], "response", "{first}");
    assert_eq!(first["status"], "incomplete");
    assert_eq!(first["incomplete_details"]["reason"], "max_output_tokens");
    assert_eq!(first["instructions"], "Answer about programs.");
    assert_eq!(first["metadata"]["ticket"], "42");
    assert_eq!(first["store"], true);
    assert_eq!(first["output"][0]["type"], "message");
    assert_eq!(first["output"][0]["role"], "assistant");
    let first_text = first["output"][0]["content"][0]["text"].as_str().unwrap();
    assert!(!first_text.is_empty());
    assert_eq!(first["usage"]["output_tokens"], 8);
    let first_id = first["id"].as_str().unwrap();

    // Turn two, from the stored conversation.
    let second = create(
        &base,
        "alice",
        json!({"model": "auto", "previous_response_id": first_id, "max_output_tokens": 8,
               "input": [{"role": "user", "content": [{"type": "input_text", "text": "And then?"}]}]}),
    )
    .await;
    assert_eq!(second.status(), 200);
    let second: Value = second.json().await.unwrap();
    assert_eq!(second["previous_response_id"], first_id);
    assert_eq!(
        second["instructions"],
        Value::Null,
        "instructions are not carried over"
    );
    let second_id = second["id"].as_str().unwrap();
    // The engine saw the earlier turns: its prompt is longer and partly cached.
    assert!(
        second["usage"]["input_tokens"].as_u64().unwrap()
            > first["usage"]["input_tokens"].as_u64().unwrap()
    );

    // Turn three, streamed.
    let third = create(
        &base,
        "alice",
        json!({"model": "auto", "previous_response_id": second_id, "max_output_tokens": 5,
               "stream": true, "input": "One more thing."}),
    )
    .await;
    assert_eq!(third.status(), 200);
    assert_eq!(header(&third, "content-type"), "text/event-stream");
    let text = third.text().await.unwrap();
    let last = text
        .split("\n\n")
        .filter(|e| !e.trim().is_empty())
        .last()
        .unwrap();
    assert!(last.starts_with("event: response.incomplete"), "{last}");
    let done: Value = serde_json::from_str(last.split_once("data: ").unwrap().1).unwrap();
    let third_id = done["response"]["id"].as_str().unwrap().to_owned();
    assert_eq!(done["response"]["previous_response_id"], second_id);

    // The streamed response was stored once it ended; its input items hold all three
    // turns' input and the two answers between them.
    let mut stored = Value::Null;
    for _ in 0..100 {
        let r = get(format!("{base}/v1/responses/{third_id}"), "alice").await;
        if r.status() == 200 {
            stored = r.json().await.unwrap();
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert_eq!(stored["id"], third_id.as_str(), "{stored}");
    assert_eq!(stored["status"], "incomplete");
    let items: Value = get(
        format!("{base}/v1/responses/{third_id}/input_items?order=asc"),
        "alice",
    )
    .await
    .json()
    .await
    .unwrap();
    assert_eq!(items["object"], "list");
    let kinds: Vec<(&str, &str)> = items["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| {
            (
                i["type"].as_str().unwrap(),
                i["role"].as_str().unwrap_or(""),
            )
        })
        .collect();
    assert_eq!(
        kinds,
        [
            ("message", "user"),
            ("message", "assistant"),
            ("message", "user"),
            ("message", "assistant"),
            ("message", "user")
        ]
    );
    assert_eq!(items["data"][1]["content"][0]["text"], first_text);
    assert_eq!(items["has_more"], false);
    // Paged, newest first.
    let page: Value = get(
        format!("{base}/v1/responses/{third_id}/input_items?limit=2"),
        "alice",
    )
    .await
    .json()
    .await
    .unwrap();
    assert_eq!(page["data"].as_array().unwrap().len(), 2);
    assert_eq!(page["has_more"], true);
    assert_eq!(page["data"][0]["content"], "One more thing.");
    let after = page["last_id"].as_str().unwrap();
    let rest: Value = get(
        format!("{base}/v1/responses/{third_id}/input_items?limit=10&after={after}"),
        "alice",
    )
    .await
    .json()
    .await
    .unwrap();
    assert_eq!(rest["data"].as_array().unwrap().len(), 3);
    assert_eq!(rest["has_more"], false);

    // Another caller finds none of it.
    assert_eq!(
        get(format!("{base}/v1/responses/{first_id}"), "mallory")
            .await
            .status(),
        404
    );
    let r = create(
        &base,
        "mallory",
        json!({"model": "auto", "previous_response_id": first_id, "input": "hi"}),
    )
    .await;
    assert_eq!(r.status(), 404);
    let v: Value = r.json().await.unwrap();
    assert_eq!(param(&v), "previous_response_id", "{v}");
    let r = reqwest::Client::new()
        .delete(format!("{base}/v1/responses/{first_id}"))
        .bearer_auth("mallory")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);

    // Deleted by its owner, it is gone, and so is chaining from it.
    let r = reqwest::Client::new()
        .delete(format!("{base}/v1/responses/{first_id}"))
        .bearer_auth("alice")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.unwrap();
    assert_eq!(
        v,
        json!({"id": first_id, "object": "response.deleted", "deleted": true})
    );
    assert_eq!(
        get(format!("{base}/v1/responses/{first_id}"), "alice")
            .await
            .status(),
        404
    );
    let r = create(
        &base,
        "alice",
        json!({"model": "auto", "previous_response_id": first_id, "input": "hi"}),
    )
    .await;
    assert_eq!(r.status(), 404);

    // store: false keeps nothing.
    let r: Value = create(
        &base,
        "alice",
        json!({"model": "chat", "store": false, "max_output_tokens": 3, "input": "hello"}),
    )
    .await
    .json()
    .await
    .unwrap();
    assert_eq!(r["store"], false);
    let id = r["id"].as_str().unwrap();
    assert_eq!(
        get(format!("{base}/v1/responses/{id}"), "alice")
            .await
            .status(),
        404
    );

    // The decision log names the API.
    let text = std::fs::read_to_string(&log).unwrap_or_default();
    assert!(
        text.lines()
            .any(|l| l.contains("\"api\":\"openai_responses\"")),
        "{text}"
    );
}

#[tokio::test]
async fn bad_requests_come_back_in_openais_error_shape_with_the_field_named() {
    let s = stack("", DEFAULT_UPSTREAM).await;
    let base = s.gateway.url();
    for (body, field, status) in [
        (json!({"input": "hi"}), "model", 400),
        (json!({"model": "chat"}), "input", 400),
        (
            json!({"model": "chat", "input": "hi", "temperature": "hot"}),
            "temperature",
            400,
        ),
        (
            json!({"model": "chat", "input": "hi", "tools": [{"type": "web_search"}]}),
            "tools[0].type",
            400,
        ),
        (
            json!({"model": "chat", "input": [{"role": "user", "content": [{"type": "input_audio"}]}]}),
            "input[0].content[0].type",
            400,
        ),
        (
            json!({"model": "chat", "input": "hi", "conversation": "c"}),
            "conversation",
            400,
        ),
        (
            json!({"model": "chat", "input": "hi", "previous_response_id": "resp_nope"}),
            "previous_response_id",
            404,
        ),
        (
            json!({"model": "chat", "input": "hi", "previous_response_id": 7}),
            "previous_response_id",
            400,
        ),
    ] {
        let r = create(&base, "k", body.clone()).await;
        assert_eq!(r.status(), status, "{body}");
        let v: Value = r.json().await.unwrap();
        assert_eq!(param(&v), field, "{body}: {v}");
        assert!(v["error"]["message"].as_str().unwrap().len() > 5);
    }
    let r = create(&base, "k", json!({"model": "nope", "input": "hi"})).await;
    assert_eq!(r.status(), 404);
    let r = reqwest::Client::new()
        .post(format!("{base}/v1/responses"))
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 415);
    let r = reqwest::Client::new()
        .post(format!("{base}/v1/responses"))
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let v: Value = r.json().await.unwrap();
    assert!(v["error"]["message"].as_str().unwrap().contains("JSON"));
    // An upstream that fails mid-stream: the stream ends with response.failed.
    s.coder.set_faults(switchyard_engine::Faults {
        drop_after_tokens: Some(2),
        ..switchyard_engine::Faults::default()
    });
    let r = create(
        &base,
        "k",
        json!({"model": "coder", "max_output_tokens": 10, "stream": true, "input": "hi"}),
    )
    .await;
    assert_eq!(r.status(), 200);
    let text = r.text().await.unwrap();
    let last = text
        .split("\n\n")
        .filter(|e| !e.trim().is_empty())
        .last()
        .unwrap();
    assert!(last.starts_with("event: response.failed"), "{text}");
    // And whole: the gateway's 502 in OpenAI's shape.
    s.coder.set_faults(switchyard_engine::Faults {
        error_rate: 1.0,
        ..switchyard_engine::Faults::default()
    });
    let r = create(&base, "k", json!({"model": "coder", "input": "hi"})).await;
    assert!(r.status().is_server_error());
    let v: Value = r.json().await.unwrap();
    assert!(v["error"]["message"].is_string(), "{v}");
}

/// One caller storing response after response uses up its own share of the store, not
/// everyone's: past `server.responses_caller_bytes` its answers go out unstored (and
/// say so), while another caller's conversation is still stored and chained.
#[tokio::test]
async fn one_caller_cannot_fill_the_response_store_for_the_others() {
    // Each small response counts 4 KiB: five fill 20,480 bytes, the sixth does not fit.
    let s = stack("  responses_caller_bytes: 20480", DEFAULT_UPSTREAM).await;
    let base = s.gateway.url();
    let turn = |input: &str| json!({"model": "chat", "max_output_tokens": 4, "input": input});
    let mut stored = Vec::new();
    let mut refused = None;
    for i in 0..8 {
        let r = create(&base, "mallory", turn(&format!("note {i}"))).await;
        assert_eq!(r.status(), 200, "the answer goes out either way");
        let note = header(&r, "x-switchyard-response-store");
        let id = r.json::<Value>().await.unwrap()["id"]
            .as_str()
            .unwrap()
            .to_owned();
        if note.is_empty() {
            assert!(
                refused.is_none(),
                "nothing is stored once the share is used up"
            );
            stored.push(id);
        } else {
            assert!(
                note.contains("server.responses_caller_bytes"),
                "the refusal names the setting: {note}"
            );
            refused.get_or_insert(id);
        }
    }
    assert_eq!(
        stored.len(),
        5,
        "five small responses of 4 KiB each fit in 20,480 bytes"
    );
    let refused = refused.expect("the sixth response is not stored");
    assert_eq!(
        get(format!("{base}/v1/responses/{refused}"), "mallory")
            .await
            .status(),
        404
    );
    assert_eq!(
        get(format!("{base}/v1/responses/{}", stored[0]), "mallory")
            .await
            .status(),
        200
    );

    // Deleting a stored response gives its share back: the next one is stored. The
    // same response deleted again gives nothing more, so the one after is not.
    let delete = |id: &str| {
        reqwest::Client::new()
            .delete(format!("{base}/v1/responses/{id}"))
            .bearer_auth("mallory")
            .send()
    };
    assert_eq!(delete(&stored[0]).await.unwrap().status(), 200);
    assert_eq!(delete(&stored[0]).await.unwrap().status(), 404);
    let r = create(&base, "mallory", turn("after a delete")).await;
    assert_eq!(
        header(&r, "x-switchyard-response-store"),
        "",
        "stored in the room the delete made"
    );
    let r = create(&base, "mallory", turn("one more")).await;
    assert!(
        header(&r, "x-switchyard-response-store").contains("server.responses_caller_bytes"),
        "one delete made room for one response"
    );

    // Another caller stores, and continues its conversation.
    let first = create(&base, "alice", turn("Hello")).await;
    assert_eq!(header(&first, "x-switchyard-response-store"), "");
    let first: Value = first.json().await.unwrap();
    let second = create(
        &base,
        "alice",
        json!({"model": "chat", "max_output_tokens": 4, "input": "And then?",
               "previous_response_id": first["id"]}),
    )
    .await;
    assert_eq!(second.status(), 200, "alice's chain was stored");
    assert_eq!(header(&second, "x-switchyard-response-store"), "");
}

#[tokio::test]
async fn a_refusal_before_the_phases_is_observed_as_one_at_ingress() {
    // Joining the stored conversation is part of ingress: a request that names a
    // response that is not there is refused there, and observed like any refusal.
    let log = harness::temp_file("responses", "refused.jsonl");
    let s = stack(
        &format!("  decision_log: '{}'", log.display()),
        DEFAULT_UPSTREAM,
    )
    .await;
    let base = s.gateway.url();
    let id = "refused-before-the-phases";
    let r = reqwest::Client::new()
        .post(format!("{base}/v1/responses"))
        .bearer_auth("alice")
        .header("x-request-id", id)
        .json(&json!({"model": "chat", "input": "hi", "previous_response_id": "resp_gone"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    assert_eq!(header(&r, "x-request-id"), id, "answered as a refusal is");
    let v: Value = r.json().await.unwrap();
    assert_eq!(param(&v), "previous_response_id", "{v}");
    let mut record = None;
    for _ in 0..100 {
        record = std::fs::read_to_string(&log)
            .unwrap_or_default()
            .lines()
            .filter_map(|line| serde_json::from_str::<Value>(line).ok())
            .find(|r| r["request_id"] == id);
        if record.is_some() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let record = record.expect("the refusal is in the decision log");
    assert_eq!(record["phase"], "ingress", "{record}");
    assert_eq!(record["status"], 404, "{record}");
}
