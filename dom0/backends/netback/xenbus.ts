/*
 * netback's side of the handshake: one vif from probe to removal.
 *
 * Linux: drivers/net/xen-netback/xenbus.c (netback_probe, backend_create_xenvif,
 * frontend_changed, connect, connect_data_rings, read_xenbus_vif_flags, xen_net_read_rate,
 * hotplug_status_changed, set_backend_state) on the generic backend state machine in
 * shared/kernel/xenbus/backend.ts with `connectOn: 'connected'`.
 *
 * At probe, in one transaction, what netback offers: feature-sg, feature-rx-copy (and
 * feature-rx-flip 0: page flipping is gone), then feature-split-event-channels and
 * multi-queue-max-queues. GSO, checksum offload and the control ring are not offered (ringvisor
 * has no TCP to segment, and frontends compute their own checksums), so the frontend does not
 * use them. Then the vif is made and the hotplug step puts it on its bridge, and InitWait.
 *
 * When the frontend is Connected: read and check what it wrote. No request-rx-copy = 1 →
 * "frontend does not support rx-copy" (Linux's -EOPNOTSUPP); multi-queue-num-queues "0" or above
 * what was offered → refused (the "0" check is the 2026 CVE fix); per queue tx-ring-ref,
 * rx-ring-ref and event-channel, or event-channel-tx + event-channel-rx when split (every key read
 * at once, one round trip, where Linux reads them one by one; the queues' own directories in a
 * second when there are several). Map the rings,
 * bind the ports, then wait for hotplug-status = "connected" before reporting Connected. A
 * refusal writes `error` in the backend directory, as xenbus_dev_fatal does.
 *
 * ringvisor's per-vif switches, for tests and the benchmark (Linux has module parameters):
 *   ringvisor-max-queues           offered multi-queue-max-queues (default 4)
 *   ringvisor-split-event-channels "0": do not offer split event channels
 */
import type { Kernel } from '../../../shared/kernel/kernel.ts';
import type { XenbusDevice } from '../../../shared/kernel/xenbus/device.ts';
import type { BackendDriver } from '../../../shared/kernel/xenbus/backend.ts';
import type { XenbusClient } from '../../../shared/kernel/xenbus/client.ts';
import { XS_NET } from '../../../shared/public/io/netif.ts';
import { TRC_BEGIN, TRC_END, TRC_GUEST_NETBACK_BRIDGED, TRC_GUEST_NETBACK_CONNECT } from '../../../shared/public/trace.ts';
import type { PacketPool } from '../../lib/packet.ts';
import { registerDevice } from '../../../backends/lib/devstats.ts';
import { TxCredit } from './credit.ts';
import { vifBridgeOffline, vifBridgeOnline, waitForHotplug } from './hotplug.ts';
import { XenVif } from './interface.ts';
import type { QueueRings } from './queue.ts';

export const NETBACK_DEFAULTS = { maxQueues: 4, split: true };

export class NetBackend implements BackendDriver {
  vif: XenVif | null = null;
  private offer = { ...NETBACK_DEFAULTS };
  private unregister: (() => void) | null = null;

  constructor(private readonly k: Kernel, private readonly pool: PacketPool, private readonly log: (line: string) => void) {}

  /** netback_probe + backend_create_xenvif + the hotplug step. */
  async probe(dev: XenbusDevice): Promise<void> {
    const xs = dev.xs;
    const dir = dev.nodename;
    const devid = Number(dir.split('/').pop());
    this.offer = {
      maxQueues: Math.max(1, Math.min(16, await readNum(xs, `${dir}/ringvisor-max-queues`, NETBACK_DEFAULTS.maxQueues))),
      split: (await readNum(xs, `${dir}/ringvisor-split-event-channels`, 1)) === 1,
    };
    await xs.transaction(async (t) => {
      await xs.write(`${dir}/${XS_NET.feature_sg}`, '1', t);
      await xs.write(`${dir}/${XS_NET.feature_rx_copy}`, '1', t);
      await xs.write(`${dir}/${XS_NET.feature_rx_flip}`, '0', t);
      await xs.write(`${dir}/${XS_NET.feature_split_event_channels}`, this.offer.split ? '1' : '0', t);
      await xs.write(`${dir}/${XS_NET.multi_queue_max_queues}`, String(this.offer.maxQueues), t);
    });
    const vif = new XenVif(this.k, dev.otherendId, devid, this.pool, this.log);
    this.vif = vif;
    // Its counters and rings for `ringvisor top` (NETS, NETTX, NETRX) and the web view, as Linux's
    // vif<domid>.<devid> shows them in /proc/net/dev; the rings named as their XenStore keys.
    this.unregister?.();
    this.unregister = registerDevice({
      kind: 'vif', frontend: vif.frontend, devid, name: vif.name,
      stats: () => vif.stats(),
      rings: () => vif.queues.flatMap((q) => {
        const ix = q.ringIndices();
        const at = vif.queues.length > 1 ? `queue-${q.index}/` : '';
        return ix === null ? [] : [{ name: `${at}tx-ring-ref`, ...ix.tx }, { name: `${at}rx-ring-ref`, ...ix.rx }];
      }),
    });
    const why = await vifBridgeOnline(xs, dir, vif);
    if (why !== null) {
      this.log(`netback ${vif.name}: hotplug failed: ${why}`);
    } else {
      this.k.hypercall.xentrace(TRC_GUEST_NETBACK_BRIDGED, vif.frontend, devid, 0, 0);
    }
  }

