//! Property tests of the software guest page walker ([`hypervisor_core::guest_walk`]).
//!
//! The walker reads page tables the guest wrote — every byte of them is
//! guest-controlled, as are CR0, CR3, CR4, EFER and the linear address — and
//! its answer decides which guest-physical bytes an emulated instruction
//! touches, or which #PF the guest gets instead. A walker that panics stops
//! every guest; one that reads memory on its own instead of through the
//! reader it is given, or loops, escapes the guest's RAM or hangs the exit
//! handler; one that grants a right the entries withhold lets a user program
//! write kernel pages through an emulated instruction.
//!
//! Two groups of properties:
//!
//! * **Random everything**: a random page-table memory image (entries that
//!   mostly point back into the image, so walks go deep) and random control
//!   registers and addresses. The walker never panics, reads at most one
//!   aligned entry per level and only through the reader, and its answers are
//!   consistent with each other (the same translation for every access kind,
//!   structural errors independent of the access, rights that only shrink
//!   from supervisor to user and from read to write, #PF error codes as
//!   documented).
//! * **Fixed shapes against a reference model**: one well-formed walk per
//!   paging mode and page size, with random present/writable/user/XD flags at
//!   every level, random addresses and random CR0.WP, CR4.SMEP and EFER.NXE,
//!   compared with a direct transcription of SDM Vol. 3A, 4.6 "Access Rights"
//!   and 4.7 "Page-Fault Exceptions".

mod prop_common;

use std::cell::RefCell;
use std::collections::HashMap;

use hypervisor_core::guest_walk::{
    page_fault_error_code, paging_mode, translate, AccessKind, PagingMode, PagingRegisters, Translation, WalkError,
    MAX_PHYS_BITS,
};
use proptest::prelude::*;

const CR0_PE: u64 = 1 << 0;
const CR0_WP: u64 = 1 << 16;
const CR0_PG: u64 = 1 << 31;
const CR4_PSE: u64 = 1 << 4;
const CR4_PAE: u64 = 1 << 5;
const CR4_LA57: u64 = 1 << 12;
const CR4_SMEP: u64 = 1 << 20;
const EFER_LME: u64 = 1 << 8;
const EFER_LMA: u64 = 1 << 10;
const EFER_NXE: u64 = 1 << 11;

const PRESENT: u64 = 1 << 0;
const WRITABLE: u64 = 1 << 1;
const USER: u64 = 1 << 2;
const PAGE_SIZE: u64 = 1 << 7;
const XD: u64 = 1 << 63;

const ACCESSES: [AccessKind; 3] = [AccessKind::Read, AccessKind::Write, AccessKind::Fetch];

/// Pages of the random memory image, from guest-physical 0.
const PAGES: u64 = 16;
const MEMORY_BYTES: u64 = PAGES * 4096;

/// A fake guest RAM of `PAGES` pages that logs every read the walker makes.
struct Memory {
    quads: Vec<u64>,
    reads: RefCell<Vec<u64>>,
}

impl Memory {
    /// Fills the image from `seed` with splitmix64: with probability
    /// `density / 4` an entry points at one of the image's pages (usually
    /// present, with random flag bits, sometimes a large page, XD or a PSE-36
    /// / reserved bit), otherwise it is random. Generating 8192 entries through proptest would dominate the
    /// run time; the seed is still shrunk and printed on failure.
    fn random(seed: u64, density: u64) -> Self {
        let mut state = seed;
        let mut next = move || {
            state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = state;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^ (z >> 31)
        };
        let quads = (0..MEMORY_BYTES / 8)
            .map(|_| {
                let choice = next();
                if choice % 4 < density {
                    let page = next() % PAGES;
                    // Present 7 times in 8, a large page once in 6 (more often
                    // would make nearly every walk stop at a reserved bit).
                    let mut flags = next() & 0xF7F;
                    if next() % 8 != 0 {
                        flags |= PRESENT;
                    }
                    if next() % 6 == 0 {
                        flags |= PAGE_SIZE;
                    }
                    let high = match choice >> 8 & 15 {
                        0 => XD,
                        1 => 1 << (13 + next() % 9),
                        2 => 1 << (32 + next() % 31),
                        _ => 0,
                    };
                    // Two 32-bit entries for 32-bit paging in one quadword.
                    let low = (page << 12) | flags | high;
                    if choice >> 12 & 1 == 0 {
                        low
                    } else {
                        (low & 0xFFFF_FFFF) | ((((next() % PAGES) << 12) | (next() & 0xFFF)) << 32)
                    }
                } else {
                    next()
                }
            })
            .collect();
        Memory { quads, reads: RefCell::new(Vec::new()) }
    }

