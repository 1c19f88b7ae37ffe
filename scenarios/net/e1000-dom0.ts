/*
 * A Dom0 kernel module for the network harness: starts and stops emulated e1000 NICs for HVM test
 * guests (as libxl starts QEMU for a `model=e1000` vif), and reports their counters.
 *
 * It listens on the harness's network channel beside ./dom0-module.ts and answers only the e1000
 * messages (./protocol.ts: e1000-start, e1000-stop, e1000-stats). A model that fails to start
 * answers with the error; nothing is left half-made (dom0/device-models/e1000/e1000.ts).
 */
import { BroadcastChannel } from 'node:worker_threads';
import type { Dom0 } from '../../dom0/dom0.ts';
import { startE1000Model, type E1000Model } from '../../dom0/device-models/e1000/e1000.ts';
import { packetPool, type Packet } from '../../dom0/lib/packet.ts';
import { bridges, type BridgePort } from '../../dom0/services/bridge/bridge.ts';
import type { NetMessage } from './protocol.ts';

export function init(dom0: Dom0): void {
  const control = (dom0.k.env.module as { control?: string }).control;
  if (control === undefined) return;
  const ch = new BroadcastChannel(`${control}-net`);
  const post = (m: NetMessage) => ch.postMessage(m);
  const models = new Map<number, E1000Model>();
  ch.onmessage = (ev) => {
    const m = (ev as { data: NetMessage }).data;
    switch (m.kind) {
      case 'e1000-start':
        try {
          models.set(m.domid, startE1000Model(dom0.k, {
            domid: m.domid, vcpus: m.vcpus, index: 0, mac: m.mac, bridge: m.bridge, buffered: m.buffered,
          }));
          post({ kind: 'e1000-reply', id: m.id });
        } catch (e) {
          post({ kind: 'e1000-reply', id: m.id, error: e instanceof Error ? e.message : String(e) });
        }
        return;
      case 'e1000-stats':
      case 'e1000-stop': {
        const model = models.get(m.domid);
        if (model === undefined) {
          post({ kind: 'e1000-reply', id: m.id, error: `no e1000 for d${m.domid}` });
          return;
        }
        const s = model.stats();
        const stats: Record<string, number> = { ...s.nic, rx_backlog: s.rxBacklog };
        for (const [k, v] of Object.entries(s.ioreq)) stats[`ioreq_${k}`] = v;
        for (const [k, v] of Object.entries(s.mapcache)) stats[`mapcache_${k}`] = v;
        if (m.kind === 'e1000-stop') {
          model.stop();
          models.delete(m.domid);
        }
        post({ kind: 'e1000-reply', id: m.id, stats });
        return;
      }
      case 'e1000-inject': {
        // Broadcast frames from a port of Dom0's own (as the bench's floor does): what a driver
        // under test receives without another guest.
        const bridge = bridges.get(m.bridge);
        const pool = packetPool(dom0.k);
        const src: BridgePort = { name: 'inject', deliver: (p: Packet) => { p.release(); return true; } };
        bridge?.addPort(src);
        for (let i = 0; i < m.frames && bridge; i++) {
          const p = pool.alloc(60);
          if (p === null) break;
          p.pages[0].fill(0, 0, 60);
          p.pages[0].fill(0xff, 0, 6);
          p.pages[0].set([0x00, 0x16, 0x3e, 0x7f, 0xee, 0x01, 0x08, 0x06], 6);
          bridge.input(src, p);
        }
        bridge?.removePort(src);
        post({ kind: 'e1000-reply', id: m.id, error: bridge ? undefined : `no bridge ${m.bridge}` });
        return;
      }
      default:
        return;
    }
  };
}
