/*
 * Turning benchmark rows into what a reader looks at: an aligned table with the repeats, their
 * spread and the mechanism counters per request beside the throughput, and the ratios the
 * suites exist to show, per waiting policy (a ratio never mixes policies or depths).
 */
import type { BenchRow } from './types.ts';

const fmt = (x: number, digits = 0) => (Number.isFinite(x) ? x.toLocaleString('en-US', { maximumFractionDigits: digits, minimumFractionDigits: digits }) : '-');
const short = (x: number) => (x >= 1e6 ? `${fmt(x / 1e6, 2)}M` : x >= 1e4 ? `${fmt(x / 1e3, 0)}k` : x >= 1e3 ? `${fmt(x / 1e3, 1)}k` : fmt(x, x >= 10 ? 0 : 1));

/** One table per suite: each suite has its own mechanism counters. */
export function formatTable(rows: readonly BenchRow[]): string {
  const suites = [...new Set(rows.map((r) => r.suite))];
  return suites.map((suite) => suiteTable(rows.filter((r) => r.suite === suite))).join('\n\n');
}

function suiteTable(rows: readonly BenchRow[]): string {
  const counterNames = [...new Set(rows.flatMap((r) => Object.keys(r.counters)))].filter((n) => !/^(front|back)/.test(n));
  const extra = rows.some((r) => r.medianUs !== undefined) ? ['median µs'] : [];
  const engines = rows.some((r) => r.engine !== undefined);
  const head = ['suite', 'wait', 'path', ...(engines ? ['engine'] : []), 'workload', 'bs', 'qd', 'n', 'req/s', 'min–max', 'MB/s', ...extra,
    ...counterNames.map((n) => `${n}/req`)];
  const left = 4 + (engines ? 1 : 0);
  const body = rows.map((r) => [
    r.suite, r.wait, r.path, ...(engines ? [r.engine ?? ''] : []), r.workload, String(r.blockSize), String(r.queueDepth),
    r.repeats !== undefined ? String(r.repeats) : '1', fmt(r.reqPerSec),
    r.min !== undefined && r.max !== undefined ? `${short(r.min)}–${short(r.max)}` : '', fmt(r.MBps, 1),
    ...(extra.length ? [r.medianUs !== undefined ? fmt(r.medianUs, 1) : ''] : []),
    ...counterNames.map((n) => (n in r.counters ? fmt(r.counters[n], r.counters[n] >= 100 ? 0 : 4) : '')),
  ]);
  const widths = head.map((h, i) => Math.max(h.length, ...body.map((b) => b[i].length)));
  const line = (cells: string[]) => cells.map((c, i) => (i < left ? c.padEnd(widths[i]) : c.padStart(widths[i]))).join('  ');
  return [line(head), line(widths.map((w) => '-'.repeat(w))), ...body.map(line)].join('\n');
}

/** The ring suite's headline, per policy: ringvisor's ring as a fraction of the bare ring. */
export function ringSummary(rows: readonly BenchRow[]): string | null {
  const lines: string[] = [];
  for (const wait of policies(rows.filter((r) => r.suite === 'ring'))) {
    const bare = rows.find((r) => r.suite === 'ring' && r.wait === wait && r.path === 'bare-ring');
    const rings = rows.filter((r) => r.suite === 'ring' && r.wait === wait && r.path === 'ring');
    if (!bare) continue;
    for (const r of rings) {
      lines.push(`[wait=${wait}] ring (${r.workload}) / bare-ring = ${(r.reqPerSec / bare.reqPerSec).toFixed(2)}  `
        + `(goal ≥ 0.67, floor 0.5); notifications/request ${r.counters.notifications.toFixed(4)} (goal ≤ 0.1)`);
    }
  }
  const rb = rows.find((r) => r.suite === 'ring' && r.path === 'ringbuf.js');
  if (rb) lines.push(`ringbuf.js (both threads spin, never sleep): ${fmt(rb.reqPerSec)} req/s`);
  return lines.length ? lines.join('\n') : null;
}

/**
 * The block suite's headline, per policy: PV against native and against the emulated disk, and
 * Node's file path against fio's, each only between rows that kept the same depth.
 *
 * Published figures: none is printed. The earlier "KVM: virtio 5.9× / 2.2× emulated SATA" had
 * no source that could be found, and compared an AHCI controller with command queueing, not
 * PIIX IDE; a figure beside ours must name its paper or benchmark, year and what it compared.
 */
