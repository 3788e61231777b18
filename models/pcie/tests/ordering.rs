//! Transaction ordering (PCIe Base 6.0 §2.4.1, Table 2-42): one test per rule of the table,
//! named after it, then the transmit queue that applies it, then a seeded property test.

use bytes::Bytes;
use model_core::Bdf;
use pcie::ordering::{
    may_pass, must_pass, rule, Condition, Entry, OrderedQueue, OrderingClass, OrderingInfo,
    OrderingTable, RuleId, YnPolicy,
};
use pcie::tlp::{AddressType, Attr, CplStatus, PasidPrefix, Tlp, TlpKind};
use rand_xoshiro::rand_core::{Rng, SeedableRng};
use rand_xoshiro::Xoshiro256PlusPlus;

const DEV_A: Bdf = Bdf::from_raw(0x0100); // 01:00.0
const DEV_B: Bdf = Bdf::from_raw(0x0200); // 02:00.0
const ROOT: Bdf = Bdf::from_raw(0x0000); // 00:00.0

fn posted() -> OrderingInfo {
    OrderingInfo::posted(DEV_A, 0)
}
fn read() -> OrderingInfo {
    OrderingInfo::read_request(DEV_A, 1)
}
fn npr_data() -> OrderingInfo {
    OrderingInfo::npr_with_data(DEV_A, 2)
}
/// A Completion from the root complex to DEV_A's read with `tag`.
fn cpl(tag: u16) -> OrderingInfo {
    OrderingInfo::completion(ROOT, DEV_A, tag)
}

fn assert_rule(later: OrderingInfo, earlier: OrderingInfo, id: RuleId, e: Entry) {
    assert_eq!(
        rule(&later, &earlier),
        (id, e),
        "{later:?} over {earlier:?}"
    );
}

// ---- Row A: Posted Request ------------------------------------------------------------

#[test]
fn a2a_posted_must_not_pass_posted_without_ro() {
    assert_rule(posted(), posted(), RuleId::A2a, Entry::MustNotPass);
    // RO on the *earlier* write does not help the later one.
    assert_rule(
        posted(),
        posted().with_ro(),
        RuleId::A2a,
        Entry::MustNotPass,
    );
    assert!(!may_pass(&posted(), &posted()));
}

#[test]
fn a2b_posted_may_pass_posted_with_ro() {
    assert_rule(posted().with_ro(), posted(), RuleId::A2b, Entry::MayPass);
    assert!(may_pass(&posted().with_ro(), &posted()));
    assert!(!must_pass(&posted().with_ro(), &posted()));
}

#[test]
fn a2b_posted_with_ido_may_pass_posted_of_another_requester_only() {
    let other = OrderingInfo::posted(DEV_B, 0);
    assert_rule(posted().with_ido(), other, RuleId::A2b, Entry::MayPass);
    assert_rule(
        posted().with_ido(),
        posted(),
        RuleId::A2a,
        Entry::MustNotPass,
    );
    // IDO on the earlier write only does nothing for a later write without IDO.
    assert_rule(posted(), other.with_ido(), RuleId::A2a, Entry::MustNotPass);
}

#[test]
fn a2b_ido_same_requester_different_pasids_may_pass() {
    let p = |pasid| posted().with_pasid(pasid);
    assert_rule(p(7).with_ido(), p(8), RuleId::A2b, Entry::MayPass);
    assert_rule(p(7).with_ido(), p(7), RuleId::A2a, Entry::MustNotPass);
    // Only one of them with a PASID: not "two different PASID values".
    assert_rule(p(7).with_ido(), posted(), RuleId::A2a, Entry::MustNotPass);
}

#[test]
fn a3_posted_must_pass_blocked_non_posted() {
    assert_rule(posted(), read(), RuleId::A3, Entry::MustPass);
    assert!(must_pass(&posted(), &read()));
}

#[test]
fn a4_posted_must_pass_npr_with_data() {
    assert_rule(posted(), npr_data(), RuleId::A4, Entry::MustPass);
}

#[test]
fn a5a_posted_may_pass_completion() {
    // A5b (PCIe-to-PCI bridge, conventional PCI mode) never applies in this model.
    assert_rule(posted(), cpl(1), RuleId::A5a, Entry::MayPass);
    assert_eq!(RuleId::A5b.entry(), Entry::MustPass);
    assert!(!Condition::ConventionalPciBridge.holds(&posted(), &cpl(1)));
}

