//! Link timing: how long a TLP occupies one direction of a link.
//!
//! A TLP of `n` bytes on the wire (header + payload + framing, see
//! [`crate::tlp::Tlp::wire_bytes`]) occupies the link for `n` byte times divided over the
//! lanes; TLPs in one direction are serialised behind each other; the receiver sees the
//! last byte one port delay after it left. Line encoding is folded into the byte time:
//! 8b/10b sends 10 bits per byte, 128b/130b sends 130 bits per 128 (PCIe Base 6.0 §4.2).
//!
//! Not yet modelled (PCIe-model issue): Ack/UpdateFC DLLPs sharing the opposite direction,
//! flow-control credits, SKP ordered sets, Gen6 FLIT framing (Gen6 is approximated, as the
//! pcie-bench model does, by a 242/256 efficiency).

use model_core::{Span, Tick};
use serde::{Deserialize, Serialize};

/// A PCIe generation: its transfer rate per lane and its line encoding.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum LinkGen {
    /// 2.5 GT/s, 8b/10b (PCIe Base 6.0 §4.2.1).
    Gen1,
    /// 5.0 GT/s, 8b/10b.
    Gen2,
    /// 8.0 GT/s, 128b/130b (§4.2.2).
    Gen3,
    /// 16.0 GT/s, 128b/130b.
    Gen4,
    /// 32.0 GT/s, 128b/130b.
    Gen5,
    /// 64.0 GT/s PAM4 with 256-byte FLITs, 242 useful bytes each (pcie-bench `model/pcie.py`).
    Gen6,
}

/// Why a link configuration is unusable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LinkError {
    /// Generation outside 1..=6.
    #[error("PCIe generation {0} does not exist: expected 1 to 6")]
    BadGeneration(u32),
    /// Width not one the spec allows.
    #[error("link width x{0} is not a PCIe width: expected 1, 2, 4, 8, 12, 16 or 32")]
    BadWidth(u32),
}

impl LinkGen {
    /// The generation numbered `n` (1..=6).
    pub fn from_number(n: u32) -> Result<LinkGen, LinkError> {
        Ok(match n {
            1 => LinkGen::Gen1,
            2 => LinkGen::Gen2,
            3 => LinkGen::Gen3,
            4 => LinkGen::Gen4,
            5 => LinkGen::Gen5,
            6 => LinkGen::Gen6,
            _ => return Err(LinkError::BadGeneration(n)),
        })
    }

    /// Transfer rate per lane in mega-transfers per second (PCIe Base 6.0 §4.2).
    pub const fn mega_transfers(self) -> u64 {
        match self {
            LinkGen::Gen1 => 2_500,
            LinkGen::Gen2 => 5_000,
            LinkGen::Gen3 => 8_000,
            LinkGen::Gen4 => 16_000,
            LinkGen::Gen5 => 32_000,
            LinkGen::Gen6 => 64_000,
        }
    }

    /// Line bits sent per payload bit, as (numerator, denominator).
    pub const fn encoding(self) -> (u64, u64) {
        match self {
            LinkGen::Gen1 | LinkGen::Gen2 => (10, 8),
            LinkGen::Gen3 | LinkGen::Gen4 | LinkGen::Gen5 => (130, 128),
            LinkGen::Gen6 => (256, 242),
        }
    }
}

/// Widths a link may train to (PCIe Base 6.0 §4.2.4.11).
pub const LINK_WIDTHS: [u32; 7] = [1, 2, 4, 8, 12, 16, 32];

/// The static description of one link.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LinkConfig {
    /// Generation (rate and encoding).
    pub gen: LinkGen,
    /// Lanes.
    pub lanes: u32,
    /// Time from the last byte leaving the transmitter to it being usable at the receiver
    /// (PHY and port pipeline both ends; cocotbext-pcie `SimPort` uses 5 ns per port).
    pub port_delay: Span,
}

/// Picoseconds per second, over mega-transfers: 10^12 / 10^6.
const PS_PER_MT: u128 = 1_000_000;

impl LinkConfig {
    /// Builds a configuration, checking the width.
    pub fn new(gen: LinkGen, lanes: u32, port_delay: Span) -> Result<LinkConfig, LinkError> {
        if !LINK_WIDTHS.contains(&lanes) {
            return Err(LinkError::BadWidth(lanes));
        }
        Ok(LinkConfig {
            gen,
            lanes,
            port_delay,
        })
    }

    /// How long `bytes` bytes occupy the link, rounded up to a picosecond:
    /// `bytes × 8 × (enc_num / enc_den) / (MT/s × lanes)` seconds.
    pub fn serialize(&self, bytes: u64) -> Span {
        let (num, den) = self.gen.encoding();
        let numer = u128::from(bytes) * 8 * u128::from(num) * PS_PER_MT;
        let denom =
            u128::from(den) * u128::from(self.gen.mega_transfers()) * u128::from(self.lanes);
        Span::from_ps(u64::try_from(numer.div_ceil(denom)).unwrap_or(u64::MAX))
    }

