// xl.cfg's scheduling keys: cpus, cpus_soft (cpu lists), cpu_weight, cap; into the domain config.
import test from 'ava';
import { ConfigError } from '../../dom0/toolstack/config/config-error.ts';
import { domainConfigFields, interpretXlConfig } from '../../dom0/toolstack/config/vmconfig.ts';
import { parseXlConfig } from '../../dom0/toolstack/config/xlcfg-parse.ts';

const load = (text: string) => interpretXlConfig(parseXlConfig(text, 'vm.cfg'), '/vms/x/vm.cfg');

test('cpus, cpus_soft, cpu_weight and cap reach the domain config', (t) => {
  const { config, warnings } = load('name = "x"\ncpus = "0-3,^2"\ncpus_soft = "1"\ncpu_weight = 512\ncap = 50\n');
  t.deepEqual(warnings, []);
  t.like(domainConfigFields(config), { weight: 512, cap: 50, cpus: [0, 1, 3], cpus_soft: [1] });
  t.false('weight' in domainConfigFields(load('name = "x"\n').config), 'absent: the scheduler\'s defaults');
});

test('a bad cpu list or weight names its line', (t) => {
  for (const [text, line, what] of [
    ['name = "x"\ncpus = "0-x"\n', 2, /cpus = "0-x": "0-x" \(expected N, N-M, all or \^N\)/],
    ['name = "x"\n\ncpus_soft = "3-1"\n', 3, /low to high/],
    ['name = "x"\ncpus = "^0"\n', 2, /names no pCPU/],
    ['name = "x"\ncpu_weight = 0\n', 2, /cpu_weight/],
  ] as const) {
    const e = t.throws(() => load(text), { instanceOf: ConfigError })!;
    t.regex(e.message, new RegExp(`^vm\\.cfg:${line}`, 'm'));
    t.regex(e.message, what);
  }
});

test('cpus and cpus_soft as lists: one cpu list per vCPU (libxl vcpu_hard_affinity / vcpu_soft_affinity)', (t) => {
  const { config, warnings } = load('name = "x"\nvcpus = 2\nmaxvcpus = 3\ncpus = ["0", "1-3"]\ncpus_soft = ["all", "^0,2"]\n');
  t.deepEqual(warnings, []);
  const f = domainConfigFields(config);
  t.deepEqual(f.vcpu_hard_affinity, [[0], [1, 2, 3]]);
  t.deepEqual(f.vcpu_soft_affinity?.[1], [2]);
  t.is(f.max_vcpus, 3);
  t.false('cpus' in f, 'the list form replaces the single list');
  // xl ignores entries beyond maxvcpus; ringvisor says so.
  const extra = load('name = "x"\nvcpus = 1\ncpus = ["0", "1"]\n');
  t.deepEqual(domainConfigFields(extra.config).vcpu_hard_affinity, [[0]]);
  t.is(extra.warnings.length, 1);
  t.regex(extra.warnings[0]!.message, /`cpus' entry 1 \("1"\) ignored: the domain has 1 vCPU\(s\) at most/);
  t.is(extra.warnings[0]!.line, 3);
});

test('a bad entry of a per-vCPU cpu list names its line and its vCPU', (t) => {
  for (const [text, line, what] of [
    ['name = "x"\nvcpus = 2\ncpus = [\n  "0",\n  "1-x"\n]\n', 5, /cpus entry 1 \(vCPU 1\) "1-x": "1-x" \(expected N, N-M, all or \^N\)/],
    ['name = "x"\nvcpus = 2\ncpus_soft = [ "3-1" ]\n', 3, /cpus_soft entry 0 \(vCPU 0\) "3-1": .*low to high/],
    ['name = "x"\nvcpus = 2\ncpus = [ ["0"] ]\n', 3, /`cpus' entry 0 is a list/],
    ['name = "x"\ncpus = []\n', 2, /`cpus' is an empty list/],
  ] as const) {
    const e = t.throws(() => load(text), { instanceOf: ConfigError })!;
    t.regex(e.message, new RegExp(`^vm\\.cfg:${line}`, 'm'));
    t.regex(e.message, what);
  }
});
