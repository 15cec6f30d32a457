//! The cache in PostgreSQL with pgvector: one table that every gateway replica shares
//! and that outlives restarts.
//!
//! An entry is one row: its partition and question (the exact key; a hash with the
//! question text checked on read), its embedding (a `vector` column with an HNSW
//! index for cosine distance), the answer, its usage and when it expires. A lookup is
//! one round trip: the exact row of the question, else the nearest live row of the
//! partition. The schema is created when the store starts (and again on first use
//! if the database was down then).
//!
//! The database never holds a request up for long: every operation has a deadline
//! (`timeout_ms`), and after a failure the store is skipped for a second, so requests
//! proceed as cache misses while it is down (`switchyard_cache_backend_errors_total`
//! counts failures). Inserts and removals go in the background. The store runs its
//! I/O on its own small runtime, so the request hooks, which are synchronous, only
//! wait for an answer.
//!
//! Bounds: expired rows and, beyond `max_entries`, the oldest rows are deleted every
//! 256 inserts (oldest by insertion: the table does not track use).

use super::{CacheStore, CachedAnswer, Hit, Key};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};
use switchyard_wire::Usage;
use tokio_postgres::NoTls;

/// How a PostgreSQL store is reached and bounded.
#[derive(Debug, Clone)]
pub struct PostgresConfig {
    /// A connection URL (`postgres://user:password@host:port/db`).
    pub url: String,
    /// The table (created when missing).
    pub table: String,
    /// Connections kept at most.
    pub pool_size: usize,
    /// Each operation's deadline.
    pub timeout: Duration,
    /// The length of the embeddings stored.
    pub dimensions: usize,
    /// Rows kept at most.
    pub max_entries: usize,
}

/// The PostgreSQL backend.
pub struct PostgresStore {
    pool: deadpool_postgres::Pool,
    config: PostgresConfig,
    /// The store's own runtime, where every database call runs.
    runtime: Option<tokio::runtime::Runtime>,
    schema: Arc<AtomicBool>,
    /// Milliseconds (since `started`) until which the store is skipped.
    down_until: Arc<AtomicU64>,
    started: Instant,
    inserts: AtomicU64,
}

impl std::fmt::Debug for PostgresStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresStore")
            .field("table", &self.config.table)
            .finish()
    }
}

/// How long the store is skipped after a failure.
const PAUSE_MS: u64 = 1000;
/// Inserts between two trims.
const TRIM_EVERY: u64 = 256;

fn failed(op: &'static str, error: &str) {
    metrics::counter!("switchyard_cache_backend_errors_total", "backend" => "postgres", "op" => op)
        .increment(1);
    tracing::warn!(op, %error, "the cache database failed; requests proceed uncached");
}

/// A vector as pgvector reads it (`[0.1,0.2]`).
fn vector_text(v: &[f32]) -> String {
    let mut s = String::with_capacity(v.len() * 10 + 2);
    s.push('[');
    for (i, x) in v.iter().enumerate() {
        if i > 0 {
            s.push(',');
        }
        s.push_str(&x.to_string());
    }
    s.push(']');
    s
}

fn question_hash(question: &str) -> i64 {
    i64::from_ne_bytes(
        switchyard_wire::hash::fnv1a(question.as_bytes(), switchyard_wire::hash::FNV_OFFSET)
            .to_ne_bytes(),
    )
}

fn signed(v: u64) -> i64 {
    i64::from_ne_bytes(v.to_ne_bytes())
}

