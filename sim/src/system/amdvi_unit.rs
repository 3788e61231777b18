//! The driver's state of one AMD IOMMU (Linux `struct amd_iommu`, one per IVHD / PCI
//! function): its capabilities, its device table, command buffer, event log and
//! completion-wait store, and how commands are submitted to it (Linux
//! `iommu_queue_command` + `iommu_completion_wait`).
//!
//! Domains and their I/O page tables are not here: a protection domain's page table is
//! shared by every IOMMU its devices sit behind (Linux `struct protection_domain`,
//! `dev_iommu[]`), so they live in [`super::amdvi_host`].

use super::driver::Invalidation;
use super::unit_set::HostUnit;
use amdvi::cmd::Command;
use amdvi::dte::DeviceTableEntry;
use amdvi::regs::{control, offset, Capabilities, RingBase};
use amdvi::tables::{DeviceTable, TableAllocator, TableError};
use model_core::{MemWrite, PhysAddr};

/// Every DeviceID has a DTE: Linux sizes the device table for the largest BDF of the
/// segment (`amd_iommu_last_bdf`, 0xffff).
const MAX_DEVICE_ID: u16 = 0xffff;
/// Bytes of a command and of an event (§2.4, §2.5).
const ENTRY_BYTES: u64 = 16;

/// One IOMMU as its driver sees it.
#[derive(Debug, Clone)]
pub(super) struct AmdIommu {
    /// Its name in the scenario ("iommu0").
    pub name: String,
    /// Its capabilities.
    pub caps: Capabilities,
    dev_table: DeviceTable,
    cmd_base: PhysAddr,
    cmd_tail: u64,
    evt_base: PhysAddr,
    status: PhysAddr,
    seq: u64,
}

impl AmdIommu {
    /// Allocates the IOMMU's device table, command buffer, event log and completion-wait
    /// store, in that order (Linux `alloc_dev_table`, `alloc_command_buffer`,
    /// `alloc_event_buffer`).
    pub fn new(
        name: &str,
        caps: &Capabilities,
        alloc: &mut TableAllocator,
    ) -> Result<AmdIommu, TableError> {
        let dev_table = DeviceTable::new(alloc, MAX_DEVICE_ID)?;
        let cmd_base = alloc.alloc_bytes(u64::from(caps.command_entries) * ENTRY_BYTES)?;
        let evt_base = alloc.alloc_bytes(u64::from(caps.event_log_entries) * ENTRY_BYTES)?;
        let status = alloc.alloc()?;
        Ok(AmdIommu {
            name: name.to_owned(),
            caps: caps.clone(),
            dev_table,
            cmd_base,
            cmd_tail: 0,
            evt_base,
            status,
            seq: 0,
        })
    }

    /// Writes `device_id`'s entry of this IOMMU's device table.
    pub fn set_dte(
        &mut self,
        device_id: u16,
        e: DeviceTableEntry,
        out: &mut Vec<MemWrite>,
    ) -> Result<(), TableError> {
        self.dev_table.set(device_id, e, out).map(|_| ())
    }

    /// Commands plus a COMPLETION_WAIT that stores a fresh sequence number, and the tail
    /// to write (Linux `iommu_completion_wait`).
    pub fn submit(&mut self, mut cmds: Vec<Command>) -> Result<Invalidation, String> {
        let entries = self.caps.command_entries;
        // One submission and its COMPLETION_WAIT must fit the ring with a slot to spare
        // (head == tail means empty); the driver waits for each to complete.
        if cmds.len() as u64 + 1 >= u64::from(entries) {
            return Err(format!(
                "{} commands and a COMPLETION_WAIT do not fit the {entries}-entry command buffer",
                cmds.len(),
            ));
        }
        self.seq = self.seq.wrapping_add(1);
        cmds.push(Command::CompletionWait {
            store: Some((self.status, self.seq)),
            interrupt: false,
            flush_queue: false,
        });
        let ring = u64::from(entries) * ENTRY_BYTES;
        let mut writes = Vec::new();
        for c in cmds {
            let [a, b] = c.encode();
            let mut bytes = a.to_le_bytes().to_vec();
            bytes.extend_from_slice(&b.to_le_bytes());
            writes.push(MemWrite {
                pa: PhysAddr(self.cmd_base.raw() + self.cmd_tail),
                bytes,
            });
            self.cmd_tail = (self.cmd_tail + ENTRY_BYTES) % ring;
        }
        Ok(Invalidation::Queued {
            writes,
            doorbell: (offset::CMD_TAIL as u32, self.cmd_tail),
            status: self.status,
            data: self.seq,
            width: 8,
        })
    }
}

impl HostUnit for AmdIommu {
    type Caps = Capabilities;

    fn name(&self) -> &str {
        &self.name
    }

    fn caps(&self) -> &Capabilities {
        &self.caps
    }

    /// Boot register writes (Linux `iommu_init_flags`, `iommu_enable_command_buffer`,
    /// `iommu_enable_event_buffer`, `iommu_enable`).
    fn boot_registers(&self) -> Vec<(u32, u64)> {
        let ring = |base, entries| RingBase::new(base, entries).map_or(0, |r| r.0);
        let mut ctrl = control::IOMMU_EN | control::EVT_LOG_EN | control::CMD_BUF_EN;
        if self.caps.coherent {
            ctrl |= control::COHERENT;
        }
        vec![
            (offset::DEV_TABLE_BASE as u32, self.dev_table.register().0),
            (
                offset::CMD_BUF_BASE as u32,
                ring(self.cmd_base, self.caps.command_entries),
            ),
            (
                offset::EVT_LOG_BASE as u32,
                ring(self.evt_base, self.caps.event_log_entries),
            ),
            (offset::CONTROL as u32, ctrl),
        ]
    }
}
