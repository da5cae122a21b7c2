//! `exceptions`: a 64-bit guest with its own IDT that raises the common
//! exceptions itself and checks what its handlers receive.
//!
//! | exception | raised by | vector | error code | saved RIP |
//! |---|---|---|---|---|
//! | #DE divide error | `div ecx` with ECX = 0 | 0 | none | the `div` (a fault) |
//! | #BP breakpoint | `int3` | 3 | none | the instruction *after* `int3` (a trap) |
//! | #UD invalid opcode | `ud2` | 6 | none | the `ud2` |
//! | #PF page fault | a load from 64 GiB (not mapped) | 14 | 0x0: not present, read, supervisor | the load; CR2 = the address |
//! | #PF page fault | a store to 64 GiB | 14 | 0x2: not present, write | the store; CR2 = the address |
//! | #GP general protection | a load from a non-canonical address | 13 | 0 | the load |
//! | #GP general protection | `int 0x80`, beyond the IDT's 32 gates | 13 | 0x402: vector 0x80, IDT bit | the `int` |
//!
//! Vectors and error codes: SDM Vol. 3A, 6.15 "Exception and Interrupt
//! Reference"; faults versus traps: 6.5 "Exception Classifications"; the
//! page-fault error code: 4.7 "Page-Fault Exceptions"; the IDT bit of an
//! error code: 6.13 "Error Code".
//!
//! The IDT is guest-rt's (`idt::install`): 32 interrupt gates whose handlers
//! record vector, error code and RIP. The hypervisor's exception bitmap is
//! 0, so every exception here goes straight from the CPU to this guest's
//! handlers without a VM exit; once the hypervisor intercepts exceptions
//! (for a virtual APIC or a debugger), this payload checks that it still
//! delivers them unchanged.
//!
//! One line per check, then `checks: N passed, M failed`; the exit status is
//! the number of failed checks.
#![no_std]
#![no_main]
#![deny(unsafe_op_in_unsafe_fn)]

use core::arch::asm;

use guest_rt::checks::{expect_exception, Attempt, Checks};
use guest_rt::idt::{self, Fault, GENERAL_PROTECTION, INVALID_OPCODE, PAGE_FAULT};
use guest_rt::privileged::{attempt_instruction, read_cr2, Instruction};
use guest_rt::{exit, println};

guest_rt::entry!(main);

/// #DE.
const DIVIDE_ERROR: u8 = 0;
/// #BP.
const BREAKPOINT: u8 = 3;

/// 64 GiB: above the 4 GiB the hypervisor's identity paging maps for a small
/// guest, so its page-directory-pointer entry is not present.
const UNMAPPED: u64 = 0x10_0000_0000;
/// Bits 63:47 not all equal: not canonical (SDM Vol. 3A, 3.3.7.1 "Canonical
/// Addressing").
const NON_CANONICAL: u64 = 0x8000_0000_0000_0000;

/// Page-fault error code bit 1: the access was a write.
const PF_WRITE: u64 = 1 << 1;
/// A #GP error code that names an IDT vector: index << 3 | IDT bit (bit 1).
const fn idt_error_code(vector: u64) -> u64 {
    (vector << 3) | 0b10
}

/// The program: install the IDT, raise each exception, report, exit.
fn main() -> ! {
    println!("exceptions: #DE, #BP, #UD, #PF and #GP through this guest's own IDT");
    idt::install();
    let mut checks = Checks::new();

    expect_exception(&mut checks, "div ecx with ecx = 0", divide_by_zero(), DIVIDE_ERROR, None);
    breakpoint(&mut checks);
    expect_exception(&mut checks, "ud2", attempt_instruction(Instruction::Ud2), INVALID_OPCODE, None);
    page_fault(&mut checks, "load from 64 GiB (not mapped)", load(UNMAPPED), 0);
    page_fault(&mut checks, "store to 64 GiB (not mapped)", store(UNMAPPED), PF_WRITE);
    expect_exception(
        &mut checks,
        format_args!("load from non-canonical {NON_CANONICAL:#x}"),
        load(NON_CANONICAL),
        GENERAL_PROTECTION,
        Some(0),
    );
    expect_exception(
        &mut checks,
        "int 0x80 (beyond the IDT limit)",
        int_0x80(),
        GENERAL_PROTECTION,
        Some(idt_error_code(0x80)),
    );

    checks.report();
    exit(checks.failed())
}

