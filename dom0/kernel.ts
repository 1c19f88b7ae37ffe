/*
 * Dom0's kernel: boots like any guest, then becomes the control domain's services.
 *
 * Xen: what a Dom0 Linux and its init start after boot: xenstored (tools/xenstored), its
 * Unix socket for the tools, xenconsoled (tools/console/daemon), xen-init-dom0, the backend
 * drivers (modprobe xen-blkback, ...) and, on demand, the toolstack (xl). Here they all run in
 * Dom0's vCPU 0 thread, woken by event channels and socket I/O from the kernel's idle loop.
 *
 * Boot module (DomainConfig.module), all optional but runDir:
 *   runDir   the host run directory: console logs default to <runDir>/console/
 *   socket   where xenstored listens (default <runDir>/xenstored/socket, as Xen's
 *            /var/run/xenstored/socket)
 *   control  a BroadcastChannel name for the operator (./control.ts), until `xl` exists
 *   modules  kernel modules to load after the services are up: file URLs of modules exporting
 *            `init(dom0: Dom0)` (Linux's modprobe; backends register themselves there)
 *   quotas   xenstored quota overrides (xenstored -Q)
 *
 * Dom0's own XenStore client uses a direct in-thread connection to xenstored, with Dom0's
 * privileges (see xenstored/local.ts); only DomUs go through ring pages.
 */
import { Kernel } from '../shared/kernel/kernel.ts';
import { XenbusClient } from '../shared/kernel/xenbus/client.ts';
import type { KernelEnv } from '../shared/public/hypercall.ts';
import { serveControl } from './control.ts';
import { Toolstack } from './toolstack.ts';
import { Xenconsoled } from './xenconsoled.ts';
import { kernelPlatform } from './xenstored/platform.ts';
import type { Quotas } from './xenstored/quota.ts';
import { Xenstored } from './xenstored/server.ts';

export interface Dom0Module {
  runDir: string;
  socket?: string;
  control?: string;
  modules?: string[];
  quotas?: Partial<Quotas>;
}

/** What Dom0's services offer a kernel module. */
export interface Dom0 {
  k: Kernel;
  xenstored: Xenstored;
  /** Dom0's own privileged XenStore client. */
  xs: XenbusClient;
  consoled: Xenconsoled;
  toolstack: Toolstack;
  socketPath: string;
}

/** A loadable Dom0 kernel module. */
export interface Dom0KernelModule {
  init(dom0: Dom0): void | Promise<void>;
}

export function xenstoredSocketPath(runDir: string): string {
  return `${runDir}/xenstored/socket`;
}

export async function main(env: KernelEnv): Promise<void> {
  const k = new Kernel(env);
  const mod = env.module as Dom0Module;
  const idle = k.events.run();
  const xenstored = new Xenstored({ platform: kernelPlatform(k), quotas: mod.quotas, log: (l) => k.log(l) });
  const socketPath = mod.socket ?? xenstoredSocketPath(mod.runDir);
  await xenstored.listen(socketPath);
  const xs = new XenbusClient(xenstored.connectLocal());
  const consoled = new Xenconsoled(k);
  const toolstack = new Toolstack(k.hypercall, xs, consoled, mod.runDir);
  await toolstack.initDom0();
  const dom0: Dom0 = { k, xenstored, xs, consoled, toolstack, socketPath };
  for (const url of mod.modules ?? []) await ((await import(url)) as Dom0KernelModule).init(dom0);
  if (mod.control !== undefined) serveControl(dom0, mod.control);
  k.log(`dom0: xenstored on ${socketPath}, xenconsoled up`);
  await idle;
}
