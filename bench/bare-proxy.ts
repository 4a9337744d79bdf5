// The Node ceiling: a bare @fastify/http-proxy in front of the same upstream, no auth, no
// logging. What authgate adds is measured against this, in the same run. Own child process.
import Fastify from 'fastify';
import proxy from '@fastify/http-proxy';
import type { AddressInfo } from 'node:net';
import { handleProfileMessage } from './child-profiler.js';

const upstream = process.argv[2];
if (!upstream) throw new Error('usage: bare-proxy.ts UPSTREAM_URL');

const app = Fastify({ logger: false, disableRequestLogging: true });
// The same undici pool settings the gateway uses (src/server.ts), so only the auth work differs.
await app.register(proxy, {
  upstream,
  undici: { connections: 256, pipelining: 1, keepAliveTimeout: 30_000 },
});
await app.listen({ host: '127.0.0.1', port: 0 });
const { port } = app.server.address() as AddressInfo;
process.send?.({ ready: true, url: `http://127.0.0.1:${port}`, pid: process.pid });

process.on('message', (m: { cmd?: string; id?: number; file?: string }) => {
  if (handleProfileMessage(m)) return;
  if (m.cmd === 'exit') void app.close().then(() => process.exit(0));
});
process.on('disconnect', () => void app.close().then(() => process.exit(0)));
