//! Reading the hypervisor's verdict from its serial output.
//!
//! The last line the kernel prints before it powers off is one of
//!
//! ```text
//! hypervisor: verdict PASS
//! hypervisor: verdict FAIL: <reason>
//! ```
//!
//! The emulator's exit status says nothing reliable (Bochs exits with 1 after
//! a clean power-off, QEMU with whatever the kernel wrote to the debug-exit
//! port), so the serial output is the only judge.

use std::fmt;

/// The line that makes a run pass.
pub const PASS_LINE: &str = "hypervisor: verdict PASS";
/// The start of a failing verdict line; the reason follows after `: `.
pub const FAIL_PREFIX: &str = "hypervisor: verdict FAIL";

/// What the serial output says about the run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// The kernel printed `hypervisor: verdict PASS` (and no FAIL line).
    Pass,
    /// The kernel printed `hypervisor: verdict FAIL: <reason>`.
    Fail {
        /// The text after `FAIL: `.
        reason: String,
    },
    /// No verdict line (the kernel hung, crashed or never started).
    Missing,
}

impl Verdict {
    /// Whether the run passed.
    pub fn passed(&self) -> bool {
        *self == Verdict::Pass
    }
}

impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Verdict::Pass => f.write_str("PASS"),
            Verdict::Fail { reason } => write!(f, "FAIL: {reason}"),
            Verdict::Missing => f.write_str("no verdict"),
        }
    }
}

/// Classifies one line (without its line end).
fn verdict_of_line(line: &str) -> Option<Verdict> {
    let line = line.trim_end();
    if line == PASS_LINE {
        return Some(Verdict::Pass);
    }
    let rest = line.strip_prefix(FAIL_PREFIX)?;
    let reason = rest.strip_prefix(':').unwrap_or(rest).trim();
    Some(Verdict::Fail { reason: reason.to_string() })
}

/// The verdict in `serial`. Only whole lines count: the verdict must start a
/// line (guest output is always prefixed with `[name]`, so a guest cannot fake
/// it). A FAIL line wins over a PASS line, should both appear.
pub fn find_verdict(serial: &str) -> Verdict {
    let mut verdict = Verdict::Missing;
    for found in serial.lines().filter_map(verdict_of_line) {
        match found {
            Verdict::Fail { .. } => return found,
            _ => verdict = found,
        }
    }
    verdict
}

/// [`find_verdict`] over the complete lines of `serial` only (up to its last
/// `\n`), for use while the output is still growing.
pub fn find_verdict_in_complete_lines(serial: &str) -> Verdict {
    match serial.rfind('\n') {
        Some(end) => find_verdict(&serial[..end]),
        None => Verdict::Missing,
    }
}

/// The last `count` lines of `text`, joined by `\n`.
pub fn last_lines(text: &str, count: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(count)..].join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pass_line_passes() {
        let serial = "[hv INFO ] hypervisor 0.1.0\r\n[hello64] hi\nhypervisor: verdict PASS\r\n";
        assert_eq!(find_verdict(serial), Verdict::Pass);
    }

    #[test]
    fn fail_line_carries_its_reason() {
        let serial = "[hv ERROR] no VT-x\nhypervisor: verdict FAIL: no VT-x on this CPU\n";
        assert_eq!(find_verdict(serial), Verdict::Fail { reason: "no VT-x on this CPU".into() });
    }

    #[test]
    fn fail_wins_over_pass() {
        let serial = "hypervisor: verdict PASS\nhypervisor: verdict FAIL: late\n";
        assert!(matches!(find_verdict(serial), Verdict::Fail { .. }));
    }

    #[test]
    fn verdict_must_start_its_line() {
        assert_eq!(find_verdict("[guest] hypervisor: verdict PASS\n"), Verdict::Missing);
        assert_eq!(find_verdict("hypervisor: verdict PASSED\n"), Verdict::Missing);
        assert_eq!(find_verdict(""), Verdict::Missing);
    }

    #[test]
    fn growing_output_waits_for_the_line_end() {
        assert_eq!(find_verdict_in_complete_lines("hypervisor: verdict PASS"), Verdict::Missing);
        assert_eq!(find_verdict_in_complete_lines("hypervisor: verdict PASS\n"), Verdict::Pass);
        assert_eq!(find_verdict_in_complete_lines("hypervisor: verdict PASS\r\nx"), Verdict::Pass);
    }

    #[test]
    fn last_lines_of_short_and_long_texts() {
        assert_eq!(last_lines("a\nb\nc\n", 2), "b\nc");
        assert_eq!(last_lines("a\n", 5), "a");
        assert_eq!(last_lines("", 5), "");
    }
}
