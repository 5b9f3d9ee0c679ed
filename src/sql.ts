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

// ---------------------------------------------------------------------------
// Tokens
// ---------------------------------------------------------------------------

// Plain numeric constants rather than an enum: cheap, and fine under isolatedModules.
const WORD = 0; // keyword or unquoted identifier
const QIDENT = 1; // "quoted identifier" (or U&"...")
const LITERAL = 2; // any string / bit-string / dollar-quoted / numeric literal
const PARAM = 3; // $1, $2, …
const OP = 4; // operator run (`=`, `<>`, `::` is two PUNCT) or a lone `?`
const PUNCT = 5; // every other single character

interface Token {
  /** Token kind (one of the constants above). */
  readonly t: number;
  /** Text as it appears in the sanitized output (`?` for literals). */
  readonly s: string;
  /** Whitespace or a comment preceded the token. */
  readonly sp: boolean;
}

const SUMMARY_MAX = 255;
const CACHE_MAX = 1000;
const CACHE_MAX_TEXT = 10_000;

// Character codes used by the scanner.
const C_TAB = 9;
const C_LF = 10;
const C_CR = 13;
const C_SPACE = 32;
const C_DQUOTE = 34; // "
const C_DOLLAR = 36; // $
const C_AMP = 38; // &
const C_SQUOTE = 39; // '
const C_STAR = 42; // *
const C_PLUS = 43; // +
const C_MINUS = 45; // -
const C_DOT = 46; // .
const C_SLASH = 47; // /
const C_QMARK = 63; // ?
const C_BACKSLASH = 92; // \
const C_UNDERSCORE = 95; // _

function isSpace(c: number): boolean {
  return c === C_SPACE || (c >= C_TAB && c <= C_CR);
}

function isDigit(c: number): boolean {
  return c >= 48 && c <= 57;
}

function isHexDigit(c: number): boolean {
  return isDigit(c) || (c >= 65 && c <= 70) || (c >= 97 && c <= 102);
}

/** PostgreSQL treats every non-ASCII code unit as an identifier character. */
function isIdentStart(c: number): boolean {
  return (c >= 65 && c <= 90) || (c >= 97 && c <= 122) || c === C_UNDERSCORE || c >= 128;
}

function isIdentChar(c: number): boolean {
  return isIdentStart(c) || isDigit(c) || c === C_DOLLAR;
}

/** Characters that may form a PostgreSQL operator (`?` is kept apart, see scanner). */
function isOpChar(c: number): boolean {
  switch (c) {
    case 43: // +
    case 45: // -
    case 42: // *
    case 47: // /
    case 60: // <
    case 62: // >
    case 61: // =
    case 126: // ~
    case 33: // !
    case 64: // @
    case 35: // #
    case 37: // %
    case 94: // ^
    case 38: // &
    case 124: // |
    case 96: // `
      return true;
    default:
      return false;
  }
}

/** Operator characters that allow an operator to end in `+`/`-` (PostgreSQL lexer rule). */
function isSpecialOpChar(c: number): boolean {
  switch (c) {
    case 126: // ~
    case 33: // !
    case 64: // @
    case 35: // #
    case 94: // ^
    case 38: // &
    case 124: // |
    case 96: // `
    case 37: // %
      return true;
    default:
      return false;
  }
}

/**
 * Skips the body of a single-quoted string whose opening quote is just before
 * `i`; returns the index after the closing quote (or the text length when the
 * string is unterminated). `''` is an escaped quote; with `backslash` (E'..')
 * `\x` escapes the next character. Like PostgreSQL, a string continued after
 * whitespace containing a newline (`'a'\n'b'`) is one literal.
 */
