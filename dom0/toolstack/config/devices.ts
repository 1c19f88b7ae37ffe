/*
 * From `disk = [...]` and `vif = [...]` to the devices a guest gets, and by which path each
 * reaches it: a PV device (blkfront/blkback, netfront/netback) or an emulated one (the IDE-like
 * controller or the e1000-like NIC that a device model in Dom0 serves, trap by trap).
 *
 * Xen: the guest-type rules of docs/man/xen-vbd-interface.7.pandoc and the device-model side of
 * tools/libs/light/libxl_dm.c (which disks QEMU emulates); libxl__device_nic_setdefault for vif
 * defaults. The rules, and where ringvisor chooses one path where Xen offers two:
 *
 *   PV and PVH guests   every disk and vif is PV; an hd/sd name is only a naming hint.
 *   HVM guests          hdX (whole disk, hda..hdd)  emulated IDE. Xen offers it both ways (the
 *                                                  guest's PV drivers may unplug the emulated
 *                                                  one); ringvisor gives the emulated path, so the
 *                                                  two paths can be compared disk against disk.
 *                       devtype=cdrom             emulated, read-only.
 *                       xvdX, numeric             PV only. (libxl's QEMU also emulates xvd disks
 *                                                  0..3 so that a guest without PV drivers can
 *                                                  boot; ringvisor keeps the vdev's word.)
 *                       sdX                       PV, with a warning: no SCSI controller is modelled.
 *                       hdXN (a partition)        PV, with a warning: only whole disks can be
 *                                                  emulated.
 *                       a read-only hdX           an error, as in libxl ("qemu-xen doesn't support
 *                                                  read-only IDE disk drivers").
 *   vifs on HVM         type=ioemu (the default): the emulated NIC; type=vif: PV. ringvisor's
 *                       emulated NIC is e1000-like, so it is the default model (Xen: rtl8139).
 */
import { resolve, isAbsolute } from 'node:path';
import type { Report } from './config-error.ts';
import { parseDiskSpec, type DiskSpec } from './diskspec.ts';
import { parseVifSpec, type VifSpec } from './vifspec.ts';
import type { Located } from './xlcfg-get.ts';

/** xl.cfg's type = "pv" | "pvh" | "hvm": which devices a guest may have depends on it (declared here, below vmconfig.ts, so neither imports the other). */
export type GuestType = 'pv' | 'pvh' | 'hvm';

export type IoPath = 'pv' | 'emulated';

export interface DiskConfig extends DiskSpec {
  /** The spec as written, and where: errors about this disk point here. */
  spec: string;
  line: number;
  column: number;
  /** The image's absolute path: a relative target is relative to the config's directory. */
  path: string | null;
  io: IoPath;
}

export interface VifConfig extends Omit<VifSpec, 'bridge' | 'mtu' | 'devid'> {
  spec: string;
  line: number;
  column: number;
  /** Xen: "Each device has a DEVID which is its index within the vif list" unless devid= says otherwise. */
  devid: number;
  bridge: string;
  mtu: number;
  io: IoPath;
}

/** The emulated NIC ringvisor has; Xen's own default model is rtl8139. */
export const EMULATED_NIC_MODEL = 'e1000';

export function interpretDisks(items: readonly Located[], type: GuestType, dir: string, report: Report): DiskConfig[] {
  const disks: DiskConfig[] = [];
  const byDevid = new Map<number, DiskConfig>();
  for (const item of items) {
    const { line, column } = item.loc;
    const r = parseDiskSpec(item.text);
    if (!r.ok) {
      report.error(line, `disk '${item.text}': ${r.error}`, column);
      continue;
    }
    const d = r.disk;
    const io = placeDisk(d, type, item, report);
    if (io === null) continue;
    const disk: DiskConfig = {
      ...d, spec: item.text, line, column, io,
      path: d.target === null ? null : isAbsolute(d.target) ? d.target : resolve(dir, d.target),
    };
    const clash = byDevid.get(d.vdev.devid);
    if (clash) {
      report.error(line, `disk '${item.text}': vdev ${d.vdev.name} is the same device as ${clash.vdev.name} at ` +
        `line ${clash.line} (expected each disk to have its own vdev)`, column);
      continue;
    }
    byDevid.set(d.vdev.devid, disk);
    noteIgnoredDiskOptions(disk, report);
    disks.push(disk);
  }
  return disks;
}

