/*
 * xenconsoled: Dom0's daemon behind every guest's PV console, writing what each guest prints to
 * its log file and feeding it what is typed.
 *
 * Xen: tools/console/daemon/io.c (domain_create_ring, handle_ring_read, buffer_append,
 * handle_tty_write, the per-guest log /var/log/xen/console/guest-<name>.log); the page is
 * console.h's xencons_interface (shared/public/io/console.ts).
 *
 * For each guest it maps the console page through the reserved grant the builder seeded
 * (GNTTAB_RESERVED_CONSOLE) and binds the guest's console port. On every event it copies what
 * the guest produced in `out` into a private buffer, appends it to the log with a plain write,
 * publishes out_cons and notifies the guest (which may be waiting for room). The bytes are in
 * the file before out_cons moves, so a guest that sees its ring drained knows they are logged.
 *
 * A guest whose indices make no sense (out_prod more than the ring ahead of out_cons) loses its
 * console, with a line in Dom0's log; nothing else is affected. Xen's xenconsoled also rate-limits
 * a flooding guest; ringvisor serves one ringful per event, and the guest can produce no faster
 * than that.
 *
 * Simplification: Xen's xenconsoled finds new guests by watching @introduceDomain and reading
 * /local/domain/<id>/console/{ring-ref,port}; here the toolstack, in the same Dom0 kernel,
 * calls add() and remove() directly (it still writes those keys, for tools that read them).
 *
 * `xl console`: Xen's xenconsoled also copies each guest's output to a pty that `xl console`
 * opens, and what is typed there back to the guest. Here attach() is that pty: a client gets
 * every byte after the log has it, and types with write(); history() is what the pty would
 * still hold for a client that attaches late: the last HISTORY_BYTES this domain printed, kept
 * here rather than read back from the log, because the log is not this domain's alone: a VM's
 * directory is shared storage, and during a live migration the source's copy of the guest still
 * appends to it while the target's copy, built when the stream began, already does too.
 */
import { closeSync, mkdirSync, openSync, writeSync } from 'node:fs';
import { dirname } from 'node:path';
import type { Kernel } from '../../shared/kernel/kernel.ts';
import { ByteRingView } from '../../shared/public/io/byte-ring.ts';
import {
  XENCONSOLE_CONNECTED, XENCONS_IN_RING, XENCONS_OUT_RING, xencons_interface,
} from '../../shared/public/io/console.ts';
import { GNTTAB_RESERVED_CONSOLE } from '../../shared/public/grant_table.ts';
import { PAGE_SIZE } from '../../shared/public/xen.ts';
import { mapForeignPage, type ForeignPage } from '../lib/foreign-page.ts';

interface GuestConsole {
  domid: number;
  logPath: string;
  fd: number;
  page: ForeignPage;
  port: number;
  out: ByteRingView;
  in: ByteRingView;
  /** Typed input not yet on the guest's `in` ring. */
  input: Uint8Array[];
  broken: boolean;
  bytesLogged: number;
  /** The last HISTORY_BYTES of output, a ring: byte i of the output at tail[i % HISTORY_BYTES]. */
  tail: Uint8Array;
  /** Attached clients (xl console): each gets every byte of output, and is told when the console goes. */
  clients: Set<ConsoleClient>;
}

/** How much of each domain's output history() can give back (the toolstack asks for at most 16 KiB). */
export const HISTORY_BYTES = 64 * 1024;

/** An attached `xl console`. */
export interface ConsoleClient {
  output(bytes: Uint8Array): void;
  /** The guest is gone (destroyed) or its console broke. */
  closed(why: string): void;
}

export class Xenconsoled {
  private readonly guests = new Map<number, GuestConsole>();
  private readonly buf = new Uint8Array(xencons_interface.OUT_SIZE);

  constructor(private readonly k: Kernel, private readonly log: (line: string) => void = (l) => k.log(l)) {}

