/*
 * The scale suite's report: the table per N, the `why` table (where a request's CPU goes), the
 * 1-guest repeats, the pinned and no-slot rows, the limit the goal sets, and the goals against
 * what was measured.
 *
 * Xen: issue 17's goals for a consolidated host; the rows come from ./scale-row.ts.
 */
import { availableParallelism } from 'node:os';
import { median, type BenchRow } from './types.ts';
import { DOM0_WEIGHT, type ScaleRow } from './scale-figures.ts';

/** The headline: the issue's goals against what this run measured. */
export function scaleSummary(rows: readonly BenchRow[]): string | null {
  const all = rows.filter((r): r is ScaleRow => r.suite === 'scale' && 'scale' in r);
  if (all.length === 0) return null;
  const fmt = (x: number) => Math.round(x).toLocaleString('en-US');
  const lines: string[] = [];
  for (const wait of [...new Set(all.map((r) => r.wait))]) {
    const scale = all.filter((r) => r.wait === wait && r.scale.pcpus > 0 && !r.scale.pinned);
    const pinned = all.filter((r) => r.wait === wait && r.scale.pinned);
    if (scale.length === 0) continue;
    const noSlots = all.find((r) => r.wait === wait && r.scale.pcpus === 0);
    const peak = Math.max(...scale.map((r) => r.reqPerSec));
    lines.push(`scale (${wait}): guests  aggregate IOPS  of peak  per guest min / max  Jain   create ms (median, max)  host MiB/guest (+ guest RAM)`);
    for (const r of scale) {
      const s = r.scale;
      lines.push(`${String(s.guests).padStart(20)}  ${fmt(r.reqPerSec).padStart(14)}  ${(r.reqPerSec / peak).toFixed(2).padStart(7)}  ` +
        `${`${fmt(s.minIops)} / ${fmt(s.maxIops)}`.padStart(19)}  ${s.jain.toFixed(3)}  ` +
        `${`${s.createMedianMs.toFixed(0)}, ${Math.max(...s.createMs).toFixed(0)}`.padStart(23)}  ${`${s.rssMiBPerGuest.toFixed(1)} (+${s.guestRamMiB})`.padStart(12)}`);
    }
    // Why the aggregate moves with N: is the host CPU-bound, and what does a request cost it.
    lines.push(`why (${wait}):        guests  CPU µs/req  cores busy  slots held  slot dead  slot→run µs  event→run µs  host sleeps/req`);
    for (const r of [...scale, ...pinned, ...(noSlots ? [noSlots] : [])]) {
      const s = r.scale;
      const label = s.pcpus === 0 ? `${s.guests} no slots` : s.pinned ? `${s.guests} pinned` : String(s.guests);
      lines.push(`${label.padStart(29)}  ${r.counters.cpuUs.toFixed(1).padStart(10)}  ${s.coresBusy.toFixed(2).padStart(10)}  ` +
        `${(s.pcpus === 0 ? '-' : s.slotsHeld.toFixed(2)).padStart(10)}  ${(s.pcpus === 0 ? '-' : s.slotDead.toFixed(2)).padStart(9)}  ` +
        `${(s.pcpus === 0 ? '-' : s.slotWakeUs.toFixed(0)).padStart(11)}  ${s.evtWakeUs.toFixed(0).padStart(12)}  ${r.counters.hostSleeps.toFixed(3).padStart(15)}`);
    }
    const at16 = scale.find((r) => r.scale.guests === 16);
    const creates = scale.flatMap((r) => r.scale.createMs);
    const one = scale.find((r) => r.scale.guests === 1);
    const reps = one?.scale.repeatIops ?? [];
    const spread = reps.length > 1 ? (Math.max(...reps) - Math.min(...reps)) / median(reps) : NaN;
    lines.push(`Dom0's weight ${DOM0_WEIGHT} (guests 256); dom0SlotWait: the share of Dom0's busy time spent runnable without a pCPU slot`);
    // With cores busy beside each: a repeat whose two busy threads (Dom0's, the guest's) shared one
    // core shows about 1 where the others show nearly 2 (the host OS places threads, not ringvisor).
    if (reps.length > 1) {
      lines.push(`repeats (${wait}): 1 guest, the same job ${reps.length} times on a new guest each: ` +
        `${reps.map((x, i) => `${fmt(x)} IOPS (${(one!.scale.repeatCores[i] ?? 0).toFixed(2)} cores busy${sameCpuNote(one!.scale.repeatSameCpu?.[i])})`).join(' / ')}`);
      lines.push(`  (same CPU: the share of samples in which Dom0's vCPU thread and the guest's ran on one CPU: the host OS's choice)`);
    }
    lines.push(...pinnedLines(wait, pinned, scale, peak, fmt));
    if (noSlots && at16) {
      lines.push(`no slots (${wait}): 16 guests on a host with no pCPU slots (pcpus 0: the host OS alone runs the 17 threads): ` +
        `${fmt(noSlots.reqPerSec)} IOPS, ${(noSlots.reqPerSec / peak).toFixed(2)} of the peak with slots, ${noSlots.counters.cpuUs.toFixed(1)} CPU µs/request ` +
        `(with slots ${at16.counters.cpuUs.toFixed(1)}; 1 guest ${one ? one.counters.cpuUs.toFixed(1) : '-'})`);
    }
    // What the goal asks of the host's CPU: with every core busy, 0.9 of the peak allows at most this
    // CPU per request at 16 guests. Set against the 16-guest rows, with slots and with none.
    const top = scale.find((r) => r.reqPerSec === peak)!;
    const cores = availableParallelism();
    const allowed = (cores / Math.max(1e-9, top.scale.coresBusy) / 0.9) * top.counters.cpuUs;
    if (at16) {
      lines.push(`limit (${wait}): 0.9 of the peak at 16 guests needs ≤ ${allowed.toFixed(1)} CPU µs/request with all ${cores} cores busy ` +
        `(the peak's ${top.counters.cpuUs.toFixed(1)} µs at ${top.scale.coresBusy.toFixed(2)} cores); measured ${at16.counters.cpuUs.toFixed(1)} with slots` +
        `${noSlots ? `, ${noSlots.counters.cpuUs.toFixed(1)} with none (the host OS alone: one thread per vCPU)` : ''}`);
    }
    lines.push(`goals (${wait}): Jain ≥ 0.95 at every N (lowest ${Math.min(...scale.map((r) => r.scale.jain)).toFixed(3)}); ` +
      `16 guests ≥ 0.9 of peak (${at16 ? (at16.reqPerSec / peak).toFixed(2) : '-'}); create → running median ≤ 50 ms (${median(creates).toFixed(0)} ms); ` +
      `spread of repeats ≤ 15% (${Number.isNaN(spread) ? '-' : `${(spread * 100).toFixed(0)}%`})`);
  }
  return lines.join('\n');
}

