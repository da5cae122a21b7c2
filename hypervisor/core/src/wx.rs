//! W^X for the hypervisor's own image: which of its pages may be written and
//! which may be executed, decided from the kernel ELF's program headers.
//!
//! "Write xor execute" means no page is both writable and executable: code
//! cannot be patched, and data (a stack, the heap, anything a guest's input
//! lands in) cannot be run. In x86-64 paging the two permissions are the
//! R/W bit (bit 1) and the XD bit (bit 63, honoured only when EFER.NXE is
//! set) of each paging-structure entry; for a supervisor access R/W is only
//! enforced when CR0.WP is set (SDM Vol. 3A, 4.6 "Access Rights", and 4.5
//! "4-Level Paging", Table 4-20 "Format of a Page-Table Entry that Maps a
//! 4-KByte Page").
//!
//! The kernel (`hypervisor/src/platform/paging.rs`) walks the live page
//! tables; this module holds the decisions, so they can be tested here:
//!
//! * [`KernelLayout::from_elf`] reads the `PT_LOAD` and `PT_GNU_RELRO`
//!   program headers of the kernel ELF (position-independent `ET_DYN`, as the
//!   bootloader loads it, or `ET_EXEC`) and turns each loaded segment into a
//!   page range with a [`PageClass`]: executable segments are
//!   [`PageClass::Code`], read-only ones [`PageClass::ReadOnly`], writable ones
//!   [`PageClass::Data`]; the pages of the `PT_GNU_RELRO` range (data the
//!   loader relocated and then made read-only) are [`PageClass::ReadOnly`]. A
//!   segment both writable and executable is refused ([`LayoutError`]).
//! * [`PageClass::required`] is the permission each class must have, and
//!   [`check_mapping`] judges one mapping: inside the image it must be
//!   exactly its class's permission, outside it must not be executable.
//! * [`Fnv1a64`] is the checksum of the integrity line printed before and
//!   after the guests run.

use core::fmt;

/// Size of the pages the kernel image is mapped with.
pub const PAGE_SIZE: u64 = 4096;
/// The most loaded segments a kernel image may have (real ones have four).
pub const MAX_KERNEL_SEGMENTS: usize = 16;

/// Size of the ELF64 file header.
const ELF64_HEADER_LEN: usize = 64;
/// Size of one ELF64 program header.
const PROGRAM_HEADER_LEN: usize = 56;
/// The most program headers looked at.
const MAX_PROGRAM_HEADERS: usize = 64;
/// `p_type` of a loadable segment.
const PT_LOAD: u32 = 1;
/// `p_type` of the range the loader makes read-only after relocating it.
const PT_GNU_RELRO: u32 = 0x6474_E552;
/// `p_flags` bit: executable.
const PF_X: u32 = 1;
/// `p_flags` bit: writable.
const PF_W: u32 = 2;
/// `e_type` of an executable.
const ET_EXEC: u16 = 2;
/// `e_type` of a position-independent executable.
const ET_DYN: u16 = 3;

/// What a page of the kernel image holds, and so how it must be mapped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PageClass {
    /// Machine code (`.text`): read-only and executable.
    Code,
    /// Constants, and data made read-only after relocation (`.rodata`,
    /// `.data.rel.ro`, the GOT, the ELF headers): read-only, not executable.
    ReadOnly,
    /// Variables (`.data`, `.bss`, which holds the heap and the IST stacks):
    /// writable, not executable.
    Data,
}

impl PageClass {
    /// The permission pages of this class must have.
    pub const fn required(self) -> Permission {
        match self {
            Self::Code => Permission { writable: false, executable: true },
            Self::ReadOnly => Permission { writable: false, executable: false },
            Self::Data => Permission { writable: true, executable: false },
        }
    }

    /// The class of a segment with ELF flags `p_flags`; `None` for a
    /// segment that is writable and executable (which W^X forbids).
    pub const fn of_segment_flags(flags: u32) -> Option<Self> {
        match (flags & PF_W != 0, flags & PF_X != 0) {
            (true, true) => None,
            (false, true) => Some(Self::Code),
            (false, false) => Some(Self::ReadOnly),
            (true, false) => Some(Self::Data),
        }
    }

    /// Whether the hypervisor's code and constants live in pages of this
    /// class (what the integrity checksum covers).
    pub const fn is_protected(self) -> bool {
        matches!(self, Self::Code | Self::ReadOnly)
    }

    /// A short name for reports.
    pub const fn name(self) -> &'static str {
        match self {
            Self::Code => "code",
            Self::ReadOnly => "read-only data",
            Self::Data => "data",
        }
    }
}

/// The two permissions W^X is about, as a mapping grants them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Permission {
    /// Writes are allowed (R/W = 1 at every level, CR0.WP set).
    pub writable: bool,
    /// Instruction fetches are allowed (XD = 0 at every level, EFER.NXE set).
    pub executable: bool,
}

impl fmt::Display for Permission {
    /// `RW+NX`, `RX`, `R+NX` or `RWX`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match (self.writable, self.executable) {
            (true, true) => "RWX",
            (false, true) => "RX",
            (true, false) => "RW+NX",
            (false, false) => "R+NX",
        })
    }
}

