//! The boot blob: what the kernel finds in the bootloader's ramdisk.
//!
//! It carries the run's settings (the log level) and every guest: its
//! configuration and its image bytes. The format is defined once, in
//! `hypervisor_core::blob`, and shared by this encoder and the kernel's decoder.

use std::fmt;
use std::path::PathBuf;

use hypervisor_core::blob::{encoded_len, write_blob, BlobGuest, BlobSettings, StepSelection, TraceSelection};

pub use crate::guest_images::LoadedGuest;
use crate::options::LogLevel;

/// Why the boot blob could not be encoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BootBlobError {
    /// No guest to run.
    NoGuests,
    /// The core encoder refused the guest list.
    Encoding(hypervisor_core::blob::BlobError),
}

impl fmt::Display for BootBlobError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BootBlobError::NoGuests => f.write_str("no guests to run"),
            BootBlobError::Encoding(error) => write!(f, "cannot encode the boot blob: {error}"),
        }
    }
}

impl std::error::Error for BootBlobError {}

/// Encodes the boot blob for `guests` with the kernel's `log_level`
/// (format: `hypervisor_core::blob`). With `caps_report` (`--caps`) the
/// kernel prints the capability explorer instead of running the guests.
pub fn build_boot_blob(
    guests: &[LoadedGuest],
    log_level: LogLevel,
    caps_report: bool,
) -> Result<Vec<u8>, BootBlobError> {
    build_traced_boot_blob(guests, log_level, caps_report, TraceSelection::None)
}

/// [`build_boot_blob`] with exit tracing (`--trace`) for the guests `trace` selects.
pub fn build_traced_boot_blob(
    guests: &[LoadedGuest],
    log_level: LogLevel,
    caps_report: bool,
    trace: TraceSelection,
) -> Result<Vec<u8>, BootBlobError> {
    build_stepped_boot_blob(guests, log_level, caps_report, trace, StepSelection::None)
}

/// [`build_traced_boot_blob`] with single-stepping (`--step GUEST`) of the guest `step` selects.
pub fn build_stepped_boot_blob(
    guests: &[LoadedGuest],
    log_level: LogLevel,
    caps_report: bool,
    trace: TraceSelection,
    step: StepSelection,
) -> Result<Vec<u8>, BootBlobError> {
    let settings = BlobSettings { log_level: log_level.as_u8(), caps_report, trace, step, ..BlobSettings::default() };
    build_boot_blob_with(guests, settings)
}

/// Builds a boot blob with every run-wide setting given ([`BlobSettings`],
/// e.g. `--break-entry`'s rule in `break_entry`).
pub fn build_boot_blob_with(guests: &[LoadedGuest], settings: BlobSettings) -> Result<Vec<u8>, BootBlobError> {
    if guests.is_empty() {
        return Err(BootBlobError::NoGuests);
    }
    let entries: Vec<BlobGuest<'_>> =
        guests.iter().map(|guest| BlobGuest { config: guest.config, image: &guest.image }).collect();
    let len = encoded_len(&entries).map_err(BootBlobError::Encoding)?;
    let mut blob = vec![0u8; len];
    let written = write_blob(settings, &entries, &mut blob).map_err(BootBlobError::Encoding)?;
    blob.truncate(written);
    Ok(blob)
}

