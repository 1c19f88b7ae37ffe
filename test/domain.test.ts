// Domains on their own threads: lifecycle, privilege, traps, page faults, and no leaks.
import test from 'ava';
import { once } from 'node:events';
import { Host, type ShutdownEvent } from '../hypervisor/host.ts';
import { bareToolstack } from '../scenarios/bare-toolstack.ts';
import type { DomainConfig } from '../shared/public/hypercall.ts';
import type { ProbeModule } from './kernels/probe.ts';
import { until as poll } from '../scenarios/lib/hang.ts';

const PROBE = new URL('./kernels/probe.ts', import.meta.url).href;

function probe(action: ProbeModule['action'], extra: Partial<DomainConfig> = {}): DomainConfig {
  return { name: `probe-${action}`, vcpus: 1, memoryKiB: 2048, kernel: PROBE, module: { action }, ...extra };
}

/** A host with an idle Dom0, and a record of what every domain said on the hypervisor console. */
async function hostWithDom0() {
  const host = new Host({ memoryMiB: 64, log: () => {} });
  const xl = bareToolstack(host); // the hypervisor only records a shutdown; this acts on on_* as xl does
  const said: string[] = [];
  host.on('console', (e: { domid: number; text: string }) => said.push(`d${e.domid} ${e.text}`));
  await host.createDomain(probe('idle', { name: 'Domain-0' }), { privileged: true });
  await until(() => said.some((s) => s === 'd0 idle'));
  return { host, said, xl };
}

/** Wait, event by event, until `cond` holds (no fixed sleeps); a hang fails naming the condition. */
async function until(cond: () => boolean): Promise<void> {
  await poll(cond, `${cond}`.replace(/^\(\) => /, ''), { everyMs: 5 });
}

test('kernel main() returning powers the domain off; on_poweroff=destroy frees it', async (t) => {
  const { host, said } = await hostWithDom0();
  const before = host.usage();
  const shut = once(host, 'shutdown');
  const domid = await host.createDomain(probe('return'));
  const [e] = (await shut) as [ShutdownEvent];
  t.is(e.domid, domid);
  t.is(e.reason, 'poweroff');
  await until(() => host.info(domid) === null);
  t.true(said.includes(`d${domid} returning from main`));
  t.deepEqual(host.usage(), before);
  await host.close();
});

test('the lecture\'s Ring 0 example: a guest powering off "the machine" stops only itself', async (t) => {
  const { host, said } = await hostWithDom0();
  const shut = once(host, 'shutdown');
  const domid = await host.createDomain(probe('acpi-off', { on_poweroff: 'preserve' }));
  const [e] = (await shut) as [ShutdownEvent];
  t.is(e.reason, 'poweroff');
  t.regex(e.detail, /ACPI soft-off/);
  t.false(said.some((s) => s.includes('still here')), 'the trapped instruction never returned to the guest');
  t.is(host.info(domid)?.state, 'shutdown', 'on_poweroff=preserve keeps it, stopped');
  t.is(host.info(0)?.state, 'running', 'Dom0 and the host carry on');
  t.is(host.usage().threadsAlive, 1);
  await host.destroy(domid);
  await host.close();
});

test('a privileged instruction the guest may not execute crashes only that guest (on_crash decides)', async (t) => {
  const { host, said } = await hostWithDom0();
  let shut = once(host, 'shutdown');
  const kept = await host.createDomain(probe('port80', { on_crash: 'preserve' }));
  let [e] = (await shut) as [ShutdownEvent];
  t.is(e.reason, 'crash');
  t.regex(e.detail, /general protection fault: outb port 0x80/);
  t.is(host.info(kept)?.state, 'shutdown');
  t.true(host.info(kept)!.tot_pages > 0, 'preserved: memory kept for inspection');
  shut = once(host, 'shutdown');
  const gone = await host.createDomain(probe('port80', { on_crash: 'destroy' }));
  [e] = (await shut) as [ShutdownEvent];
  t.is(e.domid, gone);
  await until(() => host.info(gone) === null);
  t.false(said.some((s) => s.includes('still here')));
  t.is(host.info(0)?.state, 'running');
  await host.close();
});

test('cli; hlt takes the last vCPU down: a poweroff; a reset register write is a reboot that restarts', async (t) => {
  const { host, xl } = await hostWithDom0();
  let shut = once(host, 'shutdown');
  await host.createDomain(probe('cli-hlt', { on_poweroff: 'destroy' }));
  let [e] = (await shut) as [ShutdownEvent];
  t.is(e.reason, 'poweroff');
  t.regex(e.detail, /hlt with interrupts disabled/);

  shut = once(host, 'shutdown');
  const restarted = once(xl, 'restarted');
  const first = await host.createDomain(probe('reset', { on_reboot: 'restart' }));
  [e] = (await shut) as [ShutdownEvent];
  t.is(e.reason, 'reboot');
  const [r] = (await restarted) as [{ from: number; to: number }];
  t.is(r.from, first);
  t.not(r.to, first, 'a restarted domain gets a new id, as xl does');
  // The restarted domain resets again; stop the loop by destroying it when it next shuts down.
  await host.close();
});

