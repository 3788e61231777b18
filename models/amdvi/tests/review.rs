//! Regressions for defects an independent review found in the AMD-Vi unit. Each fails on
//! the code before its fix.

mod common;

use amdvi::cmd::Command;
use amdvi::dte::DteFields;
use amdvi::regs::{control, offset, status};
use amdvi::AmdviConfig;
use common::*;

const A: u64 = 0x4000_0000;
const PA: u64 = 0x7_0000_0000;

/// Two devices in one domain, one without write permission in its DTE: the IOTLB entry
/// the first device's write filled (tagged by DomainID only) must not lend the second its
/// write permission (VirtualBox keeps DTE permissions in the DTE cache, not the IOTLB).
#[test]
fn dte_rights_are_the_requesters_not_the_cached_entrys() {
    let reader = dev(3, 1, 0);
    let mut t = Tables::new(4);
    t.attach(dev0(), DOMAIN);
    let f = DteFields {
        iw: false,
        ..t.fields(DOMAIN)
    };
    t.set_dte(reader, f);
    t.map(A, PA, 4096, RW);
    let mut sys = booted(AmdviConfig::default(), &mut t);
    assert_eq!(sys.translate(at_ns(1000), wr(dev0(), A)).code(), ok(PA));
    // Same page, same domain, now from the device whose DTE denies writes.
    assert_eq!(
        sys.translate(at_ns(2000), wr(reader, A)).code(),
        Err(IO_PAGE_FAULT)
    );
    assert_eq!(sys.translate(at_ns(3000), rd(reader, A)).code(), ok(PA));
}

/// An illegal command stops the command processor; Linux restarts it by clearing and
/// setting CmdBufEn with head and tail reset (amd_iommu_reset_cmd_buffer), after which a
/// COMPLETION_WAIT completes again.
#[test]
fn the_command_processor_restarts_after_an_illegal_command() {
    let mut t = Tables::new(4);
    t.attach(dev0(), DOMAIN);
    let mut sys = booted(AmdviConfig::default(), &mut t);
    sys.cmd_submit_raw(at_ns(1000), &[[0, 0]]);
    sys.run_until(at_ns(5000));
    let st = sys.reg_read(at_ns(5000), offset::STATUS);
    assert_eq!(st & status::CMD_RUN, 0, "stopped");
    // Linux's reset: CmdBufEn off, head = tail = 0, CmdBufEn on.
    let ctrl = sys.reg_read(at_ns(5000), offset::CONTROL);
    sys.reg_write(at_ns(5000), offset::CONTROL, ctrl & !control::CMD_BUF_EN);
    sys.reg_write(at_ns(5000), offset::CMD_HEAD, 0);
    sys.reg_write(at_ns(5000), offset::CMD_TAIL, 0);
    sys.reset_cmd_tail();
    sys.reg_write(at_ns(5000), offset::CONTROL, ctrl);
    let wait = sys.completion_wait(7);
    sys.cmd_submit(at_ns(6000), &[wait]);
    sys.run_until(at_ns(10_000));
    assert_eq!(sys.sem(), 7, "the wait's store landed");
    let st = sys.reg_read(at_ns(10_000), offset::STATUS);
    assert_ne!(st & status::CMD_RUN, 0);
    let _ = Command::InvalidateIommuAll;
}
