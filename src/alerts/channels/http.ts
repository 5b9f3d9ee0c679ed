/**
 * One JSON POST through the global `fetch`, under a timeout. Failures become {@link DeliveryError}s
 * saying whether a retry can help: network errors, timeouts, 408, 429 and 5xx can; other 4xx
 * cannot. Error messages name the status and the cause, never the URL (it is a secret).
 */
import { DeliveryError } from '../types.js';

export async function postJson(url: string, body: unknown, timeoutMs: number, headers: Record<string, string> = {}): Promise<string> {
  let res: Response;
  try {
    res = await fetch(url, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'user-agent': 'db-pool-otel', ...headers },
      body: JSON.stringify(body),
      signal: AbortSignal.timeout(timeoutMs),
      redirect: 'error',
    });
  } catch (err) {
    throw new DeliveryError(describeFetchError(err, timeoutMs), { cause: err });
  }
  let text = '';
  try {
    text = await res.text();
  } catch {
    // the status is what matters
  }
  if (res.ok) return text;
  const retryable = res.status === 408 || res.status === 429 || res.status >= 500;
  const retryAfter = parseRetryAfter(res.headers.get('retry-after'));
  const snippet = text.trim().replace(/\s+/g, ' ').slice(0, 200);
  throw new DeliveryError(`HTTP ${res.status}${res.statusText ? ` ${res.statusText}` : ''}${snippet ? `: ${snippet}` : ''}`, {
    permanent: !retryable,
    ...(retryAfter === undefined ? {} : { retryAfterMs: retryAfter }),
  });
}

function describeFetchError(err: unknown, timeoutMs: number): string {
  if (err instanceof Error && (err.name === 'TimeoutError' || err.name === 'AbortError')) return `no answer within ${timeoutMs} ms`;
  if (err instanceof Error) {
    const cause = err.cause instanceof Error ? err.cause : undefined;
    const code = (cause as { code?: unknown } | undefined)?.code;
    if (cause) return `${err.message} (${typeof code === 'string' && !cause.message.includes(code) ? `${code}: ` : ''}${cause.message})`;
    return err.message;
  }
  return String(err);
}

function parseRetryAfter(value: string | null): number | undefined {
  if (!value) return undefined;
  const seconds = Number(value);
  if (Number.isFinite(seconds) && seconds >= 0) return seconds * 1000;
  const at = Date.parse(value);
  return Number.isFinite(at) ? Math.max(0, at - Date.now()) : undefined;
}
