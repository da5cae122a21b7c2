//! The VMCS fields this hypervisor reads and writes, as one typed table.
//!
//! Software never touches the VMCS region's bytes directly: it names a field
//! by a 32-bit *encoding* and uses `VMREAD`/`VMWRITE` (SDM Vol. 3C, 25.11.2
//! "VMREAD, VMWRITE, and Encodings of VMCS Fields"). The encoding itself says
//! what kind of field it is:
//!
//! | bits  | meaning |
//! |-------|---------|
//! | 0     | access type: 0 = full, 1 = high 32 bits of a 64-bit field |
//! | 9:1   | index |
//! | 11:10 | type: 0 control, 1 VM-exit information (read-only), 2 guest state, 3 host state |
//! | 12    | reserved (0) |
//! | 14:13 | width: 0 16-bit, 1 64-bit, 2 32-bit, 3 natural-width |
//! | 31:15 | reserved (0) |
//!
//! Every encoding below is taken from SDM Vol. 3C, Appendix B "Field Encoding
//! in VMCS" (B.1 "16-Bit Fields", B.2 "64-Bit Fields", B.3 "32-Bit Fields",
//! B.4 "Natural-Width Fields"). Each entry also *declares* its width and kind;
//! the unit tests check the declaration against the bits of the encoding, so a
//! mistyped encoding cannot go unnoticed.

use core::fmt;

/// Size of a VMCS field, from encoding bits 14:13.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldWidth {
    /// 16-bit field (encoding bits 14:13 = 0).
    Bits16,
    /// 64-bit field (encoding bits 14:13 = 1); on 32-bit hosts it is accessed
    /// as two halves, see [`VmcsField::high_encoding`].
    Bits64,
    /// 32-bit field (encoding bits 14:13 = 2).
    Bits32,
    /// Natural-width field (encoding bits 14:13 = 3): 64 bits on processors
    /// that support Intel 64 architecture.
    Natural,
}

impl FieldWidth {
    /// Decodes bits 14:13 of a field encoding.
    pub const fn from_encoding(encoding: u32) -> Self {
        match (encoding >> 13) & 0b11 {
            0 => Self::Bits16,
            1 => Self::Bits64,
            2 => Self::Bits32,
            _ => Self::Natural,
        }
    }

    /// Width in bits as the hypervisor (a 64-bit program) sees it.
    pub const fn bits(self) -> u32 {
        match self {
            Self::Bits16 => 16,
            Self::Bits32 => 32,
            Self::Bits64 | Self::Natural => 64,
        }
    }
}

/// Area of the VMCS a field belongs to, from encoding bits 11:10.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldKind {
    /// VM-execution, VM-exit and VM-entry control fields (type 0).
    Control,
    /// VM-exit information fields (type 1): read-only data written by the
    /// processor on VM exits and failed VMX instructions.
    ReadOnlyData,
    /// Guest-state area (type 2): SDM Vol. 3C, 25.4 "Guest-State Area".
    GuestState,
    /// Host-state area (type 3): SDM Vol. 3C, 25.5 "Host-State Area".
    HostState,
}

impl FieldKind {
    /// Decodes bits 11:10 of a field encoding.
    pub const fn from_encoding(encoding: u32) -> Self {
        match (encoding >> 10) & 0b11 {
            0 => Self::Control,
            1 => Self::ReadOnlyData,
            2 => Self::GuestState,
            _ => Self::HostState,
        }
    }

    /// Short lower-case name for dumps ("control", "read-only", "guest", "host").
    pub const fn name(self) -> &'static str {
        match self {
            Self::Control => "control",
            Self::ReadOnlyData => "read-only",
            Self::GuestState => "guest",
            Self::HostState => "host",
        }
    }
}

