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
 *   control  a BroadcastChannel name for harnesses (./toolstack/control.ts): toolstack calls without `xl`
 *   modules  kernel modules to load after the services are up: file URLs of modules exporting
 *            `init(dom0: Dom0)` (Linux's modprobe; backends register themselves there)
 *   quotas   xenstored quota overrides (xenstored -Q)
 *   xl       start the toolstack daemon (./toolstack/): { guestKernel, socket? } — VMs from their
 *            configs, reached by the `ringvisor` command line on <runDir>/xl/socket
 *
 * Dom0's own XenStore client uses a direct in-thread connection to xenstored, with Dom0's
 * privileges (see services/xenstored/local.ts); only DomUs go through ring pages.
 *
 * VIRQ_DOM_EXC: Dom0 binds the hypervisor's "a domain shut down or died" virq at boot and tells
 * whoever registered with onDomainException (the toolstack daemon). In Xen it is xenstored that
 * binds it and turns it into @releaseDomain for libxl; one Dom0 kernel runs both here.
 */
import { xenstoredSocketPath } from './lib/libxenstore.ts';
import { Kernel } from '../shared/kernel/kernel.ts';
import { XenbusClient } from '../shared/kernel/xenbus/client.ts';
import { VIRQ_DOM_EXC } from '../shared/public/event_channel.ts';
import type { KernelEnv } from '../shared/public/hypercall.ts';
import { errnoName } from '../shared/public/xen.ts';
import { serveControl } from './toolstack/control.ts';
import { Toolstack } from './toolstack/xenstore-home.ts';
import type { Dom0, Dom0KernelModule } from './dom0.ts';
import { startXl, type XlDaemonOptions } from './toolstack/daemon.ts';
import { Xenconsoled } from './services/xenconsoled.ts';
import { kernelPlatform } from './services/xenstored/platform.ts';
import type { Quotas } from './services/xenstored/quota.ts';
import { Xenstored } from './services/xenstored/server.ts';

export interface Dom0Module {
  runDir: string;
  socket?: string;
  control?: string;
  modules?: string[];
  quotas?: Partial<Quotas>;
  xl?: XlDaemonOptions;
}

export { xenstoredSocketPath } from './lib/libxenstore.ts';

export async function main(env: KernelEnv): Promise<void> {
  const k = new Kernel(env);
  const mod = env.module as Dom0Module;
  const idle = k.events.run();
  const xenstored = new Xenstored({ platform: kernelPlatform(k), quotas: mod.quotas, log: (l) => k.log(l) });
  const socketPath = mod.socket ?? xenstoredSocketPath(mod.runDir);
  await xenstored.listen(socketPath);
  const xs = new XenbusClient(xenstored.connectLocal());
  xs.tracer = k.hypercall; // its requests in xentrace too (TRC_GUEST_XS_*), as a DomU's
  const consoled = new Xenconsoled(k);
  const toolstack = new Toolstack(k.hypercall, xs, consoled, mod.runDir, (l) => k.log(l));
  await toolstack.initDom0();
  const domExc: (() => void)[] = [];
  const virq = k.hypercall.evtchn_bind_virq(VIRQ_DOM_EXC, 0);
  if (virq < 0) throw new Error(`dom0: cannot bind VIRQ_DOM_EXC: ${errnoName(virq)}`);
  k.events.bind(virq, () => { for (const f of domExc) f(); });
  const dom0: Dom0 = { k, xenstored, xs, consoled, toolstack, socketPath, onDomainException: (f) => { domExc.push(f); } };
  for (const url of mod.modules ?? []) await ((await import(url)) as Dom0KernelModule).init(dom0);
  if (mod.xl !== undefined) await startXl(dom0, mod.xl, mod.runDir);
  if (mod.control !== undefined) serveControl(dom0, mod.control);
  k.log(`dom0: xenstored on ${socketPath}, xenconsoled up${mod.xl ? ', xl toolstack daemon up' : ''}`);
  await idle;
}
