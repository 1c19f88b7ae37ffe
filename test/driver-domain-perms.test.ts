// The XenStore permissions of a device served by a driver domain, as libxl sets them (issue 16,
// item 2; XEN-FACTS Part 2 §6): the frontend directory owned by the frontend and readable by the
// driver domain, the backend directory owned by the driver domain and readable by the frontend.
// So the frontend cannot write the backend directory, the driver domain cannot read the guests'
// homes, and a restarted driver domain that takes the device over can read what the frontend
// writes afterwards and nothing it could not before. The real xenstored and the toolstack's own
// functions, over guest rings (test/helpers/xs-fake.ts).
import test from 'ava';
import { addDeviceNodes } from '../dom0/toolstack/xenstore-home.ts';
import { DriverDomains } from '../dom0/toolstack/driver-domain.ts';
import { XenbusState } from '../shared/public/io/xenbus.ts';
import { makeRig, refusal } from './helpers/xs-fake.ts';

const FE = 3;
const OTHER = 4;
const DD = 5;
const DD2 = 6;
const FE_DIR = `/local/domain/${FE}/device/vbd/51712`;
const BE_DIR = `/local/domain/${DD}/backend/vbd/${FE}/51712`;
const SPEC = { type: 'vbd', frontend: FE, devid: 51712, backend: DD, backKeys: { params: '/img', mode: 'w', 'physical-device': '1:1' } };

async function rig() {
  const r = await makeRig();
  for (const d of [FE, OTHER, DD, DD2]) await r.addGuest(d);
  await r.dom0.write(`/local/domain/${DD}/name`, 'storage-dd');
  await addDeviceNodes(r.dom0, SPEC);
  return { ...r, fe: r.guests.get(FE)!.xs, other: r.guests.get(OTHER)!.xs, dd: r.guests.get(DD)!.xs, dd2: r.guests.get(DD2)!.xs };
}

test('backend directory: the driver domain\'s, read-only for the frontend', async (t) => {
  const { dom0, fe, dd } = await rig();
  t.deepEqual(await dom0.getPerms(BE_DIR), [{ id: DD, perms: 0 }, { id: FE, perms: 1 }]);
  t.is(await fe.read(`${BE_DIR}/state`), String(XenbusState.Initialising), 'the frontend reads the backend\'s state');
  t.is(await refusal(fe.write(`${BE_DIR}/state`, String(XenbusState.Connected))), 'EACCES', 'and cannot write it');
  t.is(await refusal(fe.write(`${BE_DIR}/sectors`, '1')), 'EACCES', 'nor add a key the backend would trust');
  t.is(await refusal(fe.rm(BE_DIR)), 'EACCES');
  await dd.write(`${BE_DIR}/state`, String(XenbusState.InitWait));
  await dd.write(`${BE_DIR}/sectors`, '32768');
  t.deepEqual(await dom0.getPerms(`${BE_DIR}/sectors`), [{ id: DD, perms: 0 }, { id: FE, perms: 1 }], 'what blkback adds inherits them');
  t.is(await fe.read(`${BE_DIR}/sectors`), '32768');
});

test('frontend directory: the frontend\'s, read-only for the driver domain; the driver domain sees no one\'s home', async (t) => {
  const { dom0, fe, dd, other } = await rig();
  t.deepEqual(await dom0.getPerms(FE_DIR), [{ id: FE, perms: 0 }, { id: DD, perms: 1 }]);
  await fe.write(`${FE_DIR}/ring-ref`, '8');
  t.is(await dd.read(`${FE_DIR}/ring-ref`), '8', 'blkback reads the frontend\'s keys');
  t.is(await refusal(dd.write(`${FE_DIR}/ring-ref`, '9')), 'EACCES', 'and cannot change them');
  for (const path of [`/local/domain/${FE}`, `/local/domain/${FE}/name`, `/local/domain/${FE}/device`, `/local/domain/${OTHER}/name`,
    `/local/domain/${OTHER}/data`, '/local/domain/0/name']) {
    t.is(await refusal(dd.read(path)), 'EACCES', `the driver domain cannot read ${path}`);
  }
  t.is(await refusal(dd.directory(`/local/domain/${FE}/device/vbd`)), 'EACCES');
  t.is(await refusal(other.read(`${FE_DIR}/ring-ref`)), 'EACCES', 'another guest reads neither end');
  t.is(await refusal(other.read(`${BE_DIR}/state`)), 'EACCES');
});

test('a driver domain that dies: its backend says Closed; its successor takes the device over with the same permissions, the dead one\'s gone', async (t) => {
  const { dom0, fe, dd2 } = await rig();
  await fe.write(`${FE_DIR}/ring-ref`, '8');
  await fe.write(`${FE_DIR}/queue-0/event-channel`, '5');
  const lines: string[] = [];
  const dds = new DriverDomains(dom0, (l) => lines.push(l));
  await dds.record(SPEC);
  t.is(await dds.backendGone(DD), 1);
  t.is(await dom0.read(`${BE_DIR}/state`), String(XenbusState.Closed), 'the frontend sees Closed without Closing');
  t.is(await dds.backendGone(DD), 0, 'once');
  await dom0.rm(`/local/domain/${DD}`); // the toolstack removes the dead domain's home
  t.is(await dds.backendGone(DD), 0);
  t.is(await dds.adopt('another-name', DD2), 0, 'only a domain of the dead one\'s name takes its devices');
  t.is(await dds.adopt('storage-dd', DD2), 1);
  const bk2 = `/local/domain/${DD2}/backend/vbd/${FE}/51712`;
  t.is(await fe.read(`${FE_DIR}/backend`), bk2);
  t.is(await fe.read(`${FE_DIR}/backend-id`), String(DD2));
  t.deepEqual(await dom0.getPerms(bk2), [{ id: DD2, perms: 0 }, { id: FE, perms: 1 }]);
  t.is(await dom0.read(`${bk2}/physical-device`), '1:1', 'the same namespace: the disk stayed in its drive');
  t.is(await dom0.read(`${bk2}/state`), String(XenbusState.Initialising));
  for (const node of [FE_DIR, `${FE_DIR}/ring-ref`, `${FE_DIR}/queue-0`, `${FE_DIR}/queue-0/event-channel`]) {
    t.deepEqual(await dom0.getPerms(node), [{ id: FE, perms: 0 }, { id: DD2, perms: 1 }], `${node}: readable by the new driver domain only`);
  }
  t.is(await dd2.read(`${FE_DIR}/queue-0/event-channel`), '5');
  t.is(await refusal(dd2.read(`/local/domain/${FE}/name`)), 'EACCES');
  t.is(await refusal(fe.write(`${bk2}/state`, '4')), 'EACCES');
  t.true(lines.some((l) => l.includes('takes over the 1 device(s)')));
});
