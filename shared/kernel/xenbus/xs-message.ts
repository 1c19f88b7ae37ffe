/*
 * Framing XenStore messages: building one to send, and reassembling one from a byte stream.
 *
 * Xen/Linux: the header handling of drivers/xen/xenbus/xenbus_comms.c (process_msg) on the guest
 * side and of tools/xenstored/core.c (handle_input) on the daemon side; the layout itself is
 * shared/public/io/xs_wire.ts. Both ends of every transport (ring page, Unix socket, Dom0's local
 * connection) use these two pieces, so framing is written once.
 *
 * The reader is told where to put the next bytes (`buffer`, `offset`, `wanted`) and how many
 * arrived (`advance`), so a caller can copy from a ring straight into it and never read past
 * the end of one message: xenstored reads a guest's ring one message at a time, which is what
 * lets it stop reading a guest that has too many replies outstanding.
 */
import { XENSTORE_PAYLOAD_MAX, XSD_SOCKMSG_SIZE, xsd_sockmsg } from '../../public/io/xs_wire.ts';

const encoder = new TextEncoder();
const decoder = new TextDecoder();

export type XsPayloadPart = string | Uint8Array;

/**
 * One message, header and payload. Strings are UTF-8 and each gets its terminating NUL; byte
 * arrays go in as they are (a write's value carries no NUL).
 */
export function encodeMessage(type: number, req_id: number, tx_id: number, parts: readonly XsPayloadPart[]): Uint8Array {
  const chunks = parts.map((p) => (typeof p === 'string' ? encoder.encode(`${p}\0`) : p));
  const len = chunks.reduce((n, c) => n + c.length, 0);
  const msg = new Uint8Array(XSD_SOCKMSG_SIZE + len);
  const h = new DataView(msg.buffer);
  h.setUint32(xsd_sockmsg.fields.type[1], type, true);
  h.setUint32(xsd_sockmsg.fields.req_id[1], req_id, true);
  h.setUint32(xsd_sockmsg.fields.tx_id[1], tx_id, true);
  h.setUint32(xsd_sockmsg.fields.len[1], len, true);
  let off = XSD_SOCKMSG_SIZE;
  for (const c of chunks) {
    msg.set(c, off);
    off += c.length;
  }
  return msg;
}

/** The NUL-terminated strings of a payload (xs_count_strings / get_strings); bytes after the last NUL are ignored. */
export function splitStrings(payload: Uint8Array): string[] {
  const out: string[] = [];
  let start = 0;
  for (let i = 0; i < payload.length; i++) {
    if (payload[i] === 0) {
      out.push(decoder.decode(payload.subarray(start, i)));
      start = i + 1;
    }
  }
  return out;
}

export function decodeString(bytes: Uint8Array): string {
  return decoder.decode(bytes);
}

export function encodeString(s: string): Uint8Array {
  return encoder.encode(s);
}

export type XsReadResult = 'more' | 'message' | 'oversize';

/** Reassembles messages from a byte stream, one at a time. */
export class XsMessageReader {
  readonly header = xsd_sockmsg.create();
  private readonly body = new Uint8Array(XENSTORE_PAYLOAD_MAX);
  private inHeader = true;
  private used = 0;

  /** Where the next bytes go. */
  get buffer(): Uint8Array {
    return this.inHeader ? this.header.bytes : this.body;
  }

  get offset(): number {
    return this.used;
  }

  /** Bytes still needed to finish the current part (header or payload). */
  get wanted(): number {
    return (this.inHeader ? XSD_SOCKMSG_SIZE : this.header.len) - this.used;
  }

  /** True between messages: nothing of the next one has arrived. */
  get idle(): boolean {
    return this.inHeader && this.used === 0;
  }

  /**
   * `n` bytes were put at buffer[offset..]. 'message' means one is complete (read it with
   * header and payload() before advancing again); 'oversize' means the header announced more than
   * XENSTORE_PAYLOAD_MAX, which no honest peer sends: the caller drops the connection.
   */
  advance(n: number): XsReadResult {
    this.used += n;
    if (this.inHeader) {
      if (this.used < XSD_SOCKMSG_SIZE) return 'more';
      if (this.header.len > XENSTORE_PAYLOAD_MAX) return 'oversize';
      this.inHeader = false;
      this.used = 0;
    }
    if (this.used < this.header.len) return 'more';
    return 'message';
  }

  /** The complete message's payload: a view, valid until the next advance(). */
  payload(): Uint8Array {
    return this.body.subarray(0, this.header.len);
  }

  /** Start on the next message. */
  reset(): void {
    this.inHeader = true;
    this.used = 0;
  }

  /** Feed a chunk (a socket's data): calls `onMessage` for each message it completes. */
  feed(chunk: Uint8Array, onMessage: () => void): 'ok' | 'oversize' {
    let off = 0;
    while (off < chunk.length) {
      const n = Math.min(this.wanted, chunk.length - off);
      this.buffer.set(chunk.subarray(off, off + n), this.used);
      off += n;
      const r = this.advance(n);
      if (r === 'oversize') return r;
      if (r === 'message') {
        onMessage();
        this.reset();
      }
    }
    return 'ok';
  }
}
