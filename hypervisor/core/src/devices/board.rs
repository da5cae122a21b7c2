//! The guest's motherboard: its interrupt controllers and timers wired the way
//! a PC wires them, behind one interface the kernel calls.
//!
//! ```text
//!  PIT channel 0 ──IRQ 0──▶ 8259A master ◀──IR2── 8259A slave
//!                               │ INTR
//!                               ▼
//!  LAPIC timer ──▶ local APIC ──▶ the vCPU (the kernel injects the vector)
//! ```
//!
//! * [`PcBoard::handles_port`], [`PcBoard::port_read`], [`PcBoard::port_write`]:
//!   the guest's IN/OUT on the PIC, PIT (with port 0x61) and CMOS/RTC ports.
//! * [`PcBoard::apic_read`], [`PcBoard::apic_write`]: the guest's accesses to
//!   the local APIC page (trapped through EPT by the kernel).
//! * [`PcBoard::advance`]: brings the timers up to `now` and raises the
//!   interrupts that became due; [`PcBoard::next_event_tsc`] says when that
//!   happens next, so the kernel can arm the preemption timer or let a halted
//!   guest sleep until then.
//! * [`PcBoard::interrupt_pending`] and [`PcBoard::acknowledge`]: the INTR
//!   line and the INTA cycle: the vector the kernel injects.
//!
//! Every time is the host TSC: a guest's timers keep running while other
//! guests have the CPU, as a wall clock does. Interrupts that fell due while
//! the guest could not take them are delivered once and the rest counted as
//! merged ([`InterruptCounts::merged`]): a real PIC or APIC merges edges
//! the CPU did not acknowledge in time the same way (one IRR bit per line).
//!
//! # Simplifications
//!
//! * The PIC's INTR reaches the CPU as if firmware had set the local APIC's
//!   LINT0 to ExtINT ("virtual wire mode", SDM Vol. 3A 11.5.1), whatever the
//!   guest writes to LINT0; when both have a request, the local APIC's goes
//!   first.
//! * No I/O APIC: the guest's only interrupt sources are the PIT and the
//!   local APIC timer (and self-IPIs).

use crate::devices::cmos_rtc::{CmosRtc, DateTime};
use crate::devices::lapic::LocalApic;
use crate::devices::pic8259::Pic8259Pair;
use crate::devices::pit8254::Pit8254;

/// The PIT's IRQ line on the master PIC.
pub const PIT_IRQ: u8 = 0;

/// Interrupt counters of one guest, for its summary line.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct InterruptCounts {
    /// Vectors injected into the guest.
    pub injected: u64,
    /// NMIs injected into the guest.
    pub nmis: u64,
    /// PIT IRQ 0 edges raised on the PIC.
    pub pit_ticks: u64,
    /// Local APIC timer expiries raised.
    pub apic_timer_ticks: u64,
    /// Timer expiries that fell due while an earlier one was still pending:
    /// merged into it, counted here, never silently lost.
    pub merged: u64,
}

/// A guest's PIC pair, PIT, CMOS/RTC and local APIC.
#[derive(Debug, Clone)]
pub struct PcBoard {
    /// The 8259A pair.
    pub pic: Pic8259Pair,
    /// The 8254 PIT.
    pub pit: Pit8254,
    /// The MC146818 CMOS/RTC.
    pub rtc: CmosRtc,
    /// The local APIC of the guest's one vCPU.
    pub lapic: LocalApic,
    /// What was delivered.
    pub counts: InterruptCounts,
}

impl PcBoard {
    /// A board after power-on at host time `now_tsc`: the PIT and PIC not
    /// programmed, the local APIC in its reset state (ID `apic_id`, timer
    /// clocked at the TSC rate), the RTC showing `date`.
    pub fn new(apic_id: u8, tsc_hz: u64, now_tsc: u64, date: DateTime) -> Self {
        PcBoard {
            pic: Pic8259Pair::new(),
            pit: Pit8254::new(tsc_hz, now_tsc),
            rtc: CmosRtc::new(date, tsc_hz, now_tsc),
            lapic: LocalApic::new(apic_id, tsc_hz, now_tsc, tsc_hz),
            counts: InterruptCounts::default(),
        }
    }

    /// Whether one of the board's devices answers at `port`.
    pub fn handles_port(port: u16) -> bool {
        Pic8259Pair::handles(port) || Pit8254::handles(port) || CmosRtc::handles(port)
    }

    /// A guest IN of one byte at `port` (a port of [`handles_port`](Self::handles_port)).
    pub fn port_read(&mut self, port: u16, now_tsc: u64) -> u8 {
        self.advance(now_tsc);
        if Pic8259Pair::handles(port) {
            self.pic.read(port)
        } else if Pit8254::handles(port) {
            self.pit.read(port, now_tsc)
        } else if CmosRtc::handles(port) {
            self.rtc.read(port, now_tsc)
        } else {
            0xFF
        }
    }

