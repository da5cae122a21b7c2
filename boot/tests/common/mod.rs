//! Shared by the integration tests: boot once, then check the outcome with
//! assertions that print the whole story (serial output, emulator log tail,
//! run directory) when they fail.
//!
//! A test that cannot boot fails; it never passes quietly. In particular a
//! missing emulator fails the test with the `apt-get` command that installs it
//! (tests never install anything themselves).

#![allow(dead_code)] // Each test binary uses a different part of this module.

use std::time::Duration;

use boot::{EmulatorChoice, GuestSpec, RunError, RunOptions, RunOutcome};

/// Bochs is slow; leave plenty of room (a run takes seconds when all is well).
pub const BOCHS_TIMEOUT: Duration = Duration::from_secs(300);

/// The last line of a passing run.
pub const PASS_LINE: &str = boot::verdict::PASS_LINE;

/// Options for a test run: the built-in kernel and guests, no streaming.
pub fn options(emulator: EmulatorChoice, uefi: bool, timeout: Duration) -> RunOptions {
    RunOptions { emulator, uefi, timeout, stream: false, ..RunOptions::default() }
}

/// Options for a Bochs BIOS run of the built-in payloads `names`, in order,
/// with [`BOCHS_TIMEOUT`].
#[track_caller]
pub fn bochs_options(names: &[&str]) -> RunOptions {
    RunOptions { guests: built_in_guests(names), ..options(EmulatorChoice::Bochs, false, BOCHS_TIMEOUT) }
}

/// The run options of `cargo run -- <args>` (parsed by
/// [`boot::cli::parse_args`]), for Bochs, without streaming, with
/// [`BOCHS_TIMEOUT`].
#[track_caller]
pub fn bochs_options_from_args(args: &[&str]) -> RunOptions {
    match boot::cli::parse_args(args.iter().map(std::ffi::OsString::from)) {
        Ok(boot::cli::Command::Run(options)) => {
            RunOptions { emulator: EmulatorChoice::Bochs, stream: false, timeout: BOCHS_TIMEOUT, ..options }
        }
        other => panic!("`{}` should be a run, got {other:?}", args.join(" ")),
    }
}

/// The built-in payloads called `names`, in order (like `--guest NAME ...`).
#[track_caller]
pub fn built_in_guests(names: &[&str]) -> Vec<GuestSpec> {
    let mut guests = Vec::new();
    for name in names {
        let payload = boot::payloads::find(name).unwrap_or_else(|| panic!("`{name}` is not a built-in payload"));
        let spec = payload.spec().unwrap_or_else(|e| panic!("built-in payload `{name}`: {e}"));
        boot::options::add_guest(&mut guests, spec).unwrap_or_else(|e| panic!("{e}"));
    }
    guests
}

/// A finished run, with assertions.
pub struct Booted {
    /// What the test booted, for messages ("Bochs BIOS boot").
    pub what: String,
    /// What the run produced.
    pub outcome: RunOutcome,
}

/// Boots with `options`; panics with the reason (and, for a missing emulator,
/// the install command) when the emulator could not even start.
#[track_caller]
pub fn boot(what: &str, options: &RunOptions) -> Booted {
    match boot::run(options) {
        Ok(outcome) => {
            // Shown by `cargo test -- --nocapture`, and with the output of a failing test.
            eprintln!("{what}: {} — {}", outcome.decision, outcome.summary());
            Booted { what: what.to_string(), outcome }
        }
        Err(RunError::MissingPrerequisites(missing)) => panic!(
            "{what}: cannot boot: {missing}\n\
             The tests never install anything: run the command above, then run the tests again."
        ),
        Err(error) => panic!("{what}: cannot boot: {error}"),
    }
}

impl Booted {
    /// Everything there is to know about the run, for a failure message.
    pub fn report(&self) -> String {
        let o = &self.outcome;
        let mut report = format!(
            "{what}: {summary}\n--- serial output ({bytes} bytes) ---\n{serial}\n--- end of serial output ---\n{tail}\nrun directory: {dir}",
            what = self.what,
            summary = o.summary(),
            bytes = o.serial.len(),
            serial = o.serial.trim_end(),
            tail = o.emulator_log_tail,
            dir = o.run_dir.display(),
        );
        if !o.emulator_panics.is_empty() {
            report.push_str("\nthe emulator stopped with:");
            for message in &o.emulator_panics {
                report.push_str("\n  PANIC: ");
                report.push_str(message);
            }
        }
        if !o.vmenter_failures.is_empty() {
            report.push_str("\nBochs reports failed VM-entry checks:");
            for line in &o.vmenter_failures {
                report.push_str("\n  ");
                report.push_str(line);
            }
        }
        report
    }

