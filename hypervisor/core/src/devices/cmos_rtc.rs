//! A virtual MC146818 real-time clock with its CMOS RAM, as on a PC.
//!
//! The chip holds 128 bytes behind two ports: the guest writes an index to
//! port `0x70` and then reads or writes the byte through port `0x71`. The
//! first 14 bytes are the clock's registers (Motorola MC146818 datasheet,
//! "Address Map"); the rest is battery-backed RAM in which PC firmware keeps
//! its settings, and byte `0x32` holds the century.
//!
//! # How the hypervisor uses it
//!
//! The kernel forwards the guest's `IN`/`OUT` on ports `0x70`/`0x71` (see
//! [`CmosRtc::handles`]) to [`CmosRtc::read`] and [`CmosRtc::write`] with the
//! current host TSC. The time base is the host TSC: the clock starts at the
//! [`DateTime`] given to [`CmosRtc::new`] and advances by one second every
//! `tsc_hz` TSC ticks, so guest time advances while other guests run.
//!
//! # Registers
//!
//! | index | register | notes |
//! |---|---|---|
//! | `0x00` | seconds | BCD or binary (register B bit 2) |
//! | `0x01` | seconds alarm | plain storage |
//! | `0x02` | minutes | |
//! | `0x03` | minutes alarm | plain storage |
//! | `0x04` | hours | 0..23, or 1..12 with bit 7 = PM (register B bit 1 = 0) |
//! | `0x05` | hours alarm | plain storage |
//! | `0x06` | day of week | 1 = Sunday .. 7 = Saturday, computed from the date |
//! | `0x07` | day of month | 1..31 |
//! | `0x08` | month | 1..12 |
//! | `0x09` | year | 0..99 |
//! | `0x0A` | status A | bit 7 UIP (update in progress), 6:4 divider, 3:0 rate |
//! | `0x0B` | status B | bit 7 SET, 6 PIE, 5 AIE, 4 UIE, 3 SQWE, 2 DM (binary), 1 24/12, 0 DSE |
//! | `0x0C` | status C | interrupt flags, read-only, cleared by reading |
//! | `0x0D` | status D | bit 7 VRT (valid RAM and time), read-only |
//! | `0x0E`..`0x7F` | CMOS RAM | plain storage, except `0x32` |
//! | `0x32` | century | 19, 20, ... in the same format as the year |
//!
//! Port `0x70` bit 7 disables the NMI on a PC; bits 6:0 select the byte.
//!
//! # Simplifications
//!
//! * UIP (status A bit 7) is never set: the update cycle takes no time, so a
//!   guest that waits for UIP = 0 reads at once. The other bits of status A
//!   read back as written (0x26 at power-on: 32.768 kHz, 1024 Hz).
//! * No interrupts: the periodic, alarm and update-ended interrupts are never
//!   raised, status C always reads 0, and the enable bits in status B are only
//!   stored. The alarm registers are plain storage.
//! * Status D reads `0x80` (bits 6:0 = 0); writes to C and D are ignored.
//! * The day of week is computed from the date; writes to it are ignored.
//! * Daylight saving (status B bit 0) is stored and ignored.
//! * Time registers read the current time in the format status B selects at
//!   the moment of the read (switching formats converts; the real chip would
//!   not). In 12-hour mode bits 6:5 of the hour read 0.
//! * A write to a time register sets the clock at once: the current time
//!   with that one field replaced. Out-of-range values are normalised, e.g.
//!   day 31 in April reads back as May 1 and BCD `0x5A` seconds as 1:00 later;
//!   a day of 0 counts as 1 and a month outside 1..12 as 12 or 1. The fraction
//!   of a second restarts at 0. The year wraps from 9999 to 0.
//! * With status B's SET bit the clock stops (the update cycle is inhibited);
//!   clearing it restarts the clock from the (possibly rewritten) time.
//! * Port `0x70` reads `0xFF` (write-only on a PC); the NMI bit is stored and
//!   does nothing else.

/// Index port: bits 6:0 select a byte, bit 7 disables the NMI.
pub const INDEX: u16 = 0x70;
/// Data port: the selected byte.
pub const DATA: u16 = 0x71;

/// Bytes of CMOS RAM (clock registers included).
pub const RAM_SIZE: usize = 128;

