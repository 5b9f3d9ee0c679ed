/**
 * Pool configs from a YAML or JSON file, with `${VAR}` / `${VAR:-default}` taken from the
 * environment so passwords stay out of files. Interpolation happens after parsing, on string values
 * only, so an environment value can never change the file's structure.
 *
 * A config file is untrusted text that may hold a password: errors name the file, line, column and
 * problem but never quote the text; nothing goes to `process.emitWarning`. Files are capped at
 * {@link MAX_CONFIG_FILE_BYTES} and nesting at {@link MAX_CONFIG_DEPTH}, and an unchanged file is
 * parsed once (the parse is kept per path and compared by content on each load).
 */
import { closeSync, fstatSync, openSync, readSync } from 'node:fs';
import { resolve } from 'node:path';
import type { ErrorCode, Node as YamlNode } from 'yaml';

/** The `yaml` package, imported the first time a YAML file is read (not when the package loads). */
type Yaml = typeof import('yaml');
let yamlModule: Promise<Yaml> | undefined;
const loadYaml = (): Promise<Yaml> => (yamlModule ??= import('yaml'));
import { isPoolId, resolvePoolConfig, shownValue, type ResolvedPoolConfig } from './config.js';
import { InvalidConfigError, type ConfigIssue } from '../errors.js';
import { safeKey, setOwn } from '../util/object-utils.js';

/** Largest config file read (1 MiB): far above any real pool list, small enough to parse in well under a second. */
export const MAX_CONFIG_FILE_BYTES = 1024 * 1024;
/** Deepest nesting of mappings and lists in a config file (a pool config needs 5). */
export const MAX_CONFIG_DEPTH = 32;
/** Deepest nesting of `${A:-${B:-...}}` defaults. */
const MAX_REFERENCE_DEPTH = 8;
/** Values visited after aliases are expanded; beyond this the file is refused rather than walked. */
const MAX_CONFIG_VALUES = 2_000_000;
/** Parsed files kept (per absolute path). */
const CACHE_ENTRIES = 16;

/** Settings that are numbers: an interpolated `"20"` becomes 20 for these. */
const NUMERIC_KEYS = new Set([
  'port',
  'min',
  'max',
  'acquireTimeoutMs',
  'queryTimeoutMs',
  'idleTimeoutMs',
  'maxLifetimeMs',
  'maxWaitingClients',
  'leakDetectionThresholdMs',
  'leakReclaimMs',
  'slowQueryThresholdMs',
  'metricsWindowMs',
]);
const BOOLEAN_KEYS = new Set(['validateOnBorrow', 'ssl', 'rejectUnauthorized', 'transactionPooling']);
const VAR_NAME = /[A-Za-z_][A-Za-z0-9_]*/y;

/** The parsed file: pools by id, each still to be validated. */
export interface ConfigFileContents {
  /** Pools by id; an object without prototype, so only the file's own pool ids are in it. */
  pools: Record<string, unknown>;
}

/**
 * Reads and interpolates a config file. Throws {@link InvalidConfigError} for a missing, unreadable,
 * oversized, unparsable or too deeply nested file, a missing `pools` map, an invalid pool id, a
 * malformed `${...}`, or an unset variable without default. With `only`, just that pool is
 * interpolated; the others are returned as parsed (frozen: the parse is shared between loads).
 *
 * @example
 * // pools.yaml:  pools: { main: { connection: { connectionString: "${DATABASE_URL}" }, max: 20 } }
 * const { pools } = loadConfigFile('pools.yaml');
 */
