// Register-level scripts for the emulated-disk error tests: each drives the IDE channel the way
// a broken driver would, reads back the registers a driver looks at after the interrupt, and
// then checks that a correct command still works (the device recovered). They run in the guest
// (ide-guest.ts) on an idle IdeDisk's channel, whose handler leaves interrupts alone when idle.
import type { Kernel } from '../../shared/kernel/kernel.ts';
import {
  ATA_CMD_DSM, ATA_CMD_READ_DMA, ATA_CMD_READ_PIO, ATA_CMD_WRITE_DMA, ATA_DEVICE_OBS, ATA_NIEN, ATA_PRIMARY_CMD_BASE,
  ATA_REG, ATA_SRST,
} from '../../shared/public/hw/ata.ts';
import { BM_CMD_START, BM_CMD_WRITE, PRD_BOUNDARY, PRD_EOT } from '../../shared/public/hw/bmide.ts';
import { PAGE_SIZE } from '../../shared/public/xen.ts';
import type { IdeChannel } from '../../domu/ide/channel.ts';
import type { IdeDisk } from '../../domu/ide/disk.ts';
import { PrdTable } from '../../domu/ide/prd.ts';
import { digest } from './ide-workload.ts';
import { dataViewOf } from '../../shared/view.ts';

const DATA = ATA_PRIMARY_CMD_BASE + ATA_REG.data;

export interface RegsResult {
  status: number;
  error: number;
  bm?: number;
  /** A READ SECTORS of one sector worked afterwards. */
  recovered: boolean;
  extra?: Record<string, number>;
  digest?: string;
}

/** A page of guest RAM whose gfn satisfies `ok`, and its view. */
function pageWhere(k: Kernel, ok: (gfn: number) => boolean): number {
  const skipped: number[] = [];
  let gfn = k.pages.alloc();
  while (!ok(gfn)) { skipped.push(gfn); gfn = k.pages.alloc(); }
  for (const g of skipped) k.pages.release(g);
  return gfn;
}

async function recover(ch: IdeChannel): Promise<boolean> {
  const mark = ch.mark();
  ch.issue({ command: ATA_CMD_READ_PIO, lba: 0, count: 1, lba48: false });
  await ch.waitIrq(mark);
  if (ch.status() !== 0x48) return false;
  ch.readBlock(new Uint8Array(512), 0);
  return ch.altStatus() === 0x40;
}

/** After an interrupt: the ATA registers (Status acknowledges it), and the device's recovery. */
async function afterIrq(ch: IdeChannel, mark: number, bm = false): Promise<RegsResult> {
  await ch.waitIrq(mark);
  const bmst = bm ? ch.bmStatus() : undefined;
  if (bm) ch.bmWriteCommand(0);
  const status = ch.status();
  const error = ch.error();
  if (bmst !== undefined) ch.bmWriteStatus(bmst);
  return { status, error, bm: bmst, recovered: await recover(ch) };
}

/** One DMA command over a table built by `fill`, with the engine programmed `dir`. */
async function dmaWith(ch: IdeChannel, prd: PrdTable, prdGpa: number, dir: number, command: number, lba: number, count: number, fill: () => void): Promise<RegsResult> {
  fill();
  ch.bmSetup(prdGpa, dir);
  const mark = ch.mark();
  ch.issue({ command, lba, count, lba48: false });
  ch.bmWriteCommand(dir | BM_CMD_START);
  void prd;
  return afterIrq(ch, mark, true);
}

