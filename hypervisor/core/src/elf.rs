//! ELF64 guest images: checks and the loading plan.
//!
//! A guest image is a static x86-64 executable (`ET_EXEC`). [`ElfImage::parse`]
//! reads its header and program headers straight out of the byte slice (no
//! copy, no heap) and checks everything the loader relies on:
//!
//! * the identification: `\x7fELF`, 64-bit class, little-endian, version 1;
//! * the type and machine: `ET_EXEC` for `EM_X86_64` (position-independent
//!   `ET_DYN` images are refused: there is no relocating loader here);
//! * the program header table lies inside the file;
//! * every `PT_LOAD` segment's file bytes lie inside the file, its file size
//!   does not exceed its memory size, its address range does not overflow, and
//!   no two segments overlap in memory;
//! * there is no `PT_INTERP` (the image would need a dynamic linker);
//! * the entry point lies inside an executable segment.
//!
//! # Addresses
//!
//! Guests run identity-mapped: in long mode the hypervisor's page tables map
//! virtual = guest-physical, and in real and protected mode with flat segments
//! linear = guest-physical. So a segment's virtual address (`p_vaddr`) *is* the
//! guest-physical address it is loaded at; `p_paddr` is not used.
//!
//! # Loading
//!
//! For each [`LoadSegment`], copy [`ElfImage::segment_data`] to guest-physical
//! `gpa` and zero the following `mem_size - file_size` bytes (the `.bss`). Call
//! [`ElfImage::check_fits`] first with the RAM the image may use.

use core::fmt;

/// Size of the ELF64 file header.
pub const ELF64_HEADER_LEN: usize = 64;
/// Size of one ELF64 program header.
pub const PROGRAM_HEADER_LEN: usize = 56;
/// The most program headers an image may have (real images have a handful).
pub const MAX_PROGRAM_HEADERS: usize = 64;

/// `e_ident[EI_CLASS]` for 64-bit objects.
const ELFCLASS64: u8 = 2;
/// `e_ident[EI_DATA]` for little-endian objects.
const ELFDATA2LSB: u8 = 1;
/// `e_version` / `e_ident[EI_VERSION]`: the only version.
const EV_CURRENT: u32 = 1;
/// `e_type` of an executable.
const ET_EXEC: u16 = 2;
/// `e_type` of a shared object or position-independent executable.
const ET_DYN: u16 = 3;
/// `e_machine` of x86-64.
const EM_X86_64: u16 = 62;
/// `p_type` of a loadable segment.
const PT_LOAD: u32 = 1;
/// `p_type` of the interpreter (dynamic linker) path.
const PT_INTERP: u32 = 3;

