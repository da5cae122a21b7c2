//! Single-stepping (`cargo run -- --step GUEST`): the guest runs one
//! instruction at a time, and after each one the hypervisor prints where the
//! guest is now, the bytes there, and the registers the instruction changed:
//!
//! ```text
//! [hv STEP ] realmode16 #682 RIP 0000:7c45 [0f 22 c0 66 ea b2 7c 00 ...] RFLAGS 0x2->0x6 RAX 0x60000010->0x60000011
//! [hv STEP ] realmode16 #683 RIP 0000:7c48 [66 ea b2 7c 00 00 08 00 ...] CR0 0x60000030->0x60000031
//! ```
//!
//! (from Bochs: an `or eax, 1` then the `mov cr0, eax` that sets CR0.PE; see
//! docs/single-step.md for how to read a line).
//!
//! # Two ways to stop after every instruction
//!
//! 1. **The monitor trap flag** (MTF), bit 27 of the primary processor-based
//!    VM-execution controls (SDM Vol. 3C, 26.5.2 "Monitor Trap Flag"): with
//!    it set, the CPU makes a VM exit with basic reason 37 at the instruction
//!    boundary after each guest instruction. The guest cannot see it.
//! 2. **RFLAGS.TF and the exception bitmap**: with TF set, the CPU raises a
//!    single-step debug exception (#DB, a trap) after each instruction (SDM
//!    Vol. 3B, 18.3.1.4 "Single-Step Exception Condition"); with bit 1 of the
//!    exception bitmap set, that #DB becomes a VM exit instead of reaching the
//!    guest (SDM Vol. 3C, 25.6.3 "Exception Bitmap"), with DR6-style bits in
//!    the exit qualification, BS (bit 14) for a single step (SDM Vol. 3C,
//!    28.2.1 "Basic VM-Exit Information", Table 28-1). The flag lives in the
//!    guest's own RFLAGS, so hiding it takes work (below).
//!
//! Some CPUs accept the MTF control but never make the per-instruction exit:
//! Bochs 2.7 (Debian's) implements only the injected "pending MTF" event. So
//! a stepped guest starts *probing*: both mechanisms are armed for the first
//! instruction. Whichever exit comes first decides: an MTF exit keeps MTF and
//! disarms TF (clearing the single-step #DB the CPU saved as pending, SDM Vol.
//! 3C, 28.3.4 "Saving Non-Register State"), a #DB exit with BS proves MTF
//! exits do not come and keeps TF. A CPU without the MTF control goes straight
//! to TF. Nothing is lost by probing: the first instruction gets its line
//! either way.
//!
//! # Keeping TF away from the guest (TF mode)
//!
//! - The #DB is never injected for our own steps. The guest's own TF is
//!   tracked: POPF and IRET are the instructions that load it, so after a step
//!   over one of them the TF it left in RFLAGS is the guest's. When the guest
//!   had TF set itself, its single-step #DB is reflected to it (DR6.BS set,
//!   #DB injected), exactly once per instruction as on bare metal. A #DB for
//!   a hardware breakpoint (DR6.B0–B3, BD) or from ICEBP is always reflected.
//! - A PUSHF the guest executes while it has not set TF itself pushes TF = 1:
//!   the step after it clears bit 8 of the pushed image on the guest's stack.
//! - The step lines show the guest's view of RFLAGS (TF as the guest set it).
//! - Limits: an interrupt or exception the guest takes pushes RFLAGS with
//!   TF = 1 in its frame (and clears TF, so the handler itself runs unstepped
//!   until its IRET restores TF). A handler that edits the pushed RFLAGS to
//!   set TF is not noticed. `PUSHF` through an exiting instruction, SYSCALL's
//!   R11, or reading RFLAGS via a task switch see TF = 1. VM entry requires
//!   a pending BS in the "pending debug exceptions" field when TF = 1 and STI
//!   or MOV-SS blocking is in effect (SDM Vol. 3C, 27.3.1.5 "Checks on Guest
//!   Non-Register State"), which [`rearm`] sets.
//!
//! # Instructions that exit, interrupts
//!
//! An instruction that makes a VM exit of its own (OUT, CPUID, WRMSR, ...)
//! does not complete in the guest, so neither an MTF exit nor a #DB follows
//! it: its exit replaces them. When the handler moved RIP past it, that exit
//! is counted as a step and printed with `(emulated: <exit reason>)`.
//! Events the hypervisor injects are delivered on the next VM entry; their
//! handler's first instruction shows up in the next line (MTF: an MTF exit
//! follows the delivery, 26.5.2; TF: TF is cleared by the delivery, so the
//! handler runs unstepped until its IRET, as above).
//!
//! # Keeping the output short
//!
//! A step that ends at the RIP of the step before it (an iteration of a REP
//! string instruction; a `jmp $`) is counted but not printed: the next line
//! shows their summed changes and says `(+N repeats)`. In Bochs every console
//! byte costs emulated time, so line numbers count printed lines, and the
//! bytes shown are at most [`SHOWN_BYTES`].
//!
//! Nothing here runs for a guest that is not stepped: the controls, bitmap
//! bit and flag are set only in its VMCS, and `Guest::run_slice` sends only a
//! stepped (or traced) guest's exits through [`handle_exit`].