export async function loadConfigFile(file: string, options: { env?: NodeJS.ProcessEnv; only?: string } = {}): Promise<ConfigFileContents> {
  const env = options.env ?? process.env;
  const doc = await parsedFile(file);
  if (doc === null || typeof doc !== 'object' || Array.isArray(doc)) {
    throw new InvalidConfigError([{ path: '(file)', value: file, rule: 'must be a mapping with a "pools" key' }], file);
  }
  const rawPools = Object.hasOwn(doc, 'pools') ? (doc as Record<string, unknown>).pools : undefined;
  if (rawPools === null || typeof rawPools !== 'object' || Array.isArray(rawPools)) {
    throw new InvalidConfigError([{ path: 'pools', value: shownValue(['pools'], rawPools), rule: 'must be a mapping of pool id to pool settings' }], file);
  }
  // No prototype: `pools.toString` or `'constructor' in pools` must not find Object.prototype.
  const pools = Object.create(null) as Record<string, unknown>;
  const issues: ConfigIssue[] = [];
  for (const [id, raw] of Object.entries(rawPools)) {
    if (!isPoolId(id)) {
      issues.push({
        path: `pools.${safeKey(id)}`,
        value: undefined,
        rule: 'is not a valid pool id: 1-64 characters of letters, digits, "_", ".", ":" or "-", starting with a letter or digit',
      });
      continue;
    }
    // Each pool is interpolated on its own: an unset variable in one pool does not block the others.
    setOwn(pools, id, options.only !== undefined && id !== options.only ? raw : interpolate(raw, ['pools', id], env, issues));
  }
  if (issues.length > 0) throw new InvalidConfigError(issues, file);
  return { pools };
}

// ---------------------------------------------------------------- reading, parsing, caching

interface CachedParse {
  bytes: Buffer;
  doc?: unknown;
  issues?: ConfigIssue[];
}

const parsed = new Map<string, CachedParse>();

/**
 * The parsed (deeply frozen) document of `file`. Parsing is the expensive part (the file is read
 * every time, ≤ 1 MiB): an unchanged file is parsed once. The content, not the modification time,
 * decides "unchanged": two writes within the file system's timestamp granularity can leave size and
 * mtime equal.
 */
async function parsedFile(file: string): Promise<unknown> {
  const bytes = readCapped(file);
  const key = resolve(file);
  let entry = parsed.get(key);
  if (!entry?.bytes.equals(bytes)) entry = parse(file, bytes, file.endsWith('.json') ? undefined : await loadYaml());
  // Least recently used first in the map: a hit moves to the end, a full cache drops the first.
  parsed.delete(key);
  if (parsed.size >= CACHE_ENTRIES) parsed.delete(parsed.keys().next().value!);
  parsed.set(key, entry);
  if (entry.issues) throw new InvalidConfigError([...entry.issues], file);
  return entry.doc;
}

function readCapped(file: string): Buffer {
  let fd: number | undefined;
  try {
    fd = openSync(file, 'r');
    const st = fstatSync(fd);
    if (st.isFile() && st.size > MAX_CONFIG_FILE_BYTES) throw tooLarge(file, `is ${st.size} bytes`);
    // Read to the end but at most one byte past the cap: a device or a file growing meanwhile cannot make this read forever.
    const buf = Buffer.allocUnsafe(MAX_CONFIG_FILE_BYTES + 1);
    let length = 0;
    for (let n = -1; n !== 0 && length < buf.length; length += n) n = readSync(fd, buf, length, buf.length - length, null);
    if (length > MAX_CONFIG_FILE_BYTES) throw tooLarge(file, `is over ${MAX_CONFIG_FILE_BYTES} bytes`);
    // A copy of just the content: the cache keeps it, not the 1 MiB buffer.
    return Buffer.from(buf.subarray(0, length));
  } catch (err) {
    if (err instanceof InvalidConfigError) throw err;
    const code = (err as { code?: string }).code;
    throw new InvalidConfigError([
      { path: 'configFile', value: file, rule: code === 'ENOENT' ? 'file does not exist' : `cannot be read (${code ?? 'error'})` },
    ]);
  } finally {
    if (fd !== undefined) closeSync(fd);
  }
}

function tooLarge(file: string, size: string): InvalidConfigError {
  return new InvalidConfigError([{ path: 'configFile', value: file, rule: `${size}; config files are limited to ${MAX_CONFIG_FILE_BYTES} bytes (1 MiB)` }]);
}