    /// The reader `translate` takes: 8 bytes at `gpa`, `None` outside RAM.
    fn read(&self, gpa: u64) -> Option<u64> {
        self.reads.borrow_mut().push(gpa);
        if gpa >= MEMORY_BYTES {
            return None;
        }
        self.quads.get(usize::try_from(gpa / 8).ok()?).copied()
    }

    fn translate(
        &self,
        regs: &PagingRegisters,
        linear: u64,
        access: AccessKind,
        user: bool,
    ) -> (Result<Translation, WalkError>, Vec<u64>) {
        self.reads.borrow_mut().clear();
        let result = translate(regs, linear, access, user, |gpa| self.read(gpa));
        (result, self.reads.borrow().clone())
    }
}

fn levels(mode: PagingMode) -> u8 {
    match mode {
        PagingMode::None => 0,
        PagingMode::Bits32 => 2,
        PagingMode::Pae => 3,
        PagingMode::Level4 => 4,
    }
}

fn page_sizes(mode: PagingMode) -> &'static [u64] {
    match mode {
        PagingMode::None => &[1 << 32],
        PagingMode::Bits32 => &[4 << 10, 4 << 20],
        PagingMode::Pae => &[4 << 10, 2 << 20],
        PagingMode::Level4 => &[4 << 10, 2 << 20, 1 << 30],
    }
}

fn canonical(linear: u64) -> bool {
    ((linear << 16) as i64 >> 16) as u64 == linear
}

/// Checks a #PF error code against the table in `page_fault_error_code`'s docs.
fn check_error_code(regs: &PagingRegisters, error: &WalkError, access: AccessKind, user: bool) {
    let code = page_fault_error_code(regs, error, access, user);
    let (present, reserved) = match error {
        WalkError::NotPresent { .. } => (false, false),
        WalkError::Protection { .. } => (true, false),
        WalkError::ReservedBits { .. } => (true, true),
        _ => {
            assert_eq!(code, None, "{error:?} is not a page fault");
            return;
        }
    };
    let code = code.expect("a page fault has an error code");
    assert_eq!(code & !0x1F, 0, "only bits 4:0 are defined here");
    assert_eq!(code & 1 != 0, present);
    assert_eq!(code & 2 != 0, access == AccessKind::Write);
    assert_eq!(code & 4 != 0, user);
    assert_eq!(code & 8 != 0, reserved);
    let fetch_reported = regs.cr4 & CR4_SMEP != 0 || (regs.cr4 & CR4_PAE != 0 && regs.efer & EFER_NXE != 0);
    assert_eq!(code & 16 != 0, access == AccessKind::Fetch && fetch_reported);
}

fn registers_strategy() -> impl Strategy<Value = PagingRegisters> {
    let cr3 = prop_oneof![
        4 => (0..PAGES, any::<u64>()).prop_map(|(page, junk)| (page << 12) | (junk & 0xFFF)),
        1 => any::<u64>(),
    ];
    (any::<u64>(), cr3, any::<u64>(), any::<u64>(), any::<u8>(), any::<u8>()).prop_map(
        |(cr0, cr3, cr4, efer, max_phys_bits, bias)| {
            // Most of the time pick a mode a CPU can run in, so walks happen.
            let (cr0, cr4, efer) = match bias % 5 {
                0 => (cr0 | CR0_PG, cr4 & !CR4_PAE, efer & !EFER_LMA),
                1 => (cr0 | CR0_PG, cr4 | CR4_PAE, efer & !EFER_LMA),
                2 | 3 => (cr0 | CR0_PG, (cr4 | CR4_PAE) & !CR4_LA57, efer | EFER_LMA),
                _ => (cr0, cr4, efer),
            };
            PagingRegisters { cr0, cr3, cr4, efer, max_phys_bits }
        },
    )
}

fn linear_strategy() -> impl Strategy<Value = u64> {
    prop_oneof![
        3 => any::<u64>().prop_map(|linear| ((linear << 16) as i64 >> 16) as u64),
        1 => any::<u64>(),
    ]
}

