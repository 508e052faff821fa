// index.d.ts: a usage file covering every method and event compiles with
// tsc --strict --noEmit (resolving the package by its name and `types`),
// and a file of wrong uses fails with exactly the expected errors.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import path from 'node:path';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const tsc = (project) => spawnSync(process.execPath, [path.join(root, 'node_modules/typescript/bin/tsc'), '-p', project], { cwd: root, encoding: 'utf8' });

test('usage.ts type-checks against index.d.ts', { timeout: 120000 }, () => {
  const r = tsc('test/types/tsconfig.json');
  assert.equal(r.status, 0, r.stdout + r.stderr);
});

test('bad.ts is refused for each wrong use', { timeout: 120000 }, () => {
  const r = tsc('test/types/tsconfig.bad.json');
  assert.notEqual(r.status, 0);
  const lines = r.stdout.split('\n').filter((l) => /^test\/types\/bad\.ts\(\d+,\d+\): error/.test(l)).map((l) => Number(/\((\d+),/.exec(l)[1]));
  assert.deepEqual(lines, [5, 6, 7, 8, 10, 11], r.stdout);
});
