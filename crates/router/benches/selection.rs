//! Selection per request for the algorithms that learn: `thompson` over three
//! candidates (their arms looked up in the outcome store, one Beta draw each), `elo`
//! over three (their ratings looked up), and
//! `learned` given the request's embedding (the shipped router's prediction from the
//! embedding and the prompt's text, then the choice).

#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

use criterion::{Criterion, criterion_group, criterion_main};
use std::hint::black_box;
use std::sync::Arc;
use switchyard_policy::{EloConfig, LearnedConfig, OutcomesConfig, Price, ThompsonConfig};
use switchyard_router::outcomes::{Answer, Implicit, Outcomes};
use switchyard_router::{ArmStats, Candidate, SelectRequest, Selection};
use switchyard_workload::outcome_router::read_router;

fn candidate(name: &'static str, price: f64) -> Candidate<'static> {
    Candidate {
        model: 0,
        name,
        max_context: 32_768,
        price: Some(Price {
            input: price,
            output: price * 4.0,
        }),
        quality: Some(0.7),
        load: 0.0,
        latency: None,
        outcomes: ArmStats::default(),
        predicted: None,
        ttft_ms: None,
    }
}

fn request(draw: u64) -> SelectRequest {
    SelectRequest {
        tokens: 1200,
        prompt_tokens: 1000,
        output_tokens: 200,
        hash: 7,
        draw,
    }
}

fn selection(c: &mut Criterion) {
    let outcomes = Outcomes::new(&OutcomesConfig::default());
    let names = ["small", "medium", "large"];
    for (i, model) in names.iter().enumerate() {
        for n in 0..200 {
            let id = format!("{model}-{n}");
            outcomes.record(&Answer {
                request_id: &id,
                caller: None,
                route: "main",
                model,
                bucket: Some("law"),
                domain: Some("law"),
                discount: 0.995,
                session: None,
                implicit: if n % (i + 2) == 0 {
                    Implicit::Failed
                } else {
                    Implicit::Ok
                },
                complaint: None,
                now_ms: 0,
            });
        }
    }
    let thompson = ThompsonConfig {
        cost_weight: 0.1,
        ..ThompsonConfig::default()
    };
    let mut draw = 0u64;
    c.bench_function("select/thompson_3_candidates_with_arm_lookup", |b| {
        b.iter(|| {
            draw += 1;
            let arms = outcomes.arms("main", &names, Some("law"));
            let mut listed = [
                candidate("small", 0.1),
                candidate("medium", 1.0),
                candidate("large", 5.0),
            ];
            for (c, arm) in listed.iter_mut().zip(arms) {
                c.outcomes = arm;
            }
            black_box(thompson.select(&listed, &request(draw)))
        });
    });

    let elo = EloConfig { cost_weight: 0.1 };
    c.bench_function("select/elo_3_candidates_with_arm_lookup", |b| {
        b.iter(|| {
            let arms = outcomes.arms("*", &names, None);
            let mut listed = [
                candidate("small", 0.1),
                candidate("medium", 1.0),
                candidate("large", 5.0),
            ];
            for (c, arm) in listed.iter_mut().zip(arms) {
                c.outcomes = arm;
            }
            black_box(elo.select(&listed, &request(1)))
        });
    });

    let file = Arc::new(read_router(None).unwrap());
    let learned = LearnedConfig {
        router: None,
        strong: "large".into(),
        weak: "small".into(),
        share: Some(0.5),
        margin: None,
        file: Some(Arc::clone(&file)),
    };
    let embedding: Vec<f32> = (0..file.dimension)
        .map(|i| ((i * 37 % 101) as f32 / 101.0) - 0.5)
        .collect();
    let prompt = "A 3-kg block slides down a frictionless incline of 30 degrees. What is its acceleration?\nA. 4.9 m/s^2\nB. 9.8 m/s^2\nC. 2.45 m/s^2\nD. 0 m/s^2\nAnswer:";
    c.bench_function("select/learned_given_embedding", |b| {
        b.iter(|| {
            let scores = file
                .predict(black_box(&embedding), black_box(prompt))
                .unwrap();
            let mut listed = [candidate("small", 0.1), candidate("large", 5.0)];
            listed[0].predicted = Some(scores[1]);
            listed[1].predicted = Some(scores[0]);
            black_box(learned.select(&listed, &request(1)))
        });
    });
}

criterion_group!(benches, selection);
criterion_main!(benches);
