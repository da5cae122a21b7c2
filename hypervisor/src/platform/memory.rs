//! Physical memory: the frame allocator, access through the bootloader's
//! physical-memory mapping, the kernel heap, and guard pages.
//!
//! Two sizes are handed out: 4 KiB frames (VMCS regions, EPT tables, bitmaps)
//! and 2 MiB-aligned 2 MiB blocks (guest RAM, so EPT can map it with large
//! pages). 4 KiB frames are taken from the bottom of each usable region and
//! 2 MiB blocks from the top, so neither size fragments the other. Returned
//! frames and blocks go to free lists and are reused first.

use bootloader_api::info::{MemoryRegionKind, MemoryRegions};
use linked_list_allocator::LockedHeap;
use spin::Mutex;
use x86_64::structures::paging::{Mapper, OffsetPageTable, Page, PageTable, Size4KiB};
use x86_64::VirtAddr;

/// Size of a small frame.
pub const FRAME_SIZE: u64 = 4096;
/// Size of a large block (one 2 MiB EPT page).
pub const BLOCK_SIZE: u64 = 2 << 20;
/// Memory below this address is never handed out (real-mode IVT, BIOS data,
/// option ROMs: nothing the hypervisor wants to reuse).
const LOWEST_ALLOCATABLE: u64 = 1 << 20;
/// Most usable regions a machine reports that we track.
const MAX_REGIONS: usize = 64;

/// Size of the kernel heap (boxes, vectors: guest bookkeeping, never guest RAM).
const HEAP_SIZE: usize = 4 << 20;

#[global_allocator]
static HEAP: LockedHeap = LockedHeap::empty();

/// The heap's memory: a zeroed array in the kernel's `.bss`.
#[repr(align(4096))]
struct HeapArea([u8; HEAP_SIZE]);
static mut HEAP_AREA: HeapArea = HeapArea([0; HEAP_SIZE]);

/// Virtual address where the bootloader mapped all physical memory.
static PHYSICAL_OFFSET: spin::Once<u64> = spin::Once::new();

/// One usable range `[start, end)`, shrinking from both ends as it is used.
#[derive(Debug, Clone, Copy, Default)]
struct Region {
    start: u64,
    end: u64,
}

/// What the frame allocator counts, for reports and benchmarks.
#[derive(Debug, Clone, Copy, Default)]
pub struct MemoryStats {
    /// Bytes the firmware reports in all regions.
    pub total_bytes: u64,
    /// Bytes in usable regions (above 1 MiB).
    pub usable_bytes: u64,
    /// 4 KiB frames currently handed out.
    pub frames_in_use: u64,
    /// 2 MiB blocks currently handed out.
    pub blocks_in_use: u64,
}

/// Hands out physical frames and blocks.
pub struct FrameAllocator {
    regions: [Region; MAX_REGIONS],
    region_count: usize,
    /// Physical address of the first free 4 KiB frame; each free frame holds the next's address.
    free_frames: u64,
    /// Same for 2 MiB blocks.
    free_blocks: u64,
    stats: MemoryStats,
}

static FRAMES: Mutex<FrameAllocator> = Mutex::new(FrameAllocator {
    regions: [Region { start: 0, end: 0 }; MAX_REGIONS],
    region_count: 0,
    free_frames: 0,
    free_blocks: 0,
    stats: MemoryStats { total_bytes: 0, usable_bytes: 0, frames_in_use: 0, blocks_in_use: 0 },
});

/// Errors of the physical allocator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MemoryError {
    /// No 4 KiB frame is left.
    OutOfFrames,
    /// No 2 MiB-aligned 2 MiB block is left.
    OutOfBlocks,
}

impl core::fmt::Display for MemoryError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            MemoryError::OutOfFrames => f.write_str("out of physical memory (no 4 KiB frame left)"),
            MemoryError::OutOfBlocks => f.write_str("out of physical memory (no 2 MiB block left)"),
        }
    }
}

/// Takes the bootloader's memory map and physical-memory offset; sets up the heap.
pub fn init(regions: &MemoryRegions, physical_offset: u64) -> MemoryStats {
    PHYSICAL_OFFSET.call_once(|| physical_offset);
    // SAFETY: the heap area is a static used for nothing else, initialised once.
    unsafe {
        let start = core::ptr::addr_of_mut!(HEAP_AREA.0) as *mut u8;
        HEAP.lock().init(start, HEAP_SIZE);
    }
    let mut frames = FRAMES.lock();
    for region in regions.iter() {
        frames.stats.total_bytes += region.end - region.start;
        if region.kind != MemoryRegionKind::Usable {
            continue;
        }
        let start = region.start.max(LOWEST_ALLOCATABLE).next_multiple_of(FRAME_SIZE);
        let end = region.end & !(FRAME_SIZE - 1);
        if end <= start || frames.region_count == MAX_REGIONS {
            continue;
        }
        frames.stats.usable_bytes += end - start;
        let index = frames.region_count;
        frames.regions[index] = Region { start, end };
        frames.region_count += 1;
    }
    frames.stats
}

