//! `timer_pic`: a guest that runs off a timer interrupt, the way a PC
//! operating system did before local APICs: the 8254 PIT ticks at 100 Hz on
//! IRQ 0, the 8259A PIC turns that into vector 0x20, and between ticks the
//! guest sleeps in `HLT`.
//!
//! All three devices are the hypervisor's models (`hypervisor_core::devices`):
//! the guest's `OUT`s program them, the hypervisor injects vector 0x20 when
//! the PIT's period ends, and a `HLT` makes the hypervisor run other guests
//! until then. The guest also reads the date from its CMOS clock.
//!
//! It counts one second's worth of ticks after the first, and checks the
//! tick rate against the guest's TSC (whose frequency the `info` hypercall
//! gives): it must be within 1 % of the rate the PIT was programmed for.
//!
//! Two binaries share this code: `timer_pic` ticks at 100 Hz (reload 11932,
//! Linux's value), `timer_pic_1khz` at 1 kHz (reload 1193). Run together,
//! they show two guests' timers delivered at their own rates while they share
//! the CPU.
//!
//! Exit status: the number of failed checks.
#![no_std]
#![deny(unsafe_op_in_unsafe_fn)]

use guest_rt::hypercall::{self, InfoKey};
use guest_rt::irq::{self, Eoi};
use guest_rt::port::{inb, outb};
use guest_rt::{exit, println};

/// The PIT's input clock (Hz).
pub const PIT_HZ: u64 = 1_193_182;
/// Vector bases: master IRQ 0–7 at 0x20, slave IRQ 8–15 at 0x28.
const MASTER_BASE: u8 = 0x20;
const SLAVE_BASE: u8 = 0x28;
/// The largest deviation accepted, in hundredths of a percent (1 %).
const TOLERANCE_BASIS_POINTS: u64 = 100;

/// Initialises both 8259As (ICW1–ICW4: edge triggered, cascade on IR2,
/// 8086 mode) and unmasks IRQ 0 only (8259A datasheet, "Initialization
/// Command Words").
fn init_pic() {
    // SAFETY: ports of the guest's own virtual PIC.
    unsafe {
        outb(0x20, 0x11);
        outb(0xA0, 0x11);
        outb(0x21, MASTER_BASE);
        outb(0xA1, SLAVE_BASE);
        outb(0x21, 0x04);
        outb(0xA1, 0x02);
        outb(0x21, 0x01);
        outb(0xA1, 0x01);
        outb(0x21, 0xFE);
        outb(0xA1, 0xFF);
    }
}

/// PIT channel 0, lobyte/hibyte access, mode 2 (rate generator).
fn start_pit(reload: u16) {
    // SAFETY: ports of the guest's own virtual PIT.
    unsafe {
        outb(0x43, 0x34);
        outb(0x40, reload as u8);
        outb(0x40, (reload >> 8) as u8);
    }
}

/// Reads CMOS register `index`.
fn cmos(index: u8) -> u8 {
    // SAFETY: ports of the guest's own virtual CMOS/RTC.
    unsafe {
        outb(0x70, index);
        inb(0x71)
    }
}

/// Prints the CMOS date; returns whether it is coherent.
fn check_rtc() -> bool {
    let status_b = cmos(0x0B);
    let binary = status_b & 0x04 != 0;
    let decode = |value: u8| if binary { value } else { (value >> 4) * 10 + (value & 0x0F) };
    let (second, minute, hour) = (decode(cmos(0x00)), decode(cmos(0x02)), decode(cmos(0x04) & 0x7F));
    let (day, month, year, century) = (decode(cmos(0x07)), decode(cmos(0x08)), decode(cmos(0x09)), decode(cmos(0x32)));
    let full_year = u32::from(century) * 100 + u32::from(year);
    println!(
        "rtc: {full_year:04}-{month:02}-{day:02} {hour:02}:{minute:02}:{second:02} ({}, {})",
        if binary { "binary" } else { "BCD" },
        if status_b & 0x02 != 0 { "24-hour" } else { "12-hour" }
    );
    (2000..2200).contains(&full_year)
        && (1..=12).contains(&month)
        && (1..=31).contains(&day)
        && hour < 24
        && minute < 60
        && second < 60
}

/// Runs the test with the PIT reloaded with `reload` (its rate is
/// [`PIT_HZ`] / `reload`), timing `ticks` ticks after the first; exits.
pub fn run(reload: u16, ticks: u64) -> ! {
    let mut failures = 0;
    let tsc_hz = hypercall::info(InfoKey::TscHz).unwrap_or(0);
    if !check_rtc() {
        println!("FAILED: the CMOS clock shows an impossible date");
        failures += 1;
    }

    irq::install();
    irq::register(0, MASTER_BASE, Eoi::PicMaster);
    init_pic();
    start_pit(reload);
    // A tick after the warm-up starts the clock: from then on every period is whole.
    while irq::count(0) < irq::WARM_UP_TICKS {
        irq::wait();
    }
    let first = irq::last_tsc(0);
    let start_count = irq::count(0);
    while irq::count(0) < start_count + ticks {
        irq::wait();
    }
    irq::disable();
    let last = irq::last_tsc(0);
    // SAFETY: masks IRQ 0 on the guest's own PIC.
    unsafe { outb(0x21, 0xFF) };

    let measured = irq::millihertz(ticks, last.wrapping_sub(first), tsc_hz);
    let expected = PIT_HZ * 1000 / u64::from(reload.max(1));
    let deviation = irq::deviation_basis_points(measured, expected);
    println!(
        "{ticks} ticks in {} TSC ticks: {}.{:03} Hz (PIT programmed for {}.{:03} Hz), off by {}.{:02} %",
        last.wrapping_sub(first),
        measured / 1000,
        measured % 1000,
        expected / 1000,
        expected % 1000,
        deviation / 100,
        deviation % 100
    );
    if deviation > TOLERANCE_BASIS_POINTS {
        println!("FAILED: the tick rate is off by more than 1 %");
        failures += 1;
    }
    if irq::unexpected() != 0 {
        println!("FAILED: {} interrupts on vectors without a handler", irq::unexpected());
        failures += 1;
    }
    println!("exiting with status {failures}");
    exit(failures)
}
