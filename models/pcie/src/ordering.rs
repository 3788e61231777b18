//! Transaction ordering: which later TLP may overtake which earlier one.
//!
//! Follows PCIe Base Specification 6.0 §2.4.1 "Transaction Ordering Rules", Table 2-42
//! "Ordering Rules Summary" (the same table is Table 2-40 in Revision 5.0). The table is
//! read "may the row pass the column?": the row is a TLP issued later, the column one
//! issued earlier, both in the same Traffic Class and moving in the same direction. Each
//! cell is one of three [`Entry`] values:
//!
//! * **Yes** ([`Entry::MustPass`]): the later TLP must be *able* to pass the earlier one,
//!   so that a blocked earlier TLP cannot deadlock the fabric;
//! * **No** ([`Entry::MustNotPass`]): the later TLP must stay behind (producer/consumer
//!   strong ordering);
//! * **Y/N** ([`Entry::MayPass`]): the specification sets no requirement.
//!
//! Cells with two entries ("a) No b) Y/N") pick the second when the later TLP's Relaxed
//! Ordering (RO) or ID-Based Ordering (IDO) attribute, or its identity, makes the exception
//! apply. The whole table, with a rule id per entry, is [`RuleId`], defined once by
//! `ordering_table!`; [`rule`] looks a pair of TLPs up in it and [`OrderingTable`] prints
//! it. No Snoop never changes ordering (§2.4.1, "Additional Rules").
//!
//! [`OrderedQueue`] applies the table to one direction's transmit queue: it hands out the
//! first TLP that both has what it needs to go (the caller's predicate, e.g. flow-control
//! credits) and may pass everything still queued ahead of it.
//!
//! Not modelled: UIO and Flow-Through IDE ordering (§2.4.2 and §6.33.4 of later revisions),
//! Requester Segments (Flit Mode; one segment here), and the PCI Express to PCI/PCI-X
//! Bridge case of rule A5b (there is no such bridge in the model, so A5a always applies).

use crate::tlp::{Attr, Tlp, TlpKind};
use model_core::Bdf;
use std::collections::VecDeque;
use std::fmt;

/// The four row/column classes of Table 2-42 (PCIe Base 6.0 §2.4.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum OrderingClass {
    /// Posted Request: Memory Write or Message Request (Row A, Col 2).
    Posted,
    /// Read Request: Memory, I/O or Configuration Read Request (Row B, Col 3).
    ReadRequest,
    /// Non-Posted Request with data: I/O or Configuration Write, AtomicOp or Deferrable
    /// Memory Write Request (Row C, Col 4).
    NprWithData,
    /// Completion, with or without data (Row D, Col 5).
    Completion,
}

impl OrderingClass {
    /// Every class, in the table's row and column order.
    pub const ALL: [OrderingClass; 4] = [
        OrderingClass::Posted,
        OrderingClass::ReadRequest,
        OrderingClass::NprWithData,
        OrderingClass::Completion,
    ];

    /// The table's row letter for this class as the later TLP.
    pub const fn row(self) -> char {
        match self {
            OrderingClass::Posted => 'A',
            OrderingClass::ReadRequest => 'B',
            OrderingClass::NprWithData => 'C',
            OrderingClass::Completion => 'D',
        }
    }

    /// The table's column number for this class as the earlier TLP.
    pub const fn column(self) -> u8 {
        match self {
            OrderingClass::Posted => 2,
            OrderingClass::ReadRequest => 3,
            OrderingClass::NprWithData => 4,
            OrderingClass::Completion => 5,
        }
    }

    /// The table's name for the class.
    pub const fn name(self) -> &'static str {
        match self {
            OrderingClass::Posted => "Posted Request",
            OrderingClass::ReadRequest => "Read Request",
            OrderingClass::NprWithData => "NPR with Data",
            OrderingClass::Completion => "Completion",
        }
    }
}

