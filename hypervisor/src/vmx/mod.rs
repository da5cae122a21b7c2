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

/// Whether this CPU has XSAVE (CPUID.1:ECX.XSAVE[bit 26]).
pub fn has_xsave() -> bool {
    cpuid(1, 0).ecx & (1 << 26) != 0
}

/// Sets CR4.OSXSAVE so that XSETBV works in the hypervisor (which loads each
/// guest's XCR0 into the CPU). Does nothing without XSAVE.
pub fn enable_xsave() {
    if has_xsave() {
        // SAFETY: OSXSAVE only enables XGETBV/XSETBV/XSAVE; the CPU supports it.
        unsafe { x86_64::registers::control::Cr4::write_raw(x86_64::registers::control::Cr4::read_raw() | (1 << 18)) };
    }
}

/// Loads XCR0 (SDM Vol. 1, 13.3). The caller validated `value` against CPUID
/// leaf 0xD; the hypervisor itself keeps no x87/SSE/AVX state.
pub fn xsetbv(value: u64) {
    if has_xsave() {
        // SAFETY: CR4.OSXSAVE is set (enable_xsave) and the value is valid.
        unsafe {
            core::arch::asm!("xsetbv", in("ecx") 0u32, in("eax") value as u32, in("edx") (value >> 32) as u32, options(nostack));
        }
    }
}

/// Writes CR2. The VMCS does not hold the guest's CR2: the value in the CPU
/// is the guest's (the hypervisor never page-faults), so setting it here sets
/// it for the guest, e.g. before injecting a #PF.
pub fn write_cr2(value: u64) {
    // SAFETY: CR2 only reports page-fault addresses; nothing in the host reads it.
    unsafe { core::arch::asm!("mov cr2, {}", in(reg) value, options(nostack, nomem)) };
}

/// Executes CPUID.
#[inline]
pub fn cpuid(leaf: u32, subleaf: u32) -> core::arch::x86_64::CpuidResult {
    core::arch::x86_64::__cpuid_count(leaf, subleaf)
}