/// Why the kernel image's layout could not be worked out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LayoutError {
    /// The bytes are not a little-endian ELF64 header for x86-64.
    NotElf64,
    /// The ELF type is neither `ET_EXEC` nor `ET_DYN`.
    NotExecutable {
        /// `e_type`.
        elf_type: u16,
    },
    /// The program header table is malformed or runs past the bytes.
    BadProgramHeaders,
    /// More loaded segments than [`MAX_KERNEL_SEGMENTS`].
    TooManySegments,
    /// A segment's address range overflows (with the load bias added).
    AddressOverflow {
        /// Program header index.
        index: usize,
    },
    /// A segment is writable and executable.
    WritableAndExecutable {
        /// Program header index.
        index: usize,
    },
    /// Two segments with different classes share a page, so that page
    /// cannot have both permissions.
    SegmentsSharePage {
        /// The page's address.
        page: u64,
    },
    /// No loaded segment.
    NoSegments,
}

impl fmt::Display for LayoutError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Self::NotElf64 => f.write_str("the kernel image is not an x86-64 ELF64 file"),
            Self::NotExecutable { elf_type } => write!(f, "the kernel image has ELF type {elf_type}"),
            Self::BadProgramHeaders => f.write_str("the kernel image's program headers are malformed"),
            Self::TooManySegments => write!(f, "the kernel image has more than {MAX_KERNEL_SEGMENTS} loaded segments"),
            Self::AddressOverflow { index } => write!(f, "kernel segment {index}: address range overflows"),
            Self::WritableAndExecutable { index } => {
                write!(f, "kernel segment {index} is writable and executable")
            }
            Self::SegmentsSharePage { page } => {
                write!(f, "two kernel segments of different kinds share the page at {page:#x}")
            }
            Self::NoSegments => f.write_str("the kernel image has no loaded segment"),
        }
    }
}

/// A page-aligned range `[start, end)` of the kernel image and its class.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PageRange {
    /// First byte (page-aligned).
    pub start: u64,
    /// One past the last byte (page-aligned).
    pub end: u64,
    /// What its pages hold.
    pub class: PageClass,
}

impl PageRange {
    /// Its number of pages.
    pub const fn pages(&self) -> u64 {
        (self.end - self.start) / PAGE_SIZE
    }

    /// Whether `address` lies inside it.
    pub const fn contains(&self, address: u64) -> bool {
        address >= self.start && address < self.end
    }
}

/// Where the kernel image's pages are and what each holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KernelLayout {
    segments: [PageRange; MAX_KERNEL_SEGMENTS],
    count: usize,
    /// The `PT_GNU_RELRO` pages, if any (read-only whatever their segment says).
    relro: Option<(u64, u64)>,
}

fn read_u16(bytes: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_le_bytes(bytes.get(at..at.checked_add(2)?)?.try_into().ok()?))
}

fn read_u32(bytes: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(bytes.get(at..at.checked_add(4)?)?.try_into().ok()?))
}

fn read_u64(bytes: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_le_bytes(bytes.get(at..at.checked_add(8)?)?.try_into().ok()?))
}

/// `[bias + vaddr, bias + vaddr + size)` widened to whole pages, or `None` if it overflows.
fn page_span(bias: u64, vaddr: u64, size: u64) -> Option<(u64, u64)> {
    let start = bias.checked_add(vaddr)?;
    let end = start.checked_add(size)?;
    let end = end.checked_next_multiple_of(PAGE_SIZE)?;
    Some((start & !(PAGE_SIZE - 1), end))
}

