//! The VM-execution, VM-exit and VM-entry controls, and how to pick their values.
//!
//! Five 32-bit control words decide what a guest may do without the
//! hypervisor noticing and what VM entries and exits do:
//!
//! | word | VMCS field | SDM Vol. 3C |
//! |---|---|---|
//! | [`PinBasedControls`] | 0x4000 | 25.6.1 "Pin-Based VM-Execution Controls" |
//! | [`PrimaryControls`] | 0x4002 | 25.6.2 "Processor-Based VM-Execution Controls" |
//! | [`SecondaryControls`] | 0x401E | 25.6.2 "Processor-Based VM-Execution Controls" |
//! | [`ExitControls`] | 0x400C | 25.7.1 "VM-Exit Controls" |
//! | [`EntryControls`] | 0x4012 | 25.8.1 "VM-Entry Controls" |
//!
//! # Which bits may be set
//!
//! A processor does not support every setting of every bit. For each word a
//! capability MSR reports it as an [`AllowedBits`] (SDM Vol. 3C, Appendix A.3
//! "VM-Execution Controls", A.4 "VM-Exit Controls", A.5 "VM-Entry Controls"):
//! its low dword ("allowed-0 settings") has a 1 for every bit that **must**
//! be 1, its high dword ("allowed-1 settings") a 1 for every bit that **may**
//! be 1. VM entry fails with VM-instruction error 7 when a control word breaks
//! these rules, so every word is passed through [`adjust`] before VMWRITE.
//!
//! # The TRUE capability MSRs
//!
//! Some reserved bits are "default1": the first VMX processors required them
//! to be 1 (SDM Vol. 3C, Appendix A.2 "Reserved Controls and Default
//! Settings"), and a few of them later became real controls that may be 0
//! (e.g. "CR3-load exiting", "save debug controls"). When IA32_VMX_BASIC
//! bit 55 is 1, the processor has the MSRs IA32_VMX_TRUE_PINBASED_CTLS
//! (0x48D), IA32_VMX_TRUE_PROCBASED_CTLS (0x48E), IA32_VMX_TRUE_EXIT_CTLS
//! (0x48F) and IA32_VMX_TRUE_ENTRY_CTLS (0x490). They report the same
//! allowed-1 settings, but their allowed-0 settings may have a 0 where the
//! older MSR forces a default1 bit to 1: **use the TRUE MSRs whenever they
//! exist** ([`ControlSet::capability_msr`] picks the right number). The
//! secondary controls have no TRUE MSR and no default1 bits: their MSR
//! IA32_VMX_PROCBASED_CTLS2 (0x48B) exists only when the primary control
//! "activate secondary controls" (bit 31) may be 1.

use core::fmt;
use core::ops::{BitOr, BitOrAssign};

use crate::caps::{self, AllowedBits};
use crate::vmcs_field::VmcsField;

/// One of the five control words.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ControlSet {
    /// Pin-based VM-execution controls (SDM Vol. 3C, 25.6.1).
    PinBased,
    /// Primary processor-based VM-execution controls (SDM Vol. 3C, 25.6.2).
    PrimaryProcessorBased,
    /// Secondary processor-based VM-execution controls (SDM Vol. 3C, 25.6.2).
    SecondaryProcessorBased,
    /// Primary VM-exit controls (SDM Vol. 3C, 25.7.1).
    VmExit,
    /// VM-entry controls (SDM Vol. 3C, 25.8.1).
    VmEntry,
}

impl ControlSet {
    /// All five sets.
    pub const ALL: [ControlSet; 5] =
        [Self::PinBased, Self::PrimaryProcessorBased, Self::SecondaryProcessorBased, Self::VmExit, Self::VmEntry];

