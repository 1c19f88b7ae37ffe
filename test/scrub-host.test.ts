// Deferred scrubbing on a live host (hypervisor/mm/scrub.ts): a guest writes a pattern and is
// destroyed; the host's idle scrubber thread zeroes its frames and goes back to sleep (dirty
// count 0, asleep on its word: not a busy loop); the next guest, first touches and balloon
// alike, reads only zeros; usage() is back to its baseline and physinfo shows scrub_pages.
import test from 'ava';
import { Host } from '../hypervisor/host.ts';
import { A } from '../hypervisor/page-alloc.ts';
import { scrubStats } from '../hypervisor/mm/scrub.ts';
import { until } from '../scenarios/lib/hang.ts';
import type { MemGuestModule } from './kernels/mem-guest.ts';
import type { ScrubGuestModule } from './kernels/scrub-guest.ts';

const MEM_GUEST = new URL('./kernels/mem-guest.ts', import.meta.url).href;
const SCRUB_GUEST = new URL('./kernels/scrub-guest.ts', import.meta.url).href;

for (const mode of ['idle', 'free'] as const) {
  test(`scrub=${mode}: a destroyed guest's bytes never reach the next guest; the host ends clean and its usage at baseline`, async (t) => {
    const host = new Host({ memoryMiB: 8, log: () => {}, scrub: mode });
    const said: string[] = [];
    host.on('console', (e: { domid: number; text: string }) => said.push(`d${e.domid} ${e.text}`));
    const before = host.usage();
    const pages = 1800; // most of the host's 2048 frames
    const a = await host.createDomain({
      name: 'writer', vcpus: 1, memoryKiB: (pages + 16) * 4, kernel: MEM_GUEST,
      module: { action: 'touch', pages, seed: 11 } satisfies MemGuestModule,
    });
    await until(() => said.some((s) => s.startsWith(`d${a} touched`)), `d${a} touched`, { everyMs: 5, seen: () => said });
    t.true(said.includes(`d${a} touched ${pages} pages, 0 bad`));
    await host.destroy(a);
    t.deepEqual(host.usage(), before, 'a dirty frame is free: usage is back to its baseline at once');
    const phys = host.physinfo();
    t.is(phys.scrub_pages, scrubStats(host.hv).dirty, 'physinfo reports the dirty frames as scrub_pages');
    if (mode === 'free') t.is(phys.scrub_pages, 0, 'zeroed at free: nothing dirty');
    // The idle scrubber drains the dirty list and goes to sleep on its word.
    await until(() => scrubStats(host.hv).dirty === 0 && scrubStats(host.hv).scrubbing === 0, 'dirty frames scrubbed', { everyMs: 5 });
    if (mode === 'idle') {
      await until(() => Atomics.load(host.hv.allocator, A.SCRUBBER_IDLE) === 1, 'the scrubber asleep', { everyMs: 5 });
      const s = scrubStats(host.hv);
      t.true(s.scrubbedIdle + s.scrubbedAlloc >= pages, `the writer's frames were scrubbed (${s.scrubbedIdle} idle, ${s.scrubbedAlloc} at allocation)`);
      t.is(s.scrubbedFree, 0);
    } else {
      t.true(scrubStats(host.hv).scrubbedFree >= pages);
    }
    const b = await host.createDomain({
      name: 'reader', vcpus: 1, memoryKiB: (pages + 16) * 4, kernel: SCRUB_GUEST,
      module: { pages, balloon: 256 } satisfies ScrubGuestModule,
    });
    await until(() => said.some((s) => s.startsWith(`d${b} read`)), `d${b} read`, { everyMs: 5, seen: () => said });
    t.true(said.includes(`d${b} read ${pages} pages: 0 non-zero bytes; ballooned 256 out, 256 back: 0 non-zero bytes`), said.join('\n'));
    await host.destroy(b);
    t.deepEqual(host.usage(), before);
    await host.close();
  });
}
