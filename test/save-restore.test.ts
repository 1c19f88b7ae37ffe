/*
 * xl save / xl restore end to end (dom0/toolstack/migration/save-restore.ts, domu/resume.ts): a
 * guest running mem-touch (a working set it rewrites and verifies every pass, its progress in guest
 * memory) is suspended and saved; the restored domain's memory equals the saved pages byte for
 * byte (checksums); once unpaused its kernel resumes, reconnects its disk to the backends, and the
 * workload carries on from where it stopped, verifying the pages written before the save. A
 * truncated or corrupt file is refused and starts nothing. The host runs in this process; the
 * toolstack is driven over its control socket, as the command line does.
 */
import test from 'ava';
import { createHash } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { readSaveImage } from '../dom0/toolstack/migration/stream-read.ts';
import type { CreateResult, ListedDomain } from '../dom0/toolstack/protocol.ts';
import { MAX_GUEST_PAGES, P2M_MFN_MASK, P2M_PRESENT } from '../hypervisor/state.ts';
import { PAGE_SIZE } from '../shared/public/xen.ts';
import { consoleMatch } from '../scenarios/lib/console.ts';
import { oneHost } from './helpers/one-host.ts';

const rig = oneHost(test, 'rv-save-', 96);

const vm = (name: string, body: string): string => rig.vm(name, ['memory = 16', 'create_images = [ "disk.img=4" ]', 'on_crash = "preserve"', body]);

/** The domain's console so far, then live, until `re` matches; returns the match. */
async function consoleSays(domain: string, re: RegExp): Promise<RegExpMatchArray> {
  return await consoleMatch(rig.rh.runDir, domain, re);
}

const list = () => rig.xl.call<ListedDomain[]>({ verb: 'list' });

/** sha256 of a domain's page, read from machine memory through its P2M (the test's view, not the guest's). */
function pageSum(domid: number, gfn: number): string {
  const hv = rig.rh.host.hv;
  const e = hv.p2m[domid * MAX_GUEST_PAGES + gfn];
  if ((e & P2M_PRESENT) === 0) return 'absent';
  const at = (e & P2M_MFN_MASK) * PAGE_SIZE;
  return createHash('sha256').update(hv.mem8.subarray(at, at + PAGE_SIZE)).digest('hex');
}

test.serial('save and restore: memory byte for byte, the devices reconnected, the workload carries on and verifies', async (t) => {
  const d = vm('st1', `disk = [ 'disk.img,raw,xvda,rw' ]\nworkload = "mem-touch"\nworkload_args = [ "wss=1" ]`);
  const first = await rig.xl.call<CreateResult>({ verb: 'create', path: d });
  await consoleSays('st1', /mem-touch: pass 2 done/);

  const file = join(rig.dir, 'st1.save');
  const saved = await rig.xl.call<{ domid: number; pages: number; bytes: number }>({ verb: 'save', domain: 'st1', file });
  t.is(saved.domid, first.domid);
  t.is(saved.pages, 4096, 'every page of 16 MiB');
  t.false((await list()).some((x) => x.name === 'st1'), 'xl save destroys the saved domain');

  const img = readSaveImage(readFileSync(file));
  t.is(img.config.name, 'st1');
  t.is(img.vcpus.length, 1);

  const r = await rig.xl.call<{ domid: number; pages: number }>({ verb: 'restore', file, paused: true });
  t.not(r.domid, first.domid, 'a new domain id');
  // Byte for byte, every page but the three the builder made afresh for the new domain.
  let compared = 0;
  for (const b of img.batches) {
    b.gfns.forEach((g, i) => {
      if (g >= 4096 - 3) return;
      const want = createHash('sha256').update(b.data.subarray(i * PAGE_SIZE, (i + 1) * PAGE_SIZE)).digest('hex');
      if (pageSum(r.domid, g) !== want) t.fail(`gfn ${g} differs after restore`);
      compared++;
    });
  }
  // Pages the guest never touched are named, not sent (XALLOC: populate on demand; hypervisor/mm/pfinfo.ts),
  // and read as absent in the new domain too: it populates them when its guest first touches them.
  const untouched = img.batches.flatMap((b) => b.pod).filter((g) => g < 4096 - 3);
  for (const g of untouched) if (pageSum(r.domid, g) !== 'absent') t.fail(`gfn ${g} was never touched, but is backed after restore`);
  t.is(compared + untouched.length, 4093);
  t.true(compared > 0 && untouched.length > 0);

  await rig.xl.call({ verb: 'unpause', domain: String(r.domid) });
  const resumed = await consoleSays('st1', /mem-touch: resumed at pass (\d+), page (\d+)/);
  const pass = Number(resumed[1]);
  t.true(pass >= 3, `resumed in pass ${pass}`);
  await consoleSays('st1', /resume: restored from a save stream[\s\S]*disks: xvda/);
  // A whole pass after the resume: every page written before the save was checked, none was wrong
  // (a mismatch crashes the guest, and no pass line would follow).
  await consoleSays('st1', new RegExp(`mem-touch: pass ${pass} done`));
  const info = (await list()).find((x) => x.domid === r.domid);
  t.truthy(info);
  t.false(info!.shutdown, 'running, not crashed');
  await rig.xl.call({ verb: 'destroy', domain: String(r.domid) });
});

test.serial('a truncated or corrupt save file is refused with the reason and starts nothing', async (t) => {
  const d = vm('st2', `disk = [ 'disk.img,raw,xvda,rw' ]\nworkload = "mem-touch"\nworkload_args = [ "wss=1" ]`);
  await rig.xl.call<CreateResult>({ verb: 'create', path: d });
  await consoleSays('st2', /mem-touch: pass 0 done/);
  const file = join(rig.dir, 'st2.save');
  await rig.xl.call({ verb: 'save', domain: 'st2', file });
  const bytes = readFileSync(file);
  const before = (await list()).length;

  const cut = join(rig.dir, 'cut.save');
  writeFileSync(cut, bytes.subarray(0, bytes.length - 5000));
  await t.throwsAsync(rig.xl.call({ verb: 'restore', file: cut }), { message: /truncated/ });
  const bad = join(rig.dir, 'bad.save');
  const b = Buffer.from(bytes);
  b.write('Not a save file', 0);
  writeFileSync(bad, b);
  await t.throwsAsync(rig.xl.call({ verb: 'restore', file: bad }), { message: /wrong magic/ });
  t.is((await list()).length, before, 'nothing was started');

  const r = await rig.xl.call<{ domid: number }>({ verb: 'restore', file });
  await consoleSays('st2', /mem-touch: resumed at pass \d+[\s\S]*mem-touch: pass \d+ done/);
  await rig.xl.call({ verb: 'destroy', domain: String(r.domid) });
});
