//! A virtual 16550A UART (serial port), as a plain state machine.
//!
//! The kernel forwards the guest's port accesses to `base + offset` (e.g.
//! COM1 at `0x3F8`) to [`Uart16550::read`] and [`Uart16550::write`]; bytes the
//! guest transmits come back from `write`, and bytes for the guest go in with
//! [`Uart16550::push_input`]. Nothing here knows about VMX.
//!
//! # Registers
//!
//! | offset | DLAB = 0, read | DLAB = 0, write | DLAB = 1 |
//! |---|---|---|---|
//! | 0 | RBR: receive buffer | THR: transmit holding | DLL: divisor low byte |
//! | 1 | IER: interrupt enable | IER | DLM: divisor high byte |
//! | 2 | IIR: interrupt identification | FCR: FIFO control | (same as DLAB = 0) |
//! | 3 | LCR: line control (bit 7 = DLAB) | LCR | |
//! | 4 | MCR: modem control | MCR | |
//! | 5 | LSR: line status | (ignored) | |
//! | 6 | MSR: modem status | (ignored) | |
//! | 7 | SCR: scratch | SCR | |
//!
//! # Simplifications
//!
//! * Transmission is instant: THR is always empty, so LSR bits 5 (THR empty)
//!   and 6 (transmitter empty) are always set.
//! * Received bytes wait in a queue of [`INPUT_CAPACITY`] bytes whether or not
//!   the guest enabled the FIFOs; a byte pushed into a full queue is dropped
//!   and reported as an overrun (LSR bit 1).
//! * No parity, framing or break errors; the modem lines report a connected
//!   peer (CTS, DSR and DCD set) except in loopback mode, where they mirror MCR.
//! * [`Uart16550::interrupt_pending`] tells what IIR would report; raising the
//!   interrupt in the guest is the caller's business.

/// Number of registers (I/O ports) the UART occupies.
pub const REGISTER_COUNT: u16 = 8;

/// Offset 0: RBR (read) / THR (write) when DLAB = 0, DLL when DLAB = 1.
pub const DATA: u16 = 0;
/// Offset 1: IER when DLAB = 0, DLM when DLAB = 1.
pub const INTERRUPT_ENABLE: u16 = 1;
/// Offset 2: IIR (read) / FCR (write).
pub const INTERRUPT_ID_FIFO_CONTROL: u16 = 2;
/// Offset 3: LCR.
pub const LINE_CONTROL: u16 = 3;
/// Offset 4: MCR.
pub const MODEM_CONTROL: u16 = 4;
/// Offset 5: LSR.
pub const LINE_STATUS: u16 = 5;
/// Offset 6: MSR.
pub const MODEM_STATUS: u16 = 6;
/// Offset 7: SCR.
pub const SCRATCH: u16 = 7;

/// How many received bytes the UART holds before it drops input.
pub const INPUT_CAPACITY: usize = 64;

/// The clock divided by the divisor latch gives the baud rate: 1.8432 MHz / 16.
pub const BASE_BAUD: u32 = 115_200;

/// LCR bit 7: divisor latch access.
pub const LCR_DLAB: u8 = 1 << 7;

/// LSR bit 0: a received byte is waiting in RBR.
pub const LSR_DATA_READY: u8 = 1 << 0;
/// LSR bit 1: input was lost because the queue was full.
pub const LSR_OVERRUN: u8 = 1 << 1;
/// LSR bit 5: THR is empty (may be written).
pub const LSR_THR_EMPTY: u8 = 1 << 5;
/// LSR bit 6: THR and the shift register are empty.
pub const LSR_TRANSMITTER_EMPTY: u8 = 1 << 6;

/// IER bit 0: interrupt when received data is available.
pub const IER_RECEIVED_DATA: u8 = 1 << 0;
/// IER bit 1: interrupt when THR becomes empty.
pub const IER_THR_EMPTY: u8 = 1 << 1;
/// IER bit 2: interrupt on line status changes (errors, overrun).
pub const IER_LINE_STATUS: u8 = 1 << 2;
/// IER bit 3: interrupt on modem status changes (never raised here).
pub const IER_MODEM_STATUS: u8 = 1 << 3;

/// IIR value when no interrupt is pending (bit 0 set).
pub const IIR_NONE: u8 = 0x01;
/// IIR identification: receiver line status (highest priority).
pub const IIR_LINE_STATUS: u8 = 0x06;
/// IIR identification: received data available.
pub const IIR_RECEIVED_DATA: u8 = 0x04;
/// IIR identification: THR empty.
pub const IIR_THR_EMPTY: u8 = 0x02;
/// IIR bits 7:6, set when the FIFOs are enabled.
pub const IIR_FIFOS_ENABLED: u8 = 0xC0;

