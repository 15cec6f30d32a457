//! Placement cost with 1,000 endpoints, per strategy: pool choice by context window,
//! health filtering, then the strategy's pick.

#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

use criterion::{Criterion, criterion_group, criterion_main};
use std::hint::black_box;
use switchyard_policy::{Policy, parse_config};
use switchyard_pool::{PlaceRequest, Pools};

/// A model with a small 8K pool (skipped: too small) and a 64K pool of `endpoints`.
fn pools(strategy: &str, endpoints: usize) -> Pools {
    let short: Vec<String> = (0..8)
        .map(|i| format!("      - {{url: 'http://10.0.0.{i}:8000'}}"))
        .collect();
    let long: Vec<String> = (0..endpoints)
        .map(|i| {
            format!(
                "      - {{url: 'http://10.1.{}.{}:8000'}}",
                i / 250,
                i % 250
            )
        })
        .collect();
    let config = format!(
        "models: [{{name: m}}]
health: {{check_interval_ms: 0}}
pools:
  - name: short
    model: m
    context_window: 8K
    strategy: {strategy}
    endpoints:
{}
  - name: long
    model: m
    context_window: 64K
    strategy: {strategy}
    endpoints:
{}
default_route: {{models: [m]}}
",
        short.join("\n"),
        long.join("\n")
    );
    let policy = Policy::compile(parse_config(&config).unwrap()).unwrap();
    Pools::build(&policy.config).unwrap()
}

fn placement(c: &mut Criterion) {
    let mut group = c.benchmark_group("place_among_1000_endpoints");
    for strategy in [
        "round_robin",
        "weighted",
        "least_outstanding",
        "p2c_ewma",
        "session_affinity",
        "prefix_affinity",
    ] {
        let pools = pools(strategy, 1000);
        // Some load and latency so the strategies have something to weigh.
        let mut guards = Vec::new();
        for (i, e) in pools.endpoints().enumerate() {
            e.latency.observe(10.0 + (i % 7) as f64, 0);
            for _ in 0..(i % 3) {
                guards.push(e.begin());
            }
        }
        let mut key = 0u64;
        group.bench_function(strategy, |b| {
            b.iter(|| {
                key = key.wrapping_add(0x9E37_79B9_7F4A_7C15);
                let request = PlaceRequest {
                    tokens: 20_000,
                    prompt_tokens: 19_000,
                    session: Some(key),
                    prefix: Some(key),
                    allowed: switchyard_pool::PoolSet::ALL,
                };
                black_box(pools.place_avoiding(0, black_box(&request), &[]).unwrap())
            })
        });
    }
    group.finish();
}

criterion_group!(benches, placement);
criterion_main!(benches);
