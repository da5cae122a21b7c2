//! RDMSR and WRMSR that the MSR bitmap sends here (SDM Vol. 3C, 26.1.3 "Instructions
//! That Cause VM Exits Conditionally" and 25.6.9 "MSR-Bitmap Address"). The policy is [`hypervisor_core::msr::policy`]:
//! - EFER, PAT and the SYSENTER MSRs are emulated against their VMCS
//!   guest-state fields (the CPU loads those on every VM entry), with the
//!   checks a real CPU applies to a write (a bad value gets #GP(0));
//! - IA32_APIC_BASE and IA32_TSC_DEADLINE belong to the guest's local APIC
//!   model (`hypervisor_core::devices::board`): the base reads 0xFEE00900
//!   and cannot move; the deadline arms the APIC timer in TSC-deadline mode;
//! - everything else is refused with #GP(0), as a CPU does for an MSR it does
//!   not implement.
//!
//! RDMSR/WRMSR take the MSR number in ECX and the value in EDX:EAX.

use hypervisor_core::exit::InterruptionInfo;
use hypervisor_core::msr::{
    check_apic_base_write, check_canonical, check_efer_write, check_pat_write, policy, ApicMsr, MsrPolicy,
    MsrWriteError, VmcsMsr, GUEST_APIC_BASE,
};
use hypervisor_core::start_state::CR0_PG;
use hypervisor_core::vmcs_field::VmcsField;

use crate::vm::exit::GENERAL_PROTECTION;
use crate::vm::guest::{Flow, Guest};
use crate::vm::stats::Action;
use crate::vmx::vcpu::Exit;
use crate::vmx::vmcs::VmxError;

/// Which access exited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MsrAccess {
    /// RDMSR.
    Read,
    /// WRMSR.
    Write,
}

/// Emulates or refuses one RDMSR/WRMSR.
pub fn handle(guest: &mut Guest, exit: &Exit, access: MsrAccess) -> Result<Flow, VmxError> {
    let msr = guest.vcpu.registers.rcx as u32;
    let outcome = match (policy(msr), access) {
        (MsrPolicy::Vmcs(register), MsrAccess::Read) => {
            let value = guest.vcpu.read(field_of(register))?;
            guest.vcpu.registers.rax = value & 0xFFFF_FFFF;
            guest.vcpu.registers.rdx = value >> 32;
            Ok(())
        }
        (MsrPolicy::Vmcs(register), MsrAccess::Write) => {
            let value = guest.vcpu.registers.edx_eax();
            write_vmcs_msr(guest, register, value)?
        }
        (MsrPolicy::Apic(register), MsrAccess::Read) => {
            let value = match register {
                ApicMsr::Base => GUEST_APIC_BASE,
                ApicMsr::TscDeadline => guest.board.lapic.read_tsc_deadline(),
            };
            guest.vcpu.registers.rax = value & 0xFFFF_FFFF;
            guest.vcpu.registers.rdx = value >> 32;
            Ok(())
        }
        (MsrPolicy::Apic(ApicMsr::Base), MsrAccess::Write) => {
            check_apic_base_write(guest.vcpu.registers.edx_eax()).map(|_| ()).map_err(Some)
        }
        (MsrPolicy::Apic(ApicMsr::TscDeadline), MsrAccess::Write) => {
            let now = crate::vmx::read_tsc();
            guest.board.write_tsc_deadline(guest.vcpu.registers.edx_eax(), now);
            guest.board_changed(now)?;
            Ok(())
        }
        // The bitmap lets these through without an exit; only a CPU that
        // ignored the bitmap would get here. Refuse rather than guess.
        (MsrPolicy::PassThrough, _) | (MsrPolicy::Deny, _) => Err(None),
    };
    match outcome {
        Ok(()) => {
            guest.vcpu.advance_rip(exit)?;
            Ok(Flow::Continue(Action::Emulated))
        }
        Err(reason) => {
            if let Some(reason) = reason {
                crate::debug!("{}: WRMSR {:#x} refused: {}", guest.name(), msr, reason);
            }
            guest.vcpu.inject(InterruptionInfo::hardware_exception_with_error_code(GENERAL_PROTECTION), Some(0))?;
            Ok(Flow::Continue(Action::Injected(GENERAL_PROTECTION)))
        }
    }
}

/// The VMCS field holding the guest's value of a VMCS-held MSR.
fn field_of(register: VmcsMsr) -> VmcsField {
    match register {
        VmcsMsr::Efer => VmcsField::GuestIa32Efer,
        VmcsMsr::Pat => VmcsField::GuestIa32Pat,
        VmcsMsr::SysenterCs => VmcsField::GuestIa32SysenterCs,
        VmcsMsr::SysenterEsp => VmcsField::GuestIa32SysenterEsp,
        VmcsMsr::SysenterEip => VmcsField::GuestIa32SysenterEip,
    }
}

/// Checks and stores a write; `Ok(Err(..))` means "refuse with #GP".
fn write_vmcs_msr(
    guest: &mut Guest,
    register: VmcsMsr,
    value: u64,
) -> Result<Result<(), Option<MsrWriteError>>, VmxError> {
    let checked = match register {
        VmcsMsr::Efer => {
            let current = guest.vcpu.read(VmcsField::GuestIa32Efer)?;
            let paging_on = guest.vcpu.read(VmcsField::GuestCr0)? & CR0_PG != 0;
            check_efer_write(current, value, paging_on)
        }
        VmcsMsr::Pat => check_pat_write(value),
        VmcsMsr::SysenterCs => Ok(value & 0xFFFF_FFFF),
        VmcsMsr::SysenterEsp | VmcsMsr::SysenterEip => check_canonical(value),
    };
    match checked {
        Ok(stored) => {
            guest.vcpu.write(field_of(register), stored)?;
            Ok(Ok(()))
        }
        Err(error) => Ok(Err(Some(error))),
    }
}
