//! Property tests of the boot blob parser and writer ([`hypervisor_core::blob`]).
//!
//! The kernel parses the blob out of a ramdisk that anything on the boot disk
//! can change, before any guest runs: a panic there takes the whole machine
//! down, and a range check that lets an image point outside the blob makes the
//! kernel copy host memory into a guest. These properties feed the parser
//! random bytes, random valid blobs, and valid blobs damaged in every single
//! bit, and check that it only ever answers with a typed [`BlobError`] or with
//! a blob whose every guest lies inside it.

mod prop_common;

use hypervisor_core::blob::{
    encoded_len, reseal, write_blob, BlobError, BlobGuest, BlobSettings, BootBlob, StepSelection, TraceSelection,
    HEADER_LEN, MAGIC, MAX_GUESTS, RECORD_LEN, VERSION,
};
use hypervisor_core::config::{ExpectedOutcome, GuestConfig, GuestName, ImageKind, StartMode};
use hypervisor_core::entry_check::EntryRule;
use hypervisor_core::guest_memory::{BLOCK_SIZE, MAX_RAM_BYTES};
use proptest::prelude::*;
use proptest::sample::Index;

/// One guest as the strategies make it: its configuration and owned image bytes.
type OwnedGuest = (GuestConfig, Vec<u8>);

fn name_strategy() -> impl Strategy<Value = GuestName> {
    let allowed: Vec<u8> = (0u8..=255).filter(|&byte| GuestName::is_allowed(byte)).collect();
    proptest::collection::vec(proptest::sample::select(allowed), 1..=32)
        .prop_map(|bytes| GuestName::from_bytes(&bytes).expect("only allowed bytes"))
}

fn config_strategy() -> impl Strategy<Value = GuestConfig> {
    (
        name_strategy(),
        prop_oneof![Just(ImageKind::Elf64), Just(ImageKind::Flat)],
        proptest::sample::select(StartMode::ALL.to_vec()),
        1..=MAX_RAM_BYTES / BLOCK_SIZE,
        1..=u64::MAX,
        any::<u64>(),
        any::<u32>(),
        prop_oneof![any::<u32>().prop_map(ExpectedOutcome::Exit), Just(ExpectedOutcome::Crash)],
    )
        .prop_map(|(name, image, start_mode, blocks, time_slice_ticks, budget_ticks, restart_limit, expected)| {
            GuestConfig {
                name,
                image,
                start_mode,
                ram_bytes: blocks * BLOCK_SIZE,
                time_slice_ticks,
                budget_ticks,
                restart_limit,
                expected,
            }
        })
}

fn guests_strategy(max: usize) -> impl Strategy<Value = Vec<OwnedGuest>> {
    proptest::collection::vec((config_strategy(), proptest::collection::vec(any::<u8>(), 0..96)), 0..=max)
}

/// The ids `EntryRule::from_id` knows (the only non-zero `break_entry` values
/// a blob may carry).
fn valid_rule_ids() -> Vec<u8> {
    (1u8..=0x7F).filter(|&id| EntryRule::from_id(id).is_some()).collect()
}

fn settings_strategy() -> impl Strategy<Value = BlobSettings> {
    let guest_index = 0..MAX_GUESTS as u8;
    (
        any::<u8>(),
        any::<bool>(),
        prop_oneof![
            Just(TraceSelection::None),
            Just(TraceSelection::All),
            guest_index.clone().prop_map(TraceSelection::Guest)
        ],
        prop_oneof![Just(StepSelection::None), guest_index.prop_map(StepSelection::Guest)],
        prop_oneof![Just(0u8), proptest::sample::select(valid_rule_ids())],
    )
        .prop_map(|(log_level, caps_report, trace, step, break_entry)| BlobSettings {
            log_level,
            caps_report,
            trace,
            step,
            break_entry,
            native_workload: false,
        })
}

fn borrow(guests: &[OwnedGuest]) -> Vec<BlobGuest<'_>> {
    guests.iter().map(|(config, image)| BlobGuest { config: *config, image }).collect()
}

