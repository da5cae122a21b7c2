//! Turning an ELF executable into a flat image, for guests that start in real
//! or protected mode.
//!
//! The kernel loads a flat image as it is, at a fixed address that depends on
//! the start mode, and starts the guest at its first byte
//! ([`crate::guest_images`]). Payloads written in Rust for those modes are
//! still linked as ELF executables (that is what the toolchain makes), so the
//! runner flattens them: it copies every `PT_LOAD` segment's file bytes into
//! one buffer that starts at the lowest segment address, and fills the gaps
//! between segments with zeros. A segment's zero-filled tail (`.bss`, memory
//! size beyond the file size) is not copied: guest RAM starts zeroed, so it
//! is zero anyway, but it counts in [`FlatImage::memory_end`] so that the
//! size checks see it.
//!
//! The flat image starts executing at its first byte, so the ELF's entry point
//! must be the lowest segment address.

use std::fmt;

use hypervisor_core::elf::{ElfError, ElfImage};
use hypervisor_core::guest_memory::MAX_RAM_BYTES;

/// An ELF image laid out as the bytes of guest memory it describes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FlatImage {
    /// The guest-physical address of the first byte: the lowest segment address.
    pub load_address: u64,
    /// The bytes from [`Self::load_address`] up to the end of the last file byte.
    pub bytes: Vec<u8>,
    /// The end of the highest segment in memory, its zero-filled tail included
    /// (at least `load_address + bytes.len()`).
    pub memory_end: u64,
}

/// Why an ELF image cannot be flattened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FlattenError {
    /// It is not an ELF executable the hypervisor accepts.
    Elf(ElfError),
    /// A flat image starts at its first byte, but the entry point is elsewhere.
    EntryNotAtStart {
        /// The ELF's entry point.
        entry: u64,
        /// The lowest segment address, where the flat image starts.
        start: u64,
    },
    /// The segments span more than any guest's RAM (1 GiB).
    TooLarge {
        /// From the lowest segment address to the end of the highest segment.
        span: u64,
    },
}

impl fmt::Display for FlattenError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            FlattenError::Elf(error) => write!(f, "{error}"),
            FlattenError::EntryNotAtStart { entry, start } => write!(
                f,
                "its entry point {entry:#x} is not its lowest segment address {start:#x}: a flat image \
                 starts at its first byte, so link the entry code first"
            ),
            FlattenError::TooLarge { span } => {
                write!(f, "its segments span {span:#x} bytes, more than a guest's RAM can hold ({MAX_RAM_BYTES:#x})")
            }
        }
    }
}

impl std::error::Error for FlattenError {}

/// Flattens an ELF executable (see the module docs): the `PT_LOAD` segments'
/// file bytes copied to their offsets from the lowest segment address, gaps
/// zero-filled. The entry point must be the lowest segment address.
pub fn flatten_elf(image: &[u8]) -> Result<FlatImage, FlattenError> {
    let elf = ElfImage::parse(image).map_err(FlattenError::Elf)?;
    // `parse` guarantees at least one segment and that no segment end overflows.
    let (start, memory_end) = elf.extent();
    let span = memory_end - start;
    if span > MAX_RAM_BYTES {
        return Err(FlattenError::TooLarge { span });
    }
    if elf.entry() != start {
        return Err(FlattenError::EntryNotAtStart { entry: elf.entry(), start });
    }
    let file_end = elf
        .load_segments()
        .filter(|segment| segment.file_size != 0)
        .map(|segment| segment.gpa + segment.file_size)
        .max()
        .unwrap_or(start);
    // At most `span` (1 GiB), checked above.
    let mut bytes = vec![0u8; (file_end - start) as usize];
    for segment in elf.load_segments() {
        let data = elf.segment_data(&segment);
        let offset = (segment.gpa - start) as usize;
        if let Some(target) = bytes.get_mut(offset..offset + data.len()) {
            target.copy_from_slice(data);
        }
    }
    Ok(FlatImage { load_address: start, bytes, memory_end })
}

