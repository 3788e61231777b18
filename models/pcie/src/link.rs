//! Link timing: how long TLPs and DLLPs occupy one direction of a link.
//!
//! Three layers of overhead sit between a TLP and the wire:
//! * per packet: a TLP carries a sequence number, an LCRC and framing — 8 bytes in all for
//!   Gen1-5 (PCIe Base 6.0 §3.6 and §4.2; pcie-bench `DLLP_Hdr = 8`); a DLLP is 8 bytes on
//!   the wire (6 bytes plus framing; cocotbext-pcie `Dllp.get_wire_size`);
//! * line encoding: 8b/10b (Gen1-2) sends 10 bits per byte; 128b/130b (Gen3-5) 130 per 128;
//! * ordered sets: SKP ordered sets interrupt data at a fixed rate — Gen1-2: 4 symbols every
//!   1538 symbol times (the upper bound of the 1180-1538 interval, as pcie-bench uses);
//!   Gen3-5: one 16-symbol SKP block every 372 blocks (the 370-375 block interval of the
//!   128b/130b SKP rules).
//!
//! Gen6 runs in FLIT mode: 256-byte flits of 236 TLP bytes, 6 DLLP-payload bytes, 8 CRC and
//! 6 FEC bytes (PCIe Base 6.0 §4.2.3.4; the byte split is UNCONFIRMED against the spec text,
//! and agrees with pcie-bench's 242/256). TLPs carry no per-packet framing, sequence number or
//! LCRC, and Acks and flow-control updates ride in the DLLP-payload bytes, so they cost no
//! extra link time. Flit-mode TLP header formats (§2.2.1.2) differ from the non-flit ones;
//! this model keeps the non-flit header sizes (UNCONFIRMED simplification).
//!
//! Bytes are striped over the lanes; a TLP of `n` bytes takes `n / lanes` byte times, rounded
//! up to a picosecond. TLPs in one direction queue behind each other; the receiver has a TLP
//! one port delay after its last byte left.

use crate::fc::Need;
use crate::ordering::{OrderedQueue, OrderingInfo, YnPolicy};
use crate::tlp::Tlp;
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
    /// 64.0 GT/s PAM4, FLIT mode (§4.2.3).
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
    /// An Ack or UpdateFC ratio of zero.
    #[error("DLLP ratio must be at least one TLP per DLLP")]
    ZeroRatio,
}

/// Bytes a DLLP occupies on a non-flit link: 6 bytes (type, payload, 16-bit CRC; PCIe Base
/// 6.0 §3.5.1) plus framing — SDP and END symbols at 8b/10b, a 2-byte SDP token at
/// 128b/130b (§4.2.2.3; token sizes UNCONFIRMED, the 8-byte total is cocotbext-pcie's
/// `Dllp.get_wire_size` and pcie-bench's `Ack_Size`).
pub const DLLP_WIRE_BYTES: u64 = 8;
/// Per-TLP overhead on a non-flit link: the 2-byte sequence number and 4-byte LCRC of the
/// data link layer (§3.6.2) plus physical framing — STP and END symbols at 8b/10b; at
/// 128b/130b a 4-byte STP token that carries the sequence number, so again 8 bytes in all
/// (§4.2.2.3; the token layout UNCONFIRMED, the total is pcie-bench's `DLLP_Hdr = 8`).
pub const TLP_FRAMING_BYTES: u64 = 8;
/// FLIT size and the TLP bytes each flit carries (PCIe Base 6.0 §4.2.3.4; UNCONFIRMED split).
pub const FLIT_BYTES: u64 = 256;
/// TLP bytes per flit.
pub const FLIT_TLP_BYTES: u64 = 236;

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

    /// The generation's number.
    pub const fn number(self) -> u32 {
        match self {
            LinkGen::Gen1 => 1,
            LinkGen::Gen2 => 2,
            LinkGen::Gen3 => 3,
            LinkGen::Gen4 => 4,
            LinkGen::Gen5 => 5,
            LinkGen::Gen6 => 6,
        }
    }

    /// Transfer rate per lane in mega-transfers (megabits) per second (PCIe Base 6.0 §4.2).
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

    /// Line bits per data bit, as (numerator, denominator): 10/8 for 8b/10b, 130/128 for
    /// 128b/130b, 1 in FLIT mode (whose overhead is counted per flit).
    pub const fn encoding(self) -> (u64, u64) {
        match self {
            LinkGen::Gen1 | LinkGen::Gen2 => (10, 8),
            LinkGen::Gen3 | LinkGen::Gen4 | LinkGen::Gen5 => (130, 128),
            LinkGen::Gen6 => (1, 1),
        }
    }

    /// Link time per data byte time, as (numerator, denominator): SKP ordered sets for
    /// Gen1-5, flit overhead (256 bytes per 236 TLP bytes) for Gen6.
    pub const fn framing_stretch(self) -> (u64, u64) {
        match self {
            LinkGen::Gen1 | LinkGen::Gen2 => (1538, 1534),
            LinkGen::Gen3 | LinkGen::Gen4 | LinkGen::Gen5 => (372, 371),
            LinkGen::Gen6 => (FLIT_BYTES, FLIT_TLP_BYTES),
        }
    }

    /// FLIT mode: no per-TLP framing, DLLP information carried inside flits.
    pub const fn flit_mode(self) -> bool {
        matches!(self, LinkGen::Gen6)
    }
}

