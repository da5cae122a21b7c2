//! `leftovers`: checks that the CPU state the VMCS does not switch is switched
//! per guest by the hypervisor (see README.md and
//! `hypervisor/src/vm/cpu_context.rs`).
//!
//! 1. Clean start: XMM/YMM and x87 registers zero, FCW 0x37F, MXCSR 0x1F80,
//!    CR2 and DR0–DR3 zero, DR6 0xFFFF0FF0, the pass-through MSRs zero.
//! 2. It writes its own values (derived from its guest id) into all of them,
//!    yields [`YIELDS`] times, and checks after each yield that they are
//!    still there.
//!
//! None of these accesses exits: MOV CR2 and MOV DR do not (CR2 is not a
//! controlled register, MOV-DR exiting is off), the MSRs pass through the
//! MSR bitmap, and the SIMD registers are plain registers. Only the UART, the
//! hypercalls, CPUID and XSETBV exit.
//!
//! Exit status: the number of failed checks.
#![no_std]
#![no_main]
#![deny(unsafe_op_in_unsafe_fn)]

use core::arch::asm;
use core::arch::x86_64::__cpuid_count;

use guest_rt::hypercall::{self, InfoKey};
use guest_rt::timing::read_tsc;
use guest_rt::{exit, println};

guest_rt::entry!(main);

/// How many times it gives the CPU away with its values in place.
const YIELDS: u32 = 50;

/// A yield that took longer than this many ticks let another guest run.
const OTHER_GUEST_RAN_TICKS: u64 = 2_000;

/// The MSRs guests use without an exit that the VMCS does not hold.
const MSRS: [(u32, &str); 5] = [
    (0xC000_0102, "IA32_KERNEL_GS_BASE"),
    (0xC000_0081, "IA32_STAR"),
    (0xC000_0082, "IA32_LSTAR"),
    (0xC000_0083, "IA32_CSTAR"),
    (0xC000_0084, "IA32_FMASK"),
];

/// DR6 after reset.
const DR6_INIT: u64 = 0xFFFF_0FF0;
/// FCW after reset (FNINIT and XRSTOR's initial state).
const FCW_INIT: u16 = 0x037F;
/// MXCSR after reset.
const MXCSR_INIT: u32 = 0x1F80;

/// The FXSAVE image: x87 and SSE state in the legacy layout (SDM Vol. 1, 10.5.1).
#[repr(C, align(64))]
#[derive(Clone, Copy)]
struct Fxsave([u8; 512]);

impl Fxsave {
    fn fcw(&self) -> u16 {
        u16::from_le_bytes([self.0[0], self.0[1]])
    }
    fn mxcsr(&self) -> u32 {
        u32::from_le_bytes([self.0[24], self.0[25], self.0[26], self.0[27]])
    }
    /// x87 register `index` (80 bits in a 16-byte slot).
    fn st(&self, index: usize) -> u128 {
        u128::from_le_bytes(self.0[32 + 16 * index..48 + 16 * index].try_into().unwrap_or([0; 16])) & ((1 << 80) - 1)
    }
    /// XMM register `index`.
    fn xmm(&self, index: usize) -> u128 {
        u128::from_le_bytes(self.0[160 + 16 * index..176 + 16 * index].try_into().unwrap_or([0; 16]))
    }
}

/// Everything this guest checks, read out of the CPU.
#[derive(Clone, Copy)]
struct Snapshot {
    fx: Fxsave,
    /// Bits 255:128 of YMM0–YMM15 (zero when AVX is not enabled).
    ymm_high: [u128; 16],
    cr2: u64,
    dr: [u64; 4],
    dr6: u64,
    msrs: [u64; 5],
}

/// 32 bytes per YMM register.
#[repr(C, align(32))]
struct YmmImage([u8; 512]);

