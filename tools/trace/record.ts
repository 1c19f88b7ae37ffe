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
import { TRACE_CLASSES, TRC_ALL, type TraceRecord } from '../../shared/public/trace.ts';
import { toTraceEvents } from '../../dom0/lib/trace-json.ts';

/** How often the buffers are drained (xentrace -s; its default is 100 ms). */
export const DRAIN_MS = 20;

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

export class TraceRecording {
  readonly records: TraceRecord[] = [];
  readonly #buf = traceBuffer(MAX_DOMAINS * MAX_VCPUS);
  readonly #timer: NodeJS.Timeout;

  constructor(mask: number) {
    drainTrace(this.#buf, []); // what an earlier run left
    setTraceMask(this.#buf, mask);
    this.#timer = setInterval(() => drainTrace(this.#buf, this.records), DRAIN_MS);
  }

  stop(): TraceRecord[] {
    clearInterval(this.#timer);
    setTraceMask(this.#buf, 0);
    drainTrace(this.#buf, this.records);
    return this.records;
  }

  /** Stop and write the JSON file; returns the number of records. */
  writeJson(path: string): number {
    const recs = this.stop();
    writeFileSync(path, JSON.stringify(toTraceEvents(recs)));
    return recs.length;
  }
}
