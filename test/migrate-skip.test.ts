// A precopy round's skip (dom0/toolstack/migration/save-restore.ts, SkipDirty: legacy libxc's
// to_skip): before each batch the sender peeks at the log, and a page already written again is not
// sent in this round (the next one sends it). Checked on the stream the sender writes: which pages
// it holds, with which contents, and the count of those left out. The guest's memory, the foreign
// mappings and the page types are a stand-in for Dom0's kernel (what sendPages calls of it).
import test from 'ava';
import type { Kernel } from '../shared/kernel/kernel.ts';
import { sendPages, type SkipDirty } from '../dom0/toolstack/migration/save-restore.ts';
import { readSaveImage } from '../dom0/toolstack/migration/stream-read.ts';
import { StreamWriter, type SavedConfig } from '../dom0/toolstack/migration/stream-write.ts';
import { PAGE_SIZE } from '../shared/public/xen.ts';

const config: SavedConfig = { name: 'vm1', file: '/tmp/vm1/vm.cfg', text: 'name = "vm1"\n', memoryKiB: 64, vcpus: 1 };

/** Dom0's side of sendPages: holes in its physmap, foreign maps of the guest's gfns, reads of them. */
function fakeDom0(): Kernel {
  const mapped = new Map<number, number>(); // Dom0 hole -> guest gfn
  let nextHole = 1000;
  return {
    pages: { allocHole: () => nextHole++, releaseHole: () => undefined },
    hypercall: {
      domctl_getpageframeinfo3: (_d: number, _g: readonly number[], types: Int32Array, n: number) => { types.fill(0, 0, n); return 0; },
      memory_add_to_physmap_batch: (_s: number, _d: number, idxs: ArrayLike<number>, gpfns: ArrayLike<number>, errs: Int32Array, size: number) => {
        for (let i = 0; i < size; i++) { mapped.set(gpfns[i], idxs[i]); errs[i] = 0; }
        return 0;
      },
      memory_remove_from_physmap: (gpfn: number) => (mapped.delete(gpfn) ? 0 : -22),
    },
    memory: {
      read: (gpa: number, dst: Uint8Array) => { dst.fill(contents(mapped.get(Math.floor(gpa / PAGE_SIZE))!)); },
    },
  } as unknown as Kernel;
}

/** Each guest page holds one byte value, from its gfn. */
const contents = (gfn: number): number => (gfn * 7 + 1) & 0xff;

async function send(gfns: number[], skip?: SkipDirty): Promise<{ sent: number; batches: { gfns: number[]; data: Uint8Array }[] }> {
  const chunks: Uint8Array[] = [];
  const w = new StreamWriter((c, written) => { chunks.push(c.slice()); written(); });
  await w.headers(config);
  await w.libxcBegin();
  const sent = await sendPages(fakeDom0(), 5, w, gfns, 4, skip);
  await w.vcpuContext(0, 3);
  await w.end();
  return { sent, batches: readSaveImage(Buffer.concat(chunks)).batches };
}

test('a page written again before its batch is left for the next round; the others are sent with their contents', async (t) => {
  const dirty = new Int32Array(1);
  let peeks = 0;
  const skip: SkipDirty = {
    skipped: 0,
    peek() {
      peeks++;
      dirty[0] = peeks === 1 ? 1 << 3 : (1 << 3) | (1 << 6); // gfn 6 is written while the first batch goes
      return dirty;
    },
  };
  const r = await send([0, 1, 2, 3, 4, 5, 6, 7, 8, 9], skip);
  t.is(peeks, 2, 'one peek per batch');
  t.is(skip.skipped, 2);
  t.is(r.sent, 8);
  t.deepEqual(r.batches.map((b) => b.gfns), [[0, 1, 2, 4], [5, 7, 8, 9]]);
  for (const b of r.batches) {
    b.gfns.forEach((g, i) => t.true(b.data.subarray(i * PAGE_SIZE, (i + 1) * PAGE_SIZE).every((x) => x === contents(g)), `gfn ${g}'s page`));
  }
});

test('without a skip every page named is sent (the stop-and-copy, a save)', async (t) => {
  const r = await send([0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
  t.is(r.sent, 10);
  t.deepEqual(r.batches.flatMap((b) => b.gfns), [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
});

test('a batch whose pages are all dirty again sends no record at all', async (t) => {
  const skip: SkipDirty = { skipped: 0, peek: () => Int32Array.of(0b1111) };
  const r = await send([0, 1, 2, 3, 4, 5], skip);
  t.is(skip.skipped, 4);
  t.deepEqual(r.batches.map((b) => b.gfns), [[4, 5]]);
});
