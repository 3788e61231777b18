//! Checks that relate several parts of a scenario: names that must exist or be unique,
//! credits the spec requires, and a work budget a run can finish in.

use super::{CpuOp, DeviceOp, IommuSpec, Scenario, Step, StreamDirection, Workload};
use crate::system::amdvi_host::AmdviHost;
use crate::system::driver::Driver;
use crate::system::vtd_host::VtdHost;
use std::collections::BTreeMap;

fn key(k: &str) -> Step {
    Step::Key(k.to_owned())
}

/// Most TLPs all the variants of a sweep may need together: some ten minutes on two cores.
pub const MAX_TLPS_PER_SWEEP: u128 = 500_000_000;

/// Most TLPs one variant may need, about a minute of simulation at several million events
/// per second (each TLP costs five to eight events).
pub const MAX_TLPS_PER_VARIANT: u128 = 50_000_000;

/// Checks that relate several parts of a scenario.
pub(super) fn check(s: &Scenario) -> Result<(), (Vec<Step>, String)> {
    if s.name.trim().is_empty() {
        return Err((
            vec![key("name")],
            "the name is empty: expected a short name".to_owned(),
        ));
    }
    if s.devices.is_empty() {
        return Err((
            vec![key("devices")],
            "no devices: expected at least one".to_owned(),
        ));
    }
    let mut names = BTreeMap::new();
    let mut bdfs = BTreeMap::new();
    for (i, d) in s.devices.iter().enumerate() {
        if let Some(j) = names.insert(d.name.as_str(), i) {
            return Err((
                vec![key("devices"), Step::Index(i), key("name")],
                format!("device name \"{}\" is already used by devices[{j}]", d.name),
            ));
        }
        if let Some(j) = bdfs.insert(d.bdf, i) {
            return Err((
                vec![key("devices"), Step::Index(i), key("bdf")],
                format!("requester ID {} is already used by devices[{j}]", d.bdf),
            ));
        }
    }
    let unknown = |path: Vec<Step>, name: &str| {
        let known: Vec<_> = names.keys().map(|n| format!("\"{n}\"")).collect();
        (
            path,
            format!(
                "no device is named \"{name}\": expected one of {}",
                known.join(", ")
            ),
        )
    };
    match &s.workload {
        Workload::Stream(st) => {
            if !names.contains_key(st.device.as_str()) {
                return Err(unknown(
                    vec![key("workload"), key("stream"), key("device")],
                    &st.device,
                ));
            }
        }
        Workload::Program(p) => {
            if p.cpus.len() as u64 > s.platform.cpu.cores.0 {
                return Err((
                    vec![key("workload"), key("program"), key("cpus")],
                    format!(
                        "{} CPU programs but platform.cpu.cores is {}: expected at most one \
                         program per core",
                        p.cpus.len(),
                        s.platform.cpu.cores.0
                    ),
                ));
            }
            for (cpu, ops) in &p.cpus {
                for (i, op) in ops.iter().enumerate() {
                    let CpuOp::MmioWrite(w) = op else { continue };
                    if !names.contains_key(w.device.as_str()) {
                        let path = vec![
                            key("workload"),
                            key("program"),
                            key("cpus"),
                            key(cpu),
                            Step::Index(i),
                            key("mmio_write"),
                            key("device"),
                        ];
                        return Err(unknown(path, &w.device));
                    }
                }
            }
            for dev in p.devices.keys() {
                if !names.contains_key(dev.as_str()) {
                    let mut e = unknown(
                        vec![key("workload"), key("program"), key("devices"), key(dev)],
                        dev,
                    );
                    e.1 =
                        e.1.replacen("no device", "the program names a device, but no device", 1);
                    return Err(e);
                }
            }
        }
    }
    check_iommu(s)?;
    check_credits(s)?;
    check_budget(s)
}

