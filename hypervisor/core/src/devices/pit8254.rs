//! A virtual 8254 programmable interval timer (PIT), plus the PC's port
//! `0x61` bits that gate channel 2 and show its output.
//!
//! The 8254 has three 16-bit down-counters clocked at 1.193182 MHz. Each is
//! programmed with a control word (which counter, how its 16 bits are
//! accessed through an 8-bit port, which mode) and a count; its OUT pin then
//! follows the mode (Intel 8254 datasheet, "Operational Description"). On a
//! PC, channel 0's OUT drives IRQ 0, channel 1 once refreshed DRAM, and
//! channel 2's OUT goes to the speaker and can be read back in port `0x61`
//! bit 5 while port `0x61` bit 0 drives its GATE input.
//!
//! # How the hypervisor uses it
//!
//! The kernel forwards the guest's `IN`/`OUT` on the ports of
//! [`Pit8254::handles`] (including `0x61`, folded into [`Pit8254::read`] and
//! [`Pit8254::write`]) together with the current host TSC. The time base is
//! the host TSC, not the guest's execution: guest time advances while other
//! guests run, as a wall clock does. The kernel asks [`Pit8254::next_irq0_tsc`]
//! when to look again (e.g. to program a preemption timer), and at each VM exit
//! calls [`Pit8254::take_irq0_edges`]; for a non-zero answer it pulses IRQ 0 on
//! the virtual PIC once and counts the rest as merged, as a real PIC would
//! merge edges the CPU did not acknowledge in time. A guest such as Linux can
//! calibrate its TSC against channel 2 through port `0x61`.
//!
//! # Registers
//!
//! | port | read | write |
//! |---|---|---|
//! | `0x40` | channel 0 count or latched status/count | channel 0 count |
//! | `0x41` | channel 1 | channel 1 count |
//! | `0x42` | channel 2 | channel 2 count |
//! | `0x43` | `0xFF` (write-only) | control word |
//! | `0x61` | bit 0 gate 2, bit 1 speaker data, bits 3:2 as written, bit 4 refresh toggle, bit 5 OUT 2, bits 7:6 = 0 | bits 3:0 stored; bit 0 drives GATE 2 |
//!
//! Control word (port `0x43`): bits 7:6 SC (channel, 3 = read-back), 5:4 RW
//! (00 = latch count, 01 = low byte, 10 = high byte, 11 = low then high),
//! 3:1 M (mode 0..5; 6 and 7 mean 2 and 3), 0 BCD. Read-back (SC = 3): bit 5
//! = 0 latches the count, bit 4 = 0 latches the status, bits 3:1 select
//! channels 2, 1, 0. Status byte: bit 7 OUT, 6 null count, 5:4 RW, 3:1 mode,
//! 0 BCD.
//!
//! # Modes
//!
//! | mode | name | OUT | IRQ 0 rising edges |
//! |---|---|---|---|
//! | 0 | interrupt on terminal count | low after the control word, high once the count reaches 0 | one, N ticks after loading |
//! | 1 | hardware retriggerable one-shot | low from a gate rising edge until N ticks later | none on channel 0 (its gate never rises) |
//! | 2 | rate generator | high, low for the one tick before each reload | every N ticks |
//! | 3 | square wave | high for ⌈N/2⌉ ticks, low for ⌊N/2⌋ | every N ticks |
//! | 4 | software triggered strobe | high, low for one tick N ticks after loading | one, N + 1 ticks after loading |
//! | 5 | hardware triggered strobe | as 4, started by a gate rising edge | none on channel 0 |
//!
//! # Simplifications
//!
//! * A count takes effect when its last byte is written (the chip loads it on
//!   the next clock). Writing a new count restarts the counter at once in
//!   every mode; the chip would finish the current period in modes 2 and 3.
//!   Writing the first of two bytes does not stop a mode 0 count.
//! * Modes 1, 4 and 5 are approximated: they count as described in the table
//!   above, without the chip's one-clock delays.
//! * In mode 3 the count read back for odd N is approximate (N, N - 2, ...
//!   in each half period).
//! * BCD counting is refused: the BCD bit is ignored, counts are binary and
//!   the status byte reports bit 0 = 0.
//! * Power-on: no channel counts until the guest programs it (there is no
//!   BIOS); each channel is in mode 0 with low-then-high access and reads 0.
//!   GATE 0 and GATE 1 are always high; GATE 2 starts low.
//! * A control word resets the channel's latches as well as its byte
//!   flip-flops. Port `0x61` bit 4 (the DRAM refresh toggle some software
//!   waits on) flips every 18 PIT ticks (about 15 µs).
//! * Pausing channel 2 with its gate in modes 0 and 4 is exact in TSC terms;
//!   nothing accumulates rounding. Ticks are always
//!   `⌊(elapsed TSC) × 1193182 / tsc_hz⌋`, computed from the TSC of the last
//!   (re)load.

/// The PIT's input clock in Hz.
pub const PIT_HZ: u64 = 1_193_182;

/// Channel 0 data port.
pub const CHANNEL0: u16 = 0x40;
/// Channel 1 data port.
pub const CHANNEL1: u16 = 0x41;
/// Channel 2 data port.
pub const CHANNEL2: u16 = 0x42;
/// Control word port (write-only).
pub const CONTROL: u16 = 0x43;
/// PC system control port B: channel 2 gate (bit 0), speaker (bit 1),
/// OUT 2 (bit 5).
pub const SYSTEM_CONTROL_B: u16 = 0x61;

/// Port `0x61` bit 0: GATE 2.
pub const PORT61_GATE2: u8 = 1 << 0;
/// Port `0x61` bit 1: speaker data enable.
pub const PORT61_SPEAKER: u8 = 1 << 1;
/// Port `0x61` bit 4: toggles with DRAM refresh.
pub const PORT61_REFRESH: u8 = 1 << 4;
/// Port `0x61` bit 5: channel 2's OUT.
pub const PORT61_OUT2: u8 = 1 << 5;
/// Port `0x61` bits the guest can write and read back.
const PORT61_WRITABLE: u8 = 0x0F;
/// PIT ticks between refresh toggles (15.085 µs).
const REFRESH_TICKS: u64 = 18;

