//! Exit tracing (`cargo run -- --trace [GUEST]`): one line per VM exit of a
//! traced guest, e.g.
//!
//! ```text
//! [hv TRACE] protected32 #3 I/O instruction: OUT dx, al to port 0x3F8, 1 byte RIP 0x100012 [ee] -> emulated
//! [hv TRACE] protected32 #9 VMCALL: hypercall info(key 0) RIP 0x100040 [0f 01 c1] -> emulated
//! ```
//!
//! The exit, the registers it depends on and the instruction bytes are taken
//! *before* the handler runs (a handler changes RAX, RIP, ...); what the
//! handler did is printed after it. Everything here is out of line and cold,
//! and `Guest::run` picks its exit loop once per run (`Guest::traced`): the
//! loop of an untraced guest has no trace check at all.

use core::fmt;

use hypervisor_core::exit::{
    CrAccessQualification, EptViolationQualification, ExitReason, InterruptionInfo, IoQualification,
};
use hypervisor_core::guest_walk::{translate, AccessKind};
use hypervisor_core::hypercall::{Hypercall, InfoKey};
use hypervisor_core::vmcs_field::VmcsField;

use crate::vm::guest::{Flow, Guest};
use crate::vm::stats::Action;
use crate::vm::Host;
use crate::vmx::vcpu::Exit;
use crate::vmx::vmcs::{self, VmxError};

/// The longest x86 instruction (SDM Vol. 2A, 2.3.11 "AVX Instruction Length").
const MAX_INSTRUCTION: usize = 15;

/// Handles one exit of a traced guest and prints its trace line.
#[cold]
#[inline(never)]
pub fn handle_traced(guest: &mut Guest, exit: &Exit, slot: usize, host: &Host) -> Result<Flow, VmxError> {
    let what = What::capture(guest, exit);
    let bytes = Bytes::fetch(guest, exit);
    let result = guest.handle(exit, slot, host);
    let reason = ExitReason::from_basic(exit.basic_reason);
    let name = reason.map_or("unknown exit", ExitReason::name);
    crate::println!(
        "[hv TRACE] {} #{} {}{} RIP {:#x} {} -> {}",
        guest.name(),
        guest.stats.total_exits,
        name,
        what,
        exit.rip,
        ShowBytes(&bytes),
        Outcome(&result)
    );
    result
}

/// An exit's details in words, read before its handler ran.
enum What {
    Nothing,
    Io(IoQualification),
    Cr(CrAccessQualification),
    Cpuid { leaf: u64, subleaf: u64 },
    Rdmsr(u64),
    Wrmsr { msr: u64, value: u64 },
    Xsetbv { xcr: u64, value: u64 },
    Hypercall { number: u64, arguments: [u64; 3] },
    Ept { qualification: EptViolationQualification, gpa: u64 },
    Gpa(u64),
    Exception(InterruptionInfo),
    Qualification(u64),
}

