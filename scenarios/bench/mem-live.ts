/*
 * The mem suite's live rows: guests on a running host, their data checked, for the two figures
 * the issue's acceptance names that only a whole host can give:
 *
 *   overcommit-ratio   the memory promised to guests (the sum of their `memory`) over the frames the
 *                      host has for them (its RAM less Dom0's), reached with every guest's data
 *                      verified: each runs mem-image and checks every page it wrote, every round.
 *                      Twice: guests with a common boot image (goal ≥ 2×), and guests with none
 *                      (goal ≥ 1.5×); and 3× with the common image, where sharing is not enough and
 *                      the balloon and the pager step in. The toolstack's memory policy
 *                      (dom0/toolstack/mem-policy.ts) drives sharing, balloon targets and the pager.
 *   mem-touch on/off   the same guests and workload on a host where they fit with sharing and
 *                      paging off, against the common-image run above with them on: the ratio of
 *                      the workload's throughput (mem-image's pages written and verified per
 *                      second over its rounds, the median of the guests). What overcommitting
 *                      costs the guests.
 *
 * Not Xen: ESX's and Xen's operators read the same figures from esxtop (MCTLSZ, SHRD, SWCUR) and
 * xl info / xenpaging; here one run gives them with a verdict on the data. The per-guest figures
 * (granted, shared, ballooned, swapped) are in the counters; an "active" estimate is not: the P2M
 * has no accessed bit to sample (see mem-policy.ts).
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { XlClient } from '../../cli/client.ts';
import { startHost } from '../../cli/host.ts';
import type { CreateResult, HostInfo } from '../../dom0/toolstack/protocol.ts';
import { RESULT_PREFIX } from '../../domu/workloads/run.ts';
import type { MemImageResult } from '../../domu/workloads/mem-image.ts';
import { mmCounters } from '../../hypervisor/mm/counters.ts';
import { freeFrames } from '../../hypervisor/page-alloc.ts';
import { D } from '../../hypervisor/state.ts';
import { median, type BenchRow } from './types.ts';

export interface LiveRun {
  /** Host RAM (MiB, Dom0's 64 included). */
  hostMiB: number;
  guests: number;
  guestMiB: number;
  /** mem-image's arguments: the common image and the working set (MiB), zero pages in a hundred, the hot part, rounds. */
  image: number;
  ws: number;
  zero: number;
  hot: number;
  rounds: number;
  /** The memory policy on (with its sharing and pager), or everything off. */
  policy: boolean;
}

export interface LiveResult {
  run: LiveRun;
  /** Promised / frames for guests. */
  ratio: number;
  framesForGuests: number;
  verified: number;
  /** Each guest's mem-image throughput (pages/s), in the order they finished. */
  pagesPerSecond: number[];
  counters: Record<string, number>;
  policyEvents: string[];
  seconds: number;
}

const PAGES_PER_MIB = 256;

