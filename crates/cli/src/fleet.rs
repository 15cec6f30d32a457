//! `switchyard fleet …`: the fleet simulator and planner on the command line.

use anyhow::{Context, Result};
use indicatif::{ProgressBar, ProgressStyle};
use std::path::PathBuf;
use std::time::Instant;
use switchyard_fleet::plan::{self, Candidate, load_plan, svg};
use switchyard_fleet::sim::{Simulation, load_scenario};

#[derive(clap::Subcommand)]
pub enum FleetCommand {
    /// Simulate a fleet serving a workload and report latency, utilization, cost,
    /// energy and SLO attainment per pool.
    Simulate(SimulateArgs),
    /// Plan the cheapest (or most efficient) fleet that meets a P99 TTFT SLO: boundary
    /// B, compression γ, GPU and size per pool, verified by simulation.
    Plan(PlanArgs),
}

#[derive(clap::Args)]
pub struct PlanArgs {
    /// The planning file (see docs/fleet.md#planning).
    #[arg(long, short)]
    config: PathBuf,
    /// Write SVG plots (Pareto front, pool sizes over the day, workload CDFs) here.
    #[arg(long)]
    plots: Option<PathBuf>,
    /// Also write the whole plan as JSON to this file.
    #[arg(long)]
    json: Option<PathBuf>,
    /// Candidates to list.
    #[arg(long, default_value_t = 8)]
    top: usize,
    /// Accept a plan that no simulation confirmed (exit 0 with a warning); without it,
    /// a plan whose every verified candidate missed the SLO exits non-zero.
    #[arg(long)]
    best_effort: bool,
}

