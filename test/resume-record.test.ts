// The resume record's vifs word (domu/resume.ts): the PV vifs a suspended kernel had, kept in guest
// memory as Linux keeps its xenbus devices in kernel memory, so the resumed kernel probes them at
// once (shared/kernel/xenbus/frontend.ts registerFrontend's `present`). A record that does not say
// (0 there: written before the word existed) means "probe as at boot".
import test from 'ava';
import type { Kernel } from '../shared/kernel/kernel.ts';
import { R, RESUME_MAGIC, RESUME_VERSION, ResumeRecord, VIFS_MAX_DEVID } from '../domu/resume.ts';

/** A kernel whose memory is one plain buffer: all the record touches. */
function kernelOver(bytes: Uint8Array): Kernel {
  return {
    memory: {
      read: (addr: number, into: Uint8Array) => into.set(bytes.subarray(addr, addr + into.length)),
      write: (addr: number, from: Uint8Array) => bytes.set(from, addr),
    },
  } as unknown as Kernel;
}

test('the vifs a kernel had come back from its record page, and an older record says nothing', (t) => {
  const mem = new Uint8Array(4 * 4096);
  const k = kernelOver(mem);
  const rec = new ResumeRecord(k, 2);
  rec.words[R.MAGIC] = RESUME_MAGIC;
  rec.words[R.VERSION] = RESUME_VERSION;
  t.is(rec.vifs(), null, 'a record without the word (0): unknown, not "no vifs"');
  rec.saveVifs([]);
  rec.store();
  t.deepEqual(new ResumeRecord(k, 2).load().vifs(), [], 'a kernel that had none says so');
  rec.saveVifs([3, 0, VIFS_MAX_DEVID, VIFS_MAX_DEVID + 1, -1, 1.5]);
  rec.store();
  const back = new ResumeRecord(k, 2).load();
  t.true(back.valid);
  t.deepEqual(back.vifs(), [0, 3, VIFS_MAX_DEVID], 'in order; a devid the word cannot hold is left to the listing');
  t.is(back.words[R.WORKLOAD_STATE], 0, 'the workload\'s words are untouched');
});