impl fmt::Display for OrderingClass {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A cell entry of Table 2-42 (PCIe Base 6.0 §2.4.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Entry {
    /// "Yes": the later TLP must be allowed to pass the earlier one, to avoid deadlock.
    MustPass,
    /// "No": the later TLP must not pass the earlier one.
    MustNotPass,
    /// "Y/N": no requirement; passing is allowed but not required.
    MayPass,
}

impl Entry {
    /// The table's spelling: "Yes", "No" or "Y/N".
    pub const fn name(self) -> &'static str {
        match self {
            Entry::MustPass => "Yes",
            Entry::MustNotPass => "No",
            Entry::MayPass => "Y/N",
        }
    }
}

impl fmt::Display for Entry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// When a rule of the table is the one that applies within its cell.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Condition {
    /// The cell has this one rule.
    Always,
    /// The cell's "a)" rule: applies when its "b)" exception does not.
    Otherwise,
    /// A2b, C2b: the later TLP has RO set, or has IDO set and comes from another requester
    /// (different Requester IDs, or the same Requester ID with two different PASIDs).
    RoOrIdoOtherRequester,
    /// B2b: the later TLP has IDO set and comes from another requester (as above); RO
    /// alone does not let a Read Request pass a Posted Request.
    IdoOtherRequester,
    /// D2b: the later Completion completes an I/O or Configuration Write, or has RO set, or
    /// has IDO set and its Completer ID differs from the Posted Request's Requester ID.
    CompletionException,
    /// A5b: inside a PCI Express to PCI/PCI-X Bridge whose bus runs in conventional PCI
    /// mode, for TLPs going from PCI Express to PCI. Never true in this model.
    ConventionalPciBridge,
    /// D5b: both Completions carry the same Transaction ID (Requester ID and Tag).
    SameTransactionId,
}

impl Condition {
    /// Whether the condition holds for `later` overtaking `earlier`.
    pub fn holds(self, later: &OrderingInfo, earlier: &OrderingInfo) -> bool {
        let ro = later.attr.relaxed_ordering;
        match self {
            Condition::Always | Condition::Otherwise => true,
            Condition::RoOrIdoOtherRequester => ro || ido_other_requester(later, earlier),
            Condition::IdoOtherRequester => ido_other_requester(later, earlier),
            Condition::CompletionException => {
                later.io_or_cfg_write_completion
                    || ro
                    || (later.attr.id_based_ordering
                        && later.completer.is_some_and(|c| c != earlier.requester))
            }
            Condition::ConventionalPciBridge => false,
            Condition::SameTransactionId => {
                later.requester == earlier.requester && later.tag == earlier.tag
            }
        }
    }
}

/// IDO on the later request, and the two requests come from different requesters: other
/// Requester IDs, or one Requester ID with two different PASIDs (§2.4.1, A2b/B2b/C2b).
fn ido_other_requester(later: &OrderingInfo, earlier: &OrderingInfo) -> bool {
    let other_pasid = matches!((later.pasid, earlier.pasid), (Some(a), Some(b)) if a != b);
    later.attr.id_based_ordering && (later.requester != earlier.requester || other_pasid)
}

/// Defines Table 2-42 once: the rule ids with their cell, entry, condition and summary,
/// `Display` and the lookups derived from them.
macro_rules! ordering_table {
    (
        $(#[$meta:meta])*
        pub enum $name:ident {
            $( $id:ident: $row:ident passes $col:ident => $entry:ident if $cond:ident, $text:literal; )+
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum $name {
            $( #[doc = $text] $id, )+
        }

        impl $name {
            /// Every rule, in the specification's order.
            pub const ALL: &'static [$name] = &[$($name::$id),+];

            /// The id as the specification writes it ("A2a", "D5b", …).
            pub const fn name(self) -> &'static str {
                match self { $($name::$id => stringify!($id)),+ }
            }

            /// The class of the later TLP (the table's row).
            pub const fn later(self) -> OrderingClass {
                match self { $($name::$id => OrderingClass::$row),+ }
            }

            /// The class of the earlier TLP (the table's column).
            pub const fn earlier(self) -> OrderingClass {
                match self { $($name::$id => OrderingClass::$col),+ }
            }

            /// The entry this rule puts in its cell.
            pub const fn entry(self) -> Entry {
                match self { $($name::$id => Entry::$entry),+ }
            }

            /// When this rule, rather than its cell's other one, applies.
            pub const fn condition(self) -> Condition {
                match self { $($name::$id => Condition::$cond),+ }
            }

            /// What the rule says, in a sentence.
            pub const fn summary(self) -> &'static str {
                match self { $($name::$id => $text),+ }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.name())
            }
        }
    };
}

