/*
 * A virtual block device's Linux name from its device number: xvda for 51712 (202:0), hda for
 * 768 (3:0), sda for 2048 (8:0), and the extended scheme's xvd<letters> for (1 << 28) | (n << 8).
 *
 * Xen: docs/misc/vbd-interface.pandoc (the vdev numbering the toolstack writes as the device's
 * id); Linux: xen-blkfront.c's xlvbd_alloc_gendisk and its xen_translate_vdev naming.
 */

/** The device number → its Linux name (xvda = 202:0 = 51712). */
export function vbdName(devid: number): string {
  const letter = (n: number): string => (n < 26 ? String.fromCharCode(97 + n) : letter(Math.floor(n / 26) - 1) + String.fromCharCode(97 + (n % 26)));
  if ((devid >> 28) === 1) return `xvd${letter((devid >> 8) & 0xfffff)}`;
  if ((devid >> 8) === 202) return `xvd${letter((devid >> 4) & 15)}`;
  if ((devid >> 8) === 8) return `sd${letter((devid >> 4) & 15)}`;
  if ((devid >> 8) === 3) return `hd${letter((devid >> 6) & 1)}`;
  if ((devid >> 8) === 22) return `hd${letter(2 + ((devid >> 6) & 1))}`;
  return `vbd${devid}`;
}
