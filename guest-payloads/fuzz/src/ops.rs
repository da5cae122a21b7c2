//! The operations a fuzz run draws from, and the tally of how the
//! hypervisor answered them.
//!
//! Every operation is an instruction the hypervisor must intercept (SDM Vol.
//! 3C, 26.1 "Instructions That Cause VM Exits"): I/O instructions, RDMSR and
//! WRMSR, CPUID and VMCALL. Operands are drawn half from lists of
//! interesting values (the devices and MSRs of the isolation cases, the edges
//! of the guest's RAM) and half at random.
//!
//! What is never drawn, because it would end or disturb the run rather than
//! test the hypervisor: writes to the exit port 0xF4 (which end the guest),
//! writes to the guest's own UART 0x3F8–0x3FF (which would print noise), the
//! `exit` hypercall, `print` calls whose range is valid (they would print
//! guest memory; the length is made 0), writes of other values than the
//! current one to EFER and PAT (they would change how the guest's own code
//! runs), and x2APIC ICR/SELF_IPI writes (an INIT to itself would reset it).

use core::arch::asm;
use core::fmt;

use guest_rt::hypercall::{vmcall, HypercallError};
use guest_rt::idt::{self, Fault};

use crate::rng::SplitMix64;

/// The exit port (writes end the guest).
const EXIT_PORTS: core::ops::RangeInclusive<u16> = 0xF4..=0xF7;
/// The guest's UART (writes print).
const UART_PORTS: core::ops::RangeInclusive<u16> = 0x3F8..=0x3FF;

/// Ports of the legacy PC devices the isolation cases name: PICs, PIT,
/// keyboard controller and reset, POST, fast A20/reset, CMOS/RTC, PCI
/// configuration, reset control, IDE, COM2, Bochs' shutdown, debug and
/// port-E9 ports, QEMU's fw_cfg.
const INTERESTING_PORTS: [u16; 40] = [
    0x20, 0x21, 0xA0, 0xA1, 0x40, 0x41, 0x42, 0x43, 0x60, 0x61, 0x64, 0x80, 0x92, 0x70, 0x71, 0xCF8, 0xCFA, 0xCFB,
    0xCFC, 0xCFD, 0xCFE, 0xCFF, 0xCF9, 0x1F0, 0x1F1, 0x1F2, 0x1F7, 0x3F6, 0x170, 0x376, 0x2F8, 0x2FD, 0x3FD, 0x3F8,
    0x8900, 0x8A00, 0xE9, 0x402, 0x510, 0x511,
];

/// MSRs the isolation cases name, and the ones a guest may use.
const INTERESTING_MSRS: [u32; 40] = [
    0x10,        // IA32_TIME_STAMP_COUNTER
    0x1B,        // IA32_APIC_BASE
    0x3A,        // IA32_FEATURE_CONTROL
    0x3B,        // IA32_TSC_ADJUST
    0x48,        // IA32_SPEC_CTRL
    0x49,        // IA32_PRED_CMD
    0x79,        // IA32_BIOS_UPDT_TRIG (microcode update)
    0x8B,        // IA32_BIOS_SIGN_ID
    0xC1,        // IA32_PMC0
    0xFE,        // IA32_MTRRCAP
    0x10A,       // IA32_ARCH_CAPABILITIES
    0x10B,       // IA32_FLUSH_CMD
    0x174,       // IA32_SYSENTER_CS
    0x175,       // IA32_SYSENTER_ESP
    0x176,       // IA32_SYSENTER_EIP
    0x186,       // IA32_PERFEVTSEL0
    0x1D9,       // IA32_DEBUGCTL
    0x200,       // IA32_MTRR_PHYSBASE0
    0x201,       // IA32_MTRR_PHYSMASK0
    0x250,       // IA32_MTRR_FIX64K_00000
    0x277,       // IA32_PAT
    0x2FF,       // IA32_MTRR_DEF_TYPE
    0x38F,       // IA32_PERF_GLOBAL_CTRL
    0x480,       // IA32_VMX_BASIC
    0x48B,       // IA32_VMX_PROCBASED_CTLS2
    0x491,       // IA32_VMX_VMFUNC
    0x6E0,       // IA32_TSC_DEADLINE
    0x802,       // x2APIC ID
    0x80B,       // x2APIC EOI
    0x8FF,       // the top of the x2APIC range
    0xC000_0080, // IA32_EFER
    0xC000_0081, // IA32_STAR
    0xC000_0082, // IA32_LSTAR
    0xC000_0083, // IA32_CSTAR
    0xC000_0084, // IA32_FMASK
    0xC000_0100, // IA32_FS_BASE
    0xC000_0101, // IA32_GS_BASE
    0xC000_0102, // IA32_KERNEL_GS_BASE
    0xC000_0103, // IA32_TSC_AUX
    0x4000_0000, // a hypervisor-range MSR
];

