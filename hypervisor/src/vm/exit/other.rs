//! Exits of families with simple, fixed answers:
//! - the VMX instructions (VMXON, VMCALL aside, ...): this hypervisor offers no
//!   nested VMX, and CPUID hides it, so they raise #UD (SDM Vol. 3C, 26.1.2
//!   "Instructions That Cause VM Exits Unconditionally");
//! - INVD: legal at CPL 0 and harmless to skip for a guest whose memory is
//!   write-back, so it is emulated as a no-op;
//! - everything else stops the guest with its name.

use hypervisor_core::exit::{ExitReason, InterruptionInfo};

use crate::vm::exit::INVALID_OPCODE;
use crate::vm::guest::{Crash, Flow, Guest};
use crate::vm::stats::Action;
use crate::vmx::vcpu::Exit;
use crate::vmx::vmcs::VmxError;

/// Handles the exits without a file of their own.
pub fn handle(guest: &mut Guest, exit: &Exit, reason: ExitReason) -> Result<Flow, VmxError> {
    if is_vmx_instruction(reason) {
        guest.vcpu.inject(InterruptionInfo::hardware_exception(INVALID_OPCODE), None)?;
        return Ok(Flow::Continue(Action::Injected(INVALID_OPCODE)));
    }
    match reason {
        ExitReason::Invd | ExitReason::Wbinvd => {
            guest.vcpu.advance_rip(exit)?;
            Ok(Flow::Continue(Action::Emulated))
        }
        _ => Ok(Flow::Crash(Crash::Unhandled { reason, what: "no handler for this exit yet" })),
    }
}

/// The VMX instructions other than VMCALL (which is the hypercall), and
/// VMFUNC/INVVPID/INVEPT (SDM Vol. 3C, Appendix C).
fn is_vmx_instruction(reason: ExitReason) -> bool {
    matches!(
        reason,
        ExitReason::Vmclear
            | ExitReason::Vmlaunch
            | ExitReason::Vmptrld
            | ExitReason::Vmptrst
            | ExitReason::Vmread
            | ExitReason::Vmresume
            | ExitReason::Vmwrite
            | ExitReason::Vmxoff
            | ExitReason::Vmxon
            | ExitReason::Invept
            | ExitReason::Invvpid
            | ExitReason::Vmfunc
    )
}
