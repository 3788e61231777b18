//! Test harness pieces shared by the IOMMU models' integration tests (feature `testkit`).
//!
//! * [`Memory`]: DRAM (a [`SparseMemory`]) plus a "CPU cache" overlay holding bytes the CPU
//!   wrote that have not reached DRAM yet. Table updates are applied either flushed (to both,
//!   as after CLFLUSH) or cached (to the overlay only). A snooped read sees the overlay first,
//!   a non-snooped read DRAM only.
//! * [`Pump`]: drives any [`TranslationAgent`] the way `sim/` does. Events are kept in a
//!   `BTreeMap` keyed by `(tick, sequence)`, so equal-tick events run in insertion order and
//!   time never goes backwards (an agent requires a non-decreasing `now`). A `MemRead` is
//!   answered `dram_latency` after it leaves with the memory contents at that tick (snooped:
//!   overlay then DRAM; not snooped: DRAM alone); a `MemWrite` is applied at its tick;
//!   `Done`s are collected as [`Done`] records and `RegisterChanged`s as (offset, tick).
//! * Request builders ([`req`], [`rd`], [`wr`], [`dev`]) and time helpers ([`ns`], [`ps`],
//!   [`at_ns`]).
//! * Seeded randomized testing: [`Dice`], [`seeds`] (`SNOOPSIM_SEED` / `SNOOPSIM_SEEDS`),
//!   [`arrivals`], [`Pump::submit_random`], [`Pump::completions`] (every request answered
//!   once, no earlier than its lookup, but for the known merged-walk pattern) and [`Tally`].
//!
//! Vendor-specific boot sequences and table builders stay with each model's tests.

use crate::{
    AccessKind, AgentError, AgentOutput, AgentStats, Bdf, CacheCounts, Iova, MemWrite, PhysAddr,
    Span, SparseMemory, Tick, Translation, TranslationAgent, TranslationFault, TranslationRequest,
};
use std::cell::Cell;
use std::collections::BTreeMap;

/// DRAM read latency used throughout (the figure the latency tables are quoted at).
pub const DRAM_NS: u64 = 80;

/// Nanoseconds as a span.
pub fn ns(n: u64) -> Span {
    Span::from_ns(n)
}

/// Picoseconds as a span.
pub fn ps(n: u64) -> Span {
    Span::from_ps(n)
}

/// A tick `n` nanoseconds into the run.
pub fn at_ns(n: u64) -> Tick {
    Tick::ZERO + Span::from_ns(n)
}

/// A requester ID.
pub fn dev(bus: u8, device: u8, function: u8) -> Bdf {
    Bdf::new(bus, device, function).expect("valid BDF")
}

/// A plain untranslated request without PASID, snooped (NS = 0), 64 bytes.
pub fn req(bdf: Bdf, iova: u64, access: AccessKind) -> TranslationRequest {
    TranslationRequest {
        requester: bdf,
        iova: Iova(iova),
        len: 64,
        access,
        pasid: None,
        execute: false,
        privileged: false,
        no_snoop: false,
        translated: false,
    }
}

/// A memory read request.
pub fn rd(bdf: Bdf, iova: u64) -> TranslationRequest {
    req(bdf, iova, AccessKind::Read)
}

/// A memory write request.
pub fn wr(bdf: Bdf, iova: u64) -> TranslationRequest {
    req(bdf, iova, AccessKind::Write)
}

/// One 64-bit store of `value` at `pa`.
pub fn word(pa: u64, value: u64) -> MemWrite {
    MemWrite {
        pa: PhysAddr(pa),
        bytes: value.to_le_bytes().to_vec(),
    }
}

// ---------------------------------------------------------------------------------------
// Memory
// ---------------------------------------------------------------------------------------

/// DRAM plus the CPU-cache overlay (bytes written by the CPU, not yet written back).
#[derive(Debug, Clone, Default)]
pub struct Memory {
    /// What a non-snooped read sees.
    pub dram: SparseMemory,
    /// Dirty bytes in the CPU caches, by address.
    pub cache: BTreeMap<u64, u8>,
}

