//! Property tests of the ELF64 loader checks ([`hypervisor_core::elf`]).
//!
//! Guest images come from users (any file on the runner's command line) and
//! the kernel loads them by copying [`ElfImage::segment_data`] into guest RAM
//! at each segment's address. A segment whose file range leaves the image, or
//! whose memory range overflows or overlaps another, would make that copy read
//! host memory or write outside the guest. These properties feed the parser
//! random bytes, random program headers with extreme values and mutated valid
//! images, and check that it never panics and that everything it accepts keeps
//! the invariants its module documentation lists.

mod prop_common;

use hypervisor_core::elf::{
    ElfError, ElfImage, LoadSegment, SegmentFlags, ELF64_HEADER_LEN, MAX_PROGRAM_HEADERS, PROGRAM_HEADER_LEN,
};
use proptest::prelude::*;
use proptest::sample::Index;

const PT_LOAD: u32 = 1;
const PT_INTERP: u32 = 3;
const RX: u32 = SegmentFlags::READ | SegmentFlags::EXECUTE;

/// The fields of one program header the test writes.
#[derive(Debug, Clone, Copy)]
struct Phdr {
    kind: u32,
    flags: u32,
    offset: u64,
    vaddr: u64,
    file_size: u64,
    mem_size: u64,
}

/// Builds an ELF64 x86-64 `ET_EXEC` image: header, program headers right
/// after it, then `tail` (segment bytes the headers point into).
fn build_elf(entry: u64, phdrs: &[Phdr], tail: &[u8]) -> Vec<u8> {
    let mut image = vec![0u8; ELF64_HEADER_LEN];
    image[0..4].copy_from_slice(b"\x7fELF");
    image[4] = 2; // ELFCLASS64
    image[5] = 1; // little-endian
    image[6] = 1; // EV_CURRENT
    image[16..18].copy_from_slice(&2u16.to_le_bytes()); // ET_EXEC
    image[18..20].copy_from_slice(&62u16.to_le_bytes()); // EM_X86_64
    image[20..24].copy_from_slice(&1u32.to_le_bytes());
    image[24..32].copy_from_slice(&entry.to_le_bytes());
    image[32..40].copy_from_slice(&(ELF64_HEADER_LEN as u64).to_le_bytes());
    image[52..54].copy_from_slice(&(ELF64_HEADER_LEN as u16).to_le_bytes());
    image[54..56].copy_from_slice(&(PROGRAM_HEADER_LEN as u16).to_le_bytes());
    image[56..58].copy_from_slice(&(phdrs.len() as u16).to_le_bytes());
    for phdr in phdrs {
        let mut raw = [0u8; PROGRAM_HEADER_LEN];
        raw[0..4].copy_from_slice(&phdr.kind.to_le_bytes());
        raw[4..8].copy_from_slice(&phdr.flags.to_le_bytes());
        raw[8..16].copy_from_slice(&phdr.offset.to_le_bytes());
        raw[16..24].copy_from_slice(&phdr.vaddr.to_le_bytes());
        raw[24..32].copy_from_slice(&phdr.vaddr.to_le_bytes());
        raw[32..40].copy_from_slice(&phdr.file_size.to_le_bytes());
        raw[40..48].copy_from_slice(&phdr.mem_size.to_le_bytes());
        raw[48..56].copy_from_slice(&0x1000u64.to_le_bytes());
        image.extend_from_slice(&raw);
    }
    image.extend_from_slice(tail);
    image
}

/// Everything an accepted image promises the loader (module docs of
/// `hypervisor_core::elf`), checked against the bytes it came from.
fn check_accepted(bytes: &[u8], image: &ElfImage<'_>) {
    let segments: Vec<LoadSegment> = image.load_segments().collect();
    assert!(!segments.is_empty(), "an accepted image has something to load");
    assert!(segments.len() <= MAX_PROGRAM_HEADERS);
    let base = bytes.as_ptr() as usize;
    for segment in &segments {
        assert!(segment.mem_size > 0);
        assert!(segment.file_size <= segment.mem_size);
        let end = segment.gpa.checked_add(segment.mem_size).expect("segment end does not overflow");
        assert_eq!(segment.end(), end);
        assert_eq!(segment.zero_fill_len(), segment.mem_size - segment.file_size);
        let file_end = segment.file_offset.checked_add(segment.file_size).expect("file range does not overflow");
        assert!(file_end <= bytes.len() as u64, "segment {} file bytes leave the image", segment.index);
        let data = image.segment_data(segment);
        assert_eq!(data.len() as u64, segment.file_size);
        if !data.is_empty() {
            assert_eq!(data.as_ptr() as usize - base, segment.file_offset as usize, "data is the image's own bytes");
        }
        assert!(segment.contains(segment.gpa) && !segment.contains(end));
    }
    for (i, first) in segments.iter().enumerate() {
        for second in &segments[i + 1..] {
            assert!(
                first.end() <= second.gpa || second.end() <= first.gpa,
                "segments {} and {} overlap",
                first.index,
                second.index
            );
        }
    }
    let entry = image.entry();
    assert!(segments.iter().any(|s| s.flags.executable() && s.contains(entry)), "entry {entry:#x} not executable");
    let (low, high) = image.extent();
    assert_eq!(low, segments.iter().map(|s| s.gpa).min().unwrap());
    assert_eq!(high, segments.iter().map(|s| s.end()).max().unwrap());
    assert!(low < high);
    assert_eq!(image.check_fits(high), Ok(()));
    assert!(matches!(image.check_fits(high - 1), Err(ElfError::SegmentOutsideRam { .. })));
}

