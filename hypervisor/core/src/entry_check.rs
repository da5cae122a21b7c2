//! A software VM-entry checker: the rules the processor applies to the VMCS
//! before VMLAUNCH/VMRESUME, checked in plain Rust with readable answers.
//!
//! When a VM entry fails, the hardware says little: VMfailValid with an error
//! number (SDM Vol. 3C, 31.4 "VM Instruction Error Numbers") for the controls
//! and host state, or VM exit 33 "VM-entry failure due to invalid guest state"
//! for the guest state, never *which* rule. This module reads a snapshot of
//! the VMCS (a [`VmcsImage`], built with [`VmcsImage::read_with`] from
//! VMREADs) and names the first broken rule with the values involved.
//!
//! The rules are a subset of SDM Vol. 3C, 27.2 "Checks on VMX Controls and
//! Host-State Area" and 27.3.1 "Checks on the Guest State Area"; each
//! [`EntryRule`] cites its subsection. Passing [`check`] does not promise the
//! entry succeeds (many rules are not modelled, e.g. anything about physical
//! addresses beyond 52 bits, the MSR-load lists or the APIC controls); failing
//! it does promise the entry would fail.

use core::fmt;

use crate::caps::{AllowedBits, VmxCapabilities};
use crate::controls::{EntryControls, ExitControls, PrimaryControls, SecondaryControls};
use crate::start_state::Segment;
use crate::vmcs_field::VmcsField;

// ---------------------------------------------------------------------------
// The image
// ---------------------------------------------------------------------------

/// The VMCS fields the checks read, as plain values. Fields the VMCS does not
/// hold (a VMREAD that fails) read as 0.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct VmcsImage {
    /// Pin-based VM-execution controls.
    pub pin: u32,
    /// Primary processor-based VM-execution controls.
    pub primary: u32,
    /// Secondary processor-based VM-execution controls.
    pub secondary: u32,
    /// VM-exit controls.
    pub exit: u32,
    /// VM-entry controls.
    pub entry: u32,
    /// EPT pointer.
    pub eptp: u64,
    /// Virtual-processor identifier.
    pub vpid: u16,
    /// MSR-bitmap address.
    pub msr_bitmap: u64,
    /// VM-entry interruption-information field.
    pub entry_interruption_info: u32,
    /// VM-entry exception error code.
    pub entry_error_code: u32,
    /// VM-entry instruction length.
    pub entry_instruction_length: u32,

    /// Host CR0.
    pub host_cr0: u64,
    /// Host CR3.
    pub host_cr3: u64,
    /// Host CR4.
    pub host_cr4: u64,
    /// Host selectors ES, CS, SS, DS, FS, GS, TR (in that order, like the encodings).
    pub host_selectors: [u16; 7],
    /// Host FS base.
    pub host_fs_base: u64,
    /// Host GS base.
    pub host_gs_base: u64,
    /// Host TR base.
    pub host_tr_base: u64,
    /// Host GDTR base.
    pub host_gdtr_base: u64,
    /// Host IDTR base.
    pub host_idtr_base: u64,
    /// Host IA32_EFER.
    pub host_efer: u64,
    /// Host RIP.
    pub host_rip: u64,
    /// Host RSP.
    pub host_rsp: u64,

    /// Guest CR0.
    pub cr0: u64,
    /// Guest CR3.
    pub cr3: u64,
    /// Guest CR4.
    pub cr4: u64,
    /// Guest DR7.
    pub dr7: u64,
    /// Guest IA32_EFER.
    pub efer: u64,
    /// Guest IA32_PAT.
    pub pat: u64,
    /// Guest RFLAGS.
    pub rflags: u64,
    /// Guest RIP.
    pub rip: u64,
    /// Guest CS.
    pub cs: Segment,
    /// Guest SS.
    pub ss: Segment,
    /// Guest DS.
    pub ds: Segment,
    /// Guest ES.
    pub es: Segment,
    /// Guest FS.
    pub fs: Segment,
    /// Guest GS.
    pub gs: Segment,
    /// Guest TR.
    pub tr: Segment,
    /// Guest LDTR.
    pub ldtr: Segment,
    /// Guest GDTR (base, limit).
    pub gdtr: (u64, u32),
    /// Guest IDTR (base, limit).
    pub idtr: (u64, u32),
    /// Guest activity state.
    pub activity_state: u32,
    /// Guest interruptibility state.
    pub interruptibility: u32,
    /// Guest pending debug exceptions.
    pub pending_debug: u64,
    /// VMCS link pointer.
    pub link_pointer: u64,
}

/// Host selector names in [`VmcsImage::host_selectors`] order.
pub const HOST_SELECTOR_NAMES: [&str; 7] = ["ES", "CS", "SS", "DS", "FS", "GS", "TR"];

impl VmcsImage {
    /// Builds an image from a field reader (in the kernel: VMREAD on the
    /// current VMCS). A field the reader cannot supply reads as 0.
    pub fn read_with(mut read: impl FnMut(VmcsField) -> Option<u64>) -> Self {
        let mut r = |field| read(field).unwrap_or(0);
        let mut segment = |sel, base, limit, ar| Segment {
            selector: r(sel) as u16,
            base: r(base),
            limit: r(limit) as u32,
            access_rights: r(ar) as u32,
        };
        use VmcsField as F;
        let cs = segment(F::GuestCsSelector, F::GuestCsBase, F::GuestCsLimit, F::GuestCsAccessRights);
        let ss = segment(F::GuestSsSelector, F::GuestSsBase, F::GuestSsLimit, F::GuestSsAccessRights);
        let ds = segment(F::GuestDsSelector, F::GuestDsBase, F::GuestDsLimit, F::GuestDsAccessRights);
        let es = segment(F::GuestEsSelector, F::GuestEsBase, F::GuestEsLimit, F::GuestEsAccessRights);
        let fs = segment(F::GuestFsSelector, F::GuestFsBase, F::GuestFsLimit, F::GuestFsAccessRights);
        let gs = segment(F::GuestGsSelector, F::GuestGsBase, F::GuestGsLimit, F::GuestGsAccessRights);
        let tr = segment(F::GuestTrSelector, F::GuestTrBase, F::GuestTrLimit, F::GuestTrAccessRights);
        let ldtr = segment(F::GuestLdtrSelector, F::GuestLdtrBase, F::GuestLdtrLimit, F::GuestLdtrAccessRights);
        let host_fields = [
            F::HostEsSelector,
            F::HostCsSelector,
            F::HostSsSelector,
            F::HostDsSelector,
            F::HostFsSelector,
            F::HostGsSelector,
            F::HostTrSelector,
        ];
        let mut host_selectors = [0u16; 7];
        for (slot, field) in host_selectors.iter_mut().zip(host_fields) {
            *slot = r(field) as u16;
        }
        Self {
            pin: r(F::PinBasedControls) as u32,
            primary: r(F::PrimaryProcessorControls) as u32,
            secondary: r(F::SecondaryProcessorControls) as u32,
            exit: r(F::ExitControls) as u32,
            entry: r(F::EntryControls) as u32,
            eptp: r(F::EptPointer),
            vpid: r(F::VirtualProcessorId) as u16,
            msr_bitmap: r(F::MsrBitmap),
            entry_interruption_info: r(F::EntryInterruptionInfo) as u32,
            entry_error_code: r(F::EntryExceptionErrorCode) as u32,
            entry_instruction_length: r(F::EntryInstructionLength) as u32,
            host_cr0: r(F::HostCr0),
            host_cr3: r(F::HostCr3),
            host_cr4: r(F::HostCr4),
            host_selectors,
            host_fs_base: r(F::HostFsBase),
            host_gs_base: r(F::HostGsBase),
            host_tr_base: r(F::HostTrBase),
            host_gdtr_base: r(F::HostGdtrBase),
            host_idtr_base: r(F::HostIdtrBase),
            host_efer: r(F::HostIa32Efer),
            host_rip: r(F::HostRip),
            host_rsp: r(F::HostRsp),
            cr0: r(F::GuestCr0),
            cr3: r(F::GuestCr3),
            cr4: r(F::GuestCr4),
            dr7: r(F::GuestDr7),
            efer: r(F::GuestIa32Efer),
            pat: r(F::GuestIa32Pat),
            rflags: r(F::GuestRflags),
            rip: r(F::GuestRip),
            cs,
            ss,
            ds,
            es,
            fs,
            gs,
            tr,
            ldtr,
            gdtr: (r(F::GuestGdtrBase), r(F::GuestGdtrLimit) as u32),
            idtr: (r(F::GuestIdtrBase), r(F::GuestIdtrLimit) as u32),
            activity_state: r(F::GuestActivityState) as u32,
            interruptibility: r(F::GuestInterruptibilityState) as u32,
            pending_debug: r(F::GuestPendingDebugExceptions),
            link_pointer: r(F::VmcsLinkPointer),
        }
    }

