//! Single-stepping (`cargo run -- --step GUEST`): the guest runs one
//! instruction at a time, and after each one the hypervisor prints where the
//! guest is now, the bytes there, and the registers the instruction changed:
//!
//! ```text
//! [hv STEP ] realmode16 #56 RIP 0000:7c37 [0f 22 c0 ...] RAX 0x30->0x31
//! [hv STEP ] realmode16 #57 RIP 0000:7c3b [66 ea 43 7c 00 00 08 00 ...] CR0 0x30->0x31
//! ```
//!
//! (illustrative: an `or al, 1` then the `mov cr0, eax` that sets CR0.PE; see
//! docs/single-step.md for how to read a line).
//!
//! It uses the "monitor trap flag" primary processor-based VM-execution
//! control (bit 27; SDM Vol. 3C, 26.5.2 "Monitor Trap Flag"): with it set,
//! the CPU makes a VM exit with basic reason 37 ("Monitor trap flag") at the
//! instruction boundary after each guest instruction completes. Unlike
//! RFLAGS.TF it is invisible to the guest: no #DB, no flag the guest can read
//! or clear.
//!
//! What a step line shows, and what it does not:
//!
//! - `RIP` is where the guest is *after* the instruction, i.e. the next
//!   instruction's address, as `CS:IP` outside 64-bit mode (hex) and as a
//!   linear address in 64-bit mode. The bytes are the 15 bytes there (the
//!   longest instruction), read through the guest's paging like `vm::trace`.
//! - The changes compare the registers with the previous step (the first step
//!   with the state the guest started with): the general registers the exit
//!   stub saved, and RSP, RFLAGS, CR0, CR3, CR4 and EFER from the VMCS.
//! - An instruction the hypervisor emulates (OUT, CPUID, WRMSR, ...) exits
//!   for its own reason, and the VM entry after the emulation does not
//!   produce an MTF exit of its own (26.5.2 lists the cases where one is
//!   pending right after VM entry: an injected event or an injected pending
//!   MTF exit): what the emulation changed appears in the line of the next
//!   instruction the guest executes itself. Each iteration of a REP string
//!   instruction may count as one step.
//!
//! Every other exit is handled as usual. Nothing here runs for a guest that is
//! not stepped: the control is set only in its VMCS, so no other guest ever
//! makes an MTF exit.

use alloc::boxed::Box;
use core::fmt;

use hypervisor_core::controls::PrimaryControls;
use hypervisor_core::start_state::CR0_PE;
use hypervisor_core::vmcs_field::VmcsField;

use crate::vm::guest::{Flow, Guest};
use crate::vm::stats::Action;
use crate::vm::trace::{Bytes, ShowBytes};
use crate::vm::Host;
use crate::vmx::run::GuestRegisters;
use crate::vmx::vcpu::Exit;
use crate::vmx::vmcs::{self, VmxError};

/// The single-step state of a stepped guest.
pub struct Stepper {
    /// Steps so far.
    count: u64,
    /// The registers at the previous step.
    previous: Snapshot,
}

/// Turns the monitor trap flag on in the current VMCS when `--step` selects
/// the guest `id` and the CPU allows the control (its allowed-1 bit in
/// IA32_VMX_(TRUE_)PROCBASED_CTLS, SDM Vol. 3C, A.3.2); otherwise says why and
/// the guest runs normally. Call after the guest state is written: the
/// registers then are the first step's "previous" state.
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
    if host.caps.primary.allowed1 & mtf == 0 {
        crate::warn!(
            "{}: --step: this CPU does not allow the \"monitor trap flag\" control \
             (allowed-1 bit 27 of the primary processor-based controls is 0); running it without single-stepping",
            name
        );
        return Ok(None);
    }
    let primary = vmcs::read(VmcsField::PrimaryProcessorControls)?;
    vmcs::write(VmcsField::PrimaryProcessorControls, primary | u64::from(mtf))?;
    crate::info!("{}: single-stepping with the monitor trap flag: one [hv STEP ] line per instruction", name);
    Ok(Some(Box::new(Stepper { count: 0, previous: Snapshot::take(registers)? })))
}

/// Handles an MTF exit (basic reason 37): prints the step line and resumes.
/// The CPU has already completed the instruction and RIP points past it, so
/// there is nothing to emulate or advance.
#[cold]
#[inline(never)]
pub fn handle(guest: &mut Guest, exit: &Exit) -> Result<Flow, VmxError> {
    let now = Snapshot::take(&guest.vcpu.registers)?;
    let bytes = Bytes::fetch(guest, exit);
    let location = Location::read(exit.rip)?;
    let Some(stepper) = guest.step.as_mut() else {
        // The control is only set with a stepper: cannot happen, but harmless.
        return Ok(Flow::Continue(Action::Resumed));
    };
    stepper.count += 1;
    let count = stepper.count;
    let previous = core::mem::replace(&mut stepper.previous, now);
    crate::println!(
        "[hv STEP ] {} #{} RIP {} {}{}",
        guest.name(),
        count,
        location,
        ShowBytes(&bytes),
        Changes { previous: &previous, now: &now }
    );
    Ok(Flow::Continue(Action::Resumed))
}

/// After a stepped guest's run: how many steps it made. None at all means the
/// CPU accepted the control but never made an MTF exit: Bochs 2.7, for one,
/// allows the control yet implements only the injected "pending MTF" event, not
/// the per-instruction exits (added to Bochs after 2.7, in 2022).
#[cold]
#[inline(never)]
pub fn report(guest: &Guest) {
    let Some(stepper) = guest.step.as_ref() else {
        return;
    };
    if stepper.count == 0 {
        crate::warn!(
            "{}: --step: no monitor-trap-flag VM exit happened although the control was set: this CPU \
             (or emulator, e.g. Bochs 2.7) does not deliver MTF exits, so nothing was single-stepped",
            guest.name()
        );
    } else {
        crate::info!("{}: single-stepped {} instructions", guest.name(), stepper.count);
    }
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

impl Snapshot {
    fn take(gprs: &GuestRegisters) -> Result<Snapshot, VmxError> {
        let mut vmcs = [0; 6];
        for (value, (_, field)) in vmcs.iter_mut().zip(VMCS_REGISTERS) {
            *value = vmcs::read(field)?;
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
