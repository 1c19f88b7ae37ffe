/*
 * Live migration: xl migrate's sender and xl migrate-receive's receiver, over one TCP connection.
 *
 * Xen: tools/xl/xl_migrate.c (the handshake lines below), libxl_domain_suspend with LIBXL_SUSPEND_LIVE
 * and tools/libs/guest/xg_sr_save.c (send_domain_memory_live: enable log-dirty, send every page, then
 * rounds of the pages dirtied since, as the precopy policy decides, then suspend and send the rest
 * with LOGDIRTY_FINAL, then the vCPU context and END), xenguest.h's default policy (stop when fewer
 * than 50 pages are dirty or after 5 rounds). The handshake:
 *
 *   receiver  "xl migration receiver ready, send binary domain data.\n"
 *   sender    the stream (stream-write.ts): headers, PAGE_DATA rounds, ..., END
 *   receiver  builds the domain paused and fills it (save-restore.ts), "domain received, ready to unpause\n"
 *   sender    "domain is yours, you are cleared to unpause\n"
 *   receiver  unpauses; "my copy unpause results are as follows" and one byte, 0 = running
 *   sender    destroys its copy
 *
 * If the receiver fails before the guest is suspended, the sender turns log-dirty off and the guest
 * never noticed. After the suspend the guest's frontends are closed and its image locks handed over
 * (the target opens the same images: shared storage); a failure then, up to the "go" line, resumes
 * the guest here (./sender-recovery.ts: xl's failed_resume); after it, xl's rules too. The renames
 * are xl's: the target's copy is NAME--incoming until it is given the go, the source's
 * NAME--migratedaway from the target's "ready" on. The guest's vifs are re-attached to the target's
 * bridges of the same names and its kernel announces itself there (domu/nics.ts).
 */
import type { Socket } from 'node:net';
import {
  XEN_DOMCTL_SHADOW_LOGDIRTY_FINAL, XEN_DOMCTL_SHADOW_OP_CLEAN, XEN_DOMCTL_SHADOW_OP_ENABLE_LOGDIRTY, XEN_DOMCTL_SHADOW_OP_OFF,
} from '../../../shared/public/domctl.ts';
import { XS_CONTROL_SHUTDOWN, domainPath } from '../../../shared/public/io/xenbus.ts';
import { errnoName } from '../../../shared/public/xen.ts';
import { readFileSync } from 'node:fs';
import { SaveError, range, restoreImage, sendPages, type SaveRestoreHost } from './save-restore.ts';
import { StreamFramer } from './stream-framer.ts';
import { readSaveImage } from './stream-read.ts';
import { StreamWriter, type SavedConfig } from './stream-write.ts';
import { incomingName, migratedAwayName, recoverAtSender } from './sender-recovery.ts';

export const MIGRATE_RECEIVER_BANNER = 'xl migration receiver ready, send binary domain data.\n';
export const MIGRATE_RECEIVER_READY = 'domain received, ready to unpause\n';
export const MIGRATE_PERMISSION = 'domain is yours, you are cleared to unpause\n';
export const MIGRATE_REPORT = 'my copy unpause results are as follows';

/** libxc's precopy policy (xenguest.h): stop-and-copy below this many dirty pages, or after this many rounds. */
export interface PrecopyPolicy { dirtyThreshold: number; maxIterations: number }
export const DEFAULT_PRECOPY: PrecopyPolicy = { dirtyThreshold: 50, maxIterations: 5 };

export interface MigrateHost extends SaveRestoreHost {
  /** Let go of the domain's image locks: the target takes them (shared storage). */
  releaseLocks(domid: number): void;
  /** libxl_domain_rename: `from` must be the domain's name now. */
  rename(domid: number, from: string, to: string): Promise<void>;
  /** libxl_domain_resume: a suspended domain runs again here, its locks taken back. */
  resume(domid: number): Promise<void>;
}

export interface MigrateResult {
  name: string;
  /** Precopy rounds, the first (every page) included; the stop-and-copy is not one of them. */
  rounds: number;
  pagesPerRound: number[];
  finalPages: number;
  pagesSent: number;
  bytesSent: number;
  totalMs: number;
  /** From the suspend request to the target's "unpaused" report. */
  downtimeMs: number;
}

/** Bytes from a socket, handed to a line reader or the framer. */
class SocketInput {
  private pending = Buffer.alloc(0);
  private wake: (() => void) | null = null;
  private ended: Error | null = null;

  constructor(sock: Socket) {
    sock.on('data', (d: Buffer) => { this.pending = Buffer.concat([this.pending, d]); this.kick(); });
    sock.on('close', () => { this.ended ??= new Error('the connection closed'); this.kick(); });
    sock.on('error', (e) => { this.ended = e; this.kick(); });
  }