/// FCR bit 0: enable FIFOs.
const FCR_ENABLE: u8 = 1 << 0;
/// FCR bit 1: clear the receive FIFO.
const FCR_CLEAR_RECEIVE: u8 = 1 << 1;

/// MCR bits 0 to 4 exist (DTR, RTS, OUT1, OUT2, LOOP).
const MCR_MASK: u8 = 0x1F;
/// MCR bit 3: OUT2, which gates the interrupt line on PCs.
pub const MCR_OUT2: u8 = 1 << 3;
/// MCR bit 4: loopback mode.
pub const MCR_LOOPBACK: u8 = 1 << 4;

/// MSR in normal mode: CTS (bit 4), DSR (bit 5) and DCD (bit 7) set.
const MSR_CONNECTED: u8 = 0xB0;

/// The UART's state.
#[derive(Debug, Clone)]
pub struct Uart16550 {
    input: [u8; INPUT_CAPACITY],
    input_head: usize,
    input_len: usize,
    divisor: u16,
    interrupt_enable: u8,
    line_control: u8,
    modem_control: u8,
    fifo_control: u8,
    scratch: u8,
    overrun: bool,
    /// A THR-empty interrupt is pending (until IIR reports it or THR is written).
    thr_empty_pending: bool,
}

impl Default for Uart16550 {
    fn default() -> Self {
        Self::new()
    }
}

impl Uart16550 {
    /// A UART in its reset state: all registers 0, divisor 1 (115200 baud),
    /// no input.
    pub const fn new() -> Self {
        Self {
            input: [0; INPUT_CAPACITY],
            input_head: 0,
            input_len: 0,
            divisor: 1,
            interrupt_enable: 0,
            line_control: 0,
            modem_control: 0,
            fifo_control: 0,
            scratch: 0,
            overrun: false,
            thr_empty_pending: false,
        }
    }

    fn dlab(&self) -> bool {
        self.line_control & LCR_DLAB != 0
    }

    fn loopback(&self) -> bool {
        self.modem_control & MCR_LOOPBACK != 0
    }

    /// Handles a guest write of `value` to register `offset`. Returns the byte
    /// to transmit when the guest wrote THR (offset 0 with DLAB = 0) outside
    /// loopback mode; `None` otherwise. Offsets beyond 7 are ignored.
    pub fn write(&mut self, offset: u16, value: u8) -> Option<u8> {
        match offset {
            DATA if self.dlab() => {
                self.divisor = (self.divisor & 0xFF00) | u16::from(value);
            }
            DATA => {
                // Sent at once, so THR is empty again right away.
                self.thr_empty_pending = self.interrupt_enable & IER_THR_EMPTY != 0;
                if self.loopback() {
                    self.push_input(value);
                } else {
                    return Some(value);
                }
            }
            INTERRUPT_ENABLE if self.dlab() => {
                self.divisor = (self.divisor & 0x00FF) | (u16::from(value) << 8);
            }
            INTERRUPT_ENABLE => {
                let was_enabled = self.interrupt_enable & IER_THR_EMPTY != 0;
                self.interrupt_enable = value & 0x0F;
                let now_enabled = self.interrupt_enable & IER_THR_EMPTY != 0;
                // Enabling the THR-empty interrupt while THR is empty raises it.
                if now_enabled && !was_enabled {
                    self.thr_empty_pending = true;
                } else if !now_enabled {
                    self.thr_empty_pending = false;
                }
            }
            INTERRUPT_ID_FIFO_CONTROL => {
                if value & FCR_CLEAR_RECEIVE != 0 {
                    self.input_head = 0;
                    self.input_len = 0;
                }
                // Only the enable bit and the trigger level (7:6) are kept.
                self.fifo_control = value & (FCR_ENABLE | 0xC0);
            }
            LINE_CONTROL => self.line_control = value,
            MODEM_CONTROL => self.modem_control = value & MCR_MASK,
            SCRATCH => self.scratch = value,
            // LSR and MSR are read-only; other offsets are not ours.
            _ => {}
        }
        None
    }

