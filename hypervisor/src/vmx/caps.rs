//! Reading this CPU's VMX capability MSRs (SDM Vol. 3C, Appendix A "VMX
//! Capability Reporting Facility"). The decoding is plain Rust in
//! [`hypervisor_core::caps`]; this file only executes the RDMSRs.

use hypervisor_core::caps::{RawVmxMsrs, VmxCapabilities};

use crate::vmx::read_msr;

/// Reads and decodes every capability MSR. Call only when CPUID reports VMX
/// ([`crate::vmx::on::cpu_has_vmx`]): otherwise the MSRs do not exist and
/// RDMSR faults.
pub fn read() -> (RawVmxMsrs, VmxCapabilities) {
    // SAFETY: CPUID.1:ECX.VMX is set (the caller's duty), so IA32_FEATURE_CONTROL
    // and IA32_VMX_BASIC exist; `read_with` reads the optional MSRs only when
    // the ones before them say they exist (SDM Vol. 3C, A.1).
    let raw = RawVmxMsrs::read_with(|msr| unsafe { read_msr(msr) });
    (raw, VmxCapabilities::decode(&raw))
}