/* Where this disk goes for this guest type; null after reporting an error. */
function placeDisk(d: DiskSpec, type: GuestType, item: Located, report: Report): IoPath | null {
  const { line, column } = item.loc;
  if (type !== 'hvm') return 'pv';
  const v = d.vdev;
  if (d.devtype === 'cdrom') {
    if (d.target === null) report.warn(line, `disk '${item.text}': an empty CD-ROM drive is not modelled; ignored`, column);
    return 'emulated';
  }
  if (v.kind === 'hd' && v.partition === 0) {
    if (d.readonly) {
      report.error(line, `disk '${item.text}': an emulated IDE disk cannot be read-only (qemu-xen refuses it too; ` +
        `expected access=rw, or a PV vdev such as xvd${String.fromCharCode(97 + (v.disk ?? 0))} for a read-only disk)`,
      column);
      return null;
    }
    return 'emulated';
  }
  if (v.kind === 'hd') {
    report.warn(line, `disk '${item.text}': ${v.name} is a partition, and only whole disks can be emulated ` +
      '(xen-vbd-interface(7)); it is offered as a PV disk only', column);
  } else if (v.kind === 'sd') {
    report.warn(line, `disk '${item.text}': ringvisor emulates no SCSI controller; ${v.name} is offered as a ` +
      'PV disk only (use hdX for the emulated IDE path)', column);
  }
  return 'pv';
}

function noteIgnoredDiskOptions(d: DiskConfig, report: Report): void {
  const ignored: string[] = [];
  if (d.backendtype !== null) ignored.push(`backendtype=${d.backendtype} (every backend is blkback, in Dom0 or the domain backend= names)`);
  if (d.script !== null) ignored.push(`script=${d.script} (no hotplug scripts)`);
  if (d.specification === 'virtio') ignored.push('specification=virtio (the disk is a Xen VBD)');
  if (d.colo) ignored.push('COLO parameters');
  if (ignored.length > 0) report.warn(d.line, `disk '${d.spec}': not modelled, ignored: ${ignored.join('; ')}`, d.column);
  if (d.format !== 'raw' && d.format !== 'empty') {
    report.warn(d.line, `disk '${d.spec}': ringvisor serves raw images only; a ${d.format} image cannot be booted`,
      d.column);
  }
}

export function interpretVifs(items: readonly Located[], type: GuestType, report: Report): VifConfig[] {
  const vifs: VifConfig[] = [];
  items.forEach((item, index) => {
    const { line, column } = item.loc;
    const r = parseVifSpec(item.text);
    if (!r.ok) {
      report.error(line, `vif '${item.text}': ${r.error}`, column);
      return;
    }
    for (const w of r.warnings) report.warn(line, `vif '${item.text}': ${w}`, column);
    const v = r.vif;
    let io: IoPath = 'pv';
    let model = v.model;
    if (type === 'hvm' && v.type !== 'vif') {
      io = 'emulated';
      if (model !== null && model !== EMULATED_NIC_MODEL) {
        report.warn(line, `vif '${item.text}': ringvisor emulates only an ${EMULATED_NIC_MODEL}-like NIC; ` +
          `model=${model} is served as ${EMULATED_NIC_MODEL}`, column);
      }
      model = EMULATED_NIC_MODEL;
    } else if (type !== 'hvm' && (v.model !== null || v.type === 'ioemu')) {
      report.warn(line, `vif '${item.text}': model= and type=ioemu apply to HVM guests only; ignored`, column);
    }
    const devid = v.devid ?? index;
    const clash = vifs.find((o) => o.devid === devid);
    if (clash) {
      report.error(line, `vif '${item.text}': devid ${devid} is also used by the vif at line ${clash.line} ` +
        '(expected each vif to have its own devid)', column);
      return;
    }
    const twin = v.mac === null ? undefined : vifs.find((o) => o.mac === v.mac);
    if (twin) {
      report.error(line, `vif '${item.text}': mac ${v.mac} is also used by the vif at line ${twin.line} ` +
        '(expected each vif to have its own MAC address)', column);
      return;
    }
    vifs.push({ ...v, spec: item.text, line, column, devid, model, io, bridge: v.bridge ?? 'xenbr0', mtu: v.mtu ?? 1500 });
  });
  return vifs;
}
