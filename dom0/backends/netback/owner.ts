/*
 * What one netback queue needs from its vif, what the toolstack hands it (the frontend's rings and
 * ports), and the counters its tx and rx sides keep (`ringvisor top`, the bench's per-packet figures).
 *
 * Linux: the parts of struct xenvif and struct xenvif_queue (drivers/net/xen-netback/common.h) a
 * queue reaches through its vif pointer.
 */
import type { Packet, PacketPool } from '../../lib/packet.ts';
import type { TxLimits } from './tx-build.ts';

/** What a queue needs from its vif. */
export interface QueueOwner {
  readonly frontend: number;
  readonly pool: PacketPool;
  readonly limits: TxLimits;
  /** A good frame came off the tx ring (the vif hands it to the bridge; the reference is passed on). */
  transmitted(p: Packet): void;
  /** A malformed packet was dropped (rate-limited log). */
  dropped(why: string): void;
  /** The frontend broke the protocol: disable the whole vif. */
  fatal(why: string): void;
}

export interface QueueRings {
  txRef: number;
  rxRef: number;
  /** The frontend's ports: one for both rings, or one each (feature-split-event-channels). */
  txPort: number;
  rxPort: number;
}

export interface QueueStats {
  tx_packets: number; tx_bytes: number; tx_errors: number; rx_packets: number; rx_bytes: number; rx_dropped: number;
  notifications: number; interrupts: number; grant_copy_ops: number; copy_batches: number;
  /** Tx data left in the guest's pages (mapped frags), the maps and unmaps that cost, responses held for them. */
  tx_notifications: number; rx_notifications: number;
  tx_frags_mapped: number; grant_map_ops: number; grant_unmap_ops: number; tx_deferred_responses: number;
  /** Checksum offload: tx frames sent csum_blank, those freed for want of a transport header; rx frames passed on partial or validated. */
  tx_csum_partial: number; tx_csum_errors: number; rx_csum_blank: number; rx_data_validated: number;
}

export function newQueueStats(): QueueStats {
  return {
    tx_packets: 0, tx_bytes: 0, tx_errors: 0, rx_packets: 0, rx_bytes: 0, rx_dropped: 0,
    notifications: 0, interrupts: 0, grant_copy_ops: 0, copy_batches: 0,
    tx_notifications: 0, rx_notifications: 0,
    tx_frags_mapped: 0, grant_map_ops: 0, grant_unmap_ops: 0, tx_deferred_responses: 0,
    tx_csum_partial: 0, tx_csum_errors: 0, rx_csum_blank: 0, rx_data_validated: 0,
  };
}