impl Memory {
    /// Writes that reached DRAM (written and flushed): DRAM and the overlay agree afterwards.
    pub fn write_flushed(&mut self, writes: &[MemWrite]) {
        for w in writes {
            self.store_flushed(w.pa, &w.bytes);
        }
    }

    /// Writes that stayed in the CPU caches (no CLFLUSH): DRAM keeps the old bytes.
    pub fn write_cached(&mut self, writes: &[MemWrite]) {
        for w in writes {
            self.store_cached(w.pa, &w.bytes);
        }
    }

    /// Bytes written through to DRAM; any cached copy is updated too.
    pub fn store_flushed(&mut self, pa: PhysAddr, bytes: &[u8]) {
        self.dram.write(pa, bytes);
        for (i, b) in (0u64..).zip(bytes) {
            if let Some(c) = self.cache.get_mut(&pa.0.wrapping_add(i)) {
                *c = *b;
            }
        }
    }

    /// Bytes written into the CPU caches only.
    pub fn store_cached(&mut self, pa: PhysAddr, bytes: &[u8]) {
        for (i, b) in (0u64..).zip(bytes) {
            self.cache.insert(pa.0.wrapping_add(i), *b);
        }
    }

    /// Writes every dirty byte back to DRAM (WBINVD).
    pub fn flush_all(&mut self) {
        for (a, b) in std::mem::take(&mut self.cache) {
            self.dram.write(PhysAddr(a), &[b]);
        }
    }

    /// The CPU's coherent view: overlay first, then DRAM.
    pub fn read_coherent(&self, pa: PhysAddr, buf: &mut [u8]) {
        self.dram.read(pa, buf);
        for (i, b) in (0u64..).zip(buf.iter_mut()) {
            if let Some(c) = self.cache.get(&pa.0.wrapping_add(i)) {
                *b = *c;
            }
        }
    }

    /// What a device or a non-snooping reader sees.
    pub fn read_dram(&self, pa: PhysAddr, buf: &mut [u8]) {
        self.dram.read(pa, buf);
    }

    /// A snooped or non-snooped read.
    pub fn read(&self, pa: PhysAddr, buf: &mut [u8], snooped: bool) {
        if snooped {
            self.read_coherent(pa, buf)
        } else {
            self.read_dram(pa, buf)
        }
    }

    /// A copy of `self` with the `len` coherent bytes at each of `addrs` taken from `from`
    /// (flushed), e.g. old table entries over new tables.
    pub fn with_bytes_from(
        &self,
        from: &Memory,
        addrs: impl IntoIterator<Item = PhysAddr>,
        len: usize,
    ) -> Memory {
        let mut m = self.clone();
        let mut buf = vec![0u8; len];
        for pa in addrs {
            from.read_coherent(pa, &mut buf);
            m.store_flushed(pa, &buf);
        }
        m
    }

    /// A little-endian u64 from the coherent view.
    pub fn u64_coherent(&self, pa: u64) -> u64 {
        let mut b = [0u8; 8];
        self.read_coherent(PhysAddr(pa), &mut b);
        u64::from_le_bytes(b)
    }

    /// A little-endian u32 from the coherent view.
    pub fn u32_coherent(&self, pa: u64) -> u32 {
        let mut b = [0u8; 4];
        self.read_coherent(PhysAddr(pa), &mut b);
        u32::from_le_bytes(b)
    }
}

// ---------------------------------------------------------------------------------------
// The event pump
// ---------------------------------------------------------------------------------------

/// A completed translation as the system saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Done {
    /// The token given at submission.
    pub token: u64,
    /// When the request arrived at the IOMMU.
    pub arrived: Tick,
    /// When the translated request left the IOMMU.
    pub at: Tick,
    /// The outcome.
    pub result: Result<Translation, TranslationFault>,
}

impl Done {
    /// The outcome with the fault reduced to its reason (VT-d) or event (AMD-Vi) code.
    pub fn code(&self) -> Result<Translation, u32> {
        self.result.clone().map_err(|f| f.reason_code)
    }

    /// Arrival to completion.
    pub fn latency(&self) -> Span {
        self.at
            .checked_since(self.arrived)
            .expect("a request completes at or after it arrives")
    }
}

