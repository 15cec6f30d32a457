//! Shared state: what several requests (and, later, several replicas) must agree on,
//! behind one trait, [`SharedState`]: counters with an atomic reserve-then-settle
//! (budgets, rate limits), a key-value store whose entries expire (sessions, cached
//! answers), append logs (feedback, outcomes), and decaying sums (reputations).
//! [`InProcess`] keeps it in this process's memory, bounded; [`RemoteState`] keeps it
//! on a Redis or Valkey server that several replicas share, every operation atomic
//! on the server. This crate knows nothing of requests, routes or models.

mod in_process;
mod remote;
pub mod testing;

pub use in_process::{InProcess, Limits};
pub use remote::{RemoteOptions, RemoteState, TIMEOUTS_BEFORE_PAUSE};

use bytes::Bytes;
use std::time::Duration;

/// Time, in milliseconds since an arbitrary start; passed in so tests control it.
pub trait Clock: Send + Sync + std::fmt::Debug {
    /// Now.
    fn now_ms(&self) -> u64;
}

/// A clock that stands still until set: for tests of what decays or expires.
#[derive(Debug, Default)]
pub struct ManualClock(std::sync::atomic::AtomicU64);

impl ManualClock {
    /// Sets the time, in milliseconds.
    pub fn set(&self, ms: u64) {
        self.0.store(ms, std::sync::atomic::Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now_ms(&self) -> u64 {
        self.0.load(std::sync::atomic::Ordering::SeqCst)
    }
}

/// The process's monotonic clock.
#[derive(Debug, Clone, Copy)]
pub struct SystemClock(std::time::Instant);

impl SystemClock {
    /// A clock starting now.
    pub fn new() -> SystemClock {
        SystemClock(std::time::Instant::now())
    }
}

impl Default for SystemClock {
    fn default() -> Self {
        SystemClock::new()
    }
}

impl Clock for SystemClock {
    fn now_ms(&self) -> u64 {
        u64::try_from(self.0.elapsed().as_millis()).unwrap_or(u64::MAX)
    }
}

/// An amount held on a counter until it is settled.
#[derive(Debug, Clone, PartialEq, Eq)]
#[must_use = "a reservation holds its amount until it is settled"]
pub struct Reservation {
    /// The counter.
    pub key: String,
    /// What was held.
    pub amount: u64,
    /// The window it was held in (its start, in the clock's milliseconds).
    pub window_start: u64,
    /// The counter's total in that window once this was held (what is left is the
    /// limit minus this).
    pub used: u64,
}

/// A reservation was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refused {
    /// The counter would pass its limit in this window.
    #[error(
        "counter `{key}` has {used} of {limit} used in this window; {amount} more does not fit"
    )]
    Exhausted {
        /// The counter.
        key: String,
        /// Used (and held) in the current window.
        used: u64,
        /// The limit.
        limit: u64,
        /// What was asked for.
        amount: u64,
        /// Milliseconds until the window ends.
        retry_after_ms: u64,
    },
    /// The store holds as many keys as it may (see [`Limits`]).
    #[error("the shared state is full ({0} keys); try again later")]
    Full(usize),
    /// The store could not be reached or did not answer in time: the operation did
    /// not happen (each feature says whether it then fails open or closed).
    #[error("the shared state is unavailable: {0}")]
    Unavailable(String),
}

/// A token bucket after an operation.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Bucket {
    /// Tokens left in it.
    pub remaining: f64,
    /// Milliseconds until it is full again.
    pub full_in_ms: u64,
}

/// A token bucket's size and refill rate.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BucketShape {
    /// Tokens it holds when full (the burst).
    pub capacity: f64,
    /// Tokens it gains per second.
    pub per_second: f64,
}

/// Shared state. Every operation is atomic on its key.
pub trait SharedState: Send + Sync + std::fmt::Debug {
    /// Holds `amount` on counter `key` when it fits under `limit` in the current
    /// fixed window of length `window` (the first reservation starts it).
    fn reserve(
        &self,
        key: &str,
        amount: u64,
        limit: u64,
        window: Duration,
    ) -> Result<Reservation, Refused>;

    /// Replaces a reservation's amount by what was `used`: the difference is given
    /// back (or charged). In a window that has ended, nothing is given back and what
    /// was used beyond the reservation is charged to the current window.
    fn settle(&self, reservation: Reservation, used: u64);

    /// What counter `key` holds in its current window (0 when it has none).
    fn counter(&self, key: &str) -> Result<u64, Refused>;

    /// Stores `value` under `key` for `ttl`.
    fn put(&self, key: &str, value: Bytes, ttl: Duration) -> Result<(), Refused>;

    /// The value under `key`, unless it expired.
    fn get(&self, key: &str) -> Result<Option<Bytes>, Refused>;

    /// Removes the value under `key`; whether there was one (unexpired).
    fn delete(&self, key: &str) -> Result<bool, Refused>;

    /// Appends an entry to log `log`; returns its sequence number (from 0). The
    /// oldest entries go when the log is at its capacity.
    fn append(&self, log: &str, entry: Bytes) -> Result<u64, Refused>;

    /// Up to `max` entries of `log` from sequence number `from` on, with their numbers.
    fn read(&self, log: &str, from: u64, max: usize) -> Result<Vec<(u64, Bytes)>, Refused>;

    /// Adds `amount` to the decaying sum under `key`, which halves every
    /// `half_life`, and returns the sum as of now. An `amount` of 0 only reads (a key
    /// it does not hold reads 0 and is not created). A sum left without additions for
    /// `ttl` is dropped.
    fn decaying_add(
        &self,
        key: &str,
        amount: f64,
        half_life: Duration,
        ttl: Duration,
    ) -> Result<f64, Refused>;

    /// Takes `amount` tokens from bucket `key` (a bucket not held starts full, and
    /// refills continuously). Refused ([`Refused::Exhausted`], with the time until
    /// enough has refilled) when it holds less; nothing is taken then.
    fn take(&self, key: &str, amount: f64, shape: BucketShape) -> Result<Bucket, Refused>;

    /// Puts `amount` tokens back into bucket `key`, up to its capacity: what a request
    /// took beyond what it used.
    fn give_back(&self, key: &str, amount: f64, shape: BucketShape) -> Result<Bucket, Refused>;

    /// Whether operations cross a network (and may wait on it): callers on an async
    /// runtime then move them off its workers.
    fn remote(&self) -> bool {
        false
    }
}

/// A bucket that held `tokens` `elapsed_ms` ago: refilled, at most full.
pub fn refilled(tokens: f64, elapsed_ms: u64, shape: BucketShape) -> f64 {
    (tokens + elapsed_ms as f64 / 1000.0 * shape.per_second).min(shape.capacity)
}

/// Milliseconds until a bucket holding `tokens` holds `wanted` (at most full).
pub fn refill_ms(tokens: f64, wanted: f64, shape: BucketShape) -> u64 {
    let missing = (wanted.min(shape.capacity) - tokens).max(0.0);
    if shape.per_second <= 0.0 {
        return if missing > 0.0 { u64::MAX } else { 0 };
    }
    (missing / shape.per_second * 1000.0).ceil() as u64
}

/// What a decaying sum of `sum` is `elapsed_ms` milliseconds later, with this half-life.
pub fn decayed(sum: f64, elapsed_ms: u64, half_life: Duration) -> f64 {
    let half_life_ms = half_life.as_secs_f64() * 1000.0;
    if half_life_ms <= 0.0 {
        return 0.0;
    }
    sum * 0.5f64.powf(elapsed_ms as f64 / half_life_ms)
}
