//! Warm start: what the decision log recorded of outcomes (answers' implicit scores,
//! feedback and complaints, preferences, shadow comparisons) is replayed into a fresh
//! outcome store, so a restarted gateway keeps what its learning routes had learned.

use serde::Deserialize;
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
    // Only the fields replay reads are kept of each line (a request line has many
    // more): start-up memory stays a fraction of the bytes read.
    let lines: Vec<Line> = lines
        .filter_map(|l| serde_json::from_str::<Line>(l).ok())
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
        lines.iter().filter_map(replayed),
        discount,
        policy.config.outcomes.elo_k,
    ))
}

/// The fields of a log line that replay reads.
#[derive(Debug, Default, Deserialize)]
struct Line {
    kind: Option<String>,
    request_id: Option<String>,
    route: Option<String>,
    model: Option<String>,
    bucket: Option<String>,
    score: Option<f64>,
    other_model: Option<String>,
    shadow: Option<String>,
    verdict: Option<String>,
    recorded: Option<bool>,
}

/// What one log line says was learned, if anything.
fn replayed(line: &Line) -> Option<Replayed<'_>> {
    match line.kind.as_deref() {
        None => Some(Replayed::Answer {
            request_id: line.request_id.as_deref()?,
            route: line.route.as_deref()?,
            model: line.model.as_deref()?,
            bucket: line.bucket.as_deref(),
            score: line.score?,
        }),
        Some("outcome") => Some(Replayed::Rescored {
            request_id: line.request_id.as_deref()?,
            score: line.score?,
        }),
        Some("preference") if line.recorded != Some(false) => Some(Replayed::Game {
            model: line.model.as_deref()?,
            other: line.other_model.as_deref()?,
            score: 1.0,
        }),
        Some("shadow") => {
            let score = match line.verdict.as_deref()? {
                "model_preferred" => 1.0,
                "shadow_preferred" => 0.0,
                "tie" | "agreed" => 0.5,
                _ => return None,
            };
            Some(Replayed::Game {
                model: line.model.as_deref()?,
                other: line.shadow.as_deref()?,
                score,
            })
        }
        Some(_) => None,
    }
}