use alloc::boxed::Box;
use core::fmt;

use hypervisor_core::controls::PrimaryControls;
use hypervisor_core::exit::{ExitReason, InterruptionInfo, InterruptionType};
use hypervisor_core::guest_walk::{translate, AccessKind};
use hypervisor_core::single_step::{
    decide_debug_exit, guest_view_of_rflags, is_repeat, pending_debug_for_entry, FlagsInstruction, StepExit,
    StepMethod as Method, DR6_BD, DR6_BREAKPOINTS, DR6_BS, RFLAGS_TF,
};
use hypervisor_core::start_state::CR0_PE;
use hypervisor_core::vmcs_field::VmcsField;

use crate::vm::guest::{Flow, Guest};
use crate::vm::stats::Action;
use crate::vm::trace::{self, Bytes};
use crate::vm::Host;
use crate::vmx::run::GuestRegisters;
use crate::vmx::vcpu::Exit;
use crate::vmx::vmcs::{self, VmxError};

/// Exception-bitmap bit for vector 1, #DB (SDM Vol. 3C, 25.6.3).
const DEBUG_EXCEPTION_BIT: u64 = 1 << 1;
/// The vector of #DB.
const DEBUG_VECTOR: u8 = 1;
/// How many instruction bytes a step line shows: enough for the
/// instructions of the demo payloads, short enough to keep Bochs quick.
pub const SHOWN_BYTES: usize = 8;

/// The single-step state of a stepped guest.
pub struct Stepper {
    /// How it is stepped.
    method: Method,
    /// Instructions stepped (printed or not).
    steps: u64,
    /// Step lines printed: the `#n` of the last line.
    lines: u64,
    /// Steps since the last line that ended at that line's RIP (not printed).
    repeats: u64,
    /// The RIP of the last step.
    last_rip: u64,
    /// The registers at the last printed line (the guest's view of RFLAGS).
    previous: Snapshot,
    /// What the instruction at the RIP of the last step is, as far as TF is concerned.
    next_instruction: FlagsInstruction,
    /// RFLAGS.TF as the guest itself last set it (TF mode).
    guest_tf: bool,
}

/// Arms single-stepping in the current VMCS when `--step` selects the guest
/// `id`: the MTF control (if the CPU allows it: its allowed-1 bit in
/// IA32_VMX_(TRUE_)PROCBASED_CTLS, SDM Vol. 3C, A.3.2) together with TF and
/// the #DB exception-bitmap bit, to probe which of them makes exits. Call
/// after the guest state is written: the registers then are the first step's
/// "previous" state.
#[cold]
#[inline(never)]
pub fn enable(
    id: usize,
    name: &str,
    registers: &GuestRegisters,
    host: &Host,
) -> Result<Option<Box<Stepper>>, VmxError> {
    if !host.step.includes(id) {
        return Ok(None);
    }
    let mtf = PrimaryControls::MONITOR_TRAP_FLAG.bits();
    let method = if host.caps.primary.allowed1 & mtf == 0 {
        crate::info!(
            "{}: --step: this CPU does not allow the \"monitor trap flag\" control (allowed-1 bit 27 of the \
             primary processor-based controls is 0): single-stepping with RFLAGS.TF and #DB exits",
            name
        );
        Method::TrapFlag
    } else {
        set_mtf(true)?;
        crate::info!(
            "{}: single-stepping: probing the monitor trap flag, RFLAGS.TF as the fallback; one [hv STEP ] line \
             per instruction",
            name
        );
        Method::Probing
    };
    arm_trap_flag()?;
    let rip = vmcs::read(VmcsField::GuestRip)?;
    let stepper = Stepper {
        method,
        steps: 0,
        lines: 0,
        repeats: 0,
        last_rip: rip,
        previous: Snapshot::take(registers, Some(false))?,
        next_instruction: FlagsInstruction::Other,
        guest_tf: false,
    };
    Ok(Some(Box::new(stepper)))
}

