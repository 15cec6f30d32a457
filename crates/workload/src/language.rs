//! Language signals: which language the latest user turn is written in.
//!
//! Detection uses `whatlang` (trigram profiles for 69 languages, no model files); its
//! confidence is the signal's. Languages are named by ISO 639-3 codes as whatlang
//! reports them (`eng`, `deu`, `fra`, `spa`, `cmn`, `jpn`, `rus`, …).

use crate::signals::{
    BuildContext, FamilyConfig, Request, Signal, SignalFamily, SignalKey, SignalValue,
};
use serde::{Deserialize, Serialize};
use whatlang::{Detector, Lang};

/// Languages every signal tells apart besides its own: the most used in chat, across
/// scripts. Trigram scoring costs about 4 µs per candidate of the text's script, so
/// the set is bounded; text in a language outside it and outside the signal's list
/// is detected as the nearest candidate (usually with low confidence).
pub const COMMON: [Lang; 12] = [
    Lang::Eng,
    Lang::Spa,
    Lang::Fra,
    Lang::Deu,
    Lang::Ita,
    Lang::Por,
    Lang::Nld,
    Lang::Rus,
    Lang::Cmn,
    Lang::Jpn,
    Lang::Kor,
    Lang::Ara,
];

/// A language signal.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct LanguageSignalConfig {
    /// The signal's name, as routes refer to it.
    pub name: String,
    /// ISO 639-3 codes; the signal holds when the detected language is one of them.
    pub languages: Vec<String>,
    /// Lowest detection confidence that counts (default 0.5).
    #[serde(default = "half")]
    pub min_confidence: f64,
}

fn half() -> f64 {
    0.5
}

/// Matches when the latest user turn is in one of the listed languages.
#[derive(Debug)]
pub struct LanguageSignal {
    key: SignalKey,
    languages: Vec<Lang>,
    min_confidence: f64,
    detector: Detector,
}

impl LanguageSignal {
    /// Builds the signal, refusing unknown codes with the list of known ones.
    pub fn new(config: &LanguageSignalConfig) -> Result<Self, String> {
        if config.languages.is_empty() {
            return Err("list at least one language (ISO 639-3, e.g. eng, deu, cmn)".to_owned());
        }
        let mut languages = Vec::new();
        for code in &config.languages {
            let lang = Lang::from_code(code.to_ascii_lowercase()).ok_or_else(|| {
                let known: Vec<&str> = Lang::all().iter().map(|l| l.code()).collect();
                format!(
                    "unknown language `{code}`; known ISO 639-3 codes: {}",
                    known.join(", ")
                )
            })?;
            languages.push(lang);
        }
        if !(0.0..=1.0).contains(&config.min_confidence) {
            return Err(format!(
                "min_confidence {} is not in [0, 1]",
                config.min_confidence
            ));
        }
        let mut candidates = COMMON.to_vec();
        for l in &languages {
            if !candidates.contains(l) {
                candidates.push(*l);
            }
        }
        Ok(LanguageSignal {
            key: SignalKey {
                family: SignalFamily::Language,
                name: config.name.clone(),
            },
            languages,
            min_confidence: config.min_confidence,
            detector: Detector::with_allowlist(candidates),
        })
    }
}

impl Signal for LanguageSignal {
    fn key(&self) -> &SignalKey {
        &self.key
    }

    fn evaluate(&self, request: &Request<'_>) -> SignalValue {
        let text = request.conversation.last_user_text();
        // Trigram statistics saturate within a few sentences: the first 256 bytes
        // decide (cut at a space when there is one), so the cost is bounded.
        let mut end = text.len().min(256);
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        if end < text.len()
            && let Some(space) = text[..end].rfind(char::is_whitespace)
            && space > 96
        {
            end = space;
        }
        match self.detector.detect(&text[..end]) {
            Some(info) => {
                let confidence = info.confidence();
                SignalValue {
                    matched: self.languages.contains(&info.lang())
                        && confidence >= self.min_confidence,
                    value: confidence,
                    confidence,
                    evidence: Some(format!("{} ({confidence:.2})", info.lang().code())),
                    label: Some(info.lang().code().to_owned()),
                    cost_ns: 0,
                    error: None,
                }
            }
            None => SignalValue {
                matched: false,
                value: 0.0,
                confidence: 0.0,
                evidence: Some("no language detected".to_owned()),
                label: None,
                cost_ns: 0,
                error: None,
            },
        }
    }
}

impl FamilyConfig for LanguageSignalConfig {
    type Signal = LanguageSignal;

    fn name(&self) -> &str {
        &self.name
    }

    fn build(&self, _: &BuildContext<'_>) -> Result<LanguageSignal, String> {
        LanguageSignal::new(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use switchyard_wire::Conversation;

    fn signal(languages: &[&str]) -> LanguageSignal {
        LanguageSignal::new(&LanguageSignalConfig {
            name: "l".into(),
            languages: languages.iter().map(|s| (*s).to_owned()).collect(),
            min_confidence: 0.5,
        })
        .unwrap()
    }

    fn eval(s: &LanguageSignal, prompt: &str) -> SignalValue {
        s.evaluate(&Request::new(
            &Conversation::from_prompt("auto", prompt),
            None,
        ))
    }

    #[test]
    fn detects_languages_across_scripts() {
        let german = signal(&["deu"]);
        assert!(
            eval(
                &german,
                "Wie kann ich diesen Fehler in meinem Programm beheben? Es stürzt immer ab."
            )
            .matched
        );
        assert!(
            !eval(
                &german,
                "How can I fix this error in my program? It keeps crashing."
            )
            .matched
        );
        let cjk = signal(&["cmn", "jpn"]);
        assert!(eval(&cjk, "我的程序总是崩溃，我应该怎么修复这个错误？").matched);
        assert!(
            eval(
                &cjk,
                "プログラムがいつもクラッシュします。どうすれば直せますか？"
            )
            .matched
        );
        let russian = signal(&["rus"]);
        let v = eval(
            &russian,
            "Моя программа постоянно падает, как мне исправить эту ошибку?",
        );
        assert!(
            v.matched && v.evidence.as_deref().unwrap().starts_with("rus"),
            "{v:?}"
        );
    }

    #[test]
    fn empty_and_mixed_inputs_do_not_panic() {
        let english = signal(&["eng"]);
        assert!(!eval(&english, "").matched);
        assert!(!eval(&english, "12345 !!! ???").matched);
        let long = "ünïcödé ".repeat(2000);
        let _ = eval(&english, &long);
    }

    #[test]
    fn unknown_codes_are_refused_with_the_known_ones() {
        let err = LanguageSignal::new(&LanguageSignalConfig {
            name: "l".into(),
            languages: vec!["xx".into()],
            min_confidence: 0.5,
        })
        .unwrap_err();
        assert!(
            err.contains("unknown language `xx`") && err.contains("eng"),
            "{err}"
        );
    }
}
