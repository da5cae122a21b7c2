//! Extended page tables (EPT): the second stage of address translation, from
//! guest-physical to host-physical addresses.
//!
//! With EPT enabled, every guest-physical address the guest uses goes through a
//! four-level table tree much like ordinary x86-64 paging (SDM Vol. 3C, 29.3
//! "The Extended Page Table Mechanism (EPT)"):
//!
//! | level | table | indexed by GPA bits | a leaf here maps |
//! |---|---|---|---|
//! | 4 | EPT PML4 | 47:39 | — (never a leaf) |
//! | 3 | EPT page-directory-pointer table | 38:30 | 1 GiB (not used here) |
//! | 2 | EPT page directory | 29:21 | 2 MiB (bit 7 set) |
//! | 1 | EPT page table | 20:12 | 4 KiB |
//!
//! An entry is present when any of its read/write/execute bits is set (SDM Vol.
//! 3C, 29.3.2 "EPT Translation Mechanism"). [`EptBuilder`] builds such a tree
//! over an [`EptTableAllocator`], which owns the 4 KiB table frames: the kernel
//! implements it with its frame allocator and physical-memory map, the tests
//! with vectors and made-up physical addresses.
//!
//! Guest RAM is mapped with 2 MiB pages wherever guest and host addresses are
//! both 2 MiB-aligned (one entry instead of 512, fewer TLB misses) and with
//! 4 KiB pages elsewhere. Single 4 KiB pages can later be unmapped (splitting
//! a 2 MiB page if needed) so that accesses to them cause EPT violations, e.g.
//! to emulate an MMIO device.
//!
//! Changing a tree the processor may have cached requires `INVEPT` afterwards;
//! that is the kernel's job.

use core::fmt;

use crate::guest_memory::GuestRamLayout;

/// Size of a small page.
pub const PAGE_SIZE_4KIB: u64 = 1 << 12;
/// Size of a large page.
pub const PAGE_SIZE_2MIB: u64 = 1 << 21;
/// Entries in one EPT table (each table is one 4 KiB frame).
pub const ENTRIES_PER_TABLE: usize = 512;
/// Guest-physical addresses must lie below 2^48 with a four-level walk.
pub const GUEST_ADDRESS_LIMIT: u64 = 1 << 48;
/// Host-physical addresses must lie below 2^52 (the largest possible MAXPHYADDR).
pub const HOST_ADDRESS_LIMIT: u64 = 1 << 52;

/// One EPT table: 512 entries.
pub type EptTable = [u64; ENTRIES_PER_TABLE];

/// Bits 51:12 of an entry: the physical address of a page or of the next table.
const ADDRESS_MASK: u64 = 0x000F_FFFF_FFFF_F000;
/// Bits 2:0: read, write, execute.
const PERMISSION_MASK: u64 = 0b111;
/// Bits 5:3 of a leaf: the EPT memory type.
const MEMORY_TYPE_SHIFT: u32 = 3;
const MEMORY_TYPE_MASK: u64 = 0b111 << MEMORY_TYPE_SHIFT;
/// Bit 6 of a leaf: ignore the guest's PAT memory type.
const IGNORE_PAT_BIT: u64 = 1 << 6;
/// Bit 7 of a PDPTE or PDE: this entry maps a page instead of a table.
const LARGE_PAGE_BIT: u64 = 1 << 7;
/// Bit 8: accessed (set by the processor when A/D flags are enabled).
const ACCESSED_BIT: u64 = 1 << 8;
/// Bit 9 of a leaf: dirty (set by the processor when A/D flags are enabled).
const DIRTY_BIT: u64 = 1 << 9;

/// Page sizes of leaf entries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum PageSize {
    /// A 4 KiB page, mapped by a page-table entry.
    Size4KiB,
    /// A 2 MiB page, mapped by a page-directory entry with bit 7 set.
    Size2MiB,
    /// A 1 GiB page, mapped by a PDPT entry with bit 7 set. This builder never
    /// creates them (not every processor supports them), but the walkers decode them.
    Size1GiB,
}

impl PageSize {
    /// The page's size in bytes.
    pub const fn bytes(self) -> u64 {
        match self {
            Self::Size4KiB => PAGE_SIZE_4KIB,
            Self::Size2MiB => PAGE_SIZE_2MIB,
            Self::Size1GiB => 1 << 30,
        }
    }

    /// The table level whose entries map pages of this size (1 = page table).
    const fn level(self) -> u32 {
        match self {
            Self::Size4KiB => 1,
            Self::Size2MiB => 2,
            Self::Size1GiB => 3,
        }
    }

    /// The size of a leaf found at `level`.
    const fn at_level(level: u32) -> Option<Self> {
        match level {
            1 => Some(Self::Size4KiB),
            2 => Some(Self::Size2MiB),
            3 => Some(Self::Size1GiB),
            _ => None,
        }
    }
}

/// The access rights of an EPT entry: bits 0 (read), 1 (write), 2 (execute).
///
/// Not every combination is allowed: write without read is an EPT
/// misconfiguration (SDM Vol. 3C, 29.3.3.1 "EPT Misconfigurations"), and
/// no rights at all means "not present". [`EptBuilder`] refuses both for
/// mappings. Execute-only needs a processor capability
/// (IA32_VMX_EPT_VPID_CAP bit 0) that the caller must check.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct EptPermissions(u8);

impl EptPermissions {
    /// No access: the entry is not present.
    pub const NONE: Self = Self(0);
    /// Reads allowed.
    pub const READ: Self = Self(1);
    /// Writes allowed.
    pub const WRITE: Self = Self(2);
    /// Instruction fetches allowed.
    pub const EXECUTE: Self = Self(4);
    /// Read and write.
    pub const READ_WRITE: Self = Self(1 | 2);
    /// Read and execute.
    pub const READ_EXECUTE: Self = Self(1 | 4);
    /// Everything: what guest RAM normally gets.
    pub const ALL: Self = Self(1 | 2 | 4);

    /// Permissions from bits 2:0 (higher bits are dropped).
    pub const fn from_bits(bits: u8) -> Self {
        Self(bits & 0b111)
    }

    /// Bits 2:0.
    pub const fn bits(self) -> u8 {
        self.0
    }

    /// The union of two sets of permissions.
    pub const fn union(self, other: Self) -> Self {
        Self(self.0 | other.0)
    }

    /// Whether all of `other`'s rights are in `self`.
    pub const fn contains(self, other: Self) -> bool {
        self.0 & other.0 == other.0
    }

    /// Whether reads are allowed.
    pub const fn readable(self) -> bool {
        self.contains(Self::READ)
    }

    /// Whether writes are allowed.
    pub const fn writable(self) -> bool {
        self.contains(Self::WRITE)
    }

    /// Whether instruction fetches are allowed.
    pub const fn executable(self) -> bool {
        self.contains(Self::EXECUTE)
    }

