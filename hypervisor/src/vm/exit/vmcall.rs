//! VMCALL: the hypercall ABI of [`hypervisor_core::hypercall`]. In VMX
//! non-root operation VMCALL always exits (SDM Vol. 3C, 26.1.2 "Instructions
//! That Cause VM Exits Unconditionally").
//!
//! RAX = call number, RDI/RSI/RDX = arguments, RAX = result (negative = an
//! error code). Every pointer is guest-physical and checked against the
//! guest's RAM before a byte is read; a bad call gets an error code and one
//! report line, never a crash.

use hypervisor_core::hypercall::{check_range, Hypercall, HypercallError, InfoKey, MAX_PRINT_LEN};

use hypervisor_core::vmcs_field::VmcsField;

use crate::vm::guest::{Flow, Guest};
use crate::vm::stats::Action;
use crate::vm::Host;
use crate::vm::CS_LONG_MODE;
use crate::vmx::vcpu::Exit;
use crate::vmx::vmcs::VmxError;

/// Failed hypercalls reported in full per guest; later ones are only counted.
const REPORTED_FAILURES: u64 = 16;

/// Dispatches one hypercall.
#[inline(always)]
pub fn handle(guest: &mut Guest, exit: &Exit, host: &Host) -> Result<Flow, VmxError> {
    // Outside 64-bit mode only the low 32 bits of a register are defined
    // (SDM Vol. 1, 3.4.1.1): a 16- or 32-bit guest passes EAX, EDI, ESI, EDX.
    // Only when an upper half is non-zero does the mode matter (one VMREAD).
    let registers = &guest.vcpu.registers;
    let upper_halves = (registers.rax | registers.rdi | registers.rsi | registers.rdx) >> 32;
    let width = if upper_halves != 0 && guest.vcpu.read(VmcsField::GuestCsAccessRights)? & CS_LONG_MODE == 0 {
        0xFFFF_FFFF
    } else {
        u64::MAX
    };
    let number = registers.rax & width;
    let arguments = [registers.rdi & width, registers.rsi & width, registers.rdx & width];
    let result = match Hypercall::from_number(number) {
        None => Err(HypercallError::UnknownCall),
        Some(Hypercall::Null) => Ok(0),
        Some(Hypercall::Print) => print(guest, arguments[0], arguments[1]),
        Some(Hypercall::Exit) => {
            guest.flush_line();
            return Ok(Flow::Exit(arguments[0] as u32));
        }
        Some(Hypercall::Info) => info(guest, host, arguments[0]),
        Some(Hypercall::Yield) => {
            guest.vcpu.registers.rax = 0;
            guest.vcpu.advance_rip(exit)?;
            return Ok(Flow::Yield(Action::Emulated));
        }
    };
    guest.vcpu.registers.rax = match result {
        Ok(value) => value,
        Err(error) => report_failure(guest, exit, number, arguments, error),
    };
    guest.vcpu.advance_rip(exit)?;
    Ok(Flow::Continue(Action::Emulated))
}

/// Counts a failed hypercall, reports the first few, and returns the error code.
#[cold]
#[inline(never)]
fn report_failure(guest: &mut Guest, exit: &Exit, number: u64, arguments: [u64; 3], error: HypercallError) -> u64 {
    guest.failed_hypercalls += 1;
    if guest.failed_hypercalls <= REPORTED_FAILURES {
        let call = Hypercall::from_number(number).map_or("unknown", Hypercall::name);
        crate::warn!(
            "{}: hypercall {:#x} ({}) at RIP {:#x} with RDI={:#x} RSI={:#x} RDX={:#x}: {} -> returns {}",
            guest.name(),
            number,
            call,
            exit.rip,
            arguments[0],
            arguments[1],
            arguments[2],
            error.describe(),
            error.code() as i64
        );
    }
    error.code()
}

/// `print(gpa, len)`: the bytes go through the guest's console line buffer.
/// Kept out of line: its 4 KiB buffer would make every hypercall probe the stack.
#[inline(never)]
fn print(guest: &mut Guest, gpa: u64, len: u64) -> Result<u64, HypercallError> {
    // Check the range first: an overflowing pointer is a bad address, whatever its length.
    check_range(gpa, len, guest.ram.size())?;
    if len > MAX_PRINT_LEN {
        return Err(HypercallError::TooLong);
    }
    let mut buffer = [0u8; MAX_PRINT_LEN as usize];
    let bytes = &mut buffer[..len as usize];
    guest.ram.read(gpa, bytes).map_err(|_| HypercallError::BadAddress)?;
    guest.output(bytes);
    Ok(len)
}

/// `info(key)`: one value about the guest.
fn info(guest: &Guest, host: &Host, key: u64) -> Result<u64, HypercallError> {
    let key = InfoKey::from_number(key).ok_or(HypercallError::BadArgument)?;
    Ok(match key {
        InfoKey::GuestId => guest.id as u64,
        InfoKey::RamSize => guest.ram.size(),
        InfoKey::TscHz => host.tsc_hz,
        InfoKey::RestartCount => u64::from(guest.restart_count),
        InfoKey::ReservedBase => guest.entry.reserved.map_or(0, |region| region.base),
        InfoKey::ReservedSize => guest.entry.reserved.map_or(0, |region| region.size),
        InfoKey::ExitCount => guest.stats.total_exits,
    })
}
