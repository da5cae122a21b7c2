//! Privileged instructions run under [`idt::expect_fault`], each returning an
//! [`Attempt`]: the value it produced or the fault it raised, and the
//! instruction's own address (where a fault must point).
//!
//! These are the instructions a hypervisor intercepts or must let the CPU
//! refuse: RDMSR/WRMSR (exit per the MSR bitmap, SDM Vol. 3C, 25.6.9
//! "MSR-Bitmap Address"), MOV to CR0/CR4 (exit when an owned bit would
//! change, 26.1.3 "Instructions That Cause VM Exits Conditionally"), XSETBV
//! and the VMX instructions (exit unconditionally, 26.1.2 "Instructions That
//! Cause VM Exits Unconditionally"), INVD. Payloads that test the
//! hypervisor's answers share them from here.
//!
//! Every function needs [`idt::install`] first (as [`idt::expect_fault`]
//! does). Each records the instruction's address with a `lea` of a local
//! label just before it, so a check can compare it with the fault's RIP.
//!
//! The functions that can change the machine's state (writes of MSRs,
//! control registers, XCR0) are `unsafe`: the caller vouches that a value
//! the CPU *accepts* leaves the guest runnable.

use core::arch::asm;

use crate::checks::Attempt;
use crate::idt;

/// RDMSR: the MSR number in ECX, the value in EDX:EAX.
pub fn rdmsr(msr: u32) -> Attempt<u64> {
    let mut at = 0;
    let mut value = 0;
    let fault = idt::expect_fault(|| {
        let (low, high): (u32, u32);
        // SAFETY: RDMSR changes no state (the MSRs with read side effects,
        // none of which a hypervisor passes through, are not this module's
        // business); a fault is caught by expect_fault. The store writes
        // only `at`.
        unsafe {
            asm!(
                "lea {scratch}, [rip + 2f]",
                "mov [{at}], {scratch}",
                "2:",
                "rdmsr",
                at = in(reg) &raw mut at,
                scratch = out(reg) _,
                in("ecx") msr,
                out("eax") low,
                out("edx") high,
                options(nostack, preserves_flags),
            );
        }
        value = (u64::from(high) << 32) | u64::from(low);
    });
    Attempt { result: fault.map_or(Ok(value), Err), at }
}

/// WRMSR: the MSR number in ECX, the value in EDX:EAX. Returns the value
/// written when allowed.
///
/// # Safety
/// If the write is allowed, the MSR takes `value`: the caller vouches that
/// this leaves the guest runnable.
pub unsafe fn wrmsr(msr: u32, value: u64) -> Attempt<u64> {
    let mut at = 0;
    let fault = idt::expect_fault(|| {
        // SAFETY: the caller vouches for the value; a fault is caught by
        // expect_fault. The store writes only `at`.
        unsafe {
            asm!(
                "lea {scratch}, [rip + 2f]",
                "mov [{at}], {scratch}",
                "2:",
                "wrmsr",
                at = in(reg) &raw mut at,
                scratch = out(reg) _,
                in("ecx") msr,
                in("eax") value as u32,
                in("edx") (value >> 32) as u32,
                options(nostack, preserves_flags),
            );
        }
    });
    Attempt { result: fault.map_or(Ok(value), Err), at }
}

/// MOV from CR0: never exits (the bits the hypervisor owns come from the
/// read shadow, SDM Vol. 3C, 25.6.6 "Guest/Host Masks and Read Shadows for
/// CR0 and CR4").
pub fn read_cr0() -> u64 {
    let value;
    // SAFETY: reading CR0 has no side effects.
    unsafe { asm!("mov {}, cr0", out(reg) value, options(nomem, nostack, preserves_flags)) };
    value
}

/// MOV from CR4: never exits (as [`read_cr0`]).
pub fn read_cr4() -> u64 {
    let value;
    // SAFETY: reading CR4 has no side effects.
    unsafe { asm!("mov {}, cr4", out(reg) value, options(nomem, nostack, preserves_flags)) };
    value
}

