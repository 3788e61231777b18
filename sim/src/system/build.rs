//! Assembling a system from a scenario, one named step per part.

use super::amdvi_host::AmdviHost;
use super::domain_api::DomainApi;
use super::driver::{Driver, UnitId};
use super::vtd_host::VtdHost;
use super::{
    mmio_largest, CpuCounters, CpuProgram, Device, Iommu, IommuUnit, SimError, System, DMA_READ,
    DMA_READ_TRANSFER, DMA_WRITE, DMA_WRITE_TRANSFER, HOST_BRIDGE, TRANSLATION,
};
use crate::check::Checker;
use crate::scenario::{
    DeviceSpec, IommuSpec, Platform, Scenario, DEFAULT_BAR0, DEFAULT_BAR_STRIDE,
};
use crate::slab::Slab;
use crate::workload::DeviceFeed;
use cache::{Dram, DramConfig, Hierarchy};
use model_core::{ClockDomain, Cycles, IdentityTranslation, Span, Tick};
use pcie::{
    AckCounter, DllpPolicy, Endpoint, EndpointConfig, FcGate, FcReturn, LinkConfig, LinkGen,
    RootComplexConfig, RootPort, Transmitter,
};
use reports::LatencyHistogram;
use vtd::tables::MemWrite;

fn config_err(e: impl std::fmt::Display) -> SimError {
    SimError::Config(e.to_string())
}

impl System {
    /// Builds the system a scenario describes. Scenario values are range-checked when they
    /// are parsed; a model that still refuses one is reported, never replaced by a default.
    pub fn new(s: &Scenario) -> Result<System, SimError> {
        let p = &s.platform;
        let (link, dllp) = link_config(p)?;
        let (rc, rc_clock) = root_complex(p)?;
        let devices = s
            .devices
            .iter()
            .enumerate()
            .map(|(i, d)| device(s, i, d, link, dllp, &rc))
            .collect();
        let software = DomainApi::new(s).map_err(|e| {
            SimError::Config(format!(
                "{}: {}",
                crate::scenario::render_path(&e.steps),
                e.message
            ))
        })?;
        let (units, driver, boot) = iommu(s, &software.apply(&s.platform.iommu))?;
        let scope = s
            .devices
            .iter()
            .map(|d| {
                let unit = driver
                    .as_ref()
                    .map_or(Some(UnitId(0)), |h| h.unit_of(&d.name));
                unit.ok_or_else(|| {
                    SimError::Config(format!("device \"{}\" is in no unit's scope", d.name))
                })
            })
            .collect::<Result<_, _>>()?;
        let mut system = System {
            devices,
            rc,
            units,
            scope,
            driver,
            software,
            boot_done: Tick::ZERO,
            mem: memory(s)?,
            mem_wake: None,
            honours_no_snoop: p.root_complex.honours_no_snoop,
            latency: [
                DMA_WRITE,
                DMA_READ,
                DMA_WRITE_TRANSFER,
                DMA_READ_TRANSFER,
                TRANSLATION,
            ]
            .into_iter()
            .map(|k| (k, LatencyHistogram::new()))
            .collect(),
            tlps: 0,
            translations: 0,
            fault_count: 0,
            faults: Vec::new(),
            horizon: Tick::ZERO,
            device_index: s
                .devices
                .iter()
                .enumerate()
                .map(|(i, d)| (d.name.clone(), i as u16))
                .collect(),
            mmio_latency: rc_clock.span(Cycles(p.root_complex.mmio_latency_cycles.0)),
            cpus: cpu_programs(s),
            reqs: Slab::default(),
            cpls: Slab::default(),
            iommu_mem: Slab::default(),
            ref_memo: Default::default(),
            invalidation_lock: None,
            unmap: super::cpu_iommu::UnmapWork::new(s.software.unmap_invalidation),
        };
        system.boot(&boot)?;
        Ok(system)
    }

    /// The host software's boot: table writes through core 0's caches (flushed when the
    /// driver would flush them), then the IOMMU's registers; the workload starts when all
    /// of it is done.
    fn boot(&mut self, writes: &[MemWrite]) -> Result<(), SimError> {
        let core = cache::CoreId(0);
        let flush = self.driver.as_ref().is_some_and(|h| h.flush());
        let t = self.host_writes(Tick::ZERO, core, writes, flush)?;
        let regs = self
            .driver
            .as_ref()
            .map(|h| h.boot_registers())
            .unwrap_or_default();
        for (unit, offset, value) in regs {
            self.unit(unit)?
                .register_write(t, offset, value)
                .map_err(|e| SimError::Iommu(e.to_string()))?;
        }
        self.boot_done = t;
        Ok(())
    }
}