  /** connect: check the frontend's keys, map and bind every queue, wait for the hotplug step. */
  async connect(dev: XenbusDevice): Promise<void> {
    const xs = dev.xs;
    const fe = dev.otherend;
    const vif = this.vif!;
    this.k.hypercall.xentrace(TRC_GUEST_NETBACK_CONNECT | TRC_BEGIN, vif.frontend, vif.devid, 0, 0);
    try {
      await this.connectInner(dev, vif);
    } finally {
      this.k.hypercall.xentrace(TRC_GUEST_NETBACK_CONNECT | TRC_END, vif.frontend, vif.devid, 0, 0);
    }
  }

  private async connectInner(dev: XenbusDevice, vif: XenVif): Promise<void> {
    const xs = dev.xs;
    const fe = dev.otherend;
    const fail = async (why: string): Promise<never> => {
      await xs.write(`${dev.nodename}/error`, why).catch(() => undefined);
      this.log(`netback ${vif.name}: ${why}`);
      throw new Error(why);
    };
    // Every key the frontend wrote, read at once (one round trip, and a second for the queues'
    // own directories when it asked for several): Linux reads them one after the other, where a
    // round trip costs microseconds; here each is a turn of Dom0's event loop, and the peers of a
    // migrated guest wait for the rings to be mapped (README, "Save, restore and live migration").
    const [rxCopy, nqRaw, noCsum, rate, topKeys] = await Promise.all([
      readNum(xs, `${fe}/${XS_NET.request_rx_copy}`, 0), xs.tryRead(`${fe}/${XS_NET.multi_queue_num_queues}`),
      readNum(xs, `${fe}/${XS_NET.feature_no_csum_offload}`, 0), xs.tryRead(`${dev.nodename}/${XS_NET.rate}`), readQueueKeys(xs, fe),
    ]);
    if (rxCopy !== 1) await fail('frontend does not support rx-copy (request-rx-copy is not 1)');
    const nq = nqRaw === null ? 1 : /^[0-9]+$/.test(nqRaw) ? Number(nqRaw) : -1;
    if (nq === 0) await fail('guest requested 0 queues (multi-queue-num-queues must be greater than zero)');
    if (nq < 0 || nq > this.offer.maxQueues) await fail(`guest requested ${nqRaw} queues, exceeding the maximum of ${this.offer.maxQueues}`);
    const keys = nq === 1 ? [topKeys] : await Promise.all(Array.from({ length: nq }, (_, q) => readQueueKeys(xs, `${fe}/queue-${q}`)));
    const rings: QueueRings[] = [];
    for (let q = 0; q < nq; q++) {
      const dir = nq === 1 ? fe : `${fe}/queue-${q}`;
      const k = keys[q];
      if (k.txRef < 0 || k.rxRef < 0) await fail(`${dir}: reading tx-ring-ref and rx-ring-ref`);
      let txPort = k.port;
      let rxPort = txPort;
      if (txPort < 0) {
        txPort = k.txPort;
        rxPort = k.rxPort;
        if (txPort < 0 || rxPort < 0) await fail(`${dir}: reading event-channel or event-channel-tx/rx`);
        if (!this.offer.split) await fail(`${dir}: split event channels were not offered`);
      }
      rings.push({ txRef: k.txRef, rxRef: k.rxRef, txPort, rxPort });
    }
    // read_xenbus_vif_flags: IPv4 checksum offload towards the guest unless it wrote feature-no-csum-offload = 1.
    vif.ipCsum = noCsum !== 1;
    vif.credit = TxCredit.parse(rate, () => vif.kick());
    try {
      vif.connect(rings);
    } catch (e) {
      await fail(`mapping rings: ${(e as Error).message}`);
    }
    const hotplug = await waitForHotplug(xs, dev.nodename);
    if (hotplug !== null) {
      vif.disconnect();
      await fail(`hotplug script failed: ${hotplug}`);
    }
    this.log(`netback ${vif.name}: connected, ${nq} queue(s), ${rings[0].txPort === rings[0].rxPort ? 'one event channel' : 'split event channels'}` +
      `${vif.bridge ? `, on ${vif.bridge.name}` : ''}`);
  }

  async disconnect(): Promise<void> {
    this.vif?.disconnect();
  }

  /** netback_remove: disconnect, and the hotplug step's offline. */
  async remove(): Promise<void> {
    this.unregister?.();
    this.unregister = null;
    if (this.vif === null) return;
    this.vif.disconnect();
    vifBridgeOffline(this.vif);
  }

  stats(): Record<string, number> {
    return this.vif?.stats() ?? {};
  }
}

/** A queue's keys in `dir` (connect_data_rings), all read at once; -1 for one absent or not a number. */
async function readQueueKeys(xs: XenbusClient, dir: string): Promise<{ txRef: number; rxRef: number; port: number; txPort: number; rxPort: number }> {
  const [txRef, rxRef, port, txPort, rxPort] = await Promise.all([
    readNum(xs, `${dir}/${XS_NET.tx_ring_ref}`, -1), readNum(xs, `${dir}/${XS_NET.rx_ring_ref}`, -1),
    readNum(xs, `${dir}/${XS_NET.event_channel}`, -1), readNum(xs, `${dir}/${XS_NET.event_channel_tx}`, -1),
    readNum(xs, `${dir}/${XS_NET.event_channel_rx}`, -1),
  ]);
  return { txRef, rxRef, port, txPort, rxPort };
}

async function readNum(xs: XenbusClient, path: string, dflt: number): Promise<number> {
  const v = await xs.tryRead(path);
  if (v === null || !/^[0-9]+$/.test(v)) return dflt;
  return Number(v);
}
