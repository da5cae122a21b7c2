//! In-guest cost of a VM exit round trip, measured with the TSC through
//! `guest_rt::timing` (a loop of trapping instructions minus the same loop
//! without them, fastest of several batches: see that module). This file
//! only holds the two instruction sequences hello64 times.

use core::arch::asm;

use guest_rt::hypercall::Hypercall;
use guest_rt::timing::{self, Tenths};

/// `CPUID` leaf 0: exits unconditionally (SDM Vol. 3C, 26.1.2 "Instructions
/// That Cause VM Exits Unconditionally"). RBX, which CPUID overwrites, is
/// reserved by the compiler, so it is saved and restored around it.
#[inline(always)]
fn cpuid_leaf0() {
    // SAFETY: CPUID touches only the registers named here (RBX is restored).
    unsafe {
        asm!(
            "mov {saved_rbx}, rbx",
            "cpuid",
            "mov rbx, {saved_rbx}",
            saved_rbx = out(reg) _,
            inout("eax") 0u32 => _,
            inout("ecx") 0u32 => _,
            out("edx") _,
            options(nomem, nostack),
        );
    }
}

/// [`cpuid_leaf0`] without the `CPUID`: the same instructions and registers.
#[inline(always)]
fn cpuid_leaf0_skeleton() {
    // SAFETY: plain register moves.
    unsafe {
        asm!(
            "mov {saved_rbx}, rbx",
            "mov rbx, {saved_rbx}",
            saved_rbx = out(reg) _,
            inout("eax") 0u32 => _,
            inout("ecx") 0u32 => _,
            out("edx") _,
            options(nomem, nostack),
        );
    }
}

/// The null hypercall, inline: `VMCALL` with RAX = 0 (see `guest_rt::hypercall::vmcall`).
#[inline(always)]
fn null_vmcall() {
    // SAFETY: the null hypercall does nothing and returns 0 in RAX.
    unsafe {
        asm!(
            "vmcall",
            inout("rax") Hypercall::Null as u64 => _,
            in("rdi") 0u64,
            in("rsi") 0u64,
            in("rdx") 0u64,
            options(nostack),
        );
    }
}

/// [`null_vmcall`] without the `VMCALL`: the same registers set up.
#[inline(always)]
fn null_vmcall_skeleton() {
    // SAFETY: an empty instruction sequence.
    unsafe {
        asm!(
            "",
            inout("rax") Hypercall::Null as u64 => _,
            in("rdi") 0u64,
            in("rsi") 0u64,
            in("rdx") 0u64,
            options(nostack),
        );
    }
}

/// Ticks per `CPUID` leaf 0 round trip (the fastest batch).
pub fn cpuid_round_trip() -> Tenths {
    timing::round_trip(cpuid_leaf0, cpuid_leaf0_skeleton).min
}

/// Ticks per null `VMCALL` round trip (the fastest batch).
pub fn null_vmcall_round_trip() -> Tenths {
    timing::round_trip(null_vmcall, null_vmcall_skeleton).min
}
