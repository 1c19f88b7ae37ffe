/*
 * The storage controller itself: the hardware behind every disk, doing DMA between image files
 * and the memory of the domain that owns it, through the IOMMU.
 *
 * Xen: none; this is the machine. Xen assigns a real controller (an NVMe drive, an AHCI HBA) to
 * the hardware domain or, with `pci = [...]`, to a guest or a driver domain, and that domain's
 * driver (Linux's nvme) programs it. The layout it reads is shared/public/hw/sc.ts; the driver is
 * shared/kernel/drivers/sc-disk.ts; the IOMMU and the device table are ./pci.ts.
 *
 * Namespaces. The controller's disks are namespaces, each one image file, attached by the control
 * domain (domctl storage_attach, from the toolstack's hotplug step, as Xen's block script sets up
 * a loop device and writes physical-device) and detached when the vbd goes. The table is shared by
 * every thread; the file is opened once, in the control thread, and its descriptor is used from
 * whichever vCPU thread rings the doorbell (descriptors belong to the process).
 *
 * A command, in the thread of the vCPU that rang the doorbell (the device is as fast as the
 * calls it makes; a real controller works beside the CPU, this one in its place, synchronously):
 *   1. only the owner's doorbell is mapped: anyone else is refused (EPERM);
 *   2. fetch the command page by DMA (through the IOMMU) and copy it out: the device works on its
 *      own copy, as hardware does, so a driver changing the page meanwhile changes nothing;
 *   3. translate every region before moving a byte: one address the IOMMU refuses fails the whole
 *      command with SC_STATUS_IOMMU_FAULT, and no memory anywhere has changed;
 *   4. one preadv / pwritev between the file and the translated frames (data is copied once,
 *      file ↔ the owner's frame, which for blkback is the frontend's granted page);
 *   5. write status (and result) back into the command page by DMA.
 * Counters: DMA operations and IOMMU faults per device (./pci.ts); a fault is logged by the
 * caller once per command (hypervisor/hypercall.ts).
 *
 * Deallocate (discard) follows dom0/lib/raw-image.ts's policy, which it cannot import (the
 * hypervisor depends on nothing above it): a range reaching the end of the file is cut off by
 * truncation; elsewhere only 4 KiB blocks holding data are zeroed, at most 1 MiB per command
 * (result = sectors done), so a sparse image never grows and the caller bounds its work.
 */
import {
  closeSync, fstatSync, fsyncSync, ftruncateSync, openSync, readSync, readvSync, writeSync, writevSync,
} from 'node:fs';
import {
  SC_MAX_PRP, SC_NS_READONLY, SC_OP_DEALLOCATE, SC_OP_FLUSH, SC_OP_IDENTIFY, SC_OP_READ, SC_OP_WRITE, SC_PRP_BYTES, SC_PRP_OFFSET,
  SC_STATUS_INVALID, SC_STATUS_IO_ERROR, SC_STATUS_IOMMU_FAULT, SC_STATUS_OK, SC_STATUS_READONLY, prp_gfn, prp_len,
  prp_offset, sc_command, PCI_STORAGE_CONTROLLERS,
} from '../../shared/public/hw/sc.ts';
import { PAGE_SIZE } from '../../shared/public/xen.ts';
import type { HypervisorState } from '../state.ts';
import { PCI_NS_BASE, PD, iommu_translate, pciWord } from './pci.ts';

/**
 * Namespace table entries after the device words: fd, sectors (low, high), flags, controller, and
 * how many commands are using it now (detach waits for 0 before it closes the file, so a
 * descriptor is never closed, and perhaps reused by the next open, under a command in flight).
 */