/// The allocator's counters now.
pub fn stats() -> MemoryStats {
    FRAMES.lock().stats
}

/// The virtual address where the bootloader mapped physical address 0 (the
/// physical window), once [`init`] has run.
pub fn physical_offset() -> Option<u64> {
    PHYSICAL_OFFSET.get().copied()
}

/// Converts a physical address into the virtual address where it is mapped.
pub fn phys_to_virt(physical: u64) -> *mut u8 {
    let offset = *PHYSICAL_OFFSET.get().expect("memory::init runs first");
    (offset + physical) as *mut u8
}

/// Converts a virtual address inside the physical-memory mapping back.
pub fn virt_to_phys_of_mapping(virtual_address: *const u8) -> u64 {
    let offset = *PHYSICAL_OFFSET.get().expect("memory::init runs first");
    virtual_address as u64 - offset
}

/// Allocates one zeroed 4 KiB frame; returns its physical address.
pub fn allocate_frame() -> Result<u64, MemoryError> {
    let physical = FRAMES.lock().take_frame()?;
    // SAFETY: the frame was free, so nothing else refers to it; it lies in the
    // physical-memory mapping.
    unsafe { core::ptr::write_bytes(phys_to_virt(physical), 0, FRAME_SIZE as usize) };
    Ok(physical)
}

/// Returns a frame from [`allocate_frame`].
pub fn free_frame(physical: u64) {
    FRAMES.lock().give_frame(physical);
}

/// Allocates one zeroed, 2 MiB-aligned 2 MiB block; returns its physical address.
pub fn allocate_block() -> Result<u64, MemoryError> {
    let taken = FRAMES.lock().take_block();
    let physical = match taken {
        Ok(block) => block,
        // Out of free blocks: finish zeroing the retired ones, then retry.
        Err(_) => {
            scrub(u64::MAX);
            FRAMES.lock().take_block()?
        }
    };
    // SAFETY: as in allocate_frame.
    unsafe { core::ptr::write_bytes(phys_to_virt(physical), 0, BLOCK_SIZE as usize) };
    Ok(physical)
}

/// Returns a block from [`allocate_block`] (the caller zeroes it if it held secrets).
pub fn free_block(physical: u64) {
    FRAMES.lock().give_block(physical);
}

/// Blocks that held a guest's data, waiting to be zeroed before they are
/// free again (see [`retire_block`]).
struct ScrubQueue {
    /// The block being zeroed, and how many of its bytes are done.
    current: Option<(u64, u64)>,
    /// The others, linked through their first word (0 ends the list).
    waiting: u64,
    /// Blocks queued so far (for the report).
    retired: u64,
}

static SCRUB: Mutex<ScrubQueue> = Mutex::new(ScrubQueue { current: None, waiting: 0, retired: 0 });

/// Bytes [`scrub`] zeroes per call between time slices: small enough not to
/// delay a guest's timer interrupt noticeably (~4,000 stores).
pub const SCRUB_STEP: u64 = 32 * 1024;

/// Takes back a block that held a guest's RAM. It is zeroed — a step at a
/// time by [`scrub`], between time slices and while the CPU idles — before
/// it joins the free blocks, so tearing a guest down never stalls the
/// others, and no later owner (guest or hypervisor) can see its data.
pub fn retire_block(physical: u64) {
    let mut queue = SCRUB.lock();
    queue.retired += 1;
    if queue.current.is_none() {
        queue.current = Some((physical, 0));
    } else {
        // SAFETY: the block is ours again; its first word links the queue.
        unsafe { (phys_to_virt(physical) as *mut u64).write(queue.waiting) };
        queue.waiting = physical;
    }
}