/// Every device's link, and the DLLP ratios both its ends use.
fn link_config(p: &Platform) -> Result<(LinkConfig, DllpPolicy), SimError> {
    let gen = LinkGen::from_number(p.pcie.gen.0).map_err(config_err)?;
    let dllp = DllpPolicy {
        ack_every: p.pcie.ack_every_tlps.0 as u32,
        update_fc_every: p.pcie.update_fc_every_tlps.0 as u32,
    };
    let link = LinkConfig::new(gen, p.pcie.lanes.0, p.pcie.port_delay_ns.span(), dllp)
        .map_err(config_err)?;
    Ok((link, dllp))
}

/// The root complex's configuration, and its clock.
fn root_complex(p: &Platform) -> Result<(RootComplexConfig, ClockDomain), SimError> {
    let r = &p.root_complex;
    let clock = ClockDomain::from_mhz(r.clock_mhz.0)
        .map_err(|e| SimError::Config(format!("root complex: {e}")))?;
    let rc = RootComplexConfig {
        completer: HOST_BRIDGE,
        request_latency: clock.span(Cycles(r.request_latency_cycles.0)),
        completion_latency: clock.span(Cycles(r.completion_latency_cycles.0)),
        rcb: r.rcb_bytes.0,
        accept_interval: clock.span(Cycles(r.accept_interval_cycles.0)),
        credits: r.credits.credits(),
        max_outstanding_reads: r.max_outstanding_reads.0 as u32,
    };
    Ok((rc, clock))
}

/// The IOMMU units, their driver, and the driver's boot-time table writes.
type IommuParts = (Vec<IommuUnit>, Option<Driver>, Vec<MemWrite>);

/// Builds the IOMMU units and their driver.
fn iommu(s: &Scenario, spec: &IommuSpec) -> Result<IommuParts, SimError> {
    match spec {
        IommuSpec::None { latency_ns } => Ok((
            vec![IommuUnit::new(
                "none",
                Iommu::None(IdentityTranslation::new(latency_ns.span())),
            )],
            None,
            Vec::new(),
        )),
        IommuSpec::Vtd(spec) => {
            let names: Vec<_> = s.devices.iter().map(|d| (d.name.clone(), d.bdf)).collect();
            let (host, writes) = VtdHost::boot(spec, &names).map_err(|e| {
                SimError::Config(format!(
                    "{}: {}",
                    crate::scenario::render_path(&e.steps),
                    e.message
                ))
            })?;
            let t = &spec.timing;
            let clock = ClockDomain::from_mhz(t.clock_mhz.0)
                .map_err(|e| SimError::Config(format!("platform.iommu.vtd.timing: {e}")))?;
            let c = &spec.caches;
            let geometry = |g: &crate::scenario::iommu::GeometrySpec| vtd::Geometry {
                sets: g.sets.0 as usize,
                ways: g.ways.0 as usize,
            };
            let cfg = |caps: &vtd::regs::Capabilities| vtd::VtdConfig {
                caps: caps.clone(),
                caches: vtd::CacheConfig {
                    iotlb: geometry(&c.iotlb),
                    iotlb_split_by_size: c.iotlb_split_by_size,
                    context: geometry(&c.context),
                    pasid: geometry(&c.pasid),
                    psc: geometry(&c.paging_structure),
                },
                timing: vtd::VtdTiming {
                    clock,
                    lookup: Cycles(t.lookup_cycles.0),
                    walk_step: Cycles(t.walk_step_cycles.0),
                    fault: Cycles(t.fault_cycles.0),
                    invalidation: Cycles(t.invalidation_cycles.0),
                },
                max_walks: spec.max_walks.0 as u16,
            };
            // One unit per DRHD: its own registers, caches, walks and fault log; the same
            // timing and cache shapes.
            let mut units = Vec::new();
            for (name, caps) in host.units.described() {
                let unit = vtd::Vtd::new(cfg(&caps))
                    .map_err(|e| SimError::Config(format!("platform.iommu.vtd.{e}")))?;
                units.push(IommuUnit::new(name, Iommu::Vtd(Box::new(unit))));
            }
            Ok((units, Some(Driver::Vtd(host)), writes))
        }
        IommuSpec::Amdvi(spec) => {
            let names: Vec<_> = s.devices.iter().map(|d| (d.name.clone(), d.bdf)).collect();
            let (host, writes) = AmdviHost::boot(spec, &names).map_err(|e| {
                SimError::Config(format!(
                    "{}: {}",
                    crate::scenario::render_path(&e.steps),
                    e.message
                ))
            })?;
            let t = &spec.timing;
            let clock = ClockDomain::from_mhz(t.clock_mhz.0)
                .map_err(|e| SimError::Config(format!("platform.iommu.amdvi.timing: {e}")))?;
            let g =
                |g: &crate::scenario::iommu::GeometrySpec| (g.sets.0 as usize, g.ways.0 as usize);
            let cfg = |caps: &amdvi::regs::Capabilities| amdvi::AmdviConfig {
                caps: caps.clone(),
                caches: amdvi::AmdviCaches {
                    iotlb: g(&spec.caches.iotlb),
                    dte: g(&spec.caches.dte),
                    pdc: g(&spec.caches.page_directory),
                },
                timing: amdvi::AmdviTiming {
                    clock,
                    lookup: Cycles(t.lookup_cycles.0),
                    walk_step: Cycles(t.walk_step_cycles.0),
                    fault: Cycles(t.fault_cycles.0),
                    command: Cycles(t.command_cycles.0),
                },
                max_walks: spec.max_walks.0 as u16,
            };
            // One unit per IOMMU: its own registers, caches, walks and event log; the same
            // timing and cache shapes.
            let mut units = Vec::new();
            for (name, caps) in host.units.described() {
                let unit = amdvi::Amdvi::new(cfg(&caps))
                    .map_err(|e| SimError::Config(format!("platform.iommu.amdvi.{e}")))?;
                units.push(IommuUnit::new(name, Iommu::Amdvi(Box::new(unit))));
            }
            Ok((units, Some(Driver::Amdvi(host)), writes))
        }
    }
}

