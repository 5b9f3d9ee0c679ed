/**
 * SQL text helpers for telemetry and slow-query logging.
 *
 * Everything here runs on the query hot path, so the module is dependency-free
 * and built around one hand-written, single-pass scanner (linear time, no
 * regular expressions that could backtrack on hostile input). The scanner
 * follows the PostgreSQL lexer closely enough to tell literals from
 * identifiers, placeholders and comments; it is not a parser and never throws:
 * unterminated strings, quoted identifiers and comments simply run to the end
 * of the text.
 *
 * The cost of describing a statement is bounded whatever its size: the scanner
 * streams (no token array over the whole text), token objects are made only for
 * the first {@link DESCRIBE_MAX_CHARS} characters of sanitized text, and the
 * fingerprint is computed on the fly over at most {@link FINGERPRINT_MAX_TOKENS}
 * tokens; literal bodies and comments are skipped without allocating. A 10 MB
 * statement takes about 2 MB of transient heap and a few ms once the code is
 * optimised. `standard_conforming_strings = off` (backslash escapes in plain
 * strings) is an option of {@link describeQuery}.
 *
 * The outputs map onto the OpenTelemetry semantic conventions for database
 * clients: `db.query.text` (sanitized), `db.query.summary`,
 * `db.operation.name` and `db.collection.name`.
 */
import { isPunct, NORMALISER, render } from './fingerprint.js';
import { LITERAL, SCANNER, WORD, type Token } from './scanner.js';
import { collectionOf, truncateSummary, withMainIndex } from './summary.js';

const CACHE_MAX = 1000;
const CACHE_MAX_TEXT = 10_000;

/** What {@link describeQuery} knows about a statement. Instances are frozen and shared. */
export interface QueryDescription {
  /**
   * The SQL with every literal replaced by `?` and comments removed, whitespace
   * collapsed and trimmed. Placeholders (`$1`) and identifiers are kept as
   * written. Safe to export as `db.query.text`. At most {@link DESCRIBE_MAX_CHARS}
   * characters of it are kept: a longer one ends with
   * ` ...[truncated, <length of the statement> chars]`.
   */
  sanitized: string;
  /**
   * 16 lower-case hex chars (FNV-1a 64-bit of a normalised form of the
   * statement). Equal for the same statement with different literal values,
   * whitespace, keyword case or IN/VALUES list lengths. For a statement of more
   * than {@link FINGERPRINT_MAX_TOKENS} tokens, that of its first tokens, marked
   * as cut.
   */
  fingerprint: string;
  /** Upper-cased leading keyword (`SELECT`, `INSERT`, …); for `WITH` the main statement's keyword when found. */
  operation: string | undefined;
  /** The statement's main table as written (schema kept, quotes stripped), when there is one. */
  collection: string | undefined;
  /** `db.query.summary`: `"<operation> <collection>"`, just the operation, or `'unknown'`; at most 255 chars. */
  summary: string;
}
/**
 * A copy of `s` that shares no memory with the statement it was cut from (a
 * V8 slice of a long string keeps the whole string alive).
 */
function detach(s: string): string {
  return s.length < 13 ? s : ` ${s}`.slice(1);
}

/** The marker that ends the sanitized text of a truncated statement. */
function truncationMarker(length: number): string {
  // ASCII, so a sanitized ASCII statement stays a one-byte string in V8 (half the memory).
  return ` ...[truncated, ${length} chars]`;
}

/**
 * Describes one statement. Texts up to {@link DESCRIBE_MAX_CHARS} are scanned
 * into tokens as they always were. A longer text is scanned in one streaming
 * pass that keeps token objects only within the first DESCRIBE_MAX_CHARS
 * characters (a literal starting there is kept whole: it is just `?`), so the
 * heap used is bounded whatever the length. When a token had to be dropped the
 * statement is truncated: its sanitized text is the kept tokens plus
 * {@link truncationMarker}, its fingerprint the skeleton hash of the whole text
 * (see {@link skeletonStep}), its operation and collection those of the kept part.
 */
