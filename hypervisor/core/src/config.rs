//! The guest description: everything a front end (the runner's command line,
//! later a TOML file or the console) decides about one guest.
//!
//! Every front end fills a [`GuestConfig`]; the runner encodes the list into the
//! boot blob ([`crate::blob`]) and the kernel decodes the same type back.
//!
//! # Where the image comes from
//!
//! Users name an image either as a built-in payload (`hello64`) or as a file
//! path. Resolving that name to bytes is the runner's business (it has a file
//! system and knows the built-in artifacts), so the path never reaches this
//! crate or the kernel: a [`GuestConfig`] only records the resolved image's
//! [`ImageKind`], and the bytes travel next to it in the boot blob. This keeps
//! the type `Copy`, free of lifetimes and free of heap allocation.
//!
//! # Text forms
//!
//! [`StartMode`] and [`ExpectedOutcome`] parse from and print as the words the
//! command line uses: `real` / `protected` / `long`, and `exit:N` / `crash` /
//! `over-budget`.

use core::fmt;
use core::str::FromStr;

use crate::guest_memory::{round_up_ram_size, BLOCK_SIZE, DEFAULT_RAM_BYTES, MAX_RAM_BYTES};

/// Longest guest name in bytes.
pub const MAX_NAME_LEN: usize = 32;

/// Default time slice, in scheduler ticks (the kernel defines the tick; it is
/// the unit of its preemption timer).
pub const DEFAULT_TIME_SLICE_TICKS: u64 = 1_000_000;

/// Why a guest name was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NameError {
    /// The name is empty.
    Empty,
    /// The name is longer than [`MAX_NAME_LEN`] bytes.
    TooLong {
        /// Its length in bytes.
        len: usize,
    },
    /// The name contains a byte that is not allowed (see [`GuestName`]).
    BadByte {
        /// Position of the byte.
        index: usize,
        /// The byte.
        byte: u8,
    },
}

impl fmt::Display for NameError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Self::Empty => f.write_str("guest name is empty"),
            Self::TooLong { len } => {
                write!(f, "guest name is {len} bytes long, at most {MAX_NAME_LEN} are allowed")
            }
            Self::BadByte { index, byte } => write!(
                f,
                "guest name has byte {byte:#04x} at position {index}: only printable ASCII \
                 without spaces and brackets is allowed"
            ),
        }
    }
}

/// A guest's name: 1 to 32 bytes of printable ASCII (`!` to `~`), excluding
/// `[` and `]`.
///
/// The name prefixes every line of the guest's console output as `[name] text`,
/// so it must not contain spaces, brackets or control characters that would make
/// those lines ambiguous. Stored inline (no heap), so the type is `Copy`.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct GuestName {
    bytes: [u8; MAX_NAME_LEN],
    len: u8,
}

impl GuestName {
    /// Validates and stores a name given as bytes.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, NameError> {
        if bytes.is_empty() {
            return Err(NameError::Empty);
        }
        if bytes.len() > MAX_NAME_LEN {
            return Err(NameError::TooLong { len: bytes.len() });
        }
        if let Some((index, &byte)) = bytes.iter().enumerate().find(|&(_, &byte)| !Self::is_allowed(byte)) {
            return Err(NameError::BadByte { index, byte });
        }
        let mut stored = [0; MAX_NAME_LEN];
        stored[..bytes.len()].copy_from_slice(bytes);
        Ok(Self { bytes: stored, len: bytes.len() as u8 })
    }

    /// Validates and stores a name given as a string.
    pub fn new(name: &str) -> Result<Self, NameError> {
        Self::from_bytes(name.as_bytes())
    }

    /// Whether `byte` may appear in a name.
    pub const fn is_allowed(byte: u8) -> bool {
        byte.is_ascii_graphic() && byte != b'[' && byte != b']'
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        // Only ASCII is ever stored, so this cannot fail; stay panic-free anyway.
        core::str::from_utf8(self.as_bytes()).unwrap_or("?")
    }

    /// The name's bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes[..usize::from(self.len)]
    }
}

impl fmt::Display for GuestName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Debug for GuestName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "GuestName({:?})", self.as_str())
    }
}

impl FromStr for GuestName {
    type Err = NameError;

