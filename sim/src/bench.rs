//! The engine micro-benchmark behind `snoopsim bench engine`.
//!
//! Two figures, each the median of several timed runs (run it from a release build):
//! * `queue`: the bare event queue and run loop, with a trivial handler that keeps a fixed
//!   number of events pending at pseudo-random future ticks — the cost of scheduling and
//!   dispatch alone.
//! * `system`: a whole simulation (a mixed DMA stream through link, root complex, identity
//!   IOMMU and DRAM) — events per second of real work.
//! * `system-vtd`: the same stream through a VT-d unit with 4-level tables and 4 KiB pages
//!   (every buffer a new page: IOTLB misses, walks through the caches) — the cost of the
//!   IOMMU model, and events per second with it.

use crate::engine::{self, EventQueue, Handler, Limits};
use crate::run::{run_variant, RunOptions};
use crate::scenario;
use model_core::{Span, Tick};
use std::path::Path;
use std::time::Instant;

/// One measured figure.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Figure {
    /// What was measured.
    pub name: &'static str,
    /// Events processed per run.
    pub events: u64,
    /// Events per second of each run, in run order.
    pub runs: Vec<f64>,
    /// Median of `runs`.
    pub median: f64,
}

/// A handler that answers every event with one new event a pseudo-random delay later.
struct PingPong {
    state: u64,
}

impl Handler<u64> for PingPong {
    type Error = engine::EngineError;
    fn handle(&mut self, _now: Tick, ev: u64, q: &mut EventQueue<u64>) -> Result<(), Self::Error> {
        // xorshift64: cheap, deterministic delays of 0..1023 ps.
        self.state ^= self.state << 13;
        self.state ^= self.state >> 7;
        self.state ^= self.state << 17;
        q.schedule_in(Span::from_ps(self.state & 1023), ev.wrapping_add(1));
        Ok(())
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    match v.len() {
        0 => 0.0,
        n if n % 2 == 1 => v[n / 2],
        n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
    }
}

/// Measures the bare queue: `events` events with `pending` always in flight, `runs` times.
pub fn queue(events: u64, pending: u64, runs: usize) -> Figure {
    let rates = (0..runs)
        .map(|_| {
            let mut q = EventQueue::new();
            for i in 0..pending {
                q.schedule_in(Span::from_ps(i), i);
            }
            let mut h = PingPong {
                state: 0x2545_f491_4f6c_dd1d,
            };
            let limits = Limits {
                max_time: Tick::MAX,
                max_events: events,
            };
            let t = Instant::now();
            // The handler cannot fail; the limit ends the run.
            let _ = engine::run(&mut q, &mut h, limits);
            q.processed() as f64 / t.elapsed().as_secs_f64()
        })
        .collect::<Vec<_>>();
    Figure {
        name: "queue",
        events,
        median: median(rates.clone()),
        runs: rates,
    }
}

/// The scenario the system figure runs: a mixed stream of 4 KiB buffers, Gen4 x16.
pub const SYSTEM_SCENARIO: &str = r#"{
  "name": "bench-system",
  "seed": 1,
  "platform": {"pcie": {"gen": 4, "lanes": 16, "mps_bytes": 256, "mrrs_bytes": 512}},
  "devices": [{"name": "nic", "bdf": "01:00.0", "read_tags": 64}],
  "workload": {"stream": {"device": "nic", "direction": "mixed", "transfer_bytes": 4096,
                          "count": 20000, "base": "0x1_0000_0000"}}
}"#;

/// [`SYSTEM_SCENARIO`] through VT-d: the 80 MiB the stream touches mapped with 4 KiB pages.
pub const SYSTEM_VTD_SCENARIO: &str = r#"{
  "name": "bench-system-vtd",
  "seed": 1,
  "platform": {"pcie": {"gen": 4, "lanes": 16, "mps_bytes": 256, "mrrs_bytes": 512},
               "iommu": {"vtd": {
                 "table_memory": {"base": "0x2_0000_0000", "bytes": 16777216},
                 "domains": [{"name": "d", "id": 1, "mappings": [
                   {"iova": "0x1_0000_0000", "pa": "0x1_0000_0000", "bytes": 81920000}]}],
                 "attach": [{"device": "nic", "domain": "d"}]}}},
  "devices": [{"name": "nic", "bdf": "01:00.0", "read_tags": 64}],
  "workload": {"stream": {"device": "nic", "direction": "mixed", "transfer_bytes": 4096,
                          "count": 20000, "base": "0x1_0000_0000"}}
}"#;

/// Measures a whole simulation of [`SYSTEM_SCENARIO`], `runs` times.
pub fn system(runs: usize) -> Result<Figure, String> {
    measure("system", SYSTEM_SCENARIO, runs)
}

/// Measures a whole simulation of [`SYSTEM_VTD_SCENARIO`], `runs` times.
pub fn system_vtd(runs: usize) -> Result<Figure, String> {
    measure("system-vtd", SYSTEM_VTD_SCENARIO, runs)
}

fn measure(name: &'static str, text: &str, runs: usize) -> Result<Figure, String> {
    let loaded = scenario::parse(Path::new(name), text).map_err(|e| e.to_string())?;
    let variant = &loaded.variants[0];
    let mut events = 0;
    let mut rates = Vec::with_capacity(runs);
    for _ in 0..runs {
        let t = Instant::now();
        let r = run_variant(variant, RunOptions::default()).map_err(|e| e.to_string())?;
        rates.push(r.sim.events as f64 / t.elapsed().as_secs_f64());
        events = r.sim.events;
    }
    Ok(Figure {
        name,
        events,
        median: median(rates.clone()),
        runs: rates,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_of_odd_and_even_counts() {
        assert_eq!(median(vec![3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(vec![4.0, 1.0, 3.0, 2.0]), 2.5);
        assert_eq!(median(vec![]), 0.0);
    }

    #[test]
    fn queue_benchmark_processes_exactly_the_requested_events() {
        let f = queue(10_000, 16, 1);
        assert_eq!(f.events, 10_000);
        assert!(f.median > 0.0);
    }
}
