//! Fuzzing the wire front ends on stable Rust: JSON ingress in every client dialect
//! (Chat Completions, Messages, Responses: parse and checks), the translation of what
//! comes back (whole answers in each dialect, Anthropic answers read as completions,
//! the canonical request written as a Messages body) and the SSE parser. Any panic is a
//! bug; a refused body is a 4xx naming the problem; events come out the same however
//! the bytes are cut. `FUZZ_CASES` raises the case count (`scripts/fuzz.sh`).

#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

use proptest::prelude::*;
use proptest::test_runner::Config;
use serde_json::{Map, Value, json};
use switchyard_wire::provider::anthropic;
use switchyard_wire::{
    AnthropicMessages, Dialect, OpenAiChat, OpenAiResponses, ResponseContext, SseParser,
};

fn cases() -> u32 {
    std::env::var("FUZZ_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(256)
}

/// Keys of Chat Completions bodies, so generated objects look like requests.
const KEYS: &[&str] = &[
    "model",
    "messages",
    "role",
    "content",
    "type",
    "text",
    "image_url",
    "url",
    "detail",
    "input_audio",
    "file",
    "refusal",
    "tools",
    "function",
    "name",
    "parameters",
    "arguments",
    "tool_calls",
    "tool_call_id",
    "id",
    "stream",
    "stream_options",
    "include_usage",
    "max_tokens",
    "max_completion_tokens",
    "n",
    "temperature",
    "top_p",
    "stop",
    "user",
    "metadata",
    "kv_retention",
    "reasoning_effort",
    "response_format",
    "seed",
    "logprobs",
    // Messages
    "system",
    "cache_control",
    "tool_use_id",
    "is_error",
    "input",
    "thinking",
    "stop_sequences",
    // Responses
    "instructions",
    "previous_response_id",
    "max_output_tokens",
    "call_id",
    "output",
    "store",
    // Answers
    "choices",
    "message",
    "finish_reason",
    "usage",
    "prompt_tokens",
    "stop_reason",
];
const WORDS: &[&str] = &[
    "user",
    "system",
    "assistant",
    "tool",
    "developer",
    "function",
    "text",
    "image_url",
    "auto",
    "gpt-4o",
    "",
    "hello",
    "{",
    "\u{0}",
    "é🦀",
    "json_object",
    "custom",
    "tool_use",
    "tool_result",
    "ephemeral",
    "input_text",
    "output_text",
    "function_call",
    "function_call_output",
    "reasoning",
];

fn scalar() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        any::<u64>().prop_map(|n| json!(n)),
        (-1e300f64..1e300).prop_map(|f| json!(f)),
        (0..WORDS.len()).prop_map(|i| json!(WORDS[i])),
        "\\PC{0,40}".prop_map(Value::String),
    ]
}

fn value() -> impl Strategy<Value = Value> {
    scalar().prop_recursive(4, 64, 8, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            proptest::collection::vec((0..KEYS.len(), inner), 0..8).prop_map(|pairs| {
                let map: Map<String, Value> = pairs
                    .into_iter()
                    .map(|(k, v)| (KEYS[k].to_owned(), v))
                    .collect();
                Value::Object(map)
            }),
        ]
    })
}

/// A valid request with one field replaced by anything.
fn near_valid() -> impl Strategy<Value = Value> {
    let base = json!({
        "model": "auto",
        "messages": [
            {"role": "system", "content": "be brief"},
            {"role": "user", "content": [{"type": "text", "text": "hi"},
                                         {"type": "image_url", "image_url": {"url": "data:,"}}]},
            {"role": "assistant", "content": null,
             "tool_calls": [{"id": "c1", "type": "function",
                             "function": {"name": "f", "arguments": "{}"}}]},
            {"role": "tool", "tool_call_id": "c1", "content": "42"}
        ],
        "tools": [{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}],
        "stream": true,
        "stream_options": {"include_usage": true},
        "max_tokens": 16,
        "n": 1
    });
    one_field_replaced(
        base,
        &[
            &["model"],
            &["messages"],
            &["messages", "0"],
            &["messages", "1", "content"],
            &["messages", "1", "content", "1"],
            &["messages", "2", "tool_calls"],
            &["messages", "3", "role"],
            &["tools"],
            &["tools", "0", "function"],
            &["stream"],
            &["stream_options"],
            &["max_tokens"],
            &["n"],
        ],
    )
}

