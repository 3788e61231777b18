//! Simulated time.
//!
//! gem5 keeps global ticks apart from per-object cycles "to avoid unintentional mixing"
//! (`src/base/types.hh`); so do we. [`Tick`] is a point in time, [`Span`] a duration,
//! [`Cycles`] a count of some clock's periods. Only [`ClockDomain`] turns cycles into a span.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::ops::{Add, AddAssign, Sub};

/// Picoseconds per nanosecond.
pub const PS_PER_NS: u64 = 1_000;

/// A point in simulated time, in picoseconds since the start of the run.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
pub struct Tick(u64);

impl Tick {
    /// The start of every run.
    pub const ZERO: Tick = Tick(0);
    /// The latest representable point (about 213 days of simulated time).
    pub const MAX: Tick = Tick(u64::MAX);

    /// A tick `ps` picoseconds after the start of the run.
    pub const fn from_ps(ps: u64) -> Tick {
        Tick(ps)
    }

    /// Picoseconds since the start of the run.
    pub const fn as_ps(self) -> u64 {
        self.0
    }

    /// Nanoseconds since the start of the run, for reports.
    pub fn as_ns_f64(self) -> f64 {
        self.0 as f64 / PS_PER_NS as f64
    }

    /// The span from `earlier` to `self`, or `None` if `earlier` is later.
    pub fn checked_since(self, earlier: Tick) -> Option<Span> {
        self.0.checked_sub(earlier.0).map(Span)
    }

    /// The span from `earlier` to `self`, zero if `earlier` is later.
    pub fn saturating_since(self, earlier: Tick) -> Span {
        Span(self.0.saturating_sub(earlier.0))
    }

    /// `self + span`, or `None` past [`Tick::MAX`].
    pub fn checked_add(self, span: Span) -> Option<Tick> {
        self.0.checked_add(span.0).map(Tick)
    }
}

impl fmt::Display for Tick {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:.3} ns", self.as_ns_f64())
    }
}

/// `Tick + Span` saturates at [`Tick::MAX`]: a run is always stopped long before that by its
/// simulated-time limit, and saturating keeps a pathological latency from wrapping around.
impl Add<Span> for Tick {
    type Output = Tick;
    fn add(self, rhs: Span) -> Tick {
        Tick(self.0.saturating_add(rhs.0))
    }
}

impl AddAssign<Span> for Tick {
    fn add_assign(&mut self, rhs: Span) {
        *self = *self + rhs;
    }
}

/// A duration in simulated time, in picoseconds.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
pub struct Span(u64);

impl Span {
    /// No time at all.
    pub const ZERO: Span = Span(0);

    /// A span of `ps` picoseconds.
    pub const fn from_ps(ps: u64) -> Span {
        Span(ps)
    }

    /// A span of `ns` nanoseconds (saturating).
    pub const fn from_ns(ns: u64) -> Span {
        Span(ns.saturating_mul(PS_PER_NS))
    }

    /// The span in picoseconds.
    pub const fn as_ps(self) -> u64 {
        self.0
    }

    /// The span in nanoseconds, for reports.
    pub fn as_ns_f64(self) -> f64 {
        self.0 as f64 / PS_PER_NS as f64
    }

    /// `self * n`, saturating.
    pub const fn saturating_mul(self, n: u64) -> Span {
        Span(self.0.saturating_mul(n))
    }
}

impl Add for Span {
    type Output = Span;
    fn add(self, rhs: Span) -> Span {
        Span(self.0.saturating_add(rhs.0))
    }
}

impl AddAssign for Span {
    fn add_assign(&mut self, rhs: Span) {
        *self = *self + rhs;
    }
}

impl Sub for Span {
    type Output = Span;
    /// Saturating: a span is never negative.
    fn sub(self, rhs: Span) -> Span {
        Span(self.0.saturating_sub(rhs.0))
    }
}

impl fmt::Display for Span {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:.3} ns", self.as_ns_f64())
    }
}

/// A number of periods of some component's clock. Meaningless without its [`ClockDomain`].
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
pub struct Cycles(pub u64);

/// Why a clock domain could not be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ClockError {
    /// The frequency was zero.
    #[error("clock frequency must be above 0 kHz")]
    ZeroFrequency,
    /// The frequency is so high that its period would round to 0 ps.
    #[error("clock frequency {khz} kHz is above the 1 THz that 1 ps resolution can represent")]
    TooFast {
        /// The requested frequency in kHz.
        khz: u64,
    },
}

