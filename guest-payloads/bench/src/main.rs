//! `bench`: the measuring guest of `cargo run -- --bench`.
//!
//! It prints one machine-readable line per metric,
//!
//! ```text
//! bench: <metric> <unit> samples=<n> min=<x> median=<y> max=<z>
//! ```
//!
//! which the runner collects into its table and JSON file. In order:
//!
//! 1. **Guest switches** (first, while its partner `bench_yield` runs too):
//!    `yield_round_trip`, one yield that switches to the partner and back
//!    (see `switch.rs`), and `guest_switch`, the share of one switch:
//!    half of (round trip − two null VMCALLs).
//! 2. **Exit round trips** (`guest_rt::timing::round_trip`: 10,000 runs in
//!    20 batches, minus the skeleton): `cpuid_leaf0`, `cpuid_hypervisor_leaf`
//!    (0x4000_0000), `vmcall_null`, `out_uart_scratch`, `in_uart_scratch`,
//!    `rdmsr_sysenter_cs`, `wrmsr_sysenter_cs`, `apic_mmio_read` (EPT
//!    violation path), `hlt_wakeup` (HLT with a timer interrupt already
//!    pending: HLT exit, injection, the handler and its EOI, which is one
//!    more APIC exit).
//! 3. **Interrupt latency** (`irq_latency`): TSC deadline to the handler's
//!    RDTSC, with the guest halted, like `timer_apic`.
//! 4. **Workload** (`workload_guest`, `workload_guest_exits`): fill and hash
//!    32 MiB of its RAM (`hypervisor_core::workload`, the code the
//!    hypervisor also runs natively), its TSC ticks and the VM exits it
//!    caused (the `info` key `ExitCount` before and after).
//!
//! Needs at least 64 MiB of RAM (the runner gives it that). Exit status: 0,
//! or 1 when something could not be measured (a line says what).
#![no_std]
#![no_main]
#![deny(unsafe_op_in_unsafe_fn)]

mod exits;
mod switch;

use guest_rt::hypercall::{self, InfoKey};
use guest_rt::irq::{self, Eoi};
use guest_rt::timing::{self, read_tsc, report, Summary, Tenths};
use guest_rt::{exit, println};
use hypervisor_core::workload::{self, WORKLOAD_BYTES, WORKLOAD_SEED};

guest_rt::entry!(main);

/// The timer's vector.
const TIMER_VECTOR: u8 = 0x40;
/// The xAPIC's spurious-interrupt vector register and its software-enable bit
/// (SDM Vol. 3A, 11.9 "Spurious Interrupt").
const APIC_SVR: usize = 0xFEE0_00F0;
const SVR_ENABLE: u32 = 1 << 8;
/// The LVT timer register and its TSC-deadline mode (bits 18:17 = 2, SDM Vol. 3A, 11.5.4.1).
const APIC_LVT_TIMER: usize = 0xFEE0_0320;
const LVT_TSC_DEADLINE: u32 = 2 << 17;
/// Interrupt latency samples.
const LATENCY_SAMPLES: usize = 100;
/// How far ahead each latency deadline is set, in TSC ticks.
const LATENCY_LEAD_TICKS: u64 = 50_000;
/// Where the workload's buffer starts: above the image (which ends below
/// 0x180000, see guest-rt's `link.ld`).
const WORKLOAD_BASE: u64 = 0x40_0000;
/// Room left for the stack below the reserved region.
const STACK_ROOM: u64 = 0x10_0000;

