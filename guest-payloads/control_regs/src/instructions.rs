//! Instructions with a fixed answer: INVD and WBINVD, and the VMX
//! instructions.
//!
//! - INVD exits unconditionally (SDM Vol. 3C, 26.1.2 "Instructions That
//!   Cause VM Exits Unconditionally"). Discarding the caches without writing
//!   them back is harmless to skip for a guest whose memory is write-back, so
//!   the hypervisor emulates it as a no-op: it advances RIP past it.
//! - WBINVD exits only with the secondary control "WBINVD exiting" (SDM Vol.
//!   3C, 25.6.2 "Processor-Based VM-Execution Controls"), which this
//!   hypervisor leaves off: the CPU performs it. Had it exited, the answer
//!   would be the same (a no-op). Either way it must be allowed.
//! - VMXOFF, VMCLEAR and VMPTRLD exit unconditionally in VMX non-root
//!   operation (SDM Vol. 3C, 26.1.2). The hypervisor offers no nested VMX
//!   (CPUID hides VMX, CR4.VMXE cannot be set) and injects #UD, which leaves
//!   RIP at the instruction.

use core::arch::asm;

use guest_rt::checks::{expect_exception, Attempt, Checks};
use guest_rt::idt::{self, INVALID_OPCODE};

/// Runs the checks. Needs the IDT installed.
pub fn run(checks: &mut Checks) {
    expect_allowed(checks, "invd", invd());
    expect_allowed(checks, "wbinvd", wbinvd());
    expect_exception(checks, "vmxoff", vmxoff(), INVALID_OPCODE, None);
    expect_exception(checks, "vmclear [mem]", vmclear(), INVALID_OPCODE, None);
    expect_exception(checks, "vmptrld [mem]", vmptrld(), INVALID_OPCODE, None);
}

/// The instruction must run to completion: the code after it ran, so RIP
/// moved past it (an exit that forgot to advance RIP would run it forever).
fn expect_allowed(checks: &mut Checks, what: &str, attempt: Attempt<u64>) {
    match attempt.result {
        Ok(_) => checks.pass(what, "allowed, execution continues after it"),
        Err(fault) => checks.fail(what, format_args!("{fault} at rip {:#x} (expected allowed)", fault.rip)),
    }
}

/// INVD: invalidate the caches without writing them back.
fn invd() -> Attempt<u64> {
    let mut at = 0;
    let fault = idt::expect_fault(|| {
        // SAFETY: INVD exits unconditionally in VMX non-root operation, so it
        // never reaches the caches: the hypervisor skips it. The store writes
        // only `at`.
        unsafe {
            asm!(
                "lea {scratch}, [rip + 2f]",
                "mov [{at}], {scratch}",
                "2:",
                "invd",
                at = in(reg) &raw mut at,
                scratch = out(reg) _,
                options(nostack, preserves_flags),
            );
        }
    });
    Attempt { result: fault.map_or(Ok(0), Err), at }
}

/// WBINVD: write the caches back, then invalidate them.
fn wbinvd() -> Attempt<u64> {
    let mut at = 0;
    let fault = idt::expect_fault(|| {
        // SAFETY: WBINVD loses no data (it writes back first). The store
        // writes only `at`.
        unsafe {
            asm!(
                "lea {scratch}, [rip + 2f]",
                "mov [{at}], {scratch}",
                "2:",
                "wbinvd",
                at = in(reg) &raw mut at,
                scratch = out(reg) _,
                options(nostack, preserves_flags),
            );
        }
    });
    Attempt { result: fault.map_or(Ok(0), Err), at }
}

/// VMXOFF: leave VMX operation (no operand).
fn vmxoff() -> Attempt<u64> {
    let mut at = 0;
    let fault = idt::expect_fault(|| {
        // SAFETY: in VMX non-root operation VMXOFF exits; the hypervisor
        // injects #UD, caught by expect_fault.
        unsafe {
            asm!(
                "lea {scratch}, [rip + 2f]",
                "mov [{at}], {scratch}",
                "2:",
                "vmxoff",
                at = in(reg) &raw mut at,
                scratch = out(reg) _,
                options(nostack),
            );
        }
    });
    Attempt { result: fault.map_or(Ok(0), Err), at }
}

/// The memory operand of VMCLEAR and VMPTRLD: the physical address of a
/// VMCS. Never used: the hypervisor answers #UD before anything is read.
static VMCS_ADDRESS: u64 = 0;

/// VMCLEAR with a memory operand (the only form the instruction has).
fn vmclear() -> Attempt<u64> {
    let mut at = 0;
    let fault = idt::expect_fault(|| {
        // SAFETY: in VMX non-root operation VMCLEAR exits; the hypervisor
        // injects #UD, caught by expect_fault.
        unsafe {
            asm!(
                "lea {scratch}, [rip + 2f]",
                "mov [{at}], {scratch}",
                "2:",
                "vmclear qword ptr [{operand}]",
                at = in(reg) &raw mut at,
                scratch = out(reg) _,
                operand = in(reg) &raw const VMCS_ADDRESS,
                options(nostack),
            );
        }
    });
    Attempt { result: fault.map_or(Ok(0), Err), at }
}

/// VMPTRLD with a memory operand (the only form the instruction has).
fn vmptrld() -> Attempt<u64> {
    let mut at = 0;
    let fault = idt::expect_fault(|| {
        // SAFETY: in VMX non-root operation VMPTRLD exits; the hypervisor
        // injects #UD, caught by expect_fault.
        unsafe {
            asm!(
                "lea {scratch}, [rip + 2f]",
                "mov [{at}], {scratch}",
                "2:",
                "vmptrld qword ptr [{operand}]",
                at = in(reg) &raw mut at,
                scratch = out(reg) _,
                operand = in(reg) &raw const VMCS_ADDRESS,
                options(nostack),
            );
        }
    });
    Attempt { result: fault.map_or(Ok(0), Err), at }
}
