//! Running the hypervisor in QEMU.
//!
//! Two flavours (see [`crate::emulator`]):
//! - **TCG** (`--emulator qemu`): QEMU's own CPU emulator, which has no VMX. The
//!   hypervisor should find no VT-x and say so.
//! - **KVM** (`--emulator qemu-kvm`, or `auto` on a capable host):
//!   `-enable-kvm -cpu host` passes the host CPU's VMX through KVM's nested
//!   virtualization.
//!
//! Like Bochs, QEMU runs with its working directory set to the run directory
//! and is given file names relative to it, so no path needs QEMU's `,,` escaping.

use std::path::Path;
use std::process::Command;

use crate::disk_image::Firmware;
use crate::emulator::Machine;
use crate::error::RunError;
use crate::prerequisites::{OVMF_CODE, OVMF_VARS, QEMU_PROGRAM};

/// What QEMU prints on stdout and stderr (warnings, fatal errors). QEMU keeps
/// no log of its own here: `-d guest_errors` drowns in OVMF's probes of absent
/// devices, and `-d cpu_reset` does not fire on a triple fault under `-no-reboot`.
pub const CONSOLE_FILE: &str = "qemu-console.txt";
/// The run's writable copy of OVMF's variable store.
pub const OVMF_VARS_COPY: &str = "OVMF_VARS_4M.fd";

/// The I/O port of QEMU's `isa-debug-exit` device. A kernel that writes value
/// `v` there ends QEMU with exit status `(v << 1) | 1`: 0x10 gives 33, 0x11 gives 35.
pub const DEBUG_EXIT_PORT: u16 = 0xf4;

/// The variable parts of a QEMU command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QemuConfig {
    /// With or without KVM ([`Machine::QemuTcg`] or [`Machine::QemuKvm`]).
    pub machine: Machine,
    /// BIOS (SeaBIOS, the default `pc` machine) or UEFI (OVMF on `q35`).
    pub firmware: Firmware,
    /// The disk image (relative to the run directory).
    pub image: String,
    /// Where the serial port's output goes (relative to the run directory).
    pub serial: String,
    /// The machine's memory in MiB (`-m`, from `--machine-memory`).
    pub memory_mib: u32,
}

impl QemuConfig {
    /// The configuration for `machine` and `firmware` with the run directory's
    /// standard file names and [`crate::machine_memory::DEFAULT_MACHINE_MEMORY_MIB`] of memory.
    pub fn new(machine: Machine, firmware: Firmware) -> Self {
        QemuConfig {
            machine,
            firmware,
            image: crate::DISK_IMAGE_FILE.to_string(),
            serial: crate::SERIAL_FILE.to_string(),
            memory_mib: crate::machine_memory::DEFAULT_MACHINE_MEMORY_MIB,
        }
    }
}

/// QEMU's arguments for `config` (without the program name).
pub fn qemu_args(config: &QemuConfig) -> Vec<String> {
    let mut args: Vec<String> = Vec::new();
    let mut push = |items: &[&str]| args.extend(items.iter().map(|s| s.to_string()));
    // Headless; the serial port is the console. No monitor on stdio either.
    push(&["-display", "none", "-monitor", "none"]);
    push(&["-serial", &format!("file:{}", config.serial)]);
    // A triple fault ends the run instead of rebooting the kernel forever.
    push(&["-no-reboot"]);
    // The power-off switch: the kernel writes its verdict code to port 0xf4.
    push(&["-device", &format!("isa-debug-exit,iobase={DEBUG_EXIT_PORT:#x},iosize=0x04")]);
    push(&["-m", &format!("{}M", config.memory_mib)]);
    if config.firmware == Firmware::Uefi {
        push(&["-machine", "q35"]);
        push(&["-drive", &format!("if=pflash,format=raw,readonly=on,file={OVMF_CODE}")]);
        push(&["-drive", &format!("if=pflash,format=raw,file={OVMF_VARS_COPY}")]);
    }
    push(&["-drive", &format!("format=raw,file={}", config.image)]);
    if config.machine == Machine::QemuKvm {
        push(&["-enable-kvm", "-cpu", "host"]);
    }
    args
}

/// Prepares `run_dir` (for UEFI: a writable copy of OVMF's variable store) and
/// returns the command that starts QEMU there (stdio not yet set). The disk
/// image must already be at `run_dir/`[`crate::DISK_IMAGE_FILE`].
pub fn prepare(run_dir: &Path, config: &QemuConfig) -> Result<Command, RunError> {
    if config.firmware == Firmware::Uefi {
        let copy = run_dir.join(OVMF_VARS_COPY);
        std::fs::copy(OVMF_VARS, &copy).map_err(|e| RunError::io("copy OVMF's variable store to", &copy, e))?;
    }
    let mut command = Command::new(QEMU_PROGRAM);
    command.current_dir(run_dir).args(qemu_args(config));
    Ok(command)
}

/// Checks that KVM's device can be opened for reading and writing, which QEMU
/// needs for `-enable-kvm`.
pub fn check_kvm_device() -> Result<(), RunError> {
    const KVM_DEVICE: &str = "/dev/kvm";
    std::fs::OpenOptions::new().read(true).write(true).open(KVM_DEVICE).map(drop).map_err(|e| {
        RunError::KvmUnavailable {
            reason: format!("cannot open {KVM_DEVICE} for reading and writing ({e}); is your user in group `kvm`?"),
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn joined(config: &QemuConfig) -> String {
        qemu_args(config).join(" ")
    }

    #[test]
    fn bios_tcg_command_line() {
        let line = joined(&QemuConfig::new(Machine::QemuTcg, Firmware::Bios));
        for expected in [
            "-display none",
            "-serial file:serial.txt",
            "-no-reboot",
            "-device isa-debug-exit,iobase=0xf4,iosize=0x04",
            "-m 256M",
            "-drive format=raw,file=disk.img",
        ] {
            assert!(line.contains(expected), "{expected:?} missing from {line}");
        }
        for absent in ["-enable-kvm", "q35", "pflash"] {
            assert!(!line.contains(absent), "{absent:?} in {line}");
        }
    }

    #[test]
    fn uefi_uses_q35_and_two_pflash_drives() {
        let line = joined(&QemuConfig::new(Machine::QemuTcg, Firmware::Uefi));
        assert!(line.contains("-machine q35"), "{line}");
        assert!(line.contains("if=pflash,format=raw,readonly=on,file=/usr/share/OVMF/OVMF_CODE_4M.fd"), "{line}");
        assert!(line.contains("if=pflash,format=raw,file=OVMF_VARS_4M.fd"), "{line}");
    }

    #[test]
    fn kvm_passes_the_host_cpu() {
        let line = joined(&QemuConfig::new(Machine::QemuKvm, Firmware::Bios));
        assert!(line.ends_with("-enable-kvm -cpu host"), "{line}");
    }

    #[test]
    fn the_machine_memory_is_passed_as_dash_m() {
        let config = QemuConfig { memory_mib: 1024, ..QemuConfig::new(Machine::QemuTcg, Firmware::Bios) };
        let line = joined(&config);
        assert!(line.contains("-m 1024M"), "{line}");
    }
}
