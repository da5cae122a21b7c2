//! `neighbour`: the well-behaved guest of the isolation tests.
//!
//! It fills all of its free RAM with a pattern derived from its guest id,
//! works for a while (yielding the CPU now and then, so that a scheduler can
//! run the hostile guest in between), then reads everything back and folds
//! it into a checksum. The *expected* checksum is computed from the pattern
//! formula alone, without reading memory, so any byte of its RAM that
//! changed while it was not looking (a write from another guest or from the
//! hypervisor) shows up as a difference:
//!
//! ```text
//! checksum 0x1234abcd5678ef90 ok
//! checksum 0x... expected 0x... CORRUPTED (first difference at 0x..., read 0x..., wrote 0x...)
//! ```
//!
//! The second line ends the guest with status 1; the first with status 0.
//!
//! # Free RAM
//!
//! Everything below the hypervisor's reserved region (`info(ReservedBase)`,
//! the guest's page tables) except this image and its stack: `[0x1000,
//! 0x100000)` (page 0 is left alone so that no Rust pointer is ever null) and
//! `[end of image, ReservedBase - 64 KiB)`. The stack lives in the 64 KiB
//! below the reserved region; the program checks at run time that RSP is
//! there.
#![no_std]
#![no_main]
#![deny(unsafe_op_in_unsafe_fn)]

use core::arch::asm;
use core::ops::Range;

use guest_rt::hypercall::{self, InfoKey};
use guest_rt::{exit, idt, println};

guest_rt::entry!(main);

/// Where guest-rt's linker script places every image.
const IMAGE_START: u64 = 0x10_0000;
/// The lowest address filled: page 0 stays untouched (no null pointers).
const LOW_START: u64 = 0x1000;
/// The stack's window below the reserved region.
const STACK_WINDOW: u64 = 64 * 1024;
/// Rounds of work between the fill and the check; a `yield` after each.
const ROUNDS: u32 = 16;
/// Iterations of busy work per round: 16 x 20,000 = 320,000 in all.
const ITERATIONS_PER_ROUND: u32 = 20_000;

/// Exit status when the checksum does not match.
const STATUS_CORRUPTED: u32 = 1;
/// Exit status when the memory layout is not what this program expects.
const STATUS_BAD_LAYOUT: u32 = 2;

unsafe extern "C" {
    /// The end of the image (after `.bss`), from guest-rt's `link.ld`.
    static __image_end: u8;
}

/// The program: layout, fill, work, check.
fn main() -> ! {
    idt::install();
    let (id, ram_size, reserved_base) = match (
        hypercall::info(InfoKey::GuestId),
        hypercall::info(InfoKey::RamSize),
        hypercall::info(InfoKey::ReservedBase),
    ) {
        (Ok(id), Ok(ram_size), Ok(base)) => (id, ram_size, base),
        (id, ram_size, base) => {
            println!("FAIL: info(GuestId) -> {id:?}, info(RamSize) -> {ram_size:?}, info(ReservedBase) -> {base:?}");
            exit(STATUS_BAD_LAYOUT)
        }
    };
    let image_end = (&raw const __image_end as u64).next_multiple_of(4096);
    let stack_bottom = reserved_base.saturating_sub(STACK_WINDOW);
    let rsp = stack_pointer();
    if reserved_base > ram_size || stack_bottom <= image_end || !(stack_bottom..reserved_base).contains(&rsp) {
        println!(
            "FAIL: layout: image ends {image_end:#x}, stack {rsp:#x}, reserved base {reserved_base:#x}, RAM {ram_size:#x}"
        );
        exit(STATUS_BAD_LAYOUT);
    }
    let regions = [LOW_START..IMAGE_START, image_end..stack_bottom];
    let seed = seed_of(id);
    let bytes: u64 = regions.iter().map(|region| region.end - region.start).sum();
    println!(
        "neighbour: guest id {id}, filling [{:#x}, {:#x}) and [{:#x}, {:#x}): {bytes} bytes",
        regions[0].start, regions[0].end, regions[1].start, regions[1].end
    );

    for region in &regions {
        fill(region, seed);
    }
    let work = busy_work(seed);
    let expected = regions.iter().fold(CHECKSUM_START, |sum, region| expected_checksum(region, seed, sum));
    let mut actual = CHECKSUM_START;
    let mut first_difference = None;
    for region in &regions {
        let (sum, difference) = read_checksum(region, seed, actual);
        actual = sum;
        first_difference = first_difference.or(difference);
    }
    println!("neighbour: {} rounds of work done ({work:#x})", ROUNDS);
    match first_difference {
        None if actual == expected => {
            println!("checksum {actual:#018x} ok");
            exit(0)
        }
        difference => {
            match difference {
                Some((address, read)) => println!(
                    "checksum {actual:#018x} expected {expected:#018x} CORRUPTED (first difference at {address:#x}, \
                     read {read:#018x}, wrote {:#018x})",
                    pattern(address, seed)
                ),
                None => println!("checksum {actual:#018x} expected {expected:#018x} CORRUPTED"),
            }
            exit(STATUS_CORRUPTED)
        }
    }
}

