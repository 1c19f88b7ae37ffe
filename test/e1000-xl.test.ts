/*
 * The emulated NIC through the toolstack, as a user of xl sees it: an HVM guest's
 * `vif = [ 'model=e1000,...' ]` becomes an e1000 the guest finds on its command line and drives
 * register by register; a PV guest pings it by its ip=; bufioreq=1 is accepted on an emulated vif
 * and refused on a PV one, naming file and line.
 */
import test from 'ava';
import type { CreateResult } from '../dom0/toolstack/protocol.ts';
import { consoleText } from '../scenarios/lib/console.ts';
import { oneHost } from './helpers/one-host.ts';

const rig = oneHost(test, 'rv-e1000xl-', 160);

const vm = (name: string, body: string): string => rig.vm(name, ['memory = 24', body]);

async function consoleSays(domain: string, re: RegExp): Promise<string> {
  return await consoleText(rig.rh.runDir, domain, re);
}

for (const buffered of [false, true]) {
  test.serial(`an HVM guest's model=e1000 vif${buffered ? ' with bufioreq=1' : ''} is an emulated NIC a PV guest can ping`, async (t) => {
    const n = buffered ? 'b' : 's';
    const e = await rig.xl.call<CreateResult>({
      verb: 'create',
      path: vm(`e1000-${n}`, `type = "hvm"\nvif = [ 'mac=00:16:3e:00:06:1${n === 'b' ? 1 : 0},ip=10.0.6.1${n === 'b' ? 1 : 0},model=e1000${buffered ? ',bufioreq=1' : ''}' ]\nworkload = "idle"`),
    });
    t.deepEqual(e.warnings, []);
    const boot = await consoleSays(`e1000-${n}`, /e1000: eth0: .*ip 10\.0\.6\.1/);
    t.regex(boot, /e1000: eth0: Intel 82540EM at 0xf0000000, irq 11, mac 00:16:3e:00:06:1[01]/);
    await rig.xl.call<CreateResult>({
      verb: 'create',
      path: vm(`pinger-${n}`, `vif = [ 'mac=00:16:3e:00:06:2${n === 'b' ? 1 : 0},ip=10.0.6.2${n === 'b' ? 1 : 0}' ]\nworkload = "ping"\nworkload_args = [ "target=10.0.6.1${n === 'b' ? 1 : 0}", "count=3" ]`),
    });
    const out = await consoleSays(`pinger-${n}`, /rtt min\/avg\/max/);
    t.regex(out, /3 packets transmitted, 3 received, 0 bad, 0% packet loss/);
    await rig.xl.call({ verb: 'destroy', domain: `pinger-${n}` });
    await rig.xl.call({ verb: 'destroy', domain: `e1000-${n}` });
  });
}

test.serial('bufioreq=1 on a PV vif is refused with file:line', async (t) => {
  const err = await t.throwsAsync(rig.xl.call({ verb: 'create', path: vm('bad-buf', `vif = [ 'mac=00:16:3e:00:06:30,bufioreq=1' ]`) }));
  t.regex(err!.message, /vm\.cfg:3:.*bufioreq=1 applies to an emulated NIC/);
});
