//! The hypervisor hardens its own address space: W^X on every mapping, guard
//! pages below its stacks, and a checksum of its code and constants.
//!
//! The bootloader builds the page tables we run on (4-level paging, SDM Vol.
//! 3A, 4.5 "4-Level Paging and 5-Level Paging"): the kernel ELF's segments
//! with 4 KiB pages, a boot stack, the boot information, the ramdisk, and all
//! of physical memory at an offset (the *physical window*, 2 MiB pages). It
//! already maps most of it sensibly, but nothing *checks* that, and a few
//! things are loose: the window maps the frames of our own code writable, and
//! two identity-mapped pages the bootloader needed to jump to us stay
//! executable. [`harden`] walks the live tables once at boot and:
//!
//! 1. turns on EFER.NXE (the XD bit means something only then, SDM Vol. 3A,
//!    4.1.1 and Table 4-20) and CR0.WP (supervisor writes honour R/W only then,
//!    SDM Vol. 3A, 4.6.1 "Determination of Access Rights"), if they are off;
//! 2. gives every page of the kernel image exactly the permission of its
//!    class ([`hypervisor_core::wx::PageClass`]): code RX, constants read-only
//!    and no-execute, data and bss writable and no-execute;
//! 3. makes every other mapping no-execute (the window, the stack, the boot
//!    information, the ramdisk, the framebuffer, the bootloader's leftovers);
//! 4. makes the frames holding our code and constants read-only in the window
//!    too, splitting the 2 MiB window pages that hold them into 4 KiB pages
//!    (so that no writable alias of the code exists anywhere);
//! 5. flushes the TLB (SDM Vol. 3A, 4.10.4.1 "Operations that Invalidate TLBs
//!    and Paging-Structure Caches": a MOV to CR3 invalidates non-global
//!    entries, toggling CR4.PGE all of them);
//! 6. verifies the result from scratch ([`verify`]): reads every entry back,
//!    combines the permissions of all levels (a page is writable only if
//!    every level allows writes, executable only if no level sets XD), and
//!    checks each leaf, the absence of writable aliases of code frames, the
//!    unmapped guard pages and the IST stacks of NMI, #DF and #MC; then it
//!    proves the verifier works by planting one RWX page and checking that
//!    [`verify`] reports it.
//!
//! A failure is a [`WxError`], which the caller prints and fails the run with.
//!
//! The integrity checksum ([`image_checksum`]) covers the same code and
//! read-only pages; `main.rs` prints it before the guests run and again before
//! power-off, and a changed value fails the run.

use alloc::vec::Vec;
use core::fmt;

use bootloader_api::BootInfo;
use hypervisor_core::wx::entry::{
    self, canonical, coverage, is_leaf, permission_below, split_child, split_parent, with_permission, ADDRESS_MASK,
    PRESENT, WRITABLE,
};
use hypervisor_core::wx::{check_mapping, Fnv1a64, KernelLayout, LayoutError, PageClass, Permission, Violation};
use x86_64::registers::control::{Cr0, Cr0Flags, Cr3, Cr4, Cr4Flags};
use x86_64::registers::model_specific::{Efer, EferFlags};

use crate::platform::memory::{self, MemoryError};

/// Size of a 4 KiB page.
const PAGE_4K: u64 = 4096;
/// Entries per table.
const ENTRIES: usize = 512;

/// What [`harden`] learned about the kernel, kept for [`verify`] and [`image_checksum`].
struct KernelImage {
    layout: KernelLayout,
    /// The page the bootloader leaves unmapped below the boot stack.
    boot_stack_guard: u64,
}

static IMAGE: spin::Once<KernelImage> = spin::Once::new();