    fn from_str(text: &str) -> Result<Self, NameError> {
        Self::new(text)
    }
}

/// The format of a guest image, as resolved by the runner.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImageKind {
    /// A static ELF64 x86-64 executable ([`crate::elf`]): loaded segment by
    /// segment, started at its entry point.
    Elf64,
    /// Raw bytes, copied as they are; where they go and where execution starts
    /// is the kernel's convention for the guest's [`StartMode`].
    Flat,
}

impl ImageKind {
    /// Guesses the kind from the image's first bytes: ELF files start with
    /// `\x7fELF`, anything else is taken as flat.
    pub fn detect(image: &[u8]) -> Self {
        if image.starts_with(b"\x7fELF") {
            Self::Elf64
        } else {
            Self::Flat
        }
    }

    /// The kind's name in reports.
    pub const fn name(self) -> &'static str {
        match self {
            Self::Elf64 => "elf64",
            Self::Flat => "flat",
        }
    }
}

/// The processor mode the guest starts in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StartMode {
    /// 16-bit real mode, as after reset (run as an unrestricted guest).
    Real,
    /// 32-bit protected mode with flat segments, paging off.
    Protected,
    /// 64-bit long mode with identity-mapped paging set up by the hypervisor.
    Long,
}

impl StartMode {
    /// All modes, in the order of their blob encoding.
    pub const ALL: [Self; 3] = [Self::Real, Self::Protected, Self::Long];

    /// The mode's word on the command line: `real`, `protected` or `long`.
    pub const fn name(self) -> &'static str {
        match self {
            Self::Real => "real",
            Self::Protected => "protected",
            Self::Long => "long",
        }
    }
}

impl fmt::Display for StartMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A word that is not a start mode or an expected outcome.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ParseError {
    /// Not `real`, `protected` or `long`.
    UnknownStartMode,
    /// Not `exit:N`, `crash` or `over-budget`.
    UnknownOutcome,
    /// `exit:` followed by something that is not a 32-bit number.
    BadExitStatus,
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::UnknownStartMode => "unknown start mode: expected `real`, `protected` or `long`",
            Self::UnknownOutcome => "unknown expected outcome: expected `exit:N`, `crash` or `over-budget`",
            Self::BadExitStatus => "bad exit status: expected a decimal or 0x-prefixed hex number below 2^32",
        })
    }
}

impl FromStr for StartMode {
    type Err = ParseError;

    fn from_str(text: &str) -> Result<Self, ParseError> {
        Self::ALL.into_iter().find(|mode| mode.name() == text).ok_or(ParseError::UnknownStartMode)
    }
}

/// How a guest is expected to end; the run passes when every guest does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExpectedOutcome {
    /// The guest exits (exit hypercall or exit port) with this status.
    Exit(u32),
    /// The guest crashes (triple fault, or an exit the hypervisor cannot handle).
    Crash,
    /// The guest never ends by itself and is stopped when it has used its
    /// CPU-time budget ([`GuestConfig::budget_ticks`]): the expectation of a
    /// guest written to hog the CPU.
    OverBudget,
}

impl ExpectedOutcome {
    /// Whether a guest that ended as `end` met this expectation. A guest that
    /// ran over its budget meets only [`ExpectedOutcome::OverBudget`].
    pub const fn matches(self, end: GuestEnd) -> bool {
        match (self, end) {
            (Self::Exit(expected), GuestEnd::Exited(status)) => expected == status,
            (Self::Crash, GuestEnd::Crashed) | (Self::OverBudget, GuestEnd::OverBudget) => true,
            _ => false,
        }
    }
}

impl Default for ExpectedOutcome {
    /// A clean exit with status 0.
    fn default() -> Self {
        Self::Exit(0)
    }
}

impl fmt::Display for ExpectedOutcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Exit(status) => write!(f, "exit:{status}"),
            Self::Crash => f.write_str("crash"),
            Self::OverBudget => f.write_str("over-budget"),
        }
    }
}

impl FromStr for ExpectedOutcome {
    type Err = ParseError;