// ---- Rows B and C: Non-Posted Requests ------------------------------------------------

#[test]
fn b2a_read_must_not_pass_posted() {
    assert_rule(read(), posted(), RuleId::B2a, Entry::MustNotPass);
}

#[test]
fn b2b_read_with_ido_may_pass_posted_of_another_requester_but_ro_does_not_help() {
    let other = OrderingInfo::posted(DEV_B, 0);
    assert_rule(read().with_ido(), other, RuleId::B2b, Entry::MayPass);
    assert_rule(read().with_ro(), other, RuleId::B2a, Entry::MustNotPass);
    assert_rule(read().with_ido(), posted(), RuleId::B2a, Entry::MustNotPass);
    let (r, p) = (read().with_pasid(1).with_ido(), posted().with_pasid(2));
    assert_rule(r, p, RuleId::B2b, Entry::MayPass);
}

#[test]
fn c2a_npr_with_data_must_not_pass_posted() {
    assert_rule(npr_data(), posted(), RuleId::C2a, Entry::MustNotPass);
}

#[test]
fn c2b_npr_with_data_may_pass_posted_with_ro_or_ido() {
    assert_rule(npr_data().with_ro(), posted(), RuleId::C2b, Entry::MayPass);
    let other = OrderingInfo::posted(DEV_B, 0);
    assert_rule(npr_data().with_ido(), other, RuleId::C2b, Entry::MayPass);
    assert_rule(
        npr_data().with_ido(),
        posted(),
        RuleId::C2a,
        Entry::MustNotPass,
    );
}

#[test]
fn b3_b4_c3_c4_non_posted_may_pass_non_posted() {
    assert_rule(read(), read(), RuleId::B3, Entry::MayPass);
    assert_rule(read(), npr_data(), RuleId::B4, Entry::MayPass);
    assert_rule(npr_data(), read(), RuleId::C3, Entry::MayPass);
    assert_rule(npr_data(), npr_data(), RuleId::C4, Entry::MayPass);
}

#[test]
fn b5_c5_non_posted_may_pass_completion() {
    assert_rule(read(), cpl(1), RuleId::B5, Entry::MayPass);
    assert_rule(npr_data(), cpl(1), RuleId::C5, Entry::MayPass);
}

// ---- Row D: Completion ----------------------------------------------------------------

#[test]
fn d2a_completion_must_not_pass_posted() {
    assert_rule(cpl(1), posted(), RuleId::D2a, Entry::MustNotPass);
    assert!(!may_pass(&cpl(1), &posted()));
}

#[test]
fn d2b_completion_may_pass_posted_with_ro() {
    assert_rule(cpl(1).with_ro(), posted(), RuleId::D2b, Entry::MayPass);
}

#[test]
fn d2b_completion_with_ido_may_pass_posted_of_another_requester_than_its_completer() {
    // The completer (ROOT) is not the posted write's requester (DEV_A): may pass.
    assert_rule(cpl(1).with_ido(), posted(), RuleId::D2b, Entry::MayPass);
    // A write issued by the completer itself: must stay behind.
    let own_write = OrderingInfo::posted(ROOT, 0);
    assert_rule(
        cpl(1).with_ido(),
        own_write,
        RuleId::D2a,
        Entry::MustNotPass,
    );
}

#[test]
fn d2b_io_or_cfg_write_completion_may_pass_posted() {
    let c = cpl(1).completing_io_or_cfg_write();
    assert_rule(c, posted(), RuleId::D2b, Entry::MayPass);
}

#[test]
fn d3_d4_completion_must_pass_non_posted() {
    assert_rule(cpl(1), read(), RuleId::D3, Entry::MustPass);
    assert_rule(cpl(1), npr_data(), RuleId::D4, Entry::MustPass);
}

#[test]
fn d5a_completions_of_different_transactions_may_pass() {
    assert_rule(cpl(2), cpl(1), RuleId::D5a, Entry::MayPass);
    let other_requester = OrderingInfo::completion(ROOT, DEV_B, 1);
    assert_rule(other_requester, cpl(1), RuleId::D5a, Entry::MayPass);
}

