//! The VMCS: its memory region, making it current, and typed field access.
//!
//! A VMCS region is a 4 KiB frame whose first dword holds the VMCS revision
//! identifier from IA32_VMX_BASIC (SDM Vol. 3C, 25.2 "Format of the VMCS
//! Region"). VMCLEAR initialises it and sets its launch state to "clear";
//! VMPTRLD makes it the current VMCS of this CPU, the one that VMREAD, VMWRITE,
//! VMLAUNCH and VMRESUME act on (SDM Vol. 3C, 25.1 "Overview"). The field
//! encodings, widths and names come from one table,
//! [`hypervisor_core::vmcs_field::VmcsField`].

use core::arch::asm;
use core::fmt;

use hypervisor_core::instruction_error::{VmInstructionError, VmxInstructionFailure};
use hypervisor_core::vmcs_field::VmcsField;

use crate::platform::memory::{self, MemoryError};

/// A failed VMX instruction, with what it was doing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VmxError {
    /// The instruction ("VMREAD", "VMPTRLD", ...).
    pub instruction: &'static str,
    /// The field it accessed, for VMREAD/VMWRITE.
    pub field: Option<VmcsField>,
    /// VMfailInvalid or VMfailValid with the error number.
    pub failure: VmxInstructionFailure,
}

impl fmt::Display for VmxError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} failed", self.instruction)?;
        if let Some(field) = self.field {
            write!(f, " on field {} ({:#06x})", field.name(), field.encoding())?;
        }
        write!(f, ": {}", self.failure)
    }
}

/// Turns the flags after a VMX instruction into a result (SDM Vol. 3C, 31.2
/// "Conventions": CF=1 is VMfailInvalid, ZF=1 is VMfailValid with the error
/// number in the current VMCS's VM-instruction error field).
fn check(instruction: &'static str, field: Option<VmcsField>, carry: u8, zero: u8) -> Result<(), VmxError> {
    if carry != 0 {
        return Err(VmxError { instruction, field, failure: VmxInstructionFailure::FailInvalid });
    }
    if zero != 0 {
        return Err(failure(instruction, field));
    }
    Ok(())
}

/// Builds the error of a failed VMREAD/VMWRITE (kept out of line: the hot
/// path only tests the flags). The flags are gone by now, but the two cases
/// can be told apart again: VMfailInvalid means there is no current VMCS, in
/// which case reading the VM-instruction error field fails too.
#[cold]
#[inline(never)]
fn failure(instruction: &'static str, field: Option<VmcsField>) -> VmxError {
    let failure = match read_instruction_error_number() {
        Some(number) => VmxInstructionFailure::FailValid(number),
        None => VmxInstructionFailure::FailInvalid,
    };
    VmxError { instruction, field, failure }
}

/// Reads the VM-instruction error field; `None` when there is no current VMCS.
fn read_instruction_error_number() -> Option<u32> {
    let value: u64;
    let failed: u8;
    // SAFETY: VMREAD of a read-only field of the current VMCS.
    unsafe {
        asm!("vmread {value}, {field}", "setbe {failed}", value = out(reg) value,
             field = in(reg) VmcsField::VmInstructionError.encoding() as u64,
             failed = out(reg_byte) failed, options(nostack));
    }
    (failed == 0).then_some(value as u32)
}

/// Reads a field of the current VMCS (SDM Vol. 3C, 31.3 "VMREAD").
#[inline(always)]
pub fn read(field: VmcsField) -> Result<u64, VmxError> {
    let value: u64;
    // SAFETY: VMREAD only reads the current VMCS. On failure CF or ZF is set
    // (SDM Vol. 3C, 31.2 "Conventions"), and JBE ("CF=1 or ZF=1") leaves for
    // the cold path: the common case costs two instructions.
    unsafe {
        asm!(
            "vmread {value}, {field}",
            "jbe {failed}",
            value = out(reg) value,
            field = in(reg) field.encoding() as u64,
            failed = label { return Err(failure("VMREAD", Some(field))) },
            options(nostack),
        );
    }
    Ok(value)
}

