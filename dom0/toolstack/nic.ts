/*
 * A VM's network interfaces, as the toolstack attaches them: a PV vif as a device in XenStore,
 * for netback to serve and its hotplug step to put on a bridge.
 *
 * Xen: tools/libs/light/libxl_nic.c (libxl__device_nic_setdefault, libxl__set_xenstore_nic:
 * the backend and frontend keys of a vif), xl_parse.c's parse_vif_rate (xl's `rate=` →
 * bytes per interval), and xl_nic.c (network-list). The keys:
 *
 *   backend   frontend frontend-id online state     (./xenstore-home.ts addDeviceNodes)
 *             script = "vif-bridge"   mac   bridge   handle = devid   type = "vif"
 *             ip (if given)   rate = "bytes,usecs" (if given)   mtu (if given)
 *   frontend  backend backend-id state   handle   mac   mtu (if given)   trusted = "1"
 *
 * The MAC is in both directories: netfront reads the frontend's, netback the backend's.
 */
import { XS_NET } from '../../shared/public/io/netif.ts';
import type { DeviceSpec } from './xenstore-home.ts';

export interface NicConfig {
  devid?: number;
  mac: string;
  bridge?: string;
  ip?: string;
  /** xl's syntax: "10Mb/s", "1MB/s@20ms". */
  rate?: string;
  mtu?: number;
  /** ringvisor's per-vif switches (see dom0/backends/netback/xenbus.ts). */
  maxQueues?: number;
  split?: boolean;
}

/** libxl__set_xenstore_nic: the vif device for `domid`. */
export function vifSpec(domid: number, nic: NicConfig): DeviceSpec {
  const devid = nic.devid ?? 0;
  const backKeys: Record<string, string> = {
    [XS_NET.script]: 'vif-bridge', [XS_NET.mac]: nic.mac, [XS_NET.bridge]: nic.bridge ?? 'xenbr0',
    [XS_NET.handle]: String(devid), [XS_NET.type]: 'vif',
  };
  const frontKeys: Record<string, string> = { [XS_NET.handle]: String(devid), [XS_NET.mac]: nic.mac, [XS_NET.trusted]: '1' };
  if (nic.ip !== undefined) backKeys[XS_NET.ip] = nic.ip;
  if (nic.rate !== undefined) {
    const r = parseRate(nic.rate);
    if (typeof r === 'string') throw new Error(`vif rate ${nic.rate}: ${r}`);
    backKeys[XS_NET.rate] = `${r.bytesPerInterval},${r.intervalUs}`;
  }
  if (nic.mtu !== undefined) {
    backKeys[XS_NET.mtu] = String(nic.mtu);
    frontKeys[XS_NET.mtu] = String(nic.mtu);
  }
  if (nic.maxQueues !== undefined) backKeys['ringvisor-max-queues'] = String(nic.maxQueues);
  if (nic.split === false) backKeys['ringvisor-split-event-channels'] = '0';
  return { type: 'vif', frontend: domid, devid, backend: 0, frontKeys, backKeys };
}

/**
 * parse_vif_rate: RATE[/s][@INTERVAL], RATE in B, KB, MB, GB (bytes) or b, Kb, Mb, Gb (bits) per
 * second, INTERVAL in s, ms or us (default 50 ms). Returns bytes per interval, or why not.
 */
export function parseRate(s: string): { bytesPerInterval: number; intervalUs: number } | string {
  const m = /^([0-9]+)([KMG]?)([Bb])\/s(?:@([0-9]+)(s|ms|us))?$/.exec(s.trim());
  if (m === null) return 'expected RATE/s[@INTERVAL], e.g. 10Mb/s or 1MB/s@20ms';
  const mult = { '': 1, K: 1e3, M: 1e6, G: 1e9 }[m[2] as '' | 'K' | 'M' | 'G'];
  const bytesPerSec = (Number(m[1]) * mult) / (m[3] === 'b' ? 8 : 1);
  const intervalUs = m[4] === undefined ? 50_000 : Number(m[4]) * { s: 1e6, ms: 1e3, us: 1 }[m[5] as 's' | 'ms' | 'us'];
  if (bytesPerSec <= 0 || intervalUs <= 0) return 'rate and interval must be above zero';
  const bytesPerInterval = Math.floor((bytesPerSec * intervalUs) / 1e6);
  if (bytesPerInterval < 1) return 'less than one byte per interval';
  return { bytesPerInterval, intervalUs };
}
