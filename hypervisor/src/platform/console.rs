//! The serial console on COM1, and the hypervisor's log macros.
//!
//! Bochs charges every transmitted byte its real time at the programmed baud
//! rate, so the UART runs at its highest rate (115200 baud, divisor 1).
//!
//! Even so a byte takes ~87 µs of emulated time, and a hypervisor that waited
//! for the UART after every byte would stop all guests for the length of each
//! line it prints (a guest's timer would then miss its ticks). So output goes
//! into a [`BUFFER_BYTES`] ring buffer, and [`pump`] moves bytes from it into
//! the UART's 16-byte FIFO whenever the FIFO is empty, without waiting: the
//! scheduler calls it between time slices and while idle, the I/O exit path
//! after guest output. Only a full buffer makes a writer wait; [`drain`]
//! (before power-off, and in the panic and exception paths) empties it all.

use core::fmt::{self, Write};
use core::sync::atomic::{AtomicU8, Ordering};
use spin::Mutex;
use uart_16550::SerialPort;
use x86_64::instructions::port::Port;

/// I/O base of the first serial port (COM1).
const COM1: u16 = 0x3F8;

/// Bytes of output the console holds while the UART sends them.
pub const BUFFER_BYTES: usize = 64 * 1024;
/// The UART's transmit FIFO depth (16550A).
const FIFO_BYTES: usize = 16;

/// Output waiting for the UART.
struct Ring {
    bytes: [u8; BUFFER_BYTES],
    /// Index of the oldest byte.
    head: usize,
    /// Bytes held.
    len: usize,
}

/// The console: the port and its output buffer. A spin lock is enough: the
/// hypervisor runs on one CPU with interrupts disabled, and exception
/// handlers use [`force_unlock`].
struct Console {
    port: Option<SerialPort>,
    ring: Ring,
}

static CONSOLE: Mutex<Console> =
    Mutex::new(Console { port: None, ring: Ring { bytes: [0; BUFFER_BYTES], head: 0, len: 0 } });

/// LSR bit 5: the transmit FIFO is empty (THRE).
const LSR_THR_EMPTY: u8 = 1 << 5;
/// LSR bit 6: FIFO and shift register empty (TEMT).
const LSR_TRANSMITTER_EMPTY: u8 = 1 << 6;

fn line_status() -> u8 {
    // SAFETY: reading the line status register has no side effects.
    unsafe { Port::<u8>::new(COM1 + 5).read() }
}

impl Console {
    /// Moves up to one FIFO's worth of bytes into the UART if its FIFO is
    /// empty; returns whether bytes remain buffered.
    fn pump(&mut self) -> bool {
        if self.ring.len == 0 {
            return false;
        }
        if self.port.is_none() || line_status() & LSR_THR_EMPTY == 0 {
            return self.port.is_some();
        }
        for _ in 0..FIFO_BYTES.min(self.ring.len) {
            let byte = self.ring.bytes[self.ring.head];
            // SAFETY: THR of COM1; the FIFO has room for FIFO_BYTES bytes.
            unsafe { Port::<u8>::new(COM1).write(byte) };
            self.ring.head = (self.ring.head + 1) % BUFFER_BYTES;
            self.ring.len -= 1;
        }
        self.ring.len != 0
    }
}

impl Console {
    /// Queues `bytes`, copying as much as fits at once (at most two pieces:
    /// up to the end of the ring, then from its start).
    fn push_all(&mut self, mut bytes: &[u8]) {
        if self.port.is_none() {
            return;
        }
        while !bytes.is_empty() {
            while self.ring.len == BUFFER_BYTES {
                self.pump();
                core::hint::spin_loop();
            }
            let tail = (self.ring.head + self.ring.len) % BUFFER_BYTES;
            let room = (BUFFER_BYTES - self.ring.len).min(BUFFER_BYTES - tail);
            let count = room.min(bytes.len());
            self.ring.bytes[tail..tail + count].copy_from_slice(&bytes[..count]);
            self.ring.len += count;
            bytes = &bytes[count..];
        }
    }
}

impl Write for Console {
    fn write_str(&mut self, text: &str) -> fmt::Result {
        self.push_all(text.as_bytes());
        Ok(())
    }
}

/// Feeds the UART from the buffer without waiting (see the module docs).
#[inline]
pub fn pump() {
    if let Some(mut console) = CONSOLE.try_lock() {
        console.pump();
    }
}

/// How much the hypervisor says, from quiet to chatty.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
#[repr(u8)]
pub enum Level {
    /// Something went wrong.
    Error = 0,
    /// Something looks wrong but the hypervisor goes on.
    Warn = 1,
    /// The story of a normal run.
    Info = 2,
    /// Details for whoever is debugging.
    Debug = 3,
}

