/*
 * Device statistics: what each backend and device model in Dom0 counts, in one table the tools
 * read.
 *
 * Xen/Linux: the statistics a Linux backend exposes in sysfs, which xentop reads through
 * libxenstat (tools/xenstat/libxenstat/src/xenstat_linux.c): xen-blkback's
 * /sys/bus/xen-backend/devices/vbd-<domid>-<devid>/statistics/{oo_req, rd_req, wr_req, f_req,
 * ds_req, rd_sect, wr_sect} (drivers/block/xen-blkback/xenbus.c), and a vif's byte and packet
 * counts. Here a backend registers each device it serves with a function that answers its
 * counters (and its rings' indices, for the web view), and the toolstack daemon hands a snapshot
 * to `ringvisor top` and to the web view. A new kind of device shows up in both by registering
 * here: the tools know xentop's names and show any other counter as it is.
 *
 * The table belongs to the thread of the domain whose backends fill it (each kernel has its own
 * copy of this module): Dom0's tools read Dom0's directly; a driver domain publishes its own in
 * XenStore, under its data/devstats (./devstats-publish.ts).
 */
import type { RingIndices } from '../../shared/public/io/ring.ts';

/** One ring of a device, named as its XenStore keys name it (`ring-ref`, `queue-1`, `tx`, ...). */
export interface RingView extends RingIndices {
  name: string;
}

export interface DeviceStats {
  /** The backend type, as in XenStore's backend/<type>/ ('vbd', 'vif', ...) or 'ioemu-<model>'. */
  kind: string;
  frontend: number;
  devid: number;
  /** Linux's device name: vbd-<domid>-<devid>, vif<domid>.<devid>, ... */
  name: string;
  /** Counters since the device was created; xentop's names where xentop has one. */
  stats(): Record<string, number>;
  rings?(): RingView[];
}

/** A snapshot row, as it crosses the control socket. */
export interface DeviceRow {
  kind: string;
  frontend: number;
  devid: number;
  name: string;
  stats: Record<string, number>;
  rings: RingView[];
  /** The domain whose backend serves the device, when it is not Dom0 (a driver domain). */
  backend?: number;
}

const devices = new Set<DeviceStats>();

/** Register a device; the function returned unregisters it. */
export function registerDevice(d: DeviceStats): () => void {
  devices.add(d);
  return () => { devices.delete(d); };
}

export function deviceSnapshot(): DeviceRow[] {
  const rows: DeviceRow[] = [];
  for (const d of devices) rows.push({ kind: d.kind, frontend: d.frontend, devid: d.devid, name: d.name, stats: d.stats(), rings: d.rings?.() ?? [] });
  return rows.sort((a, b) => a.frontend - b.frontend || a.kind.localeCompare(b.kind) || a.devid - b.devid);
}
