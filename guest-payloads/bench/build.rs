//! Links the bench programs with guest-rt's shared linker script (an ET_EXEC image at
//! guest-physical 0x100000). guest-rt's build script publishes the script's
//! path, which cargo hands to us as `DEP_GUEST_RT_LINK_SCRIPT` because
//! guest-rt declares `links = "guest_rt"`.

use std::env;

fn main() {
    let script = env::var("DEP_GUEST_RT_LINK_SCRIPT")
        .expect("guest-rt publishes DEP_GUEST_RT_LINK_SCRIPT (it must be a direct dependency)");
    println!("cargo::rerun-if-env-changed=DEP_GUEST_RT_LINK_SCRIPT");
    println!("cargo::rerun-if-changed={script}");
    println!("cargo::rustc-link-arg-bins=-T{script}");
}
