//! The command line: `cargo run -- [OPTIONS]`.
//!
//! Parsing is a pure function of the arguments ([`parse_args`]; it reads the
//! files `--config` names), so it is tested without a process. Options take
//! their value either as the next argument (`--timeout 60`) or after `=`
//! (`--timeout=60`).
//!
//! # Guests
//!
//! Four options add guests to the run, in command-line order, and may be
//! repeated and mixed:
//!
//! - `--guest NAME` adds a built-in payload ([`crate::payloads`]);
//! - `--guest-file PATH` adds an image file; it needs `--mode`;
//! - `--config FILE` adds the guests of a configuration file
//!   ([`crate::config_file`]);
//! - `--demo NAME` adds a ready-made set of guests ([`Demo`]).
//!
//! The *guest settings* `--mode`, `--name`, `--ram` and `--expect` apply to
//! the guest added by the closest `--guest` or `--guest-file` before them
//! (other options may come in between), each at most once per guest; guests
//! of a configuration file take their settings from the file. A guest is
//! complete when the next guest option or the end of the command line comes;
//! then it joins the list through [`add_guest`] (unique names, at most `MAX_GUESTS` = 250
//! guests). A file's guest is named after the file's stem, made a valid name
//! ([`name_from_path`]), unless `--name` names it.
//!
//! Without any guest option the run boots [`GuestSpec::defaults`].

use std::ffi::OsString;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use hypervisor_core::blob::{StepSelection, TraceSelection};
use hypervisor_core::config::{ExpectedOutcome, GuestConfig, GuestName, NameError, StartMode, MAX_NAME_LEN};

use crate::config_file::{self, ConfigFileError, EntryProblem};
use crate::machine_memory::{MAX_MACHINE_MEMORY_MIB, MIN_MACHINE_MEMORY_MIB};
use crate::options::{add_guest, Demo, EmulatorChoice, GuestListError, GuestSpec, LogLevel, RunOptions};
use crate::payloads::{self, BuiltInPayload};
use crate::size::parse_size;

/// The text `--help` prints.
pub const USAGE: &str = "\
Boots the hypervisor with its guests in an emulator and reports its verdict.

Usage: cargo run -- [OPTIONS]

Guests (repeatable and combinable; they run side by side, taking turns on the
CPU in the order given; without any of these: every built-in guest, see
--list-guests):
  --guest <NAME>         a built-in guest: hello64, hypercall, protected32,
                           realmode16, cpuid_msr, control_regs, exceptions,
                           memtest, leftovers, escape_ram, triple_fault,
                           timer_pic, timer_apic (the default run),
                           timer_pic_1khz, or one of the isolation guests:
                           neighbour and the hostile ones (see --demo), or of the
                           benchmark guests: bench, bench_yield, bench_idle
                           (see --bench)
  --guest-file <PATH>    an image file of your own; needs --mode
  --config <FILE>        the guests of a TOML file (see guests.example.toml)
  --demo <DEMO>          a ready-made set of guests:
                           isolation: the hostile guests hostile_memory,
                             hostile_ports, hostile_msrs, hostile_instructions,
                             hostile_cpu, hostile_crash, hostile_hypercalls and
                             fuzz (random ports, MSRs, CPUID, hypercalls)
                             between two well-behaved neighbours (neighbour-1,
                             neighbour-2) that check their RAM's checksum
                           scale: 64 neighbours of 2 MiB (scale-1 ... scale-64)
                             at once, each checking its RAM's checksum
  --list-guests          list the built-in guests and what they do, then exit
  --bench                run the benchmarks instead of guests: VM exit round
                           trips, interrupt latency, guest switches, a
                           workload in a guest and natively, start-up time and
                           memory per guest; prints a table and writes
                           target/bench/latest.json (see README, Benchmarks)

Settings of the guest added by the closest --guest or --guest-file before them:
  --mode <MODE>          how it starts (required for --guest-file):
                           real: 16-bit, a flat image loaded and started at
                             0x7C00; it must end below 0xA0000
                           protected: 32-bit, paging off, a flat image loaded
                             and started at 0x100000
                           long: 64-bit, a static x86-64 ELF executable
                           (an ELF given for real or protected mode is
                           flattened: linked at that address, entry first)
  --name <NAME>          its name, the prefix of its output lines: 1-32
                           printable ASCII bytes, no spaces or brackets
                           [default: the built-in's name; for a file its stem,
                           other characters made `_`, `-2`, `-3`... if taken]
  --ram <SIZE>           its RAM: bytes or a number with K, M or G; rounded up
                           to 2 MiB [default: 2M]
  --expect <OUTCOME>     how it must end: exit:N (N decimal or 0x hex), crash,
                           or over-budget (stopped at its CPU-time budget)
                           [default: the built-in's; exit:0 for a file]

Machine and run:
  --machine-memory <MIB> the emulated machine's memory, 64 to 2048 [default:
                           256]; the guests' RAM, summed, may be at most this
                           less 30 MiB (BIOS) or 50 MiB (UEFI)
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
  --caps                 print the capability explorer: every VT-x capability
                           MSR of the (emulated) CPU, decoded bit by bit (see
                           docs/capabilities.md); the guests are not run
  --trace [GUEST]        print one line per VM exit (reason, decoded details,
                           instruction bytes, what the hypervisor did) for
                           every guest, or only the one named GUEST
  --step <GUEST>         single-step the guest named GUEST with the monitor
                           trap flag, or RFLAGS.TF and #DB exits where MTF
                           exits do not come (Bochs 2.7): one line per
                           instruction (address, instruction bytes,
                           registers it changed); see docs/single-step.md
  --break-entry <RULE>   make the first guest's VMCS break the VM-entry rule
                           RULE (an id or name from --list-entry-rules), print
                           the software checker's diagnosis, then launch
                           anyway to show the CPU's answer; see
                           docs/entry-checks.md
  --list-entry-rules     list the software VM-entry checks, then exit
  --bochs-cpu <MODEL>    Bochs' CPU model, e.g. corei7_skylake_x or tigerlake
                           [default: corei7_icelake_u]
  -h, --help             print this help

