//! `bench_yield`: the measuring `bench` guest's partner for guest switches.
//! It yields as many times as `bench` does (see `switch.rs`), then exits
//! with status 0. It prints nothing: its output would cost the other guest's
//! measurements wall time (each byte is a UART exit).
#![no_std]
#![no_main]
#![deny(unsafe_op_in_unsafe_fn)]

#[path = "../switch.rs"]
mod switch;

guest_rt::entry!(main);

fn main() -> ! {
    let _ = switch::yield_round_trips();
    guest_rt::exit(0)
}
