use anyhow::Result;
#[derive(clap::Subcommand)]
pub enum BenchCommand {
    Overhead,
}
pub async fn run(_c: BenchCommand) -> Result<()> {
    Ok(())
}
