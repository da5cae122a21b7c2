//! Filling a new guest's VMCS: controls, host state, guest state.
//!
//! The three areas of the VMCS (SDM Vol. 3C, 25.3 "Organization of VMCS
//! Data"), in the order the CPU checks them on VM entry (SDM Vol. 3C, 27.2
//! "Checks on VMX Controls and Host-State Area", 27.3 "Checking and Loading
//! Guest State").

use hypervisor_core::caps::VmxCapabilities;
use hypervisor_core::controls::{
    ControlError, EntryControls, ExitControls, PinBasedControls, PrimaryControls, SecondaryControls,
};
use hypervisor_core::vmcs_field::VmcsField;
use x86_64::instructions::tables::{sgdt, sidt};
use x86_64::registers::control::{Cr0, Cr3, Cr4};

use crate::platform::gdt;
use crate::vm::loader::EntryPoint;
use crate::vmx::read_msr;
use crate::vmx::run::host_rip;
use crate::vmx::vmcs::{self, VmxError};

/// IA32_SYSENTER_CS/ESP/EIP, IA32_EFER, IA32_PAT, IA32_FS_BASE, IA32_GS_BASE.
const IA32_SYSENTER_CS: u32 = 0x174;
const IA32_SYSENTER_ESP: u32 = 0x175;
const IA32_SYSENTER_EIP: u32 = 0x176;
const IA32_EFER: u32 = 0xC000_0080;
const IA32_PAT: u32 = 0x277;
const IA32_FS_BASE: u32 = 0xC000_0100;
const IA32_GS_BASE: u32 = 0xC000_0101;

/// The PAT value after reset (SDM Vol. 3A, 13.12.4 "Programming the PAT").
const PAT_POWER_ON: u64 = 0x0007_0406_0007_0406;

/// EFER.LME (bit 8) and EFER.LMA (bit 10).
const EFER_LME_LMA: u64 = (1 << 8) | (1 << 10);
/// CR4.VMXE: must be 1 in VMX operation, also in the guest's real CR4; the
/// read shadow hides it from the guest.
const CR4_VMXE: u64 = 1 << 13;
/// CR4.PAE, needed for long mode.
const CR4_PAE: u64 = 1 << 5;
/// CR0: PE | MP | ET | NE | WP | PG.
const CR0_LONG_MODE: u64 = 0x8001_0033;

/// Access rights in the VMCS format (SDM Vol. 3C, 25.4.1 "Guest Register State",
/// Table "Format of Access Rights"): type, S, DPL, P, L, D/B, G; bit 16 = unusable.
const ACCESS_CODE64: u64 = 0xA09B; // execute/read, accessed, S, P, L, G
const ACCESS_DATA: u64 = 0xC093; // read/write, accessed, S, P, D/B, G
const ACCESS_TSS_BUSY64: u64 = 0x008B; // 64-bit busy TSS, P
const ACCESS_UNUSABLE: u64 = 1 << 16;

/// The control words chosen for this CPU, computed once.
#[derive(Debug, Clone, Copy)]
pub struct Controls {
    /// Pin-based VM-execution controls.
    pub pin: PinBasedControls,
    /// Primary processor-based VM-execution controls.
    pub primary: PrimaryControls,
    /// Secondary processor-based VM-execution controls.
    pub secondary: SecondaryControls,
    /// VM-exit controls.
    pub exit: ExitControls,
    /// VM-entry controls (IA-32e mode guest is added per guest).
    pub entry: EntryControls,
}

impl Controls {
    /// Whether the preemption timer is on.
    pub fn preemption_timer(&self) -> bool {
        self.pin.contains(PinBasedControls::ACTIVATE_PREEMPTION_TIMER)
    }

    /// Whether VPIDs tag this guest's TLB entries.
    pub fn vpid(&self) -> bool {
        self.secondary.contains(SecondaryControls::ENABLE_VPID)
    }
}

