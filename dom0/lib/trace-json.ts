/*
 * From drained trace records to Trace Event JSON, the format ui.perfetto.dev and chrome://tracing
 * load: one process per domain, one track per vCPU thread and one per backend running on it,
 * one process "Xen" whose track is the control thread (the scheduler's timer interrupt),
 * slices for the B/E record pairs, and flow arrows that follow one request end to end. Records
 * from several hosts of one process (a migration's two) make one process per host and domain,
 * named "host N: ...", and a flow never joins records of two hosts.
 *
 * Xen: what xenalyze does with xentrace's binary (tools/xentrace/xenalyze.c): pair the records
 * into intervals and follow them per domain and vCPU. Format: the Trace Event Format document
 * (catapult docs/trace-event-format.md); flows v1 ('s', 't', 'f' with bp:'e').
 *
 * Written with JSON.stringify, no library: the format is a flat array of small objects, and the
 * one part a library would add (a stream of begin/end calls stamped with this process's clock)
 * is the part we do not want: the timestamps were taken by the threads where events happened.
 *
 * Flows. PV: blkfront's submit (key: frontend domain, first ring-ref, request id) → blkback's
 * handling of that id → its file I/O → blkfront's completion of that id. Emulated: the IDE
 * driver's command → each trapped access's ioreq round trip on the guest's vCPU → the device
 * model's handling of it → the interrupt it raises → the driver's completion (one command at a
 * time per domain, so the key is the guest's domain).
 */
import {
  TRC_BEGIN, TRC_CLS_MASK, TRC_END, TRC_GUEST, TRC_GUEST_BLKBACK_REQUEST, TRC_GUEST_BLKFRONT_COMPLETE,
  TRC_GUEST_BLKFRONT_SUBMIT, TRC_GUEST_DISK_IO, TRC_GUEST_DM_IOREQ, TRC_GUEST_EVTCHN_UPCALL, TRC_GUEST_IDE_COMMAND, TRC_GUEST_IDE_DONE,
  TRC_GUEST_RING_CONSUME, TRC_GUEST_RING_PUSH, TRC_HVM_IOREQ, TRC_HVM_IRQ, TRC_LOST_RECORDS, TRC_MEM_GRANT_COPY,
  TRC_MEM_GRANT_MAP, TRC_MEM_GRANT_UNMAP, TRC_PV_EVTCHN_SEND, TRC_PV_HYPERCALL, TRC_SCHED_SWITCH, TRC_CSCHED_ACCT,
  TRC_CSCHED_TICK, TRC_CSCHED_TICKLE, type TraceRecord,
} from '../../shared/public/trace.ts';
import { DOMID_XEN } from '../../shared/public/xen.ts';
import { hypercallName } from '../../shared/public/hypercall-ids.ts';
import * as TRACE from '../../shared/public/trace.ts';

