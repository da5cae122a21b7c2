//! Guest RAM layout: which host-physical memory backs which guest-physical address.
//!
//! A guest's RAM starts at guest-physical address (GPA) 0 and is a whole number
//! of 2 MiB blocks. Each block is backed by one 2 MiB-aligned, 2 MiB-long piece of
//! host-physical memory; the pieces need not be contiguous, so the kernel can
//! take them from a fragmented frame allocator:
//!
//! | guest-physical range | backed by |
//! |---|---|
//! | `[0, 2 MiB)` | `blocks[0] .. blocks[0] + 2 MiB` |
//! | `[2 MiB, 4 MiB)` | `blocks[1] .. blocks[1] + 2 MiB` |
//! | `[i * 2 MiB, (i + 1) * 2 MiB)` | `blocks[i] ..` |
//!
//! The same list drives the EPT builder ([`crate::ept::EptBuilder::map_range`]),
//! which maps each block with one 2 MiB page, and the kernel's copies into and
//! out of guest memory ([`GuestRamLayout::host_chunks`]), which must be split
//! wherever two blocks are not adjacent in host memory.
//!
//! At most [`MAX_BLOCKS`] blocks (1 GiB) per guest: the list is a fixed array so
//! the layout needs no heap and can be copied around freely.

use core::fmt;

/// Size of one RAM block, and the granularity of guest RAM sizes: 2 MiB, the
/// size of one large EPT page.
pub const BLOCK_SIZE: u64 = 2 << 20;

/// The most blocks one guest may have: 512 blocks of 2 MiB = 1 GiB of RAM.
/// The block list is a fixed array of this many entries (4 KiB).
pub const MAX_BLOCKS: usize = 512;

/// The largest guest RAM: [`MAX_BLOCKS`] × [`BLOCK_SIZE`] = 1 GiB.
pub const MAX_RAM_BYTES: u64 = MAX_BLOCKS as u64 * BLOCK_SIZE;

/// RAM size used when a configuration asks for none (0 bytes): one block.
pub const DEFAULT_RAM_BYTES: u64 = BLOCK_SIZE;

/// Host-physical addresses must fit in 52 bits, the architectural maximum of
/// MAXPHYADDR (SDM Vol. 3C, 29.3.2 "EPT Translation Mechanism").
const HOST_ADDRESS_LIMIT: u64 = 1 << 52;

/// Rounds a requested RAM size up to a whole number of 2 MiB blocks.
///
/// `0` means "the default" and gives [`DEFAULT_RAM_BYTES`]. A request so large
/// that rounding up would overflow gives the largest multiple of 2 MiB that fits
/// in a `u64` (which [`GuestRamLayout`] and the configuration check then refuse
/// as too large, with the real number in the message).
pub const fn round_up_ram_size(bytes: u64) -> u64 {
    if bytes == 0 {
        return DEFAULT_RAM_BYTES;
    }
    match bytes.checked_add(BLOCK_SIZE - 1) {
        Some(padded) => padded & !(BLOCK_SIZE - 1),
        None => !(BLOCK_SIZE - 1),
    }
}

/// What can go wrong describing or addressing guest RAM.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GuestMemoryError {
    /// `[gpa, gpa + len)` is not inside guest RAM of `ram_size` bytes.
    OutOfRange {
        /// Start of the requested range.
        gpa: u64,
        /// Length of the requested range.
        len: u64,
        /// Size of guest RAM.
        ram_size: u64,
    },
    /// `gpa + len` does not fit in 64 bits.
    Overflow {
        /// Start of the requested range.
        gpa: u64,
        /// Length of the requested range.
        len: u64,
    },
    /// A host block is not 2 MiB-aligned, or does not end below 2^52.
    BadBlock {
        /// Index of the block in the list.
        index: usize,
        /// The host-physical address given for it.
        hpa: u64,
    },
    /// More than [`MAX_BLOCKS`] blocks.
    TooManyBlocks {
        /// How many blocks were asked for.
        count: usize,
    },
}

