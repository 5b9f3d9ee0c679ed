/**
 * Pool configs from a YAML or JSON file, with `${VAR}` / `${VAR:-default}` taken from the
 * environment so passwords stay out of files. Interpolation happens after parsing, on string values
 * only, so an environment value can never change the file's structure.
 */
import { readFileSync } from 'node:fs';
import { parse as parseYaml } from 'yaml';
import { InvalidConfigError, type ConfigIssue } from './errors.js';

/** Settings that are numbers: an interpolated `"20"` becomes 20 for these. */
const NUMERIC_KEYS = new Set([
  'port', 'min', 'max', 'acquireTimeoutMs', 'queryTimeoutMs', 'idleTimeoutMs', 'maxLifetimeMs',
  'maxWaitingClients', 'leakDetectionThresholdMs', 'leakReclaimMs', 'slowQueryThresholdMs', 'metricsWindowMs',
]);
const BOOLEAN_KEYS = new Set(['validateOnBorrow', 'ssl', 'rejectUnauthorized', 'transactionPooling']);
const VAR = /\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}/g;

/** The parsed file: pools by id, each still to be validated. */
export interface ConfigFileContents {
  pools: Record<string, unknown>;
}

/**
 * Reads and interpolates a config file. Throws {@link InvalidConfigError} for a missing or
 * unparsable file, a missing `pools` map, or an unset variable without default. With `only`, just
 * that pool is interpolated (the others are returned as written).
 *
 * @example
 * // pools.yaml:  pools: { main: { connection: { connectionString: "${DATABASE_URL}" }, max: 20 } }
 * const { pools } = loadConfigFile('pools.yaml');
 */
export function loadConfigFile(
  file: string,
  options: { env?: NodeJS.ProcessEnv; only?: string } = {},
): ConfigFileContents {
  const env = options.env ?? process.env;
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    const code = (err as { code?: string }).code;
    throw new InvalidConfigError([{ path: 'configFile', value: file, rule: code === 'ENOENT' ? 'file does not exist' : `cannot be read (${code ?? String(err)})` }]);
  }
  let doc: unknown;
  try {
    doc = file.endsWith('.json') ? JSON.parse(text) : parseYaml(text);
  } catch (err) {
    throw new InvalidConfigError([{ path: 'configFile', value: file, rule: `is not valid ${file.endsWith('.json') ? 'JSON' : 'YAML'}: ${(err as Error).message.split('\n')[0]}` }]);
  }
  if (doc === null || typeof doc !== 'object' || Array.isArray(doc)) {
    throw new InvalidConfigError([{ path: '(file)', value: file, rule: 'must be a mapping with a "pools" key' }], file);
  }
  const rawPools = (doc as Record<string, unknown>).pools;
  if (rawPools === null || typeof rawPools !== 'object' || Array.isArray(rawPools)) {
    throw new InvalidConfigError([{ path: 'pools', value: rawPools, rule: 'must be a mapping of pool id to pool settings' }], file);
  }
  // Each pool is interpolated on its own: an unset variable in one pool does not block the others.
  const pools: Record<string, unknown> = {};
  const issues: ConfigIssue[] = [];
  for (const [id, raw] of Object.entries(rawPools)) {
    if (options.only !== undefined && id !== options.only) {
      pools[id] = raw;
      continue;
    }
    pools[id] = interpolate(raw, ['pools', id], env, issues);
  }
  if (issues.length > 0) throw new InvalidConfigError(issues, file);
  return { pools };
}

function interpolate(value: unknown, path: string[], env: NodeJS.ProcessEnv, issues: ConfigIssue[]): unknown {
  if (Array.isArray(value)) return value.map((v, i) => interpolate(v, [...path, String(i)], env, issues));
  if (value !== null && typeof value === 'object') {
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(value)) out[k] = interpolate(v, [...path, k], env, issues);
    return out;
  }
  if (typeof value !== 'string' || !value.includes('${')) return value;
  const replaced = value.replace(VAR, (whole, name: string, fallback: string | undefined) => {
    const v = env[name];
    if (v !== undefined && v !== '') return v;
    if (fallback !== undefined) return fallback;
    issues.push({ path: path.join('.'), value: whole, rule: `uses environment variable ${name}, which is not set` });
    return '';
  });
  const key = path[path.length - 1] ?? '';
  if (NUMERIC_KEYS.has(key) && /^-?\d+(\.\d+)?$/.test(replaced.trim())) return Number(replaced);
  if (BOOLEAN_KEYS.has(key) && /^(true|false)$/i.test(replaced.trim())) return replaced.trim().toLowerCase() === 'true';
  return replaced;
}
