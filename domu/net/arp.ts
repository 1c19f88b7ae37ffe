/*
 * The guest's neighbour table: IPv4 address → MAC, learned with ARP.
 *
 * Linux: net/ipv4/arp.c on the neighbour layer (net/core/neighbour.c): an entry is made by a reply
 * to our request, or by any request addressed to us (the asker's address is learned for free,
 * RFC 826's "merge" step), and any other ARP seen refreshes an entry we have (a gratuitous ARP
 * from a neighbour that moved); a lookup that misses sends a broadcast request. Entries do not
 * expire; an unanswered request is re-sent by the stack every 100 ms of guest time when the
 * kernel gives it a timer (stack.ts).
 * flush() empties the table (`ip neigh flush`), and the counters show what ARP did. restore() puts
 * back the entries a suspended kernel kept in guest memory (domu/resume.ts): Linux's table is kernel
 * memory and simply survives a migration, so a resumed guest answers its peers without asking again.
 */

export class ArpCache {
  private readonly table = new Map<number, Uint8Array>();
  private readonly waiting = new Map<number, (() => void)[]>();
  readonly stats = { requests_sent: 0, replies_sent: 0, learned: 0, gratuitous_sent: 0, refreshed: 0 };

  /** The MAC of `ip` if it is known now. */
  lookup(ip: number): Uint8Array | undefined {
    return this.table.get(ip);
  }

  /** An address seen in an ARP packet (request to us, or reply). */
  learn(ip: number, mac: Uint8Array, off: number): void {
    const known = this.table.get(ip);
    if (known === undefined) {
      this.table.set(ip, mac.slice(off, off + 6));
      this.stats.learned++;
    } else {
      known.set(mac.subarray(off, off + 6));
    }
    const w = this.waiting.get(ip);
    if (w !== undefined) {
      this.waiting.delete(ip);
      for (const f of w) f();
    }
  }

  /** An ARP seen that was not for us: update `ip`'s entry if we have one, never make one. */
  refresh(ip: number, mac: Uint8Array, off: number): void {
    const known = this.table.get(ip);
    if (known === undefined) return;
    known.set(mac.subarray(off, off + 6));
    this.stats.refreshed++;
  }

  /** Wait until `ip` is known; `ask` sends the request (only for the first waiter). */
  resolve(ip: number, ask: () => void): Promise<Uint8Array> {
    const known = this.table.get(ip);
    if (known !== undefined) return Promise.resolve(known);
    return new Promise((resolve) => {
      let w = this.waiting.get(ip);
      const first = w === undefined;
      if (w === undefined) { w = []; this.waiting.set(ip, w); }
      w.push(() => resolve(this.table.get(ip)!));
      if (first) {
        this.stats.requests_sent++;
        ask();
      }
    });
  }

  /** The entries the kernel kept across a suspend (see the header); a peer that moved is refreshed by its own gratuitous ARP. */
  restore(entries: readonly (readonly [number, Uint8Array])[]): void {
    for (const [ip, mac] of entries) if (!this.table.has(ip)) this.table.set(ip, mac.slice(0, 6));
  }

  flush(): void {
    this.table.clear();
  }

  entries(): [number, Uint8Array][] {
    return [...this.table.entries()];
  }
}