/// A table, descriptor or command read the agent issued.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Read {
    /// The agent's tag.
    pub tag: u64,
    /// First byte.
    pub pa: PhysAddr,
    /// Bytes.
    pub len: u32,
    /// Snooped or not.
    pub snooped: bool,
    /// When it left the agent.
    pub at: Tick,
}

/// A memory write the agent performed (status words, event log entries, semaphores).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AgentWrite {
    /// First byte.
    pub pa: PhysAddr,
    /// Little-endian data.
    pub value: u64,
    /// Bytes.
    pub len: u32,
    /// Snooped or not.
    pub snooped: bool,
    /// When it was performed.
    pub at: Tick,
}

#[derive(Debug, Clone)]
enum Event {
    Request {
        token: u64,
        req: TranslationRequest,
    },
    ReadData {
        tag: u64,
        pa: PhysAddr,
        len: u32,
        snooped: bool,
    },
    Write(AgentWrite),
}

/// One translation agent, its memory and an event list.
#[derive(Debug)]
pub struct Pump<A> {
    /// The unit under test.
    pub agent: A,
    /// DRAM and CPU caches.
    pub mem: Memory,
    /// Issue to data of every memory read.
    pub dram_latency: Span,
    now: Tick,
    seq: u64,
    events: BTreeMap<(Tick, u64), Event>,
    next_token: u64,
    arrivals: BTreeMap<u64, Tick>,
    /// Every completion, in the order the agent produced them.
    pub dones: Vec<Done>,
    /// Every memory read the agent issued (walks and descriptor or command fetches).
    pub reads: Vec<Read>,
    /// Every memory write the agent asked for.
    pub agent_writes: Vec<AgentWrite>,
    /// Every `RegisterChanged` (offset, tick).
    pub reg_changes: Vec<(u32, Tick)>,
}

impl<A: TranslationAgent> Pump<A> {
    /// `agent` with empty memory, at tick 0, reads answered after [`DRAM_NS`].
    pub fn new(agent: A) -> Pump<A> {
        Pump {
            agent,
            mem: Memory::default(),
            dram_latency: ns(DRAM_NS),
            now: Tick::ZERO,
            seq: 0,
            events: BTreeMap::new(),
            next_token: 0,
            arrivals: BTreeMap::new(),
            dones: Vec::new(),
            reads: Vec::new(),
            agent_writes: Vec::new(),
            reg_changes: Vec::new(),
        }
    }

    /// The current tick (the latest event run or call made).
    pub fn now(&self) -> Tick {
        self.now
    }

    fn schedule(&mut self, at: Tick, ev: Event) {
        assert!(
            at >= self.now,
            "scheduling in the past: {at} < now {}",
            self.now
        );
        self.events.insert((at, self.seq), ev);
        self.seq += 1;
    }

    /// Moves every agent output into the event list or the logs.
    fn drain(&mut self) {
        while let Some(o) = self.agent.poll_output() {
            match o {
                AgentOutput::MemRead {
                    tag,
                    pa,
                    len,
                    snooped,
                    at,
                } => {
                    assert!(at >= self.now, "MemRead at {at} before now {}", self.now);
                    self.reads.push(Read {
                        tag,
                        pa,
                        len,
                        snooped,
                        at,
                    });
                    let done = at + self.dram_latency;
                    self.schedule(
                        done,
                        Event::ReadData {
                            tag,
                            pa,
                            len,
                            snooped,
                        },
                    );
                }
                AgentOutput::MemWrite {
                    pa,
                    value,
                    len,
                    snooped,
                    at,
                } => {
                    let w = AgentWrite {
                        pa,
                        value,
                        len,
                        snooped,
                        at,
                    };
                    self.agent_writes.push(w);
                    self.schedule(at, Event::Write(w));
                }
                AgentOutput::Done { token, at, result } => {
                    assert!(at >= self.now, "Done at {at} before now {}", self.now);
                    let arrived = self.arrivals.get(&token).copied().expect("known token");
                    self.dones.push(Done {
                        token,
                        arrived,
                        at,
                        result,
                    });
                }
                AgentOutput::RegisterChanged { offset, at } => {
                    assert!(
                        at >= self.now,
                        "RegisterChanged at {at} before now {}",
                        self.now
                    );
                    self.reg_changes.push((offset, at));
                }
            }
        }
    }

