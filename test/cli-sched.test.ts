/*
 * The scheduling verbs through the bin: host --pcpus, sched-credit (-d -w -c; -s -t -r),
 * vcpu-pin, vcpu-list and info's pCPU lines, checked by output and exit code.
 */
import test from 'ava';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CliProcess, rv } from './helpers/cli.ts';

const TEMPLATE = new URL('../examples/templates/small-guest', import.meta.url).pathname;

test('host --pcpus 2; sched-credit, vcpu-pin, vcpu-list and info as xl prints them', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'rv-sched-'));
  const runDir = join(dir, 'run');
  const host = new CliProcess(['host', '--run-dir', runDir, '--pcpus', '2']);
  try {
    await host.waitFor(/ringvisor host up: .*2 pCPU slot\(s\), credit scheduler/);
    const at = ['--run-dir', runDir];

    const all = await rv([...at, 'sched-credit']);
    t.is(all.code, 0, all.stderr);
    t.regex(all.stdout, /^Cpupool Pool-0: tslice=30ms ratelimit=1000us migration-delay=0us pcpus=2$/m);
    t.regex(all.stdout, /^Name +ID Weight +Cap$/m);
    t.regex(all.stdout, /^Domain-0 +0 +256 +0$/m);

    t.is((await rv([...at, 'sched-credit', '-d', 'Domain-0', '-w', '512', '-c', '50'])).code, 0);
    t.regex((await rv([...at, 'sched-credit', '-d', '0'])).stdout, /^Domain-0 +0 +512 +50$/m);
    const badWeight = await rv([...at, 'sched-credit', '-d', '0', '-w', '70000']);
    t.is(badWeight.code, 1);
    t.regex(badWeight.stderr, /weight 70000 \(expected 1\.\.65535\)/);

    t.regex((await rv([...at, 'sched-credit', '-s', '-t', '20', '-r', '500'])).stdout, /tslice=20ms ratelimit=500us/);
    const badPool = await rv([...at, 'sched-credit', '-s', '-t', '1', '-r', '5000']);
    t.is(badPool.code, 1);
    t.regex(badPool.stderr, /ratelimit 5000 us is longer than the timeslice/);

    t.is((await rv([...at, 'vcpu-pin', 'Domain-0', '0', '1'])).code, 0);
    const vl = await rv([...at, 'vcpu-list']);
    t.is(vl.code, 0, vl.stderr);
    t.regex(vl.stdout, /^Name +ID +VCPU +CPU State +Time\(s\) Affinity \(Hard \/ Soft\)$/m);
    t.regex(vl.stdout, /^Domain-0 +0 +0 +[-01] +[r-][b-]- +\d+\.\d 1 \/ all$/m);
    const badPin = await rv([...at, 'vcpu-pin', 'Domain-0', '0', '5']);
    t.is(badPin.code, 1);
    t.regex(badPin.stderr, /this host has cpus 0-1/);

    // A VM running io-wake: it sleeps on its guest timer (VIRQ_TIMER), never a host timer.
    t.is((await rv(['new-vm', '--from', TEMPLATE, '--name', 'waker', join(dir, 'waker')])).code, 0);
    const cfg = join(dir, 'waker', 'vm.cfg');
    writeFileSync(cfg, readFileSync(cfg, 'utf8').replace(/^workload\b.*$/m, 'workload = "io-wake"\nworkload_args = [ "count=20", "period=2" ]'));
    const created = await rv([...at, 'create', join(dir, 'waker')]);
    t.is(created.code, 0, created.stderr);
    const log = join(dir, 'waker', 'console.log');
    const result = () => (existsSync(log) ? /workload-result (\{.*\})/.exec(readFileSync(log, 'utf8'))?.[1] : undefined);
    for (let i = 0; i < 6000 && result() === undefined; i++) await new Promise((r) => setTimeout(r, 10));
    const r = JSON.parse(result() ?? '{}') as { wakes?: number; early?: number };
    t.is(r.wakes, 20);
    t.is(r.early, 0, 'no wake-up before its deadline');

    const info = await rv([...at, 'info']);
    t.regex(info.stdout, /^nr_cpus +: 2$/m);
    t.regex(info.stdout, /^max_cpu_id +: 1$/m);
    t.regex(info.stdout, /^pcpu0 +: (idle|d\d+v\d+) +load \d+\.\d% since boot$/m);
    t.regex(info.stdout, /^pcpu1 +: /m);
  } finally {
    host.child.kill('SIGTERM');
    await host.exited;
    rmSync(dir, { recursive: true, force: true });
  }
});
