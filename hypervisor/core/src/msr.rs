//! What a guest may do with each model-specific register, and the MSR bitmap
//! that tells the CPU which accesses exit.
//!
//! **Deny by default.** With the "use MSR bitmaps" control on, RDMSR/WRMSR of
//! an MSR whose bit is 1 in the bitmap exits; a 0 bit lets the guest reach the
//! real MSR (SDM Vol. 3C, 25.6.9 "MSR-Bitmap Address"). Every bit is 1 except
//! for the few MSRs listed as [`MsrPolicy::PassThrough`] here: registers that
//! hold only the guest's own state and that the hypervisor itself never uses
//! (so no host value is lost), and that the scheduler switches between guests.
//! The MSRs the VMCS already holds for the guest (EFER, PAT, SYSENTER) exit and
//! are emulated against the VMCS fields; every other MSR answers #GP(0), as a
//! CPU does for an MSR it does not implement.

/// IA32_SYSENTER_CS.
pub const IA32_SYSENTER_CS: u32 = 0x174;
/// IA32_SYSENTER_ESP.
pub const IA32_SYSENTER_ESP: u32 = 0x175;
/// IA32_SYSENTER_EIP.
pub const IA32_SYSENTER_EIP: u32 = 0x176;
/// IA32_PAT.
pub const IA32_PAT: u32 = 0x277;
/// IA32_EFER.
pub const IA32_EFER: u32 = 0xC000_0080;
/// IA32_STAR (SYSCALL segments).
pub const IA32_STAR: u32 = 0xC000_0081;
/// IA32_LSTAR (64-bit SYSCALL target).
pub const IA32_LSTAR: u32 = 0xC000_0082;
/// IA32_CSTAR (compatibility-mode SYSCALL target).
pub const IA32_CSTAR: u32 = 0xC000_0083;
/// IA32_FMASK (SYSCALL RFLAGS mask).
pub const IA32_FMASK: u32 = 0xC000_0084;
/// IA32_FS_BASE.
pub const IA32_FS_BASE: u32 = 0xC000_0100;
/// IA32_GS_BASE.
pub const IA32_GS_BASE: u32 = 0xC000_0101;
/// IA32_KERNEL_GS_BASE (SWAPGS).
pub const IA32_KERNEL_GS_BASE: u32 = 0xC000_0102;

/// IA32_APIC_BASE: where the local APIC's page is, and whether it is on.
pub const IA32_APIC_BASE: u32 = 0x1B;
/// IA32_TSC_DEADLINE: the local APIC timer's deadline in TSC-deadline mode.
pub const IA32_TSC_DEADLINE: u32 = 0x6E0;

/// The guest's IA32_APIC_BASE: the xAPIC page at 0xFEE00000 (bits 35:12),
/// the APIC globally enabled (bit 11), this vCPU the bootstrap processor
/// (bit 8); x2APIC mode (bit 10) off (SDM Vol. 3A, 11.4.4 "Local APIC Status
/// and Location").
pub const GUEST_APIC_BASE: u64 = 0xFEE0_0000 | (1 << 11) | (1 << 8);

/// EFER bits a guest may set: SCE (0), LME (8), LMA (10), NXE (11).
pub const EFER_ALLOWED: u64 = (1 << 0) | (1 << 8) | (1 << 10) | (1 << 11);

/// How the hypervisor answers an access to one MSR.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MsrPolicy {
    /// The guest reaches the real MSR without an exit.
    PassThrough,
    /// The access exits and is emulated against this VMCS-held register.
    Vmcs(VmcsMsr),
    /// The access exits and is emulated by the guest's local APIC model.
    Apic(ApicMsr),
    /// The access exits and the guest gets #GP(0).
    Deny,
}

/// The MSRs of the local APIC that exist in xAPIC mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ApicMsr {
    /// IA32_APIC_BASE: reads [`GUEST_APIC_BASE`]; writing that same value is
    /// accepted, anything else (moving the page, disabling the APIC,
    /// x2APIC mode) is not emulated and gets #GP(0) ([`check_apic_base_write`]).
    Base,
    /// IA32_TSC_DEADLINE: the timer deadline in TSC-deadline mode.
    TscDeadline,
}

/// Checks a write of IA32_APIC_BASE: only the value it already has.
pub const fn check_apic_base_write(value: u64) -> Result<u64, MsrWriteError> {
    if value == GUEST_APIC_BASE {
        Ok(value)
    } else {
        Err(MsrWriteError::ReservedBits(value ^ GUEST_APIC_BASE))
    }
}

/// The MSRs whose guest value lives in the VMCS guest-state area.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VmcsMsr {
    /// IA32_EFER (loaded on entry by the "load IA32_EFER" control).
    Efer,
    /// IA32_PAT (loaded on entry by "load IA32_PAT").
    Pat,
    /// IA32_SYSENTER_CS.
    SysenterCs,
    /// IA32_SYSENTER_ESP.
    SysenterEsp,
    /// IA32_SYSENTER_EIP.
    SysenterEip,
}

