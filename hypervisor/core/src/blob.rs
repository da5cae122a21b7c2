//! The boot blob: the guest list and guest images, as the runner hands them to
//! the kernel in the bootloader's ramdisk.
//!
//! The runner writes it with [`encoded_len`] and [`write_blob`] (into a buffer
//! it allocates; nothing here needs a heap); the kernel reads it in place with
//! [`BootBlob::parse`], which checks every length and offset before anything is
//! used, so a damaged or hostile ramdisk yields a [`BlobError`], never a panic.
//!
//! # Layout (version 2)
//!
//! All integers are little-endian. Offsets are from the start of the blob.
//!
//! **Header** ([`HEADER_LEN`] = 48 bytes):
//!
//! | offset | size | field | meaning |
//! |---|---|---|---|
//! | 0 | 8 | `magic` | `b"HVBLOB01"` |
//! | 8 | 4 | `version` | [`VERSION`] = 2 |
//! | 12 | 4 | `header_len` | where the records start; ≥ 48 (48 when written) |
//! | 16 | 8 | `total_len` | length of the blob; bytes after it (ramdisk padding) are ignored |
//! | 24 | 8 | `checksum` | FNV-1a 64 of bytes `[0, total_len)` with this field read as zero |
//! | 32 | 4 | `guest_count` | number of guest records, at most [`MAX_GUESTS`] |
//! | 36 | 4 | `flags` | bits 7:0 kernel log level, bit 8 capability explorer, bits 15:9 entry rule to break, bits 23:16 trace selection, bits 31:24 single-step selection ([`BlobSettings`]); an unknown rule id is refused |
//! | 40 | 4 | `features` | bit 0: run the benchmark workload natively before the guests (`--bench`); other bits refused |
//! | 44 | 4 | reserved | written as 0, ignored |
//!
//! **Guest records**, `guest_count` of them from `header_len` on, each
//! [`RECORD_LEN`] = 88 bytes:
//!
//! | offset | size | field | meaning |
//! |---|---|---|---|
//! | 0 | 32 | `name` | the name's bytes, zero-padded |
//! | 32 | 1 | `name_len` | 1 to 32 |
//! | 33 | 1 | `start_mode` | 0 real, 1 protected, 2 long |
//! | 34 | 1 | `expected_kind` | 0 exit (status below), 1 crash, 2 over budget |
//! | 35 | 1 | `image_kind` | 0 ELF64, 1 flat |
//! | 36 | 4 | `expected_status` | exit status expected (0 otherwise) |
//! | 40 | 8 | `ram_bytes` | multiple of 2 MiB, at most 1 GiB |
//! | 48 | 8 | `time_slice_ticks` | ≥ 1 |
//! | 56 | 8 | `budget_ticks` | 0 = unlimited |
//! | 64 | 4 | `restart_limit` | |
//! | 68 | 4 | reserved | written as 0, ignored |
//! | 72 | 8 | `image_offset` | where the image starts; after the last record |
//! | 80 | 8 | `image_len` | its length; `offset + len ≤ total_len` |
//!
//! **Images** follow the records; the writer starts each one at a multiple of
//! [`IMAGE_ALIGN`] and zero-fills the gaps.
//!
//! # Why the checksum covers the whole blob
//!
//! The checksum is computed over all `total_len` bytes, with the checksum field
//! itself counted as eight zero bytes. Covering the header too means a damaged
//! `guest_count` or `flags` is caught by the checksum, not just by the range
//! checks. FNV-1a is not cryptographic: it catches accidents (a truncated or
//! stale ramdisk), not attackers — the range checks handle those.

use core::fmt;

use crate::config::{ConfigError, ExpectedOutcome, GuestConfig, GuestName, ImageKind, NameError, StartMode};

/// The first eight bytes of every blob.
pub const MAGIC: [u8; 8] = *b"HVBLOB01";
/// The format version this code reads and writes. Version 2 added the
/// `features` word (the `flags` word of version 1 was full).
pub const VERSION: u32 = 2;
/// Size of the version-2 header in bytes.
pub const HEADER_LEN: usize = 48;
/// Size of one guest record in bytes.
pub const RECORD_LEN: usize = 88;
/// The most guests one blob may describe. The trace and single-step
/// selections name one guest in a byte (index + 1; 0 = none, 0xFF = all), so
/// the limit stays below 254.
pub const MAX_GUESTS: usize = 250;
const _: () = assert!(MAX_GUESTS < 0xFE);
/// The writer starts every image at a multiple of this many bytes.
pub const IMAGE_ALIGN: usize = 16;

/// Bits of the header's `flags` word that carry the log level.
const FLAGS_LOG_LEVEL_MASK: u32 = 0xFF;
/// Bit 8 of the header's `flags`: print the capability explorer.
const FLAGS_CAPS_REPORT: u32 = 1 << 8;
/// Bits 15:9 of the header's `flags`: the id of a VM-entry rule the first
/// guest's VMCS is made to break (`--break-entry`, [`crate::entry_check::EntryRule`]), 0 = none.
const FLAGS_BREAK_ENTRY_SHIFT: u32 = 9;
/// Bits 23:16 of the header's `flags`: which guests to trace.
const FLAGS_TRACE_SHIFT: u32 = 16;
/// Bits 31:24 of the header's `flags`: which guest to single-step.
const FLAGS_STEP_SHIFT: u32 = 24;
/// Every bit version 1 defines.
const FLAGS_KNOWN: u32 = FLAGS_LOG_LEVEL_MASK
    | FLAGS_CAPS_REPORT
    | (0x7F << FLAGS_BREAK_ENTRY_SHIFT)
    | (0xFF << FLAGS_TRACE_SHIFT)
    | (0xFF << FLAGS_STEP_SHIFT);
// The fields tile the whole word: a new setting goes into `features`.
const _: () = assert!(FLAGS_KNOWN == u32::MAX);

/// Bit 0 of the header's `features` word: the kernel runs the benchmark
/// workload ([`crate::workload`]) natively before it starts the guests.
const FEATURE_NATIVE_WORKLOAD: u32 = 1 << 0;
/// Every bit of `features` version 2 defines.
const FEATURES_KNOWN: u32 = FEATURE_NATIVE_WORKLOAD;

/// Which guests print one line per VM exit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TraceSelection {
    /// No guest (the default).
    #[default]
    None,
    /// The guest at this index of the blob.
    Guest(u8),
    /// Every guest.
    All,
}

