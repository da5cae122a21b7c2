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
use hypervisor_core::start_state::{Segment, StartState, CR0_PE, CR0_PG};
use hypervisor_core::vmcs_field::VmcsField;
use x86_64::instructions::tables::{sgdt, sidt};
use x86_64::registers::control::{Cr0, Cr3, Cr4};

use crate::platform::gdt;
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

    /// Whether the guest may run with paging or protection off.
    pub fn unrestricted_guest(&self) -> bool {
        self.secondary.contains(SecondaryControls::UNRESTRICTED_GUEST)
    }

    /// Whether interrupt-window exiting is available (it is optional in
    /// [`choose_controls`] and off in the VMCS until an interrupt waits).
    pub fn interrupt_window_exiting(&self) -> bool {
        self.primary.contains(PrimaryControls::INTERRUPT_WINDOW_EXITING)
    }

    /// Whether NMI-window exiting is available (it needs virtual NMIs, SDM
    /// Vol. 3C, 26.2.1.1; both optional in [`choose_controls`]).
    pub fn nmi_window_exiting(&self) -> bool {
        self.primary.contains(PrimaryControls::NMI_WINDOW_EXITING) && self.pin.contains(PinBasedControls::VIRTUAL_NMIS)
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
        // Virtual NMIs: the CPU tracks the guest's own NMI blocking, so an
        // NMI-window exit can say when a pending virtual NMI may go in.
        PinBasedControls::ACTIVATE_PREEMPTION_TIMER | PinBasedControls::VIRTUAL_NMIS,
        caps.pin_based,
    )?;
    // HLT ends or parks the guest; every port access is emulated; the MSR
    // bitmap lets only a short allowlist of MSRs through (deny by default).
    let primary = PrimaryControls::adjust(
        PrimaryControls::HLT_EXITING
            | PrimaryControls::UNCONDITIONAL_IO_EXITING
            | PrimaryControls::USE_MSR_BITMAPS
            | PrimaryControls::ACTIVATE_SECONDARY_CONTROLS,
        // Interrupt- and NMI-window exiting: to inject a virtual interrupt
        // or NMI as soon as the guest can take it (`vm::interrupts`).
        PrimaryControls::INTERRUPT_WINDOW_EXITING | PrimaryControls::NMI_WINDOW_EXITING,
        caps.primary,
    )?;
    let secondary = SecondaryControls::adjust(
        SecondaryControls::ENABLE_EPT,
        SecondaryControls::ENABLE_VPID | SecondaryControls::UNRESTRICTED_GUEST,
        caps.secondary,
    )?;
    // A 64-bit host; EFER and PAT switched on every exit and entry. DR7 and
    // IA32_DEBUGCTL saved and loaded with the guest's (VM exit sets DR7 to
    // 0x400 whatever the controls: without them a guest's hardware
    // breakpoints would vanish at its next exit). The preemption timer's
    // count saved on exit, so it measures the slice across exits instead of
    // restarting at every entry (SDM Vol. 3C, 26.5.1).
    let exit = ExitControls::adjust(
        ExitControls::HOST_ADDRESS_SPACE_SIZE | ExitControls::SAVE_IA32_EFER | ExitControls::LOAD_IA32_EFER,
        ExitControls::SAVE_IA32_PAT
            | ExitControls::LOAD_IA32_PAT
            | ExitControls::SAVE_DEBUG_CONTROLS
            | ExitControls::SAVE_PREEMPTION_TIMER_VALUE,
        caps.exit,
    )?;
    let entry = EntryControls::adjust(
        EntryControls::LOAD_IA32_EFER | EntryControls::IA32E_MODE_GUEST,
        EntryControls::LOAD_IA32_PAT | EntryControls::LOAD_DEBUG_CONTROLS,
        caps.entry,
    )?;
    Ok(Controls { pin, primary, secondary, exit, entry })
}

