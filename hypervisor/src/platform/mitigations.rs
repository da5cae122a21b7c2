//! Transient-execution mitigations between guests: detected once at boot,
//! applied on every guest switch and VM entry.
//!
//! The decision (which mitigation this CPU needs and supports, and why) is
//! [`hypervisor_core::speculation::MitigationPlan::decide`], tested on the
//! host; this file reads the CPU's facts (CPUID leaf 7, IA32_ARCH_CAPABILITIES)
//! and executes the plan:
//!
//! * [`Mitigations::on_guest_switch`]: IBPB, a write of 1 to IA32_PRED_CMD
//!   (MSR 0x49), when the scheduler hands the CPU to a different guest;
//! * [`Mitigations::before_vm_entry`]: an L1D flush (a write of 1 to
//!   IA32_FLUSH_CMD, MSR 0x10B) and/or VERW, right before VMLAUNCH/VMRESUME.
//!   On a CPU that needs neither this is one test of a `bool` that is always
//!   false: a perfectly predicted branch.
//!
//! The policy and what it does not cover are in `docs/security.md`.

use core::fmt;

use hypervisor_core::speculation::{
    CpuFacts, MitigationPlan, CPUID7_EDX_ARCH_CAPABILITIES, FLUSH_CMD_L1D, IA32_ARCH_CAPABILITIES, IA32_FLUSH_CMD,
    IA32_PRED_CMD, PRED_CMD_IBPB,
};

use crate::vmx::{cpuid, read_msr, write_msr};

/// The mitigations this CPU gets, detected once ([`Mitigations::detect`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Mitigations {
    /// The decisions with their reasons (for the report).
    plan: MitigationPlan,
    /// The CPU's facts the plan was made from (for the report).
    facts: CpuFacts,
    /// Write IA32_PRED_CMD.IBPB on a guest switch.
    ibpb: bool,
    /// Write IA32_FLUSH_CMD.L1D_FLUSH before VM entry.
    l1d_flush: bool,
    /// Execute VERW before VM entry.
    verw: bool,
    /// `l1d_flush || verw`: the one flag the entry path tests.
    entry_work: bool,
    /// The operand of VERW: a selector of a writable data segment (ours).
    /// The buffer clearing happens whatever the selector, but VERW needs a
    /// valid memory operand (Intel, "Microarchitectural Data Sampling").
    verw_selector: u16,
}

static DETECTED: spin::Once<Mitigations> = spin::Once::new();

impl Mitigations {
    /// Reads CPUID leaf 0 (vendor) and 7 (feature bits), and
    /// IA32_ARCH_CAPABILITIES when `CPUID.(EAX=7,ECX=0):EDX[29]` says it exists
    /// (SDM Vol. 2A, "CPUID"; Vol. 4, Table 2-2), and decides.
    pub fn detect() -> Self {
        let vendor = cpuid(0, 0);
        let intel = (vendor.ebx, vendor.edx, vendor.ecx) == (0x756E_6547, 0x4965_6E69, 0x6C65_746E); // "GenuineIntel"
        let (ebx, edx) = if vendor.eax >= 7 {
            let leaf = cpuid(7, 0);
            (leaf.ebx, leaf.edx)
        } else {
            (0, 0)
        };
        let arch_capabilities = (edx & CPUID7_EDX_ARCH_CAPABILITIES != 0).then(|| {
            // SAFETY: CPUID.(EAX=7,ECX=0):EDX[29] enumerates this read-only MSR.
            unsafe { read_msr(IA32_ARCH_CAPABILITIES) }
        });
        let facts = CpuFacts { intel, cpuid7_ebx: ebx, cpuid7_edx: edx, arch_capabilities };
        let plan = MitigationPlan::decide(&facts);
        let l1d_flush = plan.l1d_flush_on_entry.applied();
        let verw = plan.verw_on_entry.applied();
        Self {
            plan,
            facts,
            ibpb: plan.ibpb_on_guest_switch.applied(),
            l1d_flush,
            verw,
            entry_work: l1d_flush || verw,
            verw_selector: crate::platform::gdt::selectors().data.0,
        }
    }

    /// The mitigations detected at the first call, for the whole run (the
    /// GDT must be loaded: VERW uses its data selector).
    pub fn get() -> &'static Self {
        DETECTED.call_once(Self::detect)
    }

    /// The decisions and their reasons.
    pub fn plan(&self) -> &MitigationPlan {
        &self.plan
    }

    /// Whether [`Self::on_guest_switch`] issues an IBPB.
    pub fn ibpb_on_guest_switch(&self) -> bool {
        self.ibpb
    }

    /// Whether [`Self::before_vm_entry`] does any work.
    pub fn work_on_entry(&self) -> bool {
        self.entry_work
    }

    /// Call when the CPU switches from one guest to a *different* one (not
    /// on every VM entry): an indirect branch prediction barrier, so that
    /// branch predictions trained by the previous guest cannot steer the
    /// next one's — or the hypervisor's — speculation. IA32_PRED_CMD bit 0
    /// (Intel, "Indirect Branch Predictor Barrier"; SDM Vol. 4, Table 2-2).
    #[inline]
    pub fn on_guest_switch(&self) {
        if self.ibpb {
            // SAFETY: the plan says the CPU enumerates IA32_PRED_CMD; writing
            // IBPB only discards predictions.
            unsafe { write_msr(IA32_PRED_CMD, PRED_CMD_IBPB) };
        }
    }

    /// Call right before every VMLAUNCH/VMRESUME, after the last access to
    /// hypervisor secrets: on a CPU that needs it, flushes the L1 data cache
    /// (L1TF) or clears the CPU buffers with VERW (MDS/TAA). On a CPU that
    /// needs neither, one predictable branch on a `bool`.
    #[inline(always)]
    pub fn before_vm_entry(&self) {
        if self.entry_work {
            self.flush_before_entry();
        }
    }

    /// The work of [`Self::before_vm_entry`], out of line and cold so that the
    /// entry path of a CPU that needs none stays short.
    #[cold]
    #[inline(never)]
    fn flush_before_entry(&self) {
        if self.l1d_flush {
            // IA32_FLUSH_CMD bit 0: write back and invalidate the L1 data cache
            // (Intel, "L1 Terminal Fault"; SDM Vol. 4, Table 2-2).
            // SAFETY: the plan says the CPU enumerates IA32_FLUSH_CMD; the
            // flush loses no data (dirty lines are written back).
            unsafe { write_msr(IA32_FLUSH_CMD, FLUSH_CMD_L1D) };
        }
        if self.verw {
            // The memory-operand form of VERW overwrites the store buffer,
            // fill buffers and load ports on CPUs that enumerate MD_CLEAR
            // (Intel, "Microarchitectural Data Sampling"). It only sets ZF.
            // SAFETY: the operand is a readable u16 holding our data selector;
            // VERW reads it and changes nothing but RFLAGS.ZF.
            unsafe {
                core::arch::asm!("verw word ptr [{}]", in(reg) &self.verw_selector, options(nostack, readonly));
            }
        }
    }
}

impl fmt::Display for Mitigations {
    /// `IBPB on guest switch: yes (...); L1D flush on entry: no (...); VERW on entry: no (...)`,
    /// then the raw facts.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} [CPUID.7.0:EDX {:#010x}, ARCH_CAPABILITIES ", self.plan, self.facts.cpuid7_edx)?;
        match self.facts.arch_capabilities {
            Some(value) => write!(f, "{value:#x}]"),
            None => f.write_str("absent]"),
        }
    }
}
