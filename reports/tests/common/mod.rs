//! A hand-built report shared by the integration tests.

use std::collections::BTreeMap;

use reports::{
    ChainStep, ClassCount, Corruption, CpuStats, DevicePcieStats, Explanation, FaultLogStats,
    FaultRecord, Faults, IommuStats, LatencySummary, LinkDirectionStats, NamedCacheStats,
    PcieStats, Report, SimStats, StopReason, Throughput, VariantReport,
};

/// A variant with every section filled in, stopping for `stop_reason`.
pub fn variant(name: &str, stop_reason: StopReason) -> VariantReport {
    let mut params = BTreeMap::new();
    params.insert("iommu.snoop_control".to_owned(), serde_json::json!(false));
    params.insert("nic.ring_entries".to_owned(), serde_json::json!(256));
    params.insert("host.flush".to_owned(), serde_json::json!("clflushopt"));

    let mut corruption = Corruption {
        stale_cpu_read: ClassCount {
            events: 3,
            bytes: 192,
            first: vec![Explanation {
                address: reports::hex_address(0x1_2340),
                bytes: 64,
                summary: "cpu0 read a line the NIC had overwritten by DMA".to_owned(),
                chain: vec![
                    ChainStep {
                        tick_ps: 1_000,
                        actor: "cpu0".to_owned(),
                        what: "load fills line 0x12340 into L1".to_owned(),
                    },
                    ChainStep {
                        tick_ps: 123_456,
                        actor: "nic0".to_owned(),
                        what: "MWr 64 B to IOVA 0x8000 (no-snoop)".to_owned(),
                    },
                    ChainStep {
                        tick_ps: 250_001,
                        actor: "cpu0".to_owned(),
                        what: "load hits the stale L1 line".to_owned(),
                    },
                ],
            }],
        },
        lost_dma_write: ClassCount {
            events: 1,
            bytes: 64,
            first: Vec::new(),
        },
        ..Corruption::default()
    };
    corruption.recompute_total();

    let mut latency_ns = BTreeMap::new();
    latency_ns.insert(
        "dma_read".to_owned(),
        LatencySummary {
            count: 100,
            mean: 512.25,
            p50: 500.0,
            p90: 640.5,
            p99: 900.0,
            p999: 1000.0,
            max: 1001.0,
        },
    );
    latency_ns.insert(
        "dma_write".to_owned(),
        LatencySummary {
            count: 200,
            mean: 210.0,
            p50: 200.0,
            p90: 250.0,
            p99: 300.0,
            p999: 350.0,
            max: 360.0,
        },
    );

    VariantReport {
        name: name.to_owned(),
        params,
        corruption,
        faults: Faults {
            count: 7,
            records: (0..6)
                .map(|i| FaultRecord {
                    tick_ps: 10_000 * (i + 1),
                    requester: "01:00.0".to_owned(),
                    address: reports::hex_address(0xdead_0000 + 0x1000 * i),
                    access: "read".to_owned(),
                    reason_code: 6,
                    reason: "read denied: second-level entry has R=0".to_owned(),
                    logged: format!("recorded in FRCD {i}"),
                })
                .collect(),
        },
        latency_ns,
        throughput: Throughput::new(64_000, 20_000.0, 7.877),
        pcie: PcieStats {
            devices: vec![DevicePcieStats {
                name: "nic0".to_owned(),
                requester: "01:00.0".to_owned(),
                up: LinkDirectionStats {
                    tlps: 1000,
                    dllps: 250,
                    wire_bytes: 276_000,
                    busy_ns: 35_000.0,
                    utilisation: 0.875,
                },
                down: LinkDirectionStats::default(),
                tag_stalls: 0,
                credit_stalls: 3,
                completion_timeouts: 0,
                unexpected_completions: 0,
                error_completions: 0,
                failed_transfers: 0,
                mmio_writes: 2,
            }],
        },
        iommu: IommuStats {
            kind: "vtd".to_owned(),
            translations: 1000,
            iotlb_hits: 900,
            iotlb_misses: 100,
            walks: 80,
            walk_memory_reads: 240,
            merged_walks: 20,
            caches: vec![
                NamedCacheStats {
                    name: "context".to_owned(),
                    hits: 79,
                    misses: 1,
                },
                NamedCacheStats {
                    name: "sl_pde".to_owned(),
                    hits: 60,
                    misses: 20,
                },
            ],
            fault_log: FaultLogStats {
                logged: 6,
                collapsed: 0,
                overflowed: 1,
                suppressed: 0,
            },
            invalidations: 3,
            units: Vec::new(),
        },
        cpu: CpuStats {
            loads: 5000,
            stores: 4000,
            clflush: 0,
            clflushopt: 64,
            clwb: 0,
            mmio_writes: 2,
            wbinvd: 0,
            stall_ns: 1234.5,
            flush_ns: 234.5,
            wbinvd_emulated: 0,
            wbinvd_ignored: 0,
            ipis: 0,
        },
        host: None,
        sim: SimStats {
            events: 123_456,
            tlps: 2000,
            sim_time_ns: 20_000.0,
            wall_ms: 12.5,
            stop_reason,
        },
    }
}

/// A report with the given variants.
pub fn report(variants: Vec<VariantReport>) -> Report {
    Report {
        scenario: "nic-rx-noncoherent".to_owned(),
        description: "A NIC receives into a ring the driver never flushes.".to_owned(),
        seed: 42,
        snoopsim_version: "0.1.0".to_owned(),
        variants,
    }
}
