/**
 * knex is an optional peer dependency, loaded at call time (never when this package is imported),
 * so applications without knex pay nothing and OpenTelemetry's knex instrumentation, registered
 * before the first `knexConfig()`, still sees knex's modules load.
 *
 * It is resolved the way the application resolves it: from the working directory first, then from
 * this package's own location (CommonJS build). Both builds compile this file, and `import.meta`
 * is not allowed in the CommonJS one, hence `__filename` when it exists.
 */
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { InvalidConfigError } from '../errors.js';

/** The members of knex's PostgreSQL client (`knex/lib/dialects/postgres`) the adapter uses. */
export interface KnexPgClientInternals {
  config: { pool?: Record<string, unknown>; acquireConnectionTimeout?: unknown; [key: string]: unknown };
  pool: unknown;
  _ownsPool?: boolean;
  version?: string;
  searchPath?: unknown;
  logger: { warn(message: string): void };
  initializePool(config?: unknown): void;
  acquireConnection(): Promise<unknown>;
  releaseConnection(connection: unknown): Promise<void>;
  destroy(callback?: (err?: unknown) => void): Promise<void>;
  checkVersion(connection: unknown): Promise<string>;
  setSchemaSearchPath(connection: unknown, searchPath?: unknown): Promise<unknown>;
  _stream(connection: unknown, obj: { sql?: string; bindings?: unknown[] }, stream: unknown, options?: unknown): Promise<unknown>;
}

export type KnexPgClientClass = new (config: Record<string, unknown>) => KnexPgClientInternals;

export interface KnexParts {
  /** knex's PostgreSQL client class (`client: 'pg'`). */
  PgClient: KnexPgClientClass;
  /** `knex.KnexTimeoutError`: the runner checks `instanceof` against it. */
  KnexTimeoutError: new (
    message?: string,
  ) => Error;
  /** `require` from knex's own directory (for `pg-query-stream`, as knex itself loads it). */
  require: NodeJS.Require;
  /** knex's lodash `uniqueId`, so our `__knexUid`s never collide with knex's own. */
  uniqueId: (prefix: string) => string;
}

let loaded: KnexParts | undefined;
let ownCounter = 0;

function searchBases(): string[] {
  const bases = [path.join(process.cwd(), 'index.js')];
  const entry = process.argv[1];
  if (entry && path.isAbsolute(entry)) bases.push(entry);
  const own = typeof __filename === 'string' ? __filename : fileOfThisModule();
  if (own) bases.push(own);
  return bases;
}

/** This module's file in the ES module build (no `__filename`, no `import.meta` in shared source). */
function fileOfThisModule(): string | undefined {
  const original = Error.prepareStackTrace;
  try {
    Error.prepareStackTrace = (_err, frames) => frames;
    const frames = new Error().stack as unknown as NodeJS.CallSite[] | undefined;
    const name = Array.isArray(frames) ? frames[0]?.getFileName() : undefined;
    if (!name) return undefined;
    return name.startsWith('file:') ? fileURLToPath(name) : path.isAbsolute(name) ? name : undefined;
  } catch {
    return undefined;
  } finally {
    Error.prepareStackTrace = original;
  }
}

/** Loads knex (once per process). Throws INVALID_CONFIG when knex 3.x cannot be found. */
export function loadKnex(): KnexParts {
  if (loaded) return loaded;
  const bases = searchBases();
  let main: string | undefined;
  for (const base of bases) {
    try {
      main = createRequire(base).resolve('knex');
      break;
    } catch {
      // try the next place
    }
  }
  if (!main) {
    throw new InvalidConfigError([
      {
        path: 'knex',
        value: undefined,
        rule: `knex 3.x is needed for knexConfig() but was not found from ${bases.map((b) => path.dirname(b)).join(' or ')} (npm install knex)`,
      },
    ]);
  }
  const req = createRequire(main);
  const version = String((req('./package.json') as { version?: unknown }).version ?? '');
  const major = Number(version.split('.')[0]);
  if (major !== 3) {
    throw new InvalidConfigError([{ path: 'knex', value: version, rule: `knexConfig() supports knex 3.x; found ${version} at ${path.dirname(main)}` }]);
  }
  const dialect = req('./lib/dialects/postgres/index.js') as KnexPgClientClass | { default: KnexPgClientClass };
  const timeout = req('./lib/util/timeout.js') as { KnexTimeoutError: new (message?: string) => Error };
  let uniqueId: (prefix: string) => string;
  try {
    uniqueId = req('lodash/uniqueId') as (prefix: string) => string;
  } catch {
    uniqueId = (prefix) => `${prefix}${++ownCounter}`;
  }
  loaded = {
    PgClient: typeof dialect === 'function' ? dialect : dialect.default,
    KnexTimeoutError: timeout.KnexTimeoutError,
    require: req,
    uniqueId,
  };
  return loaded;
}
