//! `pii_redact` per KB of conversation: the request hook (find, replace) plus the
//! restoration of an answer that echoes the request, whole and streamed in events of
//! 16 characters (prepared beforehand: the upstream's work is not counted), on the
//! gateway's allocator.

#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};

/// The gateway's allocator (the `switchyard` binary's), so per-event allocations cost
/// here what they cost in service.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;
use http::HeaderMap;
use serde_json::{Value, json};
use std::hint::black_box;
use switchyard_router::plugins::{Context, Plugin, REGISTRY, RequestInfo, State, UpstreamRequest};
use switchyard_wire::ChatRequest;

const INFO: RequestInfo<'static> = RequestInfo {
    request_id: "r",
    route: "r",
    model: "m",
    family: None,
    stream: false,
    dry_run: false,
    embedding: None,
    caller: None,
    roles: &[],
    headers: &[],
    embedder: None,
    prompt_tokens: 0,
    output_tokens: 0,
    price: None,
};

/// About `kb` KB of prose with an e-mail address, a phone number and a card number in
/// every 512 bytes.
fn text(kb: usize) -> String {
    let block = "Please forward the signed contract to jane.doe@example.com before Friday; \
        if anything is unclear call me on +44 20 7946 0958. The deposit was paid with card \
        4111 1111 1111 1111 and the remaining balance is due on delivery of the goods. \
        We also need the shipping address confirmed, the insurance certificate renewed \
        and the invoice reissued in the company's new name, which changed last month. ";
    let mut out = String::new();
    while out.len() < kb * 1024 {
        out.push_str(block);
    }
    out
}

fn plugin() -> Box<dyn Plugin> {
    let build = REGISTRY
        .iter()
        .find(|(name, _)| *name == "pii_redact")
        .expect("registered")
        .1;
    build(json!({}).as_object().unwrap(), &Context::default()).unwrap()
}

fn redact(plugin: &dyn Plugin, prompt: &str) -> (String, State) {
    let mut body: ChatRequest = serde_json::from_value(
        json!({"model": "m", "messages": [{"role": "user", "content": prompt}]}),
    )
    .unwrap();
    let mut headers = HeaderMap::new();
    let mut state: State = None;
    plugin
        .on_request(
            &INFO,
            &mut UpstreamRequest {
                body: &mut body,
                headers: &mut headers,
            },
            &mut state,
        )
        .unwrap();
    (body.messages[0].content.as_ref().unwrap().text(), state)
}

/// The upstream's echo of `text` as stream events of 16 characters.
fn events(text: &str) -> Vec<String> {
    let chars: Vec<char> = text.chars().collect();
    chars
        .chunks(16)
        .map(|piece| {
            let piece: String = piece.iter().collect();
            json!({"id": "x", "choices": [{"index": 0, "delta": {"content": piece},
                                           "finish_reason": Value::Null}]})
            .to_string()
        })
        .collect()
}

/// Redacts the request, then restores the upstream's echo of it (`stream`: the echo
/// as prepared events).
fn round_trip(plugin: &dyn Plugin, prompt: &str, stream: Option<Vec<String>>) -> usize {
    let (echoed, mut state) = redact(plugin, prompt);
    let Some(events) = stream else {
        let mut answer = json!({"choices": [{"index": 0, "message": {"content": echoed}}]});
        plugin.on_response(&INFO, &mut answer, &mut state).unwrap();
        return answer["choices"][0]["message"]["content"]
            .as_str()
            .map_or(0, str::len);
    };
    let mut out = Vec::new();
    for event in events {
        plugin
            .on_response_chunk(&INFO, event, &mut out, &mut state)
            .unwrap();
    }
    plugin
        .on_stream_end(&INFO, true, &mut out, &mut state)
        .unwrap();
    out.len()
}

fn bench(c: &mut Criterion) {
    let plugin = plugin();
    let mut group = c.benchmark_group("pii_redact");
    for kb in [1, 8] {
        let prompt = text(kb);
        let echo = events(&redact(&*plugin, &prompt).0);
        group.throughput(Throughput::Bytes(prompt.len() as u64));
        group.bench_function(format!("whole {kb} KB"), |b| {
            b.iter(|| round_trip(&*plugin, black_box(&prompt), None))
        });
        // The events arrive owned (the gateway's SSE reader made them): their copies
        // are made outside the timing.
        group.bench_function(format!("stream {kb} KB"), |b| {
            b.iter_batched(
                || echo.clone(),
                |events| round_trip(&*plugin, black_box(&prompt), Some(events)),
                BatchSize::SmallInput,
            )
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