/// Writes a blob for `guests` and `settings`.
fn encode(settings: BlobSettings, guests: &[OwnedGuest]) -> Vec<u8> {
    let borrowed = borrow(guests);
    let len = encoded_len(&borrowed).expect("at most MAX_GUESTS small guests");
    let mut blob = vec![0xA5; len];
    assert_eq!(write_blob(settings, &borrowed, &mut blob), Ok(len));
    blob
}

/// What every accepted blob guarantees the kernel, checked against the bytes
/// it was parsed from: it lies inside them, has at most [`MAX_GUESTS`]
/// guests, and every guest decodes to a valid configuration whose image is a
/// slice of the blob after the records. Also formats every error on the way,
/// which must not panic either.
fn check_accepted(bytes: &[u8], blob: &BootBlob<'_>) {
    let total = blob.total_len();
    assert!(total >= HEADER_LEN && total <= bytes.len(), "total_len {total} outside the {} bytes", bytes.len());
    let count = blob.guest_count();
    assert!(count <= MAX_GUESTS);
    let records_end = HEADER_LEN + count * RECORD_LEN;
    let base = bytes.as_ptr() as usize;
    for (index, guest) in blob.guests().enumerate() {
        let guest = guest.expect("after a successful parse every guest decodes");
        assert_eq!(blob.guest(index), Ok(guest));
        assert_eq!(guest.config.validate(), Ok(()));
        assert_eq!(GuestName::from_bytes(guest.config.name.as_bytes()), Ok(guest.config.name));
        let start = guest.image.as_ptr() as usize - base;
        let end = start + guest.image.len();
        // An empty image may sit anywhere in [records_end, total]; others inside.
        assert!(
            start >= records_end && end <= total,
            "guest {index}: image [{start}, {end}) outside [{records_end}, {total})"
        );
    }
    assert_eq!(blob.guest(usize::MAX), Err(BlobError::RecordOutOfBounds { guest: usize::MAX }));
    let missing = blob.guest(count);
    assert_eq!(missing, Err(BlobError::RecordOutOfBounds { guest: count }));
    let _ = missing.map_err(|error| error.to_string());
}

/// Parses `bytes`: an error must format, a success must keep the promises of
/// [`check_accepted`].
fn parse_and_check(bytes: &[u8]) -> Result<(), BlobError> {
    match BootBlob::parse(bytes) {
        Ok(blob) => {
            check_accepted(bytes, &blob);
            Ok(())
        }
        Err(error) => {
            assert!(!error.to_string().is_empty());
            Err(error)
        }
    }
}

/// Bytes that start like a blob (magic, version, a `total_len` inside the
/// buffer) with everything else random, resealed so the checksum passes: this
/// reaches the record and image checks, which random bytes never do.
fn plausible_blob_strategy() -> impl Strategy<Value = Vec<u8>> {
    (
        proptest::collection::vec(any::<u8>(), HEADER_LEN..1200),
        any::<Index>(),
        0u32..=MAX_GUESTS as u32 + 2,
        any::<Index>(),
    )
        .prop_map(|(mut bytes, total, guest_count, header_len)| {
            let len = bytes.len();
            let total = HEADER_LEN + total.index(len - HEADER_LEN + 1);
            bytes[0..8].copy_from_slice(&MAGIC);
            bytes[8..12].copy_from_slice(&VERSION.to_le_bytes());
            // Mostly the written header length, sometimes anything up to the total.
            let header_len = if header_len.index(4) == 0 {
                HEADER_LEN + header_len.index(total - HEADER_LEN + 1)
            } else {
                HEADER_LEN
            };
            bytes[12..16].copy_from_slice(&(header_len as u32).to_le_bytes());
            bytes[16..24].copy_from_slice(&(total as u64).to_le_bytes());
            bytes[32..36].copy_from_slice(&guest_count.to_le_bytes());
            bytes[36..40].copy_from_slice(&0u32.to_le_bytes());
            reseal(&mut bytes).expect("total_len lies inside the buffer");
            bytes
        })
}

