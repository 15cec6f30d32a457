//! Simulated requests per second of wall time, on one core: the Azure archetype on
//! two H100 pools (B = 4K and 16K) at 28 and at 416 instances, loaded alike.

#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use std::path::Path;
use switchyard_fleet::sim::{parse_scenario, simulate};

fn fleet(short: u32, long: u32, rate: f64, requests: u64) -> String {
    format!(
        "seed: 1
requests: {requests}
pools:
  - {{name: short, gpu: h100, instances: {short}, context_window: 4K}}
  - {{name: long, gpu: h100, instances: {long}, context_window: 16K}}
workload:
  - name: azure
    arrival: {{poisson: {{rate: {rate}}}}}
    lengths: [{{cdf: azure, output_fraction: 0.2}}]
"
    )
}

fn bench(c: &mut Criterion) {
    let mut group = c.benchmark_group("simulate");
    group.sample_size(10);
    for (name, short, long, rate) in [
        ("28_instances", 12, 16, 450.0),
        ("416_instances", 178, 238, 6_690.0),
    ] {
        let requests = 400_000;
        let text = fleet(short, long, rate, requests);
        group.throughput(Throughput::Elements(requests));
        group.bench_function(name, |b| {
            b.iter(|| {
                let scenario = parse_scenario(&text, "bench.yaml", Path::new(".")).unwrap();
                let report = simulate(scenario).unwrap();
                assert_eq!(report.arrivals, requests);
                report
            })
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
