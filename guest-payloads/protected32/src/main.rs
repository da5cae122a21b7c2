//! `protected32`: a guest that runs in 32-bit protected mode with paging off.
//!
//! The whole program is the assembly below (`global_asm!`, Intel syntax,
//! `.code32`); Rust contributes only named constants, passed in as `const`
//! operands, and the panic handler every `no_std` binary must have.
//!
//! # The machine it expects (the hypervisor's protected start mode)
//!
//! - the image at guest-physical 0x100000, entered at its first byte;
//! - CR0.PE = 1, CR0.PG = 0: protected mode without paging, so addresses are
//!   guest-physical (SDM Vol. 3A, 10.9.1 "Switching to Protected Mode");
//! - CS a 32-bit flat code segment (base 0, limit 4 GiB, D = 1), DS/ES/SS
//!   flat data segments, CPL 0;
//! - EFLAGS.IF = 0 and no IDT: nothing may interrupt us, and an exception
//!   ends the guest (triple fault);
//! - ESP = 0x100000: the stack grows down from just below the image.
//!
//! # What it does
//!
//! 1. Programs the 16550 UART at 0x3F8 (115200 baud, 8N1, no interrupts) and
//!    prints `hello from 32-bit protected mode`.
//! 2. Proves its mode at run time: reads CR0 and prints bit 0 (PE) and bit 31
//!    (PG), then measures by how much a `push` moves ESP (4 in a 32-bit code
//!    segment, 2 in a 16-bit one): `CR0.PE=1 CR0.PG=0 push=4 bytes`.
//!    Anything else prints a `FAIL` line and exits with status 1.
//! 3. Asks for its RAM size with the `info` hypercall and prints it in hex:
//!    `RAM size 0x00200000` (the default 2 MiB).
//! 4. Exits with status 0x32 by a 4-byte `out dx, eax` to port 0xF4.
//!
//! # VMCALL from 32-bit code
//!
//! The hypercall ABI (`hypervisor_core::hypercall`) passes the call number in
//! RAX and the arguments in RDI, RSI and RDX. Outside 64-bit mode only their
//! low halves (EAX, EDI, ESI, EDX) can be named, so we write those, and the
//! hypervisor reads all 64 bits. That works because the upper halves are 0:
//! the hypervisor starts the guest with cleared registers, and this guest
//! never runs 64-bit code that could set them. The architecture itself only
//! calls the upper halves *undefined* outside 64-bit mode (SDM Vol. 1,
//! 3.4.1.1 "General-Purpose Registers in 64-Bit Mode"), so a hypervisor that
//! wants to be exact truncates the registers to 32 bits when the guest is
//! not in 64-bit mode. Were a stray upper half ever set, the hypervisor would
//! see an unknown call or key and return an error, which we report.
//!
//! The result comes back in RAX, of which we see EAX. Error codes are small
//! negative numbers, so a value above 0xFFFFF000 (-4095..-1 as 32 bits) is an
//! error; a RAM size (a multiple of 4 KiB below 4 GiB) never is.
#![no_std]
#![no_main]

use core::arch::{asm, global_asm};

use hypervisor_core::hypercall::{Hypercall, InfoKey, EXIT_PORT, SERIAL_PORT};

/// Exit status on success: 0x32, for "32-bit".
const SUCCESS_STATUS: u32 = 0x32;
/// Exit status when a check fails.
const FAILURE_STATUS: u32 = 1;

/// CR0 bit 0: protection enabled (SDM Vol. 3A, 2.5 "Control Registers").
const CR0_PE: u32 = 1 << 0;
/// CR0 bit 31: paging enabled.
const CR0_PG: u32 = 1 << 31;

/// A result in EAX above this is an error code (-4095..-1 as 32 bits).
const ERROR_THRESHOLD: u32 = 0xFFFF_F000;

// The 16550's registers, as port numbers (base 0x3F8 plus the offset).
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
/// How often to poll LSR before sending a byte anyway (as guest-rt does: a
/// UART that never says "empty" garbles output instead of hanging us).
const THR_EMPTY_POLLS: u32 = 10_000;

