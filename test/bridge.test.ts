/*
 * The learning bridge on its own: learning, forwarding to the learned port, flooding broadcast and
 * unknown destinations, ageing, per-port counters, and frames shared (not copied) while flooded.
 */
import test from 'ava';
import type { Kernel } from '../shared/kernel/kernel.ts';
import { PacketPool, type Packet } from '../dom0/lib/packet.ts';
import { Bridge, type BridgePort } from '../dom0/services/bridge/bridge.ts';

function pool(): PacketPool {
  let gfn = 0;
  const k = { pages: { alloc: () => gfn++ }, memory: { page: () => new Uint8Array(4096) } } as unknown as Kernel;
  return new PacketPool(k, 64);
}

class Port implements BridgePort {
  got: number[] = [];
  constructor(readonly name: string) {}
  deliver(p: Packet): boolean {
    this.got.push(p.pages[0][13]); // a tag carried in the ethertype's low byte
    p.release();
    return true;
  }
}

function frame(pl: PacketPool, dst: number, src: number, tag: number): Packet {
  const p = pl.alloc(60)!;
  p.pages[0].fill(0, 0, 60);
  p.pages[0].set([dst === 0xff ? 0xff : 0x00, 0x16, 0x3e, 0, 0, dst], 0);
  if (dst === 0xff) p.pages[0].set([0xff, 0xff, 0xff, 0xff, 0xff, 0xff], 0);
  p.pages[0].set([0x00, 0x16, 0x3e, 0, 0, src], 6);
  p.pages[0][13] = tag;
  return p;
}

test('floods unknown and broadcast, learns sources, then forwards to one port; counters per port', (t) => {
  let now = 0;
  const br = new Bridge('xenbr0', () => now, 1000);
  const pl = pool();
  const [a, b, c] = [new Port('vif1.0'), new Port('vif2.0'), new Port('vif3.0')];
  for (const p of [a, b, c]) br.addPort(p);
  br.input(a, frame(pl, 2, 1, 1)); // A → B, B unknown: flooded to B and C
  t.deepEqual([b.got, c.got], [[1], [1]]);
  br.input(b, frame(pl, 1, 2, 2)); // B → A: A was learned, only A
  t.deepEqual([a.got, c.got], [[2], [1]]);
  br.input(a, frame(pl, 2, 1, 3)); // A → B: now known
  t.deepEqual([b.got, c.got], [[1, 3], [1]]);
  br.input(c, frame(pl, 0xff, 3, 4)); // broadcast: everyone but the sender
  t.deepEqual([a.got, b.got, c.got], [[2, 4], [1, 3, 4], [1]]);
  t.deepEqual(br.portCounters('vif1.0'), { rx_packets: 2, rx_bytes: 120, tx_packets: 2, tx_bytes: 120, tx_dropped: 0 });
  t.is(br.table().length, 3);
  now = 5000; // B's entry ages out: A → B floods again
  br.input(a, frame(pl, 2, 1, 5));
  t.deepEqual([b.got.at(-1), c.got.at(-1)], [5, 5]);
  br.age();
  t.deepEqual(br.table().map((e) => e.mac), ['00:16:3e:00:00:01']);
  t.is(pl.inUse, 0, 'every frame released once every port is done with it');
});

test('a removed port is forgotten and gets nothing more', (t) => {
  const br = new Bridge('xenbr0');
  const pl = pool();
  const [a, b] = [new Port('a'), new Port('b')];
  br.addPort(a);
  br.addPort(b);
  br.input(b, frame(pl, 1, 2, 1));
  br.removePort(b);
  br.input(a, frame(pl, 2, 1, 2));
  t.deepEqual(b.got, []);
  t.false(br.table().some((e) => e.port === 'b'));
  t.is(pl.inUse, 0);
});
