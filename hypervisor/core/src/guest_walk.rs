//! Translating a guest-linear address to a guest-physical address in software,
//! the way the CPU's page walker does.
//!
//! When the hypervisor emulates an instruction that touches memory — string I/O
//! (INS/OUTS) now, instruction decoding later — the VM exit hands it linear
//! addresses (segment base plus offset). Before it can touch guest RAM it must
//! walk the guest's own page tables, apply the guest's permission checks, and, if
//! the CPU would have faulted, inject the same #PF the CPU would have raised.
//!
//! Which tables exist depends on the paging mode ([`paging_mode`]; SDM Vol. 3A,
//! 4.1.1 "Four Paging Modes"):
//!
//! | mode | CR0.PG | CR4.PAE | EFER.LMA | levels (top first) | page sizes |
//! |---|---|---|---|---|---|
//! | none | 0 | – | 0 | – | – (identity) |
//! | 32-bit (4.3) | 1 | 0 | 0 | PDE (2), PTE (1), 32-bit entries | 4 KiB, 4 MiB with CR4.PSE |
//! | PAE (4.4) | 1 | 1 | 0 | PDPTE (3), PDE (2), PTE (1) | 4 KiB, 2 MiB |
//! | 4-level (4.5) | 1 | 1 | 1 | PML4E (4), PDPTE (3), PDE (2), PTE (1) | 4 KiB, 2 MiB, 1 GiB |
//!
//! Levels are numbered as in the error variants: 1 is the page table, 4 the
//! PML4 table.
//!
//! [`translate`] checks, in the CPU's order: the present flag and reserved bits
//! entry by entry from the top (SDM Vol. 3A, 4.7 "Page-Fault Exceptions"), then
//! the access rights the entries grant together (SDM Vol. 3A, 4.6 "Access
//! Rights"). [`page_fault_error_code`] turns a failure into the error code for
//! the #PF the hypervisor injects (the faulting linear address goes to CR2).
//!
//! What the walk does **not** model:
//!
//! * **Accessed and dirty flags** (SDM Vol. 3A, 4.8): the CPU sets A in every
//!   entry it uses and D in the leaf entry on a write. The walk only reads guest
//!   memory, so a write emulated through its result leaves D clear.
//! * **TLBs and paging-structure caches** (SDM Vol. 3A, 4.10): the walk reads the
//!   tables as they are in memory now, which is what the CPU does after a TLB
//!   miss, but not necessarily what it used for the instruction that exited.
//! * **SMAP, protection keys and shadow stacks** (CR4.SMAP, CR4.PKE, CR4.PKS,
//!   CR4.CET): SMAP depends on RFLAGS.AC and whether the access is implicit,
//!   protection keys on PKRU and IA32_PKRS, which this interface does not carry.
//!   SMEP (CR4.SMEP) is checked.
//! * **5-level paging** (CR4.LA57): [`WalkError::UnsupportedMode`].
//! * **Processors without 1-GiB pages or PSE-36**: the walk accepts 1-GiB pages
//!   (CPUID.80000001H:EDX.Page1GB) and PSE-36 4-MiB pages, as every current
//!   processor does.
//!
//! # Reading guest memory
//!
//! [`translate`] reads paging-structure entries through a closure
//! `read(gpa) -> Option<u64>` that returns the 8 bytes at guest-physical `gpa`,
//! little-endian, or `None` if they lie outside guest RAM. The walk only ever
//! asks for **8-byte-aligned** addresses: 32-bit paging's 4-byte entries are
//! taken from the low or high half of the aligned quadword that holds them, so
//! the closure never has to read across the end of RAM or a page boundary.

use core::fmt;

/// CR0.WP: supervisor-mode writes honour read-only pages.
const CR0_WP: u64 = 1 << 16;
/// CR0.PG: paging.
const CR0_PG: u64 = 1 << 31;
/// CR4.PSE: 4-MiB pages under 32-bit paging.
const CR4_PSE: u64 = 1 << 4;
/// CR4.PAE: 64-bit paging-structure entries.
const CR4_PAE: u64 = 1 << 5;
/// CR4.LA57: 5-level paging (in IA-32e mode).
const CR4_LA57: u64 = 1 << 12;
/// CR4.SMEP: supervisor-mode execution prevention.
const CR4_SMEP: u64 = 1 << 20;
/// EFER.LMA: IA-32e mode active.
const EFER_LMA: u64 = 1 << 10;
/// EFER.NXE: the XD bit is enabled.
const EFER_NXE: u64 = 1 << 11;

/// Entry bit 0: present.
const PRESENT: u64 = 1 << 0;
/// Entry bit 1: read/write (0 = read-only).
const WRITABLE: u64 = 1 << 1;
/// Entry bit 2: user/supervisor (0 = supervisor only).
const USER: u64 = 1 << 2;
/// Entry bit 7: page size (the entry maps a page instead of a table).
const PAGE_SIZE: u64 = 1 << 7;
/// Entry bit 63: execute-disable.
const EXECUTE_DISABLE: u64 = 1 << 63;

/// The smallest physical-address width the walk works with.
const MIN_PHYS_BITS: u8 = 32;
/// The architectural maximum of MAXPHYADDR (SDM Vol. 3A, 4.1.4 "Enumeration of
/// Paging Features by CPUID").
pub const MAX_PHYS_BITS: u8 = 52;

/// The guest state a page walk depends on: the guest's control registers and
/// EFER (VMCS guest-state fields, or the values the hypervisor shadows), and the
/// guest's physical-address width.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PagingRegisters {
    /// The guest's CR0 as the CPU runs with it (PG and WP matter).
    pub cr0: u64,
    /// The guest's CR3: the top table's address.
    pub cr3: u64,
    /// The guest's CR4 (PSE, PAE, LA57 and SMEP matter).
    pub cr4: u64,
    /// The guest's IA32_EFER (LMA and NXE matter).
    pub efer: u64,
    /// MAXPHYADDR as the guest sees it (CPUID.80000008H:EAX bits 7:0): entry bits
    /// from this one up to bit 51 (4-level paging) or 62 (PAE paging) are
    /// reserved. Values outside 32..=52 are clamped into that range.
    pub max_phys_bits: u8,
}

impl PagingRegisters {
    /// MAXPHYADDR, clamped to 32..=52.
    fn phys_bits(&self) -> u32 {
        self.max_phys_bits.clamp(MIN_PHYS_BITS, MAX_PHYS_BITS) as u32
    }

    /// Mask of the physical-address bits MAXPHYADDR-1:12 of an entry or CR3.
    fn frame_mask(&self) -> u64 {
        low_bits(self.phys_bits()) & !0xFFF
    }

    fn nxe(&self) -> bool {
        self.efer & EFER_NXE != 0
    }
}

/// The paging mode (SDM Vol. 3A, 4.1.1 "Four Paging Modes").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PagingMode {
    /// CR0.PG = 0: linear addresses are physical addresses (32-bit).
    None,
    /// 32-bit paging (SDM Vol. 3A, 4.3): CR0.PG = 1, CR4.PAE = 0.
    Bits32,
    /// PAE paging (SDM Vol. 3A, 4.4): CR0.PG = 1, CR4.PAE = 1, EFER.LMA = 0.
    Pae,
    /// 4-level paging (SDM Vol. 3A, 4.5): CR0.PG = 1, CR4.PAE = 1,
    /// EFER.LMA = 1, CR4.LA57 = 0.
    Level4,
}

