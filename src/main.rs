use clap::Parser;
use std::process::ExitCode;

mod cli;

fn main() -> ExitCode {
    let cli = cli::Cli::parse();
    hotline::logs::init(cli.log_format);
    cli::run(cli)
}