impl TraceSelection {
    /// Whether the guest at `index` is traced.
    pub const fn includes(self, index: usize) -> bool {
        match self {
            Self::None => false,
            Self::Guest(traced) => traced as usize == index,
            Self::All => true,
        }
    }

    /// The encoding in bits 23:16 of `flags`: 0 none, 0xFF all, n + 1 guest n.
    /// Guests 254 and 255 (beyond [`MAX_GUESTS`], so never in a blob) saturate
    /// to 0xFF: `index + 1` would overflow for 255 (a panic in debug builds, and
    /// in release a wrap to 0 that silently turned tracing off).
    const fn to_byte(self) -> u8 {
        match self {
            Self::None => 0,
            Self::Guest(index) => index.saturating_add(1),
            Self::All => 0xFF,
        }
    }

    const fn from_byte(byte: u8) -> Self {
        match byte {
            0 => Self::None,
            0xFF => Self::All,
            n => Self::Guest(n - 1),
        }
    }
}

/// Which guest runs one instruction at a time (`--step GUEST`): at most one,
/// since every instruction prints a line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum StepSelection {
    /// No guest (the default).
    #[default]
    None,
    /// The guest at this index of the blob.
    Guest(u8),
}

impl StepSelection {
    /// Whether the guest at `index` is single-stepped.
    pub const fn includes(self, index: usize) -> bool {
        match self {
            Self::None => false,
            Self::Guest(stepped) => stepped as usize == index,
        }
    }

    /// The encoding in bits 31:24 of `flags`: 0 none, n + 1 guest n.
    const fn to_byte(self) -> u8 {
        match self {
            Self::None => 0,
            Self::Guest(index) => index.saturating_add(1),
        }
    }

    const fn from_byte(byte: u8) -> Self {
        match byte {
            0 => Self::None,
            n => Self::Guest(n - 1),
        }
    }
}

/// Run-wide settings, carried in the header's `flags` word: bits 7:0 the log
/// level, bit 8 the capability explorer, bits 23:16 the trace selection,
/// bits 31:24 the single-step selection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct BlobSettings {
    /// How much the kernel logs: 0 = the kernel's default; the runner sends
    /// 1 = error, 2 = warn, 3 = info, 4 = debug. Stored as is; the kernel's
    /// console decides what the numbers mean.
    pub log_level: u8,
    /// Print every VMX capability MSR decoded, control by control.
    pub caps_report: bool,
    /// Which guests print a line per VM exit.
    pub trace: TraceSelection,
    /// Which guest is single-stepped (bits 31:24).
    pub step: StepSelection,
    /// The id of the VM-entry rule to break in the first guest's VMCS (bits
    /// 15:9; 0 = none): see [`crate::entry_check::EntryRule::from_id`].
    pub break_entry: u8,
    /// Run the benchmark workload natively in VMX root operation before the
    /// guests start (`features` bit 0; `--bench`).
    pub native_workload: bool,
}

impl BlobSettings {
    /// The header's `flags` word for these settings.
    pub const fn to_flags(self) -> u32 {
        let caps = if self.caps_report { FLAGS_CAPS_REPORT } else { 0 };
        self.log_level as u32
            | caps
            | ((self.trace.to_byte() as u32) << FLAGS_TRACE_SHIFT)
            | ((self.step.to_byte() as u32) << FLAGS_STEP_SHIFT)
            | (((self.break_entry & 0x7F) as u32) << FLAGS_BREAK_ENTRY_SHIFT)
    }

    /// Decodes the header's `flags` word; unknown bits give
    /// [`BlobError::UnsupportedFlags`].
    pub const fn from_flags(flags: u32) -> Result<Self, BlobError> {
        let break_entry = ((flags >> FLAGS_BREAK_ENTRY_SHIFT) & 0x7F) as u8;
        let unknown_rule = break_entry != 0 && crate::entry_check::EntryRule::from_id(break_entry).is_none();
        // Every bit of `flags` has a meaning now (see `FLAGS_KNOWN`): only an
        // unknown entry rule is left to refuse.
        if unknown_rule {
            return Err(BlobError::UnsupportedFlags { flags });
        }
        Ok(Self {
            log_level: (flags & FLAGS_LOG_LEVEL_MASK) as u8,
            caps_report: flags & FLAGS_CAPS_REPORT != 0,
            trace: TraceSelection::from_byte((flags >> FLAGS_TRACE_SHIFT) as u8),
            step: StepSelection::from_byte((flags >> FLAGS_STEP_SHIFT) as u8),
            break_entry,
            native_workload: false,
        })
    }

    /// The header's `features` word for these settings.
    pub const fn to_features(self) -> u32 {
        if self.native_workload {
            FEATURE_NATIVE_WORKLOAD
        } else {
            0
        }
    }

    /// Decodes the header's `flags` and `features` words; unknown bits give
    /// [`BlobError::UnsupportedFlags`] or [`BlobError::UnsupportedFeatures`].
    pub const fn from_words(flags: u32, features: u32) -> Result<Self, BlobError> {
        if features & !FEATURES_KNOWN != 0 {
            return Err(BlobError::UnsupportedFeatures { features });
        }
        match Self::from_flags(flags) {
            Ok(settings) => Ok(Self { native_workload: features & FEATURE_NATIVE_WORKLOAD != 0, ..settings }),
            Err(error) => Err(error),
        }
    }
}

/// Byte range of the checksum field in the header.
const CHECKSUM_FIELD: core::ops::Range<usize> = 24..32;

