//! Port I/O (unconditional I/O exiting: SDM Vol. 3C, 26.1.3). The exit
//! qualification says port, size, direction and whether it is a string
//! instruction (SDM Vol. 3C, 28.2.1, Table "Exit Qualification for I/O
//! Instructions"). Per guest:
//! - 0x3F8–0x3FF: its own 16550 UART; what it transmits is printed with the
//!   guest's name;
//! - 0xF4: like QEMU's `isa-debug-exit`, writing v ends *this guest* with status v;
//! - every other port reads as all ones and ignores writes, counted per port.

use hypervisor_core::devices::uart16550::REGISTER_COUNT;
use hypervisor_core::exit::{IoDirection, IoQualification};
use hypervisor_core::hypercall::{EXIT_PORT, SERIAL_PORT};

use crate::vm::guest::{Crash, Flow, Guest};
use crate::vm::stats::Action;
use crate::vmx::vcpu::Exit;
use crate::vmx::vmcs::VmxError;

/// Emulates one IN or OUT.
pub fn handle(guest: &mut Guest, exit: &Exit, io: IoQualification) -> Result<Flow, VmxError> {
    if io.is_string() {
        // INS/OUTS need the guest's linear addresses walked through its own
        // page tables; not emulated yet.
        return Ok(Flow::Crash(Crash::Unhandled {
            reason: hypervisor_core::exit::ExitReason::IoInstruction,
            what: "string I/O (INS/OUTS) is not emulated yet",
        }));
    }
    let port = io.port();
    let size = io.size().unwrap_or(4);
    let mask: u64 = match size {
        1 => 0xFF,
        2 => 0xFFFF,
        _ => 0xFFFF_FFFF,
    };
    match io.direction() {
        IoDirection::Out => {
            let value = guest.vcpu.registers.rax & mask;
            if port == EXIT_PORT {
                guest.flush_line();
                return Ok(Flow::Exit(value as u32));
            }
            if (SERIAL_PORT..SERIAL_PORT + REGISTER_COUNT).contains(&port) {
                if let Some(byte) = guest.uart.write(port - SERIAL_PORT, value as u8) {
                    guest.output(&[byte]);
                }
            } else {
                guest.stats.count_port(port);
            }
        }
        IoDirection::In => {
            let value = if (SERIAL_PORT..SERIAL_PORT + REGISTER_COUNT).contains(&port) {
                u64::from(guest.uart.read(port - SERIAL_PORT))
            } else {
                guest.stats.count_port(port);
                mask
            };
            // IN to AL/AX leaves the other bits of RAX; IN to EAX zeroes bits 63:32.
            let rax = &mut guest.vcpu.registers.rax;
            *rax = if size == 4 { value } else { (*rax & !mask) | value };
        }
    }
    guest.vcpu.advance_rip(exit)?;
    Ok(Flow::Continue(Action::Emulated))
}