/// Handles every exit of a stepped guest (the caller, `Guest::run_loop`, sends
/// them here instead of to `trace::handle_traced`): runs the usual handler
/// (traced if the guest is traced too), counts an instruction the hypervisor
/// emulated as a step, and re-arms the stepping for the next VM entry.
#[cold]
#[inline(never)]
pub fn handle_exit(guest: &mut Guest, exit: &Exit, slot: usize, host: &Host) -> Result<Flow, VmxError> {
    let flow =
        if guest.traced { trace::handle_traced(guest, exit, slot, host)? } else { guest.handle(exit, slot, host)? };
    if !matches!(flow, Flow::Continue(_) | Flow::Yield(_) | Flow::Halt(_)) || guest.step.is_none() {
        return Ok(flow);
    }
    // MTF and #DB exits leave RIP alone; an instruction exit whose handler
    // moved RIP past the instruction completed it: its exit was its step.
    let stepping_exit = matches!(
        ExitReason::from_basic(exit.basic_reason),
        Some(ExitReason::MonitorTrapFlag | ExitReason::ExceptionOrNmi)
    );
    if !stepping_exit && !exit.entry_failed() && vmcs::read(VmcsField::GuestRip)? != exit.rip {
        let reason = ExitReason::from_basic(exit.basic_reason).map_or("unknown exit", ExitReason::name);
        record_step(guest, exit, Some(reason))?;
        forget_pending_single_step(guest)?;
    }
    rearm(guest)?;
    Ok(flow)
}

/// Handles an MTF exit (basic reason 37): one step. The CPU has already
/// completed the instruction and RIP points past it, so there is nothing to
/// emulate or advance. The first one ends the probe: TF is disarmed.
#[cold]
#[inline(never)]
pub fn handle(guest: &mut Guest, exit: &Exit) -> Result<Flow, VmxError> {
    let Some(stepper) = guest.step.as_mut() else {
        // The control is only set with a stepper: cannot happen, but harmless.
        return Ok(Flow::Continue(Action::Resumed));
    };
    let before = stepper.method;
    stepper.method = before.after_step(StepExit::MonitorTrap);
    if before == Method::Probing {
        disarm_trap_flag(stepper.guest_tf)?;
    }
    record_step(guest, exit, None)?;
    Ok(Flow::Continue(Action::Resumed))
}

/// Handles a #DB exit of a stepped guest (`Guest::handle` sends vector 1 here
/// while `--step` is on; `qualification` holds the DR6-style bits, SDM Vol.
/// 3C, 28.2.1, Table 28-1). A single step (BS) is printed and not delivered,
/// unless the guest had set TF itself; breakpoint hits, BD and ICEBP are
/// reflected to the guest.
#[cold]
#[inline(never)]
pub fn handle_debug(
    guest: &mut Guest,
    exit: &Exit,
    info: InterruptionInfo,
    qualification: u64,
) -> Result<Flow, VmxError> {
    let icebp = info.interruption_type() == InterruptionType::PrivilegedSoftwareException;
    let Some(stepper) = guest.step.as_mut() else {
        return reflect(guest, info, qualification);
    };
    let tf_now = vmcs::read(VmcsField::GuestRflags)? & RFLAGS_TF != 0;
    let decision = decide_debug_exit(qualification, icebp, stepper.guest_tf, stepper.next_instruction, tf_now);
    stepper.guest_tf = decision.guest_tf;
    if decision.step {
        let before = stepper.method;
        stepper.method = before.after_step(StepExit::SingleStepDebug);
        if before == Method::Probing {
            set_mtf(false)?;
            crate::info!(
                "{}: --step: the first instruction ended with a #DB exit, not an MTF exit: this CPU (e.g. Bochs \
                 2.7) does not deliver MTF exits, so single-stepping continues with RFLAGS.TF",
                guest.config.name.as_str()
            );
        }
        if decision.hide_pushed_tf {
            hide_pushed_trap_flag(guest)?;
        }
        record_step(guest, exit, None)?;
    }
    match decision.reflect {
        Some(dr6_bits) => reflect(guest, info, dr6_bits),
        None => Ok(Flow::Continue(Action::Resumed)),
    }
}