/// The kind of memory access being translated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AccessKind {
    /// A data read (e.g. the memory operand of OUTS).
    Read,
    /// A data write (e.g. the memory operand of INS).
    Write,
    /// An instruction fetch.
    Fetch,
}

/// A successful translation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Translation {
    /// The guest-physical address the linear address maps to.
    pub gpa: u64,
    /// The size of the naturally aligned region around the linear address that
    /// maps contiguously: 4 KiB, 2 MiB, 4 MiB or 1 GiB; 4 GiB with paging off.
    /// Accesses that cross its end need another translation.
    pub page_size: u64,
}

/// Why a translation failed.
///
/// `level` names the paging-structure entry: 4 = PML4E, 3 = PDPTE, 2 = PDE,
/// 1 = PTE.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WalkError {
    /// The entry at `level` has its present flag clear: #PF with P = 0.
    NotPresent {
        /// The level of the entry.
        level: u8,
    },
    /// The translation exists but its access rights forbid the access: #PF
    /// with P = 1. `level` is the highest entry that withheld the right (for a
    /// SMEP violation, where every entry grants user access, the leaf).
    Protection {
        /// The level of the entry.
        level: u8,
    },
    /// The entry at `level` has a reserved bit set: #PF with P = 1, RSVD = 1.
    ReservedBits {
        /// The level of the entry.
        level: u8,
    },
    /// A PAE-paging PDPTE has reserved bits set. The CPU checks PDPTEs when it
    /// loads them (MOV to CR3, CR0, CR4; VM entry) and raises #GP or fails the
    /// VM entry there, so this is **not** a page fault: the guest changed its
    /// PDPT after loading CR3. (With EPT the CPU uses the PDPTEs held in the
    /// VMCS guest-state fields; this walk reads them from memory instead.)
    InvalidPdpte {
        /// The PDPTE's index, 0..=3.
        index: u8,
    },
    /// In IA-32e mode, bits 63:47 of the linear address are not all equal to
    /// bit 47: #GP (or #SS for stack accesses), not #PF.
    NonCanonical,
    /// A paging-structure entry lies outside guest RAM (`read` returned `None`).
    Unreadable {
        /// The guest-physical address of the entry.
        gpa: u64,
    },
    /// 5-level paging (CR4.LA57 = 1 in IA-32e mode), or a combination of
    /// registers no CPU runs with (EFER.LMA = 1 without CR0.PG = 1 and CR4.PAE = 1).
    UnsupportedMode,
}

impl fmt::Display for WalkError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NotPresent { level } => write!(f, "{} not present", level_name(*level)),
            Self::Protection { level } => write!(f, "access denied by {}", level_name(*level)),
            Self::ReservedBits { level } => write!(f, "reserved bit set in {}", level_name(*level)),
            Self::InvalidPdpte { index } => write!(f, "reserved bit set in PAE PDPTE {index}"),
            Self::NonCanonical => f.write_str("non-canonical linear address"),
            Self::Unreadable { gpa } => write!(f, "paging-structure entry at GPA {gpa:#x} is outside guest RAM"),
            Self::UnsupportedMode => f.write_str("unsupported paging mode"),
        }
    }
}

/// The SDM's short name of the entry at a level.
fn level_name(level: u8) -> &'static str {
    match level {
        1 => "PTE",
        2 => "PDE",
        3 => "PDPTE",
        4 => "PML4E",
        _ => "paging-structure entry",
    }
}

/// Determines the paging mode from CR0.PG, CR4.PAE, EFER.LMA and CR4.LA57.
pub fn paging_mode(regs: &PagingRegisters) -> Result<PagingMode, WalkError> {
    let pg = regs.cr0 & CR0_PG != 0;
    let pae = regs.cr4 & CR4_PAE != 0;
    let lma = regs.efer & EFER_LMA != 0;
    match (pg, pae, lma) {
        (false, _, false) => Ok(PagingMode::None),
        (true, false, false) => Ok(PagingMode::Bits32),
        (true, true, false) => Ok(PagingMode::Pae),
        (true, true, true) if regs.cr4 & CR4_LA57 == 0 => Ok(PagingMode::Level4),
        _ => Err(WalkError::UnsupportedMode),
    }
}

/// Translates `linear` for an access of kind `access`, made in user mode
/// (CPL 3) if `user`, else in supervisor mode (CPL 0-2, or an implicit
/// supervisor access such as a descriptor-table read).
///
/// `read(gpa)` returns the 8 bytes at the 8-byte-aligned guest-physical `gpa`,
/// little-endian, or `None` outside guest RAM (see the module documentation).
///
/// Outside IA-32e mode (paging off, 32-bit or PAE paging) linear addresses are
/// 32 bits wide and only the low 32 bits of `linear` are used.
pub fn translate(
    regs: &PagingRegisters,
    linear: u64,
    access: AccessKind,
    user: bool,
    mut read: impl FnMut(u64) -> Option<u64>,
) -> Result<Translation, WalkError> {
    let walk = match paging_mode(regs)? {
        PagingMode::None => return Ok(Translation { gpa: linear & 0xFFFF_FFFF, page_size: 1 << 32 }),
        PagingMode::Bits32 => walk_32bit(regs, linear as u32, &mut read)?,
        PagingMode::Pae => walk_pae(regs, linear as u32, &mut read)?,
        PagingMode::Level4 => walk_4level(regs, linear, &mut read)?,
    };
    check_rights(regs, &walk, access, user)?;
    Ok(walk.translation)
}

/// The error code of the #PF the CPU raises for `error` (SDM Vol. 3A, 4.7
/// "Page-Fault Exceptions", Figure "Page-Fault Error Code"); `None` if the CPU
/// would not raise a #PF for it ([`WalkError::NonCanonical`],
/// [`WalkError::InvalidPdpte`], [`WalkError::Unreadable`],
/// [`WalkError::UnsupportedMode`]).
///
/// | bit | flag | set when |
/// |---|---|---|
/// | 0 | P | the entry was present (protection or reserved-bit fault) |
/// | 1 | W/R | the access was a write |
/// | 2 | U/S | the access was made in user mode |
/// | 3 | RSVD | a reserved bit was set |
/// | 4 | I/D | the access was an instruction fetch and CR4.SMEP = 1, or CR4.PAE = 1 and EFER.NXE = 1 |
///
/// `regs`, `access` and `user` must be those given to [`translate`].
pub fn page_fault_error_code(regs: &PagingRegisters, error: &WalkError, access: AccessKind, user: bool) -> Option<u32> {
    let mut code = match error {
        WalkError::NotPresent { .. } => 0,
        WalkError::Protection { .. } => PF_PRESENT,
        WalkError::ReservedBits { .. } => PF_PRESENT | PF_RESERVED,
        WalkError::InvalidPdpte { .. }
        | WalkError::NonCanonical
        | WalkError::Unreadable { .. }
        | WalkError::UnsupportedMode => return None,
    };
    if access == AccessKind::Write {
        code |= PF_WRITE;
    }
    if user {
        code |= PF_USER;
    }
    let fetch_reported = regs.cr4 & CR4_SMEP != 0 || (regs.cr4 & CR4_PAE != 0 && regs.nxe());
    if access == AccessKind::Fetch && fetch_reported {
        code |= PF_FETCH;
    }
    Some(code)
}

