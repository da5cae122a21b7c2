//! Decoding the VMX capability MSRs.
//!
//! Before it can enter VMX operation, a hypervisor must ask the processor what
//! it supports. The answers are model-specific registers (SDM Vol. 3C,
//! Appendix A "VMX Capability Reporting Facility"). This module only decodes
//! their raw 64-bit values: the kernel executes `RDMSR` and hands the values
//! in, either field by field in a [`RawVmxMsrs`] or through
//! [`RawVmxMsrs::read_with`], which also knows which MSRs exist at all.
//!
//! | MSR | number | decoded by |
//! |---|---|---|
//! | IA32_FEATURE_CONTROL | 0x3A | [`FeatureControl`] |
//! | IA32_VMX_BASIC | 0x480 | [`VmxBasic`] |
//! | IA32_VMX_(TRUE_)PINBASED/PROCBASED/EXIT/ENTRY_CTLS, PROCBASED_CTLS2 | 0x481-0x484, 0x48B, 0x48D-0x490 | [`AllowedBits`] |
//! | IA32_VMX_MISC | 0x485 | [`VmxMisc`] |
//! | IA32_VMX_CR0_FIXED0/1, CR4_FIXED0/1 | 0x486-0x489 | [`FixedBits`] |
//! | IA32_VMX_EPT_VPID_CAP | 0x48C | [`EptVpidCap`] |
//!
//! [`VmxCapabilities`] gathers all of them and prints a readable report.

use core::fmt;

use crate::controls::{ControlSet, PinBasedControls, PrimaryControls, SecondaryControls};

/// IA32_FEATURE_CONTROL: firmware's lock and VMX enable bits.
pub const IA32_FEATURE_CONTROL: u32 = 0x3A;
/// IA32_VMX_BASIC: revision id, VMCS size and memory type, TRUE-controls flag.
pub const IA32_VMX_BASIC: u32 = 0x480;
/// IA32_VMX_PINBASED_CTLS: allowed settings of the pin-based controls.
pub const IA32_VMX_PINBASED_CTLS: u32 = 0x481;
/// IA32_VMX_PROCBASED_CTLS: allowed settings of the primary processor-based controls.
pub const IA32_VMX_PROCBASED_CTLS: u32 = 0x482;
/// IA32_VMX_EXIT_CTLS: allowed settings of the primary VM-exit controls.
pub const IA32_VMX_EXIT_CTLS: u32 = 0x483;
/// IA32_VMX_ENTRY_CTLS: allowed settings of the VM-entry controls.
pub const IA32_VMX_ENTRY_CTLS: u32 = 0x484;
/// IA32_VMX_MISC: preemption-timer rate, activity states, list sizes.
pub const IA32_VMX_MISC: u32 = 0x485;
/// IA32_VMX_CR0_FIXED0: CR0 bits that must be 1 in VMX operation.
pub const IA32_VMX_CR0_FIXED0: u32 = 0x486;
/// IA32_VMX_CR0_FIXED1: CR0 bits that may be 1 in VMX operation.
pub const IA32_VMX_CR0_FIXED1: u32 = 0x487;
/// IA32_VMX_CR4_FIXED0: CR4 bits that must be 1 in VMX operation.
pub const IA32_VMX_CR4_FIXED0: u32 = 0x488;
/// IA32_VMX_CR4_FIXED1: CR4 bits that may be 1 in VMX operation.
pub const IA32_VMX_CR4_FIXED1: u32 = 0x489;
/// IA32_VMX_VMCS_ENUM: highest index used in any VMCS field encoding.
pub const IA32_VMX_VMCS_ENUM: u32 = 0x48A;
/// IA32_VMX_PROCBASED_CTLS2: allowed settings of the secondary controls
/// (exists only if "activate secondary controls" may be 1).
pub const IA32_VMX_PROCBASED_CTLS2: u32 = 0x48B;
/// IA32_VMX_EPT_VPID_CAP: EPT and VPID capabilities (exists only if "enable
/// EPT" or "enable VPID" may be 1).
pub const IA32_VMX_EPT_VPID_CAP: u32 = 0x48C;
/// IA32_VMX_TRUE_PINBASED_CTLS (exists only if IA32_VMX_BASIC bit 55 is 1).
pub const IA32_VMX_TRUE_PINBASED_CTLS: u32 = 0x48D;
/// IA32_VMX_TRUE_PROCBASED_CTLS (exists only if IA32_VMX_BASIC bit 55 is 1).
pub const IA32_VMX_TRUE_PROCBASED_CTLS: u32 = 0x48E;
/// IA32_VMX_TRUE_EXIT_CTLS (exists only if IA32_VMX_BASIC bit 55 is 1).
pub const IA32_VMX_TRUE_EXIT_CTLS: u32 = 0x48F;
/// IA32_VMX_TRUE_ENTRY_CTLS (exists only if IA32_VMX_BASIC bit 55 is 1).
pub const IA32_VMX_TRUE_ENTRY_CTLS: u32 = 0x490;
/// IA32_VMX_VMFUNC: which VM functions may be enabled.
pub const IA32_VMX_VMFUNC: u32 = 0x491;

/// Tests bit `n` of `value`.
const fn bit(value: u64, n: u32) -> bool {
    (value >> n) & 1 != 0
}

// ---------------------------------------------------------------------------
// IA32_FEATURE_CONTROL
// ---------------------------------------------------------------------------

/// IA32_FEATURE_CONTROL (0x3A), the firmware's say on VMX (SDM Vol. 3C, 24.7
/// "Enabling and Entering VMX Operation"). VMXON raises #GP unless the lock
/// bit is 1 and VMX is enabled for the mode the processor is in; once locked,
/// the MSR cannot be written until reset.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FeatureControl(pub u64);

/// What to do about IA32_FEATURE_CONTROL before VMXON.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FeatureControlStatus {
    /// Locked with "VMX outside SMX" enabled: VMXON may be executed.
    Ready,
    /// Not locked: write [`FeatureControl::enable_value`] to it (sets "VMX
    /// outside SMX" and the lock bit), then VMXON may be executed.
    NeedsEnableAndLock,
    /// Locked with "VMX outside SMX" disabled: the firmware switched VMX off
    /// and only a firmware setting (and reset) can turn it on.
    DisabledByFirmware,
}