/// The policy for one MSR.
pub const fn policy(msr: u32) -> MsrPolicy {
    match msr {
        IA32_FS_BASE | IA32_GS_BASE | IA32_KERNEL_GS_BASE | IA32_STAR | IA32_LSTAR | IA32_CSTAR | IA32_FMASK => {
            MsrPolicy::PassThrough
        }
        IA32_EFER => MsrPolicy::Vmcs(VmcsMsr::Efer),
        IA32_PAT => MsrPolicy::Vmcs(VmcsMsr::Pat),
        IA32_SYSENTER_CS => MsrPolicy::Vmcs(VmcsMsr::SysenterCs),
        IA32_SYSENTER_ESP => MsrPolicy::Vmcs(VmcsMsr::SysenterEsp),
        IA32_SYSENTER_EIP => MsrPolicy::Vmcs(VmcsMsr::SysenterEip),
        IA32_APIC_BASE => MsrPolicy::Apic(ApicMsr::Base),
        IA32_TSC_DEADLINE => MsrPolicy::Apic(ApicMsr::TscDeadline),
        _ => MsrPolicy::Deny,
    }
}

/// The MSRs that pass through, for building the bitmap.
pub const PASS_THROUGH: [u32; 7] =
    [IA32_FS_BASE, IA32_GS_BASE, IA32_KERNEL_GS_BASE, IA32_STAR, IA32_LSTAR, IA32_CSTAR, IA32_FMASK];

/// Why a write to a VMCS-held MSR is refused (the guest gets #GP(0)).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MsrWriteError {
    /// A reserved bit is set.
    ReservedBits(u64),
    /// EFER.LME changes while paging is on (SDM Vol. 3A, 10.8.5 "Initializing IA-32e Mode").
    LmeWithPaging,
    /// A PAT entry holds a reserved memory type (2, 3, or above 7).
    BadPatType(u64),
    /// A SYSENTER ESP/EIP value is not canonical.
    NonCanonical(u64),
}

impl core::fmt::Display for MsrWriteError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::ReservedBits(bits) => write!(f, "reserved bits {bits:#x} set"),
            Self::LmeWithPaging => f.write_str("EFER.LME changed while CR0.PG=1"),
            Self::BadPatType(value) => write!(f, "PAT value {value:#x} holds a reserved memory type"),
            Self::NonCanonical(value) => write!(f, "{value:#x} is not a canonical address"),
        }
    }
}

/// Checks a guest's write to EFER and returns the value to store. EFER.LMA is
/// read-only for software: the written bit is ignored and the current LMA kept
/// (the CPU sets it when paging turns on with LME=1).
pub const fn check_efer_write(current: u64, value: u64, paging_on: bool) -> Result<u64, MsrWriteError> {
    const LME: u64 = 1 << 8;
    const LMA: u64 = 1 << 10;
    let reserved = value & !EFER_ALLOWED;
    if reserved != 0 {
        return Err(MsrWriteError::ReservedBits(reserved));
    }
    if paging_on && (value & LME) != (current & LME) {
        return Err(MsrWriteError::LmeWithPaging);
    }
    Ok((value & !LMA) | (current & LMA))
}

/// Checks a PAT value: each of the 8 entries must be UC (0), WC (1), WT (4),
/// WP (5), WB (6) or UC- (7) (SDM Vol. 3A, 13.12.2 "IA32_PAT MSR").
pub const fn check_pat_write(value: u64) -> Result<u64, MsrWriteError> {
    let mut entry = 0;
    while entry < 8 {
        let memory_type = (value >> (entry * 8)) & 0xFF;
        if memory_type == 2 || memory_type == 3 || memory_type > 7 {
            return Err(MsrWriteError::BadPatType(value));
        }
        entry += 1;
    }
    Ok(value)
}

/// Checks that a 64-bit address is canonical (48-bit linear addresses).
pub const fn check_canonical(value: u64) -> Result<u64, MsrWriteError> {
    let upper = value >> 47;
    if upper == 0 || upper == 0x1_FFFF {
        Ok(value)
    } else {
        Err(MsrWriteError::NonCanonical(value))
    }
}

/// A 4 KiB MSR bitmap (SDM Vol. 3C, 25.6.9): four 1 KiB quarters — reads of
/// MSRs 0x0–0x1FFF, reads of 0xC0000000–0xC0001FFF, then writes of the same two
/// ranges. A 1 bit means "exit". MSRs outside both ranges always exit.
#[derive(Clone)]
pub struct MsrBitmap(pub [u8; 4096]);

impl MsrBitmap {
    /// Every access exits.
    pub const fn deny_all() -> Self {
        MsrBitmap([0xFF; 4096])
    }

    /// The bitmap for [`policy`]: everything exits but the pass-through MSRs.
    pub fn for_policy() -> Self {
        let mut bitmap = Self::deny_all();
        for msr in PASS_THROUGH {
            bitmap.allow(msr);
        }
        bitmap
    }

