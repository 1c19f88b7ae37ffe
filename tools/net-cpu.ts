/*
 * Where a guest→guest UDP stream spends its CPU: the host threads' CPU time per packet, figures
 * that a loaded machine distorts far less than packets per second.
 *
 *   node --import tsx tools/net-cpu.ts [--path pv|floor] [--size 1472] [--count 100000] [--runs 4] [--wait irq|poll]
 *
 * `pv` boots a host (Dom0 with netback and xenbr0), starts one pair of PV guests and runs `runs`
 * udp-streams between them (the first one warms them up, as the bench's warm-up does); `floor`
 * runs the bench's floor (two stacks inside Dom0) `runs` times. For each run: packets per second,
 * the hypervisor's per-packet counters, and the CPU time of every thread of this process that
 * used some, in µs per datagram, read from Linux's /proc/self/task/TID/stat (utime + stime, in
 * clock ticks of 10 ms: use enough datagrams). Threads are named by their thread id; the vCPU
 * threads are the ones that start with their domain (Dom0 first, then the receiver and the
 * sender), V8's compiler threads show while fresh guests are still being JIT-compiled, and the
 * main thread's share includes this tool's own look at /proc every 20 ms.
 *
 * Not a Xen tool: xentop shows a domain's CPU seconds the same way (its vCPUs' runstate time).
 */
import { readdirSync, readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { NetHost } from '../scenarios/net/harness.ts';
import type { NetTask } from '../scenarios/net/protocol.ts';
import { parseWaitPolicy } from '../shared/wait.ts';

const A = { mac: '00:16:3e:00:0c:0a', ip: '10.0.12.10' };
const B = { mac: '00:16:3e:00:0c:0b', ip: '10.0.12.11' };
const TICK_MS = 10;

const { values: o } = parseArgs({
  options: {
    path: { type: 'string', default: 'pv' }, size: { type: 'string', default: '1472' }, count: { type: 'string', default: '100000' },
    runs: { type: 'string', default: '4' }, wait: { type: 'string', default: 'irq' },
  },
});
const size = Number(o.size);
const count = Number(o.count);
const runs = Number(o.runs);
if (!(o.path === 'pv' || o.path === 'floor') || !(size >= 8 && count > 0 && runs > 0)) {
  process.stderr.write('usage: node --import tsx tools/net-cpu.ts [--path pv|floor] [--size N] [--count N] [--runs N] [--wait irq|poll]\n');
  process.exit(2);
}

/** CPU ms used so far by each live thread of this process. */
function threadCpu(): Map<string, number> {
  const m = new Map<string, number>();
  for (const tid of readdirSync('/proc/self/task')) {
    try {
      const st = readFileSync(`/proc/self/task/${tid}/stat`, 'utf8');
      const f = st.slice(st.lastIndexOf(')') + 2).split(' ');
      m.set(tid, (Number(f[11]) + Number(f[12])) * TICK_MS);
    } catch { /* the thread ended */ }
  }
  return m;
}

/** Follows the threads during a run: a guest's thread may end before the run's end is heard. */
class CpuWatch {
  private readonly start = threadCpu();
  private readonly last = new Map(this.start);
  private readonly timer = setInterval(() => this.sample(), 20);
  private sample(): void { for (const [t, v] of threadCpu()) this.last.set(t, v); }
  /** µs per datagram of each thread that used more than 0.05 µs per datagram. */
  stop(): string {
    clearInterval(this.timer);
    this.sample();
    const out: string[] = [];
    for (const [t, v] of this.last) {
      const us = ((v - (this.start.get(t) ?? 0)) * 1000) / count;
      if (us > 0.05) out.push(`${t}:${us.toFixed(2)}`);
    }
    return out.join(' ');
  }
}

const KEYS = ['notifications', 'grant_copies', 'hypercalls', 'blocks', 'sched_evt_wakes', 'sched_slot_wakes'];
const per = (after: Record<string, number>, before: Record<string, number>) =>
  KEYS.map((k) => `${k} ${(((after[k] ?? 0) - (before[k] ?? 0)) / count).toFixed(4)}`).join(', ');

const h = await NetHost.boot({ memoryMiB: 256, wait: parseWaitPolicy(o.wait, '--wait') });
try {
  if (o.path === 'floor') {
    for (let i = 0; i < runs; i++) {
      const before = h.allCounters();
      const w = new CpuWatch();
      const f = await h.ask({ kind: 'floor-run', bridge: 'xenbr0', workload: 'udp-stream', size, count }, 'floor-reply');
      if (f.error !== undefined) throw new Error(f.error);
      console.log(`floor run ${i}: ${Math.round(f.pps)} pkt/s; per packet: ${per(h.allCounters(), before)}; cpu µs/pkt by thread: ${w.stop()}`);
    }
  } else {
    const recvTasks: NetTask[] = [];
    const sendTasks: NetTask[] = [{ kind: 'ping', target: B.ip, count: 1 }];
    for (let i = 0; i < runs; i++) {
      recvTasks.push({ kind: 'stream-recv', port: 5001 + i });
      sendTasks.push({ kind: 'barrier', name: `go${i}` }, { kind: 'stream-send', target: B.ip, port: 5001 + i, size, count });
    }
    const recv = await h.start({ vif: B, tasks: recvTasks });
    const send = await h.start({ vif: A, tasks: sendTasks });
    const befores: Record<string, number>[] = [];
    const cpus: string[] = [];
    for (let i = 0; i < runs; i++) {
      await recv.note(`listen:${5001 + i}`);
      await send.note(`barrier:go${i}`);
      befores.push(h.allCounters());
      const w = new CpuWatch();
      await send.go(`go${i}`);
      // The sender's next barrier (or its end) says this stream is over.
      if (i + 1 < runs) await send.note(`barrier:go${i + 1}`);
      else await send.outcome;
      cpus.push(w.stop());
    }
    const so = await send.outcome;
    for (let i = 0; i < runs; i++) {
      // The counters the harness took when it heard this stream's sender finish.
      const t = so.tasks[2 + 2 * i];
      if (t.result?.kind !== 'stream') throw new Error(`run ${i}: ${t.error}`);
      console.log(`pv run ${i}${i === 0 ? ' (warm-up)' : ''}: ${Math.round(t.result.result.pps)} pkt/s, ${t.result.result.lost} lost; `
        + `per packet: ${per(t.counters, befores[i])}; cpu µs/pkt by thread: ${cpus[i]}`);
    }
    await recv.outcome;
  }
} finally {
  await h.close();
}
