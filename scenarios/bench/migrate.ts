/*
 * The migrate suite: live migration of a guest between two hosts on this machine (loopback TCP),
 * with a writable working set of 0, 16 and 64 MiB (mem-touch) on a 256 MiB guest (--quick: a
 * 64 MiB guest with 0, 4 and 16 MiB). Each row, medians over the repeats: the downtime as the
 * toolstack sees it (the suspend request to the target's "unpaused" report) and as the guest saw
 * it (from its workload freezing to running again on the target, by the clock both hosts share:
 * domu/resume.ts), the blackout phase by phase (MigrateResult.blackout), total time (with, from the
 * target's log, when the new domain's memory and its vCPU threads were ready), precopy rounds and pages per round,
 * pages sent; and "one copy": the same guest moved without precopy (live: false, every page
 * once) three times after the live move (back, forth, back; the median of the three), timed by its sender from the first page read after the suspend to the target's "ready to
 * unpause" (MigrateResult.lastCopyMs: every page read, sent and written there once, over the same
 * link through the same code; neither the target's build nor the guest's suspend, whose times vary
 * with the machine's load and are no part of a copy), and the issue's ratio: total / one copy (the
 * live move's whole time, sender's first byte to the target's "unpaused" report, divided by that one
 * copy's time). The target's build is inside the total: it writes pages into the new domain as soon
 * as its memory exists, its vCPU threads coming up meanwhile (migrate-receive.ts); the receiver's line
 * gives the wait for the memory and when the vCPUs were up.
 *
 * And the downtime as a client sees it, as Clark et al. measured theirs: the moving guest serves
 * udp-rr beside mem-touch (serve=PORT), and a guest on a third host, C, whose bridge's uplink
 * reaches A's and B's (one Ethernet segment), asks it back to back (udp-probe); the peer's outage
 * is its silence around the pause, from the last answer before it to the first after the resume
 * (../lib/outage-peer.ts). Its resolution: one round trip at the start (requests back to back),
 * the peer's re-asking interval (PEER_RETRY_MS) at the end.
 *
 * Xen: what Clark et al. measured (NSDI 2005, "Live Migration of Virtual Machines": 60 ms of
 * downtime for a Quake 3 server, 210 ms for SPECweb99; XEN-FACTS.md Part 2 section 4.5).
 */
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { XlClient } from '../../cli/client.ts';
import { CONSOLE_LOG } from '../../dom0/toolstack/config/vm-layout.ts';
import type { MigrateResult } from '../../dom0/toolstack/migration/migrate.ts';
import { OutagePeer, RR_PORT, startUplinkedHost, vifFor, type PeerOutage } from '../lib/outage-peer.ts';
import { median, type BenchRow, type SuiteOptions } from './types.ts';
import { HostLogs } from '../lib/host-logs.ts';

