/**
 * Local receivers for the alert channels, all on 127.0.0.1: an HTTP receiver (webhook, Slack,
 * PagerDuty) and an SMTP receiver (smtp-server). Each resolves promises as requests arrive, so
 * tests wait on events, not on sleeps.
 */
import type { ExecutionContext } from 'ava';
import { once } from 'node:events';
import { createServer as createHttpServer, type IncomingHttpHeaders, type ServerResponse } from 'node:http';
import { SMTPServer } from 'smtp-server';
import type { AlertMetrics } from '../../src/index.js';

export interface ReceivedRequest {
  method: string;
  path: string;
  headers: IncomingHttpHeaders;
  body: string;
  json: unknown;
  at: number;
}

/** A request's or response's body, as text and as JSON when it parses. */
export async function readBody(stream: AsyncIterable<Buffer>): Promise<{ text: string; json: unknown }> {
  const parts: Buffer[] = [];
  for await (const c of stream) parts.push(c);
  const text = Buffer.concat(parts).toString('utf8');
  try {
    return { text, json: JSON.parse(text) as unknown };
  } catch {
    return { text, json: undefined };
  }
}

type Responder = (req: ReceivedRequest, index: number, res: ServerResponse) => { status: number; body?: string; headers?: Record<string, string> } | 'hang';

/** Waits for the n-th (1-based) arrival of something pushed to a list. */
class Arrivals<T> {
  readonly items: T[] = [];
  #waiters: { n: number; resolve: (items: T[]) => void }[] = [];

  push(item: T): void {
    this.items.push(item);
    this.#waiters = this.#waiters.filter((w) => {
      if (this.items.length < w.n) return true;
      w.resolve(this.items.slice(0, w.n));
      return false;
    });
  }

  /** Resolves with the first n items once n have arrived; rejects after `timeoutMs`. */
  waitFor(n: number, timeoutMs = 10_000): Promise<T[]> {
    if (this.items.length >= n) return Promise.resolve(this.items.slice(0, n));
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`expected ${n} arrivals within ${timeoutMs} ms, got ${this.items.length}`)), timeoutMs);
      this.#waiters.push({
        n,
        resolve: (items) => {
          clearTimeout(timer);
          resolve(items);
        },
      });
    });
  }
}

export interface HttpReceiver {
  url(path?: string): string;
  port: number;
  requests: ReceivedRequest[];
  waitFor(n: number, timeoutMs?: number): Promise<ReceivedRequest[]>;
}