/// Index of the seconds register.
pub const REG_SECONDS: u8 = 0x00;
/// Index of the minutes register.
pub const REG_MINUTES: u8 = 0x02;
/// Index of the hours register.
pub const REG_HOURS: u8 = 0x04;
/// Index of the day-of-week register.
pub const REG_WEEKDAY: u8 = 0x06;
/// Index of the day-of-month register.
pub const REG_DAY: u8 = 0x07;
/// Index of the month register.
pub const REG_MONTH: u8 = 0x08;
/// Index of the year register (two digits).
pub const REG_YEAR: u8 = 0x09;
/// Index of status register A.
pub const REG_STATUS_A: u8 = 0x0A;
/// Index of status register B.
pub const REG_STATUS_B: u8 = 0x0B;
/// Index of status register C.
pub const REG_STATUS_C: u8 = 0x0C;
/// Index of status register D.
pub const REG_STATUS_D: u8 = 0x0D;
/// Index of the century byte (IBM PC AT convention).
pub const REG_CENTURY: u8 = 0x32;

/// Port `0x70` bit 7: NMI disabled.
pub const INDEX_NMI_DISABLE: u8 = 1 << 7;
/// Port `0x70` bits 6:0: the register index.
const INDEX_MASK: u8 = 0x7F;

/// Status A bit 7: update in progress (never set here).
pub const STATUS_A_UIP: u8 = 1 << 7;
/// Status A at power-on: 32.768 kHz time base, 1024 Hz periodic rate.
pub const STATUS_A_DEFAULT: u8 = 0x26;
/// Status B bit 7: SET, the clock stops.
pub const STATUS_B_SET: u8 = 1 << 7;
/// Status B bit 2: data mode binary (0 = BCD).
pub const STATUS_B_BINARY: u8 = 1 << 2;
/// Status B bit 1: 24-hour mode (0 = 12-hour).
pub const STATUS_B_24_HOUR: u8 = 1 << 1;
/// Status B at power-on here: 24-hour mode, BCD, like a PC BIOS leaves it.
pub const STATUS_B_DEFAULT: u8 = STATUS_B_24_HOUR;
/// Status D bit 7: the RAM and time are valid (battery good).
pub const STATUS_D_VALID: u8 = 1 << 7;
/// Hours register bit 7 in 12-hour mode: PM.
pub const HOUR_PM: u8 = 1 << 7;

/// The largest year the clock shows (century and year are two digits each).
pub const MAX_YEAR: u16 = 9999;

const SECONDS_PER_DAY: u64 = 86_400;
/// Days in 400 Gregorian years: the calendar repeats after that.
const DAYS_PER_400_YEARS: u64 = 146_097;
/// Seconds in 10000 years (25 cycles of 400): the clock's wrap-around.
const SECONDS_PER_10000_YEARS: u64 = 25 * DAYS_PER_400_YEARS * SECONDS_PER_DAY;
/// Cumulative days before each month in a common year.
const DAYS_BEFORE_MONTH: [u16; 12] = [0, 31, 59, 90, 120, 151, 181, 212, 243, 273, 304, 334];

/// A calendar date and time of day (proleptic Gregorian, no time zone).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DateTime {
    /// Year, 0..=9999.
    pub year: u16,
    /// Month, 1..=12.
    pub month: u8,
    /// Day of the month, 1..=31 (depending on the month).
    pub day: u8,
    /// Hour, 0..=23.
    pub hour: u8,
    /// Minute, 0..=59.
    pub minute: u8,
    /// Second, 0..=59.
    pub second: u8,
}

/// Why [`DateTime::new`] refused its arguments; each carries the bad value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DateTimeError {
    /// The year is above [`MAX_YEAR`].
    Year(u16),
    /// The month is not 1..=12.
    Month(u8),
    /// The day is 0 or past the end of the month.
    Day(u8),
    /// The hour is above 23.
    Hour(u8),
    /// The minute is above 59.
    Minute(u8),
    /// The second is above 59.
    Second(u8),
}

/// Whether `year` has a February 29th.
pub const fn is_leap_year(year: u64) -> bool {
    year.is_multiple_of(4) && (!year.is_multiple_of(100) || year.is_multiple_of(400))
}

/// Days in `month` (1..=12) of `year`; 0 for other months.
pub const fn days_in_month(year: u64, month: u8) -> u8 {
    match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if is_leap_year(year) => 29,
        2 => 28,
        _ => 0,
    }
}

/// Days from 0000-01-01 to January 1st of `year` (year 0 is a leap year).
const fn days_before_year(year: u64) -> u64 {
    let leap_years = year.div_ceil(4) - year.div_ceil(100) + year.div_ceil(400);
    365 * year + leap_years
}

/// Days from January 1st to the first of `month` (1..=12) in `year`.
const fn days_before_month(year: u64, month: u8) -> u64 {
    let days = DAYS_BEFORE_MONTH[month.saturating_sub(1) as usize % 12] as u64;
    if month > 2 && is_leap_year(year) {
        days + 1
    } else {
        days
    }
}

