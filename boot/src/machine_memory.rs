//! How much guest RAM the emulated machine can give, and the rule that refuses
//! a guest list asking for more (`--machine-memory`).
//!
//! The emulated machine has a fixed amount of memory: Bochs' `megs`, QEMU's
//! `-m`, both [`DEFAULT_MACHINE_MEMORY_MIB`] unless `--machine-memory MIB`
//! says otherwise. Not all of it reaches the guests:
//!
//! - the firmware, the bootloader, the kernel image (with its 4 MiB heap) and
//!   the boot blob take [`firmware_overhead_mib`]: measured from the kernel's
//!   `memory: ... MiB usable above 1 MiB` line with one guest, 256 MiB
//!   machines give 246 MiB usable in Bochs and 242 MiB in QEMU with the BIOS,
//!   223 MiB in QEMU with UEFI (OVMF keeps more for itself); the overhead does
//!   not grow with the machine's size (512 MiB in Bochs: 502 usable);
//! - the kernel allocates 4 KiB frames per guest (VMCS, EPT tables, bitmaps)
//!   from the same memory, and guest RAM comes in 2 MiB-aligned blocks, so
//!   every usable region loses up to 2 MiB to alignment: a [`MARGIN_MIB`]
//!   margin covers both.
//!
//! **The rule:** the guests' RAM, summed over all guests of the run (they will
//! run side by side), must not exceed
//! `machine memory − firmware overhead − margin`: with the defaults, 226 MiB
//! (BIOS) or 206 MiB (UEFI). The runner refuses a larger guest list before
//! anything boots and says which `--machine-memory` would do.

use std::fmt;

use crate::disk_image::Firmware;
use crate::size::{format_size, MIB};

/// The machine's memory unless `--machine-memory` says otherwise.
pub const DEFAULT_MACHINE_MEMORY_MIB: u32 = 256;
/// The least `--machine-memory` accepts: the kernel and the firmware need
/// tens of MiB before any guest gets RAM.
pub const MIN_MACHINE_MEMORY_MIB: u32 = 64;
/// The most `--machine-memory` accepts: Bochs' `megs` limit.
pub const MAX_MACHINE_MEMORY_MIB: u32 = 2048;
/// Kept back for the kernel's per-guest frames and for 2 MiB-block alignment.
pub const MARGIN_MIB: u64 = 16;

/// Memory that never becomes usable by the kernel: taken by the firmware, the
/// bootloader, the kernel image and the boot blob (measured, rounded up; see
/// the module docs).
pub const fn firmware_overhead_mib(firmware: Firmware) -> u64 {
    match firmware {
        // Bochs: 256 - 246 = 10 MiB; QEMU/SeaBIOS: 256 - 242 = 14 MiB.
        Firmware::Bios => 14,
        // QEMU/OVMF: 256 - 223 = 33 MiB.
        Firmware::Uefi => 34,
    }
}

/// The most guest RAM, in bytes, all guests together may have on a machine
/// with `machine_mib` MiB booted through `firmware`.
pub const fn guest_ram_budget(machine_mib: u32, firmware: Firmware) -> u64 {
    (machine_mib as u64).saturating_sub(firmware_overhead_mib(firmware) + MARGIN_MIB) * MIB
}

/// The smallest machine, in MiB, that gives `ram_bytes` of guest RAM.
pub const fn machine_mib_for(ram_bytes: u64, firmware: Firmware) -> u64 {
    ram_bytes.div_ceil(MIB) + firmware_overhead_mib(firmware) + MARGIN_MIB
}

/// The guests ask for more RAM than the machine can give.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NotEnoughMemory {
    /// The guests' RAM, summed.
    pub requested: u64,
    /// What the machine can give ([`guest_ram_budget`]).
    pub budget: u64,
    /// The machine's memory in MiB.
    pub machine_mib: u32,
    /// How it boots.
    pub firmware: Firmware,
}

impl fmt::Display for NotEnoughMemory {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let NotEnoughMemory { requested, budget, machine_mib, firmware } = *self;
        write!(
            f,
            "the guests ask for {} of RAM in all, but a {machine_mib} MiB machine ({}) gives guests at most {} \
             ({machine_mib} MiB - {} MiB for the firmware, bootloader and kernel - a {MARGIN_MIB} MiB margin for \
             the kernel's tables); ",
            format_size(requested),
            firmware.name(),
            format_size(budget),
            firmware_overhead_mib(firmware),
        )?;
        let needed = machine_mib_for(requested, firmware);
        if needed <= u64::from(MAX_MACHINE_MEMORY_MIB) {
            write!(f, "give the machine more memory with `--machine-memory {needed}`, or the guests less RAM")
        } else {
            write!(
                f,
                "that needs more than the largest machine ({MAX_MACHINE_MEMORY_MIB} MiB): give the guests less RAM"
            )
        }
    }
}

impl std::error::Error for NotEnoughMemory {}

/// Checks the rule of the module docs for guests with these RAM sizes.
pub fn check_guest_ram(
    ram_sizes: impl IntoIterator<Item = u64>,
    machine_mib: u32,
    firmware: Firmware,
) -> Result<(), NotEnoughMemory> {
    let requested = ram_sizes.into_iter().fold(0u64, u64::saturating_add);
    let budget = guest_ram_budget(machine_mib, firmware);
    if requested > budget {
        return Err(NotEnoughMemory { requested, budget, machine_mib, firmware });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_machine_gives_226_mib_through_the_bios() {
        assert_eq!(guest_ram_budget(DEFAULT_MACHINE_MEMORY_MIB, Firmware::Bios), 226 * MIB);
        assert_eq!(guest_ram_budget(DEFAULT_MACHINE_MEMORY_MIB, Firmware::Uefi), 206 * MIB);
        assert_eq!(guest_ram_budget(1024, Firmware::Bios), 994 * MIB);
        assert_eq!(guest_ram_budget(20, Firmware::Bios), 0);
    }

    #[test]
    fn the_budget_is_inclusive() {
        assert_eq!(check_guest_ram([226 * MIB], 256, Firmware::Bios), Ok(()));
        assert_eq!(check_guest_ram([2 * MIB; 16], 256, Firmware::Bios), Ok(()));
        assert_eq!(check_guest_ram([], 256, Firmware::Bios), Ok(()));
        let error = check_guest_ram([226 * MIB, 2 * MIB], 256, Firmware::Bios).unwrap_err();
        assert_eq!(
            error,
            NotEnoughMemory { requested: 228 * MIB, budget: 226 * MIB, machine_mib: 256, firmware: Firmware::Bios }
        );
    }

    #[test]
    fn the_refusal_names_the_machine_size_that_would_do() {
        let error = check_guest_ram([256 * MIB, 44 * MIB], 256, Firmware::Bios).unwrap_err();
        let message = error.to_string();
        assert!(
            message.starts_with(
                "the guests ask for 300 MiB of RAM in all, but a 256 MiB machine (BIOS) gives guests at most 226 MiB"
            ),
            "{message}"
        );
        assert!(
            message.ends_with("give the machine more memory with `--machine-memory 330`, or the guests less RAM"),
            "{message}"
        );
        assert_eq!(check_guest_ram([300 * MIB], 330, Firmware::Bios), Ok(()));
    }

    #[test]
    fn more_than_the_largest_machine_says_so() {
        let error = check_guest_ram([1 << 30; 3], MAX_MACHINE_MEMORY_MIB, Firmware::Bios).unwrap_err();
        assert!(error.to_string().ends_with("give the guests less RAM"), "{error}");
    }
}