impl fmt::Display for GuestMemoryError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Self::OutOfRange { gpa, len, ram_size } => {
                write!(f, "guest range {gpa:#x}+{len:#x} lies outside guest RAM of {ram_size:#x} bytes")
            }
            Self::Overflow { gpa, len } => {
                write!(f, "guest range {gpa:#x}+{len:#x} overflows the address space")
            }
            Self::BadBlock { index, hpa } => {
                write!(f, "RAM block {index} at host address {hpa:#x} is not 2 MiB-aligned below 2^52")
            }
            Self::TooManyBlocks { count } => {
                write!(f, "{count} RAM blocks requested, at most {MAX_BLOCKS} (1 GiB) are supported")
            }
        }
    }
}

/// The host memory behind one guest's RAM: a list of 2 MiB host blocks, block
/// `i` backing guest-physical `[i * 2 MiB, (i + 1) * 2 MiB)`.
///
/// Fixed-size (no heap): holds up to [`MAX_BLOCKS`] blocks.
#[derive(Clone, PartialEq, Eq)]
pub struct GuestRamLayout {
    blocks: [u64; MAX_BLOCKS],
    block_count: usize,
}

impl GuestRamLayout {
    /// A layout with no RAM yet; add blocks with [`push_block`](Self::push_block).
    pub const fn empty() -> Self {
        Self { blocks: [0; MAX_BLOCKS], block_count: 0 }
    }

    /// A layout from a complete block list (`blocks[i]` backs GPA `i * 2 MiB`).
    pub fn new(blocks: &[u64]) -> Result<Self, GuestMemoryError> {
        if blocks.len() > MAX_BLOCKS {
            return Err(GuestMemoryError::TooManyBlocks { count: blocks.len() });
        }
        let mut layout = Self::empty();
        for &hpa in blocks {
            layout.push_block(hpa)?;
        }
        Ok(layout)
    }

    /// Appends one host block, growing guest RAM by 2 MiB at its top.
    pub fn push_block(&mut self, hpa: u64) -> Result<(), GuestMemoryError> {
        let index = self.block_count;
        if index >= MAX_BLOCKS {
            return Err(GuestMemoryError::TooManyBlocks { count: index + 1 });
        }
        if !hpa.is_multiple_of(BLOCK_SIZE) || hpa > HOST_ADDRESS_LIMIT - BLOCK_SIZE {
            return Err(GuestMemoryError::BadBlock { index, hpa });
        }
        self.blocks[index] = hpa;
        self.block_count += 1;
        Ok(())
    }

    /// Size of guest RAM in bytes (a multiple of 2 MiB).
    pub const fn ram_size(&self) -> u64 {
        self.block_count as u64 * BLOCK_SIZE
    }

    /// Number of 2 MiB blocks.
    pub const fn block_count(&self) -> usize {
        self.block_count
    }

    /// The host-physical address of each block, in guest order.
    pub fn blocks(&self) -> &[u64] {
        &self.blocks[..self.block_count]
    }

    /// The host-physical address backing guest-physical `gpa`; `None` outside RAM.
    pub fn translate(&self, gpa: u64) -> Option<u64> {
        let index = usize::try_from(gpa / BLOCK_SIZE).ok()?;
        let block = *self.blocks().get(index)?;
        Some(block + gpa % BLOCK_SIZE)
    }

    /// Checks that `[gpa, gpa + len)` lies inside guest RAM, without overflowing.
    /// An empty range is fine anywhere up to and including the end of RAM.
    pub fn check_range(&self, gpa: u64, len: u64) -> Result<(), GuestMemoryError> {
        let end = gpa.checked_add(len).ok_or(GuestMemoryError::Overflow { gpa, len })?;
        if end > self.ram_size() {
            return Err(GuestMemoryError::OutOfRange { gpa, len, ram_size: self.ram_size() });
        }
        Ok(())
    }

