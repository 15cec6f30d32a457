//! The outcome store: the answers the gateway gave, remembered for a while so that
//! what is learned of them later (the client's feedback, a complaint in the session's
//! next turn) is joined to the decision that made them, and the per-arm tallies the
//! learning selection algorithms read.
//!
//! An *arm* is one (route, model, bucket): the bucket is what a route counts outcomes
//! by besides route and model (the request's predicted domain, or nothing). Each arm
//! keeps discounted sums of scores (`good`) and of their complements (`bad`): at every
//! new outcome the older ones keep `discount` of their weight. An answer is counted
//! once, with its implicit score (what the gateway saw: a whole answer, a truncated
//! one, an upstream failure); feedback or a complaint that comes later replaces that
//! score in place, weighted as it would have been had it been known at once.
//!
//! Everything is bounded: `capacity` answers (the oldest forgotten first, and any
//! older than `ttl_s`), [`MAX_ARMS`] arms. Answers are keyed by their request id *and*
//! the caller's credential, so a client can neither rate nor overwrite another's.

use crate::reputation::{Drift, Rate, Reputation};
use serde::Serialize;
use std::collections::{HashMap, VecDeque};
use std::hash::{BuildHasher, Hash, Hasher, RandomState};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use switchyard_policy::{ImplicitScores, OutcomesConfig};

/// The route name Elo ratings are kept under: they belong to models, whatever route
/// their answers were compared on.
pub const ELO_ROUTE: &str = "*";

/// Comparisons remembered per answer (for idempotency): more are refused.
pub const MAX_COMPARED: usize = 16;

/// Arms kept at most; outcomes of arms beyond are not counted (and are counted in
/// `switchyard_outcomes_dropped_total{what="arm"}`).
pub const MAX_ARMS: usize = 65_536;

/// What the gateway saw of an answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Implicit {
    /// A whole answer.
    Ok,
    /// An answer cut by its `max_tokens`.
    Truncated,
    /// A whole answer slower to its first token than `implicit.slow_after_ms`.
    Slow,
    /// An upstream error, timeout, stall or cut stream.
    Failed,
    /// Nothing that speaks to the model's quality (the client left, or its own
    /// deadline passed, or the upstream refused the request as invalid): remembered
    /// for feedback, not counted.
    Uncounted,
}

/// The score an implicit outcome counts (`None`: not counted).
pub fn implicit_score(scores: &ImplicitScores, implicit: Implicit) -> Option<f64> {
    match implicit {
        Implicit::Ok => Some(scores.ok),
        Implicit::Truncated => Some(scores.truncated),
        Implicit::Slow => Some(scores.slow),
        Implicit::Failed => Some(scores.failed),
        Implicit::Uncounted => None,
    }
}

/// What a decision log says was learned, in the order it was written, for
/// [`Outcomes::replay`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Replayed<'a> {
    /// An answer and the implicit score it counted.
    Answer {
        /// Its request id.
        request_id: &'a str,
        /// Its route.
        route: &'a str,
        /// Its model.
        model: &'a str,
        /// Its bucket.
        bucket: Option<&'a str>,
        /// The score counted.
        score: f64,
    },
    /// A later score replacing an answer's (feedback or a complaint).
    Rescored {
        /// The answer's request id.
        request_id: &'a str,
        /// The score now counted.
        score: f64,
    },
    /// One Elo game (a preference or a shadow comparison): `model` scored `score`.
    Game {
        /// One model.
        model: &'a str,
        /// The other.
        other: &'a str,
        /// The first one's score: 1 a win, ½ a tie, 0 a loss.
        score: f64,
    },
}

/// What a replay counted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct ReplayCounts {
    /// Answers counted.
    pub answers: u64,
    /// Rescores applied (those of answers no longer held are skipped).
    pub rescored: u64,
    /// Elo games played.
    pub games: u64,
}

/// One answer, as observe records it.
#[derive(Debug, Clone, Copy)]
pub struct Answer<'a> {
    /// Its request id.
    pub request_id: &'a str,
    /// The caller's credential key ([`Outcomes::caller`]).
    pub caller: Option<u64>,
    /// The route, model and bucket it counts for.
    pub route: &'a str,
    /// The model that answered.
    pub model: &'a str,
    /// The bucket (a domain label), when the route counts by one.
    pub bucket: Option<&'a str>,
    /// The domain the request's domain signal predicted, for reputation.
    pub domain: Option<&'a str>,
    /// The route's discount (1 when its algorithm does not learn).
    pub discount: f64,
    /// The session it belongs to, for complaints in the next turn.
    pub session: Option<u64>,
    /// What the gateway saw.
    pub implicit: Implicit,
    /// What the request itself says of the session's previous answer (a
    /// `user_feedback` or `reask` signal that held), when it does.
    pub complaint: Option<&'a str>,
    /// Now, in Unix milliseconds.
    pub now_ms: u64,
}