/// After a stepped guest's run: how many instructions it stepped, and how.
/// No step at all means neither an MTF exit nor a #DB exit ever came.
#[cold]
#[inline(never)]
pub fn report(guest: &Guest) {
    let Some(stepper) = guest.step.as_ref() else {
        return;
    };
    if stepper.steps == 0 {
        crate::warn!(
            "{}: --step: no monitor-trap-flag VM exit and no single-step #DB exit happened, so nothing was \
             single-stepped",
            guest.name()
        );
    } else {
        crate::info!(
            "{}: single-stepped {} instructions with {} ({} lines)",
            guest.name(),
            stepper.steps,
            stepper.method.describe(),
            stepper.lines
        );
    }
}

/// Counts one step ending at the current guest RIP and prints its line,
/// unless it ended where the previous step did (a repeat, see the module
/// documentation). `emulated` names the exit of an instruction the
/// hypervisor emulated.
fn record_step(guest: &mut Guest, exit: &Exit, emulated: Option<&str>) -> Result<(), VmxError> {
    let rip = vmcs::read(VmcsField::GuestRip)?;
    // The 15 bytes at the new RIP (the MTF reason asks `Bytes` for all of them).
    let at_rip = Exit { raw_reason: ExitReason::MonitorTrapFlag as u32, basic_reason: 37, rip, tsc: exit.tsc };
    let bytes = Bytes::fetch(guest, &at_rip);
    let location = Location::read(rip)?;
    let long_mode = crate::vm::guest_cs_is_64bit()?;
    let registers = guest.vcpu.registers;
    let name = guest.config.name.as_str();
    let Some(stepper) = guest.step.as_mut() else {
        return Ok(());
    };
    stepper.steps = stepper.steps.wrapping_add(1);
    stepper.next_instruction =
        bytes.as_ref().map_or(FlagsInstruction::Other, |bytes| FlagsInstruction::classify(bytes.as_slice(), long_mode));
    if is_repeat(rip, stepper.last_rip, emulated.is_some(), stepper.lines) {
        stepper.repeats = stepper.repeats.wrapping_add(1);
        return Ok(());
    }
    stepper.last_rip = rip;
    let guest_tf = stepper.method.uses_trap_flag().then_some(stepper.guest_tf);
    let now = Snapshot::take(&registers, guest_tf)?;
    stepper.lines = stepper.lines.wrapping_add(1);
    let previous = core::mem::replace(&mut stepper.previous, now);
    let repeats = core::mem::take(&mut stepper.repeats);
    crate::println!(
        "[hv STEP ] {} #{} RIP {} {}{}{}{}",
        name,
        stepper.lines,
        location,
        ShortBytes(&bytes),
        Repeats(repeats),
        Emulated(emulated),
        Changes { previous: &previous, now: &now }
    );
    Ok(())
}

