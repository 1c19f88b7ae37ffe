/*
 * The guest's event scan is round robin (shared/kernel/events.ts dispatch; Linux's
 * evtchn_2l_handle_events): it starts at the port after the last one handled, so with many ports
 * pending (Dom0 serving many guests' rings) the lowest-numbered are not always served first. And
 * the idle loop's final checks (armPollers) start one poller further each time.
 */
import test from 'ava';
import { EventChannels } from '../shared/kernel/events.ts';
import type { Hypercalls } from '../shared/public/hypercall.ts';
import { shared_info, vcpu_info } from '../shared/public/xen.ts';

const PENDING = shared_info.evtchn_pending >> 2;
const UPCALL = vcpu_info.evtchn_upcall_pending >> 2;
const SEL = vcpu_info.evtchn_pending_sel >> 2;

function setup() {
  const si = new Int32Array(1024); // one page
  const hc = { evtchn_unmask: () => 0, xentrace: () => undefined } as unknown as Hypercalls;
  const ev = new EventChannels(hc, si, 0);
  const order: number[] = [];
  // Events raised as the hypervisor raises them: pending bit, selector bit, upcall flag.
  const raise = (port: number) => {
    Atomics.or(si, PENDING + (port >> 5), 1 << (port & 31));
    Atomics.or(si, SEL + (port >> 10), 1 << ((port >> 5) & 31));
    Atomics.store(si, UPCALL, 1);
  };
  return { ev, order, raise, si };
}

test('the scan starts after the last port handled and wraps round', (t) => {
  const { ev, order, raise } = setup();
  const ports = [3, 5, 40, 70, 700];
  for (const p of ports) ev.bind(p, (port) => order.push(port));
  for (const p of ports) raise(p);
  t.is(ev.dispatch(), 5);
  t.deepEqual(order, [3, 5, 40, 70, 700], 'the first scan from port 0');
  // 40, 70 and 3 raised again: the scan starts after the last port handled (700), wraps round,
  // and takes them in port order from 0.
  order.length = 0;
  for (const p of [40, 70, 3]) raise(p);
  t.is(ev.dispatch(), 3);
  t.deepEqual(order, [3, 40, 70]);
  // Last handled 70: the scan starts at 71, so 700 comes first, then 3, 5, 40, and 70 (in the start
  // word, below the start) last. Before the round robin: 3, 5, 40, 70, 700 every time.
  order.length = 0;
  for (const p of ports) raise(p);
  t.is(ev.dispatch(), 5);
  t.deepEqual(order, [700, 3, 5, 40, 70]);
  // Within one word: last handled 70 (word 2): 71 and 95 come before 64 and 69.
  for (const p of [64, 69, 71, 95]) ev.bind(p, (port) => order.push(port));
  order.length = 0;
  for (const p of [64, 69, 71, 95]) raise(p);
  t.is(ev.dispatch(), 4);
  t.deepEqual(order, [71, 95, 64, 69]);
  t.is(ev.dispatch(), 0, 'nothing pending is left behind');
});

test('a port pending for another vCPU is left pending', (t) => {
  const { ev, order, raise, si } = setup();
  ev.bind(7, (p) => order.push(p));
  raise(7);
  raise(9); // no handler here
  t.is(ev.dispatch(), 1);
  t.deepEqual(order, [7]);
  t.not(Atomics.load(si, PENDING) & (1 << 9), 0);
});