/// Why an image was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ElfError {
    /// Shorter than an ELF64 header.
    TooShort {
        /// The image's length.
        len: usize,
    },
    /// Does not start with `\x7fELF`.
    BadMagic,
    /// Not a 64-bit (ELFCLASS64) image.
    NotElf64 {
        /// `e_ident[EI_CLASS]`.
        class: u8,
    },
    /// Not little-endian.
    NotLittleEndian {
        /// `e_ident[EI_DATA]`.
        data: u8,
    },
    /// An ELF version other than 1.
    BadVersion {
        /// The version found (`e_ident[EI_VERSION]` or `e_version`).
        version: u32,
    },
    /// Not built for x86-64.
    WrongMachine {
        /// `e_machine`.
        machine: u16,
    },
    /// A position-independent image (`ET_DYN`).
    PositionIndependent,
    /// Some other type than `ET_EXEC` (a relocatable object, a core dump …).
    NotExecutable {
        /// `e_type`.
        elf_type: u16,
    },
    /// `e_phentsize` is not 56.
    BadProgramHeaderSize {
        /// `e_phentsize`.
        size: u16,
    },
    /// More than [`MAX_PROGRAM_HEADERS`] program headers.
    TooManyProgramHeaders {
        /// `e_phnum`.
        count: u16,
    },
    /// The program header table runs past the end of the file.
    ProgramHeadersOutOfBounds {
        /// `e_phoff`.
        offset: u64,
        /// `e_phnum`.
        count: u16,
    },
    /// The image names a dynamic linker (`PT_INTERP`).
    NeedsInterpreter,
    /// A segment's file bytes run past the end of the file (or overflow).
    SegmentOutOfFile {
        /// Program header index.
        index: usize,
        /// `p_offset`.
        offset: u64,
        /// `p_filesz`.
        file_size: u64,
    },
    /// A segment has more bytes in the file than in memory.
    FileSizeExceedsMemSize {
        /// Program header index.
        index: usize,
        /// `p_filesz`.
        file_size: u64,
        /// `p_memsz`.
        mem_size: u64,
    },
    /// A segment's address plus size overflows.
    SegmentAddressOverflow {
        /// Program header index.
        index: usize,
        /// `p_vaddr`.
        address: u64,
        /// `p_memsz`.
        mem_size: u64,
    },
    /// Two segments overlap in memory.
    SegmentsOverlap {
        /// Program header index of the earlier one.
        first: usize,
        /// Program header index of the later one.
        second: usize,
    },
    /// No `PT_LOAD` segment with a non-zero size.
    NoLoadSegments,
    /// The entry point is not inside an executable segment.
    EntryNotExecutable {
        /// `e_entry`.
        entry: u64,
    },
    /// A segment reaches beyond the RAM the image may use.
    SegmentOutsideRam {
        /// Program header index.
        index: usize,
        /// First guest-physical address of the segment.
        start: u64,
        /// One past its last address.
        end: u64,
        /// The limit given to [`ElfImage::check_fits`].
        ram_limit: u64,
    },
}

impl fmt::Display for ElfError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Self::TooShort { len } => {
                write!(f, "image is {len} bytes, shorter than an ELF64 header ({ELF64_HEADER_LEN} bytes)")
            }
            Self::BadMagic => f.write_str("image is not an ELF file (no \\x7fELF magic)"),
            Self::NotElf64 { class } => {
                write!(f, "image is not 64-bit ELF (class {class}, expected 2)")
            }
            Self::NotLittleEndian { data } => {
                write!(f, "image is not little-endian (data encoding {data}, expected 1)")
            }
            Self::BadVersion { version } => {
                write!(f, "image has ELF version {version}, expected 1")
            }
            Self::WrongMachine { machine } => {
                write!(f, "image is for machine {machine}, expected x86-64 ({EM_X86_64})")
            }
            Self::PositionIndependent => {
                f.write_str("position-independent (ET_DYN) images are not supported: link a static executable")
            }
            Self::NotExecutable { elf_type } => {
                write!(f, "image has ELF type {elf_type}, expected an executable (ET_EXEC)")
            }
            Self::BadProgramHeaderSize { size } => {
                write!(f, "program headers are {size} bytes each, expected {PROGRAM_HEADER_LEN}")
            }
            Self::TooManyProgramHeaders { count } => {
                write!(f, "image has {count} program headers, at most {MAX_PROGRAM_HEADERS} are supported")
            }
            Self::ProgramHeadersOutOfBounds { offset, count } => {
                write!(f, "{count} program headers at offset {offset:#x} run past the end of the image")
            }
            Self::NeedsInterpreter => f.write_str("image needs a dynamic linker (PT_INTERP): link a static executable"),
            Self::SegmentOutOfFile { index, offset, file_size } => {
                write!(f, "segment {index}: file bytes {offset:#x}+{file_size:#x} run past the end of the image")
            }
            Self::FileSizeExceedsMemSize { index, file_size, mem_size } => {
                write!(f, "segment {index}: file size {file_size:#x} exceeds memory size {mem_size:#x}")
            }
            Self::SegmentAddressOverflow { index, address, mem_size } => {
                write!(f, "segment {index}: address {address:#x} + size {mem_size:#x} overflows")
            }
            Self::SegmentsOverlap { first, second } => {
                write!(f, "segments {first} and {second} overlap in memory")
            }
            Self::NoLoadSegments => f.write_str("image has nothing to load (no PT_LOAD segment)"),
            Self::EntryNotExecutable { entry } => {
                write!(f, "entry point {entry:#x} is not inside an executable segment")
            }
            Self::SegmentOutsideRam { index, start, end, ram_limit } => write!(
                f,
                "segment {index} at [{start:#x}, {end:#x}) does not fit in guest RAM \
                 below {ram_limit:#x}: give the guest more RAM or link it lower"
            ),
        }
    }
}

