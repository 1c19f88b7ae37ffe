/*
 * The guest's one network-device interface: what the network stack sees, whether the NIC behind
 * it is paravirtual (netfront) or emulated (an e1000 the guest drives register by register).
 *
 * Linux: struct net_device with its ndo_start_xmit and the receive path's netif_receive_skb,
 * reduced to what ringvisor's stack needs. It is deliberately small:
 *
 *   transmit(frags, n)   queue one Ethernet frame made of `n` fragments (scatter-gather: a
 *                        header built in one buffer, a payload in another). false means the tx
 *                        queue is full (netif_stop_queue); `onTxRoom` says when to try again.
 *   onReceive            called for each frame received, with a view that is valid only during
 *                        the call (the driver recycles the buffer at once): copy what you keep.
 *
 * No allocation per frame on either side: the caller reuses its fragment array, the driver its
 * buffers. Frames are whole Ethernet frames without the FCS, as Linux hands them over.
 */

export type NetPath = 'pv' | 'emu-e1000';

export interface NetDevice {
  readonly name: string;
  readonly path: NetPath;
  /** The NIC's own MAC (from the vif's `mac`). */
  readonly mac: Uint8Array;
  /** Largest IP packet (the frame is mtu + 14). */
  readonly mtu: number;
  /** Most fragments one transmit may carry (1 without scatter-gather). */
  readonly maxFrags: number;

  /**
   * NETIF_F_IP_CSUM: the NIC completes an IPv4 UDP checksum itself, so the stack may hand it a frame
   * whose checksum field holds only the pseudo-header sum (netfront: NETTXF_csum_blank). Absent: no.
   */
  readonly csumOffload?: boolean;

  /**
   * Queue a frame of `n` fragments from `frags`; false if there is no room now. `csumPartial`: its
   * L4 checksum is left to the NIC (only when csumOffload says it may be).
   */
  transmit(frags: readonly Uint8Array[], n: number, csumPartial?: boolean): boolean;
  /**
   * A frame arrived; `frame` is only valid during the call. `csum` is its skb->ip_summed
   * (shared/kernel/net-csum.ts): CHECKSUM_NONE (or absent) means the stack verifies the L4
   * checksum, CHECKSUM_UNNECESSARY and CHECKSUM_PARTIAL that the NIC vouched for the data.
   */
  onReceive: (frame: Uint8Array, csum?: number) => void;
  /** Room on the tx queue again after transmit() said false. */
  onTxRoom: () => void;

  /** Counters a learner can see (frames, bytes, notifications, grant copies, drops...). */
  stats(): Record<string, number>;
  /** Stop using the device (tear down its connection). */
  close(): Promise<void>;
}
