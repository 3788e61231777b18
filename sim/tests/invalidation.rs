//! What the driver does about the IOTLB after `iommu_unmap` (`software.unmap_invalidation`):
//! strict mode invalidates the range before the unmap returns, so a device still writing
//! the buffer faults at once; deferred mode (Linux's flush queue) leaves the stale IOTLB
//! entry usable until the queue fills or its timer expires, so writes inside the window
//! reach the freed page (misdirected DMA) and only later ones fault. The timer's flush is an
//! interrupt of the CPU that queued the batch's first range, taken on time wherever that CPU
//! is: in a `delay`, asleep in a `wait`, or done with its program.

use model_core::Tick;
use reports::VariantReport;
use snoopsim::engine::{self, EventQueue, Limits, StopReason};
use snoopsim::run::{run_loaded, RunOptions};
use snoopsim::scenario;
use snoopsim::system::driver::{FlushCause, FlushRecord};
use snoopsim::system::{Event, System};
use std::path::Path;

const SCENARIO: &str = "deferred-invalidation-window.json";
/// The shipped scenario's window.
const WINDOW_PS: u64 = 20_000_000;

fn shipped() -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../scenarios")
        .join(SCENARIO);
    std::fs::read_to_string(path).unwrap()
}

/// The shipped scenario on AMD-Vi: the same domain, mapping and attachment.
fn shipped_on_amdvi() -> String {
    let text = shipped();
    let vtd = "\"vtd\": {\n    \"mode\": \"legacy\",";
    assert!(text.contains(vtd), "the scenario's VT-d block moved");
    text.replace(vtd, "\"amdvi\": {")
}

fn load(text: &str) -> scenario::Loaded {
    scenario::parse(Path::new("<test>"), text).unwrap_or_else(|e| panic!("{e}\n{text}"))
}

fn load_err(text: &str) -> String {
    match scenario::parse(Path::new("<test>"), text) {
        Ok(_) => panic!("loaded: {text}"),
        Err(e) => e.to_string(),
    }
}

fn reports(text: &str) -> Vec<VariantReport> {
    run_loaded(&load(text), RunOptions::default())
        .unwrap()
        .variants
}

/// A finished system, for what the report does not say (the driver's flushes).
struct Sim {
    system: System,
    stop: StopReason,
    end: Tick,
}

impl Sim {
    fn flushes(&self) -> &[FlushRecord] {
        self.system.unmap_flushes()
    }
    fn misdirected(&self) -> reports::ClassCount {
        self.system.mem.observer().corruption().misdirected_dma
    }
    fn fault_ticks(&self) -> Vec<u64> {
        self.system.faults.iter().map(|f| f.tick_ps).collect()
    }
    /// Ticks of the misdirected writes' translations (the first event of each chain).
    fn misdirected_ticks(&self) -> Vec<u64> {
        self.misdirected()
            .first
            .iter()
            .map(|e| e.chain[0].tick_ps)
            .collect()
    }
}

/// Runs every variant of `text` to its end.
fn simulate(text: &str) -> Vec<Sim> {
    load(text)
        .variants
        .iter()
        .map(|v| {
            let mut system = System::new(&v.scenario).unwrap();
            let mut q = EventQueue::<Event>::new();
            system.start(&mut q).unwrap();
            let limits = Limits {
                max_time: Tick::MAX,
                max_events: 10_000_000,
            };
            let stop = engine::run(&mut q, &mut system, limits).unwrap();
            let end = q.now();
            Sim { system, stop, end }
        })
        .collect()
}

fn one(text: &str) -> Sim {
    let mut v = simulate(text);
    assert_eq!(v.len(), 1);
    v.pop().unwrap()
}

