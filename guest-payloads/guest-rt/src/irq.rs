//! Hardware interrupts for payloads: a 256-entry IDT whose exception gates
//! are [`idt`]'s, plus counting handlers for up to [`SLOTS`] interrupt
//! vectors, each of which acknowledges its interrupt controller (EOI) itself.
//!
//! ```ignore
//! guest_rt::irq::install();
//! guest_rt::irq::register(0, 0x20, guest_rt::irq::Eoi::PicMaster);
//! // program the PIC and PIT, then:
//! guest_rt::irq::enable();
//! while guest_rt::irq::count(0) < 100 { guest_rt::irq::wait(); }
//! ```
//!
//! Each handler records how many times it ran ([`count`]) and the TSC at its
//! latest entry ([`last_tsc`]: for measuring tick rates and latency), sends
//! the EOI its slot was registered with, and returns with `IRETQ`. Any other
//! vector above 31 lands in a handler that only counts it ([`unexpected`]),
//! without an EOI (a spurious PIC or APIC vector needs none).
//!
//! The EOI to the local APIC is a 32-bit store to 0xFEE000B0: the hypervisor
//! traps the APIC page through EPT and decodes that store
//! (`mov dword [rax], 0`, bytes `C7 00 00 00 00 00`).

use core::arch::{asm, naked_asm};
use core::cell::UnsafeCell;
use core::sync::atomic::{AtomicU64, AtomicU8, Ordering};

use crate::idt;

/// How many vectors can have a counting handler.
pub const SLOTS: usize = 4;

/// The local APIC's EOI register (xAPIC page at its reset address).
pub const APIC_EOI: u64 = 0xFEE0_00B0;

/// Which interrupt controller a handler acknowledges.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Eoi {
    /// None (e.g. a self-test vector raised by `INT n`).
    None = 0,
    /// Non-specific EOI (OCW2 0x20) to the master 8259A at port 0x20.
    PicMaster = 1,
    /// Non-specific EOI to the slave (port 0xA0), then to the master.
    PicSlave = 2,
    /// A write of 0 to the local APIC's EOI register.
    Apic = 3,
}

static COUNTS: [AtomicU64; SLOTS] = [const { AtomicU64::new(0) }; SLOTS];
static LAST_TSC: [AtomicU64; SLOTS] = [const { AtomicU64::new(0) }; SLOTS];
static EOI_KINDS: [AtomicU8; SLOTS] = [const { AtomicU8::new(0) }; SLOTS];
static UNEXPECTED: AtomicU64 = AtomicU64::new(0);

/// One IDT gate (SDM Vol. 3A, 6.14.1 "64-Bit Mode IDT").
#[derive(Clone, Copy)]
#[repr(C)]
struct Gate([u64; 2]);

/// The full IDT: 256 gates.
#[repr(C, align(16))]
struct Table(UnsafeCell<[Gate; 256]>);

// SAFETY: written only by `install`/`register` with interrupts off on the
// guest's one CPU.
unsafe impl Sync for Table {}

static TABLE: Table = Table(UnsafeCell::new([Gate([0, 0]); 256]));

#[repr(C, packed)]
struct Pointer {
    limit: u16,
    base: u64,
}

/// A 64-bit interrupt gate to `handler` in [`idt::CODE_SELECTOR`].
fn gate(handler: u64) -> Gate {
    let low =
        (handler & 0xFFFF) | (u64::from(idt::CODE_SELECTOR) << 16) | (0x8E << 40) | ((handler >> 16) & 0xFFFF) << 48;
    Gate([low, handler >> 32])
}

/// Loads [`idt`]'s GDT and exception gates, then a 256-entry IDT with the
/// same exception gates and the catch-all handler on every other vector.
pub fn install() {
    idt::install();
    let mut current = Pointer { limit: 0, base: 0 };
    // SAFETY: SIDT stores 10 bytes into `current`.
    unsafe { asm!("sidt [{}]", in(reg) &raw mut current, options(nostack, preserves_flags)) };
    // SAFETY: interrupts are off; the exception gates are read from the IDT
    // `idt::install` just loaded (32 gates of 16 bytes).
    let table = unsafe { &mut *TABLE.0.get() };
    let base = current.base as *const Gate;
    for (vector, entry) in table.iter_mut().enumerate() {
        *entry = if vector < idt::VECTORS {
            // SAFETY: `vector` < 32, inside the table `idt` installed.
            unsafe { base.add(vector).read() }
        } else {
            gate(unexpected_entry as *const () as usize as u64)
        };
    }
    let pointer = Pointer { limit: (256 * 16 - 1) as u16, base: TABLE.0.get() as u64 };
    // SAFETY: the table is complete and static.
    unsafe { asm!("lidt [{}]", in(reg) &raw const pointer, options(readonly, nostack, preserves_flags)) };
}

