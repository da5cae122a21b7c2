//! One guest: its RAM, EPT, vCPU, devices and counters, and the loop that
//! runs it — the VMM in one `match`.

use alloc::boxed::Box;
use core::fmt;

use hypervisor_core::config::{GuestConfig, GuestEnd};
use hypervisor_core::devices::board::PcBoard;
use hypervisor_core::devices::uart16550::Uart16550;
use hypervisor_core::exit::{EptViolationQualification, ExitReason, InterruptionInfo};
use hypervisor_core::start_state::{start_state, StartStateError};
use hypervisor_core::vmcs_field::VmcsField;

use crate::vm::cpu_context::CpuContext;
use crate::vm::entry_check;
use crate::vm::exit;
use crate::vm::interrupts;
use crate::vm::loader::{self, EntryPoint, LoadError};
use crate::vm::memory::{GuestRam, GuestRamError};
use crate::vm::setup;
use crate::vm::stats::{Action, ExitStats};
use crate::vm::step::{self, Stepper};
use crate::vm::trace;
use crate::vm::Host;
use crate::vmx::ept::{self, GuestEpt};
use crate::vmx::read_tsc;
use crate::vmx::vcpu::{Exit, RunError, Vcpu, VmExit};
use crate::vmx::vmcs::{self, VmcsRegion, VmcsSetupError, VmxError};

/// Longest guest output line before it is broken.
const LINE_MAX: usize = 160;

/// Why a guest could not be created.
#[derive(Debug)]
pub enum CreateError {
    /// Not enough host memory for its RAM.
    Ram(GuestRamError),
    /// The image could not be loaded.
    Load(LoadError),
    /// EPT tables could not be built.
    Ept(hypervisor_core::ept::EptError),
    /// The VMCS could not be created or written.
    Vmcs(VmcsSetupError),
    /// The start mode is impossible on this CPU.
    Start(StartStateError),
    /// A VMWRITE failed.
    Vmx(VmxError),
    /// The software VM-entry checker found a broken rule (`vm::entry_check`).
    EntryCheck(hypervisor_core::entry_check::EntryRuleViolation),
}

impl fmt::Display for CreateError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CreateError::Ram(error) => write!(f, "{error}"),
            CreateError::Load(error) => write!(f, "{error}"),
            CreateError::Ept(error) => write!(f, "EPT: {error}"),
            CreateError::Vmcs(error) => write!(f, "VMCS: {error}"),
            CreateError::Start(error) => write!(f, "{error}"),
            CreateError::Vmx(error) => write!(f, "VMCS setup: {error}"),
            CreateError::EntryCheck(violation) => {
                write!(f, "VM entry would fail: {violation} [rule {}]", violation.rule.id())
            }
        }
    }
}

/// Why a guest was stopped by the hypervisor.
#[derive(Debug, Clone, Copy)]
pub enum Crash {
    /// The guest triple-faulted (SDM Vol. 3C, 26.2 "Other Causes of VM Exits").
    TripleFault,
    /// It touched guest-physical memory outside its RAM.
    EptViolation {
        /// The guest-physical address.
        gpa: u64,
        /// How it was accessed.
        qualification: EptViolationQualification,
        /// The guest-linear address, if the CPU reported one.
        linear: Option<u64>,
    },
    /// An EPT entry was invalid: a hypervisor bug, reported as such.
    EptMisconfiguration {
        /// The guest-physical address.
        gpa: u64,
    },
    /// VM entry failed while loading guest state (exit reason bit 31).
    EntryFailure {
        /// The basic reason (33 invalid guest state, 34 MSR loading, 41 machine check).
        reason: ExitReason,
        /// The exit qualification.
        qualification: u64,
    },
    /// HLT with interrupts disabled or nothing to wake it: it can never run again.
    HaltedForever {
        /// RFLAGS.IF at the HLT.
        interrupts_enabled: bool,
    },
    /// An exception the guest could not handle.
    Exception {
        /// The event.
        info: InterruptionInfo,
        /// Its error code.
        error_code: Option<u32>,
    },
    /// An exit the hypervisor does not handle (yet).
    Unhandled {
        /// The basic reason.
        reason: ExitReason,
        /// Why it is not handled.
        what: &'static str,
    },
    /// An exit reason this hypervisor does not know.
    UnknownExit {
        /// The basic exit reason number.
        basic_reason: u16,
    },
    /// VM entry itself failed (VMfailValid/VMfailInvalid).
    Run(RunError),
    /// A VMREAD/VMWRITE failed while handling an exit.
    Vmx(VmxError),
}

