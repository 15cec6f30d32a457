//! `pii_redact`: personal data in the request (found by the recognizers of the `pii`
//! signal) is blocked, masked, or redacted reversibly before the request leaves.
//!
//! Per type, one action:
//! - `block`: the request is answered locally (400 by default) naming the types found,
//!   never the values;
//! - `mask`: each value becomes `[EMAIL]`, `[CREDIT_CARD]`…, for good;
//! - `redact`: each distinct value becomes a stable placeholder (`<EMAIL_1>`; the same
//!   value gets the same placeholder everywhere in the request) and the placeholders
//!   are put back in the answer, whole or streamed, including a placeholder split
//!   across stream events; placeholders the request did not produce (the model's
//!   own, or ones the client wrote) are left as they are;
//! - `allow`: left alone.
//!
//! The text searched is every message's text (plain or text parts) and the arguments
//! of earlier tool calls; the mapping from placeholders to values lives only in the
//! request's plugin state and is never logged.

use super::stream_event::StreamTemplate;
use super::{
    ChunkFlow, Context, Flow, Hooks, LocalAnswer, Plugin, PluginError, RequestInfo, State,
    UpstreamRequest,
};
use regex::Regex;
use serde::Deserialize;
use serde_json::{Map, Value, json};
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::LazyLock;
use switchyard_wire::{ChatRequest, MessageContent};
use switchyard_workload::pii::{Finding, PiiKind, find_pii};

/// What happens to one type of PII.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
enum Action {
    /// Left alone.
    Allow,
    /// The request is refused.
    Block,
    /// Replaced by the type's name, for good.
    Mask,
    /// Replaced by a placeholder, restored in the answer.
    Redact,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Options {
    /// The action for every type not listed in `types` (default `redact`).
    #[serde(default = "redact")]
    action: Action,
    /// Actions per type (`email`, `phone`, `credit_card`, `iban`, `ssn`,
    /// `ip_address`, `api_key`).
    #[serde(default)]
    types: BTreeMap<PiiKind, Action>,
    /// Lowest recognizer score acted on (default 0.5, as the `pii` signal).
    #[serde(default = "half")]
    min_score: f64,
    /// Status of a blocked request's answer (default 400; any 4xx).
    #[serde(default = "bad_request")]
    block_status: u16,
}

fn redact() -> Action {
    Action::Redact
}

fn half() -> f64 {
    0.5
}

fn bad_request() -> u16 {
    400
}

#[derive(Debug)]
struct PiiRedact {
    /// Per kind, in `PiiKind::ALL` order.
    actions: [Action; PiiKind::ALL.len()],
    min_score: f64,
    block_status: u16,
}

/// Builds the plugin from its options.
pub fn build(
    options: &Map<String, Value>,
    _context: &Context<'_>,
) -> Result<Box<dyn Plugin>, String> {
    let o: Options = super::options(options)?;
    if !(0.0..=1.0).contains(&o.min_score) {
        return Err(format!("min_score {} is not in [0, 1]", o.min_score));
    }
    if !(400..=499).contains(&o.block_status) {
        return Err(format!(
            "block_status {} is not a 4xx status",
            o.block_status
        ));
    }
    let actions = PiiKind::ALL.map(|k| o.types.get(&k).copied().unwrap_or(o.action));
    if actions.iter().all(|a| *a == Action::Allow) {
        return Err("every type is allowed: the plugin would do nothing".to_owned());
    }
    Ok(Box::new(PiiRedact {
        actions,
        min_score: o.min_score,
        block_status: o.block_status,
    }))
}

impl PiiRedact {
    fn action(&self, kind: PiiKind) -> Action {
        PiiKind::ALL
            .iter()
            .position(|k| *k == kind)
            .map_or(Action::Allow, |i| self.actions[i])
    }

    fn restores(&self) -> bool {
        self.actions.contains(&Action::Redact)
    }

