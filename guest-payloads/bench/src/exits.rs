//! The exiting instructions the benchmark times, each with its skeleton: the
//! same instruction sequence and registers without the instruction that
//! exits (see `guest_rt::timing`). Every body is `#[inline(always)]` so the
//! timed loop holds nothing but the body and the loop counter.

use core::arch::asm;
use core::ptr::read_volatile;

use guest_rt::hypercall::Hypercall;

/// The UART's scratch register (16550 register 7, at COM1 + 7): a byte the
/// guest may write and read back, with no side effect (NS16550A data sheet,
/// "Scratchpad Register").
pub const UART_SCRATCH: u16 = 0x3FF;

/// IA32_SYSENTER_CS (SDM Vol. 4, Table 2-2): intercepted by the MSR bitmap
/// and emulated against the VMCS guest-state field of the same name.
pub const IA32_SYSENTER_CS: u32 = 0x174;

/// IA32_TSC_DEADLINE (SDM Vol. 3A, 11.5.4.1 "TSC-Deadline Mode").
pub const IA32_TSC_DEADLINE: u32 = 0x6E0;

/// The local APIC's version register (SDM Vol. 3A, 11.4.8 "Local APIC
/// Version Register") on the xAPIC page: EPT leaves the page unmapped, so
/// each access is an EPT violation the hypervisor decodes and emulates.
pub const APIC_VERSION: usize = 0xFEE0_0030;

/// A RAM word the APIC skeleton reads instead of the APIC.
static RAM_WORD: u32 = 0;

/// `CPUID` of `leaf` (subleaf 0): exits unconditionally (SDM Vol. 3C, 26.1.2
/// "Instructions That Cause VM Exits Unconditionally"). RBX, which CPUID
/// overwrites and the compiler reserves, is saved and restored around it.
#[inline(always)]
pub fn cpuid(leaf: u32) {
    // SAFETY: CPUID touches only the registers named here (RBX is restored).
    unsafe {
        asm!(
            "mov {saved_rbx}, rbx",
            "cpuid",
            "mov rbx, {saved_rbx}",
            saved_rbx = out(reg) _,
            inout("eax") leaf => _,
            inout("ecx") 0u32 => _,
            out("edx") _,
            options(nomem, nostack),
        );
    }
}

/// [`cpuid`] without the `CPUID`.
#[inline(always)]
pub fn cpuid_skeleton(leaf: u32) {
    // SAFETY: plain register moves.
    unsafe {
        asm!(
            "mov {saved_rbx}, rbx",
            "mov rbx, {saved_rbx}",
            saved_rbx = out(reg) _,
            inout("eax") leaf => _,
            inout("ecx") 0u32 => _,
            out("edx") _,
            options(nomem, nostack),
        );
    }
}

/// The null hypercall: `VMCALL` with RAX = 0 (exits unconditionally, SDM
/// Vol. 3C, 26.1.2); the handler only advances RIP.
#[inline(always)]
pub fn null_vmcall() {
    // SAFETY: the null hypercall does nothing and returns 0 in RAX.
    unsafe {
        asm!("vmcall", inout("rax") Hypercall::Null as u64 => _, options(nostack));
    }
}

/// [`null_vmcall`] without the `VMCALL`.
#[inline(always)]
pub fn null_vmcall_skeleton() {
    // SAFETY: an empty instruction sequence.
    unsafe {
        asm!("", inout("rax") Hypercall::Null as u64 => _, options(nostack));
    }
}

/// `OUT` of a byte to the UART's scratch register: exits through the I/O
/// bitmap (SDM Vol. 3C, 26.1.3, "Use I/O bitmaps").
#[inline(always)]
pub fn out_scratch() {
    // SAFETY: the scratch register has no side effect.
    unsafe { asm!("out dx, al", in("dx") UART_SCRATCH, in("al") 0x5Au8, options(nomem, nostack, preserves_flags)) };
}