/// A score given to an earlier answer, for the decision log.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Scored {
    /// The answer's request id.
    pub request_id: String,
    /// Its route.
    pub route: String,
    /// The model that answered.
    pub model: String,
    /// Its bucket.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bucket: Option<String>,
    /// The score now counted, in [0, 1].
    pub score: f64,
    /// The score it replaced (the implicit one), when one was counted.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub replaced: Option<f64>,
    /// Whether this call recorded it (false: feedback was given before, and the first
    /// is kept).
    pub recorded: bool,
}

/// Feedback for one answer.
#[derive(Debug, Clone, PartialEq)]
pub struct Feedback<'a> {
    /// The answer's request id.
    pub request_id: &'a str,
    /// The caller's credential key.
    pub caller: Option<u64>,
    /// The score, in [0, 1].
    pub score: f64,
    /// Now, in Unix milliseconds.
    pub now_ms: u64,
}

/// What one arm has learned.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct ArmStats {
    /// Discounted sum of scores.
    pub good: f64,
    /// Discounted sum of the scores' complements.
    pub bad: f64,
    /// Outcomes counted, all time.
    pub outcomes: u64,
    /// Elo rating from pairwise preferences, as points above 1500 (kept on the
    /// route's bucket-less arm).
    pub elo: f64,
    /// Pairwise preferences it took part in.
    pub games: u64,
}

impl ArmStats {
    /// The observed mean score, when there is any weight.
    pub fn mean(&self) -> Option<f64> {
        let total = self.good + self.bad;
        (total > 0.0).then(|| self.good / total)
    }
}

/// One arm, for `GET /v1/outcomes`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ArmSnapshot {
    /// Its route.
    pub route: String,
    /// Its model.
    pub model: String,
    /// Its bucket.
    pub bucket: Option<String>,
    /// What it has learned.
    #[serde(flatten)]
    pub stats: ArmStats,
    /// The observed mean score.
    pub mean: Option<f64>,
}

#[derive(Debug)]
struct Arm {
    route: Box<str>,
    model: Box<str>,
    bucket: Option<Box<str>>,
    stats: ArmStats,
}

impl Arm {
    /// Counts a new score; returns the arm's tick for it.
    fn count(&mut self, score: f64, discount: f64) -> u64 {
        let s = &mut self.stats;
        s.good = s.good * discount + score;
        s.bad = s.bad * discount + (1.0 - score);
        s.outcomes += 1;
        s.outcomes
    }

    /// Replaces a score counted at `tick` with `new`, at the weight it has now.
    fn replace(&mut self, tick: u64, old: f64, new: f64, discount: f64) {
        let s = &mut self.stats;
        let age = s.outcomes.saturating_sub(tick);
        let weight = discount.powi(i32::try_from(age).unwrap_or(i32::MAX));
        s.good = (s.good + weight * (new - old)).max(0.0);
        s.bad = (s.bad + weight * (old - new)).max(0.0);
    }
}

#[derive(Debug)]
struct Decision {
    seq: u64,
    request_id: Box<str>,
    caller: Option<u64>,
    arm: Option<usize>,
    discount: f64,
    session: Option<u64>,
    at_ms: u64,
    /// The score counted and the arm's tick when it was.
    counted: Option<(f64, u64)>,
    /// Feedback was given (the first is kept).
    rated: bool,
    /// Answers it was compared with, preferred or not (at most [`MAX_COMPARED`]).
    compared: Vec<u64>,
    /// The next turn complained of it.
    complained: bool,
    /// Its (model, domain) reputation entry.
    reputation: Option<usize>,
}

#[derive(Debug, Default)]
struct Inner {
    config: OutcomesConfig,
    decisions: HashMap<u64, Decision>,
    order: VecDeque<(u64, u64)>,
    sessions: HashMap<u64, u64>,
    arms: Vec<Arm>,
    arm_ids: HashMap<u64, usize>,
    seq: u64,
    reputation: Reputation,
}

/// The outcome store. Kept across policy reloads.
#[derive(Debug)]
pub struct Outcomes {
    inner: Mutex<Inner>,
    keys: RandomState,
    draws: AtomicU64,
    /// `capacity > 0`, readable without the lock.
    enabled: AtomicBool,
    /// Candidates may be demoted: demotion is on and some (model, domain) is under an
    /// alarm. Select reads it on every request and takes the lock only when it holds.
    demoting: AtomicBool,
}

impl Outcomes {
    /// An empty store.
    pub fn new(config: &OutcomesConfig) -> Outcomes {
        Outcomes {
            inner: Mutex::new(Inner {
                config: config.clone(),
                ..Inner::default()
            }),
            keys: RandomState::new(),
            draws: AtomicU64::new(0),
            enabled: AtomicBool::new(config.capacity > 0),
            demoting: AtomicBool::new(false),
        }
    }

    /// Takes a reloaded configuration (a smaller capacity forgets the oldest at the
    /// next answer).
    pub fn configure(&self, config: &OutcomesConfig) {
        let mut inner = self.lock();
        inner.config = config.clone();
        self.enabled.store(config.capacity > 0, Ordering::Relaxed);
        self.update_demoting(&inner);
    }

    /// Whether answers are remembered at all.
    pub fn enabled(&self) -> bool {
        self.enabled.load(Ordering::Relaxed)
    }