fn parse_and_check(bytes: &[u8]) -> Result<(), ElfError> {
    match ElfImage::parse(bytes) {
        Ok(image) => {
            check_accepted(bytes, &image);
            Ok(())
        }
        Err(error) => {
            assert!(!error.to_string().is_empty());
            Err(error)
        }
    }
}

/// A u64 drawn to hit the edges: mostly small values (inside the image, so
/// headers get past the file-range check), values near `u64::MAX`, huge
/// round values, and anything.
fn edge_u64() -> impl Strategy<Value = u64> {
    prop_oneof![
        6 => 0u64..0x200,
        1 => (0u64..0x200).prop_map(|below| u64::MAX - below),
        1 => (0u64..0x40).prop_map(|k| k << 58),
        1 => any::<u64>(),
    ]
}

/// A program header that is either entirely random (edge-biased fields, any
/// type) or a plausible `PT_LOAD` (file bytes inside a small image, memory
/// size at least the file size) at an edge-biased address, so that whole
/// tables get past the per-segment checks and exercise overlap and entry.
fn raw_phdr_strategy() -> impl Strategy<Value = Phdr> {
    let plausible = (prop_oneof![Just(RX), any::<u32>()], 0u64..0x100, edge_u64(), 0u64..0x40, edge_u64()).prop_map(
        |(flags, offset, vaddr, file_size, extra)| Phdr {
            kind: PT_LOAD,
            flags,
            offset,
            vaddr,
            file_size,
            mem_size: file_size.saturating_add(extra),
        },
    );
    prop_oneof![plausible, random_phdr_strategy()]
}

fn random_phdr_strategy() -> impl Strategy<Value = Phdr> {
    (
        prop_oneof![4 => Just(PT_LOAD), 1 => Just(PT_INTERP), 1 => any::<u32>()],
        prop_oneof![Just(RX), any::<u32>()],
        edge_u64(),
        edge_u64(),
        edge_u64(),
        edge_u64(),
    )
        .prop_map(|(kind, flags, offset, vaddr, file_size, mem_size)| Phdr {
            kind,
            flags,
            offset,
            vaddr,
            file_size,
            mem_size,
        })
}

/// A valid image: 1 to 4 non-overlapping `PT_LOAD` segments at increasing
/// page-aligned addresses (with gaps, `.bss` tails and empty file parts), the
/// first executable and holding the entry point, plus a non-load header now
/// and then. Returns the image and the segments it must parse to.
fn valid_image_strategy() -> impl Strategy<Value = (Vec<u8>, Vec<LoadSegment>)> {
    let segment = (0u64..48, 0u64..0x3000, 0u64..4, any::<u32>());
    (proptest::collection::vec(segment, 1..=4), 0u64..0x100, any::<Index>(), any::<bool>(), any::<u8>()).prop_map(
        |(specs, first_page, entry_pick, with_note, fill)| {
            let header_count = specs.len() + usize::from(with_note);
            let mut offset = (ELF64_HEADER_LEN + header_count * PROGRAM_HEADER_LEN) as u64;
            let mut gpa = first_page << 12;
            let mut phdrs = Vec::new();
            let mut expected = Vec::new();
            for (i, &(file_size, bss, gap_pages, flags)) in specs.iter().enumerate() {
                let flags = if i == 0 { flags | SegmentFlags::EXECUTE } else { flags };
                let mem_size = (file_size + bss).max(1);
                phdrs.push(Phdr { kind: PT_LOAD, flags, offset, vaddr: gpa, file_size, mem_size });
                expected.push(LoadSegment {
                    index: i,
                    file_offset: offset,
                    file_size,
                    gpa,
                    mem_size,
                    flags: SegmentFlags(flags),
                });
                offset += file_size;
                gpa = (gpa + mem_size).next_multiple_of(0x1000) + (gap_pages << 12);
            }
            if with_note {
                phdrs.push(Phdr { kind: 4, flags: 0, offset: 0, vaddr: 0, file_size: 0, mem_size: 0 });
            }
            let first = expected[0];
            let entry = first.gpa + entry_pick.index(first.mem_size as usize) as u64;
            let tail_len = (offset as usize) - ELF64_HEADER_LEN - header_count * PROGRAM_HEADER_LEN;
            let tail: Vec<u8> = (0..tail_len).map(|i| fill.wrapping_add(i as u8)).collect();
            (build_elf(entry, &phdrs, &tail), expected)
        },
    )
}

