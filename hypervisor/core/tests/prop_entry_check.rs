//! Property tests of the software VM-entry checker ([`hypervisor_core::entry_check`])
//! and the capability decoding it relies on ([`hypervisor_core::caps`]).
//!
//! The kernel runs the checker on the current VMCS, whose guest-state fields
//! hold whatever the guest last left in its registers and segments, and
//! prints what it finds; the capability MSRs come from whatever processor (or
//! emulator) the kernel boots on. A panic in either stops the hypervisor
//! while it is trying to explain a failure. `--break-entry` hands a
//! user-typed rule name to [`EntryRule::parse`].
//!
//! These properties feed random VMCS images (every field random, zero or
//! small) and random or permissive capability MSRs to the checker and check
//! that it never panics, that a reported violation prints, and that rule
//! names and ids parse back to their rules.

mod prop_common;

use hypervisor_core::caps::{RawVmxMsrs, VmxCapabilities};
use hypervisor_core::config::StartMode;
use hypervisor_core::controls::{EntryControls, ExitControls, PrimaryControls, SecondaryControls};
use hypervisor_core::entry_check::{check, EntryRule, VmcsImage};
use hypervisor_core::start_state::{start_state, Segment};
use hypervisor_core::vmcs_field::VmcsField;
use proptest::prelude::*;

/// A field value: mostly 0 (so images get past the early rules and reach the
/// guest-state checks), often small (selectors, access rights, flags), else
/// anything.
fn field_value() -> impl Strategy<Value = u64> {
    prop_oneof![6 => Just(0u64), 2 => 0u64..0x10000, 1 => any::<u32>().prop_map(u64::from), 1 => any::<u64>()]
}

/// Capability MSRs: entirely random, or permissive (every control allowed
/// either way, no fixed CR bits) so that random images get past the control
/// checks into the host and guest checks.
fn raw_msrs_strategy() -> impl Strategy<Value = RawVmxMsrs> {
    let permissive = any::<u64>().prop_map(|basic| RawVmxMsrs {
        feature_control: 0b101,
        basic,
        pinbased: 0xFFFF_FFFF_0000_0000,
        procbased: 0xFFFF_FFFF_0000_0000,
        procbased2: 0xFFFF_FFFF_0000_0000,
        exit: 0xFFFF_FFFF_0000_0000,
        entry: 0xFFFF_FFFF_0000_0000,
        misc: 0,
        cr0_fixed0: 0,
        cr0_fixed1: u64::MAX,
        cr4_fixed0: 0,
        cr4_fixed1: u64::MAX,
        ept_vpid_cap: u64::MAX,
    });
    let random = proptest::collection::vec(any::<u64>(), 13).prop_map(|v| RawVmxMsrs {
        feature_control: v[0],
        basic: v[1],
        pinbased: v[2],
        procbased: v[3],
        procbased2: v[4],
        exit: v[5],
        entry: v[6],
        misc: v[7],
        cr0_fixed0: v[8],
        cr0_fixed1: v[9],
        cr4_fixed0: v[10],
        cr4_fixed1: v[11],
        ept_vpid_cap: v[12],
    });
    prop_oneof![3 => permissive, 1 => random]
}

/// Bochs' VMX capability MSRs (as the kernel reads them on the emulator the
/// project runs on).
fn bochs_msrs() -> RawVmxMsrs {
    RawVmxMsrs {
        feature_control: 0x5,
        basic: 0x00d8_1000_0000_0004,
        pinbased: 0x0000_007f_0000_0016,
        procbased: 0xfff9_fffe_0400_6172,
        procbased2: 0x0297_7fff << 32,
        exit: 0x01ff_ffff_0003_6dfb,
        entry: 0x0003_ffff_0000_11fb,
        misc: 0x6004_01e0,
        cr0_fixed0: 0x8000_0021,
        cr0_fixed1: 0xffff_ffff,
        cr4_fixed0: 0x2000,
        cr4_fixed1: 0x0037_67ff,
        ept_vpid_cap: 0x0000_0f01_0633_4141,
    }
}

/// A long-mode guest's VMCS that passes every modelled rule on `caps`, so
/// that random damage to a few fields reaches every group of checks.
fn passing_image(caps: &VmxCapabilities) -> VmcsImage {
    let start = start_state(StartMode::Long, 0x40_0000, 0x7F_F000, 0x1000, caps.cr0, caps.cr4, true)
        .expect("long mode starts on Bochs");
    // Each control word: the required bits plus the ones this image relies on.
    let control =
        |wanted: u32, allowed: hypervisor_core::caps::AllowedBits| (wanted | allowed.allowed0) & allowed.allowed1;
    VmcsImage {
        pin: control(0, caps.pin_based),
        primary: control(
            (PrimaryControls::USE_MSR_BITMAPS | PrimaryControls::ACTIVATE_SECONDARY_CONTROLS).bits(),
            caps.primary,
        ),
        secondary: control(
            (SecondaryControls::ENABLE_EPT | SecondaryControls::UNRESTRICTED_GUEST).bits(),
            caps.secondary,
        ),
        exit: control(
            (ExitControls::HOST_ADDRESS_SPACE_SIZE | ExitControls::LOAD_IA32_EFER | ExitControls::SAVE_IA32_EFER)
                .bits(),
            caps.exit,
        ),
        entry: control((EntryControls::LOAD_IA32_EFER | EntryControls::IA32E_MODE_GUEST).bits(), caps.entry),
        eptp: 0x0020_0000 | (3 << 3) | 6,
        vpid: 1,
        msr_bitmap: 0x0030_0000,
        host_cr0: 0x8001_0033,
        host_cr3: 0x0010_0000,
        host_cr4: 0x2020,
        host_selectors: [0x10, 0x08, 0x10, 0x10, 0, 0, 0x18],
        host_efer: 0xD00,
        host_rip: 0x20_0000,
        host_rsp: 0x30_0000,
        cr0: start.cr0,
        cr3: start.cr3,
        cr4: start.cr4,
        dr7: 0x400,
        efer: start.efer,
        pat: 0x0007_0406_0007_0406,
        rflags: 2,
        rip: start.rip,
        cs: start.cs,
        ss: start.data,
        ds: start.data,
        es: start.data,
        fs: start.data,
        gs: start.data,
        tr: start.tr,
        ldtr: Segment::UNUSABLE,
        gdtr: start.gdtr,
        idtr: start.idtr,
        link_pointer: u64::MAX,
        ..VmcsImage::default()
    }
}

