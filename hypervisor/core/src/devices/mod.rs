//! Device models: each a state machine with port (or MMIO) reads and writes,
//! independent of VMX, unit-tested on the host.
pub mod uart16550;
