//! One virtual CPU: its VMCS, its general registers, and `run()`.
//!
//! This is the seam between VT-x and the rest of the hypervisor. `vm/` never
//! touches VMREAD/VMWRITE: it asks a [`Vcpu`] to run and gets back a typed
//! [`VmExit`] with the exit qualification already decoded, then tells the vCPU
//! what to change (advance RIP, inject an exception, set a register). An AMD-V
//! backend would offer the same surface.

use hypervisor_core::exit::{
    CrAccessQualification, EptViolationQualification, ExitReason, InterruptionInfo, IoQualification,
};
use hypervisor_core::instruction_error::VmxInstructionFailure;
use hypervisor_core::vmcs_field::VmcsField;

use crate::vmx::read_tsc;
use crate::vmx::run::{enter_guest, EntryResult, FastPath, GuestFrame, GuestRegisters};
use crate::vmx::vmcs::{self, VmcsRegion, VmxError};

/// A VM exit, decoded (SDM Vol. 3C, 28.2 "Recording VM-Exit Information and
/// Updating VM-Entry Control Fields").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VmExit {
    /// CPUID (exits unconditionally).
    Cpuid,
    /// HLT (HLT exiting is on).
    Hlt,
    /// IN/OUT/INS/OUTS (unconditional I/O exiting).
    Io(IoQualification),
    /// VMCALL: a hypercall.
    Vmcall,
    /// RDMSR (no MSR bitmap: every RDMSR exits).
    Rdmsr,
    /// WRMSR.
    Wrmsr,
    /// MOV to/from CR, CLTS, LMSW touching bits the hypervisor owns.
    CrAccess(CrAccessQualification),
    /// An EPT violation: an access EPT does not permit.
    EptViolation {
        /// What was accessed and how.
        qualification: EptViolationQualification,
        /// The guest-physical address.
        gpa: u64,
        /// The guest-linear address, when the CPU reports one.
        linear: Option<u64>,
    },
    /// An EPT misconfiguration: an EPT entry the CPU considers invalid.
    EptMisconfiguration {
        /// The guest-physical address being translated.
        gpa: u64,
    },
    /// An exception or NMI whose vector is set in the exception bitmap.
    ExceptionOrNmi {
        /// Vector, type, error-code validity.
        info: InterruptionInfo,
        /// The error code, when valid.
        error_code: Option<u32>,
        /// For #PF the faulting linear address, for #DB the debug details.
        qualification: u64,
    },
    /// XSETBV (exits unconditionally).
    Xsetbv,
    /// The guest can take an interrupt now (interrupt-window exiting is on).
    InterruptWindow,
    /// The guest can take an NMI now (NMI-window exiting is on).
    NmiWindow,
    /// An external interrupt arrived while the guest ran (the host owns them).
    ExternalInterrupt,
    /// The guest triple-faulted: it is in shutdown state.
    TripleFault,
    /// The VMX-preemption timer counted down to zero.
    PreemptionTimer,
    /// "Monitor trap flag": one guest instruction completed (single-stepping,
    /// SDM Vol. 3C, 26.5.2 "Monitor Trap Flag").
    MonitorTrap,
    /// A VM entry failed after loading guest state (exit reason bit 31).
    EntryFailure {
        /// Invalid guest state, MSR loading, or machine-check event.
        reason: ExitReason,
        /// For MSR loading: which entry failed.
        qualification: u64,
    },
    /// An exit reason number this hypervisor does not know.
    Unknown {
        /// The basic exit reason number.
        basic_reason: u16,
    },
    /// Any other exit, with its reason and raw qualification.
    Other {
        /// The basic exit reason.
        reason: ExitReason,
        /// The raw exit qualification.
        qualification: u64,
    },
}

/// One exit as `run()` returns it: only what every exit needs. The exit
/// qualification and the rest are read by [`Vcpu::decode`], so the cheapest
/// exits pay for no VMREAD they do not use.
#[derive(Debug, Clone, Copy)]
pub struct Exit {
    /// The exit-reason field (SDM Vol. 3C, 25.9.1 "Basic VM-Exit Information").
    pub raw_reason: u32,
    /// Its bits 15:0, the basic exit reason (for counters).
    pub basic_reason: u16,
    /// Guest RIP at the exit.
    pub rip: u64,
    /// TSC right after the exit.
    pub tsc: u64,
}

