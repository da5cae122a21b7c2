//! A minimal 64-bit IDT for testing instructions that should fault.
//!
//! [`install`] loads a GDT and an IDT with a gate for each of the 32
//! exception vectors (0–31). [`expect_fault`] then runs a closure; if an
//! exception interrupts it, the handler records the vector, the error code
//! and the faulting RIP, and execution continues right after the
//! `expect_fault` call, which returns `Some(`[`Fault`]`)`. Without an
//! exception it returns `None`. An exception outside `expect_fault` is a bug:
//! the handler panics (prints `panic: unexpected exception ...`, exit status
//! 255).
//!
//! ```ignore
//! guest_rt::idt::install();
//! let fault = guest_rt::idt::expect_fault(|| unsafe { core::arch::asm!("ud2") });
//! assert_eq!(fault.map(|f| f.vector), Some(guest_rt::idt::INVALID_OPCODE));
//! ```
//!
//! # Why a GDT too
//!
//! The hypervisor starts the guest with GDTR limit 0. The segment registers'
//! hidden parts are valid (CS is a 64-bit code segment, selector 0x08), so
//! the guest runs, but nothing may *load* a selector: delivering an
//! exception loads CS from the gate's selector, and `IRETQ` loads CS and SS
//! from the stack, and each reads the descriptor from the GDT (SDM Vol. 3A,
//! 6.12.1 "Exception- or Interrupt-Handler Procedures"; SDM Vol. 2A, "IRET").
//! With limit 0 each of those raises #GP, and the exception ends in a triple
//! fault. So [`install`] first loads a three-entry GDT (null, 64-bit code at
//! [`CODE_SELECTOR`] 0x08, data at [`DATA_SELECTOR`] 0x10: the selectors the
//! guest already has) and reloads CS, SS, DS and ES from it, so that the
//! hidden parts match the table. FS and GS are left alone: loading a
//! selector into them would overwrite the FS/GS base.
//!
//! # How a fault is survived
//!
//! `expect_fault` calls the closure through a small assembly trampoline
//! (`guarded_call`), which saves the callee-saved registers, stores its stack
//! pointer and the address of its recovery label in statics, and "arms" the
//! handler. Each gate points at a stub that gives the stack one layout for
//! all vectors (it pushes a 0 in place of the error code for vectors
//! without one, then the vector number) and jumps to a common entry, which
//! calls `dispatch`. If armed, `dispatch` records the [`Fault`] and
//! rewrites the interrupt frame: RIP = the recovery label, RSP = the saved
//! stack pointer, RFLAGS.DF = 0. `IRETQ` thus "returns" into the trampoline,
//! which restores the callee-saved registers and returns 1. The rest of the
//! closure is abandoned, like a `longjmp`: **whatever it captured by value
//! is not dropped** (leaked, which is safe), so use it for closures around a
//! single instruction, not for code that owns resources.
//!
//! Interrupts stay off (the gates are interrupt gates, which clear IF; the
//! payloads never set it). `expect_fault` does not nest: calling it from
//! inside its own closure panics.
//!
//! # Exits
//!
//! None of this causes VM exits by itself (`LGDT`, `LIDT` and segment loads
//! do not exit unless the hypervisor enables "descriptor-table exiting",
//! which it does not). Faults raised by the CPU itself (a non-canonical
//! address, `UD2`) are delivered straight to this IDT: the hypervisor's
//! exception bitmap is 0. Faults the hypervisor *injects* (#GP(0) for a
//! refused MSR access, #UD for a VMX instruction) arrive through the same
//! gates, with RIP at the faulting instruction (SDM Vol. 3C, 27.6 "Event
//! Injection").

use core::arch::{asm, naked_asm};
use core::cell::UnsafeCell;
use core::fmt;
use core::mem::ManuallyDrop;
use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};

/// Vectors with a gate: the 32 exception vectors (SDM Vol. 3A, 6.3.1
/// "External Interrupts", Table 6-1 "Protected-Mode Exceptions and
/// Interrupts"). A vector above 31 lies beyond the IDT limit: raising it
/// causes #GP with error code `vector * 8 + 2` (IDT bit set).
pub const VECTORS: usize = 32;

/// #UD, invalid opcode.
pub const INVALID_OPCODE: u8 = 6;
/// #GP, general protection.
pub const GENERAL_PROTECTION: u8 = 13;
/// #PF, page fault.
pub const PAGE_FAULT: u8 = 14;

