//! The decisions behind single-stepping a guest (`--step`), kept apart from
//! the VMCS so the host can test them. The kernel's `vm::step` reads the
//! fields, asks these functions, and writes the answers back.
//!
//! Two mechanisms can stop a guest after each instruction:
//!
//! - the **monitor trap flag** VM-execution control (SDM Vol. 3C, 26.5.2
//!   "Monitor Trap Flag"): a VM exit (reason 37) after each instruction,
//!   invisible to the guest;
//! - **RFLAGS.TF** with #DB in the exception bitmap: the single-step debug
//!   exception after each instruction (SDM Vol. 3B, 18.3.1.4 "Single-Step
//!   Exception Condition") becomes a VM exit (SDM Vol. 3C, 25.6.3 "Exception
//!   Bitmap") whose qualification carries DR6-style bits (SDM Vol. 3C, 28.2.1
//!   "Basic VM-Exit Information").
//!
//! Some CPUs (Bochs 2.7) accept the MTF control yet never make its exits, so
//! stepping starts by [`StepMethod::Probing`] with both armed; the first
//! step's exit picks the method ([`StepMethod::after_step`]). With TF the
//! flag is in the guest's own RFLAGS: [`decide_debug_exit`] keeps the guest's
//! own use of TF and #DB working and says what to hide.

/// RFLAGS bit 8: the trap flag (SDM Vol. 1, 3.4.3.3 "System Flags and IOPL Field").
pub const RFLAGS_TF: u64 = 1 << 8;
/// DR6 bits 3:0 (B0–B3): a breakpoint condition of DR0–DR3 was met (SDM Vol.
/// 3B, 18.2.3 "Debug Status Register (DR6)"). Same bits in the #DB exit
/// qualification.
pub const DR6_BREAKPOINTS: u64 = 0xF;
/// DR6 bit 13 (BD): an access to a debug register was detected.
pub const DR6_BD: u64 = 1 << 13;
/// DR6 bit 14 (BS): single step. Also bit 14 of the #DB exit qualification
/// and of the guest's "pending debug exceptions" field (SDM Vol. 3C, 25.4.2
/// "Guest Non-Register State").
pub const DR6_BS: u64 = 1 << 14;
/// Interruptibility-state bits 0 and 1: blocking by STI, blocking by MOV SS
/// (SDM Vol. 3C, 25.4.2, Table 25-3).
pub const BLOCKING_BY_STI_OR_MOV_SS: u64 = 0b11;
/// Activity state 1: HLT (SDM Vol. 3C, 25.4.2).
pub const ACTIVITY_HLT: u64 = 1;

/// How a guest is being stepped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StepMethod {
    /// The MTF control and TF (with #DB exits) both armed until the first step
    /// shows which of them works.
    Probing,
    /// Monitor-trap-flag VM exits.
    MonitorTrapFlag,
    /// RFLAGS.TF, with #DB intercepted through the exception bitmap.
    TrapFlag,
}

/// The exit that ended an instruction of a stepped guest.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StepExit {
    /// An MTF VM exit (basic reason 37).
    MonitorTrap,
    /// A #DB exit with BS set: the single-step trap.
    SingleStepDebug,
    /// Any other exit (an instruction the hypervisor emulates, an interrupt...).
    Other,
}

impl StepMethod {
    /// The method after a step ended with `exit`: a probe is decided by the
    /// first MTF exit (MTF works; it takes priority over the single-step
    /// trap) or the first single-step #DB exit (the instruction completed
    /// without an MTF exit: MTF exits do not come). Anything else decides
    /// nothing, and a decided method never changes.
    pub const fn after_step(self, exit: StepExit) -> StepMethod {
        match (self, exit) {
            (StepMethod::Probing, StepExit::MonitorTrap) => StepMethod::MonitorTrapFlag,
            (StepMethod::Probing, StepExit::SingleStepDebug) => StepMethod::TrapFlag,
            (method, _) => method,
        }
    }

    /// Whether RFLAGS.TF and the #DB exception-bitmap bit are armed.
    pub const fn uses_trap_flag(self) -> bool {
        !matches!(self, StepMethod::MonitorTrapFlag)
    }

    /// Whether the monitor-trap-flag control is armed.
    pub const fn uses_monitor_trap_flag(self) -> bool {
        !matches!(self, StepMethod::TrapFlag)
    }

