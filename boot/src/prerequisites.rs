//! The programs and firmware files each emulator needs, and how to install them.
//!
//! The runner never installs anything by itself. When something is missing,
//! [`crate::run`] fails with [`MissingPrerequisites`], which knows the Debian
//! packages and the exact `apt-get` command. The CLI may then *offer* to run
//! that command ([`offer_install`]), but only when a person sits at a terminal
//! and answers `y`.

use std::fmt;
use std::io::{self, BufRead, IsTerminal, Write};
use std::path::Path;
use std::process::Command;

use crate::emulator::Machine;

/// The ROM BIOS Bochs starts (Debian package `bochsbios`).
pub const BOCHS_BIOS: &str = "/usr/share/bochs/BIOS-bochs-latest";
/// The Cirrus VGA BIOS (Debian package `vgabios`). With a Cirrus adapter the
/// bootloader picks a 24-bit framebuffer mode, which it can draw text into.
pub const BOCHS_CIRRUS_VGA_BIOS: &str = "/usr/share/vgabios/vgabios.cirrus.bin";
/// Where Debian's Bochs looks for its plugins.
pub const BOCHS_PLUGIN_DIR: &str = "/usr/lib/x86_64-linux-gnu/bochs/plugins";
/// Bochs' SDL2 display plugin (Debian package `bochs-sdl`): the headless display.
pub const BOCHS_SDL2_PLUGIN: &str = "libbx_sdl2_gui.so";
/// OVMF's firmware code, mapped read-only (Debian package `ovmf`).
pub const OVMF_CODE: &str = "/usr/share/OVMF/OVMF_CODE_4M.fd";
/// OVMF's variable store template; each run gets a writable copy (package `ovmf`).
pub const OVMF_VARS: &str = "/usr/share/OVMF/OVMF_VARS_4M.fd";
/// The Bochs program.
pub const BOCHS_PROGRAM: &str = "bochs";
/// The QEMU program.
pub const QEMU_PROGRAM: &str = "qemu-system-x86_64";

/// Something that must exist on the host.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Requirement {
    /// A program found through `PATH`.
    Program(&'static str),
    /// A file at a fixed path.
    File(&'static str),
    /// A Bochs plugin in [`BOCHS_PLUGIN_DIR`]. Counts as present when that
    /// directory does not exist: such a Bochs was built some other way
    /// (for instance with its displays compiled in) and cannot be checked.
    BochsPlugin(&'static str),
}

impl fmt::Display for Requirement {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Requirement::Program(name) => write!(f, "program `{name}`"),
            Requirement::File(path) => write!(f, "file {path}"),
            Requirement::BochsPlugin(name) => write!(f, "Bochs plugin {BOCHS_PLUGIN_DIR}/{name}"),
        }
    }
}

/// A [`Requirement`] with what it is for and the Debian package that provides it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Prerequisite {
    /// What it is, for messages ("the Bochs emulator").
    pub description: &'static str,
    /// What must exist.
    pub requirement: Requirement,
    /// The Debian package that installs it.
    pub package: &'static str,
}

/// What `machine` needs (with `uefi`: also the OVMF firmware).
pub fn required(machine: Machine, uefi: bool) -> Vec<Prerequisite> {
    let mut list = Vec::new();
    match machine {
        Machine::Bochs => {
            list.push(Prerequisite {
                description: "the Bochs emulator",
                requirement: Requirement::Program(BOCHS_PROGRAM),
                package: "bochs",
            });
            list.push(Prerequisite {
                description: "the Bochs ROM BIOS",
                requirement: Requirement::File(BOCHS_BIOS),
                package: "bochsbios",
            });
            list.push(Prerequisite {
                description: "the Cirrus VGA BIOS",
                requirement: Requirement::File(BOCHS_CIRRUS_VGA_BIOS),
                package: "vgabios",
            });
            list.push(Prerequisite {
                description: "Bochs' SDL2 display (run headless)",
                requirement: Requirement::BochsPlugin(BOCHS_SDL2_PLUGIN),
                package: "bochs-sdl",
            });
        }
        Machine::QemuTcg | Machine::QemuKvm => list.push(Prerequisite {
            description: "the QEMU emulator",
            requirement: Requirement::Program(QEMU_PROGRAM),
            package: "qemu-system-x86",
        }),
    }
    if uefi {
        for (description, path) in [("the OVMF UEFI firmware", OVMF_CODE), ("the OVMF variable store", OVMF_VARS)] {
            list.push(Prerequisite { description, requirement: Requirement::File(path), package: "ovmf" });
        }
    }
    list
}

/// The prerequisites for which `is_present` answers `false`.
pub fn missing_among(prerequisites: &[Prerequisite], is_present: impl Fn(&Requirement) -> bool) -> Vec<Prerequisite> {
    prerequisites.iter().filter(|p| !is_present(&p.requirement)).copied().collect()
}

/// Whether the requirement exists on this host.
pub fn is_present_on_host(requirement: &Requirement) -> bool {
    match requirement {
        Requirement::Program(name) => find_program(name).is_some(),
        Requirement::File(path) => Path::new(path).is_file(),
        Requirement::BochsPlugin(name) => {
            let dir = Path::new(BOCHS_PLUGIN_DIR);
            !dir.is_dir() || dir.join(name).is_file()
        }
    }
}

/// Looks `name` up in `PATH` like a shell does; `None` when not found.
pub fn find_program(name: &str) -> Option<std::path::PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path).map(|dir| dir.join(name)).find(|candidate| {
        candidate.metadata().map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0).unwrap_or(false)
    })
}

