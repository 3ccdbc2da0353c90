// YAML/JSON documents that remember where each value came from, so errors can name file:line.
import { readFileSync } from 'node:fs';
import { isMap, isScalar, isSeq, LineCounter, parseDocument, type Document, type Node } from 'yaml';
import { CompileError } from './compile-error.js';

/** A parsed spec file: its value plus a way to find the line of any JSON path in it. */
export class SourceDoc {
  private constructor(
    readonly file: string,
    readonly value: unknown,
    private readonly doc: Document,
    private readonly lines: LineCounter,
  ) {}

  /** Parse a YAML or JSON file (JSON is read as YAML 1.2, which keeps positions); syntax errors are CompileErrors. */
  static read(absPath: string, displayPath: string): SourceDoc {
    let text: string;
    try {
      text = readFileSync(absPath, 'utf8');
    } catch (err) {
      throw new CompileError([{ file: displayPath, message: `cannot read file: ${(err as Error).message}`, severity: 'error' }]);
    }
    return SourceDoc.parse(text, displayPath);
  }

  static parse(text: string, displayPath: string): SourceDoc {
    const lines = new LineCounter();
    const doc = parseDocument(text, { lineCounter: lines, uniqueKeys: true, prettyErrors: true });
    if (doc.errors.length > 0) {
      throw new CompileError(
        doc.errors.slice(0, 3).map((e) => ({
          file: displayPath,
          line: e.linePos?.[0]?.line,
          message: `not valid ${displayPath.endsWith('.json') ? 'JSON' : 'YAML'}: ${e.message.split('\n')[0]}`,
          severity: 'error' as const,
        })),
      );
    }
    return new SourceDoc(displayPath, doc.toJS({ maxAliasCount: 100 }) as unknown, doc, lines);
  }

  /** 1-based line of the node at a path (keys and indexes); the nearest existing ancestor if absent. */
  lineOf(path: ReadonlyArray<string | number>): number | undefined {
    let node: unknown = this.doc.contents;
    let best: Node | undefined = node as Node | undefined;
    for (const key of path) {
      if (isMap(node)) {
        const pair = node.items.find((p) => (isScalar(p.key) ? p.key.value : p.key) === key);
        if (!pair) break;
        best = (pair.key as Node) ?? best;
        node = pair.value;
      } else if (isSeq(node) && typeof key === 'number') {
        node = node.items[key];
        if (!node) break;
        best = node as Node;
      } else break;
    }
    const offset = best?.range?.[0];
    return offset === undefined ? undefined : this.lines.linePos(offset).line;
  }
}

/** Render a JSON path the way users read it: paths./orders/{id}.post.x-warden-authz.allow[0]. */
export function jsonPath(path: ReadonlyArray<string | number>): string {
  return path.reduce<string>((acc, k) => (typeof k === 'number' ? `${acc}[${k}]` : acc ? `${acc}.${k}` : k), '');
}
