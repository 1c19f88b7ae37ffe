/*
 * A frontend that breaks netif: its packet is dropped with an error, or (for the fatal checks) its
 * own vif is disabled with one log line naming it, while the other guests' traffic carries on and
 * destroying it leaves the host holding nothing more than before.
 */
import test from 'ava';
import { NetHost } from '../scenarios/net/harness.ts';
import type { NetHostileReport } from './kernels/net-hostile.ts';
import { until } from '../scenarios/lib/hang.ts';

const HOSTILE = new URL('./kernels/net-hostile.ts', import.meta.url).href;
const A = { mac: '00:16:3e:00:02:0a', ip: '10.0.2.10' };
const B = { mac: '00:16:3e:00:02:0b', ip: '10.0.2.11' };
const EVIL = { mac: '00:16:3e:00:02:66', ip: '10.0.2.66' };
const NETIF_RSP_ERROR = -1;


/** Wait for a line of Dom0's (it travels on its own; each look is a round trip through Dom0). */
async function dom0Said(h: NetHost, line: string): Promise<void> {
  await until(async () => h.dom0Log.some((l) => l.includes(line)) || (await h.vifStats(), false), `Dom0 to log "${line}"`,
    { everyMs: 0, seen: () => h.dom0Log });
}
test('a runt packet is dropped with an ERROR response; the vif carries on', async (t) => {
  const h = await NetHost.boot();
  try {
    const { domid, report } = await h.startRaw(EVIL, HOSTILE, { mode: 'runt' });
    const r = (await report) as unknown as NetHostileReport;
    t.deepEqual(r.statuses, [NETIF_RSP_ERROR, 0]);
    // Dom0's console line travels on its own: wait for it (vifStats is a round trip through Dom0).
    const line = `netback vif${domid}.0: dropped a packet: Bad packet size: 13`;
    await dom0Said(h, line);
    t.true(h.dom0Log.some((l) => l.includes(line)));
    t.false(h.dom0Log.some((l) => l.includes('disabling device')));
    await h.destroy(domid);
  } finally {
    await h.close();
  }
});

test('zero queues: netback refuses to connect and says why', async (t) => {
  const h = await NetHost.boot();
  try {
    const { domid, report } = await h.startRaw(EVIL, HOSTILE, { mode: 'zero-queues' });
    const r = (await report) as unknown as NetHostileReport;
    t.regex(r.backendError ?? '', /guest requested 0 queues/);
    await h.destroy(domid);
  } finally {
    await h.close();
  }
});

for (const [mode, reason] of [['fatal-slots', /Malicious frontend using 20 slots/], ['cross-page', /Cross page boundary/]] as const) {
  test(`${mode}: only the hostile vif is disabled, others keep talking, and destroying it leaks nothing`, async (t) => {
    const h = await NetHost.boot();
    try {
      const before = h.usage();
      const b = await h.start({ vif: B, tasks: [{ kind: 'barrier', name: 'end' }] });
      const a = await h.start({ vif: A, tasks: [{ kind: 'ping', target: B.ip, count: 2 }, { kind: 'barrier', name: 'after' }, { kind: 'ping', target: B.ip, count: 3 }] });
      await a.note('barrier:after');
      const evil = await h.startRaw(EVIL, HOSTILE, { mode });
      await evil.report;
      const line = `netback vif${evil.domid}.0: fatal error; disabling device:`;
      await dom0Said(h, line); // the disable happens in Dom0's next turn
      const lines = h.dom0Log.filter((l) => l.includes('disabling device'));
      t.is(lines.length, 1, lines.join('\n'));
      t.regex(lines[0], reason);
      t.true(lines[0].includes(`vif${evil.domid}.0`));
      const stats = await h.vifStats();
      t.false(stats.bridges.xenbr0.ports.includes(`vif${evil.domid}.0`), 'the disabled vif is off the bridge');
      await a.go('after');
      const ao = await a.outcome;
      const ping = ao.tasks[2].result;
      t.true(ping?.kind === 'ping' && ping.result.received === 3 && ping.result.badReplies === 0, JSON.stringify(ao.tasks[2]));
      await b.go('end');
      await b.outcome;
      await h.destroy(evil.domid);
      // Wait until netback has let go of every vif (it does so when it sees the frontend gone).
      let vifs: string[] = [];
      await until(async () => (vifs = Object.keys((await h.vifStats()).stats)).length === 0, 'netback to let go of every vif', { everyMs: 0, seen: () => [`vifs: ${vifs.join(' ')}`, ...h.dom0Log] });
      const after = h.usage();
      t.deepEqual(
        { domains: after.domains, grantsActive: after.grantsActive, grantMappings: after.grantMappings, portsBound: after.portsBound, framesUsed: after.framesUsed },
        { domains: before.domains, grantsActive: before.grantsActive, grantMappings: before.grantMappings, portsBound: before.portsBound, framesUsed: before.framesUsed },
      );
      t.is((await h.vifStats()).pool, 0, 'no Dom0 packet buffer is still held');
    } finally {
      await h.close();
    }
  });
}
