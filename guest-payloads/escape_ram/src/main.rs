//! `escape_ram`: a 64-bit guest that writes just past the end of its RAM.
//!
//! The hypervisor's guest page tables identity-map the low 4 GiB, more than
//! the guest's RAM, so the guest's own paging lets the write through; the
//! guest-physical address is then translated by EPT, which maps exactly the
//! guest's RAM. The write to guest-physical `RamSize` (from the `info`
//! hypercall) therefore causes an EPT violation (SDM Vol. 3C, 29.3.3.2 "EPT
//! Violations"), a VM exit after which the hypervisor must stop the guest and
//! report it. Should the write ever complete, the guest says so and exits
//! with status 1.
#![no_std]
#![no_main]
#![deny(unsafe_op_in_unsafe_fn)]

use core::arch::asm;

use guest_rt::hypercall::{self, InfoKey};
use guest_rt::{exit, println};

guest_rt::entry!(main);

/// What the guest tries to write: easy to spot in a memory dump.
const MARKER: u64 = 0xDEAD_BEEF_0BAD_F00D;

/// Reports the RAM size, then writes a `u64` at guest-physical `RamSize`.
fn main() -> ! {
    let ram_size = match hypercall::info(InfoKey::RamSize) {
        Ok(size) => size,
        Err(error) => {
            println!("FAIL: info(RamSize) -> {error:?}");
            exit(1)
        }
    };
    println!("RAM size: {ram_size:#x} bytes");
    println!("writing just past the end of RAM");
    // The store is an `asm!` rather than `ptr::write_volatile`: the address
    // belongs to no Rust object, so only an instruction the compiler cannot
    // reason about expresses "touch this physical address" without
    // undefined behavior.
    //
    // SAFETY: the address lies outside guest RAM, so the store can change
    // nothing we own; the hypervisor stops the guest at the EPT violation.
    unsafe {
        asm!(
            "mov qword ptr [{address}], {value}",
            address = in(reg) ram_size,
            value = in(reg) MARKER,
            options(nostack, preserves_flags),
        );
    }
    println!("FAIL: the write past RAM returned");
    exit(1)
}
