// The web view's page script: polls /api/sample (the toolstack's `top` sample) twice a second
// and draws it. Plain DOM and SVG, no framework: the page has four parts that each redraw from
// the latest sample, which is what a framework would add nothing to. Charts are uPlot (small,
// fast, no dependencies). Rates are differences of two samples over the time between them, as
// `ringvisor top` computes them (cli/top.ts). The memory picture, the scheduler's shares, the
// counters charted and the domains' other figures come from ./views.js, which shows whatever the
// sample carries by name, so a figure or counter the hypervisor adds appears without a change here.
'use strict';

const PERIOD_MS = 500;
const HISTORY = 240; // two minutes of samples
const COLOURS = ['#1f6fd1', '#d9822b', '#2e9d57', '#b23a48', '#7a4fb3', '#3a8fa3', '#8a6d1f', '#555'];
const SVGNS = 'http://www.w3.org/2000/svg';

let prev = null;
const history = { t: [], byDomain: new Map() }; // domid -> {name, series: {key: []}}
const charts = new Map(); // key -> {plot, ids}

const $ = (id) => document.getElementById(id);
const el = (tag, attrs = {}, text) => {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
  if (text !== undefined) e.textContent = text;
  return e;
};

function stateLetters(d) {
  return [d.state === 'dying' ? 'd' : '-', d.state === 'shutdown' && d.shutdown_reason !== 'crash' ? 's' : '-',
    d.blocked ? 'b' : '-', d.state === 'shutdown' && d.shutdown_reason === 'crash' ? 'c' : '-',
    d.state === 'paused' ? 'p' : '-', d.running ? 'r' : '-'].join('');
}

const V = globalThis.RingvisorViews; // ./views.js: the generic panels' figures

/** CPU % and every counter per second (whatever counters the hypervisor keeps), and grant ops summed. */
function rates(d, dt) {
  const before = prev && prev.domains.find((p) => p.domid === d.domid && p.name === d.name);
  const out = { cpu: 0, ...V.counterRates(d, before, dt) };
  out.grant_ops = (out.grant_maps || 0) + (out.grant_unmaps || 0) + (out.grant_copies || 0);
  if (before && dt > 0) out.cpu = (d.cpu_time_ms - before.cpu_time_ms) / 10 / dt;
  return out;
}

function drawSummary(s) {
  const n = (f) => s.domains.filter(f).length;
  $('summary').textContent = `${new Date(s.time).toLocaleTimeString()} · ${s.domains.length} domains ` +
    `(${n((d) => d.running)} running, ${n((d) => d.blocked)} blocked, ${n((d) => d.state === 'paused')} paused) · ` +
    `${s.nr_cpus} CPUs · ${((s.total_pages - s.free_pages) * 4 / 1024).toFixed(0)} of ${(s.total_pages * 4 / 1024).toFixed(0)} MiB used`;
  const bar = $('memory');
  bar.replaceChildren();
  s.domains.forEach((d, i) => {
    const part = el('div', { title: `${d.name}: ${d.tot_pages * 4 / 1024} MiB` }, `${d.name} ${(d.tot_pages * 4 / 1024).toFixed(0)} MiB`);
    part.style.width = `${(100 * d.tot_pages) / s.total_pages}%`;
    part.style.background = COLOURS[i % COLOURS.length];
    bar.append(part);
  });
  const free = el('div', { title: 'free' }, `free ${(s.free_pages * 4 / 1024).toFixed(0)} MiB`);
  free.style.cssText = `width:${(100 * s.free_pages) / s.total_pages}%;color:#37424c`;
  bar.append(free);
}

