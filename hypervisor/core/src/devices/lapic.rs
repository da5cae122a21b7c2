//! A virtual xAPIC local APIC, as a plain state machine.
//!
//! Every logical processor has a local APIC: the unit that accepts interrupts
//! (from its own timer, from other processors, from the I/O APIC), ranks them
//! by priority and presents the most urgent one to the core (Intel SDM Vol. 3A
//! chapter 11, "Advanced Programmable Interrupt Controller"). In xAPIC mode its
//! registers are a 4 KiB page of memory-mapped I/O at physical `0xFEE0_0000`
//! (SDM Vol. 3A 11.4.1, Table 11-1). The hypervisor leaves that page unmapped in
//! the guest's EPT, so every guest access becomes an EPT violation; the kernel
//! decodes the instruction (see [`crate::mmio_decode`]) and calls
//! [`LocalApic::read`] or [`LocalApic::write`]. Nothing here knows about VMX.
//!
//! # How the hypervisor drives it
//!
//! * Time is the guest's TSC, passed in with every call (`now_tsc`). The model
//!   never stores a "current time" it would have to keep up to date: the timer
//!   is computed from the TSC at which it was armed, so the counts are exact no
//!   matter how rarely the model is called.
//! * [`LocalApic::poll`] advances the timer; [`LocalApic::next_timer_tsc`] tells
//!   when to poll next (for the scheduler and for HLT sleeps).
//! * [`LocalApic::highest_deliverable`] is what the INTR line would present;
//!   [`LocalApic::acknowledge`] is the CPU accepting it (the kernel injects the
//!   returned vector). The guest's EOI write retires it.
//! * [`LocalApic::raise`] is an external interrupt source (later: an I/O APIC).
//!
//! # Registers (SDM Vol. 3A Table 11-1)
//!
//! | offset | register | here |
//! |---|---|---|
//! | 0x020 | ID | bits 31:24 = the ID given to [`LocalApic::new`]; writes ignored |
//! | 0x030 | version | [`VERSION_VALUE`]: version 0x14, max LVT entry 5 (six LVTs, no CMCI) |
//! | 0x080 | TPR | bits 7:0 |
//! | 0x090 | APR | reads 0 (arbitration priority only matters with several CPUs) |
//! | 0x0A0 | PPR | computed from TPR and ISR, read-only |
//! | 0x0B0 | EOI | write-only; a write retires the highest in-service vector |
//! | 0x0D0 | LDR | bits 31:24 stored |
//! | 0x0E0 | DFR | bits 31:28 stored, bits 27:0 read as 1 |
//! | 0x0F0 | SVR | bits 9:0 (spurious vector, software enable, focus checking) |
//! | 0x100–0x170 | ISR | read-only |
//! | 0x180–0x1F0 | TMR | read 0 (every interrupt here is edge-triggered) |
//! | 0x200–0x270 | IRR | read-only |
//! | 0x280 | ESR | write-then-read, see below |
//! | 0x300, 0x310 | ICR low, high | self-IPIs are delivered, other IPIs ignored and counted |
//! | 0x320 | LVT timer | vector, mask, mode (bits 18:17) |
//! | 0x330–0x370 | LVT thermal, perf, LINT0, LINT1, error | stored with their writable bits |
//! | 0x380 | initial count | |
//! | 0x390 | current count | computed from the TSC, read-only |
//! | 0x3E0 | divide configuration | bits 3, 1:0 |
//!
//! Every other offset is reserved: it reads 0 and ignores writes.
//!
//! # Accesses
//!
//! The SDM (11.4.1) requires 32-bit loads and stores aligned on 16 bytes. The
//! model's [`LocalApic::read`] and [`LocalApic::write`] take such register
//! offsets. [`check_access`] turns a raw page offset and access size into one,
//! or into an [`ApicAccessError`]; the recommended handling of an error is to
//! ignore the access (reads return 0, writes are dropped) and log it, because
//! real hardware's behaviour there is model specific and never a fault.
//!
//! # Simplifications
//!
//! * One processor: an IPI reaches this APIC only when it is a fixed-mode or
//!   NMI IPI addressed to itself (shorthand "self" or "all including self", or
//!   a destination that matches its physical ID, the physical broadcast 0xFF
//!   or, in flat logical mode, its LDR); an NMI waits in
//!   [`LocalApic::nmi_pending`] until the CPU takes it. Every other IPI — to
//!   other processors, or with another delivery mode (INIT, SIPI, SMI, lowest
//!   priority) — is dropped and counted in [`LocalApic::ignored_ipi_count`].
//! * All interrupts are edge-triggered: the TMR reads 0 and an EOI is never
//!   broadcast to an I/O APIC.
//! * LINT0, LINT1, thermal and performance-counter LVTs are stored but nothing
//!   raises them.
//! * The ESR's "illegal register address" bit (bit 7) is never set.
//! * A timer mode of 3 (reserved) counts like one-shot.

/// The guest-physical address of the xAPIC register page after reset
/// (SDM Vol. 3A 11.4.1; IA32_APIC_BASE bits 35:12).
pub const DEFAULT_BASE_ADDRESS: u64 = 0xFEE0_0000;

/// Size of the register page.
pub const PAGE_SIZE: u32 = 0x1000;

/// Offset 0x020: local APIC ID register (SDM Vol. 3A 11.4.6).
pub const ID: u32 = 0x020;
/// Offset 0x030: local APIC version register (SDM Vol. 3A 11.4.8).
pub const VERSION: u32 = 0x030;
/// Offset 0x080: task priority register (SDM Vol. 3A 11.8.3.1).
pub const TASK_PRIORITY: u32 = 0x080;
/// Offset 0x090: arbitration priority register (SDM Vol. 3A 11.8.3.1 note).
pub const ARBITRATION_PRIORITY: u32 = 0x090;
/// Offset 0x0A0: processor priority register (SDM Vol. 3A 11.8.3.1).
pub const PROCESSOR_PRIORITY: u32 = 0x0A0;
/// Offset 0x0B0: end-of-interrupt register (SDM Vol. 3A 11.8.5).
pub const EOI: u32 = 0x0B0;
/// Offset 0x0D0: logical destination register (SDM Vol. 3A 11.6.2.2).
pub const LOGICAL_DESTINATION: u32 = 0x0D0;
/// Offset 0x0E0: destination format register (SDM Vol. 3A 11.6.2.2).
pub const DESTINATION_FORMAT: u32 = 0x0E0;
/// Offset 0x0F0: spurious-interrupt vector register (SDM Vol. 3A 11.9).
pub const SPURIOUS_VECTOR: u32 = 0x0F0;
/// Offset 0x100: first of the eight in-service registers (SDM Vol. 3A 11.8.4).
pub const IN_SERVICE_BASE: u32 = 0x100;
/// Offset 0x180: first of the eight trigger-mode registers (SDM Vol. 3A 11.8.4).
pub const TRIGGER_MODE_BASE: u32 = 0x180;
/// Offset 0x200: first of the eight interrupt-request registers (SDM Vol. 3A 11.8.4).
pub const INTERRUPT_REQUEST_BASE: u32 = 0x200;
/// Offset 0x280: error status register (SDM Vol. 3A 11.5.3).
pub const ERROR_STATUS: u32 = 0x280;
/// Offset 0x300: interrupt command register, bits 31:0 (SDM Vol. 3A 11.6.1).
pub const INTERRUPT_COMMAND_LOW: u32 = 0x300;
/// Offset 0x310: interrupt command register, bits 63:32 (SDM Vol. 3A 11.6.1).
pub const INTERRUPT_COMMAND_HIGH: u32 = 0x310;
/// Offset 0x320: LVT timer register (SDM Vol. 3A 11.5.1, Figure 11-8).
pub const LVT_TIMER: u32 = 0x320;
/// Offset 0x330: LVT thermal sensor register (SDM Vol. 3A 11.5.1).
pub const LVT_THERMAL: u32 = 0x330;
/// Offset 0x340: LVT performance monitoring counters register (SDM Vol. 3A 11.5.1).
pub const LVT_PERFORMANCE: u32 = 0x340;
/// Offset 0x350: LVT LINT0 register (SDM Vol. 3A 11.5.1).
pub const LVT_LINT0: u32 = 0x350;
/// Offset 0x360: LVT LINT1 register (SDM Vol. 3A 11.5.1).
pub const LVT_LINT1: u32 = 0x360;
/// Offset 0x370: LVT error register (SDM Vol. 3A 11.5.1).
pub const LVT_ERROR: u32 = 0x370;
/// Offset 0x380: timer initial count register (SDM Vol. 3A 11.5.4).
pub const TIMER_INITIAL_COUNT: u32 = 0x380;
/// Offset 0x390: timer current count register (SDM Vol. 3A 11.5.4).
pub const TIMER_CURRENT_COUNT: u32 = 0x390;
/// Offset 0x3E0: timer divide configuration register (SDM Vol. 3A 11.5.4, Figure 11-10).
pub const TIMER_DIVIDE_CONFIGURATION: u32 = 0x3E0;

/// The version register's value: version 0x14 (an integrated xAPIC, bits 7:0)
/// and "max LVT entry" 5 in bits 23:16, i.e. six LVT entries — timer, thermal,
/// performance, LINT0, LINT1, error; no CMCI LVT at 0x2F0. Bit 24 (EOI-broadcast
/// suppression) is clear. SDM Vol. 3A 11.4.8, Figure 11-7.
pub const VERSION_VALUE: u32 = 0x0005_0014;

