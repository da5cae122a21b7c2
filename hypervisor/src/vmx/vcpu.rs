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
use hypervisor_core::vmcs_field::VmcsField;

use crate::vmx::run::{enter_guest, EntryResult, GuestRegisters};
use crate::vmx::vmcs::{self, VmcsRegion, VmxError};
use crate::vmx::read_tsc;

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
    /// An external interrupt arrived while the guest ran (the host owns them).
    ExternalInterrupt,
    /// The guest triple-faulted: it is in shutdown state.
    TripleFault,
    /// The VMX-preemption timer counted down to zero.
    PreemptionTimer,
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

/// One exit as `run()` returns it.
#[derive(Debug, Clone, Copy)]
pub struct Exit {
    /// What happened.
    pub kind: VmExit,
    /// The basic exit reason number (for counters).
    pub basic_reason: u16,
    /// Guest RIP at the exit.
    pub rip: u64,
    /// Length of the exiting instruction (valid for instruction exits).
    pub instruction_length: u64,
    /// TSC right after the exit.
    pub tsc: u64,
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

/// A virtual CPU.
pub struct Vcpu {
    vmcs: VmcsRegion,
    /// The guest's general registers while it is not running.
    pub registers: GuestRegisters,
    launched: bool,
    /// TSC just before the last VM entry.
    pub entry_tsc: u64,
}

impl Vcpu {
    /// Wraps a VMCS whose fields are already written (see `vm::setup`).
    pub fn new(vmcs: VmcsRegion) -> Self {
        Vcpu { vmcs, registers: GuestRegisters::default(), launched: false, entry_tsc: 0 }
    }

    /// Makes this vCPU's VMCS current (before any field access).
    pub fn load(&self) -> Result<(), VmxError> {
        self.vmcs.load()
    }

    /// Runs the guest until its next VM exit.
    ///
    /// Before returning, an event whose delivery the exit interrupted (IDT-vectoring
    /// information valid) is queued for re-injection on the next entry, so it is
    /// neither lost nor delivered twice (SDM Vol. 3C, 28.2.4 "Information for VM
    /// Exits During Event Delivery"); a handler that injects something else, or
    /// stops the guest, overrides it.
    pub fn run(&mut self) -> Result<Exit, RunError> {
        self.entry_tsc = read_tsc();
        // SAFETY: this vCPU's VMCS is current (the caller loaded it), its host
        // state was written by `vm::setup` from this CPU, and `launched` tracks
        // the launch state since the VMCLEAR in `VmcsRegion::new`.
        let result = unsafe { enter_guest(&mut self.registers, self.launched) };
        let tsc = read_tsc();
        match result {
            EntryResult::Exited => {}
            EntryResult::FailInvalid => {
                return Err(RunError::EntryInstructionFailed(VmxError {
                    instruction: if self.launched { "VMRESUME" } else { "VMLAUNCH" },
                    field: None,
                    failure: hypervisor_core::instruction_error::VmxInstructionFailure::FailInvalid,
                }))
            }
            EntryResult::FailValid => {
                let number = vmcs::read(VmcsField::VmInstructionError).map_err(RunError::Vmcs)? as u32;
                return Err(RunError::EntryInstructionFailed(VmxError {
                    instruction: if self.launched { "VMRESUME" } else { "VMLAUNCH" },
                    field: None,
                    failure: hypervisor_core::instruction_error::VmxInstructionFailure::FailValid(number),
                }));
            }
        }

        let raw_reason = read(VmcsField::ExitReason)? as u32;
        let basic_reason = raw_reason as u16;
        let reason = ExitReason::from_basic(basic_reason);
        let rip = read(VmcsField::GuestRip)?;
        let entry_failed = raw_reason & (1 << 31) != 0;
        if !entry_failed {
            self.launched = true;
        }

        // Instruction exits need the length to advance RIP.
        let instruction_length = read(VmcsField::ExitInstructionLength)?;

        let kind = match reason {
            None => VmExit::Unknown { basic_reason },
            Some(reason) if entry_failed => {
                VmExit::EntryFailure { reason, qualification: read(VmcsField::ExitQualification)? }
            }
            Some(reason) => {
                self.requeue_interrupted_event()?;
                self.decode(reason)?
            }
        };
        Ok(Exit { kind, basic_reason, rip, instruction_length, tsc })
    }