export async function benchMigrate(opts: SuiteOptions): Promise<BenchRow[]> {
  const say = opts.progress ?? (() => {});
  const guestMiB = opts.quick ? 64 : 256;
  // RV_MIGRATE_WSS=16 RV_MIGRATE_REPEATS=1: one working set, fewer repeats (a look at one row, a profile).
  const sets = process.env.RV_MIGRATE_WSS ? process.env.RV_MIGRATE_WSS.split(',').map(Number) : opts.quick ? [0, 4, 16] : [0, 16, 64];
  const repeats = Number(process.env.RV_MIGRATE_REPEATS) || (opts.quick ? 1 : 3);
  const dir = mkdtempSync(join(tmpdir(), 'rv-bench-mig-'));
  // The receivers' own times come in their hosts' logs (migrate.ts, migrateReceive).
  const received: ReceiverLine[] = [];
  const log = (line: string) => {
    const m = RECEIVED.exec(line);
    if (m) received.push({ name: m[1], waitMs: Number(m[2]), vcpusMs: Number(m[3]), streamMs: Number(m[4]), tail: m[5] });
  };
  // A, B and the peer's host C on one Ethernet segment: their bridges' uplinks name each other.
  const logs = new HostLogs(dir); // every host's lines, kept with the consoles when a run fails
  const up = await startUplinkedHost({ runDir: join(dir, 'a'), memoryMiB: guestMiB + 64, log: logs.sink('a', log) });
  const ub = await startUplinkedHost({ runDir: join(dir, 'b'), memoryMiB: guestMiB + 64, log: logs.sink('b', log) }, [up.port]);
  const uc = await startUplinkedHost({ runDir: join(dir, 'c'), memoryMiB: 112, log: logs.sink('c', log) }, [up.port, ub.port]);
  const [a, b, c] = [up.host, ub.host, uc.host];
  const xa = await XlClient.open(a.runDir);
  const xb = await XlClient.open(b.runDir);
  const rows: BenchRow[] = [];
  let n = 0;
  let failed = false;
  try {
    for (const wss of sets) {
      const runs: Run[] = [];
      for (let i = 0; i < repeats; i++) {
        const name = `mig-${wss}-${i}`;
        const d = join(dir, name);
        mkdirSync(d);
        const vif = vifFor(10 + n);
        writeFileSync(join(d, 'vm.cfg'), `name = "${name}"\nmemory = ${guestMiB}\n${vif.line}\n` +
          (wss === 0 ? `workload = "idle"\nworkload_args = [ "serve=${RR_PORT}" ]\n` : `workload = "mem-touch"\nworkload_args = [ "wss=${wss}", "serve=${RR_PORT}" ]\n`));
        await xa.call({ verb: 'create', path: d });
        await consoleSays(a.runDir, name, wss === 0 ? /workload idle/ : /mem-touch: pass 1 done/);
        // Alternate directions so neither host is always the source.
        const [from, to] = i % 2 === 0 ? [xa, xb] : [xb, xa];
        if (i % 2 === 1) { // bring it to b first, untimed
          const { port } = await xb.call<{ port: number }>({ verb: 'migrate-receive', port: 0 });
          await xa.call({ verb: 'migrate', domain: name, host: '127.0.0.1', port });
          await receiverLine(received, name); // its receiver's line is not the timed move's
        }
        // The peer starts once the guest is where the timed move begins, and has had its first answers.
        const peer = await OutagePeer.start(c, dir, { name: `peer-${wss}-${i}`, vif: 100 + n++, target: vif.ip, retryMs: PEER_RETRY_MS });
        const consoleLog = join(d, CONSOLE_LOG);
        const resumedBefore = countResumes(consoleLog);
        const servingBefore = countServing(consoleLog);
        const { port } = await to.call<{ port: number }>({ verb: 'migrate-receive', port: 0 });
        // RV_MIGRATE_CARRY=0: every round sends all the log returned (libxc's way), to compare (precopy-hot.ts).
        // RV_MIGRATE_GIVEWAY=0: the live rounds do not give Dom0's backends a turn between batches (save-restore.ts).
        const r = await from.call<MigrateResult>({ verb: 'migrate', domain: name, host: '127.0.0.1', port,
          carryHot: process.env.RV_MIGRATE_CARRY !== '0', giveWay: process.env.RV_MIGRATE_GIVEWAY !== '0' });
        const outage = await peer.outageAround(r);
        const guestMs = await guestBlackout(consoleLog, resumedBefore, wss > 0);
        const rx = await receiverLine(received, name);
        // One copy: the same guest moved without precopy (suspend, every page once, resume): the
        // same bytes over the same link through the same code, read, framed, sent, written; timed by
        // its sender from the first page read to the target's "ready" (lastCopyMs). ONE_COPIES
        // times (back, forth, back: it ends where the live move began), and the run's one copy is
        // their median: a single copy varied by a factor of two on a quiet machine.
        const copies: { ms: number; streamMs: number; downtimeMs: number; pages: number; readMs: number; waitMs: number; thread: MigrateResult['threadCopy'] }[] = [];
        for (let k = 0, [src, dst] = [to, from]; k < ONE_COPIES; k++, [src, dst] = [dst, src]) {
          // Each move starts once the guest has resumed from the one before (its server is up again).
          await guestServes(consoleLog, servingBefore + 1 + k);
          const back = await dst.call<{ port: number }>({ verb: 'migrate-receive', port: 0 });
          const once = await src.call<MigrateResult>({ verb: 'migrate', domain: name, host: '127.0.0.1', port: back.port, live: false });
          copies.push({
            ms: once.lastCopyMs, streamMs: (await receiverLine(received, name)).streamMs, downtimeMs: once.downtimeMs,
            pages: once.finalPages, readMs: once.readMs.at(-1) ?? NaN, waitMs: once.sinkWaitMs.at(-1) ?? NaN, thread: once.threadCopy,
          });
        }
        const peerCounts = peer.counts();
        await peer.stop(); // after the one copies, which it kept asking through, as it did through the live move
        const run: Run = {
          r, guestMs, outage, peerBad: peerCounts.bad, oneCopyMs: median(copies.map((x) => x.ms)), oneCopiesMs: copies.map((x) => x.ms),
          oneCopyStreamMs: median(copies.map((x) => x.streamMs)), buildWaitMs: rx.waitMs, vcpusUpMs: rx.vcpusMs,
          nonLiveDowntimeMs: median(copies.map((x) => x.downtimeMs)),
        };
        say(`migrate: ${guestMiB} MiB guest, working set ${wss} MiB: ${r.rounds} rounds (${r.pagesPerRound.join(', ')} pages) + ` +
          `${r.finalPages} in the stop-and-copy, ${r.pagesSent} pages; downtime ${r.downtimeMs.toFixed(1)} ms ` +
          `(the guest saw ${guestMs.toFixed(1)} ms; its peer on host C ${peerSaw(outage)}), total ${r.totalMs.toFixed(0)} ms (the target's ` +
          `memory was ready ${rx.waitMs.toFixed(0)} ms after the config came, its vCPUs ${rx.vcpusMs.toFixed(0)} ms), one copy ${run.oneCopyMs.toFixed(0)} ms ` +
          `(the median of ${run.oneCopiesMs.map((ms) => ms.toFixed(0)).join(', ')}; their streams from the target built to END: ${run.oneCopyStreamMs.toFixed(0)} ms): ` +
          `total / one copy = ${(r.totalMs / run.oneCopyMs).toFixed(2)}; not live: downtime ${run.nonLiveDowntimeMs.toFixed(0)} ms`);
        say(`  blackout: ${r.blackout.map((p) => `${p.phase} ${p.ms.toFixed(1)}${p.cpuMs === undefined ? '' : ` (ran ${p.cpuMs.toFixed(1)}, waited ${p.runqMs!.toFixed(1)})`}`).join(' | ')}`);
        say(`  the target${rx.tail}`);
        say(`  total ${r.totalMs.toFixed(0)} ms = set-up ${r.setupMs.toFixed(1)} + rounds ${r.roundMs.reduce((a, x) => a + x, 0).toFixed(1)} + ` +
          `waiting for the target's vCPUs ${r.builtWaitMs.toFixed(1)} + downtime ${r.downtimeMs.toFixed(1)}; over the rounds the sender's thread ` +
          `${cpu(r.threadRounds)}`);
        // The ratio's parts, in one copies: round 1 against the pages it sent at the one copy's pace is
        // what the guest running beside it (and the target's build) costs the first pass.
        const oc = run.oneCopyMs;
        const r1AtCopyPace = oc * r.pagesPerRound[0] / (copies[0]?.pages || r.pagesPerRound[0]);
        say(`  ratio ${(r.totalMs / oc).toFixed(2)} = set-up ${(r.setupMs / oc).toFixed(2)} + round 1 ${(r.roundMs[0] / oc).toFixed(2)} ` +
          `(its pages at the one copy's pace ${(r1AtCopyPace / oc).toFixed(2)}) + rounds 2-${r.rounds} ${(r.roundMs.slice(1).reduce((a, x) => a + x, 0) / oc).toFixed(2)} + ` +
          `waiting for the target's vCPUs ${(r.builtWaitMs / oc).toFixed(2)} + downtime ${(r.downtimeMs / oc).toFixed(2)}`);
        say(`  rounds: ${r.roundMs.map((ms, i) => `${r.pagesPerRound[i]} pages (${r.skippedPerRound[i]} skipped, then ${r.carriedPerRound[i]} carried) ${ms.toFixed(1)} ms ` +
          `(${us(ms - r.cleanMs[i], r.pagesPerRound[i])} us/page; reading ${r.readMs[i].toFixed(1)}, socket ${r.sinkWaitMs[i].toFixed(1)}; CLEAN paused ${r.cleanMs[i].toFixed(1)})`).join(', ')}`);
        say(`  one copies: ${copies.map((x) => `${x.ms.toFixed(0)} ms (${us(x.ms, x.pages)} us/page; reading ${x.readMs.toFixed(1)}, socket ${x.waitMs.toFixed(1)}; ` +
          `the sender's thread ${cpu(x.thread)})`).join(', ')}`);
        runs.push(run);
        await from.call({ verb: 'destroy', domain: name });
      }
      const total = median(runs.map((x) => x.r.totalMs));
      const bytes = median(runs.map((x) => x.r.bytesSent));
      const oneCopy = median(runs.map((x) => x.oneCopyMs));
      const buildWait = median(runs.map((x) => x.buildWaitMs));
      const vcpusUp = median(runs.map((x) => x.vcpusUpMs));
      const mid = runs.map((x) => x.r).sort((p, q) => p.downtimeMs - q.downtimeMs)[runs.length >> 1];
      rows.push({
        suite: 'migrate', path: 'precopy', wait: 'irq', workload: `guest ${guestMiB} MiB, wss ${wss} MiB`, blockSize: 4096, queueDepth: 1,
        reqPerSec: median(runs.map((x) => x.r.pagesSent)) / (total / 1000), MBps: bytes / 1048576 / (total / 1000),
        counters: {
          totalMs: total, downtimeMs: median(runs.map((x) => x.r.downtimeMs)), guestDowntimeMs: median(runs.map((x) => x.guestMs)),
          rounds: median(runs.map((x) => x.r.rounds)), pagesSent: median(runs.map((x) => x.r.pagesSent)),
          finalPages: median(runs.map((x) => x.r.finalPages)), oneCopyMs: oneCopy, buildWaitMs: buildWait, vcpusUpMs: vcpusUp,
          totalPerCopy: median(runs.map((x) => x.r.totalMs / x.oneCopyMs)),
          peerOutageMs: median(runs.map((x) => x.outage?.ms ?? NaN)), peerBad: Math.max(...runs.map((x) => x.peerBad)),
        },
        detail: {
          nonLiveDowntimeMs: median(runs.map((x) => x.nonLiveDowntimeMs)),
          oneCopyMs: runs.map((x) => x.oneCopyMs),
          oneCopiesMs: runs.map((x) => x.oneCopiesMs),
          oneCopyStreamMs: runs.map((x) => x.oneCopyStreamMs),
          peer: {
            resolutionMs: { start: 'one round trip (requests back to back)', end: PEER_RETRY_MS },
            outagesMs: runs.map((x) => x.outage?.ms ?? null),
            lastAnswerBeforeSuspendMs: median(runs.map((x) => x.outage?.lastBeforeSuspendMs ?? NaN)),
            firstAnswerAfterUnpauseMs: median(runs.map((x) => x.outage?.firstAfterUnpauseMs ?? NaN)),
          },
          medianRun: { pagesPerRound: mid.pagesPerRound, roundMs: mid.roundMs, finalPages: mid.finalPages, blackout: mid.blackout },
        },
        medianUs: median(runs.map((x) => x.r.downtimeMs)) * 1000, repeats,
      });
    }
  } catch (e) {
    failed = true;
    throw e;
  } finally {
    xa.close();
    xb.close();
    await a.close();
    await b.close();
    await c.close();
    await logs.close();
    // A failed run keeps its hosts' directories (the guests' consoles, the hosts' logs) to be read.
    if (failed) process.stderr.write(`migrate bench: the run failed; its hosts' directories are kept in ${dir}\n`);
    else rmSync(dir, { recursive: true, force: true });
  }
  return rows;
}

interface Run {
  r: MigrateResult; guestMs: number; outage: PeerOutage | null; peerBad: number; oneCopyMs: number; oneCopiesMs: number[]; oneCopyStreamMs: number;
  buildWaitMs: number; vcpusUpMs: number; nonLiveDowntimeMs: number;
}

/** Microseconds per page, for the progress lines. */
const us = (ms: number, pages: number): string => (pages > 0 ? (1000 * ms / pages).toFixed(1) : '-');

/** A thread's CPU time and its waits for a CPU (dom0/toolstack/migration/thread-time.ts). */
const cpu = (t: MigrateResult['threadCopy']): string => (t ? `ran ${t.cpuMs.toFixed(1)} ms, waited ${t.runqMs.toFixed(1)} ms for a CPU` : 'has no schedstat');

/** Non-live moves per run whose median is its one copy (odd: the guest ends on the host the live move left). */
const ONE_COPIES = 3;

/** How often the peer asks again while no answer comes: the resolution of the outage's end. */
const PEER_RETRY_MS = 2;

function peerSaw(o: PeerOutage | null): string {
  if (o === null) return 'saw no answer again within 10 s';
  return `saw ${o.ms.toFixed(1)} ms without answers, the last ${o.lastBeforeSuspendMs.toFixed(1)} ms before the suspend request, ` +
    `the first ${o.firstAfterUnpauseMs.toFixed(1)} ms after the unpause`;
}

interface ReceiverLine { name: string; waitMs: number; vcpusMs: number; streamMs: number; tail: string }
const RECEIVED = /xl migrate-receive: (\S+) is domain \d+ here: \d+ pages received; the stream waited ([0-9.]+) ms for the domain to be built, its vCPUs were up ([0-9.]+) ms after the config, then took ([0-9.]+) ms to its END(.*)$/;

/* The next receiver line for `name` (its host logs it just after its report to the sender). */
async function receiverLine(lines: ReceiverLine[], name: string): Promise<ReceiverLine> {
  for (let waited = 0; waited < 30000; waited += 20) {
    const i = lines.findIndex((l) => l.name === name);
    if (i >= 0) return lines.splice(i, 1)[0];
    await new Promise((r) => setTimeout(r, 20)); // reading a result the receiver logged, not shaping it
  }
  return { name, waitMs: NaN, vcpusMs: NaN, streamMs: NaN, tail: '' };
}

/* The guest's resume lines in its console log (the VM directory's console.log, on shared storage). */
const RESUMED = /(?:mem-touch: resumed at pass|resume: restored from a save stream)[^\n]*?([0-9.]+) ms after it froze/g;

function countResumes(log: string): number {
  return existsSync(log) ? [...readFileSync(log, 'utf8').matchAll(RESUMED)].length : 0;
}

/* The guest's udp-rr server says so at its boot and at the end of every resume (domu/workloads/net-run.ts). */
const SERVING = /udp-rr: serving on /g;

function countServing(log: string): number {
  return existsSync(log) ? [...readFileSync(log, 'utf8').matchAll(SERVING)].length : 0;
}

/**
 * Until the guest has said `n` times that it serves: the resume after the last move is over, and
 * the next suspend will not meet one in progress. Read from its log, as guestBlackout reads it.
 */
async function guestServes(log: string, n: number): Promise<void> {
  for (let waited = 0; countServing(log) < n; waited += 20) {
    if (waited >= 30000) throw new Error(`${log}: the guest did not come back after its move (no "udp-rr: serving" line ${n})`);
    await new Promise((r) => setTimeout(r, 20)); // waiting for the guest to be back, not shaping a measurement
  }
}

/**
 * The blackout as the guest measured it (domu/resume.ts: from its workload freezing to running
 * again on the target), from the first resume line after `before` of them: the workload's own
 * (mem-touch) or the kernel's (an idle guest). Read from the log once it is there.
 */
async function guestBlackout(log: string, before: number, workload: boolean): Promise<number> {
  const want = workload ? 'mem-touch' : 'resume:';
  for (let waited = 0; waited < 30000; waited += 20) {
    const lines = existsSync(log) ? [...readFileSync(log, 'utf8').matchAll(RESUMED)] : [];
    const hit = lines.slice(before).find((m) => m[0].startsWith(want));
    if (hit) return Number(hit[1]);
    await new Promise((r) => setTimeout(r, 20)); // reading a result the guest wrote, not shaping it
  }
  return NaN;
}

async function consoleSays(runDir: string, domain: string, re: RegExp): Promise<void> {
  const c = await XlClient.open(runDir);
  let seen = '';
  let done!: () => void;
  const matched = new Promise<void>((r) => { done = r; });
  await c.console(domain, (bytes) => { seen += Buffer.from(bytes).toString(); if (re.test(seen)) done(); }, () => undefined);
  await matched;
  c.close();
}

/** Lines beside the table: per working set, what the issue asks for, and Clark et al.'s figures. */
export function migrateSummary(rows: readonly BenchRow[]): string | null {
  const m = rows.filter((r) => r.suite === 'migrate');
  if (m.length === 0) return null;
  const c = (r: BenchRow, k: string) => r.counters[k] ?? NaN;
  return ['live migration (loopback TCP between two hosts on this machine), medians: downtime (xl: suspend asked to target ' +
    'unpaused) / as the guest saw it (workload frozen to running again) / as its udp-rr peer on a third host saw it (last answer ' +
    'before the pause to the first after the resume) / total (the target\'s memory ready, its vCPUs up, after the config came) / one copy / ' +
    'total / one copy / rounds (pages each) + stop-and-copy / pages sent',
  ...m.map((r) => {
    const run = r.detail?.medianRun as Pick<MigrateResult, 'pagesPerRound' | 'finalPages' | 'blackout'> | undefined;
    return `  ${r.workload}: ${c(r, 'downtimeMs').toFixed(1)} ms / ${c(r, 'guestDowntimeMs').toFixed(1)} ms / ${c(r, 'peerOutageMs').toFixed(1)} ms / ${c(r, 'totalMs').toFixed(0)} ms ` +
      `(${c(r, 'buildWaitMs').toFixed(0)}, ${c(r, 'vcpusUpMs').toFixed(0)}) / ` +
      `${c(r, 'oneCopyMs').toFixed(0)} ms / x${c(r, 'totalPerCopy').toFixed(2)} / ${c(r, 'rounds')} (${run?.pagesPerRound.join(', ')}) + ` +
      `${run?.finalPages} / ${c(r, 'pagesSent')}\n    blackout (median run): ${run?.blackout.map((p) => `${p.phase} ${p.ms.toFixed(1)} ms`).join(' | ')}`;
  }),
  '  goals (issue 15): downtime <= 30 ms median with a 16 MiB working set; total <= 2x one copy. One copy: the same guest moved ' +
    'without precopy (every page once: xc_domain_save without XCFLAGS_LIVE), timed by its sender from the first page read after the ' +
    'suspend to the target\'s "ready to unpause" (every page read, sent over the same link and written there once; neither the ' +
    `target's build nor the suspend), ${ONE_COPIES} times after each live move (back, forth, back), their median. ` +
    'The ratio is the live move\'s whole time (the sender\'s first byte to the target\'s "unpaused" ' +
    'report) divided by that one copy. The target writes pages as soon as the new domain\'s memory exists (as libxc\'s restore does); ' +
    'its vCPU threads come up meanwhile, and the sender suspends the guest only once they are.',
  '  Clark et al., "Live Migration of Virtual Machines", NSDI 2005: 60 ms downtime for a Quake 3 server, 210 ms for SPECweb99, ' +
    'as clients saw them (2005 hardware, gigabit Ethernet), to compare with the peer\'s column. The peer: udp-probe in a guest on host C, ' +
    `one request in flight, back to back, each answer checked (sequence number and checksum; bad answers: ${Math.max(...m.map((r) => c(r, 'peerBad')))}); ` +
    `resolution: one round trip at the outage's start, the peer's re-asking interval (${PEER_RETRY_MS} ms) at its end`].join('\n');
}
