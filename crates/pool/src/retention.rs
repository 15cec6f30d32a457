//! KV-cache retention hints for mid-session requests.
//!
//! A request in the middle of a session (a session id, earlier assistant or tool
//! turns) will likely be followed by another turn that shares its whole prefix. The
//! hint asks the engine to keep that prefix's KV: a priority that grows with the
//! session's turns (a long session has more to lose), and a time to live from the
//! expected pause before the next turn: twice the session's observed gap between
//! turns once known, else a short default for agent loops (tools defined or tool
//! results in the history) and a longer one for people typing.
//!
//! Hints go upstream as `x-kv-retention-priority` and `x-kv-retention-ttl-ms`.

use serde::Serialize;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;
use switchyard_policy::RetentionConfig;
use switchyard_state::SharedState;
use switchyard_wire::Conversation;

/// Sessions tracked before the oldest are forgotten.
const MAX_SESSIONS: usize = 100_000;

/// A retention hint.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct RetentionHint {
    /// Higher is kept longer (1–255).
    pub priority: u8,
    /// How long to keep the prefix, in milliseconds.
    pub ttl_ms: u64,
    /// What the time to live rests on: `observed_gap`, `agent_loop` or `chat`.
    pub basis: &'static str,
}

/// Gaps between the turns of each session: in this process, or in the shared state
/// (a Redis or Valkey server), so that a session whose turns go to different replicas
/// has one record. Times are wall-clock milliseconds, which replicas share.
#[derive(Debug, Default)]
pub struct SessionClock {
    sessions: Mutex<HashMap<u64, (u64, Option<f64>)>>,
    shared: Option<Arc<dyn SharedState>>,
}

/// A session left without turns this long is forgotten (in the shared state).
const SHARED_TTL: Duration = Duration::from_secs(3600);

impl SessionClock {
    /// A clock keeping its records in `state`.
    pub fn shared(state: Arc<dyn SharedState>) -> SessionClock {
        SessionClock {
            sessions: Mutex::new(HashMap::new()),
            shared: Some(state),
        }
    }

    /// Whether records are on a server (reading them waits on the network).
    pub fn remote(&self) -> bool {
        self.shared.as_ref().is_some_and(|s| s.remote())
    }

    fn key(session: u64) -> String {
        format!("session:{session:016x}")
    }

    /// The shared record of a session: (last turn, smoothed gap). A record that
    /// cannot be read is none (the hint falls back to its defaults).
    fn read_shared(state: &dyn SharedState, session: u64) -> Option<(u64, Option<f64>)> {
        let bytes = state.get(&SessionClock::key(session)).ok()??;
        let (last, gap): (u64, Option<f64>) = serde_json::from_slice(&bytes).ok()?;
        Some((last, gap))
    }

    /// The session's smoothed gap between turns, in milliseconds, if it has had two.
    pub fn gap_ms(&self, session: u64) -> Option<f64> {
        if let Some(state) = &self.shared {
            return SessionClock::read_shared(&**state, session).and_then(|(_, gap)| gap);
        }
        let sessions = self.sessions.lock().unwrap_or_else(PoisonError::into_inner);
        sessions.get(&session).and_then(|(_, gap)| *gap)
    }

    /// Records a turn of the session at `now_ms` (wall-clock milliseconds).
    pub fn turn(&self, session: u64, now_ms: u64) {
        if let Some(state) = &self.shared {
            let (last, gap) =
                SessionClock::read_shared(&**state, session).unwrap_or((now_ms, None));
            let record = (now_ms, smoothed(last, gap, now_ms));
            if let Ok(bytes) = serde_json::to_vec(&record) {
                // A record that cannot be written leaves the defaults for the next turn.
                let _ = state.put(&SessionClock::key(session), bytes.into(), SHARED_TTL);
            }
            return;
        }
        let mut sessions = self.sessions.lock().unwrap_or_else(PoisonError::into_inner);
        if sessions.len() >= MAX_SESSIONS && !sessions.contains_key(&session) {
            // Forget the sessions quiet for longest (the oldest half).
            let mut last: Vec<u64> = sessions.values().map(|(t, _)| *t).collect();
            let mid = last.len() / 2;
            let (_, cut, _) = last.select_nth_unstable(mid);
            let cut = *cut;
            sessions.retain(|_, (t, _)| *t > cut);
        }
        let entry = sessions.entry(session).or_insert((now_ms, None));
        entry.1 = smoothed(entry.0, entry.1, now_ms);
        entry.0 = now_ms;
    }
}