/// Overwrites one field of `image`, chosen by `which`, with `value` (cut to
/// the field's width): the guest-state fields a guest influences most, plus
/// the event-injection and control fields.
fn damage(image: &mut VmcsImage, which: usize, value: u64) {
    let segment = |segment: &mut Segment, part: u64| match part % 4 {
        0 => segment.selector = value as u16,
        1 => segment.base = value,
        2 => segment.limit = value as u32,
        _ => segment.access_rights = value as u32,
    };
    match which % 24 {
        0 => image.cr0 = value,
        1 => image.cr3 = value,
        2 => image.cr4 = value,
        3 => image.dr7 = value,
        4 => image.efer = value,
        5 => image.pat = value,
        6 => image.rflags = value,
        7 => image.rip = value,
        8 => segment(&mut image.cs, value >> 62),
        9 => segment(&mut image.ss, value >> 62),
        10 => segment(&mut image.ds, value >> 62),
        11 => segment(&mut image.fs, value >> 62),
        12 => segment(&mut image.tr, value >> 62),
        13 => segment(&mut image.ldtr, value >> 62),
        14 => image.gdtr = (value, (value >> 32) as u32),
        15 => image.activity_state = value as u32,
        16 => image.interruptibility = value as u32,
        17 => image.pending_debug = value,
        18 => image.link_pointer = value,
        19 => image.entry_interruption_info = value as u32,
        20 => image.entry_error_code = value as u32,
        21 => image.entry_instruction_length = value as u32,
        22 => image.entry = value as u32,
        _ => image.eptp = value,
    }
}

proptest! {
    #![proptest_config(prop_common::config(2048))]

    /// A passing long-mode image with one to four fields damaged at random
    /// (small values, single bits, anything): the checker never panics, and
    /// whatever it reports names a known rule and prints. This reaches the
    /// guest-register, segment and non-register checks that fully random
    /// images rarely get to.
    #[test]
    fn checker_never_panics_on_damaged_images(
        edits in proptest::collection::vec(
            (any::<usize>(), prop_oneof![0u64..0x100, (0u32..64).prop_map(|bit| 1u64 << bit), any::<u64>()]),
            1..=4,
        ),
    ) {
        let caps = VmxCapabilities::decode(&bochs_msrs());
        let mut image = passing_image(&caps);
        prop_assert_eq!(check(&image, &caps), Ok(()));
        for (which, value) in edits {
            damage(&mut image, which, value);
        }
        if let Err(violation) = check(&image, &caps) {
            prop_assert_eq!(EntryRule::from_id(violation.rule.id()), Some(violation.rule));
            prop_assert!(!violation.to_string().is_empty());
        }
    }
}

proptest! {
    #![proptest_config(prop_common::config(512))]

    /// Any VMCS image checked against any capabilities gives `Ok` or a
    /// violation that names a known rule and prints, never a panic; checking
    /// is deterministic.
    #[test]
    fn checker_never_panics(
        values in proptest::collection::vec(field_value(), VmcsField::ALL.len()),
        raw in raw_msrs_strategy(),
    ) {
        let image = VmcsImage::read_with(|field| {
            VmcsField::ALL.iter().position(|known| *known == field).map(|index| values[index])
        });
        let caps = VmxCapabilities::decode(&raw);
        let result = check(&image, &caps);
        if let Err(violation) = &result {
            prop_assert_eq!(EntryRule::from_id(violation.rule.id()), Some(violation.rule));
            prop_assert!(!violation.to_string().is_empty());
        }
        prop_assert_eq!(check(&image, &caps), result);
    }

    /// Any text given to `--break-entry` parses to a rule or to nothing,
    /// never a panic; every rule's id and name (in any case) parse back to it.
    #[test]
    fn rule_names_parse(text in prop_oneof![any::<String>(), "[0-9]{1,4}", "[a-z-]{1,24}"], pick in any::<proptest::sample::Index>()) {
        if let Some(rule) = EntryRule::parse(&text) {
            let by_id = text.parse::<u8>().ok() == Some(rule.id());
            prop_assert!(by_id || rule.name().eq_ignore_ascii_case(&text));
        }
        let rule = EntryRule::ALL[pick.index(EntryRule::ALL.len())];
        prop_assert_eq!(EntryRule::parse(&rule.id().to_string()), Some(rule));
        prop_assert_eq!(EntryRule::parse(rule.name()), Some(rule));
        prop_assert_eq!(EntryRule::parse(&rule.name().to_ascii_uppercase()), Some(rule));
        prop_assert!(!rule.to_string().is_empty());
    }
}
