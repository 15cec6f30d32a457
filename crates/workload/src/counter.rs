//! Counting a request's tokens: with a real tokenizer when one is configured, else
//! with the built-in estimate.
//!
//! A tokenizer is loaded from a `tokenizer.json` (Hugging Face format), with its
//! truncation and padding turned off: a shipped file often truncates at the model's
//! input size (128 for all-MiniLM-L6-v2), which would cap every count. Texts longer
//! than [`FAST_PATH_BYTES`] are counted exactly on their first part and extrapolated by
//! length, so a megabyte of input costs what 64 KiB does.

use std::path::Path;
use switchyard_wire::Conversation;
use switchyard_wire::tokens::estimate_tokens;
use tokenizers::Tokenizer;

/// Bytes counted exactly before extrapolating.
pub const FAST_PATH_BYTES: usize = 64 * 1024;
/// Tokens each message adds for the chat template's framing.
const FRAMING: u32 = 4;

/// Counts tokens.
#[derive(Debug, Default)]
pub enum TokenCounter {
    /// The built-in estimate ([`estimate_tokens`]).
    #[default]
    Estimate,
    /// A real tokenizer.
    Tokenizer(Box<Tokenizer>),
}

impl TokenCounter {
    /// Loads a `tokenizer.json`.
    pub fn from_file(path: &Path) -> Result<TokenCounter, String> {
        let mut tokenizer = Tokenizer::from_file(path)
            .map_err(|e| format!("cannot load the tokenizer {}: {e}", path.display()))?;
        tokenizer
            .with_truncation(None)
            .map_err(|e| format!("cannot turn off truncation in {}: {e}", path.display()))?;
        tokenizer.with_padding(None);
        Ok(TokenCounter::Tokenizer(Box::new(tokenizer)))
    }

    /// Whether a real tokenizer counts.
    pub fn is_exact(&self) -> bool {
        matches!(self, TokenCounter::Tokenizer(_))
    }

    /// Tokens of `text`, without special tokens.
    pub fn count(&self, text: &str) -> u32 {
        let TokenCounter::Tokenizer(tokenizer) = self else {
            return estimate_tokens(text);
        };
        if text.is_empty() {
            return 0;
        }
        let (head, scale) = if text.len() > FAST_PATH_BYTES {
            let mut end = FAST_PATH_BYTES;
            while !text.is_char_boundary(end) {
                end -= 1;
            }
            (&text[..end], text.len() as f64 / end as f64)
        } else {
            (text, 1.0)
        };
        match tokenizer.encode_fast(head, false) {
            Ok(encoding) => {
                let counted = encoding.len() as f64 * scale;
                u32::try_from(counted.round() as u64).unwrap_or(u32::MAX)
            }
            // A tokenizer that cannot encode this text: fall back rather than fail.
            Err(_) => estimate_tokens(text),
        }
    }

    /// Tokens of a conversation's prompt: every turn plus its framing, and what is not
    /// turn text (tool schemas, tool-call arguments, images), as estimated.
    pub fn count_conversation(&self, conversation: &Conversation) -> u32 {
        conversation
            .turns
            .iter()
            .map(|t| self.count(&t.text).saturating_add(FRAMING))
            .fold(conversation.extra_tokens, u32::saturating_add)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A word-level tokenizer whose file truncates at 4 tokens, as shipped files do.
    const TINY: &str = r#"{"version":"1.0",
      "truncation":{"direction":"Right","max_length":4,"strategy":"LongestFirst","stride":0},
      "padding":null,"added_tokens":[],"normalizer":null,
      "pre_tokenizer":{"type":"Whitespace"},"post_processor":null,"decoder":null,
      "model":{"type":"WordLevel","vocab":{"[UNK]":0,"hello":1,"world":2},"unk_token":"[UNK]"}}"#;

    fn tiny() -> TokenCounter {
        static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("switchyard-tok-{}-{n}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("tokenizer.json");
        std::fs::write(&path, TINY).unwrap();
        TokenCounter::from_file(&path).unwrap()
    }

    #[test]
    fn counts_past_the_files_truncation() {
        let t = tiny();
        assert!(t.is_exact());
        assert_eq!(t.count("hello world foo bar baz qux"), 6);
        assert_eq!(t.count(""), 0);
    }

    #[test]
    fn huge_inputs_are_extrapolated_from_their_head() {
        let t = tiny();
        let text = "hello world ".repeat(100_000); // 1.2 MB, 200,000 words
        let n = t.count(&text);
        assert!((199_000..=201_000).contains(&n), "{n}");
    }

    #[test]
    fn a_missing_or_broken_file_is_a_clear_error() {
        let err = TokenCounter::from_file(Path::new("/no/such/tokenizer.json")).unwrap_err();
        assert!(err.contains("/no/such/tokenizer.json"), "{err}");
        assert_eq!(TokenCounter::Estimate.count("hello world"), 4);
    }

    #[test]
    fn the_default_model_tokenizer_counts_wordpieces() {
        // Present after scripts/fetch-model.sh (scripts/test.sh runs it).
        let Ok(dir) = std::env::var("SWITCHYARD_MODEL_DIR") else {
            eprintln!("skipped: SWITCHYARD_MODEL_DIR is not set");
            return;
        };
        let t = TokenCounter::from_file(&Path::new(&dir).join("tokenizer.json")).unwrap();
        assert_eq!(t.count("The quick brown fox"), 4);
        assert_eq!(t.count("tokenization"), 2, "to ##ken… word pieces");
        let long = "word ".repeat(1000);
        assert_eq!(t.count(&long), 1000, "no truncation at 128");
    }
}