impl fmt::Display for Crash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Crash::TripleFault => f.write_str("triple fault (the guest could not deliver an exception)"),
            Crash::EptViolation { gpa, qualification, linear } => {
                write!(f, "EPT violation: {} (outside its RAM)", qualification.at(*gpa))?;
                if let Some(linear) = linear {
                    write!(f, ", guest-linear address {linear:#x}")?;
                }
                Ok(())
            }
            Crash::EptMisconfiguration { gpa } => write!(f, "EPT misconfiguration at GPA {gpa:#x}"),
            Crash::EntryFailure { reason, qualification } => {
                write!(f, "VM entry failed: {} (qualification {qualification:#x})", reason.name())
            }
            Crash::HaltedForever { interrupts_enabled } => write!(
                f,
                "HLT with {} and no interrupt source: it can never wake up",
                if *interrupts_enabled { "interrupts enabled" } else { "interrupts disabled" }
            ),
            Crash::Exception { info, error_code } => {
                write!(f, "unhandled exception {info}")?;
                if let Some(code) = error_code {
                    write!(f, " error code {code:#x}")?;
                }
                Ok(())
            }
            Crash::Unhandled { reason, what } => write!(f, "unhandled exit {}: {what}", reason.name()),
            Crash::UnknownExit { basic_reason } => write!(f, "unknown exit reason {basic_reason}"),
            Crash::Run(error) => write!(f, "{error}"),
            Crash::Vmx(error) => write!(f, "{error}"),
        }
    }
}

impl From<VmxError> for Crash {
    fn from(error: VmxError) -> Self {
        Crash::Vmx(error)
    }
}

/// What a handler decided.
#[derive(Debug, Clone, Copy)]
pub enum Flow {
    /// Resume the guest.
    Continue(Action),
    /// The guest gives up the rest of its time slice (the `yield` hypercall,
    /// the preemption timer): the scheduler picks who runs next.
    Yield(Action),
    /// The guest halted with interrupts enabled: it sleeps until the host
    /// TSC reaches this value, when its next timer interrupt falls due.
    Halt(u64),
    /// The guest ended by itself with an exit status.
    Exit(u32),
    /// The hypervisor stops the guest.
    Crash(Crash),
}

/// Why [`Guest::run_slice`] returned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SliceEnd {
    /// Its time slice is over (or it yielded): it is runnable again.
    Preempted,
    /// It halted until the host TSC reaches this value (its next interrupt).
    Halted(u64),
    /// It ended; the scheduler judges or restarts it.
    Ended(GuestEnd),
}

