//! Identity page tables for a guest that starts in 64-bit mode.
//!
//! A CPU cannot be in IA-32e mode with paging off (SDM Vol. 3A, 10.8.5
//! "Initializing IA-32e Mode"), so before a long-mode guest's first instruction
//! the hypervisor writes a small set of 4-level page tables into the guest's own
//! RAM and points the guest's CR3 at them. They identity-map the low 4 GiB (or all
//! of RAM, if larger) with 2 MiB pages, so that addresses beyond RAM are still
//! *guest*-mapped: touching them reaches EPT, which reports an EPT violation,
//! instead of a guest page fault the guest may not be ready to handle.
//!
//! The tables live in a reserved region at the very top of guest RAM:
//! one PML4 table, one PDPT, then one page directory per GiB mapped.
//! The guest learns the region through the `info` hypercall.

/// Bytes per page-table page.
pub const TABLE_SIZE: u64 = 4096;
/// Bytes mapped by one page-directory entry with PS=1.
pub const LARGE_PAGE: u64 = 2 << 20;
/// Bytes mapped by one page directory.
pub const GIB: u64 = 1 << 30;
/// The smallest range the identity map covers.
pub const MIN_IDENTITY_MAP: u64 = 4 * GIB;
/// The largest RAM this layout supports (one PDPT: 512 GiB).
pub const MAX_IDENTITY_MAP: u64 = 512 * GIB;

const PRESENT: u64 = 1 << 0;
const WRITABLE: u64 = 1 << 1;
const PAGE_SIZE: u64 = 1 << 7;

/// Where the tables go and what CR3 to load.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IdentityTables {
    /// Guest-physical base of the reserved region (4 KiB-aligned, at the top of RAM).
    pub base: u64,
    /// Size of the reserved region in bytes.
    pub size: u64,
    /// Bytes identity-mapped from guest-physical 0.
    pub mapped: u64,
    /// The page directories' count (one per GiB mapped).
    pub directories: u64,
}

impl IdentityTables {
    /// The guest CR3: the PML4 table, first page of the region.
    pub fn cr3(&self) -> u64 {
        self.base
    }

    /// Guest-physical address of the PDPT.
    fn pdpt(&self) -> u64 {
        self.base + TABLE_SIZE
    }

    /// Guest-physical address of page directory `index`.
    fn directory(&self, index: u64) -> u64 {
        self.base + (2 + index) * TABLE_SIZE
    }
}

/// Errors of the layout.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GuestPagingError {
    /// RAM is too small to hold the tables below it, or not a multiple of 2 MiB.
    BadRamSize(u64),
    /// RAM is larger than one PDPT maps.
    RamTooLarge(u64),
    /// The buffer handed to [`write_tables`] is not exactly the region's size.
    BufferSize {
        /// The size expected.
        expected: u64,
        /// The size given.
        given: u64,
    },
}

impl core::fmt::Display for GuestPagingError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::BadRamSize(size) => write!(f, "guest RAM of {size:#x} bytes cannot hold long-mode page tables"),
            Self::RamTooLarge(size) => write!(f, "guest RAM of {size:#x} bytes is larger than 512 GiB"),
            Self::BufferSize { expected, given } => {
                write!(f, "page-table buffer is {given} bytes, expected {expected}")
            }
        }
    }
}

/// Plans the identity tables for a guest with `ram_size` bytes of RAM.
pub fn plan(ram_size: u64) -> Result<IdentityTables, GuestPagingError> {
    if ram_size == 0 || !ram_size.is_multiple_of(LARGE_PAGE) {
        return Err(GuestPagingError::BadRamSize(ram_size));
    }
    if ram_size > MAX_IDENTITY_MAP {
        return Err(GuestPagingError::RamTooLarge(ram_size));
    }
    let mapped = ram_size.max(MIN_IDENTITY_MAP).next_multiple_of(GIB);
    let directories = mapped / GIB;
    let size = (2 + directories) * TABLE_SIZE;
    Ok(IdentityTables { base: ram_size - size, size, mapped, directories })
}