    /// The set's name as used in the SDM (and in [`ControlError`]).
    pub const fn name(self) -> &'static str {
        match self {
            Self::PinBased => "pin-based VM-execution controls",
            Self::PrimaryProcessorBased => "primary processor-based VM-execution controls",
            Self::SecondaryProcessorBased => "secondary processor-based VM-execution controls",
            Self::VmExit => "VM-exit controls",
            Self::VmEntry => "VM-entry controls",
        }
    }

    /// The VMCS field holding this control word.
    pub const fn vmcs_field(self) -> VmcsField {
        match self {
            Self::PinBased => VmcsField::PinBasedControls,
            Self::PrimaryProcessorBased => VmcsField::PrimaryProcessorControls,
            Self::SecondaryProcessorBased => VmcsField::SecondaryProcessorControls,
            Self::VmExit => VmcsField::ExitControls,
            Self::VmEntry => VmcsField::EntryControls,
        }
    }

    /// The capability MSR to read for this set. `true_controls` is
    /// IA32_VMX_BASIC bit 55 (`VmxBasic::true_controls`): when set, the TRUE
    /// MSR (0x48D-0x490) is returned, see the module documentation.
    pub const fn capability_msr(self, true_controls: bool) -> u32 {
        match (self, true_controls) {
            (Self::PinBased, false) => caps::IA32_VMX_PINBASED_CTLS,
            (Self::PinBased, true) => caps::IA32_VMX_TRUE_PINBASED_CTLS,
            (Self::PrimaryProcessorBased, false) => caps::IA32_VMX_PROCBASED_CTLS,
            (Self::PrimaryProcessorBased, true) => caps::IA32_VMX_TRUE_PROCBASED_CTLS,
            (Self::SecondaryProcessorBased, _) => caps::IA32_VMX_PROCBASED_CTLS2,
            (Self::VmExit, false) => caps::IA32_VMX_EXIT_CTLS,
            (Self::VmExit, true) => caps::IA32_VMX_TRUE_EXIT_CTLS,
            (Self::VmEntry, false) => caps::IA32_VMX_ENTRY_CTLS,
            (Self::VmEntry, true) => caps::IA32_VMX_TRUE_ENTRY_CTLS,
        }
    }

    /// The "default1" reserved bits of this set (SDM Vol. 3C, Appendix A.2
    /// "Reserved Controls and Default Settings"): the non-TRUE capability MSR
    /// always reports them as must-be-1.
    pub const fn default1_bits(self) -> u32 {
        match self {
            // bits 1, 2, 4
            Self::PinBased => 0x0000_0016,
            // bits 1, 4-6, 8, 13-16, 26
            Self::PrimaryProcessorBased => 0x0401_E172,
            Self::SecondaryProcessorBased => 0,
            // bits 0-8, 10, 11, 13, 14, 16, 17
            Self::VmExit => 0x0003_6DFF,
            // bits 0-8, 12
            Self::VmEntry => 0x0000_11FF,
        }
    }

    /// The named bits of this set, in bit order.
    pub const fn bits(self) -> &'static [ControlBit] {
        match self {
            Self::PinBased => PinBasedControls::BITS,
            Self::PrimaryProcessorBased => PrimaryControls::BITS,
            Self::SecondaryProcessorBased => SecondaryControls::BITS,
            Self::VmExit => ExitControls::BITS,
            Self::VmEntry => EntryControls::BITS,
        }
    }
}

/// One named control: its bit position and the SDM's name for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ControlBit {
    /// Bit position, 0..=31.
    pub bit: u32,
    /// The SDM's name, e.g. "HLT exiting".
    pub name: &'static str,
}

/// The SDM name of bit `bit` of control set `set`; `None` for reserved bits
/// (including the default1 ones) and for `bit >= 32`.
pub fn name_of(set: ControlSet, bit: u32) -> Option<&'static str> {
    set.bits().iter().find(|b| b.bit == bit).map(|b| b.name)
}

/// Why a control word could not be built.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ControlError {
    /// A required control may not be 1 on this processor (its allowed-1
    /// bit is 0). `bit` is the lowest such bit.
    Unsupported {
        /// Name of the control set, e.g. "secondary processor-based VM-execution controls".
        control_set: &'static str,
        /// Bit position of the missing control.
        bit: u32,
        /// SDM name of the missing control ("reserved" for an unnamed bit).
        name: &'static str,
    },
    /// The capability MSR says a bit must be 1 (allowed-0) but may not be 1
    /// (allowed-1): no value can satisfy it. Real processors never report
    /// this; it means the MSR value was not read correctly.
    Contradictory {
        /// Name of the control set.
        control_set: &'static str,
        /// Lowest contradictory bit.
        bit: u32,
    },
}

impl fmt::Display for ControlError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Self::Unsupported { control_set, bit, name } => write!(
                f,
                "required control \"{name}\" (bit {bit} of the {control_set}) is not supported by this processor"
            ),
            Self::Contradictory { control_set, bit } => {
                write!(f, "capability MSR of the {control_set} requires bit {bit} to be both 1 and 0")
            }
        }
    }
}

