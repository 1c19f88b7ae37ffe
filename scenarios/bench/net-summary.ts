/*
 * The net suite's headline, per waiting policy: the issue's three goals for the 1472-byte
 * guest→guest UDP stream, each a ratio between rows of one run, one policy and one depth (the
 * window of 256 datagrams):
 *
 *   pv / emu-e1000-unbatched   PV against the trapped e1000 (a synchronous trap per frame sent)  goal ≥ 10
 *   pv / bridge                PV against the floor (the same stacks in Dom0, no guest)           goal ≥ 0.5
 *   pv notifications/packet    event-channel notifications over all domains                       goal ≤ 0.05
 *
 * The repeats' spread is printed beside each ratio: on a loaded machine it is wide, and the
 * per-packet counts (notifications, wake-ups) are the figures that do not depend on the load.
 */
import type { BenchRow } from './types.ts';

export function netSummary(rows: readonly BenchRow[]): string | null {
  const net = rows.filter((r) => r.suite === 'net' && r.workload === 'udp-stream' && r.blockSize === 1472);
  if (net.length === 0) return null;
  const lines: string[] = [];
  for (const wait of [...new Set(net.map((r) => r.wait))]) {
    const find = (path: string) => net.find((r) => r.wait === wait && r.path === path);
    const pv = find('pv');
    if (!pv) continue;
    const ratio = (other: BenchRow | undefined, goal: string): string => {
      if (!other) return 'not run';
      if (other.queueDepth !== pv.queueDepth) return `not compared: depths differ (${pv.queueDepth} vs ${other.queueDepth})`;
      return `${(pv.reqPerSec / other.reqPerSec).toFixed(2)}  [${goal}]  (${kpps(pv)} vs ${kpps(other)} pkt/s)`;
    };
    lines.push(`[wait=${wait}] net udp-stream 1472 B: pv / emu-e1000-unbatched = ${ratio(find('emu-e1000-unbatched'), 'goal ≥ 10')}`);
    lines.push(`[wait=${wait}] net udp-stream 1472 B: pv / bridge = ${ratio(find('bridge'), 'goal ≥ 0.5')}`);
    lines.push(`[wait=${wait}] net udp-stream 1472 B: pv notifications/packet ${pv.counters.notifications.toFixed(4)} [goal ≤ 0.05], `
      + `thread wake-ups/packet ${(pv.counters.futexWakes ?? 0).toFixed(4)}, grant-copy ops/packet ${pv.counters.grantCopies.toFixed(2)}`);
  }
  return lines.length ? lines.join('\n') : null;
}

/** A row's median and its repeats' range, in thousands of packets per second. */
function kpps(r: BenchRow): string {
  const k = (x: number) => `${(x / 1000).toFixed(1)}k`;
  return r.min !== undefined && r.max !== undefined ? `${k(r.reqPerSec)} (${k(r.min)}–${k(r.max)})` : k(r.reqPerSec);
}
