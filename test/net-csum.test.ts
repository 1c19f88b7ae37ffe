/*
 * Checksum offload on the PV path (shared/kernel/net-csum.ts): a PV guest sends UDP with only the
 * pseudo-header sum in the checksum field (NETTXF_csum_blank), netback keeps the state, a receiving
 * PV guest takes it as validated (NETRXF_csum_blank) and does not sum again, and Dom0 completes the
 * checksum (skb_checksum_help) wherever the frame goes to a port that cannot take a partial one:
 * an emulated e1000, a frontend that turned offload off, a capture file.
 */
import test from 'ava';
import fc from 'fast-check';
import { NetStack } from '../domu/net/stack.ts';
import type { NetDevice } from '../domu/net/netdev.ts';
import { Packet, type PacketPool } from '../dom0/lib/packet.ts';
import { checksumHelp } from '../dom0/lib/packet-csum.ts';
import { Bridge, type BridgePort } from '../dom0/services/bridge/bridge.ts';
import {
  CHECKSUM_NONE, CHECKSUM_PARTIAL, CHECKSUM_UNNECESSARY, completeCsumFlat, l4CsumOffset, partialCsumStart,
} from '../shared/kernel/net-csum.ts';
import { ETH_HDR, IP_PROTO, UDP_FRAME_HDR, csumFold, csumPartial, parseIPv4 } from '../shared/public/net/inet.ts';
import { NetHost } from '../scenarios/net/harness.ts';

const MAC_A = new Uint8Array([0x00, 0x16, 0x3e, 0x00, 0x0c, 0x0a]);
const MAC_B = new Uint8Array([0x00, 0x16, 0x3e, 0x00, 0x0c, 0x0b]);
const IP_A = parseIPv4('10.0.12.10')!;
const IP_B = parseIPv4('10.0.12.11')!;

/** A NetDevice that keeps the last frame it was given (whole), and whether it went partial. */
class Catcher implements NetDevice {
  readonly name = 'catch0';
  readonly path = 'pv' as const;
  readonly mtu = 1500;
  readonly maxFrags = 2;
  frame = new Uint8Array(0);
  partial = false;
  onReceive: (frame: Uint8Array, csum?: number) => void = () => undefined;
  onTxRoom = () => undefined;
  constructor(readonly mac: Uint8Array, readonly csumOffload: boolean) {}
  transmit(frags: readonly Uint8Array[], n: number, csumPartial = false): boolean {
    const parts = frags.slice(0, n);
    this.frame = new Uint8Array(parts.reduce((a, f) => a + f.length, 0));
    let at = 0;
    for (const f of parts) { this.frame.set(f, at); at += f.length; }
    this.partial = csumPartial;
    return true;
  }
  stats() { return {}; }
  async close() {}
}

/** The frame a stack on a NIC with (or without) offload sends for `payload`. */
function udpFrame(offload: boolean, payload: Uint8Array): { frame: Uint8Array; partial: boolean } {
  const dev = new Catcher(MAC_A, offload);
  const stack = new NetStack(dev, IP_A);
  stack.udpSocket(7000, () => undefined).trySend(MAC_B, IP_B, 7001, payload);
  return { frame: dev.frame, partial: dev.partial };
}

/** A Dom0 packet holding `frame` as netback builds one: the first `head` bytes linear, the rest in frags cut at `cuts`. */
function packetOf(frame: Uint8Array, head: number, cuts: number[]): Packet {
  const pool = { free: () => undefined } as unknown as PacketPool;
  const p = new Packet(pool);
  const lin = new Uint8Array(4096);
  lin.set(frame.subarray(0, head));
  p.pages[0] = lin;
  p.nPages = 1;
  p.len = p.linLen = head;
  p.refs = 1;
  let from = head;
  for (const c of [...cuts.filter((x) => x > head && x < frame.length).sort((a, b) => a - b), frame.length]) {
    if (c <= from) continue;
    // Each frag in a page of its own, at an offset of its own (odd ones too).
    const off = (c * 7) % 1000;
    const page = new Uint8Array(4096);
    page.set(frame.subarray(from, c), off);
    p.addFrag(0, off, c - from, page);
    from = c;
  }
  return p;
}

function whole(p: Packet): Uint8Array {
  const out = new Uint8Array(p.len);
  p.copyOut(out);
  return out;
}

