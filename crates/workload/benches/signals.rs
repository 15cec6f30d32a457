//! Every signal family that needs no model (keyword, context, PII, language, structure,
//! feedback, re-ask, metadata, jailbreak patterns) together on a 2 KB prompt, one thread;
//! and PII on 1 MB of card-like digit groups, its worst case; the jailbreak pattern
//! scan on 10 KB prompts (English prose, prose with accents and box drawing), and, when
//! `../shared/data/safety/jailbreak_templates.jsonl` is there, the distribution of its
//! time over those real jailbreak templates.

#![allow(
    missing_docs,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::print_stdout,
    clippy::cast_possible_truncation,
    clippy::cast_sign_loss,
    clippy::cast_precision_loss
)]

use criterion::{Criterion, criterion_group, criterion_main};
use std::hint::black_box;
use switchyard_wire::Conversation;
use switchyard_workload::{SignalEngine, SignalId, SignalsConfig};

const CONFIG: &str = r#"{
  "keyword": [
    {"name": "code", "keywords": ["python", "rust", "stack trace", "segfault", "compiler", "function"]},
    {"name": "legal", "keywords": ["contract", "liability", "plaintiff", "statute"]}
  ],
  "context": [{"name": "long", "min": "6K"}, {"name": "short", "max": "1K"}],
  "pii": [{"name": "pii"}, {"name": "secrets", "types": ["api_key"]}],
  "language": [{"name": "english", "languages": ["eng"]}],
  "structure": [{"name": "tool_loop", "feature": "active_tool_loop"}],
  "user_feedback": [{"name": "unhappy"}],
  "reask": [{"name": "again"}],
  "metadata": [{"name": "tier", "key": "metadata:tier"}],
  "jailbreak": [{"name": "attack", "contrast": false}]
}"#;

fn bench(c: &mut Criterion) {
    let config: SignalsConfig = serde_json::from_str(CONFIG).unwrap();
    let engine = SignalEngine::build(&config).unwrap();
    let needed: Vec<SignalId> = (0..engine.len()).map(SignalId).collect();
    let paragraph = "Our service reads orders from a queue, validates each against the customer's \
                     contract terms, and writes invoices. Last night the worker crashed with a stack \
                     trace pointing at the function that rounds currency amounts. Contact me at \
                     ops-lead@example.com or +1 (415) 555-2671 if you need the logs. ";
    let prompt = paragraph.repeat(2048 / paragraph.len() + 1);
    let conversation = Conversation::from_prompt("auto", &prompt[..2048]);
    c.bench_function("signals/no_model_2kb", |b| {
        b.iter(|| engine.characterize(black_box(&conversation), &needed))
    });
    // Each family alone, to see where the time goes.
    let all: serde_json::Value = serde_json::from_str(CONFIG).unwrap();
    for (family, definitions) in all.as_object().unwrap() {
        let one: SignalsConfig =
            serde_json::from_value(serde_json::json!({ family.as_str(): definitions })).unwrap();
        let engine = SignalEngine::build(&one).unwrap();
        let needed: Vec<SignalId> = (0..engine.len()).map(SignalId).collect();
        c.bench_function(&format!("signals/family/{family}"), |b| {
            b.iter(|| engine.characterize(black_box(&conversation), &needed))
        });
    }
}

/// The adversarial case for PII: 1 MB of card-like digit groups back to back (tens of
/// thousands of overlapping candidates to resolve).
fn dense_digits(c: &mut Criterion) {
    let text = "4111 1111 1111 1111 ".repeat(1024 * 1024 / 20);
    let mut group = c.benchmark_group("signals/pii_dense");
    group.sample_size(10);
    group.bench_function("1mb", |b| {
        b.iter(|| switchyard_workload::pii::find_pii(black_box(&text)).len())
    });
    group.finish();
}

/// Ten kilobytes of `unit` repeated, cut on a character boundary.
fn ten_kb(unit: &str) -> String {
    let mut text = unit.repeat(10 * 1024 / unit.len() + 1);
    let mut end = 10 * 1024;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text.truncate(end);
    text
}

fn jailbreak_scan(c: &mut Criterion) {
    let prose = ten_kb(
        "The committee reviewed the quarterly figures and asked the team to explain why \
         shipping costs rose while volumes fell; the answer, given at length, pointed at \
         fuel prices, a new warehouse lease and two months of overtime in the north. ",
    );
    let accented = ten_kb(
        "║ Le comité a examiné les résultats trimestriels — coûts d'expédition élevés, \
         volumes en baisse ║ Die Kosten stiegen während die Mengen fielen ║ ═══ ",
    );
    let mut group = c.benchmark_group("jailbreak/patterns_10kb");
    group.bench_function("english", |b| {
        b.iter(|| switchyard_workload::jailbreak::find_pattern(black_box(&prose)))
    });
    group.bench_function("accented", |b| {
        b.iter(|| switchyard_workload::jailbreak::find_pattern(black_box(&accented)))
    });
    group.finish();
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../../shared/data/safety/jailbreak_templates.jsonl"
    );
    let Ok(file) = std::fs::read_to_string(path) else {
        return;
    };
    let templates: Vec<String> = file
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter_map(|v| v["template"].as_str().map(str::to_owned))
        .collect();
    let mut times: Vec<(u128, usize)> = templates
        .iter()
        .map(|t| {
            let runs = 20;
            let mut best = u128::MAX;
            for _ in 0..runs {
                let started = std::time::Instant::now();
                black_box(switchyard_workload::jailbreak::find_pattern(black_box(t)));
                best = best.min(started.elapsed().as_nanos());
            }
            (best, t.len())
        })
        .collect();
    times.sort_unstable();
    let at = |q: f64| times[((times.len() - 1) as f64 * q) as usize];
    let (p50, p99, max) = (at(0.5), at(0.99), times[times.len() - 1]);
    println!(
        "jailbreak/templates: {} prompts, best of 20 each: p50 {} µs, p99 {} µs ({} bytes), max {} µs ({} bytes)",
        times.len(),
        p50.0 / 1000,
        p99.0 / 1000,
        p99.1,
        max.0 / 1000,
        max.1
    );
}

criterion_group!(benches, bench, dense_digits, jailbreak_scan);
criterion_main!(benches);
