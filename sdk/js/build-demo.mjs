// Copies the demo pages (demo/: the chat page, index.html, app.js,
// style.css; demo/call/: the 1v1 call page, one level of directories as
// rtmd serves them) and the ES module bundle (dist/rts.mjs and its source
// map) into dist/demo/, the
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
const NAME = /^[A-Za-z0-9_-][A-Za-z0-9_.-]*$/;
for (const entry of readdirSync(join(root, 'demo'), { withFileTypes: true })) {
  if (!NAME.test(entry.name)) continue;
  if (entry.isFile()) {
    copyFileSync(join(root, 'demo', entry.name), join(out, entry.name));
  } else if (entry.isDirectory()) {
    mkdirSync(join(out, entry.name));
    for (const f of readdirSync(join(root, 'demo', entry.name), { withFileTypes: true })) {
      if (f.isFile() && NAME.test(f.name)) copyFileSync(join(root, 'demo', entry.name, f.name), join(out, entry.name, f.name));
    }
  }
}
copyFileSync(bundle, join(out, 'rts.mjs'));
if (existsSync(`${bundle}.map`)) copyFileSync(`${bundle}.map`, join(out, 'rts.mjs.map'));
