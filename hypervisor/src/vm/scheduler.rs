//! The scheduler: every configured guest shares the one CPU, round robin.
//!
//! Each guest runs for one time slice at a time ([`Guest::run_slice`]). A slice
//! ends when the guest has used its `time_slice_ticks` (noticed at its next
//! exit; the VMX-preemption timer, armed with the slice, guarantees there is
//! one even for a guest that never exits by itself), when it yields (the
//! `yield` hypercall), when it halts waiting for an interrupt, or when it
//! ends. Then the next runnable guest in the list gets the CPU. A halted
//! guest becomes runnable when its next timer interrupt falls due; when
//! every live guest is halted, the CPU idles until the first one wakes.
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
//!                │    ▲
//!                │    └── halted (until its next interrupt)
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

use crate::platform::memory;
use crate::vm::cpu_context::XsaveLayout;
use crate::vm::guest::{Guest, Overhead, SliceEnd};
use crate::vm::stats::REASON_SLOTS;
use crate::vm::{step, Host};
use crate::vmx::ept;
use crate::vmx::read_tsc;

/// The least a guest runs when another guest's wake-up cuts its time slice
/// short (half a millisecond at Bochs' 20 MHz TSC): below a 1 kHz timer's
/// period, so such timers stay on time, and enough that a guest whose timer
/// fires every few ticks cannot starve the others.
pub const MIN_QUANTUM_TICKS: u64 = 10_000;