function drawDomains(s, dt) {
  const body = $('domains').querySelector('tbody');
  body.replaceChildren();
  for (const d of s.domains) {
    const r = rates(d, dt);
    const tr = el('tr', { 'data-domid': d.domid, 'data-name': d.name });
    const n = (k) => (r[k] || 0).toFixed(0);
    const cells = [d.domid, d.name, stateLetters(d), r.cpu.toFixed(1), (d.tot_pages * 4 / 1024).toFixed(0), d.vcpus,
      n('notifications'), n('hypercalls'), n('grant_ops'), n('traps'), n('ioreqs'),
      V.otherFigures(d).map(([k, v]) => `${k} ${v}`).join(' ')];
    cells.forEach((c, i) => tr.append(el('td', i === 2 ? { class: 'state' } : {}, String(c))));
    const link = el('a', { href: `/api/console/${d.domid}` }, 'console');
    link.addEventListener('click', (ev) => { ev.preventDefault(); showConsole(d); });
    const td = el('td');
    td.append(link);
    tr.append(td);
    body.append(tr);
  }
}

/** Every `*_pages` figure there is: the host's, then a row per domain with its bar (tot of max). */
function drawMemoryPicture(s) {
  const m = V.memoryPicture(s);
  $('host-memory').textContent = m.host.map((h) => `${h.label} ${h.mib.toFixed(1)} MiB`).join(' · ');
  $('host-mm').textContent = V.hostFigures(s).map(([k, v]) => `${k.replace(/_/g, ' ')} ${v}`).join(' · ');
  const table = $('memory-picture');
  const head = el('tr');
  for (const t of ['Domain', '', ...m.columns.map((c) => c.label)]) head.append(el('th', {}, t));
  table.querySelector('thead').replaceChildren(head);
  const body = table.querySelector('tbody');
  body.replaceChildren();
  const most = Math.max(1, ...m.rows.map((r) => r.max || r.tot));
  for (const r of m.rows) {
    const tr = el('tr', { 'data-domid': r.domid });
    tr.append(el('td', {}, r.name));
    const bar = el('td', { class: 'bar' });
    const outer = el('div', { class: 'mem-max', title: `max ${r.max.toFixed(1)} MiB` });
    outer.style.width = `${(160 * (r.max || r.tot)) / most}px`;
    const inner = el('div', { class: 'mem-tot', title: `tot ${r.tot.toFixed(1)} MiB` });
    inner.style.width = `${r.max > 0 ? Math.min(100, (100 * r.tot) / r.max) : 100}%`;
    outer.append(inner);
    bar.append(outer);
    tr.append(bar);
    r.mib.forEach((v, i) => tr.append(el('td', { 'data-figure': m.columns[i].name }, v === null ? '' : v.toFixed(1))));
    body.append(tr);
  }
}

/** Weight, cap, the share a weight entitles a domain to, and what it used: two bars per domain. */
function drawShares(s) {
  const sh = V.schedShares(s, prev);
  $('pcpus').textContent = sh.pcpus.length === 0 ? 'No pCPU slots: the host OS schedules the vCPU threads (--pcpus 0).'
    : sh.pcpus.map((p) => `pCPU ${p.cpu}: ${p.curr} (${(100 * p.load).toFixed(0)}% busy since boot)`).join(' · ');
  const box = $('shares');
  box.replaceChildren();
  const scale = Math.max(100, ...sh.rows.map((r) => Math.max(r.entitled, r.used)));
  for (const r of sh.rows) {
    const row = el('div', { class: 'share', 'data-domid': r.domid, 'data-weight': r.weight });
    row.append(el('span', { class: 'who' }, `${r.name} — weight ${r.weight}${r.cap ? `, cap ${r.cap}%` : ''}, ${r.vcpus} vCPU${r.vcpus > 1 ? 's' : ''}`));
    for (const [cls, v, what] of [['entitled', r.entitled, 'entitled if all busy'], ['used', r.used, 'used']]) {
      const b = el('div', { class: `sbar ${cls}`, title: `${what}: ${v.toFixed(1)}% of one pCPU` }, `${v.toFixed(0)}%`);
      b.style.width = `${Math.max(2, (300 * v) / scale)}px`;
      row.append(b);
    }
    box.append(row);
  }
}

