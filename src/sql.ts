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
 * The outputs map onto the OpenTelemetry semantic conventions for database
 * clients: `db.query.text` (sanitized), `db.query.summary`,
 * `db.operation.name` and `db.collection.name`.
 */

/** What {@link describeQuery} knows about a statement. Instances are frozen and shared. */
export interface QueryDescription {
  /**
   * The SQL with every literal replaced by `?` and comments removed, whitespace
   * collapsed and trimmed. Placeholders (`$1`) and identifiers are kept as
   * written. Safe to export as `db.query.text`.
   */
  sanitized: string;
  /**
   * 16 lower-case hex chars (FNV-1a 64-bit of a normalised form of the
   * statement). Equal for the same statement with different literal values,
   * whitespace, keyword case or IN/VALUES list lengths.
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
    while (i < n) {
      const c = text.charCodeAt(i);
      if (c === C_SQUOTE) {
        if (text.charCodeAt(i + 1) === C_SQUOTE) {
          i += 2;
          continue;
        }
        break;
      }
      i += backslash && c === C_BACKSLASH ? 2 : 1;
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

function isUnaryContext(prev: Token | undefined): boolean {
  if (prev === undefined) return true;
  switch (prev.t) {
    case OP:
      return true;
    case PUNCT:
      return prev.s === '(' || prev.s === ',' || prev.s === '[' || prev.s === ';';
    case WORD:
      return UNARY_AFTER.has(prev.s.toUpperCase());
    default:
      return false;
  }
}

/**
 * The scanner: one left-to-right pass producing the significant tokens.
 * Comments and whitespace only set the `sp` flag of the next token.
 */
function tokenize(text: string): Token[] {
  const tokens: Token[] = [];
  const n = text.length;
  let i = 0;
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
    if (c === C_SQUOTE) {
      i = skipString(text, i + 1, false);
      tokens.push({ t: LITERAL, s: '?', sp });
      sp = false;
      continue;
    }
    if (c === C_DQUOTE) {
      const end = skipQuotedIdent(text, i + 1);
      tokens.push({ t: QIDENT, s: text.slice(i, end), sp });
      sp = false;
      i = end;
      continue;
    }
    if (isIdentStart(c)) {
      // Prefixed literals: E'..' (backslash escapes), B'..', X'..', N'..', U&'..'.
      // The prefix must be the whole word, which holds here because words are
      // consumed in one go, so `name'x'` is never mistaken for a prefix.
      const lc = c | 0x20;
      if (next === C_SQUOTE && (lc === 101 || lc === 98 || lc === 120 || lc === 110)) {
        i = skipString(text, i + 2, lc === 101);
        tokens.push({ t: LITERAL, s: '?', sp });
        sp = false;
        continue;
      }
      if (lc === 117 && next === C_AMP) {
        const q = text.charCodeAt(i + 2);
        if (q === C_SQUOTE) {
          i = skipString(text, i + 3, false);
          tokens.push({ t: LITERAL, s: '?', sp });
          sp = false;
          continue;
        }
        if (q === C_DQUOTE) {
          const end = skipQuotedIdent(text, i + 3);
          tokens.push({ t: QIDENT, s: text.slice(i, end), sp });
          sp = false;
          i = end;
          continue;
        }
      }
      let j = i + 1;
      while (j < n && isIdentChar(text.charCodeAt(j))) j++;
      tokens.push({ t: WORD, s: text.slice(i, j), sp });
      sp = false;
      i = j;
      continue;
    }
    if (isDigit(c) || (c === C_DOT && isDigit(next) && !(i > 0 && (isIdentChar(text.charCodeAt(i - 1)) || text.charCodeAt(i - 1) === C_DQUOTE)))) {
      i = skipNumber(text, i);
      tokens.push({ t: LITERAL, s: '?', sp });
      sp = false;
      continue;
    }
    if (c === C_DOLLAR) {
      if (isDigit(next)) {
        // Positional placeholder: kept.
        let j = i + 2;
        while (j < n && isDigit(text.charCodeAt(j))) j++;
        tokens.push({ t: PARAM, s: text.slice(i, j), sp });
        sp = false;
        i = j;
        continue;
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
        i = end < 0 ? n : end + delim.length;
        tokens.push({ t: LITERAL, s: '?', sp });
        sp = false;
        continue;
      }
      tokens.push({ t: PUNCT, s: '$', sp });
      sp = false;
      i++;
      continue;
    }
    if (c === C_QMARK) {
      // Kept as its own token (never merged into an operator run) so that
      // re-scanning sanitized text yields the same tokens as the original.
      tokens.push({ t: OP, s: '?', sp });
      sp = false;
      i++;
      continue;
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
        if ((isDigit(d) || (d === C_DOT && isDigit(text.charCodeAt(j + 1)))) && isUnaryContext(tokens[tokens.length - 1])) {
          // Signed number: the sign belongs to the literal.
          i = skipNumber(text, j);
          tokens.push({ t: LITERAL, s: '?', sp });
          sp = false;
          continue;
        }
      }
      tokens.push({ t: OP, s: text.slice(i, j), sp });
      sp = false;
      i = j;
      continue;
    }
    // Anything else ( ) , ; [ ] . : { } \ … is a one-character token.
    tokens.push({ t: PUNCT, s: text[i] as string, sp });
    sp = false;
    i++;
  }
  return tokens;
}