ordering_table! {
    /// The entries of PCIe Base 6.0 §2.4.1, Table 2-42 "Ordering Rules Summary", by the
    /// ids the specification's explanation of the table gives them (row letter, column
    /// number, and a/b where a cell has two entries).
    pub enum RuleId {
        A2a: Posted passes Posted => MustNotPass if Otherwise,
            "A Posted Request stays behind an earlier Posted Request unless A2b applies.";
        A2b: Posted passes Posted => MayPass if RoOrIdoOtherRequester,
            "A Posted Request with RO set may pass an earlier Posted Request; with IDO set it may if the Requester IDs differ, or they match and both carry different PASIDs.";
        A3: Posted passes ReadRequest => MustPass if Always,
            "A Posted Request must be able to pass an earlier Read Request (deadlock avoidance).";
        A4: Posted passes NprWithData => MustPass if Always,
            "A Posted Request must be able to pass an earlier NPR with Data (deadlock avoidance).";
        A5a: Posted passes Completion => MayPass if Otherwise,
            "A Posted Request may pass an earlier Completion but need not be able to, unless A5b applies.";
        A5b: Posted passes Completion => MustPass if ConventionalPciBridge,
            "In a PCIe-to-PCI/PCI-X Bridge with a conventional-PCI bus, PCIe-to-PCI direction, a Posted Request must be able to pass a Completion.";
        B2a: ReadRequest passes Posted => MustNotPass if Otherwise,
            "A Read Request stays behind an earlier Posted Request unless B2b applies.";
        B2b: ReadRequest passes Posted => MayPass if IdoOtherRequester,
            "A Read Request with IDO set may pass an earlier Posted Request if the Requester IDs differ, or they match and both carry different PASIDs (RO does not apply).";
        B3: ReadRequest passes ReadRequest => MayPass if Always,
            "A Non-Posted Request may pass an earlier Non-Posted Request.";
        B4: ReadRequest passes NprWithData => MayPass if Always,
            "A Non-Posted Request may pass an earlier Non-Posted Request.";
        B5: ReadRequest passes Completion => MayPass if Always,
            "A Non-Posted Request may pass an earlier Completion.";
        C2a: NprWithData passes Posted => MustNotPass if Otherwise,
            "An NPR with Data stays behind an earlier Posted Request unless C2b applies.";
        C2b: NprWithData passes Posted => MayPass if RoOrIdoOtherRequester,
            "An NPR with Data and RO set may pass an earlier Posted Request; with IDO set it may if the Requester IDs differ, or they match and both carry different PASIDs.";
        C3: NprWithData passes ReadRequest => MayPass if Always,
            "A Non-Posted Request may pass an earlier Non-Posted Request.";
        C4: NprWithData passes NprWithData => MayPass if Always,
            "A Non-Posted Request may pass an earlier Non-Posted Request.";
        C5: NprWithData passes Completion => MayPass if Always,
            "A Non-Posted Request may pass an earlier Completion.";
        D2a: Completion passes Posted => MustNotPass if Otherwise,
            "A Completion stays behind an earlier Posted Request unless D2b applies.";
        D2b: Completion passes Posted => MayPass if CompletionException,
            "An I/O or Configuration Write Completion, a Completion with RO set, or one with IDO set whose Completer ID differs from the Posted Request's Requester ID may pass it.";
        D3: Completion passes ReadRequest => MustPass if Always,
            "A Completion must be able to pass an earlier Read Request (deadlock avoidance).";
        D4: Completion passes NprWithData => MustPass if Always,
            "A Completion must be able to pass an earlier NPR with Data (deadlock avoidance).";
        D5a: Completion passes Completion => MayPass if Otherwise,
            "Completions with different Transaction IDs may pass each other.";
        D5b: Completion passes Completion => MustNotPass if SameTransactionId,
            "Completions with the same Transaction ID must not pass each other (their data stays in address order).";
    }
}

impl RuleId {
    /// The rules of one cell, in table order ("a)" before "b)").
    pub fn in_cell(
        later: OrderingClass,
        earlier: OrderingClass,
    ) -> impl Iterator<Item = RuleId> + Clone {
        RuleId::ALL
            .iter()
            .copied()
            .filter(move |r| r.later() == later && r.earlier() == earlier)
    }
}

