/**
 * The SQL scanner of describe.ts: one left-to-right pass over a statement that tells literals from
 * identifiers, placeholders, operators and comments, allocating nothing per token.
 */

// ---------------------------------------------------------------------------
// Tokens
// ---------------------------------------------------------------------------

// Plain numeric constants rather than an enum: cheap, and fine under isolatedModules.
export const WORD = 0; // keyword or unquoted identifier
export const QIDENT = 1; // "quoted identifier" (or U&"...")
export const LITERAL = 2; // any string / bit-string / dollar-quoted / numeric literal
export const PARAM = 3; // $1, $2, …
export const OP = 4; // operator run (`=`, `<>`, `::` is two PUNCT) or a lone `?`
export const PUNCT = 5; // every other single character

export interface Token {
  /** Token kind (one of the constants above). */
  readonly t: number;
  /** Text as it appears in the sanitized output (`?` for literals). */
  readonly s: string;
  /** Whitespace or a comment preceded the token. */
  readonly sp: boolean;
}

// Character codes used by the scanner.
const C_TAB = 9;
const C_LF = 10;
const C_CR = 13;
export const C_SPACE = 32;
export const C_DQUOTE = 34; // "
export const C_DOLLAR = 36; // $
const C_AMP = 38; // &
const C_SQUOTE = 39; // '
const C_STAR = 42; // *
const C_PLUS = 43; // +
const C_MINUS = 45; // -
const C_DOT = 46; // .
const C_SLASH = 47; // /
export const C_QMARK = 63; // ?
const C_BACKSLASH = 92; // \
export const C_UNDERSCORE = 95; // _

function isSpace(c: number): boolean {
  return c === C_SPACE || (c >= C_TAB && c <= C_CR);
}

export function isDigit(c: number): boolean {
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
  'SELECT',
  'WHERE',
  'AND',
  'OR',
  'NOT',
  'WHEN',
  'THEN',
  'ELSE',
  'CASE',
  'LIMIT',
  'OFFSET',
  'RETURNING',
  'IN',
  'IS',
  'BETWEEN',
  'LIKE',
  'ILIKE',
  'HAVING',
  'ON',
  'BY',
  'DEFAULT',
  'RETURN',
  'FETCH',
  'FIRST',
  'NEXT',
  'SET',
  'VALUES',
  'ANY',
  'ALL',
  'SOME',
  'DISTINCT',
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

export const SCANNER = new Scanner();
