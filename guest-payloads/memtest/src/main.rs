//! `memtest`: a 64-bit guest that writes a pattern over all of its free RAM
//! and reads it back.
//!
//! It asks the hypervisor for its RAM size and the base of the reserved
//! region (the hypervisor's page tables for the guest, at the top of RAM),
//! then tests every byte below that base except two windows it must not
//! overwrite:
//!
//! - its own image, `[0x100000, 0x180000)` (guest-rt's `link.ld` keeps every
//!   payload inside it), and
//! - its stack: the 64 KiB below the reserved region. The hypervisor starts
//!   RSP just below the reserved base and this program needs far less; it
//!   checks at run time that RSP lies inside the window.
//!
//! Each 8-byte word gets `address ^ PATTERN_KEY`: every word differs from
//! its neighbours, so a write that lands at the wrong address (an aliasing
//! or mapping bug) is caught, not just a stuck bit. After writing all of it,
//! the program reads everything back in address order, compares, and folds
//! each word into a 64-bit FNV-1a hash (one step per word rather than per
//! byte, to keep the run short under emulation). The hash depends only on
//! the tested ranges, so it is the same on every run with the same RAM size.
//!
//! Memory accesses cause no VM exits: guest RAM is mapped by EPT and the
//! guest's own identity page tables. Only the UART output, the two `info`
//! hypercalls and the final exit do.
//!
//! Exit status: 0 when every word read back as written, 1 on the first
//! mismatch (its address is printed), 2 when the memory layout is not what
//! the program expects.
#![no_std]
#![no_main]
#![deny(unsafe_op_in_unsafe_fn)]

use core::arch::asm;
use core::ops::Range;

use guest_rt::hypercall::{self, HypercallError, InfoKey};
use guest_rt::{exit, idt, println};

guest_rt::entry!(main);

/// The payload image (guest-rt's `link.ld`): never overwritten.
const IMAGE: Range<u64> = 0x10_0000..0x18_0000;
/// The stack window below the reserved region: never overwritten.
const STACK_WINDOW: u64 = 64 * 1024;
/// XORed with each word's address to give its value.
const PATTERN_KEY: u64 = 0x5A5A_C3C3_0F0F_9669;

/// 64-bit FNV-1a: offset basis and prime.
const FNV_OFFSET_BASIS: u64 = 0xCBF2_9CE4_8422_2325;
const FNV_PRIME: u64 = 0x0000_0100_0000_01B3;

/// Exit status on a mismatch.
const STATUS_MISMATCH: u32 = 1;
/// Exit status when the layout does not allow the test.
const STATUS_BAD_LAYOUT: u32 = 2;

/// Tests `[0, 0x100000)` and `[0x180000, ReservedBase - 64 KiB)`.
fn main() -> ! {
    // An exception (which would mean a bug here) is then reported as a
    // panic instead of ending in a triple fault.
    idt::install();

    let (ram_size, reserved_base) = match (hypercall::info(InfoKey::RamSize), hypercall::info(InfoKey::ReservedBase)) {
        (Ok(ram_size), Ok(base)) => (ram_size, base),
        (ram_size, base) => fail_layout(ram_size, base),
    };
    let stack_bottom = reserved_base.saturating_sub(STACK_WINDOW);
    let rsp = stack_pointer();
    if reserved_base > ram_size || reserved_base % 4096 != 0 || stack_bottom < IMAGE.end {
        println!(
            "memtest: FAIL: reserved base {reserved_base:#x} does not leave room above the image (RAM {ram_size:#x})"
        );
        exit(STATUS_BAD_LAYOUT);
    }
    if !(stack_bottom..reserved_base).contains(&rsp) {
        println!("memtest: FAIL: RSP {rsp:#x} is outside the stack window [{stack_bottom:#x}, {reserved_base:#x})");
        exit(STATUS_BAD_LAYOUT);
    }

    let regions = [0..IMAGE.start, IMAGE.end..stack_bottom];
    println!(
        "memtest: RAM {ram_size:#x} bytes, testing [{:#x}, {:#x}) and [{:#x}, {:#x})",
        regions[0].start, regions[0].end, regions[1].start, regions[1].end
    );

    for region in &regions {
        fill(region);
    }
    let mut hash = FNV_OFFSET_BASIS;
    let mut bytes = 0;
    for region in &regions {
        match verify(region, hash) {
            Ok(folded) => hash = folded,
            Err(Mismatch { address, found }) => {
                println!(
                    "memtest: FAIL: mismatch at {address:#x}: read {found:#018x}, expected {:#018x}",
                    address ^ PATTERN_KEY
                );
                exit(STATUS_MISMATCH);
            }
        }
        bytes += region.end - region.start;
    }
    println!("memtest: {bytes} bytes written and verified");
    println!("memtest: checksum {hash:#018x}");
    exit(0)
}