/// Why the hypervisor's own mappings could not be hardened or failed the check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WxError {
    /// [`memory::init`] has not run (no physical window known).
    NoPhysicalWindow,
    /// The kernel ELF's program headers could not be read.
    Layout(LayoutError),
    /// A 1 GiB or 2 MiB page covers part of the kernel image, which must be 4 KiB pages.
    HugePageInImage {
        /// Its virtual address.
        virt: u64,
    },
    /// A page of the kernel image is not mapped at all.
    ImagePageMissing {
        /// Its virtual address.
        virt: u64,
    },
    /// A mapping breaks W^X.
    Violation {
        /// Its virtual address.
        virt: u64,
        /// How.
        violation: Violation,
    },
    /// A writable mapping reaches a frame that holds our code or constants.
    WritableAlias {
        /// The writable mapping's virtual address.
        virt: u64,
        /// The frame it reaches.
        frame: u64,
    },
    /// The physical window does not map a frame of the kernel image.
    WindowHole {
        /// The frame.
        frame: u64,
    },
    /// A guard page below a stack is mapped.
    GuardPageMapped {
        /// Which stack.
        stack: &'static str,
        /// The guard page's address.
        page: u64,
    },
    /// NMI, #DF or #MC does not switch to an IST stack.
    NoIstStack {
        /// The vector.
        vector: u8,
    },
    /// EFER.NXE or CR0.WP is still off after we set it.
    ControlBitOff {
        /// The bit's name.
        bit: &'static str,
    },
    /// No frame for splitting a window page.
    Memory(MemoryError),
    /// The verifier's self-test planted an executable data page and
    /// [`verify`] did not report it (the verifier itself is broken).
    VerifierMissedPlantedPage {
        /// The planted page.
        page: u64,
    },
}

impl fmt::Display for WxError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Self::NoPhysicalWindow => f.write_str("no physical-memory window (memory::init must run first)"),
            Self::Layout(error) => write!(f, "kernel image: {error}"),
            Self::HugePageInImage { virt } => write!(f, "a large page at {virt:#x} covers part of the kernel image"),
            Self::ImagePageMissing { virt } => write!(f, "kernel image page {virt:#x} is not mapped"),
            Self::Violation { virt, violation } => write!(f, "{virt:#x}: {violation}"),
            Self::WritableAlias { virt, frame } => {
                write!(
                    f,
                    "writable mapping at {virt:#x} reaches frame {frame:#x}, which holds hypervisor code or constants"
                )
            }
            Self::WindowHole { frame } => write!(f, "the physical window does not map kernel frame {frame:#x}"),
            Self::GuardPageMapped { stack, page } => write!(f, "the guard page {page:#x} below the {stack} is mapped"),
            Self::NoIstStack { vector } => write!(f, "vector {vector} does not run on an IST stack"),
            Self::ControlBitOff { bit } => write!(f, "{bit} is off"),
            Self::Memory(error) => write!(f, "{error}"),
            Self::VerifierMissedPlantedPage { page } => {
                write!(f, "the verifier did not catch the executable data page planted at {page:#x}")
            }
        }
    }
}

impl From<MemoryError> for WxError {
    fn from(error: MemoryError) -> Self {
        Self::Memory(error)
    }
}

/// What [`harden`] did and [`verify`] found.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WxReport {
    /// Kernel code pages, mapped RX.
    pub code_pages: u64,
    /// Kernel constant and relocated read-only pages, mapped R+NX.
    pub read_only_pages: u64,
    /// Kernel data, bss, heap and IST stack pages, mapped RW+NX.
    pub data_pages: u64,
    /// Other mappings (boot stack, boot information, ramdisk, framebuffer,
    /// bootloader leftovers), in 4 KiB units, all no-execute.
    pub other_pages: u64,
    /// Bytes of the physical window, all no-execute.
    pub window_bytes: u64,
    /// Frames of our code and constants made read-only in the window.
    pub window_read_only_frames: u64,
    /// Window pages split into 4 KiB pages for that.
    pub window_pages_split: u64,
    /// Paging entries whose permission bits [`harden`] changed.
    pub entries_changed: u64,
    /// Whether EFER.NXE had to be turned on.
    pub nxe_turned_on: bool,
    /// Whether CR0.WP had to be turned on.
    pub wp_turned_on: bool,
    /// Whether [`verify`] caught the violation [`harden`] planted on purpose.
    pub verifier_self_tested: bool,
}

