//! Benchmark samples and their summary: the arithmetic behind the bench
//! guest's `bench:` lines (`guest-payloads/bench`, timing in
//! `guest-rt/src/timing.rs`), kept here so it is tested on the host.
//!
//! A sample is a number of TSC ticks with one decimal ([`Tenths`]): a round
//! trip is a loop's ticks less its skeleton's, divided by the runs, which is
//! rarely a whole number. Integers only: the guests are built soft-float.
//!
//! A [`Summary`] prints as the line the runner parses
//! (`boot/src/bench.rs::parse_metric_line`):
//!
//! ```text
//! bench: <metric> <unit> samples=<n> min=<x> median=<y> max=<z>
//! ```

use core::fmt;

/// A number with one decimal, kept as an integer count of tenths.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub struct Tenths(pub i64);

impl Tenths {
    /// `(with - without) / rounds`, rounded half away from zero (`rounds` 0
    /// counts as 1). May be negative when the difference drowns in noise;
    /// saturates at the ends of `i64`.
    pub fn per_round(with: u64, without: u64, rounds: u64) -> Self {
        let diff = i128::from(with) - i128::from(without);
        let rounds = i128::from(rounds.max(1));
        let half = if diff < 0 { -(rounds / 2) } else { rounds / 2 };
        let tenths = (diff * 10 + half) / rounds;
        Self(i64::try_from(tenths).unwrap_or(if tenths < 0 { i64::MIN } else { i64::MAX }))
    }

    /// A whole number of ticks (saturating).
    pub fn whole(ticks: u64) -> Self {
        Self(i64::try_from(ticks).unwrap_or(i64::MAX).saturating_mul(10))
    }

    /// `self - other`, saturating.
    pub fn minus(self, other: Self) -> Self {
        Self(self.0.saturating_sub(other.0))
    }

    /// Half of it, rounded toward zero to a tenth.
    pub fn half(self) -> Self {
        Self(self.0 / 2)
    }
}

impl fmt::Display for Tenths {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sign = if self.0 < 0 { "-" } else { "" };
        let magnitude = self.0.unsigned_abs();
        write!(f, "{sign}{}.{}", magnitude / 10, magnitude % 10)
    }
}

/// The most whole-tick samples [`Summary::of_ticks`] takes (more are ignored).
pub const MAX_TICK_SAMPLES: usize = 256;

/// What a set of samples says: how many, the smallest, the median (of an
/// even count, the mean of the middle two, toward zero), the largest.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Summary {
    /// Number of samples.
    pub samples: usize,
    /// The smallest sample.
    pub min: Tenths,
    /// The median sample.
    pub median: Tenths,
    /// The largest sample.
    pub max: Tenths,
}

impl Summary {
    /// Summarizes `samples`, sorting them in place. All zero when empty.
    pub fn of(samples: &mut [Tenths]) -> Self {
        samples.sort_unstable();
        let count = samples.len();
        let (Some(&min), Some(&max)) = (samples.first(), samples.last()) else { return Self::default() };
        let median = if count % 2 == 1 {
            samples[count / 2]
        } else {
            let sum = i128::from(samples[count / 2 - 1].0) + i128::from(samples[count / 2].0);
            // The mean of two i64 values fits an i64.
            Tenths((sum / 2) as i64)
        };
        Self { samples: count, min, median, max }
    }

    /// Summarizes whole-tick samples (the first [`MAX_TICK_SAMPLES`]).
    pub fn of_ticks(samples: &[u64]) -> Self {
        let mut tenths = [Tenths(0); MAX_TICK_SAMPLES];
        let count = samples.len().min(MAX_TICK_SAMPLES);
        for (slot, &ticks) in tenths.iter_mut().zip(samples) {
            *slot = Tenths::whole(ticks);
        }
        Self::of(&mut tenths[..count])
    }

    /// Each of min, median and max passed through `f` (e.g. to subtract a
    /// floor); the sample count stays.
    pub fn map(self, f: impl Fn(Tenths) -> Tenths) -> Self {
        Self { samples: self.samples, min: f(self.min), median: f(self.median), max: f(self.max) }
    }

    /// The machine-readable line for this summary as `metric` in `unit`.
    pub fn line<'a>(&'a self, metric: &'a str, unit: &'a str) -> MetricLine<'a> {
        MetricLine { summary: self, metric, unit }
    }
}

/// `bench: <metric> <unit> samples=<n> min=<x> median=<y> max=<z>`
/// ([`Summary::line`]).
#[derive(Debug, Clone, Copy)]
pub struct MetricLine<'a> {
    summary: &'a Summary,
    metric: &'a str,
    unit: &'a str,
}

