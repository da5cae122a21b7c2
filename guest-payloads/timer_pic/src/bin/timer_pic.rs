//! `timer_pic`: the PIT at ~100 Hz (reload 11932), 100 ticks timed (see the library).
#![no_std]
#![no_main]

guest_rt::entry!(main);

fn main() -> ! {
    timer_pic::run(11_932, 100)
}
