/*
 * One queue of a vif as netback serves it: a tx ring (guest → bridge) and an rx ring (bridge →
 * guest), their event channels, and when Dom0's idle loop should look at them.
 *
 * Linux: drivers/net/xen-netback/interface.c (xenvif_map_frontend_data_rings, xenvif_connect_data:
 * map both rings, bind one event channel or two with feature-split-event-channels) and netback.c's
 * NAPI poll (xenvif_poll: tx work up to the budget) with the rx kthread (xenvif_kthread_guest_rx).
 * The two directions are ./tx.ts and ./rx.ts; the checks on each tx packet ./tx-build.ts.
 *
 * Notifications: before Dom0 sleeps, the tx ring's req_event is armed and checked once more
 * (RING_FINAL_CHECK_FOR_REQUESTS), and the rx ring's only while frames wait for buffers
 * (xenvif_rx_ring_slots_available sets req_event = prod + 1 and re-checks). Otherwise netfront's
 * pushes make no notification at all.
 *
 * Work is bounded per turn (TX_BUDGET packets, RX_BATCH frames): a guest that keeps its ring full
 * gets served again at the next turn of Dom0's idle loop, after everybody else.
 */
import type { Kernel } from '../../../shared/kernel/kernel.ts';
import type { IdlePoller } from '../../../shared/kernel/events.ts';
import { NETIF_RX_SLOT, NETIF_TX_SLOT, netif_tx_response } from '../../../shared/public/io/netif.ts';
import { BackRing, type RingIndices } from '../../../shared/public/io/ring.ts';
import { PAGE_SIZE } from '../../../shared/public/xen.ts';
import type { Packet } from '../../lib/packet.ts';
import { GrantMapper } from '../../../backends/blkback/grants.ts';
import { grantBudget } from '../../../backends/lib/grant-budget.ts';
import { newQueueStats, type QueueOwner, type QueueRings, type QueueStats } from './owner.ts';
import { NetbackTx } from './tx.ts';
import { NetbackRx } from './rx.ts';

export { TX_BUDGET } from './tx.ts';
export { RX_BACKLOG } from './rx.ts';

export type { QueueOwner, QueueRings, QueueStats } from './owner.ts';

export class NetbackQueue implements IdlePoller {
  readonly stats: QueueStats = newQueueStats();
  private txRing: BackRing | null = null;
  private rxRing: BackRing | null = null;
  private readonly maps: GrantMapper;
  private readonly txPort: number;
  private readonly rxPort: number;
  private readonly tx!: NetbackTx;
  private readonly rx!: NetbackRx;
  private stopped = false;
  private readonly isStopped = (): boolean => this.stopped;
  private readonly guard = (run: () => void): void => this.guarded(run);

  constructor(private readonly k: Kernel, private readonly owner: QueueOwner, readonly index: number, rings: QueueRings) {
    this.maps = new GrantMapper(k, owner.frontend, grantBudget(k), true, 2);
    const page = (ref: number) => {
      const p = this.maps.page(ref, true);
      if (p === null) throw new Error(`cannot map ring ref ${ref} of d${owner.frontend}: ${this.maps.lastError}`);
      return new Int32Array(p.buffer, p.byteOffset, PAGE_SIZE >> 2);
    };
    let txPort = -1;
    try {
      this.txRing = new BackRing([page(rings.txRef)], NETIF_TX_SLOT, netif_tx_response.size);
      this.rxRing = new BackRing([page(rings.rxRef)], NETIF_RX_SLOT, NETIF_RX_SLOT);
      this.txRing.tracer = this.rxRing.tracer = k.hypercall; // ring push / consume records (TRC_GUEST)
      if (rings.txPort === rings.rxPort) {
        txPort = k.events.bindInterdomain(owner.frontend, rings.txPort, this.onEvent);
        this.txPort = this.rxPort = txPort;
      } else {
        txPort = k.events.bindInterdomain(owner.frontend, rings.txPort, this.onEvent);
        this.txPort = txPort;
        this.rxPort = k.events.bindInterdomain(owner.frontend, rings.rxPort, this.onEvent);
      }
    } catch (e) {
      if (txPort >= 0) k.events.close(txPort);
      this.maps.releaseAll();
      throw e;
    }
    this.tx = new NetbackTx(k, owner, this.txRing, this.txPort, this.stats, this.isStopped);
    this.rx = new NetbackRx(k, owner, this.rxRing, this.rxPort, this.stats, this.isStopped, this.guard);
    k.events.addPoller(this);
  }

  get split(): boolean {
    return this.txPort !== this.rxPort;
  }

  /** The tx and rx rings' indices now, for the tools (`ringvisor top`, the web view); null once torn down. */
  ringIndices(): { tx: RingIndices; rx: RingIndices } | null {
    return this.txRing === null || this.rxRing === null ? null : { tx: this.txRing.indices(), rx: this.rxRing.indices() };
  }

  private readonly onEvent = (): void => {
    this.stats.interrupts++;
    this.guarded(this.workNow);
  };

  private readonly workNow = (): void => this.work();
  private readonly pollNow = (): void => { this.found = this.pollInner(); };
  private readonly armNow = (): void => { this.found = this.armInner(); };
  private found = false;

  /**
   * Every entry from Dom0's loop (event, poll, deferred flush) goes through here: whatever a
   * frontend's data makes go wrong ends at its own vif, never in Dom0's idle loop (issue 17).
   */
  private guarded(run: () => void): void {
    try {
      run();
    } catch (e) {
      this.owner.fatal(`internal error serving queue ${this.index}: ${e instanceof Error ? e.message : String(e)}`);
    }
  }

  /* ---- IdlePoller ---- */

  poll(): boolean {
    this.found = false;
    this.guarded(this.pollNow);
    return this.found;
  }

  prepareToSleep(): boolean {
    this.found = false;
    this.guarded(this.armNow);
    return this.found;
  }

  private pollInner(): boolean {
    if (this.stopped) return false;
    const tx = this.txRing!.unconsumedRequests() !== 0;
    const rx = this.rx.count > 0 && this.rxRing!.unconsumedRequests() !== 0;
    if (!tx && !rx) return false;
    this.work();
    return true;
  }

  private armInner(): boolean {
    if (this.stopped) return false;
    let found = this.txRing!.finalCheckForRequests();
    if (this.rx.count > 0) {
      const rx = this.rxRing!;
      const prod = rx.reqProd();
      rx.armRequestEvent(prod);
      if (rx.reqProd() !== prod) found = true;
    }
    if (found) this.work();
    return found;
  }

  /** Everything there is to do, bounded: one tx budget, then the rx backlog. */
  work(): void {
    if (this.stopped) return;
    this.tx.serve();
    if (!this.stopped) this.rx.flush();
  }

  /** A frame for this guest (the caller's reference becomes ours). False: dropped. */
  enqueue(p: Packet): boolean {
    return this.rx.enqueue(p);
  }

  /** Stop serving (the vif is disabled or going away); frames waiting are dropped. */
  stop(): void {
    if (this.stopped) return;
    this.stopped = true;
    this.k.events.removePoller(this);
    this.k.events.unbind(this.txPort);
    if (this.split) this.k.events.unbind(this.rxPort);
    this.rx.drop();
  }

  /** xenvif_disconnect_data: stop, close the ports, unmap the rings. Safe to call twice. */
  disconnect(): void {
    this.stop();
    if (this.txRing !== null) {
      this.k.events.close(this.txPort);
      if (this.split) this.k.events.close(this.rxPort);
    }
    this.tx.close();
    this.txRing = null;
    this.rxRing = null;
    this.maps.releaseAll();
  }
}
