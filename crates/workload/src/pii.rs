//! PII signals: personal data and secrets in the request, each finding with a type, a
//! byte span and a score, so that a later plugin can redact exactly what was found.
//!
//! Recognizers pair a pattern with a check where one exists, so that numbers that
//! merely look like identifiers are not flagged:
//! - `email`: local part, `@`, a dotted domain with a letter TLD (0.95);
//! - `phone`: international (`+` and a country code) or grouped national numbers of 7 to
//!   15 digits (0.8 with `+` or a bracketed area code, 0.9 with a word such as "phone"
//!   or "call" just before; bare groups, often quantities, 0.45; dates never);
//! - `credit_card`: 13 to 19 digits in groups, Luhn-valid (0.95 with a known issuer
//!   prefix, else 0.6);
//! - `iban`: country code, check digits and the country's length, mod-97 valid (0.95);
//! - `ssn`: US `AAA-GG-SSSS` outside the never-issued ranges (0.85);
//! - `ip_address`: IPv4 with octets ≤ 255, or IPv6 that parses (0.8);
//! - `api_key`: known key prefixes (OpenAI, Anthropic, AWS, GitHub, Slack, Google,
//!   Stripe), JWTs and PEM private keys (0.95), and long high-entropy tokens that mix
//!   letters and digits (0.6).
//!
//! Person names and postal addresses are not recognized: no pattern or dictionary
//! here makes them reliable enough.

use crate::keyword::Scope;
use crate::signals::{
    BuildContext, FamilyConfig, Request, Signal, SignalFamily, SignalKey, SignalValue,
};
use regex::Regex;
use serde::{Deserialize, Serialize};
use std::sync::LazyLock;

/// The kinds of PII recognized.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PiiKind {
    /// An e-mail address.
    Email,
    /// A telephone number.
    Phone,
    /// A payment card number.
    CreditCard,
    /// An international bank account number.
    Iban,
    /// A US social security number.
    Ssn,
    /// An IPv4 or IPv6 address.
    IpAddress,
    /// An API key, token or private key.
    ApiKey,
}

impl PiiKind {
    /// Every kind.
    pub const ALL: [PiiKind; 7] = [
        PiiKind::Email,
        PiiKind::Phone,
        PiiKind::CreditCard,
        PiiKind::Iban,
        PiiKind::Ssn,
        PiiKind::IpAddress,
        PiiKind::ApiKey,
    ];

    /// The configuration name.
    pub fn name(self) -> &'static str {
        match self {
            PiiKind::Email => "email",
            PiiKind::Phone => "phone",
            PiiKind::CreditCard => "credit_card",
            PiiKind::Iban => "iban",
            PiiKind::Ssn => "ssn",
            PiiKind::IpAddress => "ip_address",
            PiiKind::ApiKey => "api_key",
        }
    }
}

/// One piece of PII found in a text.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Finding {
    /// What it is.
    pub kind: PiiKind,
    /// Byte offset where it starts.
    pub start: usize,
    /// Byte offset where it ends (exclusive).
    pub end: usize,
    /// How sure the recognizer is, in [0, 1].
    pub score: f64,
}

struct Patterns {
    email: Regex,
    phone: Regex,
    card: Regex,
    iban: Regex,
    ssn: Regex,
    ipv4: Regex,
    ipv6: Regex,
    key: Regex,
    token: Regex,
}

