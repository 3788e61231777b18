//! The MESI controller of one core's private cache, as one `(state, event)` table.
//!
//! In the style of gem5 Ruby's `MESI_Two_Level-L1cache.sm`: states (stable and transient),
//! events, and for every pair the actions to run and the next state. A pair the protocol
//! cannot produce is an [`ImpossibleTransition`] naming it, never a silent no-op. The table
//! is pure: [`transition`] only says what to do; [`crate::Hierarchy`] runs the actions.
//!
//! The shared side (the LLC and its directory, the "home") is procedural: it decides which
//! cores to send which event (a read miss forwards `FwdGetS` to a lone holder, a write miss
//! sends `Inv` to every holder, a snooped DMA sends `DmaRead`/`DmaInv`, an inclusive LLC
//! eviction sends `BackInv`) and what data the requester gets. Requests complete atomically
//! within one call, so the transient states exist only inside a call; none survives it.

use serde::Serialize;
use std::fmt;

/// The state of a line in one core's private cache.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub enum LineState {
    /// Invalid: the core holds no copy.
    I,
    /// Shared: a clean, read-only copy; others may hold copies too.
    S,
    /// Exclusive: the only copy, clean (equal to the LLC's, else DRAM's); may be written
    /// without asking anyone (silent E → M upgrade).
    E,
    /// Modified: the only copy, dirty; the core must supply it and write it back.
    M,
    /// Transient: a read miss was sent, waiting for data (I → S or E).
    IsD,
    /// Transient: a write miss was sent, waiting for data and ownership (I → M).
    ImD,
    /// Transient: an upgrade was sent from S, waiting for the other copies to be gone.
    SmA,
}

impl LineState {
    /// Every state, stable first.
    pub const ALL: [LineState; 7] = [
        LineState::I,
        LineState::S,
        LineState::E,
        LineState::M,
        LineState::IsD,
        LineState::ImD,
        LineState::SmA,
    ];

    /// A state a line may be left in between calls.
    pub fn is_stable(self) -> bool {
        matches!(
            self,
            LineState::I | LineState::S | LineState::E | LineState::M
        )
    }

    /// The core may read its copy.
    pub fn is_readable(self) -> bool {
        matches!(self, LineState::S | LineState::E | LineState::M)
    }

    /// The core's copy is the only one (E or M).
    pub fn is_exclusive(self) -> bool {
        matches!(self, LineState::E | LineState::M)
    }
}

impl fmt::Display for LineState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            LineState::I => "I",
            LineState::S => "S",
            LineState::E => "E",
            LineState::M => "M",
            LineState::IsD => "IS_D",
            LineState::ImD => "IM_D",
            LineState::SmA => "SM_A",
        })
    }
}

/// What happens to a line of one core's private cache.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub enum Event {
    /// The core loads from the line.
    Load,
    /// The core stores to the line.
    Store,
    /// Read-miss response: data, others hold copies.
    DataS,
    /// Read-miss response: data, nobody else holds a copy.
    DataE,
    /// Write-miss response: data and ownership.
    DataM,
    /// Upgrade response: every other copy is gone.
    UpgradeAck,
    /// The private cache needs the way for another line (capacity or conflict eviction).
    Replace,
    /// Another core's read miss, forwarded to this lone holder.
    FwdGetS,
    /// Another core's write miss or upgrade: give up the copy.
    Inv,
    /// A snooped device read: supply data if dirty, keep the state (Intel `SnpCur`-like).
    DmaRead,
    /// A snooped device write: give up the copy, supplying dirty data for the merge.
    DmaInv,
    /// clflush / clflushopt performed, or wbinvd: write back if dirty, invalidate.
    Flush,
    /// clwb performed, or wbnoinvd: write back if dirty, keep a clean copy.
    Clean,
    /// An inclusive LLC evicts the line: write back into it if dirty, invalidate.
    BackInv,
}

impl Event {
    /// Every event.
    pub const ALL: [Event; 14] = [
        Event::Load,
        Event::Store,
        Event::DataS,
        Event::DataE,
        Event::DataM,
        Event::UpgradeAck,
        Event::Replace,
        Event::FwdGetS,
        Event::Inv,
        Event::DmaRead,
        Event::DmaInv,
        Event::Flush,
        Event::Clean,
        Event::BackInv,
    ];
}

/// A step the hierarchy performs for a transition, in table order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub enum Action {
    /// Count a private hit and update recency.
    Hit,
    /// Make room in the private cache (evicting a victim through `Replace`) and insert the
    /// block; record the core in the directory.
    Allocate,
    /// Send a read miss (GetS) to the home.
    IssueGetS,
    /// Send a write miss (GetM) to the home.
    IssueGetM,
    /// Send an upgrade (S → M) to the home.
    IssueUpgrade,
    /// Copy the response data into the block.
    Fill,
    /// Apply the store's bytes to the block.
    WriteData,
    /// Hand this copy's (dirty) data to the home for the requester or the device.
    SendData,
    /// Write the dirty data into the LLC (allocating it there if absent), LLC line dirty.
    WriteBackToLlc,
    /// Write the dirty data to DRAM; an LLC copy is updated and becomes clean.
    WriteBackToMemory,
    /// A clean victim: give it to a non-inclusive LLC (victim fill); no-op when inclusive.
    VictimToLlc,
    /// Free the block and clear the core from the directory.
    Deallocate,
}

/// What to do for one `(state, event)` pair.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Transition {
    /// The state after the actions.
    pub next: LineState,
    /// The actions, in order.
    pub actions: &'static [Action],
}

