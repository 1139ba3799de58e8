//! Interleaved rounds: how every ratio of the bench is measured.
//!
//! The VM this runs on moves its vCPUs: a floor measured a minute before
//! its subject can be off by 3x. So a comparison measures its floor and
//! its subject alternately in short rounds between the same two CPUs
//! (floor, subject, floor, subject, ...), takes one ratio per round, and
//! reports the median of those ratios with their min–max spread.
//!
//! The invariant: every ratio the bench prints is the median of per-round
//! ratios, each of a floor and a subject measured back to back; a round
//! whose floor or subject has no figure gives no ratio.

use std::time::Duration;

/// What one measurement of one round produced.
#[derive(Clone, Debug)]
pub enum Outcome {
    /// Sorted round-trip times.
    Latency(Vec<Duration>),
    /// Messages (and their bytes) moved in `elapsed`.
    Rate {
        /// Messages moved.
        count: u64,
        /// Their bytes.
        bytes: u64,
        /// How long it took.
        elapsed: Duration,
    },
}

impl Outcome {
    /// The round's figure: the median round trip in ns, or bytes/s.
    pub fn figure(&self) -> Option<f64> {
        match self {
            Outcome::Latency(sorted) => {
                shmlane_examples::rtt::percentile(sorted, 0.5).map(|d| d.as_nanos() as f64)
            }
            Outcome::Rate { bytes, elapsed, .. } => {
                let secs = elapsed.as_secs_f64();
                (secs > 0.0).then(|| *bytes as f64 / secs)
            }
        }
    }

    /// Messages per second, for a rate.
    pub fn msgs_per_s(&self) -> Option<f64> {
        match self {
            Outcome::Rate { count, elapsed, .. } if !elapsed.is_zero() => {
                Some(*count as f64 / elapsed.as_secs_f64())
            }
            _ => None,
        }
    }
}

/// The median (mean of the middle two for an even count); `None` when
/// there are no values.
pub fn median(values: &[f64]) -> Option<f64> {
    let mut sorted: Vec<f64> = values.iter().copied().filter(|v| v.is_finite()).collect();
    sorted.sort_by(f64::total_cmp);
    let n = sorted.len();
    match n {
        0 => None,
        _ if n % 2 == 1 => Some(sorted[n / 2]),
        _ => Some((sorted[n / 2 - 1] + sorted[n / 2]) / 2.0),
    }
}

/// The smallest and the largest value.
pub fn spread(values: &[f64]) -> Option<(f64, f64)> {
    let finite = values.iter().copied().filter(|v| v.is_finite());
    finite.fold(None, |acc, v| match acc {
        None => Some((v, v)),
        Some((lo, hi)) => Some((lo.min(v), hi.max(v))),
    })
}

/// One ratio per round: subject / floor, for the rounds where both have a
/// figure.
pub fn ratios(subject: &[f64], floor: &[f64]) -> Vec<f64> {
    subject
        .iter()
        .zip(floor)
        .filter(|(_, f)| **f > 0.0)
        .map(|(s, f)| s / f)
        .collect()
}

/// Per-round values, summarised: median and min–max.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Summary {
    /// The values, round by round.
    pub rounds: Vec<f64>,
    /// Their median.
    pub median: Option<f64>,
    /// Their smallest.
    pub min: Option<f64>,
    /// Their largest.
    pub max: Option<f64>,
}

impl Summary {
    /// Summarises `rounds`.
    pub fn of(rounds: Vec<f64>) -> Summary {
        let median = median(&rounds);
        let (min, max) = spread(&rounds).unzip();
        Summary {
            rounds,
            median,
            min,
            max,
        }
    }

    /// The same rounds, each inverted (a throughput ratio read as "how
    /// many times slower", or a ratio read the other way round).
    pub fn inverse(&self) -> Summary {
        Summary::of(
            self.rounds
                .iter()
                .filter(|v| **v != 0.0)
                .map(|v| 1.0 / v)
                .collect(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_of_odd_and_even_counts() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median(&[4.0, 1.0, 3.0, 2.0]), Some(2.5));
        assert_eq!(median(&[]), None);
        assert_eq!(median(&[f64::NAN, 1.0]), Some(1.0));
    }

    #[test]
    fn spread_is_min_and_max() {
        assert_eq!(spread(&[2.0, 5.0, 1.0]), Some((1.0, 5.0)));
        assert_eq!(spread(&[]), None);
    }

    #[test]
    fn a_ratio_per_round_and_none_without_a_floor() {
        assert_eq!(ratios(&[2.0, 6.0, 9.0], &[1.0, 3.0, 0.0]), vec![2.0, 2.0]);
        assert_eq!(ratios(&[2.0], &[]), Vec::<f64>::new());
    }

    #[test]
    fn a_summary_and_its_inverse() {
        let s = Summary::of(vec![2.0, 4.0, 1.0]);
        assert_eq!((s.median, s.min, s.max), (Some(2.0), Some(1.0), Some(4.0)));
        let inv = s.inverse();
        assert_eq!(inv.rounds, vec![0.5, 0.25, 1.0]);
        assert_eq!(
            (inv.median, inv.min, inv.max),
            (Some(0.5), Some(0.25), Some(1.0))
        );
    }

    #[test]
    fn figures_of_outcomes() {
        let rtts: Vec<Duration> = (1..=5).map(|n| Duration::from_nanos(n * 100)).collect();
        assert_eq!(Outcome::Latency(rtts).figure(), Some(300.0));
        let rate = Outcome::Rate {
            count: 10,
            bytes: 640,
            elapsed: Duration::from_millis(500),
        };
        assert_eq!(rate.figure(), Some(1280.0));
        assert_eq!(rate.msgs_per_s(), Some(20.0));
        assert_eq!(Outcome::Latency(Vec::new()).figure(), None);
    }
}
