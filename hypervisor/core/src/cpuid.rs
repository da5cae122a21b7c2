//! What the guest sees when it executes CPUID.
//!
//! CPUID always causes a VM exit in VMX non-root operation (SDM Vol. 3C,
//! 26.1.2 "Instructions That Cause VM Exits Unconditionally"). The exit
//! handler executes CPUID itself with the guest's EAX (leaf) and ECX
//! (subleaf), passes the host's answer through [`filter_cpuid`] and writes
//! the result into the guest's registers. Feature bits are documented in
//! SDM Vol. 2A, "CPUID—CPU Identification".
//!
//! The filter is a pure function of (leaf, subleaf, host result, policy):
//!
//! | leaf | change |
//! |---|---|
//! | 0x1 | clear ECX.MONITOR\[3\], VMX\[5\], SMX\[6\], PDCM\[15\], x2APIC\[21\] (unless the policy allows it); set ECX.hypervisor\[31\]; EBX\[31:24\] (initial APIC id) = vCPU id |
//! | 0x6 | thermal/power management: only EAX.ARAT\[2\] kept, no power MSRs are virtualized |
//! | 0x7.0 | clear EBX.INVPCID\[10\] unless "enable INVPCID", EBX.PT\[25\], ECX.WAITPKG\[5\], ECX.RDPID\[22\] unless "enable RDTSCP" |
//! | 0xA | architectural performance monitoring: all zero (no PMU for guests) |
//! | 0xB, 0x1F | EDX (x2APIC id) = vCPU id |
//! | 0xD.1 | clear EAX.XSAVES\[3\] unless "enable XSAVES/XRSTORS" |
//! | 0x8000_0001 | clear EDX.RDTSCP\[27\] unless "enable RDTSCP" |
//! | 0x4000_0000 | max hypervisor leaf (0x4000_0001) and [`HYPERVISOR_SIGNATURE`] |
//! | 0x4000_0001 | EAX = TSC frequency in kHz, EBX = local APIC timer input clock in kHz (the same: the virtual APIC timer counts at the TSC rate) |
//! | 0x4000_0002..=0x4000_00FF | all zero |
//!
//! Every other leaf is the host's answer unchanged. That includes leaves
//! above the host's maximum basic leaf: on Intel processors those return the
//! data of the highest basic leaf, and since the caller passes the host's
//! result for the same leaf, the guest sees what the host would. (One corner
//! follows from this: if the host's maximum basic leaf is below 7, a leaf-7
//! query returns the highest basic leaf's data with the leaf-7 bits cleared.)
//!
//! Several instructions fault with #UD in the guest when a secondary
//! control is 0 (SDM Vol. 3C, 26.3 "Changes to Instruction Behavior in VMX
//! Non-Root Operation"): INVPCID without "enable INVPCID", RDTSCP and RDPID
//! without "enable RDTSCP", XSAVES/XRSTORS without "enable XSAVES/XRSTORS",
//! TPAUSE/UMONITOR/UMWAIT without "enable user wait and pause". CPUID must
//! not advertise them then; [`CpuidPolicy::from_secondary_controls`] derives
//! the policy from the control word actually written to the VMCS.
//!
//! Some bits mirror the *guest's* CR4 (OSXSAVE, OSPKE), which a pure policy
//! cannot know: apply [`reflect_guest_cr4`] after [`filter_cpuid`].

use crate::controls::SecondaryControls;

/// The four registers a CPUID returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CpuidResult {
    /// EAX.
    pub eax: u32,
    /// EBX.
    pub ebx: u32,
    /// ECX.
    pub ecx: u32,
    /// EDX.
    pub edx: u32,
}

impl CpuidResult {
    /// All registers zero: "no such leaf / no such feature".
    pub const ZERO: Self = Self { eax: 0, ebx: 0, ecx: 0, edx: 0 };
}

/// What the guest is allowed to see.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CpuidPolicy {
    /// The vCPU's APIC id, reported as the initial APIC id (leaf 1
    /// EBX\[31:24\]) and the x2APIC id (leaves 0xB and 0x1F, EDX).
    pub vcpu_id: u8,
    /// Whether to report x2APIC support (leaf 1 ECX\[21\]). Only if the
    /// hypervisor emulates the x2APIC MSRs.
    pub x2apic: bool,
    /// The secondary control "enable RDTSCP" is 1: report RDTSCP and RDPID.
    pub enable_rdtscp: bool,
    /// The secondary control "enable INVPCID" is 1: report INVPCID.
    pub enable_invpcid: bool,
    /// The secondary control "enable XSAVES/XRSTORS" is 1: report XSAVES.
    pub enable_xsaves: bool,
    /// TSC frequency in kHz, reported in leaf 0x4000_0001 EAX (0 = unknown).
    /// The guest reads the host TSC (plus the TSC offset, if any), so it can
    /// use this value instead of calibrating against a timer.
    pub tsc_khz: u32,
}

