// The engine a benchmark sidecar talks to, as in a pod (`--engine`): the bundle server and a decision-log
// sink that counts what it drains.
import express from 'express';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { createEngineApp } from '../engine/bundle-server.js';

/** What the engine stand-in received. */
export interface EngineStandIn {
  url: string;
  batches: number;
  bytes: number;
  close(): Promise<void>;
}

/**
 * The engine runs in its own pod in a cluster. Here it is the engine's own bundle server over the
 * built bundles (ETag, long poll), with a POST /logs that drains batches without storing them: the
 * sidecar pays for shipping its decision log as it does in a pod, the audit store's work is left out.
 */
export async function engineStandIn(bundlesDir: string): Promise<EngineStandIn> {
  const got = { batches: 0, bytes: 0 };
  const drain = express.Router().post('/', (req, res) => {
    req.on('data', (c: Buffer) => (got.bytes += c.length));
    req.on('end', () => {
      got.batches++;
      res.json({ rejected: [] });
    });
  });
  const engine = createEngineApp({ bundlesDir, mounts: [{ path: '/logs', router: drain }] });
  await engine.ready;
  const server = http.createServer(engine.app);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    get batches() {
      return got.batches;
    },
    get bytes() {
      return got.bytes;
    },
    close: () => {
      engine.close();
      server.closeAllConnections();
      return new Promise<void>((r) => server.close(() => r()));
    },
  };
}