proptest! {
    #![proptest_config(prop_common::config(512))]

    /// Arbitrary bytes never make the parser panic; anything it accepts keeps
    /// every bound (in practice random bytes never pass the magic, see the
    /// next property for bytes that do).
    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
        let _ = parse_and_check(&bytes);
    }

    /// Bytes with a correct magic, version, length and checksum but random
    /// records: the record and image checks, not the checksum, must refuse
    /// them, and whatever passes has every image inside the blob after the
    /// records. This is the hostile-ramdisk case: an attacker can always
    /// compute the (non-cryptographic) checksum.
    #[test]
    fn resealed_random_records_are_checked(bytes in plausible_blob_strategy()) {
        let _ = parse_and_check(&bytes);
    }

    /// Writing a random valid guest list and parsing it gives back exactly the
    /// settings, configurations and image bytes that went in, also with
    /// ramdisk padding after the blob: the runner and the kernel agree on
    /// every field.
    #[test]
    fn encode_parse_round_trip(
        settings in settings_strategy(),
        guests in guests_strategy(MAX_GUESTS),
        padding in proptest::collection::vec(any::<u8>(), 0..64),
    ) {
        let mut bytes = encode(settings, &guests);
        let total = bytes.len();
        bytes.extend_from_slice(&padding);
        let blob = BootBlob::parse(&bytes).expect("a written blob parses");
        check_accepted(&bytes, &blob);
        prop_assert_eq!(blob.total_len(), total);
        prop_assert_eq!(blob.settings(), settings);
        prop_assert_eq!(blob.guest_count(), guests.len());
        for (parsed, (config, image)) in blob.guests().zip(&guests) {
            let parsed = parsed.expect("every guest decodes");
            prop_assert_eq!(parsed.config, *config);
            prop_assert_eq!(parsed.image, &image[..]);
        }
    }

    /// Flipping any single bit inside a valid blob makes the parser refuse it
    /// with a typed error: FNV-1a changes whenever one byte changes (each step
    /// is a bijection of the running hash), and damage to the magic, version or
    /// lengths is refused before the checksum is even computed. So a ramdisk
    /// damaged in transit is never half-believed.
    #[test]
    fn every_single_bit_flip_is_refused(
        settings in settings_strategy(),
        guests in guests_strategy(4),
        bit in any::<Index>(),
    ) {
        let mut bytes = encode(settings, &guests);
        let bit = bit.index(bytes.len() * 8);
        bytes[bit / 8] ^= 1 << (bit % 8);
        let result = parse_and_check(&bytes);
        prop_assert!(result.is_err(), "flipping bit {} was accepted", bit);
    }

    /// Cutting a valid blob short anywhere is refused as too short (before a
    /// whole header) or as a length mismatch (after it): a truncated ramdisk is
    /// reported as such, never read past its end.
    #[test]
    fn truncations_are_refused(settings in settings_strategy(), guests in guests_strategy(4), cut in any::<Index>()) {
        let bytes = encode(settings, &guests);
        let len = cut.index(bytes.len());
        let result = BootBlob::parse(&bytes[..len]);
        if len < HEADER_LEN {
            prop_assert_eq!(result.err(), Some(BlobError::TooShort { len, needed: HEADER_LEN }));
        } else {
            prop_assert_eq!(
                result.err(),
                Some(BlobError::LengthMismatch { declared: bytes.len() as u64, available: len })
            );
        }
    }

    /// A valid blob with random bytes overwritten and the checksum recomputed
    /// (what a deliberate attacker produces) never panics the parser, and
    /// whatever it accepts still has every image inside the blob.
    #[test]
    fn resealed_mutations_never_escape_the_blob(
        settings in settings_strategy(),
        guests in guests_strategy(4),
        edits in proptest::collection::vec((any::<Index>(), any::<u8>()), 1..8),
    ) {
        let mut bytes = encode(settings, &guests);
        let len = bytes.len();
        for (at, value) in edits {
            bytes[at.index(len)] = value;
        }
        if reseal(&mut bytes).is_ok() {
            let _ = parse_and_check(&bytes);
        } else {
            prop_assert!(BootBlob::parse(&bytes).is_err());
        }
    }

    /// `reseal` never panics, succeeds exactly when the buffer holds a header
    /// and `total_len` lies in `[HEADER_LEN, len]`, changes only the checksum
    /// field, and afterwards the parser never reports a checksum mismatch.
    /// On an untouched blob it changes nothing.
    #[test]
    fn reseal_only_rewrites_the_checksum(bytes in plausible_or_random(), settings in settings_strategy(), guests in guests_strategy(2)) {
        let mut resealed = bytes.clone();
        let result = reseal(&mut resealed);
        let total = bytes.get(16..24).map(|raw| u64::from_le_bytes(raw.try_into().unwrap()));
        let fits = matches!(total, Some(total) if total >= HEADER_LEN as u64 && total <= bytes.len() as u64);
        prop_assert_eq!(result.is_ok(), fits);
        if let Err(error) = result {
            prop_assert!(!error.to_string().is_empty());
            prop_assert_eq!(&resealed, &bytes);
        } else {
            prop_assert_eq!(&resealed[..24], &bytes[..24]);
            prop_assert_eq!(&resealed[32..], &bytes[32..]);
            let checksum_refused = matches!(BootBlob::parse(&resealed), Err(BlobError::ChecksumMismatch { .. }));
            prop_assert!(!checksum_refused);
        }

        let valid = encode(settings, &guests);
        let mut again = valid.clone();
        prop_assert_eq!(reseal(&mut again), Ok(()));
        prop_assert_eq!(again, valid);
    }

    /// Every 32-bit `flags` word decodes without panicking; what decodes
    /// encodes back to the same word (no bit is silently dropped), and what is
    /// refused is refused for an unknown entry rule only.
    #[test]
    fn flags_decode_and_encode_back(flags in any::<u32>()) {
        match BlobSettings::from_flags(flags) {
            Ok(settings) => prop_assert_eq!(settings.to_flags(), flags),
            Err(error) => {
                prop_assert_eq!(error, BlobError::UnsupportedFlags { flags });
                let rule = ((flags >> 9) & 0x7F) as u8;
                prop_assert!(rule != 0 && EntryRule::from_id(rule).is_none());
            }
        }
    }

    /// Encoding any settings value never panics (the runner builds them from
    /// the command line; this found `TraceSelection::Guest(255)` overflowing),
    /// and decodes to the same settings except for the documented saturation
    /// of guest indices that no blob can hold and the 7-bit entry-rule field.
    #[test]
    fn any_settings_encode(
        log_level in any::<u8>(),
        caps_report in any::<bool>(),
        trace in prop_oneof![Just(TraceSelection::None), Just(TraceSelection::All), edge_u8().prop_map(TraceSelection::Guest)],
        step in prop_oneof![Just(StepSelection::None), edge_u8().prop_map(StepSelection::Guest)],
        break_entry in any::<u8>(),
        valid in settings_strategy(),
    ) {
        // `native_workload` lives in the header's `features` word, not in `flags`.
        let settings = BlobSettings { log_level, caps_report, trace, step, break_entry, native_workload: false };
        let rule = break_entry & 0x7F;
        match BlobSettings::from_flags(settings.to_flags()) {
            Err(error) => {
                prop_assert_eq!(error, BlobError::UnsupportedFlags { flags: settings.to_flags() });
                prop_assert!(rule != 0 && EntryRule::from_id(rule).is_none());
            }
            Ok(decoded) => {
                // Indices past the one-byte encodings saturate (254 and 255 trace
                // everyone, 255 steps guest 254); all others come back unchanged.
                let trace = match trace {
                    TraceSelection::Guest(index) if index >= 254 => TraceSelection::All,
                    other => other,
                };
                let step = match step {
                    StepSelection::Guest(index) => StepSelection::Guest(index.min(254)),
                    other => other,
                };
                prop_assert_eq!(
                    decoded,
                    BlobSettings { log_level, caps_report, trace, step, break_entry: rule, native_workload: false }
                );
            }
        }
        prop_assert_eq!(BlobSettings::from_flags(valid.to_flags()), Ok(valid));
    }
}

/// Any byte, with the top values (where `n + 1` overflows) drawn often.
fn edge_u8() -> impl Strategy<Value = u8> {
    prop_oneof![any::<u8>(), 250u8..=255]
}

/// Random bytes or plausible blobs, for [`reseal_only_rewrites_the_checksum`].
fn plausible_or_random() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![proptest::collection::vec(any::<u8>(), 0..200), plausible_blob_strategy()]
}
