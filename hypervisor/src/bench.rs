//! The native half of the guest-overhead benchmark (`cargo run -- --bench`).
//!
//! The bench guest runs [`hypervisor_core::workload`] over 32 MiB of its RAM
//! and prints its TSC ticks; here the hypervisor runs the same code over the
//! same number of bytes of host memory, in VMX root operation, before any
//! guest starts. The runner divides the two: in Bochs, where the TSC counts
//! instructions, a guest that takes no VM exits during the workload gives
//! 1.00; on hardware the ratio also shows what EPT's two-level page walks
//! and the TLB cost.
//!
//! The boot blob asks for it (`features` bit 0, [`BlobSettings::native_workload`]);
//! otherwise nothing here runs. The buffer is made of 2 MiB host blocks from
//! the frame allocator, which need not be contiguous: the workload runs over
//! them in order ([`Workload::fill`] and [`Workload::hash`] continue where
//! the previous block ended), which gives the digest a contiguous buffer
//! would.
//!
//! [`BlobSettings::native_workload`]: hypervisor_core::blob::BlobSettings::native_workload

use alloc::vec::Vec;

use hypervisor_core::workload::{Workload, WORKLOAD_BYTES, WORKLOAD_SEED};

use crate::platform::memory::{self, BLOCK_SIZE};

/// Words of one 2 MiB block.
const WORDS_PER_BLOCK: usize = (BLOCK_SIZE / 8) as usize;

/// Reads the TSC with LFENCE on both sides, as the guest's timing code does,
/// so the two sides start and stop their clocks the same way (SDM Vol. 2B,
/// RDTSC).
#[inline(always)]
fn fenced_tsc() -> u64 {
    // SAFETY: LFENCE only orders loads; RDTSC reads the time-stamp counter.
    unsafe {
        core::arch::x86_64::_mm_lfence();
        let tsc = core::arch::x86_64::_rdtsc();
        core::arch::x86_64::_mm_lfence();
        tsc
    }
}

/// When `asked`, runs the workload natively and prints
/// `bench: workload_native ticks samples=1 min=<t> median=<t> max=<t>` and
/// its digest. Returns the TSC ticks spent here in all (allocation included),
/// which the caller leaves out of the start-up figure; 0 when not asked.
pub fn run_native_workload(asked: bool) -> u64 {
    if !asked {
        return 0;
    }
    let started = crate::vmx::read_tsc();
    let mut blocks: Vec<u64> = Vec::new();
    let wanted = WORKLOAD_BYTES / BLOCK_SIZE as usize;
    for _ in 0..wanted {
        match memory::allocate_block() {
            Ok(block) => blocks.push(block),
            Err(error) => {
                crate::error!("bench: workload_native: cannot allocate {} MiB: {}", WORKLOAD_BYTES >> 20, error);
                break;
            }
        }
    }
    if blocks.len() == wanted {
        let start = fenced_tsc();
        let mut workload = Workload::new(WORKLOAD_SEED);
        for &block in &blocks {
            workload.fill(block_words(block));
        }
        for &block in &blocks {
            workload.hash(block_words(block));
        }
        let ticks = fenced_tsc().wrapping_sub(start);
        crate::info!("bench: workload_native ticks samples=1 min={ticks}.0 median={ticks}.0 max={ticks}.0");
        crate::info!(
            "bench-info: workload digest {:#018x} over {} MiB (native)",
            workload.digest(),
            WORKLOAD_BYTES >> 20
        );
    }
    // The blocks hold generator output, nothing secret: free at once.
    for block in blocks {
        memory::free_block(block);
    }
    crate::vmx::read_tsc().wrapping_sub(started)
}

/// The words of the 2 MiB block at physical address `block`.
fn block_words(block: u64) -> &'static mut [u64] {
    // SAFETY: `block` came from `memory::allocate_block` and is not freed
    // until the workload is done: 2 MiB, 2 MiB-aligned, ours alone, mapped
    // at the physical-memory offset. Only one slice of it exists at a time.
    unsafe { core::slice::from_raw_parts_mut(memory::phys_to_virt(block) as *mut u64, WORDS_PER_BLOCK) }
}
