//! A descriptor-driven DMA engine at a PCIe endpoint.
//!
//! Software (the workload) hands the engine [`Descriptor`]s; the engine cuts each into
//! memory requests no larger than MPS (writes) or MRRS (reads), each ending on a boundary of
//! that size, so none crosses 4 KiB (PCIe Base 6.0 §2.2.7, §7.5.3.4). Reads need a free tag;
//! with all tags outstanding the engine waits for completions. Completions for one request
//! arrive in address order (§2.4.1) and are reassembled using Byte Count and Lower Address.
//!
//! Call order: [`Endpoint::post`] to queue work; [`Endpoint::poll_transmit`] whenever the
//! link can take a TLP (it returns `None` when there is nothing to send or no tag is free);
//! [`Endpoint::handle_completion`] for each arriving completion.

use crate::fc::{Credits, FcClass, FcGate, Need, UpdateFc, DATA_CREDIT_BYTES};
use crate::tlp::{dw_span, AddressType, Attr, CplStatus, PasidPrefix, Tlp, TlpKind, DW_BYTES};
use bytes::Bytes;
use model_core::{Bdf, Span, Tick};
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet, VecDeque};

/// Most outstanding reads with 8-bit tags: Tag[7:0] (PCIe Base 6.0 §2.2.6.2).
pub const MAX_TAGS_8BIT: u16 = 256;
/// Most outstanding reads with 10-bit tags: a 10-Bit Tag Requester must not use the 256
/// values with Tag[9:8] = 00b (§2.2.6.2), leaving 768.
pub const MAX_TAGS_10BIT: u16 = 768;

/// The tags a requester with `n` outstanding reads uses: 8-bit tags 0.. when `n` fits in
/// 256, else 10-bit tags from 100h (Tag[9:8] ≠ 00b).
pub fn tag_values(n: u16) -> impl Iterator<Item = u16> {
    let start = if n <= MAX_TAGS_8BIT { 0 } else { MAX_TAGS_8BIT };
    (start..start + n.min(MAX_TAGS_10BIT)).take(usize::from(n))
}

/// Direction of a DMA transfer, from the device's point of view.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DmaDirection {
    /// Device writes host memory (MWr).
    Write,
    /// Device reads host memory (MRd + CplD).
    Read,
}

/// Static configuration of an endpoint's DMA engine.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EndpointConfig {
    /// The function's requester ID.
    pub bdf: Bdf,
    /// Max_Payload_Size in bytes (power of two, 128..=4096; §7.5.3.4).
    pub mps: u32,
    /// Max_Read_Request_Size in bytes (power of two, 128..=4096; §7.5.3.4).
    pub mrrs: u32,
    /// Read tags the engine may have outstanding (1..=768; above 256 it uses 10-bit tags).
    pub read_tags: u16,
    /// Add an ECRC digest to every request.
    pub ecrc: bool,
    /// Credits the root port advertised for the device's requests.
    pub tx_credits: Credits,
    /// A read with no completion for this long fails (PCIe Base 6.0 §2.8, Device Control 2
    /// Completion Timeout Value; the default range is 50 µs to 50 ms).
    pub completion_timeout: Span,
}

/// One transfer handed to the engine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Descriptor {
    /// Identifier chosen by the caller, returned with the results.
    pub id: u64,
    /// Read or write.
    pub direction: DmaDirection,
    /// Device-side (IOVA) byte address of the first byte.
    pub address: u64,
    /// Bytes to move (≥ 1).
    pub len: u32,
    /// Attributes of every request of this transfer.
    pub attr: Attr,
    /// Traffic class.
    pub tc: u8,
    /// Address Type of every request: untranslated, or translated by ATS beforehand.
    pub at: AddressType,
    /// PASID prefix on every request, if any.
    pub pasid: Option<PasidPrefix>,
    /// For writes: the `len` bytes to write.
    pub data: Bytes,
}

/// A request the engine wants on the link, with what the engine needs to account for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Issued {
    /// The request.
    pub tlp: Tlp,
    /// The descriptor it belongs to.
    pub descriptor: u64,
    /// When the engine began that descriptor (issued its first request).
    pub started: Tick,
    /// This is the descriptor's last request.
    pub last: bool,
}