/** An HTTP server on 127.0.0.1 recording every request; answers 200 unless `respond` says otherwise. */
export async function httpReceiver(t: ExecutionContext, respond?: Responder): Promise<HttpReceiver> {
  const arrivals = new Arrivals<ReceivedRequest>();
  const server = createHttpServer((req, res) => {
    // A request aborted before its end is not an arrival.
    void readBody(req).then(
      ({ text: body, json }) => {
        const rec: ReceivedRequest = { method: req.method ?? '', path: req.url ?? '', headers: req.headers, body, json, at: performance.now() };
        const answer = respond ? respond(rec, arrivals.items.length, res) : { status: 200, body: 'ok' };
        arrivals.push(rec);
        if (answer === 'hang') return;
        res.writeHead(answer.status, { 'content-type': 'text/plain', ...answer.headers });
        res.end(answer.body ?? '');
      },
      () => {},
    );
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as { port: number };
  t.teardown(async () => {
    server.closeAllConnections();
    await new Promise<void>((r) => server.close(() => r()));
  });
  return {
    port,
    url: (path = '/') => `http://127.0.0.1:${port}${path}`,
    requests: arrivals.items,
    waitFor: (n, timeoutMs) => arrivals.waitFor(n, timeoutMs),
  };
}

export interface ReceivedMail {
  from: string | undefined;
  to: string[];
  headers: Record<string, string>;
  subject: string;
  text: string;
  raw: string;
  user: string | undefined;
}

export interface SmtpReceiver {
  port: number;
  mails: ReceivedMail[];
  /** Login attempts: user and whether the password matched. */
  logins: { user: string; ok: boolean }[];
  waitFor(n: number, timeoutMs?: number): Promise<ReceivedMail[]>;
}

/** An SMTP server on 127.0.0.1 (no TLS); with `auth`, only that user and password may log in. */
export async function smtpReceiver(t: ExecutionContext, auth?: { user: string; pass: string }): Promise<SmtpReceiver> {
  const arrivals = new Arrivals<ReceivedMail>();
  const logins: { user: string; ok: boolean }[] = [];
  const server = new SMTPServer({
    secure: false,
    disabledCommands: auth ? ['STARTTLS'] : ['STARTTLS', 'AUTH'],
    authOptional: !auth,
    allowInsecureAuth: true,
    logger: false,
    onAuth(a, _session, callback) {
      const ok = auth !== undefined && a.username === auth.user && a.password === auth.pass;
      logins.push({ user: a.username ?? '', ok });
      if (ok) callback(null, { user: a.username });
      else callback(new Error('Invalid username or password'));
    },
    onData(stream, session, callback) {
      const chunks: Buffer[] = [];
      stream.on('data', (c: Buffer) => chunks.push(c));
      stream.on('end', () => {
        const raw = Buffer.concat(chunks).toString('utf8');
        const mailFrom = session.envelope.mailFrom;
        arrivals.push({
          ...parseMail(raw),
          from: mailFrom === false ? undefined : mailFrom.address,
          to: session.envelope.rcptTo.map((r) => r.address),
          raw,
          user: typeof session.user === 'string' ? session.user : undefined,
        });
        callback();
      });
    },
  });
  server.listen(0, '127.0.0.1');
  await once(server.server, 'listening');
  const { port } = server.server.address() as { port: number };
  t.teardown(() => new Promise<void>((r) => server.close(() => r())));
  return { port, mails: arrivals.items, logins, waitFor: (n, timeoutMs) => arrivals.waitFor(n, timeoutMs) };
}

/** Headers (unfolded, lower-case names) and the decoded text of a single-part message. */
function parseMail(raw: string): { headers: Record<string, string>; subject: string; text: string } {
  const split = raw.indexOf('\r\n\r\n');
  const head = split === -1 ? raw : raw.slice(0, split);
  let body = split === -1 ? '' : raw.slice(split + 4);
  const headers: Record<string, string> = {};
  for (const line of head.replace(/\r\n[ \t]+/g, ' ').split('\r\n')) {
    const i = line.indexOf(':');
    if (i > 0) headers[line.slice(0, i).trim().toLowerCase()] = line.slice(i + 1).trim();
  }
  const cte = (headers['content-transfer-encoding'] ?? '').toLowerCase();
  if (cte === 'quoted-printable') {
    body = Buffer.from(
      body.replace(/=\r\n/g, '').replace(/=([0-9A-F]{2})/gi, (_, h: string) => String.fromCharCode(parseInt(h, 16))),
      'latin1',
    ).toString('utf8');
  } else if (cte === 'base64') {
    body = Buffer.from(body.replace(/\s+/g, ''), 'base64').toString('utf8');
  }
  return { headers, subject: decodeWords(headers.subject ?? ''), text: body.replace(/\r\n/g, '\n') };
}

/** RFC 2047 encoded words (=?UTF-8?Q?...?= / =?UTF-8?B?...?=). */
function decodeWords(s: string): string {
  return s.replace(/\?=\s+=\?/g, '?==?').replace(/=\?([^?]+)\?([QB])\?([^?]*)\?=/gi, (_, _cs: string, enc: string, text: string) =>
    enc.toUpperCase() === 'B'
      ? Buffer.from(text, 'base64').toString('utf8')
      : Buffer.from(
          text.replace(/_/g, ' ').replace(/=([0-9A-F]{2})/gi, (__, h: string) => String.fromCharCode(parseInt(h, 16))),
          'latin1',
        ).toString('utf8'),
  );
}

/** A loopback port with nothing listening on it: a free port, left unused. */
export { freePort as closedPort } from './server.js';

/** A logger that keeps its lines. */
export function recordingLogger(): { warn(line: string): void; lines: string[] } {
  const lines: string[] = [];
  return { lines, warn: (line: string) => void lines.push(String(line)) };
}

/** A promise with its resolve function, for "wait until this happens". */
export function deferred<T = void>(): { promise: Promise<T>; resolve: (v: T) => void } {
  let resolve!: (v: T) => void;
  const promise = new Promise<T>((r) => (resolve = r));
  return { promise, resolve };
}

/**
 * Rejects after `ms`. The evaluator's timers are unref'd (by design), so a test waiting only on them
 * would let the process exit: this ref'd timeout keeps it alive and turns a missing event into a
 * clear failure.
 */
export function withTimeout<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms waiting for ${what}`)), ms);
  });
  return Promise.race([p, timeout]).finally(() => clearTimeout(timer));
}

/** Metrics of a pool no alert condition holds for. */
export function healthyMetrics(): AlertMetrics {
  return {
    latencyP99: 5,
    errorRate: 0,
    waitingQueueLength: 0,
    idleConnections: 2,
    activeConnections: 1,
    totalConnections: 3,
    maxConnections: 10,
    leakedConnections: 0,
    lastConnectError: null,
  };
}