  private kick(): void {
    const w = this.wake;
    this.wake = null;
    w?.();
  }

  private async more(): Promise<void> {
    if (this.ended) throw this.ended;
    await new Promise<void>((r) => { this.wake = r; });
  }

  /** Exactly `text`, or an error naming what came instead. */
  async expect(text: string): Promise<void> {
    while (this.pending.length < text.length) {
      if (this.ended) throw new Error(`expected "${text.trim()}", the connection ended (${this.ended.message})`);
      await this.more();
    }
    const got = this.pending.subarray(0, text.length).toString('latin1');
    if (got !== text) throw new Error(`expected "${text.trim()}", got "${got.trim()}"`);
    this.pending = this.pending.subarray(text.length);
  }

  async byte(): Promise<number> {
    while (this.pending.length < 1) await this.more();
    const b = this.pending[0];
    this.pending = this.pending.subarray(1);
    return b;
  }

  /** Everything until the framer has a whole stream. */
  async stream(f: StreamFramer): Promise<Uint8Array> {
    for (;;) {
      if (this.pending.length > 0) {
        const chunk = this.pending;
        this.pending = Buffer.alloc(0);
        f.push(chunk);
      }
      if (f.complete) return f.complete;
      await this.more();
    }
  }
}

function send(sock: Socket, chunk: Uint8Array | string): Promise<void> {
  return new Promise((resolve, reject) => {
    if (sock.destroyed) { reject(new Error('the connection closed')); return; }
    sock.write(chunk, (e) => (e ? reject(e) : resolve()));
  });
}

/** xl migrate DOMAIN HOST: the sender. `sock` is connected to a receiver. */
export async function migrateSend(h: MigrateHost, domid: number, sock: Socket, policy: PrecopyPolicy = DEFAULT_PRECOPY): Promise<MigrateResult> {
  const t0 = performance.now();
  const prepared = h.preparedOf(domid);
  if (prepared === null) throw new SaveError(`domain ${domid} was not created by this toolstack: no config to send with it`);
  const vm = prepared.vm;
  const config: SavedConfig = { name: vm.name, file: vm.file, text: readFileSync(vm.file, 'utf8'), memoryKiB: vm.memoryMiB * 1024, vcpus: vm.vcpus };
  const input = new SocketInput(sock);
  const hc = h.k.hypercall;
  await input.expect(MIGRATE_RECEIVER_BANNER);
  const info = await hc.domctl_getdomaininfo(domid);
  if (typeof info === 'number') throw new SaveError(`domain ${domid}: ${errnoName(info)}`);
  const nr = info.physmap_pages ?? info.max_pages; // the whole physmap: a ballooned-down guest's RAM reaches above max_pages
  const w = new StreamWriter((c) => send(sock, c));
  const bitmap = new Int32Array(Math.ceil(nr / 32));
  const dirtyList = (): number[] => {
    const out: number[] = [];
    for (let g = 0; g < nr; g++) if ((bitmap[g >>> 5] & (1 << (g & 31))) !== 0) out.push(g);
    return out;
  };
  /* A CLEAN with the domain paused, so no vCPU is inside a request across it (shared/public/hypercall.ts). */
  const clean = async (mode: number): Promise<number[]> => {
    await hc.domctl_pausedomain(domid);
    const r = hc.domctl_shadow_op(domid, XEN_DOMCTL_SHADOW_OP_CLEAN, mode, bitmap, nr);
    await hc.domctl_unpausedomain(domid);
    if (typeof r === 'number') throw new SaveError(`log-dirty CLEAN: ${errnoName(r)}`);
    return dirtyList();
  };

  const pagesPerRound: number[] = [];
  let suspended = false;
  const step = { renamedAway: false, goSent: false };
  let tDown = 0;
  let finalPages = 0;
  try {
    const rc = hc.domctl_shadow_op(domid, XEN_DOMCTL_SHADOW_OP_ENABLE_LOGDIRTY, 0, null, 0);
    if (typeof rc === 'number' && rc < 0) throw new SaveError(`log-dirty ENABLE: ${errnoName(rc)}`);
    await w.headers(config);
    await w.libxcBegin();
    // Round 1: every page. Then the pages dirtied during the round before, while the policy says go on.
    let toSend = range(0, nr);
    for (;;) {
      pagesPerRound.push(await sendPages(h.k, domid, w, toSend));
      toSend = await clean(0);
      h.log(`xl migrate: round ${pagesPerRound.length}: ${pagesPerRound.at(-1)} pages sent, ${toSend.length} dirtied meanwhile`);
      if (toSend.length < policy.dirtyThreshold || pagesPerRound.length >= policy.maxIterations) break;
    }
    // Stop-and-copy: suspend, then what the last round left plus what was written since (FINAL).
    tDown = performance.now();
    await h.xs.write(`${domainPath(domid)}/${XS_CONTROL_SHUTDOWN}`, 'suspend');
    await h.waitStopped(domid);
    suspended = true;
    const after = await hc.domctl_getdomaininfo(domid);
    if (typeof after === 'number' || after.shutdown_reason !== 'suspend') throw new SaveError(`${vm.name} did not suspend`);
    const last = new Set(toSend);
    for (const g of await clean(XEN_DOMCTL_SHADOW_LOGDIRTY_FINAL)) last.add(g);
    finalPages = await sendPages(h.k, domid, w, [...last].sort((a, b) => a - b));
    const resume_gfn = hc.domctl_getvcpucontext(domid);
    if (resume_gfn < 0) throw new SaveError(`${vm.name} suspended without a resume record`);
    await w.vcpuContext(0, resume_gfn);
    h.releaseLocks(domid);
    await w.end();
    await input.expect(MIGRATE_RECEIVER_READY);
    // xl: about to give the target permission to rename and start its copy, rename ours away first.
    await h.rename(domid, vm.name, migratedAwayName(vm.name));
    step.renamedAway = true;
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
  } catch (e) {
    hc.domctl_shadow_op(domid, XEN_DOMCTL_SHADOW_OP_OFF, 0, null, 0);
    const why = (e as Error).message;
    if (!suspended) {
      h.log(`xl migrate: ${vm.name}: migration failed before the suspend (${why}); the guest keeps running here`);
      throw new SaveError(`migration of ${vm.name} failed: ${why}; the guest keeps running on this host`);
    }
    throw await recoverAtSender(h, domid, vm.name, step, why);
  }
  const downtimeMs = performance.now() - tDown;
  hc.domctl_shadow_op(domid, XEN_DOMCTL_SHADOW_OP_OFF, 0, null, 0);
  sock.end();
  await h.destroy(domid);
  const pagesSent = pagesPerRound.reduce((s, n) => s + n, 0) + finalPages;
  const r: MigrateResult = {
    name: vm.name, rounds: pagesPerRound.length, pagesPerRound, finalPages, pagesSent, bytesSent: w.bytesWritten,
    totalMs: performance.now() - t0, downtimeMs,
  };
  h.log(`xl migrate: ${vm.name} moved: ${r.rounds} rounds (${pagesPerRound.join(', ')} pages), ${finalPages} in the stop-and-copy, ` +
    `downtime ${downtimeMs.toFixed(1)} ms, total ${r.totalMs.toFixed(0)} ms`);
  return r;
}

