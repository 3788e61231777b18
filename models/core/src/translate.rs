//! The interface between the root complex and an IOMMU.
//!
//! A [`TranslationAgent`] turns the IOVA of an upstream memory request into a host physical
//! address, or refuses it with a [`TranslationFault`]. The result also carries
//! [`Translation::forces_snoop`], the IOMMU's half of the effective snoop decision
//! (DESIGN.md): `snooped = !tlp.no_snoop || forces_snoop || platform.ignores_no_snoop`.
//!
//! The interface is sans-IO, like every model: the system hands the agent a request with
//! [`TranslationAgent::request`] at the tick it reaches the IOMMU, then drains
//! [`TranslationAgent::poll_output`]. An agent with caches and page walks does not hide its
//! memory traffic inside a latency: it asks for each table read with
//! [`AgentOutput::MemRead`], which the system performs through the memory model (so a walk
//! contends with DMA and, when not snooped, can read a stale entry from DRAM) and answers
//! with [`TranslationAgent::memory_read_done`] when the data arrives. Host software reaches
//! the agent's registers with [`TranslationAgent::register_write`] /
//! [`TranslationAgent::register_read`] (invalidation, fault status), and the agent may write
//! memory itself ([`AgentOutput::MemWrite`], e.g. an invalidation-wait status word).

use crate::addr::{Bdf, Iova, PhysAddr};
use crate::time::{Span, Tick};
use serde::{Deserialize, Serialize};

/// What an upstream request does to memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AccessKind {
    /// A memory read request (MRd).
    Read,
    /// A memory write request (MWr).
    Write,
}

/// One request presented to the IOMMU.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TranslationRequest {
    /// The requester ID from the TLP header.
    pub requester: Bdf,
    /// The address from the TLP header.
    pub iova: Iova,
    /// Bytes the request touches (a request never crosses a 4 KiB boundary).
    pub len: u32,
    /// Read or write.
    pub access: AccessKind,
    /// The PASID from the TLP prefix, if any.
    pub pasid: Option<u32>,
    /// The PASID prefix's Execute Requested bit.
    pub execute: bool,
    /// The PASID prefix's Privileged Mode Requested bit.
    pub privileged: bool,
    /// The TLP's No Snoop attribute (Attr[0]): the other half of the snoop decision.
    pub no_snoop: bool,
    /// AT = Translated: the device translated the address itself with ATS, and the IOMMU
    /// decides whether it may (VT-d context entry TT, AMD-Vi DTE I bit).
    pub translated: bool,
}

/// A successful translation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Translation {
    /// Where the request goes in host physical memory.
    pub pa: PhysAddr,
    /// The IOMMU forces this access to be snooped whatever the TLP's No Snoop attribute says
    /// (VT-d leaf SNP or PASID-entry PGSNP; AMD-Vi PTE FC).
    pub forces_snoop: bool,
}

/// A translation the IOMMU refused. Modelled faults are data, not simulator errors.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TranslationFault {
    /// The requester ID of the faulting request.
    pub requester: Bdf,
    /// The faulting address.
    pub iova: Iova,
    /// Read or write.
    pub access: AccessKind,
    /// The PASID of the faulting request, if it had one.
    pub pasid: Option<u32>,
    /// The vendor's fault reason code (VT-d fault reason, AMD-Vi event code).
    pub reason_code: u32,
    /// The vendor's name for the reason.
    pub reason: &'static str,
    /// What the agent's fault log did with it (e.g. "recorded in FRCD 3", "overflow: PFO
    /// set, not recorded", "suppressed by FPD").
    pub logged: String,
}

