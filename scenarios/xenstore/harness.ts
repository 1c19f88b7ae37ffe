/*
 * Boots a host whose Dom0 runs xenstored, its Unix socket and xenconsoled, and gives the caller
 * what an administrator on that host has: the operator's line into Dom0 (create, destroy,
 * devices, console input; see dom0/toolstack/control.ts) and a XenStore client on xenstored's socket
 * (dom0/lib/libxenstore.ts), as Dom0's tools would use.
 *
 * Used by the XenStore, xenbus and console tests and by the xenstore benchmark.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomUUID } from 'node:crypto';
import { BroadcastChannel } from 'node:worker_threads';
import type { Dom0Message, Dom0Request } from '../../dom0/toolstack/control.ts';
import type { Dom0Module } from '../../dom0/kernel.ts';
import { xsOpen } from '../../dom0/lib/libxenstore.ts';
import type { DeviceSpec, GuestOptions } from '../../dom0/toolstack/xenstore-home.ts';
import type { Quotas } from '../../dom0/services/xenstored/quota.ts';
import { Host } from '../../hypervisor/host.ts';
import type { XenbusClient } from '../../shared/kernel/xenbus/client.ts';
import type { DomainConfig } from '../../shared/public/hypercall.ts';

const DOM0_KERNEL = new URL('../../dom0/kernel.ts', import.meta.url).href;

type Req<K extends Dom0Request['kind']> = Omit<Extract<Dom0Request, { kind: K }>, 'id' | 'kind'>;

export interface Dom0Harness {
  host: Host;
  runDir: string;
  socket: string;
  /** A tool's client on xenstored's socket. */
  xs: XenbusClient;
  /** Console lines from every domain's hypervisor console (Dom0's log, early guest output). */
  log: string[];
  createGuest(config: DomainConfig, opts?: GuestOptions): Promise<number>;
  destroyGuest(domid: number): Promise<void>;
  addDevice(device: DeviceSpec): Promise<{ frontend: string; backend: string }>;
  removeDevice(device: DeviceSpec): Promise<void>;
  consoleInput(domid: number, data: Uint8Array): Promise<void>;
  /** Resolves when `domid` has been destroyed (by itself or by Dom0). */
  gone(domid: number): Promise<void>;
  close(): Promise<void>;
}

export interface Dom0HarnessOptions {
  memoryMiB?: number;
  dom0MemoryKiB?: number;
  modules?: string[];
  quotas?: Partial<Quotas>;
  /** Keep the run directory afterwards (default: removed). */
  keepRunDir?: boolean;
}

export async function bootDom0(opts: Dom0HarnessOptions = {}): Promise<Dom0Harness> {
  const host = new Host({ memoryMiB: opts.memoryMiB ?? 96 });
  const log: string[] = [];
  const crashes: string[] = [];
  host.on('console', (e: { domid: number; text: string }) => log.push(`d${e.domid}: ${e.text.replace(/\n$/, '')}`));
  const runDir = mkdtempSync(join(tmpdir(), 'ringvisor-'));
  const channel = `ringvisor-dom0-${randomUUID()}`;
  const ch = new BroadcastChannel(channel);
  const waiting = new Map<number, { resolve(v: unknown): void; reject(e: Error): void }>();
  let ready: ((socket: string) => void) | null = null;
  const failAll = (why: string) => {
    for (const w of waiting.values()) w.reject(new Error(why));
    waiting.clear();
  };
  ch.onmessage = (ev) => {
    const m = (ev as { data: Dom0Message | Dom0Request }).data;
    if (m.kind === 'ready') ready?.(m.socket);
    else if (m.kind === 'reply') {
      const w = waiting.get(m.id);
      waiting.delete(m.id);
      if (m.ok) w?.resolve(m.value);
      else w?.reject(new Error(m.error));
    }
  };
  let nextId = 1;
  const request = <K extends Dom0Request['kind']>(kind: K, body: Req<K>): Promise<unknown> => {
    if (crashes.length) return Promise.reject(new Error(crashes.join('\n')));
    const id = nextId++;
    return new Promise((resolve, reject) => {
      waiting.set(id, { resolve, reject });
      ch.postMessage({ ...body, kind, id });
    });
  };

  // Domains that end by themselves: Dom0 must release what it holds (see Toolstack.forgetDomain).
  const destroying = new Set<number>();
  const goneWaiters = new Map<number, (() => void)[]>();
  const goneDomains = new Set<number>();
  host.on('shutdown', (e: { domid: number; reason: string; detail: string }) => {
    if (e.reason !== 'crash') return;
    crashes.push(`d${e.domid} crashed: ${e.detail}`);
    if (e.domid === 0) failAll(`Dom0 crashed: ${e.detail}`);
  });
  host.on('destroyed', (e: { domid: number }) => {
    goneDomains.add(e.domid);
    for (const w of goneWaiters.get(e.domid) ?? []) w();
    goneWaiters.delete(e.domid);
    if (e.domid !== 0 && !destroying.has(e.domid)) void request('forget', { domid: e.domid }).catch(() => undefined);
  });

  const socket = await new Promise<string>((resolve, reject) => {
    ready = resolve;
    const module: Dom0Module = { runDir, control: channel, modules: opts.modules, quotas: opts.quotas };
    host.createDomain({ name: 'Domain-0', vcpus: 1, memoryKiB: opts.dom0MemoryKiB ?? 16 * 1024, kernel: DOM0_KERNEL, module }, { privileged: true })
      .catch(reject);
    host.once('shutdown', (e: { domid: number; detail: string }) => {
      if (e.domid === 0) reject(new Error(`Dom0 stopped while booting: ${e.detail}`));
    });
  });
  const xs = await xsOpen(socket);

  return {
    host, runDir, socket, xs, log,
    createGuest: async (config, o) => (await request('create', { config, opts: o })) as number,
    destroyGuest: async (domid) => {
      destroying.add(domid);
      await request('destroy', { domid });
    },
    addDevice: async (device) => (await request('add-device', { device })) as { frontend: string; backend: string },
    removeDevice: async (device) => { await request('remove-device', { device }); },
    consoleInput: async (domid, data) => { await request('console-input', { domid, data }); },
    gone: (domid) => goneDomains.has(domid) ? Promise.resolve()
      : new Promise((r) => goneWaiters.set(domid, [...(goneWaiters.get(domid) ?? []), r])),
    async close() {
      xs.close();
      ch.close();
      await host.close();
      if (!opts.keepRunDir) rmSync(runDir, { recursive: true, force: true });
    },
  };
}
