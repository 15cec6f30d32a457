//! The decision log: one JSON line per request, written off the request path.
//!
//! The schema is documented in `docs/decision-log.md`; the fleet simulator replays it.

use serde::Serialize;
use std::io::Write;
use std::path::Path;
use tokio::sync::mpsc;

/// Lines buffered before new ones are dropped (and counted) rather than slowing requests.
const LOG_BUFFER: usize = 8192;

/// One request, as logged.
#[derive(Debug, Clone, Serialize)]
pub struct DecisionRecord {
    /// Unix time of arrival, in milliseconds.
    pub ts_ms: u64,
    /// The request id (also sent upstream and to the client as `x-request-id`).
    pub request_id: String,
    /// The model the client asked for (`auto`, or a model name).
    pub requested_model: String,
    /// The route taken (`direct` when the client named a model; empty when the
    /// request was refused before decide).
    pub route: String,
    /// The recipe (named policy) whose route it is; absent for the main one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub recipe: Option<String>,
    /// How sure the route's match was, in [0, 1] (absent when the client named a model).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub route_confidence: Option<f64>,
    /// The model chosen.
    pub model: String,
    /// The pool chosen.
    pub pool: String,
    /// The endpoint chosen.
    pub endpoint: String,
    /// Whether the answer was streamed.
    pub stream: bool,
    /// HTTP status sent to the client.
    pub status: u16,
    /// `ok`, `upstream_error`, `upstream_timeout`, `stalled`, `cut`, `client_gone`,
    /// `policy_denied`, `local_answer`, …
    pub outcome: String,
    /// The phase that answered: `forward` (the upstream), `plugins` (a local answer),
    /// or the phase that refused the request (`ingress`, `decide`, `govern`, …).
    pub phase: &'static str,
    /// Prompt tokens (upstream's count when reported, else the router's estimate).
    pub prompt_tokens: u64,
    /// Completion tokens as reported upstream (0 when not reported).
    pub completion_tokens: u64,
    /// Prompt tokens the upstream read from its prompt cache (as it reported them;
    /// absent when 0).
    #[serde(skip_serializing_if = "is_zero")]
    pub cached_tokens: u64,
    /// Whether the token counts came from the upstream (`true`) or the estimate.
    pub tokens_reported: bool,
    /// The client's API: `openai_chat`, `anthropic_messages`.
    pub api: &'static str,
    /// Time to first token (first streamed event, or response headers), in milliseconds.
    pub ttft_ms: Option<f64>,
    /// Time to the last byte, in milliseconds.
    pub latency_ms: f64,
    /// Router time before the upstream call, in microseconds.
    pub overhead_us: u64,
    /// Endpoints tried: more than 1 when a connect error or 5xx moved the request on.
    pub attempts: u32,
    /// Error message, when the request failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// A cascade's checked steps (the final answer is the record's model).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub cascade: Vec<crate::exchange::CascadeStep>,
    /// The bucket the answer counted in (a learning route's domain label).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bucket: Option<String>,
    /// The implicit score the answer counted, when it counted one (a restart replays
    /// it).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub score: Option<f64>,
}

/// A score given to an answer after it was logged: the client's feedback, or a
/// complaint in the session's next turn. Written as its own line with
/// `"kind": "outcome"`, so the log replays what was learned.
#[derive(Debug, Clone, Serialize)]
pub struct OutcomeRecord {
    /// Always `outcome` (request lines have no `kind`).
    pub kind: &'static str,
    /// Unix time it was learned, in milliseconds.
    pub ts_ms: u64,
    /// `feedback` (`POST /v1/feedback`) or `complaint` (the session's next turn).
    pub source: &'static str,
    /// The request whose answer it scores, with its route, model, bucket, the score
    /// and the implicit score it replaced.
    #[serde(flatten)]
    pub scored: switchyard_router::outcomes::Scored,
    /// The feedback's label, when it had one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
    /// The feedback's comment, when it had one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
    /// What complained: the next turn's request id and the signal that held.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub by: Option<String>,
}

