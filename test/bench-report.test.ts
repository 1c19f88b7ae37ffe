// The benchmark's report: ratios per waiting policy, never between rows that kept different depths.
import test from 'ava';
import { blockSummary, formatTable } from '../scenarios/bench/report.ts';
import { repeatFields, type BenchRow } from '../scenarios/bench/types.ts';

function row(path: string, wait: 'irq' | 'poll', rates: number[], kept: number, asked = 32): BenchRow {
  const f = repeatFields(rates.map((reqPerSec) => ({ reqPerSec })));
  return { suite: 'block', path, wait, workload: 'rand-read', blockSize: 4096, queueDepth: kept, askedDepth: asked, ...f, MBps: 0, counters: { notifications: 0, traps: 0, wakeups: 0 } };
}

test('ratios are per policy, from medians, and refused between different depths', (t) => {
  const rows = [
    row('native', 'irq', [100, 300, 200], 32), row('pv', 'irq', [50, 60, 40], 32),
    row('native', 'poll', [100, 100, 100], 32), row('pv', 'poll', [90, 90, 90], 8),
  ];
  const s = blockSummary(rows)!;
  t.regex(s, /wait=irq:[^]*pv \/ native, rand-read 4 KiB qd32: 0\.25 {2}\(medians; repeats 3: 40–60 \/ 3: 100–300\)/);
  t.regex(s, /wait=poll:[^]*pv \/ native, rand-read 4 KiB qd32: not compared: depths differ \(8 vs 32\)/);
  t.notRegex(s, /KVM|virtio/, 'no published figure without a source');
  const table = formatTable(rows);
  t.regex(table, /\bwait\b.*\bn\b.*min–max/);
  t.regex(table, /irq {3}pv +rand-read +4096 +32 +3 +50 +40–60/);
});
