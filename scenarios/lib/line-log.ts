/*
 * A host's log lines as they arrive (Dom0's printk, the toolstack's lines, a bridge's uplink
 * report), and a wait for one that matches: the host-side twin of ./console.ts. Xen's tools
 * write the same kind of lines to /var/log/xen (xl, libxl's logging); a test waits on them.
 *
 * Not a measurement: a line that never comes fails after the hang detector's bound (./hang.ts)
 * with the regex, the log's name and its last lines.
 */
import { TEST_BOUND_S, bounded, lastLines } from './hang.ts';

export class LineLog {
  readonly lines: string[] = [];
  #waiters: (() => void)[] = [];

  /** `name` says whose log it is in a failure (e.g. "host a's log"). */
  constructor(readonly name: string, private readonly seconds = TEST_BOUND_S) {}

  /** Give this to a host's `log` option. */
  readonly add = (line: string): void => {
    this.lines.push(line);
    const w = this.#waiters;
    this.#waiters = [];
    for (const f of w) f();
  };

  /** The first line (so far or to come) that matches `re`, matched. */
  async waitFor(re: RegExp, seconds = this.seconds): Promise<RegExpExecArray> {
    const wait = async () => {
      for (;;) {
        for (const l of this.lines) {
          const m = re.exec(l);
          if (m) return m;
        }
        await new Promise<void>((r) => this.#waiters.push(r));
      }
    };
    return bounded(wait(), () => `waiting for ${re} in ${this.name}; its last lines:\n${lastLines(this.lines)}`, seconds);
  }
}
