//! What a client dialect costs: a 2 KB conversation parsed and encoded for a Chat
//! Completions upstream in each dialect (the difference is the translation), a whole
//! answer translated back, and one stream event translated.

#![allow(
    missing_docs,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::print_stdout
)]

use criterion::{Criterion, criterion_group, criterion_main};
use serde_json::{Value, json};
use std::hint::black_box;
use switchyard_wire::provider::anthropic;
use switchyard_wire::{AnthropicMessages, Dialect, OpenAiChat, OpenAiResponses, ResponseContext};

/// About 2 KB of conversation: a system prompt, three exchanges, a tool.
fn turns() -> Vec<String> {
    (0..6)
        .map(|i| {
            format!(
                "Turn {i}: {}",
                "please look at this part of the build log. ".repeat(6)
            )
        })
        .collect()
}

fn anthropic_body() -> Vec<u8> {
    let turns = turns();
    let messages: Vec<Value> = turns
        .iter()
        .enumerate()
        .map(|(i, t)| {
            let role = if i % 2 == 0 { "user" } else { "assistant" };
            json!({"role": role, "content": [{"type": "text", "text": t}]})
        })
        .collect();
    let body = json!({
        "model": "auto", "max_tokens": 256,
        "system": [{"type": "text", "text": "You are a build engineer. ".repeat(8),
                    "cache_control": {"type": "ephemeral"}}],
        "tools": [{"name": "read_file", "description": "Read a file",
                   "input_schema": {"type": "object", "properties": {"path": {"type": "string"}}}}],
        "messages": messages,
    });
    body.to_string().into_bytes()
}

fn openai_body() -> Vec<u8> {
    let turns = turns();
    let mut messages =
        vec![json!({"role": "system", "content": "You are a build engineer. ".repeat(8)})];
    messages.extend(turns.iter().enumerate().map(|(i, t)| {
        let role = if i % 2 == 0 { "user" } else { "assistant" };
        json!({"role": role, "content": t})
    }));
    let body = json!({
        "model": "auto", "max_tokens": 256,
        "tools": [{"type": "function", "function": {"name": "read_file", "description": "Read a file",
                   "parameters": {"type": "object", "properties": {"path": {"type": "string"}}}}}],
        "messages": messages,
    });
    body.to_string().into_bytes()
}

fn responses_body() -> Vec<u8> {
    let turns = turns();
    let input: Vec<Value> = turns
        .iter()
        .enumerate()
        .map(|(i, t)| {
            if i % 2 == 0 {
                json!({"role": "user", "content": [{"type": "input_text", "text": t}]})
            } else {
                json!({"type": "message", "role": "assistant",
                       "content": [{"type": "output_text", "text": t}]})
            }
        })
        .collect();
    let body = json!({
        "model": "auto", "max_output_tokens": 256,
        "instructions": "You are a build engineer. ".repeat(8),
        "tools": [{"type": "function", "name": "read_file", "description": "Read a file",
                   "parameters": {"type": "object", "properties": {"path": {"type": "string"}}}}],
        "input": input,
    });
    body.to_string().into_bytes()
}