/// Reports a failed `info` call and exits.
fn fail_layout(ram_size: Result<u64, HypercallError>, base: Result<u64, HypercallError>) -> ! {
    println!("memtest: FAIL: info(RamSize) -> {ram_size:?}, info(ReservedBase) -> {base:?}");
    exit(STATUS_BAD_LAYOUT)
}

/// The current stack pointer.
fn stack_pointer() -> u64 {
    let rsp: u64;
    // SAFETY: reads a register.
    unsafe { asm!("mov {}, rsp", out(reg) rsp, options(nomem, nostack, preserves_flags)) };
    rsp
}

/// Writes `address ^ PATTERN_KEY` to every word of `region` (8-aligned).
///
/// The loop is `asm!`: the region is guest-physical memory that belongs to
/// no Rust object (it starts at address 0, which Rust calls null), so only
/// instructions the compiler makes no assumptions about may touch it.
fn fill(region: &Range<u64>) {
    // SAFETY: the region lies in guest RAM and outside the image and the
    // stack (checked by `main`); nothing of ours lives there.
    unsafe {
        asm!(
            "2:",
            "cmp {address}, {end}",
            "jae 3f",
            "mov {value}, {address}",
            "xor {value}, {key}",
            "mov qword ptr [{address}], {value}",
            "add {address}, 8",
            "jmp 2b",
            "3:",
            address = inout(reg) region.start => _,
            end = in(reg) region.end,
            key = in(reg) PATTERN_KEY,
            value = out(reg) _,
            options(nostack),
        );
    }
}

/// The first word that did not read back as written.
struct Mismatch {
    address: u64,
    found: u64,
}

/// Reads `region` back, comparing each word with `address ^ PATTERN_KEY`
/// and folding it into the FNV-1a hash `hash` (`hash = (hash ^ word) *
/// prime`). Returns the new hash, or the first mismatch.
fn verify(region: &Range<u64>, hash: u64) -> Result<u64, Mismatch> {
    let (address, found, folded): (u64, u64, u64);
    // SAFETY: as in `fill`; this only reads.
    unsafe {
        asm!(
            "2:",
            "cmp {address}, {end}",
            "jae 3f",
            "mov {value}, qword ptr [{address}]",
            "mov {expected}, {address}",
            "xor {expected}, {key}",
            "cmp {value}, {expected}",
            "jne 3f",
            "xor {hash}, {value}",
            "imul {hash}, {prime}",
            "add {address}, 8",
            "jmp 2b",
            "3:",
            address = inout(reg) region.start => address,
            end = in(reg) region.end,
            key = in(reg) PATTERN_KEY,
            prime = in(reg) FNV_PRIME,
            hash = inout(reg) hash => folded,
            value = out(reg) found,
            expected = out(reg) _,
            options(nostack, readonly),
        );
    }
    if address < region.end {
        Err(Mismatch { address, found })
    } else {
        Ok(folded)
    }
}
