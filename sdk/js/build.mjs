// Builds dist/: an ESM bundle, a minified IIFE bundle exposing the global
// `Herald` (for <script src="/sdk/herald.min.js">), their source maps, and
// .d.ts types. The output depends on the sources and package.json only (no
// dates, no absolute paths), so a rebuild gives identical bytes.
import { execFileSync } from 'node:child_process';
import { readFileSync, rmSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';

const root = dirname(fileURLToPath(import.meta.url));
const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8'));
const dist = join(root, 'dist');

rmSync(dist, { recursive: true, force: true });

const common = {
  absWorkingDir: root,
  entryPoints: ['src/index.ts'],
  bundle: true,
  sourcemap: true,
  sourcesContent: true,
  target: 'es2020',
  charset: 'utf8',
  legalComments: 'none',
  define: { __HERALD_VERSION__: JSON.stringify(pkg.version) },
  banner: { js: `/* ${pkg.name} ${pkg.version} */` },
  logLevel: 'warning',
};

await build({ ...common, format: 'esm', platform: 'neutral', outfile: 'dist/herald.esm.js' });
await build({ ...common, format: 'iife', platform: 'browser', globalName: 'Herald', minify: true, outfile: 'dist/herald.min.js' });

const tsc = join(root, 'node_modules', 'typescript', 'bin', 'tsc');
execFileSync(process.execPath, [tsc, '-p', join(root, 'tsconfig.build.json')], { stdio: 'inherit' });