/// Before the next VM entry: the stepping mechanism in force again.
///
/// - MTF: the control bit (code that rewrites the primary controls, such as
///   `vm::interrupts`' interrupt window, may have dropped it).
/// - TF: the flag (POPF or IRET may have cleared it) and, when STI or MOV-SS
///   blocking or the HLT state is in effect, BS in the pending debug
///   exceptions, which VM entry then requires (SDM Vol. 3C, 27.3.1.5).
fn rearm(guest: &mut Guest) -> Result<(), VmxError> {
    let Some(stepper) = guest.step.as_mut() else {
        return Ok(());
    };
    if stepper.method.uses_monitor_trap_flag() {
        set_mtf(true)?;
    }
    if !stepper.method.uses_trap_flag() {
        return Ok(());
    }
    let rflags = vmcs::read(VmcsField::GuestRflags)? | RFLAGS_TF;
    vmcs::write(VmcsField::GuestRflags, rflags)?;
    let pending = vmcs::read(VmcsField::GuestPendingDebugExceptions)?;
    let required = pending_debug_for_entry(
        pending,
        rflags,
        vmcs::read(VmcsField::GuestInterruptibilityState)?,
        vmcs::read(VmcsField::GuestActivityState)?,
    );
    if required != pending {
        vmcs::write(VmcsField::GuestPendingDebugExceptions, required)?;
    }
    Ok(())
}

/// After an emulated instruction counted as a step (TF mode): drops the
/// single-step #DB a CPU may have saved as pending (BS in the "pending debug
/// exceptions" field, SDM Vol. 3C, 28.3.4 "Saving Non-Register State"; Bochs
/// 2.7 does so on instruction exits), which the next VM entry would deliver
/// at once, before any instruction: a second step for the same instruction.
/// When the guest had set TF itself, the trap after the instruction is its
/// own: it gets the #DB, unless the handler injects something else.
fn forget_pending_single_step(guest: &mut Guest) -> Result<(), VmxError> {
    let Some(stepper) = guest.step.as_ref() else {
        return Ok(());
    };
    if !stepper.method.uses_trap_flag() {
        return Ok(());
    }
    let guest_tf = stepper.guest_tf;
    let pending = vmcs::read(VmcsField::GuestPendingDebugExceptions)?;
    if pending & DR6_BS != 0 {
        vmcs::write(VmcsField::GuestPendingDebugExceptions, pending & !DR6_BS)?;
    }
    let injecting = InterruptionInfo(vmcs::read(VmcsField::EntryInterruptionInfo)? as u32).valid();
    if guest_tf && !injecting {
        reflect(guest, InterruptionInfo::hardware_exception(DEBUG_VECTOR), DR6_BS)?;
    }
    Ok(())
}

/// Sets or clears the monitor-trap-flag control in the current VMCS.
fn set_mtf(on: bool) -> Result<(), VmxError> {
    let mtf = u64::from(PrimaryControls::MONITOR_TRAP_FLAG.bits());
    let primary = vmcs::read(VmcsField::PrimaryProcessorControls)?;
    let wanted = if on { primary | mtf } else { primary & !mtf };
    if wanted != primary {
        vmcs::write(VmcsField::PrimaryProcessorControls, wanted)?;
    }
    Ok(())
}

/// TF mode on: #DB exits (exception bitmap bit 1) and RFLAGS.TF.
fn arm_trap_flag() -> Result<(), VmxError> {
    let bitmap = vmcs::read(VmcsField::ExceptionBitmap)?;
    vmcs::write(VmcsField::ExceptionBitmap, bitmap | DEBUG_EXCEPTION_BIT)?;
    let rflags = vmcs::read(VmcsField::GuestRflags)?;
    vmcs::write(VmcsField::GuestRflags, rflags | RFLAGS_TF)
}

/// TF mode off after an MTF exit won the probe: the guest's own TF back, no
/// #DB exits, and no single-step #DB left pending from the probe instruction
/// (the CPU saved it in the pending debug exceptions field, or entry would
/// deliver it to the guest).
fn disarm_trap_flag(guest_tf: bool) -> Result<(), VmxError> {
    let bitmap = vmcs::read(VmcsField::ExceptionBitmap)?;
    vmcs::write(VmcsField::ExceptionBitmap, bitmap & !DEBUG_EXCEPTION_BIT)?;
    let rflags = vmcs::read(VmcsField::GuestRflags)?;
    vmcs::write(VmcsField::GuestRflags, if guest_tf { rflags | RFLAGS_TF } else { rflags & !RFLAGS_TF })?;
    let pending = vmcs::read(VmcsField::GuestPendingDebugExceptions)?;
    vmcs::write(VmcsField::GuestPendingDebugExceptions, pending & !DR6_BS)
}

