//! Property tests of the VM-exit decoders ([`hypervisor_core::exit`]) and the
//! VM-instruction error decoding ([`hypervisor_core::instruction_error`]).
//!
//! Every VM exit hands the kernel raw words the guest influences (which port,
//! which register, which vector, which address), and some of them (unknown
//! exit reasons, reserved encodings) the kernel has never seen. The decoders
//! run inside the exit handler, where a panic stops every guest. These
//! properties check that every possible word decodes and prints without
//! panicking, that each accessor reads exactly its documented bits, and that
//! encoding from parts and decoding again gives the parts back.
//!
//! The small domains (every `u8` vector, every `u16` basic exit reason) are
//! checked exhaustively; the 32- and 64-bit words by sampling.

mod prop_common;

use hypervisor_core::exit::{
    gpr_name, pushes_error_code, CrAccessQualification, CrAccessType, EptViolationQualification, Exception, ExitReason,
    InterruptionInfo, InterruptionType, IoDirection, IoOperand, IoQualification, RawExitReason, SegmentRegister,
    StringIoInfo,
};
use hypervisor_core::instruction_error::{VmInstructionError, VmxInstructionFailure};
use proptest::prelude::*;

const ALL_TYPES: [InterruptionType; 8] = [
    InterruptionType::ExternalInterrupt,
    InterruptionType::Reserved,
    InterruptionType::Nmi,
    InterruptionType::HardwareException,
    InterruptionType::SoftwareInterrupt,
    InterruptionType::PrivilegedSoftwareException,
    InterruptionType::SoftwareException,
    InterruptionType::OtherEvent,
];

/// Every basic exit-reason number (all 2^16) decodes without panicking, a
/// defined one round-trips through its number and prints its SDM name, and
/// `ExitReason::ALL` lists exactly the defined ones, in order: the exit
/// dispatcher can never meet a number it cannot name.
#[test]
fn every_basic_exit_reason_decodes() {
    let mut defined = Vec::new();
    for number in 0..=u16::MAX {
        if let Some(reason) = ExitReason::from_basic(number) {
            assert_eq!(reason.number(), number);
            assert!(!reason.name().is_empty());
            assert_eq!(reason.to_string(), format!("{} ({number})", reason.name()));
            defined.push(reason);
        }
    }
    assert_eq!(defined, ExitReason::ALL);
}

/// Every vector decodes: the defined exceptions round-trip through their
/// vector, carry a mnemonic and a name, and push an error code exactly when
/// [`pushes_error_code`] says so.
#[test]
fn every_exception_vector_decodes() {
    for vector in 0..=u8::MAX {
        match Exception::from_vector(vector) {
            Some(exception) => {
                assert_eq!(exception.vector(), vector);
                assert!(!exception.mnemonic().is_empty() && !exception.name().is_empty());
                assert_eq!(exception.has_error_code(), pushes_error_code(vector));
                // Building the injection event picks the NMI type for vector 2.
                let event = InterruptionInfo::exception(exception);
                assert!(event.valid());
                assert_eq!(event.vector(), vector);
                assert_eq!(event.error_code_valid(), exception != Exception::Nmi && exception.has_error_code());
            }
            None => assert!(vector == 15 || vector > 21, "vector {vector} should be defined"),
        }
        assert!(!gpr_name(vector).is_empty());
        assert_eq!(gpr_name(vector), gpr_name(vector & 0xF));
    }
}

/// Every 3-bit interruption type round-trips, and every u32 decodes to the
/// type of its low three bits.
#[test]
fn interruption_types_round_trip() {
    for (bits, kind) in ALL_TYPES.iter().enumerate() {
        assert_eq!(kind.bits(), bits as u32);
        assert_eq!(InterruptionType::from_bits(bits as u32), *kind);
        assert!(!kind.name().is_empty());
    }
}