/// A clock: the single place where a component's cycles become picoseconds.
///
/// The period is kept as an exact fraction of picoseconds (`10^9 / kHz`), so 3 cycles of a
/// 3 GHz core are exactly 1000 ps rather than 3 × 333 ps; a span is rounded up to whole
/// picoseconds only at the end.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ClockDomain {
    khz: u64,
}

/// Picoseconds in one period of a 1 kHz clock.
const PS_PER_KHZ_PERIOD: u128 = 1_000_000_000;

impl ClockDomain {
    /// A 1 GHz clock (1 cycle = 1 ns).
    pub const ONE_GHZ: ClockDomain = ClockDomain { khz: 1_000_000 };

    /// A clock running at `khz` kilohertz (1 kHz .. 1 THz).
    pub fn from_khz(khz: u64) -> Result<ClockDomain, ClockError> {
        match khz {
            0 => Err(ClockError::ZeroFrequency),
            k if u128::from(k) > PS_PER_KHZ_PERIOD => Err(ClockError::TooFast { khz }),
            _ => Ok(ClockDomain { khz }),
        }
    }

    /// A clock running at `mhz` megahertz.
    pub fn from_mhz(mhz: u64) -> Result<ClockDomain, ClockError> {
        ClockDomain::from_khz(mhz.saturating_mul(1_000))
    }

    /// The frequency in kilohertz.
    pub fn khz(&self) -> u64 {
        self.khz
    }

    /// The span of `cycles` periods, rounded up to a whole picosecond.
    pub fn span(&self, cycles: Cycles) -> Span {
        let ps = (u128::from(cycles.0) * PS_PER_KHZ_PERIOD).div_ceil(u128::from(self.khz));
        Span(u64::try_from(ps).unwrap_or(u64::MAX))
    }

    /// The first clock edge at or after `now` (components act on their own edges).
    pub fn next_edge(&self, now: Tick) -> Tick {
        // Edge k sits at ceil(k * 10^9 / khz) ps; find the smallest such k.
        let k = (u128::from(now.0) * u128::from(self.khz)).div_ceil(PS_PER_KHZ_PERIOD);
        let ps = (k * PS_PER_KHZ_PERIOD).div_ceil(u128::from(self.khz));
        Tick(u64::try_from(ps).unwrap_or(u64::MAX))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cycles_of_a_3ghz_core_are_exact_over_three_periods() {
        let core = ClockDomain::from_mhz(3_000).unwrap();
        assert_eq!(core.span(Cycles(3)), Span::from_ps(1_000));
        assert_eq!(core.span(Cycles(1)), Span::from_ps(334)); // 333.3 rounded up
        assert_eq!(core.span(Cycles(3_000_000)), Span::from_ns(1_000_000));
    }

    #[test]
    fn next_edge_rounds_up_to_the_clock_grid() {
        let c = ClockDomain::from_mhz(1_000).unwrap(); // 1 ns period
        assert_eq!(c.next_edge(Tick::from_ps(0)), Tick::from_ps(0));
        assert_eq!(c.next_edge(Tick::from_ps(1)), Tick::from_ps(1_000));
        assert_eq!(c.next_edge(Tick::from_ps(1_000)), Tick::from_ps(1_000));
        assert_eq!(c.next_edge(Tick::from_ps(1_001)), Tick::from_ps(2_000));
    }

    #[test]
    fn zero_and_absurd_frequencies_are_rejected() {
        assert_eq!(ClockDomain::from_khz(0), Err(ClockError::ZeroFrequency));
        assert!(ClockDomain::from_khz(2_000_000_000).is_err());
        assert!(ClockDomain::from_khz(1_000_000_000).is_ok()); // 1 THz, 1 ps
    }

    #[test]
    fn tick_arithmetic_saturates_instead_of_wrapping() {
        assert_eq!(Tick::MAX + Span::from_ps(5), Tick::MAX);
        assert_eq!(Tick::from_ps(3).checked_since(Tick::from_ps(5)), None);
        assert_eq!(
            Tick::from_ps(5).saturating_since(Tick::from_ps(3)),
            Span::from_ps(2)
        );
    }
}
