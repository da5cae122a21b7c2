//! The MSR checks, and VMXON.
//!
//! With "use MSR bitmaps" on, RDMSR/WRMSR exits when the MSR's bit in the
//! bitmap is 1 (SDM Vol. 3C, 25.6.9 "MSR-Bitmap Address"). The hypervisor's
//! policy (`hypervisor_core::msr::policy`):
//!
//! | MSRs | access |
//! |---|---|
//! | FS_BASE, GS_BASE, KERNEL_GS_BASE, STAR, LSTAR, CSTAR, FMASK | pass through: no exit, the real register |
//! | EFER, PAT, SYSENTER_CS/ESP/EIP | exit, emulated against the VMCS guest-state fields; a value a CPU would refuse gets #GP(0) |
//! | everything else | exit, #GP(0) injected |
//!
//! VMXON exits unconditionally in VMX non-root operation (SDM Vol. 3C,
//! 26.1.2); the hypervisor offers no nested VMX and injects #UD.
//!
//! Every instruction runs under `idt::expect_fault`. An expected fault must
//! carry the expected vector and error code and point at the instruction
//! itself: an injected fault leaves RIP unchanged.

use core::fmt;

use guest_rt::checks::{expect_exception, Checks};
use guest_rt::idt::{GENERAL_PROTECTION, INVALID_OPCODE};
use guest_rt::privileged::{attempt_instruction, rdmsr, Instruction};

/// WRMSR of an MSR that holds only this guest's own state (or that the
/// hypervisor refuses).
fn wrmsr(msr: u32, value: u64) -> guest_rt::checks::Attempt<u64> {
    // SAFETY: the MSRs written here hold only this guest's own state (FS/GS
    // bases, SYSCALL/SYSENTER targets it never uses, EFER with its own
    // value) or are refused; a fault is caught by expect_fault.
    unsafe { guest_rt::privileged::wrmsr(msr, value) }
}

/// A model-specific register: its number and its SDM name.
#[derive(Clone, Copy)]
struct Msr {
    number: u32,
    name: &'static str,
}

/// `IA32_LSTAR (0xc0000082)`.
impl fmt::Display for Msr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({:#x})", self.name, self.number)
    }
}

// SDM Vol. 4, Chapter 2 "Model-Specific Registers (MSRs)", Table 2-2
// "IA-32 Architectural MSRs".
const IA32_FEATURE_CONTROL: Msr = Msr { number: 0x3A, name: "IA32_FEATURE_CONTROL" };
const IA32_SYSENTER_CS: Msr = Msr { number: 0x174, name: "IA32_SYSENTER_CS" };
const IA32_SYSENTER_ESP: Msr = Msr { number: 0x175, name: "IA32_SYSENTER_ESP" };
const IA32_SYSENTER_EIP: Msr = Msr { number: 0x176, name: "IA32_SYSENTER_EIP" };
const IA32_DEBUGCTL: Msr = Msr { number: 0x1D9, name: "IA32_DEBUGCTL" };
const IA32_PAT: Msr = Msr { number: 0x277, name: "IA32_PAT" };
const IA32_MTRR_DEF_TYPE: Msr = Msr { number: 0x2FF, name: "IA32_MTRR_DEF_TYPE" };
const IA32_VMX_BASIC: Msr = Msr { number: 0x480, name: "IA32_VMX_BASIC" };
const IA32_EFER: Msr = Msr { number: 0xC000_0080, name: "IA32_EFER" };
const IA32_STAR: Msr = Msr { number: 0xC000_0081, name: "IA32_STAR" };
const IA32_LSTAR: Msr = Msr { number: 0xC000_0082, name: "IA32_LSTAR" };
const IA32_FMASK: Msr = Msr { number: 0xC000_0084, name: "IA32_FMASK" };
const IA32_FS_BASE: Msr = Msr { number: 0xC000_0100, name: "IA32_FS_BASE" };
const IA32_GS_BASE: Msr = Msr { number: 0xC000_0101, name: "IA32_GS_BASE" };
const IA32_KERNEL_GS_BASE: Msr = Msr { number: 0xC000_0102, name: "IA32_KERNEL_GS_BASE" };
/// No CPU implements this number.
const NO_SUCH_MSR: Msr = Msr { number: 0x1234_5678, name: "no such MSR" };