proptest! {
    #![proptest_config(prop_common::config(2048))]

    /// On random page tables and random registers the walker never panics,
    /// reads nothing when there is nothing to walk, reads at most one
    /// 8-byte-aligned quadword per level and only through its reader, and
    /// returns translations of the documented page sizes that keep the page
    /// offset and stay below MAXPHYADDR. An `Unreadable` error names an entry
    /// outside RAM whose quadword was the last one asked for.
    #[test]
    fn random_walks_stay_in_bounds(
        seed in any::<u64>(),
        density in prop_oneof![1 => 0u64..=2, 3 => 3u64..=4],
        regs in registers_strategy(),
        linear in linear_strategy(),
        user in any::<bool>(),
        high in any::<u32>(),
    ) {
        let memory = Memory::random(seed, density);
        let mode = paging_mode(&regs);
        for access in ACCESSES {
            let (result, reads) = memory.translate(&regs, linear, access, user);
            prop_assert!(reads.iter().all(|gpa| gpa % 8 == 0), "unaligned read in {:?}", reads);
            if let Err(error) = &result {
                prop_assert!(!error.to_string().is_empty());
                check_error_code(&regs, error, access, user);
            }
            let Ok(mode) = mode else {
                prop_assert_eq!(result, Err(WalkError::UnsupportedMode));
                prop_assert!(reads.is_empty());
                continue;
            };
            prop_assert!(reads.len() <= usize::from(levels(mode)), "{} reads in {:?}", reads.len(), mode);
            match mode {
                PagingMode::None => {
                    prop_assert_eq!(result, Ok(Translation { gpa: linear & 0xFFFF_FFFF, page_size: 1 << 32 }));
                    prop_assert!(reads.is_empty());
                }
                PagingMode::Level4 if !canonical(linear) => {
                    prop_assert_eq!(result, Err(WalkError::NonCanonical));
                    prop_assert!(reads.is_empty());
                }
                PagingMode::Bits32 | PagingMode::Pae => {
                    // Only the low 32 bits of the linear address count.
                    let other = (linear & 0xFFFF_FFFF) | (u64::from(high) << 32);
                    prop_assert_eq!(memory.translate(&regs, other, access, user).0, result);
                }
                _ => {}
            }
            match result {
                Ok(translation) => {
                    prop_assert!(page_sizes(mode).contains(&translation.page_size));
                    let offset_mask = translation.page_size - 1;
                    prop_assert_eq!(translation.gpa & offset_mask, linear & offset_mask);
                    let phys_bits = u32::from(regs.max_phys_bits.clamp(32, MAX_PHYS_BITS));
                    let limit = if mode == PagingMode::Bits32 { phys_bits.min(40) } else { phys_bits };
                    prop_assert!(translation.gpa >> limit == 0, "GPA {:#x} above 2^{}", translation.gpa, limit);
                }
                Err(WalkError::Unreadable { gpa }) => {
                    prop_assert!(gpa >= MEMORY_BYTES);
                    prop_assert_eq!(reads.last().copied(), Some(gpa & !7));
                }
                Err(WalkError::InvalidPdpte { index }) => {
                    prop_assert_eq!(mode, PagingMode::Pae);
                    prop_assert_eq!(u64::from(index), (linear & 0xFFFF_FFFF) >> 30);
                }
                Err(WalkError::NotPresent { level } | WalkError::ReservedBits { level } | WalkError::Protection { level }) => {
                    prop_assert!(level >= 1 && level <= levels(mode), "level {} in {:?}", level, mode);
                }
                Err(WalkError::NonCanonical) => {
                    prop_assert!(mode == PagingMode::Level4 && !canonical(linear));
                }
                Err(WalkError::UnsupportedMode) => {
                    prop_assert!(false, "UnsupportedMode from a supported {:?}", mode);
                }
            }
        }
    }

    /// The answers for the six (access, privilege) pairs on the same tables
    /// agree: the translation never depends on the access kind, errors other
    /// than `Protection` do not either, a supervisor read is never refused for
    /// rights, and rights only shrink from supervisor to user and from read to
    /// write (so no user write succeeds where a read or a supervisor write
    /// would fault).
    #[test]
    fn random_walks_are_consistent_across_accesses(
        seed in any::<u64>(),
        density in 1u64..=4,
        regs in registers_strategy(),
        linear in linear_strategy(),
    ) {
        let memory = Memory::random(seed, density);
        let base = memory.translate(&regs, linear, AccessKind::Read, false).0;
        prop_assert!(!matches!(base, Err(WalkError::Protection { .. })), "supervisor read refused for rights");
        for user in [false, true] {
            let results: Vec<_> = ACCESSES.iter().map(|&access| memory.translate(&regs, linear, access, user).0).collect();
            for result in &results {
                match (&base, result) {
                    (Ok(_), Err(WalkError::Protection { .. })) => {}
                    (Ok(expected), Ok(got)) => prop_assert_eq!(expected, got),
                    (Err(expected), got) => prop_assert_eq!(&Err(*expected), got),
                    (Ok(_), Err(other)) => prop_assert!(false, "{:?} for an address a read translates", other),
                }
            }
            // Write allowed implies read allowed, at the same privilege.
            if results[1].is_ok() {
                prop_assert!(results[0].is_ok());
            }
        }
        for access in [AccessKind::Read, AccessKind::Write] {
            if memory.translate(&regs, linear, access, true).0.is_ok() {
                prop_assert!(memory.translate(&regs, linear, access, false).0.is_ok());
            }
        }
    }
}