impl DateTime {
    /// A checked date and time.
    pub const fn new(year: u16, month: u8, day: u8, hour: u8, minute: u8, second: u8) -> Result<Self, DateTimeError> {
        if year > MAX_YEAR {
            return Err(DateTimeError::Year(year));
        }
        if month < 1 || month > 12 {
            return Err(DateTimeError::Month(month));
        }
        if day < 1 || day > days_in_month(year as u64, month) {
            return Err(DateTimeError::Day(day));
        }
        if hour > 23 {
            return Err(DateTimeError::Hour(hour));
        }
        if minute > 59 {
            return Err(DateTimeError::Minute(minute));
        }
        if second > 59 {
            return Err(DateTimeError::Second(second));
        }
        Ok(Self { year, month, day, hour, minute, second })
    }

    /// Seconds since 0000-01-01 00:00:00. Out-of-range fields are normalised
    /// (see the module's simplifications).
    pub const fn to_seconds(&self) -> u64 {
        let year = if self.year > MAX_YEAR { MAX_YEAR as u64 } else { self.year as u64 };
        let month = if self.month < 1 {
            1
        } else if self.month > 12 {
            12
        } else {
            self.month
        };
        let day = if self.day < 1 { 1 } else { self.day as u64 };
        let days = days_before_year(year) + days_before_month(year, month) + (day - 1);
        days * SECONDS_PER_DAY + self.hour as u64 * 3600 + self.minute as u64 * 60 + self.second as u64
    }

    /// The date and time `seconds` after 0000-01-01 00:00:00, wrapping after
    /// year 9999.
    pub const fn from_seconds(seconds: u64) -> Self {
        let seconds = seconds % SECONDS_PER_10000_YEARS;
        let mut days = seconds / SECONDS_PER_DAY;
        let time = seconds % SECONDS_PER_DAY;
        let mut year = days / DAYS_PER_400_YEARS * 400;
        days %= DAYS_PER_400_YEARS;
        loop {
            let length = if is_leap_year(year) { 366 } else { 365 };
            if days < length {
                break;
            }
            days -= length;
            year += 1;
        }
        let mut month = 1;
        loop {
            let length = days_in_month(year, month) as u64;
            if days < length || month == 12 {
                break;
            }
            days -= length;
            month += 1;
        }
        Self {
            year: year as u16,
            month,
            day: days as u8 + 1,
            hour: (time / 3600) as u8,
            minute: (time / 60 % 60) as u8,
            second: (time % 60) as u8,
        }
    }

    /// Day of the week as the RTC counts it: 1 = Sunday .. 7 = Saturday.
    pub const fn weekday(&self) -> u8 {
        // 0000-01-01 (proleptic Gregorian) was a Saturday.
        let days = self.to_seconds() / SECONDS_PER_DAY;
        ((days + 6) % 7) as u8 + 1
    }
}

/// Binary 0..=99 to packed BCD.
const fn to_bcd(value: u8) -> u8 {
    ((value / 10 % 10) << 4) | (value % 10)
}

/// Packed BCD to binary; invalid digits are taken at face value (`0x5A` = 60).
const fn from_bcd(value: u8) -> u8 {
    (value >> 4) * 10 + (value & 0x0F)
}

/// The clock and its RAM.
#[derive(Debug, Clone)]
pub struct CmosRtc {
    ram: [u8; RAM_SIZE],
    /// Index selected through port `0x70` (bits 6:0).
    index: u8,
    nmi_disabled: bool,
    /// The time at `base_tsc`, in seconds since 0000-01-01.
    base_seconds: u64,
    base_tsc: u64,
    /// Host TSC frequency, at least 1.
    tsc_hz: u64,
}

impl CmosRtc {
    /// A clock showing `start` at host TSC `now_tsc`, advancing one second per
    /// `tsc_hz` TSC ticks (0 is treated as 1). RAM is 0 except status A
    /// ([`STATUS_A_DEFAULT`]), B ([`STATUS_B_DEFAULT`]) and D. Out-of-range
    /// fields of `start` are normalised; use [`DateTime::new`] to check them.
    pub const fn new(start: DateTime, tsc_hz: u64, now_tsc: u64) -> Self {
        let mut ram = [0; RAM_SIZE];
        ram[REG_STATUS_A as usize] = STATUS_A_DEFAULT;
        ram[REG_STATUS_B as usize] = STATUS_B_DEFAULT;
        Self {
            ram,
            index: 0,
            nmi_disabled: false,
            base_seconds: start.to_seconds(),
            base_tsc: now_tsc,
            tsc_hz: if tsc_hz == 0 { 1 } else { tsc_hz },
        }
    }