/// Why a blob was refused (or could not be written).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BlobError {
    /// Fewer bytes than a header.
    TooShort {
        /// Bytes available.
        len: usize,
        /// Bytes needed.
        needed: usize,
    },
    /// The first eight bytes are not `HVBLOB01`.
    BadMagic {
        /// The bytes found.
        found: [u8; 8],
    },
    /// A version this code does not read.
    UnsupportedVersion {
        /// Version in the header.
        found: u32,
        /// Version supported ([`VERSION`]).
        expected: u32,
    },
    /// `header_len` is shorter than a header ([`HEADER_LEN`]) or beyond `total_len`.
    BadHeaderLen {
        /// The value found.
        header_len: u32,
    },
    /// `total_len` does not fit in the bytes given (a truncated ramdisk), or is
    /// shorter than the header.
    LengthMismatch {
        /// Length claimed by the header.
        declared: u64,
        /// Bytes actually available.
        available: usize,
    },
    /// The checksum does not match the contents.
    ChecksumMismatch {
        /// Checksum in the header.
        stored: u64,
        /// Checksum of the bytes.
        computed: u64,
    },
    /// `flags` bits this version does not know.
    UnsupportedFlags {
        /// The flags found.
        flags: u32,
    },
    /// `features` bits this version does not know.
    UnsupportedFeatures {
        /// The features word found.
        features: u32,
    },
    /// More guests than [`MAX_GUESTS`].
    TooManyGuests {
        /// Number of guests claimed or given.
        count: usize,
        /// The limit.
        max: usize,
    },
    /// A guest record does not fit before `total_len` (or the index does not exist).
    RecordOutOfBounds {
        /// Index of the guest.
        guest: usize,
    },
    /// A guest's image does not lie between the records and `total_len`, or
    /// `offset + len` overflows.
    ImageOutOfBounds {
        /// Index of the guest.
        guest: usize,
        /// Image offset in the record.
        offset: u64,
        /// Image length in the record.
        len: u64,
    },
    /// A guest's name is not valid.
    BadName {
        /// Index of the guest.
        guest: usize,
        /// What is wrong with it.
        error: NameError,
    },
    /// A start-mode byte that is not 0, 1 or 2.
    BadStartMode {
        /// Index of the guest.
        guest: usize,
        /// The byte found.
        value: u8,
    },
    /// An expected-outcome byte that is not 0, 1 or 2.
    BadExpected {
        /// Index of the guest.
        guest: usize,
        /// The byte found.
        value: u8,
    },
    /// An image-kind byte that is not 0 or 1.
    BadImageKind {
        /// Index of the guest.
        guest: usize,
        /// The byte found.
        value: u8,
    },
    /// A guest's configuration fails [`GuestConfig::validate`].
    BadConfig {
        /// Index of the guest.
        guest: usize,
        /// What is wrong with it.
        error: ConfigError,
    },
    /// Writing: the output buffer is too small.
    BufferTooSmall {
        /// Bytes needed ([`encoded_len`]).
        needed: usize,
        /// Bytes given.
        available: usize,
    },
    /// Writing: the blob would be larger than the address space.
    TooLarge,
}

impl fmt::Display for BlobError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Self::TooShort { len, needed } => {
                write!(f, "boot blob too short: {len} bytes, a header needs {needed}")
            }
            Self::BadMagic { found } => {
                write!(f, "boot blob has bad magic {found:02x?} (expected \"HVBLOB01\")")
            }
            Self::UnsupportedVersion { found, expected } => write!(
                f,
                "boot blob version {found} is not supported (expected {expected}): \
                 rebuild the runner and the kernel together"
            ),
            Self::BadHeaderLen { header_len } => {
                write!(f, "boot blob header length {header_len} is below {HEADER_LEN} or beyond the blob")
            }
            Self::LengthMismatch { declared, available } => {
                write!(f, "boot blob claims {declared} bytes but {available} are available (truncated?)")
            }
            Self::ChecksumMismatch { stored, computed } => {
                write!(f, "boot blob checksum mismatch: stored {stored:#018x}, computed {computed:#018x}")
            }
            Self::UnsupportedFlags { flags } => {
                write!(f, "boot blob has unknown flags {flags:#x}")
            }
            Self::UnsupportedFeatures { features } => {
                write!(f, "boot blob has unknown feature bits {features:#x}")
            }
            Self::TooManyGuests { count, max } => {
                write!(f, "boot blob has {count} guests, at most {max} are supported")
            }
            Self::RecordOutOfBounds { guest } => {
                write!(f, "guest {guest}: record lies outside the boot blob")
            }
            Self::ImageOutOfBounds { guest, offset, len } => write!(
                f,
                "guest {guest}: image at offset {offset:#x} with length {len:#x} lies outside \
                 the boot blob's image area"
            ),
            Self::BadName { guest, error } => write!(f, "guest {guest}: {error}"),
            Self::BadStartMode { guest, value } => {
                write!(f, "guest {guest}: unknown start mode code {value}")
            }
            Self::BadExpected { guest, value } => {
                write!(f, "guest {guest}: unknown expected-outcome code {value}")
            }
            Self::BadImageKind { guest, value } => {
                write!(f, "guest {guest}: unknown image kind code {value}")
            }
            Self::BadConfig { guest, error } => write!(f, "guest {guest}: {error}"),
            Self::BufferTooSmall { needed, available } => {
                write!(f, "boot blob needs {needed} bytes but the buffer has {available}")
            }
            Self::TooLarge => f.write_str("boot blob would be larger than the address space"),
        }
    }
}

/// One guest in a blob: its configuration and its image bytes.
///
/// The writer takes a slice of these; the parser yields them, with `image`
/// borrowed from the blob (no copy).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BlobGuest<'a> {
    /// The guest's configuration.
    pub config: GuestConfig,
    /// The guest's image.
    pub image: &'a [u8],
}

/// FNV-1a, 64-bit: offset basis and prime from the FNV reference.
const FNV_OFFSET_BASIS: u64 = 0xcbf2_9ce4_8422_2325;
const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;

fn fnv1a_update(mut hash: u64, bytes: &[u8]) -> u64 {
    for &byte in bytes {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(FNV_PRIME);
    }
    hash
}

/// The checksum of a blob of `blob.len()` bytes, the checksum field read as zero.
/// `blob` must be at least [`HEADER_LEN`] long.
fn checksum_of(blob: &[u8]) -> u64 {
    let (before, rest) = blob.split_at(CHECKSUM_FIELD.start.min(blob.len()));
    let after = rest.get(CHECKSUM_FIELD.len()..).unwrap_or(&[]);
    let hash = fnv1a_update(FNV_OFFSET_BASIS, before);
    let hash = fnv1a_update(hash, &[0; 8]);
    fnv1a_update(hash, after)
}

fn read_u8(bytes: &[u8], at: usize) -> Option<u8> {
    bytes.get(at).copied()
}

fn read_u32(bytes: &[u8], at: usize) -> Option<u32> {
    let raw = bytes.get(at..at.checked_add(4)?)?;
    Some(u32::from_le_bytes(raw.try_into().ok()?))
}

fn read_u64(bytes: &[u8], at: usize) -> Option<u64> {
    let raw = bytes.get(at..at.checked_add(8)?)?;
    Some(u64::from_le_bytes(raw.try_into().ok()?))
}

