/*
 * blkback's side of the handshake: one virtual block device from probe to removal.
 *
 * Xen/Linux: drivers/block/xen-blkback/xenbus.c (xen_blkbk_probe, backend_changed → xen_vbd_create,
 * connect_ring, read_per_ring_refs, connect, xen_blkif_disconnect) on top of the generic backend
 * state machine in shared/kernel/xenbus/backend.ts.
 *
 * What the toolstack writes in the backend directory, and blkback reads (libxl's keys):
 *   params          the image file          mode            "r" or "w"
 *   physical-device the disk blkback drives: "<controller>:<namespace>" of the host's storage
 *                   controller, written by the toolstack's hotplug step when it attached `params`
 *                   to the controller (shared/kernel/drivers/sc-disk.ts); blkback never opens
 *                   the image file itself
 *   discard-enable  "0" turns discard off (libxl)
 * and ringvisor's per-disk switches for the negotiated features, so their effect can be
 * measured (Linux has these as module parameters of xen-blkback):
 *   ringvisor-persistent              "0": do not offer feature-persistent
 *   ringvisor-max-indirect-segments   offered feature-max-indirect-segments ("0": none)
 *   ringvisor-max-ring-page-order     offered max-ring-page-order
 *   ringvisor-max-queues              offered multi-queue-max-queues
 * and one fault injection, for driver domains only (a domain that can panic: ./module.ts):
 *   ringvisor-crash-domain-after      N: once a ring of this device has taken N requests, the
 *                                     ring stops dead (BlkifRing.crashAt: responses not yet
 *                                     published are lost) and the whole domain panics, so its
 *                                     guests lose their backend mid-I/O and on_crash decides
 *                                     (test/driver-domain.test.ts, the single-conduit scenario)
 *
 * What blkback publishes: at probe, before InitWait, what the frontend needs to build its rings
 * (max-ring-page-order, multi-queue-max-queues, feature-max-indirect-segments); at connect, the
 * disk (sectors, info, sector-size) and the other features, then Connected. Anything the
 * frontend wrote is checked before use: a queue count or ring order above what was offered, a
 * missing ring-ref, or a protocol other than the 64-bit ABI ends the connection attempt with an
 * `error` node, as xenbus_dev_fatal does, and the device goes Closing (shared/kernel/xenbus/
 * backend.ts), with one line in Dom0's log, rate-limited per guest like every line a frontend
 * can cause (backends/lib/guest-log.ts). Whatever connect had set up when it failed is torn down
 * before it returns, so a frontend that fails its handshake a thousand times holds nothing.
 */
import type { Kernel } from '../../shared/kernel/kernel.ts';
import type { XenbusDevice } from '../../shared/kernel/xenbus/device.ts';
import type { BackendDriver } from '../../shared/kernel/xenbus/backend.ts';
import { VDISK_READONLY, XEN_IO_PROTO_ABI_X86_64, XS_BLK } from '../../shared/public/io/blkif.ts';
import { grantBudget } from '../lib/grant-budget.ts';
import { guestLog } from '../lib/guest-log.ts';
import { ScDisk, parsePhysicalDevice } from '../../shared/kernel/drivers/sc-disk.ts';
import { BlkifRing } from './blkif-ring.ts';
import { registerDevice } from '../lib/devstats.ts';
import type { VbdLimits } from './request.ts';

/** Linux blkback's defaults: 256 indirect segments, rings up to 16 pages, 4 queues. */
export const BLKBACK_DEFAULTS = { maxIndirectSegments: 256, maxRingPageOrder: 4, maxQueues: 4, persistent: true };

export class VbdBackend implements BackendDriver {
  disk: ScDisk | null = null;
  rings: BlkifRing[] = [];
  limits: VbdLimits = { sectors: 0, readOnly: false, flush: true, discard: true, maxIndirectSegments: 0 };
  private offer = { ...BLKBACK_DEFAULTS };
  /** Counters of rings already disconnected (a reconnecting frontend gets new rings). */
  private readonly past: Record<string, number> = {};
  private frontend = -1;
  private devid = 0;
  private unregister: (() => void) | null = null;

  constructor(private readonly k: Kernel, private readonly panic?: (why: string) => void) {}

  /** A line this device's frontend caused: rate-limited per guest. */
  private readonly log = (line: string) => guestLog(this.k).line(this.frontend, line);

