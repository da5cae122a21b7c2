//! Port I/O: the `in` and `out` instructions the UART and the exit port use.
//!
//! Every `in` and `out` a payload executes causes a VM exit (SDM Vol. 3C,
//! 26.1.3 "Instructions That Cause VM Exits Conditionally": I/O instructions
//! with "unconditional I/O exiting" or a set bit in the I/O bitmaps) and is
//! emulated by the hypervisor's device model.

use core::arch::asm;

/// Writes one byte to an I/O port (`out dx, al`).
///
/// # Safety
/// Writing to an I/O port can have any effect the device behind it has.
#[inline(always)]
pub unsafe fn outb(port: u16, value: u8) {
    // SAFETY: the caller vouches for the port; the instruction touches no memory.
    unsafe { asm!("out dx, al", in("dx") port, in("al") value, options(nomem, nostack, preserves_flags)) };
}

/// Writes four bytes to an I/O port (`out dx, eax`).
///
/// # Safety
/// As [`outb`].
#[inline(always)]
pub unsafe fn outl(port: u16, value: u32) {
    // SAFETY: the caller vouches for the port; the instruction touches no memory.
    unsafe { asm!("out dx, eax", in("dx") port, in("eax") value, options(nomem, nostack, preserves_flags)) };
}

/// Reads one byte from an I/O port (`in al, dx`).
///
/// # Safety
/// Reading an I/O port can have side effects on the device behind it.
#[inline(always)]
pub unsafe fn inb(port: u16) -> u8 {
    let value: u8;
    // SAFETY: the caller vouches for the port; the instruction touches no memory.
    unsafe { asm!("in al, dx", out("al") value, in("dx") port, options(nomem, nostack, preserves_flags)) };
    value
}

/// Writes two bytes to an I/O port (`out dx, ax`).
///
/// # Safety
/// As [`outb`].
#[inline(always)]
pub unsafe fn outw(port: u16, value: u16) {
    // SAFETY: the caller vouches for the port; the instruction touches no memory.
    unsafe { asm!("out dx, ax", in("dx") port, in("ax") value, options(nomem, nostack, preserves_flags)) };
}

/// Reads two bytes from an I/O port (`in ax, dx`).
///
/// # Safety
/// As [`inb`].
#[inline(always)]
pub unsafe fn inw(port: u16) -> u16 {
    let value: u16;
    // SAFETY: the caller vouches for the port; the instruction touches no memory.
    unsafe { asm!("in ax, dx", out("ax") value, in("dx") port, options(nomem, nostack, preserves_flags)) };
    value
}

/// Reads four bytes from an I/O port (`in eax, dx`).
///
/// # Safety
/// As [`inb`].
#[inline(always)]
pub unsafe fn inl(port: u16) -> u32 {
    let value: u32;
    // SAFETY: the caller vouches for the port; the instruction touches no memory.
    unsafe { asm!("in eax, dx", out("eax") value, in("dx") port, options(nomem, nostack, preserves_flags)) };
    value
}
