//! Putting a guest image into guest RAM and deciding where the guest starts.
//!
//! - `real`: a flat image at guest-physical 0x7C00, entered at 0000:7C00 like a
//!   BIOS boot sector (there is no BIOS: no INT services, output through ports);
//! - `protected`: a flat image at 0x100000, entered at its first byte;
//! - `long`: a static x86-64 ELF executable (ET_EXEC), loaded by its program
//!   headers; the identity page tables go into the reserved region at the top of
//!   RAM and the stack starts just below that region.

use hypervisor_core::config::StartMode;
use hypervisor_core::elf::{ElfError, ElfImage};
use hypervisor_core::guest_memory::GuestMemoryError;
use hypervisor_core::guest_paging::{self, GuestPagingError, IdentityTables};
use hypervisor_core::start_state::{PROTECTED_MODE_LOAD, REAL_MODE_LIMIT, REAL_MODE_LOAD};

use crate::vm::memory::GuestRam;

/// Where and how a loaded guest starts.
#[derive(Debug, Clone, Copy)]
pub struct EntryPoint {
    /// The processor mode.
    pub mode: StartMode,
    /// First instruction (guest-physical = guest-linear in all start modes).
    pub rip: u64,
    /// Initial stack pointer.
    pub rsp: u64,
    /// Guest CR3 (long mode), else 0.
    pub cr3: u64,
    /// The reserved region at the top of RAM, if any.
    pub reserved: Option<IdentityTables>,
}

/// Why an image could not be loaded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LoadError {
    /// The ELF image is malformed or does not fit.
    Elf(ElfError),
    /// The page-table layout is impossible for this RAM size.
    Paging(GuestPagingError),
    /// Copying into guest RAM failed (out of range).
    Memory(GuestMemoryError),
    /// The reserved region straddles two host blocks (cannot happen with 2 MiB blocks).
    ReservedRegion,
    /// A flat image does not fit where its start mode loads it.
    FlatImageTooLarge {
        /// The image's size.
        size: u64,
        /// The most bytes that fit.
        limit: u64,
    },
}

impl core::fmt::Display for LoadError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            LoadError::Elf(error) => write!(f, "bad ELF image: {error}"),
            LoadError::Paging(error) => write!(f, "{error}"),
            LoadError::Memory(error) => write!(f, "{error}"),
            LoadError::ReservedRegion => f.write_str("reserved region is not host-contiguous"),
            LoadError::FlatImageTooLarge { size, limit } => {
                write!(f, "flat image of {size} bytes does not fit (at most {limit} bytes)")
            }
        }
    }
}

/// Loads `image` into `ram` for a guest starting in `mode`.
pub fn load(ram: &mut GuestRam, mode: StartMode, image: &[u8]) -> Result<EntryPoint, LoadError> {
    match mode {
        StartMode::Long => load_long_mode_elf(ram, image),
        StartMode::Real => load_flat(ram, StartMode::Real, image, REAL_MODE_LOAD, REAL_MODE_LIMIT.min(ram.size())),
        StartMode::Protected => load_flat(ram, StartMode::Protected, image, PROTECTED_MODE_LOAD, ram.size()),
    }
}

/// Copies a flat image to `address`; it must end at or below `limit`.
fn load_flat(
    ram: &mut GuestRam,
    mode: StartMode,
    image: &[u8],
    address: u64,
    limit: u64,
) -> Result<EntryPoint, LoadError> {
    let room = limit.saturating_sub(address);
    if image.len() as u64 > room {
        return Err(LoadError::FlatImageTooLarge { size: image.len() as u64, limit: room });
    }
    ram.write(address, image).map_err(LoadError::Memory)?;
    Ok(EntryPoint { mode, rip: address, rsp: address, cr3: 0, reserved: None })
}

fn load_long_mode_elf(ram: &mut GuestRam, image: &[u8]) -> Result<EntryPoint, LoadError> {
    let tables = guest_paging::plan(ram.size()).map_err(LoadError::Paging)?;
    let elf = ElfImage::parse(image).map_err(LoadError::Elf)?;
    elf.check_fits(tables.base).map_err(LoadError::Elf)?;
    for segment in elf.load_segments() {
        // Bytes past the file size stay zero: guest RAM starts zeroed.
        ram.write(segment.gpa, elf.segment_data(&segment)).map_err(LoadError::Memory)?;
    }
    let region = ram.contiguous_mut(tables.base, tables.size).ok_or(LoadError::ReservedRegion)?;
    guest_paging::write_tables(&tables, region).map_err(LoadError::Paging)?;
    Ok(EntryPoint {
        mode: StartMode::Long,
        rip: elf.entry(),
        rsp: tables.base,
        cr3: tables.cr3(),
        reserved: Some(tables),
    })
}
