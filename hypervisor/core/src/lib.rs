//! The plain-Rust half of the hypervisor.
//!
//! Everything here runs the same on the host and in the kernel: it decodes the
//! hardware's answers (capability MSRs, exit reasons and qualifications), builds
//! the data structures the hardware reads (EPT tables, control words) and parses
//! the bytes users and guests hand us (the boot blob, ELF images, hypercall
//! arguments). `cargo test` at the workspace root exercises all of it on the host.
//!
//! It is `no_std` and has no dependencies, because both the std runner and the
//! `no_std` kernel link it.
#![no_std]
#![deny(unsafe_op_in_unsafe_fn)]
#![warn(missing_docs)]

#[cfg(test)]
extern crate std;

pub mod blob;
pub mod caps;
pub mod caps_explorer;
pub mod config;
pub mod control_registers;
pub mod controls;
pub mod cpuid;
pub mod devices;
pub mod elf;
pub mod entry_check;
pub mod ept;
pub mod exit;
pub mod guest_memory;
pub mod guest_paging;
pub mod guest_walk;
pub mod hypercall;
pub mod injection;
pub mod instruction_error;
pub mod mmio_decode;
pub mod msr;
pub mod samples;
pub mod single_step;
pub mod speculation;
pub mod start_state;
pub mod vmcs_field;
pub mod workload;
pub mod wx;
pub mod xcr;