/// What an agent asks of the system, or tells it. Every tick is at or after the `now` of
/// the call that produced the output.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AgentOutput {
    /// Read `len` bytes of host memory at `pa`, starting at `at`, snooped or not; answer
    /// with [`TranslationAgent::memory_read_done`] and the same `tag` when the data arrives.
    MemRead {
        /// The agent's name for this read.
        tag: u64,
        /// First byte.
        pa: PhysAddr,
        /// Bytes (a table entry or a descriptor: at most 64).
        len: u32,
        /// Whether the read snoops the CPU caches.
        snooped: bool,
        /// When the read leaves the agent.
        at: Tick,
    },
    /// Write `len` little-endian bytes of `value` at `pa`, at `at` (an invalidation-wait
    /// status write). No answer is needed.
    MemWrite {
        /// First byte.
        pa: PhysAddr,
        /// The data, little-endian.
        value: u64,
        /// Bytes: 1 to 8.
        len: u32,
        /// Whether the write snoops the CPU caches.
        snooped: bool,
        /// When the write is performed.
        at: Tick,
    },
    /// The request the system called `token` is translated, or refused, at `at`.
    Done {
        /// The token given to [`TranslationAgent::request`].
        token: u64,
        /// When the translated request leaves the agent (or the fault is raised).
        at: Tick,
        /// The outcome.
        result: Result<Translation, TranslationFault>,
    },
    /// A register changed at `at` without software writing it (an invalidation completed
    /// and cleared its busy bit): software polling it may look again.
    RegisterChanged {
        /// Byte offset in the agent's register space.
        offset: u32,
        /// When the new value is visible.
        at: Tick,
    },
}

/// Misuse of an agent by the system or by host software.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AgentError {
    /// Memory data arrived for a read the agent never issued.
    #[error("memory data for unknown read tag {0}")]
    UnknownTag(u64),
    /// Host software asked for something the hardware refuses (or leaves undefined).
    #[error("{agent}: {what}")]
    Refused {
        /// The agent kind.
        agent: &'static str,
        /// What and why.
        what: String,
    },
    /// A register offset the agent does not implement.
    #[error("no register at offset {offset:#x} ({agent})")]
    NoRegister {
        /// The offset.
        offset: u32,
        /// The agent kind.
        agent: &'static str,
    },
}

/// Hits and misses of one of an agent's caches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct CacheCounts {
    /// Lookups that hit.
    pub hits: u64,
    /// Lookups that missed.
    pub misses: u64,
}

/// An agent's counters, for the report's `iommu` section.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct AgentStats {
    /// Translation requests received.
    pub translations: u64,
    /// IOTLB lookups that hit / missed.
    pub iotlb: CacheCounts,
    /// Page walks started (merged misses count once).
    pub walks: u64,
    /// Requests that joined a walk already in flight for the same page.
    pub merged: u64,
    /// Memory reads issued by walks, after walk caches.
    pub walk_memory_reads: u64,
    /// The other caches by name (context cache, PASID cache, paging-structure caches per
    /// level), in a fixed order.
    pub caches: Vec<(&'static str, CacheCounts)>,
    /// Faults the fault log recorded, collapsed into a pending record of the same
    /// requester, dropped on overflow, and suppressed (VT-d FPD).
    pub faults_logged: u64,
    /// See `faults_logged`.
    pub faults_collapsed: u64,
    /// See `faults_logged`.
    pub faults_overflowed: u64,
    /// See `faults_logged`.
    pub faults_suppressed: u64,
    /// Invalidation requests the unit accepted (queued descriptors or commands fetched,
    /// register commands written); each completes its configured time later.
    pub invalidations: u64,
}

/// An IOMMU (or its absence), as the root complex and host software see it.
pub trait TranslationAgent {
    /// A short name for reports ("none", "vtd", "amdvi").
    fn kind(&self) -> &'static str;

    /// `req` reaches the IOMMU at `now`; its outcome will be an [`AgentOutput::Done`] with
    /// this `token`.
    fn request(&mut self, now: Tick, token: u64, req: &TranslationRequest);

    /// The data of the read `tag` arrived at `now`.
    fn memory_read_done(&mut self, now: Tick, tag: u64, data: &[u8]) -> Result<(), AgentError> {
        let _ = (now, data);
        Err(AgentError::UnknownTag(tag))
    }

