//! The exhaustive explorer: breadth first over canonical keys, one concrete representative
//! per key, re-created on demand by replaying its (shortest) path from the empty hierarchy.

use super::report::{ExploreReport, HazardTrace, ShapeCount, Trace, TraceStep, Violation};
use super::state::{self, apply, Oracle};
use super::{fork, ExploreConfig, Hazard, Op};
use crate::hierarchy::CoreId;
use crate::{Dram, DramConfig, Hierarchy};
use model_core::{Span, Tick};
use std::collections::HashSet;

/// A state in the arena: how it was first reached.
#[derive(Debug, Clone, Copy)]
struct Entry {
    parent: u32,
    op: Option<Op>,
    shape: u8,
}

/// A concrete state re-created from its path.
struct Node {
    h: Hierarchy<Oracle>,
    now: Tick,
    tainted: bool,
    shape: usize,
}

struct Explorer<'a> {
    config: &'a ExploreConfig,
    bases: Vec<u64>,
    visited: HashSet<Box<[u8]>>,
    arena: Vec<Entry>,
    report: ExploreReport,
}

/// Explores every execution of up to `config.depth` operations from each empty shape.
///
/// # Panics
/// On a configuration outside what the abstraction covers (see [`ExploreConfig`]).
pub fn explore(config: &ExploreConfig) -> ExploreReport {
    config.validate();
    let mut x = Explorer {
        config,
        bases: config.bases(),
        visited: HashSet::new(),
        arena: Vec::new(),
        report: ExploreReport::new(config),
    };
    x.run();
    x.report
}