// ---------------------------------------------------------------------------
// Fixed shapes against a reference model
// ---------------------------------------------------------------------------

/// The rights-relevant flags of one entry of a fixed-shape walk.
#[derive(Debug, Clone, Copy)]
struct Flags {
    present: bool,
    writable: bool,
    user: bool,
    xd: bool,
}

impl Flags {
    fn bits(self, with_xd: bool) -> u64 {
        let mut bits = 0;
        if self.present {
            bits |= PRESENT;
        }
        if self.writable {
            bits |= WRITABLE;
        }
        if self.user {
            bits |= USER;
        }
        if with_xd && self.xd {
            bits |= XD;
        }
        bits
    }
}

fn flags_strategy() -> impl Strategy<Value = Flags> {
    // Present 7 times in 8, so most walks reach the rights checks.
    (0u8..8, any::<bool>(), any::<bool>(), 0u8..4).prop_map(|(present, writable, user, xd)| Flags {
        present: present != 0,
        writable,
        user,
        xd: xd == 0,
    })
}

/// One fixed-shape walk: the entries on the way (top level first,
/// `(level, flags)`), whether they have an XD bit, and the page the leaf maps.
struct Shape<'a> {
    entries: &'a [(u8, Flags)],
    has_xd: bool,
    frame: u64,
    page_size: u64,
    linear: u64,
}

/// The reference model: what the SDM says a walk through `shape` gives for
/// `access` by `user`. `Protection` is returned with level 0; the caller
/// checks the real level separately (see [`withheld`]).
fn reference(
    shape: &Shape<'_>,
    regs: &PagingRegisters,
    access: AccessKind,
    user: bool,
) -> Result<Translation, WalkError> {
    let Shape { entries, has_xd, frame, page_size, linear } = *shape;
    let nxe = regs.efer & EFER_NXE != 0;
    for &(level, flags) in entries {
        if !flags.present {
            return Err(WalkError::NotPresent { level });
        }
        if has_xd && flags.xd && !nxe {
            return Err(WalkError::ReservedBits { level });
        }
    }
    let all_user = entries.iter().all(|(_, f)| f.user);
    let all_writable = entries.iter().all(|(_, f)| f.writable);
    let any_xd = has_xd && nxe && entries.iter().any(|(_, f)| f.xd);
    let wp = regs.cr0 & CR0_WP != 0;
    let smep = regs.cr4 & CR4_SMEP != 0;
    let privilege_ok = !user || all_user;
    let allowed = match access {
        AccessKind::Read => privilege_ok,
        AccessKind::Write => privilege_ok && (all_writable || (!user && !wp)),
        AccessKind::Fetch => privilege_ok && !any_xd && !(!user && smep && all_user),
    };
    if allowed {
        Ok(Translation { gpa: frame | (linear & (page_size - 1)), page_size })
    } else {
        Err(WalkError::Protection { level: 0 })
    }
}