impl What {
    /// Reads what the exit's reason needs: registers, qualification, addresses
    /// (VMREADs only; unlike `Vcpu::decode` nothing is written).
    fn capture(guest: &Guest, exit: &Exit) -> What {
        let r = &guest.vcpu.registers;
        let read = |field| vmcs::read(field).unwrap_or(0);
        let edx_eax = r.edx_eax();
        match ExitReason::from_basic(exit.basic_reason) {
            _ if exit.entry_failed() => What::Qualification(read(VmcsField::ExitQualification)),
            Some(ExitReason::IoInstruction) => What::Io(IoQualification(read(VmcsField::ExitQualification))),
            Some(ExitReason::ControlRegisterAccess) => {
                What::Cr(CrAccessQualification(read(VmcsField::ExitQualification)))
            }
            Some(ExitReason::Cpuid) => What::Cpuid { leaf: r.rax & 0xFFFF_FFFF, subleaf: r.rcx & 0xFFFF_FFFF },
            Some(ExitReason::Rdmsr) => What::Rdmsr(r.rcx & 0xFFFF_FFFF),
            Some(ExitReason::Wrmsr) => What::Wrmsr { msr: r.rcx & 0xFFFF_FFFF, value: edx_eax },
            Some(ExitReason::Xsetbv) => What::Xsetbv { xcr: r.rcx & 0xFFFF_FFFF, value: edx_eax },
            Some(ExitReason::Vmcall) => {
                // As the handler does: outside 64-bit mode only the low halves count.
                let width = if crate::vm::guest_cs_is_64bit().unwrap_or(false) { u64::MAX } else { 0xFFFF_FFFF };
                What::Hypercall { number: r.rax & width, arguments: [r.rdi & width, r.rsi & width, r.rdx & width] }
            }
            Some(ExitReason::EptViolation) => What::Ept {
                qualification: EptViolationQualification(read(VmcsField::ExitQualification)),
                gpa: read(VmcsField::GuestPhysicalAddress),
            },
            Some(ExitReason::EptMisconfiguration) => What::Gpa(read(VmcsField::GuestPhysicalAddress)),
            Some(ExitReason::ExceptionOrNmi) => {
                What::Exception(InterruptionInfo(read(VmcsField::ExitInterruptionInfo) as u32))
            }
            Some(
                ExitReason::Hlt
                | ExitReason::TripleFault
                | ExitReason::PreemptionTimerExpired
                | ExitReason::ExternalInterrupt,
            )
            | None => What::Nothing,
            Some(_) => What::Qualification(read(VmcsField::ExitQualification)),
        }
    }
}

impl fmt::Display for What {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            What::Nothing => Ok(()),
            What::Io(io) => write!(f, ": {io}"),
            What::Cr(access) => write!(f, ": {access}"),
            What::Cpuid { leaf, subleaf } => write!(f, " leaf {leaf:#x} subleaf {subleaf:#x}"),
            What::Rdmsr(msr) => write!(f, " {msr:#X}"),
            What::Wrmsr { msr, value } => write!(f, " {msr:#X} value {value:#x}"),
            What::Xsetbv { xcr, value } => write!(f, " XCR{xcr} value {value:#x}"),
            What::Hypercall { number, arguments: [a, b, _] } => match Hypercall::from_number(number) {
                Some(Hypercall::Print) => write!(f, ": hypercall print(gpa {a:#x}, {b} bytes)"),
                Some(Hypercall::Exit) => write!(f, ": hypercall exit(status {a:#x})"),
                Some(Hypercall::Info) => match InfoKey::from_number(a) {
                    Some(key) => write!(f, ": hypercall info({key:?})"),
                    None => write!(f, ": hypercall info(key {a})"),
                },
                Some(call) => write!(f, ": hypercall {}()", call.name()),
                None => write!(f, ": hypercall {number:#x} (unknown)"),
            },
            What::Ept { qualification, gpa } => write!(f, ": {}", qualification.at(gpa)),
            What::Gpa(gpa) => write!(f, ": GPA {gpa:#x}"),
            What::Exception(info) => write!(f, ": {info}"),
            What::Qualification(qualification) => write!(f, ": qualification {qualification:#x}"),
        }
    }
}

/// The bytes at the guest's RIP: the exiting instruction's length when the
/// CPU reports one, else up to 15; `None` when they cannot be read.
pub(crate) struct Bytes {
    bytes: [u8; MAX_INSTRUCTION],
    len: usize,
}

impl Bytes {
    /// The bytes read.
    pub(crate) fn as_slice(&self) -> &[u8] {
        &self.bytes[..self.len]
    }