function skipString(text: string, i: number, backslash: boolean): number {
  const n = text.length;
  for (;;) {
    if (backslash) {
      while (i < n) {
        const c = text.charCodeAt(i);
        if (c === C_SQUOTE) {
          if (text.charCodeAt(i + 1) === C_SQUOTE) {
            i += 2;
            continue;
          }
          break;
        }
        i += c === C_BACKSLASH ? 2 : 1;
      }
    } else {
      // Only quotes matter: let indexOf (vectorised) jump over the body, however long.
      for (;;) {
        const q = text.indexOf("'", i);
        if (q < 0) {
          i = n;
          break;
        }
        if (text.charCodeAt(q + 1) === C_SQUOTE) {
          i = q + 2;
          continue;
        }
        i = q;
        break;
      }
    }
    if (i >= n) return n;
    i++; // closing quote
    // Continuation: whitespace with at least one newline, then another quote.
    let j = i;
    let newline = false;
    while (j < n) {
      const c = text.charCodeAt(j);
      if (!isSpace(c)) break;
      if (c === C_LF || c === C_CR) newline = true;
      j++;
    }
    if (!newline || text.charCodeAt(j) !== C_SQUOTE) return i;
    i = j + 1;
  }
}

/** Skips a quoted identifier body (`""` escapes); returns the index after the closing quote. */
function skipQuotedIdent(text: string, i: number): number {
  const n = text.length;
  while (i < n) {
    if (text.charCodeAt(i) === C_DQUOTE) {
      if (text.charCodeAt(i + 1) === C_DQUOTE) {
        i += 2;
        continue;
      }
      return i + 1;
    }
    i++;
  }
  return n;
}

/** Skips a (possibly nested) block comment starting at `i` (at the slash); unterminated runs to the end. */
function skipBlockComment(text: string, i: number): number {
  const n = text.length;
  let depth = 0;
  while (i < n) {
    const c = text.charCodeAt(i);
    if (c === C_SLASH && text.charCodeAt(i + 1) === C_STAR) {
      depth++;
      i += 2;
    } else if (c === C_STAR && text.charCodeAt(i + 1) === C_SLASH) {
      i += 2;
      if (--depth === 0) return i;
    } else {
      i++;
    }
  }
  return n;
}

/** Digits with PostgreSQL 16 style `_` separators (an underscore only counts between digits). */
function skipDigits(text: string, i: number, hex = false): number {
  const n = text.length;
  while (i < n) {
    const c = text.charCodeAt(i);
    if (hex ? isHexDigit(c) : isDigit(c)) i++;
    else if (c === C_UNDERSCORE && (hex ? isHexDigit(text.charCodeAt(i + 1)) : isDigit(text.charCodeAt(i + 1)))) i += 2;
    else break;
  }
  return i;
}

/** Skips a numeric literal starting at `i` (a digit, or a dot followed by a digit). */
function skipNumber(text: string, i: number): number {
  const c0 = text.charCodeAt(i);
  if (c0 === 48) {
    // 0x1F, 0o17, 0b101 (PostgreSQL 16+). Without digits it is just `0`.
    const p = text.charCodeAt(i + 1) | 0x20;
    if (p === 120 /* x */ || p === 111 /* o */ || p === 98 /* b */) {
      const j = skipDigits(text, i + 2, p === 120);
      if (j > i + 2) return j;
    }
  }
  let j = c0 === C_DOT ? i : skipDigits(text, i);
  // Fraction; `1..5` stays `1`, `..`, `5` (array slice syntax).
  if (text.charCodeAt(j) === C_DOT && text.charCodeAt(j + 1) !== C_DOT) j = skipDigits(text, j + 1);
  const e = text.charCodeAt(j) | 0x20;
  if (e === 101 /* e */) {
    let k = j + 1;
    const s = text.charCodeAt(k);
    if (s === C_PLUS || s === C_MINUS) k++;
    if (isDigit(text.charCodeAt(k))) j = skipDigits(text, k);
  }
  return j;
}

/**
 * Keywords after which `-1` / `+1` is a signed number rather than a binary
 * operator, so the sign can be folded into the literal (`LIMIT -1` and
 * `LIMIT 1` sanitize and fingerprint alike, as in pg_stat_statements).
 */
const UNARY_AFTER = new Set([
  'SELECT', 'WHERE', 'AND', 'OR', 'NOT', 'WHEN', 'THEN', 'ELSE', 'CASE', 'LIMIT', 'OFFSET',
  'RETURNING', 'IN', 'IS', 'BETWEEN', 'LIKE', 'ILIKE', 'HAVING', 'ON', 'BY', 'DEFAULT',
  'RETURN', 'FETCH', 'FIRST', 'NEXT', 'SET', 'VALUES', 'ANY', 'ALL', 'SOME', 'DISTINCT',
]);

