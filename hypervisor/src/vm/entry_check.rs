//! The software VM-entry checker in the kernel: reads the current VMCS into a
//! [`VmcsImage`], checks it ([`hypervisor_core::entry_check::check`]) and, for
//! `--break-entry`, corrupts it on purpose so the reader can compare the
//! software diagnosis with the hardware's answer (SDM Vol. 3C, 27.2 "Checks
//! on VMX Controls and Host-State Area", 27.3.1 "Checks on the Guest State
//! Area").

use hypervisor_core::caps::VmxCapabilities;
use hypervisor_core::entry_check::{check, EntryRule, EntryRuleViolation, VmcsImage};
use hypervisor_core::vmcs_field::VmcsField;

use crate::vmx::vmcs::{self, VmxError};

/// A snapshot of the current VMCS; fields that cannot be read count as 0.
pub fn read_image() -> VmcsImage {
    VmcsImage::read_with(|field| vmcs::read(field).ok())
}

/// Checks the current VMCS.
pub fn check_current(caps: &VmxCapabilities) -> Result<(), EntryRuleViolation> {
    check(&read_image(), caps)
}

/// After a failed entry: prints what the software checker makes of the VMCS.
pub fn print_diagnosis(name: &str, caps: &VmxCapabilities) {
    match check_current(caps) {
        Ok(()) => crate::error!("{}: entry check: no rule the software checker knows is broken", name),
        Err(violation) => crate::error!("{}: entry check: {} [rule {}]", name, violation, violation.rule.id()),
    }
}

/// Corrupts the current VMCS so that it breaks `rule`; `Ok(false)` when the
/// kernel has no breaker for it.
pub fn break_rule(rule: EntryRule) -> Result<bool, VmxError> {
    let update = |field: VmcsField, change: &dyn Fn(u64) -> u64| -> Result<(), VmxError> {
        vmcs::write(field, change(vmcs::read(field)?))
    };
    match rule {
        EntryRule::VpidZero => vmcs::write(VmcsField::VirtualProcessorId, 0)?,
        EntryRule::HostSelectorRplTi => update(VmcsField::HostSsSelector, &|v| v | 3)?,
        EntryRule::GuestPgWithoutPe => update(VmcsField::GuestCr0, &|v| v & !1)?,
        EntryRule::RflagsReserved => update(VmcsField::GuestRflags, &|v| v & !2)?,
        EntryRule::CsLongModeDb => update(VmcsField::GuestCsAccessRights, &|v| v | (1 << 14))?,
        EntryRule::TrAccessRights => update(VmcsField::GuestTrAccessRights, &|v| v | (1 << 16))?,
        EntryRule::ActivityState => vmcs::write(VmcsField::GuestActivityState, 4)?,
        EntryRule::Interruptibility => vmcs::write(VmcsField::GuestInterruptibilityState, 3)?,
        EntryRule::LinkPointer => vmcs::write(VmcsField::VmcsLinkPointer, 0)?,
        _ => return Ok(false),
    }
    Ok(true)
}

/// `--break-entry`: breaks `rule_id` in the current VMCS and prints the
/// software diagnosis; the caller then launches anyway.
pub fn break_and_diagnose(name: &str, rule_id: u8, caps: &VmxCapabilities) -> Result<(), VmxError> {
    let Some(rule) = EntryRule::from_id(rule_id) else {
        crate::warn!("{}: --break-entry: no rule {}", name, rule_id);
        return Ok(());
    };
    if !break_rule(rule)? {
        crate::warn!("{}: --break-entry: no breaker for rule {} ({})", name, rule_id, rule.name());
        return Ok(());
    }
    crate::info!("{}: --break-entry: broke rule {} ({}); launching anyway", name, rule_id, rule.name());
    print_diagnosis(name, caps);
    Ok(())
}