/// The code segment selector: GDT index 1, table indicator 0 (GDT), RPL 0.
/// Every gate uses it.
pub const CODE_SELECTOR: u16 = 0x08;
/// The data segment selector (SS, DS, ES): GDT index 2, RPL 0.
pub const DATA_SELECTOR: u16 = 0x10;

/// Whether the CPU pushes an error code for `vector` (SDM Vol. 3A, 6.13
/// "Error Code", and Table 6-1): #DF (8), #TS (10), #NP (11), #SS (12),
/// #GP (13), #PF (14), #AC (17) and #CP (21). The entry stubs are generated
/// from this function, so stubs and [`Fault::error_code`] always agree.
pub const fn has_error_code(vector: u8) -> bool {
    matches!(vector, 8 | 10..=14 | 17 | 21)
}

/// The exception's short name as the SDM writes it (`#GP`, `#UD`, ...).
pub const fn mnemonic(vector: u8) -> &'static str {
    match vector {
        0 => "#DE",
        1 => "#DB",
        2 => "NMI",
        3 => "#BP",
        4 => "#OF",
        5 => "#BR",
        6 => "#UD",
        7 => "#NM",
        8 => "#DF",
        9 => "coprocessor segment overrun",
        10 => "#TS",
        11 => "#NP",
        12 => "#SS",
        13 => "#GP",
        14 => "#PF",
        16 => "#MF",
        17 => "#AC",
        18 => "#MC",
        19 => "#XM",
        20 => "#VE",
        21 => "#CP",
        _ => "reserved vector",
    }
}

/// One exception caught by [`expect_fault`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fault {
    /// The vector (0–31).
    pub vector: u8,
    /// The error code, for the vectors that push one ([`has_error_code`]).
    pub error_code: Option<u64>,
    /// The RIP the CPU pushed: for a fault, the address of the faulting
    /// instruction; for a trap (#BP, #OF, most #DB), the next one.
    pub rip: u64,
}

/// `#GP(0)`, `#UD`, `#PF(0x2)`: the SDM's notation.
impl fmt::Display for Fault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = mnemonic(self.vector);
        match (name, self.error_code) {
            ("reserved vector", _) => write!(f, "vector {}", self.vector),
            (_, None) => f.write_str(name),
            (_, Some(0)) => write!(f, "{name}(0)"),
            (_, Some(code)) => write!(f, "{name}({code:#x})"),
        }
    }
}

// ---------------------------------------------------------------------------
// The tables.

/// A flat 64-bit code segment descriptor: base 0, limit 0xFFFFF pages,
/// P = 1, DPL = 0, S = 1, type 0xB (execute/read, accessed), L = 1, D = 0,
/// G = 1 (SDM Vol. 3A, 3.4.5 "Segment Descriptors" and 5.2.1 "Code-Segment
/// Descriptor in 64-bit Mode"). The accessed bit is preset so the CPU never
/// writes to the table.
const CODE64_DESCRIPTOR: u64 = 0x00AF_9B00_0000_FFFF;
/// A flat data segment descriptor: base 0, limit 0xFFFFF pages, P = 1,
/// DPL = 0, S = 1, type 0x3 (read/write, accessed), D/B = 1, G = 1.
const DATA_DESCRIPTOR: u64 = 0x00CF_9300_0000_FFFF;

/// The GDT: null descriptor, code at [`CODE_SELECTOR`], data at [`DATA_SELECTOR`].
static GDT: [u64; 3] = [0, CODE64_DESCRIPTOR, DATA_DESCRIPTOR];

/// The operand of `LGDT`/`LIDT` in 64-bit mode: a 16-bit limit (offset of
/// the table's last byte) and a 64-bit linear base (SDM Vol. 3A, 3.5.1
/// "Segment Descriptor Tables" and 6.10 "Interrupt Descriptor Table (IDT)").
#[repr(C, packed)]
struct DescriptorTablePointer {
    limit: u16,
    base: u64,
}

/// A 64-bit IDT gate descriptor (SDM Vol. 3A, 6.14.1 "64-Bit Mode IDT",
/// Figure 6-8 "64-Bit IDT Gate Descriptors"): 16 bytes.
#[derive(Clone, Copy)]
#[repr(C)]
struct Gate {
    offset_low: u16,
    selector: u16,
    /// Bits 2:0: interrupt stack table index (0: stay on the current stack).
    ist: u8,
    /// P (bit 7), DPL (bits 6:5), type (bits 3:0).
    attributes: u8,
    offset_middle: u16,
    offset_high: u32,
    reserved: u32,
}

