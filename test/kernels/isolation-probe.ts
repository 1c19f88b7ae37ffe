/*
 * A guest kernel that looks for a way out of its domain through everything it holds (README,
 * "Isolation"). The 'victim' fills pages of its RAM with a secret and idles; the 'probe' walks
 * every object reachable from its boot environment and from globalThis, asks for workerData and
 * the thread's port the ways a guest could, tries its hypercalls on the victim, and searches all
 * it can read for the secret. It reports what it found on the test's channel (a test kernel may
 * use one; domu/ code may not).
 */
import { BroadcastChannel } from 'node:worker_threads';
import { Kernel } from '../../shared/kernel/kernel.ts';
import { GNTCOPY_source_gref, GNTMAP_host_map, GNTST_okay, newGnttabCopy } from '../../shared/public/grant_table.ts';
import { XENMAPSPACE_gmfn_foreign, type KernelEnv } from '../../shared/public/hypercall.ts';
import { PageFault } from '../../shared/public/memory.ts';
import { DOMID_SELF, PAGE_SIZE } from '../../shared/public/xen.ts';
import { dataViewOf, viewAs } from '../../shared/view.ts';

export interface IsolationModule {
  channel: string;
  role: 'victim' | 'probe';
  secret: string;
  victim?: number;
}

export interface ProbeReport {
  kind: 'probe-report';
  /** How many objects the walk visited, from env and from globalThis. */
  visited: number;
  /** Paths to a property whose name belongs to the hypervisor's or the thread's state. */
  suspicious: string[];
  /** Every SharedArrayBuffer the walk reached (path, size), and those holding the secret. */
  sabs: { path: string; bytes: number }[];
  secretVia: string[];
  workerData: { import: string; getBuiltinModule: string; parentPort: string };
  /** Hypercalls tried on the victim that did not fail. */
  hypercallsThatWorked: string[];
  /** Whether anything it can read through its memory object (its RAM, and beyond) holds the secret. */
  secretInOwnMemory: boolean;
  /**
   * What a page view gives out: its .buffer (refused in a guest's thread), and the re-viewing
   * helpers tried with a lying byteOffset, a range past the page and a fake constructor. Each
   * entry is the number of bytes reached, or the error's name.
   */
  pageView: { buffer: string; lyingOffset: string; pastEnd: string; fakeCtor: string; sabsReached: number; holdsSecret: boolean };
}

export type IsolationMessage = { kind: 'victim-ready' } | ProbeReport;

const SUSPICIOUS = /^(hv|buffers|machine|mem8|mem32|p2m|workerData|boot|grantTable|sharedInfo|domains|parentPort)$/;