/// MOV from CR2: the linear address of the last page fault (SDM Vol. 3A,
/// 2.5 "Control Registers"). Never exits.
pub fn read_cr2() -> u64 {
    let value;
    // SAFETY: reading CR2 has no side effects.
    unsafe { asm!("mov {}, cr2", out(reg) value, options(nomem, nostack, preserves_flags)) };
    value
}

/// MOV to CR0. Returns the value written when allowed.
///
/// # Safety
/// If the write is allowed, CR0 takes `value`: the caller vouches that it
/// keeps the guest's mode and address space (PE, PG, WP) usable.
pub unsafe fn write_cr0(value: u64) -> Attempt<u64> {
    let mut at = 0;
    let fault = idt::expect_fault(|| {
        // SAFETY: the caller vouches for the value; a refused write is
        // caught by expect_fault. The store writes only `at`.
        unsafe {
            asm!(
                "lea {scratch}, [rip + 2f]",
                "mov [{at}], {scratch}",
                "2:",
                "mov cr0, {value}",
                at = in(reg) &raw mut at,
                value = in(reg) value,
                scratch = out(reg) _,
                options(nostack, preserves_flags),
            );
        }
    });
    Attempt { result: fault.map_or(Ok(value), Err), at }
}

/// MOV to CR4. Returns the value written when allowed.
///
/// # Safety
/// If the write is allowed, CR4 takes `value`: the caller vouches that it
/// keeps the paging mode (PAE, LA57) and anything else the guest relies on.
pub unsafe fn write_cr4(value: u64) -> Attempt<u64> {
    let mut at = 0;
    let fault = idt::expect_fault(|| {
        // SAFETY: the caller vouches for the value; a refused write is
        // caught by expect_fault. The store writes only `at`.
        unsafe {
            asm!(
                "lea {scratch}, [rip + 2f]",
                "mov [{at}], {scratch}",
                "2:",
                "mov cr4, {value}",
                at = in(reg) &raw mut at,
                value = in(reg) value,
                scratch = out(reg) _,
                options(nostack, preserves_flags),
            );
        }
    });
    Attempt { result: fault.map_or(Ok(value), Err), at }
}

/// XSETBV: the register number in ECX, the value in EDX:EAX. Returns the
/// value written when allowed.
///
/// # Safety
/// If allowed, XCR `index` takes `value`: the caller vouches that the
/// program uses no state component it disables (the payloads are built
/// soft-float and use no x87/SSE/AVX state).
pub unsafe fn xsetbv(index: u32, value: u64) -> Attempt<u64> {
    let mut at = 0;
    let fault = idt::expect_fault(|| {
        // SAFETY: the caller vouches for the value; a refused value is
        // caught by expect_fault. The store writes only `at`.
        unsafe {
            asm!(
                "lea {scratch}, [rip + 2f]",
                "mov [{at}], {scratch}",
                "2:",
                "xsetbv",
                at = in(reg) &raw mut at,
                scratch = out(reg) _,
                in("ecx") index,
                in("eax") value as u32,
                in("edx") (value >> 32) as u32,
                options(nostack, preserves_flags),
            );
        }
    });
    Attempt { result: fault.map_or(Ok(value), Err), at }
}

/// XGETBV: the register number in ECX, the value in EDX:EAX.
pub fn xgetbv(index: u32) -> Attempt<u64> {
    let mut at = 0;
    let mut value = 0;
    let fault = idt::expect_fault(|| {
        let (low, high): (u32, u32);
        // SAFETY: XGETBV only reads; a fault (#UD without CR4.OSXSAVE) is
        // caught by expect_fault. The store writes only `at`.
        unsafe {
            asm!(
                "lea {scratch}, [rip + 2f]",
                "mov [{at}], {scratch}",
                "2:",
                "xgetbv",
                at = in(reg) &raw mut at,
                scratch = out(reg) _,
                in("ecx") index,
                out("eax") low,
                out("edx") high,
                options(nostack, preserves_flags),
            );
        }
        value = (u64::from(high) << 32) | u64::from(low);
    });
    Attempt { result: fault.map_or(Ok(value), Err), at }
}

