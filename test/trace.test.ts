/*
 * The trace (issue 18 part 1): a recorded run parses as Trace Event JSON, its slices nest on
 * every track, and it holds a whole flow for a PV request (blkfront → blkback → disk → blkfront)
 * and for an emulated one (IDE command → trap/ioreq → device model → IRQ → completion) whose
 * timestamps increase along the flow.
 */
import test from 'ava';
import { SCENARIOS } from '../scenarios/registry.ts';
import { TraceRecording, parseClasses } from '../tools/trace/record.ts';
import { toTraceEvents, type TraceEvent } from '../dom0/lib/trace-json.ts';
import { TRC_ALL, TRC_BEGIN, TRC_END, TRC_HVM, TRC_HVM_TRAP, TRC_MEM, TRC_PV_HYPERCALL, type TraceRecord } from '../shared/public/trace.ts';
import { DEFAULT_WAIT_POLICY } from '../shared/wait.ts';
import { DOMID_XEN } from '../shared/public/xen.ts';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { execFile } from 'node:child_process';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { sourceFiles } from '../tools/docs/build.ts';
import { traceSites } from '../tools/docs/trace-sites.ts';
import { stripTracePoints } from '../scenarios/bench/strip-trace.ts';
import { pairedRatio, traceSummary } from '../scenarios/bench/trace.ts';
import type { BenchRow } from '../scenarios/bench/types.ts';

test('-e takes class names or a number, and refuses an unknown class', (t) => {
  t.is(parseClasses(undefined), TRC_ALL);
  t.is(parseClasses('hvm,mem'), TRC_HVM | TRC_MEM);
  t.is(parseClasses('0x0008f000'), TRC_HVM);
  t.throws(() => parseClasses('nope'), { message: /unknown trace class "nope"/ });
});

