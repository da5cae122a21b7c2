//! A tally of pass/fail checks with one output line each, the reporting
//! format the test payloads share:
//!
//! ```text
//! ok: <what> -> <summary>
//! FAIL: <what> -> <detail>
//! checks: <passed> passed, <failed> failed
//! ```
//!
//! A payload typically exits with [`Checks::failed`] as its status.

use core::fmt::Display;

use crate::println;

/// Counts passed and failed checks.
#[derive(Debug, Default)]
pub struct Checks {
    passed: u32,
    failed: u32,
}

impl Checks {
    /// No checks yet.
    pub const fn new() -> Self {
        Self { passed: 0, failed: 0 }
    }

    /// Records a passed check: prints `ok: <what> -> <summary>`.
    pub fn pass(&mut self, what: impl Display, summary: impl Display) {
        self.passed += 1;
        println!("ok: {what} -> {summary}");
    }

    /// Records a failed check: prints `FAIL: <what> -> <detail>`.
    pub fn fail(&mut self, what: impl Display, detail: impl Display) {
        self.failed += 1;
        println!("FAIL: {what} -> {detail}");
    }

    /// Records a check that passed iff `passed`, printing `summary` or
    /// `detail`. Returns `passed`.
    pub fn check(&mut self, what: impl Display, passed: bool, summary: impl Display, detail: impl Display) -> bool {
        if passed {
            self.pass(what, summary);
        } else {
            self.fail(what, detail);
        }
        passed
    }

    /// Checks passed so far.
    pub const fn passed(&self) -> u32 {
        self.passed
    }

    /// Checks failed so far.
    pub const fn failed(&self) -> u32 {
        self.failed
    }

    /// Prints `checks: <passed> passed, <failed> failed`.
    pub fn report(&self) {
        println!("checks: {} passed, {} failed", self.passed, self.failed);
    }
}
