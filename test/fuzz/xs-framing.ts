/*
 * Properties of xs_wire framing (shared/public/io/xs_wire.ts): xenstored's reader of a guest's
 * ring (dom0/services/xenstored/ring-connection.ts, C xenstored's domain.c readchn and core.c
 * handle_input), the guest's xenbus transport (shared/kernel/xenbus/xs-ring.ts, Linux's
 * xenbus_comms.c), and the stream reader both share with the Unix socket (XsMessageReader.feed).
 *
 * Honest traffic: random messages (any type, req_id, tx_id, payloads up to XENSTORE_PAYLOAD_MAX)
 * go from the guest's transport to xenstored's connection and replies come back, over one shared
 * page whose byte rings start at random indices (so messages straddle both the ring's end and the
 * 2^32 wrap), and arrive whole, in order, with their ids echoed. The same messages cut into random
 * chunks come out of the socket reader unchanged.
 *
 * Hostile traffic: a page of random bytes with random indices. xenstored must never throw, never
 * hand on a message longer than XENSTORE_PAYLOAD_MAX, and when it gives up on the ring it says
 * why in the page's `error` field (XENSTORE_ERROR_RINGIDX / _PROTO) and stays given up. The guest,
 * facing a hostile xenstored, must never throw either: it delivers sane messages or closes.
 */
import fc from 'fast-check';
import { encodeMessage, XsMessageReader } from '../../shared/kernel/xenbus/xs-message.ts';
import { XsRingTransport } from '../../shared/kernel/xenbus/xs-ring.ts';
import { ByteRingView } from '../../shared/public/io/byte-ring.ts';
import {
  XENSTORE_ERROR_PROTO, XENSTORE_ERROR_RINGIDX, XENSTORE_PAYLOAD_MAX, XENSTORE_REQ_RING, XENSTORE_RSP_RING, XSD_SOCKMSG_SIZE,
  xenstore_domain_interface as xdi,
} from '../../shared/public/io/xs_wire.ts';
import { RingConnection } from '../../dom0/services/xenstored/ring-connection.ts';
import { DEFAULT_QUOTAS } from '../../dom0/services/xenstored/quota.ts';
import { XenstoredTrace } from '../../dom0/services/xenstored/trace.ts';
import { WatchIndex } from '../../dom0/services/xenstored/watch.ts';
import type { FuzzGroup } from './property.ts';

interface Msg { type: number; req_id: number; tx_id: number; payload: Uint8Array }

const u32 = fc.nat({ max: 0xffffffff });
const payload = fc.oneof(
  { weight: 4, arbitrary: fc.uint8Array({ maxLength: 300 }) },
  { weight: 1, arbitrary: fc.uint8Array({ minLength: 900, maxLength: XENSTORE_PAYLOAD_MAX }) },
  { weight: 1, arbitrary: fc.constantFrom(new Uint8Array(0), new Uint8Array(XENSTORE_PAYLOAD_MAX)) },
);
const message: fc.Arbitrary<Msg> = fc.record({ type: fc.nat(30), req_id: u32, tx_id: u32, payload });
/** Ring indices: anywhere, or just before the 2^32 wrap. */
const index = fc.oneof(u32, fc.nat(3000).map((k) => (2 ** 32 - k) >>> 0));

const newPage = () => new Int32Array(new SharedArrayBuffer(4096));
const owner = () => {
  const log: string[] = [];
  const say = (l: string) => { log.push(l); };
  return { log, owner: { quota: { ...DEFAULT_QUOTAS }, watchIndex: new WatchIndex(), trace: new XenstoredTrace(say), schedule() {}, dropped() {}, log: say } };
};

const same = (a: Uint8Array, b: Uint8Array) => a.length === b.length && a.every((x, i) => x === b[i]);