global_asm!(
    r#"
// ===========================================================================
// The entry: the image's first byte (link.ld places .text.entry first).
// ===========================================================================
.pushsection .text.entry, "ax"
.code32
.global _start
_start:
    cld                                 // LODSB walks strings upwards
    call uart_init

    // Line 1.
    mov esi, offset msg_hello
    call puts

    // Line 2: the mode, measured at run time.
    mov ebx, cr0                        // EBX = CR0 for the rest of the line
    mov esi, offset msg_cr0_pe
    call puts
    mov eax, ebx
    and eax, {cr0_pe}                   // bit 0
    call put_digit
    mov esi, offset msg_cr0_pg
    call puts
    mov eax, ebx
    shr eax, 31                         // bit 31
    call put_digit
    mov esi, offset msg_push
    call puts
    mov ecx, esp
    push eax                            // the code segment's operand size:
    sub ecx, esp                        // ECX = 4 if CS.D = 1, 2 if CS.D = 0
    pop eax
    mov eax, ecx
    call put_digit
    mov esi, offset msg_bytes
    call puts
    and ebx, {cr0_pe_pg}
    cmp ebx, {cr0_pe}                   // PE = 1 and PG = 0?
    jne .Lwrong_mode
    cmp ecx, 4                          // 32-bit code segment?
    jne .Lwrong_mode

    // Line 3: info(RamSize). VMCALL always exits to the hypervisor, which
    // reads RAX/RDI/RSI/RDX (here EAX/EDI/ESI/EDX, see the crate docs),
    // puts the result in RAX and resumes us after the VMCALL.
    mov eax, {hypercall_info}
    mov edi, {info_ram_size}
    xor esi, esi
    xor edx, edx
    vmcall
    cmp eax, {error_threshold}
    ja .Linfo_failed
    mov ebx, eax
    mov esi, offset msg_ram_size
    call puts
    mov eax, ebx
    call put_hex32
    mov al, 0x0A                        // '\n'
    call putc
    mov eax, {success}
    jmp exit

.Lwrong_mode:
    mov esi, offset msg_wrong_mode
    call puts
    mov eax, {failure}
    jmp exit

.Linfo_failed:
    mov ebx, eax
    mov esi, offset msg_info_failed
    call puts
    mov eax, ebx
    call put_hex32
    mov al, 0x0A                        // '\n'
    call putc
    mov eax, {failure}
    // fall through to exit

// exit: ends the guest with status EAX: a 4-byte OUT to the exit port. It
// does not return; should it anyway, we halt with interrupts off for good.
exit:
    mov dx, {exit_port}
    out dx, eax
.Lhalt:
    cli
    hlt
    jmp .Lhalt

// ===========================================================================
// The UART. Every IN and OUT is a VM exit; the hypervisor emulates a 16550.
// ===========================================================================

// uart_init: 115200 baud, 8N1, UART interrupts off. Clobbers EAX, EDX.
uart_init:
    mov dx, {uart_ier}
    xor al, al
    out dx, al                          // IER = 0: no UART interrupts, we poll
    mov dx, {uart_lcr}
    mov al, {lcr_dlab}
    out dx, al                          // DLAB = 1: offsets 0 and 1 are the divisor
    mov dx, {uart_data}
    mov al, {divisor}
    out dx, al                          // divisor low byte
    mov dx, {uart_ier}
    xor al, al
    out dx, al                          // divisor high byte
    mov dx, {uart_lcr}
    mov al, {lcr_8n1}
    out dx, al                          // 8N1, DLAB = 0 again
    ret

// putc: sends the byte in AL once LSR says the transmitter can take it (a
// bounded wait). Clobbers EAX.
putc:
    push ecx
    push edx
    mov ah, al                          // IN overwrites AL
    mov ecx, {polls}
    mov dx, {uart_lsr}
.Lputc_poll:
    in al, dx
    test al, {lsr_thr_empty}
    jnz .Lputc_send
    loop .Lputc_poll                    // ECX -= 1, again while not 0
.Lputc_send:
    mov al, ah
    mov dx, {uart_data}
    out dx, al
    pop edx
    pop ecx
    ret

// puts: sends the NUL-terminated string at ESI. Clobbers EAX, ESI.
puts:
    lodsb                               // AL = [ESI], ESI += 1
    test al, al
    jz .Lputs_done
    call putc
    jmp puts
.Lputs_done:
    ret

// put_digit: sends the decimal digit in AL (0-9). Clobbers EAX.
put_digit:
    add al, '0'
    jmp putc                            // putc's RET returns to our caller

// put_hex32: sends EAX as 8 upper-case hex digits, most significant first.
// Clobbers EAX.
put_hex32:
    push ebx
    push ecx
    mov ebx, eax
    mov ecx, 8
.Lhex_next:
    rol ebx, 4                          // the top nibble becomes the bottom one
    mov al, bl
    and al, 0x0F
    add al, '0'
    cmp al, '9'
    jbe .Lhex_put
    add al, 'A' - '9' - 1               // 10..15 -> 'A'..'F'
.Lhex_put:
    call putc
    loop .Lhex_next
    pop ecx
    pop ebx
    ret

// Restore the assembler's mode for the code rustc emits after us.
.code64
.popsection

// ===========================================================================
// The strings (all lines end with a bare '\n', as the hypervisor expects).
// ===========================================================================
.pushsection .rodata.protected32, "a"
msg_hello:       .asciz "hello from 32-bit protected mode\n"
msg_cr0_pe:      .asciz "CR0.PE="
msg_cr0_pg:      .asciz " CR0.PG="
msg_push:        .asciz " push="
msg_bytes:       .asciz " bytes\n"
msg_ram_size:    .asciz "RAM size 0x"
msg_wrong_mode:  .asciz "FAIL: expected CR0.PE=1 CR0.PG=0 push=4 bytes\n"
msg_info_failed: .asciz "FAIL: info(RamSize) returned error 0x"
.popsection
"#,
    cr0_pe = const CR0_PE,
    cr0_pe_pg = const CR0_PE | CR0_PG,
    hypercall_info = const Hypercall::Info as u64,
    info_ram_size = const InfoKey::RamSize as u64,
    error_threshold = const ERROR_THRESHOLD,
    success = const SUCCESS_STATUS,
    failure = const FAILURE_STATUS,
    exit_port = const EXIT_PORT,
    uart_data = const UART_DATA,
    uart_ier = const UART_IER,
    uart_lcr = const UART_LCR,
    uart_lsr = const UART_LSR,
    lcr_dlab = const LCR_DLAB,
    lcr_8n1 = const LCR_8N1,
    divisor = const DIVISOR_115200,
    lsr_thr_empty = const LSR_THR_EMPTY,
    polls = const THR_EMPTY_POLLS,
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