/// A segment's access permissions (`p_flags`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SegmentFlags(pub u32);

impl SegmentFlags {
    /// `PF_X`: executable.
    pub const EXECUTE: u32 = 1;
    /// `PF_W`: writable.
    pub const WRITE: u32 = 2;
    /// `PF_R`: readable.
    pub const READ: u32 = 4;

    /// Whether the segment is executable.
    pub const fn executable(self) -> bool {
        self.0 & Self::EXECUTE != 0
    }

    /// Whether the segment is writable.
    pub const fn writable(self) -> bool {
        self.0 & Self::WRITE != 0
    }

    /// Whether the segment is readable.
    pub const fn readable(self) -> bool {
        self.0 & Self::READ != 0
    }
}

/// One `PT_LOAD` segment, checked: what to copy where.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LoadSegment {
    /// Index of its program header (for messages).
    pub index: usize,
    /// Where its bytes start in the file.
    pub file_offset: u64,
    /// How many bytes come from the file.
    pub file_size: u64,
    /// The guest-physical address it is loaded at (its `p_vaddr`, see the module docs).
    pub gpa: u64,
    /// Its size in memory; the bytes past `file_size` are zeroed.
    pub mem_size: u64,
    /// Its permissions.
    pub flags: SegmentFlags,
}

impl LoadSegment {
    /// One past its last guest-physical address (checked not to overflow).
    pub const fn end(&self) -> u64 {
        self.gpa + self.mem_size
    }

    /// How many bytes after the file bytes are zeroed (`.bss`).
    pub const fn zero_fill_len(&self) -> u64 {
        self.mem_size - self.file_size
    }

    /// Whether `address` lies inside the segment in memory.
    pub const fn contains(&self, address: u64) -> bool {
        address >= self.gpa && address < self.end()
    }
}

/// A checked ELF64 executable, borrowing the image's bytes.
#[derive(Debug, Clone, Copy)]
pub struct ElfImage<'a> {
    bytes: &'a [u8],
    entry: u64,
    program_headers: usize,
    program_header_count: usize,
}

fn read_u16(bytes: &[u8], at: usize) -> Option<u16> {
    let raw = bytes.get(at..at.checked_add(2)?)?;
    Some(u16::from_le_bytes(raw.try_into().ok()?))
}

fn read_u32(bytes: &[u8], at: usize) -> Option<u32> {
    let raw = bytes.get(at..at.checked_add(4)?)?;
    Some(u32::from_le_bytes(raw.try_into().ok()?))
}

fn read_u64(bytes: &[u8], at: usize) -> Option<u64> {
    let raw = bytes.get(at..at.checked_add(8)?)?;
    Some(u64::from_le_bytes(raw.try_into().ok()?))
}

/// A program header's fields, read but not yet checked.
struct RawProgramHeader {
    kind: u32,
    flags: u32,
    offset: u64,
    vaddr: u64,
    file_size: u64,
    mem_size: u64,
}

