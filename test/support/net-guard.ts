/**
 * For property tests that feed generated host names and URLs to the library: name lookups are
 * answered in process (loopback names resolve to 127.0.0.1, everything else is ENOTFOUND), so no
 * DNS query leaves the machine whatever a generator produces; generated hosts are also mapped to
 * loopback or `.invalid` before use ({@link safeHost}).
 */
import dns from 'node:dns';

export function guardLookups(): () => void {
  const original = dns.lookup;
  const patched = ((hostname: string, options: unknown, callback?: unknown) => {
    const cb = (typeof options === 'function' ? options : callback) as (err: NodeJS.ErrnoException | null, address?: unknown, family?: number) => void;
    const all = typeof options === 'object' && options !== null && (options as { all?: boolean }).all === true;
    if (hostname === 'localhost' || /^127\.\d+\.\d+\.\d+$/.test(hostname)) {
      process.nextTick(() => (all ? cb(null, [{ address: '127.0.0.1', family: 4 }]) : cb(null, '127.0.0.1', 4)));
    } else {
      const err: NodeJS.ErrnoException = new Error(`getaddrinfo ENOTFOUND ${hostname}`);
      err.code = 'ENOTFOUND';
      err.syscall = 'getaddrinfo';
      process.nextTick(cb, err);
    }
    return {};
  }) as unknown as typeof dns.lookup;
  (dns as { lookup: typeof dns.lookup }).lookup = patched;
  return () => {
    if (dns.lookup === patched) (dns as { lookup: typeof dns.lookup }).lookup = original;
  };
}

/** A generated host made safe: loopback stays, anything else becomes a `.invalid` name. */
export function safeHost(host: string): string {
  if (host === '127.0.0.1' || host === 'localhost') return host;
  return `h${Buffer.from(host).toString('hex').slice(0, 40)}.invalid`;
}

/**
 * A generated string made safe to use as a connection string: the host made safe (an empty one
 * becomes `.invalid` too, since pg would fall back to localhost:5432), a loopback host gets the
 * closed `port`, and host / port query parameters are dropped.
 */
export function safeUrl(s: string, port: number): string {
  try {
    const u = new URL(s);
    u.hostname = u.hostname ? safeHost(u.hostname) : 'nohost.invalid';
    if (u.hostname === '127.0.0.1' || u.hostname === 'localhost') u.port = String(port);
    for (const k of [...u.searchParams.keys()]) if (/host|port/i.test(k)) u.searchParams.delete(k);
    return u.toString();
  } catch {
    return s;
  }
}

/**
 * Deep copy of a generated config that can only ever reach a closed loopback `port` or a
 * `.invalid` name: every `host`, `connectionString` and valid `port` is rewritten.
 */
export function safeConfig(value: unknown, port: number): unknown {
  if (Array.isArray(value)) return value.map((v) => safeConfig(v, port));
  if (value === null || typeof value !== 'object') return value;
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(value)) {
    if (k === 'host' && typeof v === 'string') out[k] = safeHost(v);
    else if (k === 'connectionString' && typeof v === 'string') out[k] = safeUrl(v, port);
    else if (k === 'port' && typeof v === 'number' && Number.isInteger(v) && v >= 1 && v <= 65_535) out[k] = port;
    else out[k] = safeConfig(v, port);
  }
  // A loopback host without a port would reach 5432.
  if ((out.host === '127.0.0.1' || out.host === 'localhost') && out.port === undefined) out.port = port;
  return out;
}