/// #PF error code bit 0: protection violation (1) or not present (0).
const PF_PRESENT: u32 = 1 << 0;
/// #PF error code bit 1: write access.
const PF_WRITE: u32 = 1 << 1;
/// #PF error code bit 2: user-mode access.
const PF_USER: u32 = 1 << 2;
/// #PF error code bit 3: reserved bit set.
const PF_RESERVED: u32 = 1 << 3;
/// #PF error code bit 4: instruction fetch.
const PF_FETCH: u32 = 1 << 4;

// ---------------------------------------------------------------------------
// The walks
// ---------------------------------------------------------------------------

/// What a walk found: the translation and the rights its entries grant.
struct Walk {
    translation: Translation,
    /// The level of the entry that mapped the page.
    leaf_level: u8,
    /// The highest level with R/W = 0.
    read_only: Option<u8>,
    /// The highest level with U/S = 0.
    supervisor: Option<u8>,
    /// The highest level with XD = 1 (only recorded when EFER.NXE = 1).
    execute_disable: Option<u8>,
}

impl Walk {
    fn new() -> Self {
        Walk {
            translation: Translation { gpa: 0, page_size: 0 },
            leaf_level: 0,
            read_only: None,
            supervisor: None,
            execute_disable: None,
        }
    }

    /// Records the rights of a present entry at `level`. Walks go top-down, so
    /// the first record of each restriction is the highest level.
    fn restrict(&mut self, level: u8, entry: u64, nxe: bool) {
        if entry & WRITABLE == 0 {
            self.read_only.get_or_insert(level);
        }
        if entry & USER == 0 {
            self.supervisor.get_or_insert(level);
        }
        if nxe && entry & EXECUTE_DISABLE != 0 {
            self.execute_disable.get_or_insert(level);
        }
    }

    fn finish(&mut self, level: u8, gpa: u64, page_size: u64) {
        self.leaf_level = level;
        self.translation = Translation { gpa, page_size };
    }
}

/// Mask of bits `bits-1:0`.
const fn low_bits(bits: u32) -> u64 {
    if bits >= 64 {
        u64::MAX
    } else {
        (1 << bits) - 1
    }
}

/// Mask of bits `high:low` (inclusive); empty if `low > high`.
const fn bit_range(high: u32, low: u32) -> u64 {
    if low > high {
        0
    } else {
        low_bits(high + 1) & !low_bits(low)
    }
}

/// Reads the 64-bit entry at `gpa` (8-byte aligned).
fn read_entry(read: &mut impl FnMut(u64) -> Option<u64>, gpa: u64) -> Result<u64, WalkError> {
    read(gpa).ok_or(WalkError::Unreadable { gpa })
}

/// Reads the 32-bit entry at `gpa` (4-byte aligned) from the aligned quadword
/// holding it.
fn read_entry32(read: &mut impl FnMut(u64) -> Option<u64>, gpa: u64) -> Result<u64, WalkError> {
    let quad = read(gpa & !7).ok_or(WalkError::Unreadable { gpa })?;
    Ok((quad >> ((gpa & 4) * 8)) & 0xFFFF_FFFF)
}

/// 32-bit paging (SDM Vol. 3A, 4.3 "32-Bit Paging"): a page directory of 1024
/// 4-byte PDEs at CR3\[31:12\], each mapping 4 MiB with a page table of 1024 PTEs
/// or, if CR4.PSE = 1 and PS = 1, directly.
///
/// 4-MiB PDEs use PSE-36: bits (M-20):13 give physical-address bits (M-1):32,
/// bits 21:(M-19) are reserved, with M = min(MAXPHYADDR, 40) (Table "Format of
/// a 32-Bit Page-Directory Entry that Maps a 4-MByte Page"). No other 32-bit
/// entry has reserved bits, and there is no XD bit.
fn walk_32bit(
    regs: &PagingRegisters,
    linear: u32,
    read: &mut impl FnMut(u64) -> Option<u64>,
) -> Result<Walk, WalkError> {
    let linear = linear as u64;
    let mut walk = Walk::new();

    let pde_gpa = (regs.cr3 & 0xFFFF_F000) + (linear >> 22) * 4;
    let pde = read_entry32(read, pde_gpa)?;
    if pde & PRESENT == 0 {
        return Err(WalkError::NotPresent { level: 2 });
    }
    if regs.cr4 & CR4_PSE != 0 && pde & PAGE_SIZE != 0 {
        let m = regs.phys_bits().min(40);
        if pde & bit_range(21, m - 19) != 0 {
            return Err(WalkError::ReservedBits { level: 2 });
        }
        walk.restrict(2, pde, false);
        let high = (pde >> 13) & low_bits(m - 32);
        let base = (pde & 0xFFC0_0000) | (high << 32);
        walk.finish(2, base | (linear & 0x3F_FFFF), 4 << 20);
        return Ok(walk);
    }
    walk.restrict(2, pde, false);

    let pte_gpa = (pde & 0xFFFF_F000) + ((linear >> 12) & 0x3FF) * 4;
    let pte = read_entry32(read, pte_gpa)?;
    if pte & PRESENT == 0 {
        return Err(WalkError::NotPresent { level: 1 });
    }
    walk.restrict(1, pte, false);
    walk.finish(1, (pte & 0xFFFF_F000) | (linear & 0xFFF), 4 << 10);
    Ok(walk)
}

/// PAE paging (SDM Vol. 3A, 4.4 "PAE Paging"): four PDPTEs at CR3\[31:5\], each
/// pointing at a page directory of 512 8-byte PDEs (2-MiB pages or page tables).
///
/// PDPTEs carry no access rights; their bits 2:1, 8:5 and 63:MAXPHYADDR are
/// reserved (Table "Format of a PAE Page-Directory-Pointer-Table Entry").
fn walk_pae(regs: &PagingRegisters, linear: u32, read: &mut impl FnMut(u64) -> Option<u64>) -> Result<Walk, WalkError> {
    let linear = linear as u64;
    let m = regs.phys_bits();
    let index = linear >> 30;
    let pdpte_gpa = (regs.cr3 & 0xFFFF_FFE0) + index * 8;
    let pdpte = read_entry(read, pdpte_gpa)?;
    if pdpte & PRESENT == 0 {
        return Err(WalkError::NotPresent { level: 3 });
    }
    let reserved = bit_range(2, 1) | bit_range(8, 5) | bit_range(63, m);
    if pdpte & reserved != 0 {
        return Err(WalkError::InvalidPdpte { index: index as u8 });
    }
    let mut walk = Walk::new();
    walk_64bit_entries(regs, pdpte & regs.frame_mask(), linear, 2, bit_range(62, m), &mut walk, read)?;
    Ok(walk)
}

/// 4-level paging (SDM Vol. 3A, 4.5 "4-Level Paging and 5-Level Paging"): the
/// PML4 table at CR3[M-1:12], then PDPT, page directory and page table, each of
/// 512 8-byte entries; PDPTEs may map 1-GiB pages, PDEs 2-MiB pages.
fn walk_4level(
    regs: &PagingRegisters,
    linear: u64,
    read: &mut impl FnMut(u64) -> Option<u64>,
) -> Result<Walk, WalkError> {
    // Canonical: bits 63:47 are copies of bit 47 (SDM Vol. 3A, 4.5.1).
    if ((linear << 16) as i64 >> 16) as u64 != linear {
        return Err(WalkError::NonCanonical);
    }
    let mut walk = Walk::new();
    let above_maxphyaddr = bit_range(51, regs.phys_bits());
    walk_64bit_entries(regs, regs.cr3 & regs.frame_mask(), linear, 4, above_maxphyaddr, &mut walk, read)?;
    Ok(walk)
}