/// Where a guest is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lifecycle {
    /// In the run's list, not entered yet; it is built (RAM, EPT, VMCS) when
    /// it first gets the CPU, so the first guest starts without waiting for
    /// every other guest's RAM to be zeroed.
    Created,
    /// Waiting for the CPU.
    Runnable,
    /// Has the CPU.
    Running,
    /// Halted with interrupts enabled: sleeps until the host TSC reaches
    /// this value (its next timer interrupt), then it is runnable again.
    Halted(u64),
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
            Lifecycle::Halted(until) => write!(f, "halted until TSC {until}"),
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
    /// Interrupts injected, over all its runs.
    injected: u64,
    /// Host memory its last run cost beyond its RAM, by part.
    overhead: Option<Overhead>,
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
    /// Ticks the CPU spent with every live guest halted.
    idle_ticks: u64,
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
            idle_ticks: 0,
            kernel_entry_tsc,
        }
    }

    /// Adds a guest to the run. It is built when it first gets the CPU; one
    /// that cannot be built is reported and counted as failed, and the others
    /// go on.
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
            injected: 0,
            overhead: None,
        };
        self.slots.push(slot);
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
                let overhead = guest.overhead();
                crate::info!(
                    "{}: {} MiB RAM, entry {:#x} in {} mode, EPT {} tables, VPID {}, {} KiB of hypervisor memory",
                    name,
                    guest.ram.size() >> 20,
                    guest.entry.rip,
                    slot.config.start_mode,
                    guest.ept.tables_used(),
                    guest.vpid,
                    overhead.total().div_ceil(1024)
                );
                slot.overhead = Some(overhead);
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
        // Branch predictions trained by the previous guest must not steer this one.
        self.host.mitigations.on_guest_switch();
        self.current = Some(position);
        self.switches += 1;
        Ok(())
    }

    /// The next slot to run: a guest whose next interrupt has fallen due (a
    /// halted guest to wake, or a preempted one with a timer event: the
    /// earliest first), else the next runnable guest after `after`, round
    /// robin. When every live guest is halted, the
    /// CPU idles until the first wake-up. `None` when all are done.
    fn next_runnable(&mut self, after: Option<usize>) -> Option<usize> {
        let count = self.slots.len();
        let start = after.map_or(0, |position| position + 1);
        loop {
            let now = read_tsc();
            // Not the guest that just ran: a guest whose timer fires faster
            // than it can run would otherwise be picked every time.
            if let Some((position, _)) = self.earliest_wake(after).filter(|&(_, until)| until <= now) {
                return Some(position);
            }
            let runnable = (0..count)
                .map(|offset| (start + offset) % count)
                .find(|&position| matches!(self.slots[position].state, Lifecycle::Created | Lifecycle::Runnable));
            if runnable.is_some() {
                return runnable;
            }
            let (position, wake) = self.earliest_wake(None)?;
            if wake <= now {
                // Only the guest that just ran is due: it runs again.
                return Some(position);
            }
            // Nothing to run until `wake`: wait for it. (The hypervisor takes
            // no host interrupts, so there is nothing to HLT for; PAUSE tells
            // the CPU, or a sibling hyperthread, that this is a spin.)
            while read_tsc() < wake {
                crate::platform::console::pump();
                // Idle time zeroes the RAM of guests that ended.
                if !memory::scrub(memory::SCRUB_STEP) {
                    core::hint::spin_loop();
                }
            }
            self.idle_ticks += read_tsc() - now;
        }
    }

    /// The halted guest (other than `except`) that wakes first, and when. (A
    /// guest that was preempted while it ran takes its interrupts at its next
    /// turn: only sleeping guests are woken early, so a guest that keeps a
    /// fast timer and never halts cannot take the CPU from the others.)
    fn earliest_wake(&self, except: Option<usize>) -> Option<(usize, u64)> {
        self.slots
            .iter()
            .enumerate()
            .filter(|&(position, _)| Some(position) != except)
            .filter_map(|(position, slot)| match slot.state {
                Lifecycle::Halted(until) => Some((position, until)),
                _ => None,
            })
            .min_by_key(|&(_, until)| until)
    }

    /// Runs every guest until all have finished; returns whether each ended
    /// as its config expected.
    pub fn run(&mut self) -> bool {
        let mut last = None;
        let mut first_entry = true;
        while let Some(position) = self.next_runnable(last) {
            last = Some(position);
            if self.slots[position].guest.is_none() {
                self.create(position);
                if self.slots[position].state == Lifecycle::NotStarted {
                    continue;
                }
            }
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
            // Another guest's interrupt falling due ends this slice early, so
            // that guest's timer is served on time — but not before this
            // guest has had MIN_QUANTUM_TICKS.
            let wake = self
                .earliest_wake(Some(position))
                .map_or(u64::MAX, |(_, until)| until.max(read_tsc().saturating_add(MIN_QUANTUM_TICKS)));
            let slot = &mut self.slots[position];
            slot.state = Lifecycle::Running;
            let Some(guest) = slot.guest.as_mut() else {
                slot.state = Lifecycle::NotStarted;
                continue;
            };
            crate::platform::console::pump();
            memory::scrub(memory::SCRUB_STEP);
            match guest.run_slice(self.host, wake) {
                SliceEnd::Preempted => slot.state = Lifecycle::Runnable,
                SliceEnd::Halted(until) => slot.state = Lifecycle::Halted(until),
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
            let counts = guest.board.counts;
            if counts.injected != 0 || counts.nmis != 0 || guest.halts != 0 {
                crate::info!(
                    "{}: interrupts: {} injected ({} PIT ticks, {} local APIC timer expiries, {} merged into an earlier one), {} HLTs slept, {} NMIs injected",
                    name,
                    counts.injected,
                    counts.pit_ticks,
                    counts.apic_timer_ticks,
                    counts.merged,
                    guest.halts,
                    counts.nmis
                );
            }
            slot.injected += counts.injected + counts.nmis;
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
        // Every ended guest's RAM is zeroed before the run is over.
        memory::scrub(u64::MAX);
        crate::info!("teardown: {} blocks of 2 MiB of guest RAM zeroed and freed", memory::retired_blocks());
        let mut all_passed = true;
        crate::info!(
            "summary of {} guests ({} guest switches, CPU idle {} ticks with every guest halted):",
            self.slots.len(),
            self.switches,
            self.idle_ticks
        );
        crate::info!(
            "  {:<16} {:<7} {:<14} {:<14} {:>8} {:>7} {:>12} {:>10}  exits by reason",
            "guest",
            "verdict",
            "expected",
            "ended",
            "restarts",
            "slices",
            "ticks",
            "interrupts"
        );
        let mut overhead_total = 0;
        for slot in &self.slots {
            let passed = match slot.state {
                Lifecycle::Finished(end) => slot.config.expected.matches(end),
                _ => false,
            };
            all_passed &= passed;
            overhead_total += slot.overhead.map_or(0, |overhead| overhead.total());
            crate::info!(
                "  {:<16} {:<7} {:<14} {:<14} {:>8} {:>7} {:>12} {:>10}  {}",
                slot.config.name.as_str(),
                verdict_word(passed),
                alloc::format!("{}", slot.config.expected),
                alloc::format!("{}", slot.state),
                slot.restarts,
                slot.slices,
                slot.ticks,
                slot.injected,
                TopReasons(&slot.exits)
            );
        }
        if let Some((ram_bytes, parts)) =
            self.slots.iter().find_map(|slot| Some((slot.config.ram_bytes, slot.overhead?)))
        {
            crate::info!("hypervisor memory of one guest ({} MiB of RAM): {}", ram_bytes >> 20, parts);
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
