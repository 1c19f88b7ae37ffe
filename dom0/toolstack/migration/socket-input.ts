/*
 * The bytes a migration socket has delivered, read in the pieces the protocol is made of: a
 * handshake line, one byte, a record header, a record.
 *
 * Xen: libxl reads the stream from xl's pipe with libxl__datacopier and libxc's restore with
 * read_exact() on the fd, record by record (xg_sr_restore.c read_record); nothing holds the whole
 * stream. Here the socket's chunks wait in a queue; a piece that lies in one chunk is handed out as
 * a view of it, one that straddles chunks is gathered into a scratch buffer that is reused, so a
 * record costs at most one copy before it reaches the guest's frames; and pages are handed out as
 * they arrive, chunk piece by chunk piece, with none (stream()). Past HIGH_WATER bytes
 * waiting (the receiver still building the domain) the socket is paused, and TCP holds the
 * sender back.
 */
import type { Socket } from 'node:net';

export const HIGH_WATER = 8 << 20;

export class SocketInput {
  private readonly chunks: Buffer[] = [];
  /** Bytes of chunks[0] already taken. */
  private head = 0;
  private queued = 0;
  private scratch = new Uint8Array(0);
  private peeked = new Uint8Array(16);
  private wake: (() => void) | null = null;
  private ended: Error | null = null;
  private paused = false;
  /** Bytes taken so far: where the next piece starts in the stream (for error messages). */
  consumed = 0;

  /** Bytes received and not yet taken. */
  get queuedBytes(): number {
    return this.queued;
  }

  constructor(private readonly sock: Socket) {
    sock.on('data', (d: Buffer) => {
      this.chunks.push(d);
      this.queued += d.length;
      if (this.queued > HIGH_WATER && !this.paused) { this.paused = true; sock.pause(); }
      this.kick();
    });
    sock.on('close', () => { this.ended ??= new Error('the connection closed'); this.kick(); });
    sock.on('error', (e) => { this.ended = e; this.kick(); });
  }

  private kick(): void {
    const w = this.wake;
    this.wake = null;
    w?.();
  }

  private async fill(n: number, what: string): Promise<void> {
    while (this.queued < n) {
      if (this.ended) throw new Error(`${what}: the connection ended after byte ${this.consumed + this.queued} (${this.ended.message})`);
      // A piece larger than what is queued: the socket must flow again, whatever the high water.
      if (this.paused) { this.paused = false; this.sock.resume(); }
      await new Promise<void>((r) => { this.wake = r; });
    }
  }

  /**
   * Exactly `n` bytes, valid until the next call: a view of the socket's chunk if they lie in
   * one, else a copy in the reused scratch buffer.
   */
  async take(n: number, what = 'the stream'): Promise<Uint8Array> {
    await this.fill(n, what);
    let out: Uint8Array;
    const first = this.chunks[0];
    if (n === 0) out = this.scratch.subarray(0, 0);
    else if (first.length - this.head >= n) {
      out = first.subarray(this.head, this.head + n);
      this.advance(n);
    } else {
      if (this.scratch.length < n) this.scratch = new Uint8Array(Math.max(n, this.scratch.length * 2));
      let got = 0;
      while (got < n) {
        const c = this.chunks[0];
        const k = Math.min(n - got, c.length - this.head);
        this.scratch.set(c.subarray(this.head, this.head + k), got);
        got += k;
        this.advance(k);
      }
      out = this.scratch.subarray(0, n);
    }
    return out;
  }

  /**
   * The next `n` bytes, handed to `each` piece by piece as they arrive: views of the socket's
   * chunks, valid during the call, `at` being where the piece starts within the `n`. No copy, and
   * the first bytes are used before the last have come (a record's pages written into the guest
   * while the rest of the record is on its way).
   */
  async stream(n: number, what: string, each: (piece: Uint8Array, at: number) => void): Promise<void> {
    for (let done = 0; done < n;) {
      if (this.queued === 0) await this.fill(1, what); // no await (and its microtask hops) per chunk already here
      const c = this.chunks[0];
      const k = Math.min(n - done, c.length - this.head);
      each(c.subarray(this.head, this.head + k), done);
      done += k;
      this.advance(k);
    }
  }

  /** The next `n` bytes (a few: a record header), copied, not taken. */
  async peek(n: number, what = 'the stream'): Promise<Uint8Array> {
    await this.fill(n, what);
    if (this.peeked.length < n) this.peeked = new Uint8Array(n);
    let got = 0;
    for (let i = 0, at = this.head; got < n; i++, at = 0) {
      const c = this.chunks[i];
      const k = Math.min(n - got, c.length - at);
      this.peeked.set(c.subarray(at, at + k), got);
      got += k;
    }
    return this.peeked.subarray(0, n);
  }

  private advance(k: number): void {
    this.head += k;
    this.queued -= k;
    this.consumed += k;
    if (this.head === this.chunks[0].length) { this.chunks.shift(); this.head = 0; }
    if (this.paused && this.queued < HIGH_WATER / 2) { this.paused = false; this.sock.resume(); }
  }

  /** Exactly `text`, or an error naming what came instead. */
  async expect(text: string): Promise<void> {
    try {
      await this.fill(text.length, `expected "${text.trim()}"`);
    } catch (e) {
      throw new Error(`expected "${text.trim()}", the connection ended (${(e as Error).message})`);
    }
    const got = Buffer.from(await this.take(text.length)).toString('latin1');
    if (got !== text) throw new Error(`expected "${text.trim()}", got "${got.trim()}"`);
  }

  async byte(): Promise<number> {
    return (await this.take(1, 'the unpause report'))[0];
  }
}