fn read_cpu(avx: bool) -> Snapshot {
    let mut fx = Fxsave([0; 512]);
    // SAFETY: FXSAVE64 writes 512 bytes into a 16-byte aligned buffer; CR4.OSFXSR is set.
    unsafe { asm!("fxsave64 [{}]", in(reg) fx.0.as_mut_ptr(), options(nostack)) };
    let mut ymm_high = [0u128; 16];
    if avx {
        let mut image = YmmImage([0; 512]);
        // SAFETY: sixteen 32-byte stores into a 512-byte buffer; AVX is enabled in XCR0.
        unsafe {
            asm!(
                "vmovdqu [{p}], ymm0", "vmovdqu [{p} + 32], ymm1", "vmovdqu [{p} + 64], ymm2", "vmovdqu [{p} + 96], ymm3",
                "vmovdqu [{p} + 128], ymm4", "vmovdqu [{p} + 160], ymm5", "vmovdqu [{p} + 192], ymm6",
                "vmovdqu [{p} + 224], ymm7", "vmovdqu [{p} + 256], ymm8", "vmovdqu [{p} + 288], ymm9",
                "vmovdqu [{p} + 320], ymm10", "vmovdqu [{p} + 352], ymm11", "vmovdqu [{p} + 384], ymm12",
                "vmovdqu [{p} + 416], ymm13", "vmovdqu [{p} + 448], ymm14", "vmovdqu [{p} + 480], ymm15",
                p = in(reg) image.0.as_mut_ptr(),
                options(nostack),
            );
        }
        for (index, high) in ymm_high.iter_mut().enumerate() {
            *high = u128::from_le_bytes(image.0[32 * index + 16..32 * index + 32].try_into().unwrap_or([0; 16]));
        }
    }
    let (cr2, dr0, dr1, dr2, dr3, dr6): (u64, u64, u64, u64, u64, u64);
    // SAFETY: reading CR2 and the debug registers at CPL 0 has no side effects.
    unsafe {
        asm!("mov {}, cr2", out(reg) cr2, options(nostack, nomem));
        asm!("mov {}, dr0", out(reg) dr0, options(nostack, nomem));
        asm!("mov {}, dr1", out(reg) dr1, options(nostack, nomem));
        asm!("mov {}, dr2", out(reg) dr2, options(nostack, nomem));
        asm!("mov {}, dr3", out(reg) dr3, options(nostack, nomem));
        asm!("mov {}, dr6", out(reg) dr6, options(nostack, nomem));
    }
    let mut msrs = [0; 5];
    for (value, (msr, _)) in msrs.iter_mut().zip(MSRS) {
        *value = rdmsr(msr);
    }
    Snapshot { fx, ymm_high, cr2, dr: [dr0, dr1, dr2, dr3], dr6, msrs }
}

fn rdmsr(msr: u32) -> u64 {
    let (low, high): (u32, u32);
    // SAFETY: these MSRs pass through to the CPU and exist on every 64-bit CPU.
    unsafe { asm!("rdmsr", in("ecx") msr, out("eax") low, out("edx") high, options(nostack, nomem)) };
    (u64::from(high) << 32) | u64::from(low)
}

fn wrmsr(msr: u32, value: u64) {
    // SAFETY: the values written (see `write_own_values`) are valid for these
    // MSRs, and nothing in this guest uses SYSCALL or SWAPGS.
    unsafe { asm!("wrmsr", in("ecx") msr, in("eax") value as u32, in("edx") (value >> 32) as u32, options(nostack)) };
}

/// Turns on SSE (CR4.OSFXSR/OSXMMEXCPT) and, when the CPU has it, XSAVE with
/// AVX state (CR4.OSXSAVE, XSETBV). Returns whether AVX is usable.
fn enable_simd() -> bool {
    let leaf1 = __cpuid_count(1, 0);
    let xsave = leaf1.ecx & (1 << 26) != 0;
    let avx_cpu = leaf1.ecx & (1 << 28) != 0;
    let mut cr4: u64;
    // SAFETY: reading CR4 has no side effects.
    unsafe { asm!("mov {}, cr4", out(reg) cr4, options(nostack, nomem)) };
    cr4 |= (1 << 9) | (1 << 10);
    if xsave {
        cr4 |= 1 << 18;
    }
    // SAFETY: OSFXSR, OSXMMEXCPT and OSXSAVE only enable instructions.
    unsafe { asm!("mov cr4, {}", in(reg) cr4, options(nostack, nomem)) };
    if !xsave {
        return false;
    }
    let leaf_d = __cpuid_count(0xD, 0);
    let avx = avx_cpu && leaf_d.eax & 0b110 == 0b110;
    let xcr0: u64 = if avx { 0b111 } else { 0b11 };
    // SAFETY: x87|SSE(|AVX) is a valid XCR0 the CPU advertises; CR4.OSXSAVE is set.
    unsafe { asm!("xsetbv", in("ecx") 0, in("eax") xcr0 as u32, in("edx") 0, options(nostack, nomem)) };
    avx
}

