//! Endpoint health: passive outlier ejection with exponential backoff (a circuit
//! breaker per endpoint) and active checks.
//!
//! An endpoint that fails `eject_after_failures` times in a row is ejected for
//! `base_ejection_ms · 2^(k−1)` (k = how many times in a row it has been ejected,
//! capped at `max_ejection_ms`). When the time is up it takes traffic again
//! (half-open): one more failure ejects it at once for longer; a success closes the
//! breaker and resets the backoff.
//!
//! Active checks are judged apart, as in most proxies: a failed check (refused,
//! timed out, 5xx) takes the endpoint out until a check passes. Whether a passing
//! check also ends a passive ejection early is `check_ends_ejection`: by default
//! (`recovered`) it does when a check failed since the ejection began (the endpoint
//! was down and is back: a gateway started before its upstreams, an engine restarted),
//! so recovery takes one check interval rather than the backoff; an endpoint that
//! answers its health path throughout but fails requests stays out for its ejection
//! time. An ejection ended by a check leaves the breaker half-open: one more failure
//! ejects again, for longer.

use serde::Serialize;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use switchyard_policy::{CheckEndsEjection, HealthConfig};

/// The ejection thresholds.
#[derive(Debug, Clone, Copy)]
pub struct HealthPolicy {
    /// Consecutive failures that eject.
    pub eject_after_failures: u32,
    /// First ejection, in milliseconds.
    pub base_ejection_ms: u64,
    /// Longest ejection, in milliseconds.
    pub max_ejection_ms: u64,
    /// Share of a pool's endpoints in rotation below which the pool uses them all.
    pub panic_threshold: f64,
    /// When a passing active check ends a passive ejection.
    pub check_ends_ejection: CheckEndsEjection,
}

impl From<&HealthConfig> for HealthPolicy {
    fn from(c: &HealthConfig) -> Self {
        HealthPolicy {
            eject_after_failures: c.eject_after_failures.max(1),
            base_ejection_ms: c.base_ejection_ms,
            max_ejection_ms: c.max_ejection_ms.max(c.base_ejection_ms),
            panic_threshold: if c.panic_threshold.is_finite() {
                c.panic_threshold.clamp(0.0, 1.0)
            } else {
                0.0
            },
            check_ends_ejection: c.check_ends_ejection,
        }
    }
}

/// The health of one endpoint. Times are milliseconds on the pools' clock.
#[derive(Debug, Default)]
pub struct Health {
    consecutive_failures: AtomicU32,
    ejections_in_a_row: AtomicU32,
    ejected_until_ms: AtomicU64,
    failures: AtomicU64,
    ejections: AtomicU64,
    check_down: AtomicBool,
    /// A check failed since the current ejection began.
    down_while_ejected: AtomicBool,
}

/// A snapshot for `GET /v1/pools`.
#[derive(Debug, Clone, Serialize)]
pub struct HealthSnapshot {
    /// Whether it takes traffic now.
    pub available: bool,
    /// Milliseconds until it returns, when ejected.
    pub ejected_for_ms: u64,
    /// Failures in a row.
    pub consecutive_failures: u32,
    /// Failures since start.
    pub failures: u64,
    /// Ejections since start.
    pub ejections: u64,
    /// Whether the last active check failed.
    pub check_failed: bool,
}

impl Health {
    /// Whether the endpoint takes traffic at `now_ms`.
    pub fn available(&self, now_ms: u64) -> bool {
        now_ms >= self.ejected_until_ms.load(Ordering::Relaxed)
            && !self.check_down.load(Ordering::Relaxed)
    }

    /// Records an active check's verdict at `now_ms`. Returns whether it ended a
    /// passive ejection.
    pub fn checked(&self, alive: bool, now_ms: u64, policy: &HealthPolicy) -> bool {
        self.check_down.store(!alive, Ordering::Relaxed);
        let ejected = now_ms < self.ejected_until_ms.load(Ordering::Relaxed);
        if !ejected {
            return false;
        }
        if !alive {
            self.down_while_ejected.store(true, Ordering::Relaxed);
            return false;
        }
        let ends = match policy.check_ends_ejection {
            CheckEndsEjection::Always => true,
            CheckEndsEjection::Recovered => self.down_while_ejected.load(Ordering::Relaxed),
            CheckEndsEjection::Never => false,
        };
        if ends {
            // Half-open: ejections_in_a_row stays, so one more failure ejects again.
            self.consecutive_failures.store(0, Ordering::Relaxed);
            self.ejected_until_ms.store(0, Ordering::Relaxed);
            self.down_while_ejected.store(false, Ordering::Relaxed);
        }
        ends
    }

    /// A request succeeded: close the breaker.
    pub fn success(&self) {
        if self.consecutive_failures.load(Ordering::Relaxed) != 0 {
            self.consecutive_failures.store(0, Ordering::Relaxed);
        }
        if self.ejections_in_a_row.load(Ordering::Relaxed) != 0 {
            self.ejections_in_a_row.store(0, Ordering::Relaxed);
            self.ejected_until_ms.store(0, Ordering::Relaxed);
        }
    }

