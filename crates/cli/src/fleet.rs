//! `switchyard fleet …`: the fleet simulator and planner on the command line.

use anyhow::{Context, Result};
use indicatif::{ProgressBar, ProgressStyle};
use std::path::PathBuf;
use std::time::Instant;
use switchyard_fleet::sim::{Simulation, load_scenario};

#[derive(clap::Subcommand)]
pub enum FleetCommand {
    /// Simulate a fleet serving a workload and report latency, utilization, cost,
    /// energy and SLO attainment per pool.
    Simulate(SimulateArgs),
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
