/*
 * Scenario `overcommit`: the lecture's memory half on a live host, narrated.
 *
 * A host of 256 MiB boots four 96 MiB guests (384 MiB promised: 1.5×), each running mem-image
 * (a common 16 MiB boot image, a 48 MiB working set with a hot part, every page verified by
 * checksum). What makes it fit, in the order the lecture and ESX use them:
 *   populate on demand  a guest's memory costs a frame only when touched (hypervisor/mm/pod.ts)
 *   page sharing        identical pages become one read-only frame, copy-on-write (mm/sharing.ts)
 *   ballooning          the toolstack lowers each guest's target; its balloon driver gives back
 *                       what it does not use (domu/balloon/), so the promise shrinks
 *   paging              the last resort, when free frames fall below the pager's mark (mm/pager.ts)
 * The toolstack's memory policy (dom0/toolstack/mem-policy.ts) takes those steps, in that order, as
 * the host's free frames fall; its decisions are narrated as it takes them.
 * Every second a table per guest as ESX reports one (granted, shared, ballooned, swapped) and the
 * host's free memory; it ends when every guest has verified its data. Under a minute.
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { XlClient } from '../cli/client.ts';
import { startHost } from '../cli/host.ts';
import type { CreateResult, HostInfo, MemPolicyStatus } from '../dom0/toolstack/protocol.ts';
import { mmCounters } from '../hypervisor/mm/counters.ts';
import { freeFrames } from '../hypervisor/page-alloc.ts';
import { D } from '../hypervisor/state.ts';

const GUESTS = ['vm1', 'vm2', 'vm3', 'vm4'];
const GUEST_MIB = 96;
const HOST_MIB = 256;
const mib = (pages: number) => `${((pages * 4096) / 1048576).toFixed(1)}`.padStart(6);

export async function overcommit(say: (line: string) => void): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'ringvisor-overcommit-'));
  const rh = await startHost({ runDir: join(dir, 'run'), memoryMiB: HOST_MIB, log: () => undefined });
  const xl = await XlClient.open(rh.runDir);
  const host = rh.host;
  try {
    const free0 = freeFrames(host.hv);
    say(`1. A host of ${HOST_MIB} MiB; Dom0 has its 64 MiB allocated (it is no PoD guest): ${mib(free0).trim()} MiB free for guests.`);
    // The scanner's knobs, set now, used when the policy turns it on (faster than KSM's 100 pages
    // per 20 ms, so a one-minute run shows it).
    host.mm.setSharing({ run: false, pages_to_scan: 4000, sleep_millisecs: 10 });
    const policy = await xl.call<MemPolicyStatus>({ verb: 'mem-policy', run: true });
    say('   The toolstack\'s memory policy is on (ringvisor mem-policy on; dom0/toolstack/mem-policy.ts), in ESX\'s order:');
    say('   once the guests are promised more than the host has, sharing first (the scanner: 4000 pages every 10 ms)');
    say(`   and the pager armed; below ${mib(policy.settings.soft_pages).trim()} MiB free, balloon targets; below ${mib(policy.settings.hard_pages).trim()} MiB free, paging: the last resort.`);
    say('');
    say(`2. Four VMs of ${GUEST_MIB} MiB: ${GUESTS.length * GUEST_MIB} MiB promised on ${HOST_MIB} MiB, ` +
      `${((GUESTS.length * GUEST_MIB) / HOST_MIB).toFixed(1)}× overcommitted.`);
    say('   Each runs mem-image: a 16 MiB boot image identical in every guest, a 48 MiB working set');
    say('   (one cold page in ten zero, 4 MiB hot, rewritten each round), every page checked.');
    const lines = new Map<string, string[]>();
    const clients: XlClient[] = [];
    for (const name of GUESTS) {
      const d = join(dir, name);
      mkdirSync(d);
      // on_crash = "preserve": a guest that dies stays listed (xl destroys it by default), so step 4
      // can say why from its console and the end still destroys all four.
      writeFileSync(join(d, 'vm.cfg'), `name = "${name}"\nmemory = ${GUEST_MIB}\non_crash = "preserve"\nworkload = "mem-image"\n` +
        `workload_args = [ "image=16", "ws=48", "zero=10", "hot=4", "rounds=4", "period=400", "seed=${GUESTS.indexOf(name) + 1}" ]\n`);
      const r = await xl.call<CreateResult>({ verb: 'create', path: d });
      lines.set(name, []);
      const c = await XlClient.open(rh.runDir);
      clients.push(c);
      let part = '';
      await c.console(String(r.domid), (b) => {
        part += Buffer.from(b).toString();
        const all = part.split(/\r?\n/);
        part = all.pop() ?? '';
        lines.get(name)!.push(...all);
      }, () => undefined);
    }
    say(`   All four booted (populate on demand: nothing is backed until touched); ${mib(freeFrames(host.hv)).trim()} MiB free.`);
    say('');
    say('3. Every second, per guest (MiB), as ESX reports it, and the host:');
    const done = () => GUESTS.every((g) => lines.get(g)!.some((l) => /mem-image: OK|read back wrong|crash/.test(l)));
    let seen = 0;
    for (let s = 1; !done() && s <= 55; s++) {
      await new Promise((r) => setTimeout(r, 1000));
      const infos = host.list().filter((i) => GUESTS.includes(i.name));
      say(`   t=${String(s).padStart(2)}s  ${'guest'.padEnd(5)} granted shared ballooned swapped | host free ${mib(freeFrames(host.hv))}`);
      for (const i of infos) {
        const held = host.hv.domains[i.domid * D.WORDS + D.TOT_PAGES]; // frames it holds (granted)
        const size = held + (i.pod_pages ?? 0) + (i.shr_pages ?? 0) + (i.paged_pages ?? 0);
        say(`          ${i.name.padEnd(5)} ${mib(held)}  ${mib(i.shr_pages ?? 0)} ${mib((GUEST_MIB * 256) - size)}    ${mib(i.paged_pages ?? 0)}`);
      }
      // What the policy did since the last table (its events, as `ringvisor info` lists them).
      const pol = (await xl.call<HostInfo>({ verb: 'info' })).mem_policy;
      if (pol) {
        for (const e of pol.events.slice(Math.max(0, pol.events.length - (pol.eventCount - seen)))) say(`   policy: ${e}`);
        seen = pol.eventCount;
      }
    }
    const c = mmCounters(host.hv);
    say('');
    say('4. What each mechanism did:');
    say(`   sharing: ${c.sharing_shared_frames} shared frames (Xen nr_shared_mfns, KSM pages_shared) mapped ${c.sharing_mappings} times: ` +
      `${c.sharing_freed_memory} frames saved (sharing_freed_memory, KSM pages_sharing), ${c.cow_breaks} COW breaks`);
    say(`   paging: ${c.page_outs} pages written to paging files, ${c.page_ins} read back on access, ${c.paged_out} still out`);
    say(`   populate on demand: ${c.pod_fills} pages backed at first touch`);
    for (const g of GUESTS) {
      const seen = lines.get(g)!;
      const verdict = seen.find((l) => /mem-image: OK|read back wrong/.test(l)) ?? `did not finish; its last line: ${seen.at(-1) ?? '(none)'}`;
      say(`   ${g}: ${verdict.replace(/^.*mem-image: /, 'mem-image: ')}`);
    }
    const ok = GUESTS.every((g) => lines.get(g)!.some((l) => l.includes('mem-image: OK')));
    say(ok ? `5. Every guest verified its data: ${GUESTS.length * GUEST_MIB} MiB promised on ${HOST_MIB} MiB, nothing lost.`
      : '5. Not every guest finished: see above.');
    for (const cl of clients) cl.close();
    for (const g of GUESTS) await xl.call({ verb: 'destroy', domain: g });
    say(`   Destroyed: the host has ${mib(freeFrames(host.hv)).trim()} MiB free again (it had ${mib(free0).trim()}).`);
  } finally {
    xl.close();
    await rh.close();
    rmSync(dir, { recursive: true, force: true });
  }
}
