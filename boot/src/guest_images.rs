//! The guest checks the runner makes before anything boots, and the images
//! it puts into the boot blob.
//!
//! [`load_guests`] turns the run's [`GuestSpec`] list into [`LoadedGuest`]s,
//! refusing, with a message that names the guest:
//!
//! - an empty list, a name given twice, more than 250 guests
//!   ([`crate::options::add_guest`]);
//! - a configuration with impossible limits (RAM above 1 GiB, a zero time slice);
//! - guests whose RAM, summed, exceeds what the machine can give
//!   ([`crate::machine_memory`]);
//! - an image that is missing, empty, or not runnable in its start mode
//!   ([`prepare_image`]).
//!
//! # Images by start mode
//!
//! | mode | image | where it goes | must fit |
//! |---|---|---|---|
//! | `long` | a static x86-64 ELF executable (ET_EXEC), loaded by its program headers | the segments' addresses | below the long-mode page tables at the top of RAM (`guest_paging::plan(ram).base`) |
//! | `real` | flat bytes | 0x7C00 (where a BIOS loads a boot sector), started at its first byte | below 0xA0000 (the legacy video memory) and in RAM |
//! | `protected` | flat bytes | 0x100000 (1 MiB), started at its first byte | in RAM |
//!
//! An ELF image given for real or protected mode is flattened
//! ([`crate::flatten`]); it must be linked at the mode's load address, with
//! its entry point there. The resolved kind goes into the guest's
//! [`GuestConfig::image`]: [`ImageKind::Elf64`] for long mode,
//! [`ImageKind::Flat`] otherwise.

use std::fmt;
use std::io::Read as _;
use std::path::{Path, PathBuf};

use hypervisor_core::config::{ConfigError, GuestConfig, GuestName, ImageKind, StartMode};
use hypervisor_core::elf::{ElfError, ElfImage};
use hypervisor_core::guest_memory::MAX_RAM_BYTES;
use hypervisor_core::guest_paging::{self, GuestPagingError};

use crate::disk_image::Firmware;
use crate::flatten::{flatten_elf, FlattenError};
use crate::machine_memory::{check_guest_ram, NotEnoughMemory};
use crate::options::{add_guest, GuestListError, GuestSpec};

/// Where a real-mode image is loaded and started (0000:7C00).
pub const REAL_MODE_LOAD_ADDRESS: u64 = 0x7C00;
/// A real-mode image must end below the legacy video memory.
pub const REAL_MODE_LIMIT: u64 = 0xA_0000;
/// Where a protected-mode image is loaded and started (1 MiB).
pub const PROTECTED_MODE_LOAD_ADDRESS: u64 = 0x10_0000;
/// The largest file the runner reads as an image: no guest's RAM is larger.
pub const MAX_IMAGE_FILE_BYTES: u64 = MAX_RAM_BYTES;

/// Where a flat image of `mode` is loaded; `None` for long mode (ELF only).
pub const fn flat_load_address(mode: StartMode) -> Option<u64> {
    match mode {
        StartMode::Real => Some(REAL_MODE_LOAD_ADDRESS),
        StartMode::Protected => Some(PROTECTED_MODE_LOAD_ADDRESS),
        StartMode::Long => None,
    }
}

/// Where a flat image of `mode` must end in a guest with `ram_bytes` of RAM.
pub fn flat_limit(mode: StartMode, ram_bytes: u64) -> u64 {
    match mode {
        StartMode::Real => REAL_MODE_LIMIT.min(ram_bytes),
        StartMode::Protected | StartMode::Long => ram_bytes,
    }
}

/// A guest whose image has been read and checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoadedGuest {
    /// Its configuration, with [`GuestConfig::image`] set to the kind of [`Self::image`].
    pub config: GuestConfig,
    /// The bytes the kernel loads: an ELF file, or a flat image.
    pub image: Vec<u8>,
}