    fn decode(&self, reason: ExitReason) -> Result<VmExit, RunError> {
        Ok(match reason {
            ExitReason::Cpuid => VmExit::Cpuid,
            ExitReason::Hlt => VmExit::Hlt,
            ExitReason::Vmcall => VmExit::Vmcall,
            ExitReason::Rdmsr => VmExit::Rdmsr,
            ExitReason::Wrmsr => VmExit::Wrmsr,
            ExitReason::IoInstruction => VmExit::Io(IoQualification(read(VmcsField::ExitQualification)?)),
            ExitReason::ControlRegisterAccess => {
                VmExit::CrAccess(CrAccessQualification(read(VmcsField::ExitQualification)?))
            }
            ExitReason::EptViolation => {
                let qualification = EptViolationQualification(read(VmcsField::ExitQualification)?);
                let linear = if qualification.linear_address_valid() {
                    Some(read(VmcsField::GuestLinearAddress)?)
                } else {
                    None
                };
                VmExit::EptViolation { qualification, gpa: read(VmcsField::GuestPhysicalAddress)?, linear }
            }
            ExitReason::EptMisconfiguration => {
                VmExit::EptMisconfiguration { gpa: read(VmcsField::GuestPhysicalAddress)? }
            }
            ExitReason::ExceptionOrNmi => {
                let info = InterruptionInfo(read(VmcsField::ExitInterruptionInfo)? as u32);
                let error_code = if info.error_code_valid() {
                    Some(read(VmcsField::ExitInterruptionErrorCode)? as u32)
                } else {
                    None
                };
                VmExit::ExceptionOrNmi { info, error_code, qualification: read(VmcsField::ExitQualification)? }
            }
            ExitReason::ExternalInterrupt => VmExit::ExternalInterrupt,
            ExitReason::TripleFault => VmExit::TripleFault,
            ExitReason::PreemptionTimerExpired => VmExit::PreemptionTimer,
            other => VmExit::Other { reason: other, qualification: read(VmcsField::ExitQualification)? },
        })
    }

    /// Copies a valid IDT-vectoring information field into the VM-entry
    /// interruption-information field (with error code and, for software
    /// events, the instruction length), so the next entry delivers it again.
    fn requeue_interrupted_event(&self) -> Result<(), RunError> {
        let vectoring = InterruptionInfo(read(VmcsField::IdtVectoringInfo)? as u32);
        if !vectoring.valid() {
            return Ok(());
        }
        if vectoring.error_code_valid() {
            write(VmcsField::EntryExceptionErrorCode, read(VmcsField::IdtVectoringErrorCode)?)?;
        }
        write(VmcsField::EntryInstructionLength, read(VmcsField::ExitInstructionLength)?)?;
        // Bit 12 of the IDT-vectoring field is undefined; the entry field's bit
        // 12 is reserved, so only the architectural bits are copied.
        write(VmcsField::EntryInterruptionInfo, u64::from(vectoring.to_u32() & !(1 << 12)))?;
        Ok(())
    }

    /// Moves RIP past the instruction that exited (its length is in the VMCS),
    /// and clears STI/MOV-SS blocking as executing an instruction would.
    pub fn advance_rip(&mut self, exit: &Exit) -> Result<(), VmxError> {
        vmcs::write(VmcsField::GuestRip, exit.rip + exit.instruction_length)?;
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

fn read(field: VmcsField) -> Result<u64, RunError> {
    vmcs::read(field).map_err(RunError::Vmcs)
}

fn write(field: VmcsField, value: u64) -> Result<(), RunError> {
    vmcs::write(field, value).map_err(RunError::Vmcs)
}