/// LVT bit 16: the interrupt is masked (SDM Vol. 3A 11.5.1).
pub const LVT_MASKED: u32 = 1 << 16;
/// LVT bits 7:0: the vector.
pub const LVT_VECTOR_MASK: u32 = 0xFF;
/// LVT timer bits 18:17: the timer mode (SDM Vol. 3A 11.5.1, Table 11-2).
pub const LVT_TIMER_MODE_MASK: u32 = 0b11 << 17;
/// LVT timer mode 0: one-shot.
pub const LVT_TIMER_ONE_SHOT: u32 = 0b00 << 17;
/// LVT timer mode 1: periodic.
pub const LVT_TIMER_PERIODIC: u32 = 0b01 << 17;
/// LVT timer mode 2: TSC-deadline (SDM Vol. 3A 11.5.4.1).
pub const LVT_TIMER_TSC_DEADLINE: u32 = 0b10 << 17;

/// Writable bits of the LVT timer register: vector, mask, mode.
const LVT_TIMER_WRITABLE: u32 = 0x0007_00FF;
/// Writable bits of the LVT thermal and performance registers: vector, delivery mode, mask.
const LVT_THERMAL_PERF_WRITABLE: u32 = 0x0001_07FF;
/// Writable bits of LVT LINT0/LINT1: vector, delivery mode, polarity, trigger mode, mask
/// (delivery status and remote IRR are read-only).
const LVT_LINT_WRITABLE: u32 = 0x0001_A7FF;
/// Writable bits of the LVT error register: vector, mask.
const LVT_ERROR_WRITABLE: u32 = 0x0001_00FF;

/// SVR bit 8: APIC software enable (SDM Vol. 3A 11.4.7.2).
pub const SVR_APIC_ENABLED: u32 = 1 << 8;
/// Writable bits of SVR: spurious vector (7:0), software enable (8), focus processor checking (9).
const SVR_WRITABLE: u32 = 0x3FF;
/// SVR after reset: vector 0xFF, APIC software-disabled (SDM Vol. 3A 11.9).
const SVR_RESET: u32 = 0xFF;

/// DFR bits 31:28: the model (0xF flat, 0x0 cluster); bits 27:0 read as 1.
const DFR_MODEL_MASK: u32 = 0xF000_0000;
/// DFR model value for the flat logical model (SDM Vol. 3A 11.6.2.2).
const DFR_FLAT_MODEL: u32 = 0xF000_0000;
/// LDR bits 31:24: the logical APIC ID.
const LDR_WRITABLE: u32 = 0xFF00_0000;

/// ESR bit 5: an IPI with an illegal vector (0–15) was sent (SDM Vol. 3A 11.5.3).
pub const ESR_SEND_ILLEGAL_VECTOR: u32 = 1 << 5;
/// ESR bit 6: an interrupt with an illegal vector (0–15) was received, including
/// from the local vector table (SDM Vol. 3A 11.5.3).
pub const ESR_RECEIVE_ILLEGAL_VECTOR: u32 = 1 << 6;

/// ICR bits 7:0: the vector.
const ICR_VECTOR_MASK: u32 = 0xFF;
/// ICR bits 10:8: the delivery mode (0 = fixed).
const ICR_DELIVERY_MODE_MASK: u32 = 0b111 << 8;
/// ICR delivery mode 100b: NMI (SDM Vol. 3A 11.6.1).
const ICR_DELIVERY_MODE_NMI: u32 = 0b100 << 8;
/// ICR bit 11: destination mode (0 physical, 1 logical).
const ICR_LOGICAL_DESTINATION: u32 = 1 << 11;
/// ICR bits 19:18: destination shorthand.
const ICR_SHORTHAND_SHIFT: u32 = 18;
/// Writable bits of ICR low: vector, delivery mode, destination mode, level, trigger mode,
/// shorthand. Bit 12 (delivery status) reads 0: delivery is instant here.
const ICR_LOW_WRITABLE: u32 = 0x000C_CFFF;
/// Writable bits of ICR high: the destination field 31:24.
const ICR_HIGH_WRITABLE: u32 = 0xFF00_0000;

/// Writable bits of the divide configuration register: 3 and 1:0 (SDM Vol. 3A Figure 11-10).
const DIVIDE_WRITABLE: u32 = 0b1011;

/// Vectors 0–15 are reserved for exceptions and illegal for the APIC (SDM Vol. 3A 11.5.2).
const FIRST_LEGAL_VECTOR: u8 = 16;

/// Why a guest access to the APIC page is not one the model serves.
///
/// The SDM (Vol. 3A 11.4.1) says registers must be accessed with 32-bit loads
/// and stores aligned on 128 bits; anything else is model specific. The kernel
/// should treat an error as an ignored access: a read returns 0, a write is
/// dropped (and it may log the error's `Display` text).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ApicAccessError {
    /// The access is not 4 bytes wide.
    Size {
        /// The page offset of the access.
        offset: u64,
        /// The access width in bytes.
        size: u8,
    },
    /// The access is 4 bytes but does not start on a 16-byte boundary.
    Misaligned {
        /// The page offset of the access.
        offset: u64,
    },
    /// The offset lies outside the 4 KiB register page.
    OutsidePage {
        /// The offending offset.
        offset: u64,
    },
}

impl core::fmt::Display for ApicAccessError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match *self {
            ApicAccessError::Size { offset, size } => {
                write!(f, "{size}-byte access to local APIC offset {offset:#x} (only 32-bit accesses are supported)")
            }
            ApicAccessError::Misaligned { offset } => {
                write!(f, "misaligned access to local APIC offset {offset:#x} (registers are 16-byte aligned)")
            }
            ApicAccessError::OutsidePage { offset } => {
                write!(f, "offset {offset:#x} is outside the 4 KiB local APIC page")
            }
        }
    }
}

/// Checks a guest access to the APIC page (`offset` from the page base, `size`
/// in bytes) and returns the register offset to pass to [`LocalApic::read`] or
/// [`LocalApic::write`]. SDM Vol. 3A 11.4.1: 32-bit accesses, 16-byte aligned.
pub fn check_access(offset: u64, size: u8) -> Result<u32, ApicAccessError> {
    if offset >= u64::from(PAGE_SIZE) {
        return Err(ApicAccessError::OutsidePage { offset });
    }
    if size != 4 {
        return Err(ApicAccessError::Size { offset, size });
    }
    if !offset.is_multiple_of(16) {
        return Err(ApicAccessError::Misaligned { offset });
    }
    // Below PAGE_SIZE, so it fits.
    Ok(offset as u32)
}

/// The mode of the APIC timer, from LVT timer bits 18:17 (SDM Vol. 3A Table 11-2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimerMode {
    /// Counts down once from the initial count, then stops. (Mode 3, reserved, also lands here.)
    OneShot,
    /// Counts down, fires, reloads the initial count, forever.
    Periodic,
    /// Fires when the TSC reaches IA32_TSC_DEADLINE (SDM Vol. 3A 11.5.4.1).
    TscDeadline,
}

impl TimerMode {
    fn from_lvt(lvt: u32) -> TimerMode {
        match lvt & LVT_TIMER_MODE_MASK {
            LVT_TIMER_PERIODIC => TimerMode::Periodic,
            LVT_TIMER_TSC_DEADLINE => TimerMode::TscDeadline,
            _ => TimerMode::OneShot,
        }
    }
}

/// A running countdown of the one-shot or periodic timer.
///
/// The counter decrements once every `divisor` timer-clock ticks; its value is
/// computed from the TSC at `start_tsc`, never stepped, so it has no drift.
/// Expiry `k` (1, 2, ...) happens after `first + (k - 1) * period` decrements.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Countdown {
    /// TSC at which counting (re)started.
    start_tsc: u64,
    /// Decrements from `start_tsc` to the first expiry: the current count at the start.
    first: u64,
    /// Decrements between later expiries (the initial count); 0 for one-shot.
    period: u64,
    /// Divide value in force (1, 2, 4, ..., 128).
    divisor: u64,
    /// Expiries already accounted for.
    expiries: u64,
}

/// The local APIC's state. See the module documentation.
#[derive(Debug, Clone)]
pub struct LocalApic {
    id: u8,
    /// Frequency of the timer's input clock, before the divider.
    timer_hz: u64,
    /// Frequency of the TSC the caller passes in.
    tsc_hz: u64,
    task_priority: u8,
    logical_destination: u32,
    destination_format: u32,
    spurious_vector: u32,
    in_service: [u32; 8],
    interrupt_request: [u32; 8],
    /// Errors detected since the last ESR write (SDM Vol. 3A 11.5.3).
    errors_pending: u32,
    /// What an ESR read returns: the errors latched by the last ESR write.
    errors_visible: u32,
    command_low: u32,
    command_high: u32,
    /// LVT timer, thermal, performance, LINT0, LINT1, error (offsets 0x320..=0x370).
    lvt: [u32; 6],
    initial_count: u32,
    divide_configuration: u32,
    countdown: Option<Countdown>,
    /// IA32_TSC_DEADLINE; 0 = disarmed.
    tsc_deadline: u64,
    /// Timer expiries delivered to IRR since the last [`LocalApic::poll`].
    unreported_expiries: u64,
    ignored_ipis: u64,
    /// An NMI sent to this APIC (a self-IPI with delivery mode NMI) that the
    /// CPU has not taken yet. NMIs are not queued: a second one while one is
    /// pending is merged into it.
    nmi_pending: bool,
    /// The TSC of the latest call, so time never runs backwards for the timer.
    latest_tsc: u64,
}

/// Index of the LVT timer in `LocalApic::lvt`.
const LVT_INDEX_TIMER: usize = 0;
/// Index of the LVT error register in `LocalApic::lvt`.
const LVT_INDEX_ERROR: usize = 5;

