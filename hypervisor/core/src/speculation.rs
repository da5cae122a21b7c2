//! Which transient-execution mitigations the hypervisor applies between
//! guests, decided from what the CPU enumerates.
//!
//! Three mechanisms, each only where the CPU needs it and supports it:
//!
//! * **IBPB on guest switch.** An indirect branch prediction barrier (a
//!   write of 1 to IA32_PRED_CMD, MSR 0x49) keeps branch targets trained by
//!   one guest from steering speculation in the next (Spectre v2 between
//!   guests). Enumerated by `CPUID.(EAX=7,ECX=0):EDX[26]` (IBRS_IBPB).
//! * **L1D flush on VM entry.** L1 Terminal Fault (L1TF): a guest's load
//!   through a not-present guest page-table entry can speculatively read any
//!   line in the L1 data cache, by host-physical address, bypassing EPT. A
//!   write of 1 to IA32_FLUSH_CMD (MSR 0x10B) before VM entry empties the L1D
//!   of the hypervisor's and other guests' data. Needed unless
//!   IA32_ARCH_CAPABILITIES says RDCL_NO (bit 0: not affected) or
//!   SKIP_L1DFL_VMENTRY (bit 3: a hypervisor below us already flushes);
//!   enumerated by `CPUID.(EAX=7,ECX=0):EDX[28]`.
//! * **VERW on VM entry.** Microarchitectural Data Sampling (MDS) and TSX
//!   Asynchronous Abort (TAA) leak stale data from the store buffer, fill
//!   buffers and load ports; on CPUs that enumerate MD_CLEAR
//!   (`CPUID.(EAX=7,ECX=0):EDX[10]`) the memory-operand form of VERW overwrites
//!   them. Needed unless ARCH_CAPABILITIES says MDS_NO (bit 5) and, with TSX,
//!   TAA_NO (bit 8); also where RFDS_CLEAR (bit 28) says VERW clears the
//!   register file. Not needed when the L1D flush runs on the same entry: on
//!   the affected CPUs the L1D_FLUSH command clears these buffers as well.
//!
//! IA32_ARCH_CAPABILITIES (MSR 0x10A) exists when `CPUID.(EAX=7,ECX=0):EDX[29]`
//! is set; without it an Intel CPU is assumed affected by everything.
//! References: Intel SDM Vol. 4 (the MSRs), Vol. 2A "CPUID" (the bits), and
//! Intel's guidance documents "L1 Terminal Fault", "Microarchitectural Data
//! Sampling" and "Indirect Branch Predictor Barrier".
//!
//! [`MitigationPlan::decide`] is the whole decision, from [`CpuFacts`]; the
//! kernel's `platform/mitigations.rs` reads the facts and applies the plan.

use core::fmt;

/// `CPUID.(EAX=7,ECX=0):EDX[10]`: VERW clears CPU buffers (MD_CLEAR).
pub const CPUID7_EDX_MD_CLEAR: u32 = 1 << 10;
/// `CPUID.(EAX=7,ECX=0):EBX[11]`: RTM (TSX) is available.
pub const CPUID7_EBX_RTM: u32 = 1 << 11;
/// `CPUID.(EAX=7,ECX=0):EDX[26]`: IA32_SPEC_CTRL and IA32_PRED_CMD (IBPB) exist.
pub const CPUID7_EDX_IBRS_IBPB: u32 = 1 << 26;
/// `CPUID.(EAX=7,ECX=0):EDX[28]`: IA32_FLUSH_CMD (L1D_FLUSH) exists.
pub const CPUID7_EDX_L1D_FLUSH: u32 = 1 << 28;
/// `CPUID.(EAX=7,ECX=0):EDX[29]`: IA32_ARCH_CAPABILITIES exists.
pub const CPUID7_EDX_ARCH_CAPABILITIES: u32 = 1 << 29;

/// IA32_PRED_CMD: write 1 (bit 0) for an indirect branch prediction barrier.
pub const IA32_PRED_CMD: u32 = 0x49;
/// IA32_PRED_CMD bit 0: IBPB.
pub const PRED_CMD_IBPB: u64 = 1 << 0;
/// IA32_ARCH_CAPABILITIES: what the CPU is not affected by.
pub const IA32_ARCH_CAPABILITIES: u32 = 0x10A;
/// IA32_FLUSH_CMD: write 1 (bit 0) to write back and invalidate the L1D.
pub const IA32_FLUSH_CMD: u32 = 0x10B;
/// IA32_FLUSH_CMD bit 0: L1D_FLUSH.
pub const FLUSH_CMD_L1D: u64 = 1 << 0;

