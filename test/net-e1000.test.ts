/*
 * The emulated e1000 end to end: an HVM guest's NIC emulated in Dom0 on the same bridge as PV vifs.
 * PV ↔ e1000 and e1000 ↔ e1000, with the device model's writes trapped synchronously and with
 * Xen's buffered ioreq page (bufioreq); ARP, ICMP echo, and UDP streams whose every payload byte
 * is checked; the host's usage back where it was once the guests are gone; and a bridge capture of
 * e1000 traffic that tcpdump decodes without complaint.
 */
import test from 'ava';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { NetHost, type NetGuestOutcome } from '../scenarios/net/harness.ts';

const A = { mac: '00:16:3e:00:e1:0a', ip: '10.0.1.10' };
const B = { mac: '00:16:3e:00:e1:0b', ip: '10.0.1.11' };

function checkStreams(t: import('ava').ExecutionContext, recv: NetGuestOutcome, sizes: number[], count: number): void {
  sizes.forEach((size, i) => {
    const r = recv.tasks[i].result;
    t.is(r?.kind, 'stream');
    if (r?.kind === 'stream') {
      t.is(r.result.size, size);
      t.is(r.result.received, count, `size ${size}: every datagram arrives`);
      t.is(r.result.bad, 0, `size ${size}: no payload byte changed`);
      t.is(r.result.lost, 0);
    }
  });
  t.is(recv.stack.udp_csum_errors, 0);
  t.is(recv.stack.ip_hdr_errors, 0);
}

type Nic = 'pv' | 'sync' | 'unbatched' | 'buffered';

async function pair(t: import('ava').ExecutionContext, a: Nic, b: Nic): Promise<void> {
  const h = await NetHost.boot();
  const before = h.usage();
  const count = 1500;
  try {
    const kind = (k: Nic) => (k === 'pv' ? {} : { e1000: { buffered: k === 'buffered', txKick: k === 'unbatched' ? 'each' as const : 'burst' as const } });
    const recv = await h.start({ vif: B, ...kind(b), tasks: [{ kind: 'stream-recv', port: 5001 }, { kind: 'stream-recv', port: 5003 }] });
    // ARP requests are not retried (no guest timers yet: domu/net/arp.ts), so the sender starts
    // once the receiver's NIC is up and listening.
    await recv.note('listen:5001');
    const send = await h.start({
      vif: A, ...kind(a),
      tasks: [
        { kind: 'ping', target: B.ip, count: 4 },
        { kind: 'barrier', name: 's1' },
        { kind: 'stream-send', target: B.ip, port: 5001, size: 64, count },
        { kind: 'barrier', name: 's2' },
        { kind: 'stream-send', target: B.ip, port: 5003, size: 1472, count },
      ],
    });
    await send.go('s1');
    await recv.note('listen:5003');
    await send.go('s2');
    const [so, ro] = await Promise.all([send.outcome, recv.outcome]);
    for (const o of [so, ro]) for (const task of o.tasks) t.is(task.error, null, task.error ?? '');
    t.is(so.connected?.mac, A.mac, 'the e1000 driver read its MAC from the EEPROM');
    t.is(so.connected?.ip, A.ip);
    const ping = so.tasks[0].result;
    if (ping?.kind === 'ping') {
      t.is(ping.result.received, 4);
      t.is(ping.result.badReplies, 0);
    } else t.fail('no ping result');
    checkStreams(t, ro, [64, 1472], count);
    for (const [o, k] of [[so, a], [ro, b]] as const) {
      if (k === 'pv') continue;
      const m = o.model!;
      t.truthy(m, 'the model reported its counters');
      for (const err of ['tx_ring_errors', 'tx_dma_errors', 'rx_ring_errors', 'rx_dma_errors', 'bad_access', 'ioreq_modelFaults']) t.is(m[err], 0, err);
      t.true(o.front.traps > 0, 'the driver trapped');
      if (k === 'buffered') t.true(m.ioreq_buffered > 0, 'some writes went through the buffered page');
      else t.is(m.ioreq_buffered, 0, 'nothing is buffered in the synchronous mode');
      // TDT: once per frame without xmit_more; once per burst with it (a stream's window is a burst).
      if (k === 'unbatched') t.is(o.front.tx_doorbells, o.front.tx_packets, 'every frame wrote TDT');
      else t.true(o.front.tx_doorbells < o.front.tx_packets, `bursts share a TDT write (${o.front.tx_doorbells} for ${o.front.tx_packets} frames)`);
    }
    t.true(so.front.tx_packets >= 2 * count);
  } finally {
    const after = h.usage();
    await h.close();
    t.deepEqual(after, before, 'the host gave back everything the guests and their models held');
  }
}