/**
 * The pinned rows against the same N unpinned, run back to back: the 1-guest repeats' spread and
 * placement, the 16-guest aggregate and its CPU per request; and whether pinning was on at all.
 */
function pinnedLines(wait: string, pinned: ScaleRow[], scale: ScaleRow[], peak: number, fmt: (x: number) => string): string[] {
  if (pinned.length === 0) return [];
  const p = pinned[pinned.length - 1]!.scale.pinned!;
  const out = [`pinned (${wait}): dom0_vcpus_pin, guests cpus="1-" (their threads pinned to the other cores): ` +
    (p.unavailable !== null ? `OFF, ${p.unavailable}` : `on, ${p.threads} threads pinned (taskset, read back), ${p.failed} failed`)];
  const spread = (xs: number[]) => (xs.length > 1 ? `${(((Math.max(...xs) - Math.min(...xs)) / median(xs)) * 100).toFixed(0)}%` : '-');
  for (const r of pinned) {
    const s = r.scale;
    const un = scale.find((u) => u.scale.guests === s.guests);
    if (s.guests === 1) {
      out.push(`  1 guest pinned: ${s.repeatIops.map((x, i) => `${fmt(x)} (${(s.repeatCores[i] ?? 0).toFixed(2)} cores${sameCpuNote(s.repeatSameCpu[i])})`).join(' / ')}, ` +
        `spread ${spread(s.repeatIops)} (unpinned ${un ? spread(un.scale.repeatIops) : '-'})`);
    } else {
      out.push(`  ${s.guests} guests pinned: ${fmt(r.reqPerSec)} IOPS, ${(r.reqPerSec / peak).toFixed(2)} of the unpinned peak, Jain ${s.jain.toFixed(3)}, ` +
        `${r.counters.cpuUs.toFixed(1)} CPU µs/request at ${s.coresBusy.toFixed(2)} cores (unpinned ${un ? `${fmt(un.reqPerSec)}, ${un.counters.cpuUs.toFixed(1)} µs at ${un.scale.coresBusy.toFixed(2)} cores` : '-'})`);
    }
  }
  return out;
}

function sameCpuNote(x: number | null | undefined): string {
  return x === null || x === undefined ? '' : `, same CPU ${Math.round(x * 100)}%`;
}

