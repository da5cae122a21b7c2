//! A virtual pair of 8259A programmable interrupt controllers (PICs), wired as
//! in a PC: the master at ports `0x20`/`0x21`, the slave at `0xA0`/`0xA1`,
//! the slave's INT output on the master's input IR2.
//!
//! Each chip has three 8-bit registers, one bit per input line IR0..IR7
//! (Intel 8259A datasheet, "Interrupt Request Register (IRR) and In-Service
//! Register (ISR)" and "Interrupt Mask Register (IMR)"):
//!
//! * IRR — the lines that asked for service (a low-to-high edge was seen),
//! * ISR — the lines being serviced (acknowledged, not yet ended by an EOI),
//! * IMR — the lines the software masked.
//!
//! The chip raises INT when an unmasked request outranks everything in
//! service. The CPU answers with an INTA cycle; the chip then moves the
//! winner from IRR to ISR and puts `vector base + line` on the bus. For a
//! request on the master's cascade line the slave supplies the vector.
//!
//! # How the hypervisor uses it
//!
//! The kernel forwards the guest's `IN`/`OUT` on the ports of
//! [`Pic8259Pair::handles`] to [`Pic8259Pair::read`] and
//! [`Pic8259Pair::write`]. Virtual devices (the PIT on IRQ 0, the UART on
//! IRQ 4, ...) drive lines with [`Pic8259Pair::set_irq_level`] or
//! [`Pic8259Pair::pulse_irq`]. Before a VM entry the kernel asks
//! [`Pic8259Pair::pending_interrupt`] (the INTR pin); when the guest can take
//! an interrupt (RFLAGS.IF = 1, no blocking by STI/MOV SS) it calls
//! [`Pic8259Pair::acknowledge`] and injects the returned vector as an external
//! interrupt (SDM Vol. 3C, 25.8.3 "VM-Entry Controls for Event Injection" and
//! 27.6 "Event Injection"); otherwise it sets "interrupt-window exiting" (SDM
//! Vol. 3C, 26.7.5) and tries again at that exit. Nothing here knows about VMX.
//!
//! # Ports
//!
//! | port | read | write |
//! |---|---|---|
//! | `0x20` master command | IRR or ISR (OCW3 selects), or the poll word | ICW1 (bit 4 = 1), OCW2 (bits 4:3 = 00), OCW3 (bits 4:3 = 01) |
//! | `0x21` master data | IMR | ICW2..ICW4 during initialisation, OCW1 (IMR) after |
//! | `0xA0` slave command | as `0x20` | as `0x20` |
//! | `0xA1` slave data | as `0x21` | as `0x21` |
//! | `0x4D0` / `0x4D1` ELCR | stored value | stored (reserved bits forced to 0) |
//!
//! # Command words
//!
//! | word | bits |
//! |---|---|
//! | ICW1 | 4 = 1, 3 LTIM (level mode), 1 SNGL (no cascade), 0 IC4 (ICW4 follows) |
//! | ICW2 | 7:3 vector base (bits 2:0 come from the line number) |
//! | ICW3 | master: one bit per input with a slave; slave: its cascade identity in 2:0 |
//! | ICW4 | 4 SFNM (special fully nested), 1 AEOI (automatic EOI), 0 µPM (8086 mode) |
//! | OCW1 | the IMR |
//! | OCW2 | 7:5 R SL EOI (see [`Pic8259::write_command`]), 2:0 line for the specific forms |
//! | OCW3 | 6 ESMM, 5 SMM (special mask mode), 2 P (poll), 1 RR, 0 RIS (read ISR instead of IRR) |
//!
//! # Simplifications
//!
//! * Power-on state: a real chip comes up uninitialised with undefined
//!   registers. Here both chips start with IMR = `0xFF`, IRR = ISR = 0, vector
//!   base 0, and deliver nothing until the guest completed an ICW1..ICW4
//!   sequence. While a sequence is in progress the chip delivers nothing.
//! * ICW1 clears IRR and ISR as well as the IMR (the datasheet only promises
//!   the IMR; emulators clear all three, and so do we). Lines that are high
//!   stay "seen": a new low-to-high transition is needed, as the datasheet says.
//! * All inputs are edge-triggered. ICW1's LTIM bit and the ELCR are stored
//!   but change nothing.
//! * A request stays latched in IRR until it is acknowledged, even if its line
//!   drops first. (On the real chip the line must stay high until the first
//!   INTA pulse.) This is what makes [`Pic8259Pair::pulse_irq`] work. A request
//!   can still vanish before the INTA cycle by being masked, see
//!   [`Pic8259Pair::acknowledge`].
//! * The master's cascade input IR2 is set whenever the slave's INT output is
//!   high (not only on its rising edge), so that a slave that keeps INT high
//!   across an INTA cycle (auto-EOI) is not lost. Calls of
//!   [`Pic8259Pair::set_irq_level`] for IRQ 2 are ignored: on a PC that line is
//!   the cascade.
//! * The cascade is taken to be on IR2 whenever the master is in cascade mode
//!   with ICW3 bit 2 set; other ICW3 bits and the slave's identity are stored
//!   and not checked.
//! * ICW4's µPM bit is ignored: the chip always works in 8086 mode (the vector
//!   is `base | line`). The buffered-mode bits are ignored.
//! * Rotation (OCW2 rotate on EOI, set priority, rotate in auto-EOI mode),
//!   special mask mode and the poll command are implemented. A poll acts on
//!   one chip only: polling the master reports level 2 for a slave request
//!   without touching the slave.

/// Master command port (ICW1, OCW2, OCW3; reads IRR/ISR).
pub const MASTER_COMMAND: u16 = 0x20;
/// Master data port (ICW2..ICW4, OCW1; reads IMR).
pub const MASTER_DATA: u16 = 0x21;
/// Slave command port.
pub const SLAVE_COMMAND: u16 = 0xA0;
/// Slave data port.
pub const SLAVE_DATA: u16 = 0xA1;
/// Edge/level control register for IRQ 0..7 (PIIX/ICH chipsets, not the 8259A).
pub const ELCR_MASTER: u16 = 0x4D0;
/// Edge/level control register for IRQ 8..15.
pub const ELCR_SLAVE: u16 = 0x4D1;

/// The master input the slave's INT output is wired to on a PC.
pub const CASCADE_LINE: u8 = 2;