    /// The link's byte rate after line encoding, per direction, in GB/s (bytes per ns):
    /// the ceiling that no TLP stream can reach, since headers and framing share it.
    pub fn byte_rate_gbps(&self) -> f64 {
        let (num, den) = self.gen.encoding();
        (self.gen.mega_transfers() * u64::from(self.lanes)) as f64 * den as f64
            / (num as f64 * 8.0 * 1_000.0)
    }
}

/// What one direction of a link has carried.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct LinkStats {
    /// TLPs sent.
    pub tlps: u64,
    /// Bytes on the wire, framing included.
    pub wire_bytes: u64,
    /// Total time the direction was busy sending.
    pub busy: Span,
}

/// One direction of a link: a serialiser that TLPs queue behind.
#[derive(Debug, Clone)]
pub struct LinkDirection {
    config: LinkConfig,
    free_at: Tick,
    stats: LinkStats,
}

/// When a transmitted TLP occupies the link and when it arrives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Transmission {
    /// First byte on the wire.
    pub start: Tick,
    /// Last byte on the wire; the direction is free again from here.
    pub end: Tick,
    /// The receiver has the whole TLP.
    pub arrival: Tick,
}

impl LinkDirection {
    /// An idle direction.
    pub fn new(config: LinkConfig) -> LinkDirection {
        LinkDirection {
            config,
            free_at: Tick::ZERO,
            stats: LinkStats::default(),
        }
    }

    /// The configuration.
    pub fn config(&self) -> &LinkConfig {
        &self.config
    }

    /// The first tick at which a new TLP could start.
    pub fn free_at(&self) -> Tick {
        self.free_at
    }

    /// Sends `wire_bytes` bytes offered at `now`: starts when the direction is free.
    pub fn transmit(&mut self, now: Tick, wire_bytes: u64) -> Transmission {
        let start = now.max(self.free_at);
        let busy = self.config.serialize(wire_bytes);
        let end = start + busy;
        self.free_at = end;
        self.stats.tlps += 1;
        self.stats.wire_bytes += wire_bytes;
        self.stats.busy += busy;
        Transmission {
            start,
            end,
            arrival: end + self.config.port_delay,
        }
    }

    /// What this direction has carried.
    pub fn stats(&self) -> LinkStats {
        self.stats
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(gen: u32, lanes: u32) -> LinkConfig {
        LinkConfig::new(LinkGen::from_number(gen).unwrap(), lanes, Span::from_ns(5)).unwrap()
    }

    #[test]
    fn gen1_x1_byte_takes_ten_bit_times_of_400ps() {
        // 2.5 GT/s → 400 ps per bit; 8b/10b → 10 bits per byte = 4 ns per byte.
        assert_eq!(cfg(1, 1).serialize(1), Span::from_ps(4_000));
        assert_eq!(cfg(1, 4).serialize(4), Span::from_ps(4_000));
    }

    #[test]
    fn gen3_x8_uses_128b_130b() {
        // 8 GT/s → 125 ps/bit; 8 × 130/128 bits per byte = 1015.625 ps per lane-byte;
        // 256 bytes over 8 lanes = 32 × 1015.625 = 32500 ps exactly.
        assert_eq!(cfg(3, 8).serialize(256), Span::from_ps(32_500));
        // 20 bytes → 2.5 lane-bytes = 2539.0625 → rounded up.
        assert_eq!(cfg(3, 8).serialize(20), Span::from_ps(2_540));
    }

    #[test]
    fn byte_rate_matches_published_per_lane_figures() {
        // pcie-bench `Gbs`: Gen3 7.877 Gb/s per lane → ×16 / 8 = 15.754 GB/s.
        assert!((cfg(3, 16).byte_rate_gbps() - 15.754).abs() < 0.001);
        assert!((cfg(1, 1).byte_rate_gbps() - 0.25).abs() < 1e-12);
    }

    #[test]
    fn back_to_back_tlps_queue_behind_each_other() {
        let mut d = LinkDirection::new(cfg(1, 1));
        let a = d.transmit(Tick::ZERO, 10);
        let b = d.transmit(Tick::ZERO, 10);
        assert_eq!(a.end, Tick::from_ps(40_000));
        assert_eq!(b.start, a.end);
        assert_eq!(b.arrival, Tick::from_ps(80_000 + 5_000));
        assert_eq!(d.stats().tlps, 2);
    }

    #[test]
    fn bad_widths_and_generations_are_rejected() {
        assert_eq!(LinkGen::from_number(0), Err(LinkError::BadGeneration(0)));
        assert_eq!(LinkGen::from_number(7), Err(LinkError::BadGeneration(7)));
        assert_eq!(
            LinkConfig::new(LinkGen::Gen3, 3, Span::ZERO),
            Err(LinkError::BadWidth(3))
        );
    }
}