    /// Whether a present mapping may have these rights: not empty, and no
    /// write without read.
    pub const fn is_valid_mapping(self) -> bool {
        self.0 != 0 && !(self.writable() && !self.readable())
    }
}

impl fmt::Display for EptPermissions {
    /// `rwx`, with `-` for each missing right.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let flag = |set: bool, letter: char| if set { letter } else { '-' };
        write!(f, "{}{}{}", flag(self.readable(), 'r'), flag(self.writable(), 'w'), flag(self.executable(), 'x'))
    }
}

/// EPT memory types, used in bits 5:3 of leaf entries and bits 2:0 of the EPTP
/// (SDM Vol. 3C, 29.3.7 "EPT and Memory Typing").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum EptMemoryType {
    /// UC: uncacheable; for device memory.
    Uncacheable = 0,
    /// WC: write combining.
    WriteCombining = 1,
    /// WT: write-through.
    WriteThrough = 4,
    /// WP: write-protected.
    WriteProtected = 5,
    /// WB: write-back; for RAM.
    WriteBack = 6,
}

impl EptMemoryType {
    /// Decodes a 3-bit memory type; `None` for the reserved values 2, 3 and 7.
    pub const fn from_bits(bits: u8) -> Option<Self> {
        match bits {
            0 => Some(Self::Uncacheable),
            1 => Some(Self::WriteCombining),
            4 => Some(Self::WriteThrough),
            5 => Some(Self::WriteProtected),
            6 => Some(Self::WriteBack),
            _ => None,
        }
    }
}

/// The extended-page-table pointer, the VMCS field that tells the processor
/// where the EPT PML4 table is and how to walk it (SDM Vol. 3C, 25.6.11
/// "Extended-Page-Table Pointer (EPTP)"):
///
/// | bits | meaning | value here |
/// |---|---|---|
/// | 2:0 | memory type for accesses to the EPT tables | 6 (write-back) |
/// | 5:3 | page-walk length minus 1 | 3 (four levels) |
/// | 6 | enable accessed and dirty flags | optional |
/// | 7 | enforce supervisor shadow-stack rights | 0 |
/// | 11:8 | reserved | 0 |
/// | 51:12 | physical address of the EPT PML4 table | |
///
/// Write-back for the tables needs IA32_VMX_EPT_VPID_CAP bit 14, four-level
/// walks bit 6, and A/D flags bit 21; the kernel checks those.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct EptPointer(u64);

impl EptPointer {
    /// Page-walk length 4, encoded as 3 in bits 5:3.
    const WALK_LENGTH_4: u64 = 3 << 3;
    /// Bit 6: accessed and dirty flags.
    const ACCESSED_DIRTY_BIT: u64 = 1 << 6;

    /// The EPTP for a PML4 table at host-physical `pml4`, with write-back table
    /// accesses and a four-level walk, and with accessed/dirty flags if asked
    /// (SDM Vol. 3C, 29.3.4 "Accessed and Dirty Flags for EPT").
    pub const fn new(pml4: u64, accessed_dirty: bool) -> Result<Self, EptError> {
        if pml4 & !ADDRESS_MASK != 0 {
            return Err(EptError::BadTableAddress { phys: pml4 });
        }
        let mut bits = pml4 | EptMemoryType::WriteBack as u64 | Self::WALK_LENGTH_4;
        if accessed_dirty {
            bits |= Self::ACCESSED_DIRTY_BIT;
        }
        Ok(Self(bits))
    }

    /// The raw value, as written to the VMCS.
    pub const fn bits(self) -> u64 {
        self.0
    }

    /// The host-physical address of the PML4 table.
    pub const fn pml4(self) -> u64 {
        self.0 & ADDRESS_MASK
    }

    /// The memory type used for accesses to the EPT tables (bits 2:0).
    pub const fn memory_type(self) -> Option<EptMemoryType> {
        EptMemoryType::from_bits((self.0 & 0b111) as u8)
    }

    /// The page-walk length (bits 5:3 plus one).
    pub const fn walk_length(self) -> u8 {
        ((self.0 >> 3) & 0b111) as u8 + 1
    }

    /// Whether accessed and dirty flags are enabled (bit 6).
    pub const fn accessed_dirty(self) -> bool {
        self.0 & Self::ACCESSED_DIRTY_BIT != 0
    }
}

/// One 64-bit EPT entry, at any level (SDM Vol. 3C, 29.3.2 "EPT Translation
/// Mechanism"):
///
/// | bits | in a table reference | in a leaf (page) |
/// |---|---|---|
/// | 0, 1, 2 | read, write, execute for everything below | read, write, execute |
/// | 5:3 | reserved (0) | memory type |
/// | 6 | ignored | ignore PAT |
/// | 7 | 0 | 1 in a PDPTE/PDE (large page); ignored in a PTE |
/// | 8 | accessed | accessed |
/// | 9 | ignored | dirty |
/// | 51:12 | next table's address | page address (bits 20:12 / 29:12 zero for large pages) |
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct EptEntry(pub u64);

impl EptEntry {
    /// An empty (not present) entry.
    pub const EMPTY: Self = Self(0);

    /// An entry referencing the next-level table at `phys`. It grants all
    /// rights so that the leaf's rights alone decide.
    pub const fn table(phys: u64) -> Self {
        Self((phys & ADDRESS_MASK) | EptPermissions::ALL.0 as u64)
    }

    /// A leaf entry mapping a page of `size` at `hpa`.
    pub const fn page(
        hpa: u64,
        size: PageSize,
        permissions: EptPermissions,
        memory_type: EptMemoryType,
        ignore_pat: bool,
    ) -> Self {
        let mut bits = (hpa & ADDRESS_MASK) | permissions.0 as u64 | ((memory_type as u64) << MEMORY_TYPE_SHIFT);
        if ignore_pat {
            bits |= IGNORE_PAT_BIT;
        }
        if !matches!(size, PageSize::Size4KiB) {
            bits |= LARGE_PAGE_BIT;
        }
        Self(bits)
    }

    /// Whether the entry is present (any of bits 2:0 set).
    pub const fn is_present(self) -> bool {
        self.0 & PERMISSION_MASK != 0
    }

    /// The entry's rights (bits 2:0).
    pub const fn permissions(self) -> EptPermissions {
        EptPermissions::from_bits((self.0 & PERMISSION_MASK) as u8)
    }

    /// Bit 7: in a PDPTE or PDE, the entry maps a page rather than a table.
    pub const fn is_large_page(self) -> bool {
        self.0 & LARGE_PAGE_BIT != 0
    }

    /// The physical address in bits 51:12.
    pub const fn address(self) -> u64 {
        self.0 & ADDRESS_MASK
    }

    /// A leaf's memory type (bits 5:3); `None` for a reserved encoding.
    pub const fn memory_type(self) -> Option<EptMemoryType> {
        EptMemoryType::from_bits(((self.0 & MEMORY_TYPE_MASK) >> MEMORY_TYPE_SHIFT) as u8)
    }