/// A Messages request with one of everything the typed reader takes and more.
fn messages_base() -> Value {
    json!({
        "model": "auto", "max_tokens": 16, "stream": true,
        "system": [{"type": "text", "text": "be brief", "cache_control": {"type": "ephemeral"}}],
        "tools": [{"name": "f", "input_schema": {"type": "object"}}],
        "messages": [
            {"role": "user", "content": [{"type": "text", "text": "hi"},
                {"type": "image", "source": {"type": "url", "url": "https://x/y.png"}}]},
            {"role": "assistant", "content": [{"type": "thinking", "thinking": "t", "signature": "s"},
                {"type": "tool_use", "id": "t1", "name": "f", "input": {"x": 1}}]},
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t1",
                "is_error": false, "content": [{"type": "text", "text": "42"}]}]}
        ]
    })
}

/// A Responses request with one of everything the typed reader takes and more.
fn responses_base() -> Value {
    json!({
        "model": "auto", "instructions": "be brief", "max_output_tokens": 16, "stream": true,
        "tools": [{"type": "function", "name": "f", "parameters": {"type": "object"}}],
        "tool_choice": "auto", "store": false,
        "input": [
            {"role": "user", "content": [{"type": "input_text", "text": "hi"}]},
            {"type": "function_call", "call_id": "c1", "name": "f", "arguments": "{}"},
            {"type": "function_call_output", "call_id": "c1", "output": "42"},
            {"type": "message", "role": "assistant",
             "content": [{"type": "output_text", "text": "ok", "annotations": []}]}
        ]
    })
}

