/*
 * Live migration: xl migrate's sender, and the handshake it shares with xl migrate-receive's
 * receiver (./migrate-receive.ts) over one TCP connection.
 *
 * Xen: tools/xl/xl_migrate.c (the handshake lines below), libxl_domain_suspend with LIBXL_SUSPEND_LIVE
 * and tools/libs/guest/xg_sr_save.c (send_domain_memory_live: enable log-dirty, send every page, then
 * rounds of the pages dirtied since, as the precopy policy decides, then suspend and send the rest
 * with LOGDIRTY_FINAL, then the vCPU context and END), xenguest.h's default policy (stop when fewer
 * than 50 pages are dirty or after 5 rounds). Every round, the first included, also skips, batch
 * by batch, the pages already written again since the log was last cleaned (a PEEK at the log
 * before each batch: xc_domain_save.c's to_skip, before the v2 rewrite, in every iteration but the
 * last; Clark et al. do the same): they are dirty again, and the next round or the stop-and-copy
 * sends them once, in their newer state. A guest rewriting its working set faster than a round
 * goes then costs its rounds little. The handshake:
 *
 *   receiver  "xl migration receiver ready, send binary domain data.\n"
 *   sender    the stream (stream-write.ts): headers, PAGE_DATA rounds, ..., END
 *   receiver  builds the domain paused when the config arrives and writes each batch into it as
 *             it comes (stream-receive.ts), from the moment its memory exists; once its vCPU
 *             threads are up, ringvisor's line (below) "ringvisor: domain built, reading pages\n";
 *             at END sets the vCPU context, "domain received, ready to unpause\n"
 *   sender    "domain is yours, you are cleared to unpause\n"
 *   receiver  unpauses; "my copy unpause results are as follows" and one byte, 0 = running
 *   sender    destroys its copy
 *
 * The downtime (from the suspend request to the report) is what the stop-and-copy cannot avoid:
 * the guest quiescing, the FINAL CLEAN, the last dirty pages, the vCPU context, the unpause. The
 * domain build, its vCPU threads and their kernel image are ready before it, and out of the total
 * as far as they can be: the receiver writes pages into the new domain as soon as its memory
 * exists (libxl makes the domain, libxc's restore fills it as the stream comes), its vCPU threads
 * come up meanwhile (the host keeps a spare one, kernel loaded: hypervisor/vcpu-spares.ts), and
 * the sender suspends only once the receiver says they are up (MIGRATE_RECEIVER_BUILT), so the
 * unpause never waits for a thread. MigrateResult.blackout times each phase on the sender's clock,
 * with this thread's CPU time and its wait for a CPU in it.
 * The total (MigrateResult.totalMs) runs from the sender's first byte to the target's report.
 * Page data is raw bytes in PAGE_DATA records read straight from the guest's frames into a reused
 * buffer, written to the socket without waiting for each write (msgpackr frames none of it).
 * With `live: false` there is no precopy: suspend, then every page once (libxc's non-live save).
 *
 * If the receiver fails before the guest is suspended, the sender turns log-dirty off and the guest
 * never noticed. After the suspend the guest's disks are quiet (its frontends stay connected, nothing
 * in flight: domu/kernel.ts) and its image locks handed over (the target opens the same images:
 * shared storage); a failure then, up to the "go" line, resumes
 * the guest here (./sender-recovery.ts: xl's failed_resume); after it, xl's rules too. The renames
 * are xl's: the target's copy is NAME--incoming until it is given the go, the source's
 * NAME--migratedaway by the target's "ready" (xl renames it then; here the rename runs while the
 * target takes the last pages, so that it is not in the downtime). The guest's vifs are re-attached to the target's
 * bridges of the same names and its kernel announces itself there (domu/nics.ts).
 */
import type { Socket } from 'node:net';
import {
  XEN_DOMCTL_SHADOW_LOGDIRTY_FINAL, XEN_DOMCTL_SHADOW_OP_CLEAN, XEN_DOMCTL_SHADOW_OP_ENABLE_LOGDIRTY, XEN_DOMCTL_SHADOW_OP_OFF,
  XEN_DOMCTL_SHADOW_OP_PEEK,
} from '../../../shared/public/domctl.ts';
import { errnoName } from '../../../shared/public/xen.ts';
import { readFileSync } from 'node:fs';
import { MAX_BATCH_SIZE } from '../../../shared/public/migration-stream.ts';
import { savedTargetKiB } from './balloon-state.ts';
import { SaveError, range, sendPages, type SaveRestoreHost, type SkipDirty } from './save-restore.ts';
import { HotPages } from './precopy-hot.ts';
import { migratedAwayName, recoverAtSender } from './sender-recovery.ts';
import { openSuspendRequest, waitSuspended, type SuspendRequest } from './suspend-request.ts';
import { SocketInput } from './socket-input.ts';
import { StreamWriter, type SavedConfig, type Sink } from './stream-write.ts';
import { threadTime, threadTimeSince, type ThreadTime } from './thread-time.ts';
import type { BlackoutPhase, MigrateResult } from './migrate-result.ts';

