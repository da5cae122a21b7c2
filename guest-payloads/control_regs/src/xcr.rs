//! The XCR0 checks: CR4.OSXSAVE, XSETBV and XGETBV.
//!
//! XCR0 selects the processor state components XSAVE manages: bit 0 x87
//! (always 1), bit 1 SSE, bit 2 AVX, ... (SDM Vol. 1, 13.3 "Enabling the
//! XSAVE Feature Set and XSAVE-Enabled Features"). XSETBV writes it and
//! XGETBV reads it; both raise #UD while CR4.OSXSAVE is 0, so the guest sets
//! OSXSAVE first (a CR4 bit the hypervisor does not own: no exit).
//!
//! XSETBV exits unconditionally (SDM Vol. 3C, 26.1.2 "Instructions That
//! Cause VM Exits Unconditionally"). The hypervisor applies the checks a CPU
//! would (`hypervisor_core::xcr::check_xcr0`): only XCR0 exists (ECX = 0),
//! x87 must stay on, AVX needs SSE, and only components CPUID leaf 0xD
//! advertises may be enabled; anything else gets #GP(0). A valid value is
//! loaded into the real XCR0 and kept as this guest's own. XGETBV does not
//! exit: it reads the real XCR0, which therefore shows what the hypervisor
//! did. A guest starts with XCR0 = 1 (x87 only).
//!
//! CPUID leaf 1 ECX bit 27 (OSXSAVE) reports the guest's own CR4.OSXSAVE
//! (SDM Vol. 2A, "CPUID—CPU Identification", Table 3-10): since CPUID exits,
//! the hypervisor must compute it from the guest's CR4
//! (`hypervisor_core::cpuid::reflect_guest_cr4`), not pass the host's on.

use core::arch::asm;

use guest_rt::checks::{expect_gp, Attempt, Checks};
use guest_rt::privileged::{self, read_cr4, xgetbv};

use crate::cr;

/// CR4.OSXSAVE (bit 18): the OS supports XSAVE; enables XGETBV/XSETBV.
const CR4_OSXSAVE: u64 = 1 << 18;
/// CPUID leaf 1 ECX bit 26: the CPU offers XSAVE/XRSTOR, XSETBV/XGETBV.
const LEAF1_ECX_XSAVE: u32 = 1 << 26;
/// CPUID leaf 1 ECX bit 27: OSXSAVE, a copy of CR4.OSXSAVE.
const LEAF1_ECX_OSXSAVE: u32 = 1 << 27;

/// XCR0 bit 0: x87 state, always enabled.
const X87: u64 = 1 << 0;
/// XCR0 bit 1: SSE state.
const SSE: u64 = 1 << 1;
/// XCR0 bit 2: AVX state (needs SSE).
const AVX: u64 = 1 << 2;
/// XCR0 bit 62: no state component uses it on Intel CPUs, so CPUID leaf 0xD
/// does not advertise it.
const BIT_62: u64 = 1 << 62;

/// The values the hypervisor must refuse, as (ECX, EDX:EAX, why).
const REFUSED: [(u32, u64, &str); 4] = [
    (0, 0, "x87 cleared"),
    (0, X87 | AVX, "AVX without SSE"),
    (0, X87 | BIT_62, "bit 62, not advertised"),
    (1, X87, "no such register"),
];

/// Runs the XCR0 checks. Needs the IDT installed.
pub fn run(checks: &mut Checks) {
    let leaf1 = cpuid(1, 0);
    if !checks.check(
        "cpuid(1).ecx[26] XSAVE",
        leaf1.ecx & LEAF1_ECX_XSAVE != 0,
        "offered",
        "hidden (expected offered; the XSETBV checks are skipped)",
    ) {
        return;
    }
    osxsave_mirror(checks, leaf1.ecx, false);

    let what = "mov cr4, cr4 | OSXSAVE (bit 18)";
    let cr4 = read_cr4();
    match cr::write_cr4(cr4 | CR4_OSXSAVE).result {
        Ok(value) => {
            let read = read_cr4();
            checks.check(
                what,
                read == value,
                "allowed, reads back set",
                format_args!("allowed, reads back {read:#x} (expected {value:#x})"),
            );
        }
        Err(fault) => {
            checks.fail(what, format_args!("{fault} (expected allowed; the XSETBV checks are skipped)"));
            return;
        }
    }
    osxsave_mirror(checks, cpuid(1, 0).ecx, true);

    let leaf_d = cpuid(0xD, 0);
    let supported = (u64::from(leaf_d.edx) << 32) | u64::from(leaf_d.eax);
    checks.check(
        "cpuid(0xd).edx:eax supported XCR0 bits",
        supported & (X87 | SSE) == X87 | SSE && supported & BIT_62 == 0,
        "x87 and SSE advertised, bit 62 not",
        format_args!("{supported:#x} (expected bits 0 and 1 set, bit 62 clear)"),
    );

    expect_xcr0(checks, "xgetbv XCR0 before any xsetbv", X87, "(x87 only: the start value)");
    allowed(checks, X87, "x87");
    for (index, value, why) in REFUSED {
        let what = format_args!("xsetbv XCR{index} = {value:#x} ({why})");
        if expect_gp(checks, what, xsetbv(index, value)) {
            // Best effort: the failed check above already says what went wrong.
            let _ = xsetbv(0, X87);
        }
    }
    expect_xcr0(checks, "xgetbv XCR0 after the refused values", X87, "unchanged");
    allowed(checks, X87 | SSE, "x87 | SSE");
}