    /// In words, for the kernel's summary line.
    pub const fn describe(self) -> &'static str {
        match self {
            StepMethod::Probing => "nothing (no step happened)",
            StepMethod::MonitorTrapFlag => "the monitor trap flag",
            StepMethod::TrapFlag => "RFLAGS.TF and #DB exits",
        }
    }
}

/// The instructions that read or load RFLAGS.TF, which TF mode watches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FlagsInstruction {
    /// PUSHF/PUSHFD/PUSHFQ (opcode 9C): pushes RFLAGS, TF included.
    Pushf,
    /// POPF/POPFD/POPFQ (9D) or IRET/IRETD/IRETQ (CF): load TF from memory.
    LoadsFlags,
    /// Any other instruction (or bytes that could not be read).
    Other,
}

impl FlagsInstruction {
    /// Classifies the instruction that starts with `bytes`, skipping legacy
    /// prefixes (SDM Vol. 2A, 2.1.1 "Instruction Prefixes") and, in 64-bit
    /// mode only, REX prefixes (2.2.1 "REX Prefixes"; outside 64-bit mode
    /// 40h–4Fh are INC/DEC).
    pub fn classify(bytes: &[u8], long_mode: bool) -> FlagsInstruction {
        let opcode = bytes.iter().copied().find(|&byte| {
            let legacy = matches!(byte, 0x26 | 0x2E | 0x36 | 0x3E | 0x64 | 0x65 | 0x66 | 0x67 | 0xF0 | 0xF2 | 0xF3);
            let rex = long_mode && (0x40..=0x4F).contains(&byte);
            !(legacy || rex)
        });
        match opcode {
            Some(0x9C) => FlagsInstruction::Pushf,
            Some(0x9D | 0xCF) => FlagsInstruction::LoadsFlags,
            _ => FlagsInstruction::Other,
        }
    }
}

/// What to do about a #DB exit of a guest stepped with TF.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DebugExitDecision {
    /// The exit is a step of ours: count it and print its line.
    pub step: bool,
    /// Deliver #DB to the guest, after setting these bits in its DR6 (a #DB
    /// that causes a VM exit does not write DR6).
    pub reflect: Option<u64>,
    /// The guest's own TF from now on.
    pub guest_tf: bool,
    /// The instruction was a PUSHF that pushed our TF: clear it in the image.
    pub hide_pushed_tf: bool,
}

/// Decides a #DB exit in TF mode.
///
/// - `qualification`: the exit qualification (B0–B3, BD, BS).
/// - `icebp`: the #DB came from ICEBP (INT1; interruption type 5, privileged
///   software exception), which is always the guest's.
/// - `guest_tf`: whether the guest had set TF itself before the instruction.
/// - `executed`: the instruction the step completed.
/// - `tf_now`: RFLAGS.TF after it.
///
/// The single-step trap follows the instruction that *began* with TF set
/// (18.3.1.4), so the guest's own TF before the instruction decides whether
/// the trap is also the guest's: after a POPF that sets TF, its first trap
/// comes one instruction later; the POPF that clears TF still traps.
pub fn decide_debug_exit(
    qualification: u64,
    icebp: bool,
    guest_tf: bool,
    executed: FlagsInstruction,
    tf_now: bool,
) -> DebugExitDecision {
    let step = qualification & DR6_BS != 0 && !icebp;
    let mut bits = qualification & (DR6_BREAKPOINTS | DR6_BD);
    if step && guest_tf {
        bits |= DR6_BS;
    }
    let reflect = (icebp || bits != 0).then_some(bits);
    let guest_tf_after = if step && executed == FlagsInstruction::LoadsFlags { tf_now } else { guest_tf };
    let hide_pushed_tf = step && executed == FlagsInstruction::Pushf && !guest_tf;
    DebugExitDecision { step, reflect, guest_tf: guest_tf_after, hide_pushed_tf }
}

/// RFLAGS as the guest should see it: TF as the guest itself set it.
pub const fn guest_view_of_rflags(rflags: u64, guest_tf: bool) -> u64 {
    (rflags & !RFLAGS_TF) | if guest_tf { RFLAGS_TF } else { 0 }
}