    /// A leaf's ignore-PAT bit (bit 6).
    pub const fn ignore_pat(self) -> bool {
        self.0 & IGNORE_PAT_BIT != 0
    }

    /// The accessed flag (bit 8).
    pub const fn accessed(self) -> bool {
        self.0 & ACCESSED_BIT != 0
    }

    /// A leaf's dirty flag (bit 9).
    pub const fn dirty(self) -> bool {
        self.0 & DIRTY_BIT != 0
    }
}

/// Where EPT tables live. The builder asks it for fresh 4 KiB frames and for
/// access to frames it allocated earlier, by host-physical address.
///
/// The kernel implements this with its frame allocator and its map of physical
/// memory; tests with vectors and made-up addresses.
pub trait EptTableAllocator {
    /// Allocates one 4 KiB-aligned frame for a table and returns its
    /// host-physical address, or `None` when out of memory. The frame need not
    /// be zeroed: the builder clears it.
    fn allocate_table(&mut self) -> Option<u64>;

    /// The table at `phys`, which this allocator returned earlier.
    fn table(&self, phys: u64) -> &EptTable;

    /// The table at `phys`, which this allocator returned earlier, for writing.
    fn table_mut(&mut self, phys: u64) -> &mut EptTable;

    /// Takes back a table the builder no longer uses. The default keeps it
    /// (leaks it), which is fine for allocators that never free.
    fn free_table(&mut self, phys: u64) {
        let _ = phys;
    }
}

/// What the builder puts into the leaves it creates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EptOptions {
    /// Memory type of guest RAM leaves (SDM Vol. 3C, 29.3.7 "EPT and Memory
    /// Typing"). Default: write-back.
    pub memory_type: EptMemoryType,
    /// Whether leaves ignore the guest's PAT. With `false` (the default) the
    /// EPT memory type is combined with the type the guest's own PAT and MTRR
    /// view select, as on bare metal; with `true` the EPT type is used as is.
    pub ignore_pat: bool,
    /// Whether the EPTP enables accessed and dirty flags (needs
    /// IA32_VMX_EPT_VPID_CAP bit 21). Default: off.
    pub accessed_dirty: bool,
}

impl Default for EptOptions {
    fn default() -> Self {
        Self { memory_type: EptMemoryType::WriteBack, ignore_pat: false, accessed_dirty: false }
    }
}

/// What can go wrong building or changing EPT tables.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EptError {
    /// An address is not aligned to the page size it is used with.
    Misaligned {
        /// The address.
        address: u64,
        /// The alignment required.
        required: PageSize,
    },
    /// A guest-physical range reaches beyond 2^48 (or overflows).
    GuestAddressTooLarge {
        /// The start of the range.
        gpa: u64,
    },
    /// A host-physical range reaches beyond 2^52 (or overflows).
    HostAddressTooLarge {
        /// The start of the range.
        hpa: u64,
    },
    /// Something is already mapped where a mapping was asked for.
    AlreadyMapped {
        /// The guest-physical address.
        gpa: u64,
    },
    /// Nothing is mapped where an unmapping was asked for.
    NotMapped {
        /// The guest-physical address.
        gpa: u64,
    },
    /// The allocator has no frame left for a table.
    OutOfTableMemory,
    /// The allocator returned a table address that is not 4 KiB-aligned below 2^52.
    BadTableAddress {
        /// The address returned.
        phys: u64,
    },
    /// Rights that a present mapping cannot have (none, or write without read).
    InvalidPermissions {
        /// The rights asked for.
        permissions: EptPermissions,
    },
    /// A range length that is not a multiple of 4 KiB.
    BadLength {
        /// The length.
        len: u64,
    },
    /// The host block list is too short for the range.
    BlocksDoNotCover {
        /// Bytes to map.
        len: u64,
        /// Number of 2 MiB blocks given.
        blocks: usize,
    },
}

impl fmt::Display for EptError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Self::Misaligned { address, required } => {
                write!(f, "address {address:#x} is not aligned to {:#x} bytes", required.bytes())
            }
            Self::GuestAddressTooLarge { gpa } => {
                write!(f, "guest-physical range at {gpa:#x} reaches beyond 2^48")
            }
            Self::HostAddressTooLarge { hpa } => {
                write!(f, "host-physical range at {hpa:#x} reaches beyond 2^52")
            }
            Self::AlreadyMapped { gpa } => {
                write!(f, "guest-physical address {gpa:#x} is already mapped")
            }
            Self::NotMapped { gpa } => write!(f, "guest-physical address {gpa:#x} is not mapped"),
            Self::OutOfTableMemory => f.write_str("out of memory for EPT tables"),
            Self::BadTableAddress { phys } => write!(f, "EPT table address {phys:#x} is not 4 KiB-aligned below 2^52"),
            Self::InvalidPermissions { permissions } => {
                write!(f, "EPT rights {permissions} are not allowed for a mapping (none, or write without read)")
            }
            Self::BadLength { len } => write!(f, "length {len:#x} is not a multiple of 4 KiB"),
            Self::BlocksDoNotCover { len, blocks } => write!(f, "{blocks} blocks of 2 MiB do not cover {len:#x} bytes"),
        }
    }
}

/// The result of walking the tables for one guest-physical address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EptTranslation {
    /// The host-physical address the guest-physical address maps to.
    pub hpa: u64,
    /// The rights of the page.
    pub permissions: EptPermissions,
    /// The size of the page.
    pub size: PageSize,
    /// The page's memory type (`None` for a reserved encoding).
    pub memory_type: Option<EptMemoryType>,
}

/// One leaf mapping, as visited by [`EptBuilder::for_each_leaf`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EptLeaf {
    /// First guest-physical address of the page.
    pub gpa: u64,
    /// First host-physical address of the page.
    pub hpa: u64,
    /// The page's size.
    pub size: PageSize,
    /// The raw entry (rights, memory type, ignore-PAT, accessed, dirty).
    pub entry: EptEntry,
}

/// The index into a table at `level` (4 = PML4 … 1 = page table) for `gpa`.
const fn table_index(gpa: u64, level: u32) -> usize {
    ((gpa >> (12 + 9 * (level - 1))) & 0x1FF) as usize
}

/// Builds and edits one guest's EPT tree.
pub struct EptBuilder<A: EptTableAllocator> {
    allocator: A,
    options: EptOptions,
    eptp: EptPointer,
    tables: usize,
}

impl<A: EptTableAllocator> EptBuilder<A> {
    /// Starts an empty tree: allocates the PML4 table.
    pub fn new(allocator: A, options: EptOptions) -> Result<Self, EptError> {
        let mut builder = Self { allocator, options, eptp: EptPointer(0), tables: 0 };
        let pml4 = builder.new_table()?;
        builder.eptp = EptPointer::new(pml4, options.accessed_dirty)?;
        Ok(builder)
    }

    /// The EPTP to write into the VMCS.
    pub const fn eptp(&self) -> EptPointer {
        self.eptp
    }

