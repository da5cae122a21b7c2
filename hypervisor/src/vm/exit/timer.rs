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

/// Ends the guest's time slice (the timer value in the VMCS stays: every
/// entry starts a full count again).
pub fn preemption_timer(_guest: &mut Guest, _host: &Host) -> Result<Flow, VmxError> {
    Ok(Flow::Yield(Action::Resumed))
}