Exit status: 0 if the hypervisor printed `hypervisor: verdict PASS` (every
guest ended as expected); 1 if it failed, timed out or the emulator could not
be started; 2 if the runner refused its input before booting anything: a usage
error, a bad configuration file, a guest image that cannot run in its mode, or
guests needing more memory than the machine has.
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
    /// Print the software VM-entry rules ([`entry_rules_listing`]).
    ListEntryRules,
    /// `--bench`: run the benchmarks ([`crate::bench`]) with these options
    /// (emulator, timeout, log level, Bochs CPU model); the benchmark
    /// chooses its own guests and machine memory.
    Bench(RunOptions),
}

/// `--list-entry-rules`: one line per rule of
/// `hypervisor_core::entry_check`, `*` marking those `--break-entry` can break.
pub fn entry_rules_listing() -> String {
    use hypervisor_core::entry_check::EntryRule;
    let mut text = String::from("VM-entry rules the software checker knows (* = --break-entry can break it):\n");
    for rule in EntryRule::ALL {
        let mark = if rule.breakable() { '*' } else { ' ' };
        text.push_str(&format!("{mark}{:>3}  {:<32} {}\n", rule.id(), rule.name(), rule));
    }
    text
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
    /// `--name` with a name the kernel cannot use.
    BadName {
        /// What was given.
        value: String,
        /// Why it is refused.
        error: NameError,
    },
    /// An argument that is not an option.
    UnexpectedArgument(String),
    /// An argument that is not valid UTF-8.
    NotUnicode(OsString),
    /// `--guest` names no built-in payload.
    UnknownGuest(String),
    /// A guest setting (`--mode`, `--name`, `--ram`, `--expect`) with no
    /// `--guest` or `--guest-file` before it to apply to.
    SettingWithoutGuest(&'static str),
    /// A guest setting given twice for the same guest.
    RepeatedSetting {
        /// The option.
        option: &'static str,
        /// The option that added the guest, e.g. `--guest-file boot.bin`.
        guest: String,
    },
    /// `--guest-file` without `--mode`.
    MissingMode(PathBuf),
    /// A configuration file that cannot be used.
    Config(ConfigFileError),
    /// A guest cannot join the run's guest list.
    Guests(GuestListError),
    /// `--trace GUEST` names no guest of the run.
    UnknownTraceGuest(String),
    /// `--step GUEST` names no guest of the run.
    UnknownStepGuest(String),
    /// `--bench` with guest options: the benchmark runs guests of its own.
    BenchWithGuests,
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
            UsageError::BadName { value, error } => write!(f, "invalid value `{value}` for `--name`: {error}"),
            UsageError::UnexpectedArgument(argument) => write!(f, "unexpected argument `{argument}`"),
            UsageError::NotUnicode(argument) => write!(f, "argument {argument:?} is not valid UTF-8"),
            UsageError::UnknownGuest(name) => write!(
                f,
                "unknown guest `{name}` for `--guest`: the built-in guests are {} (see --list-guests)",
                payloads::names_for_message()
            ),
            UsageError::BenchWithGuests => f.write_str(
                "--bench runs its own guests (bench, bench_yield, bench_idle): leave out --guest, --guest-file, \
                 --config and --demo",
            ),
            UsageError::SettingWithoutGuest(option) => write!(
                f,
                "`{option}` sets the guest of the closest --guest or --guest-file before it, and there is none \
                 (guests of --config take their settings from the file)"
            ),
            UsageError::RepeatedSetting { option, guest } => write!(f, "`{option}` given twice for `{guest}`"),
            UsageError::MissingMode(path) => write!(
                f,
                "`--guest-file {}` needs `--mode real|protected|long`: an image does not say how it starts",
                path.display()
            ),
            UsageError::Config(error) => write!(f, "{error}"),
            UsageError::Guests(error) => write!(f, "{error}"),
            UsageError::UnknownTraceGuest(name) => {
                write!(f, "`--trace {name}`: the run has no guest named `{name}`")
            }
            UsageError::UnknownStepGuest(name) => {
                write!(f, "`--step {name}`: the run has no guest named `{name}`")
            }
        }
    }
}

impl std::error::Error for UsageError {}

/// A guest named by `--guest` or `--guest-file`, waiting for its settings.
struct PendingGuest {
    /// The option that added it, for messages: `--guest hello64`.
    origin: String,
    /// The built-in payload, or `None` for a file.
    built_in: Option<&'static BuiltInPayload>,
    /// Its image.
    image: PathBuf,
    mode: Option<StartMode>,
    name: Option<GuestName>,
    ram: Option<u64>,
    expected: Option<ExpectedOutcome>,
}

