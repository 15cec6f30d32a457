//! `switchyard bench cascade`: a confidence cascade against the learned router, end to
//! end through the gateway. Two simulated engines answer a labelled outcome file's
//! prompts right or wrong as the file says (`--answers`), the weak one with the
//! calibrated confidence its logprobs carry; the gateway routes each prompt by a
//! cascade at several thresholds, by the learned router at several shares, and to
//! each model alone; the client grades every answer by the engine's verdict and counts
//! the strong model's calls.

use crate::eval_routing::{answer_key, pick_models};
use anyhow::{Context, Result, anyhow, bail};
use futures_util::StreamExt;
use serde_json::{Value, json};
use std::path::PathBuf;
use std::sync::Arc;
use switchyard_engine::quality::Skill;
use switchyard_engine::{EngineConfig, EngineHandle};
use switchyard_gateway::{Gateway, Runtime};
use switchyard_policy::{Policy, parse_config};
use switchyard_workload::outcome_router::{OutcomeData, read_outcomes};

#[derive(clap::Args)]
pub struct CascadeArgs {
    /// The labelled outcome file (as `eval routing` reads it).
    #[arg(long)]
    data: PathBuf,
    /// Rows sent, spread evenly over the file (0: all).
    #[arg(long, default_value_t = 1000)]
    rows: usize,
    /// The cascade's `min_confidence` values to run.
    #[arg(long, value_delimiter = ',', default_value = "0.5,0.6,0.7,0.8")]
    thresholds: Vec<f64>,
    /// κ of the weak engine's confidence, Beta(κμ, κ(1−μ)).
    #[arg(long, default_value_t = 4.0)]
    concentration: f64,
    /// `share` values of the learned router (the shipped router; needs the embedding
    /// model). `--learned-shares` alone for none.
    #[arg(long, value_delimiter = ',', num_args = 0.., default_value = "0.3,0.5")]
    learned_shares: Vec<f64>,
    /// The embedding model's folder, for the learned router.
    #[arg(long, default_value = ".cache/models/all-MiniLM-L6-v2")]
    model: PathBuf,
    /// The strong model (default: the most accurate in the file).
    #[arg(long)]
    strong: Option<String>,
    /// The weak model (default: the least accurate).
    #[arg(long)]
    weak: Option<String>,
    /// Requests in flight.
    #[arg(long, default_value_t = 16)]
    concurrency: usize,
}

/// What one configuration reached.
struct Reached {
    strong_calls: usize,
    correct: usize,
    sent: usize,
}

async fn engine(
    name: &str,
    accuracy: f64,
    concentration: f64,
    key: std::collections::HashMap<u64, bool>,
) -> Result<EngineHandle> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let config = EngineConfig {
        model: name.to_owned(),
        gpu: None,
        mean_output_tokens: 4,
        skill: Skill {
            accuracy: accuracy.clamp(0.01, 0.99),
            concentration,
        },
        answer_key: Some(Arc::new(key)),
        ..EngineConfig::default()
    };
    Ok(switchyard_engine::serve(listener, config).await?)
}