test.serial('PV sends to an e1000 guest (synchronous MMIO): ping and checksummed UDP at 64 and 1472 bytes', (t) => pair(t, 'pv', 'sync'));
test.serial('an e1000 guest sends to a PV guest (synchronous MMIO)', (t) => pair(t, 'sync', 'pv'));
test.serial('e1000 to e1000, synchronous MMIO', (t) => pair(t, 'sync', 'sync'));
test.serial('e1000 to e1000, the driver writing TDT after every frame (no xmit_more)', (t) => pair(t, 'unbatched', 'unbatched'));
test.serial('e1000 to e1000, buffered MMIO (bufioreq)', (t) => pair(t, 'buffered', 'buffered'));
test.serial('PV to an e1000 guest with buffered MMIO, and back', (t) => pair(t, 'buffered', 'pv'));

test.serial('a bridge capture of e1000 traffic decodes in tcpdump: ARP, ICMP and UDP with no checksum or length complaint', async (t) => {
  const TCPDUMP = ['/usr/sbin/tcpdump', '/usr/bin/tcpdump'].find((p) => existsSync(p));
  const dir = mkdtempSync(join(tmpdir(), 'ringvisor-e1000-pcap-'));
  const h = await NetHost.boot();
  try {
    const file = join(dir, 'xenbr0.pcap');
    await h.capture('xenbr0', file);
    const recv = await h.start({ vif: B, e1000: {}, tasks: [{ kind: 'stream-recv', port: 41001 }] });
    await recv.note('listen:41001');
    const send = await h.start({
      vif: A, e1000: { buffered: true },
      tasks: [{ kind: 'ping', target: B.ip, count: 3 }, { kind: 'stream-send', target: B.ip, port: 41001, size: 1000, count: 20 }],
    });
    const [so, ro] = await Promise.all([send.outcome, recv.outcome]);
    for (const o of [so, ro]) for (const task of o.tasks) t.is(task.error, null, task.error ?? '');
    const frames = await h.capture('xenbr0', null);
    t.true(frames >= 2 + 6 + 20 + 2, `bridge frames ${frames}`);
    if (TCPDUMP === undefined) {
      t.log('tcpdump is not installed (looked in /usr/sbin and /usr/bin): the decode check is skipped');
      return;
    }
    const out = execFileSync(TCPDUMP, ['-r', file, '-nn', '-vv'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
    for (const bad of ['bad cksum', 'bad udp cksum', 'truncated', '[|', 'wrong', 'length mismatch', 'invalid']) {
      t.false(out.includes(bad), `tcpdump says "${bad}":\n${out.split('\n').filter((l) => l.includes(bad)).slice(0, 3).join('\n')}`);
    }
    const ip = (s: string) => s.replace(/\./g, '\\.');
    t.regex(out, new RegExp(`ARP, Ethernet \\(len 6\\), IPv4 \\(len 4\\), Request who-has ${ip(B.ip)} tell ${ip(A.ip)}`));
    t.regex(out, new RegExp(`${ip(B.ip)} > ${ip(A.ip)}: ICMP echo reply`));
    t.regex(out, new RegExp(`${ip(A.ip)}\\.41002 > ${ip(B.ip)}\\.41001: \\[udp sum ok\\] UDP, length 1000`));
  } finally {
    await h.close();
    rmSync(dir, { recursive: true, force: true });
  }
});
