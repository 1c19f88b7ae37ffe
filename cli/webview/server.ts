/*
 * The host's live web view: `ringvisor host --http 127.0.0.1:PORT` serves a page that shows the
 * running host as it moves: domains and their state, each device's rings with their producer,
 * consumer and event indices, the mechanism counters per second over time, memory, consoles.
 *
 * Xen has no such thing built in (xentop is its live view, and tools such as xenmon draw the
 * scheduler); this is the view a student would rather look at than read. It is a tool beside the
 * toolstack, like `ringvisor top`: every figure comes from the toolstack daemon's `top` sample
 * (dom0/toolstack/top.ts) over the same control socket the command line uses, so the page shows
 * exactly what the hypervisor and Dom0's backends count, and nothing here reaches into a domain.
 *
 * Read-only and local: it listens only on a loopback address (127.0.0.0/8 or ::1; anything else is
 * refused before a socket is opened), answers only GET, refuses a request whose Host header names
 * anything but a loopback host (so a page elsewhere cannot reach it by DNS rebinding), and has no
 * verb that changes the host. No account is needed, as befits a socket only this machine reaches.
 *
 * Routes: /               the page (./static/index.html, app.js, views.js, style.css)
 *         /api/sample     one TopSample as JSON (the page polls it twice a second)
 *         /api/console/N  the last 16 KiB of domain N's console, as text
 *         /vendor/...     uPlot, the charting library (node_modules/uplot/dist)
 */
import { readFileSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { isIP } from 'node:net';
import { fileURLToPath } from 'node:url';
import type { TopSample } from '../../dom0/toolstack/protocol.ts';

export interface WebViewSource {
  sample(): Promise<TopSample>;
  consoleHistory(domid: number): Promise<Uint8Array>;
}

/** A loopback address and port from `ADDR:PORT` / `[::1]:PORT`, or an Error saying why not. */
export function parseLoopbackAddress(spec: string): { host: string; port: number } | Error {
  const m = /^\[([^\]]+)\]:(\d+)$/.exec(spec) ?? /^([^:]+):(\d+)$/.exec(spec);
  if (!m) return new Error(`--http ${spec}: expected ADDRESS:PORT, e.g. 127.0.0.1:8080 or [::1]:8080`);
  const host = m[1] === 'localhost' ? '127.0.0.1' : m[1];
  const port = Number(m[2]);
  if (!Number.isInteger(port) || port < 0 || port > 65535) return new Error(`--http ${spec}: port must be 0..65535`);
  if (!isLoopback(host)) {
    return new Error(`--http ${spec}: the web view listens only on loopback (127.0.0.0/8 or ::1); ${m[1]} is not`);
  }
  return { host, port };
}

function isLoopback(host: string): boolean {
  if (isIP(host) === 4) return host.startsWith('127.');
  if (isIP(host) === 6) return host === '::1' || host === '0:0:0:0:0:0:0:1';
  return false;
}

/** The Host header's host part is one of ours (DNS-rebinding guard). */
function hostHeaderIsLocal(h: string | undefined): boolean {
  if (!h) return false;
  const name = h.startsWith('[') ? h.slice(1, h.indexOf(']')) : h.split(':')[0];
  return name === 'localhost' || isLoopback(name);
}

const STATIC = new URL('./static/', import.meta.url);
const UPLOT = new URL('../../node_modules/uplot/dist/', import.meta.url);
const FILES: Record<string, [URL, string]> = {
  '/': [new URL('index.html', STATIC), 'text/html; charset=utf-8'],
  '/app.js': [new URL('app.js', STATIC), 'text/javascript; charset=utf-8'],
  '/views.js': [new URL('views.js', STATIC), 'text/javascript; charset=utf-8'],
  '/style.css': [new URL('style.css', STATIC), 'text/css; charset=utf-8'],
  '/vendor/uPlot.iife.min.js': [new URL('uPlot.iife.min.js', UPLOT), 'text/javascript; charset=utf-8'],
  '/vendor/uPlot.min.css': [new URL('uPlot.min.css', UPLOT), 'text/css; charset=utf-8'],
};

export interface WebView { url: string; close(): Promise<void> }

export async function serveWebView(spec: string, src: WebViewSource): Promise<WebView> {
  const addr = parseLoopbackAddress(spec);
  if (addr instanceof Error) throw addr;
  const server: Server = createServer((req, res) => { void handle(req, res, src); });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(addr.port, addr.host, () => resolve());
  });
  const a = server.address();
  const port = typeof a === 'object' && a ? a.port : addr.port;
  const shown = addr.host.includes(':') ? `[${addr.host}]` : addr.host;
  return {
    url: `http://${shown}:${port}/`,
    close: () => new Promise<void>((r) => { server.closeAllConnections(); server.close(() => r()); }),
  };
}

async function handle(req: IncomingMessage, res: ServerResponse, src: WebViewSource): Promise<void> {
  const send = (code: number, type: string, body: string | Uint8Array) => {
    res.writeHead(code, { 'content-type': type, 'cache-control': 'no-store', 'x-content-type-options': 'nosniff' });
    res.end(body);
  };
  try {
    if (!isLoopback(req.socket.remoteAddress?.replace(/^::ffff:/, '') ?? '') || !hostHeaderIsLocal(req.headers.host)) {
      return send(403, 'text/plain', 'the web view answers only loopback clients addressing a loopback host\n');
    }
    if (req.method !== 'GET') return send(405, 'text/plain', 'read-only: GET only\n');
    const path = new URL(req.url ?? '/', 'http://localhost').pathname;
    const file = FILES[path];
    if (file) return send(200, file[1], readFileSync(fileURLToPath(file[0])));
    if (path === '/api/sample') return send(200, 'application/json', JSON.stringify(await src.sample()));
    const con = /^\/api\/console\/(\d+)$/.exec(path);
    if (con) return send(200, 'text/plain; charset=utf-8', await src.consoleHistory(Number(con[1])));
    return send(404, 'text/plain', 'not found\n');
  } catch (e) {
    return send(500, 'text/plain', `${(e as Error).message}\n`);
  }
}
