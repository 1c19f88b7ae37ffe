/*
 * udp-probe: a peer that keeps asking a udp-rr server, re-asking when an answer does not come,
 * so it survives the server's guest moving to another host (or being suspended and resumed).
 *
 * What a monitoring client does (a heartbeat over UDP with a timeout, as `ping -i` or a
 * keepalive): one request in flight, [seq u32][FNV-1a of bytes 8.. u32][pattern], the same
 * layout as udp-rr (./udp-stream.ts), so any udp-rr server answers it. A request not answered
 * within `retry` ms of guest time is sent again with the same sequence number; an answer is
 * counted only if its checksum holds and it carries the sequence asked for (a late answer to a
 * request already re-sent is a duplicate, counted apart, never as bad). Each `report` answers a
 * progress line; the longest gap between two answers is the outage the peer saw (a migration's
 * downtime plus the time its switches took to learn where the guest went).
 *
 * With gap=MS, every silence longer than MS is logged as it ends, with the sequence numbers of the
 * answers on either side and their times on the machine's clock (performance.timeOrigin + now,
 * which every ringvisor host on one machine shares, as domu/resume.ts does), so whoever reads the
 * log can tell which silence was a migration's pause: Clark et al.'s downtime, seen by a client.
 *
 *   udp-probe target=IP [port=P] [count=N] [size=BYTES] [retry=MS] [report=N] [gap=MS]
 */
import { checksum, fillPattern } from '../../shared/checksum.ts';
import type { NetStack } from '../net/stack.ts';

export interface ProbeResult {
  requests: number; answered: number; retransmits: number; duplicates: number; bad: number; longestGapMs: number;
}

export async function udpProbe(stack: NetStack, dst: number, dport: number, sport: number,
  opts: { size: number; count: number; retryMs: number; report: number; gapMs?: number }, sleep: (ms: number) => Promise<void>, say: (line: string) => void): Promise<ProbeResult> {
  const req = new Uint8Array(Math.max(8, opts.size));
  fillPattern(req.subarray(8), 0x7072);
  new DataView(req.buffer).setUint32(4, checksum(req.subarray(8)));
  const r: ProbeResult = { requests: 0, answered: 0, retransmits: 0, duplicates: 0, bad: 0, longestGapMs: 0 };
  let want = 0;
  let got: (() => void) | null = null;
  const sock = stack.udpSocket(sport, (data) => {
    if (data.length !== req.length || checksum(data.subarray(8)) !== u32(data, 4)) { r.bad++; return; }
    if (u32(data, 0) !== want || got === null) { r.duplicates++; return; }
    const g = got;
    got = null;
    g();
  });
  try {
    const mac = await stack.resolve(dst);
    let last = performance.now();
    for (let seq = 0; opts.count === 0 || seq < opts.count; seq++) {
      want = seq;
      req[0] = seq >>> 24; req[1] = seq >>> 16; req[2] = seq >>> 8; req[3] = seq;
      const answer = new Promise<boolean>((resolve) => { got = () => resolve(true); });
      for (let tries = 0; ; tries++) {
        if (tries > 0) r.retransmits++;
        r.requests++;
        // The MAC stays the guest's own across a move (the vif keeps it): no new ARP is needed,
        // only the bridges' learning, which the mover's gratuitous ARP refreshes.
        while (!sock.trySend(mac, dst, dport, req)) await stack.txRoom();
        if (await Promise.race([answer, sleep(opts.retryMs).then(() => false)])) break;
      }
      const now = performance.now();
      r.longestGapMs = Math.max(r.longestGapMs, now - last);
      if (opts.gapMs !== undefined && seq > 0 && now - last > opts.gapMs) {
        say(`udp-probe: no answer for ${(now - last).toFixed(1)} ms, between the answers to ${seq - 1} at ` +
          `${(performance.timeOrigin + last).toFixed(1)} and to ${seq} at ${(performance.timeOrigin + now).toFixed(1)} (machine clock, ms); ` +
          `${r.retransmits} re-sent, ${r.bad} bad so far`);
      }
      last = now;
      r.answered++;
      if (opts.report > 0 && r.answered % opts.report === 0) {
        say(`udp-probe: ${r.answered} answered, ${r.retransmits} re-sent, ${r.bad} bad, longest gap ${r.longestGapMs.toFixed(1)} ms`);
      }
    }
    return r;
  } finally {
    sock.close();
  }
}

/** A big-endian u32 from a received payload. */
function u32(b: Uint8Array, o: number): number {
  return ((b[o] << 24) | (b[o + 1] << 16) | (b[o + 2] << 8) | b[o + 3]) >>> 0;
}
