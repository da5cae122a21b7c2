//! CPUID (exits unconditionally: SDM Vol. 3C, 26.1.2 "Instructions That Cause
//! VM Exits Unconditionally"). The guest sees the host's answer filtered
//! through [`hypervisor_core::cpuid::filter_cpuid`]: only what the hypervisor
//! really virtualizes, plus the hypervisor leaves.

use hypervisor_core::cpuid::{filter_cpuid, reflect_guest_cr4, CpuidResult};
use hypervisor_core::vmcs_field::VmcsField;

use crate::vm::guest::{Flow, Guest};
use crate::vm::stats::Action;
use crate::vm::Host;
use crate::vmx::vcpu::Exit;
use crate::vmx::vmcs::VmxError;

/// Whether the host CPU implements `leaf` itself (basic or extended range),
/// or it is one of the hypervisor's leaves.
fn within_host_leaves(leaf: u32) -> bool {
    match leaf {
        0..=0x3FFF_FFFF => leaf <= crate::vmx::cpuid(0, 0).eax,
        hypervisor_core::cpuid::HYPERVISOR_LEAF_BASE..=hypervisor_core::cpuid::HYPERVISOR_LEAF_END => true,
        0x8000_0000.. => leaf <= crate::vmx::cpuid(0x8000_0000, 0).eax,
        _ => false,
    }
}

/// Emulates CPUID for the guest.
#[inline(always)]
pub fn handle(guest: &mut Guest, exit: &Exit, host: &Host) -> Result<Flow, VmxError> {
    let leaf = guest.vcpu.registers.rax as u32;
    let subleaf = guest.vcpu.registers.rcx as u32;
    let native = crate::vmx::cpuid(leaf, subleaf);
    let native = CpuidResult { eax: native.eax, ebx: native.ebx, ecx: native.ecx, edx: native.edx };
    let answer = filter_cpuid(leaf, subleaf, native, &host.cpuid_policy);
    // OSXSAVE/OSPKE mirror the guest's own CR4, not the host's.
    let answer = match leaf {
        1 | 7 => reflect_guest_cr4(leaf, subleaf, answer, guest.vcpu.read(VmcsField::GuestCr4)?),
        // Leaf 0xD's sizes follow the guest's XCR0 (loaded in the CPU).
        0xD => answer,
        // Every other answer within the host's leaf ranges depends on the
        // leaf and subleaf alone: the exit landing may give it from now on
        // (`vmx::run`). A leaf above the host's maximum answers like the
        // highest basic leaf (SDM Vol. 2A, CPUID), which may be one of the
        // guest-dependent leaves above: never cached.
        _ => {
            if within_host_leaves(leaf) {
                guest.vcpu.fast.remember_cpuid(leaf, subleaf, [answer.eax, answer.ebx, answer.ecx, answer.edx]);
            }
            answer
        }
    };
    let registers = &mut guest.vcpu.registers;
    registers.rax = u64::from(answer.eax);
    registers.rbx = u64::from(answer.ebx);
    registers.rcx = u64::from(answer.ecx);
    registers.rdx = u64::from(answer.edx);
    guest.vcpu.advance_rip(exit)?;
    Ok(Flow::Continue(Action::Emulated))
}