/** Longest keyword in {@link UNARY_AFTER}; longer words are never looked up. */
const UNARY_AFTER_MAX = 9;

/**
 * The scanner: one left-to-right pass over the text, one significant token per
 * {@link Scanner.next} call. It allocates nothing per token (kind and bounds are
 * fields), so a caller can stream over a text of any size and materialise only
 * the tokens it keeps. Comments and whitespace only set the `sp` flag of the
 * next token.
 *
 * There is one instance, reset for each statement ({@link SCANNER}): were
 * instances short-lived, V8 could collect their (weakly held) map between two
 * calls and throw away the optimised code of every method at each GC.
 */
class Scanner {
  /** Kind of the current token (one of the constants above). */
  t = PUNCT;
  /** Bounds of the current token in the text. */
  start = 0;
  end = 0;
  /** Whitespace or a comment preceded the current token. */
  sp = false;
  /** The statement. */
  text = '';
  /**
   * `standard_conforming_strings = off`: backslash escapes in plain `'…'` (and
   * `N'…'`) strings as it always does in `E'…'`.
   */
  plainBackslash = false;
  #i = 0;
  #n = 0;
  // The previous token, for the unary-sign rule.
  #prevT = -1;
  #prevStart = 0;
  #prevEnd = 0;

  /** Starts over on `text` (`''` lets go of the last statement). */
  reset(text: string, plainBackslash: boolean): void {
    this.text = text;
    this.plainBackslash = plainBackslash;
    this.#n = text.length;
    this.#i = 0;
    this.t = PUNCT;
    this.start = 0;
    this.end = 0;
    this.sp = false;
    this.#prevT = -1;
    this.#prevStart = 0;
    this.#prevEnd = 0;
  }

