//! The in-process pipeline, phase by phase: ingress (parse), characterize + decide,
//! and the whole dry run (ingress → characterize → decide → govern → select → place →
//! plugins), with no plugin and with 4 and 16 plugins that do nothing.

#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

use axum::http::{HeaderMap, header};
use bytes::Bytes;
use criterion::{Criterion, criterion_group, criterion_main};
use std::hint::black_box;
use std::time::Instant;
use switchyard_gateway::{Runtime, ingress, pipeline};
use switchyard_policy::{Policy, parse_config};
use switchyard_router::plugins::{Build, Context, Plugin};
use switchyard_wire::OpenAiChat;

// Keyword and context signals only: the overhead of the router itself.
const CONFIG: &str = include_str!("../../../examples/keywords.yaml");

fn body(prompt: &str) -> Bytes {
    Bytes::from(
        serde_json::json!({
            "model": "auto", "max_tokens": 256, "temperature": 0.2,
            "messages": [
                {"role": "system", "content": "You are a helpful assistant."},
                {"role": "user", "content": prompt}
            ]
        })
        .to_string(),
    )
}

/// A plugin with a request hook that does nothing: the chain's own cost.
#[derive(Debug)]
struct Noop;

impl Plugin for Noop {}

fn noop(
    _: &serde_json::Map<String, serde_json::Value>,
    _: &Context<'_>,
) -> Result<Box<dyn Plugin>, String> {
    Ok(Box::new(Noop))
}

const TYPES: &[(&str, Build)] = &[("noop", noop)];

/// The configuration with `n` global no-op plugins.
fn with_plugins(n: usize) -> Runtime {
    let mut text = CONFIG.to_owned();
    if n > 0 {
        text.push_str("plugins:\n");
        for i in 0..n {
            text.push_str(&format!(
                "  - {{name: noop{i}, type: noop, global: true}}\n"
            ));
        }
    }
    let policy = Policy::compile(parse_config(&text).unwrap()).unwrap();
    Runtime::with_plugin_types(policy, TYPES).unwrap()
}

/// ingress → plugins, as the chat handler runs them.
fn dry(runtime: &Runtime, headers: &HeaderMap, body: &Bytes) -> switchyard_gateway::Exchange {
    let mut x = ingress::admit(
        runtime,
        headers,
        Ok(body.clone()),
        None,
        (Instant::now(), &switchyard_wire::OpenAiChat),
    )
    .unwrap();
    pipeline::run(runtime, &mut x).unwrap();
    x
}

fn pipeline(c: &mut Criterion) {
    let runtime = with_plugins(0);
    let mut headers = HeaderMap::new();
    headers.insert(header::CONTENT_TYPE, "application/json".parse().unwrap());
    let filler =
        "Our service returns intermittent errors under load and we want to know why. ".repeat(25);
    let coding = body(&format!("{filler} Here is the Python function that fails."));
    let chat = body(&format!("{filler} What do you think?"));
    assert!(coding.len() > 2000);

    let mut group = c.benchmark_group("pipeline");
    group.bench_function("ingress_parse_2kb", |b| {
        b.iter(|| ingress::parse(black_box(&headers), black_box(&coding), &OpenAiChat).unwrap())
    });
    let (_, conversation) = ingress::parse(&headers, &coding, &OpenAiChat).unwrap();
    group.bench_function("characterize_decide_keyword", |b| {
        b.iter(|| {
            let policy = &runtime.policy;
            let signals = policy
                .signals
                .characterize(black_box(&conversation), policy.needed_signals());
            policy.decide(&signals).unwrap()
        })
    });
    group.bench_function("parse_to_placement_coding", |b| {
        b.iter(|| dry(&runtime, &headers, black_box(&coding)))
    });
    group.bench_function("parse_to_placement_default", |b| {
        b.iter(|| dry(&runtime, &headers, black_box(&chat)))
    });
    for n in [4, 16] {
        let plugged = with_plugins(n);
        group.bench_function(format!("parse_to_placement_coding_{n}_noop_plugins"), |b| {
            b.iter(|| dry(&plugged, &headers, black_box(&coding)))
        });
    }
    group.finish();
}

criterion_group!(benches, pipeline);
criterion_main!(benches);
