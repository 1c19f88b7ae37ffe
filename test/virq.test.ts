/*
 * VIRQ_DOM_EXC: the hypervisor's "a domain shut down or died" event, bound by Dom0 with
 * EVTCHNOP_bind_virq and raised by send_global_virq (hypervisor/event-channel.ts), checked step
 * by step in one thread. (On a live host, test/xl-lifecycle.test.ts shows the toolstack acting on
 * it.)
 */
import test from 'ava';
import { evtchn_bind_virq, evtchn_close, evtchn_status, portsInUse, send_global_virq } from '../hypervisor/event-channel.ts';
import { EVTCHNSTAT_closed, EVTCHNSTAT_virq, VIRQ_DOM_EXC, type EvtchnStatus } from '../shared/public/event_channel.ts';
import { DOMID_SELF, XEN_EEXIST, XEN_EINVAL, XEN_EPERM, shared_info } from '../shared/public/xen.ts';
import { World } from './helpers/world.ts';

const PENDING = shared_info.evtchn_pending >> 2;

test('bind_virq: Dom0 only, vCPU 0 only, once; the port is a virq port; close frees it', (t) => {
  const w = new World();
  const dom0 = w.domain({ privileged: true });
  const u = w.domain();
  t.is(evtchn_bind_virq(u.c, VIRQ_DOM_EXC, 0), -XEN_EPERM, 'a DomU would never receive it');
  t.is(evtchn_bind_virq(dom0.c, VIRQ_DOM_EXC, 1), -XEN_EINVAL, 'global virqs are bound on vCPU 0');
  t.is(evtchn_bind_virq(dom0.c, 2 /* VIRQ_CONSOLE: not raised by ringvisor */, 0), -XEN_EINVAL);
  const before = portsInUse(w.hv, dom0.domid);
  const port = evtchn_bind_virq(dom0.c, VIRQ_DOM_EXC, 0);
  t.true(port > 0);
  t.is(evtchn_bind_virq(dom0.c, VIRQ_DOM_EXC, 0), -XEN_EEXIST);
  const st: EvtchnStatus = { status: 0, vcpu: 0, remote_dom: 0, remote_port: 0 };
  t.is(evtchn_status(dom0.c, DOMID_SELF, port, st), 0);
  t.is(st.status, EVTCHNSTAT_virq);
  t.is(st.remote_port, VIRQ_DOM_EXC);
  t.is(portsInUse(w.hv, dom0.domid), before + 1);
  t.is(evtchn_close(dom0.c, port), 0);
  t.is(evtchn_status(dom0.c, DOMID_SELF, port, st), 0);
  t.is(st.status, EVTCHNSTAT_closed);
  t.is(portsInUse(w.hv, dom0.domid), before);
});

test('send_global_virq marks the bound port pending in Dom0, and does nothing when nobody bound it', (t) => {
  const w = new World();
  const dom0 = w.domain({ privileged: true });
  send_global_virq(w.hv, VIRQ_DOM_EXC); // unbound: dropped, as in Xen
  const port = evtchn_bind_virq(dom0.c, VIRQ_DOM_EXC, 0);
  const si = w.hv.sharedInfo[dom0.domid];
  const bit = () => (Atomics.load(si, PENDING + (port >> 5)) & (1 << (port & 31))) !== 0;
  t.false(bit(), 'a fresh port has nothing pending from before it was bound');
  send_global_virq(w.hv, VIRQ_DOM_EXC);
  t.true(bit());
});
