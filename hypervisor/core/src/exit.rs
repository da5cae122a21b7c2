//! Decoding what a VM exit tells the hypervisor.
//!
//! On every VM exit the processor fills the read-only VM-exit information
//! fields of the VMCS (SDM Vol. 3C, 25.9 "VM-Exit Information Fields"):
//!
//! * the **exit reason** ([`RawExitReason`], [`ExitReason`]);
//! * the **exit qualification**, whose meaning depends on the reason
//!   ([`IoQualification`], [`CrAccessQualification`],
//!   [`EptViolationQualification`]; SDM Vol. 3C, 28.2.1 "Basic VM-Exit
//!   Information");
//! * the **interruption information** of the event that caused the exit and
//!   the **IDT-vectoring information** of the event that was being delivered
//!   when it happened ([`InterruptionInfo`]; the same layout is used to
//!   *inject* an event on VM entry).

use core::fmt;

// ---------------------------------------------------------------------------
// Exit reasons
// ---------------------------------------------------------------------------

/// Declares [`ExitReason`] with its numbers and SDM names from one table.
macro_rules! exit_reasons {
    ($( $(#[$doc:meta])* $variant:ident = $number:literal, $name:literal; )*) => {
        /// A basic exit reason (SDM Vol. 3C, Appendix C "VMX Basic Exit
        /// Reasons", Table "Basic Exit Reasons"); the discriminant is the
        /// number in bits 15:0 of the exit-reason field.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        #[repr(u16)]
        pub enum ExitReason {
            $( $(#[$doc])* $variant = $number, )*
        }

        impl ExitReason {
            /// Every defined basic exit reason, in number order.
            pub const ALL: &'static [ExitReason] = &[ $( ExitReason::$variant, )* ];

            /// Decodes a basic exit reason; `None` for numbers Appendix C
            /// does not define (35, 38, 42, 71, and above 79).
            #[inline]
            pub const fn from_basic(number: u16) -> Option<Self> {
                match number {
                    $( $number => Some(ExitReason::$variant), )*
                    _ => None,
                }
            }

            /// The SDM's name of the exit reason.
            pub const fn name(self) -> &'static str {
                match self {
                    $( ExitReason::$variant => $name, )*
                }
            }
        }
    };
}

exit_reasons! {
    /// An exception hit the exception bitmap, or an NMI arrived with "NMI exiting".
    ExceptionOrNmi = 0, "Exception or non-maskable interrupt (NMI)";
    /// An external interrupt arrived with "external-interrupt exiting".
    ExternalInterrupt = 1, "External interrupt";
    /// The guest triple-faulted.
    TripleFault = 2, "Triple fault";
    /// An INIT signal arrived.
    InitSignal = 3, "INIT signal";
    /// A SIPI arrived while the guest was in the wait-for-SIPI state.
    StartupIpi = 4, "Start-up IPI (SIPI)";
    /// An SMI arrived immediately after an I/O instruction.
    IoSmi = 5, "I/O system-management interrupt (SMI)";
    /// Any other SMI.
    OtherSmi = 6, "Other SMI";
    /// "Interrupt-window exiting": the guest can now take an interrupt.
    InterruptWindow = 7, "Interrupt window";
    /// "NMI-window exiting": the guest can now take an NMI.
    NmiWindow = 8, "NMI window";
    /// The guest attempted a task switch.
    TaskSwitch = 9, "Task switch";
    /// CPUID (always exits).
    Cpuid = 10, "CPUID";
    /// GETSEC (always exits).
    Getsec = 11, "GETSEC";
    /// HLT with "HLT exiting".
    Hlt = 12, "HLT";
    /// INVD (always exits).
    Invd = 13, "INVD";
    /// INVLPG with "INVLPG exiting".
    Invlpg = 14, "INVLPG";
    /// RDPMC with "RDPMC exiting".
    Rdpmc = 15, "RDPMC";
    /// RDTSC with "RDTSC exiting".
    Rdtsc = 16, "RDTSC";
    /// RSM in SMM.
    Rsm = 17, "RSM";
    /// VMCALL: the hypercall instruction (always exits).
    Vmcall = 18, "VMCALL";
    /// VMCLEAR in the guest.
    Vmclear = 19, "VMCLEAR";
    /// VMLAUNCH in the guest.
    Vmlaunch = 20, "VMLAUNCH";
    /// VMPTRLD in the guest.
    Vmptrld = 21, "VMPTRLD";
    /// VMPTRST in the guest.
    Vmptrst = 22, "VMPTRST";
    /// VMREAD in the guest.
    Vmread = 23, "VMREAD";
    /// VMRESUME in the guest.
    Vmresume = 24, "VMRESUME";
    /// VMWRITE in the guest.
    Vmwrite = 25, "VMWRITE";
    /// VMXOFF in the guest.
    Vmxoff = 26, "VMXOFF";
    /// VMXON in the guest.
    Vmxon = 27, "VMXON";
    /// MOV to/from CR, CLTS or LMSW (see [`CrAccessQualification`]).
    ControlRegisterAccess = 28, "Control-register accesses";
    /// MOV DR with "MOV-DR exiting".
    MovDr = 29, "MOV DR";
    /// IN/OUT/INS/OUTS (see [`IoQualification`]).
    IoInstruction = 30, "I/O instruction";
    /// RDMSR.
    Rdmsr = 31, "RDMSR";
    /// WRMSR.
    Wrmsr = 32, "WRMSR";
    /// VM entry failed its guest-state checks (exit reason bit 31 is set).
    EntryFailureGuestState = 33, "VM-entry failure due to invalid guest state";
    /// VM entry failed loading an MSR (exit reason bit 31 is set).
    EntryFailureMsrLoading = 34, "VM-entry failure due to MSR loading";
    /// MWAIT with "MWAIT exiting".
    Mwait = 36, "MWAIT";
    /// "Monitor trap flag": one guest instruction completed.
    MonitorTrapFlag = 37, "Monitor trap flag";
    /// MONITOR with "MONITOR exiting".
    Monitor = 39, "MONITOR";
    /// PAUSE with "PAUSE exiting" or PAUSE-loop exiting.
    Pause = 40, "PAUSE";
    /// A machine-check event during VM entry (exit reason bit 31 is set).
    EntryFailureMachineCheck = 41, "VM-entry failure due to machine-check event";
    /// The virtual TPR dropped below the TPR threshold.
    TprBelowThreshold = 43, "TPR below threshold";
    /// Access to the APIC-access page.
    ApicAccess = 44, "APIC access";
    /// EOI virtualization for a vector in the EOI-exit bitmap.
    VirtualizedEoi = 45, "Virtualized EOI";
    /// LGDT/LIDT/SGDT/SIDT with "descriptor-table exiting".
    GdtrIdtrAccess = 46, "Access to GDTR or IDTR";
    /// LLDT/LTR/SLDT/STR with "descriptor-table exiting".
    LdtrTrAccess = 47, "Access to LDTR or TR";
    /// EPT denied an access (see [`EptViolationQualification`]).
    EptViolation = 48, "EPT violation";
    /// An EPT entry is malformed.
    EptMisconfiguration = 49, "EPT misconfiguration";
    /// INVEPT in the guest.
    Invept = 50, "INVEPT";
    /// RDTSCP with "RDTSC exiting".
    Rdtscp = 51, "RDTSCP";
    /// The VMX-preemption timer reached 0.
    PreemptionTimerExpired = 52, "VMX-preemption timer expired";
    /// INVVPID in the guest.
    Invvpid = 53, "INVVPID";
    /// WBINVD or WBNOINVD with "WBINVD exiting".
    Wbinvd = 54, "WBINVD or WBNOINVD";
    /// XSETBV (always exits).
    Xsetbv = 55, "XSETBV";
    /// A write to the virtual-APIC page that must be emulated.
    ApicWrite = 56, "APIC write";
    /// RDRAND with "RDRAND exiting".
    Rdrand = 57, "RDRAND";
    /// INVPCID with "INVLPG exiting" and "enable INVPCID".
    Invpcid = 58, "INVPCID";
    /// VMFUNC failed or the function is not enabled.
    Vmfunc = 59, "VMFUNC";
    /// ENCLS with "enable ENCLS exiting".
    Encls = 60, "ENCLS";
    /// RDSEED with "RDSEED exiting".
    Rdseed = 61, "RDSEED";
    /// The page-modification log is full.
    PageModificationLogFull = 62, "Page-modification log full";
    /// XSAVES when the XSS-exiting bitmap says so.
    Xsaves = 63, "XSAVES";
    /// XRSTORS when the XSS-exiting bitmap says so.
    Xrstors = 64, "XRSTORS";
    /// PCONFIG.
    Pconfig = 65, "PCONFIG";
    /// Sub-page-permission related event.
    SppRelatedEvent = 66, "SPP-related event";
    /// UMWAIT.
    Umwait = 67, "UMWAIT";
    /// TPAUSE.
    Tpause = 68, "TPAUSE";
    /// LOADIWKEY.
    Loadiwkey = 69, "LOADIWKEY";
    /// ENCLV with "enable ENCLV exiting".
    Enclv = 70, "ENCLV";
    /// ENQCMD PASID translation failed.
    EnqcmdPasidTranslationFailure = 72, "ENQCMD PASID translation failure";
    /// ENQCMDS PASID translation failed.
    EnqcmdsPasidTranslationFailure = 73, "ENQCMDS PASID translation failure";
    /// A bus lock with "VMM bus-lock detection".
    BusLock = 74, "Bus lock";
    /// "Instruction timeout": the processor was stuck too long.
    InstructionTimeout = 75, "Instruction timeout";
    /// SEAMCALL.
    Seamcall = 76, "SEAMCALL";
    /// TDCALL.
    Tdcall = 77, "TDCALL";
    /// RDMSRLIST.
    Rdmsrlist = 78, "RDMSRLIST";
    /// WRMSRLIST.
    Wrmsrlist = 79, "WRMSRLIST";
}

impl ExitReason {
    /// The basic exit reason number.
    pub const fn number(self) -> u16 {
        self as u16
    }
}

impl fmt::Display for ExitReason {
    /// Prints e.g. `EPT violation (48)`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.name(), self.number())
    }
}

/// The whole 32-bit exit-reason field (SDM Vol. 3C, 25.9.1 "Basic VM-Exit
/// Information", Table "Format of Exit Reason").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RawExitReason(pub u32);

impl RawExitReason {
    /// Bits 15:0: the basic exit reason number.
    pub const fn basic(self) -> u16 {
        self.0 as u16
    }

    /// The basic exit reason decoded; `None` for an undefined number.
    pub const fn reason(self) -> Option<ExitReason> {
        ExitReason::from_basic(self.basic())
    }

    /// Bit 26: a bus lock was asserted while "VMM bus-lock detection" was 1.
    pub const fn bus_lock_detected(self) -> bool {
        self.0 & (1 << 26) != 0
    }

    /// Bit 27: the VM exit happened in enclave mode.
    pub const fn enclave_mode(self) -> bool {
        self.0 & (1 << 27) != 0
    }

    /// Bit 28: a monitor-trap-flag VM exit was pending (SMM exits only).
    pub const fn pending_mtf(self) -> bool {
        self.0 & (1 << 28) != 0
    }

    /// Bit 29: the VM exit came from VMX root operation (SMM exits only).
    pub const fn from_vmx_root(self) -> bool {
        self.0 & (1 << 29) != 0
    }

    /// Bit 31: this is not a real exit but a VM-entry failure (reasons 33,
    /// 34 or 41); only the exit reason and qualification are valid.
    pub const fn entry_failure(self) -> bool {
        self.0 & (1 << 31) != 0
    }
}

impl fmt::Display for RawExitReason {
    /// Prints e.g. `VM-entry failure due to invalid guest state (33) [VM-entry failure]`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.reason() {
            Some(reason) => write!(f, "{reason}")?,
            None => write!(f, "unknown exit reason ({})", self.basic())?,
        }
        if self.entry_failure() {
            f.write_str(" [VM-entry failure]")?;
        }
        Ok(())
    }
}

