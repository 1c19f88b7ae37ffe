/*
 * Every check Linux's netback makes on a tx packet (xenvif_tx_build_gops, xenvif_count_requests,
 * xenvif_get_extras, xenvif_set_skb_gso), one test each, with Linux's outcome: the packet dropped
 * (its slots consumed, ERROR responses) or the vif disabled (fatal). The rings are real netif rings
 * on a page of memory, written by a FrontRing as a frontend would.
 */
import test from 'ava';
import { TX_CONTROL, TX_DROP, TX_FATAL, TX_NONE, TX_PACKET, TxPlan, buildTx, type TxLimits } from '../dom0/backends/netback/tx-build.ts';
import {
  NETIF_TX_SLOT, NETTXF_extra_info, NETTXF_more_data, XEN_NETIF_EXTRA_FLAG_MORE, XEN_NETIF_EXTRA_TYPE_GSO,
  XEN_NETIF_EXTRA_TYPE_MCAST_ADD, XEN_NETIF_GSO_TYPE_TCPV4, netif_extra_info, netif_tx_request, netif_tx_response,
} from '../shared/public/io/netif.ts';
import { BackRing, FrontRing, sring } from '../shared/public/io/ring.ts';

interface Slot { gref?: number; offset?: number; flags?: number; id?: number; size: number }
interface Extra { type: number; more?: boolean; gsoSize?: number; gsoType?: number; mac?: number[] }

function rig(items: (Slot | Extra)[], credit = () => true) {
  const page = new Int32Array(new SharedArrayBuffer(4096));
  const front = new FrontRing([page], NETIF_TX_SLOT, netif_tx_response.size);
  const back = new BackRing([page], NETIF_TX_SLOT, netif_tx_response.size);
  const req = netif_tx_request.create();
  const ex = netif_extra_info.create();
  let id = 0;
  for (const it of items) {
    if ('type' in it) {
      ex.clear();
      ex.type = it.type;
      ex.flags = it.more ? XEN_NETIF_EXTRA_FLAG_MORE : 0;
      ex.gso_size = it.gsoSize ?? 0;
      ex.gso_type = it.gsoType ?? 0;
      if (it.mac) ex.bytes.set(it.mac, 2);
      front.putRequest(ex.words);
    } else {
      req.clear();
      req.gref = it.gref ?? 100;
      req.offset = it.offset ?? 0;
      req.flags = it.flags ?? 0;
      req.id = it.id ?? id++;
      req.size = it.size;
      front.putRequest(req.words);
    }
  }
  front.pushRequests();
  const limits: TxLimits = { fatalSlots: 20, mcast: new Set(), credit: (n) => credit() && n >= 0 };
  const plan = new TxPlan();
  return { page, front, back, plan, limits, take: () => buildTx(back, plan, limits) };
}

/** A packet of `n` slots: the first carries the total, each later one `each` bytes. */
function chain(n: number, each = 100, first = 100): Slot[] {
  const slots: Slot[] = [{ size: first + (n - 1) * each, flags: n > 1 ? NETTXF_more_data : 0 }];
  for (let i = 1; i < n; i++) slots.push({ size: each, flags: i < n - 1 ? NETTXF_more_data : 0 });
  return slots;
}

test('a good packet of one slot, then the ring is empty', (t) => {
  const r = rig([{ size: 60 }]);
  t.is(r.take(), TX_PACKET);
  t.is(r.plan.nSlots, 1);
  t.is(r.plan.size[0], 60);
  t.is(r.take(), TX_NONE);
});

test('a packet of 1 + 18 slots passes (XEN_NETBK_LEGACY_SLOTS_MAX counts the slots after the first)', (t) => {
  const r = rig(chain(19));
  t.is(r.take(), TX_PACKET, r.plan.reason);
  t.is(r.plan.nSlots, 19);
  t.is(r.plan.size[0], 100); // the first fragment's own length: total − Σ later sizes
});

test('1 + 19 slots: dropped ("Too many slots"), every slot consumed', (t) => {
  const r = rig([...chain(20), { size: 60 }]);
  t.is(r.take(), TX_DROP);
  t.regex(r.plan.reason, /Too many slots \(18\) exceeding limit \(18\)/);
  t.is(r.plan.nSlots, 20);
  t.is(r.take(), TX_PACKET); // the next packet is served normally
});

test('1 + 20 slots: still a drop; 1 + 21: fatal ("Malicious frontend using 20 slots")', (t) => {
  t.is(rig(chain(21)).take(), TX_DROP);
  const r = rig(chain(22));
  t.is(r.take(), TX_FATAL);
  t.regex(r.plan.reason, /Malicious frontend using 20 slots, threshold 20/);
});

