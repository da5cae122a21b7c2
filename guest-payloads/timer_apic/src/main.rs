//! `timer_apic`: a guest that runs off its local APIC timer, the way modern
//! operating systems do, in both of the timer's periodic modes:
//!
//! 1. **Periodic**: the timer reloads its initial count each time it reaches
//!    zero (SDM Vol. 3A, 11.5.4 "APIC Timer"). The count is the timer's input
//!    clock (CPUID leaf 0x4000_0001 EBX, in kHz) divided by the tick rate.
//! 2. **TSC-deadline**: the guest writes the TSC value of the next tick to
//!    IA32_TSC_DEADLINE (SDM Vol. 3A, 11.5.4.1); the handler's TSC minus the
//!    deadline is the delivery latency, which the guest reports.
//!
//! The APIC is the hypervisor's model behind the page at 0xFEE00000, which
//! EPT leaves unmapped: every register access here is an EPT violation the
//! hypervisor decodes and emulates. Between ticks the guest sleeps in `HLT`.
//!
//! Each mode counts [`TICKS`] ticks at [`RATE_HZ`] and checks the rate
//! against the guest's TSC: within 1 %.
//!
//! Exit status: the number of failed checks.
#![no_std]
#![no_main]
#![deny(unsafe_op_in_unsafe_fn)]

use core::arch::asm;
use core::arch::x86_64::__cpuid_count;
use core::ptr::{read_volatile, write_volatile};

use guest_rt::hypercall::{self, InfoKey};
use guest_rt::irq::{self, Eoi};
use guest_rt::timing::read_tsc;
use guest_rt::{exit, println};

guest_rt::entry!(main);

/// Ticks timed in each mode, after the first one.
const TICKS: u64 = 100;
/// The tick rate (Hz).
const RATE_HZ: u64 = 100;
/// The timer's vector.
const TIMER_VECTOR: u8 = 0x40;
/// The spurious-interrupt vector (SVR bits 7:0).
const SPURIOUS_VECTOR: u32 = 0xFF;
/// The largest deviation accepted, in hundredths of a percent (1 %).
const TOLERANCE_BASIS_POINTS: u64 = 100;

/// The xAPIC register page.
const APIC_BASE: usize = 0xFEE0_0000;
const ID: usize = 0x20;
const VERSION: usize = 0x30;
const SVR: usize = 0xF0;
const LVT_TIMER: usize = 0x320;
const INITIAL_COUNT: usize = 0x380;
const CURRENT_COUNT: usize = 0x390;
const DIVIDE_CONFIGURATION: usize = 0x3E0;
/// SVR bit 8: APIC software enable.
const SVR_ENABLE: u32 = 1 << 8;
/// LVT timer mode bits 18:17.
const MODE_PERIODIC: u32 = 1 << 17;
const MODE_TSC_DEADLINE: u32 = 2 << 17;
/// LVT bit 16: masked.
const LVT_MASKED: u32 = 1 << 16;
/// Divide configuration 0b1011: divide by 1.
const DIVIDE_BY_1: u32 = 0b1011;
/// IA32_TSC_DEADLINE.
const IA32_TSC_DEADLINE: u32 = 0x6E0;
/// ICR low: shorthand "self" (bits 19:18 = 01) and delivery mode NMI (bits 10:8 = 100).
const ICR_SELF_NMI: u32 = (0b01 << 18) | (0b100 << 8);
const ICR_LOW: usize = 0x300;
/// The NMI's vector (fixed by the architecture).
const NMI_VECTOR: u8 = 2;

fn apic_read(offset: usize) -> u32 {
    // SAFETY: an aligned 32-bit load from the APIC page, which the guest's
    // page tables map (identity, low 4 GiB) and the hypervisor emulates.
    unsafe { read_volatile((APIC_BASE + offset) as *const u32) }
}

fn apic_write(offset: usize, value: u32) {
    // SAFETY: an aligned 32-bit store to the APIC page (see `apic_read`).
    unsafe { write_volatile((APIC_BASE + offset) as *mut u32, value) }
}

fn write_tsc_deadline(value: u64) {
    // SAFETY: IA32_TSC_DEADLINE only arms the APIC timer.
    unsafe {
        asm!("wrmsr", in("ecx") IA32_TSC_DEADLINE, in("eax") value as u32, in("edx") (value >> 32) as u32, options(nostack))
    };
}

/// Prints a measured rate against the expected one; returns whether it is within 1 %.
fn report(mode: &str, tsc_ticks: u64, tsc_hz: u64) -> bool {
    let measured = irq::millihertz(TICKS, tsc_ticks, tsc_hz);
    let expected = RATE_HZ * 1000;
    let deviation = irq::deviation_basis_points(measured, expected);
    println!(
        "{mode}: {TICKS} ticks in {tsc_ticks} TSC ticks: {}.{:03} Hz (expected {RATE_HZ} Hz), off by {}.{:02} %",
        measured / 1000,
        measured % 1000,
        deviation / 100,
        deviation % 100
    );
    deviation <= TOLERANCE_BASIS_POINTS
}

