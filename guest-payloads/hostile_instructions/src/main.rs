//! `hostile_instructions`: a guest that tries to take over VMX or to put the
//! CPU into a state the architecture forbids.
//!
//! Every attempt must fault *in this guest*, with the vector the
//! architecture gives, at the instruction itself, and leave the guest
//! running:
//!
//! | attempt | why it must fail | expected |
//! |---|---|---|
//! | VMXON, VMPTRLD, VMLAUNCH, VMRESUME, VMREAD, VMWRITE, INVEPT, INVVPID | they exit unconditionally in VMX non-root operation (SDM Vol. 3C, 26.1.2); the hypervisor offers no nested VMX | #UD |
//! | XSETBV XCR0 = 0, 0x2 (SSE without x87), 0x5 (AVX without SSE), bit 63; XCR1 | illegal XCR0 values or no such register (SDM Vol. 1, 13.3 "Enabling the XSAVE Feature Set") | #GP(0) |
//! | MOV to CR0 with PG=1, PE=0 | paging without protection (SDM Vol. 3A, 2.5 "Control Registers") | #GP(0) |
//! | MOV to CR0 with CD=0, NW=1 | an invalid cache combination | #GP(0) |
//! | MOV to CR0 with PG=0 in 64-bit mode | leaving long mode without leaving 64-bit code first (SDM Vol. 3A, 10.8.5.4) | #GP(0) |
//! | MOV to CR0 setting bit 32 | bits 63:32 are reserved | #GP(0) |
//! | MOV to CR4 setting VMXE | VMX is the hypervisor's (the bit is owned and hidden) | #GP(0) |
//! | MOV to CR4 setting reserved bit 15, or bit 32 | reserved | #GP(0) |
//! | MOV to CR4 clearing PAE in long mode | forbidden while IA-32e mode is active | #GP(0) |
//!
//! The instructions come from guest-rt's `privileged` module (shared with
//! `control_regs` and `cpuid_msr`, which check the allowed cases). One line
//! per check, then `checks: N passed, M failed`; the exit status is the
//! number of failed checks. A write that is wrongly allowed is undone at
//! once where possible.
#![no_std]
#![no_main]
#![deny(unsafe_op_in_unsafe_fn)]

use guest_rt::checks::{expect_exception, expect_gp, Attempt, Checks};
use guest_rt::idt::{self, INVALID_OPCODE};
use guest_rt::privileged::{self, attempt_instruction, read_cr0, read_cr4, Instruction};
use guest_rt::{exit, println};

guest_rt::entry!(main);

/// The VMX instructions a guest might use to build a hypervisor of its own.
const VMX_INSTRUCTIONS: [Instruction; 8] = [
    Instruction::Vmxon,
    Instruction::Vmptrld,
    Instruction::Vmlaunch,
    Instruction::Vmresume,
    Instruction::Vmread,
    Instruction::Vmwrite,
    Instruction::Invept,
    Instruction::Invvpid,
];

/// CR0.PE (bit 0), protection enable.
const CR0_PE: u64 = 1 << 0;
/// CR0.NW (bit 29), not write-through.
const CR0_NW: u64 = 1 << 29;
/// CR0.CD (bit 30), cache disable.
const CR0_CD: u64 = 1 << 30;
/// CR0.PG (bit 31), paging.
const CR0_PG: u64 = 1 << 31;
/// CR4.PAE (bit 5).
const CR4_PAE: u64 = 1 << 5;
/// CR4.VMXE (bit 13).
const CR4_VMXE: u64 = 1 << 13;
/// CR4 bit 15: reserved.
const CR4_RESERVED_BIT_15: u64 = 1 << 15;
/// CR4.OSXSAVE (bit 18): enables XSETBV/XGETBV.
const CR4_OSXSAVE: u64 = 1 << 18;
/// Bit 32: reserved in CR0 and CR4.
const BIT_32: u64 = 1 << 32;

