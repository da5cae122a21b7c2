//! The capability explorer (`cargo run -- --caps`) in Bochs: the kernel reads
//! every VMX capability MSR of the emulated CPU (Bochs' default model,
//! `corei7_icelake_u`), prints them decoded bit by bit, and powers off with a
//! PASS verdict without running any guest (the guests are still packed into
//! the boot blob).
//!
//! One boot, shared by the tests. The report's columns are padded with
//! spaces, so the lines are compared with runs of spaces squeezed to one.
//! Every assertion prints the whole serial output when it fails.

mod common;

use std::sync::OnceLock;

/// The prefix of the kernel's info lines.
const INFO: &str = "[hv INFO ] ";

/// The explorer run, shared by the tests.
fn caps_run() -> &'static common::Booted {
    static RUN: OnceLock<common::Booted> = OnceLock::new();
    RUN.get_or_init(|| {
        let mut options = common::bochs_options(&["hello64"]);
        options.caps_report = true;
        common::boot("Bochs boot with --caps", &options)
    })
}

/// `line` without the info prefix, runs of spaces squeezed to one; `None` for
/// any other line.
fn report_text(line: &str) -> Option<String> {
    let text = line.strip_prefix(INFO)?;
    Some(text.split_whitespace().collect::<Vec<_>>().join(" "))
}

/// Asserts that, after the section heading containing `section`, a report line
/// reads `expected` (squeezed) before the next heading.
#[track_caller]
fn assert_in_section(run: &common::Booted, section: &str, expected: &str) {
    let is_heading = |line: &str| report_text(line).is_some_and(|t| t.starts_with("== "));
    let (start, _) = run.assert_line_from(0, &format!("heading of the {section} section"), |line| {
        is_heading(line) && line.contains(section)
    });
    let found = run
        .lines()
        .skip(start + 1)
        .take_while(|line| !is_heading(line))
        .any(|line| report_text(line).as_deref() == Some(expected));
    if !found {
        run.fail(&format!("the {section} section has no line {expected:?}"));
    }
}

#[test]
fn control_bits_are_classified() {
    let run = caps_run();
    // Pin-based bit 1 is a default1 reserved bit: even the TRUE MSR forces it.
    assert_in_section(run, "pin-based VM-execution controls", "bit 1 reserved fixed-1");
    assert_in_section(
        run,
        "pin-based VM-execution controls",
        "read from MSR 0x48d IA32_VMX_TRUE_PINBASED_CTLS = 0x0000007f00000016 (SDM A.2, A.3.1)",
    );
    assert_in_section(run, "primary processor-based", "bit 7 HLT exiting flexible");
    assert_in_section(run, "secondary processor-based", "bit 1 Enable EPT flexible");
    assert_in_section(run, "secondary processor-based", "bit 7 Unrestricted guest flexible");
}

#[test]
fn ept_misc_and_cr_bits_are_decoded() {
    let run = caps_run();
    assert_in_section(run, "IA32_VMX_EPT_VPID_CAP", "bit 6 EPT: page-walk length 4 yes");
    assert_in_section(run, "IA32_VMX_EPT_VPID_CAP", "bit 17 EPT: 1-GiB pages (PDPTE) yes");
    assert_in_section(run, "IA32_VMX_MISC", "bits 24:16 CR3-target values 4");
    assert_in_section(run, "CR0 in VMX operation", "CR0 fixed to 1: PE (0), NE (5), PG (31)");
    assert_in_section(run, "CR4 in VMX operation", "CR4 fixed to 1: VMXE (13)");
}

#[test]
fn the_report_passes_and_no_guest_runs() {
    let run = caps_run();
    run.assert_exact_line(&format!("{INFO}== end of capability report =="));
    run.assert_passed();
    run.assert_last_line(common::PASS_LINE);
    // hello64 was packed but must not have run: none of its lines, no
    // verdict on it, and no VMXON.
    if let Some(line) = run.lines().find(|line| line.starts_with("[hello64]") || line.contains("hello64: ended")) {
        run.fail(&format!("a guest ran despite --caps: {line:?}"));
    }
    if let Some(line) = run.lines().find(|line| line.contains("VMXON done")) {
        run.fail(&format!("the explorer should not enter VMX operation: {line:?}"));
    }
}
