/*
 * One row of benchmark output, the same shape for every suite (ring, xenstore, block), so the
 * JSON file, the terminal table and the chart all read one format.
 */
import type { WaitPolicy } from '../../shared/wait.ts';

/** One timed repeat behind a row, kept whole in the JSON. */
export interface Sample {
  reqPerSec: number;
  ios?: number;
  ms?: number;
  /** The most requests in flight at once during this repeat. */
  maxInFlight?: number;
}

export interface BenchRow {
  suite: 'ring' | 'xenstore' | 'block' | (string & {});
  /** What carried the I/O: 'ring', 'bare-ring', 'ringbuf.js', 'native', 'pv', 'emu-dma', 'emu-pio', 'fio', 'xenstored'. */
  path: string;
  /**
   * The waiting policy the row ran under (shared/wait.ts): 'irq' or 'poll', or 'spin' for a
   * baseline that never sleeps (ringbuf.js).
   */
  wait: WaitPolicy | 'spin';
  workload: string;
  blockSize: number;
  /** Requests in flight: the depth the row really kept (measured where the path can say). */
  queueDepth: number;
  /** The depth the job asked for, where it can differ from the one kept (block suite). */
  askedDepth?: number;
  /** The median over the repeats. */
  reqPerSec: number;
  MBps: number;
  /** Mechanism counters per request (notifications, hypercalls, grantOps, traps, ...), medians. */
  counters: Record<string, number>;
  /** How the requests were issued, where a path has several ways (native: sync|libuv; fio: psync|io_uring). */
  engine?: string;
  /** Threads that carried the requests (native: 1, or libuv's pool; fio: 1). */
  threads?: number;
  /** Extra figures a suite reports (IOPS, a median latency). */
  iops?: number;
  medianUs?: number;
  /** The repeats: how many, the smallest and largest of them, and each one. */
  repeats?: number;
  min?: number;
  max?: number;
  samples?: Sample[];
  /** A suite's further figures, in the JSON and its summary but not the table (migrate: the blackout phase by phase). */
  detail?: Record<string, unknown>;
}

export interface SuiteOptions {
  quick: boolean;
  /** The waiting policies to run under (the block and ring suites run once per policy). */
  waits: readonly WaitPolicy[];
  /** Progress lines for a long run (the terminal); silent when absent. */
  progress?: (line: string) => void;
}

export function median(xs: readonly number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

/** The repeat fields of a row from its samples. */
export function repeatFields(samples: Sample[]): Pick<BenchRow, 'reqPerSec' | 'repeats' | 'min' | 'max' | 'samples'> {
  const rates = samples.map((s) => s.reqPerSec);
  return { reqPerSec: median(rates), repeats: rates.length, min: Math.min(...rates), max: Math.max(...rates), samples };
}
