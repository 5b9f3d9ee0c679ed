/**
 * Operation and collection of a statement (`db.operation.name`, `db.collection.name`) and the
 * summary made of them (`db.query.summary`).
 */
import { isPunct } from './fingerprint.js';
import { C_DQUOTE, PUNCT, QIDENT, WORD, type Token } from './scanner.js';

const SUMMARY_MAX = 255;

// ---------------------------------------------------------------------------
// Operation and collection
// ---------------------------------------------------------------------------

function isWord(tok: Token | undefined, upper: string): boolean {
  return tok !== undefined && tok.t === WORD && tok.s.length === upper.length && tok.s.toUpperCase() === upper;
}

/** Identifier text with quotes removed (`"My Table"` → `My Table`, `U&"x"` → `x`). */
function identText(tok: Token | undefined): string | undefined {
  if (tok === undefined) return undefined;
  if (tok.t === WORD) return tok.s;
  if (tok.t !== QIDENT) return undefined;
  let s = tok.s;
  if (s.charCodeAt(0) !== C_DQUOTE) s = s.slice(2); // U&"..."
  s = s.length >= 2 && s.endsWith('"') ? s.slice(1, -1) : s.slice(1);
  return s.replaceAll('""', '"');
}

interface NameAt {
  name: string;
  next: number;
}

/** Reads a possibly schema-qualified name (`a`, `s.a`, `"S"."A"`) at `i`. */
function readName(tokens: readonly Token[], i: number): NameAt | undefined {
  const first = identText(tokens[i]);
  if (first === undefined) return undefined;
  let name = first;
  let j = i + 1;
  while (isPunct(tokens[j], '.')) {
    const part = identText(tokens[j + 1]);
    if (part === undefined) break;
    name += `.${part}`;
    j += 2;
  }
  return { name, next: j };
}

function skipWord(tokens: readonly Token[], i: number, upper: string): number {
  return isWord(tokens[i], upper) ? i + 1 : i;
}

/** Skips `IF EXISTS` / `IF NOT EXISTS`. */
function skipIfExists(tokens: readonly Token[], i: number): number {
  if (!isWord(tokens[i], 'IF')) return i;
  let j = skipWord(tokens, i + 1, 'NOT');
  j = skipWord(tokens, j, 'EXISTS');
  return j;
}

/** The table of `SELECT … FROM x`: the first FROM at the SELECT's own nesting level. */
function selectCollection(tokens: readonly Token[], i: number): string | undefined {
  let depth = 0;
  for (let j = i + 1; j < tokens.length; j++) {
    const tok = tokens[j] as Token;
    if (tok.t === PUNCT) {
      if (tok.s === '(') depth++;
      else if (tok.s === ')') {
        if (--depth < 0) return undefined;
      } else if (tok.s === ';' && depth === 0) return undefined;
      continue;
    }
    if (depth !== 0 || !isWord(tok, 'FROM') || isWord(tokens[j - 1], 'DISTINCT')) continue; // `IS DISTINCT FROM`
    const k = skipWord(tokens, j + 1, 'ONLY');
    if (isWord(tokens[k], 'LATERAL')) return undefined;
    const at = readName(tokens, k);
    // `FROM (subquery)` has no name; `FROM fn(...)` is a function, not a table.
    if (at === undefined || isPunct(tokens[at.next], '(')) return undefined;
    return at.name;
  }
  return undefined;
}

/** Collection of the statement whose keyword token is at `i` (already upper-cased as `op`). */
export function collectionOf(tokens: readonly Token[], i: number, op: string): string | undefined {
  let j = i + 1;
  switch (op) {
    case 'SELECT':
      return selectCollection(tokens, i);
    case 'INSERT':
      if (!isWord(tokens[j], 'INTO')) return undefined;
      return readName(tokens, j + 1)?.name;
    case 'UPDATE':
      return readName(tokens, skipWord(tokens, j, 'ONLY'))?.name;
    case 'DELETE':
    case 'MERGE': {
      if (!isWord(tokens[j], op === 'DELETE' ? 'FROM' : 'INTO')) return undefined;
      return readName(tokens, skipWord(tokens, j + 1, 'ONLY'))?.name;
    }
    case 'TRUNCATE':
    case 'TABLE':
      if (op === 'TRUNCATE') j = skipWord(tokens, j, 'TABLE');
      return readName(tokens, skipWord(tokens, j, 'ONLY'))?.name;
    case 'COPY':
      return readName(tokens, j)?.name; // `COPY (query) TO` → undefined
    case 'CREATE':
      // CREATE [OR REPLACE] [GLOBAL|LOCAL] [TEMP|TEMPORARY|UNLOGGED|FOREIGN] TABLE [IF NOT EXISTS] x
      while (j < tokens.length) {
        const tok = tokens[j] as Token;
        if (tok.t !== WORD) return undefined;
        const w = tok.s.toUpperCase();
        if (w === 'TABLE') break;
        if (!CREATE_TABLE_MODIFIERS.has(w)) return undefined;
        j++;
      }
      return readName(tokens, skipIfExists(tokens, j + 1))?.name;
    case 'DROP':
    case 'ALTER':
      if (!isWord(tokens[j], 'TABLE')) return undefined;
      j = skipIfExists(tokens, j + 1);
      if (op === 'ALTER') j = skipWord(tokens, j, 'ONLY');
      return readName(tokens, j)?.name;
    default:
      return undefined;
  }
}

const CREATE_TABLE_MODIFIERS = new Set(['OR', 'REPLACE', 'GLOBAL', 'LOCAL', 'TEMP', 'TEMPORARY', 'UNLOGGED', 'FOREIGN']);

/** Statement keywords that can follow the CTE list of a WITH query. */
const WITH_MAIN = new Set(['SELECT', 'INSERT', 'UPDATE', 'DELETE', 'MERGE', 'VALUES', 'TABLE']);

/**
 * Index of the main statement keyword after `WITH [RECURSIVE] a AS (…), b AS (…)`,
 * found by walking the top nesting level: each CTE name is skipped, bodies are
 * parenthesised, so the first top-level statement keyword is the main one.
 */
export function withMainIndex(tokens: readonly Token[], i: number): number {
  let j = skipWord(tokens, i + 1, 'RECURSIVE');
  let depth = 0;
  let expectName = true;
  for (; j < tokens.length; j++) {
    const tok = tokens[j] as Token;
    if (depth === 0 && expectName && (tok.t === WORD || tok.t === QIDENT)) {
      expectName = false;
      continue;
    }
    if (tok.t === PUNCT) {
      if (tok.s === '(') depth++;
      else if (tok.s === ')') {
        if (--depth < 0) return -1;
      } else if (depth === 0) {
        if (tok.s === ',') expectName = true;
        else if (tok.s === ';') return -1;
      }
    } else if (depth === 0 && tok.t === WORD && WITH_MAIN.has(tok.s.toUpperCase())) {
      return j;
    }
  }
  return -1;
}

export function truncateSummary(s: string): string {
  if (s.length <= SUMMARY_MAX) return s;
  let cut = SUMMARY_MAX;
  const last = s.charCodeAt(cut - 1);
  if (last >= 0xd800 && last <= 0xdbff) cut--; // do not split a surrogate pair
  return s.slice(0, cut);
}
