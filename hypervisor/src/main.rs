//! A bare-metal Type-1 hypervisor for Intel VT-x.
//!
//! The bootloader hands us a 64-bit CPU with paging on, all physical memory
//! mapped at an offset, and the runner's boot blob (guest configs and images)
//! as its ramdisk. From there, in this order:
//!
//! 1. `platform`: console, GDT/TSS, IDT, legacy PICs masked, memory.
//! 2. `vmx`: check and report VT-x, turn VMX on.
//! 3. `vm`: build each guest (RAM, EPT, VMCS) and run it, handling its exits.
//! 4. Print the verdict and power off.
#![no_std]
#![no_main]
// VMREAD's failure test is a jump straight out of the `asm!` block (asm goto);
// with an output operand that is still unstable (rust-lang/rust#119364). The
// toolchain is pinned, and the exit path is two instructions shorter per VMREAD.
#![feature(asm_goto_with_outputs)]
#![deny(unsafe_op_in_unsafe_fn)]
#![warn(missing_docs)]

extern crate alloc;

pub mod bench;
pub mod platform;
pub mod vm;
pub mod vmx;

use bootloader_api::config::{BootloaderConfig, Mapping};
use bootloader_api::{entry_point, BootInfo};
use platform::power::{power_off, Verdict};

/// What we ask of the bootloader: all physical memory mapped (we build EPT
/// tables and guest RAM through it) and a generous boot stack.
pub static BOOTLOADER_CONFIG: BootloaderConfig = {
    let mut config = BootloaderConfig::new_default();
    config.mappings.physical_memory = Some(Mapping::Dynamic);
    config.kernel_stack_size = 256 * 1024;
    config
};

entry_point!(kernel_main, config = &BOOTLOADER_CONFIG);

/// The hypervisor's version, printed in the banner.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

fn kernel_main(boot_info: &'static mut BootInfo) -> ! {
    let entry_tsc = vmx::read_tsc();
    platform::console::init();
    info!("hypervisor {}: a bare-metal VT-x hypervisor", VERSION);

    platform::gdt::init();
    platform::idt::init();
    platform::pic::remap_and_mask();

    let Some(physical_offset) = boot_info.physical_memory_offset.into_option() else {
        error!("the bootloader did not map physical memory");
        power_off(Verdict::Fail, "no physical memory mapping");
    };
    let stats = platform::memory::init(&boot_info.memory_regions, physical_offset);
    let guard_pages = platform::memory::protect_kernel();
    info!(
        "memory: {} MiB reported by the firmware, {} MiB usable above 1 MiB; heap {} KiB; {} IST guard pages",
        stats.total_bytes >> 20,
        stats.usable_bytes >> 20,
        4096,
        guard_pages
    );
    match platform::paging::harden(boot_info) {
        Ok(report) => info!("memory: {}", report),
        Err(violation) => {
            error!("memory: W^X VIOLATION: {}", violation);
            power_off(Verdict::Fail, "the hypervisor's own mappings break W^X");
        }
    }
    info!("mitigations: {}", platform::mitigations::Mitigations::get());
    let image_at_start = platform::paging::report_image_at_start();

    let ramdisk = boot_info.ramdisk_addr.into_option().map(|address| {
        // SAFETY: the bootloader mapped the ramdisk at this address with this
        // length, and nothing writes to it.
        unsafe { core::slice::from_raw_parts(address as *const u8, boot_info.ramdisk_len as usize) }
    });

    let verdict = vm::run_all(ramdisk, entry_tsc);
    let image_unchanged = platform::paging::report_image_at_end(image_at_start);
    match verdict {
        Err(reason) => power_off(Verdict::Fail, reason),
        Ok(()) if !image_unchanged => power_off(Verdict::Fail, "the hypervisor's code or constants changed"),
        Ok(()) => power_off(Verdict::Pass, ""),
    }
}

#[panic_handler]
fn panic(info: &core::panic::PanicInfo) -> ! {
    // SAFETY: we never return to the code that panicked.
    unsafe { platform::console::force_unlock() };
    error!("hypervisor panic: {}", info);
    power_off(Verdict::Fail, "hypervisor panic")
}
