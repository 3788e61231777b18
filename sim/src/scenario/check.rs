//! Checks that relate several parts of a scenario: names that must exist or be unique,
//! credits the spec requires, and a work budget a run can finish in.

use super::software::{Semantics, UnmapInvalidation};
use super::templates::{self, ExchangeDirection};
use super::{
    CpuOp, DeviceOp, IommuSpec, Scenario, Step, StreamDirection, Workload, MAX_WORKLOAD_BYTES,
};
use crate::system::amdvi_host::AmdviHost;
use crate::system::api_ops::AttachStep;
use crate::system::domain_api::DomainApi;
use crate::system::driver::Driver;
use crate::system::vtd_host::VtdHost;
use std::collections::{BTreeMap, BTreeSet};

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
    check_workload(s, &names)?;
    check_iommu(s)?;
    check_credits(s)?;
    check_budget(s)
}

/// "No device is named ..." at `path`.
fn unknown_device(
    names: &BTreeMap<&str, usize>,
    path: Vec<Step>,
    name: &str,
) -> (Vec<Step>, String) {
    let known: Vec<_> = names.keys().map(|n| format!("\"{n}\"")).collect();
    (
        path,
        format!(
            "no device is named \"{name}\": expected one of {}",
            known.join(", ")
        ),
    )
}

/// The workload's devices exist, its CPU programs (those of programs and templates
/// together) fit the cores, every `all` lists something, and the templates are consistent.
fn check_workload(s: &Scenario, names: &BTreeMap<&str, usize>) -> Result<(), (Vec<Step>, String)> {
    check_lists(&s.workload, vec![key("workload")])?;
    let mut cpus = BTreeSet::new();
    for (at, w) in templates::leaves(&s.workload) {
        check_leaf(s, w, &at, names, &mut cpus)?;
    }
    Ok(())
}

/// Every `all` lists at least one workload, and the whole workload moves at most 4 GiB.
fn check_lists(w: &Workload, at: Vec<Step>) -> Result<(), (Vec<Step>, String)> {
    let Workload::All(list) = w else {
        return Ok(());
    };
    let here = [at, vec![key("all")]].concat();
    if list.is_empty() {
        return Err((
            here,
            "an empty list: expected at least one workload to run".to_owned(),
        ));
    }
    let total = templates::workload_bytes(w);
    if total > u128::from(MAX_WORKLOAD_BYTES) {
        return Err((
            here,
            format!(
                "these workloads move {total} bytes together, more than the {MAX_WORKLOAD_BYTES} \
                 bytes (4 GiB) a run can simulate"
            ),
        ));
    }
    for (i, w) in list.iter().enumerate() {
        check_lists(w, [here.clone(), vec![Step::Index(i)]].concat())?;
    }
    Ok(())
}

/// One stream, program or template of the workload, at JSON path `at`; `cpus` collects the
/// CPU programs so far.
fn check_leaf<'s>(
    s: &'s Scenario,
    w: &'s Workload,
    at: &[Step],
    names: &BTreeMap<&str, usize>,
    cpus: &mut BTreeSet<&'s str>,
) -> Result<(), (Vec<Step>, String)> {
    let path = |k: &[&str]| [at.to_vec(), k.iter().map(|k| key(k)).collect()].concat();
    let cores = s.platform.cpu.cores.0;
    let too_many = |n: usize| {
        format!(
            "{n} CPU programs but platform.cpu.cores is {cores}: expected at most one program \
             per core"
        )
    };
    match w {
        Workload::Stream(st) => {
            if !names.contains_key(st.device.as_str()) {
                return Err(unknown_device(
                    names,
                    path(&["stream", "device"]),
                    &st.device,
                ));
            }
        }
        Workload::Program(p) => {
            cpus.extend(p.cpus.keys().map(String::as_str));
            if cpus.len() as u64 > cores {
                return Err((path(&["program", "cpus"]), too_many(cpus.len())));
            }
            for (cpu, ops) in &p.cpus {
                for (i, op) in ops.iter().enumerate() {
                    let (op_name, device) = match op {
                        CpuOp::MmioWrite(w) => ("mmio_write", &w.device),
                        CpuOp::Wait(w) => ("wait", &w.device),
                        CpuOp::Attach(a) => ("attach", &a.device),
                        CpuOp::Detach(d) => ("detach", &d.device),
                        _ => continue,
                    };
                    if !names.contains_key(device.as_str()) {
                        let mut p = path(&["program", "cpus", cpu]);
                        p.extend([Step::Index(i), key(op_name), key("device")]);
                        return Err(unknown_device(names, p, device));
                    }
                }
            }
            for dev in p.devices.keys() {
                if !names.contains_key(dev.as_str()) {
                    let mut e = unknown_device(names, path(&["program", "devices", dev]), dev);
                    e.1 =
                        e.1.replacen("no device", "the program names a device, but no device", 1);
                    return Err(e);
                }
            }
        }
        Workload::BufferExchange(b) => {
            if !names.contains_key(b.device.as_str()) {
                let p = path(&["buffer_exchange", "device"]);
                return Err(unknown_device(names, p, &b.device));
            }
            cpus.insert(b.cpu.as_str());
            if cpus.len() as u64 > cores {
                return Err((path(&["buffer_exchange", "cpu"]), too_many(cpus.len())));
            }
            templates::check_exchange(b, &path(&["buffer_exchange"]))?;
        }
        // `leaves` lists what an `all` holds, never the list itself.
        Workload::All(_) => {}
    }
    Ok(())
}

