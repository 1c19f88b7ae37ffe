/*
 * A VM's disks, as the toolstack attaches and detaches them: PV disks as vbd devices in
 * XenStore, for blkback to serve; an emulated disk as a device model in Dom0.
 *
 * Xen: tools/libs/light/libxl_disk.c (device_disk_add: the backend and frontend keys of a vbd),
 * libxl_device.c (libxl__wait_device_connection: wait until the backend has come up before the
 * guest runs; libxl__devices_destroy), libxl_dm.c (a device model per HVM guest, started before
 * the guest is unpaused) and xl_block.c (block-list). What ringvisor leaves out: hotplug scripts
 * (the backend opens the image itself), qdisk backends, driver domains (the backend is Dom0).
 *
 * The keys of a vbd (libxl's, with blkif.h's meaning; blkback reads params, mode, discard-enable):
 *
 *   backend   frontend frontend-id online state   (./xenstore-home.ts addDeviceNodes)
 *             params = the image file    type = "file"     mode = "w" | "r"
 *             dev = the vdev name        device-type = "disk" | "cdrom"
 *             removable = "0" | "1"      bootable = "1"    discard-enable (only if the config says)
 *   frontend  backend backend-id state   virtual-device = the device number   device-type
 */
import { startIdeModel, type IdeModel } from '../device-models/ide/piix.ts';
import type { XenbusClient } from '../../shared/kernel/xenbus/client.ts';
import { XS_BLK } from '../../shared/public/io/blkif.ts';
import { XS_DIR_BACKEND, XS_KEY_STATE, XenbusState, domainPath } from '../../shared/public/io/xenbus.ts';
import type { Kernel } from '../../shared/kernel/kernel.ts';
import type { DeviceSpec, Toolstack } from './xenstore-home.ts';
import type { DiskConfig } from './config/devices.ts';
import type { BlockListRow } from './protocol.ts';

/** libxl's LIBXL_INIT_TIMEOUT: how long a backend may take to come up before create gives up. */
export const BACKEND_TIMEOUT_MS = 10_000;

/** The vbd a PV disk becomes (libxl's device_disk_add). */
export function vbdSpec(domid: number, disk: DiskConfig, backend = 0): DeviceSpec {
  const devtype = disk.devtype === 'cdrom' ? 'cdrom' : 'disk';
  const backKeys: Record<string, string> = {
    [XS_BLK.params]: disk.path ?? '',
    [XS_BLK.type]: 'file',
    [XS_BLK.mode]: disk.readonly ? 'r' : 'w',
    dev: disk.vdev.name,
    [XS_BLK.device_type]: devtype,
    removable: devtype === 'cdrom' ? '1' : '0',
    bootable: '1',
  };
  if (disk.discard !== null) backKeys[XS_BLK.discard_enable] = disk.discard ? '1' : '0';
  return {
    type: 'vbd', frontend: domid, devid: disk.vdev.devid, backend,
    frontKeys: { [XS_BLK.virtual_device]: String(disk.vdev.devid), [XS_BLK.device_type]: devtype },
    backKeys,
  };
}

/**
 * device_disk_add + libxl__wait_device_connection: both directories written, then wait until the
 * backend driver has probed the device (state InitWait or later), so a backend that cannot serve
 * the disk fails `create` instead of leaving the guest waiting for a disk forever.
 */
export async function addVbd(ts: Toolstack, xs: XenbusClient, domid: number, disk: DiskConfig, backendId = 0): Promise<DeviceSpec> {
  const spec = vbdSpec(domid, disk, backendId);
  const { backend } = await ts.addDevice(spec);
  await waitForState(xs, `${backend}/${XS_KEY_STATE}`, (s) => s !== null && s >= XenbusState.InitWait, BACKEND_TIMEOUT_MS,
    `the block backend did not take ${disk.vdev.name} (${backend}) within ${BACKEND_TIMEOUT_MS / 1000} s: ` +
    (backendId === 0 ? 'is blkback loaded in Dom0?' : `does domain ${backendId} run blkback (driver_domain = 1 in its config)?`));
  return spec;
}

/** The device model of an HVM guest's emulated disk (libxl__spawn_local_dm, reduced to one IDE disk). */
export function startDiskModel(k: Kernel, domid: number, vcpus: number, disk: DiskConfig): IdeModel {
  return startIdeModel(k, { domid, image: disk.path!, vcpus, readOnly: disk.readonly, discard: disk.discard ?? true });
}

