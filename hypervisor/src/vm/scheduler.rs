//! The scheduler: every configured guest shares the one CPU, round robin.
//!
//! Each guest runs for one time slice at a time ([`Guest::run_slice`]). A slice
//! ends when the guest has used its `time_slice_ticks` (noticed at its next
//! exit; the VMX-preemption timer, armed with the slice, guarantees there is
//! one even for a guest that never exits by itself), when it yields (the
//! `yield` hypercall), or when it ends. Then the next runnable guest in the
//! list gets the CPU.
//!
//! Switching guests means making the other guest's VMCS current (VMPTRLD, SDM
//! Vol. 3C, 25.11.3 "Initializing a VMCS": the launch state travels with the
//! VMCS, so each guest resumes with VMRESUME) and swapping the state the VMCS
//! does not hold ([`crate::vm::cpu_context`]).
//!
//! Lifecycle of a guest, printed at debug level as it happens:
//!
//! ```text
//! created ──▶ running ⇄ runnable
//!                │
//!                ├──▶ exited(status)
//!                ├──▶ crashed(reason) ──▶ created again, while its restart policy allows
//!                └──▶ over budget
//! ```
//!
//! At the end a summary table shows each guest's verdict against what its
//! config expected; the run succeeds only if every guest ended as expected.

use alloc::boxed::Box;
use alloc::vec::Vec;
use core::fmt;

use hypervisor_core::config::{GuestConfig, GuestEnd, Verdict};
use hypervisor_core::exit::ExitReason;

use crate::vm::cpu_context::XsaveLayout;
use crate::vm::guest::{Guest, SliceEnd};
use crate::vm::stats::REASON_SLOTS;
use crate::vm::{step, Host};
use crate::vmx::ept;
use crate::vmx::read_tsc;

/// Where a guest is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lifecycle {
    /// Built (RAM, EPT, VMCS) but not entered yet.
    Created,
    /// Waiting for the CPU.
    Runnable,
    /// Has the CPU.
    Running,
    /// Done: it ended this way (after its last restart).
    Finished(GuestEnd),
    /// It could not even be created (bad image, not enough memory...).
    NotStarted,
}

impl fmt::Display for Lifecycle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Lifecycle::Created => f.write_str("created"),
            Lifecycle::Runnable => f.write_str("runnable"),
            Lifecycle::Running => f.write_str("running"),
            Lifecycle::Finished(end) => write!(f, "{end}"),
            Lifecycle::NotStarted => f.write_str("not started"),
        }
    }
}

/// One entry of the guest list: the config, the live guest while it exists,
/// and what it has done over all its runs.
struct Slot<'blob> {
    index: usize,
    config: GuestConfig,
    image: &'blob [u8],
    guest: Option<Box<Guest>>,
    state: Lifecycle,
    restarts: u32,
    /// Exits by basic reason, summed over its runs.
    exits: [u64; REASON_SLOTS],
    slices: u64,
    ticks: u64,
    /// Host memory its last run cost beyond its RAM.
    overhead_bytes: u64,
}

/// Hands out VPIDs (1..=0xFFFF; 0 is the host's) and takes them back at teardown.
struct VpidAllocator {
    next: u32,
    free: Vec<u16>,
}

impl VpidAllocator {
    fn allocate(&mut self) -> Option<u16> {
        if let Some(vpid) = self.free.pop() {
            return Some(vpid);
        }
        let vpid = u16::try_from(self.next).ok()?;
        self.next += 1;
        Some(vpid)
    }

    fn release(&mut self, vpid: u16) {
        if vpid != 0 {
            self.free.push(vpid);
        }
    }
}

/// All guests of the boot, and whose state is in the CPU.
pub struct Scheduler<'blob, 'host> {
    host: &'host Host,
    slots: Vec<Slot<'blob>>,
    vpids: VpidAllocator,
    xsave: XsaveLayout,
    /// The slot whose VMCS is current and whose context is in the CPU.
    current: Option<usize>,
    /// Guest switches done.
    switches: u64,
    kernel_entry_tsc: u64,
}

impl<'blob, 'host> Scheduler<'blob, 'host> {
    /// An empty scheduler.
    pub fn new(host: &'host Host, xsave: XsaveLayout, kernel_entry_tsc: u64) -> Self {
        Scheduler {
            host,
            slots: Vec::new(),
            vpids: VpidAllocator { next: 1, free: Vec::new() },
            xsave,
            current: None,
            switches: 0,
            kernel_entry_tsc,
        }
    }

