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
