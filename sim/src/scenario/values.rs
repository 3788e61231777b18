//! Range-checked scenario values.
//!
//! Each newtype checks its range while the JSON is parsed (`#[serde(try_from)]`), so an
//! out-of-range value is reported by the parser with its JSON path and line:column, like a
//! type error. The messages say what was expected.

use model_core::Span;
use serde::{Deserialize, Serialize};
use std::fmt;

/// A PCIe generation number, 1..=6.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "u32", into = "u32")]
pub struct GenNumber(pub u32);

impl TryFrom<u32> for GenNumber {
    type Error = String;
    fn try_from(v: u32) -> Result<Self, String> {
        pcie::LinkGen::from_number(v)
            .map(|_| GenNumber(v))
            .map_err(|e| e.to_string())
    }
}
impl From<GenNumber> for u32 {
    fn from(v: GenNumber) -> u32 {
        v.0
    }
}

/// A link width a PCIe link can train to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "u32", into = "u32")]
pub struct Lanes(pub u32);

impl TryFrom<u32> for Lanes {
    type Error = String;
    fn try_from(v: u32) -> Result<Self, String> {
        if pcie::link::LINK_WIDTHS.contains(&v) {
            Ok(Lanes(v))
        } else {
            Err(format!(
                "{v} lanes is not a PCIe link width: expected one of {:?}",
                pcie::link::LINK_WIDTHS
            ))
        }
    }
}
impl From<Lanes> for u32 {
    fn from(v: Lanes) -> u32 {
        v.0
    }
}

/// A Max_Payload_Size or Max_Read_Request_Size: a power of two from 128 to 4096 bytes
/// (PCIe Base 6.0 §7.5.3.4, Device Control bits 7:5 and 14:12: 128 << code, code 0..=5).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "u32", into = "u32")]
pub struct PayloadSize(pub u32);

impl TryFrom<u32> for PayloadSize {
    type Error = String;
    fn try_from(v: u32) -> Result<Self, String> {
        if v.is_power_of_two() && (128..=4096).contains(&v) {
            Ok(PayloadSize(v))
        } else {
            Err(format!(
                "{v} bytes is not a PCIe payload or read-request size: expected a power of two \
                 from 128 to 4096 (128, 256, 512, 1024, 2048 or 4096)"
            ))
        }
    }
}
impl From<PayloadSize> for u32 {
    fn from(v: PayloadSize) -> u32 {
        v.0
    }
}

/// A Read Completion Boundary: 64 or 128 bytes (PCIe Base 6.0 §7.5.3.7, Link Control bit 3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "u32", into = "u32")]
pub struct RcbBytes(pub u32);

impl TryFrom<u32> for RcbBytes {
    type Error = String;
    fn try_from(v: u32) -> Result<Self, String> {
        match v {
            64 | 128 => Ok(RcbBytes(v)),
            _ => Err(format!(
                "{v} bytes is not a Read Completion Boundary: expected 64 or 128"
            )),
        }
    }
}
impl From<RcbBytes> for u32 {
    fn from(v: RcbBytes) -> u32 {
        v.0
    }
}

/// An integer within `MIN..=MAX`, with the field's unit in messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "u64", into = "u64")]
pub struct Bounded<const MIN: u64, const MAX: u64>(pub u64);

impl<const MIN: u64, const MAX: u64> Default for Bounded<MIN, MAX> {
    /// The lowest value of the range.
    fn default() -> Self {
        Bounded(MIN)
    }
}

impl<const MIN: u64, const MAX: u64> TryFrom<u64> for Bounded<MIN, MAX> {
    type Error = String;
    fn try_from(v: u64) -> Result<Self, String> {
        if (MIN..=MAX).contains(&v) {
            Ok(Bounded(v))
        } else {
            Err(format!("{v} is out of range: expected {MIN} to {MAX}"))
        }
    }
}
impl<const MIN: u64, const MAX: u64> From<Bounded<MIN, MAX>> for u64 {
    fn from(v: Bounded<MIN, MAX>) -> u64 {
        v.0
    }
}

/// Longest latency or time value a scenario may give: one second.
const MAX_NS: f64 = 1e9;

/// A non-negative time in nanoseconds (fractions allowed, kept to the picosecond).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "f64", into = "f64")]
pub struct Nanos(f64);

impl Nanos {
    /// `ns` nanoseconds; callers pass constants known to be in range.
    pub const fn new(ns: f64) -> Nanos {
        Nanos(ns)
    }

    /// The value rounded to whole picoseconds.
    pub fn span(self) -> Span {
        Span::from_ps((self.0 * 1_000.0).round() as u64)
    }
}

impl TryFrom<f64> for Nanos {
    type Error = String;
    fn try_from(v: f64) -> Result<Self, String> {
        if v.is_finite() && (0.0..=MAX_NS).contains(&v) {
            Ok(Nanos(v))
        } else {
            Err(format!(
                "{v} ns is out of range: expected a time from 0 to {MAX_NS:e} ns (one second)"
            ))
        }
    }
}
impl From<Nanos> for f64 {
    fn from(v: Nanos) -> f64 {
        v.0
    }
}

/// A 64-bit address written as a hex string, `"0x1000_0000"` (underscores allowed).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct HexAddr(pub u64);

impl TryFrom<String> for HexAddr {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        let digits: String = s
            .strip_prefix("0x")
            .or_else(|| s.strip_prefix("0X"))
            .unwrap_or("")
            .chars()
            .filter(|c| *c != '_')
            .collect();
        if digits.is_empty() || digits.len() > 16 {
            return Err(format!(
                "\"{s}\" is not an address: expected a hex string of up to 64 bits like \"0x1000_0000\""
            ));
        }
        u64::from_str_radix(&digits, 16).map(HexAddr).map_err(|_| {
            format!("\"{s}\" is not an address: expected hex digits after 0x, like \"0x1000_0000\"")
        })
    }
}
impl From<HexAddr> for String {
    fn from(v: HexAddr) -> String {
        v.to_string()
    }
}
impl fmt::Display for HexAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:#x}", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payload_sizes_are_powers_of_two_from_128_to_4096() {
        for ok in [128, 256, 512, 1024, 2048, 4096] {
            assert!(PayloadSize::try_from(ok).is_ok());
        }
        for bad in [0, 64, 100, 384, 8192] {
            assert!(PayloadSize::try_from(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn hex_addresses_need_the_prefix_and_fit_64_bits() {
        assert_eq!(
            HexAddr::try_from("0x1000_0000".to_owned()),
            Ok(HexAddr(0x1000_0000))
        );
        assert_eq!(
            HexAddr::try_from("0xFFFFFFFFFFFFFFFF".to_owned()),
            Ok(HexAddr(u64::MAX))
        );
        for bad in ["1000", "0x", "0x1_0000_0000_0000_0000", "0xzz", "0x-1"] {
            assert!(HexAddr::try_from(bad.to_owned()).is_err(), "{bad}");
        }
    }

    #[test]
    fn nanos_round_to_picoseconds_and_reject_negative_or_huge() {
        assert_eq!(Nanos::try_from(2.5).unwrap().span(), Span::from_ps(2_500));
        assert!(Nanos::try_from(-1.0).is_err());
        assert!(Nanos::try_from(2e9).is_err());
    }
}
