//! Property tests of the policies that decide what a guest sees and may set:
//! the CPUID filter ([`hypervisor_core::cpuid`]), the MSR policy and write
//! checks ([`hypervisor_core::msr`]), the CR0/CR4 write emulation
//! ([`hypervisor_core::control_registers`]) and the XSETBV check
//! ([`hypervisor_core::xcr`]).
//!
//! All of their inputs come from the guest (leaf, subleaf, the value written)
//! or from the host CPU (whatever it answers). A filter that lets the VMX bit
//! through invites the guest to try VMXON; one that drops the hypervisor bit
//! or advertises an instruction the VMCS makes #UD breaks guests; an MSR the
//! bitmap passes through that the policy meant to emulate or deny gives the
//! guest the real register; a CR0/CR4 value accepted against the rules makes
//! VM entry fail or runs the guest in a mode the hypervisor does not expect.
//! These properties check each rule for random inputs, and that the checks
//! accept exactly what the documented rules allow.

mod prop_common;

use hypervisor_core::control_registers::{
    check_cr4_write, write_cr0, Cr0Context, CrWriteError, CR0_CD, CR0_NW, EFER_LMA, EFER_LME,
};
use hypervisor_core::controls::SecondaryControls;
use hypervisor_core::cpuid::{
    filter_cpuid, reflect_guest_cr4, CpuidPolicy, CpuidResult, HYPERVISOR_LEAF_BASE, HYPERVISOR_LEAF_END,
    HYPERVISOR_LEAF_MAX, HYPERVISOR_LEAF_TSC, HYPERVISOR_SIGNATURE, LEAF1_ECX_HYPERVISOR, LEAF1_ECX_MONITOR,
    LEAF1_ECX_OSXSAVE, LEAF1_ECX_PDCM, LEAF1_ECX_SMX, LEAF1_ECX_VMX, LEAF1_ECX_X2APIC, LEAF6_EAX_ARAT,
    LEAF7_EBX_INVPCID, LEAF7_EBX_PT, LEAF7_ECX_OSPKE, LEAF7_ECX_RDPID, LEAF7_ECX_WAITPKG, LEAF80000001_EDX_RDTSCP,
    LEAFD1_EAX_XSAVES,
};
use hypervisor_core::msr::{
    check_canonical, check_efer_write, check_pat_write, policy, MsrBitmap, MsrPolicy, MsrWriteError, EFER_ALLOWED,
    PASS_THROUGH,
};
use hypervisor_core::start_state::{CR0_PE, CR0_PG, CR4_PAE, CR4_VMXE};
use hypervisor_core::xcr::{check_xcr0, XcrError};
use proptest::prelude::*;

fn result_strategy() -> impl Strategy<Value = CpuidResult> {
    prop_oneof![
        Just(CpuidResult { eax: u32::MAX, ebx: u32::MAX, ecx: u32::MAX, edx: u32::MAX }),
        Just(CpuidResult::ZERO),
        (any::<u32>(), any::<u32>(), any::<u32>(), any::<u32>()).prop_map(|(eax, ebx, ecx, edx)| CpuidResult {
            eax,
            ebx,
            ecx,
            edx
        }),
    ]
}

fn policy_strategy() -> impl Strategy<Value = CpuidPolicy> {
    prop_oneof![
        (any::<u8>(), any::<bool>(), any::<bool>(), any::<bool>(), any::<bool>(), any::<u32>()).prop_map(
            |(vcpu_id, x2apic, enable_rdtscp, enable_invpcid, enable_xsaves, tsc_khz)| CpuidPolicy {
                vcpu_id,
                x2apic,
                enable_rdtscp,
                enable_invpcid,
                enable_xsaves,
                tsc_khz,
            }
        ),
        (any::<u8>(), any::<u32>(), any::<u32>()).prop_map(|(vcpu_id, tsc_khz, secondary)| {
            CpuidPolicy::from_secondary_controls(vcpu_id, tsc_khz, SecondaryControls(secondary))
        }),
    ]
}

/// Leaves the filter treats specially, neighbours of them, the hypervisor
/// range and its edges, and anything.
fn leaf_strategy() -> impl Strategy<Value = u32> {
    prop_oneof![
        proptest::sample::select(vec![
            0x0,
            0x1,
            0x2,
            0x5,
            0x6,
            0x7,
            0x8,
            0xA,
            0xB,
            0xD,
            0x1F,
            0x20,
            0x8000_0000,
            0x8000_0001,
            0x8000_0002,
            0x3FFF_FFFF,
            0x4000_0000,
            0x4000_0001,
            0x4000_0002,
            0x4000_00FF,
            0x4000_0100,
        ]),
        HYPERVISOR_LEAF_BASE..=HYPERVISOR_LEAF_END + 1,
        any::<u32>(),
    ]
}

