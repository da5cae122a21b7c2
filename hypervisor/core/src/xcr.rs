//! XCR0, the register XSETBV writes: which processor state components the
//! guest enables (SDM Vol. 1, 13.3 "Enabling the XSAVE Feature Set and
//! XSAVE-Enabled Features"). The checks a CPU applies, as a plain function.

/// Why a value is refused (the guest gets #GP(0)).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum XcrError {
    /// Only XCR0 exists (ECX must be 0).
    NoSuchRegister(u32),
    /// XCR0 bit 0 (x87) must always be 1.
    X87Cleared,
    /// AVX state (bit 2) requires SSE state (bit 1).
    AvxWithoutSse,
    /// A bit CPUID.(EAX=0DH,ECX=0):EDX:EAX does not advertise.
    Unsupported(u64),
    /// The AVX-512 components (bits 5–7) must be all on or all off, and need AVX.
    Avx512Partial,
    /// The MPX components BNDREGS (bit 3) and BNDCSR (bit 4) must be both on
    /// or both off (SDM Vol. 3A, 2.6 "Extended Control Registers").
    MpxPartial,
    /// The AMX components XTILECFG (bit 17) and XTILEDATA (bit 18) must be
    /// both on or both off (SDM Vol. 1, 13.3).
    AmxPartial,
}

/// XCR0 bits 4:3, BNDREGS and BNDCSR (MPX).
const XCR0_MPX: u64 = 0b11 << 3;
/// XCR0 bits 18:17, XTILECFG and XTILEDATA (AMX).
const XCR0_AMX: u64 = 0b11 << 17;

/// Checks a value for XCR `index` against the supported mask (SDM Vol. 1, 13.3).
///
/// The kernel loads an accepted value with XSETBV in VMX root operation, so
/// this must refuse everything the CPU refuses: a value that slipped through
/// would be a #GP in the hypervisor, not in the guest.
pub fn check_xcr0(index: u32, value: u64, supported: u64) -> Result<u64, XcrError> {
    if index != 0 {
        return Err(XcrError::NoSuchRegister(index));
    }
    if value & 1 == 0 {
        return Err(XcrError::X87Cleared);
    }
    if value & 0b100 != 0 && value & 0b10 == 0 {
        return Err(XcrError::AvxWithoutSse);
    }
    if value & !supported != 0 {
        return Err(XcrError::Unsupported(value & !supported));
    }
    let avx512 = value & 0b1110_0000;
    if avx512 != 0 && (avx512 != 0b1110_0000 || value & 0b100 == 0) {
        return Err(XcrError::Avx512Partial);
    }
    let mpx = value & XCR0_MPX;
    if mpx != 0 && mpx != XCR0_MPX {
        return Err(XcrError::MpxPartial);
    }
    let amx = value & XCR0_AMX;
    if amx != 0 && amx != XCR0_AMX {
        return Err(XcrError::AmxPartial);
    }
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// x87, SSE, AVX and the three AVX-512 components.
    const SUPPORTED: u64 = 0b1110_0111;

    #[test]
    fn valid_values_pass() {
        assert_eq!(check_xcr0(0, 0b1, SUPPORTED), Ok(0b1));
        assert_eq!(check_xcr0(0, 0b111, SUPPORTED), Ok(0b111));
        assert_eq!(check_xcr0(0, 0b1110_0111, SUPPORTED), Ok(0b1110_0111));
    }

    #[test]
    fn illegal_values_are_refused() {
        assert_eq!(check_xcr0(1, 0b1, SUPPORTED), Err(XcrError::NoSuchRegister(1)));
        assert_eq!(check_xcr0(0, 0b10, SUPPORTED), Err(XcrError::X87Cleared));
        assert_eq!(check_xcr0(0, 0b101, SUPPORTED), Err(XcrError::AvxWithoutSse));
        assert_eq!(check_xcr0(0, 0b1_0000_0011, SUPPORTED), Err(XcrError::Unsupported(1 << 8)));
        assert_eq!(check_xcr0(0, 0b0010_0111, SUPPORTED), Err(XcrError::Avx512Partial));
        assert_eq!(check_xcr0(0, 0b1110_0011, SUPPORTED), Err(XcrError::Avx512Partial));
    }

    /// Found by the property tests (tests/prop_policies.rs): the MPX pair
    /// (bits 3, 4) and the AMX pair (bits 17, 18) were accepted half set,
    /// which XSETBV refuses with #GP — raised in VMX root, where the kernel
    /// loads the accepted value.
    #[test]
    fn mpx_and_amx_components_come_in_pairs() {
        const ALL: u64 = 0b111 | (0b11 << 3) | (0b11 << 17);
        assert_eq!(check_xcr0(0, 0b1011, ALL), Err(XcrError::MpxPartial));
        assert_eq!(check_xcr0(0, 0b10011, ALL), Err(XcrError::MpxPartial));
        assert_eq!(check_xcr0(0, 0b11011, ALL), Ok(0b11011));
        assert_eq!(check_xcr0(0, 0b11 | (1 << 17), ALL), Err(XcrError::AmxPartial));
        assert_eq!(check_xcr0(0, 0b11 | (1 << 18), ALL), Err(XcrError::AmxPartial));
        assert_eq!(check_xcr0(0, 0b11 | (0b11 << 17), ALL), Ok(0b11 | (0b11 << 17)));
    }
}