/// Fills `region` (the bytes of the reserved region, zeroed or not) with the tables.
pub fn write_tables(tables: &IdentityTables, region: &mut [u8]) -> Result<(), GuestPagingError> {
    if region.len() as u64 != tables.size {
        return Err(GuestPagingError::BufferSize { expected: tables.size, given: region.len() as u64 });
    }
    region.fill(0);
    let mut put = |table_gpa: u64, index: u64, entry: u64| {
        let offset = (table_gpa - tables.base + index * 8) as usize;
        region[offset..offset + 8].copy_from_slice(&entry.to_le_bytes());
    };
    put(tables.cr3(), 0, tables.pdpt() | PRESENT | WRITABLE);
    for directory in 0..tables.directories {
        put(tables.pdpt(), directory, tables.directory(directory) | PRESENT | WRITABLE);
        for entry in 0..512 {
            let address = directory * GIB + entry * LARGE_PAGE;
            put(tables.directory(directory), entry, address | PRESENT | WRITABLE | PAGE_SIZE);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::vec;

    fn entry(region: &[u8], tables: &IdentityTables, table_gpa: u64, index: u64) -> u64 {
        let offset = (table_gpa - tables.base + index * 8) as usize;
        u64::from_le_bytes(region[offset..offset + 8].try_into().unwrap())
    }

    /// Walks the tables like the CPU does for a linear address.
    fn walk(region: &[u8], tables: &IdentityTables, linear: u64) -> Option<u64> {
        let pml4e = entry(region, tables, tables.cr3(), (linear >> 39) & 511);
        if pml4e & PRESENT == 0 {
            return None;
        }
        let pdpte = entry(region, tables, pml4e & !0xFFF, (linear >> 30) & 511);
        if pdpte & PRESENT == 0 {
            return None;
        }
        let pde = entry(region, tables, pdpte & !0xFFF, (linear >> 21) & 511);
        if pde & PRESENT == 0 || pde & PAGE_SIZE == 0 {
            return None;
        }
        Some((pde & !0x1F_FFFF & 0x000F_FFFF_FFFF_F000) | (linear & 0x1F_FFFF))
    }

    #[test]
    fn two_mib_guest_gets_tables_at_the_top() {
        let tables = plan(2 << 20).unwrap();
        assert_eq!(tables.directories, 4);
        assert_eq!(tables.size, 6 * 4096);
        assert_eq!(tables.base, (2 << 20) - 6 * 4096);
        assert_eq!(tables.mapped, 4 * GIB);
    }

    #[test]
    fn identity_map_translates_every_address_to_itself() {
        let tables = plan(2 << 20).unwrap();
        let mut region = vec![0xAAu8; tables.size as usize];
        write_tables(&tables, &mut region).unwrap();
        for linear in [0u64, 0x7C00, 0x100000, 0x1F_FFFF, 0x20_0000, 0xFEE0_0000, 0xFFFF_FFFF] {
            assert_eq!(walk(&region, &tables, linear), Some(linear), "{linear:#x}");
        }
        assert_eq!(walk(&region, &tables, 4 * GIB), None);
    }

    #[test]
    fn large_guest_maps_all_its_ram() {
        let tables = plan(6 * GIB).unwrap();
        assert_eq!(tables.directories, 6);
        let mut region = vec![0u8; tables.size as usize];
        write_tables(&tables, &mut region).unwrap();
        assert_eq!(walk(&region, &tables, 6 * GIB - 1), Some(6 * GIB - 1));
    }

    #[test]
    fn bad_sizes_are_refused() {
        assert_eq!(plan(0), Err(GuestPagingError::BadRamSize(0)));
        assert_eq!(plan(4096), Err(GuestPagingError::BadRamSize(4096)));
        assert_eq!(plan(1024 * GIB), Err(GuestPagingError::RamTooLarge(1024 * GIB)));
        let tables = plan(2 << 20).unwrap();
        let mut small = vec![0u8; 4096];
        assert!(matches!(write_tables(&tables, &mut small), Err(GuestPagingError::BufferSize { .. })));
    }
}
