/*
 * What one trace point costs with tracing compiled in but off: a microbenchmark of the real
 * shapes, beside the trace suite's end-to-end ratio (scenarios/bench/trace.ts), which on a shared
 * machine is too noisy to see a cost this small.
 *
 * Xen: the question CONFIG_TRACEBUFFER's cost answers (xen/include/xen/trace.h: with tracing
 * off, trace_var() is `if (unlikely(tb_init_done))` and nothing else). Here a point is a load of
 * the mask word from the shared trace buffer, an AND and a branch; the guest's points go through
 * the hypercall table's xentrace entry, which V8 inlines at the call site.
 *
 * Run: `node --import tsx tools/trace/point-cost.ts`. Each shape runs in a loop around a small
 * piece of work, against the same loop without the point, interleaved, repeat after repeat; the
 * figure is the median difference per point in ns, with the repeats' range. Pass
 * `--no-turbo-inlining` to node to see what a point costs where V8 does not inline it (a call).
 */
import { Caller } from '../../hypervisor/caller.ts';
import { HypercallTable, type ControlChannel } from '../../hypervisor/hypercall.ts';
import type { VcpuScheduler } from '../../hypervisor/schedule.ts';
import { HypervisorState, allocateBuffers } from '../../hypervisor/state.ts';
import { setTraceMask } from '../../hypervisor/trace.ts';
import { TRC_GUEST_BLKBACK_REQUEST, TRC_PV, TRC_PV_EVTCHN_SEND } from '../../shared/public/trace.ts';

const LOOPS = 5_000_000;
const REPEATS = 15;
const WARMUP = 3;

const hv = new HypervisorState(allocateBuffers(16));
setTraceMask(hv.buffers.trace, 0);
const caller = new Caller(hv, 1, 0);
const sched = { preemptionPoint() {}, yield() {}, block: () => Promise.resolve(), setTimer() {} } as unknown as VcpuScheduler;
const control = { domctl: () => Promise.resolve(0), console() {}, xenLog() {}, shutdown: () => { throw new Error('shutdown'); } } as ControlChannel;
const k = { hypercall: new HypercallTable(caller, sched, control) };
const tr = caller.trace;

// The work each loop iteration does besides the point: a few loads and stores, as a ring's.
const ring = new Int32Array(64);
function work(i: number): number {
  ring[i & 63] = (ring[i & 63]! + i) | 0;
  return ring[(i * 7) & 63]!;
}

function plain(n: number): number {
  let a = 0;
  for (let i = 0; i < n; i++) a = (a + work(i)) | 0;
  return a;
}
/** A guest's point (blkfront, blkback, the rings): `k.hypercall.xentrace(...)`, twice per iteration. */
function guest(n: number): number {
  let a = 0;
  for (let i = 0; i < n; i++) {
    a = (a + work(i)) | 0;
    k.hypercall.xentrace(TRC_GUEST_BLKBACK_REQUEST, 1, i, a, 0);
    k.hypercall.xentrace(TRC_GUEST_BLKBACK_REQUEST, 1, a, i, 0);
  }
  return a;
}
/** The hypervisor's point: `if (tr.on(CLASS)) tr.write(...)`, twice per iteration. */
function hypervisor(n: number): number {
  let a = 0;
  for (let i = 0; i < n; i++) {
    a = (a + work(i)) | 0;
    if (tr.on(TRC_PV)) tr.write(TRC_PV_EVTCHN_SEND, i, 0, 0, 0);
    if (tr.on(TRC_PV)) tr.write(TRC_PV_EVTCHN_SEND, a, 0, 0, 0);
  }
  return a;
}

const time = (f: (n: number) => number) => {
  const t = performance.now();
  f(LOOPS);
  return ((performance.now() - t) * 1e6) / LOOPS; // ns per iteration
};
const per: Record<string, number[]> = { guest: [], hypervisor: [] };
for (let r = 0; r < WARMUP + REPEATS; r++) {
  const base1 = time(plain);
  const g = time(guest);
  const base2 = time(plain);
  const h = time(hypervisor);
  if (r < WARMUP) continue;
  per.guest!.push((g - base1) / 2);
  per.hypervisor!.push((h - base2) / 2);
}
const median = (x: number[]) => [...x].sort((a, b) => a - b)[x.length >> 1]!;
for (const [shape, xs] of Object.entries(per)) {
  console.log(`${shape.padEnd(10)} trace point, tracing off: median ${median(xs).toFixed(2)} ns per point (repeats ${Math.min(...xs).toFixed(2)} .. ${Math.max(...xs).toFixed(2)})`);
}