/// The pattern's seed: the guest id spread over 64 bits (the SplitMix64
/// finalizer), so that two neighbours' patterns share no words.
const fn seed_of(id: u64) -> u64 {
    let mut z = id.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// The word written at `address`: different at every address and for every
/// seed, so that a word copied from elsewhere or from another guest is
/// caught.
const fn pattern(address: u64, seed: u64) -> u64 {
    (address ^ seed).wrapping_mul(0x2545_F491_4F6C_DD1D).rotate_left(17) ^ seed
}

/// The checksum's start value (FNV-1a's offset basis).
const CHECKSUM_START: u64 = 0xCBF2_9CE4_8422_2325;

/// Folds one word into the checksum (FNV-1a over words, not bytes).
const fn fold(sum: u64, word: u64) -> u64 {
    (sum ^ word).wrapping_mul(0x0000_0100_0000_01B3)
}

/// Writes the pattern over `region`.
fn fill(region: &Range<u64>, seed: u64) {
    for address in region.clone().step_by(8) {
        // SAFETY: `region` is free RAM of this guest (checked against the
        // layout in `main`), 8-byte aligned, never address 0; nothing else
        // of the program lives there.
        unsafe { core::ptr::write_volatile(address as *mut u64, pattern(address, seed)) };
    }
}

/// The checksum `region` must have, from the formula alone.
fn expected_checksum(region: &Range<u64>, seed: u64, start: u64) -> u64 {
    region.clone().step_by(8).fold(start, |sum, address| fold(sum, pattern(address, seed)))
}

/// The checksum `region` has, and the first word that differs from the
/// pattern (its address and what was read).
fn read_checksum(region: &Range<u64>, seed: u64, start: u64) -> (u64, Option<(u64, u64)>) {
    let mut sum = start;
    let mut first_difference = None;
    for address in region.clone().step_by(8) {
        // SAFETY: as in `fill`: free RAM of this guest, aligned, not null.
        let word = unsafe { core::ptr::read_volatile(address as *const u64) };
        if first_difference.is_none() && word != pattern(address, seed) {
            first_difference = Some((address, word));
        }
        sum = fold(sum, word);
    }
    (sum, first_difference)
}

/// Spends a while computing (an xorshift generator), yielding the CPU after
/// each round: with a scheduler, the other guests run in between, which is
/// when a hostile one would strike. Returns the generator's state so the
/// work cannot be optimized away.
fn busy_work(seed: u64) -> u64 {
    let mut state = seed | 1;
    for _ in 0..ROUNDS {
        for _ in 0..ITERATIONS_PER_ROUND {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state = core::hint::black_box(state);
        }
        if let Err(error) = hypercall::yield_now() {
            println!("FAIL: yield -> {error:?}");
            exit(STATUS_BAD_LAYOUT);
        }
    }
    state
}

/// The current stack pointer.
fn stack_pointer() -> u64 {
    let rsp: u64;
    // SAFETY: reading RSP has no side effects.
    unsafe { asm!("mov {}, rsp", out(reg) rsp, options(nomem, nostack, preserves_flags)) };
    rsp
}