impl PostgresStore {
    /// A store on `config`; the schema is created in the background (a database that
    /// is down now only means misses until it is up).
    pub fn new(config: PostgresConfig) -> Result<PostgresStore, String> {
        let valid_table = !config.table.is_empty()
            && config.table.len() <= 63
            && config
                .table
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
            && !config.table.starts_with(|c: char| c.is_ascii_digit());
        if !valid_table {
            return Err(format!(
                "table `{}` is not a plain lower-case name (letters, digits, _)",
                config.table
            ));
        }
        if config.dimensions == 0 || config.dimensions > 16_000 {
            return Err(format!(
                "dimensions {} is not in 1..=16000",
                config.dimensions
            ));
        }
        let pg: tokio_postgres::Config = config.url.parse().map_err(|e| format!("url: {e}"))?;
        let mut pg = pg;
        pg.connect_timeout(config.timeout.max(Duration::from_millis(100)));
        let manager = deadpool_postgres::Manager::from_config(
            pg,
            NoTls,
            deadpool_postgres::ManagerConfig {
                recycling_method: deadpool_postgres::RecyclingMethod::Fast,
            },
        );
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("cache-postgres")
            .enable_all()
            .build()
            .map_err(|e| format!("cannot start the store's runtime: {e}"))?;
        let pool = {
            let _entered = runtime.enter();
            deadpool_postgres::Pool::builder(manager)
                .max_size(config.pool_size.max(1))
                .runtime(deadpool_postgres::Runtime::Tokio1)
                .wait_timeout(Some(config.timeout))
                .create_timeout(Some(config.timeout.max(Duration::from_millis(100))))
                .build()
                .map_err(|e| format!("cannot build the connection pool: {e}"))?
        };
        let store = PostgresStore {
            pool,
            config,
            runtime: Some(runtime),
            schema: Arc::new(AtomicBool::new(false)),
            down_until: Arc::new(AtomicU64::new(0)),
            started: Instant::now(),
            inserts: AtomicU64::new(0),
        };
        let (pool, config, schema) = (
            store.pool.clone(),
            store.config.clone(),
            Arc::clone(&store.schema),
        );
        store.spawn(async move {
            if let Err(e) = create_schema(&pool, &config).await {
                failed("schema", &e);
            } else {
                schema.store(true, Ordering::Release);
            }
        });
        Ok(store)
    }

    /// Runs a task on the store's runtime.
    fn spawn(&self, task: impl std::future::Future<Output = ()> + Send + 'static) {
        if let Some(rt) = &self.runtime {
            rt.spawn(task);
        }
    }

    fn now_ms(&self) -> u64 {
        u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    fn paused(&self) -> bool {
        self.now_ms() < self.down_until.load(Ordering::Acquire)
    }

    /// Runs `work` on the store's runtime and waits for it until the deadline; a
    /// failure or a missed deadline pauses the store.
    fn wait<T: Send + 'static>(
        &self,
        op: &'static str,
        work: impl std::future::Future<Output = Result<T, String>> + Send + 'static,
    ) -> Option<T> {
        if self.paused() {
            return None;
        }
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        let timeout = self.config.timeout;
        self.spawn(async move {
            let result = match tokio::time::timeout(timeout, work).await {
                Ok(r) => r,
                Err(_) => Err(format!("no answer within {} ms", timeout.as_millis())),
            };
            let _ = tx.send(result);
        });
        let receive = || rx.recv_timeout(timeout + Duration::from_millis(20));
        // On a multi-threaded runtime the waiting worker hands its other tasks on.
        let received = match tokio::runtime::Handle::try_current() {
            Ok(h) if h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread => {
                tokio::task::block_in_place(receive)
            }
            _ => receive(),
        };
        match received {
            Ok(Ok(value)) => Some(value),
            Ok(Err(e)) => {
                self.pause();
                failed(op, &e);
                None
            }
            Err(_) => {
                self.pause();
                failed(op, "no answer in time");
                None
            }
        }
    }

    fn pause(&self) {
        self.down_until
            .store(self.now_ms() + PAUSE_MS, Ordering::Release);
    }