  #emit(t: number, start: number, end: number, sp: boolean): true {
    this.#prevT = this.t = t;
    this.#prevStart = this.start = start;
    this.#prevEnd = this.end = end;
    this.sp = sp;
    this.#i = end;
    return true;
  }

  #unaryContext(): boolean {
    const text = this.text;
    switch (this.#prevT) {
      case -1:
      case OP:
        return true;
      case PUNCT: {
        const c = text.charCodeAt(this.#prevStart);
        return c === 40 /* ( */ || c === 44 /* , */ || c === 91 /* [ */ || c === 59; /* ; */
      }
      case WORD:
        return this.#prevEnd - this.#prevStart <= UNARY_AFTER_MAX && UNARY_AFTER.has(text.slice(this.#prevStart, this.#prevEnd).toUpperCase());
      default:
        return false;
    }
  }

  /** Advances to the next token; false at the end of the text. */
  next(): boolean {
    const text = this.text;
    const n = this.#n;
    let i = this.#i;
    let sp = false;

    while (i < n) {
      const c = text.charCodeAt(i);
      const next = text.charCodeAt(i + 1); // NaN past the end: never matches

      if (isSpace(c)) {
        sp = true;
        i++;
        continue;
      }
      if (c === C_MINUS && next === C_MINUS) {
        // Line comment: to the end of the line (or text).
        i += 2;
        while (i < n) {
          const d = text.charCodeAt(i);
          if (d === C_LF || d === C_CR) break;
          i++;
        }
        sp = true;
        continue;
      }
      if (c === C_SLASH && next === C_STAR) {
        i = skipBlockComment(text, i);
        sp = true;
        continue;
      }
      if (c === C_SQUOTE) return this.#emit(LITERAL, i, skipString(text, i + 1, this.plainBackslash), sp);
      if (c === C_DQUOTE) return this.#emit(QIDENT, i, skipQuotedIdent(text, i + 1), sp);
      if (isIdentStart(c)) {
        // Prefixed literals: E'..' (backslash escapes), B'..', X'..', N'..', U&'..'.
        // The prefix must be the whole word, which holds here because words are
        // consumed in one go, so `name'x'` is never mistaken for a prefix.
        const lc = c | 0x20;
        if (next === C_SQUOTE && (lc === 101 || lc === 98 || lc === 120 || lc === 110)) {
          // N'..' follows the plain-string rule, E'..' always takes backslash escapes.
          const backslash = lc === 101 || (lc === 110 && this.plainBackslash);
          return this.#emit(LITERAL, i, skipString(text, i + 2, backslash), sp);
        }
        if (lc === 117 && next === C_AMP) {
          const q = text.charCodeAt(i + 2);
          // U&'..' never takes backslash-quote escapes (the server refuses it when
          // standard_conforming_strings is off).
          if (q === C_SQUOTE) return this.#emit(LITERAL, i, skipString(text, i + 3, false), sp);
          if (q === C_DQUOTE) return this.#emit(QIDENT, i, skipQuotedIdent(text, i + 3), sp);
        }
        let j = i + 1;
        while (j < n && isIdentChar(text.charCodeAt(j))) j++;
        return this.#emit(WORD, i, j, sp);
      }
      if (isDigit(c) || (c === C_DOT && isDigit(next) && !(i > 0 && (isIdentChar(text.charCodeAt(i - 1)) || text.charCodeAt(i - 1) === C_DQUOTE)))) {
        return this.#emit(LITERAL, i, skipNumber(text, i), sp);
      }
      if (c === C_DOLLAR) {
        if (isDigit(next)) {
          // Positional placeholder: kept.
          let j = i + 2;
          while (j < n && isDigit(text.charCodeAt(j))) j++;
          return this.#emit(PARAM, i, j, sp);
        }
        // Dollar quote: $$…$$ or $tag$…$tag$ (tag chars: identifier chars without `$`).
        let j = i + 1;
        if (j < n && isIdentStart(text.charCodeAt(j))) {
          j++;
          while (j < n) {
            const d = text.charCodeAt(j);
            if (!(isIdentStart(d) || isDigit(d))) break;
            j++;
          }
        }
        if (text.charCodeAt(j) === C_DOLLAR) {
          const delim = text.slice(i, j + 1);
          const end = text.indexOf(delim, j + 1);
          return this.#emit(LITERAL, i, end < 0 ? n : end + delim.length, sp);
        }
        return this.#emit(PUNCT, i, i + 1, sp);
      }
      if (c === C_QMARK) {
        // Kept as its own token (never merged into an operator run) so that
        // re-scanning sanitized text yields the same tokens as the original.
        return this.#emit(OP, i, i + 1, sp);
      }
      if (isOpChar(c)) {
        // Operator run, cut before an embedded comment start.
        let j = i + 1;
        let special = isSpecialOpChar(c);
        while (j < n) {
          const d = text.charCodeAt(j);
          if (!isOpChar(d)) break;
          const e = text.charCodeAt(j + 1);
          if ((d === C_MINUS && e === C_MINUS) || (d === C_SLASH && e === C_STAR)) break;
          if (isSpecialOpChar(d)) special = true;
          j++;
        }
        // PostgreSQL: a multi-char operator may not end in + or - unless it
        // contains a "special" char, so `=-1` is `=` followed by `-1`.
        if (j - i > 1 && !special) {
          while (j - i > 1) {
            const d = text.charCodeAt(j - 1);
            if (d !== C_PLUS && d !== C_MINUS) break;
            j--;
          }
        }
        if (j - i === 1 && (c === C_MINUS || c === C_PLUS)) {
          const d = text.charCodeAt(j);
          if ((isDigit(d) || (d === C_DOT && isDigit(text.charCodeAt(j + 1)))) && this.#unaryContext()) {
            // Signed number: the sign belongs to the literal.
            return this.#emit(LITERAL, i, skipNumber(text, j), sp);
          }
        }
        return this.#emit(OP, i, j, sp);
      }
      // Anything else ( ) , ; [ ] . : { } \ … is a one-character token.
      return this.#emit(PUNCT, i, i + 1, sp);
    }
    this.#i = n;
    return false;
  }

  /** The current token as an object, as it appears in the sanitized output. */
  token(): Token {
    return { t: this.t, s: this.t === LITERAL ? '?' : this.text.slice(this.start, this.end), sp: this.sp };
  }
}

