/*
 * Virtual disk names (vdev) and the device numbers they encode.
 *
 * Xen: docs/man/xen-vbd-interface.7.pandoc (the naming scheme and its xenstore encoding) and
 * libxl__device_disk_dev_number / device_virtdisk_matches in tools/libs/light/libxl_device.c
 * (what libxl actually accepts, which this follows where the two differ). The number becomes the
 * device's id in xenstore: /local/domain/<fe>/device/vbd/<number>/...
 *
 *   xvdX[N] or dDpP   Xen virtual disk     disk <= 15, part <= 15:  202 << 8 | disk << 4 | part
 *                                          beyond that:             1 << 28 | disk << 8 | part
 *   hdX[N]            IDE disk, X in a-d   (disk < 2 ? 3 : 22) << 8 | (disk & 1) << 6 | part
 *   sdX[N]            SCSI disk, X in a-p  8 << 8 | disk << 4 | part
 *   a plain number    the xenstore number itself (legacy), decimal, 0x hex or 0 octal
 *
 * So xvda = 51712, xvdb = 51728, xvda1 = 51713, hda = 768, hdb = 832, hdc = 5632, sda = 2048.
 * Letters count like spreadsheet columns (a..z, aa..): xvdaa is disk 26. Partition 0 is the whole
 * disk; leading zeros in a partition number are refused.
 *
 * Whether a disk reaches the guest as a PV device or through the emulated controller is not
 * decided here: it depends on the guest type too (see diskspec.ts).
 */
import { strtol } from './xlcfg-get.ts';

export type VdevKind = 'xvd' | 'hd' | 'sd' | 'numeric';

export interface Vdev {
  /** As written in the config. */
  name: string;
  kind: VdevKind;
  /** Disk and partition numbers; null for the legacy numeric form, which libxl does not decode. */
  disk: number | null;
  partition: number | null;
  /** The xenstore device number (libxl's devid for the vbd). */
  devid: number;
}

const XVD_MAX_DISK = (1 << 20) - 1;
const XVD_MAX_PART = 255;
const INT_MAX = 0x7fffffff;

/** Decodes a vdev as libxl does; null when libxl would answer -1 (not a disk name it knows). */
export function parseVdev(name: string): Vdev | null {
  const dForm = /^d([0-9]+)p([0-9]+)$/.exec(name);
  const xvd = dForm
    ? { disk: Number(dForm[1]), partition: Number(dForm[2]) }
    : matchDiskName(name, 'xvd', XVD_MAX_DISK, XVD_MAX_PART);
  if (xvd && xvd.disk <= XVD_MAX_DISK && xvd.partition <= XVD_MAX_PART) {
    const devid = xvd.disk <= 15 && xvd.partition <= 15
      ? (202 << 8) | (xvd.disk << 4) | xvd.partition
      : (1 << 28) | (xvd.disk << 8) | xvd.partition;
    return { name, kind: 'xvd', ...xvd, devid };
  }

  // libxl tries the plain number before hd and sd, so "768" is a number, not a name.
  const n = strtol(name);
  if (typeof n === 'number' && n >= 0 && n <= INT_MAX && !/^\s/.test(name)) {
    return { name, kind: 'numeric', disk: null, partition: null, devid: n };
  }

  const hd = matchDiskName(name, 'hd', 3, 63);
  if (hd) {
    const devid = ((hd.disk < 2 ? 3 : 22) << 8) | ((hd.disk & 1) << 6) | hd.partition;
    return { name, kind: 'hd', ...hd, devid };
  }
  const sd = matchDiskName(name, 'sd', 15, 15);
  if (sd) return { name, kind: 'sd', ...sd, devid: (8 << 8) | (sd.disk << 4) | sd.partition };
  return null;
}

/*
 * libxl's device_virtdisk_matches: prefix, then letters read as a bijective base-26 number,
 * then an optional partition number without leading zeros. libxl lets a bare prefix ("xvd")
 * through as disk -1; this requires at least one letter.
 */
function matchDiskName(
  name: string, prefix: string, maxDisk: number, maxPart: number,
): { disk: number; partition: number } | null {
  if (!name.startsWith(prefix)) return null;
  let i = prefix.length;
  let disk = -1;
  while (i < name.length && name[i]! >= 'a' && name[i]! <= 'z') {
    disk = (disk + 1) * 26 + (name.charCodeAt(i) - 97);
    if (disk > maxDisk) return null;
    i++;
  }
  if (disk < 0) return null;
  const rest = name.slice(i);
  if (rest === '') return { disk, partition: 0 };
  if (!/^[1-9][0-9]*$/.test(rest)) return null;
  const partition = Number(rest);
  return partition <= maxPart ? { disk, partition } : null;
}

/** What a reader should write instead of a bad vdev: used in error messages. */
export const VDEV_EXPECTED = 'a virtual disk name such as xvda, xvdb1, hda, hdc or sda, as in xen-vbd-interface(7)';
