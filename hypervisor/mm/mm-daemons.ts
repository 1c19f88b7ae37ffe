/*
 * The control thread's memory daemons: the sharing scanner (KSM's ksmd) and the pager (xenpaging),
 * each a loop the toolstack turns on and off, and the pause-and-wait both need.
 *
 * Xen: the knobs are KSM's (/sys/kernel/mm/ksm: run, pages_to_scan, sleep_millisecs) and
 * xenpaging's (a target); ringvisor's toolstack sets them through a domctl (mem_sharing,
 * mem_paging), as `xl` would through libxl. The policy the issue asks for, in order: sharing
 * first (it costs the guests nothing but the scan), then balloon targets set by the toolstack,
 * and paging only when free frames fall below the pager's low-water mark.
 */
import { PAGES_TO_SCAN, SLEEP_MILLISECS, ShareScanner, type ScanTarget } from './share-scan.ts';
import { Pager } from './pager.ts';
import { setPagingDir } from './paging.ts';
import { MH } from './mm-state.ts';
import type { HypervisorState } from '../state.ts';

/** What the daemons need from the host's control thread. */
export interface MmHost {
  /** Running guest domains (not Dom0) and their RAM sizes in pages. */
  domUs(): { domid: number; pages: number }[];
  pause(domid: number): void;
  unpause(domid: number): void;
  isQuiescent(domid: number): boolean;
}

export interface SharingSettings { run: boolean; pages_to_scan: number; sleep_millisecs: number }
export interface PagingSettings { run: boolean; low_water_pages: number }

export class MmDaemons {
  readonly scanner: ShareScanner;
  pager: Pager | null = null;
  sharing: SharingSettings = { run: false, pages_to_scan: PAGES_TO_SCAN, sleep_millisecs: SLEEP_MILLISECS };
  paging: PagingSettings = { run: false, low_water_pages: 0 };
  private sharingLoop: Promise<void> | null = null;
  private pagingLoop: Promise<void> | null = null;
  private closed = false;
  private readonly target: ScanTarget;

  constructor(private readonly hv: HypervisorState, private readonly host: MmHost, pagingDir: string) {
    setPagingDir(hv, pagingDir);
    this.target = { domains: () => host.domUs(), quiesce: (ds) => this.quiesce(ds) };
    this.scanner = new ShareScanner(hv, this.target);
  }

  /** Pause `domids` and resolve once none of their vCPUs is running; the result unpauses them. */
  async quiesce(domids: number[]): Promise<() => void> {
    const paused: number[] = [];
    for (const d of domids) {
      try { this.host.pause(d); paused.push(d); } catch { /* gone meanwhile */ }
    }
    // vCPUs stop at their next preemption point; a blocked one already has. The control thread
    // has no event for "quiescent", so it looks once per event-loop turn of 1 ms until they have.
    while (!paused.every((d) => this.host.isQuiescent(d))) await new Promise((r) => setTimeout(r, 1));
    return () => { for (const d of paused) { try { this.host.unpause(d); } catch { /* gone */ } } };
  }

  /** KSM's run = 1 / 0, with its knobs. */
  setSharing(s: Partial<SharingSettings>): SharingSettings {
    this.sharing = { ...this.sharing, ...s };
    if (this.sharing.run && this.sharingLoop === null) {
      this.sharingLoop = (async () => {
        while (this.sharing.run && !this.closed) {
          await this.scanner.pass(this.sharing.pages_to_scan);
          // KSM's pacing (/sys/kernel/mm/ksm/sleep_millisecs): ksmd sleeps between passes so the
          // scanner takes a bounded share of the CPU. It is the daemon's policy knob, set by the
          // user (mem-sharing), not a delay in any measured path: the mem suite times pass() itself.
          await new Promise((r) => setTimeout(r, this.sharing.sleep_millisecs));
        }
        this.sharingLoop = null;
      })();
    }
    return this.sharing;
  }

  /** Start or stop the pager, which keeps free frames above `low_water_pages`. */
  setPaging(p: Partial<PagingSettings>): PagingSettings {
    this.paging = { ...this.paging, ...p };
    if (this.paging.run) {
      this.pager = new Pager(this.hv, this.target, this.paging.low_water_pages);
      Atomics.store(this.hv.mm, MH.PAGER_ON, 1);
      this.pagingLoop ??= (async () => {
        let seen = Atomics.load(this.hv.mm, MH.PRESSURE);
        while (this.paging.run && !this.closed && this.pager !== null) {
          const woke = Atomics.load(this.hv.mm, MH.PRESSURE) !== seen;
          seen = Atomics.load(this.hv.mm, MH.PRESSURE);
          const n = await this.pager.balance(woke);
          // Nothing to do: sleep until a vCPU is short of a frame, or a little while (kswapd's wait).
          if (n === 0) await Atomics.waitAsync(this.hv.mm, MH.PRESSURE, seen, 20).value;
        }
        this.pagingLoop = null;
      })();
    } else {
      Atomics.store(this.hv.mm, MH.PAGER_ON, 0);
      // Wake the loop so it ends now (a waitAsync's timeout does not keep the process alive).
      Atomics.add(this.hv.mm, MH.PRESSURE, 1);
      Atomics.notify(this.hv.mm, MH.PRESSURE);
      Atomics.store(this.hv.mm, MH.LAST_FREED, 0);
      Atomics.add(this.hv.mm, MH.FREED_SEQ, 1);
      Atomics.notify(this.hv.mm, MH.FREED_SEQ); // nobody waits for a pager that has stopped
    }
    return this.paging;
  }

  /** A domain is gone. */
  forget(domid: number): void {
    this.scanner.forget(domid);
    this.pager?.forget(domid);
  }

  async close(): Promise<void> {
    this.closed = true;
    this.setPaging({ run: false });
    this.sharing.run = false;
    await Promise.all([this.sharingLoop, this.pagingLoop]);
  }
}
