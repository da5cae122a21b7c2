//! Port I/O (unconditional I/O exiting: SDM Vol. 3C, 26.1.3 "Instructions That
//! Cause VM Exits Conditionally"). The exit
//! qualification says port, size, direction, whether it is a string instruction
//! and whether it has a REP prefix (SDM Vol. 3C, 28.2.1 "Basic VM-Exit Information", Table "Exit
//! Qualification for I/O Instructions"). Per guest:
//! - 0x3F8–0x3FF: its own 16550 UART; what it transmits is printed with the
//!   guest's name;
//! - 0xF4: like QEMU's `isa-debug-exit`, writing v ends *this guest* with status v;
//! - the PIC (0x20/0x21, 0xA0/0xA1, 0x4D0/0x4D1), PIT (0x40–0x43, 0x61) and
//!   CMOS/RTC (0x70/0x71): its own virtual devices ([`PcBoard`]), one byte
//!   at a time (a 16- or 32-bit access touches consecutive ports, as on a PC);
//! - every other port reads as all ones and ignores writes, counted per port.
//!
//! INS/OUTS (with or without REP) are emulated element by element: the CPU
//! reports the first element's guest-linear address and the address size
//! (VM-exit instruction-information field, SDM Vol. 3C, 28.2.5 "Information
//! for VM Exits Due to Instruction Execution"); each address
//! is translated through the guest's own page tables
//! ([`hypervisor_core::guest_walk`]); a page that is not present gets the guest
//! a #PF, as on bare metal.

use hypervisor_core::devices::board::PcBoard;
use hypervisor_core::devices::uart16550::REGISTER_COUNT;
use hypervisor_core::exit::{InterruptionInfo, IoDirection, IoQualification, StringIoInfo};
use hypervisor_core::guest_walk::{page_fault_error_code, translate, AccessKind};
use hypervisor_core::hypercall::{EXIT_PORT, SERIAL_PORT};
use hypervisor_core::vmcs_field::VmcsField;

use crate::vm::guest::{Crash, Flow, Guest};
use crate::vm::stats::Action;
use crate::vmx::vcpu::Exit;
use crate::vmx::vmcs::VmxError;

/// Elements a REP INS/OUTS moves per exit; the instruction is re-executed for
/// the rest (REP string instructions are restartable), so one guest cannot
/// hold the CPU in a single exit.
const ELEMENTS_PER_EXIT: u64 = 1024;
/// RFLAGS.DF: string instructions walk downwards.
const RFLAGS_DF: u64 = 1 << 10;
const PAGE_FAULT: u8 = 14;

/// What a port write did.
enum PortWrite {
    /// Done; the guest goes on.
    Done,
    /// The guest wrote its exit status to port 0xF4.
    Exit(u32),
    /// The guest programmed one of its timers or interrupt controllers.
    BoardChanged,
}

/// Emulates one IN, OUT, INS or OUTS.
#[inline(always)]
pub fn handle(guest: &mut Guest, exit: &Exit, io: IoQualification) -> Result<Flow, VmxError> {
    if io.is_string() {
        return string_io(guest, exit, io);
    }
    let port = io.port();
    let size = io.size().unwrap_or(4);
    let mask = size_mask(size);
    match io.direction() {
        IoDirection::Out => match port_write(guest, port, size, guest.vcpu.registers.rax & mask) {
            PortWrite::Exit(status) => return Ok(Flow::Exit(status)),
            PortWrite::BoardChanged => guest.board_changed(crate::vmx::read_tsc())?,
            PortWrite::Done => {}
        },
        IoDirection::In => {
            let value = port_read(guest, port, size);
            if PcBoard::handles_port(port) {
                // A PIC poll read acknowledges an interrupt.
                guest.board_changed(crate::vmx::read_tsc())?;
            }
            // IN to AL/AX leaves the other bits of RAX; IN to EAX zeroes bits 63:32.
            let rax = &mut guest.vcpu.registers.rax;
            *rax = if size == 4 { value } else { (*rax & !mask) | value };
        }
    }
    guest.vcpu.advance_rip(exit)?;
    Ok(Flow::Continue(Action::Emulated))
}

