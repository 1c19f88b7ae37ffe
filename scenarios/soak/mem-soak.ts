/*
 * The overcommit soak: guests created and destroyed over and over on a host they overcommit, with
 * populate on demand, page sharing, paging and the memory policy all at work, and the host checked
 * against its baseline: frames, shared frames and their mappings, paged-out pages and the paging
 * files (none left, no bytes), grants, maptrack handles, event-channel ports, domains, vCPU
 * threads, XenStore nodes, the process's descriptors and threads. Issue 14's "no frames or
 * paging-file space leak after 100 create/destroy cycles under overcommit".
 *
 * Xen: what destroy must give back when a domain dies with pages shared (mem_sharing's reference
 * counts: relinquish_shared_pages), paged out (xenpaging's file, p2m_mem_paging_drop_page) and
 * still populate-on-demand (p2m_pod_empty_cache), and a toolstack policy that forgets the domain.
 *
 * Two guests at a time (each cycle creates both, waits for both to verify their data, destroys
 * both), 48 MiB each on a host with 64 MiB for guests (1.5×), each running mem-image with a common
 * 8 MiB image (so their pages are shared with each other) and 8 MiB of its own. The policy's marks
 * are set high (soft 38 MiB free, hard 34 MiB), so guests are ballooned, and paged out and in. A "cycle" in the count is one guest's life.
 *
 * Used by test/mem-soak.test.ts (100 guests, ~55 s on a loaded 2-core machine) and `npm run soak:mem` (1,000).
 */
