// A hostile blkfront for test/blkback-hostile.test.ts: the attacks of issue 17, each a `mode`.
//
//   refused-indirect  thousands of indirect requests whose indirect page holds a bad entry (item 1)
//   fresh-grants      valid reads on every queue, each page granted afresh (item 2: persistent
//                     grants at Linux's per-ring default, on four queues)
//   full-rings        every queue kept full of 1 MiB indirect reads until told to stop (item 4)
//   bad-evtchn        xenbus handshakes naming good ring pages and a port that cannot be bound (item 3, 6)
//   ids               reads whose ids need all 64 bits (item 7)
//
// Each mode talks the block harness's protocol (scenarios/block/protocol.ts): 'connected', then
// for task i its two 'mark's, each answered by the harness's 'go', and a 'task-done' whose result is a list of
// outcomes (JSON in the `error` field, as blk-raw.ts does), then 'closed'; main() returning
// powers the domain off.
import { BroadcastChannel } from 'node:worker_threads';
import { Blkfront } from '../../domu/blkfront/blkfront.ts';
import type { BlkfrontQueue } from '../../domu/blkfront/queue.ts';
import type { BlockGuestModule, BlockMessage } from '../../scenarios/block/protocol.ts';
import { checksum } from '../../shared/checksum.ts';
import { Kernel } from '../../shared/kernel/kernel.ts';
import { registerFrontend } from '../../shared/kernel/xenbus/frontend.ts';
import { xenbusInit } from '../../shared/kernel/xenbus/xs-ring.ts';
import type { XenbusClient } from '../../shared/kernel/xenbus/client.ts';
import type { KernelEnv } from '../../shared/public/hypercall.ts';
import {
  BLKIF_MAX_SEGMENTS_PER_REQUEST, BLKIF_OP_INDIRECT, BLKIF_OP_READ, BLKIF_RSP_OKAY, BLKIF_SEG_OFFSET, XS_BLK,
  blkif_request, blkif_request_indirect, blkif_response, set_indirect_gref, set_seg,
} from '../../shared/public/io/blkif.ts';
import { XenbusState } from '../../shared/public/io/xenbus.ts';
import { dataViewOf } from '../../shared/view.ts';

export type HostileBlkMode = 'refused-indirect' | 'fresh-grants' | 'full-rings' | 'bad-evtchn' | 'ids';

export interface HostileBlkModule extends BlockGuestModule {
  mode: HostileBlkMode;
  /** How many requests (or handshakes) to make; for full-rings, the most per queue. */
  count: number;
  /** full-rings: the harness posts { kind: 'stop' } here when the attack may end. */
  stopChannel?: string;
}

/** What each task reports (the JSON in its one outcome). */
export interface HostileReport {
  statuses: Record<string, number>;
  /** fresh-grants: checksum of each request's data, by queue then request. */
  sums?: number[][];
  /** fresh-grants: the first sector each request read, by queue then request. */
  sectors?: number[][];
  /** full-rings: requests answered, per queue; stopped: the stop came before the cap. */
  done?: number[];
  stopped?: boolean;
  /** ids: the ids the responses carried, as [lo, hi] pairs, for the ids sent. */
  ids?: { sent: [number, number]; got: [number, number] }[];
  /** bad-evtchn: handshakes the backend answered with an error. */
  refusals?: number;
}

const req = blkif_request.create();
const rsp = blkif_response.create();
const RQ_ID = blkif_request.fields.id[1];
const RSP_ID = blkif_response.fields.id[1];
const IQ = blkif_request_indirect.fields;

/**
 * Keep queue `q` as full as it will go until `n` requests have been answered (or `stop()`): `fill`
 * writes request i into `req` (cleared, id = i), `done` sees each response. Returns how many were
 * answered.
 */
async function pump(k: Kernel, q: BlkfrontQueue, n: number, fill: (i: number) => void, done: (i: number) => void, stop = () => false): Promise<number> {
  let sent = 0;
  let answered = 0;
  while (answered < sent || (sent < n && !stop())) {
    while (sent < n && !stop() && q.ring.freeRequests() > 0) {
      req.clear();
      fill(sent);
      req.dv.setUint32(RQ_ID, sent, true);
      q.ring.putRequest(req.words);
      sent++;
    }
    q.ring.pushRequests();
    k.events.notify(q.port);
    if (q.ring.unconsumedResponses() === 0) await new Promise(setImmediate);
    while (q.ring.unconsumedResponses() > 0) {
      q.ring.takeResponse(rsp.words);
      answered++;
      done(rsp.dv.getUint32(RSP_ID, true));
    }
  }
  return answered;
}

