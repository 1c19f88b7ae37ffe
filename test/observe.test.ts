// Seeing a running host: `ringvisor top -b` prints xentop's columns with the hypervisor's and
// blkback's figures, and the live web view (`host --http`) shows every domain and a ring whose
// indices move, in Debian's Chromium driven by playwright-core, and refuses anything but
// loopback. One host serves all of it; a guest reads its disk for the whole test.
import test from 'ava';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium } from 'playwright-core';
import { CliProcess, rv } from './helpers/cli.ts';
import type { TraceFile } from '../dom0/lib/trace-json.ts';
import { flowsOf, isComplete } from '../tools/docs/request-path.ts';
import { fileSays } from '../scenarios/lib/console.ts';

const CHROMIUM = '/usr/bin/chromium';
const dir = mkdtempSync(join(tmpdir(), 'rv-observe-'));
const runDir = join(dir, 'run');
const at = ['--run-dir', runDir];
let host: CliProcess;
let url = '';

/** A VM that reads 256 blocks and stays up, and one that keeps reading until destroyed; `extra`: more config lines. */
function vm(name: string, count: number, extra: string[] = []): string {
  const d = join(dir, name);
  mkdirSync(d);
  writeFileSync(join(d, 'vm.cfg'), [
    `name = "${name}"`, 'type = "pv"', 'memory = 32', "disk = [ 'disk.img,raw,xvda,rw' ]", 'create_images = [ "disk.img=16" ]', ...extra,
    'workload = "fio-rand-read"', `workload_args = [ "bs=4096", "count=${count}", "iodepth=8" ]`, '',
  ].join('\n'));
  return d;
}

