// Event channels: Xen's states and 2-level pending semantics, checked step by step in one thread.
import test from 'ava';
import {
  evtchn_alloc_unbound, evtchn_bind_interdomain, evtchn_close, evtchn_send, evtchn_status, evtchn_unmask, portsInUse,
} from '../hypervisor/event-channel.ts';
import { EventChannels } from '../shared/kernel/events.ts';
import {
  EVTCHNSTAT_closed, EVTCHNSTAT_interdomain, EVTCHNSTAT_unbound, type EvtchnStatus,
} from '../shared/public/event_channel.ts';
import type { Hypercalls } from '../shared/public/hypercall.ts';
import { DOMID_SELF, XEN_EINVAL, XEN_EPERM, shared_info, vcpu_info } from '../shared/public/xen.ts';
import { World, type TestDomain } from './helpers/world.ts';

const UPCALL = vcpu_info.evtchn_upcall_pending >> 2;
const SEL = vcpu_info.evtchn_pending_sel >> 2;
const PENDING = shared_info.evtchn_pending >> 2;
const MASK = shared_info.evtchn_mask >> 2;

function si(w: World, d: TestDomain) {
  return w.hv.sharedInfo[d.domid];
}
function isPending(w: World, d: TestDomain, port: number) {
  return (Atomics.load(si(w, d), PENDING + (port >> 5)) & (1 << (port & 31))) !== 0;
}
/** Take b's bind-time event off its port, the way its kernel's scan would. */
function consume(w: World, b: TestDomain, pb: number) {
  Atomics.store(si(w, b), UPCALL, 0);
  Atomics.store(si(w, b), SEL + (pb >> 10), 0);
  Atomics.and(si(w, b), PENDING + (pb >> 5), ~(1 << (pb & 31)));
}
function connect(w: World, a: TestDomain, b: TestDomain) {
  const pa = evtchn_alloc_unbound(a.c, DOMID_SELF, b.domid);
  const pb = evtchn_bind_interdomain(b.c, a.domid, pa);
  return { pa, pb };
}

test('alloc_unbound: a DomU allocates only for itself; Dom0 may allocate for others', (t) => {
  const w = new World();
  const dom0 = w.domain({ privileged: true });
  const u = w.domain();
  const v = w.domain();
  t.is(evtchn_alloc_unbound(u.c, v.domid, u.domid), -XEN_EPERM);
  const p = evtchn_alloc_unbound(dom0.c, v.domid, dom0.domid);
  t.true(p > 0);
  const st: EvtchnStatus = { status: 0, vcpu: 0, remote_dom: 0, remote_port: 0 };
  t.is(evtchn_status(dom0.c, v.domid, p, st), 0);
  t.is(st.status, EVTCHNSTAT_unbound);
  t.is(st.remote_dom, dom0.domid);
  t.is(evtchn_status(u.c, v.domid, p, st), -XEN_EPERM, 'a DomU may not inspect another domain\'s ports');
});

test('bind_interdomain: only the named domain may bind, and the new port starts pending', (t) => {
  const w = new World();
  const a = w.domain({ privileged: true });
  const b = w.domain();
  const c = w.domain();
  const pa = evtchn_alloc_unbound(a.c, DOMID_SELF, b.domid);
  t.is(evtchn_bind_interdomain(c.c, a.domid, pa), -XEN_EINVAL, 'the port waits for b, not c');
  const pb = evtchn_bind_interdomain(b.c, a.domid, pa);
  t.true(pb > 0);
  t.true(isPending(w, b, pb), 'bound port is marked pending in case the peer already signalled');
  t.is(evtchn_bind_interdomain(b.c, a.domid, pa), -XEN_EINVAL, 'a bound port cannot be bound twice');
  const st: EvtchnStatus = { status: 0, vcpu: 0, remote_dom: 0, remote_port: 0 };
  evtchn_status(a.c, DOMID_SELF, pa, st);
  t.deepEqual([st.status, st.remote_dom, st.remote_port], [EVTCHNSTAT_interdomain, b.domid, pb]);
});

