//! A polling driver for the 16550 UART the hypervisor emulates at COM1, and
//! the `print!`/`println!` plumbing on top of it.
//!
//! Every register access is an I/O instruction, hence a VM exit (see
//! [`crate::port`]).

use core::fmt::{self, Write};

use hypervisor_core::hypercall::SERIAL_PORT;

use crate::port::{inb, outb};

// Register offsets from the UART's base port (with LCR.DLAB = 0 unless noted).
/// Transmit holding register (write) / divisor latch low byte (DLAB = 1).
const THR_DLL: u16 = 0;
/// Interrupt enable register / divisor latch high byte (DLAB = 1).
const IER_DLM: u16 = 1;
/// FIFO control register (write).
const FCR: u16 = 2;
/// Line control register.
const LCR: u16 = 3;
/// Modem control register.
const MCR: u16 = 4;
/// Line status register.
const LSR: u16 = 5;

/// LCR bit 7: divisor latch access.
const LCR_DLAB: u8 = 0x80;
/// LCR: 8 data bits, no parity, 1 stop bit.
const LCR_8N1: u8 = 0x03;
/// FCR: enable the FIFOs, clear both, receive trigger level 14 bytes.
const FCR_ENABLE_CLEAR_14: u8 = 0xC7;
/// MCR: DTR and RTS asserted; OUT2 (the interrupt gate) left off, we poll.
const MCR_DTR_RTS: u8 = 0x03;
/// LSR bit 5: transmit holding register (FIFO) empty.
const LSR_THR_EMPTY: u8 = 0x20;

/// Divisor for 115200 baud (the UART's 1.8432 MHz clock / 16 / 115200).
const DIVISOR_115200: u16 = 1;

/// How many times to poll LSR before sending a byte anyway. Like Linux's
/// 8250 driver, a bounded wait: a device that never reports "THR empty"
/// garbles output instead of hanging the guest.
const THR_EMPTY_POLLS: u32 = 10_000;

/// A 16550 UART driven by polling. It holds only its base port, so any number
/// of handles (the `print!` macros', the panic handler's, a payload's own)
/// may coexist; they all drive the same device.
pub struct Uart {
    base: u16,
}

impl Uart {
    /// A handle for the UART at `base` (not yet initialized).
    pub const fn new(base: u16) -> Self {
        Self { base }
    }

    /// A handle for the guest's COM1 (`hypervisor_core::hypercall::SERIAL_PORT`),
    /// which guest-rt's entry code initializes before the payload runs.
    pub const fn com1() -> Self {
        Self::new(SERIAL_PORT)
    }

    /// Programs the UART the way a real driver does: interrupts off,
    /// 115200 baud 8N1, FIFOs enabled and cleared, DTR/RTS up.
    pub fn init(&mut self) {
        let [divisor_low, divisor_high] = DIVISOR_115200.to_le_bytes();
        // SAFETY: the ports are this UART's registers; programming them only
        // changes the UART's own state.
        unsafe {
            outb(self.base + IER_DLM, 0x00);
            outb(self.base + LCR, LCR_DLAB);
            outb(self.base + THR_DLL, divisor_low);
            outb(self.base + IER_DLM, divisor_high);
            outb(self.base + LCR, LCR_8N1);
            outb(self.base + FCR, FCR_ENABLE_CLEAR_14);
            outb(self.base + MCR, MCR_DTR_RTS);
        }
    }

    /// Sends one byte once the transmitter can take it (LSR bit 5).
    pub fn write_byte(&mut self, byte: u8) {
        // SAFETY: reading LSR and writing THR only affect this UART.
        unsafe {
            for _ in 0..THR_EMPTY_POLLS {
                if inb(self.base + LSR) & LSR_THR_EMPTY != 0 {
                    break;
                }
            }
            outb(self.base + THR_DLL, byte);
        }
    }
}

/// Bytes go out as they are: a line ends with a bare `\n` (no `\r`), which is
/// what the hypervisor's line splitting expects.
impl fmt::Write for Uart {
    fn write_str(&mut self, text: &str) -> fmt::Result {
        for byte in text.bytes() {
            self.write_byte(byte);
        }
        Ok(())
    }
}

/// Writes formatted text to COM1: the body of [`print!`](crate::print) and
/// [`println!`](crate::println). [`Uart::write_str`] cannot fail, so the
/// `fmt::Result` (which could only come from a failing `Display` impl) is
/// dropped rather than turned into a panic.
#[doc(hidden)]
pub fn print_args(args: fmt::Arguments<'_>) {
    let _ = Uart::com1().write_fmt(args);
}

/// Prints to the guest's COM1 UART, like `std::print!`.
#[macro_export]
macro_rules! print {
    ($($arg:tt)*) => {
        $crate::uart::print_args(::core::format_args!($($arg)*))
    };
}

/// Prints to the guest's COM1 UART with a trailing `\n`, like `std::println!`.
#[macro_export]
macro_rules! println {
    () => {
        $crate::print!("\n")
    };
    ($($arg:tt)*) => {
        $crate::uart::print_args(::core::format_args!("{}\n", ::core::format_args!($($arg)*)))
    };
}