const fn align_up(value: usize, align: usize) -> Option<usize> {
    match value.checked_add(align - 1) {
        Some(padded) => Some(padded & !(align - 1)),
        None => None,
    }
}

/// Where the records end and the images start, for `count` records.
const fn records_end(count: usize) -> usize {
    HEADER_LEN + count * RECORD_LEN
}

/// Recomputes and stores the checksum of a blob whose bytes were changed
/// after [`write_blob`]: tools and tests use it to build blobs that are damaged
/// in one specific way (a bad version, an image out of bounds) yet carry a
/// valid checksum, so the kernel's other checks can be seen to work.
pub fn reseal(blob: &mut [u8]) -> Result<(), BlobError> {
    if blob.len() < HEADER_LEN {
        return Err(BlobError::TooShort { len: blob.len(), needed: HEADER_LEN });
    }
    let declared = read_u64(blob, 16).unwrap_or(u64::MAX);
    let total = usize::try_from(declared).ok().filter(|&total| total >= HEADER_LEN && total <= blob.len());
    let Some(total) = total else {
        return Err(BlobError::LengthMismatch { declared, available: blob.len() });
    };
    let checksum = checksum_of(&blob[..total]);
    blob[CHECKSUM_FIELD].copy_from_slice(&checksum.to_le_bytes());
    Ok(())
}

/// The number of bytes [`write_blob`] needs for these guests.
pub fn encoded_len(guests: &[BlobGuest<'_>]) -> Result<usize, BlobError> {
    if guests.len() > MAX_GUESTS {
        return Err(BlobError::TooManyGuests { count: guests.len(), max: MAX_GUESTS });
    }
    let mut len = records_end(guests.len());
    for guest in guests {
        len = align_up(len, IMAGE_ALIGN)
            .and_then(|start| start.checked_add(guest.image.len()))
            .ok_or(BlobError::TooLarge)?;
    }
    Ok(len)
}

/// Writes the blob for `settings` and `guests` into the start of `out` and
/// returns its length.
///
/// Checks every configuration first ([`GuestConfig::validate`]), so a blob
/// this writes is one the parser accepts.
pub fn write_blob(settings: BlobSettings, guests: &[BlobGuest<'_>], out: &mut [u8]) -> Result<usize, BlobError> {
    let total = encoded_len(guests)?;
    for (index, guest) in guests.iter().enumerate() {
        guest.config.validate().map_err(|error| BlobError::BadConfig { guest: index, error })?;
    }
    let available = out.len();
    let blob = out.get_mut(..total).ok_or(BlobError::BufferTooSmall { needed: total, available })?;
    blob.fill(0);

    // Header; the checksum is filled in last.
    blob[0..8].copy_from_slice(&MAGIC);
    blob[8..12].copy_from_slice(&VERSION.to_le_bytes());
    blob[12..16].copy_from_slice(&(HEADER_LEN as u32).to_le_bytes());
    blob[16..24].copy_from_slice(&(total as u64).to_le_bytes());
    blob[32..36].copy_from_slice(&(guests.len() as u32).to_le_bytes());
    blob[36..40].copy_from_slice(&settings.to_flags().to_le_bytes());
    blob[40..44].copy_from_slice(&settings.to_features().to_le_bytes());
    // 44..48 reserved, already 0.

    let mut image_start = records_end(guests.len());
    for (index, guest) in guests.iter().enumerate() {
        // `encoded_len` succeeded, so none of these offsets overflow or exceed `total`.
        image_start = align_up(image_start, IMAGE_ALIGN).ok_or(BlobError::TooLarge)?;
        let image_end = image_start + guest.image.len();
        blob[image_start..image_end].copy_from_slice(guest.image);

        let at = HEADER_LEN + index * RECORD_LEN;
        encode_record(&guest.config, image_start as u64, guest.image.len() as u64, &mut blob[at..at + RECORD_LEN]);
        image_start = image_end;
    }

    let checksum = checksum_of(blob);
    blob[CHECKSUM_FIELD].copy_from_slice(&checksum.to_le_bytes());
    Ok(total)
}

fn encode_record(config: &GuestConfig, image_offset: u64, image_len: u64, record: &mut [u8]) {
    let name = config.name.as_bytes();
    record[..name.len()].copy_from_slice(name);
    record[32] = name.len() as u8;
    record[33] = match config.start_mode {
        StartMode::Real => 0,
        StartMode::Protected => 1,
        StartMode::Long => 2,
    };
    let (expected_kind, expected_status) = match config.expected {
        ExpectedOutcome::Exit(status) => (0, status),
        ExpectedOutcome::Crash => (1, 0),
        ExpectedOutcome::OverBudget => (2, 0),
    };
    record[34] = expected_kind;
    record[35] = match config.image {
        ImageKind::Elf64 => 0,
        ImageKind::Flat => 1,
    };
    record[36..40].copy_from_slice(&expected_status.to_le_bytes());
    record[40..48].copy_from_slice(&config.ram_bytes.to_le_bytes());
    record[48..56].copy_from_slice(&config.time_slice_ticks.to_le_bytes());
    record[56..64].copy_from_slice(&config.budget_ticks.to_le_bytes());
    record[64..68].copy_from_slice(&config.restart_limit.to_le_bytes());
    // 68..72 reserved, already 0.
    record[72..80].copy_from_slice(&image_offset.to_le_bytes());
    record[80..88].copy_from_slice(&image_len.to_le_bytes());
}

/// A parsed, checked boot blob, borrowing the ramdisk's bytes.
#[derive(Debug, Clone, Copy)]
pub struct BootBlob<'a> {
    /// The blob's `total_len` bytes (padding after it cut off).
    bytes: &'a [u8],
    header_len: usize,
    guest_count: usize,
    settings: BlobSettings,
}

impl<'a> BootBlob<'a> {
    /// Checks a blob: header, length, checksum, and every guest record and image
    /// range. After this succeeds, [`guests`](Self::guests) yields only `Ok`s.
    pub fn parse(bytes: &'a [u8]) -> Result<Self, BlobError> {
        let too_short = BlobError::TooShort { len: bytes.len(), needed: HEADER_LEN };
        let header = bytes.get(..HEADER_LEN).ok_or(too_short)?;

        let mut magic = [0; 8];
        magic.copy_from_slice(&header[0..8]);
        if magic != MAGIC {
            return Err(BlobError::BadMagic { found: magic });
        }
        let version = read_u32(header, 8).ok_or(too_short)?;
        if version != VERSION {
            return Err(BlobError::UnsupportedVersion { found: version, expected: VERSION });
        }
        let header_len_raw = read_u32(header, 12).ok_or(too_short)?;
        let declared = read_u64(header, 16).ok_or(too_short)?;
        let stored = read_u64(header, 24).ok_or(too_short)?;
        let guest_count_raw = read_u32(header, 32).ok_or(too_short)?;
        let flags = read_u32(header, 36).ok_or(too_short)?;
        let features = read_u32(header, 40).ok_or(too_short)?;

        let length_mismatch = BlobError::LengthMismatch { declared, available: bytes.len() };
        let total = usize::try_from(declared).map_err(|_| length_mismatch)?;
        if total < HEADER_LEN {
            return Err(length_mismatch);
        }
        let bytes = bytes.get(..total).ok_or(length_mismatch)?;
        let header_len = header_len_raw as usize;
        if header_len < HEADER_LEN || header_len > total {
            return Err(BlobError::BadHeaderLen { header_len: header_len_raw });
        }

        let computed = checksum_of(bytes);
        if computed != stored {
            return Err(BlobError::ChecksumMismatch { stored, computed });
        }
        let settings = BlobSettings::from_words(flags, features)?;
        let guest_count = guest_count_raw as usize;
        if guest_count > MAX_GUESTS {
            return Err(BlobError::TooManyGuests { count: guest_count, max: MAX_GUESTS });
        }

        let blob = Self { bytes, header_len, guest_count, settings };
        for index in 0..guest_count {
            blob.guest(index)?;
        }
        Ok(blob)
    }

    /// The run-wide settings.
    pub const fn settings(&self) -> BlobSettings {
        self.settings
    }

    /// Number of guests.
    pub const fn guest_count(&self) -> usize {
        self.guest_count
    }

    /// The blob's length in bytes (`total_len`; ramdisk padding not included).
    pub const fn total_len(&self) -> usize {
        self.bytes.len()
    }

    /// Where the image area starts: right after the last record.
    fn images_start(&self) -> usize {
        // Bounded by MAX_GUESTS, cannot overflow.
        self.header_len + self.guest_count * RECORD_LEN
    }

    /// Decodes guest `index`: its configuration and its image.
    pub fn guest(&self, index: usize) -> Result<BlobGuest<'a>, BlobError> {
        let out_of_bounds = BlobError::RecordOutOfBounds { guest: index };
        if index >= self.guest_count {
            return Err(out_of_bounds);
        }
        let start = self.header_len + index * RECORD_LEN;
        let record = self.bytes.get(start..start + RECORD_LEN).ok_or(out_of_bounds)?;
        decode_record(index, record, self.bytes, self.images_start())
    }

    /// All guests in order. Each item is a `Result` so the iterator stays safe
    /// on its own, but after a successful [`parse`](Self::parse) all are `Ok`.
    pub fn guests(&self) -> impl Iterator<Item = Result<BlobGuest<'a>, BlobError>> + 'a {
        let blob = *self;
        (0..blob.guest_count).map(move |index| blob.guest(index))
    }
}