    /// A guest OUT of one byte to `port`.
    pub fn port_write(&mut self, port: u16, value: u8, now_tsc: u64) {
        self.advance(now_tsc);
        if Pic8259Pair::handles(port) {
            self.pic.write(port, value);
        } else if Pit8254::handles(port) {
            self.pit.write(port, value, now_tsc);
        } else if CmosRtc::handles(port) {
            self.rtc.write(port, value, now_tsc);
        }
    }

    /// A 32-bit read of the local APIC register at `offset`.
    pub fn apic_read(&mut self, offset: u32, now_tsc: u64) -> u32 {
        self.advance(now_tsc);
        self.lapic.read(offset, now_tsc)
    }

    /// A 32-bit write of the local APIC register at `offset`.
    pub fn apic_write(&mut self, offset: u32, value: u32, now_tsc: u64) {
        self.advance(now_tsc);
        self.lapic.write(offset, value, now_tsc);
    }

    /// A write of IA32_TSC_DEADLINE (SDM Vol. 3A 11.5.4.1).
    pub fn write_tsc_deadline(&mut self, value: u64, now_tsc: u64) {
        self.advance(now_tsc);
        self.lapic.write_tsc_deadline(value, now_tsc);
    }

    /// Brings the timers up to `now_tsc`: each PIT period that ended pulses
    /// IRQ 0 once (several at once are merged), and the local APIC timer
    /// sets its vector in IRR.
    pub fn advance(&mut self, now_tsc: u64) {
        let edges = self.pit.take_irq0_edges(now_tsc);
        if edges != 0 {
            self.pic.pulse_irq(PIT_IRQ);
            self.counts.pit_ticks += edges;
            self.counts.merged += edges - 1;
        }
        let expiries = self.lapic.poll(now_tsc);
        if expiries != 0 {
            self.counts.apic_timer_ticks += expiries;
            self.counts.merged += expiries - 1;
        }
    }

    /// When a timer next raises an interrupt the CPU can receive (host TSC),
    /// if one is armed: the PIT counts only while IRQ 0 is unmasked at an
    /// initialised PIC (a masked tick would wake a halted guest for nothing),
    /// the local APIC timer only while its LVT is unmasked.
    pub fn next_event_tsc(&self) -> Option<u64> {
        let master = self.pic.master();
        let pit_heard = master.is_initialised() && master.imr() & (1 << PIT_IRQ) == 0;
        let pit = self.pit.next_irq0_tsc().filter(|_| pit_heard);
        match (pit, self.lapic.next_timer_tsc()) {
            (Some(pit), Some(apic)) => Some(pit.min(apic)),
            (pit, apic) => pit.or(apic),
        }
    }

    /// The NMI line: whether an NMI waits for the CPU (a self-IPI with
    /// delivery mode NMI: the board's only NMI source).
    pub fn nmi_pending(&self) -> bool {
        self.lapic.nmi_pending()
    }

    /// The CPU takes the pending NMI; returns whether there was one.
    pub fn acknowledge_nmi(&mut self) -> bool {
        let taken = self.lapic.take_nmi();
        if taken {
            self.counts.nmis += 1;
        }
        taken
    }

    /// The INTR line: whether a vector waits for the CPU.
    pub fn interrupt_pending(&self) -> bool {
        self.lapic.highest_deliverable().is_some() || self.pic.pending_interrupt()
    }

