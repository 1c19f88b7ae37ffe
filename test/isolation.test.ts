// The isolation model (README, "Isolation"): a guest kernel that uses only what it is handed,
// its hypercall interface and its own memory, cannot reach another domain's memory, nor the
// hypervisor's state, nor the thread's workerData. Tried by a probe kernel on its own thread,
// beside a victim domain whose RAM holds a secret.
import test from 'ava';
import { randomUUID } from 'node:crypto';
import { Host } from '../hypervisor/host.ts';
import { openInbox } from './helpers/channel.ts';
import type { IsolationMessage, IsolationModule, ProbeReport } from './kernels/isolation-probe.ts';

const PROBE = new URL('./kernels/isolation-probe.ts', import.meta.url).href;
const IDLE = new URL('./kernels/probe.ts', import.meta.url).href;

let report: Promise<ProbeReport> | null = null;

/** One run shared by the tests below: Dom0 idle, a victim holding the secret, then the probe. */
function probeOnce(): Promise<ProbeReport> {
  report ??= (async () => {
    const host = new Host({ memoryMiB: 32, log: () => {} });
    const inbox = openInbox<IsolationMessage>();
    try {
      await host.createDomain({ name: 'Domain-0', vcpus: 1, memoryKiB: 2048, kernel: IDLE, module: { action: 'idle' } }, { privileged: true });
      const secret = `ringvisor-secret-${randomUUID()}`;
      const mod = (role: IsolationModule['role'], victim?: number): IsolationModule => ({ channel: inbox.name, role, secret, victim });
      const victim = await host.createDomain({ name: 'victim', vcpus: 1, memoryKiB: 2048, kernel: PROBE, module: mod('victim') });
      await inbox.next('victim-ready');
      await host.createDomain({ name: 'probe', vcpus: 1, memoryKiB: 2048, kernel: PROBE, module: mod('probe', victim) });
      return await inbox.next('probe-report');
    } finally {
      inbox.close();
      await host.close();
    }
  })();
  return report;
}

test('workerData and the thread\'s port are blanked before the kernel runs, however it asks', async (t) => {
  const r = await probeOnce();
  t.deepEqual(r.workerData, { import: 'null', getBuiltinModule: 'null', parentPort: 'null' });
});

test('walking everything it holds and the global object finds no hypervisor state and no shared buffer', async (t) => {
  const r = await probeOnce();
  t.true(r.visited > 1000, `the walk visited ${r.visited} objects`);
  t.deepEqual(r.suspicious, []);
  t.deepEqual(r.sabs, []);
  t.deepEqual(r.secretVia, []);
});

test('its hypercalls refuse the victim, and its own memory object reaches none of the victim\'s data', async (t) => {
  const r = await probeOnce();
  t.deepEqual(r.hypercallsThatWorked, []);
  t.false(r.secretInOwnMemory);
});

// A page view is a typed array over machine memory (DESIGN.md section 3), and in plain JavaScript
// a typed array's .buffer is the whole buffer. In a guest's thread it is refused
// (hypervisor/view-guard.ts), and the re-viewing helpers reach exactly the view's own bytes.
test('a page view reaches nothing beyond its own page', async (t) => {
  const r = await probeOnce();
  t.log(JSON.stringify(r.pageView));
  t.is(r.pageView.buffer, 'TypeError');
  t.is(r.pageView.lyingOffset, `${4096} bytes`, 'viewAs reads the real offset and length, not the object\'s own properties');
  t.is(r.pageView.pastEnd, 'RangeError');
  t.is(r.pageView.fakeCtor, 'TypeError');
  t.is(r.pageView.sabsReached, 0);
  t.false(r.pageView.holdsSecret);
});
