//! `hypercall`: a 64-bit guest that checks every hypercall of the ABI
//! (`hypervisor_core::hypercall`) with valid and invalid arguments, the
//! edges of the ranges included, and ends through the `exit` hypercall
//! instead of the exit port.
//!
//! One line per check, then `checks: N passed, M failed`. With every check
//! passed the guest exits with status 0x42 (66), a value nothing else in the
//! guest produces, so the runner's `exit:0x42` proves the exit hypercall
//! delivered its argument; otherwise the status is the number of failed
//! checks.
#![no_std]
#![no_main]
#![deny(unsafe_op_in_unsafe_fn)]

use core::arch::asm;

use guest_rt::checks::Checks;
use guest_rt::hypercall::{self, Expect, Hypercall, HypercallError, InfoKey, Shown, MAX_PRINT_LEN};
use guest_rt::{exit, print, println};

guest_rt::entry!(main);

/// The exit status when every check passed.
const SUCCESS_STATUS: u32 = 0x42;

/// The most guests one boot can hold (the boot blob's limit).
const MAX_GUESTS: u64 = hypervisor_core::blob::MAX_GUESTS as u64;
/// Guest RAM comes in multiples of 2 MiB.
const RAM_GRANULE: u64 = hypervisor_core::guest_memory::BLOCK_SIZE;
/// The end of the payload image (guest-rt's `link.ld`).
const IMAGE_END: u64 = 0x18_0000;
/// How far below the reserved region the stack may lie (it starts just below it).
const STACK_WINDOW: u64 = 64 * 1024;

/// The one line in [`MAX_LEN_BUFFER`] the console shows.
const MAX_LEN_LINE: &[u8] = b"a print of exactly MAX_PRINT_LEN (4096) bytes: carriage returns, then this line\n";

/// Exactly [`MAX_PRINT_LEN`] bytes: carriage returns, then [`MAX_LEN_LINE`].
/// The hypervisor's console drops `\r` (so that CRLF line ends work), so
/// printing the largest allowed buffer shows a single short line.
static MAX_LEN_BUFFER: [u8; MAX_PRINT_LEN as usize] = max_len_buffer();

const fn max_len_buffer() -> [u8; MAX_PRINT_LEN as usize] {
    let mut buffer = [b'\r'; MAX_PRINT_LEN as usize];
    let start = buffer.len() - MAX_LEN_LINE.len();
    let mut i = 0;
    while i < MAX_LEN_LINE.len() {
        buffer[start + i] = MAX_LEN_LINE[i];
        i += 1;
    }
    buffer
}

/// The program: the checks, then the exit hypercall.
fn main() -> ! {
    println!("hypercall: every call, valid and invalid");
    let mut checks = Checks::new();
    run_checks(&mut checks);
    checks.report();

    let status = if checks.failed() == 0 { SUCCESS_STATUS } else { checks.failed() };
    println!("exiting through the exit hypercall with status {status:#x}");
    hypercall::vmcall(Hypercall::Exit as u64, u64::from(status), 0, 0);
    println!("FAIL: the exit hypercall returned");
    exit(1)
}

/// Every check, one output line each.
fn run_checks(checks: &mut Checks) {
    checks.expect("null", hypercall::null(), Expect::Value(0));
    registers_preserved(checks);

    let ram_size = info_checks(checks);
    print_checks(checks, ram_size);

    for (key, what) in [(7, "info(7)"), (u64::MAX, "info(u64::MAX)")] {
        checks.expect(what, hypercall::info_raw(key), Expect::Error(HypercallError::BadArgument));
    }
    // u64::MAX is also the code of UnknownCall (-1): a hypervisor that left
    // RAX alone would pass this one; the other two tell.
    for (number, what) in [(5, "call 5"), (0x100, "call 0x100"), (u64::MAX, "call u64::MAX")] {
        checks.expect(
            what,
            hypercall::decode(hypercall::vmcall(number, 0, 0, 0)),
            Expect::Error(HypercallError::UnknownCall),
        );
    }
    checks.expect("yield", hypercall::yield_now(), Expect::Value(0));
}

