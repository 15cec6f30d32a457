//! The `switchyard` command. It parses arguments and wires crates together; the
//! logic lives in the library crates.

#![allow(clippy::print_stdout, clippy::print_stderr)]

/// mimalloc: a request allocates and frees many small buffers across threads, where
/// glibc's allocator spent a fifth of the gateway's instructions.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

mod bench;
mod cascade_bench;
mod demo;
mod eval;
mod eval_cache;
mod eval_routing;
mod fleet;
mod placement_bench;
mod soak;
mod train;

use anyhow::{Context, Result, bail};
use clap::{Args, Parser, Subcommand};
use std::path::{Path, PathBuf};
use switchyard_engine::{EngineConfig, Faults};
use switchyard_fleet::GpuKind;
use switchyard_gateway::{Gateway, Runtime, dry_run};
use switchyard_policy::{Policy, load_config};
use switchyard_workload::TokenCount;

/// Switchyard: an LLM inference router.
#[derive(Parser)]
#[command(name = "switchyard", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the OpenAI-compatible gateway.
    Serve {
        /// The configuration file.
        #[arg(long, short)]
        config: PathBuf,
    },
    /// Validate a configuration (syntax, schema, references across sections) and
    /// prove what its routes do (overlaps, shadowed and dead routes, gaps).
    Check {
        /// The configuration file.
        #[arg(long, short)]
        config: PathBuf,
        /// Print the checker's findings as JSON instead of the summary.
        #[arg(long)]
        json: bool,
        /// Also run the policy's TEST cases through the signal engine and the
        /// decision; fails when a prompt takes another route.
        #[arg(long)]
        run_tests: bool,
    },
    /// Print a DSL policy (`*.sy`) in canonical form.
    Fmt {
        /// The DSL file.
        file: PathBuf,
        /// Rewrite the file in place instead of printing.
        #[arg(long, conflicts_with = "check")]
        write: bool,
        /// Only check: fail (exit 1) when the file is not in canonical form.
        #[arg(long)]
        check: bool,
    },
    /// Convert a policy from another router into this project's DSL.
    #[command(subcommand)]
    Import(ImportCommand),
    /// Convert a policy between DSL (`*.sy`) and YAML: DSL → YAML, YAML → DSL. The
    /// configuration is checked first; the result reads back to the same configuration.
    Compile {
        /// The input file (`*.sy` is DSL; anything else YAML).
        file: PathBuf,
        /// Write here instead of standard output.
        #[arg(long, short)]
        output: Option<PathBuf>,
    },
    /// Route a prompt without calling upstream and print the trace as JSON.
    Route {
        /// The configuration file.
        #[arg(long, short)]
        config: PathBuf,
        /// The user prompt.
        #[arg(long, short)]
        prompt: String,
        /// The model to ask for (`auto` routes by policy).
        #[arg(long, default_value = "auto")]
        model: String,
        /// Cap on generated tokens, as `max_tokens` would set it.
        #[arg(long)]
        max_tokens: Option<u32>,
    },
    /// Run a simulated OpenAI-compatible inference engine.
    Engine(EngineArgs),
    /// Start a demo fleet behind the gateway, send a mix of requests and show the routing.
    Demo {
        /// Configuration to use instead of the built-in demo (`examples/demo.sy`).
        #[arg(long, short)]
        config: Option<PathBuf>,
        /// Exit after the requests instead of serving until Ctrl-C.
        #[arg(long)]
        exit: bool,
    },
    /// Benchmarks.
    #[command(subcommand)]
    Bench(bench::BenchCommand),
    /// Fleet simulation and planning, offline.
    #[command(subcommand)]
    Fleet(fleet::FleetCommand),
    /// Evaluate signals against labelled data.
    #[command(subcommand)]
    Eval(eval::EvalCommand),
    /// Train learned signal heads from labelled data.
    #[command(subcommand)]
    Train(train::TrainCommand),
}

#[derive(Subcommand)]
enum ImportCommand {
    /// A vLLM Semantic Router policy (its DSL, or its YAML with `routing.signals` and
    /// `routing.decisions`). Prints the DSL; reports each construct that does not map,
    /// with its line, on standard error.
    VllmSr {
        /// The file to convert.
        file: PathBuf,
        /// Write the DSL here instead of standard output.
        #[arg(long, short)]
        output: Option<PathBuf>,
        /// Their probe file (`probes.yaml`) for the policy: converted into a TEST block
        /// that `check --run-tests` runs.
        #[arg(long)]
        probes: Option<PathBuf>,
    },
}