/** A ring as a circle of slots; arcs for what is in flight, ticks for the indices. */
function ringSvg(r) {
  const size = 120, c = size / 2, R = 44;
  const svg = document.createElementNS(SVGNS, 'svg');
  svg.setAttribute('width', size);
  svg.setAttribute('height', size);
  const at = (idx, rad) => {
    const a = ((idx % r.size) / r.size) * 2 * Math.PI - Math.PI / 2;
    return [c + rad * Math.cos(a), c + rad * Math.sin(a)];
  };
  const circle = document.createElementNS(SVGNS, 'circle');
  circle.setAttribute('cx', c); circle.setAttribute('cy', c); circle.setAttribute('r', R);
  circle.setAttribute('fill', 'none'); circle.setAttribute('stroke', '#dde2e7'); circle.setAttribute('stroke-width', 10);
  svg.append(circle);
  // In flight: from rsp_prod (answered) to req_prod (published).
  const inflight = (r.req_prod - r.rsp_prod) >>> 0;
  for (let k = 0; k < Math.min(inflight, r.size); k++) {
    const [x, y] = at(r.rsp_prod + k + 0.5, R);
    const dot = document.createElementNS(SVGNS, 'circle');
    dot.setAttribute('cx', x); dot.setAttribute('cy', y); dot.setAttribute('r', Math.max(1.5, Math.min(4, 120 / r.size)));
    dot.setAttribute('fill', ((r.req_cons - r.rsp_prod) >>> 0) > k ? '#2e9d57' : '#1f6fd1');
    svg.append(dot);
  }
  const tick = (idx, colour, inner, outer, width) => {
    const [x1, y1] = at(idx, inner), [x2, y2] = at(idx, outer);
    const l = document.createElementNS(SVGNS, 'line');
    l.setAttribute('x1', x1); l.setAttribute('y1', y1); l.setAttribute('x2', x2); l.setAttribute('y2', y2);
    l.setAttribute('stroke', colour); l.setAttribute('stroke-width', width);
    svg.append(l);
  };
  tick(r.req_prod, '#1f6fd1', R - 9, R + 9, 2.5);
  tick(r.req_cons, '#2e9d57', R - 7, R + 7, 2);
  tick(r.rsp_prod, '#d9822b', R - 9, R + 9, 2.5);
  tick(r.req_event, '#1f6fd1', R + 10, R + 15, 1.5);
  tick(r.rsp_event, '#d9822b', R + 10, R + 15, 1.5);
  const label = document.createElementNS(SVGNS, 'text');
  label.setAttribute('x', c); label.setAttribute('y', c + 4); label.setAttribute('text-anchor', 'middle');
  label.setAttribute('font-size', '11');
  label.textContent = `${inflight} in flight`;
  svg.append(label);
  return svg;
}

function drawDevices(s) {
  const box = $('devices');
  box.replaceChildren();
  for (const dev of s.devices) {
    const owner = s.domains.find((d) => d.domid === dev.frontend);
    const card = el('div', { class: 'device', 'data-device': dev.name });
    // A driver domain's device (its counters published in XenStore, at most a second old) says whose.
    const backend = dev.backend ? s.domains.find((d) => d.domid === dev.backend) : null;
    const served = dev.backend ? `, served by ${backend ? backend.name : ''} (d${dev.backend})` : '';
    card.append(el('h3', {}, `${dev.name} — ${dev.kind} of ${owner ? owner.name : `d${dev.frontend}`} (device ${dev.devid})${served}`));
    if (dev.backend) card.setAttribute('data-backend', String(dev.backend));
    const rings = el('div', { class: 'rings' });
    for (const r of dev.rings) {
      const cell = el('div', { class: 'ring', 'data-ring': `${dev.name}/${r.name}`, 'data-req-prod': r.req_prod, 'data-rsp-prod': r.rsp_prod });
      cell.append(ringSvg(r));
      cell.append(el('div', {}, `${r.name} · ${r.size} slots`));
      cell.append(el('div', { class: 'idx' },
        `req_prod ${r.req_prod} req_cons ${r.req_cons}\nrsp_prod ${r.rsp_prod} req_event ${r.req_event} rsp_event ${r.rsp_event}`));
      rings.append(cell);
    }
    card.append(rings);
    card.append(el('div', { class: 'stats' }, Object.entries(dev.stats).map(([k, v]) => `${k} ${v}`).join(' · ')));
    box.append(card);
  }
  if (s.devices.length === 0) box.append(el('p', { class: 'note' }, 'No device is connected to a backend.'));
}