    /// The findings in `text` this plugin acts on.
    fn findings(&self, text: &str) -> Vec<Finding> {
        find_pii(text)
            .into_iter()
            .filter(|f| f.score >= self.min_score && self.action(f.kind) != Action::Allow)
            .collect()
    }
}

/// Calls `visit` on every text of the request that goes upstream, always in the same
/// order: message texts (plain or text parts), then earlier tool calls' arguments.
fn for_each_text(body: &mut ChatRequest, mut visit: impl FnMut(&mut String)) {
    for message in &mut body.messages {
        match &mut message.content {
            Some(MessageContent::Text(text)) => visit(text),
            Some(MessageContent::Parts(parts)) => {
                for part in parts.iter_mut() {
                    if part.get("type").and_then(Value::as_str) == Some("text")
                        && let Some(Value::String(text)) = part.get_mut("text")
                    {
                        visit(text);
                    }
                }
            }
            None => {}
        }
        if let Some(Value::Array(calls)) = message.extra.get_mut("tool_calls") {
            for call in calls {
                if let Some(Value::String(arguments)) = call.pointer_mut("/function/arguments") {
                    visit(arguments);
                }
            }
        }
    }
}

/// Tokens shaped like placeholders (`<EMAIL_3>`): numbers they use are skipped, so a
/// placeholder never collides with text the client wrote.
static PLACEHOLDER: LazyLock<Regex> = LazyLock::new(|| {
    #[allow(clippy::expect_used)] // a constant pattern
    Regex::new(r"<[A-Z_]+_[0-9]+>").expect("a valid pattern")
});

/// The placeholders of one request and what they stand for, and the stream state of
/// their restoration.
#[derive(Debug, Default)]
struct Mapping {
    values: HashMap<String, String>,
    /// The longest placeholder, in bytes.
    longest: usize,
    /// Per streamed field (choice, field, tool call): a trailing piece that may be the
    /// start of a placeholder, held until the next piece or the end.
    held: BTreeMap<(u64, Field, u64), String>,
    /// The stream's events' identity, to write held text out at the end.
    template: StreamTemplate,
    /// The last event edited in place, around its content string (what came before
    /// the string, what came after, the choice): a later event with the same text
    /// around its string is of the same shape, and needs no scan for it.
    shape: Option<(String, String, u64)>,
}

/// The fields of an answer placeholders are restored in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Field {
    Content,
    Reasoning,
    Refusal,
    Arguments,
}

impl Field {
    const MESSAGE: [(Field, &'static str); 3] = [
        (Field::Content, "content"),
        (Field::Reasoning, "reasoning_content"),
        (Field::Refusal, "refusal"),
    ];
}

impl Mapping {
    /// `text` with every placeholder of this request replaced by its value.
    fn restore(&self, text: &str) -> String {
        let mut out = String::with_capacity(text.len());
        let mut rest = text;
        while let Some(open) = rest.find('<') {
            out.push_str(&rest[..open]);
            let candidate = &rest[open..];
            let close = candidate.bytes().take(self.longest).position(|b| b == b'>');
            match close.and_then(|c| self.values.get(&candidate[..=c]).map(|v| (c, v))) {
                Some((c, value)) => {
                    out.push_str(value);
                    rest = &candidate[c + 1..];
                }
                None => {
                    out.push('<');
                    rest = &candidate[1..];
                }
            }
        }
        out.push_str(rest);
        out
    }

    /// Restores one streamed piece of a field: what was held before it comes first,
    /// and a trailing `<…` that may still become a placeholder is held back.
    fn restore_piece(&mut self, key: (u64, Field, u64), piece: &str) -> String {
        let mut text = self.held.remove(&key).unwrap_or_default();
        text.push_str(piece);
        let tail = self.open_tail(&text);
        let held = text.split_off(tail);
        if !held.is_empty() {
            self.held.insert(key, held);
        }
        self.restore(&text)
    }

    /// Where a trailing `<` followed only by placeholder characters (and shorter than
    /// the longest placeholder) starts; the text's length when there is none.
    fn open_tail(&self, text: &str) -> usize {
        match text.rfind('<') {
            Some(i)
                if text.len() - i < self.longest
                    && text[i + 1..]
                        .bytes()
                        .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_') =>
            {
                i
            }
            _ => text.len(),
        }
    }