impl Exit {
    /// Bit 31: the VM entry failed while loading guest state.
    #[inline(always)]
    pub fn entry_failed(&self) -> bool {
        self.raw_reason & (1 << 31) != 0
    }
}

/// Why a vCPU could not run at all.
#[derive(Debug, Clone, Copy)]
pub enum RunError {
    /// VMLAUNCH/VMRESUME failed before loading guest state (SDM Vol. 3C, 27.1
    /// "Basic VM-Entry Checks" and 27.2 "Checks on VMX Controls and Host-State Area").
    EntryInstructionFailed(VmxError),
    /// A VMREAD/VMWRITE of a field every VMX CPU has failed.
    Vmcs(VmxError),
}

impl core::fmt::Display for RunError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            RunError::EntryInstructionFailed(error) => write!(f, "VM entry failed: {error}"),
            RunError::Vmcs(error) => write!(f, "{error}"),
        }
    }
}

/// A virtual CPU. `#[repr(C)]`: it starts with the [`GuestFrame`] layout
/// (registers, then the exit landing's fast path) that the assembly uses.
#[repr(C)]
pub struct Vcpu {
    /// The guest's general registers while it is not running.
    pub registers: GuestRegisters,
    /// The exit landing's null-hypercall fast path (`vmx::run`).
    pub fast: FastPath,
    vmcs: VmcsRegion,
    launched: bool,
}

// The assembly sees a `Vcpu` as a `GuestFrame`: same prefix, same offsets.
const _: () = {
    assert!(core::mem::offset_of!(Vcpu, registers) == core::mem::offset_of!(GuestFrame, registers));
    assert!(core::mem::offset_of!(Vcpu, fast) == core::mem::offset_of!(GuestFrame, fast));
};

impl Vcpu {
    /// Wraps a VMCS whose fields are already written (see `vm::setup`).
    pub fn new(vmcs: VmcsRegion) -> Self {
        Vcpu { registers: GuestRegisters::default(), fast: FastPath::default(), vmcs, launched: false }
    }

    /// Makes this vCPU's VMCS current (before any field access).
    pub fn load(&self) -> Result<(), VmxError> {
        self.vmcs.load()
    }

    /// Runs the guest until its next VM exit.
    #[inline(always)]
    pub fn run(&mut self) -> Result<Exit, RunError> {
        let launched = self.launched;
        // The frame pointer covers the whole vCPU (its `GuestFrame` prefix).
        let frame = (self as *mut Vcpu).cast::<GuestFrame>();
        // SAFETY: this vCPU's VMCS is current (the caller loaded it), its host
        // state was written by `vm::setup` from this CPU, `launched` tracks
        // the launch state since the VMCLEAR in `VmcsRegion::new`, and `frame`
        // comes from `&mut self`: nothing else touches the vCPU meanwhile.
        let result = unsafe { enter_guest(frame, launched) };
        let tsc = read_tsc();
        if result != EntryResult::Exited {
            return Err(self.entry_instruction_failed(result));
        }
        let raw_reason = read(VmcsField::ExitReason)? as u32;
        let rip = read(VmcsField::GuestRip)?;
        let exit = Exit { raw_reason, basic_reason: raw_reason as u16, rip, tsc };
        // A VM entry that fails after loading guest state leaves the VMCS unlaunched.
        self.launched |= !exit.entry_failed();
        Ok(exit)
    }

    #[cold]
    #[inline(never)]
    fn entry_instruction_failed(&self, result: EntryResult) -> RunError {
        let failure = match result {
            EntryResult::FailInvalid => VmxInstructionFailure::FailInvalid,
            _ => VmxInstructionFailure::FailValid(vmcs::read(VmcsField::VmInstructionError).unwrap_or(0) as u32),
        };
        let instruction = if self.launched { "VMRESUME" } else { "VMLAUNCH" };
        RunError::EntryInstructionFailed(VmxError { instruction, field: None, failure })
    }