fn decode_record<'a>(
    guest: usize,
    record: &[u8],
    blob: &'a [u8],
    images_start: usize,
) -> Result<BlobGuest<'a>, BlobError> {
    let short = BlobError::RecordOutOfBounds { guest };
    let name_len = usize::from(read_u8(record, 32).ok_or(short)?);
    let name_bytes =
        record.get(..name_len).ok_or(BlobError::BadName { guest, error: NameError::TooLong { len: name_len } })?;
    let name = GuestName::from_bytes(name_bytes).map_err(|error| BlobError::BadName { guest, error })?;

    let start_mode = match read_u8(record, 33).ok_or(short)? {
        0 => StartMode::Real,
        1 => StartMode::Protected,
        2 => StartMode::Long,
        value => return Err(BlobError::BadStartMode { guest, value }),
    };
    let expected_status = read_u32(record, 36).ok_or(short)?;
    let expected = match read_u8(record, 34).ok_or(short)? {
        0 => ExpectedOutcome::Exit(expected_status),
        1 => ExpectedOutcome::Crash,
        2 => ExpectedOutcome::OverBudget,
        value => return Err(BlobError::BadExpected { guest, value }),
    };
    let image_kind = match read_u8(record, 35).ok_or(short)? {
        0 => ImageKind::Elf64,
        1 => ImageKind::Flat,
        value => return Err(BlobError::BadImageKind { guest, value }),
    };
    let config = GuestConfig {
        name,
        image: image_kind,
        start_mode,
        ram_bytes: read_u64(record, 40).ok_or(short)?,
        time_slice_ticks: read_u64(record, 48).ok_or(short)?,
        budget_ticks: read_u64(record, 56).ok_or(short)?,
        restart_limit: read_u32(record, 64).ok_or(short)?,
        expected,
    };
    config.validate().map_err(|error| BlobError::BadConfig { guest, error })?;

    let offset = read_u64(record, 72).ok_or(short)?;
    let len = read_u64(record, 80).ok_or(short)?;
    let image_error = BlobError::ImageOutOfBounds { guest, offset, len };
    let start = usize::try_from(offset).map_err(|_| image_error)?;
    let end = offset.checked_add(len).and_then(|end| usize::try_from(end).ok()).ok_or(image_error)?;
    if start < images_start {
        return Err(image_error);
    }
    let image = blob.get(start..end).ok_or(image_error)?;
    Ok(BlobGuest { config, image })
}

#[cfg(test)]
mod tests {
    #[test]
    fn break_entry_travels_in_bits_15_to_9() {
        let settings = BlobSettings { break_entry: 26, ..BlobSettings::default() };
        assert_eq!(settings.to_flags(), 26 << 9);
        assert_eq!(BlobSettings::from_flags(26 << 9), Ok(settings));
        let all = BlobSettings {
            log_level: 5,
            caps_report: true,
            trace: TraceSelection::All,
            step: StepSelection::Guest(3),
            break_entry: 42,
            native_workload: false,
        };
        assert_eq!(BlobSettings::from_flags(all.to_flags()), Ok(all));
    }

