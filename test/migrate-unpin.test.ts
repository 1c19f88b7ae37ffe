/*
 * A migration's foreign mappings pin only while they last (hypervisor/p2m-foreign.ts,
 * mm/fault.ts p2m_unpin_foreign): the saver maps every page of the guest it sends, a batch at a
 * time, and each page must be resident and private while mapped (Xen: the mapping's page
 * reference), but once the batch is unmapped the page is the guest's alone again. A migration
 * that fails while the guest runs on at the source must leave its pages pageable, as they were:
 * before, every page the stream had read stayed pinned for the guest's life, and a host short of
 * memory could page out none of them.
 */
import test from 'ava';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { XlClient } from '../cli/client.ts';
import { startHost, type RunningHost } from '../cli/host.ts';
import { MIGRATE_RECEIVER_BANNER } from '../dom0/toolstack/migration/migrate.ts';
import type { CreateResult, ListedDomain } from '../dom0/toolstack/protocol.ts';
import { MAX_GUEST_PAGES, P2M_PAGED, P2M_PINNED, P2M_PRESENT } from '../hypervisor/state.ts';

const GUEST_PAGES = 8192; // 32 MiB

/* Which of the guest's gfns are pinned now (read straight from the P2M, as the pager sees it). */
function pinned(rh: RunningHost, domid: number): Set<number> {
  const out = new Set<number>();
  for (let g = 0; g < GUEST_PAGES; g++) {
    const e = rh.host.hv.p2m[domid * MAX_GUEST_PAGES + g];
    if ((e & P2M_PRESENT) !== 0 && (e & P2M_PINNED) !== 0) out.add(g);
  }
  return out;
}

/* The first match of `re` on the console; bounded (not a measurement) so a silent guest fails the test. */
async function consoleSays(rh: RunningHost, domain: string, re: RegExp): Promise<void> {
  const c = await XlClient.open(rh.runDir);
  let seen = '';
  let timer: NodeJS.Timeout | undefined;
  try {
    await new Promise<void>((resolve, reject) => {
      timer = setTimeout(() => reject(new Error(`${domain}'s console never matched ${re}; it ends:\n${seen.slice(-1500)}`)), 120_000);
      void c.console(domain, (bytes) => { seen += Buffer.from(bytes).toString(); if (re.test(seen)) resolve(); }, () => undefined);
    });
  } finally {
    clearTimeout(timer);
    c.close();
  }
}

test('after a migration that failed with the guest still running, the pages it read are unpinned and can be paged out', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'rv-unpin-'));
  // Dom0 has 64 MiB: 48 for the 32 MiB guest and 16 spare.
  const rh = await startHost({ runDir: join(dir, 'run'), memoryMiB: 112, log: () => undefined });
  const x = await XlClient.open(rh.runDir);
  const server = createServer((sock: Socket) => {
    // A receiver that takes the first MiB of the stream and dies, long before the stop-and-copy.
    sock.write(MIGRATE_RECEIVER_BANNER);
    let got = 0;
    sock.on('data', (d) => { got += d.length; if (got > 1 << 20) sock.destroy(); });
  });
  try {
    const vm = join(dir, 'sitter');
    mkdirSync(vm);
    writeFileSync(join(vm, 'vm.cfg'), 'name = "sitter"\nmemory = 32\nworkload = "mem-touch"\nworkload_args = [ "wss=2" ]\n');
    const { domid } = await x.call<CreateResult>({ verb: 'create', path: vm });
    await consoleSays(rh, 'sitter', /mem-touch: pass 0 done/);
    const before = pinned(rh, domid);
    // The stream sends the guest's RAM in gfn order (its untouched PoD pages by type only, unmapped):
    // its first MiB holds these, the first 200 of its resident pages that nothing pins.
    const read: number[] = [];
    for (let g = 0; g < GUEST_PAGES && read.length < 200; g++) {
      if ((rh.host.hv.p2m[domid * MAX_GUEST_PAGES + g] & P2M_PRESENT) !== 0 && !before.has(g)) read.push(g);
    }
    t.is(read.length, 200);

    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const port = (server.address() as { port: number }).port;
    await t.throwsAsync(x.call({ verb: 'migrate', domain: 'sitter', host: '127.0.0.1', port }), { message: /keeps running on this host/ });
    const d = (await x.call<ListedDomain[]>({ verb: 'list' })).find((l) => l.name === 'sitter');
    t.true(d !== undefined && !d.shutdown, 'the guest runs on at the source');

    // None of them is pinned now, and nothing else is that was not before.
    const after = pinned(rh, domid);
    const newly = [...after].filter((g) => !before.has(g));
    t.deepEqual(newly, [], `pinned by the migration and never let go: ${newly.length} pages`);

    // And the pager can take them: a low-water mark above what is free makes the host page, and
    // some of the pages the stream read go out to the paging file.
    const free = ((await x.call<{ free_memory: number }>({ verb: 'info' })).free_memory * 1048576) / 4096;
    await x.call({ verb: 'mem-paging', run: true, low_water_pages: free + 1024 });
    const p2m = rh.host.hv.p2m;
    const readByStream = (): number => read.filter((g) => (p2m[domid * MAX_GUEST_PAGES + g] & P2M_PAGED) !== 0).length;
    let out = readByStream();
    for (const giveUp = Date.now() + 60_000; out === 0 && Date.now() < giveUp; out = readByStream()) await new Promise((r) => setTimeout(r, 50));
    await x.call({ verb: 'mem-paging', run: false });
    t.true(out > 0, 'some page the stream read was paged out');
    // The guest still verifies every page it wrote, paged or not: the next pass it reports completes.
    await consoleSays(rh, 'sitter', /mem-touch: pass 100 done/);
    await x.call({ verb: 'destroy', domain: 'sitter' });
  } finally {
    server.close();
    x.close();
    await rh.close();
    rmSync(dir, { recursive: true, force: true });
  }
});
