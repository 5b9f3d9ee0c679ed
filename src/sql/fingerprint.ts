/**
 * Sanitized text and fingerprint of a statement: tokens rendered back with literals as `?`, and a
 * normalised FNV-1a hash computed while scanning.
 */
import { C_DOLLAR, C_DQUOTE, C_QMARK, C_SPACE, C_UNDERSCORE, isDigit, LITERAL, OP, PARAM, PUNCT, QIDENT, WORD, type Token } from './scanner.js';

// ---------------------------------------------------------------------------
// Sanitized text and fingerprint
// ---------------------------------------------------------------------------

/** Joins tokens back into text; built with join() so the (cached) result is one flat string. */
export function render(tokens: readonly Token[], suffix?: string): string {
  const parts: string[] = [];
  for (const tok of tokens) {
    if (tok.sp && parts.length > 0) parts.push(' ');
    parts.push(tok.s);
  }
  if (suffix !== undefined) parts.push(suffix);
  return parts.join('');
}

export function isPunct(tok: Token | undefined, s: string): boolean {
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

export const NORMALISER = new Normaliser();