/// Why an image cannot run in its guest.
#[derive(Debug)]
pub enum ImageError {
    /// The file cannot be read (missing, a directory, no permission).
    Unreadable(std::io::Error),
    /// The file is empty.
    Empty,
    /// The file is larger than any guest's RAM.
    FileTooLarge {
        /// Its size in bytes.
        len: u64,
    },
    /// Long mode takes ELF executables only, and this is not one.
    LongModeNeedsElf,
    /// A long-mode ELF that the kernel's loader refuses, or that does not fit.
    Elf(ElfError),
    /// The guest's RAM cannot hold the long-mode page tables.
    Paging(GuestPagingError),
    /// An ELF for real or protected mode that cannot be flattened.
    Flatten(FlattenError),
    /// An ELF for real or protected mode linked at another address than the
    /// mode's load address.
    WrongLoadAddress {
        /// Its lowest segment address.
        linked: u64,
        /// The mode's load address.
        expected: u64,
    },
    /// A flat image that does not fit where its mode loads it.
    DoesNotFit {
        /// Where it starts.
        start: u64,
        /// Where it ends (its zero-filled tail included).
        end: u64,
        /// Where it must end at the latest.
        limit: u64,
    },
}

impl ImageError {
    /// Describes the error for a guest starting in `mode` with `ram_bytes` of RAM.
    fn describe(&self, f: &mut fmt::Formatter<'_>, mode: StartMode, ram_bytes: u64) -> fmt::Result {
        match self {
            ImageError::Unreadable(error) => write!(f, "cannot read the image: {error}"),
            ImageError::Empty => f.write_str("the image is empty"),
            ImageError::FileTooLarge { len } => {
                write!(f, "the image is {len} bytes, larger than any guest's RAM ({MAX_IMAGE_FILE_BYTES} bytes)")
            }
            ImageError::LongModeNeedsElf => f.write_str(
                "long mode needs a static x86-64 ELF executable, and this is not an ELF file \
                 (a flat image runs in real or protected mode: --mode real or --mode protected)",
            ),
            ImageError::Elf(error) => write!(f, "{error}"),
            ImageError::Paging(error) => write!(f, "{error}"),
            ImageError::Flatten(error) => write!(f, "cannot flatten the ELF image for {mode} mode: {error}"),
            ImageError::WrongLoadAddress { linked, expected } => write!(
                f,
                "the ELF image is linked at {linked:#x}, but a {mode}-mode image is loaded at {expected:#x}: \
                 link it there"
            ),
            ImageError::DoesNotFit { start, end, limit } => {
                write!(f, "the image would occupy [{start:#x}, {end:#x}), past {limit:#x}: ")?;
                if mode == StartMode::Real && *limit == REAL_MODE_LIMIT {
                    write!(f, "a real-mode image must end below the legacy video memory at {REAL_MODE_LIMIT:#x}")
                } else {
                    write!(f, "the guest's RAM ends there ({ram_bytes:#x} bytes); give it more RAM")
                }
            }
        }
    }
}

/// Checks an image's bytes for `config`'s start mode and RAM (see the module
/// docs); returns its kind and the bytes to load (flattened for real and
/// protected mode when the file is an ELF).
pub fn prepare_image(config: &GuestConfig, bytes: Vec<u8>) -> Result<(ImageKind, Vec<u8>), ImageError> {
    if bytes.is_empty() {
        return Err(ImageError::Empty);
    }
    let is_elf = ImageKind::detect(&bytes) == ImageKind::Elf64;
    let Some(load_address) = flat_load_address(config.start_mode) else {
        if !is_elf {
            return Err(ImageError::LongModeNeedsElf);
        }
        let tables = guest_paging::plan(config.ram_bytes).map_err(ImageError::Paging)?;
        let elf = ElfImage::parse(&bytes).map_err(ImageError::Elf)?;
        elf.check_fits(tables.base).map_err(ImageError::Elf)?;
        return Ok((ImageKind::Elf64, bytes));
    };
    let (flat, memory_end) = if is_elf {
        let flat = flatten_elf(&bytes).map_err(ImageError::Flatten)?;
        if flat.load_address != load_address {
            return Err(ImageError::WrongLoadAddress { linked: flat.load_address, expected: load_address });
        }
        (flat.bytes, flat.memory_end)
    } else {
        let end = load_address.saturating_add(bytes.len() as u64);
        (bytes, end)
    };
    let limit = flat_limit(config.start_mode, config.ram_bytes);
    if memory_end > limit {
        return Err(ImageError::DoesNotFit { start: load_address, end: memory_end, limit });
    }
    Ok((ImageKind::Flat, flat))
}

