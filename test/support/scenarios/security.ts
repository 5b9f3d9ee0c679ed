/**
 * Security: secrets never shown, query text sanitized, values always bound, the admin endpoint's
 * routes × tokens, bounded metric series.
 */
import { randomBytes } from 'node:crypto';
import { inspect } from 'node:util';
import { AlertHandler, DatabasePool } from '../../../src/index.js';
import { startAdminServer } from '../../../src/admin/admin-server.js';
import { ADMIN_ROUTES } from '../../../src/admin/routes.js';
import { run as runCli } from '../../../src/cli/main.js';
import { startPrometheusExporter } from '../../../instrumentations/index.js';
import { Capture } from '../capture.js';
import { inMemoryOtel, spanText } from '../otel.js';
import { startReceiver } from '../receiver.js';
import { CallLedger, Checks, eventually, type ScenarioContext, type ScenarioResult } from '../outcomes.js';
import { adminClient, appName, freePort } from '../server.js';
import { answerInvalidNamesLocally } from './faults.js';

const rand = () => randomBytes(9).toString('hex');

/** An HTTP request to the admin endpoint; the whole answer (status line, headers, body) as text. */
async function http(
  base: string,
  method: string,
  path: string,
  token: string | undefined,
  body?: unknown,
  headers: Record<string, string> = {},
): Promise<{ status: number; text: string }> {
  const h: Record<string, string> = { ...headers };
  if (token !== undefined) h.authorization = `Bearer ${token}`;
  let payload: string | undefined;
  if (body !== undefined) {
    payload = typeof body === 'string' ? body : JSON.stringify(body);
    h['content-type'] ??= 'application/json';
  }
  const res = await fetch(`${base}${path}`, { method, headers: h, body: payload });
  const text = await res.text();
  return { status: res.status, text: `${res.status} ${JSON.stringify([...res.headers])}\n${text}` };
}

// ------------------------------------------------------------------ secrets

/**
 * Every place the library shows something — log lines, errors (with causes and stacks), spans,
 * metrics (in memory and as scraped), config dumps, events and channel messages, health and
 * diagnosis reports, alert delivery reports and payloads, admin responses and CLI output — searched
 * for the test's secrets: the database password (and a wrong one), the admin token (and a wrong
 * one), webhook and Slack URLs (their secret paths), a webhook header, the PagerDuty routing key
 * and the SMTP password.
 */
