//! The CPU state a guest starts in, for each start mode, as plain data.
//!
//! The hypervisor writes these values into the VMCS guest-state area (SDM
//! Vol. 3C, 25.4 "Guest-State Area"); they must pass the VM-entry checks of
//! SDM Vol. 3C, 27.3.1 "Checks on the Guest State Area". Two things make the
//! real- and protected-mode starts possible:
//!
//! - **unrestricted guest** (a secondary control) lets the guest run with
//!   CR0.PE=0 or CR0.PG=0, as long as EPT is on;
//! - the **CR0/CR4 read shadows** let the guest *see* the values a real CPU
//!   would have after its own mode switch, while the *actual* registers keep
//!   the bits VMX fixes (CR0.NE=1 and CR4.VMXE=1 in VMX operation).

use crate::caps::FixedBits;
use crate::config::StartMode;

/// CR0.PE: protection enable.
pub const CR0_PE: u64 = 1 << 0;
/// CR0.MP: monitor coprocessor.
pub const CR0_MP: u64 = 1 << 1;
/// CR0.ET: extension type (hard-wired to 1 on modern CPUs).
pub const CR0_ET: u64 = 1 << 4;
/// CR0.NE: numeric error.
pub const CR0_NE: u64 = 1 << 5;
/// CR0.WP: write protect.
pub const CR0_WP: u64 = 1 << 16;
/// CR0.PG: paging.
pub const CR0_PG: u64 = 1 << 31;
/// CR4.PAE: physical address extension (required for long mode).
pub const CR4_PAE: u64 = 1 << 5;
/// CR4.VMXE: VMX enable; must be 1 in VMX operation, hidden from the guest.
pub const CR4_VMXE: u64 = 1 << 13;
/// EFER.LME and EFER.LMA.
pub const EFER_LONG_MODE: u64 = (1 << 8) | (1 << 10);

/// Where a flat real-mode image is loaded and entered (like a BIOS boot sector).
pub const REAL_MODE_LOAD: u64 = 0x7C00;
/// Where a flat protected-mode image is loaded and entered.
pub const PROTECTED_MODE_LOAD: u64 = 0x10_0000;
/// A real-mode image must end below the legacy video/ROM hole.
pub const REAL_MODE_LIMIT: u64 = 0xA_0000;

/// One segment register in VMCS form.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Segment {
    /// The selector.
    pub selector: u16,
    /// The base address.
    pub base: u64,
    /// The limit (in bytes, already scaled by G).
    pub limit: u32,
    /// The access rights in VMCS format (SDM Vol. 3C, 25.4.1, Table "Format of
    /// Access Rights"): type 3:0, S 4, DPL 6:5, P 7, AVL 12, L 13, D/B 14, G 15,
    /// unusable 16.
    pub access_rights: u32,
}

impl Segment {
    /// A segment register marked unusable (bit 16), e.g. the LDTR nobody loaded.
    pub const UNUSABLE: Segment = Segment { selector: 0, base: 0, limit: 0, access_rights: 1 << 16 };
}

/// Access rights: present, S=1 (code/data), type "execute/read, accessed".
const CODE_ACCESSED: u32 = 0x9B;
/// Present, S=1, type "read/write, accessed".
const DATA_ACCESSED: u32 = 0x93;
/// Present, system, type 11: a busy 32/64-bit TSS.
const TSS_BUSY: u32 = 0x8B;
/// G=1 (4 KiB granularity), D/B=1 (32-bit).
const GRANULAR_32: u32 = (1 << 15) | (1 << 14);
/// G=1, L=1 (64-bit code).
const GRANULAR_64: u32 = (1 << 15) | (1 << 13);