/// The path of the blob inside a run directory.
pub fn blob_path(run_dir: &std::path::Path) -> PathBuf {
    run_dir.join(crate::BOOT_BLOB_FILE)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::disk_image::Firmware;
    use crate::guest_images::load_guests;
    use crate::machine_memory::DEFAULT_MACHINE_MEMORY_MIB;
    use crate::options::GuestSpec;
    use hypervisor_core::blob::BootBlob;

    #[test]
    fn the_built_in_guests_round_trip_through_the_kernels_parser() {
        let specs: Vec<GuestSpec> = crate::payloads::default_specs();
        let guests = load_guests(&specs, DEFAULT_MACHINE_MEMORY_MIB, Firmware::Bios)
            .expect("the built-in guest images exist and pass the checks");
        let blob = build_boot_blob(&guests, LogLevel::Debug, false).expect("the built-in guests encode");
        let parsed = BootBlob::parse(&blob).expect("the kernel's parser accepts the blob");
        assert_eq!(parsed.settings().log_level, LogLevel::Debug.as_u8());
        assert_eq!(parsed.guest_count(), guests.len());
        for (index, guest) in guests.iter().enumerate() {
            let decoded = parsed.guest(index).expect("every guest is there");
            assert_eq!(decoded.config, guest.config);
            assert_eq!(decoded.image, guest.image.as_slice());
        }
        let names: Vec<&str> = guests.iter().map(|guest| guest.config.name.as_str()).collect();
        assert_eq!(names, crate::payloads::default_guest_names());
    }

    #[test]
    fn the_isolation_demo_round_trips_with_its_restarts_budget_and_outcomes() {
        let specs = crate::payloads::isolation_demo_specs();
        let guests = load_guests(&specs, DEFAULT_MACHINE_MEMORY_MIB, Firmware::Bios)
            .expect("the isolation guests' images exist and pass the checks");
        let blob = build_boot_blob(&guests, LogLevel::Info, false).expect("the demo encodes");
        let parsed = BootBlob::parse(&blob).expect("the kernel's parser accepts the blob");
        assert_eq!(parsed.guest_count(), specs.len());
        for (index, spec) in specs.iter().enumerate() {
            let decoded = parsed.guest(index).expect("every guest is there").config;
            assert_eq!(decoded.name, spec.config.name);
            assert_eq!(decoded.expected, spec.config.expected);
            assert_eq!(decoded.restart_limit, spec.config.restart_limit);
            assert_eq!(decoded.budget_ticks, spec.config.budget_ticks);
        }
        let spinner = (0..parsed.guest_count())
            .filter_map(|index| parsed.guest(index).ok())
            .find(|guest| guest.config.name.as_str() == "hostile_cpu");
        assert_eq!(
            spinner.map(|guest| guest.config.expected),
            Some(hypervisor_core::config::ExpectedOutcome::OverBudget)
        );
    }

    #[test]
    fn no_guests_is_an_error() {
        assert_eq!(build_boot_blob(&[], LogLevel::Info, false), Err(BootBlobError::NoGuests));
    }

    #[test]
    fn the_caps_report_flag_reaches_the_settings() {
        let specs = [crate::payloads::BUILT_IN[0].spec().expect("a valid name")];
        let guests = load_guests(&specs, DEFAULT_MACHINE_MEMORY_MIB, Firmware::Bios).expect("a built-in guest loads");
        for caps_report in [false, true] {
            let blob = build_boot_blob(&guests, LogLevel::Info, caps_report).expect("one guest encodes");
            let parsed = BootBlob::parse(&blob).expect("the kernel's parser accepts the blob");
            assert_eq!(parsed.settings().caps_report, caps_report);
            assert_eq!(parsed.guest_count(), 1, "the guests are packed even for --caps");
        }
    }

    #[test]
    fn the_trace_selection_reaches_the_settings() {
        let specs = [crate::payloads::BUILT_IN[0].spec().expect("a valid name")];
        let guests = load_guests(&specs, DEFAULT_MACHINE_MEMORY_MIB, Firmware::Bios).expect("a built-in guest loads");
        for trace in [TraceSelection::None, TraceSelection::All, TraceSelection::Guest(0)] {
            let blob = build_traced_boot_blob(&guests, LogLevel::Info, false, trace).expect("one guest encodes");
            let parsed = BootBlob::parse(&blob).expect("the kernel's parser accepts the blob");
            assert_eq!(parsed.settings().trace, trace);
        }
        let step = StepSelection::Guest(0);
        let blob = build_stepped_boot_blob(&guests, LogLevel::Info, false, TraceSelection::None, step)
            .expect("one guest encodes");
        let parsed = BootBlob::parse(&blob).expect("the kernel's parser accepts the blob");
        assert_eq!(parsed.settings().step, step);
    }
}

/// A deliberate defect in the boot blob, for checking that the kernel refuses
/// damaged blobs with a clear message (tests and experiments; the CLI never
/// sets one).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BlobDamage {
    /// One image byte flipped: the checksum no longer matches.
    Checksum,
    /// The version after the current one in the header, checksum recomputed.
    Version,
    /// The first guest's image length pointing past the blob, checksum recomputed.
    ImageBounds,
}

impl BlobDamage {
    /// Applies the defect to an encoded blob.
    pub fn apply(self, blob: &mut [u8]) {
        match self {
            BlobDamage::Checksum => {
                if let Some(last) = blob.last_mut() {
                    *last ^= 0xFF;
                }
            }
            BlobDamage::Version => {
                let next = hypervisor_core::blob::VERSION + 1;
                blob[8..12].copy_from_slice(&next.to_le_bytes());
                let _ = hypervisor_core::blob::reseal(blob);
            }
            BlobDamage::ImageBounds => {
                // The first record's `image_len` (record offset 80).
                let at = hypervisor_core::blob::HEADER_LEN + 80;
                blob[at..at + 8].copy_from_slice(&(1u64 << 40).to_le_bytes());
                let _ = hypervisor_core::blob::reseal(blob);
            }
        }
    }
}
