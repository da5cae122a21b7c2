//! `cargo run -- [OPTIONS]`: boot the hypervisor and exit with its verdict.
//!
//! Everything happens in the `boot` library; this file only maps the command
//! line to [`boot::run`] and the outcome to an exit status: 0 = the hypervisor
//! printed its PASS verdict; 1 = it failed, timed out, or the emulator could
//! not be started; 2 = the runner refused its input before booting anything
//! (a usage error, a bad configuration file, a guest that cannot run: see
//! [`RunError::is_refusal`]).
#![warn(missing_docs)]

use std::process::ExitCode;

use boot::cli::{self, Command};
use boot::prerequisites::{self, InstallOutcome};
use boot::{RunError, RunOptions};

/// Exit status for a failed, timed-out or unstartable run.
const EXIT_FAILURE: u8 = 1;
/// Exit status for input the runner refuses: a command line or configuration
/// file it cannot parse, or guests that cannot run.
const EXIT_USAGE: u8 = 2;

fn main() -> ExitCode {
    let options = match cli::parse_args(std::env::args_os().skip(1)) {
        Ok(Command::Run(options)) => options,
        Ok(Command::Help) => {
            println!("{}", cli::USAGE);
            return ExitCode::SUCCESS;
        }
        Ok(Command::ListGuests) => {
            println!("{}", boot::payloads::listing());
            return ExitCode::SUCCESS;
        }
        Ok(Command::Bench(options)) => return boot::bench::run_and_report(options),
        Ok(Command::ListEntryRules) => {
            print!("{}", cli::entry_rules_listing());
            return ExitCode::SUCCESS;
        }
        Err(error @ cli::UsageError::Config(_)) => {
            eprintln!("runner: error: {error}");
            return ExitCode::from(EXIT_USAGE);
        }
        Err(error) => {
            eprintln!("runner: error: {error}\n\n{}", cli::USAGE);
            return ExitCode::from(EXIT_USAGE);
        }
    };
    run_and_report(&options, true)
}

/// Runs once; on missing prerequisites, offers to install them (only when a
/// person can answer) and, if that worked, runs again (without another offer).
fn run_and_report(options: &RunOptions, may_offer_install: bool) -> ExitCode {
    match boot::run(options) {
        Ok(outcome) if outcome.passed() => {
            eprintln!("runner: {}", outcome.summary());
            ExitCode::SUCCESS
        }
        Ok(outcome) => {
            eprintln!("runner: {}", outcome.failure_report());
            ExitCode::from(EXIT_FAILURE)
        }
        Err(RunError::MissingPrerequisites(missing)) => {
            eprintln!("runner: {missing}");
            if !may_offer_install {
                return ExitCode::from(EXIT_FAILURE);
            }
            match prerequisites::offer_install(&missing) {
                Ok(InstallOutcome::Installed) => run_and_report(options, false),
                Ok(InstallOutcome::NotAsked) => {
                    eprintln!("runner: not installing without a terminal to ask; run the command above");
                    ExitCode::from(EXIT_FAILURE)
                }
                Ok(InstallOutcome::Declined | InstallOutcome::Failed) => ExitCode::from(EXIT_FAILURE),
                Err(error) => {
                    eprintln!("runner: error: cannot ask about installing: {error}");
                    ExitCode::from(EXIT_FAILURE)
                }
            }
        }
        Err(error) if error.is_refusal() => {
            eprintln!("runner: error: {error}");
            ExitCode::from(EXIT_USAGE)
        }
        Err(error) => {
            eprintln!("runner: error: {error}");
            ExitCode::from(EXIT_FAILURE)
        }
    }
}
