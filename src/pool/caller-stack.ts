/**
 * Where a caller took a connection: the stack of whoever called into the package, without the
 * package's own frames (leak reports and connection details show it).
 */

/** The package's `src/` directory: this module lives in `src/pool/`, the facade one level up. */
const OWN_DIR = ownDirectory();

/** The stack of whoever called into the package, without the package's own frames. */
export function callerStack(): string {
  const holder: { stack?: string } = {};
  Error.captureStackTrace(holder);
  const lines = (holder.stack ?? '').split('\n').slice(1);
  const outside = lines.filter((l) => !OWN_DIR || !l.includes(OWN_DIR));
  return (outside.length > 0 ? outside : lines).map((l) => l.trim()).join('\n');
}

function ownDirectory(): string | undefined {
  const frame = new Error().stack?.split('\n')[1] ?? '';
  const m = /\(?((?:file:\/\/)?\/[^():]+)\/[^/():]+\/[^/():]+:\d+:\d+\)?$/.exec(frame.trim());
  return m?.[1];
}
