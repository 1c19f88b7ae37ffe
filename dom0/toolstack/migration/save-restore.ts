/*
 * xl save and xl restore: suspend a guest and write it out as a stream; build a new domain from a
 * stream and resume the guest in it.
 *
 * Xen: tools/xl/xl_saverestore.c (save_domain, restore_domain), libxl_dom_suspend.c (ask the guest
 * through control/shutdown = "suspend", wait for it to shut down with reason suspend),
 * tools/libs/guest/xg_sr_save.c (the pages, a batch at a time, then the vCPU context, END) and
 * xg_sr_restore.c (populate the new domain's memory from PAGE_DATA, set the vCPU context).
 *
 * What crosses: only the stream (stream-write.ts / stream-read.ts). The restorer builds a new
 * domain from the config the stream names, with its disks and vifs, exactly as `create` does, and
 * before unpausing it fills its RAM from the stream, except three pages the builder has just made
 * for this domain: start_info (new store and console ports in it, as libxc's restore rewrites
 * start_info's store and console fields), and the xenstore and console rings (the new host's
 * xenstored and xenconsoled start them afresh). Its vCPU 0 starts in resume mode with the saved
 * context (domu/resume.ts), and the guest reconnects its devices to this host's backends.
 *
 * Not modelled: SHARED_INFO (event state is not carried: the resumed kernel binds its ports anew,
 * as Linux's xen_irq_resume does; its clock is the new host's), checkpointed streams (Remus, COLO).
 */
import { readFileSync } from 'node:fs';
import type { Kernel } from '../../../shared/kernel/kernel.ts';
import type { XenbusClient } from '../../../shared/kernel/xenbus/client.ts';
import { MAX_BATCH_SIZE } from '../../../shared/public/migration-stream.ts';
import { PAGE_SIZE, errnoName } from '../../../shared/public/xen.ts';
import type { PreparedVm } from '../prepare.ts';
import { ForeignPages } from './foreign-pages.ts';
import { openSuspendRequest, waitSuspended } from './suspend-request.ts';
import { batchTypes, finalHoles, restoreBalloonState, savedTargetKiB } from './balloon-state.ts';
import { readSaveImage, type PageBatch, type PageBatchHead, type SavedImage } from './stream-read.ts';
import type { PageBytes } from './stream-receive.ts';
import { StreamWriter, type SavedConfig, type Sink } from './stream-write.ts';

/** What save and restore need from the toolstack (libxl.ts). */
export interface SaveRestoreHost {
  k: Kernel;
  xs: XenbusClient;
  log(line: string): void;
  /** The VM a running domain was created from, or null (not ours). */
  preparedOf(domid: number): PreparedVm | null;
  waitStopped(domid: number): Promise<void>;
  /** Why a domain that waitStopped saw stop stopped, if the toolstack knows (its death watch asked), else null. */
  stoppedReason(domid: number): string | null;
  destroy(domid: number): Promise<void>;
  /**
   * libxl's create from a config path, paused, its devices added; `fill` runs before the unpause
   * (it writes the memory and sets the vCPU context). `lateLocks`: take the disks' image locks
   * after `fill`, when a migration's source has let go of them.
   */
  bootRestored(configPath: string, fill: (domid: number, nr_pages: number) => Promise<void>, paused: boolean, opts?: { lateLocks?: boolean }): Promise<number>;
}

export class SaveError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'SaveError';
  }
}

export interface SaveResult { domid: number; name: string; pages: number; bytes: number }

/**
 * Suspend `domid` and write its stream to `sink`. The domain is left shut down (reason suspend)
 * for the caller to destroy (xl save) or resume elsewhere (migrate).
 */
export async function suspendAndSave(h: SaveRestoreHost, domid: number, sink: Sink): Promise<SaveResult> {
  const prepared = h.preparedOf(domid);
  if (prepared === null) throw new SaveError(`domain ${domid} was not created by this toolstack: no config to save with it`);
  const vm = prepared.vm;
  const config: SavedConfig = {
    name: vm.name, file: vm.file, text: readFileSync(vm.file, 'utf8'), memoryKiB: vm.memoryMiB * 1024, vcpus: vm.vcpus,
    targetKiB: await savedTargetKiB(h.xs, domid), // ./balloon-state.ts
  };

  // libxl__domain_suspend_init, then domain_suspend_callback_common: ask the guest (its suspend
  // event channel, or control/shutdown: ./suspend-request.ts), wait for SHUTDOWN_suspend.
  const sr = await openSuspendRequest(h, domid, vm.name);
  try {
    await sr.request();
    await waitSuspended(sr, h.waitStopped(domid), vm.name).catch((e: unknown) => { throw new SaveError((e as Error).message); });
  } finally {
    sr.close();
  }
  const info = await h.k.hypercall.domctl_getdomaininfo(domid);
  if (typeof info === 'number') throw new SaveError(`domain ${domid}: ${errnoName(info)}`);
  if (info.shutdown_reason !== 'suspend') throw new SaveError(`${vm.name} stopped with reason ${info.shutdown_reason} instead of suspending`);
  const resume_gfn = h.k.hypercall.domctl_getvcpucontext(domid);
  if (resume_gfn < 0) throw new SaveError(`${vm.name} suspended without a resume record: ${errnoName(resume_gfn)}`);

  const w = new StreamWriter(sink);
  await w.headers(config);
  await w.libxcBegin();
  const pages = await sendPages(h.k, domid, w, range(0, info.physmap_pages ?? info.max_pages)); // the whole physmap, ballooned or not
  await w.vcpuContext(0, resume_gfn);
  await w.end();
  h.log(`xl: saved ${vm.name} (domain ${domid}): ${pages} pages, ${w.bytesWritten} bytes`);
  return { domid, name: vm.name, pages, bytes: w.bytesWritten };
}