/// Caches over DRAM, observed by the corruption checker.
fn memory(s: &Scenario) -> Result<Hierarchy<Checker>, SimError> {
    let p = &s.platform;
    let dram = Dram::new(
        DramConfig::new(p.dram.latency_ns.span(), p.dram.bandwidth_mbps.0).map_err(config_err)?,
    );
    let checker = Checker::new(s.report.explanations_per_class.0 as usize);
    Hierarchy::with_observer(p.cpu.hierarchy(), dram, checker)
        .map_err(|e| SimError::Config(format!("platform.cpu: {e}")))
}

/// Device `i`: its DMA engine, both link directions and its root port.
fn device(
    s: &Scenario,
    i: usize,
    d: &DeviceSpec,
    link: LinkConfig,
    dllp: DllpPolicy,
    rc: &RootComplexConfig,
) -> Device {
    let p = &s.platform;
    Device {
        name: d.name.clone(),
        endpoint: Endpoint::new(EndpointConfig {
            bdf: d.bdf,
            mps: p.pcie.mps_bytes.0,
            mrrs: p.pcie.mrrs_bytes.0,
            read_tags: d.read_tags.0 as u16,
            ecrc: p.pcie.ecrc,
            tx_credits: rc.credits,
            completion_timeout: Span::from_ns(d.completion_timeout_us.0.saturating_mul(1_000)),
        }),
        up: Transmitter::new(link),
        down: Transmitter::new(link),
        port: RootPort::new(rc, p.pcie.mps_bytes.0, dllp.ack_every, dllp.update_fc_every),
        acks: AckCounter::new(dllp.ack_every),
        down_gate: FcGate::new(d.rx_credits.credits()),
        rx_credits: FcReturn::new(d.rx_credits.credits(), mmio_largest(), dllp.update_fc_every),
        bar0: d
            .bar0
            .map_or(DEFAULT_BAR0 + DEFAULT_BAR_STRIDE * i as u64, |b| b.0),
        mmio_writes: 0,
        feed: DeviceFeed::new(s, &d.name, i),
        up_scheduled: false,
        rc_scheduled: false,
        down_scheduled: false,
        timer_at: None,
    }
}

/// One program per core, in name order (programs and expanded templates, each CPU's parts
/// one after another); stores get data from the scenario's seed.
fn cpu_programs(s: &Scenario) -> Vec<CpuProgram> {
    crate::scenario::templates::cpu_plan(s)
        .into_iter()
        .enumerate()
        .map(|(i, (name, ops))| CpuProgram {
            name,
            core: cache::CoreId(i as u16),
            ops,
            next: 0,
            done_bytes: 0,
            rng: rand_xoshiro::rand_core::SeedableRng::seed_from_u64(
                s.seed ^ (0xc0de_0000 + i as u64),
            ),
            stats: CpuCounters::default(),
            host: None,
            wait: None,
            wait_since: Tick::ZERO,
            transfers: None,
        })
        .collect()
}
