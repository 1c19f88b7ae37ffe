/*
 * A producer's queue of byte strings waiting for room on a byte ring (the xenstore ring's `req`,
 * the console's `out`).
 *
 * Linux: the sending half of xb_write (drivers/xen/xenbus/xenbus_comms.c) and of hvc_xen's
 * domU_write_console: copy what fits, publish prod, and when the ring is full stop until the
 * consumer's notification says it took some. The ring mechanics and their ordering are
 * shared/public/io/byte-ring.ts's; this is only the queue in front of them, written once for
 * every guest-side byte-ring producer.
 *
 * The caller notifies the consumer after a flush() that wrote anything (one notification per
 * batch, not per string), and calls flush() again from its event handler. A caller whose consumer
 * looks at prod again after publishing cons (xenstored) may notify only when `consumerCaughtUp`
 * says a flush published bytes to a consumer that had taken everything (xb_write's test).
 */
import type { ByteRingView } from '../public/io/byte-ring.ts';

export class ByteRingOutput {
  private readonly queue: Uint8Array[] = [];
  /** How much of queue[0] is already on the ring. */
  private headOff = 0;

  constructor(private readonly ring: ByteRingView) {}

  /** Set by flush(): some of its bytes were published while the consumer had taken everything before them. */
  consumerCaughtUp = false;

  /** Strings not yet wholly on the ring (the first may be partly there). */
  get pending(): number {
    return this.queue.length;
  }

  /** Queue `bytes` (not copied: the caller must not change them). */
  push(bytes: Uint8Array): void {
    this.queue.push(bytes);
  }

  /**
   * Copy as much queued output onto the ring as fits. Returns the bytes written (0: the ring is
   * full or the queue empty), or -1 if the consumer's index is impossible.
   */
  flush(): number {
    let total = 0;
    this.consumerCaughtUp = false;
    while (this.queue.length > 0) {
      const b = this.queue[0];
      const n = this.ring.write(b, this.headOff, b.length - this.headOff);
      if (n < 0) return -1;
      total += n;
      this.consumerCaughtUp ||= this.ring.producerShouldNotify;
      this.headOff += n;
      if (this.headOff < b.length) break; // ring full: the consumer notifies when it takes some
      this.queue.shift();
      this.headOff = 0;
    }
    return total;
  }

  /** Drop everything queued (the ring is being abandoned). */
  clear(): void {
    this.queue.length = 0;
    this.headOff = 0;
  }
}