fn bench(c: &mut Criterion) {
    let anthropic = anthropic_body();
    let openai = openai_body();
    println!(
        "bodies: anthropic {} bytes, openai {} bytes",
        anthropic.len(),
        openai.len()
    );
    c.bench_function("dialect/openai_chat parse+encode 2KB", |b| {
        b.iter(|| {
            let (request, _) = OpenAiChat.parse(black_box(&openai), None).unwrap();
            black_box(request.upstream_body().unwrap())
        });
    });
    c.bench_function("dialect/anthropic parse+encode 2KB", |b| {
        b.iter(|| {
            let (request, _) = AnthropicMessages
                .parse(black_box(&anthropic), None)
                .unwrap();
            black_box(request.upstream_body().unwrap())
        });
    });
    let responses = responses_body();
    // What the gateway does with a Responses request: reads its head (the chain it
    // continues, what its response repeats, its items to keep), then parses it.
    c.bench_function("dialect/responses parse+encode 2KB", |b| {
        b.iter(|| {
            let head = ResponseContext::read("resp_1".into(), 0, black_box(&responses)).unwrap();
            let (request, _) = OpenAiResponses.parse(black_box(&responses), None).unwrap();
            black_box((head, request.upstream_body().unwrap()))
        });
    });
    c.bench_function("dialect/responses head only", |b| {
        b.iter(|| {
            black_box(ResponseContext::read("resp_1".into(), 0, black_box(&responses)).unwrap())
        });
    });
    let (canonical, _) = OpenAiChat.parse(&openai, None).unwrap();
    c.bench_function("provider/anthropic request 2KB", |b| {
        b.iter(|| black_box(anthropic::messages_body(black_box(&canonical), false).unwrap()));
    });
    let (parsed, _) = AnthropicMessages.parse(&anthropic, None).unwrap();
    c.bench_function("dialect/anthropic encode only", |b| {
        b.iter(|| black_box(black_box(&parsed).upstream_body().unwrap()));
    });
    c.bench_function("dialect/anthropic value parse only", |b| {
        b.iter(|| black_box(serde_json::from_slice::<Value>(black_box(&anthropic)).unwrap()));
    });
    let completion = json!({
        "id": "chatcmpl-1", "object": "chat.completion", "created": 0, "model": "m",
        "choices": [{"index": 0, "finish_reason": "stop",
                     "message": {"role": "assistant", "content": "The build fails at link time. ".repeat(30)}}],
        "usage": {"prompt_tokens": 600, "completion_tokens": 200, "total_tokens": 800,
                  "prompt_tokens_details": {"cached_tokens": 512}},
    })
    .to_string()
    .into_bytes();
    c.bench_function("dialect/anthropic whole answer 1KB", |b| {
        b.iter(|| black_box(AnthropicMessages.whole(black_box(&completion)).unwrap()));
    });
    let (context, _) = ResponseContext::read("resp_1".into(), 0, &responses).unwrap();
    c.bench_function("dialect/responses whole answer 1KB", |b| {
        b.iter(|| black_box(context.whole(black_box(&completion)).unwrap()));
    });
    let message = json!({
        "id": "msg_1", "type": "message", "role": "assistant", "model": "m",
        "content": [{"type": "text", "text": "The build fails at link time. ".repeat(30)}],
        "stop_reason": "end_turn", "stop_sequence": null,
        "usage": {"input_tokens": 88, "cache_read_input_tokens": 512, "output_tokens": 200},
    })
    .to_string()
    .into_bytes();
    c.bench_function("provider/anthropic whole answer 1KB", |b| {
        b.iter(|| black_box(anthropic::completion_body(black_box(&message)).unwrap()));
    });
    let chunk = json!({"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 0,
                       "model": "m", "choices": [{"index": 0, "delta": {"content": " token"},
                       "finish_reason": null}]})
    .to_string();
    c.bench_function("dialect/anthropic stream event", |b| {
        let mut writer = AnthropicMessages.stream().unwrap();
        let mut out = String::with_capacity(256);
        writer.event(&chunk, &mut out);
        b.iter(|| {
            out.clear();
            writer.event(black_box(&chunk), &mut out);
            black_box(out.len())
        });
    });
}

fn bench_streams(c: &mut Criterion) {
    let chunk = json!({"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 0,
                       "model": "m", "choices": [{"index": 0, "delta": {"content": " token"},
                       "finish_reason": null}]})
    .to_string();
    let (context, _) =
        ResponseContext::read("resp_1".into(), 0, br#"{"model":"auto","input":"x"}"#).unwrap();
    c.bench_function("dialect/responses stream event", |b| {
        let mut writer = context.events(None);
        let mut out = String::with_capacity(512);
        writer.event(&chunk, &mut out);
        b.iter(|| {
            out.clear();
            writer.event(black_box(&chunk), &mut out);
            black_box(out.len())
        });
    });
    let start = json!({"type": "message_start", "message": {"id": "msg_1", "model": "m",
                       "usage": {"input_tokens": 5, "output_tokens": 1}}})
    .to_string();
    let delta = json!({"type": "content_block_delta", "index": 0,
                       "delta": {"type": "text_delta", "text": " token"}})
    .to_string();
    c.bench_function("provider/anthropic stream event", |b| {
        let mut writer = anthropic::ChunkWriter::default();
        let mut out = String::with_capacity(512);
        switchyard_wire::StreamTranslator::event(&mut writer, &start, &mut out);
        b.iter(|| {
            out.clear();
            switchyard_wire::StreamTranslator::event(&mut writer, black_box(&delta), &mut out);
            black_box(out.len())
        });
    });
}

criterion_group!(benches, bench, bench_streams);
criterion_main!(benches);
