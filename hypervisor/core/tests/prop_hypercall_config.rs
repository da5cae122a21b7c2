//! Property tests of the hypercall argument checks ([`hypervisor_core::hypercall`],
//! [`hypervisor_core::guest_memory`]) and the guest-description parsers
//! ([`hypervisor_core::config`]).
//!
//! Hypercall arguments are raw guest registers: `check_range` and
//! `GuestRamLayout::check_range` / `host_chunks` are all that stands between
//! a `print(gpa, len)` and the hypervisor reading host memory that is not the
//! guest's. The config parsers take the runner's command-line words. These
//! properties check that the range checks accept exactly the ranges inside
//! RAM (never one that wraps), that the chunks the kernel copies cover exactly
//! the requested range inside the guest's own blocks, that every call number
//! decodes, and that every string parses or is refused without panicking, with
//! printed values parsing back to themselves.

mod prop_common;

use hypervisor_core::config::{
    ConfigError, ExpectedOutcome, GuestConfig, GuestEnd, GuestName, NameError, ParseError, StartMode, Verdict,
    MAX_NAME_LEN,
};
use hypervisor_core::guest_memory::{
    round_up_ram_size, GuestMemoryError, GuestRamLayout, BLOCK_SIZE, DEFAULT_RAM_BYTES, MAX_BLOCKS, MAX_RAM_BYTES,
};
use hypervisor_core::hypercall::{check_range, Hypercall, HypercallError, InfoKey};
use proptest::prelude::*;

/// A u64 biased to the edges: small, a few blocks, around 2^32, near `u64::MAX`.
fn edge_u64() -> impl Strategy<Value = u64> {
    prop_oneof![
        0u64..0x1000,
        0u64..(4 * BLOCK_SIZE),
        (0u64..0x1000).prop_map(|d| (1u64 << 32).wrapping_sub(0x800).wrapping_add(d)),
        (0u64..0x1000).prop_map(|below| u64::MAX - below),
        any::<u64>(),
    ]
}

fn start_mode_strategy() -> impl Strategy<Value = StartMode> {
    proptest::sample::select(StartMode::ALL.to_vec())
}

fn outcome_strategy() -> impl Strategy<Value = ExpectedOutcome> {
    prop_oneof![
        any::<u32>().prop_map(ExpectedOutcome::Exit),
        Just(ExpectedOutcome::Crash),
        Just(ExpectedOutcome::OverBudget)
    ]
}