    fn step(&mut self) -> bool {
        let Some(((t, _), ev)) = self.events.pop_first() else {
            return false;
        };
        assert!(t >= self.now, "time went backwards");
        self.now = t;
        match ev {
            Event::Request { token, req } => self.agent.request(t, token, &req),
            Event::ReadData {
                tag,
                pa,
                len,
                snooped,
            } => {
                let mut buf = vec![0u8; len as usize];
                self.mem.read(pa, &mut buf, snooped);
                self.agent
                    .memory_read_done(t, tag, &buf)
                    .expect("the agent knows its own read tag");
            }
            Event::Write(w) => {
                let bytes = &w.value.to_le_bytes()[..w.len as usize];
                if w.snooped {
                    self.mem.store_flushed(w.pa, bytes);
                } else {
                    // A non-snooped write lands in DRAM; a stale cached copy would hide it
                    // from the CPU, which is what the overlay keeps.
                    self.mem.dram.write(w.pa, bytes);
                }
            }
        }
        self.drain();
        true
    }

    /// Runs every event at or before `t`, then stands at `t`.
    pub fn run_until(&mut self, t: Tick) {
        assert!(t >= self.now, "run_until({t}) before now {}", self.now);
        while self
            .events
            .first_key_value()
            .is_some_and(|((et, _), _)| *et <= t)
        {
            self.step();
        }
        self.now = t;
    }

    /// Runs until nothing is left to do (with a progress watchdog).
    pub fn run(&mut self) {
        for _ in 0..1_000_000 {
            if !self.step() {
                return;
            }
        }
        panic!("no quiescence after 1e6 events: the agent keeps itself busy");
    }

    /// Presents `req` at `at`; returns its token.
    pub fn submit(&mut self, at: Tick, req: TranslationRequest) -> u64 {
        let token = self.next_token;
        self.next_token += 1;
        self.arrivals.insert(token, at);
        self.schedule(at, Event::Request { token, req });
        token
    }

    /// The completion of `token`, if it happened.
    pub fn done(&self, token: u64) -> Option<&Done> {
        self.dones.iter().find(|d| d.token == token)
    }

    /// Presents `req` at `at` and runs to quiescence; its completion.
    pub fn translate(&mut self, at: Tick, req: TranslationRequest) -> Done {
        let t = self.submit(at, req);
        self.run();
        self.done(t).cloned().expect("every request completes")
    }

    /// [`Pump::translate`] at the current tick.
    pub fn translate_now(&mut self, req: TranslationRequest) -> Done {
        self.translate(self.now, req)
    }

    /// Host software writes a register at `t`; the agent's answer.
    pub fn try_reg_write(&mut self, t: Tick, off: u64, value: u64) -> Result<(), AgentError> {
        self.run_until(t);
        let r = self.agent.register_write(t, off as u32, value);
        self.drain();
        r
    }

    /// Host software writes a register at `t` (panics if the agent refuses).
    pub fn reg_write(&mut self, t: Tick, off: u64, value: u64) {
        self.try_reg_write(t, off, value)
            .unwrap_or_else(|e| panic!("register write {off:#x} = {value:#x}: {e}"));
    }

    /// Host software reads a register at `t` (panics if the agent refuses).
    pub fn reg_read(&mut self, t: Tick, off: u64) -> u64 {
        self.run_until(t);
        let v = self
            .agent
            .register_read(t, off as u32)
            .unwrap_or_else(|e| panic!("register read {off:#x}: {e}"));
        self.drain();
        v
    }

    /// The agent's cache-less answer from the CPU's coherent view of memory.
    pub fn reference(&self, req: &TranslationRequest) -> Result<Translation, u32> {
        let mem = &self.mem;
        self.agent
            .reference_translate(req, &mut |pa, buf| mem.read_coherent(pa, buf))
    }

    /// The agent's cache-less answer from DRAM alone.
    pub fn reference_dram(&self, req: &TranslationRequest) -> Result<Translation, u32> {
        let mem = &self.mem;
        self.agent
            .reference_translate(req, &mut |pa, buf| mem.read_dram(pa, buf))
    }