test('a recorded run holds whole PV and emulated request flows, with nested slices', async (t) => {
  const scenario = SCENARIOS.find((s) => s.name === 'pv-vs-emulated')!;
  const rec = new TraceRecording(TRC_ALL);
  await scenario.run(() => {}, { wait: DEFAULT_WAIT_POLICY });
  const file = JSON.parse(JSON.stringify(toTraceEvents(rec.stop()))) as { traceEvents: TraceEvent[] };
  const evs = file.traceEvents;
  t.true(Array.isArray(evs) && evs.length > 0);
  for (const e of evs) {
    t.true(typeof e.name === 'string' && typeof e.ph === 'string' && Number.isFinite(e.ts) && Number.isInteger(e.pid) && Number.isInteger(e.tid));
  }
  // Nesting: per track, every E closes the innermost open B of the same name; none stays open.
  const stacks = new Map<string, TraceEvent[]>();
  for (const e of evs) {
    const k = `${e.pid}:${e.tid}`;
    const s = stacks.get(k) ?? [];
    stacks.set(k, s);
    if (e.ph === 'B') s.push(e);
    if (e.ph === 'E') {
      const open = s.pop();
      if (open?.name !== e.name || open.ts > e.ts) t.fail(`track ${k}: ${e.name} ends at ${e.ts} but ${open?.name} is open`);
    }
  }
  for (const [k, s] of stacks) t.is(s.length, 0, `track ${k} left open`);

  // Flows: group s/t/f by id, in file order.
  const flows = new Map<number, TraceEvent[]>();
  for (const e of evs) if (e.ph === 's' || e.ph === 't' || e.ph === 'f') flows.set(e.id!, [...(flows.get(e.id!) ?? []), e]);
  const via = (f: TraceEvent[]) => f.map((e) => e.args!.via as string);
  const whole = (f: TraceEvent[]) => f[0]!.ph === 's' && f[f.length - 1]!.ph === 'f' && f.every((e, i) => i === 0 || e.ts >= f[i - 1]!.ts)
    && f[f.length - 1]!.ts > f[0]!.ts;
  // Each flow point sits inside a slice on its track that starts where it is.
  const sliceAt = (e: TraceEvent) => evs.some((s) => (s.ph === 'B' || s.ph === 'X') && s.pid === e.pid && s.tid === e.tid && s.ts === e.ts);

  const pv = [...flows.values()].find((f) => whole(f) && via(f).join(',') === 'blkfront,blkback,disk,blkfront');
  t.truthy(pv, 'a PV request flow: submit, blkback, disk, completion');
  t.not(pv![0]!.pid, pv![1]!.pid, 'the backend runs in another domain');
  t.true(pv!.every(sliceAt));

  const emu = [...flows.values()].find((f) => {
    const v = via(f);
    return whole(f) && v[0] === 'ide driver' && v.includes('trap') && v.includes('device model') && v.includes('irq') && v[v.length - 1] === 'ide driver';
  });
  t.truthy(emu, 'an emulated request flow: IDE command, trap/ioreq, device model, IRQ, completion');
  t.true(emu!.every(sliceAt));
  // The device model's step follows the trap that caused it.
  const v = via(emu!);
  t.true(v.indexOf('trap') < v.indexOf('device model'));

  // The scheduler's decisions: a pCPU slot changing hands (TRC_SCHED_SWITCH), from the vCPU
  // threads that made them, naming the slot and both vCPUs (domid << 8 | vcpu, -1 for idle).
  const switches = evs.filter((e) => e.cat === 'sched' && e.name === 'schedule (switch)');
  t.true(switches.length > 0, 'scheduler switches are in the trace');
  t.true(switches.every((e) => [e.args?.pcpu, e.args?.prev, e.args?.next].every((x) => Number.isInteger(x))), JSON.stringify(switches[0]));
  // ... and from the control thread, on its own track: its timer interrupt's ticks.
  const control = evs.filter((e) => e.pid === DOMID_XEN);
  t.true(control.some((e) => e.ph === 'B' && e.name === 'csched_tick (every slot)'), 'the control thread\'s ticks');
  t.true(evs.some((e) => e.ph === 'M' && e.pid === DOMID_XEN && e.name === 'thread_name' && /control thread/.test(String(e.args?.name))));

  // Every hypercall, named by what it called: the guests' event sends, Dom0's too.
  const calls = evs.filter((e) => e.cat === 'pv' && e.ph === 'X' && /^\w+\(|^set_timer_op$/.test(e.name));
  t.true(calls.some((e) => e.name === 'event_channel_op(EVTCHNOP_send)' && e.pid !== 0), 'a guest\'s EVTCHNOP_send');
  t.true(calls.some((e) => e.name === 'event_channel_op(EVTCHNOP_send)' && e.pid === 0), 'Dom0\'s');
  t.true(calls.some((e) => e.name === 'sched_op(SCHEDOP_block)'), 'a vCPU blocking');
});

test('the trace suite\'s baseline: every trace point cut from a copy of the tree, and an unknown shape refused', (t) => {
  const files = sourceFiles().filter((f) => /^(shared|hypervisor|dom0|backends|domu)\//.test(f) && f !== 'hypervisor/trace.ts' && f !== 'shared/public/trace.ts');
  const read = (f: string) => readFileSync(f, 'utf8');
  const before = traceSites(files, read);
  t.true(before.size >= 10, 'the tree has trace points to cut');
  let cut = 0;
  const stripped = new Map(files.map((f) => {
    const r = stripTracePoints(read(f), f);
    cut += r.cut;
    return [f, r.text];
  }));
  t.true(cut >= [...before.values()].reduce((a, s) => a + s.length, 0));
  t.is(traceSites(files, (f) => stripped.get(f)!).size, 0, 'no trace point is left in the baseline');
  t.notRegex(stripped.get('hypervisor/hypercall.ts')!, /tr\.on\(|tr\.write\(/);
  t.regex(stripped.get('hypervisor/ioreq-send.ts')!, /pio\([^)]*\): number \{\n\s*return this\.send\(IOREQ_TYPE_PIO/);
  t.throws(() => stripTracePoints('  foo(() => k.hypercall.xentrace(TRC_X, 0, 0, 0, 0));\n', 'x.ts'), { message: /x\.ts:1: a trace point this does not know how to cut/ });
});

test('a trace point this writer does not list is named by its constant and nests like the others', (t) => {
  const rec = (event: number, ts: number): TraceRecord => ({ event, domid: 1, vcpu: 0, ts, data: [7, 0, 0, 0] });
  const json = toTraceEvents([rec(TRC_HVM_TRAP | TRC_BEGIN, 1), rec(TRC_PV_HYPERCALL, 1.5), rec(TRC_HVM_TRAP | TRC_END, 2), rec(TRC_HVM | 0x0ff, 3)]);
  const evs = json.traceEvents.filter((e) => e.ph !== 'M');
  // (A hypercall's record is listed: named by the hypercall its words name, here number 7.)
  t.deepEqual(evs.map((e) => [e.ph, e.name, e.cat]), [['B', 'hvm trap', 'hvm'], ['X', 'hypercall 7(op 0)', 'pv'], ['E', 'hvm trap', undefined], ['X', 'event 0x8f0ff', 'unknown']]);
  t.is(evs[0]!.args!.d0, 7);
});

test('npm start -- NAME --trace FILE records the scenario; a bad class is a usage error', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'rv-trace-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const file = join(dir, 'ring-tour.json');
  const run = (args: string[]) => new Promise<{ code: number; stdout: string; stderr: string }>((resolve) => {
    execFile(process.execPath, ['--import', 'tsx', 'scenarios/main.ts', ...args], (err, stdout, stderr) => resolve({ code: err ? Number(err.code ?? 1) : 0, stdout, stderr }));
  });
  const r = await run(['ring-tour', '--trace', file, '--trace-classes', 'pv']);
  t.is(r.code, 0, r.stderr);
  const n = Number(/trace: (\d+) records in /.exec(r.stdout)?.[1]);
  t.true(n > 0, r.stdout.slice(-300));
  const evs = (JSON.parse(readFileSync(file, 'utf8')) as { traceEvents: TraceEvent[] }).traceEvents.filter((e) => e.ph !== 'M');
  t.true(evs.some((e) => e.name === 'evtchn_send'), 'the ring\'s notifications');
  t.true(evs.every((e) => e.cat === undefined || e.cat === 'pv' || e.cat === 'gen'), 'only the pv class');
  const bad = await run(['ring-tour', '--trace', file, '--trace-classes', 'nope']);
  t.is(bad.code, 2);
  t.regex(bad.stderr, /unknown trace class "nope"/);
});

test('the trace suite prints off / cut and on / off per path from its rows', (t) => {
  const row = (path: string, mode: string, reqPerSec: number): BenchRow => ({
    suite: 'trace', path, wait: 'irq', workload: mode, blockSize: 4096, queueDepth: 32, reqPerSec, MBps: 0, counters: {}, engine: `trace-${mode}`, min: reqPerSec - 1, max: reqPerSec + 1,
  });
  const text = traceSummary([row('pv', 'none', 1000), row('pv', 'off', 990), row('pv', 'on', 800), row('emu-dma', 'off', 50), row('emu-dma', 'on', 40)])!;
  t.regex(text, /pv +wait=irq: off \/ cut = 0\.990 \(goal ≥ 0\.98\) +on \/ off = 0\.808/);
  t.regex(text, /emu-dma +wait=irq: off \/ cut = n\/a .*on \/ off = 0\.800/);
  t.regex(text, /cut median 1000\/s, min 999, max 1001/);
  t.is(traceSummary([]), null);
});

test('with the repeats\' samples, the ratio is taken round by round: a slow round slows all three alike', (t) => {
  // Round i's three runs were back to back: round 2 ran on a busy machine, round 3 on a quiet one.
  const rates = { none: [1000, 1000, 500, 2000], off: [990, 990, 495, 1980], on: [800, 800, 400, 1600] };
  const row = (mode: keyof typeof rates): BenchRow => ({
    suite: 'trace', path: 'pv', wait: 'irq', workload: mode, blockSize: 4096, queueDepth: 32, reqPerSec: [...rates[mode]].sort((a, b) => a - b)[2]!,
    MBps: 0, counters: {}, engine: `trace-${mode}`, samples: rates[mode].map((reqPerSec) => ({ reqPerSec })),
  });
  const p = pairedRatio(row('off'), row('none'))!;
  t.deepEqual([p.n, p.min.toFixed(3), p.max.toFixed(3), p.median.toFixed(3)], [4, '0.990', '0.990', '0.990'], 'each round: 0.99');
  const text = traceSummary([row('none'), row('off'), row('on')])!;
  t.regex(text, /pv +wait=irq: off \/ cut = 0\.990 \(goal ≥ 0\.98\) +on \/ off = 0\.808/);
  t.regex(text, /off \/ cut, round by round: median 0\.990, quartiles 0\.990\.\.0\.990, range 0\.990\.\.0\.990 over 4 rounds/);
  t.is(pairedRatio(row('off'), { ...row('none'), samples: undefined }), null);
});