/// P = 1, DPL = 0, type 0xE: 64-bit interrupt gate (clears IF on entry).
const INTERRUPT_GATE: u8 = 0x8E;

impl Gate {
    /// A not-present gate (P = 0).
    const MISSING: Self =
        Self { offset_low: 0, selector: 0, ist: 0, attributes: 0, offset_middle: 0, offset_high: 0, reserved: 0 };

    /// An interrupt gate to `handler` in the code segment `selector`.
    const fn interrupt(handler: u64, selector: u16) -> Self {
        Self {
            offset_low: handler as u16,
            selector,
            ist: 0,
            attributes: INTERRUPT_GATE,
            offset_middle: (handler >> 16) as u16,
            offset_high: (handler >> 32) as u32,
            reserved: 0,
        }
    }
}

/// The IDT. Its gates hold the stubs' addresses, which are only known at
/// link time, so [`install`] fills it in at run time.
#[repr(C, align(16))]
struct Idt(UnsafeCell<[Gate; VECTORS]>);

// SAFETY: only `install` writes the table, with interrupts off on the one
// CPU the guest has; the CPU reads it when delivering an exception.
unsafe impl Sync for Idt {}

static IDT: Idt = Idt(UnsafeCell::new([Gate::MISSING; VECTORS]));

/// Set once [`install`] has loaded the tables.
static INSTALLED: AtomicBool = AtomicBool::new(false);

/// Loads the GDT (reloading CS, SS, DS, ES from it) and the IDT. Call it
/// once before [`expect_fault`]; calling it again is harmless.
pub fn install() {
    let gdtr = DescriptorTablePointer { limit: (size_of_val(&GDT) - 1) as u16, base: GDT.as_ptr() as u64 };
    // SAFETY: the new GDT holds descriptors equivalent to the segments the
    // guest already uses, so reloading the selectors changes nothing but the
    // table they come from. CS can only be loaded by a far transfer: push
    // the selector and the label's address and pop both with a 64-bit far
    // return (`retfq`), which leaves the stack as it was.
    unsafe {
        asm!(
            "lgdt [{gdtr}]",
            "push {code}",
            "lea {scratch}, [rip + 2f]",
            "push {scratch}",
            "retfq",
            "2:",
            "mov {scratch:e}, {data}",
            "mov ss, {scratch:e}",
            "mov ds, {scratch:e}",
            "mov es, {scratch:e}",
            gdtr = in(reg) &raw const gdtr,
            code = const CODE_SELECTOR,
            data = const DATA_SELECTOR,
            scratch = out(reg) _,
            options(preserves_flags),
        );
    }

    // SAFETY: nothing else accesses the table now: interrupts are off, and
    // no exception is expected while we write it (if one came, the old
    // table, if any, would hold the same gates).
    let gates = unsafe { &mut *IDT.0.get() };
    for (gate, stub) in gates.iter_mut().zip(STUBS) {
        *gate = Gate::interrupt(stub as usize as u64, CODE_SELECTOR);
    }
    let idtr = DescriptorTablePointer { limit: (size_of::<[Gate; VECTORS]>() - 1) as u16, base: IDT.0.get() as u64 };
    // SAFETY: the table is complete and lives for the rest of the program.
    unsafe { asm!("lidt [{}]", in(reg) &raw const idtr, options(readonly, nostack, preserves_flags)) };
    INSTALLED.store(true, Ordering::Relaxed);
}

// ---------------------------------------------------------------------------
// Entry stubs and the common entry.

/// The stack as the common entry sees it, lowest address first: what the
/// stub pushed, then what the CPU pushed (SDM Vol. 3A, 6.14.2 "64-Bit Mode
/// Stack Frame"; in 64-bit mode SS:RSP is always pushed).
#[repr(C)]
struct ExceptionFrame {
    vector: u64,
    /// The CPU's error code, or the stub's 0 for vectors without one.
    error_code: u64,
    rip: u64,
    cs: u64,
    rflags: u64,
    rsp: u64,
    ss: u64,
}

