//! `hostile_memory`: a guest that reaches for memory it was not given, one
//! address per run.
//!
//! Each run reads its restart count (`info(RestartCount)`) and makes the
//! access of that number in [`PROBES`]; the access must end the run with an
//! EPT violation, the hypervisor restarts the guest from its image (its
//! configuration allows `PROBES.len() - 1` restarts), and the next run tries
//! the next address. So every address is tried once, each in a fresh guest,
//! and the last crash is the guest's end: expected outcome `crash`.
//!
//! The guest's own page tables (built by the hypervisor) identity-map the
//! low 4 GiB with 2 MiB pages, so every address below is a valid *linear*
//! address for the guest: the access gets through the guest's paging and
//! reaches EPT, where nothing but the guest's RAM is mapped (SDM Vol. 3C,
//! 29.3.3.2 "EPT Violations"). On the host, the guest-physical address means
//! nothing: the same number is host memory of another guest or of the
//! hypervisor, or a device, which is exactly what must stay out of reach.
//!
//! The local APIC comes last and is special: a hypervisor with a virtual
//! xAPIC traps that page and *emulates* the access instead of stopping the
//! guest. So the last probe reads the APIC version register; if the read
//! returns (emulated), the guest prints the value and then writes past the
//! end of its RAM, so that the run still ends with the expected crash.
#![no_std]
#![no_main]
#![deny(unsafe_op_in_unsafe_fn)]

use core::arch::asm;

use guest_rt::hypercall::{self, InfoKey};
use guest_rt::{exit, println};

guest_rt::entry!(main);

/// Where an address lies.
#[derive(Clone, Copy)]
enum Target {
    /// The first byte past the end of the guest's RAM.
    PastTheEnd,
    /// 6 MiB past the end: where, on the host, other guests' RAM or the
    /// hypervisor's own memory would be found by an identity mapping.
    FarAbove,
    /// A fixed guest-physical address.
    Fixed(u64),
}

/// Read or write.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Access {
    Read,
    Write,
}

/// One probe: what it touches, how, and a description for the output.
struct Probe {
    target: Target,
    access: Access,
    what: &'static str,
}

/// The I/O APIC's register window (index register at the base).
const IO_APIC: u64 = 0xFEC0_0000;
/// The last page below 4 GiB (the firmware's reset vector lives here on a PC).
const TOP_OF_4G: u64 = 0xFFFF_F000;
/// The local APIC's version register (offset 0x30 of the xAPIC page at
/// 0xFEE00000, SDM Vol. 3A, 12.4.8 "Local APIC Version Register").
const LOCAL_APIC_VERSION: u64 = 0xFEE0_0030;

/// The probes, one per run, in run order. The local APIC comes last (see
/// the crate documentation).
const PROBES: [Probe; 9] = [
    Probe { target: Target::PastTheEnd, access: Access::Read, what: "just past the end of RAM" },
    Probe { target: Target::PastTheEnd, access: Access::Write, what: "just past the end of RAM" },
    Probe { target: Target::FarAbove, access: Access::Read, what: "6 MiB past the end of RAM" },
    Probe { target: Target::FarAbove, access: Access::Write, what: "6 MiB past the end of RAM" },
    Probe { target: Target::Fixed(IO_APIC), access: Access::Read, what: "the I/O APIC" },
    Probe { target: Target::Fixed(IO_APIC), access: Access::Write, what: "the I/O APIC" },
    Probe { target: Target::Fixed(TOP_OF_4G), access: Access::Read, what: "the top of 4 GiB" },
    Probe { target: Target::Fixed(TOP_OF_4G), access: Access::Write, what: "the top of 4 GiB" },
    Probe { target: Target::Fixed(LOCAL_APIC_VERSION), access: Access::Read, what: "the local APIC version register" },
];

/// The value a write stores: recognizable in a memory dump.
const MARKER: u64 = 0x4859_5045_5256_4953;

/// Exit status when an access outside RAM was allowed (never expected).
const STATUS_ESCAPED: u32 = 1;

/// Picks this run's probe and makes it.
fn main() -> ! {
    let (ram_size, run) = match (hypercall::info(InfoKey::RamSize), hypercall::info(InfoKey::RestartCount)) {
        (Ok(ram_size), Ok(run)) => (ram_size, run),
        (ram_size, run) => {
            println!("FAIL: info(RamSize) -> {ram_size:?}, info(RestartCount) -> {run:?}");
            exit(STATUS_ESCAPED)
        }
    };
    let Some(probe) = usize::try_from(run).ok().and_then(|index| PROBES.get(index)) else {
        println!("FAIL: run {run}: every probe has run, but the guest was restarted again");
        exit(STATUS_ESCAPED)
    };
    let address = match probe.target {
        Target::PastTheEnd => ram_size,
        Target::FarAbove => ram_size.saturating_add(6 << 20),
        Target::Fixed(address) => address,
    };
    let verb = if probe.access == Access::Read { "read of" } else { "write to" };
    println!("run {} of {}: {verb} {address:#x} ({})", run + 1, PROBES.len(), probe.what);
    match probe.access {
        Access::Read => {
            let value = read(address);
            if address == LOCAL_APIC_VERSION {
                // Emulated by a virtual xAPIC: bits 7:0 version, 23:16 max LVT entry.
                println!("the local APIC is emulated: version register {value:#x}; now writing past the end of RAM");
                write(ram_size);
            }
            println!("FAIL: the read of {address:#x} returned {value:#x}");
        }
        Access::Write => {
            write(address);
            println!("FAIL: the write to {address:#x} returned");
        }
    }
    exit(STATUS_ESCAPED)
}

/// A 32-bit load from `address` (32 bits: the width of an APIC register;
/// in assembly: a Rust read of memory the program does not own would be
/// undefined behaviour).
fn read(address: u64) -> u32 {
    let value: u32;
    // SAFETY: the address is outside this guest's RAM: the access exits to
    // the hypervisor, which stops the guest (or emulates a device). Nothing
    // of the program is touched.
    unsafe {
        asm!(
            "mov {value:e}, dword ptr [{address}]",
            address = in(reg) address,
            value = out(reg) value,
            options(nostack, preserves_flags, readonly),
        );
    }
    value
}

/// A 64-bit store of [`MARKER`] to `address`.
fn write(address: u64) {
    // SAFETY: as in `read`.
    unsafe {
        asm!(
            "mov qword ptr [{address}], {value}",
            address = in(reg) address,
            value = in(reg) MARKER,
            options(nostack, preserves_flags),
        );
    }
}