    /// The tick of the agent's first write to `pa`, if one was issued.
    pub fn first_write_at(&self, pa: PhysAddr) -> Option<Tick> {
        self.agent_writes.iter().find(|w| w.pa == pa).map(|w| w.at)
    }

    /// The tick of the agent's latest write to `pa`, if one was issued.
    pub fn last_write_at(&self, pa: PhysAddr) -> Option<Tick> {
        self.agent_writes
            .iter()
            .rev()
            .find(|w| w.pa == pa)
            .map(|w| w.at)
    }

    /// Walk-read count so far.
    pub fn walk_reads(&self) -> u64 {
        self.agent.stats().walk_memory_reads
    }

    /// Hits and misses of a named cache (panics if the agent has no such cache).
    pub fn cache(&self, name: &str) -> CacheCounts {
        self.agent
            .stats()
            .caches
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, c)| *c)
            .unwrap_or_else(|| panic!("no cache named {name}"))
    }

    /// The agent's cache-less answer from the coherent view of `mem` (not the pump's own).
    pub fn reference_in(&self, mem: &Memory, req: &TranslationRequest) -> Result<Translation, u32> {
        self.agent
            .reference_translate(req, &mut |pa, buf| mem.read_coherent(pa, buf))
    }

    /// Checks that each of `reqs` was answered (in `done`) exactly as [`Pump::reference`]
    /// answers it now; returns how many of them `reaches_paging` says reach the paging
    /// structures. `ctx` describes the case in failure messages.
    pub fn check_against_reference(
        &self,
        reqs: &[(u64, Tick, TranslationRequest)],
        done: &BTreeMap<u64, Done>,
        show: fn(&Result<Translation, u32>) -> String,
        reaches_paging: impl Fn(&Memory, &TranslationRequest) -> bool,
        ctx: &str,
    ) -> u64 {
        let mut paging = 0u64;
        for (token, arrival, r) in reqs {
            let d = &done[token];
            let want = self.reference(r);
            assert_eq!(
                d.code(),
                want,
                "token {token}: {r:?} arriving {arrival}, done {}: agent {} vs reference {}; {}",
                d.at,
                show(&d.code()),
                show(&want),
                ctx
            );
            paging += u64::from(reaches_paging(&self.mem, r));
        }
        paging
    }

    /// Checks that every warm-up request of `warm` completed with the reference answer.
    pub fn check_warm_up(&self, warm: &[(u64, Tick, TranslationRequest)], ctx: &str) {
        for (token, _, r) in warm {
            let d = self.done(*token).expect("warm-up completes").code();
            assert_eq!(d, self.reference(r), "warm-up; {}", ctx);
        }
    }

    /// The counters after `n` requests on cold caches with unchanged tables and no
    /// invalidation, `paging` of which reach the paging structures: every request counted,
    /// no more walks and merges than requests, every request that reaches paging looked up
    /// in the IOTLB or merged, at least one walk if any did, at most `max_reads_per_walk`
    /// walk reads per walk, no invalidation. `ctx` describes the case in failure messages.
    pub fn check_static_counters(&self, n: u64, paging: u64, max_reads_per_walk: u64, ctx: &str) {
        let s = self.agent.stats();
        assert_eq!(s.translations, n, "{ctx}");
        assert!(
            s.walks + s.merged <= n,
            "walks {} + merged {} > {n} requests; {ctx}",
            s.walks,
            s.merged
        );
        assert!(s.iotlb.hits <= n, "{s:?}; {ctx}");
        // A request that reaches the paging structures either looks the IOTLB up itself (at
        // arrival or as its walk's set-up) or joins another's walk.
        assert!(
            s.iotlb.hits + s.iotlb.misses + s.merged >= paging,
            "IOTLB lookups {:?} + merged {} < {paging} requests that reach paging; {ctx}",
            s.iotlb,
            s.merged
        );
        assert!(
            paging == 0 || s.walks >= 1,
            "cold caches, yet no walk; {ctx}"
        );
        assert!(
            s.walk_memory_reads <= max_reads_per_walk * s.walks,
            "{} reads for {} walks; {ctx}",
            s.walk_memory_reads,
            s.walks
        );
        assert_eq!(s.invalidations, 0, "{ctx}");
    }

    /// Runs in steps of 20 ns until `found` gives a tick (the agent's completion write of
    /// an invalidation wait), and returns it; panics once past `limit`.
    pub fn run_until_found(
        &mut self,
        limit: Tick,
        found: impl Fn(&Self) -> Option<Tick>,
        ctx: &str,
    ) -> Tick {
        loop {
            if let Some(c) = found(self) {
                return c;
            }
            let next = self.now() + ns(20);
            self.run_until(next);
            assert!(self.now() < limit, "the wait never completes; {ctx}");
        }
    }

    /// Checks the answers to `reqs` (completions in `done`) around an invalidation whose
    /// wait completed at `done_at`, the tables having changed from `old` to `new` before it:
    /// a request arriving at or after `done_at` gets the answer of `new`; one arriving
    /// before gets that of `old`, `new` or one of the `mixes` (stale entries of one kind with
    /// fresh reads of the other, named `mix` in messages). Counts stale and changed answers
    /// in `tally`.
    #[allow(clippy::too_many_arguments)]
    pub fn check_invalidation_answers<'r>(
        &self,
        reqs: impl Iterator<Item = &'r (u64, Tick, TranslationRequest)>,
        done: &BTreeMap<u64, Done>,
        done_at: Tick,
        (old_mem, new_mem): (&Memory, &Memory),
        (mixes, mix): (&[Memory], &str),
        show: fn(&Result<Translation, u32>) -> String,
        tally: &mut Tally,
        ctx: &str,
    ) {
        for (token, arrival, r) in reqs {
            let got = done[token].code();
            let new = self.reference_in(new_mem, r);
            if *arrival >= done_at {
                tally.changed_after += u64::from(new != self.reference_in(old_mem, r));
                assert_eq!(
                    got,
                    new,
                    "token {token}: {r:?} arriving {arrival}, at or after the wait completed at \
                     {done_at}: agent {} vs new tables {}; {}",
                    show(&got),
                    show(&new),
                    ctx
                );
            } else {
                let old = self.reference_in(old_mem, r);
                let mut allowed = vec![old, new];
                allowed.extend(mixes.iter().map(|m| self.reference_in(m, r)));
                tally.stale += u64::from(got != new);
                assert!(
                    allowed.contains(&got),
                    "token {token}: {r:?} arriving {arrival} (wait completes {done_at}): agent {} \
                     is neither old {} nor new {} nor a {mix} mix; {}",
                    show(&got),
                    show(&old),
                    show(&new),
                    ctx
                );
            }
        }
    }

    /// Submits `n` requests at [`arrivals`] from `start`: each either another access to the
    /// page just asked for (30 %: a merge or a hit) or a fresh one from `fresh`; (token,
    /// arrival, request) of each.
    pub fn submit_random(
        &mut self,
        dice: &mut Dice,
        start: Tick,
        n: usize,
        max_gap_ps: u64,
        mut fresh: impl FnMut(&mut Dice) -> TranslationRequest,
    ) -> Vec<(u64, Tick, TranslationRequest)> {
        let ticks = arrivals(dice, start, n, max_gap_ps);
        let mut prev: Option<TranslationRequest> = None;
        ticks
            .into_iter()
            .map(|t| {
                let r = match prev {
                    // Another access to the page just asked for: a merge or a hit.
                    Some(p) if dice.chance(30) => TranslationRequest {
                        iova: Iova((p.iova.raw() & !0xfff) | (dice.below(64) * 64)),
                        access: if dice.chance(50) {
                            AccessKind::Read
                        } else {
                            AccessKind::Write
                        },
                        ..p
                    },
                    _ => fresh(dice),
                };
                prev = Some(r);
                (self.submit(t, r), t, r)
            })
            .collect()
    }

    /// Checks that every token of `reqs` completed exactly once, no earlier than arrival +
    /// `timing.lookup` except in the known merged-walk pattern (a request merged into a walk
    /// of the same page that ends before the merged request's own lookup does is answered at
    /// that walk's end, plus the fault latency for a fault), which is tolerated unless
    /// [`set_strict_lookup_timing`] is on. Returns the completions by token and how many
    /// were tolerated early. `context` describes the case in failure messages; `verbose`
    /// prints every request and its answer first.
    pub fn completions(
        &self,
        reqs: &[(u64, Tick, TranslationRequest)],
        timing: &LookupTiming,
        verbose: bool,
        context: &dyn Fn() -> String,
    ) -> (BTreeMap<u64, Done>, u64) {
        let show = timing.show;
        if verbose {
            for (token, arrival, r) in reqs {
                let d = self.done(*token);
                println!(
                    "  #{token} {arrival} {} {:#x} {:?} tr {} -> {:?} at {:?} (reference now {})",
                    r.requester,
                    r.iova.raw(),
                    r.access,
                    r.translated,
                    d.map(|d| show(&d.code())),
                    d.map(|d| d.at),
                    show(&self.reference(r))
                );
            }
        }
        let mut by_token = BTreeMap::new();
        for d in &self.dones {
            assert!(
                by_token.insert(d.token, d.clone()).is_none(),
                "token {} completed twice; {}",
                d.token,
                context()
            );
        }
        assert_eq!(
            by_token.len(),
            reqs.len(),
            "every request completes exactly once; {}",
            context()
        );
        let lookup = timing.lookup;
        let mut early = 0;
        for (token, arrival, r) in reqs {
            let d = by_token
                .get(token)
                .unwrap_or_else(|| panic!("token {token} never completed; {}", context()));
            assert_eq!(d.arrived, *arrival);
            assert!(d.at >= *arrival, "token {token} done before it arrived");
            if d.at >= *arrival + lookup {
                continue;
            }
            let fault = timing.fault;
            let walk_end = |d: &Done| {
                [
                    Some(d.at),
                    d.at.as_ps().checked_sub(fault.as_ps()).map(Tick::from_ps),
                ]
            };
            let merged_early = reqs.iter().any(|(t2, a2, r2)| {
                t2 != token
                    && a2 <= arrival
                    && (timing.same_walk)(r, r2)
                    && by_token.get(t2).is_some_and(|d2| {
                        let (e1, e2) = (walk_end(d), walk_end(d2));
                        e1.iter().flatten().any(|x| e2.contains(&Some(*x)))
                    })
            });
            assert!(
                merged_early && !strict_lookup_timing(),
                "token {token} {r:?} arrived {arrival}, done {} before its lookup ended ({}); \
                 {}",
                d.at,
                *arrival + lookup,
                context()
            );
            early += 1;
        }
        (by_token, early)
    }
}