    /// The CPU takes the most urgent interrupt (the INTA cycle): the local
    /// APIC's first, then the PIC's. Returns the vector to inject.
    pub fn acknowledge(&mut self) -> Option<u8> {
        let vector = match self.lapic.acknowledge() {
            Some(vector) => Some(vector),
            None if self.pic.pending_interrupt() => self.pic.acknowledge(),
            None => None,
        };
        if vector.is_some() {
            self.counts.injected += 1;
        }
        vector
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::devices::lapic;

    const TSC_HZ: u64 = 1_000_000_000;
    const START: u64 = 5_000;

    fn date() -> DateTime {
        DateTime { year: 2026, month: 11, day: 25, hour: 12, minute: 0, second: 0 }
    }

    fn board() -> PcBoard {
        PcBoard::new(0, TSC_HZ, START, date())
    }

    /// The BIOS/Linux initialisation: vectors 0x20 and 0x28, cascade on IR2, 8086 mode.
    fn init_pic(board: &mut PcBoard, now: u64) {
        for (port, value) in [
            (0x20, 0x11),
            (0x21, 0x20),
            (0x21, 0x04),
            (0x21, 0x01),
            (0xA0, 0x11),
            (0xA1, 0x28),
            (0xA1, 0x02),
            (0xA1, 0x01),
        ] {
            board.port_write(port, value, now);
        }
        board.port_write(0x21, 0xFE, now); // only IRQ 0
    }

    /// PIT channel 0, mode 2, count `n`.
    fn start_pit(board: &mut PcBoard, n: u16, now: u64) {
        board.port_write(0x43, 0x34, now);
        board.port_write(0x40, n as u8, now);
        board.port_write(0x40, (n >> 8) as u8, now);
    }

    #[test]
    fn nothing_is_pending_after_power_on() {
        let mut b = board();
        b.advance(START + TSC_HZ);
        assert!(!b.interrupt_pending());
        assert_eq!(b.next_event_tsc(), None);
        assert_eq!(b.acknowledge(), None);
    }

    #[test]
    fn the_pit_interrupts_through_the_pic_at_its_rate() {
        let mut b = board();
        init_pic(&mut b, START);
        start_pit(&mut b, 11932, START); // ~100 Hz
        let mut delivered = 0;
        let mut now = START;
        while let Some(due) = b.next_event_tsc() {
            if due > START + TSC_HZ {
                break;
            }
            now = due;
            b.advance(now);
            assert!(b.interrupt_pending());
            assert_eq!(b.acknowledge(), Some(0x20));
            b.port_write(0x20, 0x20, now); // non-specific EOI
            delivered += 1;
        }
        assert!(now > START);
        assert_eq!(delivered, 99, "1 s at 1193182/11932 Hz: 99.996 periods");
        assert_eq!(b.counts.merged, 0);
        assert_eq!(b.counts.injected, 99);
    }

    #[test]
    fn late_ticks_are_merged_and_counted() {
        let mut b = board();
        init_pic(&mut b, START);
        start_pit(&mut b, 1193, START); // ~1 kHz
        b.advance(START + TSC_HZ / 100); // 10 ms late: 10 periods
        assert_eq!(b.acknowledge(), Some(0x20));
        assert_eq!(b.acknowledge(), None, "one delivery for the merged edges");
        assert_eq!(b.counts.pit_ticks, 10);
        assert_eq!(b.counts.merged, 9);
    }

    #[test]
    fn a_masked_irq_is_not_delivered_and_wakes_nobody() {
        let mut b = board();
        init_pic(&mut b, START);
        b.port_write(0x21, 0xFF, START);
        start_pit(&mut b, 1193, START);
        assert_eq!(b.next_event_tsc(), None, "a halted guest must not wake for a masked tick");
        b.advance(START + TSC_HZ / 10);
        assert!(!b.interrupt_pending());
        // Unmasked again: the next tick is an event.
        b.port_write(0x21, 0xFE, START + TSC_HZ / 10);
        assert!(b.next_event_tsc().is_some());
        // A PIT running before the PIC is initialised wakes nobody either.
        let mut fresh = board();
        start_pit(&mut fresh, 1193, START);
        assert_eq!(fresh.next_event_tsc(), None);
    }

    #[test]
    fn the_apic_timer_goes_first_and_its_eoi_retires_it() {
        let mut b = board();
        init_pic(&mut b, START);
        start_pit(&mut b, 1193, START);
        b.apic_write(lapic::SPURIOUS_VECTOR, lapic::SVR_APIC_ENABLED | 0xFF, START);
        b.apic_write(lapic::TIMER_DIVIDE_CONFIGURATION, 0b1011, START); // divide by 1
        b.apic_write(lapic::LVT_TIMER, 0x40, START); // one-shot, vector 0x40
        b.apic_write(lapic::TIMER_INITIAL_COUNT, 1_000, START);
        assert_eq!(b.next_event_tsc(), Some(START + 1_000));
        b.advance(START + TSC_HZ / 100);
        assert_eq!(b.acknowledge(), Some(0x40));
        assert_eq!(b.acknowledge(), Some(0x20), "then the PIC's");
        b.apic_write(lapic::EOI, 0, START + TSC_HZ / 100);
        assert!(!b.lapic.is_in_service(0x40));
        assert_eq!(b.counts.apic_timer_ticks, 1);
    }

    #[test]
    fn a_self_nmi_waits_on_its_own_line() {
        let mut b = board();
        b.apic_write(lapic::SPURIOUS_VECTOR, lapic::SVR_APIC_ENABLED | 0xFF, START);
        b.apic_write(lapic::INTERRUPT_COMMAND_LOW, (0b01 << 18) | (0b100 << 8), START);
        assert!(b.nmi_pending());
        assert!(!b.interrupt_pending(), "an NMI is not an INTR vector");
        assert!(b.acknowledge_nmi());
        assert!(!b.nmi_pending());
        assert_eq!(b.counts.nmis, 1);
        assert_eq!(b.counts.injected, 0);
    }

    #[test]
    fn the_tsc_deadline_fires_at_its_tsc() {
        let mut b = board();
        b.apic_write(lapic::SPURIOUS_VECTOR, lapic::SVR_APIC_ENABLED | 0xFF, START);
        b.apic_write(lapic::LVT_TIMER, lapic::LVT_TIMER_TSC_DEADLINE | 0x41, START);
        b.write_tsc_deadline(START + 777, START);
        assert_eq!(b.next_event_tsc(), Some(START + 777));
        b.advance(START + 776);
        assert!(!b.interrupt_pending());
        b.advance(START + 777);
        assert_eq!(b.acknowledge(), Some(0x41));
    }

    #[test]
    fn cmos_ports_reach_the_rtc() {
        let mut b = board();
        assert!(PcBoard::handles_port(0x70) && PcBoard::handles_port(0x71));
        b.port_write(0x70, 0x09, START); // year, BCD by default
        assert_eq!(b.port_read(0x71, START), 0x26);
        assert!(!PcBoard::handles_port(0x3F8));
    }
}