/// Illegal XSETBV operands: (register, value, why).
const ILLEGAL_XSETBV: [(u32, u64, &str); 5] = [
    (0, 0x0, "x87 cleared"),
    (0, 0x2, "SSE without x87"),
    (0, 0x5, "AVX without SSE"),
    (0, 0x8000_0000_0000_0001, "bit 63"),
    (1, 0x1, "XCR1: no such register"),
];

/// The program.
fn main() -> ! {
    println!("hostile_instructions: VMX instructions, illegal XSETBV, invalid CR0/CR4 writes");
    idt::install();
    let mut checks = Checks::new();

    for instruction in VMX_INSTRUCTIONS {
        expect_exception(&mut checks, instruction.mnemonic(), attempt_instruction(instruction), INVALID_OPCODE, None);
    }
    xsetbv(&mut checks);
    cr0(&mut checks);
    cr4(&mut checks);

    checks.report();
    exit(checks.failed())
}

/// XSETBV with illegal values, after turning CR4.OSXSAVE on (without it,
/// XSETBV is #UD before any VM exit).
fn xsetbv(checks: &mut Checks) {
    let cr4 = read_cr4();
    if let Err(fault) = write_cr4(cr4 | CR4_OSXSAVE).result {
        checks.fail("mov cr4, cr4 | OSXSAVE", format_args!("{fault} (expected allowed)"));
        return;
    }
    for (register, value, why) in ILLEGAL_XSETBV {
        // SAFETY: the values are illegal and must be refused; were one
        // accepted, this payload uses no x87/SSE/AVX state (soft-float).
        let attempt = unsafe { privileged::xsetbv(register, value) };
        if expect_gp(checks, format_args!("xsetbv XCR{register} = {value:#x} ({why})"), attempt) {
            // SAFETY: x87 alone is always a legal XCR0.
            let _ = unsafe { privileged::xsetbv(0, 1) };
        }
    }
}

/// The invalid CR0 values, each derived from the current CR0.
fn cr0(checks: &mut Checks) {
    let cr0 = read_cr0();
    let cases = [
        ((cr0 & !CR0_PE) | CR0_PG, "PG without PE"),
        ((cr0 & !CR0_CD) | CR0_NW, "NW with CD=0"),
        (cr0 & !CR0_PG, "PG cleared in 64-bit mode"),
        (cr0 | BIT_32, "bit 32"),
    ];
    for (value, why) in cases {
        if expect_gp(checks, format_args!("mov cr0, {value:#x} ({why})"), write_cr0(value)) {
            let _ = write_cr0(cr0);
        }
    }
    let after = read_cr0();
    checks.check(
        "mov from cr0 after the refused writes",
        after == cr0,
        "unchanged",
        format_args!("{after:#x} (was {cr0:#x})"),
    );
}

/// The invalid CR4 values.
fn cr4(checks: &mut Checks) {
    let cr4 = read_cr4();
    let cases = [
        (cr4 | CR4_VMXE, "VMXE"),
        (cr4 | CR4_RESERVED_BIT_15, "reserved bit 15"),
        (cr4 | BIT_32, "bit 32"),
        (cr4 & !CR4_PAE, "PAE cleared in long mode"),
    ];
    for (value, why) in cases {
        if expect_gp(checks, format_args!("mov cr4, {value:#x} ({why})"), write_cr4(value)) {
            let _ = write_cr4(cr4);
        }
    }
    let after = read_cr4();
    checks.check(
        "mov from cr4 after the refused writes",
        after == cr4,
        "unchanged",
        format_args!("{after:#x} (was {cr4:#x})"),
    );
}

/// MOV to CR0 through guest-rt.
fn write_cr0(value: u64) -> Attempt<u64> {
    // SAFETY: every value written is invalid and must be refused; a value
    // that gets through anyway is undone at once by the caller (if the guest
    // survives it, which is the point of the test).
    unsafe { privileged::write_cr0(value) }
}

/// MOV to CR4 through guest-rt.
fn write_cr4(value: u64) -> Attempt<u64> {
    // SAFETY: as for `write_cr0`; the one legal value written, OSXSAVE,
    // only enables XSETBV/XGETBV.
    unsafe { privileged::write_cr4(value) }
}