/// The NIC's domain maps three pages; the disk's domain one. `cpus` are the CPU programs,
/// `nic` and `disk` the device programs.
fn scenario(vendor: &str, policy: &str, cpus: &str, nic: &str, disk: &str) -> String {
    let mode = if vendor == "vtd" {
        r#""mode": "legacy","#
    } else {
        ""
    };
    format!(
        r#"{{"name": "t", "seed": 3,
  "platform": {{"cpu": {{"cores": 2}}, "iommu": {{"{vendor}": {{ {mode}
    "domains": [
      {{"name": "nic-dom", "id": 1, "mappings": [
        {{"iova": "0x1_0000", "pa": "0x20_0000", "bytes": 4096}},
        {{"iova": "0x2_0000", "pa": "0x21_0000", "bytes": 4096}},
        {{"iova": "0x3_0000", "pa": "0x22_0000", "bytes": 4096}}]}},
      {{"name": "disk-dom", "id": 2, "mappings": [
        {{"iova": "0x8_0000", "pa": "0x30_0000", "bytes": 4096}}]}}],
    "attach": [{{"device": "nic", "domain": "nic-dom"}}, {{"device": "disk", "domain": "disk-dom"}}]
  }}}}}},
  "software": {{"unmap_invalidation": {policy}}},
  "devices": [{{"name": "nic", "bdf": "01:00.0"}}, {{"name": "disk", "bdf": "02:00.0"}}],
  "workload": {{"program": {{"cpus": {cpus}, "devices": {{"nic": {nic}, "disk": {disk}}}}}}}
}}"#
    )
}

const DEFERRED_20US: &str = r#"{"deferred": {"window_ns": 20000, "entries": 256}}"#;

