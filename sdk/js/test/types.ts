// A compile-time check (npm run typecheck), not a test file: the npm "ws"
// and "eventsource" packages and Node's fetch fit the client's options
// without casts.
import { EventSource } from 'eventsource';
import WebSocket from 'ws';
import { Client } from '../src/client.js';

export const client = (): Client => new Client({ url: 'http://127.0.0.1:1', WebSocket, EventSource, fetch });