proptest! {
    #![proptest_config(prop_common::config(1024))]

    /// `check_range` accepts `[gpa, gpa + len)` exactly when the end does not
    /// overflow and lies at or below the RAM size, and then returns `gpa`: no
    /// wrapping range (which would look small) and no range past RAM gets
    /// through.
    #[test]
    fn check_range_accepts_exactly_the_ranges_inside_ram(gpa in edge_u64(), len in edge_u64(), ram in edge_u64()) {
        let inside = matches!(gpa.checked_add(len), Some(end) if end <= ram);
        let result = check_range(gpa, len, ram);
        prop_assert_eq!(result.is_ok(), inside);
        match result {
            Ok(start) => prop_assert_eq!(start, gpa),
            Err(error) => prop_assert_eq!(error, HypercallError::BadAddress),
        }
    }

    /// Every range that lies inside RAM is accepted, including empty ones at
    /// the very end: the check never refuses a legitimate buffer.
    #[test]
    fn check_range_accepts_every_range_inside_ram(ram in edge_u64(), start in any::<proptest::sample::Index>(), size in any::<proptest::sample::Index>()) {
        // Index picks in [0, ram] without overflow for ram = u64::MAX.
        let pick = |index: proptest::sample::Index, bound: u64| -> u64 {
            match usize::try_from(bound).ok().and_then(|b| b.checked_add(1)) {
                Some(n) => index.index(n) as u64,
                None => (index.index(usize::MAX) as u64).min(bound),
            }
        };
        let gpa = pick(start, ram);
        let len = pick(size, ram - gpa);
        prop_assert_eq!(check_range(gpa, len, ram), Ok(gpa));
    }

    /// Every call number, info key and result register decodes without
    /// panicking; the known ones round-trip and the error codes are negative
    /// and decode only from themselves.
    #[test]
    fn call_numbers_and_results_decode(number in edge_u64()) {
        if let Some(call) = Hypercall::from_number(number) {
            prop_assert_eq!(call as u64, number);
            prop_assert!(!call.name().is_empty());
        } else {
            prop_assert!(number > 4);
        }
        if let Some(key) = InfoKey::from_number(number) {
            prop_assert_eq!(key as u64, number);
        } else {
            prop_assert!(number > 5);
        }
        if let Some(error) = HypercallError::from_result(number) {
            prop_assert_eq!(error.code(), number);
            prop_assert!((number as i64) < 0);
            prop_assert!(!error.describe().is_empty());
        }
    }

    /// `GuestRamLayout::check_range` agrees with `hypercall::check_range` on
    /// the layout's RAM size, and `host_chunks` of an accepted range yields
    /// non-empty pieces that cover exactly the range, in order, each inside
    /// one run of the guest's own host blocks at the address `translate`
    /// gives: the kernel's copy for `print` can only touch the guest's RAM.
    #[test]
    fn host_chunks_cover_exactly_the_guest_range(
        block_picks in proptest::collection::vec((0u64..64, any::<bool>()), 1..12),
        gpa in edge_u64(),
        len in edge_u64(),
        inside in any::<(proptest::sample::Index, proptest::sample::Index)>(),
    ) {
        // Blocks that are sometimes host-contiguous, sometimes not.
        let mut blocks = Vec::new();
        for (i, (pick, follow)) in block_picks.iter().enumerate() {
            let hpa = if *follow && i > 0 { blocks[i - 1] + BLOCK_SIZE } else { (pick * 7 + 100) * BLOCK_SIZE };
            blocks.push(hpa);
        }
        let layout = GuestRamLayout::new(&blocks).expect("aligned blocks below 2^52");
        let ram = layout.ram_size();
        prop_assert_eq!(ram, blocks.len() as u64 * BLOCK_SIZE);
        // Half the cases use a range known to be inside RAM.
        let (gpa, len) = if inside.0.index(2) == 0 {
            let gpa = inside.0.index(ram as usize + 1) as u64;
            (gpa, inside.1.index((ram - gpa) as usize + 1) as u64)
        } else {
            (gpa, len)
        };
        let checked = layout.check_range(gpa, len);
        prop_assert_eq!(checked.is_ok(), check_range(gpa, len, ram).is_ok());
        match checked {
            Err(GuestMemoryError::Overflow { .. }) => prop_assert!(gpa.checked_add(len).is_none()),
            Err(GuestMemoryError::OutOfRange { ram_size, .. }) => prop_assert_eq!(ram_size, ram),
            Err(other) => prop_assert!(false, "unexpected {:?}", other),
            Ok(()) => {}
        }
        match layout.host_chunks(gpa, len) {
            Err(error) => {
                prop_assert!(checked.is_err());
                prop_assert!(!error.to_string().is_empty());
            }
            Ok(chunks) => {
                let mut covered = 0u64;
                for chunk in chunks {
                    prop_assert!(chunk.len > 0);
                    prop_assert_eq!(chunk.offset, covered);
                    let chunk_gpa = gpa + chunk.offset;
                    prop_assert_eq!(Some(chunk.hpa), layout.translate(chunk_gpa));
                    // Every byte of the chunk is backed where translate says.
                    let last = chunk_gpa + chunk.len - 1;
                    prop_assert_eq!(layout.translate(last), Some(chunk.hpa + chunk.len - 1));
                    covered += chunk.len;
                }
                prop_assert_eq!(covered, len);
            }
        }
        prop_assert_eq!(layout.translate(ram), None);
    }

    /// Any string parses as a guest name or is refused with the documented
    /// reason (empty, too long, or the first disallowed byte); a name prints as
    /// itself and parses back. Names prefix console lines, so one that slipped
    /// a space, bracket or control byte through could forge another guest's
    /// output.
    #[test]
    fn guest_names_parse_or_are_refused(text in prop_oneof![any::<String>(), "[!-~]{0,40}", "[a-z\\[\\] \\t]{0,8}"]) {
        let bytes = text.as_bytes();
        match text.parse::<GuestName>() {
            Ok(name) => {
                prop_assert!(!bytes.is_empty() && bytes.len() <= MAX_NAME_LEN);
                prop_assert!(bytes.iter().all(|&b| GuestName::is_allowed(b) && b != b' ' && b != b'[' && b != b']'));
                prop_assert_eq!(name.as_str(), text.as_str());
                prop_assert_eq!(name.to_string(), text.clone());
                prop_assert_eq!(name.to_string().parse::<GuestName>(), Ok(name));
            }
            Err(error) => {
                let expected = if bytes.is_empty() {
                    NameError::Empty
                } else if bytes.len() > MAX_NAME_LEN {
                    NameError::TooLong { len: bytes.len() }
                } else {
                    let index = bytes.iter().position(|&b| !GuestName::is_allowed(b)).expect("some byte is refused");
                    NameError::BadByte { index, byte: bytes[index] }
                };
                prop_assert_eq!(error, expected);
                prop_assert!(!error.to_string().is_empty());
            }
        }
    }

    /// Any string parses as an expected outcome or a start mode, or is refused
    /// with a typed error, never a panic; every outcome and mode prints as a
    /// word that parses back to itself, and `exit:` accepts hex as well.
    #[test]
    fn outcomes_and_modes_parse_back(
        text in prop_oneof![any::<String>(), "exit:[0-9a-fA-FxX+-]{0,12}", "(crash|over-budget|real|protected|long|exit:)[a-z0-9]{0,3}"],
        outcome in outcome_strategy(),
        mode in start_mode_strategy(),
    ) {
        match text.parse::<ExpectedOutcome>() {
            Ok(ExpectedOutcome::Crash) => prop_assert_eq!(text.as_str(), "crash"),
            Ok(ExpectedOutcome::OverBudget) => prop_assert_eq!(text.as_str(), "over-budget"),
            Ok(ExpectedOutcome::Exit(_)) => prop_assert!(text.starts_with("exit:")),
            Err(error) => {
                prop_assert!(matches!(error, ParseError::UnknownOutcome | ParseError::BadExitStatus));
                prop_assert_eq!(error == ParseError::BadExitStatus, text.starts_with("exit:"));
                prop_assert!(!error.to_string().is_empty());
            }
        }
        match text.parse::<StartMode>() {
            Ok(parsed) => prop_assert_eq!(parsed.name(), text.as_str()),
            Err(error) => prop_assert_eq!(error, ParseError::UnknownStartMode),
        }
        prop_assert_eq!(outcome.to_string().parse::<ExpectedOutcome>(), Ok(outcome));
        if let ExpectedOutcome::Exit(status) = outcome {
            let hex = format!("exit:{status:#x}");
            prop_assert_eq!(hex.parse::<ExpectedOutcome>(), Ok(outcome));
        }
        prop_assert_eq!(mode.to_string().parse::<StartMode>(), Ok(mode));
    }

    /// `GuestConfig::validate` accepts exactly the documented configurations
    /// (RAM a positive multiple of 2 MiB up to 1 GiB, a time slice of at least
    /// one tick), `set_ram_bytes` rounds any request up without overflowing,
    /// and judging any end against any expectation passes exactly when they
    /// match.
    #[test]
    fn configs_validate_as_documented(
        ram_bytes in prop_oneof![edge_u64(), (0u64..=MAX_BLOCKS as u64 + 2).prop_map(|blocks| blocks * BLOCK_SIZE)],
        time_slice_ticks in prop_oneof![Just(0u64), any::<u64>()],
        request in edge_u64(),
        outcome in outcome_strategy(),
        end in prop_oneof![any::<u32>().prop_map(GuestEnd::Exited), Just(GuestEnd::Crashed), Just(GuestEnd::OverBudget)],
    ) {
        let mut config = GuestConfig::new(GuestName::new("g").unwrap());
        prop_assert_eq!(config.validate(), Ok(()));
        config.ram_bytes = ram_bytes;
        config.time_slice_ticks = time_slice_ticks;
        let expected = if ram_bytes == 0 || ram_bytes % BLOCK_SIZE != 0 {
            Err(ConfigError::RamNotBlockMultiple { ram_bytes })
        } else if ram_bytes > MAX_RAM_BYTES {
            Err(ConfigError::RamTooLarge { ram_bytes })
        } else if time_slice_ticks == 0 {
            Err(ConfigError::ZeroTimeSlice)
        } else {
            Ok(())
        };
        let result = config.validate();
        prop_assert_eq!(result, expected);
        if let Err(error) = result {
            prop_assert!(!error.to_string().is_empty());
        }

        config.set_ram_bytes(request);
        let rounded = round_up_ram_size(request);
        prop_assert_eq!(config.ram_bytes, rounded);
        prop_assert_eq!(rounded % BLOCK_SIZE, 0);
        if request == 0 {
            prop_assert_eq!(rounded, DEFAULT_RAM_BYTES);
        } else if request <= u64::MAX - (BLOCK_SIZE - 1) {
            prop_assert!(rounded >= request && rounded - request < BLOCK_SIZE);
        }

        let verdict = Verdict::judge(outcome, end);
        let matches = match (outcome, end) {
            (ExpectedOutcome::Exit(expected), GuestEnd::Exited(got)) => expected == got,
            (ExpectedOutcome::Crash, GuestEnd::Crashed) => true,
            (ExpectedOutcome::OverBudget, GuestEnd::OverBudget) => true,
            _ => false,
        };
        prop_assert_eq!(verdict.passed(), matches);
        prop_assert_eq!(outcome.matches(end), matches);
        prop_assert_eq!(verdict.to_string() == "pass", matches);
    }
}
