//! One embedding on one thread: a 64-token prompt, and an 8K-token prompt (bounded by
//! the head-and-tail window). Needs SWITCHYARD_MODEL_DIR (scripts/fetch-model.sh).

#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use criterion::{Criterion, criterion_group, criterion_main};
use std::hint::black_box;
use switchyard_embed::{Embedder, EmbedderOptions};

fn bench(c: &mut Criterion) {
    let Ok(dir) = std::env::var("SWITCHYARD_MODEL_DIR") else {
        panic!("this benchmark needs the model: SWITCHYARD_MODEL_DIR=$(scripts/fetch-model.sh)");
    };
    let m = Embedder::load(std::path::Path::new(&dir), EmbedderOptions::default()).unwrap();
    // About 64 tokens.
    let short = "Please review this Python function that parses a CSV file of orders, \
                 groups them by customer, and computes the total spend per month; it \
                 is slow on large files and sometimes raises a KeyError for new customers.";
    // About 8K tokens.
    let long = "The quarterly report covers revenue, costs, hiring and the outlook. ".repeat(700);
    let mut group = c.benchmark_group("embed");
    group.bench_function("64_tokens", |b| {
        b.iter(|| m.embed(black_box(short)).unwrap())
    });
    // Eight concurrent requests: one padded batch against eight passes.
    let eight: Vec<String> = (0..8)
        .map(|i| format!("{short} (variant {i}{})", " and more".repeat(i)))
        .collect();
    let refs: Vec<&str> = eight.iter().map(String::as_str).collect();
    group.sample_size(20);
    group.bench_function("8x64_tokens_one_batch", |b| {
        b.iter(|| m.embed_batch(black_box(&refs)).unwrap())
    });
    group.bench_function("8x64_tokens_one_by_one", |b| {
        b.iter(|| {
            for t in &refs {
                m.embed(black_box(t)).unwrap();
            }
        })
    });
    group.bench_function("8k_tokens", |b| {
        b.iter(|| m.embed(black_box(&long)).unwrap())
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
