//! The CR0 and CR4 checks.
//!
//! For each of CR0 and CR4 the hypervisor sets a guest/host mask (the bits it
//! owns: those VMX fixes to 0 or 1) and a read shadow (SDM Vol. 3C, 25.6.6
//! "Guest/Host Masks and Read Shadows for CR0 and CR4"):
//!
//! - A MOV *from* CR0/CR4 never exits: for an owned bit the guest reads the
//!   shadow, for the others the real register. So the guest does not see
//!   CR4.VMXE, which VMX operation requires to be 1.
//! - A MOV *to* CR0/CR4 exits only when it would give an owned bit a value
//!   different from the shadow (SDM Vol. 3C, 26.1.3 "Instructions That Cause
//!   VM Exits Conditionally"). The hypervisor then does the whole write in
//!   software (`hypervisor_core::control_registers`): CR0.NE, fixed to 1 in
//!   VMX operation, may be cleared in the shadow while the CPU keeps it set;
//!   a CR4 write that exits sets VMXE or a bit this CPU does not have, and is
//!   refused with #GP(0).
//! - Any other MOV to CR0/CR4 runs on the CPU, which checks it as on bare
//!   metal.
//!
//! So the refused CR0 writes come in pairs: the same invalid value once as
//! is (no owned bit changes: the CPU refuses it) and once with NE flipped
//! (the write exits: the hypervisor must refuse it). Both must end in #GP(0)
//! at the MOV, with CR0 unchanged.

use guest_rt::checks::{expect_gp, Attempt, Checks};
use guest_rt::privileged::{self, read_cr0, read_cr4};

/// CR0.NE (bit 5), numeric error: fixed to 1 in VMX operation
/// (IA32_VMX_CR0_FIXED0), so owned by the hypervisor.
const CR0_NE: u64 = 1 << 5;
/// CR0.NW (bit 29), not write-through.
const CR0_NW: u64 = 1 << 29;
/// CR0.CD (bit 30), cache disable. NW=1 with CD=0 is an invalid combination
/// (SDM Vol. 3A, 2.5 "Control Registers").
const CR0_CD: u64 = 1 << 30;
/// CR4.VMXE (bit 13), VMX enable: fixed to 1 in VMX operation
/// (IA32_VMX_CR4_FIXED0), hidden by the read shadow.
const CR4_VMXE: u64 = 1 << 13;
/// CR4 bit 15: reserved (SDM Vol. 3A, 2.5, Figure 2-7 "Control Registers"),
/// so 0 in IA32_VMX_CR4_FIXED1 and owned by the hypervisor.
const CR4_RESERVED_BIT_15: u64 = 1 << 15;
/// Bit 32: CR0 and CR4 bits 63:32 are reserved; setting one raises #GP(0).
/// The guest/host masks cover only bits 31:0, so such a write does not exit
/// by itself.
const BIT_32: u64 = 1 << 32;

/// Runs the CR4 checks, then the CR0 checks. Needs the IDT installed.
pub fn run(checks: &mut Checks) {
    cr4(checks);
    cr0(checks);
}

/// CR4: VMXE hidden; VMXE, a reserved bit and a high bit refused.
fn cr4(checks: &mut Checks) {
    let cr4 = read_cr4();
    checks.check(
        "mov from cr4: VMXE (bit 13)",
        cr4 & CR4_VMXE == 0,
        "clear (the read shadow)",
        format_args!("set in {cr4:#x} (expected clear: the read shadow hides it)"),
    );

    let refused = [
        ("mov cr4, cr4 | VMXE (bit 13)", cr4 | CR4_VMXE),
        ("mov cr4, cr4 | reserved bit 15", cr4 | CR4_RESERVED_BIT_15),
        ("mov cr4, cr4 | bit 32", cr4 | BIT_32),
    ];
    for (what, value) in refused {
        if expect_gp(checks, what, write_cr4(value)) {
            // Best effort: the failed check above already says what went wrong.
            let _ = write_cr4(cr4);
        }
    }

    let after = read_cr4();
    checks.check(
        "mov from cr4 after the refused writes",
        after == cr4,
        "unchanged",
        format_args!("{after:#x} (expected {cr4:#x})"),
    );
}

/// CR0: NE as the guest sees it, cleared and set again (emulated), invalid
/// values refused with and without a VM exit.
fn cr0(checks: &mut Checks) {
    let cr0 = read_cr0();
    checks.check(
        "mov from cr0: NE (bit 5)",
        cr0 & CR0_NE != 0,
        "set",
        format_args!("clear in {cr0:#x} (expected set: the start state has it)"),
    );

    write_and_read_back(checks, "mov cr0, cr0 & !NE", cr0 & !CR0_NE, "NE=0");
    write_and_read_back(checks, "mov cr0, cr0 | NE", cr0 | CR0_NE, "NE=1");

    let refused = [
        ("mov cr0, cr0 | NW (bit 29), CD=0", (cr0 | CR0_NW) & !CR0_CD),
        ("mov cr0, (cr0 & !NE) | NW (bit 29), CD=0", ((cr0 & !CR0_NE) | CR0_NW) & !CR0_CD),
        ("mov cr0, cr0 | bit 32", cr0 | BIT_32),
        ("mov cr0, (cr0 & !NE) | bit 32", (cr0 & !CR0_NE) | BIT_32),
    ];
    for (what, value) in refused {
        if expect_gp(checks, what, write_cr0(value)) {
            // Best effort: the failed check above already says what went wrong.
            let _ = write_cr0(cr0);
        }
    }

    let after = read_cr0();
    checks.check(
        "mov from cr0 after the refused writes",
        after == cr0,
        "unchanged",
        format_args!("{after:#x} (expected {cr0:#x})"),
    );
}

/// Writes `value` to CR0, which must be allowed, and checks that the guest
/// reads exactly `value` back: `ok: <what> -> allowed, reads back <shows>`.
fn write_and_read_back(checks: &mut Checks, what: &str, value: u64, shows: &str) {
    match write_cr0(value).result {
        Ok(_) => {
            let read = read_cr0();
            checks.check(
                what,
                read == value,
                format_args!("allowed, reads back {shows}"),
                format_args!("allowed, reads back {read:#x} (expected {value:#x})"),
            );
        }
        Err(fault) => checks.fail(what, format_args!("{fault} (expected allowed)")),
    }
}

/// MOV to CR0 through guest-rt.
fn write_cr0(value: u64) -> Attempt<u64> {
    // SAFETY: every value this module writes keeps PE, PG and WP as they
    // are, so the guest keeps running in the same mode and address space.
    unsafe { privileged::write_cr0(value) }
}

/// MOV to CR4 through guest-rt.
pub fn write_cr4(value: u64) -> Attempt<u64> {
    // SAFETY: every value this payload writes keeps PAE (and the paging
    // mode) as it is; the only bit it sets for good is OSXSAVE, which merely
    // enables XGETBV/XSETBV.
    unsafe { privileged::write_cr4(value) }
}