/// MSRs written only with the value just read (see the module documentation).
const WRITE_BACK_ONLY: [u32; 2] = [0xC000_0080, 0x277];
/// MSRs never written: x2APIC ICR and SELF_IPI.
const NEVER_WRITTEN: [u32; 2] = [0x830, 0x83F];

/// How many operations got which answer.
#[derive(Debug, Clone, Copy, Default)]
pub struct Tally {
    /// I/O instructions (IN/OUT, one access).
    pub port_accesses: u64,
    /// Of those, reads.
    pub port_reads: u64,
    /// Reads that returned all ones (nothing there).
    pub port_reads_all_ones: u64,
    /// `rep insb`/`rep outsb` operations.
    pub string_io: u64,
    /// RDMSR/WRMSR.
    pub msr_accesses: u64,
    /// MSR accesses that completed.
    pub msr_ok: u64,
    /// MSR accesses answered with #GP.
    pub msr_gp: u64,
    /// MSR accesses answered with another exception.
    pub msr_other_fault: u64,
    /// CPUID.
    pub cpuid: u64,
    /// VMCALL.
    pub hypercalls: u64,
    /// Hypercalls that succeeded (RAX >= 0).
    pub hypercall_ok: u64,
    /// Hypercall error codes -1, -2, -3, -4.
    pub hypercall_errors: [u64; 4],
    /// Other negative results (none expected).
    pub hypercall_other: u64,
    /// A digest of the CPUID answers and the hypercall results other than
    /// `info` values (stable for a seed, so two runs with one seed can be compared).
    pub digest: u64,
}

impl Tally {
    /// All operations counted.
    pub fn operations(&self) -> u64 {
        self.port_accesses + self.string_io + self.msr_accesses + self.cpuid + self.hypercalls
    }

    /// Folds a value into the digest (FNV-1a style, per 64-bit word).
    fn fold(&mut self, value: u64) {
        self.digest = (self.digest ^ value).wrapping_mul(0x0000_0100_0000_01B3);
    }
}

impl Tally {
    /// The answers to port, MSR and CPUID operations, for one line.
    pub fn device_answers(&self) -> impl fmt::Display + '_ {
        DeviceAnswers(self)
    }

    /// The answers to hypercalls and the digest, for another line (the
    /// hypervisor's line buffer splits longer lines).
    pub fn hypercall_answers(&self) -> impl fmt::Display + '_ {
        HypercallAnswers(self)
    }
}

/// See [`Tally::device_answers`].
struct DeviceAnswers<'a>(&'a Tally);

impl fmt::Display for DeviceAnswers<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let t = self.0;
        write!(
            f,
            "ports {} (reads {}, all ones {}), string I/O {}, MSRs {} (ok {}, #GP {}, other faults {}), CPUID {}",
            t.port_accesses,
            t.port_reads,
            t.port_reads_all_ones,
            t.string_io,
            t.msr_accesses,
            t.msr_ok,
            t.msr_gp,
            t.msr_other_fault,
            t.cpuid,
        )
    }
}

/// See [`Tally::hypercall_answers`].
struct HypercallAnswers<'a>(&'a Tally);

impl fmt::Display for HypercallAnswers<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let t = self.0;
        let [unknown, bad_address, too_long, bad_argument] = t.hypercall_errors;
        write!(
            f,
            "{} (ok {}, unknown call {}, bad address {}, too long {}, bad argument {}, other {}); digest {:#018x}",
            t.hypercalls, t.hypercall_ok, unknown, bad_address, too_long, bad_argument, t.hypercall_other, t.digest,
        )
    }
}

/// What the operations need to know about the guest.
#[derive(Debug, Clone, Copy)]
pub struct Machine {
    /// Bytes of guest RAM (guest-physical 0 up to here).
    pub ram_size: u64,
}

/// Draws one operation and runs it.
pub fn run_one(rng: &mut SplitMix64, machine: &Machine, tally: &mut Tally) {
    match rng.below(16) {
        0..=3 => port(rng, tally),
        4 => string_io(rng, tally),
        5..=7 => msr(rng, tally),
        8..=10 => cpuid(rng, tally),
        _ => hypercall(rng, machine, tally),
    }
}

/// A port: half from the interesting list, half any 16-bit number.
fn draw_port(rng: &mut SplitMix64) -> u16 {
    if rng.below(2) == 0 {
        rng.pick(&INTERESTING_PORTS)
    } else {
        rng.next_u64() as u16
    }
}

/// Whether writing `port` would end the run or print (see the module documentation).
fn write_forbidden(port: u16) -> bool {
    EXIT_PORTS.contains(&port) || UART_PORTS.contains(&port)
}