const SCANNER = new Scanner();

// ---------------------------------------------------------------------------
// Sanitized text and fingerprint
// ---------------------------------------------------------------------------

/** Joins tokens back into text; built with join() so the (cached) result is one flat string. */
function render(tokens: readonly Token[], suffix?: string): string {
  const parts: string[] = [];
  for (const tok of tokens) {
    if (tok.sp && parts.length > 0) parts.push(' ');
    parts.push(tok.s);
  }
  if (suffix !== undefined) parts.push(suffix);
  return parts.join('');
}

function isPunct(tok: Token | undefined, s: string): boolean {
  return tok !== undefined && tok.t === PUNCT && tok.s === s;
}

/** True for a quoted identifier that means the same unquoted (`"users"` ≡ `users`). */
function isPlainLowerQuoted(s: string, start = 0, end = s.length): boolean {
  if (end - start < 3 || s.charCodeAt(start) !== C_DQUOTE || s.charCodeAt(end - 1) !== C_DQUOTE) return false;
  for (let k = start + 1; k < end - 1; k++) {
    const c = s.charCodeAt(k);
    const ok = (c >= 97 && c <= 122) || c === C_UNDERSCORE || (k > start + 1 && (isDigit(c) || c === C_DOLLAR));
    if (!ok) return false;
  }
  return true;
}

// FNV-1a 64-bit state as four 16-bit limbs, low → high. Module-level so the
// per-byte step is a plain function call the JIT can inline (no closures).
let h0 = 0;
let h1 = 0;
let h2 = 0;
let h3 = 0;

function fnvStep(byte: number): void {
  h0 ^= byte;
  // Multiply by the prime 2^40 + 0x1b3: h * 0x1b3 + (h << 40), mod 2^64.
  const t0 = h0 * 0x1b3;
  const t1 = h1 * 0x1b3 + (t0 >>> 16);
  const t2 = h2 * 0x1b3 + (h0 << 8) + (t1 >>> 16);
  const t3 = h3 * 0x1b3 + (h1 << 8) + (t2 >>> 16);
  h0 = t0 & 0xffff;
  h1 = t1 & 0xffff;
  h2 = t2 & 0xffff;
  h3 = t3 & 0xffff;
}

function hex4(h: number): string {
  return h.toString(16).padStart(4, '0');
}

function fnvReset(): void {
  // Offset basis 0xcbf29ce484222325.
  h0 = 0x2325;
  h1 = 0x8422;
  h2 = 0x9ce4;
  h3 = 0xcbf2;
}

function fnvDigest(): string {
  return hex4(h3) + hex4(h2) + hex4(h1) + hex4(h0);
}

/**
 * Feeds the UTF-8 bytes of `s[start, end)` into the running FNV-1a state; with
 * `lower`, ASCII letters are lower-cased on the way (no string is built).
 * Lone surrogates hash as U+FFFD, matching Buffer/TextEncoder.
 */
function fnvRange(s: string, start: number, end: number, lower = false): void {
  for (let i = start; i < end; i++) {
    let c = s.charCodeAt(i);
    if (c < 0x80) {
      fnvStep(lower && c >= 65 && c <= 90 ? c | 0x20 : c);
    } else if (c < 0x800) {
      fnvStep(0xc0 | (c >> 6));
      fnvStep(0x80 | (c & 0x3f));
    } else {
      if (c >= 0xd800 && c <= 0xdfff) {
        const d = i + 1 < end ? s.charCodeAt(i + 1) : NaN;
        if (c <= 0xdbff && d >= 0xdc00 && d <= 0xdfff) {
          const cp = 0x10000 + ((c - 0xd800) << 10) + (d - 0xdc00);
          i++;
          fnvStep(0xf0 | (cp >> 18));
          fnvStep(0x80 | ((cp >> 12) & 0x3f));
          fnvStep(0x80 | ((cp >> 6) & 0x3f));
          fnvStep(0x80 | (cp & 0x3f));
          continue;
        }
        c = 0xfffd;
      }
      fnvStep(0xe0 | (c >> 12));
      fnvStep(0x80 | ((c >> 6) & 0x3f));
      fnvStep(0x80 | (c & 0x3f));
    }
  }
}