    /// Everything held for one choice, in field order.
    fn release(&mut self, choice: u64) -> Vec<((Field, u64), String)> {
        let keys: Vec<(u64, Field, u64)> = self
            .held
            .keys()
            .filter(|(c, _, _)| *c == choice)
            .copied()
            .collect();
        keys.into_iter()
            .filter_map(|k| self.held.remove(&k).map(|text| ((k.1, k.2), text)))
            .collect()
    }
}

/// The placeholder type name: `EMAIL`, `CREDIT_CARD`.
fn upper(kind: PiiKind) -> String {
    kind.name().to_ascii_uppercase()
}

impl Plugin for PiiRedact {
    fn hooks(&self) -> Hooks {
        let restores = self.restores();
        Hooks {
            request: true,
            response: restores,
            stream: restores,
            ..Hooks::default()
        }
    }

    fn on_request(
        &self,
        _info: &RequestInfo<'_>,
        upstream: &mut UpstreamRequest<'_>,
        state: &mut State,
    ) -> Result<Flow, PluginError> {
        let mut found: Vec<Vec<Finding>> = Vec::new();
        let mut taken: HashSet<String> = HashSet::new();
        let mut blocked: BTreeSet<&'static str> = BTreeSet::new();
        for_each_text(upstream.body, |text| {
            let findings = self.findings(text);
            if !findings.is_empty() {
                taken.extend(PLACEHOLDER.find_iter(text).map(|m| m.as_str().to_owned()));
            }
            blocked.extend(
                findings
                    .iter()
                    .filter(|f| self.action(f.kind) == Action::Block)
                    .map(|f| f.kind.name()),
            );
            found.push(findings);
        });
        if !blocked.is_empty() {
            let kinds: Vec<&str> = blocked.into_iter().collect();
            return Ok(Flow::Answer(LocalAnswer::new(
                self.block_status,
                "pii_blocked",
                format!(
                    "the request contains personal data that may not be sent ({}); remove it and retry",
                    kinds.join(", ")
                ),
            )));
        }
        if found.iter().all(Vec::is_empty) {
            return Ok(Flow::Continue);
        }
        let mut mapping = Mapping::default();
        let mut assigned: HashMap<(PiiKind, String), String> = HashMap::new();
        let mut next: HashMap<PiiKind, usize> = HashMap::new();
        let mut fields = found.into_iter();
        for_each_text(upstream.body, |text| {
            let Some(findings) = fields.next().filter(|f| !f.is_empty()) else {
                return;
            };
            let mut out = String::with_capacity(text.len());
            let mut at = 0;
            for f in findings {
                out.push_str(&text[at..f.start]);
                let value = &text[f.start..f.end];
                match self.action(f.kind) {
                    Action::Mask => {
                        out.push('[');
                        out.push_str(&upper(f.kind));
                        out.push(']');
                    }
                    Action::Redact => {
                        let placeholder = assigned
                            .entry((f.kind, value.to_owned()))
                            .or_insert_with(|| {
                                let n = next.entry(f.kind).or_insert(0);
                                loop {
                                    *n += 1;
                                    let p = format!("<{}_{n}>", upper(f.kind));
                                    if !taken.contains(&p) {
                                        break p;
                                    }
                                }
                            });
                        mapping.longest = mapping.longest.max(placeholder.len());
                        mapping.values.insert(placeholder.clone(), value.to_owned());
                        out.push_str(placeholder);
                    }
                    Action::Allow | Action::Block => out.push_str(value),
                }
                at = f.end;
            }
            out.push_str(&text[at..]);
            *text = out;
        });
        if !mapping.values.is_empty() {
            *state = Some(Box::new(mapping));
        }
        Ok(Flow::Continue)
    }

    fn on_response(
        &self,
        _info: &RequestInfo<'_>,
        body: &mut Value,
        state: &mut State,
    ) -> Result<Flow, PluginError> {
        let Some(mapping) = state.as_ref().and_then(|s| s.downcast_ref::<Mapping>()) else {
            return Ok(Flow::Continue);
        };
        let restore = |v: &mut Value| {
            if let Value::String(text) = v {
                *text = mapping.restore(text);
            }
        };
        if let Some(Value::Array(choices)) = body.get_mut("choices") {
            for choice in choices {
                let Some(message) = choice.get_mut("message") else {
                    continue;
                };
                for (_, name) in Field::MESSAGE {
                    if let Some(v) = message.get_mut(name) {
                        restore(v);
                    }
                }
                if let Some(Value::Array(calls)) = message.get_mut("tool_calls") {
                    for call in calls {
                        if let Some(v) = call.pointer_mut("/function/arguments") {
                            restore(v);
                        }
                    }
                }
            }
        }
        Ok(Flow::Continue)
    }

