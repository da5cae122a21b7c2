//! Exit tracing (`--trace [GUEST]`) in Bochs: one `[hv TRACE]` line per VM
//! exit of a traced guest, none for the others.
//!
//! - `protected32_traced`: protected32 (about 175 exits, so the traced run
//!   stays short; Bochs charges time for every console byte) with every guest
//!   traced: the first exit, the first write to the UART's data port, the
//!   `info` hypercall and the final write to the exit port, each with its
//!   decoded details and instruction bytes; sequence numbers 1, 2, 3, ...
//! - `untraced_run_prints_no_trace`: the same guest without `--trace`.
//! - `only_the_selected_guest_is_traced`: realmode16 then protected32, tracing
//!   only the second.

mod common;

use hypervisor_core::blob::TraceSelection;

/// Every trace line starts with this.
const TRACE_PREFIX: &str = "[hv TRACE] ";
/// protected32's trace lines: `[hv TRACE] protected32 #<seq> ...`.
const PROTECTED32_TRACE: &str = "[hv TRACE] protected32 #";

/// The first write to the UART's data register (THR at 0x3F8): `out dx, al` is 0xEE.
const FIRST_THR_WRITE: (&str, &str) = ("I/O instruction: OUT dx, al to port 0x3F8, 1 byte RIP 0x", " [ee] -> emulated");
/// `info(RamSize)` from 32-bit code; VMCALL is 0F 01 C1.
const INFO_HYPERCALL: (&str, &str) = ("VMCALL: hypercall info(RamSize) RIP 0x", " [0f 01 c1] -> emulated");
/// The last exit: `out dx, eax` (0xEF) of 0x32 to the exit port.
const EXIT_PORT_WRITE: (&str, &str) =
    ("I/O instruction: OUT dx, eax to port 0xF4, 4 bytes RIP 0x", " [ef] -> exit status 0x32");

/// Boots the built-in guests `names` in Bochs with `trace`.
fn boot_traced(what: &str, names: &[&str], trace: TraceSelection) -> common::Booted {
    let mut options = common::bochs_options(names);
    options.trace = trace;
    common::boot(what, &options)
}

/// A trace line split into its sequence number and the rest (after `#<seq> `).
fn sequence_and_rest<'a>(line: &'a str, prefix: &str) -> Option<(u64, &'a str)> {
    let (number, rest) = line.strip_prefix(prefix)?.split_once(' ')?;
    Some((number.parse().ok()?, rest))
}

/// Asserts protected32's trace: consecutive sequence numbers from 1, every line
/// with instruction bytes, and the lines the test looks for.
fn assert_protected32_trace(run: &common::Booted) {
    let traced: Vec<(u64, &str)> = run
        .lines()
        .filter(|line| line.starts_with(PROTECTED32_TRACE))
        .map(|line| {
            sequence_and_rest(line, PROTECTED32_TRACE).unwrap_or_else(|| run.fail(&format!("bad trace line `{line}`")))
        })
        .collect();
    if traced.is_empty() {
        run.fail("protected32 is traced but printed no trace line");
    }
    for (expected, (sequence, rest)) in (1..).zip(&traced) {
        if *sequence != expected {
            run.fail(&format!("trace sequence numbers should be consecutive from 1: #{expected} is #{sequence}"));
        }
        // `RIP 0x... [xx xx ...] -> ...`: bytes read from guest memory, never `[?]` here.
        let bytes = rest.split_once(" [").and_then(|(_, after)| after.split_once("] -> ")).map(|(bytes, _)| bytes);
        let is_hex_bytes = |bytes: &str| {
            !bytes.is_empty() && bytes.split(' ').all(|byte| byte.len() == 2 && u8::from_str_radix(byte, 16).is_ok())
        };
        if !bytes.is_some_and(is_hex_bytes) {
            run.fail(&format!("trace line #{sequence} should show the instruction bytes: `{rest}`"));
        }
    }
    let (first_sequence, first) = traced[0];
    if first_sequence != 1 || !first.starts_with("I/O instruction: OUT dx, al to port 0x3F") {
        run.fail(&format!("protected32's first exit should be its UART initialization's OUT, got `{first}`"));
    }
    let find = |what: &str, (start, end): (&str, &str)| -> u64 {
        traced
            .iter()
            .find(|(_, rest)| rest.starts_with(start) && rest.ends_with(end))
            .map(|(sequence, _)| *sequence)
            .unwrap_or_else(|| run.fail(&format!("no trace line for {what}: `{start}...{end}`")))
    };
    let thr = find("the first write to port 0x3F8", FIRST_THR_WRITE);
    let info = find("the info hypercall", INFO_HYPERCALL);
    let exit = find("the write to the exit port", EXIT_PORT_WRITE);
    if !(thr < info && info < exit) {
        run.fail(&format!("expected THR write #{thr} < info hypercall #{info} < exit #{exit}"));
    }
    if exit != traced.len() as u64 {
        run.fail("the write to the exit port should be protected32's last exit");
    }
}

#[test]
fn protected32_traced() {
    let run = boot_traced("Bochs boot of protected32 with --trace", &["protected32"], TraceSelection::All);
    assert_protected32_trace(&run);
    run.assert_passed();
}

#[test]
fn untraced_run_prints_no_trace() {
    let run = boot_traced("Bochs boot of protected32 without --trace", &["protected32"], TraceSelection::None);
    if let Some(line) = run.lines().find(|line| line.starts_with(TRACE_PREFIX)) {
        run.fail(&format!("a run without --trace should print no trace line, got `{line}`"));
    }
    run.assert_passed();
}

#[test]
fn only_the_selected_guest_is_traced() {
    let run = boot_traced(
        "Bochs boot of realmode16 and protected32 with --trace protected32",
        &["realmode16", "protected32"],
        TraceSelection::Guest(1),
    );
    if let Some(line) = run.lines().find(|line| line.starts_with(TRACE_PREFIX) && !line.starts_with(PROTECTED32_TRACE))
    {
        run.fail(&format!("only protected32 is traced, got `{line}`"));
    }
    assert_protected32_trace(&run);
    run.assert_passed();
}