impl FeatureControl {
    /// Bit 0: lock bit. When 1, writes to the MSR cause #GP.
    pub const LOCK: u64 = 1 << 0;
    /// Bit 1: VMXON allowed inside SMX operation (after GETSEC\[SENTER\]).
    pub const VMX_INSIDE_SMX: u64 = 1 << 1;
    /// Bit 2: VMXON allowed outside SMX operation (the normal case).
    pub const VMX_OUTSIDE_SMX: u64 = 1 << 2;

    /// Whether the lock bit is set.
    pub const fn locked(self) -> bool {
        self.0 & Self::LOCK != 0
    }

    /// Whether VMX is enabled inside SMX operation.
    pub const fn vmx_inside_smx(self) -> bool {
        self.0 & Self::VMX_INSIDE_SMX != 0
    }

    /// Whether VMX is enabled outside SMX operation.
    pub const fn vmx_outside_smx(self) -> bool {
        self.0 & Self::VMX_OUTSIDE_SMX != 0
    }

    /// Decides what must happen before VMXON. This hypervisor never enters
    /// SMX operation, so only "VMX outside SMX" matters.
    pub const fn status(self) -> FeatureControlStatus {
        match (self.locked(), self.vmx_outside_smx()) {
            (true, true) => FeatureControlStatus::Ready,
            (true, false) => FeatureControlStatus::DisabledByFirmware,
            (false, _) => FeatureControlStatus::NeedsEnableAndLock,
        }
    }

    /// The value to write when [`FeatureControlStatus::NeedsEnableAndLock`]:
    /// the current value (keeping other features' bits) plus "VMX outside
    /// SMX" and the lock bit.
    pub const fn enable_value(self) -> u64 {
        self.0 | Self::VMX_OUTSIDE_SMX | Self::LOCK
    }
}

// ---------------------------------------------------------------------------
// IA32_VMX_BASIC
// ---------------------------------------------------------------------------

/// A memory type as encoded in IA32_VMX_BASIC bits 53:50 (SDM Vol. 3C,
/// Appendix A.1 "Basic VMX Information"), in the EPT pointer and in EPT
/// entries (the same numbers as the PAT and MTRRs use).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum MemoryType {
    /// UC (0): uncacheable.
    Uncacheable = 0,
    /// WC (1): write combining.
    WriteCombining = 1,
    /// WT (4): write-through.
    WriteThrough = 4,
    /// WP (5): write-protected.
    WriteProtected = 5,
    /// WB (6): write-back.
    WriteBack = 6,
}

impl MemoryType {
    /// Decodes a memory-type number; `None` for the reserved values 2, 3, 7+.
    pub const fn from_number(number: u8) -> Option<Self> {
        match number {
            0 => Some(Self::Uncacheable),
            1 => Some(Self::WriteCombining),
            4 => Some(Self::WriteThrough),
            5 => Some(Self::WriteProtected),
            6 => Some(Self::WriteBack),
            _ => None,
        }
    }

    /// The encoding.
    pub const fn number(self) -> u8 {
        self as u8
    }

    /// The long name, e.g. "write-back".
    pub const fn name(self) -> &'static str {
        match self {
            Self::Uncacheable => "uncacheable",
            Self::WriteCombining => "write-combining",
            Self::WriteThrough => "write-through",
            Self::WriteProtected => "write-protected",
            Self::WriteBack => "write-back",
        }
    }

    /// The abbreviation, e.g. "WB".
    pub const fn short_name(self) -> &'static str {
        match self {
            Self::Uncacheable => "UC",
            Self::WriteCombining => "WC",
            Self::WriteThrough => "WT",
            Self::WriteProtected => "WP",
            Self::WriteBack => "WB",
        }
    }
}

/// IA32_VMX_BASIC (0x480), SDM Vol. 3C, Appendix A.1 "Basic VMX Information".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VmxBasic(pub u64);

impl VmxBasic {
    /// Bits 30:0: the VMCS revision identifier. It must be written into the
    /// first dword of the VMXON region and of every VMCS region (bit 31 of
    /// that dword is the shadow-VMCS indicator, 0 for ordinary VMCSs).
    pub const fn revision_id(self) -> u32 {
        (self.0 & 0x7FFF_FFFF) as u32
    }

    /// Bits 44:32: bytes to allocate for the VMXON region and each VMCS
    /// region (at most 4096).
    pub const fn vmcs_region_size(self) -> u32 {
        ((self.0 >> 32) & 0x1FFF) as u32
    }

    /// Bit 48: if 1, the physical addresses of the VMXON region, VMCS regions
    /// and the data structures they point to are limited to 32 bits. Always 0
    /// on processors that support Intel 64 architecture.
    pub const fn addresses_limited_to_32_bits(self) -> bool {
        bit(self.0, 48)
    }

    /// Bit 49: the dual-monitor treatment of SMIs and SMM is supported.
    pub const fn dual_monitor_smm(self) -> bool {
        bit(self.0, 49)
    }

    /// Bits 53:50: the raw memory-type number the processor uses to access
    /// the VMCS and the structures it references.
    pub const fn memory_type_number(self) -> u8 {
        ((self.0 >> 50) & 0xF) as u8
    }

    /// Bits 53:50 decoded; the SDM allows only UC (0) and WB (6) here.
    pub const fn memory_type(self) -> Option<MemoryType> {
        MemoryType::from_number(self.memory_type_number())
    }

    /// Bit 54: VM exits due to INS/OUTS report the VM-exit instruction-information field.
    pub const fn ins_outs_info(self) -> bool {
        bit(self.0, 54)
    }

    /// Bit 55: default1 controls may be 0, and the TRUE capability MSRs
    /// (0x48D-0x490) exist and must be used instead of 0x481-0x484.
    pub const fn true_controls(self) -> bool {
        bit(self.0, 55)
    }

    /// Bit 56: VM entry may inject a hardware exception with or without an
    /// error code, whatever the vector (no consistency check on that).
    pub const fn relaxed_error_code_injection(self) -> bool {
        bit(self.0, 56)
    }
}

// ---------------------------------------------------------------------------
// Control capability MSRs
// ---------------------------------------------------------------------------

