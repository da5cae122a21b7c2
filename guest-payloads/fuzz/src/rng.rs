//! SplitMix64: the pseudo-random generator behind every decision of the fuzz
//! run, so that a run is reproduced exactly by its seed.
//!
//! SplitMix64 (Steele, Lea and Flood, "Fast Splittable Pseudorandom Number
//! Generators", OOPSLA 2014) adds a fixed odd constant (the golden-ratio
//! increment 0x9E3779B97F4A7C15) to a 64-bit state and scrambles the sum with
//! two xor-shift-multiply rounds. It passes the usual statistical test
//! batteries, needs one word of state, and any seed (zero too) is fine —
//! plenty for choosing operations, far from cryptographic.

/// The generator's state: one counter.
#[derive(Debug, Clone)]
pub struct SplitMix64 {
    state: u64,
}

/// The state's increment per output: 2^64 divided by the golden ratio, made odd.
const GOLDEN_GAMMA: u64 = 0x9E37_79B9_7F4A_7C15;

/// The first three outputs from seed 0, for [`SplitMix64::self_test`].
const REFERENCE_FROM_ZERO: [u64; 3] = [0xE220_A839_7B1D_CDAF, 0x6E78_9E6A_A1B9_65F4, 0x06C4_5D18_8009_454F];

impl SplitMix64 {
    /// A generator starting from `seed`.
    pub const fn new(seed: u64) -> Self {
        Self { state: seed }
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(GOLDEN_GAMMA);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A number in `[0, bound)` (`bound` > 0), by the multiply-shift
    /// reduction (Lemire): the high half of a 64×64-bit product. Its bias is
    /// below 2^-32 for the small bounds used here.
    pub fn below(&mut self, bound: u64) -> u64 {
        ((u128::from(self.next_u64()) * u128::from(bound)) >> 64) as u64
    }

    /// One element of `choices` (not empty).
    pub fn pick<T: Copy>(&mut self, choices: &[T]) -> T {
        choices[self.below(choices.len() as u64) as usize]
    }

    /// Whether the generator reproduces SplitMix64's published outputs
    /// (checked once at start: a broken generator would make seeds meaningless).
    pub fn self_test() -> bool {
        let mut generator = Self::new(0);
        REFERENCE_FROM_ZERO.iter().all(|&expected| generator.next_u64() == expected)
    }
}
