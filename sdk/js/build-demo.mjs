// Copies the demo chat page (demo/: index.html, app.js, style.css) and the
// ES module bundle (dist/rts.mjs and its source map) into dist/demo/, the
// directory rtmd serves at /demo/ when its demo_dir points there (see
// scripts/start.sh). Runs after build.mjs (package.json "build").
import { copyFileSync, existsSync, mkdirSync, readdirSync, rmSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = dirname(fileURLToPath(import.meta.url));
const out = join(root, 'dist', 'demo');
const bundle = join(root, 'dist', 'rts.mjs');
if (!existsSync(bundle)) {
  console.error('build-demo: dist/rts.mjs is missing: run build.mjs first (npm run build does both)');
  process.exit(1);
}
rmSync(out, { recursive: true, force: true });
mkdirSync(out, { recursive: true });
for (const name of readdirSync(join(root, 'demo'))) {
  if (/^[A-Za-z0-9_-][A-Za-z0-9_.-]*$/.test(name)) copyFileSync(join(root, 'demo', name), join(out, name));
}
copyFileSync(bundle, join(out, 'rts.mjs'));
if (existsSync(`${bundle}.map`)) copyFileSync(`${bundle}.map`, join(out, 'rts.mjs.map'));