/// Widths a link may train to (PCIe Base 6.0 §4.2.4.11).
pub const LINK_WIDTHS: [u32; 7] = [1, 2, 4, 8, 12, 16, 32];

/// How often a receiver sends DLLPs back on the opposite direction.
///
/// Real ports send an Ack when their AckNak latency timer expires and an UpdateFC when
/// credits free up or a timer fires; counting TLPs is the model's stand-in ("configurable
/// ratios"). pcie-bench's Ack-limit table gives, for Gen3 x8 MPS 256, an Ack every 203
/// symbol times ≈ every 6 MWr TLPs of 276 bytes; the default of 4 sits on the busy side.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DllpPolicy {
    /// TLPs received per Ack DLLP sent.
    pub ack_every: u32,
    /// TLPs' worth of freed credits per UpdateFC DLLP sent.
    pub update_fc_every: u32,
}

impl Default for DllpPolicy {
    fn default() -> DllpPolicy {
        DllpPolicy {
            ack_every: 4,
            update_fc_every: 4,
        }
    }
}

/// A receiver's Ack schedule: one Ack DLLP per `every` TLPs received.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AckCounter {
    every: u32,
    pending: u32,
}

impl AckCounter {
    /// Acks every `every` TLPs (at least 1).
    pub fn new(every: u32) -> AckCounter {
        AckCounter {
            every: every.max(1),
            pending: 0,
        }
    }

    /// A TLP was received; `true` when an Ack is due now.
    pub fn received(&mut self) -> bool {
        self.pending += 1;
        if self.pending >= self.every {
            self.pending = 0;
            true
        } else {
            false
        }
    }
}

/// The static description of one link.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LinkConfig {
    /// Generation (rate and encoding).
    pub gen: LinkGen,
    /// Lanes.
    pub lanes: u32,
    /// Time from the last byte leaving the transmitter to it being usable at the receiver
    /// (PHY and port pipelines of both ends; cocotbext-pcie `SimPort` uses 5 ns per port).
    pub port_delay: Span,
    /// DLLP ratios.
    pub dllp: DllpPolicy,
}

/// Picoseconds per second over mega-transfers per second: 10^12 / 10^6.
const PS_PER_MT: u128 = 1_000_000;

