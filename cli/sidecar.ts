// The sidecar's entry: `warden proxy` and `warden ext-authz` alone, with the same help and errors as
// cli/main.ts. bin/build.js bundles it, with the npm packages it imports, into one file (dist/sidecar.js)
// that bin/warden.js runs for those two subcommands: one file to read and compile instead of a few
// hundred module lookups, the largest part of a pod's start (docs/shipping.md, "Figures").
import { registerProxy } from '../proxy-plugin/command.js';
import { runProgram, wardenProgram } from './program.js';

process.exitCode = await runProgram(wardenProgram([registerProxy]), process.argv);