    /// Refreshes [`Outcomes::demoting`] (called with the lock held).
    fn update_demoting(&self, inner: &Inner) {
        let on = inner.config.capacity > 0
            && inner.config.reputation.demote
            && inner.reputation.alarms() > 0;
        self.demoting.store(on, Ordering::Relaxed);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The key of a caller's credential or address (never stored as given).
    pub fn caller(&self, identity: impl Hash) -> u64 {
        self.keys.hash_one(identity)
    }

    /// A fresh number for a selection's random draws.
    pub fn draw(&self) -> u64 {
        self.draws.fetch_add(1, Ordering::Relaxed)
    }

    fn decision_key(&self, request_id: &str, caller: Option<u64>) -> u64 {
        let mut h = self.keys.build_hasher();
        request_id.hash(&mut h);
        caller.hash(&mut h);
        h.finish()
    }

    /// What the arms of `models` on `route` (in `bucket`) have learned, in order.
    pub fn arms(&self, route: &str, models: &[&str], bucket: Option<&str>) -> Vec<ArmStats> {
        let inner = self.lock();
        models
            .iter()
            .map(|m| {
                inner
                    .arm_ids
                    .get(&arm_key(route, m, bucket))
                    .and_then(|&i| inner.arms.get(i))
                    .map(|a| a.stats)
                    .unwrap_or_default()
            })
            .collect()
    }

    /// Every arm, by route, model and bucket.
    pub fn snapshot(&self) -> Vec<ArmSnapshot> {
        let inner = self.lock();
        let mut arms: Vec<ArmSnapshot> = inner
            .arms
            .iter()
            .map(|a| ArmSnapshot {
                route: a.route.to_string(),
                model: a.model.to_string(),
                bucket: a.bucket.as_deref().map(str::to_owned),
                stats: a.stats,
                mean: a.stats.mean(),
            })
            .collect();
        arms.sort_by(|a, b| (&a.route, &a.bucket, &a.model).cmp(&(&b.route, &b.bucket, &b.model)));
        arms
    }

    /// Remembers an answer and counts its implicit score; when the request complains
    /// of the session's previous answer (by the same caller), that answer's score
    /// becomes `implicit.complained`, which is returned for the decision log.
    pub fn record(&self, answer: &Answer<'_>) -> Option<Scored> {
        let key = self.decision_key(answer.request_id, answer.caller);
        let mut guard = self.lock();
        let inner = &mut *guard;
        if inner.config.capacity == 0 {
            return None;
        }
        inner.expire(answer.now_ms);
        let complained = match (answer.session, answer.complaint) {
            (Some(session), Some(_)) => inner.complain(session, key, answer.caller),
            _ => None,
        };
        let arm = inner.arm(answer.route, answer.model, answer.bucket);
        let score = implicit_score(&inner.config.implicit, answer.implicit);
        let counted = match (arm, score) {
            (Some(a), Some(s)) => Some((s, inner.arms[a].count(s, answer.discount))),
            _ => None,
        };
        let reputation = inner.reputation.entry(answer.model, answer.domain);
        if let (Some(r), true) = (reputation, answer.implicit != Implicit::Uncounted) {
            let failed = answer.implicit == Implicit::Failed;
            let config = inner.config.reputation;
            report(inner.reputation.add(r, Rate::Failures, failed, &config));
        }
        inner.seq += 1;
        let seq = inner.seq;
        let decision = Decision {
            seq,
            request_id: answer.request_id.into(),
            caller: answer.caller,
            arm,
            discount: answer.discount,
            session: answer.session,
            at_ms: answer.now_ms,
            counted,
            rated: false,
            complained: false,
            compared: Vec::new(),
            reputation,
        };
        if let Some(old) = inner.decisions.insert(key, decision) {
            inner.forget_session(&old, key);
        }
        inner.order.push_back((key, seq));
        if let Some(session) = answer.session {
            inner.sessions.insert(session, key);
        }
        let mut forgotten = 0u64;
        while inner.decisions.len() > inner.config.capacity {
            if !inner.pop_oldest() {
                break;
            }
            forgotten += 1;
        }
        // The order may hold entries of answers recorded again; keep it bounded too.
        while inner.order.len() > inner.config.capacity.saturating_mul(2) {
            inner.pop_oldest();
        }
        self.update_demoting(inner);
        drop(guard);
        if forgotten > 0 {
            metrics::counter!("switchyard_outcomes_dropped_total", "what" => "answer")
                .increment(forgotten);
        }
        complained
    }

    /// Records feedback for an answer: its score replaces the implicit one. The first
    /// feedback is kept (a repeat returns it with `recorded: false`). `None` when the
    /// answer is not remembered (unknown, expired, forgotten, or another caller's).
    pub fn feedback(&self, feedback: &Feedback<'_>) -> Option<Scored> {
        let key = self.decision_key(feedback.request_id, feedback.caller);
        let mut guard = self.lock();
        let inner = &mut *guard;
        inner.expire(feedback.now_ms);
        let d = inner.decisions.get_mut(&key)?;
        if *d.request_id != *feedback.request_id || d.caller != feedback.caller {
            return None;
        }
        let recorded = !d.rated;
        let replaced = d.counted.map(|(s, _)| s);
        if recorded {
            d.rated = true;
            if let Some(a) = d.arm {
                let arm = &mut inner.arms[a];
                d.counted = Some(match d.counted {
                    Some((old, tick)) => {
                        arm.replace(tick, old, feedback.score, d.discount);
                        (feedback.score, tick)
                    }
                    None => (feedback.score, arm.count(feedback.score, d.discount)),
                });
            } else {
                d.counted = Some((feedback.score, 0));
            }
        }
        let (score, arm) = (d.counted.map_or(feedback.score, |(s, _)| s), d.arm);
        let request_id = d.request_id.to_string();
        if let (true, Some(r)) = (recorded, d.reputation) {
            let config = inner.config.reputation;
            let low = feedback.score < config.low_score;
            report(inner.reputation.add(r, Rate::LowScores, low, &config));
            self.update_demoting(inner);
        }
        Some(inner.scored(request_id, arm, score, replaced, recorded))
    }
}

/// A pairwise preference recorded, for the decision log.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Compared {
    /// The preferred answer's request id.
    pub request_id: String,
    /// The other answer's.
    pub preferred_over: String,
    /// The preferred answer's model.
    pub model: String,
    /// The other answer's model.
    pub other_model: String,
    /// The two models' ratings after it (points above 1500).
    pub elo: [f64; 2],
    /// Whether this call recorded it (false: these two were compared before).
    pub recorded: bool,
}

