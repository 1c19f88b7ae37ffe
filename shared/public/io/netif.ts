/*
 * netif: the paravirtual network protocol between netfront and netback.
 *
 * Xen: xen/include/public/io/netif.h (with Linux's include/xen/interface/io/netif.h, which adds
 * the XDP extra). A vif has two rings per queue, both granted by the frontend: tx (guest → world)
 * and rx (world → guest). On tx the guest names its own granted pages; on rx it posts empty
 * granted pages and the backend grant-copies packets into them.
 *
 *   struct netif_tx_request {       // 12 bytes: (4096 − 64) / 12 = 336 slots → 256
 *       grant_ref_t gref;  // @0
 *       uint16_t offset;   // @4   offset of the data within the granted page
 *       uint16_t flags;    // @6   NETTXF_*
 *       uint16_t id;       // @8   echoed in the response
 *       uint16_t size;     // @10  first slot: the WHOLE packet; later slots: this fragment
 *   };
 *   struct netif_tx_response { uint16_t id; int16_t status; };   // @0, @2; the slot stays 12 bytes
 *   struct netif_rx_request  { uint16_t id; uint16_t pad; grant_ref_t gref; };   // @0, @2, @4
 *   struct netif_rx_response {      // 8 bytes: (4096 − 64) / 8 = 504 slots → 256
 *       uint16_t id;       // @0
 *       uint16_t offset;   // @2   where the data starts in the posted page
 *       uint16_t flags;    // @4   NETRXF_*
 *       int16_t  status;   // @6   > 0: bytes in this slot; < 0: NETIF_RSP_*
 *   };
 *   struct netif_extra_info {       // 8 bytes; on tx it sits in a 12-byte slot
 *       uint8_t type;      // @0   XEN_NETIF_EXTRA_TYPE_*
 *       uint8_t flags;     // @1   XEN_NETIF_EXTRA_FLAG_MORE: another extra follows
 *       union { gso { uint16_t size; uint8_t type; uint8_t pad; uint16_t features; } // @2
 *               mcast { uint8_t addr[6]; } hash { uint8_t type, algorithm, value[4]; } } u;
 *   };
 *
 * Order on the tx ring: the first data slot, then its extras if it has NETTXF_extra_info (chained
 * by FLAG_MORE), then the remaining data slots (NETTXF_more_data on every slot but the last). The
 * first slot's size is the whole packet, so its own fragment is first.size − Σ later sizes. Every
 * backend must accept packets of up to XEN_NETIF_NR_SLOTS_MIN (18) slots.
 *
 * On the rx ring a packet's size is the sum of its slots, and a response sits in the same slot
 * index as the request it used (netfront relies on that, not on the id, because an extra-info
 * response overlays the id).
 */
import { defineStruct, type StructView } from '../struct.ts';

export const netif_tx_request = defineStruct('netif_tx_request', 12, {
  gref: ['u32', 0],
  offset: ['u16', 4],
  flags: ['u16', 6],
  id: ['u16', 8],
  size: ['u16', 10],
});
/**
 * 4 bytes written into a 12-byte slot; the other 8 still hold the frontend's own request, so no
 * byte of the backend's reaches the guest (XSA-216's concern), as in Linux.
 */
export const netif_tx_response = defineStruct('netif_tx_response', 4, {
  id: ['u16', 0],
  status: ['i16', 2],
});
export const netif_rx_request = defineStruct('netif_rx_request', 8, {
  id: ['u16', 0],
  gref: ['u32', 4],
});
export const netif_rx_response = defineStruct('netif_rx_response', 8, {
  id: ['u16', 0],
  offset: ['u16', 2],
  flags: ['u16', 4],
  status: ['i16', 6],
});
/** An extra-info segment, read in place of a tx request (12 bytes there, 8 of them used). */
export const netif_extra_info = defineStruct('netif_extra_info', 12, {
  type: ['u8', 0],
  flags: ['u8', 1],
  gso_size: ['u16', 2],
  gso_type: ['u8', 4],
  gso_pad: ['u8', 5],
  gso_features: ['u16', 6],
});
/** Where mcast.addr[6] starts in an extra (XEN_NETIF_EXTRA_TYPE_MCAST_ADD/DEL). */
export const NETIF_EXTRA_MCAST_ADDR = 2;

export type NetifTxRequest = StructView<typeof netif_tx_request.fields>;
export type NetifTxResponse = StructView<typeof netif_tx_response.fields>;
export type NetifRxRequest = StructView<typeof netif_rx_request.fields>;
export type NetifRxResponse = StructView<typeof netif_rx_response.fields>;
export type NetifExtraInfo = StructView<typeof netif_extra_info.fields>;

/** Slot sizes each ring is built with (the larger of request and response). */
export const NETIF_TX_SLOT = 12;
export const NETIF_RX_SLOT = 8;
/** __CONST_RING_SIZE(netif_tx, 4096) and (netif_rx, 4096). */
export const NET_TX_RING_SIZE = 256;
export const NET_RX_RING_SIZE = 256;

/* Tx request flags (NETTXF_*). */
export const NETTXF_csum_blank = 1 << 0;
export const NETTXF_data_validated = 1 << 1;
export const NETTXF_more_data = 1 << 2;
export const NETTXF_extra_info = 1 << 3;