impl<'a> ElfImage<'a> {
    /// Checks an image (see the module docs for the list) and returns a view of it.
    pub fn parse(bytes: &'a [u8]) -> Result<Self, ElfError> {
        let too_short = ElfError::TooShort { len: bytes.len() };
        let header = bytes.get(..ELF64_HEADER_LEN).ok_or(too_short)?;
        if header[0..4] != *b"\x7fELF" {
            return Err(ElfError::BadMagic);
        }
        if header[4] != ELFCLASS64 {
            return Err(ElfError::NotElf64 { class: header[4] });
        }
        if header[5] != ELFDATA2LSB {
            return Err(ElfError::NotLittleEndian { data: header[5] });
        }
        if u32::from(header[6]) != EV_CURRENT {
            return Err(ElfError::BadVersion { version: u32::from(header[6]) });
        }
        let elf_type = read_u16(header, 16).ok_or(too_short)?;
        let machine = read_u16(header, 18).ok_or(too_short)?;
        let version = read_u32(header, 20).ok_or(too_short)?;
        let entry = read_u64(header, 24).ok_or(too_short)?;
        let phoff = read_u64(header, 32).ok_or(too_short)?;
        let phentsize = read_u16(header, 54).ok_or(too_short)?;
        let phnum = read_u16(header, 56).ok_or(too_short)?;

        if version != EV_CURRENT {
            return Err(ElfError::BadVersion { version });
        }
        if machine != EM_X86_64 {
            return Err(ElfError::WrongMachine { machine });
        }
        match elf_type {
            ET_EXEC => {}
            ET_DYN => return Err(ElfError::PositionIndependent),
            other => return Err(ElfError::NotExecutable { elf_type: other }),
        }
        if usize::from(phentsize) != PROGRAM_HEADER_LEN {
            return Err(ElfError::BadProgramHeaderSize { size: phentsize });
        }
        if usize::from(phnum) > MAX_PROGRAM_HEADERS {
            return Err(ElfError::TooManyProgramHeaders { count: phnum });
        }
        let table_out_of_bounds = ElfError::ProgramHeadersOutOfBounds { offset: phoff, count: phnum };
        let table_start = usize::try_from(phoff).map_err(|_| table_out_of_bounds)?;
        let table_end = table_start.checked_add(usize::from(phnum) * PROGRAM_HEADER_LEN).ok_or(table_out_of_bounds)?;
        if table_end > bytes.len() {
            return Err(table_out_of_bounds);
        }

        let image = Self { bytes, entry, program_headers: table_start, program_header_count: usize::from(phnum) };
        image.check_segments()?;
        Ok(image)
    }

    /// Reads program header `index` (inside the table, checked by `parse`).
    fn raw_program_header(&self, index: usize) -> Option<RawProgramHeader> {
        let at = self.program_headers + index * PROGRAM_HEADER_LEN;
        let header = self.bytes.get(at..at + PROGRAM_HEADER_LEN)?;
        Some(RawProgramHeader {
            kind: read_u32(header, 0)?,
            flags: read_u32(header, 4)?,
            offset: read_u64(header, 8)?,
            vaddr: read_u64(header, 16)?,
            file_size: read_u64(header, 32)?,
            mem_size: read_u64(header, 40)?,
        })
    }

    /// Checks one `PT_LOAD` header and turns it into a [`LoadSegment`].
    fn check_load(&self, index: usize, raw: &RawProgramHeader) -> Result<LoadSegment, ElfError> {
        let out_of_file = ElfError::SegmentOutOfFile { index, offset: raw.offset, file_size: raw.file_size };
        match raw.offset.checked_add(raw.file_size) {
            Some(end) if end <= self.bytes.len() as u64 => {}
            _ => return Err(out_of_file),
        }
        if raw.file_size > raw.mem_size {
            return Err(ElfError::FileSizeExceedsMemSize { index, file_size: raw.file_size, mem_size: raw.mem_size });
        }
        if raw.vaddr.checked_add(raw.mem_size).is_none() {
            return Err(ElfError::SegmentAddressOverflow { index, address: raw.vaddr, mem_size: raw.mem_size });
        }
        Ok(LoadSegment {
            index,
            file_offset: raw.offset,
            file_size: raw.file_size,
            gpa: raw.vaddr,
            mem_size: raw.mem_size,
            flags: SegmentFlags(raw.flags),
        })
    }

