// The save stream (dom0/toolstack/migration/stream-*.ts over shared/public/migration-stream.ts):
// what the writer writes the reader reads back page for page; a truncated, corrupt, foreign or
// newer file is refused with the reason; an unknown optional record is skipped, a mandatory one is not.
import test from 'ava';
import { createHash } from 'node:crypto';
import { readSaveImage, SaveFileError } from '../dom0/toolstack/migration/stream-read.ts';
import { StreamWriter, type SavedConfig } from '../dom0/toolstack/migration/stream-write.ts';
import { PAGE_SIZE } from '../shared/public/xen.ts';

const config: SavedConfig = { name: 'vm1', file: '/tmp/vm1/vm.cfg', text: 'name = "vm1"\n', memoryKiB: 8192, vcpus: 1 };

async function image(pages: number, extra?: (w: StreamWriter) => Promise<void>): Promise<{ bytes: Uint8Array; sum: string; gfns: number[] }> {
  const chunks: Uint8Array[] = [];
  const w = new StreamWriter((c) => { chunks.push(c.slice()); });
  await w.headers(config);
  await w.libxcBegin();
  const hash = createHash('sha256');
  const gfns: number[] = [];
  for (let first = 0; first < pages; first += 1024) {
    const batch = Array.from({ length: Math.min(1024, pages - first) }, (_, i) => (first + i) * 3); // not contiguous
    const data = new Uint8Array(batch.length * PAGE_SIZE);
    batch.forEach((g, i) => data.fill(g & 0xff, i * PAGE_SIZE, i * PAGE_SIZE + 16).fill(7, i * PAGE_SIZE + 16, (i + 1) * PAGE_SIZE));
    hash.update(data);
    gfns.push(...batch);
    await w.pageData(batch, data);
  }
  if (extra) await extra(w);
  await w.sharedInfo(new Uint8Array(PAGE_SIZE));
  await w.vcpuContext(0, 1234);
  await w.end();
  const bytes = new Uint8Array(Buffer.concat(chunks)); // a plain copy: Buffer.slice would share
  if (bytes.length !== w.bytesWritten) throw new Error('bytesWritten is wrong');
  return { bytes, sum: hash.digest('hex'), gfns };
}

test('a stream reads back as written: the config, every page in its batch, the vCPU context', async (t) => {
  const { bytes, sum, gfns } = await image(2500);
  const img = readSaveImage(bytes);
  t.deepEqual(img.config, config);
  t.is(img.pages, 2500);
  t.deepEqual(img.batches.map((b) => b.gfns.length), [1024, 1024, 452], 'batches of at most MAX_BATCH_SIZE');
  t.deepEqual(img.batches.flatMap((b) => b.gfns), gfns);
  const hash = createHash('sha256');
  for (const b of img.batches) hash.update(b.data);
  t.is(hash.digest('hex'), sum, 'the page contents, checksummed');
  t.deepEqual(img.vcpus, [{ vcpu: 0, resume_gfn: 1234 }]);
  t.is(img.sharedInfo?.length, PAGE_SIZE);
  t.is(new TextDecoder().decode(bytes.subarray(0, 27)), 'Xen saved domain, xl format', 'xl\'s magic');
});

test('a truncated file is refused with where it ends, at any length', async (t) => {
  const { bytes } = await image(3);
  for (const len of [0, 10, 47, 60, 200, 300, bytes.length - 4100, bytes.length - 8, bytes.length - 1]) {
    const e = t.throws(() => readSaveImage(bytes.subarray(0, len)), { instanceOf: SaveFileError });
    t.regex(e!.message, /truncated|no config|expected/, `at ${len}: ${e!.message}`);
  }
});

test('foreign, corrupt and newer files are refused with the reason', async (t) => {
  const { bytes } = await image(2);
  const broken = (f: (b: Uint8Array, dv: DataView) => void) => {
    const b = bytes.slice();
    f(b, new DataView(b.buffer));
    return () => readSaveImage(b);
  };
  t.throws(broken((b) => { b[0] = 0x41; }), { message: /wrong magic/ });
  t.throws(broken((_, dv) => dv.setUint32(32, 0x04030201, true)), { message: /other byte order/ });
  t.throws(broken((_, dv) => dv.setUint32(36, 0x10 | 3, true)), { message: /unknown mandatory flags 0x10/ });
  const optLen = new DataView(bytes.buffer, bytes.byteOffset).getUint32(44, true);
  const libxl = 48 + optLen;
  t.throws(broken((_, dv) => dv.setUint32(libxl + 8, 3, false)), { message: /libxl stream version 3, expected 2/ });
  const libxc = libxl + 16 + 8;
  t.throws(broken((_, dv) => dv.setUint32(libxc + 12, 2, false)), { message: /libxc stream version 2, expected 3/ });
  t.throws(broken((_, dv) => dv.setUint32(libxc + 24, 2, false)), { message: /domain type 2/ });
  t.throws(broken((b) => { b[53] = 0x7b; /* "{{" */ }), { message: /not valid JSON/ });
});

test('an unknown optional record is skipped; an unknown mandatory one fails the restore', async (t) => {
  const rec = (type: number) => async (w: StreamWriter) => {
    // A record this reader does not know, written through the same framing.
    await (w as unknown as { record(type: number, body: Uint8Array): Promise<void> }).record(type, new Uint8Array([1, 2, 3]));
  };
  const opt = await image(1, rec(0x80000042));
  t.is(readSaveImage(opt.bytes).pages, 1);
  const mand = await image(1, rec(0x42));
  t.throws(() => readSaveImage(mand.bytes), { message: /unknown mandatory record type 0x42/ });
});