/// An image problem, with the guest it belongs to.
#[derive(Debug)]
pub struct GuestImageError {
    /// The guest's configuration.
    pub config: GuestConfig,
    /// Its image file.
    pub path: PathBuf,
    /// What is wrong.
    pub error: ImageError,
}

impl fmt::Display for GuestImageError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "guest `{}` ({} mode, image {}): ", self.config.name, self.config.start_mode, self.path.display())?;
        self.error.describe(f, self.config.start_mode, self.config.ram_bytes)
    }
}

impl std::error::Error for GuestImageError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match &self.error {
            ImageError::Unreadable(error) => Some(error),
            _ => None,
        }
    }
}

/// Why the runner refuses a run's guests.
#[derive(Debug)]
pub enum GuestCheckError {
    /// The list is empty.
    NoGuests,
    /// A duplicate name, or too many guests.
    List(GuestListError),
    /// A configuration with impossible limits.
    Config {
        /// The guest.
        name: GuestName,
        /// What is wrong.
        error: ConfigError,
    },
    /// More guest RAM than the machine can give.
    Memory(NotEnoughMemory),
    /// An image that cannot run (boxed: it is much larger than the others).
    Image(Box<GuestImageError>),
}

impl fmt::Display for GuestCheckError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            GuestCheckError::NoGuests => f.write_str("no guests to run"),
            GuestCheckError::List(error) => write!(f, "{error}"),
            GuestCheckError::Config { name, error } => write!(f, "guest `{name}`: {error}"),
            GuestCheckError::Memory(error) => write!(f, "{error}"),
            GuestCheckError::Image(error) => write!(f, "{error}"),
        }
    }
}

impl std::error::Error for GuestCheckError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            GuestCheckError::Image(error) => Some(error.as_ref()),
            GuestCheckError::Memory(error) => Some(error),
            _ => None,
        }
    }
}

/// Reads an image file, refusing files larger than [`MAX_IMAGE_FILE_BYTES`]
/// before reading them.
pub fn read_image(path: &Path) -> Result<Vec<u8>, ImageError> {
    let file = std::fs::File::open(path).map_err(ImageError::Unreadable)?;
    let len = file.metadata().map_err(ImageError::Unreadable)?.len();
    if len > MAX_IMAGE_FILE_BYTES {
        return Err(ImageError::FileTooLarge { len });
    }
    let mut bytes = Vec::with_capacity(len as usize);
    // `take` guards against a file that grows while it is read.
    file.take(MAX_IMAGE_FILE_BYTES + 1).read_to_end(&mut bytes).map_err(ImageError::Unreadable)?;
    if bytes.len() as u64 > MAX_IMAGE_FILE_BYTES {
        return Err(ImageError::FileTooLarge { len: bytes.len() as u64 });
    }
    Ok(bytes)
}

