//! The runner: builds the hypervisor's disk image and boots it in an emulator.
//!
//! One run goes like this ([`run`]):
//!
//! 0. **Check the guests** ([`guest_images`]): read every image and refuse
//!    what cannot run (bad image, not enough machine memory, ...) before
//!    anything starts.
//! 1. **Choose the emulator** ([`emulator`]): QEMU with KVM if the host can
//!    give a guest VT-x, Bochs otherwise (it emulates VT-x itself).
//! 2. **Check the emulator is installed** ([`prerequisites`]).
//! 3. **Make a run directory** ([`run_dir`]) under `target/runs/`.
//! 4. **Build the boot blob** ([`boot_blob`]): settings and guest images, the
//!    kernel's ramdisk.
//! 5. **Make the disk image** ([`disk_image`]) with the `bootloader` crate.
//! 6. **Start the emulator** ([`bochs`] or [`qemu`]) and **watch it**
//!    ([`monitor`]): follow the serial output, enforce the timeout.
//! 7. **Read the verdict** ([`verdict`]) from the serial output: the run passes
//!    iff the kernel printed `hypervisor: verdict PASS`.
//!
//! The guests come from [`RunOptions::guests`], filled by a front end: the
//! command line (`src/main.rs`, arguments in [`cli`]) picks built-in payloads
//! ([`payloads`]) by name, takes image files, and reads configuration files
//! ([`config_file`]); the integration tests in `tests/` call [`run`] directly.

#![warn(missing_docs)]

pub mod bench;
pub mod bochs;
pub mod boot_blob;
pub mod cli;
pub mod config_file;
pub mod disk_image;
pub mod emulator;
pub mod error;
pub mod flatten;
pub mod guest_images;
pub mod machine_memory;
pub mod monitor;
pub mod options;
pub mod payloads;
pub mod prerequisites;
pub mod qemu;
pub mod run_dir;
pub mod size;
pub mod terminal;
pub mod verdict;

use std::fmt::Write as _;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

pub use crate::disk_image::Firmware;
pub use crate::emulator::{EmulatorDecision, KvmSupport, Machine};
pub use crate::error::RunError;
pub use crate::monitor::Ending;
pub use crate::options::{EmulatorChoice, GuestListError, GuestSpec, LogLevel, RunOptions};
pub use crate::prerequisites::MissingPrerequisites;
pub use crate::verdict::Verdict;

/// The boot blob's file name in a run directory.
pub const BOOT_BLOB_FILE: &str = "boot-blob.bin";
/// The disk image's file name in a run directory.
pub const DISK_IMAGE_FILE: &str = "disk.img";
/// The file that receives the machine's COM1, in a run directory.
pub const SERIAL_FILE: &str = "serial.txt";
/// How many lines of the emulator's log a failure report shows.
pub const LOG_TAIL_LINES: usize = 20;

/// What a run produced.
#[derive(Debug, Clone)]
pub struct RunOutcome {
    /// The emulator that ran and why it was chosen.
    pub decision: EmulatorDecision,
    /// The run directory, with the disk image (kept when the run failed), the
    /// emulator's configuration and all logs.
    pub run_dir: PathBuf,
    /// Everything the machine wrote to COM1, without terminal control
    /// sequences (invalid UTF-8 replaced). The raw bytes are in the run
    /// directory's `serial.txt`.
    pub serial: String,
    /// The verdict found in [`Self::serial`].
    pub verdict: Verdict,
    /// How the emulator stopped.
    pub ending: Ending,
    /// The last [`LOG_TAIL_LINES`] lines of the emulator's log and of its
    /// console output, each under a `==> file <==` heading.
    pub emulator_log_tail: String,
    /// Bochs only: the log's `VMENTER FAIL: <check>` lines, naming the VM-entry
    /// checks that failed.
    pub vmenter_failures: Vec<String>,
    /// Bochs only: the panic messages of its log (why it stopped, e.g. a triple
    /// fault), without the one of a normal power-off.
    pub emulator_panics: Vec<String>,
    /// From the emulator's start to its end.
    pub duration: Duration,
    /// When the first guest line appeared on the console
    /// ([`monitor::is_guest_line`]), if one did.
    pub first_guest_line: Option<Instant>,
}

