/*
 * blkfront's counters, summed over its rings: requests and segments sent, indirect requests,
 * notifications and interrupts, persistent grants held, ended and reclaimed, bounce copies, the
 * recoveries from a dead backend, and the guest's idle loop (polls, hits, sleeps) beside them.
 *
 * Linux: what xen-blkfront would show through its block device's statistics
 * (/sys/block/xvdX/stat) and the persistent-grant bookkeeping of blkfront_ring_info
 * (persistent_gnts_c); the backend's side is backends/blkback's sysfs-named counters.
 */
import type { BlkfrontQueue } from './queue.ts';

/** The recovery record blkfront keeps (blkfront.ts). */
interface RecoveryRecord { recoveries: number; reissued: number; recoveryMs: number; stallMs: number }
/** The guest's idle loop record (shared/kernel/events.ts). */
interface IdleRecord { polls: number; pollHits: number; sleeps: number; peerStops: number }

export function blkfrontStats(queues: readonly BlkfrontQueue[], poolGrants: number, recovery: RecoveryRecord, idle: IdleRecord): Record<string, number> {
  const sum = (f: (q: BlkfrontQueue) => number) => queues.reduce((n, q) => n + f(q), 0);
  return {
    requests: sum((q) => q.stats.requests),
    segments: sum((q) => q.stats.segments),
    indirect: sum((q) => q.stats.indirect),
    notifications: sum((q) => q.stats.notifications),
    interrupts: sum((q) => q.stats.interrupts),
    persistentGrants: sum((q) => q.pool?.granted ?? 0),
    persistentPerRing: poolGrants,
    persistentEnded: sum((q) => q.pool?.stats.ended ?? 0),
    persistentReclaimed: sum((q) => q.pool?.stats.reclaimed ?? 0),
    bounceCopies: sum((q) => q.bounce?.stats.copies ?? 0),
    recoveries: recovery.recoveries,
    reissued: recovery.reissued,
    recoveryMs: recovery.recoveryMs,
    stallMs: recovery.stallMs,
    idlePolls: idle.polls,
    idlePollHits: idle.pollHits,
    idleSleeps: idle.sleeps,
    idlePeerStops: idle.peerStops,
  };
}
