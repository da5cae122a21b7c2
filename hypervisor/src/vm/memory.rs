//! A guest's RAM: 2 MiB host blocks that belong to this guest alone.
//!
//! Blocks come zeroed from the frame allocator, so a guest never sees another
//! guest's or the hypervisor's old data; on drop they are retired
//! ([`memory::retire_block`]) and zeroed before they are free again, so the
//! next owner cannot either. All access from the
//! hypervisor goes through [`GuestRam::read`] / [`GuestRam::write`], which check
//! the guest-physical range first (the layout's `host_chunks`).

use alloc::boxed::Box;
use hypervisor_core::guest_memory::{GuestMemoryError, GuestRamLayout, BLOCK_SIZE};

use crate::platform::memory::{self, MemoryError};

/// The RAM of one guest.
pub struct GuestRam {
    layout: Box<GuestRamLayout>,
}

/// Errors while allocating guest RAM.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GuestRamError {
    /// The host has no block left.
    Memory(MemoryError),
    /// The layout refused the size.
    Layout(GuestMemoryError),
}

impl core::fmt::Display for GuestRamError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            GuestRamError::Memory(error) => write!(f, "guest RAM: {error}"),
            GuestRamError::Layout(error) => write!(f, "guest RAM: {error}"),
        }
    }
}

impl GuestRam {
    /// Allocates `ram_bytes` (a multiple of 2 MiB) of zeroed RAM.
    pub fn allocate(ram_bytes: u64) -> Result<Self, GuestRamError> {
        let mut ram = GuestRam { layout: Box::new(GuestRamLayout::empty()) };
        for _ in 0..ram_bytes / BLOCK_SIZE {
            let block = memory::allocate_block().map_err(GuestRamError::Memory)?;
            if let Err(error) = ram.layout.push_block(block) {
                memory::free_block(block);
                return Err(GuestRamError::Layout(error));
            }
        }
        Ok(ram)
    }

    /// Where each 2 MiB of guest-physical memory lives on the host.
    pub fn layout(&self) -> &GuestRamLayout {
        &self.layout
    }

    /// Size in bytes.
    pub fn size(&self) -> u64 {
        self.layout.ram_size()
    }

    /// Copies guest memory `[gpa, gpa + buffer.len())` into `buffer`.
    pub fn read(&self, gpa: u64, buffer: &mut [u8]) -> Result<(), GuestMemoryError> {
        for chunk in self.layout.host_chunks(gpa, buffer.len() as u64)? {
            let start = chunk.offset as usize;
            let end = start + chunk.len as usize;
            // SAFETY: the chunk lies in a block owned by this guest, mapped
            // through the physical-memory mapping; the guest cannot run while
            // the hypervisor handles its exit.
            unsafe {
                core::ptr::copy_nonoverlapping(
                    memory::phys_to_virt(chunk.hpa),
                    buffer[start..end].as_mut_ptr(),
                    chunk.len as usize,
                )
            };
        }
        Ok(())
    }

    /// Copies `bytes` into guest memory at `gpa`.
    pub fn write(&mut self, gpa: u64, bytes: &[u8]) -> Result<(), GuestMemoryError> {
        for chunk in self.layout.host_chunks(gpa, bytes.len() as u64)? {
            let start = chunk.offset as usize;
            let end = start + chunk.len as usize;
            // SAFETY: as in `read`.
            unsafe {
                core::ptr::copy_nonoverlapping(
                    bytes[start..end].as_ptr(),
                    memory::phys_to_virt(chunk.hpa),
                    chunk.len as usize,
                )
            };
        }
        Ok(())
    }

    /// A mutable view of a range that lies inside one host block (used for
    /// page tables in the reserved region at the top of RAM).
    pub fn contiguous_mut(&mut self, gpa: u64, len: u64) -> Option<&mut [u8]> {
        let mut chunks = self.layout.host_chunks(gpa, len).ok()?;
        let chunk = chunks.next()?;
        if chunk.len != len {
            return None;
        }
        // SAFETY: the range lies inside one block owned by this guest, and the
        // returned borrow keeps `self` mutably borrowed.
        Some(unsafe { core::slice::from_raw_parts_mut(memory::phys_to_virt(chunk.hpa), len as usize) })
    }
}

impl Drop for GuestRam {
    fn drop(&mut self) {
        // The guest no longer runs and its EPT is gone (INVEPT done at
        // teardown): the blocks are zeroed on their way back to the free list.
        for &block in self.layout.blocks() {
            memory::retire_block(block);
        }
    }
}
