/*
 * The driver of the host's storage controller: one namespace of it, as a disk a backend can do
 * I/O on, by DMA between the disk and pages the driver's domain can reach.
 *
 * Xen/Linux: what Linux's nvme driver is to an NVMe drive the hypervisor assigned to the domain
 * (Dom0 as the hardware domain, or a driver domain with `pci = [...]`): it builds a command in its
 * own memory, names the data by bus address, and rings the doorbell; the IOMMU lets the device
 * reach only the domain's own frames, and the frames other domains granted it (which is how
 * blkback's DMA lands straight in a frontend's page). The device and its layout:
 * shared/public/hw/sc.ts, hypervisor/passthrough/storage-controller.ts.
 *
 * Which namespace: the backend directory's `physical-device` key, "<controller>:<nsid>" in hex,
 * written by the toolstack's hotplug step when it attached the image file to the controller
 * (Xen's block hotplug script writes physical-device as "major:minor" of the loop device it made).
 *
 * Use (one command at a time; the device completes it before the doorbell returns):
 *   begin(write, sector); region(gfn, offset, len) per piece of memory; run() → bytes moved.
 *   flush(); discard(sector, count) → sectors handled (a bounded piece; call again for the rest).
 * A failed command throws an Error naming its status (an I/O error, a read-only namespace, an
 * IOMMU fault): the backend turns that into an error response for its frontend, as it did for a
 * host I/O error. No host module: this file runs in any domain the controller is assigned to.
 */
import type { Kernel } from '../kernel.ts';
import {
  SC_MAX_PRP, SC_NS_READONLY, SC_OP_DEALLOCATE, SC_OP_FLUSH, SC_OP_IDENTIFY, SC_OP_READ, SC_OP_WRITE, SC_PRP_BYTES,
  SC_PRP_OFFSET, SC_STATUS_IO_ERROR, SC_STATUS_IOMMU_FAULT, SC_STATUS_INVALID, SC_STATUS_OK, SC_STATUS_READONLY,
  sc_command, set_prp,
} from '../../public/hw/sc.ts';

const HEADER_WORDS = SC_PRP_OFFSET >> 2;
const STATUS_NAMES: Record<number, string> = {
  [SC_STATUS_INVALID]: 'invalid command', [SC_STATUS_IO_ERROR]: 'medium error', [SC_STATUS_READONLY]: 'read-only namespace',
  [SC_STATUS_IOMMU_FAULT]: 'IOMMU fault (a DMA address outside this domain)',
};

/** "<controller>:<nsid>" in hex, as physical-device holds it; null if malformed. */
export function parsePhysicalDevice(s: string): { dev: number; nsid: number } | null {
  const m = /^([0-9a-f]+):([0-9a-f]+)$/i.exec(s);
  return m === null ? null : { dev: parseInt(m[1], 16), nsid: parseInt(m[2], 16) };
}

export function formatPhysicalDevice(dev: number, nsid: number): string {
  return `${dev.toString(16)}:${nsid.toString(16)}`;
}

export class ScDisk {
  readonly sectors: number;
  readonly readOnly: boolean;
  /** For log lines: the controller and namespace. */
  readonly path: string;
  private readonly gfn: number;
  private readonly page: Int32Array;
  /** The command is built here, privately, then copied onto the command page in one store. */
  private readonly cmd = sc_command.create();
  /** The whole command as it will be on the page: header (from cmd) and regions at their offsets. */
  private readonly image = new Int32Array((SC_PRP_OFFSET + SC_MAX_PRP * SC_PRP_BYTES) >> 2);
  private readonly imageView = new DataView(this.image.buffer);
  private nr = 0;
  private bytes = 0;
  private closed = false;

  constructor(private readonly k: Kernel, readonly dev: number, readonly nsid: number) {
    this.path = `sc${dev}n${nsid}`;
    this.gfn = k.pages.alloc();
    this.page = k.memory.pageWords(this.gfn, true);
    try {
      this.start(SC_OP_IDENTIFY, 0);
      this.ring();
    } catch (e) {
      this.close();
      throw e;
    }
    this.sectors = this.cmd.result;
    this.readOnly = (this.cmd.flags & SC_NS_READONLY) !== 0;
  }

  private start(op: number, sector: number): void {
    const c = this.cmd;
    c.clear();
    c.opcode = op;
    c.nsid = this.nsid;
    c.slba = sector;
    this.nr = 0;
    this.bytes = 0;
  }

  /** Start a read (the device writes memory) or write at `sector`. */
  begin(write: boolean, sector: number): void {
    this.start(write ? SC_OP_WRITE : SC_OP_READ, sector);
  }

  /** Add `len` bytes at `offset` of our frame `gfn` (a region may not cross its page). */
  region(gfn: number, offset: number, len: number): void {
    if (this.nr === SC_MAX_PRP) throw new Error(`${this.path}: more than ${SC_MAX_PRP} regions in one command`);
    set_prp(this.imageView, this.nr++, gfn, offset, len);
    this.bytes += len;
  }

  /** Ring the doorbell for the command begun; returns the bytes moved (or throws). */
  run(): number {
    this.cmd.nr_prp = this.nr;
    this.ring();
    return this.bytes;
  }

  flush(): void {
    this.start(SC_OP_FLUSH, 0);
    this.ring();
  }

  /** Deallocate from `sector`: at most one piece of the device's work; returns the sectors handled. */
  discard(sector: number, count: number): number {
    this.start(SC_OP_DEALLOCATE, sector);
    this.cmd.nr_sectors = count;
    this.ring();
    return this.cmd.result;
  }

  /** Copy the command onto its page, ring, read the status back (the device wrote the header). */
  private ring(): void {
    if (this.closed) throw new Error(`${this.path} is closed`);
    // Word by word onto the page: nothing allocated per command.
    const page = this.page;
    const img = this.image;
    const cw = this.cmd.words;
    for (let i = 0; i < HEADER_WORDS; i++) img[i] = cw[i];
    const end = HEADER_WORDS + this.nr * (SC_PRP_BYTES >> 2);
    for (let i = 0; i < end; i++) page[i] = img[i];
    const rc = this.k.hypercall.pci_doorbell(this.dev, this.gfn);
    if (rc < 0) throw new Error(`${this.path}: the controller is not assigned to this domain (${rc})`);
    if (rc !== SC_STATUS_IOMMU_FAULT) for (let i = 0; i < HEADER_WORDS; i++) cw[i] = page[i];
    if (rc !== SC_STATUS_OK) throw new Error(`${this.path}: ${STATUS_NAMES[rc] ?? `status ${rc}`}`);
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.k.pages.release(this.gfn);
  }
}
