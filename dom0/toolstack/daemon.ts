/*
 * Starting the toolstack daemon in Dom0: the xl-like toolstack as a service of Dom0's kernel.
 *
 * Xen: there is no daemon: `xl` is a program an administrator runs in Dom0, linking libxl, and
 * `xl create` forks a small process per domain that waits for its death and applies on_poweroff &
 * co. ringvisor's administrator is outside the host process, so that state lives here for the
 * host's lifetime: ./libxl.ts keeps each VM's config and acts on its death (VIRQ_DOM_EXC), and
 * ./server.ts answers the `ringvisor` command line on a Unix socket (./protocol.ts). It runs in
 * Dom0's vCPU thread, beside xenstored and xenconsoled, as xl runs in Dom0: every hypercall it
 * makes is Dom0's, every XenStore write goes through Dom0's privileged client.
 */
import type { Dom0 } from '../dom0.ts';
import { Libxl } from './libxl.ts';
import { xlSocketPath } from './protocol.ts';
import { serveXl } from './server.ts';

export interface XlDaemonOptions {
  /** The DomU kernel VMs boot (file URL). */
  guestKernel: string;
  /** Default: <runDir>/xl/socket. */
  socket?: string;
}

export async function startXl(dom0: Dom0, opts: XlDaemonOptions, runDir: string): Promise<Libxl> {
  const socket = opts.socket ?? xlSocketPath(runDir);
  const libxl = new Libxl(dom0, { guestKernel: opts.guestKernel, socket, runDir, log: (l) => dom0.k.log(l) });
  dom0.onDomainException(() => libxl.domainException());
  await serveXl(dom0, libxl, socket, runDir);
  return libxl;
}
