/*
 * A harness's inbox: messages that arrive on the control channels (BroadcastChannel, control
 * plane only) wait here until a caller takes the one it is looking for. Several guests may run at
 * once, so several callers may wait; every arrival wakes them all and each looks again.
 *
 * Not a Xen component: the host side of the block and network harnesses (scenarios/block/,
 * scenarios/net/), which drive test kernels the way a toolstack drives guests. No timers: a
 * message that never comes leaves the caller waiting until its test's timeout names it, unless
 * `failure` finds a reason to stop first (a guest crashed).
 */
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

  /** The first message `match` accepts, taken out; `failure` is asked before each wait. */
  async take<T extends M>(match: (m: M) => boolean, failure: () => Error | null = () => null): Promise<T> {
    for (;;) {
      const i = this.#items.findIndex(match);
      if (i >= 0) return this.#items.splice(i, 1)[0] as T;
      const e = failure();
      if (e) throw e;
      await new Promise<void>((r) => this.#waiting.push(r));
    }
  }
}