/// The smoothed gap after a turn at `now_ms`, the last one having been at `last`.
fn smoothed(last: u64, gap: Option<f64>, now_ms: u64) -> Option<f64> {
    if last == now_ms {
        return gap;
    }
    let new = now_ms.saturating_sub(last) as f64;
    Some(gap.map_or(new, |g| 0.7 * g + 0.3 * new))
}

/// Wall-clock milliseconds, the time session turns are recorded in.
pub fn wall_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// The key a conversation's turns are tracked under: its session, else its prefix.
pub fn session_key(conversation: &Conversation) -> Option<u64> {
    conversation
        .session_hash()
        .or_else(|| conversation.prefix_fingerprint())
}

/// The hint for a request, or `None` when it is not mid-session or hints are off.
pub fn hint(
    conversation: &Conversation,
    observed_gap_ms: Option<f64>,
    config: &RetentionConfig,
) -> Option<RetentionHint> {
    if !config.enabled {
        return None;
    }
    let earlier = conversation
        .turns
        .iter()
        .filter(|t| t.role == "assistant" || t.role == "tool")
        .count();
    let tool_turns = conversation
        .turns
        .iter()
        .filter(|t| t.role == "tool")
        .count();
    if earlier == 0 && conversation.session_id.is_none() {
        return None;
    }
    let (ttl_ms, basis) = match observed_gap_ms {
        Some(gap) => ((2.0 * gap) as u64, "observed_gap"),
        None if tool_turns > 0 || conversation.tools_defined > 0 => {
            (config.agent_ttl_ms, "agent_loop")
        }
        None => (config.chat_ttl_ms, "chat"),
    };
    Some(RetentionHint {
        priority: u8::try_from(1 + earlier).unwrap_or(u8::MAX),
        ttl_ms: ttl_ms.clamp(config.min_ttl_ms, config.max_ttl_ms),
        basis,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use switchyard_wire::ChatRequest;

    fn conversation(body: &str, session: Option<&str>) -> Conversation {
        let request: ChatRequest = serde_json::from_str(body).unwrap();
        Conversation::from_chat(&request, session)
    }

    #[test]
    fn only_mid_session_requests_get_hints() {
        let config = RetentionConfig::default();
        let first = conversation(
            r#"{"model":"m","messages":[{"role":"user","content":"hi"}]}"#,
            None,
        );
        assert_eq!(hint(&first, None, &config), None);
        let with_session = conversation(
            r#"{"model":"m","messages":[{"role":"user","content":"hi"}]}"#,
            Some("s"),
        );
        assert_eq!(hint(&with_session, None, &config).unwrap().basis, "chat");
        let chat = conversation(
            r#"{"model":"m","messages":[{"role":"user","content":"a"},
                {"role":"assistant","content":"b"},{"role":"user","content":"c"}]}"#,
            None,
        );
        let h = hint(&chat, None, &config).unwrap();
        assert_eq!(
            (h.priority, h.ttl_ms, h.basis),
            (2, config.chat_ttl_ms, "chat")
        );
        let agent = conversation(
            r#"{"model":"m","tools":[{}],"messages":[{"role":"user","content":"a"},
                {"role":"assistant","content":"call"},{"role":"tool","content":"result"}]}"#,
            None,
        );
        let h = hint(&agent, None, &config).unwrap();
        assert_eq!(
            (h.priority, h.ttl_ms, h.basis),
            (3, config.agent_ttl_ms, "agent_loop")
        );
        let observed = hint(&chat, Some(4_000.0), &config).unwrap();
        assert_eq!((observed.ttl_ms, observed.basis), (8_000, "observed_gap"));
        let off = RetentionConfig {
            enabled: false,
            ..RetentionConfig::default()
        };
        assert_eq!(hint(&chat, None, &off), None);
    }

    #[test]
    fn the_clock_smooths_gaps_between_turns() {
        let clock = SessionClock::default();
        assert_eq!(clock.gap_ms(1), None);
        clock.turn(1, 1_000);
        assert_eq!(clock.gap_ms(1), None);
        clock.turn(1, 11_000);
        assert_eq!(clock.gap_ms(1), Some(10_000.0));
        clock.turn(1, 13_000);
        assert_eq!(clock.gap_ms(1), Some(0.7 * 10_000.0 + 0.3 * 2_000.0));
        assert_eq!(clock.gap_ms(2), None);
    }
}