    /// Parses `crash`, `over-budget`, or `exit:N` with `N` decimal or
    /// `0x`-prefixed hex.
    fn from_str(text: &str) -> Result<Self, ParseError> {
        match text {
            "crash" => return Ok(Self::Crash),
            "over-budget" => return Ok(Self::OverBudget),
            _ => {}
        }
        let number = text.strip_prefix("exit:").ok_or(ParseError::UnknownOutcome)?;
        let status = match number.strip_prefix("0x").or_else(|| number.strip_prefix("0X")) {
            Some(hex) => u32::from_str_radix(hex, 16),
            None => number.parse::<u32>(),
        };
        status.map(Self::Exit).map_err(|_| ParseError::BadExitStatus)
    }
}

/// How a guest actually ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GuestEnd {
    /// It exited with this status.
    Exited(u32),
    /// It crashed (after using up its restarts).
    Crashed,
    /// It used up its tick budget before ending by itself.
    OverBudget,
}

impl fmt::Display for GuestEnd {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Exited(status) => write!(f, "exit:{status}"),
            Self::Crashed => f.write_str("crash"),
            Self::OverBudget => f.write_str("over budget"),
        }
    }
}

/// Whether a guest's end matched its expectation; `Display` gives the line
/// the kernel reports (`pass` or `expected exit:0, got crash`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// The guest ended as expected.
    Pass,
    /// It did not.
    Fail {
        /// What the configuration expected.
        expected: ExpectedOutcome,
        /// What happened.
        got: GuestEnd,
    },
}

impl Verdict {
    /// Judges one guest's end against its expectation.
    pub const fn judge(expected: ExpectedOutcome, got: GuestEnd) -> Self {
        if expected.matches(got) {
            Self::Pass
        } else {
            Self::Fail { expected, got }
        }
    }

    /// Whether this is [`Verdict::Pass`].
    pub const fn passed(self) -> bool {
        matches!(self, Self::Pass)
    }
}

impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Pass => f.write_str("pass"),
            Self::Fail { expected, got } => write!(f, "expected {expected}, got {got}"),
        }
    }
}

/// A configuration that cannot be run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConfigError {
    /// `ram_bytes` is 0 or not a multiple of 2 MiB (use
    /// [`GuestConfig::set_ram_bytes`], which rounds up).
    RamNotBlockMultiple {
        /// The size given.
        ram_bytes: u64,
    },
    /// `ram_bytes` exceeds [`MAX_RAM_BYTES`].
    RamTooLarge {
        /// The size given.
        ram_bytes: u64,
    },
    /// `time_slice_ticks` is 0.
    ZeroTimeSlice,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Self::RamNotBlockMultiple { ram_bytes } => {
                write!(f, "guest RAM of {ram_bytes} bytes is not a positive multiple of 2 MiB")
            }
            Self::RamTooLarge { ram_bytes } => {
                write!(f, "guest RAM of {ram_bytes} bytes exceeds the maximum of {MAX_RAM_BYTES} bytes (1 GiB)")
            }
            Self::ZeroTimeSlice => f.write_str("the time slice must be at least one tick"),
        }
    }
}

/// Everything about one guest.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GuestConfig {
    /// Its name, used as the prefix of its console lines.
    pub name: GuestName,
    /// The format of its image (the bytes travel separately, see the module docs).
    pub image: ImageKind,
    /// The processor mode it starts in.
    pub start_mode: StartMode,
    /// Size of its RAM in bytes: a multiple of 2 MiB, at most 1 GiB. Set it
    /// with [`set_ram_bytes`](Self::set_ram_bytes) to get the rounding.
    pub ram_bytes: u64,
    /// How many ticks it runs before the scheduler switches to another guest.
    pub time_slice_ticks: u64,
    /// Total ticks it may use before it is stopped as over budget; 0 = unlimited.
    pub budget_ticks: u64,
    /// How many times it is restarted after a crash before the crash is final.
    pub restart_limit: u32,
    /// How it is expected to end.
    pub expected: ExpectedOutcome,
}

impl GuestConfig {
    /// A configuration with the defaults: an ELF image started in long mode,
    /// 2 MiB of RAM, [`DEFAULT_TIME_SLICE_TICKS`], no budget, no restarts,
    /// expected to exit with status 0.
    pub const fn new(name: GuestName) -> Self {
        Self {
            name,
            image: ImageKind::Elf64,
            start_mode: StartMode::Long,
            ram_bytes: DEFAULT_RAM_BYTES,
            time_slice_ticks: DEFAULT_TIME_SLICE_TICKS,
            budget_ticks: 0,
            restart_limit: 0,
            expected: ExpectedOutcome::Exit(0),
        }
    }