impl fmt::Display for WxReport {
    /// `W^X enforced: N code pages RX, M read-only pages, K data pages RW+NX; ...`
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "W^X enforced: {} code pages RX, {} read-only pages, {} data pages RW+NX, {} other pages NX; \
             physical window NX ({} MiB), kernel code and constants read-only in it ({} frames, {} large pages split); \
             {} entries changed{}",
            self.code_pages,
            self.read_only_pages,
            self.data_pages,
            self.other_pages,
            self.window_bytes >> 20,
            self.window_read_only_frames,
            self.window_pages_split,
            self.entries_changed,
            if self.verifier_self_tested { "; verifier self-test: a planted RWX page was caught" } else { "" },
        )
    }
}

/// One mapping found by [`walk`].
struct Leaf {
    /// Its (canonical) virtual address.
    virt: u64,
    /// Bytes it maps: 4 KiB, 2 MiB or 1 GiB.
    size: u64,
    /// The physical address it maps.
    phys: u64,
    /// The entry, inside the physical window.
    entry: *mut u64,
    /// The permissions the levels above allow.
    above: Permission,
}

impl Leaf {
    /// Its effective permission: every level's R/W and XD combined.
    fn permission(&self) -> Permission {
        // SAFETY: `entry` points into a live paging structure in the window.
        permission_below(self.above, unsafe { self.entry.read_volatile() })
    }
}

/// The entries of the table at physical `table`.
fn table_entries(table: u64) -> *mut u64 {
    memory::phys_to_virt(table).cast()
}

/// Calls `visit` for every present leaf under the table at `table` (level
/// 4 = PML4), passing the virtual address it maps and what the levels above allow.
fn walk_table(
    table: u64,
    level: u8,
    base: u64,
    above: Permission,
    visit: &mut dyn FnMut(&Leaf) -> Result<(), WxError>,
) -> Result<(), WxError> {
    let entries = table_entries(table);
    for index in 0..ENTRIES {
        // SAFETY: a paging structure is one 4 KiB frame of 512 entries, mapped in the window.
        let pointer = unsafe { entries.add(index) };
        // SAFETY: as above.
        let entry = unsafe { pointer.read_volatile() };
        if entry & PRESENT == 0 {
            continue;
        }
        let virt = canonical(base | (index as u64 * coverage(level)));
        if is_leaf(entry, level) {
            let leaf = Leaf { virt, size: coverage(level), phys: entry::address(entry, level), entry: pointer, above };
            visit(&leaf)?;
        } else {
            walk_table(entry::address(entry, level), level - 1, virt, permission_below(above, entry), visit)?;
        }
    }
    Ok(())
}

/// Calls `visit` for every present leaf of the active page tables.
fn walk(visit: &mut dyn FnMut(&Leaf) -> Result<(), WxError>) -> Result<(), WxError> {
    let (level_4, _) = Cr3::read();
    let all = Permission { writable: true, executable: true };
    walk_table(level_4.start_address().as_u64(), 4, 0, all, visit)
}

/// The class of a leaf, or an error if a large page reaches into the image.
fn class_of_leaf(layout: &KernelLayout, leaf: &Leaf) -> Result<Option<PageClass>, WxError> {
    let (start, end) = layout.extent();
    if leaf.size != PAGE_4K {
        let overlaps = leaf.virt < end && leaf.virt.wrapping_add(leaf.size) > start;
        return if overlaps { Err(WxError::HugePageInImage { virt: leaf.virt }) } else { Ok(None) };
    }
    Ok(layout.class_of(leaf.virt))
}

/// Whether a leaf belongs to the physical window: it maps physical `p` at `offset + p`.
fn in_window(leaf: &Leaf, offset: u64) -> bool {
    leaf.virt >= offset && leaf.virt - offset == leaf.phys
}

