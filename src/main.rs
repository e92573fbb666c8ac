//! mqscope: no subcommand opens the window; `sub` / `pub` / `rr` run headless.

use clap::Parser as _;
use mqscope::cli::{Cli, CliCommand, run_pub, run_sub};

fn main() {
    let cli = Cli::parse();
    let code = match cli.command {
        None => match mqscope::app::run() {
            Ok(()) => 0,
            Err(e) => {
                eprintln!("mqscope: cannot open the window: {e}");
                1
            }
        },
        Some(CliCommand::Sub(args)) => run_sub(args),
        Some(CliCommand::Pub(args)) => run_pub(args),
        Some(CliCommand::Rr(args)) => mqscope::rr::run_rr(args),
        Some(CliCommand::Sandbox(args)) => mqscope::sandbox::run_sandbox(args),
        Some(CliCommand::Read(args)) => mqscope::capture::cli::run_read(args),
        Some(CliCommand::Export(args)) => mqscope::capture::cli::run_export(args),
        Some(CliCommand::Import(args)) => mqscope::profile::import::run_import(args),
        Some(CliCommand::Record(args)) => mqscope::capture::live_cli::run_record(args),
        Some(CliCommand::Replay(args)) => mqscope::capture::live_cli::run_replay(args),
    };
    std::process::exit(code);
}
