/*
 * The guest's PV console: its serial line, over the console ring page, to xenconsoled in Dom0.
 *
 * Xen/Linux: drivers/tty/hvc/hvc_xen.c (domU_write_console, domU_read_console, the console
 * interrupt), mini-os console/xencons_ring.c; the page is console.h's xencons_interface
 * (shared/public/io/console.ts). The builder gives every guest the page (start_info.console_mfn)
 * and an event channel to Dom0 (start_info.console_evtchn); the page is the guest's own RAM, so
 * there is nothing to map or grant: Dom0 maps it through the reserved grant the builder seeded.
 *
 * Output is queued and copied into `out` as room allows, with one notification per batch;
 * xenconsoled notifies back after taking bytes, and the handler continues. Input arrives in `in`
 * and goes to `onInput`. Once consoleInit() has run, the kernel's log() writes here (Linux's
 * printk goes to hvc0 the same way once the console is registered).
 */
import { ByteRingView } from '../public/io/byte-ring.ts';
import { ByteRingOutput } from './byte-ring-output.ts';
import { XENCONS_IN_RING, XENCONS_OUT_RING, xencons_interface } from '../public/io/console.ts';
import { PAGE_SIZE } from '../public/xen.ts';
import type { Kernel } from './kernel.ts';
import { viewAs } from '../view.ts';

const encoder = new TextEncoder();

export class XenConsole {
  private readonly outRing: ByteRingView;
  /** Output not yet wholly in the `out` ring. */
  private readonly out: ByteRingOutput;
  private readonly in: ByteRingView;
  private readonly inBuf = new Uint8Array(xencons_interface.IN_SIZE);
  private drainWaiters: (() => void)[] = [];
  private failed = false;
  /** Bytes typed at the console (by xenconsoled's client). */
  onInput: ((bytes: Uint8Array) => void) | null = null;
  readonly stats = { bytesOut: 0, bytesIn: 0, notifications: 0 };

  constructor(page: Int32Array, private readonly notify: () => void) {
    const bytes = viewAs(page, Uint8Array);
    this.outRing = new ByteRingView(bytes, page, XENCONS_OUT_RING);
    this.out = new ByteRingOutput(this.outRing);
    this.in = new ByteRingView(bytes, page, XENCONS_IN_RING);
  }

  /** hvc_console's write: queue the bytes and put as many as fit on the ring now. */
  write(data: string | Uint8Array): void {
    if (this.failed) return;
    const bytes = typeof data === 'string' ? encoder.encode(data) : data.slice();
    if (bytes.length === 0) return;
    this.out.push(bytes);
    this.stats.bytesOut += bytes.length;
    this.push();
  }

  /** Resolves once xenconsoled has taken every byte written so far off the ring. */
  drained(): Promise<void> {
    if (this.isDrained()) return Promise.resolve();
    return new Promise((resolve) => this.drainWaiters.push(resolve));
  }

  private isDrained(): boolean {
    return this.failed || (this.out.pending === 0 && this.outRing.used() === 0);
  }

  /** The console event channel fired: Dom0 took output or typed input. */
  interrupt(): void {
    if (this.failed) return;
    this.push();
    this.takeInput();
    if (this.isDrained()) {
      const waiters = this.drainWaiters;
      this.drainWaiters = [];
      for (const w of waiters) w();
    }
  }

  private push(): void {
    const n = this.out.flush();
    if (n < 0) return this.fail();
    if (n > 0) this.kick(); // a full ring waits for xenconsoled's notification that it took some
  }

  private takeInput(): void {
    let notify = false;
    for (;;) {
      const n = this.in.read(this.inBuf, 0, this.inBuf.length);
      if (n < 0) return this.fail();
      notify ||= this.in.consumerShouldNotify;
      if (n === 0) break;
      this.stats.bytesIn += n;
      this.onInput?.(this.inBuf.slice(0, n));
    }
    if (notify) this.kick();
  }

  private kick(): void {
    this.stats.notifications++;
    this.notify();
  }

  /** Dom0 wrote impossible indices: stop using the console rather than trust them. */
  private fail(): void {
    this.failed = true;
    this.out.clear();
    for (const w of this.drainWaiters) w();
    this.drainWaiters = [];
  }
}

/** xen_cons_init / hvc_xen's domU setup: bind the console port and send log() here from now on. */
export function consoleInit(k: Kernel): XenConsole {
  const port = k.si.console_evtchn;
  const cons = new XenConsole(k.memory.pageWords(k.si.console_gfn, true), () => k.events.notify(port));
  k.events.bind(port, () => cons.interrupt());
  k.console = cons;
  return cons;
}
