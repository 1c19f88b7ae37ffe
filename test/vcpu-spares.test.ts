// Spare vCPU threads (hypervisor/vcpu-spares.ts): a DomU whose vCPU is the host's spare, made and
// loaded before the domain existed, is as confined as one on a fresh thread: its page views give
// out no buffer, its workerData and port are blanked, and the victim beside it keeps its secret.
// Here every DomU vCPU comes from a spare (HostOptions.spareKernel, settled before each create).
import test from 'ava';
import { randomUUID } from 'node:crypto';
import { Host } from '../hypervisor/host.ts';
import { openInbox } from './helpers/channel.ts';
import type { IsolationMessage, IsolationModule } from './kernels/isolation-probe.ts';

const PROBE = new URL('./kernels/isolation-probe.ts', import.meta.url).href;
const IDLE = new URL('./kernels/probe.ts', import.meta.url).href;

test('a guest on a spare vCPU thread is guarded as one on a fresh thread', async (t) => {
  const host = new Host({ memoryMiB: 32, log: () => {}, spareKernel: PROBE });
  const inbox = openInbox<IsolationMessage>();
  try {
    await host.createDomain({ name: 'Domain-0', vcpus: 1, memoryKiB: 2048, kernel: IDLE, module: { action: 'idle' } }, { privileged: true });
    const secret = `ringvisor-secret-${randomUUID()}`;
    const mod = (role: IsolationModule['role'], victim?: number): IsolationModule => ({ channel: inbox.name, role, secret, victim });
    await host.sparesSettled();
    const victim = await host.createDomain({ name: 'victim', vcpus: 1, memoryKiB: 2048, kernel: PROBE, module: mod('victim') });
    await inbox.next('victim-ready');
    await host.sparesSettled(); // the spare taken by the victim was replaced; the probe takes the new one, loaded
    await host.createDomain({ name: 'probe', vcpus: 1, memoryKiB: 2048, kernel: PROBE, module: mod('probe', victim) });
    const r = await inbox.next('probe-report');
    t.is(r.pageView.buffer, 'TypeError', 'a page view\'s .buffer is refused');
    t.is(r.pageView.sabsReached, 0);
    t.false(r.pageView.holdsSecret);
    t.deepEqual(r.workerData, { import: 'null', getBuiltinModule: 'null', parentPort: 'null' });
    t.deepEqual(r.sabs, []);
    t.deepEqual(r.hypercallsThatWorked, []);
    t.false(r.secretInOwnMemory);
  } finally {
    inbox.close();
    await host.close();
  }
});
