//! Every signal that needs no model (keyword, context, PII) on a 2 KB prompt, one thread.

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
  "pii": [{"name": "pii"}, {"name": "secrets", "types": ["api_key"]}]
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
}

criterion_group!(benches, bench);
criterion_main!(benches);
