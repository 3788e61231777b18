//! Analytic effective bandwidth of DMA over one link (the `snoopsim link-model` table).
//!
//! For a transfer of `size` bytes starting on a 4 KiB boundary, count the bytes each
//! direction of the link must carry and divide the payload by the busier direction's time:
//!
//! * write: upstream, `ceil(size / MPS)` MWr TLPs (header + payload + framing); downstream,
//!   one Ack per `ack_every` and one UpdateFC per `update_fc_every` of those TLPs;
//! * read: upstream, `ceil(size / MRRS)` MRd TLPs plus one Ack per `ack_every` completions;
//!   downstream, the completions (each at most MPS, cut at the RCB — with aligned requests
//!   they are MPS-sized) plus Acks and UpdateFCs for the requests;
//! * mixed: one write and one read of `size` each, sharing both directions.
//!
//! Time per wire byte comes from [`LinkConfig::serialize`]'s rate (encoding, SKP ordered
//! sets or flits). This is exactly what the event simulation charges when nothing else
//! (DRAM, root-complex rate, tags, credits, latency) limits it, so the two must agree; the
//! simulation only rounds each packet up to a picosecond.

use crate::link::LinkConfig;
use crate::tlp::{HEADER_3DW_BYTES, HEADER_4DW_BYTES};
use serde::Serialize;

/// The parameters of a bandwidth table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Params {
    /// The link.
    pub link: LinkConfig,
    /// Max_Payload_Size in bytes.
    pub mps: u32,
    /// Max_Read_Request_Size in bytes.
    pub mrrs: u32,
    /// Requests use 64-bit addresses (4-DW headers).
    pub addr64: bool,
}

/// One row of the table: payload GB/s (bytes per ns) for each pattern.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Row {
    /// Transfer size in bytes.
    pub size: u64,
    /// DMA writes of `size`.
    pub write_gbps: f64,
    /// DMA reads of `size`.
    pub read_gbps: f64,
    /// Alternating writes and reads of `size`.
    pub mixed_gbps: f64,
}

/// Wire bytes carried by each direction for one transfer.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
struct Load {
    up: f64,
    down: f64,
}

impl Params {
    fn header(&self) -> u64 {
        if self.addr64 {
            HEADER_4DW_BYTES
        } else {
            HEADER_3DW_BYTES
        }
    }

    /// Payload sizes of the packets `size` bytes are cut into at `limit`, DW-rounded.
    fn cuts(size: u64, limit: u64) -> impl Iterator<Item = u64> {
        let n = size.div_ceil(limit);
        (0..n).map(move |i| (size - i * limit).min(limit).div_ceil(4) * 4)
    }

    fn dllps(&self, tlps: f64, every: u32) -> f64 {
        tlps / f64::from(every) * self.link.dllp_wire_bytes() as f64
    }

    fn write(&self, size: u64) -> Load {
        let l = &self.link;
        let mut up = 0.0;
        let mut n = 0.0;
        for p in Self::cuts(size, u64::from(self.mps)) {
            up += l.tlp_wire_bytes(self.header() + p) as f64;
            n += 1.0;
        }
        let down = self.dllps(n, l.dllp.ack_every) + self.dllps(n, l.dllp.update_fc_every);
        Load { up, down }
    }

    fn read(&self, size: u64) -> Load {
        let l = &self.link;
        let (mut up, mut down) = (0.0, 0.0);
        let (mut requests, mut completions) = (0.0, 0.0);
        for r in Self::cuts(size, u64::from(self.mrrs)) {
            up += l.tlp_wire_bytes(self.header()) as f64;
            requests += 1.0;
            for c in Self::cuts(r, u64::from(self.mps)) {
                down += l.tlp_wire_bytes(HEADER_3DW_BYTES + c) as f64;
                completions += 1.0;
            }
        }
        up += self.dllps(completions, l.dllp.ack_every);
        down +=
            self.dllps(requests, l.dllp.ack_every) + self.dllps(requests, l.dllp.update_fc_every);
        Load { up, down }
    }

    /// Picoseconds per wire byte.
    fn ps_per_byte(&self) -> f64 {
        // serialize() of a large count gives the rate without per-packet rounding.
        const N: u64 = 1 << 30;
        self.link.serialize(N).as_ps() as f64 / N as f64
    }

    fn gbps(&self, payload: u64, load: Load) -> f64 {
        let ps = load.up.max(load.down) * self.ps_per_byte();
        if ps > 0.0 {
            payload as f64 * 1_000.0 / ps
        } else {
            0.0
        }
    }