// ---------------------------------------------------------------------------------------
// Seeded randomized testing
// ---------------------------------------------------------------------------------------

/// A source of random numbers with the helpers the randomized properties use.
pub struct Dice(Box<dyn FnMut() -> u64>);

impl std::fmt::Debug for Dice {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Dice")
    }
}

impl Dice {
    /// Dice drawing raw 64-bit numbers from `next` (a seeded generator's `next_u64`).
    pub fn from_fn(next: impl FnMut() -> u64 + 'static) -> Dice {
        Dice(Box::new(next))
    }

    /// Uniform-ish in `0..n` (0 for n = 0).
    pub fn below(&mut self, n: u64) -> u64 {
        if n == 0 {
            0
        } else {
            (self.0)() % n
        }
    }

    /// Uniform-ish in `lo..=hi`.
    pub fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.below(hi - lo + 1)
    }

    /// True with `percent` % probability.
    pub fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }

    /// Uniform-ish index into a slice of `len` (0 for an empty one).
    pub fn index(&mut self, len: usize) -> usize {
        self.below(len as u64) as usize
    }

    /// A raw 64-bit number.
    pub fn raw(&mut self) -> u64 {
        (self.0)()
    }
}

/// The seeds to run and whether to be verbose: all of `0..n` (`SNOOPSIM_SEEDS` overrides
/// `n`), or the one `SNOOPSIM_SEED` names (verbose, for shrinking a failure).
pub fn seeds(n: u64) -> (Vec<u64>, bool) {
    match std::env::var("SNOOPSIM_SEED") {
        Ok(s) => (vec![s.parse().expect("SNOOPSIM_SEED is a number")], true),
        Err(_) => {
            let n = std::env::var("SNOOPSIM_SEEDS")
                .map_or(n, |s| s.parse().expect("SNOOPSIM_SEEDS is a number"));
            ((0..n).collect(), false)
        }
    }
}