impl LocalApic {
    /// A local APIC in its power-up state (SDM Vol. 3A 11.4.7.1): software
    /// disabled (SVR = 0xFF), every LVT masked, timer stopped, divide by 2.
    ///
    /// `timer_hz` is the timer's input clock before the divide configuration;
    /// `tsc_hz` is the frequency of the TSC values passed to every method.
    /// A zero `tsc_hz` is treated as 1; a zero `timer_hz` stops the timer.
    pub fn new(apic_id: u8, timer_hz: u64, now_tsc: u64, tsc_hz: u64) -> LocalApic {
        LocalApic {
            id: apic_id,
            timer_hz,
            tsc_hz: tsc_hz.max(1),
            task_priority: 0,
            logical_destination: 0,
            destination_format: 0xFFFF_FFFF,
            spurious_vector: SVR_RESET,
            in_service: [0; 8],
            interrupt_request: [0; 8],
            errors_pending: 0,
            errors_visible: 0,
            command_low: 0,
            command_high: 0,
            lvt: [LVT_MASKED; 6],
            initial_count: 0,
            divide_configuration: 0,
            countdown: None,
            tsc_deadline: 0,
            unreported_expiries: 0,
            ignored_ipis: 0,
            nmi_pending: false,
            latest_tsc: now_tsc,
        }
    }

    /// The APIC ID given to [`LocalApic::new`].
    pub fn apic_id(&self) -> u8 {
        self.id
    }

    /// Whether SVR bit 8 (APIC software enable) is set (SDM Vol. 3A 11.4.7.2).
    pub fn software_enabled(&self) -> bool {
        self.spurious_vector & SVR_APIC_ENABLED != 0
    }

    /// The timer mode the LVT timer register selects.
    pub fn timer_mode(&self) -> TimerMode {
        TimerMode::from_lvt(self.lvt[LVT_INDEX_TIMER])
    }

    /// How many IPIs the guest sent that this single-processor model dropped
    /// (see the module documentation).
    pub fn ignored_ipi_count(&self) -> u64 {
        self.ignored_ipis
    }

    /// Whether an NMI waits for the CPU (see [`take_nmi`](Self::take_nmi)).
    pub fn nmi_pending(&self) -> bool {
        self.nmi_pending
    }

    /// The CPU takes the pending NMI: returns whether there was one.
    pub fn take_nmi(&mut self) -> bool {
        core::mem::take(&mut self.nmi_pending)
    }

    /// The task priority register (bits 7:0). CR8 is bits 7:4 of it
    /// (SDM Vol. 3A 11.8.6).
    pub fn task_priority(&self) -> u8 {
        self.task_priority
    }

    /// Sets the task priority register, e.g. from a guest MOV to CR8
    /// (CR8 = TPR bits 7:4, SDM Vol. 3A 11.8.6).
    pub fn set_task_priority(&mut self, value: u8) {
        self.task_priority = value;
    }

    /// The processor priority (SDM Vol. 3A 11.8.3.1): the priority class is the
    /// higher of the TPR's and the highest in-service vector's; the sub-class is
    /// the TPR's if the TPR's class wins or ties, else 0.
    pub fn processor_priority(&self) -> u8 {
        let tpr = self.task_priority;
        let isrv = highest_set(&self.in_service).unwrap_or(0);
        if tpr >> 4 >= isrv >> 4 {
            tpr
        } else {
            isrv & 0xF0
        }
    }

    /// Reads the register at `offset` (a 16-byte-aligned offset in the page;
    /// use [`check_access`] first). Reserved or unaligned offsets read 0.
    /// Advances the timer to `now_tsc` first, so IRR and the current count are
    /// up to date.
    pub fn read(&mut self, offset: u32, now_tsc: u64) -> u32 {
        self.advance(now_tsc);
        match offset {
            ID => u32::from(self.id) << 24,
            VERSION => VERSION_VALUE,
            TASK_PRIORITY => u32::from(self.task_priority),
            ARBITRATION_PRIORITY => 0,
            PROCESSOR_PRIORITY => u32::from(self.processor_priority()),
            LOGICAL_DESTINATION => self.logical_destination,
            DESTINATION_FORMAT => self.destination_format,
            SPURIOUS_VECTOR => self.spurious_vector,
            0x100..=0x170 if offset.is_multiple_of(16) => self.in_service[((offset - IN_SERVICE_BASE) / 16) as usize],
            0x180..=0x1F0 => 0,
            0x200..=0x270 if offset.is_multiple_of(16) => {
                self.interrupt_request[((offset - INTERRUPT_REQUEST_BASE) / 16) as usize]
            }
            ERROR_STATUS => self.errors_visible,
            INTERRUPT_COMMAND_LOW => self.command_low,
            INTERRUPT_COMMAND_HIGH => self.command_high,
            0x320..=0x370 if offset.is_multiple_of(16) => self.lvt[((offset - LVT_TIMER) / 16) as usize],
            TIMER_INITIAL_COUNT => self.initial_count,
            TIMER_CURRENT_COUNT => self.current_count(now_tsc),
            TIMER_DIVIDE_CONFIGURATION => self.divide_configuration,
            // EOI is write-only; everything else is reserved.
            _ => 0,
        }
    }

    /// Writes the register at `offset` (a 16-byte-aligned offset in the page;
    /// use [`check_access`] first). Read-only, reserved and unaligned offsets
    /// ignore the write. Advances the timer to `now_tsc` first.
    pub fn write(&mut self, offset: u32, value: u32, now_tsc: u64) {
        self.advance(now_tsc);
        match offset {
            TASK_PRIORITY => self.task_priority = (value & 0xFF) as u8,
            EOI => self.end_of_interrupt(),
            LOGICAL_DESTINATION => self.logical_destination = value & LDR_WRITABLE,
            DESTINATION_FORMAT => self.destination_format = (value & DFR_MODEL_MASK) | !DFR_MODEL_MASK,
            SPURIOUS_VECTOR => self.write_spurious_vector(value),
            // SDM Vol. 3A 11.5.3: a write (of any value) latches the errors
            // collected since the previous write and starts collecting anew.
            ERROR_STATUS => {
                self.errors_visible = self.errors_pending;
                self.errors_pending = 0;
            }
            INTERRUPT_COMMAND_HIGH => self.command_high = value & ICR_HIGH_WRITABLE,
            INTERRUPT_COMMAND_LOW => {
                self.command_low = value & ICR_LOW_WRITABLE;
                self.send_ipi();
            }
            LVT_TIMER => self.write_lvt_timer(value),
            LVT_THERMAL | LVT_PERFORMANCE => self.write_lvt(offset, value & LVT_THERMAL_PERF_WRITABLE),
            // Delivery status and remote IRR (bits 12, 14) are read-only and always 0 here.
            LVT_LINT0 | LVT_LINT1 => self.write_lvt(offset, value & LVT_LINT_WRITABLE),
            LVT_ERROR => self.write_lvt(offset, value & LVT_ERROR_WRITABLE),
            TIMER_INITIAL_COUNT => self.write_initial_count(value, now_tsc),
            TIMER_DIVIDE_CONFIGURATION => self.write_divide_configuration(value, now_tsc),
            // ID (writes are model specific; ignored here), version, APR, PPR,
            // ISR, TMR, IRR, current count: read-only. The rest is reserved.
            _ => {}
        }
    }

    /// Writes IA32_TSC_DEADLINE (MSR 0x6E0, SDM Vol. 3A 11.5.4.1): a non-zero
    /// value arms the timer to fire when the TSC reaches it (at once if it
    /// already has), 0 disarms it. Ignored unless the timer is in TSC-deadline
    /// mode.
    pub fn write_tsc_deadline(&mut self, value: u64, now_tsc: u64) {
        self.advance(now_tsc);
        if self.timer_mode() == TimerMode::TscDeadline {
            self.tsc_deadline = value;
            // A deadline already in the past fires now.
            self.advance(now_tsc);
        }
    }

    /// Reads IA32_TSC_DEADLINE: the armed deadline, or 0 when disarmed, after it
    /// fired, or outside TSC-deadline mode. Call [`LocalApic::poll`] first to
    /// account for a deadline that has just passed.
    pub fn read_tsc_deadline(&self) -> u64 {
        if self.timer_mode() == TimerMode::TscDeadline {
            self.tsc_deadline
        } else {
            0
        }
    }

    /// Advances the timer to `now_tsc`. If it expired since the last poll
    /// (possibly several periods, when polled late) and the LVT timer is not
    /// masked, the timer vector is set in IRR — once, since IRR holds one bit
    /// per vector. Returns how many expiries were delivered since the last
    /// poll (masked expiries are not counted): 2 or more means ticks were
    /// merged into one interrupt.
    pub fn poll(&mut self, now_tsc: u64) -> u64 {
        self.advance(now_tsc);
        core::mem::take(&mut self.unreported_expiries)
    }

    /// The TSC at which the timer next expires, or `None` when it is disarmed
    /// or masked (an expiry would deliver nothing; the countdown is computed
    /// from the TSC, so nothing needs to happen at that time).
    pub fn next_timer_tsc(&self) -> Option<u64> {
        if self.lvt[LVT_INDEX_TIMER] & LVT_MASKED != 0 {
            return None;
        }
        match self.timer_mode() {
            TimerMode::TscDeadline => (self.tsc_deadline != 0).then_some(self.tsc_deadline),
            TimerMode::OneShot | TimerMode::Periodic => {
                let countdown = self.countdown?;
                let decrements = countdown.decrements_until_expiry(countdown.expiries.saturating_add(1));
                self.tsc_after_decrements(&countdown, decrements)
            }
        }
    }

    /// The highest-priority vector in IRR whose priority class (bits 7:4) is
    /// above the processor priority's class: what the INTR line presents to
    /// the core (SDM Vol. 3A 11.8.3.1, 11.8.4). `None` if nothing qualifies.
    pub fn highest_deliverable(&self) -> Option<u8> {
        let vector = highest_set(&self.interrupt_request)?;
        (vector >> 4 > self.processor_priority() >> 4).then_some(vector)
    }

