/*
 * Reading start_info at boot: what the domain builder tells a new kernel about itself.
 *
 * Xen: `struct start_info` (xen/include/public/xen.h); Linux reads it in
 * arch/x86/xen/enlighten_pv.c (xen_start_info), mini-os in arch/x86/setup.c.
 */
import type { GuestMemory } from '../public/memory.ts';
import { PAGE_SIZE, SIF_INITDOMAIN, SIF_PRIVILEGED, START_INFO_MAGIC, start_info } from '../public/xen.ts';

export interface StartInfo {
  magic: string;
  nr_pages: number;
  shared_info_gfn: number;
  privileged: boolean;
  initdomain: boolean;
  store_gfn: number;
  store_evtchn: number;
  console_gfn: number;
  console_evtchn: number;
  cmd_line: string;
  start_info_gfn: number;
}

export function readStartInfo(memory: GuestMemory, gfn: number): StartInfo {
  const page = new Uint8Array(PAGE_SIZE);
  memory.read(gfn * PAGE_SIZE, page);
  const v = new DataView(page.buffer);
  const cstr = (off: number, max: number) => {
    const bytes = page.subarray(off, off + max);
    const end = bytes.indexOf(0);
    return new TextDecoder().decode(end < 0 ? bytes : bytes.subarray(0, end));
  };
  const magic = cstr(start_info.magic, 32);
  if (magic !== START_INFO_MAGIC) throw new Error(`start_info at gfn ${gfn} has magic "${magic}", expected "${START_INFO_MAGIC}"`);
  const flags = v.getUint32(start_info.flags, true);
  return {
    magic,
    nr_pages: Number(v.getBigUint64(start_info.nr_pages, true)),
    shared_info_gfn: Number(v.getBigUint64(start_info.shared_info, true)),
    privileged: (flags & SIF_PRIVILEGED) !== 0,
    initdomain: (flags & SIF_INITDOMAIN) !== 0,
    store_gfn: Number(v.getBigUint64(start_info.store_mfn, true)),
    store_evtchn: v.getUint32(start_info.store_evtchn, true),
    console_gfn: Number(v.getBigUint64(start_info.console_mfn, true)),
    console_evtchn: v.getUint32(start_info.console_evtchn, true),
    cmd_line: cstr(start_info.cmd_line, start_info.MAX_GUEST_CMDLINE),
    start_info_gfn: gfn,
  };
}
