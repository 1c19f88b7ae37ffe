/*
 * The e1000 device model against a driver that gets things wrong: one test per register or
 * descriptor mistake the model checks. Each mistake ends as a counter in the model (and, where the
 * hardware has one, a register the guest can read), the NIC of that guest only is affected, Dom0
 * carries on, and destroying the guest gives everything back.
 */
import test from 'ava';
import { randomUUID } from 'node:crypto';
import type { HostUsage } from '../hypervisor/host.ts';
import { NetHost } from '../scenarios/net/harness.ts';
import type { NetMessage } from '../scenarios/net/protocol.ts';
import type { E1000HostileCase } from './kernels/e1000-hostile.ts';

const HOSTILE = new URL('./kernels/e1000-hostile.ts', import.meta.url).href;
let h: NetHost;
let before: HostUsage;

test.before(async () => {
  h = await NetHost.boot();
  before = h.usage();
});

test.after.always(async () => {
  await h?.close();
});

/** Run one case in a fresh guest with its own e1000; returns its report and the model's counters. */
async function run(c: E1000HostileCase, frames = 0): Promise<{ report: Record<string, number>; stats: Record<string, number> }> {
  const nonce = randomUUID();
  const module = { channel: h.netCh.name, nonce, case: c };
  const domid = (await h.call({
    kind: 'create', config: { name: `e1000-${c}-${nonce.slice(0, 6)}`, vcpus: 1, memoryKiB: 32 * 1024, kernel: HOSTILE, module, paused: true },
  })) as number;
  await h.e1000Call({ kind: 'e1000-start', domid, vcpus: 1, mac: '00:16:3e:00:ee:02', buffered: false });
  h.host.unpause(domid);
  if (frames > 0) {
    await h.next((m) => m.kind === 'note' && m.nonce === nonce && m.name === 'ready', `${c} ready`);
    await h.e1000Call({ kind: 'e1000-inject', bridge: 'xenbr0', frames });
    h.netCh.postMessage({ kind: 'go', nonce, name: 'go' } satisfies NetMessage);
  }
  const report = (await h.next<Extract<NetMessage, { kind: 'hostile-report' }>>((m) => m.kind === 'hostile-report' && m.nonce === nonce, c)).report as Record<string, number>;
  await h.destroy(domid);
  const stats = (await h.e1000Call({ kind: 'e1000-stop', domid })).stats!;
  return { report, stats };
}

test.serial('TDLEN 0: a TDT write sends nothing, TDH stays, tx_ring_errors counts it', async (t) => {
  const { report, stats } = await run('tx-len-zero');
  t.is(stats.tx_ring_errors, 1);
  t.is(stats.tx_frames, 0);
  t.is(report.tdh, 0);
});

test.serial('TDT beyond the ring: nothing sent, tx_ring_errors', async (t) => {
  const { report, stats } = await run('tx-tdt-beyond');
  t.is(stats.tx_ring_errors, 1);
  t.is(stats.tx_descs, 0);
  t.is(report.tdh, 0);
});

test.serial('a tx ring whose base is not guest RAM: no descriptor read, TDH stays, tx_ring_errors', async (t) => {
  const { report, stats } = await run('tx-ring-nomem');
  t.is(stats.tx_ring_errors, 1);
  t.is(stats.tx_descs, 0);
  t.is(report.tdh, 0);
});

test.serial('a tx buffer that is not guest RAM: that frame is dropped (tx_dma_errors), the ring moves on', async (t) => {
  const { report, stats } = await run('tx-buf-nomem');
  t.is(stats.tx_dma_errors, 1);
  t.is(stats.tx_dropped, 1);
  t.is(stats.tx_frames, 0);
  t.is(report.tdh, 1, 'the descriptor was consumed');
  t.is(report.ddWrittenBack, 1, 'and written back, as the hardware would');
});

test.serial('an rx ring whose base is not guest RAM: arriving frames are dropped (rx_ring_errors), nothing written', async (t) => {
  const { report, stats } = await run('rx-ring-nomem', 3);
  t.is(stats.rx_ring_errors, 3);
  t.is(stats.rx_frames, 0);
  t.is(report.rdh, 0);
});

test.serial('rx buffers that are not guest RAM: the descriptor comes back with DD and the RX data error, rx_dma_errors', async (t) => {
  const { report, stats } = await run('rx-buf-nomem', 1);
  t.is(stats.rx_dma_errors, 1);
  t.is(report.dd, 1);
  t.is(report.errors, 0x80);
  t.is(report.rdh, 1);
});

test.serial('no free rx descriptor: frames wait, and those beyond the backlog are missed (MPC, RXO)', async (t) => {
  const { report, stats } = await run('rx-no-buffers', 300);
  t.is(stats.rx_backlog_drops, 300 - 256);
  t.is(report.mpc, 300 - 256, 'the guest reads the missed-packet count');
  t.is(stats.rx_frames, 0);
});

test.serial('accesses that are not aligned 32-bit ones are ignored and counted (bad_access)', async (t) => {
  const { report, stats } = await run('bad-access');
  t.is(stats.bad_access, 2);
  t.is(report.short, 0);
  t.is(report.rdt, 0, 'the misaligned write changed nothing');
});

test.serial('after every broken guest is destroyed, the host holds exactly what it held before', (t) => {
  t.deepEqual(h.usage(), before);
});