// The patterns are constants; a failure to compile is a bug caught by every test.
#[allow(clippy::expect_used)]
static PATTERNS: LazyLock<Patterns> = LazyLock::new(|| {
    let re = |p: &str| Regex::new(p).expect("a valid built-in pattern");
    Patterns {
        email: re(r"(?i)\b[a-z0-9._%+-]+@[a-z0-9-]+(?:\.[a-z0-9-]+)*\.[a-z]{2,24}\b"),
        phone: re(
            r"(?:\+\d{1,3}[\s.-]?)?(?:\(\d{1,4}\)[\s.-]?)?\d{2,4}(?:[\s.-]\d{2,4}){0,3}[\s.-]\d{2,8}\b|\+\d{7,15}",
        ),
        card: re(r"\b\d(?:[ -]?\d){12,18}\b"),
        iban: re(r"\b[A-Z]{2}\d{2}(?: ?[A-Z0-9]){11,30}\b"),
        ssn: re(r"\b\d{3}-\d{2}-\d{4}\b"),
        ipv4: re(r"\b(?:\d{1,3}\.){3}\d{1,3}\b"),
        ipv6: re(r"(?i)\b[0-9a-f]{0,4}(?::[0-9a-f]{0,4}){2,7}\b"),
        key: re(concat!(
            r"\bsk-ant-[A-Za-z0-9_-]{20,}|\bsk-(?:proj-)?[A-Za-z0-9_-]{20,}|\bAKIA[0-9A-Z]{16}\b",
            r"|\bgh[pousr]_[A-Za-z0-9]{36,}|\bgithub_pat_[A-Za-z0-9_]{22,}|\bxox[baprs]-[A-Za-z0-9-]{10,}",
            r"|\bAIza[0-9A-Za-z_-]{35}|\b[rs]k_live_[0-9A-Za-z]{16,}",
            r"|\beyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}",
            r"|-----BEGIN (?:[A-Z]+ )?PRIVATE KEY-----"
        )),
        token: re(r"[A-Za-z0-9+/_=-]{24,}"),
    }
});

/// Finds every recognized piece of PII in `text`, in order of position; overlapping
/// findings keep the higher score.
pub fn find_pii(text: &str) -> Vec<Finding> {
    let p = &*PATTERNS;
    let mut out = Vec::new();
    let mut push = |kind, start, end, score| {
        out.push(Finding {
            kind,
            start,
            end,
            score,
        })
    };
    for m in p.email.find_iter(text) {
        push(PiiKind::Email, m.start(), m.end(), 0.95);
    }
    for m in p.key.find_iter(text) {
        push(PiiKind::ApiKey, m.start(), m.end(), 0.95);
    }
    for m in p.iban.find_iter(text) {
        if iban_valid(m.as_str()) {
            push(PiiKind::Iban, m.start(), m.end(), 0.95);
        }
    }
    for m in p.card.find_iter(text) {
        let digits: Vec<u8> = m
            .as_str()
            .bytes()
            .filter(u8::is_ascii_digit)
            .map(|b| b - b'0')
            .collect();
        if luhn_valid(&digits) {
            let score = if known_issuer(&digits) { 0.95 } else { 0.6 };
            push(PiiKind::CreditCard, m.start(), m.end(), score);
        }
    }
    for m in p.ssn.find_iter(text) {
        if ssn_valid(m.as_str()) {
            push(PiiKind::Ssn, m.start(), m.end(), 0.85);
        }
    }
    for m in p.ipv4.find_iter(text) {
        if m.as_str()
            .split('.')
            .all(|o| o.parse::<u16>().is_ok_and(|v| v <= 255))
            && !version_like(text, m.start())
        {
            push(PiiKind::IpAddress, m.start(), m.end(), 0.8);
        }
    }
    for m in p.ipv6.find_iter(text) {
        if m.as_str().matches(':').count() >= 2
            && m.as_str().parse::<std::net::Ipv6Addr>().is_ok()
            && m.as_str().len() > 4
        {
            push(PiiKind::IpAddress, m.start(), m.end(), 0.8);
        }
    }
    for m in p.phone.find_iter(text) {
        let s = m.as_str();
        let digits = s.bytes().filter(u8::is_ascii_digit).count();
        if !(6..=15).contains(&digits) {
            continue;
        }
        if looks_like_date(s) || ssn_shaped(s) {
            continue;
        }
        // Bare digit groups are often quantities: below the default threshold unless
        // a `+`, a bracketed area code or a word such as "call" marks a phone.
        let mut score: f64 = if s.starts_with('+') || s.contains('(') {
            0.8
        } else {
            0.45
        };
        let cue = [
            "phone",
            "telephone",
            "call",
            "tel",
            "mobile",
            "cell",
            "whatsapp",
            "fax",
            "number",
            "dial",
            "sms",
            "text",
            "reach",
            "contact",
            "desk",
            "office",
            "landline",
            "answering",
            "message",
            "messages",
            "registered",
        ];
        let cued = words_near(text, m.start(), m.end())
            .any(|w| cue.iter().any(|c| w.eq_ignore_ascii_case(c)));
        if cued {
            score = 0.9;
        } else if digits < 7 {
            // Six digits are a phone number only where the text says so.
            continue;
        }
        push(PiiKind::Phone, m.start(), m.end(), score);
    }
    for m in p.token.find_iter(text) {
        let s = m.as_str();
        let has_digit = s.bytes().any(|b| b.is_ascii_digit());
        let has_upper = s.bytes().any(|b| b.is_ascii_uppercase());
        let has_lower = s.bytes().any(|b| b.is_ascii_lowercase());
        if has_digit && has_upper && has_lower && entropy(s) >= 4.0 {
            push(PiiKind::ApiKey, m.start(), m.end(), 0.6);
        }
    }
    resolve_overlaps(out)
}