// ---------------------------------------------------------------------------
// Sanitized text and fingerprint
// ---------------------------------------------------------------------------

/** Joins tokens back into text; built with join() so the (cached) result is one flat string. */
function render(tokens: readonly Token[]): string {
  const parts: string[] = [];
  for (const tok of tokens) {
    if (tok.sp && parts.length > 0) parts.push(' ');
    parts.push(tok.s);
  }
  return parts.join('');
}

/** A `?`-like list item: a literal, a `$n` placeholder or a bare `?`. */
function isValueToken(tok: Token | undefined): boolean {
  return tok !== undefined && (tok.t === LITERAL || tok.t === PARAM || (tok.t === OP && tok.s === '?'));
}

function isPunct(tok: Token | undefined, s: string): boolean {
  return tok !== undefined && tok.t === PUNCT && tok.s === s;
}

/**
 * If `tokens[i]` opens a list (`open` … `close`) holding only value tokens
 * separated by commas, returns the index just after `close`; otherwise -1.
 */
function valueListEnd(tokens: readonly Token[], i: number, open: string, close: string): number {
  if (!isPunct(tokens[i], open)) return -1;
  let j = i + 1;
  for (;;) {
    if (!isValueToken(tokens[j])) return -1;
    j++;
    if (isPunct(tokens[j], close)) return j + 1;
    if (!isPunct(tokens[j], ',')) return -1;
    j++;
  }
}

/** True for a quoted identifier that means the same unquoted (`"users"` ≡ `users`). */
function isPlainLowerQuoted(s: string): boolean {
  if (s.length < 3 || s.charCodeAt(0) !== C_DQUOTE || s.charCodeAt(s.length - 1) !== C_DQUOTE) return false;
  for (let k = 1; k < s.length - 1; k++) {
    const c = s.charCodeAt(k);
    const ok = (c >= 97 && c <= 122) || c === C_UNDERSCORE || (k > 1 && (isDigit(c) || c === C_DOLLAR));
    if (!ok) return false;
  }
  return true;
}

/**
 * The normalised form that is hashed: tokens joined by single spaces (so
 * spacing never matters), words lower-cased, quoted identifiers kept as written
 * (unless they are plain lower-case names), every literal and placeholder as
 * `?`, and IN (…), VALUES (…), (…) and ARRAY[…] lists of only values collapsed
 * to a single `?` so list length does not change the fingerprint.
 */