function analyse(text: string, plainBackslash: boolean): QueryDescription {
  const sc = SCANNER;
  const norm = NORMALISER;
  sc.reset(text, plainBackslash);
  norm.reset();
  const tokens: Token[] = [];
  // Room left in the sanitized text; it never runs out for a text no longer than the cap.
  let room = DESCRIBE_MAX_CHARS;
  let truncated = false;
  let budget = FINGERPRINT_MAX_TOKENS;
  let cut = false;
  while (sc.next()) {
    if (--budget < 0) {
      cut = true;
      truncated = true;
      break;
    }
    norm.token(text, sc.start, sc.end, sc.t);
    if (truncated) continue;
    const cost = (sc.sp && tokens.length > 0 ? 1 : 0) + (sc.t === LITERAL ? 1 : sc.end - sc.start);
    if (cost <= room) {
      room -= cost;
      tokens.push(sc.token());
    } else {
      truncated = true;
    }
  }
  const fingerprint = cut ? norm.finishCut() : norm.finish();
  sc.reset('', false);
  let sanitized = truncated ? render(tokens, truncationMarker(text.length)) : render(tokens);

  // First word, past any leading `(` (parenthesised set operations) or `;`.
  let i = 0;
  while (isPunct(tokens[i], '(') || isPunct(tokens[i], ';')) i++;
  let operation: string | undefined;
  let collection: string | undefined;
  const first = tokens[i];
  if (first !== undefined && first.t === WORD) {
    operation = first.s.toUpperCase();
    if (operation === 'WITH') {
      const m = withMainIndex(tokens, i);
      if (m >= 0) {
        i = m;
        operation = (tokens[m] as Token).s.toUpperCase();
      }
    }
    if (operation !== 'WITH') collection = collectionOf(tokens, i, operation);
  }
  if (text.length > DESCRIBE_MAX_CHARS) {
    // Nothing kept may pin the long text in memory.
    sanitized = detach(sanitized);
    if (operation !== undefined) operation = detach(operation);
    if (collection !== undefined) collection = detach(collection);
  }
  const summary = operation === undefined ? 'unknown' : truncateSummary(collection === undefined ? operation : `${operation} ${collection}`);
  return Object.freeze({ sanitized, fingerprint, operation, collection, summary });
}

// ---------------------------------------------------------------------------
// Public API (memoised)
// ---------------------------------------------------------------------------

/** How the server reads the statement. */
export interface DescribeQueryOptions {
  /**
   * The session's `standard_conforming_strings` (default `true`, PostgreSQL's
   * default). With `false` a backslash escapes the next character inside plain
   * `'…'` and `N'…'` strings, as the server then reads them, so `'it\'s'` is
   * one literal. `E'…'` strings take backslash escapes in both modes.
   */
  standardConformingStrings?: boolean | undefined;
}

/**
 * Texts longer than this (in UTF-16 code units) are described from their first
 * 16 KiB only, plus one streaming pass over the rest for the fingerprint: the
 * sanitized text ends with `...[truncated, <length> chars]`. 16 KiB holds any
 * statement written by hand or by an ORM in full (PostgreSQL itself keeps
 * 1 KiB of it in pg_stat_activity), keeps describing a statement of any size
 * to at most ~16 K token objects, and bounds what statement stats and the slow
 * log keep per entry.
 */
export const DESCRIBE_MAX_CHARS = 16_384;

/**
 * Tokens scanned for the fingerprint: past this many (50–100 KB of dense SQL) the scan
 * stops, so describing a statement costs a bounded time too (a few ms) however long it is. Such a
 * statement's fingerprint is that of its first tokens, with any value list cut there counted as
 * complete, marked as cut: bulk INSERTs into one table share it whatever their size, while any
 * difference in the first 16 384 tokens still separates two statements.
 */
export const FINGERPRINT_MAX_TOKENS = 16_384;

/**
 * Caps any SQL text kept in memory (statement stats, slow log) the way
 * {@link describeQuery} caps a long statement. Sanitized texts, which are
 * already capped, come back unchanged.
 */
export function capSqlText(text: string): string {
  if (text.length <= DESCRIBE_MAX_CHARS + SANITIZED_MARKER_MAX) return text;
  let cut = DESCRIBE_MAX_CHARS;
  const last = text.charCodeAt(cut - 1);
  if (last >= 0xd800 && last <= 0xdbff) cut--; // do not split a surrogate pair
  return detach(text.slice(0, cut) + truncationMarker(text.length));
}