// ---------------------------------------------------------------------------
// I/O instructions
// ---------------------------------------------------------------------------

/// Direction of an I/O instruction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IoDirection {
    /// OUT/OUTS: guest writes to the port (bit 3 = 0).
    Out,
    /// IN/INS: guest reads from the port (bit 3 = 1).
    In,
}

/// How the port number was given.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IoOperand {
    /// In the DX register (bit 6 = 0).
    Dx,
    /// As an immediate byte in the instruction (bit 6 = 1).
    Immediate,
}

/// Exit qualification for I/O instructions (SDM Vol. 3C, 28.2.1 "Basic
/// VM-Exit Information", Table "Exit Qualification for I/O Instructions").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IoQualification(pub u64);

impl IoQualification {
    /// Bits 2:0: access size in bytes: encodings 0, 1, 3 mean 1, 2, 4 bytes.
    /// `None` for the unused encodings.
    pub const fn size(self) -> Option<u8> {
        match self.0 & 0b111 {
            0 => Some(1),
            1 => Some(2),
            3 => Some(4),
            _ => None,
        }
    }

    /// Bit 3: direction.
    pub const fn direction(self) -> IoDirection {
        if self.0 & (1 << 3) != 0 {
            IoDirection::In
        } else {
            IoDirection::Out
        }
    }