/// A CPU operation of a program: the program's JSON path, the operation's index.
type OpAt<'s> = (&'s [Step], usize, &'s CpuOp);

/// Whether a CPU operation is one of the host's IOMMU operations.
fn is_iommu_op(op: &CpuOp) -> bool {
    matches!(
        op,
        CpuOp::IommuMap(_)
            | CpuOp::IommuUnmap(_)
            | CpuOp::IommuInvalidate(_)
            | CpuOp::Enforce(_)
            | CpuOp::Attach(_)
            | CpuOp::Detach(_)
            | CpuOp::PteUpdate(_)
    )
}

/// Replays a program's `enforce`, `attach`, `detach` or `pte_update` on the driver copy:
/// what the scenario gets wrong, with the field of the operation at fault (`None`: the
/// operation itself). An enforcement that fails or an attach the API refuses is not wrong:
/// it happens at run time and the report says so.
fn replay_host_op(
    s: &Scenario,
    api: &mut DomainApi,
    host: &mut Driver,
    op: &CpuOp,
) -> Option<(Option<&'static str>, String)> {
    let bdf = |device: &str| s.devices.iter().find(|d| d.name == device).map(|d| d.bdf);
    let r = match op {
        CpuOp::Enforce(e) => api.enforce(host, &e.domain, "").map(|_| ()),
        CpuOp::Attach(a) => {
            let bdf = bdf(&a.device)?;
            loop {
                match api.attach(host, &a.device, bdf, &a.domain, "") {
                    Ok(AttachStep::Detached(_)) => continue,
                    Ok(AttachStep::Done(_)) => break Ok(()),
                    Err(e) => break Err(e),
                }
            }
        }
        CpuOp::Detach(d) => api.detach(host, &d.device, bdf(&d.device)?).map(|_| ()),
        CpuOp::PteUpdate(p) => {
            return host.pte_update(p).err().map(|(f, m)| (Some(f), m));
        }
        _ => Ok(()),
    };
    r.err().map(|m| (None, m))
}

