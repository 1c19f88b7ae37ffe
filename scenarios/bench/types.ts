/*
 * One row of benchmark output, the same shape for every suite (ring, xenstore, block), so the
 * JSON file, the terminal table and the chart all read one format.
 */

export interface BenchRow {
  suite: 'ring' | 'xenstore' | 'block' | (string & {});
  /** What carried the I/O: 'ring', 'bare-ring', 'ringbuf.js', 'native', 'pv', 'emu-dma', 'emu-pio', 'xenstored'. */
  path: string;
  workload: string;
  blockSize: number;
  queueDepth: number;
  reqPerSec: number;
  MBps: number;
  /** Mechanism counters per request (notifications, hypercalls, grantOps, traps, ...). */
  counters: Record<string, number>;
  /** Extra figures a suite reports (IOPS, a median latency, the spread of repeats). */
  iops?: number;
  medianUs?: number;
  repeats?: number;
  spread?: [number, number];
}

export interface SuiteOptions {
  quick: boolean;
  /** Progress lines for a long run (the terminal); silent when absent. */
  progress?: (line: string) => void;
}

export function median(xs: readonly number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}
