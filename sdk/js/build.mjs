// Builds dist/rts.mjs (ES module, @msgpack/msgpack bundled in) and
// dist/rts.iife.js (one file for a <script> tag, global `RTS`), both
// minified with source maps.
import { build } from 'esbuild';

const common = {
  entryPoints: ['src/index.js'],
  bundle: true,
  minify: true,
  sourcemap: true,
  target: ['es2020'],
  platform: 'browser',
  legalComments: 'none',
  logLevel: 'warning',
};

await build({ ...common, format: 'esm', outfile: 'dist/rts.mjs' });
await build({ ...common, format: 'iife', globalName: 'RTS', outfile: 'dist/rts.iife.js' });