/// Status byte bit 7: the OUT pin.
pub const STATUS_OUT: u8 = 1 << 7;
/// Status byte bit 6: a count was written but not yet loaded.
pub const STATUS_NULL_COUNT: u8 = 1 << 6;

/// Control word SC = 3: read-back command.
const READ_BACK: u8 = 3;
/// Read-back bit 5: 0 = latch the counts.
const READ_BACK_NO_COUNT: u8 = 1 << 5;
/// Read-back bit 4: 0 = latch the status.
const READ_BACK_NO_STATUS: u8 = 1 << 4;

/// Number of channels.
pub const CHANNEL_COUNT: usize = 3;

/// How a channel's 16-bit count travels through its 8-bit port (control
/// word bits 5:4).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AccessMode {
    /// RW = 01: the low byte only (the high byte is 0).
    LowByte = 1,
    /// RW = 10: the high byte only (the low byte is 0).
    HighByte = 2,
    /// RW = 11: low byte, then high byte.
    LowThenHigh = 3,
}

/// The counting mode (control word bits 3:1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Mode 0: interrupt on terminal count.
    InterruptOnTerminalCount = 0,
    /// Mode 1: hardware retriggerable one-shot.
    OneShot = 1,
    /// Mode 2: rate generator.
    RateGenerator = 2,
    /// Mode 3: square wave generator.
    SquareWave = 3,
    /// Mode 4: software triggered strobe.
    SoftwareStrobe = 4,
    /// Mode 5: hardware triggered strobe.
    HardwareStrobe = 5,
}

impl Mode {
    /// Decodes control word bits 3:1 (values 6 and 7 alias modes 2 and 3).
    const fn from_bits(bits: u8) -> Self {
        match bits & 7 {
            0 => Self::InterruptOnTerminalCount,
            1 => Self::OneShot,
            2 | 6 => Self::RateGenerator,
            3 | 7 => Self::SquareWave,
            4 => Self::SoftwareStrobe,
            _ => Self::HardwareStrobe,
        }
    }

    /// Modes started by a rising edge on GATE rather than by loading a count.
    const fn gate_triggered(self) -> bool {
        matches!(self, Self::OneShot | Self::HardwareStrobe)
    }

    /// Modes in which GATE low stops the count.
    const fn gate_pauses(self) -> bool {
        !self.gate_triggered()
    }
}

/// One counter.
#[derive(Debug, Clone)]
struct Channel {
    mode: Mode,
    access: AccessMode,
    /// The count N, 1..=65536 (a written 0 means 65536).
    reload: u32,
    /// A count was written since the last control word.
    loaded: bool,
    /// Modes 1 and 5: a gate rising edge started the count.
    triggered: bool,
    /// TSC at which the count was (re)started.
    start_tsc: u64,
    /// TSC spent with the count paused by GATE since `start_tsc`.
    paused_tsc: u64,
    /// Set while GATE holds the count.
    paused_since: Option<u64>,
    gate: bool,
    /// LowThenHigh writes: the low byte waiting for its high byte.
    pending_low: Option<u8>,
    /// LowThenHigh live reads: the next read returns the high byte.
    read_high_next: bool,
    latched_count: Option<u16>,
    /// LowThenHigh latched reads: the low byte has been read.
    latched_high_next: bool,
    latched_status: Option<u8>,
    null_count: bool,
    /// OUT rising edges since `start_tsc` already reported.
    edges_taken: u64,
    /// Edges of an earlier programming, not yet reported.
    banked_edges: u64,
    /// When the last edges were banked.
    banked_at_tsc: u64,
}

impl Channel {
    const fn new(gate: bool, now_tsc: u64) -> Self {
        Self {
            mode: Mode::InterruptOnTerminalCount,
            access: AccessMode::LowThenHigh,
            reload: 65_536,
            loaded: false,
            triggered: false,
            start_tsc: now_tsc,
            paused_tsc: 0,
            paused_since: None,
            gate,
            pending_low: None,
            read_high_next: false,
            latched_count: None,
            latched_high_next: false,
            latched_status: None,
            null_count: false,
            edges_taken: 0,
            banked_edges: 0,
            banked_at_tsc: now_tsc,
        }
    }

    /// Whether the counter is counting (or paused mid-count).
    const fn running(&self) -> bool {
        self.loaded && (self.triggered || !self.mode.gate_triggered())
    }

    /// PIT ticks counted since the (re)start, excluding paused time.
    fn elapsed_ticks(&self, now_tsc: u64, tsc_hz: u64) -> u64 {
        if !self.running() {
            return 0;
        }
        let end = self.paused_since.unwrap_or(now_tsc);
        let tsc = end.saturating_sub(self.start_tsc).saturating_sub(self.paused_tsc);
        let ticks = u128::from(tsc) * u128::from(PIT_HZ) / u128::from(tsc_hz);
        u64::try_from(ticks).unwrap_or(u64::MAX)
    }

    /// OUT after `ticks` ticks (see the module's mode table).
    fn output_after(&self, ticks: u64) -> bool {
        let n = u64::from(self.reload);
        if !self.loaded {
            // After a control word OUT is low in mode 0 and high otherwise.
            return self.mode != Mode::InterruptOnTerminalCount;
        }
        match self.mode {
            Mode::InterruptOnTerminalCount => ticks >= n,
            Mode::OneShot => !self.triggered || ticks >= n,
            Mode::RateGenerator => !self.gate || ticks % n != n - 1,
            Mode::SquareWave => !self.gate || ticks % n < n.div_ceil(2),
            Mode::SoftwareStrobe => ticks != n,
            Mode::HardwareStrobe => !self.triggered || ticks != n,
        }
    }