fn subleaf_strategy() -> impl Strategy<Value = u32> {
    prop_oneof![0u32..3, any::<u32>()]
}

/// The bits a filtered result may carry that the host did not report, per
/// the module's table: the hypervisor bit and initial APIC id in leaf 1, the
/// x2APIC id in leaves 0xB and 0x1F, and the whole hypervisor range.
fn may_add(leaf: u32) -> CpuidResult {
    match leaf {
        0x1 => CpuidResult { ebx: 0xFF00_0000, ecx: LEAF1_ECX_HYPERVISOR, ..CpuidResult::ZERO },
        0xB | 0x1F => CpuidResult { edx: u32::MAX, ..CpuidResult::ZERO },
        HYPERVISOR_LEAF_BASE..=HYPERVISOR_LEAF_END => {
            CpuidResult { eax: u32::MAX, ebx: u32::MAX, ecx: u32::MAX, edx: u32::MAX }
        }
        _ => CpuidResult::ZERO,
    }
}

proptest! {
    #![proptest_config(prop_common::config(2048))]

    /// For every leaf, subleaf, host answer and policy, the bits the
    /// hypervisor owns are as the policy says: leaf 1 never shows VMX, SMX,
    /// MONITOR or PDCM, always shows the hypervisor bit and the vCPU's APIC id,
    /// shows x2APIC only if the policy and the host both do; leaf 7.0 never
    /// shows Processor Trace or WAITPKG and shows INVPCID / RDPID only if
    /// enabled; XSAVES and RDTSCP only if enabled; leaves 6 and 0xA hide the
    /// power and PMU interfaces; the hypervisor range answers the same
    /// whatever the host says. Outside the listed changes the host's bits pass
    /// unchanged, and the filter never advertises a feature the host lacks.
    #[test]
    fn cpuid_filter_keeps_the_owned_bits(
        leaf in leaf_strategy(),
        subleaf in subleaf_strategy(),
        host in result_strategy(),
        other_host in result_strategy(),
        policy in policy_strategy(),
        guest_cr4 in any::<u64>(),
    ) {
        let r = filter_cpuid(leaf, subleaf, host, &policy);
        // Nothing the host lacks appears, except the documented additions.
        let extra = may_add(leaf);
        prop_assert_eq!(r.eax & !host.eax & !extra.eax, 0);
        prop_assert_eq!(r.ebx & !host.ebx & !extra.ebx, 0);
        prop_assert_eq!(r.ecx & !host.ecx & !extra.ecx, 0);
        prop_assert_eq!(r.edx & !host.edx & !extra.edx, 0);
        match leaf {
            0x1 => {
                prop_assert_eq!(r.ecx & (LEAF1_ECX_VMX | LEAF1_ECX_SMX | LEAF1_ECX_MONITOR | LEAF1_ECX_PDCM), 0);
                prop_assert_eq!(r.ecx & LEAF1_ECX_HYPERVISOR, LEAF1_ECX_HYPERVISOR);
                prop_assert_eq!(r.ecx & LEAF1_ECX_X2APIC != 0, policy.x2apic && host.ecx & LEAF1_ECX_X2APIC != 0);
                prop_assert_eq!(r.ebx >> 24, u32::from(policy.vcpu_id));
                prop_assert_eq!(r.ebx & 0x00FF_FFFF, host.ebx & 0x00FF_FFFF);
                prop_assert_eq!((r.eax, r.edx), (host.eax, host.edx));
                let untouched = !(LEAF1_ECX_VMX | LEAF1_ECX_SMX | LEAF1_ECX_MONITOR | LEAF1_ECX_PDCM | LEAF1_ECX_X2APIC | LEAF1_ECX_HYPERVISOR);
                prop_assert_eq!(r.ecx & untouched, host.ecx & untouched);
            }
            0x6 => prop_assert_eq!(r, CpuidResult { eax: host.eax & LEAF6_EAX_ARAT, ..CpuidResult::ZERO }),
            0x7 if subleaf == 0 => {
                prop_assert_eq!(r.ebx & LEAF7_EBX_PT, 0);
                prop_assert_eq!(r.ecx & LEAF7_ECX_WAITPKG, 0);
                prop_assert_eq!(r.ebx & LEAF7_EBX_INVPCID != 0, policy.enable_invpcid && host.ebx & LEAF7_EBX_INVPCID != 0);
                prop_assert_eq!(r.ecx & LEAF7_ECX_RDPID != 0, policy.enable_rdtscp && host.ecx & LEAF7_ECX_RDPID != 0);
            }
            0xA => prop_assert_eq!(r, CpuidResult::ZERO),
            0xB | 0x1F => {
                prop_assert_eq!(r.edx, u32::from(policy.vcpu_id));
                prop_assert_eq!((r.eax, r.ebx, r.ecx), (host.eax, host.ebx, host.ecx));
            }
            0xD if subleaf == 1 => {
                prop_assert_eq!(r.eax & LEAFD1_EAX_XSAVES != 0, policy.enable_xsaves && host.eax & LEAFD1_EAX_XSAVES != 0);
            }
            0x8000_0001 => {
                prop_assert_eq!(r.edx & LEAF80000001_EDX_RDTSCP != 0, policy.enable_rdtscp && host.edx & LEAF80000001_EDX_RDTSCP != 0);
            }
            HYPERVISOR_LEAF_BASE..=HYPERVISOR_LEAF_END => {
                prop_assert_eq!(r, filter_cpuid(leaf, subleaf, other_host, &policy), "the hypervisor range ignores the host");
                if leaf == HYPERVISOR_LEAF_BASE {
                    prop_assert_eq!(r.eax, HYPERVISOR_LEAF_MAX);
                    let mut signature = Vec::new();
                    for word in [r.ebx, r.ecx, r.edx] {
                        signature.extend_from_slice(&word.to_le_bytes());
                    }
                    prop_assert_eq!(&signature[..], &HYPERVISOR_SIGNATURE[..]);
                } else if leaf == HYPERVISOR_LEAF_TSC {
                    // EAX: TSC kHz; EBX: the local APIC timer's clock, the same.
                    prop_assert_eq!(r, CpuidResult { eax: policy.tsc_khz, ebx: policy.tsc_khz, ..CpuidResult::ZERO });
                } else {
                    prop_assert_eq!(r, CpuidResult::ZERO);
                }
            }
            _ => prop_assert_eq!(r, host, "leaf {:#x}.{} passes unchanged", leaf, subleaf),
        }

        // Mirroring the guest's CR4 afterwards changes only OSXSAVE / OSPKE,
        // reports them only with their base feature, and keeps the owned bits.
        let mirrored = reflect_guest_cr4(leaf, subleaf, r, guest_cr4);
        match leaf {
            0x1 => {
                let osxsave = r.ecx & (1 << 26) != 0 && guest_cr4 & (1 << 18) != 0;
                prop_assert_eq!(mirrored.ecx & LEAF1_ECX_OSXSAVE != 0, osxsave);
                prop_assert_eq!(mirrored.ecx & !LEAF1_ECX_OSXSAVE, r.ecx & !LEAF1_ECX_OSXSAVE);
                prop_assert_eq!(mirrored.ecx & LEAF1_ECX_VMX, 0);
                prop_assert_eq!(mirrored.ecx & LEAF1_ECX_HYPERVISOR, LEAF1_ECX_HYPERVISOR);
            }
            0x7 if subleaf == 0 => {
                let ospke = r.ecx & (1 << 3) != 0 && guest_cr4 & (1 << 22) != 0;
                prop_assert_eq!(mirrored.ecx & LEAF7_ECX_OSPKE != 0, ospke);
                prop_assert_eq!(mirrored.ecx & !LEAF7_ECX_OSPKE, r.ecx & !LEAF7_ECX_OSPKE);
            }
            _ => prop_assert_eq!(mirrored, r),
        }
        prop_assert_eq!((mirrored.eax, mirrored.ebx, mirrored.edx), (r.eax, r.ebx, r.edx));
    }

    /// An EFER write is accepted exactly when it sets only SCE, LME, LMA and
    /// NXE and does not change LME while paging is on (SDM Vol. 3A, 10.8.5);
    /// the stored value keeps the current LMA whatever the guest wrote (LMA is
    /// the CPU's), so a guest can never claim IA-32e mode by writing EFER.
    #[test]
    fn efer_writes_follow_the_rules(current in any::<u64>(), value in prop_oneof![any::<u64>(), any::<u64>().prop_map(|v| v & EFER_ALLOWED)], paging_on in any::<bool>()) {
        let current = current & EFER_ALLOWED;
        let reserved = value & !EFER_ALLOWED;
        let lme_changes = (value ^ current) & EFER_LME != 0;
        match check_efer_write(current, value, paging_on) {
            Ok(stored) => {
                prop_assert_eq!(reserved, 0);
                prop_assert!(!(paging_on && lme_changes));
                prop_assert_eq!(stored & !EFER_ALLOWED, 0);
                prop_assert_eq!(stored & EFER_LMA, current & EFER_LMA);
                prop_assert_eq!(stored & !EFER_LMA, value & !EFER_LMA);
            }
            Err(MsrWriteError::ReservedBits(bits)) => prop_assert_eq!(bits, reserved),
            Err(MsrWriteError::LmeWithPaging) => prop_assert!(reserved == 0 && paging_on && lme_changes),
            Err(other) => prop_assert!(false, "unexpected {:?}", other),
        }
    }

    /// A PAT write is accepted exactly when all eight entries name a defined
    /// memory type (UC, WC, WT, WP, WB, UC-), and stored unchanged.
    #[test]
    fn pat_writes_follow_the_rules(value in prop_oneof![any::<u64>(), proptest::collection::vec(proptest::sample::select(vec![0u64, 1, 4, 5, 6, 7, 2, 3, 8, 0xFF]), 8).prop_map(|types| types.iter().enumerate().fold(0, |v, (i, t)| v | (t << (8 * i))))]) {
        let valid = (0..8).all(|i| matches!((value >> (8 * i)) & 0xFF, 0 | 1 | 4..=7));
        match check_pat_write(value) {
            Ok(stored) => {
                prop_assert!(valid);
                prop_assert_eq!(stored, value);
            }
            Err(error) => {
                prop_assert!(!valid);
                prop_assert_eq!(error, MsrWriteError::BadPatType(value));
                prop_assert!(!error.to_string().is_empty());
            }
        }
    }

    /// An address is accepted as canonical exactly when bits 63:47 are all
    /// equal (sign extension of bit 47).
    #[test]
    fn canonical_check_is_sign_extension(value in prop_oneof![any::<u64>(), any::<u64>().prop_map(|v| ((v << 16) as i64 >> 16) as u64)]) {
        let canonical = ((value << 16) as i64 >> 16) as u64 == value;
        prop_assert_eq!(check_canonical(value), if canonical { Ok(value) } else { Err(MsrWriteError::NonCanonical(value)) });
    }

    /// For any MSR number, the bitmap built for the policy lets an access
    /// through without an exit exactly when the policy says pass-through:
    /// every emulated or denied MSR (and every MSR outside the bitmap's two
    /// ranges) exits, for reads and writes alike.
    #[test]
    fn msr_bitmap_matches_the_policy(msr in prop_oneof![0u32..0x2000, 0xC000_0000u32..0xC000_2000, any::<u32>()]) {
        let bitmap = MsrBitmap::for_policy();
        let pass = policy(msr) == MsrPolicy::PassThrough;
        prop_assert_eq!(pass, PASS_THROUGH.contains(&msr));
        prop_assert_eq!(bitmap.exits(msr, false), !pass);
        prop_assert_eq!(bitmap.exits(msr, true), !pass);
        prop_assert!(MsrBitmap::deny_all().exits(msr, false) && MsrBitmap::deny_all().exits(msr, true));
    }
}

