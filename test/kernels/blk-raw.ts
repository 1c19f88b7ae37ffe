// A hostile blkfront: connects like the real one, then writes raw blkif requests on its ring.
// Each malformed request must come back with its error status, and a good read after it must
// succeed; the last step corrupts the ring's producer index, which must stop only this device.
import { BroadcastChannel } from 'node:worker_threads';
import { Blkfront } from '../../domu/blkfront/blkfront.ts';
import { allocIoBuffer } from '../../domu/block/blkdev.ts';
import type { BlockGuestModule, BlockMessage } from '../../scenarios/block/protocol.ts';
import { Kernel } from '../../shared/kernel/kernel.ts';
import { registerFrontend } from '../../shared/kernel/xenbus/frontend.ts';
import { xenbusInit } from '../../shared/kernel/xenbus/xs-ring.ts';
import type { KernelEnv } from '../../shared/public/hypercall.ts';
import {
  BLKIF_OP_DISCARD, BLKIF_OP_INDIRECT, BLKIF_OP_READ, BLKIF_OP_WRITE, BLKIF_SEG_OFFSET, blkif_request, blkif_request_discard,
  blkif_request_indirect, blkif_response, set_indirect_gref, set_seg,
} from '../../shared/public/io/blkif.ts';
import { sring } from '../../shared/public/io/ring.ts';

export interface RawCase {
  name: string;
  /** Fill the request (id and handle are set already). */
  op: number;
  nrSegs?: number;
  sector?: number;
  seg?: { gref?: number; first: number; last: number };
  indirect?: { op: number; nrSegs: number };
  discard?: { flag: number; nrSectors: number };
}

export interface RawOutcome {
  name: string;
  status: number;
  operation: number;
  padding: number;  // bytes 9 and 12..15 of the response slot, ORed: must be 0
  followingRead: number;
}

export async function main(env: KernelEnv): Promise<void> {
  const k = new Kernel(env);
  void k.events.run();
  const m = env.module as BlockGuestModule & { cases: RawCase[]; overflow: boolean };
  const ch = new BroadcastChannel(m.channel);
  const post = (msg: BlockMessage) => ch.postMessage(msg);
  const xs = xenbusInit(k);
  const dev = await new Promise<Blkfront>((resolve) => {
    let front: Blkfront;
    void registerFrontend(xs, 'vbd', () => (front = new Blkfront(k, { maxQueues: 1 })), {
      onProbe: (fe) => { front.shutdownHook = () => fe.shutdown(); resolve(front); },
    });
  });
  await dev.connected;
  post({ kind: 'connected', nonce: m.nonce, device: { name: dev.name, sectors: dev.sectors, readOnly: dev.readOnly, features: dev.features, negotiated: { ...dev.negotiated } } });

  // Take queue 0 away from the driver: from here on this kernel is the frontend.
  const q = dev.queues[0];
  k.events.removePoller(q);
  k.events.unbind(q.port);
  const buf = allocIoBuffer(k.memory, () => k.pages.alloc(), 4096);
  const gref = k.gnttab.grant(0, buf.gfns[0], false); // blkback runs in Dom0 here
  const req = blkif_request.create();
  const rsp = blkif_response.create();
  let id = 0;
  const send = async (fill: () => void): Promise<{ status: number; operation: number; padding: number }> => {
    req.clear();
    fill();
    req.id = 0xdead_0000_0000 + id++; // nonzero high bytes: a response not built whole would show them
    q.ring.putRequest(req.words);
    q.ring.pushRequests();
    k.events.notify(q.port);
    while (q.ring.unconsumedResponses() === 0) await new Promise(setImmediate);
    q.ring.takeResponse(rsp.words);
    // The bytes no field covers: 9 (between operation and status) and 12..15 (tail padding).
    return { status: rsp.status, operation: rsp.operation, padding: rsp.dv.getUint8(9) | rsp.dv.getUint32(12, true) };
  };
  const goodRead = () => send(() => {
    req.operation = BLKIF_OP_READ;
    req.nr_segments = 1;
    set_seg(req.dv, BLKIF_SEG_OFFSET, 0, gref, 0, 7);
  });

  const outcomes: RawOutcome[] = [];
  for (const c of m.cases) {
    const r = await send(() => {
      req.operation = c.op;
      req.sector_number = c.sector ?? 0;
      if (c.indirect) {
        req.dv.setUint8(blkif_request_indirect.fields.indirect_op[1], c.indirect.op);
        req.dv.setUint16(blkif_request_indirect.fields.nr_segments[1], c.indirect.nrSegs, true);
        set_indirect_gref(req.dv, 0, gref);
      } else if (c.discard) {
        req.dv.setUint8(blkif_request_discard.fields.flag[1], c.discard.flag);
        req.dv.setBigUint64(blkif_request_discard.fields.nr_sectors[1], BigInt(c.discard.nrSectors), true);
      } else {
        req.nr_segments = c.nrSegs ?? 1;
        const s = c.seg ?? { first: 0, last: 7 };
        for (let i = 0; i < Math.min(req.nr_segments, 11); i++) set_seg(req.dv, BLKIF_SEG_OFFSET, i, s.gref ?? gref, s.first, s.last);
      }
    });
    const after = await goodRead();
    outcomes.push({ name: c.name, status: r.status, operation: r.operation, padding: r.padding, followingRead: after.status });
  }
  post({ kind: 'task-done', nonce: m.nonce, index: 0, result: { kind: 'ops', result: outcomes.map((o) => ({ ok: true, error: JSON.stringify(o) })) }, stats: {} });

  if (m.overflow) {
    // A producer index a whole ring and more ahead of anything answered: no honest frontend can.
    const hdr = k.memory.pageWords(q.ringGfns[0], true);
    Atomics.store(hdr, sring.req_prod, (Atomics.load(hdr, sring.rsp_prod) + q.ring.size + 5) | 0);
    k.events.notify(q.port);
  }
  post({ kind: 'closed', nonce: m.nonce, states: [] });
  ch.close();
}

export const RAW = { BLKIF_OP_READ, BLKIF_OP_WRITE, BLKIF_OP_DISCARD, BLKIF_OP_INDIRECT };
