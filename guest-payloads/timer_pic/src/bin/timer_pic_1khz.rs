//! `timer_pic_1khz`: the PIT at ~1 kHz (reload 1193), 1000 ticks timed (see the library).
#![no_std]
#![no_main]

guest_rt::entry!(main);

fn main() -> ! {
    timer_pic::run(1_193, 1_000)
}
