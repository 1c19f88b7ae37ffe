/*
 * A VM's state file written or removed by the thread pool ('queued': dom0/toolstack/state-file.ts),
 * as the toolstack does in a migration's downtime, keeps the order the writes were asked in, with
 * the ones done at once ('now') as well: the file ends as the last call left it.
 */
import test from 'ava';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { readRunState, removeRunState, writeRunState, type VmRunState } from '../dom0/toolstack/state-file.ts';

const dir = mkdtempSync(join(tmpdir(), 'rv-state-'));
test.after.always(() => rmSync(dir, { recursive: true, force: true }));

function state(domid: number, s: VmRunState['state'] = 'running'): VmRunState {
  return { name: 'vm', uuid: null, domid, state: s, config: '/vm/vm.cfg', pid: process.pid, socket: '/run/xl', started: 'now' };
}

test('queued writes land in the order asked, and a write asked now while one is queued waits its turn', async (t) => {
  const f = join(dir, 'a', 'run', 'domain.json');
  const a = writeRunState(f, state(1), 'queued');
  const b = writeRunState(f, state(1, 'shutdown'), 'queued');
  const c = writeRunState(f, state(2), 'now'); // one is queued: this one joins the queue
  t.false(existsSync(f), 'nothing written on this thread yet');
  await Promise.all([a, b, c]);
  t.is(readRunState(f)?.domid, 2, 'the last one asked is the file');
  t.is(readRunState(f)?.state, 'running');
  t.false(existsSync(`${f}.new`), 'no half-written file left');
});

test('a queued removal followed by a write asked now leaves the new file; with nothing queued, now is now', async (t) => {
  const f = join(dir, 'b', 'run', 'domain.json');
  await writeRunState(f, state(3));
  t.is(readRunState(f)?.domid, 3, 'written before the call returned');
  const gone = removeRunState(f, 'queued');
  const again = writeRunState(f, state(4)); // a domain booted again from the same config, at once
  await Promise.all([gone, again]);
  t.is(JSON.parse(readFileSync(f, 'utf8')).domid, 4, 'the removal did not take the new file');
  await removeRunState(f);
  t.false(existsSync(f), 'removed before the call returned');
});
