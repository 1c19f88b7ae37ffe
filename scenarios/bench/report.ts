/*
 * Turning benchmark rows into what a reader looks at: an aligned table with the mechanism
 * counters per request beside the throughput, and the ratios the suites exist to show.
 */
import type { BenchRow } from './types.ts';

const fmt = (x: number, digits = 0) => (Number.isFinite(x) ? x.toLocaleString('en-US', { maximumFractionDigits: digits, minimumFractionDigits: digits }) : '-');

/** One table per suite: each suite has its own mechanism counters. */
export function formatTable(rows: readonly BenchRow[]): string {
  const suites = [...new Set(rows.map((r) => r.suite))];
  return suites.map((suite) => suiteTable(rows.filter((r) => r.suite === suite))).join('\n\n');
}

function suiteTable(rows: readonly BenchRow[]): string {
  const counterNames = [...new Set(rows.flatMap((r) => Object.keys(r.counters)))].filter((n) => !/^(front|back)/.test(n));
  const extra = rows.some((r) => r.medianUs !== undefined) ? ['median µs'] : [];
  const head = ['suite', 'path', 'workload', 'bs', 'qd', 'req/s', 'MB/s', ...extra, ...counterNames.map((n) => `${n}/req`)];
  const body = rows.map((r) => [
    r.suite, r.path, r.workload, String(r.blockSize), String(r.queueDepth), fmt(r.reqPerSec), fmt(r.MBps, 1),
    ...(extra.length ? [r.medianUs !== undefined ? fmt(r.medianUs, 1) : ''] : []),
    ...counterNames.map((n) => (n in r.counters ? fmt(r.counters[n], r.counters[n] >= 100 ? 0 : 4) : '')),
  ]);
  const widths = head.map((h, i) => Math.max(h.length, ...body.map((b) => b[i].length)));
  const line = (cells: string[]) => cells.map((c, i) => (i < 3 ? c.padEnd(widths[i]) : c.padStart(widths[i]))).join('  ');
  return [line(head), line(widths.map((w) => '-'.repeat(w))), ...body.map(line)].join('\n');
}

/** The ring suite's headline: ringvisor's ring as a fraction of the bare ring. */
export function ringSummary(rows: readonly BenchRow[]): string | null {
  const bare = rows.find((r) => r.suite === 'ring' && r.path === 'bare-ring');
  const rings = rows.filter((r) => r.suite === 'ring' && r.path === 'ring');
  if (!bare || rings.length === 0) return null;
  const rb = rows.find((r) => r.suite === 'ring' && r.path === 'ringbuf.js');
  const lines = rings.map((r) => `ring (${r.workload}) / bare-ring = ${(r.reqPerSec / bare.reqPerSec).toFixed(2)}  `
    + `(goal ≥ 0.67, floor 0.5); notifications/request ${r.counters.notifications.toFixed(4)} (goal ≤ 0.1)`);
  if (rb) lines.push(`ringbuf.js / bare-ring = ${(rb.reqPerSec / bare.reqPerSec).toFixed(2)}`);
  return lines.join('\n');
}

/** The block suite's headline: each path as a fraction of native, with the goals the issues set. */
export function blockSummary(rows: readonly BenchRow[]): string | null {
  const block = rows.filter((r) => r.suite === 'block');
  if (block.length === 0) return null;
  const find = (path: string, workload: string, bs: number, qd: number) =>
    block.find((r) => r.path === path && r.workload === workload && r.blockSize === bs && r.queueDepth === qd);
  const lines: string[] = [];
  const ratio = (workload: string, bs: number, qd: number, goal: string) => {
    const n = find('native', workload, bs, qd);
    for (const path of ['pv', 'emu-dma', 'emu-pio']) {
      const p = find(path, workload, bs, qd);
      if (n && p) lines.push(`${path} / native, ${workload} ${bs / 1024} KiB qd${qd}: ${(p.reqPerSec / n.reqPerSec).toFixed(2)}${path === 'pv' ? `  (${goal})` : ''}`);
    }
  };
  ratio('seq-read', 65536, 32, 'goal ≥ 0.80, floor 0.70');
  ratio('rand-read', 4096, 32, 'goal ≥ 0.60, floor 0.50');
  // PV against emulated, beside KVM's published virtio-vs-emulated-SATA figures, with the
  // per-request mechanism counts that explain the gap.
  const anchor = (workload: string, bs: number, kvm: string) => {
    for (const qd of [1, 32]) {
      const pv = find('pv', workload, bs, qd);
      const dma = find('emu-dma', workload, bs, qd);
      if (!pv || !dma) continue;
      lines.push(`pv / emu-dma, ${workload} ${bs / 1024} KiB qd${qd}: ${(pv.reqPerSec / dma.reqPerSec).toFixed(1)}×  (KVM: virtio ${kvm} emulated SATA)`
        + `; per request: pv ${fmt(pv.counters.notifications, 3)} notifications, ${fmt(pv.counters.grantOps, 3)} grant ops;`
        + ` emu-dma ${fmt(dma.counters.traps, 1)} traps (one ioreq round trip each)`);
    }
    const pio = find('emu-pio', workload, bs, 1);
    if (pio) lines.push(`  emu-pio, ${workload} ${bs / 1024} KiB qd1: ${fmt(pio.counters.traps, 0)} traps per request, ${fmt(pio.MBps, 2)} MB/s`);
  };
  anchor('rand-read', 4096, '5.9×');
  anchor('seq-read', 65536, '2.2×');
  return lines.length ? lines.join('\n') : null;
}
