//! The hypercall ABI: how a guest asks the hypervisor for something.
//!
//! A guest executes `VMCALL` (SDM Vol. 3C, "VM Exits" — VMCALL is one of the
//! instructions that cause VM exits unconditionally) with:
//!
//! | register | meaning |
//! |---|---|
//! | RAX | call number ([`Hypercall`]) |
//! | RDI, RSI, RDX | arguments |
//! | RAX (on return) | result: `>= 0` success, `< 0` an [`HypercallError`] code |
//!
//! Pointers are guest-physical addresses. Every pointer and length is checked
//! against the guest's RAM before anything is read; a bad argument returns an
//! error code to the guest and never stops the hypervisor.

/// Call numbers, passed in RAX.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u64)]
pub enum Hypercall {
    /// Does nothing and returns 0: the cheapest possible exit (benchmark floor).
    Null = 0,
    /// `print(gpa = RDI, len = RSI)`: writes `len` bytes of guest memory to the
    /// console, prefixed with the guest's name. Returns `len`.
    Print = 1,
    /// `exit(status = RDI)`: ends the guest with exit status `status` (low 32 bits).
    /// Does not return.
    Exit = 2,
    /// `info(key = RDI)`: returns one value about the guest, see [`InfoKey`].
    Info = 3,
    /// `yield()`: gives up the rest of the time slice. Returns 0.
    Yield = 4,
}

impl Hypercall {
    /// Decodes a call number; `None` for an unknown number.
    pub const fn from_number(number: u64) -> Option<Self> {
        match number {
            0 => Some(Self::Null),
            1 => Some(Self::Print),
            2 => Some(Self::Exit),
            3 => Some(Self::Info),
            4 => Some(Self::Yield),
            _ => None,
        }
    }

    /// The call's name as used in traces and reports.
    pub const fn name(self) -> &'static str {
        match self {
            Self::Null => "null",
            Self::Print => "print",
            Self::Exit => "exit",
            Self::Info => "info",
            Self::Yield => "yield",
        }
    }
}

/// Keys of the `info` hypercall, passed in RDI.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u64)]
pub enum InfoKey {
    /// The guest's id (its index in the boot's guest list, from 0).
    GuestId = 0,
    /// Size of the guest's RAM in bytes (guest-physical 0 up to this).
    RamSize = 1,
    /// The TSC frequency in Hz as the hypervisor measured or was told it.
    TscHz = 2,
    /// How many times this guest has been restarted (0 on the first run).
    RestartCount = 3,
    /// Guest-physical base of the region the hypervisor reserved at the top of
    /// RAM (long-mode page tables); 0 when there is none.
    ReservedBase = 4,
    /// Size in bytes of that reserved region.
    ReservedSize = 5,
    /// VM exits this guest has caused so far in its current run (this call's
    /// own exit included): a benchmark reads it before and after a workload.
    ExitCount = 6,
}

impl InfoKey {
    /// Decodes an info key; `None` for an unknown key.
    pub const fn from_number(number: u64) -> Option<Self> {
        match number {
            0 => Some(Self::GuestId),
            1 => Some(Self::RamSize),
            2 => Some(Self::TscHz),
            3 => Some(Self::RestartCount),
            4 => Some(Self::ReservedBase),
            5 => Some(Self::ReservedSize),
            6 => Some(Self::ExitCount),
            _ => None,
        }
    }
}

/// Error codes returned in RAX (as negative numbers).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(i64)]
pub enum HypercallError {
    /// RAX held no known call number.
    UnknownCall = -1,
    /// A pointer or pointer + length lies (partly) outside the guest's RAM, or overflows.
    BadAddress = -2,
    /// A length is larger than the call allows ([`MAX_PRINT_LEN`] for `print`).
    TooLong = -3,
    /// An argument has a value the call does not accept (e.g. an unknown info key).
    BadArgument = -4,
}

