//! In-guest cost of a VM exit round trip, measured with the TSC.
//!
//! `RDTSC` itself does not exit: the hypervisor leaves "RDTSC exiting" off
//! (SDM Vol. 3C, 26.1.3 "Instructions That Cause VM Exits Conditionally"), so
//! the guest reads the TSC directly. Each measurement times a loop of
//! [`ROUNDS`] trapping instructions and subtracts the time of the same loop
//! with the trapping instruction left out; the difference divided by
//! [`ROUNDS`] is the round trip (exit, handler, VM entry).
//!
//! The TSC keeps running while other guests have the CPU, so a loop that
//! spans a guest switch would count their time too. Each loop therefore runs
//! as [`BATCHES`] batches and keeps the fastest batch: with several guests
//! sharing the CPU, at least one batch runs undisturbed.

use core::arch::asm;
use core::fmt;
use core::hint::black_box;

use guest_rt::hypercall::Hypercall;

/// Iterations of each timed loop.
pub const ROUNDS: u64 = 10_000;

/// Batches each timed loop is split into (see the module docs).
pub const BATCHES: u64 = 200;

/// Iterations of the untimed warm-up run before each timed one.
const WARMUP_ROUNDS: u64 = 100;

/// Reads the TSC, fenced on both sides (`lfence; rdtsc; lfence`) so that it
/// neither starts before the code above it has finished nor lets the code
/// below it start early. Used at both ends of every timed loop.
#[inline(always)]
fn read_tsc() -> u64 {
    let low: u32;
    let high: u32;
    // SAFETY: LFENCE and RDTSC only read the time stamp counter.
    unsafe {
        asm!("lfence", "rdtsc", "lfence", out("eax") low, out("edx") high, options(nomem, nostack, preserves_flags));
    }
    (u64::from(high) << 32) | u64::from(low)
}

/// TSC ticks taken by `rounds` runs of `body`.
#[inline(always)]
fn ticks(rounds: u64, mut body: impl FnMut()) -> u64 {
    let rounds = black_box(rounds);
    let start = read_tsc();
    for _ in 0..rounds {
        body();
    }
    read_tsc().wrapping_sub(start)
}

/// Ticks of `rounds` runs of `body`, after an untimed warm-up: the fastest of
/// [`BATCHES`] batches, scaled to `rounds`.
#[inline(always)]
fn warm_ticks(rounds: u64, mut body: impl FnMut()) -> u64 {
    ticks(WARMUP_ROUNDS, &mut body);
    let per_batch = rounds / BATCHES;
    let fastest = (0..BATCHES).map(|_| ticks(per_batch, &mut body)).min().unwrap_or(0);
    fastest * BATCHES
}

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

/// Ticks per `CPUID` leaf 0 round trip.
pub fn cpuid_round_trip() -> Tenths {
    let without = warm_ticks(ROUNDS, cpuid_leaf0_skeleton);
    let with = warm_ticks(ROUNDS, cpuid_leaf0);
    Tenths::per_round(with, without, ROUNDS)
}

/// Ticks per null `VMCALL` round trip.
pub fn null_vmcall_round_trip() -> Tenths {
    let without = warm_ticks(ROUNDS, null_vmcall_skeleton);
    let with = warm_ticks(ROUNDS, null_vmcall);
    Tenths::per_round(with, without, ROUNDS)
}

/// A number with one decimal, kept as an integer count of tenths (no floating
/// point: the target is soft-float).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tenths(i64);

impl Tenths {
    /// `(with - without) / rounds`, rounded half away from zero. May be
    /// negative when the difference drowns in noise.
    fn per_round(with: u64, without: u64, rounds: u64) -> Self {
        let diff = i128::from(with) - i128::from(without);
        let rounds = i128::from(rounds.max(1));
        let half = if diff < 0 { -(rounds / 2) } else { rounds / 2 };
        let tenths = (diff * 10 + half) / rounds;
        Self(i64::try_from(tenths).unwrap_or(if tenths < 0 { i64::MIN } else { i64::MAX }))
    }
}

impl fmt::Display for Tenths {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sign = if self.0 < 0 { "-" } else { "" };
        let magnitude = self.0.unsigned_abs();
        write!(f, "{sign}{}.{}", magnitude / 10, magnitude % 10)
    }
}