/// The CR0 rules of SDM Vol. 3A, 2.5 and 10.8.5 as `write_cr0`'s docs list
/// them, in its order; `None` = the write is allowed.
fn cr0_rule_broken(context: &Cr0Context, value: u64) -> Option<CrWriteError> {
    let not_settable = (!context.may_be_one | 0xFFFF_FFFF_0000_0000) & !context.must_be_one;
    if value & not_settable != 0 {
        return Some(CrWriteError::ReservedBits(value & not_settable));
    }
    if value & CR0_PG != 0 && value & CR0_PE == 0 {
        return Some(CrWriteError::PagingWithoutProtection);
    }
    if value & CR0_NW != 0 && value & CR0_CD == 0 {
        return Some(CrWriteError::NotWriteThroughWithoutCacheDisable);
    }
    // 64-bit code cannot turn paging off (SDM Vol. 3A, 10.8.5.4).
    let disabling_paging = value & CR0_PG == 0 && context.actual & CR0_PG != 0;
    if disabling_paging && context.efer & EFER_LMA != 0 && context.cs_long {
        return Some(CrWriteError::PagingOffIn64BitMode);
    }
    let enabling_paging = value & CR0_PG != 0 && context.actual & CR0_PG == 0;
    if enabling_paging && context.efer & EFER_LME != 0 && context.cr4 & CR4_PAE == 0 {
        return Some(CrWriteError::LongModeWithoutPae);
    }
    None
}

