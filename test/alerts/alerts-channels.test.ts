/**
 * AlertHandler and its channels against local receivers on 127.0.0.1: exact payloads (webhook,
 * Slack, PagerDuty trigger + resolve, email over SMTP), retries with backoff for a channel that
 * is down, redaction of every secret, config validation, and the healing helpers. No database.
 */
import test from 'ava';
import { inspect } from 'node:util';
import { AlertHandler, type AlertContext, type DeliveryReport, type PoolActions, type ResolvedAlert } from '../../src/index.js';
import { DEFAULT_PAGERDUTY_EVENTS_URL } from '../../src/alerts/channel-config.js';
import { closedPort, httpReceiver, recordingLogger, smtpReceiver } from '../support/alert-receivers.js';

const context = (kind: AlertContext['kind'], poolId: string, value: number, threshold: number): AlertContext => ({
  kind,
  poolId,
  dedupKey: `db-pool-otel/${poolId}/${kind}`,
  value,
  threshold,
  forMs: 120_000,
  since: new Date().toISOString(),
  metrics: { activeConnections: 10, maxConnections: 10, idleConnections: 0, waitingQueueLength: 7 },
});

const resolved = (kind: ResolvedAlert['kind'], poolId: string): ResolvedAlert => ({
  kind,
  poolId,
  dedupKey: `db-pool-otel/${poolId}/${kind}`,
  since: new Date(Date.now() - 5_000).toISOString(),
  firedAt: new Date(Date.now() - 3_000).toISOString(),
  resolvedAt: new Date().toISOString(),
  durationMs: 5_000,
  value: 1,
  peakValue: 1,
  reason: 'cleared',
});