impl KernelLayout {
    /// Reads the layout from the kernel ELF file `bytes`, loaded with
    /// `load_bias` added to every segment address (the bootloader's
    /// `kernel_image_offset`; 0 for `ET_EXEC`).
    ///
    /// Segments of size 0 are skipped. The `PT_GNU_RELRO` range is widened
    /// to whole pages, as the loader does when it write-protects it.
    pub fn from_elf(bytes: &[u8], load_bias: u64) -> Result<Self, LayoutError> {
        let header = bytes.get(..ELF64_HEADER_LEN).ok_or(LayoutError::NotElf64)?;
        // Magic, 64-bit class, little-endian, x86-64 (e_machine 62).
        if header[0..4] != *b"\x7fELF" || header[4] != 2 || header[5] != 1 || read_u16(header, 18) != Some(62) {
            return Err(LayoutError::NotElf64);
        }
        let elf_type = read_u16(header, 16).ok_or(LayoutError::NotElf64)?;
        if elf_type != ET_EXEC && elf_type != ET_DYN {
            return Err(LayoutError::NotExecutable { elf_type });
        }
        let phoff = read_u64(header, 32).ok_or(LayoutError::BadProgramHeaders)?;
        let phentsize = read_u16(header, 54).ok_or(LayoutError::BadProgramHeaders)?;
        let phnum = usize::from(read_u16(header, 56).ok_or(LayoutError::BadProgramHeaders)?);
        if usize::from(phentsize) != PROGRAM_HEADER_LEN || phnum > MAX_PROGRAM_HEADERS {
            return Err(LayoutError::BadProgramHeaders);
        }
        let table = usize::try_from(phoff).map_err(|_| LayoutError::BadProgramHeaders)?;
        let table_end = table.checked_add(phnum * PROGRAM_HEADER_LEN).ok_or(LayoutError::BadProgramHeaders)?;
        let table = bytes.get(table..table_end).ok_or(LayoutError::BadProgramHeaders)?;

        let mut layout = Self {
            segments: [PageRange { start: 0, end: 0, class: PageClass::Data }; MAX_KERNEL_SEGMENTS],
            count: 0,
            relro: None,
        };
        for (index, header) in table.as_chunks::<PROGRAM_HEADER_LEN>().0.iter().enumerate() {
            let kind = read_u32(header, 0).ok_or(LayoutError::BadProgramHeaders)?;
            let flags = read_u32(header, 4).ok_or(LayoutError::BadProgramHeaders)?;
            let vaddr = read_u64(header, 16).ok_or(LayoutError::BadProgramHeaders)?;
            let mem_size = read_u64(header, 40).ok_or(LayoutError::BadProgramHeaders)?;
            if mem_size == 0 || (kind != PT_LOAD && kind != PT_GNU_RELRO) {
                continue;
            }
            let (start, end) = page_span(load_bias, vaddr, mem_size).ok_or(LayoutError::AddressOverflow { index })?;
            if kind == PT_GNU_RELRO {
                layout.relro = Some((start, end));
                continue;
            }
            let class = PageClass::of_segment_flags(flags).ok_or(LayoutError::WritableAndExecutable { index })?;
            if layout.count == MAX_KERNEL_SEGMENTS {
                return Err(LayoutError::TooManySegments);
            }
            layout.segments[layout.count] = PageRange { start, end, class };
            layout.count += 1;
        }
        if layout.count == 0 {
            return Err(LayoutError::NoSegments);
        }
        layout.check_shared_pages()?;
        Ok(layout)
    }

    /// Refuses two segments whose page ranges overlap with different classes
    /// (after the RELRO override) on the shared page.
    fn check_shared_pages(&self) -> Result<(), LayoutError> {
        for (i, first) in self.segments().iter().enumerate() {
            for second in &self.segments()[i + 1..] {
                let start = first.start.max(second.start);
                let end = first.end.min(second.end);
                let mut page = start;
                while page < end {
                    let relro = self.in_relro(page);
                    let first_class = if relro { PageClass::ReadOnly } else { first.class };
                    let second_class = if relro { PageClass::ReadOnly } else { second.class };
                    if first_class != second_class {
                        return Err(LayoutError::SegmentsSharePage { page });
                    }
                    page += PAGE_SIZE;
                }
            }
        }
        Ok(())
    }

    fn in_relro(&self, address: u64) -> bool {
        matches!(self.relro, Some((start, end)) if address >= start && address < end)
    }

    /// The loaded segments' page ranges, in program-header order (the RELRO
    /// override not applied: use [`Self::class_of`] for a page's class).
    pub fn segments(&self) -> &[PageRange] {
        &self.segments[..self.count]
    }

    /// The class of the page holding `address`, or `None` outside the image.
    pub fn class_of(&self, address: u64) -> Option<PageClass> {
        let segment = self.segments().iter().find(|segment| segment.contains(address))?;
        if self.in_relro(address) {
            return Some(PageClass::ReadOnly);
        }
        Some(segment.class)
    }

    /// The lowest and one past the highest address of the image.
    pub fn extent(&self) -> (u64, u64) {
        self.segments().iter().fold((u64::MAX, 0), |(low, high), s| (low.min(s.start), high.max(s.end)))
    }

    /// How many pages of each class the image has: (code, read-only, data).
    pub fn page_counts(&self) -> (u64, u64, u64) {
        let mut counts = (0, 0, 0);
        self.for_each_page(|_, class| match class {
            PageClass::Code => counts.0 += 1,
            PageClass::ReadOnly => counts.1 += 1,
            PageClass::Data => counts.2 += 1,
        });
        counts
    }

    /// Calls `visit(page, class)` for every page of the image, lowest first
    /// within each segment, each page once.
    pub fn for_each_page(&self, mut visit: impl FnMut(u64, PageClass)) {
        for (i, segment) in self.segments().iter().enumerate() {
            let mut page = segment.start;
            while page < segment.end {
                // A page shared with an earlier segment was visited already.
                let earlier = self.segments()[..i].iter().any(|s| s.contains(page));
                if !earlier {
                    if let Some(class) = self.class_of(page) {
                        visit(page, class);
                    }
                }
                page += PAGE_SIZE;
            }
        }
    }
}