impl Explorer<'_> {
    fn root(&self, shape: usize) -> Hierarchy<Oracle> {
        let config = self.config.shapes[shape].config();
        let dram = Dram::new(DramConfig::default());
        Hierarchy::with_observer(config, dram, Oracle::new(&self.bases))
            .unwrap_or_else(|e| panic!("{}: {e}", self.config.shapes[shape]))
    }

    fn run(&mut self) {
        let mut frontier = Vec::new();
        for (s, shape) in self.config.shapes.iter().enumerate() {
            let h = self.root(s);
            self.visited.insert(state::canonical_key(&h, s, false));
            self.arena.push(Entry {
                parent: u32::MAX,
                op: None,
                shape: s as u8,
            });
            frontier.push(self.arena.len() as u32 - 1);
            self.report.shapes.push(ShapeCount {
                shape: shape.to_string(),
                unique_states: 1,
                transitions: 0,
            });
        }
        self.report.new_per_depth.push(frontier.len() as u64);
        for depth in 0..self.config.depth {
            let mut next = Vec::new();
            for &id in &frontier {
                self.expand(id, depth, &mut next);
            }
            self.report.states_expanded += frontier.len() as u64;
            if next.is_empty() {
                self.report.complete = true;
                break;
            }
            self.report.max_depth = depth + 1;
            self.report.new_per_depth.push(next.len() as u64);
            frontier = next;
        }
        self.report.unique_states = self.visited.len() as u64;
    }

    /// The operations a state offers, in a fixed order.
    fn enabled(&self, h: &Hierarchy<Oracle>) -> Vec<Op> {
        let c = self.config;
        let mut ops = Vec::with_capacity(48);
        for line in 0..c.lines as u8 {
            for core in [CoreId(0), CoreId(1)] {
                ops.extend([Op::Load { core, line }, Op::Store { core, line }]);
                ops.push(Op::Clflush { core, line });
                if h.pending_flushes(core) < c.max_pending_per_core {
                    ops.extend([Op::Clflushopt { core, line }, Op::Clwb { core, line }]);
                }
            }
        }
        for core in [CoreId(0), CoreId(1)] {
            ops.extend([
                Op::Sfence { core },
                Op::Wbinvd { core },
                Op::Wbnoinvd { core },
            ]);
        }
        for line in 0..c.lines as u8 {
            for snooped in [true, false] {
                if !snooped && !c.no_snoop {
                    continue;
                }
                ops.push(Op::DmaWrite {
                    line,
                    snooped,
                    partial: false,
                });
                if c.partial_dma_writes {
                    ops.push(Op::DmaWrite {
                        line,
                        snooped,
                        partial: true,
                    });
                }
                ops.push(Op::DmaRead { line, snooped });
            }
        }
        if c.advance && h.next_wakeup().is_some() {
            ops.push(Op::Advance);
        }
        ops
    }

    /// The state after `op` at step `depth` from `node`, with the protocol checks (a) done.
    fn perform(&self, node: &Node, op: Op, depth: usize) -> (Node, Result<(), String>) {
        let mut h = fork(&node.h);
        h.observer_mut().clear();
        let due = node.h.next_wakeup();
        let now = match op {
            Op::Advance => due.expect("offered only with a pending flush"),
            _ => node.now + Span::from_ps(1 << (self.config.depth - 1 - depth)),
        };
        let mut result = match due {
            Some(due) if op != Op::Advance && due <= now => Err(format!(
                "harness: a weak flush due at {due} would perform implicitly at {now}"
            )),
            _ => apply(&mut h, op, now).map_err(|e| format!("{op} failed: {e}")),
        };
        if op == Op::Advance && result.is_ok() && h.pending.len() + 1 != node.h.pending.len() {
            result = Err("harness: time passing performed more than one flush".to_owned());
        }
        if let Some(flaw) = self.config.flaw {
            state::inject(flaw, &node.h, &mut h, op, now);
        }
        let result = result.and_then(|()| h.check_invariants().map_err(|e| e.to_string()));
        let next = Node {
            h,
            now,
            tainted: node.tainted || op.is_no_snoop(),
            shape: node.shape,
        };
        (next, result)
    }

    /// The data checks (b) of a snooped-only state, or the hazards (c) it shows.
    fn data_checks(&mut self, node: &Node, parent: u32, op: Op) -> Result<(), String> {
        let found = node.h.observer().found;
        if !node.tainted {
            if let Some(h) = Hazard::ALL.into_iter().find(|h| found & h.bit() != 0) {
                return Err(format!("{h} with snooped DMA only"));
            }
            state::check_values(&node.h)?;
            return node.h.check_data_coherent().map_err(|e| e.to_string());
        }
        for hazard in Hazard::ALL {
            if found & hazard.bit() != 0 && !self.report.hazards.contains_key(&hazard) {
                let trace = self.trace(parent, op);
                self.report
                    .hazards
                    .insert(hazard, HazardTrace { hazard, trace });
            }
        }
        Ok(())
    }

    fn expand(&mut self, id: u32, depth: usize, next: &mut Vec<u32>) {
        let node = self.replay(id);
        for op in self.enabled(&node.h) {
            self.report.transitions += 1;
            self.report.shapes[node.shape].transitions += 1;
            let (child, checked) = self.perform(&node, op, depth);
            if let Err(what) = checked.and_then(|()| self.data_checks(&child, id, op)) {
                self.report.violations_total += 1;
                if self.report.violations.len() < ExploreReport::KEPT {
                    let trace = self.trace(id, op);
                    self.report.violations.push(Violation { what, trace });
                }
                continue;
            }
            let k = state::canonical_key(&child.h, child.shape, child.tainted);
            if self.visited.insert(k) {
                self.arena.push(Entry {
                    parent: id,
                    op: Some(op),
                    shape: node.shape as u8,
                });
                self.report.shapes[node.shape].unique_states += 1;
                next.push(self.arena.len() as u32 - 1);
            }
        }
    }

    /// The path from the root to `id`, and its shape.
    fn path(&self, mut id: u32) -> (usize, Vec<Op>) {
        let shape = usize::from(self.arena[id as usize].shape);
        let mut ops = Vec::new();
        while let Some(op) = self.arena[id as usize].op {
            ops.push(op);
            id = self.arena[id as usize].parent;
        }
        ops.reverse();
        (shape, ops)
    }

    fn replay(&self, id: u32) -> Node {
        let (shape, ops) = self.path(id);
        let mut node = Node {
            h: self.root(shape),
            now: Tick::ZERO,
            tainted: false,
            shape,
        };
        for (depth, op) in ops.into_iter().enumerate() {
            let (next, result) = self.perform(&node, op, depth);
            result.expect("a stored path replays as it was explored");
            node = next;
        }
        node
    }

    /// The path to `parent` then `last`, with a summary of the state after each step.
    fn trace(&self, parent: u32, last: Op) -> Trace {
        let (shape, mut ops) = self.path(parent);
        ops.push(last);
        let mut node = Node {
            h: self.root(shape),
            now: Tick::ZERO,
            tainted: false,
            shape,
        };
        let mut steps = Vec::new();
        for (depth, op) in ops.into_iter().enumerate() {
            let (next, result) = self.perform(&node, op, depth);
            node = next;
            let after = match result {
                Ok(()) => state::summary(&node.h),
                Err(e) => format!("{e}; {}", state::summary(&node.h)),
            };
            steps.push(TraceStep { op, after });
        }
        let shape = self.config.shapes[shape].to_string();
        Trace { shape, steps }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::verify::Shape;
    use rand_xoshiro::rand_core::{Rng, SeedableRng};
    use rand_xoshiro::Xoshiro256PlusPlus;
    use std::collections::HashMap;

    /// What the checks see of a transition: the next key, the hazards, the data checks.
    type Outcome = (Box<[u8]>, u8, bool, bool);

    /// The abstraction is sound only if the key determines what every operation does. Random
    /// walks reach the same key by different paths, at different depths and times, with
    /// different versions; every (key, operation) pair must always lead to the same outcome.
    #[test]
    fn the_canonical_key_determines_every_successor_on_random_walks() {
        let mut shapes = ExploreConfig::default().shapes;
        shapes.push(Shape {
            replacement: model_core::Replacement::PseudoLru,
            wbinvd_scope: crate::WbinvdScope::IssuerAndShared,
            ..Shape::new(2, 2, false, 1)
        });
        let config = ExploreConfig {
            shapes,
            depth: 24,
            max_pending_per_core: 2,
            ..ExploreConfig::default()
        };
        let x = Explorer {
            config: &config,
            bases: config.bases(),
            visited: HashSet::new(),
            arena: Vec::new(),
            report: ExploreReport::new(&config),
        };
        let mut rng = Xoshiro256PlusPlus::seed_from_u64(7);
        let mut seen: HashMap<(Box<[u8]>, Op), Outcome> = HashMap::new();
        let mut repeats = 0;
        for walk in 0..8_000 {
            let shape = walk % config.shapes.len();
            let mut node = Node {
                h: x.root(shape),
                now: Tick::ZERO,
                tainted: false,
                shape,
            };
            for depth in 0..config.depth {
                let ops = x.enabled(&node.h);
                let op = ops[(rng.next_u64() % ops.len() as u64) as usize];
                let before = state::canonical_key(&node.h, shape, node.tainted);
                let (next, result) = x.perform(&node, op, depth);
                result.unwrap_or_else(|e| panic!("walk {walk}: {e}"));
                let h = &next.h;
                let outcome = (
                    state::canonical_key(h, shape, next.tainted),
                    h.observer().found,
                    next.tainted || state::check_values(h).is_ok(),
                    next.tainted || h.check_data_coherent().is_ok(),
                );
                match seen.get(&(before.clone(), op)) {
                    Some(o) => {
                        assert_eq!(*o, outcome, "walk {walk}, step {depth}: {op}");
                        repeats += 1;
                    }
                    None => _ = seen.insert((before, op), outcome),
                }
                node = next;
            }
        }
        assert!(
            repeats > 20_000,
            "the walks met known pairs {repeats} times"
        );
    }
}
