/*
 * `npm start -- pv-net`: the network scenario narrates the vif handshake, the bridge learning both
 * MACs, one packet's path with its counters, ping and a UDP stream with every byte checked, and a
 * pcap. Checked for its key lines, not its numbers.
 */
import test from 'ava';
import { SCENARIOS } from '../scenarios/registry.ts';
import { pvNet } from '../scenarios/pv-net.ts';

test('pv-net narrates the handshake, bridge learning, a packet\'s path, ping, a checked stream and a capture', async (t) => {
  t.is(SCENARIOS.find((s) => s.name === 'pv-net')?.run, pvNet);
  const lines: string[] = [];
  await pvNet((l) => lines.push(l));
  const text = lines.join('\n');
  t.regex(text, /guest-b vif\d+\.0: backend InitWait/);
  t.regex(text, /guest-a vif\d+\.0: hotplug-status = connected/);
  t.regex(text, /guest-a vif\d+\.0: backend Connected/);
  t.regex(text, /xenbr0 learned 00:16:3e:0a:00:0a on vif\d+\.0/);
  t.regex(text, /xenbr0 learned 00:16:3e:0a:00:0b on vif\d+\.0/);
  t.regex(text, /netback grant-copies it into a page guest-b posted/);
  t.regex(text, /\(ping: 5\/5 replies/);
  t.regex(text, /sent 5000, received 5000, lost 0, corrupted 0/);
  t.regex(text, /per packet: \d+\.\d{3} notifications, \d+\.\d{3} grant-copy ops/);
  t.regex(text, /guest-d \(PV\) → guest-c \(e1000\): 2000 of 2000 datagrams arrived, 0 corrupted/);
  t.regex(text, /per packet: \d+\.\d{3} traps, \d+\.\d{3} ioreq round trips/);
  t.regex(text, /The capture: \d+ frames/);
});