    /// OUT rising edges within the first `ticks` ticks.
    fn edges_after(&self, ticks: u64) -> u64 {
        if !self.running() {
            return 0;
        }
        let n = u64::from(self.reload);
        match self.mode {
            Mode::InterruptOnTerminalCount | Mode::OneShot => u64::from(ticks >= n),
            Mode::RateGenerator | Mode::SquareWave => ticks / n,
            Mode::SoftwareStrobe | Mode::HardwareStrobe => u64::from(ticks > n),
        }
    }

    /// The tick of rising edge number `edge` (1-based), if there is one.
    fn edge_tick(&self, edge: u64) -> Option<u64> {
        if !self.running() {
            return None;
        }
        let n = u64::from(self.reload);
        match self.mode {
            Mode::InterruptOnTerminalCount | Mode::OneShot if edge == 1 => Some(n),
            Mode::RateGenerator | Mode::SquareWave => edge.checked_mul(n),
            Mode::SoftwareStrobe | Mode::HardwareStrobe if edge == 1 => Some(n + 1),
            _ => None,
        }
    }

    /// The counting element after `ticks` ticks.
    fn count_after(&self, ticks: u64) -> u16 {
        let n = u64::from(self.reload);
        if !self.running() {
            return n as u16;
        }
        match self.mode {
            Mode::RateGenerator => (n - ticks % n) as u16,
            Mode::SquareWave => {
                let phase = ticks % n;
                let high_ticks = n.div_ceil(2);
                let into_half = if phase < high_ticks { phase } else { phase - high_ticks };
                n.wrapping_sub(into_half.wrapping_mul(2)) as u16
            }
            // Modes 0, 1, 4, 5 keep counting down through 0 and wrap.
            _ => n.wrapping_sub(ticks) as u16,
        }
    }

    fn status(&self, now_tsc: u64, tsc_hz: u64) -> u8 {
        let out = if self.output_after(self.elapsed_ticks(now_tsc, tsc_hz)) { STATUS_OUT } else { 0 };
        let null = if self.null_count { STATUS_NULL_COUNT } else { 0 };
        out | null | ((self.access as u8) << 4) | ((self.mode as u8) << 1)
    }

    /// Moves edges not yet reported into the bank and starts counting afresh
    /// at `now_tsc` (paused if GATE is low in a mode it pauses).
    fn restart(&mut self, now_tsc: u64, tsc_hz: u64) {
        self.bank_edges(now_tsc, tsc_hz);
        self.start_counting(now_tsc);
    }

    /// Starts counting afresh at `now_tsc`, after the edges were banked.
    fn start_counting(&mut self, now_tsc: u64) {
        self.start_tsc = now_tsc;
        self.paused_tsc = 0;
        self.paused_since = if self.mode.gate_pauses() && !self.gate { Some(now_tsc) } else { None };
    }

    fn bank_edges(&mut self, now_tsc: u64, tsc_hz: u64) {
        let edges = self.edges_after(self.elapsed_ticks(now_tsc, tsc_hz));
        let unreported = edges.saturating_sub(self.edges_taken);
        if unreported > 0 {
            self.banked_edges = self.banked_edges.saturating_add(unreported);
            self.banked_at_tsc = now_tsc;
        }
        self.edges_taken = 0;
    }

    /// A control word with RW != 0 for this channel: new mode, counting
    /// stops until a count arrives (datasheet, "Control Word Format").
    fn program(&mut self, access: AccessMode, mode: Mode, now_tsc: u64, tsc_hz: u64) {
        self.bank_edges(now_tsc, tsc_hz);
        self.access = access;
        self.mode = mode;
        self.loaded = false;
        self.triggered = false;
        self.null_count = true;
        self.pending_low = None;
        self.read_high_next = false;
        self.latched_count = None;
        self.latched_high_next = false;
        self.latched_status = None;
        self.paused_since = None;
    }

    /// A write to the channel's data port: part or all of a new count.
    fn write_count(&mut self, value: u8, now_tsc: u64, tsc_hz: u64) {
        let count = match self.access {
            AccessMode::LowByte => u16::from(value),
            AccessMode::HighByte => u16::from(value) << 8,
            AccessMode::LowThenHigh => match self.pending_low.take() {
                None => {
                    self.pending_low = Some(value);
                    self.null_count = true;
                    return;
                }
                Some(low) => u16::from_le_bytes([low, value]),
            },
        };
        // Bank edges under the old programming before changing it.
        self.bank_edges(now_tsc, tsc_hz);
        self.reload = if count == 0 { 65_536 } else { u32::from(count) };
        self.loaded = true;
        self.triggered = false;
        self.null_count = false;
        self.start_counting(now_tsc);
    }

    /// A read of the channel's data port: a latched status, then a latched
    /// count, else the live count (datasheet, "Read Operations").
    fn read(&mut self, now_tsc: u64, tsc_hz: u64) -> u8 {
        if let Some(status) = self.latched_status.take() {
            return status;
        }
        if let Some(count) = self.latched_count {
            let [low, high] = count.to_le_bytes();
            return match self.access {
                AccessMode::LowByte => {
                    self.latched_count = None;
                    low
                }
                AccessMode::HighByte => {
                    self.latched_count = None;
                    high
                }
                AccessMode::LowThenHigh if !self.latched_high_next => {
                    self.latched_high_next = true;
                    low
                }
                AccessMode::LowThenHigh => {
                    self.latched_count = None;
                    self.latched_high_next = false;
                    high
                }
            };
        }
        let [low, high] = self.count_after(self.elapsed_ticks(now_tsc, tsc_hz)).to_le_bytes();
        match self.access {
            AccessMode::LowByte => low,
            AccessMode::HighByte => high,
            AccessMode::LowThenHigh => {
                self.read_high_next = !self.read_high_next;
                if self.read_high_next {
                    low
                } else {
                    high
                }
            }
        }
    }