/// Defines the entry stub for one vector. For vectors without an error code
/// (see [`has_error_code`]; the assembler's `.if` evaluates it) the stub
/// pushes a 0 in its place; then it pushes the vector and jumps to
/// [`exception_entry`]. Each stub is its own naked function, so its address
/// needs no layout assumptions.
macro_rules! stub {
    ($vector:literal) => {{
        #[unsafe(naked)]
        unsafe extern "C" fn stub() {
            naked_asm!(
                ".if {pushes_error_code} == 0",
                "push 0",
                ".endif",
                "push {vector}",
                "jmp {entry}",
                pushes_error_code = const has_error_code($vector) as u8,
                vector = const $vector,
                entry = sym exception_entry,
            )
        }
        stub
    }};
}

/// The gates' targets, vector by vector.
static STUBS: [unsafe extern "C" fn(); VECTORS] = [
    stub!(0),  // #DE divide error
    stub!(1),  // #DB debug
    stub!(2),  // NMI
    stub!(3),  // #BP breakpoint (INT3)
    stub!(4),  // #OF overflow (INTO)
    stub!(5),  // #BR BOUND range exceeded
    stub!(6),  // #UD invalid opcode
    stub!(7),  // #NM device not available
    stub!(8),  // #DF double fault (error code, always 0)
    stub!(9),  // coprocessor segment overrun (not raised by modern CPUs)
    stub!(10), // #TS invalid TSS (error code)
    stub!(11), // #NP segment not present (error code)
    stub!(12), // #SS stack-segment fault (error code)
    stub!(13), // #GP general protection (error code)
    stub!(14), // #PF page fault (error code; the address is in CR2)
    stub!(15), // reserved
    stub!(16), // #MF x87 floating-point error
    stub!(17), // #AC alignment check (error code)
    stub!(18), // #MC machine check
    stub!(19), // #XM SIMD floating-point exception
    stub!(20), // #VE virtualization exception
    stub!(21), // #CP control protection (error code)
    stub!(22), // reserved
    stub!(23), // reserved
    stub!(24), // reserved
    stub!(25), // reserved
    stub!(26), // reserved
    stub!(27), // reserved
    stub!(28), // reserved
    stub!(29), // reserved
    stub!(30), // reserved
    stub!(31), // reserved
];

/// The common entry. RSP points at an [`ExceptionFrame`]; it is passed to
/// [`dispatch`] in RDI. The CPU aligned RSP to 16 bytes before pushing its
/// five quadwords and the error code (SDM Vol. 3A, 6.14.2), the stub made
/// the count even with the dummy error code and then pushed the vector, so
/// RSP ≡ 8 (mod 16) here; `and rsp, -16` gives the call the alignment the
/// SysV ABI requires without depending on that arithmetic, and RBX (which
/// `dispatch` preserves) remembers the frame. `cld` clears RFLAGS.DF, which
/// the ABI requires at a call and the interrupted code may have set.
///
/// `dispatch` returns only after pointing the frame at the recovery label,
/// so no register of the interrupted code needs to survive: the trampoline
/// restores the callee-saved ones itself. After the call, the vector and
/// error code are dropped and `IRETQ` resumes at the recovery label.
#[unsafe(naked)]
unsafe extern "C" fn exception_entry() {
    naked_asm!(
        "mov rdi, rsp",
        "mov rbx, rsp",
        "and rsp, -16",
        "cld",
        "call {dispatch}",
        "mov rsp, rbx",
        "add rsp, 16",
        "iretq",
        dispatch = sym dispatch,
    )
}

// ---------------------------------------------------------------------------
// Recovery.

/// Set while a closure runs under [`expect_fault`].
static ARMED: AtomicBool = AtomicBool::new(false);
/// The trampoline's stack pointer at the call, restored by the handler.
static RECOVERY_RSP: AtomicU64 = AtomicU64::new(0);
/// The trampoline's recovery label.
static RECOVERY_RIP: AtomicU64 = AtomicU64::new(0);

/// The last fault caught, read by `expect_fault` after the trampoline
/// returned 1.
static FAULT_VECTOR: AtomicU64 = AtomicU64::new(0);
static FAULT_ERROR_CODE: AtomicU64 = AtomicU64::new(0);
static FAULT_RIP: AtomicU64 = AtomicU64::new(0);

/// RFLAGS.DF (bit 10): the ABI requires it clear at every call and return.
const RFLAGS_DF: u64 = 1 << 10;