    /// The core accepts the interrupt [`LocalApic::highest_deliverable`]
    /// presents: its IRR bit moves to ISR (SDM Vol. 3A 11.8.4). Returns the
    /// vector to inject, or `None` if nothing is deliverable.
    pub fn acknowledge(&mut self) -> Option<u8> {
        let vector = self.highest_deliverable()?;
        clear_bit(&mut self.interrupt_request, vector);
        set_bit(&mut self.in_service, vector);
        Some(vector)
    }

    /// An external source (e.g. an I/O APIC) requests a fixed, edge-triggered
    /// interrupt: sets `vector` in IRR. Returns whether it was accepted. A
    /// vector below 16 is illegal (recorded in the ESR, SDM Vol. 3A 11.5.3);
    /// a software-disabled APIC accepts no fixed interrupts (SDM Vol. 3A
    /// 11.4.7.2 lists only NMI, SMI, INIT and SIPI as still handled).
    pub fn raise(&mut self, vector: u8) -> bool {
        self.accept(vector)
    }

    /// Whether `vector` is set in IRR.
    pub fn is_requested(&self, vector: u8) -> bool {
        test_bit(&self.interrupt_request, vector)
    }

    /// Whether `vector` is set in ISR.
    pub fn is_in_service(&self, vector: u8) -> bool {
        test_bit(&self.in_service, vector)
    }

    // ----- internals -----

    /// Fixed-interrupt acceptance: sets IRR unless the vector is illegal or
    /// the APIC is software-disabled.
    fn accept(&mut self, vector: u8) -> bool {
        if vector < FIRST_LEGAL_VECTOR {
            self.record_error(ESR_RECEIVE_ILLEGAL_VECTOR);
            return false;
        }
        if !self.software_enabled() {
            return false;
        }
        set_bit(&mut self.interrupt_request, vector);
        true
    }

    /// Records an error in the ESR and, when the LVT error entry is unmasked,
    /// raises its vector (SDM Vol. 3A 11.5.3). The error interrupt is raised
    /// only for a newly detected error bit, so it cannot recurse.
    fn record_error(&mut self, bit: u32) {
        let new = bit & !self.errors_pending;
        self.errors_pending |= bit;
        let lvt_error = self.lvt[LVT_INDEX_ERROR];
        if new != 0 && lvt_error & LVT_MASKED == 0 {
            let vector = (lvt_error & LVT_VECTOR_MASK) as u8;
            if vector >= FIRST_LEGAL_VECTOR {
                self.accept(vector);
            }
        }
    }

    /// EOI (SDM Vol. 3A 11.8.5): the highest in-service vector is done.
    fn end_of_interrupt(&mut self) {
        if let Some(vector) = highest_set(&self.in_service) {
            clear_bit(&mut self.in_service, vector);
        }
    }

    /// SVR write. Clearing the software-enable bit masks every LVT entry
    /// (SDM Vol. 3A 11.4.7.2); they stay masked after re-enabling until
    /// software unmasks them.
    fn write_spurious_vector(&mut self, value: u32) {
        self.spurious_vector = value & SVR_WRITABLE;
        if !self.software_enabled() {
            for entry in &mut self.lvt {
                *entry |= LVT_MASKED;
            }
        }
    }

    /// Stores an LVT entry other than the timer (`value` already limited to
    /// its writable bits); a software-disabled APIC keeps the mask bit set
    /// (SDM Vol. 3A 11.4.7.2).
    fn write_lvt(&mut self, offset: u32, value: u32) {
        let index = ((offset - LVT_TIMER) / 16) as usize;
        self.lvt[index] = if self.software_enabled() { value } else { value | LVT_MASKED };
    }

    /// LVT timer write. A change of timer mode disarms the timer (SDM Vol. 3A
    /// 11.5.4.1): the countdown stops and IA32_TSC_DEADLINE is cleared.
    fn write_lvt_timer(&mut self, value: u32) {
        let old_mode = self.timer_mode();
        let mut entry = value & LVT_TIMER_WRITABLE;
        if !self.software_enabled() {
            entry |= LVT_MASKED;
        }
        self.lvt[LVT_INDEX_TIMER] = entry;
        // Same mode: only the vector or the mask changed, and the counting goes on.
        if self.timer_mode() != old_mode {
            self.countdown = None;
            self.tsc_deadline = 0;
        }
    }

    /// Initial count write (SDM Vol. 3A 11.5.4): restarts counting from the
    /// new value; 0 stops the timer. Ignored in TSC-deadline mode.
    fn write_initial_count(&mut self, value: u32, now_tsc: u64) {
        let mode = self.timer_mode();
        if mode == TimerMode::TscDeadline {
            return;
        }
        self.initial_count = value;
        self.countdown = (value != 0).then(|| Countdown {
            start_tsc: now_tsc,
            first: u64::from(value),
            period: if mode == TimerMode::Periodic { u64::from(value) } else { 0 },
            divisor: self.divisor(),
            expiries: 0,
        });
    }

    /// Divide configuration write. The SDM does not say what a running
    /// countdown does; here it keeps its current count and continues at the
    /// new rate (the fraction of a count already elapsed is lost).
    fn write_divide_configuration(&mut self, value: u32, now_tsc: u64) {
        self.divide_configuration = value & DIVIDE_WRITABLE;
        let divisor = self.divisor();
        let now = now_tsc.max(self.latest_tsc);
        if let Some(countdown) = self.countdown {
            let current = u64::from(self.current_count(now));
            self.countdown =
                Some(Countdown { start_tsc: now, first: current, period: countdown.period, divisor, expiries: 0 });
        }
    }

    /// The divide value of the divide configuration register: bits 3 and 1:0
    /// form a 3-bit code; 0b111 is divide by 1, code `n` otherwise divides by
    /// 2^(n+1) (SDM Vol. 3A Figure 11-10).
    fn divisor(&self) -> u64 {
        let code = (self.divide_configuration & 0b11) | ((self.divide_configuration >> 1) & 0b100);
        if code == 0b111 {
            1
        } else {
            1 << (code + 1)
        }
    }

    /// Decrements of the countdown between its start and `now_tsc`.
    fn decrements_at(&self, countdown: &Countdown, now_tsc: u64) -> u128 {
        let elapsed = u128::from(now_tsc.saturating_sub(countdown.start_tsc));
        // Timer-clock ticks = elapsed * timer_hz / tsc_hz; one decrement per `divisor` ticks.
        elapsed * u128::from(self.timer_hz) / (u128::from(self.tsc_hz) * u128::from(countdown.divisor))
    }

    /// The first TSC at which `decrements` decrements have happened, if it fits in 64 bits.
    fn tsc_after_decrements(&self, countdown: &Countdown, decrements: u128) -> Option<u64> {
        if self.timer_hz == 0 {
            return None;
        }
        // Smallest t with t * timer_hz >= decrements * divisor * tsc_hz.
        let needed = decrements.checked_mul(u128::from(countdown.divisor))?.checked_mul(u128::from(self.tsc_hz))?;
        let elapsed = needed.div_ceil(u128::from(self.timer_hz));
        let elapsed = u64::try_from(elapsed).ok()?;
        countdown.start_tsc.checked_add(elapsed)
    }

    /// The current count register (SDM Vol. 3A 11.5.4): counts down from the
    /// initial count; one-shot stays at 0 after expiring, periodic reloads.
    /// Always 0 in TSC-deadline mode or when stopped.
    fn current_count(&self, now_tsc: u64) -> u32 {
        let Some(countdown) = &self.countdown else { return 0 };
        let now = now_tsc.max(self.latest_tsc);
        let decrements = self.decrements_at(countdown, now);
        let first = u128::from(countdown.first);
        let remaining = if decrements < first {
            first - decrements
        } else if countdown.period == 0 {
            0
        } else {
            let period = u128::from(countdown.period);
            period - (decrements - first) % period
        };
        // Never above the 32-bit initial count.
        u32::try_from(remaining).unwrap_or(u32::MAX)
    }

    /// Accounts for every timer expiry up to `now_tsc`: delivers the timer
    /// vector (once) if any happened and the LVT is unmasked.
    fn advance(&mut self, now_tsc: u64) {
        let now = now_tsc.max(self.latest_tsc);
        self.latest_tsc = now;
        let expired = match self.timer_mode() {
            TimerMode::TscDeadline => {
                if self.tsc_deadline != 0 && now >= self.tsc_deadline {
                    // SDM Vol. 3A 11.5.4.1: the timer disarms itself and clears the MSR.
                    self.tsc_deadline = 0;
                    1
                } else {
                    0
                }
            }
            TimerMode::OneShot | TimerMode::Periodic => self.advance_countdown(now),
        };
        if expired == 0 {
            return;
        }
        let lvt = self.lvt[LVT_INDEX_TIMER];
        if lvt & LVT_MASKED == 0 && self.accept((lvt & LVT_VECTOR_MASK) as u8) {
            self.unreported_expiries = self.unreported_expiries.saturating_add(expired);
        }
    }

    /// Counts the countdown's new expiries at `now`; a one-shot countdown stops after its expiry.
    fn advance_countdown(&mut self, now: u64) -> u64 {
        let Some(countdown) = self.countdown else { return 0 };
        let decrements = self.decrements_at(&countdown, now);
        let first = u128::from(countdown.first);
        if decrements < first {
            return 0;
        }
        if countdown.period == 0 {
            self.countdown = None;
            return 1;
        }
        let total = 1 + (decrements - first) / u128::from(countdown.period);
        let total = u64::try_from(total).unwrap_or(u64::MAX);
        let new = total.saturating_sub(countdown.expiries);
        self.countdown = Some(Countdown { expiries: total, ..countdown });
        new
    }