/// Keeps, among overlapping findings, the one with the higher score (then the longer).
fn resolve_overlaps(mut found: Vec<Finding>) -> Vec<Finding> {
    found.sort_by(|a, b| {
        b.score
            .total_cmp(&a.score)
            .then((b.end - b.start).cmp(&(a.end - a.start)))
    });
    // The kept findings never overlap, so only the nearest one on each side of a
    // candidate can: a map by start answers that in O(log n), for O(n log n) in all
    // (dense digit groups make tens of thousands of findings).
    let mut kept: std::collections::BTreeMap<usize, Finding> = std::collections::BTreeMap::new();
    for f in found {
        let before = kept.range(..=f.start).next_back().map(|(_, k)| k);
        let after = kept.range(f.start..).next().map(|(_, k)| k);
        let clear =
            before.is_none_or(|k| k.end <= f.start) && after.is_none_or(|k| f.end <= k.start);
        if clear && f.end > f.start {
            kept.insert(f.start, f);
        }
    }
    kept.into_values().collect()
}

/// `2024-01-15`, `15.01.2024`, `01/15/24`.
fn looks_like_date(s: &str) -> bool {
    let groups: Vec<&str> = s.split(['-', '.', '/']).collect();
    let numeric = groups
        .iter()
        .all(|g| !g.is_empty() && g.bytes().all(|b| b.is_ascii_digit()));
    numeric
        && groups.len() == 3
        && ((groups[0].len() == 4 && groups[1].len() <= 2 && groups[2].len() <= 2)
            || (groups[0].len() <= 2 && groups[1].len() <= 2 && matches!(groups[2].len(), 2 | 4)))
}

/// The word just before `start`, skipping spaces and a colon ("call: 555…"). Only
/// the last few bytes are looked at, so a scan stays linear in the text.
fn word_before(text: &str, start: usize) -> &str {
    let head = text[..start].trim_end().trim_end_matches(':').trim_end();
    let from = head
        .char_indices()
        .rev()
        .take_while(|(_, c)| c.is_ascii_alphabetic())
        .last()
        .map_or(head.len(), |(i, _)| i);
    &head[from..]
}

/// `AAA-GG-SSSS`: the SSN recognizer's, never a phone number.
fn ssn_shaped(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() == 11
        && b[3] == b'-'
        && b[6] == b'-'
        && b.iter()
            .enumerate()
            .all(|(i, c)| i == 3 || i == 6 || c.is_ascii_digit())
}

/// The last three words within 40 bytes before `start` and the first word within 12
/// bytes after `end`: where a cue such as "call me at" or "(office)" sits.
fn words_near(text: &str, start: usize, end: usize) -> impl Iterator<Item = &str> {
    let mut from = start.saturating_sub(40);
    while !text.is_char_boundary(from) {
        from += 1;
    }
    let mut to = (end + 12).min(text.len());
    while !text.is_char_boundary(to) {
        to -= 1;
    }
    let is_word = |w: &&str| !w.is_empty();
    let split = |c: char| !c.is_ascii_alphabetic();
    let before: Vec<&str> = text[from..start].split(split).filter(is_word).collect();
    let skip = before.len().saturating_sub(3);
    before
        .into_iter()
        .skip(skip)
        .chain(text[end..to].split(split).find(is_word))
}

/// `v1.2.3.4`-style versions and dotted numbers after "version" are not addresses.
fn version_like(text: &str, start: usize) -> bool {
    text[..start].ends_with(['v', 'V']) || word_before(text, start).eq_ignore_ascii_case("version")
}