fn unmap(page: u32) -> String {
    format!(r#"{{"iommu_unmap": {{"domain": "nic-dom", "iova": "0x{page}_0000", "bytes": 4096}}}}"#)
}

/// `n` doorbells to the NIC, one every 3 µs, starting at once.
fn pacer(n: usize) -> String {
    let ring = r#"{"mmio_write": {"device": "nic", "offset": "0x0"}}, {"delay": {"ns": 3000}}"#;
    vec![ring; n].join(", ")
}

/// The NIC writes 256 bytes of page 1 at each of `n` doorbells.
fn nic_writes(n: usize) -> String {
    let step = r#"{"wait_doorbell": {"offset": "0x0"}}, {"dma_write": {"address": "0x1_0000", "bytes": 256}}"#;
    format!("[{}]", vec![step; n].join(", "))
}

#[test]
fn deferred_invalidation_misdirects_writes_inside_the_window_and_strict_faults_them() {
    let v = reports(&shipped());
    let (strict, deferred) = (&v[0], &v[1]);
    assert!(strict.name.contains("strict"), "{}", strict.name);
    assert!(deferred.name.contains("deferred"), "{}", deferred.name);
    for r in &v {
        assert_eq!(
            r.sim.stop_reason,
            reports::StopReason::Completed,
            "{}",
            r.name
        );
        // One invalidation each (the strict sync, the timer's flush): a descriptor and a wait.
        assert_eq!(r.iommu.invalidations, 2, "{}", r.name);
    }
    // Strict: the ten writes after the unmap all fault, none reaches memory.
    assert_eq!(strict.corruption.misdirected_dma.events, 0);
    assert_eq!(strict.faults.count, 10);
    // Deferred: the seven doorbells inside the 20 µs window (0, 3, ..., 18 µs after the
    // unmap) are written to the freed page through the stale IOTLB entry; the three after
    // the timer's flush fault.
    let m = &deferred.corruption.misdirected_dma;
    assert_eq!((m.events, m.bytes), (7, 7 * 256));
    assert_eq!(m.first[0].address, "0x200000");
    assert_eq!(deferred.faults.count, 3);
}

#[test]
fn the_timer_flush_comes_at_the_window_and_only_later_writes_fault() {
    let v = simulate(&shipped());
    let (strict, deferred) = (&v[0], &v[1]);
    // Strict: the unmapping CPU invalidates the range as soon as its PTE store is done.
    let s = strict.flushes();
    assert_eq!(s.len(), 1, "{s:?}");
    assert_eq!(s[0].cause, FlushCause::Strict);
    assert_eq!(s[0].started, s[0].first_queued);
    assert!(strict.fault_ticks()[0] > s[0].started.as_ps());
    // Deferred: one flush, by the timer, exactly a window after the range was queued (the
    // CPU is in a delay then, so it takes the interrupt at once).
    let d = deferred.flushes();
    assert_eq!(d.len(), 1, "{d:?}");
    assert_eq!(
        (d[0].cause, d[0].cpu, d[0].entries),
        (FlushCause::Timer, 0, 1)
    );
    let deadline = d[0].first_queued.as_ps() + WINDOW_PS;
    assert_eq!(d[0].started.as_ps(), deadline);
    // Every write translated before the deadline was misdirected; every fault is after it.
    let faults = deferred.fault_ticks();
    assert_eq!(faults.len(), 3);
    assert!(
        faults.iter().all(|&t| t >= deadline),
        "{faults:?} vs {deadline}"
    );
    assert!(
        faults[0] < deadline + 6_000_000,
        "{faults:?}: the flush ends soon after"
    );
    let misdirected = deferred.misdirected_ticks();
    assert!(!misdirected.is_empty());
    assert!(misdirected
        .iter()
        .all(|&t| t > d[0].first_queued.as_ps() && t < deadline));
}

#[test]
fn with_the_default_explicit_policy_the_unmap_invalidates_nothing() {
    let text = shipped().replace(
        r#""unmap_invalidation": "strict""#,
        r#""unmap_invalidation": "explicit""#,
    );
    let text = text
        .split("\"sweep\"")
        .next()
        .unwrap()
        .trim_end()
        .trim_end_matches(',')
        .to_owned()
        + "\n}";
    let r = one(&text);
    assert_eq!(r.stop, StopReason::Completed);
    assert!(r.flushes().is_empty());
    // All ten writes after the unmap use the stale entry: nobody ever invalidates it.
    assert_eq!(r.misdirected().events, 10);
    assert!(r.system.faults.is_empty());
}

#[test]
fn a_queue_of_one_entry_flushes_the_whole_domain_right_after_each_unmap() {
    // Each doorbell makes the NIC write page 1 (unmapped after the first) and page 2 (kept).
    let step = r#"{"wait_doorbell": {"offset": "0x0"}},
        {"dma_write": {"address": "0x1_0000", "bytes": 256}},
        {"dma_write": {"address": "0x2_0000", "bytes": 256}}"#;
    let nic = format!("[{}]", [step; 3].join(", "));
    let cpus = format!(
        r#"{{"cpu0": [{}, {{"delay": {{"ns": 2000}}}}, {}, {}]}}"#,
        r#"{"mmio_write": {"device": "nic", "offset": "0x0"}}"#,
        unmap(1),
        pacer(2)
    );
    let strict = scenario("vtd", r#""strict""#, &cpus, &nic, "[]");
    let one_entry = scenario(
        "vtd",
        r#"{"deferred": {"window_ns": 20000, "entries": 1}}"#,
        &cpus,
        &nic,
        "[]",
    );
    let misses = |text: &str| reports(text)[0].iommu.iotlb_misses;
    let (strict_misses, one_entry_misses) = (misses(&strict), misses(&one_entry));
    let (strict, one_entry) = (one(&strict), one(&one_entry));
    for r in [&strict, &one_entry] {
        assert_eq!(r.stop, StopReason::Completed);
        assert_eq!(r.misdirected().events, 0, "no write inside a window");
        assert_eq!(
            r.system.faults.len(),
            2,
            "both later writes to page 1 fault"
        );
        let f = r.flushes();
        assert_eq!(
            f[0].started, f[0].first_queued,
            "at once, before the CPU goes on"
        );
    }
    assert_eq!(strict.flushes().len(), 1);
    assert_eq!(strict.flushes()[0].cause, FlushCause::Strict);
    // A one-slot ring is always full: the range flushes the domain at once, then sits in
    // the ring until the timer it armed flushes again (fq_flush_timeout always flushes).
    let f = one_entry.flushes();
    assert_eq!(
        f.iter().map(|f| (f.cause, f.entries)).collect::<Vec<_>>(),
        [(FlushCause::Full, 1), (FlushCause::Timer, 1)]
    );
    assert_eq!(f[1].started.as_ps(), f[0].started.as_ps() + WINDOW_PS);
    // The difference: strict invalidates page 1 only, so page 2's next write still hits
    // the IOTLB; the queue's flush is domain-wide, so it misses once more.
    assert_eq!(one_entry_misses, strict_misses + 1);
}

#[test]
fn a_full_ring_flushes_at_once_keeps_the_range_that_filled_it_and_the_timer_runs_on() {
    let cpus = format!(
        r#"{{"cpu0": [{}, {{"delay": {{"ns": 1000}}}}, {}, {{"delay": {{"ns": 1000}}}}, {}]}}"#,
        unmap(1),
        unmap(2),
        unmap(3)
    );
    let r = one(&scenario(
        "vtd",
        r#"{"deferred": {"window_ns": 20000, "entries": 2}}"#,
        &cpus,
        "[]",
        "[]",
    ));
    assert_eq!(r.stop, StopReason::Completed);
    let f = r.flushes();
    // A two-slot ring holds one range: the second and the third each find it full, so
    // their CPU flushes both ranges before going on, and the range stays in the ring.
    assert_eq!(
        f.iter().map(|f| (f.cause, f.entries)).collect::<Vec<_>>(),
        [
            (FlushCause::Full, 2),
            (FlushCause::Full, 2),
            (FlushCause::Timer, 1)
        ],
        "{f:?}"
    );
    assert!(f[0].started.as_ps() >= f[0].first_queued.as_ps() + 1_000_000);
    assert!(f[0].started.as_ps() < f[0].first_queued.as_ps() + WINDOW_PS);
    // The timer the first range armed is not cancelled by the full-ring flushes: it fires
    // a window after the first range and flushes what is left.
    assert_eq!(f[2].started.as_ps(), f[0].first_queued.as_ps() + WINDOW_PS);
    // A run ends with the rings empty: it lasts until the timer's flush is done.
    assert!(r.end > f[2].started);
}

/// A VFIO domain never defers: `vfio_unmap_unpin` syncs before unpinning.
#[test]
fn a_vfio_domains_unmap_is_strict_whatever_the_policy() {
    let text = shipped().replace(
        r#""software": {"#,
        r#""software": {"semantics": "v5_19", "vfio_domains": ["nic-dom"], "#,
    );
    let v = reports(&text);
    for r in &v {
        assert_eq!(r.corruption.misdirected_dma.events, 0, "{}", r.name);
        assert!(r.faults.count > 0, "{}", r.name);
    }
}

/// cpu0 unmaps page 1 after 2 µs and then does `after`; cpu1 rings the NIC every 3 µs,
/// twelve times, then the disk's doorbell.
fn cpu_elsewhere(vendor: &str, after: &str) -> Sim {
    let cpu0 = format!(r#"[{{"delay": {{"ns": 2000}}}}, {}{after}]"#, unmap(1));
    let cpus = format!(
        r#"{{"cpu0": {cpu0}, "cpu1": [{}, {{"mmio_write": {{"device": "disk", "offset": "0x0"}}}}]}}"#,
        pacer(12)
    );
    let disk = r#"[{"wait_doorbell": {"offset": "0x0"}}, {"dma_write": {"address": "0x8_0000", "bytes": 256}}]"#;
    one(&scenario(
        vendor,
        DEFERRED_20US,
        &cpus,
        &nic_writes(12),
        disk,
    ))
}

#[test]
fn the_cpu_that_queued_takes_the_timer_on_time_in_a_delay_a_wait_or_after_its_program() {
    for (what, after) in [
        ("a 1 ms delay", r#", {"delay": {"ns": 1000000}}"#),
        (
            "a wait for the disk (done at ~36 µs)",
            r#", {"wait": {"device": "disk", "transfers": 1}}"#,
        ),
        ("the end of its program", ""),
    ] {
        let r = cpu_elsewhere("vtd", after);
        assert_eq!(r.stop, StopReason::Completed, "{what}");
        let f = r.flushes();
        assert_eq!(f.len(), 1, "{what}: {f:?}");
        assert_eq!((f[0].cause, f[0].cpu), (FlushCause::Timer, 0), "{what}");
        let deadline = f[0].first_queued.as_ps() + WINDOW_PS;
        assert_eq!(f[0].started.as_ps(), deadline, "{what}: on time");
        // Writes before the deadline went to the freed page; the ones after it fault, the
        // first of them within a few µs of the deadline, not at the end of the delay.
        assert!(
            r.misdirected().events >= 6,
            "{what}: {}",
            r.misdirected().events
        );
        let faults = r.fault_ticks();
        assert!(faults.len() >= 3, "{what}: {faults:?}");
        assert!(
            faults[0] >= deadline && faults[0] < deadline + 4_000_000,
            "{what}: {faults:?}"
        );
        // The disk's write went through, and the waiting CPU saw it.
        let disk = r.system.devices[1].endpoint.stats();
        assert_eq!(disk.bytes_written, 256, "{what}");
    }
}

#[test]
fn an_interrupted_delay_resumes_for_the_rest_of_its_time() {
    // cpu0's delay is its last but one step; the run ends with its final store.
    let after = r#", {"delay": {"ns": 100000}}, {"store": {"address": "0x40_0000", "bytes": 8}}"#;
    let cpus = |after: &str| format!(r#"{{"cpu0": [{}{after}]}}"#, unmap(1));
    let run = |policy: &str| one(&scenario("vtd", policy, &cpus(after), "[]", "[]"));
    let explicit = run(r#""explicit""#);
    let deferred = run(DEFERRED_20US);
    let f = deferred.flushes();
    assert_eq!(f.len(), 1, "{f:?}");
    assert_eq!(f[0].started.as_ps(), f[0].first_queued.as_ps() + WINDOW_PS);
    // The flush took the CPU's time: the delay ends that much later (a few hundred ns to a
    // few µs: descriptor stores, the doorbell, the unit's completion, the status load).
    let extra = deferred.end.as_ps() - explicit.end.as_ps();
    assert!((100_000..5_000_000).contains(&extra), "{extra} ps");
}

#[test]
fn amdvi_deferred_invalidation_misdirects_inside_the_window_and_strict_does_not() {
    let v = reports(&shipped_on_amdvi());
    let (strict, deferred) = (&v[0], &v[1]);
    for r in &v {
        assert_eq!(r.iommu.kind, "amdvi");
        assert_eq!(
            r.sim.stop_reason,
            reports::StopReason::Completed,
            "{}",
            r.name
        );
        // INVALIDATE_IOMMU_PAGES and COMPLETION_WAIT.
        assert_eq!(r.iommu.invalidations, 2, "{}", r.name);
    }
    assert_eq!(strict.corruption.misdirected_dma.events, 0);
    assert_eq!(strict.faults.count, 10);
    assert!(deferred.corruption.misdirected_dma.events >= 6);
    assert_eq!(
        deferred.corruption.misdirected_dma.first[0].address,
        "0x200000"
    );
    assert!(deferred.faults.count >= 2);
    assert_eq!(
        deferred.corruption.misdirected_dma.events + deferred.faults.count,
        10
    );
    // The timer's flush is on time on AMD-Vi too, with the CPU in another device's wait.
    let r = cpu_elsewhere("amdvi", r#", {"wait": {"device": "disk", "transfers": 1}}"#);
    let f = r.flushes();
    assert_eq!(f.len(), 1, "{f:?}");
    assert_eq!(f[0].started.as_ps(), f[0].first_queued.as_ps() + WINDOW_PS);
    assert!(r.fault_ticks()[0] >= f[0].started.as_ps());
}

#[test]
fn the_same_scenario_and_seed_give_the_same_results() {
    let opts = RunOptions { reproducible: true };
    let run = || {
        let r = run_loaded(&load(&shipped()), opts).unwrap();
        serde_json::to_string(&r).unwrap()
    };
    assert_eq!(run(), run());
}

#[test]
fn flush_queue_limits_are_checked_with_their_path() {
    let with = |policy: &str| scenario("vtd", policy, r#"{"cpu0": []}"#, "[]", "[]");
    let e = load_err(&with(r#"{"deferred": {"window_ns": 20000, "entries": 0}}"#));
    assert!(
        e.contains("software.unmap_invalidation.deferred.entries"),
        "{e}"
    );
    assert!(e.contains("expected 1 to 32768"), "{e}");
    let e = load_err(&with(r#"{"deferred": {"window_ns": 0}}"#));
    assert!(
        e.contains("software.unmap_invalidation.deferred.window_ns"),
        "{e}"
    );
    let e = load_err(&with(r#"{"deferred": {"window_ns": 2000000000}}"#));
    assert!(e.contains("expected 1 to 1000000000"), "{e}");
    let e = load_err(&with(r#"{"deferred": {"timeout_ms": 10}}"#));
    assert!(e.contains("timeout_ms"), "{e}");
    let e = load_err(&with(r#""lazy""#));
    assert!(
        e.contains("software.unmap_invalidation") && e.contains("strict"),
        "{e}"
    );
    // The defaults are Linux's: IOVA_FQ_TIMEOUT (10 ms) and IOVA_FQ_SIZE (256).
    let l = load(&with(r#"{"deferred": {}}"#));
    let s = &l.variants[0].scenario.software.unmap_invalidation;
    let want = scenario::software::UnmapInvalidation::Deferred(
        scenario::software::FlushQueueSpec::default(),
    );
    assert_eq!(*s, want);
    let scenario::software::UnmapInvalidation::Deferred(fq) = s else {
        unreachable!()
    };
    assert_eq!((fq.window_ns.0, fq.entries.0), (10_000_000, 256));
}
