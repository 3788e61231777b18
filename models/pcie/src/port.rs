//! The receive side of a root port: buffers, ordering, credits, Acks and the ingress pipeline.
//!
//! Arriving requests wait in one queue ordered by the transaction ordering rules (PCIe Base
//! 6.0 §2.4.1, [`crate::ordering`]). The ingress pipeline takes one TLP per
//! `accept_interval` — the oldest one it can serve that may pass everything older. It can
//! serve a read only while fewer than `max_outstanding_reads` are on their way to memory, so
//! a port out of read trackers holds reads back while posted writes pass them (rule A3: a
//! Posted Request must be able to pass a Non-Posted one). A TLP leaving the queue frees its
//! receive buffers, whose credits go back in UpdateFC DLLPs ([`crate::fc::FcReturn`]).
//!
//! Call order: [`RootPort::arrive`] for each TLP; [`RootPort::next_accept`] says when the
//! pipeline next wants to run; then [`RootPort::accept`]; [`RootPort::read_done`] when a
//! read's completions have been generated.

use crate::fc::{Credits, FcReturn, Need, UpdateFc};
use crate::link::AckCounter;
use crate::ordering::{OrderedQueue, OrderingClass, OrderingInfo, YnPolicy};
use crate::rc::RootComplexConfig;
use crate::tlp::Tlp;
use model_core::{Span, Tick};

/// A TLP the ingress pipeline took.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Accepted<T> {
    /// The caller's token for it.
    pub item: T,
    /// It is a read, counted against the port's outstanding reads until
    /// [`RootPort::read_done`].
    pub read: bool,
    /// Credits to return to the device now, if an UpdateFC is due.
    pub update: Option<UpdateFc>,
}

/// The receive side of one root port.
#[derive(Debug, Clone)]
pub struct RootPort<T> {
    accept_interval: Span,
    next_accept: Tick,
    credits: FcReturn,
    acks: AckCounter,
    queue: OrderedQueue<(T, Need)>,
    max_reads: u32,
    reads: u32,
}

impl<T> RootPort<T> {
    /// A port with `config`'s credits, rate and read limit, whose device sends at most
    /// `mps`-byte payloads; DLLPs per the link's ratios.
    pub fn new(
        config: &RootComplexConfig,
        mps: u32,
        ack_every: u32,
        update_fc_every: u32,
    ) -> RootPort<T> {
        let mut largest = Credits::INFINITE;
        largest.posted.header = 1;
        largest.posted.data = mps.div_ceil(crate::fc::DATA_CREDIT_BYTES as u32);
        largest.non_posted.header = 1;
        RootPort {
            accept_interval: config.accept_interval,
            next_accept: Tick::ZERO,
            credits: FcReturn::new(config.credits, largest, update_fc_every),
            acks: AckCounter::new(ack_every),
            queue: OrderedQueue::new(YnPolicy::Pass),
            max_reads: config.max_outstanding_reads,
            reads: 0,
        }
    }

    /// `tlp` arrived (under the caller's token `item`). Returns whether an Ack DLLP is due.
    pub fn arrive(&mut self, item: T, tlp: &Tlp) -> bool {
        let need = Need::of(tlp);
        self.credits.received(need);
        self.queue.push((item, need), OrderingInfo::of(tlp));
        self.acks.received()
    }

    /// Whether the pipeline could serve a TLP of this class now (a read needs a tracker).
    fn can_serve(&self, info: &OrderingInfo) -> bool {
        info.class != OrderingClass::ReadRequest
            || self.max_reads == 0
            || self.reads < self.max_reads
    }

    /// When the pipeline next wants to run, if something waits that it can serve: not
    /// before `now`, nor before its previous TLP's interval is over. `None` while only reads
    /// wait and every tracker is busy: [`RootPort::read_done`] changes that.
    pub fn next_accept(&self, now: Tick) -> Option<Tick> {
        self.queue
            .sendable_index(|i| self.can_serve(i))
            .map(|_| now.max(self.next_accept))
    }

