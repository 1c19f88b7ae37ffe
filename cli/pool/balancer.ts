/*
 * The pool's automatic policy: when a member runs short of memory, live-migrate one of its guests
 * to the member with the most free memory, and log every decision with its reason.
 *
 * The lecture: "in multiple host cluster environments, virtual machines can be automatically live
 * migrated to other hosts when certain resources become scarce". XenServer does this with Workload
 * Balancing (an appliance that samples the pool's hosts and, in automatic mode, applies its own
 * placement recommendations with `xe vm-migrate`, each with a reason in its log); VMware's DRS the
 * same. ringvisor's balancer is that appliance, reduced to one resource and one rule:
 *
 *   short of memory  a member's hypervisor is paging: its pager evicted guest pages to disk since
 *                    the last look (xl info's page_outs grew; hypervisor/mm/pager.ts pages out only
 *                    when the host's free frames fall below its low-water mark), the last resort
 *                    before a guest's populate-on-demand fault finds no frame at all
 *   the target       the up member, other than the short one, with the most free memory
 *   the guest        the largest running guest of the short member that fits in the target's free
 *                    memory with a margin (the most relief with one move); a guest in the middle
 *                    of a move (NAME--incoming, NAME--migratedaway) is never picked
 *   the move         migrate-receive on the target, then migrate on the source (xl's rules: a move
 *                    that fails leaves the guest running at the source, dom0/toolstack/migration/)
 *
 * One move at a time across the pool, as WLB and xapi serialise migrations; after a move the
 * source's page-out count is looked at afresh. The members are looked at every `periodMs` (a
 * sampling period, as WLB's, not a delay on any measured path).
 */
import type { MigrateResult } from '../../dom0/toolstack/migration/migrate.ts';
import type { ListedDomain } from '../../dom0/toolstack/protocol.ts';
import { XlClient } from '../client.ts';
import { readPool } from './pool-file.ts';
import { viewPool, type MemberView } from './pool-view.ts';

/** Room a target keeps after taking a guest (MiB): its own pager should not start at once. */
export const TARGET_MARGIN_MIB = 8;

export interface Decision {
  at: string;
  host: string;
  reason: string;
  action: 'move' | 'none';
  vm?: string;
  to?: string;
  /** How the move ended: "moved", or why it failed (the guest then runs on at the source). */
  outcome?: string;
}

export interface BalancerOptions {
  periodMs?: number;
  log: (line: string) => void;
}

export class PoolBalancer {
  readonly decisions: Decision[] = [];
  private readonly pageOuts = new Map<string, number>();
  private running = false;
  private loop: Promise<void> | null = null;
  private wake: (() => void) | null = null;
  private lastSaid = '';

  constructor(private readonly poolFile: string, private readonly opts: BalancerOptions) {}

  start(): void {
    if (this.running) return;
    this.running = true;
    this.loop = (async () => {
      while (this.running) {
        try {
          await this.tick();
        } catch (e) {
          this.say(`pool: cannot look at the pool: ${(e as Error).message}`);
        }
        if (!this.running) break;
        await new Promise<void>((r) => { this.wake = r; setTimeout(r, this.opts.periodMs ?? 200); });
      }
    })();
  }

  async stop(): Promise<void> {
    this.running = false;
    this.wake?.();
    await this.loop;
  }

  /** One look at the pool and, if a member is short, one decision. */
  async tick(): Promise<Decision | null> {
    const pool = readPool(this.poolFile);
    const views = await viewPool(pool);
    const up = views.filter((v) => v.info !== null);
    let short: { v: MemberView; grew: number } | null = null;
    for (const v of up) {
      const outs = v.info!.mm?.page_outs ?? 0;
      const before = this.pageOuts.get(v.member.name);
      this.pageOuts.set(v.member.name, outs);
      const grew = before === undefined ? 0 : outs - before; // the first look is the baseline
      if (grew > 0 && (short === null || grew > short.grew)) short = { v, grew };
    }
    if (short === null) return null;
    const src = short.v;
    const why = `${src.member.name} is short of memory: its hypervisor paged out ${short.grew} page(s) since the last look ` +
      `(${src.info!.mm?.paged_out ?? 0} out now, ${src.info!.free_memory} MiB free)`;
    const targets = up.filter((v) => v !== src).sort((a, b) => b.info!.free_memory - a.info!.free_memory);
    const dst = targets[0];
    if (dst === undefined) return this.decide({ host: src.member.name, reason: `${why}; no other member is up to take a guest`, action: 'none' });
    const room = dst.info!.free_memory - TARGET_MARGIN_MIB;
    const movable = src.domains.filter((d) => d.domid !== 0 && !d.shutdown && !d.dying && !d.paused && !d.name.includes('--'));
    const vm = movable.filter((d) => d.memMiB <= room).sort((a, b) => b.memMiB - a.memMiB)[0];
    if (vm === undefined) {
      return this.decide({
        host: src.member.name, action: 'none',
        reason: `${why}; ${dst.member.name} has the most free memory (${dst.info!.free_memory} MiB) but none of ` +
          `${movable.map((d) => `${d.name} (${d.memMiB} MiB)`).join(', ') || 'no guest'} fits there with ${TARGET_MARGIN_MIB} MiB to spare`,
      });
    }
    const d = this.decide({
      host: src.member.name, action: 'move', vm: vm.name, to: dst.member.name,
      reason: `${why}; moving ${vm.name} (${vm.memMiB} MiB), its largest guest that fits, to ${dst.member.name}, the member with the most ` +
        `free memory (${dst.info!.free_memory} MiB)`,
    });
    d.outcome = await this.move(vm, src, dst);
    this.say(`pool: ${vm.name}: ${d.outcome}`);
    // Look at the source afresh: its page-outs from before the move are not a reason for another.
    const after = (await viewPool({ ...pool, members: [src.member] }))[0];
    if (after.info) this.pageOuts.set(src.member.name, after.info.mm?.page_outs ?? 0);
    return d;
  }

  private async move(vm: ListedDomain, src: MemberView, dst: MemberView): Promise<string> {
    let a: XlClient | null = null;
    let b: XlClient | null = null;
    try {
      b = await XlClient.open(dst.member.runDir);
      a = await XlClient.open(src.member.runDir);
      const { port } = await b.call<{ port: number }>({ verb: 'migrate-receive', port: 0 });
      const r = await a.call<MigrateResult>({ verb: 'migrate', domain: vm.name, host: '127.0.0.1', port });
      return `moved to ${dst.member.name}: ${r.rounds} precopy round(s), ${r.pagesSent} pages, downtime ${r.downtimeMs.toFixed(0)} ms`;
    } catch (e) {
      return `the move failed (${(e as Error).message}); it stays on ${src.member.name}`;
    } finally {
      a?.close();
      b?.close();
    }
  }

  private decide(d: Omit<Decision, 'at'>): Decision {
    const full: Decision = { at: new Date().toISOString(), ...d };
    this.decisions.push(full);
    // The same "nothing to do" over and over is said once.
    if (d.action === 'move' || d.reason !== this.lastSaid) this.say(`pool: ${d.reason}`);
    this.lastSaid = d.reason;
    return full;
  }

  private say(line: string): void {
    this.opts.log(line);
  }
}