/// Writes a field of the current VMCS (SDM Vol. 3C, 31.3 "VMWRITE").
#[inline(always)]
pub fn write(field: VmcsField, value: u64) -> Result<(), VmxError> {
    // SAFETY: VMWRITE only writes the current VMCS; the values that matter for
    // memory safety (host state, EPT pointer) are set by their owners. Failure
    // is reported in CF/ZF, as for VMREAD.
    unsafe {
        asm!(
            "vmwrite {field}, {value}",
            "jbe {failed}",
            field = in(reg) field.encoding() as u64,
            value = in(reg) value,
            failed = label { return Err(failure("VMWRITE", Some(field))) },
            options(nostack),
        );
    }
    Ok(())
}

/// One VMCS region in its own 4 KiB frame.
#[derive(Debug)]
pub struct VmcsRegion {
    physical: u64,
}

impl VmcsRegion {
    /// Allocates a zeroed frame, writes the revision identifier and VMCLEARs it.
    pub fn new(revision_id: u32) -> Result<Self, VmcsSetupError> {
        let physical = memory::allocate_frame().map_err(VmcsSetupError::Memory)?;
        // SAFETY: the frame is freshly allocated and mapped; bit 31 of the
        // first dword must be 0 (not a shadow VMCS).
        unsafe { (memory::phys_to_virt(physical) as *mut u32).write_volatile(revision_id & 0x7FFF_FFFF) };
        let region = VmcsRegion { physical };
        region.clear().map_err(VmcsSetupError::Vmx)?;
        Ok(region)
    }

    /// Physical address of the region.
    pub fn physical(&self) -> u64 {
        self.physical
    }

    /// VMCLEAR: writes any cached state back, launch state "clear" (SDM Vol. 3C, 31.3 "VMCLEAR").
    pub fn clear(&self) -> Result<(), VmxError> {
        let carry: u8;
        let zero: u8;
        // SAFETY: the operand is the address of a 64-bit physical address of a
        // region we own, initialised with the right revision id.
        unsafe {
            asm!("vmclear [{address}]", "setc {carry}", "setz {zero}",
                 address = in(reg) &self.physical, carry = out(reg_byte) carry, zero = out(reg_byte) zero,
                 options(nostack));
        }
        check("VMCLEAR", None, carry, zero)
    }

    /// VMPTRLD: makes this the current VMCS (SDM Vol. 3C, 31.3 "VMPTRLD").
    pub fn load(&self) -> Result<(), VmxError> {
        let carry: u8;
        let zero: u8;
        // SAFETY: as in `clear`.
        unsafe {
            asm!("vmptrld [{address}]", "setc {carry}", "setz {zero}",
                 address = in(reg) &self.physical, carry = out(reg_byte) carry, zero = out(reg_byte) zero,
                 options(nostack));
        }
        check("VMPTRLD", None, carry, zero)
    }
}

impl Drop for VmcsRegion {
    fn drop(&mut self) {
        // A VMCS must be cleared before its memory is reused (SDM Vol. 3C, 25.11.1
        // "Software Use of Virtual-Machine Control Structures").
        let _ = self.clear();
        memory::free_frame(self.physical);
    }
}

/// Errors while creating a VMCS.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VmcsSetupError {
    /// No frame for the region.
    Memory(MemoryError),
    /// A VMX instruction failed.
    Vmx(VmxError),
}

impl fmt::Display for VmcsSetupError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            VmcsSetupError::Memory(error) => write!(f, "{error}"),
            VmcsSetupError::Vmx(error) => write!(f, "{error}"),
        }
    }
}

/// Prints every field of the current VMCS with its SDM name, four groups in
/// the SDM's order; fields this CPU does not support are skipped.
pub fn dump() {
    crate::error!("VMCS dump (current VMCS; fields that read 0 are left out):");
    for field in VmcsField::ALL {
        if let Ok(value) = read(*field) {
            if value != 0 {
                crate::error!("  {:<44} {:#06x} = {:#x}", field.name(), field.encoding(), value);
            }
        }
    }
}

/// Describes a VM-instruction error number in the SDM's words.
pub fn describe_instruction_error(number: u32) -> &'static str {
    VmInstructionError::from_number(number).map_or("unknown VM-instruction error", |error| error.description())
}
