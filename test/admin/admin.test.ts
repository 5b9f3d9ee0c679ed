/**
 * The admin endpoint over HTTP, in process (the CLI's own tests are in cli.test.ts): routes × tokens,
 * request bodies, error shapes, and that nothing secret ever leaves it.
 */
import test from 'ava';
import { once } from 'node:events';
import { startAdminServer } from '../../src/admin/admin-server.js';
import { ADMIN_ROUTES } from '../../src/admin/routes.js';
import { DEFAULT_MAX_BODY_BYTES } from '../../src/admin/protocol.js';
import type { DatabasePool } from '../../src/index.js';
import { SECRET_PASSWORD, TOKEN, WRONG_TOKEN, adminFor, closedPort, quietDb, rawRequest } from '../support/admin-helpers.js';
import { eventually } from '../support/helpers.js';

interface Answer {
  status: number;
  headers: Headers;
  text: string;
  json: any;
}

async function call(
  base: string,
  method: string,
  path: string,
  options: { token?: string | null; body?: unknown; raw?: string; contentType?: string; headers?: Record<string, string> } = {},
): Promise<Answer> {
  const headers: Record<string, string> = { ...options.headers };
  const token = options.token === undefined ? TOKEN : options.token;
  if (token !== null) headers.authorization = `Bearer ${token}`;
  let body: string | undefined = options.raw;
  if (options.body !== undefined) body = JSON.stringify(options.body);
  if (body !== undefined) headers['content-type'] = options.contentType ?? 'application/json';
  const res = await fetch(`${base}${path}`, { method, headers, body });
  const text = await res.text();
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    json = undefined;
  }
  return { status: res.status, headers: res.headers, text, json };
}

/** What a mutation could change: the config, and which server sessions the pool holds. */
function fingerprint(db: DatabasePool, poolId: string) {
  return {
    config: db.getPoolConfig(poolId),
    connections: db.getConnectionDetails(poolId).map((c) => `${c.id}:${c.processId}:${c.state}`),
    created: db.getDetailedMetrics(poolId).totals.connectionsCreated,
  };
}

/** A pool with `n` idle connections open and nothing else going on. */
async function settled(db: DatabasePool, poolId: string, n: number): Promise<void> {
  // n loans held at once: n distinct sessions, however fast each one connects.
  const loans = await Promise.all(Array.from({ length: n }, () => db.acquire(poolId)));
  for (const loan of loans) loan.release();
  const ok = await eventually(() => db.getPoolStatus(poolId).idle === n && db.getPoolStatus(poolId).pendingCreates === 0, 15_000);
  // A test's before/after comparison means nothing on a pool that never reached this state.
  if (!ok) throw new Error(`pool ${poolId} did not settle at ${n} idle connections: ${JSON.stringify(db.getPoolStatus(poolId))}`);
}

const MUTATIONS: [method: string, path: (id: string) => string, body: unknown][] = [
  ['POST', (id) => `/pools/${id}/restart`, {}],
  ['POST', (id) => `/pools/${id}/cleanup`, {}],
  ['PATCH', (id) => `/pools/${id}/config`, { max: 7 }],
  ['PATCH', (id) => `/pools/${id}/config`, { queryTimeoutMs: 1234, acquireTimeoutMs: 567 }],
];

test('liveness needs no token; readiness needs one and is 200 when every pool answers, 503 when one does not', async (t) => {
  const db = quietDb(t, { ok: { max: 2, min: 0 } });
  const admin = await adminFor(t, db);
  t.regex(admin.url, /^http:\/\/127\.0\.0\.1:\d+$/);
  const live = await call(admin.url, 'GET', '/healthz', { token: null });
  t.is(live.status, 200);
  t.deepEqual(live.json, { status: 'ok' });
  t.is(live.headers.get('content-type'), 'application/json; charset=utf-8');
  t.is(live.headers.get('cache-control'), 'no-store');
  t.is((await call(admin.url, 'GET', '/readyz', { token: null })).status, 401);
  await db.query('ok', 'SELECT 1'); // a connection open, so the probe does not race the connect on a busy machine
  const ready = await call(admin.url, 'GET', '/readyz');
  t.is(ready.status, 200);
  t.is(ready.json.status, 'healthy');
  t.deepEqual(ready.json.healthyPools, ['ok']);

  await db.createPool('down', {
    connection: { host: '127.0.0.1', port: await closedPort(), user: 'app', password: SECRET_PASSWORD },
    min: 0,
    acquireTimeoutMs: 500,
  });
  const notReady = await call(admin.url, 'GET', '/readyz');
  t.is(notReady.status, 503);
  t.is(notReady.json.status, 'degraded');
  t.deepEqual(
    notReady.json.unhealthyPools.map((p: { poolId: string }) => p.poolId),
    ['down'],
  );
  const health = await call(admin.url, 'GET', '/health');
  t.is(health.status, 200, '/health is a report: always 200');
  t.is(health.json.status, 'degraded');
  t.false(notReady.text.includes(SECRET_PASSWORD) || health.text.includes(SECRET_PASSWORD));
});

