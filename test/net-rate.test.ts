/*
 * rate=: netback's credit scheduling. A vif limited to a few KB per interval has its packets wait
 * on the ring for credit (counted), and still delivers every byte; the limit changes when packets
 * go, never what arrives. Unit checks of xl's rate syntax and of the credit arithmetic.
 */
import test from 'ava';
import { TxCredit } from '../dom0/backends/netback/credit.ts';
import { parseRate } from '../dom0/toolstack/nic.ts';
import { NetHost } from '../scenarios/net/harness.ts';

test('xl rate syntax → bytes per interval (parse_vif_rate)', (t) => {
  t.deepEqual(parseRate('10Mb/s'), { bytesPerInterval: 62500, intervalUs: 50000 });
  t.deepEqual(parseRate('1MB/s@20ms'), { bytesPerInterval: 20000, intervalUs: 20000 });
  t.deepEqual(parseRate('8Kb/s@1s'), { bytesPerInterval: 1000, intervalUs: 1000000 });
  t.is(typeof parseRate('fast'), 'string');
  t.is(typeof parseRate('1b/s@1us'), 'string');
});

test('credit: a packet larger than what is left waits, one big packet can always go (burst of 128 KiB)', (t) => {
  let now = 0;
  let kicks = 0;
  const c = new TxCredit(1000, 10_000, () => kicks++, () => now);
  t.true(c.take(600));
  t.false(c.take(600), 'only 400 left in this window');
  t.is(c.waits, 1);
  c.stop();
  now = 10;
  t.true(new TxCredit(1000, 10_000, () => kicks++, () => now).take(1000));
  const big = new TxCredit(1000, 10_000, () => kicks++, () => 100);
  big.remaining = 0;
  t.false(big.take(60_000));
  big.stop();
});

test('a rate-limited vif delivers every datagram, its packets having waited for credit', async (t) => {
  const h = await NetHost.boot();
  try {
    const B = { mac: '00:16:3e:00:06:0b', ip: '10.0.6.11' };
    const A = { mac: '00:16:3e:00:06:0a', ip: '10.0.6.10', rate: '2MB/s@10ms' };
    const recv = await h.start({ vif: B, tasks: [{ kind: 'stream-recv', port: 42001 }] });
    const send = await h.start({
      vif: A, tasks: [{ kind: 'barrier', name: 'go' }, { kind: 'stream-send', target: B.ip, port: 42001, size: 1472, count: 400 }, { kind: 'barrier', name: 'end' }],
    });
    await recv.note('listen:42001');
    await send.go('go');
    await send.note('barrier:end');
    const vif = (await h.vifStats()).stats[`backend/vif/${send.domid}/0`] ?? {};
    t.true((vif.credit_waits ?? 0) > 0, `credit waits ${vif.credit_waits}`);
    await send.go('end');
    const [, ro] = await Promise.all([send.outcome, recv.outcome]);
    const r = ro.tasks[0].result;
    t.true(r?.kind === 'stream' && r.result.received === 400 && r.result.bad === 0, JSON.stringify(r));
    t.true(h.dom0Log.some((l) => l.includes(`vif${send.domid}.0: connected`)));
  } finally {
    await h.close();
  }
});