/// A read request that finished: all its data arrived, or it failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReadDone {
    /// The tag the request used (now free again).
    pub tag: u16,
    /// When the request was issued.
    pub issued: Tick,
    /// SC, or the error status that ended it (UR, CA, CRS).
    pub status: CplStatus,
    /// Set when this request completed its descriptor successfully: (descriptor id, tick the
    /// engine began it, the bytes read).
    pub descriptor_done: Option<(u64, Tick, Bytes)>,
}

/// A TLP the DMA engine cannot be handed: an engine wiring bug, not a modelled event.
/// (Unexpected and error completions, and timeouts, are modelled: they are counted in
/// [`EndpointStats`].)
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EndpointError {
    /// A request TLP was handed to the endpoint as a completion.
    #[error("a {0} arrived where a completion was expected")]
    NotACompletion(&'static str),
}

/// Counters for reports.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct EndpointStats {
    /// Memory write requests sent.
    pub writes: u64,
    /// Memory read requests sent.
    pub reads: u64,
    /// Completions received.
    pub completions: u64,
    /// Payload bytes written.
    pub bytes_written: u64,
    /// Payload bytes read.
    pub bytes_read: u64,
    /// Times the engine had a read to send but no free tag.
    pub tag_stalls: u64,
    /// Times the engine had a request to send but not the flow-control credits for it.
    pub credit_stalls: u64,
    /// Completions matching no outstanding read (PCIe Base 6.0 §2.3.2: Unexpected
    /// Completion), e.g. arriving after their read timed out.
    pub unexpected_completions: u64,
    /// Reads ended by a completion with an error status (UR, CA, CRS).
    pub error_completions: u64,
    /// Reads ended by the Completion Timeout mechanism (§2.8).
    pub completion_timeouts: u64,
    /// Descriptors that did not complete because one of their reads failed.
    pub failed_transfers: u64,
}

#[derive(Debug, Clone)]
struct OutstandingRead {
    descriptor: u64,
    issued: Tick,
    deadline: Tick,
    /// Offset of this request's first byte within the descriptor.
    offset: usize,
    /// Address of the request's first byte.
    first_byte: u64,
    len: usize,
    received: usize,
    last: bool,
}

#[derive(Debug, Clone)]
struct ReadBuffer {
    started: Tick,
    data: Vec<u8>,
    missing: usize,
}

/// The next request of a descriptor: where it starts, how long, its DW span.
#[derive(Debug, Clone, Copy)]
struct Cut {
    /// Byte address of its first byte.
    addr: u64,
    /// Bytes.
    len: u32,
    dw_addr: u64,
    length_dw: u16,
    first_be: u8,
    last_be: u8,
    /// It ends the descriptor.
    last: bool,
}

impl Cut {
    /// The request `offset` bytes into `head`: cut at the next multiple of MPS (writes) or
    /// MRRS (reads), so never above either and never across 4 KiB.
    fn next(head: &Descriptor, offset: u32, config: &EndpointConfig) -> Cut {
        let limit = u64::from(match head.direction {
            DmaDirection::Write => config.mps,
            DmaDirection::Read => config.mrrs,
        });
        let addr = head.address + u64::from(offset);
        let len = u64::from(head.len - offset).min(limit - addr % limit) as u32;
        let (dw_addr, length_dw, first_be, last_be) = dw_span(addr, u64::from(len));
        Cut {
            addr,
            len,
            dw_addr,
            length_dw,
            first_be,
            last_be,
            last: offset + len == head.len,
        }
    }

    /// The flow-control credits the request consumes (PCIe Base 6.0 §2.6.1).
    fn need(&self, direction: DmaDirection) -> Need {
        match direction {
            DmaDirection::Write => Need {
                class: FcClass::Posted,
                header: 1,
                data: (u64::from(self.length_dw) * DW_BYTES).div_ceil(DATA_CREDIT_BYTES) as u32,
            },
            DmaDirection::Read => Need {
                class: FcClass::NonPosted,
                header: 1,
                data: 0,
            },
        }
    }