    fn on_response_chunk(
        &self,
        _info: &RequestInfo<'_>,
        event: String,
        out: &mut Vec<String>,
        state: &mut State,
    ) -> Result<ChunkFlow, PluginError> {
        let Some(mapping) = state.as_mut().and_then(|s| s.downcast_mut::<Mapping>()) else {
            out.push(event);
            return Ok(ChunkFlow::Continue);
        };
        // Most events carry no `<` (plain or JSON-escaped) and nothing is held: they
        // pass as they are, unparsed, once the first one gave the template.
        let opens = openers().is_match(&event);
        if !opens && mapping.held.is_empty() && mapping.template.is_set() {
            out.push(event);
            return Ok(ChunkFlow::Continue);
        }
        if mapping.template.is_set() {
            match restore_in_place(mapping, &event) {
                Some(InPlace::Unchanged) => {
                    out.push(event);
                    return Ok(ChunkFlow::Continue);
                }
                Some(InPlace::Edited(edited)) => {
                    out.push(edited);
                    return Ok(ChunkFlow::Continue);
                }
                None => {}
            }
        }
        let Ok(mut chunk) = serde_json::from_str::<Value>(&event) else {
            out.push(event);
            return Ok(ChunkFlow::Continue);
        };
        mapping.template.learn(&chunk);
        if let Some(Value::Array(choices)) = chunk.get_mut("choices") {
            for choice in choices {
                restore_choice(mapping, choice);
            }
        }
        out.push(chunk.to_string());
        Ok(ChunkFlow::Continue)
    }

    fn on_stream_end(
        &self,
        _info: &RequestInfo<'_>,
        _complete: bool,
        out: &mut Vec<String>,
        state: &mut State,
    ) -> Result<(), PluginError> {
        let Some(mapping) = state.as_mut().and_then(|s| s.downcast_mut::<Mapping>()) else {
            return Ok(());
        };
        let choices: BTreeSet<u64> = mapping.held.keys().map(|k| k.0).collect();
        for index in choices {
            let mut delta = Value::Object(Map::new());
            for ((field, call), text) in mapping.release(index) {
                put(&mut delta, field, call, &mapping.restore(&text));
            }
            out.push(mapping.template.event(index, delta));
        }
        Ok(())
    }
}

/// What [`restore_in_place`] looks for: the shape it edits, then what it leaves to
/// the full parse (any of those after [`GOING`]).
const MARKERS: [&str; 8] = [
    "\"delta\":{",
    "\"content\":\"",
    "\"index\":",
    "\"finish_reason\":null",
    "\"tool_calls\"",
    "\"reasoning_content\"",
    "\"refusal\"",
    "\"function_call\"",
];
const DELTA: usize = 0;
const CONTENT: usize = 1;
const INDEX: usize = 2;
const GOING: usize = 3;

fn markers() -> &'static aho_corasick::AhoCorasick {
    static MATCHER: std::sync::OnceLock<aho_corasick::AhoCorasick> = std::sync::OnceLock::new();
    MATCHER.get_or_init(|| {
        #[allow(clippy::expect_used)] // fixed patterns
        aho_corasick::AhoCorasick::new(MARKERS).expect("valid patterns")
    })
}

/// A `<`, plain or JSON-escaped: what may begin a placeholder in an event.
fn openers() -> &'static aho_corasick::AhoCorasick {
    static MATCHER: std::sync::OnceLock<aho_corasick::AhoCorasick> = std::sync::OnceLock::new();
    MATCHER.get_or_init(|| {
        #[allow(clippy::expect_used)] // fixed patterns
        aho_corasick::AhoCorasick::new(["<", "\\u003c", "\\u003C"]).expect("valid patterns")
    })
}

