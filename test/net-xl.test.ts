/*
 * Networking through the toolstack, as a user of xl sees it: vifs from `vif = [...]` attached at
 * create, guests pinging each other by the `ip=` of their vifs, network-list as xl prints it,
 * network-attach / network-detach on a running guest, and a capture written by the daemon.
 */
import test from 'ava';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { formatNetworkList } from '../cli/network.ts';
import type { NetworkListRow } from '../dom0/toolstack/nic.ts';
import type { CreateResult } from '../dom0/toolstack/protocol.ts';
import { consoleText } from '../scenarios/lib/console.ts';
import { oneHost } from './helpers/one-host.ts';

const rig = oneHost(test, 'rv-netxl-', 160, { log: (l) => { if (process.env.NETXL_LOG) console.error(l); } });

const vm = (name: string, body: string): string => rig.vm(name, ['memory = 24', body]);

async function consoleSays(domain: string, re: RegExp): Promise<string> {
  return await consoleText(rig.rh.runDir, domain, re);
}

test.serial('vifs attached at create; guests ping by ip=; network-list as xl prints it', async (t) => {
  const b = await rig.xl.call<CreateResult>({ verb: 'create', path: vm('nb', `vif = [ 'mac=00:16:3e:00:05:0b,ip=10.0.5.11' ]\nworkload = "idle"`) });
  t.deepEqual(b.warnings, []);
  const cap = join(rig.dir, 'br.pcap');
  const capture = rig.xl.call<number>({ verb: 'capture', port: 'xenbr0', file: cap, count: 4 });
  const a = await rig.xl.call<CreateResult>({
    verb: 'create', path: vm('na', `vif = [ 'mac=00:16:3e:00:05:0a,ip=10.0.5.10,bridge=xenbr0' ]\nworkload = "ping"\nworkload_args = [ "target=10.0.5.11", "count=3" ]`),
  });
  const out = await consoleSays('na', /rtt min\/avg\/max/);
  t.regex(out, /3 packets transmitted, 3 received, 0 bad, 0% packet loss/);
  t.is(await capture, 4);
  t.true(existsSync(cap) && readFileSync(cap).length > 24);
  const rows = await rig.xl.call<NetworkListRow[]>({ verb: 'network-list', domain: 'na' });
  t.is(rows.length, 1);
  t.like(rows[0], { devid: 0, backendId: 0, mac: '00:16:3e:00:05:0a', state: 4, backendPath: `/local/domain/0/backend/vif/${a.domid}/0` });
  const text = formatNetworkList(rows);
  t.regex(text.split('\n')[0]!, /^Idx BE Mac Addr\.\s+handle state evt-ch\s+tx-\/rx-ring-ref BE-path$/);
  t.regex(text.split('\n')[1]!, new RegExp(`^0   0  00:16:3e:00:05:0a 0      4     \\d+\\s+\\d+/\\d+\\s+/local/domain/0/backend/vif/${a.domid}/0$`));
});

test.serial('network-attach and network-detach on a running guest', async (t) => {
  const row = await rig.xl.call<NetworkListRow>({ verb: 'network-attach', domain: 'nb', spec: ['ip=10.0.5.12', 'bridge=xenbr0'] });
  t.is(row.devid, 1);
  t.regex(row.mac, /^00:16:3e:[0-7]/);
  await consoleSays('nb', /eth1: hot-plugged/);
  let rows = await rig.xl.call<NetworkListRow[]>({ verb: 'network-list', domain: 'nb' });
  t.deepEqual(rows.map((r) => r.devid), [0, 1]);
  await rig.xl.call({ verb: 'network-detach', domain: 'nb', device: '1' });
  rows = await rig.xl.call<NetworkListRow[]>({ verb: 'network-list', domain: 'nb' });
  t.deepEqual(rows.map((r) => r.devid), [0]);
  await t.throwsAsync(rig.xl.call({ verb: 'network-detach', domain: 'nb', device: '7' }), { message: /has no vif 7/ });
  await t.throwsAsync(rig.xl.call({ verb: 'network-attach', domain: 'nb', spec: ['mac=zz'] }), { message: /invalid mac/ });
});

test.serial('a config with a bad rate= names file:line and starts nothing', async (t) => {
  const e = await t.throwsAsync(rig.xl.call({ verb: 'create', path: vm('nbad', `vif = [ 'rate=fast' ]`) }));
  t.regex(e!.message, /vm\.cfg:3.*rate=fast: expected RATE\/s/);
});