/// ARCH_CAPABILITIES bit 0: not affected by rogue data cache load (Meltdown) nor L1TF.
pub const ARCH_CAP_RDCL_NO: u64 = 1 << 0;
/// Bit 3: a hypervisor does not need to flush L1D on VM entry.
pub const ARCH_CAP_SKIP_L1DFL_VMENTRY: u64 = 1 << 3;
/// Bit 5: not affected by MDS.
pub const ARCH_CAP_MDS_NO: u64 = 1 << 5;
/// Bit 8: not affected by TAA.
pub const ARCH_CAP_TAA_NO: u64 = 1 << 8;
/// Bit 28: VERW clears the register file (register file data sampling).
pub const ARCH_CAP_RFDS_CLEAR: u64 = 1 << 28;

/// What the CPU says about itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CpuFacts {
    /// The vendor string is `GenuineIntel` (the affected-by-default rules are Intel's).
    pub intel: bool,
    /// CPUID.(EAX=7,ECX=0):EBX.
    pub cpuid7_ebx: u32,
    /// CPUID.(EAX=7,ECX=0):EDX.
    pub cpuid7_edx: u32,
    /// IA32_ARCH_CAPABILITIES, when the CPU has it.
    pub arch_capabilities: Option<u64>,
}

/// Whether a mitigation runs, and why (for the boot report).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Applied.
    Yes(&'static str),
    /// Not applied because it is not needed.
    NotNeeded(&'static str),
    /// Needed, but the CPU offers no way to do it: the exposure remains.
    Unavailable(&'static str),
}

impl Decision {
    /// Whether the mitigation runs.
    pub const fn applied(self) -> bool {
        matches!(self, Self::Yes(_))
    }
}

impl fmt::Display for Decision {
    /// `yes (why)`, `no (why)` or `NEEDED BUT UNAVAILABLE (why)`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Yes(why) => write!(f, "yes ({why})"),
            Self::NotNeeded(why) => write!(f, "no ({why})"),
            Self::Unavailable(why) => write!(f, "NEEDED BUT UNAVAILABLE ({why})"),
        }
    }
}

/// The three decisions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MitigationPlan {
    /// IBPB when the CPU switches from one guest to another.
    pub ibpb_on_guest_switch: Decision,
    /// IA32_FLUSH_CMD before every VM entry.
    pub l1d_flush_on_entry: Decision,
    /// VERW before every VM entry.
    pub verw_on_entry: Decision,
}

impl MitigationPlan {
    /// Decides from the CPU's facts (see the module documentation for the rules).
    pub fn decide(facts: &CpuFacts) -> Self {
        let has = |bit: u32| facts.cpuid7_edx & bit != 0;
        let caps = facts.arch_capabilities.unwrap_or(0);
        let says = |bit: u64| caps & bit != 0;

        let ibpb_on_guest_switch = if has(CPUID7_EDX_IBRS_IBPB) {
            Decision::Yes("IBRS_IBPB enumerated")
        } else if facts.intel {
            Decision::Unavailable("the CPU does not enumerate IBPB")
        } else {
            Decision::NotNeeded("not an Intel CPU; no IBPB enumerated")
        };

        let l1d_flush_on_entry = if !facts.intel {
            Decision::NotNeeded("not an Intel CPU")
        } else if says(ARCH_CAP_RDCL_NO) {
            Decision::NotNeeded("RDCL_NO: not affected by L1TF")
        } else if says(ARCH_CAP_SKIP_L1DFL_VMENTRY) {
            Decision::NotNeeded("SKIP_L1DFL_VMENTRY: the hypervisor below flushes")
        } else if has(CPUID7_EDX_L1D_FLUSH) {
            Decision::Yes("L1TF-affected, L1D_FLUSH enumerated")
        } else {
            Decision::Unavailable("L1TF-affected, no L1D_FLUSH command")
        };

        let tsx = facts.cpuid7_ebx & CPUID7_EBX_RTM != 0;
        let buffers_exposed =
            facts.intel && (!says(ARCH_CAP_MDS_NO) || (tsx && !says(ARCH_CAP_TAA_NO)) || says(ARCH_CAP_RFDS_CLEAR));
        let verw_on_entry = if !buffers_exposed {
            if facts.intel {
                Decision::NotNeeded("MDS_NO, and TAA_NO or no TSX: CPU buffers do not leak")
            } else {
                Decision::NotNeeded("not an Intel CPU")
            }
        } else if l1d_flush_on_entry.applied() {
            Decision::NotNeeded("the L1D flush clears the CPU buffers too")
        } else if has(CPUID7_EDX_MD_CLEAR) {
            Decision::Yes("MDS/TAA-affected, MD_CLEAR enumerated")
        } else {
            Decision::Unavailable("MDS/TAA-affected, no MD_CLEAR")
        };

        Self { ibpb_on_guest_switch, l1d_flush_on_entry, verw_on_entry }
    }
}

impl fmt::Display for MitigationPlan {
    /// `IBPB on guest switch: ...; L1D flush on entry: ...; VERW on entry: ...`
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "IBPB on guest switch: {}; L1D flush on entry: {}; VERW on entry: {}",
            self.ibpb_on_guest_switch, self.l1d_flush_on_entry, self.verw_on_entry
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::string::ToString;