/// Runs `check(seed, verbose, tally)` for every seed of [`seeds`]`(n)`; the tally.
pub fn run_seeds(n: u64, mut check: impl FnMut(u64, bool, &mut Tally)) -> Tally {
    let (seeds, verbose) = seeds(n);
    let mut tally = Tally::default();
    for seed in seeds {
        check(seed, verbose, &mut tally);
    }
    tally
}

/// Random arrival ticks from `start`: bursts of same-tick or picosecond-apart requests
/// separated by gaps of up to `max_gap_ps`.
pub fn arrivals(d: &mut Dice, start: Tick, n: usize, max_gap_ps: u64) -> Vec<Tick> {
    let mut t = start;
    (0..n)
        .map(|_| {
            t += if d.chance(65) {
                ps(d.below(3000))
            } else {
                ps(d.below(max_gap_ps))
            };
            t
        })
        .collect()
}

thread_local! {
    /// Set by the strict-timing properties: no early completion is tolerated.
    static STRICT_LOOKUP_TIMING: Cell<bool> = const { Cell::new(false) };
}

/// Turns off (on = true) this thread's tolerance of the known merged-walk early completion
/// in [`Pump::completions`].
pub fn set_strict_lookup_timing(on: bool) {
    STRICT_LOOKUP_TIMING.with(|s| s.set(on));
}