const G = TRC_GUEST & TRC_CLS_MASK;
/** Event id (class | number, without TRC_BEGIN/TRC_END) → its slice's name, category and argument names. */
export const NAMES: ReadonlyMap<number, [name: string, cat: string, args: string[]]> = new Map<number, [name: string, cat: string, args: string[]]>([
  [TRC_LOST_RECORDS, ['lost records', 'gen', ['lost']]],
  [TRC_PV_HYPERCALL, ['hypercall', 'pv', ['hypercall', 'op']]], // each record named by what it called (below)
  [TRC_PV_EVTCHN_SEND, ['evtchn_send', 'pv', ['port']]],
  [TRC_MEM_GRANT_MAP, ['gnttab_map_grant_ref', 'mem', ['dom', 'ref']]],
  [TRC_MEM_GRANT_UNMAP, ['gnttab_unmap_grant_ref', 'mem', ['handle']]],
  [TRC_MEM_GRANT_COPY, ['gnttab_copy', 'mem', ['ops']]],
  [TRC_HVM_IOREQ, ['trap → ioreq round trip', 'hvm', ['addr', 'write', 'size', 'value']]],
  [TRC_HVM_IRQ, ['set_isa_irq_level', 'hvm', ['domid', 'irq', 'level']]],
  [TRC_SCHED_SWITCH, ['schedule (switch)', 'sched', ['pcpu', 'prev', 'next']]],
  [TRC_CSCHED_TICK, ['csched_tick (every slot)', 'sched', ['slots']]],
  [TRC_CSCHED_ACCT, ['csched_acct (credit by weight)', 'sched', ['slots']]],
  [TRC_CSCHED_TICKLE, ['tickle (asked to reschedule)', 'sched', ['pcpu', 'running']]],
  [G | TRC_GUEST_RING_PUSH, ['ring push', 'ring', ['prod', 'old', 'backend']]],
  [G | TRC_GUEST_RING_CONSUME, ['ring consume', 'ring', ['cons', 'backend']]],
  [G | TRC_GUEST_EVTCHN_UPCALL, ['event delivery (upcall)', 'pv', ['port']]],
  [G | TRC_GUEST_BLKFRONT_SUBMIT, ['blkfront submit', 'blk', ['ring_ref', 'id', 'op', 'sector']]],
  [G | TRC_GUEST_BLKFRONT_COMPLETE, ['blkfront complete', 'blk', ['ring_ref', 'id', 'status']]],
  [G | TRC_GUEST_BLKBACK_REQUEST, ['blkback request', 'blk', ['frontend', 'ring_ref', 'id']]],
  [G | TRC_GUEST_DISK_IO, ['disk preadv/pwritev', 'blk', ['frontend', 'sector', 'sectors', 'write']]],
  [G | TRC_GUEST_IDE_COMMAND, ['IDE command', 'ide', ['sector', 'count']]],
  [G | TRC_GUEST_IDE_DONE, ['IDE complete', 'ide', ['status']]],
  [G | TRC_GUEST_DM_IOREQ, ['device model: handle_ioreq', 'ide', ['domid', 'vcpu']]],
]);
/*
 * An event this file does not list (a trace point added since) is still named: by its constant in
 * shared/public/trace.ts (TRC_SCHED_WAKE → "sched wake", TRC_GUEST_NETBACK_TX → "guest netback
 * tx"), its category by its class, its data words d0..d3. It nests and flows like any other.
 */
const CLASS_NAMES = new Map(Object.entries(TRACE.TRACE_CLASSES).filter(([n]) => n !== 'all').map(([n, c]) => [c & TRC_CLS_MASK, n]));
const BY_CONSTANT = new Map<number, [name: string, cat: string, args: string[]]>();
for (const [k, v] of Object.entries(TRACE)) {
  if (!k.startsWith('TRC_') || typeof v !== 'number' || TRACE.TRACE_CLASSES[k.slice(4).toLowerCase()] !== undefined) continue;
  const kind = k.startsWith('TRC_GUEST_') ? G | v : v;
  if ((kind & TRC_CLS_MASK) === 0 || NAMES.has(kind) || BY_CONSTANT.has(kind)) continue;
  BY_CONSTANT.set(kind, [k.slice(4).toLowerCase().replace(/_/g, ' '), CLASS_NAMES.get(kind & TRC_CLS_MASK) ?? 'unknown', ['d0', 'd1', 'd2', 'd3']]);
}
/** The name, category and argument names of an event id. */
export function eventInfo(kind: number): [name: string, cat: string, args: string[]] {
  return NAMES.get(kind) ?? BY_CONSTANT.get(kind) ?? [`event 0x${(kind >>> 0).toString(16)}`, 'unknown', ['d0', 'd1', 'd2', 'd3']];
}

/** Records that run in a backend: they get a track of their own beside the vCPU's. */
const BACKEND_TRACK = new Map<number, [tidBase: number, name: string]>([
  [G | TRC_GUEST_BLKBACK_REQUEST, [100, 'blkback']],
  [G | TRC_GUEST_DM_IOREQ, [200, 'ioreq server (device model)']],
]);

