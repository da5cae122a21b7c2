//! Powering the machine off with a verdict.
//!
//! Bochs quits when the bytes of "Shutdown" are written to port 0x8900; QEMU's
//! `isa-debug-exit` device (at port 0xF4) exits with `(value << 1) | 1`. The
//! kernel writes both, after the UART has drained, and prints the verdict line
//! the runner reads first: its exit status comes from that line, not from the
//! emulator's exit code.

use crate::platform::console;
use x86_64::instructions::port::Port;

/// How the run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Everything went as expected.
    Pass,
    /// Something failed; the reason was printed before.
    Fail,
}

/// Value written to QEMU's isa-debug-exit for success (QEMU exits with 33).
const QEMU_EXIT_SUCCESS: u32 = 0x10;
/// Value written to QEMU's isa-debug-exit for failure (QEMU exits with 35).
const QEMU_EXIT_FAILURE: u32 = 0x11;

/// Prints the verdict line, drains the UART and powers off. Never returns.
pub fn power_off(verdict: Verdict, reason: &str) -> ! {
    match verdict {
        Verdict::Pass => crate::println!("hypervisor: verdict PASS"),
        Verdict::Fail => crate::println!("hypervisor: verdict FAIL: {}", reason),
    }
    console::drain();
    // SAFETY: these ports belong to the emulators' power-off devices; on real
    // hardware port 0x8900 and 0xF4 are unused, and we are halting anyway.
    unsafe {
        let mut bochs_shutdown = Port::<u8>::new(0x8900);
        for byte in b"Shutdown" {
            bochs_shutdown.write(*byte);
        }
        let code = match verdict {
            Verdict::Pass => QEMU_EXIT_SUCCESS,
            Verdict::Fail => QEMU_EXIT_FAILURE,
        };
        Port::<u32>::new(0xF4).write(code);
    }
    halt_forever()
}

/// Stops this CPU for good (interrupts off, HLT in a loop).
pub fn halt_forever() -> ! {
    loop {
        x86_64::instructions::interrupts::disable();
        x86_64::instructions::hlt();
    }
}