test('generic webhook: the alert as JSON with level, message, pool, kind, status and timestamp', async (t) => {
  const rx = await httpReceiver(t);
  const handler = new AlertHandler({
    channels: { ops: { type: 'webhook', url: rx.url('/hooks/alerts'), headers: { authorization: 'Bearer hook-token-123' } } },
    source: 'app-1',
  });
  const report = await handler.sendAlert({ level: 'critical', message: 'primary is down', poolId: 'main', kind: 'PoolDown', details: { attempts: 3 } });
  const [req] = await rx.waitFor(1);
  t.is(req!.method, 'POST');
  t.is(req!.path, '/hooks/alerts');
  t.is(req!.headers['content-type'], 'application/json');
  t.is(req!.headers.authorization, 'Bearer hook-token-123');
  const body = req!.json as Record<string, unknown>;
  t.like(body, {
    version: 1,
    level: 'critical',
    message: 'primary is down',
    poolId: 'main',
    kind: 'PoolDown',
    status: 'firing',
    dedupKey: 'db-pool-otel/main/PoolDown',
    source: 'app-1',
    details: { attempts: 3 },
  });
  t.regex(String(body.timestamp), /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
  t.deepEqual(
    report.deliveries.map((d) => ({ channel: d.channel, type: d.type, ok: d.ok, attempts: d.attempts })),
    [{ channel: 'ops', type: 'webhook', ok: true, attempts: 1 }],
  );
  t.true(report.ok);
});

test('Slack: notification text and an attachment coloured by level, green when resolved', async (t) => {
  const rx = await httpReceiver(t);
  const handler = new AlertHandler({ channels: { chat: { type: 'slack', webhookUrl: rx.url('/services/T000/B000/XXXXXXXXXXXXXXXX') } } });
  await handler.handleHighLatency('main', 1523.4, context('HighQueryLatency', 'main', 1523.4, 1000));
  await handler.handleResolved(resolved('HighQueryLatency', 'main'));
  const [fire, end] = await rx.waitFor(2);
  const f = fire!.json as {
    text: string;
    attachments: { color: string; fallback: string; blocks: { type: string; text?: { text: string }; fields?: { text: string }[] }[] }[];
  };
  t.is(f.text, ':warning: WARNING: HighQueryLatency on pool "main": Pool "main": query latency P99 is 1523 ms, above 1000 ms for 2 min');
  t.is(f.attachments.length, 1);
  t.is(f.attachments[0]!.color, '#ECB22E');
  t.is(f.attachments[0]!.blocks[0]!.type, 'section');
  t.is(
    f.attachments[0]!.blocks[0]!.text!.text,
    '*WARNING: HighQueryLatency on pool "main"*\nPool "main": query latency P99 is 1523 ms, above 1000 ms for 2 min',
  );
  t.deepEqual(
    f.attachments[0]!.blocks[1]!.fields!.map((x) => x.text),
    ['*Pool:* main', '*Alert:* HighQueryLatency', '*Level:* warning', '*Status:* firing'],
  );
  t.is(f.attachments[0]!.blocks[2]!.type, 'context');
  const e = end!.json as typeof f;
  t.is(e.attachments[0]!.color, '#2EB67D');
  t.is(e.text, ':white_check_mark: Resolved: HighQueryLatency on pool "main": Pool "main": HighQueryLatency resolved after 5 s');
  t.deepEqual(
    e.attachments[0]!.blocks[1]!.fields!.map((x) => x.text),
    ['*Pool:* main', '*Alert:* HighQueryLatency', '*Level:* warning', '*Status:* resolved'],
  );
});

test('Slack escapes &, < and > in messages', async (t) => {
  const rx = await httpReceiver(t);
  const handler = new AlertHandler({ channels: { chat: { type: 'slack', webhookUrl: rx.url('/s') } } });
  await handler.sendAlert({ level: 'critical', message: 'a < b & c > d' });
  const [req] = await rx.waitFor(1);
  const body = req!.json as { text: string; attachments: { color: string }[] };
  t.is(body.text, ':rotating_light: CRITICAL: Alert: a &lt; b &amp; c &gt; d');
  t.is(body.attachments[0]!.color, '#D00000');
});

test('PagerDuty Events API v2: trigger, then resolve with the same dedup_key', async (t) => {
  const rx = await httpReceiver(t, (req) => ({
    status: 202,
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ status: 'success', message: 'Event processed', dedup_key: (req.json as { dedup_key?: string }).dedup_key }),
  }));
  const routingKey = 'R0UT1NGKEY0123456789abcdefABCDEF';
  const handler = new AlertHandler({ channels: { pager: { type: 'pagerduty', routingKey, eventsUrl: rx.url('/v2/enqueue') } }, source: 'api-7' });
  await handler.handlePoolDown('main', new Error('connect ECONNREFUSED 127.0.0.1:5432'), { ...context('PoolDown', 'main', 1, 0), forMs: 30_000 });
  await handler.handleResolved(resolved('PoolDown', 'main'));
  const [trigger, resolve] = await rx.waitFor(2);
  t.is(trigger!.path, '/v2/enqueue');
  const tr = trigger!.json as Record<string, unknown> & { payload: Record<string, unknown> };
  t.is(tr.routing_key, routingKey);
  t.is(tr.event_action, 'trigger');
  t.is(tr.dedup_key, 'db-pool-otel/main/PoolDown');
  t.like(tr.payload, {
    summary: 'Pool "main" is down: connect ECONNREFUSED 127.0.0.1:5432 (for 30 s)',
    severity: 'critical',
    source: 'api-7',
    component: 'main',
    group: 'db-pool-otel',
    class: 'PoolDown',
  });
  t.like(tr.payload.custom_details as object, {
    message: 'Pool "main" is down: connect ECONNREFUSED 127.0.0.1:5432 (for 30 s)',
    error: 'connect ECONNREFUSED 127.0.0.1:5432',
    threshold: 0,
    forMs: 30_000,
  });
  t.deepEqual(resolve!.json, { routing_key: routingKey, event_action: 'resolve', dedup_key: 'db-pool-otel/main/PoolDown' });
  t.is(DEFAULT_PAGERDUTY_EVENTS_URL, 'https://events.pagerduty.com/v2/enqueue');
  t.deepEqual(handler.toJSON().channels.pager, { type: 'pagerduty', routingKey: '[REDACTED]', eventsUrl: rx.url('/v2/enqueue'), minLevel: 'info' });
});

