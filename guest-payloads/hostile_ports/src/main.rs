//! `hostile_ports`: a guest that pokes every I/O port that could hurt the
//! machine, and must find that nothing happens outside itself.
//!
//! Every `IN`/`OUT` of a guest exits to the hypervisor (unconditional I/O
//! exiting or the I/O bitmaps, SDM Vol. 3C, 26.1.3 "Instructions That Cause
//! VM Exits Conditionally"), which emulates the guest's own devices (its
//! 16550 at 0x3F8, the exit port 0xF4) and ignores the rest: reads return
//! all ones, writes go nowhere. So a guest must be unable to:
//!
//! - reprogram the host's interrupt controllers or timer (8259A PIC at
//!   0x20/0x21 and 0xA0/0xA1, 8254 PIT at 0x40–0x43), or read or write its
//!   CMOS/RTC (0x70/0x71);
//! - reach PCI configuration space (0xCF8/0xCFC) or the disks (the IDE
//!   controllers at 0x1F0–0x1F7 and 0x170–0x177);
//! - reset or power off the machine: the keyboard controller's pulse-reset
//!   command (0xFE to port 0x64) and its output port, the reset control
//!   register (0xCF9), the fast A20/reset bit of port 0x92, Bochs' shutdown
//!   port (0x8900, the string `Shutdown`), the ACPI PM1a control ports of
//!   Bochs/QEMU (0xB004, 0x604; SLP_EN with SLP_TYP 0);
//! - write to the host's serial port other than through its own UART model:
//!   it reprograms its COM1 (line control with the divisor latch, modem
//!   control with loopback) and writes text in those states, and writes
//!   text to COM2 (0x2F8); none of it may appear. Only the lines it prints
//!   normally appear, prefixed `[hostile_ports]`.
//!
//! The PIC, PIT and CMOS will become emulated devices of the guest; the
//! values read are therefore printed only as a count, never checked. What is
//! checked is that the guest is still running after each group: it prints a
//! line after every group and ends with status 0 (expected `exit:0`).
#![no_std]
#![no_main]
#![deny(unsafe_op_in_unsafe_fn)]

use guest_rt::port::{inb, inl, outb, outl, outw};
use guest_rt::{exit, println};

guest_rt::entry!(main);

/// One port access.
#[derive(Clone, Copy)]
enum Op {
    /// `in al, dx`.
    In8(u16),
    /// `out dx, al`.
    Out8(u16, u8),
    /// `out dx, ax`.
    Out16(u16, u16),
    /// `in eax, dx`.
    In32(u16),
    /// `out dx, eax`.
    Out32(u16, u32),
}

/// A group of accesses to one device.
struct Group {
    what: &'static str,
    ops: &'static [Op],
}