function parse(file: string, bytes: Buffer, yaml: Yaml | undefined): CachedParse {
  const json = yaml === undefined;
  const text = bytes.toString('utf8');
  try {
    const result = yaml === undefined ? parseJson(text) : parseYaml(text, yaml);
    if (Array.isArray(result)) return { bytes, issues: result.map((rule) => ({ path: 'configFile', value: file, rule })) };
    const tooDeep = checkAndFreeze(result.doc);
    if (tooDeep) return { bytes, issues: [{ path: 'configFile', value: file, rule: tooDeep }] };
    return { bytes, doc: result.doc };
  } catch (err) {
    // A parser that recursed too deep, or an alias bomb: refused, never the parser's own words (they may quote the file).
    const rule =
      err instanceof RangeError
        ? 'is nested too deeply to be read'
        : `could not be read as ${json ? 'JSON' : 'YAML'} (${err instanceof Error ? err.name : 'error'})`;
    return { bytes, issues: [{ path: 'configFile', value: file, rule }] };
  }
}

/** The document, or the problems (as issue rules). */
type ParseResult = { doc: unknown } | string[];

function parseJson(text: string): ParseResult {
  const body = text.startsWith('\uFEFF') ? text.slice(1) : text;
  try {
    return { doc: JSON.parse(body) };
  } catch {
    // V8's message quotes the text around the error; find the place ourselves instead.
    const found = jsonSyntaxError(body);
    const at = found ? ` at ${where(body, found.at)}` : '';
    return [`is not valid JSON: ${found?.problem ?? 'syntax error'}${at}`];
  }
}

const YAML_PROBLEMS: Partial<Record<ErrorCode, string>> = {
  TAG_RESOLVE_FAILED: 'a tag this loader does not know (custom tags such as !secret are not supported: use ${VAR} for secrets)',
  BAD_COLLECTION_TYPE: 'a tag that does not fit its value',
  DUPLICATE_KEY: 'a key that appears twice in one mapping',
  MULTIPLE_DOCS: 'more than one document (only one is read)',
  RESOURCE_EXHAUSTION: `nesting deeper than ${MAX_CONFIG_DEPTH} levels`,
  TAB_AS_INDENT: 'a tab used for indentation',
  BAD_INDENT: 'bad indentation',
  MISSING_CHAR: 'a missing character (a closing quote or bracket, a ":" or ",", or a space after ":")',
  UNEXPECTED_TOKEN: 'something unexpected (an unclosed or stray bracket, comma or quote)',
  MULTILINE_IMPLICIT_KEY: 'a key that spans lines (often an unclosed quote or bracket above)',
  BAD_DQ_ESCAPE: 'an invalid escape sequence in a double-quoted string',
  BAD_SCALAR_START: 'a plain value starting with a reserved character (@ or `): quote it',
  BAD_ALIAS: 'an empty or ambiguous anchor or alias name',
  ALIAS_PROPS: 'an alias with a tag or anchor',
  BLOCK_AS_IMPLICIT_KEY: 'a block collection used as a key',
  BLOCK_IN_FLOW: 'a block collection inside a flow collection',
  NON_STRING_KEY: 'a key that is not a plain value',
  MULTIPLE_ANCHORS: 'a node with two anchors',
  MULTIPLE_TAGS: 'a node with two tags',
  KEY_OVER_1024_CHARS: 'a key longer than 1024 characters',
};
const MAX_REPORTED = 10;

function parseYaml(text: string, yaml: Yaml): ParseResult {
  const lines = new yaml.LineCounter();
  // Duplicate keys are checked below in linear time (yaml's own check is quadratic in the keys of a mapping).
  const doc = yaml.parseDocument(text, { lineCounter: lines, prettyErrors: false, uniqueKeys: false });
  const at = (offset: number) => {
    const { line, col } = lines.linePos(offset);
    return `line ${line}, column ${col}`;
  };
  // Warnings (an unknown tag, a bad directive) are errors here: yaml would drop the tag and go on.
  const problems = [...doc.errors, ...doc.warnings]
    .sort((a, b) => a.pos[0] - b.pos[0])
    .map((e) => `is not valid YAML: ${YAML_PROBLEMS[e.code] ?? `a syntax error (${e.code})`} at ${at(e.pos[0])}`);
  if (problems.length === 0) problems.push(...checkYamlTree(doc.contents, at, yaml));
  if (problems.length > 0) return problems.slice(0, MAX_REPORTED);
  return { doc: doc.toJS({ maxAliasCount: 100 }) };
}

