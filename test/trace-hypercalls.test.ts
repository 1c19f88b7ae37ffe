// TRC_PV_HYPERCALL at the one dispatch: every hypercall the table serves writes exactly one
// record naming it (hypercall and sub-op), when the pv class is on, and none when it is off; the
// count of records equals the hypervisor's own hypercall counter. And the control thread's
// scheduling decisions (csched_tick, csched_acct, switches, tickles) land on a track of its own.
import test from 'ava';
import { Caller } from '../hypervisor/caller.ts';
import { HypercallTable, type ControlChannel } from '../hypervisor/hypercall.ts';
import type { VcpuScheduler } from '../hypervisor/schedule.ts';
import { controlTraceSlot, drainTrace, setTraceMask } from '../hypervisor/trace.ts';
import { HostScheduler } from '../hypervisor/sched/host-sched.ts';
import { unitOf } from '../hypervisor/sched/tables.ts';
import { HYPERCALL_IDS, hypercallName } from '../shared/public/hypercall-ids.ts';
import {
  TRC_ALL, TRC_BEGIN, TRC_CSCHED_ACCT, TRC_CSCHED_TICK, TRC_END, TRC_HVM, TRC_PV, TRC_PV_HYPERCALL, TRC_SCHED,
  TRC_SCHED_SWITCH, type TraceRecord,
} from '../shared/public/trace.ts';
import { DOMID_XEN } from '../shared/public/xen.ts';
import { toTraceEvents } from '../dom0/lib/trace-json.ts';
import { World } from './helpers/world.ts';

// One test at a time: the trace buffer is the process's, and each test turns the mask on and off.
const serial = test.serial;

function table(w: World, privileged: boolean) {
  const d = w.domain({ privileged });
  const sched = { preemptionPoint() {}, yield() {}, block: () => Promise.resolve(), setTimer() {} } as unknown as VcpuScheduler;
  const control: ControlChannel = {
    domctl: () => Promise.resolve(0), console() {}, xenLog() {}, shutdown: () => { throw new Error('shutdown'); },
  };
  return { d, hc: new HypercallTable(d.c, sched, control) };
}

function drain(w: World): TraceRecord[] {
  const out: TraceRecord[] = [];
  drainTrace(w.hv.buffers.trace, out);
  return out;
}

serial('every hypercall writes one TRC_PV_HYPERCALL naming it, as many as the hypervisor counts', async (t) => {
  const w = new World();
  const { d, hc } = table(w, true);
  const buf = w.hv.buffers.trace;
  drain(w);
  setTraceMask(buf, TRC_PV);
  try {
    const before = w.hv.counter(d.domid, 'hypercalls');
    const port = hc.evtchn_alloc_unbound(d.domid, d.domid);
    t.true(port > 0);
    hc.evtchn_send(port);
    hc.evtchn_unmask(port);
    hc.evtchn_close(port);
    hc.gnttab_query_size();
    hc.memory_current_reservation();
    hc.set_timer_op(1e6);
    hc.sched_yield();
    await hc.sched_block();
    hc.console_io_write('hello\n');
    hc.vcpu_op_is_up(0);
    await hc.sysctl_physinfo();
    await hc.domctl_pausedomain(99);
    hc.xentrace(0x1001, 0, 0, 0, 0); // a guest's trace record: not a hypercall, not counted, nothing in pv
    const counted = w.hv.counter(d.domid, 'hypercalls') - before;
    const recs = drain(w).filter((r) => r.domid === d.domid && r.event === TRC_PV_HYPERCALL);
    t.is(recs.length, counted, 'one record per counted hypercall');
    t.deepEqual(recs.map((r) => hypercallName(r.data[0], r.data[1])), [
      'event_channel_op(EVTCHNOP_alloc_unbound)', 'event_channel_op(EVTCHNOP_send)', 'event_channel_op(EVTCHNOP_unmask)',
      'event_channel_op(EVTCHNOP_close)', 'grant_table_op(GNTTABOP_query_size)', 'memory_op(XENMEM_current_reservation)',
      'set_timer_op', 'sched_op(SCHEDOP_yield)', 'sched_op(SCHEDOP_block)', 'console_io(CONSOLEIO_write)', 'vcpu_op(VCPUOP_is_up)',
      'sysctl(XEN_SYSCTL_physinfo)', 'domctl(XEN_DOMCTL_pausedomain)',
    ]);
    t.true(recs.every((r) => r.vcpu === 0));
    // Another class only: the dispatch writes nothing.
    setTraceMask(buf, TRC_HVM);
    hc.evtchn_status(d.domid, port, { status: 0, vcpu: 0 } as never);
    t.deepEqual(drain(w).filter((r) => r.event === TRC_PV_HYPERCALL), []);
  } finally {
    setTraceMask(buf, 0);
  }
});

test('the table names an id for every hypercall the hypercall table serves', (t) => {
  // The table's own entries and those of the class it extends (hypervisor/hypercall-control.ts: domctl, sysctl).
  const protos: object[] = [];
  for (let p: object | null = HypercallTable.prototype; p !== null && p !== Object.prototype; p = Object.getPrototypeOf(p) as object | null) protos.push(p);
  const served = protos.flatMap((p) => Object.getOwnPropertyNames(p)).filter((m) => !['constructor', 'xentrace', 'pci_doorbell'].includes(m));
  t.true(served.length > 40);
  t.deepEqual(served.filter((m) => !(m in HYPERCALL_IDS)), [], 'a table entry without a TRC_PV_HYPERCALL id');
  t.is(hypercallName(32, 4), 'event_channel_op(EVTCHNOP_send)');
  t.is(hypercallName(15, 0xff), 'set_timer_op');
  t.is(hypercallName(99, 1), 'hypercall 99(op 1)');
});

