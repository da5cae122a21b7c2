//! `hostile_crash`: a guest that crashes in a different way each run.
//!
//! Each run reads its restart count (`info(RestartCount)`) and picks that
//! entry of [`WAYS`]; the hypervisor must stop it with its state dumped, then
//! restart it (its configuration allows `WAYS.len() - 1` restarts), and the
//! last crash is the guest's end: expected outcome `crash`.
//!
//! | run | how | what the CPU does |
//! |---|---|---|
//! | 1 | a non-canonical load with the hypervisor's empty IDT (limit 0) | #GP cannot be delivered → #DF cannot → triple fault (SDM Vol. 3A, 6.15, "Interrupt 8—Double Fault Exception") |
//! | 2 | a corrupted IDT: 32 present gates with a null code selector, then `ud2` | delivering #UD loads the null selector → #GP → #DF → triple fault |
//! | 3 | an IDT whose base lies outside RAM (0xFFFFF000), then `ud2` | the CPU reads the gate from guest-physical memory the guest does not have → EPT violation during event delivery |
//! | 4 | guest-rt's IDT, then RSP moved past the end of RAM, then `ud2` | the CPU pushes the exception frame outside RAM → EPT violation during event delivery |
//!
//! A triple fault is a VM exit of its own (SDM Vol. 3C, 26.2 "Other Causes
//! of VM Exits"); an EPT violation during event delivery is reported with
//! the IDT-vectoring information (SDM Vol. 3C, 28.2.4 "Information for VM
//! Exits During Event Delivery"). Either way only this guest stops.
#![no_std]
#![no_main]
#![deny(unsafe_op_in_unsafe_fn)]

use core::arch::asm;

use guest_rt::hypercall::{self, InfoKey};
use guest_rt::{exit, idt, println};

guest_rt::entry!(main);

/// One way to crash.
#[derive(Clone, Copy)]
enum Way {
    /// #GP with the hypervisor's empty IDT.
    GpWithoutIdt,
    /// An IDT of present gates with a null selector.
    CorruptedIdt,
    /// An IDT outside the guest's RAM.
    IdtOutsideRam,
    /// A stack outside the guest's RAM when an exception comes.
    StackOutsideRam,
}

/// The ways, one per run, with a description for the output.
const WAYS: [(Way, &str); 4] = [
    (Way::GpWithoutIdt, "#GP (a non-canonical load) with no IDT: triple fault"),
    (Way::CorruptedIdt, "ud2 through a corrupted IDT (null selectors): triple fault"),
    (Way::IdtOutsideRam, "ud2 with the IDT at 0xfffff000, outside RAM: EPT violation during delivery"),
    (Way::StackOutsideRam, "ud2 with RSP past the end of RAM: EPT violation while pushing the frame"),
];

/// The operand of LIDT (SDM Vol. 3A, 6.10 "Interrupt Descriptor Table").
#[repr(C, packed)]
struct DescriptorTablePointer {
    limit: u16,
    base: u64,
}

/// A 64-bit interrupt gate (16 bytes) that is present (P = 1, type 0xE) but
/// names the null selector: using it raises #GP (SDM Vol. 3A, 6.12.1.1).
const CORRUPT_GATE: [u64; 2] = [0x0000_8E00_0000_1000, 0];

/// An IDT of 32 corrupt gates.
#[repr(C, align(16))]
struct CorruptIdt([[u64; 2]; 32]);

static CORRUPT_IDT: CorruptIdt = CorruptIdt([CORRUPT_GATE; 32]);

/// An address with bits 63:47 not all equal.
const NON_CANONICAL: u64 = 0x8000_0000_0000_0000;
/// The last page below 4 GiB: mapped by the guest's page tables, not by EPT.
const OUTSIDE_RAM: u64 = 0xFFFF_F000;

/// Picks this run's way to crash and takes it.
fn main() -> ! {
    let (ram_size, run) = match (hypercall::info(InfoKey::RamSize), hypercall::info(InfoKey::RestartCount)) {
        (Ok(ram_size), Ok(run)) => (ram_size, run),
        (ram_size, run) => {
            println!("FAIL: info(RamSize) -> {ram_size:?}, info(RestartCount) -> {run:?}");
            exit(1)
        }
    };
    let Some(&(way, what)) = usize::try_from(run).ok().and_then(|index| WAYS.get(index)) else {
        println!("FAIL: run {run}: every way has been tried, but the guest was restarted again");
        exit(1)
    };
    println!("run {} of {}: {what}", run + 1, WAYS.len());
    match way {
        Way::GpWithoutIdt => {
            // SAFETY: the load faults (not canonical); with no IDT the guest
            // ends in a triple fault, which is the point. Nothing is written.
            unsafe {
                asm!(
                    "mov {scratch}, qword ptr [{address}]",
                    address = in(reg) NON_CANONICAL,
                    scratch = out(reg) _,
                    options(nostack, readonly)
                )
            };
        }
        Way::CorruptedIdt => load_idt_and_ud2(&raw const CORRUPT_IDT as u64, size_of::<CorruptIdt>()),
        Way::IdtOutsideRam => load_idt_and_ud2(OUTSIDE_RAM, size_of::<CorruptIdt>()),
        Way::StackOutsideRam => {
            idt::install();
            let stack = ram_size.saturating_add(0x1000);
            // SAFETY: the stack pointer is moved outside RAM and UD2 makes
            // the CPU push an exception frame there: an EPT violation stops
            // the guest before anything runs on that stack.
            unsafe { asm!("mov rsp, {stack}", "ud2", stack = in(reg) stack, options(noreturn)) };
        }
    }
    println!("FAIL: the guest survived");
    exit(1)
}

/// Loads an IDT at `base` with room for 32 gates, then raises #UD.
fn load_idt_and_ud2(base: u64, size: usize) {
    let idtr = DescriptorTablePointer { limit: (size - 1) as u16, base };
    // SAFETY: LIDT reads the 10-byte pointer; UD2 then faults and the
    // delivery through the broken IDT ends the guest, which is the point.
    unsafe {
        asm!("lidt [{idtr}]", "ud2", idtr = in(reg) &raw const idtr, options(readonly, nostack, preserves_flags))
    };
}
