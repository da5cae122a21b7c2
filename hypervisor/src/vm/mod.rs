//! The virtual machines: reading the guest list, building each guest, running
//! it, judging how it ended.
pub mod entry_check;
pub mod exit;
pub mod guest;
pub mod loader;
pub mod memory;
pub mod setup;
pub mod stats;
pub mod step;
pub mod trace;

use hypervisor_core::blob::BootBlob;
use hypervisor_core::caps::VmxCapabilities;
use hypervisor_core::config::{GuestConfig, GuestEnd, Verdict};
use hypervisor_core::cpuid::CpuidPolicy;

use crate::platform::console::{self, Level};
use crate::vm::guest::Guest;
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

/// Brings VT-x up, runs every guest of the boot blob one after another, and
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
    };

    let mut all_passed = true;
    let mut next_vpid: u16 = 1;
    for (index, entry) in blob.guests().enumerate() {
        let guest_entry = match entry {
            Ok(guest) => guest,
            Err(error) => {
                crate::error!("guest {}: {}", index, error);
                all_passed = false;
                continue;
            }
        };
        let config = guest_entry.config;
        all_passed &= run_guest(index, config, guest_entry.image, &host, &mut next_vpid, kernel_entry_tsc);
    }
    vmx_operation.disable();
    if all_passed {
        Ok(())
    } else {
        Err("a guest did not end as expected")
    }
}

/// Creates one guest and runs it to its end, restarting it after a crash as
/// often as its restart policy allows (each run starts from a fresh copy of
/// its image in freshly zeroed RAM; the guest learns the count from the `info`
/// hypercall). Returns whether it ended as its config expected.
fn run_guest(
    index: usize,
    config: GuestConfig,
    image: &[u8],
    host: &Host,
    next_vpid: &mut u16,
    kernel_entry_tsc: u64,
) -> bool {
    let name = config.name;
    let mut restarts = 0;
    loop {
        let mut guest = match Guest::create(index, config, image, host, *next_vpid) {
            Ok(guest) => guest,
            Err(error) => {
                crate::error!("{}: cannot create the guest: {}", name, error);
                crate::info!("{}: verdict FAIL (expected {}, could not start)", name, config.expected);
                return false;
            }
        };
        *next_vpid = next_vpid.wrapping_add(1).max(1);
        guest.restart_count = restarts;
        crate::info!(
            "{}: {} MiB RAM, entry {:#x} in {} mode, EPT {} tables, VPID {}",
            name,
            guest.ram.size() >> 20,
            guest.entry.rip,
            config.start_mode,
            guest.ept.tables_used(),
            guest.vpid
        );
        let started = vmx::read_tsc();
        if index == 0 && restarts == 0 {
            crate::info!("kernel entry to first VM entry: {} ticks", started - kernel_entry_tsc);
        }
        let end = guest.run(host);
        let ticks = vmx::read_tsc() - started;
        if guest.step.is_some() {
            step::report(&guest);
        }
        guest.stats.print_by_reason(name.as_str());
        crate::info!(
            "{}: ran {} ticks, {} exits, {} failed hypercalls, {} bytes of hypervisor memory beyond its RAM",
            name,
            ticks,
            guest.stats.total_exits,
            guest.failed_hypercalls,
            guest.overhead_bytes()
        );
        // Tear down before a restart: RAM zeroed and returned, EPT tables and VMCS freed.
        drop(guest);
        if end == GuestEnd::Crashed && restarts < config.restart_limit {
            restarts += 1;
            crate::info!("{}: crashed; restarting ({} of {} restarts)", name, restarts, config.restart_limit);
            continue;
        }
        let verdict = Verdict::judge(config.expected, end);
        crate::info!(
            "{}: ended {}: verdict {} (expected {})",
            name,
            describe_end(end),
            verdict_word(verdict),
            config.expected
        );
        return verdict.passed();
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

fn describe_end(end: GuestEnd) -> alloc::string::String {
    alloc::format!("{end}")
}

fn verdict_word(verdict: Verdict) -> &'static str {
    if verdict.passed() {
        "PASS"
    } else {
        "FAIL"
    }
}
