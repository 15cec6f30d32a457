//! Reading a configuration file strictly.

use crate::config::Config;
use crate::diagnostics::{ConfigError, Diagnostic, Severity};
use serde_saphyr::Location;
use std::path::Path;
use switchyard_wire::typos::{strip_location, unknown_field};

/// Reads and parses a configuration file (syntax and schema; see [`crate::Policy`]
/// for the checks across sections).
pub fn load_config(path: &Path) -> Result<Config, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        ConfigError::from(
            Diagnostic::error(&Location::UNKNOWN, "", format!("cannot read the file: {e}"))
                .with_help("pass an existing YAML file with --config"),
        )
        .in_file(path)
    })?;
    parse_config(&text).map_err(|e| e.in_file(path))
}

/// Parses configuration text. Unknown keys are errors naming the nearest valid key.
pub fn parse_config(text: &str) -> Result<Config, ConfigError> {
    serde_saphyr::from_str::<Config>(text).map_err(|err| {
        let location = err.location().unwrap_or(Location::UNKNOWN);
        let message = strip_location(&err.without_snippet().to_string());
        let mut diagnostic = Diagnostic {
            severity: Severity::Error,
            file: None,
            line: location.line(),
            column: location.column(),
            path: String::new(),
            message: message.clone(),
            help: None,
        };
        if let Some((wrong, expected)) = unknown_field(&message) {
            diagnostic = diagnostic.suggesting(&wrong, expected.iter().map(String::as_str));
        }
        ConfigError::from(diagnostic)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINIMAL: &str = "\
models:
  - name: small
pools:
  - name: p
    model: small
    context_window: 8K
    endpoints:
      - url: http://127.0.0.1:9000
";

    #[test]
    fn minimal_config_parses_with_defaults() {
        let c = parse_config(MINIMAL).unwrap();
        assert_eq!(c.server.listen.value, "127.0.0.1:8080");
        assert_eq!(c.server.route_aliases, vec!["auto"]);
        assert_eq!(c.pools[0].context_window.0, 8192);
        assert_eq!(c.pools[0].model.referenced.line(), 5);
        assert_eq!(c.upstream.connect_timeout_ms, 2000);
    }

    #[test]
    fn unknown_key_names_line_and_nearest_key() {
        let text = MINIMAL.replace("    context_window: 8K", "    context_windw: 8K");
        let err = parse_config(&text).unwrap_err();
        let d = &err.diagnostics[0];
        assert!(d.message.contains("context_windw"), "{d}");
        assert_eq!(d.line, 6, "{d}");
        assert_eq!(
            d.help.as_deref(),
            Some("did you mean `context_window`?"),
            "{d}"
        );
    }

    #[test]
    fn unknown_condition_key_is_explained() {
        let text = format!(
            "{MINIMAL}routes:\n  - name: r\n    when: {{keywrd: code}}\n    models: [small]\n"
        );
        let err = parse_config(&text).unwrap_err();
        let d = &err.diagnostics[0];
        assert!(d.message.contains("did you mean `keyword`?"), "{d}");
        assert_eq!(d.line, 11, "{d}");
    }

    #[test]
    fn bad_values_are_errors_not_panics() {
        for text in [
            "",
            "models: 3",
            "models: [{name: a}]\npools: [{name: p, model: a, context_window: lots, endpoints: []}]",
            "[unclosed",
            "models:\n  - name: a\n    name: b\npools: []",
        ] {
            assert!(parse_config(text).is_err(), "{text}");
        }
    }
}