pub async fn run(args: CascadeArgs) -> Result<()> {
    let data = read_outcomes(&args.data).map_err(|e| anyhow!("{e}"))?;
    let (strong, weak) = pick_models(&data, args.strong.as_deref(), args.weak.as_deref())?;
    let accuracy = data.accuracy();
    if args.concurrency == 0 {
        bail!("--concurrency must be above 0");
    }
    let rows = sample(&data, args.rows);
    let weak_engine = engine(
        "weak",
        accuracy[weak],
        args.concentration,
        answer_key(&args.data, &data.models[weak])?,
    )
    .await?;
    let strong_engine = engine(
        "strong",
        accuracy[strong],
        args.concentration,
        answer_key(&args.data, &data.models[strong])?,
    )
    .await?;
    println!(
        "switchyard bench cascade: {} of {} rows of {}; weak `{}` ({:.1}% in the file, \
         confidence κ {}), strong `{}` ({:.1}%)\n",
        rows.len(),
        data.rows.len(),
        args.data.display(),
        data.models[weak],
        accuracy[weak] * 100.0,
        args.concentration,
        data.models[strong],
        accuracy[strong] * 100.0
    );
    let fleet = format!(
        "server: {{listen: '127.0.0.1:0'}}
health: {{check_interval_ms: 0}}
models:
  - {{name: weak, price: {{input: 0.6, output: 0.6}}}}
  - {{name: strong, price: {{input: 10, output: 30}}}}
pools:
  - {{name: pw, model: weak, context_window: 32K, endpoints: [{{url: '{}'}}]}}
  - {{name: ps, model: strong, context_window: 32K, endpoints: [{{url: '{}'}}]}}
",
        weak_engine.url(),
        strong_engine.url()
    );
    let mut runs: Vec<(String, String)> = vec![
        ("weak only".into(), "default_route: {models: [weak]}".into()),
        (
            "strong only".into(),
            "default_route: {models: [strong]}".into(),
        ),
    ];
    for t in &args.thresholds {
        runs.push((
            format!("cascade, min_confidence {t}"),
            format!(
                "default_route: {{models: [weak, strong], algorithm: {{type: cascade, min_confidence: {t}}}}}"
            ),
        ));
    }
    if !args.learned_shares.is_empty() {
        if args.model.join("config.json").exists() {
            for s in &args.learned_shares {
                runs.push((
                    format!("learned router, share {s}"),
                    format!(
                        "signals: {{model: {{path: '{}'}}}}
default_route: {{models: [strong, weak], algorithm: {{type: learned, strong: strong, weak: weak, share: {s}}}}}",
                        args.model.display()
                    ),
                ));
            }
        } else {
            eprintln!(
                "no embedding model in {}: the learned router is not run (scripts/fetch-model.sh installs it)",
                args.model.display()
            );
        }
    }
    let mut reached = Vec::new();
    for (label, route) in &runs {
        eprintln!("running: {label}");
        reached.push((
            label,
            run_one(&fleet, route, &rows, args.concurrency).await?,
        ));
    }
    let strong_alone = reached
        .iter()
        .find(|(label, _)| *label == "strong only")
        .map_or(0.0, |(_, r)| accuracy_of(r));
    println!("| routing | strong calls | accuracy | of the strong model's |\n|---|---|---|---|");
    for (label, reached) in &reached {
        let acc = accuracy_of(reached);
        println!(
            "| {label} | {:.1}% | {:.1}% | {:.1}% |",
            100.0 * reached.strong_calls as f64 / reached.sent.max(1) as f64,
            100.0 * acc,
            100.0 * acc / strong_alone.max(f64::EPSILON)
        );
    }
    println!(
        "\nStrong calls: requests the strong model answered or was escalated to. Accuracy: \
         answers the engines graded right (their answer keys are the file's outcomes)."
    );
    Ok(())
}

fn accuracy_of(r: &Reached) -> f64 {
    r.correct as f64 / r.sent.max(1) as f64
}

/// `n` rows spread evenly over the file (all of them for 0 or more than it has).
fn sample(data: &OutcomeData, n: usize) -> Vec<String> {
    let total = data.rows.len();
    let n = if n == 0 || n > total { total } else { n };
    (0..n)
        .map(|i| data.rows[i * total / n.max(1)].text.clone())
        .collect()
}

/// Sends every prompt through a gateway serving `fleet` plus `route`.
async fn run_one(fleet: &str, route: &str, rows: &[String], concurrency: usize) -> Result<Reached> {
    let config = format!("{fleet}{route}\n");
    let policy = Policy::compile(parse_config(&config).map_err(|e| anyhow!("{e}"))?)
        .map_err(|e| anyhow!("{e}"))?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let gateway = Gateway::start(listener, Runtime::new(policy)?)?;
    let url = format!("{}/v1/chat/completions", gateway.url());
    let client = reqwest::Client::builder().tcp_nodelay(true).build()?;
    let results: Vec<Result<(bool, bool)>> = futures_util::stream::iter(rows.iter().cloned())
        .map(|prompt| {
            let (client, url) = (client.clone(), url.clone());
            async move {
                let r = client
                    .post(&url)
                    .json(&json!({"model": "auto", "max_tokens": 8,
                                  "messages": [{"role": "user", "content": prompt}]}))
                    .send()
                    .await?;
                if !r.status().is_success() {
                    bail!("the gateway answered {}: {}", r.status(), r.text().await?);
                }
                let header = |name: &str| {
                    r.headers()
                        .get(name)
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or_default()
                        .to_owned()
                };
                let strong = header("x-switchyard-model") == "strong"
                    || header("x-switchyard-cascade").contains("escalated");
                let body: Value = r.json().await?;
                let correct = body["switchyard_engine"]["correct"]
                    .as_bool()
                    .context("an answer without the engine's verdict")?;
                Ok((strong, correct))
            }
        })
        .buffer_unordered(concurrency)
        .collect()
        .await;
    let mut reached = Reached {
        strong_calls: 0,
        correct: 0,
        sent: 0,
    };
    for r in results {
        let (strong, correct) = r?;
        reached.sent += 1;
        reached.strong_calls += usize::from(strong);
        reached.correct += usize::from(correct);
    }
    drop(gateway);
    Ok(reached)
}
