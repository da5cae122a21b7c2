//! `bench_idle`: a guest that exits with status 0 at once. The benchmark
//! starts as many as one boot holds, of 2 MiB, 64 MiB and 1 GiB of RAM, and
//! reads what each cost the hypervisor from the kernel's creation lines.
#![no_std]
#![no_main]
#![deny(unsafe_op_in_unsafe_fn)]

guest_rt::entry!(main);

fn main() -> ! {
    guest_rt::exit(0)
}