#[derive(Args)]
struct EngineArgs {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:9000")]
    listen: String,
    /// GPU to simulate: a10g, a100, h100, or `instant` (answer at once).
    #[arg(long, default_value = "a100")]
    gpu: String,
    /// Context window, e.g. 8192, 8K, 64K.
    #[arg(long, default_value = "8K")]
    context_window: String,
    /// Model name to report.
    #[arg(long, default_value = "sim")]
    model: String,
    /// Mean answer length in tokens.
    #[arg(long, default_value_t = 64)]
    mean_output_tokens: u32,
    /// Seed of the fault injector.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Fraction of requests answered with HTTP 500.
    #[arg(long, default_value_t = 0.0)]
    error_rate: f64,
    /// Milliseconds added before each request is queued.
    #[arg(long, default_value_t = 0)]
    added_latency_ms: u64,
    /// Stop sending after this many tokens and hold the connection.
    #[arg(long)]
    stall_after_tokens: Option<u32>,
    /// Break the connection after this many tokens.
    #[arg(long)]
    drop_after_tokens: Option<u32>,
    /// Tokens the prefix cache holds (default: half the GPU's KV capacity; 0: off).
    #[arg(long)]
    prefix_cache_tokens: Option<u64>,
    /// Share of answers that are right, in (0, 1); the logprobs carry a confidence
    /// calibrated to it.
    #[arg(long, default_value_t = 0.7)]
    accuracy: f64,
    /// κ of the confidence's Beta(κμ, κ(1−μ)): smaller tells right from wrong better.
    #[arg(long, default_value_t = 4.0)]
    concentration: f64,
    /// A labelled outcome file (rows: prompt and per-model correct): prompts in it are
    /// answered right or wrong as its column for this model (`--model`, or
    /// `--answers-model`) says.
    #[arg(long)]
    answers: Option<PathBuf>,
    /// The column of `--answers` to take (default: `--model`).
    #[arg(long)]
    answers_model: Option<String>,
    /// Fraction of answers made wrong, in [0, 1].
    #[arg(long, default_value_t = 0.0)]
    wrong_answers: f64,
    /// The API served: `openai` (POST /v1/chat/completions), `azure`
    /// (/openai/deployments/{deployment}/chat/completions?api-version=…) or
    /// `anthropic` (POST /v1/messages).
    #[arg(long, default_value = "openai")]
    api: switchyard_engine::Api,
    /// Environment variable holding the key clients must send in the API's header
    /// (`authorization: Bearer`, `api-key` or `x-api-key`); default: none required.
    #[arg(long)]
    api_key_env: Option<String>,
}

