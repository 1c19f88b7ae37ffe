/*
 * xenbus_read_unsigned (shared/kernel/xenbus/client.ts): the one way both ends of a device read a
 * number the other end wrote (blkback reads the frontend's ring-ref and queue count, blkfront the
 * backend's sectors and features, xl block-list both). A value the other end got wrong is the
 * default, never a throw, and never a number it did not write.
 */
import test from 'ava';
import { makeRig } from './helpers/xs-fake.ts';

test('whole numbers are read; absent, empty, signed, fractional, hex, spaced and huge values give the default', async (t) => {
  const { dom0: xs } = await makeRig();
  const at = (v: string) => `/t/${Buffer.from(v).toString('hex') || 'empty'}`;
  const cases: [string, number][] = [
    ['0', 0], ['7', 7], ['4294967295', 4294967295], ['007', 7],
    ['', -1], ['-1', -1], ['1.5', -1], ['0x10', -1], [' 3', -1], ['3 ', -1], ['1e3', -1], ['9007199254740993', -1], ['abc', -1],
  ];
  for (const [v] of cases) await xs.write(at(v), v);
  for (const [v, want] of cases) t.is(await xs.readUnsigned(at(v), -1), want, JSON.stringify(v));
  t.is(await xs.readUnsigned('/t/absent', 42), 42);
});