    /// Bit 4: string instruction (INS/OUTS).
    pub const fn is_string(self) -> bool {
        self.0 & (1 << 4) != 0
    }

    /// Bit 5: REP prefixed.
    pub const fn is_rep(self) -> bool {
        self.0 & (1 << 5) != 0
    }

    /// Bit 6: operand encoding.
    pub const fn operand(self) -> IoOperand {
        if self.0 & (1 << 6) != 0 {
            IoOperand::Immediate
        } else {
            IoOperand::Dx
        }
    }

    /// Bits 31:16: the port number.
    pub const fn port(self) -> u16 {
        (self.0 >> 16) as u16
    }
}

/// The accumulator register for an access size ("al", "ax", "eax").
const fn accumulator(size: u8) -> &'static str {
    match size {
        1 => "al",
        2 => "ax",
        _ => "eax",
    }
}

impl fmt::Display for IoQualification {
    /// Prints the instruction, e.g. `OUT dx, al to port 0x3F8, 1 byte`,
    /// `IN eax, 0x70 from port 0x70, 4 bytes` or
    /// `REP OUTSB to port 0x3F8, 1 byte`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let port = self.port();
        let Some(size) = self.size() else {
            return write!(f, "I/O instruction with invalid size encoding {:#x}", self.0);
        };
        let units = if size == 1 { "byte" } else { "bytes" };
        let to_from = match self.direction() {
            IoDirection::Out => "to",
            IoDirection::In => "from",
        };
        if self.is_string() {
            let rep = if self.is_rep() { "REP " } else { "" };
            let mnemonic = match self.direction() {
                IoDirection::Out => "OUTS",
                IoDirection::In => "INS",
            };
            let suffix = match size {
                1 => "B",
                2 => "W",
                _ => "D",
            };
            return write!(f, "{rep}{mnemonic}{suffix} {to_from} port {port:#X}, {size} {units}");
        }
        let reg = accumulator(size);
        match (self.direction(), self.operand()) {
            (IoDirection::Out, IoOperand::Dx) => write!(f, "OUT dx, {reg}")?,
            (IoDirection::Out, IoOperand::Immediate) => write!(f, "OUT {port:#X}, {reg}")?,
            (IoDirection::In, IoOperand::Dx) => write!(f, "IN {reg}, dx")?,
            (IoDirection::In, IoOperand::Immediate) => write!(f, "IN {reg}, {port:#X}")?,
        }
        write!(f, " {to_from} port {port:#X}, {size} {units}")
    }
}

// ---------------------------------------------------------------------------
// Control-register accesses
// ---------------------------------------------------------------------------

/// Kind of control-register access.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CrAccessType {
    /// MOV to CR (access type 0).
    MovToCr,
    /// MOV from CR (access type 1).
    MovFromCr,
    /// CLTS (access type 2).
    Clts,
    /// LMSW (access type 3).
    Lmsw,
}

/// Exit qualification for control-register accesses (SDM Vol. 3C, 28.2.1
/// "Basic VM-Exit Information", Table "Exit Qualification for
/// Control-Register Accesses").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CrAccessQualification(pub u64);

impl CrAccessQualification {
    /// Bits 3:0: number of the control register (0 for CLTS and LMSW).
    pub const fn cr(self) -> u8 {
        (self.0 & 0xF) as u8
    }

    /// Bits 5:4: access type.
    pub const fn access_type(self) -> CrAccessType {
        match (self.0 >> 4) & 0b11 {
            0 => CrAccessType::MovToCr,
            1 => CrAccessType::MovFromCr,
            2 => CrAccessType::Clts,
            _ => CrAccessType::Lmsw,
        }
    }

    /// Bit 6: LMSW operand type: `true` = memory, `false` = register.
    pub const fn lmsw_memory_operand(self) -> bool {
        self.0 & (1 << 6) != 0
    }

    /// Bits 11:8: the general-purpose register of a MOV CR (0 = RAX, 1 = RCX,
    /// 2 = RDX, 3 = RBX, 4 = RSP, 5 = RBP, 6 = RSI, 7 = RDI, 8-15 = R8-R15).
    pub const fn gpr(self) -> u8 {
        ((self.0 >> 8) & 0xF) as u8
    }

    /// Bits 31:16: the LMSW source operand (only its low 4 bits are used).
    pub const fn lmsw_source(self) -> u16 {
        (self.0 >> 16) as u16
    }
}

/// Name of a general-purpose register by its number in exit qualifications
/// and instruction information (0 = "rax" ... 15 = "r15").
pub const fn gpr_name(number: u8) -> &'static str {
    const NAMES: [&str; 16] =
        ["rax", "rcx", "rdx", "rbx", "rsp", "rbp", "rsi", "rdi", "r8", "r9", "r10", "r11", "r12", "r13", "r14", "r15"];
    NAMES[(number & 0xF) as usize]
}

impl fmt::Display for CrAccessQualification {
    /// Prints the instruction, e.g. `MOV cr3, rax`, `MOV rbx, cr4`, `CLTS`, `LMSW 0x1`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.access_type() {
            CrAccessType::MovToCr => write!(f, "MOV cr{}, {}", self.cr(), gpr_name(self.gpr())),
            CrAccessType::MovFromCr => write!(f, "MOV {}, cr{}", gpr_name(self.gpr()), self.cr()),
            CrAccessType::Clts => f.write_str("CLTS"),
            CrAccessType::Lmsw => write!(f, "LMSW {:#x}", self.lmsw_source()),
        }
    }
}

// ---------------------------------------------------------------------------
// EPT violations
// ---------------------------------------------------------------------------

/// Exit qualification for EPT violations (SDM Vol. 3C, 28.2.1 "Basic
/// VM-Exit Information", Table "Exit Qualification for EPT Violations";
/// see also 29.3.3.2 "EPT Violations").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EptViolationQualification(pub u64);

impl EptViolationQualification {
    /// Bit 0: the access was a data read.
    pub const fn read(self) -> bool {
        self.0 & (1 << 0) != 0
    }

    /// Bit 1: the access was a data write.
    pub const fn write(self) -> bool {
        self.0 & (1 << 1) != 0
    }