    /// A write's DW-aligned payload: the descriptor's bytes, zero where not enabled.
    fn payload(&self, data: &Bytes, offset: u32) -> Bytes {
        let lead = (self.addr - self.dw_addr) as usize;
        let mut buf = vec![0u8; usize::from(self.length_dw) * DW_BYTES as usize];
        let src = &data[offset as usize..(offset + self.len) as usize];
        buf[lead..lead + src.len()].copy_from_slice(src);
        Bytes::from(buf)
    }
}

/// The DMA engine.
#[derive(Debug, Clone)]
pub struct Endpoint {
    config: EndpointConfig,
    queue: VecDeque<Descriptor>,
    /// Bytes of the head descriptor already cut into requests.
    cursor: u32,
    /// When the engine began the head descriptor.
    head_started: Tick,
    free_tags: VecDeque<u16>,
    outstanding: BTreeMap<u16, OutstandingRead>,
    /// (deadline, tag) of every outstanding read, earliest first.
    deadlines: BTreeSet<(Tick, u16)>,
    reads: BTreeMap<u64, ReadBuffer>,
    stats: EndpointStats,
    blocked_on_tag: bool,
    blocked_on_credit: bool,
    gate: FcGate,
}

impl Endpoint {
    /// An idle engine.
    pub fn new(config: EndpointConfig) -> Endpoint {
        Endpoint {
            free_tags: tag_values(config.read_tags).collect(),
            config,
            queue: VecDeque::new(),
            cursor: 0,
            head_started: Tick::ZERO,
            outstanding: BTreeMap::new(),
            deadlines: BTreeSet::new(),
            reads: BTreeMap::new(),
            stats: EndpointStats::default(),
            blocked_on_tag: false,
            blocked_on_credit: false,
            gate: FcGate::new(config.tx_credits),
        }
    }

    /// The configuration.
    pub fn config(&self) -> &EndpointConfig {
        &self.config
    }

    /// Descriptors queued and not yet fully issued.
    pub fn queued(&self) -> usize {
        self.queue.len()
    }

    /// Queues a transfer.
    pub fn post(&mut self, desc: Descriptor) {
        self.queue.push_back(desc);
    }

    /// Nothing queued and nothing outstanding.
    pub fn is_idle(&self) -> bool {
        self.queue.is_empty() && self.outstanding.is_empty()
    }

    /// Counters.
    pub fn stats(&self) -> EndpointStats {
        self.stats
    }

    /// The next request to put on the link, if any can go now.
    pub fn poll_transmit(&mut self, now: Tick) -> Option<Issued> {
        let head = self.queue.front()?;
        let cut = Cut::next(head, self.cursor, &self.config);
        let need = cut.need(head.direction);
        if !self.gate.allows(need) {
            if !self.blocked_on_credit {
                self.stats.credit_stalls += 1;
                self.blocked_on_credit = true;
            }
            return None;
        }
        self.blocked_on_credit = false;
        let (kind, tag, payload) = match head.direction {
            DmaDirection::Write => {
                let payload = cut.payload(&head.data, self.cursor);
                self.stats.writes += 1;
                self.stats.bytes_written += u64::from(cut.len);
                (TlpKind::MemWrite, 0, payload)
            }
            DmaDirection::Read => {
                let (id, len) = (head.id, head.len);
                (
                    TlpKind::MemRead,
                    self.start_read(now, id, len, &cut)?,
                    Bytes::new(),
                )
            }
        };
        self.gate.consume(need);
        let head = self.queue.front()?;
        let started = if self.cursor == 0 {
            now
        } else {
            self.head_started
        };
        let issued = Issued {
            tlp: Tlp {
                kind,
                requester: self.config.bdf,
                tag,
                tc: head.tc,
                attr: head.attr,
                at: head.at,
                pasid: head.pasid,
                td: self.config.ecrc,
                address: cut.dw_addr,
                length_dw: cut.length_dw,
                first_be: cut.first_be,
                last_be: cut.last_be,
                payload,
            },
            descriptor: head.id,
            started,
            last: cut.last,
        };
        if cut.last {
            self.queue.pop_front();
            self.cursor = 0;
        } else {
            self.cursor += cut.len;
            self.head_started = started;
        }
        Some(issued)
    }