/**
 * Walks the YAML tree without recursion: keys unique (as strings, since that is what they become)
 * and plain, nesting within the limit, every alias after its anchor (yaml would throw a message
 * quoting the alias name).
 */
function checkYamlTree(root: unknown, at: (offset: number) => string, yaml: Yaml): string[] {
  const { isAlias, isMap, isPair, isScalar, isSeq } = yaml;
  const problems: string[] = [];
  const anchors = new Set<string>();
  const stack: [unknown, number][] = [[root, 0]];
  const place = (node: unknown) => at((node as { range?: [number] }).range?.[0] ?? 0);
  while (stack.length > 0 && problems.length < MAX_REPORTED) {
    const [node, depth] = stack.pop()!;
    if (node === null || typeof node !== 'object') continue;
    const anchor = (node as { anchor?: string }).anchor;
    if (anchor) anchors.add(anchor);
    if (isAlias(node)) {
      if (!anchors.has(node.source)) problems.push(`is not valid YAML: an alias (*name) before or without its anchor (&name) at ${place(node)}`);
      continue;
    }
    if (!isMap(node) && !isSeq(node)) continue;
    if (depth >= MAX_CONFIG_DEPTH) {
      problems.push(`is nested deeper than ${MAX_CONFIG_DEPTH} levels at ${place(node)}`);
      continue;
    }
    const keys = new Set<string>();
    const children: unknown[] = [];
    for (const item of node.items as unknown[]) {
      if (!isPair(item)) {
        children.push(item);
        continue;
      }
      if (isMap(node)) {
        if (!isScalar(item.key) && item.key !== null) {
          problems.push(`is not valid YAML here: a key that is not a plain value at ${place(item.key)}`);
          continue;
        }
        const name = String(isScalar(item.key) ? item.key.value : null);
        if (keys.has(name)) problems.push(`is not valid YAML: a key that appears twice in one mapping at ${place(item.key)}`);
        keys.add(name);
      } else {
        children.push(item.key);
      }
      children.push(item.value);
    }
    // Pushed in reverse so that nodes are visited in document order (anchors before their aliases).
    for (let i = children.length - 1; i >= 0; i--) stack.push([children[i] as YamlNode, depth + 1]);
  }
  return problems;
}

/**
 * Deep-freezes the parsed document (it is shared by every load of the file) and checks its depth
 * without recursion; a cycle (an alias inside its own anchor) counts as too deep. The problem, or
 * undefined.
 */
function checkAndFreeze(doc: unknown): string | undefined {
  const stack: [unknown, number, string][] = [[doc, 0, '']];
  let visited = 0;
  while (stack.length > 0) {
    const [value, depth, path] = stack.pop()!;
    if (value === null || typeof value !== 'object') continue;
    if (depth >= MAX_CONFIG_DEPTH) return `is nested deeper than ${MAX_CONFIG_DEPTH} levels (under ${path || '(top)'})`;
    if (++visited > MAX_CONFIG_VALUES) return `holds more than ${MAX_CONFIG_VALUES} values once its aliases are expanded`;
    Object.freeze(value);
    // The path names only the first levels: keys are file text, shown only when plainly harmless.
    for (const [k, v] of Object.entries(value)) stack.push([v, depth + 1, depth < 2 ? (path ? `${path}.${safeKey(k)}` : safeKey(k)) : path]);
  }
  return undefined;
}

