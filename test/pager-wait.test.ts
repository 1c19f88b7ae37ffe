// A vCPU short of a frame waits for the pager (hypervisor/mm/pager-wait.ts) until the pager's
// next batch answers, however slow the host is; only the pager's answer ("I freed nothing", or
// stopping) makes it give up. A stand-in pager on another thread answers after a while longer
// than the old 2 s deadline, which is what a loaded CI machine did to the overcommit scenario.
import test from 'ava';
import { Worker } from 'node:worker_threads';
import { MH, MM_PATH_LEN } from '../hypervisor/mm/mm-state.ts';
import { FOREIGN_WAIT_MS, waitForPager } from '../hypervisor/mm/pager-wait.ts';
import type { HypervisorState } from '../hypervisor/state.ts';

/** A pager on its own thread: waits for the vCPU's PRESSURE, then `afterMs` later ends a batch of `freed` frames (or stops). */
function standInPager(mm: Int32Array, afterMs: number, answer: { freed: number } | 'stop'): Worker {
  const code = `
    const { workerData: { mm, afterMs, freed, stop } } = require('node:worker_threads');
    const PRESSURE = ${MH.PRESSURE}, FREED_SEQ = ${MH.FREED_SEQ}, LAST_FREED = ${MH.LAST_FREED}, PAGER_ON = ${MH.PAGER_ON};
    Atomics.wait(mm, PRESSURE, 0);                       // the vCPU asked
    Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, afterMs); // a busy host's batch
    if (stop) Atomics.store(mm, PAGER_ON, 0);
    Atomics.store(mm, LAST_FREED, stop ? 0 : freed);
    Atomics.add(mm, FREED_SEQ, 1);
    Atomics.notify(mm, FREED_SEQ);`;
  return new Worker(code, { eval: true, workerData: { mm, afterMs, freed: answer === 'stop' ? 0 : answer.freed, stop: answer === 'stop' } });
}

function hvWithPager(): { hv: HypervisorState; mm: Int32Array } {
  const mm = new Int32Array(new SharedArrayBuffer(MM_PATH_LEN * 4));
  Atomics.store(mm, MH.PAGER_ON, 1);
  return { hv: { mm } as unknown as HypervisorState, mm };
}

test('a vCPU waits past any deadline for a slow pager, and a batch that freed frames ends the wait with a frame to try', async (t) => {
  const { hv, mm } = hvWithPager();
  const w = standInPager(mm, FOREIGN_WAIT_MS + 1000, { freed: 17 });
  t.true(waitForPager(hv));
  t.is(Atomics.load(mm, MH.PRESSURE), 1, 'the vCPU woke the pager');
  await w.terminate();
});

test('a batch that freed nothing, or the pager stopping, ends the wait: no frame is coming', async (t) => {
  for (const answer of [{ freed: 0 }, 'stop'] as const) {
    const { hv, mm } = hvWithPager();
    const w = standInPager(mm, 50, answer);
    t.false(waitForPager(hv), JSON.stringify(answer));
    await w.terminate();
  }
  const none = { mm: new Int32Array(new SharedArrayBuffer(MM_PATH_LEN * 4)) } as unknown as HypervisorState;
  t.false(waitForPager(none), 'no pager runs: nothing to wait for');
});

test('Dom0\'s foreign mapping waits at most its bound: its thread serves every backend', async (t) => {
  const { hv, mm } = hvWithPager();
  const w = standInPager(mm, FOREIGN_WAIT_MS + 2000, { freed: 3 });
  t.false(waitForPager(hv, 300));
  await w.terminate();
});
