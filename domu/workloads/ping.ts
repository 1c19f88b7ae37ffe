/*
 * ping: ICMP echo requests to one address, each reply checked and timed.
 *
 * Linux: iputils ping (ICMP_ECHO with an id, a sequence number and 56 bytes of data; the reply
 * must carry the same id, sequence and data). ringvisor's guests have no timers yet (VIRQ_TIMER
 * comes with the scheduler), so there is no `-i` interval and no timeout: each request goes as soon
 * as the previous reply is in (iputils' adaptive mode, `ping -A`). The first request waits for
 * ARP, as on Linux; its time is counted apart from the RTTs.
 */
import { checksum, fillPattern } from '../../shared/checksum.ts';
import { ICMP_ECHO_REQUEST, formatIPv4 } from '../../shared/public/net/inet.ts';
import type { NetStack } from '../net/stack.ts';

export interface PingJob { target: number; count: number; size?: number; id?: number }
export interface PingResult {
  target: string; sent: number; received: number; badReplies: number;
  arpMs: number; rttMs: { min: number; avg: number; max: number; median: number }; ms: number;
}

export async function runPing(stack: NetStack, job: PingJob, say?: (line: string) => void): Promise<PingResult> {
  const size = job.size ?? 56;
  const id = job.id ?? 0x7276;
  const data = new Uint8Array(size);
  fillPattern(data, 0x70696e67);
  const want = checksum(data);
  const t0 = performance.now();
  const mac = await stack.resolve(job.target);
  const arpMs = performance.now() - t0;
  const rtts: number[] = [];
  let bad = 0;
  let waiting: ((ok: boolean) => void) | null = null;
  let seq = 0;
  const off = stack.onEchoReply((rid, rseq, rdata, src) => {
    if (rid !== id || src !== job.target || waiting === null) return;
    const ok = rseq === seq && rdata.length === size && checksum(rdata) === want;
    const w = waiting;
    waiting = null;
    w(ok);
  });
  const start = performance.now();
  try {
    for (seq = 1; seq <= job.count; seq++) {
      const got = new Promise<boolean>((r) => { waiting = r; });
      const t = performance.now();
      while (!stack.sendEcho(ICMP_ECHO_REQUEST, mac, job.target, id, seq, data)) await stack.txRoom();
      const ok = await got;
      const rtt = performance.now() - t;
      if (!ok) bad++;
      rtts.push(rtt);
      say?.(`${size + 8} bytes from ${formatIPv4(job.target)}: icmp_seq=${seq} ttl=64 time=${rtt.toFixed(3)} ms${ok ? '' : ' (BAD REPLY)'}`);
    }
  } finally {
    off();
  }
  const ms = performance.now() - start;
  const sorted = [...rtts].sort((a, b) => a - b);
  const sum = rtts.reduce((a, b) => a + b, 0);
  return {
    target: formatIPv4(job.target), sent: job.count, received: rtts.length, badReplies: bad, arpMs, ms,
    rttMs: {
      min: sorted[0] ?? 0, max: sorted[sorted.length - 1] ?? 0, avg: rtts.length ? sum / rtts.length : 0,
      median: sorted[Math.floor(sorted.length / 2)] ?? 0,
    },
  };
}
