//! The IOMMU driver as the CPU programs see it, whichever vendor's unit sits in the
//! platform: map and unmap a domain's pages, invalidate, and the register writes of boot.
//! Each vendor's driver (`vtd_host`, `amdvi_host`) turns these into its own table writes,
//! descriptors or commands.

use super::amdvi_host::AmdviHost;
use super::vtd_host::VtdHost;
use crate::scenario::iommu::MappingSpec;
use crate::scenario::software::{FlushQueueSpec, UnmapInvalidation};
use crate::scenario::values::{Bounded, HexAddr};
use crate::scenario::{InvalidateWhat, IommuInvalidateOp, PteUpdateOp, Step};
use model_core::{Bdf, MemWrite, PhysAddr, Span, Tick};
use std::collections::{BTreeMap, BTreeSet};
use vtd::entry::PageSize;

/// Most pages a scenario's drivers map (boot and run time together): each is a table write
/// the CPU performs through the caches, so this bounds the memory and time a scenario can
/// ask for (16 GiB in 4 KiB pages; larger pages go further).
pub const MAX_MAPPED_PAGES: u64 = 1 << 22;

/// Counts `n` more mapped pages against [`MAX_MAPPED_PAGES`].
pub fn charge_pages(mapped: &mut u64, n: u64) -> Result<(), String> {
    let total = mapped.saturating_add(n);
    if total > MAX_MAPPED_PAGES {
        return Err(format!(
            "{total} pages mapped in all: at most {MAX_MAPPED_PAGES} (each is a table write the \
             CPU performs); map with larger pages"
        ));
    }
    *mapped = total;
    Ok(())
}

/// Checks an unmap of `bytes` at `iova` in pages of `size`: both multiples of the page
/// size, the range inside the 64-bit address space. Returns the page size in bytes.
pub(super) fn unmap_pages(iova: u64, bytes: u64, size: PageSize) -> Result<u64, String> {
    let page = size.bytes();
    if !iova.is_multiple_of(page) || !bytes.is_multiple_of(page) {
        return Err(format!(
            "iova {iova:#x} and bytes {bytes} must be multiples of the {size} page size"
        ));
    }
    if iova.checked_add(bytes.saturating_sub(1)).is_none() {
        return Err(format!(
            "iova {iova:#x} plus {bytes} bytes runs past the 64-bit address space"
        ));
    }
    Ok(page)
}

/// A refusal, located in the scenario.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostError {
    /// Path into the scenario.
    pub steps: Vec<Step>,
    /// What is wrong and what was expected.
    pub message: String,
}

/// An IOMMU unit of the platform, by its index: `platform.iommu.vtd.units` or
/// `platform.iommu.amdvi.units` order ("none" has one unit, 0).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct UnitId(pub u8);

impl UnitId {
    /// Index into the platform's units.
    pub fn index(self) -> usize {
        usize::from(self.0)
    }
}

/// What an invalidation asks of the system.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Invalidation {
    /// Queued: write the descriptors or commands (CPU stores), then the tail register;
    /// the unit writes `data` to `status` when they are done (VT-d invalidation wait,
    /// AMD-Vi COMPLETION_WAIT), and the CPU spins on it.
    Queued {
        /// Descriptor writes.
        writes: Vec<MemWrite>,
        /// The tail register and its new value.
        doorbell: (u32, u64),
        /// The status word.
        status: PhysAddr,
        /// The value it will hold (its low `width` bytes).
        data: u64,
        /// Bytes of the status word: 4 (VT-d) or 8 (AMD-Vi).
        width: u8,
    },
    /// Register-based: write these registers in order, then poll `poll` until `busy`
    /// clears.
    Register {
        /// (offset, value) writes.
        writes: Vec<(u32, u64)>,
        /// The register to poll.
        poll: u32,
        /// Its busy bit.
        busy: u64,
    },
}

/// What a run-time host operation asks of a CPU: table stores (CLFLUSHed per the driver's
/// policy), then each invalidation in turn, each with its own wait.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DriverWork {
    /// Table stores, in order.
    pub writes: Vec<MemWrite>,
    /// Submissions after them, each to its unit.
    pub invalidations: Vec<(UnitId, Invalidation)>,
}

/// What attaching a detached device did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AttachOutcome {
    /// The device's entries were written.
    Attached(DriverWork),
    /// The unit refused the domain (Linux `paging_domain_compatible`: -EINVAL), and why:
    /// `nic (dmar1: ...)`. The device stays detached.
    Refused(String),
}

