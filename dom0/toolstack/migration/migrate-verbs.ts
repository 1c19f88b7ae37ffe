/*
 * The toolstack's migrate and migrate-receive verbs: the TCP ends of ./migrate.ts.
 *
 * Xen: xl migrate runs `ssh HOST xl migrate-receive` and speaks over its pipe (xl_migrate.c);
 * ringvisor's receiver listens on a TCP port instead (0: one the system picks, reported back), on
 * loopback unless told otherwise, accepts one sender, and restores what it receives. A listener
 * that has received its guest (or failed to) closes.
 */
import { createServer, connect, type Socket } from 'node:net';
import { DEFAULT_PRECOPY, migrateSend, type MigrateHost, type MigrateResult, type PrecopyPolicy } from './migrate.ts';
import { migrateReceive } from './migrate-receive.ts';

/** xl migrate-receive: listen; resolves with the port once listening. The guest arrives later. */
export function listenForMigration(h: MigrateHost, opts: { port?: number; address?: string; paused?: boolean }): Promise<{ port: number; address: string }> {
  const address = opts.address ?? '127.0.0.1';
  return new Promise((resolve, reject) => {
    const server = createServer({ noDelay: true }, (sock: Socket) => {
      server.close(); // one guest per listener, as one xl migrate-receive per xl migrate
      migrateReceive(h, sock, opts.paused ?? false).catch((e: unknown) => {
        h.log(`xl migrate-receive: failed: ${(e as Error).message}`);
        sock.destroy();
      });
    });
    server.once('error', reject);
    server.listen(opts.port ?? 0, address, () => {
      const a = server.address();
      resolve({ port: typeof a === 'object' && a ? a.port : 0, address });
    });
  });
}

/** xl migrate DOMAIN HOST:PORT. */
export function migrateTo(h: MigrateHost, domid: number, host: string, port: number, policy: PrecopyPolicy = DEFAULT_PRECOPY): Promise<MigrateResult> {
  return new Promise((resolve, reject) => {
    const sock = connect({ host, port, noDelay: true });
    sock.once('error', (e) => reject(new Error(`cannot reach a receiver at ${host}:${port}: ${e.message}; the guest keeps running here`)));
    sock.once('connect', () => {
      sock.removeAllListeners('error');
      sock.on('error', () => undefined); // reported through migrateSend
      migrateSend(h, domid, sock, policy).then(resolve, (e: unknown) => { sock.destroy(); reject(e); });
    });
  });
}
