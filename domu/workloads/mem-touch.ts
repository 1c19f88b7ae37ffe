/*
 * mem-touch: a guest that keeps writing a working set of its memory and checks, page by page, that
 * what it wrote last pass is still there. It is the writable working set of a live migration (Clark
 * et al., NSDI 2005) and the proof that a saved, restored or migrated guest kept its memory.
 *
 * Not a Xen component. It is resumable (domu/resume.ts): its whole progress (pass, page, seed,
 * counts) lives in the resume record page, its data in the pages reserved above it, nothing on the
 * thread's heap that it would need again. Freeze it (Linux's freeze_processes before suspend) and
 * it stops between two pages, with the record up to date; a resumed kernel runs it again from the
 * record, and its first act is to verify the pages written before the move.
 *
 * Arguments: wss=MiB (working set, default 4), passes=N (0: until stopped, the default),
 * seed=N (1). Page i of pass p holds words (mix(seed, p, i) + j), so every page of every pass differs.
 */
import type { Kernel } from '../../shared/kernel/kernel.ts';
import { PAGE_SIZE, PAGE_WORDS } from '../../shared/public/xen.ts';
import { R, RESUME_MAGIC, RESUME_VERSION, ResumeRecord, WORKLOAD_MEM_TOUCH } from '../resume.ts';

/* The workload's words in the record (from R.WORKLOAD_STATE). */
const S = { WSS_PAGES: 8, PASS: 9, INDEX: 10, SEED: 11, PASSES: 12, VERIFIED: 13, RESUMES: 14 } as const;
/*
 * Pages between turns of the event loop, so xenbus (a suspend request) and the console are served;
 * and sooner when an event is pending (Kernel.eventPending: an interrupt preempting a user task).
 * Without that, every xenstore round trip a resumed kernel makes while it reconnects its devices
 * waited for the end of a 64-page turn (several ms on a fresh vCPU thread whose code is not yet
 * compiled), and so did every udp-rr answer: a resumed guest needed ~50 ms more than an idle one
 * to answer its peer.
 */
const TURN_PAGES = 64;
const REPORT_PASSES = 100;

export interface MemTouch {
  record: ResumeRecord;
  /** Resolves when the loop has stopped between two pages (the record is current). */
  freeze(): Promise<void>;
  /** Resolves when `passes` are done (never, for passes = 0). */
  done: Promise<void>;
}

function mix(seed: number, pass: number, page: number): number {
  let x = (seed * 0x9e3779b1) ^ (pass * 0x85ebca6b) ^ (page * 0xc2b2ae35);
  x ^= x >>> 16;
  x = Math.imul(x, 0x7feb352d);
  return (x ^ (x >>> 15)) | 0;
}

/** Start mem-touch: fresh (args) or resumed (`resumed`: the record a resumed kernel found). */
export function startMemTouch(k: Kernel, args: ReadonlyMap<string, string>, resumed: ResumeRecord | null,
  say: (line: string) => void): MemTouch {
  let rec: ResumeRecord;
  if (resumed !== null && resumed.words[R.WORKLOAD] === WORKLOAD_MEM_TOUCH) {
    rec = resumed;
    rec.words[S.RESUMES]++;
    say(`mem-touch: resumed at pass ${rec.words[S.PASS]}, page ${rec.words[S.INDEX]} of ${rec.words[S.WSS_PAGES]} ` +
      `(its progress was in guest memory), ${rec.msSinceFrozen().toFixed(1)} ms after it froze`);
  } else {
    const num = (key: string, dflt: number) => {
      const v = Number(args.get(key) ?? dflt);
      return Number.isSafeInteger(v) && v >= 0 ? v : dflt;
    };
    const wss = Math.max(1, Math.round((num('wss', 4) * 1048576) / PAGE_SIZE));
    const [gfn] = k.pages.allocTop(1 + wss);
    rec = new ResumeRecord(k, gfn);
    rec.words[R.MAGIC] = RESUME_MAGIC;
    rec.words[R.VERSION] = RESUME_VERSION;
    rec.words[R.RESERVED] = 1 + wss;
    rec.words[R.WORKLOAD] = WORKLOAD_MEM_TOUCH;
    rec.words[S.WSS_PAGES] = wss;
    rec.words[S.SEED] = num('seed', 1);
    rec.words[S.PASSES] = num('passes', 0);
    say(`mem-touch: writing a working set of ${wss} pages (${((wss * PAGE_SIZE) / 1048576).toFixed(1)} MiB), verifying each pass`);
  }
  rec.store();
  const w = rec.words;
  const base = rec.gfn - w[S.WSS_PAGES]; // allocTop gave the record, then the pages below it
  const page = new Int32Array(PAGE_WORDS);
  const bytes = new Uint8Array(page.buffer);
  let freezeAsked: (() => void) | null = null;
  let frozen: Promise<void> | null = null;
  let finished = false;
  let reported = false;

  const loop = async (): Promise<void> => {
    for (let step = 0; ; step++) {
      if (freezeAsked !== null) {
        rec.store();
        freezeAsked();
        return new Promise<never>(() => undefined); // frozen until the domain suspends
      }
      const pass = w[S.PASS];
      const i = w[S.INDEX];
      const gpa = (base + i) * PAGE_SIZE;
      if (pass > 0) {
        k.memory.read(gpa, bytes);
        const want = mix(w[S.SEED], pass - 1, i);
        for (let j = 0; j < PAGE_WORDS; j++) {
          if (page[j] !== ((want + j) | 0)) {
            throw new Error(`mem-touch: page ${i} (gfn ${base + i}) word ${j} is 0x${(page[j] >>> 0).toString(16)}, ` +
              `expected 0x${((want + j) >>> 0).toString(16)} from pass ${pass - 1}`);
          }
        }
        w[S.VERIFIED]++;
      }
      const v = mix(w[S.SEED], pass, i);
      for (let j = 0; j < PAGE_WORDS; j++) page[j] = (v + j) | 0;
      k.memory.write(gpa, bytes);
      if (i + 1 < w[S.WSS_PAGES]) w[S.INDEX] = i + 1;
      else {
        w[S.INDEX] = 0;
        w[S.PASS] = pass + 1;
        // The first passes, the first after a start or a resume, then every REPORT_PASSES: a console, not a flood.
        if (pass < 3 || pass % REPORT_PASSES === 0 || !reported) say(`mem-touch: pass ${pass} done: ${w[S.WSS_PAGES]} pages written${pass > 0 ? ', each checked against the pass before' : ''}` +
          ` (${w[S.VERIFIED]} pages verified in all)`);
        reported = true;
        if (w[S.PASSES] > 0 && w[S.PASS] >= w[S.PASSES]) { rec.store(); return; }
      }
      rec.store(); // the progress goes to guest memory with every page
      k.preempt();
      if (step % TURN_PAGES === TURN_PAGES - 1 || k.eventPending()) await new Promise(setImmediate);
    }
  };
  const done = loop().then(() => { finished = true; });
  return {
    record: rec,
    done,
    freeze() {
      frozen ??= finished ? Promise.resolve() : new Promise<void>((resolve) => { freezeAsked = resolve; });
      return frozen;
    },
  };
}
