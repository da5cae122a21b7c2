//! The command line: `cargo run -- [OPTIONS]`.
//!
//! Parsing is a pure function of the arguments ([`parse_args`]), so it is
//! tested without a process. Options take their value either as the next
//! argument (`--timeout 60`) or after `=` (`--timeout=60`).
//!
//! Guests: each guest option adds one [`GuestSpec`] to the run's list, in
//! command-line order, through [`add_guest`] (the checks every front end
//! shares). `--guest NAME` adds a built-in payload ([`crate::payloads`]).
//! Without any guest option the run boots [`GuestSpec::defaults`].

use std::ffi::OsString;
use std::fmt;
use std::time::Duration;

use crate::options::{add_guest, EmulatorChoice, GuestListError, GuestSpec, LogLevel, RunOptions};
use crate::payloads;

/// The text `--help` prints.
pub const USAGE: &str = "\
Boots the hypervisor with its guests in an emulator and reports its verdict.

Usage: cargo run -- [OPTIONS]

Options:
  --guest <NAME>         run this built-in guest: hello64, triple_fault or
                           escape_ram; repeat it to run several, one after
                           another in the order given [default: hello64]
  --list-guests          list the built-in guests and what they do, then exit
  --emulator <EMULATOR>  auto (default): QEMU with KVM when the host CPU has VT-x
                           and KVM allows nested virtualization, Bochs otherwise
                         bochs: Bochs, which emulates VT-x on any host (slow)
                         qemu: QEMU with TCG, which has no VT-x (the hypervisor
                           reports that)
                         qemu-kvm: QEMU with KVM and -cpu host
  --uefi                 boot through UEFI (OVMF) instead of the BIOS; QEMU only
  --timeout <SECONDS>    kill the emulator after this long [default: 300]
  --log-level <LEVEL>    the kernel's log level: error, warn, info (default),
                           debug (also shows the bootloader's serial log)
  -h, --help             print this help

Exit status: 0 if the hypervisor printed `hypervisor: verdict PASS`, 1 if it
failed, timed out or could not be started, 2 for a usage error.
Each run's files (emulator configuration, logs, and the disk image when the
run failed) are kept in target/runs/<run>/; the newest 30 runs are kept.";

/// What the command line asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// Boot with these options (`stream` is on).
    Run(RunOptions),
    /// Print [`USAGE`].
    Help,
    /// Print the built-in guests ([`payloads::listing`]).
    ListGuests,
}

/// A command line that cannot be understood.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UsageError {
    /// An option the runner does not know.
    UnknownOption(String),
    /// An option that needs a value came last.
    MissingValue(&'static str),
    /// A flag was given a value (`--uefi=yes`).
    UnexpectedValue(&'static str),
    /// A value that is not one of the option's choices.
    InvalidValue {
        /// The option.
        option: &'static str,
        /// What was given.
        value: String,
        /// What is accepted.
        expected: &'static str,
    },
    /// An argument that is not an option.
    UnexpectedArgument(String),
    /// An argument that is not valid UTF-8.
    NotUnicode(OsString),
    /// `--guest` names no built-in payload.
    UnknownGuest(String),
    /// A guest cannot join the run's guest list.
    Guests(GuestListError),
}

impl fmt::Display for UsageError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            UsageError::UnknownOption(option) => write!(f, "unknown option `{option}`"),
            UsageError::MissingValue(option) => write!(f, "option `{option}` needs a value"),
            UsageError::UnexpectedValue(option) => write!(f, "option `{option}` takes no value"),
            UsageError::InvalidValue { option, value, expected } => {
                write!(f, "invalid value `{value}` for `{option}`: expected {expected}")
            }
            UsageError::UnexpectedArgument(argument) => write!(f, "unexpected argument `{argument}`"),
            UsageError::NotUnicode(argument) => write!(f, "argument {argument:?} is not valid UTF-8"),
            UsageError::UnknownGuest(name) => write!(
                f,
                "unknown guest `{name}` for `--guest`: the built-in guests are {} (see --list-guests)",
                payloads::names_for_message()
            ),
            UsageError::Guests(error) => write!(f, "{error}"),
        }
    }
}

impl std::error::Error for UsageError {}