    /// The options leaves are built with.
    pub const fn options(&self) -> EptOptions {
        self.options
    }

    /// How many 4 KiB tables the tree uses, the PML4 included.
    pub const fn tables_used(&self) -> usize {
        self.tables
    }

    /// The allocator.
    pub fn allocator(&self) -> &A {
        &self.allocator
    }

    /// Gives the allocator back (the tables stay where they are).
    pub fn into_allocator(self) -> A {
        self.allocator
    }

    /// Allocates and clears one table.
    fn new_table(&mut self) -> Result<u64, EptError> {
        let phys = self.allocator.allocate_table().ok_or(EptError::OutOfTableMemory)?;
        if phys & !ADDRESS_MASK != 0 {
            return Err(EptError::BadTableAddress { phys });
        }
        *self.allocator.table_mut(phys) = [0; ENTRIES_PER_TABLE];
        self.tables += 1;
        Ok(phys)
    }

    fn entry(&self, table: u64, index: usize) -> EptEntry {
        EptEntry(self.allocator.table(table)[index])
    }

    fn set_entry(&mut self, table: u64, index: usize, entry: EptEntry) {
        self.allocator.table_mut(table)[index] = entry.0;
    }

    /// Checks alignment, rights and address limits for one page.
    fn check_page(&self, gpa: u64, hpa: u64, size: PageSize, permissions: EptPermissions) -> Result<(), EptError> {
        if !permissions.is_valid_mapping() {
            return Err(EptError::InvalidPermissions { permissions });
        }
        check_guest_page(gpa, size)?;
        if !hpa.is_multiple_of(size.bytes()) {
            return Err(EptError::Misaligned { address: hpa, required: size });
        }
        match hpa.checked_add(size.bytes()) {
            Some(end) if end <= HOST_ADDRESS_LIMIT => Ok(()),
            _ => Err(EptError::HostAddressTooLarge { hpa }),
        }
    }

    /// Follows (creating if missing) the entry at `index` of `table` to the
    /// next table. Fails if the entry maps a large page.
    fn descend_or_create(&mut self, table: u64, index: usize, gpa: u64) -> Result<u64, EptError> {
        let entry = self.entry(table, index);
        if !entry.is_present() {
            let next = self.new_table()?;
            self.set_entry(table, index, EptEntry::table(next));
            return Ok(next);
        }
        if entry.is_large_page() {
            return Err(EptError::AlreadyMapped { gpa });
        }
        Ok(entry.address())
    }

    /// Walks from the PML4 down to the table at `level` for `gpa`, without
    /// creating anything; `None` if an entry on the way is missing or maps a page.
    fn find_table(&self, gpa: u64, level: u32) -> Option<u64> {
        let mut table = self.eptp.pml4();
        for upper in (level + 1..=4).rev() {
            let entry = self.entry(table, table_index(gpa, upper));
            if !entry.is_present() || (upper <= 3 && entry.is_large_page()) {
                return None;
            }
            table = entry.address();
        }
        Some(table)
    }

    /// Whether every entry of `table` is empty.
    fn table_is_empty(&self, table: u64) -> bool {
        self.allocator.table(table).iter().all(|&entry| !EptEntry(entry).is_present())
    }

    /// Maps one page with an explicit memory type (e.g. uncacheable for a
    /// device). 1 GiB pages are not supported and give `Misaligned`.
    pub fn map_page(
        &mut self,
        gpa: u64,
        hpa: u64,
        size: PageSize,
        permissions: EptPermissions,
        memory_type: EptMemoryType,
    ) -> Result<(), EptError> {
        if size == PageSize::Size1GiB {
            return Err(EptError::Misaligned { address: gpa, required: size });
        }
        self.check_page(gpa, hpa, size, permissions)?;
        let leaf_level = size.level();
        let mut table = self.eptp.pml4();
        for level in (leaf_level + 1..=4).rev() {
            table = self.descend_or_create(table, table_index(gpa, level), gpa)?;
        }
        let index = table_index(gpa, leaf_level);
        let existing = self.entry(table, index);
        if existing.is_present() {
            // A page directory entry may point to a page table whose pages were
            // all unmapped: reclaim it; anything else is a real conflict.
            let reclaimable = leaf_level == 2 && !existing.is_large_page() && self.table_is_empty(existing.address());
            if !reclaimable {
                return Err(EptError::AlreadyMapped { gpa });
            }
            self.set_entry(table, index, EptEntry::EMPTY);
            self.allocator.free_table(existing.address());
            self.tables -= 1;
        }
        let leaf = EptEntry::page(hpa, size, permissions, memory_type, self.options.ignore_pat);
        self.set_entry(table, index, leaf);
        Ok(())
    }

    /// Maps the 4 KiB page at `gpa` to `hpa` (both 4 KiB-aligned).
    pub fn map_4kib(&mut self, gpa: u64, hpa: u64, permissions: EptPermissions) -> Result<(), EptError> {
        self.map_page(gpa, hpa, PageSize::Size4KiB, permissions, self.options.memory_type)
    }

    /// Maps the 2 MiB page at `gpa` to `hpa` (both 2 MiB-aligned).
    pub fn map_2mib(&mut self, gpa: u64, hpa: u64, permissions: EptPermissions) -> Result<(), EptError> {
        self.map_page(gpa, hpa, PageSize::Size2MiB, permissions, self.options.memory_type)
    }

    /// Maps `len` bytes from `gpa` onto a list of host blocks: `host_blocks[i]`
    /// backs `[gpa + i * 2 MiB, gpa + (i + 1) * 2 MiB)`.
    ///
    /// Uses a 2 MiB page wherever the guest and host addresses are both
    /// 2 MiB-aligned and a whole block remains, and 4 KiB pages elsewhere (an
    /// unaligned start, unaligned blocks, or a tail shorter than 2 MiB).
    ///
    /// Checks the inputs before mapping anything; if a mapping fails later
    /// (already mapped, out of table memory) the pages mapped so far stay.
    pub fn map_range(
        &mut self,
        gpa: u64,
        host_blocks: &[u64],
        len: u64,
        permissions: EptPermissions,
    ) -> Result<(), EptError> {
        if !permissions.is_valid_mapping() {
            return Err(EptError::InvalidPermissions { permissions });
        }
        if !len.is_multiple_of(PAGE_SIZE_4KIB) {
            return Err(EptError::BadLength { len });
        }
        if !gpa.is_multiple_of(PAGE_SIZE_4KIB) {
            return Err(EptError::Misaligned { address: gpa, required: PageSize::Size4KiB });
        }
        match gpa.checked_add(len) {
            Some(end) if end <= GUEST_ADDRESS_LIMIT => {}
            _ => return Err(EptError::GuestAddressTooLarge { gpa }),
        }
        let blocks_needed = len.div_ceil(PAGE_SIZE_2MIB);
        if (host_blocks.len() as u64) < blocks_needed {
            return Err(EptError::BlocksDoNotCover { len, blocks: host_blocks.len() });
        }
        for &block in &host_blocks[..blocks_needed as usize] {
            if !block.is_multiple_of(PAGE_SIZE_4KIB) {
                return Err(EptError::Misaligned { address: block, required: PageSize::Size4KiB });
            }
            match block.checked_add(PAGE_SIZE_2MIB) {
                Some(end) if end <= HOST_ADDRESS_LIMIT => {}
                _ => return Err(EptError::HostAddressTooLarge { hpa: block }),
            }
        }

        let mut offset = 0;
        while offset < len {
            let block = host_blocks[(offset / PAGE_SIZE_2MIB) as usize];
            let within = offset % PAGE_SIZE_2MIB;
            let guest = gpa + offset;
            let host = block + within;
            let large = within == 0
                && guest.is_multiple_of(PAGE_SIZE_2MIB)
                && host.is_multiple_of(PAGE_SIZE_2MIB)
                && len - offset >= PAGE_SIZE_2MIB;
            if large {
                self.map_2mib(guest, host, permissions)?;
                offset += PAGE_SIZE_2MIB;
            } else {
                self.map_4kib(guest, host, permissions)?;
                offset += PAGE_SIZE_4KIB;
            }
        }
        Ok(())
    }