serial('the control thread\'s decisions: csched_tick and csched_acct slices and the switches it makes, on its own track', (t) => {
  const w = new World();
  const buf = w.hv.buffers.trace;
  const hs = new HostScheduler(w.hv, 2);
  try {
    const d = w.domain();
    hs.domainCreated(d.domid, 1, {});
    drain(w);
    setTraceMask(buf, TRC_SCHED);
    // Driven by hand, as the control thread's timer and its vcpuGone drive them: a vCPU wakes
    // into an idle slot, two ticks charge it (each accounts: a timeslice has passed since the
    // last), and its thread ends, which frees the slot.
    const now = performance.timeOrigin + performance.now();
    t.true(hs.credit.wake(unitOf(d.domid, 0), now));
    hs.credit.tick(now + 1);
    hs.credit.tick(now + 100); // past a timeslice: csched_acct runs inside this tick
    hs.credit.release(unitOf(d.domid, 0), now + 101, true); // as vcpuGone, from the control thread
    setTraceMask(buf, 0);
    const control = drain(w).filter((r) => r.domid === DOMID_XEN);
    t.true(control.length > 0, 'records in the control thread\'s slot');
    const kinds = control.map((r) => r.event);
    t.is(kinds.filter((e) => e === (TRC_CSCHED_TICK | TRC_BEGIN)).length, 2);
    t.is(kinds.filter((e) => e === (TRC_CSCHED_TICK | TRC_END)).length, 2);
    t.is(kinds.filter((e) => e === (TRC_CSCHED_ACCT | TRC_BEGIN)).length, hs.counters().accts);
    const acct = kinds.indexOf(TRC_CSCHED_ACCT | TRC_BEGIN);
    t.true(acct > kinds.indexOf(TRC_CSCHED_TICK | TRC_BEGIN) && acct < kinds.indexOf(TRC_CSCHED_TICK | TRC_END), 'accounting runs inside a tick');
    const sw = control.filter((r) => r.event === TRC_SCHED_SWITCH);
    t.deepEqual(sw.map((r) => [r.data[1] | 0, r.data[2] | 0]), [[-1, d.domid << 8], [d.domid << 8, -1]], 'the slot given at the wake, and freed');
    // In the Trace Event JSON: a process "Xen" whose one track is the control thread.
    const json = toTraceEvents(control);
    const meta = json.traceEvents.filter((e) => e.ph === 'M');
    t.true(meta.some((e) => e.name === 'process_name' && e.pid === DOMID_XEN && /^Xen/.test(String(e.args?.name))));
    t.true(meta.some((e) => e.name === 'thread_name' && e.pid === DOMID_XEN && /control thread/.test(String(e.args?.name))));
    t.true(json.traceEvents.some((e) => e.ph === 'B' && e.name === 'csched_acct (credit by weight)'));
    t.is(controlTraceSlot(buf, w.hv.buffers.traceBank), (w.hv.buffers.traceBank + 1) * new Int32Array(buf)[3]! - 1, 'its bank\'s last slot');
  } finally {
    setTraceMask(buf, 0);
    hs.close();
  }
});

test('tracing off: the scheduler\'s and the dispatch\'s trace points write nothing', (t) => {
  const w = new World();
  const buf = w.hv.buffers.trace;
  t.is(new Int32Array(buf)[0], 0, 'the mask starts off');
  t.not(TRC_ALL & TRC_SCHED, 0);
  const { hc } = table(w, false);
  drain(w);
  hc.gnttab_query_size();
  t.deepEqual(drain(w), []);
});

serial('two hosts in one process (a migration\'s two): their domains\' records land in slots of their own and stay apart', (t) => {
  const a = new World();
  const b = new World();
  t.not(a.hv.buffers.traceBank, b.hv.buffers.traceBank, 'each host its own bank');
  // Domain 5, vCPU 0, on each host: the same ids, which once meant the same slot.
  const on = (w: World) => new HypercallTable(new Caller(w.hv, 5, 0), {} as VcpuScheduler, {} as ControlChannel);
  const ta = { hc: on(a), d: { domid: 5 } };
  const tb = { hc: on(b), d: { domid: 5 } };
  drain(a);
  setTraceMask(a.hv.buffers.trace, TRC_ALL);
  try {
    for (let i = 0; i < 100; i++) {
      ta.hc.xentrace(0x2001, 1, i, 0, 0); // blkfront submit on host a's guest
      tb.hc.xentrace(0x2001, 2, i, 0, 0); // ... and host b's
    }
  } finally {
    setTraceMask(a.hv.buffers.trace, 0);
  }
  const recs = drain(a).filter((r) => r.domid === ta.d.domid && (r.event & 0xffff) === 0x2001);
  const fromA = recs.filter((r) => r.host === a.hv.buffers.traceBank);
  const fromB = recs.filter((r) => r.host === b.hv.buffers.traceBank);
  t.deepEqual(fromA.map((r) => [r.data[0], r.data[1]]), Array.from({ length: 100 }, (_, i) => [1, i]), 'host a\'s records, whole and in order');
  t.deepEqual(fromB.map((r) => [r.data[0], r.data[1]]), Array.from({ length: 100 }, (_, i) => [2, i]));
  const meta = toTraceEvents(recs).traceEvents.filter((e) => e.name === 'process_name').map((e) => e.args!.name).sort();
  t.deepEqual(meta, [`host ${a.hv.buffers.traceBank}: d${ta.d.domid}`, `host ${b.hv.buffers.traceBank}: d${tb.d.domid}`]);
});