/// One guest.
pub struct Guest {
    /// Index in the boot's guest list; also its `info` id.
    pub id: usize,
    /// Its description.
    pub config: GuestConfig,
    /// Its RAM.
    pub ram: GuestRam,
    /// Its EPT.
    pub ept: GuestEpt,
    /// Its virtual CPU.
    pub vcpu: Vcpu,
    /// Where it started.
    pub entry: EntryPoint,
    /// Its serial port at 0x3F8.
    pub uart: Uart16550,
    /// Output waiting for its newline.
    line: [u8; LINE_MAX],
    line_len: usize,
    /// Its counters.
    pub stats: ExitStats,
    /// Its VPID (0 when VPIDs are off).
    pub vpid: u16,
    /// Hypercalls that returned an error.
    pub failed_hypercalls: u64,
    /// How many times it has been restarted.
    pub restart_count: u32,
    /// TSC at its first VM entry (0 before it).
    pub first_entry_tsc: u64,
    /// Ticks it has run, summed over its time slices (what its budget limits).
    pub cpu_ticks: u64,
    /// Time slices it has been given.
    pub slices: u64,
    /// TSC at the start of the current slice.
    slice_start: u64,
    /// When the current slice (or the budget, if sooner) ends.
    pub(crate) slice_deadline: u64,
    /// When the board next raises an interrupt (`u64::MAX`: never).
    pub(crate) device_deadline: u64,
    /// The sooner of the two: the exit path compares against this alone.
    pub(crate) deadline: u64,
    /// Whether the board's INTR line may be up: [`interrupts::deliver`] runs
    /// before the next entry.
    pub(crate) events_pending: bool,
    /// Whether interrupt-window exiting is on in this guest's VMCS.
    pub(crate) window_open: bool,
    /// Whether NMI-window exiting is on in this guest's VMCS.
    pub(crate) nmi_window_open: bool,
    /// The preemption timer's rate (IA32_VMX_MISC\[4:0\]) and whether it is
    /// in use.
    pub(crate) timer_rate: u8,
    pub(crate) preemption_timer: bool,
    /// Its interrupt controllers and timers (PIC, PIT, CMOS/RTC, local APIC).
    pub board: PcBoard,
    /// HLT instructions that put it to sleep until its next interrupt.
    pub halts: u64,
    /// Accesses to the local APIC page the APIC does not define (ignored).
    pub apic_bad_accesses: u64,
    /// TSC at the exit that ended the last slice.
    slice_end: u64,
    /// The CPU state the VMCS does not switch (see `vm::cpu_context`).
    pub context: CpuContext,
    /// Whether every exit prints a trace line (`--trace`, see `vm::trace`).
    pub traced: bool,
    /// Single-stepping state when `--step` selects it (see `vm::step`).
    pub step: Option<Box<Stepper>>,
}

impl Guest {
    /// Allocates RAM, loads the image, builds EPT and the VMCS.
    pub fn create(
        id: usize,
        config: GuestConfig,
        image: &[u8],
        host: &Host,
        vpid: u16,
    ) -> Result<Box<Self>, CreateError> {
        let mut ram = GuestRam::allocate(config.ram_bytes).map_err(CreateError::Ram)?;
        let entry = loader::load(&mut ram, config.start_mode, image).map_err(CreateError::Load)?;
        let ept = GuestEpt::for_guest_ram(ram.layout(), host.caps.ept_vpid.accessed_dirty_flags())
            .map_err(CreateError::Ept)?;
        let vmcs = VmcsRegion::new(host.caps.basic.revision_id()).map_err(CreateError::Vmcs)?;
        let mut vcpu = Vcpu::new(vmcs);
        vcpu.load().map_err(CreateError::Vmx)?;
        let vpid = if host.controls.vpid() { vpid } else { 0 };
        let start = start_state(
            config.start_mode,
            entry.rip,
            entry.rsp,
            entry.cr3,
            host.caps.cr0,
            host.caps.cr4,
            host.controls.unrestricted_guest(),
        )
        .map_err(CreateError::Start)?;
        setup::write_controls(
            &host.controls,
            &host.caps,
            ept.eptp(),
            vpid,
            host.msr_bitmap,
            &start,
            config.time_slice_ticks,
        )
        .map_err(CreateError::Vmx)?;
        setup::write_host_state(&host.controls).map_err(CreateError::Vmx)?;
        setup::write_guest_state(&start, &host.controls).map_err(CreateError::Vmx)?;
        vcpu.registers.rdx = start.rdx;
        let step = step::enable(id, config.name.as_str(), &vcpu.registers, host).map_err(CreateError::Vmx)?;
        // The software entry checks (`vm::entry_check`): refuse a VMCS the CPU
        // would reject, unless `--break-entry` wants the hardware's answer.
        if id == 0 && host.break_entry != 0 {
            entry_check::break_and_diagnose(config.name.as_str(), host.break_entry, &host.caps)
                .map_err(CreateError::Vmx)?;
        } else {
            entry_check::check_current(&host.caps).map_err(CreateError::EntryCheck)?;
        }
        // Nothing may be cached for this EPTP or VPID from an earlier guest.
        ept::invept_single_context(ept.eptp());
        if vpid != 0 {
            ept::invvpid_single_context(vpid);
        }
        Ok(Box::new(Guest {
            id,
            config,
            ram,
            ept,
            vcpu,
            entry,
            uart: Uart16550::new(),
            line: [0; LINE_MAX],
            line_len: 0,
            stats: ExitStats::default(),
            vpid,
            failed_hypercalls: 0,
            restart_count: 0,
            first_entry_tsc: 0,
            cpu_ticks: 0,
            slices: 0,
            slice_start: 0,
            slice_deadline: u64::MAX,
            device_deadline: u64::MAX,
            deadline: u64::MAX,
            events_pending: false,
            window_open: false,
            nmi_window_open: false,
            timer_rate: host.caps.misc.preemption_timer_rate(),
            preemption_timer: host.controls.preemption_timer(),
            board: PcBoard::new(0, host.tsc_hz, read_tsc(), host.date),
            halts: 0,
            apic_bad_accesses: 0,
            slice_end: 0,
            context: CpuContext::new(),
            traced: host.trace.includes(id),
            step,
        }))
    }

