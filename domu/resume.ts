/*
 * The resumable guest's saved context: one page of guest memory the kernel writes at suspend and
 * reads back when a restored domain boots it in resume mode.
 *
 * Xen/Linux: what the registers and the kernel's own memory hold across Linux's xen_suspend
 * (drivers/xen/manage.c do_suspend → xen_suspend → HYPERVISOR_suspend(start_info frame)): Xen saves
 * the vCPU's registers, the memory goes page by page, and the kernel carries on from the hypercall's
 * return on the new host. ringvisor's kernel keeps its objects on its thread's heap, which no page
 * copy reaches (README, "Save, restore and live migration"), so the rule is that what it needs in
 * order to continue is in guest memory, and this record says where:
 *
 *   word 0  RESUME_MAGIC             word 1  RESUME_VERSION
 *   word 2  pages reserved at the top of vCPU 0's RAM (PageAllocator.allocTop), this page first
 *   word 3  the workload that keeps its progress here (WORKLOAD_*)
 *   word 4  how many times this guest has been suspended
 *   word 5  pages in the balloon; word 6  the gfn + 1 of the first page listing them (./balloon/balloon.ts)
 *   word 7  entries in the neighbour table below (0 in a record written before it existed)
 *   word 8…60  the workload's own state (./workloads/mem-touch.ts owns words 8..14)
 *   word 61  the PV vifs the kernel had (bit n: device/vif/n; VIFS_KNOWN set when the word says so)
 *   word 62-63  when its workload was frozen for the last suspend (Float64, ms on the clock below)
 *
 * and from byte NEIGH_OFFSET to the end of the page, the network stack's neighbour table (IPv4
 * address, MAC: NEIGH_ENTRY bytes each). Linux's neighbour table (net/core/neighbour.c) is kernel
 * memory, so it crosses a migration with the rest and a resumed guest answers a peer at once; this
 * kernel's table was on the old thread's heap, so suspend() copies it here and a resumed kernel
 * primes its new stack with it (domu/nics.ts). Without it the first answer after a move waits for
 * an ARP round trip to the asker (through every bridge on the way), and for ARP_RETRY_MS when that
 * request is lost while netback on the new host is still connecting.
 *
 * The vifs' word is the device list Linux keeps in kernel memory (the struct xenbus_device of
 * each): its resume path (xenbus_dev_resume) goes over the devices it has, re-reading only where
 * their backends are now (talk_to_otherend), and the bus watch's listing that follows finds them
 * already registered. A resumed kernel here probes the vifs it had at once, beside its first
 * xenstore requests, instead of after the listing of device/vif answers: one round trip fewer
 * before a peer is answered (domu/nics.ts).
 *
 * The page's gfn is what SCHEDOP_shutdown(SHUTDOWN_suspend) names and the save stream carries as
 * the vCPU context; on restore it comes back as env.resume_gfn.
 */
import type { Kernel } from '../shared/kernel/kernel.ts';
import { PAGE_SIZE } from '../shared/public/xen.ts';
import { TRC_GUEST_RESUME_BOOT, TRC_GUEST_RESUME_RECORD } from '../shared/public/trace.ts';

export const RESUME_MAGIC = 0x52565253; // "RVRS"
export const RESUME_VERSION = 1;
export const R = {
  MAGIC: 0, VERSION: 1, RESERVED: 2, WORKLOAD: 3, SUSPENDS: 4, BALLOONED: 5, BALLOON_LIST: 6, NEIGHBOURS: 7, WORKLOAD_STATE: 8, VIFS: 61, FROZEN_AT: 62, WORDS: 64,
} as const;
/** In word VIFS: the word lists the vifs (a record written before it existed has 0 there: probe as at boot). */
export const VIFS_KNOWN = 1 << 31;
/** The devids the VIFS word can name (bits 0..30). */
export const VIFS_MAX_DEVID = 30;
/** The neighbour table's place in the record page: after the words, one entry = IPv4 (4 bytes, big-endian) + MAC (6) + 2 spare. */
export const NEIGH_OFFSET = R.WORDS * 4;
export const NEIGH_ENTRY = 12;
export const NEIGH_MAX = Math.floor((PAGE_SIZE - NEIGH_OFFSET) / NEIGH_ENTRY);
export const WORKLOAD_NONE = 0;
export const WORKLOAD_MEM_TOUCH = 1;

/** The record: a private copy of its words, read from and written back to its page. */
export class ResumeRecord {
  readonly words = new Int32Array(R.WORDS);
  private readonly bytes = new Uint8Array(this.words.buffer);

  constructor(private readonly k: Kernel, readonly gfn: number) {}

  load(): this {
    this.k.memory.read(this.gfn * PAGE_SIZE, this.bytes);
    return this;
  }

  store(): void {
    this.k.memory.write(this.gfn * PAGE_SIZE, this.bytes);
  }