/// Checks that CPUID leaf 1 ECX shows OSXSAVE exactly when the guest has set
/// CR4.OSXSAVE (`osxsave`).
fn osxsave_mirror(checks: &mut Checks, leaf1_ecx: u32, osxsave: bool) {
    let shown = leaf1_ecx & LEAF1_ECX_OSXSAVE != 0;
    let state = |set: bool| if set { "set" } else { "clear" };
    checks.check(
        format_args!("cpuid(1).ecx[27] OSXSAVE with CR4.OSXSAVE={}", u8::from(osxsave)),
        shown == osxsave,
        state(osxsave),
        format_args!("{} (expected {}: it mirrors the guest's CR4.OSXSAVE)", state(shown), state(osxsave)),
    );
}

/// XSETBV of `value` to XCR0 must be allowed and XGETBV must read it back.
fn allowed(checks: &mut Checks, value: u64, components: &str) {
    let what = format_args!("xsetbv XCR0 = {value:#x} ({components})");
    match xsetbv(0, value).result {
        Ok(_) => match xgetbv(0).result {
            Ok(read) => {
                checks.check(
                    what,
                    read == value,
                    format_args!("allowed, xgetbv reads {value:#x}"),
                    format_args!("allowed, xgetbv reads {read:#x} (expected {value:#x})"),
                );
            }
            Err(fault) => checks.fail(what, format_args!("allowed, but xgetbv raised {fault}")),
        },
        Err(fault) => checks.fail(what, format_args!("{fault} (expected allowed)")),
    }
}

/// XGETBV of XCR0 must read `want`: `ok: <what> -> 0x1 <note>`.
fn expect_xcr0(checks: &mut Checks, what: &str, want: u64, note: &str) {
    match xgetbv(0).result {
        Ok(read) => {
            checks.check(
                what,
                read == want,
                format_args!("{want:#x} {note}"),
                format_args!("{read:#x} (expected {want:#x})"),
            );
        }
        Err(fault) => checks.fail(what, format_args!("{fault} (expected {want:#x})")),
    }
}

/// XSETBV through guest-rt.
fn xsetbv(index: u32, value: u64) -> Attempt<u64> {
    // SAFETY: XCR0 only selects the state XSAVE manages; this payload is
    // built soft-float and uses no x87/SSE/AVX state.
    unsafe { privileged::xsetbv(index, value) }
}

/// The registers of CPUID's answer this module uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Registers {
    eax: u32,
    ecx: u32,
    edx: u32,
}

/// Executes CPUID for `leaf` and `subleaf` (ECX); EBX is not needed here.
///
/// LLVM reserves RBX, which CPUID writes, so it cannot be named as an
/// output: the asm saves RBX in a scratch register and restores it.
fn cpuid(leaf: u32, subleaf: u32) -> Registers {
    let (eax, ecx, edx): (u32, u32, u32);
    // SAFETY: CPUID only writes the four registers (RBX is restored).
    unsafe {
        asm!(
            "mov {rbx_copy}, rbx",
            "cpuid",
            "mov rbx, {rbx_copy}",
            rbx_copy = out(reg) _,
            inout("eax") leaf => eax,
            inout("ecx") subleaf => ecx,
            out("edx") edx,
            options(nomem, nostack, preserves_flags),
        );
    }
    Registers { eax, ecx, edx }
}
