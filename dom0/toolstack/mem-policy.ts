/*
 * The memory policy: what the toolstack does, step by step, when the host runs short of frames.
 * Sharing first, then balloon targets, and paging only as the last resort (issue 14, item 5).
 *
 * Xen leaves this to a Dom0 daemon (XAPI's squeezed sets balloon targets between each guest's
 * dynamic-min and dynamic-max; the old xenballoond did the same from the guests' own reports);
 * ESX has it in the vmkernel (Waldspurger, OSDI 2002, §6.3: free-memory states high, soft, hard
 * and low; in the soft state it balloons, in the hard state it pages). ringvisor's follows ESX's
 * states with Xen's mechanisms, from Dom0 through the same hypercalls and XenStore writes `xl`
 * uses (physinfo, getdomaininfolist, the mem_sharing and mem_paging domctls, libxl's
 * set_memory_target):
 *
 *   overcommitted  the guests' targets add up to more than the frames the host has for them:
 *                  the sharing scanner is turned on (it costs the guests only the scan, and ESX
 *                  and KSM run it all the time); the pager is armed at the hard mark.
 *   soft           free frames below the soft mark: balloon targets. Each guest's target drops by
 *                  the pages it has never touched (its PoD entries, `pod_pages`), less a headroom
 *                  (at least a quarter of its static max: what its balloon keeps for its kernel),
 *                  the guest with the most untouched memory first, so a guest keeps every page it
 *                  has used and the promise shrinks to what is backed.
 *   hard           free frames below the hard mark: the pager (armed since the host became
 *                  overcommitted) evicts to the paging files. The policy does not call it: guests
 *                  fill memory far faster than any period a daemon polls at, so it must be armed
 *                  before it is needed, as ESX's swap is. Its page-outs are logged as they happen.
 *   high           free frames back above twice the soft mark: targets go back to what they were.
 *
 * What it does NOT do, and why: ESX's idle memory tax (ρ = S / (P·(f + k(1−f))), τ = 75%) needs f,
 * each guest's active fraction, which ESX estimates by invalidating the mappings of 100 random
 * pages a period and counting the ones touched again. ringvisor's P2M has no accessed bit and no
 * spare entry bit to invalidate a present page with, so the one idleness this policy can measure
 * exactly is the strongest kind: pages never touched at all (PoD's entry count). That is the
 * "something simpler" the issue allows; a guest whose idle pages are touched-but-unused keeps them,
 * and the pager, not the balloon, is what reclaims from it.
 *
 * Every step is logged (the host's log, `(XEN)`-less: it is Dom0's toolstack speaking), kept in
 * `events` for `ringvisor info` (its mem_policy lines) and the overcommit scenario's narration.
 */
import { domainPath } from '../../shared/public/io/xenbus.ts';
import { XS_MEMORY_STATIC_MAX, XS_MEMORY_TARGET } from '../../shared/public/memory.ts';
import type { DomainInfo, Hypercalls, PhysInfo } from '../../shared/public/hypercall.ts';
import type { XenbusClient } from '../../shared/kernel/xenbus/client.ts';
import { memSet } from './mem.ts';
import type { MemPolicySettings, MemPolicyStatus, MemState } from './protocol.ts';

export type { MemPolicySettings, MemPolicyStatus, MemState };

const MAX_EVENTS = 32;

/** Defaults from the host's size: ESX's soft and hard states are 4% and 2% free; this host is small and its guests fill fast, so 8% and 4%. */
export function defaultPolicy(totalPages: number): MemPolicySettings {
  return { run: false, interval_ms: 200, soft_pages: Math.ceil(totalPages * 0.08), hard_pages: Math.ceil(totalPages * 0.04), headroom_pages: 2048 };
}

export class MemPolicy {
  settings: MemPolicySettings | null = null;
  state: MemState = 'off';
  readonly events: string[] = [];
  private eventCount = 0;
  /** domid → the target it had before the policy lowered it (KiB). */
  private readonly original = new Map<number, number>();
  private readonly lowered = new Map<number, number>();
  private timer: ReturnType<typeof setTimeout> | null = null;
  private pageOuts = 0;
  private pagerNoted = 0;
  private ticking = false;

  constructor(private readonly hc: Hypercalls, private readonly xs: XenbusClient, private readonly log: (line: string) => void) {}