/** xl migrate-receive: one incoming guest on `sock`. Resolves with its new domain id once it runs. */
export async function migrateReceive(h: MigrateHost, sock: Socket, paused = false): Promise<{ domid: number; name: string; pages: number }> {
  const input = new SocketInput(sock);
  await send(sock, MIGRATE_RECEIVER_BANNER);
  const bytes = await input.stream(new StreamFramer());
  const img = readSaveImage(bytes, 'migration stream');
  const r = await restoreImage(h, img, { paused: true });
  const incoming = incomingName(r.name);
  try {
    await h.rename(r.domid, r.name, incoming); // xl creates it so; here it is renamed as soon as it is built
    await send(sock, MIGRATE_RECEIVER_READY);
    await input.expect(MIGRATE_PERMISSION);
  } catch (e) {
    // The sender is gone before it cleared us: its copy is the guest; ours goes (xl does the same).
    await h.destroy(r.domid);
    throw e;
  }
  // Given the go: our copy takes the guest's name and runs. If that fails, xl reports it, destroys
  // its copy and gives the sender permission to resume the guest at its end.
  let failed: string | null = null;
  try {
    await h.rename(r.domid, incoming, r.name);
    if (!paused) {
      const rc = await h.k.hypercall.domctl_unpausedomain(r.domid);
      if (rc < 0) throw new Error(`unpause: ${errnoName(rc)}`);
    }
  } catch (e) {
    failed = (e as Error).message;
  }
  await send(sock, MIGRATE_REPORT);
  await send(sock, new Uint8Array([failed === null ? 0 : 1]));
  if (failed !== null) {
    await h.destroy(r.domid);
    await send(sock, MIGRATE_PERMISSION);
    sock.end();
    throw new SaveError(`${r.name} could not be started here (${failed}); the sender may resume it`);
  }
  sock.end();
  h.log(`xl migrate-receive: ${r.name} is domain ${r.domid} here`);
  return r;
}