/// Handles an exception: records it and redirects the frame to the
/// trampoline's recovery label, or panics if no [`expect_fault`] is active.
extern "C" fn dispatch(frame: &mut ExceptionFrame) {
    let vector = frame.vector as u8;
    let fault = Fault { vector, error_code: has_error_code(vector).then_some(frame.error_code), rip: frame.rip };
    if !ARMED.swap(false, Ordering::Relaxed) {
        if vector == PAGE_FAULT {
            panic!("unexpected exception {fault} at rip {:#x}, address {:#x}", fault.rip, read_cr2());
        }
        panic!("unexpected exception {fault} at rip {:#x}", fault.rip);
    }
    FAULT_VECTOR.store(u64::from(vector), Ordering::Relaxed);
    FAULT_ERROR_CODE.store(frame.error_code, Ordering::Relaxed);
    FAULT_RIP.store(frame.rip, Ordering::Relaxed);
    frame.rip = RECOVERY_RIP.load(Ordering::Relaxed);
    frame.rsp = RECOVERY_RSP.load(Ordering::Relaxed);
    frame.rflags &= !RFLAGS_DF;
}

/// CR2: the linear address of the last page fault.
fn read_cr2() -> u64 {
    let cr2: u64;
    // SAFETY: reading CR2 has no side effects.
    unsafe { asm!("mov {}, cr2", out(reg) cr2, options(nomem, nostack, preserves_flags)) };
    cr2
}

/// Calls `body(context)`; returns 0 when it returns, 1 when an exception
/// interrupted it (the handler then resumes at label `2`, with RSP as it was
/// at the call).
///
/// On entry RSP ≡ 8 (mod 16) (the return address); six pushes keep it so,
/// and `sub rsp, 8` aligns it for the call. The callee-saved registers are
/// saved here because an interrupted body never restores them.
#[unsafe(naked)]
unsafe extern "C" fn guarded_call(context: *mut u8, body: unsafe extern "C" fn(*mut u8)) -> u64 {
    naked_asm!(
        "push rbx",
        "push rbp",
        "push r12",
        "push r13",
        "push r14",
        "push r15",
        "sub rsp, 8",
        "mov [rip + {recovery_rsp}], rsp",
        "lea rax, [rip + 2f]",
        "mov [rip + {recovery_rip}], rax",
        "mov byte ptr [rip + {armed}], 1",
        "call rsi",
        "mov byte ptr [rip + {armed}], 0",
        "xor eax, eax",
        "jmp 3f",
        "2:",
        "mov eax, 1",
        "3:",
        "add rsp, 8",
        "pop r15",
        "pop r14",
        "pop r13",
        "pop r12",
        "pop rbp",
        "pop rbx",
        "ret",
        recovery_rsp = sym RECOVERY_RSP,
        recovery_rip = sym RECOVERY_RIP,
        armed = sym ARMED,
    )
}

/// Runs `body`; returns the [`Fault`] if an exception interrupted it, `None`
/// if it ran to the end. See the module documentation for how, and for the
/// rule: `body` should be a thin wrapper around the instruction under test,
/// since a fault abandons the rest of it without dropping what it captured.
///
/// # Panics
/// If [`install`] has not been called, or when called from inside another
/// `expect_fault`'s closure.
pub fn expect_fault<F: FnOnce()>(body: F) -> Option<Fault> {
    assert!(INSTALLED.load(Ordering::Relaxed), "expect_fault needs idt::install() first");
    assert!(!ARMED.load(Ordering::Relaxed), "expect_fault does not nest");

    /// Moves the closure out of its slot and calls it.
    unsafe extern "C" fn call<F: FnOnce()>(context: *mut u8) {
        // SAFETY: `context` is the `ManuallyDrop<F>` below, taken exactly once.
        let body = unsafe { ManuallyDrop::take(&mut *context.cast::<ManuallyDrop<F>>()) };
        body();
    }

    let mut slot = ManuallyDrop::new(body);
    // SAFETY: `call::<F>` matches the slot's type; the trampoline restores
    // every register the ABI says a call preserves, on either path.
    let faulted = unsafe { guarded_call((&raw mut slot).cast(), call::<F>) } != 0;
    faulted.then(|| {
        let vector = FAULT_VECTOR.load(Ordering::Relaxed) as u8;
        Fault {
            vector,
            error_code: has_error_code(vector).then(|| FAULT_ERROR_CODE.load(Ordering::Relaxed)),
            rip: FAULT_RIP.load(Ordering::Relaxed),
        }
    })
}
