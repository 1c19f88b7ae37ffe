/*
 * Two ringvisor hosts on this machine, their xenbr0 bridges joined through UDP uplinks on
 * 127.0.0.1 (one Ethernet frame per datagram, as QEMU's dgram netdev): a guest on each pings the
 * other and streams checksummed UDP to it.
 */
import test from 'ava';
import { NetHost } from '../scenarios/net/harness.ts';

const A = { mac: '00:16:3e:00:04:0a', ip: '10.0.4.10' };
const B = { mac: '00:16:3e:00:04:0b', ip: '10.0.4.11' };

test('guests on two hosts bridged through their uplinks ping each other and exchange UDP', async (t) => {
  const bridges = [{ name: 'xenbr0', uplink: { port: 0 } }];
  const [h1, h2] = await Promise.all([NetHost.boot({ bridges, memoryMiB: 128 }), NetHost.boot({ bridges, memoryMiB: 128 })]);
  try {
    const [p1, p2] = await Promise.all([h1.uplinkPort('xenbr0'), h2.uplinkPort('xenbr0')]);
    t.not(p1, p2);
    await h1.addUplinkPeer('xenbr0', `127.0.0.1:${p2}`);
    await h2.addUplinkPeer('xenbr0', `127.0.0.1:${p1}`);
    const b = await h2.start({ vif: B, tasks: [{ kind: 'ping', target: A.ip, count: 3 }, { kind: 'stream-recv', port: 41001 }] });
    const a = await h1.start({
      vif: A, tasks: [{ kind: 'ping', target: B.ip, count: 3 }, { kind: 'barrier', name: 'go' }, { kind: 'stream-send', target: B.ip, port: 41001, size: 1472, count: 500 }],
    });
    await b.note('listen:41001');
    await a.go('go');
    const [ao, bo] = await Promise.all([a.outcome, b.outcome]);
    for (const o of [ao, bo]) {
      const ping = o.tasks[0].result;
      t.true(ping?.kind === 'ping' && ping.result.received === 3 && ping.result.badReplies === 0, JSON.stringify(o.tasks[0]));
    }
    const r = bo.tasks[1].result;
    t.true(r?.kind === 'stream' && r.result.bad === 0 && r.result.received + r.result.lost === 500, JSON.stringify(r));
    t.log(`stream over the uplink: ${r?.kind === 'stream' ? `${r.result.received}/500 datagrams, ${r.result.lost} lost` : ''}`);
    const s1 = await h1.vifStats();
    t.true(s1.bridges.xenbr0.ports.includes('xenbr0-uplink'));
    t.true(s1.bridges.xenbr0.fdb.some((e) => e.mac === B.mac && e.port === 'xenbr0-uplink'), 'host 1 learned B behind its uplink');
  } finally {
    await Promise.all([h1.close(), h2.close()]);
  }
});
