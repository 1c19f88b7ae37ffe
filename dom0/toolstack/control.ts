/*
 * A harness's line into Dom0: create and destroy guests from a bare DomainConfig, add and remove
 * devices, type at a console — the toolstack's calls without a config file.
 *
 * Xen: none; an administrator uses `xl` (ringvisor's is the `ringvisor` command line and the
 * toolstack daemon in this folder). Tests and benchmarks that boot their own test kernels use this
 * instead: a BroadcastChannel (control messages only, never data), where each request names a
 * toolstack call (./xenstore-home.ts) whose result comes back in a reply with the request's id. Dom0
 * announces itself with 'ready' once its services listen, which `ringvisor host` waits for too.
 *
 * The domains a harness creates here are this toolstack's: when one shuts down (VIRQ_DOM_EXC),
 * it applies the config's on_poweroff / on_reboot / on_crash, as xl does for its own
 * (tools/xl/xl_vmcontrol.c handle_domain_death; ./libxl.ts for the domains `xl` creates).
 */
import { BroadcastChannel } from 'node:worker_threads';
import { shutdownAction, type DomainConfig } from '../../shared/public/hypercall.ts';
import type { Dom0 } from '../dom0.ts';
import type { DeviceSpec, GuestOptions } from './xenstore-home.ts';
import { blockBackendKill, blockBackendStart, type BackendKillOptions } from './backend-kill.ts';

export type Dom0Request =
  | { kind: 'create'; id: number; config: DomainConfig; opts?: GuestOptions }
  | { kind: 'destroy'; id: number; domid: number }
  /** The domain ended by itself (poweroff, crash): release what Dom0 held for it. */
  | { kind: 'forget'; id: number; domid: number }
  | { kind: 'add-device'; id: number; device: DeviceSpec }
  | { kind: 'remove-device'; id: number; device: DeviceSpec }
  | { kind: 'console-input'; id: number; domid: number; data: Uint8Array }
  /** Kill the backend of one vbd (now, or after N more requests) and start a new one (./backend-kill.ts). */
  | { kind: 'block-backend-kill'; id: number; domid: number; devid: number; opts?: BackendKillOptions }
  | { kind: 'block-backend-start'; id: number; domid: number; devid: number };

export type Dom0Message =
  | { kind: 'ready'; socket: string }
  | { kind: 'reply'; id: number; ok: true; value: unknown }
  | { kind: 'reply'; id: number; ok: false; error: string };

export function serveControl(dom0: Dom0, name: string): BroadcastChannel {
  const ch = new BroadcastChannel(name);
  const post = (m: Dom0Message) => ch.postMessage(m);
  const ts = dom0.toolstack;
  const ours = new Map<number, { config: DomainConfig; opts?: GuestOptions }>();
  const create = async (config: DomainConfig, opts?: GuestOptions) => {
    const domid = await ts.createDomain(config, opts);
    ours.set(domid, { config, opts });
    void onDeaths(); // it may have shut down before it was ours to watch
    return domid;
  };
  let scanning: Promise<void> | null = null;
  const onDeaths = (): Promise<void> => (scanning ??= (async () => {
    try {
      const infos = await dom0.k.hypercall.sysctl_getdomaininfolist();
      if (typeof infos === 'number') return;
      // A snapshot: a restart below adds its new domain to `ours`, which this look (made before it
      // existed) must not judge gone.
      for (const [domid, rec] of [...ours]) {
        const info = infos.find((i) => i.domid === domid);
        if (info && info.state !== 'shutdown') continue;
        ours.delete(domid);
        const action = info ? shutdownAction(rec.config, info.shutdown_reason ?? 'poweroff') : 'destroy';
        if (action === 'preserve') continue;
        // destroy (or it is gone already): release what Dom0 held for it; restart: then build it again.
        await (info ? ts.destroyDomain(domid) : ts.forgetDomain(domid)).catch(() => undefined);
        if (action === 'restart') await create({ ...rec.config, paused: false }, rec.opts).catch((e: Error) => dom0.k.log(`control: restarting ${rec.config.name} failed: ${e.message}`));
      }
    } finally {
      scanning = null;
    }
  })());
  dom0.onDomainException(() => void onDeaths().then(() => onDeaths())); // a death during a scan is caught by the next
  // 'forget': the harness saw its domain end and wants it gone, whether or not the policy got to it first.
  const release = async (domid: number) => {
    ours.delete(domid);
    const info = await dom0.k.hypercall.domctl_getdomaininfo(domid);
    if (typeof info === 'number') return ts.forgetDomain(domid);
    return ts.destroyDomain(domid).catch(() => ts.forgetDomain(domid)); // destroyed meanwhile by the policy: only forget
  };
  ch.onmessage = (ev) => {
    const m = (ev as { data: Dom0Request | Dom0Message }).data;
    if (m.kind === 'ready' || m.kind === 'reply') return;
    const run = async (): Promise<unknown> => {
      switch (m.kind) {
        case 'create': return create(m.config, m.opts);
        case 'destroy': ours.delete(m.domid); return ts.destroyDomain(m.domid);
        case 'forget': return release(m.domid);
        case 'add-device': return ts.addDevice(m.device);
        case 'remove-device': return ts.removeDevice(m.device);
        case 'console-input': return dom0.consoled.write(m.domid, m.data);
        case 'block-backend-kill': return blockBackendKill(dom0, m.domid, m.devid, m.opts);
        case 'block-backend-start': return blockBackendStart(dom0, m.domid, m.devid);
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
