/*
 * Byte-stream rings: the xenstore and console pages' way of moving bytes, as opposed to ring.h's
 * fixed-size request slots.
 *
 * Xen: the index arithmetic of xs_wire.h (MASK_XENSTORE_IDX, xenstored's check_indexes,
 * get_input_chunk / get_output_chunk in tools/xenstored/domain.c) and of console.h
 * (MASK_XENCONS_IDX); Linux's xb_read / xb_write in drivers/xen/xenbus/xenbus_comms.c.
 *
 * A ring is `size` bytes (a power of two) at `data` in a shared page, with a producer and a
 * consumer index elsewhere on the page: free-running u32 counts of bytes ever written and read.
 * The producer owns prod, the consumer owns cons; each side only reads the other's.
 *
 * Ordering. Indices are read and written with Atomics (sequentially consistent), the bytes with
 * plain stores: bytes written before the Atomics.store of prod are visible to whoever
 * Atomics.loads that prod and then reads them (xs_wire's "wmb before updating prod"), and a
 * consumer's reads of the bytes come before its store of cons, so the producer never overwrites
 * bytes not yet copied out ("mb before updating cons").
 *
 * Trust. Each side reads the peer's index once per call, then checks it: prod − cons > size is
 * impossible for an honest peer (check_indexes) and the call returns -1; the caller decides what
 * that costs (xenstored stops serving the ring; a guest stops using it). The copy is clamped to
 * what the checked indices allow, so a lying index can never move a copy outside the ring.
 *
 * Wake-ups. A producer that finds the ring full stops and waits for the consumer's notification.
 * The consumer must therefore notify whenever the ring may have been full; it knows by looking
 * at prod once more after publishing cons: if prod − old cons ≥ size, the producer may be waiting
 * (Linux's xb_read does exactly this). `consumerShouldNotify` carries that answer out.
 *
 * The other way, a producer need only wake a consumer that has caught up: Linux's xb_write looks at
 * cons once more after publishing prod and notifies only if cons had reached the old prod (the
 * consumer took everything and may be asleep); otherwise the consumer has bytes left to take, and
 * it looks at prod again after publishing its cons, so it finds the new ones without being told.
 * `producerShouldNotify` carries that answer out; a producer whose consumer does not look again
 * (the console's xenconsoled) ignores it and notifies after every write.
 */

export interface ByteRing {
  /** Byte offset of the ring's data in the page. */
  readonly data: number;
  /** Bytes in the ring, a power of two. */
  readonly size: number;
  /** Byte offsets of the consumer and producer indices (u32). */
  readonly cons: number;
  readonly prod: number;
}

/** One end's view of one byte ring on a mapped page. */
export class ByteRingView {
  private readonly mask: number;
  private readonly consWord: number;
  private readonly prodWord: number;
  /** Set by read(): the producer may have found the ring full, so tell it we made room. */
  consumerShouldNotify = false;
  /** Set by write(): the consumer had taken everything before these bytes, so it may be asleep (see the header). */
  producerShouldNotify = false;

  constructor(
    private readonly bytes: Uint8Array,
    private readonly words: Int32Array,
    readonly ring: ByteRing,
  ) {
    this.mask = ring.size - 1;
    this.consWord = ring.cons >> 2;
    this.prodWord = ring.prod >> 2;
  }

  /** Bytes published and not yet consumed, or -1 if the indices are impossible. */
  used(): number {
    const cons = Atomics.load(this.words, this.consWord);
    const prod = Atomics.load(this.words, this.prodWord);
    const n = (prod - cons) >>> 0;
    return n > this.ring.size ? -1 : n;
  }

  /** Consumer: copy up to `max` bytes into dst[off..], publish cons. Returns the count, or -1. */
  read(dst: Uint8Array, off: number, max: number): number {
    this.consumerShouldNotify = false;
    const cons = Atomics.load(this.words, this.consWord) >>> 0;
    const prod = Atomics.load(this.words, this.prodWord) >>> 0;
    const avail = (prod - cons) >>> 0;
    if (avail > this.ring.size) return -1;
    let n = Math.min(avail, max);
    const total = n;
    let idx = cons;
    while (n > 0) {
      const at = idx & this.mask;
      const chunk = Math.min(n, this.ring.size - at);
      dst.set(this.bytes.subarray(this.ring.data + at, this.ring.data + at + chunk), off);
      off += chunk;
      idx = (idx + chunk) >>> 0;
      n -= chunk;
    }
    if (total === 0) return 0;
    Atomics.store(this.words, this.consWord, idx | 0);
    const prodNow = Atomics.load(this.words, this.prodWord) >>> 0;
    this.consumerShouldNotify = ((prodNow - cons) >>> 0) >= this.ring.size;
    return total;
  }

  /** Producer: copy up to `len` bytes of src[off..] in, as far as there is room; publish prod. */
  write(src: Uint8Array, off: number, len: number): number {
    const cons = Atomics.load(this.words, this.consWord) >>> 0;
    const prod = Atomics.load(this.words, this.prodWord) >>> 0;
    const used = (prod - cons) >>> 0;
    if (used > this.ring.size) return -1;
    let n = Math.min(this.ring.size - used, len);
    const total = n;
    let idx = prod;
    while (n > 0) {
      const at = idx & this.mask;
      const chunk = Math.min(n, this.ring.size - at);
      this.bytes.set(src.subarray(off, off + chunk), this.ring.data + at);
      off += chunk;
      idx = (idx + chunk) >>> 0;
      n -= chunk;
    }
    this.producerShouldNotify = false;
    if (total === 0) return 0;
    Atomics.store(this.words, this.prodWord, idx | 0);
    // xb_write's `if (prod <= intf->req_cons)`: cons read again after prod was published. A cons
    // past the old prod is impossible for an honest consumer: notify, and let the next call's check fail.
    const behind = (prod - (Atomics.load(this.words, this.consWord) >>> 0)) >>> 0;
    this.producerShouldNotify = behind === 0 || behind > this.ring.size;
    return total;
  }
}