    /// The pipeline takes the oldest TLP it can serve that may pass all older ones, if any.
    pub fn accept(&mut self, now: Tick) -> Option<Accepted<T>> {
        if now < self.next_accept {
            return None;
        }
        let room = self.max_reads == 0 || self.reads < self.max_reads;
        let ((item, need), info) = self
            .queue
            .pop_sendable(|i| room || i.class != OrderingClass::ReadRequest)?;
        let read = info.class == OrderingClass::ReadRequest;
        if read {
            self.reads += 1;
        }
        self.next_accept = now + self.accept_interval;
        Some(Accepted {
            item,
            read,
            update: self.credits.freed(need),
        })
    }

    /// A read's completions have been generated: its tracker is free.
    pub fn read_done(&mut self) {
        self.reads = self.reads.saturating_sub(1);
    }

    /// TLPs waiting in the ingress queue.
    pub fn queued(&self) -> usize {
        self.queue.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tlp::{dw_span, AddressType, Attr, TlpKind};
    use bytes::Bytes;
    use model_core::Bdf;

    fn cfg(accept_ns: u64, max_reads: u32) -> RootComplexConfig {
        RootComplexConfig {
            completer: Bdf::from_raw(0),
            request_latency: Span::ZERO,
            completion_latency: Span::ZERO,
            rcb: 64,
            accept_interval: Span::from_ns(accept_ns),
            credits: Credits::INFINITE,
            max_outstanding_reads: max_reads,
        }
    }

    fn tlp(kind: TlpKind, tag: u16) -> Tlp {
        let (address, length_dw, first_be, last_be) = dw_span(0x1000, 64);
        Tlp {
            payload: if kind == TlpKind::MemWrite {
                Bytes::from(vec![0; 64])
            } else {
                Bytes::new()
            },
            kind,
            requester: Bdf::from_raw(0x100),
            tag,
            tc: 0,
            attr: Attr::default(),
            at: AddressType::Untranslated,
            pasid: None,
            td: false,
            address,
            length_dw,
            first_be,
            last_be,
        }
    }

    #[test]
    fn a_slow_ingress_pipeline_spaces_out_acceptance() {
        let mut p = RootPort::new(&cfg(10, 0), 256, 2, 4);
        assert!(!p.arrive("a", &tlp(TlpKind::MemWrite, 0)));
        assert!(
            p.arrive("b", &tlp(TlpKind::MemWrite, 0)),
            "Ack every 2 TLPs"
        );
        assert_eq!(p.next_accept(Tick::ZERO), Some(Tick::ZERO));
        assert_eq!(p.accept(Tick::ZERO).unwrap().item, "a");
        assert_eq!(p.next_accept(Tick::ZERO), Some(Tick::from_ps(10_000)));
        assert!(p.accept(Tick::from_ps(5_000)).is_none(), "pipeline busy");
        assert_eq!(p.accept(Tick::from_ps(10_000)).unwrap().item, "b");
        assert_eq!(p.next_accept(Tick::from_ps(10_000)), None, "nothing waits");
    }

    #[test]
    fn a3_writes_pass_reads_waiting_for_a_read_tracker() {
        let mut p = RootPort::new(&cfg(0, 1), 256, 4, 4);
        p.arrive("read0", &tlp(TlpKind::MemRead, 0));
        p.arrive("read1", &tlp(TlpKind::MemRead, 1));
        p.arrive("write", &tlp(TlpKind::MemWrite, 0));
        let first = p.accept(Tick::ZERO).unwrap();
        assert_eq!((first.item, first.read), ("read0", true));
        // One tracker, in use: read1 waits and the posted write passes it.
        assert_eq!(p.accept(Tick::ZERO).unwrap().item, "write");
        assert!(p.accept(Tick::ZERO).is_none());
        assert_eq!(
            p.next_accept(Tick::ZERO),
            None,
            "nothing it can serve: no wake-up"
        );
        p.read_done();
        assert_eq!(p.next_accept(Tick::ZERO), Some(Tick::ZERO));
        assert_eq!(p.accept(Tick::ZERO).unwrap().item, "read1");
    }

    #[test]
    fn b2a_a_read_never_passes_an_older_write() {
        let mut p = RootPort::new(&cfg(0, 0), 256, 4, 4);
        p.arrive("write", &tlp(TlpKind::MemWrite, 0));
        p.arrive("read", &tlp(TlpKind::MemRead, 0));
        assert_eq!(p.accept(Tick::ZERO).unwrap().item, "write");
        assert_eq!(p.accept(Tick::ZERO).unwrap().item, "read");
    }
}
