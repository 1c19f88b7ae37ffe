/*
 * PV networking end to end: two guests on xenbr0, netfront ↔ netback ↔ bridge ↔ netback ↔
 * netfront. The handshake, ARP, ICMP echo, and UDP streams whose every payload byte is checked.
 */
import test from 'ava';
import { NetHost } from '../scenarios/net/harness.ts';

const A = { mac: '00:16:3e:00:00:0a', ip: '10.0.0.10' };
const B = { mac: '00:16:3e:00:00:0b', ip: '10.0.0.11' };

test('two PV guests ping each other and stream checksummed UDP both sizes', async (t) => {
  const h = await NetHost.boot();
  try {
    const recv = await h.start({ vif: B, tasks: [{ kind: 'stream-recv', port: 5001 }, { kind: 'stream-recv', port: 5003 }] });
    const send = await h.start({
      vif: A,
      tasks: [
        { kind: 'ping', target: B.ip, count: 5 },
        { kind: 'barrier', name: 's1' },
        { kind: 'stream-send', target: B.ip, port: 5001, size: 64, count: 2000 },
        { kind: 'barrier', name: 's2' },
        { kind: 'stream-send', target: B.ip, port: 5003, size: 1472, count: 2000 },
      ],
    });
    await recv.note('listen:5001');
    await send.go('s1');
    await recv.note('listen:5003');
    await send.go('s2');
    const [a, b] = await Promise.all([send.outcome, recv.outcome]);
    for (const o of [a, b]) for (const task of o.tasks) t.is(task.error, null, task.error ?? '');
    t.is(a.connected?.mac, A.mac);
    t.is(a.connected?.ip, A.ip);
    const ping = a.tasks[0].result;
    t.is(ping?.kind, 'ping');
    if (ping?.kind === 'ping') {
      t.is(ping.result.received, 5);
      t.is(ping.result.badReplies, 0);
    }
    for (const [i, size] of [[0, 64], [1, 1472]] as const) {
      const r = b.tasks[i].result;
      t.is(r?.kind, 'stream');
      if (r?.kind === 'stream') {
        t.is(r.result.size, size);
        t.is(r.result.received, 2000);
        t.is(r.result.bad, 0);
        t.is(r.result.lost, 0);
      }
    }
    t.is(b.stack.udp_csum_errors, 0);
    t.is(b.stack.ip_hdr_errors, 0);
    t.true(a.front.tx_packets >= 4000);
  } finally {
    await h.close();
  }
});