    /// Maps a guest's whole RAM, `[0, ram_size)`, onto its blocks.
    pub fn map_guest_ram(&mut self, layout: &GuestRamLayout, permissions: EptPermissions) -> Result<(), EptError> {
        self.map_range(0, layout.blocks(), layout.ram_size(), permissions)
    }

    /// Unmaps the 4 KiB page at `gpa`, so accesses to it cause EPT violations,
    /// and returns the host-physical address it mapped. A 2 MiB page around it
    /// is first split into 512 small pages with the same attributes (which
    /// takes one new table).
    pub fn unmap_4kib(&mut self, gpa: u64) -> Result<u64, EptError> {
        check_guest_page(gpa, PageSize::Size4KiB)?;
        let not_mapped = EptError::NotMapped { gpa };
        let directory = self.find_table(gpa, 2).ok_or(not_mapped)?;
        let directory_index = table_index(gpa, 2);
        let pde = self.entry(directory, directory_index);
        if !pde.is_present() {
            return Err(not_mapped);
        }
        let page_table = if pde.is_large_page() { self.split_2mib(directory, directory_index)? } else { pde.address() };
        let index = table_index(gpa, 1);
        let pte = self.entry(page_table, index);
        if !pte.is_present() {
            return Err(not_mapped);
        }
        self.set_entry(page_table, index, EptEntry::EMPTY);
        Ok(pte.address())
    }

    /// Replaces the 2 MiB leaf at `directory[index]` by a page table of 512
    /// 4 KiB leaves with the same host range and attributes.
    fn split_2mib(&mut self, directory: u64, index: usize) -> Result<u64, EptError> {
        let large = self.entry(directory, index);
        let attributes = large.0 & !(ADDRESS_MASK | LARGE_PAGE_BIT);
        let page_table = self.new_table()?;
        let entries = self.allocator.table_mut(page_table);
        for (i, entry) in entries.iter_mut().enumerate() {
            *entry = (large.address() + i as u64 * PAGE_SIZE_4KIB) | attributes;
        }
        self.set_entry(directory, index, EptEntry::table(page_table));
        Ok(page_table)
    }

    /// Unmaps the 2 MiB region at `gpa`: a 2 MiB page, or a page table of 4 KiB
    /// pages (which is then given back to the allocator).
    pub fn unmap_2mib(&mut self, gpa: u64) -> Result<(), EptError> {
        check_guest_page(gpa, PageSize::Size2MiB)?;
        let not_mapped = EptError::NotMapped { gpa };
        let directory = self.find_table(gpa, 2).ok_or(not_mapped)?;
        let index = table_index(gpa, 2);
        let pde = self.entry(directory, index);
        if !pde.is_present() {
            return Err(not_mapped);
        }
        self.set_entry(directory, index, EptEntry::EMPTY);
        if !pde.is_large_page() {
            self.allocator.free_table(pde.address());
            self.tables -= 1;
        }
        Ok(())
    }

    /// Walks the tree like the processor does and returns where `gpa` leads,
    /// or `None` if it is not mapped (an access would cause an EPT violation).
    pub fn translate(&self, gpa: u64) -> Option<EptTranslation> {
        if gpa >= GUEST_ADDRESS_LIMIT {
            return None;
        }
        let mut table = self.eptp.pml4();
        for level in (1..=4).rev() {
            let entry = self.entry(table, table_index(gpa, level));
            if !entry.is_present() {
                return None;
            }
            let is_leaf = level == 1 || (level <= 3 && entry.is_large_page());
            if is_leaf {
                let size = PageSize::at_level(level)?;
                return Some(EptTranslation {
                    hpa: entry.address() + gpa % size.bytes(),
                    permissions: entry.permissions(),
                    size,
                    memory_type: entry.memory_type(),
                });
            }
            table = entry.address();
        }
        None
    }

    /// Calls `visit` for every present leaf, in guest-physical order.
    pub fn for_each_leaf(&self, mut visit: impl FnMut(EptLeaf)) {
        self.visit_table(self.eptp.pml4(), 4, 0, &mut visit);
    }

    fn visit_table(&self, table: u64, level: u32, base: u64, visit: &mut impl FnMut(EptLeaf)) {
        let span = 1u64 << (12 + 9 * (level - 1));
        for index in 0..ENTRIES_PER_TABLE {
            let entry = self.entry(table, index);
            if !entry.is_present() {
                continue;
            }
            let gpa = base + index as u64 * span;
            let is_leaf = level == 1 || (level <= 3 && entry.is_large_page());
            if is_leaf {
                if let Some(size) = PageSize::at_level(level) {
                    visit(EptLeaf { gpa, hpa: entry.address(), size, entry });
                }
            } else {
                self.visit_table(entry.address(), level - 1, gpa, visit);
            }
        }
    }
}

