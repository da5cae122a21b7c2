//! Everything Intel VT-x: capability MSRs, VMX operation, the VMCS, EPT, and
//! the entry/exit path. The rest of the hypervisor sees a vCPU that runs until
//! a VM exit and returns it decoded ([`vcpu::Vcpu::run`]).
pub mod caps;
pub mod ept;
pub mod on;
pub mod run;
pub mod vcpu;
pub mod vmcs;

/// Reads the time-stamp counter. In Bochs it advances with executed instructions.
#[inline(always)]
pub fn read_tsc() -> u64 {
    // SAFETY: RDTSC is allowed at CPL 0 and has no side effects.
    unsafe { core::arch::x86_64::_rdtsc() }
}

/// Reads a model-specific register.
///
/// # Safety
/// The MSR must exist on this CPU (otherwise RDMSR raises #GP).
#[inline]
pub unsafe fn read_msr(msr: u32) -> u64 {
    // SAFETY: forwarded to the caller.
    unsafe { x86_64::registers::model_specific::Msr::new(msr).read() }
}

/// Writes a model-specific register.
///
/// # Safety
/// The MSR must exist, be writable with `value`, and the write must not break
/// memory safety (e.g. EFER, PAT).
#[inline]
pub unsafe fn write_msr(msr: u32, value: u64) {
    // SAFETY: forwarded to the caller.
    unsafe { x86_64::registers::model_specific::Msr::new(msr).write(value) }
}

/// Executes CPUID.
#[inline]
pub fn cpuid(leaf: u32, subleaf: u32) -> core::arch::x86_64::CpuidResult {
    core::arch::x86_64::__cpuid_count(leaf, subleaf)
}