/// The "pending debug exceptions" field for the next VM entry with TF set:
/// VM entry requires BS = 1 when RFLAGS.TF = 1 and blocking by STI or MOV SS
/// or the HLT activity state is in effect (with IA32_DEBUGCTL.BTF = 0, as
/// this hypervisor leaves it; SDM Vol. 3C, 27.3.1.5 "Checks on Guest
/// Non-Register State"). Otherwise the field is left as it is.
pub const fn pending_debug_for_entry(pending: u64, rflags: u64, interruptibility: u64, activity_state: u64) -> u64 {
    let blocked = interruptibility & BLOCKING_BY_STI_OR_MOV_SS != 0 || activity_state == ACTIVITY_HLT;
    if rflags & RFLAGS_TF != 0 && blocked {
        pending | DR6_BS
    } else {
        pending
    }
}

/// Whether a step is folded into the next printed line instead of getting
/// its own: it ended at the RIP of the step before (a REP iteration, a jump
/// to itself), it is not an emulated instruction, and it is not the first.
pub const fn is_repeat(rip: u64, previous_rip: u64, emulated: bool, lines_so_far: u64) -> bool {
    rip == previous_rip && !emulated && lines_so_far > 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_probe_is_decided_by_the_first_step_exit() {
        use StepExit::*;
        use StepMethod::*;
        assert_eq!(Probing.after_step(MonitorTrap), MonitorTrapFlag);
        assert_eq!(Probing.after_step(SingleStepDebug), TrapFlag);
        // An emulated instruction or an interrupt decides nothing.
        assert_eq!(Probing.after_step(Other), Probing);
        // A decided method stays.
        assert_eq!(TrapFlag.after_step(MonitorTrap), TrapFlag);
        assert_eq!(MonitorTrapFlag.after_step(SingleStepDebug), MonitorTrapFlag);
        assert!(Probing.uses_trap_flag() && Probing.uses_monitor_trap_flag());
        assert!(TrapFlag.uses_trap_flag() && !TrapFlag.uses_monitor_trap_flag());
        assert!(!MonitorTrapFlag.uses_trap_flag() && MonitorTrapFlag.uses_monitor_trap_flag());
        assert_eq!(TrapFlag.describe(), "RFLAGS.TF and #DB exits");
    }

    #[test]
    fn classify_finds_pushf_popf_iret_behind_prefixes() {
        use FlagsInstruction::*;
        assert_eq!(FlagsInstruction::classify(&[0x9C], false), Pushf);
        assert_eq!(FlagsInstruction::classify(&[0x66, 0x9C], false), Pushf); // PUSHFD in 16-bit code
        assert_eq!(FlagsInstruction::classify(&[0x9D, 0x90], false), LoadsFlags);
        assert_eq!(FlagsInstruction::classify(&[0x66, 0xCF], false), LoadsFlags); // IRETD
        assert_eq!(FlagsInstruction::classify(&[0x48, 0xCF], true), LoadsFlags); // IRETQ
        assert_eq!(FlagsInstruction::classify(&[0x2E, 0x67, 0xF3, 0x9C], true), Pushf);
        // Outside 64-bit mode 48h is DEC EAX, not a prefix.
        assert_eq!(FlagsInstruction::classify(&[0x48, 0xCF], false), Other);
        assert_eq!(FlagsInstruction::classify(&[0x0F, 0x22, 0xC0], false), Other);
        assert_eq!(FlagsInstruction::classify(&[0x66, 0x66], false), Other); // only prefixes
        assert_eq!(FlagsInstruction::classify(&[], true), Other);
    }

    #[test]
    fn our_single_step_is_counted_and_not_delivered() {
        let decision = decide_debug_exit(DR6_BS, false, false, FlagsInstruction::Other, true);
        assert_eq!(decision, DebugExitDecision { step: true, reflect: None, guest_tf: false, hide_pushed_tf: false });
    }

    #[test]
    fn the_guests_own_single_step_is_reflected_with_bs() {
        let decision = decide_debug_exit(DR6_BS, false, true, FlagsInstruction::Other, true);
        assert!(decision.step);
        assert_eq!(decision.reflect, Some(DR6_BS));
        assert!(decision.guest_tf);
    }

    #[test]
    fn popf_and_iret_update_the_guests_tf_with_bare_metal_timing() {
        // POPF that sets TF: no trap of the guest's after it, TF is the guest's from now on.
        let set = decide_debug_exit(DR6_BS, false, false, FlagsInstruction::LoadsFlags, true);
        assert_eq!((set.reflect, set.guest_tf), (None, true));
        // The next instruction traps for the guest.
        let next = decide_debug_exit(DR6_BS, false, set.guest_tf, FlagsInstruction::Other, true);
        assert_eq!(next.reflect, Some(DR6_BS));
        // The IRET that clears TF still traps (TF was set when it began), then TF is clear.
        let clear = decide_debug_exit(DR6_BS, false, true, FlagsInstruction::LoadsFlags, false);
        assert_eq!((clear.reflect, clear.guest_tf), (Some(DR6_BS), false));
        // A POPF that keeps TF clear: still not the guest's.
        let keep = decide_debug_exit(DR6_BS, false, false, FlagsInstruction::LoadsFlags, false);
        assert_eq!((keep.reflect, keep.guest_tf), (None, false));
    }

    #[test]
    fn pushf_hides_only_our_tf() {
        assert!(decide_debug_exit(DR6_BS, false, false, FlagsInstruction::Pushf, true).hide_pushed_tf);
        // The guest set TF itself: the pushed TF is true.
        assert!(!decide_debug_exit(DR6_BS, false, true, FlagsInstruction::Pushf, true).hide_pushed_tf);
        // Not a step (a breakpoint hit): nothing executed by our step.
        assert!(!decide_debug_exit(1, false, false, FlagsInstruction::Pushf, true).hide_pushed_tf);
    }

    #[test]
    fn breakpoints_bd_and_icebp_always_go_to_the_guest() {
        // A data breakpoint on DR1 hit by a stepped instruction: both a step and the guest's #DB.
        let both = decide_debug_exit(DR6_BS | 0b10, false, false, FlagsInstruction::Other, true);
        assert_eq!((both.step, both.reflect), (true, Some(0b10)));
        let bd = decide_debug_exit(DR6_BD, false, false, FlagsInstruction::Other, true);
        assert_eq!((bd.step, bd.reflect), (false, Some(DR6_BD)));
        // ICEBP: the guest's, never a step, even if the qualification looks like one.
        let icebp = decide_debug_exit(0, true, false, FlagsInstruction::Other, true);
        assert_eq!((icebp.step, icebp.reflect), (false, Some(0)));
        let icebp_bs = decide_debug_exit(DR6_BS, true, false, FlagsInstruction::LoadsFlags, false);
        assert_eq!((icebp_bs.step, icebp_bs.reflect, icebp_bs.guest_tf), (false, Some(0), false));
        // Bits outside B0-B3, BD, BS are not reflected.
        let other = decide_debug_exit(1 << 16, false, false, FlagsInstruction::Other, true);
        assert_eq!(other, DebugExitDecision { step: false, reflect: None, guest_tf: false, hide_pushed_tf: false });
    }

    #[test]
    fn guest_view_replaces_tf_only() {
        assert_eq!(guest_view_of_rflags(0x346, false), 0x246);
        assert_eq!(guest_view_of_rflags(0x246, true), 0x346);
        assert_eq!(guest_view_of_rflags(0x302, true), 0x302);
    }

    #[test]
    fn entry_needs_bs_with_tf_and_blocking_or_hlt() {
        let tf = RFLAGS_TF | 2;
        assert_eq!(pending_debug_for_entry(0, tf, 0, 0), 0);
        assert_eq!(pending_debug_for_entry(0, tf, 1, 0), DR6_BS); // STI
        assert_eq!(pending_debug_for_entry(0, tf, 2, 0), DR6_BS); // MOV SS
        assert_eq!(pending_debug_for_entry(0, tf, 0, ACTIVITY_HLT), DR6_BS);
        assert_eq!(pending_debug_for_entry(0b1, tf, 1, 0), DR6_BS | 0b1); // other bits kept
                                                                          // Without TF nothing is required; blocking by SMI/NMI (bits 2, 3) does not count.
        assert_eq!(pending_debug_for_entry(0, 2, 3, ACTIVITY_HLT), 0);
        assert_eq!(pending_debug_for_entry(0, tf, 0b1100, 0), 0);
    }

    #[test]
    fn repeats_are_same_rip_non_emulated_non_first_steps() {
        assert!(is_repeat(0x7cf7, 0x7cf7, false, 5));
        assert!(!is_repeat(0x7cf7, 0x7cf7, true, 5));
        assert!(!is_repeat(0x7cf7, 0x7cf7, false, 0));
        assert!(!is_repeat(0x7cf9, 0x7cf7, false, 5));
    }
}
