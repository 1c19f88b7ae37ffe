/*
 * The benchmark's SVG chart, drawn by Vega-Lite from the same rows as the table and the JSON:
 * one panel per suite, grouped bars per path, so PV, emulated and native sit side by side.
 *
 * Not a Xen concept: this is how `npm run bench -- --svg FILE` shows its results. The spec is
 * declarative (what to plot, not where to draw it), which is why a charting library beats
 * hand-placed SVG here.
 */
import * as vega from 'vega';
import * as vl from 'vega-lite';
import type { BenchRow } from './types.ts';

const PATH_ORDER = ['native', 'fio', 'pv', 'pv-dd', 'emu-dma', 'emu-pio', 'ring', 'bare-ring', 'ringbuf.js', 'xenstored'];

export async function renderSvg(rows: readonly BenchRow[]): Promise<string> {
  const panels: vl.TopLevelSpec[] = [];
  // One panel per waiting policy: bars of different policies are never side by side.
  for (const wait of [...new Set(rows.filter((r) => r.suite === 'block').map((r) => r.wait))]) {
    const block = rows.filter((r) => r.suite === 'block' && r.wait === wait)
      .map((r) => ({ ...r, path: r.path === 'fio' ? `fio ${r.engine}` : r.path, job: `${r.workload} ${r.blockSize / 1024}K qd${r.queueDepth}` }));
    if (block.length > 0) {
      panels.push({
        title: `Block I/O throughput by path, wait=${wait} (MB/s, log scale)`,
        data: { values: block },
        width: { step: 12 },
        height: 260,
        mark: 'bar',
        encoding: {
          x: { field: 'job', type: 'nominal', title: null, sort: null, axis: { labelAngle: -45 } },
          xOffset: { field: 'path', sort: PATH_ORDER },
          y: { field: 'MBps', type: 'quantitative', scale: { type: 'log' }, stack: null, title: 'MB/s' },
          color: { field: 'path', type: 'nominal', sort: PATH_ORDER, scale: { scheme: 'tableau10' }, title: 'path' },
          tooltip: [{ field: 'path' }, { field: 'job' }, { field: 'MBps', format: '.1f' }, { field: 'reqPerSec', format: ',.0f' }],
        },
      } as vl.TopLevelSpec);
    }
  }
  const ring = rows.filter((r) => r.suite === 'ring').map((r) => ({ ...r, label: `${r.path} (${r.workload}, ${r.wait})` }));
  if (ring.length > 0) {
    panels.push({
      title: `Rings moving ${ring[0].blockSize / 1024} KiB requests at depth ${ring[0].queueDepth} (requests/s)`,
      data: { values: ring },
      width: 400,
      height: { step: 22 },
      mark: 'bar',
      encoding: {
        y: { field: 'label', type: 'nominal', title: null, sort: '-x' },
        x: { field: 'reqPerSec', type: 'quantitative', title: 'requests/s' },
        color: { field: 'path', type: 'nominal', sort: PATH_ORDER, scale: { scheme: 'tableau10' }, legend: null },
      },
    } as vl.TopLevelSpec);
  }
  const xs = rows.filter((r) => r.suite === 'xenstore' && r.medianUs !== undefined);
  if (xs.length > 0) {
    panels.push({
      title: 'XenStore request round trip from a DomU (median µs)',
      data: { values: xs },
      width: 400,
      height: { step: 22 },
      mark: 'bar',
      encoding: {
        y: { field: 'workload', type: 'nominal', title: null },
        x: { field: 'medianUs', type: 'quantitative', title: 'µs' },
      },
    } as vl.TopLevelSpec);
  }
  if (panels.length === 0) throw new Error('no rows to chart');
  const spec = { vconcat: panels, resolve: { scale: { color: 'independent' } }, config: { font: 'sans-serif' } } as unknown as vl.TopLevelSpec;
  const view = new vega.View(vega.parse(vl.compile(spec).spec), { renderer: 'none' });
  return view.toSVG();
}
