//! Deciding a route from given signals (10 routes × 3 atoms, 100 routes × 5 atoms) and
//! checking a 100-route policy (every pair, shadowing, gaps).

#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

use criterion::{Criterion, criterion_group, criterion_main};
use std::hint::black_box;
use switchyard_policy::{Policy, parse_config};
use switchyard_wire::Conversation;

/// `routes` routes of `atoms` atoms each over 40 keyword signals, mixing all/any/not,
/// with a default route. Deterministic (a fixed linear congruential sequence).
fn generated(routes: usize, atoms: usize) -> String {
    let mut yaml = String::from(
        "models: [{name: m}]\n\
         pools: [{name: p, model: m, context_window: 128K, endpoints: [{url: 'http://127.0.0.1:1'}]}]\n\
         signals:\n  keyword:\n",
    );
    let signals = 40;
    for i in 0..signals {
        yaml.push_str(&format!("    - {{name: k{i}, keywords: [word{i}]}}\n"));
    }
    yaml.push_str("routes:\n");
    let mut state: u64 = 0x2545_f491;
    let mut next = |n: usize| {
        state = state
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        ((state >> 33) as usize) % n
    };
    for r in 0..routes {
        let leaves: Vec<String> = (0..atoms)
            .map(|_| {
                let leaf = format!("{{keyword: k{}}}", next(signals));
                if next(4) == 0 {
                    format!("{{not: {leaf}}}")
                } else {
                    leaf
                }
            })
            .collect();
        let (head, tail) = leaves.split_at(atoms / 2 + 1);
        let when = format!(
            "{{all: [{}, {{any: [{}]}}]}}",
            head.join(", "),
            tail.join(", ")
        );
        let when = if tail.is_empty() {
            format!("{{all: [{}]}}", head.join(", "))
        } else {
            when
        };
        yaml.push_str(&format!(
            "  - {{name: r{r}, priority: {}, when: {when}, models: [m]}}\n",
            next(50)
        ));
    }
    yaml.push_str("default_route: {models: [m]}\n");
    yaml
}

/// 40 routes over 40 keyword signals and 4 projections: two weighted sums of 10
/// keywords each (half read by confidence, weights of both signs) and a band
/// mapping of three bands on each; every route reads one band and two keywords.
fn with_projections() -> String {
    let mut yaml = String::from(
        "models: [{name: m}]\n\
         pools: [{name: p, model: m, context_window: 128K, endpoints: [{url: 'http://127.0.0.1:1'}]}]\n\
         signals:\n  keyword:\n",
    );
    for i in 0..40 {
        yaml.push_str(&format!("    - {{name: k{i}, keywords: [word{i}]}}\n"));
    }
    yaml.push_str("  projection:\n");
    for score in 0..2 {
        yaml.push_str(&format!(
            "    - name: s{score}\n      method: weighted_sum\n      inputs:\n"
        ));
        for i in 0..10 {
            let k = score * 10 + i;
            let weight = if i % 3 == 0 {
                -0.15
            } else {
                0.1 + 0.02 * i as f64
            };
            let read = if i % 2 == 0 { "confidence" } else { "match" };
            yaml.push_str(&format!(
                "        - {{signal: keyword.k{k}, weight: {weight}, read: {read}}}\n"
            ));
        }
        yaml.push_str(&format!(
            "    - name: b{score}\n      method: threshold_bands\n      source: s{score}\n      \
             calibration: {{slope: 6}}\n      bands: [{{name: low, lt: 0.2}}, {{name: mid, gte: 0.2, lt: 0.6}}, {{name: high, gte: 0.6}}]\n"
        ));
    }
    yaml.push_str("routes:\n");
    let bands = ["low", "mid", "high"];
    for r in 0..40usize {
        yaml.push_str(&format!(
            "  - {{name: r{r}, priority: {}, when: {{all: [{{projection: {{name: b{}, label: {}}}}}, {{keyword: k{}}}, {{not: {{keyword: k{}}}}}]}}, models: [m]}}\n",
            r % 7,
            r % 2,
            bands[r % 3],
            20 + r % 20,
            (r * 7) % 40
        ));
    }
    yaml.push_str("default_route: {models: [m]}\n");
    yaml
}