/// Zeroes up to `budget` bytes of retired blocks, freeing each block once
/// it is all zero. Returns whether retired blocks remain.
pub fn scrub(budget: u64) -> bool {
    let mut queue = SCRUB.lock();
    let mut budget = budget;
    while budget > 0 {
        let Some((block, done)) = queue.current else { return false };
        let step = budget.min(BLOCK_SIZE - done);
        // SAFETY: the block was retired: no guest and no hypervisor structure
        // uses it; [done, done + step) lies inside it.
        unsafe { core::ptr::write_bytes(phys_to_virt(block + done), 0, step as usize) };
        budget -= step;
        if done + step < BLOCK_SIZE {
            queue.current = Some((block, done + step));
            continue;
        }
        FRAMES.lock().give_block(block);
        queue.current = if queue.waiting != 0 {
            let next = queue.waiting;
            // SAFETY: a waiting block's first word links the next one.
            queue.waiting = unsafe { (phys_to_virt(next) as *const u64).read() };
            Some((next, 0))
        } else {
            None
        };
    }
    queue.current.is_some()
}

/// Blocks retired since start-up.
pub fn retired_blocks() -> u64 {
    SCRUB.lock().retired
}

impl FrameAllocator {
    fn take_frame(&mut self) -> Result<u64, MemoryError> {
        if self.free_frames != 0 {
            let frame = self.free_frames;
            // SAFETY: a free frame's first word holds the next free frame.
            self.free_frames = unsafe { (phys_to_virt(frame) as *const u64).read() };
            self.stats.frames_in_use += 1;
            return Ok(frame);
        }
        for region in self.regions[..self.region_count].iter_mut() {
            if region.end - region.start >= FRAME_SIZE {
                let frame = region.start;
                region.start += FRAME_SIZE;
                self.stats.frames_in_use += 1;
                return Ok(frame);
            }
        }
        Err(MemoryError::OutOfFrames)
    }

    fn give_frame(&mut self, frame: u64) {
        // SAFETY: the caller handed the frame back; we own it again.
        unsafe { (phys_to_virt(frame) as *mut u64).write(self.free_frames) };
        self.free_frames = frame;
        self.stats.frames_in_use -= 1;
    }

    fn take_block(&mut self) -> Result<u64, MemoryError> {
        if self.free_blocks != 0 {
            let block = self.free_blocks;
            // SAFETY: a free block's first word holds the next free block.
            self.free_blocks = unsafe { (phys_to_virt(block) as *const u64).read() };
            self.stats.blocks_in_use += 1;
            return Ok(block);
        }
        for region in self.regions[..self.region_count].iter_mut() {
            let top = region.end & !(BLOCK_SIZE - 1);
            if top >= BLOCK_SIZE && top - BLOCK_SIZE >= region.start {
                let block = top - BLOCK_SIZE;
                // The unaligned tail above `top` is given up; regions are few.
                region.end = block;
                self.stats.blocks_in_use += 1;
                return Ok(block);
            }
        }
        Err(MemoryError::OutOfBlocks)
    }

    fn give_block(&mut self, block: u64) {
        // SAFETY: the caller handed the block back; we own it again.
        unsafe { (phys_to_virt(block) as *mut u64).write(self.free_blocks) };
        self.free_blocks = block;
        self.stats.blocks_in_use -= 1;
    }
}

/// Unmaps the guard page below each IST stack, so that an overflowing handler
/// faults (into the double-fault handler, itself on a separate stack) instead of
/// silently overwriting memory. The boot stack already has a guard page: the
/// bootloader leaves the page below it unmapped.
pub fn protect_kernel() -> usize {
    let offset = *PHYSICAL_OFFSET.get().expect("memory::init runs first");
    let (level_4_frame, _) = x86_64::registers::control::Cr3::read();
    // SAFETY: CR3 points at the active level-4 table, which the bootloader
    // mapped inside the physical-memory mapping at `offset`.
    let level_4 = unsafe { &mut *(phys_to_virt(level_4_frame.start_address().as_u64()) as *mut PageTable) };
    // SAFETY: all physical memory is mapped at `offset`.
    let mut mapper = unsafe { OffsetPageTable::new(level_4, VirtAddr::new(offset)) };
    let mut guarded = 0;
    for index in 0..3 {
        // SAFETY: only the address of the guard page is taken.
        let guard = unsafe { core::ptr::addr_of!(crate::platform::gdt::IST_STACKS[index].guard) };
        let page: Page<Size4KiB> = Page::containing_address(VirtAddr::from_ptr(guard));
        match mapper.unmap(page) {
            Ok((_, flush)) => {
                flush.flush();
                guarded += 1;
            }
            Err(error) => crate::warn!("could not unmap IST guard page {:?}: {:?}", page, error),
        }
    }
    guarded
}