    /// Counter latch command: freezes the count for reading, unless a
    /// latched count is still unread.
    fn latch_count(&mut self, now_tsc: u64, tsc_hz: u64) {
        if self.latched_count.is_none() {
            self.latched_count = Some(self.count_after(self.elapsed_ticks(now_tsc, tsc_hz)));
            self.latched_high_next = false;
        }
    }

    fn latch_status(&mut self, now_tsc: u64, tsc_hz: u64) {
        if self.latched_status.is_none() {
            self.latched_status = Some(self.status(now_tsc, tsc_hz));
        }
    }

    /// Drives GATE: low pauses modes 0, 2, 3 and 4; a rising edge resumes
    /// modes 0 and 4, restarts modes 2 and 3 and triggers modes 1 and 5
    /// (datasheet, "Gate" table).
    fn set_gate(&mut self, high: bool, now_tsc: u64, tsc_hz: u64) {
        if high == self.gate {
            return;
        }
        self.gate = high;
        if !self.loaded {
            return;
        }
        match (high, self.mode) {
            (false, mode) if mode.gate_pauses() => {
                if self.paused_since.is_none() {
                    self.paused_since = Some(now_tsc);
                }
            }
            (true, Mode::InterruptOnTerminalCount | Mode::SoftwareStrobe) => {
                if let Some(since) = self.paused_since.take() {
                    self.paused_tsc = self.paused_tsc.saturating_add(now_tsc.saturating_sub(since));
                }
            }
            (true, Mode::RateGenerator | Mode::SquareWave) => self.restart(now_tsc, tsc_hz),
            (true, Mode::OneShot | Mode::HardwareStrobe) => {
                self.restart(now_tsc, tsc_hz);
                self.triggered = true;
            }
            _ => {}
        }
    }
}

/// The PIT and port `0x61`.
#[derive(Debug, Clone)]
pub struct Pit8254 {
    channels: [Channel; CHANNEL_COUNT],
    /// Host TSC frequency in Hz (at least 1).
    tsc_hz: u64,
    /// TSC at creation, for the refresh toggle.
    created_tsc: u64,
    /// Port `0x61` bits 3:0 as written.
    port61: u8,
}

impl Pit8254 {
    /// A PIT in the power-on state described in the module documentation,
    /// timed by a TSC running at `tsc_hz` (0 is treated as 1), created at
    /// `now_tsc`.
    pub const fn new(tsc_hz: u64, now_tsc: u64) -> Self {
        let tsc_hz = if tsc_hz == 0 { 1 } else { tsc_hz };
        Self {
            channels: [Channel::new(true, now_tsc), Channel::new(true, now_tsc), Channel::new(false, now_tsc)],
            tsc_hz,
            created_tsc: now_tsc,
            port61: 0,
        }
    }

    /// Whether `port` belongs to the PIT (`0x40`..`0x43` and `0x61`).
    pub const fn handles(port: u16) -> bool {
        matches!(port, CHANNEL0 | CHANNEL1 | CHANNEL2 | CONTROL | SYSTEM_CONTROL_B)
    }

    /// The host TSC frequency the PIT converts with.
    pub const fn tsc_hz(&self) -> u64 {
        self.tsc_hz
    }

    /// A guest read of `port` at host TSC `now_tsc`. The control port and
    /// ports the PIT does not handle read `0xFF`.
    pub fn read(&mut self, port: u16, now_tsc: u64) -> u8 {
        let tsc_hz = self.tsc_hz;
        match port {
            CHANNEL0 | CHANNEL1 | CHANNEL2 => self.channels[usize::from(port - CHANNEL0)].read(now_tsc, tsc_hz),
            SYSTEM_CONTROL_B => self.read_port61(now_tsc),
            _ => 0xFF,
        }
    }

    /// A guest write of `value` to `port` at host TSC `now_tsc`. Ports the
    /// PIT does not handle are ignored.
    pub fn write(&mut self, port: u16, value: u8, now_tsc: u64) {
        let tsc_hz = self.tsc_hz;
        match port {
            CHANNEL0 | CHANNEL1 | CHANNEL2 => {
                self.channels[usize::from(port - CHANNEL0)].write_count(value, now_tsc, tsc_hz)
            }
            CONTROL => self.write_control(value, now_tsc),
            SYSTEM_CONTROL_B => {
                self.port61 = value & PORT61_WRITABLE;
                self.channels[2].set_gate(value & PORT61_GATE2 != 0, now_tsc, tsc_hz);
            }
            _ => {}
        }
    }

    fn write_control(&mut self, value: u8, now_tsc: u64) {
        let tsc_hz = self.tsc_hz;
        let select = value >> 6;
        if select == READ_BACK {
            for (index, channel) in self.channels.iter_mut().enumerate() {
                if value & (1 << (index + 1)) == 0 {
                    continue;
                }
                if value & READ_BACK_NO_STATUS == 0 {
                    channel.latch_status(now_tsc, tsc_hz);
                }
                if value & READ_BACK_NO_COUNT == 0 {
                    channel.latch_count(now_tsc, tsc_hz);
                }
            }
            return;
        }
        let channel = &mut self.channels[usize::from(select)];
        let mode = Mode::from_bits(value >> 1);
        match (value >> 4) & 3 {
            0 => channel.latch_count(now_tsc, tsc_hz),
            1 => channel.program(AccessMode::LowByte, mode, now_tsc, tsc_hz),
            2 => channel.program(AccessMode::HighByte, mode, now_tsc, tsc_hz),
            _ => channel.program(AccessMode::LowThenHigh, mode, now_tsc, tsc_hz),
        }
    }

