/*
 * How netfront lays frames on its tx ring: as a Linux guest's linear skb, one slot per page the
 * frame spans. A 1472-byte datagram (a 1514-byte frame) is one slot; with a jumbo MTU an
 * 8000-byte datagram (an 8042-byte frame) is two, chained by more_data (scatter-gather), and its
 * receiver gathers it from two rx buffers. Every payload byte is checked at the receiver.
 */
import test from 'ava';
import { NetHost } from '../scenarios/net/harness.ts';

const A = { mac: '00:16:3e:00:5a:0a', ip: '10.0.5.10', mtu: 9000 };
const B = { mac: '00:16:3e:00:5a:0b', ip: '10.0.5.11', mtu: 9000 };
const COUNT = 1000;

test('a page-sized frame is one tx slot, a jumbo frame two; every byte of both arrives', async (t) => {
  const h = await NetHost.boot();
  try {
    const recv = await h.start({ vif: B, tasks: [{ kind: 'stream-recv', port: 5001 }, { kind: 'stream-recv', port: 5003 }] });
    const send = await h.start({
      vif: A,
      tasks: [
        { kind: 'ping', target: B.ip, count: 1 },
        { kind: 'barrier', name: 's1' },
        { kind: 'stream-send', target: B.ip, port: 5001, size: 1472, count: COUNT },
        { kind: 'barrier', name: 's2' },
        { kind: 'stream-send', target: B.ip, port: 5003, size: 8000, count: COUNT },
      ],
    });
    await recv.note('listen:5001');
    await send.go('s1');
    await recv.note('listen:5003');
    await send.go('s2');
    const [a, b] = await Promise.all([send.outcome, recv.outcome]);
    for (const o of [a, b]) for (const task of o.tasks) t.is(task.error, null, task.error ?? '');
    for (const [i, size] of [[0, 1472], [1, 8000]] as const) {
      const r = b.tasks[i].result;
      t.is(r?.kind, 'stream');
      if (r?.kind === 'stream') {
        t.is(r.result.size, size);
        t.is(r.result.received, COUNT, `all ${size}-byte datagrams arrived`);
        t.is(r.result.bad, 0);
      }
    }
    t.is(b.stack.udp_csum_errors, 0);
    t.is(b.stack.ip_hdr_errors, 0);
    // Besides the 2 × COUNT datagrams: a ping, an ARP or two, probes and end markers (one slot each).
    const small = a.front.tx_packets - 2 * COUNT;
    t.true(small >= 2 && small < 50, `other frames sent: ${small}`);
    t.is(a.front.tx_slots, COUNT * 1 + COUNT * 2 + small, 'one slot per 1514-byte frame, two per 8042-byte frame, one per small frame');
    t.is(a.front.tx_errors, 0);
    t.is(b.front.rx_errors, 0);
  } finally {
    await h.close();
  }
});