impl PendingGuest {
    fn new(origin: String, built_in: Option<&'static BuiltInPayload>, image: PathBuf) -> Self {
        PendingGuest { origin, built_in, image, mode: None, name: None, ram: None, expected: None }
    }

    /// Stores one setting, refusing a second of the same kind.
    fn set<T>(origin: &str, slot: &mut Option<T>, option: &'static str, value: T) -> Result<(), UsageError> {
        if slot.is_some() {
            return Err(UsageError::RepeatedSetting { option, guest: origin.to_string() });
        }
        *slot = Some(value);
        Ok(())
    }

    /// The complete guest, added to `guests`.
    fn finish(self, guests: &mut Vec<GuestSpec>) -> Result<(), UsageError> {
        let mut config = match self.built_in {
            Some(payload) => {
                // Built-in names are valid (payloads' unit tests); an invalid one reads as unknown.
                let name = match self.name {
                    Some(name) => name,
                    None => GuestName::new(payload.name).map_err(|_| UsageError::UnknownGuest(payload.name.into()))?,
                };
                payload.default_config(name)
            }
            None => {
                let mode = self.mode.ok_or_else(|| UsageError::MissingMode(self.image.clone()))?;
                let name = self.name.unwrap_or_else(|| name_from_path(&self.image, guests));
                let mut config = GuestConfig::new(name);
                config.start_mode = mode;
                config
            }
        };
        if let Some(mode) = self.mode {
            config.start_mode = mode;
        }
        if let Some(bytes) = self.ram {
            config.set_ram_bytes(bytes);
        }
        if let Some(expected) = self.expected {
            config.expected = expected;
        }
        add_guest(guests, GuestSpec { config, image: self.image }).map_err(UsageError::Guests)
    }
}

/// The name of a guest whose image is at `path`, when none is given: the
/// file's stem with every character a name cannot have made `_`, cut to 32 bytes
/// (`guest` if nothing is left); if a guest of `taken` has it already, `-2`,
/// `-3`, ... is added.
pub fn name_from_path(path: &Path, taken: &[GuestSpec]) -> GuestName {
    let stem = path.file_stem().map(|stem| stem.to_string_lossy().into_owned()).unwrap_or_default();
    let mut base: String =
        stem.chars().map(|c| if c.is_ascii() && GuestName::is_allowed(c as u8) { c } else { '_' }).collect();
    base.truncate(MAX_NAME_LEN);
    if base.is_empty() {
        base = "guest".to_string();
    }
    let is_taken = |name: &GuestName| taken.iter().any(|guest| guest.config.name == *name);
    // Candidates are all distinct, valid names (allowed bytes, 1 to 32 of them),
    // and `taken` is finite: the loop ends.
    let mut number: u64 = 1;
    loop {
        let candidate = if number == 1 {
            base.clone()
        } else {
            let suffix = format!("-{number}");
            let mut cut = base.clone();
            cut.truncate(MAX_NAME_LEN.saturating_sub(suffix.len()));
            cut + &suffix
        };
        if let Ok(name) = GuestName::new(&candidate) {
            if !is_taken(&name) {
                return name;
            }
        }
        number += 1;
    }
}

/// The guest a setting (`option`) applies to: the pending one.
fn pending_guest<'a>(
    pending: &'a mut Option<PendingGuest>,
    option: &'static str,
) -> Result<&'a mut PendingGuest, UsageError> {
    pending.as_mut().ok_or(UsageError::SettingWithoutGuest(option))
}