/// Checks this host for everything `machine` needs.
pub fn check_host(machine: Machine, uefi: bool) -> Result<(), MissingPrerequisites> {
    let missing = missing_among(&required(machine, uefi), is_present_on_host);
    if missing.is_empty() {
        Ok(())
    } else {
        Err(MissingPrerequisites { machine, missing, as_root: running_as_root() })
    }
}

/// Whether this process runs as root (then `apt-get` needs no `sudo`).
pub fn running_as_root() -> bool {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata("/proc/self").map(|m| m.uid() == 0).unwrap_or(false)
}

/// The error of a run whose emulator or firmware is not installed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MissingPrerequisites {
    /// The machine that was to be started.
    pub machine: Machine,
    /// What is missing.
    pub missing: Vec<Prerequisite>,
    /// Whether the runner runs as root (decides `sudo` in [`Self::install_command`]).
    pub as_root: bool,
}

impl MissingPrerequisites {
    /// The Debian packages to install, each once, in order of first need.
    pub fn packages(&self) -> Vec<&'static str> {
        let mut packages: Vec<&'static str> = Vec::new();
        for p in &self.missing {
            if !packages.contains(&p.package) {
                packages.push(p.package);
            }
        }
        packages
    }

    /// The program and arguments that install the packages:
    /// `[sudo] apt-get install -y <packages>`.
    pub fn install_argv(&self) -> Vec<String> {
        let mut argv = Vec::new();
        if !self.as_root {
            argv.push("sudo".to_string());
        }
        argv.extend(["apt-get", "install", "-y"].map(String::from));
        argv.extend(self.packages().into_iter().map(String::from));
        argv
    }

    /// [`Self::install_argv`] as one line to copy into a shell.
    pub fn install_command(&self) -> String {
        self.install_argv().join(" ")
    }
}

impl fmt::Display for MissingPrerequisites {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} cannot start; missing:", self.machine)?;
        for p in &self.missing {
            write!(f, "\n  - {} ({}, Debian package `{}`)", p.description, p.requirement, p.package)?;
        }
        write!(f, "\ninstall with: {}", self.install_command())
    }
}

/// What [`offer_install`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InstallOutcome {
    /// The user said yes and the install command succeeded.
    Installed,
    /// The user said no (or just pressed Enter).
    Declined,
    /// Standard input is not a terminal, so nobody was asked.
    NotAsked,
    /// The install command ran and failed.
    Failed,
}

/// Offers to run the install command: only when standard input is a terminal,
/// and only after the user answers `y`. Messages go to stderr.
pub fn offer_install(missing: &MissingPrerequisites) -> io::Result<InstallOutcome> {
    let stdin = io::stdin();
    if !stdin.is_terminal() {
        return Ok(InstallOutcome::NotAsked);
    }
    let command = missing.install_command();
    eprint!("runner: install the missing packages now with `{command}`? [y/N] ");
    io::stderr().flush()?;
    let mut answer = String::new();
    stdin.lock().read_line(&mut answer)?;
    if !matches!(answer.trim(), "y" | "Y" | "yes" | "Yes") {
        return Ok(InstallOutcome::Declined);
    }
    let argv = missing.install_argv();
    let Some((program, args)) = argv.split_first() else { return Ok(InstallOutcome::Failed) };
    let status = match Command::new(program).args(args).status() {
        Ok(status) => status,
        Err(error) => {
            eprintln!("runner: cannot run `{program}`: {error}");
            return Ok(InstallOutcome::Failed);
        }
    };
    if status.success() {
        Ok(InstallOutcome::Installed)
    } else {
        eprintln!(
            "runner: `{command}` failed ({status}); if apt-get did not find the packages, \
             run `{}apt-get update` first",
            if missing.as_root { "" } else { "sudo " }
        );
        Ok(InstallOutcome::Failed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bochs_needs_program_bioses_and_sdl_display() {
        let packages: Vec<_> = required(Machine::Bochs, false).iter().map(|p| p.package).collect();
        assert_eq!(packages, ["bochs", "bochsbios", "vgabios", "bochs-sdl"]);
    }

    #[test]
    fn uefi_adds_ovmf() {
        let list = required(Machine::QemuTcg, true);
        assert!(list.iter().any(|p| p.requirement == Requirement::File(OVMF_CODE)));
        assert!(list.iter().any(|p| p.requirement == Requirement::File(OVMF_VARS)));
    }

    #[test]
    fn install_command_lists_each_package_once_and_uses_sudo_when_not_root() {
        let missing = MissingPrerequisites {
            machine: Machine::QemuTcg,
            missing: missing_among(&required(Machine::QemuTcg, true), |_| false),
            as_root: false,
        };
        assert_eq!(missing.install_command(), "sudo apt-get install -y qemu-system-x86 ovmf");
        let as_root = MissingPrerequisites { as_root: true, ..missing };
        assert_eq!(as_root.install_command(), "apt-get install -y qemu-system-x86 ovmf");
        assert!(as_root.to_string().contains("install with: apt-get install -y qemu-system-x86 ovmf"));
    }

    #[test]
    fn only_absent_requirements_are_missing() {
        let missing = missing_among(&required(Machine::Bochs, false), |r| matches!(r, Requirement::Program(_)));
        let packages: Vec<_> = missing.iter().map(|p| p.package).collect();
        assert_eq!(packages, ["bochsbios", "vgabios", "bochs-sdl"]);
    }
}