impl LinkConfig {
    /// Builds a configuration, checking the width and ratios.
    pub fn new(
        gen: LinkGen,
        lanes: u32,
        port_delay: Span,
        dllp: DllpPolicy,
    ) -> Result<LinkConfig, LinkError> {
        if !LINK_WIDTHS.contains(&lanes) {
            return Err(LinkError::BadWidth(lanes));
        }
        if dllp.ack_every == 0 || dllp.update_fc_every == 0 {
            return Err(LinkError::ZeroRatio);
        }
        Ok(LinkConfig {
            gen,
            lanes,
            port_delay,
            dllp,
        })
    }

    /// Bytes on the wire for a TLP of `tlp_bytes` transaction-layer bytes (header, payload,
    /// ECRC): adds sequence number, LCRC and framing, except in FLIT mode.
    pub fn tlp_wire_bytes(&self, tlp_bytes: u64) -> u64 {
        if self.gen.flit_mode() {
            tlp_bytes
        } else {
            tlp_bytes + TLP_FRAMING_BYTES
        }
    }

    /// Bytes on the wire for one DLLP: 8, or none in FLIT mode (carried inside flits).
    pub fn dllp_wire_bytes(&self) -> u64 {
        if self.gen.flit_mode() {
            0
        } else {
            DLLP_WIRE_BYTES
        }
    }

    /// How long `bytes` wire bytes occupy the link, rounded up to a picosecond:
    /// `bytes × 8 × encoding × stretch / (MT/s × lanes)`.
    pub fn serialize(&self, bytes: u64) -> Span {
        let (en, ed) = self.gen.encoding();
        let (sn, sd) = self.gen.framing_stretch();
        let numer = u128::from(bytes) * 8 * u128::from(en) * u128::from(sn) * PS_PER_MT;
        let denom = u128::from(ed)
            * u128::from(sd)
            * u128::from(self.gen.mega_transfers())
            * u128::from(self.lanes);
        Span::from_ps(u64::try_from(numer.div_ceil(denom)).unwrap_or(u64::MAX))
    }

    /// The link's byte rate after line encoding, per direction, in GB/s (bytes per ns),
    /// before ordered sets, flit, DLLP and TLP overheads.
    pub fn raw_gbps(&self) -> f64 {
        let (en, ed) = self.gen.encoding();
        (self.gen.mega_transfers() * u64::from(self.lanes)) as f64 * ed as f64
            / (en as f64 * 8.0 * 1_000.0)
    }

    /// The byte rate left for TLP and DLLP bytes once ordered sets (or flit overhead) are
    /// taken out, in GB/s.
    pub fn data_gbps(&self) -> f64 {
        let (sn, sd) = self.gen.framing_stretch();
        self.raw_gbps() * sd as f64 / sn as f64
    }
}

/// What one direction of a link has carried.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct LinkStats {
    /// TLPs sent.
    pub tlps: u64,
    /// DLLPs sent (Acks and UpdateFCs).
    pub dllps: u64,
    /// Bytes on the wire, framing included.
    pub wire_bytes: u64,
    /// Total time the direction was busy sending.
    pub busy: Span,
}

/// One direction of a link: a serialiser that packets queue behind.
#[derive(Debug, Clone)]
pub struct LinkDirection {
    config: LinkConfig,
    free_at: Tick,
    stats: LinkStats,
}

