/*
 * A ringvisor host with everything an administrator expects: the hypervisor, Dom0 running
 * xenstored, xenconsoled, blkback, the IDE device model (on demand) and the xl toolstack daemon,
 * with its sockets in one run directory. `ringvisor host` runs one in the foreground; the default
 * scenario and the tests start one in-process.
 *
 * Xen: booting Xen with a Dom0 whose init starts xencommons (xenstored, xenconsoled), loads the
 * backend drivers, and leaves the administrator a shell with `xl`. The run directory plays Xen's
 * /var/run/xen + /var/run/xenstored:
 *
 *   <runDir>/xenstored/socket   xenstored's socket (xenstore-ls & co.)
 *   <runDir>/xl/socket          the toolstack daemon (create, list, console, ...)
 *   <runDir>/console/           console logs of domains that have no VM directory
 *   <runDir>/host.json          this host's pid, so the next one can tell it died (dom0/toolstack/host-record.ts)
 *
 * The default run directory and the bounds of --memory: ./defaults.ts.
 */
import { randomUUID } from 'node:crypto';
import { mkdirSync, rmSync } from 'node:fs';
import { connect } from 'node:net';
import { resolve } from 'node:path';
import { BroadcastChannel } from 'node:worker_threads';
import type { Dom0Message } from '../dom0/toolstack/control.ts';
import { xenstoredSocketPath, type Dom0Module } from '../dom0/kernel.ts';
import { xlSocketPath } from '../dom0/toolstack/protocol.ts';
import type { BridgeConfig, NetHostOptions } from '../dom0/backends/netback/module.ts';
import { cleanUpAfterDeadHost, removeHostRecord, writeHostRecord, type Cleanup } from '../dom0/toolstack/host-record.ts';
import { Host, type ShutdownEvent } from '../hypervisor/host.ts';
import { MAX_HOST_MEMORY_MIB } from '../hypervisor/state.ts';
import { DOM0_MEMORY_MIB, hostMemoryProblem } from './defaults.ts';
import { XlClient } from './client.ts';
import { CMDLINE_WAIT } from '../shared/public/cmdline.ts';
import type { WaitPolicy } from '../shared/wait.ts';

const DOM0_KERNEL = new URL('../dom0/kernel.ts', import.meta.url).href;
const BLKBACK = new URL('../backends/blkback/module.ts', import.meta.url).href;
const NETBACK = new URL('../dom0/backends/netback/module.ts', import.meta.url).href;
/** The kernel image every VM boots (dom0/toolstack passes it to the domain builder). */
export const GUEST_KERNEL = new URL('../domu/kernel.ts', import.meta.url).href;

export interface HostOptions {
  runDir: string;
  /** Guest RAM the hypervisor manages, MiB (Dom0's included). */
  memoryMiB?: number;
  dom0MemoryMiB?: number;
  /** pCPU slots (hypervisor/host.ts HostOptions.pcpus; default: the machine's cores). */
  pcpus?: number;
  /** Hypervisor and early-boot console lines ("(XEN) ...", "(d0) ..."). */
  log?: (line: string) => void;
  /** The host's bridges (default: xenbr0, no uplink); see dom0/backends/netback/module.ts. */
  bridges?: BridgeConfig[];
  /**
   * The waiting policy (shared/wait.ts) for the whole host: the hypervisor's, Dom0's (its command
   * line) and, through the toolstack, every guest's. Default irq.
   */
  wait?: WaitPolicy;
}

export interface RunningHost {
  host: Host;
  runDir: string;
  xlSocket: string;
  xenstoredSocket: string;
  /** What was left by a previous host on this run directory that died (kill -9), and was removed. */
  cleanedUp: Cleanup | null;
  /** Destroy the VMs (through the toolstack, so their directories are left tidy), then the host. */
  close(): Promise<void>;
}

/** True if something answers on `path` (a host already runs there). */
export function socketAnswers(path: string): Promise<boolean> {
  return new Promise((done) => {
    const s = connect(path);
    s.once('connect', () => { s.destroy(); done(true); });
    s.once('error', () => done(false));
  });
}

