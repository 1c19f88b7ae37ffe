/*
 * The toolstack's `trace` request: record for a while through XEN_SYSCTL_tbuf_op and write the
 * records as Trace Event JSON to the file the administrator named.
 *
 * Xen: tools/xentrace/xentrace.c run in Dom0: set the event mask, enable, poll every buffer
 * until told to stop, disable, and write the file itself. Runs on Dom0's vCPU with Dom0's
 * privileged hypercalls. Dom0 writes the file, as xentrace does, rather than sending records back
 * over the control socket: a few seconds of a busy host is tens of megabytes, far over a control
 * message (protocol.ts MAX_FRAME), and the CLI and the host share the machine's files.
 */
import type { Hypercalls } from '../../shared/public/hypercall.ts';
import type { TraceRecord } from '../../shared/public/trace.ts';
import { errnoName } from '../../shared/public/xen.ts';
import { writeFileSync } from 'node:fs';
import { isAbsolute } from 'node:path';
import { toTraceEvents } from '../lib/trace-json.ts';

/**
 * How often the buffers are drained (as tools/trace/record.ts's): a busy PV disk writes some
 * 10 records per request, so a slot's 8192 records last about 10 ms at 80k requests per second.
 */
const DRAIN_MS = 10;

export async function traceFor(hc: Hypercalls, mask: number, seconds: number): Promise<TraceRecord[]> {
  const out: TraceRecord[] = [];
  const check = (rc: number, what: string) => { if (rc < 0) throw new Error(`${what}: ${errnoName(rc)}`); };
  check(hc.sysctl_tbuf_drain([]), 'tbuf_op drain');
  check(hc.sysctl_tbuf_set_evt_mask(mask), 'tbuf_op set_evt_mask');
  const until = Date.now() + Math.min(Math.max(seconds, 0), 600) * 1000;
  try {
    while (Date.now() < until) {
      await new Promise((r) => setTimeout(r, DRAIN_MS)); // xentrace -s
      check(hc.sysctl_tbuf_drain(out), 'tbuf_op drain');
    }
  } finally {
    hc.sysctl_tbuf_set_evt_mask(0);
  }
  check(hc.sysctl_tbuf_drain(out), 'tbuf_op drain');
  return out;
}

/** Record, then write `path` (absolute: the CLI resolves it). Returns the number of records. */
export async function traceToFile(hc: Hypercalls, mask: number, seconds: number, path: string): Promise<number> {
  if (typeof path !== 'string' || !isAbsolute(path)) throw new Error(`trace: "${String(path)}" is not an absolute path`);
  const recs = await traceFor(hc, mask, seconds);
  writeFileSync(path, JSON.stringify(toTraceEvents(recs)));
  return recs.length;
}