/// Hardens the hypervisor's own address space (steps 1–6 of the module
/// documentation) and returns what was done and found.
///
/// Call once, after [`memory::init`] and [`memory::protect_kernel`], before
/// any guest exists; single-threaded, interrupts off.
pub fn harden(boot_info: &BootInfo) -> Result<WxReport, WxError> {
    let offset = memory::physical_offset().ok_or(WxError::NoPhysicalWindow)?;
    let mut report = WxReport::default();

    // Step 1: the control bits.
    // SAFETY: EFER.NXE only gives bit 63 of paging entries its meaning (the
    // bootloader set no reserved bit 63 the CPU could now reject), and CR0.WP
    // only makes the kernel honour R/W, which no correct kernel code relies on breaking.
    unsafe {
        if !Efer::read().contains(EferFlags::NO_EXECUTE_ENABLE) {
            Efer::update(|efer| *efer |= EferFlags::NO_EXECUTE_ENABLE);
            report.nxe_turned_on = true;
        }
        if !Cr0::read().contains(Cr0Flags::WRITE_PROTECT) {
            Cr0::update(|cr0| *cr0 |= Cr0Flags::WRITE_PROTECT);
            report.wp_turned_on = true;
        }
    }

    // The kernel ELF file as the bootloader received it (the headers are not relocated).
    // SAFETY: the bootloader loaded the file at this physical address with
    // this length and reserved the frames; they lie in the window.
    let elf = unsafe {
        core::slice::from_raw_parts(
            memory::phys_to_virt(boot_info.kernel_addr) as *const u8,
            boot_info.kernel_len as usize,
        )
    };
    let layout = KernelLayout::from_elf(elf, boot_info.kernel_image_offset).map_err(WxError::Layout)?;
    for segment in layout.segments() {
        crate::debug!(
            "memory: kernel segment [{:#x}, {:#x}) {} ({})",
            segment.start,
            segment.end,
            segment.class.name(),
            segment.class.required()
        );
    }

    // Steps 2 and 3: every leaf gets its permission bits; remember the protected frames.
    let mut protected_frames = Vec::new();
    walk(&mut |leaf| {
        let class = class_of_leaf(&layout, leaf)?;
        // SAFETY: the entry lies in a live paging structure; only its R/W
        // and XD bits change, which the TLB flush below makes effective.
        let entry = unsafe { leaf.entry.read_volatile() };
        let wanted = match class {
            Some(class) => {
                if class.is_protected() {
                    protected_frames.push(leaf.phys);
                }
                with_permission(entry, class.required())
            }
            None => entry | entry::NO_EXECUTE,
        };
        if wanted != entry {
            // SAFETY: as above.
            unsafe { leaf.entry.write_volatile(wanted) };
            report.entries_changed += 1;
        }
        Ok(())
    })?;

    // Step 4: no writable alias of our code in the window.
    protected_frames.sort_unstable();
    protected_frames.dedup();
    for &frame in &protected_frames {
        let (entry, split) = window_entry_4k(offset + frame)?;
        report.window_pages_split += split;
        // SAFETY: a PTE of the window, which nothing writes through for this
        // frame (it holds our code or constants); flushed below.
        unsafe { entry.write_volatile(entry.read_volatile() & !WRITABLE) };
        report.window_read_only_frames += 1;
    }

    // Step 5.
    flush_tlb();

    IMAGE.call_once(|| KernelImage { layout, boot_stack_guard: boot_info.kernel_stack_bottom - PAGE_4K });

    // Step 6.
    let found = verify()?;
    self_test_verifier()?;
    Ok(WxReport {
        window_read_only_frames: report.window_read_only_frames,
        window_pages_split: report.window_pages_split,
        entries_changed: report.entries_changed,
        nxe_turned_on: report.nxe_turned_on,
        wp_turned_on: report.wp_turned_on,
        verifier_self_tested: true,
        ..found
    })
}

/// A page of `.bss` used only by [`self_test_verifier`].
#[repr(C, align(4096))]
struct PlantedPage([u8; PAGE_4K as usize]);

/// Its only instance; never read or written, only made executable for a moment.
static mut PLANTED_PAGE: PlantedPage = PlantedPage([0; PAGE_4K as usize]);