/// The Luhn checksum of a card number's digits.
pub fn luhn_valid(digits: &[u8]) -> bool {
    if !(13..=19).contains(&digits.len()) || digits.iter().all(|d| *d == digits[0]) {
        return false;
    }
    let sum: u32 = digits
        .iter()
        .rev()
        .enumerate()
        .map(|(i, &d)| {
            let d = u32::from(d);
            if i % 2 == 1 {
                let x = d * 2;
                if x > 9 { x - 9 } else { x }
            } else {
                d
            }
        })
        .sum();
    sum.is_multiple_of(10)
}

fn known_issuer(d: &[u8]) -> bool {
    let prefix = |n: usize| d.iter().take(n).fold(0u32, |a, &x| a * 10 + u32::from(x));
    matches!(d.first(), Some(4))
        || (51..=55).contains(&prefix(2))
        || (2221..=2720).contains(&prefix(4))
        || matches!(prefix(2), 34 | 37 | 65 | 35)
        || prefix(4) == 6011
}

/// Lengths of IBANs by country (the countries of SEPA and a few others).
const IBAN_LENGTHS: [(&str, usize); 40] = [
    ("AD", 24),
    ("AE", 23),
    ("AT", 20),
    ("BE", 16),
    ("BG", 22),
    ("BH", 22),
    ("BR", 29),
    ("CH", 21),
    ("CY", 28),
    ("CZ", 24),
    ("DE", 22),
    ("DK", 18),
    ("EE", 20),
    ("ES", 24),
    ("FI", 18),
    ("FR", 27),
    ("GB", 22),
    ("GI", 23),
    ("GR", 27),
    ("HR", 21),
    ("HU", 28),
    ("IE", 22),
    ("IL", 23),
    ("IS", 26),
    ("IT", 27),
    ("LI", 21),
    ("LT", 20),
    ("LU", 20),
    ("LV", 21),
    ("MC", 27),
    ("MT", 31),
    ("NL", 18),
    ("NO", 15),
    ("PL", 28),
    ("PT", 25),
    ("RO", 24),
    ("SA", 24),
    ("SE", 24),
    ("SI", 19),
    ("SK", 24),
];

/// Country length and the mod-97 check of an IBAN (spaces ignored).
pub fn iban_valid(text: &str) -> bool {
    let compact: Vec<u8> = text.bytes().filter(|b| !b.is_ascii_whitespace()).collect();
    let Some(country) = std::str::from_utf8(&compact[..2.min(compact.len())]).ok() else {
        return false;
    };
    match IBAN_LENGTHS.iter().find(|(c, _)| *c == country) {
        Some((_, len)) if *len == compact.len() => {}
        _ => return false,
    }
    let mut remainder: u32 = 0;
    for &b in compact[4..].iter().chain(&compact[..4]) {
        let value = match b {
            b'0'..=b'9' => u32::from(b - b'0'),
            b'A'..=b'Z' => u32::from(b - b'A') + 10,
            _ => return false,
        };
        remainder = if value >= 10 {
            (remainder * 100 + value) % 97
        } else {
            (remainder * 10 + value) % 97
        };
    }
    remainder == 1
}

/// Area, group and serial outside the ranges never issued.
fn ssn_valid(text: &str) -> bool {
    let parts: Vec<u32> = text.split('-').filter_map(|p| p.parse().ok()).collect();
    matches!(parts.as_slice(), [a, g, s] if *a != 0 && *a != 666 && *a < 900 && *g != 0 && *s != 0)
}

/// Shannon entropy in bits per character.
fn entropy(s: &str) -> f64 {
    let mut counts = [0u32; 256];
    for b in s.bytes() {
        counts[b as usize] += 1;
    }
    let n = s.len() as f64;
    counts
        .iter()
        .filter(|c| **c > 0)
        .map(|&c| {
            let p = f64::from(c) / n;
            -p * p.log2()
        })
        .sum()
}

/// A PII signal.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct PiiSignalConfig {
    /// The signal's name, as routes refer to it.
    pub name: String,
    /// Kinds that count (default: every kind).
    #[serde(default)]
    pub types: Option<Vec<PiiKind>>,
    /// Kinds that are allowed and never count.
    #[serde(default)]
    pub allow: Vec<PiiKind>,
    /// Lowest score that counts (default 0.5).
    #[serde(default = "half")]
    pub min_score: f64,
    /// Which text to search (default: `last_user`).
    #[serde(default)]
    pub scope: Scope,
}

