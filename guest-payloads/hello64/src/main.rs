//! `hello64`: a small 64-bit guest for the hypervisor.
//!
//! It starts in long mode (identity-mapped paging, CPL 0, interrupts off, a
//! stack just below the hypervisor's reserved region), greets through its
//! emulated 16550 UART, checks every hypercall's answers against the ABI in
//! `hypervisor_core::hypercall`, measures the round-trip cost of two kinds of
//! VM exit, and reports the number of failed checks as its exit status
//! through port 0xF4. Every output line is deterministic except the lines
//! starting with `measure:`.
//!
//! Entry, UART, hypercall wrappers, exit and panic handler come from
//! `guest-rt`.
#![no_std]
#![no_main]
#![deny(unsafe_op_in_unsafe_fn)]

mod measure;

use guest_rt::checks::Checks;
use guest_rt::hypercall::{self, Expect, HypercallError, InfoKey, Shown, MAX_PRINT_LEN, SERIAL_PORT};
use guest_rt::{exit, println};

guest_rt::entry!(main);

/// The most guests one boot can hold (the boot blob's limit).
const MAX_GUESTS: u64 = 250;

/// The RAM size the hypervisor gives a guest by default.
const EXPECTED_RAM_SIZE: u64 = 0x20_0000;

/// The highest address the image may use (see guest-rt's `link.ld`); the reserved region
/// must start at or above it.
const IMAGE_LIMIT: u64 = 0x18_0000;

/// Printed through the `print` hypercall (it lives in `.rodata`).
static MESSAGE: &[u8] = b"printed through the print hypercall\n";

/// An info key the ABI does not define.
const UNKNOWN_INFO_KEY: u64 = 99;

/// A call number the ABI does not define.
const UNKNOWN_CALL: u64 = 0xdead;

/// A buffer that starts inside guest RAM but runs past its end.
const PAST_RAM_END: u64 = EXPECTED_RAM_SIZE - 8;
const PAST_RAM_END_LEN: u64 = 64;

/// A line sent with one `rep outsb`: the hypervisor emulates the string
/// instruction, translating each byte's address through our page tables.
const STRING_IO_LINE: &[u8] = b"printed with rep outsb through the guest's page tables\n";

/// Sends `bytes` to the UART's data port with `rep outsb` (RSI = bytes,
/// RCX = count, DX = port), without polling the line status: the virtual
/// UART's transmitter is always ready.
fn print_with_rep_outsb(bytes: &[u8]) {
    // SAFETY: reads `bytes.len()` bytes from `bytes`; SERIAL_PORT is our UART.
    unsafe {
        core::arch::asm!(
            "cld",
            "rep outsb",
            inout("rsi") bytes.as_ptr() => _,
            inout("rcx") bytes.len() => _,
            in("dx") SERIAL_PORT,
            options(nostack, readonly),
        );
    }
}

/// The program: greeting, hypercall checks, measurements, exit.
fn main() -> ! {
    println!("hello from a 64-bit guest");
    print_with_rep_outsb(STRING_IO_LINE);

    let mut checks = Checks::new();
    run_checks(&mut checks);
    checks.report();

    let tsc_hz = hypercall::info(InfoKey::TscHz).unwrap_or(0);
    println!("measure: tsc frequency {tsc_hz} Hz");
    println!("measure: cpuid round trip {} ticks", measure::cpuid_round_trip());
    println!("measure: null vmcall round trip {} ticks", measure::null_vmcall_round_trip());

    println!("exiting with status {}", checks.failed());
    exit(checks.failed())
}

/// One hypercall check after another, one output line each.
fn run_checks(checks: &mut Checks) {
    checks.expect("null", hypercall::null(), Expect::Value(0));

    // The hypervisor prints MESSAGE as its own line, before our "ok:" line.
    checks.expect("print(message)", hypercall::print(MESSAGE), Expect::Value(MESSAGE.len() as u64));

    // The id is the guest's position in the boot's guest list: 0 when hello64
    // runs alone, something else when other guests come first.
    let guest_id = hypercall::info(InfoKey::GuestId);
    checks.check(
        "info(GuestId)",
        matches!(guest_id, Ok(id) if id < MAX_GUESTS),
        "a position in the guest list",
        format_args!("{guest_id:?} (expected below {MAX_GUESTS})"),
    );

    let ram_size = hypercall::info(InfoKey::RamSize);
    checks.expect("info(RamSize)", ram_size, Expect::Hex(EXPECTED_RAM_SIZE));

    checks.expect("info(TscHz)", hypercall::info(InfoKey::TscHz), Expect::Positive);

    let base = hypercall::info(InfoKey::ReservedBase);
    let size = hypercall::info(InfoKey::ReservedSize);
    let plausible = match (base, size, ram_size) {
        (Ok(base), Ok(size), Ok(ram_size)) => {
            size > 0 && base % 4096 == 0 && base >= IMAGE_LIMIT && base.checked_add(size) == Some(ram_size)
        }
        _ => false,
    };
    checks.check(
        "info(ReservedBase), info(ReservedSize)",
        plausible,
        "plausible",
        format_args!(
            "base {}, size {} (expected page-aligned base >= {IMAGE_LIMIT:#x}, size > 0, base + size == RamSize)",
            Shown(base),
            Shown(size)
        ),
    );

    checks.expect("info(99)", hypercall::info_raw(UNKNOWN_INFO_KEY), Expect::Error(HypercallError::BadArgument));

    checks.expect(
        "call 0xdead",
        hypercall::decode(hypercall::vmcall(UNKNOWN_CALL, 0, 0, 0)),
        Expect::Error(HypercallError::UnknownCall),
    );

    checks.expect(
        "print(0x1ffff8, 64)",
        hypercall::print_raw(PAST_RAM_END, PAST_RAM_END_LEN),
        Expect::Error(HypercallError::BadAddress),
    );

    checks.expect(
        "print(message, u64::MAX)",
        hypercall::print_raw(MESSAGE.as_ptr() as u64, u64::MAX),
        Expect::Error(HypercallError::BadAddress),
    );

    checks.expect(
        "print(message, MAX_PRINT_LEN + 1)",
        hypercall::print_raw(MESSAGE.as_ptr() as u64, MAX_PRINT_LEN + 1),
        Expect::Error(HypercallError::TooLong),
    );

    checks.expect("yield", hypercall::yield_now(), Expect::Value(0));
}
