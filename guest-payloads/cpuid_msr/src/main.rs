//! `cpuid_msr`: a 64-bit guest that checks what the hypervisor shows it
//! through CPUID and which model-specific registers it may use.
//!
//! 1. CPUID (`src/cpuid.rs`): every CPUID exits and the hypervisor filters
//!    the answer (`hypervisor_core::cpuid`); the guest checks the bits the
//!    filter fixes.
//! 2. The IDT (guest-rt's `idt`): installed, then tested with two faults the
//!    CPU raises by itself (`UD2`, a non-canonical load).
//! 3. MSRs (`src/msr.rs`): RDMSR/WRMSR of MSRs the hypervisor passes
//!    through, emulates, or refuses with #GP(0), and VMXON, which it answers
//!    with #UD.
//!
//! One line per check, then `checks: N passed, M failed`; the exit status
//! is the number of failed checks. Only values the hypervisor fixes are
//! printed, so the output is the same on every machine.
#![no_std]
#![no_main]
#![deny(unsafe_op_in_unsafe_fn)]

mod cpuid;
mod msr;

use core::arch::asm;

use guest_rt::checks::{expect_exception, Attempt, Checks};
use guest_rt::idt::{self, GENERAL_PROTECTION, INVALID_OPCODE};
use guest_rt::privileged::{attempt_instruction, Instruction};
use guest_rt::{exit, println};

guest_rt::entry!(main);

/// The program: CPUID checks, IDT self-test, MSR checks, exit.
fn main() -> ! {
    println!("cpuid_msr: what a guest sees through CPUID and the MSRs");
    let mut checks = Checks::new();
    cpuid::run(&mut checks);
    idt::install();
    idt_self_test(&mut checks);
    msr::run(&mut checks);
    checks.report();
    exit(checks.failed())
}

/// Shows that the IDT works before relying on it: a closure that does not
/// fault, and two faults the CPU raises itself (no VM exit involved: the
/// hypervisor's exception bitmap is 0), one without and one with an error
/// code.
fn idt_self_test(checks: &mut Checks) {
    let fault = idt::expect_fault(|| {});
    checks.check("expect_fault(no fault)", fault.is_none(), "None", format_args!("{fault:?} (expected None)"));

    expect_exception(checks, "ud2", attempt_instruction(Instruction::Ud2), INVALID_OPCODE, None);
    expect_exception(
        checks,
        format_args!("load from non-canonical {NON_CANONICAL:#x}"),
        load(NON_CANONICAL),
        GENERAL_PROTECTION,
        Some(0),
    );
}

/// An address with bits 63:47 not all equal: not canonical with 48-bit
/// linear addresses, so a load from it raises #GP(0) (SDM Vol. 3A, 3.3.7.1
/// "Canonical Addressing").
const NON_CANONICAL: u64 = 0x8000_0000_0000_0000;

/// Loads a quadword from `address` (which need not be memory we own: the
/// load is in `asm!`, where the compiler assumes nothing about it).
fn load(address: u64) -> Attempt<u64> {
    let mut at = 0;
    let mut value = 0;
    let fault = idt::expect_fault(|| {
        // SAFETY: the load only reads; a fault is caught by expect_fault.
        unsafe {
            asm!(
                "lea {scratch}, [rip + 2f]",
                "mov [{at}], {scratch}",
                "2:",
                "mov {scratch}, qword ptr [{address}]",
                "mov [{value}], {scratch}",
                at = in(reg) &raw mut at,
                address = in(reg) address,
                value = in(reg) &raw mut value,
                scratch = out(reg) _,
                options(nostack, preserves_flags),
            );
        }
    });
    Attempt { result: fault.map_or(Ok(value), Err), at }
}
