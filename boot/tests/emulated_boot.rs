//! Boots the hypervisor in the emulators and checks what it prints.
//!
//! - `bochs_boot`: Bochs emulates VT-x, so the hypervisor must bring VMX up,
//!   report the capabilities and end with its PASS verdict (with `hello64`
//!   alone; the default run of every built-in guest is `tests/guests.rs`'s).
//! - `qemu_no_vtx_bios` / `qemu_no_vtx_uefi`: QEMU's TCG has no VT-x, so the
//!   hypervisor must say so and fail, through either firmware.
//! - `bochs_self_hardening`: the hypervisor's own mappings are W^X (the
//!   kernel's report line), its transient-execution mitigations are reported,
//!   and its code and constants have the same checksum after the guests ran.
//! - `timeout_kills_the_emulator`: the runner's own timeout path.
//!
//! The tests run in parallel, each in a run directory of its own under
//! `target/runs/`. A test that cannot start its emulator fails (with the
//! command that installs it); none passes without having booted.

mod common;

use std::path::Path;
use std::time::Duration;

use boot::{EmulatorChoice, Ending, Verdict};

// The serial lines the tests look for. Adjust them here when the kernel's
// wording changes.

/// The banner: the kernel's first log line.
const BANNER_PREFIX: &str = "[hv INFO ] hypervisor ";
/// Part of the memory report line.
const MEMORY_REPORT: &str = "memory:";
/// A field of the capability report, `label: value`: Bochs' VMCS revision
/// identifier (IA32_VMX_BASIC bits 30:0). Spacing and the label's case do not matter.
const VMCS_REVISION: (&str, &[&str]) = ("VMCS revision id", &["4", "0x4"]);
/// A field of the capability report: IA32_VMX_BASIC bit 55 (the TRUE_* control MSRs exist).
const TRUE_CONTROLS: (&str, &[&str]) = ("true controls", &["yes"]);
/// How the kernel reports a CPU without VT-x.
const NO_VTX_PREFIX: &str = "[hv ERROR] no VT-x";

/// QEMU boots in about 2 s (BIOS) or 5 s (UEFI) under TCG.
const QEMU_TIMEOUT: Duration = Duration::from_secs(120);

#[test]
fn bochs_boot() {
    let options = common::bochs_options(&["hello64"]);
    let run = common::boot("Bochs BIOS boot", &options);
    run.assert_line_starting_with(BANNER_PREFIX, "banner");
    run.assert_hv_line_containing(MEMORY_REPORT, "memory report");
    run.assert_hv_field(VMCS_REVISION.0, VMCS_REVISION.1, "VMCS revision id in the capability report");
    run.assert_hv_field(TRUE_CONTROLS.0, TRUE_CONTROLS.1, "TRUE-controls line in the capability report");
    run.assert_last_line(common::PASS_LINE);
    run.assert_passed();
}

/// The W^X line: `memory: W^X enforced: N code pages RX, M read-only pages, K data pages RW+NX, ...`.
const WX_PREFIX: &str = "[hv INFO ] memory: W^X enforced: ";
/// The transient-execution report, one line.
const MITIGATIONS_PREFIX: &str = "[hv INFO ] mitigations: IBPB on guest switch: ";
/// The integrity lines around the guests' run.
const CHECKSUM_START: &str = "[hv INFO ] hypervisor image: code+rodata checksum 0x";

