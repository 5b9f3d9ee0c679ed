/**
 * The admin endpoint's socket limits (issue 14, item 9): idle or trickling unauthenticated sockets
 * must not pile up until the process runs out of file descriptors. Connections beyond
 * `maxConnections` (default 64) are closed at once; a socket that has not sent complete request
 * headers within `headersTimeoutMs` (default 5 s) is closed, however slowly it trickles bytes; a
 * request body must arrive within `requestTimeoutMs` (default 10 s); the cap held by idle sockets
 * therefore frees itself, and a real client gets through. A slow answer (a restart draining) is
 * not cut by these limits: they bound receiving, not answering.
 */
import test from 'ava';
import net from 'node:net';
import { ADMIN_SERVER_DEFAULTS, startAdminServer } from '../../src/admin/admin-server.js';
import { TOKEN, adminFor, quietDb } from '../support/admin-helpers.js';
import { recordingLogger } from '../support/alert-receivers.js';

interface Probe {
  socket: net.Socket;
  /** ms from opening to close, once closed. */
  closedAfter: number | undefined;
  /** What the server wrote before closing. */
  received: string;
  closed: Promise<number>;
}

/** Opens a TCP connection that sends nothing (or what `send` writes); records when and how it ends. */
async function openSocket(port: number): Promise<Probe> {
  const t0 = performance.now();
  const socket = net.connect(port, '127.0.0.1');
  socket.on('error', () => {}); // a reset is one way of being closed
  const probe: Probe = { socket, closedAfter: undefined, received: '', closed: undefined as never };
  socket.on('data', (d: Buffer) => (probe.received += d.toString('latin1')));
  probe.closed = new Promise((resolve) =>
    socket.on('close', () => {
      probe.closedAfter = performance.now() - t0;
      resolve(probe.closedAfter);
    }),
  );
  await new Promise<void>((resolve, reject) => {
    socket.once('connect', resolve);
    socket.once('error', reject);
  });
  return probe;
}

/** Resolves with the ms the promise took, or rejects after `boundMs` (a ref'd timer). */
function within<T>(p: Promise<T>, boundMs: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  return Promise.race([
    p,
    new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(`${what}: not within ${boundMs} ms`)), boundMs))),
  ]).finally(() => clearTimeout(timer));
}

async function authorized(url: string): Promise<number> {
  const res = await fetch(`${url}/pools`, { headers: { authorization: `Bearer ${TOKEN}` } });
  await res.arrayBuffer();
  return res.status;
}

/** Writes `text` one byte every `everyMs` until the socket closes. */
function trickle(socket: net.Socket, text: string, everyMs: number): () => number {
  let i = 0;
  const timer = setInterval(() => {
    if (socket.destroyed || i >= text.length) return clearInterval(timer);
    socket.write(text[i++]!);
  }, everyMs);
  socket.on('close', () => clearInterval(timer));
  return () => i;
}

test('defaults: 64 connections, 5 s for the headers, 10 s for the request, 5 s idle keep-alive', (t) => {
  t.deepEqual(ADMIN_SERVER_DEFAULTS, { maxConnections: 64, headersTimeoutMs: 5_000, requestTimeoutMs: 10_000, keepAliveTimeoutMs: 5_000 });
});

test('more idle sockets than the cap: the extra ones are closed at once, the rest after the header timeout; then a real client gets through', async (t) => {
  const db = quietDb(t, { main: { max: 1, min: 0 } });
  const log = recordingLogger();
  const admin = await adminFor(t, db, { token: TOKEN, logger: { info() {}, warn: log.warn } }); // default limits
  const cap = 64;
  const probes: Probe[] = [];
  t.teardown(() => {
    for (const p of probes) p.socket.destroy();
  });
  for (let i = 0; i < cap + 8; i++) probes.push(await openSocket(admin.port));

  // The 8 beyond the cap are refused at once.
  const refused = await within(Promise.all(probes.slice(cap).map((p) => p.closed)), 3_000, 'the 8 sockets beyond the cap closed');
  t.log(`sockets beyond the cap closed after ${Math.round(Math.max(...refused))} ms`);
  t.is(probes.slice(0, cap).filter((p) => p.closedAfter !== undefined).length, 0, 'the first 64 are still open');
  // While the cap is held, a real client is refused too (the endpoint cannot tell who is who before reading).
  await t.throwsAsync(authorized(admin.url));
  t.true(
    log.lines.some((l) => /admin: connection limit of 64 reached; refused \d+ connection/.test(l)),
    log.lines.join('\n'),
  );

  // The idle ones are closed once the header timeout passes (5 s, checked every 500 ms).
  const idle = await within(Promise.all(probes.slice(0, cap).map((p) => p.closed)), 9_000, 'the idle sockets closed');
  const slowest = Math.max(...idle);
  t.log(`idle sockets closed after ${Math.round(Math.min(...idle))}–${Math.round(slowest)} ms`);
  t.true(slowest < 7_000, `${Math.round(slowest)} ms`);
  t.regex(probes[0]!.received, /^HTTP\/1\.1 408 /);
  t.is(await authorized(admin.url), 200, 'a real client gets through');
});

