/**
 * The admin endpoint's HTTP plumbing: JSON responses, bounded JSON request bodies, the error type
 * handlers throw to answer with a status code, and the deadline for request headers.
 */
import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import type { Duplex } from 'node:stream';
import type { AdminErrorCode, AdminIssue } from './protocol.js';

/** Thrown by a handler (or the plumbing) to answer with `status` and `{ error: { code, message, issues? } }`. */
export class AdminHttpError extends Error {
  constructor(
    readonly status: number,
    readonly code: AdminErrorCode,
    message: string,
    readonly issues?: AdminIssue[],
    readonly headers: Record<string, string> = {},
  ) {
    super(message);
    this.name = 'AdminHttpError';
  }
}

const COMMON_HEADERS = {
  'content-type': 'application/json; charset=utf-8',
  'cache-control': 'no-store',
  'x-content-type-options': 'nosniff',
} as const;

/** Writes `body` as JSON. `close` ends the connection afterwards (used when a request body is left unread). */
export function sendJson(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}, close = false): void {
  if (res.headersSent) {
    res.destroy();
    return;
  }
  const text = JSON.stringify(body);
  res.writeHead(status, {
    ...COMMON_HEADERS,
    ...headers,
    'content-length': String(Buffer.byteLength(text)),
    ...(close ? { connection: 'close' } : {}),
  });
  res.end(text);
}

/** True when the request announces a body (a length above zero, or chunked). */
export function hasBody(req: IncomingMessage): boolean {
  const length = req.headers['content-length'];
  if (length !== undefined) return Number(length) > 0;
  return req.headers['transfer-encoding'] !== undefined;
}

/**
 * Reads a JSON body of at most `maxBytes`. An empty body is `undefined`. Rejects with 413 (too
 * large: announced or counted), 415 (not `application/json`, or compressed) or 400 (not valid JSON
 * or not UTF-8).
 */
export async function readJsonBody(req: IncomingMessage, maxBytes: number): Promise<unknown> {
  if (!hasBody(req)) return undefined;
  const declared = req.headers['content-length'];
  if (declared !== undefined && Number(declared) > maxBytes) {
    throw new AdminHttpError(413, 'PAYLOAD_TOO_LARGE', `request body of ${declared} bytes is over the limit of ${maxBytes} bytes`);
  }
  const type = (req.headers['content-type'] ?? '').split(';')[0]!.trim().toLowerCase();
  if (type !== 'application/json') {
    throw new AdminHttpError(
      415,
      'UNSUPPORTED_MEDIA_TYPE',
      `request body must be JSON with content-type application/json (got ${type ? JSON.stringify(type.slice(0, 80)) : 'none'})`,
    );
  }
  const encoding = (req.headers['content-encoding'] ?? 'identity').trim().toLowerCase();
  if (encoding !== 'identity') {
    throw new AdminHttpError(415, 'UNSUPPORTED_MEDIA_TYPE', 'compressed request bodies are not accepted (content-encoding must be identity)');
  }
  const chunks: Buffer[] = [];
  let size = 0;
  await new Promise<void>((resolve, reject) => {
    const onData = (chunk: Buffer) => {
      size += chunk.length;
      if (size > maxBytes) {
        cleanup(); // the rest is discarded by the caller (discardBody) before answering
        reject(new AdminHttpError(413, 'PAYLOAD_TOO_LARGE', `request body is over the limit of ${maxBytes} bytes`));
        return;
      }
      chunks.push(chunk);
    };
    const onEnd = () => {
      cleanup();
      resolve();
    };
    const onError = (err: Error) => {
      cleanup();
      reject(err);
    };
    const cleanup = () => {
      req.off('data', onData);
      req.off('end', onEnd);
      req.off('error', onError);
    };
    req.on('data', onData);
    req.on('end', onEnd);
    req.on('error', onError);
  });
  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true }).decode(Buffer.concat(chunks));
  } catch {
    throw new AdminHttpError(400, 'INVALID_JSON', 'request body is not valid UTF-8');
  }
  if (text.trim() === '') return undefined;
  try {
    return JSON.parse(text) as unknown;
  } catch {
    // V8's message quotes the input; the input is not echoed back.
    throw new AdminHttpError(400, 'INVALID_JSON', 'request body is not valid JSON');
  }
}

/** Most of a rejected body read (and thrown away) so that the answer reaches the client. */
const DISCARD_LIMIT_BYTES = 1024 * 1024;

/**
 * Reads and throws away the rest of a request body the server will not use (a rejected request),
 * up to `limitBytes` and `timeoutMs`. Closing a socket with unread data makes the kernel send a TCP
 * reset, which can destroy the answer before the client reads it. Resolves false when it gave up
 * (the connection must then be closed).
 */
export function discardBody(req: IncomingMessage, limitBytes = DISCARD_LIMIT_BYTES, timeoutMs = 2_000): Promise<boolean> {
  if (req.complete || req.readableEnded) return Promise.resolve(true);
  const declared = Number(req.headers['content-length'] ?? 0);
  if (declared > limitBytes) return Promise.resolve(false);
  return new Promise((resolve) => {
    let seen = 0;
    const done = (drained: boolean) => {
      clearTimeout(timer);
      req.off('data', onData);
      req.off('end', onEnd);
      req.off('error', onError);
      if (!drained) req.pause();
      resolve(drained);
    };
    const onData = (chunk: Buffer) => {
      seen += chunk.length;
      if (seen > limitBytes) done(false);
    };
    const onEnd = () => done(true);
    const onError = () => done(false);
    const timer = setTimeout(() => done(false), timeoutMs);
    req.on('data', onData);
    req.on('end', onEnd);
    req.on('error', onError);
    req.resume();
  });
}

/**
 * Gives every connection `timeoutMs` to send complete request headers, counted from when it opens
 * and again from each answer sent on it (keep-alive); then it is answered 408 and closed. Node's
 * own `headersTimeout` starts over at the first byte of a request, so a client that sends one byte
 * just before it runs out and then trickles would get twice as long.
 */
export function enforceHeaderDeadline(server: Server, timeoutMs: number): void {
  const timers = new WeakMap<Duplex, NodeJS.Timeout>();
  const disarm = (socket: Duplex) => clearTimeout(timers.get(socket));
  const arm = (socket: Duplex) => {
    disarm(socket);
    const timer = setTimeout(() => closeWithTimeout(socket), timeoutMs);
    timer.unref();
    timers.set(socket, timer);
  };
  server.on('connection', (socket: Duplex) => {
    arm(socket);
    socket.once('close', () => disarm(socket));
  });
  server.on('request', (req: IncomingMessage, res: ServerResponse) => {
    disarm(req.socket);
    res.once('finish', () => {
      if (!req.socket.destroyed) arm(req.socket);
    });
  });
}

/** Answers 408 on a raw socket and closes it (destroyed after a second if the client does not read). */
export function closeWithTimeout(socket: Duplex): void {
  closeWith(socket, 'HTTP/1.1 408 Request Timeout\r\nconnection: close\r\ncontent-length: 0\r\n\r\n');
}

/** Answers 400 on a raw socket (a request Node could not parse) and closes it. */
export function closeWithBadRequest(socket: Duplex): void {
  closeWith(socket, 'HTTP/1.1 400 Bad Request\r\nconnection: close\r\ncontent-length: 0\r\n\r\n');
}

function closeWith(socket: Duplex, answer: string): void {
  if (socket.destroyed) return;
  if (!socket.writable) {
    socket.destroy();
    return;
  }
  socket.end(answer);
  setTimeout(() => socket.destroy(), 1_000).unref();
}