    /// Splits guest range `[gpa, gpa + len)` into pieces that are contiguous in
    /// host memory, in guest order. Neighbouring blocks that also neighbour in
    /// host memory come out as one chunk.
    ///
    /// Checks the range first, so the iterator itself cannot fail.
    pub fn host_chunks(&self, gpa: u64, len: u64) -> Result<HostChunks<'_>, GuestMemoryError> {
        self.check_range(gpa, len)?;
        Ok(HostChunks { blocks: self.blocks(), gpa, remaining: len, offset: 0 })
    }
}

impl Default for GuestRamLayout {
    fn default() -> Self {
        Self::empty()
    }
}

impl fmt::Debug for GuestRamLayout {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GuestRamLayout").field("ram_size", &self.ram_size()).field("blocks", &self.blocks()).finish()
    }
}

/// One host-contiguous piece of a guest range, from [`GuestRamLayout::host_chunks`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HostChunk {
    /// Where the piece starts in host-physical memory.
    pub hpa: u64,
    /// Length of the piece in bytes (never 0).
    pub len: u64,
    /// Where the piece starts relative to the beginning of the requested range:
    /// the offset into the caller's buffer to copy to or from.
    pub offset: u64,
}

/// Iterator over the host-contiguous pieces of a guest range.
#[derive(Debug, Clone)]
pub struct HostChunks<'a> {
    blocks: &'a [u64],
    gpa: u64,
    remaining: u64,
    offset: u64,
}