    /// The guest's name.
    pub fn name(&self) -> &str {
        self.config.name.as_str()
    }

    /// Runs the guest for one time slice: until the slice is used up, the
    /// guest yields or halts, or it ends. The caller (`vm::scheduler`) has made
    /// its VMCS current and loaded its [`CpuContext`]. The slice ends early
    /// at `preempt_at` (host TSC), when another guest's interrupt falls due.
    pub fn run_slice(&mut self, host: &Host, preempt_at: u64) -> SliceEnd {
        let start = read_tsc();
        self.slice_start = start;
        if self.first_entry_tsc == 0 {
            self.first_entry_tsc = start;
        }
        self.slices += 1;
        // One deadline covers every limit, so the exit path compares once:
        // the end of the slice, of the budget, or the next timer interrupt.
        self.slice_deadline = start.saturating_add(self.config.time_slice_ticks).min(preempt_at);
        if self.config.has_budget() {
            self.slice_deadline =
                self.slice_deadline.min(start.saturating_add(self.config.budget_ticks.saturating_sub(self.cpu_ticks)));
        }
        // Its timers ran while other guests had the CPU.
        if let Err(error) = self.board_changed(start).and_then(|()| self.update_deadline(start)) {
            self.slice_end = start;
            return SliceEnd::Ended(self.crashed(Crash::Vmx(error), host));
        }
        // Tracing is decided once per slice, not once per exit: the untraced
        // loop is the loop without tracing, so tracing off costs nothing.
        // A stepped guest's exits go through `vm::step` (and its trace, if any).
        let end = if self.traced || self.step.is_some() { self.run_traced(host) } else { self.run_loop::<false>(host) };
        // The exits the landing answered (`vmx::run`) count like the others.
        let vmcall = core::mem::take(&mut self.vcpu.fast.vmcall);
        let cpuid = core::mem::take(&mut self.vcpu.fast.cpuid);
        self.stats.add_fast_path(ExitReason::Vmcall as u16, vmcall.exits, vmcall.ticks);
        self.stats.add_fast_path(ExitReason::Cpuid as u16, cpuid.exits, cpuid.ticks);
        // Up to the last exit: the report of a crash is not the guest's time.
        self.cpu_ticks += self.slice_end.saturating_sub(start);
        end
    }

    /// The exit loop of a traced or stepped guest, kept out of `run_slice`'s way.
    #[cold]
    #[inline(never)]
    fn run_traced(&mut self, host: &Host) -> SliceEnd {
        self.run_loop::<true>(host)
    }

