//! Interrupts for guests: the guest's virtual PIC, PIT and local APIC
//! (`hypervisor_core::devices::board::PcBoard`) raise them, and this module
//! puts them into the guest.
//!
//! * Before a VM entry, when the board's INTR line may be up
//!   (`Guest::events_pending`), [`deliver`] decides with
//!   [`hypervisor_core::injection::decide`]: inject the vector now (VM-entry
//!   interruption-information field, type "external interrupt", SDM Vol. 3C,
//!   27.6 "Event Injection"), or turn on interrupt-window exiting so the CPU
//!   exits as soon as the guest can take it (SDM Vol. 3C, 26.7.5
//!   "Interrupt-Window Exiting and Virtual-Interrupt Delivery"). An event the
//!   CPU was delivering when the last exit happened is re-injected first
//!   (`Vcpu::decode`), so nothing is lost or delivered twice.
//! * The guest's timers run on the host TSC. [`Guest::board_changed`] keeps
//!   `device_deadline` (when the board next raises something) and the
//!   exit-path deadline up to date, and arms the VMX-preemption timer for it,
//!   so a timer interrupt arrives on time even in a guest that never exits.
//!
//! The exit path pays one `bool` test per exit for all this when nothing is
//! pending.

use hypervisor_core::exit::InterruptionInfo;
use hypervisor_core::injection::{decide, decide_nmi, InjectionDecision};
use hypervisor_core::vmcs_field::VmcsField;

use crate::vm::guest::Guest;
use crate::vm::Host;
use crate::vmx::vmcs::VmxError;

/// Primary processor-based control bit 2: interrupt-window exiting.
const INTERRUPT_WINDOW_EXITING: u64 = 1 << 2;
/// Primary processor-based control bit 22: NMI-window exiting.
const NMI_WINDOW_EXITING: u64 = 1 << 22;

/// Puts a pending NMI or interrupt into the guest, or opens the window it
/// waits for. An NMI goes first (one event per VM entry); the interrupt
/// follows at a later entry.
#[inline(never)]
pub fn deliver(guest: &mut Guest, host: &Host) -> Result<(), VmxError> {
    if guest.board.nmi_pending() {
        return deliver_nmi(guest, host);
    }
    set_nmi_window(guest, host, false)?;
    let pending = guest.board.interrupt_pending();
    let decision = if pending {
        let rflags = guest.vcpu.read(VmcsField::GuestRflags)?;
        let interruptibility = guest.vcpu.read(VmcsField::GuestInterruptibilityState)?;
        let entry_info = guest.vcpu.read(VmcsField::EntryInterruptionInfo)?;
        decide(true, rflags, interruptibility, entry_info)
    } else {
        InjectionDecision::Idle
    };
    match decision {
        InjectionDecision::Idle => {
            guest.events_pending = false;
            set_window(guest, host, false)
        }
        InjectionDecision::Inject => {
            if let Some(vector) = guest.board.acknowledge() {
                guest.vcpu.inject(InterruptionInfo::external_interrupt(vector), None)?;
            }
            // More may wait (another line, the next tick): ask for the next window.
            let more = guest.board.interrupt_pending();
            guest.events_pending = more;
            set_window(guest, host, more)
        }
        InjectionDecision::WaitForWindow => set_window(guest, host, true),
    }
}

/// Injects a pending NMI (SDM Vol. 3C, 27.6.1.1: type 2, vector 2), or waits
/// for the guest's NMI window: NMI-window exiting where the CPU has virtual
/// NMIs; otherwise the next exit tries again.
fn deliver_nmi(guest: &mut Guest, host: &Host) -> Result<(), VmxError> {
    let interruptibility = guest.vcpu.read(VmcsField::GuestInterruptibilityState)?;
    let entry_info = guest.vcpu.read(VmcsField::EntryInterruptionInfo)?;
    match decide_nmi(true, interruptibility, entry_info) {
        InjectionDecision::Inject => {
            if guest.board.acknowledge_nmi() {
                guest.vcpu.inject(InterruptionInfo::nmi(), None)?;
            }
            set_nmi_window(guest, host, false)?;
            // An interrupt waiting too goes in at a later entry.
            guest.events_pending = guest.board.interrupt_pending();
            set_window(guest, host, guest.events_pending)
        }
        InjectionDecision::WaitForWindow | InjectionDecision::Idle => {
            guest.events_pending = true;
            set_nmi_window(guest, host, true)
        }
    }
}

/// Turns NMI-window exiting on or off, where the CPU offers it.
fn set_nmi_window(guest: &mut Guest, host: &Host, open: bool) -> Result<(), VmxError> {
    if guest.nmi_window_open == open || !host.controls.nmi_window_exiting() {
        return Ok(());
    }
    let mut primary = guest.vcpu.read(VmcsField::PrimaryProcessorControls)?;
    if open {
        primary |= NMI_WINDOW_EXITING;
    } else {
        primary &= !NMI_WINDOW_EXITING;
    }
    guest.vcpu.write(VmcsField::PrimaryProcessorControls, primary)?;
    guest.nmi_window_open = open;
    Ok(())
}

/// Turns interrupt-window exiting on or off (one VMWRITE, only on a change).
fn set_window(guest: &mut Guest, host: &Host, open: bool) -> Result<(), VmxError> {
    if guest.window_open == open || !host.controls.interrupt_window_exiting() {
        return Ok(());
    }
    // Read, modify, write: other bits of the word change at run time too
    // (the monitor trap flag while `--step` runs).
    let mut primary = guest.vcpu.read(VmcsField::PrimaryProcessorControls)?;
    if open {
        primary |= INTERRUPT_WINDOW_EXITING;
    } else {
        primary &= !INTERRUPT_WINDOW_EXITING;
    }
    guest.vcpu.write(VmcsField::PrimaryProcessorControls, primary)?;
    guest.window_open = open;
    Ok(())
}

impl Guest {
    /// After anything that may change the board (a port or APIC access, a
    /// timer falling due, a new slice): brings the timers up to `now`, and
    /// updates whether an interrupt waits and when the next one falls due.
    pub(crate) fn board_changed(&mut self, now: u64) -> Result<(), VmxError> {
        self.board.advance(now);
        self.events_pending |= self.board.interrupt_pending() || self.board.nmi_pending();
        let next = self.board.next_event_tsc().unwrap_or(u64::MAX);
        if next != self.device_deadline {
            self.device_deadline = next;
            self.update_deadline(now)?;
        }
        Ok(())
    }

    /// The exit path's one deadline: the end of the slice, of the budget, or
    /// the next device event, whichever comes first; and the preemption timer
    /// armed to exit by then (SDM Vol. 3C, 26.5.1 "VMX-Preemption Timer": it
    /// counts down at the TSC rate divided by 2^IA32_VMX_MISC\[4:0\]).
    pub(crate) fn update_deadline(&mut self, now: u64) -> Result<(), VmxError> {
        let deadline = self.slice_deadline.min(self.device_deadline);
        self.deadline = deadline;
        if self.preemption_timer {
            // Written every time: with "save VMX-preemption timer value" the
            // field counts down across exits, so no cached copy can be trusted.
            let value = (deadline.saturating_sub(now) >> self.timer_rate).clamp(1, u64::from(u32::MAX));
            self.vcpu.write(VmcsField::VmxPreemptionTimerValue, value)?;
        }
        Ok(())
    }
}