export interface TraceEvent {
  name: string; ph: string; ts: number; pid: number; tid: number;
  cat?: string; dur?: number; id?: number; bp?: string; args?: Record<string, unknown>;
}
export interface TraceFile { traceEvents: TraceEvent[]; displayTimeUnit: 'ms' | 'ns' }

/** Build the JSON object; `names` labels domains (domid → name). */
export function toTraceEvents(records: readonly TraceRecord[], names: ReadonlyMap<number, string> = new Map()): TraceFile {
  const recs = [...records].sort((a, b) => a.ts - b.ts); // stable: each thread's order is kept
  const t0 = recs.length > 0 ? recs[0]!.ts : 0;
  const out: TraceEvent[] = [];
  const threads = new Map<string, string>();              // "pid:tid" → track name
  const stacks = new Map<string, { ev: number; tid: number }[]>(); // open slices per vCPU
  const stackPid = new Map<string, number>();              // ... and the process each is in
  // Several hosts in one process (a migration): one process per (host, domain), named with the host.
  const hosts = new Set(recs.map((r) => r.host ?? 0));
  const multi = hosts.size > 1;
  const pidHost = new Map<number, number>();
  const flows = new Map<string, number>();                 // request key → flow id
  const backendFlow = new Map<string, number>();           // vCPU → flow of the request its backend holds
  let nextFlow = 1;
  let last = 0;
  const flow = (ph: 's' | 't' | 'f', id: number, ts: number, pid: number, tid: number, cat: string) =>
    out.push({ name: 'request', cat: 'flow', ph, id, ts, pid, tid, bp: 'e', args: { via: cat } });

  for (const r of recs) {
    const ts = Math.round((r.ts - t0) * 1e6) / 1e3; // ms → µs, ns precision
    last = ts;
    const kind = r.event & ~(TRC_BEGIN | TRC_END);
    const begin = (r.event & TRC_BEGIN) !== 0;
    const end = (r.event & TRC_END) !== 0;
    const [kindName, cat, argNames] = eventInfo(kind);
    // A hypercall's record is named by what it called: "event_channel_op(EVTCHNOP_send)".
    const name = kind === TRC_PV_HYPERCALL ? hypercallName(r.data[0], r.data[1]) : kindName;
    const h = r.host ?? 0;
    const pid = multi ? h * 0x10000 + r.domid : r.domid;
    pidHost.set(pid, h);
    const cpuKey = `${h}:${r.domid}:${r.vcpu}`;
    const stack = stacks.get(cpuKey) ?? [];
    stacks.set(cpuKey, stack);
    stackPid.set(cpuKey, pid);
    // The track: a backend's own records on its track; what runs inside a backend slice with it.
    const bt = BACKEND_TRACK.get(kind);
    const tid = bt !== undefined ? bt[0] + r.vcpu : stack.length > 0 ? stack[stack.length - 1]!.tid : r.vcpu;
    const tkey = `${pid}:${tid}`;
    if (!threads.has(tkey)) {
      threads.set(tkey, r.domid === DOMID_XEN ? 'control thread (timer interrupt)'
        : bt !== undefined ? `${bt[1]} (vCPU ${r.vcpu})` : tid >= 100 ? `backend (vCPU ${r.vcpu})` : `vCPU ${r.vcpu}`);
    }
    const args: Record<string, unknown> = {};
    argNames.forEach((a, i) => { args[a] = r.data[i]; });
    if (end) {
      // An end whose begin came before the trace started has nothing to close.
      const i = stack.findLastIndex((s) => s.ev === kind);
      if (i < 0) continue;
      for (let j = stack.length - 1; j >= i; j--) out.push({ name: eventInfo(stack[j]!.ev)[0], ph: 'E', ts, pid, tid: stack[j]!.tid });
      stack.length = i;
      if (kind === (G | TRC_GUEST_BLKBACK_REQUEST)) backendFlow.delete(cpuKey);
      continue;
    }
    if (begin) {
      out.push({ name, cat, ph: 'B', ts, pid, tid, args });
      stack.push({ ev: kind, tid });
    } else {
      out.push({ name, cat, ph: 'X', ts, dur: 0.001, pid, tid, args });
    }
    // Flows: where this record sits on a request's path.
    const [d0, d1, d2] = r.data;
    switch (kind) {
      case G | TRC_GUEST_BLKFRONT_SUBMIT: {
        const id = nextFlow++;
        flows.set(`pv:${h}:${r.domid}:${d0}:${d1}`, id);
        flow('s', id, ts, pid, tid, 'blkfront');
        break;
      }
      case G | TRC_GUEST_BLKBACK_REQUEST: {
        const id = flows.get(`pv:${h}:${d0}:${d1}:${d2}`);
        if (id !== undefined) { flow('t', id, ts, pid, tid, 'blkback'); backendFlow.set(cpuKey, id); }
        break;
      }
      case G | TRC_GUEST_DISK_IO: {
        const id = backendFlow.get(cpuKey);
        if (id !== undefined) flow('t', id, ts, pid, tid, 'disk');
        break;
      }
      case G | TRC_GUEST_BLKFRONT_COMPLETE: {
        const key = `pv:${h}:${r.domid}:${d0}:${d1}`;
        const id = flows.get(key);
        if (id !== undefined) { flow('f', id, ts, pid, tid, 'blkfront'); flows.delete(key); }
        break;
      }
      case G | TRC_GUEST_IDE_COMMAND: {
        const id = nextFlow++;
        flows.set(`ide:${h}:${r.domid}`, id);
        flow('s', id, ts, pid, tid, 'ide driver');
        break;
      }
      case TRC_HVM_IOREQ: {
        const id = flows.get(`ide:${h}:${r.domid}`);
        if (id !== undefined) flow('t', id, ts, pid, tid, 'trap');
        break;
      }
      case G | TRC_GUEST_DM_IOREQ:
      case TRC_HVM_IRQ: {
        const id = flows.get(`ide:${h}:${d0}`);
        if (id !== undefined) flow('t', id, ts, pid, tid, kind === TRC_HVM_IRQ ? 'irq' : 'device model');
        break;
      }
      case G | TRC_GUEST_IDE_DONE: {
        const id = flows.get(`ide:${h}:${r.domid}`);
        if (id !== undefined) { flow('f', id, ts, pid, tid, 'ide driver'); flows.delete(`ide:${h}:${r.domid}`); }
        break;
      }
    }
  }
  // Slices still open when the trace stopped end where it did.
  for (const [key, stack] of stacks) {
    const pid = stackPid.get(key)!;
    for (let j = stack.length - 1; j >= 0; j--) out.push({ name: eventInfo(stack[j]!.ev)[0], ph: 'E', ts: last, pid, tid: stack[j]!.tid });
  }
  const meta: TraceEvent[] = [];
  for (const pid of new Set([...threads.keys()].map((k) => Number(k.split(':')[0])))) {
    const h = pidHost.get(pid) ?? 0;
    const domid = multi ? pid - h * 0x10000 : pid;
    const name = (multi ? undefined : names.get(domid)) ?? (domid === 0 ? 'Domain-0' : domid === DOMID_XEN ? 'Xen (the hypervisor\'s control thread)' : `d${domid}`);
    meta.push({ name: 'process_name', ph: 'M', ts: 0, pid, tid: 0, args: { name: multi ? `host ${h}: ${name}` : name } });
  }
  for (const [k, name] of threads) {
    const [pid, tid] = k.split(':').map(Number) as [number, number];
    meta.push({ name: 'thread_name', ph: 'M', ts: 0, pid, tid, args: { name } });
  }
  return { traceEvents: [...meta, ...out], displayTimeUnit: 'ns' };
}
