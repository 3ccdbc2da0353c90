// The public Gatekeeper library where it lies (../shared/corpus/gatekeeper-library, WARDEN_CORPUS to
// point elsewhere), read as its INDEX.tsv and TEMPLATES.tsv describe it: shared by the corpus test and
// bench/gatekeeper.bench.ts.
import { readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { parseAllDocuments } from 'yaml';
import { reviewFromObject, reviewFromRequest, type GatekeeperReview } from '../../admission/gatekeeper.js';
import { repoRoot } from '../../engine/toolchain/paths.js';
import type { AdmissionRequest } from '../../formats/admission-review.js';

export const corpus = process.env.WARDEN_CORPUS ? join(process.env.WARDEN_CORPUS, 'gatekeeper-library') : resolve(repoRoot, '..', 'shared', 'corpus', 'gatekeeper-library');

/** The rows of a tab-separated file with a header line. */
export function readTsv<T>(file: string): T[] {
  const [head, ...lines] = readFileSync(file, 'utf8').split('\n').filter((l) => l.trim() !== '');
  const cols = head!.split('\t');
  return lines.map((l) => Object.fromEntries(l.split('\t').map((v, i) => [cols[i], v])) as T);
}

/** The first YAML document of a file. */
export const firstDoc = (file: string): Record<string, unknown> => parseAllDocuments(readFileSync(file, 'utf8'))[0]!.toJS() as Record<string, unknown>;

/** The review of an example object: an AdmissionReview's request, or the object itself (as gator reviews them). */
export function reviewOfExample(objectPath: string, objectKind: string): GatekeeperReview {
  const object = firstDoc(join(corpus, objectPath));
  if (objectKind !== 'AdmissionReview') return reviewFromObject(object);
  const req = object.request as AdmissionRequest & { kind?: AdmissionRequest['kind'] };
  const obj = (req.object ?? req.oldObject ?? {}) as Record<string, unknown>;
  return reviewFromRequest({ ...req, kind: req.kind ?? reviewFromObject(obj).kind } as AdmissionRequest);
}
