//! [`SharedState`] on a Redis or Valkey server that several gateway replicas share.
//!
//! Every operation is one Lua script run on the server, so it is atomic there
//! whatever the replicas do meanwhile, and reads the server's clock (`TIME`), so
//! replicas agree on windows and decay whatever their own clocks say. Connections
//! come from a pool; each operation has a deadline (`timeout`), and after a failure
//! the store answers [`Refused::Unavailable`] at once for `pause`, so a server that
//! is down costs a request nothing but the failure (each feature then fails open or
//! closed, as configured). Every key carries an expiry: what a caller leaves behind
//! goes by itself.

use super::{Bucket, BucketShape, Refused, Reservation, SharedState};
use bytes::Bytes;
use redis::{Script, Value};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// How to reach the server and how long to wait for it.
#[derive(Debug, Clone)]
pub struct RemoteOptions {
    /// `redis://[user:password@]host:port[/db]` (or `rediss://`).
    pub url: String,
    /// The backend's name in metrics and messages (`redis`, `valkey`).
    pub backend: &'static str,
    /// Prefix of every key (several deployments can share a server).
    pub prefix: String,
    /// Deadline of one operation: connecting, sending, and reading the answer.
    pub timeout: Duration,
    /// Idle connections kept open at most (more are opened while more operations
    /// run at once).
    pub pool_size: usize,
    /// After a refused or broken connection, or [`TIMEOUTS_BEFORE_PAUSE`] timeouts in
    /// a row, how long operations are refused without trying (an error the server
    /// answers with fails only its operation).
    pub pause: Duration,
    /// Entries kept per log (the oldest go first).
    pub log_capacity: u64,
    /// A log left without appends this long is dropped.
    pub log_ttl: Duration,
}

impl RemoteOptions {
    /// Options with the defaults for `url`.
    pub fn new(url: &str) -> RemoteOptions {
        RemoteOptions {
            url: url.to_owned(),
            backend: "valkey",
            prefix: "switchyard:".to_owned(),
            timeout: Duration::from_millis(100),
            pool_size: 16,
            pause: Duration::from_secs(1),
            log_capacity: 10_000,
            log_ttl: Duration::from_secs(7 * 86_400),
        }
    }
}

/// Open connections to the server, each with the operation deadline on its reads and
/// writes. A connection is taken for one operation and given back only when the
/// operation succeeded: one that failed (a timeout may leave its answer unread) is
/// closed, so no operation ever reads another's answer.
struct Pool {
    client: redis::Client,
    idle: Mutex<Vec<redis::Connection>>,
    max_idle: usize,
    timeout: Duration,
}

impl Pool {
    fn take(&self) -> redis::RedisResult<redis::Connection> {
        if let Some(conn) = self.idle.lock().ok().and_then(|mut idle| idle.pop()) {
            return Ok(conn);
        }
        let conn = self.client.get_connection_with_timeout(self.timeout)?;
        conn.set_read_timeout(Some(self.timeout))?;
        conn.set_write_timeout(Some(self.timeout))?;
        Ok(conn)
    }

    fn give_back(&self, conn: redis::Connection) {
        if let Ok(mut idle) = self.idle.lock()
            && idle.len() < self.max_idle
        {
            idle.push(conn);
        }
    }
}

/// The server's clock in milliseconds, as every script reads it.
const NOW: &str =
    "local t = redis.call('TIME')\nlocal now = t[1] * 1000 + math.floor(t[2] / 1000)\n";

/// The counter's window at `now`: a window that has ended starts over.
const WINDOW: &str = "local c = redis.call('HMGET', KEYS[1], 'ws', 'used', 'wm')
local ws, used, wm = tonumber(c[1]), tonumber(c[2]) or 0, tonumber(c[3])
if ws ~= nil and now >= ws + wm then
  ws = now - ((now - ws) % wm)
  used = 0
end
";

const RESERVE: &str =
    "local amount, limit, window = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
if ws == nil then ws, used = now, 0 end
wm = window
if used + amount > limit then return {0, used, ws + wm - now} end
used = used + amount
redis.call('HSET', KEYS[1], 'ws', ws, 'used', used, 'wm', wm)
redis.call('PEXPIRE', KEYS[1], ws + 2 * wm - now)
return {1, ws, used}
";

const SETTLE: &str = "if ws == nil then return 0 end
local amount, spent, held_in = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
if ws == held_in then
  used = math.max(used - amount, 0) + spent
else
  used = used + math.max(spent - amount, 0)
end
redis.call('HSET', KEYS[1], 'ws', ws, 'used', used)
return 1
";

const COUNTER: &str = "return used\n";