    /// Port `0x61` as the guest reads it.
    fn read_port61(&self, now_tsc: u64) -> u8 {
        let since_creation = now_tsc.saturating_sub(self.created_tsc);
        let ticks = u128::from(since_creation) * u128::from(PIT_HZ) / u128::from(self.tsc_hz);
        let refresh = if (ticks / u128::from(REFRESH_TICKS)) % 2 == 1 { PORT61_REFRESH } else { 0 };
        let out2 = if self.output(2, now_tsc) { PORT61_OUT2 } else { 0 };
        self.port61 | refresh | out2
    }

    /// The OUT pin of `channel` (0..2; others read low) at `now_tsc`.
    pub fn output(&self, channel: usize, now_tsc: u64) -> bool {
        match self.channels.get(channel) {
            Some(channel) => channel.output_after(channel.elapsed_ticks(now_tsc, self.tsc_hz)),
            None => false,
        }
    }

    /// The programmed mode of `channel` (0..2).
    pub fn mode(&self, channel: usize) -> Option<Mode> {
        self.channels.get(channel).map(|channel| channel.mode)
    }

    /// The count N of `channel` (1..=65536), if one was written since its
    /// last control word.
    pub fn reload(&self, channel: usize) -> Option<u32> {
        self.channels.get(channel).filter(|channel| channel.loaded).map(|channel| channel.reload)
    }

    /// The TSC of channel 0's next IRQ 0 rising edge not yet taken with
    /// [`take_irq0_edges`](Self::take_irq0_edges). It may lie in the past:
    /// then edges are due. `None` if channel 0 will not produce another edge
    /// (not programmed, or a one-shot that already fired).
    pub fn next_irq0_tsc(&self) -> Option<u64> {
        let channel = &self.channels[0];
        if channel.banked_edges > 0 {
            return Some(channel.banked_at_tsc);
        }
        if channel.paused_since.is_some() {
            return None;
        }
        let tick = channel.edge_tick(channel.edges_taken.checked_add(1)?)?;
        // The first TSC whose tick count reaches `tick`: ⌈tick × tsc_hz / PIT_HZ⌉.
        let offset = (u128::from(tick) * u128::from(self.tsc_hz)).div_ceil(u128::from(PIT_HZ));
        let offset = u64::try_from(offset).ok()?;
        channel.start_tsc.checked_add(channel.paused_tsc)?.checked_add(offset)
    }

