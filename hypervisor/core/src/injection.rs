//! When an interrupt can be injected into a guest (SDM Vol. 3C, 27.6 "Event
//! Injection", and 26.7.5 "Interrupt-Window Exiting and Virtual-Interrupt
//! Delivery"), as a plain function.
//!
//! A CPU takes an external interrupt at an instruction boundary only if
//! RFLAGS.IF = 1 and it is not in the shadow of STI or MOV SS (SDM Vol. 3A,
//! 7.8.3 "Masking Exceptions and Interrupts When Switching Stacks"). VM entry
//! injects exactly one event and does not check IF for it, so the hypervisor
//! must check on the guest's behalf; when the guest cannot take the
//! interrupt yet, "interrupt-window exiting" makes the CPU exit at the first
//! instruction boundary where it can.

/// RFLAGS.IF.
pub const RFLAGS_IF: u64 = 1 << 9;
/// Interruptibility state bit 0: blocking by STI.
pub const BLOCKING_BY_STI: u64 = 1 << 0;
/// Interruptibility state bit 1: blocking by MOV SS / POP SS.
pub const BLOCKING_BY_MOV_SS: u64 = 1 << 1;
/// Interruptibility state bit 3: blocking by NMI (the guest has not yet
/// returned from an NMI handler).
pub const BLOCKING_BY_NMI: u64 = 1 << 3;
/// VM-entry interruption-information bit 31: an event is already queued.
pub const ENTRY_EVENT_VALID: u64 = 1 << 31;

/// What to do before the next VM entry about a pending interrupt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InjectionDecision {
    /// Nothing waits: interrupt-window exiting off.
    Idle,
    /// Inject it now (and keep the window open if more wait).
    Inject,
    /// The guest cannot take it yet: interrupt-window exiting on.
    WaitForWindow,
}

/// Decides from the guest's RFLAGS, interruptibility state and the VM-entry
/// interruption-information field whether a pending interrupt goes in now.
pub const fn decide(pending: bool, rflags: u64, interruptibility: u64, entry_info: u64) -> InjectionDecision {
    if !pending {
        return InjectionDecision::Idle;
    }
    // One event per entry: an exception or a re-injected event goes first.
    if entry_info & ENTRY_EVENT_VALID != 0 {
        return InjectionDecision::WaitForWindow;
    }
    if rflags & RFLAGS_IF == 0 || interruptibility & (BLOCKING_BY_STI | BLOCKING_BY_MOV_SS) != 0 {
        return InjectionDecision::WaitForWindow;
    }
    InjectionDecision::Inject
}

/// The same for an NMI (SDM Vol. 3C, 27.3.1.5 "Checks on Guest
/// Non-Register State"): RFLAGS.IF does not matter, but an NMI waits while
/// the guest is still in an NMI handler (blocking by NMI) and in the shadow of
/// MOV SS (VM entry refuses to inject an NMI there); the shadow of STI is
/// treated the same, as some processors do.
pub const fn decide_nmi(pending: bool, interruptibility: u64, entry_info: u64) -> InjectionDecision {
    if !pending {
        return InjectionDecision::Idle;
    }
    if entry_info & ENTRY_EVENT_VALID != 0
        || interruptibility & (BLOCKING_BY_STI | BLOCKING_BY_MOV_SS | BLOCKING_BY_NMI) != 0
    {
        return InjectionDecision::WaitForWindow;
    }
    InjectionDecision::Inject
}

#[cfg(test)]
mod tests {
    #[test]
    fn an_nmi_ignores_if_but_waits_for_the_handler_and_shadows() {
        use super::*;
        assert_eq!(decide_nmi(false, 0, 0), InjectionDecision::Idle);
        assert_eq!(decide_nmi(true, 0, 0), InjectionDecision::Inject);
        assert_eq!(decide_nmi(true, BLOCKING_BY_NMI, 0), InjectionDecision::WaitForWindow);
        assert_eq!(decide_nmi(true, BLOCKING_BY_MOV_SS, 0), InjectionDecision::WaitForWindow);
        assert_eq!(decide_nmi(true, BLOCKING_BY_STI, 0), InjectionDecision::WaitForWindow);
        assert_eq!(decide_nmi(true, 0, ENTRY_EVENT_VALID | 0x30E), InjectionDecision::WaitForWindow);
    }

    use super::*;

    #[test]
    fn nothing_pending_closes_the_window() {
        assert_eq!(decide(false, RFLAGS_IF, 0, 0), InjectionDecision::Idle);
        assert_eq!(decide(false, 0, BLOCKING_BY_STI, ENTRY_EVENT_VALID), InjectionDecision::Idle);
    }

    #[test]
    fn an_interruptible_guest_gets_it_now() {
        assert_eq!(decide(true, RFLAGS_IF | 0x2, 0, 0), InjectionDecision::Inject);
        // Bits other than STI/MOV SS blocking (SMI, NMI blocking) do not block interrupts.
        assert_eq!(decide(true, RFLAGS_IF, 0b1100, 0), InjectionDecision::Inject);
    }

    #[test]
    fn if_clear_shadows_and_queued_events_wait() {
        assert_eq!(decide(true, 0x2, 0, 0), InjectionDecision::WaitForWindow);
        assert_eq!(decide(true, RFLAGS_IF, BLOCKING_BY_STI, 0), InjectionDecision::WaitForWindow);
        assert_eq!(decide(true, RFLAGS_IF, BLOCKING_BY_MOV_SS, 0), InjectionDecision::WaitForWindow);
        assert_eq!(decide(true, RFLAGS_IF, 0, ENTRY_EVENT_VALID | 0x30E), InjectionDecision::WaitForWindow);
    }
}
