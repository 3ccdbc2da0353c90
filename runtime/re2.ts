// Go RE2 patterns, as OPA's regex builtins compile them, translated to JS RegExp. Both engines pick
// the leftmost-first match, so a faithful translation of the syntax gives the same matches. Where
// the syntaxes differ the translator rewrites (`.`, `\s`, `\A`, `\z`, `(?P<n>`, `\Q…\E`,
// `[[:alpha:]]`, `\pGreek`, `\x{…}`, `(?i)` at the start, `^`/`$` under `(?m)`, literal `{`), and
// where JS would accept what RE2 rejects (backreferences, lookaround, `\C`, `\Z`), or mean something
// else (flag groups after the start), it throws instead of silently deciding differently.
//
// The two refusals differ: a pattern RE2 itself rejects is a builtin error in OPA (the expression is
// undefined, or the evaluation fails under strict builtin errors), so it throws InvalidRegexError, a
// BuiltinError; a pattern RE2 accepts but Warden cannot translate has an answer in OPA that Warden
// cannot give, so it throws UnsupportedRegexError, which always fails the evaluation (closed).
import { BuiltinError } from './builtin-operand.js';

/** A pattern RE2 accepts that Warden cannot run with RE2's meaning: fails the evaluation closed. */
export class UnsupportedRegexError extends Error {
  constructor(pattern: string, why: string) {
    super(`regex ${JSON.stringify(pattern)}: ${why}`);
    this.name = 'UnsupportedRegexError';
  }
}

/** A pattern RE2 rejects: a builtin error, as in OPA (undefined unless builtin errors are strict). */
export class InvalidRegexError extends BuiltinError {
  constructor(pattern: string, why: string) {
    super('regex', `error parsing regexp: ${why}: \`${pattern}\``);
    this.name = 'InvalidRegexError';
  }
}

const POSIX: Record<string, string> = {
  alnum: '0-9A-Za-z',
  alpha: 'A-Za-z',
  ascii: '\\x00-\\x7F',
  blank: '\\t ',
  cntrl: '\\x00-\\x1F\\x7F',
  digit: '0-9',
  graph: '!-~',
  lower: 'a-z',
  print: ' -~',
  punct: '!-\\/:-@\\[-`{-~',
  space: '\\t\\n\\v\\f\\r ',
  upper: 'A-Z',
  word: '0-9A-Za-z_',
  xdigit: '0-9A-Fa-f',
};

const GO_SPACE = '\\t\\n\\f\\r ';
const JS_SYNTAX = new Set('^$\\.*+?()[]{}|/'.split(''));
const cache = new Map<string, RegExp>();

/** Compiles an RE2 pattern to a global, unicode JS RegExp with the same meaning (or throws). */
export function compileRe2(pattern: string): RegExp {
  const hit = cache.get(pattern);
  if (hit) {
    hit.lastIndex = 0;
    return hit;
  }
  const re = new Translator(pattern).translate();
  if (cache.size > 1000) cache.clear();
  cache.set(pattern, re);
  return re;
}

class Translator {
  private i = 0;
  private flags = new Set<string>();

  constructor(private readonly src: string) {}

  private parens = 0;

  /** RE2 accepts the pattern, but JS cannot run it with RE2's meaning. */
  private fail(why: string): never {
    throw new UnsupportedRegexError(this.src, why);
  }

  /** RE2 itself rejects the pattern. */
  private invalid(why: string): never {
    throw new InvalidRegexError(this.src, why);
  }

  translate(): RegExp {
    // Leading flag groups become JS flags; JS (Node 20) has no inline modifiers.
    for (let m; (m = /^\(\?([imsU]+)\)/.exec(this.src.slice(this.i))); ) {
      for (const f of m[1] ?? '') {
        if (f === 'U') this.fail('(?U) ungreedy mode has no JS equivalent');
        this.flags.add(f);
      }
      this.i += m[0].length;
    }
    let out = '';
    while (this.i < this.src.length) out += this.atom();
    if (this.parens > 0) this.invalid('missing closing )');
    const jsFlags = `gu${this.flags.has('i') ? 'i' : ''}`;
    try {
      return new RegExp(out, jsFlags);
    } catch (err) {
      return this.fail(`invalid pattern (${(err as Error).message})`);
    }
  }

  private atom(): string {
    const c = this.src[this.i] ?? '';
    this.i++;
    switch (c) {
      case '\\': return this.escape(false);
      case '[': return this.charClass();
      case '.': return this.flags.has('s') ? '[\\s\\S]' : '[^\\n]';
      case '^': return this.flags.has('m') ? '(?<![^\\n])' : '(?<![\\s\\S])';
      case '$': return this.flags.has('m') ? '(?![^\\n])' : '(?![\\s\\S])';
      case '(': this.parens++; return this.group();
      case ')':
        if (--this.parens < 0) this.invalid('unexpected )');
        return c;
      case '{': return this.brace();
      // Literal in RE2; a syntax error in JS's unicode mode unless escaped.
      case '}': case ']': return `\\${c}`;
      default: return c;
    }
  }

