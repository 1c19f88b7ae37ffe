/*
 * Hostile frontends against blkback, with real domains on their own threads (issue 17, items
 * 1-7): each attack ends with Dom0 alive and serving, the honest guest's data intact (checksums
 * against the image file), every mapping given back while the attacker is still connected, and
 * host.usage() back to where it was once the attacker is gone (no zombie domain).
 */
import test from 'ava';
import { closeSync, ftruncateSync, openSync, readFileSync, rmSync, statSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomUUID } from 'node:crypto';
import { BlockHost, type GuestOutcome } from '../scenarios/block/harness.ts';
import { checksum, fillPattern } from '../shared/checksum.ts';
import { BroadcastChannel } from 'node:worker_threads';
import { RATELIMIT_BURST } from '../backends/lib/guest-log.ts';
import type { HostileBlkModule, HostileReport } from './kernels/blk-hostile.ts';

const HOSTILE = new URL('./kernels/blk-hostile.ts', import.meta.url).href;
const MIB = 1 << 20;
let host: BlockHost;
const images: string[] = [];

/** A sparse image of `mib` MiB whose first `patternMiB` MiB hold fillPattern(seed). */
function image(mib: number, patternMiB = 0, seed = 1): string {
  const path = join(tmpdir(), `ringvisor-hostile-${randomUUID()}.img`);
  const fd = openSync(path, 'w');
  ftruncateSync(fd, mib * MIB);
  if (patternMiB > 0) {
    const data = new Uint8Array(patternMiB * MIB);
    fillPattern(data, seed);
    writeSync(fd, data, 0, data.length, 0);
  }
  closeSync(fd);
  images.push(path);
  return path;
}

function reports(g: GuestOutcome): HostileReport[] {
  return g.tasks.map((t, i) => {
    const r = t.result;
    if (t.error !== null || r?.kind !== 'ops') throw new Error(`task ${i} failed: ${t.error}`);
    return JSON.parse(r.result[0].error!) as HostileReport;
  });
}

function hostile(mode: HostileBlkModule['mode'], count: number, more: Partial<HostileBlkModule> = {}): Record<string, unknown> {
  return { mode, count, ...more };
}

const twoSteps = [{ kind: 'ops' as const, steps: [] }, { kind: 'ops' as const, steps: [] }];

test.before(async () => {
  host = await BlockHost.boot(448);
});

test.after.always(async () => {
  await host?.close();
  for (const p of images) rmSync(p, { force: true });
});

test.serial('item 1: thousands of refused indirect requests leave no mapping behind; the next good read works', async (t) => {
  const before = host.usage();
  let atStart = -1;
  let afterAttack = -1;
  const g = await host.runGuest({
    image: image(16), kernel: HOSTILE, disk: { persistent: false }, extra: hostile('refused-indirect', 9000), tasks: twoSteps,
    beforeTimed: async (i) => {
      if (i === 0) atStart = host.usage().grantMappings;
      else afterAttack = host.usage().grantMappings;
    },
  });
  const [attack, after] = reports(g);
  t.deepEqual(attack.statuses, { '-1': 9000 }, 'every one refused');
  t.is(afterAttack, atStart, 'Dom0 holds no more mappings than it did before the attack');
  t.deepEqual(after.statuses, { okay: 1 }, 'the ring still serves good requests');
  t.deepEqual(host.usage(), before);
});

test.serial('item 2: two guests reading with persistent grants on four queues get every byte right and Dom0 lives', async (t) => {
  const before = host.usage();
  const img = image(32, 24, 7);
  const file = readFileSync(img);
  const run = () => host.runGuest({ image: img, readOnly: true, memoryMiB: 48, kernel: HOSTILE, extra: hostile('fresh-grants', 100), tasks: twoSteps });
  const guests = await Promise.all([run(), run()]);
  for (const g of guests) {
    t.is(g.device.negotiated.queues, 4);
    t.true(g.device.negotiated.persistent);
    const [reads, after] = reports(g);
    t.deepEqual(reads.statuses, { okay: 400 }, `d${g.domid}: every read succeeded`);
    let bad = 0;
    for (let q = 0; q < 4; q++) {
      for (let i = 0; i < 100; i++) {
        const at = reads.sectors![q][i] * 512;
        if (reads.sums![q][i] !== checksum(new Uint8Array(file.buffer, file.byteOffset + at, 11 * 4096))) bad++;
      }
    }
    t.is(bad, 0, `d${g.domid}: every read returned the image's bytes`);
    t.deepEqual(after.statuses, { okay: 1 });
    t.true((g.backend.mapsRefused ?? 0) === 0, `no mapping refused: ${JSON.stringify(g.backend)}`);
  }
  t.truthy(await host.vbdStats(), 'Dom0 still answers');
  t.deepEqual(host.usage(), before);
});

