/*
 * The docs site's first page: one PV request and one emulated request, as a recorded trace saw
 * them (./request-trace.ts), drawn as timelines: a row per track (a vCPU thread, or a backend
 * running on one), each slice a box at its time and depth, the request's flow as arrows from
 * step to step, and every slice a link to the line of source whose trace point wrote it
 * (./trace-sites.ts). Below each drawing the same slices as a table, in time order.
 *
 * Xen: the picture xenalyze's summaries and a Perfetto view of xentrace's records give; here it is
 * drawn in SVG by this file, from the JSON (dom0/lib/trace-json.ts), never by hand.
 *
 * A flow is complete when it runs from its start ('s') to its finish ('f') through the steps its
 * path must take: PV blkfront → blkback → disk → blkfront; emulated IDE driver → trap(s) →
 * device model → IRQ → IDE driver (the checks test/trace.test.ts makes of any recording).
 */
import type { TraceEvent, TraceFile } from '../../dom0/lib/trace-json.ts';
import type { Site } from './trace-sites.ts';

export type PathKind = 'pv' | 'emulated';

interface Slice {
  name: string; cat: string; pid: number; tid: number; ts: number; end: number; depth: number;
  args: Record<string, unknown>; instant: boolean;
}

export interface Flow { id: number; points: TraceEvent[] }

const via = (f: Flow) => f.points.map((e) => String(e.args?.via));

/** Whether a flow is a whole request of its kind, in time order. */
export function isComplete(f: Flow, kind: PathKind): boolean {
  const p = f.points;
  if (p.length < 2 || p[0]!.ph !== 's' || p[p.length - 1]!.ph !== 'f') return false;
  if (!p.every((e, i) => i === 0 || e.ts >= p[i - 1]!.ts) || !(p[p.length - 1]!.ts > p[0]!.ts)) return false;
  const v = via(f);
  if (kind === 'pv') return v.join(',') === 'blkfront,blkback,disk,blkfront';
  const trap = v.indexOf('trap');
  const dm = v.indexOf('device model');
  return v[0] === 'ide driver' && trap > 0 && dm > trap && v.indexOf('irq') > dm && v[v.length - 1] === 'ide driver';
}

export function flowsOf(trace: TraceFile): Flow[] {
  const byId = new Map<number, TraceEvent[]>();
  for (const e of trace.traceEvents) {
    if (e.ph === 's' || e.ph === 't' || e.ph === 'f') (byId.get(e.id!) ?? byId.set(e.id!, []).get(e.id!)!).push(e);
  }
  return [...byId].map(([id, points]) => ({ id, points }));
}

/** The complete flow of a kind in the middle of the run (past boot's probes, before power-off). */
export function pickFlow(trace: TraceFile, kind: PathKind): Flow | null {
  const whole = flowsOf(trace).filter((f) => isComplete(f, kind));
  return whole.length === 0 ? null : whole[Math.floor(whole.length / 2)]!;
}

/** Every slice (B/E pairs, and X instants) of the trace with its nesting depth on its track. */
function slicesOf(trace: TraceFile): Slice[] {
  const out: Slice[] = [];
  const open = new Map<string, Slice[]>();
  for (const e of trace.traceEvents) {
    const key = `${e.pid}:${e.tid}`;
    const stack = open.get(key) ?? open.set(key, []).get(key)!;
    if (e.ph === 'B') {
      const s: Slice = { name: e.name, cat: e.cat ?? '', pid: e.pid, tid: e.tid, ts: e.ts, end: e.ts, depth: stack.length, args: e.args ?? {}, instant: false };
      stack.push(s);
      out.push(s);
    } else if (e.ph === 'E') {
      const s = stack.pop();
      if (s) s.end = e.ts;
    } else if (e.ph === 'X') {
      out.push({ name: e.name, cat: e.cat ?? '', pid: e.pid, tid: e.tid, ts: e.ts, end: e.ts + (e.dur ?? 0), depth: stack.length, args: e.args ?? {}, instant: true });
    }
  }
  return out;
}

const esc = (s: string) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
const COLOURS: Record<string, string> = {
  blk: '#4f86c6', ide: '#c98a3a', hvm: '#c4534f', pv: '#5aa36b', mem: '#8a6fbf', ring: '#9aa5b1', sched: '#777', gen: '#777',
};
const us = (x: number) => (x >= 100 ? x.toFixed(0) : x >= 10 ? x.toFixed(1) : x.toFixed(2));

export interface PathPage {
  kind: PathKind;
  flow: Flow;
  /** Slices drawn, in time order, with the source each links to. */
  steps: { slice: Slice; site: Site | null; sites: Site[]; onFlow: boolean }[];
  html: string;
}

/**
 * One request's timeline. `linkFor(site)` is the page (and anchor) of a source line, relative to
 * the page this goes in; `names` labels processes and threads as the trace's metadata does.
 */
