//! `POST /v1/feedback`: a client scores an answer it got, by the answer's
//! `x-request-id`; `GET /v1/outcomes`: what the learning algorithms have learned.
//!
//! Feedback must come with the credential the request came with (`authorization`,
//! `x-api-key` or `api-key`; without one, from the same address): answers are
//! remembered per request id and caller, so feedback for another caller's answer
//! finds nothing (404), as does feedback for an
//! answer older than `outcomes.ttl_s` or forgotten to keep `outcomes.capacity`. The
//! first feedback for an answer is kept; a repeat answers 200 with `recorded: false`.

use crate::decision_log::{OutcomeRecord, PreferenceRecord};
use crate::local::error_response;
use crate::observe::unix_ms;
use crate::runtime::Runtime;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};
use switchyard_router::outcomes::{CompareError, Feedback, MAX_COMPARED};
use switchyard_wire::{ApiError, ErrorKind};

/// Longest label accepted, in bytes.
const MAX_LABEL: usize = 64;
/// Longest comment accepted, in bytes.
const MAX_COMMENT: usize = 4096;
/// Largest feedback body, in bytes.
pub const MAX_BODY: usize = 16 * 1024;

/// A score, or a preference over another answer.
#[derive(Debug, Clone, PartialEq)]
pub enum Verdict {
    /// A score in [0, 1] (`thumbs: up` is 1, `down` 0).
    Score(f64),
    /// This answer was better than the one with this request id.
    PreferredOver(String),
}

/// What a feedback body says.
#[derive(Debug, Clone, PartialEq)]
pub struct Rating {
    /// The answer's request id.
    pub request_id: String,
    /// What the client says of it.
    pub verdict: Verdict,
    /// A short label (`wrong_language`, `too_long`…).
    pub label: Option<String>,
    /// Free text.
    pub comment: Option<String>,
}

fn invalid(param: &str, message: String) -> ApiError {
    ApiError::new(ErrorKind::InvalidRequest, message).with_param(param)
}

fn text(body: &Map<String, Value>, field: &str, max: usize) -> Result<Option<String>, ApiError> {
    match body.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s.len() <= max => Ok(Some(s.clone())),
        Some(Value::String(s)) => Err(invalid(
            field,
            format!("`{field}` is {} bytes; at most {max} are kept", s.len()),
        )),
        Some(_) => Err(invalid(field, format!("`{field}` must be a string"))),
    }
}

/// Reads a feedback body, naming the field at fault.
pub fn parse(body: &[u8]) -> Result<Rating, ApiError> {
    let value: Value = serde_json::from_slice(body).map_err(|e| {
        ApiError::new(
            ErrorKind::InvalidRequest,
            format!("the body is not JSON: {e}"),
        )
    })?;
    let Value::Object(body) = value else {
        return Err(ApiError::new(
            ErrorKind::InvalidRequest,
            "the body must be a JSON object with `request_id` and `score` or `thumbs`",
        ));
    };
    const KNOWN: [&str; 6] = [
        "request_id",
        "score",
        "thumbs",
        "preferred_over",
        "label",
        "comment",
    ];
    if let Some(unknown) = body.keys().find(|k| !KNOWN.contains(&k.as_str())) {
        let hint = switchyard_wire::typos::suggest(unknown, KNOWN)
            .map(|s| format!(" (did you mean `{s}`?)"))
            .unwrap_or_default();
        let shown: String = unknown.chars().take(64).collect();
        return Err(invalid(
            &shown,
            format!("unknown field `{shown}`{hint}; known: {}", KNOWN.join(", ")),
        ));
    }
    let request_id = match body.get("request_id") {
        Some(Value::String(id)) if !id.is_empty() && id.len() <= 128 => id.clone(),
        Some(Value::String(_)) => {
            return Err(invalid(
                "request_id",
                "`request_id` must be 1 to 128 characters: the answer's `x-request-id`".into(),
            ));
        }
        Some(_) => {
            return Err(invalid(
                "request_id",
                "`request_id` must be a string".into(),
            ));
        }
        None => {
            return Err(invalid(
                "request_id",
                "`request_id` is required: the `x-request-id` header of the answer".into(),
            ));
        }
    };
    let given = ["score", "thumbs", "preferred_over"]
        .iter()
        .filter(|f| body.contains_key(**f))
        .count();
    if given > 1 {
        return Err(invalid(
            "thumbs",
            "give one of `score`, `thumbs` and `preferred_over`".into(),
        ));
    }
    if let Some(other) = body.get("preferred_over") {
        let verdict = match other.as_str() {
            Some(id) if !id.is_empty() && id.len() <= 128 => Verdict::PreferredOver(id.to_owned()),
            _ => {
                return Err(invalid(
                    "preferred_over",
                    "`preferred_over` must be the request id (1 to 128 characters) of another answer".into(),
                ));
            }
        };
        return Ok(Rating {
            request_id,
            verdict,
            label: text(&body, "label", MAX_LABEL)?,
            comment: text(&body, "comment", MAX_COMMENT)?,
        });
    }
    let score = match (body.get("score"), body.get("thumbs")) {
        (Some(score), _) => match score.as_f64() {
            Some(s) if (0.0..=1.0).contains(&s) => s,
            _ => {
                return Err(invalid(
                    "score",
                    format!("`score` must be a number in [0, 1], not {score}"),
                ));
            }
        },
        (None, Some(thumbs)) => match thumbs.as_str() {
            Some("up") => 1.0,
            Some("down") => 0.0,
            _ => {
                return Err(invalid(
                    "thumbs",
                    format!("`thumbs` must be \"up\" or \"down\", not {thumbs}"),
                ));
            }
        },
        (None, None) => {
            return Err(invalid(
                "score",
                "`score` (a number in [0, 1]) or `thumbs` (\"up\" or \"down\") is required".into(),
            ));
        }
    };
    Ok(Rating {
        request_id,
        verdict: Verdict::Score(score),
        label: text(&body, "label", MAX_LABEL)?,
        comment: text(&body, "comment", MAX_COMMENT)?,
    })
}