/// The allowed settings of one 32-bit control word, as reported by its
/// capability MSR (SDM Vol. 3C, Appendix A.3 "VM-Execution Controls", A.4
/// "VM-Exit Controls", A.5 "VM-Entry Controls"). See `controls::adjust`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct AllowedBits {
    /// Low dword, "allowed 0-settings": a 1 means the control **must be 1**.
    pub allowed0: u32,
    /// High dword, "allowed 1-settings": a 1 means the control **may be 1**.
    pub allowed1: u32,
}

/// How one control bit may be set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BitSetting {
    /// Must be 0 (allowed-1 bit is 0): the processor lacks the feature.
    Fixed0,
    /// Must be 1 (allowed-0 bit is 1).
    Fixed1,
    /// May be 0 or 1: the hypervisor chooses.
    Flexible,
    /// Must be 1 and may not be 1 at once; never reported by real processors
    /// (a sign of a wrong MSR value).
    Contradictory,
}

impl AllowedBits {
    /// Nothing allowed: the value used for a control word whose capability
    /// MSR does not exist (e.g. secondary controls on old processors).
    pub const NONE: Self = Self { allowed0: 0, allowed1: 0 };

    /// Splits a capability MSR value into its two halves.
    pub const fn from_msr(raw: u64) -> Self {
        Self { allowed0: raw as u32, allowed1: (raw >> 32) as u32 }
    }

    /// Classifies bit `n` (0..=31; higher bits are reported as `Fixed0`).
    pub const fn classify(self, n: u32) -> BitSetting {
        if n >= 32 {
            return BitSetting::Fixed0;
        }
        let must_be_one = (self.allowed0 >> n) & 1 != 0;
        let may_be_one = (self.allowed1 >> n) & 1 != 0;
        match (must_be_one, may_be_one) {
            (false, false) => BitSetting::Fixed0,
            (true, true) => BitSetting::Fixed1,
            (false, true) => BitSetting::Flexible,
            (true, false) => BitSetting::Contradictory,
        }
    }

    /// Whether bit `n` may be 1 on this processor.
    pub const fn may_be_one(self, n: u32) -> bool {
        n < 32 && (self.allowed1 >> n) & 1 != 0
    }

    /// Whether `value` satisfies both halves (what VM entry checks).
    pub const fn permits(self, value: u32) -> bool {
        value & self.allowed0 == self.allowed0 && value & !self.allowed1 == 0
    }
}

// ---------------------------------------------------------------------------
// IA32_VMX_MISC
// ---------------------------------------------------------------------------

/// IA32_VMX_MISC (0x485), SDM Vol. 3C, Appendix A.6 "Miscellaneous Data".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VmxMisc(pub u64);

impl VmxMisc {
    /// Bits 4:0: the VMX-preemption timer counts down by 1 every time bit
    /// `rate` of the TSC changes, i.e. at TSC frequency / 2^rate.
    pub const fn preemption_timer_rate(self) -> u8 {
        (self.0 & 0x1F) as u8
    }

    /// Bit 5: VM exits store EFER.LMA into the "IA-32e mode guest" entry control.
    pub const fn stores_efer_lma(self) -> bool {
        bit(self.0, 5)
    }

    /// Bit 6: the HLT activity state is supported.
    pub const fn activity_hlt(self) -> bool {
        bit(self.0, 6)
    }

    /// Bit 7: the shutdown activity state is supported.
    pub const fn activity_shutdown(self) -> bool {
        bit(self.0, 7)
    }

    /// Bit 8: the wait-for-SIPI activity state is supported.
    pub const fn activity_wait_for_sipi(self) -> bool {
        bit(self.0, 8)
    }

    /// Bit 14: Intel Processor Trace may be used in VMX operation.
    pub const fn intel_pt_in_vmx(self) -> bool {
        bit(self.0, 14)
    }

    /// Bit 15: RDMSR in SMM can read IA32_SMBASE.
    pub const fn rdmsr_smbase_in_smm(self) -> bool {
        bit(self.0, 15)
    }

    /// Bits 24:16: number of CR3-target values supported.
    pub const fn cr3_target_count(self) -> u32 {
        ((self.0 >> 16) & 0x1FF) as u32
    }

    /// Bits 27:25 = N: recommended maximum number of MSRs in each of the
    /// VM-exit MSR-store, VM-exit MSR-load and VM-entry MSR-load lists is
    /// 512 * (N + 1).
    pub const fn max_msr_list_count(self) -> u32 {
        (((self.0 >> 25) & 0x7) as u32 + 1) * 512
    }

    /// Bit 28: bit 2 of IA32_SMM_MONITOR_CTL can be set (VMXOFF unblocks SMIs).
    pub const fn smm_monitor_ctl_bit2(self) -> bool {
        bit(self.0, 28)
    }

    /// Bit 29: VMWRITE may write any supported field, including VM-exit
    /// information fields.
    pub const fn vmwrite_any_field(self) -> bool {
        bit(self.0, 29)
    }

    /// Bit 30: VM entry may inject software interrupts and (privileged)
    /// software exceptions with an instruction length of 0.
    pub const fn zero_length_injection(self) -> bool {
        bit(self.0, 30)
    }

    /// Bits 63:32: the MSEG revision identifier.
    pub const fn mseg_revision(self) -> u32 {
        (self.0 >> 32) as u32
    }
}

// ---------------------------------------------------------------------------
// CR0 / CR4 fixed bits
// ---------------------------------------------------------------------------

/// Bits of CR0 or CR4 that VMX operation pins (SDM Vol. 3C, Appendix A.7
/// "VMX-Fixed Bits in CR0" and A.8 "VMX-Fixed Bits in CR4"): a bit that is 1
/// in FIXED0 must be 1; a bit that is 0 in FIXED1 must be 0. The rules hold
/// for the host's registers (VMXON fails otherwise) and for the guest's
/// values in the VMCS (VM entry fails otherwise).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FixedBits {
    /// IA32_VMX_CRn_FIXED0: 1 = the bit must be 1.
    pub fixed0: u64,
    /// IA32_VMX_CRn_FIXED1: 0 = the bit must be 0.
    pub fixed1: u64,
}

impl FixedBits {
    /// CR0.PE (bit 0).
    pub const CR0_PE: u64 = 1 << 0;
    /// CR0.PG (bit 31).
    pub const CR0_PG: u64 = 1 << 31;

