// The shipped build for in-process benches: the modules `warden` runs (dist/, `npm run build`), not the
// sources as tsx serves them. tsx transpiles with esbuild's keepNames, which wraps every function it
// creates in a `__name` call that defines its name, each closure of each call included: a cost the build
// does not have (13.7 % of the input serializer's own time in a CPU profile under tsx, 2026-12-06). A bench
// that times the JavaScript of the request path loads that path from here, whole: classes of two copies
// (a JsonText of one, an `instanceof` of the other) would not know each other.
import { isStale } from '../bin/build.js';

/** A module of the build, by its path under dist/ (`proxy-plugin/mcp/handler.js`); refuses a stale build. */
export async function shipped<T>(module: string): Promise<T> {
  const stale = isStale();
  if (stale) throw new Error(`dist/ is stale (${stale}): run \`npm run build\` before the in-process benches`);
  return (await import(new URL(`../dist/${module}`, import.meta.url).href)) as T;
}