/**
 * A precopy round's peek at the log (legacy libxc's to_skip, xc_domain_save.c: before each batch,
 * XEN_DOMCTL_SHADOW_OP_PEEK): `peek()` fills a bitmap with the pages written since the last
 * CLEAN, and those are not sent in this round: they are dirty again, the next CLEAN returns them,
 * and the next round (or the stop-and-copy) sends them once, in their newer state. `skipped` counts
 * them.
 */
export interface SkipDirty {
  peek(): Int32Array;
  skipped: number;
  /** Give Dom0's backends a turn after each batch (the live rounds; PrecopyPolicy.giveWay). */
  giveWay?: boolean;
}

/**
 * write_batch, over a list of gfns: PAGE_DATA records of at most `batchSize` pages (MAX_BATCH_SIZE at most). Each
 * batch's types first (getpageframeinfo3): only RAM the guest has is read, straight into the
 * record; a ballooned hole or an untouched PoD page is named without contents (./balloon-state.ts).
 * With `skip`, pages written again before their batch are left for later (SkipDirty). Returns the
 * number of pages sent.
 */
export async function sendPages(k: Kernel, domid: number, w: StreamWriter, gfns: readonly number[], batchSize = MAX_BATCH_SIZE, skip?: SkipDirty): Promise<number> {
  if (!(Number.isInteger(batchSize) && batchSize >= 1 && batchSize <= MAX_BATCH_SIZE)) throw new RangeError(`PAGE_DATA batches of ${batchSize} pages`);
  const fp = new ForeignPages(k, domid);
  const types = new Int32Array(MAX_BATCH_SIZE);
  let sent = 0;
  try {
    for (let i = 0; i < gfns.length;) {
      let batch: number[];
      if (skip) {
        const dirty = skip.peek(); // once per batch, as xc_domain_save peeked
        batch = [];
        for (; i < gfns.length && batch.length < batchSize; i++) {
          const g = gfns[i];
          if ((dirty[g >>> 5] & (1 << (g & 31))) !== 0) skip.skipped++;
          else batch.push(g);
        }
        if (batch.length === 0) continue;
      } else {
        batch = gfns.slice(i, i + batchSize);
        i += batchSize;
      }
      const ram = batchTypes(k, domid, batch, types);
      await w.pageData(batch, (out) => { if (ram.length > 0) fp.read(ram, out); }, types);
      sent += batch.length;
      // A live round gives way after each batch. xc_domain_save runs in xl's process, and Dom0's
      // kernel preempts it for netback and blkback (softirqs, kthreads); here the toolstack and
      // the backends share Dom0's one thread, and a round of 256 MiB left the running guest's
      // network unserved for 180-690 ms (the migrate bench's peer, wss 0, loaded). With a turn of
      // the event loop per batch (4 MiB) its silences in round 1 were 20-365 ms.
      if (skip?.giveWay) await new Promise<void>((r) => setImmediate(r));
    }
  } finally {
    fp.close();
  }
  return sent;
}

export function range(from: number, to: number): number[] {
  return Array.from({ length: Math.max(0, to - from) }, (_, i) => from + i);
}

/** xl restore FILE: check the whole stream, then build, fill, resume. Returns the new domain id. */
export async function restoreFromStream(h: SaveRestoreHost, bytes: Uint8Array, what: string, opts: { paused?: boolean } = {}): Promise<{ domid: number; name: string; pages: number }> {
  const img = readSaveImage(bytes, what);
  return restoreImage(h, img, opts);
}