    /// The serial output's lines, without line ends.
    pub fn lines(&self) -> impl Iterator<Item = &str> {
        self.outcome.serial.lines().map(str::trim_end)
    }

    /// Panics with [`Self::report`] and `problem`.
    #[track_caller]
    pub fn fail(&self, problem: &str) -> ! {
        panic!("{problem}\n\n{}", self.report())
    }

    /// The first serial line at or after line `from` that satisfies `matches`,
    /// with its index.
    pub fn find_line_from(&self, from: usize, matches: impl Fn(&str) -> bool) -> Option<(usize, &str)> {
        self.lines().enumerate().skip(from).find(|(_, line)| matches(line))
    }

    /// Asserts that a line at or after line `from` satisfies `matches`;
    /// returns the first one with its index. `what` describes the line.
    #[track_caller]
    pub fn assert_line_from(&self, from: usize, what: &str, matches: impl Fn(&str) -> bool) -> (usize, &str) {
        match self.find_line_from(from, matches) {
            Some(found) => found,
            None if from == 0 => self.fail(&format!("no {what} in the serial output")),
            None => self.fail(&format!("no {what} after serial line {from}")),
        }
    }

    /// Asserts that the serial output has a line that is exactly `expected`;
    /// returns its index.
    #[track_caller]
    pub fn assert_exact_line(&self, expected: &str) -> usize {
        self.assert_line_from(0, &format!("line {expected:?}"), |line| line == expected).0
    }

    /// Asserts that a line starts with `prefix`; returns the first such line.
    #[track_caller]
    pub fn assert_line_starting_with(&self, prefix: &str, what: &str) -> &str {
        match self.lines().find(|line| line.starts_with(prefix)) {
            Some(line) => line,
            None => self.fail(&format!("no {what}: no serial line starts with {prefix:?}")),
        }
    }

    /// Asserts that a hypervisor log line (`[hv ...`) contains `needle`;
    /// returns the first such line.
    #[track_caller]
    pub fn assert_hv_line_containing(&self, needle: &str, what: &str) -> &str {
        match self.lines().find(|line| line.starts_with("[hv ") && line.contains(needle)) {
            Some(line) => line,
            None => self.fail(&format!("no {what}: no `[hv ...]` line contains {needle:?}")),
        }
    }

    /// Asserts that a hypervisor report line reads `label: value` with one of
    /// `values`: the label compared without regard to case, any spacing around
    /// the colon (the report aligns its values in a column). Returns the line.
    #[track_caller]
    pub fn assert_hv_field(&self, label: &str, values: &[&str], what: &str) -> &str {
        let matches = |line: &str| {
            let Some(text) = line.strip_prefix("[hv ").and_then(|rest| rest.split_once(']')).map(|(_, t)| t) else {
                return false;
            };
            match text.split_once(':') {
                Some((key, value)) => key.trim().eq_ignore_ascii_case(label) && values.contains(&value.trim()),
                None => false,
            }
        };
        match self.lines().find(|line| matches(line)) {
            Some(line) => line,
            None => self.fail(&format!("no {what}: no `[hv ...] {label}: <value>` line with a value in {values:?}")),
        }
    }

    /// Asserts that the last non-empty serial line is exactly `expected`.
    #[track_caller]
    pub fn assert_last_line(&self, expected: &str) {
        let last = self.lines().filter(|line| !line.is_empty()).last();
        if last != Some(expected) {
            self.fail(&format!("the serial output should end with {expected:?}, but its last line is {last:?}"));
        }
    }

    /// Asserts that the runner judged the run a success.
    #[track_caller]
    pub fn assert_passed(&self) {
        if !self.outcome.passed() {
            self.fail("the runner's verdict should be success");
        }
    }

    /// Asserts that the runner judged the run a failure.
    #[track_caller]
    pub fn assert_failed(&self) {
        if self.outcome.passed() {
            self.fail("the runner's verdict should be failure");
        }
    }
}