    /// Delivers a self-IPI from the ICR, or counts an IPI this model drops
    /// (SDM Vol. 3A 11.6.1).
    fn send_ipi(&mut self) {
        let low = self.command_low;
        let vector = (low & ICR_VECTOR_MASK) as u8;
        let fixed = low & ICR_DELIVERY_MODE_MASK == 0;
        let destination = (self.command_high >> 24) as u8;
        let (to_self, to_others) = match (low >> ICR_SHORTHAND_SHIFT) & 0b11 {
            0b01 => (true, false), // self
            0b10 => (true, true),  // all including self
            0b11 => (false, true), // all excluding self
            _ => {
                if low & ICR_LOGICAL_DESTINATION == 0 {
                    // Physical: one ID, or 0xFF for everyone (SDM Vol. 3A 11.6.2.1).
                    (destination == self.id || destination == 0xFF, destination != self.id)
                } else {
                    let flat = self.destination_format & DFR_MODEL_MASK == DFR_FLAT_MODEL;
                    let logical_id = (self.logical_destination >> 24) as u8;
                    let mine = flat && destination & logical_id != 0;
                    (mine, destination & !logical_id != 0 || !flat)
                }
            }
        };
        if fixed && vector < FIRST_LEGAL_VECTOR {
            self.record_error(ESR_SEND_ILLEGAL_VECTOR);
            return;
        }
        let nmi = low & ICR_DELIVERY_MODE_MASK == ICR_DELIVERY_MODE_NMI;
        if to_self && fixed {
            self.accept(vector);
        }
        if to_self && nmi {
            // The vector field is ignored for NMIs (SDM Vol. 3A 11.6.1).
            self.nmi_pending = true;
        }
        if to_others || !(fixed || nmi) {
            self.ignored_ipis = self.ignored_ipis.saturating_add(1);
        }
    }
}

impl Countdown {
    /// Decrements from the start until expiry number `k` (counting from 1).
    fn decrements_until_expiry(&self, k: u64) -> u128 {
        u128::from(self.first) + u128::from(k.saturating_sub(1)) * u128::from(self.period)
    }
}

/// The highest vector set in a 256-bit register (IRR, ISR).
fn highest_set(bits: &[u32; 8]) -> Option<u8> {
    bits.iter().enumerate().rev().find(|(_, word)| **word != 0).map(|(index, word)| {
        // index < 8 and the bit number < 32, so the vector is below 256.
        (index as u32 * 32 + (31 - word.leading_zeros())) as u8
    })
}

fn set_bit(bits: &mut [u32; 8], vector: u8) {
    bits[usize::from(vector / 32)] |= 1 << (vector % 32);
}

fn clear_bit(bits: &mut [u32; 8], vector: u8) {
    bits[usize::from(vector / 32)] &= !(1 << (vector % 32));
}

