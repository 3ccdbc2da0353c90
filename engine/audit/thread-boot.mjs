// Entry of the audit store's worker threads: registers tsx's loader in the thread (as bin/warden.js
// does for the main thread), then runs the TypeScript module named in workerData.
import { register } from 'tsx/esm/api';
import { workerData } from 'node:worker_threads';

register();
await import(workerData.module);
