/*
 * The tests' end of a BroadcastChannel that test kernels report on: a fresh name, an inbox, and
 * "wait for the next message of this kind" (a message that never comes fails the wait after the
 * hang detector's bound, scenarios/lib/hang.ts, naming the kind and what did come).
 */
import { randomUUID } from 'node:crypto';
import { BroadcastChannel } from 'node:worker_threads';
import { bounded } from '../../scenarios/lib/hang.ts';

export interface Inbox<M extends { kind: string }> {
  name: string;
  next<K extends M['kind']>(kind: K, match?: (m: Extract<M, { kind: K }>) => boolean): Promise<Extract<M, { kind: K }>>;
  /** Send to the kernels (a channel does not hear its own posts). */
  post(m: unknown): void;
  /** Put a message in this inbox as if it had arrived (forwarding from another channel). */
  inject(m: M): void;
  close(): void;
}

export function openInbox<M extends { kind: string }>(): Inbox<M> {
  const name = `ringvisor-test-${randomUUID()}`;
  const ch = new BroadcastChannel(name);
  const inbox: M[] = [];
  let wake: (() => void) | null = null;
  const arrive = (m: M) => {
    inbox.push(m);
    wake?.();
  };
  ch.onmessage = (ev) => arrive((ev as { data: M }).data);
  return {
    name,
    next(kind, match = () => true) {
      const wait = async () => {
        for (;;) {
          const i = inbox.findIndex((m) => m.kind === kind && match(m as never));
          if (i >= 0) return inbox.splice(i, 1)[0] as never;
          await new Promise<void>((r) => { wake = r; });
        }
      };
      return bounded(wait(), () => `waiting for a '${kind}' message on ${name}; unclaimed: ${inbox.map((m) => m.kind).join(', ') || 'none'}`);
    },
    post: (m) => ch.postMessage(m),
    inject: arrive,
    close: () => ch.close(),
  };
}
