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
import { waitForState } from '../../dom0/toolstack/devices.ts';
import type { Packet } from '../../dom0/lib/packet.ts';
import type { BridgePort } from '../../dom0/services/bridge/bridge.ts';
import { floorRr, floorStream } from './bridge-floor.ts';
import { netbackParams } from '../../dom0/backends/netback/tx.ts';

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
      case 'wait-connected': {
        // Until the backend says Connected: frames flooded to a vif before that are dropped, and
        // ringvisor's guests have no timer to send an ARP request again.
        void waitForState(dom0.xs, `${m.path}/state`, (s) => s === 4, 60_000, `${m.path} did not connect`)
          .catch(() => undefined).then(() => post({ kind: 'wait-connected-reply', id: m.id }));
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
      case 'bridge-send': {
        post({ kind: 'bridge-send-reply', id: m.id, ...bridgeFloor(dom0, m.bridge, m.frames, m.size) });
        return;
      }
      case 'netback-param': {
        netbackParams.txMap = m.txMap;
        post({ kind: 'netback-param-reply', id: m.id });
        return;
      }
      case 'floor-run': {
        const bridge = bridges.get(m.bridge);
        const pool = packetPool(dom0.k);
        const run = bridge === undefined ? Promise.reject(new Error(`no bridge ${m.bridge}`))
          : m.workload === 'udp-stream' ? floorStream(dom0.k, bridge, pool, m.size, m.count) : floorRr(dom0.k, bridge, pool, m.size, m.count);
        void run.then(
          (r) => post({ kind: 'floor-reply', id: m.id, ms: r.ms, pps: r.result.pps, MBps: r.result.MBps, received: r.result.received, lost: r.result.lost, packets: r.a.tx_packets + r.b.tx_packets }),
          (e) => post({ kind: 'floor-reply', id: m.id, error: e instanceof Error ? e.message : String(e), ms: 0, pps: 0, MBps: 0, received: 0, lost: 0, packets: 0 }),
        );
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

/**
 * The benchmark's floor: Dom0 itself sends `frames` UDP-sized frames through the bridge, from one
 * port to another whose MAC the bridge has learned, with no guest and no ring: the cost of a
 * packet buffer, the bridge's lookup and a delivery, which every guest-to-guest packet pays too.
 */
function bridgeFloor(dom0: Dom0, name: string, frames: number, size: number): { ms: number; frames: number } {
  const bridge = bridges.get(name);
  if (bridge === undefined) return { ms: 0, frames: 0 };
  const pool = packetPool(dom0.k);
  let delivered = 0;
  const sink: BridgePort = { name: 'floor-sink', deliver: (p: Packet) => { delivered++; p.release(); return true; } };
  const src: BridgePort = { name: 'floor-src', deliver: (p: Packet) => { p.release(); return true; } };
  bridge.addPort(sink);
  bridge.addPort(src);
  const frame = new Uint8Array(size);
  frame.set([0x00, 0x16, 0x3e, 0x7f, 0xff, 0x02, 0x00, 0x16, 0x3e, 0x7f, 0xff, 0x01, 0x08, 0x00]);
  const hello = new Uint8Array(60);
  hello.set(frame.subarray(6, 12), 6); // the sink speaks first, so the bridge learns where it is
  const h = pool.alloc(60)!;
  h.copyIn(hello);
  bridge.input(sink, h);
  delivered = 0;
  const t0 = performance.now();
  for (let i = 0; i < frames; i++) {
    const p = pool.alloc(size);
    if (p === null) continue;
    p.copyIn(frame);
    bridge.input(src, p);
  }
  const ms = performance.now() - t0;
  bridge.removePort(sink);
  bridge.removePort(src);
  return { ms, frames: delivered };
}