/// [`out_scratch`] without the `OUT`.
#[inline(always)]
pub fn out_scratch_skeleton() {
    // SAFETY: an empty instruction sequence.
    unsafe { asm!("", in("dx") UART_SCRATCH, in("al") 0x5Au8, options(nomem, nostack, preserves_flags)) };
}

/// `IN` of a byte from the UART's scratch register.
#[inline(always)]
pub fn in_scratch() {
    // SAFETY: reading the scratch register has no side effect.
    unsafe { asm!("in al, dx", in("dx") UART_SCRATCH, out("al") _, options(nomem, nostack, preserves_flags)) };
}

/// [`in_scratch`] without the `IN`.
#[inline(always)]
pub fn in_scratch_skeleton() {
    // SAFETY: an empty instruction sequence.
    unsafe { asm!("", in("dx") UART_SCRATCH, out("al") _, options(nomem, nostack, preserves_flags)) };
}

/// `RDMSR` of IA32_SYSENTER_CS: exits through the MSR bitmap (SDM Vol. 3C,
/// 26.1.3, "Use MSR bitmaps").
#[inline(always)]
pub fn rdmsr_sysenter_cs() {
    // SAFETY: reading IA32_SYSENTER_CS has no side effect.
    unsafe { asm!("rdmsr", in("ecx") IA32_SYSENTER_CS, out("eax") _, out("edx") _, options(nomem, nostack)) };
}

/// [`rdmsr_sysenter_cs`] without the `RDMSR`.
#[inline(always)]
pub fn rdmsr_skeleton() {
    // SAFETY: an empty instruction sequence.
    unsafe { asm!("", in("ecx") IA32_SYSENTER_CS, out("eax") _, out("edx") _, options(nomem, nostack)) };
}

/// `WRMSR` of `value` to IA32_SYSENTER_CS.
#[inline(always)]
pub fn wrmsr_sysenter_cs(value: u32) {
    // SAFETY: the guest runs no SYSENTER; the value only lands in its VMCS.
    unsafe { asm!("wrmsr", in("ecx") IA32_SYSENTER_CS, in("eax") value, in("edx") 0u32, options(nomem, nostack)) };
}

/// [`wrmsr_sysenter_cs`] without the `WRMSR`.
#[inline(always)]
pub fn wrmsr_skeleton(value: u32) {
    // SAFETY: an empty instruction sequence.
    unsafe { asm!("", in("ecx") IA32_SYSENTER_CS, in("eax") value, in("edx") 0u32, options(nomem, nostack)) };
}

/// Writes IA32_TSC_DEADLINE (an emulated MSR: one exit).
#[inline(always)]
pub fn write_tsc_deadline(value: u64) {
    // SAFETY: IA32_TSC_DEADLINE only arms or disarms the guest's APIC timer.
    unsafe {
        asm!(
            "wrmsr",
            in("ecx") IA32_TSC_DEADLINE,
            in("eax") value as u32,
            in("edx") (value >> 32) as u32,
            options(nomem, nostack)
        )
    };
}

/// A 32-bit read of the local APIC's version register (an EPT violation).
#[inline(always)]
pub fn apic_read_version() {
    // SAFETY: an aligned 32-bit load from the APIC page, identity-mapped by
    // the guest's page tables and emulated by the hypervisor.
    unsafe { read_volatile(APIC_VERSION as *const u32) };
}

/// [`apic_read_version`] reading a RAM word instead.
#[inline(always)]
pub fn apic_read_skeleton() {
    // SAFETY: an aligned load from a static.
    unsafe { read_volatile(&raw const RAM_WORD) };
}

/// `STI; HLT; CLI`: with an interrupt pending, the HLT exits, the hypervisor
/// injects the interrupt, the handler runs (its EOI is an APIC exit) and
/// returns to the CLI.
#[inline(always)]
pub fn sti_hlt_cli() {
    // SAFETY: the IDT has a gate for every vector (guest_rt::irq::install).
    unsafe { asm!("sti", "hlt", "cli", options(nomem, nostack)) };
}