export const MIGRATE_RECEIVER_BANNER = 'xl migration receiver ready, send binary domain data.\n';
export const MIGRATE_RECEIVER_READY = 'domain received, ready to unpause\n';
/**
 * ringvisor's line, not xl's: the receiver's domain is built, its vCPU threads up with their kernel
 * loaded (it has been taking pages since its memory existed). The sender suspends the guest only
 * once it has seen it. A guest whose precopy is small (mostly unpopulated, sent by type only) would
 * otherwise fit in the socket's buffers, and the sender would suspend it while the target's vCPU
 * threads are still starting: that start would fall in the downtime. In Xen the build is a few
 * milliseconds and nobody waits for it.
 */
export const MIGRATE_RECEIVER_BUILT = 'ringvisor: domain built, reading pages\n';
export const MIGRATE_PERMISSION = 'domain is yours, you are cleared to unpause\n';
export const MIGRATE_REPORT = 'my copy unpause results are as follows';

/** libxc's precopy policy (xenguest.h): stop-and-copy below this many dirty pages, or after this many rounds. */
export interface PrecopyPolicy {
  dirtyThreshold: number;
  maxIterations: number;
  /**
   * false: no precopy: suspend first, then every page once (xc_domain_save without XCFLAGS_LIVE,
   * send_domain_memory_nonlive): the whole copy is downtime. The migrate bench's "one copy".
   */
  live?: boolean;
  /**
   * false: every round sends every page the log returned (libxc's xg_sr_save.c). Otherwise
   * (the default) a page dirtied in two rounds running is carried, not sent, until it cools or
   * the stop-and-copy sends it (./precopy-hot.ts: the writable working set).
   */
  carryHot?: boolean;
  /**
   * false: a live round does not give Dom0's backends a turn between its batches (./save-restore.ts
   * sendPages); the default gives one, as Dom0's kernel preempts xl's saver for netback.
   */
  giveWay?: boolean;
}
export const DEFAULT_PRECOPY: PrecopyPolicy = { dirtyThreshold: 50, maxIterations: 5 };

/*
 * The stop-and-copy's PAGE_DATA records hold at most this many pages: 256, a quarter of the
 * precopy's, so the target writes the first while the next are on their way. Records of 1,024
 * cost the sender's thread no more CPU (4,100 pages: 8-12 against 11-21 ms in one back-to-back
 * comparison, medians 10.1 against 10.4 in another, loaded), but in the quiet migrate bench (wss 16,
 * six moves each, back to back) the sender waited on the socket 0-81 ms in the blackout with
 * records of 1,024 and 0-14 ms with 256: the sender's CPU is not what the blackout waits for.
 */
export const FINAL_BATCH = 256;

export interface MigrateHost extends SaveRestoreHost {
  /** Let go of the domain's image locks: the target takes them (shared storage). */
  releaseLocks(domid: number): void;
  /** libxl_domain_rename: `from` must be the domain's name now. */
  rename(domid: number, from: string, to: string): Promise<void>;
  /** rename's checks now, its write when the returned function is called (the target: checked before the go, renamed at it). */
  renameChecked(domid: number, from: string, to: string): Promise<() => Promise<void>>;
  /** libxl_domain_resume: a suspended domain runs again here, its locks taken back. */
  resume(domid: number): Promise<void>;
}

export type { MigrateResult } from './migrate-result.ts';

export function send(sock: Socket, chunk: Uint8Array | string): Promise<void> {
  return new Promise((resolve, reject) => {
    if (sock.destroyed) { reject(new Error('the connection closed')); return; }
    sock.write(chunk, (e) => (e ? reject(e) : resolve()));
  });
}

/*
 * The stream's sink on a socket: write and go on (the kernel's socket buffer and node's queue
 * pipeline the next batch's reads from the guest with this one's sending); wait only when node's
 * queue is full ('drain'). A failed write fails the next call.
 */