/// Parses the arguments after the program name.
pub fn parse_args(args: impl IntoIterator<Item = OsString>) -> Result<Command, UsageError> {
    let mut options = RunOptions { stream: true, ..RunOptions::default() };
    // The guests the command line names, in order; empty means the defaults.
    let mut guests: Vec<GuestSpec> = Vec::new();
    let mut list_guests = false;
    let mut args = args.into_iter();
    while let Some(arg) = args.next() {
        let arg = arg.into_string().map_err(UsageError::NotUnicode)?;
        if arg == "-h" || arg == "--help" {
            return Ok(Command::Help);
        }
        if !arg.starts_with('-') || arg == "-" || arg == "--" {
            return Err(UsageError::UnexpectedArgument(arg));
        }
        let (name, inline_value) = match arg.split_once('=') {
            Some((name, value)) => (name, Some(value.to_string())),
            None => (arg.as_str(), None),
        };
        // Takes the option's value: after `=`, or else the next argument.
        let mut value = |option: &'static str| -> Result<String, UsageError> {
            match inline_value.clone() {
                Some(value) => Ok(value),
                None => args
                    .next()
                    .ok_or(UsageError::MissingValue(option))?
                    .into_string()
                    .map_err(UsageError::NotUnicode),
            }
        };
        // A flag refuses a value after `=`.
        let flag = |option: &'static str| match inline_value {
            Some(_) => Err(UsageError::UnexpectedValue(option)),
            None => Ok(()),
        };
        match name {
            "--guest" => {
                let text = value("--guest")?;
                let payload = payloads::find(&text).ok_or_else(|| UsageError::UnknownGuest(text.clone()))?;
                // Built-in names are valid (payloads' unit tests); an invalid one reads as unknown.
                let spec = payload.spec().map_err(|_| UsageError::UnknownGuest(text))?;
                add_guest(&mut guests, spec).map_err(UsageError::Guests)?;
            }
            "--list-guests" => {
                flag("--list-guests")?;
                list_guests = true;
            }
            "--emulator" => {
                let text = value("--emulator")?;
                options.emulator = EmulatorChoice::from_name(&text).ok_or(UsageError::InvalidValue {
                    option: "--emulator",
                    value: text,
                    expected: "auto, bochs, qemu or qemu-kvm",
                })?;
            }
            "--uefi" => {
                flag("--uefi")?;
                options.uefi = true;
            }
            "--timeout" => {
                let text = value("--timeout")?;
                let seconds = text.parse::<u64>().ok().filter(|&s| s > 0).ok_or(UsageError::InvalidValue {
                    option: "--timeout",
                    value: text,
                    expected: "a whole number of seconds, at least 1",
                })?;
                options.timeout = Duration::from_secs(seconds);
            }
            "--log-level" => {
                let text = value("--log-level")?;
                options.log_level = LogLevel::from_name(&text).ok_or(UsageError::InvalidValue {
                    option: "--log-level",
                    value: text,
                    expected: "error, warn, info or debug",
                })?;
            }
            _ => return Err(UsageError::UnknownOption(name.to_string())),
        }
    }
    if list_guests {
        return Ok(Command::ListGuests);
    }
    if !guests.is_empty() {
        options.guests = guests;
    }
    Ok(Command::Run(options))
}

#[cfg(test)]
mod tests {
    use super::*;
    use hypervisor_core::config::ExpectedOutcome;

    fn parse(args: &[&str]) -> Result<Command, UsageError> {
        parse_args(args.iter().map(OsString::from))
    }

    fn run_options(args: &[&str]) -> RunOptions {
        match parse(args) {
            Ok(Command::Run(options)) => options,
            other => panic!("{args:?} gave {other:?}"),
        }
    }

    #[test]
    fn no_arguments_mean_the_defaults_with_streaming() {
        let options = run_options(&[]);
        assert_eq!(options.emulator, EmulatorChoice::Auto);
        assert!(!options.uefi);
        assert_eq!(options.timeout, Duration::from_secs(300));
        assert_eq!(options.log_level, LogLevel::Info);
        assert!(options.stream);
    }

    #[test]
    fn every_option_in_both_spellings() {
        let spaced = run_options(&["--emulator", "qemu", "--uefi", "--timeout", "60", "--log-level", "debug"]);
        let joined = run_options(&["--emulator=qemu", "--uefi", "--timeout=60", "--log-level=debug"]);
        assert_eq!(spaced, joined);
        assert_eq!(spaced.emulator, EmulatorChoice::Qemu);
        assert!(spaced.uefi);
        assert_eq!(spaced.timeout, Duration::from_secs(60));
        assert_eq!(spaced.log_level, LogLevel::Debug);
    }

    #[test]
    fn emulator_choices() {
        for (name, choice) in EmulatorChoice::ALL {
            assert_eq!(run_options(&["--emulator", name]).emulator, choice);
        }
    }

    #[test]
    fn help_wins() {
        assert_eq!(parse(&["--help"]), Ok(Command::Help));
        assert_eq!(parse(&["--timeout", "5", "-h"]), Ok(Command::Help));
    }