/// Why a preference could not be recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CompareError {
    /// One of the answers is not remembered for this caller (the `request_id` or
    /// the `preferred_over` one).
    Unknown(&'static str),
    /// They are the same answer.
    Incomparable(&'static str),
    /// The answer was compared with too many others already.
    TooMany,
}

impl Outcomes {
    /// One Elo game between two models' answers to the same request (a shadow
    /// comparison): `score` is `model`'s, 1 a win, ½ a tie, 0 a loss. Returns both
    /// ratings after it (points above 1500); `None` when the store keeps no outcomes or
    /// has no room for the models' arms.
    pub fn elo_game(&self, model: &str, other: &str, score: f64, k: f64) -> Option<[f64; 2]> {
        if !self.enabled() {
            return None;
        }
        let mut guard = self.lock();
        let inner = &mut *guard;
        let ra = inner.arm(ELO_ROUTE, model, None)?;
        let rb = inner.arm(ELO_ROUTE, other, None)?;
        inner.elo_game(ra, rb, score.clamp(0.0, 1.0), k);
        Some([inner.arms[ra].stats.elo, inner.arms[rb].stats.elo])
    }

    /// Rebuilds the arms and Elo ratings from what a decision log recorded, in order:
    /// answers count their scores (with `discount(route)`), later scores replace them
    /// at the weight they have by then, games move ratings. Only the arms are rebuilt:
    /// answers replayed cannot be rated again (their callers' keys do not survive a
    /// restart), and reputation windows start afresh. A rescore is applied while its
    /// answer is among the last `capacity` replayed.
    pub fn replay<'a>(
        &self,
        items: impl IntoIterator<Item = Replayed<'a>>,
        discount: impl Fn(&str) -> f64,
        elo_k: f64,
    ) -> ReplayCounts {
        let mut counts = ReplayCounts::default();
        let mut guard = self.lock();
        let inner = &mut *guard;
        let capacity = inner.config.capacity;
        if capacity == 0 {
            return counts;
        }
        // Request id → (arm, score counted, tick, discount), the last `capacity`.
        let mut held: HashMap<&str, (usize, f64, u64, f64)> = HashMap::new();
        let mut order: VecDeque<&str> = VecDeque::new();
        for item in items {
            match item {
                Replayed::Answer {
                    request_id,
                    route,
                    model,
                    bucket,
                    score,
                } => {
                    let Some(arm) = inner.arm(route, model, bucket) else {
                        continue;
                    };
                    let d = discount(route);
                    let tick = inner.arms[arm].count(score.clamp(0.0, 1.0), d);
                    counts.answers += 1;
                    held.insert(request_id, (arm, score, tick, d));
                    order.push_back(request_id);
                    while held.len() > capacity {
                        match order.pop_front() {
                            Some(old) => {
                                held.remove(old);
                            }
                            None => break,
                        }
                    }
                }
                Replayed::Rescored { request_id, score } => {
                    if let Some((arm, old, tick, d)) = held.get_mut(request_id) {
                        let new = score.clamp(0.0, 1.0);
                        inner.arms[*arm].replace(*tick, *old, new, *d);
                        *old = new;
                        counts.rescored += 1;
                    }
                }
                Replayed::Game {
                    model,
                    other,
                    score,
                } => {
                    if let (Some(a), Some(b)) = (
                        inner.arm(ELO_ROUTE, model, None),
                        inner.arm(ELO_ROUTE, other, None),
                    ) && a != b
                    {
                        inner.elo_game(a, b, score.clamp(0.0, 1.0), elo_k);
                        counts.games += 1;
                    }
                }
            }
        }
        counts
    }

    /// Records that the answer `preferred` was better than `other` (both the
    /// caller's, of any routes): the Elo ratings of their models move by `k` times the
    /// surprise. Ratings are per model, kept on the arm of route [`ELO_ROUTE`]. Answers of one model compare nothing but are recorded. A repeat of the
    /// same pair (either way round) changes nothing.
    pub fn compare(
        &self,
        (preferred, other): (&str, &str),
        caller: Option<u64>,
        k: f64,
        now_ms: u64,
    ) -> Result<Compared, CompareError> {
        let (a, b) = (
            self.decision_key(preferred, caller),
            self.decision_key(other, caller),
        );
        let mut guard = self.lock();
        let inner = &mut *guard;
        inner.expire(now_ms);
        let live = |key: u64, id: &str| {
            inner
                .decisions
                .get(&key)
                .filter(|d| *d.request_id == *id && d.caller == caller)
                .and_then(|d| d.arm)
        };
        let arm_a = live(a, preferred).ok_or(CompareError::Unknown("request_id"))?;
        let arm_b = live(b, other).ok_or(CompareError::Unknown("preferred_over"))?;
        if a == b {
            return Err(CompareError::Incomparable(
                "an answer cannot be preferred over itself",
            ));
        }
        let (model_a, model_b) = (
            inner.arms[arm_a].model.clone(),
            inner.arms[arm_b].model.clone(),
        );
        let seen = inner
            .decisions
            .get(&a)
            .is_some_and(|d| d.compared.contains(&b));
        let full = [a, b].iter().any(|k| {
            inner
                .decisions
                .get(k)
                .is_some_and(|d| d.compared.len() >= MAX_COMPARED)
        });
        if !seen && full {
            return Err(CompareError::TooMany);
        }
        let ra = inner.arm(ELO_ROUTE, &model_a, None);
        let rb = inner.arm(ELO_ROUTE, &model_b, None);
        let recorded = !seen;
        if recorded {
            for (x, y) in [(a, b), (b, a)] {
                if let Some(d) = inner.decisions.get_mut(&x) {
                    d.compared.push(y);
                }
            }
            if let (Some(ra), Some(rb)) = (ra, rb) {
                inner.elo_game(ra, rb, 1.0, k);
            }
        }
        let elo = |r: Option<usize>| r.map_or(0.0, |r| inner.arms[r].stats.elo);
        Ok(Compared {
            request_id: preferred.to_owned(),
            preferred_over: other.to_owned(),
            model: model_a.to_string(),
            other_model: model_b.to_string(),
            elo: [elo(ra), elo(rb)],
            recorded,
        })
    }
}