    /// Enters the guest and handles its exits until the slice ends; with
    /// `TRACED`, every exit goes through [`trace::handle_traced`] (or, for a
    /// stepped guest, [`step::handle_exit`]).
    #[inline(always)]
    fn run_loop<const TRACED: bool>(&mut self, host: &Host) -> SliceEnd {
        loop {
            if self.events_pending {
                if let Err(error) = interrupts::deliver(self, host) {
                    self.slice_end = read_tsc();
                    return SliceEnd::Ended(self.crashed(Crash::Vmx(error), host));
                }
            }
            // L1D flush / VERW where this CPU needs them (a not-taken branch where not).
            host.mitigations.before_vm_entry();
            // The landing may answer null hypercalls and cached CPUIDs itself
            // until the deadline (`vmx::run`), unless every exit must come here.
            self.vcpu.fast.enabled = u64::from(!TRACED && !self.events_pending && !host.mitigations.work_on_entry());
            self.vcpu.fast.deadline = self.deadline;
            let exit = match self.vcpu.run() {
                Ok(exit) => exit,
                Err(error) => {
                    self.slice_end = read_tsc();
                    return SliceEnd::Ended(self.crashed(Crash::Run(error), host));
                }
            };
            if !TRACED {
                match self.fast_exit(&exit, host) {
                    Ok(Some(now)) => {
                        if now >= self.deadline {
                            if let Some(end) = self.deadline_reached(now, exit.rip, host) {
                                return end;
                            }
                        }
                        continue;
                    }
                    Ok(None) => {}
                    Err(error) => {
                        self.slice_end = exit.tsc;
                        return SliceEnd::Ended(self.crashed(Crash::Vmx(error), host));
                    }
                }
            }
            let slot = self.stats.record(exit.basic_reason, exit.rip);
            // A constant: the compiler keeps only one arm (see `vm::trace`).
            let result = if TRACED {
                if self.step.is_some() {
                    step::handle_exit(self, &exit, slot, host)
                } else {
                    trace::handle_traced(self, &exit, slot, host)
                }
            } else {
                self.handle(&exit, slot, host)
            };
            let flow = result.unwrap_or_else(|error| Flow::Crash(Crash::Vmx(error)));
            let now = read_tsc();
            self.stats.add_ticks(exit.basic_reason, now - exit.tsc);
            match flow {
                Flow::Continue(action) => {
                    self.stats.ring[slot].action = action;
                    // The preemption timer guarantees an exit by the deadline,
                    // even from `cli; jmp $`; this one compare notices the end
                    // of the slice or of the budget, or a timer interrupt due.
                    if now >= self.deadline {
                        if let Some(end) = self.deadline_reached(now, exit.rip, host) {
                            return end;
                        }
                    }
                }
                Flow::Yield(action) => {
                    self.stats.ring[slot].action = action;
                    return self.slice_expired(now, exit.rip);
                }
                Flow::Halt(wake) => {
                    self.stats.ring[slot].action = Action::Emulated;
                    self.slice_end = now;
                    return SliceEnd::Halted(wake);
                }
                Flow::Exit(status) => {
                    self.slice_end = exit.tsc;
                    self.stats.ring[slot].action = Action::Stopped;
                    self.flush_line();
                    return SliceEnd::Ended(GuestEnd::Exited(status));
                }
                Flow::Crash(crash) => {
                    self.slice_end = exit.tsc;
                    self.stats.ring[slot].action = Action::Stopped;
                    return SliceEnd::Ended(self.crashed(crash, host));
                }
            }
        }
    }

