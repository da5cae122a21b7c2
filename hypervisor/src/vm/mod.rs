//! The virtual machines: reading the guest list, building each guest, running
//! it, judging how it ended.
pub mod cpu_context;
pub mod entry_check;
pub mod exit;
pub mod guest;
pub mod interrupts;
pub mod loader;
pub mod memory;
pub mod scheduler;
pub mod setup;
pub mod stats;
pub mod step;
pub mod trace;

use hypervisor_core::blob::BootBlob;
use hypervisor_core::caps::VmxCapabilities;
use hypervisor_core::cpuid::CpuidPolicy;

use crate::platform::console::{self, Level};
use crate::vm::scheduler::Scheduler;
use crate::vm::setup::Controls;
use crate::vmx::{self, on};

/// What every guest shares: this CPU's capabilities and the choices made from them.
pub struct Host {
    /// The decoded capability MSRs.
    pub caps: VmxCapabilities,
    /// The control words every VMCS gets.
    pub controls: Controls,
    /// What CPUID shows guests.
    pub cpuid_policy: CpuidPolicy,
    /// The measured TSC frequency.
    pub tsc_hz: u64,
    /// Physical address of the MSR bitmap all guests share (read-only to them:
    /// the CPU only reads it).
    pub msr_bitmap: u64,
    /// Which guests print a line per VM exit (`--trace`).
    pub trace: hypervisor_core::blob::TraceSelection,
    /// Which guest runs one instruction at a time (`--step`, see `vm::step`).
    pub step: hypervisor_core::blob::StepSelection,
    /// The VM-entry rule the first guest breaks on purpose (`--break-entry`), 0 = none.
    pub break_entry: u8,
    /// What this CPU needs against transient-execution attacks between guests
    /// (`platform::mitigations`, docs/security.md).
    pub mitigations: &'static crate::platform::mitigations::Mitigations,
    /// The machine's date and time at start-up: each guest's CMOS clock starts there.
    pub date: hypervisor_core::devices::cmos_rtc::DateTime,
}

/// Maps the blob's log level (0 default, 1 error … 4 debug) onto the console's.
fn log_level_from_blob(level: u8) -> Level {
    match level {
        1 => Level::Error,
        2 => Level::Warn,
        4.. => Level::Debug,
        _ => Level::Info,
    }
}

