// Builds the herald binary once for every integration test file, from the
// repository this SDK lives in (HERALD_BIN names a built one instead).
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { TestProject } from 'vitest/node';

declare module 'vitest' {
  export interface ProvidedContext {
    heraldBin: string;
  }
}

export default async function setup(project: TestProject): Promise<() => void> {
  if (process.env['HERALD_BIN']) {
    project.provide('heraldBin', process.env['HERALD_BIN']);
    return () => undefined;
  }
  const dir = mkdtempSync(join(tmpdir(), 'herald-sdk-js-'));
  const bin = join(dir, 'herald');
  // test/helpers -> test -> sdk/js -> sdk -> the repository root.
  const repo = resolve(dirname(fileURLToPath(import.meta.url)), '../../../..');
  await new Promise<void>((done, fail) => {
    execFile('go', ['build', '-o', bin, './cmd/herald'], { cwd: repo, maxBuffer: 16 << 20 }, (err, _stdout, stderr) => {
      if (err) fail(new Error(`go build ./cmd/herald in ${repo} failed: ${err.message}\n${stderr}`));
      else done();
    });
  });
  project.provide('heraldBin', bin);
  return () => rmSync(dir, { recursive: true, force: true });
}