test('PagerDuty severities follow the level; a resolve without any key fails once, without retries', async (t) => {
  const rx = await httpReceiver(t, () => ({ status: 202, body: '{}' }));
  const log = recordingLogger();
  const handler = new AlertHandler({ channels: { pager: { type: 'pagerduty', routingKey: 'k'.repeat(32), eventsUrl: rx.url('/e') } }, logger: log });
  for (const level of ['info', 'warning', 'error', 'critical'] as const) await handler.sendAlert({ level, message: level, dedupKey: `k-${level}` });
  const reqs = await rx.waitFor(4);
  t.deepEqual(
    reqs.map((r) => (r.json as { payload: { severity: string } }).payload.severity),
    ['info', 'warning', 'error', 'critical'],
  );
  const report = await handler.sendAlert({ level: 'info', message: 'over', resolve: true });
  t.false(report.ok);
  t.is(report.deliveries[0]!.attempts, 1);
  t.regex(report.deliveries[0]!.error!, /needs a dedupKey/);
  t.is(rx.requests.length, 4);
});

test('email over SMTP: from, to, subject and body; login with the configured user; resolve mail', async (t) => {
  const auth = { user: 'alerts@example.com', pass: 'smtp-Pa55word!' };
  const rx = await smtpReceiver(t, auth);
  const handler = new AlertHandler({
    channels: {
      mail: {
        type: 'email',
        smtp: { host: '127.0.0.1', port: rx.port, secure: false, auth },
        from: 'DB Alerts <alerts@example.com>',
        to: ['oncall@example.com', 'dba@example.com'],
      },
    },
  });
  const ctx = context('ConnectionExhaustion', 'orders', 7, 0);
  const report = await handler.handleConnectionExhaustion('orders', { ...ctx, forMs: 60_000 }).then(() => undefined);
  t.is(report, undefined);
  await handler.handleResolved(resolved('ConnectionExhaustion', 'orders'));
  const [fire, end] = await rx.waitFor(2);
  t.deepEqual(rx.logins[0], { user: 'alerts@example.com', ok: true });
  t.is(fire!.user, 'alerts@example.com');
  t.is(fire!.from, 'alerts@example.com');
  t.deepEqual(fire!.to, ['oncall@example.com', 'dba@example.com']);
  t.is(fire!.headers.from, 'DB Alerts <alerts@example.com>');
  t.is(fire!.headers.to, 'oncall@example.com, dba@example.com');
  t.is(fire!.subject, '[db-pool-otel] CRITICAL: ConnectionExhaustion on pool "orders"');
  t.is(fire!.headers['x-db-pool-otel-dedup-key'], 'db-pool-otel/orders/ConnectionExhaustion');
  t.true(fire!.text.startsWith('Pool "orders" is out of connections: 10 of 10 connections in use, 0 idle, 7 callers waiting (for 1 min)\n'), fire!.text);
  t.regex(fire!.text, /^Status: {4}firing$/m);
  t.regex(fire!.text, /^Pool: {6}orders$/m);
  t.regex(fire!.text, /^Alert: {5}ConnectionExhaustion$/m);
  t.is(end!.subject, '[db-pool-otel] RESOLVED: ConnectionExhaustion on pool "orders"');
  t.regex(end!.text, /^Pool "orders": ConnectionExhaustion resolved after 5 s$/m);
  t.false(JSON.stringify(handler).includes(auth.pass));
  handler.close();
});