function setIndices(page: Int32Array, reqAt: number, rspAt: number): void {
  for (const [off, v] of [[xdi.req_cons, reqAt], [xdi.req_prod, reqAt], [xdi.rsp_cons, rspAt], [xdi.rsp_prod, rspAt]] as const) {
    Atomics.store(page, off >> 2, v | 0);
  }
}

/** Guest → xenstored → guest over one page: every request arrives whole, every reply echoes its ids. */
function roundTrip(reqAt: number, rspAt: number, msgs: Msg[], replies: Uint8Array[]): void {
  const page = newPage();
  setIndices(page, reqAt, rspAt);
  const { owner: o } = owner();
  const conn = new RingConnection(1, o, page, () => {}, () => {});
  const guest = new XsRingTransport(page, () => {});
  const got: Msg[] = [];
  guest.onMessage = (type, req_id, tx_id, p) => { got.push({ type, req_id, tx_id, payload: p.slice() }); };
  guest.onClose = (why) => { throw new Error(`the guest closed its transport: ${why}`); };
  for (const m of msgs) guest.send(encodeMessage(m.type, m.req_id, m.tx_id, [m.payload]));
  let received = 0;
  for (let spins = 0; got.length < msgs.length; spins++) {
    if (spins > 100_000) throw new Error(`stuck: ${received} requests in, ${got.length} replies out`);
    for (;;) {
      const r = conn.receive();
      if (r === 'closed') throw new Error(`xenstored gave up on an honest ring: ${conn.ignored}`);
      if (r === 'none') break;
      const want = msgs[received]!;
      const h = conn.reader.header;
      if (h.type !== want.type || h.req_id !== want.req_id || h.tx_id !== want.tx_id || !same(conn.reader.payload(), want.payload)) {
        throw new Error(`request ${received} arrived changed (type ${h.type}, req_id ${h.req_id}, ${h.len} bytes)`);
      }
      conn.reply(want.type, replies[received % replies.length]!);
      conn.reader.reset();
      received++;
    }
    conn.flush();
    guest.interrupt(); // xenstored's notification: take replies, push more requests
  }
  got.forEach((g, i) => {
    const m = msgs[i]!;
    if (g.req_id !== m.req_id || g.tx_id !== m.tx_id || g.type !== m.type || !same(g.payload, replies[i % replies.length]!)) {
      throw new Error(`reply ${i} came back changed`);
    }
  });
}

/** The socket path: a byte stream cut anywhere reassembles into the same messages. */
function chunked(msgs: Msg[], cuts: number[]): void {
  const stream = Buffer.concat(msgs.map((m) => encodeMessage(m.type, m.req_id, m.tx_id, [m.payload])));
  const reader = new XsMessageReader();
  const got: Msg[] = [];
  let off = 0;
  for (let i = 0; off < stream.length; i++) {
    const n = Math.max(1, cuts.length ? cuts[i % cuts.length]! : stream.length);
    const r = reader.feed(stream.subarray(off, off + n), () => {
      const h = reader.header;
      got.push({ type: h.type, req_id: h.req_id, tx_id: h.tx_id, payload: reader.payload().slice() });
    });
    if (r !== 'ok') throw new Error('an honest stream was called oversize');
    off += n;
  }
  if (got.length !== msgs.length || got.some((g, i) => g.req_id !== msgs[i]!.req_id || g.tx_id !== msgs[i]!.tx_id || g.type !== msgs[i]!.type || !same(g.payload, msgs[i]!.payload))) {
    throw new Error(`${msgs.length} messages in, ${got.length} out, or changed`);
  }
  if (!reader.idle) throw new Error('the reader is not idle after whole messages');
}

/**
 * What a hostile peer writes into a byte ring: whole messages whose header announces a length
 * at the edges (0, XENSTORE_PAYLOAD_MAX, one more, 2^32 - 1...), or raw bytes that knock the
 * stream out of step. `bad` marks a header no honest peer sends.
 */