/** Longest marker: ` ...[truncated, ` + 16 digits + ` chars]`, with room to spare. */
const SANITIZED_MARKER_MAX = 48;

interface CacheEntry {
  /** Description under standard_conforming_strings = on, once asked for. */
  standard: QueryDescription | undefined;
  /** Description under standard_conforming_strings = off, once asked for. */
  backslash: QueryDescription | undefined;
  /** Value of `insertions` when the entry was (re)inserted. */
  seq: number;
}

/**
 * Insertion-ordered Map used as an approximate LRU: the first key is the
 * oldest and is evicted when full. A hit is moved to the newest end only once
 * it has drifted into the older half, so hot statements stay cached while a
 * typical hit costs a single Map lookup (a delete + set on every hit would also
 * make V8 rehash the table constantly once it is full). The key is the text;
 * the entry holds one description per standard_conforming_strings mode.
 */
const cache = new Map<string, CacheEntry>();
let insertions = 0;

/**
 * Scans a SQL statement once and returns its sanitized text, fingerprint,
 * operation, collection and summary. Results for texts up to 10 000 chars are
 * memoised in a bounded LRU (1000 entries, oldest evicted), so repeated
 * statements cost one Map lookup. Texts longer than {@link DESCRIBE_MAX_CHARS}
 * are described from that prefix (see there), in bounded memory. Never throws:
 * unterminated strings, quoted identifiers and comments run to the end of the
 * text.
 *
 * Pass `{ standardConformingStrings: false }` for a session where that setting
 * is off (backslash escapes in plain strings); the default reads the text as
 * PostgreSQL does by default.
 *
 * @example
 * describeQuery("SELECT * FROM public.users WHERE id = 42 AND name = 'bob'");
 * // {
 * //   sanitized: 'SELECT * FROM public.users WHERE id = ? AND name = ?',
 * //   fingerprint: '…16 hex chars…',
 * //   operation: 'SELECT',
 * //   collection: 'public.users',
 * //   summary: 'SELECT public.users',
 * // }
 */
export function describeQuery(text: string, options?: DescribeQueryOptions): QueryDescription {
  if (typeof text !== 'string') text = text == null ? '' : String(text);
  // Without a backslash in it a text reads the same in both modes: share the standard result.
  const backslash = options?.standardConformingStrings === false && text.includes('\\');
  if (text.length > CACHE_MAX_TEXT) return analyse(text, backslash);
  const hit = cache.get(text);
  if (hit !== undefined) {
    if (insertions - hit.seq > CACHE_MAX / 2) {
      cache.delete(text);
      hit.seq = ++insertions;
      cache.set(text, hit);
    }
    const known = backslash ? hit.backslash : hit.standard;
    if (known !== undefined) return known;
    const value = analyse(text, backslash);
    if (backslash) hit.backslash = value;
    else hit.standard = value;
    return value;
  }
  const value = analyse(text, backslash);
  if (cache.size >= CACHE_MAX) {
    const oldest = cache.keys().next();
    if (oldest.done !== true) cache.delete(oldest.value);
  }
  cache.set(text, { standard: backslash ? undefined : value, backslash: backslash ? value : undefined, seq: ++insertions });
  return value;
}

/**
 * SQL with literals replaced by `?`, comments removed and whitespace collapsed;
 * suitable for `db.query.text` and logs. Same as `describeQuery(text).sanitized`.
 *
 * @example
 * sanitizeSql("select * from t where a = 'x' and b in (1, 2) and c = $1 -- hint");
 * // => 'select * from t where a = ? and b in (?, ?) and c = $1'
 */
export function sanitizeSql(text: string, options?: DescribeQueryOptions): string {
  return describeQuery(text, options).sanitized;
}

/**
 * 16-hex-char fingerprint that groups executions of the same statement
 * regardless of literal values, whitespace, keyword case and IN-list length.
 * Same as `describeQuery(text).fingerprint`.
 *
 * @example
 * fingerprintSql('SELECT * FROM t WHERE id IN (1, 2, 3)') ===
 *   fingerprintSql('select *  from t where id in ($1)'); // => true
 */
export function fingerprintSql(text: string, options?: DescribeQueryOptions): string {
  return describeQuery(text, options).fingerprint;
}
