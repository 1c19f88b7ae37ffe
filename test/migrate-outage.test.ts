/*
 * The downtime of a live migration as a peer sees it (scenarios/lib/outage-peer.ts): a guest runs
 * mem-touch and serves udp-rr beside it (serve=PORT) while it moves from host A to host B; a guest
 * on a third host C, whose bridge's uplink reaches both, asks it back to back (udp-probe). The
 * peer's silence around the pause is found (the answers on either side of it, the one before the
 * pause and the one after the resume), every answer before and after checks out (each reply
 * carries the request's sequence number and the payload's checksum: udp-probe counts anything
 * else as bad), and the guest runs on at B. No assertion on how long anything took.
 */
import test from 'ava';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { XlClient } from '../cli/client.ts';
import type { RunningHost } from '../cli/host.ts';
import type { MigrateResult } from '../dom0/toolstack/migration/migrate.ts';
import type { ListedDomain } from '../dom0/toolstack/protocol.ts';
import { OutagePeer, RR_PORT, startUplinkedHost, vifFor } from '../scenarios/lib/outage-peer.ts';
import { consoleMatch } from '../scenarios/lib/console.ts';

let dir = '';
const hosts: RunningHost[] = [];

test.after.always(async () => {
  for (const h of hosts) await h.close();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

function consoleSays(rh: RunningHost, domain: string, re: RegExp): Promise<RegExpMatchArray> {
  return consoleMatch(rh.runDir, domain, re);
}

test('a peer on a third host finds the outage of a guest that moves while serving, and every answer checks out', async (t) => {
  dir = mkdtempSync(join(tmpdir(), 'rv-outage-'));
  const a = await startUplinkedHost({ runDir: join(dir, 'a'), memoryMiB: 112 });
  hosts.push(a.host);
  const b = await startUplinkedHost({ runDir: join(dir, 'b'), memoryMiB: 112 }, [a.port]);
  hosts.push(b.host);
  const c = await startUplinkedHost({ runDir: join(dir, 'c'), memoryMiB: 112 }, [a.port, b.port]);
  hosts.push(c.host);
  const xa = await XlClient.open(a.host.runDir);
  const xb = await XlClient.open(b.host.runDir);
  try {
    const mover = vifFor(10);
    const d = join(dir, 'mover');
    mkdirSync(d);
    writeFileSync(join(d, 'vm.cfg'), `name = "mover"\nmemory = 32\n${mover.line}\nworkload = "mem-touch"\n` +
      `workload_args = [ "wss=4", "serve=${RR_PORT}" ]\n`);
    await xa.call({ verb: 'create', path: d });
    await consoleSays(a.host, 'mover', /udp-rr: serving on 10\.0\.7\.10:7000, beside the workload[\s\S]*mem-touch: pass 1 done|mem-touch: pass 1 done[\s\S]*udp-rr: serving on 10\.0\.7\.10:7000, beside the workload/);
    const peer = await OutagePeer.start(c.host, dir, { name: 'peer', vif: 11, target: mover.ip });
    const before = peer.counts();
    t.true(before.answered >= 100, 'the peer had answers before the move');
    t.is(before.bad, 0);

    const { port } = await xb.call<{ port: number }>({ verb: 'migrate-receive', port: 0 });
    const r = await xa.call<MigrateResult>({ verb: 'migrate', domain: 'mover', host: '127.0.0.1', port });
    const outage = await peer.outageAround(r);
    t.not(outage, null, 'the peer saw a silence around the pause and answers again after it');
    t.log(`peer's outage ${outage?.ms} ms, toolstack's downtime ${r.downtimeMs.toFixed(1)} ms (a loaded machine)`);
    t.true(outage!.before.seq >= before.answered - 1, 'the last answer before the pause came after the warm-up');
    t.is(outage!.after.seq, outage!.before.seq + 1, 'one request in flight: the next sequence number was answered after the resume');
    t.true(outage!.after.at > outage!.before.at);
    t.true(outage!.after.at >= r.suspendedAt, 'the silence ends after the suspend request');
    t.is(outage!.bad, 0);

    const after = await peer.answeredBeyond(outage!.after.seq + 200);
    t.is(after.bad, 0, 'every answer after the move checks out too');
    // The guest runs on at B, mem-touch included (a page that came back wrong would have crashed
    // it: on_crash destroys it), and A let it go.
    const onB = (await xb.call<ListedDomain[]>({ verb: 'list' })).find((x) => x.name === 'mover');
    t.truthy(onB, 'the guest is on B');
    t.false(onB!.shutdown || onB!.dying, 'and running');
    t.false((await xa.call<ListedDomain[]>({ verb: 'list' })).some((x) => x.name === 'mover'), 'A let it go');
    await peer.stop();
  } finally {
    xa.close();
    xb.close();
  }
});
