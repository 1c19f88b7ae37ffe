/*
 * Crash durability: the host process is killed with SIGKILL while a guest writes, and every
 * write the guest saw acknowledged is in the image afterwards, for the PV path (blkback:
 * pwritev, fsync for BLKIF_OP_FLUSH_DISKCACHE) and the emulated one (the IDE model: pwritev,
 * fsync for FLUSH CACHE). Issue 17's "Durability" item.
 *
 * How the guest says what it saw, out of band and honestly: its `write-log` workload
 * (domu/workloads/write-log.ts) writes block b at sector b * 8 with a pattern derived from b, and
 * prints "write-log: acknowledged N" only once every block below N has been answered, and
 * "write-log: flushed N" only once a flush issued after those acknowledgements has been
 * answered. The lines travel the guest's console ring to xenconsoled, which appends them to the
 * VM's console.log with write(2): whatever the log holds when the host dies, the guest printed
 * after the acknowledgement it reports. A line lost with the host only makes the test claim less.
 *
 * What SIGKILL can and cannot test. A killed process leaves the kernel's page cache behind, so
 * reading the image afterwards checks that an acknowledged write had reached the kernel (the
 * pwritev returned before the response went out), not that it reached the platter. For flushes
 * the host runs under strace (when the machine has it), tracing fsync: every "flushed" line in
 * the log must be matched by a completed fsync of that image, which is all fsync promises; power
 * loss itself is out of reach of a test that keeps the machine running.
 *
 * After the kill, a new host starts on the same run directory (stale sockets, a stale
 * run/domain.json), the VM is created again (paused: its image must be reused, not re-created
 * or truncated) and destroyed, the host stops cleanly; then the image is read.
 */
import test from 'ava';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, openSync, readFileSync, readSync, closeSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { blockPattern } from '../domu/workloads/disk-check.ts';
import { WRITE_LOG_ACKED, WRITE_LOG_FLUSHED } from '../domu/workloads/write-log.ts';
import { CliProcess, rv } from './helpers/cli.ts';

const BS = 4096;
const IMAGE_MIB = 64;
const BLOCKS = (IMAGE_MIB << 20) / BS;
const SEED = 7;
const haveStrace = spawnSync('strace', ['-V']).status === 0;

/** `ringvisor host`, optionally under `strace -f -e trace=fsync,fdatasync -y`; `pid` is the node process. */
async function startHost(runDir: string, trace: string | null): Promise<{ proc: CliProcess; pid: number }> {
  const args = ['host', '--run-dir', runDir, '--memory', '160'];
  if (trace === null) {
    const proc = new CliProcess(args);
    await proc.waitFor(/ringvisor host up/);
    return { proc, pid: proc.child.pid! };
  }
  const proc = new CliProcess(args, { wrap: ['strace', '-f', '-qq', '--seccomp-bpf', '-e', 'trace=fsync,fdatasync', '-y', '-o', trace, '--'] });
  await proc.waitFor(/ringvisor host up/);
  // strace's only child is the host.
  const children = readFileSync(`/proc/${proc.child.pid}/task/${proc.child.pid}/children`, 'utf8').trim().split(/\s+/).map(Number);
  if (children.length !== 1) throw new Error(`strace has children ${children.join(',')}`);
  return { proc, pid: children[0]! };
}

function vmDir(dir: string, kind: 'pv' | 'hvm'): string {
  const d = join(dir, `durable-${kind}`);
  mkdirSync(d);
  writeFileSync(join(d, 'vm.cfg'), [
    `name = "durable-${kind}"`,
    'memory = 32',
    kind === 'hvm' ? 'type = "hvm"' : '',
    `create_images = [ "disk.img=${IMAGE_MIB}" ]`,
    `disk = [ 'disk.img,raw,${kind === 'hvm' ? 'hda' : 'xvda'},rw' ]`,
    'workload = "write-log"',
    `workload_args = [ "count=${BLOCKS}", "bs=${BS}", "iodepth=8", "flush_every=64", "report_every=16", "seed=${SEED}" ]`,
    'on_crash = "preserve"',
    '',
  ].join('\n'));
  return d;
}

