//! Measuring the TSC frequency against the 8254 PIT.
//!
//! PIT channel 2 counts down at 1,193,182 Hz whatever the CPU does; gating it
//! for 10 ms and counting TSC ticks meanwhile gives the TSC rate. Guests learn
//! it through the `info` hypercall. (In Bochs the TSC advances at the
//! configured `ips` rate; the CPUID leaves 0x15/0x16 there do not match it.)

use x86_64::instructions::port::Port;

const PIT_HZ: u64 = 1_193_182;
/// Calibration window: 10 ms worth of PIT counts.
const WINDOW_COUNTS: u16 = (PIT_HZ / 100) as u16;

/// Measures the TSC frequency in Hz (0 if the PIT never fired).
pub fn measure_hz() -> u64 {
    // SAFETY: ports 0x42/0x43/0x61 are the PIT's channel 2 and the speaker
    // gate on every PC; the speaker output (bit 1 of 0x61) stays off.
    unsafe {
        let mut gate = Port::<u8>::new(0x61);
        let mut command = Port::<u8>::new(0x43);
        let mut channel2 = Port::<u8>::new(0x42);
        let saved = gate.read();
        gate.write((saved & !0x02) & !0x01); // gate low, speaker off
        command.write(0b1011_0000); // channel 2, lobyte/hibyte, mode 0, binary
        channel2.write(WINDOW_COUNTS as u8);
        channel2.write((WINDOW_COUNTS >> 8) as u8);
        gate.write((saved & !0x02) | 0x01); // gate high: counting starts
        let start = crate::vmx::read_tsc();
        let mut spins: u64 = 0;
        // OUT2 (bit 5 of port 0x61) goes high when the count reaches zero.
        while gate.read() & 0x20 == 0 {
            spins += 1;
            if spins > 200_000_000 {
                gate.write(saved);
                return 0;
            }
        }
        let end = crate::vmx::read_tsc();
        gate.write(saved);
        (end - start) * PIT_HZ / u64::from(WINDOW_COUNTS)
    }
}