/// A VMX instruction (or another instruction with no register result) to
/// attempt with [`attempt_instruction`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Instruction {
    /// VMXON with a memory operand: enter VMX operation.
    Vmxon,
    /// VMXOFF: leave VMX operation.
    Vmxoff,
    /// VMCLEAR with a memory operand.
    Vmclear,
    /// VMPTRLD with a memory operand: make a VMCS current.
    Vmptrld,
    /// VMLAUNCH: launch the current VMCS.
    Vmlaunch,
    /// VMRESUME: resume the current VMCS.
    Vmresume,
    /// VMREAD of field 0 (the VPID) into a register.
    Vmread,
    /// VMWRITE of field 0x681E (guest RIP) from a register.
    Vmwrite,
    /// INVEPT type 2 (all contexts) with a 16-byte descriptor in memory.
    Invept,
    /// INVVPID type 2 (all contexts) with a 16-byte descriptor in memory.
    Invvpid,
    /// INVD: invalidate the caches without writing them back.
    Invd,
    /// WBINVD: write back, then invalidate the caches.
    Wbinvd,
    /// UD2: always raises #UD (SDM Vol. 2B, "UD—Undefined Instruction");
    /// never exits, the guest's own IDT takes it.
    Ud2,
}

impl Instruction {
    /// The instruction as an assembly listing shows it.
    pub const fn mnemonic(self) -> &'static str {
        match self {
            Self::Vmxon => "vmxon [mem]",
            Self::Vmxoff => "vmxoff",
            Self::Vmclear => "vmclear [mem]",
            Self::Vmptrld => "vmptrld [mem]",
            Self::Vmlaunch => "vmlaunch",
            Self::Vmresume => "vmresume",
            Self::Vmread => "vmread rax, rcx",
            Self::Vmwrite => "vmwrite rcx, rax",
            Self::Invept => "invept rax, [mem]",
            Self::Invvpid => "invvpid rax, [mem]",
            Self::Invd => "invd",
            Self::Wbinvd => "wbinvd",
            Self::Ud2 => "ud2",
        }
    }
}

/// The memory operand of the VMX instructions: a physical address (VMXON,
/// VMCLEAR, VMPTRLD) or, for INVEPT, a 16-byte descriptor (EPTP, reserved).
/// Never used: in VMX non-root operation the instructions exit before
/// anything is read, and the hypervisor answers #UD.
#[repr(C, align(16))]
struct VmxOperand([u64; 2]);

static VMX_OPERAND: VmxOperand = VmxOperand([0, 0]);

