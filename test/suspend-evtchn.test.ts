/*
 * The guest's suspend event channel (domu/manage.ts; dom0/toolstack/migration/suspend-request.ts):
 * the guest advertises a port for Dom0 in device/suspend/event-channel at every boot, a resumed
 * one included, and the toolstack asks it to suspend with one notification there, as libxl does
 * when it finds the key; a key that names no port Dom0 can bind (the guest's word is not trusted)
 * makes the toolstack ask through control/shutdown instead, with a line in its log.
 */
import test from 'ava';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { oneHost } from './helpers/one-host.ts';
import { CONSOLE_LOG } from '../dom0/toolstack/config/vm-layout.ts';
import { xsOpen } from '../dom0/lib/libxenstore.ts';
import type { CreateResult } from '../dom0/toolstack/protocol.ts';
import { consoleMatch } from '../scenarios/lib/console.ts';

const hostLog: string[] = [];
const h = oneHost(test, 'rv-suspend-evtchn-', 96, { log: (l) => { hostLog.push(l); } });

const vm = (name: string) => h.vm(name, ['memory = 16', 'on_crash = "preserve"', 'workload = "mem-touch"', 'workload_args = [ "wss=1" ]']);

const consoleFile = (d: string) => (existsSync(join(d, CONSOLE_LOG)) ? readFileSync(join(d, CONSOLE_LOG), 'utf8') : '');
const keyOf = (domid: number) => `/local/domain/${domid}/device/suspend/event-channel`;

async function readKey(domid: number): Promise<string | null> {
  const xs = await xsOpen(h.rh.xenstoredSocket);
  try {
    return await xs.tryRead(keyOf(domid));
  } finally {
    xs.close();
  }
}

async function keyWritten(domid: number): Promise<string> {
  for (let waited = 0; waited < 20000; waited += 20) {
    const v = await readKey(domid);
    if (v !== null) return v;
    await new Promise((r) => setTimeout(r, 20)); // reading what the guest wrote, not shaping it
  }
  return '';
}

test.serial('a guest advertises its suspend event channel, is suspended through it, and advertises a new one when restored', async (t) => {
  const d = vm('se1');
  const first = await h.xl.call<CreateResult>({ verb: 'create', path: d });
  await consoleMatch(h.rh.runDir, 'se1', /mem-touch: pass 1 done/);
  t.regex((await readKey(first.domid)) ?? '', /^[0-9]+$/, 'the guest wrote a port number');

  const file = join(h.dir, 'se1.save');
  await h.xl.call({ verb: 'save', domain: 'se1', file });
  t.regex(consoleFile(d), /xenbus: the suspend event channel says suspend/, 'asked through the channel');
  t.notRegex(consoleFile(d), /xenbus: control\/shutdown says suspend/, 'not through control/shutdown');

  const r = await h.xl.call<{ domid: number }>({ verb: 'restore', file });
  const resumed = await consoleMatch(h.rh.runDir, 'se1', /mem-touch: resumed at pass (\d+)/);
  await consoleMatch(h.rh.runDir, 'se1', new RegExp(`mem-touch: pass ${Number(resumed[1])} done`));
  // Its workload carries on before xenbus is back (domu/kernel.ts): the key comes a little later.
  t.regex(await keyWritten(r.domid), /^[0-9]+$/, 'the restored guest advertises its channel again');
  // And it answers there: a second save goes the same way.
  const before = consoleFile(d).split('the suspend event channel says suspend').length;
  await h.xl.call({ verb: 'save', domain: 'se1', file });
  t.is(consoleFile(d).split('the suspend event channel says suspend').length, before + 1, 'the second suspend came through the new channel');
});

test.serial('a suspend event channel that cannot be bound: the toolstack asks through control/shutdown', async (t) => {
  const d = vm('se2');
  const first = await h.xl.call<CreateResult>({ verb: 'create', path: d });
  await consoleMatch(h.rh.runDir, 'se2', /mem-touch: pass 1 done/);
  const xs = await xsOpen(h.rh.xenstoredSocket);
  try {
    await xs.write(keyOf(first.domid), 'seven');
  } finally {
    xs.close();
  }
  await h.xl.call({ verb: 'save', domain: 'se2', file: join(h.dir, 'se2.save') });
  t.regex(consoleFile(d), /xenbus: control\/shutdown says suspend/, 'asked through control/shutdown');
  t.true(hostLog.some((l) => /se2: its suspend event channel \(device\/suspend\/event-channel = "seven"\) cannot be bound .*asking through control\/shutdown/.test(l)),
    'the toolstack says why');
});