function where(text: string, offset: number): string {
  let line = 1;
  let lineStart = 0;
  for (let i = text.indexOf('\n'); i !== -1 && i < offset; i = text.indexOf('\n', i + 1)) {
    line++;
    lineStart = i + 1;
  }
  return `line ${line}, column ${offset - lineStart + 1}`;
}

/**
 * Where and why `text` is not JSON (RFC 8259), found without recursion; undefined when it is valid.
 * Only called after `JSON.parse` failed, to report a place instead of V8's message.
 */
function jsonSyntaxError(text: string): { at: number; problem: string } | undefined {
  const n = text.length;
  const stack: string[] = [];
  type State = 'value' | 'firstValue' | 'key' | 'firstKey' | 'colon' | 'after';
  let state: State = 'value';
  let i = 0;
  const fail = (problem: string, at = i) => ({ at, problem });
  const number = /-?(?:0|[1-9]\d*)(?:\.\d+)?(?:[eE][+-]?\d+)?/y;
  const scanString = (): boolean => {
    const start = i++;
    while (i < n) {
      const c = text.charCodeAt(i);
      if (c === 0x22) {
        i++;
        return true;
      }
      if (c < 0x20) return false;
      if (c === 0x5c) {
        const e = text[i + 1];
        if (e === 'u') {
          if (!/^[0-9A-Fa-f]{4}$/.test(text.slice(i + 2, i + 6))) return false;
          i += 6;
          continue;
        }
        if (e === undefined || !'"\\/bfnrt'.includes(e)) return false;
        i += 2;
        continue;
      }
      i++;
    }
    i = start;
    return false;
  };
  for (;;) {
    while (i < n && ' \t\r\n'.includes(text[i]!)) i++;
    if (i >= n) return state === 'after' && stack.length === 0 ? undefined : fail('unexpected end of the file', n);
    const c = text[i]!;
    if (state === 'after') {
      if (stack.length === 0) return fail('more text after the end of the document');
      const open = stack[stack.length - 1];
      if (c === ',') {
        state = open === '{' ? 'key' : 'value';
        i++;
      } else if ((c === '}' && open === '{') || (c === ']' && open === '[')) {
        stack.pop();
        i++;
      } else {
        return fail(`expected "," or "${open === '{' ? '}' : ']'}"`);
      }
      continue;
    }
    if (state === 'colon') {
      if (c !== ':') return fail('expected ":" after a key');
      state = 'value';
      i++;
      continue;
    }
    if (state === 'key' || state === 'firstKey') {
      if (c === '}' && state === 'firstKey') {
        stack.pop();
        state = 'after';
        i++;
        continue;
      }
      if (c !== '"') return fail('expected a key in double quotes');
      const start = i;
      if (!scanString()) return fail('a string that is not closed or holds a control character or bad escape', start);
      state = 'colon';
      continue;
    }
    // A value.
    if (c === ']' && state === 'firstValue') {
      stack.pop();
      state = 'after';
      i++;
    } else if (c === '{' || c === '[') {
      stack.push(c);
      state = c === '{' ? 'firstKey' : 'firstValue';
      i++;
    } else if (c === '"') {
      const start = i;
      if (!scanString()) return fail('a string that is not closed or holds a control character or bad escape', start);
      state = 'after';
    } else if (text.startsWith('true', i) || text.startsWith('null', i)) {
      i += 4;
      state = 'after';
    } else if (text.startsWith('false', i)) {
      i += 5;
      state = 'after';
    } else {
      number.lastIndex = i;
      if (!number.test(text)) return fail('expected a value (a string in double quotes, a number, true, false, null, an object or an array)');
      i = number.lastIndex;
      state = 'after';
    }
  }
}

// ---------------------------------------------------------------- ${VAR} interpolation

/** A malformed or too deeply nested `${...}`: the whole value is refused. */
class ReferenceSyntaxError extends Error {}