    /// Handles a guest read of register `offset`. Reading RBR takes the oldest
    /// queued byte (0 when none); reading LSR clears the overrun bit; reading
    /// IIR acknowledges a THR-empty interrupt. Offsets beyond 7 read `0xFF`,
    /// like an unconnected bus.
    pub fn read(&mut self, offset: u16) -> u8 {
        match offset {
            DATA if self.dlab() => self.divisor as u8,
            DATA => self.pop_input().unwrap_or(0),
            INTERRUPT_ENABLE if self.dlab() => (self.divisor >> 8) as u8,
            INTERRUPT_ENABLE => self.interrupt_enable,
            INTERRUPT_ID_FIFO_CONTROL => {
                let id = self.interrupt_id();
                if id == IIR_THR_EMPTY {
                    self.thr_empty_pending = false;
                }
                let fifos = if self.fifo_control & FCR_ENABLE != 0 { IIR_FIFOS_ENABLED } else { 0 };
                id | fifos
            }
            LINE_CONTROL => self.line_control,
            MODEM_CONTROL => self.modem_control,
            LINE_STATUS => {
                let status = self.line_status();
                self.overrun = false;
                status
            }
            MODEM_STATUS => self.modem_status(),
            SCRATCH => self.scratch,
            _ => 0xFF,
        }
    }

    /// The line status register's value, without the side effect of reading it.
    pub fn line_status(&self) -> u8 {
        let mut status = LSR_THR_EMPTY | LSR_TRANSMITTER_EMPTY;
        if self.input_len > 0 {
            status |= LSR_DATA_READY;
        }
        if self.overrun {
            status |= LSR_OVERRUN;
        }
        status
    }

    /// The modem status register: a connected peer normally, MCR's outputs
    /// looped back in loopback mode. Delta bits (3:0) are always 0.
    fn modem_status(&self) -> u8 {
        if !self.loopback() {
            return MSR_CONNECTED;
        }
        let mcr = self.modem_control;
        let dtr = mcr & 1;
        let rts = (mcr >> 1) & 1;
        let out1 = (mcr >> 2) & 1;
        let out2 = (mcr >> 3) & 1;
        (rts << 4) | (dtr << 5) | (out1 << 6) | (out2 << 7)
    }

    /// The highest-priority pending interrupt's IIR identification (bits 3:0),
    /// or [`IIR_NONE`].
    fn interrupt_id(&self) -> u8 {
        let enabled = self.interrupt_enable;
        if enabled & IER_LINE_STATUS != 0 && self.overrun {
            IIR_LINE_STATUS
        } else if enabled & IER_RECEIVED_DATA != 0 && self.input_len > 0 {
            IIR_RECEIVED_DATA
        } else if self.thr_empty_pending {
            IIR_THR_EMPTY
        } else {
            IIR_NONE
        }
    }

    /// Whether the UART has an enabled interrupt pending.
    pub fn interrupt_pending(&self) -> bool {
        self.interrupt_id() != IIR_NONE
    }

    /// Whether the UART drives its interrupt line: an interrupt is pending and
    /// the guest set MCR OUT2, which on PCs connects the UART to the interrupt
    /// controller (IRQ 4 for COM1).
    pub fn irq_asserted(&self) -> bool {
        self.interrupt_pending() && self.modem_control & MCR_OUT2 != 0
    }

    /// Queues one byte for the guest to read. Returns `false` (and flags an
    /// overrun) if the queue is full and the byte was dropped.
    pub fn push_input(&mut self, byte: u8) -> bool {
        if self.input_len == INPUT_CAPACITY {
            self.overrun = true;
            return false;
        }
        let tail = (self.input_head + self.input_len) % INPUT_CAPACITY;
        self.input[tail] = byte;
        self.input_len += 1;
        true
    }

    /// Queues as many of `bytes` as fit; returns how many were queued. Unlike
    /// [`push_input`](Self::push_input), stops at a full queue without
    /// flagging an overrun, so a caller can retry the rest later.
    pub fn push_input_bytes(&mut self, bytes: &[u8]) -> usize {
        let room = INPUT_CAPACITY - self.input_len;
        let taken = bytes.len().min(room);
        for &byte in &bytes[..taken] {
            self.push_input(byte);
        }
        taken
    }

    fn pop_input(&mut self) -> Option<u8> {
        if self.input_len == 0 {
            return None;
        }
        let byte = self.input[self.input_head];
        self.input_head = (self.input_head + 1) % INPUT_CAPACITY;
        self.input_len -= 1;
        Some(byte)
    }

    /// How many received bytes wait for the guest.
    pub const fn input_len(&self) -> usize {
        self.input_len
    }

