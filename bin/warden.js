#!/usr/bin/env node
// The `warden` command: runs the TypeScript CLI through tsx's ESM loader (no separate build step).
import { register } from 'tsx/esm/api';

register();
await import('../cli/main.ts');
