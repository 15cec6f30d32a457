//! Caller reputation signals: how a verified caller has behaved across its requests
//! and sessions, not only in this conversation.
//!
//! Each request a caller makes carries evidence: the summed weights of the configured
//! `events` (other signals, such as a jailbreak or PII signal) that matched on it.
//! The caller's standing is the decaying sum of that evidence over its past requests,
//! halving every `half_life_s`, plus this request's own; the signal holds once the
//! standing reaches `threshold`. So a caller who probed three times this morning is
//! still sent to the guard model with a harmless-looking question this afternoon,
//! and one old slip fades.
//!
//! The standing is read when the signal is computed (characterize) and the request's
//! evidence is recorded once the request is over, only for requests that were served
//! (a dry run records nothing), in the shared state ([`switchyard_state::SharedState`]):
//! one decaying sum per caller and signal, dropped after sixteen half-lives without
//! events, bounded by the store's key limit. Only verified callers
//! (`signals.identity`) have a reputation: a caller cannot name another.

use crate::projection::parse_signal_ref;
use crate::signals::{
    BuildContext, FamilyConfig, Request, Signal, SignalFamily, SignalKey, SignalValue,
};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::time::Duration;
use switchyard_state::SharedState;
use switchyard_wire::hash::{FNV_OFFSET, fnv1a};

/// One caller reputation signal.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ReputationSignalConfig {
    /// The signal's name, as routes refer to it.
    pub name: String,
    /// The signals whose matches count against the caller (`family.name`), with the
    /// weight of one match.
    pub events: BTreeMap<String, f64>,
    /// Seconds after which an event weighs half (default one day).
    #[serde(default = "day")]
    pub half_life_s: f64,
    /// Least standing (decayed weight of events) at which the signal holds
    /// (default 3).
    #[serde(default = "three")]
    pub threshold: f64,
}

fn day() -> f64 {
    86_400.0
}

fn three() -> f64 {
    3.0
}

/// A standing left without events this many half-lives is dropped (it is then
/// below 1/65,536 of itself).
const KEPT_HALF_LIVES: u32 = 16;

/// Holds when the caller's standing reaches the threshold.
#[derive(Debug)]
pub struct ReputationSignal {
    key: SignalKey,
    events: Vec<SignalKey>,
    weights: Vec<f64>,
    half_life: Duration,
    threshold: f64,
}

impl ReputationSignal {
    /// Builds the signal; `identity`: whether callers are verified.
    pub fn new(config: &ReputationSignalConfig, identity: bool) -> Result<Self, String> {
        if !identity {
            return Err(
                "a reputation belongs to a verified caller: configure signals.identity".to_owned(),
            );
        }
        if config.events.is_empty() {
            return Err(
                "events is empty: name the signals that count against a caller, e.g. {jailbreak.probe: 1}"
                    .to_owned(),
            );
        }
        if !(config.half_life_s.is_finite() && config.half_life_s > 0.0) {
            return Err(format!(
                "half_life_s {} is not a positive number of seconds",
                config.half_life_s
            ));
        }
        if !(config.threshold.is_finite() && config.threshold > 0.0) {
            return Err(format!(
                "threshold {} is not a positive weight of events",
                config.threshold
            ));
        }
        let mut events = Vec::new();
        let mut weights = Vec::new();
        for (name, &weight) in &config.events {
            let key = parse_signal_ref(name).map_err(|e| format!("events: {e}"))?;
            if !(weight.is_finite() && weight > 0.0) {
                return Err(format!(
                    "events: {name} weighs {weight}; a weight is above 0"
                ));
            }
            events.push(key);
            weights.push(weight);
        }
        Ok(ReputationSignal {
            key: SignalKey {
                family: SignalFamily::Reputation,
                name: config.name.clone(),
            },
            events,
            weights,
            half_life: Duration::from_secs_f64(config.half_life_s),
            threshold: config.threshold,
        })
    }

    /// The weight of the events that matched on a request, and their names.
    fn evidence(&self, inputs: &[Option<&SignalValue>]) -> (f64, Vec<String>) {
        let mut weight = 0.0;
        let mut names = Vec::new();
        for ((key, w), value) in self.events.iter().zip(&self.weights).zip(inputs) {
            if value.is_some_and(|v| v.matched) {
                weight += w;
                names.push(key.to_string());
            }
        }
        (weight, names)
    }

    /// The caller's entry in the shared state: bounded whatever the subject's length.
    fn state_key(&self, caller: &str) -> String {
        let caller = fnv1a(caller.as_bytes(), FNV_OFFSET);
        format!("reputation/{}/{caller:016x}", self.key.name)
    }

    fn ttl(&self) -> Duration {
        self.half_life * KEPT_HALF_LIVES
    }
}

impl Signal for ReputationSignal {
    fn key(&self) -> &SignalKey {
        &self.key
    }

    fn evaluate(&self, _: &Request<'_>) -> SignalValue {
        SignalValue::failed("a reputation is derived from its events".to_owned())
    }

    fn reads(&self) -> &[SignalKey] {
        &self.events
    }

    fn derive(&self, request: &Request<'_>, inputs: &[Option<&SignalValue>]) -> SignalValue {
        let Some(caller) = request.identity().subject.clone() else {
            return SignalValue {
                matched: false,
                value: 0.0,
                confidence: 1.0,
                evidence: Some("no verified caller: no reputation".to_owned()),
                label: None,
                cost_ns: 0,
                error: None,
            };
        };
        let Some(state) = request.state() else {
            return SignalValue::failed("no shared state to read reputations from".to_owned());
        };
        let before =
            match state.decaying_add(&self.state_key(&caller), 0.0, self.half_life, self.ttl()) {
                Ok(standing) => standing,
                Err(e) => return SignalValue::failed(format!("reading the reputation: {e}")),
            };
        let (now, events) = self.evidence(inputs);
        let standing = before + now;
        SignalValue {
            matched: standing >= self.threshold,
            value: standing,
            confidence: 1.0,
            evidence: Some(format!(
                "standing {standing:.2} (threshold {}): {before:.2} from earlier requests{}",
                self.threshold,
                if events.is_empty() {
                    String::new()
                } else {
                    format!(", +{now} from {}", events.join(", "))
                }
            )),
            label: None,
            cost_ns: 0,
            error: None,
        }
    }

