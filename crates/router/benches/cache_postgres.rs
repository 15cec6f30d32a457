//! The semantic cache's `postgres` backend at 100,000 entries of 384 dimensions in
//! 1,000 topics (as the in-memory bench's clustered case), on a real PostgreSQL with
//! pgvector named by `SWITCHYARD_PG_URL` (without it, nothing runs): the latency of
//! an exact hit and of a semantic lookup through the HNSW index, each measured 2,000
//! times through the store (its own runtime, its pool, one round trip), reported as
//! p50 / p99 / max. The target: p99 within 2 ms on loopback.
//!
//! Start a server with the programs `scripts/postgres.sh` installs, e.g. (as a
//! non-root user) `initdb -D /tmp/pg -U postgres --auth=trust` then
//! `pg_ctl -D /tmp/pg -o "-p 55432 -h 127.0.0.1 -k /tmp/pg" start`, and run
//! `SWITCHYARD_PG_URL=postgres://postgres@127.0.0.1:55432/postgres cargo bench -p switchyard-router --bench cache_postgres`.

#![allow(
    missing_docs,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::print_stdout,
    clippy::print_stderr
)]

use std::time::{Duration, Instant};
use switchyard_router::cache::{CacheStore, Key, PostgresConfig, PostgresStore};

mod vectors;

use vectors::DIMS;

const ENTRIES: usize = 100_000;
const TABLE: &str = "bench_cache";
const LOOKUPS: usize = 2_000;

/// Entry `i`'s vector, in its topic.
fn entry(i: usize) -> Vec<f32> {
    vectors::entry(i, true)
}

fn text(v: &[f32]) -> String {
    let parts: Vec<String> = v.iter().map(f32::to_string).collect();
    format!("[{}]", parts.join(","))
}

fn question_hash(question: &str) -> i64 {
    i64::from_ne_bytes(
        switchyard_wire::hash::fnv1a(question.as_bytes(), switchyard_wire::hash::FNV_OFFSET)
            .to_ne_bytes(),
    )
}

/// Loads the table directly (batches of 1,000 rows), then builds its index.
async fn load(url: &str) {
    let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(connection);
    client
        .batch_execute(&format!(
            "CREATE EXTENSION IF NOT EXISTS vector;
             DROP TABLE IF EXISTS {TABLE};
             CREATE TABLE {TABLE} (
               id bigserial PRIMARY KEY, partition bigint NOT NULL, question_hash bigint NOT NULL,
               question text NOT NULL, embedding vector({DIMS}), answer text NOT NULL,
               prompt_tokens bigint, completion_tokens bigint, expires_at timestamptz NOT NULL,
               UNIQUE (partition, question_hash));"
        ))
        .await
        .unwrap();
    let insert = client
        .prepare(&format!(
            "INSERT INTO {TABLE} (partition, question_hash, question, embedding, answer, expires_at)
             SELECT 0, h, q, e::vector, 'An answer of about the length answers have.', now() + interval '1 day'
             FROM unnest($1::bigint[], $2::text[], $3::text[]) AS t(h, q, e)"
        ))
        .await
        .unwrap();
    for start in (0..ENTRIES).step_by(1_000) {
        let questions: Vec<String> = (start..start + 1_000)
            .map(|i| format!("question number {i}"))
            .collect();
        let hashes: Vec<i64> = questions.iter().map(|q| question_hash(q)).collect();
        let vectors: Vec<String> = (start..start + 1_000).map(|i| text(&entry(i))).collect();
        client
            .execute(&insert, &[&hashes, &questions, &vectors])
            .await
            .unwrap();
    }
    let built = Instant::now();
    client
        .batch_execute(&format!(
            "SET maintenance_work_mem = '1GB';
             CREATE INDEX {TABLE}_embedding ON {TABLE} USING hnsw (embedding vector_cosine_ops);
             CREATE INDEX {TABLE}_expires ON {TABLE} (expires_at);
             ANALYZE {TABLE};"
        ))
        .await
        .unwrap();
    eprintln!(
        "loaded {ENTRIES} rows; index built in {:.0} s",
        built.elapsed().as_secs_f64()
    );
}

fn report(name: &str, mut times: Vec<Duration>, hits: usize) {
    times.sort();
    let at = |q: f64| times[((times.len() as f64 * q) as usize).min(times.len() - 1)];
    println!(
        "cache_postgres/{name}: {} lookups, {hits} hits; p50 {:.0} µs, p99 {:.0} µs, max {:.0} µs",
        times.len(),
        at(0.5).as_secs_f64() * 1e6,
        at(0.99).as_secs_f64() * 1e6,
        times.last().copied().unwrap_or_default().as_secs_f64() * 1e6,
    );
}

fn main() {
    let Ok(url) = std::env::var("SWITCHYARD_PG_URL") else {
        eprintln!("cache_postgres: set SWITCHYARD_PG_URL to run (see the file's header)");
        return;
    };
    tokio::runtime::Runtime::new().unwrap().block_on(load(&url));
    let store = PostgresStore::new(PostgresConfig {
        url,
        table: TABLE.to_owned(),
        pool_size: 4,
        timeout: Duration::from_millis(500),
        dimensions: DIMS,
        max_entries: ENTRIES * 2,
    })
    .unwrap();
    for (name, semantic) in [("exact_hit", false), ("semantic", true)] {
        let mut times = Vec::with_capacity(LOOKUPS);
        let mut hits = 0;
        for n in 0..LOOKUPS + 100 {
            let i = (n * 7_919) % ENTRIES;
            let question = if semantic {
                format!("a question like number {i}")
            } else {
                format!("question number {i}")
            };
            let probe = entry(i);
            let key = Key {
                partition: 0,
                question: &question,
                vector: Some(&probe),
            };
            let started = Instant::now();
            let hit = store.lookup(&key, semantic.then_some(0.9));
            let spent = started.elapsed();
            // The first lookups open connections and prepare statements.
            if n >= 100 {
                times.push(spent);
                hits += usize::from(hit.is_some());
            }
        }
        report(name, times, hits);
    }
}