/// A pairwise preference (`POST /v1/feedback` with `preferred_over`), written as its
/// own line with `"kind": "preference"`.
#[derive(Debug, Clone, Serialize)]
pub struct PreferenceRecord {
    /// Always `preference`.
    pub kind: &'static str,
    /// Unix time it was given, in milliseconds.
    pub ts_ms: u64,
    /// The two answers, their route and models, and the ratings after it.
    #[serde(flatten)]
    pub compared: switchyard_router::outcomes::Compared,
    /// The feedback's label, when it had one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
    /// The feedback's comment, when it had one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
}

/// A shadow comparison, written as its own line with `"kind": "shadow"`.
#[derive(Debug, Clone, Serialize)]
pub struct ShadowRecord {
    /// Always `shadow`.
    pub kind: &'static str,
    /// Unix time it was decided, in milliseconds.
    pub ts_ms: u64,
    /// The client's request.
    pub request_id: String,
    /// Its route.
    pub route: String,
    /// The model that answered the client.
    pub model: String,
    /// The shadow model.
    pub shadow: String,
    /// What the comparison found.
    pub verdict: switchyard_router::shadow::Verdict,
    /// The judge model, when one judged.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub judge: Option<String>,
    /// What the client's answer and the shadow's cost, in dollars (0 without a price).
    pub model_dollars: f64,
    /// The shadow's.
    pub shadow_dollars: f64,
    /// How long the shadow took, in milliseconds.
    pub shadow_latency_ms: f64,
    /// The two models' Elo ratings after it (points above 1500), when it counted.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub elo: Option<[f64; 2]>,
    /// What failed, when something did.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// One line of the log.
#[derive(Debug, Clone, Serialize)]
#[serde(untagged)]
enum Line {
    Request(DecisionRecord),
    Outcome(OutcomeRecord),
    Preference(PreferenceRecord),
    Shadow(ShadowRecord),
}

/// Appends records to a file from a background task.
#[derive(Debug, Clone)]
pub struct DecisionLog {
    tx: mpsc::Sender<Line>,
}

impl DecisionLog {
    /// Opens (appending) the file and starts the writer task.
    pub fn open(path: &Path) -> std::io::Result<DecisionLog> {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)?;
        let (tx, mut rx) = mpsc::channel::<Line>(LOG_BUFFER);
        tokio::task::spawn_blocking(move || {
            let mut out = std::io::BufWriter::new(file);
            while let Some(record) = rx.blocking_recv() {
                let mut write = |r: &Line| -> std::io::Result<()> {
                    serde_json::to_writer(&mut out, r)?;
                    out.write_all(b"\n")
                };
                let mut result = write(&record);
                while let Ok(more) = rx.try_recv() {
                    result = result.and_then(|()| write(&more));
                }
                if let Err(e) = result.and_then(|()| out.flush()) {
                    tracing::error!(error = %e, "decision log write failed");
                }
            }
        });
        Ok(DecisionLog { tx })
    }

    /// Queues a record; drops it (and counts the drop) when the writer is far behind.
    pub fn record(&self, record: DecisionRecord) {
        self.send(Line::Request(record));
    }

    /// Queues an outcome line, like [`DecisionLog::record`].
    pub fn outcome(&self, record: OutcomeRecord) {
        self.send(Line::Outcome(record));
    }

    /// Queues a preference line, like [`DecisionLog::record`].
    pub fn preference(&self, record: PreferenceRecord) {
        self.send(Line::Preference(record));
    }

    /// Queues a shadow line, like [`DecisionLog::record`].
    pub fn shadow(&self, record: ShadowRecord) {
        self.send(Line::Shadow(record));
    }

    fn send(&self, line: Line) {
        if self.tx.try_send(line).is_err() {
            metrics::counter!("switchyard_decision_log_dropped_total").increment(1);
        }
    }
}

#[allow(clippy::trivially_copy_pass_by_ref)]
fn is_zero(n: &u64) -> bool {
    *n == 0
}