/// ICW1 marker: a command-port write with bit 4 set starts initialisation.
const ICW1_INIT: u8 = 1 << 4;
/// ICW1 bit 0: ICW4 follows.
const ICW1_IC4: u8 = 1 << 0;
/// ICW1 bit 1: single chip, no ICW3.
const ICW1_SINGLE: u8 = 1 << 1;
/// ICW1 bit 3: level-triggered mode (stored, not honoured).
const ICW1_LEVEL: u8 = 1 << 3;
/// ICW2 keeps bits 7:3; the line number fills bits 2:0 of the vector.
const ICW2_BASE_MASK: u8 = 0xF8;
/// ICW4 bit 1: automatic EOI at the end of the INTA cycle.
const ICW4_AUTO_EOI: u8 = 1 << 1;
/// ICW4 bit 4: special fully nested mode.
const ICW4_SPECIAL_FULLY_NESTED: u8 = 1 << 4;
/// A command-port write with bits 4:3 = 01 is OCW3.
const OCW3_MARKER: u8 = 1 << 3;
/// OCW3 bit 0: read ISR (with bit 1 set) instead of IRR.
const OCW3_READ_ISR: u8 = 1 << 0;
/// OCW3 bit 1: bit 0 is valid.
const OCW3_READ_REGISTER: u8 = 1 << 1;
/// OCW3 bit 2: poll command.
const OCW3_POLL: u8 = 1 << 2;
/// OCW3 bit 5: special mask mode on (with bit 6).
const OCW3_SPECIAL_MASK: u8 = 1 << 5;
/// OCW3 bit 6: bit 5 is valid.
const OCW3_SET_SPECIAL_MASK: u8 = 1 << 6;
/// Poll word bit 7: an interrupt was pending.
pub const POLL_INTERRUPT: u8 = 1 << 7;
/// ELCR bits that must be 0: IRQ 0, 1 and 2 (always edge) on the master.
const ELCR_MASTER_WRITABLE: u8 = 0xF8;
/// ELCR bits that must be 0: IRQ 8 and 13 on the slave.
const ELCR_SLAVE_WRITABLE: u8 = 0xDE;

/// Where a chip stands in its initialisation sequence.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum InitState {
    /// Initialised (or never initialised, see [`Pic8259::is_initialised`]):
    /// data-port writes are OCW1.
    Ready,
    /// ICW1 seen; the next data-port write is ICW2.
    ExpectIcw2,
    /// The next data-port write is ICW3.
    ExpectIcw3,
    /// The next data-port write is ICW4.
    ExpectIcw4,
}

/// One 8259A chip.
#[derive(Debug, Clone)]
pub struct Pic8259 {
    irr: u8,
    isr: u8,
    imr: u8,
    /// Last level of each input line, for edge detection.
    input_levels: u8,
    vector_base: u8,
    init_state: InitState,
    initialised: bool,
    /// ICW1 asked for ICW4.
    expects_icw4: bool,
    /// ICW1 SNGL: no cascade, no ICW3.
    single: bool,
    level_triggered: bool,
    /// ICW3 as written: slave lines (master) or cascade identity (slave).
    icw3: u8,
    auto_eoi: bool,
    special_fully_nested: bool,
    /// OCW2 "rotate in automatic EOI mode".
    rotate_on_auto_eoi: bool,
    /// The line with the lowest priority; the one after it has the highest.
    lowest_priority: u8,
    special_mask: bool,
    /// OCW3 selected ISR (instead of IRR) for command-port reads.
    read_isr: bool,
    /// OCW3 issued a poll command: the next read returns the poll word.
    poll_pending: bool,
    /// This chip is the master of a pair (its IR2 may carry a slave).
    is_master: bool,
}

impl Pic8259 {
    /// A chip in the power-on state described in the module documentation.
    /// `is_master` tells whether its ICW3 names slaves (master) or its own
    /// cascade identity (slave).
    pub const fn new(is_master: bool) -> Self {
        Self {
            irr: 0,
            isr: 0,
            imr: 0xFF,
            input_levels: 0,
            vector_base: 0,
            init_state: InitState::Ready,
            initialised: false,
            expects_icw4: false,
            single: false,
            level_triggered: false,
            icw3: 0,
            auto_eoi: false,
            special_fully_nested: false,
            rotate_on_auto_eoi: false,
            lowest_priority: 7,
            special_mask: false,
            read_isr: false,
            poll_pending: false,
            is_master,
        }
    }

    /// Interrupt request register.
    pub const fn irr(&self) -> u8 {
        self.irr
    }

    /// In-service register.
    pub const fn isr(&self) -> u8 {
        self.isr
    }

    /// Interrupt mask register.
    pub const fn imr(&self) -> u8 {
        self.imr
    }

    /// Vector of IR0 (ICW2 with bits 2:0 cleared).
    pub const fn vector_base(&self) -> u8 {
        self.vector_base
    }

    /// Whether a complete ICW1..ICW4 sequence has been written and no new
    /// one is in progress.
    pub const fn is_initialised(&self) -> bool {
        self.initialised && matches!(self.init_state, InitState::Ready)
    }

    /// Whether ICW4 selected automatic EOI.
    pub const fn auto_eoi(&self) -> bool {
        self.auto_eoi
    }

    /// Whether ICW1 selected level-triggered mode (stored only).
    pub const fn level_triggered(&self) -> bool {
        self.level_triggered
    }

    /// Whether OCW3 switched on special mask mode.
    pub const fn special_mask(&self) -> bool {
        self.special_mask
    }

    /// The line with the lowest priority (7 unless rotated).
    pub const fn lowest_priority(&self) -> u8 {
        self.lowest_priority
    }

    /// Whether this master routes IR2 to a slave.
    fn cascades_on(&self, line: u8) -> bool {
        self.is_master && !self.single && line == CASCADE_LINE && self.icw3 & (1 << CASCADE_LINE) != 0
    }

    /// Priority rank of `line`: 0 is the highest. With no rotation IR0 has
    /// rank 0 and IR7 rank 7 (datasheet, "Fully Nested Mode").
    fn rank(&self, line: u8) -> u8 {
        line.wrapping_sub(self.lowest_priority).wrapping_sub(1) & 7
    }