/// A mapping that breaks W^X, found by [`check_mapping`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Violation {
    /// A page of the kernel image is not mapped with its class's permission.
    WrongPermission {
        /// What the page holds.
        class: PageClass,
        /// What the mapping grants.
        found: Permission,
    },
    /// A mapping outside the kernel's code is executable.
    ExecutableOutsideCode {
        /// What the mapping grants.
        found: Permission,
    },
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Self::WrongPermission { class, found } => {
                write!(f, "{} page mapped {found}, must be {}", class.name(), class.required())
            }
            Self::ExecutableOutsideCode { found } => {
                write!(f, "mapping outside the hypervisor's code is executable ({found})")
            }
        }
    }
}

/// Judges one mapping: `class` is the class of the page it maps (`None`
/// outside the kernel image), `found` the permission it grants, combined
/// over every paging level.
pub fn check_mapping(class: Option<PageClass>, found: Permission) -> Result<(), Violation> {
    match class {
        Some(class) if class.required() != found => Err(Violation::WrongPermission { class, found }),
        Some(_) => Ok(()),
        None if found.executable => Err(Violation::ExecutableOutsideCode { found }),
        None => Ok(()),
    }
}

/// The x86-64 paging-structure entry format, as far as W^X needs it (SDM Vol.
/// 3A, 4.5 "4-Level Paging and 5-Level Paging", Tables 4-15 to 4-20). Levels
/// are numbered as the walk descends: 4 = PML4E, 3 = PDPTE, 2 = PDE, 1 = PTE.
pub mod entry {
    use super::Permission;

    /// Bit 0: present.
    pub const PRESENT: u64 = 1 << 0;
    /// Bit 1: R/W, writes allowed.
    pub const WRITABLE: u64 = 1 << 1;
    /// Bit 7 of a PDPTE or PDE: PS, the entry maps a 1 GiB or 2 MiB page.
    pub const HUGE: u64 = 1 << 7;
    /// Bit 7 of a PTE: PAT — the position PS has one level up.
    pub const PTE_PAT: u64 = 1 << 7;
    /// Bit 12 of a PDPTE/PDE that maps a page: PAT.
    pub const HUGE_PAT: u64 = 1 << 12;
    /// Bit 63: XD, execute-disable (honoured when EFER.NXE = 1).
    pub const NO_EXECUTE: u64 = 1 << 63;
    /// Bits 51:12: the physical address of a table or a 4 KiB page.
    pub const ADDRESS_MASK: u64 = 0x000F_FFFF_FFFF_F000;

    /// Bytes one entry at `level` covers: 4 KiB at level 1, 2 MiB at 2, 1 GiB at 3, 512 GiB at 4.
    pub const fn coverage(level: u8) -> u64 {
        1 << (12 + 9 * (level as u32 - 1))
    }

    /// Whether a present entry at `level` maps a page (rather than pointing at a table).
    pub const fn is_leaf(entry: u64, level: u8) -> bool {
        level == 1 || ((level == 2 || level == 3) && entry & HUGE != 0)
    }

    /// The physical address an entry at `level` points to: a table, or the
    /// page it maps (for a large page, without the PAT bit 12 and the
    /// reserved bits below the page's alignment).
    pub const fn address(entry: u64, level: u8) -> u64 {
        if is_leaf(entry, level) {
            entry & ADDRESS_MASK & !(coverage(level) - 1)
        } else {
            entry & ADDRESS_MASK
        }
    }

    /// `address` with bit 47 copied into bits 63:48 (SDM Vol. 3A, 3.3.7.1
    /// "Canonical Addressing").
    pub const fn canonical(address: u64) -> u64 {
        (((address << 16) as i64) >> 16) as u64
    }

    /// What the entries below an entry may still grant: a page is writable
    /// only if every level sets R/W, executable only if no level sets XD
    /// (SDM Vol. 3A, 4.6.1 "Determination of Access Rights").
    pub const fn permission_below(above: Permission, entry: u64) -> Permission {
        Permission {
            writable: above.writable && entry & WRITABLE != 0,
            executable: above.executable && entry & NO_EXECUTE == 0,
        }
    }

    /// `entry` with its R/W and XD bits set to grant `permission`; every other bit kept.
    pub const fn with_permission(entry: u64, permission: Permission) -> u64 {
        let entry = if permission.writable { entry | WRITABLE } else { entry & !WRITABLE };
        if permission.executable {
            entry & !NO_EXECUTE
        } else {
            entry | NO_EXECUTE
        }
    }

    /// Entry `index` (0..512) of the table that replaces the large page
    /// `entry` at `level` (3 or 2): the same memory, `coverage(level - 1)`
    /// bytes per entry, with the same attributes; PAT moves from bit 12 to
    /// bit 7 when the children are 4 KiB pages (Table 4-18 vs. 4-20).
    pub const fn split_child(entry: u64, level: u8, index: usize) -> u64 {
        let base = address(entry, level);
        let attributes = entry & !ADDRESS_MASK & !HUGE & !HUGE_PAT;
        let pat = entry & HUGE_PAT != 0;
        let child_attributes = if level == 3 {
            attributes | HUGE | if pat { HUGE_PAT } else { 0 }
        } else {
            attributes | if pat { PTE_PAT } else { 0 }
        };
        (base + index as u64 * coverage(level - 1)) | child_attributes
    }

