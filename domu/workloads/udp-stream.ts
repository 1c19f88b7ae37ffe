/*
 * udp-stream and udp-rr: netperf's UDP_STREAM and UDP_RR between two guests, every datagram's
 * payload checked.
 *
 * netperf: UDP_STREAM sends `-m SIZE` datagrams as fast as it can and the receiver counts what
 * arrived (loss = sent − received); UDP_RR sends one request, waits for the response, repeats
 * (transactions per second). The sizes here are UDP payload bytes, 64 to 1472 (1472 + 28 = the
 * 1500-byte MTU); with a jumbo MTU on the vif, larger ones make frames that span pages
 * (scatter-gather on the ring).
 *
 * Payload: [seq u32][FNV-1a of bytes 8.. u32][pattern]. The receiver recomputes the checksum of
 * every datagram, so a byte changed anywhere on the way is counted (`bad`).
 *
 * Where this differs from netperf: the sender keeps at most WINDOW datagrams ahead of what the
 * receiver has acknowledged (an ack every ACK_EVERY sequence numbers, carrying the highest seen);
 * that window (256) fits in what the path holds for a guest (netback's RX_BACKLOG of 256 plus the
 * 256 buffers the guest posted; an e1000's 256 rx descriptors plus its model's backlog of 256), so
 * the stream itself does not overrun the path. Four acks per window: each ack is a packet back and,
 * when the sender sleeps, a notification, so they are kept few (netperf sends none). Loss is still counted from sequence
 * numbers: it is what something else on the path dropped. An ack or the end marker can be lost
 * too, so a sender that has heard nothing for PROBE_MS of guest time (the guest's timer,
 * shared/kernel/time.ts) asks again: a PROBE the receiver answers with an ack, or the end marker
 * again. After MAX_PROBES unanswered it stops and reports what was acknowledged, as netperf's
 * sender ends by its own clock.
 */
import { checksum, fillPattern } from '../../shared/checksum.ts';
import type { NetStack, UdpSocket } from '../net/stack.ts';

export const WINDOW = 256;
export const ACK_EVERY = 64;
const MAGIC_ACK = 0x41434b21;
const MAGIC_FIN = 0x46494e21;
const MAGIC_FINACK = 0x46494e41;
const MAGIC_PROBE = 0x50524f42;
const PROBE_MS = 50;
const MAX_PROBES = 40;
const PATTERNS = 8;

export interface StreamResult {
  role: 'send' | 'recv'; size: number; datagrams: number; received: number; lost: number; bad: number;
  bytes: number; ms: number; pps: number; MBps: number;
}

/**
 * The sender: `count` datagrams of `size` payload bytes to dst:dport, from our port `sport`.
 * `sleep` is the guest's timer (k.timers.sleep): how long to wait before asking again.
 */
export async function udpStreamSend(stack: NetStack, dst: number, dport: number, sport: number, size: number, count: number,
  sleep: (ms: number) => Promise<void>): Promise<StreamResult> {
  if (size < 8) throw new RangeError('udp-stream: datagrams carry an 8-byte header; size must be at least 8');
  const payloads: Uint8Array[] = [];
  for (let i = 0; i < PATTERNS; i++) {
    const p = new Uint8Array(size);
    fillPattern(p.subarray(8), 0x5eed + i);
    new DataView(p.buffer).setUint32(4, checksum(p.subarray(8)));
    payloads.push(p);
  }
  let acked = 0; // highest seq + 1 the receiver has seen
  let finack = -1;
  let wake: (() => void) | null = null;
  /** Acks and end markers heard so far (the probe timer asks whether any came while it ran). */
  let heardCount = 0;
  const sock = stack.udpSocket(sport, (data) => {
    if (data.length < 8) return;
    const magic = u32(data, 0);
    if (magic === MAGIC_ACK) acked = Math.max(acked, u32(data, 4));
    else if (magic === MAGIC_FINACK) finack = u32(data, 4);
    else return;
    heardCount++;
    const w = wake;
    wake = null;
    w?.();
  });
  const heard = () => new Promise<boolean>((r) => { wake = () => r(true); });
  /*
   * One probe timer, re-armed only once it has run out, as a retransmit timer is (Linux's
   * mod_timer on the socket's timer, not a new timer per wait): a sender waiting for acks many
   * times a second would otherwise leave a guest timer behind after each wait, and each of them
   * would wake the vCPU when it expires.
   */
  let timer: Promise<boolean> | null = null;
  let armedAt = 0;
  const probeTimer = (): Promise<boolean> => {
    if (timer === null) {
      armedAt = heardCount;
      timer = sleep(PROBE_MS).then(() => { timer = null; return false; });
    }
    return timer;
  };
  /** Wait until `cond`, calling `probe` after each PROBE_MS heard nothing; false if it never came. */
  const until = async (cond: () => boolean, probe: () => Promise<void>): Promise<boolean> => {
    for (let probes = 0; !cond(); ) {
      const got = await Promise.race([heard(), probeTimer()]);
      wake = null;
      // The timer ran out: a probe only if nothing at all was heard since it was armed.
      if (!got && !cond() && heardCount === armedAt) {
        if (++probes > MAX_PROBES) return false;
        await probe();
      }
    }
    return true;
  };
  const control = (magic: number, value: number) => {
    const m = new Uint8Array(8);
    new DataView(m.buffer).setUint32(0, magic);
    new DataView(m.buffer).setUint32(4, value);
    return m;
  };
  try {
    const mac = await stack.resolve(dst);
    const send = async (m: Uint8Array) => { while (!sock.trySend(mac, dst, dport, m)) await stack.txRoom(); };
    const t0 = performance.now();
    for (let seq = 0; seq < count; seq++) {
      if (seq - acked >= WINDOW && !(await until(() => seq - acked < WINDOW, () => send(control(MAGIC_PROBE, seq))))) break;
      const p = payloads[seq % PATTERNS];
      p[0] = seq >>> 24; p[1] = seq >>> 16; p[2] = seq >>> 8; p[3] = seq;
      while (!sock.trySend(mac, dst, dport, p)) await stack.txRoom();
    }
    const fin = control(MAGIC_FIN, count);
    await send(fin);
    await until(() => finack >= 0, () => send(fin));
    const ms = performance.now() - t0;
    return result('send', size, count, finack >= 0 ? finack : Math.min(acked, count), 0, ms);
  } finally {
    sock.close();
  }
}

