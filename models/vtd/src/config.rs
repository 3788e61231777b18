//! A VT-d unit's configuration: capabilities, cache shapes, latencies and walk slots.

use crate::caches::CacheConfig;
use crate::regs::{CapError, Capabilities};
use model_core::{ClockDomain, Cycles, SetAssocError};

/// How long the unit takes for each thing it does, in its own clock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VtdTiming {
    /// The unit's clock.
    pub clock: ClockDomain,
    /// Request arrival to the context-cache / IOTLB answer.
    pub lookup: Cycles,
    /// A walk's table data arriving to its next read leaving (decode, permission and
    /// reserved-bit checks, paging-structure cache lookup).
    pub walk_step: Cycles,
    /// A fault being decided to it being recorded and the request answered.
    pub fault: Cycles,
    /// One invalidation (descriptor or register command) from fetch to completion.
    pub invalidation: Cycles,
}

impl Default for VtdTiming {
    /// Assumptions (Intel publishes no pipeline latencies): a 1 GHz unit clock, 10 cycles
    /// for a cache lookup, 4 cycles per walk step, 20 cycles to log a fault and 200 cycles
    /// per invalidation. With a ~80 ns DRAM read a 4-level miss costs ~330 ns, which is what
    /// pcie-bench (Neugebauer et al., SIGCOMM 2018, §6.4) measured per IOTLB miss.
    fn default() -> VtdTiming {
        VtdTiming {
            clock: ClockDomain::ONE_GHZ,
            lookup: Cycles(10),
            walk_step: Cycles(4),
            fault: Cycles(20),
            invalidation: Cycles(200),
        }
    }
}

/// One unit's configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VtdConfig {
    /// CAP / ECAP and the host address width.
    pub caps: Capabilities,
    /// Cache shapes.
    pub caches: CacheConfig,
    /// Latencies.
    pub timing: VtdTiming,
    /// Page walks in flight at once (the walker's miss-handling slots).
    pub max_walks: u16,
}

impl Default for VtdConfig {
    fn default() -> VtdConfig {
        VtdConfig {
            caps: Capabilities::default(),
            caches: CacheConfig::default(),
            timing: VtdTiming::default(),
            max_walks: 4,
        }
    }
}

/// A configuration the unit cannot be built with.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VtdConfigError {
    /// An unsupported capability combination.
    #[error("capabilities.{0}")]
    Caps(#[from] CapError),
    /// A cache shape the arrays cannot take.
    #[error("caches: {0}")]
    Cache(#[from] SetAssocError),
    /// No walk slots.
    #[error("max_walks must be at least 1")]
    NoWalkSlots,
}