    /// Pairs a FIXED0 and a FIXED1 MSR value.
    pub const fn new(fixed0: u64, fixed1: u64) -> Self {
        Self { fixed0, fixed1 }
    }

    /// Forces the must-be-1 bits on and the must-be-0 bits off.
    pub const fn apply(self, value: u64) -> u64 {
        (value | self.fixed0) & self.fixed1
    }

    /// Whether `value` already obeys both rules.
    pub const fn is_valid(self, value: u64) -> bool {
        self.apply(value) == value
    }

    /// The same rules with the bits of `exempt` no longer forced to 1. With
    /// the "unrestricted guest" control, the guest's CR0.PE and CR0.PG are
    /// exempt: use `cr0.relaxed(FixedBits::CR0_PE | FixedBits::CR0_PG)` for
    /// the guest CR0 (SDM Vol. 3C, 27.3.1.1 "Checks on Guest Control
    /// Registers, Debug Registers, and MSRs").
    pub const fn relaxed(self, exempt: u64) -> Self {
        Self { fixed0: self.fixed0 & !exempt, fixed1: self.fixed1 }
    }
}

// ---------------------------------------------------------------------------
// IA32_VMX_EPT_VPID_CAP
// ---------------------------------------------------------------------------

/// IA32_VMX_EPT_VPID_CAP (0x48C), SDM Vol. 3C, Appendix A.10 "VPID and EPT
/// Capabilities". All zero when the MSR does not exist.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct EptVpidCap(pub u64);

impl EptVpidCap {
    /// Bit 0: EPT entries may be execute-only (bits 2:0 = 100b).
    pub const fn execute_only(self) -> bool {
        bit(self.0, 0)
    }

    /// Bit 6: a page-walk length of 4 is supported.
    pub const fn page_walk_length_4(self) -> bool {
        bit(self.0, 6)
    }

    /// Bit 7: a page-walk length of 5 is supported.
    pub const fn page_walk_length_5(self) -> bool {
        bit(self.0, 7)
    }

    /// Bit 8: the EPT paging structures may be uncacheable (EPTP memory type 0).
    pub const fn memory_type_uc(self) -> bool {
        bit(self.0, 8)
    }

    /// Bit 14: the EPT paging structures may be write-back (EPTP memory type 6).
    pub const fn memory_type_wb(self) -> bool {
        bit(self.0, 14)
    }

    /// Bit 16: EPT PDEs may map 2-MiB pages.
    pub const fn pages_2mib(self) -> bool {
        bit(self.0, 16)
    }

    /// Bit 17: EPT PDPTEs may map 1-GiB pages.
    pub const fn pages_1gib(self) -> bool {
        bit(self.0, 17)
    }

    /// Bit 20: INVEPT is supported.
    pub const fn invept(self) -> bool {
        bit(self.0, 20)
    }

    /// Bit 21: EPT accessed and dirty flags are supported.
    pub const fn accessed_dirty_flags(self) -> bool {
        bit(self.0, 21)
    }

    /// Bit 22: EPT violations report advanced exit information.
    pub const fn advanced_violation_info(self) -> bool {
        bit(self.0, 22)
    }

    /// Bit 23: supervisor shadow-stack control is supported.
    pub const fn supervisor_shadow_stack(self) -> bool {
        bit(self.0, 23)
    }

    /// Bit 25: single-context INVEPT is supported.
    pub const fn invept_single_context(self) -> bool {
        bit(self.0, 25)
    }

    /// Bit 26: all-context INVEPT is supported.
    pub const fn invept_all_context(self) -> bool {
        bit(self.0, 26)
    }

    /// Bit 32: INVVPID is supported.
    pub const fn invvpid(self) -> bool {
        bit(self.0, 32)
    }

    /// Bit 40: individual-address INVVPID is supported.
    pub const fn invvpid_individual_address(self) -> bool {
        bit(self.0, 40)
    }

    /// Bit 41: single-context INVVPID is supported.
    pub const fn invvpid_single_context(self) -> bool {
        bit(self.0, 41)
    }

    /// Bit 42: all-context INVVPID is supported.
    pub const fn invvpid_all_context(self) -> bool {
        bit(self.0, 42)
    }

    /// Bit 43: single-context-retaining-globals INVVPID is supported.
    pub const fn invvpid_single_context_retaining_globals(self) -> bool {
        bit(self.0, 43)
    }
}

// ---------------------------------------------------------------------------
// Everything together
// ---------------------------------------------------------------------------

/// The raw MSR values, as the kernel read them. For an MSR that does not
/// exist on this processor, the value is 0 (reading it would raise #GP; see
/// [`RawVmxMsrs::read_with`] for the rules).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RawVmxMsrs {
    /// IA32_FEATURE_CONTROL (0x3A).
    pub feature_control: u64,
    /// IA32_VMX_BASIC (0x480).
    pub basic: u64,
    /// Pin-based capability: 0x48D if IA32_VMX_BASIC bit 55, else 0x481.
    pub pinbased: u64,
    /// Primary processor-based capability: 0x48E if bit 55, else 0x482.
    pub procbased: u64,
    /// Secondary capability (0x48B), 0 if "activate secondary controls" is fixed 0.
    pub procbased2: u64,
    /// VM-exit capability: 0x48F if bit 55, else 0x483.
    pub exit: u64,
    /// VM-entry capability: 0x490 if bit 55, else 0x484.
    pub entry: u64,
    /// IA32_VMX_MISC (0x485).
    pub misc: u64,
    /// IA32_VMX_CR0_FIXED0 (0x486).
    pub cr0_fixed0: u64,
    /// IA32_VMX_CR0_FIXED1 (0x487).
    pub cr0_fixed1: u64,
    /// IA32_VMX_CR4_FIXED0 (0x488).
    pub cr4_fixed0: u64,
    /// IA32_VMX_CR4_FIXED1 (0x489).
    pub cr4_fixed1: u64,
    /// IA32_VMX_EPT_VPID_CAP (0x48C), 0 if neither EPT nor VPID may be enabled.
    pub ept_vpid_cap: u64,
}