    /// The highest-priority line set in `bits`.
    fn highest_priority(&self, bits: u8) -> Option<u8> {
        (0..8u8)
            .map(|rank| self.lowest_priority.wrapping_add(1).wrapping_add(rank) & 7)
            .find(|line| bits & (1 << line) != 0)
    }

    /// The line the chip would deliver now: the highest unmasked request,
    /// unless something of higher (or, outside special fully nested mode on
    /// a cascade line, equal) priority is in service. In special mask mode
    /// masked in-service lines do not block (datasheet, "Special Mask Mode").
    fn deliverable_line(&self) -> Option<u8> {
        if !self.is_initialised() {
            return None;
        }
        let line = self.highest_priority(self.irr & !self.imr)?;
        let blocking = if self.special_mask { self.isr & !self.imr } else { self.isr };
        match self.highest_priority(blocking) {
            Some(busy) if self.rank(busy) < self.rank(line) => None,
            Some(busy) if busy == line && !(self.special_fully_nested && self.cascades_on(line)) => None,
            _ => Some(line),
        }
    }

    /// The chip's INT output.
    pub fn int_output(&self) -> bool {
        self.deliverable_line().is_some()
    }

    /// Drives input line `line` (0..7; others are ignored). A low-to-high
    /// transition sets the line's IRR bit.
    pub fn set_input_level(&mut self, line: u8, high: bool) {
        if line > 7 {
            return;
        }
        let bit = 1u8 << line;
        if high && self.input_levels & bit == 0 {
            self.irr |= bit;
        }
        if high {
            self.input_levels |= bit;
        } else {
            self.input_levels &= !bit;
        }
    }

    /// The chip's part of an INTA cycle for `line`: the request leaves IRR and
    /// enters ISR, or with automatic EOI is ended at once (datasheet,
    /// "Automatic End of Interrupt (AEOI) Mode"), rotating if so asked.
    fn acknowledge_line(&mut self, line: u8) {
        let bit = 1u8 << line;
        self.irr &= !bit;
        if self.auto_eoi {
            if self.rotate_on_auto_eoi {
                self.lowest_priority = line;
            }
        } else {
            self.isr |= bit;
        }
    }

    /// The vector for `line`.
    const fn vector(&self, line: u8) -> u8 {
        self.vector_base | (line & 7)
    }

    /// The spurious vector: IR7's, which the chip supplies when an INTA cycle
    /// finds no request (datasheet, "Interrupt Sequence", step 5 note).
    pub const fn spurious_vector(&self) -> u8 {
        self.vector(7)
    }

    /// A command-port write: ICW1, OCW2 or OCW3.
    ///
    /// OCW2 bits 7:5 (R, SL, EOI) select (datasheet, "Operation Command Word 2"):
    ///
    /// | R SL EOI | command |
    /// |---|---|
    /// | 0 0 1 | non-specific EOI: end the highest-priority line in service |
    /// | 0 1 1 | specific EOI: end line L (bits 2:0) |
    /// | 1 0 1 | rotate on non-specific EOI: as 001, then that line becomes lowest |
    /// | 1 1 1 | rotate on specific EOI: as 011, then L becomes lowest |
    /// | 1 0 0 | set rotate in automatic EOI mode |
    /// | 0 0 0 | clear rotate in automatic EOI mode |
    /// | 1 1 0 | set priority: L becomes lowest |
    /// | 0 1 0 | no operation |
    pub fn write_command(&mut self, value: u8) {
        if value & ICW1_INIT != 0 {
            self.start_initialisation(value);
        } else if value & OCW3_MARKER != 0 {
            self.write_ocw3(value);
        } else {
            self.write_ocw2(value);
        }
    }

    /// ICW1: reset and wait for ICW2 (datasheet, "Initialization Command
    /// Words": IMR cleared, IR7 lowest priority, special mask mode off, IRR
    /// selected for reads, ICW4 functions zeroed if IC4 = 0).
    fn start_initialisation(&mut self, icw1: u8) {
        let is_master = self.is_master;
        let input_levels = self.input_levels;
        *self = Self::new(is_master);
        // Lines already high need a fresh rising edge: keep their levels.
        self.input_levels = input_levels;
        self.imr = 0;
        self.expects_icw4 = icw1 & ICW1_IC4 != 0;
        self.single = icw1 & ICW1_SINGLE != 0;
        self.level_triggered = icw1 & ICW1_LEVEL != 0;
        self.init_state = InitState::ExpectIcw2;
    }

    fn write_ocw2(&mut self, value: u8) {
        let level = value & 7;
        match value >> 5 {
            0b001 => {
                self.non_specific_eoi();
            }
            0b011 => self.isr &= !(1 << level),
            0b101 => {
                if let Some(line) = self.non_specific_eoi() {
                    self.lowest_priority = line;
                }
            }
            0b111 => {
                self.isr &= !(1 << level);
                self.lowest_priority = level;
            }
            0b100 => self.rotate_on_auto_eoi = true,
            0b000 => self.rotate_on_auto_eoi = false,
            0b110 => self.lowest_priority = level,
            // 0b010: no operation.
            _ => {}
        }
    }

    /// Ends the highest-priority line in service and returns it. In special
    /// mask mode masked lines are skipped (datasheet, "End of Interrupt").
    fn non_specific_eoi(&mut self) -> Option<u8> {
        let candidates = if self.special_mask { self.isr & !self.imr } else { self.isr };
        let line = self.highest_priority(candidates)?;
        self.isr &= !(1 << line);
        Some(line)
    }

    fn write_ocw3(&mut self, value: u8) {
        if value & OCW3_SET_SPECIAL_MASK != 0 {
            self.special_mask = value & OCW3_SPECIAL_MASK != 0;
        }
        if value & OCW3_READ_REGISTER != 0 {
            self.read_isr = value & OCW3_READ_ISR != 0;
        }
        if value & OCW3_POLL != 0 {
            self.poll_pending = true;
        }
    }

