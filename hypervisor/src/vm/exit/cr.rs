//! Control-register accesses that exit: a MOV to CR0 or CR4 that would change
//! a bit the hypervisor owns (SDM Vol. 3C, 26.1.3 "Instructions That Cause VM Exits
//! Conditionally" and 25.6.6 "Guest/Host Masks
//! and Read Shadows for CR0 and CR4"). Reads never exit (they see the shadow),
//! and neither do CLTS or LMSW, which cannot touch an owned bit.
//!
//! - CR0: the write is performed in software ([`write_cr0`]): the guest sees
//!   what it wrote, the CPU keeps the bits VMX fixes, and turning paging on or
//!   off with EFER.LME set enters or leaves IA-32e mode (EFER.LMA and the
//!   "IA-32e mode guest" entry control follow).
//! - CR4: an exit means setting VMXE or a bit this CPU does not allow: #GP(0).

use hypervisor_core::control_registers::{check_cr4_write, write_cr0, Cr0Context, CrWriteError};
use hypervisor_core::controls::EntryControls;
use hypervisor_core::exit::{CrAccessQualification, CrAccessType, InterruptionInfo};
use hypervisor_core::start_state::CR4_VMXE;
use hypervisor_core::vmcs_field::VmcsField;

use crate::vm::exit::GENERAL_PROTECTION;
use crate::vm::guest::{Crash, Flow, Guest};
use crate::vm::setup::{cr0_owned_bits, cr4_owned_bits};
use crate::vm::stats::Action;
use crate::vm::Host;
use crate::vmx::vcpu::Exit;
use crate::vmx::vmcs::VmxError;

/// Emulates a MOV to CR0, or refuses a MOV to CR4 with #GP(0).
pub fn handle(guest: &mut Guest, exit: &Exit, access: CrAccessQualification, host: &Host) -> Result<Flow, VmxError> {
    if access.access_type() != CrAccessType::MovToCr {
        return Ok(Flow::Crash(Crash::Unhandled {
            reason: hypervisor_core::exit::ExitReason::ControlRegisterAccess,
            what: "a CR access the masks should never make exit",
        }));
    }
    // RSP lives in the VMCS: read it only when it is the source (GPR 4).
    let rsp = if access.gpr() == 4 { guest.vcpu.read(VmcsField::GuestRsp)? } else { 0 };
    let value = guest.vcpu.registers.by_number(access.gpr(), rsp);
    let result = match access.cr() {
        0 => write_cr0_for(guest, host, value)?,
        4 => {
            let shadow = guest.vcpu.read(VmcsField::Cr4ReadShadow)?;
            check_cr4_write(value, cr4_owned_bits(&host.caps), shadow, CR4_VMXE)
        }
        _ => {
            return Ok(Flow::Crash(Crash::Unhandled {
                reason: hypervisor_core::exit::ExitReason::ControlRegisterAccess,
                what: "MOV to a control register whose exiting is off",
            }))
        }
    };
    match result {
        Ok(()) => {
            guest.vcpu.advance_rip(exit)?;
            Ok(Flow::Continue(Action::Emulated))
        }
        Err(error) => {
            crate::debug!("{}: {} refused: {}", guest.name(), access, error);
            guest.vcpu.inject(InterruptionInfo::hardware_exception_with_error_code(GENERAL_PROTECTION), Some(0))?;
            Ok(Flow::Continue(Action::Injected(GENERAL_PROTECTION)))
        }
    }
}

/// Performs the CR0 write on the VMCS: CR0, its shadow, EFER and the entry control.
fn write_cr0_for(guest: &mut Guest, host: &Host, value: u64) -> Result<Result<(), CrWriteError>, VmxError> {
    let owned = cr0_owned_bits(&host.caps, &host.controls);
    let context = Cr0Context {
        actual: guest.vcpu.read(VmcsField::GuestCr0)?,
        owned,
        must_be_one: host.caps.cr0.fixed0 & owned,
        may_be_one: host.caps.cr0.fixed1 | !owned,
        efer: guest.vcpu.read(VmcsField::GuestIa32Efer)?,
        cr4: guest.vcpu.read(VmcsField::GuestCr4)?,
        cs_long: crate::vm::guest_cs_is_64bit()?,
    };
    let update = match write_cr0(&context, value) {
        Ok(update) => update,
        Err(error) => return Ok(Err(error)),
    };
    guest.vcpu.write(VmcsField::GuestCr0, update.actual)?;
    guest.vcpu.write(VmcsField::Cr0ReadShadow, update.shadow)?;
    guest.vcpu.write(VmcsField::GuestIa32Efer, update.efer)?;
    let entry = guest.vcpu.read(VmcsField::EntryControls)?;
    let ia32e = u64::from(EntryControls::IA32E_MODE_GUEST.bits());
    guest.vcpu.write(VmcsField::EntryControls, if update.ia32e_mode { entry | ia32e } else { entry & !ia32e })?;
    Ok(Ok(()))
}