function normalise(tokens: readonly Token[]): string {
  const parts: string[] = [];
  const n = tokens.length;
  let i = 0;
  while (i < n) {
    const tok = tokens[i] as Token;
    if (tok.t === WORD) {
      const w = tok.s.toLowerCase();
      if (w === 'in' || w === 'values') {
        let end = valueListEnd(tokens, i + 1, '(', ')');
        if (end > 0) {
          if (w === 'values') {
            for (;;) {
              if (!isPunct(tokens[end], ',')) break;
              const more = valueListEnd(tokens, end + 1, '(', ')');
              if (more < 0) break;
              end = more;
            }
          }
          parts.push(w, '(', '?', ')');
          i = end;
          continue;
        }
      } else if (w === 'array') {
        const end = valueListEnd(tokens, i + 1, '[', ']');
        if (end > 0) {
          parts.push(w, '[', '?', ']');
          i = end;
          continue;
        }
      }
      parts.push(w);
    } else if (tok.t === QIDENT) {
      parts.push(isPlainLowerQuoted(tok.s) ? tok.s.slice(1, -1) : tok.s);
    } else if (tok.t === LITERAL || tok.t === PARAM) {
      parts.push('?');
    } else {
      parts.push(tok.s);
    }
    i++;
  }
  return parts.join(' ');
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

/**
 * FNV-1a 64-bit over the UTF-8 bytes of `s`, as 16 hex chars. Computed in four
 * 16-bit limbs so it stays in plain number arithmetic (no BigInt on the hot
 * path). Lone surrogates hash as U+FFFD, matching Buffer/TextEncoder.
 */
function fnv1a64(s: string): string {
  // Offset basis 0xcbf29ce484222325.
  h0 = 0x2325;
  h1 = 0x8422;
  h2 = 0x9ce4;
  h3 = 0xcbf2;
  const n = s.length;
  for (let i = 0; i < n; i++) {
    let c = s.charCodeAt(i);
    if (c < 0x80) {
      fnvStep(c);
    } else if (c < 0x800) {
      fnvStep(0xc0 | (c >> 6));
      fnvStep(0x80 | (c & 0x3f));
    } else {
      if (c >= 0xd800 && c <= 0xdfff) {
        const d = s.charCodeAt(i + 1);
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
  return hex4(h3) + hex4(h2) + hex4(h1) + hex4(h0);
}

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

function analyse(text: string): QueryDescription {
  const tokens = tokenize(text);
  const sanitized = render(tokens);
  const fingerprint = fnv1a64(normalise(tokens));

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
  const summary = operation === undefined ? 'unknown' : truncateSummary(collection === undefined ? operation : `${operation} ${collection}`);
  return Object.freeze({ sanitized, fingerprint, operation, collection, summary });
}

// ---------------------------------------------------------------------------
// Public API (memoised)
// ---------------------------------------------------------------------------

interface CacheEntry {
  readonly value: QueryDescription;
  /** Value of `insertions` when the entry was (re)inserted. */
  seq: number;
}

/**
 * Insertion-ordered Map used as an approximate LRU: the first key is the
 * oldest and is evicted when full. A hit is moved to the newest end only once
 * it has drifted into the older half, so hot statements stay cached while a
 * typical hit costs a single Map lookup (a delete + set on every hit would also
 * make V8 rehash the table constantly once it is full).
 */
const cache = new Map<string, CacheEntry>();
let insertions = 0;

/**
 * Scans a SQL statement once and returns its sanitized text, fingerprint,
 * operation, collection and summary. Results for texts up to 10 000 chars are
 * memoised in a bounded LRU (1000 entries, oldest evicted), so repeated
 * statements cost one Map lookup. Never throws: unterminated strings, quoted
 * identifiers and comments run to the end of the text.
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
export function describeQuery(text: string): QueryDescription {
  if (typeof text !== 'string') text = text == null ? '' : String(text);
  if (text.length > CACHE_MAX_TEXT) return analyse(text);
  const hit = cache.get(text);
  if (hit !== undefined) {
    if (insertions - hit.seq > CACHE_MAX / 2) {
      cache.delete(text);
      hit.seq = ++insertions;
      cache.set(text, hit);
    }
    return hit.value;
  }
  const value = analyse(text);
  if (cache.size >= CACHE_MAX) {
    const oldest = cache.keys().next();
    if (oldest.done !== true) cache.delete(oldest.value);
  }
  cache.set(text, { value, seq: ++insertions });
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
export function sanitizeSql(text: string): string {
  return describeQuery(text).sanitized;
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
export function fingerprintSql(text: string): string {
  return describeQuery(text).fingerprint;
}