    /// The fast path: the two exits guests make in tight loops, CPUID and the
    /// null hypercall, answered without decoding the exit into a
    /// [`VmExit`], dispatching or building a [`Flow`] (their answer is always
    /// "emulated, go on"), with the same counters and exit ring as every
    /// other exit. `None` for any other exit. docs/exit-path.md counts what
    /// is left.
    #[inline(always)]
    fn fast_exit(&mut self, exit: &Exit, host: &Host) -> Result<Option<u64>, VmxError> {
        const CPUID: u16 = ExitReason::Cpuid as u16;
        const VMCALL: u16 = ExitReason::Vmcall as u16;
        match exit.basic_reason {
            CPUID => {
                exit::cpuid::handle(self, exit, host)?;
            }
            // Null hypercall: RAX = 0 is also its result (SDM Vol. 3C, 26.1.2:
            // VMCALL always exits; the handler only moves RIP past it).
            VMCALL if self.vcpu.registers.rax == hypervisor_core::hypercall::Hypercall::Null as u64 => {
                self.vcpu.advance_rip(exit)?;
            }
            _ => return Ok(None),
        }
        self.stats.record_handled(exit.basic_reason, exit.rip, Action::Emulated);
        let now = read_tsc();
        self.stats.add_ticks(exit.basic_reason, now - exit.tsc);
        Ok(Some(now))
    }

    /// The exit-path deadline passed: a timer interrupt fell due (the guest
    /// goes on, with the interrupt pending), or the slice or budget is over.
    #[cold]
    #[inline(never)]
    fn deadline_reached(&mut self, now: u64, rip: u64, host: &Host) -> Option<SliceEnd> {
        if now >= self.slice_deadline {
            return Some(self.slice_expired(now, rip));
        }
        if let Err(error) = self.board_changed(now).and_then(|()| self.update_deadline(now)) {
            self.slice_end = now;
            return Some(SliceEnd::Ended(self.crashed(Crash::Vmx(error), host)));
        }
        None
    }

    /// The slice is over: either the guest used up its budget (it is stopped)
    /// or another guest gets the CPU.
    #[cold]
    #[inline(never)]
    fn slice_expired(&mut self, now: u64, rip: u64) -> SliceEnd {
        self.slice_end = now;
        let used = self.cpu_ticks + (now - self.slice_start);
        if self.config.has_budget() && used >= self.config.budget_ticks {
            self.flush_line();
            crate::warn!(
                "{}: stopped: used its CPU-time budget of {} ticks (at guest RIP {:#x})",
                self.name(),
                self.config.budget_ticks,
                rip
            );
            return SliceEnd::Ended(GuestEnd::OverBudget);
        }
        SliceEnd::Preempted
    }

    /// The VMM: one arm per exit family, each in its own file under `vm/exit/`.
    #[inline(always)]
    pub(super) fn handle(&mut self, exit: &Exit, slot: usize, host: &Host) -> Result<Flow, VmxError> {
        let kind = self.vcpu.decode(exit)?;
        self.stats.ring[slot].detail = detail_of(&kind);
        match kind {
            VmExit::Cpuid => exit::cpuid::handle(self, exit, host),
            VmExit::Io(io) => exit::io::handle(self, exit, io),
            VmExit::Vmcall => exit::vmcall::handle(self, exit, host),
            VmExit::Hlt => exit::hlt::handle(self, exit),
            VmExit::Rdmsr => exit::msr::handle(self, exit, exit::msr::MsrAccess::Read),
            VmExit::Wrmsr => exit::msr::handle(self, exit, exit::msr::MsrAccess::Write),
            VmExit::CrAccess(access) => exit::cr::handle(self, exit, access, host),
            VmExit::EptViolation { qualification, gpa, linear } => {
                exit::ept::violation(self, exit, qualification, gpa, linear)
            }
            VmExit::EptMisconfiguration { gpa } => Ok(Flow::Crash(Crash::EptMisconfiguration { gpa })),
            // `--step` in TF mode intercepts #DB (see `vm::step`).
            VmExit::ExceptionOrNmi { info, qualification, .. } if info.vector() == 1 && self.step.is_some() => {
                step::handle_debug(self, exit, info, qualification)
            }
            VmExit::ExceptionOrNmi { info, error_code, .. } => Ok(Flow::Crash(Crash::Exception { info, error_code })),
            VmExit::TripleFault => Ok(Flow::Crash(Crash::TripleFault)),
            VmExit::Xsetbv => exit::xsetbv::handle(self, exit),
            VmExit::PreemptionTimer => exit::timer::preemption_timer(self, host),
            VmExit::MonitorTrap => step::handle(self, exit),
            VmExit::ExternalInterrupt => Ok(Flow::Continue(Action::Resumed)),
            // `events_pending` is still set: the interrupt (or NMI) goes in before the next entry.
            VmExit::InterruptWindow | VmExit::NmiWindow => Ok(Flow::Continue(Action::Resumed)),
            VmExit::EntryFailure { reason, qualification } => {
                Ok(Flow::Crash(Crash::EntryFailure { reason, qualification }))
            }
            VmExit::Other { reason, qualification: _ } => exit::other::handle(self, exit, reason),
            VmExit::Unknown { basic_reason } => Ok(Flow::Crash(Crash::UnknownExit { basic_reason })),
        }
    }