/// Proves that [`verify`] catches what it is meant to catch: clears XD on
/// the PTE of a data page (making it RWX), runs [`verify`], restores the
/// entry, and fails unless [`verify`] reported exactly that page.
fn self_test_verifier() -> Result<(), WxError> {
    let page = core::ptr::addr_of!(PLANTED_PAGE) as u64;
    let pte = pte_of(page).ok_or(WxError::ImagePageMissing { virt: page })?;
    // SAFETY: `pte` points at a live PTE in the window (pte_of found it).
    let original = unsafe { pte.read_volatile() };
    // SAFETY: the PTE of our own page; the page holds no code and nothing
    // jumps there, so making it executable for the length of one check
    // exposes nothing. INVLPG drops the stale translation (SDM Vol. 3A, 4.10.4.1).
    unsafe { pte.write_volatile(original & !entry::NO_EXECUTE) };
    x86_64::instructions::tlb::flush(x86_64::VirtAddr::new(page));
    let caught = verify();
    // SAFETY: as above: the entry gets back its checked value.
    unsafe { pte.write_volatile(original) };
    x86_64::instructions::tlb::flush(x86_64::VirtAddr::new(page));
    match caught {
        Err(WxError::Violation { virt, violation: Violation::WrongPermission { class: PageClass::Data, .. } })
            if virt == page =>
        {
            Ok(())
        }
        _ => Err(WxError::VerifierMissedPlantedPage { page }),
    }
}

/// The PTE that maps the 4 KiB page at `virt`, if a 4 KiB page maps it.
fn pte_of(virt: u64) -> Option<*mut u64> {
    let (level_4, _) = Cr3::read();
    let mut table = level_4.start_address().as_u64();
    for level in (1..=4u8).rev() {
        let index = ((virt / coverage(level)) & 0x1FF) as usize;
        // SAFETY: one of the 512 entries of a live paging structure in the window.
        let pointer = unsafe { table_entries(table).add(index) };
        // SAFETY: as above.
        let entry = unsafe { pointer.read_volatile() };
        if entry & PRESENT == 0 {
            return None;
        }
        if is_leaf(entry, level) {
            return (level == 1).then_some(pointer);
        }
        table = entry::address(entry, level);
    }
    None
}

/// The PTE that maps the window address `virt`, splitting the 1 GiB and
/// 2 MiB pages on the way into tables of smaller pages with the same
/// translation and attributes. Returns the entry and the number of splits.
fn window_entry_4k(virt: u64) -> Result<(*mut u64, u64), WxError> {
    let (level_4, _) = Cr3::read();
    let mut table = level_4.start_address().as_u64();
    let mut splits = 0;
    for level in (1..=4u8).rev() {
        let index = ((virt / coverage(level)) & 0x1FF) as usize;
        // SAFETY: one of the 512 entries of a live paging structure in the window.
        let pointer = unsafe { table_entries(table).add(index) };
        // SAFETY: as above.
        let mut entry = unsafe { pointer.read_volatile() };
        if entry & PRESENT == 0 {
            return Err(WxError::WindowHole { frame: virt });
        }
        if level == 1 {
            return Ok((pointer, splits));
        }
        if is_leaf(entry, level) {
            entry = split(pointer, entry, level)?;
            splits += 1;
        }
        table = entry & ADDRESS_MASK;
    }
    Err(WxError::WindowHole { frame: virt })
}

/// Replaces the large-page entry `entry` at `pointer` (a PDPTE when `level`
/// is 3, a PDE when 2) with a table of 512 entries that map the same memory
/// with the same attributes in pages one level smaller (SDM Vol. 3A, Tables
/// 4-17 and 4-18 for the large-page formats, 4-19 and 4-20 for the smaller
/// ones). Returns the new entry.
fn split(pointer: *mut u64, entry: u64, level: u8) -> Result<u64, WxError> {
    let table = memory::allocate_frame()?;
    let entries = table_entries(table);
    for index in 0..ENTRIES {
        // SAFETY: the fresh frame holds 512 entries and is not yet in use.
        unsafe { entries.add(index).write_volatile(split_child(entry, level, index)) };
    }
    let table_entry = split_parent(table, entry);
    // SAFETY: the new table maps exactly what the large page mapped, so the
    // switch is invisible to every access; stale TLB entries agree with it.
    unsafe { pointer.write_volatile(table_entry) };
    Ok(table_entry)
}