fn size_mask(size: u8) -> u64 {
    match size {
        1 => 0xFF,
        2 => 0xFFFF,
        _ => 0xFFFF_FFFF,
    }
}

fn is_uart(port: u16) -> bool {
    (SERIAL_PORT..SERIAL_PORT + REGISTER_COUNT).contains(&port)
}

/// A write of `size` bytes to `port`.
fn port_write(guest: &mut Guest, port: u16, size: u8, value: u64) -> PortWrite {
    if port == EXIT_PORT {
        guest.flush_line();
        return PortWrite::Exit(value as u32);
    }
    if is_uart(port) {
        if let Some(byte) = guest.uart.write(port - SERIAL_PORT, value as u8) {
            guest.output(&[byte]);
        }
        // Keep the console's UART busy while guests print (see `platform::console`).
        crate::platform::console::pump();
    } else if PcBoard::handles_port(port) {
        let now = crate::vmx::read_tsc();
        for index in 0..u16::from(size) {
            let byte = (value >> (8 * index)) as u8;
            guest.board.port_write(port.wrapping_add(index), byte, now);
        }
        return PortWrite::BoardChanged;
    } else {
        guest.stats.count_port(port);
    }
    PortWrite::Done
}

/// A read of `size` bytes from `port`.
fn port_read(guest: &mut Guest, port: u16, size: u8) -> u64 {
    if is_uart(port) {
        u64::from(guest.uart.read(port - SERIAL_PORT))
    } else if PcBoard::handles_port(port) {
        let now = crate::vmx::read_tsc();
        (0..u16::from(size)).fold(0, |value, index| {
            value | u64::from(guest.board.port_read(port.wrapping_add(index), now)) << (8 * index)
        })
    } else {
        guest.stats.count_port(port);
        size_mask(size)
    }
}

