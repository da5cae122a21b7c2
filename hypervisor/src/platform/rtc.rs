//! The machine's real-time clock, read once at start-up so that each guest's
//! virtual CMOS clock (`hypervisor_core::devices::cmos_rtc`) starts at the
//! real date and time.
//!
//! The MC146818 registers are read through the index/data ports 0x70/0x71
//! while no update is in progress (status register A bit 7, "UIP"), twice
//! until two reads agree, and decoded per status register B (BCD or binary,
//! 12- or 24-hour). The century comes from register 0x32 when it holds a
//! plausible value, otherwise 20 is assumed.

use hypervisor_core::devices::cmos_rtc::DateTime;
use x86_64::instructions::port::Port;

/// Reads CMOS register `index` (bit 7 of the index port kept set: NMIs stay off).
fn read_register(index: u8) -> u8 {
    // SAFETY: ports 0x70/0x71 are the CMOS index and data ports on every PC;
    // reading a clock register has no side effects.
    unsafe {
        Port::<u8>::new(0x70).write(0x80 | index);
        Port::<u8>::new(0x71).read()
    }
}

/// The raw clock registers: seconds, minutes, hours, day, month, year, century.
fn read_raw() -> [u8; 7] {
    // Wait (bounded) for the end of an update cycle: at most ~2 ms on a real clock.
    for _ in 0..100_000 {
        if read_register(0x0A) & 0x80 == 0 {
            break;
        }
    }
    [
        read_register(0x00),
        read_register(0x02),
        read_register(0x04),
        read_register(0x07),
        read_register(0x08),
        read_register(0x09),
        read_register(0x32),
    ]
}

fn from_bcd(value: u8) -> u8 {
    (value >> 4) * 10 + (value & 0x0F)
}

/// The date and time the machine's clock shows, or a fixed fallback
/// (2000-01-01 00:00:00) if it holds nothing valid.
pub fn read_date() -> DateTime {
    let mut raw = read_raw();
    for _ in 0..4 {
        let again = read_raw();
        if again == raw {
            break;
        }
        raw = again;
    }
    let status_b = read_register(0x0B);
    let binary = status_b & 0x04 != 0;
    let hour_24 = status_b & 0x02 != 0;
    let decode = |value: u8| if binary { value } else { from_bcd(value) };
    let [second, minute, hour_raw, day, month, year, century] = raw;
    let pm = !hour_24 && hour_raw & 0x80 != 0;
    let mut hour = decode(hour_raw & 0x7F);
    if !hour_24 {
        hour %= 12;
        if pm {
            hour += 12;
        }
    }
    let century = match decode(century) {
        19..=30 => u16::from(decode(century)),
        _ => 20,
    };
    let year = century * 100 + u16::from(decode(year));
    DateTime::new(year, decode(month), decode(day), hour, decode(minute), decode(second)).unwrap_or(DateTime {
        year: 2000,
        month: 1,
        day: 1,
        hour: 0,
        minute: 0,
        second: 0,
    })
}