/** The receiver: on `port`, until the sender's end marker. Replies go to the sender's port. */
export function udpStreamRecv(stack: NetStack, port: number): { ready: UdpSocket; done: Promise<StreamResult> } {
  let received = 0;
  let bad = 0;
  let high = 0;
  let size = 0;
  let t0 = 0;
  let ackedHigh = 0;
  const ack = new Uint8Array(8);
  const ackDv = new DataView(ack.buffer);
  let finish!: (r: StreamResult) => void;
  const done = new Promise<StreamResult>((r) => { finish = r; });
  const sock: UdpSocket = stack.udpSocket(port, (data, src, sport) => {
    if (data.length < 8) return;
    if (data.length === 8 && u32(data, 0) === MAGIC_PROBE) {
      ackDv.setUint32(0, MAGIC_ACK);
      ackDv.setUint32(4, high);
      void sock.sendTo(src, sport, ack.slice());
      return;
    }
    if (data.length === 8 && u32(data, 0) === MAGIC_FIN) {
      const sent = u32(data, 4);
      ackDv.setUint32(0, MAGIC_FINACK);
      ackDv.setUint32(4, received);
      void sock.sendTo(src, sport, ack.slice());
      const ms = received > 0 ? performance.now() - t0 : 0;
      sock.close();
      finish(result('recv', size, sent, received, bad, ms));
      return;
    }
    if (received === 0) t0 = performance.now();
    received++;
    size = data.length;
    if (checksum(data.subarray(8)) !== u32(data, 4)) bad++;
    const seq = u32(data, 0);
    if (seq + 1 > high) high = seq + 1;
    if (high - ackedHigh >= ACK_EVERY) {
      ackedHigh = high;
      ackDv.setUint32(0, MAGIC_ACK);
      ackDv.setUint32(4, high);
      void sock.sendTo(src, sport, ack.slice());
    }
  });
  return { ready: sock, done };
}

/** UDP_RR client: `count` request/response round trips of `size` bytes each way. */
export async function udpRrClient(stack: NetStack, dst: number, dport: number, sport: number, size: number, count: number):
  Promise<StreamResult & { rttUs: number }> {
  const req = new Uint8Array(Math.max(8, size));
  fillPattern(req.subarray(8), 0x7272);
  new DataView(req.buffer).setUint32(4, checksum(req.subarray(8)));
  let got: (() => void) | null = null;
  let bad = 0;
  let lastSeq = -1;
  const sock = stack.udpSocket(sport, (data) => {
    if (data.length !== req.length || checksum(data.subarray(8)) !== u32(data, 4)) bad++;
    lastSeq = u32(data, 0);
    const g = got;
    got = null;
    g?.();
  });
  try {
    const mac = await stack.resolve(dst);
    const t0 = performance.now();
    for (let seq = 0; seq < count; seq++) {
      req[0] = seq >>> 24; req[1] = seq >>> 16; req[2] = seq >>> 8; req[3] = seq;
      const answer = new Promise<void>((r) => { got = r; });
      while (!sock.trySend(mac, dst, dport, req)) await stack.txRoom();
      await answer;
      if (lastSeq !== seq) bad++;
    }
    const ms = performance.now() - t0;
    const fin = new Uint8Array(8);
    new DataView(fin.buffer).setUint32(0, MAGIC_FIN);
    await sock.sendTo(dst, dport, fin);
    return { ...result('send', size, count, count, bad, ms), rttUs: (ms * 1000) / Math.max(1, count) };
  } finally {
    sock.close();
  }
}

/** UDP_RR server: echo every request back until the client's end marker. */
export function udpRrServer(stack: NetStack, port: number): { ready: UdpSocket; done: Promise<number> } {
  let n = 0;
  let finish!: (n: number) => void;
  const done = new Promise<number>((r) => { finish = r; });
  let mac: Uint8Array | null = null;
  const sock: UdpSocket = stack.udpSocket(port, (data, src, sport) => {
    if (data.length === 8 && u32(data, 0) === MAGIC_FIN) {
      sock.close();
      finish(n);
      return;
    }
    n++;
    mac ??= stack.arp.lookup(src) ?? null;
    // The asker's ARP request taught us its MAC; echo straight back (one frame in flight each way).
    if (mac === null || !sock.trySend(mac, src, sport, data)) void sock.sendTo(src, sport, data.slice());
  });
  return { ready: sock, done };
}

function result(role: 'send' | 'recv', size: number, datagrams: number, received: number, bad: number, ms: number): StreamResult {
  const bytes = received * size;
  return {
    role, size, datagrams, received, lost: Math.max(0, datagrams - received), bad, bytes, ms,
    pps: ms > 0 ? (received * 1000) / ms : 0, MBps: ms > 0 ? bytes / ms / 1000 : 0,
  };
}

/** A big-endian u32 from a received payload (no DataView per datagram). */
function u32(b: Uint8Array, o: number): number {
  return ((b[o] << 24) | (b[o + 1] << 16) | (b[o + 2] << 8) | b[o + 3]) >>> 0;
}
