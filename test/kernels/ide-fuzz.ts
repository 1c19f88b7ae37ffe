// The guest's half of the IDE register fuzz (test/fuzz/ide-ports.ts): play a random sequence of
// port accesses against the emulated controller, with bus-master descriptor tables that point
// only into a 64 KiB "DMA window" of the guest's RAM or far outside it; then put the controller
// back the way a driver's error handler would (stop the engine, software reset) and check that a
// plain READ SECTORS works and that the guest's other pages (the canary) were not touched.
import type { Kernel } from '../../shared/kernel/kernel.ts';
import { ATA_BSY, ATA_CMD_READ_PIO, ATA_DRQ, ATA_ERR, ATA_NIEN, ATA_PRIMARY_CMD_BASE, ATA_PRIMARY_CTL_BASE, ATA_REG, ATA_SRST } from '../../shared/public/hw/ata.ts';
import { BM_STATUS, PIIX_BMIDE_BASE, PRD_BOUNDARY } from '../../shared/public/hw/bmide.ts';
import { PAGE_SIZE } from '../../shared/public/xen.ts';
import { digest, rng } from './ide-workload.ts';

/** One port access; `value` of a write to BM_PRDT is resolved by `prdt` below. */
export interface PortOp { port: number; size: 1 | 2 | 4; write: boolean; value: number; repeat: number }
/** A descriptor: `region` bytes at `offset` of the window (count 0 means 64 KiB, as [BMIDE] says), or far outside RAM. */
export interface PrdEntry { far: boolean; offset: number; count: number; eot: boolean }
export interface PortFuzzCase {
  ops: PortOp[];
  /**
   * Descriptor tables, written at their window offsets before the ops run. A table with `fit`
   * has its counts rescaled to add up to exactly `fit` bytes (a transfer's size, which the
   * engine insists on) and EOT on its last entry only, so that transfers really happen; its
   * regions stay inside the window unless `cross`.
   */
  tables: { at: number; entries: PrdEntry[]; fit?: number; cross?: boolean }[];
  /** Bytes of the window other than the tables (what a DMA write-out reads, TRIM's ranges). */
  fillSeed: number;
}
export interface PortFuzzResult { recovered: string; canaryIntact: boolean; reads: number }

const WINDOW_PAGES = PRD_BOUNDARY / PAGE_SIZE;
const CANARY_PAGES = 8;
/** Far outside any guest's RAM: a DMA there must be refused, never land anywhere. */
export const FAR_GPA = 0x8000_0000;

interface Arena { window: number; canary: number[]; canaryDigest: string }
const arenas = new WeakMap<Kernel, Arena>();

/** A 64 KiB-aligned run of 16 pages of our RAM, and canary pages allocated right after it. */
function arena(k: Kernel): Arena {
  let a = arenas.get(k);
  if (a) return a;
  // The canary pages are the ones right after the window: a DMA that ran past a descriptor's
  // end would land there first.
  const need = WINDOW_PAGES + CANARY_PAGES;
  const got = new Set<number>();
  let base = -1;
  while (base < 0) {
    const g = k.pages.alloc();
    got.add(g);
    for (let b = g - (g % WINDOW_PAGES); b >= g - need && b >= 0; b -= WINDOW_PAGES) {
      if (Array.from({ length: need }, (_, i) => b + i).every((x) => got.has(x))) { base = b; break; }
    }
  }
  for (const g of got) if (g < base || g >= base + need) k.pages.release(g);
  const canary = Array.from({ length: CANARY_PAGES }, (_, i) => base + WINDOW_PAGES + i);
  a = { window: base * PAGE_SIZE, canary, canaryDigest: '' };
  arenas.set(k, a);
  return a;
}

/** Fill the canary pages afresh (each case starts from a clean one, so a failure shrinks to its own case). */
function setCanary(k: Kernel, a: Arena): void {
  const r = rng(0xc0ffee);
  const bytes = new Uint8Array(PAGE_SIZE);
  for (const g of a.canary) { for (let i = 0; i < PAGE_SIZE; i++) bytes[i] = r(); k.memory.write(g * PAGE_SIZE, bytes); }
  a.canaryDigest = canaryDigest(k, a.canary);
}

function canaryDigest(k: Kernel, pages: number[]): string {
  const all = new Uint8Array(pages.length * PAGE_SIZE);
  pages.forEach((g, i) => k.memory.read(g * PAGE_SIZE, all.subarray(i * PAGE_SIZE, (i + 1) * PAGE_SIZE)));
  return digest(all);
}