fn cr0_context_strategy() -> impl Strategy<Value = Cr0Context> {
    // Realistic masks (FIXED0 within FIXED1, the low 32 bits) most of the time,
    // anything now and then.
    let masks = prop_oneof![
        3 => (any::<u32>(), any::<u32>()).prop_map(|(may, must)| (u64::from(may), u64::from(must & may))),
        1 => (any::<u64>(), any::<u64>()),
    ];
    (any::<u64>(), any::<u64>(), masks, any::<u64>(), any::<u64>(), any::<bool>()).prop_map(
        |(actual, owned, (may_be_one, must_be_one), efer, cr4, cs_long)| Cr0Context {
            actual,
            owned,
            must_be_one,
            may_be_one,
            efer,
            cr4,
            cs_long,
        },
    )
}

fn cr0_value_strategy() -> impl Strategy<Value = u64> {
    prop_oneof![
        any::<u64>(),
        any::<u32>().prop_map(u64::from),
        // Common guest values: PE, PG, NE, ET, WP, CD/NW combinations.
        (any::<bool>(), any::<bool>(), any::<bool>(), any::<bool>()).prop_map(|(pe, pg, cd, nw)| {
            0x10 | 0x20
                | (1 << 16)
                | u64::from(pe)
                | (u64::from(pg) << 31)
                | (u64::from(nw) << 29)
                | (u64::from(cd) << 30)
        }),
    ]
}