    #[test]
    fn the_native_workload_travels_in_features_bit_0() {
        let bench = BlobSettings { native_workload: true, log_level: 3, ..BlobSettings::default() };
        assert_eq!(bench.to_features(), 1);
        assert_eq!(bench.to_flags(), 3, "the flags word does not carry it");
        assert_eq!(BlobSettings::from_words(bench.to_flags(), bench.to_features()), Ok(bench));
        assert_eq!(BlobSettings::default().to_features(), 0);
        assert_eq!(BlobSettings::from_words(3, 0).map(|s| s.native_workload), Ok(false));
        for unknown in [1 << 1, 1 << 31, u32::MAX] {
            assert_eq!(BlobSettings::from_words(0, unknown), Err(BlobError::UnsupportedFeatures { features: unknown }));
        }
        // A bad flags word is still refused when the features are fine.
        assert!(matches!(BlobSettings::from_words(127 << 9, 1), Err(BlobError::UnsupportedFlags { .. })));

        // Through a whole blob: written at offset 40, read back, unknown bits refused.
        let (a, _) = sample_guests();
        let guests = [BlobGuest { config: a, image: IMAGE_A }];
        let mut out = vec![0xAAu8; encoded_len(&guests).unwrap()];
        write_blob(bench, &guests, &mut out).unwrap();
        assert_eq!(read_u32(&out, 40), Some(1));
        assert_eq!(read_u32(&out, 44), Some(0));
        assert_eq!(BootBlob::parse(&out).map(|blob| blob.settings()), Ok(bench));
        out[40] = 0x03;
        reseal_for_test(&mut out);
        assert_eq!(BootBlob::parse(&out).unwrap_err(), BlobError::UnsupportedFeatures { features: 3 });
        assert!(BlobError::UnsupportedFeatures { features: 3 }.to_string().contains("0x3"));
    }

    #[test]
    fn settings_round_trip_through_flags() {
        for trace in [TraceSelection::None, TraceSelection::Guest(0), TraceSelection::Guest(15), TraceSelection::All] {
            for caps_report in [false, true] {
                let settings = BlobSettings { log_level: 3, caps_report, trace, ..BlobSettings::default() };
                assert_eq!(BlobSettings::from_flags(settings.to_flags()), Ok(settings));
            }
        }
        for step in [StepSelection::None, StepSelection::Guest(0), StepSelection::Guest(15)] {
            let settings = BlobSettings { log_level: 2, trace: TraceSelection::All, step, ..BlobSettings::default() };
            assert_eq!(BlobSettings::from_flags(settings.to_flags()), Ok(settings));
        }
        // Bits 31:24: 0 none, n + 1 guest n.
        let stepped = BlobSettings { step: StepSelection::Guest(2), ..BlobSettings::default() };
        assert_eq!(stepped.to_flags(), 3 << 24);
        assert_eq!(BlobSettings::from_flags(1 << 24).map(|s| s.step), Ok(StepSelection::Guest(0)));
        assert!(StepSelection::Guest(2).includes(2) && !StepSelection::Guest(2).includes(1));
        assert!(!StepSelection::None.includes(0));
        assert!(TraceSelection::Guest(2).includes(2) && !TraceSelection::Guest(2).includes(1));
        assert!(TraceSelection::All.includes(7) && !TraceSelection::None.includes(0));
        // Bits 15:9 = 127: no such entry rule.
        assert_eq!(BlobSettings::from_flags(127 << 9), Err(BlobError::UnsupportedFlags { flags: 127 << 9 }));
    }

    #[test]
    fn trace_selection_of_the_last_guest_indices_saturates_instead_of_overflowing() {
        // Found by the property tests (tests/prop_blob.rs): `Guest(255)` used to
        // overflow in `to_byte`.
        for index in [254, 255] {
            let settings = BlobSettings { trace: TraceSelection::Guest(index), ..BlobSettings::default() };
            assert_eq!(settings.to_flags(), 0xFF << 16);
            assert_eq!(BlobSettings::from_flags(settings.to_flags()).map(|s| s.trace), Ok(TraceSelection::All));
        }
        let last = BlobSettings { trace: TraceSelection::Guest(253), ..BlobSettings::default() };
        assert_eq!(BlobSettings::from_flags(last.to_flags()), Ok(last));
    }

    #[test]
    fn reseal_makes_a_changed_blob_pass_the_checksum_again() {
        let image = [0x90u8; 32];
        let guests = [BlobGuest { config: GuestConfig::new(GuestName::new("g").unwrap()), image: &image }];
        let mut blob = std::vec![0u8; encoded_len(&guests).unwrap()];
        write_blob(BlobSettings::default(), &guests, &mut blob).unwrap();
        blob[8] = 3; // version 3
        assert!(matches!(BootBlob::parse(&blob), Err(BlobError::UnsupportedVersion { found: 3, .. })));
        blob[8] = 2;
        let last = blob.len() - 1;
        blob[last] ^= 0xFF;
        assert!(matches!(BootBlob::parse(&blob), Err(BlobError::ChecksumMismatch { .. })));
        super::reseal(&mut blob).unwrap();
        assert!(BootBlob::parse(&blob).is_ok());
        assert!(super::reseal(&mut blob[..10]).is_err());
    }

    use super::*;
    use std::string::ToString;
    use std::vec;
    use std::vec::Vec;

    fn config(name: &str) -> GuestConfig {
        GuestConfig::new(GuestName::new(name).unwrap())
    }

    fn sample_guests() -> (GuestConfig, GuestConfig) {
        let first = config("hello64");
        let mut second = config("real-1");
        second.start_mode = StartMode::Real;
        second.image = ImageKind::Flat;
        second.expected = ExpectedOutcome::Crash;
        second.set_ram_bytes(5 << 20);
        second.time_slice_ticks = 77;
        second.budget_ticks = 1_000;
        second.restart_limit = 3;
        (first, second)
    }

    const SETTINGS: BlobSettings = BlobSettings {
        log_level: 4,
        caps_report: false,
        trace: TraceSelection::None,
        step: StepSelection::Guest(1),
        break_entry: 0,
        native_workload: false,
    };
    const IMAGE_A: &[u8] = b"\x7fELF-pretend-image";
    const IMAGE_B: &[u8] = &[0xEB, 0xFE, 0x90];

    fn sample_blob() -> Vec<u8> {
        let (first, second) = sample_guests();
        let guests = [BlobGuest { config: first, image: IMAGE_A }, BlobGuest { config: second, image: IMAGE_B }];
        let mut out = vec![0xAA; encoded_len(&guests).unwrap()];
        let written = write_blob(SETTINGS, &guests, &mut out).unwrap();
        assert_eq!(written, out.len());
        out
    }

