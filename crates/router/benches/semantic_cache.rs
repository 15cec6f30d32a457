//! The in-memory semantic cache at 100,000 entries of 384 dimensions (the default
//! embedding's): an exact hit, a semantic lookup in one large partition (through its
//! graph), one in a small partition (a scan), and a miss. Twice: with vectors drawn
//! uniformly (no structure at all: a graph's worst case) and with vectors in 1,000
//! topics (each a random centre plus noise, members at cosine about 0.9 of each
//! other, as questions on one subject are). The target: a lookup within 50 µs. Each
//! run first prints how many of 1,000 near copies of stored questions are found.

#![allow(
    missing_docs,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::print_stderr
)]

use criterion::{Criterion, criterion_group, criterion_main};
use std::hint::black_box;
use std::time::Duration;
use switchyard_router::cache::{CacheStore, CachedAnswer, Key, MemoryStore};

const ENTRIES: usize = 100_000;
mod vectors;

use vectors::{entry, vector};

fn bench(c: &mut Criterion) {
    for clustered in [false, true] {
        run(c, clustered);
    }
}

fn run(c: &mut Criterion, clustered: bool) {
    let store = MemoryStore::new(ENTRIES, usize::MAX);
    let answer = CachedAnswer {
        text: "An answer of about the length answers have, give or take a sentence.".repeat(4),
        usage: None,
    };
    // 99,000 entries in one large partition; the rest in 100 small ones.
    for i in 0..ENTRIES {
        let partition = if i < 99_000 { 0 } else { 1 + (i % 100) as u64 };
        let v = entry(i, clustered);
        let question = format!("question number {i}");
        let key = Key {
            partition,
            question: &question,
            vector: Some(&v),
        };
        store.insert(&key, answer.clone(), Duration::from_secs(3600));
    }
    assert_eq!(store.len(), ENTRIES);
    let name = if clustered {
        "semantic_cache_100k_topics"
    } else {
        "semantic_cache_100k_uniform"
    };
    // Recall first: a near copy of each of 1,000 stored questions (through the graph)
    // must find it.
    let near_copy = |v: &[f32]| -> Vec<f32> {
        v.iter()
            .enumerate()
            .map(|(i, x)| x + if i % 7 == 0 { 0.01 } else { 0.0 })
            .collect()
    };
    let found = (0..1000)
        .filter(|k| {
            let i = k * 97;
            let near = near_copy(&entry(i, clustered));
            let key = Key {
                partition: 0,
                question: "another wording",
                vector: Some(&near),
            };
            store.lookup(&key, Some(0.95)).is_some()
        })
        .count();
    eprintln!("{name}: near copies found: {found} of 1000");
    // Uniform vectors are a graph's worst case: about 90% are found (a miss costs an
    // upstream call, never a wrong answer). Questions in topics are all found.
    assert!(
        found >= if clustered { 990 } else { 850 },
        "recall {found} of 1000"
    );
    let mut group = c.benchmark_group(name);
    let known = entry(1234, clustered);
    group.bench_function("exact_hit", |b| {
        let key = Key {
            partition: 0,
            question: "question number 1234",
            vector: Some(&known),
        };
        b.iter(|| assert!(black_box(store.lookup(black_box(&key), Some(0.95))).is_some()))
    });
    // A near copy of a stored question's vector: found through the graph.
    let near = near_copy(&known);
    group.bench_function("semantic_hit_large_partition", |b| {
        let key = Key {
            partition: 0,
            question: "another wording",
            vector: Some(&near),
        };
        b.iter(|| assert!(black_box(store.lookup(black_box(&key), Some(0.95))).is_some()))
    });
    let small = entry(99_050, clustered);
    group.bench_function("semantic_hit_small_partition", |b| {
        let key = Key {
            partition: 1 + 50,
            question: "another wording",
            vector: Some(&small),
        };
        b.iter(|| assert!(black_box(store.lookup(black_box(&key), Some(0.95))).is_some()))
    });
    let unknown = vector(u64::MAX / 3);
    group.bench_function("miss_large_partition", |b| {
        let key = Key {
            partition: 0,
            question: "never asked",
            vector: Some(&unknown),
        };
        b.iter(|| assert!(black_box(store.lookup(black_box(&key), Some(0.95))).is_none()))
    });
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(50).measurement_time(Duration::from_secs(3));
    targets = bench
}
criterion_main!(benches);
