// The Node floor (issue 12): a plain node:http server forwarding with an undici Pool
// (dispatch, streamed both ways), no framework. `/floor/**` forwards with no auth; `/floor-jwt/**`
// first checks an RS256 bearer token with fast-jwt (cached by token, as the gateway caches
// verifications) and adds the user header. What a raw Node proxy costs, in the same run.
// Own child process: node-floor.ts UPSTREAM_URL PUBLIC_KEY_PEM_FILE ISSUER AUDIENCE
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Pool } from 'undici';
import { handleProfileMessage } from './child-profiler.js';
import { createFloorHandler, floorJwtCheck } from './floor-handler.js';

const [upstream, keyFile, issuer, audience] = process.argv.slice(2);
if (!upstream || !keyFile || !issuer || !audience) throw new Error('usage: node-floor.ts UPSTREAM_URL PUBLIC_KEY_PEM ISSUER AUDIENCE');

const pool = new Pool(upstream, { connections: 256, pipelining: 1, keepAliveTimeout: 30_000 });
const server = createServer(createFloorHandler(pool, floorJwtCheck(keyFile, issuer, audience, (url) => url.startsWith('/floor-jwt/'))));
server.keepAliveTimeout = 5_000;
await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
process.send?.({ ready: true, url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, pid: process.pid });

const stop = (): void => { server.close(); void pool.close().then(() => process.exit(0)); };
process.on('message', (m: { cmd?: string; id?: number; file?: string }) => {
  if (handleProfileMessage(m)) return;
  if (m.cmd === 'exit') stop();
});
process.on('disconnect', stop);
