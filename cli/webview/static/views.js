// What the web view's generic panels show, computed from one `top` sample (and the one before),
// apart from drawing so a test can check it without a browser (test/observe-views.test.ts).
//
// Generic on purpose: the hypervisor grows figures (shared, paged, populate-on-demand pages; more
// vCPUs; new counters) and Dom0 new devices; each panel shows what the sample carries, by the
// names the hypervisor gives them, and nothing for what it does not carry. Xen's names: physinfo
// and getdomaininfo count memory in pages with a `_pages` suffix (total_pages, free_pages,
// tot_pages, max_pages, shr_pages, paged_pages, outstanding_pages), so a `_pages` figure is memory.
//
// A classic script in the page (it sets globalThis.RingvisorViews) and an ES module in Node.
'use strict';
(function (root) {
  const PAGE_MIB = 4 / 1024;
  const isPages = (k) => /_pages$/.test(k);
  const label = (k) => k.replace(/_pages$/, '').replace(/_/g, ' ');

  /**
   * The memory picture: the host's `_pages` figures, and per domain every `_pages` figure any
   * domain has (its fields, or a counter of that name), in MiB; a column appears only when some
   * domain has it. tot and max give each domain's bar.
   */
  function memoryPicture(s) {
    const host = Object.entries(s.host || { total_pages: s.total_pages, free_pages: s.free_pages })
      .filter(([k, v]) => isPages(k) && typeof v === 'number')
      .map(([k, v]) => ({ name: k, label: label(k), mib: v * PAGE_MIB }));
    const figures = (d) => {
      const out = {};
      for (const [k, v] of Object.entries(d)) if (isPages(k) && typeof v === 'number') out[k] = v;
      for (const [k, v] of Object.entries(d.counters || {})) if (isPages(k) && typeof v === 'number' && !(k in out)) out[k] = v;
      return out;
    };
    const perDomain = s.domains.map((d) => ({ domid: d.domid, name: d.name, pages: figures(d) }));
    const columns = [];
    for (const d of perDomain) for (const k of Object.keys(d.pages)) if (!columns.includes(k)) columns.push(k);
    const first = ['tot_pages', 'max_pages'];
    columns.sort((a, b) => (first.indexOf(a) + 1 || 99) - (first.indexOf(b) + 1 || 99) || a.localeCompare(b));
    return {
      host,
      columns: columns.map((k) => ({ name: k, label: label(k) })),
      rows: perDomain.map((d) => ({ domid: d.domid, name: d.name, mib: columns.map((k) => (k in d.pages ? d.pages[k] * PAGE_MIB : null)), tot: (d.pages.tot_pages || 0) * PAGE_MIB, max: (d.pages.max_pages || 0) * PAGE_MIB })),
    };
  }

  /**
   * The scheduler's shares: each domain's weight and cap (credit scheduler), the share of the
   * pool its weight entitles it to if every domain were busy (weight over the sum of weights,
   * limited by its cap and by its vCPUs), and the CPU it used over the last interval, in % of one
   * pCPU as xentop counts. Empty when the sample has no scheduler figures.
   */
  function schedShares(s, prev) {
    const sched = s.sched || {};
    const doms = s.domains.filter((d) => sched[d.domid] !== undefined);
    if (doms.length === 0) return { pool: 0, rows: [], pcpus: s.pcpus || [] };
    const pool = ((s.pcpus && s.pcpus.length) || s.nr_cpus) * 100;
    const total = doms.reduce((a, d) => a + sched[d.domid].weight, 0);
    const dt = prev ? (s.time - prev.time) / 1000 : 0;
    const rows = doms.map((d) => {
      const { weight, cap } = sched[d.domid];
      let entitled = (pool * weight) / total;
      entitled = Math.min(entitled, d.vcpus * 100);
      if (cap > 0) entitled = Math.min(entitled, cap);
      const before = prev && prev.domains.find((p) => p.domid === d.domid && p.name === d.name);
      const used = before && dt > 0 ? (d.cpu_time_ms - before.cpu_time_ms) / 10 / dt : 0;
      return { domid: d.domid, name: d.name, weight, cap, vcpus: d.vcpus, entitled, used };
    });
    return { pool, rows, pcpus: s.pcpus || [] };
  }

  /** Per-second rates of every counter a domain has (and the sum of grant operations), by name. */
  function counterRates(d, before, dt) {
    const out = {};
    for (const k of Object.keys(d.counters || {})) out[k] = before && dt > 0 ? ((d.counters[k] || 0) - ((before.counters || {})[k] || 0)) / dt : 0;
    return out;
  }

  /**
   * A domain's I/O per second over the last interval, from its devices' counters (xentop's
   * sources): block requests (rd_req + wr_req of its vbds) and network KiB (tx_bytes + rx_bytes
   * of its vifs, both directions). A device that appeared or went since the last sample counts
   * from what the two samples both have.
   */
  function ioRates(s, prev, domid, dt) {
    const mine = (x) => (x ? x.devices.filter((r) => r.frontend === domid) : []);
    const sum = (rows, kind, keys) => rows.filter((r) => r.kind === kind).reduce((a, r) => a + keys.reduce((b, k) => b + (r.stats[k] || 0), 0), 0);
    if (!prev || !(dt > 0)) return { io: 0, net: 0 };
    const now = mine(s);
    const before = mine(prev);
    const both = (rows, other) => rows.filter((r) => other.some((o) => o.kind === r.kind && o.devid === r.devid));
    const delta = (kind, keys) => Math.max(0, sum(both(now, before), kind, keys) - sum(both(before, now), kind, keys));
    return { io: delta('vbd', ['rd_req', 'wr_req']) / dt, net: delta('vif', ['tx_bytes', 'rx_bytes']) / 1024 / dt };
  }

  /**
   * The host's other figures (physinfo's, and its memory-management counters: frames shared and
   * the mappings onto them, frames paged out, PoD fills...), by name: what the memory picture's
   * `_pages` figures and the summary line do not show.
   */
  const SUMMARY = new Set(['nr_cpus', 'nr_domains', 'max_domains']);
  function hostFigures(s) {
    return Object.entries(s.host || {}).filter(([k, v]) => typeof v === 'number' && !isPages(k) && !SUMMARY.has(k));
  }

  /** DomainInfo figures no column shows: a figure the hypervisor adds appears in the table. */
  const SHOWN = new Set(['domid', 'vcpus', 'tot_pages', 'max_pages', 'cpu_time_ms']);
  function otherFigures(d) {
    return Object.entries(d).filter(([k, v]) => typeof v === 'number' && !SHOWN.has(k) && !isPages(k));
  }

  root.RingvisorViews = { memoryPicture, schedShares, counterRates, otherFigures, ioRates, hostFigures };
})(globalThis);