/// Whether [`set_strict_lookup_timing`] is on for this thread.
pub fn strict_lookup_timing() -> bool {
    STRICT_LOOKUP_TIMING.with(|s| s.get())
}

/// What [`Pump::completions`] needs to know about the unit's timing and merging.
#[derive(Debug, Clone, Copy)]
pub struct LookupTiming {
    /// Arrival to the end of the first lookup: nothing may complete earlier.
    pub lookup: Span,
    /// The extra latency of a fault after its walk ends.
    pub fault: Span,
    /// Whether two requests are misses the unit merges into one walk.
    pub same_walk: fn(&TranslationRequest, &TranslationRequest) -> bool,
    /// How an answer is shown in verbose output.
    pub show: fn(&Result<Translation, u32>) -> String,
}

/// What the seeds exercised, summed (printed with `--nocapture`).
#[derive(Debug, Default)]
pub struct Tally {
    /// Requests checked.
    pub requests: u64,
    /// Of those, translated.
    pub ok: u64,
    /// Of those, faulted, by code.
    pub faults: BTreeMap<u32, u64>,
    /// Walks started.
    pub walks: u64,
    /// Misses merged into a walk.
    pub merged: u64,
    /// IOTLB hits.
    pub iotlb_hits: u64,
    /// IOTLB misses.
    pub iotlb_misses: u64,
    /// Hits in the paging-structure (VT-d) or page-directory (AMD-Vi) caches.
    pub walk_cache_hits: u64,
    /// Completions before arrival + lookup of the known merged-walk kind.
    pub early: u64,
    /// Requests before the invalidation completed answered from stale state (old ≠ new).
    pub stale: u64,
    /// Requests after the invalidation completed whose answer the update changed.
    pub changed_after: u64,
}

impl Tally {
    /// Adds one case: the answers it checked, the unit's counters `s` (walk-cache hits
    /// summed over the caches `walk_cache` accepts by name) and its early completions.
    pub fn add(
        &mut self,
        results: impl Iterator<Item = Result<Translation, u32>>,
        s: &AgentStats,
        walk_cache: impl Fn(&str) -> bool,
        early: u64,
    ) {
        for r in results {
            self.requests += 1;
            match r {
                Ok(_) => self.ok += 1,
                Err(c) => *self.faults.entry(c).or_default() += 1,
            }
        }
        self.walks += s.walks;
        self.merged += s.merged;
        self.iotlb_hits += s.iotlb.hits;
        self.iotlb_misses += s.iotlb.misses;
        self.walk_cache_hits += s
            .caches
            .iter()
            .filter(|(n, _)| walk_cache(n))
            .map(|(_, c)| c.hits)
            .sum::<u64>();
        self.early += early;
    }
}