test('an uncaught exception in the kernel crashes the domain, with the reason logged', async (t) => {
  const lines: string[] = [];
  const host = new Host({ memoryMiB: 32, log: (l) => lines.push(l) });
  bareToolstack(host);
  const shut = once(host, 'shutdown');
  await host.createDomain(probe('throw'));
  const [e] = (await shut) as [ShutdownEvent];
  t.is(e.reason, 'crash');
  t.regex(e.detail, /kernel BUG at probe.ts/);
  t.true(lines.some((l) => /crashed/.test(l)));
  await host.close();
});

test('a page fault names the domain and the address; unhandled, it crashes the guest', async (t) => {
  const { host, said } = await hostWithDom0();
  let shut = once(host, 'shutdown');
  const d = await host.createDomain(probe('page-fault-caught'));
  await shut;
  const line = said.find((s) => s.startsWith(`d${d} caught:`));
  t.truthy(line);
  t.regex(line!, new RegExp(`page fault: d${d} read at gpa 0x[0-9a-f]+0c .*no translation`));
  shut = once(host, 'shutdown');
  const d2 = await host.createDomain(probe('page-fault'));
  const [e] = (await shut) as [ShutdownEvent];
  t.is(e.domid, d2);
  t.is(e.reason, 'crash');
  t.regex(e.detail, /PageFault: page fault: d\d+ write/);
  t.true(host.counters(d2).page_faults >= 1);
  await host.close();
});

test('a DomU calling a Dom0-only hypercall gets EPERM and nothing changes', async (t) => {
  const { host, said } = await hostWithDom0();
  const d = await host.createDomain(probe('domctl'));
  await until(() => said.some((s) => s.startsWith(`d${d} alloc_unbound`)));
  t.true(said.includes(`d${d} pausedomain(0) = -1`));
  t.true(said.includes(`d${d} destroydomain(0) = -1`));
  t.true(said.includes(`d${d} alloc_unbound(dom 0) = -1`));
  t.is(host.info(0)?.state, 'running');
  t.is(host.list().length, 2);
  await host.close();
});

test('pause stops a busy domain at its next preemption point; unpause resumes it', async (t) => {
  const { host, said } = await hostWithDom0();
  const d = await host.createDomain(probe('spin'));
  await until(() => said.includes(`d${d} spinning`));
  const calls = () => host.counters(d).hypercalls;
  const c0 = calls();
  await until(() => calls() > c0 + 100);
  host.pause(d);
  await until(() => host.isQuiescent(d));
  t.is(host.info(d)?.state, 'paused');
  const frozen = calls();
  // Give a running vCPU every chance to make progress: it must not.
  for (let i = 0; i < 20; i++) await new Promise(setImmediate);
  t.is(calls(), frozen, 'no hypercall while paused');
  host.unpause(d);
  await until(() => calls() > frozen + 100);
  t.is(host.info(d)?.state, 'running');
  t.true(host.info(d)!.cpu_time_ms > 0, 'running time is accounted');
  await host.close();
});

test('100 create/destroy cycles leave the host holding exactly what it held before', async (t) => {
  const { host, said } = await hostWithDom0();
  const before = host.usage();
  let holding = 0;
  host.on('console', (e: { text: string }) => { if (e.text === 'holding') holding++; });
  for (let i = 0; i < 100; i++) {
    const d = await host.createDomain(probe('hold-resources', { name: `cycle-${i}` }));
    await until(() => holding === i + 1);
    const during = host.usage();
    if (during.framesUsed <= before.framesUsed || during.portsBound < before.portsBound + 5) {
      t.fail(`cycle ${i}: domain ${d} holds nothing? ${JSON.stringify(during)}`);
    }
    await host.destroy(d);
  }
  t.deepEqual(host.usage(), before);
  t.is(said.filter((s) => s.endsWith('holding')).length, 100);
  await host.close();
  t.deepEqual(host.usage(), { domains: 0, framesUsed: 0, grantsActive: 0, grantMappings: 0, portsBound: 0, threadsAlive: 0 });
});

test('the hypervisor only records a shutdown: with no toolstack, the domain stays stopped whatever on_poweroff says', async (t) => {
  const host = new Host({ memoryMiB: 64, log: () => {} });
  const said: string[] = [];
  host.on('console', (e: { domid: number; text: string }) => said.push(`d${e.domid} ${e.text}`));
  await host.createDomain(probe('idle', { name: 'Domain-0' }), { privileged: true });
  const shut = once(host, 'shutdown');
  const domid = await host.createDomain(probe('return', { on_poweroff: 'destroy' }));
  await shut;
  t.is(host.info(domid)?.state, 'shutdown', 'on_poweroff is the toolstack\'s to apply (scenarios/bare-toolstack.ts, dom0/toolstack/)');
  t.is(host.info(domid)?.shutdown_reason, 'poweroff');
  // Dom0 has no toolstack above it: when it shuts down, the host destroys it.
  const dom0Gone = once(host, 'destroyed');
  await host.shutdown(0, 'poweroff');
  t.like((await dom0Gone)[0], { domid: 0 });
  await host.close();
});