    /// The entry that points at the table replacing the large page `entry`:
    /// present, with the large page's R/W and XD (so that each child's
    /// combined permission equals the large page's).
    pub const fn split_parent(table: u64, entry: u64) -> u64 {
        (table & ADDRESS_MASK) | PRESENT | (entry & (WRITABLE | NO_EXECUTE))
    }
}

/// The 64-bit FNV-1a hash (Fowler, Noll, Vo): for each byte, XOR it into
/// the state, then multiply by the FNV prime. It is an integrity check
/// against accidents (a stray write, a bug), **not** a cryptographic hash:
/// anyone who can write the hypervisor's memory can also make the checksum
/// come out unchanged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fnv1a64(u64);

impl Fnv1a64 {
    /// The FNV-1a 64-bit offset basis.
    pub const OFFSET_BASIS: u64 = 0xCBF2_9CE4_8422_2325;
    /// The FNV 64-bit prime, 2^40 + 2^8 + 0xB3.
    pub const PRIME: u64 = 0x0000_0100_0000_01B3;

    /// A fresh hash (the offset basis).
    pub const fn new() -> Self {
        Self(Self::OFFSET_BASIS)
    }

    /// Feeds `bytes`.
    pub fn update(&mut self, bytes: &[u8]) {
        for &byte in bytes {
            self.0 = (self.0 ^ u64::from(byte)).wrapping_mul(Self::PRIME);
        }
    }

    /// Feeds `bytes` eight at a time, each 8-byte little-endian word as one
    /// FNV-1a step (then any tail bytes one by one): the same mixing, an
    /// eighth of the steps. Not the standard byte-wise FNV-1a value; the
    /// image checksum uses it because the kernel hashes ~400 KiB at start and
    /// again at the end, and in Bochs every step is emulated time.
    pub fn update_words(&mut self, bytes: &[u8]) {
        let (words, tail) = bytes.as_chunks::<8>();
        for word in words {
            self.0 = (self.0 ^ u64::from_le_bytes(*word)).wrapping_mul(Self::PRIME);
        }
        self.update(tail);
    }

    /// The hash of everything fed so far.
    pub const fn finish(&self) -> u64 {
        self.0
    }
}

impl Default for Fnv1a64 {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::string::ToString;
    use std::vec::Vec;

    /// An ELF64 header + program headers: (type, flags, vaddr, memsz) each.
    fn elf(elf_type: u16, headers: &[(u32, u32, u64, u64)]) -> Vec<u8> {
        let mut bytes = std::vec![0u8; ELF64_HEADER_LEN];
        bytes[0..4].copy_from_slice(b"\x7fELF");
        bytes[4] = 2;
        bytes[5] = 1;
        bytes[6] = 1;
        bytes[16..18].copy_from_slice(&elf_type.to_le_bytes());
        bytes[18..20].copy_from_slice(&62u16.to_le_bytes());
        bytes[32..40].copy_from_slice(&64u64.to_le_bytes());
        bytes[54..56].copy_from_slice(&(PROGRAM_HEADER_LEN as u16).to_le_bytes());
        bytes[56..58].copy_from_slice(&(headers.len() as u16).to_le_bytes());
        for &(kind, flags, vaddr, mem_size) in headers {
            let mut header = [0u8; PROGRAM_HEADER_LEN];
            header[0..4].copy_from_slice(&kind.to_le_bytes());
            header[4..8].copy_from_slice(&flags.to_le_bytes());
            header[16..24].copy_from_slice(&vaddr.to_le_bytes());
            header[40..48].copy_from_slice(&mem_size.to_le_bytes());
            bytes.extend_from_slice(&header);
        }
        bytes
    }

    const R: u32 = 4;
    const RX: u32 = 5;
    const RW: u32 = 6;
    const RWX: u32 = 7;

    /// The layout lld gives the kernel: R, RX, RW (RELRO), RW (data + bss).
    fn kernel_like() -> Vec<u8> {
        elf(
            ET_DYN,
            &[
                (6, R, 0x40, 0x1f8), // PT_PHDR: not loaded, ignored
                (PT_LOAD, R, 0, 0x12384),
                (PT_LOAD, RX, 0x13390, 0x2b9ff),
                (PT_LOAD, RW, 0x3fd90, 0x4270),
                (PT_LOAD, RW, 0x44d38, 0x4122c8),
                (PT_GNU_RELRO, R, 0x3fd90, 0x4270),
                (0x6474_E551, RW, 0, 0), // PT_GNU_STACK: size 0, ignored
            ],
        )
    }

    #[test]
    fn classes_follow_segment_flags() {
        assert_eq!(PageClass::of_segment_flags(R), Some(PageClass::ReadOnly));
        assert_eq!(PageClass::of_segment_flags(RX), Some(PageClass::Code));
        assert_eq!(PageClass::of_segment_flags(RW), Some(PageClass::Data));
        assert_eq!(PageClass::of_segment_flags(RWX), None);
        // Execute-only and write-only segments still get W^X permissions.
        assert_eq!(PageClass::of_segment_flags(PF_X), Some(PageClass::Code));
        assert_eq!(PageClass::of_segment_flags(PF_W), Some(PageClass::Data));
        assert_eq!(PageClass::of_segment_flags(0), Some(PageClass::ReadOnly));
    }

