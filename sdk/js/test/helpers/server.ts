// Runs the real herald binary for integration tests: one server per test
// file (or per test), on a free loopback port, stopped when done.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { inject } from 'vitest';

export const API_KEY = 'K';

const LISTENING = /msg="herald listening" addr=(\S+)/;

const running = new Set<ChildProcess>();
process.on('exit', () => {
  for (const p of running) p.kill('SIGKILL');
});

export interface ServerOptions {
  engine?: 'memory' | 'durable';
  /** For the durable engine; a temporary directory, removed at stop(), if not given. */
  dataDir?: string;
  /** Extra environment, e.g. HERALD_AUTH__HMAC_SECRET. */
  env?: Record<string, string>;
  args?: string[];
}

/** A herald process that can be stopped and started again on the same address. */
export class HeraldServer {
  private proc: ChildProcess | null = null;
  private ownDir: string | null = null;
  addr = '';

  private constructor(private readonly opts: ServerOptions) {}

  static async start(opts: ServerOptions = {}): Promise<HeraldServer> {
    const s = new HeraldServer({ engine: 'memory', ...opts });
    if (s.opts.engine === 'durable' && !s.opts.dataDir) {
      s.ownDir = mkdtempSync(join(tmpdir(), 'herald-data-'));
      s.opts.dataDir = s.ownDir;
    }
    await s.run('127.0.0.1:0');
    return s;
  }

  get url(): string {
    return `http://${this.addr}`;
  }

  get running(): boolean {
    return this.proc !== null;
  }

  private run(addr: string): Promise<void> {
    // A free TURN port, so that test servers never contend for 3478.
    const args = ['serve', '--dev', '--engine', this.opts.engine!, '--addr', addr, '--api-key', API_KEY, '--turn-addr', '127.0.0.1:0'];
    if (this.opts.dataDir) args.push('--data-dir', this.opts.dataDir);
    args.push(...(this.opts.args ?? []));
    const proc = spawn(inject('heraldBin'), args, {
      env: { ...process.env, ...(this.opts.env ?? {}) },
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    running.add(proc);
    this.proc = proc;
    let stderr = '';
    return new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => {
        proc.kill('SIGKILL');
        reject(new Error(`herald did not report listening within 15 s:\n${stderr}`));
      }, 15_000);
      const onData = (b: Buffer) => {
        stderr += b.toString();
        const m = LISTENING.exec(stderr);
        if (m) {
          clearTimeout(timer);
          this.addr = m[1]!;
          // Keep draining stderr so the process never blocks on a full pipe.
          stderr = '';
          proc.stderr!.off('data', onData);
          proc.stderr!.resume();
          resolve();
        }
      };
      proc.stderr!.on('data', onData);
      proc.on('exit', (code, signal) => {
        running.delete(proc);
        if (this.proc === proc) this.proc = null;
        clearTimeout(timer);
        reject(new Error(`herald exited (${code ?? signal}) before listening:\n${stderr}`));
      });
    });
  }

  /** Stops the process: SIGTERM shuts down gracefully (clients are told to reconnect), SIGKILL does not. */
  async stop(signal: NodeJS.Signals = 'SIGTERM'): Promise<void> {
    const proc = this.proc;
    if (!proc) return;
    await new Promise<void>((resolve) => {
      if (proc.exitCode !== null || proc.signalCode !== null) {
        resolve();
        return;
      }
      const timer = setTimeout(() => proc.kill('SIGKILL'), 10_000);
      proc.once('exit', () => {
        clearTimeout(timer);
        resolve();
      });
      proc.kill(signal);
    });
    running.delete(proc);
    this.proc = null;
  }

  /** Stops the server and starts it again on the same address (and store). */
  async restart(signal: NodeJS.Signals = 'SIGTERM'): Promise<void> {
    await this.stop(signal);
    // The port is free once the process exited; retry briefly in case the
    // kernel has not released it yet.
    for (let i = 0; ; i++) {
      try {
        await this.run(this.addr);
        return;
      } catch (err) {
        if (i >= 20) throw err;
        await new Promise((r) => setTimeout(r, 50));
      }
    }
  }

  /**
   * Stops the server for good and removes its own data directory. A test
   * is over, so nothing needs a graceful shutdown, which can wait seconds
   * for connections the clients already dropped.
   */
  async close(): Promise<void> {
    await this.stop('SIGKILL');
    if (this.ownDir) rmSync(this.ownDir, { recursive: true, force: true });
  }

  /** Calls the server API: POST /api/<method>. */
  async api<T = unknown>(method: string, body: unknown): Promise<T> {
    const resp = await fetch(`${this.url}/api/${method}`, {
      method: 'POST',
      headers: { Authorization: `apikey ${API_KEY}`, 'Content-Type': 'application/json' },
      body: JSON.stringify(body),
    });
    const text = await resp.text();
    if (!resp.ok) throw new Error(`/api/${method}: HTTP ${resp.status}: ${text}`);
    return JSON.parse(text) as T;
  }

  /** Publishes through the server API. */
  publish(channel: string, data: unknown, idempotencyKey?: string): Promise<{ offset: number; epoch: string }> {
    const body: Record<string, unknown> = { channel, data };
    if (idempotencyKey) body['idempotency_key'] = idempotencyKey;
    return this.api('publish', body);
  }
}
