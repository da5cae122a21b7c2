//! Instructions with a fixed answer: INVD and WBINVD, and the VMX
//! instructions.
//!
//! - INVD exits unconditionally (SDM Vol. 3C, 26.1.2 "Instructions That
//!   Cause VM Exits Unconditionally"). Discarding the caches without writing
//!   them back is harmless to skip for a guest whose memory is write-back, so
//!   the hypervisor emulates it as a no-op: it advances RIP past it.
//! - WBINVD exits only with the secondary control "WBINVD exiting" (SDM Vol.
//!   3C, 25.6.2 "Processor-Based VM-Execution Controls"), which this
//!   hypervisor leaves off: the CPU performs it. Had it exited, the answer
//!   would be the same (a no-op). Either way it must be allowed.
//! - VMXOFF, VMCLEAR and VMPTRLD exit unconditionally in VMX non-root
//!   operation (SDM Vol. 3C, 26.1.2). The hypervisor offers no nested VMX
//!   (CPUID hides VMX, CR4.VMXE cannot be set) and injects #UD, which leaves
//!   RIP at the instruction.

use guest_rt::checks::{expect_exception, Attempt, Checks};
use guest_rt::idt::INVALID_OPCODE;
use guest_rt::privileged::{attempt_instruction, Instruction};

/// Runs the checks. Needs the IDT installed.
pub fn run(checks: &mut Checks) {
    for instruction in [Instruction::Invd, Instruction::Wbinvd] {
        expect_allowed(checks, instruction.mnemonic(), attempt_instruction(instruction));
    }
    for instruction in [Instruction::Vmxoff, Instruction::Vmclear, Instruction::Vmptrld] {
        expect_exception(checks, instruction.mnemonic(), attempt_instruction(instruction), INVALID_OPCODE, None);
    }
}

/// The instruction must run to completion: the code after it ran, so RIP
/// moved past it (an exit that forgot to advance RIP would run it forever).
fn expect_allowed(checks: &mut Checks, what: &str, attempt: Attempt<u64>) {
    match attempt.result {
        Ok(_) => checks.pass(what, "allowed, execution continues after it"),
        Err(fault) => checks.fail(what, format_args!("{fault} at rip {:#x} (expected allowed)", fault.rip)),
    }
}
