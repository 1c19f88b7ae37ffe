/*
 * "vring": a test split device that puts the generic ring (the ringtest device of
 * shared/public/io/ringtest.ts, domu/ringtest-front.ts and dom0/backends/ringtest-back.ts) behind a real
 * xenbus handshake. The frontend publishes its ring, data grants and event channel in XenStore;
 * the backend reads them there. Keys, in the style of blkif.h:
 *
 *   frontend:  ring-ref, event-channel, data-refs ("8 9 10 ..."), feature-check
 *   backend:   feature-check ("1": the backend verifies checksums), info ("ready")
 */
export const VRING = 'vring';
export const KEY_RING_REF = 'ring-ref';
export const KEY_EVENT_CHANNEL = 'event-channel';
export const KEY_DATA_REFS = 'data-refs';
export const KEY_FEATURE_CHECK = 'feature-check';
export const KEY_INFO = 'info';

/** Where the Dom0 module reports (ava runs each test file in its own process). */
export const VRING_BACK_CHANNEL = 'ringvisor-test-vring-back';

export type VringMessage =
  | { kind: 'front-state'; devid: number; state: number }
  | { kind: 'front-ran'; devid: number; requests: number; info: string }
  | { kind: 'front-closed'; devid: number }
  | { kind: 'back-state'; nodename: string; state: number }
  | { kind: 'back-removed'; nodename: string; history: number[] }
  | { kind: 'unplug'; devid: number };