/// Parses the arguments after the program name.
pub fn parse_args(args: impl IntoIterator<Item = OsString>) -> Result<Command, UsageError> {
    let mut options = RunOptions { stream: true, ..RunOptions::default() };
    // The guests the command line names, in order; empty means the defaults.
    let mut guests: Vec<GuestSpec> = Vec::new();
    // The guest of the last --guest or --guest-file, until the next guest option.
    let mut pending: Option<PendingGuest> = None;
    let mut list_guests = false;
    let mut list_entry_rules = false;
    let mut bench = false;
    // `--trace`'s guest name is optional: peeking tells a name from the next option.
    let mut trace: Option<TraceRequest> = None;
    // `--step`'s guest name, resolved once the guest list is complete.
    let mut step: Option<String> = None;
    let mut args = args.into_iter().peekable();
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
                None => {
                    args.next().ok_or(UsageError::MissingValue(option))?.into_string().map_err(UsageError::NotUnicode)
                }
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
                if let Some(previous) = pending.take() {
                    previous.finish(&mut guests)?;
                }
                let origin = format!("--guest {text}");
                pending = Some(PendingGuest::new(origin, Some(payload), payload.image_path().to_path_buf()));
            }
            "--guest-file" => {
                let path = PathBuf::from(value("--guest-file")?);
                if let Some(previous) = pending.take() {
                    previous.finish(&mut guests)?;
                }
                pending = Some(PendingGuest::new(format!("--guest-file {}", path.display()), None, path));
            }
            "--config" => {
                let path = PathBuf::from(value("--config")?);
                if let Some(previous) = pending.take() {
                    previous.finish(&mut guests)?;
                }
                for entry in config_file::read_config(&path).map_err(UsageError::Config)? {
                    let name = entry.spec.config.name;
                    add_guest(&mut guests, entry.spec).map_err(|error| {
                        UsageError::Config(ConfigFileError::Guest {
                            path: path.clone(),
                            line: entry.line,
                            name,
                            problem: EntryProblem::List(error),
                        })
                    })?;
                }
            }
            "--demo" => {
                let text = value("--demo")?;
                let demo = Demo::from_name(&text).ok_or(UsageError::InvalidValue {
                    option: "--demo",
                    value: text,
                    expected: "isolation",
                })?;
                if let Some(previous) = pending.take() {
                    previous.finish(&mut guests)?;
                }
                for spec in demo.guests() {
                    add_guest(&mut guests, spec).map_err(UsageError::Guests)?;
                }
            }
            "--mode" => {
                let text = value("--mode")?;
                let mode = text.parse::<StartMode>().map_err(|_| UsageError::InvalidValue {
                    option: "--mode",
                    value: text,
                    expected: "real, protected or long",
                })?;
                let guest = pending_guest(&mut pending, "--mode")?;
                PendingGuest::set(&guest.origin, &mut guest.mode, "--mode", mode)?;
            }
            "--name" => {
                let text = value("--name")?;
                let guest_name =
                    GuestName::new(&text).map_err(|error| UsageError::BadName { value: text.clone(), error })?;
                let guest = pending_guest(&mut pending, "--name")?;
                PendingGuest::set(&guest.origin, &mut guest.name, "--name", guest_name)?;
            }
            "--ram" => {
                let text = value("--ram")?;
                let bytes = parse_size(&text).map_err(|_| UsageError::InvalidValue {
                    option: "--ram",
                    value: text,
                    expected: "a size: a number of bytes, or a number with K, M or G (e.g. 4M), at least 1",
                })?;
                let guest = pending_guest(&mut pending, "--ram")?;
                PendingGuest::set(&guest.origin, &mut guest.ram, "--ram", bytes)?;
            }
            "--expect" => {
                let text = value("--expect")?;
                let expected = text.parse::<ExpectedOutcome>().map_err(|_| UsageError::InvalidValue {
                    option: "--expect",
                    value: text,
                    expected: "exit:N (N decimal or 0x hex, below 2^32), crash or over-budget",
                })?;
                let guest = pending_guest(&mut pending, "--expect")?;
                PendingGuest::set(&guest.origin, &mut guest.expected, "--expect", expected)?;
            }
            "--list-guests" => {
                flag("--list-guests")?;
                list_guests = true;
            }
            "--machine-memory" => {
                let text = value("--machine-memory")?;
                options.machine_memory_mib = text
                    .parse::<u32>()
                    .ok()
                    .filter(|mib| (MIN_MACHINE_MEMORY_MIB..=MAX_MACHINE_MEMORY_MIB).contains(mib))
                    .ok_or(UsageError::InvalidValue {
                        option: "--machine-memory",
                        value: text,
                        expected: "a whole number of MiB from 64 to 2048",
                    })?;
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
            "--caps" => {
                flag("--caps")?;
                options.caps_report = true;
            }
            "--trace" => {
                // `--trace=NAME`, `--trace NAME`, or `--trace` alone (before
                // another option or at the end): every guest.
                let named = match inline_value {
                    Some(name) => Some(name),
                    None => match args.next_if(|next| !next.to_string_lossy().starts_with('-')) {
                        Some(next) => Some(next.into_string().map_err(UsageError::NotUnicode)?),
                        None => None,
                    },
                };
                trace = Some(match named {
                    Some(name) => TraceRequest::Guest(name),
                    None => TraceRequest::All,
                });
            }
            "--step" => step = Some(value("--step")?),
            "--break-entry" => {
                let text = value("--break-entry")?;
                let rule = hypervisor_core::entry_check::EntryRule::parse(&text);
                options.break_entry = match rule {
                    Some(rule) if rule.breakable() => rule.id(),
                    _ => {
                        return Err(UsageError::InvalidValue {
                            option: "--break-entry",
                            value: text,
                            expected: "a rule id or name marked * in --list-entry-rules",
                        })
                    }
                };
            }
            "--bench" => {
                flag("--bench")?;
                bench = true;
            }
            "--list-entry-rules" => {
                flag("--list-entry-rules")?;
                list_entry_rules = true;
            }
            "--bochs-cpu" => {
                let text = value("--bochs-cpu")?;
                // The name goes into the bochsrc: no spaces, commas or newlines.
                let plain = |c: char| c.is_ascii_alphanumeric() || c == '_';
                if text.is_empty() || !text.chars().all(plain) {
                    return Err(UsageError::InvalidValue {
                        option: "--bochs-cpu",
                        value: text,
                        expected: "a Bochs CPU model name (letters, digits and `_`), e.g. tigerlake",
                    });
                }
                options.bochs_cpu_model = text;
            }
            _ => return Err(UsageError::UnknownOption(name.to_string())),
        }
    }
    if let Some(last) = pending.take() {
        last.finish(&mut guests)?;
    }
    if list_guests {
        return Ok(Command::ListGuests);
    }
    if list_entry_rules {
        return Ok(Command::ListEntryRules);
    }
    if bench {
        return if guests.is_empty() { Ok(Command::Bench(options)) } else { Err(UsageError::BenchWithGuests) };
    }
    if !guests.is_empty() {
        options.guests = guests;
    }
    options.trace = match trace {
        None => TraceSelection::None,
        Some(TraceRequest::All) => TraceSelection::All,
        Some(TraceRequest::Guest(name)) => {
            // At most MAX_GUESTS guests (`add_guest`), so the index fits the blob's byte.
            let index = options.guests.iter().position(|guest| guest.config.name.as_str() == name);
            match index.and_then(|index| u8::try_from(index).ok()) {
                Some(index) => TraceSelection::Guest(index),
                None => return Err(UsageError::UnknownTraceGuest(name)),
            }
        }
    };
    if let Some(name) = step {
        let index = options.guests.iter().position(|guest| guest.config.name.as_str() == name);
        options.step = match index.and_then(|index| u8::try_from(index).ok()) {
            Some(index) => StepSelection::Guest(index),
            None => return Err(UsageError::UnknownStepGuest(name)),
        };
    }
    Ok(Command::Run(options))
}

