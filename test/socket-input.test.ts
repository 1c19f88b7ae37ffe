/*
 * The migration receiver's socket reader (dom0/toolstack/migration/socket-input.ts): pieces of
 * any size come out byte for byte whatever the chunks the socket delivered (checksums), a peek
 * takes nothing, and a piece larger than what is queued while the socket is paused at its high
 * water mark is still read (the socket flows again), instead of waiting forever.
 */
import test from 'ava';
import { createHash } from 'node:crypto';
import { createServer, connect, type Socket } from 'node:net';
import { HIGH_WATER, SocketInput } from '../dom0/toolstack/migration/socket-input.ts';

/** A connected pair on loopback: what `send` writes, `input` reads. */
async function pair(): Promise<{ input: SocketInput; writer: Socket; reader: Socket; close(): void }> {
  let accepted!: (s: Socket) => void;
  const got = new Promise<Socket>((r) => { accepted = r; });
  const server = createServer(accepted);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const writer = connect((server.address() as { port: number }).port, '127.0.0.1');
  const reader = await got;
  server.close();
  return { input: new SocketInput(reader), writer, reader, close: () => { writer.destroy(); reader.destroy(); } };
}

function pattern(n: number, seed: number): Uint8Array {
  const b = new Uint8Array(n);
  let x = seed;
  for (let i = 0; i < n; i++) { x = (Math.imul(x, 1103515245) + 12345) | 0; b[i] = x >>> 24; }
  return b;
}

const sha = (b: Uint8Array) => createHash('sha256').update(b).digest('hex');

test('pieces of odd sizes come out as written, across chunk boundaries; peek takes nothing', async (t) => {
  const { input, writer, close } = await pair();
  const data = pattern(3 * 1048576 + 12345, 7);
  for (let at = 0; at < data.length; at += 70001) writer.write(data.subarray(at, Math.min(data.length, at + 70001)));
  const out = new Uint8Array(data.length);
  let at = 0;
  for (const n of [8, 1, 4096 * 3 + 5, 65536, 1048576 + 3]) {
    const peeked = (await input.peek(8)).slice();
    t.deepEqual(peeked, data.subarray(at, at + 8), 'peek shows the next bytes');
    out.set(await input.take(n), at);
    at += n;
  }
  out.set(await input.take(data.length - at), at);
  t.is(input.consumed, data.length);
  t.is(sha(out), sha(data));
  close();
});

test('a piece larger than what is queued is read even when the socket was paused at its high water mark', async (t) => {
  const { input, writer, reader, close } = await pair();
  // Enough to pass the high water mark (8 MiB) while nothing reads, then pieces just over half of
  // it: after each, what is queued can stay above the resume threshold and below the next piece.
  const data = pattern(24 * 1048576, 11);
  writer.write(data);
  while (!reader.isPaused()) await new Promise((r) => reader.once('data', r)); // until the reader pauses it
  t.true(reader.isPaused(), 'the socket was paused at the high water mark');
  // Take all but just over half the high water mark: the socket stays paused (it resumes below
  // half); then ask for one byte more than is queued.
  const out = new Uint8Array(data.length);
  let at = 0;
  const first = input.queuedBytes - (HIGH_WATER / 2 + 1000);
  out.set(await input.take(first), at);
  at += first;
  t.true(reader.isPaused(), 'still paused');
  const more = input.queuedBytes + 1;
  out.set(await input.take(more), at);
  at += more;
  out.set(await input.take(data.length - at), at);
  t.is(sha(out), sha(data), 'every byte, in order');
  close();
});

test('stream() hands the bytes over piece by piece as they come, each at its offset, with no copy, then take() goes on after them', async (t) => {
  const { input, writer, close } = await pair();
  const data = pattern(2 * 1048576 + 777, 13);
  const n = 1048576 + 4096 * 7 + 3; // ends inside a chunk
  // Written in two parts with a pause between, so that stream() has to wait for the second.
  writer.write(data.subarray(0, 300001));
  const out = new Uint8Array(n);
  let next = 0;
  let pieces = 0;
  const streamed = input.stream(n, 'the test', (piece, at) => {
    t.is(at, next, 'pieces come in order, each where the last ended');
    out.set(piece, at);
    next = at + piece.length;
    pieces++;
  });
  while (next === 0) await new Promise((r) => setTimeout(r, 5)); // until the first part has been handed over
  t.true(next < n, `the first ${next} bytes were used before the rest was even sent`);
  writer.write(data.subarray(300001));
  await streamed;
  t.is(next, n);
  t.true(pieces > 1, `${pieces} pieces`);
  t.is(sha(out), sha(data.subarray(0, n)));
  t.is(sha(await input.take(data.length - n)), sha(data.subarray(n)), 'what follows is where it should be');
  t.is(input.consumed, data.length);
  close();
});