/// INS/OUTS, with or without REP.
#[inline(never)]
fn string_io(guest: &mut Guest, exit: &Exit, io: IoQualification) -> Result<Flow, VmxError> {
    let info = StringIoInfo(guest.vcpu.read(VmcsField::ExitInstructionInfo)? as u32);
    let Some(address_bytes) = info.address_size_bytes() else {
        return Ok(Flow::Crash(Crash::Unhandled {
            reason: hypervisor_core::exit::ExitReason::IoInstruction,
            what: "INS/OUTS with an undefined address size",
        }));
    };
    let address_mask = match address_bytes {
        2 => 0xFFFF,
        4 => 0xFFFF_FFFF,
        _ => u64::MAX,
    };
    let size = u64::from(io.size().unwrap_or(4));
    let port = io.port();
    let paging = crate::vm::guest_paging_registers()?;
    let downwards = guest.vcpu.read(VmcsField::GuestRflags)? & RFLAGS_DF != 0;
    let mut linear = guest.vcpu.read(VmcsField::GuestLinearAddress)?;
    let mut remaining = if io.is_rep() { guest.vcpu.registers.rcx & address_mask } else { 1 };
    let out = io.direction() == IoDirection::Out;
    let mut moved = 0;
    let mut flow = None;
    while remaining > 0 && moved < ELEMENTS_PER_EXIT {
        let mut bytes = [0u8; 4];
        let element = &mut bytes[..size as usize];
        // Each byte is translated on its own: an element may straddle two pages.
        let access = if out { AccessKind::Read } else { AccessKind::Write };
        let mut addresses = [0u64; 4];
        for (index, gpa) in addresses[..size as usize].iter_mut().enumerate() {
            let byte_linear = linear.wrapping_add(index as u64);
            match translate(&paging, byte_linear, access, false, |table| guest.read_ram_u64(table)) {
                Ok(translation) => *gpa = translation.gpa,
                Err(error) => {
                    let Some(code) = page_fault_error_code(&paging, &error, access, false) else {
                        return Ok(Flow::Crash(Crash::Unhandled {
                            reason: hypervisor_core::exit::ExitReason::IoInstruction,
                            what: "INS/OUTS through page tables outside guest RAM",
                        }));
                    };
                    crate::vmx::write_cr2(byte_linear);
                    guest.vcpu.inject(InterruptionInfo::hardware_exception_with_error_code(PAGE_FAULT), Some(code))?;
                    write_back_string_registers(guest, io, out, address_mask, moved, size, downwards, remaining)?;
                    return Ok(Flow::Continue(Action::Injected(PAGE_FAULT)));
                }
            }
        }
        if out {
            for (byte, &gpa) in element.iter_mut().zip(addresses.iter()) {
                let mut one = [0u8; 1];
                if guest.ram.read(gpa, &mut one).is_err() {
                    return Ok(Flow::Crash(Crash::Unhandled {
                        reason: hypervisor_core::exit::ExitReason::IoInstruction,
                        what: "OUTS from guest-physical memory outside its RAM",
                    }));
                }
                *byte = one[0];
            }
            let value = u32::from_le_bytes(bytes) as u64;
            if let PortWrite::Exit(status) = port_write(guest, port, size as u8, value) {
                flow = Some(Flow::Exit(status));
                remaining -= 1;
                moved += 1;
                break;
            }
        } else {
            let value = port_read(guest, port, size as u8) as u32;
            for (byte, &gpa) in value.to_le_bytes()[..size as usize].iter().zip(addresses.iter()) {
                if guest.ram.write(gpa, &[*byte]).is_err() {
                    return Ok(Flow::Crash(Crash::Unhandled {
                        reason: hypervisor_core::exit::ExitReason::IoInstruction,
                        what: "INS into guest-physical memory outside its RAM",
                    }));
                }
            }
        }
        linear = if downwards { linear.wrapping_sub(size) } else { linear.wrapping_add(size) };
        remaining -= 1;
        moved += 1;
    }
    write_back_string_registers(guest, io, out, address_mask, moved, size, downwards, remaining)?;
    if PcBoard::handles_port(port) {
        guest.board_changed(crate::vmx::read_tsc())?;
    }
    if let Some(flow) = flow {
        return Ok(flow);
    }
    if remaining == 0 {
        guest.vcpu.advance_rip(exit)?;
    }
    Ok(Flow::Continue(Action::Emulated))
}

/// Moves RSI (OUTS) or RDI (INS) past the elements done and, with REP, stores
/// the remaining count in RCX — within the address size, as the CPU does.
#[allow(clippy::too_many_arguments)]
fn write_back_string_registers(
    guest: &mut Guest,
    io: IoQualification,
    out: bool,
    address_mask: u64,
    moved: u64,
    size: u64,
    downwards: bool,
    remaining: u64,
) -> Result<(), VmxError> {
    let update = |register: u64| -> u64 {
        let delta = moved * size;
        let moved_value = if downwards { register.wrapping_sub(delta) } else { register.wrapping_add(delta) };
        merge(register, moved_value, address_mask)
    };
    let registers = &mut guest.vcpu.registers;
    if out {
        registers.rsi = update(registers.rsi);
    } else {
        registers.rdi = update(registers.rdi);
    }
    if io.is_rep() {
        registers.rcx = merge(registers.rcx, remaining, address_mask);
    }
    Ok(())
}

/// Writes `value` into the `mask` part of `register`: a 16-bit update keeps
/// bits 63:16, a 32-bit one clears bits 63:32 (as 32-bit operations do).
fn merge(register: u64, value: u64, mask: u64) -> u64 {
    match mask {
        0xFFFF => (register & !0xFFFF) | (value & 0xFFFF),
        0xFFFF_FFFF => value & 0xFFFF_FFFF,
        _ => value,
    }
}