/// An event of the same shape as the last one edited: the same text before and after
/// its content string, and a string in between that ends where that text begins.
/// Its content string's bounds (after the opening quote, at the closing one) and
/// choice.
fn same_shape(mapping: &Mapping, event: &str) -> Option<(usize, usize, u64)> {
    let (before, after, index) = mapping.shape.as_ref()?;
    if !(event.len() > before.len() + after.len()
        && event.starts_with(before.as_str())
        && event.ends_with(after.as_str()))
    {
        return None;
    }
    let start = before.len();
    let end = string_end(event, start)?;
    (end + 1 == event.len() - after.len()).then_some((start, end, *index))
}

/// Where the JSON string whose text starts at `start` ends: the first quote not
/// escaped.
fn string_end(event: &str, start: usize) -> Option<usize> {
    let bytes = event.as_bytes();
    let mut end = start;
    loop {
        match bytes.get(end)? {
            b'\\' => end += 2,
            b'"' => return Some(end),
            _ => end += 1,
        }
    }
}

/// The bounds of an event's content string and its choice, when the event is of the
/// shape [`restore_in_place`] edits.
fn shape_of(event: &str) -> Option<(usize, usize, u64)> {
    // What the event holds, found in one pass (a marker cannot match inside a JSON
    // string, where quotes are escaped).
    let mut count = [0u8; MARKERS.len()];
    let (mut delta, mut start, mut at) = (None, 0, 0);
    for m in markers().find_iter(event) {
        let i = m.pattern().as_usize();
        count[i] = count[i].saturating_add(1);
        match i {
            DELTA => delta = Some(m.end()),
            CONTENT => start = m.end(),
            INDEX => at = m.end(),
            _ => {}
        }
    }
    let once = |i: usize| count[i] == 1;
    let shaped = once(DELTA) && once(CONTENT) && once(INDEX) && count[GOING] > 0;
    if !shaped || count[GOING + 1..].iter().any(|&n| n > 0) || delta.is_none_or(|d| d > start) {
        return None;
    }
    // One choice: one index, its digits.
    let digits = event[at..]
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(event.len() - at);
    let index: u64 = event[at..at + digits].parse().ok()?;
    let end = string_end(event, start)?;
    Some((start, end, index))
}

/// What editing an event in place did.
enum InPlace {
    /// Its content needed nothing: the event goes on as it is.
    Unchanged,
    /// The event with its content restored.
    Edited(String),
}

/// Restores an event of the usual shape, one choice still going with a text delta
/// (`{…"choices":[{"index":0,"delta":{"content":"…"},"finish_reason":null}]}`), by
/// editing its content string where it is: only that string is decoded and encoded,
/// not the whole event. None when the event is of any other shape (several choices,
/// tool calls, other text fields, a finish, spaces after the colons): the caller
/// parses it.
fn restore_in_place(mapping: &mut Mapping, event: &str) -> Option<InPlace> {
    let (start, end, index) = match same_shape(mapping, event) {
        Some(found) => found,
        None => {
            let found = shape_of(event)?;
            let (start, end, index) = found;
            mapping.shape = Some((
                event[..start].to_owned(),
                event[end + 1..].to_owned(),
                index,
            ));
            found
        }
    };
    let text: String = serde_json::from_str(event.get(start - 1..=end)?).ok()?;
    let restored = mapping.restore_piece((index, Field::Content, 0), &text);
    if restored == text {
        return Some(InPlace::Unchanged);
    }
    let encoded = Value::String(restored).to_string();
    let mut edited = String::with_capacity(event.len() + encoded.len());
    edited.push_str(&event[..start - 1]);
    edited.push_str(&encoded);
    edited.push_str(&event[end + 1..]);
    Some(InPlace::Edited(edited))
}

