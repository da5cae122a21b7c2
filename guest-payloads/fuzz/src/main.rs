//! `fuzz`: a guest that throws a seeded pseudo-random stream of intercepted
//! instructions at the hypervisor — port I/O, RDMSR/WRMSR, CPUID, VMCALL
//! with random arguments — and ends each run by touching memory outside its
//! RAM.
//!
//! The hypervisor must answer every operation (emulate, ignore, #GP, an
//! error code) without crashing, and stop the guest at the out-of-RAM touch
//! with an EPT violation. Its restart policy then starts the guest again from
//! its image; the guest asks for its restart count (the `info` hypercall),
//! derives that run's seed from it, and so runs a different but reproducible
//! stream. After [`RUNS`] runs (the registry gives it `RUNS - 1` restarts) the
//! last run prints the total and exits with status 0.
//!
//! Each run prints, before its touch:
//!
//! ```text
//! run 3 of 10: seed 0x...: 11234 ops in 45678901 ticks, 245 ops per million ticks
//! run 3 answers: ports 2800 (reads 1400, all ones 1350), string I/O 700, MSRs ..., CPUID 2100
//! run 3 hypercalls: 3500 (ok 900, unknown call 1800, bad address 500, ...); digest 0x...
//! run 3 ends: reading 0x4c3a1f28, outside its 2 MiB of RAM
//! ```
//!
//! and the last run `total: 10 runs, 120345 ops` before it exits. A run's
//! operations depend on its seed alone, so `seed` reproduces it (and its
//! `digest` of CPUID and hypercall answers).

#![no_std]
#![no_main]

mod ops;
mod rng;

use core::arch::asm;

use guest_rt::hypercall::{self, InfoKey};
use guest_rt::{idt, println};

use crate::ops::{Machine, Tally};
use crate::rng::SplitMix64;

guest_rt::entry!(main);

/// Runs in total: the first run and `RUNS - 1` restarts.
pub const RUNS: u64 = 10;
/// The fewest operations a run makes.
const MIN_OPS_PER_RUN: u64 = 10_000;
/// A run makes `MIN_OPS_PER_RUN + below(OPS_SPREAD)` operations.
const OPS_SPREAD: u64 = 4_000;
/// Mixed with the restart count into each run's seed.
const BASE_SEED: u64 = 0x5EED_F00D_CAFE_0001;
/// Exit status when something other than the hypervisor failed (the
/// generator's self-test, a touch that did not stop us, no restart count).
const GUEST_FAILURE: u32 = 1;

/// The out-of-RAM touches avoid the local APIC and I/O APIC windows, where a
/// hypervisor may emulate a device instead of stopping the guest.
const APIC_WINDOWS: core::ops::Range<u64> = 0xFEC0_0000..0xFF00_0000;
/// The identity mapping of long-mode guests covers the first 4 GiB.
const FOUR_GIB: u64 = 1 << 32;

/// The seed of run `run` (0-based): the first output of a generator seeded
/// with the base seed plus the run number.
fn seed_for_run(run: u64) -> u64 {
    SplitMix64::new(BASE_SEED.wrapping_add(run)).next_u64()
}

/// How many operations run `run` makes: the first draw of its stream.
fn operations_of_run(run: u64) -> u64 {
    MIN_OPS_PER_RUN + SplitMix64::new(seed_for_run(run)).below(OPS_SPREAD)
}

fn main() -> ! {
    if !SplitMix64::self_test() {
        println!("FAIL: the SplitMix64 generator does not reproduce its reference outputs");
        guest_rt::exit(GUEST_FAILURE);
    }
    let (Ok(run), Ok(ram_size)) = (hypercall::info(InfoKey::RestartCount), hypercall::info(InfoKey::RamSize)) else {
        println!("FAIL: the info hypercall does not give the restart count and RAM size");
        guest_rt::exit(GUEST_FAILURE)
    };
    idt::install();
    let machine = Machine { ram_size };
    let seed = seed_for_run(run);
    let mut rng = SplitMix64::new(seed);
    let operations = MIN_OPS_PER_RUN + rng.below(OPS_SPREAD);

    let mut tally = Tally::default();
    let start = rdtsc();
    for _ in 0..operations {
        ops::run_one(&mut rng, &machine, &mut tally);
    }
    let ticks = rdtsc().wrapping_sub(start).max(1);
    println!(
        "run {} of {}: seed {:#018x}: {} ops in {} ticks, {} ops per million ticks",
        run,
        RUNS,
        seed,
        tally.operations(),
        ticks,
        u128::from(tally.operations()) * 1_000_000 / u128::from(ticks)
    );
    println!("run {} answers: {}", run, tally.device_answers());
    println!("run {} hypercalls: {}", run, tally.hypercall_answers());

    if run + 1 >= RUNS {
        let total: u64 = (0..RUNS).map(operations_of_run).sum();
        println!("total: {} runs, {} ops", RUNS, total);
        guest_rt::exit(0);
    }
    touch_outside_ram(&mut rng, ram_size, run)
}

/// Ends the run: reads or writes an address outside guest RAM (below 4 GiB,
/// outside the APIC windows), which EPT does not map, so the hypervisor must
/// stop us. Should the guest survive, it says so, tries the first byte past
/// its RAM, and gives up with [`GUEST_FAILURE`].
fn touch_outside_ram(rng: &mut SplitMix64, ram_size: u64, run: u64) -> ! {
    let address = loop {
        let candidate = match rng.below(4) {
            0 => ram_size,
            1 => FOUR_GIB - 8,
            _ => (ram_size + rng.below(FOUR_GIB - ram_size)) & !7,
        };
        if !APIC_WINDOWS.contains(&candidate) {
            break candidate;
        }
    };
    let write = rng.below(2) == 0;
    println!(
        "run {} ends: {} {:#x}, outside its {} MiB of RAM",
        run,
        if write { "writing" } else { "reading" },
        address,
        ram_size >> 20
    );
    touch(address, write);
    println!("FAIL: the touch at {:#x} did not stop the guest", address);
    touch(ram_size, true);
    println!("FAIL: a write at {:#x}, just past RAM, did not stop the guest", ram_size);
    guest_rt::exit(GUEST_FAILURE)
}

/// One 8-byte read or write at `address`.
fn touch(address: u64, write: bool) {
    // SAFETY: the address lies outside guest RAM: EPT maps nothing there, so
    // the access ends the guest before it completes; should it complete, it
    // reached memory of no one (it cannot reach anything of ours).
    unsafe {
        if write {
            asm!("mov qword ptr [{}], {}", in(reg) address, in(reg) 0x0F0F_0F0F_0F0F_0F0Fu64, options(nostack));
        } else {
            asm!("mov {tmp}, qword ptr [{addr}]", addr = in(reg) address, tmp = out(reg) _, options(nostack, readonly));
        }
    }
}

/// The time-stamp counter (RDTSC does not exit: the hypervisor leaves RDTSC exiting off).
fn rdtsc() -> u64 {
    // SAFETY: RDTSC only reads the counter.
    unsafe { core::arch::x86_64::_rdtsc() }
}