export async function runScript(k: Kernel, disk: IdeDisk, script: string): Promise<RegsResult> {
  const ch = disk.channel;
  const prd = new PrdTable(k);
  const data = k.pages.alloc();
  const read8 = async (fill: () => void, dir = BM_CMD_WRITE, at = prd.gpa) => dmaWith(ch, prd, at, dir, ATA_CMD_READ_DMA, 0, 8, fill);
  switch (script) {
    case 'out-of-range':
      return dmaWith(ch, prd, prd.gpa, BM_CMD_WRITE, ATA_CMD_READ_DMA, disk.sectors - 1, 2, () => prd.put(0, data * PAGE_SIZE, 1024, true));
    case 'read-only-write':
      return dmaWith(ch, prd, prd.gpa, 0, ATA_CMD_WRITE_DMA, 0, 8, () => prd.put(0, data * PAGE_SIZE, 4096, true));
    case 'unknown-command': {
      const mark = ch.mark();
      ch.issueNonData(0x01); // an opcode ATA reserves and this device does not implement
      return afterIrq(ch, mark);
    }
    case 'chs-addressing': {
      const mark = ch.mark();
      ch.issue({ command: ATA_CMD_READ_PIO, lba: 0, count: 1, lba48: false });
      // Rewrite the Device register without the LBA bit, then issue again: CHS is not offered.
      await ch.waitIrq(mark);
      ch.status();
      ch.readBlock(new Uint8Array(512), 0);
      ch.selectDevice(ATA_DEVICE_OBS);
      const m2 = ch.mark();
      ch.writeCommand(ATA_CMD_READ_PIO);
      return afterIrq(ch, m2);
    }
    case 'data-without-drq': {
      const mark = ch.mark();
      const v = k.cpu.inw(DATA);
      const r = await afterIrq(ch, mark);
      return { ...r, extra: { value: v } };
    }
    case 'data-8bit': {
      let mark = ch.mark();
      ch.issue({ command: ATA_CMD_READ_PIO, lba: 0, count: 1, lba48: false });
      await ch.waitIrq(mark);
      ch.status();
      mark = ch.mark();
      k.cpu.inb(DATA);
      return afterIrq(ch, mark);
    }
    case 'write-during-read': {
      let mark = ch.mark();
      ch.issue({ command: ATA_CMD_READ_PIO, lba: 0, count: 1, lba48: false });
      await ch.waitIrq(mark);
      ch.status();
      mark = ch.mark();
      k.cpu.outw(DATA, 0x1234); // data-out during a data-in transfer
      return afterIrq(ch, mark);
    }
    case 'command-during-transfer': {
      let mark = ch.mark();
      ch.issue({ command: ATA_CMD_READ_PIO, lba: 0, count: 2, lba48: false });
      await ch.waitIrq(mark);
      ch.status();
      for (let i = 0; i < 10; i++) k.cpu.inw(DATA);
      mark = ch.mark();
      ch.writeCommand(ATA_CMD_READ_PIO);
      const r = await afterIrq(ch, mark);
      return r;
    }
    case 'prd-no-eot': {
      // A table in the last 16 bytes before a 64 KiB line: two entries, neither marked EOT.
      const gfn = pageWhere(k, (g) => ((g + 1) * PAGE_SIZE) % PRD_BOUNDARY === 0);
      const view = dataViewOf(k.memory.page(gfn, true));
      const at = gfn * PAGE_SIZE + PAGE_SIZE - 16;
      return read8(() => {
        for (let i = 0; i < 2; i++) {
          view.setUint32(PAGE_SIZE - 16 + 8 * i, data * PAGE_SIZE, true);
          view.setUint16(PAGE_SIZE - 16 + 8 * i + 4, 512, true);
          view.setUint16(PAGE_SIZE - 16 + 8 * i + 6, 0, true);
        }
      }, BM_CMD_WRITE, at);
    }
    case 'prd-hole':
      // A region wholly where the guest has no memory (a physmap hole above RAM).
      return read8(() => prd.put(0, (k.si.nr_pages + 40) * PAGE_SIZE, 4096, true));
    case 'prd-into-hole': {
      // A region that starts in the guest's last RAM page and runs into what follows it (shared_info,
      // a Xen page the guest maps but does not own): the second half is not the guest's RAM.
      const end = k.si.nr_pages * PAGE_SIZE;
      return read8(() => prd.put(0, end - 2048, 4096, true));
    }
    case 'prd-too-short':
      return read8(() => prd.put(0, data * PAGE_SIZE, 2048, true));
    case 'prd-too-long':
      return read8(() => { prd.put(0, data * PAGE_SIZE, 4096, false); prd.put(1, data * PAGE_SIZE, 4096, true); });
    case 'prd-crosses-64k':
      return read8(() => prd.put(0, 16 * PAGE_SIZE - 2048, 4096, true));
    case 'prd-odd':
      return read8(() => prd.put(0, data * PAGE_SIZE + 1, 4096, true));
    case 'bm-direction':
      // READ DMA moves data into memory, but the engine is told to read memory (Read/Write = 0).
      return read8(() => prd.put(0, data * PAGE_SIZE, 4096, true), 0);
    case 'dsm-not-trim': {
      prd.put(0, data * PAGE_SIZE, 512, true);
      return dmaWith(ch, prd, prd.gpa, 0, ATA_CMD_DSM, 0, 1, () => undefined);
    }
    case 'prd-table-spans-pages': {
      // A valid table whose first entry is the last 8 bytes of one page and whose second is the
      // first 8 bytes of the next: the model reads the table across the page boundary.
      let g0 = k.pages.alloc();
      let g1 = k.pages.alloc();
      while (g1 !== g0 + 1 || (g1 * PAGE_SIZE) % PRD_BOUNDARY === 0) { g0 = g1; g1 = k.pages.alloc(); }
      const a = k.pages.alloc();
      const b = k.pages.alloc();
      const v0 = dataViewOf(k.memory.page(g0, true));
      const v1 = dataViewOf(k.memory.page(g1, true));
      v0.setUint32(PAGE_SIZE - 8, a * PAGE_SIZE, true); v0.setUint16(PAGE_SIZE - 4, PAGE_SIZE, true); v0.setUint16(PAGE_SIZE - 2, 0, true);
      v1.setUint32(0, b * PAGE_SIZE, true); v1.setUint16(4, PAGE_SIZE, true); v1.setUint16(6, PRD_EOT, true);
      ch.bmSetup(g0 * PAGE_SIZE + PAGE_SIZE - 8, BM_CMD_WRITE);
      const mark = ch.mark();
      ch.issue({ command: ATA_CMD_READ_DMA, lba: 0, count: 16, lba48: false });
      ch.bmWriteCommand(BM_CMD_WRITE | BM_CMD_START);
      const r = await afterIrq(ch, mark, true);
      const got = new Uint8Array(2 * PAGE_SIZE);
      got.set(k.memory.page(a, false), 0);
      got.set(k.memory.page(b, false), PAGE_SIZE);
      return { ...r, digest: digest(got) };
    }
    case 'srst': {
      ch.setDevctl(ATA_SRST);
      const during = ch.altStatus();
      ch.setDevctl(0);
      const status = ch.altStatus();
      const error = ch.error();
      const sig = [ATA_REG.nsector, ATA_REG.lbal, ATA_REG.lbam, ATA_REG.lbah].map((r) => k.cpu.inb(ATA_PRIMARY_CMD_BASE + r));
      return { status, error, recovered: await recover(ch), extra: { during, nsector: sig[0], lbal: sig[1], lbam: sig[2], lbah: sig[3] } };
    }
    case 'nien': {
      // With nIEN set the device completes without raising its line: no event arrives.
      ch.setDevctl(ATA_NIEN);
      const before = ch.interrupts;
      ch.issue({ command: ATA_CMD_READ_PIO, lba: 0, count: 1, lba48: false });
      const st = ch.altStatus();
      ch.readBlock(new Uint8Array(512), 0);
      const status = ch.status();
      ch.setDevctl(0);
      // Yield to the event loop a few times: any event would have been dispatched by now.
      for (let i = 0; i < 5; i++) await new Promise((r) => setImmediate(r));
      const events = ch.interrupts - before;
      return { status, error: ch.error(), extra: { drq: st, events }, recovered: await recover(ch) };
    }
    default:
      throw new Error(`unknown script ${script}`);
  }
}