/// Points `vector` at the counting handler of `slot`, which acknowledges
/// with `eoi`. Call with interrupts off, after [`install`].
pub fn register(slot: usize, vector: u8, eoi: Eoi) {
    let handlers: [unsafe extern "C" fn(); SLOTS] =
        [slot_entry::<0>, slot_entry::<1>, slot_entry::<2>, slot_entry::<3>];
    let slot = slot.min(SLOTS - 1);
    EOI_KINDS[slot].store(eoi as u8, Ordering::Relaxed);
    // SAFETY: interrupts are off (see above), so no gate is in use.
    let table = unsafe { &mut *TABLE.0.get() };
    table[usize::from(vector)] = gate(handlers[slot] as *const () as usize as u64);
}

/// Interrupts handled by `slot` so far.
pub fn count(slot: usize) -> u64 {
    COUNTS[slot.min(SLOTS - 1)].load(Ordering::Relaxed)
}

/// The TSC at the latest entry into `slot`'s handler.
pub fn last_tsc(slot: usize) -> u64 {
    LAST_TSC[slot.min(SLOTS - 1)].load(Ordering::Relaxed)
}

/// Interrupts that arrived on a vector without a registered handler.
pub fn unexpected() -> u64 {
    UNEXPECTED.load(Ordering::Relaxed)
}

/// STI: the CPU takes interrupts from now on.
pub fn enable() {
    // SAFETY: the IDT has a gate for every vector.
    unsafe { asm!("sti", options(nomem, nostack)) };
}

/// CLI.
pub fn disable() {
    // SAFETY: only masks interrupts.
    unsafe { asm!("cli", options(nomem, nostack)) };
}

/// HLT with interrupts on: returns after the next interrupt has been handled.
/// `sti; hlt` keeps the two together (STI's one-instruction shadow), so an
/// interrupt cannot slip in between and leave the HLT waiting.
pub fn wait() {
    // SAFETY: the IDT has a gate for every vector; HLT resumes after an interrupt.
    unsafe { asm!("sti", "hlt", options(nomem, nostack)) };
}

/// Ticks a timer payload lets pass before it starts timing: while the guests
/// of a run start (each is built when it first gets the CPU), the hypervisor
/// may be busy for longer than a period, which would delay the tick the
/// measurement starts from.
pub const WARM_UP_TICKS: u64 = 5;

/// A rate in thousandths of a hertz: `events` in `tsc_ticks` of a TSC that
/// runs at `tsc_hz`. 0 when no time passed.
pub fn millihertz(events: u64, tsc_ticks: u64, tsc_hz: u64) -> u64 {
    if tsc_ticks == 0 {
        return 0;
    }
    (u128::from(events) * u128::from(tsc_hz) * 1000 / u128::from(tsc_ticks)) as u64
}

/// How far `measured` lies from `expected`, in hundredths of a percent.
pub fn deviation_basis_points(measured: u64, expected: u64) -> u64 {
    if expected == 0 {
        return u64::MAX;
    }
    (u128::from(measured.abs_diff(expected)) * 10_000 / u128::from(expected)) as u64
}

/// The handler of one slot: counts, timestamps, sends its EOI, returns.
#[unsafe(naked)]
unsafe extern "C" fn slot_entry<const SLOT: usize>() {
    naked_asm!(
        "push rax",
        "push rdx",
        "rdtsc",
        "shl rdx, 32",
        "or rax, rdx",
        "mov [rip + {last} + {offset}], rax",
        "lock inc qword ptr [rip + {counts} + {offset}]",
        "movzx eax, byte ptr [rip + {kinds} + {slot}]",
        "cmp eax, 1",
        "jne 2f",
        "mov al, 0x20",
        "out 0x20, al",
        "jmp 9f",
        "2:",
        "cmp eax, 2",
        "jne 3f",
        "mov al, 0x20",
        "out 0xA0, al",
        "out 0x20, al",
        "jmp 9f",
        "3:",
        "cmp eax, 3",
        "jne 9f",
        "mov rax, {apic_eoi}",
        "mov dword ptr [rax], 0",
        "9:",
        "pop rdx",
        "pop rax",
        "iretq",
        last = sym LAST_TSC,
        counts = sym COUNTS,
        kinds = sym EOI_KINDS,
        offset = const SLOT * 8,
        slot = const SLOT,
        apic_eoi = const APIC_EOI,
    )
}

/// The handler of every other vector above 31: counts it and returns.
#[unsafe(naked)]
unsafe extern "C" fn unexpected_entry() {
    naked_asm!("lock inc qword ptr [rip + {unexpected}]", "iretq", unexpected = sym UNEXPECTED)
}