const NS = { FD: 0, SECTORS_LO: 1, SECTORS_HI: 2, FLAGS: 3, DEV: 4, BUSY: 5, WORDS: 6 } as const;
export const MAX_NAMESPACES = 255;
const NS_USED = 0x100;
const ns = (nsid: number, w: number) => PCI_NS_BASE + nsid * NS.WORDS + w;
const SECTOR = 512;
const DEALLOCATE_PIECE_SECTORS = 2048;
const ZEROS = new Uint8Array(PAGE_SIZE);
const HEADER_WORDS = SC_PRP_OFFSET >> 2;

/* ---- the control domain's side (domctls, control thread) ---- */

/** storage_attach: the image file at `path` becomes a namespace of controller `dev`. Returns its nsid (1..255). */
export function sc_attach(hv: HypervisorState, dev: number, path: string, readOnly: boolean): number {
  if (!PCI_STORAGE_CONTROLLERS.includes(dev)) throw new Error(`device ${dev} is not a storage controller`);
  let nsid = 1;
  while (nsid <= MAX_NAMESPACES && (hv.pci[ns(nsid, NS.FLAGS)] & NS_USED) !== 0) nsid++;
  if (nsid > MAX_NAMESPACES) throw new Error(`storage controller ${dev}: all ${MAX_NAMESPACES} namespaces are in use`);
  const fd = openSync(path, readOnly ? 'r' : 'r+');
  const sectors = Math.floor(fstatSync(fd).size / SECTOR);
  hv.pci[ns(nsid, NS.FD)] = fd;
  hv.pci[ns(nsid, NS.SECTORS_LO)] = sectors % 2 ** 32 | 0;
  hv.pci[ns(nsid, NS.SECTORS_HI)] = Math.floor(sectors / 2 ** 32);
  hv.pci[ns(nsid, NS.DEV)] = dev;
  Atomics.store(hv.pci, ns(nsid, NS.FLAGS), NS_USED | (readOnly ? SC_NS_READONLY : 0));
  return nsid;
}

/** storage_detach: the namespace goes, and its file is closed. */
export function sc_detach(hv: HypervisorState, nsid: number): void {
  if (!(nsid >= 1 && nsid <= MAX_NAMESPACES) || (hv.pci[ns(nsid, NS.FLAGS)] & NS_USED) === 0) throw new Error(`no namespace ${nsid}`);
  Atomics.store(hv.pci, ns(nsid, NS.FLAGS), 0);
  const busy = ns(nsid, NS.BUSY);
  for (let b = Atomics.load(hv.pci, busy); b > 0; b = Atomics.load(hv.pci, busy)) Atomics.wait(hv.pci, busy, b, 1);
  closeSync(hv.pci[ns(nsid, NS.FD)]);
}

/** Host shutdown: every namespace's file closed. */
export function sc_detach_all(hv: HypervisorState): void {
  for (let nsid = 1; nsid <= MAX_NAMESPACES; nsid++) if ((hv.pci[ns(nsid, NS.FLAGS)] & NS_USED) !== 0) sc_detach(hv, nsid);
}

export function sc_namespaces(hv: HypervisorState): number {
  let n = 0;
  for (let nsid = 1; nsid <= MAX_NAMESPACES; nsid++) if ((hv.pci[ns(nsid, NS.FLAGS)] & NS_USED) !== 0) n++;
  return n;
}

/* ---- the doorbell (the owner's vCPU thread) ---- */

/** One per thread: the command copy, the iovec, and a view per machine frame once it is used. */
class ControllerContext {
  readonly cmd = sc_command.create();
  readonly page = new Uint8Array(PAGE_SIZE);
  readonly words = new Int32Array(this.page.buffer);
  readonly dv = new DataView(this.page.buffer);
  readonly iov: Uint8Array[] = [];
  readonly mfns = new Int32Array(SC_MAX_PRP);
  private readonly frames: (Uint8Array | undefined)[] = [];
  scratch: Buffer | null = null;

  constructor(private readonly hv: HypervisorState) {}