export async function secretsScenario(ctx: ScenarioContext): Promise<ScenarioResult> {
  const started = performance.now();
  const base = new URL(ctx.databaseUrl);
  const serverHasPassword = base.password !== '';
  const secrets = {
    dbPassword: serverHasPassword ? decodeURIComponent(base.password) : `dbpw-${rand()}`,
    wrongDbPassword: `wrongpw-${rand()}`,
    adminToken: `admintoken-${rand()}`,
    wrongToken: `wrongtoken-${rand()}`,
    webhookPath: `hookpath${rand()}`,
    slackPath: `slackpath${rand()}`,
    headerSecret: `hdrsecret${rand()}`,
    routingKey: `routingkey${rand()}`,
    smtpPass: `smtppass${rand()}`,
  };
  // A trust server ignores the password; one that checks it gets its own.
  const good = new URL(ctx.databaseUrl);
  good.password = encodeURIComponent(secrets.dbPassword);
  const wrong = new URL(ctx.databaseUrl);
  wrong.password = secrets.wrongDbPassword;
  const cap = new Capture();
  const ledger = new CallLedger();
  const checks = new Checks();
  const receiver = await startReceiver(1);
  const dead = await freePort();
  const restoreDns = answerInvalidNamesLocally();
  const otel = inMemoryOtel();
  const prom = await startPrometheusExporter({ port: 0 });
  cap.captureChannels();
  cap.captureConsole();
  let db: DatabasePool | undefined;
  let admin: Awaited<ReturnType<typeof startAdminServer>> | undefined;
  try {
    const handler = new AlertHandler({
      channels: {
        ops: { type: 'webhook', url: receiver.url(`/hooks/${secrets.webhookPath}`), headers: { authorization: `Bearer ${secrets.headerSecret}` } },
        chat: { type: 'slack', webhookUrl: receiver.url(`/services/${secrets.slackPath}`) },
        pager: { type: 'pagerduty', routingKey: secrets.routingKey, eventsUrl: receiver.url('/pd') },
        mail: {
          type: 'email',
          smtp: { host: '127.0.0.1', port: dead, auth: { user: 'alerts', pass: secrets.smtpPass } },
          from: 'a@example.invalid',
          to: 'b@example.invalid',
          timeoutMs: 1_000,
        },
      },
      retry: { attempts: 2, baseDelayMs: 20 },
      logger: cap.logger('alert-handler.logger'),
    });
    db = new DatabasePool({
      pools: {
        main: {
          connection: { connectionString: good.toString() },
          max: 3,
          min: 0,
          leakDetectionThresholdMs: 100,
          slowQueryThresholdMs: 10,
          applicationName: appName('secrets'),
        },
        wrongpw: { connection: { connectionString: wrong.toString() }, max: 2, min: 0, acquireTimeoutMs: 1_500 },
        refused: {
          connection: { host: '127.0.0.1', port: dead, user: 'app', password: secrets.dbPassword, database: 'app' },
          min: 0,
          acquireTimeoutMs: 1_000,
          backup: { host: '127.0.0.1', port: dead, password: secrets.wrongDbPassword },
        },
        nodns: {
          connection: { connectionString: `postgres://app:${encodeURIComponent(secrets.dbPassword)}@secret-scan.invalid/app` },
          min: 0,
          acquireTimeoutMs: 1_000,
        },
      },
      alertHandlers: [handler],
      alerts: { intervalMs: 3_600_000 },
      recovery: { baseDelayMs: 50, retries: 1, probeIntervalMs: 100 },
      logger: cap.logger('DatabasePool.logger'),
    });
    for (const ev of ['connectionError', 'leak', 'slowQuery', 'recovery'] as const) db.on(ev, (m: unknown) => cap.add(`event ${ev}`, m));
    const q = async (poolId: string, sql: string, values?: unknown[]) => {
      const r = await ledger.track(() => db!.query(poolId, sql, values), 10_000);
      if (!r.ok) cap.add(`error of ${poolId}`, r.error);
    };
    await q('main', 'SELECT $1::text AS v', ['hello']);
    await q('main', 'SELECT pg_sleep(0.02)');
    await q('main', 'SELECT 1/0');
    for (const id of ['wrongpw', 'refused', 'nodns']) for (let i = 0; i < 3; i++) await q(id, 'SELECT 1');
    // A loan held past the leak threshold.
    const held = await db.acquire('main');
    await eventually(() => cap.items.some((i) => i.where === 'DatabasePool.logger' && i.text.includes('held for')), 10_000);
    cap.add('getConnectionDetails (leak)', db.getConnectionDetails('main'));
    cap.add('diagnoseConnectionLeak', await db.diagnoseConnectionLeak('main'));
    held.release();
    // Invalid configs naming secret fields.
    for (const bad of [
      { connection: { connectionString: `postgres://u:${encodeURIComponent(secrets.dbPassword)}@h:99999/d` } },
      { connection: { host: 'h', password: [secrets.dbPassword] } },
      { connection: { host: 'h', password: secrets.dbPassword, port: 'x' } },
      { connection: { connectionString: `mysql://u:${secrets.dbPassword}@h/d` } },
    ]) {
      await db.createPool('bad', bad as never).catch((e: unknown) => cap.add('createPool error', e));
    }
    await db
      .updatePoolConfig('main', { connection: { host: 'h', password: secrets.wrongDbPassword, port: -1 } } as never)
      .catch((e: unknown) => cap.add('updatePoolConfig error', e));
    await startAdminServer(db, { port: 0, token: `has space ${secrets.adminToken}` }).catch((e: unknown) => cap.add('startAdminServer error', e));
    // Alerts: delivery (one channel fails first and is retried, email cannot connect), reports, handler dumps.
    cap.add(
      'sendAlert report',
      await handler.sendAlert({
        level: 'critical',
        message: `see ${receiver.url(`/hooks/${secrets.webhookPath}`)} and key ${secrets.routingKey}`,
        poolId: 'main',
        kind: 'PoolDown',
      }),
    );
    cap.add('sendAlert resolve', await handler.sendAlert({ level: 'critical', message: 'resolved', poolId: 'main', kind: 'PoolDown', resolve: true }));
    await handler.handlePoolDown(
      'wrongpw',
      db.getDetailedMetrics('wrongpw').lastConnectError ? new Error(db.getDetailedMetrics('wrongpw').lastConnectError!) : new Error('down'),
    );
    cap.add('handler', handler);
    cap.add('inspect(handler)', inspect(handler, { depth: 10 }));
    // Reports and dumps.
    for (const id of db.listPools()) {
      cap.add(`getPoolConfig ${id}`, db.getPoolConfig(id));
      cap.add(`getPoolStatus ${id}`, db.getPoolStatus(id));
      cap.add(`getDetailedMetrics ${id}`, db.getDetailedMetrics(id).toJSON());
      cap.add(`getQueryMetrics ${id}`, db.getQueryMetrics(id).toJSON());
      cap.add(`getSlowQueries ${id}`, db.getSlowQueries(id));
      cap.add(`getConnectionDetails ${id}`, db.getConnectionDetails(id));
      cap.add(`deepHealthCheck ${id}`, await db.deepHealthCheck(id));
      cap.add(`diagnosePerformanceIssues ${id}`, await db.diagnosePerformanceIssues(id));
    }
    cap.add('healthCheck', await db.healthCheck());
    cap.add('db', db);
    cap.add('knexConfig', db.knexConfig('main'));
    // Admin endpoint: every route with the right token, a wrong token, bodies that try to set secrets.
    admin = await startAdminServer(db, { port: 0, token: secrets.adminToken, logger: cap.logger('admin.logger') });
    const adminCall = async (method: string, path: string, token: string | undefined, body?: unknown) => {
      const r = await ledger.track(async () => {
        const res = await http(admin!.url, method, path, token, body);
        cap.add(`admin ${method} ${path}`, res.text);
        if (res.status >= 400) throw Object.assign(new Error(res.text), { code: `HTTP ${res.status}` });
        return res;
      }, 30_000);
      return r;
    };
    for (const id of ['main', 'wrongpw', 'refused', 'nodns']) {
      for (const route of ADMIN_ROUTES.filter((r) => r.method === 'GET')) await adminCall('GET', route.path.replace(':id', id), secrets.adminToken);
    }
    await adminCall('GET', '/pools', secrets.wrongToken);
    await adminCall('GET', `/pools?token=${secrets.adminToken}`, undefined);
    await adminCall('PATCH', '/pools/main/config', secrets.adminToken, { connection: { password: secrets.wrongDbPassword } });
    await adminCall('PATCH', '/pools/main/config', secrets.adminToken, { password: secrets.wrongDbPassword, max: secrets.wrongDbPassword });
    await adminCall('PATCH', '/pools/main/config', secrets.adminToken, `{"max": "${secrets.wrongDbPassword}"`);
    await adminCall('POST', '/pools/main/cleanup', secrets.adminToken, {});
    await adminCall('POST', '/pools/main/restart', secrets.wrongToken, {});
    // CLI: every command, with the token from the environment; a wrong token; credentials in the URL.
    const cli = async (args: string[], env: Record<string, string | undefined>) => {
      await ledger.track(async () => {
        let out = '';
        const code = await runCli(args, { env, stdout: (s) => void (out += s), stderr: (s) => void (out += s), cwd: process.cwd() });
        cap.add(`cli ${args.join(' ')}`, out);
        if (code !== 0) throw Object.assign(new Error(out), { code: `exit ${code}` });
      }, 30_000);
    };
    const env = { DB_POOL_ADMIN_URL: admin.url, DB_POOL_ADMIN_TOKEN: secrets.adminToken };
    for (const args of [
      ['health'],
      ['pools'],
      ['config', 'main'],
      ['config', 'wrongpw'],
      ['config', 'refused'],
      ['metrics', 'main'],
      ['metrics', 'wrongpw', '--json'],
      ['slow-queries', 'main'],
      ['connections', 'main'],
      ['diagnose', 'main'],
      ['diagnose', 'nodns', '--json'],
      ['cleanup', 'main'],
      ['resize', 'main', '--max', '3'],
      ['pools', '--json'],
    ]) {
      await cli(args, env);
    }
    await cli(['pools'], { DB_POOL_ADMIN_URL: admin.url, DB_POOL_ADMIN_TOKEN: secrets.wrongToken });
    await cli(['pools', '--token', secrets.wrongToken], { DB_POOL_ADMIN_URL: admin.url });
    const credUrl = new URL(admin.url);
    credUrl.username = 'ops';
    credUrl.password = secrets.dbPassword;
    await cli(['pools', '--url', credUrl.toString()], { DB_POOL_ADMIN_TOKEN: secrets.adminToken });
    // Credentials in a URL that does not parse (a space in the password).
    await cli(['pools', '--url', `http://ops:${secrets.dbPassword} x@127.0.0.1:1/`], { DB_POOL_ADMIN_TOKEN: secrets.adminToken });
    // Telemetry.
    for (const s of otel.spans()) cap.add(`span ${s.name}`, spanText(s));
    cap.add('metrics (in memory)', await otel.metricsText());
    cap.add('metrics (Prometheus scrape)', await (await fetch(prom.url)).text());
  } finally {
    cap.stop();
    restoreDns();
    await admin?.close();
    await db?.close({ drainTimeoutMs: 1_000 });
    await prom.shutdown();
    await otel.shutdown();
    await receiver.close();
  }
  // The channels got their alerts (the routing key goes to PagerDuty, and only there).
  const pd = receiver.requests.filter((r) => r.path === '/pd');
  const others = receiver.requests.filter((r) => r.path !== '/pd');
  for (const r of others) cap.add(`payload to ${r.path.replace(/\/(hooks|services)\/.*/, '/$1/…')}`, r.body);
  for (const r of pd) cap.add('payload to PagerDuty', r.body.split(secrets.routingKey).join('<routing key>'));
  checks.add('the alert channels were reached (payloads scanned too)', pd.length > 0 && others.length > 0, `${receiver.requests.length} deliveries`);
  const spanCount = cap.items.filter((i) => i.where.startsWith('span ')).length;
  checks.add(
    'spans, log lines, CLI output and admin responses were captured',
    spanCount > 0 &&
      cap.items.some((i) => i.where === 'alert-handler.logger') &&
      cap.items.some((i) => i.where.startsWith('cli ')) &&
      cap.items.some((i) => i.where.startsWith('admin ')),
    `${cap.items.length} items, ${spanCount} spans`,
  );
  checks.add(
    'the leak report was logged',
    cap.items.some((i) => i.where === 'DatabasePool.logger' && i.text.includes('held for')),
    '',
  );
  const authChecked = ledger.rejected.CONNECTION_FAILED !== undefined && cap.items.some((i) => i.text.includes('28P01'));
  ctx.log(
    serverHasPassword || authChecked
      ? 'secrets: the server checks passwords: the failed-login path (28P01) is part of the scan'
      : 'secrets: the server does not check passwords (trust): the failed-login path is scanned by the reliability-server test (own server)',
  );
  let findings = 0;
  for (const [name, secret] of Object.entries(secrets)) {
    const hits = cap.find(secret);
    findings += hits.length;
    checks.add(
      `${name} appears nowhere`,
      hits.length === 0,
      hits
        .slice(0, 3)
        .map((h) => `${h.where}: …${h.text.slice(Math.max(0, h.text.indexOf(secret) - 60), h.text.indexOf(secret)).replace(/\s+/g, ' ')}<secret>`)
        .join(' | '),
    );
  }
  return {
    name: 'secrets in every output',
    ...ledger.summary(),
    leaked: 0,
    figures: {
      'outputs scanned': cap.items.length,
      'KB scanned': Math.round(cap.bytes / 1024),
      secrets: Object.keys(secrets).length,
      'secrets found': findings,
      'server checks passwords': String(serverHasPassword),
    },
    checks: checks.list,
    durationMs: performance.now() - started,
  };
}