/// A `(state, event)` pair the protocol never produces: a broken invariant (the directory
/// and the private caches disagree, or a request was not completed).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("MESI: no transition for ({state}, {event:?})")]
pub struct ImpossibleTransition {
    /// The line's state.
    pub state: LineState,
    /// The event that arrived.
    pub event: Event,
}

/// The protocol: one `match` over every `(state, event)` pair.
pub fn transition(state: LineState, event: Event) -> Result<Transition, ImpossibleTransition> {
    use Action::*;
    use Event::*;
    use LineState::*;
    let t = |next, actions| Ok(Transition { next, actions });
    match (state, event) {
        // Core requests.
        (I, Load) => t(IsD, &[Allocate, IssueGetS]),
        (I, Store) => t(ImD, &[Allocate, IssueGetM]),
        (S, Load) => t(S, &[Hit]),
        (E, Load) => t(E, &[Hit]),
        (M, Load) => t(M, &[Hit]),
        (S, Store) => t(SmA, &[IssueUpgrade]),
        (E, Store) => t(M, &[Hit, WriteData]),
        (M, Store) => t(M, &[Hit, WriteData]),

        // Responses.
        (IsD, DataS) => t(S, &[Fill]),
        (IsD, DataE) => t(E, &[Fill]),
        (ImD, DataM) => t(M, &[Fill, WriteData]),
        (SmA, UpgradeAck) => t(M, &[WriteData]),

        // Evictions.
        (S | E, Replace) => t(I, &[VictimToLlc, Deallocate]),
        (M, Replace) => t(I, &[WriteBackToLlc, Deallocate]),

        // Other cores.
        (S, FwdGetS) => t(S, &[]),
        (E, FwdGetS) => t(S, &[]),
        (M, FwdGetS) => t(S, &[WriteBackToLlc]),
        (S | E, Inv) => t(I, &[Deallocate]),
        (M, Inv) => t(I, &[SendData, Deallocate]),

        // Snooped DMA.
        (S, DmaRead) => t(S, &[]),
        (E, DmaRead) => t(E, &[]),
        (M, DmaRead) => t(M, &[SendData]),
        (S | E, DmaInv) => t(I, &[Deallocate]),
        (M, DmaInv) => t(I, &[SendData, Deallocate]),

        // Flushes and inclusion.
        (S | E, Flush) => t(I, &[Deallocate]),
        (M, Flush) => t(I, &[WriteBackToMemory, Deallocate]),
        (S, Clean) => t(S, &[]),
        (E, Clean) => t(E, &[]),
        (M, Clean) => t(E, &[WriteBackToMemory]),
        (S | E, BackInv) => t(I, &[Deallocate]),
        (M, BackInv) => t(I, &[WriteBackToLlc, Deallocate]),

        // Everything else: I receives nothing but core requests (the directory only
        // snoops holders); transients exist only inside one request; responses only
        // answer the matching request.
        (
            I | S | E | M | IsD | ImD | SmA,
            Load | Store | DataS | DataE | DataM | UpgradeAck | Replace | FwdGetS | Inv | DmaRead
            | DmaInv | Flush | Clean | BackInv,
        ) => Err(ImpossibleTransition { state, event }),
    }
}

/// The whole table as text, one row per `(state, event)` pair, impossible pairs included.
pub fn table_text() -> String {
    let mut out = format!("{:<6} {:<11} {:<6} actions\n", "state", "event", "next");
    for state in LineState::ALL {
        for event in Event::ALL {
            let row = match transition(state, event) {
                Ok(t) => format!("{:<6} {:?}", t.next.to_string(), t.actions),
                Err(_) => "-      (impossible)".to_owned(),
            };
            out += &format!(
                "{:<6} {:<11} {row}\n",
                state.to_string(),
                format!("{event:?}")
            );
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_stable_readable_state_serves_a_load_as_a_hit_without_changing() {
        for s in [LineState::S, LineState::E, LineState::M] {
            let t = transition(s, Event::Load).unwrap();
            assert_eq!((t.next, t.actions), (s, &[Action::Hit][..]));
        }
    }

    #[test]
    fn a_dirty_line_never_leaves_without_its_data() {
        // Any transition out of M that drops the copy or makes it clean moves the data.
        for e in Event::ALL {
            if let Ok(t) = transition(LineState::M, e) {
                if t.next != LineState::M {
                    let moves = t.actions.iter().any(|a| {
                        matches!(
                            a,
                            Action::SendData | Action::WriteBackToLlc | Action::WriteBackToMemory
                        )
                    });
                    assert!(moves, "(M, {e:?}) → {} loses dirty data", t.next);
                }
            }
        }
    }

    #[test]
    fn transients_only_accept_their_own_response() {
        let own = [
            (LineState::IsD, [Event::DataS, Event::DataE].as_slice()),
            (LineState::ImD, &[Event::DataM]),
            (LineState::SmA, &[Event::UpgradeAck]),
        ];
        for (s, ok) in own {
            for e in Event::ALL {
                assert_eq!(transition(s, e).is_ok(), ok.contains(&e), "({s}, {e:?})");
            }
        }
    }

    #[test]
    fn an_impossible_pair_names_itself() {
        let err = transition(LineState::I, Event::FwdGetS).unwrap_err();
        assert_eq!(err.to_string(), "MESI: no transition for (I, FwdGetS)");
    }

    #[test]
    fn the_table_lists_every_pair() {
        let text = table_text();
        assert_eq!(
            text.lines().count(),
            1 + LineState::ALL.len() * Event::ALL.len()
        );
    }
}