/// Whether the entry at `level` withheld a right `access` by `user` needed,
/// as `WalkError::Protection { level }` claims.
fn withheld(
    entries: &[(u8, Flags)],
    has_xd: bool,
    regs: &PagingRegisters,
    access: AccessKind,
    user: bool,
    level: u8,
) -> bool {
    let Some(&(_, flags)) = entries.iter().find(|(l, _)| *l == level) else { return false };
    let leaf = entries.last().map(|(l, _)| *l) == Some(level);
    let nxe = regs.efer & EFER_NXE != 0;
    (user && !flags.user)
        || (access == AccessKind::Write && !flags.writable)
        || (access == AccessKind::Fetch && has_xd && nxe && flags.xd)
        || (access == AccessKind::Fetch && !user && leaf && regs.cr4 & CR4_SMEP != 0)
}

/// Compares the walker with the reference for every access kind and privilege.
fn compare(map: &HashMap<u64, u64>, shape: &Shape<'_>, regs: &PagingRegisters) -> Result<(), TestCaseError> {
    let Shape { entries, has_xd, linear, .. } = *shape;
    for access in ACCESSES {
        for user in [false, true] {
            // Everything not written is a zero (not-present) entry inside RAM.
            let got = translate(regs, linear, access, user, |gpa| {
                assert_eq!(gpa % 8, 0);
                Some(map.get(&gpa).copied().unwrap_or(0))
            });
            let expected = reference(shape, regs, access, user);
            match (expected, got) {
                (Err(WalkError::Protection { .. }), Err(WalkError::Protection { level })) => {
                    prop_assert!(
                        withheld(entries, has_xd, regs, access, user, level),
                        "level {} withheld nothing for {:?} user={}",
                        level,
                        access,
                        user
                    );
                }
                (expected, got) => prop_assert_eq!(expected, got, "{:?} user={}", access, user),
            }
        }
    }
    Ok(())
}

/// Control-register bits that decide rights, drawn at random for each shape.
fn rights_bits() -> impl Strategy<Value = (bool, bool, bool)> {
    (any::<bool>(), any::<bool>(), any::<bool>())
}

