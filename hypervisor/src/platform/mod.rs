//! This machine: everything the hypervisor needs from the bare hardware before
//! VT-x enters the picture — a console, descriptor tables, exception reports,
//! memory, and a way to power off.
pub mod console;
pub mod gdt;
pub mod idt;
pub mod memory;
pub mod mitigations;
pub mod paging;
pub mod pic;
pub mod power;
pub mod rtc;
pub mod tsc;