    /// Runs `work` on the store's runtime without waiting; a failure pauses the store.
    fn background(
        &self,
        op: &'static str,
        work: impl std::future::Future<Output = Result<(), String>> + Send + 'static,
    ) {
        if self.paused() {
            return;
        }
        let (down, started, timeout) = (
            Arc::clone(&self.down_until),
            self.started,
            self.config.timeout,
        );
        self.spawn(async move {
            let result = match tokio::time::timeout(timeout * 4, work).await {
                Ok(r) => r,
                Err(_) => Err("no answer in time".to_owned()),
            };
            if let Err(e) = result {
                let now = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
                down.store(now + PAUSE_MS, Ordering::Release);
                failed(op, &e);
            }
        });
    }

    /// The pool, the table, and whether the schema is known to exist, for a task.
    fn parts(&self) -> (deadpool_postgres::Pool, PostgresConfig, Arc<AtomicBool>) {
        (
            self.pool.clone(),
            self.config.clone(),
            Arc::clone(&self.schema),
        )
    }
}

impl Drop for PostgresStore {
    fn drop(&mut self) {
        // Dropped on a reload, perhaps inside an async task, where waiting for the
        // runtime's threads is not allowed: they end on their own.
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_background();
        }
    }
}

async fn create_schema(
    pool: &deadpool_postgres::Pool,
    config: &PostgresConfig,
) -> Result<(), String> {
    let client = pool.get().await.map_err(|e| e.to_string())?;
    let t = &config.table;
    let sql = format!(
        "CREATE EXTENSION IF NOT EXISTS vector;
         CREATE TABLE IF NOT EXISTS {t} (
           id bigserial PRIMARY KEY,
           partition bigint NOT NULL,
           question_hash bigint NOT NULL,
           question text NOT NULL,
           embedding vector({dims}),
           answer text NOT NULL,
           prompt_tokens bigint,
           completion_tokens bigint,
           expires_at timestamptz NOT NULL,
           UNIQUE (partition, question_hash));
         CREATE INDEX IF NOT EXISTS {t}_embedding ON {t} USING hnsw (embedding vector_cosine_ops);
         CREATE INDEX IF NOT EXISTS {t}_expires ON {t} (expires_at);",
        dims = config.dimensions
    );
    client.batch_execute(&sql).await.map_err(|e| e.to_string())
}

/// Makes sure the schema exists before the first use after a failed start.
async fn ready(
    pool: &deadpool_postgres::Pool,
    config: &PostgresConfig,
    schema: &AtomicBool,
) -> Result<(), String> {
    if schema.load(Ordering::Acquire) {
        return Ok(());
    }
    create_schema(pool, config).await?;
    schema.store(true, Ordering::Release);
    Ok(())
}

/// A row as found: id, answer, usage, similarity, exact.
type Found = (i64, String, Option<Usage>, f32, bool);

fn usage_of(prompt: Option<i64>, completion: Option<i64>) -> Option<Usage> {
    match (prompt, completion) {
        (Some(p), Some(c)) => Some(Usage::new(u64::try_from(p).ok()?, u64::try_from(c).ok()?)),
        _ => None,
    }
}