impl CpuidPolicy {
    /// A conservative policy: no x2APIC, none of the optional instructions.
    pub const fn new(vcpu_id: u8, tsc_khz: u32) -> Self {
        Self { vcpu_id, x2apic: false, enable_rdtscp: false, enable_invpcid: false, enable_xsaves: false, tsc_khz }
    }

    /// A policy matching the secondary processor-based controls written to
    /// the VMCS (pass `SecondaryControls::empty()` when the secondary controls
    /// are not activated).
    pub const fn from_secondary_controls(vcpu_id: u8, tsc_khz: u32, secondary: SecondaryControls) -> Self {
        Self {
            vcpu_id,
            x2apic: false,
            enable_rdtscp: secondary.contains(SecondaryControls::ENABLE_RDTSCP),
            enable_invpcid: secondary.contains(SecondaryControls::ENABLE_INVPCID),
            enable_xsaves: secondary.contains(SecondaryControls::ENABLE_XSAVES_XRSTORS),
            tsc_khz,
        }
    }
}

/// The 12-byte vendor signature returned by leaf 0x4000_0000 in EBX, ECX,
/// EDX (4 bytes each, little-endian, the same convention as the "GenuineIntel"
/// string of leaf 0 but in EBX-ECX-EDX order).
pub const HYPERVISOR_SIGNATURE: [u8; 12] = *b"VtxTeachHV\0\0";
/// First leaf of the range reserved for hypervisors.
pub const HYPERVISOR_LEAF_BASE: u32 = 0x4000_0000;
/// Highest hypervisor leaf this hypervisor implements (returned in EAX of
/// [`HYPERVISOR_LEAF_BASE`]).
pub const HYPERVISOR_LEAF_MAX: u32 = 0x4000_0001;
/// Last leaf of the range this filter answers (zeros above [`HYPERVISOR_LEAF_MAX`]).
pub const HYPERVISOR_LEAF_END: u32 = 0x4000_00FF;
/// Leaf 0x4000_0001: EAX = TSC frequency in kHz, EBX = the local APIC timer's
/// input clock in kHz (the virtual APIC timer counts at the TSC rate,
/// `devices::board::PcBoard`), the way VMware's leaf 0x4000_0010 reports both.
pub const HYPERVISOR_LEAF_TSC: u32 = 0x4000_0001;

/// Leaf 1 ECX\[3\]: MONITOR/MWAIT.
pub const LEAF1_ECX_MONITOR: u32 = 1 << 3;
/// Leaf 1 ECX\[5\]: VMX.
pub const LEAF1_ECX_VMX: u32 = 1 << 5;
/// Leaf 1 ECX\[6\]: SMX.
pub const LEAF1_ECX_SMX: u32 = 1 << 6;
/// Leaf 1 ECX\[15\]: PDCM (IA32_PERF_CAPABILITIES).
pub const LEAF1_ECX_PDCM: u32 = 1 << 15;
/// Leaf 1 ECX\[21\]: x2APIC.
pub const LEAF1_ECX_X2APIC: u32 = 1 << 21;
/// Leaf 1 ECX\[27\]: OSXSAVE (mirrors CR4.OSXSAVE).
pub const LEAF1_ECX_OSXSAVE: u32 = 1 << 27;
/// Leaf 1 ECX\[31\]: running under a hypervisor (always 0 on bare metal).
pub const LEAF1_ECX_HYPERVISOR: u32 = 1 << 31;
/// Leaf 6 EAX\[2\]: APIC timer always running (ARAT).
pub const LEAF6_EAX_ARAT: u32 = 1 << 2;
/// Leaf 7.0 EBX\[10\]: INVPCID.
pub const LEAF7_EBX_INVPCID: u32 = 1 << 10;
/// Leaf 7.0 EBX\[25\]: Intel Processor Trace.
pub const LEAF7_EBX_PT: u32 = 1 << 25;
/// Leaf 7.0 ECX\[4\]: OSPKE (mirrors CR4.PKE).
pub const LEAF7_ECX_OSPKE: u32 = 1 << 4;
/// Leaf 7.0 ECX\[5\]: WAITPKG (TPAUSE, UMONITOR, UMWAIT).
pub const LEAF7_ECX_WAITPKG: u32 = 1 << 5;
/// Leaf 7.0 ECX\[22\]: RDPID.
pub const LEAF7_ECX_RDPID: u32 = 1 << 22;
/// Leaf 0xD.1 EAX\[3\]: XSAVES/XRSTORS and IA32_XSS.
pub const LEAFD1_EAX_XSAVES: u32 = 1 << 3;
/// Leaf 0x8000_0001 EDX\[27\]: RDTSCP.
pub const LEAF80000001_EDX_RDTSCP: u32 = 1 << 27;

