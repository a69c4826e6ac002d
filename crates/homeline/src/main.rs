//! # homeline: the gateway binary
//!
//! Owns the command line, loading and validating the configuration, wiring the tasks, signals
//! and graceful drain. It must not contain protocol logic: SIP, media, routing and the HTTP
//! API live in their own crates and are only started from here.
//!
//! Exit codes: `0` success, `1` a runtime failure, `2` an invalid configuration (or command
//! line).

mod calls;
mod features;
mod logging;
mod run;

use clap::{Parser, Subcommand};
use homeline_config::ConfigErrors;
use std::path::PathBuf;
use std::process::ExitCode;

/// homeline: SIP/WebRTC gateway between a PBX and home call-centre operators.
#[derive(Debug, Parser)]
#[command(name = "homeline", version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Load and validate the configuration, then start homeline.
    ///
    /// Nothing starts when the configuration has an error: every problem is printed as
    /// `file:line: key: problem` and homeline exits with status 2.
    Run {
        /// The configuration file.
        #[arg(
            long,
            short,
            value_name = "PATH",
            default_value = "config/homeline.toml"
        )]
        config: PathBuf,
    },
    /// Validate a configuration file and list every problem in it.
    ///
    /// Prints `PATH: ok` and exits 0 when the file is valid (warnings go to stderr as
    /// `file:line: key: warning: ...`); otherwise prints every problem to stderr as
    /// `file:line: key: problem` and exits 2.
    CheckConfig {
        /// The configuration file.
        #[arg(value_name = "PATH")]
        path: PathBuf,
    },
}

/// Exit status for an invalid configuration.
const EXIT_CONFIG: u8 = 2;

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::CheckConfig { path } => check_config(&path),
        Command::Run { config } => match run::run(&config) {
            Ok(code) => code,
            Err(e) => {
                eprintln!("homeline: error: {e:#}");
                ExitCode::FAILURE
            }
        },
    }
}

fn check_config(path: &std::path::Path) -> ExitCode {
    match homeline_config::load(path) {
        Ok(loaded) => {
            for w in &loaded.warnings {
                eprintln!("{w}");
            }
            println!("{}: ok", path.display());
            ExitCode::SUCCESS
        }
        Err(errors) => report_invalid(&errors),
    }
}

/// Prints every diagnostic of a rejected configuration; the exit status to use.
pub(crate) fn report_invalid(errors: &ConfigErrors) -> ExitCode {
    for d in &errors.0 {
        eprintln!("{d}");
    }
    let n = errors.errors().count();
    eprintln!(
        "homeline: {n} error{} in the configuration",
        if n == 1 { "" } else { "s" }
    );
    ExitCode::from(EXIT_CONFIG)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_is_well_formed() {
        Cli::command().debug_assert();
    }
}
