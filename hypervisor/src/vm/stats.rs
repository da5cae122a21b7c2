//! Per-guest counters: exits and ticks per exit reason, a ring of the last
//! exits (printed when a guest crashes), and accesses to unemulated ports.
//!
//! Plain integers, no allocation, no locks: this is on every exit's path.

use hypervisor_core::exit::ExitReason;

/// Basic exit reasons are below this (SDM Vol. 3C, Appendix C).
pub const REASON_SLOTS: usize = 80;
/// How many recent exits the ring keeps.
pub const RING_LEN: usize = 16;
/// How many distinct unemulated ports are counted individually.
const PORT_SLOTS: usize = 32;

/// What the handler did with an exit (for the ring and for traces).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Action {
    /// Not recorded yet.
    #[default]
    None,
    /// Emulated the instruction and moved past it.
    Emulated,
    /// Injected an exception with this vector.
    Injected(u8),
    /// Counted and resumed without changing guest state.
    Resumed,
    /// Stopped the guest.
    Stopped,
}

/// One remembered exit (its sequence number follows from its slot and the
/// exit count, so it is not stored).
#[derive(Debug, Clone, Copy, Default)]
pub struct RecentExit {
    /// Basic exit reason.
    pub reason: u16,
    /// Guest RIP.
    pub rip: u64,
    /// Exit qualification or the most telling value of the exit.
    pub detail: u64,
    /// What the handler did.
    pub action: Action,
}

/// All counters of one guest.
#[derive(Debug, Clone)]
pub struct ExitStats {
    /// Exits by basic reason.
    pub exits: [u64; REASON_SLOTS],
    /// TSC ticks from each exit to the next entry, by reason.
    pub ticks: [u64; REASON_SLOTS],
    /// All exits.
    pub total_exits: u64,
    /// The last exits, oldest overwritten first.
    pub ring: [RecentExit; RING_LEN],
    /// Unemulated ports: (port, accesses).
    pub ports: [(u16, u64); PORT_SLOTS],
    /// Accesses to unemulated ports beyond the individually counted ones.
    pub other_port_accesses: u64,
}

impl Default for ExitStats {
    fn default() -> Self {
        ExitStats {
            exits: [0; REASON_SLOTS],
            ticks: [0; REASON_SLOTS],
            total_exits: 0,
            ring: [RecentExit::default(); RING_LEN],
            ports: [(0, 0); PORT_SLOTS],
            other_port_accesses: 0,
        }
    }
}

impl ExitStats {
    /// Counts an exit and remembers it in the ring; returns its slot there.
    #[inline]
    pub fn record(&mut self, reason: u16, rip: u64) -> usize {
        self.total_exits += 1;
        if let Some(count) = self.exits.get_mut(reason as usize) {
            *count += 1;
        }
        let slot = (self.total_exits as usize) % RING_LEN;
        self.ring[slot] = RecentExit { reason, rip, detail: 0, action: Action::None };
        slot
    }

    /// Counts an exit already handled (the fast path) with what was done.
    #[inline(always)]
    pub fn record_handled(&mut self, reason: u16, rip: u64, action: Action) {
        self.total_exits += 1;
        if let Some(count) = self.exits.get_mut(reason as usize) {
            *count += 1;
        }
        let slot = (self.total_exits as usize) % RING_LEN;
        self.ring[slot] = RecentExit { reason, rip, detail: 0, action };
    }

    /// Adds `exits` exits of `reason` that the exit landing's fast path
    /// answered (`vmx::run`), with the `ticks` they took. They are not in the ring.
    pub fn add_fast_path(&mut self, reason: u16, exits: u64, ticks: u64) {
        self.total_exits += exits;
        if let Some(count) = self.exits.get_mut(reason as usize) {
            *count += exits;
        }
        self.add_ticks(reason, ticks);
    }

    /// Adds the handling time of an exit.
    #[inline]
    pub fn add_ticks(&mut self, reason: u16, ticks: u64) {
        if let Some(total) = self.ticks.get_mut(reason as usize) {
            *total += ticks;
        }
    }

    /// Counts an access to a port nothing emulates.
    pub fn count_port(&mut self, port: u16) {
        for slot in self.ports.iter_mut() {
            if slot.1 != 0 && slot.0 == port {
                slot.1 += 1;
                return;
            }
            if slot.1 == 0 {
                *slot = (port, 1);
                return;
            }
        }
        self.other_port_accesses += 1;
    }

    /// Prints exits by reason (with average handling ticks).
    pub fn print_by_reason(&self, name: &str) {
        crate::info!("{}: {} exits", name, self.total_exits);
        for (reason, &count) in self.exits.iter().enumerate() {
            if count != 0 {
                crate::info!(
                    "{}:   {:<28} {:>8} exits, {:>6} ticks each in the hypervisor",
                    name,
                    ExitReason::from_basic(reason as u16).map_or("unknown", ExitReason::name),
                    count,
                    self.ticks[reason] / count
                );
            }
        }
        for &(port, count) in self.ports.iter().filter(|slot| slot.1 != 0) {
            crate::info!("{}:   unemulated port {:#06x}: {} accesses", name, port, count);
        }
        if self.other_port_accesses != 0 {
            crate::info!("{}:   other unemulated ports: {} accesses", name, self.other_port_accesses);
        }
    }

    /// Prints the ring, oldest first.
    pub fn print_ring(&self, name: &str) {
        crate::error!("{}: the last {} exits, oldest first:", name, RING_LEN.min(self.total_exits as usize));
        let first = self.total_exits.saturating_sub(RING_LEN as u64 - 1).max(1);
        for sequence in first..=self.total_exits {
            let exit = &self.ring[(sequence as usize) % RING_LEN];
            crate::error!(
                "{}:   #{:<6} {:<28} RIP {:#014x}  {}  -> {:?}",
                name,
                sequence,
                ExitReason::from_basic(exit.reason).map_or("unknown", ExitReason::name),
                exit.rip,
                Detail(exit.reason, exit.detail),
                exit.action
            );
        }
    }
}

/// An exit's detail in words: the I/O or CR-access qualification decoded, the
/// guest-physical address of an EPT exit, the raw value otherwise.
struct Detail(u16, u64);

impl core::fmt::Display for Detail {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        use hypervisor_core::exit::{CrAccessQualification, IoQualification};
        match ExitReason::from_basic(self.0) {
            Some(ExitReason::IoInstruction) => write!(f, "{}", IoQualification(self.1)),
            Some(ExitReason::ControlRegisterAccess) => write!(f, "{}", CrAccessQualification(self.1)),
            Some(ExitReason::EptViolation | ExitReason::EptMisconfiguration) => write!(f, "GPA {:#x}", self.1),
            _ if self.1 == 0 => Ok(()),
            _ => write!(f, "detail {:#x}", self.1),
        }
    }
}
