//! Bootable disk images, made by the `bootloader` crate at run time.
//!
//! The `bootloader` crate (0.11) puts its stages, the kernel ELF and a ramdisk
//! file on a disk image: an MBR image for BIOS machines, a GPT image with an
//! EFI system partition for UEFI machines. At boot it loads the kernel, maps
//! it, loads the ramdisk next to it and hands the kernel a `BootInfo` that
//! says where the ramdisk is. The hypervisor's ramdisk is the boot blob.

use std::path::Path;

use bootloader::{BiosBoot, BootConfig, UefiBoot};

use crate::error::RunError;

/// How the emulated machine starts its boot loader.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Firmware {
    /// Legacy BIOS (SeaBIOS in QEMU, Bochs' own BIOS): MBR disk image.
    Bios,
    /// UEFI (OVMF in QEMU): GPT disk image with an EFI system partition.
    Uefi,
}

impl Firmware {
    /// `BIOS` or `UEFI`, for messages.
    pub fn name(self) -> &'static str {
        match self {
            Firmware::Bios => "BIOS",
            Firmware::Uefi => "UEFI",
        }
    }
}

/// The bootloader's own settings.
///
/// Its framebuffer log is always off: nobody looks at the screen of a headless
/// emulator, and drawing text pixel by pixel costs Bochs seconds. Its serial
/// log (lines such as `INFO : Framebuffer info: ...` before the kernel starts)
/// is on only when asked for, because Bochs also charges every serial byte its
/// transmit time.
pub fn boot_config(bootloader_serial_log: bool) -> BootConfig {
    let mut config = BootConfig::default();
    config.frame_buffer_logging = false;
    config.serial_logging = bootloader_serial_log;
    config
}

/// Writes a bootable `firmware` disk image of `kernel` (an ELF) with `ramdisk`
/// to `out`.
pub fn create(
    firmware: Firmware,
    kernel: &Path,
    ramdisk: &Path,
    out: &Path,
    bootloader_serial_log: bool,
) -> Result<(), RunError> {
    let config = boot_config(bootloader_serial_log);
    let result = match firmware {
        Firmware::Bios => BiosBoot::new(kernel).set_ramdisk(ramdisk).set_boot_config(&config).create_disk_image(out),
        Firmware::Uefi => UefiBoot::new(kernel).set_ramdisk(ramdisk).set_boot_config(&config).create_disk_image(out),
    };
    // `{:#}` prints the error with its chain of causes on one line.
    result.map_err(|error| RunError::DiskImage {
        kind: firmware.name(),
        path: out.to_path_buf(),
        message: format!("{error:#}"),
    })
}
