/*
 * What Dom0's services offer the code that runs beside them: the kernel, xenstored, Dom0's own
 * privileged XenStore client, xenconsoled, the toolstack's XenStore side, and VIRQ_DOM_EXC.
 *
 * Xen: the services a Dom0 Linux has after boot, which its kernel modules (xen-blkback,
 * xen-netback) and tools (xl) find in the running system. Declared apart from ./kernel.ts (which
 * builds it) so that backends, device models and the toolstack depend on this shape, not on the
 * boot code, and no import circle runs through Dom0's kernel.
 */
import type { Kernel } from '../shared/kernel/kernel.ts';
import type { XenbusClient } from '../shared/kernel/xenbus/client.ts';
import type { Xenconsoled } from './services/xenconsoled.ts';
import type { Xenstored } from './services/xenstored/server.ts';
import type { Toolstack } from './toolstack/xenstore-home.ts';

/** What Dom0's services offer a kernel module. */
export interface Dom0 {
  k: Kernel;
  xenstored: Xenstored;
  /** Dom0's own privileged XenStore client. */
  xs: XenbusClient;
  consoled: Xenconsoled;
  toolstack: Toolstack;
  socketPath: string;
  /** Call `f` on every VIRQ_DOM_EXC (some domain shut down or was destroyed). */
  onDomainException(f: () => void): void;
}

/** A loadable Dom0 kernel module. */
export interface Dom0KernelModule {
  init(dom0: Dom0): void | Promise<void>;
}
