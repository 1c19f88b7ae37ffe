/*
 * What the ring suite's baseline threads (baselines-worker.ts) are told and tell back, and the
 * bare ring's layout: a 4 KiB header page (request and response indices, and one sleeping
 * flag per side), then `slots` pages of inline payload, then `slots` response words.
 */

export interface BaselineJob {
  role: 'bare-producer' | 'bare-consumer' | 'rb-producer' | 'rb-consumer';
  sab: SharedArrayBuffer;
  rsp?: SharedArrayBuffer;
  slots: number;
  depth: number;
  warmup: number;
  requests: number;
  spinUs: number;
}

export interface BaselineResult { requests: number; ms: number; notifications: number }

/** Word indices in the bare ring's header. */
export const BARE = { REQ_PROD: 0, REQ_CONS: 1, RSP_PROD: 2, RSP_CONS: 3, CONS_SLEEPING: 4, PROD_SLEEPING: 5 } as const;

export function bareRingBytes(slots: number): number {
  return 4096 + slots * 4096 + slots * 4;
}