/// Answers `POST /v1/feedback`.
pub fn feedback(
    runtime: &Runtime,
    headers: &HeaderMap,
    peer: Option<std::net::SocketAddr>,
    body: &[u8],
) -> Response {
    let count = |result: &'static str| {
        metrics::counter!("switchyard_feedback_total", "result" => result).increment(1);
    };
    let rating = match parse(body) {
        Ok(r) => r,
        Err(e) => {
            count("invalid");
            return error_response(&e);
        }
    };
    if !runtime.outcomes.enabled() {
        count("unknown");
        return error_response(&ApiError::new(
            ErrorKind::NotFound,
            "answers are not remembered (outcomes.capacity is 0), so feedback cannot be joined to one",
        ));
    }
    let now_ms = unix_ms(std::time::SystemTime::now());
    let caller = crate::ingress::caller(runtime, headers, peer);
    let score = match rating.verdict {
        Verdict::Score(score) => score,
        Verdict::PreferredOver(other) => {
            return prefer(
                runtime,
                (&rating.request_id, &other),
                caller,
                now_ms,
                rating.label,
                rating.comment,
            );
        }
    };
    let scored = runtime.outcomes.feedback(&Feedback {
        request_id: &rating.request_id,
        caller,
        score,
        now_ms,
    });
    let Some(scored) = scored else {
        count("unknown");
        let shown: String = rating.request_id.chars().take(128).collect();
        return error_response(&ApiError::new(
            ErrorKind::NotFound,
            format!(
                "no answer `{shown}` is remembered for this caller: the id is unknown, the answer \
                 was given to another credential, or it is older than outcomes.ttl_s ({} s) or \
                 was forgotten to keep outcomes.capacity",
                runtime.policy.config.outcomes.ttl_s
            ),
        ).with_param("request_id"));
    };
    let body = serde_json::to_value(&scored).unwrap_or_default();
    if scored.recorded {
        count("recorded");
        metrics::counter!("switchyard_outcomes_total", "source" => "feedback").increment(1);
        if let Some(log) = &runtime.log {
            log.outcome(OutcomeRecord {
                kind: "outcome",
                ts_ms: now_ms,
                source: "feedback",
                scored,
                label: rating.label,
                comment: rating.comment,
                by: None,
            });
        }
    } else {
        count("duplicate");
    }
    axum::Json(body).into_response()
}

