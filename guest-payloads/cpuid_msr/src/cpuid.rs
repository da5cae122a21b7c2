//! The CPUID checks.
//!
//! CPUID always causes a VM exit in VMX non-root operation (SDM Vol. 3C,
//! 26.1.2 "Instructions That Cause VM Exits Unconditionally"); the
//! hypervisor executes CPUID itself and filters the answer
//! (`hypervisor_core::cpuid::filter_cpuid`). The checks cover what that
//! filter fixes regardless of the host CPU; the host's own bits are never
//! printed.

use core::arch::asm;

use guest_rt::checks::Checks;
use guest_rt::hypercall::{self, InfoKey};

/// The four registers CPUID returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Registers {
    eax: u32,
    ebx: u32,
    ecx: u32,
    edx: u32,
}

/// Executes CPUID for `leaf` and `subleaf` (ECX).
///
/// LLVM reserves RBX, which CPUID writes, so it cannot be named as an
/// output: the asm saves RBX in a scratch register and swaps it back.
fn cpuid(leaf: u32, subleaf: u32) -> Registers {
    let (eax, ebx, ecx, edx): (u32, u64, u32, u32);
    // SAFETY: CPUID only writes the four registers (RBX is restored).
    unsafe {
        asm!(
            "mov {rbx_copy}, rbx",
            "cpuid",
            "xchg {rbx_copy}, rbx",
            rbx_copy = out(reg) ebx,
            inout("eax") leaf => eax,
            inout("ecx") subleaf => ecx,
            out("edx") edx,
            options(nomem, nostack, preserves_flags),
        );
    }
    Registers { eax, ebx: ebx as u32, ecx, edx }
}

/// The hypervisor's leaf range and its two leaves.
const HYPERVISOR_LEAF_BASE: u32 = 0x4000_0000;
const HYPERVISOR_LEAF_TSC: u32 = 0x4000_0001;
/// The signature in EBX, ECX, EDX of leaf 0x4000_0000.
const SIGNATURE: &[u8; 12] = b"VtxTeachHV\0\0";

/// Leaf 1 ECX bits the hypervisor clears or sets, as (bit, name, set?).
/// SDM Vol. 2A, "CPUID—CPU Identification", Table 3-10 "Feature Information
/// Returned in the ECX Register".
const LEAF1_ECX_BITS: [(u32, &str, bool); 6] = [
    (31, "hypervisor", true),
    (5, "VMX", false),
    (6, "SMX", false),
    (3, "MONITOR", false),
    (15, "PDCM", false),
    (21, "x2APIC", false),
];

/// Runs the CPUID checks.
pub fn run(checks: &mut Checks) {
    let leaf1 = cpuid(1, 0);
    for (bit, name, want_set) in LEAF1_ECX_BITS {
        let set = leaf1.ecx & (1 << bit) != 0;
        let state = |set: bool| if set { "set" } else { "hidden" };
        checks.check(
            format_args!("cpuid(1).ecx[{bit}] {name}"),
            set == want_set,
            state(want_set),
            format_args!("{} (expected {})", state(set), state(want_set)),
        );
    }

    let base = cpuid(HYPERVISOR_LEAF_BASE, 0);
    let mut signature = [0u8; 12];
    signature[0..4].copy_from_slice(&base.ebx.to_le_bytes());
    signature[4..8].copy_from_slice(&base.ecx.to_le_bytes());
    signature[8..12].copy_from_slice(&base.edx.to_le_bytes());
    checks.check(
        "cpuid(0x40000000) signature",
        &signature == SIGNATURE,
        "\"VtxTeachHV\"",
        format_args!("{} (expected \"VtxTeachHV\" and two NULs)", Escaped(&signature)),
    );
    checks.check(
        "cpuid(0x40000000).eax max leaf",
        base.eax >= HYPERVISOR_LEAF_TSC && base.eax <= 0x4000_00FF,
        format_args!("{:#x}", base.eax),
        format_args!("{:#x} (expected 0x40000001..=0x400000ff)", base.eax),
    );

    // The TSC frequency: the hypervisor reports the same value, in Hz,
    // through info(TscHz); the leaf carries it in kHz, truncated.
    let tsc_khz = cpuid(HYPERVISOR_LEAF_TSC, 0).eax;
    let tsc_hz = hypercall::info(InfoKey::TscHz);
    checks.check(
        "cpuid(0x40000001).eax TSC kHz",
        tsc_khz > 0 && matches!(tsc_hz, Ok(hz) if hz / 1000 == u64::from(tsc_khz)),
        "positive, info(TscHz) / 1000",
        format_args!("{tsc_khz} (expected positive and info(TscHz) / 1000, info(TscHz) = {tsc_hz:?})"),
    );

    let zero = Registers { eax: 0, ebx: 0, ecx: 0, edx: 0 };
    for (leaf, what) in
        [(0xA, "cpuid(0xa) architectural PMU"), (0x4000_0002, "cpuid(0x40000002) unused hypervisor leaf")]
    {
        let registers = cpuid(leaf, 0);
        checks.check(
            what,
            registers == zero,
            "all zero",
            format_args!(
                "eax {:#x} ebx {:#x} ecx {:#x} edx {:#x} (expected all zero)",
                registers.eax, registers.ebx, registers.ecx, registers.edx
            ),
        );
    }
}

/// Bytes shown as a string, `\xNN` for anything unprintable.
struct Escaped<'a>(&'a [u8]);

impl core::fmt::Display for Escaped<'_> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("\"")?;
        for &byte in self.0 {
            if (0x20..0x7F).contains(&byte) && byte != b'"' && byte != b'\\' {
                write!(f, "{}", byte as char)?;
            } else {
                write!(f, "\\x{byte:02x}")?;
            }
        }
        f.write_str("\"")
    }
}