test('email: a refused login is not retried and the password stays out of logs and reports', async (t) => {
  const rx = await smtpReceiver(t, { user: 'alerts', pass: 'right-password-1' });
  const log = recordingLogger();
  const handler = new AlertHandler({
    channels: {
      mail: {
        type: 'email',
        smtp: { host: '127.0.0.1', port: rx.port, auth: { user: 'alerts', pass: 'wrong-password-2' } },
        from: 'a@example.com',
        to: 'b@example.com',
      },
    },
    logger: log,
  });
  const report = await handler.sendAlert({ level: 'critical', message: 'x', poolId: 'p', kind: 'PoolDown' });
  t.false(report.ok);
  t.is(report.deliveries[0]!.attempts, 1);
  t.regex(report.deliveries[0]!.error!, /EAUTH/);
  t.is(rx.mails.length, 0);
  t.is(log.lines.length, 1);
  t.regex(
    log.lines[0]!,
    /alert channel "mail" \(email smtp:\/\/127\.0\.0\.1:\d+\): attempt 1 of 3 failed: .*EAUTH.*; giving up on alert CRITICAL PoolDown on pool "p"/,
  );
  for (const text of [...log.lines, JSON.stringify(report), inspect(handler, { depth: 10 }), JSON.stringify(handler)]) {
    t.false(text.includes('wrong-password-2'));
    t.false(text.includes(Buffer.from('wrong-password-2').toString('base64')));
  }
});

test('a channel that is down is retried with exponential backoff, logged each time, and never throws', async (t) => {
  const port = await closedPort();
  const rx = await httpReceiver(t);
  const log = recordingLogger();
  const handler = new AlertHandler({
    channels: { down: { type: 'webhook', url: `http://127.0.0.1:${port}/hook/secret-path-token-42` }, up: { type: 'webhook', url: rx.url('/ok') } },
    retry: { attempts: 3, baseDelayMs: 200 },
    logger: log,
  });
  const started = performance.now();
  const report = await handler.sendAlert({ level: 'error', message: 'disk is slow', poolId: 'main', kind: 'Custom' });
  const elapsed = performance.now() - started;
  t.false(report.ok);
  const down = report.deliveries.find((d) => d.channel === 'down')!;
  const up = report.deliveries.find((d) => d.channel === 'up')!;
  t.like(down, { type: 'webhook', ok: false, attempts: 3 });
  t.regex(down.error!, /ECONNREFUSED/);
  t.like(up, { ok: true, attempts: 1 });
  t.true(elapsed >= 600 - 5, `waited 200 + 400 ms between the attempts (took ${Math.round(elapsed)} ms)`);
  t.true(down.durationMs >= 595);
  t.deepEqual(
    log.lines.map((l) => l.replace(/failed: .*;/, 'failed: …;')),
    [
      `[db-pool-otel] alert channel "down" (webhook http://127.0.0.1:${port}/[REDACTED]): attempt 1 of 3 failed: …; retrying in 200 ms`,
      `[db-pool-otel] alert channel "down" (webhook http://127.0.0.1:${port}/[REDACTED]): attempt 2 of 3 failed: …; retrying in 400 ms`,
      `[db-pool-otel] alert channel "down" (webhook http://127.0.0.1:${port}/[REDACTED]): attempt 3 of 3 failed: …; giving up on alert ERROR Custom on pool "main"`,
    ],
  );
  for (const line of log.lines) t.regex(line, /ECONNREFUSED/);
  t.false([...log.lines, JSON.stringify(report)].some((s) => s.includes('secret-path-token-42')));
});

test('5xx and 429 are retried, other 4xx are not; a timeout counts as a failure', async (t) => {
  const flaky = await httpReceiver(t, (_req, i) =>
    i === 0 ? { status: 503, body: 'busy' } : i === 1 ? { status: 429, headers: { 'retry-after': '0' } } : { status: 200 },
  );
  const bad = await httpReceiver(t, () => ({ status: 400, body: '{"error":"invalid"}' }));
  const hung = await httpReceiver(t, () => 'hang');
  const log = recordingLogger();
  const handler = new AlertHandler({
    channels: {
      flaky: { type: 'webhook', url: flaky.url() },
      bad: { type: 'slack', webhookUrl: bad.url() },
      hung: { type: 'webhook', url: hung.url(), timeoutMs: 150 },
    },
    retry: { attempts: 3, baseDelayMs: 20 },
    logger: log,
  });
  const report = await handler.sendAlert({ level: 'warning', message: 'm' });
  const by = Object.fromEntries(report.deliveries.map((d) => [d.channel, d]));
  t.like(by.flaky, { ok: true, attempts: 3 });
  t.like(by.bad, { ok: false, attempts: 1, error: 'HTTP 400 Bad Request: {"error":"invalid"}' });
  t.like(by.hung, { ok: false, attempts: 3, error: 'no answer within 150 ms' });
});