fn half() -> f64 {
    0.5
}

/// Matches when the scoped text holds PII of a counted kind.
#[derive(Debug)]
pub struct PiiSignal {
    key: SignalKey,
    counted: Vec<PiiKind>,
    min_score: f64,
    scope: Scope,
}

impl PiiSignal {
    /// Builds the signal.
    pub fn new(config: &PiiSignalConfig) -> Result<Self, String> {
        if !(0.0..=1.0).contains(&config.min_score) {
            return Err(format!("min_score {} is not in [0, 1]", config.min_score));
        }
        let counted: Vec<PiiKind> = config
            .types
            .clone()
            .unwrap_or_else(|| PiiKind::ALL.to_vec())
            .into_iter()
            .filter(|k| !config.allow.contains(k))
            .collect();
        if counted.is_empty() {
            return Err("every type is allowed: nothing would count".to_owned());
        }
        Ok(PiiSignal {
            key: SignalKey {
                family: SignalFamily::Pii,
                name: config.name.clone(),
            },
            counted,
            min_score: config.min_score,
            scope: config.scope,
        })
    }
}

impl Signal for PiiSignal {
    fn key(&self) -> &SignalKey {
        &self.key
    }

    fn evaluate(&self, request: &Request<'_>) -> SignalValue {
        let mut findings: Vec<Finding> = Vec::new();
        let counts = |f: &Finding| self.counted.contains(&f.kind) && f.score >= self.min_score;
        let mut scan = |text: &str| findings.extend(find_pii(text).into_iter().filter(counts));
        match self.scope {
            // The last user turn is scanned once per request, whatever the signals.
            Scope::LastUser => {
                findings.extend(request.pii_findings().iter().filter(|f| counts(f)).cloned());
            }
            Scope::User => request.scan_user_texts().for_each(|t| scan(&t)),
            Scope::All => request.scan_all_texts().for_each(|t| scan(&t)),
        }
        let best = findings.iter().map(|f| f.score).fold(0.0, f64::max);
        // The evidence names kinds and spans, never the values.
        let evidence = (!findings.is_empty()).then(|| {
            findings
                .iter()
                .take(8)
                .map(|f| format!("{} {}..{} ({:.2})", f.kind.name(), f.start, f.end, f.score))
                .collect::<Vec<_>>()
                .join(", ")
        });
        SignalValue {
            matched: !findings.is_empty(),
            value: findings.len() as f64,
            confidence: if findings.is_empty() { 1.0 } else { best },
            evidence,
            label: None,
            cost_ns: 0,
            error: None,
        }
    }
}

impl FamilyConfig for PiiSignalConfig {
    type Signal = PiiSignal;

    fn name(&self) -> &str {
        &self.name
    }

