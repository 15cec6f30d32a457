//! The `switchyard` binary: check, route, and its errors on bad input.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::print_stderr
)]

use std::process::Command;

fn switchyard(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_switchyard"))
        .args(args)
        .current_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/../.."))
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn the_examples_pass_check() {
    for example in [
        "examples/demo.sy",
        "examples/keywords.yaml",
        "examples/minimal.yaml",
    ] {
        let (ok, stdout, stderr) = switchyard(&["check", "--config", example]);
        assert!(ok, "{example}: {stderr}");
        assert!(stdout.contains("ok:"), "{stdout}");
        assert!(
            stdout.contains(" 0 warnings,"),
            "{example} has warnings: {stdout}{stderr}"
        );
        assert!(!stderr.contains("warning:"), "{example}: {stderr}");
    }
}

#[test]
fn check_warns_of_budget_steps_and_tool_rules_that_never_take_effect() {
    let dir = std::env::temp_dir().join(format!("switchyard-cli-plugins-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("policy.yaml");
    std::fs::write(
        &path,
        "\
models:
  - {name: strong, price: {input: 3, output: 15}}
  - {name: cheap, price: {input: 3, output: 15}}
pools:
  - {name: big, model: strong, context_window: 8K, endpoints: [{url: 'http://127.0.0.1:1'}]}
  - {name: small, model: cheap, context_window: 8K, endpoints: [{url: 'http://127.0.0.1:1'}]}
signals:
  keyword:
    - {name: hi, keywords: [hello]}
  identity:
    trusted_headers: {subject: x-user-id, roles: x-roles, trusted_proxies: ['127.0.0.1/32']}
plugins:
  - {name: daily, type: budget, scope: caller, dollars: 1, window: day,
     shape: {below: 0.00001, max_tokens: 16}, downgrade: {below: 0.2}}
  - name: tools
    type: tool_permissions
    mode: block
    rules:
      - {roles: [intern], allow: ['search_*']}
      - {roles: [intern, support], deny: ['search*']}
      - {roles: [support], allow: [get_weather]}
routes:
  - {name: chat, when: {keyword: hi}, models: [strong, cheap], plugins: [daily, tools]}
default_route: {models: [strong]}
",
    )
    .unwrap();
    let (ok, stdout, stderr) = switchyard(&["check", "--config", path.to_str().unwrap()]);
    assert!(ok, "warnings do not fail check: {stderr}");
    assert!(stdout.contains(" 4 warnings,"), "{stdout}{stderr}");
    for expected in [
        "plugin `daily` (budget): step `downgrade` never changes the model on route `chat`: its candidates have the same price",
        "plugin `daily` (budget): step `shape` can never take effect: it starts below $0.000010 left, and the smallest request costs $0.000018 (on `cheap`)",
        "plugin `tools` (tool_permissions): rules[0].allow `search_*` never permits a tool: rules[1].deny `search*` denies every name it matches for roles intern; e.g. a caller with role `intern` offering tool `search_x` has it refused",
        "in block mode, every request from a caller whose only role is `intern` that offers a tool is refused on route chat",
    ] {
        assert!(stderr.contains(expected), "{expected}\n{stderr}");
    }
    // The warnings point at the plugin's definition.
    assert!(
        stderr.contains("policy.yaml:13:5: warning: plugins[0]"),
        "{stderr}"
    );
}

#[test]
fn check_proves_overlaps_shadowed_routes_and_gaps_with_witnesses() {
    let dir = std::env::temp_dir().join(format!("switchyard-cli-check-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("policy.yaml");
    std::fs::write(
        &path,
        "\
models: [{name: m}]
pools: [{name: p, model: m, context_window: 128K, endpoints: [{url: 'http://127.0.0.1:1'}]}]
signals:
  keyword:
    - {name: code, keywords: [python, rust]}
    - {name: python, keywords: [python]}
    - {name: urgent, keywords: [asap]}
  context:
    - {name: short, max: 4K}
    - {name: long, min: 32K}
routes:
  - {name: urgent, priority: 30, when: {keyword: urgent}, models: [m]}
  - {name: coding, priority: 20, when: {keyword: code}, models: [m]}
  - {name: python_code, priority: 10, when: {all: [{keyword: python}, {keyword: code}]}, models: [m]}
  - {name: sized, priority: 1, when: {any: [{context: short}, {context: long}]}, models: [m]}
",
    )
    .unwrap();
    let (ok, stdout, stderr) = switchyard(&["check", "--config", path.to_str().unwrap()]);
    assert!(ok, "warnings do not fail check: {stderr}");
    assert!(stdout.contains(" 2 warnings,"), "{stdout}");
    // Shadowed, at the route's own line, with a request that shows it.
    assert!(
        stderr
            .contains("policy.yaml:14:12: warning: routes[2].when: route `python_code` never wins"),
        "{stderr}"
    );
    assert!(
        stderr.contains("help: for example: keyword(\"code\"), keyword(\"python\")"),
        "{stderr}"
    );
    // The gap: mid-sized prompts without the keywords.
    assert!(
        stderr.contains("warning: routes: a request can match no route"),
        "{stderr}"
    );
    assert!(
        stderr.contains("prompt tokens in [4096, 32768)"),
        "{stderr}"
    );
    let (ok, json, _) = switchyard(&["check", "--config", path.to_str().unwrap(), "--json"]);
    assert!(ok);
    let analysis: serde_json::Value = serde_json::from_str(&json).unwrap();
    let kinds: Vec<&str> = analysis["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|f| f["kind"].as_str())
        .collect();
    assert_eq!(
        kinds.iter().filter(|k| **k == "shadowed").count(),
        1,
        "{json}"
    );
    assert_eq!(kinds.iter().filter(|k| **k == "gap").count(), 1, "{json}");
    assert_eq!(analysis["signals"], 5, "{json}");
    // An overlap priorities settle is a note.
    assert!(
        stderr.contains("note: routes[1].when: routes `urgent` and `coding` can match the same request; `urgent` wins"),
        "{stderr}"
    );
}

#[test]
fn a_bad_config_names_file_line_and_a_fix() {
    let dir = std::env::temp_dir().join(format!("switchyard-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("bad.sy");
    let demo = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../examples/demo.sy"
    ))
    .unwrap();
    std::fs::write(&path, demo.replace("  PRIORITY 50", "  PRIORTY 50")).unwrap();
    let (ok, _, stderr) = switchyard(&["check", "--config", path.to_str().unwrap()]);
    assert!(!ok);
    let line = demo.lines().position(|l| l == "  PRIORITY 50").unwrap() + 1;
    assert!(stderr.contains(&format!("bad.sy:{line}:3:")), "{stderr}");
    assert!(stderr.contains("did you mean `PRIORITY`?"), "{stderr}");
    assert!(
        stderr.contains(&format!(" {line} |   PRIORTY 50")),
        "the offending text: {stderr}"
    );

    std::fs::write(
        &path,
        demo.replace("MODEL \"reasoner-70b\" (", "MODEL \"reasoner-7b\" ("),
    )
    .unwrap();
    let (ok, _, stderr) = switchyard(&["check", "--config", path.to_str().unwrap()]);
    assert!(!ok);
    assert!(stderr.contains("unknown model `reasoner-7b`"), "{stderr}");
    assert!(stderr.contains("did you mean `reasoner-70b`?"), "{stderr}");
    let line = demo
        .lines()
        .position(|l| l.contains("MODEL \"reasoner-70b\" ("))
        .unwrap()
        + 1;
    assert!(stderr.contains(&format!("bad.sy:{line}:9:")), "{stderr}");

    // YAML files point at their own lines.
    let yaml = dir.join("bad.yaml");
    let minimal = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../examples/minimal.yaml"
    ))
    .unwrap();
    let (at, original) = minimal
        .lines()
        .enumerate()
        .find(|(_, l)| l.trim_start().starts_with("context_window:"))
        .unwrap();
    std::fs::write(
        &yaml,
        minimal.replace(
            original,
            &original.replace("context_window", "context_windw"),
        ),
    )
    .unwrap();
    let (ok, _, stderr) = switchyard(&["check", "--config", yaml.to_str().unwrap()]);
    assert!(!ok);
    assert!(
        stderr.contains(&format!("bad.yaml:{}:", at + 1)),
        "{stderr}"
    );
    assert!(
        stderr.contains("did you mean `context_window`?"),
        "{stderr}"
    );

    let (ok, _, stderr) = switchyard(&["check", "--config", "no/such/file.yaml"]);
    assert!(!ok);
    assert!(
        stderr.contains("no/such/file.yaml") && stderr.contains("cannot read"),
        "{stderr}"
    );
}

#[test]
fn a_state_server_is_configured_in_a_state_block_and_checked() {
    let dir = std::env::temp_dir().join(format!("switchyard-cli-state-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("state.sy");
    let demo = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../examples/demo.sy"
    ))
    .unwrap();
    let with = |state: &str| {
        std::fs::write(&path, format!("STATE {{ {state} }}\n{demo}")).unwrap();
        switchyard(&["check", "--config", path.to_str().unwrap()])
    };
    let (ok, _, stderr) = with("backend: valkey, url: \"redis://127.0.0.1:6379/0\"");
    assert!(ok, "{stderr}");
    let (ok, _, stderr) = with("backend: valkey");
    assert!(!ok);
    assert!(
        stderr.contains("state.url: is required with backend valkey")
            && stderr.contains("redis://"),
        "{stderr}"
    );
    let (ok, _, stderr) = with("backend: valkey, url: \"http://cache:6379\"");
    assert!(
        !ok && stderr.contains("not a redis:// or rediss:// URL"),
        "{stderr}"
    );
    let (ok, _, stderr) = with("backend: memcached");
    assert!(
        !ok && stderr.contains("state.sy:1:18:") && stderr.contains("in_process, redis, valkey"),
        "{stderr}"
    );
    with("backend: redis, url: \"redis://10.0.0.5:6379/2\", pause_ms: 500");
    let (ok, yaml, stderr) = switchyard(&["compile", path.to_str().unwrap()]);
    assert!(
        ok && yaml.contains("\"backend\": \"redis\"") && yaml.contains("\"pause_ms\": 500"),
        "{stderr}"
    );
}

#[test]
fn route_prints_the_trace_without_an_upstream() {
    let (ok, stdout, stderr) = switchyard(&[
        "route",
        "--config",
        "examples/demo.sy",
        "--prompt",
        "prove this theorem about primes",
    ]);
    assert!(ok, "{stderr}");
    let trace: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(trace["decide"]["route"], "math");
    assert_eq!(trace["select"]["model"], "reasoner-70b");
    assert_eq!(trace["place"]["pool"], "reasoner-h100-32k");
}

#[test]
fn the_demo_runs_end_to_end() {
    let (ok, stdout, stderr) = switchyard(&["demo", "--exit"]);
    assert!(ok, "{stderr}");
    for expected in [
        "coding",
        "long_document",
        "default",
        "math",
        "direct",
        "chat-h100-64k-0",
        "suspected_attack",
        "personal_data",
        "expert",
    ] {
        assert!(stdout.contains(expected), "missing {expected}:\n{stdout}");
    }
    assert!(
        !stdout.contains(" 502 ") && !stdout.contains(" 500 "),
        "{stdout}"
    );
}

#[test]
fn fleet_simulate_reports_every_arrival_and_explains_bad_files() {
    let (ok, stdout, stderr) = switchyard(&[
        "fleet",
        "simulate",
        "--config",
        "examples/fleet/azure-two-pools.yaml",
        "--requests",
        "20000",
        "--format",
        "json",
        "--quiet",
    ]);
    assert!(ok, "{stderr}");
    let report: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(report["arrivals"], 20000);
    assert_eq!(report["fleet"]["completed"], 20000);
    assert_eq!(report["pools"].as_array().unwrap().len(), 2);

    let dir = std::env::temp_dir().join(format!("switchyard-fleet-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let example = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../examples/fleet/azure-two-pools.yaml"
    ))
    .unwrap();
    let line = example
        .lines()
        .position(|l| l.contains("instances: 12"))
        .unwrap()
        + 1;
    let bad = dir.join("bad.yaml");
    std::fs::write(&bad, example.replace("instances: 12", "instancs: 12")).unwrap();
    let (ok, _, stderr) = switchyard(&["fleet", "simulate", "--config", bad.to_str().unwrap()]);
    assert!(!ok);
    assert!(
        stderr.contains(&format!("bad.yaml:{line}: unknown field `instancs`")),
        "{stderr}"
    );
    assert!(stderr.contains("did you mean `instances`?"), "{stderr}");
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn fleet_plan_prints_the_plan_and_writes_plots() {
    let dir = std::env::temp_dir().join(format!("switchyard-plan-{}", std::process::id()));
    let (ok, stdout, stderr) = switchyard(&[
        "fleet",
        "plan",
        "--config",
        "examples/fleet/plan-azure.yaml",
        "--plots",
        dir.to_str().unwrap(),
    ]);
    assert!(ok, "{stderr}");
    assert!(stdout.starts_with("plan: B = "), "{stdout}");
    assert!(stdout.contains("meets the SLO"), "{stdout}");
    assert!(stdout.contains("disaggregated:"), "{stdout}");
    for plot in ["pareto.svg", "cdfs.svg"] {
        let svg = std::fs::read_to_string(dir.join(plot)).unwrap();
        assert!(svg.starts_with("<svg"), "{plot}");
    }
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn every_fleet_example_runs() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples/fleet");
    let mut ran = 0;
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|e| e != "yaml") {
            continue;
        }
        let text = std::fs::read_to_string(&path).unwrap();
        let file = path.to_str().unwrap();
        let (ok, stdout, stderr) = if text.contains("ttft_p99_ms") {
            switchyard(&["fleet", "plan", "--config", file])
        } else {
            switchyard(&[
                "fleet",
                "simulate",
                "--config",
                file,
                "--requests",
                "5000",
                "--quiet",
            ])
        };
        assert!(ok, "{file}: {stderr}");
        assert!(
            stdout.contains("plan: B =") || stdout.contains("Little's law"),
            "{file}: {stdout}"
        );
        ran += 1;
    }
    assert!(ran >= 5, "{ran} examples");
}

#[test]
fn a_plan_no_simulation_confirms_exits_non_zero_unless_best_effort() {
    let dir = std::env::temp_dir().join(format!("switchyard-unproven-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    // A tight SLO met analytically to the millisecond, verified at twice the rate
    // planned for: every fleet verified misses it.
    let file = dir.join("plan.yaml");
    std::fs::write(
        &file,
        "seed: 1
workload: {rate: 150, mix: [{cdf: azure, output_fraction: 0.2}]}
ttft_p99_ms: 120
gpus: [a100]
verify_requests: 30000
verify_headroom: 2
",
    )
    .unwrap();
    let file = file.to_str().unwrap();
    let (ok, stdout, stderr) = switchyard(&["fleet", "plan", "--config", file]);
    assert!(!ok, "{stdout}");
    assert!(stdout.contains("plan (UNVERIFIED"), "{stdout}");
    assert!(
        stdout.contains("at 300.0 requests/s, 2× the peak"),
        "{stdout}"
    );
    assert!(
        stderr.contains("no verified candidate met the P99 TTFT SLO of 120 ms"),
        "{stderr}"
    );
    assert!(stderr.contains("--best-effort"), "{stderr}");
    let (ok, _, stderr) = switchyard(&["fleet", "plan", "--config", file, "--best-effort"]);
    assert!(ok, "{stderr}");
    assert!(stderr.contains("warning:"), "{stderr}");
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn an_embedding_signal_routes_by_meaning() {
    // Needs the model (scripts/test.sh sets SWITCHYARD_MODEL_DIR).
    let Ok(model) = std::env::var("SWITCHYARD_MODEL_DIR") else {
        eprintln!("skipped: SWITCHYARD_MODEL_DIR is not set");
        return;
    };
    let dir = std::env::temp_dir().join(format!("switchyard-embed-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let config = dir.join("embedding.yaml");
    std::fs::write(
        &config,
        format!(
            "models:
  - name: coder
  - name: chat
pools:
  - {{name: coder, model: coder, context_window: 16K, endpoints: [{{url: http://127.0.0.1:9}}]}}
  - {{name: chat, model: chat, context_window: 8K, endpoints: [{{url: http://127.0.0.1:9}}]}}
signals:
  model: {{path: {model}, cache_dir: {cache}}}
  embedding:
    - name: debugging
      threshold: 0.45
      exemplars:
        - my program crashes with a segmentation fault
        - how do I fix this compiler error?
        - the unit tests fail after my refactor
routes:
  - name: coding
    priority: 10
    when: {{embedding: debugging}}
    models: [coder]
default_route:
  models: [chat]
",
            cache = dir.join("cache").display()
        ),
    )
    .unwrap();
    let route = |prompt: &str| {
        let trace = trace_of(&config, "auto", prompt);
        (
            trace["decide"]["route"].as_str().unwrap().to_owned(),
            trace["characterize"].clone(),
        )
    };
    // No keyword in common with the exemplars: only the meaning is close.
    let (taken, signals) = route("my C code segfaults whenever I free the linked list twice");
    assert_eq!(taken, "coding", "{signals}");
    assert!(signals.to_string().contains("embedding"), "{signals}");
    let (taken, _) = route("suggest a good recipe for banana bread");
    assert_eq!(taken, "default");
    std::fs::remove_dir_all(&dir).ok();
}

/// Converts `fixture` (with `extra` import arguments) into `out`, appends `tail`, and
/// returns what the import wrote on standard error.
fn import_into(fixture: &str, extra: &[&str], out: &std::path::Path, tail: &str) -> String {
    let mut args = vec!["import", "vllm-sr", fixture];
    args.extend_from_slice(extra);
    args.extend_from_slice(&["-o", out.to_str().unwrap()]);
    let (ok, _, stderr) = switchyard(&args);
    assert!(ok, "{stderr}");
    let mut text = std::fs::read_to_string(out).unwrap();
    text.push_str(tail);
    std::fs::write(out, text).unwrap();
    stderr
}

/// `switchyard check --config file --run-tests`.
fn run_tests(file: &std::path::Path) -> (bool, String, String) {
    switchyard(&["check", "--config", file.to_str().unwrap(), "--run-tests"])
}

/// `switchyard route` of `prompt` for `model` under `config`: the trace.
fn trace_of(config: &std::path::Path, model: &str, prompt: &str) -> serde_json::Value {
    let (ok, stdout, stderr) = switchyard(&[
        "route",
        "--config",
        config.to_str().unwrap(),
        "--model",
        model,
        "--prompt",
        prompt,
    ]);
    assert!(ok, "{stderr}");
    serde_json::from_str(&stdout).unwrap()
}

/// The route `switchyard route` takes for `prompt` asked as `auto`.
fn route_of(config: &std::path::Path, prompt: &str) -> String {
    trace_of(config, "auto", prompt)["decide"]["route"]
        .as_str()
        .unwrap_or("")
        .to_owned()
}

#[test]
fn imported_regex_keyword_and_spaced_domain_signals_are_served_and_route() {
    // Needs the model for the domain head (scripts/test.sh sets SWITCHYARD_MODEL_DIR).
    let Ok(model) = std::env::var("SWITCHYARD_MODEL_DIR") else {
        eprintln!("skipped: SWITCHYARD_MODEL_DIR is not set");
        return;
    };
    let dir = std::env::temp_dir().join(format!("switchyard-import-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let converted = dir.join("bugs.sy");
    let fixture = "crates/policy/tests/fixtures/vllm-sr/bugs.dsl";
    import_into(fixture, &[], &converted, &format!(
        "SIGNALS {{ model: {{ path: \"{model}\", cache_dir: \"{}\" }} }}
POOL tracker {{ model: \"tracker\", context_window: 8K, endpoints: [{{ url: \"http://127.0.0.1:9\" }}] }}
POOL coder {{ model: \"coder\", context_window: 8K, endpoints: [{{ url: \"http://127.0.0.1:9\" }}] }}
",
        dir.join("cache").display()
    ));
    let (ok, stdout, stderr) = switchyard(&["check", "--config", converted.to_str().unwrap()]);
    assert!(ok, "{stdout}{stderr}");
    let route = |prompt: &str| route_of(&converted, prompt);
    assert_eq!(
        route("JIRA-4512 is blocked again, can you look?"),
        "tickets"
    );
    assert_eq!(
        route(
            "How does a compiler turn a recursive function into a loop with tail-call optimization, and what does the stack look like?"
        ),
        "cs"
    );
    std::fs::remove_dir_all(&dir).ok();
}

fn model_dir() -> Option<String> {
    let dir = std::env::var("SWITCHYARD_MODEL_DIR").ok();
    if dir.is_none() {
        eprintln!("skipped: SWITCHYARD_MODEL_DIR is not set");
    }
    dir
}

#[test]
fn train_domain_fits_a_head_and_writes_its_provenance() {
    let Some(model) = model_dir() else { return };
    let dir = std::env::temp_dir().join(format!("switchyard-train-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let data = dir.join("topics.jsonl");
    let mut rows = String::new();
    let topics = [
        (
            "cooking",
            [
                "bake bread with yeast",
                "simmer a tomato sauce",
                "season the roast chicken",
                "whisk eggs for an omelette",
                "knead pizza dough",
                "caramelize onions slowly",
            ],
        ),
        (
            "astronomy",
            [
                "a telescope shows Jupiter's moons",
                "the orbit of a comet",
                "a supernova in a distant galaxy",
                "the phases of the moon",
                "black holes bend light",
                "stars fuse hydrogen into helium",
            ],
        ),
    ];
    for (label, texts) in topics {
        for (i, t) in texts.iter().enumerate() {
            for variant in ["How do I", "Tell me about", "Explain why"] {
                rows.push_str(&format!(
                    "{{\"text\": \"{variant} {t} ({i})\", \"label\": \"{label}\"}}\n"
                ));
            }
        }
    }
    std::fs::write(&data, rows).unwrap();
    let out = dir.join("head.json");
    let cache = dir.join("cache");
    let (ok, stdout, stderr) = switchyard(&[
        "train",
        "domain",
        "--data",
        data.to_str().unwrap(),
        "--model",
        &model,
        "--cache-dir",
        cache.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--holdout",
        "30",
    ]);
    assert!(ok, "{stderr}");
    assert!(stdout.contains("2 labels"), "{stdout}");
    let head: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&out).unwrap()).unwrap();
    assert_eq!(head["labels"], serde_json::json!(["astronomy", "cooking"]));
    assert_eq!(head["holdout_percent"], 30);
    let provenance = std::fs::read_to_string(dir.join("head.md")).unwrap();
    assert!(provenance.contains("sha256"), "{provenance}");
    // Accuracy on the held-out rows of two well-separated topics.
    let accuracy: f64 = stdout
        .split("accuracy ")
        .nth(1)
        .and_then(|s| s.split('%').next())
        .and_then(|s| s.parse().ok())
        .unwrap();
    assert!(accuracy >= 90.0, "{stdout}");
    // A bad row is named by file and line.
    std::fs::write(
        &data,
        "{\"text\": \"a\", \"label\": \"x\"}\n{\"text\": \"b\"}\n",
    )
    .unwrap();
    let (ok, _, stderr) = switchyard(&[
        "train",
        "domain",
        "--data",
        data.to_str().unwrap(),
        "--model",
        &model,
    ]);
    assert!(!ok);
    assert!(
        stderr.contains("topics.jsonl:2") && stderr.contains("--label-field"),
        "{stderr}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn eval_without_the_data_says_where_to_get_it() {
    let (ok, _, stderr) = switchyard(&["eval", "signals", "--data", "/nonexistent/data"]);
    assert!(!ok);
    assert!(stderr.contains("SWITCHYARD_DATA"), "{stderr}");
}

#[test]
fn policies_convert_between_dsl_and_yaml_and_their_tests_run() {
    let dir = std::env::temp_dir().join(format!("switchyard-cli-dsl-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (ok, _, stderr) = switchyard(&["fmt", "--check", "examples/demo.sy"]);
    assert!(ok, "the demo is in canonical form: {stderr}");
    let yaml = dir.join("demo.yaml");
    let (ok, _, stderr) =
        switchyard(&["compile", "examples/demo.sy", "-o", yaml.to_str().unwrap()]);
    assert!(ok, "{stderr}");
    let (ok, stdout, stderr) = switchyard(&["check", "--config", yaml.to_str().unwrap()]);
    assert!(
        ok && stdout.contains("6 routes + default"),
        "{stdout}{stderr}"
    );
    let (ok, back, stderr) = switchyard(&["compile", yaml.to_str().unwrap()]);
    assert!(ok, "{stderr}");
    let demo = std::fs::read_to_string("../../examples/demo.sy")
        .or_else(|_| std::fs::read_to_string("examples/demo.sy"))
        .unwrap();
    let statements = |t: &str| -> Vec<String> {
        t.lines()
            .filter(|l| !l.trim().is_empty() && !l.trim_start().starts_with('#'))
            .map(str::to_owned)
            .collect()
    };
    assert_eq!(
        statements(&back),
        statements(&demo),
        "DSL -> YAML -> DSL loses nothing but comments"
    );

    let (ok, stdout, stderr) =
        switchyard(&["check", "--config", "examples/demo.sy", "--run-tests"]);
    assert!(ok, "{stderr}");
    assert!(stdout.contains("tests: 9 passed, 0 failed"), "{stdout}");
    let broken = dir.join("broken.sy");
    std::fs::write(
        &broken,
        demo.replace(
            "\"Prove that the sum of two even numbers is even.\" -> math",
            "\"Prove that the sum of two even numbers is even.\" -> expert",
        ),
    )
    .unwrap();
    let (ok, stdout, stderr) =
        switchyard(&["check", "--config", broken.to_str().unwrap(), "--run-tests"]);
    assert!(!ok);
    assert!(stdout.contains("tests: 8 passed, 1 failed"), "{stdout}");
    assert!(
        stderr.contains("took `math`, expected `expert`")
            && stderr.contains("routes matching: math"),
        "{stderr}"
    );
    let messy = dir.join("messy.sy");
    std::fs::write(&messy, demo.replace("  PRIORITY 50", "PRIORITY    50")).unwrap();
    let (ok, _, _) = switchyard(&["fmt", "--check", messy.to_str().unwrap()]);
    assert!(!ok, "not canonical");
    let (ok, _, stderr) = switchyard(&["fmt", "--write", messy.to_str().unwrap()]);
    assert!(ok, "{stderr}");
    assert_eq!(std::fs::read_to_string(&messy).unwrap(), demo);
}

#[test]
fn import_with_probes_shows_which_of_their_expectations_hold() {
    let dir = std::env::temp_dir().join(format!("switchyard-probes-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let converted = dir.join("tiers.sy");
    let policy = "crates/policy/tests/fixtures/vllm-sr/tiers.dsl";
    let probes = "crates/policy/tests/fixtures/vllm-sr/tiers-probes.yaml";
    let pools = "POOL small { model: \"small\", context_window: 8K, endpoints: [{ url: \"http://127.0.0.1:9\" }] }
POOL big { model: \"big\", context_window: 8K, endpoints: [{ url: \"http://127.0.0.1:9\" }] }
";
    let stderr = import_into(policy, &["--probes", probes], &converted, pools);
    assert!(stderr.contains("-> retired_route"), "{stderr}");
    let (ok, stdout, stderr) = run_tests(&converted);
    assert!(ok, "{stdout}{stderr}");
    assert!(stdout.contains("tests: 3 passed, 0 failed"), "{stdout}");
    // An expectation of theirs that this policy does not meet is reported as such.
    let wrong = dir.join("wrong-probes.yaml");
    std::fs::write(
        &wrong,
        std::fs::read_to_string(format!("{}/../../{probes}", env!("CARGO_MANIFEST_DIR")))
            .unwrap()
            .replace(
                "expected_decision: escalation",
                "expected_decision: general_help",
            ),
    )
    .unwrap();
    import_into(
        policy,
        &["--probes", wrong.to_str().unwrap()],
        &converted,
        pools,
    );
    let (ok, stdout, stderr) = run_tests(&converted);
    assert!(!ok);
    assert!(stdout.contains("tests: 2 passed, 1 failed"), "{stdout}");
    assert!(
        stderr.contains("took `escalation`, expected `general_help`"),
        "{stderr}"
    );
    // A file that is not a probe file is named in the error.
    let (ok, _, stderr) = switchyard(&[
        "import",
        "vllm-sr",
        "crates/policy/tests/fixtures/vllm-sr/tiers.dsl",
        "--probes",
        "crates/policy/tests/fixtures/vllm-sr/tiers.dsl",
    ]);
    assert!(!ok);
    assert!(
        stderr.contains("tiers.dsl") && stderr.contains("probes:"),
        "{stderr}"
    );
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn import_converts_a_vllm_sr_policy_and_names_what_it_dropped() {
    let fixture = "crates/policy/tests/fixtures/vllm-sr/support.dsl";
    let (ok, stdout, stderr) = switchyard(&["import", "vllm-sr", fixture]);
    assert!(ok, "{stderr}");
    assert!(
        stdout.contains("ROUTE urgent_billing (description = \"urgent money problems\")"),
        "{stdout}"
    );
    assert!(
        stderr.contains(&format!("{fixture}:37: import: signal modality image")),
        "{stderr}"
    );
    let (ok, _, stderr) = switchyard(&["import", "vllm-sr", "examples/demo.sy"]);
    assert!(!ok, "our own DSL is not theirs");
    assert!(stderr.contains("examples/demo.sy"), "{stderr}");
}

/// A trace without what differs from run to run: the time each step took.
fn without_timings(mut value: serde_json::Value) -> serde_json::Value {
    match &mut value {
        serde_json::Value::Object(map) => {
            map.retain(|k, _| !matches!(k.as_str(), "elapsed_us" | "cost_us" | "overhead_us"));
            for v in map.values_mut() {
                *v = without_timings(v.take());
            }
        }
        serde_json::Value::Array(items) => {
            for v in items.iter_mut() {
                *v = without_timings(v.take());
            }
        }
        _ => {}
    }
    value
}

/// POSTs `prompt` to `/v1/route` at `addr` and returns the trace.
fn route_trace(addr: &str, prompt: &str) -> serde_json::Value {
    use std::io::{Read, Write};
    let body =
        serde_json::json!({"model": "auto", "messages": [{"role": "user", "content": prompt}]})
            .to_string();
    let mut stream = std::net::TcpStream::connect(addr).unwrap();
    write!(
        stream,
        "POST /v1/route HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let (_, json) = response.split_once("\r\n\r\n").unwrap();
    serde_json::from_str(json).unwrap_or_else(|e| panic!("{e}: {response}"))
}

#[cfg(unix)]
#[test]
fn serve_reloads_on_sighup_and_keeps_the_old_policy_when_the_new_one_has_errors() {
    use std::io::BufRead;
    use std::sync::mpsc;
    use std::time::Duration;
    let dir = std::env::temp_dir().join(format!("switchyard-cli-reload-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("policy.sy");
    let base = "SERVER { listen: \"127.0.0.1:0\" }\nHEALTH { check_interval_ms: 0 }\n\
                MODEL m\nPOOL p { model: m, context_window: 8K, endpoints: [{ url: \"http://127.0.0.1:9\" }] }\n\
                SIGNAL keyword code { keywords: [python] }\nDEFAULT ROUTE { MODEL \"m\" }\n";
    let with_route =
        format!("{base}ROUTE coding {{\n  WHEN keyword(\"code\")\n  MODEL \"m\"\n}}\n");
    // Without a route, the keyword signal is unused: a warning, not an error.
    std::fs::write(&path, base).unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_switchyard"))
        .args(["serve", "--config", path.to_str().unwrap()])
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let (tx, rx) = mpsc::channel::<String>();
    let stderr = child.stderr.take().unwrap();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stderr)
            .lines()
            .map_while(Result::ok)
        {
            let _ = tx.send(line);
        }
    });
    let wait_for = |needle: &str| -> String {
        loop {
            match rx.recv_timeout(Duration::from_secs(60)) {
                Ok(line) if line.contains(needle) => return line,
                Ok(_) => {}
                Err(e) => panic!("no line with {needle:?}: {e}"),
            }
        }
    };
    let serving = wait_for("serving on http://");
    let addr = serving.rsplit("http://").next().unwrap().to_owned();
    let hangup = |pid: u32| {
        let ok = Command::new("kill")
            .args(["-HUP", &pid.to_string()])
            .status()
            .unwrap();
        assert!(ok.success());
    };
    let route = |prompt: &str| route_trace(&addr, prompt)["decide"]["route"].clone();
    assert_eq!(route("fix my python"), "default");

    std::fs::write(&path, &with_route).unwrap();
    hangup(child.id());
    wait_for("reloaded");
    assert_eq!(route("fix my python"), "coding");

    // The dry run of the command line and of the endpoint run the same phases: the
    // same trace, but for the time each step took.
    let served = without_timings(route_trace(&addr, "fix my python please"));
    let (ok, stdout, stderr) = switchyard(&[
        "route",
        "--config",
        path.to_str().unwrap(),
        "--prompt",
        "fix my python please",
    ]);
    assert!(ok, "{stderr}");
    let printed = without_timings(serde_json::from_str(&stdout).unwrap());
    assert_eq!(printed, served);
    assert!(served.get("plugins").is_some(), "{served}");

    // A policy with an error is refused; the previous one keeps serving.
    std::fs::write(
        &path,
        with_route.replace("keyword(\"code\")", "keyword(\"cod\")"),
    )
    .unwrap();
    hangup(child.id());
    let refused = wait_for("refused");
    assert!(
        refused.contains("still serving the previous policy"),
        "{refused}"
    );
    wait_for("did you mean `code`?");
    assert_eq!(route("fix my python"), "coding");

    // With reload_runs_tests, a policy whose TEST case takes another route is refused
    // too; one whose cases pass is served.
    let tested = |expected: &str| {
        with_route.replace(
            "SERVER { listen: \"127.0.0.1:0\" }",
            "SERVER { listen: \"127.0.0.1:0\", reload_runs_tests: true }",
        ) + &format!("TEST t {{ \"hello there\" -> {expected} }}\n")
    };
    std::fs::write(&path, tested("coding")).unwrap();
    hangup(child.id());
    wait_for("refused");
    wait_for("test cases failed");
    std::fs::write(&path, tested("default")).unwrap();
    hangup(child.id());
    wait_for("reloaded");
    assert_eq!(route("fix my python"), "coding");
    let _ = child.kill();
    let _ = child.wait();
}

#[test]
fn plugins_in_the_dsl_are_checked_formatted_and_compiled() {
    let dir = std::env::temp_dir().join(format!("switchyard-cli-plugins-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("policy.sy");
    let good = "MODEL m { family: qwen3 }\n\
                POOL p { model: m, context_window: 8K, endpoints: [{ url: \"http://127.0.0.1:9\" }] }\n\
                SIGNAL keyword code { keywords: [python] }\n\
                PLUGIN house system_prompt { text: \"Route {{route}}.\", mode: append }\n\
                PLUGIN caps params { global: true, max_tokens: 256 }\n\
                ROUTE coding {\n  WHEN keyword(\"code\")\n  MODEL \"m\"\n  PLUGIN house\n}\n\
                DEFAULT ROUTE { MODEL \"m\" }\n";
    std::fs::write(&path, good).unwrap();
    let file = path.to_str().unwrap();
    let (ok, stdout, stderr) = switchyard(&["check", "--config", file]);
    assert!(ok, "{stderr}");
    assert!(stdout.contains("ok:"), "{stdout}");
    let (ok, _, stderr) = switchyard(&["fmt", "--write", file]);
    assert!(ok, "{stderr}");
    let (ok, _, stderr) = switchyard(&["fmt", "--check", file]);
    assert!(ok, "formatting is idempotent: {stderr}");
    let canonical = std::fs::read_to_string(&path).unwrap();
    assert!(canonical.contains("  PLUGIN house\n"), "{canonical}");
    // DSL → YAML → DSL gives the same statements.
    let (ok, yaml, stderr) = switchyard(&["compile", file]);
    assert!(ok, "{stderr}");
    assert!(yaml.contains("\"plugins\":"), "{yaml}");
    let yaml_path = dir.join("policy.yaml");
    std::fs::write(&yaml_path, &yaml).unwrap();
    let (ok, dsl, stderr) = switchyard(&["compile", yaml_path.to_str().unwrap()]);
    assert!(ok, "{stderr}");
    assert_eq!(dsl.trim(), canonical.trim());
    // The route's dry run shows the chain: the global plugin, then the route's.
    let (ok, trace, stderr) = switchyard(&["route", "--config", file, "--prompt", "python?"]);
    assert!(ok, "{stderr}");
    let trace: serde_json::Value = serde_json::from_str(&trace).unwrap();
    assert_eq!(trace["plugins"]["chain"][0]["name"], "caps", "{trace}");
    assert_eq!(trace["plugins"]["chain"][1]["name"], "house", "{trace}");

    // An unknown option of a plugin type: the DSL line, and the nearest option.
    std::fs::write(&path, good.replace("mode: append", "mod: append")).unwrap();
    let (ok, _, stderr) = switchyard(&["check", "--config", file]);
    assert!(!ok);
    assert!(stderr.contains("policy.sy:4:"), "{stderr}");
    assert!(
        stderr.contains("unknown option `mod`; did you mean `mode`?"),
        "{stderr}"
    );
    // An unknown type, and an undefined plugin in a route.
    std::fs::write(
        &path,
        good.replace("house system_prompt", "house system_promt"),
    )
    .unwrap();
    let (ok, _, stderr) = switchyard(&["check", "--config", file]);
    assert!(!ok);
    assert!(stderr.contains("did you mean `system_prompt`?"), "{stderr}");
    std::fs::write(&path, good.replace("  PLUGIN house\n", "  PLUGIN hose\n")).unwrap();
    let (ok, _, stderr) = switchyard(&["check", "--config", file]);
    assert!(!ok);
    assert!(stderr.contains("policy.sy:9:"), "{stderr}");
    assert!(stderr.contains("unknown plugin `hose`"), "{stderr}");
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn a_short_soak_runs_mixed_traffic_and_faults_and_passes() {
    let (ok, stdout, stderr) = switchyard(&[
        "bench",
        "soak",
        "--duration",
        "24",
        "--warmup",
        "8",
        "--sample",
        "4",
        "--concurrency",
        "4",
    ]);
    assert!(ok, "{stdout}\n{stderr}");
    assert!(stdout.contains("PASSED"), "{stdout}");
    // Every kind of traffic reached the gateway and it stayed reachable.
    let last = stdout
        .lines()
        .find(|l| l.starts_with("requests:"))
        .expect("a requests line");
    assert!(last.contains(" 0 transport errors"), "{last}");
    for part in ["2xx", "4xx", "5xx", "abandoned"] {
        assert!(!last.contains(&format!(" 0 {part}")), "no {part}: {last}");
    }
}

#[test]
fn imported_projections_pass_their_own_tests_and_the_checker() {
    let dir = std::env::temp_dir().join(format!("switchyard-projections-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let converted = dir.join("projections.sy");
    let stderr = import_into(
        "crates/policy/tests/fixtures/vllm-sr/projections.dsl",
        &[],
        &converted,
        "POOL small { model: \"local/small\", context_window: 8K, endpoints: [{ url: \"http://127.0.0.1:9\" }] }
POOL medium { model: \"cloud/medium\", context_window: 8K, endpoints: [{ url: \"http://127.0.0.1:9\" }] }
POOL large { model: \"cloud/large\", context_window: 8K, endpoints: [{ url: \"http://127.0.0.1:9\" }] }
",
    );
    // Only translations are noted: every projection and route converted.
    assert!(
        !stderr.contains("left out") && !stderr.contains("dropped"),
        "{stderr}"
    );
    assert!(stderr.contains("multi_emit"), "{stderr}");
    let (ok, stdout, stderr) = run_tests(&converted);
    assert!(ok, "{stdout}{stderr}");
    assert!(stdout.contains("tests: 6 passed, 0 failed"), "{stdout}");
    // The checker sees through the bands to the keywords: no route is dead or shadowed.
    assert!(
        !stderr.contains("never") && !stdout.contains("never"),
        "{stdout}{stderr}"
    );
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn imported_recipes_pass_their_own_tests_under_their_aliases() {
    let dir = std::env::temp_dir().join(format!("switchyard-recipes-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let converted = dir.join("recipes.sy");
    import_into(
        "crates/policy/tests/fixtures/vllm-sr/recipes.dsl",
        &[],
        &converted,
        "POOL s { model: small, context_window: 8K, endpoints: [{ url: \"http://127.0.0.1:9\" }] }
POOL m { model: medium, context_window: 8K, endpoints: [{ url: \"http://127.0.0.1:9\" }] }
POOL l { model: large, context_window: 8K, endpoints: [{ url: \"http://127.0.0.1:9\" }] }
",
    );
    // Each case runs under an alias of its expected route's recipe.
    let (ok, stdout, stderr) = run_tests(&converted);
    assert!(ok, "{stdout}{stderr}");
    assert!(stdout.contains("tests: 6 passed, 0 failed"), "{stdout}");
    // The same prompt routes differently by the model name asked for.
    let route = |model: &str| {
        trace_of(&converted, model, "explain this python stack trace")["decide"]["route"]
            .as_str()
            .unwrap_or("")
            .to_owned()
    };
    assert_eq!(route("fast"), "fast_code");
    assert_eq!(route("vllm-sr/careful"), "careful_code");
    std::fs::remove_dir_all(&dir).ok();
}

/// The converted examples stay what the importer makes of their sources, pass
/// `check` without a warning, and pass their own tests.
#[test]
fn the_converted_vllm_sr_examples_are_current_and_pass_their_tests() {
    for (example, source, probes) in [
        ("privacy", "privacy.dsl", None),
        ("agent", "agent.dsl", None),
        ("balance", "balance.dsl", None),
        ("feedback", "feedback.dsl", None),
        ("multi-objective", "multi-objective.dsl", None),
        ("accuracy", "accuracy.dsl", None),
        ("knowledge", "knowledge.yaml", Some("knowledge-probes.yaml")),
    ] {
        let source = format!("examples/vllm-sr/{source}");
        let converted = format!("examples/vllm-sr/{example}.sy");
        let mut args = vec!["import".to_owned(), "vllm-sr".to_owned(), source.clone()];
        if let Some(probes) = probes {
            args.extend(["--probes".to_owned(), format!("examples/vllm-sr/{probes}")]);
        }
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let (ok, imported, stderr) = switchyard(&args);
        assert!(ok, "{stderr}");
        let body: String = imported.lines().skip(1).map(|l| format!("{l}\n")).collect();
        let written =
            std::fs::read_to_string(format!("{}/../../{converted}", env!("CARGO_MANIFEST_DIR")))
                .unwrap();
        assert!(
            written.contains(body.trim()),
            "{converted} is not what `switchyard import vllm-sr {source}` prints now; convert it again"
        );
        let (ok, stdout, stderr) = switchyard(&["check", "--config", &converted, "--run-tests"]);
        assert!(ok, "{converted}: {stdout}{stderr}");
        assert!(
            stdout.contains(" 0 warnings,"),
            "{converted}: {stdout}{stderr}"
        );
        assert!(stdout.contains(" 0 failed"), "{converted}: {stdout}");
    }
}

#[test]
fn an_imported_knowledge_base_signal_reads_their_labels_file_and_routes() {
    let Some(model) = model_dir() else { return };
    let dir = std::env::temp_dir().join(format!("switchyard-kb-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let converted = dir.join("kb.sy");
    let stderr = import_into(
        "crates/policy/tests/fixtures/vllm-sr/kb.yaml",
        &[],
        &converted,
        &format!(
            "SIGNALS {{ model: {{ path: \"{model}\", cache_dir: \"{}\" }} }}
POOL local {{ model: local, context_window: 8K, endpoints: [{{ url: \"http://127.0.0.1:9\" }}] }}
POOL cloud {{ model: cloud, context_window: 8K, endpoints: [{{ url: \"http://127.0.0.1:9\" }}] }}
",
            dir.join("cache").display()
        ),
    );
    assert!(stderr.contains("`nowhere_kb` is not defined"), "{stderr}");
    let (ok, stdout, stderr) = switchyard(&["check", "--config", converted.to_str().unwrap()]);
    assert!(ok, "{stdout}{stderr}");
    let route = |prompt: &str| route_of(&converted, prompt);
    assert_eq!(
        route("Please review this function from our internal monorepo before release"),
        "keep_local"
    );
    assert_eq!(route("How do I reverse a string in Python?"), "default");
    // The group margin: private similarity less public, as two kb signals' values.
    let margin = |prompt: &str| {
        let trace = trace_of(&converted, "auto", prompt);
        let signals = trace["characterize"]["signals"].as_array().unwrap().clone();
        let value = |name: &str| {
            signals
                .iter()
                .find(|s| s["signal"] == name)
                .and_then(|s| s["value"].as_f64())
                .unwrap_or_else(|| panic!("{name} in {trace}"))
        };
        let private = value("kb(\"privacy_kb__private\")");
        let public = value("kb(\"privacy_kb__public\")");
        let score = value("projection(\"privacy_margin\")");
        assert!(
            (score - (private - public)).abs() < 1e-9,
            "{score} {private} {public}"
        );
        score
    };
    assert!(margin("Refactor the confidential module from our repository") > 0.0);
    assert!(margin("Explain what a closure is in JavaScript, with an example") < 0.0);
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn eval_cache_replays_a_prompt_file_and_names_a_bad_row() {
    let Some(model) = model_dir() else {
        return;
    };
    let dir = std::env::temp_dir().join(format!("switchyard-eval-cache-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let data = dir.join("replay.jsonl");
    let rows = [
        ("How can I combine two Python dicts into one?", "dicts"),
        ("What is the capital of Australia?", "canberra"),
        ("How do I merge two dictionaries in Python?", "dicts"),
        ("What is the capital of Austria?", "vienna"),
        ("What is the capital of Australia?", "canberra"),
    ];
    let text: String = rows
        .iter()
        .map(|(p, g)| format!("{}\n", serde_json::json!({"prompt": p, "group": g})))
        .collect();
    std::fs::write(&data, text).unwrap();
    let cache = dir.join("embeddings");
    let json = dir.join("results.json");
    let args = |thresholds: &str| -> Vec<String> {
        [
            "eval",
            "cache",
            "--data",
            data.to_str().unwrap(),
            "--model",
            &model,
            "--cache-dir",
            cache.to_str().unwrap(),
            "--thresholds",
            thresholds,
            "--json",
            json.to_str().unwrap(),
        ]
        .map(str::to_owned)
        .to_vec()
    };
    let run = |thresholds: &str| {
        let a = args(thresholds);
        switchyard(&a.iter().map(String::as_str).collect::<Vec<_>>())
    };
    let (ok, out, err) = run("0.99,0.5");
    assert!(ok, "{out}{err}");
    assert!(out.contains("5 prompts in 3 groups"), "{out}");
    let results: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    // At 0.99 only the exact repeat hits; at 0.5 the paraphrase hits too, and Austria
    // (a different question of the same shape) takes Australia's answer.
    assert_eq!(results[0]["hits"], 1, "{results}");
    assert_eq!(results[0]["false_hits"], 0, "{results}");
    assert_eq!(results[1]["repeats"], 2, "{results}");
    assert_eq!(results[1]["repeat_recall"], 1.0, "{results}");
    assert_eq!(results[1]["false_hits"], 1, "{results}");

    std::fs::write(&data, "{\"prompt\": \"hi\"}\n").unwrap();
    let (ok, _, err) = run("0.9");
    assert!(!ok);
    assert!(
        err.contains("replay.jsonl:1") && err.contains("group"),
        "{err}"
    );
    let (ok, _, err) = run("1.5");
    assert!(!ok);
    assert!(err.contains("--thresholds"), "{err}");
}

#[test]
fn eval_routing_and_train_router_learn_where_the_strong_model_helps() {
    let Some(model) = model_dir() else { return };
    let dir = std::env::temp_dir().join(format!("switchyard-routing-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let data = dir.join("outcomes.jsonl");
    // The strong model is right on arithmetic where the weak one fails (3 in 4); on
    // geography both are right. A router that learns sends arithmetic to the strong one.
    let places = [
        "France", "Peru", "Kenya", "Japan", "Norway", "Chile", "Egypt", "Canada", "India", "Spain",
    ];
    let mut rows = String::new();
    for i in 0..60 {
        let a = 17 + i * 7;
        let b = 3 + i % 11;
        rows.push_str(&format!(
            "{}\n",
            serde_json::json!({"id": format!("m{i}"), "category": "math",
                "prompt": format!("Compute {a} * {b} + {} and give the exact integer result.", i * 3),
                "correct": {"big": true, "small": i % 4 == 0}})
        ));
        let place = places[i % places.len()];
        rows.push_str(&format!(
            "{}\n",
            serde_json::json!({"id": format!("g{i}"), "category": "geography",
                "prompt": format!("Which continent is {place} in? Question {i} of the atlas quiz."),
                "correct": {"big": true, "small": true}})
        ));
    }
    std::fs::write(&data, rows).unwrap();
    let cache = dir.join("cache");
    let (json, plot) = (dir.join("routing.json"), dir.join("routing.svg"));
    let common = [
        "--data",
        data.to_str().unwrap(),
        "--model",
        &model,
        "--cache-dir",
        cache.to_str().unwrap(),
    ];
    let mut args = vec!["eval", "routing", "--resamples", "50"];
    args.extend(common);
    args.extend([
        "--json",
        json.to_str().unwrap(),
        "--plot",
        plot.to_str().unwrap(),
    ]);
    let (ok, stdout, stderr) = switchyard(&args);
    assert!(ok, "{stdout}{stderr}");
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    let routers = report["routers"].as_array().unwrap();
    let share = |name: &str| {
        routers
            .iter()
            .find(|r| r["name"].as_str().unwrap().starts_with(name))
            .unwrap_or_else(|| panic!("no {name} in {stdout}"))["strong_share_at_95"]
            .as_f64()
            .unwrap()
    };
    // 45 of 120 prompts need the strong model; 95% of its accuracy takes 39 of them:
    // the oracle sends 32.5%, random most.
    assert!((share("oracle") - 0.325).abs() < 0.01, "{stdout}");
    assert!(
        report["strong_share_at_95"].as_f64().unwrap() < 0.6,
        "{stdout}"
    );
    assert!(share("random") > 0.75, "{stdout}");
    // The oracle reaches about 0.81 here; random 0.5.
    assert!(report["apgr"].as_f64().unwrap() > 0.65, "{stdout}");
    assert_eq!(report["scores"].as_array().unwrap().len(), 120);
    assert!(std::fs::read_to_string(&plot).unwrap().starts_with("<svg"));
    // Confidence cascades (κ 2, 4, 8 by default): the sharper the weak model's
    // confidence, the fewer prompts go on; each beats random.
    let cascade = |kappa: &str| {
        share(&format!(
            "cascade on the weak model's confidence (κ {kappa},"
        ))
    };
    assert!(cascade("2") <= cascade("8"), "{stdout}");
    assert!(cascade("2") < share("random") - 0.2, "{stdout}");
    // The answer key of a simulated engine comes from such a file, by column.
    let (ok, _, stderr) = switchyard(&[
        "engine",
        "--listen",
        "127.0.0.1:1",
        "--answers",
        data.to_str().unwrap(),
        "--answers-model",
        "medium",
    ]);
    assert!(!ok);
    assert!(
        stderr.contains("no model `medium`") && stderr.contains("big, small"),
        "{stderr}"
    );

    let out = dir.join("router.json");
    let mut args = vec!["train", "router", "--out", out.to_str().unwrap()];
    args.extend(common);
    let (ok, stdout, stderr) = switchyard(&args);
    assert!(ok, "{stdout}{stderr}");
    let provenance = std::fs::read_to_string(dir.join("router.md")).unwrap();
    assert!(
        provenance.contains("strong `big`") && provenance.contains("APGR"),
        "{provenance}"
    );
    let mut args = vec![
        "eval",
        "routing",
        "--resamples",
        "20",
        "--router",
        out.to_str().unwrap(),
    ];
    args.extend(common);
    args.extend(["--json", json.to_str().unwrap()]);
    let (ok, stdout, stderr) = switchyard(&args);
    assert!(ok, "{stdout}{stderr}");
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    assert!(
        report["router"]
            .as_str()
            .unwrap()
            .starts_with("router file")
    );
    assert!(
        report["strong_share_at_95"].as_f64().unwrap() < 0.45,
        "{stdout}"
    );

    // A policy as the router: arithmetic (by keyword) to `big`, the rest to `small`.
    let policy = dir.join("policy.yaml");
    std::fs::write(
        &policy,
        "models: [{name: small}, {name: big}]
pools:
  - {name: s, model: small, context_window: 8K, endpoints: [{url: 'http://127.0.0.1:9'}]}
  - {name: b, model: big, context_window: 8K, endpoints: [{url: 'http://127.0.0.1:8'}]}
signals:
  keyword: [{name: math, keywords: [Compute]}]
routes:
  - {name: math, when: {keyword: math}, models: [big]}
default_route: {models: [small]}
",
    )
    .unwrap();
    let mut args = vec![
        "eval",
        "routing",
        "--resamples",
        "20",
        "--cascade",
        "--router",
        policy.to_str().unwrap(),
    ];
    args.extend(common);
    args.extend(["--json", json.to_str().unwrap()]);
    let (ok, stdout, stderr) = switchyard(&args);
    assert!(ok, "{stdout}{stderr}");
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    assert!(report["router"].as_str().unwrap().starts_with("policy "));
    // Half the rows are arithmetic: sent to big, where it is always right; geography
    // stays on small, also always right: accuracy 100% (the whole gap recovered) with
    // half the calls strong.
    assert_eq!(report["strong_share_at_95"], 0.5, "{stdout}");
    assert!(
        (report["apgr"].as_f64().unwrap() - 1.0).abs() < 1e-9,
        "{stdout}"
    );
    assert!(
        stdout.contains("sends 50.0% to the strong model at 100.0% accuracy (reaches 95%)"),
        "{stdout}"
    );
    // A policy that picks a model the file has no outcomes for is refused by row.
    std::fs::write(
        &policy,
        "models: [{name: other}]
pools: [{name: o, model: other, context_window: 8K, endpoints: [{url: 'http://127.0.0.1:9'}]}]
default_route: {models: [other]}
",
    )
    .unwrap();
    let (ok, _, stderr) = switchyard(&args);
    assert!(!ok);
    assert!(
        stderr.contains("row 1") && stderr.contains("picks `other`"),
        "{stderr}"
    );

    // A row without outcomes is named by file and line.
    std::fs::write(
        &data,
        "{\"prompt\": \"x\", \"correct\": {\"a\": true, \"b\": false}}\n{\"prompt\": \"y\"}\n",
    )
    .unwrap();
    let mut args = vec!["eval", "routing"];
    args.extend(common);
    let (ok, _, stderr) = switchyard(&args);
    assert!(!ok);
    assert!(
        stderr.contains("outcomes.jsonl:2: no `correct`"),
        "{stderr}"
    );
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn bench_cascade_grades_answers_through_the_gateway() {
    let dir = std::env::temp_dir().join(format!("switchyard-cascade-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let data = dir.join("outcomes.jsonl");
    // The strong model is always right; the weak one on half the rows.
    let rows: String = (0..40)
        .map(|i| {
            format!(
                "{}\n",
                serde_json::json!({"id": format!("r{i}"), "prompt": format!("Question {i}?"),
                    "correct": {"big": true, "small": i % 2 == 0}})
            )
        })
        .collect();
    std::fs::write(&data, rows).unwrap();
    let (ok, stdout, stderr) = switchyard(&[
        "bench",
        "cascade",
        "--data",
        data.to_str().unwrap(),
        "--rows",
        "0",
        "--thresholds",
        "0.5",
        "--learned-shares",
    ]);
    assert!(ok, "{stdout}{stderr}");
    // The engines grade by the file: weak alone 50%, strong alone 100%.
    assert!(
        stdout.contains("| weak only | 0.0% | 50.0% | 50.0% |"),
        "{stdout}"
    );
    assert!(
        stdout.contains("| strong only | 100.0% | 100.0% | 100.0% |"),
        "{stdout}"
    );
    let cascade = stdout
        .lines()
        .find(|l| l.starts_with("| cascade, min_confidence 0.5"))
        .unwrap_or_else(|| panic!("{stdout}"));
    // Some answers escalate, and escalating only ever helps here.
    let cells: Vec<f64> = cascade
        .split('|')
        .filter_map(|c| c.trim().trim_end_matches('%').parse().ok())
        .collect();
    assert!(cells[0] > 0.0 && cells[0] < 100.0, "{cascade}");
    assert!(cells[1] > 50.0, "{cascade}");
}
