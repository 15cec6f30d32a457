//! One embedding on one thread: a 64-token prompt, and a 9K-token prompt (bounded by
//! the head-and-tail window); the f32 encoder on the same 64 tokens for the ratio. Needs SWITCHYARD_MODEL_DIR (scripts/fetch-model.sh).

#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use criterion::{Criterion, criterion_group, criterion_main};
use std::hint::black_box;
use switchyard_embed::{Embedder, EmbedderOptions, Precision};

fn bench(c: &mut Criterion) {
    let Ok(dir) = std::env::var("SWITCHYARD_MODEL_DIR") else {
        panic!("this benchmark needs the model: SWITCHYARD_MODEL_DIR=$(scripts/fetch-model.sh)");
    };
    let m = Embedder::load(std::path::Path::new(&dir), EmbedderOptions::default()).unwrap();
    // 64 tokens with [CLS] and [SEP] (all-MiniLM-L6-v2's tokenizer).
    let short = "Please review this Python function that parses a CSV file of orders, \
                 groups them by customer, and computes the total spend per month; it \
                 is slow on large files and sometimes raises a KeyError for new customers. \
                 It should also skip rows with missing dates and write totals to a new file.";
    // 9,102 tokens, embedded through the window.
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
    // Larger windows than the default, for the trade-off.
    for window in [192, 256] {
        let options = EmbedderOptions {
            max_tokens: window,
            ..EmbedderOptions::default()
        };
        let m = Embedder::load(std::path::Path::new(&dir), options).unwrap();
        group.bench_function(format!("8k_tokens_window_{window}"), |b| {
            b.iter(|| m.embed(black_box(&long)).unwrap())
        });
    }
    // The f32 encoder, for the ratio.
    let options = EmbedderOptions {
        precision: Precision::F32,
        ..EmbedderOptions::default()
    };
    let f32 = Embedder::load(std::path::Path::new(&dir), options).unwrap();
    group.bench_function("64_tokens_f32", |b| {
        b.iter(|| f32.embed(black_box(short)).unwrap())
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
