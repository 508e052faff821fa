// Builds the admin page into dist/: admin.js (src/admin.js with uPlot,
// bundled by esbuild, no CDN), index.html, admin.css and uPlot's CSS.
// rtmd serves dist/ at /admin/ when admin_token and admin_dir are set.
import { build } from 'esbuild';
import { copyFileSync, mkdirSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const dist = join(here, 'dist');
const require = createRequire(import.meta.url);

rmSync(dist, { recursive: true, force: true });
mkdirSync(dist, { recursive: true });
await build({
  entryPoints: [join(here, 'src/admin.js')],
  bundle: true,
  format: 'iife',
  target: 'es2020',
  minify: true,
  sourcemap: true,
  outfile: join(dist, 'admin.js'),
  logLevel: 'warning',
});
copyFileSync(join(here, 'src/index.html'), join(dist, 'index.html'));
copyFileSync(join(here, 'src/admin.css'), join(dist, 'admin.css'));
copyFileSync(require.resolve('uplot/dist/uPlot.min.css'), join(dist, 'uPlot.min.css'));
