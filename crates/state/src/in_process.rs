//! [`SharedState`] in this process's memory: one lock per kind of state, bounded
//! sizes, expired entries swept as they are met and when the store is full.

use super::{
    Bucket, BucketShape, Clock, Refused, Reservation, SharedState, decayed, refill_ms, refilled,
};
use bytes::Bytes;
use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

/// How much an [`InProcess`] store may hold: state kept per caller is bounded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Counters, and separately key-value entries and logs, at most.
    pub max_keys: usize,
    /// Entries kept per log (the oldest go first).
    pub log_capacity: usize,
    /// Bytes of key-value entries held at once, at most.
    pub max_value_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_keys: 100_000,
            log_capacity: 10_000,
            max_value_bytes: 256 << 20,
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct Counter {
    window_start: u64,
    window_ms: u64,
    used: u64,
}

#[derive(Debug)]
struct Log {
    first: u64,
    entries: VecDeque<Bytes>,
}

/// Shared state for one process.
#[derive(Debug)]
pub struct InProcess {
    clock: Arc<dyn Clock>,
    limits: Limits,
    counters: Mutex<HashMap<String, Counter>>,
    values: Mutex<Values>,
    logs: Mutex<HashMap<String, Log>>,
    /// Decaying sums: (sum, when it was that, expiry).
    sums: Mutex<HashMap<String, Decaying>>,
    /// Token buckets: (tokens, when it held that).
    buckets: Mutex<HashMap<String, (f64, u64)>>,
}

/// Key-value entries (value, expiry) and the bytes they hold.
#[derive(Debug, Default)]
struct Values {
    entries: HashMap<String, (Bytes, u64)>,
    bytes: usize,
}

impl Values {
    fn remove(&mut self, key: &str) -> Option<(Bytes, u64)> {
        let removed = self.entries.remove(key);
        if let Some((value, _)) = &removed {
            self.bytes -= key.len() + value.len();
        }
        removed
    }

    /// Whether `size` bytes under `key` fit (replacing what `key` holds).
    fn fits(&self, key: &str, size: usize, limits: &Limits) -> bool {
        let held = self.entries.get(key).map(|(v, _)| key.len() + v.len());
        (held.is_some() || self.entries.len() < limits.max_keys)
            && self.bytes - held.unwrap_or(0) + size <= limits.max_value_bytes
    }

    fn sweep(&mut self, now: u64) {
        let mut freed = 0;
        self.entries.retain(|key, (value, expires)| {
            let keep = *expires > now;
            if !keep {
                freed += key.len() + value.len();
            }
            keep
        });
        self.bytes -= freed;
    }
}

#[derive(Debug, Clone, Copy)]
struct Decaying {
    sum: f64,
    at: u64,
    expires: u64,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX).max(1)
}

