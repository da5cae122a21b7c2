//! `realmode16`: a guest that starts like a boot sector, in 16-bit real mode
//! at 0000:7C00, and climbs to protected mode and then to long mode itself.
//!
//! The whole program is the assembly below (`global_asm!`), in three parts
//! assembled for the three modes the CPU passes through: `.code16`, `.code32`
//! and `.code64`. Rust contributes the constants (computed here, with their
//! meaning spelled out, and passed in as `const` operands) and the panic
//! handler every `no_std` binary must have.
//!
//! The assembly uses AT&T syntax. LLVM's Intel-syntax parser assembles a
//! plain `call`/`ret` in `.code16` as the 32-bit forms (`66 E8`, `66 C3`) and
//! has no spelling for a far jump with a 32-bit offset; AT&T's size suffixes
//! (`callw`, `retw`, `ljmpw`, `ljmpl`, `lgdtl`) say exactly what is meant.
//!
//! # The machine it expects (the hypervisor's real start mode)
//!
//! - the image at guest-physical 0x7C00, entered at CS:IP = 0000:7C00 in real
//!   mode (CR0.PE = 0), EFLAGS.IF = 0;
//! - no BIOS: the interrupt vector table is all zeros, so no `INT` service
//!   exists; all output goes to the 16550 UART at 0x3F8;
//! - SS:SP = 0000:7C00 and DL = 0x80, as a BIOS would leave them (the guest
//!   sets up its own segments and stack anyway, and ignores DL);
//! - RDMSR/WRMSR of IA32_EFER virtualized, and CR0.PE/CR0.PG/CR4.PAE writable.
//!
//! # What it does
//!
//! 1. Real mode: reads CS and the IP of its first byte at run time, then far
//!    jumps to CS = 0 (the image is linked for segment 0) and prints
//!    `real mode: hello from 0000:7C00`.
//! 2. Loads its own GDT (null, 32-bit code, data, 64-bit code), sets CR0.PE,
//!    far jumps into the 32-bit code segment and prints
//!    `protected mode: CR0.PE=1`, the bit read back from CR0.
//! 3. Clears 0x10000-0x12FFF and builds identity-mapping page tables there
//!    (PML4 -> PDPT -> PD, two 2 MiB pages: 0-4 MiB), sets CR4.PAE, loads
//!    CR3, sets EFER.LME with RDMSR/WRMSR, sets CR0.PG (which activates
//!    IA-32e mode) and far jumps into the 64-bit code segment (SDM Vol. 3A,
//!    10.8.5 "Initializing IA-32e Mode").
//! 4. Reads EFER back: bit 10 (LMA) set prints `long mode: EFER.LMA=1` and
//!    exits with status 0x16; clear prints `long mode: FAIL EFER.LMA=0` and
//!    exits with status 1. The exit is a 4-byte `out %eax, %dx` to port 0xF4.
#![no_std]
#![no_main]

use core::arch::{asm, global_asm};

use hypervisor_core::hypercall::{EXIT_PORT, SERIAL_PORT};

/// Where the image is loaded and entered; also the initial stack top (the
/// stack grows down from just below the image, as under a BIOS).
const LOAD_ADDRESS: u32 = 0x7C00;

/// Exit status on success: 0x16, for "16-bit".
const SUCCESS_STATUS: u32 = 0x16;
/// Exit status when a check fails.
const FAILURE_STATUS: u32 = 1;

// ---------------------------------------------------------------------------
// The GDT (SDM Vol. 3A, 3.4.5 "Segment Descriptors").
// ---------------------------------------------------------------------------

/// Builds a segment descriptor from its fields: a 32-bit base, a 20-bit
/// limit, the access byte (bits 47:40) and the flags nibble (bits 55:52).
const fn segment_descriptor(base: u32, limit: u32, access: u8, flags: u8) -> u64 {
    let base = base as u64;
    let limit = limit as u64;
    (limit & 0xFFFF)
        | ((base & 0xFF_FFFF) << 16)
        | ((access as u64) << 40)
        | (((limit >> 16) & 0xF) << 48)
        | (((flags as u64) & 0xF) << 52)
        | (((base >> 24) & 0xFF) << 56)
}

