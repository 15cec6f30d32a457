//! The in-process pipeline, phase by phase: ingress (parse), characterize + decide,
//! and the whole plan (parse → characterize → decide → select → place).

#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

use axum::http::{HeaderMap, header};
use bytes::Bytes;
use criterion::{Criterion, criterion_group, criterion_main};
use std::hint::black_box;
use switchyard_gateway::{Runtime, ingress, plan};
use switchyard_policy::{Policy, parse_config};

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

fn pipeline(c: &mut Criterion) {
    let policy = Policy::compile(parse_config(CONFIG).unwrap()).unwrap();
    let runtime = Runtime::new(policy).unwrap();
    let mut headers = HeaderMap::new();
    headers.insert(header::CONTENT_TYPE, "application/json".parse().unwrap());
    let filler =
        "Our service returns intermittent errors under load and we want to know why. ".repeat(25);
    let coding = body(&format!("{filler} Here is the Python function that fails."));
    let chat = body(&format!("{filler} What do you think?"));
    assert!(coding.len() > 2000);

    let mut group = c.benchmark_group("pipeline");
    group.bench_function("ingress_parse_2kb", |b| {
        b.iter(|| ingress::parse(black_box(&headers), black_box(&coding)).unwrap())
    });
    let (_, conversation) = ingress::parse(&headers, &coding).unwrap();
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
        b.iter(|| {
            let (_, conversation) = ingress::parse(&headers, black_box(&coding)).unwrap();
            plan(&runtime, &conversation).unwrap()
        })
    });
    group.bench_function("parse_to_placement_default", |b| {
        b.iter(|| {
            let (_, conversation) = ingress::parse(&headers, black_box(&chat)).unwrap();
            plan(&runtime, &conversation).unwrap()
        })
    });
    group.finish();
}

criterion_group!(benches, pipeline);
criterion_main!(benches);
