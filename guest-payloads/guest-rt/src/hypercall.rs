//! The guest side of the hypercall ABI (`hypervisor_core::hypercall`): the
//! raw `VMCALL` and one typed helper per call.
//!
//! The ABI's types and constants are re-exported, so a payload needs no
//! dependency of its own on `hypervisor-core`.

use core::arch::asm;
use core::fmt;

pub use hypervisor_core::hypercall::{Hypercall, HypercallError, InfoKey, EXIT_PORT, MAX_PRINT_LEN, SERIAL_PORT};

/// Executes one hypercall: `VMCALL` with
///
/// | register | in | out |
/// |---|---|---|
/// | RAX | call number ([`Hypercall`], or any number to test rejection) | result: `>= 0` success, `< 0` a [`HypercallError`] code |
/// | RDI | argument 0 | unchanged |
/// | RSI | argument 1 | unchanged |
/// | RDX | argument 2 | unchanged |
///
/// `VMCALL` in VMX non-root operation always causes a VM exit (SDM Vol. 3C,
/// 26.1.2 "Instructions That Cause VM Exits Unconditionally"); the hypervisor
/// handles the call, advances RIP past the instruction and resumes us.
/// Pointer arguments are guest-physical addresses, which equal our virtual
/// addresses (identity-mapped paging).
///
/// Safe to call: no hypercall writes guest memory (the `asm!` still tells the
/// compiler that memory may be read, so buffers are written out before the
/// call), and the worst any call can do is end the guest (`exit`).
#[inline(always)]
pub fn vmcall(number: u64, arg0: u64, arg1: u64, arg2: u64) -> u64 {
    let mut rax = number;
    // SAFETY: see above; VMCALL does not touch the stack.
    unsafe {
        asm!(
            "vmcall",
            inout("rax") rax,
            in("rdi") arg0,
            in("rsi") arg1,
            in("rdx") arg2,
            options(nostack),
        );
    }
    rax
}

/// Splits a result register into success value or error.
#[inline]
pub fn decode(rax: u64) -> Result<u64, HypercallError> {
    match HypercallError::from_result(rax) {
        Some(error) => Err(error),
        None => Ok(rax),
    }
}

/// `null()`: returns 0.
#[inline]
pub fn null() -> Result<u64, HypercallError> {
    decode(vmcall(Hypercall::Null as u64, 0, 0, 0))
}

/// `print(gpa, len)` with raw arguments, so that bad ones can be tried.
#[inline]
pub fn print_raw(gpa: u64, len: u64) -> Result<u64, HypercallError> {
    decode(vmcall(Hypercall::Print as u64, gpa, len, 0))
}

/// `print(bytes)`: the hypervisor writes `bytes` to its console with this
/// guest's name as prefix. Returns the number of bytes printed.
#[inline]
pub fn print(bytes: &[u8]) -> Result<u64, HypercallError> {
    print_raw(bytes.as_ptr() as u64, bytes.len() as u64)
}

/// `info(key)` with a raw key, so that unknown ones can be tried.
#[inline]
pub fn info_raw(key: u64) -> Result<u64, HypercallError> {
    decode(vmcall(Hypercall::Info as u64, key, 0, 0))
}

/// `info(key)`.
#[inline]
pub fn info(key: InfoKey) -> Result<u64, HypercallError> {
    info_raw(key as u64)
}

/// `yield()`: returns 0.
#[inline]
pub fn yield_now() -> Result<u64, HypercallError> {
    decode(vmcall(Hypercall::Yield as u64, 0, 0, 0))
}

/// `exit(status)`: ends the guest with `status` through the hypercall (the
/// other way out is [`crate::exit`], through the exit port). Does not return;
/// should the hypervisor resume us anyway, we stop with [`crate::halt`].
pub fn exit(status: u32) -> ! {
    vmcall(Hypercall::Exit as u64, u64::from(status), 0, 0);
    crate::halt()
}

/// What a check expects a hypercall to return (see
/// [`crate::checks::Checks::expect`]).
#[derive(Debug, Clone, Copy)]
pub enum Expect {
    /// Exactly this value (shown in decimal).
    Value(u64),
    /// Exactly this value (shown in hex).
    Hex(u64),
    /// A value > 0 (not shown: it varies between machines).
    Positive,
    /// This error.
    Error(HypercallError),
}

impl Expect {
    /// Whether `got` is what is expected.
    pub fn accepts(self, got: Result<u64, HypercallError>) -> bool {
        match (self, got) {
            (Self::Value(want) | Self::Hex(want), Ok(value)) => value == want,
            (Self::Positive, Ok(value)) => (value as i64) > 0,
            (Self::Error(want), Err(error)) => error == want,
            _ => false,
        }
    }
}

impl fmt::Display for Expect {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Value(value) => write!(f, "{value}"),
            Self::Hex(value) => write!(f, "{value:#x}"),
            Self::Positive => f.write_str("positive"),
            Self::Error(error) => write!(f, "{error:?}"),
        }
    }
}

/// A hypercall result as shown in a failure line: small values in decimal,
/// others in hex, errors by name.
pub struct Shown(pub Result<u64, HypercallError>);

impl fmt::Display for Shown {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Ok(value) if value < 0x1_0000 => write!(f, "{value}"),
            Ok(value) => write!(f, "{value:#x}"),
            Err(error) => write!(f, "{error:?}"),
        }
    }
}