/// Records a pairwise preference.
fn prefer(
    runtime: &Runtime,
    (preferred, other): (&str, &str),
    caller: Option<u64>,
    now_ms: u64,
    label: Option<String>,
    comment: Option<String>,
) -> Response {
    let count = |result: &'static str| {
        metrics::counter!("switchyard_feedback_total", "result" => result).increment(1);
    };
    let k = runtime.policy.config.outcomes.elo_k;
    match runtime
        .outcomes
        .compare((preferred, other), caller, k, now_ms)
    {
        Ok(compared) => {
            let body = serde_json::to_value(&compared).unwrap_or_default();
            if compared.recorded {
                count("recorded");
                metrics::counter!("switchyard_outcomes_total", "source" => "preference")
                    .increment(1);
                if let Some(log) = &runtime.log {
                    log.preference(PreferenceRecord {
                        kind: "preference",
                        ts_ms: now_ms,
                        compared,
                        label,
                        comment,
                    });
                }
            } else {
                count("duplicate");
            }
            axum::Json(body).into_response()
        }
        Err(CompareError::Unknown(param)) => {
            count("unknown");
            let id = if param == "request_id" {
                preferred
            } else {
                other
            };
            let shown: String = id.chars().take(128).collect();
            error_response(
                &ApiError::new(
                    ErrorKind::NotFound,
                    format!(
                        "no answer `{shown}` is remembered for this caller (unknown, another credential's, or older than outcomes.ttl_s)"
                    ),
                )
                .with_param(param),
            )
        }
        Err(CompareError::Incomparable(why)) => {
            count("invalid");
            error_response(&invalid(
                "preferred_over",
                format!("{why}; compare two answers"),
            ))
        }
        Err(CompareError::TooMany) => {
            count("invalid");
            error_response(&invalid(
                "preferred_over",
                format!(
                    "one of the answers was compared with {MAX_COMPARED} others already; no more are kept"
                ),
            ))
        }
    }
}

/// Answers `GET /v1/outcomes`: every arm's tallies.
pub fn outcomes(runtime: &Runtime) -> Response {
    axum::Json(json!({
        "capacity": runtime.policy.config.outcomes.capacity,
        "arms": runtime.outcomes.snapshot(),
        "shadow": runtime
            .shadows
            .snapshot()
            .into_iter()
            .map(|t| {
                let savings = t.savings();
                let mut v = serde_json::json!(t);
                v["savings_dollars"] = serde_json::json!(savings);
                v
            })
            .collect::<Vec<_>>(),
        "reputation": runtime.outcomes.reputations(),
    }))
    .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bodies_are_read_and_faults_named() {
        let r = parse(br#"{"request_id":"a","thumbs":"down","label":"wrong"}"#).unwrap();
        assert_eq!(
            (&r.verdict, r.label.as_deref()),
            (&Verdict::Score(0.0), Some("wrong"))
        );
        assert_eq!(
            parse(br#"{"request_id":"a","score":0.25}"#)
                .unwrap()
                .verdict,
            Verdict::Score(0.25)
        );
        assert_eq!(
            parse(br#"{"request_id":"a","preferred_over":"b"}"#)
                .unwrap()
                .verdict,
            Verdict::PreferredOver("b".into())
        );
        for (body, param) in [
            (r#"{"request_id":"a","score":1.5}"#, "score"),
            (r#"{"request_id":"a","score":"high"}"#, "score"),
            (r#"{"request_id":"a"}"#, "score"),
            (r#"{"request_id":"a","score":1,"thumbs":"up"}"#, "thumbs"),
            (r#"{"request_id":"a","thumbs":"sideways"}"#, "thumbs"),
            (r#"{"score":1}"#, "request_id"),
            (r#"{"request_id":"","score":1}"#, "request_id"),
            (r#"{"request_id":7,"score":1}"#, "request_id"),
            (r#"{"request_id":"a","score":1,"scor":2}"#, "scor"),
            (r#"{"request_id":"a","score":1,"label":3}"#, "label"),
            (
                r#"{"request_id":"a","score":1,"preferred_over":"b"}"#,
                "thumbs",
            ),
            (
                r#"{"request_id":"a","preferred_over":""}"#,
                "preferred_over",
            ),
        ] {
            let e = parse(body.as_bytes()).unwrap_err();
            assert_eq!(e.param.as_deref(), Some(param), "{body}: {e}");
        }
        let long = format!(
            r#"{{"request_id":"a","score":1,"comment":"{}"}}"#,
            "x".repeat(5000)
        );
        assert_eq!(
            parse(long.as_bytes()).unwrap_err().param.as_deref(),
            Some("comment")
        );
        assert!(parse(b"[1]").unwrap_err().param.is_none());
        assert!(parse(b"{").is_err());
    }
}