    const ALL_FEATURES: u32 =
        CPUID7_EDX_MD_CLEAR | CPUID7_EDX_IBRS_IBPB | CPUID7_EDX_L1D_FLUSH | CPUID7_EDX_ARCH_CAPABILITIES;

    fn intel(edx: u32, caps: Option<u64>) -> CpuFacts {
        CpuFacts { intel: true, cpuid7_ebx: 0, cpuid7_edx: edx, arch_capabilities: caps }
    }

    #[test]
    fn an_old_intel_cpu_gets_ibpb_and_the_l1d_flush_and_no_verw() {
        // Skylake-era with updated microcode: no ARCH_CAPABILITIES, every command there.
        let plan = MitigationPlan::decide(&intel(ALL_FEATURES & !CPUID7_EDX_ARCH_CAPABILITIES, None));
        assert!(plan.ibpb_on_guest_switch.applied());
        assert!(plan.l1d_flush_on_entry.applied());
        assert_eq!(plan.verw_on_entry, Decision::NotNeeded("the L1D flush clears the CPU buffers too"));
    }

    #[test]
    fn a_cpu_without_l1tf_but_with_mds_gets_verw() {
        // Cascade Lake-like: RDCL_NO, not MDS_NO.
        let plan = MitigationPlan::decide(&intel(ALL_FEATURES, Some(ARCH_CAP_RDCL_NO)));
        assert_eq!(plan.l1d_flush_on_entry, Decision::NotNeeded("RDCL_NO: not affected by L1TF"));
        assert!(plan.verw_on_entry.applied());
    }

    #[test]
    fn tsx_without_taa_no_needs_verw_even_with_mds_no() {
        let mut facts = intel(ALL_FEATURES, Some(ARCH_CAP_RDCL_NO | ARCH_CAP_MDS_NO));
        facts.cpuid7_ebx = CPUID7_EBX_RTM;
        assert!(MitigationPlan::decide(&facts).verw_on_entry.applied());
        facts.arch_capabilities = Some(ARCH_CAP_RDCL_NO | ARCH_CAP_MDS_NO | ARCH_CAP_TAA_NO);
        assert!(!MitigationPlan::decide(&facts).verw_on_entry.applied());
        // RFDS_CLEAR asks for VERW whatever else is set.
        facts.arch_capabilities = Some(ARCH_CAP_RDCL_NO | ARCH_CAP_MDS_NO | ARCH_CAP_TAA_NO | ARCH_CAP_RFDS_CLEAR);
        assert!(MitigationPlan::decide(&facts).verw_on_entry.applied());
    }

    #[test]
    fn a_new_cpu_needs_nothing_on_entry() {
        let plan = MitigationPlan::decide(&intel(ALL_FEATURES, Some(ARCH_CAP_RDCL_NO | ARCH_CAP_MDS_NO)));
        assert!(!plan.l1d_flush_on_entry.applied());
        assert!(!plan.verw_on_entry.applied());
        assert!(plan.ibpb_on_guest_switch.applied());
    }

    #[test]
    fn skip_l1dfl_vmentry_under_a_hypervisor() {
        let plan = MitigationPlan::decide(&intel(ALL_FEATURES, Some(ARCH_CAP_SKIP_L1DFL_VMENTRY)));
        assert!(!plan.l1d_flush_on_entry.applied());
        // The L1D flush does not run, so the buffers need VERW of their own.
        assert!(plan.verw_on_entry.applied());
    }

    #[test]
    fn missing_commands_are_reported_as_unavailable() {
        let plan = MitigationPlan::decide(&intel(0, None));
        assert_eq!(plan.ibpb_on_guest_switch, Decision::Unavailable("the CPU does not enumerate IBPB"));
        assert_eq!(plan.l1d_flush_on_entry, Decision::Unavailable("L1TF-affected, no L1D_FLUSH command"));
        assert_eq!(plan.verw_on_entry, Decision::Unavailable("MDS/TAA-affected, no MD_CLEAR"));
        assert!(plan.to_string().contains("L1D flush on entry: NEEDED BUT UNAVAILABLE ("));
    }

    #[test]
    fn other_vendors() {
        let facts = CpuFacts { intel: false, cpuid7_ebx: 0, cpuid7_edx: CPUID7_EDX_IBRS_IBPB, arch_capabilities: None };
        let plan = MitigationPlan::decide(&facts);
        assert!(plan.ibpb_on_guest_switch.applied());
        assert!(!plan.l1d_flush_on_entry.applied() && !plan.verw_on_entry.applied());
    }

    #[test]
    fn the_report_line() {
        let plan = MitigationPlan::decide(&intel(ALL_FEATURES, Some(ARCH_CAP_RDCL_NO | ARCH_CAP_MDS_NO)));
        assert_eq!(
            plan.to_string(),
            "IBPB on guest switch: yes (IBRS_IBPB enumerated); \
             L1D flush on entry: no (RDCL_NO: not affected by L1TF); \
             VERW on entry: no (MDS_NO, and TAA_NO or no TSX: CPU buffers do not leak)"
        );
    }
}
