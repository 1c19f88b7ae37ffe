/*
 * The vif handshake as Linux does it, negotiation, and hot-plug both ways.
 */
import test from 'ava';
import { NetHost } from '../scenarios/net/harness.ts';
import { until } from '../scenarios/lib/hang.ts';

const A = { mac: '00:16:3e:00:01:0a', ip: '10.0.1.10' };
const B = { mac: '00:16:3e:00:01:0b', ip: '10.0.1.11' };

test('netfront goes straight to Connected; netback reports Connected only after hotplug-status', async (t) => {
  const h = await NetHost.boot();
  try {
    await h.watchLog('/local/domain/0/backend/vif');
    const g = await h.start({ vif: A, tasks: [{ kind: 'barrier', name: 'end' }] });
    await g.note('barrier:end');
    const front = await h.watchLog(`/local/domain/${g.domid}/device/vif`);
    // netfront does not wait for the backend's Connected; wait until netback has written it.
    let back = await h.watchLog('/local/domain/0/backend/vif');
    await until(async () => (back = await h.watchLog('/local/domain/0/backend/vif')).includes(`/${g.domid}/0/state=4`), `netback's state=4 for d${g.domid}`, { everyMs: 0, seen: () => back });
    await g.go('end');
    const o = await g.outcome;
    back = await h.watchLog('/local/domain/0/backend/vif');
    await until(async () => (back = await h.watchLog('/local/domain/0/backend/vif')).includes(`/${g.domid}/0/state=6`), `netback's state=6 for d${g.domid}`, { everyMs: 0, seen: () => back });
    t.deepEqual(o.connected?.negotiated, { queues: 1, split: true, sg: true });
    // One vCPU, one queue: made while the backend's offer was being read, and used (netfront.ts prebuild).
    t.like(o.front, { ahead_used: 1, ahead_freed: 0 });
    const be = back.filter((e) => e.startsWith(`/${g.domid}/0/`)).map((e) => e.slice(`/${g.domid}/0/`.length));
    const initWait = be.indexOf('state=2');
    const hotplug = be.indexOf('hotplug-status=connected');
    const connected = be.indexOf('state=4');
    t.true(initWait >= 0 && hotplug >= 0 && connected >= 0, be.join(' '));
    t.true(initWait < connected && hotplug < connected, be.join(' '));
    // The frontend log was started after boot: it must show Connected and never Initialised (3).
    t.false(front.some((e) => e.endsWith('/state=3')), front.join(' '));
    t.true(be.includes('state=6'), 'the backend closed when the guest let go');
    t.true(h.dom0Log.some((l) => l.includes(`netback vif${g.domid}.0: connected, 1 queue(s), split event channels, on xenbr0`)));
  } finally {
    await h.close();
  }
});

test('one queue made ahead with split channels, the backend offering none: freed, one event channel made; traffic crosses', async (t) => {
  const h = await NetHost.boot();
  try {
    const recv = await h.start({ vif: { ...B, split: false }, vcpus: 1, tasks: [{ kind: 'stream-recv', port: 6001 }] });
    const send = await h.start({ vif: A, tasks: [{ kind: 'barrier', name: 'go' }, { kind: 'stream-send', target: B.ip, port: 6001, size: 512, count: 300 }] });
    await recv.note('listen:6001');
    await send.go('go');
    const [a, b] = await Promise.all([send.outcome, recv.outcome]);
    t.deepEqual(b.connected?.negotiated, { queues: 1, split: false, sg: true });
    t.like(b.front, { ahead_used: 0, ahead_freed: 1 });
    t.like(a.front, { ahead_used: 1, ahead_freed: 0 });
    const r = b.tasks[0].result;
    t.true(r?.kind === 'stream' && r.result.received === 300 && r.result.bad === 0);
  } finally {
    await h.close();
  }
});

test('two queues and one event channel when the backend does not offer split ones; traffic crosses both', async (t) => {
  const h = await NetHost.boot();
  try {
    const recv = await h.start({ vif: { ...B, split: false }, front: { maxQueues: 2 }, vcpus: 1, tasks: [{ kind: 'stream-recv', port: 6001 }] });
    const send = await h.start({
      vif: { ...A, maxQueues: 2 }, front: { maxQueues: 4 },
      tasks: [{ kind: 'barrier', name: 'go' }, { kind: 'stream-send', target: B.ip, port: 6001, size: 512, count: 1000 }],
    });
    await recv.note('listen:6001');
    await send.go('go');
    const [a, b] = await Promise.all([send.outcome, recv.outcome]);
    t.deepEqual(a.connected?.negotiated, { queues: 2, split: true, sg: true });
    t.deepEqual(b.connected?.negotiated, { queues: 2, split: false, sg: true });
    const r = b.tasks[0].result;
    t.true(r?.kind === 'stream' && r.result.received === 1000 && r.result.bad === 0);
  } finally {
    await h.close();
  }
});

test('hot-plug: a vif attached to a running guest connects; detached, it closes and the guest carries on', async (t) => {
  const h = await NetHost.boot();
  try {
    const peer = await h.start({ vif: B, tasks: [{ kind: 'barrier', name: 'end' }] });
    const g = await h.start({ vif: A, attachLater: true, tasks: [{ kind: 'ping', target: B.ip, count: 3 }, { kind: 'barrier', name: 'detached' }] });
    await g.booted();
    await h.attach(g.domid, A);
    await g.note('barrier:detached');
    await h.detach(g.domid, A);
    const stats = await h.vifStats();
    t.false(Object.keys(stats.stats).some((p) => p.includes(`/vif/${g.domid}/`)), 'netback let go of the detached vif');
    t.false(stats.bridges.xenbr0.ports.includes(`vif${g.domid}.0`), 'and the hotplug step took it off the bridge');
    await g.go('detached');
    await peer.go('end');
    const o = await g.outcome;
    const ping = o.tasks[0].result;
    t.true(ping?.kind === 'ping' && ping.result.received === 3);
    await peer.outcome;
  } finally {
    await h.close();
  }
});
