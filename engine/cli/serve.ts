// `warden serve`: the engine's control-plane service (bundle server; audit routes mount here later).
import type { Command } from 'commander';
import { existsSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { createEngineApp } from '../bundle-server.js';
import { parseListenAddress } from './listen-address.js';
import { UserError } from './user-error.js';

interface ServeFlags {
  bundles: string;
  listen: string;
  maxWait: string;
}

export function registerServe(program: Command): void {
  program
    .command('serve')
    .description('serve built bundles to proxy plugins (GET /bundles/<workload> with ETag and long poll)')
    .option('--bundles <dir>', 'folder written by warden build', 'bundles')
    .option('--listen <addr>', 'address to listen on', '127.0.0.1:8181')
    .option('--max-wait <seconds>', 'longest long poll a client may ask for', '60')
    // The audit store adds its option (e.g. --store) and mount here: createEngineApp({ mounts: [...] }).
    .action(async (flags: ServeFlags) => {
      if (!existsSync(flags.bundles)) throw new UserError(`--bundles ${flags.bundles} does not exist; run \`warden build --out ${flags.bundles}\` first`);
      const addr = parseListenAddress('--listen', flags.listen);
      const engine = createEngineApp({ bundlesDir: flags.bundles, maxWaitSeconds: Number(flags.maxWait) || 60 });
      const server = engine.app.listen(addr.port, addr.host);
      await new Promise<void>((resolve, reject) => {
        server.once('listening', resolve);
        server.once('error', (err) => reject(new UserError(`cannot listen on ${flags.listen}: ${err.message}`)));
      });
      const a = server.address() as AddressInfo;
      process.stdout.write(`warden serve: bundles from ${flags.bundles}/ on http://${a.address}:${a.port}\n`);
      await new Promise<void>((resolve) => {
        const stop = () => {
          engine.close();
          server.close(() => resolve());
          server.closeAllConnections();
        };
        process.once('SIGINT', stop);
        process.once('SIGTERM', stop);
      });
    });
}