    fn build(&self, _: &BuildContext<'_>) -> Result<PiiSignal, String> {
        PiiSignal::new(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use switchyard_wire::Conversation;

    fn kinds(text: &str) -> Vec<(PiiKind, &str)> {
        find_pii(text)
            .into_iter()
            .filter(|f| f.score >= 0.5)
            .map(|f| (f.kind, &text[f.start..f.end]))
            .collect()
    }

    #[test]
    fn finds_each_kind_with_its_exact_span() {
        let cases = [
            (
                "write to jane.doe@example.co.uk today",
                PiiKind::Email,
                "jane.doe@example.co.uk",
            ),
            (
                "my number is +1 (415) 555-2671.",
                PiiKind::Phone,
                "+1 (415) 555-2671",
            ),
            (
                "UK office +44 20 7946 0958",
                PiiKind::Phone,
                "+44 20 7946 0958",
            ),
            (
                "call 06 12 34 56 78 after six",
                PiiKind::Phone,
                "06 12 34 56 78",
            ),
            (
                "card 4111 1111 1111 1111 exp 12/27",
                PiiKind::CreditCard,
                "4111 1111 1111 1111",
            ),
            (
                "amex 3782-822463-10005",
                PiiKind::CreditCard,
                "3782-822463-10005",
            ),
            (
                "pay DE89 3704 0044 0532 0130 00 now",
                PiiKind::Iban,
                "DE89 3704 0044 0532 0130 00",
            ),
            (
                "GB82WEST12345698765432",
                PiiKind::Iban,
                "GB82WEST12345698765432",
            ),
            ("ssn 123-45-6789 on file", PiiKind::Ssn, "123-45-6789"),
            (
                "ssh into 192.168.1.20 please",
                PiiKind::IpAddress,
                "192.168.1.20",
            ),
            (
                "host 2001:db8::8a2e:370:7334 is down",
                PiiKind::IpAddress,
                "2001:db8::8a2e:370:7334",
            ),
            (
                "key sk-proj-abcdefghijklmnopqrstuvwx12 leaked",
                PiiKind::ApiKey,
                "sk-proj-abcdefghijklmnopqrstuvwx12",
            ),
            (
                "aws AKIAIOSFODNN7EXAMPLE here",
                PiiKind::ApiKey,
                "AKIAIOSFODNN7EXAMPLE",
            ),
            (
                "token ghp_abcdefghijklmnopqrstuvwxyz0123456789AB",
                PiiKind::ApiKey,
                "ghp_abcdefghijklmnopqrstuvwxyz0123456789AB",
            ),
            (
                "-----BEGIN RSA PRIVATE KEY-----\nMIIE",
                PiiKind::ApiKey,
                "-----BEGIN RSA PRIVATE KEY-----",
            ),
            (
                "secret aB3dE5fG7hJ9kL1mN3pQ5rS7tV9xZ",
                PiiKind::ApiKey,
                "aB3dE5fG7hJ9kL1mN3pQ5rS7tV9xZ",
            ),
        ];
        for (text, kind, span) in cases {
            let found = kinds(text);
            assert_eq!(found, vec![(kind, span)], "{text}");
        }
    }

    #[test]
    fn look_alikes_are_not_flagged() {
        for text in [
            "In 2023 we sold 1500 units at 19.99 each.",
            "The meeting is on 2024-01-15 at 10:30:45.",
            "Upgrade to v1.2.3.4 or version 10.0.0.1",
            "4111 1111 1111 1112 is not a valid card",
            "DE88 3704 0044 0532 0130 00 has a wrong check digit",
            "000-12-3456 and 666-12-3456 and 987-65-4321 were never issued",
            "300.1.1.1 is not an address",
            "internationalization and counterrevolutionaries",
            "Which of these is a prime number? A. 21 B. 33 C. 37 D. 39",
            "Solve 3x + 7 = 22 for x, then compute 12 345 678 / 9.",
            "",
        ] {
            assert_eq!(kinds(text), vec![], "{text}");
        }
    }

    #[test]
    fn spans_are_byte_exact_in_mixed_scripts() {
        let text = "请联系 jane@example.com 谢谢，或 +86 10 6552 9988";
        let found = find_pii(text);
        let spans: Vec<&str> = found
            .iter()
            .filter(|f| f.score >= 0.5)
            .map(|f| &text[f.start..f.end])
            .collect();
        assert_eq!(spans, vec!["jane@example.com", "+86 10 6552 9988"]);
    }

    #[test]
    fn a_megabyte_of_text_is_scanned() {
        let mut text = "lorem ipsum dolor sit amet 12 34 ".repeat(32 * 1024);
        text.push_str("contact bob@example.org");
        let found = find_pii(&text);
        assert_eq!(found.iter().filter(|f| f.score >= 0.5).count(), 1);
    }

    #[test]
    fn the_signal_counts_configured_kinds_and_hides_values() {
        let config = PiiSignalConfig {
            name: "pii".into(),
            types: None,
            allow: vec![PiiKind::Email],
            min_score: 0.5,
            scope: Scope::LastUser,
        };
        let signal = PiiSignal::new(&config).unwrap();
        let eval = |prompt: &str| {
            signal.evaluate(&Request::new(
                &Conversation::from_prompt("auto", prompt),
                None,
            ))
        };
        assert!(
            !eval("mail me at jane@example.com").matched,
            "e-mail is allowed"
        );
        let v = eval("my card is 4111 1111 1111 1111");
        assert!(v.matched && v.value == 1.0 && v.confidence > 0.9, "{v:?}");
        let evidence = v.evidence.unwrap();
        assert!(
            evidence.starts_with("credit_card 11..30") && !evidence.contains("4111"),
            "{evidence}"
        );
        assert!(!eval("what is 2 + 2?").matched);
        let every_kind_allowed = PiiSignalConfig {
            allow: PiiKind::ALL.to_vec(),
            ..config.clone()
        };
        assert!(
            PiiSignal::new(&every_kind_allowed)
                .unwrap_err()
                .contains("nothing would count")
        );
        let bad_score = PiiSignalConfig {
            min_score: 2.0,
            ..config
        };
        assert!(PiiSignal::new(&bad_score).is_err());
    }

    proptest::proptest! {
        #[test]
        fn luhn_accepts_valid_numbers_and_rejects_one_changed_digit(
            body in proptest::collection::vec(0u8..10, 14),
            position in 0usize..15,
            bump in 1u8..10,
        ) {
            // A Visa-like number: 4, fourteen digits, then the check digit.
            let mut digits = vec![4u8];
            digits.extend(&body);
            let sum: u32 = digits.iter().rev().enumerate().map(|(i, &d)| {
                let d = u32::from(d);
                if i % 2 == 0 { let x = d * 2; if x > 9 { x - 9 } else { x } } else { d }
            }).sum();
            digits.push(((10 - sum % 10) % 10) as u8);
            let all_same = digits.iter().all(|d| *d == digits[0]);
            proptest::prop_assert!(luhn_valid(&digits) || all_same);
            let mut changed = digits.clone();
            changed[position + 1] = (changed[position + 1] + bump) % 10;
            proptest::prop_assert!(!luhn_valid(&changed));
        }
    }

    /// The quadratic resolution this replaced, as the reference.
    fn resolve_by_scanning(mut found: Vec<Finding>) -> Vec<Finding> {
        found.sort_by(|a, b| {
            b.score
                .total_cmp(&a.score)
                .then((b.end - b.start).cmp(&(a.end - a.start)))
        });
        let mut kept: Vec<Finding> = Vec::new();
        for f in found {
            if kept.iter().all(|k| f.end <= k.start || f.start >= k.end) {
                kept.push(f);
            }
        }
        kept.sort_by_key(|f| f.start);
        kept
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(256))]
        #[test]
        fn overlaps_resolve_as_the_quadratic_scan_did(
            spans in proptest::collection::vec((0usize..200, 1usize..30, 0u8..4), 0..60)
        ) {
            let found: Vec<Finding> = spans
                .iter()
                .map(|&(start, len, score)| Finding {
                    kind: PiiKind::Phone,
                    start,
                    end: start + len,
                    score: f64::from(score) / 4.0,
                })
                .collect();
            proptest::prop_assert_eq!(
                resolve_overlaps(found.clone()),
                resolve_by_scanning(found)
            );
        }
    }

