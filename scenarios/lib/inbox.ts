/*
 * A harness's inbox: messages that arrive on the control channels (BroadcastChannel, control
 * plane only) wait here until a caller takes the one it is looking for. Several guests may run at
 * once, so several callers may wait; every arrival wakes them all and each looks again.
 *
 * Not a Xen component: the host side of the block and network harnesses (scenarios/block/,
 * scenarios/net/), which drive test kernels the way a toolstack drives guests. A message that
 * never comes fails the wait after the hang detector's bound (./hang.ts: HARNESS_BOUND_S, longer
 * than a test's because benchmarks wait here for whole runs), unless `failure` finds a reason to
 * stop first (a guest crashed).
 */
import { HangError, SCENARIO_BOUND_S, hangBoundMs, lastLines } from './hang.ts';

/** A harness's wait: a benchmark's run ends with one message, so this bound is a scenario's. */
export const HARNESS_BOUND_S = SCENARIO_BOUND_S;

export class Inbox<M> {
  readonly #items: M[] = [];
  #waiting: (() => void)[] = [];

  push(m: M): void {
    this.#items.push(m);
    this.wake();
  }

  /** Every waiting caller looks again (something besides a message changed: a domain stopped). */
  wake(): void {
    const w = this.#waiting;
    this.#waiting = [];
    for (const f of w) f();
  }

  /**
   * The first message `match` accepts, taken out; `failure` is asked before each wait. `what`
   * names the wait and `seen` gives the lines to show (a host's log) if it never ends.
   */
  async take<T extends M>(match: (m: M) => boolean, failure: () => Error | null = () => null,
    hang: { what?: string; seen?: () => readonly string[] } = {}): Promise<T> {
    const ms = hangBoundMs(HARNESS_BOUND_S);
    const t0 = Date.now();
    let timer: NodeJS.Timeout | undefined;
    try {
      for (;;) {
        const i = this.#items.findIndex(match);
        if (i >= 0) return this.#items.splice(i, 1)[0] as T;
        const e = failure();
        if (e) throw e;
        if (Date.now() - t0 >= ms) {
          const kinds = this.#items.map((m) => (m as { kind?: unknown }).kind ?? '?').join(', ') || 'none';
          throw new HangError(`no progress after ${ms / 1000} s (a hang, not a slow run): waiting for ${hang.what || 'a message'}; ` +
            `unclaimed messages: ${kinds}${hang.seen ? `; last lines:\n${lastLines(hang.seen())}` : ''}`);
        }
        // The timer only wakes this wait to look at the clock (cleared once the wait ends).
        timer ??= setTimeout(() => { timer = undefined; this.wake(); }, Math.max(1, ms - (Date.now() - t0)));
        await new Promise<void>((r) => this.#waiting.push(r));
      }
    } finally {
      clearTimeout(timer);
    }
  }
}
