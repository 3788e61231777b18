//! Running variants and turning a finished system into a report.

use crate::engine::{self, EventQueue, Limits, StopReason};
use crate::scenario::{Loaded, Variant};
use crate::system::{Event, SimError, System};
use model_core::{Span, Tick};
use rayon::prelude::*;
use reports::{
    CpuStats, DevicePcieStats, FaultLogStats, Faults, IommuStats, LinkDirectionStats,
    NamedCacheStats, PcieStats, Report, SimStats, Throughput, UnitStats, VariantReport,
};
use std::time::Instant;

/// This build's version, written into every report.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// How to run.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RunOptions {
    /// Write `wall_ms` as 0 so that two runs give byte-identical reports.
    pub reproducible: bool,
}

/// A variant that could not be simulated.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("variant {variant}: {error}")]
pub struct RunError {
    /// The variant's name.
    pub variant: String,
    /// The broken invariant.
    pub error: SimError,
}

/// Runs every variant of a loaded scenario, in parallel, and assembles the report. The
/// report is the same whatever the number of threads: variants are independent and results
/// are kept in variant order.
pub fn run_loaded(loaded: &Loaded, opts: RunOptions) -> Result<Report, RunError> {
    let variants = loaded
        .variants
        .par_iter()
        .map(|v| run_variant(v, opts))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Report {
        scenario: loaded.scenario.name.clone(),
        description: loaded.scenario.description.clone(),
        seed: loaded.scenario.seed,
        snoopsim_version: VERSION.to_owned(),
        variants,
    })
}

/// Simulates one variant to its end (or a limit).
pub fn run_variant(v: &Variant, opts: RunOptions) -> Result<VariantReport, RunError> {
    let fail = |error| RunError {
        variant: v.name.clone(),
        error,
    };
    let wall = Instant::now();
    let s = &v.scenario;
    let mut system = System::new(s).map_err(fail)?;
    let mut queue = EventQueue::<Event>::new();
    system.start(&mut queue).map_err(fail)?;
    let limits = Limits {
        max_time: Tick::ZERO + Span::from_ns(s.limits.max_sim_time_us.0.saturating_mul(1_000)),
        max_events: s.limits.max_events.0,
    };
    let stop = engine::run(&mut queue, &mut system, limits).map_err(fail)?;
    let wall_ms = if opts.reproducible {
        0.0
    } else {
        wall.elapsed().as_secs_f64() * 1e3
    };
    Ok(report(v, &system, &queue, stop, wall_ms))
}

fn report(
    v: &Variant,
    system: &System,
    queue: &EventQueue<Event>,
    stop: StopReason,
    wall_ms: f64,
) -> VariantReport {
    let end = system.horizon.max(queue.now());
    let bytes: u64 = system
        .devices
        .iter()
        .map(|d| d.endpoint.stats().bytes_written + d.endpoint.stats().bytes_read)
        .sum();
    // The ceiling for this traffic: each device's link carries payload upstream (writes)
    // and downstream (read completions) independently, so a direction counts once it
    // carried payload.
    let link_limit: f64 = system
        .devices
        .iter()
        .map(|d| {
            let st = d.endpoint.stats();
            let directions = u8::from(st.bytes_written > 0) + u8::from(st.bytes_read > 0);
            d.up.config().raw_gbps() * f64::from(directions)
        })
        .sum();
    VariantReport {
        name: v.name.clone(),
        params: v.params.clone(),
        corruption: system.mem.observer().corruption(),
        faults: Faults {
            count: system.fault_count,
            records: system.faults.clone(),
        },
        latency_ns: system
            .latency
            .iter()
            .map(|(k, h)| ((*k).to_owned(), h.summary()))
            .collect(),
        // Throughput is over the workload: from the end of the driver's boot (table writes,
        // IOMMU registers), which precedes it, to the last thing performed.
        throughput: Throughput::new(
            bytes,
            end.saturating_since(system.boot_done).as_ns_f64(),
            link_limit,
        ),
        pcie: pcie_stats(system, end),
        iommu: iommu_stats(system),
        cpu: cpu_stats(system),
        host: system.software.report(),
        sim: SimStats {
            events: queue.processed(),
            tlps: system.tlps,
            sim_time_ns: end.as_ns_f64(),
            wall_ms,
            stop_reason: match stop {
                StopReason::Completed => reports::StopReason::Completed,
                StopReason::TimeLimit => reports::StopReason::TimeLimit,
                StopReason::EventLimit => reports::StopReason::EventLimit,
                StopReason::Stalled => reports::StopReason::Stalled,
            },
        },
    }
}

