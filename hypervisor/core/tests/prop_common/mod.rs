//! Shared set-up of the property tests (`tests/prop_*.rs`).
//!
//! Every property runs from a **fixed seed**, so a failure seen once is seen
//! again on every run and on every machine, and no `proptest-regressions`
//! files are needed. Two environment variables widen a run by hand:
//!
//! * `PROPTEST_CASES=N` runs `N` cases per property instead of the tuned
//!   default (the defaults keep the whole suite at a few seconds on 2 cores);
//! * `PROPTEST_RNG_SEED=S` explores from another seed (proptest prints the
//!   seed with a failure, so `S` reproduces it).

use proptest::test_runner::{Config, RngSeed};

/// The seed every property starts from unless `PROPTEST_RNG_SEED` is set.
const FIXED_SEED: u64 = 0x4856_5052_4F50_0001;

/// The configuration for a property: `cases` cases (unless `PROPTEST_CASES`
/// says otherwise), a fixed seed, no failure files.
pub fn config(cases: u32) -> Config {
    let base = Config::default();
    let cases = if std::env::var_os("PROPTEST_CASES").is_some() { base.cases } else { cases };
    let rng_seed =
        if std::env::var_os("PROPTEST_RNG_SEED").is_some() { base.rng_seed } else { RngSeed::Fixed(FIXED_SEED) };
    Config { cases, rng_seed, failure_persistence: None, ..base }
}