    /// Bit 2: the access was an instruction fetch.
    pub const fn fetch(self) -> bool {
        self.0 & (1 << 2) != 0
    }

    /// Bit 3: the guest-physical address was readable (AND of bit 0 of the
    /// EPT entries on the walk).
    pub const fn readable(self) -> bool {
        self.0 & (1 << 3) != 0
    }

    /// Bit 4: the guest-physical address was writable.
    pub const fn writable(self) -> bool {
        self.0 & (1 << 4) != 0
    }

    /// Bit 5: the guest-physical address was executable (for supervisor-mode
    /// linear addresses when "mode-based execute control for EPT" is 1).
    pub const fn executable(self) -> bool {
        self.0 & (1 << 5) != 0
    }

    /// Bit 6: executable for user-mode linear addresses (only meaningful with
    /// "mode-based execute control for EPT").
    pub const fn user_executable(self) -> bool {
        self.0 & (1 << 6) != 0
    }

    /// Whether no EPT entry on the walk granted anything (bits 5:3 all 0):
    /// the page is simply not mapped, as opposed to mapped with too few rights.
    pub const fn not_present(self) -> bool {
        self.0 & (0b111 << 3) == 0
    }

    /// Bit 7: the guest-linear address field of the VMCS is valid.
    pub const fn linear_address_valid(self) -> bool {
        self.0 & (1 << 7) != 0
    }

    /// Bit 8 (meaningful when bit 7 is 1): `true` = the access was to the
    /// translation of the linear address (the final data or code), `false` =
    /// to a guest paging-structure entry during the page walk.
    pub const fn access_to_translated_address(self) -> bool {
        self.0 & (1 << 8) != 0
    }

    /// Bit 12: the exit came from an IRET that unblocked NMIs; the
    /// hypervisor must set "blocking by NMI" again before re-entering (if
    /// "virtual NMIs" is 0).
    pub const fn nmi_unblocking(self) -> bool {
        self.0 & (1 << 12) != 0
    }

    /// Pairs the qualification with the faulting guest-physical address
    /// (VMCS field "Guest-physical address") for printing.
    pub const fn at(self, guest_physical: u64) -> EptViolation {
        EptViolation { qualification: self, guest_physical }
    }
}

/// An EPT violation with its address, printable as e.g.
/// `write to GPA 0x5000000, not present`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EptViolation {
    /// The exit qualification.
    pub qualification: EptViolationQualification,
    /// The guest-physical address that was accessed.
    pub guest_physical: u64,
}

impl fmt::Display for EptViolation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let q = self.qualification;
        let mut first = true;
        for (present, name) in [(q.read(), "read"), (q.write(), "write"), (q.fetch(), "fetch")] {
            if present {
                if !first {
                    f.write_str("/")?;
                }
                f.write_str(name)?;
                first = false;
            }
        }
        if first {
            f.write_str("access")?;
        }
        write!(f, " to GPA {:#x}, ", self.guest_physical)?;
        if q.not_present() {
            f.write_str("not present")?;
        } else {
            let r = if q.readable() { 'r' } else { '-' };
            let w = if q.writable() { 'w' } else { '-' };
            let x = if q.executable() { 'x' } else { '-' };
            write!(f, "page is {r}{w}{x}")?;
        }
        if q.linear_address_valid() && !q.access_to_translated_address() {
            f.write_str(" (guest page-table walk)")?;
        }
        Ok(())
    }
}

// ---------------------------------------------------------------------------
// Events: interruption information
// ---------------------------------------------------------------------------

/// Type of an event in interruption-information fields (bits 10:8).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InterruptionType {
    /// 0: external interrupt.
    ExternalInterrupt,
    /// 1: reserved (never valid).
    Reserved,
    /// 2: non-maskable interrupt.
    Nmi,
    /// 3: hardware exception (every exception except those raised by INT1, INT3, INTO).
    HardwareException,
    /// 4: software interrupt (INT n).
    SoftwareInterrupt,
    /// 5: privileged software exception (INT1 / ICEBP).
    PrivilegedSoftwareException,
    /// 6: software exception (INT3 or INTO).
    SoftwareException,
    /// 7: other event (e.g. MTF injection on VM entry).
    OtherEvent,
}

impl InterruptionType {
    /// Decodes bits 10:8 (only the low 3 bits of `value` are used).
    pub const fn from_bits(value: u32) -> Self {
        match value & 0b111 {
            0 => Self::ExternalInterrupt,
            1 => Self::Reserved,
            2 => Self::Nmi,
            3 => Self::HardwareException,
            4 => Self::SoftwareInterrupt,
            5 => Self::PrivilegedSoftwareException,
            6 => Self::SoftwareException,
            _ => Self::OtherEvent,
        }
    }

    /// The 3-bit encoding.
    pub const fn bits(self) -> u32 {
        match self {
            Self::ExternalInterrupt => 0,
            Self::Reserved => 1,
            Self::Nmi => 2,
            Self::HardwareException => 3,
            Self::SoftwareInterrupt => 4,
            Self::PrivilegedSoftwareException => 5,
            Self::SoftwareException => 6,
            Self::OtherEvent => 7,
        }
    }

    /// Human-readable name.
    pub const fn name(self) -> &'static str {
        match self {
            Self::ExternalInterrupt => "external interrupt",
            Self::Reserved => "reserved type",
            Self::Nmi => "NMI",
            Self::HardwareException => "hardware exception",
            Self::SoftwareInterrupt => "software interrupt",
            Self::PrivilegedSoftwareException => "privileged software exception",
            Self::SoftwareException => "software exception",
            Self::OtherEvent => "other event",
        }
    }
}

/// An interruption-information word. One layout serves three VMCS fields:
///
/// * VM-entry interruption-information field (0x4016): the event to inject
///   (SDM Vol. 3C, 25.8.3 "VM-Entry Controls for Event Injection");
/// * VM-exit interruption information (0x4404): the event that caused the
///   exit (SDM Vol. 3C, 25.9.2 "Information for VM Exits Due to Vectored Events");
/// * IDT-vectoring information (0x4408): the event being delivered when the
///   exit happened (SDM Vol. 3C, 25.9.3 "Information for VM Exits That Occur
///   During Event Delivery").
///
/// | bits | meaning |
/// |---|---|
/// | 7:0 | vector |
/// | 10:8 | [`InterruptionType`] |
/// | 11 | deliver / error code valid |
/// | 12 | NMI unblocking due to IRET (exit interruption info only; 0 on entry) |
/// | 30:13 | reserved (0) |
/// | 31 | valid |
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct InterruptionInfo(pub u32);