/// Checks the run's guests (see the module docs) for a machine with
/// `machine_mib` MiB booting through `firmware`, and reads their images.
pub fn load_guests(
    specs: &[GuestSpec],
    machine_mib: u32,
    firmware: Firmware,
) -> Result<Vec<LoadedGuest>, GuestCheckError> {
    if specs.is_empty() {
        return Err(GuestCheckError::NoGuests);
    }
    let mut checked = Vec::with_capacity(specs.len());
    for spec in specs {
        add_guest(&mut checked, spec.clone()).map_err(GuestCheckError::List)?;
        spec.config.validate().map_err(|error| GuestCheckError::Config { name: spec.config.name, error })?;
    }
    check_guest_ram(specs.iter().map(|spec| spec.config.ram_bytes), machine_mib, firmware)
        .map_err(GuestCheckError::Memory)?;
    specs
        .iter()
        .map(|spec| {
            let image_error = |error| {
                let path = spec.image.clone();
                GuestCheckError::Image(Box::new(GuestImageError { config: spec.config, path, error }))
            };
            let bytes = read_image(&spec.image).map_err(image_error)?;
            let (kind, image) = prepare_image(&spec.config, bytes).map_err(image_error)?;
            let mut config = spec.config;
            config.image = kind;
            Ok(LoadedGuest { config, image })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::flatten::test_elf::{build, Segment, RW, RX};
    use crate::machine_memory::DEFAULT_MACHINE_MEMORY_MIB;
    use crate::size::MIB;

    fn config(mode: StartMode, ram_bytes: u64) -> GuestConfig {
        let mut config = GuestConfig::new(GuestName::new("g").expect("a valid name"));
        config.start_mode = mode;
        config.set_ram_bytes(ram_bytes);
        config
    }

    /// A long-mode ELF like the built-in payloads: code at 1 MiB.
    fn long_elf(address: u64, len: u64) -> Vec<u8> {
        build(address, &[Segment { flags: RX, address, data: &[0xF4], mem_size: len }])
    }

    fn describe(config: &GuestConfig, error: ImageError) -> String {
        GuestImageError { config: *config, path: PathBuf::from("img.bin"), error }.to_string()
    }

    #[test]
    fn flat_images_are_taken_as_they_are() {
        let real = config(StartMode::Real, 2 * MIB);
        assert_eq!(prepare_image(&real, vec![0xF4]).expect("fits"), (ImageKind::Flat, vec![0xF4]));
        let protected = config(StartMode::Protected, 2 * MIB);
        assert_eq!(prepare_image(&protected, vec![0x90; 4096]).expect("fits").0, ImageKind::Flat);
    }

    #[test]
    fn empty_images_are_refused_in_every_mode() {
        for mode in StartMode::ALL {
            assert!(matches!(prepare_image(&config(mode, 2 * MIB), Vec::new()), Err(ImageError::Empty)), "{mode}");
        }
    }

    #[test]
    fn real_mode_images_must_end_below_0xa0000() {
        let real = config(StartMode::Real, 2 * MIB);
        let largest = (REAL_MODE_LIMIT - REAL_MODE_LOAD_ADDRESS) as usize;
        assert!(prepare_image(&real, vec![0x90; largest]).is_ok());
        let error = prepare_image(&real, vec![0x90; largest + 1]).unwrap_err();
        assert!(
            matches!(error, ImageError::DoesNotFit { start: 0x7C00, end: 0xA_0001, limit: REAL_MODE_LIMIT }),
            "{error:?}"
        );
        let message = describe(&real, error);
        assert_eq!(
            message,
            "guest `g` (real mode, image img.bin): the image would occupy [0x7c00, 0xa0001), past 0xa0000: \
             a real-mode image must end below the legacy video memory at 0xa0000"
        );
    }

    #[test]
    fn protected_mode_images_must_fit_in_ram() {
        let protected = config(StartMode::Protected, 2 * MIB);
        let largest = (2 * MIB - PROTECTED_MODE_LOAD_ADDRESS) as usize;
        assert!(prepare_image(&protected, vec![0x90; largest]).is_ok());
        let error = prepare_image(&protected, vec![0x90; largest + 1]).unwrap_err();
        assert!(matches!(error, ImageError::DoesNotFit { end: 0x20_0001, limit: 0x20_0000, .. }), "{error:?}");
        assert!(describe(&protected, error).ends_with("the guest's RAM ends there (0x200000 bytes); give it more RAM"));
        let bigger = config(StartMode::Protected, 4 * MIB);
        assert!(prepare_image(&bigger, vec![0x90; largest + 1]).is_ok());
    }

    #[test]
    fn long_mode_takes_elf_images_that_fit_below_the_page_tables() {
        let long = config(StartMode::Long, 2 * MIB);
        let image = long_elf(0x10_0000, 0x1000);
        assert_eq!(prepare_image(&long, image.clone()).expect("fits"), (ImageKind::Elf64, image));

        let error = prepare_image(&long, vec![0xF4; 16]).unwrap_err();
        assert!(matches!(error, ImageError::LongModeNeedsElf));
        assert!(describe(&long, error).contains("--mode real or --mode protected"));

        // 2 MiB of RAM keeps its top 6 pages for the page tables.
        let base = guest_paging::plan(2 * MIB).expect("a plan").base;
        assert!(prepare_image(&long, long_elf(0x10_0000, base - 0x10_0000)).is_ok());
        let error = prepare_image(&long, long_elf(0x10_0000, base - 0x10_0000 + 1)).unwrap_err();
        assert!(matches!(error, ImageError::Elf(ElfError::SegmentOutsideRam { ram_limit, .. }) if ram_limit == base));

        let mut position_independent = long_elf(0x10_0000, 1);
        position_independent[16] = 3; // ET_DYN
        assert!(matches!(
            prepare_image(&long, position_independent),
            Err(ImageError::Elf(ElfError::PositionIndependent))
        ));
        assert!(matches!(prepare_image(&long, b"\x7fELF".to_vec()), Err(ImageError::Elf(ElfError::TooShort { .. }))));
    }

    #[test]
    fn elf_images_for_real_and_protected_mode_are_flattened() {
        let real = config(StartMode::Real, 2 * MIB);
        let image = build(
            0x7C00,
            &[
                Segment { flags: RX, address: 0x7C00, data: &[0xEB, 0xFE], mem_size: 2 },
                Segment { flags: RW, address: 0x7C04, data: &[9], mem_size: 1 },
            ],
        );
        assert_eq!(prepare_image(&real, image).expect("flattens"), (ImageKind::Flat, vec![0xEB, 0xFE, 0, 0, 9]));

        let protected = config(StartMode::Protected, 2 * MIB);
        let image = long_elf(0x10_0000, 1);
        assert_eq!(prepare_image(&protected, image.clone()).expect("flattens"), (ImageKind::Flat, vec![0xF4]));

        // Linked for the other mode.
        let error = prepare_image(&real, image).unwrap_err();
        assert!(matches!(error, ImageError::WrongLoadAddress { linked: 0x10_0000, expected: 0x7C00 }));
        assert_eq!(
            describe(&real, error),
            "guest `g` (real mode, image img.bin): the ELF image is linked at 0x100000, but a real-mode image \
             is loaded at 0x7c00: link it there"
        );
        // Its .bss counts.
        let error = prepare_image(&real, long_elf(0x7C00, REAL_MODE_LIMIT)).unwrap_err();
        assert!(matches!(error, ImageError::DoesNotFit { .. }));
        // The entry must be the first byte.
        let image = build(0x7C01, &[Segment { flags: RX, address: 0x7C00, data: &[0x90, 0xF4], mem_size: 2 }]);
        let error = prepare_image(&real, image).unwrap_err();
        assert!(matches!(error, ImageError::Flatten(FlattenError::EntryNotAtStart { entry: 0x7C01, start: 0x7C00 })));
        assert!(describe(&real, error).contains("cannot flatten the ELF image for real mode"));
    }

    fn temp_dir(test: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("boot-guest-images-{}-{test}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("a temporary directory");
        dir
    }

    fn spec(name: &str, mode: StartMode, ram: u64, image: &Path) -> GuestSpec {
        let mut config = config(mode, ram);
        config.name = GuestName::new(name).expect("a valid name");
        GuestSpec { config, image: image.to_path_buf() }
    }

    fn load(specs: &[GuestSpec]) -> Result<Vec<LoadedGuest>, GuestCheckError> {
        load_guests(specs, DEFAULT_MACHINE_MEMORY_MIB, Firmware::Bios)
    }

    #[test]
    fn files_are_read_checked_and_given_their_kind() {
        let dir = temp_dir("good");
        let flat = dir.join("boot.bin");
        std::fs::write(&flat, [0xF4]).expect("write");
        let elf = dir.join("kernel.elf");
        std::fs::write(&elf, long_elf(0x10_0000, 1)).expect("write");
        let guests = load(&[
            spec("flat", StartMode::Real, 2 * MIB, &flat),
            spec("elf", StartMode::Long, 2 * MIB, &elf),
            spec("flattened", StartMode::Protected, 2 * MIB, &elf),
        ])
        .expect("all good");
        let kinds: Vec<ImageKind> = guests.iter().map(|guest| guest.config.image).collect();
        assert_eq!(kinds, [ImageKind::Flat, ImageKind::Elf64, ImageKind::Flat]);
        assert_eq!(guests[2].image, [0xF4]);
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn missing_and_empty_files_are_refused() {
        let dir = temp_dir("missing");
        let missing = dir.join("nope.bin");
        let error = load(&[spec("g", StartMode::Real, 2 * MIB, &missing)]).unwrap_err();
        assert!(matches!(&error, GuestCheckError::Image(image) if matches!(image.error, ImageError::Unreadable(_))));
        let message = error.to_string();
        assert!(message.starts_with("guest `g` (real mode, image ") && message.contains("cannot read the image"));

        let empty = dir.join("empty.bin");
        std::fs::write(&empty, []).expect("write");
        let error = load(&[spec("g", StartMode::Protected, 2 * MIB, &empty)]).unwrap_err();
        assert!(error.to_string().ends_with("the image is empty"), "{error}");
        let error = load(&[spec("g", StartMode::Long, 2 * MIB, &dir)]).unwrap_err();
        assert!(error.to_string().contains("cannot read the image"), "{error}");
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn lists_that_cannot_run_are_refused_before_any_file_is_read() {
        let nowhere = Path::new("/nonexistent/image");
        assert!(matches!(load(&[]), Err(GuestCheckError::NoGuests)));
        let twice = [spec("a", StartMode::Real, 2 * MIB, nowhere), spec("a", StartMode::Real, 2 * MIB, nowhere)];
        assert!(matches!(load(&twice), Err(GuestCheckError::List(GuestListError::DuplicateName(_)))));
        let max = hypervisor_core::blob::MAX_GUESTS;
        let many: Vec<GuestSpec> =
            (0..=max).map(|i| spec(&format!("g{i}"), StartMode::Real, 2 * MIB, nowhere)).collect();
        assert!(matches!(load(&many), Err(GuestCheckError::List(GuestListError::TooMany { max: m })) if m == max));

        let mut huge = spec("huge", StartMode::Long, 2 * MIB, nowhere);
        huge.config.ram_bytes = 2 << 30;
        let error = load(&[huge]).unwrap_err();
        assert!(matches!(error, GuestCheckError::Config { error: ConfigError::RamTooLarge { .. }, .. }));
        assert!(error.to_string().starts_with("guest `huge`: guest RAM of"), "{error}");

        let big = [spec("a", StartMode::Long, 128 * MIB, nowhere), spec("b", StartMode::Long, 100 * MIB, nowhere)];
        let error = load(&big).unwrap_err();
        assert!(matches!(error, GuestCheckError::Memory(NotEnoughMemory { requested, .. }) if requested == 228 * MIB));
        assert!(error.to_string().contains("--machine-memory 258"), "{error}");
        // A bigger machine takes them; then the missing image is the problem.
        let error = load_guests(&big, 258, Firmware::Bios).unwrap_err();
        assert!(matches!(error, GuestCheckError::Image(_)), "{error}");
    }
}