impl Inner {
    /// One Elo game between arms `ra` and `rb` in which `ra` scored `score` (1 a win,
    /// ½ a tie, 0 a loss): each moves by `k` times the surprise.
    fn elo_game(&mut self, ra: usize, rb: usize, score: f64, k: f64) {
        if ra == rb {
            return;
        }
        let (ea, eb) = (self.arms[ra].stats.elo, self.arms[rb].stats.elo);
        let expected = 1.0 / (1.0 + 10f64.powf((eb - ea) / 400.0));
        let step = k * (score - expected);
        self.arms[ra].stats.elo += step;
        self.arms[rb].stats.elo -= step;
        self.arms[ra].stats.games += 1;
        self.arms[rb].stats.games += 1;
    }

    fn scored(
        &self,
        request_id: String,
        arm: Option<usize>,
        score: f64,
        replaced: Option<f64>,
        recorded: bool,
    ) -> Scored {
        let arm = arm.and_then(|a| self.arms.get(a));
        Scored {
            request_id,
            route: arm.map_or_else(String::new, |a| a.route.to_string()),
            model: arm.map_or_else(String::new, |a| a.model.to_string()),
            bucket: arm.and_then(|a| a.bucket.as_deref().map(str::to_owned)),
            score,
            replaced,
            recorded,
        }
    }

    /// The index of an arm, made when new (none past [`MAX_ARMS`]).
    fn arm(&mut self, route: &str, model: &str, bucket: Option<&str>) -> Option<usize> {
        let key = arm_key(route, model, bucket);
        if let Some(&i) = self.arm_ids.get(&key) {
            return Some(i);
        }
        if self.arms.len() >= MAX_ARMS {
            metrics::counter!("switchyard_outcomes_dropped_total", "what" => "arm").increment(1);
            return None;
        }
        self.arms.push(Arm {
            route: route.into(),
            model: model.into(),
            bucket: bucket.map(Into::into),
            stats: ArmStats::default(),
        });
        self.arm_ids.insert(key, self.arms.len() - 1);
        Some(self.arms.len() - 1)
    }

    /// Gives the session's previous answer the complained score, unless feedback
    /// already rated it or it was another caller's.
    fn complain(&mut self, session: u64, current: u64, caller: Option<u64>) -> Option<Scored> {
        let previous = *self.sessions.get(&session)?;
        if previous == current {
            return None;
        }
        let score = self.config.implicit.complained;
        let d = self.decisions.get_mut(&previous)?;
        if d.rated || d.complained || d.caller != caller {
            return None;
        }
        d.complained = true;
        let replaced = d.counted.map(|(s, _)| s);
        if let Some(a) = d.arm {
            let arm = &mut self.arms[a];
            d.counted = Some(match d.counted {
                Some((old, tick)) => {
                    arm.replace(tick, old, score, d.discount);
                    (score, tick)
                }
                None => (score, arm.count(score, d.discount)),
            });
        }
        let (request_id, arm) = (d.request_id.to_string(), d.arm);
        if let Some(r) = d.reputation {
            let config = self.config.reputation;
            let low = score < config.low_score;
            report(self.reputation.add(r, Rate::LowScores, low, &config));
        }
        Some(self.scored(request_id, arm, score, replaced, true))
    }