/** One host, `guests` VMs running mem-image, until each has its verdict (or `timeoutS`). */
export async function liveOvercommit(run: LiveRun, timeoutS = 120): Promise<LiveResult> {
  const dir = mkdtempSync(join(tmpdir(), 'ringvisor-bench-overcommit-'));
  const rh = await startHost({ runDir: join(dir, 'run'), memoryMiB: run.hostMiB, log: () => undefined });
  const xl = await XlClient.open(rh.runDir);
  const clients: XlClient[] = [];
  try {
    const framesForGuests = freeFrames(rh.host.hv);
    if (run.policy) {
      rh.host.mm.setSharing({ run: false, pages_to_scan: 4000, sleep_millisecs: 10 }); // the knobs the policy will run it with
      await xl.call({ verb: 'mem-policy', run: true });
    }
    const results: MemImageResult[] = [];
    const verdicts: string[] = [];
    const t0 = performance.now();
    let finished!: () => void;
    const allDone = new Promise<void>((r) => { finished = r; });
    const settle = () => { if (verdicts.length === run.guests) finished(); };
    for (let g = 0; g < run.guests; g++) {
      const d = join(dir, `g${g}`);
      mkdirSync(d);
      writeFileSync(join(d, 'vm.cfg'), `name = "g${g}"\nmemory = ${run.guestMiB}\nworkload = "mem-image"\n` +
        `workload_args = [ "image=${run.image}", "ws=${run.ws}", "zero=${run.zero}", "hot=${run.hot}", "rounds=${run.rounds}", "period=0", "seed=${g + 1}" ]\n`);
      const r = await xl.call<CreateResult>({ verb: 'create', path: d });
      const c = await XlClient.open(rh.runDir);
      clients.push(c);
      let part = '';
      let said = false;
      await c.console(String(r.domid), (b) => {
        part += Buffer.from(b).toString();
        const lines = part.split(/\r?\n/);
        part = lines.pop() ?? '';
        for (const l of lines) {
          if (said) continue;
          if (l.startsWith(RESULT_PREFIX)) {
            results.push(JSON.parse(l.slice(RESULT_PREFIX.length)) as MemImageResult);
            verdicts.push('ok');
            said = true;
          } else if (/read back wrong|crash|PoD: out of memory/.test(l)) {
            verdicts.push(l);
            said = true;
          }
          if (said) settle();
        }
      }, (why) => { if (!said) { said = true; verdicts.push(`console closed: ${why}`); settle(); } });
    }
    const timer = setTimeout(finished, timeoutS * 1000);
    await allDone;
    clearTimeout(timer);
    const seconds = (performance.now() - t0) / 1000;
    const info = await xl.call<HostInfo>({ verb: 'info' });
    const guests = rh.host.list().filter((i) => !i.privileged);
    const sum = (f: (i: (typeof guests)[number]) => number) => guests.reduce((n, i) => n + f(i), 0);
    const verified = results.filter((r) => r.bad === 0).length;
    return {
      run, framesForGuests, verified, seconds,
      ratio: (run.guests * run.guestMiB * PAGES_PER_MIB) / framesForGuests,
      pagesPerSecond: results.map((r) => r.pagesPerSecond),
      counters: {
        ...mmCounters(rh.host.hv),
        guestsSharedPages: sum((i) => i.shr_pages ?? 0),
        guestsPagedPages: sum((i) => i.paged_pages ?? 0),
        // As the overcommit scenario's table: what is neither held, a PoD entry, shared nor paged is a ballooned hole.
        guestsBalloonedPages: sum((i) => run.guestMiB * PAGES_PER_MIB - rh.host.hv.domains[i.domid * D.WORDS + D.TOT_PAGES]
          - (i.pod_pages ?? 0) - (i.shr_pages ?? 0) - (i.paged_pages ?? 0)),
        freeAtEnd: freeFrames(rh.host.hv),
      },
      policyEvents: info.mem_policy?.events ?? [],
    };
  } finally {
    for (const c of clients) c.close();
    xl.close();
    await rh.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

/** The live rows: 2× with a common image, 1.5× without, and the same guests where they fit, off. */
export async function liveMemRows(quick: boolean, say: (line: string) => void): Promise<BenchRow[]> {
  const guests = 4;
  const guestMiB = 64;
  const common = { guests, guestMiB, image: 16, ws: 24, zero: 10, hot: 4, rounds: quick ? 3 : 6 };
  const dom0 = 64;
  const promised = guests * guestMiB;
  const rows: BenchRow[] = [];
  const row = (workload: string, r: LiveResult, counters: Record<string, number>): BenchRow => ({
    suite: 'mem', path: r.run.policy ? 'overcommit' : 'fits', wait: 'irq', workload, blockSize: 4096, queueDepth: 0,
    reqPerSec: median(r.pagesPerSecond.length > 0 ? r.pagesPerSecond : [0]), MBps: (median(r.pagesPerSecond.length > 0 ? r.pagesPerSecond : [0]) * 4096) / 1e6,
    counters: {
      ratio: Math.round(r.ratio * 100) / 100, ratioVerified: r.verified === r.run.guests ? Math.round(r.ratio * 100) / 100 : 0, guests: r.run.guests, verified: r.verified, promisedMiB: promised,
      hostMiB: r.run.hostMiB, framesForGuests: r.framesForGuests, seconds: Math.round(r.seconds * 10) / 10, ...counters,
    },
    repeats: r.pagesPerSecond.length, min: Math.min(...r.pagesPerSecond), max: Math.max(...r.pagesPerSecond),
  });

  say(`mem: ${guests} guests of ${guestMiB} MiB where they fit (${dom0 + promised + 32} MiB host), sharing and paging off`);
  const off = await liveOvercommit({ ...common, hostMiB: dom0 + promised + 32, policy: false });
  rows.push(row('mem-touch off', off, {}));

  say(`mem: the same on a host with half the frames for them (2×), a common ${common.image} MiB image, the policy on`);
  const two = await liveOvercommit({ ...common, hostMiB: dom0 + promised / 2, policy: true });
  const on = median(two.pagesPerSecond.length > 0 ? two.pagesPerSecond : [0]);
  const base = median(off.pagesPerSecond.length > 0 ? off.pagesPerSecond : [0]);
  rows.push(row('overcommit-ratio common-image', two, { ...two.counters, goal: 2 }));
  rows.push(row('mem-touch on/off', two, { onOffRatio: base > 0 && two.verified === guests ? Math.round((on / base) * 1000) / 1000 : 0, offPagesPerSec: base, onPagesPerSec: on }));

  say(`mem: further: the same guests on ${Math.round(promised / 3)} MiB for them (3×), where the balloon and the pager must step in`);
  const three = await liveOvercommit({ ...common, hostMiB: dom0 + Math.round(promised / 3), policy: true });
  rows.push(row('overcommit-ratio common-image 3x', three, { ...three.counters }));

  say(`mem: no common image, ${Math.round(promised / 1.5)} MiB for ${promised} promised (1.5×), the policy on`);
  const priv = await liveOvercommit({ ...common, image: 0, ws: common.image + common.ws, hostMiB: dom0 + Math.round(promised / 1.5), policy: true });
  rows.push(row('overcommit-ratio private', priv, { ...priv.counters, goal: 1.5 }));
  for (const r of [two, three, priv]) {
    if (r.verified !== guests) say(`mem: ${r.run.image > 0 ? 'common-image' : 'private'} run: only ${r.verified} of ${guests} guests verified their data; its ratio does not count`);
  }
  return rows;
}