/// The driver of the platform's IOMMU.
#[derive(Debug, Clone)]
pub enum Driver {
    /// Intel VT-d.
    Vtd(VtdHost),
    /// AMD-Vi.
    Amdvi(AmdviHost),
}

impl Driver {
    /// Whether table writes are CLFLUSHed (the platform's policy).
    pub fn flush(&self) -> bool {
        match self {
            Driver::Vtd(h) => h.flush,
            Driver::Amdvi(h) => h.flush,
        }
    }

    /// Maps a range into a domain.
    pub fn map(
        &mut self,
        domain: &str,
        m: &MappingSpec,
        out: &mut Vec<MemWrite>,
    ) -> Result<(), String> {
        match self {
            Driver::Vtd(h) => h.map(domain, m, out),
            Driver::Amdvi(h) => h.map(domain, m, out),
        }
    }

    /// Unmaps a range of a domain.
    pub fn unmap(
        &mut self,
        domain: &str,
        iova: u64,
        bytes: u64,
        size: PageSize,
        out: &mut Vec<MemWrite>,
    ) -> Result<(), String> {
        match self {
            Driver::Vtd(h) => h.unmap(domain, iova, bytes, size, out),
            Driver::Amdvi(h) => h.unmap(domain, iova, bytes, size, out),
        }
    }

    /// What an invalidation operation writes and waits for, unit by unit: one submission
    /// (and its wait) to each unit the operation's domain is attached to, as Linux's
    /// `iommu_flush_iotlb_psi` and `amd_iommu_domain_flush_pages` loop over a domain's
    /// units; a global one goes to every unit.
    pub fn invalidate(
        &mut self,
        op: &IommuInvalidateOp,
    ) -> Result<Vec<(UnitId, Invalidation)>, String> {
        match self {
            Driver::Vtd(h) => h.invalidate(op),
            Driver::Amdvi(h) => h.invalidate(op),
        }
    }

    /// The invalidation strict mode issues after unmapping `bytes` at `iova` of `domain`,
    /// before `iommu_unmap` returns: page-selective, for the range. VT-d
    /// (`intel_iommu_tlb_sync` → `cache_tag_flush_range(.., ih)`) sets IH when no table page
    /// was freed, as the modelled unmap never frees one; AMD-Vi's `build_inv_iommu_pages`
    /// always sets PDE.
    pub fn unmap_sync(
        &self,
        domain: &str,
        iova: u64,
        bytes: Bounded<1, { 1 << 46 }>,
    ) -> IommuInvalidateOp {
        IommuInvalidateOp {
            what: InvalidateWhat::Iotlb,
            domain: Some(domain.to_owned()),
            iova: Some(HexAddr(iova)),
            bytes: Some(bytes),
            pasid: None,
            leaf_only: matches!(self, Driver::Vtd(_)),
        }
    }

    /// A flush queue's flush: the domain's whole IOTLB (dma-iommu.c `fq_flush_iotlb` →
    /// `flush_iotlb_all`; VT-d `cache_tag_flush_all`: a domain-selective IOTLB descriptor;
    /// AMD-Vi `amd_iommu_domain_flush_all`: INVALIDATE_IOMMU_PAGES of all pages, with PDE).
    pub fn flush_all(domain: &str) -> IommuInvalidateOp {
        IommuInvalidateOp {
            what: InvalidateWhat::Iotlb,
            domain: Some(domain.to_owned()),
            iova: None,
            bytes: None,
            pasid: None,
            leaf_only: false,
        }
    }

    /// The register writes of boot, in order: each unit's `(unit, offset, value)`.
    pub fn boot_registers(&self) -> Vec<(UnitId, u32, u64)> {
        match self {
            Driver::Vtd(h) => h.units.boot_registers(),
            Driver::Amdvi(h) => h.units.boot_registers(),
        }
    }

    /// Whether a domain of this name exists.
    pub fn has_domain(&self, name: &str) -> bool {
        match self {
            Driver::Vtd(h) => h.domain_id(name).is_some(),
            Driver::Amdvi(h) => h.has_domain(name),
        }
    }

    /// The domain `device` (requester `bdf`) is attached to now, by RID.
    pub fn attached(&self, device: &str, bdf: Bdf) -> Option<String> {
        match self {
            Driver::Vtd(h) => h.attached(device).map(str::to_owned),
            Driver::Amdvi(h) => h.attached(bdf),
        }
    }

    /// The unit `device` sits behind (VT-d's DRHD device scope, AMD-Vi's IVHD).
    pub fn unit_of(&self, device: &str) -> Option<UnitId> {
        match self {
            Driver::Vtd(h) => h.units.unit_of(device),
            Driver::Amdvi(h) => h.units.unit_of(device),
        }
    }