fn main() -> ! {
    let mut failures = 0;
    let tsc_hz = hypercall::info(InfoKey::TscHz).unwrap_or(0);
    println!("bench-info: tsc_hz {tsc_hz}");

    let yields = switch::yield_round_trips();
    let yield_summary = Summary::of_ticks(&yields[switch::WARMUP_YIELDS..]);
    report(&yield_summary, "yield_round_trip", "ticks");

    let null = timing::round_trip(exits::null_vmcall, exits::null_vmcall_skeleton);
    // One round trip holds two yield exits and two switches; a yield exit
    // costs what a null one does, plus the switch.
    let switch_share = |sample: Tenths| sample.minus(null.min).minus(null.min).half();
    report(&yield_summary.map(switch_share), "guest_switch", "ticks");

    report(&timing::round_trip(|| exits::cpuid(0), || exits::cpuid_skeleton(0)), "cpuid_leaf0", "ticks");
    report(
        &timing::round_trip(|| exits::cpuid(0x4000_0000), || exits::cpuid_skeleton(0x4000_0000)),
        "cpuid_hypervisor_leaf",
        "ticks",
    );
    report(&null, "vmcall_null", "ticks");
    report(&timing::round_trip(exits::out_scratch, exits::out_scratch_skeleton), "out_uart_scratch", "ticks");
    report(&timing::round_trip(exits::in_scratch, exits::in_scratch_skeleton), "in_uart_scratch", "ticks");
    report(&timing::round_trip(exits::rdmsr_sysenter_cs, exits::rdmsr_skeleton), "rdmsr_sysenter_cs", "ticks");
    report(
        &timing::round_trip(|| exits::wrmsr_sysenter_cs(0x10), || exits::wrmsr_skeleton(0x10)),
        "wrmsr_sysenter_cs",
        "ticks",
    );
    report(&timing::round_trip(exits::apic_read_version, exits::apic_read_skeleton), "apic_mmio_read", "ticks");

    irq::install();
    irq::register(0, TIMER_VECTOR, Eoi::Apic);
    apic_write(APIC_SVR, SVR_ENABLE | 0xFF);
    apic_write(APIC_LVT_TIMER, LVT_TSC_DEADLINE | u32::from(TIMER_VECTOR));
    let before = irq::count(0);
    let hlt = timing::round_trip(
        || {
            // A deadline long past: the interrupt is pending at the HLT.
            exits::write_tsc_deadline(1);
            exits::sti_hlt_cli();
        },
        || {
            exits::write_tsc_deadline(0);
            // SAFETY: no interrupt is armed; STI; NOP; CLI only toggles IF.
            unsafe { core::arch::asm!("sti", "nop", "cli", options(nomem, nostack)) };
        },
    );
    let woken = irq::count(0).wrapping_sub(before);
    report(&hlt, "hlt_wakeup", "ticks");
    if woken < timing::ROUNDS {
        println!("bench-error: hlt_wakeup: {woken} interrupts for {} HLTs", timing::ROUNDS);
        failures += 1;
    }

    match irq_latency() {
        Some(latency) => report(&latency, "irq_latency", "ticks"),
        None => {
            println!("bench-error: irq_latency: the timer did not fire");
            failures += 1;
        }
    }
    exits::write_tsc_deadline(0);
    irq::disable();

    if !run_workload() {
        failures += 1;
    }
    exit(failures)
}

/// A 32-bit store to the xAPIC page (an EPT violation the hypervisor emulates).
fn apic_write(address: usize, value: u32) {
    // SAFETY: an aligned 32-bit store to the APIC page, identity-mapped.
    unsafe { core::ptr::write_volatile(address as *mut u32, value) }
}

/// TSC deadline to handler, [`LATENCY_SAMPLES`] times, halted in between.
/// `None` when an interrupt did not come.
fn irq_latency() -> Option<Summary> {
    let mut latencies = [0u64; LATENCY_SAMPLES];
    for latency in &mut latencies {
        let before = irq::count(0);
        let deadline = read_tsc().wrapping_add(LATENCY_LEAD_TICKS);
        exits::write_tsc_deadline(deadline);
        let mut waits = 0u32;
        while irq::count(0) == before {
            irq::wait();
            irq::disable();
            waits += 1;
            if waits > 1_000 {
                return None;
            }
        }
        *latency = irq::last_tsc(0).saturating_sub(deadline);
    }
    Some(Summary::of_ticks(&latencies))
}

/// Runs the workload over [`WORKLOAD_BYTES`] of RAM from [`WORKLOAD_BASE`]
/// and prints its ticks, its exits and its digest. `false` when the RAM is
/// too small.
fn run_workload() -> bool {
    let reserved_base = hypercall::info(InfoKey::ReservedBase).unwrap_or(0);
    let end = WORKLOAD_BASE + WORKLOAD_BYTES as u64;
    if end.saturating_add(STACK_ROOM) > reserved_base {
        println!("bench-error: workload: needs RAM up to {end:#x} plus a stack; the reserved region starts at {reserved_base:#x}");
        return false;
    }
    // SAFETY: [WORKLOAD_BASE, end) is RAM of ours (identity-mapped) that
    // neither the image (below 0x180000) nor the stack (below the reserved
    // region, with STACK_ROOM to spare) uses; u64 alignment holds.
    let buffer = unsafe { core::slice::from_raw_parts_mut(WORKLOAD_BASE as *mut u64, WORKLOAD_BYTES / 8) };
    let exits_before = hypercall::info(InfoKey::ExitCount).unwrap_or(0);
    let start = read_tsc();
    let digest = workload::run(buffer, WORKLOAD_SEED);
    let ticks = read_tsc().wrapping_sub(start);
    let exits_after = hypercall::info(InfoKey::ExitCount).unwrap_or(0);
    // The second `info` call's own exit is not the workload's.
    let exits = exits_after.saturating_sub(exits_before).saturating_sub(1);
    report(&Summary::of_ticks(&[ticks]), "workload_guest", "ticks");
    report(&Summary::of_ticks(&[exits]), "workload_guest_exits", "exits");
    println!("bench-info: workload digest {digest:#018x} over {} MiB", WORKLOAD_BYTES >> 20);
    true
}