function interpolate(value: unknown, path: string[], env: NodeJS.ProcessEnv, issues: ConfigIssue[]): unknown {
  if (Array.isArray(value)) return value.map((v, i) => interpolate(v, [...path, String(i)], env, issues));
  if (value !== null && typeof value === 'object') {
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(value)) setOwn(out, k, interpolate(v, [...path, k], env, issues));
    return out;
  }
  if (typeof value !== 'string' || !value.includes('${')) return value;
  const at = path.map(safeKey).join('.');
  let replaced: string;
  try {
    const found: ConfigIssue[] = [];
    replaced = expand(value, 0, 0, env, at, found).text;
    issues.push(...found);
  } catch (err) {
    if (!(err instanceof ReferenceSyntaxError)) throw err;
    issues.push({ path: at, value: shownValue(path, value), rule: err.message });
    return value;
  }
  const key = path[path.length - 1] ?? '';
  if (NUMERIC_KEYS.has(key) && /^-?\d+(\.\d+)?$/.test(replaced.trim())) return Number(replaced);
  if (BOOLEAN_KEYS.has(key) && /^(true|false)$/i.test(replaced.trim())) return replaced.trim().toLowerCase() === 'true';
  return replaced;
}

/**
 * Expands `s` from `start`: `${NAME}` and `${NAME:-default}`, where a default may itself hold
 * references (`${A:-${B:-x}}`). Inside a default (`depth` > 0) it stops at the `}` that closes it.
 * A `$` not followed by `{` and a name stays as written; `${NAME` followed by anything else than
 * `}` or `:-` is refused rather than guessed at. Unset variables are added to `issues` only when
 * their value is used.
 */
function expand(s: string, start: number, depth: number, env: NodeJS.ProcessEnv, where: string, issues: ConfigIssue[]): { text: string; end: number } {
  let out = '';
  let i = start;
  while (i < s.length) {
    if (depth > 0 && s[i] === '}') return { text: out, end: i };
    if (!s.startsWith('${', i)) {
      out += s[i];
      i++;
      continue;
    }
    VAR_NAME.lastIndex = i + 2;
    const name = VAR_NAME.exec(s)?.[0];
    if (name === undefined) {
      out += '${';
      i += 2;
      continue;
    }
    const j = i + 2 + name.length;
    const set = env[name] !== undefined && env[name] !== '';
    if (s[j] === '}') {
      if (set) out += env[name];
      else issues.push({ path: where, value: `\${${name}}`, rule: `uses environment variable ${name}, which is not set` });
      i = j + 1;
      continue;
    }
    if (!s.startsWith(':-', j)) {
      throw new ReferenceSyntaxError(`has a malformed reference \${${name}...: write \${${name}} or \${${name}:-default}`);
    }
    if (depth + 1 > MAX_REFERENCE_DEPTH) throw new ReferenceSyntaxError(`has \${...:-...} defaults nested more than ${MAX_REFERENCE_DEPTH} deep`);
    const inner: ConfigIssue[] = [];
    const fallback = expand(s, j + 2, depth + 1, env, where, inner);
    if (fallback.end >= s.length) throw new ReferenceSyntaxError(`has \${${name}:-... without its closing "}"`);
    if (set) {
      out += env[name];
    } else {
      out += fallback.text;
      issues.push(...inner);
    }
    i = fallback.end + 1;
  }
  return { text: out, end: i };
}

/** `createPoolFromConfig`: one pool's entry of the config file, validated (INVALID_CONFIG names what is missing). */
export async function poolFromConfigFile(file: string | undefined, poolId: string): Promise<ResolvedPoolConfig> {
  if (!file) {
    throw new InvalidConfigError([{ path: 'configFile', value: undefined, rule: 'no config file: pass configFile to DatabasePool or set DB_POOL_CONFIG' }]);
  }
  const { pools } = await loadConfigFile(file, { only: poolId });
  if (!Object.hasOwn(pools, poolId)) {
    throw new InvalidConfigError([
      { path: `pools.${poolId}`, value: undefined, rule: `is not defined in ${file} (it has: ${Object.keys(pools).join(', ') || 'no pools'})` },
    ]);
  }
  return resolvePoolConfig(pools[poolId], poolId, `pools.${poolId}`);
}