#[test]
fn same_transaction_id_completions_stay_in_order() {
    // D5b: the completions of one split read keep address order, RO or not.
    assert_rule(cpl(1), cpl(1), RuleId::D5b, Entry::MustNotPass);
    assert_rule(cpl(1).with_ro(), cpl(1), RuleId::D5b, Entry::MustNotPass);
}

// ---- Attributes and classes across the table ------------------------------------------

#[test]
fn ido_lets_different_requesters_pass() {
    let other = OrderingInfo::posted(DEV_B, 0);
    for later in [posted(), read(), npr_data()] {
        assert!(!may_pass(&later, &other), "{later:?} without IDO");
        assert!(may_pass(&later.with_ido(), &other), "{later:?} with IDO");
        assert!(
            !may_pass(&later.with_ido(), &posted()),
            "{later:?}, same ID"
        );
    }
}

#[test]
fn no_snoop_does_not_change_ordering() {
    let ns = Attr {
        no_snoop: true,
        ..Attr::default()
    };
    for later in [posted(), read(), npr_data(), cpl(1)] {
        for earlier in [posted(), read(), npr_data(), cpl(1)] {
            assert_eq!(rule(&later.with_attr(ns), &earlier), rule(&later, &earlier));
        }
    }
}

#[test]
fn different_traffic_classes_have_no_ordering_requirement() {
    // No ordering between TCs: the table's "No" becomes "Y/N"; "Yes" stays (model choice).
    assert!(may_pass(&cpl(1).with_tc(1), &posted()));
    assert!(!must_pass(&cpl(1).with_tc(1), &posted()));
    assert!(must_pass(&posted().with_tc(1), &read()));
}

#[test]
fn every_cell_has_one_default_and_at_most_one_exception() {
    for later in OrderingClass::ALL {
        for earlier in OrderingClass::ALL {
            let conds: Vec<Condition> = RuleId::in_cell(later, earlier)
                .map(RuleId::condition)
                .collect();
            match conds.as_slice() {
                [Condition::Always] => {}
                [Condition::Otherwise, c] => assert!(
                    !matches!(c, Condition::Always | Condition::Otherwise),
                    "{later} over {earlier}: {conds:?}"
                ),
                _ => panic!("{later} over {earlier}: {conds:?}"),
            }
        }
    }
    assert_eq!(RuleId::ALL.len(), 22);
    assert_eq!(RuleId::D5b.to_string(), "D5b");
}

#[test]
fn of_tlp_maps_mem_read_write_and_cpld() {
    let tlp = |kind| Tlp {
        kind,
        requester: DEV_A,
        tag: 5,
        tc: 0,
        attr: Attr {
            relaxed_ordering: true,
            ..Attr::default()
        },
        at: AddressType::Untranslated,
        pasid: None,
        td: false,
        address: 0x1000,
        length_dw: 1,
        first_be: 0xf,
        last_be: 0,
        payload: Bytes::new(),
    };
    let w = OrderingInfo::of(&tlp(TlpKind::MemWrite));
    assert_eq!(
        (w.class, w.requester, w.tag),
        (OrderingClass::Posted, DEV_A, 5)
    );
    assert!(w.attr.relaxed_ordering);
    assert_eq!(
        OrderingInfo::of(&tlp(TlpKind::MemRead)).class,
        OrderingClass::ReadRequest
    );
    let c = OrderingInfo::of(&tlp(TlpKind::Completion {
        completer: ROOT,
        status: CplStatus::Sc,
        byte_count: 4,
        lower_address: 0,
    }));
    assert_eq!(c, cpl(5).with_ro());
    let mut r = tlp(TlpKind::MemRead);
    r.pasid = Some(PasidPrefix {
        pasid: 0x42,
        execute: false,
        privileged: false,
    });
    assert_eq!(OrderingInfo::of(&r).pasid, Some(0x42));
}