/// Computes the value of a control word (SDM Vol. 3C, Appendix A.3-A.5):
///
/// 1. bits whose allowed-0 setting is 1 are forced on;
/// 2. every `required` bit must have allowed-1 = 1, else
///    [`ControlError::Unsupported`] names the first missing one;
/// 3. `optional` bits (wanted if available) are kept only where allowed-1 = 1.
///
/// Pass the TRUE capability MSR's value when IA32_VMX_BASIC bit 55 is set
/// (see the module documentation): then default1 bits that are neither
/// required nor optional end up 0, as they should.
pub fn adjust(set: ControlSet, required: u32, optional: u32, allowed: AllowedBits) -> Result<u32, ControlError> {
    let contradictory = allowed.allowed0 & !allowed.allowed1;
    if contradictory != 0 {
        return Err(ControlError::Contradictory { control_set: set.name(), bit: contradictory.trailing_zeros() });
    }
    let missing = required & !allowed.allowed1;
    if missing != 0 {
        let bit = missing.trailing_zeros();
        return Err(ControlError::Unsupported {
            control_set: set.name(),
            bit,
            name: name_of(set, bit).unwrap_or("reserved"),
        });
    }
    Ok(allowed.allowed0 | required | (optional & allowed.allowed1))
}

/// Declares a control-word newtype with one associated constant per named
/// bit, its name table, bit operators and a `Display` listing the set bits.
macro_rules! control_word {
    (
        $(#[$doc:meta])*
        $word:ident, $set:expr;
        $( $(#[$bdoc:meta])* $konst:ident = $bit:literal, $name:literal; )*
    ) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
        pub struct $word(pub u32);

        impl $word {
            $( $(#[$bdoc])* pub const $konst: Self = Self(1 << $bit); )*

            /// The control set this word belongs to.
            pub const SET: ControlSet = $set;

            /// The named bits of this word with their SDM names, in bit order.
            pub const BITS: &'static [ControlBit] = &[
                $( ControlBit { bit: $bit, name: $name }, )*
            ];

            /// No control set.
            pub const fn empty() -> Self {
                Self(0)
            }

            /// The raw 32-bit value, as written to the VMCS.
            pub const fn bits(self) -> u32 {
                self.0
            }

            /// Whether every bit of `other` is set in `self`.
            pub const fn contains(self, other: Self) -> bool {
                self.0 & other.0 == other.0
            }

            /// `self` with the bits of `other` added.
            pub const fn with(self, other: Self) -> Self {
                Self(self.0 | other.0)
            }

            /// Applies [`adjust`] to this set: `required` must be supported,
            /// `optional` is kept where supported, allowed-0 bits are forced.
            pub fn adjust(
                required: Self,
                optional: Self,
                allowed: AllowedBits,
            ) -> Result<Self, ControlError> {
                adjust(Self::SET, required.0, optional.0, allowed).map(Self)
            }
        }

        impl BitOr for $word {
            type Output = Self;
            fn bitor(self, rhs: Self) -> Self {
                Self(self.0 | rhs.0)
            }
        }

        impl BitOrAssign for $word {
            fn bitor_assign(&mut self, rhs: Self) {
                self.0 |= rhs.0;
            }
        }

        impl fmt::Display for $word {
            /// Lists the set bits by SDM name, e.g. `HLT exiting | use MSR bitmaps`;
            /// unnamed (reserved) bits appear as `bit N`.
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write_bit_names(f, Self::SET, self.0)
            }
        }
    };
}

/// Writes the names of the set bits of `value`, separated by " | ".
fn write_bit_names(f: &mut fmt::Formatter<'_>, set: ControlSet, value: u32) -> fmt::Result {
    if value == 0 {
        return f.write_str("(none)");
    }
    let mut first = true;
    for bit in 0..32 {
        if value & (1 << bit) == 0 {
            continue;
        }
        if !first {
            f.write_str(" | ")?;
        }
        first = false;
        match name_of(set, bit) {
            Some(name) => f.write_str(name)?,
            None => write!(f, "bit {bit}")?,
        }
    }
    Ok(())
}

control_word! {
    /// Pin-based VM-execution controls: asynchronous events
    /// (SDM Vol. 3C, 25.6.1 "Pin-Based VM-Execution Controls", Table
    /// "Definitions of Pin-Based VM-Execution Controls").
    PinBasedControls, ControlSet::PinBased;
    /// External interrupts cause VM exits (RFLAGS.IF no longer blocks them).
    EXTERNAL_INTERRUPT_EXITING = 0, "External-interrupt exiting";
    /// NMIs cause VM exits.
    NMI_EXITING = 3, "NMI exiting";
    /// NMIs are never blocked; the "blocking by NMI" bit means virtual-NMI blocking.
    VIRTUAL_NMIS = 5, "Virtual NMIs";
    /// The VMX-preemption timer counts down in non-root operation; exit at 0.
    ACTIVATE_PREEMPTION_TIMER = 6, "Activate VMX-preemption timer";
    /// Interrupts with the posted-interrupt notification vector are processed specially.
    PROCESS_POSTED_INTERRUPTS = 7, "Process posted interrupts";
}

control_word! {
    /// Primary processor-based VM-execution controls: synchronous events,
    /// mostly instructions (SDM Vol. 3C, 25.6.2 "Processor-Based
    /// VM-Execution Controls", Table "Definitions of Primary Processor-Based
    /// VM-Execution Controls").
    PrimaryControls, ControlSet::PrimaryProcessorBased;
    /// Exit at the start of any instruction where interrupts are unblocked (IF = 1).
    INTERRUPT_WINDOW_EXITING = 2, "Interrupt-window exiting";
    /// RDTSC/RDTSCP/RDMSR(TSC) return the TSC plus the TSC offset.
    USE_TSC_OFFSETTING = 3, "Use TSC offsetting";
    /// HLT causes VM exits.
    HLT_EXITING = 7, "HLT exiting";
    /// INVLPG causes VM exits.
    INVLPG_EXITING = 9, "INVLPG exiting";
    /// MWAIT causes VM exits.
    MWAIT_EXITING = 10, "MWAIT exiting";
    /// RDPMC causes VM exits.
    RDPMC_EXITING = 11, "RDPMC exiting";
    /// RDTSC and RDTSCP cause VM exits.
    RDTSC_EXITING = 12, "RDTSC exiting";
    /// MOV to CR3 causes VM exits (unless the value is a CR3-target value).
    CR3_LOAD_EXITING = 15, "CR3-load exiting";
    /// MOV from CR3 causes VM exits.
    CR3_STORE_EXITING = 16, "CR3-store exiting";
    /// The tertiary processor-based controls are used.
    ACTIVATE_TERTIARY_CONTROLS = 17, "Activate tertiary controls";
    /// MOV to CR8 causes VM exits.
    CR8_LOAD_EXITING = 19, "CR8-load exiting";
    /// MOV from CR8 causes VM exits.
    CR8_STORE_EXITING = 20, "CR8-store exiting";
    /// TPR virtualization through the virtual-APIC page.
    USE_TPR_SHADOW = 21, "Use TPR shadow";
    /// Exit at the start of any instruction where there is no virtual-NMI blocking.
    NMI_WINDOW_EXITING = 22, "NMI-window exiting";
    /// MOV DR causes VM exits.
    MOV_DR_EXITING = 23, "MOV-DR exiting";
    /// Every I/O instruction causes a VM exit (ignored when I/O bitmaps are used).
    UNCONDITIONAL_IO_EXITING = 24, "Unconditional I/O exiting";
    /// I/O bitmaps A/B decide per port which I/O instructions exit.
    USE_IO_BITMAPS = 25, "Use I/O bitmaps";
    /// Monitor trap flag: exit after every guest instruction.
    MONITOR_TRAP_FLAG = 27, "Monitor trap flag";
    /// MSR bitmaps decide per MSR which RDMSR/WRMSR exit (else all exit).
    USE_MSR_BITMAPS = 28, "Use MSR bitmaps";
    /// MONITOR causes VM exits.
    MONITOR_EXITING = 29, "MONITOR exiting";
    /// PAUSE causes VM exits.
    PAUSE_EXITING = 30, "PAUSE exiting";
    /// The secondary processor-based controls are used.
    ACTIVATE_SECONDARY_CONTROLS = 31, "Activate secondary controls";
}

control_word! {
    /// Secondary processor-based VM-execution controls (SDM Vol. 3C, 25.6.2
    /// "Processor-Based VM-Execution Controls", Table "Definitions of
    /// Secondary Processor-Based VM-Execution Controls"). Only in effect when
    /// the primary control "activate secondary controls" is 1.
    SecondaryControls, ControlSet::SecondaryProcessorBased;
    /// Accesses to the APIC-access page are treated specially.
    VIRTUALIZE_APIC_ACCESSES = 0, "Virtualize APIC accesses";
    /// Extended page tables translate guest-physical addresses.
    ENABLE_EPT = 1, "Enable EPT";
    /// LGDT, LIDT, LLDT, LTR, SGDT, SIDT, SLDT, STR cause VM exits.
    DESCRIPTOR_TABLE_EXITING = 2, "Descriptor-table exiting";
    /// If 0, RDTSCP (and RDPID) cause #UD in the guest.
    ENABLE_RDTSCP = 3, "Enable RDTSCP";
    /// RDMSR/WRMSR to x2APIC MSRs are virtualized.
    VIRTUALIZE_X2APIC_MODE = 4, "Virtualize x2APIC mode";
    /// Cached linear translations are tagged with the VPID.
    ENABLE_VPID = 5, "Enable VPID";
    /// WBINVD and WBNOINVD cause VM exits.
    WBINVD_EXITING = 6, "WBINVD exiting";
    /// The guest may run in real mode or unpaged protected mode (needs EPT).
    UNRESTRICTED_GUEST = 7, "Unrestricted guest";
    /// APIC register accesses are virtualized.
    APIC_REGISTER_VIRTUALIZATION = 8, "APIC-register virtualization";
    /// Virtual-interrupt delivery.
    VIRTUAL_INTERRUPT_DELIVERY = 9, "Virtual-interrupt delivery";
    /// A series of PAUSEs in a spin loop may cause a VM exit.
    PAUSE_LOOP_EXITING = 10, "PAUSE-loop exiting";
    /// RDRAND causes VM exits.
    RDRAND_EXITING = 11, "RDRAND exiting";
    /// If 0, INVPCID causes #UD in the guest.
    ENABLE_INVPCID = 12, "Enable INVPCID";
    /// VMFUNC may be used in the guest.
    ENABLE_VM_FUNCTIONS = 13, "Enable VM functions";
    /// VMREAD/VMWRITE in the guest may access a shadow VMCS.
    VMCS_SHADOWING = 14, "VMCS shadowing";
    /// ENCLS consults the ENCLS-exiting bitmap.
    ENABLE_ENCLS_EXITING = 15, "Enable ENCLS exiting";
    /// RDSEED causes VM exits.
    RDSEED_EXITING = 16, "RDSEED exiting";
    /// Page-modification logging.
    ENABLE_PML = 17, "Enable PML";
    /// EPT violations may cause #VE instead of VM exits.
    EPT_VIOLATION_VE = 18, "EPT-violation #VE";
    /// Intel PT hides that the processor is in VMX non-root operation.
    CONCEAL_VMX_FROM_PT = 19, "Conceal VMX from PT";
    /// If 0, XSAVES/XRSTORS cause #UD in the guest.
    ENABLE_XSAVES_XRSTORS = 20, "Enable XSAVES/XRSTORS";
    /// PASID translation for ENQCMD/ENQCMDS.
    PASID_TRANSLATION = 21, "PASID translation";
    /// EPT execute permission separate for supervisor and user mode.
    MODE_BASED_EXECUTE_CONTROL = 22, "Mode-based execute control for EPT";
    /// EPT write permissions at 128-byte granularity.
    SUB_PAGE_WRITE_PERMISSIONS = 23, "Sub-page write permissions for EPT";
    /// Intel PT output addresses are guest-physical.
    PT_USES_GUEST_PHYSICAL = 24, "Intel PT uses guest physical addresses";
    /// The TSC the guest reads is multiplied by the TSC multiplier.
    USE_TSC_SCALING = 25, "Use TSC scaling";
    /// If 0, TPAUSE, UMONITOR and UMWAIT cause #UD in the guest.
    ENABLE_USER_WAIT_AND_PAUSE = 26, "Enable user wait and pause";
    /// If 0, PCONFIG causes #UD in the guest.
    ENABLE_PCONFIG = 27, "Enable PCONFIG";
    /// ENCLV consults the ENCLV-exiting bitmap.
    ENABLE_ENCLV_EXITING = 28, "Enable ENCLV exiting";
    /// Bus locks in the guest cause VM exits.
    VMM_BUS_LOCK_DETECTION = 30, "VMM bus-lock detection";
    /// Exit when the processor is stuck in one instruction for too long.
    INSTRUCTION_TIMEOUT = 31, "Instruction timeout";
}

control_word! {
    /// Primary VM-exit controls (SDM Vol. 3C, 25.7.1 "VM-Exit Controls",
    /// Table "Definitions of Primary VM-Exit Controls").
    ExitControls, ControlSet::VmExit;
    /// DR7 and IA32_DEBUGCTL are saved on VM exit.
    SAVE_DEBUG_CONTROLS = 2, "Save debug controls";
    /// The host runs in 64-bit mode after the exit (must be 1 for a 64-bit host).
    HOST_ADDRESS_SPACE_SIZE = 9, "Host address-space size";
    /// IA32_PERF_GLOBAL_CTRL is loaded on VM exit.
    LOAD_IA32_PERF_GLOBAL_CTRL = 12, "Load IA32_PERF_GLOBAL_CTRL";
    /// External-interrupt exits acknowledge the interrupt and store its vector.
    ACKNOWLEDGE_INTERRUPT_ON_EXIT = 15, "Acknowledge interrupt on exit";
    /// Guest IA32_PAT is saved on VM exit.
    SAVE_IA32_PAT = 18, "Save IA32_PAT";
    /// Host IA32_PAT is loaded on VM exit.
    LOAD_IA32_PAT = 19, "Load IA32_PAT";
    /// Guest IA32_EFER is saved on VM exit.
    SAVE_IA32_EFER = 20, "Save IA32_EFER";
    /// Host IA32_EFER is loaded on VM exit.
    LOAD_IA32_EFER = 21, "Load IA32_EFER";
    /// The VMX-preemption timer value is saved on VM exit.
    SAVE_PREEMPTION_TIMER_VALUE = 22, "Save VMX-preemption timer value";
    /// IA32_BNDCFGS is cleared on VM exit.
    CLEAR_IA32_BNDCFGS = 23, "Clear IA32_BNDCFGS";
    /// Intel PT produces no PIP/VMCS packet on VM exit.
    CONCEAL_VMX_FROM_PT = 24, "Conceal VMX from PT";
    /// IA32_RTIT_CTL is cleared on VM exit.
    CLEAR_IA32_RTIT_CTL = 25, "Clear IA32_RTIT_CTL";
    /// IA32_LBR_CTL is cleared on VM exit.
    CLEAR_IA32_LBR_CTL = 26, "Clear IA32_LBR_CTL";
    /// UINV is cleared on VM exit.
    CLEAR_UINV = 27, "Clear UINV";
    /// CET state is loaded on VM exit.
    LOAD_CET_STATE = 28, "Load CET state";
    /// IA32_PKRS is loaded on VM exit.
    LOAD_PKRS = 29, "Load PKRS";
    /// IA32_PERF_GLOBAL_CTL is saved on VM exit.
    SAVE_IA32_PERF_GLOBAL_CTL = 30, "Save IA32_PERF_GLOBAL_CTL";
    /// The secondary VM-exit controls are used.
    ACTIVATE_SECONDARY_CONTROLS = 31, "Activate secondary controls";
}

control_word! {
    /// VM-entry controls (SDM Vol. 3C, 25.8.1 "VM-Entry Controls", Table
    /// "Definitions of VM-Entry Controls").
    EntryControls, ControlSet::VmEntry;
    /// DR7 and IA32_DEBUGCTL are loaded on VM entry.
    LOAD_DEBUG_CONTROLS = 2, "Load debug controls";
    /// The guest is in IA-32e mode after entry (loaded into IA32_EFER.LMA).
    IA32E_MODE_GUEST = 9, "IA-32e mode guest";
    /// The guest is in SMM after entry (only for entries from SMM).
    ENTRY_TO_SMM = 10, "Entry to SMM";
    /// Default treatment of SMIs after entry (only for entries from SMM).
    DEACTIVATE_DUAL_MONITOR_TREATMENT = 11, "Deactivate dual-monitor treatment";
    /// IA32_PERF_GLOBAL_CTRL is loaded on VM entry.
    LOAD_IA32_PERF_GLOBAL_CTRL = 13, "Load IA32_PERF_GLOBAL_CTRL";
    /// Guest IA32_PAT is loaded on VM entry.
    LOAD_IA32_PAT = 14, "Load IA32_PAT";
    /// Guest IA32_EFER is loaded on VM entry.
    LOAD_IA32_EFER = 15, "Load IA32_EFER";
    /// IA32_BNDCFGS is loaded on VM entry.
    LOAD_IA32_BNDCFGS = 16, "Load IA32_BNDCFGS";
    /// Intel PT produces no PIP on VM entry.
    CONCEAL_VMX_FROM_PT = 17, "Conceal VMX from PT";
    /// IA32_RTIT_CTL is loaded on VM entry.
    LOAD_IA32_RTIT_CTL = 18, "Load IA32_RTIT_CTL";
    /// UINV is loaded on VM entry.
    LOAD_UINV = 19, "Load UINV";
    /// CET state is loaded on VM entry.
    LOAD_CET_STATE = 20, "Load CET state";
    /// Guest IA32_LBR_CTL is loaded on VM entry.
    LOAD_GUEST_IA32_LBR_CTL = 21, "Load guest IA32_LBR_CTL";
    /// IA32_PKRS is loaded on VM entry.
    LOAD_PKRS = 22, "Load PKRS";
}

#[cfg(test)]
mod tests {
    //! Capability values used below:
    //!
    //! * allowed-0 halves: Bochs' `cpu/vmx.h` (IA32_VMX_TRUE_PINBASED_CTLS
    //!   0x16, IA32_VMX_TRUE_PROCBASED_CTLS 0x04006172, IA32_VMX_TRUE_EXIT_CTLS
    //!   0x00036DFB, IA32_VMX_TRUE_ENTRY_CTLS 0x000011FB, and the non-TRUE
    //!   0x0401E172 / 0x00036DFF / 0x000011FF);
    //! * allowed-1 halves: Bochs' pin-based 0x7F (no posted interrupts), and
    //!   values a Skylake-class processor reports (procbased 0xFFF9FFFE, exit
    //!   0x01FFFFFF, entry 0x0003FFFF);
    //! * secondary: Bochs "corei7_icelake_u", allowed-1 0x02977FFF.
    use super::*;
    use std::string::ToString;

    const TRUE_PINBASED: u64 = 0x0000_007F_0000_0016;
    const TRUE_PROCBASED: u64 = 0xFFF9_FFFE_0400_6172;
    const PROCBASED: u64 = 0xFFF9_FFFE_0401_E172;
    const PROCBASED2: u64 = 0x0297_7FFF_0000_0000;
    const TRUE_EXIT: u64 = 0x01FF_FFFF_0003_6DFB;
    const TRUE_ENTRY: u64 = 0x0003_FFFF_0000_11FB;

    #[test]
    fn allowed0_bits_are_forced_on() {
        let pin = PinBasedControls::adjust(
            PinBasedControls::EXTERNAL_INTERRUPT_EXITING,
            PinBasedControls::empty(),
            AllowedBits::from_msr(TRUE_PINBASED),
        )
        .unwrap();
        assert_eq!(pin.bits(), 0x16 | 0x1);
        assert_eq!(pin.to_string(), "External-interrupt exiting | bit 1 | bit 2 | bit 4");
    }

    #[test]
    fn true_msr_lets_default1_bits_be_zero() {
        let want = PrimaryControls::HLT_EXITING
            | PrimaryControls::USE_IO_BITMAPS
            | PrimaryControls::USE_MSR_BITMAPS
            | PrimaryControls::ACTIVATE_SECONDARY_CONTROLS;
        let with_true =
            PrimaryControls::adjust(want, PrimaryControls::empty(), AllowedBits::from_msr(TRUE_PROCBASED)).unwrap();
        assert!(!with_true.contains(PrimaryControls::CR3_LOAD_EXITING));
        assert!(!with_true.contains(PrimaryControls::CR3_STORE_EXITING));
        assert_eq!(with_true.bits(), 0x0400_6172 | want.bits());

        let without_true =
            PrimaryControls::adjust(want, PrimaryControls::empty(), AllowedBits::from_msr(PROCBASED)).unwrap();
        assert!(without_true.contains(PrimaryControls::CR3_LOAD_EXITING | PrimaryControls::CR3_STORE_EXITING));
    }

    #[test]
    fn missing_required_control_is_named() {
        let err = PinBasedControls::adjust(
            PinBasedControls::NMI_EXITING | PinBasedControls::PROCESS_POSTED_INTERRUPTS,
            PinBasedControls::empty(),
            AllowedBits::from_msr(TRUE_PINBASED),
        )
        .unwrap_err();
        assert_eq!(
            err,
            ControlError::Unsupported {
                control_set: "pin-based VM-execution controls",
                bit: 7,
                name: "Process posted interrupts",
            }
        );
        assert!(err.to_string().contains("\"Process posted interrupts\" (bit 7"));

        // Bit 15 (ENCLS exiting) is 0 in the icelake model's allowed-1 0x02977FFF.
        let err = SecondaryControls::adjust(
            SecondaryControls::ENABLE_EPT | SecondaryControls::ENABLE_ENCLS_EXITING,
            SecondaryControls::empty(),
            AllowedBits::from_msr(PROCBASED2),
        )
        .unwrap_err();
        assert!(matches!(err, ControlError::Unsupported { bit: 15, name: "Enable ENCLS exiting", .. }));
    }

    #[test]
    fn optional_controls_are_dropped_when_unsupported() {
        let required = SecondaryControls::ENABLE_EPT | SecondaryControls::UNRESTRICTED_GUEST;
        let optional = SecondaryControls::ENABLE_VPID
            | SecondaryControls::ENABLE_RDTSCP
            | SecondaryControls::USE_TSC_SCALING // bit 25: supported by the icelake model
            | SecondaryControls::ENABLE_USER_WAIT_AND_PAUSE // bit 26: not supported
            | SecondaryControls::ENABLE_PML; // bit 17: supported
        let value = SecondaryControls::adjust(required, optional, AllowedBits::from_msr(PROCBASED2)).unwrap();
        assert!(value.contains(required));
        assert!(value.contains(SecondaryControls::ENABLE_VPID | SecondaryControls::ENABLE_RDTSCP));
        assert!(value.contains(SecondaryControls::USE_TSC_SCALING | SecondaryControls::ENABLE_PML));
        assert!(!value.contains(SecondaryControls::ENABLE_USER_WAIT_AND_PAUSE));
    }

    #[test]
    fn exit_and_entry_words_for_a_64_bit_host_and_guest() {
        let exit = ExitControls::adjust(
            ExitControls::HOST_ADDRESS_SPACE_SIZE,
            ExitControls::SAVE_IA32_EFER | ExitControls::LOAD_IA32_EFER | ExitControls::ACKNOWLEDGE_INTERRUPT_ON_EXIT,
            AllowedBits::from_msr(TRUE_EXIT),
        )
        .unwrap();
        // 0x36DFB forced, plus bits 9, 15, 20, 21; default1 bit 2 stays 0.
        assert_eq!(exit.bits(), 0x0003_6DFB | (1 << 9) | (1 << 15) | (1 << 20) | (1 << 21));
        assert!(!exit.contains(ExitControls::SAVE_DEBUG_CONTROLS));

        let entry = EntryControls::adjust(
            EntryControls::IA32E_MODE_GUEST | EntryControls::LOAD_IA32_EFER,
            EntryControls::LOAD_PKRS, // bit 22 > allowed-1 0x3FFFF: dropped
            AllowedBits::from_msr(TRUE_ENTRY),
        )
        .unwrap();
        assert_eq!(entry.bits(), 0x0000_11FB | (1 << 9) | (1 << 15));
    }

    #[test]
    fn contradictory_capabilities_are_rejected() {
        let bogus = AllowedBits { allowed0: 0x10, allowed1: 0x01 };
        assert_eq!(
            adjust(ControlSet::PinBased, 0, 0, bogus),
            Err(ControlError::Contradictory { control_set: "pin-based VM-execution controls", bit: 4 })
        );
    }

    #[test]
    fn names_and_tables() {
        assert_eq!(name_of(ControlSet::PrimaryProcessorBased, 7), Some("HLT exiting"));
        assert_eq!(name_of(ControlSet::SecondaryProcessorBased, 7), Some("Unrestricted guest"));
        assert_eq!(name_of(ControlSet::VmEntry, 9), Some("IA-32e mode guest"));
        assert_eq!(name_of(ControlSet::VmExit, 9), Some("Host address-space size"));
        assert_eq!(name_of(ControlSet::PinBased, 1), None, "default1 bits are reserved");
        assert_eq!(name_of(ControlSet::PinBased, 40), None);
        for set in ControlSet::ALL {
            let mut previous = None;
            for b in set.bits() {
                assert!(b.bit < 32);
                assert!(previous.is_none_or(|p| p < b.bit), "{}: bits in order", set.name());
                previous = Some(b.bit);
            }
        }
    }

    #[test]
    fn default1_bits_are_the_non_true_allowed0_settings() {
        assert_eq!(ControlSet::PinBased.default1_bits(), 0x16);
        assert_eq!(ControlSet::PrimaryProcessorBased.default1_bits(), PROCBASED as u32);
        assert_eq!(ControlSet::VmExit.default1_bits(), 0x0003_6DFF);
        assert_eq!(ControlSet::VmEntry.default1_bits(), 0x0000_11FF);
        // The TRUE MSRs may only clear default1 bits, never add must-be-1 bits.
        for (set, true_msr) in [
            (ControlSet::PinBased, TRUE_PINBASED),
            (ControlSet::PrimaryProcessorBased, TRUE_PROCBASED),
            (ControlSet::VmExit, TRUE_EXIT),
            (ControlSet::VmEntry, TRUE_ENTRY),
        ] {
            let allowed0 = AllowedBits::from_msr(true_msr).allowed0;
            assert_eq!(allowed0 & !set.default1_bits(), 0, "{}", set.name());
        }
    }

    #[test]
    fn capability_msr_numbers() {
        assert_eq!(ControlSet::PinBased.capability_msr(false), 0x481);
        assert_eq!(ControlSet::PinBased.capability_msr(true), 0x48D);
        assert_eq!(ControlSet::PrimaryProcessorBased.capability_msr(true), 0x48E);
        assert_eq!(ControlSet::VmExit.capability_msr(true), 0x48F);
        assert_eq!(ControlSet::VmEntry.capability_msr(true), 0x490);
        assert_eq!(ControlSet::SecondaryProcessorBased.capability_msr(true), 0x48B);
        assert_eq!(ControlSet::VmEntry.vmcs_field().encoding(), 0x4012);
    }
}
