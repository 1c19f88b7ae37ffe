/*
 * Test DomU: a broken (or hostile) e1000 driver. It programs NIC 0's registers and rings itself,
 * with the mistakes a driver can make, then reports what the device's registers say. Cases:
 *
 *   tx-len-zero     TDLEN 0, then TDT 1 (the ring cannot be walked: nothing sent, TDH stays)
 *   tx-tdt-beyond   an 8-descriptor ring, TDT 100
 *   tx-ring-nomem   the tx ring's base where the guest has no RAM
 *   tx-buf-nomem    a good ring, one descriptor whose buffer is not guest RAM (frame dropped, TDH moves on)
 *   rx-ring-nomem   receive on, the rx ring's base not RAM; frames then arrive (rx_ring_errors)
 *   rx-buf-nomem    a good rx ring whose buffers are not RAM; a frame arrives (RX data error in the descriptor)
 *   rx-no-buffers   receive on, RDT = RDH: more frames arrive than the NIC can hold (MPC counts the missed)
 *   bad-access      a 2-byte read and a misaligned 4-byte write to BAR0 (ignored)
 *
 * Cases whose frames come from outside say 'ready' (a note) and wait for the harness's 'go'.
 */
import { BroadcastChannel } from 'node:worker_threads';
import { Kernel } from '../../shared/kernel/kernel.ts';
import type { KernelEnv } from '../../shared/public/hypercall.ts';
import {
  E1000_CTRL, E1000_CTRL_RST, E1000_DESC_SIZE, E1000_MPC, E1000_RCTL, E1000_RCTL_BAM, E1000_RCTL_EN, E1000_RCTL_SECRC,
  E1000_RDBAH, E1000_RDBAL, E1000_RDH, E1000_RDLEN, E1000_RDT, E1000_RXD_STAT_DD, E1000_STATUS, E1000_TCTL, E1000_TCTL_EN,
  E1000_TDBAH, E1000_TDBAL, E1000_TDH, E1000_TDLEN, E1000_TDT, E1000_TXD_CMD_EOP, E1000_TXD_CMD_RS, RXD_STATUS, TXD_CMD,
  TXD_LENGTH, e1000MmioBase,
} from '../../shared/public/hw/e1000.ts';
import { PAGE_SIZE } from '../../shared/public/xen.ts';
import { dataViewOf } from '../../shared/view.ts';

export type E1000HostileCase = 'tx-len-zero' | 'tx-tdt-beyond' | 'tx-ring-nomem' | 'tx-buf-nomem' | 'rx-ring-nomem'
  | 'rx-buf-nomem' | 'rx-no-buffers' | 'bad-access';

/** An address well above the guest's RAM and its physmap holes, below the e1000 BARs. */
const NO_RAM = 0xe0000000;

export async function main(env: KernelEnv): Promise<void> {
  const k = new Kernel(env);
  void k.events.run();
  const m = env.module as { channel: string; nonce: string; case: E1000HostileCase };
  const ch = new BroadcastChannel(m.channel);
  let go: () => void = () => undefined;
  const went = new Promise<void>((r) => { go = r; });
  ch.onmessage = (ev) => {
    const msg = (ev as { data: { kind: string; nonce: string; name: string } }).data;
    if (msg.kind === 'go' && msg.nonce === m.nonce) go();
  };
  const base = e1000MmioBase(0);
  const w = (off: number, v: number) => k.cpu.mmio_write(base + off, 4, v >>> 0);
  const r = (off: number) => k.cpu.mmio_read(base + off, 4) >>> 0;
  const report: Record<string, number> = {};
  const ring = k.pages.alloc();
  const buf = k.pages.alloc();
  const ringBytes = k.memory.page(ring, true);
  const dv = dataViewOf(ringBytes, 0, PAGE_SIZE);
  const waitForFrames = async () => {
    ch.postMessage({ kind: 'note', nonce: m.nonce, name: 'ready' });
    await went;
  };
  w(E1000_CTRL, E1000_CTRL_RST);
  switch (m.case) {
    case 'tx-len-zero':
      w(E1000_TCTL, E1000_TCTL_EN);
      w(E1000_TDLEN, 0);
      w(E1000_TDT, 1);
      break;
    case 'tx-tdt-beyond':
      w(E1000_TDBAL, ring * PAGE_SIZE);
      w(E1000_TDLEN, 8 * E1000_DESC_SIZE);
      w(E1000_TCTL, E1000_TCTL_EN);
      w(E1000_TDT, 100);
      break;
    case 'tx-ring-nomem':
      w(E1000_TDBAL, NO_RAM);
      w(E1000_TDLEN, 8 * E1000_DESC_SIZE);
      w(E1000_TCTL, E1000_TCTL_EN);
      w(E1000_TDT, 1);
      break;
    case 'tx-buf-nomem':
      dv.setUint32(0, NO_RAM, true);
      dv.setUint16(TXD_LENGTH, 60, true);
      ringBytes[TXD_CMD] = E1000_TXD_CMD_EOP | E1000_TXD_CMD_RS;
      w(E1000_TDBAL, ring * PAGE_SIZE);
      w(E1000_TDBAH, 0);
      w(E1000_TDLEN, 8 * E1000_DESC_SIZE);
      w(E1000_TCTL, E1000_TCTL_EN);
      w(E1000_TDT, 1);
      report.ddWrittenBack = ringBytes[12] & 1;
      break;
    case 'rx-ring-nomem':
      w(E1000_RDBAL, NO_RAM);
      w(E1000_RDLEN, 8 * E1000_DESC_SIZE);
      w(E1000_RDT, 7);
      w(E1000_RCTL, E1000_RCTL_EN | E1000_RCTL_BAM | E1000_RCTL_SECRC);
      await waitForFrames();
      break;
    case 'rx-buf-nomem':
      for (let i = 0; i < 8; i++) dv.setUint32(i * E1000_DESC_SIZE, NO_RAM + i * 2048, true);
      w(E1000_RDBAL, ring * PAGE_SIZE);
      w(E1000_RDLEN, 8 * E1000_DESC_SIZE);
      w(E1000_RDT, 7);
      w(E1000_RCTL, E1000_RCTL_EN | E1000_RCTL_BAM | E1000_RCTL_SECRC);
      await waitForFrames();
      report.dd = ringBytes[RXD_STATUS] & E1000_RXD_STAT_DD;
      report.errors = ringBytes[RXD_STATUS + 1];
      break;
    case 'rx-no-buffers':
      w(E1000_RDBAL, ring * PAGE_SIZE);
      w(E1000_RDLEN, 8 * E1000_DESC_SIZE);
      w(E1000_RDT, 0);
      w(E1000_RCTL, E1000_RCTL_EN | E1000_RCTL_BAM | E1000_RCTL_SECRC);
      await waitForFrames();
      report.mpc = r(E1000_MPC);
      break;
    case 'bad-access':
      report.short = k.cpu.mmio_read(base + E1000_STATUS, 2);
      k.cpu.mmio_write(base + E1000_RDT + 1, 4, 5);
      report.rdt = r(E1000_RDT);
      break;
  }
  report.tdh = r(E1000_TDH);
  report.rdh = r(E1000_RDH);
  report.status = r(E1000_STATUS);
  void buf;
  void E1000_RDBAH;
  ch.postMessage({ kind: 'hostile-report', nonce: m.nonce, report });
  // Idle until destroyed: the test checks what destroying it leaves behind.
}