    #[test]
    fn required_permissions_are_never_writable_and_executable() {
        for class in [PageClass::Code, PageClass::ReadOnly, PageClass::Data] {
            let permission = class.required();
            assert!(!(permission.writable && permission.executable), "{class:?}");
        }
        assert_eq!(PageClass::Code.required().to_string(), "RX");
        assert_eq!(PageClass::ReadOnly.required().to_string(), "R+NX");
        assert_eq!(PageClass::Data.required().to_string(), "RW+NX");
        assert!(PageClass::Code.is_protected() && PageClass::ReadOnly.is_protected());
        assert!(!PageClass::Data.is_protected());
    }

    #[test]
    fn the_kernel_layout_with_a_load_bias() {
        let bias = 0x8000_0000_0000;
        let layout = KernelLayout::from_elf(&kernel_like(), bias).unwrap();
        assert_eq!(layout.segments().len(), 4);
        assert_eq!(layout.class_of(bias), Some(PageClass::ReadOnly)); // the ELF header
        assert_eq!(layout.class_of(bias + 0x12fff), Some(PageClass::ReadOnly));
        assert_eq!(layout.class_of(bias + 0x13000), Some(PageClass::Code));
        assert_eq!(layout.class_of(bias + 0x3efff), Some(PageClass::Code));
        assert_eq!(layout.class_of(bias + 0x3f000), Some(PageClass::ReadOnly)); // RELRO
        assert_eq!(layout.class_of(bias + 0x43fff), Some(PageClass::ReadOnly));
        assert_eq!(layout.class_of(bias + 0x44000), Some(PageClass::Data));
        assert_eq!(layout.class_of(bias + 0x456fff), Some(PageClass::Data));
        assert_eq!(layout.class_of(bias + 0x457000), None);
        assert_eq!(layout.class_of(bias - 1), None);
        assert_eq!(layout.extent(), (bias, bias + 0x457000));
        // 0x13 R pages + 0x2c code pages + 5 RELRO pages + 0x413 data pages.
        assert_eq!(layout.page_counts(), (0x2c, 0x13 + 5, 0x413));
    }

    #[test]
    fn every_page_is_visited_once() {
        let layout = KernelLayout::from_elf(&kernel_like(), 0x1000_0000).unwrap();
        let mut pages = Vec::new();
        layout.for_each_page(|page, class| pages.push((page, class)));
        let (code, read_only, data) = layout.page_counts();
        assert_eq!(pages.len() as u64, code + read_only + data);
        let mut sorted: Vec<u64> = pages.iter().map(|p| p.0).collect();
        sorted.sort_unstable();
        sorted.dedup();
        assert_eq!(sorted.len(), pages.len());
        assert!(pages.iter().all(|&(page, class)| page % PAGE_SIZE == 0 && layout.class_of(page) == Some(class)));
    }

    #[test]
    fn an_executable_image_without_relro() {
        let image = elf(ET_EXEC, &[(PT_LOAD, RX, 0x20_0000, 0x1001), (PT_LOAD, RW, 0x20_2000, 0x10)]);
        let layout = KernelLayout::from_elf(&image, 0).unwrap();
        assert_eq!(layout.page_counts(), (2, 0, 1));
        assert_eq!(layout.class_of(0x20_1fff), Some(PageClass::Code));
        assert_eq!(layout.class_of(0x20_2000), Some(PageClass::Data));
        assert_eq!(layout.class_of(0x20_3000), None);
    }

