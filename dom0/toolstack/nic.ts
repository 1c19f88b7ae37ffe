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
import { randomBytes } from 'node:crypto';
import type { XenbusClient } from '../../shared/kernel/xenbus/client.ts';
import { XS_NET } from '../../shared/public/io/netif.ts';
import { XS_KEY_STATE, XenbusState, domainPath } from '../../shared/public/io/xenbus.ts';
import type { VifConfig } from './config/devices.ts';
import { parseVifSpec, randomXenMac } from './config/vifspec.ts';
import { BACKEND_TIMEOUT_MS, waitForState } from './devices.ts';
import type { DeviceSpec, Toolstack } from './xenstore-home.ts';
import type { Kernel } from '../../shared/kernel/kernel.ts';
import { startE1000Model, type E1000Model } from '../device-models/e1000/e1000.ts';

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

/**
 * An HVM guest's emulated vif (model=e1000): its device model on the vif's bridge, as
 * libxl__build_device_model_args adds `-device e1000,mac=...` with a tap on that bridge. The NIC
 * sits in slot `index` (its BAR and IRQ); the key bufioreq=1 asks for buffered MMIO.
 */
export function startNicModel(k: Kernel, domid: number, vcpus: number, index: number, v: VifConfig): E1000Model {
  const nic = nicFromVif(v);
  return startE1000Model(k, { domid, vcpus, index, devid: v.devid, mac: nic.mac, bridge: nic.bridge, buffered: v.bufioreq === true });
}

/** A vif from the config as the toolstack attaches it: libxl makes a MAC for one that has none. */
export function nicFromVif(v: VifConfig): NicConfig {
  const nic: NicConfig = { devid: v.devid, mac: v.mac ?? randomXenMac((n) => randomBytes(n)), bridge: v.bridge, mtu: v.mtu };
  if (v.ip !== null) nic.ip = v.ip;
  if (v.rate !== null) nic.rate = v.rate;
  return nic;
}

/**
 * libxl__device_nic_add + libxl__wait_device_connection: both directories written, then wait
 * until netback has probed the vif (InitWait or later), so a Dom0 without netback fails `create`.
 */
export async function addVif(ts: Toolstack, xs: XenbusClient, domid: number, nic: NicConfig): Promise<DeviceSpec> {
  const spec = vifSpec(domid, nic);
  const { backend } = await ts.addDevice(spec);
  await waitForState(xs, `${backend}/${XS_KEY_STATE}`, (st) => st !== null && st >= XenbusState.InitWait, BACKEND_TIMEOUT_MS,
    `the network backend did not take vif ${nic.devid ?? 0} (${backend}) within ${BACKEND_TIMEOUT_MS / 1000} s: is netback loaded in Dom0?`);
  return spec;
}

/** xl network-list: one row per vif, from the frontend's keys (libxl_device_nic_getinfo). */
export interface NetworkListRow {
  devid: number; backendId: number; mac: string; state: number; evtch: number; txRingRef: number; rxRingRef: number; backendPath: string;
}

export async function networkList(xs: XenbusClient, domid: number): Promise<NetworkListRow[]> {
  const dir = `${domainPath(domid)}/device/vif`;
  const num = async (path: string) => {
    const v = await xs.tryRead(path);
    return v === null || !/^[0-9]+$/.test(v) ? -1 : Number(v);
  };
  const rows: NetworkListRow[] = [];
  for (const devid of await xs.directory(dir).catch(() => [] as string[])) {
    const fe = `${dir}/${devid}`;
    // Several queues put their keys under queue-N/, a split channel in event-channel-tx: libxl reads the plain keys.
    let evtch = await num(`${fe}/${XS_NET.event_channel}`);
    if (evtch < 0) evtch = await num(`${fe}/${XS_NET.event_channel_tx}`);
    let tx = await num(`${fe}/${XS_NET.tx_ring_ref}`);
    let rx = await num(`${fe}/${XS_NET.rx_ring_ref}`);
    if (tx < 0) tx = await num(`${fe}/queue-0/${XS_NET.tx_ring_ref}`);
    if (rx < 0) rx = await num(`${fe}/queue-0/${XS_NET.rx_ring_ref}`);
    rows.push({
      devid: Number(devid), backendId: await num(`${fe}/backend-id`), mac: (await xs.tryRead(`${fe}/${XS_NET.mac}`)) ?? '',
      state: await num(`${fe}/${XS_KEY_STATE}`), evtch, txRingRef: tx, rxRingRef: rx, backendPath: (await xs.tryRead(`${fe}/backend`)) ?? '',
    });
  }
  return rows.sort((a, b) => a.devid - b.devid);
}

/**
 * xl network-attach DOMAIN SPEC...: the words of one vif = [...] entry. The devid is the next free
 * one, the MAC random in Xen's OUI if none is given (as libxl). Throws with the spec's error.
 */
export async function networkAttach(ts: Toolstack, xs: XenbusClient, domid: number, words: readonly string[]): Promise<NetworkListRow> {
  const r = parseVifSpec(words.join(','));
  if (!r.ok) throw new Error(`vif '${words.join(',')}': ${r.error}`);
  const used = new Set((await networkList(xs, domid)).map((row) => row.devid));
  let devid = r.vif.devid ?? 0;
  if (r.vif.devid === null) while (used.has(devid)) devid++;
  else if (used.has(devid)) throw new Error(`domain ${domid} already has a vif with devid ${devid}`);
  const nic: NicConfig = { devid, mac: r.vif.mac ?? randomXenMac((n) => randomBytes(n)), bridge: r.vif.bridge ?? 'xenbr0' };
  if (r.vif.ip !== null) nic.ip = r.vif.ip;
  if (r.vif.rate !== null) nic.rate = r.vif.rate;
  if (r.vif.mtu !== null) nic.mtu = r.vif.mtu;
  await addVif(ts, xs, domid, nic);
  return (await networkList(xs, domid)).find((row) => row.devid === devid)!;
}

/** xl network-detach DOMAIN DEVID|MAC: the vif is closed and removed while the guest runs. */
export async function networkDetach(ts: Toolstack, xs: XenbusClient, domid: number, which: string): Promise<number> {
  const rows = await networkList(xs, domid);
  const row = rows.find((r) => String(r.devid) === which || r.mac === which.toLowerCase());
  if (row === undefined) {
    throw new Error(`domain ${domid} has no vif ${which} (its vifs: ${rows.map((r) => `${r.devid} ${r.mac}`).join(', ') || 'none'})`);
  }
  await ts.removeDevice({ type: 'vif', frontend: domid, devid: row.devid, backend: row.backendId < 0 ? 0 : row.backendId });
  return row.devid;
}