// ------------------------------------------------------------------ sanitized query text

/**
 * Statements full of literals (strings in every quoting, numbers, bit strings, arrays, JSON,
 * intervals, IN lists, comments) run slow enough for the slow-query log, with the instrumentation
 * at its defaults: no literal appears in any span, slow-query entry or event, the slow-query
 * channel, connection details, statement stats, admin responses or CLI output. `errorsQuoting`
 * adds slow statements that fail with a server message quoting a literal or a bound value (the
 * slow-query entry once kept that message; it keeps the SQLSTATE now).
 */
export async function sanitizedTextScenario(ctx: ScenarioContext, options: { errorsQuoting: boolean }): Promise<ScenarioResult> {
  const started = performance.now();
  const tag = rand().slice(0, 8);
  const lit = (kind: string) => `lit${kind}${tag}`;
  const statements = [
    `SELECT pg_sleep(0.02), '${lit('sq')}' AS a, E'${lit('esc')}\\n' AS b, $$${lit('dollar')}$$ AS c, $q$${lit('tagged')}$q$ AS d`,
    `SELECT pg_sleep(0.02), U&'${lit('uni')}' AS a, 918273645 AS b, 3.14159e7 AS c, B'1011' AS d, X'1F' AS e`,
    `SELECT pg_sleep(0.02) /* ${lit('blockcomment')} */, ARRAY['${lit('arr')}'] AS a -- ${lit('linecomment')}\n`,
    `SELECT pg_sleep(0.02), '{"k": "${lit('json')}"}'::jsonb AS a, INTERVAL '3 days ${tag.length} hours' AS b, 'x' IN ('${lit('in1')}', '${lit('in2')}') AS c`,
    `SELECT pg_sleep(0.02) WHERE '${lit('where')}' <> $1`,
  ];
  const values = [`val${tag}`];
  const failing = [
    `SELECT (md5(random()::text) || '${lit('fail')}')::int FROM pg_sleep(0.02)`,
    `SELECT ($1::text || md5(random()::text))::int FROM pg_sleep(0.02)`,
  ];
  const needles = [
    ...['sq', 'esc', 'dollar', 'tagged', 'uni', 'blockcomment', 'arr', 'linecomment', 'json', 'in1', 'in2', 'where', 'fail'].map(lit),
    '918273645',
    '3.14159e7',
    values[0]!,
  ];
  const cap = new Capture();
  const ledger = new CallLedger();
  const checks = new Checks();
  const otel = inMemoryOtel();
  cap.captureChannels();
  const db = new DatabasePool({
    pools: { main: { connection: { connectionString: ctx.databaseUrl }, max: 2, min: 0, slowQueryThresholdMs: 10, applicationName: appName('sanitize') } },
    logger: cap.logger('DatabasePool.logger'),
  });
  db.on('slowQuery', (m) => cap.add('event slowQuery', m));
  let admin: Awaited<ReturnType<typeof startAdminServer>> | undefined;
  try {
    for (const sql of statements) await ledger.track(() => db.query('main', sql, sql.includes('$1') ? values : undefined), 10_000);
    if (options.errorsQuoting) for (const sql of failing) await ledger.track(() => db.query('main', sql, sql.includes('$1') ? values : undefined), 10_000);
    cap.add('getSlowQueries', db.getSlowQueries('main', { limit: 100 }));
    cap.add('getConnectionDetails', db.getConnectionDetails('main'));
    cap.add('getQueryMetrics', db.getQueryMetrics('main', { limit: 200 }).toJSON());
    cap.add('diagnosePerformanceIssues', await db.diagnosePerformanceIssues('main'));
    const token = `tok-${rand()}`;
    admin = await startAdminServer(db, { port: 0, token, logger: null });
    for (const path of ['/pools/main/slow-queries?limit=100', '/pools/main/connections', '/pools/main/query-metrics?limit=200', '/pools/main/diagnosis']) {
      cap.add(`admin ${path}`, (await http(admin.url, 'GET', path, token)).text);
    }
    for (const args of [
      ['slow-queries', 'main', '--limit', '100'],
      ['slow-queries', 'main', '--json'],
      ['connections', 'main'],
      ['diagnose', 'main'],
    ]) {
      let out = '';
      await runCli(args, { env: { DB_POOL_ADMIN_URL: admin.url, DB_POOL_ADMIN_TOKEN: token }, stdout: (s) => void (out += s), stderr: (s) => void (out += s) });
      cap.add(`cli ${args.join(' ')}`, out);
    }
    for (const s of otel.spans()) cap.add(`span ${s.name}`, spanText(s));
    cap.add('metrics', await otel.metricsText());
  } finally {
    cap.stop();
    await admin?.close();
    await db.close({ drainTimeoutMs: 1_000 });
    await otel.shutdown();
  }
  // The raw text is on the db-pool:query channel by contract (subscribers sanitize); everything else must not carry it.
  const shown = cap.items.filter((i) => !i.where.startsWith('db-pool:query'));
  const slowKept = db.getSlowQueries;
  void slowKept;
  const querySpans = cap.items.filter((i) => i.where.startsWith('span ') && i.text.includes('db.query.text'));
  checks.add(
    'every statement was slow-logged and traced',
    cap.items.filter((i) => i.where === 'event slowQuery').length >= statements.length && querySpans.length >= statements.length,
    `${querySpans.length} query spans`,
  );
  checks.add(
    'the sanitized text keeps the statement shape (placeholders, no literal)',
    querySpans.some((i) => i.text.includes('pg_sleep(?)')),
    querySpans[0]?.text.slice(0, 200) ?? '',
  );
  let found = 0;
  for (const n of needles) {
    const hits = shown.filter((i) => i.text.includes(n));
    found += hits.length;
    checks.add(
      `literal ${n.replace(tag, '…')} appears in no span, log, report, admin response or CLI output`,
      hits.length === 0,
      [...new Set(hits.map((h) => h.where))].slice(0, 6).join(', '),
    );
  }
  return {
    name: options.errorsQuoting ? 'literals in failed slow queries' : 'sanitized query text',
    ...ledger.summary(),
    leaked: 0,
    figures: { statements: statements.length + (options.errorsQuoting ? failing.length : 0), 'outputs scanned': shown.length, 'literals found': found },
    checks: checks.list,
    durationMs: performance.now() - started,
  };
}

