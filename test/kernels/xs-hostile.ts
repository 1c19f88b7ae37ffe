/*
 * Test DomU: a hostile XenStore client. It bypasses xenbus and writes straight into its own
 * store ring page, in one of these ways, then reports what xenstored made of it:
 *
 *   random    1 KiB of random bytes (a random header announces a huge payload)
 *   oversize  a well-formed header announcing 4097 bytes
 *   ringidx   a req_prod far ahead of req_cons
 *   flood     reads of a 1000-byte node, refilled whenever xenstored makes room, whose replies
 *             it never collects
 *
 * xenstored notifies after ignoring a ring; the guest then reads the page's `error` field.
 */
import { BroadcastChannel } from 'node:worker_threads';
import { Kernel } from '../../shared/kernel/kernel.ts';
import { encodeMessage } from '../../shared/kernel/xenbus/xs-message.ts';
import { ByteRingView } from '../../shared/public/io/byte-ring.ts';
import { xenbusInit } from '../../shared/kernel/xenbus/xs-ring.ts';
import { XENSTORE_REQ_RING, XENSTORE_RING_SIZE, XS_READ, xenstore_domain_interface } from '../../shared/public/io/xs_wire.ts';
import type { KernelEnv } from '../../shared/public/hypercall.ts';
import { PAGE_SIZE } from '../../shared/public/xen.ts';
import { viewAs } from '../../shared/view.ts';

export type HostileMode = 'random' | 'oversize' | 'ringidx' | 'flood';
export type HostileMessage =
  | { kind: 'hostile-error'; mode: HostileMode; error: number }
  | { kind: 'hostile-flooded'; mode: HostileMode; requests: number };

export async function main(env: KernelEnv): Promise<void> {
  const k = new Kernel(env);
  const idle = k.events.run();
  const { channel, mode } = env.module as { channel: string; mode: HostileMode };
  const ch = new BroadcastChannel(channel);
  const words = k.memory.pageWords(k.si.store_gfn, true);
  const bytes = viewAs(words, Uint8Array);
  const req = new ByteRingView(bytes, words, XENSTORE_REQ_RING);
  const port = k.si.store_evtchn;
  const flood = encodeMessage(XS_READ, 1, 0, ['data/big']);
  let flooded = 0;
  /** Whole requests only: a partial one would be the guest's own framing error. */
  const refill = () => {
    while (XENSTORE_RING_SIZE - req.used() >= flood.length) {
      req.write(flood, 0, flood.length);
      flooded++;
    }
  };
  if (mode === 'flood') {
    // Behave for one request, to have something large to read.
    const xs = xenbusInit(k);
    await xs.write('data/big', 'x'.repeat(1000));
  }
  let reported = false;
  k.events.bind(port, () => {
    const error = Atomics.load(words, xenstore_domain_interface.error >> 2);
    if (error !== 0 && !reported) {
      reported = true;
      ch.postMessage({ kind: 'hostile-error', mode, error } satisfies HostileMessage);
    }
    if (mode === 'flood') refill();
  });
  if (mode === 'random') {
    const junk = new Uint8Array(1024);
    let x = 0x2545f491;
    for (let i = 0; i < junk.length; i++) {
      x ^= x << 13; x ^= x >>> 17; x ^= x << 5;
      junk[i] = x & 0xff;
    }
    junk[15] = 0x7f; // make sure the random length is far over the limit
    req.write(junk, 0, junk.length);
  } else if (mode === 'oversize') {
    const m = encodeMessage(XS_READ, 1, 0, ['data']);
    new DataView(m.buffer).setUint32(12, 4097, true);
    req.write(m, 0, 16);
  } else if (mode === 'ringidx') {
    Atomics.store(words, xenstore_domain_interface.req_prod >> 2, 1 << 20);
  } else {
    refill();
    ch.postMessage({ kind: 'hostile-flooded', mode, requests: flooded } satisfies HostileMessage);
  }
  k.events.notify(port);
  await idle;
}