    /// Whether `port` belongs to the RTC (`0x70` and `0x71`).
    pub const fn handles(port: u16) -> bool {
        matches!(port, INDEX | DATA)
    }

    /// Whether the guest set the NMI-disable bit with its last index write.
    pub const fn nmi_disabled(&self) -> bool {
        self.nmi_disabled
    }

    /// The selected index (0..=127).
    pub const fn index(&self) -> u8 {
        self.index
    }

    fn status_b(&self) -> u8 {
        self.ram[REG_STATUS_B as usize]
    }

    fn frozen(&self) -> bool {
        self.status_b() & STATUS_B_SET != 0
    }

    fn current_seconds(&self, now_tsc: u64) -> u64 {
        if self.frozen() {
            return self.base_seconds;
        }
        self.base_seconds.saturating_add(now_tsc.saturating_sub(self.base_tsc) / self.tsc_hz)
    }

    /// The time the clock shows at host TSC `now_tsc`.
    pub fn date_time(&self, now_tsc: u64) -> DateTime {
        DateTime::from_seconds(self.current_seconds(now_tsc))
    }

    /// Sets the clock to `time` at `now_tsc`.
    pub fn set_date_time(&mut self, time: DateTime, now_tsc: u64) {
        self.base_seconds = time.to_seconds();
        self.base_tsc = now_tsc;
    }

    /// A binary value in the data format status B selects.
    fn encode(&self, value: u8) -> u8 {
        if self.status_b() & STATUS_B_BINARY != 0 {
            value
        } else {
            to_bcd(value)
        }
    }

    fn decode(&self, value: u8) -> u8 {
        if self.status_b() & STATUS_B_BINARY != 0 {
            value
        } else {
            from_bcd(value)
        }
    }

    fn encode_hour(&self, hour: u8) -> u8 {
        if self.status_b() & STATUS_B_24_HOUR != 0 {
            return self.encode(hour);
        }
        let pm = if hour >= 12 { HOUR_PM } else { 0 };
        let hour_12 = match hour % 12 {
            0 => 12,
            hour => hour,
        };
        self.encode(hour_12) | pm
    }

    fn decode_hour(&self, value: u8) -> u8 {
        if self.status_b() & STATUS_B_24_HOUR != 0 {
            return self.decode(value);
        }
        let hour_12 = self.decode(value & !HOUR_PM) % 12;
        if value & HOUR_PM != 0 {
            hour_12 + 12
        } else {
            hour_12
        }
    }

    /// A guest read of `port` at host TSC `now_tsc`; `0xFF` for the index
    /// port and ports the RTC does not handle.
    pub fn read(&mut self, port: u16, now_tsc: u64) -> u8 {
        if port != DATA {
            return 0xFF;
        }
        let now = self.date_time(now_tsc);
        match self.index {
            REG_SECONDS => self.encode(now.second),
            REG_MINUTES => self.encode(now.minute),
            REG_HOURS => self.encode_hour(now.hour),
            REG_WEEKDAY => self.encode(now.weekday()),
            REG_DAY => self.encode(now.day),
            REG_MONTH => self.encode(now.month),
            REG_YEAR => self.encode((now.year % 100) as u8),
            REG_CENTURY => self.encode((now.year / 100) as u8),
            REG_STATUS_A => self.ram[REG_STATUS_A as usize] & !STATUS_A_UIP,
            // No interrupt flags are ever raised, so there is nothing to clear.
            REG_STATUS_C => 0,
            REG_STATUS_D => STATUS_D_VALID,
            index => self.ram[usize::from(index & INDEX_MASK)],
        }
    }

    /// A guest write of `value` to `port` at host TSC `now_tsc`. Ports the
    /// RTC does not handle are ignored.
    pub fn write(&mut self, port: u16, value: u8, now_tsc: u64) {
        match port {
            INDEX => {
                self.index = value & INDEX_MASK;
                self.nmi_disabled = value & INDEX_NMI_DISABLE != 0;
            }
            DATA => self.write_register(value, now_tsc),
            _ => {}
        }
    }