/// Access byte: present (P), DPL 0, code or data (S), accessed (A). The
/// accessed bit is set up front so that the CPU never writes to the GDT.
const ACCESS_PRESENT_ACCESSED: u8 = 0x80 | 0x10 | 0x01;
/// Access byte bits for code: executable, readable.
const ACCESS_CODE: u8 = ACCESS_PRESENT_ACCESSED | 0x08 | 0x02;
/// Access byte bits for data: writable.
const ACCESS_DATA: u8 = ACCESS_PRESENT_ACCESSED | 0x02;
/// Flags: granularity 4 KiB (G), so a limit of 0xFFFFF means 4 GiB.
const FLAG_GRANULARITY: u8 = 0x8;
/// Flags: default operand size 32 bits (D/B).
const FLAG_32BIT: u8 = 0x4;
/// Flags: 64-bit code segment (L); D must then be 0.
const FLAG_64BIT: u8 = 0x2;
/// The largest 20-bit limit.
const LIMIT_4GIB: u32 = 0xF_FFFF;

/// GDT entry 1 (selector 0x08): 32-bit flat code.
const GDT_CODE32: u64 = segment_descriptor(0, LIMIT_4GIB, ACCESS_CODE, FLAG_GRANULARITY | FLAG_32BIT);
/// GDT entry 2 (selector 0x10): flat data, for DS/ES/FS/GS/SS.
const GDT_DATA: u64 = segment_descriptor(0, LIMIT_4GIB, ACCESS_DATA, FLAG_GRANULARITY | FLAG_32BIT);
/// GDT entry 3 (selector 0x18): 64-bit code (base and limit are ignored).
const GDT_CODE64: u64 = segment_descriptor(0, LIMIT_4GIB, ACCESS_CODE, FLAG_GRANULARITY | FLAG_64BIT);

// The classic values, as a check on `segment_descriptor`.
const _: () = assert!(GDT_CODE32 == 0x00CF_9B00_0000_FFFF);
const _: () = assert!(GDT_DATA == 0x00CF_9300_0000_FFFF);
const _: () = assert!(GDT_CODE64 == 0x00AF_9B00_0000_FFFF);

/// A selector is the entry's index times 8 (TI = 0: the GDT; RPL = 0):
/// the 32-bit code segment is entry 1.
const SELECTOR_CODE32: u16 = 0x08;
/// The data segment: entry 2.
const SELECTOR_DATA: u16 = 0x10;
/// The 64-bit code segment: entry 3.
const SELECTOR_CODE64: u16 = 0x18;

// ---------------------------------------------------------------------------
// Control registers and EFER (SDM Vol. 3A, 2.5 "Control Registers" and
// 2.2.1 "Extended Feature Enable Register").
// ---------------------------------------------------------------------------

/// CR0 bit 0: protection enabled.
const CR0_PE: u32 = 1 << 0;
/// CR0 bit 31: paging enabled.
const CR0_PG: u32 = 1 << 31;
/// CR4 bit 5: physical address extension (64-bit page-table entries).
const CR4_PAE: u32 = 1 << 5;
/// The IA32_EFER MSR.
const IA32_EFER: u32 = 0xC000_0080;
/// EFER bit 8: IA-32e mode enable (LME), set by software.
const EFER_LME: u32 = 1 << 8;
/// EFER bit 10: IA-32e mode active (LMA), set by the CPU when paging is
/// turned on with LME = 1.
const EFER_LMA_BIT: u32 = 10;

// ---------------------------------------------------------------------------
// The page tables (SDM Vol. 3A, 5.5 "4-Level Paging and 5-Level Paging").
// ---------------------------------------------------------------------------