    /// Takes a tag and records the read `cut` of descriptor `id` (of `len` bytes) as
    /// outstanding; `None` (counted as a tag stall) when no tag is free.
    fn start_read(&mut self, now: Tick, id: u64, len: u32, cut: &Cut) -> Option<u16> {
        let Some(tag) = self.free_tags.pop_front() else {
            if !self.blocked_on_tag {
                self.stats.tag_stalls += 1;
                self.blocked_on_tag = true;
            }
            return None;
        };
        self.blocked_on_tag = false;
        if self.cursor == 0 {
            self.reads.insert(
                id,
                ReadBuffer {
                    started: now,
                    data: vec![0; len as usize],
                    missing: len as usize,
                },
            );
        }
        let deadline = now + self.config.completion_timeout;
        self.deadlines.insert((deadline, tag));
        self.outstanding.insert(
            tag,
            OutstandingRead {
                descriptor: id,
                issued: now,
                deadline,
                offset: self.cursor as usize,
                first_byte: cut.addr,
                len: cut.len as usize,
                received: 0,
                last: cut.last,
            },
        );
        self.stats.reads += 1;
        Some(tag)
    }

    /// Applies an UpdateFC DLLP from the root port. Returns whether the engine was waiting
    /// for credits (so the caller should offer it the link again).
    pub fn handle_update_fc(&mut self, update: UpdateFc) -> bool {
        self.gate.update(update.class, update.header, update.data);
        std::mem::take(&mut self.blocked_on_credit)
    }

    /// When the earliest outstanding read times out, if any read is outstanding: the engine
    /// calls [`Self::handle_timeouts`] then.
    pub fn next_timeout(&self) -> Option<Tick> {
        self.deadlines.first().map(|(t, _)| *t)
    }

    /// Ends every read whose deadline has passed; returns how many.
    pub fn handle_timeouts(&mut self, now: Tick) -> u64 {
        let mut n = 0;
        while let Some(&(deadline, tag)) = self.deadlines.first() {
            if deadline > now {
                break;
            }
            self.stats.completion_timeouts += 1;
            if let Some(out) = self.finish(tag) {
                self.fail_descriptor(out.descriptor);
            }
            n += 1;
        }
        n
    }

    /// Frees `tag` and fails its descriptor (a read of it failed or timed out).
    fn finish(&mut self, tag: u16) -> Option<OutstandingRead> {
        let out = self.outstanding.remove(&tag)?;
        self.deadlines.remove(&(out.deadline, tag));
        self.free_tags.push_back(tag);
        Some(out)
    }

    fn fail_descriptor(&mut self, descriptor: u64) {
        if self.reads.remove(&descriptor).is_some() {
            self.stats.failed_transfers += 1;
        }
    }