#[test]
fn print_the_whole_table() {
    let text = OrderingTable.to_string();
    println!("{text}");
    let grid: Vec<&str> = text.lines().skip(3).take(4).collect();
    let cells = |line: &str| -> Vec<String> {
        line.split('|')
            .skip(1)
            .map(|c| c.trim().to_owned())
            .collect()
    };
    assert_eq!(
        cells(grid[0]),
        ["A2a No, A2b Y/N", "A3 Yes", "A4 Yes", "A5a Y/N, A5b Yes"]
    );
    assert_eq!(
        cells(grid[1]),
        ["B2a No, B2b Y/N", "B3 Y/N", "B4 Y/N", "B5 Y/N"]
    );
    assert_eq!(
        cells(grid[2]),
        ["C2a No, C2b Y/N", "C3 Y/N", "C4 Y/N", "C5 Y/N"]
    );
    assert_eq!(
        cells(grid[3]),
        ["D2a No, D2b Y/N", "D3 Yes", "D4 Yes", "D5a Y/N, D5b No"]
    );
    for r in RuleId::ALL {
        assert!(text.contains(r.summary()), "{r}");
    }
}

// ---- The transmit queue ---------------------------------------------------------------

/// A credit predicate: classes in `blocked` have no credits.
fn credits_except(blocked: &[OrderingClass]) -> impl FnMut(&OrderingInfo) -> bool + '_ {
    move |i| !blocked.contains(&i.class)
}

#[test]
fn queue_pops_in_issue_order_when_nothing_is_blocked() {
    let mut q = OrderedQueue::new(YnPolicy::Pass);
    for (n, i) in [posted(), read(), cpl(1), npr_data()]
        .into_iter()
        .enumerate()
    {
        q.push(n, i);
    }
    let order: Vec<usize> =
        std::iter::from_fn(|| q.pop_sendable(|_| true).map(|(n, _)| n)).collect();
    assert_eq!(order, [0, 1, 2, 3]);
}

#[test]
fn d2a_queue_blocked_posted_write_holds_back_later_completion() {
    let mut q = OrderedQueue::new(YnPolicy::Pass);
    q.push("MWr", posted());
    q.push("CplD", cpl(1));
    assert_eq!(q.blocker(1), Some(0));
    assert!(q
        .pop_sendable(credits_except(&[OrderingClass::Posted]))
        .is_none());
    // Posted credits come back: the write goes, then the completion.
    assert_eq!(q.pop_sendable(|_| true).map(|x| x.0), Some("MWr"));
    assert_eq!(q.pop_sendable(|_| true).map(|x| x.0), Some("CplD"));
}

#[test]
fn a3_queue_blocked_read_lets_later_posted_write_through() {
    for policy in [YnPolicy::Pass, YnPolicy::Hold] {
        let mut q = OrderedQueue::new(policy);
        q.push("MRd", read());
        q.push("MWr", posted());
        let got = q.pop_sendable(credits_except(&[OrderingClass::ReadRequest]));
        assert_eq!(got.map(|x| x.0), Some("MWr"), "{policy:?}");
        assert_eq!(q.len(), 1);
    }
}

#[test]
fn d3_queue_blocked_read_lets_later_completion_through() {
    let mut q = OrderedQueue::new(YnPolicy::Hold);
    q.push("MRd", read());
    q.push("CplD", cpl(1));
    let got = q.pop_sendable(credits_except(&[OrderingClass::ReadRequest]));
    assert_eq!(got.map(|x| x.0), Some("CplD"));
}

#[test]
fn d2b_queue_completion_with_ro_overtakes_blocked_posted_write() {
    let mut q = OrderedQueue::new(YnPolicy::Pass);
    q.push("MWr", posted());
    q.push("CplD", cpl(1).with_ro());
    let got = q.pop_sendable(credits_except(&[OrderingClass::Posted]));
    assert_eq!(got.map(|x| x.0), Some("CplD"));
}

#[test]
fn d2b_hold_policy_keeps_ro_completion_behind_posted_write() {
    let mut q = OrderedQueue::new(YnPolicy::Hold);
    q.push("MWr", posted());
    q.push("CplD", cpl(1).with_ro());
    assert!(q
        .pop_sendable(credits_except(&[OrderingClass::Posted]))
        .is_none());
}

#[test]
fn d2a_queue_completion_stays_behind_blocked_write_even_behind_a_passed_read() {
    // MWr (no credits), MRd, CplD: the completion may pass the read (D3) but not the
    // write (D2a), which is still queued ahead of it.
    let mut q = OrderedQueue::new(YnPolicy::Pass);
    q.push("MWr", posted());
    q.push("MRd", read());
    q.push("CplD", cpl(1));
    assert!(q
        .pop_sendable(credits_except(&[OrderingClass::Posted]))
        .is_none());
    assert_eq!(q.blocker(2), Some(0));
}