impl HypercallError {
    /// The value the guest sees in RAX.
    pub const fn code(self) -> u64 {
        self as i64 as u64
    }

    /// Decodes a result register; `None` when it is not an error.
    pub const fn from_result(rax: u64) -> Option<Self> {
        match rax as i64 {
            -1 => Some(Self::UnknownCall),
            -2 => Some(Self::BadAddress),
            -3 => Some(Self::TooLong),
            -4 => Some(Self::BadArgument),
            _ => None,
        }
    }

    /// Short description used in reports.
    pub const fn describe(self) -> &'static str {
        match self {
            Self::UnknownCall => "unknown call number",
            Self::BadAddress => "address outside guest RAM",
            Self::TooLong => "length too large",
            Self::BadArgument => "bad argument",
        }
    }
}

/// The longest buffer one `print` call accepts.
pub const MAX_PRINT_LEN: u64 = 4096;

/// The I/O port that ends the guest with the written value as exit status, like
/// QEMU's `isa-debug-exit` device — for this guest only.
pub const EXIT_PORT: u16 = 0xF4;

/// The guest's virtual serial port (COM1).
pub const SERIAL_PORT: u16 = 0x3F8;

/// Checks that `[gpa, gpa + len)` lies inside guest RAM of `ram_size` bytes,
/// without overflowing. Returns the range's start on success.
pub const fn check_range(gpa: u64, len: u64, ram_size: u64) -> Result<u64, HypercallError> {
    match gpa.checked_add(len) {
        Some(end) if end <= ram_size => Ok(gpa),
        _ => Err(HypercallError::BadAddress),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn call_numbers_round_trip() {
        for call in [Hypercall::Null, Hypercall::Print, Hypercall::Exit, Hypercall::Info, Hypercall::Yield] {
            assert_eq!(Hypercall::from_number(call as u64), Some(call));
        }
        assert_eq!(Hypercall::from_number(5), None);
        assert_eq!(Hypercall::from_number(u64::MAX), None);
    }

    #[test]
    fn info_keys_round_trip() {
        for key in [
            InfoKey::GuestId,
            InfoKey::RamSize,
            InfoKey::TscHz,
            InfoKey::RestartCount,
            InfoKey::ReservedBase,
            InfoKey::ReservedSize,
            InfoKey::ExitCount,
        ] {
            assert_eq!(InfoKey::from_number(key as u64), Some(key));
        }
        assert_eq!(InfoKey::ExitCount as u64, 6);
        assert_eq!(InfoKey::from_number(7), None);
        assert_eq!(InfoKey::from_number(u64::MAX), None);
    }

    #[test]
    fn error_codes_are_negative_and_decode() {
        for error in [
            HypercallError::UnknownCall,
            HypercallError::BadAddress,
            HypercallError::TooLong,
            HypercallError::BadArgument,
        ] {
            assert!((error.code() as i64) < 0);
            assert_eq!(HypercallError::from_result(error.code()), Some(error));
        }
        assert_eq!(HypercallError::from_result(0), None);
        assert_eq!(HypercallError::from_result(4096), None);
    }

    #[test]
    fn range_checks_reject_outside_and_overflow() {
        let ram = 2 << 20;
        assert_eq!(check_range(0, 0, ram), Ok(0));
        assert_eq!(check_range(0x1000, 16, ram), Ok(0x1000));
        assert_eq!(check_range(ram - 1, 1, ram), Ok(ram - 1));
        assert_eq!(check_range(ram - 1, 2, ram), Err(HypercallError::BadAddress));
        assert_eq!(check_range(ram, 0, ram), Ok(ram));
        assert_eq!(check_range(ram + 1, 0, ram), Err(HypercallError::BadAddress));
        assert_eq!(check_range(u64::MAX, 2, ram), Err(HypercallError::BadAddress));
        assert_eq!(check_range(1, u64::MAX, ram), Err(HypercallError::BadAddress));
    }
}