    fn write_register(&mut self, value: u8, now_tsc: u64) {
        let mut time = self.date_time(now_tsc);
        match self.index {
            REG_SECONDS => time.second = self.decode(value),
            REG_MINUTES => time.minute = self.decode(value),
            REG_HOURS => time.hour = self.decode_hour(value),
            REG_DAY => time.day = self.decode(value),
            REG_MONTH => time.month = self.decode(value),
            REG_YEAR => time.year = time.year / 100 * 100 + u16::from(self.decode(value) % 100),
            REG_CENTURY => time.year = u16::from(self.decode(value) % 100) * 100 + time.year % 100,
            REG_WEEKDAY | REG_STATUS_C | REG_STATUS_D => return,
            REG_STATUS_A => {
                self.ram[REG_STATUS_A as usize] = value & !STATUS_A_UIP;
                return;
            }
            REG_STATUS_B => {
                self.write_status_b(value, now_tsc);
                return;
            }
            index => {
                self.ram[usize::from(index & INDEX_MASK)] = value;
                return;
            }
        }
        self.set_date_time(time, now_tsc);
    }

    /// Status B: setting SET stops the clock, clearing it restarts it from
    /// the time it shows (datasheet, "Register B", SET bit).
    fn write_status_b(&mut self, value: u8, now_tsc: u64) {
        let was_frozen = self.frozen();
        let will_freeze = value & STATUS_B_SET != 0;
        if will_freeze && !was_frozen {
            self.base_seconds = self.current_seconds(now_tsc);
        }
        if was_frozen && !will_freeze {
            self.base_tsc = now_tsc;
        }
        self.ram[REG_STATUS_B as usize] = value;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HZ: u64 = 2_345_678_917;
    const T0: u64 = 1_000_000;

    fn date(year: u16, month: u8, day: u8, hour: u8, minute: u8, second: u8) -> DateTime {
        DateTime::new(year, month, day, hour, minute, second).expect("test dates are valid")
    }

    fn read_register(rtc: &mut CmosRtc, index: u8, now: u64) -> u8 {
        rtc.write(INDEX, index, now);
        rtc.read(DATA, now)
    }

    fn write_register(rtc: &mut CmosRtc, index: u8, value: u8, now: u64) {
        rtc.write(INDEX, index, now);
        rtc.write(DATA, value, now);
    }

    /// (second, minute, hour, weekday, day, month, year, century) as read.
    fn read_clock(rtc: &mut CmosRtc, now: u64) -> [u8; 8] {
        [REG_SECONDS, REG_MINUTES, REG_HOURS, REG_WEEKDAY, REG_DAY, REG_MONTH, REG_YEAR, REG_CENTURY]
            .map(|index| read_register(rtc, index, now))
    }

    #[test]
    fn reads_bcd_24_hour_by_default() {
        let mut rtc = CmosRtc::new(date(2024, 2, 29, 13, 45, 59), HZ, T0);
        // 2024-02-29 was a Thursday (5).
        assert_eq!(read_clock(&mut rtc, T0), [0x59, 0x45, 0x13, 0x05, 0x29, 0x02, 0x24, 0x20]);
        assert_eq!(read_register(&mut rtc, REG_STATUS_B, T0), STATUS_B_DEFAULT);
        assert_eq!(read_register(&mut rtc, REG_STATUS_A, T0), STATUS_A_DEFAULT);
        assert_eq!(read_register(&mut rtc, REG_STATUS_D, T0), STATUS_D_VALID);
    }

    #[test]
    fn binary_mode_reads_plain_numbers() {
        let mut rtc = CmosRtc::new(date(1999, 12, 31, 23, 58, 7), HZ, T0);
        write_register(&mut rtc, REG_STATUS_B, STATUS_B_24_HOUR | STATUS_B_BINARY, T0);
        assert_eq!(read_clock(&mut rtc, T0), [7, 58, 23, 6, 31, 12, 99, 19]);
        // Writes are decoded in binary too.
        write_register(&mut rtc, REG_MINUTES, 30, T0);
        write_register(&mut rtc, REG_STATUS_B, STATUS_B_24_HOUR, T0);
        assert_eq!(read_register(&mut rtc, REG_MINUTES, T0), 0x30);
    }

    #[test]
    fn twelve_hour_mode_sets_the_pm_bit() {
        let cases =
            [(0u8, 0x12u8, 12u8), (1, 0x01, 1), (11, 0x11, 11), (12, 0x92, 0x8C), (13, 0x81, 0x81), (23, 0x91, 0x8B)];
        for (hour, bcd, binary) in cases {
            let mut rtc = CmosRtc::new(date(2024, 6, 1, hour, 0, 0), HZ, T0);
            write_register(&mut rtc, REG_STATUS_B, 0, T0);
            assert_eq!(read_register(&mut rtc, REG_HOURS, T0), bcd, "hour {hour} BCD");
            write_register(&mut rtc, REG_STATUS_B, STATUS_B_BINARY, T0);
            assert_eq!(read_register(&mut rtc, REG_HOURS, T0), binary, "hour {hour} binary");
            // Writing the 12-hour form back sets the same hour.
            write_register(&mut rtc, REG_HOURS, binary, T0);
            assert_eq!(rtc.date_time(T0).hour, hour);
            write_register(&mut rtc, REG_STATUS_B, 0, T0);
            write_register(&mut rtc, REG_HOURS, bcd, T0);
            assert_eq!(rtc.date_time(T0).hour, hour);
        }
    }

    #[test]
    fn time_advances_with_the_tsc() {
        let mut rtc = CmosRtc::new(date(2024, 1, 1, 0, 0, 0), HZ, T0);
        assert_eq!(read_register(&mut rtc, REG_SECONDS, T0 + HZ - 1), 0x00);
        assert_eq!(read_register(&mut rtc, REG_SECONDS, T0 + HZ), 0x01);
        assert_eq!(read_register(&mut rtc, REG_SECONDS, T0 + 59 * HZ), 0x59);
        assert_eq!(read_register(&mut rtc, REG_MINUTES, T0 + 60 * HZ), 0x01);
        assert_eq!(rtc.date_time(T0 + 3_661 * HZ), date(2024, 1, 1, 1, 1, 1));
        // A TSC before the start reads as the start.
        assert_eq!(rtc.date_time(0), date(2024, 1, 1, 0, 0, 0));
    }

    #[test]
    fn rollovers_across_calendar_boundaries() {
        let cases = [
            (date(2024, 3, 9, 23, 59, 59), date(2024, 3, 10, 0, 0, 0)),
            (date(2024, 4, 30, 23, 59, 59), date(2024, 5, 1, 0, 0, 0)),
            (date(2024, 1, 31, 23, 59, 59), date(2024, 2, 1, 0, 0, 0)),
            (date(2024, 2, 28, 23, 59, 59), date(2024, 2, 29, 0, 0, 0)),
            (date(2024, 2, 29, 23, 59, 59), date(2024, 3, 1, 0, 0, 0)),
            (date(2023, 2, 28, 23, 59, 59), date(2023, 3, 1, 0, 0, 0)),
            (date(2100, 2, 28, 23, 59, 59), date(2100, 3, 1, 0, 0, 0)),
            (date(2000, 2, 28, 23, 59, 59), date(2000, 2, 29, 0, 0, 0)),
            (date(2023, 12, 31, 23, 59, 59), date(2024, 1, 1, 0, 0, 0)),
            (date(1999, 12, 31, 23, 59, 59), date(2000, 1, 1, 0, 0, 0)),
            (date(2099, 12, 31, 23, 59, 59), date(2100, 1, 1, 0, 0, 0)),
            (date(9999, 12, 31, 23, 59, 59), date(0, 1, 1, 0, 0, 0)),
        ];
        for (before, after) in cases {
            let rtc = CmosRtc::new(before, HZ, T0);
            assert_eq!(rtc.date_time(T0 + HZ - 1), before);
            assert_eq!(rtc.date_time(T0 + HZ), after, "{before:?}");
        }
        // The century register follows.
        let mut rtc = CmosRtc::new(date(2099, 12, 31, 23, 59, 59), HZ, T0);
        assert_eq!(read_clock(&mut rtc, T0 + HZ), [0x00, 0x00, 0x00, 0x06, 0x01, 0x01, 0x00, 0x21]);
    }

    #[test]
    fn long_runs_keep_the_calendar() {
        let rtc = CmosRtc::new(date(2024, 1, 1, 0, 0, 0), 1, 0);
        assert_eq!(rtc.date_time(366 * SECONDS_PER_DAY), date(2025, 1, 1, 0, 0, 0));
        assert_eq!(rtc.date_time(366 * SECONDS_PER_DAY - 1), date(2024, 12, 31, 23, 59, 59));
        // 400 years later, the same date and weekday.
        let later = rtc.date_time(DAYS_PER_400_YEARS * SECONDS_PER_DAY);
        assert_eq!(later, date(2424, 1, 1, 0, 0, 0));
        assert_eq!(later.weekday(), date(2024, 1, 1, 0, 0, 0).weekday());
        // The whole u64 TSC range does not overflow.
        let rtc = CmosRtc::new(date(2024, 1, 1, 0, 0, 0), 0, 0);
        let far = rtc.date_time(u64::MAX);
        assert!(far.year <= MAX_YEAR);
    }

    #[test]
    fn weekdays_of_known_dates() {
        assert_eq!(date(1970, 1, 1, 0, 0, 0).weekday(), 5, "Thursday");
        assert_eq!(date(2000, 1, 1, 0, 0, 0).weekday(), 7, "Saturday");
        assert_eq!(date(2024, 1, 1, 0, 0, 0).weekday(), 2, "Monday");
        assert_eq!(date(2026, 11, 25, 0, 0, 0).weekday(), 4, "Wednesday");
        assert_eq!(date(2026, 11, 29, 23, 59, 59).weekday(), 1, "Sunday");
        assert_eq!(date(0, 1, 1, 0, 0, 0).weekday(), 7);
    }

    #[test]
    fn seconds_round_trip() {
        for (year, month, day) in [(0, 1, 1), (1, 1, 1), (100, 3, 1), (1900, 2, 28), (2024, 2, 29), (9999, 12, 31)] {
            let time = date(year, month, day, 12, 34, 56);
            assert_eq!(DateTime::from_seconds(time.to_seconds()), time);
        }
        assert_eq!(
            date(1970, 1, 1, 0, 0, 0).to_seconds() - date(0, 1, 1, 0, 0, 0).to_seconds(),
            719_528 * SECONDS_PER_DAY
        );
    }

    #[test]
    fn index_bit_7_is_the_nmi_disable() {
        let mut rtc = CmosRtc::new(date(2024, 1, 1, 0, 0, 0), HZ, T0);
        rtc.write(INDEX, INDEX_NMI_DISABLE | REG_STATUS_D, T0);
        assert!(rtc.nmi_disabled());
        assert_eq!(rtc.index(), REG_STATUS_D);
        assert_eq!(rtc.read(DATA, T0), STATUS_D_VALID);
        rtc.write(INDEX, INDEX_NMI_DISABLE | 0x40, T0);
        rtc.write(DATA, 0xAB, T0);
        rtc.write(INDEX, 0x40, T0);
        assert!(!rtc.nmi_disabled());
        assert_eq!(rtc.read(DATA, T0), 0xAB);
        // The index port is write-only.
        assert_eq!(rtc.read(INDEX, T0), 0xFF);
    }

    #[test]
    fn ram_is_plain_storage() {
        let mut rtc = CmosRtc::new(date(2024, 1, 1, 0, 0, 0), HZ, T0);
        let plain = |index: u8| !matches!(index, 0x00 | 0x02 | 0x04 | 0x06..=0x0D | 0x32);
        for index in (0..RAM_SIZE as u8).filter(|&index| plain(index)) {
            assert_eq!(read_register(&mut rtc, index, T0), 0, "index {index:#x}");
        }
        for index in (0..RAM_SIZE as u8).filter(|&index| plain(index)) {
            write_register(&mut rtc, index, index ^ 0xA5, T0);
        }
        for index in (0..RAM_SIZE as u8).filter(|&index| plain(index)) {
            assert_eq!(read_register(&mut rtc, index, T0 + 1000 * HZ), index ^ 0xA5, "index {index:#x}");
        }
        // The clock was not disturbed.
        assert_eq!(rtc.date_time(T0), date(2024, 1, 1, 0, 0, 0));
        assert!(CmosRtc::handles(INDEX) && CmosRtc::handles(DATA));
        assert!(!CmosRtc::handles(0x72) && !CmosRtc::handles(0x6F));
        assert_eq!(rtc.read(0x72, T0), 0xFF);
    }

    #[test]
    fn status_registers_have_defined_bits() {
        let mut rtc = CmosRtc::new(date(2024, 1, 1, 0, 0, 0), HZ, T0);
        write_register(&mut rtc, REG_STATUS_A, 0xFF, T0);
        assert_eq!(read_register(&mut rtc, REG_STATUS_A, T0), 0x7F, "UIP is never set");
        write_register(&mut rtc, REG_STATUS_C, 0xFF, T0);
        write_register(&mut rtc, REG_STATUS_D, 0x00, T0);
        assert_eq!(read_register(&mut rtc, REG_STATUS_C, T0), 0);
        assert_eq!(read_register(&mut rtc, REG_STATUS_D, T0), STATUS_D_VALID);
        // Interrupt enables are stored.
        write_register(&mut rtc, REG_STATUS_B, 0x72, T0);
        assert_eq!(read_register(&mut rtc, REG_STATUS_B, T0), 0x72);
        assert_eq!(read_register(&mut rtc, REG_STATUS_C, T0 + 10 * HZ), 0);
    }

    #[test]
    fn writing_time_registers_sets_the_clock() {
        let mut rtc = CmosRtc::new(date(2024, 1, 1, 0, 0, 0), HZ, T0);
        let now = T0 + HZ / 2;
        write_register(&mut rtc, REG_SECONDS, 0x30, now);
        write_register(&mut rtc, REG_MINUTES, 0x15, now);
        write_register(&mut rtc, REG_HOURS, 0x21, now);
        write_register(&mut rtc, REG_DAY, 0x17, now);
        write_register(&mut rtc, REG_MONTH, 0x08, now);
        write_register(&mut rtc, REG_YEAR, 0x87, now);
        write_register(&mut rtc, REG_CENTURY, 0x19, now);
        assert_eq!(rtc.date_time(now), date(1987, 8, 17, 21, 15, 30));
        // The weekday is computed: 1987-08-17 was a Monday.
        write_register(&mut rtc, REG_WEEKDAY, 0x07, now);
        assert_eq!(read_register(&mut rtc, REG_WEEKDAY, now), 0x02);
        // Time runs on from the write.
        assert_eq!(read_register(&mut rtc, REG_SECONDS, now + 5 * HZ), 0x35);
        // Out-of-range values normalise: April 31 is May 1.
        write_register(&mut rtc, REG_MONTH, 0x04, now);
        write_register(&mut rtc, REG_DAY, 0x31, now);
        assert_eq!(rtc.date_time(now), date(1987, 5, 1, 21, 15, 30));
        write_register(&mut rtc, REG_SECONDS, 0x5A, now);
        assert_eq!(rtc.date_time(now), date(1987, 5, 1, 21, 16, 0));
        write_register(&mut rtc, REG_MONTH, 0x00, now);
        write_register(&mut rtc, REG_DAY, 0x00, now);
        assert_eq!(rtc.date_time(now), date(1987, 1, 1, 21, 16, 0));
        write_register(&mut rtc, REG_MONTH, 0xFF, now);
        assert_eq!(rtc.date_time(now).month, 12);
    }

    #[test]
    fn set_bit_stops_the_clock() {
        let mut rtc = CmosRtc::new(date(2024, 5, 5, 10, 0, 0), HZ, T0);
        write_register(&mut rtc, REG_STATUS_B, STATUS_B_SET | STATUS_B_24_HOUR, T0 + 3 * HZ);
        assert_eq!(rtc.date_time(T0 + 100 * HZ), date(2024, 5, 5, 10, 0, 3));
        write_register(&mut rtc, REG_MINUTES, 0x45, T0 + 100 * HZ);
        assert_eq!(rtc.date_time(T0 + 200 * HZ), date(2024, 5, 5, 10, 45, 3));
        write_register(&mut rtc, REG_STATUS_B, STATUS_B_24_HOUR, T0 + 200 * HZ);
        assert_eq!(rtc.date_time(T0 + 200 * HZ), date(2024, 5, 5, 10, 45, 3));
        assert_eq!(rtc.date_time(T0 + 210 * HZ), date(2024, 5, 5, 10, 45, 13));
    }

    #[test]
    fn date_time_new_checks_every_field() {
        assert_eq!(DateTime::new(10_000, 1, 1, 0, 0, 0), Err(DateTimeError::Year(10_000)));
        assert_eq!(DateTime::new(2024, 0, 1, 0, 0, 0), Err(DateTimeError::Month(0)));
        assert_eq!(DateTime::new(2024, 13, 1, 0, 0, 0), Err(DateTimeError::Month(13)));
        assert_eq!(DateTime::new(2024, 1, 0, 0, 0, 0), Err(DateTimeError::Day(0)));
        assert_eq!(DateTime::new(2024, 2, 30, 0, 0, 0), Err(DateTimeError::Day(30)));
        assert_eq!(DateTime::new(2023, 2, 29, 0, 0, 0), Err(DateTimeError::Day(29)));
        assert_eq!(DateTime::new(1900, 2, 29, 0, 0, 0), Err(DateTimeError::Day(29)));
        assert_eq!(DateTime::new(2024, 4, 31, 0, 0, 0), Err(DateTimeError::Day(31)));
        assert_eq!(DateTime::new(2024, 1, 1, 24, 0, 0), Err(DateTimeError::Hour(24)));
        assert_eq!(DateTime::new(2024, 1, 1, 0, 60, 0), Err(DateTimeError::Minute(60)));
        assert_eq!(DateTime::new(2024, 1, 1, 0, 0, 60), Err(DateTimeError::Second(60)));
        assert!(DateTime::new(2000, 2, 29, 23, 59, 59).is_ok());
        assert!(DateTime::new(9999, 12, 31, 0, 0, 0).is_ok());
        assert!(is_leap_year(2000) && !is_leap_year(1900) && is_leap_year(2024) && !is_leap_year(2023));
        assert_eq!(days_in_month(2024, 13), 0);
    }
}