import { mkdirSync, mkdtempSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { XlClient } from '../../cli/client.ts';
import { startHost, type RunningHost } from '../../cli/host.ts';
import { xsOpen } from '../../dom0/lib/libxenstore.ts';
import type { CreateResult, HostInfo } from '../../dom0/toolstack/protocol.ts';
import { mmCounters } from '../../hypervisor/mm/counters.ts';
import { pagingDir } from '../../hypervisor/mm/paging.ts';
import type { XenbusClient } from '../../shared/kernel/xenbus/client.ts';
import { compare, snapshot, type Snapshot } from './soak.ts';

const HOST_MIB = 128;
const GUEST_MIB = 48;
const PAIR = ['ms-a', 'ms-b'];

export interface MemSoakOptions {
  /** Guests to create and destroy (two at a time). */
  guests: number;
  checkEvery: number;
  /** RSS bound over the warm baseline (MiB); not checked if absent (./soak.ts SoakOptions). */
  rssToleranceMiB?: number;
  progress?: (line: string) => void;
}

interface MemSnapshot extends Snapshot {
  shared: number;
  sharingMappings: number;
  pagedOut: number;
  pagingFiles: number;
  pagingBytes: number;
}

async function memSnapshot(rh: RunningHost, xs: XenbusClient): Promise<MemSnapshot> {
  const c = mmCounters(rh.host.hv);
  const dir = pagingDir(rh.host.hv);
  const files = dir === null ? [] : readdirSync(dir);
  return {
    ...await snapshot(rh, xs),
    shared: c.sharing_shared_frames, sharingMappings: c.sharing_mappings, pagedOut: c.paged_out,
    pagingFiles: files.length, pagingBytes: files.reduce((n, f) => n + statSync(join(dir!, f)).blocks * 512, 0),
  };
}

function memCompare(now: MemSnapshot, empty: MemSnapshot, warm: MemSnapshot, tol: number | undefined): string[] {
  const problems = compare(now, empty, warm, tol);
  for (const k of ['shared', 'sharingMappings', 'pagedOut', 'pagingFiles', 'pagingBytes'] as const) {
    if (now[k] !== 0) problems.push(`${k} ${now[k]} (expected 0 with no guest)`);
  }
  return problems;
}

function vmDir(root: string, name: string, seed: number): string {
  const d = join(root, name);
  mkdirSync(d);
  writeFileSync(join(d, 'vm.cfg'), `name = "${name}"\nmemory = ${GUEST_MIB}\nworkload = "mem-image"\n` +
    `workload_args = [ "image=8", "ws=8", "zero=10", "hot=2", "rounds=2", "period=0", "seed=${seed}" ]\n`);
  return d;
}

/** Both guests: create, wait for each one's verdict, destroy. Throws on a guest that lost data or crashed. */
async function cycle(rh: RunningHost, xl: XlClient, dirs: string[], atPeak: () => void): Promise<void> {
  const cons: XlClient[] = [];
  const ids: number[] = [];
  try {
    const verdicts: Promise<void>[] = [];
    for (const dir of dirs) {
      const created = await xl.call<CreateResult>({ verb: 'create', path: dir });
      ids.push(created.domid);
      const con = await XlClient.open(rh.runDir);
      cons.push(con);
      let seen = '';
      verdicts.push(new Promise<void>((resolve, reject) => {
        void con.console(String(created.domid), (b) => {
          seen += Buffer.from(b).toString();
          if (seen.includes('mem-image: OK')) resolve();
          else if (/read back wrong|PoD: out of memory|crash/.test(seen)) reject(new Error(`${created.name} failed:\n${seen}`));
        }, (why) => reject(new Error(`${created.name}'s console closed before its verdict (${why}):\n${seen}`)));
      }));
    }
    await Promise.all(verdicts);
    atPeak();
  } finally {
    for (const c of cons) c.close();
    for (const d of ids) await xl.call({ verb: 'destroy', domain: String(d) }).catch(() => undefined);
  }
}

export class MemSoak {
  guestsDone = 0;
  private constructor(
    private readonly root: string, private readonly rh: RunningHost, private readonly xl: XlClient,
    private readonly xs: XenbusClient, private readonly dirs: string[],
    readonly empty: MemSnapshot, readonly warm: MemSnapshot, private readonly opts: MemSoakOptions,
  ) {}

  static async start(opts: MemSoakOptions): Promise<MemSoak> {
    const root = mkdtempSync(join(tmpdir(), 'rv-mem-soak-'));
    const rh = await startHost({ runDir: join(root, 'run'), memoryMiB: HOST_MIB, log: () => {} });
    const xl = await XlClient.open(rh.runDir);
    const xs = await xsOpen(rh.xenstoredSocket);
    const dirs = PAIR.map((n, i) => vmDir(root, n, i + 1));
    const empty = await memSnapshot(rh, xs);
    // Everything on: the scanner fast, the policy with its soft mark above what two guests leave
    // free and the pager's (hard) mark just under it, so every cycle shares, balloons and pages.
    rh.host.mm.setSharing({ run: false, pages_to_scan: 4000, sleep_millisecs: 5 });
    await xl.call({ verb: 'mem-policy', run: true, soft_pages: 38 * 256, hard_pages: 34 * 256, headroom_pages: 256, interval_ms: 50 });
    await cycle(rh, xl, dirs, () => undefined); // warm-up: not counted
    return new MemSoak(root, rh, xl, xs, dirs, empty, await memSnapshot(rh, xs), opts);
  }

  /** `n` more guests (two per cycle); returns the problems found at the checks. */
  async run(n: number): Promise<{ problems: string[]; last: MemSnapshot | null; work: Record<string, number> }> {
    const problems: string[] = [];
    let last: MemSnapshot | null = null;
    const hv = this.rh.host.hv;
    const c0 = mmCounters(hv);
    let peakSharing = 0;
    for (let k = 0; k < n; k += PAIR.length) {
      await cycle(this.rh, this.xl, this.dirs, () => { peakSharing = Math.max(peakSharing, mmCounters(hv).sharing_mappings); });
      this.guestsDone += PAIR.length;
      if (this.guestsDone % this.opts.checkEvery === 0 || k + PAIR.length >= n) {
        // The policy notices the guests are gone at its next look; the host's own state is checked now.
        last = await memSnapshot(this.rh, this.xs);
        const found = memCompare(last, this.empty, this.warm, this.opts.rssToleranceMiB);
        problems.push(...found.map((p) => `after ${this.guestsDone} guests: ${p}`));
        this.opts.progress?.(`${String(this.guestsDone).padStart(5)} guests: frames ${last.usage.framesUsed}, shared ${last.shared}, paged out ${last.pagedOut}, ` +
          `paging files ${last.pagingFiles} (${last.pagingBytes} bytes), grants ${last.usage.grantsActive}, maptrack ${last.usage.grantMappings}, ` +
          `ports ${last.usage.portsBound}, vCPU threads ${last.usage.threadsAlive}, process threads ${last.threads}, fds ${last.fds}, ` +
          `RSS ${last.rssMiB.toFixed(0)} MiB (heap ${last.heapMiB.toFixed(0)}, external ${last.externalMiB.toFixed(0)}, ArrayBuffers ${last.arrayBuffersMiB.toFixed(0)})` +
          `${found.length ? `  LEAK: ${found.join('; ')}` : '  ok'}`);
      }
    }
    // What the mechanisms did meanwhile, so a run that never shared or paged cannot pass for one that did.
    const c1 = mmCounters(hv);
    const work = Object.fromEntries(['page_outs', 'page_ins', 'pod_fills', 'sharing_pages_scanned', 'cow_breaks'].map((k) => [k, c1[k] - c0[k]]));
    return { problems, last, work: { ...work, peak_sharing_mappings: peakSharing } };
  }

  /** What the memory policy did (the last 32 of its steps, and how many in all). */
  async policy(): Promise<{ events: string[]; eventCount: number }> {
    const info = await this.xl.call<HostInfo>({ verb: 'info' });
    return { events: info.mem_policy?.events ?? [], eventCount: info.mem_policy?.eventCount ?? 0 };
  }

  async close(): Promise<void> {
    this.xs.close();
    this.xl.close();
    await this.rh.close();
    rmSync(this.root, { recursive: true, force: true });
  }
}