export function renderPath(trace: TraceFile, kind: PathKind, sites: ReadonlyMap<string, Site[]>, linkFor: (s: Site) => string): PathPage | null {
  const flow = pickFlow(trace, kind);
  if (!flow) return null;
  const t0 = flow.points[0]!.ts;
  const t1 = flow.points[flow.points.length - 1]!.ts;
  const pad = Math.max((t1 - t0) * 0.03, 1);
  const [from, to] = [t0 - pad, t1 + pad];
  const pids = new Set(flow.points.map((p) => p.pid));
  const all = slicesOf(trace).filter((s) => pids.has(s.pid) && s.end >= from && s.ts <= to);
  // Tracks: those the flow passes, then any other of the same domains with something in the window.
  const trackKey = (pid: number, tid: number) => `${pid}:${tid}`;
  const keys: string[] = [];
  for (const p of flow.points) if (!keys.includes(trackKey(p.pid, p.tid))) keys.push(trackKey(p.pid, p.tid));
  for (const s of all) if (!keys.includes(trackKey(s.pid, s.tid))) keys.push(trackKey(s.pid, s.tid));
  const procName = new Map<number, string>();
  const threadName = new Map<string, string>();
  for (const e of trace.traceEvents) {
    if (e.ph !== 'M') continue;
    if (e.name === 'process_name') procName.set(e.pid, String(e.args?.name));
    if (e.name === 'thread_name') threadName.set(trackKey(e.pid, e.tid), String(e.args?.name));
  }
  const label = (k: string) => {
    const [pid, tid] = k.split(':').map(Number) as [number, number];
    return `${procName.get(pid) ?? `d${pid}`} · ${threadName.get(k) ?? `thread ${tid}`}`;
  };

  // Geometry.
  const W = 1080, LEFT = 230, RIGHT = 16, ROW = 20, TOP = 34;
  const x = (ts: number) => LEFT + ((ts - from) / (to - from)) * (W - LEFT - RIGHT);
  const depthOf = new Map(keys.map((k) => [k, Math.max(0, ...all.filter((s) => trackKey(s.pid, s.tid) === k).map((s) => s.depth)) + 1]));
  const rowY = new Map<string, number>();
  let y = TOP;
  for (const k of keys) { rowY.set(k, y); y += depthOf.get(k)! * ROW + 12; }
  const H = y + 8;

  const flowPoint = (p: TraceEvent) => all.find((s) => s.pid === p.pid && s.tid === p.tid && s.ts === p.ts) ?? null;
  const onFlow = new Set(flow.points.map(flowPoint).filter((s): s is Slice => s !== null));
  const siteOf = (s: Slice) => sites.get(s.name) ?? [];
  // Two sites write the ring's events, the frontend ring's and the backend ring's: the record's
  // `backend` word says which. Other events with two sites (a trap by port or by MMIO) keep both.
  const sitesFor = (s: Slice, list: Site[]) =>
    list.length > 1 && 'backend' in s.args ? list.filter((l) => /^Back/.test(l.fn) === (s.args.backend === 1)) : list;
  const steps = all.sort((a, b) => a.ts - b.ts || a.depth - b.depth).map((s) => {
    const list = sitesFor(s, siteOf(s));
    return { slice: s, site: list[0] ?? null, sites: list, onFlow: onFlow.has(s) };
  });

  const svg: string[] = [];
  svg.push(`<svg class="timeline" viewBox="0 0 ${W} ${H}" width="${W}" height="${H}" role="img" aria-label="timeline of one ${kind === 'pv' ? 'PV' : 'emulated'} request">`);
  svg.push('<defs><marker id="arrow-' + kind + '" viewBox="0 0 8 8" refX="7" refY="4" markerWidth="7" markerHeight="7" orient="auto-start-reverse"><path d="M0,0 L8,4 L0,8 z" fill="#222"/></marker></defs>');
  // Time axis: about eight ticks at round microsecond steps.
  const span = to - from;
  const step = [1, 2, 5].flatMap((m) => [1, 10, 100, 1000, 10000, 100000].map((p) => m * p)).sort((a, b) => a - b).find((s) => span / s <= 8) ?? 1e6;
  for (let t = Math.ceil((from - t0) / step) * step; t0 + t <= to; t += step) {
    const xx = x(t0 + t).toFixed(1);
    svg.push(`<line x1="${xx}" y1="${TOP - 8}" x2="${xx}" y2="${H - 4}" stroke="#eee"/><text x="${xx}" y="${TOP - 12}" font-size="10" text-anchor="middle" fill="#666">${t >= 1000 ? `${t / 1000} ms` : `${t} µs`}</text>`);
  }
  for (const k of keys) {
    const ry = rowY.get(k)!;
    svg.push(`<rect x="0" y="${ry - 4}" width="${W}" height="${depthOf.get(k)! * ROW + 8}" fill="${keys.indexOf(k) % 2 ? '#fafbfc' : '#f3f5f7'}"/>`);
    svg.push(`<text x="6" y="${ry + 13}" font-size="11" fill="#333">${esc(label(k))}</text>`);
  }
  for (const st of steps) {
    const s = st.slice;
    const k = trackKey(s.pid, s.tid);
    const sy = rowY.get(k)! + s.depth * ROW;
    const x0 = Math.max(x(s.ts), LEFT);
    const w = Math.max(x(Math.min(s.end, to)) - x0, s.instant ? 0 : 2);
    const where = st.site ? `${st.site.file}:${st.site.line} ${st.site.fn}` : 'no trace point found';
    const tip = `${s.name}${s.instant ? '' : `, ${us(s.end - s.ts)} µs`} at +${us(s.ts - t0)} µs · ${where}`;
    const open = st.site ? `<a href="${esc(linkFor(st.site))}">` : '<g>';
    const close = st.site ? '</a>' : '</g>';
    const colour = COLOURS[s.cat] ?? '#999';
    if (s.instant) {
      const cx = x(s.ts);
      svg.push(`${open}<title>${esc(tip)}</title><path d="M${cx.toFixed(1)},${sy + 2} l5,7 l-5,7 l-5,-7 z" fill="${colour}" stroke="${st.onFlow ? '#111' : 'none'}"/>${close}`);
    } else {
      const text = w > 40 ? `<text x="${(x0 + 3).toFixed(1)}" y="${sy + 13}" font-size="10.5" fill="#fff">${esc(s.name.slice(0, Math.floor(w / 6.2)))}</text>` : '';
      svg.push(`${open}<title>${esc(tip)}</title><rect x="${x0.toFixed(1)}" y="${sy + 1}" width="${w.toFixed(1)}" height="${ROW - 3}" rx="2" fill="${colour}" stroke="${st.onFlow ? '#111' : 'none'}"/>${text}${close}`);
    }
  }
  // The flow: an arrow from each step to the next.
  for (let i = 1; i < flow.points.length; i++) {
    const a = flow.points[i - 1]!, b = flow.points[i]!;
    const ya = rowY.get(trackKey(a.pid, a.tid))! + (flowPoint(a)?.depth ?? 0) * ROW + ROW / 2;
    const yb = rowY.get(trackKey(b.pid, b.tid))! + (flowPoint(b)?.depth ?? 0) * ROW + ROW / 2;
    svg.push(`<path d="M${x(a.ts).toFixed(1)},${ya} C${(x(a.ts) + 18).toFixed(1)},${ya} ${(x(b.ts) - 18).toFixed(1)},${yb} ${x(b.ts).toFixed(1)},${yb}" fill="none" stroke="#222" stroke-width="1.4" marker-end="url(#arrow-${kind})"/>`);
  }
  svg.push('</svg>');

  const rows = steps.map((st) => {
    const s = st.slice;
    const src = st.sites.length === 0 ? '<i>no trace point found</i>'
      : st.sites.map((site) => `<a href="${esc(linkFor(site))}">${esc(site.file)}:${site.line}</a> <code>${esc(site.fn)}</code>`).join('<br>');
    const args = Object.entries(s.args).map(([a, v]) => `${a}=${v}`).join(' ');
    return `<tr${st.onFlow ? ' class="flow"' : ''}><td class="num">+${us(s.ts - t0)}</td><td class="num">${s.instant ? '' : us(s.end - s.ts)}</td>`
      + `<td>${esc(label(trackKey(s.pid, s.tid)))}</td><td>${'&nbsp;&nbsp;'.repeat(s.depth)}${esc(s.name)} <small>${esc(args)}</small></td><td>${src}</td></tr>`;
  });
  const total = t1 - t0;
  const title = kind === 'pv'
    ? 'A PV read: blkfront → the ring → blkback in Dom0 → the image file → the response and its event'
    : 'An emulated read: the IDE driver\'s register accesses trap, each an ioreq to the device model in Dom0, which reads the file by DMA and raises IRQ 14';
  const html = [
    `<section class="path" id="path-${kind}"><h2>${esc(title)}</h2>`,
    `<p>${us(total)} µs from the first step to the last, through ${flow.points.length} steps on ${new Set(flow.points.map((p) => trackKey(p.pid, p.tid))).size} tracks;`,
    ` ${steps.length} slices in this window. Boxes are slices (outlined: on this request's path), diamonds are instants, arrows follow the request. Each links to the line of source that recorded it.</p>`,
    `<div class="timeline-box">${svg.join('\n')}</div>`,
    '<table class="steps"><thead><tr><th>at (µs)</th><th>took (µs)</th><th>track</th><th>slice</th><th>recorded by</th></tr></thead><tbody>',
    rows.join('\n'),
    '</tbody></table></section>',
  ].join('\n');
  return { kind, flow, steps, html };
}