/// Computes the controls from the capability MSRs (SDM Vol. 3C, A.3–A.5):
/// what the hypervisor needs is *required* (an error names it if missing),
/// what it can do without is *optional*.
pub fn choose_controls(caps: &VmxCapabilities) -> Result<Controls, ControlError> {
    // The host owns the machine's interrupts and NMIs.
    let pin = PinBasedControls::adjust(
        PinBasedControls::EXTERNAL_INTERRUPT_EXITING | PinBasedControls::NMI_EXITING,
        PinBasedControls::ACTIVATE_PREEMPTION_TIMER,
        caps.pin_based,
    )?;
    // HLT ends or parks the guest; every port access is emulated; no MSR
    // bitmap, so every RDMSR/WRMSR exits (deny by default).
    let primary = PrimaryControls::adjust(
        PrimaryControls::HLT_EXITING
            | PrimaryControls::UNCONDITIONAL_IO_EXITING
            | PrimaryControls::ACTIVATE_SECONDARY_CONTROLS,
        PrimaryControls::empty(),
        caps.primary,
    )?;
    let secondary = SecondaryControls::adjust(
        SecondaryControls::ENABLE_EPT,
        SecondaryControls::ENABLE_VPID | SecondaryControls::UNRESTRICTED_GUEST,
        caps.secondary,
    )?;
    // A 64-bit host; EFER and PAT switched on every exit and entry.
    let exit = ExitControls::adjust(
        ExitControls::HOST_ADDRESS_SPACE_SIZE | ExitControls::SAVE_IA32_EFER | ExitControls::LOAD_IA32_EFER,
        ExitControls::SAVE_IA32_PAT | ExitControls::LOAD_IA32_PAT,
        caps.exit,
    )?;
    let entry = EntryControls::adjust(
        EntryControls::LOAD_IA32_EFER | EntryControls::IA32E_MODE_GUEST,
        EntryControls::LOAD_IA32_PAT,
        caps.entry,
    )?;
    Ok(Controls { pin, primary, secondary, exit, entry })
}

/// Writes the VM-execution, exit and entry control fields of the current VMCS
/// (SDM Vol. 3C, 25.6 "VM-Execution Control Fields", 25.7, 25.8).
pub fn write_controls(
    controls: &Controls,
    caps: &VmxCapabilities,
    eptp: u64,
    vpid: u16,
    entry: &EntryPoint,
) -> Result<(), VmxError> {
    vmcs::write(VmcsField::PinBasedControls, u64::from(controls.pin.bits()))?;
    vmcs::write(VmcsField::PrimaryProcessorControls, u64::from(controls.primary.bits()))?;
    vmcs::write(VmcsField::SecondaryProcessorControls, u64::from(controls.secondary.bits()))?;
    vmcs::write(VmcsField::ExitControls, u64::from(controls.exit.bits()))?;
    let mut entry_controls = controls.entry;
    if entry.mode != hypervisor_core::config::StartMode::Long {
        entry_controls = EntryControls(entry_controls.bits() & !EntryControls::IA32E_MODE_GUEST.bits());
    }
    vmcs::write(VmcsField::EntryControls, u64::from(entry_controls.bits()))?;

    vmcs::write(VmcsField::ExceptionBitmap, 0)?;
    vmcs::write(VmcsField::PageFaultErrorCodeMask, 0)?;
    vmcs::write(VmcsField::PageFaultErrorCodeMatch, 0)?;
    vmcs::write(VmcsField::Cr3TargetCount, 0)?;
    vmcs::write(VmcsField::ExitMsrStoreCount, 0)?;
    vmcs::write(VmcsField::ExitMsrLoadCount, 0)?;
    vmcs::write(VmcsField::EntryMsrLoadCount, 0)?;
    vmcs::write(VmcsField::EntryInterruptionInfo, 0)?;
    vmcs::write(VmcsField::EptPointer, eptp)?;
    if controls.vpid() {
        vmcs::write(VmcsField::VirtualProcessorId, u64::from(vpid))?;
    }
    // The CR0/CR4 bits VMX fixes belong to the hypervisor: the guest reads the
    // shadow, and a write that would change an owned bit exits (SDM Vol. 3C,
    // 25.6.6 "Guest/Host Masks and Read Shadows for CR0 and CR4").
    let (cr0, cr4) = guest_control_registers(caps, controls);
    let cr0_owned = owned_bits(caps.cr0.fixed0, caps.cr0.fixed1) & !unrestricted_exempt(controls);
    vmcs::write(VmcsField::Cr0GuestHostMask, cr0_owned)?;
    vmcs::write(VmcsField::Cr0ReadShadow, cr0)?;
    vmcs::write(VmcsField::Cr4GuestHostMask, owned_bits(caps.cr4.fixed0, caps.cr4.fixed1))?;
    vmcs::write(VmcsField::Cr4ReadShadow, cr4 & !CR4_VMXE)?;
    if controls.preemption_timer() {
        vmcs::write(VmcsField::VmxPreemptionTimerValue, u64::from(u32::MAX))?;
    }
    Ok(())
}