/// Delivers a #DB to the guest as the CPU would have without the exception
/// bitmap: DR6 gets the condition bits (a #DB that causes a VM exit leaves
/// DR6 unchanged, SDM Vol. 3C, 27.1 "Architectural State Before a VM Exit"),
/// then the event is injected (SDM Vol. 3C, 27.6 "Event Injection"). ICEBP is
/// re-injected as a privileged software exception with its instruction length.
fn reflect(guest: &mut Guest, info: InterruptionInfo, dr6_bits: u64) -> Result<Flow, VmxError> {
    let mut dr6: u64;
    // SAFETY: reading and writing DR6 at CPL 0 has no side effects; while a
    // guest's exits are handled its debug registers are loaded (see
    // `vm::cpu_context`), so this is the guest's DR6, which VMX does not switch.
    unsafe {
        core::arch::asm!("mov {}, dr6", out(reg) dr6, options(nostack, nomem));
        dr6 |= dr6_bits & (DR6_BREAKPOINTS | DR6_BD | DR6_BS);
        core::arch::asm!("mov dr6, {}", in(reg) dr6, options(nostack, nomem));
    }
    if info.interruption_type() == InterruptionType::PrivilegedSoftwareException {
        let length = vmcs::read(VmcsField::ExitInstructionLength)?;
        vmcs::write(VmcsField::EntryInstructionLength, length)?;
        let event = InterruptionInfo::new(DEBUG_VECTOR, InterruptionType::PrivilegedSoftwareException, false);
        guest.vcpu.inject(event, None)?;
    } else {
        guest.vcpu.inject(InterruptionInfo::hardware_exception(DEBUG_VECTOR), None)?;
    }
    Ok(Flow::Continue(Action::Injected(DEBUG_VECTOR)))
}

/// After a PUSHF the guest ran with our TF: clears TF (bit 8 of the pushed
/// image, i.e. bit 0 of its second byte, whatever the operand size) at
/// SS:RSP, so the guest reads back the flags it had. Best effort: a stack
/// the hypervisor cannot translate is left alone.
fn hide_pushed_trap_flag(guest: &mut Guest) -> Result<(), VmxError> {
    let long_mode = crate::vm::guest_cs_is_64bit()?;
    let rsp = vmcs::read(VmcsField::GuestRsp)?;
    // SS access rights bit 14 (D/B): a 32-bit stack; otherwise SP is 16 bits.
    let big_stack = vmcs::read(VmcsField::GuestSsAccessRights)? & (1 << 14) != 0;
    let linear = if long_mode {
        rsp.wrapping_add(1)
    } else {
        let offset = if big_stack { rsp & 0xFFFF_FFFF } else { rsp & 0xFFFF };
        vmcs::read(VmcsField::GuestSsBase)?.wrapping_add(offset).wrapping_add(1) & 0xFFFF_FFFF
    };
    let paging = crate::vm::guest_paging_registers()?;
    let Ok(translation) = translate(&paging, linear, AccessKind::Write, false, |table| guest.read_ram_u64(table))
    else {
        return Ok(());
    };
    let mut byte = [0u8; 1];
    if guest.ram.read(translation.gpa, &mut byte).is_ok() {
        byte[0] &= !((RFLAGS_TF >> 8) as u8);
        let _ = guest.ram.write(translation.gpa, &byte);
    }
    Ok(())
}

/// The registers one step compares.
#[derive(Clone, Copy)]
struct Snapshot {
    gprs: GuestRegisters,
    /// CR0, CR3, CR4, EFER, RFLAGS, RSP from the VMCS, in [`VMCS_REGISTERS`] order.
    vmcs: [u64; 6],
}

/// The registers read from the VMCS, with their names.
const VMCS_REGISTERS: [(&str, VmcsField); 6] = [
    ("CR0", VmcsField::GuestCr0),
    ("CR3", VmcsField::GuestCr3),
    ("CR4", VmcsField::GuestCr4),
    ("EFER", VmcsField::GuestIa32Efer),
    ("RFLAGS", VmcsField::GuestRflags),
    ("RSP", VmcsField::GuestRsp),
];

/// The index of RFLAGS in [`VMCS_REGISTERS`].
const RFLAGS_INDEX: usize = 4;