    /// Decodes an exit into a [`VmExit`], reading only the fields its reason
    /// needs. Before that, an event whose delivery the exit interrupted
    /// (IDT-vectoring information valid) is queued for re-injection on the next
    /// entry, so it is neither lost nor delivered twice (SDM Vol. 3C, 28.2.4
    /// "Information for VM Exits During Event Delivery"); a handler that injects
    /// something else, or stops the guest, overrides it.
    #[inline(always)]
    pub fn decode(&self, exit: &Exit) -> Result<VmExit, VmxError> {
        // The exits guests make in tight loops need no VMREAD to decode and
        // never interrupt event delivery: answer them before the general path.
        // (An entry failure has reason 33, 34 or 41, so it cannot match here.)
        const CPUID: u16 = ExitReason::Cpuid as u16;
        const VMCALL: u16 = ExitReason::Vmcall as u16;
        match exit.basic_reason {
            CPUID => return Ok(VmExit::Cpuid),
            VMCALL => return Ok(VmExit::Vmcall),
            _ => {}
        }
        let Some(reason) = ExitReason::from_basic(exit.basic_reason) else {
            return Ok(VmExit::Unknown { basic_reason: exit.basic_reason });
        };
        if exit.entry_failed() {
            return Ok(VmExit::EntryFailure { reason, qualification: vmcs::read(VmcsField::ExitQualification)? });
        }
        if may_interrupt_event_delivery(reason) {
            self.requeue_interrupted_event()?;
        }
        self.decode_reason(reason)
    }

    #[inline(always)]
    fn decode_reason(&self, reason: ExitReason) -> Result<VmExit, VmxError> {
        Ok(match reason {
            ExitReason::Cpuid => VmExit::Cpuid,
            ExitReason::Hlt => VmExit::Hlt,
            ExitReason::Xsetbv => VmExit::Xsetbv,
            ExitReason::Vmcall => VmExit::Vmcall,
            ExitReason::Rdmsr => VmExit::Rdmsr,
            ExitReason::Wrmsr => VmExit::Wrmsr,
            ExitReason::IoInstruction => VmExit::Io(IoQualification(vmcs::read(VmcsField::ExitQualification)?)),
            ExitReason::ControlRegisterAccess => {
                VmExit::CrAccess(CrAccessQualification(vmcs::read(VmcsField::ExitQualification)?))
            }
            ExitReason::EptViolation => {
                let qualification = EptViolationQualification(vmcs::read(VmcsField::ExitQualification)?);
                let linear = if qualification.linear_address_valid() {
                    Some(vmcs::read(VmcsField::GuestLinearAddress)?)
                } else {
                    None
                };
                VmExit::EptViolation { qualification, gpa: vmcs::read(VmcsField::GuestPhysicalAddress)?, linear }
            }
            ExitReason::EptMisconfiguration => {
                VmExit::EptMisconfiguration { gpa: vmcs::read(VmcsField::GuestPhysicalAddress)? }
            }
            ExitReason::ExceptionOrNmi => {
                let info = InterruptionInfo(vmcs::read(VmcsField::ExitInterruptionInfo)? as u32);
                let error_code = if info.error_code_valid() {
                    Some(vmcs::read(VmcsField::ExitInterruptionErrorCode)? as u32)
                } else {
                    None
                };
                VmExit::ExceptionOrNmi { info, error_code, qualification: vmcs::read(VmcsField::ExitQualification)? }
            }
            ExitReason::ExternalInterrupt => VmExit::ExternalInterrupt,
            ExitReason::InterruptWindow => VmExit::InterruptWindow,
            ExitReason::NmiWindow => VmExit::NmiWindow,
            ExitReason::TripleFault => VmExit::TripleFault,
            ExitReason::PreemptionTimerExpired => VmExit::PreemptionTimer,
            ExitReason::MonitorTrapFlag => VmExit::MonitorTrap,
            other => VmExit::Other { reason: other, qualification: vmcs::read(VmcsField::ExitQualification)? },
        })
    }