impl InterruptionInfo {
    /// Bit 11: an error code is delivered (entry) / was pushed (exit).
    pub const ERROR_CODE: u32 = 1 << 11;
    /// Bit 12: NMI unblocking due to IRET.
    pub const NMI_UNBLOCKING: u32 = 1 << 12;
    /// Bit 31: the field is valid.
    pub const VALID: u32 = 1 << 31;
    /// An invalid (empty) field: nothing to inject.
    pub const NONE: Self = Self(0);

    /// Builds a valid event from its parts.
    pub const fn new(vector: u8, kind: InterruptionType, error_code: bool) -> Self {
        let mut value = Self::VALID | (kind.bits() << 8) | vector as u32;
        if error_code {
            value |= Self::ERROR_CODE;
        }
        Self(value)
    }

    /// A hardware exception to inject, with the error-code bit set exactly
    /// when the exception pushes one ([`Exception::has_error_code`]); put the
    /// code itself in "VM-entry exception error code".
    ///
    /// VM entry requires the error-code bit to be 0 when the guest is in real
    /// mode under "unrestricted guest" (SDM Vol. 3C, 27.2.1.3 "Checks on
    /// VM-Entry Control Fields"): use [`Self::without_error_code`] then.
    ///
    /// [`Exception::Nmi`] gives [`Self::nmi`], since an NMI has its own type.
    pub const fn exception(exception: Exception) -> Self {
        match exception {
            Exception::Nmi => Self::nmi(),
            e => Self::new(e.vector(), InterruptionType::HardwareException, e.has_error_code()),
        }
    }

    /// A hardware exception without an error code.
    pub const fn hardware_exception(vector: u8) -> Self {
        Self::new(vector, InterruptionType::HardwareException, false)
    }

    /// A hardware exception with an error code.
    pub const fn hardware_exception_with_error_code(vector: u8) -> Self {
        Self::new(vector, InterruptionType::HardwareException, true)
    }

    /// An external interrupt with the given vector.
    pub const fn external_interrupt(vector: u8) -> Self {
        Self::new(vector, InterruptionType::ExternalInterrupt, false)
    }

    /// A non-maskable interrupt (vector 2).
    pub const fn nmi() -> Self {
        Self::new(2, InterruptionType::Nmi, false)
    }

    /// The same event with the error-code bit cleared.
    pub const fn without_error_code(self) -> Self {
        Self(self.0 & !Self::ERROR_CODE)
    }

    /// Bits 7:0: the vector.
    pub const fn vector(self) -> u8 {
        self.0 as u8
    }

    /// Bits 10:8: the event type.
    pub const fn interruption_type(self) -> InterruptionType {
        InterruptionType::from_bits(self.0 >> 8)
    }

    /// Bit 11: error code delivered / valid.
    pub const fn error_code_valid(self) -> bool {
        self.0 & Self::ERROR_CODE != 0
    }

    /// Bit 12: NMI unblocking due to IRET (VM-exit interruption information).
    pub const fn nmi_unblocking(self) -> bool {
        self.0 & Self::NMI_UNBLOCKING != 0
    }

    /// Bit 31: valid.
    pub const fn valid(self) -> bool {
        self.0 & Self::VALID != 0
    }

    /// The raw value to write to the VMCS.
    pub const fn to_u32(self) -> u32 {
        self.0
    }

    /// The exception, if this is a valid hardware or software exception
    /// with an architecturally defined vector.
    pub const fn exception_kind(self) -> Option<Exception> {
        match self.interruption_type() {
            InterruptionType::HardwareException
            | InterruptionType::SoftwareException
            | InterruptionType::PrivilegedSoftwareException
                if self.valid() =>
            {
                Exception::from_vector(self.vector())
            }
            _ => None,
        }
    }
}

impl fmt::Display for InterruptionInfo {
    /// Prints e.g. `hardware exception #GP (general protection), error code`
    /// or `invalid`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if !self.valid() {
            return f.write_str("invalid");
        }
        let kind = self.interruption_type();
        match self.exception_kind() {
            Some(e) => write!(f, "{} {} ({})", kind.name(), e.mnemonic(), e.name())?,
            None => write!(f, "{} vector {:#x}", kind.name(), self.vector())?,
        }
        if self.error_code_valid() {
            f.write_str(", error code")?;
        }
        if self.nmi_unblocking() {
            f.write_str(", NMI unblocking")?;
        }
        Ok(())
    }
}

/// The architecturally defined exceptions, vectors 0-21 (SDM Vol. 3A,
/// chapter "Interrupt and Exception Handling", Table "Protected-Mode
/// Exceptions and Interrupts"). Vector 15 is reserved.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Exception {
    /// #DE (0).
    DivideError = 0,
    /// #DB (1).
    Debug = 1,
    /// NMI (2): an interrupt, listed for completeness.
    Nmi = 2,
    /// #BP (3).
    Breakpoint = 3,
    /// #OF (4).
    Overflow = 4,
    /// #BR (5).
    BoundRangeExceeded = 5,
    /// #UD (6).
    InvalidOpcode = 6,
    /// #NM (7).
    DeviceNotAvailable = 7,
    /// #DF (8), error code 0.
    DoubleFault = 8,
    /// Coprocessor segment overrun (9), not generated by modern processors.
    CoprocessorSegmentOverrun = 9,
    /// #TS (10), with error code.
    InvalidTss = 10,
    /// #NP (11), with error code.
    SegmentNotPresent = 11,
    /// #SS (12), with error code.
    StackSegmentFault = 12,
    /// #GP (13), with error code.
    GeneralProtection = 13,
    /// #PF (14), with error code; the address is in CR2.
    PageFault = 14,
    /// #MF (16).
    X87FloatingPoint = 16,
    /// #AC (17), error code 0.
    AlignmentCheck = 17,
    /// #MC (18).
    MachineCheck = 18,
    /// #XM (19).
    SimdFloatingPoint = 19,
    /// #VE (20).
    Virtualization = 20,
    /// #CP (21), with error code.
    ControlProtection = 21,
}