impl InProcess {
    /// An empty store on `clock`, bounded by `limits`.
    pub fn new(clock: Arc<dyn Clock>, limits: Limits) -> InProcess {
        InProcess {
            clock,
            limits,
            counters: Mutex::new(HashMap::new()),
            values: Mutex::new(Values::default()),
            logs: Mutex::new(HashMap::new()),
            sums: Mutex::new(HashMap::new()),
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// Adds `delta` tokens to bucket `key` (a take when negative), refused when that
    /// would leave it below 0.
    fn bucket(&self, key: &str, delta: f64, shape: BucketShape) -> Result<Bucket, Refused> {
        let now = self.clock.now_ms();
        let mut buckets = lock(&self.buckets);
        let tokens = buckets.get(key).map_or(shape.capacity, |&(tokens, at)| {
            refilled(tokens, now.saturating_sub(at), shape)
        });
        let after = tokens + delta;
        if after < 0.0 {
            return Err(Refused::Exhausted {
                key: key.to_owned(),
                used: (shape.capacity - tokens).max(0.0).round() as u64,
                limit: shape.capacity.round() as u64,
                amount: (-delta).round() as u64,
                retry_after_ms: refill_ms(tokens, -delta, shape),
            });
        }
        let after = after.min(shape.capacity);
        if !buckets.contains_key(key) && buckets.len() >= self.limits.max_keys {
            // A bucket that has refilled is the same as none: they make room.
            buckets.retain(|_, (tokens, at)| {
                refilled(*tokens, now.saturating_sub(*at), shape) < shape.capacity
            });
            if buckets.len() >= self.limits.max_keys {
                return Err(Refused::Full(self.limits.max_keys));
            }
        }
        buckets.insert(key.to_owned(), (after, now));
        Ok(Bucket {
            remaining: after,
            full_in_ms: refill_ms(after, shape.capacity, shape),
        })
    }

    /// The counter's state now: a window that has ended starts over.
    fn current(counter: &mut Counter, now: u64) {
        if now >= counter.window_start.saturating_add(counter.window_ms) {
            let elapsed = now - counter.window_start;
            counter.window_start = now - elapsed % counter.window_ms;
            counter.used = 0;
        }
    }
}

impl SharedState for InProcess {
    fn take(&self, key: &str, amount: f64, shape: BucketShape) -> Result<Bucket, Refused> {
        self.bucket(key, -amount.max(0.0), shape)
    }

    fn give_back(&self, key: &str, amount: f64, shape: BucketShape) -> Result<Bucket, Refused> {
        self.bucket(key, amount.max(0.0), shape)
    }

    fn reserve(
        &self,
        key: &str,
        amount: u64,
        limit: u64,
        window: Duration,
    ) -> Result<Reservation, Refused> {
        let now = self.clock.now_ms();
        let window_ms = millis(window);
        let mut counters = lock(&self.counters);
        if !counters.contains_key(key) && counters.len() >= self.limits.max_keys {
            // Counters whose window has ended hold nothing: they make room.
            counters.retain(|_, c| now < c.window_start.saturating_add(c.window_ms));
            if counters.len() >= self.limits.max_keys {
                return Err(Refused::Full(self.limits.max_keys));
            }
        }
        let counter = counters.entry(key.to_owned()).or_insert(Counter {
            window_start: now,
            window_ms,
            used: 0,
        });
        counter.window_ms = window_ms;
        InProcess::current(counter, now);
        if counter.used.saturating_add(amount) > limit {
            return Err(Refused::Exhausted {
                key: key.to_owned(),
                used: counter.used,
                limit,
                amount,
                retry_after_ms: counter.window_start.saturating_add(window_ms) - now,
            });
        }
        counter.used += amount;
        Ok(Reservation {
            key: key.to_owned(),
            amount,
            window_start: counter.window_start,
            used: counter.used,
        })
    }

    fn settle(&self, reservation: Reservation, used: u64) {
        let now = self.clock.now_ms();
        let mut counters = lock(&self.counters);
        let Some(counter) = counters.get_mut(&reservation.key) else {
            return;
        };
        InProcess::current(counter, now);
        if counter.window_start == reservation.window_start {
            counter.used = counter
                .used
                .saturating_sub(reservation.amount)
                .saturating_add(used);
        } else {
            counter.used = counter
                .used
                .saturating_add(used.saturating_sub(reservation.amount));
        }
    }

    fn counter(&self, key: &str) -> Result<u64, Refused> {
        let now = self.clock.now_ms();
        let mut counters = lock(&self.counters);
        Ok(counters.get_mut(key).map_or(0, |c| {
            InProcess::current(c, now);
            c.used
        }))
    }

    fn put(&self, key: &str, value: Bytes, ttl: Duration) -> Result<(), Refused> {
        let now = self.clock.now_ms();
        let mut values = lock(&self.values);
        let size = key.len() + value.len();
        if !values.fits(key, size, &self.limits) {
            values.sweep(now);
            if !values.fits(key, size, &self.limits) {
                return Err(Refused::Full(values.entries.len()));
            }
        }
        values.remove(key);
        values.bytes += size;
        values
            .entries
            .insert(key.to_owned(), (value, now.saturating_add(millis(ttl))));
        Ok(())
    }

    fn get(&self, key: &str) -> Result<Option<Bytes>, Refused> {
        let now = self.clock.now_ms();
        let mut values = lock(&self.values);
        Ok(match values.entries.get(key) {
            Some((value, expires)) if *expires > now => Some(value.clone()),
            Some(_) => {
                values.remove(key);
                None
            }
            None => None,
        })
    }

    fn delete(&self, key: &str) -> Result<bool, Refused> {
        let now = self.clock.now_ms();
        let removed = lock(&self.values).remove(key);
        Ok(removed.is_some_and(|(_, expires)| expires > now))
    }

    fn append(&self, log: &str, entry: Bytes) -> Result<u64, Refused> {
        let mut logs = lock(&self.logs);
        if !logs.contains_key(log) && logs.len() >= self.limits.max_keys {
            return Err(Refused::Full(self.limits.max_keys));
        }
        let log = logs.entry(log.to_owned()).or_insert(Log {
            first: 0,
            entries: VecDeque::new(),
        });
        if log.entries.len() >= self.limits.log_capacity.max(1) {
            log.entries.pop_front();
            log.first += 1;
        }
        log.entries.push_back(entry);
        Ok(log.first + log.entries.len() as u64 - 1)
    }

    fn read(&self, log: &str, from: u64, max: usize) -> Result<Vec<(u64, Bytes)>, Refused> {
        let logs = lock(&self.logs);
        let Some(log) = logs.get(log) else {
            return Ok(Vec::new());
        };
        let skip = usize::try_from(from.saturating_sub(log.first)).unwrap_or(usize::MAX);
        Ok(log
            .entries
            .iter()
            .enumerate()
            .skip(skip)
            .take(max)
            .map(|(i, e)| (log.first + i as u64, e.clone()))
            .collect())
    }

    fn decaying_add(
        &self,
        key: &str,
        amount: f64,
        half_life: Duration,
        ttl: Duration,
    ) -> Result<f64, Refused> {
        let now = self.clock.now_ms();
        let mut sums = lock(&self.sums);
        let held = match sums.get(key) {
            Some(d) if d.expires > now => Some(*d),
            Some(_) => {
                sums.remove(key);
                None
            }
            None => None,
        };
        let current = held.map_or(0.0, |d| decayed(d.sum, now.saturating_sub(d.at), half_life));
        if amount == 0.0 || !amount.is_finite() {
            return Ok(current);
        }
        if held.is_none() && sums.len() >= self.limits.max_keys {
            sums.retain(|_, d| d.expires > now);
            if sums.len() >= self.limits.max_keys {
                return Err(Refused::Full(self.limits.max_keys));
            }
        }
        let sum = current + amount;
        sums.insert(
            key.to_owned(),
            Decaying {
                sum,
                at: now,
                expires: now.saturating_add(millis(ttl)),
            },
        );
        Ok(sum)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU64, Ordering};

    fn store(limits: Limits) -> (Arc<crate::ManualClock>, InProcess) {
        let clock = Arc::new(crate::ManualClock::default());
        (Arc::clone(&clock), InProcess::new(clock, limits))
    }

    #[test]
    fn reservations_hold_until_settled_and_windows_start_over() {
        let (clock, s) = store(Limits::default());
        let minute = Duration::from_secs(60);
        let a = s.reserve("tenant", 600, 1000, minute).unwrap();
        let refused = s.reserve("tenant", 600, 1000, minute).unwrap_err();
        assert!(
            matches!(
                refused,
                Refused::Exhausted {
                    used: 600,
                    retry_after_ms: 60_000,
                    ..
                }
            ),
            "{refused}"
        );
        s.settle(a, 150); // the answer was shorter than reserved: 450 come back
        assert_eq!(s.counter("tenant").unwrap(), 150);
        let b = s.reserve("tenant", 600, 1000, minute).unwrap();
        clock.set(61_000);
        assert_eq!(s.counter("tenant").unwrap(), 0, "a new window");
        s.settle(b, 700); // settled late: only the overrun lands in the new window
        assert_eq!(s.counter("tenant").unwrap(), 100);
    }

    #[test]
    fn concurrent_reservations_never_pass_the_limit() {
        let (_, s) = store(Limits::default());
        let s = Arc::new(s);
        let granted = Arc::new(AtomicU64::new(0));
        let threads: Vec<_> = (0..8)
            .map(|_| {
                let (s, granted) = (Arc::clone(&s), Arc::clone(&granted));
                std::thread::spawn(move || {
                    for _ in 0..100 {
                        if s.reserve("k", 3, 1000, Duration::from_secs(60)).is_ok() {
                            granted.fetch_add(3, Ordering::SeqCst);
                        }
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        assert_eq!(granted.load(Ordering::SeqCst), 999);
        assert_eq!(s.counter("k").unwrap(), 999);
    }

    #[test]
    fn decaying_sums_halve_every_half_life_and_reads_create_nothing() {
        let (clock, s) = store(Limits {
            max_keys: 1,
            log_capacity: 1,
            ..Limits::default()
        });
        let (hour, day) = (Duration::from_secs(3600), Duration::from_secs(86_400));
        assert_eq!(s.decaying_add("a", 0.0, hour, day).unwrap(), 0.0);
        assert_eq!(s.decaying_add("a", 2.0, hour, day).unwrap(), 2.0);
        clock.set(3_600_000);
        assert!((s.decaying_add("a", 0.0, hour, day).unwrap() - 1.0).abs() < 1e-9);
        assert!((s.decaying_add("a", 1.0, hour, day).unwrap() - 2.0).abs() < 1e-9);
        // A read of a key not held makes no room for it; an addition finds none.
        assert_eq!(s.decaying_add("b", 0.0, hour, day).unwrap(), 0.0);
        assert!(matches!(
            s.decaying_add("b", 1.0, hour, day),
            Err(Refused::Full(1))
        ));
        // Left a whole ttl without additions, it goes, and makes room.
        clock.set(3_600_000 + 86_400_000);
        assert_eq!(s.decaying_add("a", 0.0, hour, day).unwrap(), 0.0);
        assert_eq!(s.decaying_add("b", 1.0, hour, day).unwrap(), 1.0);
    }

    #[test]
    fn values_are_bounded_in_bytes_and_deletes_free_them() {
        let (clock, s) = store(Limits {
            max_value_bytes: 10,
            ..Limits::default()
        });
        let hold = |n: usize| Bytes::from(vec![b'x'; n]);
        s.put("a", hold(4), Duration::from_millis(100)).unwrap();
        s.put("b", hold(4), Duration::from_secs(1)).unwrap();
        assert!(matches!(
            s.put("c", hold(4), Duration::from_secs(1)),
            Err(Refused::Full(2))
        ));
        // Replacing a value counts only the difference.
        s.put("b", hold(3), Duration::from_secs(1)).unwrap();
        clock.set(200);
        s.put("c", hold(3), Duration::from_secs(1)).unwrap();
        assert!(s.delete("b").unwrap());
        assert!(!s.delete("b").unwrap());
        s.put("d", hold(5), Duration::from_secs(1)).unwrap();
        assert_eq!(s.get("d").unwrap().map(|v| v.len()), Some(5));
    }

    #[test]
    fn values_expire_and_logs_keep_the_newest_entries() {
        let (clock, s) = store(Limits {
            max_keys: 2,
            log_capacity: 3,
            ..Limits::default()
        });
        s.put("a", Bytes::from_static(b"1"), Duration::from_millis(100))
            .unwrap();
        s.put("b", Bytes::from_static(b"2"), Duration::from_millis(500))
            .unwrap();
        assert_eq!(s.get("a").unwrap().as_deref(), Some(&b"1"[..]));
        assert!(matches!(
            s.put("c", Bytes::new(), Duration::from_secs(1)),
            Err(Refused::Full(2))
        ));
        clock.set(200);
        assert_eq!(s.get("a").unwrap(), None, "expired");
        s.put("c", Bytes::from_static(b"3"), Duration::from_secs(1))
            .unwrap();
        assert_eq!(
            s.get("c").unwrap().as_deref(),
            Some(&b"3"[..]),
            "room made by sweeping the expired"
        );

        for i in 0..5u8 {
            assert_eq!(
                s.append("feedback", Bytes::from(vec![i])).unwrap(),
                u64::from(i)
            );
        }
        let kept: Vec<u64> = s
            .read("feedback", 0, 10)
            .unwrap()
            .into_iter()
            .map(|(n, _)| n)
            .collect();
        assert_eq!(kept, [2, 3, 4], "the oldest went");
        assert_eq!(s.read("feedback", 3, 1).unwrap()[0].1.as_ref(), &[3]);
        assert!(s.read("nothing", 0, 10).unwrap().is_empty());
    }
}