/// Invalidates all TLB entries, global ones too (SDM Vol. 3A, 4.10.4.1):
/// toggling CR4.PGE when it is set, otherwise reloading CR3.
fn flush_tlb() {
    let cr4 = Cr4::read();
    if cr4.contains(Cr4Flags::PAGE_GLOBAL) {
        // SAFETY: clearing and restoring PGE changes nothing but the TLB.
        unsafe {
            Cr4::write(cr4 - Cr4Flags::PAGE_GLOBAL);
            Cr4::write(cr4);
        }
    } else {
        x86_64::instructions::tlb::flush_all();
    }
}

/// Reads every mapping back and checks it (step 6 of the module
/// documentation); returns the counts. Can be called at any time after
/// [`harden`] (a self-test): it changes nothing.
pub fn verify() -> Result<WxReport, WxError> {
    let image = IMAGE.get().ok_or(WxError::NoPhysicalWindow)?;
    let offset = memory::physical_offset().ok_or(WxError::NoPhysicalWindow)?;
    let layout = &image.layout;
    let mut report = WxReport::default();
    if !Efer::read().contains(EferFlags::NO_EXECUTE_ENABLE) {
        return Err(WxError::ControlBitOff { bit: "EFER.NXE" });
    }
    if !Cr0::read().contains(Cr0Flags::WRITE_PROTECT) {
        return Err(WxError::ControlBitOff { bit: "CR0.WP" });
    }

    // Every leaf against its class; the protected frames.
    let mut protected_frames = Vec::new();
    walk(&mut |leaf| {
        let class = class_of_leaf(layout, leaf)?;
        let permission = leaf.permission();
        check_mapping(class, permission).map_err(|violation| WxError::Violation { virt: leaf.virt, violation })?;
        match class {
            Some(PageClass::Code) => report.code_pages += 1,
            Some(PageClass::ReadOnly) => report.read_only_pages += 1,
            Some(PageClass::Data) => report.data_pages += 1,
            None if in_window(leaf, offset) => report.window_bytes += leaf.size,
            None => report.other_pages += leaf.size / PAGE_4K,
        }
        if class.is_some_and(PageClass::is_protected) {
            protected_frames.push(leaf.phys);
        }
        Ok(())
    })?;
    // Every page of the image is mapped, except the IST guard pages (checked
    // below): the walk met each mapped image page exactly once, as a 4 KiB
    // leaf with a class, so counting is enough; only a shortfall is looked
    // for page by page, to name the missing one.
    let ist_guards = ist_guard_pages();
    let mut expected = 0u64;
    layout.for_each_page(|page, _| {
        if !ist_guards.contains(&page) {
            expected += 1;
        }
    });
    if report.code_pages + report.read_only_pages + report.data_pages < expected {
        let mut missing = None;
        layout.for_each_page(|page, _| {
            if missing.is_none() && !ist_guards.contains(&page) && translate(page).is_none() {
                missing = Some(page);
            }
        });
        return Err(WxError::ImagePageMissing { virt: missing.unwrap_or(layout.extent().0) });
    }

    // No writable mapping reaches a protected frame.
    protected_frames.sort_unstable();
    protected_frames.dedup();
    // (A second walk rather than a list of every writable leaf: with a large
    // physical window that list would not fit the heap.)
    walk(&mut |leaf| {
        if !leaf.permission().writable {
            return Ok(());
        }
        let first = protected_frames.partition_point(|&frame| frame < leaf.phys);
        match protected_frames.get(first) {
            Some(&frame) if frame < leaf.phys + leaf.size => Err(WxError::WritableAlias { virt: leaf.virt, frame }),
            _ => Ok(()),
        }
    })?;

    // The guard pages stay unmapped.
    if translate(image.boot_stack_guard).is_some() {
        return Err(WxError::GuardPageMapped { stack: "boot stack", page: image.boot_stack_guard });
    }
    for guard in ist_guards {
        if translate(guard).is_some() {
            return Err(WxError::GuardPageMapped { stack: "IST stack", page: guard });
        }
    }

    // NMI, #DF and #MC switch stacks: their IDT gates name an IST slot
    // (SDM Vol. 3A, 6.14.5 "Interrupt Stack Table").
    let idtr = x86_64::instructions::tables::sidt();
    for vector in [2u8, 8, 18] {
        // Byte 4 of a 16-byte gate holds the IST index in bits 2:0 (SDM Vol. 3A, Figure 6-8).
        // SAFETY: the IDT is ours, loaded, with 256 gates.
        let ist = unsafe { (idtr.base.as_ptr::<u8>()).add(usize::from(vector) * 16 + 4).read_volatile() } & 0x7;
        if ist == 0 {
            return Err(WxError::NoIstStack { vector });
        }
    }
    Ok(report)
}