#[derive(clap::Args)]
pub struct SimulateArgs {
    /// The simulation file (see docs/fleet.md).
    #[arg(long, short)]
    config: PathBuf,
    /// Override the number of arrivals.
    #[arg(long)]
    requests: Option<u64>,
    /// Override the seed.
    #[arg(long)]
    seed: Option<u64>,
    /// What to print: a table, JSON or CSV.
    #[arg(long, value_enum, default_value = "table")]
    format: Format,
    /// Also write the JSON report to this file.
    #[arg(long)]
    json: Option<PathBuf>,
    /// Also write the CSV report to this file.
    #[arg(long)]
    csv: Option<PathBuf>,
    /// No progress bar.
    #[arg(long)]
    quiet: bool,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum Format {
    Table,
    Json,
    Csv,
}

pub fn run(command: FleetCommand) -> Result<()> {
    match command {
        FleetCommand::Simulate(args) => simulate(args),
        FleetCommand::Plan(args) => plan(args),
    }
}

fn progress_bar(quiet: bool, total: Option<u64>) -> ProgressBar {
    if quiet {
        return ProgressBar::hidden();
    }
    let bar = match total {
        Some(n) => ProgressBar::new(n),
        None => ProgressBar::new_spinner(),
    };
    let style = ProgressStyle::with_template(
        "{spinner} [{elapsed_precise}] {wide_bar} {human_pos}/{human_len} arrivals ({per_sec})",
    )
    .unwrap_or_else(|_| ProgressStyle::default_bar());
    bar.set_style(style);
    bar
}

fn simulate(args: SimulateArgs) -> Result<()> {
    let mut scenario = load_scenario(&args.config).map_err(|e| anyhow::anyhow!("{e}"))?;
    if let Some(n) = args.requests {
        scenario.requests = Some(n);
    }
    if let Some(seed) = args.seed {
        scenario.seed = seed;
    }
    let bar = progress_bar(args.quiet, scenario.requests);
    let simulation = Simulation::new(scenario).map_err(|e| anyhow::anyhow!("{e}"))?;
    let started = Instant::now();
    let report = simulation.run(&mut |done, _| bar.set_position(done));
    let wall = started.elapsed().as_secs_f64();
    bar.finish_and_clear();
    match args.format {
        Format::Table => {
            print!("{}", report.to_table());
            std::io::Write::flush(&mut std::io::stdout())?;
            eprintln!(
                "{} arrivals in {:.2} s of wall time: {:.0} simulated requests per second",
                report.arrivals,
                wall,
                report.arrivals as f64 / wall.max(1e-9)
            );
        }
        Format::Json => println!("{}", report.to_json()),
        Format::Csv => print!("{}", report.to_csv()),
    }
    if let Some(path) = &args.json {
        std::fs::write(path, report.to_json())
            .with_context(|| format!("cannot write {}", path.display()))?;
    }
    if let Some(path) = &args.csv {
        std::fs::write(path, report.to_csv())
            .with_context(|| format!("cannot write {}", path.display()))?;
    }
    Ok(())
}

fn describe(c: &Candidate) -> String {
    let pools: Vec<String> = c
        .pools
        .iter()
        .map(|p| {
            let window = if p.context_window % 1024 == 0 {
                format!("{}K", p.context_window / 1024)
            } else {
                format!("{:.2}K", f64::from(p.context_window) / 1024.0)
            };
            format!("{} {}×{} ({window})", p.role, p.sizing.instances, p.gpu)
        })
        .collect();
    pools.join(" + ")
}

fn plan(args: PlanArgs) -> Result<()> {
    let spec = load_plan(&args.config).map_err(|e| anyhow::anyhow!("{e}"))?;
    let result = plan::plan(&spec).map_err(|e| anyhow::anyhow!("{e}"))?;
    let best = &result.best;
    let unproven = result.best_verified == Some(false);
    println!(
        "plan{}: B = {}, γ = {}: {}; ${:.2}/h, {:.1} kW, {:.2} tokens/W, predicted P99 TTFT {:.0} ms (SLO {} ms)",
        if unproven {
            " (UNVERIFIED: every simulated candidate missed the SLO)"
        } else {
            ""
        },
        best.boundary,
        best.gamma,
        describe(best),
        best.cost_per_hour,
        best.watts / 1000.0,
        best.tokens_per_watt,
        best.ttft_p99_ms,
        spec.ttft_p99_ms
    );
    println!(
        "\n{:>6} {:>5} {:>9} {:>7} {:>9} {:>7}  pools",
        "B", "γ", "$/h", "kW", "P99 TTFT", "tok/W"
    );
    for c in result.candidates.iter().take(args.top) {
        println!(
            "{:>6} {:>5} {:>9.2} {:>7.1} {:>7.0}ms {:>7.2}  {}",
            c.boundary,
            c.gamma,
            c.cost_per_hour,
            c.watts / 1000.0,
            c.ttft_p99_ms,
            c.tokens_per_watt,
            describe(c)
        );
    }
    println!(
        "({} feasible candidates, searched in {:.1} ms)",
        result.candidates.len(),
        result.search_ms
    );
    if !result.verified.is_empty() {
        let peak = spec.rates.iter().copied().fold(0.0, f64::max);
        println!(
            "\nverified by simulation at {:.1} requests/s{} (requests measured after a warm-up that is not):",
            peak * spec.verify_headroom,
            if spec.verify_headroom > 1.0 {
                format!(", {}× the peak", spec.verify_headroom)
            } else {
                String::new()
            }
        );
        for v in &result.verified {
            println!(
                "  B {:>6}, γ {:<4}: P99 TTFT {:>8.1} ms, SLO attainment {:>5.1}%, {:.2} tokens/W: {} ({} after {})",
                v.boundary,
                v.gamma,
                v.ttft_p99_ms,
                v.slo_attainment * 100.0,
                v.tokens_per_watt,
                if v.meets_slo {
                    "meets the SLO"
                } else {
                    "misses the SLO"
                },
                v.requests,
                v.warmup_requests
            );
        }
    }
    if let Some(d) = &result.disaggregated {
        println!(
            "\ndisaggregated: prefill {}×{} + decode {}×{}: ${:.2}/h, {:.1} kW, P99 TTFT {:.0} ms ({:+.1}% cost against the plan)",
            d.prefill.sizing.instances,
            d.prefill.gpu,
            d.decode.sizing.instances,
            d.decode.gpu,
            d.cost_per_hour,
            d.watts / 1000.0,
            d.ttft_p99_ms,
            (d.cost_per_hour / best.cost_per_hour - 1.0) * 100.0
        );
    }
    if !result.hours.is_empty() {
        println!(
            "\n{:>4} {:>8} {:>6} {:>5} {:>12} {:>8}",
            "hour", "req/s", "B", "γ", "instances", "$/h"
        );
        for h in &result.hours {
            let sizes: Vec<String> = h.instances.iter().map(u32::to_string).collect();
            println!(
                "{:>4} {:>8.0} {:>6} {:>5} {:>12} {:>8.2}",
                h.hour,
                h.rate,
                h.boundary,
                h.gamma,
                sizes.join("+"),
                h.cost_per_hour
            );
        }
        println!(
            "a day: ${:.0} re-planned every hour against ${:.0} for one plan sized for the peak ({:.1}% saved)",
            result.follow_day_cost,
            result.static_day_cost,
            (1.0 - result.follow_day_cost / result.static_day_cost) * 100.0
        );
    }
    if let Some(dir) = &args.plots {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
        let mut files = vec![("pareto.svg", svg::pareto(&result.candidates, best))];
        let named: Vec<(String, &switchyard_fleet::LengthCdf)> = spec
            .mix_names
            .iter()
            .cloned()
            .zip(spec.mix.iter().map(|m| &m.0))
            .collect();
        files.push(("cdfs.svg", svg::cdfs(&named)));
        if !result.hours.is_empty() {
            files.push(("day.svg", svg::day(&result.hours)));
        }
        for (name, text) in files {
            let path = dir.join(name);
            std::fs::write(&path, text)
                .with_context(|| format!("cannot write {}", path.display()))?;
            eprintln!("wrote {}", path.display());
        }
    }
    if let Some(path) = &args.json {
        let text = serde_json::to_string_pretty(&result)?;
        std::fs::write(path, text).with_context(|| format!("cannot write {}", path.display()))?;
    }
    if unproven {
        let why = format!(
            "{}: no verified candidate met the P99 TTFT SLO of {} ms in simulation; the plan above is the analytical best and is unproven",
            args.config.display(),
            spec.ttft_p99_ms
        );
        if args.best_effort {
            eprintln!("warning: {why} (accepted: --best-effort)");
        } else {
            anyhow::bail!(
                "{why}\n  try: more GPUs or a larger `max_utilization` margin, a looser `ttft_p99_ms`, a larger `verify_top`; or --best-effort to accept it"
            );
        }
    }
    Ok(())
}