/// Walks the levels `top..=1` of 512-entry tables of 8-byte entries, starting
/// at the table at `table`: the part PAE and 4-level paging share.
///
/// Reserved bits (SDM Vol. 3A, 4.7): `above_maxphyaddr` (51:M for 4-level,
/// 62:M for PAE paging), XD when EFER.NXE = 0, PS in a PML4E, and the
/// address bits below the page size in an entry mapping a large page (20:13
/// for 2 MiB, 29:13 for 1 GiB; bit 12 is PAT).
fn walk_64bit_entries(
    regs: &PagingRegisters,
    mut table: u64,
    linear: u64,
    top: u8,
    above_maxphyaddr: u64,
    walk: &mut Walk,
    read: &mut impl FnMut(u64) -> Option<u64>,
) -> Result<(), WalkError> {
    let nxe = regs.nxe();
    let mut reserved_everywhere = above_maxphyaddr;
    if !nxe {
        reserved_everywhere |= EXECUTE_DISABLE;
    }
    for level in (1..=top).rev() {
        let shift = 12 + 9 * (level as u32 - 1);
        let entry_gpa = table + ((linear >> shift) & 511) * 8;
        let entry = read_entry(read, entry_gpa)?;
        if entry & PRESENT == 0 {
            return Err(WalkError::NotPresent { level });
        }
        let maps_page = level == 1 || (level <= 3 && entry & PAGE_SIZE != 0);
        let mut reserved = reserved_everywhere;
        if level == 4 {
            reserved |= PAGE_SIZE;
        }
        if maps_page && level > 1 {
            reserved |= bit_range(shift - 1, 13);
        }
        if entry & reserved != 0 {
            return Err(WalkError::ReservedBits { level });
        }
        walk.restrict(level, entry, nxe);
        let frame = entry & regs.frame_mask();
        if maps_page {
            let page_size = 1u64 << shift;
            walk.finish(level, (frame & !(page_size - 1)) | (linear & (page_size - 1)), page_size);
            return Ok(());
        }
        table = frame;
    }
    // Level 1 always maps a page, so the loop returns before it ends.
    Err(WalkError::UnsupportedMode)
}