proptest! {
    #![proptest_config(prop_common::config(1024))]

    /// Arbitrary bytes never panic the parser (and random bytes are refused).
    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
        let _ = parse_and_check(&bytes);
    }

    /// A valid header followed by 1 to 6 program headers with extreme offsets,
    /// sizes and addresses (near 0, near `u64::MAX`, random) and a random
    /// entry point: the parser never panics or overflows, and anything it
    /// accepts has every segment's file bytes inside the image, no address
    /// range that wraps, no two segments overlapping, and the entry point in an
    /// executable segment.
    #[test]
    fn extreme_program_headers_never_escape(
        phdrs in proptest::collection::vec(raw_phdr_strategy(), 0..=6),
        entry in edge_u64(),
        entry_in_segment in (any::<bool>(), any::<Index>(), 0u64..0x100),
        tail in proptest::collection::vec(any::<u8>(), 0..128),
    ) {
        // Half the time aim the entry point at (or just past) a segment's start,
        // so images get past the entry check and the overlap check is reached.
        let (aim, which, delta) = entry_in_segment;
        let entry = match phdrs.len() {
            0 => entry,
            n if aim => phdrs[which.index(n)].vaddr.wrapping_add(delta),
            _ => entry,
        };
        let _ = parse_and_check(&build_elf(entry, &phdrs, &tail));
    }

    /// A randomly generated valid image parses to exactly the segments it was
    /// built from, in file order, with its entry point; `check_fits` accepts
    /// the image's own extent and refuses one byte less.
    #[test]
    fn valid_images_parse_to_their_segments((bytes, expected) in valid_image_strategy()) {
        let image = ElfImage::parse(&bytes).expect("a valid image parses");
        check_accepted(&bytes, &image);
        let segments: Vec<LoadSegment> = image.load_segments().collect();
        prop_assert_eq!(segments, expected);
    }

    /// Overwriting random bytes of a valid image (anywhere, or concentrated on
    /// the header and program headers) never panics, and an image that is
    /// still accepted still keeps every invariant: a damaged or hostile file
    /// cannot slip a bad segment past the checks.
    #[test]
    fn mutated_valid_images_keep_the_invariants(
        (bytes, _expected) in valid_image_strategy(),
        edits in proptest::collection::vec((any::<Index>(), any::<bool>(), any::<u8>()), 1..10),
    ) {
        let mut bytes = bytes;
        let headers_end = bytes.len().min(ELF64_HEADER_LEN + 5 * PROGRAM_HEADER_LEN);
        for (at, in_headers, value) in edits {
            let limit = if in_headers { headers_end } else { bytes.len() };
            let at = at.index(limit);
            bytes[at] = value;
        }
        let _ = parse_and_check(&bytes);
    }

    /// Cutting a valid image short never panics; an image cut before the end
    /// of its program headers or of a segment's file bytes is refused.
    #[test]
    fn truncated_valid_images_are_handled((bytes, expected) in valid_image_strategy(), cut in any::<Index>()) {
        let len = cut.index(bytes.len());
        let result = parse_and_check(&bytes[..len]);
        let needed = expected.iter().map(|s| s.file_offset + s.file_size).max().unwrap_or(0);
        if (len as u64) < needed || len < ELF64_HEADER_LEN {
            prop_assert!(result.is_err());
        }
    }

    /// `segment_data` given any segment, also one that does not come from
    /// this image (all its fields are public), never panics and returns
    /// either nothing or exactly the `file_size` image bytes at `file_offset`:
    /// it can never hand the loader bytes from outside the image.
    #[test]
    fn segment_data_never_reads_outside_the_image(
        (bytes, _expected) in valid_image_strategy(),
        file_offset in edge_u64(),
        file_size in edge_u64(),
        gpa in edge_u64(),
        mem_size in edge_u64(),
    ) {
        let image = ElfImage::parse(&bytes).expect("a valid image parses");
        let foreign = LoadSegment { index: 0, file_offset, file_size, gpa, mem_size, flags: SegmentFlags(RX) };
        let data = image.segment_data(&foreign);
        if !data.is_empty() {
            prop_assert_eq!(data.len() as u64, file_size);
            let start = data.as_ptr() as usize - bytes.as_ptr() as usize;
            prop_assert_eq!(start as u64, file_offset);
            prop_assert!(start + data.len() <= bytes.len());
        } else if let Some(end) = file_offset.checked_add(file_size) {
            prop_assert!(file_size == 0 || end > bytes.len() as u64);
        }
    }

    /// `check_fits` with any limit never panics and accepts exactly when every
    /// segment ends at or below the limit: the loader's last guard before it
    /// writes guest RAM.
    #[test]
    fn check_fits_agrees_with_the_segments((bytes, expected) in valid_image_strategy(), limit in edge_u64()) {
        let image = ElfImage::parse(&bytes).expect("a valid image parses");
        let fits = expected.iter().all(|s| s.end() <= limit);
        let result = image.check_fits(limit);
        prop_assert_eq!(result.is_ok(), fits);
        if let Err(error) = result {
            prop_assert!(!error.to_string().is_empty());
        }
    }
}