#[test]
fn d5b_queue_completions_of_one_read_leave_in_order() {
    // Two completions of tag 1 (one split read) and one of tag 2. While tag 1 cannot go
    // (the predicate refuses it), tag 2 may overtake both (D5a); the second completion of
    // tag 1 never overtakes the first (D5b).
    let mut q = OrderedQueue::new(YnPolicy::Pass);
    q.push(("t1", 0), cpl(1));
    q.push(("t1", 1), cpl(1));
    q.push(("t2", 0), cpl(2));
    assert_eq!(q.blocker(1), Some(0));
    assert_eq!(q.blocker(2), None);
    let got = q.pop_sendable(|i| i.tag != 1);
    assert_eq!(got.map(|x| x.0), Some(("t2", 0)));
    let rest: Vec<_> = std::iter::from_fn(|| q.pop_sendable(|_| true).map(|x| x.0)).collect();
    assert_eq!(rest, [("t1", 0), ("t1", 1)]);
}

#[test]
fn a2b_queue_ro_write_overtakes_a_write_that_cannot_go() {
    // Two writes from one requester; the first one does not fit (e.g. too few data
    // credits), the second, smaller and with RO, may go first.
    let mut q = OrderedQueue::new(YnPolicy::Pass);
    q.push("big", OrderingInfo::posted(DEV_A, 1));
    q.push("small RO", OrderingInfo::posted(DEV_A, 2).with_ro());
    let got = q.pop_sendable(|i| i.tag == 2);
    assert_eq!(got.map(|x| x.0), Some("small RO"));
}

// ---- Property: what leaves never overtook what it may not -----------------------------

fn random_info(rng: &mut Xoshiro256PlusPlus) -> OrderingInfo {
    let requester = [DEV_A, DEV_B, ROOT][rng.next_u32() as usize % 3];
    let tag = (rng.next_u32() % 3) as u16;
    let mut i = match rng.next_u32() % 4 {
        0 => OrderingInfo::posted(requester, tag),
        1 => OrderingInfo::read_request(requester, tag),
        2 => OrderingInfo::npr_with_data(requester, tag),
        _ => OrderingInfo::completion([DEV_A, ROOT][rng.next_u32() as usize % 2], requester, tag),
    };
    i.attr.relaxed_ordering = rng.next_u32().is_multiple_of(4);
    i.attr.id_based_ordering = rng.next_u32().is_multiple_of(4);
    if rng.next_u32().is_multiple_of(4) {
        i.pasid = Some(rng.next_u32() % 2);
    }
    i
}

#[test]
fn queue_never_lets_a_tlp_overtake_one_it_may_not_and_always_makes_progress() {
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(0x0bde_2d11);
    for policy in [YnPolicy::Pass, YnPolicy::Hold] {
        for case in 0..500 {
            let mut q = OrderedQueue::new(policy);
            let n = 1 + rng.next_u32() as usize % 12;
            for seq in 0..n {
                q.push(seq, random_info(&mut rng));
            }
            let mut left: Vec<(usize, OrderingInfo)> = q.iter().map(|(s, i)| (*s, *i)).collect();
            while !q.is_empty() {
                // Each round a random set of classes has credits.
                let mask = rng.next_u32() % 16;
                let ok = |i: &OrderingInfo| mask & (1 << i.class as u32) != 0;
                match q.pop_sendable(ok) {
                    Some((seq, info)) => {
                        let pos = left.iter().position(|(s, _)| *s == seq).unwrap();
                        for (_, earlier) in &left[..pos] {
                            let e = pcie::ordering::entry(&info, earlier);
                            assert!(
                                policy.lets_pass(e),
                                "case {case}: {info:?} over {earlier:?}"
                            );
                        }
                        left.remove(pos);
                    }
                    None => {
                        // Blocked only because nothing that may go has credits: the oldest
                        // TLP of every class with credits is held by the rules, not stuck.
                        assert!(left
                            .iter()
                            .enumerate()
                            .all(|(k, (_, i))| !ok(i) || q.blocker(k).is_some()));
                        if mask == 15 {
                            panic!("case {case}: full credits but nothing sendable");
                        }
                    }
                }
            }
        }
    }
}