test('more_data on the last published slot: fatal ("Asked for ... slots")', (t) => {
  const r = rig([{ size: 200, flags: NETTXF_more_data }, { size: 100, flags: NETTXF_more_data }]);
  t.is(r.take(), TX_FATAL);
  t.regex(r.plan.reason, /Asked for 2 slots but exceeds this limit/);
});

test('a later slot crossing its page: fatal ("Cross page boundary")', (t) => {
  const r = rig([{ size: 300, flags: NETTXF_more_data }, { size: 200, offset: 4000 }]);
  t.is(r.take(), TX_FATAL);
  t.regex(r.plan.reason, /Cross page boundary, txp->offset: 4000, size: 200/);
});

test('the first fragment crossing its page: fatal', (t) => {
  const r = rig([{ size: 200, offset: 4000 }]);
  t.is(r.take(), TX_FATAL);
  t.regex(r.plan.reason, /txreq.offset: 4000, size: 200/);
});

test('a first fragment under 14 bytes (ETH_HLEN): dropped ("Bad packet size")', (t) => {
  const r = rig([{ size: 13 }, { size: 60 }]);
  t.is(r.take(), TX_DROP);
  t.regex(r.plan.reason, /Bad packet size: 13/);
  t.is(r.take(), TX_PACKET);
  // The same with the first fragment short after subtracting the later ones.
  const s = rig([{ size: 110, flags: NETTXF_more_data }, { size: 100 }]);
  t.is(s.take(), TX_DROP);
  t.regex(s.plan.reason, /Bad packet size: 10/);
});

test('a later slot larger than what is left (size overflow): dropped, not fatal (buggy frontends)', (t) => {
  const r = rig([{ size: 100, flags: NETTXF_more_data }, { size: 500 }]);
  t.is(r.take(), TX_DROP);
  t.regex(r.plan.reason, /slot size 500 > remaining size 100/);
});

test('extra_info with no slot after it: fatal ("Missing extra info")', (t) => {
  const r = rig([{ size: 60, flags: NETTXF_extra_info }]);
  t.is(r.take(), TX_FATAL);
  t.is(r.plan.reason, 'Missing extra info');
});

test('an extra of type 0 or ≥ MAX: fatal ("Invalid extra type")', (t) => {
  for (const type of [0, 5, 200]) {
    const r = rig([{ size: 60, flags: NETTXF_extra_info }, { type }]);
    t.is(r.take(), TX_FATAL, `type ${type}`);
    t.is(r.plan.reason, `Invalid extra type: ${type}`);
  }
});

test('a GSO extra with size 0 or an unknown type: fatal', (t) => {
  const zero = rig([{ size: 60, flags: NETTXF_extra_info }, { type: XEN_NETIF_EXTRA_TYPE_GSO, gsoSize: 0, gsoType: XEN_NETIF_GSO_TYPE_TCPV4 }]);
  t.is(zero.take(), TX_FATAL);
  t.is(zero.plan.reason, 'GSO size must not be zero');
  const bad = rig([{ size: 60, flags: NETTXF_extra_info }, { type: XEN_NETIF_EXTRA_TYPE_GSO, gsoSize: 1448, gsoType: 7 }]);
  t.is(bad.take(), TX_FATAL);
  t.is(bad.plan.reason, 'Bad GSO type 7');
  const good = rig([{ size: 60, flags: NETTXF_extra_info }, { type: XEN_NETIF_EXTRA_TYPE_GSO, gsoSize: 1448, gsoType: XEN_NETIF_GSO_TYPE_TCPV4 }]);
  t.is(good.take(), TX_PACKET);
  t.is(good.plan.extraCount, 1);
});

test('MCAST_ADD is a control request: answered, and fails past 64 addresses', (t) => {
  const items: (Slot | Extra)[] = [];
  for (let i = 0; i < 65; i++) items.push({ size: 0, flags: NETTXF_extra_info }, { type: XEN_NETIF_EXTRA_TYPE_MCAST_ADD, mac: [1, 0, 0x5e, 0, 0, i] });
  const r = rig(items);
  for (let i = 0; i < 64; i++) {
    t.is(r.take(), TX_CONTROL);
    t.is(r.plan.controlStatus, 0);
  }
  t.is(r.take(), TX_CONTROL);
  t.is(r.plan.controlStatus, -1);
  t.is(r.limits.mcast.size, 64);
});

test('more requests published than the ring holds: fatal ("Impossible number of requests", XSA-39)', (t) => {
  const r = rig([{ size: 60 }]);
  Atomics.store(r.page, sring.req_prod, 1000);
  t.is(r.take(), TX_FATAL);
  t.regex(r.plan.reason, /Impossible number of requests/);
});

test('out of credit: the packet stays on the ring, untouched', (t) => {
  let allow = false;
  const r = rig([{ size: 60 }], () => allow);
  t.is(r.take(), TX_NONE);
  t.is(r.back.req_cons, 0);
  allow = true;
  t.is(r.take(), TX_PACKET);
});