  private note(line: string): void {
    this.events.push(line);
    this.eventCount++;
    if (this.events.length > MAX_EVENTS) this.events.shift();
    this.log(`mem-policy: ${line}`);
  }

  async set(s: Partial<MemPolicySettings>): Promise<MemPolicyStatus> {
    const p = await this.physinfo();
    const next = { ...(this.settings ?? defaultPolicy(p.total_pages)), ...s };
    if (!(next.hard_pages < next.soft_pages)) throw new Error(`the hard mark (${next.hard_pages} pages) must be below the soft mark (${next.soft_pages})`);
    if (!(next.interval_ms >= 10)) throw new Error(`interval ${next.interval_ms} ms: at least 10`);
    const was = this.settings?.run ?? false;
    this.settings = next;
    if (next.run && !was) {
      this.state = 'high';
      this.pageOuts = p.mm?.page_outs ?? 0;
      this.note(`on: soft mark ${mib(next.soft_pages)}, hard mark ${mib(next.hard_pages)}, looking every ${next.interval_ms} ms`);
      this.schedule();
    } else if (!next.run && was) {
      if (this.timer) clearTimeout(this.timer);
      this.timer = null;
      await this.restore('the policy is off');
      this.state = 'off';
      this.note('off (the scanner and the pager stay as they are: mem-sharing / mem-paging turn them off)');
    }
    return this.status();
  }

  status(): MemPolicyStatus {
    return {
      settings: this.settings ?? { run: false, interval_ms: 0, soft_pages: 0, hard_pages: 0, headroom_pages: 0 },
      state: this.state, targets: Object.fromEntries(this.lowered), events: [...this.events], eventCount: this.eventCount,
    };
  }

  close(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    if (this.settings) this.settings.run = false;
  }

  private schedule(): void {
    if (!this.settings?.run) return;
    this.timer = setTimeout(() => {
      this.timer = null;
      void this.tick().catch((e: unknown) => this.note(`a look failed: ${(e as Error).message}`)).finally(() => this.schedule());
    }, this.settings.interval_ms);
  }

  private async physinfo(): Promise<PhysInfo> {
    const p = await this.hc.sysctl_physinfo();
    if (typeof p === 'number') throw new Error(`physinfo: errno ${p}`);
    return p;
  }

  /** One look at the host: decide the state, act on a change. Exported for tests through tick(). */
  async tick(): Promise<MemState> {
    const s = this.settings;
    if (!s?.run || this.ticking) return this.state;
    this.ticking = true;
    try {
      const p = await this.physinfo();
      const list = await this.hc.sysctl_getdomaininfolist();
      if (typeof list === 'number') throw new Error(`getdomaininfolist: errno ${list}`);
      // Paused counts: the scanner and the pager pause the guests they work on.
      const guests = list.filter((d) => !d.privileged && (d.state === 'running' || d.state === 'paused'));
      for (const d of new Set([...this.original.keys(), ...this.lowered.keys()])) {
        if (!guests.some((g) => g.domid === d)) { this.original.delete(d); this.lowered.delete(d); }
      }
      const free = p.free_pages;
      // Frames the guests can have: the host's, less what Dom0 (no PoD guest) holds. What they are
      // promised: their balloon targets (memory/target), as `xl list` adds up.
      const forGuests = p.total_pages - list.filter((d) => d.privileged).reduce((n, d) => n + d.tot_pages, 0);
      let promised = 0;
      for (const g of guests) promised += (await this.targetKiB(g.domid)) / 4;
      if (this.state === 'high' && promised > forGuests) {
        this.state = 'overcommitted';
        this.note(`overcommitted: ${mib(promised)} promised to ${guests.length} guests, ${mib(forGuests)} for them: sharing on; the pager armed at ${mib(s.hard_pages)} free`);
        await this.hc.domctl_mem_sharing({ run: true });
        await this.hc.domctl_mem_paging({ run: true, low_water_pages: s.hard_pages });
      }
      if (guests.length === 0 && this.state !== 'high') {
        this.state = 'high';
        this.note('high: no guests left');
      }
      if (free < s.soft_pages && guests.some((g) => !this.lowered.has(g.domid))) {
        // Entering the soft state, or a guest created while in it: lower the targets not yet lowered.
        const entering = this.state !== 'soft' && this.state !== 'hard';
        if (entering) this.state = 'soft';
        await this.balloon(guests.filter((g) => !this.lowered.has(g.domid)), free, entering);
      } else if (free > 2 * s.soft_pages && (this.state === 'soft' || this.state === 'hard')) {
        this.state = 'overcommitted';
        await this.restore(`${mib(free)} free again, above twice the soft mark`);
      }
      // The hard state is the pager's: it has written pages out since the last look. Said at most once a second.
      const outs = p.mm?.page_outs ?? 0;
      if (outs > this.pageOuts && this.state !== 'high') {
        if (this.state !== 'hard' || performance.now() - this.pagerNoted >= 1000) {
          this.note(`hard: ${mib(free)} free; the pager wrote ${outs - this.pageOuts} pages to paging files since ${this.state === 'hard' ? 'it was last reported' : 'the last look'} (${outs} in all)`);
          this.pageOuts = outs;
          this.pagerNoted = performance.now();
        }
        if (this.state === 'overcommitted' || this.state === 'soft') this.state = 'hard';
      }
      return this.state;
    } finally {
      this.ticking = false;
    }
  }