    /// Recomputes the checksum after a test changed a field, so the test
    /// reaches the check it aims at (the public [`super::reseal`], where the
    /// declared length still fits).
    fn reseal_for_test(blob: &mut [u8]) {
        let total = u64::from_le_bytes(blob[16..24].try_into().unwrap()) as usize;
        let checksum = checksum_of(&blob[..total.min(blob.len())]);
        blob[CHECKSUM_FIELD].copy_from_slice(&checksum.to_le_bytes());
    }

    fn put_u64(blob: &mut [u8], at: usize, value: u64) {
        blob[at..at + 8].copy_from_slice(&value.to_le_bytes());
    }

    fn record_at(index: usize) -> usize {
        HEADER_LEN + index * RECORD_LEN
    }

    #[test]
    fn round_trip() {
        let blob = sample_blob();
        let parsed = BootBlob::parse(&blob).unwrap();
        assert_eq!(parsed.guest_count(), 2);
        assert_eq!(parsed.total_len(), blob.len());
        assert_eq!(parsed.settings(), SETTINGS);
        let guests: Vec<BlobGuest<'_>> = parsed.guests().map(Result::unwrap).collect();
        let (first, second) = sample_guests();
        assert_eq!(guests[0], BlobGuest { config: first, image: IMAGE_A });
        assert_eq!(guests[1], BlobGuest { config: second, image: IMAGE_B });
        assert_eq!(parsed.guest(2), Err(BlobError::RecordOutOfBounds { guest: 2 }));
    }

    #[test]
    fn layout_matches_the_documented_table() {
        let blob = sample_blob();
        assert_eq!(&blob[0..8], b"HVBLOB01");
        assert_eq!(read_u32(&blob, 8), Some(2));
        assert_eq!(read_u32(&blob, 12), Some(HEADER_LEN as u32));
        assert_eq!(HEADER_LEN, 48);
        // Features: none; then 4 reserved bytes.
        assert_eq!(read_u32(&blob, 40), Some(0));
        assert_eq!(read_u32(&blob, 44), Some(0));
        assert_eq!(read_u64(&blob, 16), Some(blob.len() as u64));
        assert_eq!(read_u32(&blob, 32), Some(2));
        // Flags: log level 4 in bits 7:0, guest 1 single-stepped in bits 31:24.
        assert_eq!(read_u32(&blob, 36), Some(4 | (2 << 24)));
        let record = &blob[record_at(0)..record_at(1)];
        assert_eq!(&record[..7], b"hello64");
        assert_eq!(record[32], 7);
        let image_offset = read_u64(record, 72).unwrap();
        assert_eq!(image_offset % IMAGE_ALIGN as u64, 0);
        assert!(image_offset >= records_end(2) as u64);
        // Padding and reserved bytes are zero even though the buffer was 0xAA.
        assert!(record[7..32].iter().all(|&b| b == 0));
        assert_eq!(read_u32(record, 68), Some(0));
    }

    #[test]
    fn every_expected_outcome_round_trips() {
        let outcomes = [
            ExpectedOutcome::Exit(0),
            ExpectedOutcome::Exit(u32::MAX),
            ExpectedOutcome::Crash,
            ExpectedOutcome::OverBudget,
        ];
        for (code, outcome) in [0u8, 0, 1, 2].into_iter().zip(outcomes) {
            let mut guest = config("g");
            guest.expected = outcome;
            guest.budget_ticks = 5_000;
            let guests = [BlobGuest { config: guest, image: IMAGE_A }];
            let mut out = vec![0; encoded_len(&guests).unwrap()];
            write_blob(SETTINGS, &guests, &mut out).unwrap();
            assert_eq!(out[record_at(0) + 34], code, "{outcome}");
            let parsed = BootBlob::parse(&out).unwrap();
            assert_eq!(parsed.guest(0).map(|g| g.config.expected), Ok(outcome));
        }
    }

    #[test]
    fn empty_guest_list_round_trips() {
        let mut out = [0u8; HEADER_LEN];
        assert_eq!(write_blob(BlobSettings::default(), &[], &mut out), Ok(HEADER_LEN));
        let parsed = BootBlob::parse(&out).unwrap();
        assert_eq!(parsed.guest_count(), 0);
        assert_eq!(parsed.guests().count(), 0);
    }

    #[test]
    fn trailing_padding_is_ignored() {
        let mut blob = sample_blob();
        let len = blob.len();
        blob.resize(len + 4096, 0x55);
        let parsed = BootBlob::parse(&blob).unwrap();
        assert_eq!(parsed.total_len(), len);
    }

    #[test]
    fn flipped_byte_fails_the_checksum() {
        let original = sample_blob();
        // One byte in the header (flags, checked after the checksum), one in a
        // record, one in an image.
        for at in [38, record_at(1) + 50, original.len() - 1] {
            let mut blob = original.clone();
            blob[at] ^= 0x01;
            assert!(matches!(BootBlob::parse(&blob), Err(BlobError::ChecksumMismatch { .. })), "byte {at}");
        }
    }

    #[test]
    fn refuses_short_and_truncated_blobs() {
        let blob = sample_blob();
        assert_eq!(
            BootBlob::parse(&blob[..HEADER_LEN - 1]).unwrap_err(),
            BlobError::TooShort { len: HEADER_LEN - 1, needed: HEADER_LEN }
        );
        assert_eq!(BootBlob::parse(&[]).unwrap_err(), BlobError::TooShort { len: 0, needed: HEADER_LEN });
        assert_eq!(
            BootBlob::parse(&blob[..blob.len() - 1]).unwrap_err(),
            BlobError::LengthMismatch { declared: blob.len() as u64, available: blob.len() - 1 }
        );
        let mut tiny = blob.clone();
        put_u64(&mut tiny, 16, 8);
        assert!(matches!(BootBlob::parse(&tiny), Err(BlobError::LengthMismatch { declared: 8, .. })));
    }

    #[test]
    fn refuses_bad_magic_version_and_flags() {
        let mut blob = sample_blob();
        blob[0] = b'X';
        assert!(matches!(BootBlob::parse(&blob), Err(BlobError::BadMagic { .. })));

        let mut blob = sample_blob();
        blob[8..12].copy_from_slice(&1u32.to_le_bytes());
        reseal_for_test(&mut blob);
        assert_eq!(BootBlob::parse(&blob).unwrap_err(), BlobError::UnsupportedVersion { found: 1, expected: 2 });

        let mut blob = sample_blob();
        blob[37] = 0xFE; // bits 15:9 = 127: no such entry rule to break
        reseal_for_test(&mut blob);
        let flags = SETTINGS.to_flags() | (127 << 9);
        assert_eq!(BootBlob::parse(&blob).unwrap_err(), BlobError::UnsupportedFlags { flags });

        let mut blob = sample_blob();
        blob[12..16].copy_from_slice(&8u32.to_le_bytes());
        reseal_for_test(&mut blob);
        assert_eq!(BootBlob::parse(&blob).unwrap_err(), BlobError::BadHeaderLen { header_len: 8 });
    }