const APPEND: &str = "local n = redis.call('INCR', KEYS[2])
redis.call('RPUSH', KEYS[1], ARGV[1])
local len = redis.call('LLEN', KEYS[1])
local cap = tonumber(ARGV[2])
if len > cap then redis.call('LTRIM', KEYS[1], len - cap, -1) end
redis.call('PEXPIRE', KEYS[1], ARGV[3])
redis.call('PEXPIRE', KEYS[2], ARGV[3])
return n - 1
";

const READ: &str = "local n = tonumber(redis.call('GET', KEYS[2]) or '0')
local len = redis.call('LLEN', KEYS[1])
local first = n - len
local from, max = tonumber(ARGV[1]), tonumber(ARGV[2])
local start = math.max(from - first, 0)
if max <= 0 or start >= len then return {first + start, {}} end
return {first + start, redis.call('LRANGE', KEYS[1], start, start + max - 1)}
";

const DECAYING_ADD: &str =
    "local amount, half_life, ttl = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local c = redis.call('HMGET', KEYS[1], 'sum', 'at')
local current = 0
if c[1] then
  current = tonumber(c[1]) * 0.5 ^ (math.max(now - tonumber(c[2]), 0) / half_life)
end
if amount == 0 then return string.format('%.17g', current) end
local sum = current + amount
redis.call('HSET', KEYS[1], 'sum', string.format('%.17g', sum), 'at', now)
redis.call('PEXPIRE', KEYS[1], ttl)
return string.format('%.17g', sum)
";

const BUCKET: &str =
    "local delta, capacity, rate = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local c = redis.call('HMGET', KEYS[1], 'tokens', 'at')
local tokens = capacity
if c[1] then
  tokens = math.min(capacity, tonumber(c[1]) + math.max(now - tonumber(c[2]), 0) * rate)
end
local after = tokens + delta
if after < 0 then
  return {0, string.format('%.17g', tokens), math.ceil(-after / rate)}
end
after = math.min(after, capacity)
redis.call('HSET', KEYS[1], 'tokens', string.format('%.17g', after), 'at', now)
local full = math.ceil((capacity - after) / rate)
redis.call('PEXPIRE', KEYS[1], full + 1000)
return {1, string.format('%.17g', after), full}
";

/// The scripts, loaded on the server once (`EVALSHA`, reloaded if it restarted).
#[derive(Debug)]
struct Scripts {
    reserve: Script,
    settle: Script,
    counter: Script,
    append: Script,
    read: Script,
    decaying_add: Script,
    bucket: Script,
}

impl Scripts {
    fn new() -> Scripts {
        let window = |body: &str| Script::new(&format!("{NOW}{WINDOW}{body}"));
        Scripts {
            reserve: window(RESERVE),
            settle: window(SETTLE),
            counter: window(COUNTER),
            append: Script::new(APPEND),
            read: Script::new(READ),
            decaying_add: Script::new(&format!("{NOW}{DECAYING_ADD}")),
            bucket: Script::new(&format!("{NOW}{BUCKET}")),
        }
    }
}

/// Timeouts in a row that pause the store. One late answer in a burst (thousands of
/// operations at once from a replica) is not a server gone: it fails its own
/// operation, not every operation for `pause`. A server that stops answering times
/// out every operation, and is paused after this many.
pub const TIMEOUTS_BEFORE_PAUSE: u32 = 3;

/// Shared state on a Redis or Valkey server.
pub struct RemoteState {
    pool: Pool,
    options: RemoteOptions,
    scripts: Scripts,
    /// Until when (ms since `started`) operations are refused after a failure.
    paused_until: AtomicU64,
    /// Operations that timed out since the last that did not.
    timeouts_in_a_row: AtomicU32,
    started: Instant,
    /// The last failure, for the refusals during the pause.
    last_error: Mutex<String>,
}

impl std::fmt::Debug for RemoteState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RemoteState")
            .field("backend", &self.options.backend)
            .field("prefix", &self.options.prefix)
            .finish_non_exhaustive()
    }
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX).max(1)
}

impl RemoteState {
    /// A store on the server at `options.url`. Nothing is sent yet: a server that is
    /// down at start is an unavailable store until it comes up, not an error here.
    /// The URL itself must be valid.
    pub fn new(options: RemoteOptions) -> Result<RemoteState, String> {
        let client =
            redis::Client::open(options.url.as_str()).map_err(|e| format!("state url: {e}"))?;
        Ok(RemoteState {
            pool: Pool {
                client,
                idle: Mutex::new(Vec::new()),
                max_idle: options.pool_size,
                timeout: options.timeout,
            },
            options,
            scripts: Scripts::new(),
            paused_until: AtomicU64::new(0),
            timeouts_in_a_row: AtomicU32::new(0),
            started: Instant::now(),
            last_error: Mutex::new(String::new()),
        })
    }

    fn key(&self, kind: &str, key: &str) -> String {
        format!("{}{kind}:{key}", self.options.prefix)
    }

