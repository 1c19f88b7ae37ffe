/*
 * Test DomU: a hostile (or just broken) netfront. It does the handshake itself, with its own
 * rings, so it can put on the tx ring what no honest netfront would, then reports what netback
 * answered. Modes:
 *
 *   runt          a 13-byte packet (netback drops it: ERROR), then a good 60-byte one (OKAY)
 *   fatal-slots   a packet of 1 + 21 slots (netback disables the vif: no response at all)
 *   cross-page    a second slot at offset 4000, 200 bytes (fatal)
 *   zero-queues   multi-queue-num-queues = "0" (netback refuses to connect and writes `error`)
 *
 * After reporting, the guest idles until it is destroyed: tests check what destroying a guest
 * whose vif was disabled leaves behind.
 */
import { BroadcastChannel } from 'node:worker_threads';
import { Kernel } from '../../shared/kernel/kernel.ts';
import { registerFrontend, type FrontendDriver } from '../../shared/kernel/xenbus/frontend.ts';
import type { XenbusDevice } from '../../shared/kernel/xenbus/device.ts';
import { xenbusInit } from '../../shared/kernel/xenbus/xs-ring.ts';
import type { KernelEnv } from '../../shared/public/hypercall.ts';
import {
  NETIF_RX_SLOT, NETIF_TX_SLOT, NETTXF_more_data, XS_NET, netif_tx_request, netif_tx_response,
} from '../../shared/public/io/netif.ts';
import { FrontRing } from '../../shared/public/io/ring.ts';

export type NetHostileMode = 'runt' | 'fatal-slots' | 'cross-page' | 'zero-queues';
export interface NetHostileReport { mode: NetHostileMode; statuses: number[]; responses: number; backendError: string | null }

class RawFront implements FrontendDriver {
  readonly connectOnInitWait = true;
  tx!: FrontRing;
  port = -1;
  page!: Uint8Array;
  gref = 0;
  ready!: () => void;
  wake: () => void = () => undefined;
  readonly connected = new Promise<void>((r) => { this.ready = r; });
  constructor(private readonly k: Kernel, private readonly mode: NetHostileMode) {}

  async publish(dev: XenbusDevice, t: number): Promise<void> {
    const k = this.k;
    const [txg, rxg, datag] = k.pages.allocMany(3);
    this.tx = new FrontRing([k.memory.pageWords(txg, true)], NETIF_TX_SLOT, netif_tx_response.size);
    new FrontRing([k.memory.pageWords(rxg, true)], NETIF_RX_SLOT, NETIF_RX_SLOT);
    this.page = k.memory.page(datag, true);
    this.gref = k.gnttab.grant(dev.otherendId, datag, true);
    this.port = k.events.allocUnbound(dev.otherendId, () => this.wake());
    const xs = dev.xs;
    const d = dev.nodename;
    if (this.mode === 'zero-queues') await xs.write(`${d}/${XS_NET.multi_queue_num_queues}`, '0', t);
    await xs.write(`${d}/${XS_NET.tx_ring_ref}`, String(k.gnttab.grant(dev.otherendId, txg, false)), t);
    await xs.write(`${d}/${XS_NET.rx_ring_ref}`, String(k.gnttab.grant(dev.otherendId, rxg, false)), t);
    await xs.write(`${d}/${XS_NET.event_channel}`, String(this.port), t);
    await xs.write(`${d}/${XS_NET.request_rx_copy}`, '1', t);
  }

  async connect(): Promise<void> {
    this.ready();
  }

  async close(): Promise<void> {}
}

export async function main(env: KernelEnv): Promise<void> {
  const k = new Kernel(env);
  void k.events.run();
  const { channel, mode, nonce } = env.module as { channel: string; mode: NetHostileMode; nonce: string };
  const ch = new BroadcastChannel(channel);
  const xs = xenbusInit(k);
  const front = new RawFront(k, mode);
  let backend = '';
  await new Promise<void>((resolve) => {
    void registerFrontend(xs, 'vif', () => front, { onProbe: (fe) => { backend = fe.dev.otherend; resolve(); } });
  });
  await front.connected;
  const req = netif_tx_request.create();
  const rsp = netif_tx_response.create();
  const put = (size: number, flags: number, offset = 0) => {
    req.clear();
    req.gref = front.gref;
    req.offset = offset;
    req.flags = flags;
    req.id = front.tx.req_prod_pvt & 0xff;
    req.size = size;
    front.tx.putRequest(req.words);
  };
  const statuses: number[] = [];
  /** Push, notify, and collect `n` responses (waiting for each as they come). */
  const exchange = async (n: number) => {
    front.tx.pushRequests();
    k.events.notify(front.port);
    while (statuses.length < n) {
      if (front.tx.unconsumedResponses() > 0) {
        front.tx.takeResponse(rsp.words);
        statuses.push(rsp.status);
      } else {
        const woken = new Promise<void>((r) => { front.wake = r; });
        if (!front.tx.finalCheckForResponses()) await woken;
      }
    }
  };
  let backendError: string | null = null;
  if (mode === 'zero-queues') {
    // Netback refuses in connect(): it says why in its directory.
    backendError = await new Promise<string>((resolve) => {
      void xs.watch(`${backend}/error`, async () => {
        const v = await xs.tryRead(`${backend}/error`);
        if (v !== null) resolve(v);
      });
    });
  } else if (mode === 'runt') {
    put(13, 0);
    await exchange(1);
    front.page.fill(0xff, 0, 12); // a broadcast frame of 60 bytes
    put(60, 0);
    await exchange(2);
  } else {
    if (mode === 'fatal-slots') {
      put(22 * 10, NETTXF_more_data);
      for (let i = 1; i < 22; i++) put(10, i < 21 ? NETTXF_more_data : 0);
    } else {
      put(300, NETTXF_more_data);
      put(200, 0, 4000);
    }
    front.tx.pushRequests();
    k.events.notify(front.port);
  }
  const report: NetHostileReport = { mode, statuses, responses: statuses.length, backendError };
  ch.postMessage({ kind: 'hostile-report', nonce, report });
  // Idle until destroyed.
  await new Promise(() => undefined);
}