    #[test]
    fn dense_digit_groups_resolve() {
        // Card-like groups back to back: tens of thousands of overlapping candidates.
        let text = "4111 1111 1111 1111 ".repeat(20_000);
        let found = find_pii(&text);
        assert!(found.len() >= 10_000, "{}", found.len());
        assert!(found.windows(2).all(|w| w[0].end <= w[1].start));
    }
}

#[cfg(test)]
mod shared_data {
    use super::find_pii;

    #[test]
    fn mmlu_prompts_rarely_look_like_pii() {
        // Needs ../shared/data (SWITCHYARD_DATA); skipped otherwise.
        let Ok(data) = std::env::var("SWITCHYARD_DATA") else {
            eprintln!("skipped: SWITCHYARD_DATA is not set");
            return;
        };
        let text = std::fs::read_to_string(format!("{data}/mmlu/dev.jsonl")).unwrap();
        let (mut prompts, mut flagged) = (0, Vec::new());
        for line in text.lines() {
            let row: serde_json::Value = serde_json::from_str(line).unwrap();
            let prompt = row["prompt"].as_str().unwrap();
            prompts += 1;
            let found: Vec<_> = find_pii(prompt)
                .into_iter()
                .filter(|f| f.score >= 0.5)
                .collect();
            if let Some(f) = found.first() {
                flagged.push(format!("{:?}: {}", f.kind, &prompt[f.start..f.end]));
            }
        }
        let rate = flagged.len() as f64 / prompts as f64;
        eprintln!(
            "{} of {prompts} MMLU prompts flagged ({:.2}%): {:?}",
            flagged.len(),
            rate * 100.0,
            &flagged[..flagged.len().min(20)]
        );
        assert!(rate <= 0.01, "{rate}");
    }
}