  /** domain_create_ring: start serving `domid`'s console, appending its output to `logPath`. */
  add(domid: number, port: number, logPath: string): void {
    if (this.guests.has(domid)) throw new Error(`xenconsoled: domain ${domid} already has a console`);
    const page = mapForeignPage(this.k, domid, GNTTAB_RESERVED_CONSOLE);
    if (page === null) throw new Error(`xenconsoled: cannot map the console page of domain ${domid}`);
    mkdirSync(dirname(logPath), { recursive: true });
    const fd = openSync(logPath, 'a');
    const bytes = new Uint8Array(page.words.buffer, page.words.byteOffset, PAGE_SIZE);
    let local: number;
    try {
      local = this.k.events.bindInterdomain(domid, port, () => this.service(domid));
    } catch (e) {
      closeSync(fd);
      page.unmap();
      throw e;
    }
    const g: GuestConsole = {
      domid, logPath, fd, page, port: local, input: [], broken: false, bytesLogged: 0,
      tail: new Uint8Array(HISTORY_BYTES), clients: new Set(),
      out: new ByteRingView(bytes, page.words, XENCONS_OUT_RING),
      in: new ByteRingView(bytes, page.words, XENCONS_IN_RING),
    };
    bytes[xencons_interface.connection] = XENCONSOLE_CONNECTED;
    this.guests.set(domid, g);
    this.service(domid); // whatever the guest printed before we were listening
  }

  /** Stop serving a guest (it was destroyed): unbind, unmap, close the log. */
  remove(domid: number): void {
    const g = this.guests.get(domid);
    if (!g) return;
    this.guests.delete(domid);
    this.k.events.close(g.port);
    g.page.unmap();
    closeSync(g.fd);
    for (const c of g.clients) c.closed(`domain ${domid} is gone`);
    g.clients.clear();
  }

  /** Attach a client to `domid`'s console (the pty `xl console` opens); returns the detach. */
  attach(domid: number, client: ConsoleClient): () => void {
    const g = this.guests.get(domid);
    if (!g || g.broken) throw new Error(`xenconsoled: no console for domain ${domid}`);
    g.clients.add(client);
    return () => { g.clients.delete(client); };
  }

  /** The last `max` bytes (at most HISTORY_BYTES) this domain has printed so far. */
  history(domid: number, max: number): Uint8Array {
    const g = this.guests.get(domid);
    if (!g) return new Uint8Array(0);
    const n = Math.min(max, HISTORY_BYTES, g.bytesLogged);
    const out = new Uint8Array(n);
    for (let got = 0; got < n;) {
      const at = (g.bytesLogged - n + got) % HISTORY_BYTES;
      const k = Math.min(n - got, HISTORY_BYTES - at);
      out.set(g.tail.subarray(at, at + k), got);
      got += k;
    }
    return out;
  }

  /** Type `data` at the guest's console (xl console's keystrokes). */
  write(domid: number, data: Uint8Array): void {
    const g = this.guests.get(domid);
    if (!g || g.broken) throw new Error(`xenconsoled: no console for domain ${domid}`);
    g.input.push(data.slice());
    this.pushInput(g);
  }

  logPath(domid: number): string | null {
    return this.guests.get(domid)?.logPath ?? null;
  }

  bytesLogged(domid: number): number {
    return this.guests.get(domid)?.bytesLogged ?? 0;
  }

  /** handle_ring_read, then any input that was waiting for room. */
  private service(domid: number): void {
    const g = this.guests.get(domid);
    if (!g || g.broken) return;
    let notify = false;
    for (;;) {
      const n = g.out.read(this.buf, 0, this.buf.length);
      if (n < 0) return this.breakConsole(g, 'out_prod is more than a ring ahead of out_cons');
      if (n === 0) break;
      writeSync(g.fd, this.buf, 0, n);
      for (let got = 0; got < n;) {
        const at = (g.bytesLogged + got) % HISTORY_BYTES;
        const k = Math.min(n - got, HISTORY_BYTES - at);
        g.tail.set(this.buf.subarray(got, got + k), at);
        got += k;
      }
      g.bytesLogged += n;
      notify = true;
      for (const c of g.clients) c.output(this.buf.slice(0, n));
    }
    if (notify) this.k.events.notify(g.port);
    this.pushInput(g);
  }

  private pushInput(g: GuestConsole): void {
    let wrote = false;
    while (g.input.length > 0) {
      const head = g.input[0];
      const n = g.in.write(head, 0, head.length);
      if (n < 0) return this.breakConsole(g, 'in_cons is more than a ring away from in_prod');
      wrote ||= n > 0;
      if (n < head.length) {
        g.input[0] = head.subarray(n);
        break;
      }
      g.input.shift();
    }
    if (wrote) this.k.events.notify(g.port);
  }

  private breakConsole(g: GuestConsole, why: string): void {
    g.broken = true;
    g.input.length = 0;
    this.log(`xenconsoled: domain ${g.domid}: console stopped: ${why}`);
    for (const c of g.clients) c.closed(`console of domain ${g.domid} stopped: ${why}`);
    g.clients.clear();
  }
}
