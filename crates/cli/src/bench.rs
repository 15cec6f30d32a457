//! `switchyard bench overhead`: what the router adds, measured against an upstream
//! that answers at once. The gateway and the engine run as child processes so the
//! gateway's CPU time can be read from `/proc` without the client's or the engine's.

use anyhow::{Context, Result, bail};
use serde_json::{Value, json};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

#[derive(clap::Subcommand)]
pub enum BenchCommand {
    /// Latency the router adds at concurrency 1, and throughput and CPU per request at
    /// higher concurrency, for whole and streamed answers.
    Overhead {
        /// Sequential requests per measurement at concurrency 1.
        #[arg(long, default_value_t = 2000)]
        requests: usize,
        /// Requests per measurement under load.
        #[arg(long, default_value_t = 20_000)]
        load_requests: usize,
        /// Concurrent clients under load.
        #[arg(long, default_value_t = 64)]
        concurrency: usize,
        /// Gateway worker threads (default: one per core).
        #[arg(long)]
        gateway_threads: Option<usize>,
        /// Also write the figures as JSON to this file.
        #[arg(long)]
        json: Option<std::path::PathBuf>,
    },
    /// TTFT on a skewed fleet (one slow endpoint among fast ones, short and long
    /// prompts) under each endpoint strategy, against round robin.
    Placement(crate::placement_bench::PlacementArgs),
    /// Multi-turn sessions among one-off traffic: prefix-cache hit rate and TTFT of later
    /// turns without affinity, with session affinity, and with affinity and retention
    /// hints; then two equal models a `thompson` route draws between, without and with
    /// session stickiness.
    Sessions(crate::placement_bench::SessionArgs),
    /// A confidence cascade against the learned router, end to end: simulated engines
    /// answering a labelled outcome file's prompts as it says, the weak one with
    /// calibrated logprobs; strong calls and accuracy per routing.
    Cascade(crate::cascade_bench::CascadeArgs),
    /// A bounded soak under mixed traffic and injected faults: the gateway's memory and
    /// open files over time, failing when either grows past its bound after warm-up.
    Soak(crate::soak::SoakArgs),
}

pub async fn run(command: BenchCommand) -> Result<()> {
    match command {
        BenchCommand::Overhead {
            requests,
            load_requests,
            concurrency,
            gateway_threads,
            json,
        } => {
            let load = Load {
                requests,
                load_requests,
                concurrency,
                gateway_threads,
            };
            overhead(&load, json.as_deref()).await
        }
        BenchCommand::Placement(args) => crate::placement_bench::run(args).await,
        BenchCommand::Sessions(args) => crate::placement_bench::sessions(args).await,
        BenchCommand::Soak(args) => crate::soak::run(args).await,
        BenchCommand::Cascade(args) => crate::cascade_bench::run(args).await,
    }
}

/// Kills the child process when dropped.
pub(crate) struct ChildGuard(pub(crate) Child);

impl Drop for ChildGuard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

pub(crate) fn free_port() -> Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// CPU time (user + system, all threads) of a process, from `/proc/<pid>/stat`.
fn cpu_seconds(pid: u32) -> Result<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .context("reading /proc (bench overhead needs Linux)")?;
    let after_name = stat.rsplit_once(')').map(|(_, rest)| rest).unwrap_or("");
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    // Fields 14 and 15 of stat (utime, stime) are 12 and 13 after the name.
    let ticks: f64 = fields
        .get(11..13)
        .context("unexpected /proc stat format")?
        .iter()
        .map(|f| f.parse::<f64>().unwrap_or(0.0))
        .sum();
    // The kernel reports in USER_HZ, 100 on Linux.
    Ok(ticks / 100.0)
}