impl Exception {
    /// Decodes a vector; `None` for 15 and for vectors above 21.
    pub const fn from_vector(vector: u8) -> Option<Self> {
        Some(match vector {
            0 => Self::DivideError,
            1 => Self::Debug,
            2 => Self::Nmi,
            3 => Self::Breakpoint,
            4 => Self::Overflow,
            5 => Self::BoundRangeExceeded,
            6 => Self::InvalidOpcode,
            7 => Self::DeviceNotAvailable,
            8 => Self::DoubleFault,
            9 => Self::CoprocessorSegmentOverrun,
            10 => Self::InvalidTss,
            11 => Self::SegmentNotPresent,
            12 => Self::StackSegmentFault,
            13 => Self::GeneralProtection,
            14 => Self::PageFault,
            16 => Self::X87FloatingPoint,
            17 => Self::AlignmentCheck,
            18 => Self::MachineCheck,
            19 => Self::SimdFloatingPoint,
            20 => Self::Virtualization,
            21 => Self::ControlProtection,
            _ => return None,
        })
    }

    /// The vector number.
    pub const fn vector(self) -> u8 {
        self as u8
    }

    /// The mnemonic, e.g. "#GP" ("NMI" and "CSO" for the two vectors the SDM
    /// gives no mnemonic).
    pub const fn mnemonic(self) -> &'static str {
        match self {
            Self::DivideError => "#DE",
            Self::Debug => "#DB",
            Self::Nmi => "NMI",
            Self::Breakpoint => "#BP",
            Self::Overflow => "#OF",
            Self::BoundRangeExceeded => "#BR",
            Self::InvalidOpcode => "#UD",
            Self::DeviceNotAvailable => "#NM",
            Self::DoubleFault => "#DF",
            Self::CoprocessorSegmentOverrun => "CSO",
            Self::InvalidTss => "#TS",
            Self::SegmentNotPresent => "#NP",
            Self::StackSegmentFault => "#SS",
            Self::GeneralProtection => "#GP",
            Self::PageFault => "#PF",
            Self::X87FloatingPoint => "#MF",
            Self::AlignmentCheck => "#AC",
            Self::MachineCheck => "#MC",
            Self::SimdFloatingPoint => "#XM",
            Self::Virtualization => "#VE",
            Self::ControlProtection => "#CP",
        }
    }

    /// The description, e.g. "divide error".
    pub const fn name(self) -> &'static str {
        match self {
            Self::DivideError => "divide error",
            Self::Debug => "debug exception",
            Self::Nmi => "non-maskable interrupt",
            Self::Breakpoint => "breakpoint",
            Self::Overflow => "overflow",
            Self::BoundRangeExceeded => "BOUND range exceeded",
            Self::InvalidOpcode => "invalid opcode",
            Self::DeviceNotAvailable => "device not available",
            Self::DoubleFault => "double fault",
            Self::CoprocessorSegmentOverrun => "coprocessor segment overrun",
            Self::InvalidTss => "invalid TSS",
            Self::SegmentNotPresent => "segment not present",
            Self::StackSegmentFault => "stack-segment fault",
            Self::GeneralProtection => "general protection",
            Self::PageFault => "page fault",
            Self::X87FloatingPoint => "x87 FPU floating-point error",
            Self::AlignmentCheck => "alignment check",
            Self::MachineCheck => "machine check",
            Self::SimdFloatingPoint => "SIMD floating-point exception",
            Self::Virtualization => "virtualization exception",
            Self::ControlProtection => "control protection exception",
        }
    }

    /// Whether delivering this exception pushes an error code.
    pub const fn has_error_code(self) -> bool {
        pushes_error_code(self.vector())
    }
}

/// Whether the exception with this vector pushes an error code: #DF (8),
/// #TS (10), #NP (11), #SS (12), #GP (13), #PF (14), #AC (17), #CP (21).
/// These are also the vectors for which VM entry accepts "deliver error code".
pub const fn pushes_error_code(vector: u8) -> bool {
    matches!(vector, 8 | 10 | 11 | 12 | 13 | 14 | 17 | 21)
}

// ---------------------------------------------------------------------------
// INS/OUTS: instruction information
// ---------------------------------------------------------------------------

/// A segment register, numbered as in VM-exit instruction-information fields
/// (and in the ModR/M sreg encoding): 0 = ES, 1 = CS, 2 = SS, 3 = DS, 4 = FS,
/// 5 = GS.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SegmentRegister {
    /// ES (0).
    Es,
    /// CS (1).
    Cs,
    /// SS (2).
    Ss,
    /// DS (3).
    Ds,
    /// FS (4).
    Fs,
    /// GS (5).
    Gs,
}

impl SegmentRegister {
    /// Every segment register, in number order.
    pub const ALL: [SegmentRegister; 6] = [Self::Es, Self::Cs, Self::Ss, Self::Ds, Self::Fs, Self::Gs];

    /// Decodes a 3-bit segment-register number; `None` for 6 and 7 (and above).
    pub const fn from_number(number: u32) -> Option<Self> {
        Some(match number {
            0 => Self::Es,
            1 => Self::Cs,
            2 => Self::Ss,
            3 => Self::Ds,
            4 => Self::Fs,
            5 => Self::Gs,
            _ => return None,
        })
    }

    /// The 3-bit number.
    pub const fn number(self) -> u8 {
        self as u8
    }

    /// The register's name, lowercase like [`gpr_name`]: "es" ... "gs".
    pub const fn name(self) -> &'static str {
        match self {
            Self::Es => "es",
            Self::Cs => "cs",
            Self::Ss => "ss",
            Self::Ds => "ds",
            Self::Fs => "fs",
            Self::Gs => "gs",
        }
    }
}

impl fmt::Display for SegmentRegister {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The VM-exit instruction-information field (VMCS 0x440E) of an exit due to
/// INS or OUTS (SDM Vol. 3C, 28.2.5 "Information for VM Exits Due to
/// Instruction Execution", Table "Format of the VM-Exit
/// Instruction-Information Field as Used for INS and OUTS"):
///
/// | bits | meaning |
/// |---|---|
/// | 6:0 | undefined |
/// | 9:7 | address size: 0 = 16-bit, 1 = 32-bit, 2 = 64-bit |
/// | 14:10 | undefined |
/// | 17:15 | segment register (OUTS only; undefined for INS) |
/// | 31:18 | undefined |
///
/// The processor stores this for INS/OUTS only if IA32_VMX_BASIC bit 54 is 1
/// ([`crate::caps`]); otherwise the hypervisor must decode the instruction.
/// INS always writes to ES:(E/R)DI, which no prefix overrides, so its segment
/// field is undefined; OUTS reads from DS:(E/R)SI or the override's segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StringIoInfo(pub u32);

impl StringIoInfo {
    /// Bits 9:7: the address size in bytes (2, 4 or 8), which decides whether
    /// SI/ESI/RSI (DI/EDI/RDI) and CX/ECX/RCX are used; `None` for the unused
    /// encodings 3-7.
    pub const fn address_size_bytes(self) -> Option<u8> {
        match (self.0 >> 7) & 0b111 {
            0 => Some(2),
            1 => Some(4),
            2 => Some(8),
            _ => None,
        }
    }