export async function startHost(opts: HostOptions): Promise<RunningHost> {
  const runDir = resolve(opts.runDir);
  const xlSocket = xlSocketPath(runDir);
  const xenstoredSocket = xenstoredSocketPath(runDir);
  // A Unix socket path must fit sockaddr_un (108 bytes with its NUL on Linux).
  if (Buffer.byteLength(xlSocket) > 107 || Buffer.byteLength(xenstoredSocket) > 107) {
    throw new Error(`run directory ${runDir} is too long for a Unix socket path (at most about 90 bytes; use --run-dir)`);
  }
  const memoryMiB = opts.memoryMiB ?? 256;
  const dom0MiB = opts.dom0MemoryMiB ?? DOM0_MEMORY_MIB;
  // `ringvisor host` checks hostMemoryProblem first; a harness may run a smaller host, never an impossible one.
  if (memoryMiB <= dom0MiB || memoryMiB > MAX_HOST_MEMORY_MIB) throw new Error(hostMemoryProblem(memoryMiB) ?? `memory ${memoryMiB} MiB`);
  if (await socketAnswers(xlSocket)) throw new Error(`a ringvisor host is already running at ${xlSocket}`);
  mkdirSync(runDir, { recursive: true });
  const log = opts.log ?? ((line: string) => process.stdout.write(`${line}\n`));
  // A host killed with -9 left its sockets and its VMs' state files: clear them, and say so.
  const cleanedUp = cleanUpAfterDeadHost(runDir, [xlSocket, xenstoredSocket]);
  if (cleanedUp) {
    log(`the previous host on ${runDir} (pid ${cleanedUp.host.pid}, up since ${cleanedUp.host.started}) died without stopping; ` +
      `removed ${cleanedUp.sockets.length} stale socket(s)${cleanedUp.vms.length ? ` and the state files of ${cleanedUp.vms.join(', ')}` : ''}`);
  }
  writeHostRecord(runDir, { pid: process.pid, memoryMiB, started: new Date().toISOString() });
  const host = new Host({ memoryMiB, log, wait: opts.wait, pcpus: opts.pcpus, spareKernel: GUEST_KERNEL });
  host.on('console', (e: { domid: number; text: string }) => log(`(d${e.domid}) ${e.text.replace(/\n$/, '')}`));

  // Dom0 announces itself on a control channel once its services listen (dom0/toolstack/control.ts).
  const channel = `ringvisor-host-${randomUUID()}`;
  const ch = new BroadcastChannel(channel);
  const ready = new Promise<void>((ok, fail) => {
    ch.onmessage = (ev) => { if ((ev as { data: Dom0Message }).data.kind === 'ready') ok(); };
    host.on('shutdown', (e: ShutdownEvent) => {
      if (e.domid === 0) fail(new Error(`Dom0 stopped while booting: ${e.detail}`));
    });
  });
  const module: Dom0Module & { net: NetHostOptions } = {
    runDir, control: channel, modules: [BLKBACK, NETBACK], xl: { guestKernel: GUEST_KERNEL }, net: { bridges: opts.bridges },
  };
  try {
    await host.createDomain({
      name: 'Domain-0', vcpus: 1, memoryKiB: dom0MiB * 1024, kernel: DOM0_KERNEL, module,
      cmdline: `${CMDLINE_WAIT}=${host.wait}`,
    }, { privileged: true });
    await ready;
  } catch (e) {
    ch.close();
    await host.close();
    removeHostRecord(runDir);
    throw e;
  }
  ch.close();

  let closing: Promise<void> | null = null;
  return {
    host, runDir, xlSocket, xenstoredSocket, cleanedUp,
    close() {
      closing ??= (async () => {
        try {
          const c = await XlClient.open(runDir);
          await c.call({ verb: 'destroy-all' });
          c.close();
        } catch {
          // Dom0 is gone already: the host tears down whatever is left
        }
        await host.close();
        rmSync(xlSocket, { force: true });
        rmSync(xenstoredSocket, { force: true });
        removeHostRecord(runDir);
      })();
      return closing;
    },
  };
}