/// The six info keys, each with a plausibility check (no value that depends
/// on the configuration is printed). Returns the RAM size (2 MiB if the call
/// failed) for the range checks.
fn info_checks(checks: &mut Checks) -> u64 {
    let guest_id = hypercall::info(InfoKey::GuestId);
    checks.check(
        "info(GuestId)",
        matches!(guest_id, Ok(id) if id < MAX_GUESTS),
        "a position in the guest list",
        format_args!("{} (expected below {MAX_GUESTS})", Shown(guest_id)),
    );

    let ram_size = hypercall::info(InfoKey::RamSize);
    checks.check(
        "info(RamSize)",
        matches!(ram_size, Ok(size) if size > 0 && size % RAM_GRANULE == 0),
        "a positive multiple of 2 MiB",
        format_args!("{} (expected a positive multiple of 2 MiB)", Shown(ram_size)),
    );

    let tsc_hz = hypercall::info(InfoKey::TscHz);
    checks.check(
        "info(TscHz)",
        matches!(tsc_hz, Ok(hz) if hz > 0),
        "positive",
        format_args!("{} (expected positive)", Shown(tsc_hz)),
    );

    // Restarts happen only after a crash; this run is the first.
    checks.expect("info(RestartCount)", hypercall::info(InfoKey::RestartCount), Expect::Value(0));

    let base = hypercall::info(InfoKey::ReservedBase);
    let rsp = stack_pointer();
    checks.check(
        "info(ReservedBase)",
        matches!((base, ram_size), (Ok(base), Ok(ram))
            if base % 4096 == 0 && base >= IMAGE_END && base < ram
                && rsp < base && rsp >= base.saturating_sub(STACK_WINDOW)),
        "page-aligned, above the image, our stack just below it",
        format_args!(
            "{} with RSP {rsp:#x} (expected page-aligned, in [{IMAGE_END:#x}, RamSize), at most 64 KiB above RSP)",
            Shown(base)
        ),
    );

    let size = hypercall::info(InfoKey::ReservedSize);
    checks.check(
        "info(ReservedSize)",
        matches!((base, size, ram_size), (Ok(base), Ok(size), Ok(ram))
            if size > 0 && size % 4096 == 0 && base.checked_add(size) == Some(ram)),
        "whole pages, ReservedBase + ReservedSize == RamSize",
        format_args!("{} (expected whole pages reaching exactly to RamSize)", Shown(size)),
    );

    ram_size.unwrap_or(RAM_GRANULE)
}

/// `print` at the edges: lengths 0, MAX_PRINT_LEN and one more; ranges that
/// end exactly at the end of RAM, cross it, start past it, or wrap around.
fn print_checks(checks: &mut Checks, ram_size: u64) {
    let buffer = MAX_LEN_BUFFER.as_ptr() as u64;

    checks.expect("print(buffer, 0)", hypercall::print_raw(buffer, 0), Expect::Value(0));
    checks.expect("print(RamSize, 0)", hypercall::print_raw(ram_size, 0), Expect::Value(0));

    // The last byte of RAM belongs to the hypervisor's page tables (the top
    // byte of the last page-directory entry, 0); the console shows an
    // unprintable byte as '.'. The UART output before and after it goes
    // into the same console line.
    print!("the last byte of RAM: ");
    let last = hypercall::print_raw(ram_size - 1, 1);
    println!();
    checks.expect("print(RamSize - 1, 1)", last, Expect::Value(1));

    let bad_address = Expect::Error(HypercallError::BadAddress);
    checks.expect("print(RamSize - 8, 16)", hypercall::print_raw(ram_size - 8, 16), bad_address);
    checks.expect("print(RamSize, 1)", hypercall::print_raw(ram_size, 1), bad_address);
    checks.expect("print(RamSize + 1, 0)", hypercall::print_raw(ram_size + 1, 0), bad_address);
    checks.expect("print(u64::MAX - 1, 2)", hypercall::print_raw(u64::MAX - 1, 2), bad_address);

    checks.expect("print(buffer, MAX_PRINT_LEN)", hypercall::print(&MAX_LEN_BUFFER), Expect::Value(MAX_PRINT_LEN));
    // The range [buffer, buffer + 4097) lies in RAM (the image goes on), so
    // only the length is wrong.
    checks.expect(
        "print(buffer, MAX_PRINT_LEN + 1)",
        hypercall::print_raw(buffer, MAX_PRINT_LEN + 1),
        Expect::Error(HypercallError::TooLong),
    );
}

