/*
 * A hostile client harms only itself, with real domains on their own threads: while a good
 * guest keeps writing, reading and transacting through its ring, four hostile guests attack
 * xenstored through theirs (random bytes, an oversized payload, impossible ring indices, a
 * flood of requests whose replies they never collect) and a hostile tool sends junk down the
 * Unix socket. Each attacker loses its own connection (or, flooding, stops being read); every one
 * of the good guest's operations succeeds; Dom0 and xenstored keep serving throughout.
 */
import test from 'ava';
import { connect } from 'node:net';
import { bootDom0 } from '../scenarios/xenstore/harness.ts';
import { decodeString } from '../shared/kernel/xenbus/xs-message.ts';
import { XENSTORE_ERROR_PROTO, XENSTORE_ERROR_RINGIDX, XS_CONTROL } from '../shared/public/io/xs_wire.ts';
import { openInbox } from './helpers/channel.ts';
import type { XsClientMessage } from './kernels/xs-client.ts';
import type { HostileMessage, HostileMode } from './kernels/xs-hostile.ts';

const CLIENT = new URL('./kernels/xs-client.ts', import.meta.url).href;
const HOSTILE = new URL('./kernels/xs-hostile.ts', import.meta.url).href;

test('hostile guests and a hostile tool harm only themselves while a good guest is served throughout', async (t) => {
  const h = await bootDom0();
  const inbox = openInbox<XsClientMessage | HostileMessage>();
  try {
    const usageBefore = h.host.usage();
    const good = await h.createGuest({ name: 'good', vcpus: 1, memoryKiB: 2048, kernel: CLIENT, module: { channel: inbox.name } });
    await inbox.next('client-started');

    const hostile = new Map<HostileMode, number>();
    for (const mode of ['random', 'oversize', 'ringidx', 'flood'] as const) {
      hostile.set(mode, await h.createGuest({ name: `hostile-${mode}`, vcpus: 1, memoryKiB: 2048, kernel: HOSTILE, module: { channel: inbox.name, mode } }));
    }
    const expected: [HostileMode, number][] = [['random', XENSTORE_ERROR_PROTO], ['oversize', XENSTORE_ERROR_PROTO], ['ringidx', XENSTORE_ERROR_RINGIDX]];
    for (const [mode, error] of expected) {
      const m = await inbox.next('hostile-error', (x) => x.mode === mode);
      t.is(m.error, error, `${mode}: xenstored published why it stopped serving the ring`);
    }

    // The flooder: xenstored stops reading it once 20 replies wait for it (XS_CONTROL "quota").
    await inbox.next('hostile-flooded');
    const quota = async (domid: number) => decodeString(await h.xs.request(XS_CONTROL, ['quota', String(domid)]));
    let report = '';
    for (let i = 0; i < 10_000 && !/outstanding\s*:\s*20\b/.test(report); i++) report = await quota(hostile.get('flood')!);
    t.regex(report, /outstanding\s*:\s*20\b/);

    // A tool sending junk down the socket is cut off.
    const junk = connect(h.socket);
    const closed = new Promise<void>((r) => junk.on('close', () => r()));
    junk.on('error', () => undefined);
    junk.write(Buffer.from([2, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0x7f, 1, 2, 3]));
    await closed;

    // The good guest, still going, did everything right all along.
    inbox.post({ kind: 'client-stop' });
    const done = await inbox.next('client-done');
    t.deepEqual(done.failures, []);
    t.true(done.ops >= 150);
    t.regex(await h.xs.read(`/local/domain/${good}/data/k0`), /^value-\d+$/, 'and Dom0\'s tools see its writes');

    // xenstored still serves the tools and releases the attackers cleanly.
    for (const domid of hostile.values()) await h.destroyGuest(domid);
    for (const domid of hostile.values()) t.is(await h.xs.tryRead(`/local/domain/${domid}`), null);
    t.regex(await quota(good), /nodes\s*:\s*\d+/);
    await h.destroyGuest(good);
    t.deepEqual(h.host.usage(), usageBefore, 'Dom0 unmapped and unbound everything it held for them');
  } finally {
    inbox.close();
    await h.close();
  }
});