  frame(mfn: number): Uint8Array {
    return (this.frames[mfn] ??= this.hv.mem8.subarray(mfn * PAGE_SIZE, (mfn + 1) * PAGE_SIZE));
  }
}
let ctx: ControllerContext | null = null;

/** The outcome of a doorbell, for the caller's log: the status, and the refused address on a fault. */
export interface DoorbellResult { status: number; faultGfn: number }
const result: DoorbellResult = { status: 0, faultGfn: -1 };

/**
 * The owner rang `dev`'s doorbell with its command page at bus address `cmdGfn` (the caller has
 * checked it is the owner). Returns the status it also wrote back.
 */
export function sc_doorbell(hv: HypervisorState, dev: number, owner: number, cmdGfn: number): DoorbellResult {
  const c = (ctx ??= new ControllerContext(hv));
  result.faultGfn = -1;
  const cmdMfn = iommu_translate(hv, dev, owner, cmdGfn, true);
  if (cmdMfn < 0) return fault(cmdGfn);
  // The device's own copy of the command: the header, then the regions it names (no double fetch).
  // Word by word from machine memory: nothing allocated per command.
  const mem = hv.mem32;
  const base = cmdMfn * (PAGE_SIZE >> 2);
  const w = c.words;
  const cw = c.cmd.words;
  for (let i = 0; i < HEADER_WORDS; i++) cw[i] = w[i] = mem[base + i];
  const n = Math.min(c.cmd.nr_prp, SC_MAX_PRP);
  const end = HEADER_WORDS + n * (SC_PRP_BYTES >> 2);
  for (let i = HEADER_WORDS; i < end; i++) w[i] = mem[base + i];
  const status = execute(hv, c, dev, owner);
  if (status === SC_STATUS_IOMMU_FAULT) return result;
  // Write the header back by DMA: status, result, and IDENTIFY's flags.
  c.cmd.status = status;
  for (let i = 0; i < HEADER_WORDS; i++) mem[base + i] = cw[i];
  Atomics.add(hv.pci, pciWord(dev, PD.DMA_OPS), 1);
  result.status = status;
  return result;
}

function fault(gfn: number): DoorbellResult {
  result.status = SC_STATUS_IOMMU_FAULT;
  result.faultGfn = gfn;
  return result;
}

function execute(hv: HypervisorState, c: ControllerContext, dev: number, owner: number): number {
  const cmd = c.cmd;
  cmd.result = 0;
  const nsid = cmd.nsid;
  if (!(nsid >= 1 && nsid <= MAX_NAMESPACES)) return SC_STATUS_INVALID;
  const busy = ns(nsid, NS.BUSY);
  Atomics.add(hv.pci, busy, 1);
  try {
    // Checked after taking the busy count: a detach clears the flags first, then waits for 0.
    const flags = Atomics.load(hv.pci, ns(nsid, NS.FLAGS));
    if ((flags & NS_USED) === 0 || hv.pci[ns(nsid, NS.DEV)] !== dev) return SC_STATUS_INVALID;
    return executeOn(hv, c, dev, owner, nsid, flags);
  } finally {
    if (Atomics.sub(hv.pci, busy, 1) === 1) Atomics.notify(hv.pci, busy);
  }
}

function executeOn(hv: HypervisorState, c: ControllerContext, dev: number, owner: number, nsid: number, flags: number): number {
  const cmd = c.cmd;
  const fd = hv.pci[ns(nsid, NS.FD)];
  const sectors = (hv.pci[ns(nsid, NS.SECTORS_LO)] >>> 0) + hv.pci[ns(nsid, NS.SECTORS_HI)] * 2 ** 32;
  const readOnly = (flags & SC_NS_READONLY) !== 0;
  try {
    switch (cmd.opcode) {
      case SC_OP_IDENTIFY:
        cmd.result = sectors;
        cmd.flags = readOnly ? SC_NS_READONLY : 0;
        return SC_STATUS_OK;
      case SC_OP_FLUSH:
        fsyncSync(fd);
        return SC_STATUS_OK;
      case SC_OP_READ:
      case SC_OP_WRITE:
        return readWrite(hv, c, dev, owner, fd, sectors, readOnly);
      case SC_OP_DEALLOCATE:
        if (readOnly) return SC_STATUS_READONLY;
        return deallocate(c, fd, sectors);
      default:
        return SC_STATUS_INVALID;
    }
  } catch {
    return SC_STATUS_IO_ERROR;
  }
}