/// `--trace` as given: the guest's name is resolved once the guest list is complete.
enum TraceRequest {
    All,
    Guest(String),
}

#[cfg(test)]
mod tests {
    use super::*;

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
    fn bench_is_a_command_of_its_own_without_guests() {
        let Ok(Command::Bench(options)) = parse(&["--bench", "--emulator", "bochs", "--timeout", "120"]) else {
            panic!("--bench is not the bench command")
        };
        assert_eq!(options.emulator, EmulatorChoice::Bochs);
        assert_eq!(options.timeout, Duration::from_secs(120));
        assert!(options.stream);
        assert_eq!(parse(&["--bench", "--guest", "hello64"]), Err(UsageError::BenchWithGuests));
        assert_eq!(parse(&["--demo", "isolation", "--bench"]), Err(UsageError::BenchWithGuests));
        assert_eq!(parse(&["--bench=yes"]), Err(UsageError::UnexpectedValue("--bench")));
        assert!(UsageError::BenchWithGuests.to_string().contains("--bench"));
        assert!(USAGE.contains("--bench"));
    }

    #[test]
    fn demo_isolation_adds_its_guests_in_place() {
        let names = |args: &[&str]| -> Vec<String> {
            run_options(args).guests.iter().map(|g| g.config.name.as_str().to_string()).collect()
        };
        let demo: Vec<String> = payloads::isolation_demo_specs().iter().map(|g| g.config.name.to_string()).collect();
        assert_eq!(names(&["--demo", "isolation"]), demo);
        assert_eq!(names(&["--demo=isolation"]), demo);
        assert_eq!(demo.first().map(String::as_str), Some("neighbour-1"));
        assert_eq!(demo.last().map(String::as_str), Some("neighbour-2"));
        // Before and after other guests, like --config.
        let mixed = names(&["--guest", "hello64", "--demo", "isolation"]);
        assert_eq!(mixed.first().map(String::as_str), Some("hello64"));
        assert_eq!(mixed[1..], demo[..]);
        // The registry's settings come along: restarts and budget.
        let options = run_options(&["--demo", "isolation"]);
        let config = |name: &str| options.guests.iter().find(|g| g.config.name.as_str() == name).map(|g| g.config);
        assert_eq!(config("hostile_memory").map(|c| c.restart_limit), Some(8));
        assert_eq!(config("hostile_cpu").map(|c| c.expected), Some(ExpectedOutcome::OverBudget));
        assert_ne!(config("hostile_cpu").map(|c| c.budget_ticks), Some(0));
        // A demo's guest cannot be added twice, and unknown demos are refused.
        assert!(matches!(
            parse(&["--demo", "isolation", "--demo", "isolation"]),
            Err(UsageError::Guests(GuestListError::DuplicateName(_)))
        ));
        assert!(matches!(parse(&["--demo", "speed"]), Err(UsageError::InvalidValue { option: "--demo", .. })));
        assert_eq!(parse(&["--demo"]), Err(UsageError::MissingValue("--demo")));
        // Settings need a --guest of their own.
        assert_eq!(parse(&["--demo", "isolation", "--ram", "4M"]), Err(UsageError::SettingWithoutGuest("--ram")));
        // --expect takes over-budget.
        let spinner = run_options(&["--guest", "hostile_cpu", "--expect", "over-budget"]);
        assert_eq!(spinner.guests[0].config.expected, ExpectedOutcome::OverBudget);
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
        assert!(matches!(
            parse(&["--log-level", "trace"]),
            Err(UsageError::InvalidValue { option: "--log-level", .. })
        ));
    }

    fn guest_names(options: &RunOptions) -> Vec<&str> {
        options.guests.iter().map(|guest| guest.config.name.as_str()).collect()
    }