test('channels: pick by name; unknown names are reported, not thrown; minLevel skips; a resolve goes where its trigger went', async (t) => {
  const a = await httpReceiver(t);
  const b = await httpReceiver(t);
  const log = recordingLogger();
  const handler = new AlertHandler({
    channels: { a: { type: 'webhook', url: a.url() }, b: { type: 'webhook', url: b.url(), minLevel: 'critical' } },
    logger: log,
  });

  const only = await handler.sendAlert({ level: 'critical', message: 'to a', channels: ['a', 'nope'] });
  t.deepEqual(
    only.deliveries.map((d) => [d.channel, d.ok, d.type]),
    [
      ['a', true, 'webhook'],
      ['nope', false, 'unknown'],
    ],
  );
  t.regex(only.deliveries[1]!.error!, /no channel named "nope" \(configured: a, b\)/);
  t.false(only.ok);

  const warn = await handler.sendAlert({ level: 'warning', message: 'w', poolId: 'p', kind: 'HighErrorRate' });
  t.true(warn.ok);
  t.like(warn.deliveries[1], { channel: 'b', ok: false, attempts: 0, skipped: "level warning is below the channel's minLevel critical" });
  const end = await handler.sendAlert({ level: 'warning', message: 'w over', poolId: 'p', kind: 'HighErrorRate', resolve: true });
  t.deepEqual(
    end.deliveries.map((d) => d.channel),
    ['a'],
    'only the channel that heard the trigger',
  );
  t.is(a.requests.length, 3);
  t.is(b.requests.length, 0);
});

test('handleResolved sends nothing for an episode this handler never announced', async (t) => {
  const rx = await httpReceiver(t);
  class ScaleOnly extends AlertHandler {
    override async handleConnectionExhaustion(): Promise<void> {
      // heals without alerting
    }
  }
  const handler = new ScaleOnly({ channels: { ops: { type: 'webhook', url: rx.url() } } });
  await handler.handleConnectionExhaustion();
  await handler.handleResolved(resolved('ConnectionExhaustion', 'main'));
  await handler.handleHighErrorRate('main', 0.5);
  await handler.handleResolved(resolved('HighErrorRate', 'main'));
  const reqs = await rx.waitFor(2);
  t.deepEqual(
    reqs.map((r) => [(r.json as { kind: string }).kind, (r.json as { status: string }).status]),
    [
      ['HighErrorRate', 'firing'],
      ['HighErrorRate', 'resolved'],
    ],
  );
  t.is(rx.requests.length, 2);
});

test('without channels the alert goes to the logger', async (t) => {
  const log = recordingLogger();
  const handler = new AlertHandler({ logger: log });
  const report = await handler.handleHighErrorRate('main', 0.075, { ...context('HighErrorRate', 'main', 0.075, 0.05), forMs: 180_000 });
  t.is(report, undefined);
  t.deepEqual(log.lines, [
    '[db-pool-otel] alert (no channels configured) WARNING HighErrorRate: Pool "main": 7.5 % of queries are failing (threshold 5 %, for 3 min)',
  ]);
});