export async function runPortFuzz(k: Kernel, c: PortFuzzCase): Promise<PortFuzzResult> {
  const a = arena(k);
  setCanary(k, a);
  const cpu = k.cpu;
  // The window: random bytes, then the descriptor tables.
  const r = rng(c.fillSeed);
  const win = new Uint8Array(PRD_BOUNDARY);
  for (let i = 0; i < win.length; i++) win[i] = r();
  const dv = new DataView(win.buffer);
  for (const t of c.tables) {
    const entries = t.fit === undefined ? t.entries : fitted(t.entries, t.fit, t.cross ?? false);
    entries.forEach((e, i) => {
      const o = (t.at & ~7) + i * 8;
      if (o + 8 > win.length) return;
      dv.setUint32(o, e.far ? FAR_GPA + e.offset : a.window + e.offset, true);
      dv.setUint16(o + 4, e.count, true);
      dv.setUint16(o + 6, e.eot ? 0x8000 : 0, true);
    });
  }
  k.memory.write(a.window, win);

  let reads = 0;
  const prdtPort = PIIX_BMIDE_BASE + 4;
  for (const op of c.ops) {
    for (let n = 0; n < op.repeat; n++) {
      if (op.write) {
        // A descriptor-table address: inside the window (value < 64 Ki) or far away.
        const v = op.port === prdtPort && op.size === 4 ? prdtValue(a, c, op.value) : op.value;
        if (op.size === 1) cpu.outb(op.port, v); else if (op.size === 2) cpu.outw(op.port, v); else cpu.outl(op.port, v);
      } else {
        reads++;
        if (op.size === 1) cpu.inb(op.port); else if (op.size === 2) cpu.inw(op.port); else cpu.inl(op.port);
      }
    }
  }

  // A driver's error handling: stop the engine, clear its status, reset the device, then read.
  cpu.outb(PIIX_BMIDE_BASE, 0);
  cpu.outb(PIIX_BMIDE_BASE + BM_STATUS, 0x06);
  const devctl = ATA_PRIMARY_CTL_BASE;
  cpu.outb(devctl, ATA_SRST | ATA_NIEN);
  cpu.outb(devctl, ATA_NIEN);
  const recovered = readSector0(k);
  cpu.outb(devctl, 0);
  return { recovered, canaryIntact: canaryDigest(k, a.canary) === a.canaryDigest, reads };
}

/** `entries` with counts that add up to `bytes` (even, at most 64 KiB each), EOT on the last. */
function fitted(entries: PrdEntry[], bytes: number, cross: boolean): PrdEntry[] {
  const n = Math.max(entries.length, Math.ceil(bytes / PRD_BOUNDARY));
  const part = Math.floor(bytes / n / 2) * 2;
  return Array.from({ length: n }, (_, i) => {
    const e = entries[i % entries.length]!;
    const len = i === n - 1 ? bytes - part * (n - 1) : part;
    const offset = cross || e.far ? e.offset : Math.min(e.offset, PRD_BOUNDARY - len) & ~1;
    return { far: e.far, offset, count: len & 0xffff, eot: i === n - 1 };
  });
}

/**
 * What a write to the descriptor-table register names: one of the case's tables (value < 16),
 * another place in the window (value < 64 Ki), or somewhere far outside RAM.
 */
function prdtValue(a: Arena, c: PortFuzzCase, value: number): number {
  if (value < 16 && c.tables.length > 0) return a.window + (c.tables[value % c.tables.length]!.at & ~7);
  return value < PRD_BOUNDARY ? a.window + value : FAR_GPA + (value & 0xffff);
}

/** READ SECTORS of LBA 0 by polling Alternate Status (interrupts off): 'ok' or what went wrong. */
function readSector0(k: Kernel): string {
  const cpu = k.cpu;
  const base = ATA_PRIMARY_CMD_BASE;
  cpu.outb(base + ATA_REG.nsector, 1);
  cpu.outb(base + ATA_REG.lbal, 0);
  cpu.outb(base + ATA_REG.lbam, 0);
  cpu.outb(base + ATA_REG.lbah, 0);
  cpu.outb(base + ATA_REG.device, 0xe0);
  cpu.outb(base + ATA_REG.command, ATA_CMD_READ_PIO);
  let st = 0;
  for (let i = 0; i < 10_000; i++) {
    st = cpu.inb(ATA_PRIMARY_CTL_BASE);
    if ((st & ATA_BSY) === 0) break;
  }
  if ((st & (ATA_BSY | ATA_DRQ | ATA_ERR)) !== ATA_DRQ) return `status 0x${st.toString(16)} after READ SECTORS`;
  for (let i = 0; i < 256; i++) cpu.inw(base);
  st = cpu.inb(base + ATA_REG.status);
  return (st & (ATA_BSY | ATA_DRQ | ATA_ERR)) === 0 ? 'ok' : `status 0x${st.toString(16)} after the data`;
}