impl RunOutcome {
    /// Whether the run passed: the kernel printed `hypervisor: verdict PASS`.
    pub fn passed(&self) -> bool {
        self.verdict.passed()
    }

    /// One line saying how the run ended, e.g.
    /// `PASS in 4.3 s (Bochs)` or `FAIL: no VT-x (QEMU (TCG) exited with status 35)`.
    pub fn summary(&self) -> String {
        let seconds = self.duration.as_secs_f64();
        let machine = self.decision.machine;
        match (&self.verdict, self.ending) {
            (Verdict::Pass, Ending::KilledAfterVerdict) => {
                format!("PASS in {seconds:.1} s ({machine}; the kernel did not power off, so the runner killed it)")
            }
            (Verdict::Pass, _) => format!("PASS in {seconds:.1} s ({machine})"),
            (verdict @ Verdict::Fail { .. }, _) => format!("{verdict} (after {seconds:.1} s in {machine})"),
            (Verdict::Missing, Ending::TimedOut { after }) => {
                format!("FAIL: timeout: no verdict after {} s; killed {machine}", after.as_secs_f64())
            }
            (Verdict::Missing, Ending::Exited { code }) => format!(
                "FAIL: {machine} exited ({}) after {seconds:.1} s without a verdict{}",
                code.map_or("killed by a signal".to_string(), |c| format!("status {c}")),
                if machine.is_qemu() { " (under -no-reboot, a triple fault ends QEMU like this)" } else { "" }
            ),
            (Verdict::Missing, Ending::KilledAfterVerdict) => format!("FAIL: no verdict ({machine} killed)"),
        }
    }

    /// A report for a failed run: the summary, the emulator's panics and
    /// `VMENTER FAIL` lines, when no verdict was printed the tail of the
    /// emulator's log, and the run directory.
    pub fn failure_report(&self) -> String {
        let mut report = self.summary();
        if self.ending == Ending::KilledAfterVerdict {
            let _ = write!(
                report,
                "\nthe kernel printed its verdict but did not power the machine off; the runner killed {}",
                self.decision.machine
            );
        }
        if !self.emulator_panics.is_empty() {
            let _ = write!(report, "\n{} stopped with:", self.decision.machine);
            for message in &self.emulator_panics {
                let _ = write!(report, "\n  PANIC: {message}");
            }
        }
        if !self.vmenter_failures.is_empty() {
            report.push_str("\nBochs reports failed VM-entry checks:");
            for line in &self.vmenter_failures {
                let _ = write!(report, "\n  {line}");
            }
        }
        if self.verdict == Verdict::Missing {
            let _ = write!(report, "\n{}", self.emulator_log_tail);
        }
        let _ = write!(report, "\nrun directory: {}", self.run_dir.display());
        report
    }
}

