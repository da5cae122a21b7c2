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
//!
//! [`expect_exception`] and [`expect_gp`] check an [`Attempt`], an
//! instruction run under [`crate::idt::expect_fault`], for the fault it
//! must raise.

use core::fmt::{self, Display};

use crate::hypercall::{Expect, HypercallError, Shown};
use crate::idt::{Fault, GENERAL_PROTECTION};
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

    /// Checks one hypercall result: `ok: <what> -> <expected>` or
    /// `FAIL: <what> -> <got> (expected <expected>)`. Returns whether it passed.
    pub fn expect(&mut self, what: impl Display, got: Result<u64, HypercallError>, want: Expect) -> bool {
        self.check(what, want.accepts(got), want, format_args!("{} (expected {want})", Shown(got)))
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

/// The outcome of one instruction run under [`crate::idt::expect_fault`]:
/// its result or the fault it raised, and the instruction's address (where
/// the fault must point: a fault reports the faulting instruction's RIP,
/// also when the hypervisor injects it, SDM Vol. 3C, 27.6 "Event
/// Injection").
pub struct Attempt<T> {
    /// What the instruction produced, or the fault.
    pub result: Result<T, Fault>,
    /// The instruction's address.
    pub at: u64,
}

/// Checks that `attempt` raised `vector` with `error_code` at its own
/// instruction: `ok: <what> -> #GP(0)` or a `FAIL:` line saying what
/// happened instead. Returns whether the instruction was (wrongly) allowed,
/// so that the caller can undo its effect.
pub fn expect_exception<T: fmt::LowerHex>(
    checks: &mut Checks,
    what: impl Display,
    attempt: Attempt<T>,
    vector: u8,
    error_code: Option<u64>,
) -> bool {
    let want = Fault { vector, error_code, rip: attempt.at };
    match attempt.result {
        Ok(value) => {
            checks.fail(what, format_args!("allowed, value {value:#x} (expected {want})"));
            return true;
        }
        Err(fault) if fault == want => checks.pass(what, want),
        Err(fault) => {
            checks.fail(what, format_args!("{fault} at rip {:#x} (expected {want} at rip {:#x})", fault.rip, want.rip))
        }
    }
    false
}

/// [`expect_exception`] for the most common answer, #GP(0).
pub fn expect_gp<T: fmt::LowerHex>(checks: &mut Checks, what: impl Display, attempt: Attempt<T>) -> bool {
    expect_exception(checks, what, attempt, GENERAL_PROTECTION, Some(0))
}