/// Everything that differs between start modes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StartState {
    /// The mode.
    pub mode: StartMode,
    /// CR0 as the CPU runs with it (VMX fixed bits applied).
    pub cr0: u64,
    /// CR0 as the guest reads it.
    pub cr0_shadow: u64,
    /// CR4 as the CPU runs with it.
    pub cr4: u64,
    /// CR4 as the guest reads it.
    pub cr4_shadow: u64,
    /// CR3 (long mode: the identity tables).
    pub cr3: u64,
    /// IA32_EFER.
    pub efer: u64,
    /// The "IA-32e mode guest" VM-entry control.
    pub ia32e_mode: bool,
    /// CS.
    pub cs: Segment,
    /// SS, DS, ES, FS and GS.
    pub data: Segment,
    /// TR.
    pub tr: Segment,
    /// GDTR (base, limit).
    pub gdtr: (u64, u32),
    /// IDTR (base, limit).
    pub idtr: (u64, u32),
    /// RIP.
    pub rip: u64,
    /// RSP.
    pub rsp: u64,
    /// RDX: the BIOS boot drive (0x80) for real mode, 0 otherwise.
    pub rdx: u64,
}

/// The state a guest starts in. `entry`, `stack` and `cr3` come from the loader
/// (long mode: the ELF entry point, just below the reserved region, the identity
/// tables; other modes: ignored, the fixed load addresses are used).
/// `cr0_fixed`/`cr4_fixed` come from the capability MSRs; `unrestricted` says
/// whether the unrestricted-guest control is on (needed for real and protected mode).
pub fn start_state(
    mode: StartMode,
    entry: u64,
    stack: u64,
    cr3: u64,
    cr0_fixed: FixedBits,
    cr4_fixed: FixedBits,
    unrestricted: bool,
) -> Result<StartState, StartStateError> {
    let cr0_rules = if unrestricted { cr0_fixed.relaxed(CR0_PE | CR0_PG) } else { cr0_fixed };
    let (cr0_guest, cr4_guest) = match mode {
        // After reset CR0 = 0x60000010 (CD, NW, ET); caching stays on here: the
        // guest's memory is write-back through EPT either way.
        StartMode::Real => (CR0_ET, 0),
        StartMode::Protected => (CR0_PE | CR0_ET, 0),
        StartMode::Long => (CR0_PE | CR0_MP | CR0_ET | CR0_NE | CR0_WP | CR0_PG, CR4_PAE),
    };
    if mode != StartMode::Long && !unrestricted {
        return Err(StartStateError::NeedsUnrestrictedGuest(mode));
    }
    let cr0 = cr0_rules.apply(cr0_guest);
    let cr4 = cr4_fixed.apply(cr4_guest | CR4_VMXE);
    let flat = |access: u32, limit: u32, selector: u16| Segment { selector, base: 0, limit, access_rights: access };
    // Protected mode is the baseline: flat 4 GiB segments from a GDT the guest
    // has yet to load, entered at the fixed load address.
    let protected = StartState {
        mode,
        cr0,
        cr0_shadow: cr0_guest,
        cr4,
        cr4_shadow: cr4_guest,
        cr3: 0,
        efer: 0,
        ia32e_mode: false,
        cs: flat(CODE_ACCESSED | GRANULAR_32, 0xFFFF_FFFF, 0x08),
        data: flat(DATA_ACCESSED | GRANULAR_32, 0xFFFF_FFFF, 0x10),
        tr: flat(TSS_BUSY, 0x67, 0x18),
        gdtr: (0, 0),
        idtr: (0, 0),
        rip: PROTECTED_MODE_LOAD,
        rsp: PROTECTED_MODE_LOAD,
        rdx: 0,
    };
    let state = match mode {
        // 64 KiB segments at 0, like after a BIOS boot.
        StartMode::Real => StartState {
            cs: flat(CODE_ACCESSED, 0xFFFF, 0),
            data: flat(DATA_ACCESSED, 0xFFFF, 0),
            tr: flat(TSS_BUSY, 0xFFFF, 0),
            gdtr: (0, 0xFFFF),
            // The real-mode interrupt vector table at 0: 256 four-byte vectors.
            idtr: (0, 0x3FF),
            rip: REAL_MODE_LOAD,
            rsp: REAL_MODE_LOAD,
            rdx: 0x80,
            ..protected
        },
        StartMode::Protected => protected,
        // 64-bit code, paging with the loader's tables, the loader's entry and stack.
        StartMode::Long => StartState {
            cr3,
            efer: EFER_LONG_MODE,
            ia32e_mode: true,
            cs: flat(CODE_ACCESSED | GRANULAR_64, 0xFFFF_FFFF, 0x08),
            rip: entry,
            rsp: stack,
            ..protected
        },
    };
    Ok(state)
}