/// Boots the hypervisor once and reports what happened.
///
/// `Ok` means the emulator ran and was watched to its end, whatever the
/// verdict: check [`RunOutcome::passed`]. `Err` means it could not get that far.
/// With [`RunOptions::stream`], status lines go to stderr and the serial output
/// to stdout while the emulator runs.
pub fn run(options: &RunOptions) -> Result<RunOutcome, RunError> {
    let firmware = if options.uefi { Firmware::Uefi } else { Firmware::Bios };
    let guests = guest_images::load_guests(&options.guests, options.machine_memory_mib, firmware)?;
    let decision = emulator::resolve(options.emulator, options.uefi, KvmSupport::probe_host())?;
    if options.stream {
        eprintln!("runner: {decision}");
    }
    let machine = decision.machine;
    prerequisites::check_host(machine, options.uefi)?;
    if machine == Machine::QemuKvm {
        qemu::check_kvm_device()?;
    }

    let runs_root = options.runs_root.clone().unwrap_or_else(|| run_dir::default_runs_root(&options.kernel));
    let run_dir = run_dir::create_run_dir(&runs_root, machine.slug())?;
    let image_path = write_disk_image(options, &guests, &run_dir, firmware)?;
    let (command, files) = emulator_command(machine, firmware, &run_dir, options)?;

    if options.stream {
        eprintln!(
            "runner: booting the {} image in {machine} (timeout {} s); files in {}",
            firmware.name(),
            options.timeout.as_secs(),
            run_dir.display()
        );
    }
    let (ending, serial_bytes, duration, first_guest_line) = run_emulator(command, &files, &run_dir, options)?;

    let serial = terminal::printable_text(&serial_bytes);
    let verdict = verdict::find_verdict(&serial);
    let logs = EmulatorLogs::read(machine, &files, &run_dir);
    if verdict.passed() {
        // The image is the only big file; a passing run need not be repeated by hand.
        let _ = std::fs::remove_file(&image_path);
    }
    Ok(RunOutcome {
        decision,
        run_dir,
        serial,
        verdict,
        ending,
        emulator_log_tail: logs.tail,
        vmenter_failures: logs.vmenter_failures,
        emulator_panics: logs.panics,
        duration,
        first_guest_line,
    })
}

/// Steps 4 and 5: writes the boot blob with `guests` and the disk image into
/// `run_dir`; returns the image's path.
fn write_disk_image(
    options: &RunOptions,
    guests: &[guest_images::LoadedGuest],
    run_dir: &Path,
    firmware: Firmware,
) -> Result<PathBuf, RunError> {
    if !options.kernel.is_file() {
        return Err(RunError::MissingInput {
            what: "the hypervisor kernel".to_string(),
            path: options.kernel.clone(),
            source: std::io::Error::from(std::io::ErrorKind::NotFound),
        });
    }
    let settings = hypervisor_core::blob::BlobSettings {
        log_level: options.log_level.as_u8(),
        caps_report: options.caps_report,
        trace: options.trace,
        step: options.step,
        break_entry: options.break_entry,
        native_workload: options.native_workload,
    };
    let mut blob = boot_blob::build_boot_blob_with(guests, settings)?;
    if let Some(damage) = options.blob_damage {
        damage.apply(&mut blob);
    }
    let blob_path = boot_blob::blob_path(run_dir);
    std::fs::write(&blob_path, &blob).map_err(|e| RunError::io("write the boot blob", &blob_path, e))?;

    let image_path = run_dir.join(DISK_IMAGE_FILE);
    let bootloader_serial_log = options.log_level == LogLevel::Debug;
    disk_image::create(firmware, &options.kernel, &blob_path, &image_path, bootloader_serial_log)?;
    Ok(image_path)
}

/// The files an emulator writes besides the serial output.
struct EmulatorFiles {
    /// The program, for messages.
    program: &'static str,
    /// The emulator's own log, if it keeps one.
    log: Option<&'static str>,
    /// Where its stdout and stderr go.
    console: &'static str,
}

/// Step 6, first half: writes the emulator's configuration into `run_dir` and
/// returns the command that starts it (stdio not yet set). The machine gets
/// `options.machine_memory_mib` MiB of memory; Bochs emulates
/// `options.bochs_cpu_model`.
fn emulator_command(
    machine: Machine,
    firmware: Firmware,
    run_dir: &Path,
    options: &RunOptions,
) -> Result<(Command, EmulatorFiles), RunError> {
    let memory_mib = options.machine_memory_mib;
    Ok(match machine {
        Machine::Bochs => (
            bochs::prepare(
                run_dir,
                &bochs::BochsConfig {
                    megs: memory_mib,
                    cpu_model: options.bochs_cpu_model.clone(),
                    ..bochs::BochsConfig::default()
                },
            )?,
            EmulatorFiles {
                program: prerequisites::BOCHS_PROGRAM,
                log: Some(bochs::LOG_FILE),
                console: bochs::CONSOLE_FILE,
            },
        ),
        Machine::QemuTcg | Machine::QemuKvm => (
            qemu::prepare(run_dir, &qemu::QemuConfig { memory_mib, ..qemu::QemuConfig::new(machine, firmware) })?,
            EmulatorFiles { program: prerequisites::QEMU_PROGRAM, log: None, console: qemu::CONSOLE_FILE },
        ),
    })
}