    /// How many IRQ 0 rising edges happened up to `now_tsc` since the last
    /// call (more than 1 if the caller is late).
    pub fn take_irq0_edges(&mut self, now_tsc: u64) -> u64 {
        let tsc_hz = self.tsc_hz;
        let channel = &mut self.channels[0];
        let edges = channel.edges_after(channel.elapsed_ticks(now_tsc, tsc_hz));
        let fresh = edges.saturating_sub(channel.edges_taken);
        channel.edges_taken = channel.edges_taken.max(edges);
        let banked = core::mem::take(&mut channel.banked_edges);
        banked.saturating_add(fresh)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GHZ: u64 = 1_000_000_000;
    /// An odd TSC rate, like the ones Bochs reports for its instruction-based clock.
    const ODD_HZ: u64 = 2_345_678_917;
    const START: u64 = 123_456_789;

    /// Programs channel 0 with `control` and the count `n` (low then high).
    fn program(pit: &mut Pit8254, control: u8, n: u16, now: u64) {
        pit.write(CONTROL, control, now);
        pit.write(CHANNEL0, n as u8, now);
        pit.write(CHANNEL0, (n >> 8) as u8, now);
    }

    /// Counts IRQ 0 edges over one second, polling at each predicted edge and
    /// checking the predictions against the exact formula.
    fn edges_in_one_second_polled_on_time(tsc_hz: u64, control: u8, n: u16) -> u64 {
        let mut pit = Pit8254::new(tsc_hz, START);
        program(&mut pit, control, n, START);
        let end = START + tsc_hz;
        let mut total = 0;
        while let Some(at) = pit.next_irq0_tsc() {
            if at > end {
                break;
            }
            let edge = total + 1;
            let expected =
                START + (u128::from(edge) * u128::from(n) * u128::from(tsc_hz)).div_ceil(u128::from(PIT_HZ)) as u64;
            assert_eq!(at, expected, "edge {edge}");
            assert_eq!(pit.take_irq0_edges(at - 1), 0, "edge {edge} not before its TSC");
            assert_eq!(pit.take_irq0_edges(at), 1, "edge {edge} at its TSC");
            total += 1;
        }
        assert_eq!(pit.take_irq0_edges(end), 0);
        total
    }

    /// Counts edges over one second polling at irregular steps.
    fn edges_in_one_second_polled_irregularly(tsc_hz: u64, control: u8, n: u16) -> u64 {
        let mut pit = Pit8254::new(tsc_hz, START);
        program(&mut pit, control, n, START);
        let end = START + tsc_hz;
        let mut now = START;
        let mut total = 0;
        let mut step = 7_777;
        while now < end {
            now = (now + step).min(end);
            step = step * 3 % 9_999_991 + 1;
            total += pit.take_irq0_edges(now);
        }
        total
    }

    #[test]
    fn mode2_100hz_edges_over_one_second_are_exact() {
        // Linux's LATCH for HZ = 100: (1193182 + 50) / 100 = 11932, which is
        // 99.998 Hz: 99 whole periods fit in a second. 11931 gives 100.
        for tsc_hz in [GHZ, ODD_HZ] {
            assert_eq!(edges_in_one_second_polled_on_time(tsc_hz, 0x34, 11_932), 99);
            assert_eq!(edges_in_one_second_polled_on_time(tsc_hz, 0x34, 11_931), 100);
            assert_eq!(edges_in_one_second_polled_irregularly(tsc_hz, 0x34, 11_932), 99);
            assert_eq!(edges_in_one_second_polled_irregularly(tsc_hz, 0x34, 11_931), 100);
        }
    }

    #[test]
    fn mode3_100hz_edges_over_one_second_are_exact() {
        for tsc_hz in [GHZ, ODD_HZ, 1_193_182, 3_000_000_001] {
            assert_eq!(edges_in_one_second_polled_on_time(tsc_hz, 0x36, 11_932), 99, "{tsc_hz}");
            assert_eq!(edges_in_one_second_polled_irregularly(tsc_hz, 0x36, 11_931), 100, "{tsc_hz}");
        }
        // Mode 6 and 7 alias 2 and 3.
        assert_eq!(edges_in_one_second_polled_on_time(GHZ, 0x3E, 11_931), 100);
    }

    #[test]
    fn mode3_output_is_a_square_wave() {
        let mut pit = Pit8254::new(PIT_HZ, 0);
        // With tsc_hz = PIT_HZ one TSC tick is one PIT tick.
        program(&mut pit, 0x36, 5, 0);
        let levels: [bool; 10] = core::array::from_fn(|t| pit.output(0, t as u64));
        assert_eq!(levels, [true, true, true, false, false, true, true, true, false, false]);
        program(&mut pit, 0x34, 4, 100);
        let levels: [bool; 8] = core::array::from_fn(|t| pit.output(0, 100 + t as u64));
        assert_eq!(levels, [true, true, true, false, true, true, true, false]);
        // Counts: mode 2 runs N..1, mode 3 by twos in each half.
        let counts: [u8; 5] = core::array::from_fn(|t| {
            pit.write(CONTROL, 0x00, 100 + t as u64);
            let low = pit.read(CHANNEL0, 0);
            pit.read(CHANNEL0, 0);
            low
        });
        assert_eq!(counts, [4, 3, 2, 1, 4]);
        program(&mut pit, 0x36, 6, 200);
        let counts: [u8; 6] = core::array::from_fn(|t| {
            pit.write(CONTROL, 0x00, 200 + t as u64);
            let low = pit.read(CHANNEL0, 0);
            pit.read(CHANNEL0, 0);
            low
        });
        assert_eq!(counts, [6, 4, 2, 6, 4, 2]);
    }

    #[test]
    fn mode0_one_shot_fires_once() {
        let mut pit = Pit8254::new(GHZ, START);
        assert_eq!(pit.next_irq0_tsc(), None, "nothing programmed");
        program(&mut pit, 0x30, 1_193, START);
        assert!(!pit.output(0, START));
        let at = pit.next_irq0_tsc().unwrap();
        // 1193 ticks at 1 GHz: ⌈1193 × 10^9 / 1193182⌉ TSC ticks, just under 1 ms.
        assert_eq!(at, START + 999_848);
        assert!(!pit.output(0, at - 1));
        assert!(pit.output(0, at));
        assert_eq!(pit.take_irq0_edges(at - 1), 0);
        assert_eq!(pit.take_irq0_edges(at + 10 * GHZ), 1);
        assert_eq!(pit.next_irq0_tsc(), None);
        assert_eq!(pit.take_irq0_edges(at + 20 * GHZ), 0);
        assert!(pit.output(0, at + 20 * GHZ), "OUT stays high");
        // A new count re-arms it.
        let now = at + 30 * GHZ;
        pit.write(CHANNEL0, 0x10, now);
        pit.write(CHANNEL0, 0x00, now);
        assert!(!pit.output(0, now));
        assert_eq!(pit.take_irq0_edges(now + GHZ), 1);
    }

    #[test]
    fn mode0_count_keeps_counting_down_through_zero() {
        let mut pit = Pit8254::new(PIT_HZ, 0);
        program(&mut pit, 0x30, 3, 0);
        let reads: [u16; 5] = core::array::from_fn(|t| {
            let low = pit.read(CHANNEL0, t as u64);
            let high = pit.read(CHANNEL0, t as u64);
            u16::from_le_bytes([low, high])
        });
        assert_eq!(reads, [3, 2, 1, 0, 0xFFFF]);
    }

    #[test]
    fn late_polling_merges_edges() {
        let mut pit = Pit8254::new(GHZ, START);
        program(&mut pit, 0x34, 11_932, START);
        let period_tsc = 11_932 * GHZ / PIT_HZ;
        // Ten and a half periods late.
        let now = START + period_tsc * 21 / 2;
        assert_eq!(pit.take_irq0_edges(now), 10);
        assert_eq!(pit.take_irq0_edges(now), 0);
        let next = pit.next_irq0_tsc().unwrap();
        assert!(next > now && next - now < period_tsc);
        assert_eq!(pit.take_irq0_edges(next), 1);
        // Reprogramming does not lose edges that were due and not taken.
        let later = next + 3 * period_tsc + 10;
        pit.write(CONTROL, 0x34, later);
        assert_eq!(pit.next_irq0_tsc(), Some(later), "banked edges are due at once");
        pit.write(CHANNEL0, 0xFF, later);
        pit.write(CHANNEL0, 0xFF, later);
        assert_eq!(pit.take_irq0_edges(later), 3);
        assert!(pit.next_irq0_tsc().unwrap() > later);
    }

    #[test]
    fn counter_latch_freezes_the_count() {
        let mut pit = Pit8254::new(PIT_HZ, 0);
        program(&mut pit, 0x34, 1_000, 0);
        pit.write(CONTROL, 0x00, 100);
        // A second latch before reading is ignored.
        pit.write(CONTROL, 0x00, 200);
        assert_eq!(pit.read(CHANNEL0, 500), (900u16 & 0xFF) as u8);
        assert_eq!(pit.read(CHANNEL0, 600), (900u16 >> 8) as u8);
        // Latch released: live reads again.
        assert_eq!(pit.read(CHANNEL0, 700), (300u16 & 0xFF) as u8);
        assert_eq!(pit.read(CHANNEL0, 700), (300u16 >> 8) as u8);
        // A new latch after the read works.
        pit.write(CONTROL, 0x00, 750);
        assert_eq!(pit.read(CHANNEL0, 800), 250);
        assert_eq!(pit.read(CHANNEL0, 800), 0);
    }

    #[test]
    fn read_back_latches_status_and_count() {
        let mut pit = Pit8254::new(PIT_HZ, 0);
        pit.write(CONTROL, 0x34, 0);
        // Control word written, count not yet: null count set, OUT high in mode 2.
        pit.write(CONTROL, 0xE2, 0);
        assert_eq!(pit.read(CHANNEL0, 0), STATUS_OUT | STATUS_NULL_COUNT | 0x34);
        pit.write(CHANNEL0, 0x00, 0);
        pit.write(CHANNEL0, 0x01, 0);
        // Both status and count of channel 0 at tick 10.
        pit.write(CONTROL, 0xC2, 10);
        assert_eq!(pit.read(CHANNEL0, 50), STATUS_OUT | 0x34);
        assert_eq!(pit.read(CHANNEL0, 60), 246);
        assert_eq!(pit.read(CHANNEL0, 70), 0);
        // Count only, channels 0 and 2; channel 2 unprogrammed reads 0.
        pit.write(CONTROL, 0xDA, 20);
        assert_eq!(pit.read(CHANNEL0, 90), 236);
        assert_eq!(pit.read(CHANNEL0, 90), 0);
        assert_eq!(pit.read(CHANNEL2, 90), 0);
        // Status only for channel 1: mode 0 after power-on, OUT low.
        pit.write(CONTROL, 0xE4, 20);
        assert_eq!(pit.read(CHANNEL1, 90), 0x30);
        // BCD is refused: status bit 0 stays clear.
        pit.write(CONTROL, 0x35, 100);
        pit.write(CONTROL, 0xE2, 100);
        assert_eq!(pit.read(CHANNEL0, 100) & 1, 0);
        // The control port is write-only.
        assert_eq!(pit.read(CONTROL, 100), 0xFF);
    }

    #[test]
    fn low_high_flip_flop_and_single_byte_modes() {
        let mut pit = Pit8254::new(PIT_HZ, 0);
        program(&mut pit, 0x30, 0x1234, 0);
        assert_eq!(pit.read(CHANNEL0, 0), 0x34);
        assert_eq!(pit.read(CHANNEL0, 0), 0x12);
        assert_eq!(pit.read(CHANNEL0, 0x10), 0x24);
        // Half a read, then a control word resets the flip-flop.
        pit.write(CONTROL, 0x30, 0x10);
        pit.write(CHANNEL0, 0x78, 0x10);
        pit.write(CHANNEL0, 0x56, 0x10);
        assert_eq!(pit.reload(0), Some(0x5678));
        assert_eq!(pit.read(CHANNEL0, 0x10), 0x78);
        // Low byte only: the high byte is 0.
        pit.write(CONTROL, 0x10, 0x20);
        assert_eq!(pit.reload(0), None);
        pit.write(CHANNEL0, 0x40, 0x20);
        assert_eq!(pit.reload(0), Some(0x40));
        assert_eq!(pit.read(CHANNEL0, 0x30), 0x30);
        assert_eq!(pit.read(CHANNEL0, 0x30), 0x30);
        // High byte only: the low byte is 0.
        pit.write(CONTROL, 0x20, 0x40);
        pit.write(CHANNEL0, 0x02, 0x40);
        assert_eq!(pit.reload(0), Some(0x200));
        assert_eq!(pit.read(CHANNEL0, 0x41), 0x01);
    }

    #[test]
    fn reload_zero_means_65536() {
        let mut pit = Pit8254::new(PIT_HZ, 0);
        program(&mut pit, 0x34, 0, 0);
        assert_eq!(pit.reload(0), Some(65_536));
        assert_eq!(pit.next_irq0_tsc(), Some(65_536));
        assert_eq!(pit.read(CHANNEL0, 0), 0);
        assert_eq!(pit.read(CHANNEL0, 0), 0);
        assert_eq!(pit.read(CHANNEL0, 1), 0xFF);
        assert_eq!(pit.read(CHANNEL0, 1), 0xFF);
        assert_eq!(pit.take_irq0_edges(65_535), 0);
        assert_eq!(pit.take_irq0_edges(65_536 * 3), 3);
        // 18.2 Hz: 18 edges in a second.
        let mut pit = Pit8254::new(GHZ, 0);
        program(&mut pit, 0x36, 0, 0);
        assert_eq!(pit.take_irq0_edges(GHZ), 18);
    }

    #[test]
    fn channel2_gate_and_output_through_port_61() {
        // Linux's TSC calibration: gate on, speaker off, mode 0, 0xFFFF.
        let mut pit = Pit8254::new(PIT_HZ, 0);
        assert_eq!(pit.read(SYSTEM_CONTROL_B, 0) & (PORT61_OUT2 | PORT61_GATE2), 0);
        let port61 = pit.read(SYSTEM_CONTROL_B, 0);
        pit.write(SYSTEM_CONTROL_B, (port61 & !PORT61_SPEAKER) | PORT61_GATE2, 0);
        pit.write(CONTROL, 0xB0, 0);
        pit.write(CHANNEL2, 0xFF, 0);
        pit.write(CHANNEL2, 0xFF, 0);
        assert_eq!(pit.read(SYSTEM_CONTROL_B, 10) & PORT61_OUT2, 0);
        // The MSB counts down as Linux's quick calibration expects.
        pit.read(CHANNEL2, 0x100);
        assert_eq!(pit.read(CHANNEL2, 0x100), 0xFE);
        assert_eq!(pit.read(SYSTEM_CONTROL_B, 0xFFFE) & PORT61_OUT2, 0);
        assert_eq!(pit.read(SYSTEM_CONTROL_B, 0xFFFF) & PORT61_OUT2, PORT61_OUT2);
        assert_eq!(pit.read(SYSTEM_CONTROL_B, 0xFFFF) & 0x0F, PORT61_GATE2);

        // Gate low before the count: counting waits for the gate.
        let mut pit = Pit8254::new(PIT_HZ, 0);
        pit.write(CONTROL, 0xB0, 0);
        pit.write(CHANNEL2, 100, 0);
        pit.write(CHANNEL2, 0, 0);
        assert!(!pit.output(2, 1_000));
        pit.write(SYSTEM_CONTROL_B, PORT61_GATE2, 1_000);
        assert!(!pit.output(2, 1_099));
        assert!(pit.output(2, 1_100));
        // Gate low pauses mode 0 mid-count.
        pit.write(CONTROL, 0xB0, 2_000);
        pit.write(CHANNEL2, 100, 2_000);
        pit.write(CHANNEL2, 0, 2_000);
        pit.write(SYSTEM_CONTROL_B, 0, 2_040);
        assert!(!pit.output(2, 5_000));
        pit.write(SYSTEM_CONTROL_B, PORT61_GATE2, 5_000);
        assert!(!pit.output(2, 5_059));
        assert!(pit.output(2, 5_060));
        // Channel 2 never raises IRQ 0.
        assert_eq!(pit.take_irq0_edges(10_000), 0);
        assert_eq!(pit.next_irq0_tsc(), None);
    }

    #[test]
    fn channel2_gate_restarts_mode2_and_triggers_mode1() {
        let mut pit = Pit8254::new(PIT_HZ, 0);
        pit.write(SYSTEM_CONTROL_B, PORT61_GATE2, 0);
        pit.write(CONTROL, 0xB4, 0);
        pit.write(CHANNEL2, 10, 0);
        pit.write(CHANNEL2, 0, 0);
        assert!(!pit.output(2, 9));
        assert!(pit.output(2, 10));
        // Gate low forces OUT high; the rising edge reloads.
        pit.write(SYSTEM_CONTROL_B, 0, 15);
        assert!(pit.output(2, 19));
        pit.write(SYSTEM_CONTROL_B, PORT61_GATE2, 100);
        pit.write(CONTROL, 0x80, 103);
        assert_eq!(pit.read(CHANNEL2, 103), 7);
        assert_eq!(pit.read(CHANNEL2, 103), 0);
        assert!(!pit.output(2, 109));
        // Mode 1: waits for a gate rising edge; OUT low for N ticks after it.
        pit.write(CONTROL, 0xB2, 200);
        pit.write(CHANNEL2, 50, 200);
        pit.write(CHANNEL2, 0, 200);
        assert!(pit.output(2, 300), "gate was already high: no trigger");
        pit.write(SYSTEM_CONTROL_B, 0, 300);
        pit.write(SYSTEM_CONTROL_B, PORT61_GATE2, 310);
        assert!(!pit.output(2, 310));
        assert!(!pit.output(2, 359));
        assert!(pit.output(2, 360));
        assert_eq!(pit.mode(2), Some(Mode::OneShot));
    }

    #[test]
    fn mode4_strobes_once() {
        let mut pit = Pit8254::new(PIT_HZ, 0);
        program(&mut pit, 0x38, 20, 0);
        assert!(pit.output(0, 19));
        assert!(!pit.output(0, 20));
        assert!(pit.output(0, 21));
        assert_eq!(pit.next_irq0_tsc(), Some(21));
        assert_eq!(pit.take_irq0_edges(20), 0);
        assert_eq!(pit.take_irq0_edges(1_000), 1);
        assert_eq!(pit.next_irq0_tsc(), None);
        // Modes 1 and 5 on channel 0 never fire (GATE 0 is tied high).
        program(&mut pit, 0x3A, 20, 2_000);
        assert_eq!(pit.next_irq0_tsc(), None);
        assert_eq!(pit.take_irq0_edges(10_000), 0);
        assert!(pit.output(0, 10_000));
    }

    #[test]
    fn port61_refresh_toggles_and_writable_bits() {
        let mut pit = Pit8254::new(PIT_HZ, 1_000);
        assert_eq!(pit.read(SYSTEM_CONTROL_B, 1_000) & PORT61_REFRESH, 0);
        assert_eq!(pit.read(SYSTEM_CONTROL_B, 1_018) & PORT61_REFRESH, PORT61_REFRESH);
        assert_eq!(pit.read(SYSTEM_CONTROL_B, 1_036) & PORT61_REFRESH, 0);
        pit.write(SYSTEM_CONTROL_B, 0xFE, 1_036);
        assert_eq!(pit.read(SYSTEM_CONTROL_B, 1_036), 0x0E);
    }

    #[test]
    fn handles_only_pit_ports_and_survives_odd_inputs() {
        for port in [0x40, 0x41, 0x42, 0x43, 0x61] {
            assert!(Pit8254::handles(port));
        }
        for port in [0x3F, 0x44, 0x60, 0x62, 0x20] {
            assert!(!Pit8254::handles(port));
        }
        let mut pit = Pit8254::new(0, u64::MAX - 10);
        assert_eq!(pit.tsc_hz(), 1);
        program(&mut pit, 0x34, 2, u64::MAX - 10);
        assert_eq!(pit.read(0x44, u64::MAX), 0xFF);
        pit.write(0x44, 0, u64::MAX);
        // Huge tick counts and TSCs near the end of u64 do not overflow.
        assert!(pit.take_irq0_edges(u64::MAX) > 0);
        assert_eq!(pit.next_irq0_tsc(), None, "the next edge is past u64::MAX");
        pit.read(CHANNEL0, u64::MAX);
        // Time going backwards reads as no time passing.
        assert_eq!(pit.take_irq0_edges(0), 0);
        assert!(!pit.output(7, 0));
        assert_eq!(pit.mode(3), None);
    }
}