test.before(async () => {
  host = new CliProcess(['host', ...at, '--http', '127.0.0.1:0']);
  await host.waitFor(/ringvisor host up[\s\S]*web view +http:\/\/127\.0\.0\.1:\d+\//);
  url = /web view +(http:\/\/\S+)/.exec(host.stdout)![1];
});

test.after.always(async () => {
  host.child.kill('SIGTERM');
  await host.exited;
  rmSync(dir, { recursive: true, force: true });
});

test.serial('top -b -i 2: xentop\'s columns, with the figures the hypervisor and blkback count', async (t) => {
  const made = await rv([...at, 'create', vm('reader', 256)]);
  t.is(made.code, 0, made.stderr);
  const domid = /id=(\d+)/.exec(made.stdout)![1];
  t.regex(domid, /^\d+$/);
  // The workload's result line is on its console log once its 256 reads are done.
  const log = join(dir, 'reader', 'console.log');
  await fileSays(log, /workload-result/);
  const top = await rv([...at, 'top', '-b', '-i', '2', '-d', '0.2', '-x']);
  t.is(top.code, 0, top.stderr);
  const blocks = top.stdout.trim().split(/\n\n/);
  t.is(blocks.length, 2, 'two samples');
  const head = blocks[1].split('\n').find((l) => l.includes('NAME'))!;
  t.deepEqual(head.trim().split(/\s+/).slice(0, 18), ['NAME', 'STATE', 'CPU(sec)', 'CPU(%)', 'MEM(k)', 'MEM(%)', 'MAXMEM(k)', 'MAXMEM(%)',
    'VCPUS', 'NETS', 'NETTX(k)', 'NETRX(k)', 'VBDS', 'VBD_OO', 'VBD_RD', 'VBD_WR', 'VBD_RSECT', 'VBD_WSECT']);
  const row = blocks[1].split('\n').find((l) => /^\s*reader /.test(l))!.trim().split(/\s+/);
  const list = await rv([...at, 'list', 'reader']);
  const listed = list.stdout.split('\n')[1].trim().split(/\s+/);
  t.is(Number(row[4]), Number(listed[2]) * 1024, 'MEM(k) is what xl list reports, in KiB');
  t.is(row[8], listed[3], 'VCPUS');
  t.regex(row[1], /^[-d][-s][-b][-c][-p][-r]$/);
  t.is(row[12], '1', 'one VBD');
  t.is(row[14], '256', 'VBD_RD: blkback served the workload\'s 256 reads');
  t.is(row[15], '0', 'VBD_WR');
  t.is(row[16], String(256 * 8), 'VBD_RSECT: 4 KiB = 8 sectors each');
  t.regex(blocks[1], /VBD BlkBack 51712 \[vbd-\d+-51712\]\s+OO:\s+0\s+RD:\s+256\s+WR:\s+0/);
  // -c: every counter by name, and every device's counters, whatever they are.
  const all = await rv([...at, 'top', '-b', '-i', '1', '-c']);
  t.is(all.code, 0, all.stderr);
  t.regex(all.stdout, /counters\/s: .*hypercalls \d+.*notifications \d+/);
  t.regex(all.stdout, /vbd 51712 \[vbd-\d+-51712\]: .*rd_req 256/);
  await rv([...at, 'destroy', 'reader']);
});

test.serial('the web view shows every domain and a ring whose indices move', async (t) => {
  if (!existsSync(CHROMIUM)) return t.pass(`skipped: ${CHROMIUM} is not installed (Debian's chromium package)`);
  const made = await rv([...at, 'create', vm('busy', 50_000_000, ["vif = [ 'ip=10.0.9.10' ]"])]);
  t.is(made.code, 0, made.stderr);
  const browser = await chromium.launch({
    executablePath: CHROMIUM,
    args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run'],
  });
  try {
    const page = await browser.newPage({ viewport: { width: 1300, height: 1100 } });
    await page.goto(url);
    await page.waitForSelector('[data-ring^="vbd-"]');
    const names = await page.$$eval('#domains tbody tr', (rows) => rows.map((r) => r.getAttribute('data-name')));
    t.deepEqual(names, ['Domain-0', 'busy']);
    // The memory picture: a row per domain, its tot_pages in MiB as xl list reports its memory.
    await page.waitForSelector('#memory-picture tbody tr[data-domid] [data-figure="tot_pages"]');
    const mem = await page.$$eval('#memory-picture tbody tr', (rows) => rows.map((r) => Number(r.querySelector('[data-figure="tot_pages"]')?.textContent)));
    const listed = (await rv([...at, 'list'])).stdout.trim().split('\n').slice(1).map((l) => Number(l.trim().split(/\s+/)[2]));
    t.deepEqual(mem, listed, 'memory picture: tot_pages in MiB, as xl list');
    // ... and beside it the host's sharing, paging and PoD counters (`ringvisor info`'s mm).
    await page.waitForFunction(() => /sharing shared frames \d+ · sharing mappings \d+/.test(document.getElementById('host-mm')?.textContent ?? ''));
    // The scheduler's shares: each domain with its weight (256 unless set).
    const weights = await page.$$eval('#shares .share', (rows) => rows.map((r) => Number(r.getAttribute('data-weight'))));
    t.deepEqual(weights, [256, 256]);
    // Its network device too, drawn as the disk is: netback's vif with its tx and rx rings.
    await page.waitForSelector('[data-device^="vif"] [data-ring$="/rx-ring-ref"]');
    const vifRings = await page.$$eval('[data-device^="vif"] [data-ring]', (rows) => rows.map((r) => r.getAttribute('data-ring')!.split('/').pop()));
    t.deepEqual(vifRings, ['tx-ring-ref', 'rx-ring-ref']);
    // ... and its traffic over time, in a chart of its own (uPlot titles each chart).
    await page.waitForFunction(() => [...document.querySelectorAll('#charts .u-title')].some((e) => e.textContent === 'network KiB/s (sent + received)'));
    const first = await page.$eval('[data-ring^="vbd-"]', (e) => Number(e.getAttribute('data-req-prod')));
    await page.screenshot({ path: join(dir, 'web-1.png') });
    await page.waitForFunction((before) => {
      const e = document.querySelector('[data-ring^="vbd-"]');
      return e !== null && Number(e.getAttribute('data-req-prod')) !== before;
    }, first);
    const second = await page.$eval('[data-ring^="vbd-"]', (e) => Number(e.getAttribute('data-req-prod')));
    await page.screenshot({ path: join(dir, 'web-2.png') });
    t.not(second, first, 'req_prod moved between the two screenshots');
    t.true(existsSync(join(dir, 'web-1.png')) && existsSync(join(dir, 'web-2.png')));
  } finally {
    await browser.close();
    await rv([...at, 'destroy', 'busy']);
  }
});

test.serial('ringvisor trace -w FILE against the running host: whole PV request flows; -e keeps only the class asked', async (t) => {
  const made = await rv([...at, 'create', vm('traced', 50_000_000)]);
  t.is(made.code, 0, made.stderr);
  try {
    const log = join(dir, 'traced', 'console.log');
    await fileSays(log, /xvda connected/);
    const file = join(dir, 'all.json');
    const r = await rv([...at, 'trace', '-w', file, '-d', '1']);
    t.is(r.code, 0, r.stderr);
    const json = JSON.parse(readFileSync(file, 'utf8')) as TraceFile;
    t.true(Array.isArray(json.traceEvents));
    const whole = flowsOf(json).filter((f) => isComplete(f, 'pv'));
    t.true(whole.length > 0, 'a PV request from blkfront through blkback and the disk back to blkfront');
    const domid = Number(/id=(\d+)/.exec(made.stdout)![1]);
    t.is(whole[0]!.points[0]!.pid, domid, 'the flow starts in the guest');
    t.is(whole[0]!.points[1]!.pid, 0, 'and is served in Dom0');
    const pvOnly = join(dir, 'pv.json');
    t.is((await rv([...at, 'trace', '-w', pvOnly, '-e', 'pv', '-d', '0.5'])).code, 0);
    const slices = (JSON.parse(readFileSync(pvOnly, 'utf8')) as TraceFile).traceEvents.filter((e) => e.ph === 'B' || e.ph === 'X');
    const names = new Set(slices.map((e) => e.name));
    t.true(names.has('evtchn_send'), 'the guest and blkback notify each other');
    t.true(names.has('event_channel_op(EVTCHNOP_send)'), 'each hypercall, named');
    t.true(slices.every((e) => e.cat === 'pv' || e.name === 'lost records'), `only the pv class with -e pv: ${[...names].join(', ')}`);
  } finally {
    await rv([...at, 'destroy', 'traced']);
  }
});

test.serial('the web view refuses non-loopback addresses, foreign Host headers and writes', async (t) => {
  for (const addr of ['0.0.0.0:8080', '10.1.2.3:80', '[::]:80', 'example.com:80']) {
    const r = await rv([...at, 'host', '--http', addr]);
    t.is(r.code, 2, addr);
    t.regex(r.stderr, /listens only on loopback|expected ADDRESS:PORT/);
  }
  const ask = (method: string, hostHeader: string) => new Promise<number>((resolve, reject) => {
    const u = new URL('/api/sample', url);
    const req = request({ host: u.hostname, port: u.port, path: u.pathname, method, headers: { host: hostHeader } }, (res) => {
      res.resume();
      resolve(res.statusCode ?? 0);
    });
    req.on('error', reject);
    req.end();
  });
  t.is(await ask('GET', new URL(url).host), 200);
  t.is(await ask('GET', 'attacker.example:80'), 403, 'DNS rebinding: a foreign Host header is refused');
  t.is(await ask('POST', new URL(url).host), 405, 'read-only');
});