/// When a transmitted packet occupies the link and when it arrives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Transmission {
    /// First byte on the wire.
    pub start: Tick,
    /// Last byte on the wire; the direction is free again from here.
    pub end: Tick,
    /// The receiver has the whole packet.
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

    /// The first tick at which a new packet could start.
    pub fn free_at(&self) -> Tick {
        self.free_at
    }

    fn occupy(&mut self, now: Tick, wire_bytes: u64) -> Transmission {
        let start = now.max(self.free_at);
        let busy = self.config.serialize(wire_bytes);
        let end = start + busy;
        self.free_at = end;
        self.stats.wire_bytes += wire_bytes;
        self.stats.busy += busy;
        Transmission {
            start,
            end,
            arrival: end + self.config.port_delay,
        }
    }

    /// Sends a TLP of `tlp_bytes` transaction-layer bytes offered at `now`; it starts when
    /// the direction is free.
    pub fn transmit_tlp(&mut self, now: Tick, tlp_bytes: u64) -> Transmission {
        self.stats.tlps += 1;
        let wire = self.config.tlp_wire_bytes(tlp_bytes);
        self.occupy(now, wire)
    }

    /// Sends a DLLP offered at `now`.
    pub fn transmit_dllp(&mut self, now: Tick) -> Transmission {
        self.stats.dllps += 1;
        let wire = self.config.dllp_wire_bytes();
        self.occupy(now, wire)
    }

    /// What this direction has carried.
    pub fn stats(&self) -> LinkStats {
        self.stats
    }
}

/// A transmitter: one direction of a link with its queues of packets waiting to go.
///
/// DLLPs go before waiting TLPs — after the packet on the wire, never interrupting it — as
/// the data link layer's recommended transmission priority orders them (PCIe Base 6.0 §3.5:
/// Ack and UpdateFC DLLPs ahead of TLPs), so credit returns and Acks do not wait behind a
/// backlog of completions. Waiting TLPs leave in the order the transaction ordering rules
/// allow ([`crate::ordering::OrderedQueue`]): one that lacks flow-control credits holds back
/// only what may not pass it. Items are the caller's tokens; the transmitter only times them.
///
/// Call order: `push_*` to queue; whenever the wire is free (at [`Self::free_at`]) call
/// [`Self::next_queued`] — and, if it gives nothing, offer a TLP from a source that is polled
/// rather than queued (an endpoint's DMA engine) with [`Self::send_tlp`].
#[derive(Debug, Clone)]
pub struct Transmitter<T> {
    wire: LinkDirection,
    dllps: std::collections::VecDeque<T>,
    tlps: OrderedQueue<(T, u64, Need)>,
}

/// A packet that went on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sent<T> {
    /// The caller's token.
    pub item: T,
    /// Its timing.
    pub at: Transmission,
    /// For a TLP, the credits it consumes at the receiver.
    pub need: Option<Need>,
}

impl<T> Transmitter<T> {
    /// An idle transmitter.
    pub fn new(config: LinkConfig) -> Transmitter<T> {
        Transmitter {
            wire: LinkDirection::new(config),
            dllps: std::collections::VecDeque::new(),
            tlps: OrderedQueue::new(YnPolicy::Pass),
        }
    }

    /// The link's configuration.
    pub fn config(&self) -> &LinkConfig {
        self.wire.config()
    }

    /// When the packet on the wire ends.
    pub fn free_at(&self) -> Tick {
        self.wire.free_at()
    }

    /// Queues a DLLP.
    pub fn push_dllp(&mut self, item: T) {
        self.dllps.push_back(item);
    }

    /// Queues `tlp` under the token `item`.
    pub fn push_tlp(&mut self, item: T, tlp: &Tlp) {
        let info = OrderingInfo::of(tlp);
        self.tlps.push((item, tlp.tlp_bytes(), Need::of(tlp)), info);
    }

    /// Packets waiting.
    pub fn queued(&self) -> usize {
        self.dllps.len() + self.tlps.len()
    }

    /// Starts the next packet at `now`, if the wire is free: a DLLP if one waits, else the
    /// oldest TLP that the ordering rules let go and whose credits `has_credit` confirms.
    pub fn next_queued(
        &mut self,
        now: Tick,
        mut has_credit: impl FnMut(&Need) -> bool,
    ) -> Option<Sent<T>> {
        if self.wire.free_at() > now {
            return None;
        }
        if let Some(item) = self.dllps.pop_front() {
            let at = self.wire.transmit_dllp(now);
            return Some(Sent {
                item,
                at,
                need: None,
            });
        }
        let ((item, bytes, need), _) = self.tlps.pop_sendable_by(|(_, _, n), _| has_credit(n))?;
        let at = self.wire.transmit_tlp(now, bytes);
        Some(Sent {
            item,
            at,
            need: Some(need),
        })
    }

