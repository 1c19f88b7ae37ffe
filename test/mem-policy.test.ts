/*
 * The toolstack's memory policy (dom0/toolstack/mem-policy.ts) on a live host, step by step, driven
 * by its marks rather than by filling memory: overcommitted → the sharing scanner and the pager
 * on; free below the soft mark → each guest's balloon target lowered by the pages it never
 * touched, and its balloon follows; free back above twice the mark → the targets as they were.
 * Every step is in `info` (mem_policy) as the command line shows it. Bad settings are refused.
 */
import test from 'ava';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { formatInfo } from '../cli/format.ts';
import { xsOpen } from '../dom0/lib/libxenstore.ts';
import type { CreateResult, HostInfo, ListedDomain, MemPolicyStatus } from '../dom0/toolstack/protocol.ts';
import { freeFrames } from '../hypervisor/page-alloc.ts';
import { consoleText } from '../scenarios/lib/console.ts';
import { oneHost } from './helpers/one-host.ts';

const rig = oneHost(test, 'rv-mem-policy-', 128);

const info = () => rig.xl.call<HostInfo>({ verb: 'info' });

/** Look at `info` until the policy has said something matching `re` (each look is one of its periods apart). */
async function policySays(re: RegExp): Promise<string> {
  for (let i = 0; i < 400; i++) {
    const e = (await info()).mem_policy?.events.find((x) => re.test(x));
    if (e) return e;
    await new Promise((r) => setTimeout(r, 25));
  }
  throw new Error(`the policy never said ${re}: ${JSON.stringify((await info()).mem_policy?.events)}`);
}

async function consoleSays(domain: string, re: RegExp): Promise<void> {
  await consoleText(rig.rh.runDir, domain, re);
}

test.serial('bad settings are refused and leave the policy as it was', async (t) => {
  await t.throwsAsync(rig.xl.call({ verb: 'mem-policy', run: true, soft_pages: 100, hard_pages: 200 }), { message: /hard mark .* must be below the soft mark/ });
  t.is((await info()).mem_policy?.state, 'off');
  t.regex(formatInfo(await info()), /^mem_policy\s+: off$/m);
});

test.serial('overcommitted: sharing and the pager on; soft: targets lowered by what was never touched; high: targets back', async (t) => {
  const names = ['p1', 'p2'];
  for (const n of names) {
    const d = join(rig.dir, n);
    mkdirSync(d);
    writeFileSync(join(d, 'vm.cfg'), `name = "${n}"\nmemory = 48\n`);
    await rig.xl.call<CreateResult>({ verb: 'create', path: d });
  }
  for (const n of names) await consoleSays(n, /workload idle/);
  // Marks far below what is free: only the overcommit step applies.
  const on = await rig.xl.call<MemPolicyStatus>({ verb: 'mem-policy', run: true, soft_pages: 64, hard_pages: 32, headroom_pages: 1024, interval_ms: 20 });
  t.is(on.state, 'high');
  t.regex(await policySays(/^overcommitted: 96\.0 MiB promised to 2 guests/), /sharing on; the pager armed at 0\.1 MiB free/);
  t.true(rig.rh.host.mm.sharing.run, 'the scanner runs');
  t.like(rig.rh.host.mm.paging, { run: true, low_water_pages: 32 });

  // Raise the soft mark above what is free: the soft step.
  const free = freeFrames(rig.rh.host.hv);
  await rig.xl.call({ verb: 'mem-policy', soft_pages: free + 4096, hard_pages: 32 });
  const soft = await policySays(/^soft: .* balloon targets lowered/);
  t.regex(soft, /p1 48\.0 MiB → \d+\.\d MiB/);
  t.regex(soft, /p2 48\.0 MiB → \d+\.\d MiB/);
  const xs = await xsOpen(rig.rh.xenstoredSocket);
  try {
    const list = await rig.xl.call<ListedDomain[]>({ verb: 'list' });
    for (const n of names) {
      const dom = list.find((x) => x.name === n)!;
      const target = Number(await xs.read(`/local/domain/${dom.domid}/memory/target`));
      t.true(target < 48 * 1024 && target >= 4 * 1024, `${n}'s target lowered to ${target} KiB, keeping its headroom`);
      await consoleSays(n, new RegExp(`xen:balloon: at target: ${target} KiB`));
    }
    const st = (await info()).mem_policy!;
    t.true(st.state === 'soft' || st.state === 'hard');
    t.is(Object.keys(st.targets).length, 2);
    t.regex(formatInfo(await info()), /^mem_policy_event\s+: soft: /m);

    // Lower it again, far below free: high, the targets as they were.
    await rig.xl.call({ verb: 'mem-policy', soft_pages: 64, hard_pages: 32 });
    t.regex(await policySays(/^high: .* targets back/), /→ 48\.0 MiB/);
    for (const dom of list.filter((x) => names.includes(x.name))) {
      t.is(await xs.read(`/local/domain/${dom.domid}/memory/target`), String(48 * 1024));
    }
  } finally {
    xs.close();
  }
  t.is((await rig.xl.call<MemPolicyStatus>({ verb: 'mem-policy', run: false })).state, 'off');
  await rig.xl.call({ verb: 'mem-sharing', run: false });
  await rig.xl.call({ verb: 'mem-paging', run: false });
  for (const n of names) await rig.xl.call({ verb: 'destroy', domain: n });
});