/// The addresses of the guard pages below the three IST stacks
/// ([`crate::platform::gdt::GuardedStack`]), unmapped by [`memory::protect_kernel`].
fn ist_guard_pages() -> [u64; 3] {
    // SAFETY: only the addresses are taken, no reference to the mutable static is made.
    core::array::from_fn(|index| unsafe { core::ptr::addr_of!(crate::platform::gdt::IST_STACKS[index].guard) } as u64)
}

/// The physical address `virt` is mapped to, if it is.
fn translate(virt: u64) -> Option<u64> {
    let mut found = None;
    let _ = walk_one(virt, &mut found);
    found
}

/// [`translate`]'s descent: one path from CR3 down, no allocation.
fn walk_one(virt: u64, found: &mut Option<u64>) -> Option<()> {
    let (level_4, _) = Cr3::read();
    let mut table = level_4.start_address().as_u64();
    for level in (1..=4u8).rev() {
        let index = ((virt / coverage(level)) & 0x1FF) as usize;
        // SAFETY: one of the 512 entries of a live paging structure in the window.
        let entry = unsafe { table_entries(table).add(index).read_volatile() };
        if entry & PRESENT == 0 {
            return None;
        }
        if is_leaf(entry, level) {
            *found = Some(entry::address(entry, level) + (virt & (coverage(level) - 1)));
            return Some(());
        }
        table = entry::address(entry, level);
    }
    None
}

/// The FNV-1a checksum of the kernel's code and read-only pages, read
/// through their own (read-only) mappings; `None` before [`harden`].
///
/// Not cryptographic ([`Fnv1a64`]): it catches accidental writes, not an
/// attacker who can already write the hypervisor's memory.
pub fn image_checksum() -> Option<u64> {
    let image = IMAGE.get()?;
    let mut hash = Fnv1a64::new();
    image.layout.for_each_page(|page, class| {
        if class.is_protected() {
            // SAFETY: a mapped page of the kernel image (verify checked every
            // page of the layout is mapped); read-only, so no one writes it concurrently.
            let bytes = unsafe { core::slice::from_raw_parts(page as *const u8, PAGE_4K as usize) };
            hash.update_words(bytes);
        }
    });
    Some(hash.finish())
}

/// Prints the `hypervisor image: code+rodata checksum 0x... at start` line;
/// returns the checksum for [`report_image_at_end`].
pub fn report_image_at_start() -> Option<u64> {
    let checksum = image_checksum();
    match checksum {
        Some(value) => crate::info!("hypervisor image: code+rodata checksum {:#018x} at start", value),
        None => crate::error!("hypervisor image: no checksum (W^X hardening did not run)"),
    }
    checksum
}

/// Computes the checksum again and prints `... at end: unchanged` or
/// `... at end: CHANGED`; also reads every mapping back once more
/// ([`verify`]: nothing may have made a page writable and executable while
/// the guests ran). Returns whether both hold.
pub fn report_image_at_end(at_start: Option<u64>) -> bool {
    let Some((start, end)) = at_start.zip(image_checksum()) else {
        crate::error!("hypervisor image: no checksum at end");
        return false;
    };
    match verify() {
        Ok(report) => crate::debug!(
            "memory: W^X still holds after the guests ran ({} code, {} read-only, {} data pages read back)",
            report.code_pages,
            report.read_only_pages,
            report.data_pages
        ),
        Err(violation) => {
            crate::error!("memory: W^X VIOLATION after the guests ran: {}", violation);
            return false;
        }
    }
    if start == end {
        crate::info!("hypervisor image: code+rodata checksum {:#018x} at end: unchanged", end);
        true
    } else {
        crate::error!("hypervisor image: code+rodata checksum {:#018x} at end: CHANGED (was {:#018x})", end, start);
        false
    }
}