    /// Sends a TLP that was not queued, if the wire is free and nothing queued waits.
    pub fn send_tlp(&mut self, now: Tick, tlp_bytes: u64) -> Option<Transmission> {
        (self.wire.free_at() <= now && self.queued() == 0)
            .then(|| self.wire.transmit_tlp(now, tlp_bytes))
    }

    /// What this direction has carried.
    pub fn stats(&self) -> LinkStats {
        self.wire.stats()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(gen: u32, lanes: u32) -> LinkConfig {
        LinkConfig::new(
            LinkGen::from_number(gen).unwrap(),
            lanes,
            Span::from_ns(5),
            DllpPolicy::default(),
        )
        .unwrap()
    }

    #[test]
    fn gen1_byte_is_ten_bit_times_stretched_by_skp() {
        // 2.5 GT/s → 400 ps per bit; 8b/10b → 4 ns per byte; SKP: × 1538/1534.
        // 1534 bytes on x1 → exactly 1538 × 4 ns.
        assert_eq!(cfg(1, 1).serialize(1534), Span::from_ns(1538 * 4));
        assert_eq!(cfg(1, 4).serialize(4 * 1534), Span::from_ns(1538 * 4));
    }

    #[test]
    fn gen3_byte_is_130_over_128_bits_stretched_by_one_skp_block_in_372() {
        // 8 GT/s → 125 ps/bit; 8 × 130/128 bits = 1015.625 ps per lane-byte; × 372/371.
        // 371 × 8 lanes × 128 bytes → 371 × 128 lane-bytes × 1015.625 × 372/371
        //   = 372 × 128 × 1015.625 ps = 48_360_000 ps.
        assert_eq!(
            cfg(3, 8).serialize(371 * 8 * 128),
            Span::from_ps(48_360_000)
        );
    }

    #[test]
    fn gen6_flit_mode_has_no_tlp_framing_and_free_dllps() {
        let c = cfg(6, 16);
        assert_eq!(c.tlp_wire_bytes(12), 12);
        assert_eq!(c.dllp_wire_bytes(), 0);
        // 236 TLP bytes fill one 256-byte flit: 256 × 8 bits / (64 Gb/s × 16) = 2 ns.
        assert_eq!(c.serialize(236 * 16), Span::from_ns(32));
        assert!((c.raw_gbps() - 128.0).abs() < 1e-9);
        assert!((c.data_gbps() - 128.0 * 236.0 / 256.0).abs() < 1e-9);
    }

    #[test]
    fn raw_rate_matches_published_per_lane_figures() {
        // pcie-bench `Gbs`: Gen3 7.877 Gb/s per lane → ×16 / 8 = 15.754 GB/s.
        assert!((cfg(3, 16).raw_gbps() - 15.754).abs() < 0.001);
        assert!((cfg(1, 1).raw_gbps() - 0.25).abs() < 1e-12);
        assert!((cfg(5, 16).raw_gbps() - 63.015).abs() < 0.001);
    }

    #[test]
    fn packets_queue_behind_each_other_and_dllps_take_link_time() {
        let mut d = LinkDirection::new(cfg(1, 1));
        let a = d.transmit_tlp(Tick::ZERO, 12);
        let b = d.transmit_dllp(Tick::ZERO);
        assert_eq!(b.start, a.end);
        assert_eq!(b.end.saturating_since(b.start), cfg(1, 1).serialize(8));
        assert_eq!(b.arrival, b.end + Span::from_ns(5));
        let st = d.stats();
        assert_eq!((st.tlps, st.dllps, st.wire_bytes), (1, 1, 20 + 8));
    }

    fn cpl(tag: u16) -> Tlp {
        let req = Tlp {
            kind: crate::tlp::TlpKind::MemRead,
            requester: model_core::Bdf::from_raw(0x100),
            tag,
            tc: 0,
            attr: crate::tlp::Attr::default(),
            at: crate::tlp::AddressType::Untranslated,
            pasid: None,
            td: false,
            address: 0x1000,
            length_dw: 1,
            first_be: 0xf,
            last_be: 0,
            payload: bytes::Bytes::new(),
        };
        crate::rc::completions_for(
            &req,
            model_core::Bdf::from_raw(0),
            128,
            64,
            &bytes::Bytes::from(vec![0; 4]),
        )
        .remove(0)
    }

    #[test]
    fn dllps_overtake_waiting_tlps_but_not_the_one_on_the_wire() {
        let mut t = Transmitter::new(cfg(1, 1));
        t.push_tlp("cpl0", &cpl(0));
        t.push_tlp("cpl1", &cpl(1));
        let first = t.next_queued(Tick::ZERO, |_| true).unwrap();
        assert_eq!(first.item, "cpl0");
        assert_eq!(first.need.map(|n| n.data), Some(1));
        t.push_dllp("updatefc");
        assert!(t.next_queued(Tick::ZERO, |_| true).is_none(), "wire busy");
        let next = t.next_queued(first.at.end, |_| true).unwrap();
        assert_eq!(next.item, "updatefc", "the DLLP goes before cpl1");
        assert!(t.send_tlp(next.at.end, 20).is_none(), "cpl1 still waits");
        assert!(
            t.next_queued(next.at.end, |_| false).is_none(),
            "no credit, no TLP"
        );
        assert_eq!(t.next_queued(next.at.end, |_| true).unwrap().item, "cpl1");
        assert!(t.send_tlp(t.free_at(), 20).is_some());
    }

    #[test]
    fn d2a_a_completion_waits_behind_a_posted_write_without_credits_unless_it_has_ro() {
        use crate::fc::FcClass;
        let mut mmio = cpl(9);
        mmio.kind = crate::tlp::TlpKind::MemWrite;
        mmio.address = 0xfe00_0000;
        let no_posted = |n: &Need| n.class != FcClass::Posted;
        let mut t = Transmitter::new(cfg(3, 8));
        t.push_tlp("mmio", &mmio);
        t.push_tlp("cpl", &cpl(1));
        assert!(
            t.next_queued(Tick::ZERO, no_posted).is_none(),
            "D2a: the completion may not pass the blocked posted write"
        );
        let mut ro = cpl(2);
        ro.attr.relaxed_ordering = true;
        t.push_tlp("cpl-ro", &ro);
        let sent = t.next_queued(Tick::ZERO, no_posted).unwrap();
        assert_eq!(sent.item, "cpl-ro", "D2b: with RO it may");
        let at = t.free_at();
        assert_eq!(t.next_queued(at, |_| true).unwrap().item, "mmio");
        assert_eq!(t.next_queued(t.free_at(), |_| true).unwrap().item, "cpl");
    }

    #[test]
    fn acks_go_out_every_n_tlps() {
        let mut a = AckCounter::new(3);
        let due: Vec<bool> = (0..7).map(|_| a.received()).collect();
        assert_eq!(due, [false, false, true, false, false, true, false]);
    }

    #[test]
    fn bad_widths_generations_and_ratios_are_rejected() {
        assert_eq!(LinkGen::from_number(0), Err(LinkError::BadGeneration(0)));
        assert_eq!(LinkGen::from_number(7), Err(LinkError::BadGeneration(7)));
        let d = DllpPolicy::default();
        assert_eq!(
            LinkConfig::new(LinkGen::Gen3, 3, Span::ZERO, d),
            Err(LinkError::BadWidth(3))
        );
        let zero = DllpPolicy { ack_every: 0, ..d };
        assert_eq!(
            LinkConfig::new(LinkGen::Gen3, 4, Span::ZERO, zero),
            Err(LinkError::ZeroRatio)
        );
    }
}