    pub(crate) fn fetch(guest: &Guest, exit: &Exit) -> Option<Bytes> {
        let read = |field| vmcs::read(field).ok();
        let long_mode = crate::vm::guest_cs_is_64bit().ok()?;
        // In 64-bit mode the CS base is 0; otherwise linear = CS base + EIP.
        let linear =
            if long_mode { exit.rip } else { read(VmcsField::GuestCsBase)?.wrapping_add(exit.rip) & 0xFFFF_FFFF };
        let paging = crate::vm::guest_paging_registers().ok()?;
        // The VM-exit instruction length is defined for instruction exits only
        // (SDM Vol. 3C, 28.2.5 "Information for VM Exits Due to Instruction
        // Execution"); for the others show as much as an instruction can be.
        let len = match ExitReason::from_basic(exit.basic_reason) {
            Some(
                ExitReason::Cpuid
                | ExitReason::Hlt
                | ExitReason::Vmcall
                | ExitReason::IoInstruction
                | ExitReason::Rdmsr
                | ExitReason::Wrmsr
                | ExitReason::ControlRegisterAccess
                | ExitReason::Xsetbv,
            ) => (read(VmcsField::ExitInstructionLength)? as usize).clamp(1, MAX_INSTRUCTION),
            _ => MAX_INSTRUCTION,
        };
        let mut out = Bytes { bytes: [0; MAX_INSTRUCTION], len: 0 };
        // One translation per page: an instruction may straddle two pages.
        while out.len < len {
            let address = linear.wrapping_add(out.len as u64);
            let address = if long_mode { address } else { address & 0xFFFF_FFFF };
            let Ok(translation) =
                translate(&paging, address, AccessKind::Fetch, false, |table| guest.read_ram_u64(table))
            else {
                break;
            };
            let to_page_end = (4096 - (address & 0xFFF)) as usize;
            let chunk = (len - out.len).min(to_page_end);
            if guest.ram.read(translation.gpa, &mut out.bytes[out.len..out.len + chunk]).is_err() {
                break;
            }
            out.len += chunk;
        }
        (out.len > 0).then_some(out)
    }
}

/// Prints `[0f 01 c1]`, or `[?]` when nothing could be read.
pub(crate) struct ShowBytes<'a>(pub(crate) &'a Option<Bytes>);

impl fmt::Display for Bytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[")?;
        for (index, byte) in self.bytes[..self.len].iter().enumerate() {
            if index > 0 {
                f.write_str(" ")?;
            }
            write!(f, "{byte:02x}")?;
        }
        f.write_str("]")
    }
}

impl fmt::Display for ShowBytes<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(bytes) => write!(f, "{bytes}"),
            None => f.write_str("[?]"),
        }
    }
}

/// What the handler did, in words.
struct Outcome<'a>(&'a Result<Flow, VmxError>);

impl fmt::Display for Outcome<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Ok(Flow::Continue(Action::Emulated)) => f.write_str("emulated"),
            Ok(Flow::Continue(Action::Injected(vector))) => write!(f, "injected {}", ExceptionName(*vector)),
            Ok(Flow::Continue(Action::Resumed | Action::None)) => f.write_str("resumed"),
            Ok(Flow::Continue(Action::Stopped)) => f.write_str("stopped"),
            Ok(Flow::Yield(Action::Emulated)) => f.write_str("emulated; the guest yields the CPU"),
            Ok(Flow::Yield(_)) => f.write_str("end of its time slice"),
            Ok(Flow::Halt(wake)) => write!(f, "halted until TSC {wake}"),
            Ok(Flow::Exit(status)) => write!(f, "exit status {status:#x}"),
            Ok(Flow::Crash(crash)) => write!(f, "stopped: {crash}"),
            Err(error) => write!(f, "stopped: {error}"),
        }
    }
}

/// An exception vector by its mnemonic: `#GP(0)` style for the ones the
/// hypervisor injects (#GP and #PF push an error code; #UD does not).
struct ExceptionName(u8);

impl fmt::Display for ExceptionName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let error_code = || vmcs::read(VmcsField::EntryExceptionErrorCode).unwrap_or(0);
        match self.0 {
            6 => f.write_str("#UD"),
            13 => write!(f, "#GP({:#x})", error_code()),
            14 => write!(f, "#PF({:#x})", error_code()),
            vector => write!(f, "vector {vector}"),
        }
    }
}
