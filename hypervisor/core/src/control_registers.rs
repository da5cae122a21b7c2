//! Emulating a guest's MOV to CR0 or CR4 when it touches bits the hypervisor
//! owns — plain functions of the old state and the value written.
//!
//! The CR0/CR4 guest/host masks mark the bits VMX fixes (SDM Vol. 3C, 25.6.6
//! "Guest/Host Masks and Read Shadows for CR0 and CR4"). A MOV to CR0/CR4
//! whose owned bits differ from the read shadow exits (SDM Vol. 3C, 26.1.3);
//! the instruction has not executed, so the hypervisor performs all of it:
//! the checks the CPU would make (SDM Vol. 3A, 2.5 "Control Registers", and
//! 10.8.5 "Initializing IA-32e Mode"), the guest-visible value (the shadow),
//! the value the CPU runs with (owned bits forced), and the switch into or out
//! of IA-32e mode when CR0.PG changes with EFER.LME set.

use crate::start_state::{CR0_PE, CR0_PG, CR4_PAE};

/// CR0.NW (not write-through).
pub const CR0_NW: u64 = 1 << 29;
/// CR0.CD (cache disable).
pub const CR0_CD: u64 = 1 << 30;
/// EFER.LME.
pub const EFER_LME: u64 = 1 << 8;
/// EFER.LMA.
pub const EFER_LMA: u64 = 1 << 10;

/// The state a CR0 write starts from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cr0Context {
    /// The CR0 the CPU runs with now.
    pub actual: u64,
    /// The bits the hypervisor owns (the CR0 guest/host mask).
    pub owned: u64,
    /// Bits that must be 1 in the actual CR0 (IA32_VMX_CR0_FIXED0, less PE/PG
    /// under unrestricted guest).
    pub must_be_one: u64,
    /// Bits that may be 1 at all (IA32_VMX_CR0_FIXED1).
    pub may_be_one: u64,
    /// The guest's EFER.
    pub efer: u64,
    /// The guest's CR4 (as the CPU runs with it).
    pub cr4: u64,
    /// Whether the guest runs 64-bit code (CS.L = 1 in IA-32e mode): paging
    /// cannot be turned off there, only from compatibility mode.
    pub cs_long: bool,
}

/// What a successful CR0 write changes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cr0Update {
    /// The new CR0 the CPU runs with.
    pub actual: u64,
    /// The new read shadow (what the guest reads back).
    pub shadow: u64,
    /// The new EFER (LMA follows CR0.PG when LME is set).
    pub efer: u64,
    /// The new value of the "IA-32e mode guest" VM-entry control (= EFER.LMA).
    pub ia32e_mode: bool,
}

/// Why a CR0 or CR4 write gets #GP(0).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CrWriteError {
    /// A reserved bit (or a bit this CPU cannot set) is 1.
    ReservedBits(u64),
    /// CR0.PG=1 with CR0.PE=0.
    PagingWithoutProtection,
    /// CR0.NW=1 with CR0.CD=0.
    NotWriteThroughWithoutCacheDisable,
    /// Paging turned on with EFER.LME=1 but CR4.PAE=0.
    LongModeWithoutPae,
    /// CR4.VMXE: VMX is not offered to guests (CPUID hides it).
    Vmxe,
    /// CR0.PG cleared in 64-bit mode (SDM Vol. 3A, 10.8.5.4 "Switching Out
    /// of IA-32e Mode Operation": only compatibility-mode code may do it).
    PagingOffIn64BitMode,
}

impl core::fmt::Display for CrWriteError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::ReservedBits(bits) => write!(f, "reserved bits {bits:#x} set"),
            Self::PagingWithoutProtection => f.write_str("CR0.PG=1 requires CR0.PE=1"),
            Self::NotWriteThroughWithoutCacheDisable => f.write_str("CR0.NW=1 requires CR0.CD=1"),
            Self::LongModeWithoutPae => f.write_str("enabling paging with EFER.LME=1 requires CR4.PAE=1"),
            Self::Vmxe => f.write_str("CR4.VMXE cannot be set: VMX is not available to guests"),
            Self::PagingOffIn64BitMode => f.write_str("CR0.PG cannot be cleared by 64-bit code (CS.L=1)"),
        }
    }
}

