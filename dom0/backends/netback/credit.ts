/*
 * Credit-based transmit scheduling: the vif's `rate=`.
 *
 * Linux: drivers/net/xen-netback/netback.c (tx_add_credit, tx_credit_exceeded,
 * xenvif_tx_credit_callback) and xenbus.c's xen_net_read_rate. The toolstack writes the backend
 * key `rate` = "bytes,usecs" (libxl turns xl's `rate=10Mb/s@20ms` into that; the default interval
 * is 50 ms). Every `usecs` the vif gets `bytes` of credit, but may bank up to
 * max(128 KiB, bytes) so that one large packet can always go. A packet bigger than the credit
 * left waits on the ring (it is not consumed) until a timer refills the credit at the start of
 * the next window and kicks the queue again.
 */

/** Linux: max_burst = max(131072, credit_bytes). */
const MIN_BURST = 131072;

export class TxCredit {
  remaining: number;
  private windowStart: number;
  private timer: ReturnType<typeof setTimeout> | null = null;
  /** Times a packet had to wait for credit (the rate limit at work). */
  waits = 0;

  constructor(
    readonly bytes: number,
    readonly usec: number,
    private readonly kick: () => void,
    private readonly now: () => number = () => performance.now(),
  ) {
    this.remaining = bytes;
    this.windowStart = now();
  }

  /** xen_net_read_rate: "bytes,usecs" → a credit, or null for absent or malformed (unlimited, as Linux). */
  static parse(rate: string | null, kick: () => void): TxCredit | null {
    if (rate === null) return null;
    const m = /^([0-9]+),([0-9]+)$/.exec(rate);
    if (m === null) return null;
    const bytes = Number(m[1]);
    const usec = Number(m[2]);
    if (!Number.isSafeInteger(bytes) || !Number.isSafeInteger(usec) || bytes === 0 || usec === 0) return null;
    return new TxCredit(bytes, usec, kick);
  }

  private add(): void {
    const maxBurst = Math.max(MIN_BURST, this.bytes);
    this.remaining = Math.min(this.remaining + this.bytes, maxBurst);
  }

  /** May `size` bytes go now? Takes the credit if so (tx_credit_exceeded, inverted). */
  take(size: number): boolean {
    if (size <= this.remaining) {
      this.remaining -= size;
      return true;
    }
    if (this.timer !== null) return false;
    const t = this.now();
    const next = this.windowStart + this.usec / 1000;
    if (t >= next) {
      this.windowStart = t;
      this.add();
      if (size <= this.remaining) {
        this.remaining -= size;
        return true;
      }
    }
    this.waits++;
    const at = this.windowStart + this.usec / 1000;
    this.windowStart = at;
    this.timer = setTimeout(() => {
      this.timer = null;
      this.add();
      this.kick();
    }, Math.max(0, at - t));
    return false;
  }

  stop(): void {
    if (this.timer !== null) clearTimeout(this.timer);
    this.timer = null;
  }
}