impl RawVmxMsrs {
    /// Reads every capability MSR through `rdmsr` (which the kernel
    /// implements with the RDMSR instruction), asking only for MSRs that
    /// exist (SDM Vol. 3C, Appendix A):
    ///
    /// * the TRUE control MSRs only when IA32_VMX_BASIC bit 55 is 1;
    /// * IA32_VMX_PROCBASED_CTLS2 only when primary bit 31 ("activate
    ///   secondary controls") may be 1;
    /// * IA32_VMX_EPT_VPID_CAP only when secondary bit 1 ("enable EPT") or
    ///   bit 5 ("enable VPID") may be 1.
    ///
    /// The caller must already know that the CPU has VMX (CPUID.1:ECX.VMX\[5\]),
    /// else even IA32_VMX_BASIC does not exist.
    pub fn read_with(mut rdmsr: impl FnMut(u32) -> u64) -> Self {
        let feature_control = rdmsr(IA32_FEATURE_CONTROL);
        let basic = rdmsr(IA32_VMX_BASIC);
        let true_controls = VmxBasic(basic).true_controls();
        let pinbased = rdmsr(ControlSet::PinBased.capability_msr(true_controls));
        let procbased = rdmsr(ControlSet::PrimaryProcessorBased.capability_msr(true_controls));
        let exit = rdmsr(ControlSet::VmExit.capability_msr(true_controls));
        let entry = rdmsr(ControlSet::VmEntry.capability_msr(true_controls));

        let secondary_bit = PrimaryControls::ACTIVATE_SECONDARY_CONTROLS.bits();
        let procbased2 = if AllowedBits::from_msr(procbased).allowed1 & secondary_bit != 0 {
            rdmsr(IA32_VMX_PROCBASED_CTLS2)
        } else {
            0
        };
        let ept_or_vpid = (SecondaryControls::ENABLE_EPT | SecondaryControls::ENABLE_VPID).bits();
        let ept_vpid_cap = if AllowedBits::from_msr(procbased2).allowed1 & ept_or_vpid != 0 {
            rdmsr(IA32_VMX_EPT_VPID_CAP)
        } else {
            0
        };

        Self {
            feature_control,
            basic,
            pinbased,
            procbased,
            procbased2,
            exit,
            entry,
            misc: rdmsr(IA32_VMX_MISC),
            cr0_fixed0: rdmsr(IA32_VMX_CR0_FIXED0),
            cr0_fixed1: rdmsr(IA32_VMX_CR0_FIXED1),
            cr4_fixed0: rdmsr(IA32_VMX_CR4_FIXED0),
            cr4_fixed1: rdmsr(IA32_VMX_CR4_FIXED1),
            ept_vpid_cap,
        }
    }
}

/// Every VMX capability of this processor, decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VmxCapabilities {
    /// IA32_FEATURE_CONTROL.
    pub feature_control: FeatureControl,
    /// IA32_VMX_BASIC.
    pub basic: VmxBasic,
    /// Allowed pin-based controls (from the TRUE MSR when it exists).
    pub pin_based: AllowedBits,
    /// Allowed primary processor-based controls (TRUE MSR when it exists).
    pub primary: AllowedBits,
    /// Allowed secondary controls; [`AllowedBits::NONE`] when the primary
    /// control "activate secondary controls" may not be 1.
    pub secondary: AllowedBits,
    /// Allowed VM-exit controls (TRUE MSR when it exists).
    pub exit: AllowedBits,
    /// Allowed VM-entry controls (TRUE MSR when it exists).
    pub entry: AllowedBits,
    /// IA32_VMX_MISC.
    pub misc: VmxMisc,
    /// CR0 rules in VMX operation.
    pub cr0: FixedBits,
    /// CR4 rules in VMX operation.
    pub cr4: FixedBits,
    /// EPT/VPID capabilities; all zero when neither EPT nor VPID exists.
    pub ept_vpid: EptVpidCap,
}

impl VmxCapabilities {
    /// Decodes the raw values. Secondary controls and EPT/VPID capabilities
    /// are treated as absent when the controls that enable them may not be 1,
    /// whatever the raw values say.
    pub fn decode(raw: &RawVmxMsrs) -> Self {
        let primary = AllowedBits::from_msr(raw.procbased);
        let secondary = if primary.allowed1 & PrimaryControls::ACTIVATE_SECONDARY_CONTROLS.bits() != 0 {
            AllowedBits::from_msr(raw.procbased2)
        } else {
            AllowedBits::NONE
        };
        let ept_or_vpid = (SecondaryControls::ENABLE_EPT | SecondaryControls::ENABLE_VPID).bits();
        let ept_vpid = if secondary.allowed1 & ept_or_vpid != 0 { EptVpidCap(raw.ept_vpid_cap) } else { EptVpidCap(0) };
        Self {
            feature_control: FeatureControl(raw.feature_control),
            basic: VmxBasic(raw.basic),
            pin_based: AllowedBits::from_msr(raw.pinbased),
            primary,
            secondary,
            exit: AllowedBits::from_msr(raw.exit),
            entry: AllowedBits::from_msr(raw.entry),
            misc: VmxMisc(raw.misc),
            cr0: FixedBits::new(raw.cr0_fixed0, raw.cr0_fixed1),
            cr4: FixedBits::new(raw.cr4_fixed0, raw.cr4_fixed1),
            ept_vpid,
        }
    }

    /// The allowed settings of one control set, ready for `controls::adjust`.
    pub const fn allowed(&self, set: ControlSet) -> AllowedBits {
        match set {
            ControlSet::PinBased => self.pin_based,
            ControlSet::PrimaryProcessorBased => self.primary,
            ControlSet::SecondaryProcessorBased => self.secondary,
            ControlSet::VmExit => self.exit,
            ControlSet::VmEntry => self.entry,
        }
    }

    /// Whether the secondary processor-based controls exist.
    pub const fn has_secondary_controls(&self) -> bool {
        self.primary.allowed1 & PrimaryControls::ACTIVATE_SECONDARY_CONTROLS.bits() != 0
    }

    /// Tests a secondary control's allowed-1 bit.
    const fn secondary_allows(&self, control: SecondaryControls) -> bool {
        self.secondary.allowed1 & control.bits() != 0
    }

    /// Whether "enable EPT" may be 1.
    pub const fn has_ept(&self) -> bool {
        self.secondary_allows(SecondaryControls::ENABLE_EPT)
    }

