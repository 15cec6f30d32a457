//! The semantic cache's `postgres` backend against a real PostgreSQL with pgvector,
//! started by this test (`scripts/postgres.sh` installs it; `SWITCHYARD_PG_BIN` names
//! its programs, `SWITCHYARD_PG_USER` the user to run them as when the tests run as
//! root). Two gateways share one database, as replicas do; the database is killed
//! mid-test and the gateways keep serving, as misses, then find their entries again
//! when it is back.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::print_stderr
)]

mod harness;

use serde_json::{Value, json};
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};
use switchyard_gateway::Gateway;

/// One PostgreSQL server in a fresh data folder, stopped (hard) when dropped.
struct Postgres {
    bin: PathBuf,
    user: Option<String>,
    dir: PathBuf,
    port: u16,
}

impl Postgres {
    fn command(&self, program: &str) -> Command {
        let path = self.bin.join(program);
        match &self.user {
            Some(user) => {
                let mut c = Command::new("runuser");
                c.args(["-u", user, "--"]).arg(path);
                c
            }
            None => Command::new(path),
        }
    }

    fn run(&self, program: &str, args: &[&str]) {
        let out = self.command(program).args(args).output().unwrap();
        assert!(
            out.status.success(),
            "{program} {args:?}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    fn new(bin: PathBuf, user: Option<String>) -> Postgres {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let dir = std::env::temp_dir().join(format!("switchyard-pg-{}-{port}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let pg = Postgres {
            bin,
            user,
            dir,
            port,
        };
        let dir = pg.dir.display().to_string();
        pg.run(
            "initdb",
            &["-D", &dir, "-U", "postgres", "--auth=trust", "-E", "UTF8"],
        );
        pg.start();
        pg
    }

    fn start(&self) {
        let dir = self.dir.display().to_string();
        let options = format!("-p {} -h 127.0.0.1 -k {dir}", self.port);
        let log = format!("{dir}/log");
        self.run(
            "pg_ctl",
            &["-D", &dir, "-l", &log, "-o", &options, "-w", "start"],
        );
    }

    /// Stops the server the hard way: no checkpoint, connections cut.
    fn kill(&self) {
        let dir = self.dir.display().to_string();
        self.run("pg_ctl", &["-D", &dir, "-m", "immediate", "-w", "stop"]);
    }

    fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        let dir = self.dir.display().to_string();
        let _ = self
            .command("pg_ctl")
            .args(["-D", &dir, "-m", "immediate", "stop"])
            .output();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn postgres() -> Option<Postgres> {
    let Ok(bin) = std::env::var("SWITCHYARD_PG_BIN") else {
        assert!(
            std::env::var("SWITCHYARD_REQUIRE_PG").is_err(),
            "SWITCHYARD_REQUIRE_PG is set but SWITCHYARD_PG_BIN is not"
        );
        eprintln!("skipped: set SWITCHYARD_PG_BIN (scripts/test.sh runs scripts/postgres.sh)");
        return None;
    };
    Some(Postgres::new(
        PathBuf::from(bin),
        std::env::var("SWITCHYARD_PG_USER").ok(),
    ))
}

async fn gateway(url: &str, pg: &Postgres, semantic: &str) -> Gateway {
    harness::gateway(&format!(
        "server: {{listen: '127.0.0.1:0'}}
models: [{{name: m}}]
pools: [{{name: p, model: m, context_window: 8K, endpoints: [{{url: '{url}'}}]}}]
health: {{eject_after_failures: 100}}
{semantic}
plugins:
  - {{name: cache, type: semantic_cache, backend: postgres,
      postgres: {{url: '{db}', timeout_ms: 200}}, {options}}}
default_route: {{models: [m], plugins: [cache]}}
",
        db = pg.url(),
        options = if semantic.is_empty() {
            "semantic: false"
        } else {
            "threshold: 0.8"
        },
    ))
    .await
}

fn chat(prompt: &str) -> Value {
    json!({"model": "auto", "messages": [{"role": "user", "content": prompt}]})
}

async fn cache_header(g: &Gateway, prompt: &str) -> String {
    let r = reqwest::Client::new()
        .post(format!("{}/v1/chat/completions", g.url()))
        .json(&chat(prompt))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    harness::header(&r, "x-switchyard-cache")
}

/// Asks until the answer comes from the cache (stores go in the background): how many
/// asks missed first (each of them went upstream), or None when none hit in time.
async fn until_hit(g: &Gateway, prompt: &str, within: Duration) -> Option<usize> {
    let started = Instant::now();
    let mut misses = 0;
    while started.elapsed() < within {
        if cache_header(g, prompt).await == "hit" {
            return Some(misses);
        }
        misses += 1;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    None
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_share_the_postgres_cache_and_serve_through_its_outage() {
    let Some(pg) = postgres() else { return };
    let (url, seen) = harness::echo().await;
    let one = gateway(&url, &pg, "").await;
    let two = gateway(&url, &pg, "").await;
    let question = "What is the capital of Portugal?";
    assert_eq!(cache_header(&one, question).await, "miss");
    // The other replica finds what the first one stored.
    // Until the first replica's store lands, the second misses and asks upstream too.
    let misses = until_hit(&two, question, Duration::from_secs(5)).await;
    let asked = 1 + misses.expect("the second replica never found the stored answer");
    assert_eq!(seen.lock().unwrap().len(), asked);

    // The database dies: both replicas keep answering, from the upstream, quickly.
    pg.kill();
    let started = Instant::now();
    for g in [&one, &two] {
        assert_eq!(cache_header(g, question).await, "miss");
        assert_eq!(cache_header(g, "Another question?").await, "miss");
    }
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(seen.lock().unwrap().len(), asked + 4);
    let metrics = reqwest::get(format!("{}/metrics", one.url()))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("switchyard_cache_backend_errors_total"),
        "{metrics}"
    );

    // Back up: what was stored before the crash is served again.
    pg.start();
    assert!(
        until_hit(&one, question, Duration::from_secs(10))
            .await
            .is_some()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paraphrase_hits_through_pgvector() {
    let Ok(dir) = std::env::var("SWITCHYARD_MODEL_DIR") else {
        eprintln!("skipped: set SWITCHYARD_MODEL_DIR (scripts/test.sh does)");
        return;
    };
    let Some(pg) = postgres() else { return };
    let (url, seen) = harness::echo().await;
    let g = gateway(&url, &pg, &format!("signals: {{model: {{path: '{dir}'}}}}")).await;
    assert_eq!(
        cache_header(&g, "How can I combine two Python dicts into one?").await,
        "miss"
    );
    let misses = until_hit(
        &g,
        "How do I merge two dictionaries in Python?",
        Duration::from_secs(5),
    )
    .await
    .expect("the paraphrase never hit");
    assert_eq!(
        cache_header(&g, "What is the boiling point of water at altitude?").await,
        "miss"
    );
    assert_eq!(seen.lock().unwrap().len(), 2 + misses);
}
