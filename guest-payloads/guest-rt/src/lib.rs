//! `guest-rt`: what every 64-bit guest payload of the hypervisor shares.
//!
//! A payload is a `#![no_std]`, `#![no_main]` binary that depends on this
//! crate and provides one function:
//!
//! ```ignore
//! #![no_std]
//! #![no_main]
//!
//! use guest_rt::println;
//!
//! guest_rt::entry!(main);
//!
//! fn main() -> ! {
//!     println!("hello");
//!     guest_rt::exit(0)
//! }
//! ```
//!
//! What the crate provides:
//!
//! - **Entry.** [`_start`], the ELF entry point, sets up the SysV calling
//!   environment, initializes COM1 and calls the payload's `fn() -> !`,
//!   named with [`entry!`].
//! - **Console.** [`print!`] and [`println!`] over a polling 16550 driver
//!   ([`uart::Uart`], which also implements [`core::fmt::Write`]).
//! - **Hypercalls.** [`hypercall`]: the raw `VMCALL` and typed helpers
//!   (`null`, `print`, `exit`, `info`, `yield`), plus the ABI's types.
//! - **Ending.** [`exit`] (port 0xF4) and [`halt`].
//! - **Faults.** [`idt`]: a GDT and an IDT for vectors 0–31 (`idt::install`)
//!   and `idt::expect_fault`, which runs a closure and returns the exception
//!   it raised, if any, instead of crashing. Optional: a payload that never
//!   calls `idt::install` runs with the hypervisor's empty tables, where any
//!   exception ends in a triple fault.
//! - **Checks.** [`checks::Checks`]: a tally printing one `ok:`/`FAIL:` line
//!   per check and a final `checks: N passed, M failed` line, and
//!   `checks::expect_exception`/`expect_gp` for instructions that must fault.
//! - **Privileged instructions.** [`privileged`]: RDMSR/WRMSR, MOV to
//!   CR0/CR4, XSETBV/XGETBV and the VMX instructions, each run under
//!   `idt::expect_fault` and returning a `checks::Attempt`.
//! - **Timing.** [`timing`]: fenced RDTSC, exit round trips measured as a
//!   loop minus its skeleton in batches, and their min/median/max.
//! - **Panics.** This crate defines the `#[panic_handler]`: a panic prints
//!   `panic: <message>` on COM1 and exits with status [`PANIC_STATUS`]
//!   (255). A program has exactly one panic handler, so a payload must not
//!   define its own; every payload panics the same way.
//! - **Layout.** `link.ld` (next to this crate's Cargo.toml): an ET_EXEC image
//!   at guest-physical 0x100000. Its path reaches each payload's build script
//!   as `DEP_GUEST_RT_LINK_SCRIPT` (see `build.rs`); the payload passes it on
//!   with `cargo::rustc-link-arg-bins=-T<path>`.
//!
//! The machine the payload starts on (the hypervisor's long start mode):
//! 64-bit mode with identity-mapped paging, CPL 0, interrupts off, no IDT, a
//! stack just below the reserved region at the top of guest RAM.
#![no_std]
#![deny(unsafe_op_in_unsafe_fn)]
#![warn(missing_docs)]

pub mod checks;
pub mod hypercall;
pub mod idt;
pub mod irq;
pub mod port;
pub mod privileged;
pub mod timing;
pub mod uart;

use core::arch::{asm, naked_asm};
use core::panic::PanicInfo;

use crate::hypercall::EXIT_PORT;
use crate::uart::Uart;

/// The exit status of a payload that panicked.
pub const PANIC_STATUS: u32 = 255;

/// Names the payload's main function, `fn() -> !`, which guest-rt's entry
/// code calls once COM1 is initialized. Use it exactly once, at the top
/// level of the payload's crate root: `guest_rt::entry!(main);`.
///
/// It defines the unmangled symbol `__guest_rt_main`, which [`_start`] calls;
/// the `let` inside checks the function's type at compile time. A payload
/// without `entry!` fails to link (undefined symbol `__guest_rt_main`), one
/// that uses it twice fails to compile.
#[macro_export]
macro_rules! entry {
    ($main:path) => {
        /// The payload's entry hook, called by `guest_rt`'s start code.
        #[unsafe(no_mangle)]
        pub extern "Rust" fn __guest_rt_main() -> ! {
            let main: fn() -> ! = $main;
            main()
        }
    };
}

unsafe extern "Rust" {
    /// Defined by the payload with [`entry!`].
    fn __guest_rt_main() -> !;
}

/// The ELF entry point (`ENTRY(_start)` in `link.ld`, which places it at the
/// image's first byte). The hypervisor provides the stack; all we do is align
/// it as the SysV ABI expects at a call (RSP ≡ 0 mod 16 before `call`), clear
/// the direction flag and the frame pointer (the end of the frame chain), and
/// call `start`, which initializes COM1, calls the payload and never returns.
/// Should it return anyway, we stop with interrupts off.
#[unsafe(naked)]
#[unsafe(no_mangle)]
pub extern "C" fn _start() -> ! {
    naked_asm!(
        "cld",
        "and rsp, -16",
        "xor ebp, ebp",
        "call {start}",
        "2:",
        "cli",
        "hlt",
        "jmp 2b",
        start = sym start,
    )
}

/// The Rust side of the entry: initializes COM1 for [`print!`] and calls the
/// payload's main function.
extern "C" fn start() -> ! {
    Uart::com1().init();
    // SAFETY: the only definition of this symbol is the one `entry!`
    // generates, which has exactly the declared signature.
    unsafe { __guest_rt_main() }
}

/// Ends the guest with `status` by a 4-byte `out` of it to the exit port
/// (0xF4, modelled on QEMU's `isa-debug-exit`, which accepts 1-, 2- and 4-byte
/// writes; the hypervisor takes the written EAX as the status). That write
/// must not return; if it does anyway, we [`halt`].
pub fn exit(status: u32) -> ! {
    // SAFETY: the exit port only ends this guest.
    unsafe { port::outl(EXIT_PORT, status) };
    halt()
}

/// Stops the CPU for good: `cli; hlt` in a loop (a `hlt` with interrupts off
/// only ends on an NMI or SMI, after which we halt again).
pub fn halt() -> ! {
    loop {
        // SAFETY: stopping the CPU touches no memory.
        unsafe { asm!("cli", "hlt", options(nomem, nostack)) };
    }
}

/// Prints `panic: <message>` and exits with status [`PANIC_STATUS`].
///
/// The UART was initialized before the payload's main function ran, and
/// [`Uart`] keeps no state, so printing from here is always possible.
#[panic_handler]
fn panic(info: &PanicInfo<'_>) -> ! {
    println!("panic: {}", info.message());
    exit(PANIC_STATUS)
}