impl Snapshot {
    /// Reads the registers; `guest_tf` (TF mode) replaces RFLAGS.TF with the
    /// guest's own TF, so the lines show the flags the guest sees.
    fn take(gprs: &GuestRegisters, guest_tf: Option<bool>) -> Result<Snapshot, VmxError> {
        let mut vmcs = [0; 6];
        for (value, (_, field)) in vmcs.iter_mut().zip(VMCS_REGISTERS) {
            *value = vmcs::read(field)?;
        }
        if let Some(tf) = guest_tf {
            vmcs[RFLAGS_INDEX] = guest_view_of_rflags(vmcs[RFLAGS_INDEX], tf);
        }
        Ok(Snapshot { gprs: *gprs, vmcs })
    }

    /// The general registers with their names, in the SDM's order.
    fn gprs(&self) -> [(&'static str, u64); 15] {
        let r = &self.gprs;
        [
            ("RAX", r.rax),
            ("RCX", r.rcx),
            ("RDX", r.rdx),
            ("RBX", r.rbx),
            ("RBP", r.rbp),
            ("RSI", r.rsi),
            ("RDI", r.rdi),
            ("R8", r.r8),
            ("R9", r.r9),
            ("R10", r.r10),
            ("R11", r.r11),
            ("R12", r.r12),
            ("R13", r.r13),
            ("R14", r.r14),
            ("R15", r.r15),
        ]
    }
}

/// ` CR0 0x10->0x11 RAX 0x0->0x1`: every register that differs.
struct Changes<'a> {
    previous: &'a Snapshot,
    now: &'a Snapshot,
}

impl fmt::Display for Changes<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for ((name, _), (before, after)) in VMCS_REGISTERS.iter().zip(self.previous.vmcs.iter().zip(&self.now.vmcs)) {
            if before != after {
                write!(f, " {name} {before:#x}->{after:#x}")?;
            }
        }
        for ((name, before), (_, after)) in self.previous.gprs().into_iter().zip(self.now.gprs()) {
            if before != after {
                write!(f, " {name} {before:#x}->{after:#x}")?;
            }
        }
        Ok(())
    }
}

/// `[0f 22 c0 66 ea 43 7c 00 ...]`: the first [`SHOWN_BYTES`] bytes at RIP,
/// `[?]` when they cannot be read.
struct ShortBytes<'a>(&'a Option<Bytes>);

impl fmt::Display for ShortBytes<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let Some(bytes) = self.0 else {
            return f.write_str("[?]");
        };
        let bytes = bytes.as_slice();
        f.write_str("[")?;
        for (index, byte) in bytes.iter().take(SHOWN_BYTES).enumerate() {
            if index > 0 {
                f.write_str(" ")?;
            }
            write!(f, "{byte:02x}")?;
        }
        if bytes.len() > SHOWN_BYTES {
            f.write_str(" ...")?;
        }
        f.write_str("]")
    }
}

/// ` (+N repeats)` when steps at one RIP were folded into this line.
struct Repeats(u64);

impl fmt::Display for Repeats {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            0 => Ok(()),
            n => write!(f, " (+{n} repeats)"),
        }
    }
}

/// ` (emulated: I/O instruction)` for a step that was a VM exit.
struct Emulated<'a>(Option<&'a str>);

impl fmt::Display for Emulated<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            None => Ok(()),
            Some(reason) => write!(f, " (emulated: {reason})"),
        }
    }
}

/// Where the guest is: `CS:IP` (hex) outside 64-bit mode, the RIP in it.
enum Location {
    Segmented { cs: u64, ip: u64 },
    Linear(u64),
}

impl Location {
    fn read(rip: u64) -> Result<Location, VmxError> {
        let long_mode = crate::vm::guest_cs_is_64bit()?;
        let protected = vmcs::read(VmcsField::GuestCr0)? & CR0_PE != 0;
        Ok(if long_mode && protected {
            Location::Linear(rip)
        } else {
            Location::Segmented { cs: vmcs::read(VmcsField::GuestCsSelector)?, ip: rip }
        })
    }
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Location::Segmented { cs, ip } => write!(f, "{cs:04x}:{ip:04x}"),
            Location::Linear(rip) => write!(f, "{rip:#x}"),
        }
    }
}
