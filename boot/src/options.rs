//! What a run is asked to do: [`RunOptions`] and the small enums it is made of.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use hypervisor_core::blob::MAX_GUESTS;
use hypervisor_core::config::{GuestConfig, GuestName};

/// Which emulator to boot in, as the user asked for it (`--emulator`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum EmulatorChoice {
    /// QEMU with KVM when the host can run a VT-x hypervisor that way, otherwise
    /// Bochs. See [`crate::emulator::decide_auto`].
    #[default]
    Auto,
    /// Bochs: emulates VT-x itself, so it works on any host (slowly).
    Bochs,
    /// QEMU with TCG (pure emulation). TCG does not emulate VT-x, so this shows
    /// how the hypervisor reports a machine without VT-x.
    Qemu,
    /// QEMU with KVM and `-cpu host`: fast, but needs an Intel host whose KVM
    /// allows nested virtualization.
    QemuKvm,
}

impl EmulatorChoice {
    /// Every choice with its command-line spelling, in the order `--help` lists them.
    pub const ALL: [(&'static str, EmulatorChoice); 4] = [
        ("auto", EmulatorChoice::Auto),
        ("bochs", EmulatorChoice::Bochs),
        ("qemu", EmulatorChoice::Qemu),
        ("qemu-kvm", EmulatorChoice::QemuKvm),
    ];

    /// Parses the command-line spelling (`auto`, `bochs`, `qemu`, `qemu-kvm`).
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.iter().find(|(n, _)| *n == name).map(|(_, choice)| *choice)
    }
}

/// How much the kernel logs (`--log-level`).
///
/// The kernel receives it as one byte in the boot blob; the numbers are
/// [`LogLevel::as_u8`]. A message is printed when its level is at most the
/// configured one (`Error` prints only errors, `Debug` prints everything).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub enum LogLevel {
    /// Only `[hv ERROR]` lines.
    Error,
    /// Errors and warnings.
    Warn,
    /// Errors, warnings and the bring-up report (the default).
    #[default]
    Info,
    /// Everything, including per-exit traces; also turns on the bootloader's own
    /// serial log, which helps when the kernel is never reached.
    Debug,
}

impl LogLevel {
    /// Every level with its command-line spelling.
    pub const ALL: [(&'static str, LogLevel); 4] =
        [("error", LogLevel::Error), ("warn", LogLevel::Warn), ("info", LogLevel::Info), ("debug", LogLevel::Debug)];

    /// Parses the command-line spelling (`error`, `warn`, `info`, `debug`).
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.iter().find(|(n, _)| *n == name).map(|(_, level)| *level)
    }

    /// The value the kernel receives: 1 = error, 2 = warn, 3 = info, 4 = debug
    /// (0 is left free to mean "off").
    pub fn as_u8(self) -> u8 {
        match self {
            LogLevel::Error => 1,
            LogLevel::Warn => 2,
            LogLevel::Info => 3,
            LogLevel::Debug => 4,
        }
    }
}

/// One guest to put into the boot blob: its configuration and where its image is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GuestSpec {
    /// Name, start mode, RAM size, expected outcome, ... The kernel prefixes
    /// the guest's console lines with `[name]`.
    pub config: GuestConfig,
    /// The guest's image on the host: an ELF executable or a flat image. The
    /// runner reads it before the run and sets `config.image` from what it
    /// finds ([`crate::guest_images`]).
    pub image: PathBuf,
}

impl GuestSpec {
    /// The guests a run boots when it is given none:
    /// every built-in payload ([`crate::payloads::default_guest_names`]).
    pub fn defaults() -> Vec<GuestSpec> {
        crate::payloads::default_specs()
    }
}

