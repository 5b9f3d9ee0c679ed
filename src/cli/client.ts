/**
 * The CLI's side of the admin endpoint: one JSON request at a time over node:http(s), with every
 * failure turned into a {@link CliError} that names the problem, the fix and the exit code.
 * The token travels in the Authorization header only; no message ever contains it.
 */
import http from 'node:http';
import https from 'node:https';
import type { AdminErrorBody } from '../admin/protocol.js';
import { escapeControls, human, joined, Rendered } from './format.js';

/** Exit codes of `db-pool`. */
export const EXIT = {
  ok: 0,
  /** Unhealthy, or the operation failed. */
  failed: 1,
  /** Bad command line (or a request the endpoint rejected as invalid). */
  usage: 2,
  /** The admin endpoint is unreachable, is not an admin endpoint, or refused the token. */
  unreachable: 3,
} as const;

export type ExitCode = (typeof EXIT)[keyof typeof EXIT];

/**
 * A failure to report on stderr with its exit code. A plain-string message is one line: its
 * control characters (line feeds included) are escaped; a {@link Rendered} one keeps its layout.
 */
export class CliError extends Error {
  constructor(
    readonly exitCode: ExitCode,
    message: string | Rendered,
    /** The admin endpoint's error code, when it answered with one. */
    readonly code?: string,
  ) {
    super(message instanceof Rendered ? message.text : escapeControls(message));
    this.name = 'CliError';
  }
}

export interface Endpoint {
  url: URL;
  token: string | undefined;
  timeoutMs: number;
}

/** What the admin endpoint answered (2xx only; everything else throws). */
interface AdminResponse<T> {
  status: number;
  body: T;
}

/** The URL as shown in messages: without credentials, query or fragment. */
export function displayUrl(url: URL): string {
  return `${url.protocol}//${url.host}${url.pathname === '/' ? '' : url.pathname.replace(/\/$/, '')}`;
}

/** Sends one request. Resolves with the parsed JSON of a 2xx answer; throws a CliError otherwise. */
export async function request<T>(endpoint: Endpoint, method: 'GET' | 'POST' | 'PATCH', path: string, body?: unknown): Promise<AdminResponse<T>> {
  const base = endpoint.url;
  const target = new URL(base.href);
  target.pathname = `${base.pathname.replace(/\/+$/, '')}${path.split('?')[0]}`;
  target.search = path.includes('?') ? path.slice(path.indexOf('?')) : '';
  target.username = '';
  target.password = '';
  const where = displayUrl(base);
  const payload = body === undefined ? undefined : JSON.stringify(body);
  const headers: Record<string, string> = { accept: 'application/json', 'user-agent': 'db-pool-cli' };
  if (endpoint.token !== undefined) headers.authorization = `Bearer ${endpoint.token}`;
  if (payload !== undefined) {
    headers['content-type'] = 'application/json';
    headers['content-length'] = String(Buffer.byteLength(payload));
  }
  const lib = target.protocol === 'https:' ? https : http;

  const { status, contentType, text } = await new Promise<{ status: number; contentType: string; text: string }>((resolve, reject) => {
    const req = lib.request(target, { method, headers, agent: false, timeout: endpoint.timeoutMs }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () =>
        resolve({ status: res.statusCode ?? 0, contentType: String(res.headers['content-type'] ?? ''), text: Buffer.concat(chunks).toString('utf8') }),
      );
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(Object.assign(new Error('timeout'), { code: 'ETIMEDOUT_DBPOOL' })));
    req.on('error', reject);
    req.end(payload);
  }).catch((err: NodeJS.ErrnoException) => {
    throw new CliError(EXIT.unreachable, unreachableMessage(where, err, endpoint.timeoutMs));
  });

  let json: unknown;
  try {
    json = contentType.includes('application/json') ? JSON.parse(text) : undefined;
  } catch {
    json = undefined;
  }
  if (json === undefined) {
    throw new CliError(
      EXIT.unreachable,
      `${where} answered HTTP ${status} with ${contentType.split(';')[0] || 'no content type'}, not the db-pool admin API — ` +
        'is --url (or DB_POOL_ADMIN_URL) the address of db.startAdminServer(), not the app or its metrics exporter?',
    );
  }
  if (status >= 200 && status < 300) return { status, body: json as T };
  throw errorFor(where, status, json, endpoint.token !== undefined);
}

function unreachableMessage(where: string, err: NodeJS.ErrnoException, timeoutMs: number): string {
  const fix = 'is the app running with db.startAdminServer()? set --url or DB_POOL_ADMIN_URL';
  switch (err.code) {
    case 'ECONNREFUSED':
      return `cannot reach ${where}: connection refused — ${fix}`;
    case 'ENOTFOUND':
    case 'EAI_AGAIN':
      return `cannot reach ${where}: host name not found — check --url or DB_POOL_ADMIN_URL`;
    case 'ETIMEDOUT_DBPOOL':
      return `no answer from ${where} within ${timeoutMs} ms — is the app overloaded or stopped? raise --timeout for slow operations`;
    case 'ECONNRESET':
    case 'EPIPE':
      return `${where} closed the connection — is --url an HTTP admin endpoint (http:// vs https://)?`;
    case 'EPROTO':
    case 'ERR_SSL_WRONG_VERSION_NUMBER':
      return `TLS handshake with ${where} failed — the admin endpoint speaks plain HTTP: use http://`;
    default:
      return `cannot reach ${where}: ${err.code ?? err.message} — ${fix}`;
  }
}

function errorFor(where: string, status: number, json: unknown, sentToken: boolean): CliError {
  const error = (json as Partial<AdminErrorBody>)?.error;
  const code = typeof error?.code === 'string' ? error.code : undefined;
  const message = typeof error?.message === 'string' ? error.message : `HTTP ${status}`;
  if (status === 401) {
    return new CliError(
      EXIT.unreachable,
      sentToken
        ? `${where} rejected the token (${message}) — set --token or DB_POOL_ADMIN_TOKEN to the token the app passed to startAdminServer()`
        : `${where} needs a token (${message}) — set DB_POOL_ADMIN_TOKEN (or --token) to the token the app passed to startAdminServer()`,
    );
  }
  if (status === 403) {
    return new CliError(EXIT.unreachable, `${where} refused: ${message}`);
  }
  if (code === 'NOT_FOUND') {
    return new CliError(EXIT.unreachable, `${where} has no such route (${message}) — is --url the admin endpoint, with no extra path?`);
  }
  if (status === 400 || status === 413 || status === 415) {
    const issues = Array.isArray(error?.issues) ? error.issues : [];
    const lines = issues.map((i) => human`\n  - ${i.path}: ${i.rule}${i.value === undefined ? '' : human` (got ${JSON.stringify(i.value)})`}`);
    const head = issues.length > 0 ? 'rejected, nothing changed' : message;
    return new CliError(EXIT.usage, human`${head}${joined(lines, '')}`);
  }
  return new CliError(EXIT.failed, `${message}${code && !message.includes(code) ? ` (${code})` : ''}`, code);
}