/// Brings VT-x up, runs every guest of the boot blob side by side (see `scheduler`), and
/// says whether each ended as its config expected.
pub fn run_all(ramdisk: Option<&[u8]>, kernel_entry_tsc: u64) -> Result<(), &'static str> {
    let blob = match ramdisk.map(BootBlob::parse) {
        None => {
            crate::error!("no boot blob: the runner passes the guest list as the bootloader's ramdisk");
            return Err("no boot blob");
        }
        Some(Err(error)) => {
            crate::error!("boot blob refused: {}", error);
            return Err("bad boot blob");
        }
        Some(Ok(blob)) => blob,
    };
    let settings = blob.settings();
    console::set_level(log_level_from_blob(settings.log_level));

    if !on::cpu_has_vmx() {
        crate::error!("{}", on::VmxOnError::NoVmx);
        return Err("no VT-x");
    }
    let (raw, caps) = vmx::caps::read();
    crate::info!("VT-x capabilities of this CPU:");
    for line in alloc::format!("{caps}").lines() {
        crate::info!("  {}", line);
    }

    if settings.caps_report {
        // The capability explorer replaces the guest run.
        vmx::caps::print_explorer(&raw, &caps);
        return Ok(());
    }

    let controls = match setup::choose_controls(&caps) {
        Ok(controls) => controls,
        Err(error) => {
            crate::error!("this CPU cannot run guests: {}", error);
            return Err("missing VMX control");
        }
    };
    let vmx_operation = match on::enable(&caps) {
        Ok(operation) => operation,
        Err(error) => {
            crate::error!("{}", error);
            return Err("VMXON failed");
        }
    };
    crate::info!("VMX root operation entered (VMXON done)");
    // Before the host state is recorded in any VMCS: XSETBV needs CR4.OSXSAVE.
    vmx::enable_xsave();
    let tsc_hz = crate::platform::tsc::measure_hz();
    crate::info!("TSC frequency measured against the PIT: {} kHz", tsc_hz / 1000);
    let msr_bitmap = match make_msr_bitmap() {
        Ok(physical) => physical,
        Err(error) => {
            crate::error!("MSR bitmap: {}", error);
            return Err("out of memory");
        }
    };
    let cpuid_policy = CpuidPolicy::from_secondary_controls(0, (tsc_hz / 1000) as u32, controls.secondary);
    let host = Host {
        caps,
        controls,
        cpuid_policy,
        tsc_hz,
        msr_bitmap,
        trace: settings.trace,
        step: settings.step,
        break_entry: settings.break_entry,
        date: crate::platform::rtc::read_date(),
        mitigations: crate::platform::mitigations::Mitigations::get(),
    };

    let xsave = match cpu_context::XsaveLayout::detect() {
        Ok(layout) => layout,
        Err(error) => {
            crate::error!("{}", error);
            return Err("cannot switch guest state");
        }
    };
    crate::info!(
        "XSAVE: state components {:#x} switched per guest in a {}-byte area",
        xsave.all_components,
        xsave.area_bytes
    );

    // `--bench`: the workload natively, left out of the start-up figure.
    let kernel_entry_tsc = kernel_entry_tsc.wrapping_add(crate::bench::run_native_workload(settings.native_workload));
    let mut scheduler = Scheduler::new(&host, xsave, kernel_entry_tsc);
    let mut all_passed = true;
    for (index, entry) in blob.guests().enumerate() {
        match entry {
            Ok(guest) => scheduler.add(index, guest.config, guest.image),
            Err(error) => {
                crate::error!("guest {}: {}", index, error);
                all_passed = false;
            }
        }
    }
    all_passed &= scheduler.run();
    drop(scheduler);
    vmx_operation.disable();
    if all_passed {
        Ok(())
    } else {
        Err("a guest did not end as expected")
    }
}

/// Builds the shared MSR bitmap ([`hypervisor_core::msr::MsrBitmap::for_policy`])
/// in a frame of its own.
fn make_msr_bitmap() -> Result<u64, crate::platform::memory::MemoryError> {
    let frame = crate::platform::memory::allocate_frame()?;
    let bitmap = hypervisor_core::msr::MsrBitmap::for_policy();
    // SAFETY: a fresh 4 KiB frame, mapped at the physical offset.
    unsafe { core::ptr::copy_nonoverlapping(bitmap.0.as_ptr(), crate::platform::memory::phys_to_virt(frame), 4096) };
    Ok(frame)
}

/// CS access rights bit 13 (L): the guest runs 64-bit code (SDM Vol. 3C, 25.4.1
/// "Guest Register State": access rights use the segment-descriptor layout).
pub(crate) const CS_LONG_MODE: u64 = 1 << 13;

/// Whether the current VMCS's guest executes 64-bit code (CS.L set).
pub(crate) fn guest_cs_is_64bit() -> Result<bool, vmx::vmcs::VmxError> {
    Ok(vmx::vmcs::read(hypervisor_core::vmcs_field::VmcsField::GuestCsAccessRights)? & CS_LONG_MODE != 0)
}

/// The current VMCS's guest paging registers, for `hypervisor_core::guest_walk`
/// (shared by string I/O emulation, `vm::trace` and `vm::step`).
pub(crate) fn guest_paging_registers() -> Result<hypervisor_core::guest_walk::PagingRegisters, vmx::vmcs::VmxError> {
    use hypervisor_core::vmcs_field::VmcsField;
    Ok(hypervisor_core::guest_walk::PagingRegisters {
        cr0: vmx::vmcs::read(VmcsField::GuestCr0)?,
        cr3: vmx::vmcs::read(VmcsField::GuestCr3)?,
        cr4: vmx::vmcs::read(VmcsField::GuestCr4)?,
        efer: vmx::vmcs::read(VmcsField::GuestIa32Efer)?,
        max_phys_bits: hypervisor_core::guest_walk::MAX_PHYS_BITS,
    })
}