    /// Adds guest output; complete lines are printed prefixed with the guest's name.
    pub fn output(&mut self, bytes: &[u8]) {
        for &byte in bytes {
            match byte {
                b'\n' => self.flush_line(),
                b'\r' => {}
                _ => {
                    // Anything unprintable is shown as '.', so a guest cannot
                    // send escape sequences to the operator's terminal.
                    self.line[self.line_len] = if byte == b'\t' || (0x20..0x7F).contains(&byte) { byte } else { b'.' };
                    self.line_len += 1;
                    if self.line_len == LINE_MAX {
                        self.flush_line();
                    }
                }
            }
        }
    }

    /// Reads 8 bytes of guest memory: the page walker's table reader.
    pub(crate) fn read_ram_u64(&self, gpa: u64) -> Option<u64> {
        let mut bytes = [0u8; 8];
        self.ram.read(gpa, &mut bytes).ok()?;
        Some(u64::from_le_bytes(bytes))
    }

    /// Prints the pending partial line, if any.
    pub fn flush_line(&mut self) {
        if self.line_len == 0 {
            return;
        }
        let text = core::str::from_utf8(&self.line[..self.line_len]).unwrap_or("<invalid>");
        crate::println!("[{}] {}", self.config.name.as_str(), text);
        self.line_len = 0;
    }

    /// Reports a crash in full and returns the end state.
    #[cold]
    #[inline(never)]
    fn crashed(&mut self, crash: Crash, host: &Host) -> GuestEnd {
        self.flush_line();
        let _ = self.vcpu.cancel_injection();
        let rip = vmcs::read(VmcsField::GuestRip).unwrap_or(0);
        crate::error!("{}: stopped: {} at guest RIP {:#x}", self.name(), crash, rip);
        self.print_registers();
        if let Crash::EntryFailure { .. } | Crash::Run(_) = crash {
            print_entry_suspects(self.name());
            entry_check::print_diagnosis(self.name(), &host.caps);
        }
        vmcs::dump();
        self.stats.print_ring(self.config.name.as_str());
        GuestEnd::Crashed
    }

    /// Prints the guest's general registers and the key VMCS guest fields.
    pub fn print_registers(&self) {
        let r = &self.vcpu.registers;
        let field = |f| vmcs::read(f).unwrap_or(0);
        let name = self.name();
        crate::error!(
            "{}:   RIP {:#018x} RSP {:#018x} RFLAGS {:#010x} CR0 {:#x} CR3 {:#x} CR4 {:#x}",
            name,
            field(VmcsField::GuestRip),
            field(VmcsField::GuestRsp),
            field(VmcsField::GuestRflags),
            field(VmcsField::GuestCr0),
            field(VmcsField::GuestCr3),
            field(VmcsField::GuestCr4)
        );
        crate::error!("{}:   RAX {:#018x} RBX {:#018x} RCX {:#018x} RDX {:#018x}", name, r.rax, r.rbx, r.rcx, r.rdx);
        crate::error!("{}:   RSI {:#018x} RDI {:#018x} RBP {:#018x} R8  {:#018x}", name, r.rsi, r.rdi, r.rbp, r.r8);
        crate::error!("{}:   R9  {:#018x} R10 {:#018x} R11 {:#018x} R12 {:#018x}", name, r.r9, r.r10, r.r11, r.r12);
        crate::error!("{}:   R13 {:#018x} R14 {:#018x} R15 {:#018x}", name, r.r13, r.r14, r.r15);
    }

