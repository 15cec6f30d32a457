//! `switchyard bench placement`: TTFT under each endpoint strategy on a skewed fleet.
//!
//! The fleet: four H100 engines and one A10G engine (3× slower per iteration, a
//! quarter of the prefill chunk) in one pool. The load: open-loop Poisson arrivals of
//! streamed requests, a mix of short chats and long documents, from a seeded RNG so
//! every strategy sees the same sequence. Each strategy gets a fresh fleet.

use anyhow::{Result, bail};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::json;
use std::time::{Duration, Instant};
use switchyard_engine::EngineConfig;
use switchyard_fleet::GpuKind;
use switchyard_gateway::{Gateway, Runtime};
use switchyard_policy::{Policy, parse_config};

#[derive(clap::Args)]
pub struct PlacementArgs {
    /// Requests per strategy.
    #[arg(long, default_value_t = 600)]
    requests: usize,
    /// Mean arrival rate, requests per second.
    #[arg(long, default_value_t = 30.0)]
    rate: f64,
    /// Share of long (~3,000-token) prompts; the rest are ~60 tokens.
    #[arg(long, default_value_t = 0.3)]
    long_share: f64,
    /// Seed of arrivals and the prompt mix.
    #[arg(long, default_value_t = 7)]
    seed: u64,
    /// Strategies to compare (round robin is always measured first, as the baseline).
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "least_outstanding,p2c_ewma"
    )]
    strategies: Vec<String>,
}

struct Shot {
    ttft_ms: f64,
    slow: bool,
    long: bool,
}

pub async fn run(args: PlacementArgs) -> Result<()> {
    if args.rate.is_nan() || args.rate <= 0.0 || args.requests == 0 {
        bail!("--rate and --requests must be above 0");
    }
    println!(
        "switchyard bench placement: 4 × H100 + 1 × A10G in one pool, {} streamed requests at \
         {}/s (Poisson), {:.0}% long prompts, seed {}\n",
        args.requests,
        args.rate,
        args.long_share * 100.0,
        args.seed
    );
    println!(
        "{:<18} {:>9} {:>9} {:>9} {:>9}  {:>11}  {:>9}",
        "strategy", "p50 ms", "p90 ms", "p99 ms", "max ms", "to the A10G", "p99 / rr"
    );
    let mut baseline = None;
    let mut strategies = vec!["round_robin".to_owned()];
    strategies.extend(
        args.strategies
            .iter()
            .filter(|s| *s != "round_robin")
            .cloned(),
    );
    for strategy in &strategies {
        let shots = measure(strategy, &args).await?;
        let mut ttft: Vec<f64> = shots.iter().map(|s| s.ttft_ms).collect();
        ttft.sort_by(f64::total_cmp);
        let q = |p: f64| ttft[((p / 100.0) * (ttft.len() - 1) as f64).round() as usize];
        let p99 = q(99.0);
        let base = *baseline.get_or_insert(p99);
        let slow = shots.iter().filter(|s| s.slow).count();
        let slow_long = shots.iter().filter(|s| s.slow && s.long).count();
        println!(
            "{strategy:<18} {:>9.1} {:>9.1} {:>9.1} {:>9.1}  {:>4} ({:>3} long)  {:>9.2}",
            q(50.0),
            q(90.0),
            p99,
            ttft[ttft.len() - 1],
            slow,
            slow_long,
            p99 / base
        );
    }
    Ok(())
}

async fn measure(strategy: &str, args: &PlacementArgs) -> Result<Vec<Shot>> {
    let mut urls = Vec::new();
    for gpu in [
        GpuKind::H100,
        GpuKind::H100,
        GpuKind::A10g,
        GpuKind::H100,
        GpuKind::H100,
    ] {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let engine = switchyard_engine::serve(
            listener,
            EngineConfig {
                model: "m".into(),
                gpu: Some(gpu),
                context_window: 8192,
                mean_output_tokens: 32,
                ..EngineConfig::default()
            },
        )
        .await?;
        urls.push((engine.url(), gpu));
    }
    let endpoints: Vec<String> = urls
        .iter()
        .enumerate()
        .map(|(i, (url, gpu))| format!("{{url: '{url}', name: {}-{i}}}", gpu.name()))
        .collect();
    let config = format!(
        "server: {{listen: '127.0.0.1:0'}}
health: {{check_interval_ms: 0}}
models: [{{name: m}}]
pools: [{{name: p, model: m, context_window: 8K, strategy: {strategy}, endpoints: [{}]}}]
default_route: {{models: [m]}}
",
        endpoints.join(", ")
    );
    let policy = Policy::compile(parse_config(&config).map_err(|e| anyhow::anyhow!("{e}"))?)
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let gateway = Gateway::start(listener, Runtime::new(policy)?)?;
    let url = format!("{}/v1/chat/completions", gateway.url());
    let client = reqwest::Client::builder().tcp_nodelay(true).build()?;

    let mut rng = StdRng::seed_from_u64(args.seed);
    let long_text = "The quarterly report lists revenue, costs and risks by region. ".repeat(260);
    let started = Instant::now();
    let mut at = 0.0f64;
    let mut tasks = Vec::with_capacity(args.requests);
    for i in 0..args.requests {
        let gap: f64 = -(1.0 - rng.random::<f64>()).ln() / args.rate;
        at += gap;
        let long = rng.random::<f64>() < args.long_share;
        let prompt = if long {
            format!("Request {i}. Summarize: {long_text}")
        } else {
            format!("Request {i}. What is a good name for a small grey cat? Keep it short.")
        };
        let body = json!({"model": "auto", "stream": true, "max_tokens": 32,
                          "messages": [{"role": "user", "content": prompt}]});
        let (client, url) = (client.clone(), url.clone());
        let due = started + Duration::from_secs_f64(at);
        tasks.push(tokio::spawn(async move {
            tokio::time::sleep_until(due.into()).await;
            let sent = Instant::now();
            let mut response = client.post(&url).json(&body).send().await?;
            if !response.status().is_success() {
                bail!("request {i} answered {}", response.status());
            }
            let endpoint = response
                .headers()
                .get("x-switchyard-endpoint")
                .and_then(|v| v.to_str().ok())
                .unwrap_or("")
                .to_owned();
            let mut ttft = None;
            while let Some(chunk) = response.chunk().await? {
                if ttft.is_none() && chunk.windows(7).any(|w| w == b"content") {
                    ttft = Some(sent.elapsed().as_secs_f64() * 1000.0);
                }
            }
            Ok(Shot {
                ttft_ms: ttft.unwrap_or(f64::NAN),
                slow: endpoint.starts_with("a10g"),
                long,
            })
        }));
    }
    let mut shots = Vec::with_capacity(tasks.len());
    for task in tasks {
        shots.push(task.await??);
    }
    Ok(shots)
}
