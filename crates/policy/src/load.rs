//! Reading a configuration file strictly.

use crate::config::Config;
use crate::diagnostics::{ConfigError, Diagnostic, Severity};
use serde_saphyr::Location;
use std::path::Path;
use switchyard_wire::typos::{strip_location, unknown_field};

/// Reads and parses a configuration file, YAML or (named `*.sy`) DSL (syntax and
/// schema; see [`crate::Policy`] for the checks across sections).
pub fn load_config(path: &Path) -> Result<Config, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        ConfigError::from(
            Diagnostic::error(&Location::UNKNOWN, "", format!("cannot read the file: {e}"))
                .with_help("pass an existing YAML file with --config"),
        )
        .in_file(path)
    })?;
    let parsed = if crate::dsl::is_dsl_path(path) {
        crate::dsl::parse_dsl(&text)
    } else {
        parse_config(&text)
    };
    parsed.map_err(|e| e.in_file(path))
}

/// Parses configuration text. Unknown keys are errors naming the nearest valid key.
pub fn parse_config(text: &str) -> Result<Config, ConfigError> {
    let mut config = parse_yaml(text).map_err(|e| e.with_source(text))?;
    config.source = Some(crate::dsl::SourceMap::yaml(text));
    Ok(config)
}

fn parse_yaml(text: &str) -> Result<Config, ConfigError> {
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
            snippet: None,
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
    fn the_admin_address_is_checked_at_its_line() {
        let compile = |server: &str| {
            let text = format!("server:\n{server}{MINIMAL}default_route: {{models: [small]}}\n");
            crate::Policy::compile(parse_config(&text).unwrap())
        };
        for server in [
            "  admin_listen: 127.0.0.1:9090\n",
            "  listen: 127.0.0.1:0\n  admin_listen: 127.0.0.1:0\n",
        ] {
            if let Err(e) = compile(server) {
                panic!("{server}: {e}");
            }
        }
        for (server, says) in [
            ("  admin_listen: localhost\n", "is not an address"),
            (
                "  listen: 127.0.0.1:8080\n  admin_listen: 127.0.0.1:8080\n",
                "is `server.listen` too",
            ),
        ] {
            let err = compile(server).unwrap_err();
            let d = err
                .diagnostics
                .iter()
                .find(|d| d.message.contains(says))
                .unwrap_or_else(|| panic!("{server}: {err}"));
            // The `server:` line, then the server section's lines: the last is the address.
            assert_eq!(d.line, server.lines().count() as u64 + 1, "{d}");
            assert!(d.help.is_some(), "{d}");
        }
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

    const PRICED: &str = "\
models:
  - {name: big, price: {input: 3, output: 15}, quality: 0.9, tags: [large]}
  - {name: small, price: {input: 0.1, output: 0.2}, quality: 0.6}
  - {name: free}
pools:
  - {name: p, model: big, context_window: 8K, endpoints: [{url: 'http://127.0.0.1:9000'}]}
  - {name: q, model: small, context_window: 8K, endpoints: [{url: 'http://127.0.0.1:9001'}]}
  - {name: r, model: free, context_window: 8K, endpoints: [{url: 'http://127.0.0.1:9002'}]}
routes:
  - name: r
    when: {context: any}
    models: [big, small]
    algorithm: ALGO
signals:
  context: [{name: any, min: 0, max: 1M}]
";

    fn with_algorithm(algorithm: &str) -> Result<crate::Policy, String> {
        let text = PRICED.replace("ALGO", algorithm);
        let config = parse_config(&text).map_err(|e| e.to_string())?;
        crate::Policy::compile(config).map_err(|e| e.to_string())
    }

    #[test]
    fn algorithms_parse_by_name_or_map_and_are_checked() {
        use crate::AlgorithmConfig;
        for (text, name) in [
            ("static", "static"),
            ("{type: cost, min_quality: 0.7}", "cost"),
            (
                "{type: weighted, weights: {big: 3, small: 1}, seed: 9}",
                "weighted",
            ),
            (
                "{type: latency, metric: tpot, percentile: 50, cold_start: 3}",
                "latency",
            ),
            (
                "{type: multi_factor, weights: {quality: 1, cost: 2}, max_ttft_ms: 800}",
                "multi_factor",
            ),
            (
                "{type: thompson, bucket: none, discount: 0.99, prior_strength: 2}",
                "thompson",
            ),
            (
                "{type: learned, strong: big, weak: small, share: 0.3}",
                "learned",
            ),
            (
                "{type: cascade, min_confidence: 0.8, check: min_logprob, ttft_budget_ms: 400}",
                "cascade",
            ),
        ] {
            let policy = with_algorithm(text).unwrap_or_else(|e| panic!("{text}: {e}"));
            let route = policy.route(0).unwrap();
            assert_eq!(route.algorithm.name(), name);
            if let AlgorithmConfig::Cost(c) = &route.algorithm {
                assert_eq!(c.min_quality, 0.7);
            }
            if let AlgorithmConfig::Learned(l) = &route.algorithm {
                let file = l.file.as_ref().expect("the shipped router is loaded");
                assert_eq!(file.strong, "gpt-4-1106-preview");
                // 30% of the training prompts had a gain above the threshold.
                assert_eq!(l.threshold(), file.thresholds[30]);
            }
        }
        for (text, why) in [
            ("costs", "did you mean `cost`?"),
            ("{type: cost, min_qualty: 0.7}", "min_qualty"),
            ("{type: cost, min_quality: 2}", "not in [0, 1]"),
            (
                "{type: weighted, weights: {bigg: 1}}",
                "did you mean `big`?",
            ),
            ("{type: latency, percentile: 0}", "percentile"),
            ("{min_quality: 0.5}", "needs `type`"),
            ("{type: static, x: 1}", "takes no parameters"),
            (
                "{type: thompson, discount: 0}",
                "discount 0 is not in (0, 1]",
            ),
            ("{type: thompson, prior_strength: -1}", "prior_strength"),
            ("{type: thompson, bucket: topic}", "bucket"),
            (
                "{type: learned, strong: bigg, weak: small}",
                "did you mean `big`?",
            ),
            ("{type: learned, strong: big, weak: big}", "both `big`"),
            (
                "{type: learned, strong: big, weak: small, share: 2}",
                "share 2 is not in [0, 1]",
            ),
            (
                "{type: learned, strong: big, weak: small, share: 0.5, margin: 0.1}",
                "not both",
            ),
            (
                "{type: learned, strong: big, weak: small, router: /nonexistent/r.json}",
                "/nonexistent/r.json",
            ),
            ("{type: learned, weak: small}", "strong"),
            (
                "{type: cascade, min_confidence: 1.5}",
                "min_confidence 1.5 is not in (0, 1]",
            ),
            ("{type: cascade, check: vibes}", "vibes"),
            ("{type: cascade, saturated_at: 0}", "saturated_at 0"),
            ("{type: cascade, ttft_budget_ms: -5}", "ttft_budget_ms -5"),
        ] {
            let err = with_algorithm(text).map(|_| ()).unwrap_err();
            assert!(err.contains(why), "{text}: {err}");
        }
        let text = PRICED
            .replace("[big, small]", "[big]")
            .replace("ALGO", "cascade");
        let err = crate::Policy::compile(parse_config(&text).unwrap())
            .unwrap_err()
            .to_string();
        assert!(err.contains("at least two candidates"), "{err}");
        let text = PRICED
            .replace("[big, small]", "[big, free]")
            .replace("ALGO", "cost");
        let err = crate::Policy::compile(parse_config(&text).unwrap())
            .unwrap_err()
            .to_string();
        assert!(err.contains("model `free` has no `price`"), "{err}");
        let bad = PRICED
            .replace("quality: 0.6", "quality: 6")
            .replace("ALGO", "static");
        let err = crate::Policy::compile(parse_config(&bad).unwrap())
            .unwrap_err()
            .to_string();
        assert!(err.contains("quality is a score in [0, 1]"), "{err}");
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