    /// Whether "enable VPID" may be 1.
    pub const fn has_vpid(&self) -> bool {
        self.secondary_allows(SecondaryControls::ENABLE_VPID)
    }

    /// Whether "unrestricted guest" may be 1 (guests may start in real mode).
    pub const fn has_unrestricted_guest(&self) -> bool {
        self.secondary_allows(SecondaryControls::UNRESTRICTED_GUEST)
    }

    /// Whether "enable VM functions" may be 1.
    pub const fn has_vmfunc(&self) -> bool {
        self.secondary_allows(SecondaryControls::ENABLE_VM_FUNCTIONS)
    }

    /// Whether "enable RDTSCP" may be 1.
    pub const fn has_rdtscp(&self) -> bool {
        self.secondary_allows(SecondaryControls::ENABLE_RDTSCP)
    }

    /// Whether "enable INVPCID" may be 1.
    pub const fn has_invpcid(&self) -> bool {
        self.secondary_allows(SecondaryControls::ENABLE_INVPCID)
    }

    /// Whether the pin-based "activate VMX-preemption timer" may be 1.
    pub const fn has_preemption_timer(&self) -> bool {
        self.pin_based.allowed1 & PinBasedControls::ACTIVATE_PREEMPTION_TIMER.bits() != 0
    }
}

/// Writes "yes"/"no".
fn yes_no(value: bool) -> &'static str {
    if value {
        "yes"
    } else {
        "no"
    }
}

/// Writes the names whose flag is true, comma-separated, or "none".
fn write_list(f: &mut fmt::Formatter<'_>, items: &[(bool, &str)]) -> fmt::Result {
    let mut first = true;
    for &(present, name) in items {
        if present {
            if !first {
                f.write_str(", ")?;
            }
            f.write_str(name)?;
            first = false;
        }
    }
    if first {
        f.write_str("none")?;
    }
    Ok(())
}

impl fmt::Display for VmxCapabilities {
    /// A multi-line report, one capability per line, without a trailing newline.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let basic = self.basic;
        let fc = self.feature_control;
        let ept = self.ept_vpid;
        let misc = self.misc;

        let fc_status = match fc.status() {
            FeatureControlStatus::Ready => "ready",
            FeatureControlStatus::NeedsEnableAndLock => "unlocked, must enable and lock",
            FeatureControlStatus::DisabledByFirmware => "VMX disabled by firmware",
        };
        writeln!(f, "IA32_FEATURE_CONTROL:  {:#x} ({fc_status})", fc.0)?;
        writeln!(f, "VMCS revision id:      {:#x}", basic.revision_id())?;
        writeln!(f, "VMCS region size:      {} bytes", basic.vmcs_region_size())?;
        match basic.memory_type() {
            Some(t) => writeln!(f, "VMCS memory type:      {} ({})", t.name(), t.number())?,
            None => writeln!(f, "VMCS memory type:      unknown ({})", basic.memory_type_number())?,
        }
        writeln!(f, "TRUE controls:         {}", yes_no(basic.true_controls()))?;
        writeln!(f, "INS/OUTS exit info:    {}", yes_no(basic.ins_outs_info()))?;
        writeln!(f, "secondary controls:    {}", yes_no(self.has_secondary_controls()))?;
        writeln!(f, "EPT:                   {}", yes_no(self.has_ept()))?;
        writeln!(f, "VPID:                  {}", yes_no(self.has_vpid()))?;
        writeln!(f, "unrestricted guest:    {}", yes_no(self.has_unrestricted_guest()))?;
        writeln!(f, "VMFUNC:                {}", yes_no(self.has_vmfunc()))?;
        if self.has_preemption_timer() {
            writeln!(f, "preemption timer:      yes (TSC / 2^{})", misc.preemption_timer_rate())?;
        } else {
            writeln!(f, "preemption timer:      no")?;
        }
        f.write_str("EPT page sizes:        ")?;
        write_list(f, &[(self.has_ept(), "4 KiB"), (ept.pages_2mib(), "2 MiB"), (ept.pages_1gib(), "1 GiB")])?;
        f.write_str("\nEPT memory types:      ")?;
        write_list(f, &[(ept.memory_type_uc(), "UC"), (ept.memory_type_wb(), "WB")])?;
        f.write_str("\nEPT features:          ")?;
        write_list(
            f,
            &[
                (ept.page_walk_length_4(), "4-level walk"),
                (ept.page_walk_length_5(), "5-level walk"),
                (ept.execute_only(), "execute-only"),
                (ept.accessed_dirty_flags(), "accessed/dirty flags"),
            ],
        )?;
        f.write_str("\nINVEPT:                ")?;
        write_list(
            f,
            &[
                (ept.invept() && ept.invept_single_context(), "single-context"),
                (ept.invept() && ept.invept_all_context(), "all-context"),
            ],
        )?;
        f.write_str("\nINVVPID:               ")?;
        write_list(
            f,
            &[
                (ept.invvpid() && ept.invvpid_individual_address(), "individual-address"),
                (ept.invvpid() && ept.invvpid_single_context(), "single-context"),
                (ept.invvpid() && ept.invvpid_all_context(), "all-context"),
                (ept.invvpid() && ept.invvpid_single_context_retaining_globals(), "single-context-retaining-globals"),
            ],
        )?;
        f.write_str("\nactivity states:       active")?;
        for (present, name) in [
            (misc.activity_hlt(), "HLT"),
            (misc.activity_shutdown(), "shutdown"),
            (misc.activity_wait_for_sipi(), "wait-for-SIPI"),
        ] {
            if present {
                write!(f, ", {name}")?;
            }
        }
        writeln!(f)?;
        writeln!(f, "CR3-target values:     {}", misc.cr3_target_count())?;
        write!(f, "MSR-list maximum:      {}", misc.max_msr_list_count())
    }
}

#[cfg(test)]
mod tests {
    //! IA32_FEATURE_CONTROL, IA32_VMX_BASIC, the secondary allowed-1 half,
    //! IA32_VMX_EPT_VPID_CAP and IA32_VMX_MISC are what Bochs reports for its
    //! `corei7_icelake_u` model. The control MSRs' allowed-0 halves and
    //! CR0/CR4 FIXED0 are Bochs' constants (`cpu/vmx.h`); the other
    //! allowed-1 halves and CR4 FIXED1 are typical Skylake-class values.
    use super::*;
    use std::string::ToString;

