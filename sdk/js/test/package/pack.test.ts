// The package as npm users get it: `npm pack` (which builds dist/), the
// tarball installed into a project of its own, imported by name from plain
// Node ESM against a real server, and a TypeScript file typechecked against
// the published declarations. The ESM build is not committed (only the
// browser bundle the server embeds is): packing builds it, as publishing
// would. It packs a copy of the package's sources, so the working tree's
// dist/ is left alone: the test command's check that the committed bundle
// equals a fresh build runs after this file, and a Go build embedding
// dist/ may run beside it.
import { execFile } from 'node:child_process';
import { cpSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { HeraldServer } from '../helpers/server.js';

const SDK = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const pkg = JSON.parse(readFileSync(join(SDK, 'package.json'), 'utf8')) as { name: string; version: string };

function run(cmd: string, args: string[], cwd: string, env: Record<string, string> = {}): Promise<string> {
  return new Promise((done, fail) => {
    execFile(cmd, args, { cwd, env: { ...process.env, ...env }, maxBuffer: 16 << 20, timeout: 120_000 }, (err, stdout, stderr) => {
      if (err) fail(new Error(`${cmd} ${args.join(' ')} in ${cwd}: ${err.message}\n${stdout}\n${stderr}`));
      else done(stdout);
    });
  });
}

interface PackEntry {
  filename: string;
  files: { path: string }[];
}

let dir: string;
let project: string;
let packed: PackEntry;
let srv: HeraldServer;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'herald-pack-'));
  project = join(dir, 'app');
  const copy = join(dir, 'package');
  mkdirSync(copy);
  for (const f of ['package.json', 'README.md', 'build.mjs', 'tsconfig.json', 'tsconfig.build.json', 'src']) {
    cpSync(join(SDK, f), join(copy, f), { recursive: true });
  }
  // The build's tools (esbuild, tsc) come from the SDK's own install.
  symlinkSync(join(SDK, 'node_modules'), join(copy, 'node_modules'));
  const out = await run('npm', ['pack', '--json', '--pack-destination', dir, '--loglevel=error'], copy);
  // prepack's build prints nothing on success; the JSON is what is left.
  packed = (JSON.parse(out.slice(out.indexOf('['))) as PackEntry[])[0]!;
  mkdirSync(project);
  writeFileSync(join(project, 'package.json'), JSON.stringify({ name: 'app', private: true, type: 'module' }));
  // The SDK has no runtime dependency, so nothing comes from a registry.
  await run('npm', ['install', '--offline', '--no-audit', '--no-fund', '--ignore-scripts', '--loglevel=error', join(dir, packed.filename)], project);
  srv = await HeraldServer.start();
}, 180_000);

afterAll(async () => {
  await srv?.close();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

describe('the npm package', () => {
  it('holds the builds, their maps and the declarations, and nothing of the sources or tests', () => {
    const files = packed.files.map((f) => f.path).sort();
    for (const f of ['package.json', 'README.md', 'dist/herald.esm.js', 'dist/herald.esm.js.map', 'dist/herald.min.js', 'dist/herald.min.js.map', 'dist/index.d.ts', 'dist/client.d.ts']) {
      expect(files, f).toContain(f);
    }
    expect(files.filter((f) => !f.startsWith('dist/') && f !== 'package.json' && f !== 'README.md')).toEqual([]);
    expect(files.filter((f) => f.endsWith('.ts') && !f.endsWith('.d.ts'))).toEqual([]);
  });

  it('imports by name from Node ESM and talks to a real server over WebSocket and long polling', async () => {
    const script = join(project, 'run.mjs');
    writeFileSync(
      script,
      `import { Client, VERSION, ErrorCodes } from '${pkg.name}';
import WebSocket from ${JSON.stringify(pathToFileURL(join(SDK, 'node_modules/ws/wrapper.mjs')).href)};
const results = {};
for (const transport of ['websocket', 'longpoll']) {
  const c = new Client({ url: process.env.HERALD_URL, transports: [transport], WebSocket, network: null, pollTimeout: 2000 });
  const sub = c.newSubscription('pack:' + transport);
  const got = new Promise((resolve) => sub.on('publication', (p) => resolve(p.data)));
  sub.subscribe();
  c.connect();
  await sub.ready(10000);
  await sub.publish({ via: transport });
  results[transport] = { data: await got, transport: c.transport };
  c.disconnect();
}
console.log(JSON.stringify({ version: VERSION, codes: typeof ErrorCodes, results }));
`,
    );
    const out = await run(process.execPath, [script], project, { HERALD_URL: srv.url });
    expect(JSON.parse(out)).toEqual({
      version: pkg.version,
      codes: 'object',
      results: {
        websocket: { data: { via: 'websocket' }, transport: 'websocket' },
        longpoll: { data: { via: 'longpoll' }, transport: 'longpoll' },
      },
    });
  });

  it('typechecks a file against the published declarations, and they reject misuse', async () => {
    writeFileSync(
      join(project, 'tsconfig.json'),
      JSON.stringify({
        compilerOptions: {
          target: 'ES2020',
          module: 'NodeNext',
          moduleResolution: 'NodeNext',
          lib: ['ES2020', 'DOM'],
          strict: true,
          noEmit: true,
          // The published declarations are checked too.
          skipLibCheck: false,
          types: [],
        },
        files: ['check.ts'],
      }),
    );
    writeFileSync(
      join(project, 'check.ts'),
      `import { Client, createClient, HeraldError, type Publication, type StreamPosition, type Subscription } from '${pkg.name}';

const c: Client = createClient({ url: 'http://127.0.0.1:8000', transports: ['sse', 'longpoll'] });
const sub: Subscription = c.newSubscription('chat:lobby');
sub.on('publication', (p: Publication) => {
  const offset: number = p.offset;
  void offset;
});
sub.on('subscribed', (e) => {
  const recovered: boolean = e.recovered;
  const at: StreamPosition | null = e.position;
  void recovered, at;
});
sub.on('error', (e) => {
  const err: Error = e.error;
  void err;
});
export const done: Promise<number> = sub.publish({ text: 'hi' }).then((r) => r.offset);
export const isHerald = (e: unknown): boolean => e instanceof HeraldError && e.code > 0;

// Each of these must stay a type error: declarations that decayed to any
// would make the directive itself fail ("unused @ts-expect-error").
// @ts-expect-error an unknown transport
createClient({ transports: ['carrier-pigeon'] });
// @ts-expect-error the url is a string
createClient({ url: 8000 });
// @ts-expect-error no such event
sub.on('publicationz', () => undefined);
// @ts-expect-error state is read-only
sub.state = 'subscribed';
`,
    );
    const tsc = join(SDK, 'node_modules/typescript/bin/tsc');
    await run(process.execPath, [tsc, '-p', 'tsconfig.json'], project);
  });
});