/// The PML4, at 0x10000 (above the image, which ends below 0xFC00).
const PML4_ADDRESS: u32 = 0x1_0000;
/// The page-directory-pointer table.
const PDPT_ADDRESS: u32 = 0x1_1000;
/// The page directory.
const PD_ADDRESS: u32 = 0x1_2000;
/// The three 4 KiB tables, cleared before use.
const PAGE_TABLES_SIZE: u32 = 3 * 4096;
/// Entry bit 0: present.
const PAGE_PRESENT: u32 = 1 << 0;
/// Entry bit 1: writable.
const PAGE_WRITABLE: u32 = 1 << 1;
/// Page-directory entry bit 7: maps a 2 MiB page instead of a page table.
const PAGE_SIZE_2MIB: u32 = 1 << 7;
/// PML4[0]: the PDPT, covering 0-512 GiB.
const PML4_ENTRY0: u32 = PDPT_ADDRESS | PAGE_PRESENT | PAGE_WRITABLE;
/// PDPT[0]: the PD, covering 0-1 GiB.
const PDPT_ENTRY0: u32 = PD_ADDRESS | PAGE_PRESENT | PAGE_WRITABLE;
/// 2 MiB, the size of the pages a PD entry maps.
const SIZE_2MIB: u32 = 0x20_0000;
/// PD[0]: the 2 MiB page at physical 0 (identity).
const PD_ENTRY0: u32 = PAGE_PRESENT | PAGE_WRITABLE | PAGE_SIZE_2MIB;
/// PD[1]: the 2 MiB page at physical 2 MiB (identity).
const PD_ENTRY1: u32 = SIZE_2MIB | PAGE_PRESENT | PAGE_WRITABLE | PAGE_SIZE_2MIB;

// ---------------------------------------------------------------------------
// The 16550 UART (the same registers guest-rt's driver uses).
// ---------------------------------------------------------------------------

/// Offset 0: transmit holding register (DLAB = 0) / divisor latch low (DLAB = 1).
const UART_DATA: u16 = SERIAL_PORT;
/// Offset 1: interrupt enable register (DLAB = 0) / divisor latch high (DLAB = 1).
const UART_IER: u16 = SERIAL_PORT + 1;
/// Offset 3: line control register.
const UART_LCR: u16 = SERIAL_PORT + 3;
/// Offset 5: line status register.
const UART_LSR: u16 = SERIAL_PORT + 5;
/// LCR bit 7: divisor latch access.
const LCR_DLAB: u8 = 0x80;
/// LCR: 8 data bits, no parity, 1 stop bit (and DLAB = 0).
const LCR_8N1: u8 = 0x03;
/// Divisor for 115200 baud (1.8432 MHz / 16 / 115200).
const DIVISOR_115200: u8 = 1;
/// LSR bit 5: the transmit holding register is empty.
const LSR_THR_EMPTY: u8 = 0x20;
/// How often to poll LSR before sending a byte anyway (a bounded wait, as in
/// guest-rt). Fits in CX, which the 16-bit `loop` counts with.
const THR_EMPTY_POLLS: u16 = 10_000;