/// EFER.LME (bit 8) and EFER.LMA (bit 10): IA-32e mode enabled and active.
const EFER_LME_LMA: u64 = (1 << 8) | (1 << 10);
/// EFER bit 1: reserved (SDM Vol. 3A, 2.2.1 "Extended Feature Enable Register").
const EFER_RESERVED_BIT_1: u64 = 1 << 1;

/// IA32_PAT after reset: WB, WT, UC-, UC in entries 0–3 and again in 4–7
/// (SDM Vol. 3A, 13.12.4 "Programming the PAT", Table 13-12).
const PAT_POWER_ON: u64 = 0x0007_0406_0007_0406;
/// The power-on PAT with entry 0 set to memory type 2, which is reserved.
const PAT_RESERVED_TYPE: u64 = (PAT_POWER_ON & !0xFF) | 2;

/// MSRs that must keep what is written to them, with the test pattern.
/// Addresses (FS/GS bases, SYSCALL/SYSENTER targets) are canonical; STAR
/// holds selectors and a legacy EIP, all 64 bits writable; FMASK only has
/// its low 32 bits defined.
const ROUND_TRIPS: [(Msr, u64); 9] = [
    (IA32_FS_BASE, 0x0000_7F00_1234_5000),
    (IA32_GS_BASE, 0x0000_7F00_5678_9000),
    (IA32_KERNEL_GS_BASE, 0xFFFF_8000_DEAD_B000),
    (IA32_STAR, 0x0023_0008_CAFE_F00D),
    (IA32_LSTAR, 0xFFFF_8000_0010_1000),
    (IA32_FMASK, 0x0004_7700),
    (IA32_SYSENTER_CS, 0x0008),
    (IA32_SYSENTER_ESP, 0xFFFF_8000_0020_0000),
    (IA32_SYSENTER_EIP, 0xFFFF_8000_0010_2000),
];

/// Not canonical: a WRMSR of it to SYSENTER_EIP raises #GP(0).
const NON_CANONICAL: u64 = 0x0000_8000_0000_0000;

/// One access, as a check names it.
enum Access {
    Read(Msr),
    Write(Msr, u64),
    RoundTrip(Msr, u64),
}

impl fmt::Display for Access {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Read(msr) => write!(f, "rdmsr {msr}"),
            Self::Write(msr, value) => write!(f, "wrmsr {msr} {value:#x}"),
            Self::RoundTrip(msr, value) => write!(f, "wrmsr+rdmsr {msr} {value:#x}"),
        }
    }
}

/// Accesses the hypervisor must refuse with #GP(0). The written values are
/// what a kernel would write: lock + VMX outside SMX, LBR on, MTRRs on with
/// write-back default.
const DENIED: [Access; 5] = [
    Access::Write(IA32_FEATURE_CONTROL, 0x5),
    Access::Read(IA32_VMX_BASIC),
    Access::Read(NO_SUCH_MSR),
    Access::Write(IA32_DEBUGCTL, 0x1),
    Access::Write(IA32_MTRR_DEF_TYPE, 0x806),
];

