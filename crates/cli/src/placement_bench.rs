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

/// A gateway on `config`, its chat URL and a client for it.
async fn gateway(config: &str) -> Result<(Gateway, String, reqwest::Client)> {
    let policy = Policy::compile(parse_config(config).map_err(|e| anyhow::anyhow!("{e}"))?)
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let gateway = Gateway::start(listener, Runtime::new(policy)?)?;
    let url = format!("{}/v1/chat/completions", gateway.url());
    let client = reqwest::Client::builder().tcp_nodelay(true).build()?;
    Ok((gateway, url, client))
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
    let (_gateway, url, client) = gateway(&config).await?;

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

#[derive(clap::Args)]
pub struct SessionArgs {
    /// Concurrent sessions.
    #[arg(long, default_value_t = 32)]
    sessions: usize,
    /// Turns per session.
    #[arg(long, default_value_t = 5)]
    turns: usize,
    /// Mean pause between a session's turns, in milliseconds (exponential).
    #[arg(long, default_value_t = 1000.0)]
    think_ms: f64,
    /// One-off requests per second alongside the sessions (they fill the caches).
    #[arg(long, default_value_t = 40.0)]
    background_rate: f64,
    /// Prefix-cache capacity of each engine, in tokens.
    #[arg(long, default_value_t = 24_000)]
    cache_tokens: u64,
    /// Seed of pauses and prompts.
    #[arg(long, default_value_t = 11)]
    seed: u64,
}

struct Turn {
    ttft_ms: f64,
    prompt_tokens: u64,
    /// Another model answered this turn than the previous one.
    switched: bool,
}

/// One configuration of the sessions bench.
struct Setup {
    label: &'static str,
    strategy: &'static str,
    retention: bool,
    /// Two equal models (two engines each) that a `thompson` route draws between,
    /// instead of one model on four engines; `Some(true)` makes the route sticky.
    sticky: Option<bool>,
}

pub async fn sessions(args: SessionArgs) -> Result<()> {
    println!(
        "switchyard bench sessions: {} sessions × {} turns (mean pause {} ms) among one-off \
         requests at {}/s, 4 × H100 engines with {}-token prefix caches, seed {}\n",
        args.sessions,
        args.turns,
        args.think_ms,
        args.background_rate,
        args.cache_tokens,
        args.seed
    );
    println!(
        "{:<44} {:>13} {:>19} {:>19} {:>14}",
        "placement", "KV hit rate", "later-turn TTFT p50", "later-turn TTFT p90", "model switches"
    );
    let setup = |label, strategy, retention, sticky| Setup {
        label,
        strategy,
        retention,
        sticky,
    };
    for setup in [
        setup(
            "least_outstanding, no hints",
            "least_outstanding",
            false,
            None,
        ),
        setup(
            "session_affinity, no hints",
            "session_affinity",
            false,
            None,
        ),
        setup(
            "session_affinity + retention hints",
            "session_affinity",
            true,
            None,
        ),
        setup(
            "2 models, thompson, affinity + hints",
            "session_affinity",
            true,
            Some(false),
        ),
        setup(
            "2 models, thompson, affinity + hints, sticky",
            "session_affinity",
            true,
            Some(true),
        ),
    ] {
        let (turns, hits) = run_sessions(&args, &setup).await?;
        let queried: u64 = turns.iter().map(|t| t.prompt_tokens).sum();
        let mut ttft: Vec<f64> = turns.iter().map(|t| t.ttft_ms).collect();
        ttft.sort_by(f64::total_cmp);
        let q = |p: f64| ttft[((p / 100.0) * (ttft.len().max(1) - 1) as f64).round() as usize];
        let switched = turns.iter().filter(|t| t.switched).count();
        println!(
            "{:<44} {:>12.1}% {:>16.1} ms {:>16.1} ms {:>13.1}%",
            setup.label,
            100.0 * hits / queried.max(1) as f64,
            q(50.0),
            q(90.0),
            100.0 * switched as f64 / turns.len().max(1) as f64
        );
    }
    println!(
        "\nKV hit rate: prompt tokens of later turns served from the engines' prefix caches. \
         Model switches: later turns answered by another model than the turn before."
    );
    Ok(())
}

async fn run_sessions(args: &SessionArgs, setup: &Setup) -> Result<(Vec<Turn>, f64)> {
    let mut engines = Vec::new();
    for i in 0..4 {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let model = match setup.sticky {
            Some(_) => format!("m{}", 1 + i / 2),
            None => "m".to_owned(),
        };
        engines.push(
            switchyard_engine::serve(
                listener,
                EngineConfig {
                    model,
                    gpu: Some(GpuKind::H100),
                    context_window: 16_384,
                    mean_output_tokens: 40,
                    prefix_cache_tokens: Some(args.cache_tokens),
                    ..EngineConfig::default()
                },
            )
            .await?,
        );
    }
    let endpoints: Vec<String> = engines
        .iter()
        .map(|e| format!("{{url: '{}'}}", e.url()))
        .collect();
    let (models, pools, route) = match setup.sticky {
        None => (
            "[{name: m}]".to_owned(),
            format!(
                "[{{name: p, model: m, context_window: 16K, strategy: {}, endpoints: [{}]}}]",
                setup.strategy,
                endpoints.join(", ")
            ),
            "{models: [m]}".to_owned(),
        ),
        Some(sticky) => (
            "[{name: m1, quality: 0.8}, {name: m2, quality: 0.8}]".to_owned(),
            format!(
                "[{{name: p1, model: m1, context_window: 16K, strategy: {0}, endpoints: [{1}]}}, \
                 {{name: p2, model: m2, context_window: 16K, strategy: {0}, endpoints: [{2}]}}]",
                setup.strategy,
                endpoints[..2].join(", "),
                endpoints[2..].join(", ")
            ),
            format!(
                "{{models: [m1, m2], algorithm: {{type: thompson, bucket: none, seed: {}}}{}}}",
                args.seed,
                if sticky { ", sticky: {}" } else { "" }
            ),
        ),
    };
    let config = format!(
        "server: {{listen: '127.0.0.1:0'}}
health: {{check_interval_ms: 0}}
retention: {{enabled: {}}}
models: {models}
pools: {pools}
default_route: {route}
",
        setup.retention,
    );
    let (_gateway, url, client) = gateway(&config).await?;
    let document =
        "Section: the fleet serves requests from many teams with different needs. ".repeat(110);

    // One-off traffic for as long as the sessions run.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let background = {
        let (client, url, stop, document) =
            (client.clone(), url.clone(), stop.clone(), document.clone());
        let mut rng = StdRng::seed_from_u64(args.seed ^ 0xb5);
        let rate = args.background_rate;
        tokio::spawn(async move {
            let mut n = 0u64;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) && rate > 0.0 {
                let gap = -(1.0 - rng.random::<f64>()).ln() / rate;
                tokio::time::sleep(Duration::from_secs_f64(gap)).await;
                n += 1;
                let body = json!({"model": "auto", "max_tokens": 16, "messages": [
                    {"role": "user", "content": format!("One-off {n}: {document}")}]});
                let (client, url) = (client.clone(), url.clone());
                tokio::spawn(async move {
                    if let Ok(r) = client.post(&url).json(&body).send().await {
                        let _ = r.bytes().await;
                    }
                });
            }
        })
    };

    let mut tasks = Vec::new();
    for s in 0..args.sessions {
        let (client, url, document) = (client.clone(), url.clone(), document.clone());
        let mut rng = StdRng::seed_from_u64(args.seed.wrapping_mul(1000) + s as u64);
        let (turns, think_ms) = (args.turns, args.think_ms);
        tasks.push(tokio::spawn(async move {
            let mut messages = vec![json!({"role": "user",
                "content": format!("Session {s}. Read this and answer my questions. {document}")})];
            let mut later = Vec::new();
            let mut last_model = String::new();
            for turn in 0..turns {
                let started = Instant::now();
                let mut response = client
                    .post(&url)
                    .header("x-session-id", format!("session-{s}"))
                    .json(&json!({"model": "auto", "max_tokens": 40, "stream": true,
                                  "stream_options": {"include_usage": true},
                                  "messages": messages}))
                    .send()
                    .await?;
                if !response.status().is_success() {
                    bail!("session {s} turn {turn}: {}", response.status());
                }
                let model = response
                    .headers()
                    .get("x-switchyard-model")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or_default()
                    .to_owned();
                let switched = turn > 0 && model != last_model;
                last_model = model;
                let mut ttft_ms = None;
                let mut parser = switchyard_wire::SseParser::new();
                let mut answer = String::new();
                let mut prompt_tokens = 0;
                while let Some(chunk) = response.chunk().await? {
                    parser.push(&chunk);
                    while let Some(event) = parser.next_event() {
                        let Ok(value) = serde_json::from_str::<serde_json::Value>(&event.data)
                        else {
                            continue;
                        };
                        if let Some(text) = value["choices"][0]["delta"]["content"].as_str() {
                            ttft_ms.get_or_insert_with(|| started.elapsed().as_secs_f64() * 1000.0);
                            answer.push_str(text);
                        }
                        if let Some(p) = value["usage"]["prompt_tokens"].as_u64() {
                            prompt_tokens = p;
                        }
                    }
                }
                if turn > 0 {
                    later.push(Turn {
                        ttft_ms: ttft_ms.unwrap_or(f64::NAN),
                        prompt_tokens,
                        switched,
                    });
                }
                messages.push(json!({"role": "assistant", "content": answer}));
                messages.push(
                    json!({"role": "user", "content": format!("Question {}: and then?", turn + 1)}),
                );
                let pause = -(1.0 - rng.random::<f64>()).ln() * think_ms;
                tokio::time::sleep(Duration::from_secs_f64(pause / 1000.0)).await;
            }
            Ok::<Vec<Turn>, anyhow::Error>(later)
        }));
    }
    let mut turns = Vec::new();
    for t in tasks {
        turns.extend(t.await??);
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let _ = background.await;
    // Hits are counted by the engines; one-off prompts are unique and never hit.
    let mut hits = 0.0;
    for e in &engines {
        let text = client
            .get(format!("{}/metrics", e.url()))
            .send()
            .await?
            .text()
            .await?;
        hits += text
            .lines()
            .find(|l| l.starts_with("vllm:prefix_cache_hits_total"))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0);
    }
    Ok((turns, hits))
}
