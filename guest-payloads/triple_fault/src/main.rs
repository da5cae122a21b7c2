//! `triple_fault`: a 64-bit guest that triple-faults on purpose.
//!
//! It loads an IDT with limit 0 (no descriptor fits in it) and executes
//! `UD2`. The processor then cannot deliver any exception:
//!
//! 1. `UD2` raises #UD (vector 6). Its gate lies beyond the IDT limit, which
//!    raises #GP (SDM Vol. 3A, 6.10 "Interrupt Descriptor Table (IDT)").
//! 2. #UD is a benign exception, so that #GP is delivered on its own; its gate
//!    (vector 13) lies beyond the limit too, so delivering it raises another
//!    #GP. A contributory exception while delivering a contributory one is a
//!    double fault (SDM Vol. 3A, 6.15 "Exception and Interrupt Reference",
//!    Interrupt 8, Table 6-5 "Conditions for Generating a Double Fault").
//! 3. The #DF gate (vector 8) lies beyond the limit as well. An exception
//!    while calling the double-fault handler is a triple fault, which in VMX
//!    non-root operation causes a VM exit (SDM Vol. 3C, 26.2 "Other Causes of
//!    VM Exits") unless the exception bitmap already turned one of the
//!    exceptions above into a VM exit.
//!
//! Either way the hypervisor must stop the guest and report it. Should
//! execution ever continue after `UD2`, the guest says so and exits with
//! status 1.
#![no_std]
#![no_main]
#![deny(unsafe_op_in_unsafe_fn)]

use core::arch::asm;

use guest_rt::{exit, println};

guest_rt::entry!(main);

/// The operand of `LIDT` in 64-bit mode: a 16-bit limit (the offset of the
/// table's last byte) and a 64-bit linear base address (SDM Vol. 3A, 6.10
/// "Interrupt Descriptor Table (IDT)", Figure 6-1 "Relationship of the IDTR
/// and IDT").
#[repr(C, packed)]
struct DescriptorTablePointer {
    limit: u16,
    base: u64,
}

/// Limit 0: the table is one byte long, too short for any 16-byte gate.
static EMPTY_IDT: DescriptorTablePointer = DescriptorTablePointer { limit: 0, base: 0 };

/// Announces the fault, then loads the empty IDT and executes `UD2`.
fn main() -> ! {
    println!("about to triple-fault");
    // SAFETY: LIDT reads the 10-byte EMPTY_IDT; UD2 then faults, and with no
    // usable IDT the fault ends the guest (see the crate documentation).
    // Nothing of ours is touched in between.
    unsafe {
        asm!(
            "lidt [{idtr}]",
            "ud2",
            idtr = in(reg) &raw const EMPTY_IDT,
            options(readonly, nostack, preserves_flags),
        );
    }
    println!("FAIL: execution continued after ud2");
    exit(1)
}
