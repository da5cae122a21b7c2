//! `hostile_hypercalls`: a guest that abuses the hypercall ABI.
//!
//! The `hypercall` payload checks every call at the edges of its arguments
//! (the last byte of RAM, one byte past it, `MAX_PRINT_LEN`, call numbers 5
//! and 0x100). This one attacks it where a careless hypervisor would read
//! memory the guest does not own or act on a call it misdecoded:
//!
//! - `print` with buffers in the host's devices and far above RAM (the local
//!   and I/O APIC, 4 GiB, the top of the address space, non-canonical);
//! - `print` lengths that make `address + length` wrap around 2^64, so that
//!   a check of `address + length <= RAM` without overflow detection would
//!   pass;
//! - call numbers that differ from valid ones only in their upper bits (in
//!   64-bit mode all 64 bits of RAX count, so 0x1_0000_0001 is not `print`
//!   and 0x8000_0000_0000_0002 is not `exit`), and `info` keys likewise;
//! - 100,000 calls in a tight loop, alternating a `null` call and a `print`
//!   of a bad address, each result checked: the hypervisor must answer every
//!   one (and report only the first few failures in its log).
//!
//! Every call must come back with the error code the ABI defines
//! (`hypervisor_core::hypercall`); none may crash the guest or the
//! hypervisor. One line per check, then `checks: N passed, M failed`; the
//! exit status is the number of failed checks.
#![no_std]
#![no_main]
#![deny(unsafe_op_in_unsafe_fn)]

use guest_rt::checks::Checks;
use guest_rt::hypercall::{self, decode, vmcall, Expect, HypercallError, InfoKey};
use guest_rt::{exit, println};

guest_rt::entry!(main);

/// Calls in the tight loop.
const FLOOD_CALLS: u32 = 100_000;

/// The program.
fn main() -> ! {
    println!("hostile_hypercalls: bad pointers, wrapping lengths, misleading numbers, a flood");
    let mut checks = Checks::new();
    let ram_size = match hypercall::info(InfoKey::RamSize) {
        Ok(size) => size,
        Err(error) => {
            println!("FAIL: info(RamSize) -> {error:?}");
            exit(1)
        }
    };

    let bad_buffers: [(u64, u64, &str); 8] = [
        (0xFEE0_0000, 16, "the local APIC"),
        (0xFEC0_0000, 16, "the I/O APIC"),
        (0x1_0000_0000, 16, "4 GiB"),
        (0xFFFF_FFFF_FFFF_F000, 16, "the top of the address space"),
        (0x8000_0000_0000_0000, 16, "a non-canonical address"),
        (ram_size - 1, 2, "the last byte of RAM and one past it"),
        (0x1000, u64::MAX - 0xFFF, "a length that wraps address + length to 0"),
        (u64::MAX, 2, "the last address, wrapping"),
    ];
    for (address, length, what) in bad_buffers {
        checks.expect(
            format_args!("print({address:#x}, {length:#x}): {what}"),
            hypercall::print_raw(address, length),
            Expect::Error(HypercallError::BadAddress),
        );
    }

    let misleading_calls: [(u64, &str); 4] = [
        (0x1_0000_0001, "print with bit 32 set"),
        (0x8000_0000_0000_0002, "exit with bit 63 set"),
        (0xFFFF_FFFF_0000_0003, "info with the upper half set"),
        (0x4000_0000, "far above the assigned numbers"),
    ];
    for (number, what) in misleading_calls {
        // Arguments that would be valid for the call it resembles: a
        // buffer inside RAM, status 0, key 0.
        checks.expect(
            format_args!("call {number:#x} ({what})"),
            decode(vmcall(number, 0x10_0000, 1, 0)),
            Expect::Error(HypercallError::UnknownCall),
        );
    }
    for key in [0x1_0000_0000, 0x8000_0000_0000_0001] {
        checks.expect(
            format_args!("info({key:#x}): a valid key with upper bits set"),
            hypercall::info_raw(key),
            Expect::Error(HypercallError::BadArgument),
        );
    }

    flood(&mut checks, ram_size);
    checks.report();
    exit(checks.failed())
}

/// [`FLOOD_CALLS`] calls in a row, alternating `null` (must return 0) and
/// `print(ram_size, 1)` (must return BadAddress); every result checked,
/// one line for all.
fn flood(checks: &mut Checks, ram_size: u64) {
    let what = format_args!("{FLOOD_CALLS} calls in a tight loop (null and print of a bad address, alternating)");
    for call in 0..FLOOD_CALLS {
        let (got, want) = if call % 2 == 0 {
            (hypercall::null(), Expect::Value(0))
        } else {
            (hypercall::print_raw(ram_size, 1), Expect::Error(HypercallError::BadAddress))
        };
        if !want.accepts(got) {
            checks.fail(what, format_args!("call {call}: {got:?} (expected {want})"));
            return;
        }
    }
    checks.pass(what, "every one answered as expected");
}
