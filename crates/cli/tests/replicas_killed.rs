//! Budgets across replica processes, one of them killed mid-run: three `switchyard
//! serve` processes share one Valkey (then Redis) server in front of a simulated
//! engine (`switchyard engine`), and take 1,000 concurrent requests, streamed and
//! whole, from four callers with a token budget each. Part of the way through, one
//! replica is killed (SIGKILL: no shutdown). Requests it held are cut; a client
//! (as a load balancer would) sends a request whose replica is gone to the next one.
//! What the answered requests used never passes any caller's budget by more than one
//! reservation (the cut ones keep theirs, never settled), and every request that got
//! an answer got a whole one or a clean refusal.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::print_stderr
)]

use serde_json::{Value, json};
use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;
use switchyard_state::testing::KvServer;

const BUDGET: u64 = 1500;
const CALLERS: [&str; 4] = ["ann", "bob", "cat", "dan"];
const REQUESTS: usize = 1000;
/// The largest reservation: the prompt as the gateway counts it plus `max_tokens`
/// (prompts are two words; 32 bounds them with room to spare).
const LARGEST_RESERVATION: u64 = 32 + 4;

/// A child process killed when dropped.
struct Process(Child);

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts `switchyard ARGS` and waits for the URL it says it serves on.
fn spawn(args: &[&str], says: &str) -> (Process, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_switchyard"))
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let says = says.to_owned();
    std::thread::spawn(move || {
        let mut sent = false;
        for line in BufReader::new(stderr).lines() {
            let Ok(line) = line else { break };
            if !sent && let Some(rest) = line.split_once(&says) {
                let url = rest.1.split_whitespace().next().unwrap_or("").to_owned();
                let _ = tx.send(url);
                sent = true;
            } else if !sent {
                eprintln!("{line}");
            }
        }
    });
    let url = rx
        .recv_timeout(Duration::from_secs(60))
        .unwrap_or_else(|_| panic!("`switchyard {}` did not say where it serves", args[0]));
    (Process(child), url)
}

fn config(engine: &str, backend: &str, state_url: &str) -> String {
    format!(
        "server: {{listen: '127.0.0.1:0'}}
state: {{backend: {backend}, url: '{state_url}', timeout_ms: 1000}}
models: [{{name: m}}]
pools: [{{name: p, model: m, context_window: 8K, endpoints: [{{url: '{engine}'}}]}}]
health: {{eject_after_failures: 1000}}
signals:
  identity:
    trusted_headers: {{subject: x-user-id, trusted_proxies: ['127.0.0.1/32']}}
plugins:
  - {{name: per_caller, type: budget, scope: caller, tokens: {BUDGET}, window: hour, global: true,
      on_state_error: closed}}
default_route: {{models: [m]}}
"
    )
}

/// How one request ended.
#[derive(Debug)]
enum Ended {
    /// Answered whole, using this many tokens (as the upstream reported them).
    Served(u64),
    /// Refused by the budget: 429, a JSON error, `retry-after`.
    Refused,
    /// Refused because the state server did not answer in time (503, fail closed).
    Unavailable,
}

/// Why a request got no answer from a replica: it was cut, or never connected.
#[derive(Debug)]
enum Lost {
    /// No connection (the replica was gone before the request).
    Refused,
    /// Sent, then the connection broke (the replica died holding it).
    Cut,
}

async fn ask(client: &reqwest::Client, g: &str, user: &str, i: usize) -> Result<Ended, Lost> {
    let stream = i.is_multiple_of(2);
    let body = json!({"model": "auto", "max_tokens": 4, "stream": stream,
        "stream_options": if stream { json!({"include_usage": true}) } else { Value::Null },
        "messages": [{"role": "user", "content": format!("question {i}")}]});
    let r = match client
        .post(format!("{g}/v1/chat/completions"))
        .header("x-user-id", user)
        .json(&body)
        .send()
        .await
    {
        Ok(r) => r,
        Err(e) if e.is_connect() => return Err(Lost::Refused),
        Err(_) => return Err(Lost::Cut),
    };
    let status = r.status().as_u16();
    if status == 503 {
        let error: Value = r.json().await.map_err(|_| Lost::Cut)?;
        assert_eq!(error["error"]["code"], "budget_unavailable", "{error}");
        return Ok(Ended::Unavailable);
    }
    if status == 429 {
        assert!(r.headers().contains_key("retry-after"));
        let error: Value = r.json().await.map_err(|_| Lost::Cut)?;
        assert_eq!(error["error"]["code"], "budget_exhausted", "{error}");
        return Ok(Ended::Refused);
    }
    assert_eq!(status, 200, "{:?}", r.text().await);
    let text = r.text().await.map_err(|_| Lost::Cut)?;
    if !stream {
        let answer: Value = serde_json::from_str(&text).expect("a whole answer is JSON");
        assert!(answer["choices"][0]["message"]["content"].is_string());
        return Ok(Ended::Served(
            answer["usage"]["total_tokens"].as_u64().unwrap(),
        ));
    }
    if !text.ends_with("data: [DONE]\n\n") {
        // A stream that broke because its replica died (never a clean end).
        assert!(!text.contains("\"error\""), "{text}");
        return Err(Lost::Cut);
    }
    let usage = text
        .split("\n\n")
        .filter_map(|e| e.strip_prefix("data: "))
        .filter_map(|e| serde_json::from_str::<Value>(e).ok())
        .find_map(|e| e["usage"]["total_tokens"].as_u64())
        .expect("the usage chunk asked for");
    Ok(Ended::Served(usage))
}