/// Bits VMX fixes to 1 (fixed0 set) or to 0 (fixed1 clear), within the low 32.
fn owned_bits(fixed0: u64, fixed1: u64) -> u64 {
    (fixed0 | !fixed1) & 0xFFFF_FFFF
}

/// With unrestricted guest, CR0.PE and CR0.PG are the guest's own (SDM Vol. 3C,
/// 27.3.1.1 "Checks on Guest Control Registers, Debug Registers, and MSRs").
fn unrestricted_exempt(controls: &Controls) -> u64 {
    if controls.secondary.contains(SecondaryControls::UNRESTRICTED_GUEST) {
        (1 << 0) | (1 << 31)
    } else {
        0
    }
}

/// The guest's starting CR0 and CR4 (long mode), with the VMX fixed bits applied.
fn guest_control_registers(caps: &VmxCapabilities, _controls: &Controls) -> (u64, u64) {
    let cr0 = caps.cr0.apply(CR0_LONG_MODE);
    let cr4 = caps.cr4.apply(CR4_PAE | CR4_VMXE);
    (cr0, cr4)
}

/// Writes the host-state area from this CPU's live state (SDM Vol. 3C, 25.5
/// "Host-State Area"); a VM exit loads exactly this.
pub fn write_host_state(controls: &Controls) -> Result<(), VmxError> {
    let selectors = gdt::selectors();
    vmcs::write(VmcsField::HostCr0, Cr0::read_raw())?;
    let (level_4, cr3_flags) = Cr3::read_raw();
    vmcs::write(VmcsField::HostCr3, level_4.start_address().as_u64() | u64::from(cr3_flags))?;
    vmcs::write(VmcsField::HostCr4, Cr4::read_raw())?;
    // Selector RPL and TI must be 0 (SDM Vol. 3C, 27.2.3); FS/GS are null.
    vmcs::write(VmcsField::HostCsSelector, u64::from(selectors.code.0))?;
    vmcs::write(VmcsField::HostSsSelector, u64::from(selectors.data.0))?;
    vmcs::write(VmcsField::HostDsSelector, u64::from(selectors.data.0))?;
    vmcs::write(VmcsField::HostEsSelector, u64::from(selectors.data.0))?;
    vmcs::write(VmcsField::HostFsSelector, 0)?;
    vmcs::write(VmcsField::HostGsSelector, 0)?;
    vmcs::write(VmcsField::HostTrSelector, u64::from(selectors.tss.0))?;
    // SAFETY (all reads below): these MSRs exist on every x86-64 CPU with VMX.
    unsafe {
        vmcs::write(VmcsField::HostFsBase, read_msr(IA32_FS_BASE))?;
        vmcs::write(VmcsField::HostGsBase, read_msr(IA32_GS_BASE))?;
        vmcs::write(VmcsField::HostIa32SysenterCs, read_msr(IA32_SYSENTER_CS))?;
        vmcs::write(VmcsField::HostIa32SysenterEsp, read_msr(IA32_SYSENTER_ESP))?;
        vmcs::write(VmcsField::HostIa32SysenterEip, read_msr(IA32_SYSENTER_EIP))?;
        vmcs::write(VmcsField::HostIa32Efer, read_msr(IA32_EFER))?;
        if controls.exit.contains(ExitControls::LOAD_IA32_PAT) {
            vmcs::write(VmcsField::HostIa32Pat, read_msr(IA32_PAT))?;
        }
    }
    vmcs::write(VmcsField::HostTrBase, gdt::tss_base())?;
    vmcs::write(VmcsField::HostGdtrBase, sgdt().base.as_u64())?;
    vmcs::write(VmcsField::HostIdtrBase, sidt().base.as_u64())?;
    // HOST_RSP is written by the entry stub right before each entry.
    vmcs::write(VmcsField::HostRip, host_rip())?;
    Ok(())
}

