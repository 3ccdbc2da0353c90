// Every relative link in README.md and docs/**/*.md resolves: the file (or folder) exists, and a
// `#fragment` into a Markdown file names one of its headings as GitHub renders them (lower case,
// punctuation dropped, spaces to hyphens, `-1`, `-2`… for repeats) or an explicit `id`/`name` anchor.
// Links to other sites are not fetched (tests reach only loopback). Code spans and fenced blocks are
// not links, as on GitHub.
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';

const root = resolve(import.meta.dirname, '..');

// A fenced code block: the opening fence (with its info string) to the first bare closing fence alike.
const FENCE = /^([ \t]*)(```|~~~)[^\n]*\n[\s\S]*?^\1\2[ \t]*$/gm;

/** Markdown text without fenced code blocks and inline code spans (their brackets are not links). */
function prose(text: string): string {
  return text
    .replace(FENCE, '')
    .replace(/(`+)[^`\n]*?\1/g, '');
}

/** GitHub's heading anchor: rendered text, lower-cased, everything but letters, digits, `_`, `-` and spaces dropped. */
export function slug(heading: string): string {
  const text = heading
    .replace(/!?\[([^\]]*)\]\([^)]*\)/g, '$1') // a link or image in a heading contributes its text
    .replace(/<[^>]+>/g, '') // inline HTML tags render to nothing
    .replace(/`/g, '')
    .replace(/(\*\*|__|\*|~~)/g, '');
  return text.trim().toLowerCase().replace(/[^\p{L}\p{M}\p{N}\p{Pc} -]/gu, '').replace(/ /g, '-');
}

/** The anchors a Markdown text defines, repeats numbered as GitHub numbers them. */
export function anchors(text: string): Set<string> {
  const seen = new Map<string, number>();
  const out = new Set<string>();
  const withoutFences = text.replace(FENCE, '');
  for (const m of withoutFences.matchAll(/^#{1,6}[ \t]+(.+?)[ \t#]*$/gm)) {
    const base = slug(m[1]!);
    const n = seen.get(base) ?? 0;
    seen.set(base, n + 1);
    out.add(n === 0 ? base : `${base}-${n}`);
  }
  for (const m of withoutFences.matchAll(/<[a-z]+[^>]*\s(?:id|name)=["']([^"']+)["']/gi)) out.add(m[1]!);
  return out;
}

/** The relative link targets of a Markdown text: inline links and images, and reference definitions. */
export function linkTargets(text: string): string[] {
  const body = prose(text);
  const inline = [...body.matchAll(/!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+["'][^)]*["'])?\s*\)/g)].map((m) => m[1]!);
  const defined = [...body.matchAll(/^\s{0,3}\[[^\]]+\]:\s*<?(\S+?)>?(?:\s|$)/gm)].map((m) => m[1]!);
  return [...inline, ...defined].filter((t) => !/^[a-z][a-z0-9+.-]*:/i.test(t));
}

/** Each link of `file` (absolute) that does not resolve, as `file: target (why)`. */
export function brokenLinks(file: string, text = readFileSync(file, 'utf8')): string[] {
  const out: string[] = [];
  for (const target of linkTargets(text)) {
    const [path, fragment] = target.split('#', 2) as [string, string | undefined];
    const dest = path === '' ? file : resolve(dirname(file), decodeURIComponent(path));
    const where = `${relative(root, file)}: ${target}`;
    if (!existsSync(dest)) {
      out.push(`${where} (no such file ${relative(root, dest)})`);
      continue;
    }
    if (fragment === undefined || fragment === '' || !dest.endsWith('.md') || statSync(dest).isDirectory()) continue;
    if (!anchors(path === '' ? text : readFileSync(dest, 'utf8')).has(decodeURIComponent(fragment))) out.push(`${where} (no heading #${fragment} in ${relative(root, dest)})`);
  }
  return out;
}

function markdownFiles(): string[] {
  const docs = readdirSync(join(root, 'docs'), { withFileTypes: true, recursive: true })
    .filter((e) => e.isFile() && e.name.endsWith('.md'))
    .map((e) => join(e.parentPath, e.name));
  return [join(root, 'README.md'), join(root, 'bench', 'NOTES.md'), ...docs].filter((f) => existsSync(f));
}

describe('documentation links', () => {
  it('every relative link in README.md, bench/NOTES.md and docs/ resolves, anchors included', () => {
    const files = markdownFiles();
    expect(files.length).toBeGreaterThan(1);
    expect(files.flatMap((f) => brokenLinks(f))).toEqual([]);
  });

  it('the checker finds a missing file, a missing anchor and a wrong repeat number (it can fail)', () => {
    const readme = join(root, 'README.md');
    const text = [
      '# Top',
      '## Same',
      '## Same',
      '### The `warden serve` flags (engine/)',
      '[fine](#same-1) [fine](#the-warden-serve-flags-engine) [fine](docs/) `[code](nowhere.md)`',
      '```',
      '[fenced](nowhere-either.md)',
      '```',
      '[gone](docs/no-such-page.md) [bad anchor](#no-such-heading) [third](#same-2) [site](https://example.com/x)',
    ].join('\n');
    expect(brokenLinks(readme, text)).toEqual([
      'README.md: docs/no-such-page.md (no such file docs/no-such-page.md)',
      'README.md: #no-such-heading (no heading #no-such-heading in README.md)',
      'README.md: #same-2 (no heading #same-2 in README.md)',
    ]);
  });
});