    fn since_start(&self) -> u64 {
        u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    /// Runs `op` on a pooled connection, unless paused by an earlier failure; a
    /// failure pauses the store and is counted.
    fn run<T>(
        &self,
        op: &'static str,
        f: impl FnOnce(&mut redis::Connection) -> redis::RedisResult<T>,
    ) -> Result<T, Refused> {
        if self.since_start() < self.paused_until.load(Ordering::Relaxed) {
            metrics::counter!("switchyard_state_errors_total",
                "backend" => self.options.backend, "op" => op, "error" => "paused")
            .increment(1);
            let last = self
                .last_error
                .lock()
                .map(|e| e.clone())
                .unwrap_or_default();
            return Err(Refused::Unavailable(format!(
                "{} paused after a failure ({last})",
                self.options.backend
            )));
        }
        let started = Instant::now();
        let result = self.pool.take().and_then(|mut conn| {
            let result = f(&mut conn);
            if result.is_ok() {
                self.pool.give_back(conn);
            }
            result
        });
        let error = match result {
            Ok(value) => {
                self.timeouts_in_a_row.store(0, Ordering::Relaxed);
                return Ok(value);
            }
            Err(e) => e,
        };
        // A refused or broken connection is a server gone: paused at once. Timeouts
        // pause when they come in a row. An error the server answered with (the
        // connection is fine) fails only its own operation. A timeout is told by the
        // wait, not the error's kind: a socket's read deadline surfaces as an I/O
        // error ("resource temporarily unavailable") that is not always marked as one.
        let timed_out = error.is_timeout() || started.elapsed() >= self.options.timeout;
        let pause = if timed_out {
            self.timeouts_in_a_row.fetch_add(1, Ordering::Relaxed) + 1 >= TIMEOUTS_BEFORE_PAUSE
        } else {
            error.is_io_error()
        };
        let message = error.to_string();
        if pause {
            self.paused_until.store(
                self.since_start()
                    .saturating_add(millis(self.options.pause)),
                Ordering::Relaxed,
            );
        }
        metrics::counter!("switchyard_state_errors_total",
            "backend" => self.options.backend, "op" => op, "error" => "failed")
        .increment(1);
        if pause {
            tracing::warn!(backend = self.options.backend, op, error = %message,
                "shared state failed; refusing operations for {:?}", self.options.pause);
        } else {
            tracing::debug!(backend = self.options.backend, op, error = %message,
                "shared state operation timed out");
        }
        if let Ok(mut last) = self.last_error.lock() {
            last.clone_from(&message);
        }
        Err(Refused::Unavailable(format!(
            "{} {op}: {message}",
            self.options.backend
        )))
    }
}

/// A log's two keys (entries, count of appends), hash-tagged to one slot.
fn log_keys(state: &RemoteState, log: &str) -> [String; 2] {
    let base = state.key("log", log);
    [format!("{{{base}}}:entries"), format!("{{{base}}}:count")]
}

fn integer(v: &Value) -> Option<u64> {
    match v {
        Value::Int(i) => u64::try_from(*i).ok(),
        _ => None,
    }
}

impl RemoteState {
    /// Adds `delta` tokens to bucket `key` (a take when negative) on the server.
    fn bucket(
        &self,
        op: &'static str,
        key: &str,
        delta: f64,
        shape: BucketShape,
    ) -> Result<Bucket, Refused> {
        let bucket = self.key("bucket", key);
        // Rates per millisecond: the server's clock is in milliseconds. A rate of 0
        // would never refill; the smallest positive one stands in for it.
        let rate = (shape.per_second / 1000.0).max(f64::MIN_POSITIVE);
        let reply: Vec<Value> = self.run(op, |c| {
            self.scripts
                .bucket
                .key(&bucket)
                .arg(format!("{delta:e}"))
                .arg(format!("{:e}", shape.capacity))
                .arg(format!("{rate:e}"))
                .invoke(c)
        })?;
        let number = |v: &Value| match v {
            Value::BulkString(b) => std::str::from_utf8(b).ok()?.parse::<f64>().ok(),
            Value::Int(i) => Some(*i as f64),
            _ => None,
        };
        match reply.as_slice() {
            [ok, tokens, ms] => {
                let tokens = number(tokens).unwrap_or(0.0);
                let ms = integer(ms).unwrap_or(u64::MAX);
                if integer(ok) == Some(1) {
                    Ok(Bucket {
                        remaining: tokens,
                        full_in_ms: ms,
                    })
                } else {
                    Err(Refused::Exhausted {
                        key: key.to_owned(),
                        used: (shape.capacity - tokens).max(0.0).round() as u64,
                        limit: shape.capacity.round() as u64,
                        amount: (-delta).round() as u64,
                        retry_after_ms: ms,
                    })
                }
            }
            other => Err(Refused::Unavailable(format!(
                "{op}: unexpected reply {other:?}"
            ))),
        }
    }
}

impl SharedState for RemoteState {
    fn take(&self, key: &str, amount: f64, shape: BucketShape) -> Result<Bucket, Refused> {
        self.bucket("take", key, -amount.max(0.0), shape)
    }