/// The hypervisor hardens its own mappings at boot, verifies them, reports
/// its mitigations, and its code and constants are unchanged after the guests ran.
#[test]
fn bochs_self_hardening() {
    let options = common::bochs_options(&["hello64"]);
    let run = common::boot("Bochs boot (W^X, mitigations, image checksum)", &options);
    let wx = run.assert_line_starting_with(WX_PREFIX, "W^X report");
    // The first three numbers: code, read-only and data pages, each non-zero.
    let counts: Vec<u64> = wx[WX_PREFIX.len()..]
        .split(|c: char| !c.is_ascii_digit())
        .filter(|word| !word.is_empty())
        .take(3)
        .filter_map(|number| number.parse().ok())
        .collect();
    if counts.len() != 3 || counts.contains(&0) {
        run.fail(&format!("the W^X line should count code, read-only and data pages, all non-zero: {wx}"));
    }
    for part in [
        "code pages RX",
        "read-only pages",
        "data pages RW+NX",
        "physical window NX",
        "read-only in it",
        "verifier self-test: a planted RWX page was caught",
    ] {
        if !wx.contains(part) {
            run.fail(&format!("the W^X line lacks {part:?}: {wx}"));
        }
    }
    if run.lines().any(|line| line.contains("W^X VIOLATION")) {
        run.fail("the hypervisor reported a W^X violation");
    }
    let mitigations = run.assert_line_starting_with(MITIGATIONS_PREFIX, "mitigations report");
    for part in ["; L1D flush on entry: ", "; VERW on entry: "] {
        if !mitigations.contains(part) {
            run.fail(&format!("the mitigations line lacks {part:?}: {mitigations}"));
        }
    }
    // `... checksum 0x<16 hex digits> at start`, then the same value `at end: unchanged`.
    let start = run.assert_line_starting_with(CHECKSUM_START, "image checksum at start");
    let value = &start[CHECKSUM_START.len() - 2..];
    let Some(value) = value.strip_suffix(" at start") else {
        run.fail(&format!("the first checksum line should end with ` at start`: {start}"));
    };
    if value.len() != 18 || !value[2..].chars().all(|c| c.is_ascii_hexdigit()) {
        run.fail(&format!("the checksum should be 0x and 16 hex digits: {start}"));
    }
    run.assert_exact_line(&format!("[hv INFO ] hypervisor image: code+rodata checksum {value} at end: unchanged"));
    run.assert_last_line(common::PASS_LINE);
    run.assert_passed();
}

#[test]
fn qemu_no_vtx_bios() {
    let run = common::boot("QEMU (TCG) BIOS boot", &common::options(EmulatorChoice::Qemu, false, QEMU_TIMEOUT));
    expect_no_vtx_failure(&run);
}

#[test]
fn qemu_no_vtx_uefi() {
    let run = common::boot("QEMU (TCG) UEFI boot", &common::options(EmulatorChoice::Qemu, true, QEMU_TIMEOUT));
    expect_no_vtx_failure(&run);
}

/// The hypervisor found no VT-x, said so and failed with a FAIL verdict (not a hang or crash).
fn expect_no_vtx_failure(run: &common::Booted) {
    run.assert_line_starting_with(BANNER_PREFIX, "banner");
    run.assert_line_starting_with(NO_VTX_PREFIX, "no-VT-x error");
    if !matches!(run.outcome.verdict, Verdict::Fail { .. }) {
        run.fail("the hypervisor should end with a `hypervisor: verdict FAIL: ...` line");
    }
    run.assert_failed();
}

#[test]
fn timeout_kills_the_emulator() {
    // Far too short for any boot: Bochs' BIOS alone takes longer.
    let timeout = Duration::from_millis(200);
    let run = common::boot("Bochs with a 0.2 s timeout", &common::options(EmulatorChoice::Bochs, false, timeout));
    if run.outcome.ending != (Ending::TimedOut { after: timeout }) {
        run.fail(&format!("the run should have timed out, but it ended as {:?}", run.outcome.ending));
    }
    if run.outcome.verdict != Verdict::Missing {
        run.fail("a run killed by the timeout has no verdict");
    }
    run.assert_failed();
    if !run.outcome.summary().contains("timeout") {
        run.fail("the summary should name the timeout");
    }
    if let Some(pid) = process_working_in(&run.outcome.run_dir) {
        run.fail(&format!("process {pid} still runs in the run directory: the emulator was not killed"));
    }
}

/// A process whose working directory is `dir` (the emulators run there).
fn process_working_in(dir: &Path) -> Option<u32> {
    let entries = std::fs::read_dir("/proc").ok()?;
    entries.flatten().find_map(|entry| {
        let pid: u32 = entry.file_name().to_str()?.parse().ok()?;
        let cwd = std::fs::read_link(entry.path().join("cwd")).ok()?;
        (cwd == dir).then_some(pid)
    })
}
