// Builds one JavaScript handler into a wasi:http component with
// componentize-js (StarlingMonkey, pre-initialized with Wizer):
//   node build.mjs <app.js> <wit dir> <world> <out.wasm>
import { componentize } from '@bytecodealliance/componentize-js';
import { readFile, writeFile } from 'node:fs/promises';
import { basename } from 'node:path';

const [source, witPath, worldName, out] = process.argv.slice(2);
if (!out) {
  console.error('usage: node build.mjs <app.js> <wit dir> <world> <out.wasm>');
  process.exit(2);
}
const { component } = await componentize(await readFile(source, 'utf8'), {
  sourceName: basename(source),
  witPath,
  worldName,
});
await writeFile(out, component);