/// The IOMMU's tables build (the same code boots them), and the CPU programs' IOMMU
/// operations are accepted by the driver: they are replayed on a copy of the booted driver
/// and domain API, each CPU's in program order, CPUs in name order, each unmap followed by
/// the invalidation `software.unmap_invalidation` makes the driver issue after it (strict:
/// the range's; deferred: the domain's flush). (Two CPUs mapping and unmapping the same
/// IOVA, or attaching and updating the same device and domain, can still meet in another
/// order at run time; that is refused then.)
fn check_iommu(s: &Scenario) -> Result<(), (Vec<Step>, String)> {
    let names: Vec<_> = s.devices.iter().map(|d| (d.name.clone(), d.bdf)).collect();
    let mut api = DomainApi::new(s).map_err(|e| (e.steps, e.message))?;
    let (mut host, vendor) = match &api.apply(&s.platform.iommu) {
        IommuSpec::Vtd(spec) => {
            let (host, _) = VtdHost::boot(spec, &names).map_err(|e| (e.steps, e.message))?;
            (Some(Driver::Vtd(host)), "vtd")
        }
        IommuSpec::Amdvi(spec) => {
            let (host, _) = AmdviHost::boot(spec, &names).map_err(|e| (e.steps, e.message))?;
            (Some(Driver::Amdvi(host)), "amdvi")
        }
        IommuSpec::None { .. } => (None, "none"),
    };
    // Each CPU's IOMMU operations in the order they run (the programs of an `all` one
    // after another), with the path of their program.
    let mut by_cpu: BTreeMap<&str, Vec<OpAt>> = BTreeMap::new();
    let leaves = templates::leaves(&s.workload);
    for (at, w) in &leaves {
        let Workload::Program(p) = w else { continue };
        for (cpu, ops) in &p.cpus {
            let iommu_ops = ops.iter().enumerate().filter(|(_, op)| is_iommu_op(op));
            let list = by_cpu.entry(cpu).or_default();
            list.extend(iommu_ops.map(|(i, op)| (at.as_slice(), i, op)));
        }
    }
    for (cpu, ops) in &by_cpu {
        for &(at, i, op) in ops {
            let (name, domain) = match op {
                CpuOp::IommuMap(m) => ("iommu_map", Some(&m.domain)),
                CpuOp::IommuUnmap(u) => ("iommu_unmap", Some(&u.domain)),
                CpuOp::IommuInvalidate(v) => ("iommu_invalidate", v.domain.as_ref()),
                CpuOp::Enforce(e) => ("enforce", Some(&e.domain)),
                CpuOp::Attach(a) => ("attach", Some(&a.domain)),
                CpuOp::Detach(_) => ("detach", None),
                CpuOp::PteUpdate(p) => ("pte_update", Some(&p.domain)),
                _ => continue,
            };
            let path = |field: Option<&str>| {
                let mut v = at.to_vec();
                v.extend([
                    key("program"),
                    key("cpus"),
                    key(cpu),
                    Step::Index(i),
                    key(name),
                ]);
                v.extend(field.map(key));
                v
            };
            let Some(host) = host.as_mut() else {
                return Err((
                    path(None),
                    format!("{name} needs an IOMMU: platform.iommu is \"none\""),
                ));
            };
            if matches!(op, CpuOp::Enforce(_)) && s.software.semantics != Semantics::V5_19 {
                return Err((
                    path(None),
                    "enforce_cache_coherency() came with v5.19: set software.semantics to \
                     \"v5_19\""
                        .to_owned(),
                ));
            }
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
                CpuOp::IommuMap(m) if m.mapping.snp && s.software.semantics != Semantics::None => {
                    let mut p = path(Some("mapping"));
                    p.push(key("snp"));
                    Some((
                        p,
                        "with software.semantics set, the domain API decides SNP: leave snp \
                         false and say IOMMU_CACHE with cache"
                            .to_owned(),
                    ))
                }
                CpuOp::IommuMap(m) => api
                    .map(host, &m.domain, &m.mapping, &mut writes)
                    .err()
                    .map(|e| (path(Some("mapping")), e)),
                CpuOp::IommuUnmap(u) => api
                    .unmap(
                        host,
                        &u.domain,
                        u.iova.0,
                        u.bytes.0,
                        u.page.into(),
                        &mut writes,
                    )
                    .err()
                    .map(|e| (path(None), e))
                    .or_else(|| {
                        // What the driver issues on its own after the unmap.
                        let (what, op) = match s.software.unmap_invalidation {
                            UnmapInvalidation::Explicit => return None,
                            UnmapInvalidation::Strict => {
                                ("strict", host.unmap_sync(&u.domain, u.iova.0, u.bytes))
                            }
                            UnmapInvalidation::Deferred(_) => {
                                ("deferred", Driver::flush_all(&u.domain))
                            }
                        };
                        api.invalidate(host, &op).err().map(|e| {
                            let m = format!(
                                "the driver cannot invalidate after this unmap \
                                 (software.unmap_invalidation is {what}): {e}"
                            );
                            (path(None), m)
                        })
                    }),
                CpuOp::IommuInvalidate(v) => api.invalidate(host, v).err().map(|e| (path(None), e)),
                _ => replay_host_op(s, &mut api, host, op).map(|(f, m)| (path(f), m)),
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
    let path = match &s.workload {
        Workload::Stream(_) => vec![key("workload"), key("stream"), key("count")],
        Workload::Program(_) => vec![key("workload"), key("program")],
        Workload::BufferExchange(_) => {
            vec![key("workload"), key("buffer_exchange"), key("iterations")]
        }
        Workload::All(_) => vec![key("workload"), key("all")],
    };
    (workload_tlps(&s.workload, mps, mrrs), path)
}

/// TLPs one workload needs.
fn workload_tlps(w: &Workload, mps: u64, mrrs: u64) -> u128 {
    match w {
        Workload::Stream(st) => {
            let w = tlps(st.transfer_bytes, true, mps, mrrs);
            let r = tlps(st.transfer_bytes, false, mps, mrrs);
            let per = match st.direction {
                StreamDirection::Write => w,
                StreamDirection::Read => r,
                StreamDirection::Mixed => w + r,
            };
            per * u128::from(st.count)
        }
        Workload::Program(p) => p
            .devices
            .values()
            .flatten()
            .map(|op| match op {
                DeviceOp::DmaWrite(d) => tlps(d.bytes.0, true, mps, mrrs),
                DeviceOp::DmaRead(d) => tlps(d.bytes.0, false, mps, mrrs),
                DeviceOp::WaitDoorbell(_) => 0,
            })
            .sum(),
        Workload::BufferExchange(b) => {
            let w = tlps(b.bytes.0, true, mps, mrrs);
            let r = tlps(b.bytes.0, false, mps, mrrs);
            let per = match b.direction {
                ExchangeDirection::DeviceToCpu => w,
                ExchangeDirection::CpuToDevice => r,
                ExchangeDirection::Both => w + r,
            };
            per * u128::from(b.iterations.0)
        }
        Workload::All(list) => list.iter().map(|w| workload_tlps(w, mps, mrrs)).sum(),
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