pub(crate) async fn wait_ready(client: &reqwest::Client, url: &str) -> Result<()> {
    for _ in 0..200 {
        if client
            .get(url)
            .send()
            .await
            .is_ok_and(|r| r.status().is_success())
        {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    bail!("{url} did not come up within 10 s")
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((p / 100.0) * (sorted.len() - 1) as f64).round() as usize;
    sorted[rank.min(sorted.len() - 1)]
}

fn body(stream: bool) -> String {
    json!({"model": "auto", "stream": stream, "max_tokens": 16,
           "messages": [{"role": "user", "content": "How do I compile this Rust function?"}]})
    .to_string()
}

/// One request; returns the time to the first body byte and to the last.
async fn one(client: &reqwest::Client, url: &str, body: &str) -> Result<(f64, f64)> {
    let started = Instant::now();
    let mut response = client
        .post(url)
        .header("content-type", "application/json")
        .body(body.to_owned())
        .send()
        .await?;
    if !response.status().is_success() {
        bail!("{url} answered {}", response.status());
    }
    let mut first = None;
    while let Some(_chunk) = response.chunk().await? {
        first.get_or_insert_with(|| started.elapsed().as_secs_f64());
    }
    let last = started.elapsed().as_secs_f64();
    Ok((first.unwrap_or(last), last))
}

struct Paired {
    direct: Vec<f64>,
    routed: Vec<f64>,
}

/// Alternates direct and routed requests so drift hits both alike.
async fn paired(
    client: &reqwest::Client,
    direct: &str,
    routed: &str,
    n: usize,
    stream: bool,
) -> Result<Paired> {
    let body = body(stream);
    let mut out = Paired {
        direct: Vec::with_capacity(n),
        routed: Vec::with_capacity(n),
    };
    for _ in 0..n {
        let (first, last) = one(client, direct, &body).await?;
        out.direct.push(if stream { first } else { last });
        let (first, last) = one(client, routed, &body).await?;
        out.routed.push(if stream { first } else { last });
    }
    out.direct.sort_by(f64::total_cmp);
    out.routed.sort_by(f64::total_cmp);
    Ok(out)
}

async fn load(
    client: &reqwest::Client,
    url: &str,
    total: usize,
    concurrency: usize,
    stream: bool,
) -> Result<f64> {
    let body = std::sync::Arc::new(body(stream));
    let started = Instant::now();
    let per = total.div_ceil(concurrency);
    let mut tasks = Vec::new();
    for _ in 0..concurrency {
        let client = client.clone();
        let url = url.to_owned();
        let body = std::sync::Arc::clone(&body);
        tasks.push(tokio::spawn(async move {
            for _ in 0..per {
                one(&client, &url, &body).await?;
            }
            Ok::<(), anyhow::Error>(())
        }));
    }
    for t in tasks {
        t.await??;
    }
    Ok(started.elapsed().as_secs_f64())
}

/// What `bench overhead` runs.
struct Load {
    requests: usize,
    load_requests: usize,
    concurrency: usize,
    gateway_threads: Option<usize>,
}

async fn overhead(load_spec: &Load, json_out: Option<&std::path::Path>) -> Result<()> {
    let Load {
        requests,
        load_requests,
        concurrency,
        gateway_threads,
    } = *load_spec;
    let threads = gateway_threads.map_or_else(String::new, |n| format!(", worker_threads: {n}"));
    let exe = std::env::current_exe()?;
    let engine_port = free_port()?;
    let gateway_port = free_port()?;
    let dir = std::env::temp_dir().join(format!("switchyard-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let config_path = dir.join("bench.yaml");
    std::fs::write(
        &config_path,
        format!(
            "server: {{listen: '127.0.0.1:{gateway_port}'{threads}}}
models: [{{name: coder}}, {{name: chat}}]
pools:
  - {{name: coder, model: coder, context_window: 32K, endpoints: [{{url: 'http://127.0.0.1:{engine_port}'}}]}}
  - {{name: chat, model: chat, context_window: 32K, endpoints: [{{url: 'http://127.0.0.1:{engine_port}'}}]}}
signals:
  keyword: [{{name: code, keywords: [rust, python, compile, function, bug]}}]
routes: [{{name: coding, priority: 1, when: {{keyword: code}}, models: [coder]}}]
default_route: {{models: [chat]}}
"
        ),
    )?;
    let quiet = |mut c: Command| -> Result<ChildGuard> {
        c.stdout(Stdio::null()).stderr(Stdio::null());
        Ok(ChildGuard(c.spawn()?))
    };
    let mut engine_cmd = Command::new(&exe);
    engine_cmd.args(["engine", "--gpu", "instant", "--mean-output-tokens", "16"]);
    engine_cmd.args([
        "--listen",
        &format!("127.0.0.1:{engine_port}"),
        "--model",
        "m",
    ]);
    let engine = quiet(engine_cmd)?;
    let mut gateway_cmd = Command::new(&exe);
    gateway_cmd.arg("serve").arg("--config").arg(&config_path);
    let gateway = quiet(gateway_cmd)?;

    let client = reqwest::Client::builder()
        .tcp_nodelay(true)
        .pool_max_idle_per_host(1024)
        .build()?;
    let direct = format!("http://127.0.0.1:{engine_port}/v1/chat/completions");
    let routed = format!("http://127.0.0.1:{gateway_port}/v1/chat/completions");
    wait_ready(&client, &format!("http://127.0.0.1:{engine_port}/health")).await?;
    wait_ready(&client, &format!("http://127.0.0.1:{gateway_port}/healthz")).await?;
    paired(&client, &direct, &routed, 300, false).await?;

    println!(
        "switchyard bench overhead: upstream answers at once (16 tokens); gateway threads: {}\n",
        gateway_threads.map_or_else(|| "one per core".to_owned(), |n| n.to_string())
    );
    let mut figures = serde_json::Map::new();
    for (stream, label) in [(false, "whole"), (true, "stream")] {
        let p = paired(&client, &direct, &routed, requests, stream).await?;
        let us = |v: f64| v * 1e6;
        let (d50, d99) = (percentile(&p.direct, 50.0), percentile(&p.direct, 99.0));
        let (r50, r99) = (percentile(&p.routed, 50.0), percentile(&p.routed, 99.0));
        let what = if stream { "first chunk" } else { "latency" };
        println!(
            "concurrency 1, {label:<6} {what:<12} direct p50 {:>7.0} µs p99 {:>7.0} µs | routed p50 {:>7.0} µs p99 {:>7.0} µs | added p50 {:>6.0} µs p99 {:>6.0} µs",
            us(d50),
            us(d99),
            us(r50),
            us(r99),
            us(r50 - d50),
            us(r99 - d99)
        );
        figures.insert(
            format!("c1_{label}"),
            json!({"metric": what, "requests": requests,
                   "direct_p50_us": us(d50), "direct_p99_us": us(d99),
                   "routed_p50_us": us(r50), "routed_p99_us": us(r99),
                   "added_p50_us": us(r50 - d50), "added_p99_us": us(r99 - d99)}),
        );
    }
    for (stream, label) in [(false, "whole"), (true, "stream")] {
        let direct_secs = load(&client, &direct, load_requests, concurrency, stream).await?;
        let cpu_before = cpu_seconds(gateway.0.id())?;
        let routed_secs = load(&client, &routed, load_requests, concurrency, stream).await?;
        let cpu = cpu_seconds(gateway.0.id())? - cpu_before;
        let n = load_requests.div_ceil(concurrency) * concurrency;
        let cpu_us = cpu / n as f64 * 1e6;
        println!(
            "concurrency {concurrency}, {label:<6} direct {:>8.0} req/s | routed {:>8.0} req/s | gateway CPU {:>6.1} µs/request",
            n as f64 / direct_secs,
            n as f64 / routed_secs,
            cpu_us
        );
        figures.insert(
            format!("c{concurrency}_{label}"),
            json!({"requests": n, "direct_rps": n as f64 / direct_secs,
                   "routed_rps": n as f64 / routed_secs, "gateway_cpu_us_per_request": cpu_us}),
        );
    }
    drop(gateway);
    drop(engine);
    let _ = std::fs::remove_dir_all(&dir);
    if let Some(path) = json_out {
        std::fs::write(path, serde_json::to_string_pretty(&Value::Object(figures))?)?;
        println!("\nwrote {}", path.display());
    }
    Ok(())
}