fn main() -> std::process::ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    // A gateway holds two descriptors per request in flight; the soft default of
    // 1,024 is far below what the machine allows.
    if let Err(e) = switchyard_gateway::serve::raise_open_file_limit() {
        eprintln!("warning: cannot raise the open-file limit: {e}");
    }
    // `serve` sizes its runtime from the configuration, so it is checked first.
    let (policy, workers) = match &cli.command {
        Command::Serve { config } => match compile(config) {
            Ok(policy) => {
                let workers = policy.config.server.worker_threads;
                (Some(policy), workers)
            }
            Err(e) => {
                eprintln!("error: {e:#}");
                return std::process::ExitCode::FAILURE;
            }
        },
        _ => (None, None),
    };
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    if let Some(n) = workers {
        builder.worker_threads(n);
    }
    let runtime = match builder.enable_all().build() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let result = match (cli.command, policy) {
        (Command::Serve { config }, Some(policy)) => runtime.block_on(serve(&config, policy)),
        (command, _) => runtime.block_on(run(command)),
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run(command: Command) -> Result<()> {
    match command {
        Command::Serve { config } => serve(&config, compile(&config)?).await,
        Command::Check {
            config,
            json,
            run_tests,
        } => check(&config, json, run_tests),
        Command::Fmt { file, write, check } => fmt(&file, write, check),
        Command::Compile { file, output } => convert(&file, output.as_deref()),
        Command::Import(ImportCommand::VllmSr {
            file,
            output,
            probes,
        }) => import_vllm_sr(&file, output.as_deref(), probes.as_deref()),
        Command::Route {
            config,
            prompt,
            model,
            max_tokens,
        } => route(&config, &prompt, &model, max_tokens),
        Command::Engine(args) => engine(args).await,
        Command::Demo { config, exit } => demo::run(config.as_deref(), exit).await,
        Command::Bench(command) => bench::run(command).await,
        Command::Fleet(command) => fleet::run(command),
        Command::Train(command) => train::run(command),
        Command::Eval(command) => eval::run(command),
    }
}

/// Loads and compiles a configuration, printing warnings; errors carry file and line.
fn compile(path: &Path) -> Result<Policy> {
    let config = load_config(path).map_err(|e| anyhow::anyhow!("{e}"))?;
    let mut policy = Policy::compile(config).map_err(|e| anyhow::anyhow!("{}", e.in_file(path)))?;
    // Plugin types and their options are the router's to check.
    // (Built against a state of its own: nothing here counts requests.)
    let state: std::sync::Arc<dyn switchyard_state::SharedState> =
        std::sync::Arc::new(switchyard_state::InProcess::new(
            std::sync::Arc::new(switchyard_state::SystemClock::new()),
            switchyard_state::Limits::default(),
        ));
    let plugins = switchyard_router::plugins::Plugins::build(&policy, &[], &state)
        .map_err(|e| anyhow::anyhow!("{}", e.in_file(path)))?;
    // So are their rules that never take effect (budgets, tool permissions).
    let found = plugins.warnings(&policy);
    policy.warnings.extend(found);
    for w in &policy.warnings {
        let mut w = w.clone();
        w.file.get_or_insert_with(|| path.to_path_buf());
        eprintln!("{w}");
    }
    Ok(policy)
}

async fn serve(path: &Path, policy: Policy) -> Result<()> {
    let listen = policy.config.server.listen.value.clone();
    let runtime = Runtime::new(policy)?;
    let listener = tokio::net::TcpListener::bind(&listen)
        .await
        .with_context(|| {
            format!(
                "cannot listen on {listen} (server.listen in {})",
                path.display()
            )
        })?;
    let gateway = Gateway::start(listener, runtime)?;
    // The handler is in place before anyone is told the gateway serves: a SIGHUP sent
    // on that word must reload, not end the process.
    reload_on_hangup(path, std::sync::Arc::clone(&gateway.live));
    if let Some(admin) = gateway.admin_addr {
        eprintln!("switchyard: operator endpoints on http://{admin} (server.admin_listen)");
    }
    eprintln!("switchyard: serving on {}", gateway.url());
    gateway.wait().await?;
    Ok(())
}

/// On SIGHUP, reads and checks the configuration again and serves it if it has no
/// error; otherwise says why and keeps serving the previous one.
fn reload_on_hangup(path: &Path, live: std::sync::Arc<switchyard_gateway::Live>) {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let path = path.to_path_buf();
        // Registered here, not in the task: the task may first run after a signal came.
        let Ok(mut hangups) = signal(SignalKind::hangup()) else {
            eprintln!("switchyard: cannot listen for SIGHUP; reloading is off");
            return;
        };
        tokio::spawn(async move {
            while hangups.recv().await.is_some() {
                let file = path.clone();
                // Loading may read the embedding model, and a reload may run the
                // policy's tests through it: off the async workers.
                let live = std::sync::Arc::clone(&live);
                let reloaded = tokio::task::spawn_blocking(move || {
                    live.reload(compile(&file)?)
                        .map_err(|e| anyhow::anyhow!("{e}"))
                })
                .await;
                let outcome = reloaded.unwrap_or_else(|e| Err(anyhow::anyhow!("{e}")));
                match outcome {
                    Ok(fixed) => {
                        eprintln!("switchyard: reloaded {}", path.display());
                        if !fixed.is_empty() {
                            eprintln!(
                                "switchyard: {} changed, and take effect only after a restart",
                                fixed.join(", ")
                            );
                        }
                    }
                    Err(e) => eprintln!(
                        "switchyard: reload of {} refused, still serving the previous policy:\n{e:#}",
                        path.display()
                    ),
                }
            }
        });
    }
    #[cfg(not(unix))]
    let _ = (path, live);
}

