/*
 * The docs site's first page is a real trace: at build time a small host runs one PV guest and
 * one emulated (IDE DMA) guest, each reading a few blocks of its disk, with every trace class on
 * (xentrace -e all), and the records become Trace Event JSON exactly as `ringvisor trace` writes
 * them (dom0/lib/trace-json.ts). ./request-path.ts then picks one whole request of each kind.
 *
 * Xen: what a reader would do with xentrace and xenalyze on a real host, done once per build so
 * the page always shows the code as it is: a trace point that moves, or a path that changes,
 * changes the page.
 *
 * Small on purpose (a 1 MiB image, eight 4 KiB reads per guest, one at a time) so `npm run docs`
 * stays quick and each request's flow stands alone on the timeline, with no other request in
 * flight beside it.
 */
import { closeSync, mkdtempSync, openSync, rmSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { BlockHost } from '../../scenarios/block/harness.ts';
import type { BlockOpStep, DiskPath } from '../../scenarios/block/protocol.ts';
import { toTraceEvents, type TraceFile } from '../../dom0/lib/trace-json.ts';
import { TRC_ALL } from '../../shared/public/trace.ts';
import { TraceRecording } from '../trace/record.ts';

export interface RecordedPaths {
  trace: TraceFile;
  /** The guests' domain ids, by path. */
  guests: Record<'pv' | 'emu-dma', number>;
}

const READS: BlockOpStep[] = Array.from({ length: 8 }, (_, i) => ({ op: 'read', sector: 64 + i * 8, count: 8 }));

/** Boot a host, run the two guests one after the other under the trace, and return the trace. */
export async function recordRequestPaths(): Promise<RecordedPaths> {
  const dir = mkdtempSync(join(tmpdir(), 'rv-docs-trace-'));
  const image = join(dir, 'disk.img');
  const fd = openSync(image, 'w');
  writeSync(fd, Buffer.alloc(1 << 20, 0x5a));
  closeSync(fd);
  const host = await BlockHost.boot(160);
  const rec = new TraceRecording(TRC_ALL);
  const guests = { pv: -1, 'emu-dma': -1 };
  try {
    for (const path of ['pv', 'emu-dma'] as DiskPath[]) {
      const g = await host.runGuest({ image, path, readOnly: true, memoryMiB: 32, tasks: [{ kind: 'ops', steps: READS }] });
      const bad = g.tasks.find((t) => t.error !== null || t.result?.kind !== 'ops' || !t.result.result.every((o) => o.ok));
      if (bad) throw new Error(`docs: the ${path} guest's reads failed: ${bad.error ?? JSON.stringify(bad.result)}`);
      guests[path as 'pv' | 'emu-dma'] = g.domid;
    }
  } finally {
    rec.stop();
    await host.close();
    rmSync(dir, { recursive: true, force: true });
  }
  const names = new Map<number, string>([[0, 'Domain-0'], [guests.pv, 'PV guest'], [guests['emu-dma'], 'HVM guest']]);
  return { trace: toTraceEvents(rec.records, names), guests };
}
