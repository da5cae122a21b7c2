//! Guest-to-guest switches: the measuring guest and its partner (`bench_yield`)
//! hand the CPU to each other with the `yield` hypercall.
//!
//! Both run [`YIELDS`] yields as soon as they start. Each yield ends the
//! caller's time slice; the scheduler gives the CPU to the next runnable
//! guest (the other one, once the idle guests of the run have ended), which
//! makes that guest's VMCS current (VMPTRLD) and swaps the CPU state the VMCS
//! does not hold, then enters it; that guest yields at once, and the switch
//! happens the other way. So one yield, timed with the TSC around it in the
//! measuring guest, is a round trip of two yield exits and two guest switches
//! (plus the partner's few loop instructions).

use guest_rt::hypercall;
use guest_rt::timing::read_tsc;

/// Yields each guest times.
pub const YIELDS: usize = 108;

/// The first yields, which meet guests that are still starting or ending,
/// are not counted (by `bench`; its partner counts nothing).
#[allow(dead_code, reason = "bench_yield includes this module too")]
pub const WARMUP_YIELDS: usize = 8;

/// Yields [`YIELDS`] times; returns the TSC ticks each yield took to return.
pub fn yield_round_trips() -> [u64; YIELDS] {
    let mut ticks = [0; YIELDS];
    for slot in &mut ticks {
        let start = read_tsc();
        let _ = hypercall::yield_now();
        *slot = read_tsc().wrapping_sub(start);
    }
    ticks
}