    /// The units `domain` spans now.
    pub fn domain_units(&self, domain: &str) -> BTreeSet<UnitId> {
        match self {
            Driver::Vtd(h) => h.domain_units(domain),
            Driver::Amdvi(_) => BTreeSet::from([UnitId(0)]),
        }
    }

    /// Whether a map was ever made in `domain` (Linux VT-d `has_mappings`).
    pub fn has_mappings(&self, domain: &str) -> bool {
        match self {
            Driver::Vtd(h) => h.has_mappings(domain),
            Driver::Amdvi(h) => h.has_mappings(domain),
        }
    }

    /// Attaches a detached device to `domain` (run time).
    pub fn attach(
        &mut self,
        device: &str,
        bdf: Bdf,
        domain: &str,
    ) -> Result<AttachOutcome, String> {
        match self {
            Driver::Vtd(h) => h.attach_device(device, bdf, domain),
            Driver::Amdvi(h) => h
                .attach_device(device, bdf, domain)
                .map(AttachOutcome::Attached),
        }
    }

    /// Blocks `device`'s requests without PASID (run time); nothing if it is detached.
    pub fn detach(&mut self, device: &str, bdf: Bdf) -> Result<DriverWork, String> {
        match self {
            Driver::Vtd(h) => h.detach(device),
            Driver::Amdvi(h) => h.detach(device, bdf),
        }
    }

    /// What the driver writes once `enforce_cache_coherency()` succeeded on `domain`:
    /// VT-d first-level PGSNP; nothing elsewhere (later maps carry the bit).
    pub fn force_snooping(&mut self, domain: &str) -> Result<DriverWork, String> {
        match self {
            Driver::Vtd(h) => h.force_snooping(domain),
            Driver::Amdvi(_) => Ok(DriverWork::default()),
        }
    }

    /// The store of a `pte_update`; the error names the operation's field at fault.
    pub fn pte_update(
        &mut self,
        op: &PteUpdateOp,
    ) -> Result<Vec<MemWrite>, (&'static str, String)> {
        let mut writes = Vec::new();
        match self {
            Driver::Vtd(h) => h.pte_update(op, &mut writes)?,
            Driver::Amdvi(h) => h.pte_update(op, &mut writes)?,
        }
        Ok(writes)
    }
}

/// Why the driver invalidated after unmaps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FlushCause {
    /// Strict mode: the unmap's own page-selective invalidation.
    Strict,
    /// A flush queue reached its `entries`.
    Full,
    /// A flush queue's timer expired.
    Timer,
}

/// One invalidation the driver issued on its own after unmaps, as it began.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FlushRecord {
    /// Why.
    pub cause: FlushCause,
    /// The domain.
    pub domain: String,
    /// The CPU (program index) that did it.
    pub cpu: u16,
    /// Ranges it covers (1 for strict).
    pub entries: u64,
    /// When the first of them was queued (for strict: when its unmap finished).
    pub first_queued: Tick,
    /// When the CPU began writing the descriptors or commands.
    pub started: Tick,
}

/// The timer of a flush queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
enum Timer {
    /// Not armed: the queue is empty, or was flushed since.
    #[default]
    Off,
    /// Armed (`mod_timer`): its id and the CPU its handler runs on.
    Armed { id: u64, cpu: u16 },
    /// Expired; the flush is owed by the CPU it ran on (Linux's `fq_timer_on` stays set
    /// until then, so no second timer is armed).
    Fired,
}

/// One domain's flush queue: dma-iommu's per-CPU rings of one domain (cookie) and the
/// cookie's one timer.
#[derive(Debug, Clone, Default)]
struct FlushQueue {
    /// Ranges unmapped and not yet freed, in each CPU's ring.
    per_cpu: BTreeMap<u16, u64>,
    /// When the first of them was queued.
    first: Tick,
    timer: Timer,
    /// Incremented by every flush: a full-ring flush asked for an earlier batch finds
    /// nothing to do.
    batch: u64,
}

impl FlushQueue {
    fn entries(&self) -> u64 {
        self.per_cpu.values().sum()
    }
}

/// What queueing an unmapped range asks of the system.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Queued {
    /// The batch the range joined.
    pub batch: u64,
    /// A timer to start: its id and when it expires.
    pub arm: Option<(u64, Tick)>,
    /// The queue is full: the CPU that queued flushes before going on.
    pub full: bool,
}