/// A value that tells this guest's registers from another guest's.
fn pattern(id: u64, slot: u64) -> u64 {
    0x0000_7E00_0000_0000 | (id << 24) | (slot << 8) | 0x5A
}

/// Fills every checked register with this guest's values.
fn write_own_values(id: u64, avx: bool) {
    let mut image = YmmImage([0; 512]);
    for (index, chunk) in image.0.as_chunks_mut::<8>().0.iter_mut().enumerate() {
        *chunk = pattern(id, 0x100 + index as u64).to_le_bytes();
    }
    // SAFETY: loads from a 512-byte buffer into the SIMD registers, which
    // nothing else in this guest uses (it is built soft-float).
    unsafe {
        if avx {
            asm!(
                "vmovdqu ymm0, [{p}]", "vmovdqu ymm1, [{p} + 32]", "vmovdqu ymm2, [{p} + 64]", "vmovdqu ymm3, [{p} + 96]",
                "vmovdqu ymm4, [{p} + 128]", "vmovdqu ymm5, [{p} + 160]", "vmovdqu ymm6, [{p} + 192]",
                "vmovdqu ymm7, [{p} + 224]", "vmovdqu ymm8, [{p} + 256]", "vmovdqu ymm9, [{p} + 288]",
                "vmovdqu ymm10, [{p} + 320]", "vmovdqu ymm11, [{p} + 352]", "vmovdqu ymm12, [{p} + 384]",
                "vmovdqu ymm13, [{p} + 416]", "vmovdqu ymm14, [{p} + 448]", "vmovdqu ymm15, [{p} + 480]",
                p = in(reg) image.0.as_ptr(),
                options(nostack, readonly),
            );
        } else {
            asm!(
                "movdqu xmm0, [{p}]", "movdqu xmm1, [{p} + 16]", "movdqu xmm2, [{p} + 32]", "movdqu xmm3, [{p} + 48]",
                "movdqu xmm4, [{p} + 64]", "movdqu xmm5, [{p} + 80]", "movdqu xmm6, [{p} + 96]", "movdqu xmm7, [{p} + 112]",
                "movdqu xmm8, [{p} + 128]", "movdqu xmm9, [{p} + 144]", "movdqu xmm10, [{p} + 160]",
                "movdqu xmm11, [{p} + 176]", "movdqu xmm12, [{p} + 192]", "movdqu xmm13, [{p} + 208]",
                "movdqu xmm14, [{p} + 224]", "movdqu xmm15, [{p} + 240]",
                p = in(reg) image.0.as_ptr(),
                options(nostack, readonly),
            );
        }
    }
    // x87: a different control word (precision 53 bits) and two values on the stack.
    let fcw: u16 = 0x027F;
    let mxcsr: u32 = MXCSR_INIT | (((id as u32) & 3) << 13);
    let values = [pattern(id, 0x200), pattern(id, 0x201)];
    // SAFETY: x87/SSE control and data loads from local variables.
    unsafe {
        asm!(
            "fninit",
            "fldcw [{fcw}]",
            "fild qword ptr [{values}]",
            "fild qword ptr [{values} + 8]",
            "ldmxcsr [{mxcsr}]",
            fcw = in(reg) &fcw,
            values = in(reg) values.as_ptr(),
            mxcsr = in(reg) &mxcsr,
            options(nostack),
        );
    }
    // SAFETY: CR2 only reports page-fault addresses; DR0–DR3 act only when DR7
    // enables them (it does not); DR6 bits 3:0 are status bits software may set.
    unsafe {
        asm!("mov cr2, {}", in(reg) pattern(id, 0x300), options(nostack, nomem));
        asm!("mov dr0, {}", in(reg) pattern(id, 0x400), options(nostack, nomem));
        asm!("mov dr1, {}", in(reg) pattern(id, 0x401), options(nostack, nomem));
        asm!("mov dr2, {}", in(reg) pattern(id, 0x402), options(nostack, nomem));
        asm!("mov dr3, {}", in(reg) pattern(id, 0x403), options(nostack, nomem));
        asm!("mov dr6, {}", in(reg) DR6_INIT | (1 + (id & 7)), options(nostack, nomem));
    }
    for (index, (msr, _)) in MSRS.iter().enumerate() {
        let value = if *msr == 0xC000_0084 { 0x0004_0700 | id } else { pattern(id, 0x500 + index as u64) };
        wrmsr(*msr, value);
    }
}

