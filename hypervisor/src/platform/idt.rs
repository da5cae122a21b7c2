//! The hypervisor's IDT: every vector reports and stops.
//!
//! The hypervisor runs with interrupts disabled and takes no interrupts of its
//! own; an exception in VMX root operation is a hypervisor bug, so each of the
//! 256 vectors leads to one report — vector name, error code, RIP, CS, RFLAGS,
//! RSP, CR2 and the general registers — and a power-off with failure.
//!
//! Each vector has a 16-byte stub (written in assembly below) that pushes a
//! dummy error code when the CPU does not push one, then the vector number, and
//! jumps to a common part that saves the general registers and calls
//! [`exception_report`] with a pointer to the whole frame.

use core::arch::global_asm;
use core::mem::size_of;
use x86_64::instructions::tables::lidt;
use x86_64::structures::DescriptorTablePointer;
use x86_64::VirtAddr;

use crate::platform::gdt;

global_asm!(
    r#"
    .section .text.exception_stubs, "ax"
    .balign 16
    .global exception_stubs
exception_stubs:
    .set vector, 0
    .rept 256
    .balign 16
    // Vectors 8, 10-14, 17, 21, 29 and 30 push an error code (SDM Vol. 3A,
    // 6.13 "Error Code"); for the others a 0 keeps the frame's shape.
    .if (vector == 8) || ((vector >= 10) && (vector <= 14)) || (vector == 17) || (vector == 21) || (vector == 29) || (vector == 30)
    .else
    push 0
    .endif
    push vector
    jmp {common}
    .set vector, vector + 1
    .endr
    "#,
    common = sym exception_common,
);

/// Saves the general registers in [`ExceptionFrame`] order and calls the report.
#[unsafe(naked)]
extern "C" fn exception_common() -> ! {
    core::arch::naked_asm!(
        "push rax", "push rbx", "push rcx", "push rdx", "push rsi", "push rdi", "push rbp",
        "push r8", "push r9", "push r10", "push r11", "push r12", "push r13", "push r14", "push r15",
        "mov rdi, rsp",
        "cld",
        "call {report}",
        "ud2",
        report = sym exception_report,
    )
}

unsafe extern "C" {
    /// The first of the 256 stubs above; stub `n` is at `exception_stubs + 16 * n`.
    static exception_stubs: u8;
}

/// What the stubs leave on the stack, lowest address first.
#[repr(C)]
#[derive(Debug)]
pub struct ExceptionFrame {
    r15: u64,
    r14: u64,
    r13: u64,
    r12: u64,
    r11: u64,
    r10: u64,
    r9: u64,
    r8: u64,
    rbp: u64,
    rdi: u64,
    rsi: u64,
    rdx: u64,
    rcx: u64,
    rbx: u64,
    rax: u64,
    vector: u64,
    error_code: u64,
    // Pushed by the CPU (SDM Vol. 3A, 6.14.2 "64-Bit Mode Stack Frame").
    rip: u64,
    cs: u64,
    rflags: u64,
    rsp: u64,
    ss: u64,
}

/// One 16-byte IDT gate (SDM Vol. 3A, 6.14.1 "64-Bit Mode IDT").
#[repr(C)]
#[derive(Clone, Copy)]
struct Gate {
    offset_low: u16,
    selector: u16,
    /// Bits 2:0: IST index (0 = none).
    ist: u8,
    /// Present, DPL 0, type 0xE (64-bit interrupt gate: clears IF on entry).
    type_attributes: u8,
    offset_middle: u16,
    offset_high: u32,
    reserved: u32,
}

const INTERRUPT_GATE_PRESENT: u8 = 0x8E;

#[repr(C, align(16))]
struct Idt([Gate; 256]);

static mut IDT: Idt =
    Idt(
        [Gate { offset_low: 0, selector: 0, ist: 0, type_attributes: 0, offset_middle: 0, offset_high: 0, reserved: 0 };
            256],
    );

/// Fills the IDT (double fault, NMI and machine check on their IST stacks) and loads it.
pub fn init() {
    let stubs = core::ptr::addr_of!(exception_stubs) as u64;
    let code_selector = gdt::selectors().code.0;
    // SAFETY: called once during single-threaded bring-up, before interrupts
    // or exceptions can read the table.
    let idt = unsafe { &mut *core::ptr::addr_of_mut!(IDT) };
    for (vector, gate) in idt.0.iter_mut().enumerate() {
        let handler = stubs + 16 * vector as u64;
        let ist = match vector {
            2 => gdt::NMI_IST + 1,
            8 => gdt::DOUBLE_FAULT_IST + 1,
            18 => gdt::MACHINE_CHECK_IST + 1,
            _ => 0,
        };
        *gate = Gate {
            offset_low: handler as u16,
            selector: code_selector,
            ist: ist as u8,
            type_attributes: INTERRUPT_GATE_PRESENT,
            offset_middle: (handler >> 16) as u16,
            offset_high: (handler >> 32) as u32,
            reserved: 0,
        };
    }
    let pointer =
        DescriptorTablePointer { limit: (size_of::<Idt>() - 1) as u16, base: VirtAddr::new(idt as *const Idt as u64) };
    // SAFETY: the table is static, fully initialised, and every gate points
    // to a stub in this image.
    unsafe { lidt(&pointer) };
}

/// The IDTR value (the VMCS host-state area needs its base).
pub fn idt_base() -> u64 {
    core::ptr::addr_of!(IDT) as u64
}

/// Reports an exception taken by the hypervisor itself and powers off.
extern "C" fn exception_report(frame: &ExceptionFrame) -> ! {
    // SAFETY: we never return to the interrupted code.
    unsafe { crate::platform::console::force_unlock() };
    let cr2 = x86_64::registers::control::Cr2::read_raw();
    let vector = frame.vector as u8;
    crate::error!(
        "hypervisor exception: vector {} ({}), error code {:#x}",
        vector,
        hypervisor_core::exit::Exception::from_vector(vector).map_or("not an exception", |exception| exception.name()),
        frame.error_code
    );
    crate::error!(
        "  RIP {:#018x}  CS {:#06x}  RFLAGS {:#010x}  RSP {:#018x}  SS {:#06x}  CR2 {:#018x}",
        frame.rip,
        frame.cs,
        frame.rflags,
        frame.rsp,
        frame.ss,
        cr2
    );
    crate::error!(
        "  RAX {:#018x}  RBX {:#018x}  RCX {:#018x}  RDX {:#018x}",
        frame.rax,
        frame.rbx,
        frame.rcx,
        frame.rdx
    );
    crate::error!("  RSI {:#018x}  RDI {:#018x}  RBP {:#018x}", frame.rsi, frame.rdi, frame.rbp);
    crate::error!("  R8  {:#018x}  R9  {:#018x}  R10 {:#018x}  R11 {:#018x}", frame.r8, frame.r9, frame.r10, frame.r11);
    crate::error!(
        "  R12 {:#018x}  R13 {:#018x}  R14 {:#018x}  R15 {:#018x}",
        frame.r12,
        frame.r13,
        frame.r14,
        frame.r15
    );
    crate::platform::power::power_off(crate::platform::power::Verdict::Fail, "hypervisor exception")
}