/// #BP is a trap: the saved RIP is the instruction after `int3` (one byte).
fn breakpoint(checks: &mut Checks) {
    let attempt = int3();
    let want = Fault { vector: BREAKPOINT, error_code: None, rip: attempt.at + 1 };
    match attempt.result {
        Err(fault) if fault == want => checks.pass("int3", "#BP, RIP after the int3"),
        Err(fault) => checks
            .fail("int3", format_args!("{fault} at rip {:#x} (expected #BP at rip {:#x})", fault.rip, attempt.at + 1)),
        Ok(_) => checks.fail("int3", "no exception (expected #BP)"),
    }
}

/// Checks a #PF: vector 14, `error_code`, the faulting instruction's RIP,
/// and CR2 = [`UNMAPPED`].
fn page_fault(checks: &mut Checks, what: &str, attempt: Attempt<u64>, error_code: u64) {
    let at = attempt.at;
    let allowed = expect_exception(checks, what, attempt, PAGE_FAULT, Some(error_code));
    if allowed {
        return;
    }
    let cr2 = read_cr2();
    checks.check(
        format_args!("{what}: CR2"),
        cr2 == UNMAPPED,
        format_args!("{cr2:#x}"),
        format_args!("{cr2:#x} (expected {UNMAPPED:#x}; the fault was at rip {at:#x})"),
    );
}

/// `div ecx` with EDX:EAX = 1 and ECX = 0.
fn divide_by_zero() -> Attempt<u64> {
    let mut at = 0;
    let fault = idt::expect_fault(|| {
        // SAFETY: the division faults (caught by expect_fault) before it
        // writes EAX/EDX, which are declared clobbered anyway; the store
        // writes only `at`.
        unsafe {
            asm!(
                "lea {scratch}, [rip + 2f]",
                "mov [{at}], {scratch}",
                "2:",
                "div ecx",
                at = in(reg) &raw mut at,
                scratch = out(reg) _,
                inout("eax") 1u32 => _,
                inout("edx") 0u32 => _,
                in("ecx") 0u32,
                options(nostack),
            );
        }
    });
    Attempt { result: fault.map_or(Ok(0), Err), at }
}

/// `int3`.
fn int3() -> Attempt<u64> {
    let mut at = 0;
    let fault = idt::expect_fault(|| {
        // SAFETY: INT3 raises #BP, caught by expect_fault; the store writes only `at`.
        unsafe {
            asm!(
                "lea {scratch}, [rip + 2f]",
                "mov [{at}], {scratch}",
                "2:",
                "int3",
                at = in(reg) &raw mut at,
                scratch = out(reg) _,
                options(nostack),
            );
        }
    });
    Attempt { result: fault.map_or(Ok(0), Err), at }
}

/// `int 0x80`: the IDT has 32 gates, so the vector lies beyond its limit.
fn int_0x80() -> Attempt<u64> {
    let mut at = 0;
    let fault = idt::expect_fault(|| {
        // SAFETY: the vector is beyond the IDT limit, so the CPU raises
        // #GP(0x402) instead (caught by expect_fault); the store writes only `at`.
        unsafe {
            asm!(
                "lea {scratch}, [rip + 2f]",
                "mov [{at}], {scratch}",
                "2:",
                "int 0x80",
                at = in(reg) &raw mut at,
                scratch = out(reg) _,
                options(nostack),
            );
        }
    });
    Attempt { result: fault.map_or(Ok(0), Err), at }
}

/// A 64-bit load from `address`.
fn load(address: u64) -> Attempt<u64> {
    let mut at = 0;
    let mut value = 0;
    let fault = idt::expect_fault(|| {
        let read: u64;
        // SAFETY: the addresses used are not mapped (or not canonical), so
        // the load faults and expect_fault catches it; the store writes only `at`.
        unsafe {
            asm!(
                "lea {scratch}, [rip + 2f]",
                "mov [{at}], {scratch}",
                "2:",
                "mov {value}, qword ptr [{address}]",
                at = in(reg) &raw mut at,
                scratch = out(reg) _,
                address = in(reg) address,
                value = out(reg) read,
                options(nostack, preserves_flags),
            );
        }
        value = read;
    });
    Attempt { result: fault.map_or(Ok(value), Err), at }
}

/// A 64-bit store to `address`.
fn store(address: u64) -> Attempt<u64> {
    let mut at = 0;
    let fault = idt::expect_fault(|| {
        // SAFETY: as in `load`: the address is not mapped, so the store
        // faults before it writes anything.
        unsafe {
            asm!(
                "lea {scratch}, [rip + 2f]",
                "mov [{at}], {scratch}",
                "2:",
                "mov qword ptr [{address}], {scratch}",
                at = in(reg) &raw mut at,
                scratch = out(reg) _,
                address = in(reg) address,
                options(nostack, preserves_flags),
            );
        }
    });
    Attempt { result: fault.map_or(Ok(0), Err), at }
}