/// The registers [`registers_preserved`] loads before a `null` VMCALL, in
/// this order.
const PRESERVED: [&str; 14] =
    ["RBX", "RCX", "RDX", "RSI", "RDI", "RBP", "R8", "R9", "R10", "R11", "R12", "R13", "R14", "R15"];
/// The value loaded into register `i` of [`PRESERVED`] is `PATTERN + i`.
const PATTERN: u64 = 0x5EED_0000_0000_0100;

/// A hypercall returns its result in RAX and must leave every other
/// register as it was: guest-rt's `vmcall` wrapper tells the compiler so.
/// Loads a distinct value into each general-purpose register but RAX and
/// RSP, executes `null`, and checks them all.
fn registers_preserved(checks: &mut Checks) {
    let mut after = [0u64; 14];
    // SAFETY: RBX and RBP (which `asm!` may not name) are saved and restored
    // around the block on the stack, as is the output pointer (in RAX, which
    // the hypercall overwrites); the block writes only `after`.
    unsafe {
        asm!(
            "push rbx",
            "push rbp",
            "push rax",
            "mov rbx, {p} + 0",
            "mov rcx, {p} + 1",
            "mov rdx, {p} + 2",
            "mov rsi, {p} + 3",
            "mov rdi, {p} + 4",
            "mov rbp, {p} + 5",
            "mov r8, {p} + 6",
            "mov r9, {p} + 7",
            "mov r10, {p} + 8",
            "mov r11, {p} + 9",
            "mov r12, {p} + 10",
            "mov r13, {p} + 11",
            "mov r14, {p} + 12",
            "mov r15, {p} + 13",
            "mov eax, {null}",
            "vmcall",
            "mov rax, [rsp]",
            "mov [rax + 0 * 8], rbx",
            "mov [rax + 1 * 8], rcx",
            "mov [rax + 2 * 8], rdx",
            "mov [rax + 3 * 8], rsi",
            "mov [rax + 4 * 8], rdi",
            "mov [rax + 5 * 8], rbp",
            "mov [rax + 6 * 8], r8",
            "mov [rax + 7 * 8], r9",
            "mov [rax + 8 * 8], r10",
            "mov [rax + 9 * 8], r11",
            "mov [rax + 10 * 8], r12",
            "mov [rax + 11 * 8], r13",
            "mov [rax + 12 * 8], r14",
            "mov [rax + 13 * 8], r15",
            "pop rax",
            "pop rbp",
            "pop rbx",
            p = const PATTERN,
            null = const Hypercall::Null as u64,
            inout("rax") after.as_mut_ptr() => _,
            out("rcx") _, out("rdx") _, out("rsi") _, out("rdi") _,
            out("r8") _, out("r9") _, out("r10") _, out("r11") _,
            out("r12") _, out("r13") _, out("r14") _, out("r15") _,
        );
    }
    let changed = (0..after.len()).find(|&i| after[i] != PATTERN + i as u64);
    match changed {
        None => checks.pass("null preserves RBX RCX RDX RSI RDI RBP R8-R15", "unchanged"),
        Some(i) => checks.fail(
            "null preserves RBX RCX RDX RSI RDI RBP R8-R15",
            format_args!("{} is {:#x} (expected {:#x})", PRESERVED[i], after[i], PATTERN + i as u64),
        ),
    }
}

/// The current stack pointer.
fn stack_pointer() -> u64 {
    let rsp: u64;
    // SAFETY: reads a register.
    unsafe { asm!("mov {}, rsp", out(reg) rsp, options(nomem, nostack, preserves_flags)) };
    rsp
}