test('send sets pending, selector and upcall on the peer, once', (t) => {
  const w = new World();
  const a = w.domain({ privileged: true });
  const b = w.domain();
  const { pa, pb } = connect(w, a, b);
  consume(w, b, pb);
  t.is(evtchn_send(a.c, pa), 0);
  t.true(isPending(w, b, pb));
  t.is(Atomics.load(si(w, b), UPCALL), 1);
  t.not(Atomics.load(si(w, b), SEL + (pb >> 10)) & (1 << ((pb >> 5) & 31)), 0);
  t.is(a.c.hv.counter(a.domid, 'wakeups'), 1);
  evtchn_send(a.c, pa);
  t.is(a.c.hv.counter(a.domid, 'wakeups'), 1, 'a second event on a pending port does not wake again');
  t.is(a.c.hv.counter(a.domid, 'notifications'), 2);
});

test('an event sent while masked is not delivered, and is delivered on unmask', (t) => {
  const w = new World();
  const a = w.domain({ privileged: true });
  const b = w.domain();
  const { pa, pb } = connect(w, a, b);
  consume(w, b, pb);
  Atomics.or(si(w, b), MASK + (pb >> 5), 1 << (pb & 31));
  evtchn_send(a.c, pa);
  t.true(isPending(w, b, pb), 'pending is recorded');
  t.is(Atomics.load(si(w, b), UPCALL), 0, 'but a masked port raises no upcall');
  t.is(evtchn_unmask(b.c, pb), 0);
  t.is(Atomics.load(si(w, b), UPCALL), 1, 'unmask delivers it');
});

test('the kernel\'s scan runs the handler of each pending unmasked port and clears it', (t) => {
  const w = new World();
  const a = w.domain({ privileged: true });
  const b = w.domain();
  const fake = { evtchn_unmask: (p: number) => evtchn_unmask(b.c, p), xentrace: (_e: number, _a: number, _b: number, _c: number, _d: number) => {} } as Hypercalls;
  const events = new EventChannels(fake, si(w, b), 0);
  const { pa, pb } = connect(w, a, b);
  const other = connect(w, a, b);
  const seen: number[] = [];
  events.bind(pb, (p) => seen.push(p));
  events.bind(other.pb, (p) => seen.push(p));
  t.is(events.dispatch(), 2, 'both bind-time events are delivered');
  t.deepEqual(seen.sort(), [pb, other.pb].sort());
  t.is(events.dispatch(), 0, 'nothing twice');
  events.mask(pb);
  evtchn_send(a.c, pa);
  t.is(events.dispatch(), 0, 'masked: not dispatched');
  events.unmask(pb);
  t.is(events.dispatch(), 1, 'delivered after unmask');
});

test('close: the peer\'s end becomes unbound for us; sends on it do nothing', (t) => {
  const w = new World();
  const a = w.domain({ privileged: true });
  const b = w.domain();
  const { pa, pb } = connect(w, a, b);
  t.is(evtchn_close(b.c, pb), 0);
  const st: EvtchnStatus = { status: 0, vcpu: 0, remote_dom: 0, remote_port: 0 };
  evtchn_status(a.c, DOMID_SELF, pa, st);
  t.deepEqual([st.status, st.remote_dom], [EVTCHNSTAT_unbound, b.domid]);
  t.is(evtchn_send(a.c, pa), 0, 'sending on an unbound port is allowed and does nothing');
  evtchn_status(b.c, DOMID_SELF, pb, st);
  t.is(st.status, EVTCHNSTAT_closed);
  t.is(evtchn_send(b.c, pb), -XEN_EINVAL);
  t.is(evtchn_close(b.c, pb), -XEN_EINVAL);
  t.true(evtchn_bind_interdomain(b.c, a.domid, pa) > 0, 'b can bind again');
});

test('destroying a domain closes its ports and unbinds its peers', (t) => {
  const w = new World();
  const a = w.domain({ privileged: true });
  const b = w.domain();
  const { pa } = connect(w, a, b);
  t.true(portsInUse(w.hv, b.domid) >= 3);
  w.kill(b);
  t.is(portsInUse(w.hv, b.domid), 0);
  const st: EvtchnStatus = { status: 0, vcpu: 0, remote_dom: 0, remote_port: 0 };
  evtchn_status(a.c, DOMID_SELF, pa, st);
  t.is(st.status, EVTCHNSTAT_unbound);
  t.is(evtchn_send(a.c, pa), 0);
});

test('bad ports are EINVAL', (t) => {
  const w = new World();
  const a = w.domain();
  for (const p of [0, -1, 1024, 5000, 1.5]) t.is(evtchn_send(a.c, p), -XEN_EINVAL, `port ${p}`);
  t.is(evtchn_unmask(a.c, 0), -XEN_EINVAL);
});