    #[test]
    fn refuses_too_many_guests_and_records_beyond_the_end() {
        let mut blob = sample_blob();
        let count = MAX_GUESTS as u32 + 1;
        blob[32..36].copy_from_slice(&count.to_le_bytes());
        reseal_for_test(&mut blob);
        assert_eq!(
            BootBlob::parse(&blob).unwrap_err(),
            BlobError::TooManyGuests { count: MAX_GUESTS + 1, max: MAX_GUESTS }
        );

        // A header-only blob that claims one guest.
        let mut out = [0u8; HEADER_LEN];
        write_blob(BlobSettings::default(), &[], &mut out).unwrap();
        out[32] = 1;
        reseal_for_test(&mut out);
        assert_eq!(BootBlob::parse(&out).unwrap_err(), BlobError::RecordOutOfBounds { guest: 0 });
    }

    #[test]
    fn refuses_images_outside_the_image_area() {
        let len = sample_blob().len() as u64;
        let offset_field = record_at(1) + 72;
        let len_field = record_at(1) + 80;

        let mut blob = sample_blob();
        put_u64(&mut blob, offset_field, len + 1);
        reseal_for_test(&mut blob);
        assert!(matches!(
            BootBlob::parse(&blob),
            Err(BlobError::ImageOutOfBounds { guest: 1, offset, .. }) if offset == len + 1
        ));

        // offset + len overflows.
        let mut blob = sample_blob();
        put_u64(&mut blob, len_field, u64::MAX);
        reseal_for_test(&mut blob);
        assert!(matches!(BootBlob::parse(&blob), Err(BlobError::ImageOutOfBounds { guest: 1, len: u64::MAX, .. })));

        // One byte too long.
        let mut blob = sample_blob();
        put_u64(&mut blob, len_field, IMAGE_B.len() as u64 + 1);
        reseal_for_test(&mut blob);
        assert!(matches!(BootBlob::parse(&blob), Err(BlobError::ImageOutOfBounds { guest: 1, .. })));

        // Pointing back into the header.
        let mut blob = sample_blob();
        put_u64(&mut blob, offset_field, 0);
        reseal_for_test(&mut blob);
        assert!(matches!(BootBlob::parse(&blob), Err(BlobError::ImageOutOfBounds { guest: 1, offset: 0, .. })));
    }

    #[test]
    fn refuses_bad_record_fields() {
        type Check = fn(&BlobError) -> bool;
        let cases: [(usize, u8, Check); 5] = [
            (32, 0, |e| matches!(e, BlobError::BadName { guest: 0, error: NameError::Empty })),
            (32, 33, |e| matches!(e, BlobError::BadName { guest: 0, .. })),
            (33, 3, |e| matches!(e, BlobError::BadStartMode { guest: 0, value: 3 })),
            (34, 3, |e| matches!(e, BlobError::BadExpected { guest: 0, value: 3 })),
            (35, 9, |e| matches!(e, BlobError::BadImageKind { guest: 0, value: 9 })),
        ];
        for (field, value, is_expected) in cases {
            let mut blob = sample_blob();
            blob[record_at(0) + field] = value;
            reseal_for_test(&mut blob);
            let error = BootBlob::parse(&blob).unwrap_err();
            assert!(is_expected(&error), "field {field}: {error:?}");
        }

        let mut blob = sample_blob();
        blob[record_at(0)] = b' ';
        reseal_for_test(&mut blob);
        assert!(matches!(BootBlob::parse(&blob), Err(BlobError::BadName { guest: 0, .. })));

        let mut blob = sample_blob();
        put_u64(&mut blob, record_at(0) + 40, 3 << 20);
        reseal_for_test(&mut blob);
        assert_eq!(
            BootBlob::parse(&blob).unwrap_err(),
            BlobError::BadConfig { guest: 0, error: ConfigError::RamNotBlockMultiple { ram_bytes: 3 << 20 } }
        );
    }

    #[test]
    fn writer_checks_its_inputs() {
        let (first, _) = sample_guests();
        let guest = BlobGuest { config: first, image: IMAGE_A };
        let needed = encoded_len(&[guest]).unwrap();
        let mut small = vec![0; needed - 1];
        assert_eq!(
            write_blob(SETTINGS, &[guest], &mut small),
            Err(BlobError::BufferTooSmall { needed, available: needed - 1 })
        );
        let too_many = [guest; MAX_GUESTS + 1];
        assert!(
            matches!(encoded_len(&too_many), Err(BlobError::TooManyGuests { count, .. }) if count == MAX_GUESTS + 1)
        );
        let mut bad = guest;
        bad.config.time_slice_ticks = 0;
        let mut out = vec![0; needed];
        assert_eq!(
            write_blob(SETTINGS, &[bad], &mut out),
            Err(BlobError::BadConfig { guest: 0, error: ConfigError::ZeroTimeSlice })
        );
    }

    #[test]
    fn errors_read_clearly() {
        let text = BlobError::UnsupportedVersion { found: 2, expected: 1 }.to_string();
        assert!(text.contains("version 2") && text.contains("expected 1"), "{text}");
        let text = BlobError::ImageOutOfBounds { guest: 3, offset: 0x100, len: 0x20 }.to_string();
        assert!(text.contains("guest 3") && text.contains("0x100"), "{text}");
        let text = BlobError::BadMagic { found: *b"NOTABLOB" }.to_string();
        assert!(text.contains("HVBLOB01"), "{text}");
    }

    #[test]
    fn fnv1a_matches_reference_vectors() {
        // Published FNV-1a 64 test vectors.
        assert_eq!(fnv1a_update(FNV_OFFSET_BASIS, b""), 0xcbf29ce484222325);
        assert_eq!(fnv1a_update(FNV_OFFSET_BASIS, b"a"), 0xaf63dc4c8601ec8c);
        assert_eq!(fnv1a_update(FNV_OFFSET_BASIS, b"foobar"), 0x85944171f73967e8);
    }
}