/// CR4.OSXSAVE (bit 18).
const CR4_OSXSAVE: u64 = 1 << 18;
/// CR4.PKE (bit 22).
const CR4_PKE: u64 = 1 << 22;

/// Splits a 12-byte signature into its EBX, ECX, EDX dwords.
fn signature_registers(signature: &[u8; 12]) -> (u32, u32, u32) {
    let dword = |i: usize| u32::from_le_bytes([signature[i], signature[i + 1], signature[i + 2], signature[i + 3]]);
    (dword(0), dword(4), dword(8))
}

/// Returns what the guest sees for CPUID(`leaf`, `subleaf`), given the host's
/// answer to the same query and the guest's policy. See the module
/// documentation for the table of changes.
pub fn filter_cpuid(leaf: u32, subleaf: u32, host: CpuidResult, policy: &CpuidPolicy) -> CpuidResult {
    let mut r = host;
    // The hypervisor range ends in a catch-all arm that zeroes every leaf of
    // 0x4000_0000..=0x4000_00FF not answered by an earlier arm: the overlap is
    // intended, and arms match in order.
    #[allow(clippy::match_overlapping_arm)]
    match leaf {
        0x1 => {
            r.ecx &= !(LEAF1_ECX_MONITOR | LEAF1_ECX_VMX | LEAF1_ECX_SMX | LEAF1_ECX_PDCM);
            if !policy.x2apic {
                r.ecx &= !LEAF1_ECX_X2APIC;
            }
            r.ecx |= LEAF1_ECX_HYPERVISOR;
            r.ebx = (r.ebx & 0x00FF_FFFF) | ((policy.vcpu_id as u32) << 24);
        }
        0x6 => {
            r = CpuidResult { eax: host.eax & LEAF6_EAX_ARAT, ..CpuidResult::ZERO };
        }
        0x7 if subleaf == 0 => {
            r.ebx &= !LEAF7_EBX_PT;
            if !policy.enable_invpcid {
                r.ebx &= !LEAF7_EBX_INVPCID;
            }
            r.ecx &= !LEAF7_ECX_WAITPKG;
            if !policy.enable_rdtscp {
                r.ecx &= !LEAF7_ECX_RDPID;
            }
        }
        0xA => r = CpuidResult::ZERO,
        0xB | 0x1F => r.edx = policy.vcpu_id as u32,
        0xD if subleaf == 1 => {
            if !policy.enable_xsaves {
                r.eax &= !LEAFD1_EAX_XSAVES;
            }
        }
        0x8000_0001 => {
            if !policy.enable_rdtscp {
                r.edx &= !LEAF80000001_EDX_RDTSCP;
            }
        }
        HYPERVISOR_LEAF_BASE => {
            let (ebx, ecx, edx) = signature_registers(&HYPERVISOR_SIGNATURE);
            r = CpuidResult { eax: HYPERVISOR_LEAF_MAX, ebx, ecx, edx };
        }
        HYPERVISOR_LEAF_TSC => r = CpuidResult { eax: policy.tsc_khz, ebx: policy.tsc_khz, ..CpuidResult::ZERO },
        HYPERVISOR_LEAF_BASE..=HYPERVISOR_LEAF_END => r = CpuidResult::ZERO,
        _ => {}
    }
    r
}

