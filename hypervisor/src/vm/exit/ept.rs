//! EPT violations (SDM Vol. 3C, 29.3.3.2 "EPT Violations"). All of a guest's
//! RAM is mapped read/write/execute, so a violation means the guest touched
//! guest-physical memory it does not have. Data accesses to its local APIC
//! page are emulated (`vm::exit::mmio`); anything else stops it with a
//! precise report.

use hypervisor_core::exit::EptViolationQualification;

use crate::vm::exit::mmio;
use crate::vm::guest::{Crash, Flow, Guest};
use crate::vmx::vcpu::Exit;
use crate::vmx::vmcs::VmxError;

/// Emulates an APIC access, or stops the guest with the address and kind of access.
pub fn violation(
    guest: &mut Guest,
    exit: &Exit,
    qualification: EptViolationQualification,
    gpa: u64,
    linear: Option<u64>,
) -> Result<Flow, VmxError> {
    if mmio::is_apic(gpa) && !qualification.fetch() {
        return mmio::apic_access(guest, exit, qualification, gpa);
    }
    Ok(Flow::Crash(Crash::EptViolation { gpa, qualification, linear }))
}
