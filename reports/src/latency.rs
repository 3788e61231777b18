//! Latency histograms: picosecond samples in, a nanosecond [`LatencySummary`] out.

use hdrhistogram::Histogram;

use crate::model::LatencySummary;

/// Significant decimal digits kept by the histogram: values are resolved to within 0.1%.
const SIGFIG: u8 = 3;

/// Picoseconds per nanosecond.
const PS_PER_NS: f64 = 1000.0;

/// A latency distribution recorded in picoseconds.
///
/// Percentiles come from an auto-resizing `hdrhistogram` with 3 significant figures, so each
/// is within 0.1% of the true sample value; any `u64` is accepted. Count, mean and max are
/// kept exactly beside it: `mean` is the exact arithmetic mean and `max` the exact largest
/// sample (hdrhistogram's own `max()` would be the highest value equivalent to it within the
/// resolution). Percentiles are capped at the exact `max`, so `p999 <= max` always holds.
///
/// No method panics. Should the histogram ever fail to grow for a value (it grows to the full
/// `u64` range on 64-bit hosts), the sample is clamped into its range for the percentiles and
/// still counted exactly in count, mean and max.
#[derive(Debug, Clone, Default)]
pub struct LatencyHistogram {
    /// Created on the first sample; `None` while empty.
    hist: Option<Histogram<u64>>,
    /// Number of samples.
    count: u64,
    /// Exact sum of all samples (ps); `u128` cannot overflow for any `u64` count of `u64`s.
    sum_ps: u128,
    /// Exact largest sample (ps); 0 while empty.
    max_ps: u64,
}

impl LatencyHistogram {
    /// An empty histogram.
    pub fn new() -> Self {
        Self::default()
    }

    /// Records one latency sample, in picoseconds.
    pub fn record_ps(&mut self, latency_ps: u64) {
        self.count = self.count.saturating_add(1);
        self.sum_ps = self.sum_ps.saturating_add(u128::from(latency_ps));
        self.max_ps = self.max_ps.max(latency_ps);
        if let Some(hist) = self.histogram_mut() {
            record_n(hist, latency_ps, 1);
        }
    }

    /// Number of samples recorded.
    pub fn len(&self) -> u64 {
        self.count
    }

    /// True when no sample has been recorded.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Adds every sample of `other` to `self`.
    pub fn merge(&mut self, other: &LatencyHistogram) {
        if other.is_empty() {
            return;
        }
        self.count = self.count.saturating_add(other.count);
        self.sum_ps = self.sum_ps.saturating_add(other.sum_ps);
        self.max_ps = self.max_ps.max(other.max_ps);
        let (Some(source), Some(hist)) = (other.hist.as_ref(), self.histogram_mut()) else {
            return;
        };
        if hist.add(source).is_err() {
            // Only if growing failed: fall back to adding value by value, clamping as needed.
            for value in source.iter_recorded() {
                record_n(hist, value.value_iterated_to(), value.count_at_value());
            }
        }
    }

    /// The distribution in nanoseconds; all zeros when empty.
    pub fn summary(&self) -> LatencySummary {
        let Some(hist) = self.hist.as_ref().filter(|_| self.count > 0) else {
            return LatencySummary::default();
        };
        let at = |quantile: f64| ps_to_ns(hist.value_at_quantile(quantile).min(self.max_ps));
        LatencySummary {
            count: self.count,
            mean: self.sum_ps as f64 / self.count as f64 / PS_PER_NS,
            p50: at(0.5),
            p90: at(0.9),
            p99: at(0.99),
            p999: at(0.999),
            max: ps_to_ns(self.max_ps),
        }
    }

    /// The histogram, created on first use. `None` only if creation failed, which
    /// `hdrhistogram` does only for more than 5 significant figures.
    fn histogram_mut(&mut self) -> Option<&mut Histogram<u64>> {
        if self.hist.is_none() {
            self.hist = Histogram::new(SIGFIG).ok();
        }
        self.hist.as_mut()
    }
}

/// Records `count` samples of `value_ps`, growing the histogram; clamps if growing fails.
///
/// `saturating_record_n` alone would be wrong: it never grows the histogram, and an
/// auto-resizing one starts with a range of 1..=2.
fn record_n(hist: &mut Histogram<u64>, value_ps: u64, count: u64) {
    if hist.record_n(value_ps, count).is_err() {
        hist.saturating_record_n(value_ps, count);
    }
}

fn ps_to_ns(ps: u64) -> f64 {
    ps as f64 / PS_PER_NS
}