test('a partial UDP checksum completed over a linear part and frags of any length equals the one summed in software', (t) => {
  fc.assert(fc.property(
    fc.uint8Array({ minLength: 0, maxLength: 1472 }),
    fc.array(fc.integer({ min: 0, max: 1514 }), { maxLength: 5 }),
    (payload, cuts) => {
      const soft = udpFrame(false, payload);
      const off = udpFrame(true, payload);
      if (soft.partial || !off.partial) return false;
      // The two frames differ only in the checksum field.
      const at = ETH_HDR + 20 + 6;
      const a = soft.frame.slice();
      const b = off.frame.slice();
      a[at] = a[at + 1] = b[at] = b[at + 1] = 0;
      if (a.join() !== b.join()) return false;
      const start = partialCsumStart(off.frame, off.frame.length);
      if (start !== ETH_HDR + 20 || l4CsumOffset(off.frame[ETH_HDR + IP_PROTO]) !== 6) return false;
      const p = packetOf(off.frame, Math.min(128, off.frame.length), cuts);
      p.csum = CHECKSUM_PARTIAL;
      p.csumStart = start;
      p.csumOffset = 6;
      checksumHelp(p);
      const flat = off.frame.slice();
      completeCsumFlat(flat, 0, flat.length, start, 6);
      return (p.csum as number) === CHECKSUM_NONE && whole(p).join() === soft.frame.join() && flat.join() === soft.frame.join();
    },
  ), { numRuns: 300 });
  t.pass();
});

test('a stack verifies a completed checksum, refuses a partial one it is not told about, and skips one the NIC vouched for', (t) => {
  const payload = new Uint8Array(1000).map((_, i) => i * 31);
  const rx = new Catcher(MAC_B, false);
  const stack = new NetStack(rx, IP_B);
  let got = 0;
  stack.udpSocket(7001, (data) => { if (data.join() === payload.join()) got++; });
  const soft = udpFrame(false, payload).frame;
  const partial = udpFrame(true, payload).frame;
  rx.onReceive(soft, CHECKSUM_NONE);
  t.is(stack.stats.udp_csum_verified, 1);
  t.is(got, 1);
  rx.onReceive(partial); // nobody said the field is partial: it is a bad checksum
  t.is(stack.stats.udp_csum_errors, 1);
  t.is(got, 1);
  rx.onReceive(partial, CHECKSUM_PARTIAL);
  rx.onReceive(partial, CHECKSUM_UNNECESSARY);
  t.is(stack.stats.udp_csum_unnecessary, 2);
  t.is(got, 3);
  const broken = soft.slice();
  broken[UDP_FRAME_HDR + 10] ^= 1;
  rx.onReceive(broken);
  t.is(stack.stats.udp_csum_errors, 2, 'a changed byte is caught when the stack sums');
});

test('the bridge completes a partial checksum for a port without offload, and passes it on to a port with', (t) => {
  const br = new Bridge('br-csum');
  const seen = new Map<string, { csum: number; bytes: Uint8Array }>();
  const port = (name: string, csumOffload: boolean | undefined): BridgePort => ({
    name, csumOffload, deliver: (p) => { seen.set(name, { csum: p.csum, bytes: whole(p) }); p.release(); return true; },
  });
  const from = port('from', true);
  br.addPort(from);
  br.addPort(port('offload', true));
  const payload = new Uint8Array(700).map((_, i) => i ^ 0x5a);
  const soft = udpFrame(false, payload).frame;
  const partial = udpFrame(true, payload).frame;
  // Flooded (nothing learned yet): the offloading port gets it partial...
  let p = packetOf(partial, 128, [400]);
  p.csum = CHECKSUM_PARTIAL;
  p.csumStart = ETH_HDR + 20;
  p.csumOffset = 6;
  br.input(from, p);
  t.is(seen.get('offload')?.csum, CHECKSUM_PARTIAL);
  t.is(seen.get('offload')?.bytes.join(), partial.join());
  // ...and once a port without offload is on the bridge, it gets the frame completed (as do those after it).
  br.addPort(port('plain', undefined));
  p = packetOf(partial, 128, [401]);
  p.csum = CHECKSUM_PARTIAL;
  p.csumStart = ETH_HDR + 20;
  p.csumOffset = 6;
  br.input(from, p);
  t.is(seen.get('plain')?.csum, CHECKSUM_NONE);
  t.is(seen.get('plain')?.bytes.join(), soft.join());
  const fold = csumFold(csumPartial(soft, ETH_HDR + 12, 8) + 17 + (soft.length - ETH_HDR - 20) + csumPartial(soft, ETH_HDR + 20, soft.length - ETH_HDR - 20));
  t.is(fold, 0, 'the completed frame sums to zero with its pseudo-header');
});