export async function restoreImage(h: SaveRestoreHost, img: SavedImage, opts: { paused?: boolean } = {}): Promise<{ domid: number; name: string; pages: number }> {
  const c = img.config;
  checkSavedConfig(c);
  const vcpu0 = img.vcpus.find((v) => v.vcpu === 0);
  if (!vcpu0) throw new SaveError('the stream has no context for vCPU 0');
  let balloon = null as { holes: number; targetKiB: number | null } | null;
  const domid = await h.bootRestored(c.file, async (d, nr_pages) => {
    checkPages(c, nr_pages);
    writePages(h.k, d, nr_pages, img);
    balloon = await restoreBalloonState(h.k, h.xs, d, { holes: finalHoles(img), targetKiB: c.targetKiB }, builderPages(nr_pages));
    setVcpuContext(h.k, d, vcpu0.resume_gfn);
  }, opts.paused ?? false);
  h.log(`xl: restored ${c.name} as domain ${domid} from ${img.pages} pages` +
    (balloon && (balloon.holes > 0 || balloon.targetKiB !== null) ? ` (${balloon.holes} ballooned-out pages left holes, target ${balloon.targetKiB} KiB)` : ''));
  return { domid, name: c.name, pages: img.pages };
}

/** The VM's config must be where it was, as it was (shared storage; see the header). */
export function checkSavedConfig(c: SavedConfig): void {
  let text: string;
  try {
    text = readFileSync(c.file, 'utf8');
  } catch (e) {
    throw new SaveError(`the saved domain's config ${c.file} cannot be read (${(e as Error).message}); a restore needs the VM's files where they were`);
  }
  if (text !== c.text) throw new SaveError(`${c.file} has changed since ${c.name} was saved (expected the config it was saved with)`);
}

export function checkPages(c: SavedConfig, nr_pages: number): void {
  if (nr_pages !== Math.ceil(c.memoryKiB / 4)) throw new SaveError(`the new domain has ${nr_pages} pages, the saved one ${Math.ceil(c.memoryKiB / 4)}`);
}

/** XEN_DOMCTL_setvcpucontext: vCPU 0 resumes from the record at `resume_gfn`. */
export function setVcpuContext(k: Kernel, domid: number, resume_gfn: number): void {
  const rc = k.hypercall.domctl_setvcpucontext(domid, resume_gfn);
  if (rc < 0) throw new SaveError(`setting domain ${domid}'s vCPU context (resume record at gfn ${resume_gfn}): ${errnoName(rc)}`);
}

/** The builder's pages of a new domain: start_info, xenstore, console. */
export function builderPages(nr_pages: number): Set<number> {
  return new Set([nr_pages - 3, nr_pages - 2, nr_pages - 1]);
}

/** process_page_data: every saved page into the new domain, but the builder's own three (see the header). */
export function writePages(k: Kernel, domid: number, nr_pages: number, img: SavedImage): void {
  const fp = new ForeignPages(k, domid);
  try {
    for (const b of img.batches) writeBatch(fp, nr_pages, b);
  } finally {
    fp.close();
  }
}

/**
 * One PAGE_DATA record into the domain `fp` maps, its pages written as their bytes arrive (`data`:
 * stream-receive.ts), the builder's own three skipped as writeBatch skips them.
 */
export async function writeBatchStreamed(fp: ForeignPages, nr_pages: number, head: PageBatchHead, data: PageBytes): Promise<void> {
  const fresh = nr_pages - 3;
  const slot = new Int32Array(head.gfns.length);
  const keep: number[] = [];
  head.gfns.forEach((g, i) => {
    if (g >= nr_pages) throw new SaveError(`PAGE_DATA names gfn ${g}, beyond the domain's ${nr_pages} pages`);
    slot[i] = g < fresh ? keep.push(g) - 1 : -1;
  });
  await fp.writeWhile(keep, (put) => data((piece, at) => {
    // A piece may hold the end of one page and the start of the next.
    for (let p = 0; p < piece.length;) {
      const i = Math.floor((at + p) / PAGE_SIZE);
      const off = (at + p) % PAGE_SIZE;
      const k = Math.min(PAGE_SIZE - off, piece.length - p);
      if (slot[i] >= 0) put(slot[i], off, piece.subarray(p, p + k));
      p += k;
    }
  }));
}

/** One PAGE_DATA batch into the domain `fp` maps. */
export function writeBatch(fp: ForeignPages, nr_pages: number, b: PageBatch): void {
  const fresh = nr_pages - 3; // start_info, xenstore, console: the builder's, from this gfn up
  let clean = true;
  for (const g of b.gfns) {
    if (g >= nr_pages) throw new SaveError(`PAGE_DATA names gfn ${g}, beyond the domain's ${nr_pages} pages`);
    if (g >= fresh) clean = false;
  }
  if (clean) { fp.write(b.gfns, b.data); return; }
  const keep: number[] = [];
  const idx: number[] = [];
  b.gfns.forEach((g, i) => { if (g < fresh) { keep.push(g); idx.push(i); } });
  if (keep.length === 0) return;
  const data = new Uint8Array(keep.length * PAGE_SIZE);
  idx.forEach((i, j) => data.set(b.data.subarray(i * PAGE_SIZE, (i + 1) * PAGE_SIZE), j * PAGE_SIZE));
  fp.write(keep, data);
}