/// Periodic mode at [`RATE_HZ`]; returns whether the rate was right.
fn periodic(timer_hz: u64, tsc_hz: u64) -> bool {
    let count = (timer_hz / RATE_HZ) as u32;
    apic_write(DIVIDE_CONFIGURATION, DIVIDE_BY_1);
    apic_write(LVT_TIMER, MODE_PERIODIC | u32::from(TIMER_VECTOR));
    apic_write(INITIAL_COUNT, count);
    let current = apic_read(CURRENT_COUNT);
    if current == 0 || current > count {
        println!("FAILED: current count {current} right after loading {count}");
        return false;
    }
    let start = irq::count(0);
    while irq::count(0) < start + irq::WARM_UP_TICKS {
        irq::wait();
    }
    let first = irq::last_tsc(0);
    let begin = irq::count(0);
    while irq::count(0) < begin + TICKS {
        irq::wait();
    }
    let last = irq::last_tsc(0);
    irq::disable();
    apic_write(INITIAL_COUNT, 0); // stops the timer
    apic_write(LVT_TIMER, LVT_MASKED | u32::from(TIMER_VECTOR));
    report("periodic", last.wrapping_sub(first), tsc_hz)
}

/// TSC-deadline mode: each deadline one period after the previous one.
/// Returns whether the rate was right.
fn tsc_deadline(tsc_hz: u64) -> bool {
    let period = tsc_hz / RATE_HZ;
    apic_write(LVT_TIMER, MODE_TSC_DEADLINE | u32::from(TIMER_VECTOR));
    let base = read_tsc() + period;
    let mut latency_total = 0u64;
    let mut latency_max = 0u64;
    let mut first = 0;
    let mut last = 0;
    let warm_up = irq::WARM_UP_TICKS;
    for tick in 0..=warm_up + TICKS {
        let deadline = base + tick * period;
        let before = irq::count(0);
        write_tsc_deadline(deadline);
        while irq::count(0) == before {
            irq::wait();
        }
        let arrived = irq::last_tsc(0);
        let latency = arrived.saturating_sub(deadline);
        if tick < warm_up {
            continue;
        }
        if tick == warm_up {
            first = arrived;
        } else {
            latency_total += latency;
            latency_max = latency_max.max(latency);
        }
        last = arrived;
    }
    irq::disable();
    write_tsc_deadline(0); // disarms
    println!(
        "tsc-deadline: deadline to handler: {} TSC ticks on average, {} at most",
        latency_total / TICKS,
        latency_max
    );
    report("tsc-deadline", last.wrapping_sub(first), tsc_hz)
}

/// Two NMIs sent to itself through the ICR (delivery mode NMI, SDM Vol. 3A
/// 11.6.1): each must reach the handler of vector 2, the second after the
/// first handler's IRET ended the NMI blocking. Returns whether both came.
fn self_nmis() -> bool {
    irq::register(1, NMI_VECTOR, Eoi::None);
    for expected in 1..=2 {
        apic_write(ICR_LOW, ICR_SELF_NMI);
        if irq::count(1) != expected {
            println!("FAILED: NMI {expected} did not arrive (handler count {})", irq::count(1));
            return false;
        }
    }
    println!("nmi: 2 self-IPI NMIs arrived at vector 2");
    true
}

fn main() -> ! {
    let mut failures = 0;
    let tsc_hz = hypercall::info(InfoKey::TscHz).unwrap_or(0);
    let timer_khz = u64::from(__cpuid_count(0x4000_0001, 0).ebx);
    let has_deadline = __cpuid_count(1, 0).ecx & (1 << 24) != 0;
    println!(
        "local APIC: id {}, version {:#x}; timer input clock {} kHz; TSC-deadline {}",
        apic_read(ID) >> 24,
        apic_read(VERSION) & 0xFF,
        timer_khz,
        if has_deadline { "offered" } else { "not offered" }
    );
    if timer_khz == 0 {
        println!("FAILED: the hypervisor does not report the APIC timer's clock");
        exit(1);
    }

    irq::install();
    irq::register(0, TIMER_VECTOR, Eoi::Apic);
    apic_write(SVR, SVR_ENABLE | SPURIOUS_VECTOR);
    if !periodic(timer_khz * 1000, tsc_hz) {
        failures += 1;
    }
    if has_deadline && !tsc_deadline(tsc_hz) {
        failures += 1;
    }
    if !self_nmis() {
        failures += 1;
    }
    if irq::unexpected() != 0 {
        println!("FAILED: {} interrupts on vectors without a handler", irq::unexpected());
        failures += 1;
    }
    println!("exiting with status {failures}");
    exit(failures)
}