// ------------------------------------------------------------------ values as parameters

/** Values that would change a statement if they were pasted into it. */
export const INJECTION_VALUES = [
  "'; DROP TABLE {t}; --",
  "' OR '1'='1",
  "Robert'); DROP TABLE {t};--",
  '$1',
  '$$; DROP TABLE {t}; $$',
  "\\'; DROP TABLE {t}; --",
  '--',
  '/*',
  "E'\\x27'",
  '"; DROP TABLE "{t}"; --',
  ';\nDROP TABLE {t};\n',
  '\u2019; DROP TABLE {t}; --',
  "x'::int; SELECT pg_sleep(10); --",
  'a'.repeat(100_000),
];

/**
 * Each injection value inserted with a bound parameter and read back: it round-trips as data, the
 * sentinel table it names survives, and the server saw `$1` in the statement, never the value.
 */
export async function parametersScenario(ctx: ScenarioContext): Promise<ScenarioResult> {
  const started = performance.now();
  const table = `rel_inj_${process.pid}_${rand().slice(0, 6)}`;
  const sentinel = `${table}_sentinel`;
  const db = new DatabasePool({
    pools: { main: { connection: { connectionString: ctx.databaseUrl }, max: 2, min: 0, applicationName: appName('params') } },
    logger: null,
  });
  const admin = await adminClient(ctx.databaseUrl);
  const ledger = new CallLedger();
  const checks = new Checks();
  let roundTrips = 0;
  let serverSawValue = 0;
  try {
    await db.query('main', `CREATE TABLE ${table} (id serial PRIMARY KEY, v text)`);
    await db.query('main', `CREATE TABLE ${sentinel} (id int)`);
    for (const template of INJECTION_VALUES) {
      const value = template.split('{t}').join(sentinel);
      const r = await ledger.track(async () => {
        const ins = await db.query<{ v: string }>('main', `INSERT INTO ${table} (v) VALUES ($1) RETURNING v`, [value]);
        const sel = await db.query<{ n: string }>('main', `SELECT count(*) AS n FROM ${table} WHERE v = $1`, [value]);
        const echo = await db.query<{ v: string }>('main', 'SELECT $1::text AS v', [value]);
        return ins.rows[0]!.v === value && sel.rows[0]!.n === '1' && echo.rows[0]!.v === value;
      }, 10_000);
      if (r.ok && r.value) roundTrips++;
    }
    // What the server sees while a statement with a value runs: the statement with $1.
    const conn = await db.acquire('main');
    const marker = `'; DROP TABLE ${sentinel}; -- ${rand()}`;
    const running = conn.query('SELECT pg_sleep(0.3), $1::text AS v', [marker]);
    let seen = '';
    await eventually(async () => {
      const { rows } = await admin.query<{ query: string }>("SELECT query FROM pg_stat_activity WHERE pid = $1 AND state = 'active'", [conn.processId]);
      seen = rows[0]?.query ?? '';
      return seen.includes('pg_sleep');
    }, 5_000);
    await running;
    conn.release();
    if (seen.includes(marker)) serverSawValue++;
    checks.add('the server saw the statement with $1, not the value', seen.includes('$1') && serverSawValue === 0, seen);
    const exists = await admin.query('SELECT to_regclass($1) AS t', [sentinel]);
    checks.add('the sentinel table survived', exists.rows[0]?.t !== null, sentinel);
    checks.add(
      'every value round-tripped as data (INSERT ... RETURNING, WHERE v = $1, SELECT $1)',
      roundTrips === INJECTION_VALUES.length,
      `${roundTrips} of ${INJECTION_VALUES.length}`,
    );
    checks.add('no statement failed', ledger.requests === ledger.served, JSON.stringify(ledger.rejected));
  } finally {
    await db.query('main', `DROP TABLE IF EXISTS ${table}, ${sentinel}`).catch(() => {});
    await db.close({ drainTimeoutMs: 1_000 });
    await admin.end();
  }
  return {
    name: 'values sent as parameters',
    ...ledger.summary(),
    leaked: 0,
    figures: { values: INJECTION_VALUES.length, 'round-tripped': roundTrips },
    checks: checks.list,
    durationMs: performance.now() - started,
  };
}

