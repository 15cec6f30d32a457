//! Session stickiness: which model served each session's last turn, and whether a
//! route's new choice is worth the prefix cache a switch loses.

use std::collections::{HashMap, VecDeque};
use std::sync::{Mutex, PoisonError};
use switchyard_policy::StickyConfig;

/// Sessions remembered at most; the least recently served is forgotten first.
pub const CAPACITY: usize = 65_536;
/// A session not served for this long is forgotten, in milliseconds.
pub const TTL_MS: u64 = 3_600_000;

#[derive(Debug, Default)]
struct Inner {
    /// Session key → (model, last served, sequence number of that turn).
    sessions: HashMap<u64, (Box<str>, u64, u64)>,
    /// (session key, sequence number), oldest first; stale entries are skipped.
    order: VecDeque<(u64, u64)>,
    seq: u64,
}

/// The model that served each session's last turn (bounded by [`CAPACITY`] and
/// [`TTL_MS`]). Kept across policy reloads.
#[derive(Debug, Default)]
pub struct SessionModels {
    inner: Mutex<Inner>,
}

impl SessionModels {
    /// The model that served `session`'s last turn, if within [`TTL_MS`] of `now_ms`.
    pub fn get(&self, session: u64, now_ms: u64) -> Option<String> {
        let inner = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        let (model, at, _) = inner.sessions.get(&session)?;
        (now_ms.saturating_sub(*at) <= TTL_MS).then(|| model.to_string())
    }

    /// Records that `model` served `session` at `now_ms`.
    pub fn served(&self, session: u64, model: &str, now_ms: u64) {
        let mut inner = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        inner.seq += 1;
        let seq = inner.seq;
        inner.sessions.insert(session, (model.into(), now_ms, seq));
        inner.order.push_back((session, seq));
        // Forget the least recently served beyond capacity, and the expired; entries of
        // `order` overtaken by a later turn are dropped as they come up.
        while let Some(&(key, at_seq)) = inner.order.front() {
            let current = inner.sessions.get(&key).map(|(_, at, s)| (*at, *s));
            match current {
                Some((_, s)) if s != at_seq => {
                    inner.order.pop_front();
                }
                Some((at, _))
                    if inner.sessions.len() > CAPACITY || now_ms.saturating_sub(at) > TTL_MS =>
                {
                    inner.order.pop_front();
                    inner.sessions.remove(&key);
                }
                None => {
                    inner.order.pop_front();
                }
                Some(_) => break,
            }
        }
        // Turns of sessions served again leave stale entries behind the front one:
        // rebuilt from the map when they outnumber it, so the queue stays bounded.
        if inner.order.len() > 2 * CAPACITY.max(inner.sessions.len()) {
            let mut live: Vec<(u64, u64)> = inner
                .sessions
                .iter()
                .map(|(key, (_, _, seq))| (*key, *seq))
                .collect();
            live.sort_by_key(|(_, seq)| *seq);
            inner.order = live.into();
        }
    }

    /// Sessions remembered.
    pub fn len(&self) -> usize {
        self.inner
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .sessions
            .len()
    }

    /// Whether none is.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// One side of a switch: what the route knows of a candidate for this request.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Side {
    /// Quality on the 0–1 scale (measured, else configured), when known.
    pub quality: Option<f64>,
    /// Estimated dollars for the request, when priced.
    pub cost: Option<f64>,
    /// Predicted time to first token, in milliseconds, when known.
    pub ttft_ms: Option<f64>,
}

/// What weighing a switch found.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Weighed {
    /// Whether to switch to the new choice.
    pub switch: bool,
    /// Milliseconds of prefill the switch costs.
    pub cost_ms: f64,
    /// Milliseconds it gains.
    pub gain_ms: f64,
}

