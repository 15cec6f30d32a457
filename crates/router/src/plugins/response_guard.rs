//! `response_guard`: checks on what comes back. An answer (whole or streamed) is
//! searched for personal data of the listed types, for listed phrases, and for
//! markers of an answer that went along with a jailbreak (a persona taking over,
//! "developer mode", "no restrictions"). On a finding, one action:
//! - `annotate`: the answer passes; whole answers get `x-switchyard-guard` naming the
//!   checks that fired, and every finding is counted
//!   (`switchyard_guard_findings_total{route, check}`) and logged, never its text;
//! - `redact`: what was found is replaced by `[REDACTED]` (`[REDACTED:EMAIL]` for
//!   personal data);
//! - `replace`: the whole answer is replaced by a fixed message; a stream is ended
//!   with a terminal error event carrying it.
//!
//! Streams are checked before their text reaches the client: the last `hold_back`
//! characters of each choice are held, so anything up to that length is seen whole
//! before any of it is sent. Held text goes out as later events push it past the
//! window, and all of it when the choice finishes.

use super::commitments::{Commitments, Shingles};
use super::stream_event::StreamTemplate;
use super::{
    ChunkFlow, Context, Flow, Hooks, LocalAnswer, Plugin, PluginError, Reads, RequestInfo, State,
    UpstreamRequest,
};
use http::{HeaderMap, HeaderName, HeaderValue};
use regex::Regex;
use serde::Deserialize;
use serde_json::{Map, Value, json};
use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::sync::LazyLock;
use switchyard_workload::pii::{PiiKind, find_pii};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(super) enum Action {
    Annotate,
    Redact,
    Replace,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Options {
    /// Personal data types to look for (none by default).
    #[serde(default)]
    pii: Vec<PiiKind>,
    /// Lowest recognizer score that counts (default 0.5).
    #[serde(default = "half")]
    min_score: f64,
    /// Phrases to look for, case-insensitively.
    #[serde(default)]
    keywords: Vec<String>,
    /// Look for markers of jailbreak compliance.
    #[serde(default)]
    compliance: bool,
    /// What to do on a finding (default `annotate`).
    #[serde(default = "annotate")]
    action: Action,
    /// The answer given instead (`replace`).
    #[serde(default = "withheld")]
    message: String,
    /// Characters of each streamed choice held back before they are sent.
    #[serde(default = "window")]
    hold_back: usize,
}

fn half() -> f64 {
    0.5
}
fn annotate() -> Action {
    Action::Annotate
}
fn withheld() -> String {
    "The answer was withheld by policy.".to_owned()
}
fn window() -> usize {
    64
}

/// Bytes a growing finding may hold back beyond `hold_back` (then it is sent as far
/// as the window allows, like any text).
const MAX_HELD: usize = 16 * 1024;

/// Markers of an answer that plays along with a jailbreak.
static COMPLIANCE: LazyLock<Regex> = LazyLock::new(|| {
    #[allow(clippy::expect_used)] // a constant pattern
    Regex::new(concat!(
        r"(?i)\bDAN\s*:|developer mode (?:enabled|output|activated)|\bjailbr(?:oken|eak mode)\b",
        r"|🔓|\bi(?: am|'m) (?:now )?free (?:from|of) (?:all |any )?(?:restrictions|rules|guidelines|filters)",
        r"|\b(?:as an ai|i am an ai|i'm an ai) (?:with|that has) no (?:restrictions|limits|filters|rules)",
        r"|\bwithout any (?:ethical|moral) (?:guidelines|restrictions|constraints)",
        r"|\bi (?:have|'ve got) no (?:restrictions|limits|filters|guidelines)\b",
    ))
    .expect("a valid pattern")
});

/// The guard (and, built by `commitments`, the checks of a route's commitments).
#[derive(Debug)]
pub(super) struct ResponseGuard {
    pii: Vec<PiiKind>,
    min_score: f64,
    keywords: Option<Regex>,
    compliance: bool,
    commitments: Option<Commitments>,
    action: Action,
    message: String,
    hold_back: usize,
}

/// Bytes of a streamed answer kept to judge it whole when it finishes (its start).
const WHOLE_CAP: usize = 64 * 1024;

impl ResponseGuard {
    /// A guard that checks a route's commitments only.
    pub(super) fn for_commitments(
        commitments: Commitments,
        action: Action,
        message: String,
        hold_back: usize,
    ) -> ResponseGuard {
        ResponseGuard {
            pii: Vec::new(),
            min_score: 1.0,
            keywords: None,
            compliance: false,
            commitments: Some(commitments),
            action,
            message,
            hold_back,
        }
    }
}

/// Builds the plugin from its options.
pub fn build(
    options: &Map<String, Value>,
    _context: &Context<'_>,
) -> Result<Box<dyn Plugin>, String> {
    let o: Options = super::options(options)?;
    if o.pii.is_empty() && o.keywords.is_empty() && !o.compliance {
        return Err(
            "nothing to check: give `pii` types, `keywords` or `compliance: true`".to_owned(),
        );
    }
    if !(0.0..=1.0).contains(&o.min_score) {
        return Err(format!("min_score {} is not in [0, 1]", o.min_score));
    }
    if o.keywords.iter().any(|k| k.trim().is_empty()) {
        return Err("keywords: an empty phrase would match everything".to_owned());
    }
    if !(1..=4096).contains(&o.hold_back) {
        return Err(format!("hold_back {} is not in 1..=4096", o.hold_back));
    }
    let keywords = if o.keywords.is_empty() {
        None
    } else {
        let alternatives: Vec<String> = o.keywords.iter().map(|k| regex::escape(k)).collect();
        Some(
            Regex::new(&format!("(?i){}", alternatives.join("|")))
                .map_err(|e| format!("keywords: {e}"))?,
        )
    };
    Ok(Box::new(ResponseGuard {
        pii: o.pii,
        min_score: o.min_score,
        keywords,
        compliance: o.compliance,
        commitments: None,
        action: o.action,
        message: o.message,
        hold_back: o.hold_back,
    }))
}

/// One finding: which check, and where.
#[derive(Debug, Clone, PartialEq)]
struct Hit {
    check: String,
    start: usize,
    end: usize,
    /// What replaces it under `redact`.
    mask: String,
}

/// What the guard keeps for one request.
#[derive(Debug, Default)]
struct Guarded {
    /// Checks that fired.
    fired: BTreeSet<String>,
    /// Per streamed choice: text received and not yet sent.
    held: BTreeMap<u64, String>,
    /// The stream's events' identity, to write held text out at the end.
    template: StreamTemplate,
    /// The request's system messages, as the leak check reads them.
    system: Shingles,
    /// The first choice's text so far (up to [`WHOLE_CAP`]), judged whole when it
    /// finishes.
    whole: String,
}

impl ResponseGuard {
    /// Every finding in `text`, in order, without overlaps (the first wins).
    fn hits(&self, text: &str, system: &Shingles) -> Vec<Hit> {
        let mut hits = Vec::new();
        if let Some(c) = &self.commitments {
            hits.extend(c.spans(text, system).into_iter().map(|s| Hit {
                check: s.check,
                start: s.start,
                end: s.end,
                mask: "[REDACTED]".to_owned(),
            }));
        }
        if !self.pii.is_empty() {
            for f in find_pii(text) {
                if f.score >= self.min_score && self.pii.contains(&f.kind) {
                    hits.push(Hit {
                        check: format!("pii:{}", f.kind.name()),
                        start: f.start,
                        end: f.end,
                        mask: format!("[REDACTED:{}]", f.kind.name().to_ascii_uppercase()),
                    });
                }
            }
        }
        let mut by = |check: &str, re: &Regex| {
            for m in re.find_iter(text) {
                hits.push(Hit {
                    check: check.to_owned(),
                    start: m.start(),
                    end: m.end(),
                    mask: "[REDACTED]".to_owned(),
                });
            }
        };
        if let Some(re) = &self.keywords {
            by("keyword", re);
        }
        if self.compliance {
            by("compliance", &COMPLIANCE);
        }
        hits.sort_by_key(|h| (h.start, std::cmp::Reverse(h.end)));
        let mut kept: Vec<Hit> = Vec::with_capacity(hits.len());
        for h in hits {
            if kept.last().is_none_or(|k| h.start >= k.end) {
                kept.push(h);
            }
        }
        kept
    }

    /// Records `hits` (counted and logged by check, never by text).
    fn record(&self, info: &RequestInfo<'_>, guarded: &mut Guarded, hits: &[Hit]) {
        for h in hits {
            Self::fired(info, guarded, &h.check);
        }
    }

    /// Records that `check` fired on this answer (once per answer).
    fn fired(info: &RequestInfo<'_>, guarded: &mut Guarded, check: &str) {
        if guarded.fired.insert(check.to_owned()) && !info.dry_run {
            metrics::counter!("switchyard_guard_findings_total",
                "route" => info.route.to_owned(), "check" => check.to_owned())
            .increment(1);
            tracing::warn!(
                request_id = info.request_id,
                route = info.route,
                check,
                "response guard finding"
            );
        }
    }

    /// Judges a finished answer whole (the commitments it breaks as a whole); `true`
    /// when it must be replaced.
    fn judge_whole(&self, info: &RequestInfo<'_>, guarded: &mut Guarded, text: &str) -> bool {
        let Some(c) = &self.commitments else {
            return false;
        };
        let shown: HashSet<String> = guarded.fired.iter().cloned().collect();
        let broken = c.whole(text, &shown, info.embedder);
        for check in &broken {
            Self::fired(info, guarded, check);
        }
        !broken.is_empty() && self.action == Action::Replace
    }

    /// `text` with `hits` masked.
    fn redacted(text: &str, hits: &[Hit]) -> String {
        let mut out = String::with_capacity(text.len());
        let mut at = 0;
        for h in hits {
            out.push_str(&text[at..h.start]);
            out.push_str(&h.mask);
            at = h.end;
        }
        out.push_str(&text[at..]);
        out
    }

    /// Checks one choice's held text: `Err` with the message to end the stream with,
    /// else the text to send now (all of it when `finishing`).
    fn check_held(
        &self,
        info: &RequestInfo<'_>,
        guarded: &mut Guarded,
        choice: u64,
        finishing: bool,
    ) -> Result<String, String> {
        let mut held = guarded.held.remove(&choice).unwrap_or_default();
        // A finding that touches the end may still grow: it is decided on the next
        // piece, and nothing of it is sent meanwhile.
        let (hits, growing): (Vec<Hit>, Vec<Hit>) = self
            .hits(&held, &guarded.system)
            .into_iter()
            .partition(|h| finishing || h.end < held.len());
        let growing = growing.first().map(|h| h.start);
        if !hits.is_empty() {
            self.record(info, guarded, &hits);
            match self.action {
                Action::Annotate => {}
                Action::Redact => held = Self::redacted(&held, &hits),
                Action::Replace => return Err(self.message.clone()),
            }
        }
        if finishing {
            return Ok(held);
        }
        let mut keep = held
            .char_indices()
            .rev()
            .nth(self.hold_back.saturating_sub(1))
            .map_or(0, |(i, _)| i);
        if let Some(start) = growing
            && held.len() - start <= MAX_HELD
        {
            keep = keep.min(start);
        }
        let kept = held.split_off(keep);
        if !kept.is_empty() {
            guarded.held.insert(choice, kept);
        }
        Ok(held)
    }
}

fn guarded(state: &mut State) -> &mut Guarded {
    super::state_of(state)
}

impl Plugin for ResponseGuard {
    fn hooks(&self) -> Hooks {
        Hooks {
            // The system messages are read for the leak check.
            request: self.commitments.is_some(),
            response_headers: true,
            response: true,
            stream: true,
            govern: false,
            observe: false,
        }
    }

    fn reads(&self) -> Reads {
        Reads {
            embedder: self.commitments.as_ref().is_some_and(Commitments::embeds),
            ..Reads::default()
        }
    }

    fn on_request(
        &self,
        _info: &RequestInfo<'_>,
        upstream: &mut UpstreamRequest<'_>,
        state: &mut State,
    ) -> Result<Flow, PluginError> {
        if let Some(c) = &self.commitments {
            guarded(state).system = c.shingles(upstream.body);
        }
        Ok(Flow::Continue)
    }

    fn on_response(
        &self,
        info: &RequestInfo<'_>,
        body: &mut Value,
        state: &mut State,
    ) -> Result<Flow, PluginError> {
        let g = guarded(state);
        let Some(Value::Array(choices)) = body.get_mut("choices") else {
            return Ok(Flow::Continue);
        };
        for choice in choices {
            for field in ["content", "reasoning_content", "refusal"] {
                let Some(Value::String(text)) = choice.pointer_mut(&format!("/message/{field}"))
                else {
                    continue;
                };
                let hits = self.hits(text, &g.system);
                if hits.is_empty() {
                    continue;
                }
                self.record(info, g, &hits);
                match self.action {
                    Action::Annotate => {}
                    Action::Redact => *text = Self::redacted(text, &hits),
                    Action::Replace => {
                        return Ok(Flow::Answer(LocalAnswer::new(
                            200,
                            "",
                            self.message.clone(),
                        )));
                    }
                }
            }
        }
        if self.commitments.is_some() {
            let text = body
                .pointer("/choices/0/message/content")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned();
            if self.judge_whole(info, g, &text) {
                return Ok(Flow::Answer(LocalAnswer::new(
                    200,
                    "",
                    self.message.clone(),
                )));
            }
        }
        Ok(Flow::Continue)
    }

    fn on_response_headers(
        &self,
        _info: &RequestInfo<'_>,
        _status: u16,
        headers: &mut HeaderMap,
        state: &mut State,
    ) -> Result<(), PluginError> {
        const GUARD: HeaderName = HeaderName::from_static("x-switchyard-guard");
        let fired = state
            .as_ref()
            .and_then(|s| s.downcast_ref::<Guarded>())
            .map(|g| g.fired.iter().cloned().collect::<Vec<_>>().join(","))
            .unwrap_or_default();
        if !fired.is_empty()
            && let Ok(value) = HeaderValue::from_str(&fired)
        {
            headers.append(GUARD, value);
        }
        Ok(())
    }

    fn on_response_chunk(
        &self,
        info: &RequestInfo<'_>,
        event: String,
        out: &mut Vec<String>,
        state: &mut State,
    ) -> Result<ChunkFlow, PluginError> {
        let g = guarded(state);
        let Ok(mut chunk) = serde_json::from_str::<Value>(&event) else {
            out.push(event);
            return Ok(ChunkFlow::Continue);
        };
        g.template.learn(&chunk);
        if let Some(Value::Array(choices)) = chunk.get_mut("choices") {
            for choice in choices {
                let index = choice.get("index").and_then(Value::as_u64).unwrap_or(0);
                let finishing = choice.get("finish_reason").is_some_and(|r| !r.is_null());
                let piece = choice
                    .pointer("/delta/content")
                    .and_then(Value::as_str)
                    .map(str::to_owned);
                if piece.is_none() && !finishing {
                    continue;
                }
                if let Some(piece) = &piece {
                    g.held.entry(index).or_default().push_str(piece);
                    if index == 0 && self.commitments.is_some() && g.whole.len() < WHOLE_CAP {
                        let room = WHOLE_CAP - g.whole.len();
                        let cut = (0..=room.min(piece.len()))
                            .rev()
                            .find(|&i| piece.is_char_boundary(i))
                            .unwrap_or(0);
                        g.whole.push_str(&piece[..cut]);
                    }
                }
                match self.check_held(info, g, index, finishing) {
                    Ok(send) => {
                        if let Some(delta) = choice.get_mut("delta").and_then(Value::as_object_mut)
                            && (piece.is_some() || !send.is_empty())
                        {
                            delta.insert("content".to_owned(), Value::String(send));
                        }
                    }
                    Err(message) => return Ok(ChunkFlow::End(message)),
                }
                if finishing && index == 0 && self.commitments.is_some() {
                    let whole = std::mem::take(&mut g.whole);
                    if self.judge_whole(info, g, &whole) {
                        return Ok(ChunkFlow::End(self.message.clone()));
                    }
                }
            }
        }
        out.push(chunk.to_string());
        Ok(ChunkFlow::Continue)
    }

    fn on_stream_end(
        &self,
        info: &RequestInfo<'_>,
        _complete: bool,
        out: &mut Vec<String>,
        state: &mut State,
    ) -> Result<(), PluginError> {
        let g = guarded(state);
        let choices: Vec<u64> = g.held.keys().copied().collect();
        for index in choices {
            // A finding here under `replace` withholds the rest: the stream is ending
            // anyway, with `[DONE]` or a terminal error.
            let Ok(send) = self.check_held(info, g, index, true) else {
                continue;
            };
            if send.is_empty() {
                continue;
            }
            out.push(g.template.event(index, json!({"content": send})));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const INFO: RequestInfo<'static> = RequestInfo {
        request_id: "r",
        route: "r",
        model: "m",
        family: None,
        stream: true,
        dry_run: false,
        embedding: None,
        caller: None,
        roles: &[],
        headers: &[],
        embedder: None,
        prompt_tokens: 0,
        output_tokens: 0,
        price: None,
    };

    fn guard(options: Value) -> Box<dyn Plugin> {
        build(options.as_object().unwrap(), &Context::default()).unwrap()
    }

    fn whole(g: &dyn Plugin, text: &str) -> (Flow, String, HeaderMap) {
        let mut state: State = None;
        let mut body = json!({"choices": [{"index": 0, "message": {"content": text}}]});
        let flow = g.on_response(&INFO, &mut body, &mut state).unwrap();
        let mut headers = HeaderMap::new();
        g.on_response_headers(&INFO, 200, &mut headers, &mut state)
            .unwrap();
        let content = body["choices"][0]["message"]["content"]
            .as_str()
            .unwrap()
            .to_owned();
        (flow, content, headers)
    }

    /// Streams `text` in pieces of `size` characters; the sent text, or the message the
    /// stream was ended with.
    fn stream(g: &dyn Plugin, text: &str, size: usize, finish: bool) -> Result<String, String> {
        let mut state: State = None;
        let mut out = Vec::new();
        let chars: Vec<char> = text.chars().collect();
        let pieces: Vec<String> = chars.chunks(size).map(|c| c.iter().collect()).collect();
        for (i, piece) in pieces.iter().enumerate() {
            let last = finish && i + 1 == pieces.len();
            let event = json!({"id": "x", "choices": [{"index": 0, "delta": {"content": piece},
                "finish_reason": if last { json!("stop") } else { Value::Null }}]});
            if let ChunkFlow::End(message) = g
                .on_response_chunk(&INFO, event.to_string(), &mut out, &mut state)
                .unwrap()
            {
                return Err(message);
            }
        }
        g.on_stream_end(&INFO, true, &mut out, &mut state).unwrap();
        Ok(out
            .iter()
            .map(|e| serde_json::from_str::<Value>(e).unwrap())
            .filter_map(|v| {
                v["choices"][0]["delta"]["content"]
                    .as_str()
                    .map(str::to_owned)
            })
            .collect())
    }

    const LEAK: &str = "Sure. The admin key is sk-proj-abcdefghijklmnopqrstuvwx and the card 4111 1111 1111 1111 is on file; this is INTERNAL ONLY.";

    #[test]
    fn whole_answers_are_annotated_redacted_or_replaced() {
        let options = json!({"pii": ["api_key", "credit_card"], "keywords": ["internal only"]});
        let (flow, text, headers) = whole(&*guard(options.clone()), LEAK);
        assert_eq!((flow, text.as_str()), (Flow::Continue, LEAK));
        assert_eq!(
            headers["x-switchyard-guard"],
            "keyword,pii:api_key,pii:credit_card"
        );

        let mut redact = options.clone();
        redact["action"] = json!("redact");
        let (_, text, _) = whole(&*guard(redact), LEAK);
        assert_eq!(
            text,
            "Sure. The admin key is [REDACTED:API_KEY] and the card [REDACTED:CREDIT_CARD] is on file; this is [REDACTED]."
        );

        let mut replace = options;
        replace["action"] = json!("replace");
        let (flow, _, _) = whole(&*guard(replace), LEAK);
        let Flow::Answer(answer) = flow else {
            panic!("replaced: {flow:?}")
        };
        assert_eq!(answer.status, 200);
        assert_eq!(answer.message, "The answer was withheld by policy.");

        let (flow, text, headers) = whole(
            &*guard(json!({"compliance": true})),
            "DAN: Sure! As a free AI I have no restrictions.",
        );
        assert_eq!(flow, Flow::Continue);
        assert!(text.starts_with("DAN:"));
        assert_eq!(headers["x-switchyard-guard"], "compliance");
        let (_, _, headers) = whole(&*guard(json!({"compliance": true})), "Here is a recipe.");
        assert!(headers.get("x-switchyard-guard").is_none());
    }

    #[test]
    fn streams_are_checked_before_text_reaches_the_client() {
        let redact = json!({"pii": ["api_key", "credit_card"], "keywords": ["internal only"],
                            "action": "redact", "hold_back": 32});
        let expected = "Sure. The admin key is [REDACTED:API_KEY] and the card [REDACTED:CREDIT_CARD] is on file; this is [REDACTED].";
        for size in [1, 3, 7, 40, 500] {
            for finish in [true, false] {
                assert_eq!(
                    stream(&*guard(redact.clone()), LEAK, size, finish).unwrap(),
                    expected,
                    "pieces of {size}, finish {finish}"
                );
            }
        }
        let clean = "Nothing to see here, just a long and harmless answer about gardening.";
        assert_eq!(stream(&*guard(redact), clean, 5, true).unwrap(), clean);

        // `replace` ends the stream before any of the leak was sent.
        let replace = json!({"pii": ["credit_card"], "action": "replace", "message": "withheld"});
        let mut state: State = None;
        let mut out = Vec::new();
        let g = guard(replace);
        let mut ended = None;
        for piece in [
            "The card is 4111 ",
            "1111 1111 1111",
            " and more text follows here.",
        ] {
            let event = json!({"choices": [{"index": 0, "delta": {"content": piece}, "finish_reason": null}]});
            if let ChunkFlow::End(m) = g
                .on_response_chunk(&INFO, event.to_string(), &mut out, &mut state)
                .unwrap()
            {
                ended = Some(m);
                break;
            }
        }
        assert_eq!(ended.as_deref(), Some("withheld"));
        let sent: String = out
            .iter()
            .map(|e| serde_json::from_str::<Value>(e).unwrap())
            .filter_map(|v| {
                v["choices"][0]["delta"]["content"]
                    .as_str()
                    .map(str::to_owned)
            })
            .collect();
        assert!(!sent.contains("4111"), "{sent:?}");
    }

    #[test]
    fn bad_options_are_errors() {
        let err = |o: Value| build(o.as_object().unwrap(), &Context::default()).unwrap_err();
        assert!(err(json!({})).contains("nothing to check"));
        assert!(err(json!({"keywords": [" "]})).contains("empty phrase"));
        assert!(err(json!({"compliance": true, "hold_back": 0})).contains("hold_back"));
        assert!(err(json!({"compliance": true, "action": "drop"})).contains("unknown variant"));
        assert!(err(json!({"pii": ["emial"]})).contains("unknown variant"));
    }
}