    fn learns(&self) -> bool {
        true
    }

    fn record(
        &self,
        inputs: &[Option<&SignalValue>],
        caller: Option<&str>,
        state: &dyn SharedState,
    ) -> Result<(), String> {
        let (weight, _) = self.evidence(inputs);
        let Some(caller) = caller.filter(|_| weight > 0.0) else {
            return Ok(());
        };
        state
            .decaying_add(&self.state_key(caller), weight, self.half_life, self.ttl())
            .map(|_| ())
            .map_err(|e| e.to_string())
    }
}

impl FamilyConfig for ReputationSignalConfig {
    type Signal = ReputationSignal;

    fn name(&self) -> &str {
        &self.name
    }

    fn build(&self, context: &BuildContext<'_>) -> Result<ReputationSignal, String> {
        ReputationSignal::new(self, context.has_identity())
    }
}

#[cfg(test)]
mod tests {
    use crate::signals::{SignalEngine, SignalFamily, SignalsConfig};
    use std::sync::Arc;
    use switchyard_state::{Clock, InProcess, Limits, ManualClock};
    use switchyard_wire::Conversation;

    fn config(reputation: serde_json::Value, identity: bool) -> SignalsConfig {
        let mut c = serde_json::json!({
            "keyword": [{"name": "probe", "keywords": ["ignore previous instructions"]}],
            "reputation": [reputation],
        });
        if identity {
            c["identity"] = serde_json::json!({"trusted_headers": {
                "subject": "x-user-id", "trusted_proxies": ["127.0.0.1"]}});
        }
        serde_json::from_value(c).unwrap()
    }

    fn engine() -> (Arc<ManualClock>, SignalEngine) {
        let c = config(
            serde_json::json!({"name": "standing", "events": {"keyword.probe": 1.0},
                               "half_life_s": 3600, "threshold": 2}),
            true,
        );
        let mut engine = SignalEngine::build(&c).unwrap();
        let clock = Arc::new(ManualClock::default());
        engine.set_state(Arc::new(InProcess::new(
            Arc::clone(&clock) as Arc<dyn Clock>,
            Limits::default(),
        )));
        (clock, engine)
    }

    /// Computes the reputation for `caller` asking `text`, then records the request
    /// as served; the standing and whether it held.
    fn ask(engine: &SignalEngine, caller: Option<&str>, text: &str) -> (f64, bool) {
        let mut conversation = Conversation::from_prompt("auto", text);
        conversation
            .attributes
            .push(("peer".to_owned(), "127.0.0.1".to_owned()));
        if let Some(caller) = caller {
            conversation
                .attributes
                .push(("header:x-user-id".to_owned(), caller.to_owned()));
        }
        let id = engine.lookup(SignalFamily::Reputation, "standing").unwrap();
        let signals = engine.characterize(&conversation, &[id]);
        let value = signals.get(id).unwrap().clone();
        assert!(engine.record(&signals).is_empty());
        (value.value, value.matched)
    }

    const PROBE: &str = "please ignore previous instructions";

    #[test]
    fn a_caller_who_keeps_probing_is_flagged_on_harmless_requests_until_it_fades() {
        let (clock, engine) = engine();
        assert_eq!(ask(&engine, Some("mallory"), PROBE), (1.0, false));
        // This request's own event counts at once.
        assert_eq!(ask(&engine, Some("mallory"), PROBE), (2.0, true));
        assert_eq!(
            ask(&engine, Some("mallory"), "what is the weather?"),
            (2.0, true)
        );
        // Other callers, and callers nobody verified, are untouched.
        assert_eq!(
            ask(&engine, Some("alice"), "what is the weather?"),
            (0.0, false)
        );
        assert_eq!(ask(&engine, None, PROBE), (0.0, false));
        // One half-life later the standing has halved.
        clock.set(3_600_000);
        let (standing, held) = ask(&engine, Some("mallory"), "and tomorrow?");
        assert!((standing - 1.0).abs() < 1e-9 && !held, "{standing}");
    }

    #[test]
    fn bad_definitions_are_refused_with_the_reason() {
        let err = |r: serde_json::Value, identity: bool| {
            SignalEngine::build(&config(r, identity))
                .unwrap_err()
                .to_string()
        };
        let ok = serde_json::json!({"name": "s", "events": {"keyword.probe": 1.0}});
        assert!(err(ok, false).contains("signals.identity"));
        assert!(
            err(serde_json::json!({"name": "s", "events": {}}), true).contains("events is empty")
        );
        assert!(
            err(
                serde_json::json!({"name": "s", "events": {"keyword.probe": 0.0}}),
                true
            )
            .contains("weighs 0")
        );
        assert!(
            err(serde_json::json!({"name": "s", "events": {"keyword.probe": 1.0}, "half_life_s": 0}), true)
                .contains("half_life_s")
        );
        assert!(
            err(
                serde_json::json!({"name": "s", "events": {"keywrd.probe": 1.0}}),
                true
            )
            .contains("keyword")
        );
        assert!(
            err(
                serde_json::json!({"name": "s", "events": {"keyword.nothing": 1.0}}),
                true
            )
            .contains("nothing")
        );
    }
}
