/*
 * Netback's tx as Linux's: the first 128 bytes of each packet grant-copied into Dom0, the rest of
 * its slots mapped read-only from the guest's pages (a cache of mappings, one per tx buffer), and the
 * tx response held until the frame has been copied into the receiver. And the whole-copy mode
 * beside it (netbackParams.txMap = false). Every payload byte is checked at the receiver; the
 * counters show which mechanism carried the data; the host gets back every mapping and page.
 */
import test from 'ava';
import { NetHost } from '../scenarios/net/harness.ts';

const A = { mac: '00:16:3e:00:3a:0a', ip: '10.0.3.10' };
const B = { mac: '00:16:3e:00:3a:0b', ip: '10.0.3.11' };
const COUNT = 3000;

async function run(t: import('ava').ExecutionContext, txMap: boolean): Promise<void> {
  const h = await NetHost.boot();
  const before = h.usage();
  try {
    await h.ask({ kind: 'netback-param', txMap }, 'netback-param-reply');
    const recv = await h.start({ vif: B, tasks: [{ kind: 'stream-recv', port: 5001 }, { kind: 'stream-recv', port: 5003 }] });
    const send = await h.start({
      vif: A,
      tasks: [
        { kind: 'ping', target: B.ip, count: 1 },
        { kind: 'barrier', name: 's1' },
        { kind: 'stream-send', target: B.ip, port: 5001, size: 64, count: COUNT },
        { kind: 'barrier', name: 's2' },
        { kind: 'stream-send', target: B.ip, port: 5003, size: 1472, count: COUNT },
        { kind: 'barrier', name: 'end' },
      ],
    });
    await recv.note('listen:5001');
    await send.go('s1');
    await recv.note('listen:5003');
    await send.go('s2');
    await send.note('barrier:end');
    const stats = (await h.vifStats()).stats[`backend/vif/${send.domid}/0`];
    await send.go('end');
    const [a, b] = await Promise.all([send.outcome, recv.outcome]);
    for (const o of [a, b]) for (const task of o.tasks) t.is(task.error, null, task.error ?? '');
    for (const i of [0, 1]) {
      const r = b.tasks[i].result;
      if (r?.kind !== 'stream') return void t.fail('no stream result');
      t.is(r.result.received, COUNT, 'every datagram arrives');
      t.is(r.result.bad, 0, 'no payload byte changed');
    }
    t.is(b.stack.udp_csum_errors, 0);
    t.truthy(stats, 'the sender\'s vif reported its counters');
    t.is(stats.tx_errors, 0);
    if (txMap) {
      // 64-byte datagrams (106-byte frames) fit in the 128 copied bytes: only the 1472-byte ones have frags.
      t.true(stats.tx_frags_mapped >= COUNT, `the large datagrams' payloads were mapped (${stats.tx_frags_mapped})`);
      t.true(stats.tx_frags_mapped <= COUNT + 10, 'the small ones were not');
      t.is(stats.tx_deferred_responses, stats.tx_frags_mapped, 'each packet with frags was answered when let go');
      t.true(stats.grant_map_ops > 0 && stats.grant_map_ops <= 256, `one map per tx buffer, then cache hits (${stats.grant_map_ops} maps)`);
    } else {
      t.is(stats.tx_frags_mapped, 0, 'nothing mapped');
      t.is(stats.grant_map_ops, 0);
      t.is(stats.tx_deferred_responses, 0);
    }
    const vs = await h.vifStats();
    t.is(vs.pool, 0, 'every Dom0 packet buffer is back in the pool');
  } finally {
    const after = h.usage();
    await h.close();
    t.deepEqual(after, before, 'the host gave back everything, mappings included');
  }
}

test.serial('txMap: 128 bytes copied, the rest mapped, responses held until the frame is let go; every byte arrives', (t) => run(t, true));
test.serial('txMap off: every packet copied whole and answered at once; every byte arrives', (t) => run(t, false));