interface Piece { bytes: Uint8Array; kind: 'message' | 'oversize' | 'raw' }
const EDGE_LENGTHS = [0, 1, 4095, XENSTORE_PAYLOAD_MAX, XENSTORE_PAYLOAD_MAX + 1, 5000, 65535, 2 ** 31, 2 ** 32 - 1];
const piece: fc.Arbitrary<Piece> = fc.oneof(
  fc.tuple(fc.oneof(fc.constantFrom(...EDGE_LENGTHS), fc.nat(300)), u32, u32).map(([len, id, tx]): Piece => {
    const body = Math.min(len, XENSTORE_PAYLOAD_MAX);
    const bytes = new Uint8Array(XSD_SOCKMSG_SIZE + body);
    const dv = new DataView(bytes.buffer);
    dv.setUint32(0, 2, true); dv.setUint32(4, id, true); dv.setUint32(8, tx, true); dv.setUint32(12, len, true);
    for (let i = XSD_SOCKMSG_SIZE; i < bytes.length; i++) bytes[i] = (i * 131 + id) & 0xff;
    return { bytes, kind: len > XENSTORE_PAYLOAD_MAX ? 'oversize' : 'message' };
  }),
  fc.uint8Array({ minLength: 1, maxLength: 40 }).map((bytes): Piece => ({ bytes, kind: 'raw' })),
);
/** Now and then, instead of publishing honestly, the peer writes this into its producer index. */
const lies: fc.Arbitrary<(number | null)[]> = fc.oneof(
  fc.constant([] as (number | null)[]),
  fc.array(fc.oneof({ weight: 6, arbitrary: fc.constant(null) }, { weight: 1, arbitrary: fc.oneof(u32, fc.integer({ min: 1025, max: 5000 })) }), { maxLength: 30 }),
);

/** The verdict an honest reader must reach: the first oversize header on a message boundary ends it. */
function expected(pieces: Piece[], lied: boolean): 'oversize' | 'unknown' | 'ok' {
  if (lied) return 'unknown';
  for (const p of pieces) {
    if (p.kind === 'raw') return 'unknown';
    if (p.kind === 'oversize') return 'oversize';
  }
  return 'ok';
}

/**
 * Feeds `pieces` into the ring `ringOf` of a fresh page as a producer would, with the lies
 * applied, calling `serve` after each round; returns whether a lie was told before the end.
 */
function feed(at: number, pieces: Piece[], lieList: (number | null)[], ring: 'req' | 'rsp', serve: (page: Int32Array) => boolean): boolean {
  const page = newPage();
  setIndices(page, at, at);
  const bytes = new Uint8Array(page.buffer);
  const writer = new ByteRingView(bytes, page, ring === 'req' ? XENSTORE_REQ_RING : XENSTORE_RSP_RING);
  const stream = Buffer.concat(pieces.map((p) => p.bytes));
  const prodWord = (ring === 'req' ? xdi.req_prod : xdi.rsp_prod) >> 2;
  let off = 0;
  let lied = false;
  for (let round = 0; round < 400; round++) {
    const lie = lieList[round] ?? null;
    if (lie !== null) {
      Atomics.store(page, prodWord, (lie > 5000 ? lie : Atomics.load(page, prodWord) + lie) | 0);
      lied = true;
    } else if (off < stream.length) {
      const n = writer.write(stream, off, stream.length - off);
      if (n < 0) return lied; // the indices are broken (by a lie): nothing more to say
      off += n;
    }
    if (!serve(page)) return lied;
    if (off === stream.length && round >= lieList.length) break;
  }
  return lied;
}

