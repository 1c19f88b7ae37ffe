/*
 * vCPU hot-plug through the bin, as xl does it: maxvcpus > vcpus boots with the rest offline;
 * `vcpu-set` writes cpu/N/availability; the guest kernel brings vCPUs up (VCPUOP_up) and takes
 * them down (each stops its work, then VCPUOP_down on itself); list, vcpu-list and the xenstore
 * nodes say so; xl's refusals for 0, too many and nonsense. The guest runs cpu-burn on every
 * online vCPU meanwhile (that no unit of it is lost is test/vcpu-hotplug-work.test.ts's check).
 */
import test from 'ava';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CliProcess, rv } from './helpers/cli.ts';

const TEMPLATE = new URL('../examples/templates/small-guest', import.meta.url).pathname;

async function until(cond: () => boolean, what: string, context: () => string = () => ''): Promise<void> {
  for (let i = 0; !cond(); i++) {
    if (i > 6_000) throw new Error(`gave up waiting for ${what}\n${context()}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

test('maxvcpus, vcpu-set up and down mid-run, list / vcpu-list / xenstore, xl\'s errors', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'rv-hotplug-'));
  const runDir = join(dir, 'run');
  const host = new CliProcess(['host', '--run-dir', runDir, '--pcpus', '2']);
  try {
    await host.waitFor(/ringvisor host up: .*2 pCPU slot\(s\)/);
    const at = ['--run-dir', runDir];
    t.is((await rv(['new-vm', '--from', TEMPLATE, '--name', 'smp', join(dir, 'smp')])).code, 0);
    const cfg = join(dir, 'smp', 'vm.cfg');
    writeFileSync(cfg, readFileSync(cfg, 'utf8').replace(/^vcpus = 1$/m, 'vcpus = 2\nmaxvcpus = 3')
      .replace(/^workload\b.*$/m, 'workload = "cpu-burn"'));
    const created = await rv([...at, 'create', join(dir, 'smp')]);
    t.is(created.code, 0, created.stderr);
    const log = join(dir, 'smp', 'console.log');
    const text = () => (existsSync(log) ? readFileSync(log, 'utf8') : '');
    await until(() => /cpu-burn: 1 s, /.test(text()), 'a second of cpu-burn');

    // Booted with vcpus = 2 of maxvcpus = 3: vCPU 2 is down.
    t.regex((await rv([...at, 'list', 'smp'])).stdout, /^smp +\d+ +\d+ +2 /m);
    const node = (v: number) => `/local/domain/1/cpu/${v}/availability`;
    t.is((await rv([...at, 'xenstore-read', node(0), node(1), node(2)])).stdout, 'online\nonline\noffline\n');
    t.regex((await rv([...at, 'vcpu-list', 'smp'])).stdout, /^smp +1 +2 +- +--p /m);

    // Up: vCPU 2 comes online and joins the job (three vCPUs on two pCPUs: xl wants -i for that).
    const up = await rv([...at, 'vcpu-set', '--ignore-host', 'smp', '3']);
    t.is(up.code, 0, up.stderr);
    t.is(up.stdout, '', 'silent on success, as xl');
    await until(() => text().includes('CPU 2 is now online'), 'vCPU 2 online');
    t.is((await rv([...at, 'xenstore-read', node(2)])).stdout, 'online\n');
    t.regex((await rv([...at, 'list', 'smp'])).stdout, /^smp +\d+ +\d+ +3 /m);
    t.notRegex((await rv([...at, 'vcpu-list', 'smp'])).stdout, /--p/);

    // Down to one, mid-run: vCPUs 1 and 2 stop their work and go.
    t.is((await rv([...at, 'vcpu-set', 'smp', '1'])).code, 0);
    await until(() => text().includes('CPU 1 is now offline') && text().includes('CPU 2 is now offline'), 'vCPUs 1 and 2 offline', text);
    const vl = (await rv([...at, 'vcpu-list', 'smp'])).stdout;
    t.regex(vl, /^smp +1 +1 +- +--p /m);
    t.regex(vl, /^smp +1 +2 +- +--p /m);
    t.regex((await rv([...at, 'list', 'smp'])).stdout, /^smp +\d+ +\d+ +1 /m);
    const units = (v: number) => Number(/by vCPU (\d+) \/ (\d+) \/ (\d+)/.exec(text().slice(text().lastIndexOf('cpu-burn: ')))?.[v + 1] ?? -1);
    const before = text().length;
    await until(() => /cpu-burn: \d+ s, /.test(text().slice(before)), 'a progress report after', text);
    t.true(units(1) > 0 && units(2) > 0, `vCPUs 1 and 2 did part of the work: ${units(0)} / ${units(1)} / ${units(2)}`);

    // xl's refusals: nothing is written.
    const zero = await rv([...at, 'vcpu-set', 'smp', '0']);
    t.is(zero.code, 1);
    t.regex(zero.stderr, /Requested 0 VCPUs!/);
    const over = await rv([...at, 'vcpu-set', 'smp', '4']);
    t.is(over.code, 1);
    t.regex(over.stderr, /You are overcommitting! You have 2 physical CPUs and want 4 vCPUs! Aborting, use --ignore-host/);
    const tooMany = await rv([...at, 'vcpu-set', '-i', 'smp', '4']);
    t.is(tooMany.code, 1);
    t.regex(tooMany.stderr, /Requested 4 VCPUs, however maxcpus is 3!/);
    const nonsense = await rv([...at, 'vcpu-set', 'smp', 'two']);
    t.is(nonsense.code, 1);
    t.regex(nonsense.stderr, /"two": Invalid argument/);
    t.is((await rv([...at, 'xenstore-read', node(0), node(1), node(2)])).stdout, 'online\noffline\noffline\n', 'nothing written');

    // Runstate: an offline vCPU accumulates no running time (vcpu-list's Time(s) stands still).
    const timeOf = (out: string, v: number) => new RegExp(`^smp +1 +${v} +- +--p +([0-9.]+) `, 'm').exec(out)?.[1];
    const later = (await rv([...at, 'vcpu-list', 'smp'])).stdout;
    t.truthy(timeOf(vl, 1));
    t.is(timeOf(later, 1), timeOf(vl, 1));
    t.is(timeOf(later, 2), timeOf(vl, 2));
  } finally {
    host.child.kill('SIGTERM');
    await host.exited;
    rmSync(dir, { recursive: true, force: true });
  }
});
