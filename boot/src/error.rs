//! [`RunError`]: everything that keeps a run from producing a verdict.
//!
//! A hypervisor that boots and fails is *not* a `RunError`: that is a
//! [`crate::RunOutcome`] whose verdict is not `Pass`. A `RunError` means the
//! runner could not get as far as watching the emulator (bad option
//! combination, missing emulator, image creation failed, ...).
//!
//! One kind is a *refusal* ([`RunError::is_refusal`]): the guests cannot run
//! as given (bad image, not enough memory, ...). The runner finds it before it
//! starts anything, and the command line reports it with exit status 2, like
//! a usage error.

use std::fmt;
use std::io;
use std::path::PathBuf;

use crate::boot_blob::BootBlobError;
use crate::guest_images::GuestCheckError;
use crate::prerequisites::MissingPrerequisites;

/// Why a run could not start or could not be watched.
#[derive(Debug)]
pub enum RunError {
    /// `--uefi` was asked for but the machine is Bochs, which boots only BIOS images here.
    UefiNeedsQemu {
        /// Why Bochs was chosen.
        bochs_reason: String,
    },
    /// `--emulator qemu-kvm` on a host whose KVM cannot run a VT-x hypervisor.
    KvmUnavailable {
        /// What the host lacks.
        reason: String,
    },
    /// The emulator or its firmware is not installed.
    MissingPrerequisites(MissingPrerequisites),
    /// The guests cannot run as given: found before anything started.
    Guests(GuestCheckError),
    /// The kernel could not be read.
    MissingInput {
        /// What the file is ("the hypervisor kernel").
        what: String,
        /// Where it was expected.
        path: PathBuf,
        /// The I/O error.
        source: io::Error,
    },
    /// The boot blob (the ramdisk) could not be built.
    BootBlob(BootBlobError),
    /// The `bootloader` crate could not create a disk image.
    DiskImage {
        /// `BIOS` or `UEFI`.
        kind: &'static str,
        /// The image that was being written.
        path: PathBuf,
        /// The bootloader's error, with its causes.
        message: String,
    },
    /// A file or directory of the run could not be written or read.
    Io {
        /// What the runner was doing.
        action: String,
        /// The path involved.
        path: PathBuf,
        /// The I/O error.
        source: io::Error,
    },
    /// The emulator process could not be started or watched.
    Emulator {
        /// The program.
        program: String,
        /// The I/O error.
        source: io::Error,
    },
}

impl RunError {
    /// Shorthand for [`RunError::Io`].
    pub(crate) fn io(action: impl Into<String>, path: impl Into<PathBuf>, source: io::Error) -> Self {
        RunError::Io { action: action.into(), path: path.into(), source }
    }

    /// Whether the runner refused its input (the guests) rather than failed to
    /// run it: nothing was started, and the command line exits with status 2.
    pub fn is_refusal(&self) -> bool {
        matches!(self, RunError::Guests(_))
    }
}

impl fmt::Display for RunError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RunError::UefiNeedsQemu { bochs_reason } => write!(
                f,
                "--uefi needs QEMU, but the emulator is Bochs ({bochs_reason}); \
                 Bochs boots the BIOS image only. Use `--emulator qemu --uefi` for a UEFI boot \
                 under TCG (no VT-x there)"
            ),
            RunError::KvmUnavailable { reason } => {
                write!(f, "QEMU with KVM cannot run the hypervisor here: {reason}; use --emulator bochs")
            }
            RunError::MissingPrerequisites(missing) => write!(f, "{missing}"),
            RunError::Guests(error) => write!(f, "{error}"),
            RunError::MissingInput { what, path, source } => {
                write!(f, "cannot read {what} at {}: {source}", path.display())
            }
            RunError::BootBlob(error) => write!(f, "cannot build the boot blob: {error}"),
            RunError::DiskImage { kind, path, message } => {
                write!(f, "cannot create the {kind} disk image {}: {message}", path.display())
            }
            RunError::Io { action, path, source } => write!(f, "cannot {action} {}: {source}", path.display()),
            RunError::Emulator { program, source } => write!(f, "cannot run `{program}`: {source}"),
        }
    }
}

impl std::error::Error for RunError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            RunError::MissingInput { source, .. } | RunError::Io { source, .. } | RunError::Emulator { source, .. } => {
                Some(source)
            }
            RunError::BootBlob(error) => Some(error),
            RunError::Guests(error) => Some(error),
            _ => None,
        }
    }
}

impl From<MissingPrerequisites> for RunError {
    fn from(missing: MissingPrerequisites) -> Self {
        RunError::MissingPrerequisites(missing)
    }
}

impl From<GuestCheckError> for RunError {
    fn from(error: GuestCheckError) -> Self {
        RunError::Guests(error)
    }
}

impl From<BootBlobError> for RunError {
    fn from(error: BootBlobError) -> Self {
        RunError::BootBlob(error)
    }
}