impl CacheStore for PostgresStore {
    fn lookup(&self, key: &Key<'_>, threshold: Option<f32>) -> Option<Hit> {
        let (pool, config, schema) = self.parts();
        let (partition, hash, question) = (
            signed(key.partition),
            question_hash(key.question),
            key.question.to_owned(),
        );
        let vector = threshold
            .and(key.vector)
            .filter(|v| v.len() == config.dimensions)
            .map(vector_text);
        let found = self.wait("lookup", async move {
            ready(&pool, &config, &schema).await?;
            let client = pool.get().await.map_err(|e| e.to_string())?;
            let t = &config.table;
            let exact = format!(
                "SELECT id, answer, prompt_tokens, completion_tokens, 1::real, true, question FROM {t}
                 WHERE partition = $1 AND question_hash = $2 AND expires_at > now()"
            );
            let rows = match &vector {
                None => {
                    let statement = client.prepare_cached(&exact).await.map_err(|e| e.to_string())?;
                    client
                        .query(&statement, &[&partition, &hash])
                        .await
                        .map_err(|e| e.to_string())?
                }
                Some(v) => {
                    let sql = format!(
                        "({exact} LIMIT 1) UNION ALL
                         (SELECT id, answer, prompt_tokens, completion_tokens,
                                 (1 - (embedding <=> $3::text::vector))::real, false, question FROM {t}
                          WHERE partition = $1 AND expires_at > now() AND embedding IS NOT NULL
                          ORDER BY embedding <=> $3::text::vector LIMIT 1)"
                    );
                    let statement = client.prepare_cached(&sql).await.map_err(|e| e.to_string())?;
                    client
                        .query(&statement, &[&partition, &hash, v])
                        .await
                        .map_err(|e| e.to_string())?
                }
            };
            let mut found: Vec<Found> = Vec::new();
            for row in rows {
                let decoded = (|| -> Result<Found, tokio_postgres::Error> {
                    let exact: bool = row.try_get(5)?;
                    let text: String = row.try_get(6)?;
                    Ok((
                        row.try_get(0)?,
                        row.try_get(1)?,
                        usage_of(row.try_get(2)?, row.try_get(3)?),
                        row.try_get(4)?,
                        // A hash collision is not an exact hit.
                        exact && text == question,
                    ))
                })();
                match decoded {
                    Ok(f) => found.push(f),
                    // A row that cannot be read is dropped, not served.
                    Err(e) => {
                        if let Ok(id) = row.try_get::<_, i64>(0) {
                            let _ = client
                                .execute(&format!("DELETE FROM {t} WHERE id = $1"), &[&id])
                                .await;
                        }
                        tracing::warn!(error = %e, "a corrupt cache row was dropped");
                    }
                }
            }
            Ok(found)
        })?;
        let pick = |exact: bool| found.iter().find(|f| f.4 == exact);
        let (id, answer, usage, similarity, exact) = match (pick(true), threshold) {
            (Some(f), _) => f.clone(),
            (None, Some(t)) => pick(false).filter(|f| f.3 >= t)?.clone(),
            (None, None) => return None,
        };
        // Rows of another question with the same hash come back as not exact.
        if !exact && threshold.is_none() {
            return None;
        }
        Some(Hit {
            answer: Arc::new(CachedAnswer {
                text: answer,
                usage,
            }),
            similarity,
            exact,
            id: u64::from_ne_bytes(id.to_ne_bytes()),
        })
    }

