/*
 * Spin only while the peer runs (DESIGN.md §12, shared/wait.ts): a spin ends as soon as the peer
 * is preempted, whatever budget is left; and on a host with one pCPU slot, where blkfront's spin
 * holds the only slot blkback needs, the guest's and Dom0's idle loops stop their spins for that
 * reason (GuestSched.evtchn_peer_preempted) and the data still checks out.
 */
import test from 'ava';
import { closeSync, openSync, readFileSync, rmSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomUUID } from 'node:crypto';
import { spinRecord, spinUntil } from '../shared/wait.ts';
import { BlockHost } from '../scenarios/block/harness.ts';
import { checksum, fillPattern } from '../shared/checksum.ts';

test('spinUntil stops when the peer is preempted, long before its budget', (t) => {
  let looks = 0;
  let asked = 0;
  const before = spinRecord.peerPreempted;
  const got = spinUntil(() => { looks++; return false; }, 60e6 /* a minute */, () => ++asked === 3);
  t.false(got);
  t.is(asked, 3, 'the peer was asked every 64 looks until it was preempted');
  t.true(looks <= 3 * 64 + 2, `${looks} looks`);
  t.is(spinRecord.peerPreempted, before + 1);
  t.true(spinUntil(() => true, 60e6, () => true), 'work already there is taken whatever the peer does');
});

test.serial('one pCPU slot under poll: blkfront and blkback stop spinning for their preempted peer, and the reads are right', async (t) => {
  process.env.RINGVISOR_PCPUS = '1';
  const image = join(tmpdir(), `ringvisor-spin-${randomUUID()}.img`);
  const data = new Uint8Array(4 << 20);
  fillPattern(data, 5);
  const fd = openSync(image, 'w');
  writeSync(fd, data);
  closeSync(fd);
  const host = await BlockHost.boot(192, 'poll');
  try {
    t.is(host.host.sched.pcpus, 1);
    const g = await host.runGuest({
      image,
      tasks: [
        { kind: 'fio', job: { rw: 'randread', bs: 4096, iodepth: 1, ios: 300, size: 4 << 20, seed: 9 } },
        { kind: 'verify', job: { ops: 64, depth: 4, minBytes: 512, maxBytes: 64 * 1024, size: 4 << 20, seed: 3 } },
      ],
    });
    for (const task of g.tasks) t.is(task.error, null);
    const v = g.tasks[1].result;
    if (v?.kind !== 'verify') return t.fail('no verify result');
    t.deepEqual(v.result.errors, []);
    const file = readFileSync(image);
    const sums: number[] = [];
    for (let off = 0; off < 4 << 20; off += 1 << 20) sums.push(checksum(new Uint8Array(file.buffer, file.byteOffset + off, 1 << 20)));
    t.deepEqual(v.result.chunkSums, sums, 'what the guest wrote is in the image');
    const guest = g.kernel!.idle;
    const dom0 = (await host.dom0Wait()).idle;
    t.log(`guest idle loop ${JSON.stringify(guest)}; Dom0's ${JSON.stringify(dom0)}`);
    t.is(g.kernel!.wait, 'poll');
    t.true((guest.peerStops ?? 0) > 0, 'the guest stopped spinning because Dom0 waited for the slot');
    t.true((dom0.peerStops ?? 0) > 0, 'Dom0 stopped spinning because the guest waited for the slot');
  } finally {
    await host.close();
    rmSync(image, { force: true });
    delete process.env.RINGVISOR_PCPUS;
  }
});
