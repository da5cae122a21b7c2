//! In-guest timing with the TSC: how many ticks a VM exit round trip costs.
//!
//! `RDTSC` itself does not exit: the hypervisor leaves "RDTSC exiting" off
//! (SDM Vol. 3C, 26.1.3 "Instructions That Cause VM Exits Conditionally"), so
//! the guest reads the TSC directly. A measurement ([`round_trip`]) times a
//! loop of [`ROUNDS`] runs of a body with the trapping instruction and
//! subtracts the time of the same loop with the trapping instruction left out
//! (the *skeleton*); the difference divided by the number of runs is the round
//! trip (exit, handler, VM entry).
//!
//! The TSC keeps running while other guests have the CPU, so a loop that
//! spans a guest switch would count their time too. Each loop therefore runs
//! as [`BATCHES`] batches of `ROUNDS / BATCHES` runs: with several guests
//! sharing the CPU, at least one batch runs undisturbed. Each batch gives one
//! sample (its time less the fastest skeleton batch, per run); the
//! [`Summary`] (`hypervisor_core::samples`, tested on the host) keeps the
//! fastest, the median and the slowest of them. The
//! fastest is the figure to quote; a median far above it says other guests
//! (or the hypervisor's own work) got in the way.
//!
//! In Bochs the TSC advances with executed instructions, so the figures count
//! instructions and repeat exactly from run to run; on KVM they are cycles.

use core::arch::asm;
use core::hint::black_box;

pub use hypervisor_core::samples::{Summary, Tenths};

/// Runs of the body per measurement.
pub const ROUNDS: u64 = 10_000;

/// Batches each measurement is split into (see the module docs).
pub const BATCHES: usize = 20;

/// Runs of the body in the untimed warm-up before each timed loop.
const WARMUP_ROUNDS: u64 = 100;

/// Reads the TSC, fenced on both sides (`lfence; rdtsc; lfence`) so that it
/// neither starts before the code above it has finished nor lets the code
/// below it start early (SDM Vol. 2B, RDTSC: "If software requires RDTSC to be
/// executed only after all previous instructions have executed ... it can
/// execute LFENCE immediately before RDTSC").
#[inline(always)]
pub fn read_tsc() -> u64 {
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
pub fn ticks(rounds: u64, mut body: impl FnMut()) -> u64 {
    let rounds = black_box(rounds);
    let start = read_tsc();
    for _ in 0..rounds {
        body();
    }
    read_tsc().wrapping_sub(start)
}

/// Ticks of each of [`BATCHES`] batches of `per_batch` runs of `body`, after
/// an untimed warm-up.
#[inline(always)]
pub fn batch_ticks(per_batch: u64, mut body: impl FnMut()) -> [u64; BATCHES] {
    ticks(WARMUP_ROUNDS, &mut body);
    let mut batches = [0; BATCHES];
    for batch in &mut batches {
        *batch = ticks(per_batch, &mut body);
    }
    batches
}

/// Ticks of `rounds` runs of `body`, after an untimed warm-up: the fastest of
/// [`BATCHES`] batches, scaled to `rounds`.
#[inline(always)]
pub fn warm_ticks(rounds: u64, body: impl FnMut()) -> u64 {
    let per_batch = rounds / BATCHES as u64;
    let fastest = batch_ticks(per_batch, body).into_iter().min().unwrap_or(0);
    fastest * BATCHES as u64
}

/// The round trip of the exiting instruction in `with`, which `without` (the
/// skeleton) leaves out: [`ROUNDS`] runs of each in [`BATCHES`] batches, one
/// sample per batch of `with` (less the fastest batch of `without`).
#[inline(always)]
pub fn round_trip(with: impl FnMut(), without: impl FnMut()) -> Summary {
    let per_batch = ROUNDS / BATCHES as u64;
    let skeleton = batch_ticks(per_batch, without).into_iter().min().unwrap_or(0);
    let batches = batch_ticks(per_batch, with);
    let mut samples = [Tenths(0); BATCHES];
    for (sample, batch) in samples.iter_mut().zip(batches) {
        *sample = Tenths::per_round(batch, skeleton, per_batch);
    }
    Summary::of(&mut samples)
}

/// Prints the benchmark's machine-readable line for `summary`:
/// `bench: <metric> <unit> samples=<n> min=<x> median=<y> max=<z>`.
pub fn report(summary: &Summary, metric: &str, unit: &str) {
    crate::println!("{}", summary.line(metric, unit));
}
