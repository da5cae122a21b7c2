//! Links `protected32` with its own linker script, `link.ld`: a flat image at
//! guest-physical 0x100000 whose first byte is the entry point. guest-rt's
//! shared script is not used: it is laid out for 64-bit payloads built on
//! guest-rt's `_start`.

use std::env;
use std::path::PathBuf;

fn main() {
    let dir = PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR"));
    let script = dir.join("link.ld");
    println!("cargo::rerun-if-changed={}", script.display());
    println!("cargo::rustc-link-arg-bins=-T{}", script.display());
}
