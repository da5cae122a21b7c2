//! A guest's EPT tables in host memory, and INVEPT/INVVPID.
//!
//! The builder ([`hypervisor_core::ept::EptBuilder`]) decides what goes into
//! the tables; this file only gives it frames from the frame allocator and
//! reaches them through the physical-memory mapping, and remembers every frame
//! so they all go back when the guest is torn down.

use alloc::vec::Vec;
use core::arch::asm;

use hypervisor_core::ept::{EptBuilder, EptError, EptOptions, EptPermissions, EptTable, EptTableAllocator};
use hypervisor_core::guest_memory::GuestRamLayout;

use crate::platform::memory;

/// EPT table frames owned by one guest.
#[derive(Debug, Default)]
pub struct KernelTables {
    frames: Vec<u64>,
}

impl EptTableAllocator for KernelTables {
    fn allocate_table(&mut self) -> Option<u64> {
        let frame = memory::allocate_frame().ok()?;
        self.frames.push(frame);
        Some(frame)
    }

    fn table(&self, phys: u64) -> &EptTable {
        debug_assert!(self.frames.contains(&phys));
        // SAFETY: `phys` is a frame this allocator handed out (the builder only
        // asks for those), 4 KiB-aligned and mapped at the physical offset.
        unsafe { &*(memory::phys_to_virt(phys) as *const EptTable) }
    }

    fn table_mut(&mut self, phys: u64) -> &mut EptTable {
        debug_assert!(self.frames.contains(&phys));
        // SAFETY: as in `table`; `&mut self` makes the borrow unique.
        unsafe { &mut *(memory::phys_to_virt(phys) as *mut EptTable) }
    }

    fn free_table(&mut self, phys: u64) {
        if let Some(index) = self.frames.iter().position(|&frame| frame == phys) {
            self.frames.swap_remove(index);
            memory::free_frame(phys);
        }
    }
}

impl Drop for KernelTables {
    fn drop(&mut self) {
        for &frame in &self.frames {
            memory::free_frame(frame);
        }
    }
}

/// One guest's EPT.
pub struct GuestEpt {
    builder: EptBuilder<KernelTables>,
}

impl GuestEpt {
    /// Builds tables mapping all of the guest's RAM read/write/execute,
    /// write-back, with 2 MiB pages; nothing else is mapped.
    pub fn for_guest_ram(layout: &GuestRamLayout, accessed_dirty: bool) -> Result<Self, EptError> {
        let options = EptOptions { accessed_dirty, ..EptOptions::default() };
        let mut builder = EptBuilder::new(KernelTables::default(), options)?;
        builder.map_guest_ram(layout, EptPermissions::ALL)?;
        Ok(GuestEpt { builder })
    }

    /// The EPT pointer for the VMCS.
    pub fn eptp(&self) -> u64 {
        self.builder.eptp().bits()
    }

    /// How many 4 KiB table frames it uses.
    pub fn tables_used(&self) -> usize {
        self.builder.tables_used()
    }

    /// The builder, to inspect or change mappings (call [`invept_single_context`] after a change).
    pub fn builder(&mut self) -> &mut EptBuilder<KernelTables> {
        &mut self.builder
    }
}

/// INVEPT type 1, single-context: drops cached translations derived from
/// `eptp` (SDM Vol. 3C, 31.3 "INVEPT" and 29.4.3.1 "Operations that
/// Invalidate Cached Mappings"). A CPU without the single-context type gets
/// type 2, all-context: more than needed, never less. Returns false if the
/// CPU refused both.
pub fn invept_single_context(eptp: u64) -> bool {
    invept(1, eptp) || invept(2, 0)
}

fn invept(kind: u64, eptp: u64) -> bool {
    let descriptor: [u64; 2] = [eptp, 0];
    let flags: u64;
    // SAFETY: INVEPT only invalidates TLB/paging-structure caches; the
    // descriptor is a valid 128-bit memory operand.
    unsafe {
        asm!("invept {kind}, [{descriptor}]", "pushfq", "pop {flags}",
             kind = in(reg) kind, descriptor = in(reg) descriptor.as_ptr(), flags = out(reg) flags);
    }
    flags & 0x41 == 0
}

/// INVVPID type 1, single-context: drops cached linear translations tagged
/// with `vpid` (SDM Vol. 3C, 31.3 "INVVPID"); type 2, all-context, where the
/// CPU lacks type 1. Returns false if the CPU refused both.
pub fn invvpid_single_context(vpid: u16) -> bool {
    invvpid(1, vpid) || invvpid(2, 0)
}

fn invvpid(kind: u64, vpid: u16) -> bool {
    let descriptor: [u64; 2] = [u64::from(vpid), 0];
    let flags: u64;
    // SAFETY: as for INVEPT; VPID 0 with type 1 would be refused (VMfailValid), not harmful.
    unsafe {
        asm!("invvpid {kind}, [{descriptor}]", "pushfq", "pop {flags}",
             kind = in(reg) kind, descriptor = in(reg) descriptor.as_ptr(), flags = out(reg) flags);
    }
    flags & 0x41 == 0
}
