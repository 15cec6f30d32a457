//! Token counts as written in configuration: `4096`, `4K`, `32k`, `1M`.

use serde::{Deserialize, Deserializer, Serialize};
use std::fmt;

/// A number of tokens; accepts plain numbers and `K` (×1024) / `M` (×1024²) suffixes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize)]
#[serde(transparent)]
pub struct TokenCount(pub u32);

impl TokenCount {
    /// Parses `4096`, `4K`, `4k`, `1.5K`, `1M`.
    pub fn parse(text: &str) -> Result<TokenCount, String> {
        let t = text.trim();
        let (number, scale) = match t.chars().last() {
            Some('k' | 'K') => (&t[..t.len() - 1], 1024.0),
            Some('m' | 'M') => (&t[..t.len() - 1], 1024.0 * 1024.0),
            _ => (t, 1.0),
        };
        let value: f64 = number
            .trim()
            .parse()
            .map_err(|_| format!("`{text}` is not a token count (write e.g. 4096, 4K or 1M)"))?;
        let tokens = value * scale;
        if !(0.0..=f64::from(u32::MAX)).contains(&tokens) || tokens.fract() != 0.0 {
            return Err(format!(
                "`{text}` is not a whole token count between 0 and 4G"
            ));
        }
        Ok(TokenCount(tokens as u32))
    }
}

impl fmt::Display for TokenCount {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0 >= 1024 * 1024 && self.0.is_multiple_of(1024 * 1024) {
            write!(f, "{}M", self.0 / (1024 * 1024))
        } else if self.0 >= 1024 && self.0.is_multiple_of(1024) {
            write!(f, "{}K", self.0 / 1024)
        } else {
            write!(f, "{}", self.0)
        }
    }
}

impl<'de> Deserialize<'de> for TokenCount {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl serde::de::Visitor<'_> for Visitor {
            type Value = TokenCount;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a token count such as 4096, 4K or 1M")
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<TokenCount, E> {
                u32::try_from(v)
                    .map(TokenCount)
                    .map_err(|_| E::custom(format!("{v} tokens is more than 4G")))
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<TokenCount, E> {
                u64::try_from(v)
                    .map_err(|_| E::custom(format!("{v} is a negative token count")))
                    .and_then(|v| self.visit_u64(v))
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<TokenCount, E> {
                TokenCount::parse(v).map_err(E::custom)
            }
        }
        deserializer.deserialize_any(Visitor)
    }
}

#[cfg(test)]
mod tests {
    use super::TokenCount;

    #[test]
    fn suffixes_scale_by_1024() {
        assert_eq!(TokenCount::parse("4K"), Ok(TokenCount(4096)));
        assert_eq!(TokenCount::parse("32k"), Ok(TokenCount(32768)));
        assert_eq!(TokenCount::parse("1M"), Ok(TokenCount(1 << 20)));
        assert_eq!(TokenCount::parse("1.5K"), Ok(TokenCount(1536)));
        assert_eq!(TokenCount::parse("700"), Ok(TokenCount(700)));
        assert!(TokenCount::parse("lots").is_err());
        assert!(TokenCount::parse("1.1").is_err());
        assert!(TokenCount::parse("-4K").is_err());
        assert_eq!(TokenCount(65536).to_string(), "64K");
        assert_eq!(TokenCount(1000).to_string(), "1000");
    }
}
