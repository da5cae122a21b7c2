//! `hostile_cpu`: a guest that never gives the CPU back.
//!
//! It turns interrupts off and jumps to itself forever: `cli; jmp $`. A
//! guest cannot disable the hypervisor's hold on the CPU this way, because
//! the VMX-preemption timer counts down in VMX non-root operation whatever
//! the guest's RFLAGS.IF says, and causes a VM exit when it reaches zero
//! (SDM Vol. 3C, 26.5.1 "VMX-Preemption Timer"). The hypervisor then
//! switches to another guest, and once this one has used its CPU-time budget
//! (its configuration's `budget_ticks`) it is stopped for good: the expected
//! outcome is `over-budget`.
//!
//! Nothing after the loop is ever reached; if the loop ended anyway, the
//! guest would exit with status 1, which fails the run.
#![no_std]
#![no_main]
#![deny(unsafe_op_in_unsafe_fn)]

use core::arch::asm;

use guest_rt::{exit, println};

guest_rt::entry!(main);

/// Announces itself, then spins with interrupts off.
fn main() -> ! {
    println!("hostile_cpu: cli; jmp $ forever: only the preemption timer can take the CPU back");
    // SAFETY: an endless loop touches nothing; CLI only affects this guest's
    // own RFLAGS.IF (interrupts are off from the start anyway).
    unsafe { asm!("cli", "2:", "jmp 2b", options(nomem, nostack)) };
    println!("FAIL: the endless loop ended");
    exit(1)
}