export async function main(env: KernelEnv): Promise<void> {
  const k = new Kernel(env);
  void k.events.run();
  const m = env.module as HostileBlkModule;
  const ch = new BroadcastChannel(m.channel);
  const post = (msg: BlockMessage) => ch.postMessage(msg);
  const goes = new Map<number, () => void>();
  ch.onmessage = (ev) => {
    const msg = (ev as { data: BlockMessage }).data;
    if (msg.kind === 'go' && msg.nonce === m.nonce) goes.get(msg.index)?.();
  };
  let task = 0;
  const step = async (work: () => Promise<HostileReport>) => {
    // The harness's two stops for a task (before its warm-up, before its timed part): this
    // kernel has no warm-up, so the second follows the first at once.
    for (const phase of ['warmup', 'timed'] as const) {
      await new Promise<void>((go) => { goes.set(task, go); post({ kind: 'mark', nonce: m.nonce, index: task, phase }); });
    }
    const report = await work();
    post({ kind: 'task-done', nonce: m.nonce, index: task++, result: { kind: 'ops', result: [{ ok: true, error: JSON.stringify(report) }] }, stats: {} });
  };
  const xs = xenbusInit(k);

  if (m.mode === 'bad-evtchn') {
    post({ kind: 'connected', nonce: m.nonce, device: { name: 'hostile', sectors: 0, readOnly: false, features: { flush: false, discard: false, maxInFlight: 0, maxRequestBytes: 0 }, negotiated: {} } });
    await step(() => badHandshakes(k, xs, m.count));
    await step(async () => ({ statuses: {} }));
  } else {
    const dev = await new Promise<Blkfront>((resolve) => {
      let front: Blkfront;
      void registerFrontend(xs, 'vbd', () => (front = new Blkfront(k, m.front)), {
        onProbe: (fe) => { front.shutdownHook = () => fe.shutdown(); resolve(front); },
      });
    });
    await dev.connected;
    post({ kind: 'connected', nonce: m.nonce, device: { name: dev.name, sectors: dev.sectors, readOnly: dev.readOnly, features: dev.features, negotiated: { ...dev.negotiated } } });
    // Take the queues away from the driver: from here on this kernel is the frontend.
    for (const q of dev.queues) {
      k.events.removePoller(q);
      k.events.unbind(q.port);
    }
    const backend = 0;
    const page = (writable: boolean) => {
      const gfn = k.pages.alloc();
      return { gfn, ref: k.gnttab.grant(backend, gfn, !writable), view: k.memory.page(gfn, true) };
    };
    const good = page(true);
    const goodRead = async () => {
      const statuses: Record<string, number> = {};
      await pump(k, dev.queues[0], 1, () => {
        req.operation = BLKIF_OP_READ;
        req.nr_segments = 1;
        set_seg(req.dv, BLKIF_SEG_OFFSET, 0, good.ref, 0, 7);
      }, () => count(statuses, rsp.status));
      return { statuses };
    };
    switch (m.mode) {
      case 'refused-indirect': {
        // One indirect page whose only entry has last_sect 9: the backend must map the page to
        // find that out, then refuse the request.
        const ind = page(false);
        const dv = dataViewOf(ind.view, 0, 4096);
        set_seg(dv, 0, 0, good.ref, 0, 9);
        await step(async () => {
          const statuses: Record<string, number> = {};
          await pump(k, dev.queues[0], m.count, () => {
            req.operation = BLKIF_OP_INDIRECT;
            req.dv.setUint8(IQ.indirect_op[1], BLKIF_OP_READ);
            req.dv.setUint16(IQ.nr_segments[1], 1, true);
            set_indirect_gref(req.dv, 0, ind.ref);
          }, () => count(statuses, rsp.status));
          return { statuses };
        });
        await step(goodRead);
        break;
      }
      case 'fresh-grants': {
        // Every queue reads `count` requests of 11 pages each, every page granted only for it.
        const perReq = BLKIF_MAX_SEGMENTS_PER_REQUEST;
        const span = perReq * 8;
        await step(async () => {
          const statuses: Record<string, number> = {};
          const nq = dev.queues.length;
          const sums: number[][] = [];
          const sectors: number[][] = [];
          await Promise.all(dev.queues.map((q, qi) => {
            const pages = Array.from({ length: m.count }, () => Array.from({ length: perReq }, () => page(true)));
            sums.push(new Array<number>(m.count).fill(0));
            sectors.push(Array.from({ length: m.count }, (_, i) => ((i * nq + qi) * span) % (dev.sectors - span)));
            return pump(k, q, m.count, (i) => {
              req.operation = BLKIF_OP_READ;
              req.nr_segments = perReq;
              req.sector_number = sectors[qi][i];
              for (let s = 0; s < perReq; s++) set_seg(req.dv, BLKIF_SEG_OFFSET, s, pages[i][s].ref, 0, 7);
            }, (i) => {
              count(statuses, rsp.status);
              const all = new Uint8Array(perReq * 4096);
              for (let s = 0; s < perReq; s++) all.set(pages[i][s].view, s * 4096);
              sums[qi][i] = checksum(all);
            });
          }));
          return { statuses, sums, sectors };
        });
        await step(goodRead);
        break;
      }
      case 'full-rings': {
        // 256 data pages and one indirect page naming them, shared by every request: each one
        // a 1 MiB read.
        const segs = 256;
        const data = Array.from({ length: segs }, () => page(true));
        const ind = page(true); // read-write, as a frontend offering feature-persistent grants it
        const dv = dataViewOf(ind.view, 0, 4096);
        for (let s = 0; s < segs; s++) set_seg(dv, 0, s, data[s].ref, 0, 7);
        let stopped = false;
        const stopCh = new BroadcastChannel(m.stopChannel!);
        stopCh.onmessage = () => { stopped = true; };
        await step(async () => {
          const statuses: Record<string, number> = {};
          const span = segs * 8;
          const done = await Promise.all(dev.queues.map((q) => pump(k, q, m.count, (i) => {
            req.operation = BLKIF_OP_INDIRECT;
            req.dv.setUint8(IQ.indirect_op[1], BLKIF_OP_READ);
            req.dv.setUint16(IQ.nr_segments[1], segs, true);
            req.sector_number = (i * span) % (dev.sectors - span);
            set_indirect_gref(req.dv, 0, ind.ref);
          }, () => count(statuses, rsp.status), () => stopped)));
          stopCh.close();
          return { statuses, done, stopped };
        });
        break;
      }
      case 'ids': {
        await step(async () => {
          const statuses: Record<string, number> = {};
          const ids: { sent: [number, number]; got: [number, number] }[] = [];
          for (const sent of [[0xffffffff, 0xffffffff], [1, 0x200000], [0, 0x80000000], [0x12345678, 0x9abcdef0]] as [number, number][]) {
            req.clear();
            req.operation = BLKIF_OP_READ;
            req.nr_segments = 1;
            set_seg(req.dv, BLKIF_SEG_OFFSET, 0, good.ref, 0, 7);
            req.dv.setUint32(RQ_ID, sent[0], true);
            req.dv.setUint32(RQ_ID + 4, sent[1], true);
            const q = dev.queues[0];
            q.ring.putRequest(req.words);
            q.ring.pushRequests();
            k.events.notify(q.port);
            while (q.ring.unconsumedResponses() === 0) await new Promise(setImmediate);
            q.ring.takeResponse(rsp.words);
            count(statuses, rsp.status);
            ids.push({ sent, got: [rsp.dv.getUint32(RSP_ID, true), rsp.dv.getUint32(RSP_ID + 4, true)] });
          }
          return { statuses, ids };
        });
        break;
      }
    }
  }
  post({ kind: 'closed', nonce: m.nonce, states: [] });
  ch.close();
}