/// The groups, in order. The reset and power-off attempts come after the
/// devices, so that a machine that does go down shows how far it got.
const GROUPS: [Group; 10] = [
    Group {
        what: "PIC 0x20/0x21/0xA0/0xA1: ICW1-4 with other vectors, all IRQs unmasked, reads",
        ops: &[
            Op::Out8(0x20, 0x11),
            Op::Out8(0x21, 0x40),
            Op::Out8(0x21, 0x04),
            Op::Out8(0x21, 0x01),
            Op::Out8(0xA0, 0x11),
            Op::Out8(0xA1, 0x48),
            Op::Out8(0xA1, 0x02),
            Op::Out8(0xA1, 0x01),
            Op::Out8(0x21, 0x00),
            Op::Out8(0xA1, 0x00),
            Op::Out8(0x20, 0x0B),
            Op::In8(0x20),
            Op::In8(0x21),
            Op::In8(0xA0),
            Op::In8(0xA1),
        ],
    },
    Group {
        what: "PIT 0x40-0x43: channel 0 at the fastest rate, channel 2 and the speaker, reads",
        ops: &[
            Op::Out8(0x43, 0x34),
            Op::Out8(0x40, 0x02),
            Op::Out8(0x40, 0x00),
            Op::Out8(0x43, 0xB6),
            Op::Out8(0x42, 0x01),
            Op::Out8(0x42, 0x00),
            Op::Out8(0x61, 0x03),
            Op::Out8(0x43, 0x00),
            Op::In8(0x40),
            Op::In8(0x41),
            Op::In8(0x42),
            Op::In8(0x43),
        ],
    },
    Group {
        what: "CMOS 0x70/0x71: NMI off, shutdown status, RTC and checksum bytes overwritten",
        ops: &[
            Op::Out8(0x70, 0x8F),
            Op::Out8(0x71, 0x0A),
            Op::Out8(0x70, 0x0B),
            Op::Out8(0x71, 0xFF),
            Op::Out8(0x70, 0x2E),
            Op::Out8(0x71, 0x00),
            Op::Out8(0x70, 0x00),
            Op::In8(0x71),
        ],
    },
    Group {
        what: "PCI 0xCF8/0xCFC: config reads of bus 0, a BAR overwritten, the host bridge's command register cleared",
        ops: &[
            Op::Out32(0xCF8, 0x8000_0000),
            Op::In32(0xCFC),
            Op::Out32(0xCF8, 0x8000_0810),
            Op::Out32(0xCFC, 0xFFFF_FFFF),
            Op::In32(0xCFC),
            Op::Out32(0xCF8, 0x8000_0004),
            Op::Out32(0xCFC, 0),
            Op::Out8(0xCFB, 0x01),
        ],
    },
    Group {
        what: "IDE 0x1F0-0x1F7, 0x170-0x177, 0x3F6: status reads, IDENTIFY, WRITE SECTORS, software reset",
        ops: &[
            Op::In8(0x1F7),
            Op::Out8(0x1F6, 0xA0),
            Op::Out8(0x1F2, 0x01),
            Op::Out8(0x1F3, 0x00),
            Op::Out8(0x1F4, 0x00),
            Op::Out8(0x1F5, 0x00),
            Op::Out8(0x1F7, 0xEC),
            Op::In8(0x1F0),
            Op::Out8(0x1F7, 0x30),
            Op::Out8(0x1F0, 0x00),
            Op::Out8(0x3F6, 0x04),
            Op::In8(0x177),
            Op::Out8(0x176, 0xB0),
            Op::Out8(0x177, 0x30),
            Op::Out8(0x170, 0x00),
            Op::In8(0x171),
        ],
    },
    Group {
        what: "COM1 LCR/MCR/divisor latch and COM2: text written with DLAB set, in loopback, and to 0x2F8",
        ops: &[
            // Divisor latch: DLAB set, "XX" written to DLL/DLM (the divisor, not output).
            Op::Out8(0x3FB, 0x80),
            Op::Out8(0x3F8, b'X'),
            Op::Out8(0x3F9, b'X'),
            Op::Out8(0x3FB, 0x03),
            // Loopback: transmitted bytes return to the receiver, never to the wire.
            Op::Out8(0x3FC, 0x13),
            Op::Out8(0x3F8, b'L'),
            Op::Out8(0x3F8, b'E'),
            Op::Out8(0x3F8, b'A'),
            Op::Out8(0x3F8, b'K'),
            Op::Out8(0x3F8, b'\n'),
            Op::In8(0x3F8),
            Op::In8(0x3F8),
            Op::Out8(0x3FC, 0x03),
            Op::Out8(0x3FA, 0x00),
            // COM2: not this guest's UART.
            Op::Out8(0x2FB, 0x03),
            Op::Out8(0x2F8, b'L'),
            Op::Out8(0x2F8, b'E'),
            Op::Out8(0x2F8, b'A'),
            Op::Out8(0x2F8, b'K'),
            Op::Out8(0x2F8, b'\n'),
        ],
    },
    Group {
        what: "keyboard controller 0x60/0x64: status, output port with the reset line low, pulse reset (0xFE)",
        ops: &[Op::In8(0x64), Op::Out8(0x64, 0xD1), Op::Out8(0x60, 0xFE), Op::Out8(0x64, 0xFE), Op::In8(0x60)],
    },
    Group {
        what: "reset control 0xCF9 (hard and full reset) and port 0x92 (fast A20 and reset)",
        ops: &[
            Op::Out8(0xCF9, 0x02),
            Op::Out8(0xCF9, 0x06),
            Op::Out8(0xCF9, 0x0E),
            Op::In8(0x92),
            Op::Out8(0x92, 0x01),
        ],
    },
    Group {
        what: "Bochs shutdown port 0x8900: \"Shutdown\"",
        ops: &[
            Op::Out8(0x8900, b'S'),
            Op::Out8(0x8900, b'h'),
            Op::Out8(0x8900, b'u'),
            Op::Out8(0x8900, b't'),
            Op::Out8(0x8900, b'd'),
            Op::Out8(0x8900, b'o'),
            Op::Out8(0x8900, b'w'),
            Op::Out8(0x8900, b'n'),
        ],
    },
    Group {
        what: "ACPI PM1a control 0xB004 and 0x604, 0x4004: sleep enable (power off)",
        ops: &[Op::Out16(0xB004, 0x2000), Op::Out16(0x604, 0x2000), Op::Out16(0x4004, 0x3400)],
    },
];

/// Runs every group, printing one line after each, then exits with 0.
fn main() -> ! {
    println!("hostile_ports: I/O to the host's devices, reset and power-off ports");
    let mut total = 0;
    for group in &GROUPS {
        let mut reads = 0;
        for &op in group.ops {
            reads += u32::from(access(op));
        }
        total += group.ops.len();
        println!("survived: {} ({} accesses, {reads} reads)", group.what, group.ops.len());
    }
    println!("hostile_ports: still running after {total} port accesses");
    exit(0)
}

/// Performs one access; returns whether it was a read (the value is
/// dropped: the devices will become emulated, with values of their own).
fn access(op: Op) -> bool {
    // SAFETY: every port access exits to the hypervisor, which either
    // emulates this guest's own device or ignores it (the point of the
    // test); no instruction here touches memory.
    unsafe {
        match op {
            Op::In8(port) => {
                core::hint::black_box(inb(port));
                true
            }
            Op::In32(port) => {
                core::hint::black_box(inl(port));
                true
            }
            Op::Out8(port, value) => {
                outb(port, value);
                false
            }
            Op::Out16(port, value) => {
                outw(port, value);
                false
            }
            Op::Out32(port, value) => {
                outl(port, value);
                false
            }
        }
    }
}