/// Sets the CPUID bits that mirror the guest's CR4: leaf 1 ECX.OSXSAVE\[27\]
/// = CR4.OSXSAVE\[18\] and leaf 7.0 ECX.OSPKE\[4\] = CR4.PKE\[22\]. The host's
/// answer reflects the host's CR4, which is not what the guest configured.
/// OSXSAVE and OSPKE are reported only when their base features (XSAVE,
/// PKU) are reported too. Other leaves are returned unchanged.
pub fn reflect_guest_cr4(leaf: u32, subleaf: u32, result: CpuidResult, guest_cr4: u64) -> CpuidResult {
    let mut r = result;
    match leaf {
        0x1 => {
            // OSXSAVE may only be reported when XSAVE (ECX[26]) is.
            let xsave = r.ecx & (1 << 26) != 0;
            if xsave && guest_cr4 & CR4_OSXSAVE != 0 {
                r.ecx |= LEAF1_ECX_OSXSAVE;
            } else {
                r.ecx &= !LEAF1_ECX_OSXSAVE;
            }
        }
        0x7 if subleaf == 0 => {
            // OSPKE may only be reported when PKU (ECX[3]) is.
            let pku = r.ecx & (1 << 3) != 0;
            if pku && guest_cr4 & CR4_PKE != 0 {
                r.ecx |= LEAF7_ECX_OSPKE;
            } else {
                r.ecx &= !LEAF7_ECX_OSPKE;
            }
        }
        _ => {}
    }
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALL: CpuidResult = CpuidResult { eax: u32::MAX, ebx: u32::MAX, ecx: u32::MAX, edx: u32::MAX };

    fn policy() -> CpuidPolicy {
        CpuidPolicy::new(3, 2_400_000)
    }

    #[test]
    fn leaf1_hides_vmx_and_friends_and_sets_hypervisor_bit() {
        // A host leaf 1 with VMX, MONITOR, x2APIC, PDCM, SMX and APIC id 7.
        let host = CpuidResult { eax: 0x000906EA, ebx: 0x0710_0800, ecx: 0x7FFA_F3BF, edx: 0xBFEB_FBFF };
        let r = filter_cpuid(1, 0, host, &policy());
        assert_eq!(r.ecx & (LEAF1_ECX_VMX | LEAF1_ECX_SMX | LEAF1_ECX_MONITOR | LEAF1_ECX_PDCM), 0);
        assert_eq!(r.ecx & LEAF1_ECX_X2APIC, 0);
        assert_ne!(r.ecx & LEAF1_ECX_HYPERVISOR, 0);
        assert_eq!(r.ebx >> 24, 3, "initial APIC id = vCPU id");
        assert_eq!(r.ebx & 0x00FF_FFFF, 0x10_0800, "other EBX fields kept");
        assert_eq!((r.eax, r.edx), (host.eax, host.edx));
        // Everything not listed is untouched.
        let cleared = LEAF1_ECX_VMX | LEAF1_ECX_SMX | LEAF1_ECX_MONITOR | LEAF1_ECX_PDCM | LEAF1_ECX_X2APIC;
        assert_eq!(r.ecx & !cleared & !LEAF1_ECX_HYPERVISOR, host.ecx & !cleared & !LEAF1_ECX_HYPERVISOR);
    }

    #[test]
    fn leaf1_x2apic_when_allowed() {
        let p = CpuidPolicy { x2apic: true, ..policy() };
        assert_ne!(filter_cpuid(1, 0, ALL, &p).ecx & LEAF1_ECX_X2APIC, 0);
        assert_eq!(filter_cpuid(1, 0, ALL, &p).ecx & LEAF1_ECX_VMX, 0);
    }

    #[test]
    fn leaf7_follows_secondary_controls() {
        let r = filter_cpuid(7, 0, ALL, &policy());
        assert_eq!(r.ebx & (LEAF7_EBX_INVPCID | LEAF7_EBX_PT), 0);
        assert_eq!(r.ecx & (LEAF7_ECX_WAITPKG | LEAF7_ECX_RDPID), 0);
        assert_eq!(r.ebx | LEAF7_EBX_INVPCID | LEAF7_EBX_PT, u32::MAX, "other bits kept");

        let secondary =
            SecondaryControls::ENABLE_EPT | SecondaryControls::ENABLE_RDTSCP | SecondaryControls::ENABLE_INVPCID;
        let p = CpuidPolicy::from_secondary_controls(0, 0, secondary);
        assert!(p.enable_rdtscp && p.enable_invpcid && !p.enable_xsaves);
        let r = filter_cpuid(7, 0, ALL, &p);
        assert_ne!(r.ebx & LEAF7_EBX_INVPCID, 0);
        assert_ne!(r.ecx & LEAF7_ECX_RDPID, 0);
        assert_eq!(r.ebx & LEAF7_EBX_PT, 0, "PT is never exposed");
        assert_eq!(r.ecx & LEAF7_ECX_WAITPKG, 0, "WAITPKG is never exposed");

        // Other subleaves pass through.
        assert_eq!(filter_cpuid(7, 1, ALL, &policy()), ALL);
    }

    #[test]
    fn rdtscp_in_extended_leaf_follows_policy() {
        let r = filter_cpuid(0x8000_0001, 0, ALL, &policy());
        assert_eq!(r.edx & LEAF80000001_EDX_RDTSCP, 0);
        assert_eq!(r.edx | LEAF80000001_EDX_RDTSCP, u32::MAX);
        let p = CpuidPolicy { enable_rdtscp: true, ..policy() };
        assert_eq!(filter_cpuid(0x8000_0001, 0, ALL, &p), ALL);
    }

    #[test]
    fn pmu_and_power_leaves() {
        assert_eq!(filter_cpuid(0xA, 0, ALL, &policy()), CpuidResult::ZERO);
        assert_eq!(filter_cpuid(6, 0, ALL, &policy()), CpuidResult { eax: LEAF6_EAX_ARAT, ..CpuidResult::ZERO });
    }

    #[test]
    fn topology_and_xsave_leaves() {
        assert_eq!(filter_cpuid(0xB, 1, ALL, &policy()).edx, 3);
        assert_eq!(filter_cpuid(0x1F, 0, ALL, &policy()).edx, 3);
        assert_eq!(filter_cpuid(0xD, 1, ALL, &policy()).eax & LEAFD1_EAX_XSAVES, 0);
        assert_eq!(filter_cpuid(0xD, 0, ALL, &policy()), ALL);
        let p = CpuidPolicy { enable_xsaves: true, ..policy() };
        assert_eq!(filter_cpuid(0xD, 1, ALL, &p), ALL);
    }

    #[test]
    fn hypervisor_leaves() {
        let r = filter_cpuid(0x4000_0000, 0, ALL, &policy());
        assert_eq!(r.eax, 0x4000_0001);
        let mut sig = [0u8; 12];
        sig[0..4].copy_from_slice(&r.ebx.to_le_bytes());
        sig[4..8].copy_from_slice(&r.ecx.to_le_bytes());
        sig[8..12].copy_from_slice(&r.edx.to_le_bytes());
        assert_eq!(&sig, b"VtxTeachHV\0\0");

        let r = filter_cpuid(0x4000_0001, 0, ALL, &policy());
        assert_eq!(r, CpuidResult { eax: 2_400_000, ebx: 2_400_000, ..CpuidResult::ZERO });

        assert_eq!(filter_cpuid(0x4000_0002, 0, ALL, &policy()), CpuidResult::ZERO);
        assert_eq!(filter_cpuid(0x4000_00FF, 0, ALL, &policy()), CpuidResult::ZERO);
        assert_eq!(filter_cpuid(0x4000_0100, 0, ALL, &policy()), ALL, "outside the range: host's answer");
    }

    #[test]
    fn other_leaves_pass_through() {
        let host = CpuidResult { eax: 0x16, ebx: 0x756E_6547, ecx: 0x6C65_746E, edx: 0x4965_6E69 };
        assert_eq!(filter_cpuid(0, 0, host, &policy()), host);
        assert_eq!(filter_cpuid(0x8000_0008, 0, host, &policy()), host);
        // A leaf above the host's maximum: the caller passes what the host returned.
        assert_eq!(filter_cpuid(0x30, 0, host, &policy()), host);
    }

    #[test]
    fn guest_cr4_bits_are_mirrored() {
        let host1 = CpuidResult { ecx: (1 << 26) | LEAF1_ECX_OSXSAVE, ..CpuidResult::ZERO };
        assert_eq!(reflect_guest_cr4(1, 0, host1, 0).ecx & LEAF1_ECX_OSXSAVE, 0);
        assert_ne!(reflect_guest_cr4(1, 0, host1, CR4_OSXSAVE).ecx & LEAF1_ECX_OSXSAVE, 0);
        let no_xsave = CpuidResult::ZERO;
        assert_eq!(reflect_guest_cr4(1, 0, no_xsave, CR4_OSXSAVE).ecx, 0);

        let host7 = CpuidResult { ecx: 1 << 3, ..CpuidResult::ZERO };
        assert_ne!(reflect_guest_cr4(7, 0, host7, CR4_PKE).ecx & LEAF7_ECX_OSPKE, 0);
        assert_eq!(reflect_guest_cr4(7, 0, host7, 0).ecx & LEAF7_ECX_OSPKE, 0);
        assert_eq!(reflect_guest_cr4(0xD, 0, ALL, 0), ALL);
    }
}