/// Test helpers: small ELF executables built byte by byte.
#[cfg(test)]
pub(crate) mod test_elf {
    /// One `PT_LOAD` segment: flags, guest-physical address, file bytes and
    /// memory size.
    pub struct Segment<'a> {
        pub flags: u32,
        pub address: u64,
        pub data: &'a [u8],
        pub mem_size: u64,
    }

    /// `PF_R | PF_X`.
    pub const RX: u32 = 5;
    /// `PF_R | PF_W`.
    pub const RW: u32 = 6;

    /// A static x86-64 ET_EXEC with these segments (file bytes placed after
    /// the headers, in order) and this entry point.
    pub fn build(entry: u64, segments: &[Segment<'_>]) -> Vec<u8> {
        const EHDR: usize = 64;
        const PHDR: usize = 56;
        let mut data_at = EHDR + PHDR * segments.len();
        let mut image = vec![0u8; data_at];
        image[0..4].copy_from_slice(b"\x7fELF");
        image[4] = 2; // ELFCLASS64
        image[5] = 1; // little-endian
        image[6] = 1; // EV_CURRENT
        image[16..18].copy_from_slice(&2u16.to_le_bytes()); // ET_EXEC
        image[18..20].copy_from_slice(&62u16.to_le_bytes()); // EM_X86_64
        image[20..24].copy_from_slice(&1u32.to_le_bytes());
        image[24..32].copy_from_slice(&entry.to_le_bytes());
        image[32..40].copy_from_slice(&(EHDR as u64).to_le_bytes());
        image[52..54].copy_from_slice(&(EHDR as u16).to_le_bytes());
        image[54..56].copy_from_slice(&(PHDR as u16).to_le_bytes());
        image[56..58].copy_from_slice(&(segments.len() as u16).to_le_bytes());
        for (index, segment) in segments.iter().enumerate() {
            let at = EHDR + index * PHDR;
            let header = &mut image[at..at + PHDR];
            header[0..4].copy_from_slice(&1u32.to_le_bytes()); // PT_LOAD
            header[4..8].copy_from_slice(&segment.flags.to_le_bytes());
            header[8..16].copy_from_slice(&(data_at as u64).to_le_bytes());
            header[16..24].copy_from_slice(&segment.address.to_le_bytes());
            header[24..32].copy_from_slice(&segment.address.to_le_bytes());
            header[32..40].copy_from_slice(&(segment.data.len() as u64).to_le_bytes());
            header[40..48].copy_from_slice(&segment.mem_size.to_le_bytes());
            header[48..56].copy_from_slice(&0x1000u64.to_le_bytes());
            data_at += segment.data.len();
        }
        for segment in segments {
            image.extend_from_slice(segment.data);
        }
        image
    }
}

#[cfg(test)]
mod tests {
    use super::test_elf::{build, Segment, RW, RX};
    use super::*;

    #[test]
    fn segments_are_copied_to_their_offsets_and_gaps_zero_filled() {
        let image = build(
            0x7C00,
            &[
                Segment { flags: RX, address: 0x7C00, data: &[0xEB, 0xFE, 0x90], mem_size: 3 },
                Segment { flags: RW, address: 0x7C10, data: &[1, 2], mem_size: 0x20 },
            ],
        );
        let flat = flatten_elf(&image).expect("a flattenable image");
        assert_eq!(flat.load_address, 0x7C00);
        let mut expected = vec![0u8; 0x12];
        expected[..3].copy_from_slice(&[0xEB, 0xFE, 0x90]);
        expected[0x10..0x12].copy_from_slice(&[1, 2]);
        assert_eq!(flat.bytes, expected);
        // The second segment's zero-filled tail is not copied but counts.
        assert_eq!(flat.memory_end, 0x7C30);
    }

    #[test]
    fn segment_order_in_the_file_does_not_matter() {
        let image = build(
            0x10_0000,
            &[
                Segment { flags: RW, address: 0x10_1000, data: &[7; 4], mem_size: 4 },
                Segment { flags: RX, address: 0x10_0000, data: &[0xF4], mem_size: 1 },
            ],
        );
        let flat = flatten_elf(&image).expect("a flattenable image");
        assert_eq!(flat.load_address, 0x10_0000);
        assert_eq!(flat.bytes.len(), 0x1004);
        assert_eq!(flat.bytes[0], 0xF4);
        assert!(flat.bytes[1..0x1000].iter().all(|&b| b == 0));
        assert_eq!(&flat.bytes[0x1000..], &[7; 4]);
        assert_eq!(flat.memory_end, 0x10_1004);
    }

    #[test]
    fn a_bss_only_segment_adds_no_bytes() {
        let image = build(
            0x7C00,
            &[
                Segment { flags: RX, address: 0x7C00, data: &[0xF4], mem_size: 1 },
                Segment { flags: RW, address: 0x8000, data: &[], mem_size: 0x100 },
            ],
        );
        let flat = flatten_elf(&image).expect("a flattenable image");
        assert_eq!(flat.bytes, [0xF4]);
        assert_eq!(flat.memory_end, 0x8100);
    }

    #[test]
    fn the_entry_must_be_the_lowest_address() {
        let image = build(0x7C01, &[Segment { flags: RX, address: 0x7C00, data: &[0x90, 0xF4], mem_size: 2 }]);
        let error = flatten_elf(&image).unwrap_err();
        assert_eq!(error, FlattenError::EntryNotAtStart { entry: 0x7C01, start: 0x7C00 });
        assert!(error.to_string().contains("link the entry code first"), "{error}");
    }

    #[test]
    fn bad_elf_files_are_refused() {
        assert_eq!(flatten_elf(b"\x7fELF"), Err(FlattenError::Elf(ElfError::TooShort { len: 4 })));
        assert_eq!(flatten_elf(&[0u8; 64]), Err(FlattenError::Elf(ElfError::BadMagic)));
    }

    #[test]
    fn a_span_larger_than_any_guest_is_refused_before_allocating() {
        let image = build(
            0x1000,
            &[
                Segment { flags: RX, address: 0x1000, data: &[0xF4], mem_size: 1 },
                Segment { flags: RW, address: 0x40_0000_0000, data: &[1], mem_size: 1 },
            ],
        );
        assert_eq!(flatten_elf(&image), Err(FlattenError::TooLarge { span: 0x40_0000_0000 + 1 - 0x1000 }));
    }
}