/// Applies the access rights of a finished walk (SDM Vol. 3A, 4.6 "Access
/// Rights"):
///
/// * user-mode accesses need U/S = 1 in every entry, and writes also R/W = 1;
/// * supervisor-mode writes need R/W = 1 in every entry if CR0.WP = 1;
/// * fetches need XD = 0 in every entry if EFER.NXE = 1, and with CR4.SMEP = 1
///   a supervisor-mode fetch from a user-mode page (U/S = 1 everywhere) faults.
fn check_rights(regs: &PagingRegisters, walk: &Walk, access: AccessKind, user: bool) -> Result<(), WalkError> {
    let user_denied = if user { walk.supervisor } else { None };
    let denied = match access {
        AccessKind::Read => user_denied,
        AccessKind::Write => {
            let write_protect = user || regs.cr0 & CR0_WP != 0;
            user_denied.or(if write_protect { walk.read_only } else { None })
        }
        AccessKind::Fetch => {
            let smep = !user && regs.cr4 & CR4_SMEP != 0 && walk.supervisor.is_none();
            user_denied.or(walk.execute_disable).or(if smep { Some(walk.leaf_level) } else { None })
        }
    };
    match denied {
        Some(level) => Err(WalkError::Protection { level }),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::string::ToString;
    use std::vec;
    use std::vec::Vec;

    const CR0_PE: u64 = 1 << 0;
    const EFER_LME: u64 = 1 << 8;
    const RW: u64 = PRESENT | WRITABLE;
    const RWU: u64 = PRESENT | WRITABLE | USER;

    /// Fake guest RAM: 1 MiB of zeroes.
    struct Memory(Vec<u8>);

    impl Memory {
        fn new() -> Self {
            Memory(vec![0; 1 << 20])
        }

        fn set64(&mut self, gpa: u64, value: u64) {
            let at = gpa as usize;
            self.0[at..at + 8].copy_from_slice(&value.to_le_bytes());
        }

        fn set32(&mut self, gpa: u64, value: u32) {
            let at = gpa as usize;
            self.0[at..at + 4].copy_from_slice(&value.to_le_bytes());
        }

        /// The `read` closure's job; checks the alignment promise.
        fn read(&self, gpa: u64) -> Option<u64> {
            assert_eq!(gpa % 8, 0, "unaligned read at {gpa:#x}");
            let at = usize::try_from(gpa).ok()?;
            let bytes = self.0.get(at..at.checked_add(8)?)?;
            Some(u64::from_le_bytes(bytes.try_into().ok()?))
        }

        fn translate(
            &self,
            regs: &PagingRegisters,
            linear: u64,
            access: AccessKind,
            user: bool,
        ) -> Result<Translation, WalkError> {
            translate(regs, linear, access, user, |gpa| self.read(gpa))
        }

        /// Translates a supervisor read and returns the GPA.
        fn gpa(&self, regs: &PagingRegisters, linear: u64) -> Result<u64, WalkError> {
            self.translate(regs, linear, AccessKind::Read, false).map(|t| t.gpa)
        }
    }

    fn index(linear: u64, level: u32) -> u64 {
        (linear >> (12 + 9 * (level - 1))) & 511
    }

    fn ok(gpa: u64, page_size: u64) -> Result<Translation, WalkError> {
        Ok(Translation { gpa, page_size })
    }

    // --- 4-level paging fixture -------------------------------------------

    const PML4: u64 = 0x1000;
    const PDPT: u64 = 0x2000;
    const PD: u64 = 0x3000;
    const PT: u64 = 0x4000;
    /// A low-half linear address with distinct table indices
    /// (PML4 1, PDPT 2, PD 3, PT 4, offset 0x567).
    const LINEAR: u64 = (1 << 39) | (2 << 30) | (3 << 21) | (4 << 12) | 0x567;

    fn long_mode() -> PagingRegisters {
        PagingRegisters {
            cr0: CR0_PG | CR0_WP | CR0_PE,
            cr3: PML4,
            cr4: CR4_PAE,
            efer: EFER_LME | EFER_LMA | EFER_NXE,
            max_phys_bits: 46,
        }
    }

    /// Maps `linear` through PML4 → PDPT → PD → PT to the 4 KiB page at
    /// `page`, with `flags[i]` in the entry of level 4 - i.
    fn four_level(linear: u64, flags: [u64; 4], page: u64) -> Memory {
        let mut mem = Memory::new();
        mem.set64(PML4 + index(linear, 4) * 8, PDPT | flags[0]);
        mem.set64(PDPT + index(linear, 3) * 8, PD | flags[1]);
        mem.set64(PD + index(linear, 2) * 8, PT | flags[2]);
        mem.set64(PT + index(linear, 1) * 8, page | flags[3]);
        mem
    }

    #[test]
    fn modes() {
        let mode = |cr0, cr4, efer| paging_mode(&PagingRegisters { cr0, cr3: 0, cr4, efer, max_phys_bits: 46 });
        assert_eq!(mode(0, 0, 0), Ok(PagingMode::None));
        assert_eq!(mode(CR0_PE, CR4_PAE, EFER_LME), Ok(PagingMode::None));
        assert_eq!(mode(CR0_PE | CR0_PG, 0, 0), Ok(PagingMode::Bits32));
        assert_eq!(mode(CR0_PE | CR0_PG, CR4_PSE, EFER_NXE), Ok(PagingMode::Bits32));
        assert_eq!(mode(CR0_PE | CR0_PG, CR4_PAE, 0), Ok(PagingMode::Pae));
        assert_eq!(mode(CR0_PE | CR0_PG, CR4_PAE, EFER_LME), Ok(PagingMode::Pae));
        // LA57 only matters in IA-32e mode.
        assert_eq!(mode(CR0_PE | CR0_PG, CR4_PAE | CR4_LA57, 0), Ok(PagingMode::Pae));
        assert_eq!(mode(CR0_PE | CR0_PG, CR4_PAE, EFER_LME | EFER_LMA), Ok(PagingMode::Level4));
        assert_eq!(mode(CR0_PE | CR0_PG, CR4_PAE | CR4_LA57, EFER_LMA), Err(WalkError::UnsupportedMode));
        // States no CPU can be in.
        assert_eq!(mode(CR0_PE | CR0_PG, 0, EFER_LMA), Err(WalkError::UnsupportedMode));
        assert_eq!(mode(CR0_PE, CR4_PAE, EFER_LMA), Err(WalkError::UnsupportedMode));
        let regs = PagingRegisters { cr0: CR0_PG, cr3: 0, cr4: CR4_PAE | CR4_LA57, efer: EFER_LMA, max_phys_bits: 46 };
        assert_eq!(translate(&regs, 0, AccessKind::Read, false, |_| Some(0)), Err(WalkError::UnsupportedMode));
    }

    #[test]
    fn paging_off_is_identity_truncated_to_32_bits() {
        let regs = PagingRegisters { cr0: CR0_PE, cr3: 0x1234_5000, cr4: 0, efer: 0, max_phys_bits: 46 };
        let never = |_| -> Option<u64> { panic!("paging off reads no tables") };
        assert_eq!(translate(&regs, 0xB_8000, AccessKind::Write, true, never), ok(0xB_8000, 1 << 32));
        assert_eq!(translate(&regs, 0x1_0000_1234, AccessKind::Fetch, false, never), ok(0x1234, 1 << 32));
    }

    // --- 32-bit paging -----------------------------------------------------

    fn bits32(cr4: u64) -> PagingRegisters {
        PagingRegisters { cr0: CR0_PG | CR0_WP | CR0_PE, cr3: 0x1000, cr4, efer: 0, max_phys_bits: 46 }
    }

    #[test]
    fn bits32_4k_pages_low_and_high_halves() {
        let mut mem = Memory::new();
        // Linear 0x0040_3ABC: PDE 1 (high half of quadword 0x1000), PTE 3 (high half).
        mem.set32(0x1000 + 4, 0x2000 | RWU as u32);
        mem.set32(0x2000 + 3 * 4, 0x5_6000 | RWU as u32);
        // Linear 0x0080_2123: PDE 2 (low half), PTE 2 (low half).
        mem.set32(0x1000 + 2 * 4, 0x3000 | RWU as u32);
        mem.set32(0x3000 + 2 * 4, 0x7_7000 | RWU as u32);
        let regs = bits32(0);
        assert_eq!(mem.translate(&regs, 0x0040_3ABC, AccessKind::Write, true), ok(0x5_6ABC, 4096));
        assert_eq!(mem.translate(&regs, 0x0080_2123, AccessKind::Fetch, true), ok(0x7_7123, 4096));
        // Bits above 31 of the linear address are ignored outside IA-32e mode.
        assert_eq!(mem.gpa(&regs, 0xFFFF_FFFF_0040_3ABC), Ok(0x5_6ABC));
        // CR3 bits 11:0 and above 31 are not part of the directory's address.
        let regs = PagingRegisters { cr3: 0xF_0000_1018, ..regs };
        assert_eq!(mem.gpa(&regs, 0x0040_3ABC), Ok(0x5_6ABC));
    }

    #[test]
    fn bits32_not_present() {
        let mut mem = Memory::new();
        mem.set32(0x1000 + 4, 0x2000 | RWU as u32);
        let regs = bits32(0);
        assert_eq!(mem.gpa(&regs, 0x0000_0000), Err(WalkError::NotPresent { level: 2 }));
        assert_eq!(mem.gpa(&regs, 0x0040_0000), Err(WalkError::NotPresent { level: 1 }));
    }

    #[test]
    fn bits32_4m_pages_and_pse36() {
        let mut mem = Memory::new();
        // PDE 3 maps 4 MiB at 0x0C00_0000; PDE 5 has PSE-36 bits 0b1010 (GPA bits 35:32).
        mem.set32(0x1000 + 3 * 4, 0x0C00_0000 | (PAGE_SIZE | RWU) as u32);
        mem.set32(0x1000 + 5 * 4, 0x0800_0000 | (0b1010 << 13) | (PAGE_SIZE | RW) as u32);
        // PDE 6: reserved bit 21 set.
        mem.set32(0x1000 + 6 * 4, 0x0800_0000 | (1 << 21) | (PAGE_SIZE | RW) as u32);
        // PDE 7: address bit 36 (PDE bit 17): reserved when MAXPHYADDR = 36.
        mem.set32(0x1000 + 7 * 4, 0x0800_0000 | (1 << 17) | (PAGE_SIZE | RW) as u32);
        let regs = bits32(CR4_PSE);
        assert_eq!(mem.translate(&regs, 0x00C1_2345, AccessKind::Read, true), ok(0x0C01_2345, 4 << 20));
        assert_eq!(mem.gpa(&regs, 0x0140_0001), Ok(0xA_0800_0001));
        assert_eq!(mem.gpa(&regs, 0x0180_0000), Err(WalkError::ReservedBits { level: 2 }));
        assert_eq!(mem.gpa(&regs, 0x01C0_0000), Ok(0x10_0800_0000));
        let narrow = PagingRegisters { max_phys_bits: 36, ..regs };
        assert_eq!(mem.gpa(&narrow, 0x01C0_0000), Err(WalkError::ReservedBits { level: 2 }));
        assert_eq!(mem.gpa(&narrow, 0x0140_0001), Ok(0xA_0800_0001));
        // Without CR4.PSE the PS bit is ignored: PDE 3 points at a page table
        // at 0x0C00_0000, outside this 1 MiB of RAM.
        assert_eq!(mem.gpa(&bits32(0), 0x00C1_2345), Err(WalkError::Unreadable { gpa: 0x0C00_0000 + 0x12 * 4 }));
    }

    #[test]
    fn bits32_rights() {
        let mut mem = Memory::new();
        // PDE 0 user + writable, PTE 0 read-only user, PTE 1 supervisor.
        mem.set32(0x1000, 0x2000 | RWU as u32);
        mem.set32(0x2000, 0x8000 | (PRESENT | USER) as u32);
        mem.set32(0x2004, 0x9000 | RW as u32);
        let regs = bits32(0);
        assert_eq!(mem.translate(&regs, 0x0123, AccessKind::Write, true), Err(WalkError::Protection { level: 1 }));
        assert_eq!(mem.translate(&regs, 0x0123, AccessKind::Write, false), Err(WalkError::Protection { level: 1 }));
        let no_wp = PagingRegisters { cr0: CR0_PG | CR0_PE, ..regs };
        assert_eq!(mem.translate(&no_wp, 0x0123, AccessKind::Write, false), ok(0x8123, 4096));
        assert_eq!(mem.translate(&regs, 0x1123, AccessKind::Read, true), Err(WalkError::Protection { level: 1 }));
        assert_eq!(mem.translate(&regs, 0x1123, AccessKind::Fetch, false), ok(0x9123, 4096));
        // SMEP: supervisor fetch from the user page.
        let smep = bits32(CR4_SMEP);
        assert_eq!(mem.translate(&smep, 0x0123, AccessKind::Fetch, false), Err(WalkError::Protection { level: 1 }));
        assert_eq!(mem.translate(&smep, 0x0123, AccessKind::Fetch, true), ok(0x8123, 4096));
    }

    // --- PAE paging --------------------------------------------------------

    fn pae() -> PagingRegisters {
        // The PDPT is 32-byte aligned, not page aligned.
        PagingRegisters { cr0: CR0_PG | CR0_WP | CR0_PE, cr3: 0x1020, cr4: CR4_PAE, efer: EFER_NXE, max_phys_bits: 40 }
    }

    /// PDPTE 2 → PD at 0x3000; PDE 5 → PT at 0x4000 (user, writable); PTE 7 → 0x7_8000.
    /// PDE 6 maps 2 MiB at 0x4000_0000 (supervisor, read-only, XD).
    fn pae_memory() -> Memory {
        let mut mem = Memory::new();
        mem.set64(0x1020 + 2 * 8, 0x3000 | PRESENT);
        mem.set64(0x3000 + 5 * 8, 0x4000 | RWU);
        mem.set64(0x4000 + 7 * 8, 0x7_8000 | RWU);
        mem.set64(0x3000 + 6 * 8, 0x4000_0000 | PAGE_SIZE | PRESENT | EXECUTE_DISABLE);
        mem
    }

    const PAE_4K: u64 = (2 << 30) | (5 << 21) | (7 << 12) | 0x9AB;
    const PAE_2M: u64 = (2 << 30) | (6 << 21) | 0x1_2345;

    #[test]
    fn pae_pages() {
        let mem = pae_memory();
        let regs = pae();
        assert_eq!(mem.translate(&regs, PAE_4K, AccessKind::Write, true), ok(0x7_89AB, 4096));
        assert_eq!(mem.translate(&regs, PAE_2M, AccessKind::Read, false), ok(0x4001_2345, 2 << 20));
        // Bits above 31 of the linear address and of CR3 are ignored.
        assert_eq!(mem.gpa(&regs, (0xABCD << 32) | PAE_4K), Ok(0x7_89AB));
        assert_eq!(mem.gpa(&PagingRegisters { cr3: (1 << 40) | 0x1020, ..regs }, PAE_4K), Ok(0x7_89AB));
    }

    #[test]
    fn pae_not_present_at_each_level() {
        let mut mem = pae_memory();
        let regs = pae();
        assert_eq!(mem.gpa(&regs, 1 << 30), Err(WalkError::NotPresent { level: 3 }));
        assert_eq!(mem.gpa(&regs, (2 << 30) | (4 << 21)), Err(WalkError::NotPresent { level: 2 }));
        assert_eq!(mem.gpa(&regs, (2 << 30) | (5 << 21) | (8 << 12)), Err(WalkError::NotPresent { level: 1 }));
        mem.set64(0x3000 + 5 * 8, 0x4000 | (RWU & !PRESENT));
        assert_eq!(mem.gpa(&regs, PAE_4K), Err(WalkError::NotPresent { level: 2 }));
    }

    #[test]
    fn pae_reserved_bits() {
        let regs = pae();
        // Bits 62:40 of a PTE with MAXPHYADDR 40.
        let mut mem = pae_memory();
        mem.set64(0x4000 + 7 * 8, (1 << 40) | 0x7_8000 | RWU);
        assert_eq!(mem.gpa(&regs, PAE_4K), Err(WalkError::ReservedBits { level: 1 }));
        mem.set64(0x4000 + 7 * 8, (1 << 62) | 0x7_8000 | RWU);
        assert_eq!(mem.gpa(&regs, PAE_4K), Err(WalkError::ReservedBits { level: 1 }));
        assert_eq!(
            mem.gpa(&PagingRegisters { max_phys_bits: 52, ..regs }, PAE_4K),
            Err(WalkError::ReservedBits { level: 1 })
        );
        // Bits 20:13 of a 2-MiB PDE.
        let mut mem = pae_memory();
        mem.set64(0x3000 + 6 * 8, 0x4000_0000 | (1 << 13) | PAGE_SIZE | PRESENT);
        assert_eq!(mem.gpa(&regs, PAE_2M), Err(WalkError::ReservedBits { level: 2 }));
        // PAT (bit 12) is not reserved.
        mem.set64(0x3000 + 6 * 8, 0x4000_0000 | (1 << 12) | PAGE_SIZE | PRESENT);
        assert_eq!(mem.gpa(&regs, PAE_2M), Ok(0x4001_2345));
        // XD with EFER.NXE = 0.
        let mem = pae_memory();
        let no_nx = PagingRegisters { efer: 0, ..regs };
        assert_eq!(mem.gpa(&no_nx, PAE_2M), Err(WalkError::ReservedBits { level: 2 }));
        assert_eq!(mem.gpa(&no_nx, PAE_4K), Ok(0x7_89AB));
    }

    #[test]
    fn pae_pdpte_reserved_bits_are_not_page_faults() {
        let regs = pae();
        for bad in [1 << 1, 1 << 2, 1 << 5, 1 << 8, 1 << 40, EXECUTE_DISABLE, WRITABLE | USER] {
            let mut mem = pae_memory();
            mem.set64(0x1020 + 2 * 8, 0x3000 | PRESENT | bad);
            let error = mem.gpa(&regs, PAE_4K).unwrap_err();
            assert_eq!(error, WalkError::InvalidPdpte { index: 2 }, "{bad:#x}");
            assert_eq!(page_fault_error_code(&regs, &error, AccessKind::Read, false), None);
        }
        // Bits 4:3 (PWT, PCD) and the ignored bits 11:9 are fine.
        let mut mem = pae_memory();
        mem.set64(0x1020 + 2 * 8, 0x3000 | PRESENT | (0b11 << 3) | (0b111 << 9));
        assert_eq!(mem.gpa(&regs, PAE_4K), Ok(0x7_89AB));
    }

    #[test]
    fn pae_rights() {
        let mem = pae_memory();
        let regs = pae();
        // The 2-MiB page is supervisor, read-only, execute-disable.
        assert_eq!(mem.translate(&regs, PAE_2M, AccessKind::Read, true), Err(WalkError::Protection { level: 2 }));
        assert_eq!(mem.translate(&regs, PAE_2M, AccessKind::Write, false), Err(WalkError::Protection { level: 2 }));
        assert_eq!(mem.translate(&regs, PAE_2M, AccessKind::Fetch, false), Err(WalkError::Protection { level: 2 }));
        let no_wp = PagingRegisters { cr0: CR0_PG | CR0_PE, ..regs };
        assert_eq!(mem.translate(&no_wp, PAE_2M, AccessKind::Write, false), ok(0x4001_2345, 2 << 20));
        // The PDPTE's missing R/W and U/S bits restrict nothing.
        assert_eq!(mem.translate(&regs, PAE_4K, AccessKind::Fetch, true), ok(0x7_89AB, 4096));
    }

    // --- 4-level paging ----------------------------------------------------

    #[test]
    fn level4_4k_page() {
        let mem = four_level(LINEAR, [RWU; 4], 0x9_A000);
        let regs = long_mode();
        for access in [AccessKind::Read, AccessKind::Write, AccessKind::Fetch] {
            for user in [false, true] {
                assert_eq!(mem.translate(&regs, LINEAR, access, user), ok(0x9_A567, 4096));
            }
        }
        // CR3's PCID (bits 11:0) and bits above MAXPHYADDR are not part of the address.
        let regs = PagingRegisters { cr3: (1 << 63) | PML4 | 0x123, ..regs };
        assert_eq!(mem.gpa(&regs, LINEAR), Ok(0x9_A567));
    }

    #[test]
    fn level4_large_pages() {
        let regs = long_mode();
        // 2 MiB: the PDE maps 0x4000_0000 (and PAT, bit 12, is not an address bit).
        let mut mem = four_level(LINEAR, [RWU; 4], 0);
        mem.set64(PD + 3 * 8, 0x4000_0000 | (1 << 12) | PAGE_SIZE | RWU);
        assert_eq!(mem.translate(&regs, LINEAR, AccessKind::Write, true), ok(0x4000_4567, 2 << 20));
        // 1 GiB: the PDPTE maps 0x80_0000_0000 + the offset's low 30 bits.
        let mut mem = four_level(LINEAR, [RWU; 4], 0);
        mem.set64(PDPT + 2 * 8, 0x80_0000_0000 | PAGE_SIZE | RWU);
        assert_eq!(mem.translate(&regs, LINEAR, AccessKind::Read, true), ok(0x80_0060_4567, 1 << 30));
    }

    #[test]
    fn level4_high_half_and_canonical_check() {
        let regs = long_mode();
        let high = 0xFFFF_8000_0000_0000 | (3 << 30) | 0x42;
        let mut mem = Memory::new();
        mem.set64(PML4 + 256 * 8, PDPT | RW);
        mem.set64(PDPT + 3 * 8, 0x1_0000_0000 | PAGE_SIZE | RW);
        assert_eq!(mem.gpa(&regs, high), Ok(0x1_0000_0042));
        for bad in [0x0000_8000_0000_0000, 0xFFFF_7FFF_FFFF_FFFF, 0x0001_0000_0000_0000, 1 << 63] {
            assert_eq!(mem.gpa(&regs, bad), Err(WalkError::NonCanonical), "{bad:#x}");
        }
    }

    #[test]
    fn level4_not_present_at_each_level() {
        let regs = long_mode();
        for level in 1..=4u32 {
            let mut flags = [RWU; 4];
            flags[4 - level as usize] = WRITABLE | USER;
            let mem = four_level(LINEAR, flags, 0x9_A000);
            assert_eq!(mem.gpa(&regs, LINEAR), Err(WalkError::NotPresent { level: level as u8 }));
        }
        // A not-present entry's other bits are not checked (reserved or not).
        let mem = four_level(LINEAR, [RWU, RWU, !PRESENT, RWU], 0);
        assert_eq!(mem.gpa(&regs, LINEAR), Err(WalkError::NotPresent { level: 2 }));
    }

    #[test]
    fn level4_reserved_bits() {
        let regs = long_mode();
        let check = |level: u8, extra: u64, regs: &PagingRegisters| {
            let mut flags = [RWU; 4];
            flags[4 - level as usize] |= extra;
            four_level(LINEAR, flags, 0x9_A000).gpa(regs, LINEAR)
        };
        for level in 1..=4 {
            let rsvd = Err(WalkError::ReservedBits { level });
            // Bits 51:46 with MAXPHYADDR 46.
            assert_eq!(check(level, 1 << 46, &regs), rsvd);
            assert_eq!(check(level, 1 << 51, &regs), rsvd);
            // Bits 62:52 are ignored (or protection keys), not reserved.
            assert_eq!(check(level, 0x7FF << 52, &regs), Ok(0x9_A567));
            // XD is reserved when EFER.NXE = 0.
            assert_eq!(check(level, EXECUTE_DISABLE, &regs), Ok(0x9_A567));
            assert_eq!(check(level, EXECUTE_DISABLE, &PagingRegisters { efer: EFER_LMA, ..regs }), rsvd);
        }
        // With MAXPHYADDR 52 nothing below bit 52 is reserved.
        let wide = PagingRegisters { max_phys_bits: 52, ..regs };
        let mut mem = four_level(LINEAR, [RWU; 4], 0);
        mem.set64(PT + 4 * 8, (1 << 51) | 0x9_A000 | RWU);
        assert_eq!(mem.gpa(&wide, LINEAR), Ok((1 << 51) | 0x9_A567));
        // PS in a PML4E.
        assert_eq!(check(4, PAGE_SIZE, &regs), Err(WalkError::ReservedBits { level: 4 }));
        // PS in a PTE is PAT, not reserved.
        assert_eq!(check(1, PAGE_SIZE, &regs), Ok(0x9_A567));
        // Bits 20:13 of a 2-MiB PDE, 29:13 of a 1-GiB PDPTE.
        let mut mem = four_level(LINEAR, [RWU; 4], 0);
        mem.set64(PD + 3 * 8, 0x4000_0000 | (1 << 20) | PAGE_SIZE | RWU);
        assert_eq!(mem.gpa(&regs, LINEAR), Err(WalkError::ReservedBits { level: 2 }));
        mem.set64(PDPT + 2 * 8, 0x4000_0000 | (1 << 21) | PAGE_SIZE | RWU);
        assert_eq!(mem.gpa(&regs, LINEAR), Err(WalkError::ReservedBits { level: 3 }));
        // A reserved bit beats a missing right, and stops the walk.
        let mem = four_level(LINEAR, [RW | (1 << 50), 0, 0, 0], 0);
        assert_eq!(mem.translate(&regs, LINEAR, AccessKind::Write, true), Err(WalkError::ReservedBits { level: 4 }));
    }

    #[test]
    fn level4_rights() {
        let regs = long_mode();
        let with = |level: usize, flags: u64| {
            let mut all = [RWU; 4];
            all[4 - level] = flags;
            four_level(LINEAR, all, 0x9_A000)
        };
        let denied = |level| Err(WalkError::Protection { level });

        // Supervisor page at level 3: user accesses fault, supervisor ones don't.
        let mem = with(3, RW);
        for access in [AccessKind::Read, AccessKind::Write, AccessKind::Fetch] {
            assert_eq!(mem.translate(&regs, LINEAR, access, true), denied(3));
            assert_eq!(mem.translate(&regs, LINEAR, access, false), ok(0x9_A567, 4096));
        }

        // Read-only at level 2: writes fault for users always, for supervisor with WP.
        let mem = with(2, PRESENT | USER);
        let no_wp = PagingRegisters { cr0: CR0_PG | CR0_PE, ..regs };
        assert_eq!(mem.translate(&regs, LINEAR, AccessKind::Write, false), denied(2));
        assert_eq!(mem.translate(&no_wp, LINEAR, AccessKind::Write, false), ok(0x9_A567, 4096));
        assert_eq!(mem.translate(&no_wp, LINEAR, AccessKind::Write, true), denied(2));
        assert_eq!(mem.translate(&regs, LINEAR, AccessKind::Read, true), ok(0x9_A567, 4096));

        // The highest restricting level is reported.
        let mem = four_level(LINEAR, [RWU, PRESENT | USER, RWU, PRESENT | USER], 0x9_A000);
        assert_eq!(mem.translate(&regs, LINEAR, AccessKind::Write, true), denied(3));

        // Execute-disable at level 4 stops fetches, in both modes.
        let mem = with(4, RWU | EXECUTE_DISABLE);
        assert_eq!(mem.translate(&regs, LINEAR, AccessKind::Fetch, false), denied(4));
        assert_eq!(mem.translate(&regs, LINEAR, AccessKind::Fetch, true), denied(4));
        assert_eq!(mem.translate(&regs, LINEAR, AccessKind::Write, true), ok(0x9_A567, 4096));

        // SMEP: supervisor fetches from user pages fault at the leaf.
        let smep = PagingRegisters { cr4: CR4_PAE | CR4_SMEP, ..regs };
        let mem = with(1, RWU);
        assert_eq!(mem.translate(&smep, LINEAR, AccessKind::Fetch, false), denied(1));
        assert_eq!(mem.translate(&smep, LINEAR, AccessKind::Read, false), ok(0x9_A567, 4096));
        assert_eq!(mem.translate(&smep, LINEAR, AccessKind::Fetch, true), ok(0x9_A567, 4096));
        // ... but not from pages that any level makes supervisor-only.
        let mem = with(2, RW);
        assert_eq!(mem.translate(&smep, LINEAR, AccessKind::Fetch, false), ok(0x9_A567, 4096));
    }

    #[test]
    fn unreadable_tables() {
        let regs = long_mode();
        // The PML4 itself is beyond the 1 MiB of RAM.
        let far = PagingRegisters { cr3: 0x10_0000, ..regs };
        let mem = Memory::new();
        assert_eq!(mem.gpa(&far, LINEAR), Err(WalkError::Unreadable { gpa: 0x10_0000 + 8 }));
        // The PDPTE points at a table beyond RAM.
        let mut mem = four_level(LINEAR, [RWU; 4], 0);
        mem.set64(PDPT + 2 * 8, 0x7_0000_0000 | RWU);
        assert_eq!(mem.gpa(&regs, LINEAR), Err(WalkError::Unreadable { gpa: 0x7_0000_0000 + 3 * 8 }));
        // The final page is not read: a translation to a GPA outside RAM succeeds.
        let mem = four_level(LINEAR, [RWU; 4], 0xFFFF_F000);
        assert_eq!(mem.gpa(&regs, LINEAR), Ok(0xFFFF_F567));
    }

    // --- #PF error codes ---------------------------------------------------

    #[test]
    fn page_fault_error_codes() {
        let regs = long_mode();
        let code = |error: WalkError, access, user| page_fault_error_code(&regs, &error, access, user);
        let not_present = WalkError::NotPresent { level: 1 };
        let protection = WalkError::Protection { level: 2 };
        let reserved = WalkError::ReservedBits { level: 3 };
        assert_eq!(code(not_present, AccessKind::Read, false), Some(0b0_0000));
        assert_eq!(code(not_present, AccessKind::Write, true), Some(0b0_0110));
        assert_eq!(code(protection, AccessKind::Write, false), Some(0b0_0011));
        assert_eq!(code(protection, AccessKind::Read, true), Some(0b0_0101));
        assert_eq!(code(reserved, AccessKind::Read, false), Some(0b0_1001));
        assert_eq!(code(reserved, AccessKind::Write, true), Some(0b0_1111));
        // I/D with PAE and NXE.
        assert_eq!(code(protection, AccessKind::Fetch, true), Some(0b1_0101));
        assert_eq!(code(not_present, AccessKind::Fetch, false), Some(0b1_0000));
        for error in [
            WalkError::NonCanonical,
            WalkError::Unreadable { gpa: 0 },
            WalkError::UnsupportedMode,
            WalkError::InvalidPdpte { index: 0 },
        ] {
            assert_eq!(code(error, AccessKind::Read, false), None);
        }
    }

    #[test]
    fn page_fault_fetch_flag_depends_on_nxe_pae_and_smep() {
        let fetch = |cr4, efer| {
            let regs = PagingRegisters { cr0: CR0_PG, cr3: 0, cr4, efer, max_phys_bits: 46 };
            page_fault_error_code(&regs, &WalkError::NotPresent { level: 1 }, AccessKind::Fetch, false)
        };
        assert_eq!(fetch(CR4_PAE, EFER_NXE), Some(PF_FETCH));
        assert_eq!(fetch(CR4_PAE, 0), Some(0));
        assert_eq!(fetch(0, EFER_NXE), Some(0)); // 32-bit paging has no XD
        assert_eq!(fetch(CR4_SMEP, 0), Some(PF_FETCH));
        assert_eq!(fetch(CR4_PAE | CR4_SMEP, 0), Some(PF_FETCH));
    }

    #[test]
    fn error_codes_from_real_walks() {
        let regs = long_mode();
        let walk_code = |mem: &Memory, access, user| {
            let error = mem.translate(&regs, LINEAR, access, user).unwrap_err();
            page_fault_error_code(&regs, &error, access, user)
        };
        // User write to a read-only page: P | W | U.
        let mem = four_level(LINEAR, [RWU, RWU, RWU, PRESENT | USER], 0x9_A000);
        assert_eq!(walk_code(&mem, AccessKind::Write, true), Some(0b111));
        // Supervisor fetch from an XD page: P | I/D.
        let mem = four_level(LINEAR, [RWU, RWU, RWU, RWU | EXECUTE_DISABLE], 0x9_A000);
        assert_eq!(walk_code(&mem, AccessKind::Fetch, false), Some(0b1_0001));
        // User read through a not-present PDE: U.
        let mem = four_level(LINEAR, [RWU, RWU, 0, RWU], 0x9_A000);
        assert_eq!(walk_code(&mem, AccessKind::Read, true), Some(0b100));
    }

    #[test]
    fn display() {
        assert_eq!(WalkError::NotPresent { level: 4 }.to_string(), "PML4E not present");
        assert_eq!(WalkError::Protection { level: 1 }.to_string(), "access denied by PTE");
        assert_eq!(WalkError::ReservedBits { level: 2 }.to_string(), "reserved bit set in PDE");
        assert_eq!(WalkError::InvalidPdpte { index: 3 }.to_string(), "reserved bit set in PAE PDPTE 3");
        assert_eq!(
            WalkError::Unreadable { gpa: 0x1000 }.to_string(),
            "paging-structure entry at GPA 0x1000 is outside guest RAM"
        );
        assert_eq!(WalkError::NonCanonical.to_string(), "non-canonical linear address");
    }
}
