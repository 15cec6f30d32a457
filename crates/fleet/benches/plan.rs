//! A full (B, γ) plan (search over the grid and its refinement, every GPU per pool,
//! disaggregated comparison) for each of the three workload archetypes.

#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

use criterion::{Criterion, criterion_group, criterion_main};
use std::path::Path;
use switchyard_fleet::plan::{self, parse_plan};

fn bench(c: &mut Criterion) {
    let specs: Vec<_> = [("azure", 400.0), ("lmsys", 800.0), ("agent_heavy", 100.0)]
        .iter()
        .map(|(cdf, rate)| {
            let text = format!(
                "workload: {{rate: {rate}, mix: [{{cdf: {cdf}}}]}}\nttft_p99_ms: 800\ngpus: [a10g, a100, h100]\nverify_requests: 0\n"
            );
            parse_plan(&text, "bench.yaml", Path::new(".")).unwrap()
        })
        .collect();
    let mut group = c.benchmark_group("plan");
    group.sample_size(10);
    group.bench_function("three_archetypes", |b| {
        b.iter(|| {
            specs
                .iter()
                .map(|s| plan::plan(s).unwrap().best.cost_per_hour)
                .sum::<f64>()
        })
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
