/*
 * Dom0's packet buffers: Ethernet frames held in Dom0's own pages while they cross Dom0.
 *
 * Linux: struct sk_buff, reduced to what a bridge between vifs needs (pages, a length, a reference
 * count); the pool is the skb cache. A frame lives in whole Dom0 pages from offset 0, so netback
 * can grant-copy straight between a guest's granted page and one of these (GNTCOPY with a local
 * gfn on the Dom0 side), and the Ethernet header is always in the first page. A frame that the
 * bridge floods to several ports is shared, not copied: each port takes a reference and drops it
 * once the frame has been copied out.
 *
 * A frame from a guest's tx ring may also carry frags (Linux: skb_shinfo(skb)->frags): pieces that
 * stay in the guest's own pages, mapped read-only into Dom0 by netback, after a linear part that
 * holds at least the headers (netback copies the first 128 bytes there). Whoever reads a frame's
 * bytes reads the linear pages, then the frags (copyOut, or netback's rx copy ops per piece). When
 * the last reference goes, `onFree` tells the frags' owner (netback answers the frontend then).
 *
 * Pages are taken from Dom0's allocator the first time they are needed, up to a bound, and kept
 * on a free list; Packet objects are made once and reused. Nothing is allocated per frame. A full
 * pool is back-pressure: the caller drops the frame and counts it, as a NIC with no buffers does.
 */
import type { Kernel } from '../../shared/kernel/kernel.ts';
import { PAGE_SIZE } from '../../shared/public/xen.ts';
import { CHECKSUM_NONE, type CsumState } from '../../shared/kernel/net-csum.ts';

/** XEN_NETIF_MAX_TX_SIZE (0xFFFF) rounded up to pages. */
export const PACKET_MAX_PAGES = 16;
export const PACKET_MAX_BYTES = 0xffff;
/** Frags a frame may carry: one per tx slot after the linear part (fatal_skb_slots is 20). */
export const PACKET_MAX_FRAGS = 21;

export class Packet {
  readonly gfns = new Int32Array(PACKET_MAX_PAGES);
  /** Views of the linear pages: entries from nPages on are stale. */
  readonly pages: Uint8Array[] = [];
  nPages = 0;
  /** The whole frame: the linear part, then the frags. */
  len = 0;
  /** Bytes in the linear pages (from offset 0 of pages[0]). */
  linLen = 0;
  refs = 0;
  /** Frags after the linear part: a Dom0 gfn (a grant mapping), the offset and length in it, a view. */
  readonly fragGfn = new Int32Array(PACKET_MAX_FRAGS);
  readonly fragOff = new Int32Array(PACKET_MAX_FRAGS);
  readonly fragLen = new Int32Array(PACKET_MAX_FRAGS);
  readonly fragView: (Uint8Array | null)[] = new Array(PACKET_MAX_FRAGS).fill(null);
  nFrags = 0;
  /** Called once when the last reference goes, before the pages return to the pool. */
  onFree: ((p: Packet) => void) | null = null;
  /** The frags' owner's own number for this frame (netback: its pending index). */
  tag = 0;
  /**
   * skb->ip_summed (shared/kernel/net-csum.ts): CHECKSUM_PARTIAL when the L4 checksum field holds
   * only the pseudo-header sum (a PV guest offloaded it), with csum_start / csum_offset from the
   * frame's start; CHECKSUM_UNNECESSARY when the sender vouched for it. Set by netback's tx.
   */
  csum: CsumState = CHECKSUM_NONE;
  csumStart = 0;
  csumOffset = 0;

  constructor(private readonly pool: PacketPool) {}

  /** Append a frag (the caller holds the page mapped until onFree). */
  addFrag(gfn: number, off: number, len: number, view: Uint8Array | null): void {
    const f = this.nFrags++;
    this.fragGfn[f] = gfn;
    this.fragOff[f] = off;
    this.fragLen[f] = len;
    this.fragView[f] = view;
    this.len += len;
  }

  /** Drop one reference; the last one gives the pages back. */
  release(): void {
    if (--this.refs === 0) this.pool.free(this);
  }

  /** Copy the whole frame into `dst` (which has room for len bytes). */
  copyOut(dst: Uint8Array): void {
    let done = 0;
    for (let i = 0; done < this.linLen; i++) {
      const n = Math.min(PAGE_SIZE, this.linLen - done);
      dst.set(n === PAGE_SIZE ? this.pages[i] : this.pages[i].subarray(0, n), done);
      done += n;
    }
    for (let f = 0; f < this.nFrags; f++) {
      const v = this.fragView[f];
      const n = this.fragLen[f];
      if (v !== null) dst.set(v.subarray(this.fragOff[f], this.fragOff[f] + n), done);
      else dst.fill(0, done, done + n);
      done += n;
    }
  }

  /** Copy `src` into the frame from byte 0 (the frame was allocated with len >= src.length). */
  copyIn(src: Uint8Array): void {
    for (let i = 0, done = 0; done < src.length; i++) {
      const n = Math.min(PAGE_SIZE, src.length - done);
      this.pages[i].set(src.subarray(done, done + n));
      done += n;
    }
  }
}

export class PacketPool {
  private readonly freePackets: Packet[] = [];
  private readonly freePages: number[] = [];
  private readonly views = new Map<number, Uint8Array>();
  private pagesMade = 0;
  readonly stats = { allocs: 0, exhausted: 0 };

  constructor(private readonly k: Kernel, readonly maxPages = 2048) {}

  /** A frame of `len` bytes with one reference, or null if the pool is exhausted. */
  alloc(len: number): Packet | null {
    const need = Math.max(1, Math.ceil(len / PAGE_SIZE));
    if (need > PACKET_MAX_PAGES || !this.reserve(need)) {
      this.stats.exhausted++;
      return null;
    }
    const p = this.freePackets.pop() ?? new Packet(this);
    // pages[i] is valid for i < nPages; the array keeps its length (no allocation per frame).
    for (let i = 0; i < need; i++) {
      const gfn = this.freePages.pop()!;
      p.gfns[i] = gfn;
      p.pages[i] = this.views.get(gfn)!;
    }
    p.nPages = need;
    p.len = len;
    p.linLen = len;
    p.nFrags = 0;
    p.csum = CHECKSUM_NONE;
    p.refs = 1;
    this.stats.allocs++;
    return p;
  }

  private reserve(need: number): boolean {
    while (this.freePages.length < need) {
      if (this.pagesMade >= this.maxPages) return false;
      const gfn = this.k.pages.alloc();
      this.views.set(gfn, this.k.memory.page(gfn, true));
      this.freePages.push(gfn);
      this.pagesMade++;
    }
    return true;
  }

  free(p: Packet): void {
    const done = p.onFree;
    if (done !== null) {
      p.onFree = null;
      done(p);
    }
    for (let f = 0; f < p.nFrags; f++) p.fragView[f] = null;
    p.nFrags = 0;
    for (let i = 0; i < p.nPages; i++) this.freePages.push(p.gfns[i]);
    p.nPages = 0;
    this.freePackets.push(p);
  }

  /** Frames currently held somewhere (for tests: nothing leaks). */
  get inUse(): number {
    return this.pagesMade - this.freePages.length;
  }
}

const pools = new WeakMap<Kernel, PacketPool>();

/** Dom0's one pool (netback, the bridge and the uplink all hand frames to each other). */
export function packetPool(k: Kernel): PacketPool {
  let p = pools.get(k);
  if (p === undefined) {
    p = new PacketPool(k);
    pools.set(k, p);
  }
  return p;
}