/// Why a start state cannot be built on this CPU.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StartStateError {
    /// Real and protected mode with paging off need the unrestricted-guest control.
    NeedsUnrestrictedGuest(StartMode),
}

impl core::fmt::Display for StartStateError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::NeedsUnrestrictedGuest(mode) => {
                write!(f, "starting in {mode} mode needs the 'unrestricted guest' control, which this CPU lacks")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Bochs' fixed bits: CR0 PE, NE, PG fixed to 1; CR4 VMXE fixed to 1.
    const CR0_FIXED: FixedBits = FixedBits { fixed0: 0x8000_0021, fixed1: 0xFFFF_FFFF };
    const CR4_FIXED: FixedBits = FixedBits { fixed0: 0x2000, fixed1: 0x3F_77FF };

    #[test]
    fn real_mode_starts_at_the_boot_sector_address_with_paging_and_protection_off() {
        let state = start_state(StartMode::Real, 0, 0, 0, CR0_FIXED, CR4_FIXED, true).unwrap();
        assert_eq!(state.rip, 0x7C00);
        assert_eq!(state.rsp, 0x7C00);
        assert_eq!(state.cr0 & (CR0_PE | CR0_PG), 0);
        assert_eq!(state.cr0 & CR0_NE, CR0_NE, "NE stays fixed to 1 in VMX operation");
        assert_eq!(state.cr0_shadow & CR0_NE, 0, "the guest does not see NE");
        assert_eq!(state.cr4 & CR4_VMXE, CR4_VMXE);
        assert_eq!(state.cr4_shadow & CR4_VMXE, 0);
        assert_eq!(state.cs.limit, 0xFFFF);
        assert!(!state.ia32e_mode);
        assert_eq!(state.rdx, 0x80);
    }

    #[test]
    fn protected_mode_is_flat_32_bit_without_paging() {
        let state = start_state(StartMode::Protected, 0, 0, 0, CR0_FIXED, CR4_FIXED, true).unwrap();
        assert_eq!(state.rip, 0x10_0000);
        assert_eq!(state.cr0 & (CR0_PE | CR0_PG), CR0_PE);
        assert_eq!(state.cs.access_rights & (1 << 14), 1 << 14, "CS.D = 1: 32-bit code");
        assert_eq!(state.cs.limit, 0xFFFF_FFFF);
        assert_eq!(state.efer, 0);
    }

    #[test]
    fn long_mode_has_paging_pae_and_lma() {
        let state = start_state(StartMode::Long, 0x10_1000, 0x1F_A000, 0x1F_A000, CR0_FIXED, CR4_FIXED, true).unwrap();
        assert_eq!(state.cr0 & (CR0_PE | CR0_PG), CR0_PE | CR0_PG);
        assert_eq!(state.cr4 & CR4_PAE, CR4_PAE);
        assert_eq!(state.efer, EFER_LONG_MODE);
        assert!(state.ia32e_mode);
        assert_eq!(state.cs.access_rights & (1 << 13), 1 << 13, "CS.L = 1");
        assert_eq!((state.rip, state.rsp, state.cr3), (0x10_1000, 0x1F_A000, 0x1F_A000));
        assert!(CR0_FIXED.is_valid(state.cr0));
        assert!(CR4_FIXED.is_valid(state.cr4));
    }

    #[test]
    fn real_mode_needs_unrestricted_guest() {
        assert_eq!(
            start_state(StartMode::Real, 0, 0, 0, CR0_FIXED, CR4_FIXED, false),
            Err(StartStateError::NeedsUnrestrictedGuest(StartMode::Real))
        );
        assert!(start_state(StartMode::Long, 0, 0, 0, CR0_FIXED, CR4_FIXED, false).is_ok());
    }
}
