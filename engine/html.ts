// HTML as the engine writes it (the console's pages, `warden diff --format html`): every value escaped
// through one tagged template, so no caller can forget to escape a principal, a path or a reason.

/** Text that is already HTML (built by `html`), never escaped again. */
export class Html {
  constructor(readonly text: string) {}
  toString(): string {
    return this.text;
  }
}

/** Escape text for an HTML element or a double-quoted attribute. */
export function escapeHtml(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;').replace(/'/g, '&#39;');
}

type Value = Html | string | number | boolean | undefined | null | ReadonlyArray<Html | string | number>;

function piece(v: Value): string {
  if (v === undefined || v === null || v === false) return '';
  if (v instanceof Html) return v.text;
  if (Array.isArray(v)) return v.map((x) => piece(x as Value)).join('');
  return escapeHtml(String(v));
}

/** Tagged template: literal parts are kept, interpolated values escaped (unless they are Html). */
export function html(strings: TemplateStringsArray, ...values: Value[]): Html {
  return new Html(strings.reduce((acc, s, i) => acc + s + (i < values.length ? piece(values[i]) : ''), ''));
}

/** A standalone page: `css` inlined (self-contained, e.g. a CI artifact) or linked (`href`, under a strict CSP). */
export function page(title: string, body: Html, style: { inline: string } | { href: string }, scripts: string[] = []): string {
  const css = 'inline' in style ? html`<style>${new Html(style.inline)}</style>` : html`<link rel="stylesheet" href="${style.href}">`;
  return `<!doctype html>\n${html`<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1"><title>${title}</title>${css}</head><body>${body}${scripts.map((s) => html`<script src="${s}"></script>`)}</body></html>`.text}\n`;
}
