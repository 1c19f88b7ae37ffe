/*
 * Recording a trace in the host's own process (`npm start -- NAME --trace FILE`): set the enabled
 * classes, drain every vCPU's buffer as it fills, and at the end write Trace Event JSON.
 *
 * Xen: xentrace run beside the workload (tools/xentrace/xentrace.c: enable, poll the buffers
 * every -s ms, disable). Against a running `ringvisor host`, `ringvisor trace` does the same
 * through Dom0's XEN_SYSCTL_tbuf_op (dom0/toolstack/trace.ts).
 */
import { writeFileSync } from 'node:fs';
import { MAX_DOMAINS, MAX_VCPUS } from '../../hypervisor/state.ts';
import { drainTrace, setTraceMask, traceBuffer } from '../../hypervisor/trace.ts';
import { TRACE_CLASSES, TRC_ALL, TRC_CLS_MASK, TRC_LOST_RECORDS, type TraceRecord } from '../../shared/public/trace.ts';
import { toTraceEvents } from '../../dom0/lib/trace-json.ts';

/**
 * How often the buffers are drained (xentrace -s; its default is 100 ms, with bigger buffers). A
 * busy PV disk writes some 10 records per request over two slots (the guest's vCPU, Dom0's): at
 * 20 ms the 4096-record slots overflowed at ~50k requests/s (the trace bench counted 5 lost per
 * request, loaded machine); 8192 records drained every 10 ms lost none at that rate.
 */
export const DRAIN_MS = 10;

/** `-e` as xentrace takes it: a number (0x0008f000) or class names joined by commas (hvm,mem). */
export function parseClasses(spec: string | undefined): number {
  if (spec === undefined || spec === '') return TRC_ALL;
  if (/^(0x[0-9a-f]+|\d+)$/i.test(spec)) return Number(spec) & TRC_ALL;
  let mask = 0;
  for (const name of spec.split(',')) {
    const c = TRACE_CLASSES[name.trim().toLowerCase()];
    if (c === undefined) throw new Error(`unknown trace class "${name}" (known: ${Object.keys(TRACE_CLASSES).join(', ')}, or a number)`);
    mask |= c;
  }
  return mask;
}

/*
 * Recordings may overlap (the tour records its own while `--trace` records the whole run): one
 * drain serves them all, each gets what was written while it was on, and the mask is the union.
 */
const active = new Set<TraceRecording>();
let timer: NodeJS.Timeout | null = null;
const buf = () => traceBuffer(MAX_DOMAINS * MAX_VCPUS);
const scratch: TraceRecord[] = [];

function drainAll(): void {
  drainTrace(buf(), scratch);
  for (const r of active) for (const rec of scratch) if ((rec.event & r.mask & TRC_CLS_MASK) !== 0 || rec.event === TRC_LOST_RECORDS) r.records.push(rec);
  scratch.length = 0;
}

function applyMask(): void {
  let mask = 0;
  for (const r of active) mask |= r.mask;
  setTraceMask(buf(), mask);
  if (mask !== 0 && timer === null) timer = setInterval(drainAll, DRAIN_MS);
  if (mask === 0 && timer !== null) { clearInterval(timer); timer = null; }
}

export class TraceRecording {
  readonly records: TraceRecord[] = [];
  #on = true;

  constructor(readonly mask: number) {
    drainAll(); // what was written before this recording began is not its own
    active.add(this);
    applyMask();
  }

  stop(): TraceRecord[] {
    if (!this.#on) return this.records;
    this.#on = false;
    drainAll();
    active.delete(this);
    applyMask();
    return this.records;
  }

  /** Stop and write the JSON file; returns the number of records. */
  writeJson(path: string): number {
    const recs = this.stop();
    writeFileSync(path, JSON.stringify(toTraceEvents(recs)));
    return recs.length;
  }
}