/// Step 6, second half: starts the emulator with its console output going to
/// a file and watches it to its end. Returns how it ended, the raw serial
/// bytes, how long it ran and when the first guest line appeared.
fn run_emulator(
    mut command: Command,
    files: &EmulatorFiles,
    run_dir: &Path,
    options: &RunOptions,
) -> Result<(Ending, Vec<u8>, Duration, Option<Instant>), RunError> {
    let console_path = run_dir.join(files.console);
    let console = File::create(&console_path).map_err(|e| RunError::io("create", &console_path, e))?;
    let console_err = console.try_clone().map_err(|e| RunError::io("open", &console_path, e))?;
    command.stdin(Stdio::null()).stdout(console).stderr(console_err);

    let emulator_error = |source| RunError::Emulator { program: files.program.to_string(), source };
    let started = Instant::now();
    let child = command.spawn().map_err(emulator_error)?;
    let mut emulator = monitor::EmulatorProcess::new(child, files.program);
    let mut serial = monitor::FileFollower::new(run_dir.join(SERIAL_FILE), options.stream);
    let ending =
        monitor::watch(&mut emulator, &mut serial, options.timeout, monitor::VERDICT_GRACE).map_err(emulator_error)?;
    let duration = started.elapsed();
    drop(emulator);

    // A killed Bochs leaves its image lock behind; without it the run can be repeated by hand.
    let _ = bochs::remove_stale_locks(run_dir);
    let bytes = serial.bytes().to_vec();
    if options.stream && !bytes.is_empty() && !bytes.ends_with(b"\n") {
        println!();
    }
    Ok((ending, bytes, duration, serial.first_guest_line()))
}

/// What the emulator's own files say about the run.
struct EmulatorLogs {
    /// See [`RunOutcome::emulator_log_tail`].
    tail: String,
    /// See [`RunOutcome::vmenter_failures`].
    vmenter_failures: Vec<String>,
    /// See [`RunOutcome::emulator_panics`].
    panics: Vec<String>,
}

impl EmulatorLogs {
    /// Step 7's companion: reads the log and console files of a finished run.
    fn read(machine: Machine, files: &EmulatorFiles, run_dir: &Path) -> Self {
        let log = files.log.map(|name| read_lossy(&run_dir.join(name)));
        let console = read_lossy(&run_dir.join(files.console));
        let mut tail = String::new();
        let sections = files.log.zip(log.as_deref()).into_iter().chain([(files.console, console.as_str())]);
        for (name, text) in sections {
            let _ = writeln!(tail, "==> {name} (last {LOG_TAIL_LINES} lines) <==");
            let _ = writeln!(tail, "{}", verdict::last_lines(text, LOG_TAIL_LINES));
        }
        let (vmenter_failures, panics) = match (machine, log.as_deref()) {
            (Machine::Bochs, Some(log)) => (bochs::vmenter_failures(log), bochs::panics(log)),
            _ => (Vec::new(), Vec::new()),
        };
        EmulatorLogs { tail: tail.trim_end().to_string(), vmenter_failures, panics }
    }
}

/// A file's text with invalid UTF-8 replaced; empty when it cannot be read.
fn read_lossy(path: &Path) -> String {
    std::fs::read(path).map(|bytes| String::from_utf8_lossy(&bytes).into_owned()).unwrap_or_default()
}