    /// Copies a valid IDT-vectoring information field into the VM-entry
    /// interruption-information field (with error code and, for software
    /// events, the instruction length), so the next entry delivers it again.
    #[inline(never)]
    fn requeue_interrupted_event(&self) -> Result<(), VmxError> {
        let vectoring = InterruptionInfo(vmcs::read(VmcsField::IdtVectoringInfo)? as u32);
        if !vectoring.valid() {
            return Ok(());
        }
        if vectoring.error_code_valid() {
            vmcs::write(VmcsField::EntryExceptionErrorCode, vmcs::read(VmcsField::IdtVectoringErrorCode)?)?;
        }
        vmcs::write(VmcsField::EntryInstructionLength, vmcs::read(VmcsField::ExitInstructionLength)?)?;
        // Bit 12 of the IDT-vectoring field is undefined; the entry field's bit
        // 12 is reserved, so only the architectural bits are copied.
        vmcs::write(VmcsField::EntryInterruptionInfo, u64::from(vectoring.to_u32() & !(1 << 12)))?;
        Ok(())
    }

    /// Moves RIP past the instruction that exited (its length is in the VMCS),
    /// and clears STI/MOV-SS blocking as executing an instruction would.
    #[inline(always)]
    pub fn advance_rip(&mut self, exit: &Exit) -> Result<(), VmxError> {
        let length = vmcs::read(VmcsField::ExitInstructionLength)?;
        vmcs::write(VmcsField::GuestRip, exit.rip + length)?;
        let interruptibility = vmcs::read(VmcsField::GuestInterruptibilityState)?;
        if interruptibility & 0b11 != 0 {
            vmcs::write(VmcsField::GuestInterruptibilityState, interruptibility & !0b11)?;
        }
        Ok(())
    }

    /// Moves RIP to `rip` (past an instruction the hypervisor decoded itself)
    /// and clears STI/MOV-SS blocking as executing an instruction would.
    pub fn advance_rip_to(&mut self, rip: u64) -> Result<(), VmxError> {
        vmcs::write(VmcsField::GuestRip, rip)?;
        let interruptibility = vmcs::read(VmcsField::GuestInterruptibilityState)?;
        if interruptibility & 0b11 != 0 {
            vmcs::write(VmcsField::GuestInterruptibilityState, interruptibility & !0b11)?;
        }
        Ok(())
    }

    /// Queues an event for delivery at the next VM entry (SDM Vol. 3C, 27.6
    /// "Event Injection"), replacing any re-injection queued by `run`.
    pub fn inject(&mut self, info: InterruptionInfo, error_code: Option<u32>) -> Result<(), VmxError> {
        if let Some(code) = error_code {
            vmcs::write(VmcsField::EntryExceptionErrorCode, u64::from(code))?;
        }
        vmcs::write(VmcsField::EntryInterruptionInfo, u64::from(info.to_u32()))
    }

    /// Cancels any queued event (when the guest is stopped instead).
    pub fn cancel_injection(&mut self) -> Result<(), VmxError> {
        vmcs::write(VmcsField::EntryInterruptionInfo, 0)
    }

    /// Reads a guest field of this vCPU's VMCS.
    pub fn read(&self, field: VmcsField) -> Result<u64, VmxError> {
        vmcs::read(field)
    }

    /// Writes a field of this vCPU's VMCS.
    pub fn write(&mut self, field: VmcsField, value: u64) -> Result<(), VmxError> {
        vmcs::write(field, value)
    }
}

/// Whether an exit of this reason can happen while the CPU delivers an event
/// (SDM Vol. 3C, 28.2.4 "Information for VM Exits During Event Delivery"):
/// exceptions in the bitmap, EPT violations and misconfigurations, task
/// switches, APIC accesses, triple faults and the like. Exits caused by
/// executing an instruction never do, so their IDT-vectoring field is not read.
fn may_interrupt_event_delivery(reason: ExitReason) -> bool {
    !matches!(
        reason,
        ExitReason::Cpuid
            | ExitReason::Hlt
            | ExitReason::Invd
            | ExitReason::Vmcall
            | ExitReason::ControlRegisterAccess
            | ExitReason::IoInstruction
            | ExitReason::Rdmsr
            | ExitReason::Wrmsr
            | ExitReason::Wbinvd
            | ExitReason::Xsetbv
            | ExitReason::MonitorTrapFlag
            | ExitReason::InterruptWindow
            | ExitReason::NmiWindow
    )
}

#[inline(always)]
fn read(field: VmcsField) -> Result<u64, RunError> {
    vmcs::read(field).map_err(RunError::Vmcs)
}