/// Checks a guest page's alignment and that it ends below 2^48.
fn check_guest_page(gpa: u64, size: PageSize) -> Result<(), EptError> {
    if !gpa.is_multiple_of(size.bytes()) {
        return Err(EptError::Misaligned { address: gpa, required: size });
    }
    match gpa.checked_add(size.bytes()) {
        Some(end) if end <= GUEST_ADDRESS_LIMIT => Ok(()),
        _ => Err(EptError::GuestAddressTooLarge { gpa }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::boxed::Box;
    use std::string::ToString;
    use std::vec::Vec;

    const MIB: u64 = 1 << 20;
    /// Made-up host-physical address of the first test table.
    const TABLE_BASE: u64 = 0x7_0000_0000;

    /// Tables in vectors, at made-up physical addresses `TABLE_BASE + i * 4 KiB`.
    struct VecTables {
        tables: Vec<Box<EptTable>>,
        limit: usize,
        freed: Vec<u64>,
    }

    impl VecTables {
        fn new() -> Self {
            Self::with_limit(usize::MAX)
        }

        fn with_limit(limit: usize) -> Self {
            Self { tables: Vec::new(), limit, freed: Vec::new() }
        }

        fn slot(phys: u64) -> usize {
            ((phys - TABLE_BASE) / PAGE_SIZE_4KIB) as usize
        }
    }

    impl EptTableAllocator for VecTables {
        fn allocate_table(&mut self) -> Option<u64> {
            if self.tables.len() >= self.limit {
                return None;
            }
            // Garbage, to prove the builder clears new tables.
            self.tables.push(Box::new([0xDEAD_BEEF_DEAD_BEEF; ENTRIES_PER_TABLE]));
            Some(TABLE_BASE + (self.tables.len() as u64 - 1) * PAGE_SIZE_4KIB)
        }

        fn table(&self, phys: u64) -> &EptTable {
            &self.tables[Self::slot(phys)]
        }

        fn table_mut(&mut self, phys: u64) -> &mut EptTable {
            &mut self.tables[Self::slot(phys)]
        }

        fn free_table(&mut self, phys: u64) {
            self.freed.push(phys);
        }
    }

    fn builder() -> EptBuilder<VecTables> {
        EptBuilder::new(VecTables::new(), EptOptions::default()).unwrap()
    }

    /// Contiguous host blocks starting at 1 GiB, enough for `ram` bytes.
    fn blocks_for(ram: u64) -> Vec<u64> {
        (0..ram.div_ceil(PAGE_SIZE_2MIB)).map(|i| 0x4000_0000 + i * PAGE_SIZE_2MIB).collect()
    }

    fn leaves(ept: &EptBuilder<VecTables>) -> Vec<EptLeaf> {
        let mut all = Vec::new();
        ept.for_each_leaf(|leaf| all.push(leaf));
        all
    }

    fn guest_with_ram(ram: u64) -> EptBuilder<VecTables> {
        let mut ept = builder();
        ept.map_range(0, &blocks_for(ram), ram, EptPermissions::ALL).unwrap();
        ept
    }

    #[test]
    fn eptp_encodes_write_back_four_levels_and_address() {
        let eptp = EptPointer::new(0x1234_5000, false).unwrap();
        assert_eq!(eptp.bits(), 0x1234_5000 | 6 | (3 << 3));
        assert_eq!(eptp.pml4(), 0x1234_5000);
        assert_eq!(eptp.memory_type(), Some(EptMemoryType::WriteBack));
        assert_eq!(eptp.walk_length(), 4);
        assert!(!eptp.accessed_dirty());
        let with_ad = EptPointer::new(0x1234_5000, true).unwrap();
        assert_eq!(with_ad.bits(), eptp.bits() | (1 << 6));
        assert!(with_ad.accessed_dirty());
        assert_eq!(EptPointer::new(0x1234_5008, false), Err(EptError::BadTableAddress { phys: 0x1234_5008 }));
        assert!(EptPointer::new(1 << 52, false).is_err());
    }

    #[test]
    fn builder_eptp_points_at_its_pml4() {
        let ept = builder();
        assert_eq!(ept.eptp().pml4(), TABLE_BASE);
        assert_eq!(ept.tables_used(), 1);
        assert!(leaves(&ept).is_empty());
        assert_eq!(ept.translate(0), None);
        // The garbage in the fresh frame was cleared.
        assert!(ept.allocator().table(TABLE_BASE).iter().all(|&e| e == 0));
    }

    #[test]
    fn entries_encode_the_documented_bits() {
        let leaf =
            EptEntry::page(0x20_0000, PageSize::Size2MiB, EptPermissions::READ_EXECUTE, EptMemoryType::WriteBack, true);
        assert_eq!(leaf.0, 0x20_0000 | 0b101 | (6 << 3) | (1 << 6) | (1 << 7));
        assert!(leaf.is_present() && leaf.is_large_page() && leaf.ignore_pat());
        assert!(!leaf.accessed() && !leaf.dirty());
        assert!(EptEntry(leaf.0 | (1 << 8) | (1 << 9)).accessed());
        assert!(EptEntry(leaf.0 | (1 << 9)).dirty());
        let small = EptEntry::page(0x5000, PageSize::Size4KiB, EptPermissions::READ, EptMemoryType::Uncacheable, false);
        assert_eq!(small.0, 0x5000 | 1);
        let table = EptEntry::table(0x9000);
        assert_eq!(table.0, 0x9000 | 0b111);
        assert!(!table.is_large_page());
        assert!(!EptEntry::EMPTY.is_present());
        // Bits outside 2:0 alone do not make an entry present.
        assert!(!EptEntry(1 << 7 | 6 << 3).is_present());
    }

    #[test]
    fn permissions_are_kept_and_checked() {
        let mut ept = builder();
        ept.map_4kib(0x1000, 0x8000_1000, EptPermissions::READ).unwrap();
        ept.map_4kib(0x2000, 0x8000_2000, EptPermissions::READ_WRITE).unwrap();
        ept.map_4kib(0x3000, 0x8000_3000, EptPermissions::READ_EXECUTE).unwrap();
        ept.map_4kib(0x4000, 0x8000_4000, EptPermissions::EXECUTE).unwrap();
        for (gpa, rights) in [
            (0x1000, EptPermissions::READ),
            (0x2000, EptPermissions::READ_WRITE),
            (0x3000, EptPermissions::READ_EXECUTE),
            (0x4000, EptPermissions::EXECUTE),
        ] {
            assert_eq!(ept.translate(gpa).unwrap().permissions, rights);
        }
        assert_eq!(
            ept.map_4kib(0x5000, 0x8000_5000, EptPermissions::WRITE),
            Err(EptError::InvalidPermissions { permissions: EptPermissions::WRITE })
        );
        assert!(matches!(
            ept.map_2mib(0x20_0000, 0x20_0000, EptPermissions::NONE),
            Err(EptError::InvalidPermissions { .. })
        ));
        assert_eq!(EptPermissions::READ_EXECUTE.to_string(), "r-x");
        assert_eq!(EptPermissions::ALL.to_string(), "rwx");
    }

    #[test]
    fn translate_walks_to_the_right_host_address() {
        let mut ept = builder();
        ept.map_2mib(0x20_0000, 0x8000_0000, EptPermissions::ALL).unwrap();
        ept.map_4kib(0x40_3000, 0x9000_5000, EptPermissions::READ).unwrap();
        let large = ept.translate(0x20_1234).unwrap();
        assert_eq!(large.hpa, 0x8000_1234);
        assert_eq!(large.size, PageSize::Size2MiB);
        assert_eq!(large.memory_type, Some(EptMemoryType::WriteBack));
        let small = ept.translate(0x40_3FFF).unwrap();
        assert_eq!(small.hpa, 0x9000_5FFF);
        assert_eq!(small.size, PageSize::Size4KiB);
        assert_eq!(ept.translate(0x40_4000), None);
        assert_eq!(ept.translate(0x1F_FFFF), None);
        assert_eq!(ept.translate(1 << 48), None);
        assert_eq!(ept.translate(u64::MAX), None);
    }

    #[test]
    fn leaves_are_write_back_and_honour_ignore_pat() {
        let ept = guest_with_ram(6 * MIB + 8 * 1024);
        let all = leaves(&ept);
        assert!(!all.is_empty());
        for leaf in &all {
            assert_eq!(leaf.entry.memory_type(), Some(EptMemoryType::WriteBack));
            assert!(!leaf.entry.ignore_pat());
        }
        let options = EptOptions { ignore_pat: true, ..EptOptions::default() };
        let mut ept = EptBuilder::new(VecTables::new(), options).unwrap();
        ept.map_2mib(0, 0x4000_0000, EptPermissions::ALL).unwrap();
        ept.map_page(
            0x20_0000,
            0xFEE0_0000,
            PageSize::Size4KiB,
            EptPermissions::READ_WRITE,
            EptMemoryType::Uncacheable,
        )
        .unwrap();
        let all = leaves(&ept);
        assert!(all.iter().all(|leaf| leaf.entry.ignore_pat()));
        assert_eq!(all[1].entry.memory_type(), Some(EptMemoryType::Uncacheable));
    }

    #[test]
    fn aligned_ram_uses_only_2mib_pages() {
        let ept = guest_with_ram(64 * MIB);
        let all = leaves(&ept);
        assert_eq!(all.len(), 32);
        assert!(all.iter().all(|leaf| leaf.size == PageSize::Size2MiB));
        for (i, leaf) in all.iter().enumerate() {
            assert_eq!(leaf.gpa, i as u64 * PAGE_SIZE_2MIB);
            assert_eq!(leaf.hpa, 0x4000_0000 + i as u64 * PAGE_SIZE_2MIB);
        }
    }

    #[test]
    fn unaligned_tail_uses_4kib_pages() {
        let ram = 4 * MIB + 12 * 1024;
        let ept = guest_with_ram(ram);
        let all = leaves(&ept);
        let large = all.iter().filter(|l| l.size == PageSize::Size2MiB).count();
        let small: Vec<&EptLeaf> = all.iter().filter(|l| l.size == PageSize::Size4KiB).collect();
        assert_eq!(large, 2);
        assert_eq!(small.len(), 3);
        assert_eq!(small[0].gpa, 4 * MIB);
        assert_eq!(small[2].gpa, 4 * MIB + 8 * 1024);
        assert_eq!(small[2].hpa, 0x4000_0000 + 4 * MIB + 8 * 1024);
        // One more table (a page table) for the tail.
        assert_eq!(ept.tables_used(), 4);
    }

    #[test]
    fn unaligned_host_blocks_and_starts_use_4kib_pages() {
        // A block that is only 4 KiB-aligned cannot back a large page.
        let mut ept = builder();
        ept.map_range(0, &[0x4000_1000], 2 * MIB, EptPermissions::ALL).unwrap();
        let all = leaves(&ept);
        assert_eq!(all.len(), 512);
        assert!(all.iter().all(|l| l.size == PageSize::Size4KiB));
        assert_eq!(ept.translate(0x1234).unwrap().hpa, 0x4000_2234);
        // An unaligned guest start.
        let mut ept = builder();
        ept.map_range(0x1000, &[0x4000_0000], 0x3000, EptPermissions::ALL).unwrap();
        assert_eq!(leaves(&ept).len(), 3);
        assert_eq!(ept.translate(0x3000).unwrap().hpa, 0x4000_2000);
    }

    #[test]
    fn nothing_outside_guest_ram_is_mapped() {
        for ram in [2 * MIB, 6 * MIB + 4096, 64 * MIB, 1 << 30] {
            let ept = guest_with_ram(ram);
            let mut covered = 0;
            ept.for_each_leaf(|leaf| {
                assert!(leaf.gpa + leaf.size.bytes() <= ram, "leaf {leaf:?} beyond {ram:#x}");
                assert_eq!(leaf.hpa, 0x4000_0000 + leaf.gpa, "contiguous blocks map linearly");
                covered += leaf.size.bytes();
            });
            assert_eq!(covered, ram);
            assert!(ept.translate(ram).is_none());
            assert!(ept.translate(ram - 1).is_some());
        }
    }

    #[test]
    fn scattered_blocks_map_each_to_its_own_host_range() {
        let layout = GuestRamLayout::new(&[0x8000_0000, 0x2000_0000, 0x6000_0000]).unwrap();
        let mut ept = builder();
        ept.map_guest_ram(&layout, EptPermissions::ALL).unwrap();
        for gpa in [0, 0x1F_FFFF, 0x20_0000, 0x35_5555, 0x5F_FFFF] {
            assert_eq!(ept.translate(gpa).map(|t| t.hpa), layout.translate(gpa));
        }
        assert_eq!(ept.translate(0x60_0000), None);
    }

    #[test]
    fn table_counts_for_typical_guests() {
        // PML4 + PDPT + one page directory covers up to 1 GiB with 2 MiB pages.
        assert_eq!(guest_with_ram(2 * MIB).tables_used(), 3);
        assert_eq!(guest_with_ram(64 * MIB).tables_used(), 3);
        assert_eq!(guest_with_ram(1 << 30).tables_used(), 3);
        // Crossing 1 GiB needs a second page directory.
        assert_eq!(guest_with_ram((1 << 30) + 2 * MIB).tables_used(), 4);
        // The allocator agrees with the builder's count.
        let ept = guest_with_ram(64 * MIB);
        assert_eq!(ept.allocator().tables.len(), ept.tables_used());
    }

    #[test]
    fn refuses_misaligned_and_out_of_range_addresses() {
        let mut ept = builder();
        assert_eq!(
            ept.map_4kib(0x1001, 0x2000, EptPermissions::ALL),
            Err(EptError::Misaligned { address: 0x1001, required: PageSize::Size4KiB })
        );
        assert_eq!(
            ept.map_4kib(0x1000, 0x2001, EptPermissions::ALL),
            Err(EptError::Misaligned { address: 0x2001, required: PageSize::Size4KiB })
        );
        assert_eq!(
            ept.map_2mib(0x1000, 0x20_0000, EptPermissions::ALL),
            Err(EptError::Misaligned { address: 0x1000, required: PageSize::Size2MiB })
        );
        assert_eq!(
            ept.map_2mib(0x20_0000, 0x1000, EptPermissions::ALL),
            Err(EptError::Misaligned { address: 0x1000, required: PageSize::Size2MiB })
        );
        assert_eq!(ept.map_4kib(1 << 48, 0, EptPermissions::ALL), Err(EptError::GuestAddressTooLarge { gpa: 1 << 48 }));
        assert!(ept.map_4kib((1 << 48) - 4096, 0, EptPermissions::ALL).is_ok());
        assert_eq!(ept.map_4kib(0, 1 << 52, EptPermissions::ALL), Err(EptError::HostAddressTooLarge { hpa: 1 << 52 }));
        assert!(matches!(ept.map_4kib(!0xFFF, 0, EptPermissions::ALL), Err(EptError::GuestAddressTooLarge { .. })));
        assert!(matches!(
            ept.map_page(0, 0, PageSize::Size1GiB, EptPermissions::ALL, EptMemoryType::WriteBack),
            Err(EptError::Misaligned { required: PageSize::Size1GiB, .. })
        ));
    }

    #[test]
    fn map_range_checks_inputs_first() {
        let mut ept = builder();
        let blocks = blocks_for(4 * MIB);
        assert_eq!(ept.map_range(0, &blocks, 0x1001, EptPermissions::ALL), Err(EptError::BadLength { len: 0x1001 }));
        assert_eq!(
            ept.map_range(0, &blocks, 6 * MIB, EptPermissions::ALL),
            Err(EptError::BlocksDoNotCover { len: 6 * MIB, blocks: 2 })
        );
        assert!(matches!(
            ept.map_range(!0xFFF, &blocks, 4 * MIB, EptPermissions::ALL),
            Err(EptError::GuestAddressTooLarge { .. })
        ));
        assert!(matches!(
            ept.map_range(0, &[0x4000_0000, 0x123], 4 * MIB, EptPermissions::ALL),
            Err(EptError::Misaligned { address: 0x123, .. })
        ));
        // Nothing was mapped by the refused calls.
        assert!(leaves(&ept).is_empty());
        assert_eq!(ept.map_range(0, &[], 0, EptPermissions::ALL), Ok(()));
    }

    #[test]
    fn refuses_double_mappings() {
        let mut ept = builder();
        ept.map_2mib(0, 0x4000_0000, EptPermissions::ALL).unwrap();
        assert_eq!(ept.map_2mib(0, 0x4020_0000, EptPermissions::ALL), Err(EptError::AlreadyMapped { gpa: 0 }));
        assert_eq!(ept.map_4kib(0x5000, 0x5000, EptPermissions::ALL), Err(EptError::AlreadyMapped { gpa: 0x5000 }));
        ept.map_4kib(0x20_0000, 0x5000, EptPermissions::ALL).unwrap();
        assert_eq!(
            ept.map_4kib(0x20_0000, 0x6000, EptPermissions::ALL),
            Err(EptError::AlreadyMapped { gpa: 0x20_0000 })
        );
        assert_eq!(
            ept.map_2mib(0x20_0000, 0x4020_0000, EptPermissions::ALL),
            Err(EptError::AlreadyMapped { gpa: 0x20_0000 })
        );
    }

    #[test]
    fn reports_running_out_of_table_memory() {
        assert!(matches!(
            EptBuilder::new(VecTables::with_limit(0), EptOptions::default()),
            Err(EptError::OutOfTableMemory)
        ));
        let mut ept = EptBuilder::new(VecTables::with_limit(3), EptOptions::default()).unwrap();
        ept.map_2mib(0, 0x4000_0000, EptPermissions::ALL).unwrap();
        assert_eq!(ept.map_4kib(0x20_0000, 0x5000, EptPermissions::ALL), Err(EptError::OutOfTableMemory));
    }

    #[test]
    fn unmapping_a_4kib_page_splits_its_2mib_page() {
        let mut ept = guest_with_ram(4 * MIB);
        assert_eq!(ept.tables_used(), 3);
        let mmio = 0x20_5000;
        assert_eq!(ept.unmap_4kib(mmio), Ok(0x4020_5000));
        assert_eq!(ept.tables_used(), 4);
        assert_eq!(ept.translate(mmio), None);
        // The neighbours keep their host addresses and attributes.
        let before = ept.translate(mmio - 1).unwrap();
        assert_eq!(before.hpa, 0x4020_4FFF);
        assert_eq!(before.size, PageSize::Size4KiB);
        assert_eq!(before.memory_type, Some(EptMemoryType::WriteBack));
        assert_eq!(before.permissions, EptPermissions::ALL);
        assert_eq!(ept.translate(mmio + 0x1000).unwrap().hpa, 0x4020_6000);
        // The other 2 MiB page is untouched.
        assert_eq!(ept.translate(0).unwrap().size, PageSize::Size2MiB);
        let all = leaves(&ept);
        assert_eq!(all.len(), 1 + 511);
        assert_eq!(ept.unmap_4kib(mmio), Err(EptError::NotMapped { gpa: mmio }));
        assert_eq!(ept.unmap_4kib(64 * MIB), Err(EptError::NotMapped { gpa: 64 * MIB }));
        assert!(matches!(ept.unmap_4kib(0x123), Err(EptError::Misaligned { .. })));
        // The page can be mapped again, e.g. to a different frame.
        ept.map_4kib(mmio, 0x9999_0000, EptPermissions::READ).unwrap();
        assert_eq!(ept.translate(mmio).unwrap().hpa, 0x9999_0000);
    }

    #[test]
    fn unmapping_2mib_regions_frees_their_page_tables() {
        let mut ept = guest_with_ram(4 * MIB + 8192);
        assert_eq!(ept.tables_used(), 4);
        ept.unmap_2mib(0).unwrap();
        assert_eq!(ept.translate(0), None);
        assert_eq!(ept.tables_used(), 4);
        ept.unmap_2mib(4 * MIB).unwrap();
        assert_eq!(ept.tables_used(), 3);
        assert_eq!(ept.allocator().freed.len(), 1);
        assert_eq!(ept.translate(4 * MIB), None);
        assert_eq!(ept.unmap_2mib(0), Err(EptError::NotMapped { gpa: 0 }));
        assert_eq!(ept.unmap_2mib(1 << 40), Err(EptError::NotMapped { gpa: 1 << 40 }));
        assert!(matches!(ept.unmap_2mib(0x1000), Err(EptError::Misaligned { .. })));
        assert_eq!(leaves(&ept).len(), 1);
    }

    #[test]
    fn emptied_page_tables_are_reclaimed_by_a_large_mapping() {
        let mut ept = builder();
        ept.map_4kib(0x1000, 0x5000, EptPermissions::ALL).unwrap();
        assert_eq!(ept.tables_used(), 4);
        ept.unmap_4kib(0x1000).unwrap();
        ept.map_2mib(0, 0x4000_0000, EptPermissions::ALL).unwrap();
        assert_eq!(ept.tables_used(), 3);
        assert_eq!(ept.translate(0x1000).unwrap().size, PageSize::Size2MiB);
    }

    #[test]
    fn errors_read_clearly() {
        let text = EptError::Misaligned { address: 0x1001, required: PageSize::Size2MiB }.to_string();
        assert!(text.contains("0x1001") && text.contains("0x200000"), "{text}");
        let text = EptError::InvalidPermissions { permissions: EptPermissions::WRITE }.to_string();
        assert!(text.contains("-w-"), "{text}");
    }
}