/// What the ordering rules need to know about a TLP.
///
/// Build one with [`OrderingInfo::of`] for the crate's [`Tlp`], or by hand with the
/// per-class constructors and the `with_*` setters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct OrderingInfo {
    /// Its row/column class.
    pub class: OrderingClass,
    /// Attributes: RO and IDO matter, No Snoop does not (§2.4.1).
    pub attr: Attr,
    /// Traffic Class 0..=7; the table orders TLPs within one TC only.
    pub tc: u8,
    /// Requester ID (for a Completion: the requester it returns to).
    pub requester: Bdf,
    /// Tag; with `requester` it forms the Transaction ID (§2.2.6.2).
    pub tag: u16,
    /// `PASID[19:0]` of a PASID TLP Prefix, if the request has one (A2b, B2b, C2b).
    pub pasid: Option<u32>,
    /// Completer ID of a Completion (D2b); `None` for requests.
    pub completer: Option<Bdf>,
    /// The Completion is known to complete an I/O or Configuration Write (D2b). Set it only
    /// when certain of the request type: a component that cannot tell must not apply this
    /// part of D2b (§2.4.1, note to D2b).
    pub io_or_cfg_write_completion: bool,
}

impl OrderingInfo {
    fn request(class: OrderingClass, requester: Bdf, tag: u16) -> OrderingInfo {
        OrderingInfo {
            class,
            attr: Attr::default(),
            tc: 0,
            requester,
            tag,
            pasid: None,
            completer: None,
            io_or_cfg_write_completion: false,
        }
    }

    /// A Posted Request (Memory Write, Message) from `requester`, TC0, no attributes.
    pub fn posted(requester: Bdf, tag: u16) -> OrderingInfo {
        Self::request(OrderingClass::Posted, requester, tag)
    }

    /// A Read Request (Memory, I/O, Configuration) from `requester`, TC0, no attributes.
    pub fn read_request(requester: Bdf, tag: u16) -> OrderingInfo {
        Self::request(OrderingClass::ReadRequest, requester, tag)
    }

    /// An NPR with Data (I/O or Configuration Write, AtomicOp, DMWr) from `requester`,
    /// TC0, no attributes.
    pub fn npr_with_data(requester: Bdf, tag: u16) -> OrderingInfo {
        Self::request(OrderingClass::NprWithData, requester, tag)
    }

    /// A Completion from `completer` for the request `requester`/`tag`, TC0, no
    /// attributes.
    pub fn completion(completer: Bdf, requester: Bdf, tag: u16) -> OrderingInfo {
        OrderingInfo {
            completer: Some(completer),
            ..Self::request(OrderingClass::Completion, requester, tag)
        }
    }

    /// The same TLP with attributes `attr`.
    pub fn with_attr(self, attr: Attr) -> OrderingInfo {
        OrderingInfo { attr, ..self }
    }

    /// The same TLP with RO set.
    pub fn with_ro(mut self) -> OrderingInfo {
        self.attr.relaxed_ordering = true;
        self
    }

    /// The same TLP with IDO set.
    pub fn with_ido(mut self) -> OrderingInfo {
        self.attr.id_based_ordering = true;
        self
    }

    /// The same TLP in Traffic Class `tc`.
    pub fn with_tc(self, tc: u8) -> OrderingInfo {
        OrderingInfo { tc, ..self }
    }

    /// The same request with a PASID TLP Prefix carrying `pasid`.
    pub fn with_pasid(self, pasid: u32) -> OrderingInfo {
        OrderingInfo {
            pasid: Some(pasid),
            ..self
        }
    }

    /// The same Completion, known to complete an I/O or Configuration Write (D2b).
    pub fn completing_io_or_cfg_write(self) -> OrderingInfo {
        OrderingInfo {
            io_or_cfg_write_completion: true,
            ..self
        }
    }

    /// The ordering view of the crate's TLP: MemWrite is Posted, MemRead a Read Request,
    /// CplD a Completion; attributes, TC and PASID are copied.
    pub fn of(tlp: &Tlp) -> OrderingInfo {
        let base = match tlp.kind {
            TlpKind::MemWrite => Self::posted(tlp.requester, tlp.tag),
            TlpKind::MemRead => Self::read_request(tlp.requester, tlp.tag),
            TlpKind::Completion { completer, .. } => {
                Self::completion(completer, tlp.requester, tlp.tag)
            }
        };
        OrderingInfo {
            pasid: tlp.pasid.map(|p| p.pasid),
            ..base.with_attr(tlp.attr).with_tc(tlp.tc)
        }
    }
}