    /// The divisor latch (DLM:DLL).
    pub const fn divisor(&self) -> u16 {
        self.divisor
    }

    /// The baud rate the divisor selects; 0 for divisor 0.
    pub const fn baud_rate(&self) -> u32 {
        match self.divisor {
            0 => 0,
            divisor => BASE_BAUD / divisor as u32,
        }
    }

    /// The line control register (word length, stop bits, parity, DLAB).
    pub const fn line_control(&self) -> u8 {
        self.line_control
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_status_always_reports_an_empty_transmitter() {
        let mut uart = Uart16550::new();
        let lsr = uart.read(LINE_STATUS);
        assert_eq!(lsr & LSR_THR_EMPTY, LSR_THR_EMPTY);
        assert_eq!(lsr & LSR_TRANSMITTER_EMPTY, LSR_TRANSMITTER_EMPTY);
        assert_eq!(lsr & LSR_DATA_READY, 0);
        assert_eq!(lsr, 0x60);
        uart.write(DATA, b'x');
        assert_eq!(uart.read(LINE_STATUS), 0x60);
        // Writes to LSR change nothing.
        uart.write(LINE_STATUS, 0xFF);
        assert_eq!(uart.read(LINE_STATUS), 0x60);
    }

    #[test]
    fn thr_write_yields_the_byte() {
        let mut uart = Uart16550::new();
        assert_eq!(uart.write(DATA, b'H'), Some(b'H'));
        assert_eq!(uart.write(DATA, 0), Some(0));
        for offset in 1..8 {
            assert_eq!(uart.write(offset, 0x03), None, "offset {offset}");
        }
        assert_eq!(uart.write(8, b'x'), None);
    }

    #[test]
    fn dlab_switches_offsets_0_and_1_to_the_divisor_latch() {
        let mut uart = Uart16550::new();
        uart.write(INTERRUPT_ENABLE, 0x00);
        uart.write(LINE_CONTROL, LCR_DLAB | 0x03);
        // With DLAB set, offset 0 is DLL, not THR: nothing is transmitted.
        assert_eq!(uart.write(DATA, 0x0C), None);
        assert_eq!(uart.write(INTERRUPT_ENABLE, 0x00), None);
        assert_eq!(uart.read(DATA), 0x0C);
        assert_eq!(uart.read(INTERRUPT_ENABLE), 0x00);
        assert_eq!(uart.divisor(), 12);
        assert_eq!(uart.baud_rate(), 9600);
        uart.write(INTERRUPT_ENABLE, 0x01);
        assert_eq!(uart.divisor(), 0x010C);
        // Back to normal: offsets 0 and 1 are data and IER again.
        uart.write(LINE_CONTROL, 0x03);
        assert_eq!(uart.line_control(), 0x03);
        assert_eq!(uart.read(INTERRUPT_ENABLE), 0x00);
        assert_eq!(uart.write(DATA, b'A'), Some(b'A'));
        assert_eq!(uart.divisor(), 0x010C);
    }

    #[test]
    fn scratch_and_control_registers_round_trip() {
        let mut uart = Uart16550::new();
        for value in [0x00, 0x5A, 0xA5, 0xFF] {
            uart.write(SCRATCH, value);
            assert_eq!(uart.read(SCRATCH), value);
            uart.write(LINE_CONTROL, value & 0x7F);
            assert_eq!(uart.read(LINE_CONTROL), value & 0x7F);
        }
        uart.write(MODEM_CONTROL, 0xFF);
        assert_eq!(uart.read(MODEM_CONTROL), 0x1F);
        uart.write(INTERRUPT_ENABLE, 0xFF);
        assert_eq!(uart.read(INTERRUPT_ENABLE), 0x0F);
        assert_eq!(uart.read(9), 0xFF);
    }

    #[test]
    fn reading_rbr_drains_queued_input_in_order() {
        let mut uart = Uart16550::new();
        assert_eq!(uart.push_input_bytes(b"hi"), 2);
        assert_eq!(uart.input_len(), 2);
        assert_eq!(uart.read(LINE_STATUS) & LSR_DATA_READY, LSR_DATA_READY);
        assert_eq!(uart.read(DATA), b'h');
        assert_eq!(uart.read(LINE_STATUS) & LSR_DATA_READY, LSR_DATA_READY);
        assert_eq!(uart.read(DATA), b'i');
        assert_eq!(uart.read(LINE_STATUS) & LSR_DATA_READY, 0);
        assert_eq!(uart.read(DATA), 0);
        assert_eq!(uart.input_len(), 0);
    }

    #[test]
    fn input_queue_wraps_and_reports_overrun() {
        let mut uart = Uart16550::new();
        // Wrap the ring a few times.
        for round in 0..3u8 {
            for i in 0..40u8 {
                assert!(uart.push_input(round ^ i));
            }
            for i in 0..40u8 {
                assert_eq!(uart.read(DATA), round ^ i);
            }
        }
        let bytes = [0x55u8; INPUT_CAPACITY + 10];
        assert_eq!(uart.push_input_bytes(&bytes), INPUT_CAPACITY);
        assert_eq!(uart.read(LINE_STATUS) & LSR_OVERRUN, 0);
        assert!(!uart.push_input(0x66));
        assert_eq!(uart.read(LINE_STATUS) & LSR_OVERRUN, LSR_OVERRUN);
        // Reading LSR cleared the overrun flag.
        assert_eq!(uart.read(LINE_STATUS) & LSR_OVERRUN, 0);
        assert_eq!(uart.input_len(), INPUT_CAPACITY);
        // FCR bit 1 empties the queue.
        uart.write(INTERRUPT_ID_FIFO_CONTROL, 0x03);
        assert_eq!(uart.input_len(), 0);
    }

    #[test]
    fn interrupt_identification_follows_priorities() {
        let mut uart = Uart16550::new();
        assert_eq!(uart.read(INTERRUPT_ID_FIFO_CONTROL), IIR_NONE);
        uart.write(INTERRUPT_ID_FIFO_CONTROL, 0x01);
        assert_eq!(uart.read(INTERRUPT_ID_FIFO_CONTROL), IIR_FIFOS_ENABLED | IIR_NONE);
        uart.write(INTERRUPT_ID_FIFO_CONTROL, 0x00);

        // THR-empty: raised on enabling, acknowledged by reading IIR.
        uart.write(INTERRUPT_ENABLE, IER_THR_EMPTY | IER_RECEIVED_DATA);
        assert!(uart.interrupt_pending());
        assert!(!uart.irq_asserted(), "OUT2 gates the line");
        uart.write(MODEM_CONTROL, MCR_OUT2);
        assert!(uart.irq_asserted());
        assert_eq!(uart.read(INTERRUPT_ID_FIFO_CONTROL), IIR_THR_EMPTY);
        assert_eq!(uart.read(INTERRUPT_ID_FIFO_CONTROL), IIR_NONE);
        // Raised again after each transmitted byte.
        uart.write(DATA, b'x');
        assert_eq!(uart.read(INTERRUPT_ID_FIFO_CONTROL), IIR_THR_EMPTY);

        // Received data outranks THR-empty; line status outranks both.
        uart.write(DATA, b'y');
        uart.push_input(b'z');
        assert_eq!(uart.read(INTERRUPT_ID_FIFO_CONTROL), IIR_RECEIVED_DATA);
        uart.write(INTERRUPT_ENABLE, IER_THR_EMPTY | IER_RECEIVED_DATA | IER_LINE_STATUS);
        uart.push_input_bytes(&[0; INPUT_CAPACITY]);
        uart.push_input(0);
        assert_eq!(uart.read(INTERRUPT_ID_FIFO_CONTROL), IIR_LINE_STATUS);
        uart.read(LINE_STATUS);
        assert_eq!(uart.read(INTERRUPT_ID_FIFO_CONTROL), IIR_RECEIVED_DATA);
        // Disabling everything silences the UART.
        uart.write(INTERRUPT_ENABLE, 0);
        assert!(!uart.interrupt_pending());
    }

    #[test]
    fn loopback_echoes_into_the_receiver_and_mirrors_modem_lines() {
        let mut uart = Uart16550::new();
        assert_eq!(uart.read(MODEM_STATUS), 0xB0);
        uart.write(MODEM_CONTROL, MCR_LOOPBACK | 0x0F);
        assert_eq!(uart.read(MODEM_STATUS), 0xF0);
        uart.write(MODEM_CONTROL, MCR_LOOPBACK | 0x02);
        assert_eq!(uart.read(MODEM_STATUS), 0x10);
        assert_eq!(uart.write(DATA, 0xAE), None);
        assert_eq!(uart.read(DATA), 0xAE);
        uart.write(MODEM_CONTROL, 0x0B);
        assert_eq!(uart.write(DATA, 0xAE), Some(0xAE));
    }
}
