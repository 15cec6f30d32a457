//! Configuration errors that say where and what, with a "did you mean".

use serde_saphyr::Location;
use std::fmt;
use std::path::{Path, PathBuf};

/// How bad a finding is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// The configuration cannot be served.
    Error,
    /// It can be served, but something is likely wrong.
    Warning,
    /// Worth knowing, as intended (an overlap that priorities settle).
    Note,
}

/// One finding about a configuration, pointing into its file.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Diagnostic {
    /// Error or warning.
    pub severity: Severity,
    /// The file, when the configuration came from one.
    pub file: Option<PathBuf>,
    /// 1-based line (0 when unknown).
    pub line: u64,
    /// 1-based column (0 when unknown).
    pub column: u64,
    /// The path of the offending key, e.g. `routes[2].when.keyword`.
    pub path: String,
    /// What is wrong.
    pub message: String,
    /// What to write instead, when there is a likely fix.
    pub help: Option<String>,
    /// The offending line of the source, when known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub snippet: Option<String>,
}

impl Diagnostic {
    /// An error at `location`.
    pub fn error(location: &Location, path: impl Into<String>, message: impl Into<String>) -> Self {
        Diagnostic {
            severity: Severity::Error,
            file: None,
            line: location.line(),
            column: location.column(),
            path: path.into(),
            message: message.into(),
            help: None,
            snippet: None,
        }
    }

    /// A warning at `location`.
    pub fn warning(
        location: &Location,
        path: impl Into<String>,
        message: impl Into<String>,
    ) -> Self {
        Diagnostic {
            severity: Severity::Warning,
            ..Diagnostic::error(location, path, message)
        }
    }

    /// A note at `location`.
    pub fn note(location: &Location, path: impl Into<String>, message: impl Into<String>) -> Self {
        Diagnostic {
            severity: Severity::Note,
            ..Diagnostic::error(location, path, message)
        }
    }

    /// Adds the line it points at from `text` (the source it refers to).
    pub fn attach_source(&mut self, text: &str) {
        if self.snippet.is_none() && self.line > 0 {
            let index = usize::try_from(self.line - 1).unwrap_or(usize::MAX);
            self.snippet = text.lines().nth(index).map(|l| l.trim_end().to_owned());
        }
    }

    /// An error for a name that refers to nothing defined (`unknown route `chatt``), at
    /// the name, with the nearest of `known`.
    pub fn unknown<'a>(
        what: &str,
        name: &serde_saphyr::Spanned<String>,
        path: impl Into<String>,
        known: impl IntoIterator<Item = &'a str>,
    ) -> Self {
        Diagnostic::error(
            &name.referenced,
            path,
            format!("unknown {what} `{}`", name.value),
        )
        .suggesting(&name.value, known)
    }

    /// Adds a hint.
    pub fn with_help(mut self, help: impl Into<String>) -> Self {
        self.help = Some(help.into());
        self
    }

    /// Adds "did you mean" when a candidate is close to `wrong`.
    pub fn suggesting<'a>(
        self,
        wrong: &str,
        candidates: impl IntoIterator<Item = &'a str>,
    ) -> Self {
        let candidates: Vec<&str> = candidates.into_iter().collect();
        match suggest(wrong, candidates.iter().copied()) {
            Some(best) => self.with_help(format!("did you mean `{best}`?")),
            None if candidates.is_empty() => self,
            None => self.with_help(format!("expected one of: {}", candidates.join(", "))),
        }
    }
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let file = self
            .file
            .as_deref()
            .map_or_else(|| "<config>".to_owned(), |p| p.display().to_string());
        let severity = match self.severity {
            Severity::Error => "error",
            Severity::Warning => "warning",
            Severity::Note => "note",
        };
        if self.line > 0 {
            write!(f, "{file}:{}:{}: {severity}: ", self.line, self.column)?;
        } else {
            write!(f, "{file}: {severity}: ")?;
        }
        if !self.path.is_empty() {
            write!(f, "{}: ", self.path)?;
        }
        write!(f, "{}", self.message)?;
        if let Some(line) = &self.snippet {
            let number = self.line.to_string();
            let gutter = " ".repeat(number.len());
            let caret = " ".repeat(usize::try_from(self.column.saturating_sub(1)).unwrap_or(0));
            write!(f, "\n {gutter} |\n {number} | {line}\n {gutter} | {caret}^")?;
        }
        if let Some(help) = &self.help {
            write!(f, "\n  help: {help}")?;
        }
        Ok(())
    }
}

/// A configuration that cannot be served: every error found, and the warnings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// Everything found, errors first.
    pub diagnostics: Vec<Diagnostic>,
}

impl ConfigError {
    /// Adds the offending source line to every diagnostic that has a line.
    pub fn with_source(mut self, text: &str) -> Self {
        for d in &mut self.diagnostics {
            d.attach_source(text);
        }
        self
    }

    /// Tags every diagnostic with the file it came from.
    pub fn in_file(mut self, file: &Path) -> Self {
        for d in &mut self.diagnostics {
            d.file.get_or_insert_with(|| file.to_path_buf());
        }
        self
    }
}

impl From<Diagnostic> for ConfigError {
    fn from(d: Diagnostic) -> Self {
        ConfigError {
            diagnostics: vec![d],
        }
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, d) in self.diagnostics.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{d}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigError {}

pub use switchyard_wire::typos::suggest;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suggests_close_names_only() {
        let names = ["priority", "models", "description"];
        assert_eq!(suggest("prioirty", names), Some("priority"));
        assert_eq!(suggest("model", names), Some("models"));
        assert_eq!(suggest("zebra", names), None);
        assert_eq!(suggest("", names), None);
    }

    #[test]
    fn display_has_file_line_column_and_help() {
        let d = Diagnostic::error(
            &Location::UNKNOWN,
            "routes[0].models[1]",
            "unknown model `gtp`",
        )
        .suggesting("gtp", ["gpt", "llama"]);
        let err = ConfigError::from(d).in_file(Path::new("x.yaml"));
        let text = err.to_string();
        assert!(
            text.starts_with("x.yaml: error: routes[0].models[1]: unknown model"),
            "{text}"
        );
        assert!(text.contains("help: did you mean `gpt`?"), "{text}");
    }
}
