/*
 * The messages the ringtest harness and its two kernels exchange on a BroadcastChannel.
 *
 * This stands in for XenStore, which in Xen carries a frontend's ring-ref and event-channel to
 * its backend: the ring suite measures the ring, and keeps the store out of its numbers. The
 * channel carries only set-up and results, never a request.
 */
import type { RingtestBackOptions, RingtestBackStats } from '../../dom0/backends/ringtest-back.ts';
import type { RingtestFrontOptions, RingtestFrontStats, RingtestRun } from '../../domu/ringtest-front.ts';
import type { RingtestConnect } from '../../shared/public/io/ringtest.ts';

export interface RingtestModule {
  channel: string;
  /** Dom0's backend settings (copy or map, poll budget). */
  back?: RingtestBackOptions;
  /** A DomU's name for itself before it knows its domid (channels do not queue messages). */
  nonce?: string;
}

export type RingtestMessage =
  | { kind: 'backend-ready' }
  | { kind: 'frontend-ready'; nonce: string }
  | { kind: 'start'; domid: number; backend: number; front: RingtestFrontOptions; run: Omit<RingtestRun, 'len'> & { len: number | 'mixed' } }
  | { kind: 'connect'; connect: RingtestConnect }
  | { kind: 'connected'; frontend: number }
  | { kind: 'failed'; domid: number; error: string }
  | { kind: 'warm'; domid: number }
  | { kind: 'result'; domid: number; stats: RingtestFrontStats; ms: number }
  | { kind: 'disconnect'; frontend: number }
  | { kind: 'disconnected'; frontend: number; stats: RingtestBackStats }
  | { kind: 'release'; domid: number }
  | { kind: 'released'; domid: number; deferred: number };

/** The request-size sequence of the 'mixed' run: 1..4096 bytes, all lengths over time. */
export function mixedLength(n: number): number {
  return 1 + ((n * 2654435761) >>> 0) % 4096;
}