    /// A request failed at `now_ms`. Returns whether this failure ejected the endpoint.
    pub fn failure(&self, now_ms: u64, policy: &HealthPolicy) -> bool {
        self.failures.fetch_add(1, Ordering::Relaxed);
        let in_a_row = self.consecutive_failures.fetch_add(1, Ordering::Relaxed) + 1;
        let half_open = self.ejections_in_a_row.load(Ordering::Relaxed) > 0;
        if in_a_row < policy.eject_after_failures && !half_open {
            return false;
        }
        if now_ms < self.ejected_until_ms.load(Ordering::Relaxed) {
            return false; // already out; a late failure from before the ejection
        }
        let k = self
            .ejections_in_a_row
            .fetch_add(1, Ordering::Relaxed)
            .min(20);
        let duration = policy
            .base_ejection_ms
            .saturating_mul(1 << k)
            .min(policy.max_ejection_ms);
        self.ejected_until_ms
            .store(now_ms.saturating_add(duration), Ordering::Relaxed);
        // A check that already failed counts: the endpoint is down as it is ejected.
        self.down_while_ejected
            .store(self.check_down.load(Ordering::Relaxed), Ordering::Relaxed);
        self.ejections.fetch_add(1, Ordering::Relaxed);
        true
    }

    /// A snapshot at `now_ms`.
    pub fn snapshot(&self, now_ms: u64) -> HealthSnapshot {
        let until = self.ejected_until_ms.load(Ordering::Relaxed);
        let check_failed = self.check_down.load(Ordering::Relaxed);
        HealthSnapshot {
            available: now_ms >= until && !check_failed,
            ejected_for_ms: until.saturating_sub(now_ms),
            consecutive_failures: self.consecutive_failures.load(Ordering::Relaxed),
            failures: self.failures.load(Ordering::Relaxed),
            ejections: self.ejections.load(Ordering::Relaxed),
            check_failed,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const POLICY: HealthPolicy = HealthPolicy {
        eject_after_failures: 3,
        base_ejection_ms: 100,
        max_ejection_ms: 350,
        panic_threshold: 0.5,
        check_ends_ejection: CheckEndsEjection::Recovered,
    };

    #[test]
    fn ejects_after_consecutive_failures_with_doubling_backoff() {
        let h = Health::default();
        assert!(!h.failure(0, &POLICY));
        h.success();
        assert!(!h.failure(0, &POLICY));
        assert!(!h.failure(0, &POLICY));
        assert!(h.failure(10, &POLICY), "third failure in a row ejects");
        assert!(!h.available(109));
        assert!(h.available(110));
        // Half-open: one failure ejects again, for twice as long.
        assert!(h.failure(110, &POLICY));
        assert!(!h.available(309));
        assert!(h.available(310));
        assert!(h.failure(310, &POLICY));
        assert_eq!(h.snapshot(310).ejected_for_ms, 350, "capped at the maximum");
        let snap = h.snapshot(310);
        assert_eq!((snap.failures, snap.ejections), (6, 3));
    }

    #[test]
    fn a_failed_check_takes_the_endpoint_out_until_one_passes() {
        let h = Health::default();
        h.checked(false, 0, &POLICY);
        assert!(!h.available(0));
        assert!(!h.snapshot(0).available);
        h.checked(true, 0, &POLICY);
        assert!(h.available(0));
        // A passing check alone does not end a passive ejection: the endpoint
        // answered its health path throughout.
        for _ in 0..3 {
            h.failure(0, &POLICY);
        }
        assert!(!h.checked(true, 10, &POLICY));
        assert!(!h.available(50));
        assert!(h.available(100));
    }

    #[test]
    fn a_check_passing_after_one_failed_ends_the_ejection_early() {
        let h = Health::default();
        for _ in 0..3 {
            h.failure(0, &POLICY);
        }
        // Down: the check fails while ejected; then it is back.
        assert!(!h.checked(false, 20, &POLICY));
        assert!(!h.available(30));
        assert!(h.checked(true, 40, &POLICY), "back at the next check");
        assert!(h.available(40), "not at the end of the backoff (100)");
        // Half-open: one failure ejects again, for twice as long.
        assert!(h.failure(50, &POLICY));
        assert_eq!(h.snapshot(50).ejected_for_ms, 200);
        // A check that had already failed when the ejection began counts too.
        let h = Health::default();
        h.checked(false, 0, &POLICY);
        for _ in 0..3 {
            h.failure(0, &POLICY);
        }
        assert!(h.checked(true, 10, &POLICY));
        assert!(h.available(10));
    }

    #[test]
    fn the_rule_can_be_always_or_never() {
        let always = HealthPolicy {
            check_ends_ejection: CheckEndsEjection::Always,
            ..POLICY
        };
        let never = HealthPolicy {
            check_ends_ejection: CheckEndsEjection::Never,
            ..POLICY
        };
        let h = Health::default();
        for _ in 0..3 {
            h.failure(0, &always);
        }
        assert!(h.checked(true, 10, &always));
        assert!(h.available(10));
        let h = Health::default();
        for _ in 0..3 {
            h.failure(0, &never);
        }
        h.checked(false, 10, &never);
        assert!(!h.checked(true, 20, &never));
        assert!(!h.available(20));
        assert!(h.available(100));
    }

    #[test]
    fn success_closes_the_breaker_and_resets_the_backoff() {
        let h = Health::default();
        for _ in 0..3 {
            h.failure(0, &POLICY);
        }
        assert!(!h.available(50));
        h.success();
        assert!(
            h.available(50),
            "a success (a half-open trial) closes the breaker"
        );
        for _ in 0..2 {
            assert!(!h.failure(60, &POLICY));
        }
        assert!(h.failure(60, &POLICY));
        assert_eq!(h.snapshot(60).ejected_for_ms, 100, "backoff starts over");
    }
}