/// Writes the guest-state area for a guest that starts in 64-bit mode at
/// `entry` (SDM Vol. 3C, 25.4 "Guest-State Area").
pub fn write_guest_state(caps: &VmxCapabilities, controls: &Controls, entry: &EntryPoint) -> Result<(), VmxError> {
    let (cr0, cr4) = guest_control_registers(caps, controls);
    vmcs::write(VmcsField::GuestCr0, cr0)?;
    vmcs::write(VmcsField::GuestCr3, entry.cr3)?;
    vmcs::write(VmcsField::GuestCr4, cr4)?;
    vmcs::write(VmcsField::GuestDr7, 0x400)?;
    vmcs::write(VmcsField::GuestRsp, entry.rsp)?;
    vmcs::write(VmcsField::GuestRip, entry.rip)?;
    vmcs::write(VmcsField::GuestRflags, 0x2)?;

    // Flat segments: CS 64-bit code (selector 0x08), data segments 0x10.
    let data_segments = [
        (VmcsField::GuestSsSelector, VmcsField::GuestSsBase, VmcsField::GuestSsLimit, VmcsField::GuestSsAccessRights),
        (VmcsField::GuestDsSelector, VmcsField::GuestDsBase, VmcsField::GuestDsLimit, VmcsField::GuestDsAccessRights),
        (VmcsField::GuestEsSelector, VmcsField::GuestEsBase, VmcsField::GuestEsLimit, VmcsField::GuestEsAccessRights),
        (VmcsField::GuestFsSelector, VmcsField::GuestFsBase, VmcsField::GuestFsLimit, VmcsField::GuestFsAccessRights),
        (VmcsField::GuestGsSelector, VmcsField::GuestGsBase, VmcsField::GuestGsLimit, VmcsField::GuestGsAccessRights),
    ];
    vmcs::write(VmcsField::GuestCsSelector, 0x08)?;
    vmcs::write(VmcsField::GuestCsBase, 0)?;
    vmcs::write(VmcsField::GuestCsLimit, 0xFFFF_FFFF)?;
    vmcs::write(VmcsField::GuestCsAccessRights, ACCESS_CODE64)?;
    for (selector, base, limit, access) in data_segments {
        vmcs::write(selector, 0x10)?;
        vmcs::write(base, 0)?;
        vmcs::write(limit, 0xFFFF_FFFF)?;
        vmcs::write(access, ACCESS_DATA)?;
    }
    // TR must be usable and a busy TSS even if the guest never uses it; LDTR unusable.
    vmcs::write(VmcsField::GuestTrSelector, 0x18)?;
    vmcs::write(VmcsField::GuestTrBase, 0)?;
    vmcs::write(VmcsField::GuestTrLimit, 0x67)?;
    vmcs::write(VmcsField::GuestTrAccessRights, ACCESS_TSS_BUSY64)?;
    vmcs::write(VmcsField::GuestLdtrSelector, 0)?;
    vmcs::write(VmcsField::GuestLdtrBase, 0)?;
    vmcs::write(VmcsField::GuestLdtrLimit, 0)?;
    vmcs::write(VmcsField::GuestLdtrAccessRights, ACCESS_UNUSABLE)?;
    // No GDT or IDT yet: the guest installs its own. An exception before then
    // escalates to a triple fault, which exits.
    vmcs::write(VmcsField::GuestGdtrBase, 0)?;
    vmcs::write(VmcsField::GuestGdtrLimit, 0)?;
    vmcs::write(VmcsField::GuestIdtrBase, 0)?;
    vmcs::write(VmcsField::GuestIdtrLimit, 0)?;

    vmcs::write(VmcsField::GuestIa32Efer, EFER_LME_LMA)?;
    if controls.entry.contains(EntryControls::LOAD_IA32_PAT) {
        vmcs::write(VmcsField::GuestIa32Pat, PAT_POWER_ON)?;
    }
    vmcs::write(VmcsField::GuestIa32Debugctl, 0)?;
    vmcs::write(VmcsField::GuestIa32SysenterCs, 0)?;
    vmcs::write(VmcsField::GuestIa32SysenterEsp, 0)?;
    vmcs::write(VmcsField::GuestIa32SysenterEip, 0)?;
    vmcs::write(VmcsField::GuestInterruptibilityState, 0)?;
    vmcs::write(VmcsField::GuestActivityState, 0)?;
    vmcs::write(VmcsField::GuestPendingDebugExceptions, 0)?;
    // No shadow VMCS: the link pointer must be all ones (SDM Vol. 3C, 25.4.2).
    vmcs::write(VmcsField::VmcsLinkPointer, u64::MAX)?;
    Ok(())
}