export function blockSummary(rows: readonly BenchRow[]): string | null {
  const block = rows.filter((r) => r.suite === 'block');
  if (block.length === 0) return null;
  const lines: string[] = [];
  for (const wait of policies(block)) {
    const mine = block.filter((r) => r.wait === wait);
    // Rows are found by the depth their job asked for; ratio() then refuses two that kept different depths.
    const find = (path: string, workload: string, bs: number, qd: number, engine?: string) =>
      mine.find((r) => r.path === path && r.workload === workload && r.blockSize === bs && (r.askedDepth ?? r.queueDepth) === qd
        && (engine === undefined || r.engine === engine));
    const ratio = (a: BenchRow | undefined, b: BenchRow | undefined, digits = 2, suffix = ''): string | null => {
      if (!a || !b) return null;
      if (a.queueDepth !== b.queueDepth) return `not compared: depths differ (${a.queueDepth} vs ${b.queueDepth})`;
      return `${(a.reqPerSec / b.reqPerSec).toFixed(digits)}${suffix}  (medians; repeats ${spread(a)} / ${spread(b)})`;
    };
    lines.push(`wait=${wait}:`);
    const vsNative = (workload: string, bs: number, qd: number, goal: string) => {
      const n = find('native', workload, bs, qd);
      for (const path of ['pv', 'emu-dma', 'emu-pio']) {
        const r = ratio(find(path, workload, bs, qd), n);
        if (r) lines.push(`  ${path} / native, ${workload} ${bs / 1024} KiB qd${qd}: ${r}${path === 'pv' ? `  [${goal}]` : ''}`);
      }
    };
    // A storage driver domain against Dom0's blkback: the same split driver, another backend domain.
    for (const [workload, bs, qd] of [['rand-read', 4096, 32], ['seq-read', 65536, 32], ['rand-write', 4096, 32]] as const) {
      const r = ratio(find('pv-dd', workload, bs, qd), find('pv', workload, bs, qd));
      if (r) lines.push(`  pv-dd / pv, ${workload} ${bs / 1024} KiB qd${qd}: ${r}  [goal ≥ 0.90]`);
    }
    vsNative('seq-read', 65536, 32, 'goal ≥ 0.80, floor 0.70');
    vsNative('rand-read', 4096, 32, 'goal ≥ 0.60, floor 0.50');
    vsNative('rand-read', 4096, 1, 'no goal set');
    for (const [workload, bs] of [['rand-read', 4096], ['seq-read', 65536]] as const) {
      for (const qd of [1, 32]) {
        const pv = find('pv', workload, bs, qd);
        const dma = find('emu-dma', workload, bs, qd);
        const r = ratio(pv, dma, 1, '×');
        if (!r || !pv || !dma) continue;
        lines.push(`  pv / emu-dma, ${workload} ${bs / 1024} KiB qd${qd}: ${r}; per request: pv ${fmt(pv.counters.notifications, 3)} notifications, `
          + `${fmt(pv.counters.wakeups, 3)} wake-ups; emu-dma ${fmt(dma.counters.traps, 1)} traps (one ioreq round trip each), ${fmt(dma.counters.wakeups, 1)} wake-ups`);
      }
      const pio = find('emu-pio', workload, bs, 1);
      if (pio) lines.push(`  emu-pio, ${workload} ${bs / 1024} KiB qd1: ${fmt(pio.counters.traps, 0)} traps per request, ${fmt(pio.MBps, 2)} MB/s`);
    }
    // Node's own file path (native) against the machine's (fio), same file, size, depth and cache state.
    for (const [workload, bs, qd] of [['rand-read', 4096, 1], ['rand-read', 4096, 32], ['seq-read', 65536, 32]] as const) {
      for (const engine of ['psync', 'io_uring']) {
        const r = ratio(find('native', workload, bs, qd), find('fio', workload, bs, qd, engine));
        if (r) lines.push(`  native / fio ${engine}, ${workload} ${bs / 1024} KiB qd${qd}: ${r}`);
      }
    }
  }
  return lines.join('\n');
}

const spread = (r: BenchRow) => (r.min !== undefined && r.max !== undefined ? `${r.repeats}: ${short(r.min)}–${short(r.max)}` : '1');
const policies = (rows: readonly BenchRow[]) => [...new Set(rows.map((r) => r.wait))].filter((w) => w !== 'spin');