  /** The soft state's step: lower each guest's target by what it never touched, most untouched first. */
  private async balloon(guests: DomainInfo[], free: number, entering: boolean): Promise<void> {
    const s = this.settings!;
    const order = [...guests].sort((a, b) => (b.pod_pages ?? 0) - (a.pod_pages ?? 0));
    const parts: string[] = [];
    for (const d of order) {
      // A guest keeps untouched pages of its own: the headroom, and at least a quarter of its static
      // max and 1 MiB more, which a balloon never gives (Linux's keeps the kernel's reserve:
      // domu/balloon/balloon.ts; XenServer's dynamic-min is at least static-max / 4 for the same reason).
      const staticMax = await this.kib(d.domid, XS_MEMORY_STATIC_MAX);
      const keep = Math.max(s.headroom_pages, Math.ceil(staticMax / 16) + 256);
      const untouched = (d.pod_pages ?? 0) - keep;
      const now = await this.targetKiB(d.domid);
      const target = Math.max(1024, now - untouched * 4);
      if (untouched <= 0 || now <= 0 || target >= now) {
        this.lowered.set(d.domid, now); // looked at: it keeps its target
        continue;
      }
      try {
        await memSet(this.hc, this.xs, d.domid, `${target}k`);
      } catch (e) {
        parts.push(`${d.name}: refused (${(e as Error).message})`);
        continue;
      }
      if (!this.original.has(d.domid)) this.original.set(d.domid, now);
      this.lowered.set(d.domid, target);
      parts.push(`${d.name} ${mib(now / 4)} → ${mib(target / 4)}`);
    }
    if (parts.length === 0 && !entering) return;
    this.note(`soft: ${mib(free)} free, below ${mib(s.soft_pages)}: balloon targets lowered by the pages never touched` +
      ` (each keeps at least ${mib(s.headroom_pages)} and a quarter of its static max): ${parts.length > 0 ? parts.join(', ') : 'no guest has untouched memory to give'}`);
  }

  private targetKiB(domid: number): Promise<number> {
    return this.kib(domid, XS_MEMORY_TARGET);
  }

  private async kib(domid: number, key: string): Promise<number> {
    const v = Number(await this.xs.tryRead(`${domainPath(domid)}/${key}`));
    return Number.isSafeInteger(v) && v > 0 ? v : 0;
  }

  private async restore(why: string): Promise<void> {
    if (this.original.size === 0) return;
    const parts: string[] = [];
    for (const [d, kib] of this.original) {
      try {
        await memSet(this.hc, this.xs, d, `${kib}k`);
        parts.push(`d${d} → ${mib(kib / 4)}`);
      } catch { /* gone meanwhile */ }
    }
    this.original.clear();
    this.lowered.clear();
    this.note(`high: ${why}: targets back: ${parts.join(', ')}`);
  }
}

const mib = (pages: number) => `${((pages * 4096) / 1048576).toFixed(1)} MiB`;

/** One policy per Dom0 (the toolstack's connections share it). */
const policies = new WeakMap<object, MemPolicy>();
export function memPolicyFor(key: object, make: () => MemPolicy): MemPolicy {
  let p = policies.get(key);
  if (!p) policies.set(key, p = make());
  return p;
}