function count(statuses: Record<string, number>, status: number): void {
  const key = status === BLKIF_RSP_OKAY ? 'okay' : String(status);
  statuses[key] = (statuses[key] ?? 0) + 1;
}

/**
 * `n` handshakes, each naming 16 good ring pages and a port that was never allocated for Dom0:
 * the backend maps the pages, fails to bind the port, and says so in its `error` node.
 */
async function badHandshakes(k: Kernel, xs: XenbusClient, n: number): Promise<HostileReport> {
  const fe = `device/vbd/${(await xs.directory('device/vbd'))[0]}`;
  const be = await xs.read(`${fe}/backend`);
  const order = 4;
  const refs = Array.from({ length: 1 << order }, () => k.gnttab.grant(0, k.pages.alloc(), false));
  for (let i = 0; i < 10_000 && (await xs.tryRead(`${be}/state`)) !== String(XenbusState.InitWait); i++) await new Promise(setImmediate);
  let refusals = 0;
  for (let i = 0; i < n; i++) {
    const port = 1000 + (i % 2000);
    await xs.transaction(async (t) => {
      await xs.write(`${fe}/${XS_BLK.ring_page_order}`, String(order), t);
      for (let r = 0; r < refs.length; r++) await xs.write(`${fe}/${XS_BLK.ring_ref}${r}`, String(refs[r]), t);
      await xs.write(`${fe}/${XS_BLK.event_channel}`, String(port), t);
      await xs.write(`${fe}/state`, String(XenbusState.Initialised), t);
    });
    // Wait for the backend to give this attempt up (its error names the port), then start over.
    for (let w = 0; w < 100_000; w++) {
      const err = await xs.tryRead(`${be}/error`);
      if (err !== null && err.includes(`port ${port})`)) { refusals++; break; }
      await new Promise(setImmediate);
    }
    await xs.write(`${fe}/state`, String(XenbusState.Initialising));
  }
  await xs.write(`${fe}/state`, String(XenbusState.Closed));
  return { statuses: {}, refusals };
}