/** The image, block by block: acknowledged blocks exact; every other sector the pattern or zeros. */
function checkImage(image: string, acked: number): { exact: number; laterWritten: number; problems: string[] } {
  const fd = openSync(image, 'r');
  const got = new Uint8Array(BS);
  const want = new Uint8Array(BS);
  const problems: string[] = [];
  let laterWritten = 0;
  try {
    for (let b = 0; b < BLOCKS && problems.length < 5; b++) {
      if (readSync(fd, got, 0, BS, b * BS) !== BS) { problems.push(`block ${b}: short read`); break; }
      blockPattern(want, SEED, b);
      if (b < acked) {
        const at = got.findIndex((x, i) => x !== want[i]);
        if (at >= 0) problems.push(`acknowledged block ${b} differs at byte ${at}`);
        continue;
      }
      for (let s = 0; s < BS; s += 512) {
        const sector = got.subarray(s, s + 512);
        const zero = sector.every((x) => x === 0);
        const written = sector.every((x, i) => x === want[s + i]);
        if (written && !zero) laterWritten++;
        if (!zero && !written) problems.push(`block ${b} sector ${s / 512} (not acknowledged) holds neither zeros nor its data`);
      }
    }
  } finally {
    closeSync(fd);
  }
  return { exact: acked, laterWritten, problems };
}

for (const kind of ['pv', 'hvm'] as const) {
  test.serial(`SIGKILL during ${kind === 'pv' ? 'PV (blkback)' : 'emulated IDE'} writes: every acknowledged write is in the image${haveStrace ? ', every acknowledged flush an fsync' : ''}`, async (t) => {
    const dir = mkdtempSync(join(tmpdir(), 'rv-dur-'));
    const runDir = join(dir, 'run');
    const at = ['--run-dir', runDir];
    const vm = vmDir(dir, kind);
    const trace = haveStrace ? join(dir, 'fsync.trace') : null;
    if (!haveStrace) t.log('strace not found: flushes are checked like writes only, not against fsync');
    let first: Awaited<ReturnType<typeof startHost>> | null = null;
    let second: CliProcess | null = null;
    try {
      first = await startHost(runDir, trace);
      const created = await rv([...at, 'create', vm]);
      t.is(created.code, 0, created.stderr);

      // Follow the console; kill the host once the disk has acknowledged 500 blocks or more, two flushes too.
      const cons = new CliProcess([...at, 'console', `durable-${kind}`]);
      await cons.waitFor(new RegExp(`(${WRITE_LOG_FLUSHED}\\d+[\\s\\S]*){2}`));
      await cons.waitFor(new RegExp(`${WRITE_LOG_ACKED}([5-9]\\d{2}|\\d{4,})\\b`));
      process.kill(first.pid, 'SIGKILL');
      await first.proc.exited;
      await cons.exited;

      const log = readFileSync(join(vm, 'console.log'), 'utf8');
      const acked = Math.max(0, ...[...log.matchAll(new RegExp(`${WRITE_LOG_ACKED}(\\d+)`, 'g'))].map((m) => Number(m[1])));
      const flushed = [...log.matchAll(new RegExp(`${WRITE_LOG_FLUSHED}(\\d+)`, 'g'))].map((m) => Number(m[1]));
      t.true(acked >= 500, `the log says ${acked} blocks acknowledged`);
      t.false(log.includes('workload-result'), 'the host was killed while the guest was still writing');
      t.true(flushed.every((f) => f <= acked), 'a flush never covers more than was acknowledged');

      if (trace !== null) {
        const image = join(vm, 'disk.img');
        const fsyncs = readFileSync(trace, 'utf8').split('\n').filter((l) => /\bf(data)?sync\(\d+</.test(l) && l.includes(`${image}>`) && /= 0$/.test(l));
        t.true(fsyncs.length >= flushed.length, `${flushed.length} flushes acknowledged, ${fsyncs.length} completed fsyncs of the image`);
      }

      // A new host on the same run directory; the VM comes back on the same image, untouched.
      second = new CliProcess(['host', ...at, '--memory', '160']);
      await second.waitFor(/ringvisor host up/);
      const again = await rv([...at, 'create', '-p', vm]);
      t.is(again.code, 0, again.stderr);
      t.notRegex(again.stderr, /created disk image/, 'the image is reused, not made again');
      t.is((await rv([...at, 'destroy', `durable-${kind}`])).code, 0);
      second.child.kill('SIGTERM');
      t.is(await second.exited, 0);
      second = null;

      const image = join(vm, 'disk.img');
      t.is(statSync(image).size, IMAGE_MIB << 20, 'the image keeps its size');
      const r = checkImage(image, acked);
      t.deepEqual(r.problems, []);
      t.log(`${kind}: ${acked} blocks acknowledged and intact, ${flushed.length} flushes acknowledged, ${r.laterWritten} sectors of unacknowledged writes also reached the image`);
    } finally {
      if (second) { second.child.kill('SIGKILL'); await second.exited; }
      if (first && first.proc.child.exitCode === null) { try { process.kill(first.pid, 'SIGKILL'); } catch { /* gone */ } await first.proc.exited; }
      if (existsSync(dir)) rmSync(dir, { recursive: true, force: true });
    }
  });
}