  /** xen_blkbk_probe + backend_changed: open the disk, publish what we offer. */
  async probe(dev: XenbusDevice): Promise<void> {
    const xs = dev.xs;
    const dir = dev.nodename;
    this.frontend = dev.otherendId;
    this.devid = Number(dir.split('/').pop());
    this.unregister ??= registerDevice({
      kind: 'vbd', frontend: this.frontend, devid: this.devid, name: `vbd-${this.frontend}-${this.devid}`,
      stats: () => sysfsStats(this.stats()),
      rings: () => this.rings.flatMap((r, q) => {
        const ix = r.indices();
        return ix === null ? [] : [{ name: this.rings.length > 1 ? `queue-${q}` : 'ring-ref', ...ix }];
      }),
    });
    const phys = (await xs.tryRead(`${dir}/${XS_BLK.physical_device}`)) ?? '';
    const where = parsePhysicalDevice(phys);
    if (where === null) throw new Error(`physical-device "${phys}" is not <controller>:<namespace>: the hotplug step has not attached the disk`);
    this.disk = new ScDisk(this.k, where.dev, where.nsid);
    const num = (key: string, dflt: number) => xs.readUnsigned(`${dir}/${key}`, dflt);
    this.offer = {
      persistent: (await num('ringvisor-persistent', 1)) === 1,
      maxIndirectSegments: Math.min(await num('ringvisor-max-indirect-segments', BLKBACK_DEFAULTS.maxIndirectSegments), 8 * 512),
      maxRingPageOrder: Math.min(await num('ringvisor-max-ring-page-order', BLKBACK_DEFAULTS.maxRingPageOrder), 4),
      maxQueues: Math.max(1, await num('ringvisor-max-queues', BLKBACK_DEFAULTS.maxQueues)),
    };
    this.limits = {
      sectors: this.disk.sectors,
      readOnly: this.disk.readOnly,
      flush: true,
      discard: (await num(XS_BLK.discard_enable, 1)) === 1,
      maxIndirectSegments: this.offer.maxIndirectSegments,
    };
    await xs.transaction(async (t) => {
      await xs.write(`${dir}/${XS_BLK.feature_max_indirect_segments}`, String(this.offer.maxIndirectSegments), t);
      await xs.write(`${dir}/${XS_BLK.max_ring_page_order}`, String(this.offer.maxRingPageOrder), t);
      await xs.write(`${dir}/${XS_BLK.multi_queue_max_queues}`, String(this.offer.maxQueues), t);
    });
  }

  /** connect_ring + connect: map the frontend's rings, then publish the disk. */
  async connect(dev: XenbusDevice): Promise<void> {
    const xs = dev.xs;
    const fe = dev.otherend;
    // xenbus_dev_fatal: the reason goes to the device's error node; backend.ts logs it once.
    const fail = async (why: string) => {
      await xs.write(`${dev.nodename}/error`, why).catch(() => undefined);
      throw new Error(why);
    };
    const protocol = (await xs.tryRead(`${fe}/${XS_BLK.protocol}`)) ?? XEN_IO_PROTO_ABI_X86_64;
    if (protocol !== XEN_IO_PROTO_ABI_X86_64) await fail(`unsupported protocol ${protocol}`);
    const nq = await xs.readUnsigned(`${fe}/${XS_BLK.multi_queue_num_queues}`, 1);
    if (nq < 1 || nq > this.offer.maxQueues) await fail(`multi-queue-num-queues ${nq} is not 1..${this.offer.maxQueues}`);
    const order = await xs.readUnsigned(`${fe}/${XS_BLK.ring_page_order}`, 0);
    if (order > this.offer.maxRingPageOrder) await fail(`ring-page-order ${order} is above the offered ${this.offer.maxRingPageOrder}`);
    const persistent = this.offer.persistent && (await xs.readUnsigned(`${fe}/${XS_BLK.feature_persistent}`, 0)) === 1;
    for (let q = 0; q < nq; q++) {
      const dir = nq === 1 ? fe : `${fe}/queue-${q}`;
      const refs: number[] = [];
      for (let i = 0; i < 1 << order; i++) {
        const ref = await xs.readUnsigned(`${dir}/${order === 0 ? XS_BLK.ring_ref : `${XS_BLK.ring_ref}${i}`}`, -1);
        if (ref < 0) await fail(`${dir}: ring-ref${order === 0 ? '' : i} is missing`);
        refs.push(ref);
      }
      const port = await xs.readUnsigned(`${dir}/${XS_BLK.event_channel}`, -1);
      if (port < 0) await fail(`${dir}: event-channel is missing`);
      try {
        this.rings.push(new BlkifRing({
          k: this.k, frontend: this.frontend, devid: this.devid, queue: q, disk: this.disk!, limits: this.limits,
          persistent, ringRefs: refs, remotePort: port, budget: grantBudget(this.k), rings: nq, log: this.log,
        }));
      } catch (e) {
        await this.disconnect();
        await fail(`queue ${q}: ${(e as Error).message}`);
      }
    }
    const dir = dev.nodename;
    const crashAfter = this.panic === undefined ? 0 : await xs.readUnsigned(`${dir}/ringvisor-crash-domain-after`, 0);
    if (crashAfter > 0) this.armPanic(crashAfter);
    await xs.transaction(async (t) => {
      await xs.write(`${dir}/${XS_BLK.sectors}`, String(this.limits.sectors), t);
      await xs.write(`${dir}/${XS_BLK.info}`, String(this.limits.readOnly ? VDISK_READONLY : 0), t);
      await xs.write(`${dir}/${XS_BLK.sector_size}`, '512', t);
      await xs.write(`${dir}/${XS_BLK.physical_sector_size}`, '512', t);
      await xs.write(`${dir}/${XS_BLK.feature_flush_cache}`, '1', t);
      await xs.write(`${dir}/${XS_BLK.feature_discard}`, this.limits.discard ? '1' : '0', t);
      if (this.limits.discard) {
        await xs.write(`${dir}/${XS_BLK.discard_granularity}`, '512', t);
        await xs.write(`${dir}/${XS_BLK.discard_alignment}`, '0', t);
        await xs.write(`${dir}/${XS_BLK.discard_secure}`, '0', t);
      }
      await xs.write(`${dir}/${XS_BLK.feature_persistent}`, this.offer.persistent ? '1' : '0', t);
    });
  }