fn test_bit(bits: &[u32; 8], vector: u8) -> bool {
    bits[usize::from(vector / 32)] & (1 << (vector % 32)) != 0
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 1 MHz timer clock and 1 MHz TSC: one timer-clock tick per TSC tick.
    const HZ: u64 = 1_000_000;
    const TIMER_VECTOR: u8 = 0x40;

    /// An APIC with ID 3, software-enabled, at TSC 0.
    fn enabled_apic() -> LocalApic {
        let mut apic = LocalApic::new(3, HZ, 0, HZ);
        apic.write(SPURIOUS_VECTOR, SVR_APIC_ENABLED | 0xFF, 0);
        apic
    }

    /// Programs the timer: LVT (vector 0x40, `mode`, unmasked), divide
    /// configuration `divide`, and — unless in TSC-deadline mode — the initial count.
    fn start_timer(apic: &mut LocalApic, mode: u32, divide: u32, initial: u32, now: u64) {
        apic.write(LVT_TIMER, mode | u32::from(TIMER_VECTOR), now);
        apic.write(TIMER_DIVIDE_CONFIGURATION, divide, now);
        apic.write(TIMER_INITIAL_COUNT, initial, now);
    }

    /// Takes the pending interrupt and ends it, as a guest handler would.
    fn service(apic: &mut LocalApic, now: u64) -> Option<u8> {
        let vector = apic.acknowledge()?;
        apic.write(EOI, 0, now);
        Some(vector)
    }

    #[test]
    fn power_up_state() {
        let mut apic = LocalApic::new(7, HZ, 0, HZ);
        assert_eq!(apic.read(ID, 0), 7 << 24);
        assert_eq!(apic.read(VERSION, 0), 0x0005_0014);
        assert_eq!(apic.read(SPURIOUS_VECTOR, 0), 0xFF);
        assert!(!apic.software_enabled());
        assert_eq!(apic.read(DESTINATION_FORMAT, 0), 0xFFFF_FFFF);
        for offset in [LVT_TIMER, LVT_THERMAL, LVT_PERFORMANCE, LVT_LINT0, LVT_LINT1, LVT_ERROR] {
            assert_eq!(apic.read(offset, 0), LVT_MASKED, "LVT {offset:#x}");
        }
        assert_eq!(apic.read(TASK_PRIORITY, 0), 0);
        assert_eq!(apic.read(PROCESSOR_PRIORITY, 0), 0);
        assert_eq!(apic.read(TIMER_CURRENT_COUNT, 0), 0);
        assert_eq!(apic.read(TIMER_DIVIDE_CONFIGURATION, 0), 0);
        assert_eq!(apic.timer_mode(), TimerMode::OneShot);
        assert_eq!(apic.next_timer_tsc(), None);
        assert_eq!(apic.highest_deliverable(), None);
        assert_eq!(apic.apic_id(), 7);
    }

    #[test]
    fn writable_bits_of_each_register() {
        let mut apic = enabled_apic();
        let all = 0xFFFF_FFFF;
        let cases = [
            (TASK_PRIORITY, 0xFF),
            (LOGICAL_DESTINATION, 0xFF00_0000),
            (SPURIOUS_VECTOR, 0x3FF),
            (INTERRUPT_COMMAND_HIGH, 0xFF00_0000),
            (LVT_TIMER, 0x0007_00FF),
            (LVT_THERMAL, 0x0001_07FF),
            (LVT_PERFORMANCE, 0x0001_07FF),
            (LVT_LINT0, 0x0001_A7FF),
            (LVT_LINT1, 0x0001_A7FF),
            (LVT_ERROR, 0x0001_00FF),
            (TIMER_DIVIDE_CONFIGURATION, 0xB),
        ];
        for (offset, expected) in cases {
            apic.write(offset, all, 0);
            assert_eq!(apic.read(offset, 0), expected, "offset {offset:#x}");
        }
        // DFR: the model bits are writable, the rest read as 1.
        apic.write(DESTINATION_FORMAT, 0, 0);
        assert_eq!(apic.read(DESTINATION_FORMAT, 0), 0x0FFF_FFFF);
        apic.write(DESTINATION_FORMAT, 0xF000_0000, 0);
        assert_eq!(apic.read(DESTINATION_FORMAT, 0), 0xFFFF_FFFF);
        // ICR low: delivery status (bit 12) and bits 16-17, 20-31 are not stored.
        apic.write(INTERRUPT_COMMAND_LOW, all, 0);
        assert_eq!(apic.read(INTERRUPT_COMMAND_LOW, 0), 0x000C_CFFF);
    }

    #[test]
    fn read_only_and_reserved_registers_ignore_writes() {
        let mut apic = enabled_apic();
        for offset in [ID, VERSION, ARBITRATION_PRIORITY, PROCESSOR_PRIORITY, TIMER_CURRENT_COUNT] {
            let before = apic.read(offset, 0);
            apic.write(offset, 0x1234_5678, 0);
            assert_eq!(apic.read(offset, 0), before, "offset {offset:#x}");
        }
        for register in 0..8 {
            for base in [IN_SERVICE_BASE, TRIGGER_MODE_BASE, INTERRUPT_REQUEST_BASE] {
                let offset = base + register * 16;
                apic.write(offset, 0xFFFF_FFFF, 0);
                assert_eq!(apic.read(offset, 0), 0, "offset {offset:#x}");
            }
        }
        for offset in [0x000, 0x010, 0x040, 0x070, 0x0C0, 0x2F0, 0x3A0, 0x3F0, 0x400, 0xFF0] {
            apic.write(offset, 0xFFFF_FFFF, 0);
            assert_eq!(apic.read(offset, 0), 0, "reserved offset {offset:#x}");
        }
        // EOI is write-only; unaligned offsets read 0 and ignore writes.
        assert_eq!(apic.read(EOI, 0), 0);
        apic.write(TASK_PRIORITY + 4, 0x55, 0);
        assert_eq!(apic.read(TASK_PRIORITY, 0), 0);
        assert_eq!(apic.read(ID + 4, 0), 0);
        assert_eq!(apic.read(IN_SERVICE_BASE + 4, 0), 0);
    }

    #[test]
    fn check_access_accepts_only_aligned_dwords_in_the_page() {
        assert_eq!(check_access(0x0B0, 4), Ok(EOI));
        assert_eq!(check_access(0xFF0, 4), Ok(0xFF0));
        assert_eq!(check_access(0x0B4, 4), Err(ApicAccessError::Misaligned { offset: 0xB4 }));
        assert_eq!(check_access(0x0B8, 4), Err(ApicAccessError::Misaligned { offset: 0xB8 }));
        assert_eq!(check_access(0x020, 1), Err(ApicAccessError::Size { offset: 0x20, size: 1 }));
        assert_eq!(check_access(0x300, 8), Err(ApicAccessError::Size { offset: 0x300, size: 8 }));
        assert_eq!(check_access(0x1000, 4), Err(ApicAccessError::OutsidePage { offset: 0x1000 }));
        assert_eq!(check_access(u64::MAX, 4), Err(ApicAccessError::OutsidePage { offset: u64::MAX }));
    }

    #[test]
    fn access_errors_read_well() {
        use std::string::ToString;
        assert_eq!(
            ApicAccessError::Size { offset: 0x23, size: 1 }.to_string(),
            "1-byte access to local APIC offset 0x23 (only 32-bit accesses are supported)"
        );
        assert_eq!(
            ApicAccessError::Misaligned { offset: 0xB4 }.to_string(),
            "misaligned access to local APIC offset 0xb4 (registers are 16-byte aligned)"
        );
        assert_eq!(
            ApicAccessError::OutsidePage { offset: 0x1000 }.to_string(),
            "offset 0x1000 is outside the 4 KiB local APIC page"
        );
    }

    #[test]
    fn processor_priority_follows_tpr_and_isr() {
        let mut apic = enabled_apic();
        apic.write(TASK_PRIORITY, 0x35, 0);
        assert_eq!(apic.read(PROCESSOR_PRIORITY, 0), 0x35);
        // An in-service vector of a higher class wins, with sub-class 0.
        apic.raise(0x51);
        assert_eq!(apic.acknowledge(), Some(0x51));
        assert_eq!(apic.read(PROCESSOR_PRIORITY, 0), 0x50);
        // Same class: the TPR wins, sub-class included.
        apic.write(TASK_PRIORITY, 0x57, 0);
        assert_eq!(apic.read(PROCESSOR_PRIORITY, 0), 0x57);
        apic.write(TASK_PRIORITY, 0x60, 0);
        assert_eq!(apic.read(PROCESSOR_PRIORITY, 0), 0x60);
        apic.write(TASK_PRIORITY, 0, 0);
        apic.write(EOI, 0, 0);
        assert_eq!(apic.read(PROCESSOR_PRIORITY, 0), 0);
    }

    #[test]
    fn tpr_blocks_vectors_of_its_class_and_below() {
        let mut apic = enabled_apic();
        assert!(apic.raise(0x40));
        apic.write(TASK_PRIORITY, 0x40, 0);
        assert_eq!(apic.highest_deliverable(), None);
        assert_eq!(apic.acknowledge(), None);
        apic.write(TASK_PRIORITY, 0x4F, 0);
        assert_eq!(apic.highest_deliverable(), None);
        apic.write(TASK_PRIORITY, 0x3F, 0);
        assert_eq!(apic.highest_deliverable(), Some(0x40));
        // CR8 path.
        apic.set_task_priority(0xF0);
        assert_eq!(apic.task_priority(), 0xF0);
        assert_eq!(apic.read(TASK_PRIORITY, 0), 0xF0);
        assert_eq!(apic.highest_deliverable(), None);
    }

    #[test]
    fn nested_interrupts_and_eoi_order() {
        let mut apic = enabled_apic();
        apic.raise(0x30);
        assert_eq!(apic.acknowledge(), Some(0x30));
        assert!(apic.is_in_service(0x30) && !apic.is_requested(0x30));
        // A vector of the same class waits for the EOI...
        apic.raise(0x31);
        assert_eq!(apic.highest_deliverable(), None);
        // ...a higher class nests.
        apic.raise(0x45);
        assert_eq!(apic.highest_deliverable(), Some(0x45));
        assert_eq!(apic.acknowledge(), Some(0x45));
        assert_eq!(apic.read(PROCESSOR_PRIORITY, 0), 0x40);
        // ISR register 1 holds vectors 0x20-0x3F, register 2 holds 0x40-0x5F.
        assert_eq!(apic.read(IN_SERVICE_BASE + 0x10, 0), 1 << 16);
        assert_eq!(apic.read(IN_SERVICE_BASE + 0x20, 0), 1 << 5);
        assert_eq!(apic.read(INTERRUPT_REQUEST_BASE + 0x10, 0), 1 << 17);
        // EOI retires the highest in-service vector first.
        apic.write(EOI, 0, 0);
        assert!(!apic.is_in_service(0x45) && apic.is_in_service(0x30));
        assert_eq!(apic.read(PROCESSOR_PRIORITY, 0), 0x30);
        assert_eq!(apic.highest_deliverable(), None);
        apic.write(EOI, 0, 0);
        assert_eq!(apic.highest_deliverable(), Some(0x31));
        assert_eq!(service(&mut apic, 0), Some(0x31));
        // EOI with nothing in service changes nothing.
        apic.write(EOI, 0, 0);
        assert_eq!(apic.read(IN_SERVICE_BASE + 0x10, 0), 0);
    }

    #[test]
    fn highest_vector_wins_and_vector_255_works() {
        let mut apic = enabled_apic();
        for vector in [0x20, 0xFF, 0x80, 0x10] {
            assert!(apic.raise(vector));
        }
        assert_eq!(apic.read(INTERRUPT_REQUEST_BASE + 0x70, 0), 1 << 31);
        assert_eq!(apic.acknowledge(), Some(0xFF));
        assert_eq!(apic.acknowledge(), None, "PPR is now 0xF0");
        apic.write(EOI, 0, 0);
        assert_eq!(service(&mut apic, 0), Some(0x80));
        assert_eq!(service(&mut apic, 0), Some(0x20));
        assert_eq!(service(&mut apic, 0), Some(0x10));
        assert_eq!(service(&mut apic, 0), None);
    }

    #[test]
    fn one_shot_fires_once_at_the_right_tsc_for_every_divider() {
        let encodings = [(0b0000, 2), (0b0001, 4), (0b0010, 8), (0b0011, 16), (0b1000, 32), (0b1001, 64)];
        let encodings = encodings.into_iter().chain([(0b1010, 128), (0b1011, 1)]);
        for (divide, divisor) in encodings {
            let mut apic = enabled_apic();
            let start = 1_000;
            start_timer(&mut apic, LVT_TIMER_ONE_SHOT, divide, 100, start);
            let due = start + 100 * divisor;
            assert_eq!(apic.next_timer_tsc(), Some(due), "divide {divide:#b}");
            assert_eq!(apic.poll(due - 1), 0, "divide {divide:#b}");
            assert!(!apic.is_requested(TIMER_VECTOR));
            assert_eq!(apic.read(TIMER_CURRENT_COUNT, due - 1), 1);
            assert_eq!(apic.poll(due), 1, "divide {divide:#b}");
            assert!(apic.is_requested(TIMER_VECTOR));
            assert_eq!(apic.read(TIMER_CURRENT_COUNT, due), 0);
            assert_eq!(apic.next_timer_tsc(), None);
            assert_eq!(service(&mut apic, due), Some(TIMER_VECTOR));
            assert_eq!(apic.poll(due + 100_000 * divisor), 0);
            assert!(!apic.is_requested(TIMER_VECTOR));
            assert_eq!(apic.read(TIMER_INITIAL_COUNT, due), 100);
        }
    }

    #[test]
    fn timer_clock_and_tsc_may_differ() {
        // 100 MHz timer clock, 3 GHz TSC: 30 TSC ticks per timer tick.
        let mut apic = LocalApic::new(0, 100_000_000, 0, 3_000_000_000);
        apic.write(SPURIOUS_VECTOR, 0x1FF, 0);
        start_timer(&mut apic, LVT_TIMER_ONE_SHOT, 0b1011, 10, 0);
        assert_eq!(apic.next_timer_tsc(), Some(300));
        assert_eq!(apic.read(TIMER_CURRENT_COUNT, 29), 10);
        assert_eq!(apic.read(TIMER_CURRENT_COUNT, 30), 9);
        assert_eq!(apic.poll(299), 0);
        assert_eq!(apic.poll(300), 1);

        // A ratio that is not an integer: 2 timer ticks per 3 TSC ticks.
        // Count 5 at divide-by-1 takes 7.5 TSC ticks, so it fires at TSC 8.
        let mut apic = LocalApic::new(0, 2, 0, 3);
        apic.write(SPURIOUS_VECTOR, 0x1FF, 0);
        start_timer(&mut apic, LVT_TIMER_ONE_SHOT, 0b1011, 5, 0);
        assert_eq!(apic.next_timer_tsc(), Some(8));
        assert_eq!(apic.poll(7), 0);
        assert_eq!(apic.poll(8), 1);
    }

    #[test]
    fn periodic_fires_exactly_once_per_period() {
        let mut apic = enabled_apic();
        start_timer(&mut apic, LVT_TIMER_PERIODIC, 0b1011, 10, 0);
        let mut fired_at = std::vec::Vec::new();
        for now in 0..=1_000 {
            let expected_next = apic.next_timer_tsc();
            let fired = apic.poll(now);
            assert!(fired <= 1);
            if fired == 1 {
                assert_eq!(expected_next, Some(now));
                fired_at.push(now);
                assert_eq!(service(&mut apic, now), Some(TIMER_VECTOR));
            }
        }
        assert_eq!(fired_at.len(), 100);
        assert!(fired_at.iter().enumerate().all(|(index, &tsc)| tsc == 10 * (index as u64 + 1)));
        assert_eq!(apic.next_timer_tsc(), Some(1_010));
    }

    #[test]
    fn late_poll_merges_expiries_into_one_interrupt() {
        let mut apic = enabled_apic();
        start_timer(&mut apic, LVT_TIMER_PERIODIC, 0b1011, 10, 0);
        assert_eq!(apic.poll(95), 9);
        assert_eq!(service(&mut apic, 95), Some(TIMER_VECTOR));
        assert_eq!(service(&mut apic, 95), None, "IRR held the vector once");
        assert_eq!(apic.next_timer_tsc(), Some(100));
        assert_eq!(apic.poll(100), 1);
        // An MMIO read in between delivers too; poll reports everything since the last poll.
        apic.read(TASK_PRIORITY, 115);
        assert!(apic.is_requested(TIMER_VECTOR));
        assert_eq!(apic.poll(125), 2);
        assert_eq!(apic.poll(125), 0);
    }

    #[test]
    fn current_count_decreases_and_reloads() {
        let mut apic = enabled_apic();
        // Divide by 2: one decrement per 2 TSC ticks.
        start_timer(&mut apic, LVT_TIMER_PERIODIC, 0b0000, 100, 0);
        assert_eq!(apic.read(TIMER_CURRENT_COUNT, 0), 100);
        assert_eq!(apic.read(TIMER_CURRENT_COUNT, 1), 100);
        assert_eq!(apic.read(TIMER_CURRENT_COUNT, 2), 99);
        assert_eq!(apic.read(TIMER_CURRENT_COUNT, 199), 1);
        assert_eq!(apic.read(TIMER_CURRENT_COUNT, 200), 100);
        assert_eq!(apic.read(TIMER_CURRENT_COUNT, 202), 99);
        assert_eq!(apic.read(TIMER_CURRENT_COUNT, 200 * 1000 + 50), 75);

        let mut apic = enabled_apic();
        start_timer(&mut apic, LVT_TIMER_ONE_SHOT, 0b0000, 100, 0);
        assert_eq!(apic.read(TIMER_CURRENT_COUNT, 100), 50);
        assert_eq!(apic.read(TIMER_CURRENT_COUNT, 200), 0);
        assert_eq!(apic.read(TIMER_CURRENT_COUNT, 5_000), 0);
        // Writing the initial count again restarts the countdown.
        apic.write(TIMER_INITIAL_COUNT, 10, 6_000);
        assert_eq!(apic.read(TIMER_CURRENT_COUNT, 6_000), 10);
        assert_eq!(apic.next_timer_tsc(), Some(6_020));
    }

    #[test]
    fn initial_count_zero_stops_the_timer() {
        let mut apic = enabled_apic();
        start_timer(&mut apic, LVT_TIMER_PERIODIC, 0b1011, 10, 0);
        assert_eq!(apic.poll(25), 2);
        apic.write(TIMER_INITIAL_COUNT, 0, 25);
        assert_eq!(apic.read(TIMER_CURRENT_COUNT, 26), 0);
        assert_eq!(apic.next_timer_tsc(), None);
        assert_eq!(apic.poll(10_000), 0);
        apic.write(TIMER_INITIAL_COUNT, 5, 10_000);
        assert_eq!(apic.poll(10_005), 1);
    }

    #[test]
    fn changing_the_timer_mode_disarms_it() {
        let mut apic = enabled_apic();
        start_timer(&mut apic, LVT_TIMER_PERIODIC, 0b1011, 10, 0);
        // Same mode, other vector: counting goes on.
        apic.write(LVT_TIMER, LVT_TIMER_PERIODIC | 0x41, 5);
        assert_eq!(apic.read(TIMER_CURRENT_COUNT, 5), 5);
        assert_eq!(apic.poll(10), 1);
        assert!(apic.is_requested(0x41));
        // Periodic -> one-shot: disarmed.
        apic.write(LVT_TIMER, LVT_TIMER_ONE_SHOT | 0x41, 12);
        assert_eq!(apic.timer_mode(), TimerMode::OneShot);
        assert_eq!(apic.read(TIMER_CURRENT_COUNT, 12), 0);
        assert_eq!(apic.next_timer_tsc(), None);
        assert_eq!(apic.poll(1_000), 0);
        // -> TSC-deadline: initial-count writes are ignored, current count reads 0.
        apic.write(LVT_TIMER, LVT_TIMER_TSC_DEADLINE | 0x41, 1_000);
        assert_eq!(apic.timer_mode(), TimerMode::TscDeadline);
        apic.write(TIMER_INITIAL_COUNT, 77, 1_000);
        assert_eq!(apic.read(TIMER_INITIAL_COUNT, 1_000), 10);
        assert_eq!(apic.read(TIMER_CURRENT_COUNT, 1_000), 0);
        apic.write_tsc_deadline(2_000, 1_000);
        assert_eq!(apic.read_tsc_deadline(), 2_000);
        // TSC-deadline -> periodic clears the deadline.
        apic.write(LVT_TIMER, LVT_TIMER_PERIODIC | 0x41, 1_500);
        assert_eq!(apic.read_tsc_deadline(), 0);
        assert_eq!(apic.next_timer_tsc(), None);
        assert_eq!(apic.poll(3_000), 0);
        // Mode 3 is reserved and counts like one-shot.
        apic.write(LVT_TIMER, LVT_TIMER_MODE_MASK | 0x41, 3_000);
        assert_eq!(apic.timer_mode(), TimerMode::OneShot);
        apic.write(TIMER_INITIAL_COUNT, 4, 3_000);
        assert_eq!(apic.poll(3_100), 1);
        assert_eq!(apic.poll(3_200), 0);
    }

    #[test]
    fn tsc_deadline_fires_once_and_disarms() {
        let mut apic = enabled_apic();
        apic.write(LVT_TIMER, LVT_TIMER_TSC_DEADLINE | 0x50, 0);
        apic.write_tsc_deadline(5_000, 1_000);
        assert_eq!(apic.read_tsc_deadline(), 5_000);
        assert_eq!(apic.next_timer_tsc(), Some(5_000));
        assert_eq!(apic.poll(4_999), 0);
        assert_eq!(apic.poll(5_000), 1);
        assert!(apic.is_requested(0x50));
        assert_eq!(apic.read_tsc_deadline(), 0);
        assert_eq!(apic.next_timer_tsc(), None);
        assert_eq!(apic.poll(9_000), 0);

        // Writing 0 disarms.
        apic.write_tsc_deadline(7_000_000, 9_000);
        apic.write_tsc_deadline(0, 9_001);
        assert_eq!(apic.next_timer_tsc(), None);
        assert_eq!(apic.poll(8_000_000), 0);

        // A deadline already in the past fires at once.
        apic.write_tsc_deadline(10, 8_000_000);
        assert_eq!(apic.poll(8_000_000), 1);
    }

    #[test]
    fn tsc_deadline_is_ignored_outside_its_mode() {
        let mut apic = enabled_apic();
        apic.write(LVT_TIMER, LVT_TIMER_ONE_SHOT | 0x50, 0);
        apic.write_tsc_deadline(100, 0);
        assert_eq!(apic.read_tsc_deadline(), 0);
        assert_eq!(apic.poll(1_000), 0);
        apic.write(LVT_TIMER, LVT_TIMER_TSC_DEADLINE | 0x50, 1_000);
        assert_eq!(apic.read_tsc_deadline(), 0, "the ignored write did not arm it");
        assert_eq!(apic.poll(2_000), 0);
    }

    #[test]
    fn masked_timer_counts_but_does_not_interrupt() {
        let mut apic = enabled_apic();
        start_timer(&mut apic, LVT_TIMER_PERIODIC, 0b1011, 10, 0);
        apic.write(LVT_TIMER, LVT_TIMER_PERIODIC | LVT_MASKED | u32::from(TIMER_VECTOR), 0);
        assert_eq!(apic.next_timer_tsc(), None);
        assert_eq!(apic.poll(35), 0);
        assert!(!apic.is_requested(TIMER_VECTOR));
        assert_eq!(apic.read(TIMER_CURRENT_COUNT, 35), 5, "still counting and reloading");
        // Unmasked again, it keeps its phase.
        apic.write(LVT_TIMER, LVT_TIMER_PERIODIC | u32::from(TIMER_VECTOR), 35);
        assert_eq!(apic.next_timer_tsc(), Some(40));
        assert_eq!(apic.poll(39), 0);
        assert_eq!(apic.poll(40), 1);

        // A masked TSC deadline disarms silently.
        apic.write(LVT_TIMER, LVT_TIMER_TSC_DEADLINE | LVT_MASKED | 0x50, 40);
        apic.write_tsc_deadline(50, 40);
        assert_eq!(apic.poll(60), 0);
        assert_eq!(apic.read_tsc_deadline(), 0);
        assert!(!apic.is_requested(0x50));
    }

    #[test]
    fn software_disabled_apic_keeps_lvts_masked_and_refuses_interrupts() {
        let mut apic = LocalApic::new(0, HZ, 0, HZ);
        apic.write(LVT_TIMER, LVT_TIMER_PERIODIC | 0x40, 0);
        assert_eq!(apic.read(LVT_TIMER, 0), LVT_MASKED | LVT_TIMER_PERIODIC | 0x40);
        apic.write(LVT_LINT0, 0x700, 0);
        assert_eq!(apic.read(LVT_LINT0, 0), LVT_MASKED | 0x700);
        assert!(!apic.raise(0x40));
        assert_eq!(apic.highest_deliverable(), None);

        apic.write(SPURIOUS_VECTOR, 0x1FF, 0);
        apic.write(LVT_TIMER, LVT_TIMER_PERIODIC | 0x40, 0);
        apic.write(LVT_ERROR, 0xFE, 0);
        apic.write(TIMER_INITIAL_COUNT, 10, 0);
        assert!(apic.raise(0x60));
        assert_eq!(apic.acknowledge(), Some(0x60));
        assert!(apic.raise(0x30));

        // Disabling masks every LVT; IRR and ISR are kept.
        apic.write(SPURIOUS_VECTOR, 0x0FF, 5);
        for offset in [LVT_TIMER, LVT_THERMAL, LVT_PERFORMANCE, LVT_LINT0, LVT_LINT1, LVT_ERROR] {
            assert_ne!(apic.read(offset, 5) & LVT_MASKED, 0, "LVT {offset:#x}");
        }
        assert!(apic.is_in_service(0x60) && apic.is_requested(0x30));
        assert_eq!(apic.poll(100), 0);
        assert!(!apic.raise(0x70));
        // Re-enabling leaves the LVTs masked until software unmasks them.
        apic.write(SPURIOUS_VECTOR, 0x1FF, 100);
        assert_ne!(apic.read(LVT_TIMER, 100) & LVT_MASKED, 0);
        // (Divide by 2 after reset: a period is 20 TSC ticks.)
        apic.write(LVT_TIMER, LVT_TIMER_PERIODIC | 0x40, 100);
        assert_eq!(apic.poll(119), 0);
        assert_eq!(apic.poll(120), 1);
    }

    #[test]
    fn self_ipis_are_delivered_and_other_ipis_counted() {
        let mut apic = enabled_apic();
        // Shorthand "self".
        apic.write(INTERRUPT_COMMAND_LOW, 0b01 << 18 | 0x41, 0);
        assert!(apic.is_requested(0x41));
        // Physical destination = own ID (3).
        apic.write(INTERRUPT_COMMAND_HIGH, 3 << 24, 0);
        apic.write(INTERRUPT_COMMAND_LOW, 0x42, 0);
        assert!(apic.is_requested(0x42));
        assert_eq!(apic.read(INTERRUPT_COMMAND_HIGH, 0), 3 << 24);
        assert_eq!(apic.read(INTERRUPT_COMMAND_LOW, 0), 0x42);
        assert_eq!(apic.ignored_ipi_count(), 0);
        // Another CPU: dropped and counted.
        apic.write(INTERRUPT_COMMAND_HIGH, 1 << 24, 0);
        apic.write(INTERRUPT_COMMAND_LOW, 0x43, 0);
        assert!(!apic.is_requested(0x43));
        assert_eq!(apic.ignored_ipi_count(), 1);
        // All excluding self.
        apic.write(INTERRUPT_COMMAND_LOW, 0b11 << 18 | 0x44, 0);
        assert!(!apic.is_requested(0x44));
        assert_eq!(apic.ignored_ipi_count(), 2);
        // All including self: delivered here, and counted for the others.
        apic.write(INTERRUPT_COMMAND_LOW, 0b10 << 18 | 0x45, 0);
        assert!(apic.is_requested(0x45));
        assert_eq!(apic.ignored_ipi_count(), 3);
        // NMI (delivery mode 4) to self: pending until the CPU takes it; a
        // second one merges into it; the vector field does not matter.
        assert!(!apic.nmi_pending());
        apic.write(INTERRUPT_COMMAND_LOW, 0b01 << 18 | 0b100 << 8 | 0x12, 0);
        apic.write(INTERRUPT_COMMAND_LOW, 0b01 << 18 | 0b100 << 8, 0);
        assert!(apic.nmi_pending());
        assert!(!apic.is_requested(0x12));
        assert!(apic.take_nmi());
        assert!(!apic.take_nmi());
        assert_eq!(apic.ignored_ipi_count(), 3);
        // INIT (delivery mode 5) to self: not delivered as an interrupt.
        apic.write(INTERRUPT_COMMAND_LOW, 0b01 << 18 | 0b101 << 8, 0);
        assert_eq!(apic.ignored_ipi_count(), 4);
        assert_eq!(apic.read(INTERRUPT_COMMAND_LOW, 0) & (1 << 12), 0, "delivery status idle");
        // Flat logical mode: logical ID 0x02 matches destination 0x02.
        apic.write(LOGICAL_DESTINATION, 0x02 << 24, 0);
        apic.write(INTERRUPT_COMMAND_HIGH, 0x02 << 24, 0);
        apic.write(INTERRUPT_COMMAND_LOW, 1 << 11 | 0x46, 0);
        assert!(apic.is_requested(0x46));
        assert_eq!(apic.ignored_ipi_count(), 4);
        apic.write(INTERRUPT_COMMAND_HIGH, 0x04 << 24, 0);
        apic.write(INTERRUPT_COMMAND_LOW, 1 << 11 | 0x47, 0);
        assert!(!apic.is_requested(0x47));
        assert_eq!(apic.ignored_ipi_count(), 5);
    }

    #[test]
    fn error_status_is_write_then_read() {
        let mut apic = enabled_apic();
        // A self-IPI with vector 5: "send illegal vector", not delivered.
        apic.write(INTERRUPT_COMMAND_LOW, 0b01 << 18 | 5, 0);
        assert!(!apic.is_requested(5));
        assert_eq!(apic.read(ERROR_STATUS, 0), 0, "not latched before the ESR write");
        apic.write(ERROR_STATUS, 0, 0);
        assert_eq!(apic.read(ERROR_STATUS, 0), ESR_SEND_ILLEGAL_VECTOR);
        assert_eq!(apic.read(ERROR_STATUS, 0), ESR_SEND_ILLEGAL_VECTOR, "reads do not clear");
        apic.write(ERROR_STATUS, 0xFFFF_FFFF, 0);
        assert_eq!(apic.read(ERROR_STATUS, 0), 0, "the write cleared it");
        // Raising vector 3: "receive illegal vector".
        assert!(!apic.raise(3));
        // A timer with vector 8 fires: received illegal vector too, nothing delivered.
        start_timer(&mut apic, LVT_TIMER_ONE_SHOT, 0b1011, 5, 0);
        apic.write(LVT_TIMER, 8, 0);
        assert_eq!(apic.poll(10), 0);
        assert_eq!(apic.read(INTERRUPT_REQUEST_BASE, 10), 0);
        apic.write(ERROR_STATUS, 0, 10);
        assert_eq!(apic.read(ERROR_STATUS, 10), ESR_RECEIVE_ILLEGAL_VECTOR);
    }

    #[test]
    fn errors_raise_the_error_lvt_vector() {
        let mut apic = enabled_apic();
        apic.write(LVT_ERROR, 0xFE, 0);
        assert!(!apic.raise(2));
        assert!(apic.is_requested(0xFE));
        assert_eq!(service(&mut apic, 0), Some(0xFE));
        // The same error again, before an ESR write, is not new: no second interrupt.
        assert!(!apic.raise(2));
        assert!(!apic.is_requested(0xFE));
        // An error LVT with an illegal vector does not loop.
        apic.write(ERROR_STATUS, 0, 0);
        apic.write(LVT_ERROR, 0x01, 0);
        assert!(!apic.raise(2));
        apic.write(ERROR_STATUS, 0, 0);
        assert_eq!(apic.read(ERROR_STATUS, 0), ESR_RECEIVE_ILLEGAL_VECTOR);
    }

    #[test]
    fn divide_change_keeps_the_current_count() {
        let mut apic = enabled_apic();
        start_timer(&mut apic, LVT_TIMER_ONE_SHOT, 0b1011, 100, 0);
        assert_eq!(apic.read(TIMER_CURRENT_COUNT, 50), 50);
        apic.write(TIMER_DIVIDE_CONFIGURATION, 0b0000, 50);
        assert_eq!(apic.read(TIMER_CURRENT_COUNT, 50), 50);
        assert_eq!(apic.next_timer_tsc(), Some(150));
        assert_eq!(apic.poll(149), 0);
        assert_eq!(apic.poll(150), 1);

        // Periodic: the rest of this period at the new rate, then full periods.
        let mut apic = enabled_apic();
        start_timer(&mut apic, LVT_TIMER_PERIODIC, 0b1011, 10, 0);
        apic.write(TIMER_DIVIDE_CONFIGURATION, 0b0000, 4);
        assert_eq!(apic.next_timer_tsc(), Some(16));
        assert_eq!(apic.poll(16), 1);
        assert_eq!(apic.next_timer_tsc(), Some(36));
    }

    #[test]
    fn degenerate_clocks_and_time_going_backwards_do_not_panic() {
        // No timer clock: never fires.
        let mut apic = LocalApic::new(0, 0, 0, 0);
        apic.write(SPURIOUS_VECTOR, 0x1FF, 0);
        start_timer(&mut apic, LVT_TIMER_PERIODIC, 0b1011, 1, 0);
        assert_eq!(apic.next_timer_tsc(), None);
        assert_eq!(apic.poll(u64::MAX), 0);

        // Huge counts and the end of time.
        let mut apic = LocalApic::new(0, 1, 0, u64::MAX);
        apic.write(SPURIOUS_VECTOR, 0x1FF, 0);
        start_timer(&mut apic, LVT_TIMER_PERIODIC, 0b1010, u32::MAX, 0);
        assert_eq!(apic.next_timer_tsc(), None, "beyond 64 bits of TSC");
        assert_eq!(apic.poll(u64::MAX), 0);
        assert_eq!(apic.read(TIMER_CURRENT_COUNT, u64::MAX), u32::MAX);

        // A fast timer polled at the end of time.
        let mut apic = LocalApic::new(0, u64::MAX, 0, 1);
        apic.write(SPURIOUS_VECTOR, 0x1FF, 0);
        start_timer(&mut apic, LVT_TIMER_PERIODIC, 0b1011, 1, 0);
        assert_eq!(apic.poll(u64::MAX), u64::MAX);

        // The TSC going backwards counts as no time passing.
        let mut apic = enabled_apic();
        start_timer(&mut apic, LVT_TIMER_PERIODIC, 0b1011, 10, 100);
        assert_eq!(apic.read(TIMER_CURRENT_COUNT, 105), 5);
        assert_eq!(apic.read(TIMER_CURRENT_COUNT, 50), 5);
        assert_eq!(apic.poll(0), 0);
        assert_eq!(apic.poll(110), 1);
    }
}