    fn secondary_active(&self) -> bool {
        self.primary & PrimaryControls::ACTIVATE_SECONDARY_CONTROLS.bits() != 0
    }

    /// A secondary control, counted only when "activate secondary controls" is 1.
    fn has_secondary(&self, control: SecondaryControls) -> bool {
        self.secondary_active() && self.secondary & control.bits() != 0
    }

    fn has_entry(&self, control: EntryControls) -> bool {
        self.entry & control.bits() != 0
    }

    fn has_exit(&self, control: ExitControls) -> bool {
        self.exit & control.bits() != 0
    }

    fn ia32e_guest(&self) -> bool {
        self.has_entry(EntryControls::IA32E_MODE_GUEST)
    }

    fn unrestricted(&self) -> bool {
        self.has_secondary(SecondaryControls::UNRESTRICTED_GUEST)
    }
}

// ---------------------------------------------------------------------------
// Sections and rules
// ---------------------------------------------------------------------------

/// The SDM subsection a rule comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Section {
    /// 27.2.1.1.
    ExecutionControls,
    /// 27.2.1.2.
    ExitControls,
    /// 27.2.1.3.
    EntryControls,
    /// 27.2.2.
    HostControlRegisters,
    /// 27.2.3.
    HostSegments,
    /// 27.2.4.
    HostAddressSpaceSize,
    /// 27.3.1.1.
    GuestControlRegisters,
    /// 27.3.1.2.
    GuestSegments,
    /// 27.3.1.4.
    GuestRipRflags,
    /// 27.3.1.5.
    GuestNonRegisterState,
}

impl Section {
    /// Number and title, e.g. `27.2.3 "Checks on Host Segment and Descriptor-Table Registers"`.
    pub const fn citation(self) -> &'static str {
        match self {
            Self::ExecutionControls => "27.2.1.1 \"VM-Execution Control Fields\"",
            Self::ExitControls => "27.2.1.2 \"VM-Exit Control Fields\"",
            Self::EntryControls => "27.2.1.3 \"VM-Entry Control Fields\"",
            Self::HostControlRegisters => "27.2.2 \"Checks on Host Control Registers, MSRs, and SSP\"",
            Self::HostSegments => "27.2.3 \"Checks on Host Segment and Descriptor-Table Registers\"",
            Self::HostAddressSpaceSize => "27.2.4 \"Checks Related to Address-Space Size\"",
            Self::GuestControlRegisters => "27.3.1.1 \"Checks on Guest Control Registers, Debug Registers, and MSRs\"",
            Self::GuestSegments => "27.3.1.2 \"Checks on Guest Segment Registers\"",
            Self::GuestRipRflags => "27.3.1.4 \"Checks on Guest RIP, RFLAGS, and SSP\"",
            Self::GuestNonRegisterState => "27.3.1.5 \"Checks on Guest Non-Register State\"",
        }
    }
}