/// One IN or OUT of 1, 2 or 4 bytes (SDM Vol. 2A, "IN"; Vol. 2B, "OUT").
fn port(rng: &mut SplitMix64, tally: &mut Tally) {
    let port = draw_port(rng);
    let size = rng.pick(&[1u8, 2, 4]);
    let write = rng.below(2) == 0 && !write_forbidden(port) && !write_forbidden(port.wrapping_add(3));
    tally.port_accesses += 1;
    if write {
        let value = rng.next_u64() as u32;
        // SAFETY: a write to a port of the virtual machine: the hypervisor
        // emulates or ignores it; the exit port and our UART are excluded.
        unsafe {
            match size {
                1 => asm!("out dx, al", in("dx") port, in("al") value as u8, options(nomem, nostack, preserves_flags)),
                2 => asm!("out dx, ax", in("dx") port, in("ax") value as u16, options(nomem, nostack, preserves_flags)),
                _ => asm!("out dx, eax", in("dx") port, in("eax") value, options(nomem, nostack, preserves_flags)),
            }
        }
    } else {
        // SAFETY: a read of a port of the virtual machine changes no guest memory.
        let all_ones = unsafe {
            match size {
                1 => {
                    let byte: u8;
                    asm!("in al, dx", in("dx") port, out("al") byte, options(nomem, nostack, preserves_flags));
                    byte == u8::MAX
                }
                2 => {
                    let word: u16;
                    asm!("in ax, dx", in("dx") port, out("ax") word, options(nomem, nostack, preserves_flags));
                    word == u16::MAX
                }
                _ => {
                    let dword: u32;
                    asm!("in eax, dx", in("dx") port, out("eax") dword, options(nomem, nostack, preserves_flags));
                    dword == u32::MAX
                }
            }
        };
        tally.port_reads += 1;
        if all_ones {
            tally.port_reads_all_ones += 1;
        }
    }
}

/// A `rep insb` or `rep outsb` of 1 to 16 bytes through a buffer of ours
/// (SDM Vol. 2A, "INS"; Vol. 2B, "OUTS"): the hypervisor walks our page
/// tables to find the buffer.
fn string_io(rng: &mut SplitMix64, tally: &mut Tally) {
    let mut buffer = [0u8; 16];
    for byte in buffer.iter_mut() {
        *byte = rng.next_u64() as u8;
    }
    let count = 1 + rng.below(16) as usize;
    let mut port = draw_port(rng);
    let write = rng.below(2) == 0;
    if write && write_forbidden(port) {
        port = 0x80;
    }
    tally.string_io += 1;
    // SAFETY: RDI/RSI point at `buffer`, RCX ≤ its length, DF is clear (the
    // ABI guarantees it); the ports are those of `port`.
    unsafe {
        if write {
            asm!("rep outsb", in("dx") port, inout("rsi") buffer.as_ptr() => _, inout("rcx") count => _,
                 options(nostack, preserves_flags, readonly));
        } else {
            asm!("rep insb", in("dx") port, inout("rdi") buffer.as_mut_ptr() => _, inout("rcx") count => _,
                 options(nostack, preserves_flags));
        }
    }
}

/// An MSR number: half from the interesting list, a quarter in the x2APIC
/// range, a quarter any 32-bit number.
fn draw_msr(rng: &mut SplitMix64) -> u32 {
    match rng.below(4) {
        0 | 1 => rng.pick(&INTERESTING_MSRS),
        2 => 0x800 + rng.below(0x100) as u32,
        _ => rng.next_u64() as u32,
    }
}

/// RDMSR, or WRMSR of a random value (SDM Vol. 2B, "RDMSR", "WRMSR"); an
/// exception is caught by guest-rt's IDT.
fn msr(rng: &mut SplitMix64, tally: &mut Tally) {
    let msr = draw_msr(rng);
    let write = rng.below(2) == 0 && !NEVER_WRITTEN.contains(&msr);
    let random_value = edge_value(rng, u64::MAX);
    tally.msr_accesses += 1;
    let fault = if write {
        let value = if WRITE_BACK_ONLY.contains(&msr) {
            match rdmsr(msr) {
                Ok(value) => value,
                Err(fault) => return count_msr_fault(tally, fault),
            }
        } else {
            random_value
        };
        wrmsr(msr, value).err()
    } else {
        rdmsr(msr).err()
    };
    match fault {
        None => tally.msr_ok += 1,
        Some(fault) => count_msr_fault(tally, fault),
    }
}

fn count_msr_fault(tally: &mut Tally, fault: Fault) {
    if fault.vector == idt::GENERAL_PROTECTION {
        tally.msr_gp += 1;
    } else {
        tally.msr_other_fault += 1;
    }
}

