/*
 * Capture: a pcap written on the bridge and on a vif while two guests ARP, ping and exchange UDP,
 * read back by tcpdump, which checks the IP and UDP checksums and the lengths as it decodes.
 */
import test from 'ava';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { NetHost } from '../scenarios/net/harness.ts';

const A = { mac: '00:16:3e:00:03:0a', ip: '10.0.3.10' };
const B = { mac: '00:16:3e:00:03:0b', ip: '10.0.3.11' };
const TCPDUMP = ['/usr/sbin/tcpdump', '/usr/bin/tcpdump'].find((p) => existsSync(p));

test('pcap header is classic libpcap, LINKTYPE_ETHERNET; tcpdump decodes ARP, ICMP and UDP with no complaint', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'ringvisor-pcap-'));
  const h = await NetHost.boot();
  try {
    const brFile = join(dir, 'xenbr0.pcap');
    await h.capture('xenbr0', brFile);
    const recv = await h.start({ vif: B, tasks: [{ kind: 'stream-recv', port: 40001 }] });
    const vifFile = join(dir, `vif${recv.domid}.0.pcap`);
    await recv.note('listen:40001');
    await h.capture(`vif${recv.domid}.0`, vifFile);
    const send = await h.start({
      vif: A,
      tasks: [{ kind: 'ping', target: B.ip, count: 3 }, { kind: 'barrier', name: 'go' }, { kind: 'stream-send', target: B.ip, port: 40001, size: 1000, count: 20 }],
    });
    await send.note('barrier:go');
    await send.go('go');
    await Promise.all([send.outcome, recv.outcome]);
    const frames = await h.capture('xenbr0', null);
    const vifFrames = await h.capture(`vif${recv.domid}.0`, null);
    t.true(frames >= 2 + 6 + 20 + 2, `bridge frames ${frames}`);
    t.true(vifFrames >= 6 + 20, `vif frames ${vifFrames}`);
    const raw = readFileSync(brFile);
    t.is(raw.readUInt32LE(0), 0xa1b2c3d4);
    t.is(raw.readUInt16LE(4), 2);
    t.is(raw.readUInt16LE(6), 4);
    t.is(raw.readUInt32LE(20), 1);
    if (TCPDUMP === undefined) {
      t.log('tcpdump is not installed (looked in /usr/sbin and /usr/bin): the decode check is skipped');
      return;
    }
    for (const file of [brFile, vifFile]) {
      const out = execFileSync(TCPDUMP, ['-r', file, '-nn', '-vv'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
      for (const bad of ['bad cksum', 'bad udp cksum', 'truncated', '[|', 'wrong', 'length mismatch', 'invalid']) {
        t.false(out.includes(bad), `${file}: tcpdump says "${bad}":\n${out.split('\n').filter((l) => l.includes(bad)).slice(0, 3).join('\n')}`);
      }
      t.regex(out, new RegExp(`ICMP echo request, id \\d+, seq 1, length 64`));
      t.regex(out, new RegExp(`${B.ip.replace(/\./g, '\\.')} > ${A.ip.replace(/\./g, '\\.')}: ICMP echo reply`));
      t.regex(out, new RegExp(`${A.ip.replace(/\./g, '\\.')}\\.40002 > ${B.ip.replace(/\./g, '\\.')}\\.40001: \\[udp sum ok\\] UDP, length 1000`));
      if (file === brFile) {
        t.regex(out, new RegExp(`ARP, Ethernet \\(len 6\\), IPv4 \\(len 4\\), Request who-has ${B.ip.replace(/\./g, '\\.')} tell ${A.ip.replace(/\./g, '\\.')}`));
        t.regex(out, /ARP, Ethernet \(len 6\), IPv4 \(len 4\), Reply/);
      }
    }
  } finally {
    await h.close();
    rmSync(dir, { recursive: true, force: true });
  }
});
