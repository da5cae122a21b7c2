//! Control-register accesses that exit: a MOV to CR0/CR4 (or LMSW) that would
//! change a bit the hypervisor owns — the bits VMX fixes, listed in the CR0/CR4
//! guest/host masks (SDM Vol. 3C, 26.1.3 and 25.6.6 "Guest/Host Masks and Read
//! Shadows for CR0 and CR4"). Changing one of those is never valid (e.g.
//! clearing CR0.NE, setting CR4.VMXE, which CPUID does not advertise), so
//! the guest gets #GP(0), as the CPU would give it without VMX.

use hypervisor_core::exit::{CrAccessQualification, InterruptionInfo};

use crate::vm::guest::{Flow, Guest};
use crate::vm::stats::Action;
use crate::vmx::vcpu::Exit;
use crate::vmx::vmcs::VmxError;

const GENERAL_PROTECTION: u8 = 13;

/// Refuses the write with #GP(0).
pub fn handle(guest: &mut Guest, _exit: &Exit, access: CrAccessQualification) -> Result<Flow, VmxError> {
    crate::debug!("{}: refused control-register access: {}", guest.name(), access);
    guest.vcpu.inject(InterruptionInfo::hardware_exception_with_error_code(GENERAL_PROTECTION), Some(0))?;
    Ok(Flow::Continue(Action::Injected(GENERAL_PROTECTION)))
}