/** A hostile guest: xenstored never throws, never passes on an oversize message, says why it stops. */
function hostileGuest(at: number, pieces: Piece[], lieList: (number | null)[]): void {
  let conn: RingConnection | null = null;
  let closedBy = 0;
  let messages = 0;
  const lied = feed(at, pieces, lieList, 'req', (page) => {
    conn ??= new RingConnection(1, owner().owner, page, () => {}, () => {});
    if (closedBy !== 0) { if (conn.receive() !== 'closed') throw new Error('a ring xenstored gave up on was read again'); return false; }
    conn.interrupt();
    for (let i = 0; i < 64; i++) {
      const r = conn.receive();
      if (r === 'none') return true;
      if (r === 'closed') {
        closedBy = Atomics.load(page, xdi.error >> 2);
        if (closedBy !== XENSTORE_ERROR_RINGIDX && closedBy !== XENSTORE_ERROR_PROTO) throw new Error(`ignored without a reason in the page (error ${closedBy})`);
        if (conn.ignored === null) throw new Error('closed but not ignored');
        return true;
      }
      const h = conn.reader.header;
      if (h.len > XENSTORE_PAYLOAD_MAX || conn.reader.payload().length !== h.len) throw new Error(`a ${h.len}-byte message was passed on`);
      messages++;
      conn.reader.reset();
    }
    return true;
  });
  const want = expected(pieces, lied);
  if (want === 'oversize' && closedBy !== XENSTORE_ERROR_PROTO) throw new Error(`an oversize header on a message boundary: error ${closedBy}, ${messages} messages taken`);
  if (want === 'ok' && (closedBy !== 0 || messages !== pieces.length)) throw new Error(`honest pieces: ${messages} of ${pieces.length} messages, error ${closedBy}`);
}

/** A hostile xenstored: the guest's transport never throws, and closes rather than pass on nonsense. */
function hostileXenstored(at: number, pieces: Piece[], lieList: (number | null)[]): void {
  let guest: XsRingTransport | null = null;
  let closed = false;
  let messages = 0;
  const lied = feed(at, pieces, lieList, 'rsp', (page) => {
    if (guest === null) {
      guest = new XsRingTransport(page, () => {});
      guest.onMessage = (_t, _r, _x, p) => {
        if (closed) throw new Error('a message after the transport closed');
        if (p.length > XENSTORE_PAYLOAD_MAX) throw new Error(`a ${p.length}-byte reply was passed on`);
        messages++;
      };
      guest.onClose = () => { closed = true; };
    }
    guest.interrupt();
    return !closed;
  });
  const want = expected(pieces, lied);
  if (want === 'oversize' && !closed) throw new Error('an oversize reply header on a message boundary did not close the transport');
  if (want === 'ok' && (closed || messages !== pieces.length)) throw new Error(`honest replies: ${messages} of ${pieces.length}, closed ${closed}`);
}

export const xsFramingProperties: FuzzGroup = {
  name: 'xs_wire framing',
  properties: [
    {
      name: 'xs_wire over a ring page: requests arrive whole and in order, replies echo req_id and tx_id, across the wrap',
      ciRuns: 60,
      property: () => fc.property(index, index, fc.array(message, { minLength: 1, maxLength: 12 }), fc.array(payload, { minLength: 1, maxLength: 4 }), roundTrip),
    },
    {
      name: 'xs_wire over a byte stream cut anywhere (the socket reader): the same messages come out',
      ciRuns: 200,
      property: () => fc.property(fc.array(message, { minLength: 1, maxLength: 8 }), fc.array(fc.integer({ min: 1, max: 5000 }), { maxLength: 20 }), chunked),
    },
    {
      name: 'a hostile guest\'s xenstore ring: xenstored never throws, never passes an oversize message, and says why it stops',
      ciRuns: 400,
      property: () => fc.property(index, fc.array(piece, { minLength: 1, maxLength: 12 }), lies, hostileGuest),
    },
    {
      name: 'a hostile xenstored: the guest\'s xenbus transport never throws and closes rather than pass on nonsense',
      ciRuns: 400,
      property: () => fc.property(index, fc.array(piece, { minLength: 1, maxLength: 12 }), lies, hostileXenstored),
    },
  ],
};