// States of the streaming list collapse (see Normaliser).
const N_PLAIN = 0; // nothing pending
const N_OPEN = 1; // after IN / VALUES / ARRAY: expecting `(` (`[` for ARRAY)
const N_VALUE = 2; // inside a list: expecting a value
const N_SEP = 3; // inside a list, after a value: expecting `,` or the closing bracket
const N_MORE = 4; // after a collapsed VALUES list: a `,` may start another group
const N_MORE_OPEN = 5; // after that `,`: expecting `(`

const LIST_WORDS = ['', 'in', 'values', 'array'] as const;

/** A `?`-like list item: a literal, a `$n` placeholder or a bare `?`. */
function isValueAt(s: string, start: number, end: number, t: number): boolean {
  return t === LITERAL || t === PARAM || (t === OP && end - start === 1 && s.charCodeAt(start) === C_QMARK);
}

function isCharToken(s: string, start: number, end: number, t: number, c: number): boolean {
  return t === PUNCT && end - start === 1 && s.charCodeAt(start) === c;
}

/** Which list word (1 in, 2 values, 3 array) the word token is, ignoring ASCII case; 0 for none. */
function listWordAt(s: string, start: number, end: number): number {
  const len = end - start;
  if (len !== 2 && len !== 5 && len !== 6) return 0;
  for (let w = 1; w <= 3; w++) {
    const word = LIST_WORDS[w] as string;
    if (word.length !== len) continue;
    let k = 0;
    while (k < len && (s.charCodeAt(start + k) | 0x20) === word.charCodeAt(k)) k++;
    if (k === len) return w;
  }
  return 0;
}

/**
 * Computes the fingerprint while the scanner runs, token by token, without
 * building any string: FNV-1a 64 of the normalised form, which is the tokens
 * joined by single spaces (so spacing never matters), words lower-cased, quoted
 * identifiers kept as written (unless they are plain lower-case names), every
 * literal and placeholder as `?`, and IN (…), VALUES (…), (…) and ARRAY[…]
 * lists of only values collapsed to a single `?` so list length does not
 * change the fingerprint. A list is recognised with a few counters (every item
 * of a pending list is `?` or `,`), so a list of any length costs no memory.
 * One instance, reset per statement (see {@link Scanner} for why).
 */
class Normaliser {
  #first = true;
  #state = N_PLAIN;
  /** The pending list's word (index into LIST_WORDS). */
  #word = 0;
  /** Values seen in the pending list. */
  #values = 0;
  /** The pending group follows an already collapsed VALUES list (its `,` is pending too). */
  #extra = false;

  /** Starts a new fingerprint. */
  reset(): void {
    this.#first = true;
    this.#state = N_PLAIN;
    this.#word = 0;
    this.#values = 0;
    this.#extra = false;
    fnvReset();
  }

  #part(s: string, start: number, end: number, lower = false): void {
    if (this.#first) this.#first = false;
    else fnvStep(C_SPACE);
    fnvRange(s, start, end, lower);
  }

