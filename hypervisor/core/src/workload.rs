//! The benchmark workload: a CPU- and memory-bound job that the bench guest
//! runs inside a VM and the hypervisor runs natively in VMX root operation,
//! so the two times can be compared (`cargo run -- --bench`).
//!
//! The job has two passes over a buffer of [`WORKLOAD_BYTES`]:
//!
//! 1. **Fill**: every 64-bit word gets the next value of a xorshift64
//!    generator (Marsaglia, "Xorshift RNGs", 2003: shifts 13, 7, 17), a store
//!    per word.
//! 2. **Hash**: FNV-1a 64 (the FNV reference's offset basis and prime)
//!    over the words, one multiply per word, a load per word.
//!
//! The digest depends on every word, so neither pass can be optimized away,
//! and both sides can check they did the same work: equal seeds give equal
//! digests. The buffer may come in pieces ([`Workload::fill`] and
//! [`Workload::hash`] continue where the previous piece ended): the guest
//! passes its RAM as one slice, the hypervisor its 2 MiB host blocks one by
//! one. The result is the same either way.
//!
//! Plain integer code, no allocation: it builds for the host (tests), the
//! kernel and the guests alike.

/// Bytes the benchmark runs the workload over: 32 MiB.
pub const WORKLOAD_BYTES: usize = 32 << 20;

/// The seed both sides use.
pub const WORKLOAD_SEED: u64 = 0x9E37_79B9_7F4A_7C15;

/// FNV-1a 64-bit offset basis.
const FNV_OFFSET_BASIS: u64 = 0xcbf2_9ce4_8422_2325;
/// FNV-1a 64-bit prime.
const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;

/// The state of one run of the workload: the generator for the fill pass and
/// the running hash.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Workload {
    generator: u64,
    hash: u64,
}

impl Workload {
    /// A run seeded with `seed` (0, which xorshift cannot leave, is replaced by
    /// [`WORKLOAD_SEED`]).
    pub const fn new(seed: u64) -> Self {
        let generator = if seed == 0 { WORKLOAD_SEED } else { seed };
        Self { generator, hash: FNV_OFFSET_BASIS }
    }

    /// The next xorshift64 value.
    #[inline(always)]
    fn next(&mut self) -> u64 {
        let mut x = self.generator;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.generator = x;
        x
    }

    /// Pass 1 over the next piece of the buffer: fills it with generator output.
    ///
    /// Never inlined (nor is [`Self::hash`]): inlined, the compiler would
    /// specialize the loop for each caller (a known piece length in the
    /// hypervisor, an unknown one in the guest), and the two sides would no
    /// longer run the same instructions.
    #[inline(never)]
    pub fn fill(&mut self, piece: &mut [u64]) {
        for word in piece {
            *word = self.next();
        }
    }

    /// Pass 2 over the next piece of the buffer: folds it into the hash.
    #[inline(never)]
    pub fn hash(&mut self, piece: &[u64]) {
        let mut hash = self.hash;
        for &word in piece {
            hash ^= word;
            hash = hash.wrapping_mul(FNV_PRIME);
        }
        self.hash = hash;
    }

    /// The hash of every word passed to [`Self::hash`] so far.
    pub const fn digest(&self) -> u64 {
        self.hash
    }
}

/// Runs both passes over one contiguous buffer and returns the digest.
pub fn run(buffer: &mut [u64], seed: u64) -> u64 {
    let mut workload = Workload::new(seed);
    workload.fill(buffer);
    workload.hash(buffer);
    workload.digest()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::vec;

    #[test]
    fn xorshift_matches_its_definition() {
        let mut workload = Workload::new(1);
        // x = 1: x ^= x << 13 -> 0x2001; x ^= x >> 7 -> 0x2041; x ^= x << 17 -> 0x4082_2041.
        assert_eq!(workload.next(), 0x4082_2041);
        let mut zero = Workload::new(0);
        assert_eq!(zero, Workload::new(WORKLOAD_SEED));
        assert_ne!(zero.next(), 0);
    }

    #[test]
    fn hash_is_fnv1a_over_words() {
        let mut workload = Workload::new(1);
        workload.hash(&[]);
        assert_eq!(workload.digest(), FNV_OFFSET_BASIS);
        workload.hash(&[0]);
        assert_eq!(workload.digest(), FNV_OFFSET_BASIS.wrapping_mul(FNV_PRIME));
        let mut other = Workload::new(1);
        other.hash(&[1]);
        assert_ne!(other.digest(), workload.digest());
    }

    #[test]
    fn pieces_give_the_same_digest_as_one_buffer() {
        let mut whole = vec![0u64; 4096];
        let expected = run(&mut whole, 7);
        for piece_len in [1, 3, 512, 4095, 4096] {
            let mut buffer = vec![0u64; 4096];
            let mut workload = Workload::new(7);
            for piece in buffer.chunks_mut(piece_len) {
                workload.fill(piece);
            }
            for piece in buffer.chunks(piece_len) {
                workload.hash(piece);
            }
            assert_eq!(workload.digest(), expected, "pieces of {piece_len} words");
            assert_eq!(buffer, whole);
        }
    }

    #[test]
    fn the_digest_depends_on_seed_length_and_every_word() {
        let mut a = vec![0u64; 1024];
        let digest = run(&mut a, 7);
        assert_ne!(run(&mut vec![0u64; 1024], 8), digest);
        assert_ne!(run(&mut vec![0u64; 1023], 7), digest);
        // Changing one word changes the hash.
        for index in [0, 511, 1023] {
            let mut changed = a.clone();
            changed[index] ^= 1;
            let mut workload = Workload::new(7);
            workload.hash(&changed);
            assert_ne!(workload.digest(), digest, "word {index}");
        }
        // The filled words are not constant.
        assert!(a.windows(2).all(|pair| pair[0] != pair[1]));
    }

    #[test]
    fn the_size_is_whole_2_mib_blocks_of_words() {
        const { assert!(WORKLOAD_BYTES.is_multiple_of(2 << 20) && WORKLOAD_BYTES >= 16 << 20) };
    }
}
