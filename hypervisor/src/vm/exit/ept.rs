//! EPT violations (SDM Vol. 3C, 29.3.3.2 "EPT Violations"). All of a guest's
//! RAM is mapped read/write/execute, so a violation means the guest touched
//! guest-physical memory it does not have: it is stopped with a precise report.

use hypervisor_core::exit::EptViolationQualification;

use crate::vm::guest::{Crash, Flow, Guest};
use crate::vmx::vcpu::Exit;

/// Stops the guest with the address and kind of access.
pub fn violation(
    _guest: &mut Guest,
    _exit: &Exit,
    qualification: EptViolationQualification,
    gpa: u64,
    linear: Option<u64>,
) -> Flow {
    Flow::Crash(Crash::EptViolation { gpa, qualification, linear })
}