    /// Adds a guest and creates it; one that cannot be created is reported
    /// and counted as failed, and the others go on.
    pub fn add(&mut self, index: usize, config: GuestConfig, image: &'blob [u8]) {
        let slot = Slot {
            index,
            config,
            image,
            guest: None,
            state: Lifecycle::Created,
            restarts: 0,
            exits: [0; REASON_SLOTS],
            slices: 0,
            ticks: 0,
            overhead_bytes: 0,
        };
        self.slots.push(slot);
        let position = self.slots.len() - 1;
        self.create(position);
    }

    /// Builds the guest of a slot (first start or restart).
    fn create(&mut self, position: usize) {
        let Some(vpid) = self.vpids.allocate() else {
            let name = self.slots[position].config.name;
            crate::error!("{}: cannot create the guest: all 65535 VPIDs are in use", name);
            self.slots[position].state = Lifecycle::NotStarted;
            return;
        };
        // Creating a guest makes its VMCS current: the running guest's state
        // must be saved first, and the next switch reloads whichever is next.
        self.park_current();
        let slot = &mut self.slots[position];
        let name = slot.config.name;
        match Guest::create(slot.index, slot.config, slot.image, self.host, vpid) {
            Ok(mut guest) => {
                guest.restart_count = slot.restarts;
                slot.overhead_bytes = guest.overhead_bytes();
                crate::info!(
                    "{}: {} MiB RAM, entry {:#x} in {} mode, EPT {} tables, VPID {}, {} KiB of hypervisor memory",
                    name,
                    guest.ram.size() >> 20,
                    guest.entry.rip,
                    slot.config.start_mode,
                    guest.ept.tables_used(),
                    guest.vpid,
                    slot.overhead_bytes.div_ceil(1024)
                );
                slot.guest = Some(guest);
                slot.state = Lifecycle::Created;
                crate::debug!("{}: created", name);
            }
            Err(error) => {
                self.vpids.release(vpid);
                crate::error!("{}: cannot create the guest: {}", name, error);
                slot.state = Lifecycle::NotStarted;
            }
        }
    }

    /// Saves the running guest's CPU context and forgets which VMCS is current.
    fn park_current(&mut self) {
        if let Some(current) = self.current.take() {
            if let Some(guest) = self.slots[current].guest.as_mut() {
                guest.context.save(&self.xsave);
            }
        }
    }

    /// Gives the CPU to the guest of `position`: its VMCS becomes current and
    /// its context goes into the CPU. Nothing to do when it already is.
    fn switch_to(&mut self, position: usize) -> Result<(), crate::vmx::vmcs::VmxError> {
        if self.current == Some(position) {
            return Ok(());
        }
        self.park_current();
        // Created and runnable slots always hold a guest (see `create`).
        let Some(guest) = self.slots[position].guest.as_mut() else { return Ok(()) };
        guest.vcpu.load()?;
        guest.context.restore(&self.xsave);
        self.current = Some(position);
        self.switches += 1;
        Ok(())
    }

    /// The next slot to run after `after`, round robin, if any guest can run.
    fn next_runnable(&self, after: Option<usize>) -> Option<usize> {
        let count = self.slots.len();
        let start = after.map_or(0, |position| position + 1);
        (0..count)
            .map(|offset| (start + offset) % count)
            .find(|&position| matches!(self.slots[position].state, Lifecycle::Created | Lifecycle::Runnable))
    }

    /// Runs every guest until all have finished; returns whether each ended
    /// as its config expected.
    pub fn run(&mut self) -> bool {
        let mut last = None;
        let mut first_entry = true;
        while let Some(position) = self.next_runnable(last) {
            last = Some(position);
            if let Err(error) = self.switch_to(position) {
                let name = self.slots[position].config.name;
                crate::error!("{}: stopped: cannot make its VMCS current: {}", name, error);
                self.finish(position, GuestEnd::Crashed);
                continue;
            }
            if first_entry {
                first_entry = false;
                crate::info!("kernel entry to first VM entry: {} ticks", read_tsc() - self.kernel_entry_tsc);
            }
            let slot = &mut self.slots[position];
            if slot.state == Lifecycle::Created {
                crate::debug!("{}: running (first entry)", slot.config.name);
            }
            slot.state = Lifecycle::Running;
            let Some(guest) = slot.guest.as_mut() else {
                slot.state = Lifecycle::NotStarted;
                continue;
            };
            match guest.run_slice(self.host) {
                SliceEnd::Preempted => slot.state = Lifecycle::Runnable,
                SliceEnd::Ended(end) => self.finish(position, end),
            }
        }
        self.print_summary()
    }