impl fmt::Display for MetricLine<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = self.summary;
        write!(
            f,
            "bench: {} {} samples={} min={} median={} max={}",
            self.metric, self.unit, s.samples, s.min, s.median, s.max
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::format;
    use std::string::ToString;

    #[test]
    fn per_round_rounds_half_away_from_zero() {
        assert_eq!(Tenths::per_round(1_510_000, 1_000_000, 10_000), Tenths(510));
        assert_eq!(Tenths::per_round(1005, 1000, 100), Tenths(1)); // 0.05 -> 0.1
        assert_eq!(Tenths::per_round(1004, 1000, 100), Tenths(0)); // 0.04 -> 0.0
        assert_eq!(Tenths::per_round(1000, 1005, 100), Tenths(-1)); // -0.05 -> -0.1
        assert_eq!(Tenths::per_round(7, 0, 0), Tenths(70), "0 rounds count as 1");
        assert_eq!(Tenths::per_round(u64::MAX, 0, 1), Tenths(i64::MAX), "saturates");
        assert_eq!(Tenths::per_round(0, u64::MAX, 1), Tenths(i64::MIN), "saturates");
    }

    #[test]
    fn tenths_print_with_one_decimal() {
        assert_eq!(Tenths(510).to_string(), "51.0");
        assert_eq!(Tenths(19756).to_string(), "1975.6");
        assert_eq!(Tenths(-5).to_string(), "-0.5");
        assert_eq!(Tenths(0).to_string(), "0.0");
        assert_eq!(Tenths(i64::MIN).to_string(), "-922337203685477580.8");
        assert_eq!(Tenths::whole(51), Tenths(510));
        assert_eq!(Tenths::whole(u64::MAX), Tenths(i64::MAX));
        assert_eq!(Tenths(10243).minus(Tenths(510)).minus(Tenths(510)).half(), Tenths(4611));
        assert_eq!(Tenths(i64::MIN).minus(Tenths(1)), Tenths(i64::MIN));
    }

    #[test]
    fn summaries_of_odd_even_and_empty_sets() {
        let mut odd = [Tenths(30), Tenths(10), Tenths(20)];
        assert_eq!(Summary::of(&mut odd), Summary { samples: 3, min: Tenths(10), median: Tenths(20), max: Tenths(30) });
        assert_eq!(odd, [Tenths(10), Tenths(20), Tenths(30)], "sorted in place");
        let mut even = [Tenths(40), Tenths(10), Tenths(25), Tenths(20)];
        // Middle two: 2.0 and 2.5 -> 2.25, kept to a tenth toward zero: 2.2.
        assert_eq!(Summary::of(&mut even).median, Tenths(22));
        let mut negative = [Tenths(-3), Tenths(-2)];
        assert_eq!(Summary::of(&mut negative).median, Tenths(-2), "toward zero");
        let mut extremes = [Tenths(i64::MAX), Tenths(i64::MAX)];
        assert_eq!(Summary::of(&mut extremes).median, Tenths(i64::MAX), "no overflow");
        assert_eq!(Summary::of(&mut []), Summary::default());
        let mut one = [Tenths(7)];
        assert_eq!(Summary::of(&mut one), Summary { samples: 1, min: Tenths(7), median: Tenths(7), max: Tenths(7) });
    }

    #[test]
    fn tick_samples_are_whole_and_capped() {
        let summary = Summary::of_ticks(&[10129, 10349, 10129]);
        assert_eq!(summary, Summary { samples: 3, min: Tenths(101290), median: Tenths(101290), max: Tenths(103490) });
        let many = [5u64; MAX_TICK_SAMPLES + 10];
        assert_eq!(Summary::of_ticks(&many).samples, MAX_TICK_SAMPLES);
        assert_eq!(Summary::of_ticks(&[]), Summary::default());
    }

    #[test]
    fn map_keeps_the_count() {
        let summary = Summary { samples: 20, min: Tenths(100), median: Tenths(110), max: Tenths(200) };
        let less = summary.map(|sample| sample.minus(Tenths(50)));
        assert_eq!(less, Summary { samples: 20, min: Tenths(50), median: Tenths(60), max: Tenths(150) });
    }

    #[test]
    fn the_line_is_what_the_runner_parses() {
        let summary = Summary { samples: 20, min: Tenths(510), median: Tenths(515), max: Tenths(9001) };
        assert_eq!(
            format!("{}", summary.line("vmcall_null", "ticks")),
            "bench: vmcall_null ticks samples=20 min=51.0 median=51.5 max=900.1"
        );
    }
}