/// Counts and prints mismatches between `found` and `expected`.
struct Comparison {
    failures: u32,
    values: u32,
}

impl Comparison {
    fn check(&mut self, what: &str, index: usize, found: u128, expected: u128) {
        self.values += 1;
        if found != expected {
            self.failures += 1;
            println!("FAILED: {what}{index}: found {found:#x}, expected {expected:#x}");
        }
    }
}

/// Compares the reset state (`clean`) or a snapshot with the CPU.
fn compare(now: &Snapshot, expected: &Snapshot) -> Comparison {
    let mut result = Comparison { failures: 0, values: 0 };
    result.check("FCW", 0, now.fx.fcw().into(), expected.fx.fcw().into());
    result.check("MXCSR", 0, now.fx.mxcsr().into(), expected.fx.mxcsr().into());
    for index in 0..8 {
        result.check("ST", index, now.fx.st(index), expected.fx.st(index));
    }
    for index in 0..16 {
        result.check("XMM", index, now.fx.xmm(index), expected.fx.xmm(index));
        result.check("YMM_HIGH", index, now.ymm_high[index], expected.ymm_high[index]);
    }
    result.check("CR2", 0, now.cr2.into(), expected.cr2.into());
    for index in 0..4 {
        result.check("DR", index, now.dr[index].into(), expected.dr[index].into());
    }
    result.check("DR6", 0, now.dr6.into(), expected.dr6.into());
    for (index, (_, name)) in MSRS.iter().enumerate() {
        result.check(name, 0, now.msrs[index].into(), expected.msrs[index].into());
    }
    result
}

/// What a CPU holds after reset, in the shape of a snapshot.
fn reset_state() -> Snapshot {
    let mut fx = Fxsave([0; 512]);
    fx.0[0..2].copy_from_slice(&FCW_INIT.to_le_bytes());
    fx.0[24..28].copy_from_slice(&MXCSR_INIT.to_le_bytes());
    Snapshot { fx, ymm_high: [0; 16], cr2: 0, dr: [0; 4], dr6: DR6_INIT, msrs: [0; 5] }
}

fn main() -> ! {
    let id = hypercall::info(InfoKey::GuestId).unwrap_or(0);
    let avx = enable_simd();
    println!("guest {id}: AVX {}", if avx { "enabled: YMM upper halves checked too" } else { "not offered" });

    let clean = compare(&read_cpu(avx), &reset_state());
    if clean.failures == 0 {
        println!("clean start: all {} values in their reset state", clean.values);
    } else {
        println!("clean start: {} of {} values were not in their reset state", clean.failures, clean.values);
    }

    write_own_values(id, avx);
    let own = read_cpu(avx);
    // The snapshot must hold what was written, or the comparison proves nothing.
    let mut failures = clean.failures;
    if own.cr2 != pattern(id, 0x300) || own.msrs[0] != pattern(id, 0x500) || own.fx.xmm(0) as u64 != pattern(id, 0x100)
    {
        println!("FAILED: the values written did not read back");
        failures += 1;
    }

    let mut changed_yields = 0;
    let mut others_ran = 0;
    for _ in 0..YIELDS {
        let before = read_tsc();
        let _ = hypercall::yield_now();
        if read_tsc().wrapping_sub(before) > OTHER_GUEST_RAN_TICKS {
            others_ran += 1;
        }
        let after = compare(&read_cpu(avx), &own);
        if after.failures != 0 {
            changed_yields += 1;
            failures += after.failures;
        }
    }
    if changed_yields == 0 {
        println!("kept: all {} values across {YIELDS} yields (other guests ran during {others_ran})", clean.values);
    } else {
        println!("changed: values differed after {changed_yields} of {YIELDS} yields");
    }
    println!("exiting with status {failures}");
    exit(failures)
}