    #[test]
    fn refusals() {
        assert_eq!(KernelLayout::from_elf(&[0; 10], 0), Err(LayoutError::NotElf64));
        let mut bad_magic = kernel_like();
        bad_magic[1] = b'X';
        assert_eq!(KernelLayout::from_elf(&bad_magic, 0), Err(LayoutError::NotElf64));
        let mut wrong_machine = kernel_like();
        wrong_machine[18] = 3;
        assert_eq!(KernelLayout::from_elf(&wrong_machine, 0), Err(LayoutError::NotElf64));
        assert_eq!(
            KernelLayout::from_elf(&elf(1, &[(PT_LOAD, R, 0, 1)]), 0),
            Err(LayoutError::NotExecutable { elf_type: 1 })
        );
        assert_eq!(
            KernelLayout::from_elf(&elf(ET_DYN, &[(PT_LOAD, RX, 0, 1), (PT_LOAD, RWX, 0x1000, 1)]), 0),
            Err(LayoutError::WritableAndExecutable { index: 1 })
        );
        assert_eq!(KernelLayout::from_elf(&elf(ET_DYN, &[]), 0), Err(LayoutError::NoSegments));
        assert_eq!(KernelLayout::from_elf(&elf(ET_DYN, &[(PT_LOAD, RX, 0, 0)]), 0), Err(LayoutError::NoSegments));
        // Code and data on one page.
        assert_eq!(
            KernelLayout::from_elf(&elf(ET_DYN, &[(PT_LOAD, RX, 0, 0x10), (PT_LOAD, RW, 0x800, 0x10)]), 0),
            Err(LayoutError::SegmentsSharePage { page: 0 })
        );
        // Overflow with the bias, and at the top of the address space.
        assert_eq!(
            KernelLayout::from_elf(&elf(ET_DYN, &[(PT_LOAD, RX, 0x1000, 0x10)]), u64::MAX - 0x100),
            Err(LayoutError::AddressOverflow { index: 0 })
        );
        assert_eq!(
            KernelLayout::from_elf(&elf(ET_DYN, &[(PT_LOAD, RX, u64::MAX - 0x10, 0x8)]), 0),
            Err(LayoutError::AddressOverflow { index: 0 })
        );
        // A program header table past the end of the bytes.
        let mut truncated = kernel_like();
        truncated.truncate(ELF64_HEADER_LEN + PROGRAM_HEADER_LEN);
        assert_eq!(KernelLayout::from_elf(&truncated, 0), Err(LayoutError::BadProgramHeaders));
        let many: Vec<_> = (0..17).map(|i| (PT_LOAD, R, i * 0x1000, 0x10)).collect();
        assert_eq!(KernelLayout::from_elf(&elf(ET_DYN, &many), 0), Err(LayoutError::TooManySegments));
    }

    #[test]
    fn two_read_only_segments_may_share_a_page() {
        // Two segments of one class on one page are harmless (one permission fits both).
        let layout = KernelLayout::from_elf(&elf(ET_DYN, &[(PT_LOAD, R, 0, 0x10), (PT_LOAD, R, 0x800, 0x10)]), 0);
        assert_eq!(layout.map(|l| l.page_counts()), Ok((0, 1, 0)));
        // A RELRO page shared by a read-only and a (relocated) writable segment is read-only in both.
        let image = elf(ET_DYN, &[(PT_LOAD, R, 0, 0x10), (PT_LOAD, RW, 0x800, 0x10), (PT_GNU_RELRO, R, 0x800, 0x10)]);
        let layout = KernelLayout::from_elf(&image, 0).unwrap();
        assert_eq!(layout.class_of(0x800), Some(PageClass::ReadOnly));
    }

    #[test]
    fn judging_mappings() {
        let rx = Permission { writable: false, executable: true };
        let rw_nx = Permission { writable: true, executable: false };
        let r_nx = Permission { writable: false, executable: false };
        let rwx = Permission { writable: true, executable: true };
        assert_eq!(check_mapping(Some(PageClass::Code), rx), Ok(()));
        assert_eq!(check_mapping(Some(PageClass::ReadOnly), r_nx), Ok(()));
        assert_eq!(check_mapping(Some(PageClass::Data), rw_nx), Ok(()));
        assert_eq!(
            check_mapping(Some(PageClass::Code), rwx),
            Err(Violation::WrongPermission { class: PageClass::Code, found: rwx })
        );
        // Code that is not executable is wrong too (the exact permission is required).
        assert!(check_mapping(Some(PageClass::Code), r_nx).is_err());
        assert!(check_mapping(Some(PageClass::ReadOnly), rw_nx).is_err());
        assert!(check_mapping(Some(PageClass::ReadOnly), rx).is_err());
        assert!(check_mapping(Some(PageClass::Data), r_nx).is_err());
        assert!(check_mapping(Some(PageClass::Data), rwx).is_err());
        assert_eq!(check_mapping(None, rw_nx), Ok(()));
        assert_eq!(check_mapping(None, r_nx), Ok(()));
        assert_eq!(check_mapping(None, rx), Err(Violation::ExecutableOutsideCode { found: rx }));
        assert_eq!(check_mapping(None, rwx), Err(Violation::ExecutableOutsideCode { found: rwx }));
        assert_eq!(
            Violation::WrongPermission { class: PageClass::Code, found: rwx }.to_string(),
            "code page mapped RWX, must be RX"
        );
    }

    #[test]
    fn entry_addresses_and_levels() {
        use entry::*;
        assert_eq!(coverage(1), 4096);
        assert_eq!(coverage(2), 2 << 20);
        assert_eq!(coverage(3), 1 << 30);
        // A table pointer keeps bits 51:12; a 2 MiB page drops the PAT bit 12 and bits 20:13.
        assert_eq!(address(0x8000_0000_1234_5003, 4), 0x1234_5000);
        assert_eq!(address(0x0000_0000_4020_1083 | HUGE_PAT, 2), 0x4020_0000);
        assert_eq!(address(0x0000_0000_4020_1003, 2), 0x4020_1000); // no PS: a table
        assert_eq!(address(0x0000_0001_4000_1083, 3), 0x1_4000_0000);
        assert!(is_leaf(0x1, 1) && is_leaf(0x81, 2) && is_leaf(0x81, 3));
        assert!(!is_leaf(0x81, 4) && !is_leaf(0x1, 2));
        assert_eq!(canonical(0x0000_8000_0000_0000), 0xFFFF_8000_0000_0000);
        assert_eq!(canonical(0x0000_7FFF_FFFF_F000), 0x0000_7FFF_FFFF_F000);
    }

