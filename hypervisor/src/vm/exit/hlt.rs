//! HLT (HLT exiting is on: SDM Vol. 3C, 26.1.3 "Instructions That Cause VM
//! Exits Conditionally"). A halted CPU waits for an interrupt; a halted guest
//! must not burn the CPU doing so, so the hypervisor takes HLT as "nothing to
//! do until my next interrupt":
//!
//! - an interrupt is already pending: HLT returns at once (the interrupt is
//!   injected before the next entry);
//! - interrupts are enabled and one of its timers is armed: the guest sleeps
//!   until that timer falls due, and the scheduler runs other guests (or the
//!   CPU idles) meanwhile;
//! - interrupts disabled, or no interrupt source armed: nothing can ever wake
//!   it; it is stopped and reported.
//!
//! The hypervisor moves RIP past the HLT itself (rather than parking the vCPU
//! in the HLT activity state), so the interrupt handler returns to the next
//! instruction, as on bare metal.

use hypervisor_core::injection::RFLAGS_IF;
use hypervisor_core::vmcs_field::VmcsField;

use crate::vm::guest::{Crash, Flow, Guest};
use crate::vm::stats::Action;
use crate::vmx::vcpu::Exit;
use crate::vmx::vmcs::VmxError;

/// Emulates HLT.
pub fn handle(guest: &mut Guest, exit: &Exit) -> Result<Flow, VmxError> {
    let rflags = guest.vcpu.read(VmcsField::GuestRflags)?;
    if rflags & RFLAGS_IF == 0 {
        return Ok(Flow::Crash(Crash::HaltedForever { interrupts_enabled: false }));
    }
    guest.board_changed(exit.tsc)?;
    if guest.board.interrupt_pending() {
        guest.vcpu.advance_rip(exit)?;
        return Ok(Flow::Continue(Action::Emulated));
    }
    match guest.board.next_event_tsc() {
        Some(wake) => {
            guest.vcpu.advance_rip(exit)?;
            guest.halts += 1;
            Ok(Flow::Halt(wake))
        }
        None => Ok(Flow::Crash(Crash::HaltedForever { interrupts_enabled: true })),
    }
}