test.serial('items 3 and 6: failed handshakes leak no ring mapping, leave no zombie, and log at most a burst of one-line errors', async (t) => {
  const before = host.usage();
  const stderr: string[] = [];
  const write = process.stderr.write.bind(process.stderr);
  process.stderr.write = ((chunk: string | Uint8Array, ...rest: unknown[]) => {
    stderr.push(String(chunk));
    return (write as (...a: unknown[]) => boolean)(chunk, ...rest);
  }) as typeof process.stderr.write;
  const logStart = host.dom0Log.length;
  let atStart = -1;
  let afterAttack = -1;
  let g: GuestOutcome;
  try {
    g = await host.runGuest({
      image: image(4), kernel: HOSTILE, extra: hostile('bad-evtchn', 60), tasks: twoSteps,
      beforeTimed: async (i) => {
        if (i === 0) atStart = host.usage().grantMappings;
        else afterAttack = host.usage().grantMappings;
      },
    });
  } finally {
    process.stderr.write = write;
  }
  const [attack] = reports(g);
  t.is(attack.refusals, 60, 'the backend refused every handshake');
  t.is(afterAttack, atStart, 'no ring page is still mapped');
  t.deepEqual(host.usage(), before, 'the attacker is gone: no domain left dying, nothing pinned');
  const lines = host.dom0Log.slice(logStart).filter((l) => l.includes(`d${g.domid}/`) || l.includes(`/vbd/${g.domid}/`));
  t.true(lines.length >= 1 && lines.length <= RATELIMIT_BURST, `${lines.length} lines about d${g.domid}:\n${lines.slice(0, 3).join('\n')}`);
  t.true(lines.every((l) => !l.includes('\n')), 'one line each');
  t.false(stderr.some((s) => /^\s+at /m.test(s)), 'no stack trace');
});

/**
 * Fair service: the attacker keeps four rings full of 1 MiB reads with no cap it could reach,
 * and is told to stop only after a good guest reading 4 KiB at a time has finished 300 reads, a
 * checked workload, and Dom0's control plane has answered. Serving each ring until it is empty
 * (before issue 17) let the attacker finish 80,000 requests before the good guest's first 300.
 * The requests served per good request are logged, not asserted: they measure the good guest's
 * own wake-up latency against Dom0's service rate (5-53 on a loaded machine, ~490 on a quiet one
 * reading holes), a timing.
 */

test.serial('item 4: a guest keeping every ring full of 1 MiB reads does not starve another guest or Dom0\'s control work', async (t) => {
  const before = host.usage();
  const stopName = `ringvisor-stop-${randomUUID()}`;
  const stop = new BroadcastChannel(stopName);
  let started!: () => void;
  const attackRunning = new Promise<void>((r) => { started = r; });
  const attacker = host.runGuest({
    image: image(64), kernel: HOSTILE, extra: hostile('full-rings', 1_000_000, { stopChannel: stopName }),
    tasks: [{ kind: 'ops', steps: [] }], beforeTimed: async () => started(),
  });
  await attackRunning;
  const attackerId = host.host.list().find((d) => d.domid !== 0)!.domid;
  const requests = async () => {
    const all = Object.entries(await host.vbdStats());
    const of = (domid: number) => all.find(([path]) => path.includes(`/vbd/${domid}/`))?.[1].requests ?? 0;
    return { attacker: of(attackerId), good: all.filter(([path]) => !path.includes(`/vbd/${attackerId}/`)).reduce((n, [, st]) => n + (st.requests ?? 0), 0) };
  };
  // The control plane answers at once, and a new guest is created, connected and served
  // while every one of the attacker's rings stays full.
  const events: string[] = [];
  const control = host.vbdStats().then(() => events.push('control'));
  const img = image(16);
  const marks: { attacker: number; good: number }[] = [];
  const good = host.runGuest({
    image: img,
    tasks: [
      { kind: 'fio', job: { rw: 'randread', bs: 4096, iodepth: 1, ios: 300, size: 8 * MIB, seed: 3 } },
      { kind: 'fio', job: { rw: 'randread', bs: 4096, iodepth: 1, ios: 1, size: 8 * MIB, seed: 4 } },
      { kind: 'verify', job: { ops: 200, depth: 8, minBytes: 512, maxBytes: 64 * 1024, size: 4 * MIB, seed: 41 } },
    ],
    beforeTimed: async () => { marks.push(await requests()); },
  });
  const g = await good;
  events.push('good guest done');
  await control;
  stop.postMessage({ kind: 'stop' });
  const a = await attacker;
  stop.close();
  const v = g.tasks[2].result;
  if (v?.kind !== 'verify') return t.fail(String(g.tasks[2].error));
  t.deepEqual(v.result.errors, []);
  const file = readFileSync(img);
  const sums: number[] = [];
  for (let off = 0; off < 4 * MIB; off += MIB) sums.push(checksum(new Uint8Array(file.buffer, file.byteOffset + off, MIB)));
  t.deepEqual(v.result.chunkSums, sums, 'the good guest\'s data is in the image');
  const [attack] = reports(a);
  t.true(attack.stopped, `the attack ran all along (attacker's requests answered per queue: ${attack.done})`);
  t.deepEqual(Object.keys(attack.statuses), ['okay'], 'the attacker\'s valid reads were all served');
  const ratio = (marks[1].attacker - marks[0].attacker) / (marks[1].good - marks[0].good);
  t.log(`while the good guest made ${marks[1].good - marks[0].good} requests one at a time, Dom0 served the attacker ${marks[1].attacker - marks[0].attacker} (${ratio.toFixed(1)} each)`);
  // Not asserted: the ratio is the good guest's own wake-up latency over Dom0's service rate, a
  // timing (a quiet machine serving zero-filled holes gave 486; a loaded one 5-53). Starvation is
  // what is asserted: the good guest finished while the attack still ran (attack.stopped above),
  // where before issue 17 it waited for the attacker's whole cap.
  t.true(Number.isFinite(ratio) && ratio >= 0);
  t.deepEqual(events.sort(), ['control', 'good guest done']);
  t.deepEqual(host.usage(), before);
});