    /// Sets the RAM size, rounded up to a multiple of 2 MiB (0 = the 2 MiB default).
    pub fn set_ram_bytes(&mut self, bytes: u64) {
        self.ram_bytes = round_up_ram_size(bytes);
    }

    /// Checks the fields that have limits (RAM size and time slice).
    pub const fn validate(&self) -> Result<(), ConfigError> {
        let ram_bytes = self.ram_bytes;
        if ram_bytes == 0 || !ram_bytes.is_multiple_of(BLOCK_SIZE) {
            return Err(ConfigError::RamNotBlockMultiple { ram_bytes });
        }
        if ram_bytes > MAX_RAM_BYTES {
            return Err(ConfigError::RamTooLarge { ram_bytes });
        }
        if self.time_slice_ticks == 0 {
            return Err(ConfigError::ZeroTimeSlice);
        }
        Ok(())
    }

    /// Whether the guest has a tick budget.
    pub const fn has_budget(&self) -> bool {
        self.budget_ticks != 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::string::ToString;

    fn name(text: &str) -> GuestName {
        GuestName::new(text).unwrap()
    }

    #[test]
    fn names_are_validated() {
        assert_eq!(name("hello64").as_str(), "hello64");
        assert_eq!(name(&"x".repeat(32)).as_bytes().len(), 32);
        assert_eq!(GuestName::new(""), Err(NameError::Empty));
        assert_eq!(GuestName::new(&"x".repeat(33)), Err(NameError::TooLong { len: 33 }));
        assert_eq!(GuestName::new("a b"), Err(NameError::BadByte { index: 1, byte: b' ' }));
        assert_eq!(GuestName::new("a]"), Err(NameError::BadByte { index: 1, byte: b']' }));
        assert_eq!(GuestName::new("\tx"), Err(NameError::BadByte { index: 0, byte: b'\t' }));
        assert!(matches!(GuestName::new("é"), Err(NameError::BadByte { index: 0, .. })));
        assert_eq!("guest-1".parse::<GuestName>(), Ok(name("guest-1")));
        assert_eq!(name("g").to_string(), "g");
    }

    #[test]
    fn start_modes_parse_and_print() {
        for mode in StartMode::ALL {
            assert_eq!(mode.to_string().parse::<StartMode>(), Ok(mode));
        }
        assert_eq!("long".parse::<StartMode>(), Ok(StartMode::Long));
        assert_eq!("Long".parse::<StartMode>(), Err(ParseError::UnknownStartMode));
        assert_eq!("".parse::<StartMode>(), Err(ParseError::UnknownStartMode));
    }

    #[test]
    fn outcomes_parse_and_print() {
        assert_eq!("crash".parse::<ExpectedOutcome>(), Ok(ExpectedOutcome::Crash));
        assert_eq!("exit:0".parse::<ExpectedOutcome>(), Ok(ExpectedOutcome::Exit(0)));
        assert_eq!("exit:42".parse::<ExpectedOutcome>(), Ok(ExpectedOutcome::Exit(42)));
        assert_eq!("exit:0x10".parse::<ExpectedOutcome>(), Ok(ExpectedOutcome::Exit(16)));
        assert_eq!("exit:4294967295".parse::<ExpectedOutcome>(), Ok(ExpectedOutcome::Exit(u32::MAX)));
        assert_eq!("exit:4294967296".parse::<ExpectedOutcome>(), Err(ParseError::BadExitStatus));
        assert_eq!("exit:".parse::<ExpectedOutcome>(), Err(ParseError::BadExitStatus));
        assert_eq!("exit:-1".parse::<ExpectedOutcome>(), Err(ParseError::BadExitStatus));
        assert_eq!("exit".parse::<ExpectedOutcome>(), Err(ParseError::UnknownOutcome));
        assert_eq!("panic".parse::<ExpectedOutcome>(), Err(ParseError::UnknownOutcome));
        assert_eq!("over-budget".parse::<ExpectedOutcome>(), Ok(ExpectedOutcome::OverBudget));
        assert_eq!("over budget".parse::<ExpectedOutcome>(), Err(ParseError::UnknownOutcome));
        assert_eq!("overbudget".parse::<ExpectedOutcome>(), Err(ParseError::UnknownOutcome));
        assert_eq!("Over-Budget".parse::<ExpectedOutcome>(), Err(ParseError::UnknownOutcome));
        assert_eq!(ExpectedOutcome::OverBudget.to_string(), "over-budget");
        for outcome in [ExpectedOutcome::Crash, ExpectedOutcome::Exit(7), ExpectedOutcome::OverBudget] {
            assert_eq!(outcome.to_string().parse::<ExpectedOutcome>(), Ok(outcome));
        }
        assert_eq!(ExpectedOutcome::Exit(3).to_string(), "exit:3");
    }

    #[test]
    fn verdicts_compare_end_with_expectation() {
        use ExpectedOutcome as E;
        use GuestEnd as G;
        assert!(Verdict::judge(E::Exit(0), G::Exited(0)).passed());
        assert!(!Verdict::judge(E::Exit(0), G::Exited(1)).passed());
        assert!(!Verdict::judge(E::Exit(0), G::Crashed).passed());
        assert!(Verdict::judge(E::Crash, G::Crashed).passed());
        assert!(!Verdict::judge(E::Crash, G::Exited(0)).passed());
        assert!(!Verdict::judge(E::Crash, G::OverBudget).passed());
        assert!(!Verdict::judge(E::Exit(0), G::OverBudget).passed());
        assert!(Verdict::judge(E::OverBudget, G::OverBudget).passed());
        assert!(!Verdict::judge(E::OverBudget, G::Crashed).passed());
        assert!(!Verdict::judge(E::OverBudget, G::Exited(0)).passed());
        assert_eq!(Verdict::judge(E::OverBudget, G::Exited(3)).to_string(), "expected over-budget, got exit:3");
        assert_eq!(Verdict::judge(E::Exit(0), G::Exited(0)).to_string(), "pass");
        assert_eq!(Verdict::judge(E::Exit(0), G::Crashed).to_string(), "expected exit:0, got crash");
        assert_eq!(Verdict::judge(E::Crash, G::OverBudget).to_string(), "expected crash, got over budget");
    }

    #[test]
    fn defaults_and_ram_rounding() {
        let mut config = GuestConfig::new(name("g"));
        assert_eq!(config.ram_bytes, 2 << 20);
        assert_eq!(config.expected, ExpectedOutcome::Exit(0));
        assert!(!config.has_budget());
        assert_eq!(config.validate(), Ok(()));
        config.set_ram_bytes(3 << 20);
        assert_eq!(config.ram_bytes, 4 << 20);
        config.set_ram_bytes(0);
        assert_eq!(config.ram_bytes, 2 << 20);
        config.set_ram_bytes(1 << 30);
        assert_eq!(config.validate(), Ok(()));
    }

    #[test]
    fn validation_refuses_unrunnable_configs() {
        let mut config = GuestConfig::new(name("g"));
        config.ram_bytes = 3 << 20;
        assert_eq!(config.validate(), Err(ConfigError::RamNotBlockMultiple { ram_bytes: 3 << 20 }));
        config.ram_bytes = 0;
        assert_eq!(config.validate(), Err(ConfigError::RamNotBlockMultiple { ram_bytes: 0 }));
        config.set_ram_bytes((1 << 30) + 1);
        assert_eq!(config.validate(), Err(ConfigError::RamTooLarge { ram_bytes: (1 << 30) + (2 << 20) }));
        config.set_ram_bytes(u64::MAX);
        assert!(matches!(config.validate(), Err(ConfigError::RamTooLarge { .. })));
        config.set_ram_bytes(0);
        config.time_slice_ticks = 0;
        assert_eq!(config.validate(), Err(ConfigError::ZeroTimeSlice));
    }

    #[test]
    fn image_kind_detection() {
        assert_eq!(ImageKind::detect(b"\x7fELF\x02\x01"), ImageKind::Elf64);
        assert_eq!(ImageKind::detect(b"\xeb\xfe"), ImageKind::Flat);
        assert_eq!(ImageKind::detect(b""), ImageKind::Flat);
    }
}