fn bench_projections(c: &mut Criterion) {
    use switchyard_workload::{SignalFamily, SignalValue};
    let mut group = c.benchmark_group("policy");
    let policy = Policy::compile(parse_config(&with_projections()).unwrap()).unwrap();
    let prompt: String = (0..40).step_by(3).map(|i| format!("word{i} ")).collect();
    let signals = policy.signals.characterize(
        &Conversation::from_prompt("auto", &prompt),
        policy.needed_signals(),
    );
    group.bench_function("decide_40_routes_4_projections", |b| {
        b.iter(|| policy.decide(black_box(&signals)))
    });
    group.bench_function("decide_and_explain_40_routes_4_projections", |b| {
        b.iter(|| policy.explain(black_box(&signals)))
    });
    // What the engine adds for the projections themselves, their inputs computed.
    let engine = &policy.signals;
    let order: Vec<_> = ["s0", "s1", "b0", "b1"]
        .iter()
        .map(|n| engine.lookup(SignalFamily::Projection, n).unwrap())
        .collect();
    let reads: Vec<(Vec<_>, Vec<_>)> = order
        .iter()
        .map(|&id| {
            let inputs = engine.inputs(id);
            let keys = inputs
                .iter()
                .map(|&i| engine.key(i).unwrap().clone())
                .collect();
            (inputs, keys)
        })
        .collect();
    group.bench_function("derive_4_projections", |b| {
        b.iter(|| {
            let mut out: Vec<SignalValue> = Vec::with_capacity(4);
            for (&id, (inputs, keys)) in order.iter().zip(&reads) {
                let values: Vec<Option<&SignalValue>> =
                    inputs.iter().map(|&i| signals.get(i)).collect();
                let projection = engine.projection(id).unwrap();
                out.push(projection.derive(black_box(&values), keys));
            }
            out
        })
    });
    let yaml = with_projections();
    group.sample_size(10);
    group.bench_function("check_40_routes_4_projections", |b| {
        b.iter(|| {
            let policy = Policy::compile(parse_config(black_box(&yaml)).unwrap()).unwrap();
            policy.analyze().findings.len()
        })
    });
    group.finish();
}

fn bench(c: &mut Criterion) {
    let mut group = c.benchmark_group("policy");
    for (routes, atoms) in [(10, 3), (100, 5)] {
        let policy = Policy::compile(parse_config(&generated(routes, atoms)).unwrap()).unwrap();
        // Half of the signals hold: most routes are evaluated before one matches.
        let prompt: String = (0..40).step_by(2).map(|i| format!("word{i} ")).collect();
        let signals = policy.signals.characterize(
            &Conversation::from_prompt("auto", &prompt),
            policy.needed_signals(),
        );
        group.bench_function(format!("decide_{routes}_routes_{atoms}_atoms"), |b| {
            b.iter(|| policy.decide(black_box(&signals)))
        });
        group.bench_function(
            format!("decide_and_explain_{routes}_routes_{atoms}_atoms"),
            |b| b.iter(|| policy.explain(black_box(&signals))),
        );
        // No signal holds: every route is tried before the default.
        let none = policy.signals.characterize(
            &Conversation::from_prompt("auto", "hello"),
            policy.needed_signals(),
        );
        group.bench_function(
            format!("decide_no_signal_{routes}_routes_{atoms}_atoms"),
            |b| b.iter(|| policy.decide(black_box(&none))),
        );
        // The confidence strategy evaluates every route, with certainties.
        let yaml = format!(
            "{}decision: {{strategy: confidence}}\n",
            generated(routes, atoms)
        );
        let by_confidence = Policy::compile(parse_config(&yaml).unwrap()).unwrap();
        group.bench_function(
            format!("decide_by_confidence_{routes}_routes_{atoms}_atoms"),
            |b| b.iter(|| by_confidence.decide(black_box(&signals))),
        );
    }
    let yaml = generated(100, 5);
    group.sample_size(10);
    group.bench_function("check_100_routes", |b| {
        b.iter(|| {
            let policy = Policy::compile(parse_config(black_box(&yaml)).unwrap()).unwrap();
            policy.analyze().findings.len()
        })
    });
    group.finish();
}

criterion_group!(benches, bench, bench_projections);
criterion_main!(benches);