/// Emulates `MOV CR0, value`.
pub fn write_cr0(context: &Cr0Context, value: u64) -> Result<Cr0Update, CrWriteError> {
    let reserved = value & (!context.may_be_one | 0xFFFF_FFFF_0000_0000) & !context.must_be_one;
    if reserved != 0 {
        return Err(CrWriteError::ReservedBits(reserved));
    }
    if value & CR0_PG != 0 && value & CR0_PE == 0 {
        return Err(CrWriteError::PagingWithoutProtection);
    }
    if value & CR0_NW != 0 && value & CR0_CD == 0 {
        return Err(CrWriteError::NotWriteThroughWithoutCacheDisable);
    }
    let paging_was_on = context.actual & CR0_PG != 0;
    let paging_on = value & CR0_PG != 0;
    let mut efer = context.efer;
    if paging_was_on && !paging_on && efer & EFER_LMA != 0 && context.cs_long {
        return Err(CrWriteError::PagingOffIn64BitMode);
    }
    if paging_on && !paging_was_on && efer & EFER_LME != 0 {
        if context.cr4 & CR4_PAE == 0 {
            return Err(CrWriteError::LongModeWithoutPae);
        }
        efer |= EFER_LMA;
    }
    if !paging_on {
        efer &= !EFER_LMA;
    }
    Ok(Cr0Update {
        actual: value | context.must_be_one,
        shadow: value & context.owned,
        efer,
        ia32e_mode: efer & EFER_LMA != 0,
    })
}

/// Checks `MOV CR4, value` when it exits: `owned` is the CR4 guest/host mask,
/// `shadow` the current read shadow. Changing an owned bit means setting VMXE
/// or a bit this CPU does not allow: both #GP(0).
pub fn check_cr4_write(value: u64, owned: u64, shadow: u64, vmxe: u64) -> Result<(), CrWriteError> {
    let changed = (value ^ shadow) & owned;
    if changed & vmxe != 0 {
        return Err(CrWriteError::Vmxe);
    }
    if changed != 0 || value >> 32 != 0 {
        return Err(CrWriteError::ReservedBits((changed | value) & (owned | 0xFFFF_FFFF_0000_0000)));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::start_state::{CR0_ET, CR0_NE};

    /// Bochs-like rules with unrestricted guest: NE must be 1; PE/PG free.
    fn context(actual: u64, efer: u64, cr4: u64) -> Cr0Context {
        Cr0Context { actual, owned: CR0_NE, must_be_one: CR0_NE, may_be_one: 0xFFFF_FFFF, efer, cr4, cs_long: false }
    }

    #[test]
    fn paging_stays_on_for_64_bit_code() {
        // Found by the property tests: leaving IA-32e mode is legal only from
        // compatibility mode (CS.L = 0).
        let long = Cr0Context { cs_long: true, ..context(CR0_PE | CR0_PG | CR0_NE, EFER_LME | EFER_LMA, CR4_PAE) };
        assert_eq!(write_cr0(&long, CR0_PE), Err(CrWriteError::PagingOffIn64BitMode));
        // Other bits may still change in 64-bit mode.
        assert!(write_cr0(&long, CR0_PE | CR0_PG | CR0_NE | (1 << 16)).is_ok());
    }

    #[test]
    fn clearing_ne_is_shown_to_the_guest_but_not_done() {
        let update = write_cr0(&context(CR0_PE | CR0_NE | CR0_ET, 0, 0), CR0_PE | CR0_ET).unwrap();
        assert_eq!(update.actual & CR0_NE, CR0_NE);
        assert_eq!(update.shadow & CR0_NE, 0);
    }

    #[test]
    fn paging_with_lme_enters_long_mode_and_leaving_it_clears_lma() {
        let on = write_cr0(&context(CR0_PE | CR0_NE, EFER_LME, CR4_PAE), CR0_PE | CR0_PG).unwrap();
        assert_eq!(on.efer, EFER_LME | EFER_LMA);
        assert!(on.ia32e_mode);
        let off = write_cr0(&context(CR0_PE | CR0_PG | CR0_NE, EFER_LME | EFER_LMA, CR4_PAE), CR0_PE).unwrap();
        assert_eq!(off.efer, EFER_LME);
        assert!(!off.ia32e_mode);
    }

    #[test]
    fn invalid_cr0_values_fault() {
        let ctx = context(CR0_PE | CR0_NE, EFER_LME, 0);
        assert_eq!(write_cr0(&ctx, CR0_PG), Err(CrWriteError::PagingWithoutProtection));
        assert_eq!(write_cr0(&ctx, CR0_PE | CR0_NW), Err(CrWriteError::NotWriteThroughWithoutCacheDisable));
        assert_eq!(write_cr0(&ctx, CR0_PE | CR0_PG), Err(CrWriteError::LongModeWithoutPae));
        assert_eq!(write_cr0(&ctx, CR0_PE | (1 << 40)), Err(CrWriteError::ReservedBits(1 << 40)));
    }

    #[test]
    fn cr4_writes_that_touch_owned_bits_fault() {
        let vmxe = 1 << 13;
        let owned = vmxe | (1 << 25);
        assert_eq!(check_cr4_write(vmxe | CR4_PAE, owned, 0, vmxe), Err(CrWriteError::Vmxe));
        assert_eq!(check_cr4_write(1 << 25, owned, 0, vmxe), Err(CrWriteError::ReservedBits(1 << 25)));
        assert_eq!(check_cr4_write(CR4_PAE, owned, 0, vmxe), Ok(()));
    }
}