    /// The table row for transfers of `size` bytes (≥ 1).
    pub fn row(&self, size: u64) -> Row {
        let (w, r) = (self.write(size), self.read(size));
        let mixed = Load {
            up: w.up + r.up,
            down: w.down + r.down,
        };
        Row {
            size,
            write_gbps: self.gbps(size, w),
            read_gbps: self.gbps(size, r),
            mixed_gbps: self.gbps(2 * size, mixed),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::link::{DllpPolicy, LinkGen};
    use model_core::Span;

    fn gen3x8() -> Params {
        Params {
            link: LinkConfig::new(LinkGen::Gen3, 8, Span::ZERO, DllpPolicy::default()).unwrap(),
            mps: 256,
            mrrs: 512,
            addr64: false,
        }
    }

    #[test]
    fn gen3_x8_mps256_writes_match_a_hand_calculation() {
        // Raw: 8 GT/s × 8 lanes × 128/130 / 8 = 7.876923 GB/s; SKP leaves 371/372 of it.
        // A 4096-byte write: 16 MWr of 256 B, each 12 + 256 + 8 = 276 wire bytes = 4416 up.
        // Downstream only DLLPs (16/4 Acks + 16/4 UpdateFCs = 64 bytes), so upstream bounds:
        // 4096 / (4416 / (7.876923 × 371/372)) = 7.287 GB/s.
        let raw = 8.0 * 8.0 * 128.0 / 130.0 / 8.0;
        let want = 4096.0 / (4416.0 / (raw * 371.0 / 372.0));
        let got = gen3x8().row(4096).write_gbps;
        assert!((got - want).abs() < 1e-6, "{got} vs {want}");
        assert!((got - 7.287).abs() < 0.001);
    }

    #[test]
    fn reads_are_bounded_by_completions_downstream() {
        // 4096-byte read: 8 MRd up (8 × 20 = 160) + Acks for 16 CplD (4 × 8 = 32);
        // down: 16 CplD × (12 + 256 + 8) = 4416, + Acks and UpdateFCs for 8 MRd (2 + 2) × 8.
        let p = gen3x8();
        let raw = 8.0 * 8.0 * 128.0 / 130.0 / 8.0 * 371.0 / 372.0;
        let want = 4096.0 / ((4416.0 + 32.0) / raw);
        assert!((p.row(4096).read_gbps - want).abs() < 1e-6);
    }

    fn params(gen: LinkGen, lanes: u32, mps: u32, mrrs: u32) -> Params {
        Params {
            link: LinkConfig::new(gen, lanes, Span::ZERO, DllpPolicy::default()).unwrap(),
            mps,
            mrrs,
            addr64: false,
        }
    }

    #[test]
    fn gen1_x1_mps128_writes_match_a_hand_calculation() {
        // 8b/10b at 2.5 GT/s: 4 ns per byte, SKP: 4 symbols in every 1538 → × 1538/1534.
        // 4096 B = 32 MWr of 12 + 128 + 8 = 148 wire bytes = 4736 up; downstream only
        // 8 Acks + 8 UpdateFCs = 128 bytes. 4096 / (4736 × 4 × 1538/1534) GB/s.
        let want = 4096.0 / (4736.0 * 4.0 * 1538.0 / 1534.0);
        let got = params(LinkGen::Gen1, 1, 128, 128).row(4096).write_gbps;
        assert!((got - want).abs() < 1e-9, "{got} vs {want}");
        assert!((got - 0.2156).abs() < 0.0001);
    }

    #[test]
    fn gen6_flit_mode_writes_match_a_hand_calculation() {
        // 64 Gb/s × 16 lanes = 128 B/ns raw; 236 TLP bytes per 256-byte flit; no per-TLP
        // framing, DLLPs inside the flits. 16 MWr of 12 + 256 = 4288 bytes:
        // 4096 / (4288 × 256/236 / 128) = 112.71 GB/s.
        let want = 4096.0 / (4288.0 * 256.0 / 236.0 / 128.0);
        let got = params(LinkGen::Gen6, 16, 256, 512).row(4096).write_gbps;
        assert!((got - want).abs() < 1e-6, "{got} vs {want}");
    }

    #[test]
    fn gen3_x8_reads_with_mps128_are_bounded_by_128_byte_completions() {
        // MRRS 512 → 8 MRd; each answered by 4 CplD of 128 B (RCB 64 divides 128).
        // Down: 32 × (12 + 128 + 8) = 4736, + Acks and UpdateFCs for 8 MRd (2 + 2) × 8 = 4768.
        // Up: 8 × 20 + Acks for 32 CplD (8 × 8) = 224. Per byte on x8:
        // 1015.625 / 8 ps × 372/371.
        let ps_per_byte = 1015.625 / 8.0 * 372.0 / 371.0;
        let want = 4096.0 * 1000.0 / (4768.0 * ps_per_byte);
        let got = params(LinkGen::Gen3, 8, 128, 512).row(4096).read_gbps;
        assert!((got - want).abs() < 1e-6, "{got} vs {want}");
    }

    #[test]
    fn small_transfers_pay_more_overhead_and_mixed_uses_both_directions() {
        let p = gen3x8();
        let (small, big) = (p.row(64), p.row(4096));
        assert!(small.write_gbps < big.write_gbps);
        assert!(
            big.mixed_gbps > big.write_gbps,
            "mixed traffic fills both directions"
        );
        assert!(big.mixed_gbps < 2.0 * big.write_gbps);
    }

    #[test]
    fn cuts_follow_mps_and_round_to_dwords() {
        let v: Vec<u64> = Params::cuts(1500, 256).collect();
        assert_eq!(v, vec![256, 256, 256, 256, 256, 220]);
        let v: Vec<u64> = Params::cuts(6, 256).collect();
        assert_eq!(v, vec![8]);
    }
}