test('every route but /healthz refuses a missing or wrong token (401, WWW-Authenticate); the right one is served', async (t) => {
  const db = quietDb(t, { m: { max: 3, min: 0 } });
  const admin = await adminFor(t, db);
  t.is(ADMIN_ROUTES.length, 13);
  for (const route of ADMIN_ROUTES) {
    const path = route.path.replace(':id', 'm');
    const body = route.method === 'PATCH' ? { max: 4 } : route.method === 'POST' ? {} : undefined;
    if (route.access === 'public') {
      t.is((await call(admin.url, route.method, path, { token: null })).status, 200, path);
      continue;
    }
    const before = fingerprint(db, 'm');
    for (const token of [null, WRONG_TOKEN, TOKEN.slice(0, -1), `${TOKEN}x`, '', TOKEN.toUpperCase()]) {
      const res = await call(admin.url, route.method, path, { token, body });
      t.is(res.status, 401, `${route.method} ${path} with ${token === null ? 'no' : 'a wrong'} token`);
      t.is(res.json.error.code, 'UNAUTHORIZED');
      t.regex(res.headers.get('www-authenticate') ?? '', /^Bearer realm="db-pool-admin"/);
    }
    const raw = await call(admin.url, route.method, path, { token: null, body, headers: { authorization: TOKEN } });
    t.is(raw.status, 401, 'the token without the Bearer scheme is refused');
    t.deepEqual(fingerprint(db, 'm'), before, `${route.method} ${path}: refused requests change nothing`);
    const ok = await call(admin.url, route.method, path, { body });
    t.true(ok.status === 200 || (route.path === '/readyz' && ok.status === 503), `${route.method} ${path} → ${ok.status} ${ok.text}`);
  }
});

test('wrong and missing tokens on every mutating route change neither the config nor the connections', async (t) => {
  const db = quietDb(t, { w: { max: 4, min: 2 } });
  const admin = await adminFor(t, db);
  await settled(db, 'w', 2);
  const before = fingerprint(db, 'w');
  for (const [method, path, body] of MUTATIONS) {
    for (const token of [null, WRONG_TOKEN]) {
      const res = await call(admin.url, method, path('w'), { token, body });
      t.is(res.status, 401);
    }
  }
  t.deepEqual(fingerprint(db, 'w'), before);
  // The right token does change them: restart replaces the sessions, the patches apply.
  for (const [method, path, body] of MUTATIONS) t.is((await call(admin.url, method, path('w'), { body })).status, 200);
  const after = db.getPoolConfig('w');
  t.is(after.max, 7);
  t.is(after.queryTimeoutMs, 1234);
  t.is(after.acquireTimeoutMs, 567);
  const oldSessions = new Set(before.connections.map((c) => c.split(':')[1]));
  t.is(oldSessions.size, 2, 'the two settled sessions were there before the restart');
  t.true(
    await eventually(() => {
      const now = db.getConnectionDetails('w');
      return now.length > 0 && now.every((c) => !oldSessions.has(String(c.processId)));
    }),
    'the restart replaced every session',
  );
});

