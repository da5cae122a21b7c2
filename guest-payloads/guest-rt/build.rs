//! Publishes the path of the payloads' shared linker script, `link.ld`.
//!
//! A library's `cargo::rustc-link-arg` reaches only its own targets, never the
//! binaries that depend on it, so guest-rt cannot pass `-T link.ld` itself.
//! Instead, because the package declares `links = "guest_rt"`, every metadata
//! key printed here is handed to the build script of each package that
//! depends on guest-rt directly, as `DEP_GUEST_RT_<KEY>`. A payload's
//! build.rs reads `DEP_GUEST_RT_LINK_SCRIPT` and passes `-T<path>` to its
//! binaries, without knowing where guest-rt lives.

use std::env;
use std::path::PathBuf;

fn main() {
    let dir = PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR"));
    let script = dir.join("link.ld");
    println!("cargo::rerun-if-changed={}", script.display());
    println!("cargo::metadata=link_script={}", script.display());
}