/// The table's answer for `later` overtaking `earlier`, with the rule that gives it
/// (PCIe Base 6.0 §2.4.1, Table 2-42). Applies RO, IDO, PASIDs and Transaction IDs; assumes
/// both TLPs are in the same Traffic Class (see [`may_pass`] for TLPs in different ones).
pub fn rule(later: &OrderingInfo, earlier: &OrderingInfo) -> (RuleId, Entry) {
    let cell = RuleId::in_cell(later.class, earlier.class);
    let chosen = cell
        .clone()
        .find(|r| r.condition() != Condition::Otherwise && r.condition().holds(later, earlier))
        .or_else(|| cell.clone().find(|r| r.condition() == Condition::Otherwise))
        .expect("every cell of Table 2-42 has an unconditional or a default rule");
    (chosen, chosen.entry())
}

/// The entry between two TLPs of any Traffic Classes. Within one TC it is the table's.
/// Across TCs the specification sets no ordering requirement, so a "No" becomes "Y/N";
/// this model keeps "Yes" (TCs sharing a Virtual Channel share its buffers, so the
/// deadlock argument still holds) — a modelling choice, not a rule of the table.
pub fn entry(later: &OrderingInfo, earlier: &OrderingInfo) -> Entry {
    match rule(later, earlier).1 {
        Entry::MustNotPass if later.tc != earlier.tc => Entry::MayPass,
        e => e,
    }
}

/// Whether `later` is allowed to pass `earlier` ("Yes" or "Y/N"; see [`entry`]).
pub fn may_pass(later: &OrderingInfo, earlier: &OrderingInfo) -> bool {
    entry(later, earlier) != Entry::MustNotPass
}

/// Whether `later` must be able to pass `earlier` ("Yes"; see [`entry`]).
pub fn must_pass(later: &OrderingInfo, earlier: &OrderingInfo) -> bool {
    entry(later, earlier) == Entry::MustPass
}

/// Table 2-42 as text: the grid with a rule id per entry, then every rule's summary.
#[derive(Debug, Clone, Copy, Default)]
pub struct OrderingTable;

impl fmt::Display for OrderingTable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const W: usize = 24;
        writeln!(
            f,
            "PCIe Base 6.0 §2.4.1 Table 2-42 Ordering Rules Summary: may the row (later) TLP pass the column (earlier) TLP?"
        )?;
        writeln!(
            f,
            "Yes = must be able to pass (deadlock avoidance); No = must not pass; Y/N = no requirement."
        )?;
        let line = |first: String, cells: [String; 4]| {
            let mut s = format!("{first:<W$}");
            for c in cells {
                s += &format!("| {c:<W$}");
            }
            s.trim_end().to_owned()
        };
        let heads = OrderingClass::ALL.map(|c| format!("{c} (Col {})", c.column()));
        writeln!(f, "{}", line("Row pass Column?".into(), heads))?;
        for row in OrderingClass::ALL {
            let cells = OrderingClass::ALL.map(|col| {
                let rules: Vec<String> = RuleId::in_cell(row, col)
                    .map(|r| format!("{r} {}", r.entry()))
                    .collect();
                rules.join(", ")
            });
            writeln!(f, "{}", line(format!("{row} (Row {})", row.row()), cells))?;
        }
        writeln!(f)?;
        for r in RuleId::ALL {
            writeln!(f, "{:<4}{:<4}{}", r.name(), r.entry().name(), r.summary())?;
        }
        Ok(())
    }
}

/// What an [`OrderedQueue`] does with a "Y/N" entry.
///
/// The default is [`YnPolicy::Pass`]: the specification allows the pass, and an
/// implementation that holds there adds head-of-line blocking the table does not ask for;
/// the RO and IDO exceptions (A2b, B2b, C2b, D2b) are all "Y/N", so under `Hold` RO and IDO
/// would change nothing. [`YnPolicy::Hold`] models a strictly in-order transmitter, or one
/// that chooses not to implement RO passing (compare the "No RO-enabled PR-PR Passing"
/// capability the specification mentions for A2b), for comparison runs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub enum YnPolicy {
    /// Let a later TLP pass wherever the entry is "Y/N".
    #[default]
    Pass,
    /// Pass only where the entry is "Yes".
    Hold,
}