  private group(): string {
    if (this.src[this.i] !== '?') return '(';
    const rest = this.src.slice(this.i);
    let m = /^\?P?<([A-Za-z0-9_]+)>/.exec(rest);
    if (m) {
      this.i += m[0].length;
      if (!/^[A-Za-z_]/.test(m[1] ?? '')) this.fail('JS group names cannot start with a digit');
      return `(?<${m[1]}>`;
    }
    if (rest.startsWith('?:')) {
      this.i += 2;
      return '(?:';
    }
    m = /^\?[imsU-]+[:)]/.exec(rest);
    if (m) this.fail('flags are only supported at the start of the pattern');
    return this.invalid('invalid or unsupported Perl syntax (lookaround and other (?…) groups are not RE2 syntax)');
  }

  private brace(): string {
    // RE2 reads `{` as a repeat only in the forms {n}, {n,}, {n,m}; otherwise it is a literal.
    const m = /^(\d+)(,(\d*))?\}/.exec(this.src.slice(this.i));
    if (!m) return '\\{';
    if (Number(m[1]) > 1000 || (m[3] !== undefined && m[3] !== '' && Number(m[3]) > 1000)) this.invalid('invalid repeat count (above 1000)');
    this.i += m[0].length;
    return `{${m[0]}`;
  }

  private escape(inClass: boolean): string {
    const c = this.src[this.i] ?? '';
    this.i++;
    if (c === '') this.invalid('trailing backslash at end of expression');
    // RE2 reads \1 alone as a backreference (rejected) but \12 as an octal escape, like \012.
    if (/[1-7]/.test(c) && /^[0-7]/.test(this.src.slice(this.i))) return this.octal(c);
    if (/[1-9]/.test(c)) this.invalid('invalid escape sequence (backreferences are not RE2 syntax)');
    switch (c) {
      case 'A': return inClass ? this.invalid('invalid escape sequence \\A inside a class') : '(?<![\\s\\S])';
      case 'z': return inClass ? this.invalid('invalid escape sequence \\z inside a class') : '(?![\\s\\S])';
      case 's': return inClass ? GO_SPACE : `[${GO_SPACE}]`;
      case 'S': return inClass ? this.fail('\\S inside a class') : `[^${GO_SPACE}]`;
      case 'd': case 'D': case 'w': case 'W': case 'n': case 't': case 'r': case 'f': case 'v': return `\\${c}`;
      case 'b': case 'B': return inClass ? this.invalid('invalid escape sequence \\b inside a class') : `\\${c}`;
      case 'a': return '\\x07';
      case '0': return this.octal(c);
      case 'x': {
        const rest = this.src.slice(this.i);
        const m = /^\{([0-9A-Fa-f]{1,6})\}/.exec(rest) ?? /^([0-9A-Fa-f]{2})/.exec(rest);
        if (!m) this.invalid('invalid escape sequence \\x');
        this.i += m[0].length;
        return `\\u{${m[1]}}`;
      }
      case 'p': case 'P': return this.unicodeClass(c);
      case 'Q': {
        const end = this.src.indexOf('\\E', this.i);
        const lit = end < 0 ? this.src.slice(this.i) : this.src.slice(this.i, end);
        this.i = end < 0 ? this.src.length : end + 2;
        return Array.from(lit).map((ch) => (JS_SYNTAX.has(ch) || ch === '-' ? `\\${ch}` : ch)).join('');
      }
    }
    if (/[A-Za-z0-9]/.test(c) || c > '\x7f') this.invalid(`invalid escape sequence \\${c}`);
    // RE2 lets any punctuation be escaped; JS's unicode mode only accepts syntax characters.
    if (JS_SYNTAX.has(c) || (inClass && c === '-')) return `\\${c}`;
    return c;
  }

  // An octal escape: the digit already read and up to two more.
  private octal(first: string): string {
    const m = /^[0-7]{0,2}/.exec(this.src.slice(this.i))?.[0] ?? '';
    this.i += m.length;
    return `\\u{${parseInt(`${first}${m}`, 8).toString(16)}}`;
  }

  private unicodeClass(p: string): string {
    let name: string;
    if (this.src[this.i] === '{') {
      const end = this.src.indexOf('}', this.i);
      if (end < 0) this.invalid('invalid character class range (unterminated \\p{)');
      name = this.src.slice(this.i + 1, end);
      this.i = end + 1;
    } else {
      name = this.src[this.i] ?? '';
      this.i++;
    }
    let negate = p === 'P';
    if (name.startsWith('^')) {
      negate = !negate;
      name = name.slice(1);
    }
    const prop = name === 'Any' ? 'Any' : /^[A-Z][a-z]?$/.test(name) ? name : `Script=${name}`;
    return `\\${negate ? 'P' : 'p'}{${prop}}`;
  }

  private charClass(): string {
    let out = '[';
    if (this.src[this.i] === '^') {
      out += '^';
      this.i++;
    }
    let first = true;
    for (;;) {
      if (this.i >= this.src.length) this.invalid('missing closing ]');
      const c = this.src[this.i] ?? '';
      if (c === ']' && !first) {
        this.i++;
        break;
      }
      first = false;
      const posix = /^\[:(\^?)([a-z]+):\]/.exec(this.src.slice(this.i));
      if (posix) {
        const set = POSIX[posix[2] ?? ''];
        if (set === undefined) this.invalid(`invalid character class range [:${posix[2]}:]`);
        if (posix[1]) this.fail('negated POSIX classes inside brackets');
        out += set;
        this.i += posix[0].length;
        continue;
      }
      this.i++;
      if (c === '\\') out += this.escape(true);
      else if (c === '[' || c === ']') out += `\\${c}`;
      else out += c;
    }
    return `${out}]`;
  }
}
