//! Device models: each a state machine with port (or MMIO) reads and writes,
//! independent of VMX, unit-tested on the host.
//!
//! The kernel intercepts a guest's `IN`/`OUT` on a device's ports (an I/O
//! exit: SDM Vol. 3C, 26.1.3; its exit qualification names the port, 28.2.1)
//! and forwards them to the model's `read`/`write`; each model's
//! `handles(port)` says which ports are its own. Models that keep time take
//! the host TSC as `now_tsc`, so guest time advances while other guests run,
//! as a wall clock does.
//!
//! * [`uart16550`] — the serial port: bytes the guest sends come back from
//!   `write`, bytes for the guest go in with `push_input`.
//! * [`pic8259`] — the master/slave 8259A pair (ports `0x20`/`0x21`,
//!   `0xA0`/`0xA1`, ELCR `0x4D0`/`0x4D1`). Devices drive IRQ lines with
//!   `set_irq_level`/`pulse_irq`; before a VM entry the kernel asks
//!   `pending_interrupt` and, when the guest can take an interrupt, injects
//!   the vector `acknowledge` returns; otherwise it waits for an
//!   interrupt-window exit.
//! * [`pit8254`] — the 8254 timer (ports `0x40`..`0x43`, plus `0x61` for
//!   channel 2's gate and output). `next_irq0_tsc` tells the kernel when the
//!   next timer interrupt is due, `take_irq0_edges` how many happened; the
//!   kernel pulses IRQ 0 on the PIC once for them.
//! * [`cmos_rtc`] — the MC146818 clock and CMOS RAM (ports `0x70`/`0x71`),
//!   started at a given date and advancing with the TSC.
//! * [`lapic`] — the local APIC, behind the xAPIC page at `0xFEE00000` that
//!   the kernel traps through EPT (instructions decoded by
//!   [`crate::mmio_decode`]), with its timer in one-shot, periodic and
//!   TSC-deadline modes.
//! * [`board`] — all of the above wired as on a PC: the PIT on IRQ 0 of the
//!   PIC, the PIC and the local APIC feeding one INTR line; the one
//!   interface the kernel's exit handlers call.
pub mod board;
pub mod cmos_rtc;
pub mod lapic;
pub mod pic8259;
pub mod pit8254;
pub mod uart16550;