// ------------------------------------------------------------------ admin routes × tokens

type Mode = 'token' | 'no token' | 'no token, unauthenticated reads' | 'token, unauthenticated reads';

/**
 * Every admin route × every way of presenting a token × every way of starting the endpoint: the
 * status is the documented one, a refused request changes nothing (config, connections, restarts),
 * and no answer carries the token.
 */
export async function adminMatrixScenario(ctx: ScenarioContext): Promise<ScenarioResult> {
  const started = performance.now();
  const token = `matrix-token-${rand()}`;
  const ledger = new CallLedger();
  const checks = new Checks();
  const db = new DatabasePool({
    pools: { main: { connection: { connectionString: ctx.databaseUrl }, max: 2, min: 0, applicationName: appName('matrix') } },
    logger: null,
  });
  const presentations: { name: string; headers: Record<string, string>; query?: string; valid: boolean }[] = [
    { name: 'none', headers: {}, valid: false },
    { name: 'right', headers: { authorization: `Bearer ${token}` }, valid: true },
    { name: 'right, lower-case scheme', headers: { authorization: `bearer ${token}` }, valid: true },
    { name: 'wrong, same length', headers: { authorization: `Bearer ${token.slice(0, -4)}zzzz` }, valid: false },
    { name: 'right plus a suffix', headers: { authorization: `Bearer ${token}x` }, valid: false },
    { name: 'a prefix of the right one', headers: { authorization: `Bearer ${token.slice(0, 16)}` }, valid: false },
    { name: 'Basic with the token', headers: { authorization: `Basic ${Buffer.from(`admin:${token}`).toString('base64')}` }, valid: false },
    { name: 'Bearer and nothing', headers: { authorization: 'Bearer ' }, valid: false },
    { name: 'in the query string only', headers: {}, query: `token=${encodeURIComponent(token)}&access_token=${encodeURIComponent(token)}`, valid: false },
    { name: 'in a cookie only', headers: { cookie: `token=${token}` }, valid: false },
  ];
  const modes: Mode[] = ['token', 'no token', 'no token, unauthenticated reads', 'token, unauthenticated reads'];
  const expected = (mode: Mode, access: string, p: (typeof presentations)[number]): number[] => {
    if (access === 'public') return [200];
    const hasToken = mode === 'token' || mode === 'token, unauthenticated reads';
    const unauthReads = mode.includes('unauthenticated reads');
    const sent = p.headers.authorization !== undefined;
    if (access === 'read') {
      if (!hasToken) return unauthReads ? [200] : [401];
      if (p.valid) return [200];
      return !sent && unauthReads ? [200] : [401];
    }
    if (!hasToken) return [403];
    return p.valid ? [200] : [401];
  };
  const bodies: Record<string, unknown> = { restart: {}, cleanup: {}, config: { max: 2 } };
  const mismatches: string[] = [];
  const changed: string[] = [];
  const echoed: string[] = [];
  let requests = 0;
  try {
    for (const mode of modes) {
      const hasToken = mode === 'token' || mode === 'token, unauthenticated reads';
      const admin = await startAdminServer(db, {
        port: 0,
        logger: null,
        ...(hasToken ? { token } : {}),
        allowUnauthenticatedReads: mode.includes('unauthenticated reads'),
      });
      try {
        for (const route of ADMIN_ROUTES) {
          for (const p of presentations) {
            const path = route.path.replace(':id', 'main') + (p.query ? `?${p.query}` : '');
            const body = route.method === 'GET' ? undefined : bodies[route.path.split('/').pop()!];
            const before = JSON.stringify({
              c: db.getPoolConfig('main'),
              r: db.getDetailedMetrics('main').totals.connectionsCreated,
              e: db.getPoolStatus('main').total,
            });
            const want = expected(mode, route.access, p);
            requests++;
            const r = await ledger.track(async () => {
              const res = await http(admin.url, route.method, path, undefined, body, p.headers);
              if (res.status >= 400) throw Object.assign(new Error(res.text), { code: `HTTP ${res.status}` });
              return res;
            }, 30_000);
            const status = r.ok ? Number((r as { value?: { status: number } }).value?.status) : Number(String(r.code).replace('HTTP ', ''));
            const text = r.ok ? ((r as { value?: { text: string } }).value?.text ?? '') : (r.error as Error).message;
            // /readyz answers 503 when a pool is unhealthy; the pool here is healthy.
            if (!want.includes(status)) mismatches.push(`${mode} | ${route.method} ${route.path} | ${p.name}: ${status}, expected ${want.join('/')}`);
            if (text.includes(token)) echoed.push(`${mode} | ${route.method} ${route.path} | ${p.name}`);
            if (route.access === 'write' && status >= 400) {
              const after = JSON.stringify({
                c: db.getPoolConfig('main'),
                r: db.getDetailedMetrics('main').totals.connectionsCreated,
                e: db.getPoolStatus('main').total,
              });
              if (after !== before) changed.push(`${mode} | ${route.method} ${route.path} | ${p.name}`);
            }
          }
        }
      } finally {
        await admin.close();
      }
    }
  } finally {
    await db.close({ drainTimeoutMs: 1_000 });
  }
  checks.add('every route × presentation × mode answered as documented', mismatches.length === 0, mismatches.slice(0, 8).join('; '));
  checks.add('a refused mutation changed nothing', changed.length === 0, changed.slice(0, 8).join('; '));
  checks.add('no answer carried the token', echoed.length === 0, echoed.slice(0, 8).join('; '));
  checks.add(
    'the matrix is complete',
    requests === modes.length * ADMIN_ROUTES.length * presentations.length,
    `${modes.length} modes × ${ADMIN_ROUTES.length} routes × ${presentations.length} presentations = ${requests}`,
  );
  return {
    name: 'admin routes × tokens',
    ...ledger.summary(),
    leaked: 0,
    figures: { modes: modes.length, routes: ADMIN_ROUTES.length, presentations: presentations.length },
    checks: checks.list,
    durationMs: performance.now() - started,
  };
}

