//! `control_regs`: a 64-bit guest that checks which writes to the control
//! registers the hypervisor allows, and how it answers the instructions that
//! exit unconditionally but have no use in a guest.
//!
//! 1. CR0 and CR4 (`src/cr.rs`): the read shadows hide what VMX fixes
//!    (CR4.VMXE) and show what the guest wrote (CR0.NE); writes that change
//!    an owned bit exit and are emulated or refused with #GP(0).
//! 2. XCR0 (`src/xcr.rs`): CR4.OSXSAVE, then XSETBV, which always exits and
//!    is checked against CPUID leaf 0xD; XGETBV reads the result back.
//! 3. Instructions (`src/instructions.rs`): INVD (exits, emulated as a
//!    no-op), WBINVD (allowed), VMXOFF, VMCLEAR and VMPTRLD (exit, #UD).
//!
//! Every instruction that may fault runs under guest-rt's
//! `idt::expect_fault`. One line per check, then `checks: N passed, M
//! failed`; the exit status is the number of failed checks. Only values the
//! hypervisor fixes are printed, so the output is the same on every machine.
#![no_std]
#![no_main]
#![deny(unsafe_op_in_unsafe_fn)]

mod cr;
mod instructions;
mod xcr;

use guest_rt::checks::Checks;
use guest_rt::idt;
use guest_rt::{exit, println};

guest_rt::entry!(main);

/// The program: install the IDT, run the three groups of checks, exit.
fn main() -> ! {
    println!("control_regs: MOV to CR0 and CR4, XSETBV, INVD/WBINVD and the VMX instructions");
    let mut checks = Checks::new();
    idt::install();
    cr::run(&mut checks);
    xcr::run(&mut checks);
    instructions::run(&mut checks);
    checks.report();
    exit(checks.failed())
}