    /// Host software writes `value` to the register at byte `offset` at `now`.
    fn register_write(&mut self, now: Tick, offset: u32, value: u64) -> Result<(), AgentError> {
        let _ = (now, value);
        Err(AgentError::NoRegister {
            offset,
            agent: self.kind(),
        })
    }

    /// Host software reads the register at byte `offset` at `now`.
    fn register_read(&mut self, now: Tick, offset: u32) -> Result<u64, AgentError> {
        let _ = now;
        Err(AgentError::NoRegister {
            offset,
            agent: self.kind(),
        })
    }

    /// The next output, if any.
    fn poll_output(&mut self) -> Option<AgentOutput>;

    /// What an IOMMU without caches would decide for `req` from the tables as `mem` holds
    /// them now: the corruption checker reads `mem` from its coherent reference memory to
    /// tell a misdirected DMA (stale IOTLB entry, stale PTE read from DRAM, missing
    /// invalidation) from a correct one. `Err` carries the fault reason code.
    fn reference_translate(
        &self,
        req: &TranslationRequest,
        mem: &mut dyn FnMut(PhysAddr, &mut [u8]),
    ) -> Result<Translation, u32>;

    /// Counters for the report.
    fn stats(&self) -> AgentStats;
}

/// No IOMMU: every IOVA is the physical address (ATS-translated or not), nothing forces
/// snooping, and the only cost is a fixed pass-through latency.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct IdentityTranslation {
    /// Time the request spends crossing where an IOMMU would sit.
    pub latency: Span,
    translations: u64,
    out: std::collections::VecDeque<AgentOutput>,
}

impl IdentityTranslation {
    /// An identity "IOMMU" with a fixed crossing latency.
    pub fn new(latency: Span) -> IdentityTranslation {
        IdentityTranslation {
            latency,
            ..IdentityTranslation::default()
        }
    }
}

impl TranslationAgent for IdentityTranslation {
    fn kind(&self) -> &'static str {
        "none"
    }

    fn request(&mut self, now: Tick, token: u64, req: &TranslationRequest) {
        self.translations += 1;
        self.out.push_back(AgentOutput::Done {
            token,
            at: now + self.latency,
            result: Ok(Translation {
                pa: PhysAddr(req.iova.raw()),
                forces_snoop: false,
            }),
        });
    }

    fn poll_output(&mut self) -> Option<AgentOutput> {
        self.out.pop_front()
    }

    fn reference_translate(
        &self,
        req: &TranslationRequest,
        _mem: &mut dyn FnMut(PhysAddr, &mut [u8]),
    ) -> Result<Translation, u32> {
        Ok(Translation {
            pa: PhysAddr(req.iova.raw()),
            forces_snoop: false,
        })
    }

    fn stats(&self) -> AgentStats {
        AgentStats {
            translations: self.translations,
            ..AgentStats::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identity_maps_iova_to_the_same_physical_address_and_never_forces_snoop() {
        let mut id = IdentityTranslation::new(Span::from_ns(3));
        let req = TranslationRequest {
            requester: Bdf::new(1, 0, 0).unwrap(),
            iova: Iova(0x1234_5000),
            len: 64,
            access: AccessKind::Write,
            pasid: None,
            execute: false,
            privileged: false,
            no_snoop: true,
            translated: false,
        };
        id.request(Tick::from_ps(1000), 7, &req);
        let out = id.poll_output().unwrap();
        assert_eq!(
            out,
            AgentOutput::Done {
                token: 7,
                at: Tick::from_ps(4000),
                result: Ok(Translation {
                    pa: PhysAddr(0x1234_5000),
                    forces_snoop: false
                })
            }
        );
        assert_eq!(id.poll_output(), None);
        assert_eq!(id.stats().translations, 1);
        assert!(id.register_read(Tick::ZERO, 0x8).is_err());
        assert!(id.memory_read_done(Tick::ZERO, 1, &[]).is_err());
    }
}