    /// Forgets answers older than the time to live.
    fn expire(&mut self, now_ms: u64) {
        let ttl_ms = self.config.ttl_s.saturating_mul(1000);
        while let Some(&(key, seq)) = self.order.front() {
            let live = self
                .decisions
                .get(&key)
                .filter(|d| d.seq == seq)
                .map(|d| d.at_ms);
            match live {
                Some(at) if now_ms.saturating_sub(at) <= ttl_ms => break,
                _ => {
                    self.pop_oldest();
                }
            }
        }
    }

    /// Forgets the oldest entry of the order (and its answer, when it is the one
    /// recorded last under its key); false when the order is empty.
    fn pop_oldest(&mut self) -> bool {
        let Some((key, seq)) = self.order.pop_front() else {
            return false;
        };
        if self.decisions.get(&key).is_some_and(|d| d.seq == seq)
            && let Some(d) = self.decisions.remove(&key)
        {
            self.forget_session(&d, key);
        }
        true
    }

    fn forget_session(&mut self, d: &Decision, key: u64) {
        if let Some(s) = d.session
            && self.sessions.get(&s) == Some(&key)
        {
            self.sessions.remove(&s);
        }
    }
}

/// Reports a drift: a log line and metrics.
fn report(drift: Option<Drift>) {
    let Some(d) = drift else {
        return;
    };
    let direction = if d.rose { "rose" } else { "fell" };
    tracing::warn!(
        model = %d.model, domain = %d.domain, rate = d.rate.name(), now = d.now, mean = d.mean,
        sigma = d.sigma, direction, "reputation drift: a window's rate is beyond 3σ of its history"
    );
    metrics::counter!("switchyard_reputation_drifts_total", "model" => d.model.clone(),
        "domain" => d.domain.clone(), "rate" => d.rate.name(), "direction" => direction)
    .increment(1);
    metrics::gauge!("switchyard_reputation_alarm", "model" => d.model,
        "domain" => d.domain, "rate" => d.rate.name())
    .set(if d.rose { 1.0 } else { 0.0 });
}

impl Outcomes {
    /// Which of `models` are under a reputation alarm in `domain`; `None` (without
    /// taking the lock) when demotion is off or no model is under an alarm.
    pub fn alarmed(&self, models: &[&str], domain: Option<&str>) -> Option<Vec<bool>> {
        if !self.demoting.load(Ordering::Relaxed) {
            return None;
        }
        let inner = self.lock();
        Some(
            models
                .iter()
                .map(|m| inner.reputation.alarmed(m, domain))
                .collect(),
        )
    }

    /// Every (model, domain) reputation, for `GET /v1/outcomes`.
    pub fn reputations(&self) -> Vec<crate::reputation::Entry> {
        self.lock().reputation.entries().to_vec()
    }
}

