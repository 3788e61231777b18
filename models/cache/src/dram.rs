//! DRAM: a fixed access latency behind one shared channel.
//!
//! An access of `n` bytes waits for the channel, holds it for `n / bandwidth`, and is
//! performed `latency` after its transfer ends:
//! `done = max(now, channel_free) + n / bandwidth + latency`. The channel is what makes DMA,
//! CPU misses and page walks contend. Banks, rows and refresh are not modelled.

use model_core::{PhysAddr, Span, SparseMemory, Tick};
use serde::Serialize;

/// Load-to-use latency of a DRAM access on a current server part: about 80 ns idle
/// (Intel Memory Latency Checker idle latency, widely published for Skylake-SP to
/// Sapphire Rapids at 70–90 ns).
pub const DEFAULT_LATENCY: Span = Span::from_ns(80);
/// One DDR4-3200 channel: 3200 MT/s × 8 bytes = 25.6 GB/s peak (JEDEC JESD79-4).
pub const DEFAULT_BANDWIDTH_MBPS: u64 = 25_600;

/// Static configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DramConfig {
    /// From the start of the transfer to the data being available / the write performed.
    pub latency: Span,
    /// Channel bandwidth in megabytes (10^6 B) per second.
    pub bandwidth_mbps: u64,
}

/// A configuration DRAM cannot have.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DramError {
    /// Zero bandwidth would never finish an access.
    #[error("DRAM bandwidth must be above 0 MB/s")]
    ZeroBandwidth,
}

impl DramConfig {
    /// Checks the configuration.
    pub fn new(latency: Span, bandwidth_mbps: u64) -> Result<DramConfig, DramError> {
        if bandwidth_mbps == 0 {
            return Err(DramError::ZeroBandwidth);
        }
        Ok(DramConfig {
            latency,
            bandwidth_mbps,
        })
    }

    /// Time `bytes` bytes hold the channel: `bytes / (MB/s × 10^6)` s, rounded up to 1 ps.
    pub fn transfer(&self, bytes: u64) -> Span {
        let ps = (u128::from(bytes) * 1_000_000).div_ceil(u128::from(self.bandwidth_mbps.max(1)));
        Span::from_ps(u64::try_from(ps).unwrap_or(u64::MAX))
    }
}

impl Default for DramConfig {
    fn default() -> DramConfig {
        DramConfig {
            latency: DEFAULT_LATENCY,
            bandwidth_mbps: DEFAULT_BANDWIDTH_MBPS,
        }
    }
}

/// Counters for reports.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct DramStats {
    /// Read accesses.
    pub reads: u64,
    /// Write accesses.
    pub writes: u64,
    /// Bytes read.
    pub bytes_read: u64,
    /// Bytes written.
    pub bytes_written: u64,
    /// Total time accesses waited for the channel.
    pub queueing: Span,
}

/// DRAM timing and contents.
#[derive(Debug, Clone)]
pub struct Dram {
    config: DramConfig,
    channel_free: Tick,
    mem: SparseMemory,
    stats: DramStats,
}

impl Dram {
    /// Zeroed memory with an idle channel.
    pub fn new(config: DramConfig) -> Dram {
        Dram {
            config,
            channel_free: Tick::ZERO,
            mem: SparseMemory::new(),
            stats: DramStats::default(),
        }
    }

    /// The configuration.
    pub fn config(&self) -> &DramConfig {
        &self.config
    }

    /// Counters.
    pub fn stats(&self) -> DramStats {
        self.stats
    }

    /// The stored bytes (for checkers and tests; no timing).
    pub fn contents(&self) -> &SparseMemory {
        &self.mem
    }

    fn occupy(&mut self, now: Tick, bytes: u64) -> Tick {
        let start = now.max(self.channel_free);
        let transfer = self.config.transfer(bytes);
        self.stats.queueing += start.saturating_since(now);
        self.channel_free = start + transfer;
        start + transfer + self.config.latency
    }

    /// Reads `buf.len()` bytes at `pa`, offered at `now`; returns when the data is available.
    /// The bytes are those in memory at call time.
    pub fn read(&mut self, now: Tick, pa: PhysAddr, buf: &mut [u8]) -> Tick {
        self.stats.reads += 1;
        self.stats.bytes_read += buf.len() as u64;
        self.mem.read(pa, buf);
        self.occupy(now, buf.len() as u64)
    }

    /// Writes `data` at `pa`, offered at `now`; returns when the write is performed.
    /// The bytes are stored at call time.
    pub fn write(&mut self, now: Tick, pa: PhysAddr, data: &[u8]) -> Tick {
        self.stats.writes += 1;
        self.stats.bytes_written += data.len() as u64;
        self.mem.write(pa, data);
        self.occupy(now, data.len() as u64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dram() -> Dram {
        // 1000 MB/s → 1 ns per byte, 50 ns latency: easy numbers.
        Dram::new(DramConfig::new(Span::from_ns(50), 1_000).unwrap())
    }

    #[test]
    fn an_idle_access_costs_latency_plus_transfer() {
        let mut d = dram();
        let done = d.write(Tick::from_ps(1_000), PhysAddr(0x40), &[1; 64]);
        assert_eq!(done, Tick::from_ps(1_000 + 64_000 + 50_000));
    }

    #[test]
    fn accesses_queue_on_the_channel_and_latency_overlaps() {
        let mut d = dram();
        let a = d.write(Tick::ZERO, PhysAddr(0), &[0; 64]);
        let b = d.write(Tick::ZERO, PhysAddr(64), &[0; 64]);
        assert_eq!(a, Tick::from_ps(114_000));
        // The second waits 64 ns for the channel, then transfers; its latency overlaps.
        assert_eq!(b, Tick::from_ps(178_000));
        assert_eq!(d.stats().queueing, Span::from_ns(64));
    }

    #[test]
    fn data_written_is_read_back() {
        let mut d = dram();
        d.write(Tick::ZERO, PhysAddr(0x1000), &[9, 8, 7]);
        let mut buf = [0; 3];
        d.read(Tick::ZERO, PhysAddr(0x1000), &mut buf);
        assert_eq!(buf, [9, 8, 7]);
    }

    #[test]
    fn zero_bandwidth_is_a_configuration_error() {
        assert_eq!(
            DramConfig::new(Span::ZERO, 0),
            Err(DramError::ZeroBandwidth)
        );
    }
}
