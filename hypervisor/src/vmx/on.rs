//! Turning VMX operation on (SDM Vol. 3C, 24.7 "Enabling and Entering VMX
//! Operation" and 24.8 "Restrictions on VMX Operation").
//!
//! In order: CPUID says VMX exists; IA32_FEATURE_CONTROL allows VMXON outside
//! SMX (we set and lock it if the firmware left it unlocked); CR0 and CR4 take
//! the values IA32_VMX_CR0/CR4_FIXED0/1 demand, with CR4.VMXE set; a 4 KiB
//! VMXON region carries the VMCS revision identifier; VMXON.

use core::arch::asm;
use core::fmt;

use hypervisor_core::caps::{FeatureControl, FeatureControlStatus, VmxCapabilities, IA32_FEATURE_CONTROL};
use hypervisor_core::instruction_error::VmxInstructionFailure;
use x86_64::registers::control::{Cr0, Cr4};

use crate::platform::memory::{self, MemoryError};
use crate::vmx::{cpuid, read_msr, write_msr};

/// Why VMX could not be turned on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VmxOnError {
    /// CPUID.1:ECX.VMX[bit 5] is 0: this CPU (or emulator) has no VT-x.
    NoVmx,
    /// IA32_FEATURE_CONTROL is locked with "VMXON outside SMX" clear.
    DisabledByFirmware {
        /// The MSR's value.
        feature_control: u64,
    },
    /// No frame for the VMXON region.
    Memory(MemoryError),
    /// VMXON itself failed.
    Vmxon(VmxInstructionFailure),
}

impl fmt::Display for VmxOnError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            VmxOnError::NoVmx => f.write_str(
                "no VT-x: CPUID.1:ECX.VMX is 0 (this CPU or emulator does not offer Intel VT-x; \
                 QEMU needs KVM on an Intel host with nested virtualization, or use Bochs)",
            ),
            VmxOnError::DisabledByFirmware { feature_control } => write!(
                f,
                "VT-x is disabled by the firmware: IA32_FEATURE_CONTROL = {feature_control:#x} is locked \
                 with 'VMXON outside SMX' clear (enable VT-x in the firmware setup)"
            ),
            VmxOnError::Memory(error) => write!(f, "VMXON region: {error}"),
            VmxOnError::Vmxon(failure) => write!(f, "VMXON failed: {failure}"),
        }
    }
}

/// Whether CPUID reports VMX (SDM Vol. 3C, 24.6 "Discovering Support for VMX").
pub fn cpu_has_vmx() -> bool {
    cpuid(1, 0).ecx & (1 << 5) != 0
}

/// Proof that this CPU is in VMX root operation; holds the VMXON region.
#[derive(Debug)]
pub struct VmxOperation {
    vmxon_region: u64,
}

/// Makes sure IA32_FEATURE_CONTROL allows VMXON outside SMX, locking it if needed.
fn enable_in_feature_control() -> Result<(), VmxOnError> {
    // SAFETY: the caller checked CPUID.1:ECX.VMX, which implies the MSR exists.
    let feature_control = FeatureControl(unsafe { read_msr(IA32_FEATURE_CONTROL) });
    match feature_control.status() {
        FeatureControlStatus::Ready => Ok(()),
        FeatureControlStatus::DisabledByFirmware => {
            Err(VmxOnError::DisabledByFirmware { feature_control: feature_control.0 })
        }
        FeatureControlStatus::NeedsEnableAndLock => {
            // SAFETY: unlocked, so writable; enables VMX outside SMX and locks
            // the MSR until reset, as VMXON requires.
            unsafe { write_msr(IA32_FEATURE_CONTROL, feature_control.enable_value()) };
            Ok(())
        }
    }
}

/// Turns VMX operation on (SDM Vol. 3C, 24.7 "Enabling and Entering VMX
/// Operation"; 31.3 "VMXON—Enter VMX Operation").
pub fn enable(caps: &VmxCapabilities) -> Result<VmxOperation, VmxOnError> {
    if !cpu_has_vmx() {
        return Err(VmxOnError::NoVmx);
    }
    enable_in_feature_control()?;

    // CR0 and CR4 must respect the fixed bits in VMX operation (SDM Vol. 3C,
    // A.7 "VMX-Fixed Bits in CR0" and A.8 "VMX-Fixed Bits in CR4").
    let cr0 = caps.cr0.apply(Cr0::read_raw());
    let cr4 = caps.cr4.apply(Cr4::read_raw() | (1 << 13));
    // SAFETY: the fixed-1 bits of CR0 (PE, PG, NE) are already set in long mode;
    // CR4.VMXE only enables the VMX instructions.
    unsafe {
        Cr0::write_raw(cr0);
        Cr4::write_raw(cr4);
    }

    let vmxon_region = memory::allocate_frame().map_err(VmxOnError::Memory)?;
    // SAFETY: a fresh, mapped frame; the first dword holds the revision id (SDM
    // Vol. 3C, 25.11.5 "VMXON Region").
    unsafe { (memory::phys_to_virt(vmxon_region) as *mut u32).write_volatile(caps.basic.revision_id()) };

    let flags: u64;
    // SAFETY: the operand is the address of a u64 holding the 4 KiB-aligned
    // physical address of a region we own and initialised.
    unsafe {
        asm!("vmxon [{address}]", "pushfq", "pop {flags}",
             address = in(reg) &vmxon_region, flags = out(reg) flags);
    }
    VmxInstructionFailure::from_rflags(flags).map_err(|failure| {
        memory::free_frame(vmxon_region);
        // With VMXON failing there is no current VMCS to read an error number from.
        VmxOnError::Vmxon(failure)
    })?;
    Ok(VmxOperation { vmxon_region })
}

impl VmxOperation {
    /// Leaves VMX operation (SDM Vol. 3C, 31.3 "VMXOFF") and frees the region.
    pub fn disable(self) {
        // SAFETY: we are in VMX root operation (this value exists) and no guest runs.
        unsafe { asm!("vmxoff", options(nostack)) };
        // SAFETY: CR4.VMXE may be cleared outside VMX operation.
        unsafe { Cr4::write_raw(Cr4::read_raw() & !(1 << 13)) };
        memory::free_frame(self.vmxon_region);
    }
}