macro_rules! entry_rules {
    ($( $(#[$doc:meta])* $variant:ident = $id:literal, $name:literal, $section:ident, $text:literal; )*) => {
        /// One VM-entry rule; the discriminant is its stable id (1..=127, 0 means "none").
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        #[repr(u8)]
        pub enum EntryRule {
            $( $(#[$doc])* $variant = $id, )*
        }

        impl EntryRule {
            /// Every rule, in id order.
            pub const ALL: &'static [EntryRule] = &[ $( EntryRule::$variant, )* ];

            /// The rule with this id.
            pub const fn from_id(id: u8) -> Option<Self> {
                match id {
                    $( $id => Some(EntryRule::$variant), )*
                    _ => None,
                }
            }

            /// A short kebab-case name for command lines, e.g. `rflags-reserved`.
            pub const fn name(self) -> &'static str {
                match self { $( EntryRule::$variant => $name, )* }
            }

            /// The SDM subsection.
            pub const fn section(self) -> Section {
                match self { $( EntryRule::$variant => Section::$section, )* }
            }

            /// The rule in words.
            pub const fn text(self) -> &'static str {
                match self { $( EntryRule::$variant => $text, )* }
            }
        }
    };
}

entry_rules! {
    /// Pin-based controls obey IA32_VMX_(TRUE_)PINBASED_CTLS.
    PinControls = 1, "pin-controls", ExecutionControls,
        "pin-based VM-execution controls must respect the allowed 0- and 1-settings";
    /// Primary processor-based controls obey their capability MSR.
    PrimaryControls = 2, "primary-controls", ExecutionControls,
        "primary processor-based VM-execution controls must respect the allowed 0- and 1-settings";
    /// Secondary controls (when activated) obey IA32_VMX_PROCBASED_CTLS2.
    SecondaryControls = 3, "secondary-controls", ExecutionControls,
        "secondary processor-based VM-execution controls (activated) must respect the allowed 1-settings";
    /// Exit controls obey their capability MSR.
    ExitControls = 4, "exit-controls", ExitControls,
        "VM-exit controls must respect the allowed 0- and 1-settings";
    /// Entry controls obey their capability MSR.
    EntryControls = 5, "entry-controls", EntryControls,
        "VM-entry controls must respect the allowed 0- and 1-settings";
    /// "Unrestricted guest" needs "enable EPT".
    UnrestrictedNeedsEpt = 6, "unrestricted-needs-ept", ExecutionControls,
        "\"unrestricted guest\" = 1 requires \"enable EPT\" = 1";
    /// "Enable VPID" needs a non-zero VPID.
    VpidZero = 7, "vpid-zero", ExecutionControls,
        "\"enable VPID\" = 1 requires VPID != 0";
    /// EPTP bits 2:0 name a supported memory type.
    EptpMemoryType = 8, "eptp-memory-type", ExecutionControls,
        "EPTP bits 2:0 (memory type) must be UC or WB as IA32_VMX_EPT_VPID_CAP allows";
    /// EPTP bits 5:3 name a supported page-walk length.
    EptpWalkLength = 9, "eptp-walk-length", ExecutionControls,
        "EPTP bits 5:3 (page-walk length - 1) must be 3 (or 4 if 5-level EPT is supported)";
    /// EPTP reserved bits are 0.
    EptpReserved = 10, "eptp-reserved", ExecutionControls,
        "EPTP bits 11:7 and 63:52 must be 0, and bit 6 unless EPT A/D flags are supported";
    /// The MSR-bitmap address is 4 KiB aligned.
    MsrBitmapAlignment = 11, "msr-bitmap-alignment", ExecutionControls,
        "\"use MSR bitmaps\" = 1 requires a 4-KByte aligned MSR-bitmap address";
    /// Host CR0 obeys IA32_VMX_CR0_FIXED0/1.
    HostCr0Fixed = 12, "host-cr0-fixed", HostControlRegisters,
        "host CR0 must obey IA32_VMX_CR0_FIXED0/FIXED1";
    /// Host CR4 obeys IA32_VMX_CR4_FIXED0/1.
    HostCr4Fixed = 13, "host-cr4-fixed", HostControlRegisters,
        "host CR4 must obey IA32_VMX_CR4_FIXED0/FIXED1";
    /// Host selectors have RPL = 0 and TI = 0.
    HostSelectorRplTi = 14, "host-selector-rpl-ti", HostSegments,
        "host selector fields must have RPL = 0 and TI = 0";
    /// Host CS is not null.
    HostCsNull = 15, "host-cs-null", HostSegments,
        "host CS selector must not be 0";
    /// Host TR is not null.
    HostTrNull = 16, "host-tr-null", HostSegments,
        "host TR selector must not be 0";
    /// "Host address-space size" matches the host's IA-32e mode.
    HostAddressSpaceSize = 17, "host-address-space-size", HostAddressSpaceSize,
        "a host in IA-32e mode (EFER.LMA = 1) requires \"host address-space size\" = 1, which requires host CR4.PAE = 1";
    /// Without "host address-space size", no IA-32e mode guest.
    Ia32eGuestNeedsHost64 = 18, "ia32e-guest-needs-64-bit-host", HostAddressSpaceSize,
        "\"IA-32e mode guest\" = 1 requires \"host address-space size\" = 1";
    /// Guest CR0 obeys the fixed bits (PE/PG exempt under unrestricted guest).
    GuestCr0Fixed = 19, "guest-cr0-fixed", GuestControlRegisters,
        "guest CR0 must obey IA32_VMX_CR0_FIXED0/FIXED1 (PE and PG exempt under \"unrestricted guest\")";
    /// Guest CR4 obeys the fixed bits.
    GuestCr4Fixed = 20, "guest-cr4-fixed", GuestControlRegisters,
        "guest CR4 must obey IA32_VMX_CR4_FIXED0/FIXED1";
    /// CR0.PG = 1 needs CR0.PE = 1.
    GuestPgWithoutPe = 21, "guest-pg-without-pe", GuestControlRegisters,
        "guest CR0.PG=1 requires CR0.PE=1";
    /// An IA-32e mode guest needs CR0.PG = 1 and CR4.PAE = 1.
    Ia32eGuestPaging = 22, "ia32e-guest-paging", GuestControlRegisters,
        "\"IA-32e mode guest\" = 1 requires guest CR0.PG=1 and CR4.PAE=1";
    /// Guest EFER.LMA/LME agree with the entry control and CR0.PG.
    GuestEfer = 23, "guest-efer", GuestControlRegisters,
        "with \"load IA32_EFER\", guest EFER.LMA must equal \"IA-32e mode guest\" and, if CR0.PG=1, EFER.LME";
    /// Guest IA32_PAT holds only valid memory types.
    GuestPat = 24, "guest-pat", GuestControlRegisters,
        "with \"load IA32_PAT\", every byte of guest IA32_PAT must be 0, 1, 4, 5, 6 or 7";
    /// Guest DR7 bits 63:32 are 0.
    GuestDr7 = 25, "guest-dr7", GuestControlRegisters,
        "with \"load debug controls\", guest DR7 bits 63:32 must be 0";
    /// RFLAGS bit 1 is 1 and the reserved bits are 0.
    RflagsReserved = 26, "rflags-reserved", GuestRipRflags,
        "guest RFLAGS bit 1 must be 1 and bits 63:22, 15, 5, 3 must be 0";
    /// RFLAGS.VM = 0 for an IA-32e guest or with CR0.PE = 0.
    RflagsVm = 27, "rflags-vm", GuestRipRflags,
        "guest RFLAGS.VM must be 0 if \"IA-32e mode guest\" = 1 or CR0.PE = 0";
    /// RIP bits 63:32 are 0 outside 64-bit mode.
    GuestRipHigh = 28, "guest-rip-high", GuestRipRflags,
        "guest RIP bits 63:32 must be 0 unless \"IA-32e mode guest\" = 1 and CS.L = 1";
    /// CS type, S and P.
    CsAccessRights = 29, "cs-access-rights", GuestSegments,
        "guest CS must be a present code segment (S=1, type 9, 11, 13 or 15; type 3 only under \"unrestricted guest\")";
    /// CS.DPL against SS.DPL.
    CsDpl = 30, "cs-dpl", GuestSegments,
        "guest CS.DPL must equal SS.DPL (non-conforming), be <= SS.DPL (conforming) or be 0 (type 3)";
    /// CS.L = 1 needs CS.D = 0 in an IA-32e guest.
    CsLongModeDb = 31, "cs-long-mode-db", GuestSegments,
        "for an IA-32e mode guest with CS.L = 1, CS.D/B must be 0";
    /// SS, if usable: type 3 or 7, S = 1, P = 1.
    SsAccessRights = 32, "ss-access-rights", GuestSegments,
        "guest SS, if usable, must be a present writable data segment (S=1, type 3 or 7)";
    /// SS.DPL = SS.RPL without unrestricted guest; 0 with CR0.PE = 0.
    SsDpl = 33, "ss-dpl", GuestSegments,
        "guest SS.DPL must equal the SS selector's RPL (without \"unrestricted guest\") and be 0 if CR0.PE = 0";
    /// DS/ES/FS/GS, if usable: accessed, S = 1, P = 1, readable if code.
    DataSegmentAccessRights = 34, "data-segment-access-rights", GuestSegments,
        "guest DS, ES, FS, GS, if usable, must be present, S=1, accessed, and readable if code";
    /// TR: busy TSS, S = 0, P = 1, usable, TI = 0.
    TrAccessRights = 35, "tr-access-rights", GuestSegments,
        "guest TR must be usable and a present busy TSS (S=0, type 11, or 3 outside IA-32e mode) with selector TI = 0";
    /// LDTR, if usable: type 2, S = 0, P = 1, TI = 0.
    LdtrAccessRights = 36, "ldtr-access-rights", GuestSegments,
        "guest LDTR, if usable, must be a present LDT (S=0, type 2) with selector TI = 0";
    /// Limit bits against G.
    SegmentLimitGranularity = 37, "segment-limit-granularity", GuestSegments,
        "a usable guest segment's limit must match G (limit[11:0] not all ones needs G=0; limit[31:20] non-zero needs G=1)";
    /// Reserved access-rights bits are 0.
    AccessRightsReserved = 38, "access-rights-reserved", GuestSegments,
        "a usable guest segment's access-rights bits 11:8 and 31:17 must be 0";
    /// Activity state 0-3 and supported.
    ActivityState = 39, "activity-state", GuestNonRegisterState,
        "guest activity state must be 0 (active) or a state IA32_VMX_MISC reports (1 HLT, 2 shutdown, 3 wait-for-SIPI)";
    /// HLT needs SS.DPL = 0.
    HltNeedsCpl0 = 40, "hlt-needs-cpl0", GuestNonRegisterState,
        "guest activity state HLT requires SS.DPL = 0";
    /// Interruptibility reserved bits; STI and MOV-SS blocking not both.
    Interruptibility = 41, "interruptibility", GuestNonRegisterState,
        "guest interruptibility bits 31:5 must be 0, and blocking by STI and by MOV SS not both 1";
    /// The VMCS link pointer is all ones.
    LinkPointer = 42, "link-pointer", GuestNonRegisterState,
        "the VMCS link pointer must be FFFFFFFF_FFFFFFFFh (this hypervisor uses no shadow VMCS)";
    /// Event injection: reserved bits and types.
    InterruptionInfo = 43, "interruption-info", EntryControls,
        "a valid VM-entry interruption-information field must have bits 30:12 = 0 and a type other than 1 (reserved)";
    /// Event injection: error code consistency.
    InterruptionErrorCode = 44, "interruption-error-code", EntryControls,
        "\"deliver error code\" must be 1 exactly for hardware exceptions 8, 10-14, 17, 21 with CR0.PE=1, and the error code bits 31:16 must be 0";
}

impl EntryRule {
    /// The rules the kernel knows how to break on purpose (`--break-entry`):
    /// each one a rule Bochs 2.7 enforces, so the hardware's answer can be
    /// seen next to the software diagnosis.
    pub const BREAKABLE: &'static [EntryRule] = &[
        EntryRule::VpidZero,
        EntryRule::HostSelectorRplTi,
        EntryRule::GuestPgWithoutPe,
        EntryRule::RflagsReserved,
        EntryRule::CsLongModeDb,
        EntryRule::TrAccessRights,
        EntryRule::ActivityState,
        EntryRule::Interruptibility,
        EntryRule::LinkPointer,
    ];

    /// The stable id (1..=127).
    pub const fn id(self) -> u8 {
        self as u8
    }

    /// A rule by id (`26`) or name (`rflags-reserved`).
    pub fn parse(text: &str) -> Option<Self> {
        match text.parse::<u8>() {
            Ok(id) => Self::from_id(id),
            Err(_) => Self::ALL.iter().copied().find(|rule| rule.name().eq_ignore_ascii_case(text)),
        }
    }

    /// Whether the kernel has a breaker for this rule.
    pub fn breakable(self) -> bool {
        Self::BREAKABLE.contains(&self)
    }
}

impl fmt::Display for EntryRule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.text(), self.section().citation())
    }
}