/// What the burst saw.
#[derive(Debug, Default)]
struct Tally {
    used: HashMap<&'static str, u64>,
    refused: usize,
    /// Refused because the state server was late.
    unavailable: usize,
    /// Requests cut by the kill (sent to the killed replica, connection broken).
    cut: usize,
    /// Requests that found the killed replica gone and went to the next one.
    moved: usize,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_hold_budgets_with_one_replica_killed_mid_run() {
    let mut servers = 0;
    for (variable, backend) in [
        ("SWITCHYARD_VALKEY_BIN", "valkey"),
        ("SWITCHYARD_REDIS_BIN", "redis"),
    ] {
        let Some(server) = KvServer::from_env(variable, backend).unwrap() else {
            continue;
        };
        servers += 1;
        let (_engine, engine_url) = spawn(
            &[
                "engine",
                "--listen",
                "127.0.0.1:0",
                "--gpu",
                "a10g",
                "--model",
                "m",
            ],
            "serving on ",
        );
        let dir = std::env::temp_dir().join(format!(
            "switchyard-replicas-killed-{}-{backend}",
            std::process::id()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("gateway.yaml");
        std::fs::write(&path, config(&engine_url, backend, &server.url())).unwrap();
        let path = path.to_str().unwrap();
        let mut replicas = Vec::new();
        let mut urls = Vec::new();
        for _ in 0..3 {
            let (process, url) = spawn(&["serve", "--config", path], "serving on ");
            replicas.push(Some(process));
            urls.push(url);
        }
        let tally = burst(&urls, &mut replicas).await;
        for caller in CALLERS {
            let used = tally.used.get(caller).copied().unwrap_or(0);
            assert!(
                used <= BUDGET + LARGEST_RESERVATION,
                "{backend}: {caller} used {used} of {BUDGET}: {tally:?}"
            );
            assert!(used > 0, "{backend}: {caller} was refused everything");
        }
        assert!(tally.refused > 0, "{backend}: {tally:?}");
        assert!(
            tally.unavailable < REQUESTS / 10,
            "{backend}: the state server was too slow: {tally:?}"
        );
        assert!(
            tally.moved > 0,
            "{backend}: the kill came too late: {tally:?}"
        );
        eprintln!("{backend}: {tally:?}");
    }
    assert!(servers > 0 || std::env::var("SWITCHYARD_REQUIRE_KV").is_err());
}

/// 1,000 requests, one a millisecond, over the replicas in turn; replica 0 is killed
/// when 200 of the first 400 have ended, and the other 600 are sent after it. A request whose replica refuses its connection goes to the next.
async fn burst(urls: &[String], replicas: &mut [Option<Process>]) -> Tally {
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .timeout(Duration::from_secs(60))
        .build()
        .unwrap();
    let urls: Arc<Vec<String>> = Arc::new(urls.to_vec());
    let ended = Arc::new(AtomicUsize::new(0));
    let mut tasks = tokio::task::JoinSet::new();
    let send = |tasks: &mut tokio::task::JoinSet<_>, range: std::ops::Range<usize>| {
        let start = range.start;
        for i in range {
            let (client, urls, ended) = (client.clone(), Arc::clone(&urls), Arc::clone(&ended));
            let user = CALLERS[i % CALLERS.len()];
            // One a millisecond.
            let arrives = Duration::from_millis((i - start) as u64);
            tasks.spawn(async move {
                tokio::time::sleep(arrives).await;
                let first = (i / 4) % urls.len();
                let mut moved = false;
                for step in 0..urls.len() {
                    let replica = (first + step) % urls.len();
                    match ask(&client, &urls[replica], user, i).await {
                        Ok(done) => {
                            ended.fetch_add(1, Ordering::Relaxed);
                            return (user, Ok(done), moved);
                        }
                        Err(Lost::Refused) => moved = true,
                        Err(Lost::Cut) => {
                            assert_eq!(replica, 0, "only the killed replica cuts requests");
                            ended.fetch_add(1, Ordering::Relaxed);
                            return (user, Err(Lost::Cut), moved);
                        }
                    }
                }
                panic!("request {i}: no replica took it");
            });
        }
    };
    // The first 400; the kill when half of them have ended (the rest in flight or
    // on their way); then the other 600, which find replica 0 gone.
    send(&mut tasks, 0..400);
    while ended.load(Ordering::Relaxed) < 200 {
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    drop(replicas[0].take());
    send(&mut tasks, 400..REQUESTS);
    let mut tally = Tally::default();
    while let Some(done) = tasks.join_next().await {
        let (user, ended, moved) = done.unwrap();
        tally.moved += usize::from(moved);
        match ended {
            Ok(Ended::Served(tokens)) => *tally.used.entry(user).or_default() += tokens,
            Ok(Ended::Refused) => tally.refused += 1,
            Ok(Ended::Unavailable) => tally.unavailable += 1,
            Err(_) => tally.cut += 1,
        }
    }
    tally
}
