//! Memory-mapped I/O: the guest's local APIC page at 0xFEE00000.
//!
//! EPT maps nothing there, so every access is an EPT violation (SDM Vol. 3C,
//! 29.3.3.2 "EPT Violations") whose exit qualification says read or write and
//! whose guest-physical address says which register. What it does not say is
//! the data or the register involved: the hypervisor reads the instruction at
//! the guest's RIP through the guest's own page tables, decodes it
//! ([`hypervisor_core::mmio_decode`]), performs the access on the APIC model,
//! and moves RIP past the instruction (the VM-exit instruction-length field is
//! not defined for EPT violations, so the decoder supplies the length).
//!
//! An access the APIC does not define (not 32 bits, not 16-byte aligned) is
//! ignored — reads give 0 — and counted, as real APICs do not fault there
//! either. An instruction the decoder does not know (say, a string move onto
//! the APIC page) stops the guest with the bytes it found.

use hypervisor_core::devices::lapic::{self, check_access};
use hypervisor_core::exit::{EptViolationQualification, ExitReason};
use hypervisor_core::mmio_decode::{decode, CodeSize, MmioAccess};
use hypervisor_core::vmcs_field::VmcsField;

use crate::vm::guest::{Crash, Flow, Guest};
use crate::vm::stats::Action;
use crate::vm::trace::Bytes;
use crate::vmx::vcpu::Exit;
use crate::vmx::vmcs::VmxError;

/// Whether `gpa` lies in the local APIC page.
pub fn is_apic(gpa: u64) -> bool {
    (lapic::DEFAULT_BASE_ADDRESS..lapic::DEFAULT_BASE_ADDRESS + u64::from(lapic::PAGE_SIZE)).contains(&gpa)
}

/// CS.D (bit 14 of the access rights): 32-bit default operand size.
const CS_DEFAULT_BIG: u64 = 1 << 14;

/// Emulates one load or store to the APIC page.
pub fn apic_access(
    guest: &mut Guest,
    exit: &Exit,
    qualification: EptViolationQualification,
    gpa: u64,
) -> Result<Flow, VmxError> {
    let cs_rights = guest.vcpu.read(VmcsField::GuestCsAccessRights)?;
    let mode = if cs_rights & crate::vm::CS_LONG_MODE != 0 {
        CodeSize::Bits64
    } else if cs_rights & CS_DEFAULT_BIG != 0 {
        CodeSize::Bits32
    } else {
        CodeSize::Bits16
    };
    let Some(bytes) = Bytes::fetch(guest, exit) else {
        return Ok(Flow::Crash(Crash::Unhandled {
            reason: ExitReason::EptViolation,
            what: "an access to the local APIC page from an instruction that cannot be read",
        }));
    };
    let instruction = match decode(bytes.as_slice(), mode) {
        Ok(instruction) => instruction,
        Err(error) => {
            crate::error!("{}: local APIC access at RIP {:#x}: {} (bytes {})", guest.name(), exit.rip, error, bytes);
            return Ok(Flow::Crash(Crash::Unhandled {
                reason: ExitReason::EptViolation,
                what: "an instruction the MMIO decoder does not know touched the local APIC page",
            }));
        }
    };
    // The decoded direction must be the one the CPU reported.
    let is_store = matches!(instruction.access, MmioAccess::Store { .. });
    if is_store != qualification.write() {
        return Ok(Flow::Crash(Crash::Unhandled {
            reason: ExitReason::EptViolation,
            what: "the instruction at RIP does not match the local APIC access the CPU reported",
        }));
    }
    let offset = gpa - lapic::DEFAULT_BASE_ADDRESS;
    let register = check_access(offset, instruction.size);
    let now = exit.tsc;
    match instruction.access {
        MmioAccess::Load { destination, .. } => {
            let value = match register {
                Ok(register) => u64::from(guest.board.apic_read(register, now)),
                Err(error) => {
                    guest.apic_bad_accesses += 1;
                    crate::debug!("{}: local APIC read ignored: {}", guest.name(), error);
                    0
                }
            };
            let number = destination.gpr.index();
            let old = guest.vcpu.registers.by_number(number, guest.vcpu.read(VmcsField::GuestRsp)?);
            let new = instruction.load_result(old, value).unwrap_or(old);
            if !guest.vcpu.registers.set_by_number(number, new) {
                guest.vcpu.write(VmcsField::GuestRsp, new)?;
            }
        }
        MmioAccess::Store { .. } => {
            let rsp = guest.vcpu.read(VmcsField::GuestRsp)?;
            let registers = guest.vcpu.registers;
            let value = instruction.store_data(|gpr| registers.by_number(gpr.index(), rsp)).unwrap_or(0);
            match register {
                Ok(register) => guest.board.apic_write(register, value as u32, now),
                Err(error) => {
                    guest.apic_bad_accesses += 1;
                    crate::debug!("{}: local APIC write ignored: {}", guest.name(), error);
                }
            }
        }
    }
    guest.board_changed(now)?;
    let mut rip = exit.rip.wrapping_add(u64::from(instruction.length));
    if mode != CodeSize::Bits64 {
        rip &= 0xFFFF_FFFF;
    }
    guest.vcpu.advance_rip_to(rip)?;
    Ok(Flow::Continue(Action::Emulated))
}
