//! XSETBV (exits unconditionally: SDM Vol. 3C, 26.1.2 "Instructions That Cause
//! VM Exits Unconditionally"). The guest may enable
//! only state components CPUID leaf 0xD advertises, in combinations the
//! architecture allows (SDM Vol. 1, 13.3 "Enabling the XSAVE Feature Set and
//! XSAVE-Enabled Features"); anything else is #GP(0), as on bare metal. A valid
//! value is loaded into the real XCR0 (the hypervisor itself uses no x87/SSE/AVX
//! state: the kernel is built soft-float) and remembered as the guest's own.

use hypervisor_core::exit::InterruptionInfo;
use hypervisor_core::vmcs_field::VmcsField;
use hypervisor_core::xcr::check_xcr0;

use crate::vm::exit::{GENERAL_PROTECTION, INVALID_OPCODE};
use crate::vm::guest::{Flow, Guest};
use crate::vm::stats::Action;
use crate::vmx::vcpu::Exit;
use crate::vmx::vmcs::VmxError;

/// CR4.OSXSAVE.
const CR4_OSXSAVE: u64 = 1 << 18;

/// Validates and performs XSETBV.
pub fn handle(guest: &mut Guest, exit: &Exit) -> Result<Flow, VmxError> {
    if guest.vcpu.read(VmcsField::GuestCr4)? & CR4_OSXSAVE == 0 {
        guest.vcpu.inject(InterruptionInfo::hardware_exception(INVALID_OPCODE), None)?;
        return Ok(Flow::Continue(Action::Injected(INVALID_OPCODE)));
    }
    let index = guest.vcpu.registers.rcx as u32;
    let value = guest.vcpu.registers.edx_eax();
    let leaf = crate::vmx::cpuid(0xD, 0);
    let supported = (u64::from(leaf.edx) << 32) | u64::from(leaf.eax);
    match check_xcr0(index, value, supported) {
        Ok(xcr0) => {
            guest.context.xcr0 = xcr0;
            crate::vmx::xsetbv(xcr0);
            guest.vcpu.advance_rip(exit)?;
            Ok(Flow::Continue(Action::Emulated))
        }
        Err(error) => {
            crate::debug!("{}: XSETBV {:#x} to XCR{} refused: {:?}", guest.name(), value, index, error);
            guest.vcpu.inject(InterruptionInfo::hardware_exception_with_error_code(GENERAL_PROTECTION), Some(0))?;
            Ok(Flow::Continue(Action::Injected(GENERAL_PROTECTION)))
        }
    }
}