    #[test]
    fn permissions_combine_down_the_walk_and_are_set_exactly() {
        use entry::*;
        let all = Permission { writable: true, executable: true };
        assert_eq!(permission_below(all, PRESENT | WRITABLE), all);
        assert_eq!(permission_below(all, PRESENT), Permission { writable: false, executable: true });
        let read_only_nx = Permission { writable: false, executable: false };
        assert_eq!(permission_below(all, PRESENT | NO_EXECUTE), read_only_nx);
        // Once a level forbids, lower levels cannot grant again.
        assert_eq!(permission_below(read_only_nx, PRESENT | WRITABLE), read_only_nx);
        let pte = 0x1234_5000 | PRESENT | WRITABLE | (1 << 5) | PTE_PAT;
        for class in [PageClass::Code, PageClass::ReadOnly, PageClass::Data] {
            let set = with_permission(pte, class.required());
            assert_eq!(permission_below(all, set), class.required(), "{class:?}");
            // Address, accessed and PAT bits are untouched.
            assert_eq!(set & !(WRITABLE | NO_EXECUTE), pte & !(WRITABLE | NO_EXECUTE));
        }
    }

    #[test]
    fn splitting_large_pages_keeps_translation_and_attributes() {
        use entry::*;
        // A 2 MiB page at 0x4020_0000: writable, no-execute, PCD (bit 4), global (bit 8), PAT.
        let large = 0x4020_0000 | PRESENT | WRITABLE | (1 << 4) | HUGE | (1 << 8) | HUGE_PAT | NO_EXECUTE;
        let expected_attributes = PRESENT | WRITABLE | (1 << 4) | (1 << 8) | PTE_PAT | NO_EXECUTE;
        for index in [0, 1, 511] {
            let child = split_child(large, 2, index);
            assert_eq!(address(child, 1), 0x4020_0000 + index as u64 * 4096);
            // PS is gone, PAT moved from bit 12 (an address bit in a PTE) to bit 7.
            assert_eq!(child & !ADDRESS_MASK, expected_attributes, "child {index}");
        }
        // Without PAT, bit 7 of the children stays clear (it is not PS there).
        assert_eq!(split_child(0x20_0000 | PRESENT | HUGE, 2, 3), 0x20_3000 | PRESENT);
        // A 1 GiB page becomes 2 MiB pages: PS and PAT (bit 12) stay where they are.
        let giant = 0x4000_0000 | PRESENT | HUGE | HUGE_PAT;
        let child = split_child(giant, 3, 5);
        assert_eq!(child, (0x4000_0000 + 5 * (2 << 20)) | PRESENT | HUGE | HUGE_PAT);
        assert!(is_leaf(child, 2));
        assert_eq!(address(child, 2), 0x40A0_0000);
        // The new table entry: present, the large page's R/W and XD, nothing else.
        assert_eq!(split_parent(0x7000, large), 0x7000 | PRESENT | WRITABLE | NO_EXECUTE);
        assert_eq!(split_parent(0x7000, PRESENT | HUGE), 0x7000 | PRESENT);
        let all = Permission { writable: true, executable: true };
        let combined = permission_below(permission_below(all, split_parent(0x7000, large)), split_child(large, 2, 9));
        assert_eq!(combined, permission_below(all, large));
    }

    #[test]
    fn fnv1a_known_values() {
        // Reference values of the FNV-1a 64-bit hash.
        let hash = |bytes: &[u8]| {
            let mut h = Fnv1a64::new();
            h.update(bytes);
            h.finish()
        };
        assert_eq!(hash(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(hash(b"a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(hash(b"foobar"), 0x8594_4171_f739_67e8);
        // Feeding in pieces is the same as feeding at once.
        // The word-wise variant differs from the byte-wise one, depends on
        // every byte, and handles a tail shorter than a word.
        let mut words = Fnv1a64::new();
        words.update_words(b"foobarfoobar!");
        let mut bytewise = Fnv1a64::new();
        bytewise.update(b"foobarfoobar!");
        assert_ne!(words.finish(), bytewise.finish());
        let mut flipped = Fnv1a64::new();
        flipped.update_words(b"foobarfoobas!");
        assert_ne!(words.finish(), flipped.finish());
        let mut tail = Fnv1a64::new();
        tail.update_words(b"foobarfoobar?");
        assert_ne!(words.finish(), tail.finish());

        let mut pieces = Fnv1a64::default();
        pieces.update(b"foo");
        pieces.update(b"bar");
        assert_eq!(pieces.finish(), hash(b"foobar"));
        // One flipped bit changes the hash.
        assert_ne!(hash(b"foobar"), hash(b"foobas"));
        assert_ne!(hash(&[0u8; 4096]), hash(&[0u8; 4095]));
    }
}
