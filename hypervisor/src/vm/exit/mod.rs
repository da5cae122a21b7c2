//! Exit handlers, one file per family. Each takes the guest and the decoded
//! exit and returns a [`Flow`](crate::vm::guest::Flow): resume, exit, or crash.
pub mod cpuid;
pub mod cr;
pub mod ept;
pub mod hlt;
pub mod io;
pub mod mmio;
pub mod msr;
pub mod other;
pub mod timer;
pub mod vmcall;
pub mod xsetbv;

/// #UD's vector (SDM Vol. 3A, Table 6-1 "Protected-Mode Exceptions and
/// Interrupts"), injected by several handlers.
pub(crate) const INVALID_OPCODE: u8 = 6;
/// #GP's vector (same table).
pub(crate) const GENERAL_PROTECTION: u8 = 13;