test('a client trickling its headers one byte a second is cut off within the header timeout', async (t) => {
  const db = quietDb(t, {});
  const admin = await adminFor(t, db, { token: TOKEN }); // default limits
  const probe = await openSocket(admin.port);
  t.teardown(() => probe.socket.destroy());
  const sent = trickle(probe.socket, `GET /pools HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer ${TOKEN}\r\nX-Pad: ${'a'.repeat(200)}\r\n\r\n`, 1_000);
  const after = await within(probe.closed, 9_000, 'the trickling client cut off');
  t.log(`cut off after ${Math.round(after)} ms and ${sent()} bytes`);
  t.true(after < 7_000, `${Math.round(after)} ms`);
  t.true(sent() <= 8);
  t.regex(probe.received, /^HTTP\/1\.1 408 /);
});

test('a client trickling its body is cut off within the request timeout', async (t) => {
  const db = quietDb(t, { main: { max: 2, min: 0 } });
  const admin = await adminFor(t, db, { token: TOKEN }); // default limits
  const probe = await openSocket(admin.port);
  t.teardown(() => probe.socket.destroy());
  probe.socket.write(
    `PATCH /pools/main/config HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer ${TOKEN}\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n`,
  );
  trickle(probe.socket, `{"max": 3${' '.repeat(990)}}`, 1_000);
  const after = await within(probe.closed, 14_000, 'the trickling body cut off');
  t.log(`cut off after ${Math.round(after)} ms`);
  t.true(after < 12_000, `${Math.round(after)} ms`);
  t.is(db.getPoolConfig('main').max, 2, 'nothing changed');
});

test('limits are options: a small cap and short timeouts; slow answers are not cut; a keep-alive socket idles out', async (t) => {
  const db = quietDb(t, { main: { max: 1, min: 1 } });
  const admin = await adminFor(t, db, { token: TOKEN, maxConnections: 2, headersTimeoutMs: 500, requestTimeoutMs: 1_000, keepAliveTimeoutMs: 300 });
  const a = await openSocket(admin.port);
  const b = await openSocket(admin.port);
  const c = await openSocket(admin.port);
  t.teardown(() => {
    for (const p of [a, b, c]) p.socket.destroy();
  });
  const refused = await within(c.closed, 2_000, 'the third socket closed');
  t.true(a.closedAfter === undefined && b.closedAfter === undefined, `the third is refused at once (${Math.round(refused)} ms), the first two are open`);
  const [ta, tb] = await within(Promise.all([a.closed, b.closed]), 3_000, 'the idle sockets closed');
  t.true(Math.max(ta, tb) < 2_000, `idle sockets closed after ${Math.round(ta)} / ${Math.round(tb)} ms`);

  // A keep-alive socket is closed after its idle time.
  const ka = await openSocket(admin.port);
  t.teardown(() => ka.socket.destroy());
  ka.socket.write(`GET /pools HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer ${TOKEN}\r\n\r\n`);
  const idleAfter = await within(ka.closed, 3_000, 'the keep-alive socket closed');
  t.regex(ka.received, /^HTTP\/1\.1 200 /);
  t.true(idleAfter < 2_500, `${Math.round(idleAfter)} ms`);

  // A restart that drains for longer than requestTimeoutMs still answers: the limits bound receiving only.
  const held = await db.acquire('main');
  const release = setTimeout(() => held.release(), 1_500);
  t.teardown(() => clearTimeout(release));
  const t0 = performance.now();
  const res = await fetch(`${admin.url}/pools/main/restart`, {
    method: 'POST',
    headers: { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/json' },
    body: '{}',
  });
  await res.arrayBuffer();
  t.is(res.status, 200);
  t.true(performance.now() - t0 >= 1_400, 'it waited for the drain');
});

test('invalid limits: INVALID_CONFIG naming each field', async (t) => {
  const db = quietDb(t, {});
  const err = await t.throwsAsync(
    startAdminServer(db, { port: 0, token: TOKEN, maxConnections: 0, headersTimeoutMs: 50, requestTimeoutMs: 'x', keepAliveTimeoutMs: -1 } as never),
  );
  t.is((err as { code?: string }).code, 'INVALID_CONFIG');
  for (const field of ['maxConnections', 'headersTimeoutMs', 'requestTimeoutMs', 'keepAliveTimeoutMs'])
    t.regex(err!.message, new RegExp(`adminServer\\.${field}`), field);
  const order = await t.throwsAsync(startAdminServer(db, { port: 0, token: TOKEN, headersTimeoutMs: 5_000, requestTimeoutMs: 2_000 }));
  t.regex(order!.message, /adminServer\.headersTimeoutMs: must not be more than requestTimeoutMs/);
});
