//! `hostile_msrs`: a guest that reads and writes the model-specific
//! registers through which a guest could reach the host: the VMX
//! configuration, the APIC, the clocks, the memory types, the speculation
//! controls, the microcode loader and the performance counters.
//!
//! The hypervisor's policy (`hypervisor_core::msr::policy`) is deny by
//! default: with "use MSR bitmaps" every access to an MSR whose bitmap bit is
//! 1 exits (SDM Vol. 3C, 25.6.9 "MSR-Bitmap Address"), and the hypervisor
//! injects #GP(0), as a CPU does for an MSR it does not implement. A few
//! MSRs that hold only the guest's own state are emulated against the VMCS
//! (EFER, PAT, SYSENTER_CS/ESP/EIP) with the CPU's own checks, so their
//! *invalid* values must also raise #GP(0). The cases:
//!
//! | MSR | access | expected |
//! |---|---|---|
//! | IA32_FEATURE_CONTROL 0x3A | read, write | #GP(0) |
//! | IA32_EFER 0xC0000080 | its value with reserved bit 1, 9 or 63 | #GP(0) (emulated, checked) |
//! | IA32_SYSENTER_ESP/EIP 0x175/0x176 | non-canonical values | #GP(0) (emulated, checked) |
//! | IA32_APIC_BASE 0x1B | read; write moving the APIC to 1 MiB | #GP(0), or an emulated value / accepted write (a virtual APIC) |
//! | x2APIC 0x800–0x8FF | read of all 256; writes of TPR, EOI, ICR (INIT to all) | #GP(0): x2APIC is not offered |
//! | IA32_TSC 0x10, IA32_TSC_ADJUST 0x3B | read, write | #GP(0) |
//! | IA32_TSC_DEADLINE 0x6E0 | read, write | #GP(0), or emulated (a virtual APIC timer) |
//! | MTRRs: MTRRCAP 0xFE, PHYSBASE0/MASK0 0x200/0x201, FIX64K 0x250, DEF_TYPE 0x2FF | read, write | #GP(0) |
//! | IA32_PAT 0x277 | entries with the reserved types 2, 3 and 8 | #GP(0) (emulated, checked) |
//! | IA32_SPEC_CTRL 0x48, IA32_PRED_CMD 0x49 | read, write | #GP(0) |
//! | microcode: IA32_BIOS_UPDT_TRIG 0x79, IA32_BIOS_SIGN_ID 0x8B | write, read | #GP(0) |
//! | performance: IA32_PMC0 0xC1, IA32_PERFEVTSEL0 0x186, IA32_PERF_GLOBAL_CTRL 0x38F | read, write | #GP(0) |
//! | VMX capabilities 0x480–0x491 | read of all 18 | #GP(0) |
//! | IA32_DEBUGCTL 0x1D9 | read, write (LBR, BTF) | #GP(0) |
//!
//! MSR numbers: SDM Vol. 4, Chapter 2, Table 2-2 "IA-32 Architectural MSRs".
//! One line per check (the ranges one line each), then `checks: N passed,
//! M failed`; the exit status is the number of failed checks.
#![no_std]
#![no_main]
#![deny(unsafe_op_in_unsafe_fn)]

use core::fmt;
use core::ops::RangeInclusive;

use guest_rt::checks::{expect_gp, Attempt, Checks};
use guest_rt::idt::{self, GENERAL_PROTECTION};
use guest_rt::privileged::rdmsr;
use guest_rt::{exit, println};

guest_rt::entry!(main);