    /// Host memory this guest costs beyond its RAM: VMCS, EPT tables, its
    /// saved CPU context (XSAVE area), and this structure (which holds the
    /// saved registers and counters). The MSR bitmap is shared by all guests.
    pub fn overhead_bytes(&self) -> u64 {
        self.overhead().total()
    }

    /// [`overhead_bytes`](Self::overhead_bytes) by what it is for.
    pub fn overhead(&self) -> Overhead {
        Overhead {
            vmcs: 4096,
            ept_tables: self.ept.tables_used() as u64 * 4096,
            cpu_context: CpuContext::bytes() as u64,
            vcpu_and_devices: core::mem::size_of::<Guest>() as u64,
        }
    }
}

/// The host memory one guest costs beyond its RAM, by part.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Overhead {
    /// Its VMCS region (one frame).
    pub vmcs: u64,
    /// Its EPT paging structures.
    pub ept_tables: u64,
    /// The XSAVE area and the other state the VMCS does not switch.
    pub cpu_context: u64,
    /// The `Guest` itself: saved registers, device models, counters.
    pub vcpu_and_devices: u64,
}

impl Overhead {
    /// All of it, in bytes.
    pub fn total(&self) -> u64 {
        self.vmcs + self.ept_tables + self.cpu_context + self.vcpu_and_devices
    }
}

impl fmt::Display for Overhead {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "VMCS {} KiB, EPT tables {} KiB, XSAVE and CPU context {} KiB, vCPU and devices {} KiB (the MSR bitmap is shared)",
            self.vmcs / 1024,
            self.ept_tables / 1024,
            self.cpu_context.div_ceil(1024),
            self.vcpu_and_devices.div_ceil(1024)
        )
    }
}

/// The value worth remembering for an exit in the ring: its qualification,
/// guest-physical address or event information.
#[inline(always)]
fn detail_of(kind: &VmExit) -> u64 {
    match *kind {
        VmExit::Io(io) => io.0,
        VmExit::CrAccess(access) => access.0,
        VmExit::EptViolation { gpa, .. } | VmExit::EptMisconfiguration { gpa } => gpa,
        VmExit::ExceptionOrNmi { info, .. } => u64::from(info.to_u32()),
        VmExit::EntryFailure { qualification, .. } | VmExit::Other { qualification, .. } => qualification,
        _ => 0,
    }
}

/// After a failed VM entry: the guest-state fields the entry checks most often
/// reject (SDM Vol. 3C, 27.3.1 "Checks on the Guest State Area"), so the reader
/// does not have to find them in the full dump.
fn print_entry_suspects(name: &str) {
    const SUSPECTS: [VmcsField; 16] = [
        VmcsField::EntryControls,
        VmcsField::GuestCr0,
        VmcsField::GuestCr4,
        VmcsField::GuestIa32Efer,
        VmcsField::GuestRflags,
        VmcsField::GuestCsAccessRights,
        VmcsField::GuestSsAccessRights,
        VmcsField::GuestTrAccessRights,
        VmcsField::GuestLdtrAccessRights,
        VmcsField::GuestCsSelector,
        VmcsField::GuestSsSelector,
        VmcsField::GuestActivityState,
        VmcsField::GuestInterruptibilityState,
        VmcsField::GuestPendingDebugExceptions,
        VmcsField::VmcsLinkPointer,
        VmcsField::EntryInterruptionInfo,
    ];
    crate::error!("{}: guest-state fields VM entry checks most often:", name);
    for field in SUSPECTS {
        if let Ok(value) = vmcs::read(field) {
            crate::error!("{}:   {:<36} = {:#x}", name, field.name(), value);
        }
    }
}