/// A ready-made set of guests (`--demo NAME`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Demo {
    /// Every hostile guest of the isolation suite between two well-behaved
    /// neighbours ([`crate::payloads::isolation_demo_specs`]): the hostile
    /// ones are stopped or faulted, the neighbours finish with their
    /// checksums intact.
    Isolation,
    /// [`crate::payloads::SCALE_DEMO_GUESTS`] neighbours of 2 MiB at once
    /// ([`crate::payloads::scale_demo_specs`]): the scheduler's and the
    /// memory's scale, with each guest checking its RAM.
    Scale,
}

impl Demo {
    /// Every demo with its command-line spelling.
    pub const ALL: [(&'static str, Demo); 2] = [("isolation", Demo::Isolation), ("scale", Demo::Scale)];

    /// Parses the command-line spelling (`isolation`, `scale`).
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.iter().find(|(n, _)| *n == name).map(|(_, demo)| *demo)
    }

    /// The demo's guests, in run order.
    pub fn guests(self) -> Vec<GuestSpec> {
        match self {
            Demo::Isolation => crate::payloads::isolation_demo_specs(),
            Demo::Scale => crate::payloads::scale_demo_specs(),
        }
    }
}

/// Why a guest cannot join a run's guest list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GuestListError {
    /// Another guest of the list has the same name; the kernel prefixes every
    /// console line with the guest's name, so names must tell guests apart.
    DuplicateName(GuestName),
    /// The boot blob carries at most [`MAX_GUESTS`] guests.
    TooMany {
        /// The limit.
        max: usize,
    },
}

impl fmt::Display for GuestListError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            GuestListError::DuplicateName(name) => write!(
                f,
                "guest `{name}` is given twice: each guest of a run needs a name of its own \
                 (it prefixes the guest's console lines)"
            ),
            GuestListError::TooMany { max } => write!(f, "too many guests: a run takes at most {max}"),
        }
    }
}

impl std::error::Error for GuestListError {}

/// Appends `spec` to a run's guest list, refusing a second guest with the same
/// name and more than [`MAX_GUESTS`] guests. Every front end (command line,
/// configuration file) adds its guests through this function, in run order.
pub fn add_guest(guests: &mut Vec<GuestSpec>, spec: GuestSpec) -> Result<(), GuestListError> {
    if guests.iter().any(|guest| guest.config.name == spec.config.name) {
        return Err(GuestListError::DuplicateName(spec.config.name));
    }
    if guests.len() >= MAX_GUESTS {
        return Err(GuestListError::TooMany { max: MAX_GUESTS });
    }
    guests.push(spec);
    Ok(())
}

/// Everything [`crate::run`] needs to know.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunOptions {
    /// The emulator to use.
    pub emulator: EmulatorChoice,
    /// Boot through UEFI (OVMF) instead of the BIOS. QEMU only.
    pub uefi: bool,
    /// How long the emulator may run (counted from its start) before it is killed.
    pub timeout: Duration,
    /// The kernel's log level.
    pub log_level: LogLevel,
    /// Print the runner's status lines (stderr) and the serial output (stdout)
    /// live while the emulator runs. The CLI sets it; tests leave it off and
    /// look at [`crate::RunOutcome`] instead.
    pub stream: bool,
    /// The hypervisor kernel ELF. Defaults to the one built with the runner.
    pub kernel: PathBuf,
    /// The guests to boot, in order. Defaults to [`GuestSpec::defaults`] (every
    /// built-in payload). Checked before anything boots ([`crate::guest_images`]).
    pub guests: Vec<GuestSpec>,
    /// The emulated machine's memory in MiB (Bochs' `megs`, QEMU's `-m`); it
    /// bounds the guests' RAM ([`crate::machine_memory`]).
    pub machine_memory_mib: u32,
    /// Where per-run directories are created. `None`: `<cargo target dir>/runs`
    /// (see [`crate::run_dir::default_runs_root`]).
    pub runs_root: Option<PathBuf>,
    /// Damage the boot blob on purpose ([`crate::boot_blob::BlobDamage`]); `None`
    /// (always, from the CLI) boots it as encoded.
    pub blob_damage: Option<crate::boot_blob::BlobDamage>,
    /// Print the capability explorer (`--caps`): the kernel reports every VMX
    /// capability MSR, decoded bit by bit, instead of running the guests
    /// (they are still packed into the boot blob).
    pub caps_report: bool,
    /// Bochs' CPU model (`--bochs-cpu`, bochsrc `cpu: model=...`).
    pub bochs_cpu_model: String,
    /// Which guests print a line per VM exit (`--trace [GUEST]`; the CLI
    /// turns a guest's name into its index in [`RunOptions::guests`]).
    pub trace: hypervisor_core::blob::TraceSelection,
    /// Which guest runs one instruction at a time, printing a line per
    /// instruction (`--step GUEST`, resolved to its index like `--trace`).
    pub step: hypervisor_core::blob::StepSelection,
    /// The VM-entry rule the first guest's VMCS breaks on purpose
    /// (`--break-entry`; an id of `hypervisor_core::entry_check::EntryRule`, 0 = none).
    pub break_entry: u8,
    /// The kernel runs the benchmark workload natively before the guests
    /// (`--bench`, see [`crate::bench`]).
    pub native_workload: bool,
}