proptest! {
    #![proptest_config(prop_common::config(2048))]

    /// `write_cr0` accepts exactly the values the documented rules allow and
    /// reports the first rule broken otherwise; an accepted write runs with
    /// every must-be-one bit set and nothing else added, shows the guest the
    /// owned bits it wrote, and moves EFER.LMA (and the IA-32e entry control)
    /// exactly as the CPU would: set when paging turns on with LME, cleared
    /// when paging is off, nothing else in EFER touched.
    #[test]
    fn cr0_writes_follow_the_rules(context in cr0_context_strategy(), value in cr0_value_strategy()) {
        let result = write_cr0(&context, value);
        match (cr0_rule_broken(&context, value), result) {
            (Some(expected), Err(error)) => {
                prop_assert_eq!(error, expected);
                prop_assert!(!error.to_string().is_empty());
            }
            (None, Ok(update)) => {
                prop_assert_eq!(update.actual, value | context.must_be_one);
                prop_assert_eq!(update.shadow, value & context.owned);
                prop_assert_eq!(update.efer & !EFER_LMA, context.efer & !EFER_LMA);
                prop_assert_eq!(update.ia32e_mode, update.efer & EFER_LMA != 0);
                let paging_on = value & CR0_PG != 0;
                if !paging_on {
                    prop_assert_eq!(update.efer & EFER_LMA, 0);
                } else if context.actual & CR0_PG == 0 && context.efer & EFER_LME != 0 {
                    prop_assert_eq!(update.efer & EFER_LMA, EFER_LMA);
                } else {
                    prop_assert_eq!(update.efer & EFER_LMA, context.efer & EFER_LMA);
                }
                // Nothing outside FIXED1 (or above bit 31) unless FIXED0 forces it.
                prop_assert_eq!(update.actual & !context.may_be_one & !context.must_be_one & 0xFFFF_FFFF, 0);
                prop_assert_eq!(update.actual >> 32, context.must_be_one >> 32);
            }
            (expected, got) => prop_assert!(false, "rules say {:?}, write_cr0 said {:?}", expected, got),
        }
    }

    /// `check_cr4_write` accepts exactly the values that leave every owned bit
    /// as the guest last saw it and set nothing above bit 31; a write that
    /// changes an owned VMXE is refused as such, so a guest never enables VMX.
    #[test]
    fn cr4_writes_follow_the_rules(
        value in prop_oneof![any::<u64>(), any::<u32>().prop_map(u64::from)],
        owned in prop_oneof![any::<u64>(), Just(CR4_VMXE), any::<u32>().prop_map(|m| u64::from(m) | CR4_VMXE)],
        shadow in any::<u64>(),
    ) {
        let changed = (value ^ shadow) & owned;
        let allowed = changed == 0 && value >> 32 == 0;
        let result = check_cr4_write(value, owned, shadow, CR4_VMXE);
        prop_assert_eq!(result.is_ok(), allowed);
        if changed & CR4_VMXE != 0 {
            prop_assert_eq!(result, Err(CrWriteError::Vmxe));
        }
        if owned & CR4_VMXE != 0 && shadow & CR4_VMXE == 0 {
            prop_assert!(value & CR4_VMXE == 0 || result.is_err(), "VMXE set against an owned, clear shadow");
        }
        if let Err(error) = result {
            prop_assert!(!error.to_string().is_empty());
        }
    }
}