/// RDMSR under `idt::expect_fault`.
fn rdmsr(msr: u32) -> Result<u64, Fault> {
    let mut value = 0u64;
    let fault = idt::expect_fault(|| {
        let (low, high): (u32, u32);
        // SAFETY: reading an MSR changes nothing; a refusal arrives as #GP, which expect_fault catches.
        unsafe { asm!("rdmsr", in("ecx") msr, out("eax") low, out("edx") high, options(nomem, nostack)) };
        value = u64::from(low) | (u64::from(high) << 32);
    });
    fault.map_or(Ok(value), Err)
}

/// WRMSR under `idt::expect_fault`.
fn wrmsr(msr: u32, value: u64) -> Result<(), Fault> {
    let fault = idt::expect_fault(|| {
        // SAFETY: the MSRs that would change how this guest runs are written
        // back unchanged or not at all (WRITE_BACK_ONLY, NEVER_WRITTEN); a
        // refusal arrives as #GP, which expect_fault catches.
        unsafe {
            asm!("wrmsr", in("ecx") msr, in("eax") value as u32, in("edx") (value >> 32) as u32, options(nomem, nostack))
        };
    });
    fault.map_or(Ok(()), Err)
}

/// CPUID of a basic, hypervisor, extended or random leaf with a small or random subleaf.
fn cpuid(rng: &mut SplitMix64, tally: &mut Tally) {
    let leaf = match rng.below(10) {
        0..=4 => rng.below(0x25) as u32,
        5 | 6 => 0x4000_0000 + rng.below(0x10) as u32,
        7 | 8 => 0x8000_0000 + rng.below(0x29) as u32,
        _ => rng.next_u64() as u32,
    };
    let subleaf = if rng.below(2) == 0 { rng.below(8) as u32 } else { rng.next_u64() as u32 };
    let result = core::arch::x86_64::__cpuid_count(leaf, subleaf);
    tally.cpuid += 1;
    // Leaf 1 EBX[31:24] and leaf 0xB/0x1F EDX hold the APIC id; all are stable within a run.
    tally.fold(u64::from(result.eax) | u64::from(result.ebx) << 32);
    tally.fold(u64::from(result.ecx) | u64::from(result.edx) << 32);
}

/// A value at an edge (0, 1, the end of RAM and its neighbours, page and
/// print-limit edges, the top bits) or random; `ram_size` is `u64::MAX` when
/// RAM edges do not matter.
fn edge_value(rng: &mut SplitMix64, ram_size: u64) -> u64 {
    match rng.below(16) {
        0 => 0,
        1 => 1,
        2 => ram_size.wrapping_sub(1),
        3 => ram_size,
        4 => ram_size.wrapping_add(1),
        5 => 0xFFF,
        6 => 0x1000,
        7 => 0x1001,
        8 => u64::MAX,
        9 => 1 << 63,
        10 => 0xFFFF_FFFF,
        11 => 0x1_0000_0000,
        12 => rng.below(ram_size.max(1)),
        _ => rng.next_u64(),
    }
}

/// VMCALL with a drawn call number and arguments.
fn hypercall(rng: &mut SplitMix64, machine: &Machine, tally: &mut Tally) {
    const NULL: u64 = 0;
    const PRINT: u64 = 1;
    const INFO: u64 = 3;
    const YIELD: u64 = 4;
    let number = match rng.below(10) {
        0..=4 => rng.pick(&[NULL, PRINT, PRINT, INFO, INFO, YIELD]),
        5 | 6 => 5 + rng.below(60),
        7 => rng.next_u64() | (1 << 63),
        8 => 0xFFFF_FFFF_0000_0000 | rng.pick(&[NULL, PRINT, 2, INFO, YIELD]),
        _ => rng.next_u64(),
    };
    let mut arguments = [edge_value(rng, machine.ram_size), edge_value(rng, machine.ram_size), rng.next_u64()];
    if number == INFO && rng.below(2) == 0 {
        arguments[0] = rng.below(8);
    }
    if number == PRINT {
        // A valid range would print our memory: make its length 0.
        let [address, length, _] = arguments;
        let valid = length <= 4096 && address.checked_add(length).is_some_and(|end| end <= machine.ram_size);
        if valid {
            arguments[1] = 0;
        }
    }
    let result = vmcall(number, arguments[0], arguments[1], arguments[2]);
    tally.hypercalls += 1;
    // Values `info` returns may change between runs of one seed (a count of
    // exits, a measured frequency): only its error codes enter the digest.
    if number != INFO || HypercallError::from_result(result).is_some() {
        tally.fold(result);
    }
    match HypercallError::from_result(result) {
        None => tally.hypercall_ok += 1,
        Some(error) => match error.code() as i64 {
            code @ -4..=-1 => tally.hypercall_errors[(-code - 1) as usize] += 1,
            _ => tally.hypercall_other += 1,
        },
    }
}