    const FEATURE_CONTROL: u64 = 0x5;
    const BASIC: u64 = 0x00d8_1000_0000_0004;
    const SECONDARY_ALLOWED1: u64 = 0x0297_7fff;
    const PROCBASED2: u64 = SECONDARY_ALLOWED1 << 32;
    const EPT_VPID_CAP: u64 = 0x0000_0f01_0633_4141;
    const MISC: u64 = 0x6004_01e0;

    fn bochs() -> RawVmxMsrs {
        RawVmxMsrs {
            feature_control: FEATURE_CONTROL,
            basic: BASIC,
            pinbased: 0x0000_007f_0000_0016,
            procbased: 0xfff9_fffe_0400_6172,
            procbased2: PROCBASED2,
            exit: 0x01ff_ffff_0003_6dfb,
            entry: 0x0003_ffff_0000_11fb,
            misc: MISC,
            cr0_fixed0: 0x8000_0021,
            cr0_fixed1: 0xffff_ffff,
            cr4_fixed0: 0x2000,
            cr4_fixed1: 0x0037_67ff,
            ept_vpid_cap: EPT_VPID_CAP,
        }
    }

    #[test]
    fn feature_control_bochs_is_ready() {
        let fc = FeatureControl(FEATURE_CONTROL);
        assert!(fc.locked());
        assert!(!fc.vmx_inside_smx());
        assert!(fc.vmx_outside_smx());
        assert_eq!(fc.status(), FeatureControlStatus::Ready);
    }

    #[test]
    fn feature_control_other_states() {
        assert_eq!(FeatureControl(0).status(), FeatureControlStatus::NeedsEnableAndLock);
        assert_eq!(FeatureControl(0).enable_value(), 0x5);
        // Unlocked with another feature bit (SENTER enables, bits 14:8) kept.
        assert_eq!(FeatureControl(0x100).enable_value(), 0x105);
        assert_eq!(FeatureControl(0x1).status(), FeatureControlStatus::DisabledByFirmware);
        // Enabled only inside SMX is still "disabled" for a non-SMX hypervisor.
        assert_eq!(FeatureControl(0x3).status(), FeatureControlStatus::DisabledByFirmware);
    }

    #[test]
    fn vmx_basic_bochs() {
        // 0x00d8_1000_0000_0004: low dword 4; high dword 0x00d81000:
        // bits 44:32 = 0x1000, bit 48 = 0, bits 53:50 = 0b0110, bit 54 = 1, bit 55 = 1.
        let basic = VmxBasic(BASIC);
        assert_eq!(basic.revision_id(), 4);
        assert_eq!(basic.vmcs_region_size(), 0x1000);
        assert!(!basic.addresses_limited_to_32_bits());
        assert!(!basic.dual_monitor_smm());
        assert_eq!(basic.memory_type_number(), 6);
        assert_eq!(basic.memory_type(), Some(MemoryType::WriteBack));
        assert_eq!(MemoryType::WriteBack.name(), "write-back");
        assert!(basic.ins_outs_info());
        assert!(basic.true_controls());
        assert!(!basic.relaxed_error_code_injection());
    }

    #[test]
    fn revision_id_ignores_bit_31() {
        assert_eq!(VmxBasic(0x8000_0012).revision_id(), 0x12);
        assert_eq!(VmxBasic(2 << 50).memory_type(), None);
    }

    #[test]
    fn allowed_bits_classification() {
        let pin = AllowedBits::from_msr(0x0000_007f_0000_0016);
        assert_eq!(pin, AllowedBits { allowed0: 0x16, allowed1: 0x7f });
        assert_eq!(pin.classify(1), BitSetting::Fixed1);
        assert_eq!(pin.classify(0), BitSetting::Flexible);
        assert_eq!(pin.classify(6), BitSetting::Flexible);
        assert_eq!(pin.classify(7), BitSetting::Fixed0);
        assert_eq!(pin.classify(32), BitSetting::Fixed0);
        assert_eq!(AllowedBits { allowed0: 1, allowed1: 0 }.classify(0), BitSetting::Contradictory);
        assert!(pin.permits(0x16));
        assert!(pin.permits(0x7f));
        assert!(!pin.permits(0x14), "bit 1 must be 1");
        assert!(!pin.permits(0x96), "bit 7 may not be 1");
    }

    #[test]
    fn secondary_controls_bochs() {
        let caps = VmxCapabilities::decode(&bochs());
        assert!(caps.has_secondary_controls());
        assert_eq!(caps.secondary.allowed1, 0x0297_7fff);
        assert_eq!(caps.secondary.allowed0, 0);
        assert!(caps.has_ept());
        assert!(caps.has_vpid());
        assert!(caps.has_unrestricted_guest());
        assert!(caps.has_vmfunc());
        assert!(caps.has_rdtscp());
        assert!(caps.has_invpcid());
        assert!(caps.has_preemption_timer());
        // Bit 15 (ENCLS exiting) and bit 26 (user wait and pause) are absent.
        assert!(!caps.secondary.may_be_one(15));
        assert!(!caps.secondary.may_be_one(26));
    }

    #[test]
    fn ept_vpid_cap_bochs() {
        // 0x0f01_0633_4141: bits 0, 6, 8, 14, 16, 17, 20, 21, 25, 26, 32, 40-43.
        let ept = EptVpidCap(EPT_VPID_CAP);
        assert!(ept.execute_only());
        assert!(ept.page_walk_length_4());
        assert!(!ept.page_walk_length_5());
        assert!(ept.memory_type_uc());
        assert!(ept.memory_type_wb());
        assert!(ept.pages_2mib());
        assert!(ept.pages_1gib());
        assert!(ept.invept());
        assert!(ept.accessed_dirty_flags());
        assert!(!ept.advanced_violation_info());
        assert!(ept.invept_single_context());
        assert!(ept.invept_all_context());
        assert!(ept.invvpid());
        assert!(ept.invvpid_individual_address());
        assert!(ept.invvpid_single_context());
        assert!(ept.invvpid_all_context());
        assert!(ept.invvpid_single_context_retaining_globals());
    }