    /// Accepts a completion. Returns the read it finished, if it finished one.
    pub fn handle_completion(
        &mut self,
        _now: Tick,
        tlp: &Tlp,
    ) -> Result<Option<ReadDone>, EndpointError> {
        let TlpKind::Completion {
            status,
            byte_count,
            lower_address,
            ..
        } = tlp.kind
        else {
            return Err(EndpointError::NotACompletion(tlp.name()));
        };
        let tag = tlp.tag;
        let Some(out) = self.outstanding.get_mut(&tag) else {
            self.stats.unexpected_completions += 1;
            return Ok(None);
        };
        self.stats.completions += 1;
        // An error status ends the read; so does a successful completion without data, which
        // a memory read never gets (PCIe Base 6.0 §2.2.9: reads complete with CplD).
        if status != CplStatus::Sc || tlp.length_dw == 0 {
            self.stats.error_completions += 1;
            let out = self.finish(tag);
            if let Some(o) = &out {
                self.fail_descriptor(o.descriptor);
            }
            return Ok(out.map(|o| ReadDone {
                tag,
                issued: o.issued,
                status,
                descriptor_done: None,
            }));
        }
        // Completions of one request arrive in address order (§2.4.1), so this one must
        // start where the data so far ends, and say so in Lower Address and Byte Count
        // (§2.2.9.1). One that does not is malformed: counted as unexpected, its data dropped.
        let expect_at = out.first_byte + out.received as u64;
        if u64::from(lower_address) != expect_at & 0x7f
            || byte_count as usize != out.len - out.received
        {
            self.stats.unexpected_completions += 1;
            return Ok(None);
        }
        // The first byte of this completion's payload that belongs to the request.
        let skip = usize::from(lower_address) % DW_BYTES as usize;
        let avail = tlp.payload.len().saturating_sub(skip);
        let take = avail.min(byte_count as usize).min(out.len - out.received);
        let at = out.offset + out.received;
        out.received += take;
        self.stats.bytes_read += take as u64;
        let finished = out.received >= out.len;
        let (descriptor, last) = (out.descriptor, out.last);
        // A descriptor that already failed keeps no buffer: its late data is dropped.
        let complete = match self.reads.get_mut(&descriptor) {
            Some(buf) => {
                buf.data[at..at + take].copy_from_slice(&tlp.payload[skip..skip + take]);
                buf.missing -= take;
                buf.missing == 0
            }
            None => false,
        };
        if !finished {
            return Ok(None);
        }
        let Some(done) = self.finish(tag) else {
            return Ok(None);
        };
        let descriptor_done = if last && complete {
            self.reads
                .remove(&descriptor)
                .map(|b| (descriptor, b.started, Bytes::from(b.data)))
        } else {
            None
        };
        Ok(Some(ReadDone {
            tag,
            issued: done.issued,
            status,
            descriptor_done,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rc::{completions_for, RCB_BYTES};

    fn ep(mps: u32, mrrs: u32, tags: u16) -> Endpoint {
        Endpoint::new(EndpointConfig {
            bdf: Bdf::from_raw(0x0100),
            mps,
            mrrs,
            read_tags: tags,
            ecrc: false,
            tx_credits: Credits::INFINITE,
            completion_timeout: Span::from_ns(50_000),
        })
    }

    fn desc(direction: DmaDirection, address: u64, len: u32) -> Descriptor {
        Descriptor {
            id: 7,
            direction,
            address,
            len,
            attr: Attr::default(),
            tc: 0,
            at: AddressType::Untranslated,
            pasid: None,
            data: Bytes::from((0..len).map(|i| i as u8).collect::<Vec<_>>()),
        }
    }

    fn drain(e: &mut Endpoint) -> Vec<Issued> {
        std::iter::from_fn(|| e.poll_transmit(Tick::ZERO)).collect()
    }

    #[test]
    fn more_than_256_reads_use_10_bit_tags_with_tag_9_8_nonzero() {
        let small: Vec<u16> = tag_values(3).collect();
        assert_eq!(small, [0, 1, 2]);
        let big: Vec<u16> = tag_values(768).collect();
        assert_eq!((big.len(), big[0], big[767]), (768, 0x100, 0x3ff));
        assert!(big.iter().all(|t| t >> 8 != 0));
        assert_eq!(tag_values(1000).count(), 768, "capped at 768");
    }

    #[test]
    fn writes_are_cut_at_mps_boundaries_and_never_cross_4k() {
        let mut e = ep(256, 512, 32);
        // 1000 bytes from 0x0f80: 0x0f80..0x1000 (128), then 256, 256, 256, 104.
        e.post(desc(DmaDirection::Write, 0x0f80, 1000));
        let tlps = drain(&mut e);
        let sizes: Vec<u64> = tlps.iter().map(|i| i.tlp.enabled_bytes()).collect();
        assert_eq!(sizes, vec![128, 256, 256, 256, 104]);
        for i in &tlps {
            let start = i.tlp.address;
            let end = start + i.tlp.payload_bytes();
            assert_eq!(start / 4096, (end - 1) / 4096, "crosses 4 KiB");
            assert!(i.tlp.payload_bytes() <= 256);
        }
        assert!(tlps.last().unwrap().last);
        // Payload bytes are the descriptor's bytes in order.
        assert_eq!(tlps[1].tlp.payload[0], 128);
    }

    #[test]
    fn reads_stop_when_tags_run_out_and_resume_on_completion() {
        let mut e = ep(256, 128, 2);
        e.post(desc(DmaDirection::Read, 0x1000, 512));
        let first = drain(&mut e);
        assert_eq!(first.len(), 2, "only two tags");
        assert_eq!(e.stats().tag_stalls, 1);
        // Complete the first request; the memory holds byte i at 0x1000 + i.
        let mem: Vec<u8> = (0..512u32).map(|i| (i * 3) as u8).collect();
        let req = &first[0].tlp;
        let o = (req.address - 0x1000) as usize;
        let span = Bytes::copy_from_slice(&mem[o..o + req.payload_bytes_requested()]);
        let cpls = completions_for(req, Bdf::from_raw(0), 256, RCB_BYTES, &span);
        for c in &cpls[..cpls.len() - 1] {
            assert_eq!(e.handle_completion(Tick::ZERO, c).unwrap(), None);
        }
        let done = e
            .handle_completion(Tick::ZERO, cpls.last().unwrap())
            .unwrap()
            .unwrap();
        assert_eq!(done.tag, req.tag);
        assert!(done.descriptor_done.is_none());
        assert_eq!(
            drain(&mut e).len(),
            1,
            "the freed tag lets one more read go"
        );
    }

    #[test]
    fn writes_wait_for_posted_credits_and_resume_on_update_fc() {
        use crate::fc::ClassCredits;
        let mut credits = Credits::INFINITE;
        credits.posted = ClassCredits { header: 2, data: 0 };
        let mut e = Endpoint::new(EndpointConfig {
            tx_credits: credits,
            ..*ep(128, 128, 4).config()
        });
        e.post(desc(DmaDirection::Write, 0x1000, 512));
        assert_eq!(drain(&mut e).len(), 2, "two posted header credits");
        assert_eq!(e.stats().credit_stalls, 1);
        let woke = e.handle_update_fc(UpdateFc {
            class: FcClass::Posted,
            header: 1,
            data: 0,
        });
        assert!(woke);
        assert_eq!(drain(&mut e).len(), 1, "one credit back, one more write");
        assert_eq!(e.stats().credit_stalls, 2);
        // Credits of another class do not let a posted write through.
        e.handle_update_fc(UpdateFc {
            class: FcClass::NonPosted,
            header: 4,
            data: 0,
        });
        assert_eq!(drain(&mut e).len(), 0);
    }

    #[test]
    fn a_read_without_completion_times_out_frees_its_tag_and_fails_its_transfer() {
        let mut e = ep(128, 128, 1);
        e.post(desc(DmaDirection::Read, 0x1000, 256));
        let first = e.poll_transmit(Tick::from_ps(1_000)).unwrap();
        assert!(
            e.poll_transmit(Tick::from_ps(1_000)).is_none(),
            "one tag only"
        );
        let deadline = Tick::from_ps(1_000) + Span::from_ns(50_000);
        assert_eq!(e.next_timeout(), Some(deadline));
        assert_eq!(e.handle_timeouts(Tick::from_ps(deadline.as_ps() - 1)), 0);
        assert_eq!(e.handle_timeouts(deadline), 1);
        assert_eq!(e.stats().completion_timeouts, 1);
        assert_eq!(e.stats().failed_transfers, 1);
        assert_eq!(e.next_timeout(), None);
        // The tag is free: the second half of the transfer goes out...
        assert!(e.poll_transmit(deadline).is_some());
        // ...and the late completion for the first request is unexpected data for a failed
        // transfer: it is counted, not fatal.
        let span = Bytes::from(vec![0; 128]);
        for c in completions_for(&first.tlp, Bdf::from_raw(0), 128, RCB_BYTES, &span) {
            let done = e.handle_completion(deadline, &c).unwrap();
            assert!(done.is_none_or(|d| d.descriptor_done.is_none()));
        }
    }

    #[test]
    fn an_unsupported_request_completion_ends_the_read_with_its_status() {
        let mut e = ep(128, 128, 4);
        e.post(desc(DmaDirection::Read, 0x1000, 64));
        let req = e.poll_transmit(Tick::ZERO).unwrap().tlp;
        let mut c = completions_for(
            &req,
            Bdf::from_raw(0),
            128,
            RCB_BYTES,
            &Bytes::from(vec![0; 64]),
        );
        let TlpKind::Completion { ref mut status, .. } = c[0].kind else {
            unreachable!()
        };
        *status = CplStatus::Ur;
        let done = e.handle_completion(Tick::ZERO, &c[0]).unwrap().unwrap();
        assert_eq!(done.status, CplStatus::Ur);
        assert!(done.descriptor_done.is_none());
        assert_eq!(e.stats().error_completions, 1);
        assert_eq!(e.stats().failed_transfers, 1);
        assert!(e.is_idle());
    }

    #[test]
    fn a_completion_out_of_address_order_is_dropped_as_unexpected() {
        let mut e = ep(128, 512, 4);
        e.post(desc(DmaDirection::Read, 0x1000, 512));
        let req = e.poll_transmit(Tick::ZERO).unwrap().tlp;
        let c = completions_for(
            &req,
            Bdf::from_raw(0),
            128,
            RCB_BYTES,
            &Bytes::from(vec![7; 512]),
        );
        assert_eq!(c.len(), 4);
        // The second completion first: its Lower Address and Byte Count do not fit.
        assert_eq!(e.handle_completion(Tick::ZERO, &c[1]).unwrap(), None);
        assert_eq!(e.stats().unexpected_completions, 1);
        assert_eq!(e.stats().bytes_read, 0);
        // The right order still completes the read.
        assert_eq!(e.handle_completion(Tick::ZERO, &c[0]).unwrap(), None);
        assert_eq!(e.handle_completion(Tick::ZERO, &c[1]).unwrap(), None);
        assert_eq!(e.handle_completion(Tick::ZERO, &c[2]).unwrap(), None);
        let done = e.handle_completion(Tick::ZERO, &c[3]).unwrap().unwrap();
        assert_eq!(done.descriptor_done.unwrap().2, Bytes::from(vec![7; 512]));
    }

    #[test]
    fn unaligned_read_reassembles_exact_bytes() {
        let mut e = ep(128, 128, 8);
        e.post(desc(DmaDirection::Read, 0x1003, 300));
        let reqs = drain(&mut e);
        let mem = |a: u64, n: usize| {
            Bytes::from((0..n).map(|i| (a as usize + i) as u8).collect::<Vec<_>>())
        };
        let mut result = None;
        for r in &reqs {
            let span = mem(r.tlp.address, r.tlp.payload_bytes_requested());
            for c in completions_for(&r.tlp, Bdf::from_raw(0), 128, RCB_BYTES, &span) {
                if let Some(d) = e.handle_completion(Tick::ZERO, &c).unwrap() {
                    result = d.descriptor_done.or(result);
                }
            }
        }
        let (id, _, data) = result.expect("descriptor completes");
        assert_eq!(id, 7);
        let want: Vec<u8> = (0..300).map(|i| (0x1003 + i) as u8).collect();
        assert_eq!(&data[..], &want[..]);
        assert!(e.is_idle());
    }

    #[test]
    fn completion_for_unknown_tag_is_an_unexpected_completion() {
        let mut e = ep(128, 128, 8);
        let mut c = completions_for(
            &Tlp {
                kind: TlpKind::MemRead,
                requester: Bdf::from_raw(0x0100),
                tag: 5,
                tc: 0,
                attr: Attr::default(),
                at: AddressType::Untranslated,
                pasid: None,
                td: false,
                address: 0x1000,
                length_dw: 1,
                first_be: 0xf,
                last_be: 0,
                payload: Bytes::new(),
            },
            Bdf::from_raw(0),
            128,
            RCB_BYTES,
            &Bytes::from(vec![0; 4]),
        );
        assert_eq!(e.handle_completion(Tick::ZERO, &c.remove(0)), Ok(None));
        assert_eq!(e.stats().unexpected_completions, 1);
    }
}