/// Runs the MSR checks, then VMXON. Needs the IDT installed.
pub fn run(checks: &mut Checks) {
    efer(checks);
    for (msr, pattern) in ROUND_TRIPS {
        round_trip(checks, msr, pattern);
    }

    let what = Access::Read(IA32_PAT);
    match rdmsr(IA32_PAT.number).result {
        Ok(value) => {
            checks.check(
                what,
                value == PAT_POWER_ON,
                format_args!("{value:#018x}"),
                format_args!("{value:#018x} (expected the power-on value {PAT_POWER_ON:#018x})"),
            );
        }
        Err(fault) => checks.fail(what, format_args!("{fault} (expected allowed)")),
    }
    expect_gp(checks, Access::Write(IA32_PAT, PAT_RESERVED_TYPE));
    expect_gp(checks, Access::Write(IA32_SYSENTER_EIP, NON_CANONICAL));

    for access in DENIED {
        expect_gp(checks, access);
    }

    expect_exception(checks, "vmxon", attempt_instruction(Instruction::Vmxon), INVALID_OPCODE, None);
}

/// EFER: readable with LME and LMA set, writable with its own value, a
/// reserved bit refused.
fn efer(checks: &mut Checks) {
    let efer = match rdmsr(IA32_EFER.number).result {
        Ok(value) => {
            checks.check(
                Access::Read(IA32_EFER),
                value & EFER_LME_LMA == EFER_LME_LMA,
                "allowed, LME and LMA set",
                format_args!("{value:#x} (expected LME (bit 8) and LMA (bit 10) set)"),
            );
            value
        }
        Err(fault) => {
            checks.fail(Access::Read(IA32_EFER), format_args!("{fault} (expected allowed)"));
            EFER_LME_LMA
        }
    };

    // The written values depend on the start state, so the lines name them
    // instead of printing them.
    let what = "wrmsr IA32_EFER (0xc0000080) its current value";
    match (wrmsr(IA32_EFER.number, efer).result, rdmsr(IA32_EFER.number).result) {
        (Ok(_), Ok(value)) if value == efer => checks.pass(what, "allowed, unchanged"),
        (Ok(_), Ok(value)) => checks.fail(what, format_args!("reads back {value:#x}")),
        (Err(fault), _) => checks.fail(what, format_args!("{fault} (expected allowed)")),
        (Ok(_), Err(fault)) => checks.fail(what, format_args!("rdmsr afterwards raised {fault}")),
    }

    expect_exception(
        checks,
        "wrmsr IA32_EFER (0xc0000080) its current value | reserved bit 1",
        wrmsr(IA32_EFER.number, efer | EFER_RESERVED_BIT_1),
        GENERAL_PROTECTION,
        Some(0),
    );
}

/// Writes `pattern`, reads it back, then restores the original value.
fn round_trip(checks: &mut Checks, msr: Msr, pattern: u64) {
    let what = Access::RoundTrip(msr, pattern);
    let original = rdmsr(msr.number).result;
    let written = wrmsr(msr.number, pattern).result;
    let read = rdmsr(msr.number).result;
    if let Ok(value) = original {
        // Best effort: a failure here shows up as a failed check above.
        let _ = wrmsr(msr.number, value);
    }
    match (original, written, read) {
        (Ok(_), Ok(_), Ok(value)) if value == pattern => checks.pass(what, "allowed, round-trips"),
        (Err(fault), _, _) => checks.fail(what, format_args!("rdmsr raised {fault} (expected allowed)")),
        (_, Err(fault), _) => checks.fail(what, format_args!("wrmsr raised {fault} (expected allowed)")),
        (_, _, Err(fault)) => checks.fail(what, format_args!("rdmsr after wrmsr raised {fault}")),
        (_, _, Ok(value)) => checks.fail(what, format_args!("reads back {value:#x}")),
    }
}

/// Performs `access` and checks it raised #GP(0) at the instruction.
fn expect_gp(checks: &mut Checks, access: Access) {
    let attempt = match access {
        Access::Read(msr) => rdmsr(msr.number),
        Access::Write(msr, value) | Access::RoundTrip(msr, value) => wrmsr(msr.number, value),
    };
    expect_exception(checks, access, attempt, GENERAL_PROTECTION, Some(0));
}
