/*
 * The receiving end of a migration reads each PAGE_DATA record's header and pfns, checks them as a
 * save file's are, and only then writes the pages, straight from the socket's chunks
 * (dom0/toolstack/migration/stream-receive.ts). A record that lies about its size fails the
 * receive with the reason and where it is, and the half-built domain goes; nothing is left behind.
 */
import test from 'ava';
import { readFileSync } from 'node:fs';
import { connect } from 'node:net';
import { join } from 'node:path';
import { oneHost } from './helpers/one-host.ts';
import { MIGRATE_RECEIVER_BANNER } from '../dom0/toolstack/migration/migrate.ts';
import { SocketInput } from '../dom0/toolstack/migration/socket-input.ts';
import { StreamWriter } from '../dom0/toolstack/migration/stream-write.ts';
import type { ListedDomain } from '../dom0/toolstack/protocol.ts';
import { REC_TYPE_PAGE_DATA, page_data_header, rec_hdr } from '../shared/public/migration-stream.ts';
import { PAGE_SIZE } from '../shared/public/xen.ts';

const hostLog: string[] = [];
const h = oneHost(test, 'rv-mig-bad-', 96, { log: (l) => { hostLog.push(l); } });

/** Polls what the host logged and lists (a result, not a delay that shapes one). */
async function until(what: string, ok: () => boolean | Promise<boolean>): Promise<void> {
  for (let waited = 0; !(await ok()); waited += 20) {
    if (waited > 30000) throw new Error(`${what}: not within 30 s`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

test('a PAGE_DATA record with fewer pages than its pfns name fails the receive with the reason; no domain is left', async (t) => {
  const file = join(h.vm('bad1', ['memory = 16']), 'vm.cfg');
  const { port } = await h.xl.call<{ port: number }>({ verb: 'migrate-receive', port: 0 });
  const sock = connect({ port, host: '127.0.0.1' });
  sock.on('error', () => undefined); // the receiver hangs up on us
  const input = new SocketInput(sock);
  await input.expect(MIGRATE_RECEIVER_BANNER);
  const w = new StreamWriter((chunk, written) => { sock.write(chunk.slice()); written(); });
  await w.headers({ name: 'bad1', file, text: readFileSync(file, 'utf8'), memoryKiB: 16 * 1024, vcpus: 1 });
  await w.libxcBegin();
  await w.pageData([0], new Uint8Array(PAGE_SIZE).fill(0x5a)); // a good one first
  // Two pfns, one page of data, the length saying so.
  const body = page_data_header.pfn + 16 + PAGE_SIZE;
  const bad = new DataView(new ArrayBuffer(rec_hdr.SIZE + body));
  bad.setUint32(rec_hdr.type, REC_TYPE_PAGE_DATA, true);
  bad.setUint32(rec_hdr.length, body, true);
  bad.setUint32(rec_hdr.SIZE + page_data_header.count, 2, true);
  bad.setUint32(rec_hdr.SIZE + page_data_header.pfn, 1, true);
  bad.setUint32(rec_hdr.SIZE + page_data_header.pfn + 8, 2, true);
  sock.write(new Uint8Array(bad.buffer));

  await until('the receiver says why it failed', () => hostLog.some((l) => /xl migrate-receive: failed: .*PAGE_DATA: 4096 bytes of data for 2 pages \(at byte \d+\)/.test(l)));
  t.pass('the reason, with where it is');
  await until('the half-built domain is gone', async () => !(await h.xl.call<ListedDomain[]>({ verb: 'list' })).some((x) => x.name.startsWith('bad1')));
  t.false((await h.xl.call<ListedDomain[]>({ verb: 'list' })).some((x) => x.name.startsWith('bad1')), 'no bad1 or bad1--incoming left');
  sock.destroy();
});