// ---------------------------------------------------------------------------
// Violations
// ---------------------------------------------------------------------------

/// A broken rule with up to three named values that break it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EntryRuleViolation {
    /// The rule.
    pub rule: EntryRule,
    /// (name, value) pairs; unused slots have an empty name.
    pub values: [(&'static str, u64); 3],
}

impl EntryRuleViolation {
    fn new(rule: EntryRule, values: &[(&'static str, u64)]) -> Self {
        let mut slots = [("", 0); 3];
        for (slot, value) in slots.iter_mut().zip(values) {
            *slot = *value;
        }
        Self { rule, values: slots }
    }
}

impl fmt::Display for EntryRuleViolation {
    /// e.g. `guest CR0.PG=1 requires CR0.PE=1 (27.3.1.1 "Checks on Guest
    /// Control Registers, Debug Registers, and MSRs"): CR0 = 0x80000010`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.rule)?;
        let mut first = true;
        for (name, value) in self.values.iter().filter(|(name, _)| !name.is_empty()) {
            f.write_str(if first { ": " } else { ", " })?;
            first = false;
            write!(f, "{name} = {value:#x}")?;
        }
        Ok(())
    }
}

// ---------------------------------------------------------------------------
// The checks
// ---------------------------------------------------------------------------

const CR0_PE: u64 = 1 << 0;
const CR0_PG: u64 = 1 << 31;
const CR4_PAE: u64 = 1 << 5;
const EFER_LME: u64 = 1 << 8;
const EFER_LMA: u64 = 1 << 10;
const RFLAGS_VM: u64 = 1 << 17;
/// RFLAGS bits 63:22, 15, 5 and 3.
const RFLAGS_RESERVED: u64 = !((1 << 22) - 1) | (1 << 15) | (1 << 5) | (1 << 3);

/// Access-rights fields (SDM Vol. 3C, 25.4.1 "Guest Register State").
const AR_UNUSABLE: u32 = 1 << 16;
const fn ar_type(ar: u32) -> u32 {
    ar & 0xF
}
const fn ar_s(ar: u32) -> bool {
    ar & (1 << 4) != 0
}
const fn ar_dpl(ar: u32) -> u32 {
    (ar >> 5) & 3
}
const fn ar_present(ar: u32) -> bool {
    ar & (1 << 7) != 0
}
const fn ar_l(ar: u32) -> bool {
    ar & (1 << 13) != 0
}
const fn ar_db(ar: u32) -> bool {
    ar & (1 << 14) != 0
}
const fn ar_g(ar: u32) -> bool {
    ar & (1 << 15) != 0
}
const fn usable(segment: &Segment) -> bool {
    segment.access_rights & AR_UNUSABLE == 0
}

macro_rules! ensure {
    ($cond:expr, $rule:ident, $( $name:literal => $value:expr ),* $(,)?) => {
        if !$cond {
            return Err(EntryRuleViolation::new(EntryRule::$rule, &[ $( ($name, $value as u64) ),* ]));
        }
    };
}

fn control_word(value: u32, allowed: AllowedBits) -> bool {
    allowed.permits(value)
}

/// Checks `image` against the rules, in the order the SDM lists them:
/// controls, host state, guest state. Returns the first violation.
pub fn check(image: &VmcsImage, caps: &VmxCapabilities) -> Result<(), EntryRuleViolation> {
    check_controls(image, caps)?;
    check_host(image, caps)?;
    check_guest_registers(image, caps)?;
    check_guest_segments(image)?;
    check_guest_non_register(image, caps)
}

/// 27.2.1 "Checks on VMX Controls".
fn check_controls(i: &VmcsImage, caps: &VmxCapabilities) -> Result<(), EntryRuleViolation> {
    ensure!(control_word(i.pin, caps.pin_based), PinControls,
        "pin-based controls" => i.pin, "allowed-0" => caps.pin_based.allowed0, "allowed-1" => caps.pin_based.allowed1);
    ensure!(control_word(i.primary, caps.primary), PrimaryControls,
        "primary controls" => i.primary, "allowed-0" => caps.primary.allowed0, "allowed-1" => caps.primary.allowed1);
    if i.secondary_active() {
        ensure!(control_word(i.secondary, caps.secondary), SecondaryControls,
            "secondary controls" => i.secondary, "allowed-1" => caps.secondary.allowed1);
    }
    ensure!(control_word(i.exit, caps.exit), ExitControls,
        "exit controls" => i.exit, "allowed-0" => caps.exit.allowed0, "allowed-1" => caps.exit.allowed1);
    ensure!(control_word(i.entry, caps.entry), EntryControls,
        "entry controls" => i.entry, "allowed-0" => caps.entry.allowed0, "allowed-1" => caps.entry.allowed1);
    if i.unrestricted() {
        ensure!(i.has_secondary(SecondaryControls::ENABLE_EPT), UnrestrictedNeedsEpt, "secondary controls" => i.secondary);
    }
    if i.has_secondary(SecondaryControls::ENABLE_VPID) {
        ensure!(i.vpid != 0, VpidZero, "VPID" => i.vpid);
    }
    if i.has_secondary(SecondaryControls::ENABLE_EPT) {
        let memory_type = i.eptp & 7;
        let type_ok = (memory_type == 0 && caps.ept_vpid.memory_type_uc())
            || (memory_type == 6 && caps.ept_vpid.memory_type_wb());
        ensure!(type_ok, EptpMemoryType, "EPTP" => i.eptp, "memory type" => memory_type);
        let walk = (i.eptp >> 3) & 7;
        let walk_ok =
            (walk == 3 && caps.ept_vpid.page_walk_length_4()) || (walk == 4 && caps.ept_vpid.page_walk_length_5());
        ensure!(walk_ok, EptpWalkLength, "EPTP" => i.eptp, "bits 5:3" => walk);
        let mut reserved = (0x1F << 7) | !((1u64 << 52) - 1);
        if !caps.ept_vpid.accessed_dirty_flags() {
            reserved |= 1 << 6;
        }
        ensure!(i.eptp & reserved == 0, EptpReserved, "EPTP" => i.eptp, "reserved bits set" => i.eptp & reserved);
    }
    if i.primary & PrimaryControls::USE_MSR_BITMAPS.bits() != 0 {
        ensure!(i.msr_bitmap & 0xFFF == 0, MsrBitmapAlignment, "MSR-bitmap address" => i.msr_bitmap);
    }
    check_event_injection(i)
}

/// 27.2.1.3: the VM-entry interruption-information field.
fn check_event_injection(i: &VmcsImage) -> Result<(), EntryRuleViolation> {
    let info = i.entry_interruption_info;
    if info & (1 << 31) == 0 {
        return Ok(());
    }
    let kind = (info >> 8) & 7;
    let vector = info & 0xFF;
    let mtf = i.primary & PrimaryControls::MONITOR_TRAP_FLAG.bits() != 0;
    let kind_ok = kind != 1 && (kind != 7 || (vector == 0 && mtf)) && (kind != 2 || vector == 2);
    ensure!(info & 0x7FFF_F000 == 0 && kind_ok, InterruptionInfo, "interruption info" => info);
    let delivers = info & (1 << 11) != 0;
    let needs_code = kind == 3 && (i.cr0 & CR0_PE != 0) && matches!(vector, 8 | 10..=14 | 17 | 21);
    let code_ok = delivers == needs_code && (!delivers || i.entry_error_code & 0xFFFF_0000 == 0);
    ensure!(code_ok, InterruptionErrorCode,
        "interruption info" => info, "error code" => i.entry_error_code, "CR0" => i.cr0);
    Ok(())
}

/// 27.2.2–27.2.4: host state.
fn check_host(i: &VmcsImage, caps: &VmxCapabilities) -> Result<(), EntryRuleViolation> {
    ensure!(caps.cr0.is_valid(i.host_cr0), HostCr0Fixed,
        "host CR0" => i.host_cr0, "FIXED0" => caps.cr0.fixed0, "FIXED1" => caps.cr0.fixed1);
    ensure!(caps.cr4.is_valid(i.host_cr4), HostCr4Fixed,
        "host CR4" => i.host_cr4, "FIXED0" => caps.cr4.fixed0, "FIXED1" => caps.cr4.fixed1);
    for (index, selector) in i.host_selectors.iter().enumerate() {
        ensure!(selector & 7 == 0, HostSelectorRplTi, "selector index (ES CS SS DS FS GS TR)" => index, "selector" => *selector);
    }
    ensure!(i.host_selectors[1] != 0, HostCsNull, "host CS" => i.host_selectors[1]);
    ensure!(i.host_selectors[6] != 0, HostTrNull, "host TR" => i.host_selectors[6]);
    let host64 = i.has_exit(ExitControls::HOST_ADDRESS_SPACE_SIZE);
    let host_in_ia32e = i.host_efer & EFER_LMA != 0;
    ensure!((!host_in_ia32e || host64) && (!host64 || i.host_cr4 & CR4_PAE != 0), HostAddressSpaceSize,
        "exit controls" => i.exit, "host EFER" => i.host_efer, "host CR4" => i.host_cr4);
    ensure!(host64 || !i.ia32e_guest(), Ia32eGuestNeedsHost64, "exit controls" => i.exit, "entry controls" => i.entry);
    Ok(())
}

/// 27.3.1.1 and 27.3.1.4: guest control registers, MSRs, RIP and RFLAGS.
fn check_guest_registers(i: &VmcsImage, caps: &VmxCapabilities) -> Result<(), EntryRuleViolation> {
    let cr0_rules = if i.unrestricted() { caps.cr0.relaxed(CR0_PE | CR0_PG) } else { caps.cr0 };
    ensure!(cr0_rules.is_valid(i.cr0), GuestCr0Fixed,
        "CR0" => i.cr0, "FIXED0 (as applied)" => cr0_rules.fixed0, "FIXED1" => cr0_rules.fixed1);
    ensure!(i.cr0 & CR0_PG == 0 || i.cr0 & CR0_PE != 0, GuestPgWithoutPe, "CR0" => i.cr0);
    ensure!(caps.cr4.is_valid(i.cr4), GuestCr4Fixed,
        "CR4" => i.cr4, "FIXED0" => caps.cr4.fixed0, "FIXED1" => caps.cr4.fixed1);
    if i.ia32e_guest() {
        ensure!(i.cr0 & CR0_PG != 0 && i.cr4 & CR4_PAE != 0, Ia32eGuestPaging, "CR0" => i.cr0, "CR4" => i.cr4);
    }
    if i.has_entry(EntryControls::LOAD_DEBUG_CONTROLS) {
        ensure!(i.dr7 >> 32 == 0, GuestDr7, "DR7" => i.dr7);
    }
    if i.has_entry(EntryControls::LOAD_IA32_PAT) {
        let valid = (0..8).all(|n| matches!((i.pat >> (8 * n)) & 0xFF, 0 | 1 | 4 | 5 | 6 | 7));
        ensure!(valid, GuestPat, "IA32_PAT" => i.pat);
    }
    if i.has_entry(EntryControls::LOAD_IA32_EFER) {
        let lma = i.efer & EFER_LMA != 0;
        let lme = i.efer & EFER_LME != 0;
        let ok = lma == i.ia32e_guest() && (i.cr0 & CR0_PG == 0 || lma == lme);
        ensure!(ok, GuestEfer, "EFER" => i.efer, "entry controls" => i.entry, "CR0" => i.cr0);
    }
    ensure!(i.rflags & RFLAGS_RESERVED == 0 && i.rflags & 2 != 0, RflagsReserved, "RFLAGS" => i.rflags);
    if i.ia32e_guest() || i.cr0 & CR0_PE == 0 {
        ensure!(i.rflags & RFLAGS_VM == 0, RflagsVm, "RFLAGS" => i.rflags, "CR0" => i.cr0, "entry controls" => i.entry);
    }
    if !(i.ia32e_guest() && ar_l(i.cs.access_rights)) {
        ensure!(i.rip >> 32 == 0, GuestRipHigh, "RIP" => i.rip, "CS access rights" => i.cs.access_rights);
    }
    Ok(())
}

/// 27.3.1.2 "Checks on Guest Segment Registers" (the protected-mode and
/// IA-32e cases, i.e. RFLAGS.VM = 0; virtual-8086 guests are not modelled).
fn check_guest_segments(i: &VmcsImage) -> Result<(), EntryRuleViolation> {
    let unrestricted = i.unrestricted();
    let cs = i.cs.access_rights;
    let ss = i.ss.access_rights;
    let cs_type = ar_type(cs);
    let cs_type_ok = matches!(cs_type, 9 | 11 | 13 | 15) || (cs_type == 3 && unrestricted);
    ensure!(cs_type_ok && ar_s(cs) && ar_present(cs) && cs & AR_UNUSABLE == 0, CsAccessRights, "CS access rights" => cs);
    let dpl_ok = match cs_type {
        3 => ar_dpl(cs) == 0,
        9 | 11 => ar_dpl(cs) == ar_dpl(ss),
        _ => ar_dpl(cs) <= ar_dpl(ss),
    };
    ensure!(dpl_ok, CsDpl, "CS access rights" => cs, "SS access rights" => ss);
    if i.ia32e_guest() && ar_l(cs) {
        ensure!(!ar_db(cs), CsLongModeDb, "CS access rights" => cs);
    }
    if usable(&i.ss) {
        ensure!(matches!(ar_type(ss), 3 | 7) && ar_s(ss) && ar_present(ss), SsAccessRights, "SS access rights" => ss);
    }
    let rpl_ok = unrestricted || u32::from(i.ss.selector & 3) == ar_dpl(ss);
    let real_ok = i.cr0 & CR0_PE != 0 || ar_dpl(ss) == 0;
    ensure!(rpl_ok && real_ok, SsDpl, "SS selector" => i.ss.selector, "SS access rights" => ss, "CR0" => i.cr0);
    for segment in [&i.ds, &i.es, &i.fs, &i.gs] {
        if usable(segment) {
            let ar = segment.access_rights;
            let code_unreadable = ar & 8 != 0 && ar & 2 == 0;
            let ok = ar & 1 != 0 && ar_s(ar) && ar_present(ar) && !code_unreadable;
            ensure!(ok, DataSegmentAccessRights, "selector" => segment.selector, "access rights" => ar);
        }
    }
    let tr = i.tr.access_rights;
    let tr_type_ok = ar_type(tr) == 11 || (ar_type(tr) == 3 && !i.ia32e_guest());
    let tr_ok = tr_type_ok && !ar_s(tr) && ar_present(tr) && tr & AR_UNUSABLE == 0 && i.tr.selector & 4 == 0;
    ensure!(tr_ok, TrAccessRights, "TR selector" => i.tr.selector, "TR access rights" => tr);
    if usable(&i.ldtr) {
        let ar = i.ldtr.access_rights;
        let ok = ar_type(ar) == 2 && !ar_s(ar) && ar_present(ar) && i.ldtr.selector & 4 == 0;
        ensure!(ok, LdtrAccessRights, "LDTR selector" => i.ldtr.selector, "LDTR access rights" => ar);
    }
    // CS and TR are always usable (checked above); the others only when marked usable.
    for segment in [&i.cs, &i.ss, &i.ds, &i.es, &i.fs, &i.gs, &i.tr, &i.ldtr] {
        if !usable(segment) {
            continue;
        }
        let ar = segment.access_rights;
        let limit = segment.limit;
        let g_ok = (limit & 0xFFF == 0xFFF || !ar_g(ar)) && (limit >> 20 == 0 || ar_g(ar));
        ensure!(g_ok, SegmentLimitGranularity, "selector" => segment.selector, "limit" => limit, "access rights" => ar);
        ensure!(ar & 0xFFFE_0F00 == 0, AccessRightsReserved, "selector" => segment.selector, "access rights" => ar);
    }
    Ok(())
}

/// 27.3.1.5 "Checks on Guest Non-Register State".
fn check_guest_non_register(i: &VmcsImage, caps: &VmxCapabilities) -> Result<(), EntryRuleViolation> {
    let state_ok = match i.activity_state {
        0 => true,
        1 => caps.misc.activity_hlt(),
        2 => caps.misc.activity_shutdown(),
        3 => caps.misc.activity_wait_for_sipi(),
        _ => false,
    };
    ensure!(state_ok, ActivityState, "activity state" => i.activity_state, "IA32_VMX_MISC" => caps.misc.0);
    if i.activity_state == 1 {
        ensure!(ar_dpl(i.ss.access_rights) == 0, HltNeedsCpl0, "SS access rights" => i.ss.access_rights);
    }
    let blocking = i.interruptibility;
    ensure!(blocking & !0x1F == 0 && blocking & 3 != 3, Interruptibility, "interruptibility" => blocking);
    ensure!(i.link_pointer == u64::MAX, LinkPointer, "VMCS link pointer" => i.link_pointer);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::caps::RawVmxMsrs;
    use crate::config::StartMode;
    use crate::controls::PinBasedControls;
    use crate::start_state::start_state;
    use std::string::ToString;

    /// Bochs' `corei7_icelake_u` capability MSRs (see the tests of caps.rs).
    fn bochs_caps() -> VmxCapabilities {
        VmxCapabilities::decode(&RawVmxMsrs {
            feature_control: 0x5,
            basic: 0x00d8_1000_0000_0004,
            pinbased: 0x0000_007f_0000_0016,
            procbased: 0xfff9_fffe_0400_6172,
            procbased2: 0x0297_7fff << 32,
            exit: 0x01ff_ffff_0003_6dfb,
            entry: 0x0003_ffff_0000_11fb,
            misc: 0x6004_01e0,
            cr0_fixed0: 0x8000_0021,
            cr0_fixed1: 0xffff_ffff,
            cr4_fixed0: 0x2000,
            cr4_fixed1: 0x0037_67ff,
            ept_vpid_cap: 0x0000_0f01_0633_4141,
        })
    }

    /// What setup.rs writes for a long-mode guest (controls as chosen by
    /// `choose_controls` for these capabilities).
    fn valid_image(caps: &VmxCapabilities) -> VmcsImage {
        let start = start_state(StartMode::Long, 0x40_0000, 0x7F_F000, 0x1000, caps.cr0, caps.cr4, true).unwrap();
        let pin = PinBasedControls::adjust(
            PinBasedControls::EXTERNAL_INTERRUPT_EXITING | PinBasedControls::NMI_EXITING,
            PinBasedControls::ACTIVATE_PREEMPTION_TIMER,
            caps.pin_based,
        )
        .unwrap();
        let primary = PrimaryControls::adjust(
            PrimaryControls::HLT_EXITING
                | PrimaryControls::UNCONDITIONAL_IO_EXITING
                | PrimaryControls::USE_MSR_BITMAPS
                | PrimaryControls::ACTIVATE_SECONDARY_CONTROLS,
            PrimaryControls::empty(),
            caps.primary,
        )
        .unwrap();
        let secondary = SecondaryControls::adjust(
            SecondaryControls::ENABLE_EPT,
            SecondaryControls::ENABLE_VPID | SecondaryControls::UNRESTRICTED_GUEST,
            caps.secondary,
        )
        .unwrap();
        let exit = ExitControls::adjust(
            ExitControls::HOST_ADDRESS_SPACE_SIZE | ExitControls::SAVE_IA32_EFER | ExitControls::LOAD_IA32_EFER,
            ExitControls::SAVE_IA32_PAT | ExitControls::LOAD_IA32_PAT,
            caps.exit,
        )
        .unwrap();
        let entry = EntryControls::adjust(
            EntryControls::LOAD_IA32_EFER | EntryControls::IA32E_MODE_GUEST,
            EntryControls::LOAD_IA32_PAT,
            caps.entry,
        )
        .unwrap();
        VmcsImage {
            pin: pin.bits(),
            primary: primary.bits(),
            secondary: secondary.bits(),
            exit: exit.bits(),
            entry: entry.bits(),
            eptp: 0x0020_0000 | (3 << 3) | 6,
            vpid: 1,
            msr_bitmap: 0x0030_0000,
            host_cr0: 0x8001_0033,
            host_cr3: 0x0010_0000,
            host_cr4: 0x2020,
            host_selectors: [0x10, 0x08, 0x10, 0x10, 0, 0, 0x18],
            host_efer: 0xD00,
            host_rip: 0x20_0000,
            host_rsp: 0x30_0000,
            cr0: start.cr0,
            cr3: start.cr3,
            cr4: start.cr4,
            dr7: 0x400,
            efer: start.efer,
            pat: 0x0007_0406_0007_0406,
            rflags: 2,
            rip: start.rip,
            cs: start.cs,
            ss: start.data,
            ds: start.data,
            es: start.data,
            fs: start.data,
            gs: start.data,
            tr: start.tr,
            ldtr: Segment::UNUSABLE,
            gdtr: start.gdtr,
            idtr: start.idtr,
            link_pointer: u64::MAX,
            ..VmcsImage::default()
        }
    }

    /// A change that breaks one rule of a valid image.
    type Breaker = fn(&mut VmcsImage);

    fn broken(change: impl FnOnce(&mut VmcsImage)) -> EntryRule {
        let caps = bochs_caps();
        let mut image = valid_image(&caps);
        change(&mut image);
        check(&image, &caps).expect_err("the broken image must fail").rule
    }

    #[test]
    fn valid_long_mode_image_passes() {
        let caps = bochs_caps();
        assert_eq!(check(&valid_image(&caps), &caps), Ok(()));
    }

    #[test]
    fn each_rule_fails_alone() {
        use EntryRule as R;
        let cases: &[(EntryRule, Breaker)] = &[
            (R::PinControls, |i| i.pin &= !PinBasedControls::EXTERNAL_INTERRUPT_EXITING.bits() & !0x16),
            (R::PrimaryControls, |i| i.primary |= 1 << 0),
            (R::SecondaryControls, |i| i.secondary |= 1 << 31),
            (R::ExitControls, |i| i.exit |= 1 << 31),
            (R::EntryControls, |i| i.entry |= 1 << 31),
            (R::UnrestrictedNeedsEpt, |i| i.secondary &= !SecondaryControls::ENABLE_EPT.bits()),
            (R::VpidZero, |i| i.vpid = 0),
            (R::EptpMemoryType, |i| i.eptp = (i.eptp & !7) | 5),
            (R::EptpWalkLength, |i| i.eptp = (i.eptp & !(7 << 3)) | (1 << 3)),
            (R::EptpReserved, |i| i.eptp |= 1 << 10),
            (R::MsrBitmapAlignment, |i| i.msr_bitmap |= 0x80),
            (R::HostCr0Fixed, |i| i.host_cr0 &= !(1 << 5)),
            (R::HostCr4Fixed, |i| i.host_cr4 &= !(1 << 13)),
            (R::HostSelectorRplTi, |i| i.host_selectors[2] |= 3),
            (R::HostCsNull, |i| i.host_selectors[1] = 0),
            (R::HostTrNull, |i| i.host_selectors[6] = 0),
            (R::HostAddressSpaceSize, |i| i.host_cr4 &= !CR4_PAE),
            (R::Ia32eGuestNeedsHost64, |i| {
                i.exit &= !ExitControls::HOST_ADDRESS_SPACE_SIZE.bits();
                i.host_efer &= !EFER_LMA;
            }),
            (R::GuestCr0Fixed, |i| i.cr0 &= !(1 << 5)),
            (R::GuestCr4Fixed, |i| i.cr4 |= 1 << 31),
            (R::GuestPgWithoutPe, |i| i.cr0 &= !CR0_PE),
            (R::Ia32eGuestPaging, |i| i.cr4 &= !CR4_PAE),
            (R::GuestEfer, |i| i.efer &= !EFER_LMA),
            (R::GuestPat, |i| i.pat = 0x0007_0406_0007_0402),
            (R::GuestDr7, |i| {
                i.entry |= EntryControls::LOAD_DEBUG_CONTROLS.bits();
                i.dr7 |= 1 << 40;
            }),
            (R::RflagsReserved, |i| i.rflags = 0),
            (R::RflagsVm, |i| i.rflags |= RFLAGS_VM),
            (R::GuestRipHigh, |i| {
                i.cs.access_rights &= !(1 << 13);
                i.cs.access_rights |= 1 << 14;
                i.rip = 0x1_0000_0000;
            }),
            (R::CsAccessRights, |i| i.cs.access_rights &= !0x80),
            (R::CsDpl, |i| i.cs.access_rights |= 3 << 5),
            (R::CsLongModeDb, |i| i.cs.access_rights |= 1 << 14),
            (R::SsAccessRights, |i| i.ss.access_rights = (i.ss.access_rights & !0xF) | 1),
            (R::SsDpl, |i| {
                i.secondary &= !SecondaryControls::UNRESTRICTED_GUEST.bits();
                i.ss.selector |= 3;
            }),
            (R::DataSegmentAccessRights, |i| i.ds.access_rights &= !0x80),
            (R::TrAccessRights, |i| i.tr.access_rights |= AR_UNUSABLE),
            (R::LdtrAccessRights, |i| {
                i.ldtr.access_rights = 0x83;
            }),
            (R::SegmentLimitGranularity, |i| i.ds.access_rights &= !(1 << 15)),
            (R::AccessRightsReserved, |i| i.es.access_rights |= 1 << 9),
            (R::ActivityState, |i| i.activity_state = 4),
            (R::HltNeedsCpl0, |i| {
                i.activity_state = 1;
                i.cs.access_rights = (i.cs.access_rights & !0xF) | 13; // conforming: CS.DPL 0 <= SS.DPL 3
                i.ss.access_rights |= 3 << 5;
                i.ss.selector |= 3;
            }),
            (R::Interruptibility, |i| i.interruptibility = 3),
            (R::LinkPointer, |i| i.link_pointer = 0),
            (R::InterruptionInfo, |i| i.entry_interruption_info = (1 << 31) | (1 << 8) | 32),
            (R::InterruptionErrorCode, |i| i.entry_interruption_info = (1 << 31) | (3 << 8) | 13),
        ];
        let mut covered: std::vec::Vec<EntryRule> = cases.iter().map(|(rule, _)| *rule).collect();
        for (rule, change) in cases {
            assert_eq!(broken(change), *rule, "breaking {}", rule.name());
        }
        covered.sort_by_key(|rule| *rule as u8);
        assert_eq!(covered, EntryRule::ALL, "every rule has a breaking case");
    }

    /// `valid_image` with the guest state of another start mode, as setup.rs
    /// writes it (IA-32e mode guest only for long mode).
    fn image_for(mode: StartMode, caps: &VmxCapabilities) -> VmcsImage {
        let start = start_state(mode, 0x7C00, 0x7C00, 0, caps.cr0, caps.cr4, true).unwrap();
        let mut image = valid_image(caps);
        if !start.ia32e_mode {
            image.entry &= !EntryControls::IA32E_MODE_GUEST.bits();
        }
        image.cr0 = start.cr0;
        image.cr3 = start.cr3;
        image.cr4 = start.cr4;
        image.efer = start.efer;
        image.rip = start.rip;
        image.cs = start.cs;
        for segment in [&mut image.ss, &mut image.ds, &mut image.es, &mut image.fs, &mut image.gs] {
            *segment = start.data;
        }
        image.tr = start.tr;
        image.gdtr = start.gdtr;
        image.idtr = start.idtr;
        image
    }

    #[test]
    fn every_start_mode_passes_and_single_step_flags_are_allowed() {
        let caps = bochs_caps();
        for mode in [StartMode::Real, StartMode::Protected, StartMode::Long] {
            let mut image = image_for(mode, &caps);
            assert_eq!(check(&image, &caps), Ok(()), "{mode:?}");
            // `--step` sets RFLAGS.TF (bit 8): not a reserved bit.
            image.rflags |= 1 << 8;
            assert_eq!(check(&image, &caps), Ok(()), "{mode:?} with TF");
        }
    }

    #[test]
    fn breaking_a_rule_in_other_modes_names_the_same_rule() {
        let caps = bochs_caps();
        let cases: &[(StartMode, EntryRule, Breaker)] = &[
            (StartMode::Real, EntryRule::RflagsReserved, |i| i.rflags &= !2),
            (StartMode::Real, EntryRule::GuestPgWithoutPe, |i| i.cr0 |= 1 << 31),
            (StartMode::Real, EntryRule::Ia32eGuestPaging, |i| i.entry |= EntryControls::IA32E_MODE_GUEST.bits()),
            (StartMode::Protected, EntryRule::GuestCr0Fixed, |i| i.cr0 &= !(1 << 5)),
            (StartMode::Protected, EntryRule::LinkPointer, |i| i.link_pointer = 0x1000),
            (StartMode::Protected, EntryRule::ActivityState, |i| i.activity_state = 5),
        ];
        for (mode, rule, change) in cases {
            let mut image = image_for(*mode, &caps);
            change(&mut image);
            let violation = check(&image, &caps).expect_err("the broken image must fail");
            assert_eq!(violation.rule, *rule, "{mode:?}: breaking {}", rule.name());
            // The report names the rule's section.
            assert!(violation.to_string().contains(rule.section().citation()), "{violation}");
        }
    }

    #[test]
    fn parse_accepts_ids_and_names() {
        assert_eq!(EntryRule::parse("26"), Some(EntryRule::RflagsReserved));
        assert_eq!(EntryRule::parse("rflags-reserved"), Some(EntryRule::RflagsReserved));
        assert_eq!(EntryRule::parse("LINK-POINTER"), Some(EntryRule::LinkPointer));
        assert_eq!(EntryRule::parse("0"), None);
        assert_eq!(EntryRule::parse("no-such-rule"), None);
        assert!(EntryRule::BREAKABLE.iter().all(|rule| rule.breakable()));
    }

    #[test]
    fn ids_round_trip_and_names_are_unique() {
        for rule in EntryRule::ALL {
            let id = *rule as u8;
            assert!(id > 0 && id < 128);
            assert_eq!(EntryRule::from_id(id), Some(*rule));
            assert_eq!(EntryRule::ALL.iter().filter(|r| r.name() == rule.name()).count(), 1);
        }
        assert_eq!(EntryRule::from_id(0), None);
        assert_eq!(EntryRule::from_id(127), None);
    }

    #[test]
    fn display_names_rule_section_and_values() {
        let caps = bochs_caps();
        let mut image = valid_image(&caps);
        image.cr0 = 0x8000_0030;
        image.secondary |= SecondaryControls::UNRESTRICTED_GUEST.bits();
        let violation = check(&image, &caps).unwrap_err();
        assert_eq!(
            violation.to_string(),
            "guest CR0.PG=1 requires CR0.PE=1 (27.3.1.1 \"Checks on Guest Control Registers, \
             Debug Registers, and MSRs\"): CR0 = 0x80000030"
        );
        assert_eq!(
            EntryRule::LinkPointer.to_string(),
            "the VMCS link pointer must be FFFFFFFF_FFFFFFFFh (this hypervisor uses no shadow VMCS) \
             (27.3.1.5 \"Checks on Guest Non-Register State\")"
        );
    }

    #[test]
    fn secondary_controls_ignored_without_activation() {
        let caps = bochs_caps();
        let mut image = valid_image(&caps);
        image.primary &= !PrimaryControls::ACTIVATE_SECONDARY_CONTROLS.bits();
        image.secondary = 0xFFFF_FFFF;
        // Without EPT the unrestricted relaxation is gone; the long-mode CR0 still passes.
        assert_eq!(check(&image, &caps), Ok(()));
    }

    #[test]
    fn read_with_maps_fields() {
        let caps = bochs_caps();
        let image = valid_image(&caps);
        let read = VmcsImage::read_with(|field| match field {
            VmcsField::GuestCr0 => Some(image.cr0),
            VmcsField::GuestCsAccessRights => Some(u64::from(image.cs.access_rights)),
            VmcsField::HostTrSelector => Some(0x18),
            VmcsField::VmcsLinkPointer => Some(u64::MAX),
            _ => None,
        });
        assert_eq!(read.cr0, image.cr0);
        assert_eq!(read.cs.access_rights, image.cs.access_rights);
        assert_eq!(read.host_selectors[6], 0x18);
        assert_eq!(read.link_pointer, u64::MAX);
        assert_eq!(read.rflags, 0);
    }
}