export async function main(env: KernelEnv): Promise<void> {
  const k = new Kernel(env);
  const m = env.module as IsolationModule;
  const ch = new BroadcastChannel(m.channel);
  const secret = new TextEncoder().encode(m.secret);
  if (m.role === 'victim') {
    const page = new Uint8Array(PAGE_SIZE);
    for (let i = 0; i + secret.length <= PAGE_SIZE; i += secret.length) page.set(secret, i);
    for (let i = 0; i < 64; i++) k.memory.write(k.pages.alloc() * PAGE_SIZE, page);
    ch.postMessage({ kind: 'victim-ready' });
    await k.events.run();
    return;
  }

  const report: ProbeReport = {
    kind: 'probe-report', visited: 0, suspicious: [], sabs: [], secretVia: [],
    workerData: { import: '', getBuiltinModule: '', parentPort: '' },
    hypercallsThatWorked: [], secretInOwnMemory: false,
    pageView: { buffer: '', lyingOffset: '', pastEnd: '', fakeCtor: '', sabsReached: 0, holdsSecret: false },
  };

  // 1. Walk everything reachable from what the kernel was handed, and from the global object.
  walk([['env', env], ['globalThis', globalThis]], report, secret);

  // 2. workerData and the thread's port, the ways guest code in this thread could ask for them.
  const wt = await import('node:worker_threads');
  report.workerData.import = describe(wt.workerData);
  report.workerData.parentPort = describe(wt.parentPort);
  const gbm = (process as { getBuiltinModule?: (id: string) => { workerData: unknown } }).getBuiltinModule;
  report.workerData.getBuiltinModule = gbm ? describe(gbm('node:worker_threads').workerData) : 'unavailable';

  // 3. The hypercall interface, aimed at the victim.
  const v = m.victim!;
  const hc = env.hypercall;
  for (let ref = 0; ref < 64; ref++) {
    const hole = k.pages.allocHole();
    const op = { host_addr: hole, flags: GNTMAP_host_map, ref, dom: v, status: 99, handle: -1 };
    hc.gnttab_map_grant_ref(op);
    if (op.status === GNTST_okay) report.hypercallsThatWorked.push(`gnttab_map_grant_ref(d${v}, ref ${ref})`);
    const cp = newGnttabCopy();
    cp.flags = GNTCOPY_source_gref;
    cp.source = { ref, gfn: 0, domid: v, offset: 0 };
    cp.dest = { ref: 0, gfn: k.pages.alloc(), domid: DOMID_SELF, offset: 0 };
    cp.len = 16;
    hc.gnttab_copy([cp], 1);
    if (cp.status === GNTST_okay) report.hypercallsThatWorked.push(`gnttab_copy(from d${v} ref ${ref})`);
  }
  const errs = new Int32Array(8);
  const idx = [0, 1, 2, 3, 100, 200, 300, 400];
  const holes = idx.map(() => k.pages.allocHole());
  if (hc.memory_add_to_physmap_batch(XENMAPSPACE_gmfn_foreign, v, idx, holes, errs, 8) >= 0 && errs.some((e) => e === 0)) {
    report.hypercallsThatWorked.push('memory_add_to_physmap_batch(gmfn_foreign)');
  }
  if (typeof (await hc.domctl_getdomaininfo(v)) !== 'number') report.hypercallsThatWorked.push('domctl_getdomaininfo');

  // 4. Its own memory, and the holes around it: the victim's secret is in none of it.
  const nr = k.si.nr_pages;
  const buf = new Uint8Array(PAGE_SIZE);
  for (let gfn = 0; gfn < nr + 1024; gfn++) {
    try {
      k.memory.read(gfn * PAGE_SIZE, buf);
      if (indexOf(buf, secret) >= 0) report.secretInOwnMemory = true;
    } catch (e) {
      if (!(e instanceof PageFault)) throw e;
    }
  }

  // 5. A page view, and every way to get more than its page out of it.
  const view = k.memory.page(k.pages.alloc(), false);
  const reached: SharedArrayBuffer[] = [];
  const attempt = (f: () => ArrayBufferView | ArrayBufferLike): string => {
    try {
      const got = f();
      const buf = ArrayBuffer.isView(got) ? null : got;
      if (buf instanceof SharedArrayBuffer) reached.push(buf);
      return `${ArrayBuffer.isView(got) ? got.byteLength : got.byteLength} bytes`;
    } catch (e) {
      return (e as Error).name;
    }
  };
  report.pageView.buffer = attempt(() => view.buffer);
  const liar = k.memory.page(k.pages.alloc(), false);
  Object.defineProperty(liar, 'byteOffset', { value: 0 });
  Object.defineProperty(liar, 'byteLength', { value: 1 << 30 });
  report.pageView.lyingOffset = attempt(() => viewAs(liar, Uint8Array));
  report.pageView.pastEnd = attempt(() => dataViewOf(view, 0, 2 * PAGE_SIZE));
  class Grab { constructor(b: SharedArrayBuffer) { reached.push(b); } }
  report.pageView.fakeCtor = attempt(() => viewAs(view, Grab as unknown as typeof Uint8Array));
  report.pageView.sabsReached = reached.length;
  report.pageView.holdsSecret = reached.some((b) => indexOf(new Uint8Array(b), secret) >= 0);

  ch.postMessage(report);
  ch.close();
}

