/*
 * The xenstore suite: the round-trip time of a XenStore request from a DomU through xenstored,
 * which every device handshake pays several times over (a blkfront connect is some twenty
 * requests).
 *
 * One DomU (scenarios/xenstore/bench-guest.ts) issues XS_READs, then XS_WRITEs, of one small
 * node, one at a time, each timed from the client's send to its reply; the row reports the
 * median, the request rate, and the hypervisor counters per request of both ends (notifications
 * and wake-ups are the mechanism's cost: each request is one notification each way and usually
 * one wake-up of each vCPU, since xenstored's side does not poll).
 *
 * A third row repeats the writes with 10,000 watches registered elsewhere in the store (by a Dom0
 * tool on the socket, which Xen does not limit): C xenstored scans every watch on every write;
 * ringvisor's watch index (dom0/services/xenstored/watch.ts) should keep this row within 1.5x of
 * the plain write row of the same run.
 *
 * The rows say `irq` under either policy: xenstored and its clients register no idle-loop poller, so they always wait
 * for the event (shared/wait.ts), and the suite runs once.
 */
import { bootDom0 } from '../xenstore/harness.ts';
import type { XsBenchMessage, XsBenchModule, XsBenchOp } from '../xenstore/bench-guest.ts';
import { randomUUID } from 'node:crypto';
import { BroadcastChannel } from 'node:worker_threads';
import { median, type BenchRow, type SuiteOptions } from './types.ts';

const GUEST = new URL('../xenstore/bench-guest.ts', import.meta.url).href;
/** Watches registered away from the written node for the third row. */
const WATCHES_ELSEWHERE = 10_000;

export async function benchXenstore(opts: SuiteOptions): Promise<BenchRow[]> {
  const requests = opts.quick ? 500 : 2000;
  const warmup = opts.quick ? 100 : 500;
  const h = await bootDom0();
  const channel = `ringvisor-xsbench-${randomUUID()}`;
  const ch = new BroadcastChannel(channel);
  const inbox: XsBenchMessage[] = [];
  let wake: (() => void) | null = null;
  ch.onmessage = (ev) => {
    inbox.push((ev as { data: XsBenchMessage }).data);
    wake?.();
  };
  const next = async <K extends XsBenchMessage['kind']>(kind: K): Promise<Extract<XsBenchMessage, { kind: K }>> => {
    for (;;) {
      const i = inbox.findIndex((m) => m.kind === kind);
      if (i >= 0) return inbox.splice(i, 1)[0] as Extract<XsBenchMessage, { kind: K }>;
      await new Promise<void>((r) => { wake = r; });
    }
  };
  const rows: BenchRow[] = [];
  try {
    const cases: { op: XsBenchOp; watches: number }[] = [
      { op: 'read', watches: 0 }, { op: 'write', watches: 0 }, { op: 'write', watches: WATCHES_ELSEWHERE },
    ];
    for (const { op, watches } of cases) {
      if (watches > 0) {
        opts.progress?.(`xenstore: registering ${watches} watches elsewhere`);
        for (let i = 0; i < watches; i += 500) {
          const batch: Promise<unknown>[] = [];
          for (let j = i; j < Math.min(i + 500, watches); j++) batch.push(h.xs.watch(`/bench-elsewhere/${j}`, () => undefined, `bench${j}`));
          await Promise.all(batch);
        }
      }
      opts.progress?.(`xenstore ${op}: ${requests} requests after ${warmup} warm-up${watches ? `, ${watches} watches elsewhere` : ''}`);
      const module: XsBenchModule = { channel, op, warmup, requests };
      const name = `xsbench-${op}${watches ? '-watched' : ''}`;
      const domid = await h.createGuest({ name, vcpus: 1, memoryKiB: 2048, kernel: GUEST, module });
      await next('warmed');
      const before = { guest: h.host.counters(domid), dom0: h.host.counters(0) };
      ch.postMessage({ kind: 'go', op } satisfies XsBenchMessage);
      const r = await next('result');
      const after = { guest: h.host.counters(domid), dom0: h.host.counters(0) };
      const per = (side: 'guest' | 'dom0', name: string) => (after[side][name] - before[side][name]) / requests;
      const counters: Record<string, number> = {};
      for (const name of ['hypercalls', 'notifications', 'wakeups', 'blocks']) {
        counters[`domU_${name}`] = per('guest', name);
        counters[`dom0_${name}`] = per('dom0', name);
      }
      rows.push({
        suite: 'xenstore',
        path: 'xenstored',
        wait: 'irq',
        workload: `XS_${op.toUpperCase()} round trip${watches ? `, ${watches.toLocaleString('en')} watches elsewhere` : ''}`,
        blockSize: 0,
        queueDepth: 1,
        reqPerSec: requests / (r.totalMs / 1000),
        MBps: 0,
        counters,
        medianUs: median(r.us),
      });
      await h.destroyGuest(domid);
    }
  } finally {
    ch.close();
    await h.close();
  }
  return rows;
}
