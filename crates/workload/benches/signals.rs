//! Every signal family that needs no model (keyword, context, PII, language, structure,
//! feedback, re-ask, metadata, jailbreak patterns) together on a 2 KB prompt, one thread;
//! and PII on 1 MB of card-like digit groups, its worst case.

#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

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

criterion_group!(benches, bench, dense_digits);
criterion_main!(benches);
