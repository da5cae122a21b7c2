//! Why a VMX instruction failed.
//!
//! Every VMX instruction (VMXON, VMCLEAR, VMPTRLD, VMREAD, VMWRITE, VMLAUNCH,
//! VMRESUME, INVEPT, INVVPID, ...) reports its outcome in RFLAGS
//! (SDM Vol. 3C, 31.2 "Conventions"):
//!
//! * **VMsucceed**: CF, PF, AF, ZF, SF and OF all cleared.
//! * **VMfailInvalid**: CF set — there is no current VMCS to hold an error
//!   number (e.g. VMXON itself failed, or VMPTRLD was never done).
//! * **VMfailValid**: ZF set — there is a current VMCS, and the processor wrote
//!   an error number into its read-only "VM-instruction error" field
//!   (`VmcsField::VmInstructionError`, encoding 0x4400).
//!
//! The error numbers and their wording come from SDM Vol. 3C, 31.4
//! "VM Instruction Error Numbers". Numbers 14, 21 and 27 are not assigned.

use core::fmt;

/// A VM-instruction error number (SDM Vol. 3C, 31.4 "VM Instruction Error
/// Numbers"); the discriminant is the number the processor stores.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u32)]
pub enum VmInstructionError {
    /// 1: VMCALL executed in VMX root operation.
    VmcallInVmxRoot = 1,
    /// 2: VMCLEAR with invalid physical address.
    VmclearInvalidAddress = 2,
    /// 3: VMCLEAR with VMXON pointer.
    VmclearVmxonPointer = 3,
    /// 4: VMLAUNCH with non-clear VMCS.
    VmlaunchNonClearVmcs = 4,
    /// 5: VMRESUME with non-launched VMCS.
    VmresumeNonLaunchedVmcs = 5,
    /// 6: VMRESUME after VMXOFF.
    VmresumeAfterVmxoff = 6,
    /// 7: VM entry with invalid control field(s).
    EntryInvalidControlFields = 7,
    /// 8: VM entry with invalid host-state field(s).
    EntryInvalidHostState = 8,
    /// 9: VMPTRLD with invalid physical address.
    VmptrldInvalidAddress = 9,
    /// 10: VMPTRLD with VMXON pointer.
    VmptrldVmxonPointer = 10,
    /// 11: VMPTRLD with incorrect VMCS revision identifier.
    VmptrldWrongRevision = 11,
    /// 12: VMREAD/VMWRITE from/to unsupported VMCS component.
    UnsupportedVmcsComponent = 12,
    /// 13: VMWRITE to read-only VMCS component.
    VmwriteReadOnlyComponent = 13,
    /// 15: VMXON executed in VMX root operation.
    VmxonInVmxRoot = 15,
    /// 16: VM entry with invalid executive-VMCS pointer.
    EntryInvalidExecutiveVmcsPointer = 16,
    /// 17: VM entry with non-launched executive VMCS.
    EntryNonLaunchedExecutiveVmcs = 17,
    /// 18: VM entry with executive-VMCS pointer not VMXON pointer.
    EntryExecutiveVmcsNotVmxonPointer = 18,
    /// 19: VMCALL with non-clear VMCS.
    VmcallNonClearVmcs = 19,
    /// 20: VMCALL with invalid VM-exit control fields.
    VmcallInvalidExitControls = 20,
    /// 22: VMCALL with incorrect MSEG revision identifier.
    VmcallWrongMsegRevision = 22,
    /// 23: VMXOFF under dual-monitor treatment of SMIs and SMM.
    VmxoffUnderDualMonitor = 23,
    /// 24: VMCALL with invalid SMM-monitor features.
    VmcallInvalidSmmMonitorFeatures = 24,
    /// 25: VM entry with invalid VM-execution control fields in executive VMCS.
    EntryInvalidExecutiveControls = 25,
    /// 26: VM entry with events blocked by MOV SS.
    EntryEventsBlockedByMovSs = 26,
    /// 28: Invalid operand to INVEPT/INVVPID.
    InvalidInveptInvvpidOperand = 28,
}