/// The host's unmap policy (`software.unmap_invalidation`) and its flush queues. Pure
/// state: the system asks it what to do at `now`, and runs the flushes on CPUs.
#[derive(Debug, Clone, Default)]
pub struct UnmapPolicy {
    policy: UnmapInvalidation,
    queues: BTreeMap<String, FlushQueue>,
    next_timer: u64,
    log: Vec<FlushRecord>,
}

impl UnmapPolicy {
    /// The policy a scenario chose.
    pub fn new(policy: UnmapInvalidation) -> UnmapPolicy {
        UnmapPolicy {
            policy,
            ..UnmapPolicy::default()
        }
    }

    /// The policy.
    pub fn policy(&self) -> UnmapInvalidation {
        self.policy
    }

    /// The flush queue's limits, in deferred mode.
    fn spec(&self) -> Option<FlushQueueSpec> {
        match self.policy {
            UnmapInvalidation::Deferred(fq) => Some(fq),
            _ => None,
        }
    }

    /// CPU `cpu` queued a range of `domain` at `now` (deferred mode; `queue_iova`). Each
    /// CPU's ring has `entries` slots and holds `entries − 1` ranges (`fq_full`): a range
    /// that finds its CPU's ring full makes that CPU flush the domain first, and then
    /// stays queued itself. The cookie's timer is armed if it is not already.
    pub fn queue(&mut self, now: Tick, domain: &str, cpu: u16) -> Option<Queued> {
        let spec = self.spec()?;
        let q = self.queues.entry(domain.to_owned()).or_default();
        if q.entries() == 0 {
            q.first = now;
        }
        let mine = q.per_cpu.entry(cpu).or_default();
        let full = *mine + 1 >= spec.entries.0;
        *mine += 1;
        let arm = (q.timer == Timer::Off).then(|| {
            self.next_timer += 1;
            q.timer = Timer::Armed {
                id: self.next_timer,
                cpu,
            };
            (self.next_timer, now + Span::from_ns(spec.window_ns.0))
        });
        Some(Queued {
            batch: q.batch,
            arm,
            full,
        })
    }

    /// Timer `id` expired: the domain, batch and CPU whose flush it is. Linux's
    /// `fq_flush_timeout` flushes whether or not anything is queued.
    pub fn fired(&mut self, id: u64) -> Option<(String, u64, u16)> {
        self.queues.iter_mut().find_map(|(name, q)| match q.timer {
            Timer::Armed { id: i, cpu } if i == id => {
                q.timer = Timer::Fired;
                Some((name.clone(), q.batch, cpu))
            }
            _ => None,
        })
    }

    /// Whether a flush of `batch` of `domain` for `cause` is still to be done: a timer's
    /// always is; a full ring's is unless another flush came first.
    pub fn owes(&self, domain: &str, batch: u64, cause: FlushCause) -> bool {
        cause == FlushCause::Timer
            || self
                .queues
                .get(domain)
                .is_some_and(|q| q.batch == batch && q.entries() > 0)
    }

    /// CPU `cpu` begins flushing `domain` at `now` for `cause`. The flush covers every
    /// range unmapped so far; the rings then hold nothing, except that after a full-ring
    /// flush the range that found the ring full is added to it (`queue_iova` flushes,
    /// then adds). A timer's flush disarms the timer (`fq_timer_on` = 0); a full ring's
    /// leaves it running.
    pub fn take(&mut self, now: Tick, domain: &str, cpu: u16, cause: FlushCause) {
        let Some(q) = self.queues.get_mut(domain) else {
            return;
        };
        self.log.push(FlushRecord {
            cause,
            domain: domain.to_owned(),
            cpu,
            entries: q.entries(),
            first_queued: q.first,
            started: now,
        });
        let kept =
            u64::from(cause == FlushCause::Full && q.per_cpu.get(&cpu).is_some_and(|&n| n > 0));
        q.per_cpu.clear();
        if kept > 0 {
            q.per_cpu.insert(cpu, kept);
            q.first = now;
        }
        if cause == FlushCause::Timer {
            q.timer = Timer::Off;
        }
        q.batch += 1;
    }

    /// CPU `cpu` begins the strict invalidation of a range of `domain` unmapped at `unmapped`.
    pub fn synced(&mut self, now: Tick, unmapped: Tick, domain: &str, cpu: u16) {
        self.log.push(FlushRecord {
            cause: FlushCause::Strict,
            domain: domain.to_owned(),
            cpu,
            entries: 1,
            first_queued: unmapped,
            started: now,
        });
    }

    /// No range waits for a flush.
    pub fn is_empty(&self) -> bool {
        self.queues.values().all(|q| q.entries() == 0)
    }

    /// Every flush begun, in order.
    pub fn log(&self) -> &[FlushRecord] {
        &self.log
    }
}