    fn insert(&self, key: &Key<'_>, answer: CachedAnswer, ttl: Duration) {
        let (pool, config, schema) = self.parts();
        let (partition, hash, question) = (
            signed(key.partition),
            question_hash(key.question),
            key.question.to_owned(),
        );
        let vector = key
            .vector
            .filter(|v| v.len() == config.dimensions)
            .map(vector_text);
        let usage = answer.usage;
        let ttl_s = ttl.as_secs_f64();
        let trim = self.inserts.fetch_add(1, Ordering::Relaxed) % TRIM_EVERY == TRIM_EVERY - 1;
        self.background("insert", async move {
            ready(&pool, &config, &schema).await?;
            let client = pool.get().await.map_err(|e| e.to_string())?;
            let t = &config.table;
            let sql = format!(
                "INSERT INTO {t} (partition, question_hash, question, embedding, answer,
                                  prompt_tokens, completion_tokens, expires_at)
                 VALUES ($1, $2, $3, $4::text::vector, $5, $6, $7, now() + make_interval(secs => $8))
                 ON CONFLICT (partition, question_hash) DO UPDATE SET
                   question = EXCLUDED.question, embedding = EXCLUDED.embedding,
                   answer = EXCLUDED.answer, prompt_tokens = EXCLUDED.prompt_tokens,
                   completion_tokens = EXCLUDED.completion_tokens, expires_at = EXCLUDED.expires_at"
            );
            let statement = client.prepare_cached(&sql).await.map_err(|e| e.to_string())?;
            let tokens = |n: u64| i64::try_from(n).unwrap_or(i64::MAX);
            client
                .execute(
                    &statement,
                    &[
                        &partition,
                        &hash,
                        &question,
                        &vector,
                        &answer.text,
                        &usage.map(|u| tokens(u.prompt_tokens)),
                        &usage.map(|u| tokens(u.completion_tokens)),
                        &ttl_s,
                    ],
                )
                .await
                .map_err(|e| e.to_string())?;
            if trim {
                let max = i64::try_from(config.max_entries).unwrap_or(i64::MAX);
                client
                    .batch_execute(&format!("DELETE FROM {t} WHERE expires_at <= now()"))
                    .await
                    .map_err(|e| e.to_string())?;
                client
                    .execute(
                        &format!(
                            "DELETE FROM {t} WHERE id <= (SELECT id FROM {t} ORDER BY id DESC OFFSET $1 LIMIT 1)"
                        ),
                        &[&max],
                    )
                    .await
                    .map_err(|e| e.to_string())?;
            }
            Ok(())
        });
    }

    fn remove(&self, id: u64) {
        let (pool, config, _) = self.parts();
        let id = signed(id);
        self.background("remove", async move {
            let client = pool.get().await.map_err(|e| e.to_string())?;
            client
                .execute(
                    &format!("DELETE FROM {} WHERE id = $1", config.table),
                    &[&id],
                )
                .await
                .map_err(|e| e.to_string())?;
            Ok(())
        });
    }

    fn len(&self) -> usize {
        let (pool, config, schema) = self.parts();
        self.wait("count", async move {
            ready(&pool, &config, &schema).await?;
            let client = pool.get().await.map_err(|e| e.to_string())?;
            let row = client
                .query_one(&format!("SELECT count(*) FROM {}", config.table), &[])
                .await
                .map_err(|e| e.to_string())?;
            let n: i64 = row.try_get(0).map_err(|e| e.to_string())?;
            Ok(usize::try_from(n).unwrap_or(0))
        })
        .unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vectors_are_written_as_pgvector_reads_them() {
        assert_eq!(vector_text(&[0.5, -1.0, 0.25]), "[0.5,-1,0.25]");
        assert_eq!(vector_text(&[]), "[]");
    }

    #[test]
    fn bad_configurations_are_refused() {
        let config = |table: &str, url: &str, dimensions: usize| PostgresConfig {
            url: url.to_owned(),
            table: table.to_owned(),
            pool_size: 2,
            timeout: Duration::from_millis(50),
            dimensions,
            max_entries: 10,
        };
        let err = |c| PostgresStore::new(c).unwrap_err();
        assert!(err(config("x; DROP TABLE y", "postgres://a@localhost/db", 384)).contains("table"));
        assert!(err(config("cache", "postgres://a@localhost/db", 0)).contains("dimensions"));
        assert!(err(config("cache", "not a url at all ::", 384)).contains("url"));
    }

    #[test]
    fn a_database_that_is_down_is_a_miss_within_the_deadline() {
        // Nothing listens on port 9 of loopback.
        let store = PostgresStore::new(PostgresConfig {
            url: "postgres://nobody@127.0.0.1:9/none".to_owned(),
            table: "cache".to_owned(),
            pool_size: 1,
            timeout: Duration::from_millis(100),
            dimensions: 3,
            max_entries: 10,
        })
        .unwrap();
        let key = Key {
            partition: 1,
            question: "q",
            vector: Some(&[1.0, 0.0, 0.0]),
        };
        let started = Instant::now();
        assert!(store.lookup(&key, Some(0.9)).is_none());
        // Paused after the failure: the next lookups do not even try.
        assert!(store.lookup(&key, Some(0.9)).is_none());
        store.insert(
            &key,
            CachedAnswer {
                text: "a".into(),
                usage: None,
            },
            Duration::from_secs(60),
        );
        assert!(
            started.elapsed() < Duration::from_secs(1),
            "{:?}",
            started.elapsed()
        );
    }
}