  /*
   * The guest's own view of its blackout: the time its workload froze, read back after the
   * resume. The clock is the machine's (performance.timeOrigin + now), which both ringvisor hosts
   * on one machine share; guests on two machines would need their wall clocks in step (NTP).
   */
  stampFrozen(now = performance.now()): void {
    new Float64Array(this.words.buffer)[R.FROZEN_AT / 2] = performance.timeOrigin + now;
  }

  /** Milliseconds since the workload froze (NaN if the record has no time). */
  msSinceFrozen(): number {
    const t = new Float64Array(this.words.buffer)[R.FROZEN_AT / 2];
    return t > 0 ? performance.timeOrigin + performance.now() - t : NaN;
  }

  /** Keep (at most NEIGH_MAX of) the neighbour table in the page; store() then records how many. */
  saveNeighbours(entries: readonly (readonly [number, Uint8Array])[]): void {
    const n = Math.min(entries.length, NEIGH_MAX);
    const b = new Uint8Array(n * NEIGH_ENTRY);
    for (let i = 0; i < n; i++) {
      const [ip, mac] = entries[i];
      const o = i * NEIGH_ENTRY;
      b[o] = ip >>> 24; b[o + 1] = (ip >>> 16) & 0xff; b[o + 2] = (ip >>> 8) & 0xff; b[o + 3] = ip & 0xff;
      b.set(mac.subarray(0, 6), o + 4);
    }
    if (n > 0) this.k.memory.write(this.gfn * PAGE_SIZE + NEIGH_OFFSET, b);
    this.words[R.NEIGHBOURS] = n;
  }

  /** The neighbour table the suspended kernel kept (nothing if it kept none, or the count is impossible). */
  neighbours(): [number, Uint8Array][] {
    const n = this.words[R.NEIGHBOURS];
    if (!(n > 0 && n <= NEIGH_MAX)) return [];
    const b = new Uint8Array(n * NEIGH_ENTRY);
    this.k.memory.read(this.gfn * PAGE_SIZE + NEIGH_OFFSET, b);
    const out: [number, Uint8Array][] = [];
    for (let i = 0; i < n; i++) {
      const o = i * NEIGH_ENTRY;
      out.push([((b[o] << 24) | (b[o + 1] << 16) | (b[o + 2] << 8) | b[o + 3]) >>> 0, b.slice(o + 4, o + 10)]);
    }
    return out;
  }

  /** Keep the PV vifs' devids (those above VIFS_MAX_DEVID are left out: found by the listing after a resume). */
  saveVifs(devids: readonly number[]): void {
    let w = VIFS_KNOWN;
    for (const d of devids) if (Number.isInteger(d) && d >= 0 && d <= VIFS_MAX_DEVID) w |= 1 << d;
    this.words[R.VIFS] = w;
  }

  /** The vifs' devids the suspended kernel had, or null if the record does not say. */
  vifs(): number[] | null {
    const w = this.words[R.VIFS];
    if ((w & VIFS_KNOWN) === 0) return null;
    const out: number[] = [];
    for (let d = 0; d <= VIFS_MAX_DEVID; d++) if ((w & (1 << d)) !== 0) out.push(d);
    return out;
  }

  get valid(): boolean {
    return this.words[R.MAGIC] === RESUME_MAGIC && this.words[R.VERSION] === RESUME_VERSION;
  }
}

/**
 * Boot: a fresh kernel takes nothing. A resumed one reads its record and takes back the pages its
 * predecessor reserved, before anything else allocates, so its workload finds its state.
 */
export function resumeRecordAtBoot(k: Kernel, resume_gfn: number): ResumeRecord | null {
  if (resume_gfn < 0) return null;
  k.hypercall.xentrace(TRC_GUEST_RESUME_BOOT, resume_gfn, 0, 0, 0);
  const rec = new ResumeRecord(k, resume_gfn).load();
  if (!rec.valid) throw new Error(`resume: no resume record at gfn ${resume_gfn} (magic 0x${(rec.words[R.MAGIC] >>> 0).toString(16)})`);
  const top = k.pages.allocTop(rec.words[R.RESERVED]);
  if (top[0] !== resume_gfn) throw new Error(`resume: the record is at gfn ${resume_gfn}, but the top of RAM is ${top[0]}`);
  k.hypercall.xentrace(TRC_GUEST_RESUME_RECORD, resume_gfn, 0, 0, 0);
  return rec;
}

/** Suspend without a workload that keeps state in memory: a record of one page, nothing else. */
export function plainRecord(k: Kernel): ResumeRecord {
  const [gfn] = k.pages.allocTop(1);
  const rec = new ResumeRecord(k, gfn);
  rec.words[R.MAGIC] = RESUME_MAGIC;
  rec.words[R.VERSION] = RESUME_VERSION;
  rec.words[R.RESERVED] = 1;
  rec.words[R.WORKLOAD] = WORKLOAD_NONE;
  return rec;
}
