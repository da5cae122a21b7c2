//! The VMX-preemption timer (SDM Vol. 3C, 26.5.1 "VMX-Preemption Timer"): it
//! counts down while the guest runs, at the TSC rate divided by 2^N (N from
//! IA32_VMX_MISC\[4:0\]), and exits at zero. The VM entry reloads it from the
//! VMCS, so it measures time since the last entry: it is what takes the CPU
//! back from a guest that never exits by itself (`cli; jmp $`). Its expiry
//! ends the guest's time slice; the scheduler (`vm::scheduler`) decides who runs next.

use crate::vm::guest::{Flow, Guest};
use crate::vm::stats::Action;
use crate::vm::Host;
use crate::vmx::vmcs::VmxError;

/// The timer ran out: the exit loop's deadline check (slice end, budget, or
/// a timer interrupt of the guest's own board falling due) decides what
/// happens; the timer is re-armed for the next deadline (it may have fired a
/// little early: it counts in units of 2^IA32_VMX_MISC\[4:0\] ticks).
pub fn preemption_timer(guest: &mut Guest, _host: &Host) -> Result<Flow, VmxError> {
    guest.update_deadline(crate::vmx::read_tsc())?;
    Ok(Flow::Continue(Action::Resumed))
}