impl Iterator for HostChunks<'_> {
    type Item = HostChunk;

    fn next(&mut self) -> Option<HostChunk> {
        if self.remaining == 0 {
            return None;
        }
        // The range was checked, so every index below is inside `blocks`.
        let mut index = usize::try_from(self.gpa / BLOCK_SIZE).ok()?;
        let hpa = *self.blocks.get(index)? + self.gpa % BLOCK_SIZE;
        let mut len = (BLOCK_SIZE - self.gpa % BLOCK_SIZE).min(self.remaining);
        // Extend across following blocks while they continue in host memory.
        while len < self.remaining {
            match (self.blocks.get(index), self.blocks.get(index + 1)) {
                (Some(&this), Some(&next)) if this + BLOCK_SIZE == next => {
                    len += BLOCK_SIZE.min(self.remaining - len);
                    index += 1;
                }
                _ => break,
            }
        }
        let chunk = HostChunk { hpa, len, offset: self.offset };
        self.gpa += len;
        self.remaining -= len;
        self.offset += len;
        Some(chunk)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::vec::Vec;

    const MIB: u64 = 1 << 20;

    fn scattered() -> GuestRamLayout {
        // Blocks 0 and 1 adjacent in host memory, block 2 elsewhere.
        GuestRamLayout::new(&[0x4000_0000, 0x4020_0000, 0x1000_0000]).unwrap()
    }

    #[test]
    fn rounds_ram_sizes_up_to_blocks() {
        assert_eq!(round_up_ram_size(0), 2 * MIB);
        assert_eq!(round_up_ram_size(1), 2 * MIB);
        assert_eq!(round_up_ram_size(2 * MIB), 2 * MIB);
        assert_eq!(round_up_ram_size(2 * MIB + 1), 4 * MIB);
        assert_eq!(round_up_ram_size(64 * MIB - 1), 64 * MIB);
        assert_eq!(round_up_ram_size(u64::MAX), !(2 * MIB - 1));
    }

    #[test]
    fn translates_inside_and_refuses_outside() {
        let layout = scattered();
        assert_eq!(layout.ram_size(), 6 * MIB);
        assert_eq!(layout.translate(0), Some(0x4000_0000));
        assert_eq!(layout.translate(2 * MIB - 1), Some(0x401F_FFFF));
        assert_eq!(layout.translate(2 * MIB), Some(0x4020_0000));
        assert_eq!(layout.translate(4 * MIB + 0x123), Some(0x1000_0123));
        assert_eq!(layout.translate(6 * MIB - 1), Some(0x101F_FFFF));
        assert_eq!(layout.translate(6 * MIB), None);
        assert_eq!(layout.translate(u64::MAX), None);
        assert_eq!(GuestRamLayout::empty().translate(0), None);
    }

    #[test]
    fn range_checks_cover_boundaries_and_overflow() {
        let layout = scattered();
        let ram = layout.ram_size();
        assert_eq!(layout.check_range(0, ram), Ok(()));
        assert_eq!(layout.check_range(ram, 0), Ok(()));
        assert_eq!(layout.check_range(ram - 1, 1), Ok(()));
        assert_eq!(
            layout.check_range(ram - 1, 2),
            Err(GuestMemoryError::OutOfRange { gpa: ram - 1, len: 2, ram_size: ram })
        );
        assert!(matches!(layout.check_range(ram + 1, 0), Err(GuestMemoryError::OutOfRange { .. })));
        assert_eq!(layout.check_range(u64::MAX, 2), Err(GuestMemoryError::Overflow { gpa: u64::MAX, len: 2 }));
        assert!(matches!(layout.check_range(2, u64::MAX), Err(GuestMemoryError::Overflow { .. })));
    }

    #[test]
    fn refuses_bad_blocks() {
        assert_eq!(GuestRamLayout::new(&[0, 0x1000]), Err(GuestMemoryError::BadBlock { index: 1, hpa: 0x1000 }));
        assert!(matches!(GuestRamLayout::new(&[1 << 52]), Err(GuestMemoryError::BadBlock { index: 0, .. })));
        assert!(GuestRamLayout::new(&[(1 << 52) - BLOCK_SIZE]).is_ok());
        let too_many: Vec<u64> = (0..MAX_BLOCKS as u64 + 1).map(|i| i * BLOCK_SIZE).collect();
        assert_eq!(GuestRamLayout::new(&too_many), Err(GuestMemoryError::TooManyBlocks { count: MAX_BLOCKS + 1 }));
        let full = GuestRamLayout::new(&too_many[..MAX_BLOCKS]).unwrap();
        assert_eq!(full.ram_size(), MAX_RAM_BYTES);
        let mut full = full;
        assert!(matches!(full.push_block(0), Err(GuestMemoryError::TooManyBlocks { .. })));
    }

    #[test]
    fn chunks_split_at_host_discontinuities_only() {
        let layout = scattered();
        let chunks: Vec<HostChunk> = layout.host_chunks(MIB, 4 * MIB).unwrap().collect();
        assert_eq!(
            chunks,
            [
                // Blocks 0 and 1 are adjacent on the host: one chunk.
                HostChunk { hpa: 0x4010_0000, len: 3 * MIB, offset: 0 },
                HostChunk { hpa: 0x1000_0000, len: MIB, offset: 3 * MIB },
            ]
        );
        let total: u64 = chunks.iter().map(|c| c.len).sum();
        assert_eq!(total, 4 * MIB);
    }

    #[test]
    fn chunks_inside_one_block_and_empty_ranges() {
        let layout = scattered();
        let chunks: Vec<HostChunk> = layout.host_chunks(4 * MIB + 16, 32).unwrap().collect();
        assert_eq!(chunks, [HostChunk { hpa: 0x1000_0010, len: 32, offset: 0 }]);
        assert_eq!(layout.host_chunks(6 * MIB, 0).unwrap().count(), 0);
        // Exactly up to a discontinuity, then across it by one byte.
        let chunks: Vec<HostChunk> = layout.host_chunks(4 * MIB - 1, 2).unwrap().collect();
        assert_eq!(
            chunks,
            [HostChunk { hpa: 0x403F_FFFF, len: 1, offset: 0 }, HostChunk { hpa: 0x1000_0000, len: 1, offset: 1 },]
        );
    }

    #[test]
    fn chunks_refuse_bad_ranges() {
        let layout = scattered();
        assert!(layout.host_chunks(6 * MIB - 1, 2).is_err());
        assert!(layout.host_chunks(u64::MAX, 1).is_err());
    }

    #[test]
    fn errors_display_their_numbers() {
        let text = std::format!("{}", GuestMemoryError::OutOfRange { gpa: 0x10, len: 0x20, ram_size: 0x200000 });
        assert!(text.contains("0x10") && text.contains("0x200000"), "{text}");
    }
}