fn pcie_stats(system: &System, end: Tick) -> PcieStats {
    let dir = |l: pcie::LinkStats| LinkDirectionStats {
        tlps: l.tlps,
        dllps: l.dllps,
        wire_bytes: l.wire_bytes,
        busy_ns: l.busy.as_ns_f64(),
        utilisation: if end > Tick::ZERO {
            l.busy.as_ns_f64() / end.as_ns_f64()
        } else {
            0.0
        },
    };
    PcieStats {
        devices: system
            .devices
            .iter()
            .map(|d| DevicePcieStats {
                name: d.name.clone(),
                requester: d.endpoint.config().bdf.to_string(),
                up: dir(d.up.stats()),
                down: dir(d.down.stats()),
                tag_stalls: d.endpoint.stats().tag_stalls,
                credit_stalls: d.endpoint.stats().credit_stalls,
                completion_timeouts: d.endpoint.stats().completion_timeouts,
                unexpected_completions: d.endpoint.stats().unexpected_completions,
                error_completions: d.endpoint.stats().error_completions,
                failed_transfers: d.endpoint.stats().failed_transfers,
                mmio_writes: d.mmio_writes,
            })
            .collect(),
    }
}

fn iommu_stats(system: &System) -> IommuStats {
    // Summed over the units; caches by name, in the first unit's order (every unit of a
    // platform is of one kind and lists the same caches).
    let all: Vec<_> = system
        .units
        .iter()
        .map(|u| u.iommu.agent_ref().stats())
        .collect();
    let sum = |f: fn(&model_core::AgentStats) -> u64| all.iter().map(f).sum::<u64>();
    let mut caches: Vec<NamedCacheStats> = Vec::new();
    for (name, c) in all.iter().flat_map(|a| a.caches.iter()) {
        match caches.iter_mut().find(|x| x.name == *name) {
            Some(x) => {
                x.hits += c.hits;
                x.misses += c.misses;
            }
            None => caches.push(NamedCacheStats {
                name: (*name).to_owned(),
                hits: c.hits,
                misses: c.misses,
            }),
        }
    }
    let units = if system.units.len() > 1 {
        system
            .units
            .iter()
            .zip(&all)
            .map(|(u, a)| UnitStats {
                name: u.name.clone(),
                translations: u.translations,
                iotlb_hits: a.iotlb.hits,
                iotlb_misses: a.iotlb.misses,
                walks: a.walks,
                faults: u.faults,
                invalidations: a.invalidations,
            })
            .collect()
    } else {
        Vec::new()
    };
    IommuStats {
        kind: system
            .units
            .first()
            .map_or("none", |u| u.iommu.kind())
            .to_owned(),
        translations: system.translations,
        iotlb_hits: sum(|a| a.iotlb.hits),
        iotlb_misses: sum(|a| a.iotlb.misses),
        walks: sum(|a| a.walks),
        walk_memory_reads: sum(|a| a.walk_memory_reads),
        merged_walks: sum(|a| a.merged),
        caches,
        fault_log: FaultLogStats {
            logged: sum(|a| a.faults_logged),
            collapsed: sum(|a| a.faults_collapsed),
            overflowed: sum(|a| a.faults_overflowed),
            suppressed: sum(|a| a.faults_suppressed),
        },
        invalidations: sum(|a| a.invalidations),
        units,
    }
}

fn cpu_stats(system: &System) -> CpuStats {
    let f = system.mem.stats().flushes;
    let sum =
        |g: fn(&crate::system::CpuCounters) -> u64| system.cpus.iter().map(|c| g(&c.stats)).sum();
    CpuStats {
        loads: sum(|c| c.loads),
        stores: sum(|c| c.stores),
        clflush: f.clflush,
        clflushopt: f.clflushopt,
        clwb: f.clwb,
        wbinvd: f.wbinvd,
        // Summed in picoseconds: a float sum of nothing would be -0.0.
        stall_ns: system
            .cpus
            .iter()
            .map(|c| c.stats.stall)
            .fold(Span::ZERO, |a, b| a + b)
            .as_ns_f64(),
        flush_ns: system
            .cpus
            .iter()
            .map(|c| c.stats.maintenance)
            .fold(Span::ZERO, |a, b| a + b)
            .as_ns_f64(),
        mmio_writes: sum(|c| c.mmio_writes),
        wbinvd_emulated: sum(|c| c.wbinvd_emulated),
        wbinvd_ignored: sum(|c| c.wbinvd_ignored),
        ipis: sum(|c| c.ipis),
    }
}
