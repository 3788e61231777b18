//! The JSON shape of a report is a contract with scripts and golden files: exact keys.

mod common;

use std::collections::BTreeSet;

use reports::{render_json, Corruption, Report, StopReason};
use serde_json::Value;

fn keys(value: &Value) -> BTreeSet<&str> {
    value
        .as_object()
        .expect("a JSON object")
        .keys()
        .map(String::as_str)
        .collect()
}

fn set(names: &[&'static str]) -> BTreeSet<&'static str> {
    names.iter().copied().collect()
}

fn sample_json() -> Value {
    let report = common::report(vec![common::variant("snoop_off", StopReason::TimeLimit)]);
    serde_json::to_value(&report).expect("serializes")
}

#[test]
fn report_and_variant_keys_are_exactly_the_documented_ones() {
    let json = sample_json();
    assert_eq!(
        keys(&json),
        set(&[
            "scenario",
            "description",
            "seed",
            "snoopsim_version",
            "variants"
        ])
    );
    let variant = &json["variants"][0];
    assert_eq!(
        keys(variant),
        set(&[
            "name",
            "params",
            "corruption",
            "faults",
            "latency_ns",
            "throughput",
            "pcie",
            "iommu",
            "cpu",
            "sim"
        ])
    );
}

#[test]
fn section_keys_are_exactly_the_documented_ones() {
    let json = sample_json();
    let v = &json["variants"][0];
    assert_eq!(
        keys(&v["corruption"]),
        set(&[
            "stale_cpu_read",
            "stale_device_read",
            "lost_dma_write",
            "misdirected_dma",
            "total_events"
        ])
    );
    let class = &v["corruption"]["stale_cpu_read"];
    assert_eq!(keys(class), set(&["events", "bytes", "first"]));
    assert_eq!(
        keys(&class["first"][0]),
        set(&["address", "bytes", "summary", "chain"])
    );
    assert_eq!(
        keys(&class["first"][0]["chain"][0]),
        set(&["tick_ps", "actor", "what"])
    );
    assert_eq!(keys(&v["faults"]), set(&["count", "records"]));
    assert_eq!(
        keys(&v["faults"]["records"][0]),
        set(&[
            "tick_ps",
            "requester",
            "address",
            "access",
            "reason_code",
            "reason",
            "logged"
        ])
    );
    assert_eq!(
        keys(&v["latency_ns"]["dma_read"]),
        set(&["count", "mean", "p50", "p90", "p99", "p999", "max"])
    );
    assert_eq!(
        keys(&v["throughput"]),
        set(&["bytes", "sim_time_ns", "gbps", "link_limit_gbps"])
    );
    assert_eq!(
        keys(&v["iommu"]),
        set(&[
            "kind",
            "translations",
            "iotlb_hits",
            "iotlb_misses",
            "walks",
            "walk_memory_reads",
            "merged_walks",
            "caches",
            "fault_log",
            "invalidations"
        ])
    );
    assert_eq!(
        keys(&v["cpu"]),
        set(&[
            "loads",
            "stores",
            "mmio_writes",
            "clflush",
            "clflushopt",
            "clwb",
            "wbinvd",
            "stall_ns",
            "flush_ns",
            "wbinvd_emulated",
            "wbinvd_ignored",
            "ipis"
        ])
    );
    assert_eq!(
        keys(&v["sim"]),
        set(&["events", "tlps", "sim_time_ns", "wall_ms", "stop_reason"])
    );
}

#[test]
fn stop_reason_serializes_snake_case() {
    assert_eq!(
        sample_json()["variants"][0]["sim"]["stop_reason"],
        "time_limit"
    );
    for (reason, name) in [
        (StopReason::Completed, "completed"),
        (StopReason::TimeLimit, "time_limit"),
        (StopReason::EventLimit, "event_limit"),
    ] {
        assert_eq!(serde_json::to_value(reason).unwrap(), name);
        assert_eq!(reason.as_str(), name);
        assert_eq!(
            serde_json::from_value::<StopReason>(Value::from(name)).unwrap(),
            reason
        );
    }
}

#[test]
fn addresses_are_lowercase_hex_strings() {
    let json = sample_json();
    let first = &json["variants"][0]["corruption"]["stale_cpu_read"]["first"][0];
    assert_eq!(first["address"], "0x12340");
    assert_eq!(
        json["variants"][0]["faults"]["records"][1]["address"],
        "0xdead1000"
    );
}

#[test]
fn round_trip_through_json_is_lossless() {
    let report = common::report(vec![
        common::variant("snoop_off", StopReason::TimeLimit),
        common::variant("snoop_on", StopReason::Completed),
    ]);
    let text = render_json(&report);
    assert!(text.ends_with("}\n"));
    let back: Report = serde_json::from_str(&text).expect("deserializes");
    assert_eq!(back, report);
}

#[test]
fn recompute_total_sums_the_four_classes() {
    let mut c = Corruption::default();
    c.stale_cpu_read.events = 1;
    c.stale_device_read.events = 20;
    c.lost_dma_write.events = 300;
    c.misdirected_dma.events = 4000;
    c.total_events = 99;
    c.recompute_total();
    assert_eq!(c.total_events, 4321);
}

#[test]
fn class_names_are_the_json_keys() {
    let json = sample_json();
    let corruption = &json["variants"][0]["corruption"];
    let report = common::variant("v", StopReason::Completed);
    for (name, class) in report.corruption.classes() {
        assert_eq!(corruption[name]["events"], class.events, "class {name}");
    }
    assert_eq!(Corruption::CLASS_NAMES.len(), keys(corruption).len() - 1);
}

#[test]
fn throughput_is_bytes_per_ns_and_zero_without_time() {
    let t = reports::Throughput::new(64_000, 20_000.0, 8.0);
    assert_eq!(t.gbps, 3.2);
    assert_eq!(t.percent_of_limit(), Some(40.0));
    let empty = reports::Throughput::new(10, 0.0, 0.0);
    assert_eq!(empty.gbps, 0.0);
    assert_eq!(empty.percent_of_limit(), None);
}

#[test]
fn several_units_add_a_units_list_and_a_refusing_domain_lists_its_refusals() {
    let mut variant = common::variant("two-units", StopReason::Completed);
    variant.iommu.units = vec![reports::UnitStats {
        name: "dmar1".to_owned(),
        translations: 16,
        iotlb_hits: 8,
        iotlb_misses: 1,
        walks: 1,
        faults: 0,
        invalidations: 2,
    }];
    variant.host = Some(reports::HostReport {
        semantics: "v5_19".to_owned(),
        domains: vec![reports::DomainDecision {
            name: "guest".to_owned(),
            owner: "vfio".to_owned(),
            enforce: "succeeded".to_owned(),
            no_snoop: "blocked: SNP on every leaf".to_owned(),
            refused: vec!["nic (dmar1: ECAP.SC = 0)".to_owned()],
            enforce_calls: vec!["cpu0 at 1.250 µs: succeeded".to_owned()],
        }],
        kvm: None,
    });
    let json = serde_json::to_value(common::report(vec![variant])).expect("serializes");
    let v = &json["variants"][0];
    assert!(keys(&v["iommu"]).contains("units"));
    assert_eq!(
        keys(&v["iommu"]["units"][0]),
        set(&[
            "name",
            "translations",
            "iotlb_hits",
            "iotlb_misses",
            "walks",
            "faults",
            "invalidations"
        ])
    );
    assert_eq!(
        keys(&v["host"]["domains"][0]),
        set(&[
            "name",
            "owner",
            "enforce",
            "no_snoop",
            "refused",
            "enforce_calls"
        ])
    );
    assert_eq!(
        v["host"]["domains"][0]["enforce_calls"][0],
        "cpu0 at 1.250 µs: succeeded"
    );
    assert_eq!(
        v["host"]["domains"][0]["refused"][0],
        "nic (dmar1: ECAP.SC = 0)"
    );
    // One unit and no refusal: neither key appears (the shape of every earlier report).
    let plain = sample_json();
    assert!(!keys(&plain["variants"][0]["iommu"]).contains("units"));
}
