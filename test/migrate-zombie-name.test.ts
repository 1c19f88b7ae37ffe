/*
 * A dying domain does not take a live guest's name (main's f831b48, and the create-time name check).
 *
 * A migration's source copy, destroyed but still in the hypervisor's list as dying, was taken for
 * the guest by the next `xl migrate NAME` on that host once the guest had come back: "did not
 * suspend (it is gone)" (2 of 34 quiet full migrate bench runs). libxl reads names from xenstore,
 * where a dying domain has none, so none of xl's name look-ups may see it: the build's "domain
 * with name ... already exists" check (./dom0/toolstack/prepare.ts, through libxl.ts prepare), the
 * rename NAME--incoming -> NAME at a migration's go (libxl.ts renameChecked), and find_domain by
 * name (libxl.ts resolve, under every verb that takes a domain).
 *
 * The zombie is made deterministically (./helpers/dying-domain.ts): host A lists a dying domain
 * called "zn" with a lower domid than the guest that then comes back to A, as the source copy of
 * an earlier move would be.
 */
import test from 'ava';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { XlClient } from '../cli/client.ts';
import type { MigrateResult } from '../dom0/toolstack/migration/migrate.ts';
import type { CreateResult, ListedDomain } from '../dom0/toolstack/protocol.ts';
import { dyingDomain } from './helpers/dying-domain.ts';
import { twoHosts } from './helpers/two-hosts.ts';

const H = twoHosts(test, 'rv-zombie-name-', 96);
const list = (x: XlClient) => x.call<ListedDomain[]>({ verb: 'list' });

async function move(from: XlClient, to: XlClient, name: string): Promise<MigrateResult> {
  const { port } = await to.call<{ port: number }>({ verb: 'migrate-receive', port: 0 });
  return from.call<MigrateResult>({ verb: 'migrate', domain: name, host: '127.0.0.1', port });
}

test.serial('a dying domain called NAME: the guest NAME still comes back to its host, is renamed at the go, and is the one xl finds by name', async (t) => {
  const d = join(H.dir, 'zn');
  mkdirSync(d);
  writeFileSync(join(d, 'vm.cfg'), 'name = "zn"\nmemory = 16\nworkload = "idle"\n');
  await H.xb.call<CreateResult>({ verb: 'create', path: d });
  const zombie = await dyingDomain(H.a, 'zn');
  try {
    const seen = (await list(H.xa)).find((x) => x.domid === zombie.domid);
    t.true(seen?.dying === true && seen.name === 'zn', `host A lists the zombie as dying, called zn (${JSON.stringify(seen)})`);

    // B -> A: A builds zn (its name check), then renames zn--incoming to zn at the go.
    const back = await move(H.xb, H.xa, 'zn');
    t.is(back.name, 'zn');
    const onA = (await list(H.xa)).filter((x) => x.name === 'zn');
    const live = onA.find((x) => !x.dying);
    t.truthy(live, `the guest runs on A, called zn (A lists ${JSON.stringify(onA.map((x) => [x.domid, x.dying]))})`);
    t.true(live!.domid > zombie.domid, 'after the zombie in the list, as a returning guest is');

    // find_domain by name: xl pause zn pauses the guest, not the zombie.
    await H.xa.call({ verb: 'pause', domain: 'zn' });
    t.true((await list(H.xa)).find((x) => x.domid === live!.domid)?.paused, 'xl pause zn paused the guest');
    await H.xa.call({ verb: 'unpause', domain: 'zn' });
    // The bench's failure: the next move from this host took the zombie ("did not suspend (it is gone)").
    const again = await move(H.xa, H.xb, 'zn');
    t.is(again.name, 'zn');
    t.truthy((await list(H.xb)).find((x) => x.name === 'zn' && !x.dying), 'the guest is on B');
    t.true((await list(H.xa)).some((x) => x.domid === zombie.domid && x.dying), 'the zombie was left alone');
  } finally {
    await zombie.finish();
  }
  t.false((await list(H.xa)).some((x) => x.domid === zombie.domid), 'its destroy finished: it left the list');
});