/// Runs `instruction` once; `Ok(0)` when it completes.
///
/// Every VMX instruction and INVD exit unconditionally in
/// VMX non-root operation (SDM Vol. 3C, 26.1.2); WBINVD exits only with
/// "WBINVD exiting". None of them touches this guest's memory: the VMX
/// instructions are answered before their operand is read, and INVD/WBINVD
/// do not change memory contents a write-back guest can see.
pub fn attempt_instruction(instruction: Instruction) -> Attempt<u64> {
    let mut at = 0;
    let operand = &raw const VMX_OPERAND;
    let fault = idt::expect_fault(|| {
        // SAFETY: see the function's documentation; a fault is caught by
        // expect_fault. The stores write only `at`.
        unsafe {
            match instruction {
                Instruction::Vmxon => asm!(
                    "lea {scratch}, [rip + 2f]", "mov [{at}], {scratch}", "2:",
                    "vmxon qword ptr [{operand}]",
                    at = in(reg) &raw mut at, scratch = out(reg) _, operand = in(reg) operand,
                    options(nostack),
                ),
                Instruction::Vmxoff => asm!(
                    "lea {scratch}, [rip + 2f]", "mov [{at}], {scratch}", "2:",
                    "vmxoff",
                    at = in(reg) &raw mut at, scratch = out(reg) _,
                    options(nostack),
                ),
                Instruction::Vmclear => asm!(
                    "lea {scratch}, [rip + 2f]", "mov [{at}], {scratch}", "2:",
                    "vmclear qword ptr [{operand}]",
                    at = in(reg) &raw mut at, scratch = out(reg) _, operand = in(reg) operand,
                    options(nostack),
                ),
                Instruction::Vmptrld => asm!(
                    "lea {scratch}, [rip + 2f]", "mov [{at}], {scratch}", "2:",
                    "vmptrld qword ptr [{operand}]",
                    at = in(reg) &raw mut at, scratch = out(reg) _, operand = in(reg) operand,
                    options(nostack),
                ),
                Instruction::Vmlaunch => asm!(
                    "lea {scratch}, [rip + 2f]", "mov [{at}], {scratch}", "2:",
                    "vmlaunch",
                    at = in(reg) &raw mut at, scratch = out(reg) _,
                    options(nostack),
                ),
                Instruction::Vmresume => asm!(
                    "lea {scratch}, [rip + 2f]", "mov [{at}], {scratch}", "2:",
                    "vmresume",
                    at = in(reg) &raw mut at, scratch = out(reg) _,
                    options(nostack),
                ),
                Instruction::Vmread => asm!(
                    "lea {scratch}, [rip + 2f]", "mov [{at}], {scratch}", "2:",
                    "vmread rax, rcx",
                    at = in(reg) &raw mut at, scratch = out(reg) _,
                    out("rax") _, in("rcx") 0u64,
                    options(nostack),
                ),
                Instruction::Vmwrite => asm!(
                    "lea {scratch}, [rip + 2f]", "mov [{at}], {scratch}", "2:",
                    "vmwrite rcx, rax",
                    at = in(reg) &raw mut at, scratch = out(reg) _,
                    in("rax") 0u64, in("rcx") 0x681Eu64,
                    options(nostack),
                ),
                Instruction::Invvpid => asm!(
                    "lea {scratch}, [rip + 2f]", "mov [{at}], {scratch}", "2:",
                    "invvpid {kind}, xmmword ptr [{operand}]",
                    at = in(reg) &raw mut at, scratch = out(reg) _, operand = in(reg) operand,
                    kind = in(reg) 2u64,
                    options(nostack),
                ),
                Instruction::Invept => asm!(
                    "lea {scratch}, [rip + 2f]", "mov [{at}], {scratch}", "2:",
                    "invept {kind}, xmmword ptr [{operand}]",
                    at = in(reg) &raw mut at, scratch = out(reg) _, operand = in(reg) operand,
                    kind = in(reg) 2u64,
                    options(nostack),
                ),
                Instruction::Invd => asm!(
                    "lea {scratch}, [rip + 2f]", "mov [{at}], {scratch}", "2:",
                    "invd",
                    at = in(reg) &raw mut at, scratch = out(reg) _,
                    options(nostack, preserves_flags),
                ),
                Instruction::Wbinvd => asm!(
                    "lea {scratch}, [rip + 2f]", "mov [{at}], {scratch}", "2:",
                    "wbinvd",
                    at = in(reg) &raw mut at, scratch = out(reg) _,
                    options(nostack, preserves_flags),
                ),
                Instruction::Ud2 => asm!(
                    "lea {scratch}, [rip + 2f]", "mov [{at}], {scratch}", "2:",
                    "ud2",
                    at = in(reg) &raw mut at, scratch = out(reg) _,
                    options(nostack, preserves_flags),
                ),
            }
        }
    });
    Attempt { result: fault.map_or(Ok(0), Err), at }
}