function describe(x: unknown): string {
  return x === null ? 'null' : x === undefined ? 'undefined' : `a ${typeof x} (${Object.prototype.toString.call(x)})`;
}

/** Breadth-first over objects: own properties (getters called), prototypes, Map/Set contents. */
function walk(roots: [string, unknown][], report: ProbeReport, secret: Uint8Array): void {
  const seen = new Set<unknown>();
  const queue: [string, unknown][] = [...roots];
  const sabs = new Set<SharedArrayBuffer>();
  const visitSab = (path: string, sab: SharedArrayBuffer) => {
    if (sabs.has(sab)) return;
    sabs.add(sab);
    report.sabs.push({ path, bytes: sab.byteLength });
    if (indexOf(new Uint8Array(sab), secret) >= 0) report.secretVia.push(path);
  };
  for (let qi = 0; qi < queue.length && seen.size < 200_000; qi++) {
    const [path, x] = queue[qi];
    if ((typeof x !== 'object' && typeof x !== 'function') || x === null || seen.has(x)) continue;
    seen.add(x);
    if (x instanceof SharedArrayBuffer) { visitSab(path, x); continue; }
    if (ArrayBuffer.isView(x)) {
      try {
        if (x.buffer instanceof SharedArrayBuffer) visitSab(`${path}.buffer`, x.buffer);
      } catch { /* a page view refuses its .buffer (hypervisor/view-guard.ts) */ }
      continue; // indices are data, not references
    }
    try {
      if (x instanceof Map) for (const [mk, mv] of x) queue.push([`${path}<key>`, mk], [`${path}<${String(mk)}>`, mv]);
      if (x instanceof Set) for (const sv of x) queue.push([`${path}<item>`, sv]);
    } catch { /* a subclass that will not be iterated (process.allowedNodeEnvironmentFlags) */ }
    queue.push([`${path}.__proto__`, Object.getPrototypeOf(x)]);
    for (const key of Reflect.ownKeys(x)) {
      const name = String(key);
      const p = `${path}.${name}`;
      if (SUSPICIOUS.test(name) && !isBuiltinPrototype(x)) report.suspicious.push(p);
      let d: PropertyDescriptor | undefined;
      try { d = Reflect.getOwnPropertyDescriptor(x, key); } catch { continue; }
      if (!d) continue;
      if ('value' in d) queue.push([p, d.value]);
      else if (d.get) {
        queue.push([`${p}<get>`, d.get]);
        if (isPrototype(x)) continue; // a getter on a prototype wants an instance as receiver
        try {
          const got: unknown = Reflect.get(x, key);
          if (got instanceof Promise) got.catch(() => undefined);
          queue.push([p, got]);
        } catch { /* a getter that needs another receiver */ }
      }
    }
  }
  report.visited = seen.size;
}

function isPrototype(x: object): boolean {
  try {
    const c = (x as { constructor?: { prototype?: unknown } }).constructor;
    return typeof c === 'function' && c.prototype === x;
  } catch { return false; }
}

/** Names like `buffer` on %TypedArray%.prototype are the language's, not a path out. */
function isBuiltinPrototype(x: object): boolean {
  return x === Object.getPrototypeOf(Uint8Array.prototype) || x === DataView.prototype || x === SharedArrayBuffer.prototype;
}

function indexOf(hay: Uint8Array, needle: Uint8Array): number {
  const first = needle[0];
  for (let i = hay.indexOf(first); i >= 0 && i + needle.length <= hay.length; i = hay.indexOf(first, i + 1)) {
    let j = 1;
    while (j < needle.length && hay[i + j] === needle[j]) j++;
    if (j === needle.length) return i;
  }
  return -1;
}