fn fmt(path: &Path, write: bool, check: bool) -> Result<()> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    if !switchyard_policy::dsl::is_dsl_path(path) {
        bail!(
            "{}: fmt formats DSL files (*.sy); convert YAML with `switchyard compile {}`",
            path.display(),
            path.display()
        );
    }
    let formatted = switchyard_policy::dsl::format(&text)
        .map_err(|e| anyhow::anyhow!("{}", e.in_file(path)))?;
    if check {
        if formatted != text {
            bail!(
                "{} is not in canonical form: run `switchyard fmt --write {}`",
                path.display(),
                path.display()
            );
        }
        eprintln!("{}: formatted", path.display());
    } else if write {
        if formatted != text {
            std::fs::write(path, &formatted)
                .with_context(|| format!("cannot write {}", path.display()))?;
        }
    } else {
        print!("{formatted}");
    }
    Ok(())
}

fn import_vllm_sr(path: &Path, output: Option<&Path>, probes: Option<&Path>) -> Result<()> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    let probes = probes
        .map(|p| {
            let text = std::fs::read_to_string(p)
                .with_context(|| format!("cannot read {}", p.display()))?;
            switchyard_policy::import::read_probes(&text)
                .map_err(|e| anyhow::anyhow!("{}", e.in_file(p)))
        })
        .transpose()?;
    let imported = switchyard_policy::import::import_vllm_sr_with_probes(&text, probes)
        .map_err(|e| anyhow::anyhow!("{}", e.in_file(path)))?;
    for note in &imported.notes {
        let at = if note.line > 0 {
            format!("{}:{}", path.display(), note.line)
        } else {
            path.display().to_string()
        };
        eprintln!("{at}: import: {}: {}", note.construct, note.reason);
    }
    let header = format!(
        "# Imported from {} by `switchyard import vllm-sr` ({} note(s) on what did not convert).\n",
        path.display(),
        imported.notes.len()
    );
    let text = format!("{header}{}", imported.dsl);
    match output {
        Some(out) => {
            std::fs::write(out, text).with_context(|| format!("cannot write {}", out.display()))?
        }
        None => print!("{text}"),
    }
    eprintln!(
        "{}: converted; {} note(s) above",
        path.display(),
        imported.notes.len()
    );
    Ok(())
}

fn convert(path: &Path, output: Option<&Path>) -> Result<()> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    let converted = if switchyard_policy::dsl::is_dsl_path(path) {
        let yaml = switchyard_policy::dsl::to_yaml(&text);
        yaml.map(|y| {
            format!(
                "# Compiled from {} by `switchyard compile`.\n{y}",
                path.display()
            )
        })
    } else {
        switchyard_policy::dsl::from_yaml(&text)
    }
    .map_err(|e| anyhow::anyhow!("{}", e.in_file(path)))?;
    match output {
        Some(out) => std::fs::write(out, converted)
            .with_context(|| format!("cannot write {}", out.display()))?,
        None => print!("{converted}"),
    }
    Ok(())
}

fn check(path: &Path, json: bool, run_tests: bool) -> Result<()> {
    let policy = compile(path)?;
    if let Some(tokenizer) = &policy.config.server.tokenizer {
        switchyard_workload::TokenCounter::from_file(tokenizer).map_err(|e| {
            anyhow::anyhow!(
                "{}: server.tokenizer: {e}\n  help: run scripts/fetch-model.sh for the default model's",
                path.display()
            )
        })?;
    }
    if json {
        println!("{}", serde_json::to_string_pretty(&policy.analysis)?);
        return Ok(());
    }
    // Warnings were printed by `compile`; notes (overlaps that priorities settle) here.
    let notes: Vec<_> = policy
        .analysis
        .findings
        .iter()
        .filter(|f| !f.kind.is_warning())
        .collect();
    for finding in &notes {
        let mut note = policy.diagnostic(finding);
        note.file = Some(path.to_path_buf());
        eprintln!("{note}");
    }
    println!(
        "{}: ok: {} models, {} pools, {} routes{}, {} signals, {} constraints, {} warnings, \
         {} notes (checked over {} signals: every pair of routes, shadowing, dead routes, \
         gaps, constraints, budgets and tool rules)",
        path.display(),
        policy.config.models.len(),
        policy.config.pools.len(),
        policy.config.routes.len(),
        if policy.has_default() {
            " + default"
        } else {
            ""
        },
        policy.signals.len(),
        policy.constraints.len(),
        policy.warnings.len(),
        notes.len(),
        policy.analysis.signals,
    );
    if run_tests {
        policy_tests(path, policy)?;
    }
    Ok(())
}