impl RunOptions {
    /// The default timeout: generous, because Bochs is slow.
    pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(300);
}

impl Default for RunOptions {
    fn default() -> Self {
        RunOptions {
            emulator: EmulatorChoice::Auto,
            uefi: false,
            timeout: Self::DEFAULT_TIMEOUT,
            log_level: LogLevel::Info,
            stream: false,
            kernel: PathBuf::from(env!("CARGO_BIN_FILE_HYPERVISOR_hypervisor")),
            guests: GuestSpec::defaults(),
            machine_memory_mib: crate::machine_memory::DEFAULT_MACHINE_MEMORY_MIB,
            runs_root: None,
            blob_damage: None,
            caps_report: false,
            bochs_cpu_model: crate::bochs::DEFAULT_CPU_MODEL.to_string(),
            trace: hypervisor_core::blob::TraceSelection::None,
            step: hypervisor_core::blob::StepSelection::None,
            break_entry: 0,
            native_workload: false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(name: &str) -> GuestSpec {
        let name = GuestName::new(name).expect("a valid test name");
        GuestSpec { config: GuestConfig::new(name), image: PathBuf::from("/nonexistent") }
    }

    #[test]
    fn demos_by_name() {
        assert_eq!(Demo::from_name("isolation"), Some(Demo::Isolation));
        assert_eq!(Demo::from_name("Isolation"), None);
        assert_eq!(Demo::from_name(""), None);
        let guests = Demo::Isolation.guests();
        assert!(guests.len() >= 9 && guests.len() <= MAX_GUESTS, "{}", guests.len());
        let mut list = Vec::new();
        for guest in guests {
            assert_eq!(add_guest(&mut list, guest), Ok(()), "the demo's names are unique");
        }
    }

    #[test]
    fn guests_are_added_in_order() {
        let mut guests = Vec::new();
        assert_eq!(add_guest(&mut guests, spec("b")), Ok(()));
        assert_eq!(add_guest(&mut guests, spec("a")), Ok(()));
        let names: Vec<_> = guests.iter().map(|g| g.config.name.as_str()).collect();
        assert_eq!(names, ["b", "a"]);
    }

    #[test]
    fn duplicate_names_and_too_many_guests_are_refused() {
        let mut guests = vec![spec("a")];
        let error = add_guest(&mut guests, spec("a"));
        assert!(matches!(error, Err(GuestListError::DuplicateName(name)) if name.as_str() == "a"));
        assert_eq!(guests.len(), 1);
        for i in 1..MAX_GUESTS {
            assert_eq!(add_guest(&mut guests, spec(&format!("g{i}"))), Ok(()));
        }
        assert_eq!(add_guest(&mut guests, spec("one-more")), Err(GuestListError::TooMany { max: MAX_GUESTS }));
        assert_eq!(guests.len(), MAX_GUESTS);
    }
}
