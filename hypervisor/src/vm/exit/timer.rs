//! The VMX-preemption timer (SDM Vol. 3C, 26.5.1 "VMX-Preemption Timer"): it
//! counts down while the guest runs, at the TSC rate divided by 2^N (N from
//! IA32_VMX_MISC\[4:0\]), and exits at zero. The scheduler will switch guests
//! here; for now the expiry is counted and the timer re-armed.

use hypervisor_core::vmcs_field::VmcsField;

use crate::vm::guest::{Flow, Guest};
use crate::vm::stats::Action;
use crate::vm::Host;
use crate::vmx::vmcs::VmxError;

/// Re-arms the timer with the guest's time slice and resumes.
pub fn preemption_timer(guest: &mut Guest, host: &Host) -> Result<Flow, VmxError> {
    let value = crate::vm::setup::preemption_timer_value(&host.caps, guest.config.time_slice_ticks);
    guest.vcpu.write(VmcsField::VmxPreemptionTimerValue, value)?;
    Ok(Flow::Continue(Action::Resumed))
}