test.serial('item 4: the toolstack destroys a guest whose rings are full, half-done requests and all, and everything it held is freed', async (t) => {
  const before = host.usage();
  let started!: () => void;
  const attackRunning = new Promise<void>((r) => { started = r; });
  // The attack never ends by itself: this guest is only ever destroyed. Its harness run waits
  // for a report that will not come, and ends with "domain N is gone" once it is destroyed.
  const attack = host.runGuest({
    image: image(64), kernel: HOSTILE, extra: hostile('full-rings', 1e9, { stopChannel: `ringvisor-unused-${randomUUID()}` }),
    tasks: [{ kind: 'ops', steps: [] }], beforeTimed: async () => started(),
  }).catch((e: Error) => e);
  await attackRunning;
  const attackerId = host.host.list().find((d) => d.domid !== 0)!.domid;
  const served = async () => Object.entries(await host.vbdStats()).find(([p]) => p.includes(`/vbd/${attackerId}/`))?.[1].requests ?? 0;
  let n = 0;
  for (let i = 0; i < 10_000 && n < 512; i++) n = await served();
  t.true(n >= 512, `the attack is being served (${n} requests so far)`);
  await host.call({ kind: 'destroy', domid: attackerId });
  t.false(host.host.list().some((d) => d.domid === attackerId), 'the domain is gone');
  t.regex(String(await attack), /domain \d+ is gone while waiting for task 0/, 'and its harness run says so');
  t.deepEqual(host.usage(), before, 'no mapping, port or frame left behind');
});

test.serial('item 5: discards of a whole sparse image never allocate space, and discarded data reads as zeros', async (t) => {
  const img = image(64);
  const sectors = 64 * MIB / 512;
  const discards = [
    ...Array.from({ length: 8 }, () => ({ op: 'discard' as const, sector: 0, count: sectors - 8 })),
    ...Array.from({ length: 8 }, () => ({ op: 'discard' as const, sector: 0, count: sectors })),
  ];
  const g = await host.runGuest({
    image: img,
    tasks: [{ kind: 'ops', steps: [
      { op: 'write', sector: 8192, count: 2048, seed: 5 },
      { op: 'write', sector: sectors - 16, count: 16, seed: 6 },
      { op: 'flush', sector: 0, count: 0 },
      ...discards,
      { op: 'read', sector: 8192, count: 2048 },
      { op: 'read', sector: sectors - 16, count: 16 },
    ] }],
  });
  const r = g.tasks[0].result;
  if (r?.kind !== 'ops') return t.fail(String(g.tasks[0].error));
  t.true(r.result.every((o) => o.ok), JSON.stringify(r.result.filter((o) => !o.ok)));
  const n = r.result.length;
  t.is(r.result[n - 2].sum, checksum(new Uint8Array(2048 * 512)), 'the written MiB reads back as zeros');
  t.is(r.result[n - 1].sum, checksum(new Uint8Array(16 * 512)), 'the last sectors too');
  const allocated = statSync(img).blocks * 512;
  t.true(allocated <= 2 * MIB, `the image holds ${allocated} bytes on the host's disk`);
  t.true(readFileSync(img).every((b) => b === 0), 'the file reads as zeros');
  t.is(g.backend.discards, 16);
});

test.serial('item 7: request ids come back as the 64 bits they were', async (t) => {
  const g = await host.runGuest({ image: image(4), kernel: HOSTILE, extra: hostile('ids', 0), tasks: [{ kind: 'ops', steps: [] }] });
  const [r] = reports(g);
  t.deepEqual(r.statuses, { okay: 4 });
  for (const { sent, got } of r.ids!) t.deepEqual(got, sent);
});