function record(s, dt) {
  history.t.push(s.time / 1000);
  if (history.t.length > HISTORY) history.t.shift();
  const seen = new Set();
  for (const d of s.domains) {
    seen.add(d.domid);
    let h = history.byDomain.get(d.domid);
    if (!h || h.name !== d.name) {
      h = { name: d.name, series: {} };
      history.byDomain.set(d.domid, h);
    }
    const r = rates(d, dt);
    for (const [k, v] of Object.entries({ ...r, ...V.ioRates(s, prev, d.domid, dt) })) {
      const arr = (h.series[k] ??= new Array(history.t.length - 1).fill(null));
      arr.push(v);
    }
  }
  for (const [domid, h] of history.byDomain) {
    if (!seen.has(domid)) for (const arr of Object.values(h.series)) arr.push(null);
    for (const arr of Object.values(h.series)) while (arr.length > history.t.length) arr.shift();
  }
}

const CHARTS = [['io', 'block requests/s'], ['net', 'network KiB/s (sent + received)'], ['notifications', 'event notifications/s'], ['hypercalls', 'hypercalls/s'],
  ['grant_ops', 'grant operations/s'], ['traps', 'trapped accesses/s'], ['cpu', 'CPU %']];
const COMPONENTS = new Set(['grant_maps', 'grant_unmaps', 'grant_copies']); // drawn summed, as grant_ops

/** The fixed charts, then one for every other counter that has moved since the page opened. */
function chartList() {
  const list = [...CHARTS];
  const known = new Set(list.map(([k]) => k));
  const moved = new Set();
  for (const h of history.byDomain.values()) {
    for (const [k, arr] of Object.entries(h.series)) if (!known.has(k) && !COMPONENTS.has(k) && arr.some((v) => v)) moved.add(k);
  }
  for (const k of [...moved].sort()) list.push([k, `${k.replace(/_/g, ' ')}/s`]);
  return list;
}

function drawCharts() {
  if (typeof uPlot === 'undefined') return;
  const ids = [...history.byDomain.keys()];
  for (const [key, title] of chartList()) {
    let ch = charts.get(key);
    if (!ch || ch.ids.join() !== ids.join()) {
      if (ch) ch.plot.destroy();
      const host = ch ? ch.host : el('div');
      if (!ch) $('charts').append(host);
      const series = [{}, ...ids.map((id, i) => ({ label: history.byDomain.get(id).name, stroke: COLOURS[i % COLOURS.length], width: 1.5 }))];
      const plot = new uPlot({ title, width: 420, height: 180, series, axes: [{}, { size: 60 }] }, [[]], host);
      ch = { plot, ids, host };
      charts.set(key, ch);
    }
    ch.plot.setData([history.t.slice(), ...ids.map((id) => (history.byDomain.get(id).series[key] || []).slice())]);
  }
}

let consoleDomain = null;
async function showConsole(d) {
  consoleDomain = d;
  $('console-panel').hidden = false;
  $('console-name').textContent = d.name;
  const text = await (await fetch(`/api/console/${d.domid}`)).text();
  $('console').textContent = text;
  $('console').scrollTop = $('console').scrollHeight;
}
$('console-close').addEventListener('click', () => { consoleDomain = null; $('console-panel').hidden = true; });

async function tick() {
  try {
    const s = await (await fetch('/api/sample')).json();
    const dt = prev ? (s.time - prev.time) / 1000 : 0;
    drawSummary(s);
    drawMemoryPicture(s);
    drawShares(s);
    drawDomains(s, dt);
    drawDevices(s);
    record(s, dt);
    drawCharts();
    if (consoleDomain && s.domains.some((d) => d.domid === consoleDomain.domid)) void showConsole(consoleDomain);
    prev = s;
    document.body.dataset.samples = String(Number(document.body.dataset.samples || 0) + 1);
  } catch (e) {
    $('summary').textContent = `the host does not answer (${e.message}); retrying`;
  }
  setTimeout(tick, PERIOD_MS);
}
tick();