/// Declares [`VmcsField`] from one table, so the encoding, the declared width
/// and kind, and the SDM name of each field are written exactly once.
macro_rules! vmcs_fields {
    ($( $(#[$doc:meta])* $variant:ident = $encoding:literal, $width:ident, $kind:ident, $name:literal; )*) => {
        /// A VMCS field; the discriminant is the field's encoding (SDM Vol. 3C,
        /// Appendix B "Field Encoding in VMCS").
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        #[repr(u32)]
        pub enum VmcsField {
            $( $(#[$doc])* $variant = $encoding, )*
        }

        impl VmcsField {
            /// Every field of the table, in encoding order, for dumps.
            pub const ALL: &'static [VmcsField] = &[ $( VmcsField::$variant, )* ];

            /// The field's name as the SDM's Appendix B spells it.
            pub const fn name(self) -> &'static str {
                match self {
                    $( VmcsField::$variant => $name, )*
                }
            }

            /// Width and kind as written in the table (checked against the
            /// encoding bits by the unit tests).
            #[cfg(test)]
            const fn declared(self) -> (FieldWidth, FieldKind) {
                match self {
                    $( VmcsField::$variant => (FieldWidth::$width, FieldKind::$kind), )*
                }
            }
        }
    };
}

vmcs_fields! {
    // ----- B.1.1 16-Bit Control Fields -----
    /// Tags cached linear translations of this guest (needs "enable VPID").
    VirtualProcessorId = 0x0000, Bits16, Control, "Virtual-processor identifier (VPID)";

    // ----- B.1.2 16-Bit Guest-State Fields -----
    /// Guest ES selector.
    GuestEsSelector = 0x0800, Bits16, GuestState, "Guest ES selector";
    /// Guest CS selector.
    GuestCsSelector = 0x0802, Bits16, GuestState, "Guest CS selector";
    /// Guest SS selector.
    GuestSsSelector = 0x0804, Bits16, GuestState, "Guest SS selector";
    /// Guest DS selector.
    GuestDsSelector = 0x0806, Bits16, GuestState, "Guest DS selector";
    /// Guest FS selector.
    GuestFsSelector = 0x0808, Bits16, GuestState, "Guest FS selector";
    /// Guest GS selector.
    GuestGsSelector = 0x080A, Bits16, GuestState, "Guest GS selector";
    /// Guest LDTR selector.
    GuestLdtrSelector = 0x080C, Bits16, GuestState, "Guest LDTR selector";
    /// Guest TR selector.
    GuestTrSelector = 0x080E, Bits16, GuestState, "Guest TR selector";

    // ----- B.1.3 16-Bit Host-State Fields -----
    /// Host ES selector (RPL and TI must be 0).
    HostEsSelector = 0x0C00, Bits16, HostState, "Host ES selector";
    /// Host CS selector (must not be 0).
    HostCsSelector = 0x0C02, Bits16, HostState, "Host CS selector";
    /// Host SS selector.
    HostSsSelector = 0x0C04, Bits16, HostState, "Host SS selector";
    /// Host DS selector.
    HostDsSelector = 0x0C06, Bits16, HostState, "Host DS selector";
    /// Host FS selector.
    HostFsSelector = 0x0C08, Bits16, HostState, "Host FS selector";
    /// Host GS selector.
    HostGsSelector = 0x0C0A, Bits16, HostState, "Host GS selector";
    /// Host TR selector (must not be 0).
    HostTrSelector = 0x0C0C, Bits16, HostState, "Host TR selector";

    // ----- B.2.1 64-Bit Control Fields -----
    /// Physical address of I/O bitmap A (ports 0x0000-0x7FFF).
    IoBitmapA = 0x2000, Bits64, Control, "Address of I/O bitmap A";
    /// Physical address of I/O bitmap B (ports 0x8000-0xFFFF).
    IoBitmapB = 0x2002, Bits64, Control, "Address of I/O bitmap B";
    /// Physical address of the 4-KiB MSR bitmaps.
    MsrBitmap = 0x2004, Bits64, Control, "Address of MSR bitmaps";
    /// Physical address of the VM-exit MSR-store area.
    ExitMsrStoreAddress = 0x2006, Bits64, Control, "VM-exit MSR-store address";
    /// Physical address of the VM-exit MSR-load area.
    ExitMsrLoadAddress = 0x2008, Bits64, Control, "VM-exit MSR-load address";
    /// Physical address of the VM-entry MSR-load area.
    EntryMsrLoadAddress = 0x200A, Bits64, Control, "VM-entry MSR-load address";
    /// Added to the TSC the guest reads when "use TSC offsetting" is 1.
    TscOffset = 0x2010, Bits64, Control, "TSC offset";
    /// EPT pointer: PML4 address, memory type, page-walk length, A/D enable.
    EptPointer = 0x201A, Bits64, Control, "EPT pointer";

    // ----- B.2.2 64-Bit Read-Only Data Field -----
    /// Guest-physical address of an EPT violation or misconfiguration.
    GuestPhysicalAddress = 0x2400, Bits64, ReadOnlyData, "Guest-physical address";

    // ----- B.2.3 64-Bit Guest-State Fields -----
    /// VMCS link pointer (set to all ones when VMCS shadowing is not used).
    VmcsLinkPointer = 0x2800, Bits64, GuestState, "VMCS link pointer";
    /// Guest IA32_DEBUGCTL.
    GuestIa32Debugctl = 0x2802, Bits64, GuestState, "Guest IA32_DEBUGCTL";
    /// Guest IA32_PAT (used with "load IA32_PAT" / "save IA32_PAT").
    GuestIa32Pat = 0x2804, Bits64, GuestState, "Guest IA32_PAT";
    /// Guest IA32_EFER (used with "load IA32_EFER" / "save IA32_EFER").
    GuestIa32Efer = 0x2806, Bits64, GuestState, "Guest IA32_EFER";
    /// Guest PDPTE0 (PAE paging with EPT).
    GuestPdpte0 = 0x280A, Bits64, GuestState, "Guest PDPTE0";
    /// Guest PDPTE1 (PAE paging with EPT).
    GuestPdpte1 = 0x280C, Bits64, GuestState, "Guest PDPTE1";
    /// Guest PDPTE2 (PAE paging with EPT).
    GuestPdpte2 = 0x280E, Bits64, GuestState, "Guest PDPTE2";
    /// Guest PDPTE3 (PAE paging with EPT).
    GuestPdpte3 = 0x2810, Bits64, GuestState, "Guest PDPTE3";

    // ----- B.2.4 64-Bit Host-State Fields -----
    /// Host IA32_PAT (used with "load IA32_PAT" on exit).
    HostIa32Pat = 0x2C00, Bits64, HostState, "Host IA32_PAT";
    /// Host IA32_EFER (used with "load IA32_EFER" on exit).
    HostIa32Efer = 0x2C02, Bits64, HostState, "Host IA32_EFER";

    // ----- B.3.1 32-Bit Control Fields -----
    /// Pin-based VM-execution controls (see `controls::PinBasedControls`).
    PinBasedControls = 0x4000, Bits32, Control, "Pin-based VM-execution controls";
    /// Primary processor-based VM-execution controls.
    PrimaryProcessorControls = 0x4002, Bits32, Control, "Primary processor-based VM-execution controls";
    /// One bit per exception vector: 1 = the exception causes a VM exit.
    ExceptionBitmap = 0x4004, Bits32, Control, "Exception bitmap";
    /// Page-fault error-code mask (filters which #PFs exit).
    PageFaultErrorCodeMask = 0x4006, Bits32, Control, "Page-fault error-code mask";
    /// Page-fault error-code match (filters which #PFs exit).
    PageFaultErrorCodeMatch = 0x4008, Bits32, Control, "Page-fault error-code match";
    /// Number of valid CR3-target values.
    Cr3TargetCount = 0x400A, Bits32, Control, "CR3-target count";
    /// Primary VM-exit controls.
    ExitControls = 0x400C, Bits32, Control, "Primary VM-exit controls";
    /// Number of MSRs stored on VM exit.
    ExitMsrStoreCount = 0x400E, Bits32, Control, "VM-exit MSR-store count";
    /// Number of MSRs loaded on VM exit.
    ExitMsrLoadCount = 0x4010, Bits32, Control, "VM-exit MSR-load count";
    /// VM-entry controls.
    EntryControls = 0x4012, Bits32, Control, "VM-entry controls";
    /// Number of MSRs loaded on VM entry.
    EntryMsrLoadCount = 0x4014, Bits32, Control, "VM-entry MSR-load count";
    /// Event to inject on the next VM entry (see `exit::InterruptionInfo`).
    EntryInterruptionInfo = 0x4016, Bits32, Control, "VM-entry interruption-information field";
    /// Error code delivered with the injected exception.
    EntryExceptionErrorCode = 0x4018, Bits32, Control, "VM-entry exception error code";
    /// Instruction length for injected software interrupts/exceptions.
    EntryInstructionLength = 0x401A, Bits32, Control, "VM-entry instruction length";
    /// TPR threshold (with "use TPR shadow").
    TprThreshold = 0x401C, Bits32, Control, "TPR threshold";
    /// Secondary processor-based VM-execution controls.
    SecondaryProcessorControls = 0x401E, Bits32, Control, "Secondary processor-based VM-execution controls";

    // ----- B.3.2 32-Bit Read-Only Data Fields -----
    /// Error number of the last failed VMX instruction (see `instruction_error`).
    VmInstructionError = 0x4400, Bits32, ReadOnlyData, "VM-instruction error";
    /// Exit reason (see `exit::RawExitReason`).
    ExitReason = 0x4402, Bits32, ReadOnlyData, "Exit reason";
    /// Information about the event that caused the exit.
    ExitInterruptionInfo = 0x4404, Bits32, ReadOnlyData, "VM-exit interruption information";
    /// Error code of the exception that caused the exit.
    ExitInterruptionErrorCode = 0x4406, Bits32, ReadOnlyData, "VM-exit interruption error code";
    /// Event that was being delivered when the exit occurred.
    IdtVectoringInfo = 0x4408, Bits32, ReadOnlyData, "IDT-vectoring information field";
    /// Error code of that event.
    IdtVectoringErrorCode = 0x440A, Bits32, ReadOnlyData, "IDT-vectoring error code";
    /// Length of the instruction that caused the exit.
    ExitInstructionLength = 0x440C, Bits32, ReadOnlyData, "VM-exit instruction length";
    /// Operand details of the instruction that caused the exit.
    ExitInstructionInfo = 0x440E, Bits32, ReadOnlyData, "VM-exit instruction information";

    // ----- B.3.3 32-Bit Guest-State Fields -----
    /// Guest ES limit.
    GuestEsLimit = 0x4800, Bits32, GuestState, "Guest ES limit";
    /// Guest CS limit.
    GuestCsLimit = 0x4802, Bits32, GuestState, "Guest CS limit";
    /// Guest SS limit.
    GuestSsLimit = 0x4804, Bits32, GuestState, "Guest SS limit";
    /// Guest DS limit.
    GuestDsLimit = 0x4806, Bits32, GuestState, "Guest DS limit";
    /// Guest FS limit.
    GuestFsLimit = 0x4808, Bits32, GuestState, "Guest FS limit";
    /// Guest GS limit.
    GuestGsLimit = 0x480A, Bits32, GuestState, "Guest GS limit";
    /// Guest LDTR limit.
    GuestLdtrLimit = 0x480C, Bits32, GuestState, "Guest LDTR limit";
    /// Guest TR limit.
    GuestTrLimit = 0x480E, Bits32, GuestState, "Guest TR limit";
    /// Guest GDTR limit.
    GuestGdtrLimit = 0x4810, Bits32, GuestState, "Guest GDTR limit";
    /// Guest IDTR limit.
    GuestIdtrLimit = 0x4812, Bits32, GuestState, "Guest IDTR limit";
    /// Guest ES access rights (bit 16 = unusable).
    GuestEsAccessRights = 0x4814, Bits32, GuestState, "Guest ES access rights";
    /// Guest CS access rights.
    GuestCsAccessRights = 0x4816, Bits32, GuestState, "Guest CS access rights";
    /// Guest SS access rights.
    GuestSsAccessRights = 0x4818, Bits32, GuestState, "Guest SS access rights";
    /// Guest DS access rights.
    GuestDsAccessRights = 0x481A, Bits32, GuestState, "Guest DS access rights";
    /// Guest FS access rights.
    GuestFsAccessRights = 0x481C, Bits32, GuestState, "Guest FS access rights";
    /// Guest GS access rights.
    GuestGsAccessRights = 0x481E, Bits32, GuestState, "Guest GS access rights";
    /// Guest LDTR access rights.
    GuestLdtrAccessRights = 0x4820, Bits32, GuestState, "Guest LDTR access rights";
    /// Guest TR access rights.
    GuestTrAccessRights = 0x4822, Bits32, GuestState, "Guest TR access rights";
    /// Blocking by STI / MOV SS / SMI / NMI.
    GuestInterruptibilityState = 0x4824, Bits32, GuestState, "Guest interruptibility state";
    /// 0 active, 1 HLT, 2 shutdown, 3 wait-for-SIPI.
    GuestActivityState = 0x4826, Bits32, GuestState, "Guest activity state";
    /// Guest SMBASE.
    GuestSmbase = 0x4828, Bits32, GuestState, "Guest SMBASE";
    /// Guest IA32_SYSENTER_CS.
    GuestIa32SysenterCs = 0x482A, Bits32, GuestState, "Guest IA32_SYSENTER_CS";
    /// Current VMX-preemption timer value.
    VmxPreemptionTimerValue = 0x482E, Bits32, GuestState, "VMX-preemption timer value";

    // ----- B.3.4 32-Bit Host-State Field -----
    /// Host IA32_SYSENTER_CS.
    HostIa32SysenterCs = 0x4C00, Bits32, HostState, "Host IA32_SYSENTER_CS";

    // ----- B.4.1 Natural-Width Control Fields -----
    /// CR0 bits owned by the host: guest writes that change them exit.
    Cr0GuestHostMask = 0x6000, Natural, Control, "CR0 guest/host mask";
    /// CR4 bits owned by the host.
    Cr4GuestHostMask = 0x6002, Natural, Control, "CR4 guest/host mask";
    /// What the guest reads for host-owned CR0 bits.
    Cr0ReadShadow = 0x6004, Natural, Control, "CR0 read shadow";
    /// What the guest reads for host-owned CR4 bits.
    Cr4ReadShadow = 0x6006, Natural, Control, "CR4 read shadow";
    /// CR3-target value 0.
    Cr3TargetValue0 = 0x6008, Natural, Control, "CR3-target value 0";
    /// CR3-target value 1.
    Cr3TargetValue1 = 0x600A, Natural, Control, "CR3-target value 1";
    /// CR3-target value 2.
    Cr3TargetValue2 = 0x600C, Natural, Control, "CR3-target value 2";
    /// CR3-target value 3.
    Cr3TargetValue3 = 0x600E, Natural, Control, "CR3-target value 3";

    // ----- B.4.2 Natural-Width Read-Only Data Fields -----
    /// Exit qualification (see the decoders in `exit`).
    ExitQualification = 0x6400, Natural, ReadOnlyData, "Exit qualification";
    /// I/O RCX (SMIs during I/O instructions only).
    IoRcx = 0x6402, Natural, ReadOnlyData, "I/O RCX";
    /// I/O RSI.
    IoRsi = 0x6404, Natural, ReadOnlyData, "I/O RSI";
    /// I/O RDI.
    IoRdi = 0x6406, Natural, ReadOnlyData, "I/O RDI";
    /// I/O RIP.
    IoRip = 0x6408, Natural, ReadOnlyData, "I/O RIP";
    /// Guest-linear address of the access that caused the exit (when valid).
    GuestLinearAddress = 0x640A, Natural, ReadOnlyData, "Guest-linear address";

    // ----- B.4.3 Natural-Width Guest-State Fields -----
    /// Guest CR0.
    GuestCr0 = 0x6800, Natural, GuestState, "Guest CR0";
    /// Guest CR3.
    GuestCr3 = 0x6802, Natural, GuestState, "Guest CR3";
    /// Guest CR4.
    GuestCr4 = 0x6804, Natural, GuestState, "Guest CR4";
    /// Guest ES base.
    GuestEsBase = 0x6806, Natural, GuestState, "Guest ES base";
    /// Guest CS base.
    GuestCsBase = 0x6808, Natural, GuestState, "Guest CS base";
    /// Guest SS base.
    GuestSsBase = 0x680A, Natural, GuestState, "Guest SS base";
    /// Guest DS base.
    GuestDsBase = 0x680C, Natural, GuestState, "Guest DS base";
    /// Guest FS base.
    GuestFsBase = 0x680E, Natural, GuestState, "Guest FS base";
    /// Guest GS base.
    GuestGsBase = 0x6810, Natural, GuestState, "Guest GS base";
    /// Guest LDTR base.
    GuestLdtrBase = 0x6812, Natural, GuestState, "Guest LDTR base";
    /// Guest TR base.
    GuestTrBase = 0x6814, Natural, GuestState, "Guest TR base";
    /// Guest GDTR base.
    GuestGdtrBase = 0x6816, Natural, GuestState, "Guest GDTR base";
    /// Guest IDTR base.
    GuestIdtrBase = 0x6818, Natural, GuestState, "Guest IDTR base";
    /// Guest DR7.
    GuestDr7 = 0x681A, Natural, GuestState, "Guest DR7";
    /// Guest RSP.
    GuestRsp = 0x681C, Natural, GuestState, "Guest RSP";
    /// Guest RIP.
    GuestRip = 0x681E, Natural, GuestState, "Guest RIP";
    /// Guest RFLAGS (bit 1 must be 1).
    GuestRflags = 0x6820, Natural, GuestState, "Guest RFLAGS";
    /// Guest pending debug exceptions.
    GuestPendingDebugExceptions = 0x6822, Natural, GuestState, "Guest pending debug exceptions";
    /// Guest IA32_SYSENTER_ESP.
    GuestIa32SysenterEsp = 0x6824, Natural, GuestState, "Guest IA32_SYSENTER_ESP";
    /// Guest IA32_SYSENTER_EIP.
    GuestIa32SysenterEip = 0x6826, Natural, GuestState, "Guest IA32_SYSENTER_EIP";

    // ----- B.4.4 Natural-Width Host-State Fields -----
    /// Host CR0.
    HostCr0 = 0x6C00, Natural, HostState, "Host CR0";
    /// Host CR3.
    HostCr3 = 0x6C02, Natural, HostState, "Host CR3";
    /// Host CR4.
    HostCr4 = 0x6C04, Natural, HostState, "Host CR4";
    /// Host FS base.
    HostFsBase = 0x6C06, Natural, HostState, "Host FS base";
    /// Host GS base.
    HostGsBase = 0x6C08, Natural, HostState, "Host GS base";
    /// Host TR base.
    HostTrBase = 0x6C0A, Natural, HostState, "Host TR base";
    /// Host GDTR base.
    HostGdtrBase = 0x6C0C, Natural, HostState, "Host GDTR base";
    /// Host IDTR base.
    HostIdtrBase = 0x6C0E, Natural, HostState, "Host IDTR base";
    /// Host IA32_SYSENTER_ESP.
    HostIa32SysenterEsp = 0x6C10, Natural, HostState, "Host IA32_SYSENTER_ESP";
    /// Host IA32_SYSENTER_EIP.
    HostIa32SysenterEip = 0x6C12, Natural, HostState, "Host IA32_SYSENTER_EIP";
    /// Host RSP: the stack the exit handler starts on.
    HostRsp = 0x6C14, Natural, HostState, "Host RSP";
    /// Host RIP: where the processor jumps on every VM exit.
    HostRip = 0x6C16, Natural, HostState, "Host RIP";
}

impl VmcsField {
    /// The encoding to pass to `VMREAD`/`VMWRITE` (the "full" access type).
    pub const fn encoding(self) -> u32 {
        self as u32
    }

    /// The field's width, derived from encoding bits 14:13.
    pub const fn width(self) -> FieldWidth {
        FieldWidth::from_encoding(self.encoding())
    }

    /// The field's area, derived from encoding bits 11:10.
    pub const fn kind(self) -> FieldKind {
        FieldKind::from_encoding(self.encoding())
    }

    /// Whether `VMWRITE` fails on this field (VM-exit information fields),
    /// unless IA32_VMX_MISC bit 29 allows writes to them.
    pub const fn is_read_only(self) -> bool {
        matches!(self.kind(), FieldKind::ReadOnlyData)
    }

    /// For a 64-bit field: the encoding with access type "high" (bit 0 set),
    /// which reads or writes bits 63:32 only. `None` for other widths.
    pub const fn high_encoding(self) -> Option<u32> {
        match self.width() {
            FieldWidth::Bits64 => Some(self.encoding() | 1),
            _ => None,
        }
    }

    /// Looks up a field of this table by its (full) encoding.
    pub fn from_encoding(encoding: u32) -> Option<Self> {
        Self::ALL.iter().copied().find(|field| field.encoding() == encoding)
    }
}

impl fmt::Display for VmcsField {
    /// Prints e.g. `Guest RIP (0x681E)`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({:#06X})", self.name(), self.encoding())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;
    use std::format;

    #[test]
    fn declared_width_and_kind_match_the_encoding_bits() {
        for &field in VmcsField::ALL {
            let (width, kind) = field.declared();
            assert_eq!(field.width(), width, "{field}: width");
            assert_eq!(field.kind(), kind, "{field}: kind");
        }
    }

    #[test]
    fn encodings_are_well_formed_and_unique() {
        let mut seen = HashSet::new();
        for &field in VmcsField::ALL {
            let e = field.encoding();
            assert_eq!(e & 1, 0, "{field}: table lists full access type only");
            assert_eq!(e & (1 << 12), 0, "{field}: bit 12 is reserved");
            assert_eq!(e >> 15, 0, "{field}: bits 31:15 are reserved");
            assert!(seen.insert(e), "{field}: duplicate encoding");
        }
        assert_eq!(seen.len(), VmcsField::ALL.len());
    }

    #[test]
    fn names_are_unique_and_non_empty() {
        let mut seen = HashSet::new();
        for &field in VmcsField::ALL {
            assert!(!field.name().is_empty());
            assert!(seen.insert(field.name()), "{field}: duplicate name");
        }
    }

    #[test]
    fn spot_check_encodings_against_appendix_b() {
        assert_eq!(VmcsField::GuestRip.encoding(), 0x681E);
        assert_eq!(VmcsField::ExitReason.encoding(), 0x4402);
        assert_eq!(VmcsField::EptPointer.encoding(), 0x201A);
        assert_eq!(VmcsField::HostRip.encoding(), 0x6C16);
        assert_eq!(VmcsField::VirtualProcessorId.encoding(), 0x0000);
        assert_eq!(VmcsField::VmcsLinkPointer.encoding(), 0x2800);
        assert_eq!(VmcsField::SecondaryProcessorControls.encoding(), 0x401E);
        assert_eq!(VmcsField::VmInstructionError.encoding(), 0x4400);
        assert_eq!(VmcsField::ExitQualification.encoding(), 0x6400);
        assert_eq!(VmcsField::GuestInterruptibilityState.encoding(), 0x4824);
        assert_eq!(VmcsField::VmxPreemptionTimerValue.encoding(), 0x482E);
        assert_eq!(VmcsField::HostIa32Efer.encoding(), 0x2C02);
    }

    #[test]
    fn widths_kinds_and_names() {
        assert_eq!(VmcsField::GuestRip.width(), FieldWidth::Natural);
        assert_eq!(VmcsField::GuestRip.kind(), FieldKind::GuestState);
        assert_eq!(VmcsField::GuestRip.name(), "Guest RIP");
        assert_eq!(VmcsField::ExitReason.width(), FieldWidth::Bits32);
        assert!(VmcsField::ExitReason.is_read_only());
        assert!(!VmcsField::GuestRip.is_read_only());
        assert_eq!(VmcsField::HostCsSelector.width(), FieldWidth::Bits16);
        assert_eq!(VmcsField::HostCsSelector.kind(), FieldKind::HostState);
        assert_eq!(VmcsField::EptPointer.width().bits(), 64);
        assert_eq!(VmcsField::EptPointer.high_encoding(), Some(0x201B));
        assert_eq!(VmcsField::GuestRip.high_encoding(), None);
        assert_eq!(format!("{}", VmcsField::HostRip), "Host RIP (0x6C16)");
    }

    #[test]
    fn lookup_by_encoding() {
        assert_eq!(VmcsField::from_encoding(0x681E), Some(VmcsField::GuestRip));
        assert_eq!(VmcsField::from_encoding(0x201B), None, "high halves are not table entries");
        assert_eq!(VmcsField::from_encoding(0xFFFF), None);
        for &field in VmcsField::ALL {
            assert_eq!(VmcsField::from_encoding(field.encoding()), Some(field));
        }
    }
}
