//! RDMSR and WRMSR. Without MSR bitmaps every access exits (SDM Vol. 3C,
//! 26.1.3); none is virtualized yet, so each is refused with #GP(0), as a
//! CPU does for an MSR it does not implement. The guest's EFER, PAT, SYSENTER
//! and FS/GS bases live in the VMCS.

use hypervisor_core::exit::InterruptionInfo;

use crate::vm::guest::{Flow, Guest};
use crate::vm::stats::Action;
use crate::vmx::vcpu::Exit;
use crate::vmx::vmcs::VmxError;

/// #GP's vector.
const GENERAL_PROTECTION: u8 = 13;

/// Injects #GP(0) for the MSR access.
pub fn handle(guest: &mut Guest, _exit: &Exit) -> Result<Flow, VmxError> {
    guest.vcpu.inject(InterruptionInfo::hardware_exception_with_error_code(GENERAL_PROTECTION), Some(0))?;
    Ok(Flow::Continue(Action::Injected(GENERAL_PROTECTION)))
}