function readWrite(hv: HypervisorState, c: ControllerContext, dev: number, owner: number, fd: number, sectors: number, readOnly: boolean): number {
  const cmd = c.cmd;
  const write = cmd.opcode === SC_OP_WRITE;
  if (write && readOnly) return SC_STATUS_READONLY;
  const n = cmd.nr_prp;
  if (n === 0 || n > SC_MAX_PRP) return SC_STATUS_INVALID;
  // Translate every region first: a fault moves nothing.
  let bytes = 0;
  for (let i = 0; i < n; i++) {
    const off = prp_offset(c.dv, i);
    const len = prp_len(c.dv, i);
    if (len === 0 || off + len > PAGE_SIZE) return SC_STATUS_INVALID;
    const gfn = prp_gfn(c.dv, i);
    const mfn = iommu_translate(hv, dev, owner, gfn, !write);
    if (mfn < 0) {
      fault(gfn);
      return SC_STATUS_IOMMU_FAULT;
    }
    c.mfns[i] = mfn;
    bytes += len;
  }
  if (bytes % SECTOR !== 0 || !Number.isSafeInteger(cmd.slba) || cmd.slba + bytes / SECTOR > sectors) return SC_STATUS_INVALID;
  const iov = c.iov;
  iov.length = 0;
  for (let i = 0; i < n; i++) {
    const page = c.frame(c.mfns[i]);
    const off = prp_offset(c.dv, i);
    const len = prp_len(c.dv, i);
    iov.push(off === 0 && len === PAGE_SIZE ? page : page.subarray(off, off + len));
  }
  const done = write ? writevSync(fd, iov, cmd.slba * SECTOR) : readvSync(fd, iov, cmd.slba * SECTOR);
  iov.length = 0;
  return done === bytes ? SC_STATUS_OK : SC_STATUS_IO_ERROR;
}

/** One bounded piece of a deallocate (see the header); result = sectors handled. */
function deallocate(c: ControllerContext, fd: number, sectors: number): number {
  const cmd = c.cmd;
  const count = cmd.nr_sectors;
  if (!Number.isSafeInteger(cmd.slba) || cmd.slba + count > sectors) return SC_STATUS_INVALID;
  if (count === 0) return SC_STATUS_OK;
  const start = cmd.slba * SECTOR;
  const fileBytes = sectors * SECTOR;
  const st = fstatSync(fd);
  if (st.isFile() && (cmd.slba + count) * SECTOR >= fileBytes) {
    ftruncateSync(fd, start);
    ftruncateSync(fd, fileBytes);
    cmd.result = count;
    return SC_STATUS_OK;
  }
  const n = Math.min(count, DEALLOCATE_PIECE_SECTORS);
  cmd.result = n;
  if (st.isFile() && st.blocks === 0) return SC_STATUS_OK; // nothing allocated: all zeros already
  const buf = (c.scratch ??= Buffer.alloc(DEALLOCATE_PIECE_SECTORS * SECTOR));
  const got = readSync(fd, buf, 0, n * SECTOR, start);
  for (let off = 0; off < got; off += PAGE_SIZE) {
    const m = Math.min(PAGE_SIZE, got - off);
    let zero = true;
    for (let i = off; i < off + m; i++) if (buf[i] !== 0) { zero = false; break; }
    if (!zero) writeSync(fd, ZEROS, 0, m, start + off);
  }
  return SC_STATUS_OK;
}