fn arm_key(route: &str, model: &str, bucket: Option<&str>) -> u64 {
    let mut h = std::hash::DefaultHasher::new();
    (route, model, bucket).hash(&mut h);
    h.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store(capacity: usize) -> Outcomes {
        Outcomes::new(&OutcomesConfig {
            capacity,
            ttl_s: 60,
            ..OutcomesConfig::default()
        })
    }

    fn answer<'a>(id: &'a str, model: &'a str, implicit: Implicit, now_ms: u64) -> Answer<'a> {
        Answer {
            request_id: id,
            caller: Some(1),
            route: "r",
            model,
            bucket: None,
            domain: None,
            discount: 1.0,
            session: None,
            implicit,
            complaint: None,
            now_ms,
        }
    }

    fn rate(
        o: &Outcomes,
        id: &str,
        caller: Option<u64>,
        score: f64,
        now_ms: u64,
    ) -> Option<Scored> {
        o.feedback(&Feedback {
            request_id: id,
            caller,
            score,
            now_ms,
        })
    }

    #[test]
    fn replaying_what_was_logged_rebuilds_the_arms() {
        let live = store(100);
        let ids: Vec<String> = (0..30).map(|i| format!("r{i}")).collect();
        let mut logged = Vec::new();
        for (i, id) in ids.iter().enumerate() {
            let model = if i % 3 == 0 { "a" } else { "b" };
            let implicit = if i % 4 == 0 {
                Implicit::Failed
            } else {
                Implicit::Ok
            };
            let mut a = answer(id, model, implicit, i as u64);
            a.discount = 0.9;
            live.record(&a);
            let score = implicit_score(&ImplicitScores::default(), implicit).unwrap();
            logged.push(Replayed::Answer {
                request_id: id,
                route: "r",
                model,
                bucket: None,
                score,
            });
            if i % 5 == 2 {
                rate(&live, id, Some(1), 0.3, i as u64);
                logged.push(Replayed::Rescored {
                    request_id: id,
                    score: 0.3,
                });
            }
        }
        live.elo_game("a", "b", 1.0, 32.0);
        logged.push(Replayed::Game {
            model: "a",
            other: "b",
            score: 1.0,
        });
        let fresh = store(100);
        let counts = fresh.replay(logged, |_| 0.9, 32.0);
        assert_eq!((counts.answers, counts.rescored, counts.games), (30, 6, 1));
        let (a, b) = (live.snapshot(), fresh.snapshot());
        assert_eq!(a.len(), b.len());
        for (x, y) in a.iter().zip(&b) {
            assert_eq!(
                (&x.route, &x.model, x.stats.outcomes),
                (&y.route, &y.model, y.stats.outcomes)
            );
            assert!((x.stats.good - y.stats.good).abs() < 1e-9, "{x:?} {y:?}");
            assert!((x.stats.bad - y.stats.bad).abs() < 1e-9, "{x:?} {y:?}");
            assert!((x.stats.elo - y.stats.elo).abs() < 1e-9, "{x:?} {y:?}");
        }
        // A rescore of an answer no longer held (beyond capacity) is skipped.
        let small = store(2);
        let replayed = [
            Replayed::Answer {
                request_id: "x",
                route: "r",
                model: "a",
                bucket: None,
                score: 1.0,
            },
            Replayed::Answer {
                request_id: "y",
                route: "r",
                model: "a",
                bucket: None,
                score: 1.0,
            },
            Replayed::Answer {
                request_id: "z",
                route: "r",
                model: "a",
                bucket: None,
                score: 1.0,
            },
            Replayed::Rescored {
                request_id: "x",
                score: 0.0,
            },
            Replayed::Rescored {
                request_id: "z",
                score: 0.0,
            },
        ];
        assert_eq!(small.replay(replayed, |_| 1.0, 32.0).rescored, 1);
    }

    #[test]
    fn feedback_replaces_the_implicit_score_once() {
        let o = store(100);
        o.record(&answer("a", "m", Implicit::Ok, 0));
        o.record(&answer("b", "m", Implicit::Failed, 0));
        assert_eq!(o.arms("r", &["m"], None)[0].good, 1.0);
        let first = rate(&o, "a", Some(1), 0.25, 10).unwrap();
        assert!(first.recorded);
        assert_eq!(first.replaced, Some(1.0));
        assert_eq!((first.route.as_str(), first.model.as_str()), ("r", "m"));
        let stats = o.arms("r", &["m"], None)[0];
        assert_eq!((stats.good, stats.bad, stats.outcomes), (0.25, 1.75, 2));
        // A repeat keeps the first score and changes nothing.
        let again = rate(&o, "a", Some(1), 1.0, 20).unwrap();
        assert!(!again.recorded);
        assert_eq!(again.score, 0.25);
        assert_eq!(o.arms("r", &["m"], None)[0], stats);
        // Another caller, or no caller, cannot rate it.
        assert!(rate(&o, "a", Some(2), 0.0, 20).is_none());
        assert!(rate(&o, "a", None, 0.0, 20).is_none());
        assert!(rate(&o, "zzz", Some(1), 0.0, 20).is_none());
    }

    #[test]
    fn uncounted_answers_count_when_rated() {
        let o = store(100);
        o.record(&answer("a", "m", Implicit::Uncounted, 0));
        assert_eq!(o.arms("r", &["m"], None)[0].outcomes, 0);
        let s = rate(&o, "a", Some(1), 0.0, 1).unwrap();
        assert_eq!(s.replaced, None);
        assert_eq!(o.arms("r", &["m"], None)[0].bad, 1.0);
    }

    #[test]
    fn memory_is_bounded_by_capacity_and_time() {
        let o = store(10);
        let ids: Vec<String> = (0..50).map(|i| format!("id-{i}")).collect();
        for (i, id) in ids.iter().enumerate() {
            o.record(&answer(id, "m", Implicit::Ok, i as u64));
        }
        {
            let inner = o.lock();
            assert_eq!(inner.decisions.len(), 10);
            assert!(inner.order.len() <= 20);
        }
        assert!(rate(&o, "id-39", Some(1), 1.0, 50).is_none(), "forgotten");
        assert!(rate(&o, "id-40", Some(1), 1.0, 50).is_some());
        // Older than the time to live (60 s).
        assert!(rate(&o, "id-41", Some(1), 1.0, 60_000 + 41).is_some());
        assert!(rate(&o, "id-42", Some(1), 1.0, 62_000 + 43).is_none());
        // The same id recorded again many times stays one answer.
        for i in 0..100 {
            o.record(&answer("same", "m", Implicit::Ok, 70_000 + i));
        }
        let inner = o.lock();
        assert_eq!(inner.decisions.len(), 1);
        assert!(inner.order.len() <= 20);
    }

    #[test]
    fn a_complaint_in_the_next_turn_scores_the_previous_answer() {
        let o = store(100);
        let mut first = answer("t1", "m", Implicit::Ok, 0);
        first.session = Some(9);
        o.record(&first);
        // A next turn by another caller does not count against it.
        let mut stranger = answer("x1", "m", Implicit::Ok, 1);
        stranger.session = Some(9);
        stranger.caller = Some(2);
        stranger.complaint = Some("reask.again");
        assert!(o.record(&stranger).is_none());
        let mut second = answer("t2", "other", Implicit::Ok, 2);
        second.session = Some(9);
        o.record(&second);
        let mut third = answer("t3", "other", Implicit::Ok, 3);
        third.session = Some(9);
        third.complaint = Some("user_feedback.wrong");
        let scored = o.record(&third).unwrap();
        assert_eq!(scored.request_id, "t2");
        assert_eq!(scored.score, 0.0);
        assert_eq!(scored.replaced, Some(1.0));
        let arms = o.arms("r", &["m", "other"], None);
        assert_eq!(arms[0].good, 2.0, "t1 and x1 stay whole");
        assert_eq!((arms[1].good, arms[1].bad), (1.0, 1.0));
        // Feedback given before a complaint wins over it.
        let mut fourth = answer("t4", "other", Implicit::Ok, 4);
        fourth.session = Some(9);
        o.record(&fourth);
        rate(&o, "t4", Some(1), 0.9, 5).unwrap();
        let mut fifth = answer("t5", "other", Implicit::Ok, 6);
        fifth.session = Some(9);
        fifth.complaint = Some("reask.again");
        assert!(o.record(&fifth).is_none());
    }

    #[test]
    fn discounting_weighs_a_replaced_score_by_its_age() {
        let o = store(100);
        let mut a = answer("old", "m", Implicit::Ok, 0);
        a.discount = 0.5;
        o.record(&a);
        for i in 0..3 {
            let id = format!("n{i}");
            let mut b = answer(&id, "m", Implicit::Failed, 1);
            b.discount = 0.5;
            o.record(&b);
        }
        // good = 1 · 0.5³; the old answer's score falls to 0 at that weight.
        assert_eq!(o.arms("r", &["m"], None)[0].good, 0.125);
        rate(&o, "old", Some(1), 0.0, 2).unwrap();
        let s = o.arms("r", &["m"], None)[0];
        assert_eq!(s.good, 0.0);
        // bad = 1 + 0.5 + 0.25 from the failures, plus the replaced 0.125.
        assert_eq!(s.bad, 1.75 + 0.125);
    }

    #[test]
    fn preferences_move_elo_ratings_once_per_pair() {
        let o = store(100);
        o.record(&answer("a1", "good", Implicit::Ok, 0));
        o.record(&answer("b1", "poor", Implicit::Ok, 0));
        o.record(&answer("b2", "poor", Implicit::Ok, 0));
        let c = o.compare(("a1", "b1"), Some(1), 32.0, 1).unwrap();
        assert!(c.recorded);
        assert_eq!(c.elo, [16.0, -16.0]);
        // The same pair again, either way round, changes nothing.
        assert!(!o.compare(("a1", "b1"), Some(1), 32.0, 1).unwrap().recorded);
        assert!(!o.compare(("b1", "a1"), Some(1), 32.0, 1).unwrap().recorded);
        // An expected win moves the ratings less.
        let c = o.compare(("a1", "b2"), Some(1), 32.0, 1).unwrap();
        assert!(c.elo[0] > 16.0 && c.elo[0] < 32.0, "{c:?}");
        let arms = o.arms(ELO_ROUTE, &["good", "poor"], None);
        assert_eq!((arms[0].games, arms[1].games), (2, 2));
        assert_eq!(
            o.compare(("a1", "zz"), Some(1), 32.0, 1),
            Err(CompareError::Unknown("preferred_over"))
        );
        assert_eq!(
            o.compare(("a1", "b1"), Some(2), 32.0, 1),
            Err(CompareError::Unknown("request_id"))
        );
        assert!(matches!(
            o.compare(("a1", "a1"), Some(1), 32.0, 1),
            Err(CompareError::Incomparable(_))
        ));
        // Answers of other routes compare too: ratings are the models'.
        let mut other_route = answer("c1", "poor", Implicit::Ok, 0);
        other_route.route = "elsewhere";
        o.record(&other_route);
        assert!(o.compare(("a1", "c1"), Some(1), 32.0, 1).unwrap().recorded);
        // Comparisons per answer are bounded.
        for i in 0..MAX_COMPARED {
            let id = format!("x{i}");
            o.record(&answer(&id, "poor", Implicit::Ok, 0));
            let r = o.compare(("a1", &id), Some(1), 32.0, 1);
            assert_eq!(r.is_ok(), i < MAX_COMPARED - 3, "{i}: {r:?}");
        }
    }

    #[test]
    fn arms_are_bounded() {
        let o = store(10);
        for i in 0..(MAX_ARMS + 5) {
            let model = format!("m{i}");
            o.record(&answer("a", &model, Implicit::Ok, 0));
        }
        assert_eq!(o.lock().arms.len(), MAX_ARMS);
        assert_eq!(o.snapshot().len(), MAX_ARMS);
    }
}
