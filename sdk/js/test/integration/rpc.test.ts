// RPC through the server's RPC proxy, against the real server and a backend
// of the test's own: over WebSocket, and over HTTP (POST /rpc) for the
// one-way transports.
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ErrorCodes, HeraldError } from '../../src/errors.js';
import type { TransportName } from '../../src/types.js';
import { newClient } from '../helpers/client.js';
import { HeraldServer } from '../helpers/server.js';

interface RPCRequest {
  transport: string;
  method: string;
  data?: unknown;
}

let backend: Server;
let withRPC: HeraldServer;
let withoutRPC: HeraldServer;
const seen: RPCRequest[] = [];

function answer(res: ServerResponse, body: unknown): void {
  res.writeHead(200, { 'Content-Type': 'application/json' });
  res.end(JSON.stringify(body));
}

beforeAll(async () => {
  backend = createServer((req: IncomingMessage, res: ServerResponse) => {
    let body = '';
    req.on('data', (b: Buffer) => (body += b.toString()));
    req.on('end', () => {
      const r = JSON.parse(body) as RPCRequest;
      seen.push(r);
      if (r.method === 'echo') answer(res, { result: { data: { echoed: r.data ?? null, transport: r.transport } } });
      else if (r.method === 'empty') answer(res, { result: {} });
      else answer(res, { error: { code: 1404, message: `no method ${r.method}` } });
    });
  });
  await new Promise<void>((done) => backend.listen(0, '127.0.0.1', done));
  const port = (backend.address() as AddressInfo).port;
  withRPC = await HeraldServer.start({ env: { HERALD_PROXY__RPC_URL: `http://127.0.0.1:${port}/rpc` } });
  withoutRPC = await HeraldServer.start();
});

afterAll(async () => {
  await withRPC?.close();
  await withoutRPC?.close();
  await new Promise((done) => backend?.close(done));
});

async function codeOf(p: Promise<unknown>): Promise<number> {
  const err = await p.then(
    () => null,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(HeraldError);
  return (err as HeraldError).code;
}

describe('rpc', () => {
  const cases: Array<[TransportName, string]> = [
    ['websocket', 'websocket'],
    ['sse', 'http'],
    ['longpoll', 'http'],
  ];
  for (const [transport, via] of cases) {
    it(`calls the backend and resolves with its data on ${transport}`, async () => {
      const c = newClient(withRPC.url, transport);
      c.connect();
      expect(await c.rpc('echo', { n: [1, 2] })).toEqual({ echoed: { n: [1, 2] }, transport: via });
      expect(await c.rpc('empty')).toBeUndefined();
      expect(await codeOf(c.rpc('missing'))).toBe(1404);
    });
  }

  it('sends no data when given none', async () => {
    const c = newClient(withRPC.url, 'websocket');
    c.connect();
    seen.length = 0;
    expect(await c.rpc('echo')).toEqual({ echoed: null, transport: 'websocket' });
    expect(seen).toHaveLength(1);
    expect(seen[0]).not.toHaveProperty('data');
  });

  it('is refused with 108 by a server without an RPC proxy', async () => {
    for (const transport of ['websocket', 'sse'] as TransportName[]) {
      const c = newClient(withoutRPC.url, transport);
      c.connect();
      expect(await codeOf(c.rpc('echo', 1))).toBe(ErrorCodes.NotAvailable);
    }
  });
});