    /// Bits 17:15: the segment register of the memory operand; meaningful
    /// for OUTS only (INS uses ES). `None` for the unused encodings 6 and 7.
    pub const fn segment(self) -> Option<SegmentRegister> {
        SegmentRegister::from_number((self.0 >> 15) & 0b111)
    }
}

impl fmt::Display for StringIoInfo {
    /// Prints e.g. `ds segment, 32-bit addresses` (`?` for an unused encoding).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.segment() {
            Some(segment) => write!(f, "{segment} segment, ")?,
            None => f.write_str("? segment, ")?,
        }
        match self.address_size_bytes() {
            Some(bytes) => write!(f, "{}-bit addresses", bytes as u32 * 8),
            None => f.write_str("?-bit addresses"),
        }
    }
}

#[cfg(test)]
mod string_io_tests {
    use super::*;
    use std::string::ToString;

    #[test]
    fn address_sizes() {
        assert_eq!(StringIoInfo(0).address_size_bytes(), Some(2));
        assert_eq!(StringIoInfo(1 << 7).address_size_bytes(), Some(4));
        assert_eq!(StringIoInfo(2 << 7).address_size_bytes(), Some(8));
        for unused in 3..8 {
            assert_eq!(StringIoInfo(unused << 7).address_size_bytes(), None, "{unused}");
        }
        // The undefined bits around the field do not leak into it.
        assert_eq!(StringIoInfo(!(0b111 << 7) | (1 << 7)).address_size_bytes(), Some(4));
    }

    #[test]
    fn segments() {
        for (number, segment) in SegmentRegister::ALL.into_iter().enumerate() {
            assert_eq!(segment.number() as usize, number);
            assert_eq!(SegmentRegister::from_number(number as u32), Some(segment));
            assert_eq!(StringIoInfo((number as u32) << 15).segment(), Some(segment));
        }
        assert_eq!(StringIoInfo(6 << 15).segment(), None);
        assert_eq!(StringIoInfo(7 << 15).segment(), None);
        assert_eq!(SegmentRegister::from_number(8), None);
        let names: std::vec::Vec<&str> = SegmentRegister::ALL.iter().map(|s| s.name()).collect();
        assert_eq!(names, ["es", "cs", "ss", "ds", "fs", "gs"]);
        // Undefined bits 31:18 and 14:10 are ignored.
        assert_eq!(StringIoInfo(0xFFFC_7C00 | (4 << 15)).segment(), Some(SegmentRegister::Fs));
    }