global_asm!(
    r#"
// ===========================================================================
// Part 1: 16-bit real mode. The entry is the image's first byte (link.ld
// places .text.entry first). Addresses are segment * 16 + offset.
// ===========================================================================
.pushsection .text.entry, "ax"
.code16
.global _start
_start:
    cli                                 // no interrupt handlers exist
    cld                                 // LODSB/STOSL walk upwards
    xorw %ax, %ax
    movw %ax, %ds                       // DS = ES = SS = 0: the image is
    movw %ax, %es                       // linked for segment 0
    movw %ax, %ss
    movw ${stack_top}, %sp              // SS:SP = 0000:7C00

    // Where did we start? CS from the register, IP from a CALL, which
    // pushes the offset of the next instruction.
    movw %cs, %di                       // DI = CS at entry
    callw .Lwhere
.Lwhere:
    popw %bx
    subw $(.Lwhere - _start), %bx       // BX = IP of _start at entry
    // Make CS = 0 whatever we were entered with (0000:7C00 and 07C0:0000
    // are the same byte): everything below uses linked addresses.
    ljmpw $0, $.Lcs_is_zero
.Lcs_is_zero:
    callw uart_init16
    movw $msg_real, %si                 // "real mode: hello from "
    callw puts16
    movw %di, %ax
    callw put_hex16                     // CS
    movb $':', %al
    callw putc16
    movw %bx, %ax
    callw put_hex16                     // IP
    movb $0x0A, %al                     // '\n'
    callw putc16

    // Into protected mode (SDM Vol. 3A, 10.9.1 "Switching to Protected
    // Mode"): load the GDT, set CR0.PE, and at once far jump, which loads
    // CS from the GDT: from then on the CPU decodes 32-bit code.
    lgdtl gdt_pointer                   // 32-bit form: all 32 bits of the base
    movl %cr0, %eax
    orl ${cr0_pe}, %eax
    movl %eax, %cr0
    ljmpl ${code32}, $protected_mode

// uart_init16: 115200 baud, 8N1, UART interrupts off. Clobbers AX, DX.
uart_init16:
    movw ${uart_ier}, %dx
    xorb %al, %al
    outb %al, %dx                       // IER = 0: no UART interrupts, we poll
    movw ${uart_lcr}, %dx
    movb ${lcr_dlab}, %al
    outb %al, %dx                       // DLAB = 1: offsets 0 and 1 are the divisor
    movw ${uart_data}, %dx
    movb ${divisor}, %al
    outb %al, %dx                       // divisor low byte
    movw ${uart_ier}, %dx
    xorb %al, %al
    outb %al, %dx                       // divisor high byte
    movw ${uart_lcr}, %dx
    movb ${lcr_8n1}, %al
    outb %al, %dx                       // 8N1, DLAB = 0 again
    retw

// putc16: sends AL once LSR says the transmitter can take it (a bounded
// wait). Clobbers AX.
putc16:
    pushw %cx
    pushw %dx
    movb %al, %ah                       // IN overwrites AL
    movw ${polls}, %cx
    movw ${uart_lsr}, %dx
.Lputc16_poll:
    inb %dx, %al
    testb ${lsr_thr_empty}, %al
    jnz .Lputc16_send
    loop .Lputc16_poll                  // CX -= 1, again while not 0
.Lputc16_send:
    movb %ah, %al
    movw ${uart_data}, %dx
    outb %al, %dx
    popw %dx
    popw %cx
    retw

// puts16: sends the NUL-terminated string at DS:SI. Clobbers AX, SI.
puts16:
    lodsb                               // AL = DS:[SI], SI += 1
    testb %al, %al
    jz .Lputs16_done
    callw putc16
    jmp puts16
.Lputs16_done:
    retw

// put_hex16: sends AX as 4 upper-case hex digits. Clobbers AX.
put_hex16:
    pushw %bx
    pushw %cx
    movw %ax, %bx
    movw $4, %cx
.Lhex16_next:
    rolw $4, %bx                        // the top nibble becomes the bottom one
    movb %bl, %al
    andb $0x0F, %al
    addb $'0', %al
    cmpb $'9', %al
    jbe .Lhex16_put
    addb $('A' - '9' - 1), %al          // 10..15 -> 'A'..'F'
.Lhex16_put:
    callw putc16
    loop .Lhex16_next
    popw %cx
    popw %bx
    retw

// ===========================================================================
// Part 2: 32-bit protected mode, paging off: addresses are physical.
// ===========================================================================
.code32
protected_mode:
    movw ${data}, %ax                   // flat data segments everywhere
    movw %ax, %ds
    movw %ax, %es
    movw %ax, %fs
    movw %ax, %gs
    movw %ax, %ss
    movl ${stack_top}, %esp

    movl $msg_protected, %esi           // "protected mode: CR0.PE="
    call puts32
    movl %cr0, %ebx
    movl %ebx, %eax
    andl ${cr0_pe}, %eax
    call put_digit32                    // CR0.PE, as read back
    movb $0x0A, %al                     // '\n'
    call putc32
    testl ${cr0_pe}, %ebx
    jz .Lfail32

    // Identity-mapping page tables for 0-4 MiB. Clear the three tables,
    // then fill in one entry per level; the entries' upper halves stay 0.
    movl ${pml4}, %edi
    xorl %eax, %eax
    movl $({page_tables_size} / 4), %ecx
    rep stosl                           // ECX dwords of EAX to ES:[EDI]
    movl ${pml4_entry0}, {pml4}         // PML4[0] -> PDPT
    movl ${pdpt_entry0}, {pdpt}         // PDPT[0] -> PD
    movl ${pd_entry0}, {pd}             // PD[0]: 0-2 MiB
    movl ${pd_entry1}, {pd} + 8         // PD[1]: 2-4 MiB (entries are 8 bytes)

    // Into IA-32e mode (SDM Vol. 3A, 10.8.5 "Initializing IA-32e Mode"):
    // PAE on, CR3 = the PML4, EFER.LME on, then paging on.
    movl %cr4, %eax
    orl ${cr4_pae}, %eax
    movl %eax, %cr4
    movl ${pml4}, %eax
    movl %eax, %cr3
    movl ${efer}, %ecx
    rdmsr                               // EDX:EAX = EFER (a VM exit)
    orl ${efer_lme}, %eax
    wrmsr                               // (a VM exit)
    movl %cr0, %eax
    orl ${cr0_pg}, %eax
    movl %eax, %cr0                     // EFER.LMA = 1: compatibility mode
    ljmpl ${code64}, $long_mode         // CS.L = 1: 64-bit mode

.Lfail32:
    movl ${failure}, %eax
    movw ${exit_port}, %dx
    outl %eax, %dx                      // ends the guest
.Lhalt32:
    cli
    hlt
    jmp .Lhalt32

// putc32: sends AL once LSR says the transmitter can take it. Clobbers EAX.
putc32:
    pushl %ecx
    pushl %edx
    movb %al, %ah
    movl ${polls}, %ecx
    movw ${uart_lsr}, %dx
.Lputc32_poll:
    inb %dx, %al
    testb ${lsr_thr_empty}, %al
    jnz .Lputc32_send
    loop .Lputc32_poll                  // ECX -= 1, again while not 0
.Lputc32_send:
    movb %ah, %al
    movw ${uart_data}, %dx
    outb %al, %dx
    popl %edx
    popl %ecx
    ret

// puts32: sends the NUL-terminated string at ESI. Clobbers EAX, ESI.
puts32:
    lodsb
    testb %al, %al
    jz .Lputs32_done
    call putc32
    jmp puts32
.Lputs32_done:
    ret

// put_digit32: sends the decimal digit in AL (0-9). Clobbers EAX.
put_digit32:
    addb $'0', %al
    jmp putc32                          // putc32's RET returns to our caller

// ===========================================================================
// Part 3: 64-bit mode, identity-mapped paging.
// ===========================================================================
.code64
long_mode:
    movq ${stack_top}, %rsp             // all 64 bits: the upper half of
                                        // RSP is undefined after the switch
    movl ${efer}, %ecx
    rdmsr                               // (a VM exit)
    btl ${efer_lma_bit}, %eax           // CF = EFER.LMA
    jnc .Lno_lma
    leaq msg_long_ok(%rip), %rsi
    call puts64
    movl ${success}, %eax
    jmp .Lexit64
.Lno_lma:
    leaq msg_long_fail(%rip), %rsi
    call puts64
    movl ${failure}, %eax
.Lexit64:
    movw ${exit_port}, %dx
    outl %eax, %dx                      // ends the guest
.Lhalt64:
    cli
    hlt
    jmp .Lhalt64

// putc64: sends AL once LSR says the transmitter can take it. Clobbers RAX.
putc64:
    pushq %rcx
    pushq %rdx
    movb %al, %ah
    movl ${polls}, %ecx
    movw ${uart_lsr}, %dx
.Lputc64_poll:
    inb %dx, %al
    testb ${lsr_thr_empty}, %al
    jnz .Lputc64_send
    loop .Lputc64_poll                  // RCX -= 1, again while not 0
.Lputc64_send:
    movb %ah, %al
    movw ${uart_data}, %dx
    outb %al, %dx
    popq %rdx
    popq %rcx
    ret

// puts64: sends the NUL-terminated string at RSI. Clobbers RAX, RSI.
puts64:
    lodsb
    testb %al, %al
    jz .Lputs64_done
    call putc64
    jmp puts64
.Lputs64_done:
    ret

// The assembler is back in 64-bit mode for the code rustc emits after us.
.popsection

// ===========================================================================
// Data: the GDT and the strings (lines end with a bare '\n').
// ===========================================================================
.pushsection .rodata.realmode16, "a"
.balign 8
gdt:
    .quad 0                             // 0x00: the null descriptor
    .quad {gdt_code32}                  // 0x08: 32-bit code
    .quad {gdt_data}                    // 0x10: data
    .quad {gdt_code64}                  // 0x18: 64-bit code
gdt_end:
gdt_pointer:                            // LGDT's operand: limit, then base
    .word gdt_end - gdt - 1
    .long gdt

msg_real:      .asciz "real mode: hello from "
msg_protected: .asciz "protected mode: CR0.PE="
msg_long_ok:   .asciz "long mode: EFER.LMA=1\n"
msg_long_fail: .asciz "long mode: FAIL EFER.LMA=0\n"
.popsection
"#,
    stack_top = const LOAD_ADDRESS,
    success = const SUCCESS_STATUS,
    failure = const FAILURE_STATUS,
    exit_port = const EXIT_PORT,
    gdt_code32 = const GDT_CODE32,
    gdt_data = const GDT_DATA,
    gdt_code64 = const GDT_CODE64,
    code32 = const SELECTOR_CODE32,
    data = const SELECTOR_DATA,
    code64 = const SELECTOR_CODE64,
    cr0_pe = const CR0_PE,
    cr0_pg = const CR0_PG,
    cr4_pae = const CR4_PAE,
    efer = const IA32_EFER,
    efer_lme = const EFER_LME,
    efer_lma_bit = const EFER_LMA_BIT,
    pml4 = const PML4_ADDRESS,
    pdpt = const PDPT_ADDRESS,
    pd = const PD_ADDRESS,
    page_tables_size = const PAGE_TABLES_SIZE,
    pml4_entry0 = const PML4_ENTRY0,
    pdpt_entry0 = const PDPT_ENTRY0,
    pd_entry0 = const PD_ENTRY0,
    pd_entry1 = const PD_ENTRY1,
    uart_data = const UART_DATA,
    uart_ier = const UART_IER,
    uart_lcr = const UART_LCR,
    uart_lsr = const UART_LSR,
    lcr_dlab = const LCR_DLAB,
    lcr_8n1 = const LCR_8N1,
    divisor = const DIVISOR_115200,
    lsr_thr_empty = const LSR_THR_EMPTY,
    polls = const THR_EMPTY_POLLS,
    options(att_syntax),
);

/// Never called: the program is the assembly above, which cannot panic. A
/// `no_std` binary must name a panic handler all the same; this one stops
/// the CPU. (The linker drops it: nothing refers to it.)
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo<'_>) -> ! {
    loop {
        // SAFETY: stopping the CPU touches no memory.
        unsafe { asm!("cli", "hlt", options(nomem, nostack)) };
    }
}