    /// A data-port write: the next ICW during initialisation, OCW1 otherwise.
    pub fn write_data(&mut self, value: u8) {
        match self.init_state {
            InitState::ExpectIcw2 => {
                self.vector_base = value & ICW2_BASE_MASK;
                self.init_state = if !self.single {
                    InitState::ExpectIcw3
                } else if self.expects_icw4 {
                    InitState::ExpectIcw4
                } else {
                    self.finish_initialisation()
                };
            }
            InitState::ExpectIcw3 => {
                self.icw3 = value;
                self.init_state = if self.expects_icw4 { InitState::ExpectIcw4 } else { self.finish_initialisation() };
            }
            InitState::ExpectIcw4 => {
                self.auto_eoi = value & ICW4_AUTO_EOI != 0;
                self.special_fully_nested = value & ICW4_SPECIAL_FULLY_NESTED != 0;
                self.init_state = self.finish_initialisation();
            }
            InitState::Ready => self.imr = value,
        }
    }

    fn finish_initialisation(&mut self) -> InitState {
        self.initialised = true;
        InitState::Ready
    }

    /// A command-port read: the poll word after a poll command, else IRR or
    /// ISR as OCW3 selected (IRR after ICW1).
    pub fn read_command(&mut self) -> u8 {
        if self.poll_pending {
            return self.poll();
        }
        if self.read_isr {
            self.isr
        } else {
            self.irr
        }
    }

    /// A data-port read: the poll word after a poll command, else the IMR.
    pub fn read_data(&mut self) -> u8 {
        if self.poll_pending {
            return self.poll();
        }
        self.imr
    }

    /// The read after a poll command: acts as an INTA cycle on this chip and
    /// returns bit 7 = request found, bits 2:0 = its line (datasheet, "The
    /// Poll Command"). 0 when nothing was pending.
    fn poll(&mut self) -> u8 {
        self.poll_pending = false;
        match self.deliverable_line() {
            Some(line) => {
                self.acknowledge_line(line);
                POLL_INTERRUPT | line
            }
            None => 0,
        }
    }
}

/// The master/slave pair of a PC, plus the chipset's ELCR.
#[derive(Debug, Clone)]
pub struct Pic8259Pair {
    master: Pic8259,
    slave: Pic8259,
    /// ELCR for IRQ 0..7 and 8..15.
    elcr: [u8; 2],
    /// The master's INT output was high at some point since the last INTA
    /// cycle: a CPU may have sampled it and committed to an INTA cycle.
    intr_was_raised: bool,
}

impl Default for Pic8259Pair {
    fn default() -> Self {
        Self::new()
    }
}

impl Pic8259Pair {
    /// Both chips in their power-on state (everything masked, uninitialised).
    pub const fn new() -> Self {
        Self { master: Pic8259::new(true), slave: Pic8259::new(false), elcr: [0; 2], intr_was_raised: false }
    }

    /// The master chip (IRQ 0..7).
    pub const fn master(&self) -> &Pic8259 {
        &self.master
    }

    /// The slave chip (IRQ 8..15).
    pub const fn slave(&self) -> &Pic8259 {
        &self.slave
    }

    /// Whether `port` belongs to the pair (the four 8259A ports and the ELCR).
    pub const fn handles(port: u16) -> bool {
        matches!(port, MASTER_COMMAND | MASTER_DATA | SLAVE_COMMAND | SLAVE_DATA | ELCR_MASTER | ELCR_SLAVE)
    }

    /// Propagates the slave's INT output to the master's IR2 (see the
    /// module's simplifications) and records whether INTR went high.
    fn update(&mut self) {
        let slave_int = self.slave.int_output();
        self.master.set_input_level(CASCADE_LINE, slave_int);
        if slave_int {
            self.master.irr |= 1 << CASCADE_LINE;
        }
        if self.master.int_output() {
            self.intr_was_raised = true;
        }
    }

    /// A guest read of `port`. Ports the pair does not handle read `0xFF`.
    pub fn read(&mut self, port: u16) -> u8 {
        let value = match port {
            MASTER_COMMAND => self.master.read_command(),
            MASTER_DATA => self.master.read_data(),
            SLAVE_COMMAND => self.slave.read_command(),
            SLAVE_DATA => self.slave.read_data(),
            ELCR_MASTER => self.elcr[0],
            ELCR_SLAVE => self.elcr[1],
            _ => 0xFF,
        };
        // A poll read may have changed the ISR.
        self.update();
        value
    }

    /// A guest write of `value` to `port`. Other ports are ignored.
    pub fn write(&mut self, port: u16, value: u8) {
        match port {
            MASTER_COMMAND => self.master.write_command(value),
            MASTER_DATA => self.master.write_data(value),
            SLAVE_COMMAND => self.slave.write_command(value),
            SLAVE_DATA => self.slave.write_data(value),
            ELCR_MASTER => self.elcr[0] = value & ELCR_MASTER_WRITABLE,
            ELCR_SLAVE => self.elcr[1] = value & ELCR_SLAVE_WRITABLE,
            _ => {}
        }
        self.update();
    }

    /// Drives interrupt line `irq` (0..15: 0..7 on the master, 8..15 on the
    /// slave). A low-to-high transition latches a request. IRQ 2 (the
    /// cascade) and numbers above 15 are ignored.
    pub fn set_irq_level(&mut self, irq: u8, high: bool) {
        match irq {
            CASCADE_LINE => return,
            0..=7 => self.master.set_input_level(irq, high),
            8..=15 => self.slave.set_input_level(irq - 8, high),
            _ => return,
        }
        self.update();
    }

    /// Raises and lowers `irq`: one edge, one request.
    pub fn pulse_irq(&mut self, irq: u8) {
        self.set_irq_level(irq, true);
        self.set_irq_level(irq, false);
    }

    /// The INTR pin: whether an INTA cycle now would deliver a request.
    pub fn pending_interrupt(&self) -> bool {
        self.master.int_output()
    }

