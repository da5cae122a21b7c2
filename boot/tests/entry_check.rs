//! The software VM-entry checker against Bochs' own checks (`--break-entry`):
//! the kernel corrupts the first guest's VMCS to break one rule, prints the
//! software diagnosis, launches anyway, and the hardware (Bochs) answers.
//!
//! - `rflags_bit_1_cleared`: a guest-state rule (SDM Vol. 3C, 27.3.1.4
//!   "Checks on Guest RIP, RFLAGS, and SSP"): VM exit 33, and Bochs logs
//!   `VMENTER FAIL: RFLAGS[1] cleared`.
//! - `host_selector_rpl`: a host-state rule (27.2.3 "Checks on Host Segment
//!   and Descriptor-Table Registers"): VMLAUNCH fails with VMfailValid 8.
//! - `link_pointer_not_all_ones`: 27.3.1.5 "Checks on Guest Non-Register
//!   State": VM exit 33 with exit qualification 4 ("VMCS link pointer").

mod common;

use hypervisor_core::entry_check::EntryRule;

/// Boots hello64 in Bochs with `rule` broken; the run must fail (a crash).
fn boot_broken(rule: EntryRule) -> common::Booted {
    let mut options = common::bochs_options(&["hello64"]);
    options.break_entry = rule.id();
    let run = common::boot(&format!("Bochs, hello64 breaking entry rule {}", rule.name()), &options);
    run.assert_failed();
    run
}

/// Asserts the kernel's software diagnosis: `[hv ERROR] hello64: entry check: <rule> ... [rule N]`,
/// printed before the launch and again after the failed entry.
fn assert_diagnosis(run: &common::Booted, rule: EntryRule, values: &str) {
    let expected_start = format!("[hv ERROR] hello64: entry check: {rule}: {values}");
    let expected_end = format!("[rule {}]", rule.id());
    let count = run.lines().filter(|line| line.starts_with(&expected_start) && line.ends_with(&expected_end)).count();
    if count != 2 {
        run.fail(&format!(
            "expected the software diagnosis {expected_start:?} ... {expected_end:?} twice (before the launch and after \
             the failed entry), found it {count} times"
        ));
    }
    run.assert_hv_line_containing(&format!("--break-entry: broke rule {} ({})", rule.id(), rule.name()), "break line");
}

#[test]
fn rflags_bit_1_cleared() {
    let run = boot_broken(EntryRule::RflagsReserved);
    assert_diagnosis(&run, EntryRule::RflagsReserved, "RFLAGS = 0x0");
    run.assert_hv_line_containing(
        "hello64: stopped: VM entry failed: VM-entry failure due to invalid guest state (qualification 0x0)",
        "hardware's answer (exit 33)",
    );
    if !run.outcome.vmenter_failures.iter().any(|line| line.contains("VMENTER FAIL: RFLAGS[1] cleared")) {
        run.fail("Bochs should log `VMENTER FAIL: RFLAGS[1] cleared`");
    }
}

#[test]
fn host_selector_rpl() {
    let run = boot_broken(EntryRule::HostSelectorRplTi);
    assert_diagnosis(
        &run,
        EntryRule::HostSelectorRplTi,
        "selector index (ES CS SS DS FS GS TR) = 0x2, selector = 0x13",
    );
    run.assert_hv_line_containing(
        "hello64: stopped: VM entry failed: VMLAUNCH failed: VMfailValid (error 8: VM entry with invalid host-state field(s))",
        "hardware's answer (VMfailValid 8)",
    );
}

#[test]
fn link_pointer_not_all_ones() {
    let run = boot_broken(EntryRule::LinkPointer);
    assert_diagnosis(&run, EntryRule::LinkPointer, "VMCS link pointer = 0x0");
    run.assert_hv_line_containing(
        "hello64: stopped: VM entry failed: VM-entry failure due to invalid guest state (qualification 0x4)",
        "hardware's answer (exit 33, qualification 4)",
    );
}
