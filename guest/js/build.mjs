// Builds build/guest.wasm with componentize-js (JS API, not the jco CLI).
// Usage: node build.mjs   (or ./build.sh, which also installs the toolchain)
import { componentize } from '@bytecodealliance/componentize-js';
import { copyFile, mkdir, rm, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const out = join(here, 'build');
const wit = join(out, 'wit');

// build/wit: our world + tarn's contract + wasi:cli/environment as deps.
await rm(wit, { recursive: true, force: true });
await mkdir(join(wit, 'deps'), { recursive: true });
await copyFile(join(here, 'wit', 'world.wit'), join(wit, 'world.wit'));
await copyFile(join(here, '..', '..', 'wit', 'database.wit'), join(wit, 'deps', 'tarn-postgres.wit'));
await copyFile(join(here, 'wit', 'wasi-cli-environment.wit'), join(wit, 'deps', 'wasi-cli.wit'));

const started = performance.now();
const { component, imports } = await componentize({
  sourcePath: join(here, 'src', 'guest.js'),
  witPath: wit,
  worldName: 'http-guest-js',
  // No fetch/wasi:http; no console (stdio), Math.random (random) or Date.now
  // (clocks) either: the guest needs none of them, and each adds imports.
  disableFeatures: ['http', 'fetch-event', 'stdio', 'random', 'clocks'],
});
await writeFile(join(out, 'guest.wasm'), component);
const secs = ((performance.now() - started) / 1000).toFixed(1);
console.log(`build/guest.wasm: ${component.length} bytes in ${secs} s`);
console.log(`imports used: ${imports.map((i) => i.join('#')).join(', ')}`);