/// XCR0 state-component bits the rules below name.
const XCR0_X87: u64 = 1 << 0;
const XCR0_SSE: u64 = 1 << 1;
const XCR0_AVX: u64 = 1 << 2;
const XCR0_MPX: u64 = 0b11 << 3;
const XCR0_AVX512: u64 = 0b111 << 5;
const XCR0_AMX: u64 = 0b11 << 17;

/// Whether XSETBV accepts `value` for XCR `index` on a CPU whose
/// CPUID.(EAX=0DH,ECX=0):EDX:EAX is `supported`: SDM Vol. 3A, 2.6 "Extended
/// Control Registers (Including XCR0)" and Vol. 1, 13.3 "Enabling the XSAVE
/// Feature Set and XSAVE-Enabled Features" (the AMX pair, bits 17 and 18,
/// must likewise be set together).
fn xsetbv_allowed(index: u32, value: u64, supported: u64) -> bool {
    let all_or_none = |mask: u64| value & mask == 0 || value & mask == mask;
    index == 0
        && value & !supported == 0
        && value & XCR0_X87 != 0
        && !(value & XCR0_AVX != 0 && value & XCR0_SSE == 0)
        && !(value & XCR0_AVX512 != 0 && value & XCR0_AVX == 0)
        && all_or_none(XCR0_MPX)
        && all_or_none(XCR0_AVX512)
        && all_or_none(XCR0_AMX)
}

proptest! {
    #![proptest_config(prop_common::config(4096))]

    /// `check_xcr0` accepts exactly the values XSETBV itself accepts on the
    /// host, and returns them unchanged. This matters more than most checks:
    /// the kernel executes XSETBV with the accepted value **in VMX root
    /// operation**, so a value the check lets through but the CPU refuses is a
    /// #GP in the hypervisor, raised at will by any guest.
    #[test]
    fn xsetbv_check_accepts_exactly_what_the_cpu_accepts(
        index in prop_oneof![Just(0u32), any::<u32>()],
        value in prop_oneof![
            any::<u64>(),
            // Mostly combinations of the defined components, x87 mostly set.
            (any::<u64>(), any::<bool>()).prop_map(|(bits, x87)| {
                (bits & (XCR0_SSE | XCR0_AVX | XCR0_MPX | XCR0_AVX512 | (1 << 9) | XCR0_AMX)) | u64::from(x87)
            }),
        ],
        supported in prop_oneof![
            Just(XCR0_X87 | XCR0_SSE | XCR0_AVX | XCR0_MPX | XCR0_AVX512 | (1 << 9) | XCR0_AMX),
            Just(XCR0_X87 | XCR0_SSE | XCR0_AVX),
            any::<u64>().prop_map(|bits| bits | XCR0_X87),
        ],
    ) {
        let allowed = xsetbv_allowed(index, value, supported);
        match check_xcr0(index, value, supported) {
            Ok(accepted) => {
                prop_assert!(allowed, "{:#x} accepted, but XSETBV would #GP", value);
                prop_assert_eq!(accepted, value);
            }
            Err(error) => {
                prop_assert!(!allowed, "{:#x} refused ({:?}), but XSETBV accepts it", value, error);
                match error {
                    XcrError::NoSuchRegister(got) => prop_assert_eq!(got, index),
                    XcrError::Unsupported(bits) => prop_assert_eq!(bits, value & !supported),
                    _ => {}
                }
            }
        }
    }
}