/// Weighs moving a session from `incumbent` to `chosen`: the cost is prefilling
/// `recomputed` prompt tokens at `prefill_per_s`; the gain the TTFT difference (when
/// both are predicted) plus the quality and price differences at the configured rates.
/// With `escalate_only`, a switch is made exactly when the new model's quality is
/// higher.
pub fn weigh(
    config: &StickyConfig,
    incumbent: Side,
    chosen: Side,
    recomputed: u32,
    prefill_per_s: f64,
) -> Weighed {
    let cost_ms = if prefill_per_s > 0.0 {
        f64::from(recomputed) / prefill_per_s * 1000.0
    } else {
        0.0
    };
    let both = |a: Option<f64>, b: Option<f64>| a.zip(b);
    let ttft = both(incumbent.ttft_ms, chosen.ttft_ms).map_or(0.0, |(i, c)| i - c);
    let quality = both(incumbent.quality, chosen.quality).map_or(0.0, |(i, c)| c - i);
    let saving = both(incumbent.cost, chosen.cost)
        .filter(|(i, c)| i.is_finite() && c.is_finite())
        .map_or(0.0, |(i, c)| i - c);
    let gain_ms = ttft + config.quality_ms * quality + config.dollar_ms * saving;
    let switch = if config.escalate_only {
        quality > 0.0
    } else {
        gain_ms > cost_ms
    };
    Weighed {
        switch,
        cost_ms,
        gain_ms,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn side(quality: f64, cost: f64, ttft: f64) -> Side {
        Side {
            quality: Some(quality),
            cost: Some(cost),
            ttft_ms: Some(ttft),
        }
    }

    #[test]
    fn a_switch_must_gain_more_than_the_prefill_it_costs() {
        let config = StickyConfig::default();
        // 4,000 tokens at 20,000 tokens/s: 200 ms to recompute.
        let same = weigh(
            &config,
            side(0.8, 0.01, 100.0),
            side(0.8, 0.01, 100.0),
            4000,
            20_000.0,
        );
        assert!(!same.switch);
        assert!((same.cost_ms - 200.0).abs() < 1e-9);
        // 0.1 of quality is worth 100 ms: not enough; 0.3 is.
        let a_bit = weigh(
            &config,
            side(0.7, 0.01, 100.0),
            side(0.8, 0.01, 100.0),
            4000,
            20_000.0,
        );
        assert!(!a_bit.switch && (a_bit.gain_ms - 100.0).abs() < 1e-9);
        let much = weigh(
            &config,
            side(0.5, 0.01, 100.0),
            side(0.8, 0.01, 100.0),
            4000,
            20_000.0,
        );
        assert!(much.switch);
        // A pool 500 ms faster to the first token is worth the switch.
        let faster = weigh(
            &config,
            side(0.8, 0.01, 600.0),
            side(0.8, 0.01, 100.0),
            4000,
            20_000.0,
        );
        assert!(faster.switch);
        // A short session costs little to move.
        assert!(
            weigh(
                &config,
                side(0.7, 0.01, 100.0),
                side(0.8, 0.01, 100.0),
                100,
                20_000.0
            )
            .switch
        );
        // Price counts only at a rate.
        let cheaper = |dollar_ms| {
            let config = StickyConfig {
                dollar_ms,
                ..StickyConfig::default()
            };
            weigh(
                &config,
                side(0.8, 0.05, 100.0),
                side(0.8, 0.01, 100.0),
                4000,
                20_000.0,
            )
            .switch
        };
        assert!(!cheaper(0.0));
        assert!(cheaper(10_000.0), "4 cents at 10 s a dollar is 400 ms");
    }

    #[test]
    fn escalate_only_moves_up_never_down() {
        let config = StickyConfig {
            escalate_only: true,
            dollar_ms: 1e9,
            ..StickyConfig::default()
        };
        let up = weigh(
            &config,
            side(0.6, 0.01, 100.0),
            side(0.9, 0.05, 100.0),
            9000,
            1000.0,
        );
        assert!(up.switch, "up, whatever it costs");
        let down = weigh(
            &config,
            side(0.9, 0.05, 100.0),
            side(0.6, 0.01, 100.0),
            10,
            1e6,
        );
        assert!(!down.switch, "never down, whatever it saves");
        let level = weigh(
            &config,
            side(0.9, 0.05, 100.0),
            side(0.9, 0.01, 100.0),
            10,
            1e6,
        );
        assert!(!level.switch);
    }

    #[test]
    fn sessions_are_bounded_and_expire() {
        let s = SessionModels::default();
        s.served(1, "a", 0);
        s.served(1, "b", 10);
        assert_eq!(s.get(1, 20).as_deref(), Some("b"));
        assert_eq!(s.get(1, 10 + TTL_MS + 1), None, "expired");
        for k in 0..(CAPACITY as u64 + 10) {
            s.served(100 + k, "a", 50);
        }
        assert_eq!(s.len(), CAPACITY);
        assert_eq!(s.get(100, 60), None, "the least recently served went first");
        assert_eq!(s.get(100 + CAPACITY as u64 + 9, 60).as_deref(), Some("a"));
        // An expired session is dropped when a later one is served.
        s.served(7, "a", 60 + TTL_MS + 1);
        assert!(s.len() < CAPACITY);
        // One session served over and over behind an older one keeps the queue bounded.
        let s = SessionModels::default();
        s.served(1, "a", 0);
        for t in 0..(3 * CAPACITY as u64) {
            s.served(2, "b", t / 1000);
        }
        assert!(s.inner.lock().unwrap().order.len() <= 2 * CAPACITY + 1);
        assert_eq!(s.get(1, 10).as_deref(), Some("a"));
    }
}