impl VmInstructionError {
    /// Every defined error, in number order.
    pub const ALL: &'static [VmInstructionError] = &[
        Self::VmcallInVmxRoot,
        Self::VmclearInvalidAddress,
        Self::VmclearVmxonPointer,
        Self::VmlaunchNonClearVmcs,
        Self::VmresumeNonLaunchedVmcs,
        Self::VmresumeAfterVmxoff,
        Self::EntryInvalidControlFields,
        Self::EntryInvalidHostState,
        Self::VmptrldInvalidAddress,
        Self::VmptrldVmxonPointer,
        Self::VmptrldWrongRevision,
        Self::UnsupportedVmcsComponent,
        Self::VmwriteReadOnlyComponent,
        Self::VmxonInVmxRoot,
        Self::EntryInvalidExecutiveVmcsPointer,
        Self::EntryNonLaunchedExecutiveVmcs,
        Self::EntryExecutiveVmcsNotVmxonPointer,
        Self::VmcallNonClearVmcs,
        Self::VmcallInvalidExitControls,
        Self::VmcallWrongMsegRevision,
        Self::VmxoffUnderDualMonitor,
        Self::VmcallInvalidSmmMonitorFeatures,
        Self::EntryInvalidExecutiveControls,
        Self::EntryEventsBlockedByMovSs,
        Self::InvalidInveptInvvpidOperand,
    ];

    /// Decodes the value of the VM-instruction error field; `None` for 0 (no
    /// error recorded) and for numbers the SDM does not assign.
    pub const fn from_number(number: u32) -> Option<Self> {
        Some(match number {
            1 => Self::VmcallInVmxRoot,
            2 => Self::VmclearInvalidAddress,
            3 => Self::VmclearVmxonPointer,
            4 => Self::VmlaunchNonClearVmcs,
            5 => Self::VmresumeNonLaunchedVmcs,
            6 => Self::VmresumeAfterVmxoff,
            7 => Self::EntryInvalidControlFields,
            8 => Self::EntryInvalidHostState,
            9 => Self::VmptrldInvalidAddress,
            10 => Self::VmptrldVmxonPointer,
            11 => Self::VmptrldWrongRevision,
            12 => Self::UnsupportedVmcsComponent,
            13 => Self::VmwriteReadOnlyComponent,
            15 => Self::VmxonInVmxRoot,
            16 => Self::EntryInvalidExecutiveVmcsPointer,
            17 => Self::EntryNonLaunchedExecutiveVmcs,
            18 => Self::EntryExecutiveVmcsNotVmxonPointer,
            19 => Self::VmcallNonClearVmcs,
            20 => Self::VmcallInvalidExitControls,
            22 => Self::VmcallWrongMsegRevision,
            23 => Self::VmxoffUnderDualMonitor,
            24 => Self::VmcallInvalidSmmMonitorFeatures,
            25 => Self::EntryInvalidExecutiveControls,
            26 => Self::EntryEventsBlockedByMovSs,
            28 => Self::InvalidInveptInvvpidOperand,
            _ => return None,
        })
    }

    /// The error number as stored in the VM-instruction error field.
    pub const fn number(self) -> u32 {
        self as u32
    }

    /// The SDM's description of the error (Table "VM-Instruction Error Numbers").
    pub const fn description(self) -> &'static str {
        match self {
            Self::VmcallInVmxRoot => "VMCALL executed in VMX root operation",
            Self::VmclearInvalidAddress => "VMCLEAR with invalid physical address",
            Self::VmclearVmxonPointer => "VMCLEAR with VMXON pointer",
            Self::VmlaunchNonClearVmcs => "VMLAUNCH with non-clear VMCS",
            Self::VmresumeNonLaunchedVmcs => "VMRESUME with non-launched VMCS",
            Self::VmresumeAfterVmxoff => "VMRESUME after VMXOFF (VMXOFF and VMXON between VMLAUNCH and VMRESUME)",
            Self::EntryInvalidControlFields => "VM entry with invalid control field(s)",
            Self::EntryInvalidHostState => "VM entry with invalid host-state field(s)",
            Self::VmptrldInvalidAddress => "VMPTRLD with invalid physical address",
            Self::VmptrldVmxonPointer => "VMPTRLD with VMXON pointer",
            Self::VmptrldWrongRevision => "VMPTRLD with incorrect VMCS revision identifier",
            Self::UnsupportedVmcsComponent => "VMREAD/VMWRITE from/to unsupported VMCS component",
            Self::VmwriteReadOnlyComponent => "VMWRITE to read-only VMCS component",
            Self::VmxonInVmxRoot => "VMXON executed in VMX root operation",
            Self::EntryInvalidExecutiveVmcsPointer => "VM entry with invalid executive-VMCS pointer",
            Self::EntryNonLaunchedExecutiveVmcs => "VM entry with non-launched executive VMCS",
            Self::EntryExecutiveVmcsNotVmxonPointer => {
                "VM entry with executive-VMCS pointer not VMXON pointer \
                 (when attempting to deactivate the dual-monitor treatment of SMIs and SMM)"
            }
            Self::VmcallNonClearVmcs => {
                "VMCALL with non-clear VMCS \
                 (when attempting to activate the dual-monitor treatment of SMIs and SMM)"
            }
            Self::VmcallInvalidExitControls => "VMCALL with invalid VM-exit control fields",
            Self::VmcallWrongMsegRevision => {
                "VMCALL with incorrect MSEG revision identifier \
                 (when attempting to activate the dual-monitor treatment of SMIs and SMM)"
            }
            Self::VmxoffUnderDualMonitor => "VMXOFF under dual-monitor treatment of SMIs and SMM",
            Self::VmcallInvalidSmmMonitorFeatures => {
                "VMCALL with invalid SMM-monitor features \
                 (when attempting to activate the dual-monitor treatment of SMIs and SMM)"
            }
            Self::EntryInvalidExecutiveControls => {
                "VM entry with invalid VM-execution control fields in executive VMCS \
                 (when attempting to return from SMM)"
            }
            Self::EntryEventsBlockedByMovSs => "VM entry with events blocked by MOV SS",
            Self::InvalidInveptInvvpidOperand => "Invalid operand to INVEPT/INVVPID",
        }
    }
}