    /// The segment checks of `parse`: each segment, overlaps, interpreter, entry.
    fn check_segments(&self) -> Result<(), ElfError> {
        let mut any_load = false;
        let mut entry_ok = false;
        for index in 0..self.program_header_count {
            let raw = self.raw_program_header(index).ok_or(ElfError::ProgramHeadersOutOfBounds {
                offset: self.program_headers as u64,
                count: self.program_header_count as u16,
            })?;
            if raw.kind == PT_INTERP {
                return Err(ElfError::NeedsInterpreter);
            }
            if raw.kind != PT_LOAD {
                continue;
            }
            let segment = self.check_load(index, &raw)?;
            if segment.mem_size == 0 {
                continue;
            }
            any_load = true;
            entry_ok |= segment.flags.executable() && segment.contains(self.entry);
        }
        if !any_load {
            return Err(ElfError::NoLoadSegments);
        }
        // Pairwise overlap check; at most MAX_PROGRAM_HEADERS segments.
        for first in self.load_segments() {
            for second in self.load_segments().filter(|s| s.index > first.index) {
                if first.gpa < second.end() && second.gpa < first.end() {
                    return Err(ElfError::SegmentsOverlap { first: first.index, second: second.index });
                }
            }
        }
        if !entry_ok {
            return Err(ElfError::EntryNotExecutable { entry: self.entry });
        }
        Ok(())
    }

    /// The entry point (a guest-physical address, see the module docs).
    pub const fn entry(&self) -> u64 {
        self.entry
    }

