/*
 * A harness's line into Dom0: create and destroy guests from a bare DomainConfig, add and remove
 * devices, type at a console — the toolstack's calls without a config file.
 *
 * Xen: none; an administrator uses `xl` (ringvisor's is the `ringvisor` command line and the
 * toolstack daemon in this folder). Tests and benchmarks that boot their own test kernels use this
 * instead: a BroadcastChannel (control messages only, never data), where each request names a
 * toolstack call (./xenstore-home.ts) whose result comes back in a reply with the request's id. Dom0
 * announces itself with 'ready' once its services listen, which `ringvisor host` waits for too.
 */
import { BroadcastChannel } from 'node:worker_threads';
import type { DomainConfig } from '../../shared/public/hypercall.ts';
import type { Dom0 } from '../dom0.ts';
import type { DeviceSpec, GuestOptions } from './xenstore-home.ts';

export type Dom0Request =
  | { kind: 'create'; id: number; config: DomainConfig; opts?: GuestOptions }
  | { kind: 'destroy'; id: number; domid: number }
  /** The domain ended by itself (poweroff, crash): release what Dom0 held for it. */
  | { kind: 'forget'; id: number; domid: number }
  | { kind: 'add-device'; id: number; device: DeviceSpec }
  | { kind: 'remove-device'; id: number; device: DeviceSpec }
  | { kind: 'console-input'; id: number; domid: number; data: Uint8Array };

export type Dom0Message =
  | { kind: 'ready'; socket: string }
  | { kind: 'reply'; id: number; ok: true; value: unknown }
  | { kind: 'reply'; id: number; ok: false; error: string };

export function serveControl(dom0: Dom0, name: string): BroadcastChannel {
  const ch = new BroadcastChannel(name);
  const post = (m: Dom0Message) => ch.postMessage(m);
  const ts = dom0.toolstack;
  ch.onmessage = (ev) => {
    const m = (ev as { data: Dom0Request | Dom0Message }).data;
    if (m.kind === 'ready' || m.kind === 'reply') return;
    const run = async (): Promise<unknown> => {
      switch (m.kind) {
        case 'create': return ts.createDomain(m.config, m.opts);
        case 'destroy': return ts.destroyDomain(m.domid);
        case 'forget': return ts.forgetDomain(m.domid);
        case 'add-device': return ts.addDevice(m.device);
        case 'remove-device': return ts.removeDevice(m.device);
        case 'console-input': return dom0.consoled.write(m.domid, m.data);
      }
    };
    run().then(
      (value) => post({ kind: 'reply', id: m.id, ok: true, value: value ?? null }),
      (e: unknown) => post({ kind: 'reply', id: m.id, ok: false, error: e instanceof Error ? e.message : String(e) }),
    );
  };
  post({ kind: 'ready', socket: dom0.socketPath });
  return ch;
}