test('secrets never appear in toJSON, util.inspect, logs or reports', async (t) => {
  const port = await closedPort();
  const hookToken = 'T0KEN-in-the-webhook-path-9f8e7d';
  const slackToken = 'B0123ABCD/SlackSecretXyz123456';
  const routingKey = 'pagerduty-routing-key-0123456789ab';
  const pass = 'smtp-password-s3cr3t';
  const log = recordingLogger();
  const handler = new AlertHandler({
    channels: {
      ops: { type: 'webhook', url: `http://127.0.0.1:${port}/hooks/${hookToken}?sig=querysecret123`, headers: { authorization: 'Bearer header-secret-value' } },
      chat: { type: 'slack', webhookUrl: `http://127.0.0.1:${port}/services/T000/${slackToken}` },
      pager: { type: 'pagerduty', routingKey, eventsUrl: `http://127.0.0.1:${port}/v2/enqueue` },
      mail: { type: 'email', smtp: { host: '127.0.0.1', port, auth: { user: 'u', pass } }, from: 'a@example.com', to: 'b@example.com', timeoutMs: 500 },
    },
    retry: { attempts: 2, baseDelayMs: 1 },
    logger: log,
  });
  const report: DeliveryReport = await handler.sendAlert({
    level: 'critical',
    message: `leaked ${routingKey} in a message`,
    poolId: 'p',
    kind: 'PoolDown',
    details: { note: pass },
  });
  t.false(report.ok);
  t.is(report.deliveries.length, 4);
  t.true(log.lines.length >= 8);
  const shown = [JSON.stringify(handler), inspect(handler, { depth: 10 }), String(inspect(handler)), ...log.lines, JSON.stringify(report)];
  for (const secret of [hookToken, 'querysecret123', 'header-secret-value', slackToken, 'SlackSecretXyz123456', routingKey, pass]) {
    for (const text of shown) t.false(text.includes(secret), `${secret} leaked into: ${text.slice(0, 300)}`);
  }
  t.deepEqual(handler.toJSON().channels, {
    ops: { type: 'webhook', url: `http://127.0.0.1:${port}/[REDACTED]`, headers: { authorization: '[REDACTED]' }, minLevel: 'info' },
    chat: { type: 'slack', webhookUrl: `http://127.0.0.1:${port}/[REDACTED]`, minLevel: 'info' },
    pager: { type: 'pagerduty', routingKey: '[REDACTED]', eventsUrl: `http://127.0.0.1:${port}/v2/enqueue`, minLevel: 'info' },
    mail: {
      type: 'email',
      smtp: { host: '127.0.0.1', port, secure: false, auth: { user: 'u', pass: '[REDACTED]' } },
      from: 'a@example.com',
      to: 'b@example.com',
      minLevel: 'info',
      timeoutMs: 500,
    },
  });
  t.regex(inspect(handler), /^AlertHandler \{/);
  t.is(handler.redact(`see http://127.0.0.1:${port}/hooks/${hookToken}?sig=querysecret123`), 'see [REDACTED]');
});

test('invalid channel config: INVALID_CONFIG naming each field, secret values redacted', (t) => {
  const err = t.throws(
    () =>
      new AlertHandler({
        channels: {
          ops: { type: 'webhook', url: 'ftp://host/path-token-abc' },
          chat: { type: 'slack', webhookURL: 'https://hooks.slack.com/services/T/B/slack-typo-secret' },
          pager: { type: 'pagerduty' },
          mail: { type: 'email', smtp: { host: 'smtp.example.com', port: 70_000, auth: { user: 'u', pass: 123 } }, from: 'not an address', to: [] },
          what: { type: 'carrier-pigeon' },
        },
        retry: { attempts: 0 },
        timeoutMs: 5,
      } as never),
  ) as unknown as { code: string; issues: { path: string; value: unknown; rule: string }[]; message: string };
  t.is(err.code, 'INVALID_CONFIG');
  const byPath = Object.fromEntries(err.issues.map((i) => [i.path, i]));
  t.like(byPath['channels.ops.url'], { value: 'ftp://host/[REDACTED]', rule: 'must be an http:// or https:// URL' });
  t.like(byPath['channels.chat.webhookUrl'], { rule: 'is required' });
  t.like(byPath['channels.chat.webhookURL'], { value: '[REDACTED]', rule: 'is not a known setting (did you mean "webhookUrl"?)' });
  t.like(byPath['channels.pager.routingKey'], { rule: 'is required' });
  t.like(byPath['channels.mail.smtp.port'], { value: 70_000, rule: 'must be from 1 to 65535' });
  t.like(byPath['channels.mail.smtp.auth.pass'], { value: '[REDACTED]', rule: 'must be a string' });
  t.like(byPath['channels.mail.from'], { value: 'not an address' });
  t.truthy(byPath['channels.mail.to']);
  t.like(byPath['channels.what.type'], { value: 'carrier-pigeon', rule: 'must be webhook, slack, pagerduty or email' });
  t.like(byPath['retry.attempts'], { value: 0, rule: 'must be from 1 to 10' });
  t.like(byPath.timeoutMs, { value: 5 });
  t.regex(err.message, /Invalid configuration for AlertHandler: \d+ problems/);
  t.false(err.message.includes('path-token-abc'));
  t.false(err.message.includes('slack-typo-secret'));
  t.false(JSON.stringify(err.issues).includes('slack-typo-secret'));
});

test('a bad routing key or URL type is named, and unknown handler options get a suggestion', (t) => {
  const err = t.throws(() => new AlertHandler({ channels: { p: { type: 'pagerduty', routingKey: 'has spaces in it' } }, chanels: {} } as never)) as unknown as {
    code: string;
    issues: { path: string; value: unknown; rule: string }[];
  };
  t.is(err.code, 'INVALID_CONFIG');
  t.deepEqual(err.issues, [
    { path: 'chanels', value: 'an object', rule: 'is not a known option (did you mean "channels"?)' },
    { path: 'channels.p.routingKey', value: '[REDACTED]', rule: 'must be the integration key: 1-128 characters, no spaces' },
  ]);
});

test('healing helpers act on the attached pool manager', async (t) => {
  const calls: string[] = [];
  const max: Record<string, number> = { a: 10, b: 150, c: 200, d: 2 };
  const db: PoolActions = {
    getPoolConfig: (id) => ({ max: max[id]! }),
    updatePoolConfig: async (id, patch) => {
      calls.push(`update ${id} max=${patch.max}`);
      max[id] = patch.max!;
    },
    optimizePoolSize: async (id) => {
      calls.push(`optimize ${id}`);
      return { poolId: id };
    },
    cleanupPool: async (id) => {
      calls.push(`cleanup ${id}`);
      return { idleClosed: 1 };
    },
  };
  const log = recordingLogger();
  const handler = new AlertHandler({ logger: log });
  const unattached = await t.throwsAsync(handler.emergencyScaleUp('a'));
  t.is((unattached as { code?: string }).code, 'INVALID_CONFIG');
  t.false(handler.attached);
  handler.attach(db);
  t.true(handler.attached);
  t.deepEqual(await handler.emergencyScaleUp('a'), { poolId: 'a', before: 10, after: 15 });
  t.deepEqual(await handler.emergencyScaleUp('b'), { poolId: 'b', before: 150, after: 200 });
  t.deepEqual(await handler.emergencyScaleUp('c'), { poolId: 'c', before: 200, after: 200 });
  t.deepEqual(await handler.increaseMaxConnections('a'), { poolId: 'a', before: 15, after: 19 });
  t.deepEqual(await handler.increaseMaxConnections('d'), { poolId: 'd', before: 2, after: 3 });
  t.deepEqual(await handler.autoScalePool('a'), { poolId: 'a' });
  t.deepEqual(await handler.cleanupIdleConnections('a'), { idleClosed: 1 });
  t.deepEqual(calls, ['update a max=15', 'update b max=200', 'update a max=19', 'update d max=3', 'optimize a', 'cleanup a']);
  t.true(log.lines.includes('[db-pool-otel] emergencyScaleUp: pool "a" max 10 → 15'));
});