  #text(s: string): void {
    this.#part(s, 0, s.length);
  }

  /** One token of the statement, in order. */
  token(s: string, start: number, end: number, t: number): void {
    for (;;) {
      switch (this.#state) {
        case N_PLAIN:
          this.#plain(s, start, end, t);
          return;
        case N_OPEN:
          if (isCharToken(s, start, end, t, this.#word === 3 ? 91 /* [ */ : 40 /* ( */)) {
            this.#state = N_VALUE;
            return;
          }
          break;
        case N_VALUE:
          if (isValueAt(s, start, end, t)) {
            this.#values++;
            this.#state = N_SEP;
            return;
          }
          break;
        case N_SEP:
          if (isCharToken(s, start, end, t, 44 /* , */)) {
            this.#state = N_VALUE;
            return;
          }
          if (isCharToken(s, start, end, t, this.#word === 3 ? 93 /* ] */ : 41 /* ) */)) {
            if (!this.#extra) {
              this.#text(LIST_WORDS[this.#word] as string);
              this.#text(this.#word === 3 ? '[' : '(');
              this.#text('?');
              this.#text(this.#word === 3 ? ']' : ')');
            }
            this.#state = this.#word === 2 ? N_MORE : N_PLAIN;
            this.#extra = false;
            this.#values = 0;
            return;
          }
          break;
        case N_MORE:
          if (isCharToken(s, start, end, t, 44 /* , */)) {
            this.#state = N_MORE_OPEN;
            this.#extra = true;
            return;
          }
          this.#state = N_PLAIN;
          continue;
        case N_MORE_OPEN:
          if (isCharToken(s, start, end, t, 40 /* ( */)) {
            this.#state = N_VALUE;
            return;
          }
          break;
      }
      // Not a list after all: what was held back goes out as plain tokens, then this token.
      this.#flush();
    }
  }

  /** Emits a pending list that turned out not to be one, as the plain tokens it was. */
  #flush(): void {
    const state = this.#state;
    if (this.#extra) this.#text(',');
    else this.#text(LIST_WORDS[this.#word] as string);
    if (state === N_VALUE || state === N_SEP) {
      this.#text(this.#word === 3 ? '[' : '(');
      for (let k = 0; k < this.#values; k++) {
        if (k > 0) this.#text(',');
        this.#text('?');
      }
      if (state === N_VALUE && this.#values > 0) this.#text(',');
    }
    this.#state = N_PLAIN;
    this.#extra = false;
    this.#values = 0;
  }

  #plain(s: string, start: number, end: number, t: number): void {
    switch (t) {
      case WORD: {
        const w = listWordAt(s, start, end);
        if (w !== 0) {
          this.#word = w;
          this.#values = 0;
          this.#state = N_OPEN;
          return;
        }
        let ascii = true;
        for (let k = start; k < end; k++) {
          if (s.charCodeAt(k) >= 0x80) {
            ascii = false;
            break;
          }
        }
        if (ascii) this.#part(s, start, end, true);
        else this.#text(s.slice(start, end).toLowerCase());
        return;
      }
      case QIDENT:
        if (isPlainLowerQuoted(s, start, end)) this.#part(s, start + 1, end - 1);
        else this.#part(s, start, end);
        return;
      case LITERAL:
      case PARAM:
        this.#text('?');
        return;
      default:
        this.#part(s, start, end);
    }
  }

  /** The fingerprint: 16 lower-case hex chars. */
  finish(): string {
    if (this.#state !== N_PLAIN && this.#state !== N_MORE) this.#flush();
    return fnvDigest();
  }

  /**
   * The fingerprint of a statement whose scan stopped at {@link FINGERPRINT_MAX_TOKENS}: a list
   * cut short counts as a list of values (so a bulk INSERT keeps one fingerprint whatever its
   * size), and a part no token can produce marks it as cut.
   */
  finishCut(): string {
    const state = this.#state;
    if (state === N_OPEN) this.#flush();
    else if ((state === N_VALUE || state === N_SEP) && !this.#extra) {
      this.#text(LIST_WORDS[this.#word] as string);
      this.#text(this.#word === 3 ? '[' : '(');
      this.#text('?');
      this.#text(this.#word === 3 ? ']' : ')');
    }
    this.#text('\u0000cut');
    return fnvDigest();
  }
}

const NORMALISER = new Normaliser();

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
    name += '.' + part;
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
function collectionOf(tokens: readonly Token[], i: number, op: string): string | undefined {
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
function withMainIndex(tokens: readonly Token[], i: number): number {
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

function truncateSummary(s: string): string {
  if (s.length <= SUMMARY_MAX) return s;
  let cut = SUMMARY_MAX;
  const last = s.charCodeAt(cut - 1);
  if (last >= 0xd800 && last <= 0xdbff) cut--; // do not split a surrogate pair
  return s.slice(0, cut);
}

/**
 * A copy of `s` that shares no memory with the statement it was cut from (a
 * V8 slice of a long string keeps the whole string alive).
 */
function detach(s: string): string {
  return s.length < 13 ? s : (' ' + s).slice(1);
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