    /// A guest's run ended: report it, tear it down, and restart it if it
    /// crashed and its restart policy allows.
    fn finish(&mut self, position: usize, end: GuestEnd) {
        if self.current == Some(position) {
            // Its context dies with it; the next guest's restore overwrites the CPU's.
            self.current = None;
        }
        let slot = &mut self.slots[position];
        let name = slot.config.name;
        if let Some(guest) = slot.guest.take() {
            if guest.step.is_some() {
                step::report(&guest);
            }
            guest.stats.print_by_reason(name.as_str());
            crate::info!(
                "{}: ran {} ticks in {} slices, {} exits, {} failed hypercalls, {} bytes of hypervisor memory beyond its RAM",
                name,
                guest.cpu_ticks,
                guest.slices,
                guest.stats.total_exits,
                guest.failed_hypercalls,
                guest.overhead_bytes()
            );
            for (total, count) in slot.exits.iter_mut().zip(guest.stats.exits.iter()) {
                *total += count;
            }
            slot.slices += guest.slices;
            slot.ticks += guest.cpu_ticks;
            teardown(guest, &mut self.vpids);
        }
        if end == GuestEnd::Crashed && slot.restarts < slot.config.restart_limit {
            slot.restarts += 1;
            crate::info!("{}: crashed; restarting ({} of {} restarts)", name, slot.restarts, slot.config.restart_limit);
            self.create(position);
            return;
        }
        slot.state = Lifecycle::Finished(end);
        let verdict = Verdict::judge(slot.config.expected, end);
        crate::info!(
            "{}: ended {}: verdict {} (expected {})",
            name,
            end,
            verdict_word(verdict.passed()),
            slot.config.expected
        );
    }

    /// Prints one line per guest and the totals; returns whether all passed.
    fn print_summary(&self) -> bool {
        let mut all_passed = true;
        crate::info!("summary of {} guests ({} guest switches):", self.slots.len(), self.switches);
        crate::info!(
            "  {:<16} {:<7} {:<14} {:<14} {:>8} {:>7} {:>12}  exits by reason",
            "guest",
            "verdict",
            "expected",
            "ended",
            "restarts",
            "slices",
            "ticks"
        );
        let mut overhead_total = 0;
        for slot in &self.slots {
            let passed = match slot.state {
                Lifecycle::Finished(end) => slot.config.expected.matches(end),
                _ => false,
            };
            all_passed &= passed;
            overhead_total += slot.overhead_bytes;
            crate::info!(
                "  {:<16} {:<7} {:<14} {:<14} {:>8} {:>7} {:>12}  {}",
                slot.config.name.as_str(),
                verdict_word(passed),
                alloc::format!("{}", slot.config.expected),
                alloc::format!("{}", slot.state),
                slot.restarts,
                slot.slices,
                slot.ticks,
                TopReasons(&slot.exits)
            );
        }
        let count = self.slots.len().max(1) as u64;
        crate::info!(
            "hypervisor memory for guests: {} KiB in total, {} KiB per guest on average (VMCS, EPT tables, XSAVE area, vCPU state; RAM not counted)",
            overhead_total.div_ceil(1024),
            (overhead_total / count).div_ceil(1024)
        );
        all_passed
    }
}

/// Teardown (SDM Vol. 3C, 29.4.3.3 "Guidelines for Use of the INVEPT
/// Instruction"): drop every cached translation of the guest's EPT and VPID so
/// the next user of its frames and VPID starts clean, then free its VMCS
/// (VMCLEAR first), EPT tables and RAM (zeroed before it is returned).
fn teardown(guest: Box<Guest>, vpids: &mut VpidAllocator) {
    ept::invept_single_context(guest.ept.eptp());
    if guest.vpid != 0 {
        ept::invvpid_single_context(guest.vpid);
    }
    vpids.release(guest.vpid);
    drop(guest);
}

fn verdict_word(passed: bool) -> &'static str {
    if passed {
        "PASS"
    } else {
        "FAIL"
    }
}

/// The three most frequent exit reasons, e.g. "CPUID 10100, VMCALL 10114".
struct TopReasons<'a>(&'a [u64; REASON_SLOTS]);

impl fmt::Display for TopReasons<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut order: Vec<usize> = (0..REASON_SLOTS).filter(|&reason| self.0[reason] != 0).collect();
        order.sort_by(|&a, &b| self.0[b].cmp(&self.0[a]));
        if order.is_empty() {
            return f.write_str("-");
        }
        for (n, &reason) in order.iter().take(3).enumerate() {
            if n > 0 {
                f.write_str(", ")?;
            }
            let name = ExitReason::from_basic(reason as u16).map_or("?", ExitReason::name);
            write!(f, "{} {}", name, self.0[reason])?;
        }
        if order.len() > 3 {
            write!(f, ", +{} more", order.len() - 3)?;
        }
        Ok(())
    }
}