/// Writes the VM-execution, exit and entry control fields of the current VMCS
/// (SDM Vol. 3C, 25.6 "VM-Execution Control Fields", 25.7 "VM-Exit Control
/// Fields", 25.8 "VM-Entry Control Fields").
pub fn write_controls(
    controls: &Controls,
    caps: &VmxCapabilities,
    eptp: u64,
    vpid: u16,
    msr_bitmap: u64,
    start: &StartState,
    time_slice_ticks: u64,
) -> Result<(), VmxError> {
    vmcs::write(VmcsField::PinBasedControls, u64::from(controls.pin.bits()))?;
    // Interrupt- and NMI-window exiting start off: `vm::interrupts` turns them on when needed.
    let primary = controls.primary.bits()
        & !(PrimaryControls::INTERRUPT_WINDOW_EXITING | PrimaryControls::NMI_WINDOW_EXITING).bits();
    vmcs::write(VmcsField::PrimaryProcessorControls, u64::from(primary))?;
    vmcs::write(VmcsField::SecondaryProcessorControls, u64::from(controls.secondary.bits()))?;
    vmcs::write(VmcsField::ExitControls, u64::from(controls.exit.bits()))?;
    let mut entry_controls = controls.entry.bits() & !EntryControls::IA32E_MODE_GUEST.bits();
    if start.ia32e_mode {
        entry_controls |= EntryControls::IA32E_MODE_GUEST.bits();
    }
    vmcs::write(VmcsField::EntryControls, u64::from(entry_controls))?;

    vmcs::write(VmcsField::ExceptionBitmap, 0)?;
    vmcs::write(VmcsField::PageFaultErrorCodeMask, 0)?;
    vmcs::write(VmcsField::PageFaultErrorCodeMatch, 0)?;
    vmcs::write(VmcsField::Cr3TargetCount, 0)?;
    vmcs::write(VmcsField::ExitMsrStoreCount, 0)?;
    vmcs::write(VmcsField::ExitMsrLoadCount, 0)?;
    vmcs::write(VmcsField::EntryMsrLoadCount, 0)?;
    vmcs::write(VmcsField::EntryInterruptionInfo, 0)?;
    vmcs::write(VmcsField::MsrBitmap, msr_bitmap)?;
    vmcs::write(VmcsField::EptPointer, eptp)?;
    if controls.vpid() {
        vmcs::write(VmcsField::VirtualProcessorId, u64::from(vpid))?;
    }
    // The CR0/CR4 bits VMX fixes belong to the hypervisor: the guest reads the
    // shadow, and a write that would change an owned bit exits (SDM Vol. 3C,
    // 25.6.6 "Guest/Host Masks and Read Shadows for CR0 and CR4").
    vmcs::write(VmcsField::Cr0GuestHostMask, cr0_owned_bits(caps, controls))?;
    vmcs::write(VmcsField::Cr0ReadShadow, start.cr0_shadow)?;
    vmcs::write(VmcsField::Cr4GuestHostMask, cr4_owned_bits(caps))?;
    vmcs::write(VmcsField::Cr4ReadShadow, start.cr4_shadow)?;
    if controls.preemption_timer() {
        vmcs::write(VmcsField::VmxPreemptionTimerValue, preemption_timer_value(caps, time_slice_ticks))?;
    }
    Ok(())
}

/// The preemption-timer value for a time slice: the timer counts down at the
/// TSC rate divided by 2^IA32_VMX_MISC\[4:0\] (SDM Vol. 3C, 26.5.1
/// "VMX-Preemption Timer").
pub fn preemption_timer_value(caps: &VmxCapabilities, time_slice_ticks: u64) -> u64 {
    (time_slice_ticks >> caps.misc.preemption_timer_rate()).clamp(1, u64::from(u32::MAX))
}

/// The CR0 bits the hypervisor owns: those VMX fixes to 1 or 0, less PE and PG
/// under unrestricted guest (SDM Vol. 3C, 27.3.1.1 "Checks on Guest Control
/// Registers, Debug Registers, and MSRs"), within the low 32 bits.
pub fn cr0_owned_bits(caps: &VmxCapabilities, controls: &Controls) -> u64 {
    let exempt = if controls.unrestricted_guest() { CR0_PE | CR0_PG } else { 0 };
    (caps.cr0.fixed0 | !caps.cr0.fixed1) & 0xFFFF_FFFF & !exempt
}

/// The CR4 bits the hypervisor owns: VMXE and every bit this CPU does not allow.
pub fn cr4_owned_bits(caps: &VmxCapabilities) -> u64 {
    (caps.cr4.fixed0 | !caps.cr4.fixed1) & 0xFFFF_FFFF
}