impl YnPolicy {
    /// Whether a TLP whose entry against an earlier one is `e` may go first.
    pub const fn lets_pass(self, e: Entry) -> bool {
        match (e, self) {
            (Entry::MustPass, _) | (Entry::MayPass, YnPolicy::Pass) => true,
            (Entry::MustNotPass, _) | (Entry::MayPass, YnPolicy::Hold) => false,
        }
    }
}

/// One direction's transmit queue, ordered by Table 2-42.
///
/// Holds `(token, OrderingInfo)` pairs in issue order. [`OrderedQueue::pop_sendable`]
/// returns the first one that the caller can send now (for instance: has flow-control
/// credits) and that may pass every earlier one still queued under the queue's
/// [`YnPolicy`]. "Yes" entries always let the later TLP go, so a Posted Request or a
/// Completion is never stuck behind a blocked Non-Posted Request (A3, A4, D3, D4); "No"
/// entries never do, so a blocked Posted Request holds back later reads and Completions
/// without an RO/IDO exception (B2a, C2a, D2a). Pure data: no time. Cost: O(n²) in the
/// queue's length per pop.
#[derive(Debug, Clone)]
pub struct OrderedQueue<T> {
    policy: YnPolicy,
    entries: VecDeque<(T, OrderingInfo)>,
}

impl<T> Default for OrderedQueue<T> {
    fn default() -> Self {
        Self::new(YnPolicy::default())
    }
}

impl<T> OrderedQueue<T> {
    /// An empty queue treating "Y/N" entries by `policy`.
    pub fn new(policy: YnPolicy) -> OrderedQueue<T> {
        OrderedQueue {
            policy,
            entries: VecDeque::new(),
        }
    }

    /// Its policy for "Y/N" entries.
    pub fn policy(&self) -> YnPolicy {
        self.policy
    }

    /// Queues a TLP behind everything already queued.
    pub fn push(&mut self, token: T, info: OrderingInfo) {
        self.entries.push_back((token, info));
    }

    /// TLPs queued.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether nothing is queued.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The queued TLPs, oldest first.
    pub fn iter(&self) -> impl Iterator<Item = (&T, &OrderingInfo)> {
        self.entries.iter().map(|(t, i)| (t, i))
    }

    /// The position of the first earlier TLP that the one at `index` may not pass under
    /// this queue's policy, or `None` if it may pass them all (or `index` is past the end).
    pub fn blocker(&self, index: usize) -> Option<usize> {
        let (_, later) = self.entries.get(index)?;
        self.entries
            .iter()
            .take(index)
            .position(|(_, earlier)| !self.policy.lets_pass(entry(later, earlier)))
    }

    /// The position of the TLP [`OrderedQueue::pop_sendable`] would return.
    ///
    /// `can_send` is asked only about TLPs the ordering rules let go, oldest first, until
    /// one answers yes.
    pub fn sendable_index(&self, mut can_send: impl FnMut(&OrderingInfo) -> bool) -> Option<usize> {
        self.sendable_index_by(|_, info| can_send(info))
    }

    /// [`OrderedQueue::sendable_index`], with the token shown to `can_send` too (for
    /// instance, to size the flow-control credits the TLP needs).
    pub fn sendable_index_by(
        &self,
        mut can_send: impl FnMut(&T, &OrderingInfo) -> bool,
    ) -> Option<usize> {
        // The head has nothing to pass: the common case costs one call.
        let (t, i) = self.entries.front()?;
        if can_send(t, i) {
            return Some(0);
        }
        (1..self.entries.len()).find(|&i| {
            self.blocker(i).is_none() && can_send(&self.entries[i].0, &self.entries[i].1)
        })
    }

    /// Removes and returns the oldest TLP that `can_send` accepts and that may pass every
    /// earlier TLP still queued; `None` if there is none.
    pub fn pop_sendable(
        &mut self,
        mut can_send: impl FnMut(&OrderingInfo) -> bool,
    ) -> Option<(T, OrderingInfo)> {
        self.pop_sendable_by(|_, info| can_send(info))
    }

    /// [`OrderedQueue::pop_sendable`], with the token shown to `can_send` too.
    pub fn pop_sendable_by(
        &mut self,
        can_send: impl FnMut(&T, &OrderingInfo) -> bool,
    ) -> Option<(T, OrderingInfo)> {
        let i = self.sendable_index_by(can_send)?;
        self.entries.remove(i)
    }
}