/// `base` with the value at one of `paths` replaced by anything.
fn one_field_replaced(
    base: Value,
    paths: &'static [&'static [&'static str]],
) -> impl Strategy<Value = Value> {
    (0..paths.len(), value()).prop_map(move |(p, v)| {
        let mut body = base.clone();
        let mut at = &mut body;
        for key in paths[p] {
            at = match key.parse::<usize>() {
                Ok(i) => &mut at[i],
                Err(_) => &mut at[*key],
            };
        }
        *at = v;
        body
    })
}

fn near_valid_messages() -> impl Strategy<Value = Value> {
    one_field_replaced(
        messages_base(),
        &[
            &["model"],
            &["max_tokens"],
            &["system"],
            &["system", "0", "cache_control"],
            &["tools"],
            &["messages"],
            &["messages", "0", "content"],
            &["messages", "0", "content", "0"],
            &["messages", "0", "content", "1", "source"],
            &["messages", "1", "content", "0"],
            &["messages", "1", "content", "1", "input"],
            &["messages", "2", "content", "0", "content"],
            &["messages", "2", "content", "0", "is_error"],
            &["messages", "2", "role"],
        ],
    )
}

fn near_valid_responses() -> impl Strategy<Value = Value> {
    one_field_replaced(
        responses_base(),
        &[
            &["model"],
            &["instructions"],
            &["max_output_tokens"],
            &["tools"],
            &["tools", "0", "parameters"],
            &["tool_choice"],
            &["store"],
            &["input"],
            &["input", "0"],
            &["input", "0", "content", "0"],
            &["input", "1", "arguments"],
            &["input", "2", "output"],
            &["input", "3", "content"],
            &["previous_response_id"],
        ],
    )
}

/// Every dialect refuses a bad body with a 4xx naming the problem, never a panic; a
/// request one of them takes can be written for every provider (or refused naming
/// what cannot be carried).
fn check(body: &[u8]) -> Result<(), TestCaseError> {
    let refused = |e: switchyard_wire::ApiError| -> Result<(), TestCaseError> {
        let status = e.kind.status();
        prop_assert!((400..500).contains(&status), "{status}: {}", e.message);
        prop_assert!(!e.message.is_empty());
        Ok(())
    };
    let dialects: [&dyn Dialect; 3] = [&OpenAiChat, &AnthropicMessages, &OpenAiResponses];
    for dialect in dialects {
        match dialect.parse(body, Some("s")) {
            Err(e) => refused(e)?,
            Ok((request, _)) => {
                prop_assert!(request.upstream_body_keyed(true).is_ok());
                for lossy in [false, true] {
                    if let Err(e) = anthropic::messages_body(&request, lossy) {
                        refused(e)?;
                    }
                }
            }
        }
    }
    if let Err(e) = AnthropicMessages.parse_count(body) {
        refused(e)?;
    }
    if let Err(e) = ResponseContext::read("resp_1".into(), 0, body) {
        refused(e)?;
    }
    Ok(())
}

/// Whatever an upstream answers, translating it back never panics.
fn check_answer(body: &[u8]) {
    let _ = AnthropicMessages.whole(body);
    let _ = anthropic::completion_body(body);
    let (context, _) = ResponseContext::read("resp_1".into(), 0, b"{\"input\":\"x\"}").unwrap();
    let _ = context.whole(body);
}

/// Raw bytes and data of the events of `stream` pushed in the pieces `cuts` makes,
/// and how many bytes are left pending.
type Events = (Vec<(Vec<u8>, String)>, usize);

fn events(stream: &[u8], cuts: &[usize]) -> Events {
    let mut points: Vec<usize> = cuts.iter().map(|c| c % (stream.len() + 1)).collect();
    points.push(0);
    points.push(stream.len());
    points.sort_unstable();
    let mut p = SseParser::new();
    let mut out = Vec::new();
    for w in points.windows(2) {
        p.push(&stream[w[0]..w[1]]);
        while let Some(e) = p.next_event() {
            out.push((e.raw.to_vec(), e.data));
        }
    }
    (out, p.pending())
}

fn sse_stream() -> impl Strategy<Value = Vec<u8>> {
    let piece = prop_oneof![
        Just(b"data: ".to_vec()),
        Just(b"data:".to_vec()),
        Just(b"event: x\n".to_vec()),
        Just(b": comment\n".to_vec()),
        Just(b"\n".to_vec()),
        Just(b"\r\n".to_vec()),
        Just(b"\r".to_vec()),
        Just(b"[DONE]".to_vec()),
        Just(b"{\"choices\":[]}".to_vec()),
        proptest::collection::vec(any::<u8>(), 0..12),
    ];
    proptest::collection::vec(piece, 0..40).prop_map(|p| p.concat())
}

proptest! {
    #![proptest_config(Config { cases: cases(), failure_persistence: None, ..Config::default() })]

    #[test]
    fn ingress_refuses_arbitrary_json_with_a_4xx(body in value()) {
        check(body.to_string().as_bytes())?;
    }

    #[test]
    fn ingress_refuses_near_valid_requests_with_a_4xx(body in near_valid()) {
        check(body.to_string().as_bytes())?;
    }

    #[test]
    fn ingress_refuses_near_valid_messages_requests_with_a_4xx(body in near_valid_messages()) {
        check(body.to_string().as_bytes())?;
    }

    #[test]
    fn ingress_refuses_near_valid_responses_requests_with_a_4xx(body in near_valid_responses()) {
        check(body.to_string().as_bytes())?;
    }

    #[test]
    fn any_answer_is_translated_back_without_a_panic(body in value()) {
        check_answer(body.to_string().as_bytes());
        let mut completion = json!({"id": "c", "model": "m", "choices": [
            {"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": "x"}}]});
        completion["choices"][0]["message"]["tool_calls"] = body.clone();
        check_answer(completion.to_string().as_bytes());
        let message = json!({"id": "msg_1", "model": "m", "content": [body.clone()],
                             "stop_reason": "end_turn", "usage": body});
        check_answer(message.to_string().as_bytes());
    }

    #[test]
    fn ingress_refuses_arbitrary_bytes_with_a_4xx(
        body in proptest::collection::vec(any::<u8>(), 0..200),
    ) {
        check(&body)?;
    }

    #[test]
    fn sse_events_are_the_same_however_the_bytes_are_cut(
        stream in sse_stream(),
        cuts in proptest::collection::vec(any::<usize>(), 0..20),
    ) {
        let (whole, left) = events(&stream, &[]);
        let (cut, cut_left) = events(&stream, &cuts);
        prop_assert_eq!(&whole, &cut);
        prop_assert_eq!(left, cut_left);
        // Nothing is lost or added: the events and the pending bytes are the input.
        let consumed: usize = whole.iter().map(|(raw, _)| raw.len()).sum();
        prop_assert_eq!(consumed + left, stream.len());
        let joined: Vec<u8> = whole.iter().flat_map(|(raw, _)| raw.clone()).collect();
        prop_assert_eq!(&joined[..], &stream[..consumed]);
    }
}

#[test]
fn a_huge_event_trickled_byte_by_byte_is_parsed_in_linear_time() {
    // 1 MB of data in one event, pushed a byte at a time: searching the whole buffer
    // on every push would be 5·10^11 byte comparisons (hours); a search that resumes
    // where it stopped is a few million (milliseconds).
    let (done, finished) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut stream = b"data: ".to_vec();
        stream.extend(std::iter::repeat_n(b'x', 1 << 20));
        stream.extend(b"\r\n\r\n");
        let mut p = SseParser::new();
        let mut n = 0;
        for b in &stream {
            p.push(std::slice::from_ref(b));
            while p.next_event().is_some() {
                n += 1;
            }
        }
        let _ = done.send((n, p.pending()));
    });
    let (n, pending) = finished
        .recv_timeout(std::time::Duration::from_secs(60))
        .expect("a trickled 1 MB event was not parsed within a minute");
    assert_eq!((n, pending), (1, 0));
}