/** libxl's LIBXL_DESTROY_TIMEOUT: how long a backend may take to let go before its directory goes anyway. */
export const DESTROY_TIMEOUT_MS = 10_000;

/**
 * libxl__devices_destroy for a domain that is already dead (and released, so its frontend
 * directories are gone): wait until each backend has seen that and reached Closed, which means it
 * has unmapped the rings and grants (shared/kernel/xenbus/backend.ts), then remove the backend
 * directories. A backend that does not close in time is removed all the same, as libxl does.
 */
export async function removeBackends(xs: XenbusClient, domid: number, log: (line: string) => void): Promise<void> {
  // Its backends may be in Dom0 or in any driver domain (backend=NAME in a disk spec).
  const homes = await xs.directory('/local/domain').catch(() => [] as string[]);
  for (const be of [0, ...homes.map(Number).filter((d) => Number.isInteger(d) && d !== 0 && d !== domid)]) {
    const root = `${domainPath(be)}/${XS_DIR_BACKEND}`;
    for (const type of await xs.directory(root).catch(() => [] as string[])) {
      const dir = `${root}/${type}/${domid}`;
      const devids = await xs.directory(dir).catch(() => null);
      if (devids === null) continue;
      for (const devid of devids) {
        await waitForState(xs, `${dir}/${devid}/${XS_KEY_STATE}`, (s) => s === null || s === XenbusState.Closed, DESTROY_TIMEOUT_MS,
          `backend ${dir}/${devid} did not close`).catch((e: Error) => log(`xl: ${e.message} within ${DESTROY_TIMEOUT_MS / 1000} s; removing it anyway`));
      }
      await xs.rm(dir);
    }
  }
}

/** xl block-list: one row per vbd of the domain, from the frontend's keys (as libxl_device_disk_getinfo). */
export async function blockList(xs: XenbusClient, domid: number): Promise<BlockListRow[]> {
  const dir = `${domainPath(domid)}/device/vbd`;
  const rows: BlockListRow[] = [];
  const num = (path: string) => xs.readUnsigned(path, -1);
  for (const devid of await xs.directory(dir).catch(() => [] as string[])) {
    const fe = `${dir}/${devid}`;
    // A multi-queue or multi-page ring publishes its refs further down; libxl reads "ring-ref" and says -1.
    let evtch = await num(`${fe}/${XS_BLK.event_channel}`);
    let ringRef = await num(`${fe}/${XS_BLK.ring_ref}`);
    if (evtch < 0) evtch = await num(`${fe}/queue-0/${XS_BLK.event_channel}`);
    if (ringRef < 0) ringRef = await num(`${fe}/${XS_BLK.ring_ref}0`);
    if (ringRef < 0) ringRef = await num(`${fe}/queue-0/${XS_BLK.ring_ref}0`);
    if (ringRef < 0) ringRef = await num(`${fe}/queue-0/${XS_BLK.ring_ref}`);
    rows.push({
      vdev: Number(devid), backendId: await num(`${fe}/backend-id`), handle: domid, state: await num(`${fe}/${XS_KEY_STATE}`),
      evtch, ringRef, backendPath: (await xs.tryRead(`${fe}/backend`)) ?? '',
    });
  }
  return rows.sort((a, b) => a.vdev - b.vdev);
}

/** Wait for a XenStore node to satisfy `ok` (read at once and on every change; null: the node is gone), or time out. */
export async function waitForState(xs: XenbusClient, path: string, ok: (state: number | null) => boolean, timeoutMs: number,
  why: string): Promise<void> {
  let settle!: (e?: Error) => void;
  const done = new Promise<void>((resolve, reject) => { settle = (e) => (e ? reject(e) : resolve()); });
  let finished = false;
  const timer = setTimeout(() => { finished = true; settle(new Error(why)); }, timeoutMs);
  const w = await xs.watch(path, async () => {
    if (finished) return;
    const v = await xs.tryRead(path);
    if (ok(v === null ? null : Number(v))) {
      finished = true;
      settle();
    }
  });
  try {
    await done;
  } finally {
    clearTimeout(timer);
    await w.unwatch().catch(() => undefined);
  }
}