/// An MSR and its SDM name.
#[derive(Clone, Copy)]
struct Msr(u32, &'static str);

impl fmt::Display for Msr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({:#x})", self.1, self.0)
    }
}

const FEATURE_CONTROL: Msr = Msr(0x3A, "IA32_FEATURE_CONTROL");
const EFER: Msr = Msr(0xC000_0080, "IA32_EFER");
const SYSENTER_ESP: Msr = Msr(0x175, "IA32_SYSENTER_ESP");
const SYSENTER_EIP: Msr = Msr(0x176, "IA32_SYSENTER_EIP");
const APIC_BASE: Msr = Msr(0x1B, "IA32_APIC_BASE");
const TSC: Msr = Msr(0x10, "IA32_TIME_STAMP_COUNTER");
const TSC_ADJUST: Msr = Msr(0x3B, "IA32_TSC_ADJUST");
const TSC_DEADLINE: Msr = Msr(0x6E0, "IA32_TSC_DEADLINE");
const MTRRCAP: Msr = Msr(0xFE, "IA32_MTRRCAP");
const MTRR_PHYSBASE0: Msr = Msr(0x200, "IA32_MTRR_PHYSBASE0");
const MTRR_PHYSMASK0: Msr = Msr(0x201, "IA32_MTRR_PHYSMASK0");
const MTRR_FIX64K: Msr = Msr(0x250, "IA32_MTRR_FIX64K_00000");
const MTRR_DEF_TYPE: Msr = Msr(0x2FF, "IA32_MTRR_DEF_TYPE");
const PAT: Msr = Msr(0x277, "IA32_PAT");
const SPEC_CTRL: Msr = Msr(0x48, "IA32_SPEC_CTRL");
const PRED_CMD: Msr = Msr(0x49, "IA32_PRED_CMD");
const BIOS_UPDT_TRIG: Msr = Msr(0x79, "IA32_BIOS_UPDT_TRIG");
const BIOS_SIGN_ID: Msr = Msr(0x8B, "IA32_BIOS_SIGN_ID");
const PMC0: Msr = Msr(0xC1, "IA32_PMC0");
const PERFEVTSEL0: Msr = Msr(0x186, "IA32_PERFEVTSEL0");
const PERF_GLOBAL_CTRL: Msr = Msr(0x38F, "IA32_PERF_GLOBAL_CTRL");
const DEBUGCTL: Msr = Msr(0x1D9, "IA32_DEBUGCTL");
const X2APIC_TPR: Msr = Msr(0x808, "IA32_X2APIC_TPR");
const X2APIC_EOI: Msr = Msr(0x80B, "IA32_X2APIC_EOI");
const X2APIC_ICR: Msr = Msr(0x830, "IA32_X2APIC_ICR");

/// The x2APIC MSR range (SDM Vol. 3A, 12.12.1.2 "x2APIC Register Address Space").
const X2APIC_RANGE: RangeInclusive<u32> = 0x800..=0x8FF;
/// The VMX capability MSRs, IA32_VMX_BASIC to IA32_VMX_VMFUNC.
const VMX_CAPABILITY_RANGE: RangeInclusive<u32> = 0x480..=0x491;

/// Reads that must raise #GP(0).
const DENIED_READS: [Msr; 17] = [
    FEATURE_CONTROL,
    TSC,
    TSC_ADJUST,
    MTRRCAP,
    MTRR_PHYSBASE0,
    MTRR_FIX64K,
    MTRR_DEF_TYPE,
    SPEC_CTRL,
    BIOS_SIGN_ID,
    PMC0,
    PERFEVTSEL0,
    PERF_GLOBAL_CTRL,
    DEBUGCTL,
    X2APIC_TPR,
    Msr(0x802, "IA32_X2APIC_APICID"),
    Msr(0x3A0, "IA32_PEBS_ENABLE"),
    Msr(0x1A0, "IA32_MISC_ENABLE"),
];

/// Writes that must raise #GP(0): what an attacker would write.
const DENIED_WRITES: [(Msr, u64); 19] = [
    (FEATURE_CONTROL, 0x5),                // lock, VMX outside SMX
    (TSC, 0),                              // rewind the host's clock
    (TSC_ADJUST, 0x1_0000_0000),           // shift it
    (MTRR_PHYSBASE0, 0x6),                 // write-back from 0 ...
    (MTRR_PHYSMASK0, 0xF_0000_0800),       // ... over 4 GiB: the host's memory types
    (MTRR_FIX64K, 0),                      // the first 512 KiB uncacheable
    (MTRR_DEF_TYPE, 0x800),                // MTRRs on, default UC
    (SPEC_CTRL, 0x7),                      // IBRS, STIBP, SSBD
    (PRED_CMD, 0x1),                       // IBPB
    (BIOS_UPDT_TRIG, 0x10_0000),           // "load microcode from 1 MiB"
    (BIOS_SIGN_ID, 0),                     // clear the microcode signature
    (PMC0, 0x1234),                        // preset a counter
    (PERFEVTSEL0, 0x43_003C),              // count core cycles, with interrupt
    (PERF_GLOBAL_CTRL, 0xF),               // enable the counters
    (DEBUGCTL, 0x3),                       // LBR and BTF
    (X2APIC_TPR, 0xFF),                    // mask every interrupt
    (X2APIC_EOI, 0),                       // end an interrupt we never got
    (X2APIC_ICR, 0x000C_4500),             // INIT IPI to all others
    (Msr(0x1A0, "IA32_MISC_ENABLE"), 0x1), // fast strings, on the host
];

/// Reserved EFER bits to set one at a time (SDM Vol. 3A, 2.2.1 "Extended
/// Feature Enable Register"): bit 1, bit 9 and bit 63.
const EFER_RESERVED: [u64; 3] = [1 << 1, 1 << 9, 1 << 63];

/// Non-canonical addresses for SYSENTER_ESP/EIP.
const NON_CANONICAL: [u64; 2] = [0x0000_8000_0000_0000, 0x1234_5678_9ABC_DEF0];

/// The power-on PAT (SDM Vol. 3A, 13.12.4) with entry 0 replaced by `kind`.
const fn pat_with_entry0(kind: u64) -> u64 {
    (0x0007_0406_0007_0406 & !0xFF) | kind
}

/// The program.
fn main() -> ! {
    println!("hostile_msrs: MSRs a guest must not reach");
    idt::install();
    let mut checks = Checks::new();

    for msr in DENIED_READS {
        expect_gp(&mut checks, format_args!("rdmsr {msr}"), rdmsr(msr.0));
    }
    for (msr, value) in DENIED_WRITES {
        expect_gp(&mut checks, format_args!("wrmsr {msr} {value:#x}"), wrmsr(msr.0, value));
    }
    emulated_with_checks(&mut checks);
    range_denied(&mut checks, "x2APIC", X2APIC_RANGE);
    range_denied(&mut checks, "VMX capability", VMX_CAPABILITY_RANGE);
    gp_or_emulated(&mut checks, APIC_BASE, 0x0010_0900);
    gp_or_emulated(&mut checks, TSC_DEADLINE, u64::MAX);

    checks.report();
    exit(checks.failed())
}

/// The MSRs the hypervisor emulates against the VMCS: invalid values must
/// get #GP(0), exactly as the CPU would answer them.
fn emulated_with_checks(checks: &mut Checks) {
    match rdmsr(EFER.0).result {
        Ok(efer) => {
            for bit in EFER_RESERVED {
                expect_gp(
                    checks,
                    format_args!("wrmsr {EFER} its value | reserved bit {}", bit.trailing_zeros()),
                    wrmsr(EFER.0, efer | bit),
                );
            }
        }
        Err(fault) => checks.fail(format_args!("rdmsr {EFER}"), format_args!("{fault} (expected allowed)")),
    }
    for msr in [SYSENTER_ESP, SYSENTER_EIP] {
        for value in NON_CANONICAL {
            expect_gp(checks, format_args!("wrmsr {msr} {value:#x} (not canonical)"), wrmsr(msr.0, value));
        }
    }
    for kind in [2, 3, 8] {
        let value = pat_with_entry0(kind);
        expect_gp(checks, format_args!("wrmsr {PAT} {value:#x} (memory type {kind})"), wrmsr(PAT.0, value));
    }
}

/// Every MSR of `range` must refuse a read with #GP(0): one line for all.
fn range_denied(checks: &mut Checks, what: &str, range: RangeInclusive<u32>) {
    let (first, last) = (*range.start(), *range.end());
    let count = range.clone().count();
    let what = format_args!("rdmsr of all {count} {what} MSRs {first:#x}-{last:#x}");
    for msr in range {
        let attempt = rdmsr(msr);
        let fault = attempt.result;
        let refused = matches!(
            fault,
            Err(fault) if fault.vector == GENERAL_PROTECTION && fault.error_code == Some(0) && fault.rip == attempt.at
        );
        if !refused {
            match fault {
                Ok(value) => checks.fail(what, format_args!("{msr:#x} allowed, value {value:#x} (expected #GP(0))")),
                Err(fault) => checks.fail(what, format_args!("{msr:#x}: {fault} (expected #GP(0))")),
            }
            return;
        }
    }
    checks.pass(what, "#GP(0) for every one");
}

/// An MSR a virtual APIC may emulate (issue 6): a read must raise #GP(0) or
/// return a value; a write of `value` must raise #GP(0) or be accepted (and
/// then stay this guest's: the test's neighbours and the hypervisor keep
/// running). Either way the line says which.
fn gp_or_emulated(checks: &mut Checks, msr: Msr, value: u64) {
    match rdmsr(msr.0).result {
        Err(fault) if fault.vector == GENERAL_PROTECTION && fault.error_code == Some(0) => {
            checks.pass(format_args!("rdmsr {msr}"), "#GP(0) (not emulated)")
        }
        Ok(read) => checks.pass(format_args!("rdmsr {msr}"), format_args!("{read:#x} (emulated)")),
        Err(fault) => checks.fail(format_args!("rdmsr {msr}"), format_args!("{fault} (expected #GP(0) or a value)")),
    }
    match wrmsr(msr.0, value).result {
        Err(fault) if fault.vector == GENERAL_PROTECTION && fault.error_code == Some(0) => {
            checks.pass(format_args!("wrmsr {msr} {value:#x}"), "#GP(0) (not emulated)")
        }
        Ok(_) => checks.pass(format_args!("wrmsr {msr} {value:#x}"), "accepted (emulated)"),
        Err(fault) => {
            checks.fail(format_args!("wrmsr {msr} {value:#x}"), format_args!("{fault} (expected #GP(0) or accepted)"))
        }
    }
}

/// WRMSR through guest-rt.
fn wrmsr(msr: u32, value: u64) -> Attempt<u64> {
    // SAFETY: the hypervisor must refuse every write made here (or, for the
    // APIC MSRs, emulate it for this guest alone); were one to reach the
    // CPU, the test has found what it is looking for, and the run's other
    // checks (neighbours, the hypervisor's integrity) report the damage.
    unsafe { guest_rt::privileged::wrmsr(msr, value) }
}
