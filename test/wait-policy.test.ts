// The waiting policy (shared/wait.ts): the spin primitive, the command-line word, and a whole
// host run under each policy, where every kernel reports the policy it took and data still
// moves, checked byte by byte, on the PV path and on the emulated one. No timing is asserted.
import test from 'ava';
import { closeSync, ftruncateSync, openSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomUUID } from 'node:crypto';
import { BlockHost, type GuestOutcome } from '../scenarios/block/harness.ts';
import type { VerifyResult } from '../domu/workloads/verify.ts';
import { checksum } from '../shared/checksum.ts';
import { POLL_BUDGET_US, WAIT_POLICIES, parseWaitPolicy, spinBudgetUs, spinUntil } from '../shared/wait.ts';
import { CMDLINE_RESERVED, CMDLINE_WAIT } from '../shared/public/cmdline.ts';

const MIB = 1 << 20;

test('spinUntil: true as soon as ready, false after its budget or with none', (t) => {
  let n = 0;
  t.true(spinUntil(() => ++n > 100, 1e6));
  t.is(n, 101);
  t.false(spinUntil(() => false, 50));
  let calls = 0;
  t.false(spinUntil(() => { calls++; return false; }, 0));
  t.is(calls, 1, 'with no budget it looks once and gives up');
});

test('spinUntil stops when the peer is preempted, whatever the budget left', (t) => {
  let looks = 0;
  // A budget of 1000 s: only the peer check can end this spin (the test would time out otherwise).
  t.false(spinUntil(() => false, 1e9, () => ++looks >= 3));
  t.is(looks, 3);
});

test('the policies and their budgets; a bad wait= is refused with its name', (t) => {
  t.deepEqual([...WAIT_POLICIES], ['irq', 'poll']);
  t.is(parseWaitPolicy(undefined, 'x'), 'irq', 'default: sleep on the event, as Linux drivers do');
  t.is(parseWaitPolicy('poll', 'x'), 'poll');
  t.is(spinBudgetUs('irq'), 0);
  t.is(spinBudgetUs('poll'), POLL_BUDGET_US);
  t.throws(() => parseWaitPolicy('spin', 'kernel command line'), { message: /kernel command line: wait=spin .*expected irq or poll/ });
  t.true(CMDLINE_RESERVED.includes(CMDLINE_WAIT), 'a workload argument cannot take the word');
});

function image(mib: number): string {
  const path = join(tmpdir(), `ringvisor-wait-${randomUUID()}.img`);
  const fd = openSync(path, 'w');
  ftruncateSync(fd, mib * MIB);
  closeSync(fd);
  return path;
}

function verifyOf(g: GuestOutcome): VerifyResult {
  const t = g.tasks[0];
  if (t.error !== null || t.result?.kind !== 'verify') throw new Error(`verify failed: ${t.error}`);
  return t.result.result;
}

for (const wait of WAIT_POLICIES) {
  test.serial(`wait=${wait}: Dom0 and each guest run under it, and data moves intact on the PV and emulated paths`, async (t) => {
    const host = await BlockHost.boot(256, wait);
    const images: string[] = [];
    try {
      t.is(host.host.wait, wait, "the hypervisor's own policy (the trapping vCPU)");
      for (const path of ['pv', 'emu-dma'] as const) {
        const img = image(8);
        images.push(img);
        const region = 4 * MIB;
        const g = await host.runGuest({
          image: img, path,
          tasks: [{ kind: 'verify', job: { ops: 300, depth: 8, minBytes: 512, maxBytes: 64 * 1024, size: region, seed: 5 } }],
        });
        const v = verifyOf(g);
        t.deepEqual(v.errors, [], path);
        t.true(v.reads > 20 && v.writes > 20, `${path}: ${v.reads} reads, ${v.writes} writes`);
        const data = readFileSync(img);
        const sums: number[] = [];
        for (let off = 0; off < region; off += MIB) sums.push(checksum(new Uint8Array(data.buffer, data.byteOffset + off, MIB)));
        t.deepEqual(v.chunkSums, sums, `${path}: the image holds exactly what the guest wrote`);
        t.is(g.kernel?.wait, wait, `${path}: the guest kernel read wait=${wait} from its command line`);
        // Under irq the idle loop never spins; under poll blkfront with I/O in flight does. (The
        // IDE driver's interrupt is already pending when its START trap returns, since the model
        // completes the DMA inside that access: its waiting is the trap's, in the hypervisor.)
        if (wait === 'irq') t.is(g.kernel?.idle.polls, 0, `${path}: no spin under irq`);
        else if (path === 'pv') t.true((g.kernel?.idle.polls ?? 0) > 0, 'pv: blkfront spun while its requests were in flight');
      }
      const dom0 = await host.dom0Wait();
      t.is(dom0.wait, wait, 'Dom0 read it from its command line');
      if (wait === 'irq') t.is(dom0.idle.polls, 0, 'blkback and the device model never spun');
      else t.true(dom0.idle.polls > 0, 'blkback and the device model spun before sleeping');
    } finally {
      await host.close();
      for (const p of images) rmSync(p, { force: true });
    }
  });
}
