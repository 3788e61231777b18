//! Protocol verification (issue 4, point 6): the exhaustive exploration proves
//! single-writer/multiple-reader and the data-value invariant for snooped traffic on small
//! configurations and shows each no-snoop hazard reachable by its minimal sequence; the
//! seeded random tester runs long mixed traffic with the invariants checked after every
//! operation; an injected protocol bug is caught with its trace.

use cache::verify::{
    explore, random, ExploreConfig, ExploreReport, Flaw, Hazard, Op, RandomConfig, Shape,
};
use cache::{CoreId, WbinvdScope};
use model_core::Replacement;
use std::time::Instant;

const C0: CoreId = CoreId(0);
const A: u8 = 0;

/// The default shapes and operations at `depth`, with or without no-snoop DMA.
fn config(no_snoop: bool, depth: usize) -> ExploreConfig {
    ExploreConfig {
        no_snoop,
        depth,
        ..ExploreConfig::default()
    }
}

fn no_violation(r: &ExploreReport) {
    assert_eq!(r.violations_total, 0, "{r}");
}

#[test]
fn snooped_dma_keeps_swmr_and_every_value_current_and_reaches_no_hazard() {
    let r = explore(&config(false, 4));
    no_violation(&r);
    assert!(r.hazards.is_empty(), "{r}");
    assert_eq!(r.max_depth, 4);
}

#[test]
fn no_snoop_dma_reaches_each_hazard_by_its_minimal_sequence_and_keeps_swmr() {
    let r = explore(&config(true, 3));
    no_violation(&r);
    let ns_write = Op::DmaWrite {
        line: A,
        snooped: false,
        partial: false,
    };
    let shortest = |h: Hazard| r.hazards.get(&h).map(|t| t.trace.ops());
    // (a) load X; NS write X; load X → stale CPU read.
    let load = Op::Load { core: C0, line: A };
    assert_eq!(
        shortest(Hazard::StaleCpuRead),
        Some(vec![load, ns_write, load]),
        "{r}"
    );
    // (b) store X; NS read X → stale device read.
    let store = Op::Store { core: C0, line: A };
    let ns_read = Op::DmaRead {
        line: A,
        snooped: false,
    };
    assert_eq!(
        shortest(Hazard::StaleDeviceRead),
        Some(vec![store, ns_read]),
        "{r}"
    );
    // (c) store X; NS write X; the dirty line leaves (here by clflush) → lost DMA write.
    let clflush = Op::Clflush { core: C0, line: A };
    assert_eq!(
        shortest(Hazard::LostDmaWrite),
        Some(vec![store, ns_write, clflush]),
        "{r}"
    );
}

#[test]
fn hazards_are_reachable_only_with_no_snoop_operations() {
    for depth in 1..=3 {
        let snooped = explore(&config(false, depth));
        no_violation(&snooped);
        assert!(snooped.hazards.is_empty(), "{snooped}");
    }
    assert_eq!(explore(&config(true, 3)).hazards.len(), Hazard::ALL.len());
}

/// The two 1-way-LLC shapes, snooped traffic only, explored to exhaustion.
fn one_way_llcs() -> ExploreConfig {
    ExploreConfig {
        shapes: vec![Shape::new(1, 1, false, 0), Shape::new(1, 1, true, 0)],
        no_snoop: false,
        depth: cache::verify::MAX_DEPTH,
        ..ExploreConfig::default()
    }
}

#[test]
fn the_state_counts_of_fixed_configurations_are_stable() {
    // A change to the protocol, the shapes or the abstraction changes these numbers: if
    // it is intended, update them (and say why in the commit).
    let r = explore(&one_way_llcs());
    no_violation(&r);
    assert!(r.complete, "{r}");
    let counts: Vec<(u64, u64)> = r
        .shapes
        .iter()
        .map(|s| (s.unique_states, s.transitions))
        .collect();
    assert_eq!(counts, vec![(11_726, 304_304), (1_968, 51_072)], "{r}");
    assert_eq!(r.max_depth, 8, "{r}");
    let r = explore(&config(true, 3));
    assert_eq!((r.unique_states, r.transitions), (6_030, 32_948), "{r}");
}

#[test]
fn the_random_tester_finds_no_violation_in_20k_operations_and_repeats_itself() {
    let c = RandomConfig {
        seed: 0x5eed,
        ops: 20_000,
        ..RandomConfig::default()
    };
    let r = random(&c);
    assert!(r.violations.is_empty(), "{r}");
    assert_eq!(r.ops, 20_000);
    assert_eq!(r.per_kind.values().sum::<u64>(), 20_000);
    for (i, s) in r.shapes.iter().enumerate() {
        let st = &s.stats;
        assert!(
            st.writebacks_to_llc > 0 && st.writebacks_to_dram > 0,
            "{i}: {r}"
        );
        assert!(st.snoops.dirty_forwards > 0 && st.upgrades > 0, "{i}: {r}");
        assert!(st.flushes.weak_performed_on_time > 0, "{i}: {r}");
    }
    assert_eq!(random(&c), r, "the same seed gives the same run");
}

#[test]
fn a_store_that_leaves_a_sharer_is_caught_as_a_single_writer_violation() {
    let r = explore(&ExploreConfig {
        flaw: Some(Flaw::StoreKeepsSharer),
        ..config(false, 2)
    });
    assert!(r.violations_total > 0, "{r}");
    let v = &r.violations[0];
    assert!(v.what.contains("single-writer"), "{r}");
    assert_eq!(v.trace.steps.len(), 2, "{r}");
}

#[test]
fn a_clflush_that_drops_dirty_data_is_caught_by_the_data_value_invariant() {
    let r = explore(&ExploreConfig {
        flaw: Some(Flaw::ClflushDropsWriteBack),
        ..config(false, 2)
    });
    assert!(r.violations_total > 0, "{r}");
    let v = &r.violations[0];
    let ops = v.trace.ops();
    let store = Op::Store { core: C0, line: A };
    let clflush = Op::Clflush { core: C0, line: A };
    assert_eq!(ops, vec![store, clflush], "{r}");
    assert!(v.what.contains("DRAM holds v0"), "{r}");
}

/// `cargo test --release -p cache --test verify -- --ignored --nocapture`
#[test]
#[ignore = "about a minute in release: run by hand"]
fn explore_large() {
    let deepest = cache::verify::MAX_DEPTH;
    // Lines in neighbouring sets, 2-way L1s, pseudo-LRU and issuer-only wbinvd.
    let plru = Shape {
        replacement: Replacement::PseudoLru,
        wbinvd_scope: WbinvdScope::IssuerAndShared,
        ..Shape::new(2, 2, false, 1)
    };
    let other = ExploreConfig {
        shapes: vec![plru, Shape::new(2, 1, true, 0), Shape::new(1, 1, false, 0)],
        same_set: false,
        ..config(true, deepest)
    };
    for c in [config(false, deepest), config(true, deepest), other] {
        let t = Instant::now();
        let r = explore(&c);
        println!("{r}");
        println!("({:.1} s)\n", t.elapsed().as_secs_f64());
        no_violation(&r);
        assert!(r.complete);
    }
    let t = Instant::now();
    let r = random(&RandomConfig {
        ops: 2_000_000,
        ..RandomConfig::default()
    });
    let s = t.elapsed().as_secs_f64();
    println!("{r}");
    println!("({s:.1} s, {:.0} operations/s)", r.ops as f64 / s);
    assert!(r.violations.is_empty());
}
