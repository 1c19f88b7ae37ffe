/*
 * The toolstack's `trace` request: record for a while through XEN_SYSCTL_tbuf_op and hand the
 * records back (the CLI writes them as Trace Event JSON).
 *
 * Xen: tools/xentrace/xentrace.c run in Dom0: set the event mask, enable, poll every buffer
 * until told to stop, disable. Runs on Dom0's vCPU with Dom0's privileged hypercalls.
 */
import type { Hypercalls } from '../../shared/public/hypercall.ts';
import type { TraceRecord } from '../../shared/public/trace.ts';
import { errnoName } from '../../shared/public/xen.ts';

export async function traceFor(hc: Hypercalls, mask: number, seconds: number): Promise<TraceRecord[]> {
  const out: TraceRecord[] = [];
  const check = (rc: number, what: string) => { if (rc < 0) throw new Error(`${what}: ${errnoName(rc)}`); };
  check(hc.sysctl_tbuf_drain([]), 'tbuf_op drain');
  check(hc.sysctl_tbuf_set_evt_mask(mask), 'tbuf_op set_evt_mask');
  const until = Date.now() + Math.min(Math.max(seconds, 0), 600) * 1000;
  try {
    while (Date.now() < until) {
      await new Promise((r) => setTimeout(r, 20));
      check(hc.sysctl_tbuf_drain(out), 'tbuf_op drain');
    }
  } finally {
    hc.sysctl_tbuf_set_evt_mask(0);
  }
  check(hc.sysctl_tbuf_drain(out), 'tbuf_op drain');
  return out;
}