    /// The `PT_LOAD` segments with a non-zero memory size, in file order.
    pub fn load_segments(&self) -> impl Iterator<Item = LoadSegment> + 'a {
        let image = *self;
        (0..image.program_header_count).filter_map(move |index| {
            let raw = image.raw_program_header(index)?;
            if raw.kind != PT_LOAD {
                return None;
            }
            image.check_load(index, &raw).ok().filter(|segment| segment.mem_size != 0)
        })
    }

    /// The file bytes of a segment of this image (`file_size` bytes from
    /// `file_offset`); empty if the segment does not belong to this image.
    pub fn segment_data(&self, segment: &LoadSegment) -> &'a [u8] {
        let start = usize::try_from(segment.file_offset).unwrap_or(usize::MAX);
        let len = usize::try_from(segment.file_size).unwrap_or(usize::MAX);
        start.checked_add(len).and_then(|end| self.bytes.get(start..end)).unwrap_or(&[])
    }

    /// The lowest address and one past the highest address any segment occupies.
    pub fn extent(&self) -> (u64, u64) {
        self.load_segments().fold((u64::MAX, 0), |(low, high), segment| (low.min(segment.gpa), high.max(segment.end())))
    }

    /// Checks that every segment lies inside guest-physical `[0, ram_limit)`.
    /// The caller passes the guest's RAM size minus any region it reserves at
    /// the top (long-mode page tables).
    pub fn check_fits(&self, ram_limit: u64) -> Result<(), ElfError> {
        match self.load_segments().find(|segment| segment.end() > ram_limit) {
            Some(segment) => Err(ElfError::SegmentOutsideRam {
                index: segment.index,
                start: segment.gpa,
                end: segment.end(),
                ram_limit,
            }),
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::string::ToString;
    use std::vec;
    use std::vec::Vec;

    const RX: u32 = SegmentFlags::READ | SegmentFlags::EXECUTE;
    const RW: u32 = SegmentFlags::READ | SegmentFlags::WRITE;

    /// A program header for the test builder.
    #[derive(Clone, Copy)]
    struct Phdr {
        kind: u32,
        flags: u32,
        offset: u64,
        vaddr: u64,
        file_size: u64,
        mem_size: u64,
    }

    fn load(flags: u32, offset: u64, vaddr: u64, file_size: u64, mem_size: u64) -> Phdr {
        Phdr { kind: PT_LOAD, flags, offset, vaddr, file_size, mem_size }
    }

    /// Builds an ELF64 image: header, program headers right after it, then
    /// zero bytes up to `file_len`.
    fn build(elf_type: u16, entry: u64, phdrs: &[Phdr], file_len: usize) -> Vec<u8> {
        let table_end = ELF64_HEADER_LEN + phdrs.len() * PROGRAM_HEADER_LEN;
        let mut image = vec![0u8; file_len.max(table_end)];
        image[0..4].copy_from_slice(b"\x7fELF");
        image[4] = ELFCLASS64;
        image[5] = ELFDATA2LSB;
        image[6] = 1;
        image[16..18].copy_from_slice(&elf_type.to_le_bytes());
        image[18..20].copy_from_slice(&EM_X86_64.to_le_bytes());
        image[20..24].copy_from_slice(&1u32.to_le_bytes());
        image[24..32].copy_from_slice(&entry.to_le_bytes());
        image[32..40].copy_from_slice(&(ELF64_HEADER_LEN as u64).to_le_bytes());
        image[52..54].copy_from_slice(&(ELF64_HEADER_LEN as u16).to_le_bytes());
        image[54..56].copy_from_slice(&(PROGRAM_HEADER_LEN as u16).to_le_bytes());
        image[56..58].copy_from_slice(&(phdrs.len() as u16).to_le_bytes());
        for (i, p) in phdrs.iter().enumerate() {
            let at = ELF64_HEADER_LEN + i * PROGRAM_HEADER_LEN;
            let h = &mut image[at..at + PROGRAM_HEADER_LEN];
            h[0..4].copy_from_slice(&p.kind.to_le_bytes());
            h[4..8].copy_from_slice(&p.flags.to_le_bytes());
            h[8..16].copy_from_slice(&p.offset.to_le_bytes());
            h[16..24].copy_from_slice(&p.vaddr.to_le_bytes());
            h[24..32].copy_from_slice(&p.vaddr.to_le_bytes());
            h[32..40].copy_from_slice(&p.file_size.to_le_bytes());
            h[40..48].copy_from_slice(&p.mem_size.to_le_bytes());
            h[48..56].copy_from_slice(&0x1000u64.to_le_bytes());
        }
        image
    }

    /// A typical small guest: code at 0x100000, data + bss after it.
    fn typical() -> Vec<u8> {
        let mut image = build(
            ET_EXEC,
            0x10_0010,
            &[
                Phdr { kind: 6, flags: 4, offset: 64, vaddr: 0, file_size: 112, mem_size: 112 },
                load(RX, 0x200, 0x10_0000, 0x100, 0x100),
                load(RW, 0x300, 0x10_1000, 0x20, 0x2000),
            ],
            0x320,
        );
        image[0x200..0x300].fill(0x90);
        image[0x300..0x320].fill(0xAB);
        image
    }

    #[test]
    fn parses_a_typical_image() {
        let bytes = typical();
        let image = ElfImage::parse(&bytes).unwrap();
        assert_eq!(image.entry(), 0x10_0010);
        let segments: Vec<LoadSegment> = image.load_segments().collect();
        assert_eq!(segments.len(), 2);
        assert_eq!(segments[0].index, 1);
        assert_eq!(segments[0].gpa, 0x10_0000);
        assert!(segments[0].flags.executable() && !segments[0].flags.writable());
        assert_eq!(image.segment_data(&segments[0]), &[0x90; 0x100][..]);
        assert_eq!(segments[1].zero_fill_len(), 0x2000 - 0x20);
        assert_eq!(image.segment_data(&segments[1]), &[0xAB; 0x20][..]);
        assert!(segments[1].flags.writable() && segments[1].flags.readable());
        assert_eq!(image.extent(), (0x10_0000, 0x10_3000));
    }

    #[test]
    fn checks_segments_fit_in_ram() {
        let bytes = typical();
        let image = ElfImage::parse(&bytes).unwrap();
        assert_eq!(image.check_fits(0x10_3000), Ok(()));
        assert_eq!(image.check_fits(2 << 20), Ok(()));
        assert_eq!(
            image.check_fits(0x10_2fff),
            Err(ElfError::SegmentOutsideRam { index: 2, start: 0x10_1000, end: 0x10_3000, ram_limit: 0x10_2fff })
        );
        assert!(matches!(image.check_fits(0x1000), Err(ElfError::SegmentOutsideRam { index: 1, .. })));
    }

    #[test]
    fn refuses_truncated_headers() {
        let bytes = typical();
        assert_eq!(ElfImage::parse(&bytes[..63]).unwrap_err(), ElfError::TooShort { len: 63 });
        assert_eq!(ElfImage::parse(&[]).unwrap_err(), ElfError::TooShort { len: 0 });
        // Header complete, program header table cut.
        assert!(matches!(
            ElfImage::parse(&bytes[..100]),
            Err(ElfError::ProgramHeadersOutOfBounds { offset: 64, count: 3 })
        ));
        // Table complete, segment bytes cut.
        assert!(matches!(ElfImage::parse(&bytes[..0x310]), Err(ElfError::SegmentOutOfFile { index: 2, .. })));
    }

    #[test]
    fn refuses_wrong_identification() {
        let good = typical();
        let cases: [(usize, u8, ElfError); 4] = [
            (0, 0x7e, ElfError::BadMagic),
            (4, 1, ElfError::NotElf64 { class: 1 }),
            (5, 2, ElfError::NotLittleEndian { data: 2 }),
            (6, 0, ElfError::BadVersion { version: 0 }),
        ];
        for (at, value, expected) in cases {
            let mut bytes = good.clone();
            bytes[at] = value;
            assert_eq!(ElfImage::parse(&bytes).unwrap_err(), expected);
        }
        let mut bytes = good.clone();
        bytes[18] = 3; // EM_386
        assert_eq!(ElfImage::parse(&bytes).unwrap_err(), ElfError::WrongMachine { machine: 3 });
        let mut bytes = good.clone();
        bytes[20] = 2;
        assert_eq!(ElfImage::parse(&bytes).unwrap_err(), ElfError::BadVersion { version: 2 });
        let mut bytes = good;
        bytes[54] = 64;
        assert_eq!(ElfImage::parse(&bytes).unwrap_err(), ElfError::BadProgramHeaderSize { size: 64 });
    }

    #[test]
    fn refuses_position_independent_and_other_types() {
        let bytes = build(ET_DYN, 0x1000, &[load(RX, 0, 0x1000, 0x40, 0x40)], 0x100);
        let error = ElfImage::parse(&bytes).unwrap_err();
        assert_eq!(error, ElfError::PositionIndependent);
        assert_eq!(
            error.to_string(),
            "position-independent (ET_DYN) images are not supported: link a static executable"
        );
        let bytes = build(1, 0x1000, &[load(RX, 0, 0x1000, 0x40, 0x40)], 0x100);
        assert_eq!(ElfImage::parse(&bytes).unwrap_err(), ElfError::NotExecutable { elf_type: 1 });
    }

    #[test]
    fn refuses_bad_segments() {
        // File bytes beyond the end of the file.
        let bytes = build(ET_EXEC, 0x1000, &[load(RX, 0x100, 0x1000, 0x100, 0x100)], 0x180);
        assert!(matches!(ElfImage::parse(&bytes), Err(ElfError::SegmentOutOfFile { index: 0, .. })));
        // Offset + size overflows.
        let bytes = build(ET_EXEC, 0x1000, &[load(RX, u64::MAX - 1, 0x1000, 4, 4)], 0x100);
        assert!(matches!(ElfImage::parse(&bytes), Err(ElfError::SegmentOutOfFile { index: 0, .. })));
        // More file bytes than memory bytes.
        let bytes = build(ET_EXEC, 0x1000, &[load(RX, 0, 0x1000, 0x40, 0x20)], 0x100);
        assert_eq!(
            ElfImage::parse(&bytes).unwrap_err(),
            ElfError::FileSizeExceedsMemSize { index: 0, file_size: 0x40, mem_size: 0x20 }
        );
        // Address + memory size overflows.
        let bytes = build(ET_EXEC, u64::MAX - 8, &[load(RX, 0, u64::MAX - 0xF, 0x10, 0x20)], 0x100);
        assert!(matches!(ElfImage::parse(&bytes), Err(ElfError::SegmentAddressOverflow { index: 0, .. })));
    }

    #[test]
    fn refuses_overlapping_segments() {
        let bytes =
            build(ET_EXEC, 0x1000, &[load(RX, 0, 0x1000, 0x100, 0x100), load(RW, 0, 0x10FF, 0x10, 0x10)], 0x200);
        assert_eq!(ElfImage::parse(&bytes).unwrap_err(), ElfError::SegmentsOverlap { first: 0, second: 1 });
        // Touching is fine, and file ranges may be shared.
        let bytes =
            build(ET_EXEC, 0x1000, &[load(RX, 0, 0x1000, 0x100, 0x100), load(RW, 0, 0x1100, 0x10, 0x10)], 0x200);
        assert!(ElfImage::parse(&bytes).is_ok());
    }

    #[test]
    fn refuses_bad_entry_points_and_empty_images() {
        // Entry in a data segment.
        let bytes =
            build(ET_EXEC, 0x2000, &[load(RX, 0, 0x1000, 0x100, 0x100), load(RW, 0, 0x2000, 0x10, 0x10)], 0x200);
        assert_eq!(ElfImage::parse(&bytes).unwrap_err(), ElfError::EntryNotExecutable { entry: 0x2000 });
        // Entry one past the end of the code.
        let bytes = build(ET_EXEC, 0x1100, &[load(RX, 0, 0x1000, 0x100, 0x100)], 0x200);
        assert_eq!(ElfImage::parse(&bytes).unwrap_err(), ElfError::EntryNotExecutable { entry: 0x1100 });
        // No loadable segment at all.
        let bytes = build(ET_EXEC, 0x1000, &[], 0x100);
        assert_eq!(ElfImage::parse(&bytes).unwrap_err(), ElfError::NoLoadSegments);
        let bytes = build(ET_EXEC, 0x1000, &[load(RX, 0, 0x1000, 0, 0)], 0x100);
        assert_eq!(ElfImage::parse(&bytes).unwrap_err(), ElfError::NoLoadSegments);
    }

    #[test]
    fn refuses_interpreters_and_huge_tables() {
        let interp = Phdr { kind: PT_INTERP, flags: 4, offset: 0, vaddr: 0, file_size: 4, mem_size: 4 };
        let bytes = build(ET_EXEC, 0x1000, &[interp, load(RX, 0, 0x1000, 0x40, 0x40)], 0x200);
        assert_eq!(ElfImage::parse(&bytes).unwrap_err(), ElfError::NeedsInterpreter);

        let mut bytes = typical();
        bytes[56..58].copy_from_slice(&0xFFFFu16.to_le_bytes());
        assert_eq!(ElfImage::parse(&bytes).unwrap_err(), ElfError::TooManyProgramHeaders { count: 0xFFFF });
        let mut bytes = typical();
        bytes[32..40].copy_from_slice(&u64::MAX.to_le_bytes());
        assert!(matches!(ElfImage::parse(&bytes), Err(ElfError::ProgramHeadersOutOfBounds { offset: u64::MAX, .. })));
    }
}