// ------------------------------------------------------------------ metric series

/** Series lines of a Prometheus scrape (no comments). */
function seriesOf(scrape: string): string[] {
  return scrape.split('\n').filter((l) => l !== '' && !l.startsWith('#'));
}

/**
 * `statements` distinct statements (distinct texts and shapes, on three tables, some failing) on a
 * pool scraped by startPrometheusExporter: the series count after them equals the count after the
 * first hundred, and no label carries statement text or a literal.
 */
export async function seriesBoundScenario(ctx: ScenarioContext, size: { statements: number }): Promise<ScenarioResult> {
  const started = performance.now();
  const schema = `rel_series_${process.pid}_${rand().slice(0, 6)}`;
  const db = new DatabasePool({
    pools: { series: { connection: { connectionString: ctx.databaseUrl }, max: 4, min: 0, applicationName: appName('series') } },
    logger: null,
  });
  const prom = await startPrometheusExporter({ port: 0 });
  const ledger = new CallLedger();
  const checks = new Checks();
  const scrape = async () =>
    seriesOf(await (await fetch(prom.url)).text()).filter((l) => l.includes('pool="series"') || l.includes('db_client_connection_pool_name="series"'));
  const statement = (i: number) => {
    const t = `${schema}.t${i % 3}`;
    switch (i % 5) {
      case 0:
        return { text: `SELECT id AS c${i} FROM ${t} WHERE id = $1`, values: [i] };
      case 1:
        return { text: `SELECT count(*) FROM ${t} WHERE id > ${i} AND note <> 'n${i}'`, values: undefined };
      case 2:
        return { text: `UPDATE ${t} SET note = 'u${i}' WHERE id = $1`, values: [i] };
      case 3:
        return { text: `INSERT INTO ${t} (id, note) VALUES ($1, 'i${i}') ON CONFLICT DO NOTHING`, values: [i] };
      default:
        return { text: `SELECT id FROM ${t} WHERE id = 'x${i}'`, values: undefined }; // 22P02
    }
  };
  let first: string[] = [];
  let last: string[] = [];
  let perTable = 0;
  const names = (xs: string[]) => new Set(xs.map((l) => l.replace(/ [^ ]+$/, '').replace(/,?le="[^"]*"/, '')));
  try {
    await db.query('series', `CREATE SCHEMA ${schema}`);
    for (let k = 0; k < 3; k++) await db.query('series', `CREATE TABLE ${schema}.t${k} (id int PRIMARY KEY, note text)`);
    const runRange = async (from: number, to: number) => {
      let next = from;
      await Promise.all(
        Array.from({ length: 4 }, async () => {
          for (let i = next++; i < to; i = next++) {
            const s = statement(i);
            await ledger.track(() => db.query('series', s.text, s.values), 10_000);
          }
        }),
      );
    };
    await runRange(0, 100);
    first = await scrape();
    await runRange(100, size.statements);
    last = await scrape();
    // Informational: db.collection.name is the table, as the semantic conventions define it, so
    // series grow with the number of distinct tables a service touches (not with statements).
    for (let i = 0; i < 100; i++) await ledger.track(() => db.query('series', `SELECT 1 FROM ${schema}.missing_${i}`), 10_000);
    perTable =
      (names(seriesOf(await (await fetch(prom.url)).text()).filter((l) => l.includes('pool="series"') || l.includes('db_client_connection_pool_name="series"')))
        .size -
        names(last).size) /
      100;
  } finally {
    await db.query('series', `DROP SCHEMA IF EXISTS ${schema} CASCADE`).catch(() => {});
    await db.close({ drainTimeoutMs: 1_000 });
    await prom.shutdown();
  }
  const labelValues = [...new Set(last.flatMap((l) => [...l.matchAll(/="([^"]*)"/g)].map((m) => m[1]!)))];
  const suspicious = labelValues.filter((v) => /\b[cui]\d+\b|x\d+|n\d+|SELECT |UPDATE |INSERT /.test(v) && !/^(SELECT|UPDATE|INSERT)$/.test(v));
  checks.add(
    `series count after ${size.statements} distinct statements equals the count after 100`,
    names(last).size === names(first).size,
    `${names(first).size} → ${names(last).size}`,
  );
  checks.add('no label value carries statement text or a literal', suspicious.length === 0, suspicious.slice(0, 5).join(' | '));
  checks.add(
    'the statements ran (and the failing ones failed with 22P02 / 42P01 only)',
    ledger.unexpected(['22P02', '42P01']).length === 0 && ledger.served >= size.statements * 0.7,
    `${ledger.served} served, ${JSON.stringify(ledger.rejected)}`,
  );
  return {
    name: 'metric series bound',
    ...ledger.summary(),
    leaked: 0,
    figures: {
      'distinct statements': size.statements,
      'series after 100': names(first).size,
      [`series after ${size.statements}`]: names(last).size,
      'label values': labelValues.length,
      'series per further table name (informational)': perTable.toFixed(1),
    },
    checks: checks.list,
    durationMs: performance.now() - started,
  };
}