    #[test]
    fn without_guest_options_the_run_boots_every_built_in() {
        let options = run_options(&["--timeout", "9"]);
        assert_eq!(guest_names(&options), payloads::default_guest_names());
        assert_eq!(options.guests, GuestSpec::defaults());
        assert_eq!(options.machine_memory_mib, 256);
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
            format!(
                "unknown guest `hello` for `--guest`: the built-in guests are {} (see --list-guests)",
                payloads::names_for_message()
            )
        );
        assert!(message.contains("`hello64`, "), "{message}");
    }

    /// A scratch directory for one test.
    fn temp_dir(test: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("boot-cli-{}-{test}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("a temporary directory");
        dir
    }

    #[test]
    fn guest_files_with_their_settings() {
        let options = run_options(&[
            "--guest-file",
            "images/boot sector.bin",
            "--timeout",
            "9",
            "--mode",
            "real",
            "--ram=4M",
            "--expect",
            "exit:7",
            "--guest-file",
            "/x/kernel.elf",
            "--mode=long",
            "--name",
            "mine",
        ]);
        assert_eq!(guest_names(&options), ["boot_sector", "mine"]);
        let boot = &options.guests[0];
        assert_eq!(boot.image, Path::new("images/boot sector.bin"));
        assert_eq!(boot.config.start_mode, StartMode::Real);
        assert_eq!(boot.config.ram_bytes, 4 << 20);
        assert_eq!(boot.config.expected, ExpectedOutcome::Exit(7));
        let kernel = &options.guests[1];
        assert_eq!(kernel.image, Path::new("/x/kernel.elf"));
        assert_eq!(kernel.config.start_mode, StartMode::Long);
        assert_eq!(kernel.config.ram_bytes, 2 << 20);
        assert_eq!(kernel.config.expected, ExpectedOutcome::Exit(0));
        assert_eq!(options.timeout, Duration::from_secs(9));
    }

    #[test]
    fn settings_apply_to_built_ins_too() {
        let options =
            run_options(&["--guest", "hello64", "--ram", "3M", "--name", "big", "--expect", "crash", "--mode", "real"]);
        let guest = &options.guests[0];
        assert_eq!(guest.config.name.as_str(), "big");
        assert_eq!(guest.config.ram_bytes, 4 << 20);
        assert_eq!(guest.config.expected, ExpectedOutcome::Crash);
        assert_eq!(guest.config.start_mode, StartMode::Real);
        assert_eq!(guest.image, payloads::find("hello64").expect("built in").image_path());
        // The same payload twice, under two names.
        let options = run_options(&["--guest", "hello64", "--guest", "hello64", "--name", "hello64-b"]);
        assert_eq!(guest_names(&options), ["hello64", "hello64-b"]);
    }

    #[test]
    fn guest_file_names_come_from_the_file_and_are_made_unique() {
        let options = run_options(&[
            "--guest-file",
            "a/boot.bin",
            "--mode",
            "real",
            "--guest-file",
            "b/boot.bin",
            "--mode",
            "real",
            "--guest-file",
            "boot",
            "--mode",
            "real",
            "--guest-file",
            "héllo [1].img",
            "--mode",
            "protected",
            "--guest-file",
            "/",
            "--mode",
            "protected",
        ]);
        assert_eq!(guest_names(&options), ["boot", "boot-2", "boot-3", "h_llo__1_", "guest"]);
    }

    #[test]
    fn default_names_are_cut_to_32_bytes_with_room_for_the_suffix() {
        let long = format!("{}.bin", "x".repeat(40));
        let options = run_options(&["--guest-file", &long, "--mode", "real", "--guest-file", &long, "--mode", "real"]);
        assert_eq!(guest_names(&options), ["x".repeat(32), format!("{}-2", "x".repeat(30))]);
    }

    #[test]
    fn guest_setting_errors() {
        assert_eq!(parse(&["--guest-file", "a.bin"]), Err(UsageError::MissingMode(PathBuf::from("a.bin"))));
        assert_eq!(
            parse(&["--guest-file", "a.bin", "--guest", "hello64"]),
            Err(UsageError::MissingMode(PathBuf::from("a.bin")))
        );
        assert_eq!(parse(&["--mode", "real"]), Err(UsageError::SettingWithoutGuest("--mode")));
        assert_eq!(parse(&["--ram", "4M", "--guest", "hello64"]), Err(UsageError::SettingWithoutGuest("--ram")));
        assert_eq!(
            parse(&["--guest", "hello64", "--expect", "crash", "--expect", "exit:0"]),
            Err(UsageError::RepeatedSetting { option: "--expect", guest: "--guest hello64".into() })
        );
        assert!(matches!(
            parse(&["--guest", "hello64", "--mode", "virtual"]),
            Err(UsageError::InvalidValue { option: "--mode", .. })
        ));
        assert!(matches!(
            parse(&["--guest", "hello64", "--ram", "2MB"]),
            Err(UsageError::InvalidValue { option: "--ram", .. })
        ));
        assert!(matches!(
            parse(&["--guest", "hello64", "--ram", "0"]),
            Err(UsageError::InvalidValue { option: "--ram", .. })
        ));
        assert!(matches!(
            parse(&["--guest", "hello64", "--expect", "exit"]),
            Err(UsageError::InvalidValue { option: "--expect", .. })
        ));
        assert!(matches!(
            parse(&["--guest", "hello64", "--name", "a b"]),
            Err(UsageError::BadName { error: NameError::BadByte { index: 1, byte: b' ' }, .. })
        ));
        assert!(matches!(
            parse(&["--guest", "hello64", "--guest-file", "x", "--mode", "long", "--name", "hello64"]),
            Err(UsageError::Guests(GuestListError::DuplicateName(_)))
        ));
        let message = UsageError::SettingWithoutGuest("--ram").to_string();
        assert!(message.starts_with("`--ram` sets the guest of the closest --guest or --guest-file before it"));
        let message = UsageError::MissingMode(PathBuf::from("a.bin")).to_string();
        assert_eq!(
            message,
            "`--guest-file a.bin` needs `--mode real|protected|long`: an image does not say how it starts"
        );
    }

    #[test]
    fn more_guests_than_the_blob_holds_are_refused() {
        let max = hypervisor_core::blob::MAX_GUESTS;
        let mut args = Vec::new();
        for i in 0..=max {
            args.extend(["--guest-file".to_string(), format!("g{i}.bin"), "--mode".into(), "real".into()]);
        }
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        assert_eq!(parse(&args), Err(UsageError::Guests(GuestListError::TooMany { max })));
        assert!(matches!(parse(&args[..4 * max]), Ok(Command::Run(options)) if options.guests.len() == max));
    }

    #[test]
    fn machine_memory() {
        assert_eq!(run_options(&["--machine-memory", "512"]).machine_memory_mib, 512);
        assert_eq!(run_options(&["--machine-memory=64"]).machine_memory_mib, 64);
        assert_eq!(run_options(&["--machine-memory=2048"]).machine_memory_mib, 2048);
        for bad in ["63", "2049", "0", "-1", "256M", ""] {
            assert!(
                matches!(
                    parse(&["--machine-memory", bad]),
                    Err(UsageError::InvalidValue { option: "--machine-memory", .. })
                ),
                "{bad}"
            );
        }
    }

    #[test]
    fn config_files_mix_with_other_guest_options_in_order() {
        let dir = temp_dir("config");
        let config = dir.join("guests.toml");
        std::fs::write(
            &config,
            "[[guest]]\nname = \"one\"\nbuiltin = \"escape_ram\"\n\n[[guest]]\nname = \"two\"\nfile = \"two.bin\"\nmode = \"real\"\n",
        )
        .expect("write the configuration");
        let config_arg = config.to_string_lossy().into_owned();
        let options = run_options(&[
            "--guest",
            "hello64",
            "--ram",
            "4M",
            "--config",
            &config_arg,
            "--guest-file",
            "three.bin",
            "--mode",
            "protected",
        ]);
        assert_eq!(guest_names(&options), ["hello64", "one", "two", "three"]);
        assert_eq!(options.guests[0].config.ram_bytes, 4 << 20);
        assert_eq!(options.guests[2].image, dir.join("two.bin"));

        // Settings after --config have no guest to apply to.
        assert_eq!(
            parse(&["--guest", "hello64", "--config", &config_arg, "--ram", "4M"]),
            Err(UsageError::SettingWithoutGuest("--ram"))
        );
        // A clash with a guest of the file names the file's line.
        let error = parse(&["--guest", "hello64", "--name", "two", "--config", &config_arg]).unwrap_err();
        assert_eq!(
            error.to_string(),
            format!(
                "{}:6: guest `two`: guest `two` is given twice: each guest of a run needs a name of its own \
                 (it prefixes the guest's console lines)",
                config.display()
            )
        );
        // A bad file.
        std::fs::write(&config, "[[guest]]\nname = \"x\"\nbuiltin = \"hello64\"\ncolour = \"blue\"\n").expect("write");
        let error = parse(&["--config", &config_arg]).unwrap_err();
        assert!(
            matches!(error, UsageError::Config(ConfigFileError::Parse { position: Some((4, 1)), .. })),
            "{error:?}"
        );
        assert!(error.to_string().contains("unknown field `colour`"), "{error}");
        assert!(matches!(
            parse(&["--config", "/nonexistent.toml"]),
            Err(UsageError::Config(ConfigFileError::Read { .. }))
        ));
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn the_example_configuration_is_accepted() {
        let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("../guests.example.toml");
        let options = run_options(&["--config", &example.to_string_lossy()]);
        assert!(!options.guests.is_empty());
    }

    #[test]
    fn the_help_states_the_memory_rule() {
        use crate::disk_image::Firmware;
        use crate::machine_memory::{guest_ram_budget, DEFAULT_MACHINE_MEMORY_MIB};
        let default = DEFAULT_MACHINE_MEMORY_MIB;
        assert!(USAGE.contains(&format!("[default:\n                           {default}]")), "{USAGE}");
        for (firmware, name) in [(Firmware::Bios, "BIOS"), (Firmware::Uefi, "UEFI")] {
            let kept = u64::from(default) - guest_ram_budget(default, firmware) / (1 << 20);
            let text = format!("{kept}\n                           MiB ({name})");
            let text_inline = format!("{kept} MiB ({name})");
            assert!(USAGE.contains(&text) || USAGE.contains(&text_inline), "--help should say {text_inline}");
        }
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
        for payload in payloads::BUILT_IN {
            assert!(USAGE.contains(payload.name), "--help does not name {}", payload.name);
        }
        let options = [
            "--guest <NAME>",
            "--guest-file <PATH>",
            "--config <FILE>",
            "--mode <MODE>",
            "--name <NAME>",
            "--ram <SIZE>",
            "--expect <OUTCOME>",
            "--demo <DEMO>",
            "--machine-memory <MIB>",
            "--list-guests",
            "--emulator",
            "--uefi",
            "--timeout",
            "--log-level",
            "--help",
        ];
        for option in options {
            assert!(USAGE.contains(option), "--help does not describe {option}");
        }
    }

    #[test]
    fn caps_and_bochs_cpu() {
        let defaults = run_options(&[]);
        assert!(!defaults.caps_report);
        assert_eq!(defaults.bochs_cpu_model, "corei7_icelake_u");
        let options = run_options(&["--caps", "--bochs-cpu", "tigerlake"]);
        assert!(options.caps_report);
        assert_eq!(options.bochs_cpu_model, "tigerlake");
        assert_eq!(run_options(&["--bochs-cpu=corei7_skylake_x"]).bochs_cpu_model, "corei7_skylake_x");
        assert_eq!(parse(&["--caps=yes"]), Err(UsageError::UnexpectedValue("--caps")));
        assert_eq!(parse(&["--bochs-cpu"]), Err(UsageError::MissingValue("--bochs-cpu")));
        for bad in ["", "tiger lake", "a,b"] {
            assert!(matches!(
                parse(&["--bochs-cpu", bad]),
                Err(UsageError::InvalidValue { option: "--bochs-cpu", .. })
            ));
        }
        assert!(USAGE.contains("--caps") && USAGE.contains("--bochs-cpu <MODEL>"));
    }

    #[test]
    fn errors_read_well() {
        let error = UsageError::InvalidValue {
            option: "--emulator",
            value: "vmware".into(),
            expected: "auto, bochs, qemu or qemu-kvm",
        };
        assert_eq!(
            error.to_string(),
            "invalid value `vmware` for `--emulator`: expected auto, bochs, qemu or qemu-kvm"
        );
    }

    #[test]
    fn trace_without_a_name_traces_every_guest() {
        assert_eq!(run_options(&[]).trace, TraceSelection::None);
        assert_eq!(run_options(&["--trace"]).trace, TraceSelection::All);
        // The next argument is an option, not a guest name.
        let options = run_options(&["--guest", "hello64", "--trace", "--timeout", "9"]);
        assert_eq!(options.trace, TraceSelection::All);
        assert_eq!(options.timeout, Duration::from_secs(9));
        assert_eq!(run_options(&["--trace", "--guest", "hello64"]).trace, TraceSelection::All);
    }

    #[test]
    fn trace_with_a_name_traces_that_guest() {
        let args = ["--guest", "hello64", "--guest", "protected32", "--trace", "protected32"];
        assert_eq!(run_options(&args).trace, TraceSelection::Guest(1));
        let joined = ["--trace=hello64", "--guest", "hello64", "--guest", "protected32"];
        assert_eq!(run_options(&joined).trace, TraceSelection::Guest(0));
        // Names given with --name count, and the default guest list too.
        let renamed = ["--guest", "hello64", "--name", "mine", "--trace", "mine", "--uefi"];
        let options = run_options(&renamed);
        assert_eq!(options.trace, TraceSelection::Guest(0));
        assert!(options.uefi);
        let default_index = payloads::default_guest_names().iter().position(|name| *name == "protected32");
        let expected = TraceSelection::Guest(default_index.expect("protected32 is a default guest") as u8);
        assert_eq!(run_options(&["--trace", "protected32"]).trace, expected);
    }

    #[test]
    fn break_entry_takes_a_breakable_rule_by_id_or_name() {
        assert_eq!(run_options(&[]).break_entry, 0);
        assert_eq!(run_options(&["--break-entry", "26"]).break_entry, 26);
        assert_eq!(run_options(&["--break-entry", "link-pointer"]).break_entry, 42);
        assert!(matches!(
            parse(&["--break-entry", "pin-controls"]),
            Err(UsageError::InvalidValue { option: "--break-entry", .. })
        ));
        assert!(matches!(parse(&["--break-entry", "nope"]), Err(UsageError::InvalidValue { .. })));
        assert_eq!(parse(&["--list-entry-rules"]), Ok(Command::ListEntryRules));
        assert!(entry_rules_listing().contains("* 26  rflags-reserved"));
        assert!(USAGE.contains("--break-entry <RULE>"));
    }

    #[test]
    fn step_names_one_guest() {
        assert_eq!(run_options(&[]).step, StepSelection::None);
        let args = ["--guest", "hello64", "--guest", "realmode16", "--step", "realmode16"];
        assert_eq!(run_options(&args).step, StepSelection::Guest(1));
        let joined = ["--step=hello64", "--guest", "hello64", "--trace"];
        let options = run_options(&joined);
        assert_eq!(options.step, StepSelection::Guest(0));
        assert_eq!(options.trace, TraceSelection::All);
        // The name is required, and must be a guest of the run.
        assert_eq!(parse(&["--guest", "hello64", "--step"]), Err(UsageError::MissingValue("--step")));
        assert_eq!(
            parse(&["--guest", "hello64", "--step", "nosuch"]),
            Err(UsageError::UnknownStepGuest("nosuch".into()))
        );
        assert_eq!(UsageError::UnknownStepGuest("x".into()).to_string(), "`--step x`: the run has no guest named `x`");
        assert!(USAGE.contains("--step <GUEST>"));
    }

    #[test]
    fn trace_of_an_unknown_guest_is_a_usage_error() {
        assert_eq!(
            parse(&["--guest", "hello64", "--trace", "nosuch"]),
            Err(UsageError::UnknownTraceGuest("nosuch".into()))
        );
        assert_eq!(
            parse(&["--trace", "hello64", "--guest", "protected32"]),
            Err(UsageError::UnknownTraceGuest("hello64".into()))
        );
    }
}