test('without a token the mutating routes are off (403) and reads need allowUnauthenticatedReads', async (t) => {
  const db = quietDb(t, { n: { max: 3, min: 1 } });
  await settled(db, 'n', 1);
  const closed = await adminFor(t, db, {});
  const open = await adminFor(t, db, { allowUnauthenticatedReads: true });
  const before = fingerprint(db, 'n');
  for (const admin of [closed, open]) {
    for (const [method, path, body] of MUTATIONS) {
      for (const token of [null, TOKEN]) {
        const res = await call(admin.url, method, path('n'), { token, body });
        t.is(res.status, 403);
        t.is(res.json.error.code, 'MUTATIONS_DISABLED');
        t.regex(res.json.error.message, /started without a token.*startAdminServer\(\{ token \}\)/);
      }
    }
  }
  t.deepEqual(fingerprint(db, 'n'), before);
  const refused = await call(closed.url, 'GET', '/pools', { token: null });
  t.is(refused.status, 401);
  t.regex(refused.json.error.message, /without a token and without allowUnauthenticatedReads/);
  const served = await call(open.url, 'GET', '/pools', { token: null });
  t.is(served.status, 200);
  t.deepEqual(
    served.json.pools.map((p: { poolId: string }) => p.poolId),
    ['n'],
  );
  // DNS rebinding guard: unauthenticated reads only for requests addressed to a loopback name.
  const port = new URL(open.url).port;
  t.is((await rawRequest(open.url, { path: '/pools', headers: { host: `localhost:${port}` } })).status, 200);
  const rebound = await rawRequest(open.url, { path: '/pools', headers: { host: `attacker.example:${port}` } });
  t.is(rebound.status, 401);
  t.is(rebound.json.error.code, 'UNAUTHORIZED');
});

test('a token-protected server with allowUnauthenticatedReads serves reads without a header, never with a wrong one', async (t) => {
  const db = quietDb(t, { r: { max: 2, min: 0 } });
  const admin = await adminFor(t, db, { token: TOKEN, allowUnauthenticatedReads: true });
  t.is((await call(admin.url, 'GET', '/pools/r', { token: null })).status, 200);
  t.is((await call(admin.url, 'GET', '/pools/r', { token: WRONG_TOKEN })).status, 401);
  t.is((await call(admin.url, 'POST', '/pools/r/cleanup', { token: null })).status, 401);
  t.is((await call(admin.url, 'POST', '/pools/r/cleanup')).status, 200);
});

