#!/usr/bin/env node
// memscope CLI entry. In a checkout (../src exists) it runs the TypeScript sources through tsx, so
// a stale dist/ is never used there; in the installed package (which ships dist/, not src/) it
// runs the compiled dist/cli/main.js with plain Node — no tsx, no build step at run time.
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const checkout = existsSync(fileURLToPath(new URL('../src/cli/main.ts', import.meta.url)));
let main;
if (checkout) {
  const { register } = await import('tsx/esm/api');
  register();
  ({ main } = await import('../src/cli/main.ts'));
} else {
  ({ main } = await import('../dist/cli/main.js'));
}
process.exitCode = await main(process.argv.slice(2));