    /// The INTA cycle (datasheet, "Interrupt Sequence"): returns the vector
    /// the CPU receives.
    ///
    /// * The master picks its highest deliverable request and moves it from
    ///   IRR to ISR (or not, with automatic EOI). If that is the cascade
    ///   line, the slave does the same for its own request and supplies the
    ///   vector.
    /// * If the slave's request vanished (the guest masked it after it
    ///   reached the master), the slave answers with its IR7 vector and sets
    ///   nothing, while the master keeps IR2 in service: software must send
    ///   the master an EOI for a spurious IRQ 15.
    /// * If the master's request vanished (INTR was high since the last INTA
    ///   cycle but no longer is, e.g. the line was masked meanwhile) the
    ///   master answers with its IR7 vector and sets nothing: spurious IRQ 7.
    /// * `None` if INTR has not been high since the last INTA cycle: a CPU
    ///   would not have started one. Callers should check
    ///   [`pending_interrupt`](Self::pending_interrupt) right before calling
    ///   this; then they never see a spurious vector.
    pub fn acknowledge(&mut self) -> Option<u8> {
        let vector = match self.master.deliverable_line() {
            Some(line) => {
                self.master.acknowledge_line(line);
                if self.master.cascades_on(line) {
                    match self.slave.deliverable_line() {
                        Some(slave_line) => {
                            self.slave.acknowledge_line(slave_line);
                            self.slave.vector(slave_line)
                        }
                        None => self.slave.spurious_vector(),
                    }
                } else {
                    self.master.vector(line)
                }
            }
            None if self.intr_was_raised => self.master.spurious_vector(),
            None => return None,
        };
        self.intr_was_raised = false;
        self.update();
        Some(vector)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The BIOS/Linux sequence: master on `master_base`, slave on
    /// `slave_base`, cascade on IR2, 8086 mode, normal EOI; then masks.
    fn initialised(master_base: u8, slave_base: u8, icw4: u8) -> Pic8259Pair {
        let mut pics = Pic8259Pair::new();
        pics.write(MASTER_COMMAND, 0x11);
        pics.write(MASTER_DATA, master_base);
        pics.write(MASTER_DATA, 0x04);
        pics.write(MASTER_DATA, icw4);
        pics.write(SLAVE_COMMAND, 0x11);
        pics.write(SLAVE_DATA, slave_base);
        pics.write(SLAVE_DATA, 0x02);
        pics.write(SLAVE_DATA, icw4);
        pics
    }

    fn pc_pics() -> Pic8259Pair {
        initialised(0x20, 0x28, 0x01)
    }

    #[test]
    fn power_on_state_is_masked_and_delivers_nothing() {
        let mut pics = Pic8259Pair::new();
        assert_eq!(pics.read(MASTER_DATA), 0xFF);
        assert_eq!(pics.read(SLAVE_DATA), 0xFF);
        assert!(!pics.master().is_initialised());
        pics.pulse_irq(0);
        assert_eq!(pics.master().irr(), 0x01, "IRR latches even when masked");
        assert!(!pics.pending_interrupt());
        assert_eq!(pics.acknowledge(), None);
        // Unmasking without an ICW sequence still delivers nothing.
        pics.write(MASTER_DATA, 0x00);
        assert!(!pics.pending_interrupt());
        assert_eq!(pics.acknowledge(), None);
    }

    #[test]
    fn handles_exactly_the_pic_and_elcr_ports() {
        for port in [0x20, 0x21, 0xA0, 0xA1, 0x4D0, 0x4D1] {
            assert!(Pic8259Pair::handles(port), "{port:#x}");
        }
        for port in [0x1F, 0x22, 0x9F, 0xA2, 0x4CF, 0x4D2, 0x60, 0x0] {
            assert!(!Pic8259Pair::handles(port), "{port:#x}");
        }
        let mut pics = pc_pics();
        assert_eq!(pics.read(0x22), 0xFF);
        pics.write(0x22, 0x00);
        assert_eq!(pics.read(MASTER_DATA), 0x00);
    }

    #[test]
    fn linux_bios_init_sequence_sets_bases_and_clears_masks() {
        let mut pics = pc_pics();
        assert!(pics.master().is_initialised());
        assert!(pics.slave().is_initialised());
        assert_eq!(pics.master().vector_base(), 0x20);
        assert_eq!(pics.slave().vector_base(), 0x28);
        assert!(!pics.master().auto_eoi());
        // ICW1 clears the IMR.
        assert_eq!(pics.read(MASTER_DATA), 0x00);
        assert_eq!(pics.read(SLAVE_DATA), 0x00);
        pics.pulse_irq(1);
        assert!(pics.pending_interrupt());
        assert_eq!(pics.acknowledge(), Some(0x21));
        pics.write(MASTER_COMMAND, 0x20);
        pics.pulse_irq(14);
        assert_eq!(pics.acknowledge(), Some(0x2E));
    }

    #[test]
    fn icw2_keeps_only_bits_7_to_3() {
        let mut pics = initialised(0x27, 0x7F, 0x01);
        assert_eq!(pics.master().vector_base(), 0x20);
        assert_eq!(pics.slave().vector_base(), 0x78);
        pics.pulse_irq(3);
        assert_eq!(pics.acknowledge(), Some(0x23));
    }

    #[test]
    fn single_mode_without_icw4_takes_two_words() {
        let mut pics = Pic8259Pair::new();
        // ICW1: single, no ICW4; ICW2; then the next data write is OCW1.
        pics.write(MASTER_COMMAND, 0x12);
        assert!(!pics.master().is_initialised());
        pics.write(MASTER_DATA, 0x40);
        assert!(pics.master().is_initialised());
        pics.write(MASTER_DATA, 0x04);
        assert_eq!(pics.read(MASTER_DATA), 0x04);
        assert_eq!(pics.master().vector_base(), 0x40);
        // In single mode IR2 is an ordinary line with the master's vector.
        pics.master.set_input_level(2, true);
        pics.update();
        assert!(!pics.pending_interrupt(), "masked");
        pics.write(MASTER_DATA, 0x00);
        assert_eq!(pics.acknowledge(), Some(0x42));
    }

    #[test]
    fn cascade_without_icw4_takes_three_words_and_clears_icw4_functions() {
        let mut pics = initialised(0x20, 0x28, 0x03);
        assert!(pics.master().auto_eoi());
        // ICW1 without IC4: ICW2, ICW3, then OCW1.
        pics.write(MASTER_COMMAND, 0x10);
        pics.write(MASTER_DATA, 0x50);
        assert!(!pics.master().is_initialised());
        pics.write(MASTER_DATA, 0x04);
        assert!(pics.master().is_initialised());
        assert!(!pics.master().auto_eoi(), "ICW4 functions zeroed");
        pics.write(MASTER_DATA, 0xFE);
        assert_eq!(pics.read(MASTER_DATA), 0xFE);
    }

    #[test]
    fn no_delivery_while_an_init_sequence_is_in_progress() {
        let mut pics = pc_pics();
        pics.write(MASTER_COMMAND, 0x11);
        pics.write(MASTER_DATA, 0x30);
        pics.pulse_irq(0);
        assert!(!pics.pending_interrupt());
        pics.write(MASTER_DATA, 0x04);
        pics.write(MASTER_DATA, 0x01);
        assert!(pics.pending_interrupt());
        assert_eq!(pics.acknowledge(), Some(0x30));
    }

    #[test]
    fn masks_hold_requests_back_until_unmasked() {
        let mut pics = pc_pics();
        pics.write(MASTER_DATA, 0b1111_1010);
        pics.write(SLAVE_DATA, 0xFF);
        assert_eq!(pics.read(MASTER_DATA), 0b1111_1010);
        assert_eq!(pics.read(SLAVE_DATA), 0xFF);
        pics.pulse_irq(1);
        pics.pulse_irq(9);
        assert!(!pics.pending_interrupt());
        assert_eq!(pics.master().irr(), 0x02);
        assert_eq!(pics.slave().irr(), 0x02);
        pics.write(SLAVE_DATA, 0xFD);
        assert!(pics.pending_interrupt());
        assert_eq!(pics.acknowledge(), Some(0x29));
        pics.write(SLAVE_COMMAND, 0x20);
        pics.write(MASTER_COMMAND, 0x20);
        assert!(!pics.pending_interrupt());
        pics.write(MASTER_DATA, 0xF8);
        assert_eq!(pics.acknowledge(), Some(0x21));
    }

    #[test]
    fn fixed_priority_with_nested_service() {
        let mut pics = pc_pics();
        pics.pulse_irq(5);
        pics.pulse_irq(3);
        assert_eq!(pics.acknowledge(), Some(0x23), "IR3 outranks IR5");
        assert_eq!(pics.master().isr(), 0x08);
        // IR5 is lower than IR3 in service: blocked.
        assert!(!pics.pending_interrupt());
        // IR3 again is equal: blocked too.
        pics.pulse_irq(3);
        assert!(!pics.pending_interrupt());
        // IR1 is higher: nests.
        pics.pulse_irq(1);
        assert_eq!(pics.acknowledge(), Some(0x21));
        assert_eq!(pics.master().isr(), 0x0A);
        assert!(!pics.pending_interrupt());
        // Non-specific EOI ends the highest in service, IR1.
        pics.write(MASTER_COMMAND, 0x20);
        assert_eq!(pics.master().isr(), 0x08);
        assert!(!pics.pending_interrupt());
        pics.write(MASTER_COMMAND, 0x20);
        assert_eq!(pics.master().isr(), 0x00);
        assert_eq!(pics.acknowledge(), Some(0x23));
        pics.write(MASTER_COMMAND, 0x20);
        assert_eq!(pics.acknowledge(), Some(0x25));
        pics.write(MASTER_COMMAND, 0x20);
        assert!(!pics.pending_interrupt());
        assert_eq!(pics.acknowledge(), None);
    }

    #[test]
    fn specific_eoi_ends_only_the_named_line() {
        let mut pics = pc_pics();
        pics.pulse_irq(4);
        assert_eq!(pics.acknowledge(), Some(0x24));
        pics.pulse_irq(0);
        assert_eq!(pics.acknowledge(), Some(0x20));
        assert_eq!(pics.master().isr(), 0x11);
        // Specific EOI for IR4 leaves IR0 in service.
        pics.write(MASTER_COMMAND, 0x64);
        assert_eq!(pics.master().isr(), 0x01);
        // Specific EOI for a line not in service changes nothing.
        pics.write(MASTER_COMMAND, 0x66);
        assert_eq!(pics.master().isr(), 0x01);
        pics.write(MASTER_COMMAND, 0x60);
        assert_eq!(pics.master().isr(), 0x00);
        // OCW2 no-op.
        pics.pulse_irq(6);
        pics.acknowledge();
        pics.write(MASTER_COMMAND, 0x40);
        assert_eq!(pics.master().isr(), 0x40);
    }

    #[test]
    fn ocw3_selects_irr_or_isr_for_command_port_reads() {
        let mut pics = pc_pics();
        pics.write(MASTER_DATA, 0xFF);
        pics.pulse_irq(6);
        pics.pulse_irq(7);
        // IRR is selected after ICW1.
        assert_eq!(pics.read(MASTER_COMMAND), 0xC0);
        pics.write(MASTER_DATA, 0x80);
        assert_eq!(pics.acknowledge(), Some(0x26));
        assert_eq!(pics.read(MASTER_COMMAND), 0x80);
        pics.write(MASTER_COMMAND, 0x0B);
        assert_eq!(pics.read(MASTER_COMMAND), 0x40);
        // OCW3 without RR leaves the selection alone.
        pics.write(MASTER_COMMAND, 0x08);
        assert_eq!(pics.read(MASTER_COMMAND), 0x40);
        pics.write(MASTER_COMMAND, 0x0A);
        assert_eq!(pics.read(MASTER_COMMAND), 0x80);
        // The data port still reads the IMR.
        assert_eq!(pics.read(MASTER_DATA), 0x80);
        // The slave has its own selection.
        pics.write(SLAVE_COMMAND, 0x0B);
        assert_eq!(pics.read(SLAVE_COMMAND), 0x00);
        assert_eq!(pics.read(MASTER_COMMAND), 0x80);
    }

    #[test]
    fn cascade_delivers_irq8_to_15_through_master_ir2() {
        let mut pics = pc_pics();
        for irq in 8..16u8 {
            pics.pulse_irq(irq);
            assert!(pics.pending_interrupt(), "IRQ {irq}");
            assert_eq!(pics.master().irr() & 0x04, 0x04);
            assert_eq!(pics.acknowledge(), Some(0x28 + irq - 8));
            assert_eq!(pics.master().isr(), 0x04, "IRQ {irq}: master IR2 in service");
            assert_eq!(pics.slave().isr(), 1 << (irq - 8));
            assert!(!pics.pending_interrupt());
            pics.write(SLAVE_COMMAND, 0x20);
            pics.write(MASTER_COMMAND, 0x20);
            assert_eq!(pics.master().isr(), 0);
            assert_eq!(pics.slave().isr(), 0);
        }
        assert_eq!(pics.acknowledge(), None);
    }

    #[test]
    fn cascade_priorities_sit_between_irq1_and_irq3() {
        let mut pics = pc_pics();
        pics.pulse_irq(3);
        pics.pulse_irq(12);
        pics.pulse_irq(10);
        pics.pulse_irq(1);
        assert_eq!(pics.acknowledge(), Some(0x21));
        pics.write(MASTER_COMMAND, 0x20);
        assert_eq!(pics.acknowledge(), Some(0x2A));
        // While master IR2 is in service, the slave's IRQ 12 waits; so does IRQ 3.
        pics.write(SLAVE_COMMAND, 0x20);
        assert!(!pics.pending_interrupt());
        pics.write(MASTER_COMMAND, 0x20);
        assert_eq!(pics.acknowledge(), Some(0x2C));
        pics.write(SLAVE_COMMAND, 0x20);
        pics.write(MASTER_COMMAND, 0x20);
        assert_eq!(pics.acknowledge(), Some(0x23));
        // EOI order master-then-slave works too.
        pics.write(MASTER_COMMAND, 0x20);
        pics.pulse_irq(8);
        pics.pulse_irq(9);
        assert_eq!(pics.acknowledge(), Some(0x28));
        pics.write(MASTER_COMMAND, 0x20);
        assert!(!pics.pending_interrupt(), "slave IR0 in service blocks IR1");
        pics.write(SLAVE_COMMAND, 0x20);
        assert_eq!(pics.acknowledge(), Some(0x29));
    }

    #[test]
    fn a_higher_slave_request_nests_only_in_special_fully_nested_mode() {
        let mut pics = pc_pics();
        pics.pulse_irq(12);
        assert_eq!(pics.acknowledge(), Some(0x2C));
        pics.pulse_irq(9);
        assert!(!pics.pending_interrupt(), "master IR2 in service blocks the slave");

        let mut pics = initialised(0x20, 0x28, 0x11);
        pics.pulse_irq(12);
        assert_eq!(pics.acknowledge(), Some(0x2C));
        pics.pulse_irq(14);
        assert!(!pics.pending_interrupt(), "the slave blocks its lower IRQ 14");
        pics.pulse_irq(9);
        assert!(pics.pending_interrupt());
        assert_eq!(pics.acknowledge(), Some(0x29));
        assert_eq!(pics.slave().isr(), 0x12);
        // Lower master lines are still blocked by IR2 in service.
        pics.pulse_irq(4);
        pics.write(SLAVE_COMMAND, 0x20);
        pics.write(SLAVE_COMMAND, 0x20);
        assert_eq!(pics.slave().isr(), 0);
        // Slave IRQ 14 now raises IR2 again, which SFNM lets through.
        assert_eq!(pics.acknowledge(), Some(0x2E));
        pics.write(SLAVE_COMMAND, 0x20);
        pics.write(MASTER_COMMAND, 0x20);
        assert_eq!(pics.acknowledge(), Some(0x24));
    }

    #[test]
    fn spurious_irq7_when_the_master_request_vanished() {
        let mut pics = pc_pics();
        pics.pulse_irq(3);
        assert!(pics.pending_interrupt());
        // The guest masks IR3 after INTR went up.
        pics.write(MASTER_DATA, 0x08);
        assert!(!pics.pending_interrupt());
        assert_eq!(pics.acknowledge(), Some(0x27));
        assert_eq!(pics.master().isr(), 0, "a spurious IRQ 7 sets no ISR bit");
        assert_eq!(pics.master().irr(), 0x08, "the masked request is still latched");
        // Only one INTA cycle was owed.
        assert_eq!(pics.acknowledge(), None);
        pics.write(MASTER_DATA, 0x00);
        assert_eq!(pics.acknowledge(), Some(0x23));
    }

    #[test]
    fn spurious_irq15_when_the_slave_request_vanished() {
        let mut pics = pc_pics();
        pics.pulse_irq(11);
        assert!(pics.pending_interrupt());
        // The guest masks IRQ 11 on the slave; the master already latched IR2.
        pics.write(SLAVE_DATA, 0x08);
        assert!(pics.pending_interrupt());
        assert_eq!(pics.acknowledge(), Some(0x2F));
        assert_eq!(pics.slave().isr(), 0);
        assert_eq!(pics.master().isr(), 0x04, "the master put IR2 in service");
        assert!(!pics.pending_interrupt());
        // The handler of a spurious IRQ 15 sends the master an EOI.
        pics.write(MASTER_COMMAND, 0x20);
        assert_eq!(pics.master().isr(), 0);
        assert!(!pics.pending_interrupt());
        assert_eq!(pics.acknowledge(), None);
    }

    #[test]
    fn auto_eoi_leaves_isr_clear() {
        let mut pics = initialised(0x20, 0x28, 0x03);
        pics.pulse_irq(4);
        pics.pulse_irq(6);
        assert_eq!(pics.acknowledge(), Some(0x24));
        assert_eq!(pics.master().isr(), 0);
        assert!(pics.pending_interrupt(), "nothing in service blocks IR6");
        assert_eq!(pics.acknowledge(), Some(0x26));
        // Through the cascade: two slave requests back to back.
        pics.pulse_irq(13);
        pics.pulse_irq(15);
        assert_eq!(pics.acknowledge(), Some(0x2D));
        assert_eq!(pics.acknowledge(), Some(0x2F));
        assert_eq!(pics.master().isr(), 0);
        assert_eq!(pics.slave().isr(), 0);
        assert_eq!(pics.acknowledge(), None);
    }

    #[test]
    fn reinitialisation_clears_requests_service_and_masks() {
        let mut pics = pc_pics();
        pics.write(MASTER_DATA, 0xF0);
        pics.pulse_irq(1);
        assert_eq!(pics.acknowledge(), Some(0x21));
        pics.pulse_irq(0);
        pics.set_irq_level(5, true);
        pics.write(MASTER_COMMAND, 0x0B);
        pics.write(MASTER_COMMAND, 0xC3);
        assert_eq!(pics.master().lowest_priority(), 3);
        pics.write(MASTER_COMMAND, 0x11);
        assert_eq!(pics.master().irr(), 0);
        assert_eq!(pics.master().isr(), 0);
        assert_eq!(pics.read(MASTER_DATA), 0);
        pics.write(MASTER_DATA, 0x40);
        pics.write(MASTER_DATA, 0x04);
        pics.write(MASTER_DATA, 0x01);
        assert_eq!(pics.master().lowest_priority(), 7);
        // Reads select IRR again.
        assert_eq!(pics.read(MASTER_COMMAND), 0);
        assert!(!pics.pending_interrupt());
        // IR5 stayed high through ICW1: it needs a new rising edge.
        pics.set_irq_level(5, true);
        assert!(!pics.pending_interrupt());
        pics.set_irq_level(5, false);
        pics.set_irq_level(5, true);
        assert_eq!(pics.acknowledge(), Some(0x45));
    }

    #[test]
    fn edges_not_levels_set_requests() {
        let mut pics = pc_pics();
        pics.set_irq_level(4, true);
        assert_eq!(pics.acknowledge(), Some(0x24));
        pics.write(MASTER_COMMAND, 0x20);
        // Still high: no new request.
        pics.set_irq_level(4, true);
        assert!(!pics.pending_interrupt());
        // Lowering keeps nothing; a new edge makes a new request.
        pics.set_irq_level(4, false);
        assert!(!pics.pending_interrupt());
        pics.set_irq_level(4, true);
        assert!(pics.pending_interrupt());
        // Two pulses before the INTA cycle merge into one request.
        let mut pics = pc_pics();
        pics.pulse_irq(0);
        pics.pulse_irq(0);
        assert_eq!(pics.acknowledge(), Some(0x20));
        pics.write(MASTER_COMMAND, 0x20);
        assert_eq!(pics.acknowledge(), None);
        // IRQ 2 and numbers past 15 are ignored.
        pics.pulse_irq(2);
        pics.pulse_irq(16);
        pics.pulse_irq(255);
        assert_eq!(pics.master().irr(), 0);
        assert_eq!(pics.acknowledge(), None);
    }

    #[test]
    fn rotation_commands_change_priorities() {
        let mut pics = pc_pics();
        // Set priority: IR4 lowest, so IR5 highest.
        pics.write(MASTER_COMMAND, 0xC4);
        pics.pulse_irq(3);
        pics.pulse_irq(6);
        assert_eq!(pics.acknowledge(), Some(0x26));
        // IR3 ranks below IR6 now: blocked.
        assert!(!pics.pending_interrupt());
        // Rotate on non-specific EOI: IR6 ends and becomes lowest.
        pics.write(MASTER_COMMAND, 0xA0);
        assert_eq!(pics.master().lowest_priority(), 6);
        assert_eq!(pics.acknowledge(), Some(0x23));
        // Rotate on specific EOI.
        pics.write(MASTER_COMMAND, 0xE3);
        assert_eq!(pics.master().isr(), 0);
        assert_eq!(pics.master().lowest_priority(), 3);
        pics.pulse_irq(3);
        pics.pulse_irq(4);
        assert_eq!(pics.acknowledge(), Some(0x24));
    }

    #[test]
    fn rotate_in_auto_eoi_mode() {
        let mut pics = initialised(0x20, 0x28, 0x03);
        pics.write(MASTER_COMMAND, 0x80);
        pics.pulse_irq(1);
        pics.pulse_irq(5);
        assert_eq!(pics.acknowledge(), Some(0x21));
        assert_eq!(pics.master().lowest_priority(), 1);
        pics.pulse_irq(1);
        assert_eq!(pics.acknowledge(), Some(0x25), "IR1 is lowest now");
        assert_eq!(pics.acknowledge(), Some(0x21));
        // Clear rotate in AEOI mode.
        pics.write(MASTER_COMMAND, 0x00);
        pics.pulse_irq(0);
        assert_eq!(pics.acknowledge(), Some(0x20));
        assert_eq!(pics.master().lowest_priority(), 1);
    }

    #[test]
    fn special_mask_mode_lets_lower_lines_through() {
        let mut pics = pc_pics();
        pics.pulse_irq(3);
        assert_eq!(pics.acknowledge(), Some(0x23));
        pics.pulse_irq(5);
        assert!(!pics.pending_interrupt());
        // Special mask mode on, mask IR3: IR5 may come.
        pics.write(MASTER_COMMAND, 0x68);
        assert!(pics.master().special_mask());
        pics.write(MASTER_DATA, 0x08);
        assert_eq!(pics.acknowledge(), Some(0x25));
        // Non-specific EOI skips the masked IR3 and ends IR5.
        pics.write(MASTER_COMMAND, 0x20);
        assert_eq!(pics.master().isr(), 0x08);
        // Special mask mode off: IR3 blocks again.
        pics.write(MASTER_COMMAND, 0x48);
        pics.write(MASTER_DATA, 0x00);
        pics.pulse_irq(5);
        assert!(!pics.pending_interrupt());
        pics.write(MASTER_COMMAND, 0x20);
        assert_eq!(pics.acknowledge(), Some(0x25));
    }

    #[test]
    fn poll_command_reads_and_acknowledges_the_highest_request() {
        let mut pics = pc_pics();
        pics.write(MASTER_COMMAND, 0x0C);
        assert_eq!(pics.read(MASTER_COMMAND), 0x00, "nothing pending");
        pics.pulse_irq(6);
        pics.pulse_irq(4);
        pics.write(MASTER_COMMAND, 0x0C);
        assert_eq!(pics.read(MASTER_COMMAND), POLL_INTERRUPT | 4);
        assert_eq!(pics.master().isr(), 0x10);
        // The poll is over: the next read is IRR again.
        assert_eq!(pics.read(MASTER_COMMAND), 0x40);
        pics.write(MASTER_COMMAND, 0x20);
        pics.write(MASTER_COMMAND, 0x0C);
        assert_eq!(pics.read(MASTER_DATA), POLL_INTERRUPT | 6);
        assert_eq!(pics.read(MASTER_DATA), 0x00, "IMR again");
    }

    #[test]
    fn elcr_stores_writable_bits() {
        let mut pics = Pic8259Pair::new();
        assert_eq!(pics.read(ELCR_MASTER), 0);
        pics.write(ELCR_MASTER, 0xFF);
        pics.write(ELCR_SLAVE, 0xFF);
        assert_eq!(pics.read(ELCR_MASTER), 0xF8);
        assert_eq!(pics.read(ELCR_SLAVE), 0xDE);
        pics.write(ELCR_SLAVE, 0x0C);
        assert_eq!(pics.read(ELCR_SLAVE), 0x0C);
    }
}