proptest! {
    #![proptest_config(prop_common::config(1024))]

    /// 4-level paging with a 4-KiB, 2-MiB or 1-GiB leaf: random flags at every
    /// level, random canonical address, random frame below MAXPHYADDR, random
    /// CR0.WP, CR4.SMEP and EFER.NXE: the walker agrees with the reference
    /// model on the translation and on every fault.
    #[test]
    fn four_level_walks_match_the_model(
        flags in proptest::collection::vec(flags_strategy(), 4),
        leaf_level in 1u8..=3,
        linear in any::<u64>(),
        frame in any::<u64>(),
        max_phys_bits in 36u8..=52,
        (wp, smep, nxe) in rights_bits(),
    ) {
        let linear = ((linear << 16) as i64 >> 16) as u64;
        let regs = PagingRegisters {
            cr0: CR0_PE | CR0_PG | if wp { CR0_WP } else { 0 },
            cr3: 0x1000,
            cr4: CR4_PAE | if smep { CR4_SMEP } else { 0 },
            efer: EFER_LME | EFER_LMA | if nxe { EFER_NXE } else { 0 },
            max_phys_bits,
        };
        let page_size = 1u64 << (12 + 9 * (u32::from(leaf_level) - 1));
        let frame = frame & ((1u64 << max_phys_bits) - 1) & !(page_size - 1);
        let tables = [0x1000u64, 0x2000, 0x3000, 0x4000];
        let mut map = HashMap::new();
        let mut entries = Vec::new();
        for (i, level) in (leaf_level..=4).rev().enumerate() {
            let f = flags[i];
            let shift = 12 + 9 * (u32::from(level) - 1);
            let at = tables[i] + ((linear >> shift) & 511) * 8;
            let target = if level == leaf_level { frame | if level > 1 { PAGE_SIZE } else { 0 } } else { tables[i + 1] };
            map.insert(at, target | f.bits(true));
            entries.push((level, f));
        }
        compare(&map, &Shape { entries: &entries, has_xd: true, frame, page_size, linear }, &regs)?;
    }

    /// PAE paging with a 4-KiB or 2-MiB leaf behind a valid PDPTE (which
    /// carries no rights): the walker agrees with the reference model.
    #[test]
    fn pae_walks_match_the_model(
        flags in proptest::collection::vec(flags_strategy(), 2),
        pdpte_present in 0u8..8,
        leaf_level in 1u8..=2,
        linear in any::<u32>(),
        frame in any::<u64>(),
        max_phys_bits in 36u8..=52,
        (wp, smep, nxe) in rights_bits(),
    ) {
        let linear = u64::from(linear);
        let regs = PagingRegisters {
            cr0: CR0_PE | CR0_PG | if wp { CR0_WP } else { 0 },
            cr3: 0x1020,
            cr4: CR4_PAE | if smep { CR4_SMEP } else { 0 },
            efer: if nxe { EFER_NXE } else { 0 },
            max_phys_bits,
        };
        let page_size = 1u64 << (12 + 9 * (u32::from(leaf_level) - 1));
        let frame = frame & ((1u64 << max_phys_bits) - 1) & !(page_size - 1);
        let mut map = HashMap::new();
        let pdpte_present = pdpte_present != 0;
        map.insert(0x1020 + (linear >> 30) * 8, 0x2000 | u64::from(pdpte_present));
        let tables = [0x2000u64, 0x3000];
        let mut entries = Vec::new();
        for (i, level) in (leaf_level..=2).rev().enumerate() {
            let f = flags[i];
            let shift = 12 + 9 * (u32::from(level) - 1);
            let at = tables[i] + ((linear >> shift) & 511) * 8;
            let target = if level == leaf_level { frame | if level > 1 { PAGE_SIZE } else { 0 } } else { tables[i + 1] };
            map.insert(at, target | f.bits(true));
            entries.push((level, f));
        }
        if pdpte_present {
            compare(&map, &Shape { entries: &entries, has_xd: true, frame, page_size, linear }, &regs)?;
        } else {
            for access in ACCESSES {
                let got = translate(&regs, linear, access, false, |gpa| Some(map.get(&gpa).copied().unwrap_or(0)));
                prop_assert_eq!(got, Err(WalkError::NotPresent { level: 3 }));
            }
        }
    }

    /// 32-bit paging with a 4-KiB leaf, or a 4-MiB leaf under CR4.PSE
    /// (including PSE-36 address bits): 4-byte entries packed two to a
    /// quadword; the walker agrees with the reference model (no XD here).
    #[test]
    fn bits32_walks_match_the_model(
        flags in proptest::collection::vec(flags_strategy(), 2),
        large in any::<bool>(),
        linear in any::<u32>(),
        frame in any::<u64>(),
        max_phys_bits in 32u8..=52,
        (wp, smep, _nxe) in rights_bits(),
    ) {
        let linear = u64::from(linear);
        let regs = PagingRegisters {
            cr0: CR0_PE | CR0_PG | if wp { CR0_WP } else { 0 },
            cr3: 0x1000,
            cr4: CR4_PSE | if smep { CR4_SMEP } else { 0 },
            efer: 0,
            max_phys_bits,
        };
        let mut quads: HashMap<u64, u64> = HashMap::new();
        let mut put32 = |gpa: u64, value: u64| {
            let quad = quads.entry(gpa & !7).or_insert(0);
            let shift = (gpa & 4) * 8;
            *quad = (*quad & !(0xFFFF_FFFF << shift)) | ((value & 0xFFFF_FFFF) << shift);
        };
        let pde_at = 0x1000 + (linear >> 22) * 4;
        let (entries, frame, page_size) = if large {
            // PSE-36: physical bits (M-1):32 travel in PDE bits (M-20):13.
            let m = u32::from(max_phys_bits).min(40);
            let frame = frame & ((1u64 << m) - 1) & !((4 << 20) - 1);
            let pde = (frame & 0xFFC0_0000) | ((frame >> 32) << 13) | PAGE_SIZE | flags[0].bits(false);
            put32(pde_at, pde);
            (vec![(2u8, flags[0])], frame, 4u64 << 20)
        } else {
            let frame = frame & 0xFFFF_F000;
            put32(pde_at, 0x2000 | flags[0].bits(false));
            put32(0x2000 + ((linear >> 12) & 0x3FF) * 4, frame | flags[1].bits(false));
            (vec![(2u8, flags[0]), (1u8, flags[1])], frame, 4u64 << 10)
        };
        compare(&quads, &Shape { entries: &entries, has_xd: false, frame, page_size, linear }, &regs)?;
    }
}
