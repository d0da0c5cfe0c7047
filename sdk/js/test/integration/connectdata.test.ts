// Connect data through the server's connect proxy, against the real server
// and a backend of the test's own: the client's `data` option reaches the
// backend with every WebSocket connection, and the backend's data comes back
// on the `connected` event and as connectData.
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Client } from '../../src/client.js';
import type { ConnectedEvent } from '../../src/types.js';
import { newClient, subscribed } from '../helpers/client.js';
import { HeraldServer } from '../helpers/server.js';
import { waitFor } from '../helpers/wait.js';

interface ConnectRequest {
  transport: string;
  data?: unknown;
}

let backend: Server;
let srv: HeraldServer;
const seen: ConnectRequest[] = [];

beforeAll(async () => {
  backend = createServer((req: IncomingMessage, res: ServerResponse) => {
    let body = '';
    req.on('data', (b: Buffer) => (body += b.toString()));
    req.on('end', () => {
      const r = JSON.parse(body) as ConnectRequest;
      seen.push(r);
      const result: Record<string, unknown> = { user: 'alice' };
      if (r.data !== undefined) result['data'] = { echo: r.data, n: seen.length };
      res.writeHead(200, { 'Content-Type': 'application/json' });
      res.end(JSON.stringify({ result }));
    });
  });
  await new Promise<void>((done) => backend.listen(0, '127.0.0.1', done));
  const port = (backend.address() as AddressInfo).port;
  srv = await HeraldServer.start({ env: { HERALD_PROXY__CONNECT_URL: `http://127.0.0.1:${port}/connect` } });
});

afterAll(async () => {
  await srv?.close();
  await new Promise((done) => backend?.close(done));
});

describe('connect data', () => {
  it('reaches the backend and comes back, on every connection', async () => {
    seen.length = 0;
    const c = newClient(srv.url, 'websocket', { data: { room: 'lobby', tags: [1, 2] } });
    const events: ConnectedEvent[] = [];
    c.on('connected', (e) => events.push(e));
    c.connect();
    await waitFor('connected', () => events.length === 1);
    expect(events[0]).toMatchObject({ transport: 'websocket', user: 'alice', data: { echo: { room: 'lobby', tags: [1, 2] }, n: 1 } });
    expect(c.connectData).toEqual({ echo: { room: 'lobby', tags: [1, 2] }, n: 1 });
    expect(seen).toHaveLength(1);
    expect(seen[0]).toMatchObject({ transport: 'websocket', data: { room: 'lobby', tags: [1, 2] } });

    // A reconnection sends the data again and shows the new answer.
    await srv.restart();
    await waitFor('reconnected', () => events.length === 2);
    expect(events[1]!.data).toEqual({ echo: { room: 'lobby', tags: [1, 2] }, n: 2 });
    expect(c.connectData).toEqual({ echo: { room: 'lobby', tags: [1, 2] }, n: 2 });

    c.disconnect();
    expect(c.connectData).toBeUndefined();
  });

  it('sends none when the option is not given', async () => {
    seen.length = 0;
    const c = newClient(srv.url, 'websocket');
    const events: ConnectedEvent[] = [];
    c.on('connected', (e) => events.push(e));
    c.connect();
    await waitFor('connected', () => events.length === 1);
    expect(seen[0]).not.toHaveProperty('data');
    expect(events[0]).not.toHaveProperty('data');
    expect(c.connectData).toBeUndefined();
  });

  it('is not sent over SSE', async () => {
    seen.length = 0;
    const c = newClient(srv.url, 'sse', { data: { room: 'lobby' } });
    // An SSE stream, which asks the backend, opens for a subscription.
    const sub = c.newSubscription('chat:connectdata');
    c.connect();
    await subscribed(sub);
    expect(seen.some((r) => r.transport === 'sse')).toBe(true);
    expect(seen.every((r) => r.data === undefined)).toBe(true);
    expect(c.connectData).toBeUndefined();
  });

  it('must be a JSON value', () => {
    for (const data of [() => 1, 1n, Symbol('x')]) {
      expect(() => new Client({ url: srv.url, data })).toThrow(/options.data/);
    }
  });
});