/// Runs every TEST case through the signal engine and the phases, as a request for
/// `auto` would be.
fn policy_tests(path: &Path, policy: Policy) -> Result<()> {
    if policy.config.tests.is_empty() {
        bail!(
            "{}: --run-tests: the policy has no TEST blocks (YAML: `tests:`)",
            path.display()
        );
    }
    let runtime = Runtime::new(policy)?;
    let report = switchyard_gateway::policy_tests::run(&runtime);
    for f in &report.failed {
        eprintln!("{}{f}", path.display());
    }
    println!(
        "{}: tests: {} passed, {} failed",
        path.display(),
        report.passed,
        report.failed.len()
    );
    if !report.failed.is_empty() {
        bail!("{} policy test cases failed", report.failed.len());
    }
    Ok(())
}

/// The dry run of `POST /v1/route` on the request a client would send for `prompt`:
/// the same trace, printed; a refused request prints its trace (ending at the phase
/// that refused it) and fails.
fn route(path: &Path, prompt: &str, model: &str, max_tokens: Option<u32>) -> Result<()> {
    let policy = compile(path)?;
    let runtime = Runtime::new(policy)?;
    let (headers, body) = dry_run::prompt_request(model, prompt, max_tokens);
    let (status, trace) = dry_run::dry_run(&runtime, &headers, Ok(body), None);
    println!("{}", serde_json::to_string_pretty(&trace)?);
    if !status.is_success() {
        let value = trace.to_value();
        let message = value["error"]["message"].as_str().unwrap_or("refused");
        bail!(
            "the request would be refused ({}): {message}",
            status.as_u16()
        );
    }
    Ok(())
}

fn parse_gpu(name: &str) -> Result<Option<GpuKind>> {
    if name.eq_ignore_ascii_case("instant") {
        return Ok(None);
    }
    match GpuKind::from_name(name) {
        Some(kind) => Ok(Some(kind)),
        None => bail!("unknown GPU `{name}`: use a10g, a100, h100 or instant"),
    }
}

async fn engine(args: EngineArgs) -> Result<()> {
    let context_window = TokenCount::parse(&args.context_window)
        .map_err(|e| anyhow::anyhow!("--context-window: {e}"))?;
    let answer_key = match &args.answers {
        Some(path) => {
            let column = args.answers_model.as_deref().unwrap_or(&args.model);
            Some(std::sync::Arc::new(eval_routing::answer_key(path, column)?))
        }
        None => None,
    };
    let api_key = match &args.api_key_env {
        Some(variable) => Some(std::env::var(variable).map_err(|_| {
            anyhow::anyhow!("--api-key-env: environment variable `{variable}` is not set")
        })?),
        None => None,
    };
    let config = EngineConfig {
        model: args.model,
        gpu: parse_gpu(&args.gpu)?,
        context_window: context_window.0,
        mean_output_tokens: args.mean_output_tokens,
        seed: args.seed,
        faults: Faults {
            error_rate: args.error_rate,
            added_latency_ms: args.added_latency_ms,
            stall_after_tokens: args.stall_after_tokens,
            drop_after_tokens: args.drop_after_tokens,
            wrong_answers: args.wrong_answers,
        },
        prefix_cache_tokens: args.prefix_cache_tokens,
        skill: switchyard_engine::quality::Skill {
            accuracy: args.accuracy,
            concentration: args.concentration,
        },
        answer_key,
        api: args.api,
        api_key,
    };
    let listener = tokio::net::TcpListener::bind(&args.listen)
        .await
        .with_context(|| format!("cannot listen on {} (--listen)", args.listen))?;
    let handle = switchyard_engine::serve(listener, config).await?;
    eprintln!(
        "switchyard engine: serving on {} (Ctrl-C stops)",
        handle.url()
    );
    tokio::signal::ctrl_c().await?;
    Ok(())
}