/// The IOMMU's tables build (the same code boots them), and the CPU programs' IOMMU
/// operations are accepted by the driver: they are replayed on a copy of the booted driver,
/// each CPU's in program order, CPUs in name order. (Two CPUs mapping and unmapping the same
/// IOVA can still meet in another order at run time; that is refused then.)
fn check_iommu(s: &Scenario) -> Result<(), (Vec<Step>, String)> {
    let devices = || s.devices.iter().map(|d| (d.name.clone(), d.bdf)).collect();
    let (mut host, vendor) = match &s.platform.iommu {
        IommuSpec::Vtd(spec) => {
            let (host, _) = VtdHost::boot(spec, &devices()).map_err(|e| (e.steps, e.message))?;
            (Some(Driver::Vtd(host)), "vtd")
        }
        IommuSpec::Amdvi(spec) => {
            let (host, _) = AmdviHost::boot(spec, &devices()).map_err(|e| (e.steps, e.message))?;
            (Some(Driver::Amdvi(host)), "amdvi")
        }
        IommuSpec::None { .. } => (None, "none"),
    };
    let Workload::Program(p) = &s.workload else {
        return Ok(());
    };
    for (cpu, ops) in &p.cpus {
        for (i, op) in ops.iter().enumerate() {
            let (name, domain) = match op {
                CpuOp::IommuMap(m) => ("iommu_map", Some(&m.domain)),
                CpuOp::IommuUnmap(u) => ("iommu_unmap", Some(&u.domain)),
                CpuOp::IommuInvalidate(v) => ("iommu_invalidate", v.domain.as_ref()),
                _ => continue,
            };
            let path = |field: Option<&str>| {
                let mut v = vec![
                    key("workload"),
                    key("program"),
                    key("cpus"),
                    key(cpu),
                    Step::Index(i),
                    key(name),
                ];
                v.extend(field.map(key));
                v
            };
            let Some(host) = host.as_mut() else {
                return Err((
                    path(None),
                    format!("{name} needs an IOMMU: platform.iommu is \"none\""),
                ));
            };
            if let Some(d) = domain {
                if !host.has_domain(d) {
                    return Err((
                        path(Some("domain")),
                        format!("no domain is named \"{d}\" in platform.iommu.{vendor}.domains"),
                    ));
                }
            }
            let mut writes = Vec::new();
            let refused = match op {
                CpuOp::IommuMap(m) => host
                    .map(&m.domain, &m.mapping, &mut writes)
                    .err()
                    .map(|e| (path(Some("mapping")), e)),
                CpuOp::IommuUnmap(u) => host
                    .unmap(&u.domain, u.iova.0, u.bytes.0, u.page.into(), &mut writes)
                    .err()
                    .map(|e| (path(None), e)),
                CpuOp::IommuInvalidate(v) => host.invalidate(v).err().map(|e| (path(None), e)),
                _ => None,
            };
            if let Some(e) = refused {
                return Err(e);
            }
        }
    }
    Ok(())
}

/// A finite posted-data advertisement must hold the largest write: Max_Payload_Size / 16
/// credits (PCIe Base 6.0 §2.6.1, minimum advertisements).
fn check_credits(s: &Scenario) -> Result<(), (Vec<Step>, String)> {
    let mps = u64::from(s.platform.pcie.mps_bytes.0);
    let pd = s.platform.root_complex.credits.posted_data.0;
    if pd != 0 && pd * 16 < mps {
        return Err((
            vec![
                key("platform"),
                key("root_complex"),
                key("credits"),
                key("posted_data"),
            ],
            format!(
                "{pd} posted data credits hold {} bytes, less than one {mps}-byte write \
                 (Max_Payload_Size): expected at least {} or 0 (infinite)",
                pd * 16,
                mps / 16
            ),
        ));
    }
    Ok(())
}

/// TLPs (requests and completions) a transfer of `len` bytes needs.
fn tlps(len: u64, write: bool, mps: u64, mrrs: u64) -> u128 {
    if write {
        u128::from(len.div_ceil(mps))
    } else {
        u128::from(len.div_ceil(mrrs) + len.div_ceil(mps))
    }
}

/// TLPs a scenario's workload needs, and the path to blame if that is too many.
pub(super) fn tlp_estimate(s: &Scenario) -> (u128, Vec<Step>) {
    let mps = u64::from(s.platform.pcie.mps_bytes.0);
    let mrrs = u64::from(s.platform.pcie.mrrs_bytes.0);
    match &s.workload {
        Workload::Stream(st) => {
            let w = tlps(st.transfer_bytes, true, mps, mrrs);
            let r = tlps(st.transfer_bytes, false, mps, mrrs);
            let per = match st.direction {
                StreamDirection::Write => w,
                StreamDirection::Read => r,
                StreamDirection::Mixed => w + r,
            };
            (
                per * u128::from(st.count),
                vec![key("workload"), key("stream"), key("count")],
            )
        }
        Workload::Program(p) => {
            let n = p
                .devices
                .values()
                .flatten()
                .map(|op| match op {
                    DeviceOp::DmaWrite(d) => tlps(d.bytes.0, true, mps, mrrs),
                    DeviceOp::DmaRead(d) => tlps(d.bytes.0, false, mps, mrrs),
                    DeviceOp::WaitDoorbell(_) => 0,
                })
                .sum();
            (n, vec![key("workload"), key("program")])
        }
    }
}

/// Rejects workloads too large to ever finish.
fn check_budget(s: &Scenario) -> Result<(), (Vec<Step>, String)> {
    let (need, path) = tlp_estimate(s);
    if need > MAX_TLPS_PER_VARIANT {
        return Err((
            path,
            format!(
                "this workload needs about {need} TLPs, more than the {MAX_TLPS_PER_VARIANT} a run \
                 can simulate in reasonable time: lower the count or raise the transfer size"
            ),
        ));
    }
    Ok(())
}