    fn give_back(&self, key: &str, amount: f64, shape: BucketShape) -> Result<Bucket, Refused> {
        self.bucket("give_back", key, amount.max(0.0), shape)
    }

    fn reserve(
        &self,
        key: &str,
        amount: u64,
        limit: u64,
        window: Duration,
    ) -> Result<Reservation, Refused> {
        let counter = self.key("counter", key);
        let reply: Vec<Value> = self.run("reserve", |c| {
            self.scripts
                .reserve
                .key(&counter)
                .arg(amount)
                .arg(limit)
                .arg(millis(window))
                .invoke(c)
        })?;
        match reply.as_slice() {
            [granted, window_start, used] if integer(granted) == Some(1) => Ok(Reservation {
                key: key.to_owned(),
                amount,
                window_start: integer(window_start).unwrap_or(0),
                used: integer(used).unwrap_or(amount),
            }),
            [granted, used, retry] if integer(granted) == Some(0) => Err(Refused::Exhausted {
                key: key.to_owned(),
                used: integer(used).unwrap_or(0),
                limit,
                amount,
                retry_after_ms: integer(retry).unwrap_or(0),
            }),
            other => Err(Refused::Unavailable(format!(
                "reserve: unexpected reply {other:?}"
            ))),
        }
    }

    fn settle(&self, reservation: Reservation, used: u64) {
        let counter = self.key("counter", &reservation.key);
        // A settlement that fails leaves the reservation held until its window ends:
        // the budget errs on the side of the limit.
        let _ = self.run("settle", |c| {
            self.scripts
                .settle
                .key(&counter)
                .arg(reservation.amount)
                .arg(used)
                .arg(reservation.window_start)
                .invoke::<i64>(c)
        });
    }

    fn counter(&self, key: &str) -> Result<u64, Refused> {
        let counter = self.key("counter", key);
        self.run("counter", |c| self.scripts.counter.key(&counter).invoke(c))
    }

    fn put(&self, key: &str, value: Bytes, ttl: Duration) -> Result<(), Refused> {
        let key = self.key("value", key);
        self.run("put", |c| {
            redis::cmd("SET")
                .arg(&key)
                .arg(value.as_ref())
                .arg("PX")
                .arg(millis(ttl))
                .query(c)
        })
    }

    fn get(&self, key: &str) -> Result<Option<Bytes>, Refused> {
        let key = self.key("value", key);
        let value: Option<Vec<u8>> = self.run("get", |c| redis::cmd("GET").arg(&key).query(c))?;
        Ok(value.map(Bytes::from))
    }

    fn delete(&self, key: &str) -> Result<bool, Refused> {
        let key = self.key("value", key);
        let removed: u64 = self.run("delete", |c| redis::cmd("DEL").arg(&key).query(c))?;
        Ok(removed > 0)
    }

    fn append(&self, log: &str, entry: Bytes) -> Result<u64, Refused> {
        let [entries, count] = log_keys(self, log);
        self.run("append", |c| {
            self.scripts
                .append
                .key(&entries)
                .key(&count)
                .arg(entry.as_ref())
                .arg(self.options.log_capacity.max(1))
                .arg(millis(self.options.log_ttl))
                .invoke(c)
        })
    }

    fn read(&self, log: &str, from: u64, max: usize) -> Result<Vec<(u64, Bytes)>, Refused> {
        let [entries, count] = log_keys(self, log);
        let (first, items): (u64, Vec<Vec<u8>>) = self.run("read", |c| {
            self.scripts
                .read
                .key(&entries)
                .key(&count)
                .arg(from)
                .arg(max)
                .invoke(c)
        })?;
        Ok((first..)
            .zip(items)
            .map(|(n, item)| (n, Bytes::from(item)))
            .collect())
    }

    fn decaying_add(
        &self,
        key: &str,
        amount: f64,
        half_life: Duration,
        ttl: Duration,
    ) -> Result<f64, Refused> {
        let key = self.key("sum", key);
        let amount = if amount.is_finite() { amount } else { 0.0 };
        let sum: String = self.run("decaying_add", |c| {
            self.scripts
                .decaying_add
                .key(&key)
                .arg(format!("{amount:e}"))
                .arg(millis(half_life))
                .arg(millis(ttl))
                .invoke(c)
        })?;
        sum.parse()
            .map_err(|_| Refused::Unavailable(format!("decaying_add: unexpected reply {sum:?}")))
    }

    fn remote(&self) -> bool {
        true
    }
}