    #[test]
    fn usage_errors() {
        assert_eq!(parse(&["--frobnicate"]), Err(UsageError::UnknownOption("--frobnicate".into())));
        assert_eq!(parse(&["-x"]), Err(UsageError::UnknownOption("-x".into())));
        assert_eq!(parse(&["--timeout"]), Err(UsageError::MissingValue("--timeout")));
        assert_eq!(parse(&["--uefi=yes"]), Err(UsageError::UnexpectedValue("--uefi")));
        assert_eq!(parse(&["bochs"]), Err(UsageError::UnexpectedArgument("bochs".into())));
        assert!(matches!(parse(&["--emulator", "vmware"]), Err(UsageError::InvalidValue { option: "--emulator", .. })));
        assert!(matches!(parse(&["--timeout", "0"]), Err(UsageError::InvalidValue { option: "--timeout", .. })));
        assert!(matches!(parse(&["--timeout", "-5"]), Err(UsageError::InvalidValue { option: "--timeout", .. })));
        assert!(matches!(parse(&["--log-level", "trace"]), Err(UsageError::InvalidValue { option: "--log-level", .. })));
    }

    fn guest_names(options: &RunOptions) -> Vec<&str> {
        options.guests.iter().map(|guest| guest.config.name.as_str()).collect()
    }

    #[test]
    fn without_guest_options_the_run_boots_hello64() {
        let options = run_options(&["--timeout", "9"]);
        assert_eq!(guest_names(&options), ["hello64"]);
        assert_eq!(options.guests, GuestSpec::defaults());
    }

    #[test]
    fn guests_are_added_in_command_line_order() {
        let options =
            run_options(&["--guest", "triple_fault", "--timeout", "9", "--guest=hello64", "--guest", "escape_ram"]);
        assert_eq!(guest_names(&options), ["triple_fault", "hello64", "escape_ram"]);
        let triple_fault = payloads::find("triple_fault").expect("a built-in payload");
        assert_eq!(options.guests[0].image, triple_fault.image_path());
        assert_eq!(options.guests[0].config.expected, ExpectedOutcome::Crash);
        assert_eq!(options.guests[1].config.expected, ExpectedOutcome::Exit(0));
        assert_eq!(options.guests[2].config.expected, ExpectedOutcome::Crash);
    }

    #[test]
    fn a_single_guest_replaces_the_default() {
        assert_eq!(guest_names(&run_options(&["--guest", "escape_ram"])), ["escape_ram"]);
        assert_eq!(guest_names(&run_options(&["--guest", "hello64"])), ["hello64"]);
    }

    #[test]
    fn guest_errors() {
        assert_eq!(parse(&["--guest", "hello"]), Err(UsageError::UnknownGuest("hello".into())));
        assert_eq!(parse(&["--guest="]), Err(UsageError::UnknownGuest(String::new())));
        assert_eq!(parse(&["--guest"]), Err(UsageError::MissingValue("--guest")));
        assert!(matches!(
            parse(&["--guest", "hello64", "--guest", "hello64"]),
            Err(UsageError::Guests(GuestListError::DuplicateName(name))) if name.as_str() == "hello64"
        ));
        assert_eq!(parse(&["--list-guests=all"]), Err(UsageError::UnexpectedValue("--list-guests")));
    }

    #[test]
    fn an_unknown_guest_error_lists_the_built_ins() {
        let message = UsageError::UnknownGuest("hello".into()).to_string();
        assert_eq!(
            message,
            "unknown guest `hello` for `--guest`: the built-in guests are `hello64`, `triple_fault` or `escape_ram` (see --list-guests)"
        );
    }

    #[test]
    fn list_guests() {
        assert_eq!(parse(&["--list-guests"]), Ok(Command::ListGuests));
        assert_eq!(parse(&["--guest", "hello64", "--list-guests"]), Ok(Command::ListGuests));
        assert_eq!(parse(&["--list-guests", "--help"]), Ok(Command::Help));
        assert_eq!(parse(&["--list-guests", "--guest", "nope"]), Err(UsageError::UnknownGuest("nope".into())));
    }

    #[test]
    fn the_help_names_every_built_in_guest_and_option() {
        for payload in &payloads::BUILT_IN {
            assert!(USAGE.contains(payload.name), "--help does not name {}", payload.name);
        }
        let options = ["--guest <NAME>", "--list-guests", "--emulator", "--uefi", "--timeout", "--log-level", "--help"];
        for option in options {
            assert!(USAGE.contains(option), "--help does not describe {option}");
        }
    }

    #[test]
    fn errors_read_well() {
        let error = UsageError::InvalidValue { option: "--emulator", value: "vmware".into(), expected: "auto, bochs, qemu or qemu-kvm" };
        assert_eq!(error.to_string(), "invalid value `vmware` for `--emulator`: expected auto, bochs, qemu or qemu-kvm");
    }
}