test('bodies: oversized (declared or chunked) → 413, malformed → 400, not JSON → 415; nothing changes', async (t) => {
  const db = quietDb(t, { b: { max: 5, min: 1 } });
  const admin = await adminFor(t, db);
  await settled(db, 'b', 1);
  const before = fingerprint(db, 'b');
  const auth = { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/json' };
  const big = JSON.stringify({ max: 6, pad: 'x'.repeat(DEFAULT_MAX_BODY_BYTES) });

  const declared = await call(admin.url, 'PATCH', '/pools/b/config', { raw: big });
  t.is(declared.status, 413);
  t.is(declared.json.error.code, 'PAYLOAD_TOO_LARGE');
  const chunked = await rawRequest(admin.url, {
    method: 'PATCH',
    path: '/pools/b/config',
    headers: auth,
    chunks: Array.from({ length: 40 }, (_, i) => (i === 0 ? '{"max": 6, "pad": "' : 'y'.repeat(1024))),
  });
  t.is(chunked.status, 413);
  const restartBig = await call(admin.url, 'POST', '/pools/b/restart', { raw: big });
  t.is(restartBig.status, 413);

  for (const raw of ['{"max": 6', '{max: 6}', "{'max': 6}", '{"max": 6}}', '\u0000']) {
    const res = await call(admin.url, 'PATCH', '/pools/b/config', { raw });
    t.is(res.status, 400, raw);
    t.is(res.json.error.code, 'INVALID_JSON');
    t.false(res.text.includes('max": 6'), 'the body is not echoed');
  }
  const latin1 = await rawRequest(admin.url, {
    method: 'PATCH',
    path: '/pools/b/config',
    headers: auth,
    body: Buffer.from([0x7b, 0xff, 0x7d]).toString('latin1'),
  });
  t.is(latin1.status, 400);
  for (const contentType of ['text/plain', 'application/x-www-form-urlencoded', 'multipart/form-data; boundary=x']) {
    const res = await call(admin.url, 'PATCH', '/pools/b/config', { raw: '{"max": 6}', contentType });
    t.is(res.status, 415, contentType);
    t.is(res.json.error.code, 'UNSUPPORTED_MEDIA_TYPE');
  }
  const gz = await rawRequest(admin.url, { method: 'PATCH', path: '/pools/b/config', headers: { ...auth, 'content-encoding': 'gzip' }, body: '{"max": 6}' });
  t.is(gz.status, 415);
  t.deepEqual(fingerprint(db, 'b'), before);

  // A smaller configured limit applies too.
  const tight = await adminFor(t, db, { token: TOKEN, maxBodyBytes: 256 });
  t.is((await call(tight.url, 'PATCH', '/pools/b/config', { body: { max: 6, pad: 'z'.repeat(300) } })).status, 413);
  t.is((await call(tight.url, 'PATCH', '/pools/b/config', { body: { max: 6 } })).status, 200);
  t.is(db.getPoolConfig('b').max, 6);
});

test('PATCH /config: unknown keys and bad values → 400 with every issue, nothing changes; a valid patch reports what changed', async (t) => {
  const db = quietDb(t, { c: { max: 5, min: 1 } });
  const admin = await adminFor(t, db);
  await settled(db, 'c', 1);
  const before = fingerprint(db, 'c');

  const unknown = await call(admin.url, 'PATCH', '/pools/c/config', {
    body: { max: 6, maxx: 7, connection: { password: SECRET_PASSWORD }, applicationName: 'x' },
  });
  t.is(unknown.status, 400);
  t.is(unknown.json.error.code, 'INVALID_REQUEST');
  t.deepEqual(unknown.json.error.issues.map((i: { path: string }) => i.path).sort(), ['applicationName', 'connection', 'maxx']);
  t.regex(unknown.json.error.issues.find((i: { path: string }) => i.path === 'connection').rule, /cannot be changed over the admin endpoint/);
  t.false(unknown.text.includes(SECRET_PASSWORD), 'values of unknown keys are not echoed');

  const bad = await call(admin.url, 'PATCH', '/pools/c/config', { body: { max: '10', min: -1, acquireTimeoutMs: 1.5, validateOnBorrow: 'yes' } });
  t.is(bad.status, 400);
  t.deepEqual(
    bad.json.error.issues.map((i: { path: string; rule: string }) => `${i.path}: ${i.rule}`),
    [
      'min: must not be negative',
      'max: must be a number',
      'acquireTimeoutMs: must be a whole number (milliseconds)',
      'validateOnBorrow: must be true or false',
    ],
  );
  t.deepEqual(bad.json.error.issues[0].value, -1, 'numbers are echoed');
  t.false('value' in bad.json.error.issues[1], 'strings are not');

  const core = await call(admin.url, 'PATCH', '/pools/c/config', { body: { max: 0, acquireTimeoutMs: 0 } });
  t.is(core.status, 400, 'ranges are the core config rules');
  t.is(core.json.error.code, 'INVALID_CONFIG');
  t.is(core.json.error.issues.length, 2);
  const cross = await call(admin.url, 'PATCH', '/pools/c/config', { body: { min: 9 } });
  t.is(cross.status, 400);
  t.regex(cross.json.error.issues[0].rule, /must not exceed max \(5\)/);

  for (const body of [{}, [], null, 5, 'max']) {
    const res = await call(admin.url, 'PATCH', '/pools/c/config', { raw: JSON.stringify(body) });
    t.is(res.status, 400, JSON.stringify(body));
  }
  t.is((await call(admin.url, 'PATCH', '/pools/c/config')).status, 400, 'no body');
  t.is((await call(admin.url, 'POST', '/pools/c/cleanup', { body: { force: true } })).status, 400);
  t.is((await call(admin.url, 'POST', '/pools/c/restart', { body: { drainTimeoutMs: -5 } })).status, 400);
  t.is((await call(admin.url, 'GET', '/pools/c/slow-queries?limit=0')).status, 400);
  t.is((await call(admin.url, 'GET', '/pools/c/slow-queries?limit=abc')).status, 400);
  t.is((await call(admin.url, 'GET', '/pools/c/query-metrics?limit=1000')).status, 400);
  t.deepEqual(fingerprint(db, 'c'), before, 'no rejected request changed anything');

  const ok = await call(admin.url, 'PATCH', '/pools/c/config', { body: { max: 8, min: 1, slowQueryThresholdMs: 250 } });
  t.is(ok.status, 200);
  t.deepEqual(ok.json.changed, { max: { from: 5, to: 8 }, slowQueryThresholdMs: { from: 1000, to: 250 } });
  t.is(ok.json.config.max, 8);
  t.is(ok.json.status.max, 8);
  t.is(db.getPoolConfig('c').slowQueryThresholdMs, 250);
});

test('unknown pools are 404 POOL_NOT_FOUND on every pool route, unknown paths 404 NOT_FOUND, wrong methods 405', async (t) => {
  const db = quietDb(t, { p: { max: 2, min: 0 } });
  const admin = await adminFor(t, db);
  for (const route of ADMIN_ROUTES.filter((r) => r.path.includes(':id'))) {
    const body = route.method === 'PATCH' ? { max: 3 } : route.method === 'POST' ? {} : undefined;
    const res = await call(admin.url, route.method, route.path.replace(':id', 'nope%2Fx'), { body });
    t.is(res.status, 404, route.path);
    t.deepEqual(Object.keys(res.json.error).sort(), ['code', 'message']);
    t.is(res.json.error.code, 'POOL_NOT_FOUND');
    t.is(res.json.error.message, 'Pool "nope/x" does not exist');
  }
  const missing = await call(admin.url, 'GET', '/admin/pools');
  t.is(missing.status, 404);
  t.is(missing.json.error.code, 'NOT_FOUND');
  for (const [method, path, allow] of [
    ['DELETE', '/pools/p', 'GET'],
    ['POST', '/pools/p/metrics', 'GET'],
    ['GET', '/pools/p/restart', 'POST'],
    ['PUT', '/pools/p/config', 'PATCH'],
    ['POST', '/healthz', 'GET'],
  ] as const) {
    const res = await call(admin.url, method, path, { token: null });
    t.is(res.status, 405, `${method} ${path}`);
    t.is(res.json.error.code, 'METHOD_NOT_ALLOWED');
    t.is(res.headers.get('allow'), allow);
  }
  t.is((await call(admin.url, 'GET', '/pools/')).status, 200, 'a trailing slash is the same route');
  t.is((await call(admin.url, 'GET', '/pools/%E0%A4%A')).status, 400, 'malformed percent-encoding');
});

test('read routes answer with the documented shapes', async (t) => {
  const db = quietDb(t, { s: { max: 3, min: 0, slowQueryThresholdMs: 20, leakDetectionThresholdMs: 100 } });
  const admin = await adminFor(t, db);
  await db.query('s', "SELECT pg_sleep(0.03), 'literal-7781' AS v");
  await t.throwsAsync(db.query('s', 'SELECT 1/0'));
  const held = await db.acquire('s');
  await once(db, 'leak');
  try {
    const pools = await call(admin.url, 'GET', '/pools');
    t.deepEqual(Object.keys(pools.json.pools[0]).sort(), [
      'active',
      'idle',
      'lastConnectError',
      'max',
      'min',
      'pendingCreates',
      'poolId',
      'total',
      'utilization',
      'waiting',
    ]);
    const one = await call(admin.url, 'GET', '/pools/s');
    t.deepEqual(one.json.config, db.getPoolConfig('s'));
    t.is(one.json.status.active, 1);
    const metrics = await call(admin.url, 'GET', '/pools/s/metrics');
    t.deepEqual(Object.keys(metrics.json), Object.keys(db.getDetailedMetrics('s').toJSON()));
    t.is(metrics.json.totals.queries, 2);
    const qm = await call(admin.url, 'GET', '/pools/s/query-metrics?limit=1');
    t.is(qm.json.topStatements.length, 1);
    t.deepEqual(qm.json.errorsByCode, { '22012': 1 });
    const slow = await call(admin.url, 'GET', '/pools/s/slow-queries?limit=5');
    t.true(slow.json.slowQueries.some((q: { text: string }) => q.text === 'SELECT pg_sleep(?), ? AS v'));
    t.false(slow.text.includes('literal-7781'));
    const conns = await call(admin.url, 'GET', '/pools/s/connections');
    t.deepEqual(
      conns.json.connections.map((c: { id: number }) => c.id),
      db.getConnectionDetails('s').map((c) => c.id),
    );
    const diag = await call(admin.url, 'GET', '/pools/s/diagnosis');
    t.deepEqual(Object.keys(diag.json).sort(), ['leaks', 'performance', 'poolId']);
    t.is(diag.json.leaks.suspiciousConnections.length, 1);
    t.true(diag.json.performance.issues.some((i: { type: string }) => i.type === 'connection_leaks'));
  } finally {
    held.release();
  }
});

test('no response carries a password, the token or a stack trace', async (t) => {
  const db = quietDb(t, {
    sec: { connection: { host: '127.0.0.1', port: await closedPort(), user: 'app', password: SECRET_PASSWORD }, min: 0, acquireTimeoutMs: 300 },
    url: { connection: { connectionString: `postgres://app:${SECRET_PASSWORD}@127.0.0.1:${await closedPort()}/x` }, min: 0, acquireTimeoutMs: 300 },
  });
  const admin = await adminFor(t, db);
  await t.throwsAsync(db.query('sec', 'SELECT 1'));
  await t.throwsAsync(db.query('url', 'SELECT 1'));
  const texts: string[] = [];
  for (const id of ['sec', 'url']) {
    for (const route of ADMIN_ROUTES) {
      if (route.access === 'write' && route.method === 'POST' && route.path.endsWith('restart')) continue;
      const path = route.path.replace(':id', id);
      const body = route.method === 'PATCH' ? { max: 3, connection: { password: SECRET_PASSWORD, token: TOKEN } } : route.method === 'POST' ? {} : undefined;
      for (const token of [TOKEN, WRONG_TOKEN, null]) texts.push((await call(admin.url, route.method, path, { token, body })).text);
    }
  }
  texts.push((await call(admin.url, 'PATCH', '/pools/sec/config', { raw: `{"max": "${SECRET_PASSWORD}", "x": "${TOKEN}"` })).text);
  texts.push((await call(admin.url, 'PATCH', '/pools/sec/config', { body: { max: SECRET_PASSWORD } })).text);
  t.true(texts.length > 70);
  t.true(
    texts.some((x) => x.includes('[REDACTED]')),
    'configs are shown, redacted',
  );
  for (const text of texts) {
    t.false(text.includes(SECRET_PASSWORD), text.slice(0, 200));
    t.false(text.includes(TOKEN) || text.includes(WRONG_TOKEN), text.slice(0, 200));
    t.false(/\n\s+at /.test(text) || /\.ts:\d+/.test(text), text.slice(0, 200));
  }
});

test('startAdminServer binds to 127.0.0.1 by default and validates its options without echoing the token', async (t) => {
  const db = quietDb(t, {});
  const admin = await adminFor(t, db, { token: TOKEN });
  t.is(admin.host, '127.0.0.1');
  const short = 'short-secret-15';
  const err = await t.throwsAsync(startAdminServer(db, { port: 0, token: short, logger: null }));
  t.is((err as { code?: string }).code, 'INVALID_CONFIG');
  t.regex(err!.message, /adminServer\.token: must be at least 16 characters/);
  t.false(err!.message.includes(short));
  const spaced = await t.throwsAsync(startAdminServer(db, { port: 0, token: 'has a space in it, long enough' }));
  t.regex(spaced!.message, /printable ASCII without spaces/);
  const exposed = await t.throwsAsync(startAdminServer(db, { port: 0, host: '0.0.0.0', allowUnauthenticatedReads: true }));
  t.regex(exposed!.message, /loopback host only/);
  const bad = await t.throwsAsync(startAdminServer(db, { port: 70_000, maxBodyBytes: 1, tokn: 'x' } as never));
  t.regex(bad!.message, /3 problems/);
  const taken = await t.throwsAsync(startAdminServer(db, { port: admin.port, token: TOKEN, logger: null }));
  t.is((taken as NodeJS.ErrnoException).code, 'EADDRINUSE');
  await admin.close();
  await admin.close(); // twice is fine
  await t.throwsAsync(fetch(`${admin.url}/healthz`));
});

test('mutations and rejected tokens are logged (without the token); restart and cleanup report what they did', async (t) => {
  const db = quietDb(t, { l: { max: 3, min: 1 } });
  await settled(db, 'l', 1);
  const lines: string[] = [];
  const logger = { info: (s: string) => lines.push(`info ${s}`), warn: (s: string) => lines.push(`warn ${s}`) };
  const admin = await adminFor(t, db, { token: TOKEN, logger });
  const pidBefore = db.getConnectionDetails('l')[0]!.processId;
  t.is((await call(admin.url, 'POST', '/pools/l/restart', { token: WRONG_TOKEN })).status, 401);
  const restart = await call(admin.url, 'POST', '/pools/l/restart', { body: { drainTimeoutMs: 1_000 } });
  t.is(restart.status, 200);
  t.is(restart.json.restarted, true);
  t.is(typeof restart.json.durationMs, 'number');
  await settled(db, 'l', 1);
  t.not(db.getConnectionDetails('l')[0]!.processId, pidBefore);
  const cleanup = await call(admin.url, 'POST', '/pools/l/cleanup');
  t.is(cleanup.status, 200);
  t.deepEqual(Object.keys(cleanup.json).sort(), ['errorsCleared', 'idleClosed', 'leaksReclaimed', 'poolId', 'status']);
  t.is(cleanup.json.idleClosed, 1);
  t.deepEqual(lines, [
    'warn [db-pool-otel] admin: rejected token for POST /pools/l/restart from 127.0.0.1',
    'info [db-pool-otel] admin: POST /pools/l/restart from 127.0.0.1: 200',
    'info [db-pool-otel] admin: POST /pools/l/cleanup from 127.0.0.1: 200',
  ]);
});