test('guests on one host: PV to PV offloads both ends; to a frontend with offload off, and to an e1000, Dom0 completes the checksum', async (t) => {
  const A = { mac: '00:16:3e:00:0c:1a', ip: '10.0.12.20' };
  const B = { mac: '00:16:3e:00:0c:1b', ip: '10.0.12.21' };
  const C = { mac: '00:16:3e:00:0c:1c', ip: '10.0.12.22' };
  const D = { mac: '00:16:3e:00:0c:1d', ip: '10.0.12.23' };
  const count = 1000;
  const h = await NetHost.boot();
  try {
    const b = await h.start({ vif: B, tasks: [{ kind: 'stream-recv', port: 5001 }] });
    const c = await h.start({ vif: C, front: { csumOffload: false }, tasks: [{ kind: 'stream-recv', port: 5003 }] });
    const d = await h.start({ vif: D, e1000: {}, tasks: [{ kind: 'stream-recv', port: 5005 }] });
    await Promise.all([b.note('listen:5001'), c.note('listen:5003'), d.note('listen:5005')]);
    const a = await h.start({
      vif: A,
      tasks: [
        { kind: 'stream-send', target: B.ip, port: 5001, size: 1472, count },
        { kind: 'stream-send', target: C.ip, port: 5003, size: 1000, count },
        { kind: 'stream-send', target: D.ip, port: 5005, size: 1472, count },
      ],
    });
    const [ao, bo, co, dox] = await Promise.all([a.outcome, b.outcome, c.outcome, d.outcome]);
    for (const o of [ao, bo, co, dox]) for (const task of o.tasks) t.is(task.error, null, task.error ?? '');
    for (const o of [bo, co, dox]) {
      const r = o.tasks[0].result;
      t.is(r?.kind, 'stream');
      if (r?.kind === 'stream') {
        t.is(r.result.received, count);
        t.is(r.result.bad, 0, 'every payload byte arrived unchanged');
      }
      t.is(o.stack.udp_csum_errors, 0);
    }
    // A offloaded every datagram (and its probes and end marker); netfront sent them csum_blank.
    t.true(ao.stack.udp_csum_offloaded >= 3 * count);
    t.true(ao.front.tx_csum_blank >= 3 * count);
    // B (PV, offload on) was told each was partial and summed none of them.
    t.true(bo.front.rx_csum_blank >= count);
    t.true(bo.stack.udp_csum_unnecessary >= count);
    t.is(bo.stack.udp_csum_verified, 0);
    // C wrote feature-no-csum-offload: Dom0 completed the checksums and C summed every one; its own acks went out complete.
    t.is(co.front.rx_csum_blank, 0);
    t.true(co.stack.udp_csum_verified >= count);
    t.is(co.stack.udp_csum_offloaded, 0);
    t.is(co.front.tx_csum_blank, 0);
    // D's e1000 model got complete frames (its driver has no offload): D summed every one.
    t.true(dox.stack.udp_csum_verified >= count);
    t.is(dox.stack.udp_csum_offloaded, 0);
  } finally {
    await h.close();
  }
});

test('checksum setup finds the transport header of IPv4 UDP only when the field is within the bytes given; not of ICMP, ARP or a fragment', (t) => {
  const udp = udpFrame(true, new Uint8Array(100)).frame;
  t.is(partialCsumStart(udp, udp.length), ETH_HDR + 20);
  t.is(partialCsumStart(udp, ETH_HDR + 20 + 8), ETH_HDR + 20, 'the field ends at byte 42');
  t.is(partialCsumStart(udp, ETH_HDR + 20 + 7), -1, 'the field is not all there');
  const icmp = udp.slice();
  icmp[ETH_HDR + IP_PROTO] = 1;
  t.is(partialCsumStart(icmp, icmp.length), -1);
  const tcp = udp.slice();
  tcp[ETH_HDR + IP_PROTO] = 6;
  t.is(partialCsumStart(tcp, tcp.length), ETH_HDR + 20, 'TCP too (csum_offset 16)');
  t.is(l4CsumOffset(6), 16);
  const arp = udp.slice();
  arp[13] = 0x06;
  t.is(partialCsumStart(arp, arp.length), -1);
  const frag = udp.slice();
  frag[ETH_HDR + 6] = 0x20; // more fragments
  t.is(partialCsumStart(frag, frag.length), -1);
  const v6 = udp.slice();
  v6[ETH_HDR] = 0x65;
  t.is(partialCsumStart(v6, v6.length), -1);
});
