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
//! [`Summary`] keeps the fastest, the median and the slowest of them. The
//! fastest is the figure to quote; a median far above it says other guests
//! (or the hypervisor's own work) got in the way.
//!
//! In Bochs the TSC advances with executed instructions, so the figures count
//! instructions and repeat exactly from run to run; on KVM they are cycles.

use core::arch::asm;
use core::fmt;
use core::hint::black_box;

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

/// A number with one decimal, kept as an integer count of tenths (no floating
/// point: the target is soft-float).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub struct Tenths(pub i64);

impl Tenths {
    /// `(with - without) / rounds`, rounded half away from zero. May be
    /// negative when the difference drowns in noise.
    pub fn per_round(with: u64, without: u64, rounds: u64) -> Self {
        let diff = i128::from(with) - i128::from(without);
        let rounds = i128::from(rounds.max(1));
        let half = if diff < 0 { -(rounds / 2) } else { rounds / 2 };
        let tenths = (diff * 10 + half) / rounds;
        Self(i64::try_from(tenths).unwrap_or(if tenths < 0 { i64::MIN } else { i64::MAX }))
    }

    /// A whole number of ticks.
    pub fn whole(ticks: u64) -> Self {
        Self(i64::try_from(ticks).unwrap_or(i64::MAX / 10).saturating_mul(10))
    }

    /// `self - other`, saturating.
    pub fn minus(self, other: Self) -> Self {
        Self(self.0.saturating_sub(other.0))
    }

    /// Half of it, rounded toward zero to a tenth.
    pub fn half(self) -> Self {
        Self(self.0 / 2)
    }
}

impl fmt::Display for Tenths {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sign = if self.0 < 0 { "-" } else { "" };
        let magnitude = self.0.unsigned_abs();
        write!(f, "{sign}{}.{}", magnitude / 10, magnitude % 10)
    }
}

/// What a set of samples says: how many, the fastest, the median (of an even
/// count, the mean of the middle two), the slowest.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Summary {
    /// Number of samples.
    pub samples: usize,
    /// The smallest sample.
    pub min: Tenths,
    /// The median sample.
    pub median: Tenths,
    /// The largest sample.
    pub max: Tenths,
}

impl Summary {
    /// Summarizes `samples` (sorting them in place). All zero when empty.
    pub fn of(samples: &mut [Tenths]) -> Self {
        samples.sort_unstable();
        let count = samples.len();
        let (Some(&min), Some(&max)) = (samples.first(), samples.last()) else { return Self::default() };
        let median = if count % 2 == 1 {
            samples[count / 2]
        } else {
            let sum = i128::from(samples[count / 2 - 1].0) + i128::from(samples[count / 2].0);
            Tenths((sum / 2) as i64)
        };
        Self { samples: count, min, median, max }
    }

    /// Summarizes whole-tick samples.
    pub fn of_ticks(samples: &[u64]) -> Self {
        let mut tenths = [Tenths(0); 256];
        let count = samples.len().min(tenths.len());
        for (slot, &ticks) in tenths.iter_mut().zip(samples) {
            *slot = Tenths::whole(ticks);
        }
        Self::of(&mut tenths[..count])
    }

    /// Prints the benchmark's machine-readable line for it:
    /// `bench: <metric> <unit> samples=<n> min=<x> median=<y> max=<z>`.
    pub fn report(&self, metric: &str, unit: &str) {
        crate::println!(
            "bench: {metric} {unit} samples={} min={} median={} max={}",
            self.samples,
            self.min,
            self.median,
            self.max
        );
    }
}
