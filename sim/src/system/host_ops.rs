//! The CPU programs' host-software operations besides map, unmap and invalidate:
//! `enforce`, `attach`, `detach` and `pte_update`. The domain API (`api_ops.rs`) decides,
//! the vendor's driver says what to store and invalidate, and the CPU performs it as driver
//! work (`cpu_iommu.rs`): the table stores through its caches, CLFLUSHed (then fenced) when
//! the driver flushes table writes, then each invalidation and its wait.
//!
//! `enforce`, `attach` and `detach` hold the driver's invalidation queue lock from their
//! start to their last wait (a CPU that finds it taken spins and retries the operation), so
//! the queue's descriptors stay in the order they were built. An `attach` of a device
//! attached elsewhere runs twice: first the detach, then, the device being detached, the
//! attach itself.

use super::api_ops::AttachStep;
use super::cpu_iommu::HostWork;
use super::driver::DriverWork;
use super::{Event, SimError, System};
use crate::engine::EventQueue;
use crate::scenario::CpuOp;
use model_core::{Bdf, Tick};

impl System {
    /// The requester ID of a device, by name.
    fn bdf_of(&self, device: &str) -> Result<Bdf, SimError> {
        let dev = self.device_index.get(device).ok_or(SimError::Invariant(
            "a host operation names a device the scenario lacks",
        ))?;
        Ok(self.devices[usize::from(*dev)].endpoint.config().bdf)
    }

    /// Starts CPU `cpu`'s `enforce`, `attach`, `detach` or `pte_update` (the op at its
    /// `next`).
    pub(super) fn cpu_host_op(
        &mut self,
        now: Tick,
        cpu: u16,
        op: &CpuOp,
        q: &mut EventQueue<Event>,
    ) -> Result<(), SimError> {
        let name = self.cpus[usize::from(cpu)].name.clone();
        let index = self.cpus[usize::from(cpu)].next;
        let fail = |m: String| SimError::Iommu(format!("cpu \"{name}\", operation {index}: {m}"));
        let locks = !matches!(op, CpuOp::PteUpdate(_));
        if locks && !self.take_invalidation_lock(now, cpu) {
            return Ok(());
        }
        let bdf = match op {
            CpuOp::Attach(a) => Some(self.bdf_of(&a.device)?),
            CpuOp::Detach(d) => Some(self.bdf_of(&d.device)?),
            _ => None,
        };
        let who = format!("{name} at {:.3} µs", now.as_ns_f64() / 1000.0);
        let host = self.driver.as_mut().ok_or_else(|| {
            fail("an IOMMU operation needs platform.iommu.vtd or .amdvi".to_owned())
        })?;
        let api = &mut self.software;
        let mut flush = host.flush();
        let mut done = true;
        let work = match (op, bdf) {
            (CpuOp::Enforce(e), _) => api.enforce(host, &e.domain, &who).map_err(fail)?,
            (CpuOp::Attach(a), Some(bdf)) => {
                match api
                    .attach(host, &a.device, bdf, &a.domain, &who)
                    .map_err(fail)?
                {
                    AttachStep::Detached(work) => {
                        done = false;
                        work
                    }
                    AttachStep::Done(work) => work,
                }
            }
            (CpuOp::Detach(d), Some(bdf)) => api.detach(host, &d.device, bdf).map_err(fail)?,
            (CpuOp::PteUpdate(p), _) => {
                flush = p.flush.unwrap_or(flush);
                let writes = host.pte_update(p).map_err(|(_, m)| fail(m))?;
                DriverWork {
                    writes,
                    invalidations: Vec::new(),
                }
            }
            _ => return Err(fail("not a host operation".to_owned())),
        };
        let c = &mut self.cpus[usize::from(cpu)];
        if done {
            c.next += 1;
        }
        c.host = Some(HostWork::table_writes(
            work.writes,
            flush,
            work.invalidations,
        ));
        c.wait_since = now;
        self.host_step(now, cpu, q)
    }
}