/// Restores one streamed choice's delta; a choice that finishes gets what was held.
fn restore_choice(mapping: &mut Mapping, choice: &mut Value) {
    let index = choice.get("index").and_then(Value::as_u64).unwrap_or(0);
    let finished = choice.get("finish_reason").is_some_and(|r| !r.is_null());
    let Some(delta) = choice.get_mut("delta") else {
        return;
    };
    for (field, name) in Field::MESSAGE {
        if let Some(Value::String(text)) = delta.get_mut(name) {
            *text = mapping.restore_piece((index, field, 0), text);
        }
    }
    if let Some(Value::Array(calls)) = delta.get_mut("tool_calls") {
        for call in calls {
            let at = call.get("index").and_then(Value::as_u64).unwrap_or(0);
            if let Some(Value::String(text)) = call.pointer_mut("/function/arguments") {
                *text = mapping.restore_piece((index, Field::Arguments, at), text);
            }
        }
    }
    if finished {
        for ((field, call), text) in mapping.release(index) {
            let text = mapping.restore(&text);
            put(delta, field, call, &text);
        }
    }
}

/// Appends `text` to a delta's field (creating it).
fn put(delta: &mut Value, field: Field, call: u64, text: &str) {
    let Some(object) = delta.as_object_mut() else {
        return;
    };
    let append = |slot: &mut Value| match slot {
        Value::String(s) => s.push_str(text),
        other => *other = Value::String(text.to_owned()),
    };
    match Field::MESSAGE.iter().find(|(f, _)| *f == field) {
        Some((_, name)) => append(object.entry(*name).or_insert(Value::Null)),
        None => {
            let calls = object
                .entry("tool_calls")
                .or_insert_with(|| Value::Array(Vec::new()));
            if let Value::Array(calls) = calls {
                let at = calls
                    .iter()
                    .position(|c| c.get("index").and_then(Value::as_u64) == Some(call));
                match at {
                    Some(i) => {
                        if let Some(slot) = calls[i].pointer_mut("/function/arguments") {
                            append(slot);
                        } else {
                            calls[i]["function"]["arguments"] = Value::String(text.to_owned());
                        }
                    }
                    None => calls.push(json!({"index": call, "function": {"arguments": text}})),
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderMap;
    use proptest::prelude::*;

    const INFO: RequestInfo<'static> = RequestInfo {
        request_id: "r",
        route: "r",
        model: "m",
        family: None,
        stream: false,
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

    fn plugin(options: Value) -> Box<dyn Plugin> {
        build(options.as_object().unwrap(), &Context::default()).unwrap()
    }

    fn request(plugin: &dyn Plugin, messages: Value) -> (Flow, ChatRequest, State) {
        let mut body: ChatRequest =
            serde_json::from_value(json!({"model": "m", "messages": messages})).unwrap();
        let mut headers = HeaderMap::new();
        let mut state: State = None;
        let flow = plugin
            .on_request(
                &INFO,
                &mut UpstreamRequest {
                    body: &mut body,
                    headers: &mut headers,
                },
                &mut state,
            )
            .unwrap();
        (flow, body, state)
    }

    fn text(body: &ChatRequest, i: usize) -> String {
        body.messages[i].content.as_ref().unwrap().text()
    }

    #[test]
    fn values_become_stable_placeholders_and_come_back() {
        let p = plugin(json!({}));
        let (flow, body, mut state) = request(
            &*p,
            json!([
                {"role": "system", "content": "Escalate to ops@example.com."},
                {"role": "user", "content": [{"type": "text",
                  "text": "Mail ann@example.org and ops@example.com, card 4111 1111 1111 1111."}]},
                {"role": "assistant", "content": null, "tool_calls": [{"id": "c", "type": "function",
                  "function": {"name": "send", "arguments": "{\"to\":\"ann@example.org\"}"}}]}
            ]),
        );
        assert_eq!(flow, Flow::Continue);
        assert_eq!(text(&body, 0), "Escalate to <EMAIL_1>.");
        assert_eq!(
            text(&body, 1),
            "Mail <EMAIL_2> and <EMAIL_1>, card <CREDIT_CARD_1>."
        );
        let sent = serde_json::to_string(&body).unwrap();
        assert!(
            !sent.contains("example.org") && !sent.contains("4111"),
            "{sent}"
        );
        assert!(sent.contains(r#"{\"to\":\"<EMAIL_2>\"}"#), "{sent}");

        let mut answer = json!({"choices": [{"index": 0, "message": {"role": "assistant",
            "content": "Sent to <EMAIL_2>; <EMAIL_9> is not ours; <EMAIL_1>",
            "tool_calls": [{"function": {"arguments": "{\"card\":\"<CREDIT_CARD_1>\"}"}}]}}]});
        p.on_response(&INFO, &mut answer, &mut state).unwrap();
        assert_eq!(
            answer["choices"][0]["message"]["content"],
            "Sent to ann@example.org; <EMAIL_9> is not ours; ops@example.com"
        );
        assert_eq!(
            answer["choices"][0]["message"]["tool_calls"][0]["function"]["arguments"],
            "{\"card\":\"4111 1111 1111 1111\"}"
        );
    }

    #[test]
    fn placeholders_the_client_wrote_are_not_reused() {
        let p = plugin(json!({}));
        let (_, body, state) = request(
            &*p,
            json!([{"role": "user", "content": "Template <EMAIL_1> for bob@example.com"}]),
        );
        assert_eq!(text(&body, 0), "Template <EMAIL_1> for <EMAIL_2>");
        let mapping = state.as_ref().unwrap().downcast_ref::<Mapping>().unwrap();
        assert_eq!(
            mapping.restore("<EMAIL_1> <EMAIL_2>"),
            "<EMAIL_1> bob@example.com"
        );
    }

    #[test]
    fn block_names_types_never_values_and_mask_is_for_good() {
        let p = plugin(
            json!({"action": "mask", "types": {"credit_card": "block"}, "block_status": 403}),
        );
        let (flow, _, _) = request(
            &*p,
            json!([{"role": "user", "content": "card 4111 1111 1111 1111, mail a@example.com"}]),
        );
        let Flow::Answer(answer) = flow else {
            panic!("blocked: {flow:?}")
        };
        assert_eq!((answer.status, answer.code.as_str()), (403, "pii_blocked"));
        assert!(answer.message.contains("credit_card"), "{}", answer.message);
        assert!(!answer.message.contains("4111") && !answer.message.contains("a@example"));

        let (flow, body, state) = request(
            &*p,
            json!([{"role": "user", "content": "mail a@example.com"}]),
        );
        assert_eq!(flow, Flow::Continue);
        assert_eq!(text(&body, 0), "mail [EMAIL]");
        assert!(state.is_none(), "nothing to restore");
        assert!(!p.hooks().response, "no redact action, no response hooks");
    }

    #[test]
    fn bad_options_are_errors() {
        let err = |o: Value| build(o.as_object().unwrap(), &Context::default()).unwrap_err();
        assert!(err(json!({"action": "allow"})).contains("nothing"));
        assert!(err(json!({"block_status": 200})).contains("4xx"));
        assert!(err(json!({"min_score": 2})).contains("min_score"));
        assert!(err(json!({"types": {"emial": "block"}})).contains("unknown variant"));
        assert!(err(json!({"actoin": "mask"})).contains("did you mean `action`"));
    }

    fn mapping() -> Mapping {
        let mut m = Mapping::default();
        for (p, v) in [
            ("<EMAIL_1>", "ann@example.org"),
            ("<EMAIL_12>", "bob@example.com"),
            ("<CREDIT_CARD_1>", "4111 1111 1111 1111"),
        ] {
            m.longest = m.longest.max(p.len());
            m.values.insert(p.to_owned(), v.to_owned());
        }
        m
    }

    /// Streams `answer` cut at `cuts` through the chunk hook, then ends it.
    fn stream(answer: &str, cuts: &[usize], finish_last: bool) -> String {
        let p = plugin(json!({}));
        let mut state: State = Some(Box::new(mapping()));
        let mut bounds: Vec<usize> = cuts
            .iter()
            .map(|c| c % (answer.len() + 1))
            .filter(|c| answer.is_char_boundary(*c))
            .collect();
        bounds.extend([0, answer.len()]);
        bounds.sort_unstable();
        bounds.dedup();
        let mut out = Vec::new();
        let pieces: Vec<&str> = bounds.windows(2).map(|w| &answer[w[0]..w[1]]).collect();
        for (i, piece) in pieces.iter().enumerate() {
            let finish = finish_last && i + 1 == pieces.len();
            let event = json!({"id": "x", "object": "chat.completion.chunk", "model": "m",
                "choices": [{"index": 0, "delta": {"content": piece},
                             "finish_reason": if finish { json!("stop") } else { Value::Null }}]});
            p.on_response_chunk(&INFO, event.to_string(), &mut out, &mut state)
                .unwrap();
        }
        p.on_stream_end(&INFO, true, &mut out, &mut state).unwrap();
        out.iter()
            .map(|e| serde_json::from_str::<Value>(e).unwrap())
            .filter_map(|v| {
                v["choices"][0]["delta"]["content"]
                    .as_str()
                    .map(str::to_owned)
            })
            .collect()
    }

    #[test]
    fn a_placeholder_split_across_events_is_restored_whole() {
        let answer = "To <EMAIL_12>, <EMAIL_1> and <CREDIT_CARD_1>; <EMAIL_7> and <b> stay.";
        let expected = mapping().restore(answer);
        assert!(expected.contains("bob@example.com") && expected.contains("<EMAIL_7>"));
        assert_eq!(stream(answer, &[5, 9, 11, 24, 40, 41], true), expected);
        // Cut one byte at a time, with or without a finishing event.
        let every: Vec<usize> = (0..answer.len()).collect();
        assert_eq!(stream(answer, &every, true), expected);
        assert_eq!(stream(answer, &every, false), expected);
        // A stream ending inside a would-be placeholder still gets its text.
        assert_eq!(stream("tail <EMAI", &[7], false), "tail <EMAI");
    }

    #[test]
    fn escaped_angle_brackets_are_restored_too() {
        let p = plugin(json!({}));
        let mut state: State = Some(Box::new(mapping()));
        let mut out = Vec::new();
        for event in [
            r#"{"id":"x","choices":[{"index":0,"delta":{"content":"Hi "},"finish_reason":null}]}"#,
            r#"{"id":"x","choices":[{"index":0,"delta":{"content":"\u003cEMAIL_1\u003e"},"finish_reason":null}]}"#,
        ] {
            p.on_response_chunk(&INFO, event.to_owned(), &mut out, &mut state)
                .unwrap();
        }
        let last: Value = serde_json::from_str(&out[1]).unwrap();
        assert_eq!(last["choices"][0]["delta"]["content"], "ann@example.org");
    }

    #[test]
    fn an_event_that_only_looks_like_the_last_one_is_read_whole() {
        let p = plugin(json!({}));
        let mut state: State = Some(Box::new(mapping()));
        let mut out = Vec::new();
        let before = r#"{"id":"x","choices":[{"index":0,"delta":{"content":""#;
        let after = r#""},"finish_reason":null}]}"#;
        for middle in [
            "Hi ",
            "<EMAIL_1>",
            // The same text around it, but two strings: the second holds a placeholder.
            r#"a","refusal":"<EMAIL_12>"#,
            r#"\"<EMAIL_1>\""#,
        ] {
            p.on_response_chunk(
                &INFO,
                format!("{before}{middle}{after}"),
                &mut out,
                &mut state,
            )
            .unwrap();
        }
        let delta = |i: usize| {
            serde_json::from_str::<Value>(&out[i]).unwrap()["choices"][0]["delta"].clone()
        };
        assert_eq!(delta(1)["content"], "ann@example.org");
        assert_eq!(delta(2)["content"], "a");
        assert_eq!(delta(2)["refusal"], "bob@example.com");
        assert_eq!(delta(3)["content"], "\"ann@example.org\"");
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]
        #[test]
        fn any_chunking_restores_the_same_text(
            parts in proptest::collection::vec(
                prop_oneof![
                    Just("<EMAIL_1>".to_owned()),
                    Just("<EMAIL_12>".to_owned()),
                    Just("<CREDIT_CARD_1>".to_owned()),
                    Just("<EMAIL_".to_owned()),
                    Just("<".to_owned()),
                    // Quotes, backslashes and controls are escaped in the events.
                    "[a-z <>_0-9É\"\\\\\n]{0,8}",
                ],
                0..12,
            ),
            cuts in proptest::collection::vec(0usize..200, 0..12),
            finish in any::<bool>(),
        ) {
            let answer: String = parts.concat();
            prop_assert_eq!(stream(&answer, &cuts, finish), mapping().restore(&answer));
        }
    }
}
