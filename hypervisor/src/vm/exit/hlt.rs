//! HLT (HLT exiting is on: SDM Vol. 3C, 26.1.3 "Instructions That Cause VM
//! Exits Conditionally"). No interrupt source exists for guests yet, so a
//! halted guest could never wake: it is stopped and reported.

use hypervisor_core::vmcs_field::VmcsField;

use crate::vm::guest::{Crash, Flow, Guest};
use crate::vmx::vcpu::Exit;
use crate::vmx::vmcs::VmxError;

/// RFLAGS.IF.
const RFLAGS_IF: u64 = 1 << 9;

/// Ends a guest that halted.
pub fn handle(guest: &mut Guest, _exit: &Exit) -> Result<Flow, VmxError> {
    let rflags = guest.vcpu.read(VmcsField::GuestRflags)?;
    Ok(Flow::Crash(Crash::HaltedForever { interrupts_enabled: rflags & RFLAGS_IF != 0 }))
}
