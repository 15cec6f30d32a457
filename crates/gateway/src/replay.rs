//! Warm start: what the decision log recorded of outcomes (answers' implicit scores,
//! feedback and complaints, preferences, shadow comparisons) is replayed into a fresh
//! outcome store, so a restarted gateway keeps what its learning routes had learned.

use serde_json::Value;
use std::io::{Read, Seek, SeekFrom};
use std::path::Path;
use switchyard_policy::{AlgorithmConfig, Policy};
use switchyard_router::Outcomes;
use switchyard_router::outcomes::{ReplayCounts, Replayed};

/// Bytes read from the end of the log at most: older lines are not replayed.
pub const REPLAY_BYTES: u64 = 64 << 20;

/// Replays the end of the decision log at `path` (nothing when there is none yet).
pub fn replay(outcomes: &Outcomes, policy: &Policy, path: &Path) -> std::io::Result<ReplayCounts> {
    let mut file = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(ReplayCounts::default()),
        Err(e) => return Err(e),
    };
    let len = file.metadata()?.len();
    let start = len.saturating_sub(REPLAY_BYTES);
    file.seek(SeekFrom::Start(start))?;
    let mut bytes = Vec::new();
    file.read_to_end(&mut bytes)?;
    let text = String::from_utf8_lossy(&bytes);
    let mut lines = text.lines();
    if start > 0 {
        // The first line read is the end of one cut in the middle.
        lines.next();
    }
    let values: Vec<Value> = lines
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .collect();
    let discount = |route: &str| {
        policy
            .routes()
            .iter()
            .find(|r| r.name == route)
            .map_or(1.0, |r| match &r.algorithm {
                AlgorithmConfig::Thompson(t) => t.discount,
                _ => 1.0,
            })
    };
    Ok(outcomes.replay(
        values.iter().filter_map(replayed),
        discount,
        policy.config.outcomes.elo_k,
    ))
}

/// What one log line says was learned, if anything.
fn replayed(line: &Value) -> Option<Replayed<'_>> {
    let str_of = |key: &str| line.get(key).and_then(Value::as_str);
    let num_of = |key: &str| line.get(key).and_then(Value::as_f64);
    match str_of("kind") {
        None => Some(Replayed::Answer {
            request_id: str_of("request_id")?,
            route: str_of("route")?,
            model: str_of("model")?,
            bucket: str_of("bucket"),
            score: num_of("score")?,
        }),
        Some("outcome") => Some(Replayed::Rescored {
            request_id: str_of("request_id")?,
            score: num_of("score")?,
        }),
        Some("preference") => Some(Replayed::Game {
            model: str_of("model")?,
            other: str_of("other_model")?,
            score: 1.0,
        })
        .filter(|_| line.get("recorded").and_then(Value::as_bool) != Some(false)),
        Some("shadow") => {
            let score = match str_of("verdict")? {
                "model_preferred" => 1.0,
                "shadow_preferred" => 0.0,
                "tie" | "agreed" => 0.5,
                _ => return None,
            };
            Some(Replayed::Game {
                model: str_of("model")?,
                other: str_of("shadow")?,
                score,
            })
        }
        Some(_) => None,
    }
}
