//! What an exploration and a random run found, and their tables for people.

use super::{ExploreConfig, Hazard, Op};
use crate::stats::HierarchyStats;
use serde::Serialize;
use std::collections::BTreeMap;
use std::fmt;

/// One step of a trace and the state after it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TraceStep {
    /// The operation.
    pub op: Op,
    /// Every copy of every line afterwards, with its version ("stale" when not the latest
    /// value), and the pending weak flushes.
    pub after: String,
}

/// An operation sequence from an empty hierarchy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Trace {
    /// The shape it ran on.
    pub shape: String,
    /// The steps, first to last.
    pub steps: Vec<TraceStep>,
}

impl Trace {
    /// The operations alone.
    pub fn ops(&self) -> Vec<Op> {
        self.steps.iter().map(|s| s.op).collect()
    }
}

impl fmt::Display for Trace {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "    on {}:", self.shape)?;
        for (i, s) in self.steps.iter().enumerate() {
            writeln!(
                f,
                "    {:>2}. {:<40} → {}",
                i + 1,
                s.op.to_string(),
                s.after
            )?;
        }
        Ok(())
    }
}

/// A check that failed, with the execution that reached it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Violation {
    /// What failed.
    pub what: String,
    /// How to get there (the failing operation last).
    pub trace: Trace,
}

/// The shortest execution found to reach a hazard.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HazardTrace {
    /// The hazard.
    pub hazard: Hazard,
    /// The execution (the operation showing the hazard last).
    pub trace: Trace,
}

/// Counts for one shape.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ShapeCount {
    /// The shape.
    pub shape: String,
    /// Distinct abstract states reached from its empty hierarchy.
    pub unique_states: u64,
    /// Operations applied to its states.
    pub transitions: u64,
}

/// The result of [`super::explore`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ExploreReport {
    /// What was explored (for the table's header).
    pub setting: String,
    /// Per shape.
    pub shapes: Vec<ShapeCount>,
    /// States whose successors were computed.
    pub states_expanded: u64,
    /// Distinct abstract states reached (expanded or at the depth bound).
    pub unique_states: u64,
    /// Operations applied (each enabled operation of each expanded state).
    pub transitions: u64,
    /// The deepest step at which a new state appeared.
    pub max_depth: usize,
    /// New states at each depth, from 0 (the empty hierarchies).
    pub new_per_depth: Vec<u64>,
    /// No new state appeared at the last explored depth: the reachable abstract state
    /// space is exhausted and the results hold for executions of any length.
    pub complete: bool,
    /// Failed checks, counted.
    pub violations_total: u64,
    /// The first [`ExploreReport::KEPT`] failed checks, each with its execution.
    pub violations: Vec<Violation>,
    /// Each hazard reached (only after no-snoop DMA), with the shortest execution found.
    pub hazards: BTreeMap<Hazard, HazardTrace>,
}

impl ExploreReport {
    /// Violations kept with their traces.
    pub const KEPT: usize = 8;

    pub(crate) fn new(c: &ExploreConfig) -> ExploreReport {
        let on = |b| if b { "on" } else { "off" };
        let setting = format!(
            "2 cores, {} line(s){}, depth ≤ {}, no-snoop DMA {}, 1-byte DMA writes {}, \
             time steps {}, ≤ {} pending weak flush(es) per core{}",
            c.lines,
            if c.lines == 2 && c.same_set {
                " in one set"
            } else {
                ""
            },
            c.depth,
            on(c.no_snoop),
            on(c.partial_dma_writes),
            on(c.advance),
            c.max_pending_per_core,
            c.flaw
                .map_or(String::new(), |f| format!(", INJECTED FLAW {f:?}")),
        );
        ExploreReport {
            setting,
            shapes: Vec::new(),
            states_expanded: 0,
            unique_states: 0,
            transitions: 0,
            max_depth: 0,
            new_per_depth: Vec::new(),
            complete: false,
            violations_total: 0,
            violations: Vec::new(),
            hazards: BTreeMap::new(),
        }
    }
}

