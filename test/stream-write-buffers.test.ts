// The saver's record buffers (dom0/toolstack/migration/stream-write.ts) behind a sink that, like a
// socket, takes a small chunk at once but gives its buffer back only on a later tick, and makes the
// writer wait ('drain') after a large one: batches with no contents (holes, PoD entries) must not
// each cost a full-size PAGE_DATA buffer, and what was written reads back, page for page.
import test from 'ava';
import { createHash } from 'node:crypto';
import { readSaveImage } from '../dom0/toolstack/migration/stream-read.ts';
import { StreamWriter, type SavedConfig, type Sink } from '../dom0/toolstack/migration/stream-write.ts';
import { XEN_DOMCTL_PFINFO_NOTAB, XEN_DOMCTL_PFINFO_XALLOC, XEN_DOMCTL_PFINFO_XTAB } from '../shared/public/migration-stream.ts';
import { PAGE_SIZE } from '../shared/public/xen.ts';

const config: SavedConfig = { name: 'vm1', file: '/tmp/vm1/vm.cfg', text: 'name = "vm1"\n', memoryKiB: 65536 * 4, vcpus: 1 };

/* node's Writable with its 16 KiB high-water mark: the callback a tick later; over the mark, a wait for 'drain'. */
function socketLike(chunks: Uint8Array[]): Sink {
  return (chunk, written) => {
    chunks.push(chunk.slice());
    if (chunk.length < 16 * 1024) { setImmediate(written); return; }
    return new Promise<void>((resolve) => setImmediate(() => { resolve(); written(); }));
  };
}

test('batches without contents take no full-size buffer; batches with pages reuse one; all of it reads back', async (t) => {
  const chunks: Uint8Array[] = [];
  const w = new StreamWriter(socketLike(chunks));
  await w.headers(config);
  await w.libxcBegin();
  const types = new Int32Array(1024);
  for (let b = 0; b < 48; b++) { // 48 Ki pages never touched or ballooned out: named, no contents
    types.fill(b % 2 === 0 ? XEN_DOMCTL_PFINFO_XALLOC : XEN_DOMCTL_PFINFO_XTAB);
    await w.pageData(Array.from({ length: 1024 }, (_, i) => b * 1024 + i), new Uint8Array(0), types);
  }
  t.is(w.recordBuffers, 0, 'no 4 MiB buffer for a record of 8 KiB');
  const hash = createHash('sha256');
  for (let b = 0; b < 8; b++) { // then pages with contents, a stop-and-copy's batches
    const gfns = Array.from({ length: 256 }, (_, i) => 49152 + b * 256 + i);
    const data = new Uint8Array(256 * PAGE_SIZE);
    for (let i = 0; i < data.length; i += 64) data[i] = (b * 31 + i / 64) & 0xff;
    hash.update(data);
    types.fill(XEN_DOMCTL_PFINFO_NOTAB);
    await w.pageData(gfns, (out) => out.set(data), types);
  }
  t.true(w.recordBuffers <= 2, `full-size buffers reused: ${w.recordBuffers} made for 8 records`);
  await w.vcpuContext(0, 7);
  await w.end();
  await new Promise((r) => setImmediate(r));
  const img = readSaveImage(new Uint8Array(Buffer.concat(chunks)));
  t.is(img.batches.length, 56);
  t.is(img.batches.reduce((s, b) => s + b.holes.length, 0), 24 * 1024);
  t.is(img.batches.reduce((s, b) => s + b.pod.length, 0), 24 * 1024);
  const got = createHash('sha256');
  for (const b of img.batches) if (b.gfns.length > 0) got.update(b.data);
  t.is(got.digest('hex'), hash.digest('hex'), 'the pages\' contents, checksummed');
  t.is(img.pages, 8 * 256);
});
