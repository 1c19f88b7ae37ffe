// A spare vCPU thread loads at a low priority (hypervisor/thread.ts BACKGROUND_NICE); once a
// domain takes it, the rest of its load is on that domain's critical path, and the host raises
// it to the normal priority at once (foreground), even while the thread is too busy to read a
// message: a migration's target vCPUs came up 0.7-2.3 s after the config on a loaded machine
// while the taken spare went on loading at nice 10.
import test from 'ava';
import os from 'node:os';
import type { Worker } from 'node:worker_threads';
import { foreground, foregroundCell, startThread, threadIdOf, type ForegroundCell } from '../hypervisor/thread.ts';

const BLOCKED = new URL('./fixtures/blocked-thread.mjs', import.meta.url);

/* Whether this process may raise a priority again (root, or RLIMIT_NICE): else nothing is niced. */
function mayRaise(): boolean {
  const normal = os.getPriority(0);
  try {
    os.setPriority(0, normal - 1);
    os.setPriority(0, normal);
    return true;
  } catch {
    return false;
  }
}

async function published(cell: ForegroundCell): Promise<number> {
  for (let i = 0; i < 2000 && threadIdOf(cell) === 0; i++) await new Promise((r) => setTimeout(r, 5)); // waiting for the thread to start
  return threadIdOf(cell);
}

function report(w: Worker): Promise<number> {
  return new Promise((resolve, reject) => {
    w.once('message', (m: { priority: number }) => resolve(m.priority));
    w.once('error', reject);
  });
}

test('a busy background thread called to the foreground runs at the normal priority at once', async (t) => {
  if (!mayRaise()) { t.log('this process may not raise a priority: background threads are not niced here'); t.pass(); return; }
  const normal = os.getPriority(0);
  const gate = new Int32Array(new SharedArrayBuffer(4));
  const cell = foregroundCell();
  const w = startThread(BLOCKED, { gate }, 'blocked', cell);
  try {
    const tid = await published(cell);
    t.not(tid, 0, 'the thread published its id');
    // Its id is published just before it lowers its priority: wait for the lowering.
    for (let i = 0; i < 2000 && os.getPriority(tid) === normal; i++) await new Promise((r) => setTimeout(r, 5));
    t.true(os.getPriority(tid) > normal, 'it loads in the background');
    foreground(cell);
    t.is(os.getPriority(tid), normal, 'raised while it still cannot read a message');
    const got = report(w);
    Atomics.store(gate, 0, 1);
    Atomics.notify(gate, 0);
    t.is(await got, normal, 'and it runs on at the normal priority');
  } finally {
    await w.terminate();
  }
});

test('a background thread called before it has started never stays in the background', async (t) => {
  if (!mayRaise()) { t.log('this process may not raise a priority: background threads are not niced here'); t.pass(); return; }
  const normal = os.getPriority(0);
  const gate = new Int32Array(new SharedArrayBuffer(4));
  const cell = foregroundCell();
  foreground(cell); // no id yet: the thread must raise itself when it looks
  const w = startThread(BLOCKED, { gate }, 'blocked', cell);
  try {
    const got = report(w);
    Atomics.store(gate, 0, 1);
    Atomics.notify(gate, 0);
    t.is(await got, normal);
  } finally {
    await w.terminate();
  }
});
