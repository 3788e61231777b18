//! What a CPU program's `wbinvd` does: on bare metal the instruction; in a KVM guest what
//! `kvm_emulate_wbinvd_noskip` (arch/x86/kvm/x86.c; SPEC-NOTES §5) makes of the exit.
//!
//! - No non-coherent DMA registered (`kvm_arch_has_noncoherent_dma` false): the exit is
//!   skipped — the guest pays the exit and re-entry and its caches keep every line.
//! - Non-coherent DMA registered, with WBINVD exiting: the current pCPU joins the vCPU's
//!   `wbinvd_dirty_mask` (every pCPU it ran on since its last WBINVD, which
//!   `kvm_arch_vcpu_load` adds to on migration; the scenario's `ran_on` seeds it) and
//!   WBINVD runs on each of them, remote ones by IPI; the vCPU resumes when the last is
//!   done (`on_each_cpu_mask(..., wait = 1)`), and the mask is cleared. vCPUs do not
//!   migrate during a run.

use super::cpu_iommu::HostWork;
use super::System;
use model_core::Tick;
use std::collections::BTreeSet;

impl System {
    /// A CPU program's `wbinvd`; returns when the core may take its next step (the
    /// emulation's WBINVDs, if any, run as driver work first).
    pub(super) fn guest_wbinvd(&mut self, now: Tick, cpu: u16) -> Result<Tick, cache::CacheError> {
        let c = &self.cpus[usize::from(cpu)];
        let core = c.core;
        let Some(kvm) = self.software.kvm() else {
            return self.mem.wbinvd(now, core);
        };
        let exit = kvm.exit_ns.span();
        if !self.software.wbinvd_emulated() {
            let c = &mut self.cpus[usize::from(cpu)];
            c.stats.wbinvd_ignored += 1;
            return Ok(now + exit);
        }
        let start = now + exit;
        let remote_start = start + kvm.ipi_ns.span();
        let seed: BTreeSet<u16> = kvm
            .ran_on
            .get(&c.name)
            .map(|v| v.iter().map(|p| p.0 as u16).collect())
            .unwrap_or_default();
        // The mask is cleared after the flush (`cpumask_clear`); the vCPU keeps running
        // here, so its next WBINVD finds only this pCPU (it is added again at the exit).
        let mut mask = self
            .unmap
            .cpu(cpu)
            .wbinvd_dirty
            .replace(BTreeSet::new())
            .unwrap_or(seed);
        mask.remove(&core.0);
        let ipis = mask.len() as u64;
        let work = HostWork::wbinvds(
            std::iter::once((start, core))
                .chain(mask.into_iter().map(|p| (remote_start, cache::CoreId(p)))),
        );
        let c = &mut self.cpus[usize::from(cpu)];
        c.stats.wbinvd_emulated += 1;
        c.stats.ipis += ipis;
        c.host = Some(work);
        c.wait_since = now;
        Ok(now)
    }
}