/* Rx response flags (NETRXF_*). */
export const NETRXF_data_validated = 1 << 0;
export const NETRXF_csum_blank = 1 << 1;
export const NETRXF_more_data = 1 << 2;
export const NETRXF_extra_info = 1 << 3;
export const NETRXF_gso_prefix = 1 << 4; // deprecated

/* Response status (NETIF_RSP_*). An rx status > 0 is a byte count. */
export const NETIF_RSP_DROPPED = -2;
export const NETIF_RSP_ERROR = -1;
export const NETIF_RSP_OKAY = 0;
/** The response to an extra-info slot: nothing to report (netfront skips it). */
export const NETIF_RSP_NULL = 1;

/* Extra-info types and flags. Xen's header stops at HASH (MAX 5); Linux's adds XDP 5 (MAX 6). */
export const XEN_NETIF_EXTRA_TYPE_NONE = 0;
export const XEN_NETIF_EXTRA_TYPE_GSO = 1;
export const XEN_NETIF_EXTRA_TYPE_MCAST_ADD = 2;
export const XEN_NETIF_EXTRA_TYPE_MCAST_DEL = 3;
export const XEN_NETIF_EXTRA_TYPE_HASH = 4;
export const XEN_NETIF_EXTRA_TYPE_MAX = 5;
export const XEN_NETIF_EXTRA_FLAG_MORE = 1 << 0;

export const XEN_NETIF_GSO_TYPE_NONE = 0;
export const XEN_NETIF_GSO_TYPE_TCPV4 = 1;
export const XEN_NETIF_GSO_TYPE_TCPV6 = 2;

/** XEN_NETIF_MAX_TX_SIZE: the first slot's size field is 16 bits. */
export const XEN_NETIF_MAX_TX_SIZE = 0xffff;
/** XEN_NETIF_NR_SLOTS_MIN: every backend accepts packets of this many slots (old MAX_SKB_FRAGS). */
export const XEN_NETIF_NR_SLOTS_MIN = 18;
/** Linux netback: more slots than this and the packet is dropped (XEN_NETBK_LEGACY_SLOTS_MAX)... */
export const XEN_NETBK_LEGACY_SLOTS_MAX = XEN_NETIF_NR_SLOTS_MIN;
/** ...and this many or more, the frontend is malicious and its vif disabled (fatal_skb_slots). */
export const FATAL_SKB_SLOTS_DEFAULT = 20;
/** ETH_HLEN: a first slot shorter than an Ethernet header is dropped. */
export const ETH_HLEN = 14;
/** XEN_NETBK_MCAST_MAX: multicast addresses a frontend may register. */
export const XEN_NETBK_MCAST_MAX = 64;

/*
 * XenStore keys (netif.h's comments, Linux netback/netfront xenbus.c, libxl_nic.c).
 */
export const XS_NET = {
  /* toolstack → backend directory */
  script: 'script',
  vifname: 'vifname',
  mac: 'mac',
  ip: 'ip',
  bridge: 'bridge',
  rate: 'rate',
  mtu: 'mtu',
  handle: 'handle',
  type: 'type',
  /** Written by the hotplug step (vif-bridge): "connected", or "error" with hotplug-error. */
  hotplug_status: 'hotplug-status',
  hotplug_error: 'hotplug-error',
  /* toolstack → frontend directory */
  trusted: 'trusted',
  /* backend → frontend */
  feature_sg: 'feature-sg',
  feature_gso_tcpv4: 'feature-gso-tcpv4',
  feature_gso_tcpv6: 'feature-gso-tcpv6',
  feature_ipv6_csum_offload: 'feature-ipv6-csum-offload',
  feature_rx_copy: 'feature-rx-copy',
  feature_rx_flip: 'feature-rx-flip',
  feature_multicast_control: 'feature-multicast-control',
  feature_split_event_channels: 'feature-split-event-channels',
  multi_queue_max_queues: 'multi-queue-max-queues',
  feature_ctrl_ring: 'feature-ctrl-ring',
  carrier: 'carrier',
  /* frontend → backend (per queue-N/ when there is more than one queue) */
  tx_ring_ref: 'tx-ring-ref',
  rx_ring_ref: 'rx-ring-ref',
  event_channel: 'event-channel',
  event_channel_tx: 'event-channel-tx',
  event_channel_rx: 'event-channel-rx',
  multi_queue_num_queues: 'multi-queue-num-queues',
  request_rx_copy: 'request-rx-copy',
  feature_rx_notify: 'feature-rx-notify',
  feature_no_csum_offload: 'feature-no-csum-offload',
} as const;

/** The hotplug-status value a successful hotplug step writes (xen-hotplug-common.sh success()). */
export const HOTPLUG_STATUS_CONNECTED = 'connected';
export const HOTPLUG_STATUS_ERROR = 'error';

/** Parse "aa:bb:cc:dd:ee:ff" into 6 bytes, or null. */
export function parseMac(s: string): Uint8Array | null {
  if (!/^[0-9a-fA-F]{2}(:[0-9a-fA-F]{2}){5}$/.test(s)) return null;
  return Uint8Array.from(s.split(':').map((x) => parseInt(x, 16)));
}

export function formatMac(b: Uint8Array, off = 0): string {
  let s = '';
  for (let i = 0; i < 6; i++) s += (i ? ':' : '') + b[off + i].toString(16).padStart(2, '0');
  return s;
}
