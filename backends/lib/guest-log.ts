/*
 * Log lines a guest can cause, rate-limited per guest.
 *
 * Linux: printk_ratelimited / pr_*_ratelimited (lib/ratelimit.c: DEFAULT_RATELIMIT_BURST 10 lines
 * per DEFAULT_RATELIMIT_INTERVAL 5 s, then "N callbacks suppressed"), which xen-blkback and
 * xen-netback use for everything a frontend can trigger. Linux keeps one state per call site;
 * ringvisor keeps one per guest, shared by every backend of the same Dom0 and surviving the
 * guest's reconnects, so a guest that opens a thousand rings or handshakes still gets only its
 * burst: what it can make Dom0 write is bounded by its domain id, not by how many objects it made.
 *
 * The only clock is the interval: a guest that stays quiet for one gets its burst back. When
 * lines were dropped, the next line that gets through says how many.
 */
import type { Kernel } from '../../shared/kernel/kernel.ts';

export const RATELIMIT_BURST = 10;
export const RATELIMIT_INTERVAL_MS = 5000;

interface Bucket {
  begin: number;
  printed: number;
  suppressed: number;
}

export class GuestLog {
  private readonly buckets = new Map<number, Bucket>();
  /** Lines dropped, over all guests (for statistics). */
  suppressed = 0;

  constructor(private readonly sink: (line: string) => void, private readonly burst = RATELIMIT_BURST, private readonly intervalMs = RATELIMIT_INTERVAL_MS) {}

  /** Log `line` on behalf of guest `domid`, unless it has used up its burst for this interval. */
  line(domid: number, line: string): void {
    const now = performance.now();
    let b = this.buckets.get(domid);
    if (b === undefined) {
      b = { begin: now, printed: 0, suppressed: 0 };
      this.buckets.set(domid, b);
    }
    if (now - b.begin >= this.intervalMs) {
      b.begin = now;
      b.printed = 0;
    }
    if (b.printed >= this.burst) {
      b.suppressed++;
      this.suppressed++;
      return;
    }
    b.printed++;
    if (b.suppressed > 0) {
      this.sink(`(${b.suppressed} more line(s) caused by d${domid} were suppressed)`);
      b.suppressed = 0;
    }
    this.sink(line);
  }
}

const perKernel = new WeakMap<Kernel, GuestLog>();

/** The one GuestLog of this Dom0 kernel, writing to its log. */
export function guestLog(k: Kernel): GuestLog {
  let g = perKernel.get(k);
  if (g === undefined) {
    g = new GuestLog((l) => k.log(l));
    perKernel.set(k, g);
  }
  return g;
}