/// Every VM-instruction error number (sampled below; the small range here
/// exhaustively) decodes consistently.
#[test]
fn small_instruction_error_numbers_decode() {
    let mut defined = Vec::new();
    for number in 0..=64u32 {
        if let Some(error) = VmInstructionError::from_number(number) {
            assert_eq!(error.number(), number);
            defined.push(error);
        }
    }
    assert_eq!(defined, VmInstructionError::ALL);
    for unassigned in [0, 14, 21, 27] {
        assert_eq!(VmInstructionError::from_number(unassigned), None);
    }
}

/// An I/O exit qualification assembled from its documented fields
/// (SDM Vol. 3C, Table "Exit Qualification for I/O Instructions").
fn io_qualification(
    size_code: u64,
    input: bool,
    string: bool,
    rep: bool,
    immediate: bool,
    port: u16,
    junk: u64,
) -> u64 {
    // Bits 15:7 and 63:32 are reserved/undefined: fill them with junk.
    let junk = junk & !0xFFFF_007F;
    size_code
        | (u64::from(input) << 3)
        | (u64::from(string) << 4)
        | (u64::from(rep) << 5)
        | (u64::from(immediate) << 6)
        | (u64::from(port) << 16)
        | junk
}

proptest! {
    #![proptest_config(prop_common::config(2048))]

    /// Every exit-reason word decodes and prints: the basic reason is bits
    /// 15:0 whatever the other bits say, and the flag accessors read exactly
    /// their bits.
    #[test]
    fn raw_exit_reasons_decode(word in any::<u32>()) {
        let raw = RawExitReason(word);
        prop_assert_eq!(raw.basic(), word as u16);
        prop_assert_eq!(raw.reason(), ExitReason::from_basic(word as u16));
        prop_assert_eq!(raw.bus_lock_detected(), word & (1 << 26) != 0);
        prop_assert_eq!(raw.enclave_mode(), word & (1 << 27) != 0);
        prop_assert_eq!(raw.pending_mtf(), word & (1 << 28) != 0);
        prop_assert_eq!(raw.from_vmx_root(), word & (1 << 29) != 0);
        prop_assert_eq!(raw.entry_failure(), word & (1 << 31) != 0);
        let text = raw.to_string();
        prop_assert_eq!(text.ends_with(" [VM-entry failure]"), raw.entry_failure());
    }

    /// Every I/O qualification decodes and prints (invalid size encodings
    /// included), and one built from fields decodes to the same fields, with
    /// the reserved bits ignored: the port and direction the kernel emulates
    /// are the ones the processor reported.
    #[test]
    fn io_qualifications_round_trip(
        size_code in prop_oneof![Just(0u64), Just(1), Just(3)],
        input in any::<bool>(),
        string in any::<bool>(),
        rep in any::<bool>(),
        immediate in any::<bool>(),
        port in any::<u16>(),
        junk in any::<u64>(),
        raw in any::<u64>(),
    ) {
        let q = IoQualification(io_qualification(size_code, input, string, rep, immediate, port, junk));
        prop_assert_eq!(q.size(), Some([1, 2, 0, 4][size_code as usize]));
        prop_assert_eq!(q.direction(), if input { IoDirection::In } else { IoDirection::Out });
        prop_assert_eq!(q.is_string(), string);
        prop_assert_eq!(q.is_rep(), rep);
        prop_assert_eq!(q.operand(), if immediate { IoOperand::Immediate } else { IoOperand::Dx });
        prop_assert_eq!(q.port(), port);
        let port_text = format!("{port:#X}");
        prop_assert!(q.to_string().contains(&port_text));

        let any = IoQualification(raw);
        prop_assert!(matches!(any.size(), None | Some(1 | 2 | 4)));
        prop_assert_eq!(any.size().is_none(), matches!(raw & 7, 2 | 4..=7));
        prop_assert!(!any.to_string().is_empty());
    }

    /// Every control-register qualification decodes and prints; fields built
    /// from parts come back (the register number and GPR index are 4-bit, so
    /// `gpr_name` can never index out of its table).
    #[test]
    fn cr_access_qualifications_round_trip(
        cr in 0u64..16,
        access in 0u64..4,
        memory in any::<bool>(),
        gpr in 0u64..16,
        source in any::<u16>(),
        junk in any::<u64>(),
    ) {
        let word = cr | (access << 4) | (u64::from(memory) << 6) | (gpr << 8) | (u64::from(source) << 16)
            | (junk & !0xFFFF_FF7F);
        let q = CrAccessQualification(word);
        prop_assert_eq!(u64::from(q.cr()), cr);
        let expected = [CrAccessType::MovToCr, CrAccessType::MovFromCr, CrAccessType::Clts, CrAccessType::Lmsw];
        prop_assert_eq!(q.access_type(), expected[access as usize]);
        prop_assert_eq!(q.lmsw_memory_operand(), memory);
        prop_assert_eq!(u64::from(q.gpr()), gpr);
        prop_assert_eq!(q.lmsw_source(), source);
        let text = q.to_string();
        match q.access_type() {
            CrAccessType::MovToCr | CrAccessType::MovFromCr => {
                let cr_text = format!("cr{cr}");
                prop_assert!(text.contains(&cr_text));
                prop_assert!(text.contains(gpr_name(gpr as u8)));
            }
            CrAccessType::Clts => prop_assert_eq!(text, "CLTS"),
            CrAccessType::Lmsw => prop_assert_eq!(text, format!("LMSW {source:#x}")),
        }
        let any = CrAccessQualification(junk);
        prop_assert!(any.cr() < 16 && any.gpr() < 16);
        prop_assert!(!any.to_string().is_empty());
    }

    /// Every EPT-violation qualification decodes and prints with any address;
    /// each accessor reads its bit, and "not present" means no right at all
    /// (bits 5:3 clear), which is what the kernel uses to tell an unmapped
    /// page from a permission fault.
    #[test]
    fn ept_violation_qualifications_decode(word in any::<u64>(), gpa in any::<u64>()) {
        let q = EptViolationQualification(word);
        let bit = |n: u32| word & (1 << n) != 0;
        prop_assert_eq!(q.read(), bit(0));
        prop_assert_eq!(q.write(), bit(1));
        prop_assert_eq!(q.fetch(), bit(2));
        prop_assert_eq!(q.readable(), bit(3));
        prop_assert_eq!(q.writable(), bit(4));
        prop_assert_eq!(q.executable(), bit(5));
        prop_assert_eq!(q.user_executable(), bit(6));
        prop_assert_eq!(q.linear_address_valid(), bit(7));
        prop_assert_eq!(q.access_to_translated_address(), bit(8));
        prop_assert_eq!(q.nmi_unblocking(), bit(12));
        prop_assert_eq!(q.not_present(), !q.readable() && !q.writable() && !q.executable());
        let text = q.at(gpa).to_string();
        let gpa_text = format!("GPA {gpa:#x}");
        prop_assert!(text.contains(&gpa_text));
        prop_assert_eq!(text.contains("not present"), q.not_present());
    }

    /// Every interruption-information word decodes and prints; an event built
    /// with `new` decodes to its parts; `exception_kind` only names an
    /// exception for a valid exception-type event with that vector. The same
    /// layout is written to the VMCS to inject events, so a mismatch would
    /// inject something else than the kernel meant.
    #[test]
    fn interruption_info_round_trips(word in any::<u32>(), vector in any::<u8>(), kind in 0usize..8, error_code in any::<bool>()) {
        let kind = ALL_TYPES[kind];
        let event = InterruptionInfo::new(vector, kind, error_code);
        prop_assert!(event.valid());
        prop_assert_eq!(event.vector(), vector);
        prop_assert_eq!(event.interruption_type(), kind);
        prop_assert_eq!(event.error_code_valid(), error_code);
        prop_assert!(!event.nmi_unblocking());
        prop_assert_eq!(event.to_u32() & 0x7FFF_E000, 0, "reserved bits 30:13 stay clear");
        prop_assert!(!event.without_error_code().error_code_valid());
        prop_assert_eq!(event.without_error_code().to_u32() | InterruptionInfo::ERROR_CODE, event.to_u32() | InterruptionInfo::ERROR_CODE);

        let any = InterruptionInfo(word);
        prop_assert_eq!(any.to_u32(), word);
        prop_assert_eq!(any.vector(), word as u8);
        prop_assert_eq!(any.interruption_type().bits(), (word >> 8) & 7);
        prop_assert_eq!(any.valid(), word & (1 << 31) != 0);
        if let Some(exception) = any.exception_kind() {
            prop_assert!(any.valid());
            prop_assert_eq!(exception.vector(), any.vector());
            prop_assert!(matches!(
                any.interruption_type(),
                InterruptionType::HardwareException
                    | InterruptionType::SoftwareException
                    | InterruptionType::PrivilegedSoftwareException
            ));
        }
        let text = any.to_string();
        prop_assert_eq!(text == "invalid", !any.valid());
    }

    /// Every INS/OUTS instruction-information word decodes and prints; the
    /// address size is 2, 4 or 8 bytes or `None`, and the segment is the one
    /// numbered in bits 17:15 (`None` for 6 and 7): the kernel picks SI/DI
    /// width and segment base from these.
    #[test]
    fn string_io_info_decodes(word in any::<u32>()) {
        let info = StringIoInfo(word);
        let size_code = (word >> 7) & 7;
        prop_assert_eq!(info.address_size_bytes(), [Some(2), Some(4), Some(8), None, None, None, None, None][size_code as usize]);
        let segment_code = (word >> 15) & 7;
        match info.segment() {
            Some(segment) => {
                prop_assert_eq!(u32::from(segment.number()), segment_code);
                prop_assert_eq!(SegmentRegister::from_number(segment_code), Some(segment));
                prop_assert_eq!(SegmentRegister::ALL[segment_code as usize], segment);
            }
            None => prop_assert!(segment_code >= 6),
        }
        prop_assert!(info.to_string().ends_with("-bit addresses"));
        prop_assert_eq!(SegmentRegister::from_number(word).is_some(), word < 6);
    }

    /// Every VM-instruction error number decodes without panicking and a
    /// defined one round-trips; the RFLAGS classification follows the SDM's
    /// conventions (CF = VMfailInvalid takes precedence, then ZF =
    /// VMfailValid), and every failure prints.
    #[test]
    fn instruction_errors_decode(number in any::<u32>(), rflags in any::<u64>()) {
        if let Some(error) = VmInstructionError::from_number(number) {
            prop_assert_eq!(error.number(), number);
            let prefix = format!("error {number}: ");
            prop_assert!(error.to_string().starts_with(&prefix));
            prop_assert!(!error.description().is_empty());
        } else {
            prop_assert!(!VmInstructionError::ALL.iter().any(|e| e.number() == number));
        }
        let expected = if rflags & 1 != 0 {
            Err(VmxInstructionFailure::FailInvalid)
        } else if rflags & (1 << 6) != 0 {
            Err(VmxInstructionFailure::FailValid(0))
        } else {
            Ok(())
        };
        prop_assert_eq!(VmxInstructionFailure::from_rflags(rflags), expected);
        let failure = VmxInstructionFailure::FailValid(0).with_error_number(number);
        prop_assert_eq!(failure, VmxInstructionFailure::FailValid(number));
        prop_assert_eq!(failure.error(), VmInstructionError::from_number(number));
        prop_assert!(failure.to_string().starts_with("VMfailValid ("));
        prop_assert_eq!(VmxInstructionFailure::FailInvalid.with_error_number(number), VmxInstructionFailure::FailInvalid);
        prop_assert_eq!(VmxInstructionFailure::FailInvalid.error(), None);
    }
}