    #[test]
    fn outs_with_override() {
        // REP OUTSB with a GS override in 64-bit code: address size 2, segment 5.
        let info = StringIoInfo((5 << 15) | (2 << 7));
        assert_eq!(info.segment(), Some(SegmentRegister::Gs));
        assert_eq!(info.address_size_bytes(), Some(8));
        assert_eq!(info.to_string(), "gs segment, 64-bit addresses");
        assert_eq!(StringIoInfo((3 << 15) | (1 << 7)).to_string(), "ds segment, 32-bit addresses");
        assert_eq!(StringIoInfo((7 << 15) | (3 << 7)).to_string(), "? segment, ?-bit addresses");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::string::ToString;

    #[test]
    fn exit_reasons_round_trip_and_gaps() {
        for &reason in ExitReason::ALL {
            assert_eq!(ExitReason::from_basic(reason.number()), Some(reason));
        }
        for gap in [35, 38, 42, 71, 80, 0xFFFF] {
            assert_eq!(ExitReason::from_basic(gap), None, "{gap}");
        }
        assert_eq!(ExitReason::ALL.len(), 80 - 4);
        assert_eq!(ExitReason::from_basic(10), Some(ExitReason::Cpuid));
        assert_eq!(ExitReason::from_basic(18), Some(ExitReason::Vmcall));
        assert_eq!(ExitReason::from_basic(30), Some(ExitReason::IoInstruction));
        assert_eq!(ExitReason::from_basic(48), Some(ExitReason::EptViolation));
        assert_eq!(ExitReason::from_basic(52), Some(ExitReason::PreemptionTimerExpired));
        assert_eq!(ExitReason::EptViolation.to_string(), "EPT violation (48)");
    }

    #[test]
    fn raw_exit_reason_bits() {
        let failure = RawExitReason(0x8000_0021);
        assert_eq!(failure.basic(), 33);
        assert_eq!(failure.reason(), Some(ExitReason::EntryFailureGuestState));
        assert!(failure.entry_failure());
        assert_eq!(failure.to_string(), "VM-entry failure due to invalid guest state (33) [VM-entry failure]");
        let normal = RawExitReason(12);
        assert!(!normal.entry_failure());
        assert_eq!(normal.reason(), Some(ExitReason::Hlt));
        let flags = RawExitReason((1 << 26) | (1 << 27) | (1 << 28) | (1 << 29) | 1);
        assert!(flags.bus_lock_detected() && flags.enclave_mode());
        assert!(flags.pending_mtf() && flags.from_vmx_root());
        assert_eq!(flags.reason(), Some(ExitReason::ExternalInterrupt));
        assert_eq!(RawExitReason(71).to_string(), "unknown exit reason (71)");
    }

    #[test]
    fn io_out_dx_al() {
        // OUT DX, AL with DX = 0x3F8: size 0 (1 byte), out, not string, DX operand.
        let q = IoQualification(0x03F8 << 16);
        assert_eq!(q.size(), Some(1));
        assert_eq!(q.direction(), IoDirection::Out);
        assert!(!q.is_string() && !q.is_rep());
        assert_eq!(q.operand(), IoOperand::Dx);
        assert_eq!(q.port(), 0x3F8);
        assert_eq!(q.to_string(), "OUT dx, al to port 0x3F8, 1 byte");
    }

    #[test]
    fn io_in_immediate_and_string_forms() {
        // IN EAX, 0x70: size 3 (4 bytes), in, immediate.
        let q = IoQualification((0x70 << 16) | (1 << 6) | (1 << 3) | 3);
        assert_eq!(q.size(), Some(4));
        assert_eq!(q.direction(), IoDirection::In);
        assert_eq!(q.operand(), IoOperand::Immediate);
        assert_eq!(q.to_string(), "IN eax, 0x70 from port 0x70, 4 bytes");

        // IN AX, DX from 0x1F0.
        let q = IoQualification((0x1F0 << 16) | (1 << 3) | 1);
        assert_eq!(q.to_string(), "IN ax, dx from port 0x1F0, 2 bytes");

        // REP OUTSB to 0x3F8: string + rep.
        let q = IoQualification((0x3F8 << 16) | (1 << 5) | (1 << 4));
        assert!(q.is_string() && q.is_rep());
        assert_eq!(q.to_string(), "REP OUTSB to port 0x3F8, 1 byte");

        // INSW without REP.
        let q = IoQualification((0x60 << 16) | (1 << 4) | (1 << 3) | 1);
        assert_eq!(q.to_string(), "INSW from port 0x60, 2 bytes");

        // Unused size encoding 2.
        assert_eq!(IoQualification(2).size(), None);
        assert!(IoQualification(2).to_string().contains("invalid size"));
    }

    #[test]
    fn cr_access() {
        // MOV CR3, RAX: cr 3, type 0, gpr 0.
        let q = CrAccessQualification(3);
        assert_eq!(q.cr(), 3);
        assert_eq!(q.access_type(), CrAccessType::MovToCr);
        assert_eq!(q.gpr(), 0);
        assert_eq!(q.to_string(), "MOV cr3, rax");

        // MOV R12, CR4: cr 4, type 1, gpr 12.
        let q = CrAccessQualification((12 << 8) | (1 << 4) | 4);
        assert_eq!(q.access_type(), CrAccessType::MovFromCr);
        assert_eq!(q.gpr(), 12);
        assert_eq!(q.to_string(), "MOV r12, cr4");

        // CLTS: type 2.
        assert_eq!(CrAccessQualification(2 << 4).access_type(), CrAccessType::Clts);
        assert_eq!(CrAccessQualification(2 << 4).to_string(), "CLTS");

        // LMSW with a memory operand and source 0x0001.
        let q = CrAccessQualification((1 << 16) | (1 << 6) | (3 << 4));
        assert_eq!(q.access_type(), CrAccessType::Lmsw);
        assert!(q.lmsw_memory_operand());
        assert_eq!(q.lmsw_source(), 1);
        assert_eq!(q.to_string(), "LMSW 0x1");
        assert_eq!(gpr_name(4), "rsp");
    }

    #[test]
    fn ept_violation_not_present_write() {
        // Data write to an unmapped page, linear address valid, translated access.
        let q = EptViolationQualification((1 << 1) | (1 << 7) | (1 << 8));
        assert!(q.write() && !q.read() && !q.fetch());
        assert!(q.not_present());
        assert!(q.linear_address_valid());
        assert!(q.access_to_translated_address());
        assert!(!q.nmi_unblocking());
        assert_eq!(q.at(0x500_0000).to_string(), "write to GPA 0x5000000, not present");
    }

    #[test]
    fn ept_violation_permissions_and_walk() {
        // Fetch from a read-only page during a guest page walk, with NMI unblocking.
        let q = EptViolationQualification((1 << 2) | (1 << 3) | (1 << 7) | (1 << 12));
        assert!(q.fetch());
        assert!(q.readable() && !q.writable() && !q.executable());
        assert!(!q.not_present());
        assert!(!q.access_to_translated_address());
        assert!(q.nmi_unblocking());
        assert_eq!(q.at(0x1000).to_string(), "fetch to GPA 0x1000, page is r-- (guest page-table walk)");

        // Read-modify-write on an r-x page, no linear address.
        let q = EptViolationQualification(0b11 | (1 << 3) | (1 << 5));
        assert_eq!(q.at(0xfee0_0000).to_string(), "read/write to GPA 0xfee00000, page is r-x");
        assert!(EptViolationQualification(1 << 6).user_executable());
    }

    #[test]
    fn interruption_info_construct_and_decode() {
        let gp = InterruptionInfo::exception(Exception::GeneralProtection);
        assert_eq!(gp.to_u32(), 0x8000_0B0D);
        assert!(gp.valid() && gp.error_code_valid());
        assert_eq!(gp.vector(), 13);
        assert_eq!(gp.interruption_type(), InterruptionType::HardwareException);
        assert_eq!(gp.to_string(), "hardware exception #GP (general protection), error code");
        assert_eq!(gp.without_error_code().to_u32(), 0x8000_030D);

        let ud = InterruptionInfo::exception(Exception::InvalidOpcode);
        assert_eq!(ud.to_u32(), 0x8000_0306);
        assert_eq!(InterruptionInfo::hardware_exception(6), ud);
        assert_eq!(InterruptionInfo::hardware_exception_with_error_code(14).to_u32(), 0x8000_0B0E);
        assert_eq!(InterruptionInfo::external_interrupt(0x20).to_u32(), 0x8000_0020);
        assert_eq!(InterruptionInfo::nmi().to_u32(), 0x8000_0202);
        assert_eq!(InterruptionInfo::exception(Exception::Nmi), InterruptionInfo::nmi());
        assert_eq!(InterruptionInfo::NONE.to_string(), "invalid");
    }

    #[test]
    fn interruption_info_from_exit() {
        // VM-exit interruption info for INT3 with NMI unblocking: type 6, vector 3, bit 12.
        let info = InterruptionInfo(0x8000_1603);
        assert_eq!(info.interruption_type(), InterruptionType::SoftwareException);
        assert_eq!(info.exception_kind(), Some(Exception::Breakpoint));
        assert!(info.nmi_unblocking());
        assert!(!info.error_code_valid());
        assert_eq!(info.to_string(), "software exception #BP (breakpoint), NMI unblocking");
        // External interrupt 0x30 acknowledged on exit.
        let irq = InterruptionInfo(0x8000_0030);
        assert_eq!(irq.exception_kind(), None);
        assert_eq!(irq.to_string(), "external interrupt vector 0x30");
        assert_eq!(InterruptionType::from_bits(1), InterruptionType::Reserved);
    }

    #[test]
    fn exceptions() {
        for vector in 0..=255u8 {
            if let Some(e) = Exception::from_vector(vector) {
                assert_eq!(e.vector(), vector);
                assert_eq!(e.has_error_code(), pushes_error_code(vector));
            }
        }
        assert_eq!(Exception::from_vector(15), None);
        assert_eq!(Exception::from_vector(22), None);
        assert_eq!(Exception::DivideError.name(), "divide error");
        assert_eq!(Exception::PageFault.mnemonic(), "#PF");
        let with_code: std::vec::Vec<u8> = (0..32).filter(|&v| pushes_error_code(v)).collect();
        assert_eq!(with_code, [8, 10, 11, 12, 13, 14, 17, 21]);
    }
}