  /** The fault injection of the header: a ring stops dead after `after` requests, then the domain panics. */
  private armPanic(after: number): void {
    const panic = this.panic!;
    const why = `blkback vbd-${this.frontend}-${this.devid}: crashing this driver domain after ${after} request(s) on a ring (ringvisor-crash-domain-after)`;
    for (const r of this.rings) {
      r.crashAt = r.stats.requests + after;
      r.onCrash = () => {
        for (const x of this.rings) x.onCrash = null;
        panic(why);
      };
    }
  }

  /** xen_blkif_disconnect: every ring unmapped and unbound; safe to call twice. */
  async disconnect(): Promise<void> {
    for (const r of this.rings) {
      for (const [k, v] of Object.entries(ringStats(r))) this.past[k] = (this.past[k] ?? 0) + v;
      r.disconnect();
    }
    this.rings = [];
  }

  async remove(): Promise<void> {
    this.unregister?.();
    this.unregister = null;
    await this.disconnect();
    this.disk?.close();
    this.disk = null;
  }

  /** Counters of all rings this device has had, summed. */
  stats(): Record<string, number> {
    const out: Record<string, number> = { ...this.past };
    for (const r of this.rings) for (const [k, v] of Object.entries(ringStats(r))) out[k] = (out[k] ?? 0) + v;
    return out;
  }
}

/**
 * The device's statistics under Linux blkback's sysfs names (what xentop reads), then
 * ringvisor's mechanism counters. oo_req is Linux's "out of requests" (a request waited for a
 * free pending_req): here, the turns a ring's batch budget ran out with work left (yields).
 */
function sysfsStats(s: Record<string, number>): Record<string, number> {
  return {
    oo_req: s.yields ?? 0, rd_req: s.rd_req ?? 0, wr_req: s.wr_req ?? 0, f_req: s.flushes ?? 0, ds_req: s.discards ?? 0,
    rd_sect: s.rd_sect ?? 0, wr_sect: s.wr_sect ?? 0,
    notifications: s.notifications ?? 0, interrupts: s.interrupts ?? 0, errors: s.errors ?? 0,
    grant_maps: s.maps ?? 0, grant_unmaps: s.unmaps ?? 0, persistent_hits: s.persistentHits ?? 0,
  };
}

function ringStats(r: BlkifRing): Record<string, number> {
  const g = r.grants.stats;
  return {
    ...r.stats, maps: g.maps, unmaps: g.unmaps, persistentHits: g.persistentHits, mapsRefused: g.refused,
    persistentPurged: g.purged, persistentHeld: r.grants.persistentCount, persistentLimit: r.grants.maxPersistent,
  };
}
