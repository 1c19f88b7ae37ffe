/*
 * xl console's history (dom0/services/xenconsoled.ts): what a client attaching late is given is
 * the tail of what this domain printed, even when its log file is not its alone. A VM's directory
 * is shared storage, and during a live migration both hosts' copies of the guest append to the
 * same console.log (the target's built when the stream starts); the history must not be read back
 * from that file.
 */
import test from 'ava';
import { appendFileSync } from 'node:fs';
import { join } from 'node:path';
import { oneHost } from './helpers/one-host.ts';

const rig = oneHost(test, 'rv-conshist-', 96);

test('a late console client gets the tail of the guest\'s own output, whatever else the log file holds', async (t) => {
  const c = rig.xl;
  const vm = rig.vm('toucher', ['memory = 8', 'workload = "mem-touch"', 'workload_args = [ "wss=1" ]']);
  await c.call({ verb: 'create', path: vm });
  const history = async () => Buffer.from(await c.call<Uint8Array>({ verb: 'console-history', domain: 'toucher', max: 16384 })).toString();
  // Polled, with a bound (not a measurement) so that a guest that stops printing fails the test.
  const until = async (re: RegExp): Promise<string> => {
    for (const giveUp = Date.now() + 60_000; ;) {
      const h = await history();
      if (re.test(h)) return h;
      if (Date.now() > giveUp) throw new Error(`the history never matched ${re}; it ends:\n${h.slice(-1000)}`);
      await new Promise((r) => setTimeout(r, 50));
    }
  };
  await until(/mem-touch: pass 100 done/);
  // Another host's copy of this VM writes to the same log (the source of a migration, still running).
  appendFileSync(join(vm, 'console.log'), 'ANOTHER HOST WROTE THIS\n'.repeat(8));
  const h = await until(/mem-touch: pass 300 done/);
  t.notRegex(h, /ANOTHER HOST/, 'only this domain\'s output');
  t.regex(h, /mem-touch: pass 200 done[^\n]*\nmem-touch: pass 300 done/, 'its latest lines, in order, none missing');
});
