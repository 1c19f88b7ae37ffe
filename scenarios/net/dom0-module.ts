/*
 * A Dom0 kernel module for the network harness: loads netback (with the host's bridges), and
 * answers the harness's questions: counters of every vif and bridge, uplink ports, captures.
 */
import { BroadcastChannel } from 'node:worker_threads';
import type { Dom0 } from '../../dom0/dom0.ts';
import { init as initNetback, vifs } from '../../dom0/backends/netback/module.ts';
import { packetPool } from '../../dom0/lib/packet.ts';
import { bridges } from '../../dom0/services/bridge/bridge.ts';
import { uplinks } from '../../dom0/services/bridge/uplink.ts';
import { startCapture, type Capture } from '../../dom0/services/bridge/capture.ts';
import type { NetMessage } from './protocol.ts';

export async function init(dom0: Dom0): Promise<void> {
  await initNetback(dom0);
  const control = (dom0.k.env.module as { control?: string }).control;
  if (control === undefined) return;
  const ch = new BroadcastChannel(`${control}-net`);
  const post = (m: NetMessage) => ch.postMessage(m);
  const captures = new Map<string, Capture>();
  // XenStore writes under a path, in order (state and hotplug-status nodes), for handshake tests.
  const logs = new Map<string, string[]>();
  ch.onmessage = (ev) => {
    const m = (ev as { data: NetMessage }).data;
    switch (m.kind) {
      case 'vif-stats': {
        const stats = Object.fromEntries([...vifs.entries()].map(([path, be]) => [path, be.stats()]));
        const br = Object.fromEntries([...bridges.entries()].map(([name, b]) => [name, { ports: b.portNames(), fdb: b.table(), stats: { ...b.stats } }]));
        post({ kind: 'vif-stats-reply', id: m.id, stats, pool: packetPool(dom0.k).inUse, bridges: br });
        return;
      }
      case 'watch-log': {
        let log = logs.get(m.path);
        if (log === undefined) {
          const entries: string[] = [];
          logs.set(m.path, entries);
          log = entries;
          void dom0.xs.watch(m.path, async (path) => {
            if (!/\/(state|hotplug-status)$/.test(path)) return;
            entries.push(`${path.slice(m.path.length)}=${(await dom0.xs.tryRead(path)) ?? '(gone)'}`);
          }).then(() => post({ kind: 'watch-log-reply', id: m.id, entries: [...entries] }));
          return;
        }
        post({ kind: 'watch-log-reply', id: m.id, entries: [...log] });
        return;
      }
      case 'uplink-port': {
        const up = uplinks.get(m.bridge);
        post(up ? { kind: 'uplink-reply', id: m.id, port: up.port } : { kind: 'uplink-reply', id: m.id, error: `no uplink on ${m.bridge}` });
        return;
      }
      case 'uplink-peer': {
        try {
          const up = uplinks.get(m.bridge);
          if (up === undefined) throw new Error(`no uplink on ${m.bridge}`);
          up.addPeer(m.peer);
          post({ kind: 'uplink-reply', id: m.id, port: up.port });
        } catch (e) {
          post({ kind: 'uplink-reply', id: m.id, error: String(e) });
        }
        return;
      }
      case 'capture': {
        try {
          if (m.file !== null) {
            captures.set(m.port, startCapture(m.port, m.file));
            post({ kind: 'capture-reply', id: m.id, frames: 0 });
          } else {
            const c = captures.get(m.port);
            captures.delete(m.port);
            post({ kind: 'capture-reply', id: m.id, frames: c?.stop() ?? 0 });
          }
        } catch (e) {
          post({ kind: 'capture-reply', id: m.id, error: e instanceof Error ? e.message : String(e) });
        }
        return;
      }
      default:
        return;
    }
  };
}