/// Writes the host-state area from this CPU's live state (SDM Vol. 3C, 25.5
/// "Host-State Area"); a VM exit loads exactly this.
pub fn write_host_state(controls: &Controls) -> Result<(), VmxError> {
    let selectors = gdt::selectors();
    vmcs::write(VmcsField::HostCr0, Cr0::read_raw())?;
    let (level_4, cr3_flags) = Cr3::read_raw();
    vmcs::write(VmcsField::HostCr3, level_4.start_address().as_u64() | u64::from(cr3_flags))?;
    vmcs::write(VmcsField::HostCr4, Cr4::read_raw())?;
    // Selector RPL and TI must be 0 (SDM Vol. 3C, 27.2.3 "Checks on Host Segment
    // and Descriptor-Table Registers"); FS/GS are null.
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

/// Writes the guest-state area (SDM Vol. 3C, 25.4 "Guest-State Area") from a
/// [`StartState`] built by [`hypervisor_core::start_state::start_state`].
pub fn write_guest_state(start: &StartState, controls: &Controls) -> Result<(), VmxError> {
    vmcs::write(VmcsField::GuestCr0, start.cr0)?;
    vmcs::write(VmcsField::GuestCr3, start.cr3)?;
    vmcs::write(VmcsField::GuestCr4, start.cr4)?;
    vmcs::write(VmcsField::GuestDr7, 0x400)?;
    vmcs::write(VmcsField::GuestRsp, start.rsp)?;
    vmcs::write(VmcsField::GuestRip, start.rip)?;
    vmcs::write(VmcsField::GuestRflags, 0x2)?;

    write_segment(SegmentFields::CS, &start.cs)?;
    for fields in [SegmentFields::SS, SegmentFields::DS, SegmentFields::ES, SegmentFields::FS, SegmentFields::GS] {
        write_segment(fields, &start.data)?;
    }
    // TR must be usable and a busy TSS even if the guest never uses it; LDTR unusable.
    write_segment(SegmentFields::TR, &start.tr)?;
    write_segment(SegmentFields::LDTR, &Segment::UNUSABLE)?;
    // The guest brings its own GDT and IDT (real mode: the IVT at 0). An
    // exception before it has an IDT escalates to a triple fault, which exits.
    vmcs::write(VmcsField::GuestGdtrBase, start.gdtr.0)?;
    vmcs::write(VmcsField::GuestGdtrLimit, u64::from(start.gdtr.1))?;
    vmcs::write(VmcsField::GuestIdtrBase, start.idtr.0)?;
    vmcs::write(VmcsField::GuestIdtrLimit, u64::from(start.idtr.1))?;

    vmcs::write(VmcsField::GuestIa32Efer, start.efer)?;
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
    // No shadow VMCS: the link pointer must be all ones (SDM Vol. 3C, 25.4.2
    // "Guest Non-Register State").
    vmcs::write(VmcsField::VmcsLinkPointer, u64::MAX)?;
    Ok(())
}

/// The four VMCS fields of one segment register.
#[derive(Clone, Copy)]
struct SegmentFields {
    selector: VmcsField,
    base: VmcsField,
    limit: VmcsField,
    access_rights: VmcsField,
}

impl SegmentFields {
    const CS: Self = Self::new(
        VmcsField::GuestCsSelector,
        VmcsField::GuestCsBase,
        VmcsField::GuestCsLimit,
        VmcsField::GuestCsAccessRights,
    );
    const SS: Self = Self::new(
        VmcsField::GuestSsSelector,
        VmcsField::GuestSsBase,
        VmcsField::GuestSsLimit,
        VmcsField::GuestSsAccessRights,
    );
    const DS: Self = Self::new(
        VmcsField::GuestDsSelector,
        VmcsField::GuestDsBase,
        VmcsField::GuestDsLimit,
        VmcsField::GuestDsAccessRights,
    );
    const ES: Self = Self::new(
        VmcsField::GuestEsSelector,
        VmcsField::GuestEsBase,
        VmcsField::GuestEsLimit,
        VmcsField::GuestEsAccessRights,
    );
    const FS: Self = Self::new(
        VmcsField::GuestFsSelector,
        VmcsField::GuestFsBase,
        VmcsField::GuestFsLimit,
        VmcsField::GuestFsAccessRights,
    );
    const GS: Self = Self::new(
        VmcsField::GuestGsSelector,
        VmcsField::GuestGsBase,
        VmcsField::GuestGsLimit,
        VmcsField::GuestGsAccessRights,
    );
    const TR: Self = Self::new(
        VmcsField::GuestTrSelector,
        VmcsField::GuestTrBase,
        VmcsField::GuestTrLimit,
        VmcsField::GuestTrAccessRights,
    );
    const LDTR: Self = Self::new(
        VmcsField::GuestLdtrSelector,
        VmcsField::GuestLdtrBase,
        VmcsField::GuestLdtrLimit,
        VmcsField::GuestLdtrAccessRights,
    );

    const fn new(selector: VmcsField, base: VmcsField, limit: VmcsField, access_rights: VmcsField) -> Self {
        Self { selector, base, limit, access_rights }
    }
}

fn write_segment(fields: SegmentFields, segment: &Segment) -> Result<(), VmxError> {
    vmcs::write(fields.selector, u64::from(segment.selector))?;
    vmcs::write(fields.base, segment.base)?;
    vmcs::write(fields.limit, u64::from(segment.limit))?;
    vmcs::write(fields.access_rights, u64::from(segment.access_rights))
}