    #[test]
    fn vmx_misc_bochs() {
        // 0x6004_01e0: bits 5-8, 18, 29, 30.
        let misc = VmxMisc(MISC);
        assert_eq!(misc.preemption_timer_rate(), 0);
        assert!(misc.stores_efer_lma());
        assert!(misc.activity_hlt());
        assert!(misc.activity_shutdown());
        assert!(misc.activity_wait_for_sipi());
        assert!(!misc.intel_pt_in_vmx());
        assert_eq!(misc.cr3_target_count(), 4);
        assert_eq!(misc.max_msr_list_count(), 512);
        assert!(!misc.smm_monitor_ctl_bit2());
        assert!(misc.vmwrite_any_field());
        assert!(misc.zero_length_injection());
        assert_eq!(misc.mseg_revision(), 0);
    }

    #[test]
    fn vmx_misc_other_values() {
        let misc = VmxMisc((0x1234_5678 << 32) | (3 << 25) | 5);
        assert_eq!(misc.preemption_timer_rate(), 5);
        assert_eq!(misc.max_msr_list_count(), 2048);
        assert_eq!(misc.mseg_revision(), 0x1234_5678);
    }

    #[test]
    fn fixed_bits_apply_and_check() {
        let cr0 = FixedBits::new(0x8000_0021, 0xffff_ffff);
        assert_eq!(cr0.apply(0x0000_0010), 0x8000_0031);
        assert!(cr0.is_valid(0x8000_0031));
        assert!(!cr0.is_valid(0x0000_0031), "PG missing");
        assert!(!cr0.is_valid(0x1_8000_0031), "bit 32 is fixed 0");
        let guest = cr0.relaxed(FixedBits::CR0_PE | FixedBits::CR0_PG);
        assert!(guest.is_valid(0x0000_0030), "real mode is fine for an unrestricted guest");
        assert!(!guest.is_valid(0x0000_0010), "NE is still required");

        let cr4 = FixedBits::new(0x2000, 0x0037_67ff);
        assert_eq!(cr4.apply(0x20), 0x2020);
        assert_eq!(cr4.apply(0x0040_2020), 0x2020, "bit 22 is fixed 0 here");
    }

    #[test]
    fn secondary_and_ept_are_ignored_without_their_enablers() {
        let mut raw = bochs();
        raw.procbased &= !(1 << 63); // "activate secondary controls" may not be 1
        let caps = VmxCapabilities::decode(&raw);
        assert!(!caps.has_secondary_controls());
        assert_eq!(caps.secondary, AllowedBits::NONE);
        assert!(!caps.has_ept());
        assert_eq!(caps.ept_vpid, EptVpidCap(0));
    }

    #[test]
    fn read_with_asks_only_for_existing_msrs() {
        use std::vec::Vec;
        let mut asked = Vec::new();
        let raw = RawVmxMsrs::read_with(|msr| {
            asked.push(msr);
            match msr {
                IA32_FEATURE_CONTROL => FEATURE_CONTROL,
                IA32_VMX_BASIC => BASIC,
                IA32_VMX_TRUE_PINBASED_CTLS => 0x0000_007f_0000_0016,
                IA32_VMX_TRUE_PROCBASED_CTLS => 0xfff9_fffe_0400_6172,
                IA32_VMX_TRUE_EXIT_CTLS => 0x01ff_ffff_0003_6dfb,
                IA32_VMX_TRUE_ENTRY_CTLS => 0x0003_ffff_0000_11fb,
                IA32_VMX_PROCBASED_CTLS2 => PROCBASED2,
                IA32_VMX_EPT_VPID_CAP => EPT_VPID_CAP,
                IA32_VMX_MISC => MISC,
                IA32_VMX_CR0_FIXED0 => 0x8000_0021,
                IA32_VMX_CR0_FIXED1 => 0xffff_ffff,
                IA32_VMX_CR4_FIXED0 => 0x2000,
                IA32_VMX_CR4_FIXED1 => 0x0037_67ff,
                other => panic!("asked for MSR {other:#x}"),
            }
        });
        assert_eq!(raw, bochs());
        assert!(!asked.contains(&IA32_VMX_PINBASED_CTLS), "TRUE MSRs replace the old ones");

        // Without TRUE controls or secondary controls, neither 0x48B nor 0x48C is read.
        let mut asked = Vec::new();
        let raw = RawVmxMsrs::read_with(|msr| {
            asked.push(msr);
            match msr {
                IA32_VMX_BASIC => 0x0000_1000_0000_0001,          // no bit 55
                IA32_VMX_PROCBASED_CTLS => 0x7ff9_fffe_0401_e172, // bit 63 clear
                _ => 0,
            }
        });
        assert_eq!(raw.procbased2, 0);
        assert_eq!(raw.ept_vpid_cap, 0);
        assert!(asked.contains(&IA32_VMX_PINBASED_CTLS));
        assert!(!asked.contains(&IA32_VMX_TRUE_PINBASED_CTLS));
        assert!(!asked.contains(&IA32_VMX_PROCBASED_CTLS2));
        assert!(!asked.contains(&IA32_VMX_EPT_VPID_CAP));
    }

    #[test]
    fn report_mentions_the_essentials() {
        let report = VmxCapabilities::decode(&bochs()).to_string();
        for line in [
            "IA32_FEATURE_CONTROL:  0x5 (ready)",
            "VMCS revision id:      0x4",
            "VMCS region size:      4096 bytes",
            "VMCS memory type:      write-back (6)",
            "TRUE controls:         yes",
            "EPT:                   yes",
            "VPID:                  yes",
            "unrestricted guest:    yes",
            "VMFUNC:                yes",
            "preemption timer:      yes (TSC / 2^0)",
            "EPT page sizes:        4 KiB, 2 MiB, 1 GiB",
            "EPT memory types:      UC, WB",
            "EPT features:          4-level walk, execute-only, accessed/dirty flags",
            "INVEPT:                single-context, all-context",
            "activity states:       active, HLT, shutdown, wait-for-SIPI",
            "CR3-target values:     4",
            "MSR-list maximum:      512",
        ] {
            assert!(report.lines().any(|l| l == line), "missing line {line:?} in:\n{report}");
        }
        assert!(!report.ends_with('\n'));
    }
}
