/*
 * `npm start -- pv-net`: two PV guests on one bridge, narrated: the vif handshake, the bridge
 * learning their MACs, one packet's whole path with the counters behind it, ping, a UDP stream and
 * request/response, and a pcap of it all, read back by tcpdump when it is installed.
 *
 * The third guest of the issue's story has an emulated e1000 (dom0/device-models/e1000): step 6
 * streams from a PV guest to it and shows what each packet cost in traps instead of notifications.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { NetHost, type NetGuestOutcome } from './net/harness.ts';
import { ACK_EVERY } from '../domu/workloads/udp-stream.ts';
import { SCENARIO_BOUND_S, until } from './lib/hang.ts';

const A = { mac: '00:16:3e:0a:00:0a', ip: '10.0.0.10' };
const B = { mac: '00:16:3e:0a:00:0b', ip: '10.0.0.11' };
const STATE = ['Unknown', 'Initialising', 'InitWait', 'Initialised', 'Connected', 'Closing', 'Closed'];

export async function pvNet(say: (line: string) => void): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'ringvisor-pv-net-'));
  const h = await NetHost.boot();
  try {
    say('1. The host is up: the hypervisor, and Dom0 with xenstored, netback and one bridge, xenbr0 (what a');
    say('   Xen Dom0 has after `modprobe xen-netback` and its network configuration made the bridge).');
    const pcap = join(dir, 'xenbr0.pcap');
    await h.capture('xenbr0', pcap);
    say(`   A capture on xenbr0 writes ${pcap} (tcpdump -i xenbr0 -w ...).`);
    await h.watchLog('/local/domain/0/backend/vif');

    say('');
    say(`2. Guest B (${B.ip}, ${B.mac}) and guest A (${A.ip}, ${A.mac}), each with one vif on xenbr0.`);
    const b = await h.start({ name: 'guest-b', vif: B, tasks: [{ kind: 'rr-server', port: 5002 }, { kind: 'stream-recv', port: 5001 }] });
    const a = await h.start({
      name: 'guest-a', vif: A,
      tasks: [
        { kind: 'barrier', name: 'ready' },
        { kind: 'ping', target: B.ip, count: 5 },
        { kind: 'barrier', name: 'path' },
        { kind: 'rr-client', target: B.ip, port: 5002, size: 64, count: 1000 },
        { kind: 'barrier', name: 'stream' },
        { kind: 'stream-send', target: B.ip, port: 5001, size: 1472, count: 5000 },
      ],
    });
    await b.note('listen:5002');
    await a.note('barrier:ready');
    let back = await h.watchLog('/local/domain/0/backend/vif');
    await until(async () => (back.includes(`/${a.domid}/0/state=4`) && back.includes(`/${b.domid}/0/state=4`)) || (back = await h.watchLog('/local/domain/0/backend/vif'), false),
      'both vifs Connected in netback', { everyMs: 0, seconds: SCENARIO_BOUND_S, seen: () => back });
    say('   The handshake, as Linux does it (netback\'s side, from XenStore):');
    for (const e of back) {
      const m = /^\/(\d+)\/(\d+)\/(state|hotplug-status)=(.*)$/.exec(e);
      if (m === null) continue;
      const who = Number(m[1]) === a.domid ? 'guest-a' : 'guest-b';
      say(`     ${who} vif${m[1]}.${m[2]}: ${m[3] === 'state' ? `backend ${STATE[Number(m[4])] ?? m[4]}` : `hotplug-status = ${m[4]} (vif-bridge put the vif on xenbr0)`}`);
    }
    say('   netfront went from Initialising straight to Connected when it saw InitWait (it never says Initialised);');
    say('   netback connected when it saw that, and said Connected only after the hotplug step had written hotplug-status.');

    say('');
    say(`3. guest-a pings ${B.ip}: ARP first (a broadcast the bridge floods), then five ICMP echoes.`);
    await a.go('ready');
    await a.note('barrier:path');
    const st = await h.vifStats();
    for (const e of st.bridges.xenbr0.fdb) say(`   xenbr0 learned ${e.mac} on ${e.port}`);
    say(`   bridge: ${JSON.stringify(st.bridges.xenbr0.stats)}`);

    say('');
    say('4. One packet\'s path, guest-a → guest-b:');
    say('   netfront copies the frame into a page it granted, puts a netif_tx_request {gref, offset, size, id} on its tx ring,');
    say('   and notifies only if netback armed req_event (it does not while it is polling);');
    say('   netback copies the request out of the ring, checks it as Linux does, grant-copies the first 128 bytes (the headers)');
    say('   into a Dom0 page and maps the rest of a larger packet read-only from guest-a\'s page (a mapping it keeps);');
    say('   the bridge looks up the destination MAC and hands the frame to vif' + `${b.domid}.0;`);
    say('   netback grant-copies it into a page guest-b posted on its rx ring and answers in the same slot,');
    say('   and only then answers guest-a\'s tx request (its page was in use until now);');
    say('   netfront checks the response, hands the frame to the stack, and posts the page again.');
    const before = h.allCounters();
    await a.go('path');
    await a.note('barrier:stream');
    const rrCounters = delta(h.allCounters(), before);
    say(`   1000 UDP request/response round trips (2000 packets) cost ${per(rrCounters.notifications, 2000)} notifications, ` +
      `${per(rrCounters.grant_copies, 2000)} grant-copy ops and ${per(rrCounters.hypercalls, 2000)} hypercalls per packet`);
    say('   (one packet in flight at a time, so most packets cost a wake-up; a small frame is one tx slot, headers and');
    say('   payload in one page as a Linux guest\'s linear skb, hence one grant-copy op on the way in and one on the way out).');

    say('');
    say('5. A UDP stream, 5000 datagrams of 1472 bytes, every payload checksummed at the receiver:');
    await b.note('listen:5001');
    const before2 = h.allCounters();
    await a.go('stream');
    const [ao, bo] = await Promise.all([a.outcome, b.outcome]);
    // The counters when the harness heard the stream end (the guests are gone by now).
    const sc = delta(ao.tasks[5]?.counters ?? before2, before2);
    report(say, ao, bo, sc);

    say('');
    say('6. The emulated path: guest-c is an HVM guest whose NIC is an emulated e1000 (model=e1000) on the same bridge.');
    say('   Its driver programs the NIC register by register; every register access traps, and Dom0\'s device model');
    say('   answers it (an ioreq round trip); the model moves frames between the bridge and guest-c\'s descriptor rings.');
    const C = { mac: '00:16:3e:0a:00:0c', ip: '10.0.0.12' };
    const c = await h.start({ name: 'guest-c', vif: C, e1000: {}, tasks: [{ kind: 'stream-recv', port: 5005 }] });
    await c.note('listen:5005');
    const before3 = h.allCounters();
    const d = await h.start({ name: 'guest-d', vif: { mac: '00:16:3e:0a:00:0d', ip: '10.0.0.13' },
      tasks: [{ kind: 'stream-send', target: C.ip, port: 5005, size: 1472, count: 2000 }] });
    const [dout, cout] = await Promise.all([d.outcome, c.outcome]);
    const ec = delta(dout.tasks[0]?.counters ?? before3, before3);
    const er = cout.tasks[0]?.result;
    const packets = 2000 + Math.ceil(2000 / ACK_EVERY) + 2;
    if (er?.kind === 'stream') say(`   guest-d (PV) → guest-c (e1000): ${er.result.received} of 2000 datagrams arrived, ${er.result.bad} corrupted`);
    say(`   per packet: ${per(ec.traps, packets)} traps, ${per(ec.ioreqs, packets)} ioreq round trips, ${per(ec.notifications, packets)} notifications`);
    const m = cout.model ?? {};
    say(`   the device model: ${m.rx_frames ?? 0} frames into guest-c's rx ring, ${m.tx_frames ?? 0} sent from its tx ring, ` +
      `${m.irq_raises ?? 0} interrupts raised, ${m.mmio_reads ?? 0} register reads and ${m.mmio_writes ?? 0} writes`);

    say('');
    const frames = await h.capture('xenbr0', null);
    say(`7. The capture: ${frames} frames in ${pcap}.`);
    const tcpdump = ['/usr/sbin/tcpdump', '/usr/bin/tcpdump'].find((p) => existsSync(p));
    if (tcpdump !== undefined) {
      const out = execFileSync(tcpdump, ['-r', pcap, '-nn', '-c', '8'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] });
      say('   tcpdump -r xenbr0.pcap -nn -c 8:');
      for (const l of out.trimEnd().split('\n')) say(`     ${l}`);
    } else {
      say('   (tcpdump is not installed here: open the file with tcpdump -r or Wireshark)');
    }
  } finally {
    await h.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

function report(say: (line: string) => void, ao: NetGuestOutcome, bo: NetGuestOutcome, c: Record<string, number>): void {
  const s = ao.tasks[5]?.result;
  const r = bo.tasks[1]?.result;
  const ping = ao.tasks[1]?.result;
  if (ping?.kind === 'ping') {
    say(`   (ping: ${ping.result.received}/${ping.result.sent} replies, rtt median ${ping.result.rttMs.median.toFixed(3)} ms, ARP took ${ping.result.arpMs.toFixed(3)} ms)`);
  }
  if (s?.kind === 'stream' && r?.kind === 'stream') {
    const packets = 5000 + Math.ceil(5000 / ACK_EVERY) + 2;
    say(`   sent ${s.result.datagrams}, received ${r.result.received}, lost ${r.result.lost}, corrupted ${r.result.bad}: ` +
      `${s.result.MBps.toFixed(1)} MB/s, ${Math.round(s.result.pps)} packets/s (one run on this machine; the benchmark takes medians)`);
    say(`   per packet: ${per(c.notifications, packets)} notifications, ${per(c.grant_copies, packets)} grant-copy ops, ${per(c.grant_maps, packets)} grant maps, ` +
      `${per(c.hypercalls, packets)} hypercalls, ${per(c.traps, packets)} traps`);
  }
  const rr = ao.tasks[3]?.result;
  if (rr?.kind === 'stream') say(`   (request/response: ${Math.round(rr.result.pps)} round trips/s, ${(1e6 / rr.result.pps).toFixed(0)} µs each)`);
  say(`   guest-a netfront: ${JSON.stringify(ao.front)}`);
}

function per(n: number | undefined, packets: number): string {
  return ((n ?? 0) / packets).toFixed(3);
}

function delta(after: Record<string, number>, before: Record<string, number>): Record<string, number> {
  return Object.fromEntries(Object.entries(after).map(([k, v]) => [k, v - (before[k] ?? 0)]));
}