    /// The byte and bit of `msr` in the read quarter; the write quarter is 2048 bytes later.
    const fn position(msr: u32) -> Option<(usize, u8)> {
        let (base, index) = match msr {
            0..=0x1FFF => (0, msr),
            0xC000_0000..=0xC000_1FFF => (1024, msr - 0xC000_0000),
            _ => return None,
        };
        Some((base + (index / 8) as usize, (index % 8) as u8))
    }

    /// Lets reads and writes of `msr` reach the hardware.
    pub fn allow(&mut self, msr: u32) {
        if let Some((byte, bit)) = Self::position(msr) {
            self.0[byte] &= !(1 << bit);
            self.0[byte + 2048] &= !(1 << bit);
        }
    }

    /// Whether a read (or write) of `msr` exits.
    pub const fn exits(&self, msr: u32, write: bool) -> bool {
        match Self::position(msr) {
            Some((byte, bit)) => {
                let byte = if write { byte + 2048 } else { byte };
                self.0[byte] & (1 << bit) != 0
            }
            None => true,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_pass_through_msrs_skip_the_exit() {
        let bitmap = MsrBitmap::for_policy();
        for msr in PASS_THROUGH {
            assert!(!bitmap.exits(msr, false), "{msr:#x} read");
            assert!(!bitmap.exits(msr, true), "{msr:#x} write");
            assert_eq!(policy(msr), MsrPolicy::PassThrough);
        }
        let mut exiting = 0;
        for msr in (0..0x2000).chain(0xC000_0000..0xC000_2000) {
            if !PASS_THROUGH.contains(&msr) {
                assert!(bitmap.exits(msr, false) && bitmap.exits(msr, true), "{msr:#x}");
                exiting += 1;
            }
        }
        assert_eq!(exiting, 2 * 0x2000 - PASS_THROUGH.len());
        // Outside both ranges the CPU always exits; so does the policy.
        assert!(bitmap.exits(0x4000_0000, false));
        assert_eq!(policy(0x4000_0000), MsrPolicy::Deny);
    }

    #[test]
    fn hostile_msrs_are_denied() {
        for msr in [0x3A, 0x480, 0x48C, 0x10, 0x48, 0x49, 0x79, 0x1D9, 0x2FF, 0x200, 0xC1, 0x186, 0x800, 0x8FF] {
            assert_eq!(policy(msr), MsrPolicy::Deny, "{msr:#x}");
        }
    }

    #[test]
    fn apic_msrs_are_emulated_and_the_base_cannot_move() {
        assert_eq!(policy(IA32_APIC_BASE), MsrPolicy::Apic(ApicMsr::Base));
        assert_eq!(policy(IA32_TSC_DEADLINE), MsrPolicy::Apic(ApicMsr::TscDeadline));
        assert_eq!(check_apic_base_write(GUEST_APIC_BASE), Ok(GUEST_APIC_BASE));
        // Moving the page, turning the APIC off, x2APIC mode: refused.
        assert!(check_apic_base_write(0xFED0_0900).is_err());
        assert!(check_apic_base_write(GUEST_APIC_BASE & !(1 << 11)).is_err());
        assert!(check_apic_base_write(GUEST_APIC_BASE | (1 << 10)).is_err());
        assert!(MsrBitmap::for_policy().exits(IA32_TSC_DEADLINE, true));
    }

    #[test]
    fn vmcs_held_msrs_are_emulated() {
        assert_eq!(policy(IA32_EFER), MsrPolicy::Vmcs(VmcsMsr::Efer));
        assert_eq!(policy(IA32_PAT), MsrPolicy::Vmcs(VmcsMsr::Pat));
        assert_eq!(policy(IA32_SYSENTER_EIP), MsrPolicy::Vmcs(VmcsMsr::SysenterEip));
    }

    #[test]
    fn efer_writes_are_checked() {
        const LME: u64 = 1 << 8;
        const LMA: u64 = 1 << 10;
        assert_eq!(check_efer_write(0, LME, false), Ok(LME));
        assert_eq!(check_efer_write(LME | LMA, LME | (1 << 11), true), Ok(LME | LMA | (1 << 11)));
        // LMA is read-only: writing 0 keeps it.
        assert_eq!(check_efer_write(LME | LMA, LME, true), Ok(LME | LMA));
        assert_eq!(check_efer_write(0, 1 << 1, false), Err(MsrWriteError::ReservedBits(1 << 1)));
        assert_eq!(check_efer_write(LME | LMA, 0, true), Err(MsrWriteError::LmeWithPaging));
    }

    #[test]
    fn pat_and_canonical_checks() {
        assert_eq!(check_pat_write(0x0007_0406_0007_0406), Ok(0x0007_0406_0007_0406));
        assert!(check_pat_write(0x0000_0000_0000_0002).is_err());
        assert!(check_pat_write(0x0800_0000_0000_0000).is_err());
        assert_eq!(check_canonical(0xFFFF_8000_0000_0000), Ok(0xFFFF_8000_0000_0000));
        assert_eq!(check_canonical(0x0000_7FFF_FFFF_FFFF), Ok(0x0000_7FFF_FFFF_FFFF));
        assert!(check_canonical(0x0000_8000_0000_0000).is_err());
    }
}
