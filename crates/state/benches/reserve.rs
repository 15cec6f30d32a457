//! A budget's reserve plus settle: in process, and on a Valkey (or Redis) server on
//! loopback when `SWITCHYARD_VALKEY_BIN` (or `SWITCHYARD_REDIS_BIN`) names one, which
//! is started here. Besides criterion's median, the server case prints the p50 and
//! p99 of 20,000 pairs timed one by one (a budget's tail is what a request waits).

#![allow(
    missing_docs,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::print_stdout
)]

use criterion::{Criterion, criterion_group, criterion_main};
use std::sync::Arc;
use std::time::{Duration, Instant};
use switchyard_state::testing::KvServer;
use switchyard_state::{InProcess, Limits, RemoteOptions, RemoteState, SharedState, SystemClock};

fn pair(s: &dyn SharedState, key: &str) {
    let held = s
        .reserve(key, 1_000, u64::MAX / 2, Duration::from_secs(60))
        .unwrap();
    s.settle(held, 400);
}

fn bench(c: &mut Criterion) {
    let mut group = c.benchmark_group("state");
    let local = InProcess::new(Arc::new(SystemClock::new()), Limits::default());
    let callers: Vec<String> = (0..1000).map(|i| format!("caller-{i}")).collect();
    let mut i = 0;
    group.bench_function("reserve+settle in process", |b| {
        b.iter(|| {
            i = (i + 1) % callers.len();
            pair(&local, &callers[i]);
        })
    });
    for (variable, backend) in [
        ("SWITCHYARD_VALKEY_BIN", "valkey"),
        ("SWITCHYARD_REDIS_BIN", "redis"),
    ] {
        let Some(server) = KvServer::from_env(variable, backend).unwrap() else {
            continue;
        };
        let mut options = RemoteOptions::new(&server.url());
        options.backend = backend;
        let remote = RemoteState::new(options).unwrap();
        group.bench_function(format!("reserve+settle on {backend}"), |b| {
            b.iter(|| {
                i = (i + 1) % callers.len();
                pair(&remote, &callers[i]);
            })
        });
        let mut times: Vec<Duration> = (0..20_000)
            .map(|n| {
                let started = Instant::now();
                pair(&remote, &callers[n % callers.len()]);
                started.elapsed()
            })
            .collect();
        times.sort();
        println!(
            "reserve+settle on {backend}, 20,000 pairs: p50 {:?}, p99 {:?}, max {:?}",
            times[times.len() / 2],
            times[times.len() * 99 / 100],
            times[times.len() - 1]
        );
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