impl fmt::Display for VmInstructionError {
    /// Prints e.g. `error 7: VM entry with invalid control field(s)`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "error {}: {}", self.number(), self.description())
    }
}

/// How a VMX instruction failed (SDM Vol. 3C, 31.2 "Conventions").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VmxInstructionFailure {
    /// VMfailInvalid: CF was set; there is no current VMCS, so no error number.
    FailInvalid,
    /// VMfailValid: ZF was set; the raw number read from the VM-instruction
    /// error field of the current VMCS. Decode it with [`Self::error`].
    FailValid(u32),
}

impl VmxInstructionFailure {
    /// RFLAGS.CF (bit 0): set on VMfailInvalid.
    pub const RFLAGS_CF: u64 = 1 << 0;
    /// RFLAGS.ZF (bit 6): set on VMfailValid.
    pub const RFLAGS_ZF: u64 = 1 << 6;

    /// Classifies the RFLAGS value right after a VMX instruction. Returns
    /// `Ok(())` for VMsucceed; for VMfailValid the caller must then VMREAD
    /// the VM-instruction error field, so this returns `FailValid(0)` as a
    /// placeholder to be completed with [`Self::with_error_number`].
    pub const fn from_rflags(rflags: u64) -> Result<(), Self> {
        if rflags & Self::RFLAGS_CF != 0 {
            Err(Self::FailInvalid)
        } else if rflags & Self::RFLAGS_ZF != 0 {
            Err(Self::FailValid(0))
        } else {
            Ok(())
        }
    }

    /// Fills in the number read from the VM-instruction error field; leaves
    /// `FailInvalid` unchanged.
    pub const fn with_error_number(self, number: u32) -> Self {
        match self {
            Self::FailInvalid => Self::FailInvalid,
            Self::FailValid(_) => Self::FailValid(number),
        }
    }

    /// The decoded error for VMfailValid with a known number, else `None`.
    pub const fn error(self) -> Option<VmInstructionError> {
        match self {
            Self::FailInvalid => None,
            Self::FailValid(number) => VmInstructionError::from_number(number),
        }
    }
}

impl fmt::Display for VmxInstructionFailure {
    /// Prints e.g. `VMfailValid (error 8: VM entry with invalid host-state field(s))`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Self::FailInvalid => f.write_str("VMfailInvalid (CF set: no current VMCS)"),
            Self::FailValid(number) => match VmInstructionError::from_number(number) {
                Some(error) => write!(f, "VMfailValid ({error})"),
                None => write!(f, "VMfailValid (unknown error number {number})"),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::string::ToString;

    #[test]
    fn numbers_round_trip_and_gaps_are_none() {
        for &e in VmInstructionError::ALL {
            assert_eq!(VmInstructionError::from_number(e.number()), Some(e));
        }
        for n in [0, 14, 21, 27, 29, 1000, u32::MAX] {
            assert_eq!(VmInstructionError::from_number(n), None, "{n}");
        }
        let defined = (1..=28).filter(|&n| VmInstructionError::from_number(n).is_some()).count();
        assert_eq!(defined, 25);
        assert_eq!(VmInstructionError::ALL.len(), 25);
    }

    #[test]
    fn descriptions_follow_the_sdm() {
        let d = |n| VmInstructionError::from_number(n).map(VmInstructionError::description);
        assert_eq!(d(7), Some("VM entry with invalid control field(s)"));
        assert_eq!(d(8), Some("VM entry with invalid host-state field(s)"));
        assert_eq!(d(12), Some("VMREAD/VMWRITE from/to unsupported VMCS component"));
        assert_eq!(d(28), Some("Invalid operand to INVEPT/INVVPID"));
    }

    #[test]
    fn rflags_classification() {
        assert_eq!(VmxInstructionFailure::from_rflags(0x2), Ok(()));
        assert_eq!(VmxInstructionFailure::from_rflags(0x3), Err(VmxInstructionFailure::FailInvalid));
        assert_eq!(VmxInstructionFailure::from_rflags(0x42), Err(VmxInstructionFailure::FailValid(0)));
        let failure = VmxInstructionFailure::FailValid(0).with_error_number(7);
        assert_eq!(failure.error(), Some(VmInstructionError::EntryInvalidControlFields));
        assert_eq!(VmxInstructionFailure::FailInvalid.with_error_number(7).error(), None);
    }

    #[test]
    fn display() {
        assert_eq!(
            VmxInstructionFailure::FailValid(8).to_string(),
            "VMfailValid (error 8: VM entry with invalid host-state field(s))"
        );
        assert_eq!(VmxInstructionFailure::FailValid(14).to_string(), "VMfailValid (unknown error number 14)");
        assert_eq!(VmxInstructionFailure::FailInvalid.to_string(), "VMfailInvalid (CF set: no current VMCS)");
    }
}