impl fmt::Display for ExploreReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "protocol exploration: {}", self.setting)?;
        writeln!(
            f,
            "  {:<50} {:>14} {:>14}",
            "shape", "unique states", "transitions"
        )?;
        for s in &self.shapes {
            let (u, t) = (s.unique_states, s.transitions);
            writeln!(f, "  {:<50} {u:>14} {t:>14}", s.shape)?;
        }
        let (u, t) = (self.unique_states, self.transitions);
        writeln!(f, "  {:<50} {u:>14} {t:>14}", "total")?;
        writeln!(f, "  states expanded       {}", self.states_expanded)?;
        let closed = if self.complete {
            "complete: no new state at the next depth (the reachable state space is exhausted)"
        } else {
            "bounded: new states were still appearing at the depth bound"
        };
        writeln!(f, "  max depth reached     {} ({closed})", self.max_depth)?;
        let per: Vec<String> = self.new_per_depth.iter().map(u64::to_string).collect();
        writeln!(f, "  new states per depth  {}", per.join(" "))?;
        writeln!(f, "  invariant violations  {}", self.violations_total)?;
        for v in &self.violations {
            writeln!(f, "  ✗ {}", v.what)?;
            write!(f, "{}", v.trace)?;
        }
        writeln!(f, "  hazards (shortest execution reaching each):")?;
        for hazard in Hazard::ALL {
            match self.hazards.get(&hazard) {
                Some(h) => {
                    let n = h.trace.steps.len();
                    writeln!(
                        f,
                        "  {:<20} reachable in {n} operation(s)",
                        hazard.to_string()
                    )?;
                    write!(f, "{}", h.trace)?;
                }
                None => writeln!(f, "  {:<20} not reachable", hazard.to_string())?,
            }
        }
        Ok(())
    }
}

/// A failed check, with what reproduces it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RandomViolation {
    /// The shape (index into [`super::RandomConfig::shapes`]).
    pub shape: usize,
    /// The configuration's seed (the shape ran from [`super::RandomConfig::shape_seed`]).
    pub seed: u64,
    /// The failing operation's index within its shape's run (0-based; `ops` beyond it in
    /// the shape reproduce it).
    pub op_index: u64,
    /// The operation.
    pub op: String,
    /// What failed.
    pub what: String,
}

/// One shape's run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ShapeRun {
    /// The shape, in short.
    pub shape: String,
    /// Operations run (fewer than asked when it stopped at a violation).
    pub ops: u64,
    /// The hierarchy's counters: evidence that evictions, snoops and flushes happened.
    pub stats: HierarchyStats,
}

/// The result of [`super::random`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RandomReport {
    /// The seed.
    pub seed: u64,
    /// Operations run in all.
    pub ops: u64,
    /// Operations run per kind.
    pub per_kind: BTreeMap<&'static str, u64>,
    /// Per shape.
    pub shapes: Vec<ShapeRun>,
    /// Failed checks (a shape stops at its first).
    pub violations: Vec<RandomViolation>,
}

impl fmt::Display for RandomReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "random tester: seed {:#x}, {} operations on {} shapes",
            self.seed,
            self.ops,
            self.shapes.len()
        )?;
        for (k, c) in &self.per_kind {
            writeln!(f, "  {k:<12} {c:>12}")?;
        }
        writeln!(
            f,
            "  {:<2} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9}  shape",
            "#", "ops", "wb→LLC", "wb→DRAM", "snoops", "upgrades", "back-inv", "weak due"
        )?;
        for (i, s) in self.shapes.iter().enumerate() {
            let st = &s.stats;
            let snoops = st.snoops.fwd_gets + st.snoops.invalidations + st.snoops.dma;
            writeln!(
                f,
                "  {i:<2} {:>9} {:>9} {:>9} {snoops:>9} {:>9} {:>9} {:>9}  {}",
                s.ops,
                st.writebacks_to_llc,
                st.writebacks_to_dram,
                st.upgrades,
                st.snoops.back_invalidations,
                st.flushes.weak_performed_on_time,
                s.shape
            )?;
        }
        writeln!(f, "  violations   {}", self.violations.len())?;
        for v in &self.violations {
            writeln!(
                f,
                "  ✗ shape {}, seed {:#x}, op {}: {} — {}",
                v.shape, v.seed, v.op_index, v.op, v.what
            )?;
        }
        Ok(())
    }
}