function socketSink(sock: Socket): Sink {
  let failed: Error | null = null;
  return (chunk, written) => {
    if (failed ?? sock.destroyed) return Promise.reject(failed ?? new Error('the connection closed'));
    const more = sock.write(chunk, (e) => { if (e) failed = e; else written(); });
    if (more) return;
    return new Promise<void>((resolve, reject) => {
      const done = (e?: Error) => { sock.off('drain', done); sock.off('close', closed); if (e) reject(e); else resolve(); };
      const closed = () => done(failed ?? new Error('the connection closed'));
      sock.once('drain', done);
      sock.once('close', closed);
    });
  };
}

/** xl migrate DOMAIN HOST: the sender. `sock` is connected to a receiver. */
export async function migrateSend(h: MigrateHost, domid: number, sock: Socket, policy: PrecopyPolicy = DEFAULT_PRECOPY): Promise<MigrateResult> {
  const t0 = performance.now();
  const prepared = h.preparedOf(domid);
  if (prepared === null) throw new SaveError(`domain ${domid} was not created by this toolstack: no config to send with it`);
  const vm = prepared.vm;
  const config: SavedConfig = {
    name: vm.name, file: vm.file, text: readFileSync(vm.file, 'utf8'), memoryKiB: vm.memoryMiB * 1024, vcpus: vm.vcpus,
    targetKiB: await savedTargetKiB(h.xs, domid), // as save does (./balloon-state.ts): the target restores it
  };
  const input = new SocketInput(sock);
  const hc = h.k.hypercall;
  await input.expect(MIGRATE_RECEIVER_BANNER);
  const info = await hc.domctl_getdomaininfo(domid);
  if (typeof info === 'number') throw new SaveError(`domain ${domid}: ${errnoName(info)}`);
  const nr = info.physmap_pages ?? info.max_pages; // the whole physmap: a ballooned-down guest's RAM reaches above max_pages
  const w = new StreamWriter(socketSink(sock));
  const bitmap = new Int32Array(Math.ceil(nr / 32));
  const dirtyList = (): number[] => {
    const out: number[] = [];
    for (let word = 0; word < bitmap.length; word++) {
      const v = bitmap[word];
      if (v === 0) continue;
      for (let b = 0; b < 32; b++) if ((v & (1 << b)) !== 0) out.push(word * 32 + b);
    }
    return out;
  };
  /*
   * A CLEAN with the domain paused, so no vCPU is inside a request across it (shared/public/hypercall.ts).
   * The unpause is not waited for: the next round's reads need only the bitmap, and domctls reach
   * the control thread in the order asked, so the next pause comes after it. Its result is checked
   * before the next CLEAN and before the suspend (unpaused()).
   */
  let unpausing: Promise<number> = Promise.resolve(0);
  const unpaused = async (): Promise<void> => {
    const rc = await unpausing;
    if (rc < 0) throw new SaveError(`unpausing ${vm.name} after a CLEAN: ${errnoName(rc)}`);
  };
  const clean = async (mode: number, pause: boolean): Promise<number[]> => {
    if (pause) {
      await unpaused();
      const rc = await hc.domctl_pausedomain(domid);
      if (rc < 0) throw new SaveError(`pausing ${vm.name} for a CLEAN: ${errnoName(rc)}`);
    }
    const r = hc.domctl_shadow_op(domid, XEN_DOMCTL_SHADOW_OP_CLEAN, mode, bitmap, nr);
    if (pause) {
      unpausing = hc.domctl_unpausedomain(domid);
      unpausing.catch(() => undefined); // met in unpaused()
    }
    if (typeof r === 'number') throw new SaveError(`log-dirty CLEAN: ${errnoName(r)}`);
    return dirtyList();
  };

  const pagesPerRound: number[] = [];
  const skippedPerRound: number[] = [];
  const carriedPerRound: number[] = [];
  // Every round skips what is already dirty again (SkipDirty: legacy libxc's to_skip, which peeks in
  // every iteration but the last, the first included: a page written since ENABLE goes in round 2).
  const peeked = new Int32Array(bitmap.length);
  const skip: SkipDirty = {
    skipped: 0,
    giveWay: policy.giveWay !== false,
    peek() {
      const r = hc.domctl_shadow_op(domid, XEN_DOMCTL_SHADOW_OP_PEEK, 0, peeked, nr);
      if (typeof r === 'number') throw new SaveError(`log-dirty PEEK: ${errnoName(r)}`);
      return peeked;
    },
  };
  const roundMs: number[] = [];
  const cleanMs: number[] = [];
  const readMs: number[] = [];
  const sinkWaitMs: number[] = [];
  let [read0, wait0] = [0, 0];
  const spent = (): void => {
    readMs.push(w.copyMs - read0);
    sinkWaitMs.push(w.sinkWaitMs - wait0);
    [read0, wait0] = [w.copyMs, w.sinkWaitMs];
  };
  const blackout = new Phases();
  let suspended = false;
  const step = { renamedAway: false, goSent: false };
  let tDown = 0;
  let [setupMs, builtWaitMs] = [0, 0];
  let [threadRounds, threadCopy] = [null, null] as (ThreadTime | null)[];
  let finalPages = 0;
  let copyMs = 0;
  let sr: SuspendRequest | null = null;
  let renaming: Promise<void> | null = null;
  try {
    // Found before the precopy, as libxl__domain_suspend_init does: asked for at the suspend (./suspend-request.ts).
    sr = await openSuspendRequest(h, domid, vm.name);
    const live = policy.live ?? true;
    if (live) {
      const rc = hc.domctl_shadow_op(domid, XEN_DOMCTL_SHADOW_OP_ENABLE_LOGDIRTY, 0, null, 0);
      if (typeof rc === 'number' && rc < 0) throw new SaveError(`log-dirty ENABLE: ${errnoName(rc)}`);
    }
    await w.headers(config);
    await w.libxcBegin();
    // Round 1: every page (but those written since ENABLE). Then the pages dirtied during the round before, while the policy says go on.
    let toSend = range(0, nr);
    const hot = new HotPages(nr);
    setupMs = performance.now() - t0;
    const tt0 = threadTime();
    for (; live;) {
      const r0 = performance.now();
      skip.skipped = 0;
      [read0, wait0] = [w.copyMs, w.sinkWaitMs];
      pagesPerRound.push(await sendPages(h.k, domid, w, toSend, MAX_BATCH_SIZE, skip));
      spent();
      skippedPerRound.push(skip.skipped);
      const c0 = performance.now();
      const dirty = await clean(0, true);
      cleanMs.push(performance.now() - c0);
      roundMs.push(performance.now() - r0);
      // The policy counts the log's dirty pages; what the next round sends is ours (./precopy-hot.ts).
      const stop = dirty.length < policy.dirtyThreshold || pagesPerRound.length >= policy.maxIterations;
      toSend = stop ? hot.final(dirty) : policy.carryHot === false ? dirty : hot.next(dirty, roundMs.at(-1)!);
      carriedPerRound.push(stop ? 0 : hot.carriedCount);
      h.log(`xl migrate: round ${pagesPerRound.length}: ${pagesPerRound.at(-1)} pages sent, ${dirty.length} dirtied meanwhile` +
        (skip.skipped > 0 ? ` (${skip.skipped} more were written again before their turn: left for the next round)` : '') +
        (hot.carriedCount > 0 && !stop ? `; ${hot.carriedCount} of them dirtied in the round before too: carried until they cool or the stop-and-copy` : ''));
      if (stop) break;
    }
    // Not before the target can take the last pages at once (MIGRATE_RECEIVER_BUILT): its build
    // is no part of the downtime.
    threadRounds = live ? threadTimeSince(tt0) : null;
    const b0 = performance.now();
    await input.expect(MIGRATE_RECEIVER_BUILT);
    builtWaitMs = performance.now() - b0;
    await unpaused(); // the last round's CLEAN let the guest go again
    // Stop-and-copy: suspend, then what the last round left plus what was written since (FINAL).
    tDown = performance.now();
    blackout.start(tDown);
    await sr.request();
    await waitSuspended(sr, h.waitStopped(domid), vm.name);
    suspended = true;
    sr.close();
    // Why it stopped: the toolstack's death watch asked the hypervisor already (no second getdomaininfo in the downtime).
    const reason = h.stoppedReason(domid) ?? await hc.domctl_getdomaininfo(domid).then((i) => (typeof i === 'number' ? null : i.shutdown_reason));
    if (reason !== 'suspend') throw new SaveError(`${vm.name} did not suspend (${reason ?? 'it is gone'})`);
    blackout.mark(`suspend (asked through ${sr.via}): the guest quiesces and makes SCHEDOP_shutdown(suspend); xl sees it stopped`);
    let lastList = toSend; // not live: every page
    if (live) {
      // The guest is stopped for good: no pause around this CLEAN.
      const last = new Set(toSend);
      for (const g of await clean(XEN_DOMCTL_SHADOW_LOGDIRTY_FINAL, false)) last.add(g);
      lastList = [...last].sort((a, b) => a - b);
      blackout.mark('log-dirty CLEAN (FINAL)');
    }
    const copy0 = performance.now();
    [read0, wait0] = [w.copyMs, w.sinkWaitMs];
    const tc0 = threadTime();
    finalPages = await sendPages(h.k, domid, w, lastList, live ? FINAL_BATCH : MAX_BATCH_SIZE);
    spent();
    blackout.mark(`${live ? 'last PAGE_DATA records written' : 'every page written (not live)'} (${finalPages} pages: ` +
      `${readMs.at(-1)!.toFixed(1)} ms reading them from the guest, ${sinkWaitMs.at(-1)!.toFixed(1)} ms waiting for the socket)`);
    const resume_gfn = hc.domctl_getvcpucontext(domid);
    if (resume_gfn < 0) throw new SaveError(`${vm.name} suspended without a resume record`);
    await w.vcpuContext(0, resume_gfn);
    h.releaseLocks(domid);
    await w.end();
    blackout.mark('vCPU context, END');
    // xl renames its copy away once the target is ready, before it gives the go. Here the rename
    // (a domain list and a xenstore write) runs while the target takes the last pages: it must be
    // done before the go, and nothing needs it sooner; the target's "ready" does not wait for it.
    renaming = h.rename(domid, vm.name, migratedAwayName(vm.name)).then(() => { step.renamedAway = true; });
    renaming.catch(() => undefined); // a failure is met below, after "ready" or in the recovery
    await input.expect(MIGRATE_RECEIVER_READY);
    copyMs = performance.now() - copy0;
    threadCopy = threadTimeSince(tc0);
    blackout.mark('target: last pages in, vCPU context set ("ready to unpause")');
    await renaming;
    step.goSent = true; // from here on, xl's point of no return
    await send(sock, MIGRATE_PERMISSION);
    await input.expect(MIGRATE_REPORT);
    const result = await input.byte();
    if (result !== 0) {
      // The target could not start its copy: it destroys it, then gives us permission to resume ours.
      await input.expect(MIGRATE_PERMISSION);
      step.goSent = false;
      throw new SaveError(`the receiver could not start its copy (result ${result})`);
    }
    blackout.mark('target: renamed and unpaused ("my copy unpause results")');
  } catch (e) {
    await (renaming as Promise<void> | null)?.catch(() => undefined); // settled: step.renamedAway says what became of the name
    hc.domctl_shadow_op(domid, XEN_DOMCTL_SHADOW_OP_OFF, 0, null, 0);
    (sr as SuspendRequest | null)?.close();
    const why = (e as Error).message;
    if (!suspended) {
      h.log(`xl migrate: ${vm.name}: migration failed before the suspend (${why}); the guest keeps running here`);
      throw new SaveError(`migration of ${vm.name} failed: ${why}; the guest keeps running on this host`);
    }
    if (!step.goSent) await (sr as SuspendRequest | null)?.forget(); // the guest resumes here with a new channel
    throw await recoverAtSender(h, domid, vm.name, step, why);
  }
  // Both end where the guest runs on the target (Clark et al.'s activation); destroying the
  // source's copy follows, outside them.
  const tRunning = performance.now();
  const downtimeMs = tRunning - tDown;
  hc.domctl_shadow_op(domid, XEN_DOMCTL_SHADOW_OP_OFF, 0, null, 0);
  sock.end();
  await h.destroy(domid);
  const pagesSent = pagesPerRound.reduce((s, n) => s + n, 0) + finalPages;
  const r: MigrateResult = {
    name: vm.name, rounds: pagesPerRound.length, pagesPerRound, roundMs, cleanMs, readMs, sinkWaitMs, setupMs, builtWaitMs, threadRounds, threadCopy, skippedPerRound, carriedPerRound, finalPages, pagesSent, bytesSent: w.bytesWritten,
    totalMs: tRunning - t0, downtimeMs, blackout: blackout.list, suspendedAt: performance.timeOrigin + tDown, lastCopyMs: copyMs,
  };
  h.log(`xl migrate: ${vm.name} moved: ${r.rounds} rounds (${pagesPerRound.join(', ')} pages), ${finalPages} in the stop-and-copy, ` +
    `downtime ${downtimeMs.toFixed(1)} ms, total ${r.totalMs.toFixed(0)} ms`);
  return r;
}

/** Consecutive phases of the blackout, timed on this thread's clock, with its CPU time in each. */
class Phases {
  readonly list: BlackoutPhase[] = [];
  private last = 0;
  private lastThread: ThreadTime | null = null;

  start(t: number): void {
    this.last = t;
    this.lastThread = threadTime();
  }

  mark(phase: string): void {
    const t = performance.now();
    const now = threadTime();
    const spent = threadTimeSince(this.lastThread, now);
    this.list.push(spent ? { phase, ms: t - this.last, cpuMs: spent.cpuMs, runqMs: spent.runqMs } : { phase, ms: t - this.last });
    this.last = t;
    this.lastThread = now;
  }
}