impl Level {
    /// Decodes a level number (from the boot blob); out-of-range means Debug.
    pub fn from_u8(value: u8) -> Self {
        match value {
            0 => Level::Error,
            1 => Level::Warn,
            2 => Level::Info,
            _ => Level::Debug,
        }
    }

    fn tag(self) -> &'static str {
        match self {
            Level::Error => "ERROR",
            Level::Warn => "WARN ",
            Level::Info => "INFO ",
            Level::Debug => "DEBUG",
        }
    }
}

static MAX_LEVEL: AtomicU8 = AtomicU8::new(Level::Info as u8);

/// Chooses which messages are printed from now on.
pub fn set_level(level: Level) {
    MAX_LEVEL.store(level as u8, Ordering::Relaxed);
}

/// Whether messages of `level` are printed.
pub fn enabled(level: Level) -> bool {
    level as u8 <= MAX_LEVEL.load(Ordering::Relaxed)
}

/// Programs COM1: 8-N-1, FIFOs on, 115200 baud.
pub fn init() {
    // SAFETY: COM1 is the PC's standard serial port; nothing else in the
    // hypervisor drives these ports.
    let mut port = unsafe { SerialPort::new(COM1) };
    port.init();
    // uart_16550 programs 38400 baud; switch to divisor 1 (115200 baud) so each
    // byte costs a third of the emulated time.
    // SAFETY: same ports as above; DLAB is set only while writing the divisor.
    unsafe {
        let mut line_control = Port::<u8>::new(COM1 + 3);
        let lcr = line_control.read();
        line_control.write(lcr | 0x80);
        Port::<u8>::new(COM1).write(1);
        Port::<u8>::new(COM1 + 1).write(0);
        line_control.write(lcr & !0x80);
    }
    CONSOLE.lock().port = Some(port);
}

/// Sends everything buffered and waits until the UART has sent every byte
/// (LSR bit 6, "transmitter empty"). Without it, powering off loses the last
/// bytes in Bochs.
pub fn drain() {
    let mut console = CONSOLE.lock();
    while console.pump() {
        core::hint::spin_loop();
    }
    drop(console);
    for _ in 0..10_000_000u32 {
        if line_status() & LSR_TRANSMITTER_EMPTY != 0 {
            return;
        }
        core::hint::spin_loop();
    }
}

/// Breaks the console lock: used only by handlers that never return to the
/// interrupted code (exceptions, panic), which may have held it.
///
/// # Safety
/// The caller must never return to the code that held the lock.
pub unsafe fn force_unlock() {
    // SAFETY: the caller guarantees the previous holder never resumes.
    unsafe { CONSOLE.force_unlock() };
}

/// Writes formatted text to the console as is.
pub fn write_fmt(args: fmt::Arguments) {
    let mut console = CONSOLE.lock();
    let _ = console.write_fmt(args);
    console.pump();
}

/// Writes raw bytes to the console (guest output).
pub fn write_bytes(bytes: &[u8]) {
    let mut console = CONSOLE.lock();
    console.push_all(bytes);
    console.pump();
}

/// Writes one log line `[hv LEVEL] message`.
pub fn log(level: Level, args: fmt::Arguments) {
    if enabled(level) {
        write_fmt(format_args!("[hv {}] {}\n", level.tag(), args));
    }
}

/// Prints text to the console without a prefix.
#[macro_export]
macro_rules! print {
    ($($arg:tt)*) => { $crate::platform::console::write_fmt(format_args!($($arg)*)) };
}

/// Prints a line to the console without a prefix.
#[macro_export]
macro_rules! println {
    () => { $crate::print!("\n") };
    ($($arg:tt)*) => { $crate::print!("{}\n", format_args!($($arg)*)) };
}

/// Logs an error line.
#[macro_export]
macro_rules! error {
    ($($arg:tt)*) => { $crate::platform::console::log($crate::platform::console::Level::Error, format_args!($($arg)*)) };
}
/// Logs a warning line.
#[macro_export]
macro_rules! warn {
    ($($arg:tt)*) => { $crate::platform::console::log($crate::platform::console::Level::Warn, format_args!($($arg)*)) };
}
/// Logs an information line.
#[macro_export]
macro_rules! info {
    ($($arg:tt)*) => { $crate::platform::console::log($crate::platform::console::Level::Info, format_args!($($arg)*)) };
}
/// Logs a debug line.
#[macro_export]
macro_rules! debug {
    ($($arg:tt)*) => { $crate::platform::console::log($crate::platform::console::Level::Debug, format_args!($($arg)*)) };
}
